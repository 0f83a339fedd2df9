//! Rejection of a datagram: what was wrong ([`ParseErrorKind`]) and the stateless error
//! response owed to the sender ([`ParseError::reply`], RFC 3261 §8.2.6.2, §18.2.2, §21.4).
//!
//! The response is assembled from the raw header values the framing layer read, not from an
//! `rsip` message, so a request `rsip` could never represent is still answered. Header values
//! are copied verbatim: they are the peer's own bytes, split at line ends, so they cannot
//! inject lines.

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
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
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
    /// without an answer (a response, noise, or a request without a `Via`).
    pub fn status(&self) -> Option<u16> {
        self.route.as_ref().map(|_| self.kind.status())
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
        // The reason names the problem for whoever reads the peer's logs. It can contain text
        // from the request (a method, a scheme), so only printable ASCII goes on the wire.
        let reason = format!("{} ({})", build::reason_phrase(code), self.kind);
        out.extend(
            reason
                .bytes()
                .filter(|b| (0x20..0x7f).contains(b))
                .take(160),
        );
        out.extend_from_slice(b"\r\n");
        for (i, via) in route.vias.iter().enumerate() {
            let stamped = match (i, src) {
                (0, Some(src)) => build::stamp_via_value(via, src),
                _ => Cow::Borrowed(via.as_str()),
            };
            push_line(&mut out, "Via", &stamped);
        }
        if let Some(from) = &route.from {
            push_line(&mut out, "From", from);
        }
        if let Some(to) = &route.to {
            push_line(&mut out, "To", to);
            if uri::header_param(to, "tag").is_none() {
                // A stable tag (same request → same tag) keeps retransmitted bad requests
                // answered identically without any state.
                let key = [
                    route.call_id.as_deref(),
                    route.vias.first().map(String::as_str),
                ];
                let tag = build::stable_tag(&key);
                out.truncate(out.len() - 2);
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        if let Some(call_id) = &route.call_id {
            push_line(&mut out, "Call-ID", call_id);
        }
        if let Some(cseq) = &route.cseq {
            push_line(&mut out, "CSeq", cseq);
        }
        match &self.kind {
            ParseErrorKind::UnsupportedExtension(tags) => {
                push_line(&mut out, "Unsupported", &tags.join(", "));
            }
            ParseErrorKind::UnknownMethod(_) => push_line(&mut out, "Allow", ALLOWED_METHODS),
            _ => {}
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        Some(out)
    }
}

fn push_line(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn route_headers(headers: &[RawHeader<'_>]) -> Option<Box<RouteHeaders>> {
    let vias: Vec<String> = headers
        .iter()
        .filter(|h| h.name == "Via")
        .map(|h| h.value.to_string())
        .collect();
    if vias.is_empty() {
        return None;
    }
    let first = |name: &str| {
        headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.to_string())
    };
    Some(Box::new(RouteHeaders {
        vias,
        from: first("From"),
        to: first("To"),
        call_id: first("Call-ID"),
        cseq: first("CSeq"),
    }))
}
