//! End to end over loopback (docs/behaviour.md §8, §12 "Admin HTTP API"): real calls change what the JSON
//! API and `/metrics` say; pause/unpause reaches the dispatcher; the bearer token guards
//! the API; call events land in the store; SIGTERM hangs up held callers and exits 0.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::api::{get_json, http};
use common::phones::free_tcp_port;
use common::{Holdfast, RawUa, Setup, pcmu_offer};
use serde_json::Value;

const QUEUE: &str = "[[queue]]\nname = \"support\"\nwrapup = 1\ndefault_handle_time = 120\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n\n\
[[vip]]\ncaller = \"+15550009999\"\npriority = \"vip\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

/// holdfast with the admin API on a fresh loopback port; returns it and the API address.
fn start(name: &str, rtp_base: u16, token: &str) -> (Holdfast, SocketAddr) {
    let port = free_tcp_port();
    let mut setup = Setup::new(rtp_base);
    setup.extra = QUEUE.to_string();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.admin = format!("listen = \"127.0.0.1:{port}\"\ntoken = \"{token}\"\n");
    let holdfast = Holdfast::start(name, &setup);
    (holdfast, format!("127.0.0.1:{port}").parse().unwrap())
}

/// The value of one sample line of `/metrics`, if present.
fn metric(api: SocketAddr, series: &str) -> Option<f64> {
    let (status, text) = http(api, "GET", "/metrics", None);
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `check` until it holds (the SIP task answers between datagrams).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never happened: {what}");
}

fn register_alice(holdfast: &Holdfast) -> std::process::Child {
    common::sipp_agent(holdfast, "agent.xml", "1")
}

