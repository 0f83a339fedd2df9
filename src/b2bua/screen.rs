//! Requests screened before the transaction layer sees them (docs/behaviour.md §9): whatever
//! will be refused, or needs no state to answer, is answered statelessly (RFC 3261 §8.2.7: a
//! stateless UAS answers each retransmission afresh), so a flood of them costs no memory; and
//! the live server transactions are capped, in all and per source address.
//!
//! ```text
//!  request ─▶ retransmission, or CANCEL of a live INVITE? ─yes─▶ transaction layer
//!                 │ no
//!                 ├─ INVITE from outside the trunks ────▶ 403
//!                 ├─ INVITE while full or draining ─────▶ 503 + Retry-After
//!                 ├─ REGISTER not authenticated ────────▶ 401 challenge / 403 / 400
//!                 ├─ OPTIONS ───────────────────────────▶ 200 with Allow and Accept
//!                 ├─ CANCEL matching nothing ───────────▶ 481
//!                 ├─ in-dialog request, no such dialog ─▶ 481
//!                 └─ anything else needs a transaction:
//!                      ├─ its source over its share ────▶ dropped (counted)
//!                      ├─ all transactions in use ──────▶ 503 + Retry-After
//!                      └─ otherwise ────────────────────▶ transaction layer
//! ```
//! Stateless responses carry a To tag derived from the request (Call-ID and top Via), so a
//! retransmitted request gets the same answer without anything remembered.

use std::net::SocketAddr;
use std::time::Instant;

use super::{B2bua, push_other};
use crate::sip::message;
use crate::sip::transaction::{ServerKey, Transmit};

/// Seconds a client refused for load is asked to wait (RFC 3261 §20.33).
pub(super) const RETRY_AFTER_S: u32 = 5;

/// Why requests were refused before the transaction layer, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenStats {
    /// Answered without a transaction (every refusal and OPTIONS).
    pub stateless: u64,
    /// Dropped: the source held its whole share of transactions.
    pub over_source_share: u64,
    /// Refused `503`: every transaction was in use.
    pub over_capacity: u64,
}

impl B2bua {
    /// Screens a request; `true` when it was answered or dropped here, `false` when it goes
    /// on to the transaction layer.
    pub(super) fn screen(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        source: SocketAddr,
    ) -> bool {
        use rsip::Method;
        if request.method == Method::Ack {
            return false;
        }
        let Ok(key) = ServerKey::of(request) else {
            return false; // the transaction layer refuses it and counts it
        };
        if self.sip.transactions.matches_server(&key) {
            return false;
        }
        let in_dialog = message::to_tag(request).is_some();
        let sip = &self.config.sip;
        let response = match request.method {
            Method::Invite if !in_dialog => {
                if !self.config.is_trunk_source(source.ip()) {
                    *self.counters.stats.rejected.entry(403).or_default() += 1;
                    Some(message::response(request, 403, None))
                } else if self.draining || self.calls.len() >= sip.max_calls as usize {
                    *self.counters.stats.rejected.entry(503).or_default() += 1;
                    let mut response = message::response(request, 503, None);
                    push_other(&mut response, "Retry-After", &RETRY_AFTER_S.to_string());
                    Some(response)
                } else {
                    None
                }
            }
            Method::Register => match self.authenticate_register(now, request, source) {
                Err(response) => Some(response),
                Ok((user, algorithm)) => {
                    self.registration.verified = Some((key, user, algorithm));
                    None
                }
            },
            Method::Options => {
                let mut response = message::response(request, 200, None);
                push_other(&mut response, "Allow", message::ALLOWED_METHODS);
                push_other(&mut response, "Accept", "application/sdp");
                Some(response)
            }
            Method::Cancel => Some(message::response(request, 481, None)),
            _ if in_dialog && self.find_dialog(request).is_none() => {
                Some(message::response(request, 481, None))
            }
            _ => None,
        };
        if let Some(response) = response {
            self.send_stateless(now, request, response, source);
            return true;
        }
        // It needs a transaction: within the caps.
        let sip = &self.config.sip;
        let exempt = self.config.is_trunk_source(source.ip())
            || sip
                .auth_never_block
                .iter()
                .any(|net| net.contains(source.ip()));
        let refused = if !exempt
            && self.sip.transactions.servers_from(source.ip()) >= sip.max_transactions_per_source
        {
            self.counters.screen.over_source_share += 1;
            true
        } else if self.sip.transactions.servers() >= sip.max_transactions as usize {
            self.counters.screen.over_capacity += 1;
            let mut response = message::response(request, 503, None);
            push_other(&mut response, "Retry-After", &RETRY_AFTER_S.to_string());
            self.send_stateless(now, request, response, source);
            true
        } else {
            false
        };
        if refused {
            self.registration.verified = None;
        }
        refused
    }

    /// Sends `response` to `request`'s source with a To tag derived from the request.
    fn send_stateless(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        response: rsip::Response,
        source: SocketAddr,
    ) {
        self.counters.screen.stateless += 1;
        let code = response.status_code.code();
        if code >= 400
            && let Some(suppressed) = self.counters.screen_log.allow(now)
        {
            tracing::info!(
                %source,
                method = %request.method,
                code,
                suppressed,
                "request refused without a transaction"
            );
        }
        let tag =
            message::stable_tag(&[message::call_id(request), message::top_via_branch(request)]);
        let response = message::with_to_tag(response, &tag);
        // §18.2.2 with RFC 3581: back to the source address, as the transaction layer would.
        self.sip.stateless.push_back(Transmit {
            destination: source,
            payload: message::encode_response(&response),
        });
    }
}
