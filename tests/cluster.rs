//! Several holdfast nodes sharing one real PostgreSQL store (docs/cluster.md), end to end.

mod common;

use std::time::Duration;

use common::dialback::{
    callers_press_one, dialled, press_one, press_one_within, trunk, uas, wait_exit,
};
use common::postgres::Postgres;
use common::{Holdfast, Setup, free_udp_port};

const CALLBACK_QUEUE: &str = "[[queue]]\nname = \"support\"\ncallback_threshold = 1\n\
default_handle_time = 600\nwrapup = 0\ncallback_retry_delay = 2\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

fn node(name: &str, url: &str, rtp_base: u16, trunk_port: u16) -> Setup {
    let mut setup = Setup::new(rtp_base);
    setup.extra = CALLBACK_QUEUE.into();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.trunk_address = format!("127.0.0.1:{trunk_port}");
    setup.store_extra = format!("backend = \"postgres\"\nurl = \"{url}\"\n");
    setup.cluster_node = Some(name.into());
    setup
}

/// Registers alice through Kamailio at `front`, her REGISTER sent from `from` (whose
/// address Kamailio's Path records) and naming `contact_port` in its Contact.
fn register_through(front: &common::kamailio::Kamailio, from: u16, contact_port: u16) {
    let (from, contact_port) = (from.to_string(), contact_port.to_string());
    let out = common::sipp(
        "agent_register.xml",
        front.addr,
        &[
            "-m",
            "1",
            "-s",
            "alice",
            "-au",
            "alice",
            "-ap",
            "alice-secret",
            "-key",
            "contact_port",
            &contact_port,
            "-key",
            "expires",
            "3600",
            "-p",
            &from,
        ],
    );
    assert!(
        out.status.success(),
        "registration through Kamailio failed:\n{}",
        front.log()
    );
}

/// Node a commits three callbacks and is killed (`kill -9`) before any agent frees up. Node
/// b sees a's lease run out, takes the three over and dials each exactly once, in the
/// order the callers pressed 1, to an agent registered at b. When a comes back it has
/// nothing left to dial.
#[test]
fn a_dead_nodes_callbacks_are_dialled_once_each_by_a_survivor_in_order() {
    let pg = Postgres::start();
    let url = pg.database("two_nodes");
    let trunk_port = free_udp_port();
    let numbers = ["+15551240001", "+15551240002", "+15551240003"];
    let mut a = Holdfast::start("cluster-a", &node("a", &url, 43_000, trunk_port));
    let admin = common::phones::free_tcp_port();
    let mut setup_b = node("b", &url, 44_000, trunk_port);
    setup_b.admin = format!("listen = \"127.0.0.1:{admin}\"\n");
    let b = Holdfast::start("cluster-b", &setup_b);
    let api: std::net::SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    callers_press_one(
        &a,
        &[
            ("caller_press1.xml", numbers[0]),
            ("caller_press1_info.xml", numbers[1]),
            ("caller_press1.xml", numbers[2]),
        ],
    );
    assert_eq!(
        a.log().matches("callback_committed").count(),
        3,
        "{}",
        a.log()
    );
    a.kill9();

    let trunk_log = b.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 3, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 3, &[]);
    common::register_sipp_agent(&b, "alice", "alice-secret", agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(75)),
        "trunk scenario failed; node b:\n{}",
        b.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(dialled(&trunk_log), numbers, "each once, in order");
    let log = b.log();
    assert!(
        log.contains("took over the callbacks of a node whose lease ran out"),
        "{log}"
    );
    assert_eq!(log.matches("callback restored").count(), 3, "{log}");
    // a's row: dead, with nothing left (polled: a stalled host delays every lease).
    let a_row = || {
        let nodes = common::api::get_json(api, "/api/cluster");
        let a_now = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "a")
            .unwrap()
            .clone();
        (a_now["alive"].clone(), a_now["open_callbacks"].clone())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while a_row() != (false.into(), 0.into()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(a_row(), (false.into(), 0.into()));

    // a comes back under its name: nothing of it is left to dial.
    let back = Holdfast::start("cluster-a2", &node("a", &url, 43_000, trunk_port));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        back.log().matches("callback restored").count(),
        0,
        "{}",
        back.log()
    );
    assert!(back.log().contains("joined the cluster"), "{}", back.log());
}

