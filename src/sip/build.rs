//! Building and serialising SIP messages on `rsip` types: UAS responses (RFC 3261 §8.2.6),
//! `received`/`rport` stamping (§18.2.1, RFC 3581 §4), tags and branches (§19.3, §8.1.1.7),
//! and wire encoding.
//!
//! Encode with [`encode_request`]/[`encode_response`], not `to_string()`: `rsip` prints known
//! status codes with its enum names as reason phrase ("486 BusyHere") and passes bodies
//! through a lossy UTF-8 conversion.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use rand::Rng;
use rsip::prelude::UntypedHeader;
use rsip::{Header, Headers, Request, Response, StatusCode};

use super::uri;

/// Declares the mapping between canonical header names and `rsip::Header` variants once, for
/// both directions.
macro_rules! header_table {
    ($($name:literal => $variant:ident),* $(,)?) => {
        /// Wraps a value in the `rsip::Header` variant for a canonical `name`; unknown names
        /// become `Header::Other`.
        pub(crate) fn rsip_header(name: &str, value: String) -> Header {
            match name {
                $($name => Header::$variant(rsip::headers::$variant::new(value)),)*
                _ => Header::Other(name.to_owned(), value),
            }
        }

        /// The canonical name and the value of any `rsip::Header`.
        pub fn header_parts(header: &Header) -> (&str, &str) {
            match header {
                $(Header::$variant(h) => ($name, h.value()),)*
                Header::Other(name, value) => (name, value),
            }
        }
    };
}

header_table! {
    "Accept" => Accept, "Accept-Encoding" => AcceptEncoding,
    "Accept-Language" => AcceptLanguage, "Alert-Info" => AlertInfo, "Allow" => Allow,
    "Authentication-Info" => AuthenticationInfo, "Authorization" => Authorization,
    "CSeq" => CSeq, "Call-ID" => CallId, "Call-Info" => CallInfo, "Contact" => Contact,
    "Content-Disposition" => ContentDisposition, "Content-Encoding" => ContentEncoding,
    "Content-Language" => ContentLanguage, "Content-Length" => ContentLength,
    "Content-Type" => ContentType, "Date" => Date, "Error-Info" => ErrorInfo,
    "Event" => Event, "Expires" => Expires, "From" => From, "In-Reply-To" => InReplyTo,
    "Max-Forwards" => MaxForwards, "MIME-Version" => MimeVersion,
    "Min-Expires" => MinExpires, "Organization" => Organization, "Priority" => Priority,
    "Proxy-Authenticate" => ProxyAuthenticate, "Proxy-Authorization" => ProxyAuthorization,
    "Proxy-Require" => ProxyRequire, "Record-Route" => RecordRoute, "Reply-To" => ReplyTo,
    "Require" => Require, "Retry-After" => RetryAfter, "Route" => Route, "Server" => Server,
    "Subject" => Subject, "Subscription-State" => SubscriptionState,
    "Supported" => Supported, "Timestamp" => Timestamp, "To" => To,
    "Unsupported" => Unsupported, "User-Agent" => UserAgent, "Via" => Via,
    "Warning" => Warning, "WWW-Authenticate" => WwwAuthenticate,
}

/// The RFC 3261 §21 reason phrase of a status code ("" for codes it does not name).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "",
    }
}

/// A fresh random tag for `From`/`To` (§19.3: at least 32 bits of randomness; this has 64).
pub fn new_tag() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// A fresh RFC 3261 branch: the magic cookie `z9hG4bK` plus 64 random bits (§8.1.1.7).
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::rng().random::<u64>())
}

