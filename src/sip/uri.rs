//! Small, allocation-free readers for the text of SIP URIs and header parameters
//! (RFC 3261 §19.1, §20.10, §20.42; RFC 3966 for `tel:`).
//!
//! `rsip`'s URI parser fails on IPv6 hosts, `tel:` URIs and user parts containing `;`, and its
//! typed `Via` parser fails on IPv6 sent-by values. These helpers read just what holdfast needs
//! (scheme, user, parameters, sent-by) from the raw text, and [`parse`] builds the `rsip::Uri`
//! itself so that every URI a trunk may legally send is representable.

use rsip::{Auth, Domain, Host, HostWithPort, Param, Port, Scheme, Uri};

/// The scheme of a URI (`sip`, `tel`, ...), if the text starts with a syntactically valid one.
pub(crate) fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    (first_ok && rest_ok).then_some(scheme)
}

/// Characters never allowed unescaped anywhere in a URI (§19.1.1, §25.1).
fn has_forbidden_bytes(uri: &str) -> bool {
    uri.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b) || !b.is_ascii())
}

/// Parses a `sip:`, `sips:` or `tel:` URI into an `rsip::Uri`.
///
/// URI headers (`?name=value`) are dropped because `rsip::Uri` cannot hold them. An IPv6 host
/// is kept as a `Host::Domain` with its brackets so that it prints back as a valid URI. For
/// `tel:` the number goes into the user part and the host is empty.
pub(crate) fn parse(text: &str) -> Option<Uri> {
    if has_forbidden_bytes(text) {
        return None;
    }
    let scheme_str = scheme(text)?;
    let rest = &text[scheme_str.len() + 1..];
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    if scheme_str.eq_ignore_ascii_case("tel") {
        let (number, params) = rest.split_once(';').unwrap_or((rest, ""));
        if number.is_empty() {
            return None;
        }
        return Some(Uri {
            scheme: Some(Scheme::Other("tel".into())),
            auth: Some(Auth::from((number, None::<&str>))),
            host_with_port: HostWithPort::from(Host::Domain(Domain::new(""))),
            params: parse_params(params),
            headers: Vec::new(),
        });
    }
    let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme_str.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else {
        return None;
    };
    // An unescaped '@' cannot occur in the user or password (§25.1), so the first one ends the
    // userinfo even when the user contains ';' (RFC 4475 §3.1.1.9).
    let (auth, host_part) = match rest.split_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            (Some(Auth::from((user, password))), host)
        }
        None => (None, rest),
    };
    let (hostport, params) = host_part.split_once(';').unwrap_or((host_part, ""));
    let (host, port) = split_host_port(hostport)?;
    if !valid_host(host) {
        return None;
    }
    let host = match host.parse() {
        Ok(ip) if !host.starts_with('[') => Host::IpAddr(ip),
        _ => Host::Domain(Domain::new(host)),
    };
    let port = match port {
        Some(port) => Some(Port::new(port.parse::<u16>().ok()?)),
        None => None,
    };
    Some(Uri {
        scheme: Some(scheme),
        auth,
        host_with_port: HostWithPort { host, port },
        params: parse_params(params),
        headers: Vec::new(),
    })
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn parse_params(params: &str) -> Vec<Param> {
    params
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (p, None),
            };
            // rsip rejects e.g. an unknown `transport=` value; keep such a param verbatim.
            Param::try_from((name, value))
                .unwrap_or_else(|_| Param::Other(name.into(), value.map(Into::into)))
        })
        .collect()
}

/// Splits `host[:port]` or `[v6]:port`; the port is returned unparsed.
pub(crate) fn split_host_port(hostport: &str) -> Option<(&str, Option<&str>)> {
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        let (host, after) = hostport.split_at(end + 1);
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    Some(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

/// Byte offset where the header parameters of a name-addr/addr-spec or Via value begin (the
/// first `;` outside quotes and outside `<...>`), or `value.len()` if there are none.
fn params_start(value: &str) -> usize {
    let (mut in_quotes, mut escaped, mut in_angle) = (false, false, false);
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
            b';' if !in_quotes && !in_angle => return i,
            _ => {}
        }
    }
    value.len()
}

/// The value of header parameter `name` (case-insensitive) in a `From`/`To`/`Contact`/`Via`
/// value; `Some("")` for a parameter without a value, such as a bare `rport`.
pub(crate) fn header_param<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    let params = &value[params_start(value)..];
    params.split(';').skip(1).find_map(|param| {
        let (n, v) = param.split_once('=').unwrap_or((param, ""));
        n.trim_matches([' ', '\t'])
            .eq_ignore_ascii_case(name)
            .then(|| v.trim_matches([' ', '\t']))
    })
}

