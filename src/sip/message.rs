//! Parsing of SIP datagrams into `rsip` messages, with the validation a UAS owes its peers
//! (RFC 3261 §7, §8.2, §18.3, §20; robustness per RFC 4475).
//!
//! `rsip` is the message model, but on its own it rejects many valid messages (folding,
//! compact names, unknown methods) and accepts many invalid ones. So parsing is three steps:
//!
//! ```text
//! bytes ─▶ framing::split ─▶ validate (start line, singletons, CSeq, Via, Require,
//!          (lines, folding,            Content-Length; RFC 3261 §8.2.1–§8.2.3)
//!           compact names)  ─▶ build rsip::Request / rsip::Response from the checked parts
//! ```
//!
//! A request that fails validation yields a [`ParseError`] whose [`ParseError::reply`] is the
//! stateless error response (400, 416, 420, 501, 505) built from the raw `Via`, `From`, `To`,
//! `Call-ID` and `CSeq` lines (§8.2.6.2), so even a message `rsip` would refuse is answered when
//! it can be routed. Responses and unroutable requests are dropped silently (`reply()` is
//! `None`); the caller counts them. Nothing here resolves names or touches a socket.

use rsip::{Header, Headers, Method, SipMessage, StatusCode, Version};

use super::build;
use super::framing::{self, Frame, RawHeader, is_token};
use super::uri;

pub use super::parse_error::{ParseError, ParseErrorKind};

pub(crate) use super::build::stable_tag;
pub use super::build::{
    contact, encode_request, encode_response, header_parts, new_branch, new_tag, reason_phrase,
    response, stamp_received, via, with_body, with_record_route, with_request_body, with_to_tag,
};
pub use super::fields::{
    call_id, contact_uri, contact_uri_text, cseq, from_tag, from_user, header_user, header_value,
    request_uri_user, to_tag, top_via, top_via_branch,
};

/// Largest message accepted, in bytes. A UDP payload cannot be larger; the check guards future
/// stream transports and keeps the work per message bounded.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Option tags holdfast implements; a `Require` naming anything else gets `420` (§8.2.2.3).
pub const SUPPORTED_OPTION_TAGS: &[&str] = &["timer"];

/// Methods holdfast answers, sent in `Allow` with `405`/`501` (§8.2.1, §20.5).
pub const ALLOWED_METHODS: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY, REGISTER";

/// Parses and validates one datagram.
///
/// `Ok` holds a request that passed the checks of RFC 3261 §8.2.1–§8.2.3 (apart from
/// dialog- and method-level ones, which belong to the caller), or a response with a sane
/// status line and the headers needed to match it to a transaction.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::bare(ParseErrorKind::TooLarge(bytes.len())));
    }
    let frame = framing::split(bytes).map_err(|_| ParseError::bare(ParseErrorKind::Empty))?;
    if frame.start_line.starts_with(b"SIP/") {
        return parse_response(&frame)
            .map(SipMessage::Response)
            .map_err(ParseError::bare);
    }
    parse_request(&frame)
        .map(SipMessage::Request)
        .map_err(|kind| {
            // §17.1.1.3 / §8.2.6: an ACK is never answered, however broken.
            let ack = frame.start_line.split(u8::is_ascii_whitespace).next() == Some(b"ACK");
            if ack {
                ParseError::bare(kind)
            } else {
                ParseError::for_request(kind, &frame.headers)
            }
        })
}

/// Counts and first values of the headers the checks look at, gathered in one pass.
#[derive(Default)]
struct Census<'h> {
    top_via: Option<&'h str>,
    from: usize,
    to: usize,
    call_id: usize,
    cseq: Option<&'h str>,
    cseq_count: usize,
    max_forwards: Option<&'h str>,
    max_forwards_count: usize,
    content_length: Option<&'h str>,
    content_length_conflict: bool,
}

