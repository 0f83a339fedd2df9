//! SIP dialogs (RFC 3261 §12): the state two user agents share for the life of a call,
//! and the in-dialog requests holdfast originates (BYE, REFER, session-refresh re-INVITE and
//! UPDATE), with route sets (§12.2.1.1: loose and strict routers) and target refresh.
//!
//! holdfast is the UAS of every trunk call, so a [`Dialog`] is created from the INVITE it
//! answers (§12.1.1): the remote target is the caller's Contact, the route set is the
//! INVITE's Record-Route in order, our local tag is the To tag of our 2xx. Requests we send
//! in the dialog (§12.2.1.1) swap From and To, use the remote target as Request-URI and
//! increase our own CSeq, independent of the caller's.
//!
//! holdfast is the UAC of every call to an agent: [`Dialog::from_uac`] builds that side
//! from our INVITE and the agent's 2xx (§12.1.2: remote target from the 2xx Contact, route
//! set from its Record-Route in reverse, CSeq continuing from the INVITE's).
//!
//! Matching incoming in-dialog requests (§12.2.2) is by Call-ID plus both tags; the caller's
//! CSeq must increase, except for ACK and CANCEL which reuse the INVITE's number.

use rsip::Header;
use rsip::prelude::*;

/// Why an INVITE could not seed a dialog.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogError {
    /// A mandatory header (From, To, Call-ID, CSeq or Contact) is missing or unparsable.
    #[error("INVITE header {0} missing or malformed")]
    BadHeader(&'static str),
}

/// One dialog in which holdfast is the UAS (or the UAC, [`Dialog::from_uac`]). It is
/// plain data, kept across a restart as JSON (docs/behaviour.md §13).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dialog {
    /// Call-ID shared by both sides.
    pub call_id: String,
    /// Our tag (the To tag of our responses).
    pub local_tag: String,
    /// The caller's tag (From tag of the INVITE).
    pub remote_tag: String,
    /// The INVITE's From header value: becomes To in our requests.
    remote_party: String,
    /// The INVITE's To header value plus our tag: becomes From in our requests.
    local_party: String,
    /// Where our in-dialog requests are addressed (the caller's Contact URI).
    #[serde(with = "uri_text")]
    pub remote_target: rsip::Uri,
    /// Record-Route values, copied in order into Route of our requests (§12.1.1).
    route_set: Vec<String>,
    /// Our CSeq counter for requests we originate.
    local_cseq: u32,
    /// Highest CSeq seen from the caller.
    remote_cseq: u32,
    /// The CSeq number of our INVITE (UAC side), which the ACK for its 2xx repeats.
    invite_cseq: u32,
}

/// A URI kept as its text.
mod uri_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(uri: &rsip::Uri, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&uri.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<rsip::Uri, D::Error> {
        let text = String::deserialize(d)?;
        rsip::Uri::try_from(text.as_str()).map_err(serde::de::Error::custom)
    }
}

impl Dialog {
    /// A dialog restored after a restart: our CSeq moves on by `by`, past any request the
    /// process before may have sent after its state was last written (§12.2.1.1 asks only
    /// that it grows).
    pub fn skip_local_cseq(&mut self, by: u32) {
        self.local_cseq = self.local_cseq.saturating_add(by);
    }

