//! SIP over a byte stream (TCP, TLS): cutting messages out of what a connection delivers
//! (RFC 3261 §18.3), keep-alives (RFC 5626 §4.4.1) and the limits that keep one connection
//! from holding memory it has no right to.
//!
//! Over a stream the end of a message is known only from its `Content-Length` (§18.3: it MUST
//! be present), so [`StreamFramer`] buffers bytes until a header section is complete, reads that
//! header, and waits for as many body bytes as it declares. Whatever goes wrong here cannot be
//! resynchronised (the next message's start is unknown): the error is final, the caller answers
//! `400` when it can ([`refusal`]) and closes the connection.
//!
//! Pure: bytes in, messages out; the driver owns the socket and the clock.

use bytes::{Buf, Bytes, BytesMut};

use super::build;

/// The longest header section accepted: a request with more is not one holdfast needs.
pub const MAX_HEADER: usize = 16 * 1024;
/// The largest body accepted (an SDP with every codec and crypto line is a few KB).
pub const MAX_BODY: usize = 64 * 1024;

/// One thing a connection said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A whole SIP message, header and body.
    Message(Bytes),
    /// A double-CRLF keep-alive ping (RFC 5626 §4.4.1): answer with [`PONG`].
    Ping,
}

/// The answer to a keep-alive ping: one CRLF (RFC 5626 §4.4.1).
pub const PONG: &[u8] = b"\r\n";

/// Why a stream can be read no further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// §18.3: on a stream, a message without `Content-Length` cannot be delimited.
    #[error("no Content-Length on a stream")]
    NoContentLength,
    /// A `Content-Length` that is not a number.
    #[error("Content-Length is not a number")]
    BadContentLength,
    /// A body over [`MAX_BODY`].
    #[error("Content-Length {0} is over the limit")]
    TooLarge(usize),
    /// No end of the header section within [`MAX_HEADER`] bytes.
    #[error("header section longer than {MAX_HEADER} bytes")]
    HeaderTooLong,
}

/// Cuts messages out of one connection's bytes; see the module docs.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    /// The end of the current message once its header has been read: header length plus
    /// `Content-Length`.
    pending: Option<usize>,
    /// How far the search for the end of the header section has looked: a sender trickling
    /// bytes costs a scan of each byte once, not of the whole buffer per read.
    scanned: usize,
    /// Set after an error: nothing more is read.
    failed: bool,
}

impl StreamFramer {
    /// Appends what the connection delivered.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held for a message not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a message has begun and is not complete (the driver bounds how long that may
    /// last: a sender trickling a byte at a time must not hold a connection for ever).
    pub fn in_message(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete item, `None` until more bytes arrive, or the error that ends the
    /// stream (and the header section read so far, for a `400`).
    pub fn next_item(&mut self) -> Option<Result<StreamItem, (StreamError, Bytes)>> {
        if self.failed {
            return None;
        }
        if self.pending.is_none() {
            // §7.5: CRLFs before a message are ignored; two of them alone are a ping.
            loop {
                if self.buf.starts_with(b"\r\n\r\n") {
                    self.buf.advance(4);
                    return Some(Ok(StreamItem::Ping));
                }
                if self.buf.len() >= 4 && self.buf.starts_with(b"\r\n") {
                    self.buf.advance(2);
                    self.scanned = self.scanned.saturating_sub(2);
                    continue;
                }
                if self.buf[..] == b"\r\n"[..] || self.buf[..] == b"\r\n\r"[..] {
                    return None; // perhaps the start of a ping
                }
                break;
            }
            let from = self.scanned.saturating_sub(3);
            let Some(end) = find(&self.buf[from..], b"\r\n\r\n").map(|e| from + e) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_HEADER {
                    return Some(Err(self.fail(StreamError::HeaderTooLong, MAX_HEADER)));
                }
                return None;
            };
            self.scanned = 0;
            let header_len = end + 4;
            if header_len > MAX_HEADER {
                return Some(Err(self.fail(StreamError::HeaderTooLong, header_len)));
            }
            let body = match content_length(&self.buf[..end]) {
                Ok(n) if n > MAX_BODY => {
                    return Some(Err(self.fail(StreamError::TooLarge(n), header_len)));
                }
                Ok(n) => n,
                Err(error) => return Some(Err(self.fail(error, header_len))),
            };
            self.pending = Some(header_len + body);
        }
        let total = self.pending?;
        if self.buf.len() < total {
            return None;
        }
        self.pending = None;
        let message = self.buf.split_to(total).freeze();
        if self.buf.is_empty() {
            // An idle connection keeps no buffer.
            self.buf = BytesMut::new();
        }
        Some(Ok(StreamItem::Message(message)))
    }

    fn fail(&mut self, error: StreamError, header_len: usize) -> (StreamError, Bytes) {
        self.failed = true;
        let header = self.buf.split_to(header_len.min(self.buf.len())).freeze();
        self.buf = BytesMut::new();
        (error, header)
    }
}

/// The `400` for a request whose stream could not be read on, built from its header section
/// when that names the request well enough to answer (Via, From, To, Call-ID, CSeq).
pub fn refusal(error: StreamError, header: &[u8]) -> Option<Bytes> {
    // The header alone, declaring no body: the parser then reads what it can of it.
    let mut text = strip_content_length(header);
    text.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let rsip::SipMessage::Request(request) = super::message::parse(&text).ok()? else {
        return None;
    };
    let reason = match error {
        StreamError::NoContentLength => "Missing Content-Length",
        StreamError::BadContentLength => "Bad Content-Length",
        StreamError::TooLarge(_) => "Message Too Large",
        StreamError::HeaderTooLong => "Header Too Long",
    };
    let response = build::response(&request, 400, Some(reason));
    Some(build::encode_response(&response))
}

/// The header section's lines up to (not including) the blank line, without any
/// `Content-Length` line.
fn strip_content_length(header: &[u8]) -> Vec<u8> {
    let end = find(header, b"\r\n\r\n").map_or(header.len(), |e| e + 2);
    let mut out = Vec::with_capacity(end + 24);
    for line in header[..end].split_inclusive(|&b| b == b'\n') {
        if header_name_is(line, "content-length") || header_name_is(line, "l") {
            continue;
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The declared body length of a header section (`Content-Length` or its compact `l`).
fn content_length(header: &[u8]) -> Result<usize, StreamError> {
    let mut found = None;
    for line in header.split(|&b| b == b'\n') {
        if !(header_name_is(line, "content-length") || header_name_is(line, "l")) {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| StreamError::BadContentLength)?
            .trim();
        let n: usize = value.parse().map_err(|_| StreamError::BadContentLength)?;
        // Two that disagree cannot both be believed.
        if found.is_some_and(|f| f != n) {
            return Err(StreamError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(StreamError::NoContentLength)
}

/// Whether `line` is a header named `name` (case-insensitive, whitespace before the colon).
fn header_name_is(line: &[u8], name: &str) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    line[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(name.as_bytes())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