/// A store that cannot be reached is a clear start-up error naming it, password hidden.
#[test]
fn an_unreachable_store_is_a_clear_error() {
    let dir = common::scratch_dir("cluster-unreachable");
    let config = dir.join("holdfast.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"postgres\"\nurl = \"postgres://holdfast:s3cret@127.0.0.1:1/holdfast\"\n\
         [cluster]\nnode = \"a\"\n[admin]\nlisten = \"\"\n[sip]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("postgres://holdfast:<redacted>@127.0.0.1:1/holdfast (node a)"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Kamailio with the shipped `deploy/kamailio/kamailio.cfg` in front of two nodes: trunk
/// calls are spread over both; an agent that registered through it (Path, RFC 3327) with a
/// Contact nobody answers on is reached at the address its REGISTER came from, through
/// Kamailio; a node killed with `kill -9` is taken out and new calls all reach the other.
#[test]
fn kamailio_spreads_calls_over_the_nodes_and_reaches_an_agent_by_its_path() {
    let pg = Postgres::start();
    let url = pg.database("front");
    let trunk_port = free_udp_port();
    let a = Holdfast::start("front-a", &node("a", &url, 45_000, trunk_port));
    let mut b = Holdfast::start("front-b", &node("b", &url, 46_000, trunk_port));
    let front = common::kamailio::Kamailio::front("front", &[a.sip, b.sip]);

    // alice registers from `phone` (where her SIPp will answer), naming a dead Contact port.
    let phone = free_udp_port();
    let dead = free_udp_port();
    register_through(&front, phone, dead);
    let (home, other) = if a.log().contains("Registered { user: \"alice\" }") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(
        home.log().contains("Registered { user: \"alice\" }"),
        "{}",
        home.log()
    );
    let mut agent = uas("agent.xml", phone, 1, &[]);

    // Four callers through Kamailio: two per node; the first on alice's node reaches her.
    let (_sink, sink_port) = common::rtp_sink();
    let sink_port = sink_port.to_string();
    let out = common::sipp(
        "caller.xml",
        front.addr,
        &[
            "-m", "4", "-l", "4", "-r", "4", "-d", "4000", "-key", "rtp_port", &sink_port,
        ],
    );
    assert!(
        out.status.success(),
        "calls through Kamailio failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        front.log()
    );
    let new_to = |node: &Holdfast| {
        front
            .log()
            .lines()
            .filter(|l| {
                l.contains("HOLDFAST-DISPATCH INVITE")
                    && l.contains("kind=new")
                    && l.contains(&format!("du=sip:{}", node.sip))
            })
            .count()
    };
    assert_eq!(
        (new_to(&a), new_to(&b)),
        (2, 2),
        "round-robin:\n{}",
        front.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(20)),
        "alice was not reached through her Path; home node:\n{}\nKamailio:\n{}",
        home.log(),
        front.log()
    );
    assert!(
        front
            .log()
            .lines()
            .any(|l| l.contains("HOLDFAST-DISPATCH INVITE")
                && l.contains("kind=from-node")
                && l.contains(&format!("du=sip:127.0.0.1:{phone}"))),
        "{}",
        front.log()
    );
    assert!(other.log().contains("Joined"), "{}", other.log());

    // b dies: Kamailio's probes take it out, and every new call reaches a.
    b.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !front.log().contains("HOLDFAST-DS down") {
        assert!(
            std::time::Instant::now() < deadline,
            "b never marked down:\n{}",
            front.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = new_to(&a);
    let out = common::sipp(
        "caller.xml",
        front.addr,
        &[
            "-m", "3", "-l", "3", "-r", "3", "-d", "1000", "-key", "rtp_port", &sink_port,
        ],
    );
    assert!(
        out.status.success(),
        "calls after b died failed:\n{}",
        front.log()
    );
    assert_eq!(new_to(&a), before + 3, "{}", front.log());
}

/// PostgreSQL goes down: callers still get in and hold, a caller who presses 1 is promised
/// nothing (no row, a clear log line); once the server is back the node reconnects and the
/// next press commits.
#[test]
fn with_postgresql_down_callers_hold_and_callbacks_are_refused_until_it_is_back() {
    let pg = Postgres::start();
    let url = pg.database("outage");
    let node_a = Holdfast::start("outage-a", &node("a", &url, 47_000, free_udp_port()));
    pg.halt();
    // No confirmation and no BYE come: the caller keeps holding until SIPp gives up.
    let refused = press_one_within(&node_a, "caller_press1.xml", "+15551250001", "15s");
    assert!(!refused.status.success());
    let log = node_a.log();
    assert!(log.contains("caller joined queue"), "{log}");
    assert!(
        log.contains("callback commit failed; caller keeps holding"),
        "{log}"
    );
    assert_eq!(log.matches("callback_committed").count(), 0, "{log}");

    pg.restart();
    press_one(&node_a, "caller_press1.xml", "+15551250002");
    assert_eq!(
        node_a.log().matches("callback_committed").count(),
        1,
        "{}",
        node_a.log()
    );
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let numbers: Vec<String> = sql
        .query("SELECT number FROM callbacks", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(numbers, ["+15551250002"], "only what was promised");
}

const ONE_LINE: &str = "[[queue]]\nname = \"support\"\nwrapup = 1\ndefault_handle_time = 120\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n\n\
[[vip]]\ncaller = \"+15550009999\"\npriority = \"vip\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

/// A node of the one-line cluster with its admin API; returns it and the API address.
fn line_node(name: &str, url: &str, rtp_base: u16) -> (Holdfast, std::net::SocketAddr) {
    let mut setup = node(name, url, rtp_base, free_udp_port());
    setup.extra = ONE_LINE.into();
    let admin = common::phones::free_tcp_port();
    setup.admin = format!("listen = \"127.0.0.1:{admin}\"\n");
    let holdfast = Holdfast::start(&format!("line-{name}"), &setup);
    (holdfast, format!("127.0.0.1:{admin}").parse().unwrap())
}

/// `support`'s line as a node's API shows it: (caller, position, priority, node).
fn line(api: std::net::SocketAddr) -> Vec<(String, u64, String, String)> {
    let queues = common::api::get_json(api, "/api/queues");
    queues[0]["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["caller"].as_str().unwrap().to_owned(),
                w["position"].as_u64().unwrap(),
                w["priority"].as_str().unwrap().to_owned(),
                w["node"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// One queue across two nodes (docs/cluster.md "One queue, every agent"): callers held on
/// a and b stand in one line, in arrival order with the VIP first, and both nodes' APIs
/// show the same line. alice registers through Kamailio on one node only; she takes the
/// three in that order, each rung by the node holding the caller after its claim, and then
/// talks to a caller held on b with audio both ways through b's relay. Then a is killed
/// with a caller on hold, who leaves b's line within a's lease.
#[test]
fn callers_on_two_nodes_share_one_line_and_an_agent_on_one_serves_the_other() {
    let pg = Postgres::start();
    let url = pg.database("one_line");
    let (mut a, api_a) = line_node("a", &url, 41_000);
    let (b, api_b) = line_node("b", &url, 42_000);
    let (ua_a, ua_b) = (
        common::RawUa::new("127.0.0.1", a.sip),
        common::RawUa::new("127.0.0.1", b.sip),
    );
    let offer = common::pcmu_offer(9);
    let first = ua_a.invite("100", "+15550000001", &offer);
    // Long enough for a's join to reach b's replica (a few ms on a quiet machine).
    std::thread::sleep(Duration::from_millis(300));
    let second = ua_b.invite("100", "+15550000002", &offer);
    std::thread::sleep(Duration::from_millis(30));
    let vip = ua_b.invite("100", "+15550009999", &offer);
    assert_eq!((first.code, second.code, vip.code), (200, 200, 200));
    let expected: Vec<(String, u64, String, String)> = [
        ("+15550009999", 1, "vip", "b"),
        ("+15550000001", 2, "normal", "a"),
        ("+15550000002", 3, "normal", "b"),
    ]
    .iter()
    .map(|&(c, p, l, n)| (c.into(), p, l.into(), n.into()))
    .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while line(api_a) != expected || line(api_b) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "a: {:?}\nb: {:?}\n{}",
            line(api_a),
            line(api_b),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The second caller heard "number 2" on joining b: a's caller counted.
    assert!(
        b.log().lines().any(|l| l.contains("announcement")
            && l.contains("+15550000002")
            && l.contains("\"position\":2")),
        "{}",
        b.log()
    );

    // alice registers through Kamailio (with a Path, on the node her name hashes to) and
    // takes the line in order: b's VIP, a's caller, b's caller.
    let front = common::kamailio::Kamailio::front("line", &[a.sip, b.sip]);
    // She registers from the port her phone answers on: Kamailio's Path names the address
    // the REGISTER came from (RFC 3327 with NAT in mind). The phone starts right after; an
    // INVITE that came first is retransmitted.
    let phone = free_udp_port();
    register_through(&front, phone, phone);
    let mut agent = uas("agent_hangup.xml", phone, 3, &["-d", "800"]);
    assert!(
        wait_exit(&mut agent, Duration::from_secs(30)),
        "alice did not take all three\na:\n{}\nb:\n{}\nKamailio:\n{}",
        a.log(),
        b.log(),
        front.log()
    );
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let claims: Vec<String> = sql
        .query(
            "SELECT node FROM cluster_log WHERE change LIKE '%\"kind\":\"agent\"%' \
             AND change LIKE '%\"state\":\"ringing\"%' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(claims, ["b", "a", "b"], "who rang alice, in order");
    assert!(line(api_a).is_empty() && line(api_b).is_empty());

    // A caller held on b talks to alice (registered on a): its 1 kHz comes back through
    // her echo, so both directions of b's relay carry audio.
    std::thread::sleep(Duration::from_millis(1500));
    let mut agent = uas("agent.xml", phone, 1, &["-rtp_echo"]);
    let (out, heard) = common::one_talking_call(&b);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        b.log()
    );
    assert!(b.log().contains("caller connected to agent"), "{}", b.log());
    assert!(
        heard.len() > 8000 * 3,
        "caller heard {} samples",
        heard.len()
    );
    assert!(
        common::dominant(&heard[1600..], 1000.0, &[300.0, 440.0, 2000.0]),
        "the caller hears its own tone back from alice"
    );
    assert!(wait_exit(&mut agent, Duration::from_secs(10)));

    // a dies with a caller on hold: within its lease (10 s) and a heartbeat (2 s) the caller
    // leaves b's line too; b's own caller stays.
    let held_on_a = ua_a.invite("100", "+15550000003", &offer);
    let held_on_b = ua_b.invite("100", "+15550000004", &offer);
    assert_eq!((held_on_a.code, held_on_b.code), (200, 200));
    let callers = |api| line(api).into_iter().map(|w| w.0).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while callers(api_b).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", line(api_b));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = common::api::http(api_b, "GET", "/metrics", None);
    for node in ["a", "b"] {
        let series = format!("holdfast_node_waiting_callers{{node=\"{node}\"}} 1");
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
    a.kill9();
    let killed = std::time::Instant::now();
    while callers(api_b) != ["+15550000004"] {
        assert!(
            // Lease (10 s) and heartbeat (2 s), with room for a stalled host.
            killed.elapsed() < Duration::from_secs(45),
            "{:?}\n{}",
            line(api_b),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        b.log().contains("cluster node's lease ran out"),
        "{}",
        b.log()
    );
}
