//! Graceful stop end to end (docs/behaviour.md §8, §9, §12 "SIGTERM/SIGINT: graceful stop"): callers on
//! hold get a BYE, holdfast waits for the answers, writes every call event to the store and
//! exits 0 within a few seconds; `--log-format json` gives one JSON object per line.

mod common;

use std::time::{Duration, Instant};

use common::{Holdfast, RawUa, Setup, header, pcmu_offer};

/// Answers BYEs with `200 OK` for `wait`; returns the Call-IDs that were hung up.
fn answer_byes(ua: &RawUa, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut byes = Vec::new();
    let mut buf = [0u8; 65_536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        ua.socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok((len, from)) = ua.socket.recv_from(&mut buf) else {
            break;
        };
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        if !text.starts_with("BYE ") {
            continue;
        }
        let field = |name| header(&text, name).unwrap_or_default();
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
             Content-Length: 0\r\n\r\n",
            field("Via"),
            field("From"),
            field("To"),
            field("Call-ID"),
            field("CSeq")
        );
        ua.socket.send_to(ok.as_bytes(), from).unwrap();
        byes.push(field("Call-ID").to_string());
    }
    byes
}

#[test]
fn sigterm_hangs_up_held_callers_flushes_events_and_exits_zero() {
    let mut setup = Setup::new(52_000);
    setup.args = vec!["--log-format".into(), "json".into()];
    let mut holdfast = Holdfast::start("sigterm", &setup);
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let calls: Vec<_> = (0..3)
        .map(|i| ua.invite("100", &format!("+1555000000{i}"), &pcmu_offer(9)))
        .collect();
    assert!(calls.iter().all(|c| c.code == 200));
    // One caller gives up before the stop: an abandon event.
    assert_eq!(ua.request(&calls[0], "BYE", 2, "").map(|r| r.0), Some(200));

    let stopped = Instant::now();
    let pid = std::thread::scope(|scope| {
        let byes = scope.spawn(|| answer_byes(&ua, Duration::from_secs(3)));
        let status = holdfast.terminate();
        let elapsed = stopped.elapsed();
        (status, elapsed, byes.join().unwrap())
    });
    let (status, elapsed, mut byes) = pid;
    eprintln!("SIGTERM to exit: {elapsed:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit code; log:\n{}",
        holdfast.log()
    );
    // It waits for the BYE answers, not for 32 s of Timer J.
    assert!(elapsed < Duration::from_secs(3), "stopped in {elapsed:?}");
    byes.sort();
    let mut held: Vec<String> = calls[1..].iter().map(|c| c.call_id.clone()).collect();
    held.sort();
    assert_eq!(byes, held, "every held caller got a BYE");

    // Every log line is a JSON object; call events carry their facts as fields.
    let log = holdfast.log();
    let mut joins = 0;
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["fields"]["event"] == "join" {
            joins += 1;
            assert!(
                value["fields"]["call_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("raw-")
            );
            assert_eq!(value["fields"]["queue"], "support");
        }
    }
    assert_eq!(joins, 3, "{log}");

    // The store has every event, written before exit.
    let db = rusqlite::Connection::open(holdfast.dir.join("data/holdfast.db")).unwrap();
    let count = |event: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM call_events WHERE event = ?1",
            [event],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(count("join"), 3);
    assert_eq!(count("abandon"), 1);
    let (caller, wait_ms): (String, Option<i64>) = db
        .query_row(
            "SELECT caller, wait_ms FROM call_events WHERE event = 'abandon'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(caller, "+15550000000");
    assert!(wait_ms.is_some());
}

/// The stop reaches every task: the admin listener closes its connections (an open event
/// stream ends) and the process exits within the bound, not when the client gives up.
#[test]
fn sigterm_ends_open_event_streams_and_the_admin_listener() {
    use std::io::{Read, Write};
    let port = common::free_udp_port();
    let mut setup = Setup::new(46_000);
    setup.admin = format!("listen = \"127.0.0.1:{port}\"\n");
    let mut holdfast = Holdfast::start("shutdown-admin", &setup);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin listens");
    stream
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("the stream starts");
    assert!(String::from_utf8_lossy(&first[..n]).contains("200 OK"));
    let started = Instant::now();
    let status = holdfast.terminate();
    assert!(status.success(), "{}", holdfast.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !holdfast
            .log()
            .contains("admin listener did not stop in time"),
        "the listener's graceful shutdown finished with the stream open:\n{}",
        holdfast.log()
    );
    // The server closed the stream: reading reaches its end instead of timing out.
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(
        read.is_ok(),
        "the event stream was closed by holdfast: {read:?}"
    );
}
