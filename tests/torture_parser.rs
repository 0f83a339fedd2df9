//! RFC 4475 torture corpus against `sip::message::parse` (see tests/data/sip-torture/README.md).
//!
//! At the parser level an expectation is met as follows:
//! - a status code `4xx/5xx` that the parser owns (400, 416, 420, 501, 505): the error's reply
//!   carries one of the allowed codes;
//! - `accept`: the message parses (the caller then answers it normally);
//! - `none`: no reply bytes (a response, or noise);
//! - codes the parser does not own (404, 405, 406, 415, 401, 481, 483, 200 — decided by the
//!   call controller from method, dialog or body): the message parses, or the parser's reply is
//!   `501`/`405`. Rows 101–105 (pjsua's expectations 481/405/200) fall under this rule.

use std::net::SocketAddr;

use holdfast::sip::message::{self, ParseError};

const PARSER_CODES: &[&str] = &["400", "416", "420", "501", "505"];

struct Row {
    file: String,
    expected: Vec<String>,
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip-torture")
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Row {
                file: cols[0].to_owned(),
                expected: cols[3].split('|').map(str::to_owned).collect(),
            }
        })
        .collect()
}

fn load(file: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(file)).expect("corpus file")
}

/// Whether `outcome` satisfies one expectation token.
fn satisfies(token: &str, outcome: &Result<rsip::SipMessage, ParseError>) -> bool {
    let reply_code = outcome.as_ref().err().and_then(ParseError::status);
    match token {
        "accept" => matches!(outcome, Ok(rsip::SipMessage::Request(_))),
        "none" => match outcome {
            Ok(msg) => msg.is_response(),
            Err(e) => e.reply().is_none(),
        },
        code if PARSER_CODES.contains(&code) => {
            reply_code.map(|c| c.to_string()).as_deref() == Some(code)
        }
        _ => {
            matches!(outcome, Ok(rsip::SipMessage::Request(_)))
                || matches!(reply_code, Some(501 | 405))
        }
    }
}

