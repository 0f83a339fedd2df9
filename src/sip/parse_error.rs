//! Rejection of a datagram: what was wrong ([`ParseErrorKind`]) and the stateless error
//! response owed to the sender ([`ParseError::reply`], RFC 3261 §8.2.6.2, §18.2.2, §21.4).
//!
//! The response is assembled from the raw header values the framing layer read, not from an
//! `rsip` message, so a request `rsip` could never represent is still answered. It must be a
//! response the client can match (§8.2.6.2: the request's `Via`s, `From`, `To`, `Call-ID` and
//! `CSeq`), so a request lacking one of those, or carrying a control character in one, gets
//! no response at all; and the finished bytes must parse as a response, or nothing is sent.
//! The reason phrase is fixed text chosen by the error kind, never the peer's bytes.

use std::borrow::Cow;
use std::net::SocketAddr;

use super::build;
use super::framing::RawHeader;
use super::message::ALLOWED_METHODS;
use super::uri;

/// What was wrong with a datagram. The [`ParseError`] wrapping it decides whether and how to
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The datagram is larger than [`MAX_MESSAGE_SIZE`](super::message::MAX_MESSAGE_SIZE); it is not looked at.
    #[error("message of {0} bytes exceeds the size limit")]
    TooLarge(usize),
    /// Nothing but CR/LF: a keep-alive, never answered.
    #[error("empty datagram or keep-alive")]
    Empty,
    /// The Request-Line is not `Method SP Request-URI SP SIP-Version`.
    #[error("malformed request line")]
    BadRequestLine,
    /// The Status-Line is not `SIP/2.0 SP 3DIGIT SP Reason`, or the code is outside 100–699.
    #[error("malformed status line")]
    BadStatusLine,
    /// The version is not `SIP/2.0` (answered with `505`).
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),
    /// A method `rsip` cannot represent (answered with `501`, §8.2.1).
    #[error("method {0} not implemented")]
    UnknownMethod(String),
    /// The Request-URI scheme is not `sip`, `sips` or `tel` (answered with `416`, §8.2.2.1).
    #[error("unsupported URI scheme {0}")]
    UnsupportedUriScheme(String),
    /// The Request-URI could not be parsed.
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// A header line without a colon, a fold before any header, or an empty list element.
    #[error("malformed header section")]
    BadHeaderSection,
    /// A header every request/response must carry is absent (§8.1.1).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that may appear once appears more than once (§7.3.1, RFC 4475 §3.3.8).
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    /// A header's value is malformed or out of range (CSeq above 2^32-1, Max-Forwards above
    /// 255, a top Via without a sent-by, ...).
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// The CSeq method is not the Request-Line method (§8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Content-Length is not a number, conflicts with another, or exceeds the datagram (§18.3).
    #[error("bad Content-Length: {0}")]
    BadContentLength(&'static str),
    /// `Require` names option tags not in [`SUPPORTED_OPTION_TAGS`](super::message::SUPPORTED_OPTION_TAGS) (answered with `420`).
    #[error("unsupported extension {}", .0.join(", "))]
    UnsupportedExtension(Vec<String>),
}

impl ParseErrorKind {
    /// A fixed description for the reason phrase: the variants that carry request text (a
    /// method, a version, a scheme, option tags) are described without it; header names are
    /// our own constants.
    fn summary(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::UnsupportedVersion(_) => "unsupported SIP version".into(),
            Self::UnknownMethod(_) => "method not implemented".into(),
            Self::UnsupportedUriScheme(_) => "unsupported URI scheme".into(),
            Self::UnsupportedExtension(_) => "unsupported extension".into(),
            Self::BadContentLength(_) => "bad Content-Length".into(),
            Self::TooLarge(_) => "message too large".into(),
            // The rest carry no request text: their display is fixed.
            other => other.to_string().into(),
        }
    }

    /// The status code for a request failing this way (§8.2.1–§8.2.3, §21.4).
    fn status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion(_) => 505,
            Self::UnknownMethod(_) => 501,
            Self::UnsupportedUriScheme(_) => 416,
            Self::UnsupportedExtension(_) => 420,
            Self::TooLarge(_) => 513,
            _ => 400,
        }
    }
}