impl<'h> Census<'h> {
    fn take(headers: &'h [RawHeader<'_>]) -> Self {
        let mut c = Census::default();
        for h in headers {
            let value = h.value.as_ref();
            match h.name.as_ref() {
                "Via" => {
                    c.top_via.get_or_insert(value);
                }
                "From" => c.from += 1,
                "To" => c.to += 1,
                "Call-ID" => c.call_id += 1,
                "CSeq" => {
                    c.cseq_count += 1;
                    c.cseq.get_or_insert(value);
                }
                "Max-Forwards" => {
                    c.max_forwards_count += 1;
                    c.max_forwards.get_or_insert(value);
                }
                "Content-Length" => match c.content_length {
                    Some(prev) if prev != value => c.content_length_conflict = true,
                    _ => c.content_length = Some(value),
                },
                _ => {}
            }
        }
        c
    }

    /// Presence and uniqueness of the headers every message needs (§8.1.1, §20).
    fn check_singletons(&self) -> Result<(), ParseErrorKind> {
        use ParseErrorKind::{DuplicateHeader, MissingHeader};
        for (name, count) in [
            ("From", self.from),
            ("To", self.to),
            ("Call-ID", self.call_id),
            ("CSeq", self.cseq_count),
        ] {
            match count {
                0 => return Err(MissingHeader(name)),
                1 => {}
                _ => return Err(DuplicateHeader(name)),
            }
        }
        if self.max_forwards_count > 1 {
            return Err(DuplicateHeader("Max-Forwards"));
        }
        Ok(())
    }

    /// Cuts the body as §18.3 says: `Content-Length` bytes, or the rest of the datagram when
    /// the header is absent (legal over UDP); anything after the declared length is ignored.
    fn body<'a>(&self, rest: &'a [u8]) -> Result<&'a [u8], ParseErrorKind> {
        use ParseErrorKind::BadContentLength;
        if self.content_length_conflict {
            return Err(BadContentLength("conflicting values"));
        }
        let Some(value) = self.content_length else {
            return Ok(rest);
        };
        let len =
            parse_decimal(value, u64::from(u32::MAX)).ok_or(BadContentLength("not a number"))?;
        let len = usize::try_from(len).map_err(|_| BadContentLength("too large"))?;
        rest.get(..len)
            .ok_or(BadContentLength("larger than the datagram"))
    }
}

/// Parses a run of ASCII digits (leading zeros allowed, §7.3.1) no larger than `max`.
fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= max)
}

/// Splits a CSeq value into its number (≤ 2^32-1, §8.1.1.5) and method token.
fn split_cseq(value: &str) -> Option<(u32, &str)> {
    let (num, method) = value.split_once([' ', '\t'])?;
    let num = u32::try_from(parse_decimal(num, u64::from(u32::MAX))?).ok()?;
    let method = method.trim_matches([' ', '\t']);
    is_token(method).then_some((num, method))
}

/// Maps a method token to `rsip`'s enum. Methods are case-sensitive (§7.1), unlike `rsip`'s
/// own parser, so `invite` is an unknown method here.
fn known_method(token: &str) -> Option<Method> {
    Some(match token {
        "ACK" => Method::Ack,
        "BYE" => Method::Bye,
        "CANCEL" => Method::Cancel,
        "INFO" => Method::Info,
        "INVITE" => Method::Invite,
        "MESSAGE" => Method::Message,
        "NOTIFY" => Method::Notify,
        "OPTIONS" => Method::Options,
        "PRACK" => Method::PRack,
        "PUBLISH" => Method::Publish,
        "REFER" => Method::Refer,
        "REGISTER" => Method::Register,
        "SUBSCRIBE" => Method::Subscribe,
        "UPDATE" => Method::Update,
        _ => return None,
    })
}

fn check_version(version: &str, bad: ParseErrorKind) -> Result<(), ParseErrorKind> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if version
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SIP/"))
    {
        Err(ParseErrorKind::UnsupportedVersion(version.to_owned()))
    } else {
        Err(bad)
    }
}

/// The top Via must name `SIP/2.0/<transport>` and a sent-by; its parameters must not be empty
/// (RFC 4475 §3.1.2.1). A missing branch is allowed for RFC 2543 peers (§3.4.1).
fn check_top_via(via: &str) -> Result<(), ParseErrorKind> {
    let bad = ParseErrorKind::BadHeader("Via");
    let (head, params) = match via.split_once(';') {
        Some((head, params)) => (head, Some(params)),
        None => (via, None),
    };
    let sent_by = uri::via_sent_by(head).ok_or(bad.clone())?;
    if sent_by.is_empty() {
        return Err(bad);
    }
    let mut parts = head.splitn(3, '/').map(|p| p.trim_matches([' ', '\t']));
    let (Some(proto), Some(version)) = (parts.next(), parts.next()) else {
        return Err(bad);
    };
    if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return Err(bad);
    }
    for param in params.into_iter().flat_map(|p| p.split(';')) {
        let name = param
            .split('=')
            .next()
            .unwrap_or("")
            .trim_matches([' ', '\t']);
        if !is_token(name) {
            return Err(bad);
        }
    }
    Ok(())
}

