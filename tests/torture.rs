//! The RFC 4475 torture corpus sent over UDP to a running holdfast, inside a network
//! namespace that has nothing but loopback, so that no reply or RTP stream triggered by the
//! corpus (which names `example.com` and `192.0.2.x`) can leave the machine.
//!
//! `tests/data/sip-torture/manifest.tsv` gives the expected reply of each message.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::{Holdfast, Setup, options, status_code, torture_dir};

const INNER_ENV: &str = "HOLDFAST_TORTURE_IN_NETNS";

/// Creates a namespace with only `lo`, and re-runs [`torture_corpus_inner`] inside it.
#[test]
fn torture_corpus_in_network_namespace() {
    let name = format!("holdfast-torture-{}", std::process::id());
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(
        ip(&["netns", "add", &name]),
        "`ip netns add` failed: this test needs root and iproute2 (scripts/test.sh installs it)"
    );
    let ok = ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
    let output = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "torture_corpus_inner",
            "--ignored",
            "--nocapture",
        ])
        .env(INNER_ENV, "1")
        .output();
    ip(&["netns", "del", &name]);
    assert!(ok, "could not bring lo up in the namespace");
    let output = output.expect("run the inner test in the namespace");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "inner torture test failed:\n{text}"
    );
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
}

/// What a reply must look like for one manifest row.
fn acceptable(expected: &str, file: &str, got: Option<u16>) -> bool {
    // 101–105 are pjsua's variants of 001–005: the column holds what pjsua answers. A
    // response that the RFC's own row allows for the original message is right too (for
    // example 501 for an unknown method, RFC 3261 §8.2.1, where pjsua says 405).
    let rfc_original = match file.get(..3) {
        Some("101") => Some("accept"),
        Some("102") => Some("501|404"),
        Some("103") => Some("accept"),
        Some("104") => Some("accept"),
        Some("105") => Some("501"),
        _ => None,
    };
    let allows = |spec: &str| {
        spec.split('|').any(|alt| match (alt, got) {
            ("none", None) => true,
            ("accept", Some(code)) => code != 400,
            (code, Some(got)) => code.parse::<u16>() == Ok(got),
            _ => false,
        })
    };
    allows(expected) || rfc_original.is_some_and(allows)
}

/// Sends every message of the corpus and checks the reply against the manifest. Runs only
/// inside the namespace made by [`torture_corpus_in_network_namespace`].
#[test]
#[ignore = "run by torture_corpus_in_network_namespace inside a loopback-only namespace"]
fn torture_corpus_inner() {
    assert_eq!(
        std::env::var(INNER_ENV).as_deref(),
        Ok("1"),
        "only meaningful inside the namespace"
    );
    let mut holdfast = Holdfast::start("torture", &Setup::new(37_000));
    let manifest = std::fs::read_to_string(torture_dir().join("manifest.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expected) = (cols[0], cols[3]);
        let datagram = std::fs::read(torture_dir().join(file)).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(&datagram, holdfast.sip).unwrap();
        let wait = if expected.contains("none") { 400 } else { 1500 };
        let got = first_final(&socket, Duration::from_millis(wait));
        count += 1;
        if !acceptable(expected, file, got) {
            failures.push(format!("{file}: expected {expected}, got {got:?}"));
        }
    }
    assert_eq!(count, 54, "the whole corpus was sent");
    // The same corpus over TCP, one connection per message (framing per message, RFC 3261
    // §18.3): a message whose Content-Length frames it is answered as over UDP; one that a
    // stream cannot frame (none, or one that disagrees with the body) gets 400 or nothing
    // and its connection is closed; none of them stalls holdfast.
    let mut tcp_failures = Vec::new();
    let (mut framed_count, mut answered) = (0, 0);
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expected) = (cols[0], cols[3]);
        let message = std::fs::read(torture_dir().join(file)).unwrap();
        let mut conn = common::streams::Conn::tcp(holdfast.sip);
        conn.send(&message).unwrap();
        let wait = if expected.contains("none") { 400 } else { 1500 };
        let got = conn
            .final_response(Duration::from_millis(wait))
            .and_then(|text| status_code(text.as_bytes()));
        let framed = frames_itself(&message);
        framed_count += usize::from(framed);
        answered += usize::from(framed && got.is_some());
        let fine = if framed {
            acceptable(expected, file, got)
        } else {
            matches!(got, None | Some(400)) || acceptable(expected, file, got)
        };
        if !fine {
            tcp_failures.push(format!("{file} over TCP: expected {expected}, got {got:?}"));
        }
    }
    assert!(
        tcp_failures.is_empty(),
        "mismatches:\n{}",
        tcp_failures.join("\n")
    );
    assert!(
        framed_count >= 30 && answered >= 20,
        "most of the corpus frames itself and is answered over TCP: {framed_count} framed, {answered} answered"
    );
    assert!(holdfast.alive(), "holdfast died:\n{}", holdfast.log());
    assert_eq!(
        options(holdfast.sip, Duration::from_secs(2)),
        Some(200),
        "holdfast still answers after the corpus"
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// The first final response, or `None` if only provisional replies or nothing came.
fn first_final(socket: &UdpSocket, wait: Duration) -> Option<u16> {
    let deadline = std::time::Instant::now() + wait;
    let mut buf = [0u8; 65_536];
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        match status_code(&buf[..len]) {
            Some(code) if code >= 200 => return Some(code),
            _ => continue,
        }
    }
}

/// Whether `message` declares exactly the body it carries (so a stream can frame it).
fn frames_itself(message: &[u8]) -> bool {
    let Some(end) = message.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&message[..end + 2]).to_string();
    let declared = head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    declared == Some(message.len() - end - 4)
}