/// A datagram that did not yield a usable message, plus what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    /// Present only for requests that carried at least one `Via`: without it there is nowhere
    /// to send a response (§18.2.2).
    route: Option<Box<RouteHeaders>>,
}

/// The raw header values a stateless error response copies (§8.2.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteHeaders {
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
}

impl ParseError {
    /// An error that is never answered (responses, noise).
    pub(crate) fn bare(kind: ParseErrorKind) -> Self {
        Self { kind, route: None }
    }

    /// An error for a request, answerable when its headers include a `Via`.
    pub(crate) fn for_request(kind: ParseErrorKind, headers: &[RawHeader<'_>]) -> Self {
        Self {
            kind,
            route: route_headers(headers),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The status code of the error response, or `None` when the datagram must be dropped
    /// without an answer (a response, noise, or a request whose `Via`, `From`, `To`, `Call-ID`
    /// or `CSeq` cannot be copied into one).
    pub fn status(&self) -> Option<u16> {
        self.reply().map(|_| self.kind.status())
    }

    /// Wire bytes of the stateless error response, or `None` when nothing may be sent.
    ///
    /// The driver sends them to the datagram's source address. Prefer [`Self::reply_to`], which
    /// also stamps `received`/`rport` on the top `Via` as §18.2.1 and RFC 3581 ask.
    pub fn reply(&self) -> Option<Vec<u8>> {
        self.render(None)
    }

    /// Like [`Self::reply`], with the top `Via` stamped for the source address `src`.
    pub fn reply_to(&self, src: SocketAddr) -> Option<Vec<u8>> {
        self.render(Some(src))
    }

    fn render(&self, src: Option<SocketAddr>) -> Option<Vec<u8>> {
        let route = self.route.as_deref()?;
        let code = self.kind.status();
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(code.to_string().as_bytes());
        out.push(b' ');
        // The reason names the problem for whoever reads the peer's logs, in fixed text: echoing
        // the request's bytes would let a peer write into our response.
        out.extend_from_slice(build::reason_phrase(code).as_bytes());
        out.extend_from_slice(b" (");
        out.extend_from_slice(self.kind.summary().as_bytes());
        out.extend_from_slice(b")\r\n");
        for (i, via) in route.vias.iter().enumerate() {
            let stamped = match (i, src) {
                (0, Some(src)) => build::stamp_via_value(via, src),
                _ => Cow::Borrowed(via.as_str()),
            };
            push_line(&mut out, "Via", &stamped);
        }
        push_line(&mut out, "From", &route.from);
        let to = &route.to;
        push_line(&mut out, "To", to);
        {
            if uri::header_param(to, "tag").is_none() {
                // A stable tag (same request → same tag) keeps retransmitted bad requests
                // answered identically without any state.
                let key = [
                    Some(route.call_id.as_str()),
                    route.vias.first().map(String::as_str),
                ];
                let tag = build::stable_tag(&key);
                out.truncate(out.len() - 2);
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        push_line(&mut out, "Call-ID", &route.call_id);
        push_line(&mut out, "CSeq", &route.cseq);
        match &self.kind {
            ParseErrorKind::UnsupportedExtension(tags) => {
                // §8.2.2.3 names the tags; only RFC 3261 §25.1 `token`s are copied.
                let is_token = |t: &&String| {
                    !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
                };
                let tags: Vec<&str> = tags.iter().filter(is_token).map(String::as_str).collect();
                push_line(&mut out, "Unsupported", &tags.join(", "));
            }
            ParseErrorKind::UnknownMethod(_) => push_line(&mut out, "Allow", ALLOWED_METHODS),
            _ => {}
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        // Copied values that are not valid SIP (a bad URI in From, a CSeq without a number)
        // would make a response the client cannot read either: send nothing rather than that.
        matches!(
            super::message::parse(&out),
            Ok(rsip::SipMessage::Response(_))
        )
        .then_some(out)
    }
}

fn push_line(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The headers a response must copy, or `None` when one is missing or carries a character a
/// header line may not (a CR or LF anywhere, other controls outside a quoted-pair: RFC 3261
/// §25.1), which would let the peer's bytes break our response's lines.
fn route_headers(headers: &[RawHeader<'_>]) -> Option<Box<RouteHeaders>> {
    let clean = |value: &str| {
        let mut escaped = false;
        value.bytes().all(|b| {
            let ok = match b {
                b'\r' | b'\n' => false,
                b'\t' | 0x20..=0x7e | 0x80.. => true,
                _ => escaped,
            };
            escaped = !escaped && b == b'\\';
            ok
        })
    };
    let vias: Vec<String> = headers
        .iter()
        .filter(|h| h.name == "Via")
        .map(|h| clean(&h.value).then(|| h.value.to_string()))
        .collect::<Option<_>>()?;
    if vias.is_empty() {
        return None;
    }
    let first = |name: &str| {
        headers
            .iter()
            .find(|h| h.name == name)
            .filter(|h| clean(&h.value))
            .map(|h| h.value.to_string())
    };
    Some(Box::new(RouteHeaders {
        vias,
        from: first("From")?,
        to: first("To")?,
        call_id: first("Call-ID")?,
        cseq: first("CSeq")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::message::parse;

    fn request(extra_headers: &str, drop: &str) -> String {
        let text = format!(
            "OPTIONS sip:q@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:q@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n{extra_headers}\r\n"
        );
        text.lines()
            .filter(|l| drop.is_empty() || !l.starts_with(drop))
            .map(|l| format!("{l}\r\n"))
            .collect()
    }

    fn reply(text: &str) -> Option<String> {
        let error = parse(text.as_bytes()).expect_err("a bad request");
        error.reply().map(|r| String::from_utf8(r).expect("ASCII"))
    }

    #[test]
    fn a_request_missing_an_identifying_header_gets_no_reply() {
        for header in ["From:", "To:", "Call-ID:", "CSeq:"] {
            let text = request("Max-Forwards: 999\r\n", header);
            assert_eq!(reply(&text), None, "without {header}");
        }
        // With all of them, the same mistake is answered.
        assert!(reply(&request("Max-Forwards: 999\r\n", "")).is_some());
    }

    #[test]
    fn the_reason_phrase_never_echoes_the_request() {
        let text = request("", "").replacen("OPTIONS sip", "X-EVIL sip", 1);
        let text = text.replace("1 OPTIONS", "1 X-EVIL");
        let reply = reply(&text).expect("501");
        assert!(reply.starts_with("SIP/2.0 501 Not Implemented (method not implemented)\r\n"));
        let status_line = reply.lines().next().unwrap_or_default();
        assert!(!status_line.contains("EVIL"), "{reply}");
        let text = request("", "").replacen("sip:q@h SIP/2.0", "evil:x@h SIP/2.0", 1);
        let reply = self::reply(&text).expect("416");
        assert!(
            reply.starts_with("SIP/2.0 416 Unsupported URI Scheme (unsupported URI scheme)\r\n"),
            "{reply}"
        );
    }

    #[test]
    fn control_characters_in_copied_headers_mean_no_reply() {
        for bad in ["\0", "\x0b", "\r", "\\\r"] {
            let text = request("Max-Forwards: 999\r\n", "")
                .replace("Call-ID: c1", &format!("Call-ID: c1{bad}Injected: yes"));
            if let Some(reply) = reply(&text) {
                assert!(!reply.contains("Injected"), "{bad:?}: {reply}");
            }
        }
    }
}
