//! Stream framing (RFC 3261 §18.3): partial reads, several messages in one read, a body split
//! over reads, keep-alives, and the errors that end a stream.

use super::*;

const OPTIONS: &str = "OPTIONS sip:q@h SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:q@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

fn message(body: &str) -> String {
    format!("{OPTIONS}Content-Length: {}\r\n\r\n{body}", body.len())
}

fn items(framer: &mut StreamFramer) -> Vec<StreamItem> {
    std::iter::from_fn(|| framer.next_item())
        .map(|item| item.expect("no error"))
        .collect()
}

#[test]
fn a_message_read_a_byte_at_a_time_comes_out_once_whole() {
    let text = message("v=0\r\n");
    let mut f = StreamFramer::default();
    for (i, byte) in text.as_bytes().iter().enumerate() {
        f.push(&[*byte]);
        let got = items(&mut f);
        if i + 1 < text.len() {
            assert!(got.is_empty(), "nothing before the last byte ({i})");
            assert!(f.in_message());
        } else {
            assert_eq!(got, vec![StreamItem::Message(Bytes::from(text.clone()))]);
        }
    }
    assert!(!f.in_message());
}

#[test]
fn two_messages_and_a_ping_in_one_read_and_a_body_split_over_reads() {
    let (a, b) = (message(""), message("hello"));
    let mut f = StreamFramer::default();
    f.push(format!("{a}\r\n\r\n{b}{}", &b[..b.len() - 3]).as_bytes());
    assert_eq!(
        items(&mut f),
        vec![
            StreamItem::Message(Bytes::from(a)),
            StreamItem::Ping,
            StreamItem::Message(Bytes::from(b.clone())),
        ]
    );
    f.push(&b.as_bytes()[b.len() - 3..]);
    assert_eq!(items(&mut f), vec![StreamItem::Message(Bytes::from(b))]);
    // A lone CRLF (a pong, or a CRLF before a message) is skipped; half a ping waits.
    f.push(b"\r\n");
    assert!(items(&mut f).is_empty());
    f.push(b"\r\n");
    assert_eq!(items(&mut f), vec![StreamItem::Ping]);
    f.push(b"\r\nOPT");
    assert!(items(&mut f).is_empty());
    assert_eq!(f.buffered(), 3, "the CRLF before a message is gone");
}

#[test]
fn the_compact_form_and_any_case_declare_the_length() {
    let mut f = StreamFramer::default();
    let text = format!("{OPTIONS}l: 2\r\n\r\nok");
    f.push(text.as_bytes());
    assert_eq!(items(&mut f), vec![StreamItem::Message(Bytes::from(text))]);
    let text = format!("{OPTIONS}content-LENGTH :  0\r\n\r\n");
    f.push(text.as_bytes());
    assert_eq!(items(&mut f), vec![StreamItem::Message(Bytes::from(text))]);
}

fn error_of(text: &[u8]) -> (StreamError, Bytes) {
    let mut f = StreamFramer::default();
    f.push(text);
    let error = f.next_item().expect("an item").expect_err("an error");
    // The stream is over: nothing more is read from it.
    f.push(message("").as_bytes());
    assert_eq!(f.next_item(), None);
    assert_eq!(f.buffered(), 0);
    error
}

#[test]
fn a_missing_or_bad_length_is_a_400_and_ends_the_stream() {
    let (error, header) = error_of(format!("{OPTIONS}\r\n").as_bytes());
    assert_eq!(error, StreamError::NoContentLength);
    let reply = refusal(error, &header).expect("the request is named well enough");
    let reply = std::str::from_utf8(&reply).unwrap();
    assert!(
        reply.starts_with("SIP/2.0 400 Missing Content-Length\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("Call-ID: c1\r\n") && reply.contains("branch=z9hG4bK1"),
        "{reply}"
    );

    let (error, header) = error_of(format!("{OPTIONS}Content-Length: ten\r\n\r\n").as_bytes());
    assert_eq!(error, StreamError::BadContentLength);
    assert!(refusal(error, &header).is_some());
    let disagree = format!("{OPTIONS}Content-Length: 1\r\nl: 2\r\n\r\nab");
    assert_eq!(
        error_of(disagree.as_bytes()).0,
        StreamError::BadContentLength
    );
    // Garbage names nobody: no reply, the connection is just closed.
    let (error, header) = error_of(b"hello\r\n\r\n");
    assert_eq!(error, StreamError::NoContentLength);
    assert_eq!(refusal(error, &header), None);
}

#[test]
fn ten_megabytes_declared_or_an_endless_header_are_refused_before_they_are_read() {
    let (error, header) = error_of(format!("{OPTIONS}Content-Length: 10485760\r\n\r\n").as_bytes());
    assert_eq!(error, StreamError::TooLarge(10 * 1024 * 1024));
    let reply = refusal(error, &header).expect("a 400");
    assert!(reply.starts_with(b"SIP/2.0 400 Message Too Large"));

    let mut f = StreamFramer::default();
    let line =
        b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    f.push(OPTIONS.as_bytes());
    let mut pushed = OPTIONS.len();
    let error = loop {
        if let Some(item) = f.next_item() {
            break item.expect_err("no message ever ends");
        }
        f.push(line);
        pushed += line.len();
        assert!(
            pushed < MAX_HEADER + 2 * line.len(),
            "stopped within the limit"
        );
    };
    assert_eq!(error.0, StreamError::HeaderTooLong);
    assert_eq!(f.buffered(), 0, "the bytes are let go");
}
