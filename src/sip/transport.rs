//! Which transport a peer is reached over (RFC 3261 §18), and what that changes in the
//! messages holdfast sends it.
//!
//! The controller builds every message once, as for UDP, and addresses it by socket address.
//! A peer that reached holdfast over a connection (TCP or TLS) is a *flow* (RFC 5626 §3): the
//! driver sends to it over that connection, and [`over_flow`] makes the message say so: the
//! top `Via` of a request names the transport (§18.1.1, §20.42), and holdfast's `Contact`
//! carries `;transport=` so in-dialog requests come back the same way (§19.1.4).

use bytes::Bytes;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// A TCP connection.
    Tcp,
    /// A TLS connection over TCP.
    Tls,
}

impl Transport {
    /// The Via sent-protocol token (§20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter (§19.1.1).
    pub fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Whether the transport delivers reliably (no retransmissions, §17).
    pub fn reliable(self) -> bool {
        self != Self::Udp
    }
}

/// `payload`, built for UDP from `udp_sent_by`, made right for a flow over `transport` whose
/// listener is at `sent_by`: a request's top Via and holdfast's Contact name the transport and
/// that address. Only the header section is touched (so `Content-Length` stays right); a
/// message without either is returned as it was.
pub fn over_flow(payload: &Bytes, transport: Transport, udp_sent_by: &str, sent_by: &str) -> Bytes {
    if transport == Transport::Udp {
        return payload.clone();
    }
    let Some(end) = payload.windows(4).position(|w| w == b"\r\n\r\n") else {
        return payload.clone();
    };
    let Ok(header) = std::str::from_utf8(&payload[..end]) else {
        return payload.clone();
    };
    let mut text = String::with_capacity(payload.len() + 32);
    let is_request = !header.starts_with("SIP/2.0 ");
    let udp_via = format!("SIP/2.0/UDP {udp_sent_by};");
    let our_contact = super::build::contact(udp_sent_by);
    let mut via_done = false;
    for (i, line) in header.split("\r\n").enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        let name = line.split(':').next().unwrap_or("").trim();
        if is_request && !via_done && (name.eq_ignore_ascii_case("via") || name == "v") {
            via_done = true;
            let via = format!("SIP/2.0/{} {sent_by};", transport.via_token());
            text.push_str(&line.replacen(&udp_via, &via, 1));
            continue;
        }
        if name.eq_ignore_ascii_case("contact") || name == "m" {
            let ours = format!(
                "<sip:holdfast@{sent_by};transport={}>",
                transport.uri_param()
            );
            text.push_str(&line.replacen(&our_contact, &ours, 1));
            continue;
        }
        text.push_str(line);
    }
    let mut out = text.into_bytes();
    out.extend_from_slice(&payload[end..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_over_tls_names_the_transport_and_the_tls_address() {
        let invite = Bytes::from_static(
            b"INVITE sip:alice@192.0.2.9:40000;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK0\r\n\
Contact: <sip:holdfast@192.0.2.1:5060>\r\n\
Content-Length: 4\r\n\r\nv=0\n",
        );
        let out = over_flow(&invite, Transport::Tls, "192.0.2.1:5060", "192.0.2.1:5061");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1;rport\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK0\r\n"),
            "only the top Via is ours: {text}"
        );
        assert!(text.contains("Contact: <sip:holdfast@192.0.2.1:5061;transport=tls>\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
        assert_eq!(
            over_flow(&invite, Transport::Udp, "192.0.2.1:5060", "x"),
            invite
        );
    }

    #[test]
    fn a_response_over_tcp_keeps_the_callers_via_and_gets_our_contact() {
        let ok = Bytes::from_static(
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK7;received=192.0.2.7\r\n\
Contact: <sip:holdfast@192.0.2.1:5060>\r\n\
Content-Length: 0\r\n\r\n",
        );
        let out = over_flow(&ok, Transport::Tcp, "192.0.2.1:5060", "192.0.2.1:5060");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("Via: SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK7"));
        assert!(text.contains("Contact: <sip:holdfast@192.0.2.1:5060;transport=tcp>\r\n"));
    }
}
