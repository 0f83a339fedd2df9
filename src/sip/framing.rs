//! Byte-level framing of one SIP datagram, in front of `rsip` (RFC 3261 §7, §7.3.1, §18.3).
//!
//! This module owns everything that happens before a header value is interpreted: finding the
//! start line, splitting header lines (CRLF, tolerating bare LF), unfolding continuation lines
//! (§7.3.1), expanding compact header names (§7.3.3 and the extensions that define one),
//! normalising header-name case, splitting comma-separated `Via`/`Contact` values into one
//! header each (§7.3.1 allows both forms), and cutting the body by `Content-Length` (§18.3:
//! over UDP a missing `Content-Length` means the body runs to the end of the datagram, and
//! bytes after the declared length are ignored).
//!
//! It is pure over `&[u8]`, borrows from the datagram where it can and does one pass over the
//! header section, so its cost is linear in the message size.

use std::borrow::Cow;

/// One header after unfolding and name normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawHeader<'a> {
    /// Canonical spelling for known headers (`Call-ID`, `Via`, ...), else as received.
    pub name: Cow<'a, str>,
    /// Value with surrounding whitespace removed and folded lines joined by one space.
    pub value: Cow<'a, str>,
}

/// A datagram split into its parts; nothing is validated beyond the line structure.
///
/// A defective header line does not stop the split: the remaining headers are still collected,
/// so that a `400` can be routed back with the `Via`, `Call-ID`, ... that were readable.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The first problem met in the header section, if any.
    pub defect: Option<FrameError>,
    /// The first non-empty line, without its line ending.
    pub start_line: &'a [u8],
    /// Headers in order of appearance, list-valued `Via`/`Contact` split into one per value.
    pub headers: Vec<RawHeader<'a>>,
    /// Everything after the empty line that ends the headers (not yet cut by Content-Length).
    pub rest: &'a [u8],
}

/// What is wrong with the line structure of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Nothing but CR/LF (a keep-alive) or nothing at all; the only fatal one.
    Empty,
    /// A continuation line before any header.
    FoldWithoutHeader,
    /// A header line without a colon or with a name that is not a token.
    BadHeaderLine,
    /// A `Via`/`Contact` list with an empty element (`a,,b`).
    EmptyListElement,
}

/// Compact forms (RFC 3261 §7.3.3, §20; RFC 3265, 3515, 3892, 4028) and their long names.
const COMPACT: &[(u8, &str)] = &[
    (b'i', "Call-ID"),
    (b'm', "Contact"),
    (b'e', "Content-Encoding"),
    (b'l', "Content-Length"),
    (b'c', "Content-Type"),
    (b'f', "From"),
    (b's', "Subject"),
    (b'k', "Supported"),
    (b't', "To"),
    (b'v', "Via"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b'b', "Referred-By"),
    (b'x', "Session-Expires"),
    (b'u', "Allow-Events"),
];

/// Canonical spellings of the headers holdfast or `rsip` know; matched case-insensitively.
const CANONICAL: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty RFC 3261 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Maps a received header name to its canonical spelling, expanding compact forms.
pub(crate) fn canonical_name(name: &str) -> Option<&'static str> {
    if let [c] = name.as_bytes() {
        let c = c.to_ascii_lowercase();
        if let Some((_, long)) = COMPACT.iter().find(|(short, _)| *short == c) {
            return Some(long);
        }
    }
    CANONICAL
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .copied()
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits `bytes` into its first line (without CR LF / LF) and the remainder.
fn next_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = &bytes[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, &bytes[nl + 1..])
        }
        None => (bytes.strip_suffix(b"\r").unwrap_or(bytes), &[]),
    }
}

/// Splits the datagram into start line, unfolded headers and the bytes after the headers.
///
/// Leading CR/LF are skipped (§7.5 and the RFC 5626 keep-alive). A header section that is not
/// closed by an empty line is accepted as running to the end of the datagram (body empty):
/// over UDP the datagram boundary is the frame.
pub(crate) fn split(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(FrameError::Empty)?;
    let (start_line, mut rest) = next_line(&bytes[start..]);
    // Typical requests carry 10-20 headers; reserving avoids regrowth in the common case.
    let mut headers: Vec<RawHeader<'_>> = Vec::with_capacity(16);
    let mut defect = None;
    // The header being read is held back until the next line shows whether it continues, so
    // that list splitting sees the whole unfolded value.
    let mut pending: Option<(Cow<'_, str>, Cow<'_, str>)> = None;
    loop {
        if rest.is_empty() {
            break;
        }
        let (line, after) = next_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            let Some((_, value)) = pending.as_mut() else {
                defect.get_or_insert(FrameError::FoldWithoutHeader);
                continue;
            };
            let more = trim_ws(line);
            if !more.is_empty() {
                let value = value.to_mut();
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(&String::from_utf8_lossy(more));
            }
            continue;
        }
        if let Some((name, value)) = pending.take() {
            push_header(&mut headers, name, value, &mut defect);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            defect.get_or_insert(FrameError::BadHeaderLine);
            continue;
        };
        let name = match std::str::from_utf8(trim_ws(&line[..colon])) {
            Ok(name) if is_token(name) => name,
            _ => {
                defect.get_or_insert(FrameError::BadHeaderLine);
                continue;
            }
        };
        let name = match canonical_name(name) {
            Some(canonical) => Cow::Borrowed(canonical),
            None => Cow::Borrowed(name),
        };
        let value = String::from_utf8_lossy(trim_ws(&line[colon + 1..]));
        pending = Some((name, value));
    }
    if let Some((name, value)) = pending.take() {
        push_header(&mut headers, name, value, &mut defect);
    }
    Ok(Frame {
        defect,
        start_line,
        headers,
        rest,
    })
}

