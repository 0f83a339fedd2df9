//! RFC 4028 session timers on trunk calls: how holdfast learns that a caller whose BYE was
//! lost is gone, instead of keeping its place in the queue forever.
//!
//! Negotiation (§9, holdfast as UAS): a caller's `Session-Expires` is taken as asked (below
//! `[sip] min_se` it is refused with `422` and our `Min-SE` at admission); a caller that asks
//! nothing still gets `[sip] session_expires` when that is not 0. The refresher is the one
//! the caller named, else the caller if it supports `timer`, else holdfast.
//!
//! ```text
//!  refresher   holdfast does                              on failure
//!  us (uas)    re-INVITE (UPDATE when allowed) every ½    408, 481 or no answer: BYE, the
//!              interval                                   caller leaves the queue
//!  them (uac)  waits; any re-INVITE/UPDATE restarts it    nothing by interval − min(32 s,
//!                                                         interval/3) (§10): BYE, leaves
//! ```

use std::time::{Duration, Instant};

use super::session::DialogRef;
use super::{B2bua, CallKey, CallTimer, push_other};
use crate::queue::LeaveReason;
use crate::sip::message;
use crate::sip::transaction::ClientKey;

/// The timer of one trunk call.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    /// The negotiated session interval.
    pub interval: Duration,
    /// Whether holdfast refreshes (`refresher=uas`), else the caller does. When it is due
    /// (our refresh, or the caller's last chance) is the call's [`CallTimer::Session`].
    pub we_refresh: bool,
    /// Our refresh in flight (its client transaction).
    pub refreshing: Option<ClientKey>,
    /// The caller's INVITE listed UPDATE in `Allow`: refresh with UPDATE, no SDP needed.
    pub peer_allows_update: bool,
}

/// What a request asks of session timers and what we answer: the interval and whether the
/// caller refreshes. `None`: no timer for this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Negotiated {
    pub interval: u32,
    pub uac_refreshes: bool,
}

/// Reads `Session-Expires` and `Supported`/`Require: timer` of `request` against our config.
/// `Err(min_se)`: the asked interval is below our minimum (`422`, §8.1).
pub(super) fn negotiate(
    request: &rsip::Request,
    ours: u32,
    min_se: u32,
) -> Result<Option<Negotiated>, u32> {
    let supports = has_option_tag(request, "Supported", "timer")
        || has_option_tag(request, "Require", "timer");
    let asked = message::header_value(request, "Session-Expires").and_then(|value| {
        let mut parts = value.split(';');
        let interval: u32 = parts.next()?.trim().parse().ok()?;
        let refresher = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("refresher"))
            .map(|(_, v)| v.trim().to_ascii_lowercase());
        Some((interval, refresher))
    });
    let (interval, refresher) = match asked {
        Some((interval, _)) if interval < min_se => return Err(min_se),
        Some((interval, refresher)) => (interval, refresher),
        None if ours == 0 => return Ok(None),
        None => {
            let their_min = message::header_value(request, "Min-SE")
                .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
                .unwrap_or(0);
            (ours.max(their_min).max(min_se), None)
        }
    };
    let uac_refreshes = match refresher.as_deref() {
        Some("uac") => supports,
        Some("uas") => false,
        _ => supports,
    };
    Ok(Some(Negotiated {
        interval,
        uac_refreshes,
    }))
}

/// Whether any `header` line of `request` lists `tag` (option tags, §20.37, §20.32; or a
/// method of `Allow`, §20.5).
fn has_option_tag(request: &rsip::Request, header: &str, tag: &str) -> bool {
    request.headers.iter().any(|h| {
        let (name, value) = message::header_parts(h);
        name.eq_ignore_ascii_case(header)
            && value.split(',').any(|t| t.trim().eq_ignore_ascii_case(tag))
    })
}

impl Negotiated {
    /// `Session-Expires` (and `Require: timer` when the caller refreshes) for our 2xx.
    pub(super) fn add_headers(self, response: &mut rsip::Response) {
        let refresher = if self.uac_refreshes { "uac" } else { "uas" };
        push_other(
            response,
            "Session-Expires",
            &format!("{};refresher={refresher}", self.interval),
        );
        if self.uac_refreshes {
            push_other(response, "Require", "timer");
        }
    }