/// A tag derived from `parts` (FNV-1a), so stateless replies to a retransmitted request carry
/// the same tag without remembering anything.
pub(crate) fn stable_tag(parts: &[Option<&str>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.unwrap_or("").bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Adds `received`/`rport` to one Via value for a request that arrived from `src`.
///
/// `received` is added when the sent-by host is not `src`'s address (§18.2.1), and always when
/// the Via carries `rport` (RFC 3581 §4); an empty `rport` is filled with the source port.
pub(crate) fn stamp_via_value(via: &str, src: SocketAddr) -> Cow<'_, str> {
    let (head, params) = via.split_at(via.find(';').unwrap_or(via.len()));
    let Some(sent_by) = uri::via_sent_by(head) else {
        return Cow::Borrowed(via);
    };
    let src_ip = src.ip().to_canonical();
    let host = uri::split_host_port(sent_by).map_or("", |(host, _)| host);
    let host_ip = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
    let rport = uri::header_param(via, "rport");
    let add_received = rport.is_some() || host_ip != Some(src_ip);
    if !add_received && rport != Some("") {
        return Cow::Borrowed(via);
    }
    let mut out = String::with_capacity(via.len() + 40);
    out.push_str(head);
    for param in params.split(';').skip(1) {
        let name = param.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        if name.eq_ignore_ascii_case("rport") && rport == Some("") {
            out.push_str(&format!("rport={}", src.port()));
        } else {
            out.push_str(param);
        }
    }
    if add_received {
        out.push_str(&format!(";received={src_ip}"));
    }
    Cow::Owned(out)
}

/// Stamps the top Via of a received request with `received`/`rport` for its source address
/// (RFC 3261 §18.2.1, RFC 3581 §4), so responses built from it carry them. The driver always
/// sends responses to `src`; nothing here resolves a name.
pub fn stamp_received(req: &mut Request, src: SocketAddr) {
    let top = req.headers.iter_mut().find_map(|h| match h {
        Header::Via(via) => Some(via),
        _ => None,
    });
    if let Some(via) = top
        && let Cow::Owned(stamped) = stamp_via_value(via.value(), src)
    {
        via.replace(stamped);
    }
}

/// A response to `req` per §8.2.6.2: every Via in order, From, To, Call-ID and CSeq copied,
/// `Content-Length: 0`. With `reason`, the status is `StatusCode::Other(code, reason)`, so
/// compare codes with `status_code.code()`, not with enum variants.
///
/// The To tag is not added here: use [`with_to_tag`] (every response but 100 needs one).
pub fn response(req: &Request, code: u16, reason: Option<&str>) -> Response {
    let status_code = match reason {
        Some(reason) => StatusCode::Other(code, reason.to_owned()),
        None => StatusCode::from(code),
    };
    let mut headers = Vec::with_capacity(8);
    headers.extend(
        req.headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .cloned(),
    );
    for wanted in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(h) = req.headers.iter().find(|h| header_parts(h).0 == wanted) {
            headers.push(h.clone());
        }
    }
    headers.push(rsip_header("Content-Length", "0".into()));
    Response {
        status_code,
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Adds `;tag=<tag>` to the To header unless it already has a tag (§8.2.6.2, §12.1.1).
pub fn with_to_tag(mut resp: Response, tag: &str) -> Response {
    for h in resp.headers.iter_mut() {
        if let Header::To(to) = h {
            if uri::header_param(to.value(), "tag").is_none() {
                let tagged = format!("{};tag={tag}", to.value());
                to.replace(tagged);
            }
            break;
        }
    }
    resp
}

fn set_body(headers: &mut Headers, body: &mut Vec<u8>, content_type: &str, new_body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentType(_) | Header::ContentLength(_)));
    headers.push(rsip_header("Content-Type", content_type.to_owned()));
    headers.push(rsip_header("Content-Length", new_body.len().to_string()));
    *body = new_body;
}

/// The `Via` of a request holdfast sends from `sent_by` (`host:port`) with a fresh
/// `branch`, asking for `rport` (RFC 3261 §8.1.1.7, RFC 3581 §3).
pub fn via(sent_by: &str, branch: &str) -> Header {
    Header::Via(rsip::headers::Via::new(format!(
        "SIP/2.0/UDP {sent_by};branch={branch};rport"
    )))
}

/// holdfast's own `Contact` value at `sent_by` (RFC 3261 §8.1.1.8): where in-dialog
/// requests reach it.
pub fn contact(sent_by: &str) -> String {
    format!("<sip:holdfast@{sent_by}>")
}

/// Copies the request's Record-Route values, in order, into a dialog-creating response
/// (`18x`/`2xx` to an initial INVITE, RFC 3261 §12.1.1): the caller's proxies then stay on
/// the path of its ACK, re-INVITEs and BYE.
pub fn with_record_route(mut resp: Response, req: &Request) -> Response {
    let routes: Vec<Header> = req
        .headers
        .iter()
        .filter(|h| matches!(h, Header::RecordRoute(_)))
        .cloned()
        .collect();
    if !routes.is_empty() {
        let mut headers: Vec<Header> = resp.headers.iter().cloned().collect();
        let at = headers
            .iter()
            .position(|h| matches!(h, Header::ContentLength(_) | Header::ContentType(_)))
            .unwrap_or(headers.len());
        headers.splice(at..at, routes);
        resp.headers = headers.into();
    }
    resp
}

/// Sets the body of a response with its Content-Type, fixing Content-Length.
pub fn with_body(mut resp: Response, content_type: &str, body: Vec<u8>) -> Response {
    set_body(&mut resp.headers, &mut resp.body, content_type, body);
    resp
}

/// Sets the body of a request with its Content-Type, fixing Content-Length.
pub fn with_request_body(mut req: Request, content_type: &str, body: Vec<u8>) -> Request {
    set_body(&mut req.headers, &mut req.body, content_type, body);
    req
}