/// Option tags in `Require` headers that are not supported; empty when all are.
fn unsupported_requirements(headers: &[RawHeader<'_>]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for h in headers.iter().filter(|h| h.name == "Require") {
        for tag in h.value.split(',').map(|t| t.trim_matches([' ', '\t'])) {
            let known = SUPPORTED_OPTION_TAGS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(tag));
            if !tag.is_empty() && !known && !missing.iter().any(|m| m == tag) {
                missing.push(tag.to_owned());
            }
        }
    }
    missing
}

fn parse_request(frame: &Frame<'_>) -> Result<rsip::Request, ParseErrorKind> {
    use ParseErrorKind as K;
    let line = std::str::from_utf8(frame.start_line).map_err(|_| K::BadRequestLine)?;
    // Extra whitespace between the elements is tolerated (RFC 4475 §3.1.2.9/10 allow it).
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(K::BadRequestLine);
    };
    if !is_token(method) {
        return Err(K::BadRequestLine);
    }
    check_version(version, K::BadRequestLine)?;
    if frame.defect.is_some() {
        return Err(K::BadHeaderSection);
    }
    let census = Census::take(&frame.headers);
    let top_via = census.top_via.ok_or(K::MissingHeader("Via"))?;
    census.check_singletons()?;
    let (_, cseq_method) = census
        .cseq
        .and_then(split_cseq)
        .ok_or(K::BadHeader("CSeq"))?;
    let method_enum = known_method(method).ok_or_else(|| K::UnknownMethod(method.to_owned()))?;
    if cseq_method != method {
        return Err(K::CSeqMethodMismatch);
    }
    if let Some(mf) = census.max_forwards {
        parse_decimal(mf, 255).ok_or(K::BadHeader("Max-Forwards"))?;
    }
    check_top_via(top_via)?;
    let scheme = uri::scheme(target).ok_or(K::BadRequestUri)?;
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return Err(K::UnsupportedUriScheme(scheme.to_owned()));
    }
    let request_uri = uri::parse(target).ok_or(K::BadRequestUri)?;
    // §8.2.2.3: ACK and CANCEL are never rejected for their Require header.
    if !matches!(method_enum, Method::Ack | Method::Cancel) {
        let missing = unsupported_requirements(&frame.headers);
        if !missing.is_empty() {
            return Err(K::UnsupportedExtension(missing));
        }
    }
    let body = census.body(frame.rest)?;
    Ok(rsip::Request {
        method: method_enum,
        uri: request_uri,
        version: Version::V2,
        headers: to_rsip_headers(&frame.headers),
        body: body.to_vec(),
    })
}

fn parse_response(frame: &Frame<'_>) -> Result<rsip::Response, ParseErrorKind> {
    use ParseErrorKind as K;
    let line = String::from_utf8_lossy(frame.start_line);
    let (version, rest) = line.split_once(' ').ok_or(K::BadStatusLine)?;
    check_version(version, K::BadStatusLine)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return Err(K::BadStatusLine);
    }
    let code = parse_decimal(code, 699)
        .filter(|c| *c >= 100)
        .ok_or(K::BadStatusLine)?;
    let code = u16::try_from(code).map_err(|_| K::BadStatusLine)?;
    if frame.defect.is_some() {
        return Err(K::BadHeaderSection);
    }
    let census = Census::take(&frame.headers);
    census.top_via.ok_or(K::MissingHeader("Via"))?;
    census.check_singletons()?;
    // The transaction layer matches a response by branch and CSeq; an unusable CSeq means
    // it can match nothing. An extension method is fine: it simply matches no transaction.
    census
        .cseq
        .and_then(split_cseq)
        .ok_or(K::BadHeader("CSeq"))?;
    let body = census.body(frame.rest)?;
    let status_code = match StatusCode::from(code) {
        StatusCode::Other(code, _) => StatusCode::Other(code, reason.trim().to_owned()),
        known => known,
    };
    Ok(rsip::Response {
        status_code,
        version: Version::V2,
        headers: to_rsip_headers(&frame.headers),
        body: body.to_vec(),
    })
}