    /// Builds the UAS side of a dialog from the INVITE holdfast answers with `local_tag`.
    pub fn from_invite(invite: &rsip::Request, local_tag: &str) -> Result<Self, DialogError> {
        let from = invite
            .from_header()
            .map_err(|_| DialogError::BadHeader("From"))?;
        // An RFC 2543 peer may send no From tag: the remote tag is then empty (§12.1.1).
        let remote_tag = from
            .tag()
            .map_err(|_| DialogError::BadHeader("From"))?
            .map(|tag| tag.value().to_string())
            .unwrap_or_default();
        let to = invite
            .to_header()
            .map_err(|_| DialogError::BadHeader("To"))?;
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::BadHeader("Call-ID"))?
            .value()
            .to_string();
        let remote_cseq = invite
            .cseq_header()
            .ok()
            .and_then(|c| c.seq().ok())
            .ok_or(DialogError::BadHeader("CSeq"))?;
        // Without a usable Contact the Request-URI still identifies the caller's side; the
        // datagram goes to the flow's source address anyway (see `b2bua`).
        let remote_target =
            crate::sip::message::contact_uri(invite).unwrap_or_else(|| invite.uri.clone());
        let route_set = invite
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(rr) => Some(rr.value().to_string()),
                _ => None,
            })
            .collect();
        Ok(Self {
            call_id,
            local_tag: local_tag.to_string(),
            remote_tag,
            remote_party: from.value().to_string(),
            local_party: format!("{};tag={}", to.value(), local_tag),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq,
            invite_cseq: 0,
        })
    }

    /// Builds the UAC side of a dialog from the INVITE holdfast sent and the 2xx that
    /// answered it (§12.1.2).
    pub fn from_uac(invite: &rsip::Request, ok: &rsip::Response) -> Result<Self, DialogError> {
        let from = invite
            .from_header()
            .map_err(|_| DialogError::BadHeader("From"))?;
        let local_tag = from
            .tag()
            .ok()
            .flatten()
            .map(|tag| tag.value().to_string())
            .ok_or(DialogError::BadHeader("From"))?;
        let to = ok.to_header().map_err(|_| DialogError::BadHeader("To"))?;
        let remote_tag = to
            .tag()
            .ok()
            .flatten()
            .map(|tag| tag.value().to_string())
            .unwrap_or_default();
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::BadHeader("Call-ID"))?
            .value()
            .to_string();
        let local_cseq = invite
            .cseq_header()
            .ok()
            .and_then(|c| c.seq().ok())
            .ok_or(DialogError::BadHeader("CSeq"))?;
        let remote_target =
            crate::sip::message::contact_uri(ok).unwrap_or_else(|| invite.uri.clone());
        let mut route_set: Vec<String> = ok
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(rr) => Some(rr.value().to_string()),
                _ => None,
            })
            .collect();
        route_set.reverse();
        Ok(Self {
            call_id,
            local_tag,
            remote_tag,
            remote_party: to.value().to_string(),
            local_party: from.value().to_string(),
            remote_target,
            route_set,
            local_cseq,
            remote_cseq: 0,
            invite_cseq: local_cseq,
        })
    }

    /// Whether `request` belongs to this dialog (§12.2.2: Call-ID, From tag, To tag).
    pub fn matches(&self, call_id: &str, from_tag: Option<&str>, to_tag: Option<&str>) -> bool {
        call_id == self.call_id
            && from_tag.unwrap_or("") == self.remote_tag
            && to_tag == Some(self.local_tag.as_str())
    }

    /// Whether an in-dialog request belongs to this dialog (Call-ID and both tags).
    pub fn matches_request(&self, request: &rsip::Request) -> bool {
        use crate::sip::message;
        message::call_id(request).is_some_and(|call_id| {
            self.matches(
                call_id,
                message::from_tag(request),
                message::to_tag(request),
            )
        })
    }

    /// Records the CSeq of an in-dialog request from the caller; `false` means it is older
    /// than one already seen and must be refused with `500` (§12.2.2).
    pub fn accept_remote_cseq(&mut self, seq: u32, method: &rsip::Method) -> bool {
        if matches!(method, rsip::Method::Ack | rsip::Method::Cancel) {
            return true;
        }
        if seq < self.remote_cseq {
            return false;
        }
        self.remote_cseq = seq;
        true
    }

    /// The ACK for a 2xx to our INVITE (§13.2.2.4): the INVITE's CSeq number with method
    /// ACK, sent to the remote target with the route set. It is not a transaction, so it
    /// does not advance our CSeq.
    pub fn ack(&mut self, via: &str, branch: &str) -> rsip::Request {
        let (seq, next) = (self.invite_cseq, self.local_cseq);
        let mut ack = self.request(rsip::Method::Ack, via, branch);
        self.local_cseq = next;
        ack.headers.retain(|h| !matches!(h, Header::CSeq(_)));
        ack.headers
            .push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
        ack
    }

    /// The Request-URI and Route header values of a request in this dialog (§12.2.1.1):
    /// with an empty route set or a loose router first (`;lr`, §16.12), the remote target
    /// and the route set as it is; with a strict router first, that router's URI as
    /// Request-URI and the rest of the route set followed by the remote target as Route.
    fn request_uri_and_routes(&self) -> (rsip::Uri, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let first_uri = crate::sip::uri::addr_spec(first);
        if first_uri.is_none_or(is_loose_route) {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        let Some(uri) = first_uri.and_then(crate::sip::uri::parse) else {
            return (self.remote_target.clone(), self.route_set.clone());
        };
        let mut routes: Vec<String> = self.route_set[1..].to_vec();
        routes.push(format!("<{}>", self.remote_target));
        (uri, routes)
    }

    /// A target refresh (§12.2.2: re-INVITE or UPDATE, RFC 3311 §5.2): a Contact in the
    /// request replaces the remote target; the route set never changes.
    pub fn refresh_target(&mut self, request: &rsip::Request) {
        if let Some(target) = crate::sip::message::contact_uri(request) {
            self.remote_target = target;
        }
    }

    /// Builds an in-dialog request from holdfast (§12.2.1.1). `via` is our sent-by
    /// (`host:port`), `branch` a fresh RFC 3261 branch.
    pub fn request(&mut self, method: rsip::Method, via: &str, branch: &str) -> rsip::Request {
        self.local_cseq += 1;
        let mut headers: Vec<Header> = vec![
            crate::sip::message::via(via, branch),
            Header::MaxForwards(rsip::headers::MaxForwards::new("70")),
            Header::From(rsip::headers::From::new(self.local_party.clone())),
            Header::To(rsip::headers::To::new(self.remote_party.clone())),
            Header::CallId(rsip::headers::CallId::new(self.call_id.clone())),
            Header::CSeq(rsip::headers::CSeq::new(format!(
                "{} {}",
                self.local_cseq, method
            ))),
        ];
        let (uri, routes) = self.request_uri_and_routes();
        headers.extend(
            routes
                .into_iter()
                .map(|r| Header::Route(rsip::headers::Route::new(r))),
        );
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        if method == rsip::Method::Invite {
            // A re-INVITE: its 2xx is ACKed with this CSeq number (§13.2.2.4).
            self.invite_cseq = self.local_cseq;
        }
        rsip::Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}

/// Whether a Route/Record-Route URI names a loose router: it carries the `lr` parameter
/// (RFC 3261 §19.1.1, §16.12). Anything else is a strict router (RFC 2543).
fn is_loose_route(uri: &str) -> bool {
    let uri = uri.split_once('?').map_or(uri, |(before, _)| before);
    uri.split(';').skip(1).any(|param| {
        param
            .split('=')
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("lr"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1\r\n\
From: \"Ann\" <sip:+15551234567@127.0.0.1:5080>;tag=abc\r\n\
To: <sip:100@127.0.0.1:5060>\r\n\
Call-ID: call-1@host\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:ann@127.0.0.1:5080>\r\n\
Record-Route: <sip:proxy1;lr>\r\n\
Record-Route: <sip:proxy2;lr>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> rsip::Request {
        rsip::Request::try_from(INVITE).expect("test INVITE parses")
    }

    #[test]
    fn bye_swaps_parties_and_targets_contact() {
        let mut d = Dialog::from_invite(&invite(), "hf1").unwrap();
        let bye = d.request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKx");
        let text = bye.to_string();
        assert!(
            text.starts_with("BYE sip:ann@127.0.0.1:5080 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("From: <sip:100@127.0.0.1:5060>;tag=hf1\r\n"),
            "{text}"
        );
        assert!(text.contains("To: \"Ann\" <sip:+15551234567@127.0.0.1:5080>;tag=abc\r\n"));
        assert!(text.contains("CSeq: 1 BYE\r\n"));
        // Route set in Record-Route order for the UAS (§12.1.1).
        let r1 = text.find("Route: <sip:proxy1;lr>").unwrap();
        let r2 = text.find("Route: <sip:proxy2;lr>").unwrap();
        assert!(r1 < r2);
        let again = d.request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKy");
        assert!(again.to_string().contains("CSeq: 2 BYE\r\n"));
    }

    #[test]
    fn uac_dialog_from_invite_and_2xx() {
        let invite = rsip::Request::try_from(
            "INVITE sip:alice@127.0.0.1:5090 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-a\r\n\
From: \"+15551234567\" <sip:+15551234567@127.0.0.1>;tag=hf-a\r\n\
To: <sip:alice@127.0.0.1>\r\n\
Call-ID: leg-1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let ok = rsip::Response::try_from(
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-a\r\n\
From: \"+15551234567\" <sip:+15551234567@127.0.0.1>;tag=hf-a\r\n\
To: <sip:alice@127.0.0.1>;tag=ag1\r\n\
Call-ID: leg-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5091>\r\n\
Record-Route: <sip:p1;lr>\r\n\
Record-Route: <sip:p2;lr>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut d = Dialog::from_uac(&invite, &ok).unwrap();
        assert_eq!(
            (d.local_tag.as_str(), d.remote_tag.as_str()),
            ("hf-a", "ag1")
        );
        let bye = d
            .request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKb")
            .to_string();
        assert!(
            bye.starts_with("BYE sip:alice@127.0.0.1:5091 SIP/2.0"),
            "{bye}"
        );
        assert!(bye.contains("From: \"+15551234567\" <sip:+15551234567@127.0.0.1>;tag=hf-a"));
        assert!(bye.contains("To: <sip:alice@127.0.0.1>;tag=ag1"));
        assert!(
            bye.contains("CSeq: 2 BYE"),
            "CSeq continues after the INVITE's"
        );
        let ack = d.ack("127.0.0.1:5060", "z9hG4bKc").to_string();
        assert!(
            ack.starts_with("ACK sip:alice@127.0.0.1:5091 SIP/2.0"),
            "{ack}"
        );
        assert!(
            ack.contains("CSeq: 1 ACK"),
            "ACK keeps the INVITE's number: {ack}"
        );
        // UAC route set is the Record-Route reversed (§12.1.2).
        assert!(bye.find("Route: <sip:p2;lr>").unwrap() < bye.find("Route: <sip:p1;lr>").unwrap());
        // Requests from the agent carry its tag in From and ours in To.
        assert!(d.matches("leg-1", Some("ag1"), Some("hf-a")));
    }

    #[test]
    fn matching_needs_both_tags() {
        let d = Dialog::from_invite(&invite(), "hf1").unwrap();
        assert!(d.matches("call-1@host", Some("abc"), Some("hf1")));
        assert!(!d.matches("call-1@host", Some("abc"), Some("other")));
        assert!(!d.matches("call-1@host", Some("abc"), None));
        assert!(!d.matches("call-2@host", Some("abc"), Some("hf1")));
    }

    #[test]
    fn remote_cseq_must_not_go_backwards() {
        let mut d = Dialog::from_invite(&invite(), "hf1").unwrap();
        assert!(d.accept_remote_cseq(8, &rsip::Method::Bye));
        assert!(!d.accept_remote_cseq(7, &rsip::Method::Info));
        assert!(d.accept_remote_cseq(7, &rsip::Method::Ack));
    }

    #[test]
    fn rfc2543_invite_without_from_tag_still_makes_a_dialog() {
        let text = INVITE.replace(";tag=abc", "");
        let req = rsip::Request::try_from(text.as_str()).unwrap();
        let d = Dialog::from_invite(&req, "x").unwrap();
        assert!(d.matches("call-1@host", None, Some("x")));
        assert!(!d.matches("call-1@host", Some("zzz"), Some("x")));
    }

    #[test]
    fn strict_router_first_takes_the_request_uri() {
        // §12.2.1.1: the first route lacks `lr`, so it becomes the Request-URI and the remote
        // target goes last in Route.
        let text = INVITE.replace(
            "Record-Route: <sip:proxy1;lr>",
            "Record-Route: <sip:10.0.0.1:5070;transport=udp>",
        );
        let req = rsip::Request::try_from(text.as_str()).unwrap();
        let mut d = Dialog::from_invite(&req, "hf1").unwrap();
        let bye = d
            .request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKs")
            .to_string();
        assert!(
            bye.to_ascii_lowercase()
                .starts_with("bye sip:10.0.0.1:5070;transport=udp sip/2.0\r\n"),
            "{bye}"
        );
        let r2 = bye.find("Route: <sip:proxy2;lr>\r\n").expect(&bye);
        let target = bye.find("Route: <sip:ann@127.0.0.1:5080>\r\n").expect(&bye);
        assert!(r2 < target, "{bye}");
        assert!(
            !bye.to_ascii_lowercase()
                .contains("10.0.0.1:5070;transport=udp>"),
            "{bye}"
        );
    }

    #[test]
    fn without_record_route_no_route_header() {
        let text = INVITE
            .replace("Record-Route: <sip:proxy1;lr>\r\n", "")
            .replace("Record-Route: <sip:proxy2;lr>\r\n", "");
        let req = rsip::Request::try_from(text.as_str()).unwrap();
        let mut d = Dialog::from_invite(&req, "hf1").unwrap();
        let bye = d
            .request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKn")
            .to_string();
        assert!(!bye.contains("Route:"), "{bye}");
    }

    #[test]
    fn loose_route_parameter_is_found_anywhere() {
        assert!(is_loose_route("sip:p1;lr"));
        assert!(is_loose_route("sip:127.0.0.1:5070;transport=udp;lr=on"));
        assert!(is_loose_route("sip:p1;LR;ftag=x"));
        assert!(!is_loose_route("sip:p1;transport=udp"));
        assert!(!is_loose_route("sip:lr@p1"));
    }

    #[test]
    fn userless_contact_with_instance_is_the_remote_target() {
        // Linphone's Contact: no user part, `+sip.instance` as a header parameter.
        let text = INVITE.replace(
            "Contact: <sip:ann@127.0.0.1:5080>",
            "Contact: <sip:127.0.0.1:5196;transport=udp>;+sip.instance=\"<urn:uuid:0c3a8f2e-1b2c-4d5e-8f90-123456789abc>\"",
        );
        let req = rsip::Request::try_from(text.as_str()).unwrap();
        let mut d = Dialog::from_invite(&req, "hf1").unwrap();
        let bye = d
            .request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKu")
            .to_string();
        assert!(
            bye.to_ascii_lowercase()
                .starts_with("bye sip:127.0.0.1:5196;transport=udp sip/2.0\r\n"),
            "{bye}"
        );
    }

    #[test]
    fn reinvite_refreshes_target_and_its_ack_repeats_its_cseq() {
        let mut d = Dialog::from_invite(&invite(), "hf1").unwrap();
        let reinvite = rsip::Request::try_from(
            INVITE
                .replace("CSeq: 7 INVITE", "CSeq: 8 INVITE")
                .replace("<sip:ann@127.0.0.1:5080>", "<sip:ann@127.0.0.1:5090>")
                .as_str(),
        )
        .unwrap();
        d.refresh_target(&reinvite);
        let ours = d.request(rsip::Method::Invite, "127.0.0.1:5060", "z9hG4bKr");
        assert!(
            ours.to_string()
                .starts_with("INVITE sip:ann@127.0.0.1:5090 SIP/2.0")
        );
        let ack = d.ack("127.0.0.1:5060", "z9hG4bKa").to_string();
        assert!(ack.contains("CSeq: 1 ACK\r\n"), "{ack}");
        let bye = d
            .request(rsip::Method::Bye, "127.0.0.1:5060", "z9hG4bKb")
            .to_string();
        assert!(bye.contains("CSeq: 2 BYE\r\n"), "{bye}");
    }
}