    fn due(self, now: Instant) -> Instant {
        let interval = Duration::from_secs(self.interval.into());
        if self.uac_refreshes {
            // §10: the other side's refresh may be late by min(32 s, interval/3).
            now + interval - Duration::from_secs(32).min(interval / 3)
        } else {
            now + interval / 2
        }
    }
}

impl B2bua {
    /// Session timer headers for a 200 OK to `request` (the INVITE or a re-INVITE/UPDATE of
    /// call `call_key`), and the timer restarted from `now`.
    pub(super) fn session_refreshed(
        &mut self,
        now: Instant,
        call_key: CallKey,
        request: &rsip::Request,
        response: &mut rsip::Response,
    ) {
        let (ours, min_se) = (self.config.sip.session_expires, self.config.sip.min_se);
        // An interval below our minimum in a refresh is raised to it (it was accepted once).
        let negotiated = match negotiate(request, ours, min_se) {
            Ok(negotiated) => negotiated,
            Err(min_se) => Some(Negotiated {
                interval: min_se,
                uac_refreshes: false,
            }),
        };
        // An INVITE says what the caller allows; an UPDATE keeps what its INVITE said.
        let allowed_before = self
            .calls
            .get(&call_key)
            .and_then(|c| c.session.as_ref())
            .is_some_and(|timer| timer.peer_allows_update);
        let peer_allows_update = if request.method == rsip::Method::Invite {
            has_option_tag(request, "Allow", "UPDATE")
        } else {
            allowed_before
        };
        self.stop_session_timer(call_key);
        let Some(negotiated) = negotiated else {
            return;
        };
        negotiated.add_headers(response);
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        call.session = Some(SessionTimer {
            interval: Duration::from_secs(negotiated.interval.into()),
            we_refresh: !negotiated.uac_refreshes,
            refreshing: None,
            peer_allows_update,
        });
        let due = negotiated.due(now);
        self.calls.schedule(call_key, CallTimer::Session, Some(due));
    }

    /// Forgets a call's session timer (and any refresh of ours in flight).
    pub(super) fn stop_session_timer(&mut self, call_key: CallKey) {
        let Some(timer) = self.calls.get_mut(&call_key).and_then(|c| c.session.take()) else {
            return;
        };
        self.calls.schedule(call_key, CallTimer::Session, None);
        if let Some(client) = timer.refreshing {
            self.refreshes.remove(&client);
        }
    }

    /// Whether our own refresh re-INVITE is still open on `dialog` (a re-INVITE from the
    /// far end then gets `491`, §14.2).
    pub(super) fn refresh_pending(&self, dialog: DialogRef) -> bool {
        match dialog {
            DialogRef::Call(call) => self
                .calls
                .get(&call)
                .and_then(|c| c.session.as_ref())
                .is_some_and(|s| s.refreshing.is_some()),
            _ => false,
        }
    }

    /// Session timers that are due: refresh, or hang up a caller that stopped refreshing.
    pub(super) fn run_session_timers(&mut self, now: Instant) {
        while let Some(call_key) = self.calls.pop_due(CallTimer::Session, now) {
            let Some(call) = self.calls.get_mut(&call_key) else {
                continue;
            };
            let Some(timer) = call.session.as_mut() else {
                continue;
            };
            if !timer.we_refresh {
                tracing::warn!(
                    event = "session_expired",
                    call_id = %call.dialog.call_id,
                    "no session refresh from the caller (RFC 4028): hanging up"
                );
                call.session = None;
                self.hang_up(now, call_key, LeaveReason::Abandoned);
                continue;
            }
            let method = if timer.peer_allows_update {
                rsip::Method::Update
            } else {
                rsip::Method::Invite
            };
            let interval = timer.interval.as_secs();
            let mut request =
                call.dialog
                    .request(method, &self.sip.sent_by, &self.sip.ids.branch());
            let contact = message::contact(&self.sip.sent_by);
            let headers = [
                ("Contact", contact),
                ("Session-Expires", format!("{interval};refresher=uas")),
                ("Supported", "timer".to_owned()),
                ("Allow", message::ALLOWED_METHODS.to_owned()),
            ];
            for (name, value) in headers {
                request
                    .headers
                    .push(rsip::Header::Other(name.into(), value));
            }
            if method == rsip::Method::Invite {
                let body = call.local.current(self.config.sip.public_address);
                request = message::with_request_body(request, "application/sdp", body.into_bytes());
            }
            match self
                .sip
                .transactions
                .send_request(now, call.signalling, request)
            {
                Ok(client) => {
                    timer.refreshing = Some(client.clone());
                    self.refreshes.insert(client, call_key);
                }
                Err(error) => {
                    tracing::warn!(%error, "session refresh not sent");
                    let retry = now + timer.interval / 2;
                    self.calls
                        .schedule(call_key, CallTimer::Session, Some(retry));
                }
            }
        }
    }