#[test]
fn api_and_metrics_follow_callers_agents_and_pause() {
    let (holdfast, api) = start("admin-api", 50_000, "");
    assert_eq!(http(api, "GET", "/healthz", None).0, 200);
    // Without a token nobody may schedule or cancel a callback.
    let (code, body) = common::api::http_body(
        api,
        "POST",
        "/api/callbacks",
        None,
        r#"{"number": "+15550000001", "queue": "support"}"#,
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("[admin] token"), "{body}");
    assert_eq!(http(api, "DELETE", "/api/callbacks/1", None).0, 403);

    // Nobody registered: alice is offline, the queue is empty.
    let agents = get_json(api, "/api/agents");
    assert_eq!(agents[0]["user"], "alice");
    assert_eq!(agents[0]["state"], "offline");
    assert_eq!(agents[0]["contact"], Value::Null);
    assert_eq!(agents[0]["queues"], serde_json::json!(["support"]));

    // Two regular callers, then a VIP who goes ahead of them.
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let first = ua.invite("100", "+15550000001", &pcmu_offer(9));
    let second = ua.invite("100", "+15550000002", &pcmu_offer(9));
    let vip = ua.invite("100", "+15550009999", &pcmu_offer(9));
    assert_eq!((first.code, second.code, vip.code), (200, 200, 200));
    let queues = get_json(api, "/api/queues");
    let support = &queues[0];
    assert_eq!(support["name"], "support");
    assert_eq!(support["agents_staffed"], 0);
    assert_eq!(support["agents_free"], 0);
    assert_eq!(support["average_handle_time_s"], 120);
    let waiting = support["waiting"].as_array().unwrap();
    let order: Vec<(&str, u64, &str)> = waiting
        .iter()
        .map(|w| {
            (
                w["caller"].as_str().unwrap(),
                w["position"].as_u64().unwrap(),
                w["priority"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("+15550009999", 1, "vip"),
            ("+15550000001", 2, "normal"),
            ("+15550000002", 3, "normal")
        ]
    );
    assert_eq!(waiting[0]["call_id"], vip.call_id.as_str());
    // No agent staffed and no call completed: the forecast assumes one agent just started
    // a call and exponential 120 s calls; the third caller's phrase covers three of them.
    let estimates: Vec<u64> = waiting
        .iter()
        .map(|w| w["estimate_s"].as_u64().unwrap())
        .collect();
    assert!(estimates.windows(2).all(|e| e[0] <= e[1]), "{estimates:?}");
    assert!(estimates[2] >= 360, "{estimates:?}");
    assert_eq!(waiting[1]["callback"], false);
    assert!(waiting[1]["waited_s"].as_u64().is_some());
    let normal = r#"holdfast_waiting_callers{queue="support",priority="normal"}"#;
    assert_eq!(metric(api, normal), Some(2.0));
    assert_eq!(metric(api, "holdfast_calls_admitted_total"), Some(3.0));

    // The VIP hangs up: everyone moves up, and the abandon is counted and timed.
    assert_eq!(ua.request(&vip, "BYE", 2, "").map(|r| r.0), Some(200));
    let positions = || {
        let queues = get_json(api, "/api/queues");
        queues[0]["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["caller"].as_str().unwrap().to_owned(),
                    w["position"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        positions(),
        [
            ("+15550000001".to_owned(), 1),
            ("+15550000002".to_owned(), 2)
        ]
    );
    let abandoned = r#"holdfast_calls_total{queue="support",outcome="abandoned"}"#;
    assert_eq!(metric(api, abandoned), Some(1.0));
    let abandon_waits = r#"holdfast_wait_seconds_count{queue="support",outcome="abandoned"}"#;
    assert_eq!(metric(api, abandon_waits), Some(1.0));

    // Pause alice before she registers: she stays paused once registered, so nobody rings.
    assert_eq!(http(api, "POST", "/api/agents/alice/pause", None).0, 200);
    assert_eq!(http(api, "POST", "/api/agents/nobody/pause", None).0, 404);
    let mut agent = register_alice(&holdfast);
    eventually("alice registered and paused", || {
        let a = get_json(api, "/api/agents");
        a[0]["state"] == "paused" && a[0]["contact"].is_string()
    });
    assert_eq!(metric(api, r#"holdfast_agents{state="paused"}"#), Some(1.0));
    assert_eq!(positions().len(), 2, "a paused agent is offered nobody");

    // Unpause: dispatch runs at once, alice answers the head of the line.
    assert_eq!(http(api, "POST", "/api/agents/alice/unpause", None).0, 200);
    eventually("alice busy with the first caller", || {
        let a = get_json(api, "/api/agents");
        a[0]["state"] == "busy" && a[0]["calls_taken"] == 1
    });
    assert_eq!(
        positions(),
        [("+15550000002".to_owned(), 1)],
        "the answered caller left the queue"
    );
    let answered = r#"holdfast_calls_total{queue="support",outcome="answered"}"#;
    assert_eq!(metric(api, answered), Some(1.0));
    assert_eq!(metric(api, r#"holdfast_agents{state="busy"}"#), Some(1.0));
    assert!(metric(api, "holdfast_rtp_packets_sent_total").unwrap() > 0.0);
    assert!(metric(api, "holdfast_rtp_send_lateness_seconds_count").unwrap() > 0.0);
    assert!(metric(api, r#"holdfast_sip_transactions_total{role="server"}"#).unwrap() >= 5.0);

    // The connected caller hangs up: the call completes, alice wraps up.
    assert_eq!(ua.request(&first, "BYE", 2, "").map(|r| r.0), Some(200));
    eventually("handle time observed", || {
        metric(api, r#"holdfast_handle_seconds_count{queue="support"}"#) == Some(1.0)
    });
    assert_eq!(ua.request(&second, "BYE", 2, "").map(|r| r.0), Some(200));
    let _ = agent.kill();
    let _ = agent.wait();

    // Every event is one JSON-able log line with its facts.
    let log = holdfast.log();
    let connect = log
        .lines()
        .find(|l| l.contains("caller connected to agent"))
        .unwrap_or_else(|| panic!("no connect event:\n{log}"));
    for needle in [
        first.call_id.as_str(),
        "+15550000001",
        "alice",
        "support",
        "waited_s",
    ] {
        assert!(connect.contains(needle), "{needle} missing in {connect}");
    }
}

#[test]
fn token_guards_everything_but_healthz() {
    let (_holdfast, api) = start("admin-token", 51_000, "s3cret");
    assert_eq!(http(api, "GET", "/healthz", None).0, 200);
    for path in [
        "/api/queues",
        "/api/agents",
        "/api/callbacks",
        "/metrics",
        "/",
    ] {
        assert_eq!(http(api, "GET", path, None).0, 401, "{path}");
        assert_eq!(http(api, "GET", path, Some("wrong")).0, 401, "{path}");
        assert_eq!(http(api, "GET", path, Some("s3cret")).0, 200, "{path}");
    }
    assert_eq!(http(api, "POST", "/api/agents/alice/pause", None).0, 401);
    assert_eq!(
        http(api, "GET", "/api/queues?access_token=s3cret", None).0,
        200,
        "the wallboard's query-string token"
    );
    let (status, body) = http(api, "GET", "/api/callbacks", Some("s3cret"));
    assert_eq!((status, body.as_str()), (200, "[]"));
}

/// The day's figures after real calls (docs/behaviour.md §8): two SIPp callers answered by
/// alice's SIPp phone and one caller who gives up, as the live API counts them today, as
/// `GET /api/report` computes them from the store, and as `holdfast report` prints them
/// once holdfast has stopped.
#[test]
fn todays_figures_match_live_in_the_api_report_and_the_report_command() {
    let (mut holdfast, api) = start("admin-report", 50_500, "");
    let mut agent = common::sipp_agent(&holdfast, "agent.xml", "2");
    for _ in 0..2 {
        let out = common::sipp(
            "caller.xml",
            holdfast.sip,
            &["-m", "1", "-d", "3000", "-key", "rtp_port", "9"],
        );
        assert!(out.status.success(), "{}", holdfast.log());
    }
    let _ = agent.kill();
    let _ = agent.wait();
    // alice pauses; a third caller waits and gives up.
    assert_eq!(http(api, "POST", "/api/agents/alice/pause", None).0, 200);
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite("100", "+15550000003", &pcmu_offer(9));
    assert_eq!(call.code, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ua.request(&call, "BYE", 2, "").map(|r| r.0), Some(200));
    let figures = |v: &Value| {
        (
            v["offered"].as_u64().unwrap(),
            v["answered"].as_u64().unwrap(),
            v["abandoned"].as_u64().unwrap(),
            v["answered_within"].as_u64().unwrap(),
        )
    };
    let queues = get_json(api, "/api/queues");
    assert_eq!(figures(&queues[0]["today"]), (3, 2, 1, 2), "{}", queues[0]);
    assert_eq!(
        queues[0]["today"]["service_level"], 1.0,
        "the abandon was short"
    );
    // The store's events give the same (they are written in batches: allow a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let report = get_json(api, "/api/report");
        if report["queues"][0]["abandoned"] == 1 || std::time::Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(report["queues"][0]["queue"], "support");
    assert_eq!(figures(&report["queues"][0]), (3, 2, 1, 2), "{report}");
    assert_eq!(report["agents"][0]["agent"], "alice");
    assert_eq!(report["agents"][0]["calls"], 2);
    let (code, _) = http(api, "GET", "/api/report?from=2026-13-01", None);
    assert_eq!(code, 400);
    // And the command, on the stopped holdfast's store.
    assert!(holdfast.terminate().success());
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let config = holdfast.dir.join("holdfast.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["report", "--day", &day, "--format", "json", "--config"])
        .arg(&config)
        .current_dir(&holdfast.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["queues"], report["queues"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["report", "--day", &day, "--config"])
        .arg(&config)
        .current_dir(&holdfast.dir)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.contains("\nsupport,3,2,2,1,1,"), "{csv}");
    assert!(csv.contains("\nalice,2,"), "{csv}");
}