/// Pushes one header, splitting `Via` and `Contact` lists into one header per value so that
/// "the top Via" is always `headers[first Via]` and `rsip`'s single-value parsers work.
fn push_header<'a>(
    headers: &mut Vec<RawHeader<'a>>,
    name: Cow<'a, str>,
    value: Cow<'a, str>,
    defect: &mut Option<FrameError>,
) {
    let splittable = name == "Via" || (name == "Contact" && value.trim() != "*");
    if !splittable || !value.contains(',') {
        headers.push(RawHeader { name, value });
        return;
    }
    for part in split_list(&value) {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            defect.get_or_insert(FrameError::EmptyListElement);
            continue;
        }
        headers.push(RawHeader {
            name: name.clone(),
            value: Cow::Owned(part.to_owned()),
        });
    }
}

/// Splits a header value at top-level commas, ignoring commas inside quoted strings (with `\`
/// escapes) and inside `<...>` (a URI may contain commas).
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut cuts = Vec::new();
    for (i, b) in value.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b',' if !in_quotes && !in_angle => cuts.push(i),
            _ => {}
        }
    }
    let mut start = 0;
    cuts.push(value.len());
    cuts.into_iter().map(move |end| {
        let part = &value[start..end];
        start = end + 1;
        part
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_values(frame: &Frame<'_>) -> Vec<(String, String)> {
        frame
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_string()))
            .collect()
    }

    #[test]
    fn unfolds_continuation_lines() {
        let msg =
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\tthree\r\nTo: <sip:a@b>\r\n\r\n";
        let frame = split(msg).unwrap();
        assert_eq!(
            names_values(&frame),
            vec![
                ("Subject".into(), "one two three".into()),
                ("To".into(), "<sip:a@b>".into())
            ]
        );
    }

    #[test]
    fn every_compact_form_expands_case_insensitively() {
        for (short, long) in COMPACT {
            for c in [*short, short.to_ascii_uppercase()] {
                let msg = format!("OPTIONS sip:a@b SIP/2.0\r\n{} : x\r\n\r\n", c as char);
                let frame = split(msg.as_bytes()).unwrap();
                assert_eq!(frame.headers[0].name, *long, "compact form {}", c as char);
                assert_eq!(frame.headers[0].value, "x");
            }
        }
    }

    #[test]
    fn normalises_name_case_and_keeps_unknown_names() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\ncall-id: 1\r\nCSEQ: 2 OPTIONS\r\nX-Odd: y\r\n\r\n";
        let frame = split(msg).unwrap();
        let names: Vec<_> = frame.headers.iter().map(|h| h.name.as_ref()).collect();
        assert_eq!(names, ["Call-ID", "CSeq", "X-Odd"]);
    }

    #[test]
    fn splits_via_lists_but_not_commas_in_quotes_or_brackets() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b;branch=z9hG4bK2\r\nm: \"x, y\" <sip:a@b;p=1,2>, <sip:c@d>\r\n\r\n";
        let frame = split(msg).unwrap();
        assert_eq!(
            names_values(&frame),
            vec![
                ("Via".into(), "SIP/2.0/UDP a;branch=z9hG4bK1".into()),
                ("Via".into(), "SIP/2.0/UDP b;branch=z9hG4bK2".into()),
                ("Contact".into(), "\"x, y\" <sip:a@b;p=1,2>".into()),
                ("Contact".into(), "<sip:c@d>".into()),
            ]
        );
    }

    #[test]
    fn empty_list_element_is_an_error() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a;;,;,,\r\nTo: x\r\n\r\n";
        let frame = split(msg).unwrap();
        assert_eq!(frame.defect, Some(FrameError::EmptyListElement));
        // The readable parts are still there for routing a 400 back.
        assert_eq!(frame.headers.len(), 3);
    }

    #[test]
    fn tolerates_bare_lf_and_leading_crlf() {
        let frame = split(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nTo: x\n\nbody").unwrap();
        assert_eq!(frame.start_line, b"OPTIONS sip:a@b SIP/2.0");
        assert_eq!(frame.headers.len(), 1);
        assert_eq!(frame.rest, b"body");
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(split(b"\r\n\r\n").unwrap_err(), FrameError::Empty);
        let defect = |m: &[u8]| split(m).unwrap().defect;
        assert_eq!(
            defect(b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n"),
            Some(FrameError::FoldWithoutHeader)
        );
        assert_eq!(
            defect(b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n"),
            Some(FrameError::BadHeaderLine)
        );
        assert_eq!(
            defect(b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\nTo: y\r\n\r\n"),
            Some(FrameError::BadHeaderLine)
        );
        assert_eq!(defect(b"OPTIONS sip:a@b SIP/2.0\r\nTo: y\r\n\r\n"), None);
    }

    #[test]
    fn unterminated_header_section_runs_to_the_end() {
        let frame = split(b"OPTIONS sip:a@b SIP/2.0\r\nTo: x\r\nFrom: y").unwrap();
        assert_eq!(frame.headers.len(), 2);
        assert!(frame.rest.is_empty());
    }
}