    /// A response to (or the timeout of, `response: None`) our session refresh; `false` when
    /// `client` is not one.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Instant,
        client: &ClientKey,
        response: Option<&rsip::Response>,
    ) -> bool {
        let Some(&call_key) = self.refreshes.get(client) else {
            return false;
        };
        let code = response.map(|r| r.status_code.code());
        if matches!(code, Some(100..=199)) {
            return true;
        }
        self.refreshes.remove(client);
        let sent_by = self.sip.sent_by.clone();
        let Some(call) = self.calls.get_mut(&call_key) else {
            return true;
        };
        let Some(timer) = call.session.as_mut() else {
            return true;
        };
        timer.refreshing = None;
        let retry_in = match code {
            Some(200..=299) => {
                if client.method() == rsip::Method::Invite {
                    // §13.2.2.4: our re-INVITE's 2xx is ACKed end to end.
                    let ack = call.dialog.ack(&sent_by, &self.sip.ids.branch());
                    self.sip.transactions.send_stateless(call.signalling, ack);
                }
                timer.interval / 2
            }
            // §14.1: glare with the caller's own re-INVITE; try again shortly.
            Some(491) => Duration::from_secs(2),
            Some(422) => {
                let min = response
                    .and_then(|r| message::header_value(r, "Min-SE"))
                    .and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                timer.interval = timer.interval.max(Duration::from_secs(min));
                Duration::ZERO
            }
            None | Some(408) | Some(481) => {
                tracing::warn!(
                    event = "session_expired",
                    call_id = %call.dialog.call_id,
                    code,
                    "session refresh failed (RFC 4028 §10): hanging up"
                );
                call.session = None;
                self.hang_up(now, call_key, LeaveReason::Abandoned);
                return true;
            }
            // Refused for another reason: the session itself goes on.
            Some(_) => timer.interval / 2,
        };
        self.calls
            .schedule(call_key, CallTimer::Session, Some(now + retry_in));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn a_caller_without_timer_support_is_refreshed_by_us() {
        let n = negotiate(&invite(""), 1800, 90).unwrap().unwrap();
        assert_eq!((n.interval, n.uac_refreshes), (1800, false));
        assert_eq!(negotiate(&invite(""), 0, 90), Ok(None), "off unless asked");
    }

    #[test]
    fn a_caller_that_supports_timer_refreshes_itself_unless_it_says_otherwise() {
        let n = negotiate(&invite("Supported: 100rel, timer\r\n"), 1800, 90)
            .unwrap()
            .unwrap();
        assert!(n.uac_refreshes);
        let n = negotiate(
            &invite("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n"),
            1800,
            90,
        )
        .unwrap()
        .unwrap();
        assert_eq!((n.interval, n.uac_refreshes), (600, false));
        // `refresher=uac` from a UA that does not list `timer` cannot bind it (§9).
        let n = negotiate(&invite("Session-Expires: 600;refresher=uac\r\n"), 0, 90)
            .unwrap()
            .unwrap();
        assert_eq!((n.interval, n.uac_refreshes), (600, false));
    }

    #[test]
    fn too_short_an_interval_is_refused_with_our_minimum() {
        assert_eq!(
            negotiate(&invite("Session-Expires: 30\r\n"), 1800, 90),
            Err(90)
        );
        // The caller's own Min-SE raises our interval.
        let n = negotiate(&invite("Min-SE: 3600\r\n"), 1800, 90)
            .unwrap()
            .unwrap();
        assert_eq!(n.interval, 3600);
    }

    #[test]
    fn deadlines_follow_section_10() {
        let now = Instant::now();
        let us = Negotiated {
            interval: 1800,
            uac_refreshes: false,
        };
        assert_eq!(us.due(now), now + Duration::from_secs(900));
        let them = Negotiated {
            interval: 90,
            uac_refreshes: true,
        };
        assert_eq!(them.due(now), now + Duration::from_secs(60));
        let long = Negotiated {
            interval: 1800,
            uac_refreshes: true,
        };
        assert_eq!(long.due(now), now + Duration::from_secs(1768));
    }
}