/// The URI inside a `From`/`To`/`Contact` value: the text between `<` and `>`, or without
/// brackets the text before the header parameters.
pub(crate) fn addr_spec(value: &str) -> Option<&str> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in value.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => {
                let inner = &value[i + 1..];
                return inner.find('>').map(|end| inner[..end].trim());
            }
            _ => {}
        }
    }
    let bare = value[..params_start(value)].trim();
    (!bare.is_empty()).then_some(bare)
}

/// The user part of a `sip:`/`sips:` URI or the number of a `tel:` URI, without user
/// parameters (`;npdi`), password or percent-decoding.
pub(crate) fn user_of(uri: &str) -> Option<&str> {
    let scheme = scheme(uri)?;
    let rest = &uri[scheme.len() + 1..];
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest
    } else {
        rest.split_once('@')?.0
    };
    let user = user.split([';', ':', '?']).next()?;
    (!user.is_empty()).then_some(user)
}

/// The sent-by (`host[:port]`) of a Via value's part before its parameters.
pub(crate) fn via_sent_by(head: &str) -> Option<&str> {
    // sent-protocol is `name / version / transport` with optional whitespace around slashes.
    let mut slashes = head.match_indices('/').map(|(i, _)| i);
    let second = slashes.nth(1)?;
    let after = head[second + 1..].trim_start_matches([' ', '\t']);
    let transport_end = after.find([' ', '\t'])?;
    let sent_by = after[transport_end..].trim_matches([' ', '\t']);
    (!sent_by.is_empty() && !sent_by.contains([' ', '\t'])).then_some(sent_by)
}

/// Decodes `%HH` escapes; invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits always fit a byte.
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris_rsip_cannot() {
        let u = parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(u.host().to_string(), "example.com");
        let u = parse("sips:alice@[2001:db8::1]:5061;transport=tls").unwrap();
        assert_eq!(u.host_with_port.to_string(), "[2001:db8::1]:5061");
        let u = parse("tel:+12125551212;phone-context=example.com").unwrap();
        assert_eq!(u.user(), Some("+12125551212"));
        let u = parse("sip:192.0.2.4:5070;lr").unwrap();
        assert_eq!(u.host(), &Host::IpAddr("192.0.2.4".parse().unwrap()));
        assert_eq!(u.port().map(|p| *p.value()), Some(5070));
        assert!(u.params.contains(&Param::Lr));
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:",
            "sip:a@",
            "sip:a b@c",
            "<sip:a@b>",
            "sip:a@b:99999",
            "sip:a@[zz]",
            "http://x",
            "tel:",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reads_params_skipping_quotes_and_brackets() {
        let v = "\"a;tag=no\" <sip:b@c;tag=no>;Tag=yes;x";
        assert_eq!(header_param(v, "tag"), Some("yes"));
        assert_eq!(header_param(v, "x"), Some(""));
        assert_eq!(header_param("sip:a@b;tag=1", "tag"), Some("1"));
        assert_eq!(header_param("<sip:a@b;tag=1>", "tag"), None);
        assert_eq!(
            header_param("SIP/2.0/UDP h;rport;branch=z9", "rport"),
            Some("")
        );
    }

    #[test]
    fn reads_addr_spec_and_user() {
        assert_eq!(addr_spec("\"x<y\" <sip:1@h>;tag=2"), Some("sip:1@h"));
        assert_eq!(addr_spec("sip:+1@h;tag=2"), Some("sip:+1@h"));
        assert_eq!(user_of("sip:+15551234;npdi@h"), Some("+15551234"));
        assert_eq!(user_of("sip:alice:pw@h"), Some("alice"));
        assert_eq!(user_of("tel:+1-212;ext=3"), Some("+1-212"));
        assert_eq!(user_of("sip:h.example.com"), None);
    }

    #[test]
    fn reads_via_sent_by() {
        assert_eq!(
            via_sent_by("SIP/2.0/UDP 10.0.0.1:5060"),
            Some("10.0.0.1:5060")
        );
        assert_eq!(via_sent_by("SIP / 2.0 / TCP [::1]:5"), Some("[::1]:5"));
        assert_eq!(via_sent_by("SIP/2.0/UDP"), None);
        assert_eq!(split_host_port("[::1]:5"), Some(("[::1]", Some("5"))));
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("%2B1%41%zz"), "+1A%zz");
    }
}