fn encode(start_line: &str, headers: &Headers, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(start_line.len() + 64 * 12 + body.len());
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers.iter() {
        let (name, value) = header_parts(h);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.into()
}

/// Wire bytes of a request: canonical header names, body bytes untouched.
pub fn encode_request(req: &Request) -> Bytes {
    encode(
        &format!("{} {} SIP/2.0", req.method, req.uri),
        &req.headers,
        &req.body,
    )
}

/// Wire bytes of a response, with the RFC reason phrase for codes `rsip` knows.
pub fn encode_response(resp: &Response) -> Bytes {
    let code = resp.status_code.code();
    let reason = match &resp.status_code {
        StatusCode::Other(_, reason) => reason.as_str(),
        _ => reason_phrase(code),
    };
    // A reason is free text from the caller; CR/LF in it would inject header lines.
    let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
    encode(
        &format!("SIP/2.0 {code} {reason}"),
        &resp.headers,
        &resp.body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{self, parse};
    use rsip::SipMessage;

    fn invite(via: &str) -> Request {
        let text = format!(
            "INVITE sip:q@h SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP proxy.example;branch=z9hG4bK2\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:q@h>\r\nCall-ID: c1\r\nCSeq: 5 INVITE\r\n\
             Max-Forwards: 70\r\nSubject: x\r\nContent-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(req)) => req,
            other => panic!("{other:?}"),
        }
    }

    fn top_via(req: &Request) -> &str {
        message::top_via(req).unwrap()
    }

    #[test]
    fn stamps_received_and_rport() {
        let src: SocketAddr = "198.51.100.4:6001".parse().unwrap();
        // Host differs from the source: received is added.
        let mut req = invite("SIP/2.0/UDP trunk.example:5060;branch=z9hG4bK1");
        stamp_received(&mut req, src);
        assert_eq!(
            top_via(&req),
            "SIP/2.0/UDP trunk.example:5060;branch=z9hG4bK1;received=198.51.100.4"
        );
        // Host equals the source and no rport: untouched.
        let mut req = invite("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1");
        stamp_received(&mut req, src);
        assert_eq!(top_via(&req), "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1");
        // Empty rport: filled, and received always added (RFC 3581 §4).
        let mut req = invite("SIP/2.0/UDP 198.51.100.4;rport;branch=z9hG4bK1");
        stamp_received(&mut req, src);
        assert_eq!(
            top_via(&req),
            "SIP/2.0/UDP 198.51.100.4;rport=6001;branch=z9hG4bK1;received=198.51.100.4"
        );
        // IPv4-mapped source from a dual-stack socket compares as IPv4.
        let mut req = invite("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1");
        stamp_received(&mut req, "[::ffff:198.51.100.4]:6001".parse().unwrap());
        assert_eq!(top_via(&req), "SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1");
        // Only the top Via is touched.
        assert_eq!(
            message::header_value(&req, "via"),
            Some("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bK1")
        );
    }

    #[test]
    fn builds_responses_per_8_2_6_2() {
        let req = invite("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
        let resp = with_to_tag(response(&req, 486, None), "abc");
        let wire = encode_response(&resp);
        let text = std::str::from_utf8(&wire).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             Via: SIP/2.0/UDP proxy.example;branch=z9hG4bK2\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:q@h>;tag=abc\r\nCall-ID: c1\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        // An existing To tag is kept.
        let again = with_to_tag(resp, "other");
        assert_eq!(message::to_tag(&again), Some("abc"));
        let Ok(SipMessage::Response(back)) = parse(&wire) else {
            panic!("response must re-parse")
        };
        assert_eq!(back.status_code.code(), 486);
        assert_eq!(message::cseq(&back), Some((5, rsip::Method::Invite)));
    }

    #[test]
    fn body_and_custom_reason() {
        let req = invite("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
        let resp = response(&req, 200, Some("OK\r\nInjected: 1"));
        let resp = with_body(resp, "application/sdp", b"v=0\r\n".to_vec());
        let wire = encode_response(&resp);
        let text = std::str::from_utf8(&wire).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OKInjected: 1\r\n"), "{text}");
        assert_eq!(text.matches("Content-Length").count(), 1);
        assert!(
            text.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")
        );
        let req = with_request_body(req, "application/sdp", vec![0xff, 0]);
        // Binary bodies survive encoding byte for byte.
        assert!(encode_request(&req).ends_with(&[b'\n', 0xff, 0]));
    }

    #[test]
    fn tags_and_branches_are_random_and_well_formed() {
        let (a, b) = (new_branch(), new_branch());
        assert!(a.starts_with("z9hG4bK") && a.len() == 23 && a != b);
        assert_ne!(new_tag(), new_tag());
        assert_eq!(stable_tag(&[Some("x")]), stable_tag(&[Some("x")]));
        assert_ne!(
            stable_tag(&[Some("x"), None]),
            stable_tag(&[None, Some("x")])
        );
    }
}