fn to_rsip_headers(raw: &[RawHeader<'_>]) -> Headers {
    let headers: Vec<Header> = raw
        .iter()
        .map(|h| build::rsip_header(&h.name, h.value.to_string()))
        .collect();
    headers.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::{HeadersExt, UntypedHeader};
    use std::net::SocketAddr;

    const INVITE: &str = "INVITE sip:+15550100@holdfast.example SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKaaa;rport, SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKbbb\r\n\
        Max-Forwards: 70\r\n\
        f: \"Caller\" <sip:%2B15551234;npdi@trunk.example>;tag=ft1\r\n\
        t: <sip:+15550100@holdfast.example>\r\n\
        i: call-1@trunk\r\n\
        CSeq: 7 INVITE\r\n\
        m: <sip:trunk@192.0.2.10:5062>\r\n\
        Subject: folded\r\n value\r\n\
        P-Asserted-Identity: <tel:+15551234>\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\
        \r\n\
        v=0\r\nextra";

    fn request(text: &str) -> rsip::Request {
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(req)) => req,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn error(text: &str) -> ParseError {
        parse(text.as_bytes()).expect_err("should be rejected")
    }

    fn options(extra: &str) -> String {
        format!(
            "OPTIONS sip:q@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:q@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        )
    }

    #[test]
    fn parses_a_typical_invite_with_compact_forms_folding_and_via_list() {
        let req = request(INVITE);
        assert_eq!(req.method, Method::Invite);
        assert_eq!(call_id(&req), Some("call-1@trunk"));
        assert_eq!(cseq(&req), Some((7, Method::Invite)));
        assert_eq!(top_via_branch(&req), Some("z9hG4bKaaa"));
        assert_eq!(
            req.headers
                .iter()
                .filter(|h| matches!(h, Header::Via(_)))
                .count(),
            2
        );
        assert_eq!(from_tag(&req), Some("ft1"));
        assert_eq!(to_tag(&req), None);
        assert_eq!(from_user(&req).as_deref(), Some("+15551234"));
        assert_eq!(request_uri_user(&req).as_deref(), Some("+15550100"));
        assert_eq!(
            contact_uri(&req).unwrap().to_string(),
            "sip:trunk@192.0.2.10:5062"
        );
        assert_eq!(header_value(&req, "subject"), Some("folded value"));
        assert_eq!(
            header_value(&req, "p-asserted-identity"),
            Some("<tel:+15551234>")
        );
        // rsip's typed accessors see the expanded names.
        assert_eq!(req.call_id_header().unwrap().value(), "call-1@trunk");
        assert_eq!(req.contact_headers().len(), 1);
        // Content-Length cuts the body; the bytes after it are ignored (§18.3).
        assert_eq!(req.body, b"v=0\r");
    }

    #[test]
    fn content_length_rules() {
        let base = options("");
        let base = base.strip_suffix("\r\n").unwrap();
        let with_body = |cl: &str| format!("{base}{cl}\r\n\r\nhello");
        let ok = request(&with_body("Content-Length: 3"));
        assert_eq!(ok.body, b"hel");
        // Absent over UDP: the body runs to the end of the datagram.
        let trimmed = format!("{base}\r\nhello");
        assert_eq!(request(&trimmed).body, b"hello");
        for (cl, why) in [
            ("Content-Length: 9999", "larger than the datagram"),
            ("Content-Length: -1", "not a number"),
            ("Content-Length: 3\r\nl: 4", "conflicting values"),
        ] {
            let err = error(&with_body(cl));
            assert_eq!(err.kind(), &ParseErrorKind::BadContentLength(why), "{cl}");
            assert_eq!(err.status(), Some(400));
        }
        // Two equal values are not a conflict.
        assert_eq!(
            request(&with_body("Content-Length: 3\r\nl: 3")).body,
            b"hel"
        );
    }

    #[test]
    fn a_version_with_a_multibyte_character_is_refused_not_a_panic() {
        // Found by the `controller` fuzz target: slicing the version at byte 4 split a
        // character. The three bytes of `€` straddle byte 4 here.
        let text = "OPTIONS sip:q@h SI\u{20ac}.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                    From: <sip:a@h>;tag=1\r\nTo: <sip:q@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert!(parse(text.as_bytes()).is_err());
        let response = "SI\u{20ac}.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\r\n";
        assert!(parse(response.as_bytes()).is_err());
    }

    #[test]
    fn header_checks_map_to_their_status_codes() {
        let cases: &[(&str, u16)] = &[
            ("Max-Forwards: 256\r\n", 400),
            ("Max-Forwards: 1\r\nMax-Forwards: 2\r\n", 400),
            ("Call-ID: c2\r\n", 400),
            ("Require: 100rel, timer\r\n", 420),
        ];
        for (extra, code) in cases {
            assert_eq!(error(&options(extra)).status(), Some(*code), "{extra}");
        }
        let err = error(&options("Require: 100rel, timer\r\n"));
        let reply = String::from_utf8(err.reply().unwrap()).unwrap();
        // Session timers (RFC 4028) are supported; only 100rel is not.
        assert!(reply.contains("\r\nUnsupported: 100rel\r\n"), "{reply}");
        assert!(parse(options("Require: timer\r\n").as_bytes()).is_ok());
        let cseq = options("").replace("1 OPTIONS", "4294967296 OPTIONS");
        assert_eq!(error(&cseq).kind(), &ParseErrorKind::BadHeader("CSeq"));
        let cseq = options("").replace("1 OPTIONS", "1 INVITE");
        assert_eq!(error(&cseq).kind(), &ParseErrorKind::CSeqMethodMismatch);
    }

    #[test]
    fn start_line_checks() {
        let swap = |from: &str, to: &str| options("").replacen(from, to, 1);
        let err = error(&swap("OPTIONS sip", "FOO sip").replace("1 OPTIONS", "1 FOO"));
        assert_eq!(err.status(), Some(501));
        let reply = String::from_utf8(err.reply().unwrap()).unwrap();
        assert!(reply.starts_with("SIP/2.0 501 Not Implemented"));
        assert!(reply.contains("\r\nAllow: INVITE"));
        // Methods are case-sensitive (§7.1).
        assert_eq!(
            error(&swap("OPTIONS sip", "options sip")).status(),
            Some(501)
        );
        assert_eq!(
            error(&swap("SIP/2.0\r\n", "SIP/3.0\r\n")).status(),
            Some(505)
        );
        assert_eq!(error(&swap("sip:q@h", "mailto:q@h")).status(), Some(416));
        assert_eq!(error(&swap("sip:q@h", "sip:q@h extra")).status(), Some(400));
        // tel: and IPv6 Request-URIs are valid even though rsip alone refuses them.
        assert!(parse(swap("sip:q@h", "tel:+15550100").as_bytes()).is_ok());
        assert!(parse(swap("sip:q@h", "sip:q@[2001:db8::2]:5070").as_bytes()).is_ok());
    }

    #[test]
    fn no_reply_without_via_or_for_responses_and_noise() {
        let no_via = options("").replace("Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n", "");
        let err = error(&no_via);
        assert_eq!(err.kind(), &ParseErrorKind::MissingHeader("Via"));
        assert_eq!(err.reply(), None);
        assert_eq!(error("\r\n\r\n").reply(), None);
        let bad_ack = options("Max-Forwards: x\r\n").replace("OPTIONS", "ACK");
        assert_eq!(
            error(&bad_ack).kind(),
            &ParseErrorKind::BadHeader("Max-Forwards")
        );
        assert_eq!(error(&bad_ack).reply(), None);
        assert_eq!(error("SIP/2.0 4294967301 Huge\r\n\r\n").reply(), None);
        let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
        assert_eq!(
            parse(&big).unwrap_err().kind(),
            &ParseErrorKind::TooLarge(big.len())
        );
    }

    #[test]
    fn parses_stray_responses() {
        let text = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let Ok(SipMessage::Response(resp)) = parse(text.as_bytes()) else {
            panic!("response expected")
        };
        assert_eq!(resp.status_code.code(), 180);
        assert_eq!(to_tag(&resp), Some("2"));
        let odd = text.replace("180 Ringing", "299 Whatever");
        let Ok(SipMessage::Response(resp)) = parse(odd.as_bytes()) else {
            panic!("response expected")
        };
        assert_eq!(resp.status_code, StatusCode::Other(299, "Whatever".into()));
        for bad in [
            "SIP/2.0 99 Low",
            "SIP/2.0 700 High",
            "SIP/2.0 2000 Long",
            "SIP/2.0 abc x",
        ] {
            assert!(parse(text.replace("SIP/2.0 180 Ringing", bad).as_bytes()).is_err());
        }
    }

    #[test]
    fn error_reply_copies_routing_headers_and_stamps_the_source() {
        let text = options("Max-Forwards: 999\r\n").replace(
            "192.0.2.1;branch=z9hG4bK1",
            "192.0.2.1;rport;branch=z9hG4bK1",
        );
        let err = error(&text);
        let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let reply = String::from_utf8(err.reply_to(src).unwrap()).unwrap();
        assert!(reply.starts_with("SIP/2.0 400 Bad Request (malformed Max-Forwards header)\r\n"));
        assert!(reply.contains(
            "\r\nVia: SIP/2.0/UDP 192.0.2.1;rport=40000;branch=z9hG4bK1;received=203.0.113.9\r\n"
        ));
        assert!(reply.contains("\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"));
        // Same request, same stateless tag.
        assert_eq!(err.reply(), error(&text).reply());
        assert!(reply.contains("\r\nTo: <sip:q@h>;tag="));
    }
}