#[test]
fn corpus_outcomes_match_the_manifest() {
    let rows = manifest();
    assert_eq!(rows.len(), 54, "manifest rows");
    let mut failures = Vec::new();
    for row in &rows {
        let outcome = message::parse(&load(&row.file));
        if !row.expected.iter().any(|t| satisfies(t, &outcome)) {
            let got = match &outcome {
                Ok(m) if m.is_request() => "accepted request".to_owned(),
                Ok(_) => "response".to_owned(),
                Err(e) => format!("{e} (reply {:?})", e.status()),
            };
            failures.push(format!(
                "{}: expected {:?}, got {got}",
                row.file, row.expected
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Header lines of a message as (name, value), read without the parser under test.
fn raw_headers(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn raw_first(headers: &[(String, String)], names: &[&str]) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| names.iter().any(|x| n.eq_ignore_ascii_case(x)))
        .map(|(_, v)| v.clone())
}

#[test]
fn error_replies_reparse_and_match_the_request() {
    let src: SocketAddr = "127.0.0.1:5999".parse().unwrap();
    let mut replies = 0;
    for row in manifest() {
        let bytes = load(&row.file);
        let Err(err) = message::parse(&bytes) else {
            continue;
        };
        let Some(reply) = err.reply_to(src) else {
            continue;
        };
        replies += 1;
        let code = err.status().expect("a reply has a status");
        assert!(
            reply.starts_with(format!("SIP/2.0 {code} ").as_bytes()),
            "{}",
            row.file
        );
        assert!(
            reply.ends_with(b"Content-Length: 0\r\n\r\n"),
            "{}",
            row.file
        );
        // The identifying headers are copied from the request (RFC 3261 §8.2.6.2).
        let req_headers = raw_headers(&bytes);
        let reply_headers = raw_headers(&reply);
        for name in [&["Call-ID", "i"][..], &["CSeq"], &["From", "f"]] {
            assert_eq!(
                raw_first(&reply_headers, name),
                raw_first(&req_headers, name),
                "{}: {name:?}",
                row.file
            );
        }
        // Every reply is a valid response the client can match: same top branch, Call-ID and
        // CSeq, and a To tag (a request whose headers cannot make one gets no reply).
        let resp = match message::parse(&reply) {
            Ok(rsip::SipMessage::Response(r)) => r,
            other => panic!(
                "{}: reply does not parse as a response: {other:?}\n{}",
                row.file,
                String::from_utf8_lossy(&reply)
            ),
        };
        assert_eq!(resp.status_code.code(), code, "{}", row.file);
        assert!(message::to_tag(&resp).is_some(), "{}: no To tag", row.file);
        let req_branch = raw_first(&req_headers, &["Via", "v"]).and_then(|v| {
            v.split([';', ','])
                .find_map(|p| p.trim().strip_prefix("branch=").map(str::to_owned))
        });
        assert_eq!(
            message::top_via_branch(&resp).map(str::to_owned),
            req_branch,
            "{}",
            row.file
        );
        assert_eq!(
            message::call_id(&resp).map(str::to_owned),
            raw_first(&req_headers, &["Call-ID", "i"]),
            "{}",
            row.file
        );
    }
    assert!(
        replies >= 10,
        "only {replies} corpus messages produced a reply"
    );
}

#[test]
fn valid_corpus_requests_survive_encode_and_reparse() {
    for row in manifest() {
        let Ok(rsip::SipMessage::Request(req)) = message::parse(&load(&row.file)) else {
            continue;
        };
        let wire = message::encode_request(&req);
        let again = message::parse(&wire)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", row.file, String::from_utf8_lossy(&wire)));
        let rsip::SipMessage::Request(again) = again else {
            panic!("{}: became a response", row.file)
        };
        assert_eq!(again.method, req.method, "{}", row.file);
        assert_eq!(again.body, req.body, "{}", row.file);
        assert_eq!(
            message::call_id(&again),
            message::call_id(&req),
            "{}",
            row.file
        );
        assert_eq!(
            message::top_via_branch(&again),
            message::top_via_branch(&req),
            "{}",
            row.file
        );
    }
}

/// Deterministic xorshift so the fuzz corpus is the same on every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds: Vec<Vec<u8>> = manifest().iter().map(|r| load(&r.file)).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let interesting: &[u8] = b"\r\n:;,<>\"\\ \t%@=/0123456789-\x00\xff";
    for _ in 0..4000 {
        let mut msg = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(8) {
            if msg.is_empty() {
                break;
            }
            let at = rng.below(msg.len());
            match rng.below(5) {
                0 => msg[at] = interesting[rng.below(interesting.len())],
                1 => msg[at] = u8::try_from(rng.next() & 0xff).unwrap(),
                2 => {
                    msg.remove(at);
                }
                3 => msg.insert(at, interesting[rng.below(interesting.len())]),
                _ => msg.truncate(at),
            }
        }
        let src: SocketAddr = "[::1]:5060".parse().unwrap();
        match message::parse(&msg) {
            Ok(rsip::SipMessage::Request(mut req)) => {
                message::stamp_received(&mut req, src);
                let resp = message::with_to_tag(message::response(&req, 200, None), "t");
                let _ = message::encode_response(&resp);
                let _ = message::from_user(&req);
                let _ = message::contact_uri(&req);
                let _ = message::request_uri_user(&req);
            }
            Ok(rsip::SipMessage::Response(resp)) => {
                let _ = message::cseq(&resp);
            }
            Err(e) => {
                // A reply is always a response holdfast itself can read back.
                if let Some(reply) = e.reply_to(src) {
                    assert!(reply.starts_with(b"SIP/2.0 "));
                    assert!(reply.ends_with(b"\r\n\r\n"));
                    assert!(
                        matches!(message::parse(&reply), Ok(rsip::SipMessage::Response(_))),
                        "{}",
                        String::from_utf8_lossy(&reply)
                    );
                }
            }
        }
    }
}
