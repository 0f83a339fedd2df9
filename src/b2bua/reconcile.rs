//! Callbacks after a restart: settling the trunk INVITE that was in flight when holdfast
//! died (docs/behaviour.md §6, "After a crash").
//!
//! Every dial-back INVITE is recorded (state `dialling` with the INVITE's wire bytes) before
//! it is sent, and the attempt's end clears the record (`dialback.rs`). A callback that comes
//! back from the store still `dialling` with its INVITE therefore had that INVITE possibly
//! ringing the caller's phone when the process died; no client transaction survives a
//! restart, so it is settled here instead of being dialled blind:
//!
//! ```text
//!  restore: back at its place (same seq), phase Reconciling, deadline now + 64·T1
//!    └─▶ CANCEL built from the stored INVITE (RFC 3261 §9.1), as a client transaction
//!          INVITE responses arrive stray (no transaction): matched by Call-ID + top Via branch
//!          ├─ 1xx: still ringing, the CANCEL is on its way
//!          ├─ 300–699 (487 …): ACK (§17.1.1.3); the attempt counts; retry later or `failed`
//!          ├─ 2xx: the caller answered while we were down: ACK, BYE (§13.2.2.4, §15.1.1);
//!          │        `failed`, never dialled again
//!          └─ nothing by the deadline: the INVITE never reached a final response we must
//!                   honour; the attempt counts; retry later or `failed`
//! ```
//! The CANCEL goes out at once: §9.1 holds a CANCEL back until a provisional response, so
//! that it does not overtake its INVITE; here the INVITE left before the restart. A CANCEL
//! for an INVITE that never arrived is answered `481` and the deadline settles it.
//!
//! A final response we ACKed is remembered for 64·T1 ([`SettledInvites`]), so its
//! retransmissions (our ACK was lost) are ACKed again, as the transaction layer does for
//! the INVITEs it knows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::B2bua;
use super::callbacks::Callback;
use crate::queue::EntryId;
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::{TimerConfig, ack_for, cancel_for};
use crate::store::CallbackId;

/// How long a restored INVITE may take to reach a final response after its CANCEL:
/// 64·T1, the INVITE client's own limit after a CANCEL (RFC 3261 §9.1, Timer B).
pub(super) fn reconcile_window() -> Duration {
    TimerConfig::default().t1 * 64
}

/// Error stored on a callback whose caller answered an INVITE sent before a restart.
pub(super) const ANSWERED_DURING_RESTART: &str = "answered during a restart; not dialled again";

/// An INVITE we sent, as its responses name it: Call-ID and top Via branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InviteKey {
    call_id: String,
    branch: String,
}

impl InviteKey {
    /// The key of an INVITE we sent; `None` without a Call-ID or a top Via branch.
    fn of_invite(invite: &rsip::Request) -> Option<Self> {
        Some(Self {
            call_id: message::call_id(invite)?.to_owned(),
            branch: message::top_via_branch(invite)?.to_owned(),
        })
    }

    /// The INVITE a response answers; `None` for a response to anything else (a late
    /// response to our CANCEL has the same Call-ID and branch).
    fn of_response(response: &rsip::Response) -> Option<Self> {
        let (_, method) = message::cseq(response)?;
        (method == rsip::Method::Invite).then_some(())?;
        Some(Self {
            call_id: message::call_id(response)?.to_owned(),
            branch: message::top_via_branch(response)?.to_owned(),
        })
    }
}

/// A trunk INVITE from before a restart, being settled.
#[derive(Debug)]
pub struct Reconcile {
    /// The INVITE as recorded before it was sent.
    pub invite: rsip::Request,
    /// Where it went (its Request-URI names the trunk).
    pub destination: SocketAddr,
    /// No final response by then: it is settled as unanswered.
    pub deadline: Instant,
    /// Its Call-ID and branch: an index key, fixed for life.
    key: InviteKey,
}

impl Reconcile {
    /// Its Call-ID and branch.
    pub fn key(&self) -> &InviteKey {
        &self.key
    }
}

/// Restored INVITEs whose final response we ACKed, each with that ACK, where it went and
/// until when a retransmitted final gets it again.
#[derive(Debug, Default)]
pub struct SettledInvites {
    acks: HashMap<InviteKey, (rsip::Request, SocketAddr, Instant)>,
}

impl SettledInvites {
    fn insert(&mut self, key: InviteKey, ack: rsip::Request, to: SocketAddr, until: Instant) {
        self.acks.insert(key, (ack, to, until));
    }

    /// The ACK to send again for a retransmitted final of `key`; expired ones are dropped.
    fn again(&mut self, now: Instant, key: &InviteKey) -> Option<(rsip::Request, SocketAddr)> {
        self.acks.retain(|_, (_, _, until)| *until > now);
        self.acks.get(key).map(|(ack, to, _)| (ack.clone(), *to))
    }
}

impl B2bua {
    /// The INVITE recorded for a `dialling` callback, if it can be read back, to settle by
    /// `now` + 64·T1; `None` leaves the callback to the plain restore (dialled again, the
    /// attempt not counted).
    pub(super) fn recorded_invite(
        &self,
        now: Instant,
        id: CallbackId,
        bytes: &[u8],
    ) -> Option<Reconcile> {
        let invite = match message::parse(bytes) {
            Ok(rsip::SipMessage::Request(invite)) if invite.method == rsip::Method::Invite => {
                invite
            }
            _ => {
                tracing::warn!(
                    callback = id.0,
                    "recorded INVITE unreadable: not reconciled"
                );
                return None;
            }
        };
        let key = InviteKey::of_invite(&invite)?;
        // Sent to the address in its Request-URI (`sip:<number>@<trunk address>`).
        let destination = invite
            .uri
            .host_with_port
            .to_string()
            .parse()
            .ok()
            .or_else(|| self.config.trunks.first().map(|t| t.address))?;
        Some(Reconcile {
            invite,
            destination,
            deadline: now + reconcile_window(),
            key,
        })
    }

    /// Files a restored callback as `Reconciling` and cancels its old INVITE (§9.1).
    pub(super) fn start_reconcile(
        &mut self,
        now: Instant,
        entry: EntryId,
        callback: Callback,
        reconcile: Reconcile,
    ) {
        let cancel = cancel_for(&reconcile.invite);
        if let Err(error) = self
            .sip
            .transactions
            .send_request(now, reconcile.destination, cancel)
        {
            // Settled by a final response that comes anyway, or by the deadline.
            tracing::warn!(%error, callback = callback.id.0, "CANCEL not sent");
        }
        tracing::info!(
            event = "callback_reconcile",
            callback = callback.id.0,
            call_id = %reconcile.key.call_id,
            "cancelling the INVITE sent before the restart"
        );
        self.callbacks
            .insert_reconciling(entry, callback, reconcile);
    }

    /// A response that matched no client transaction: one to an INVITE from before the
    /// restart, or a retransmission of a final we settled already; anything else is dropped.
    pub(super) fn on_stray_response(
        &mut self,
        now: Instant,
        response: rsip::Response,
        source: SocketAddr,
    ) {
        let Some(key) = InviteKey::of_response(&response) else {
            tracing::debug!(%source, "response matching no transaction dropped");
            return;
        };
        let code = response.status_code.code();
        if let Some(entry) = self.callbacks.by_invite_key(&key) {
            match code {
                100..=199 => tracing::debug!(code, "restored INVITE still ringing"),
                200..=299 => self.answered_during_restart(now, entry, &response),
                _ => self.ended_after_restart(now, entry, &response, code),
            }
        } else if let Some((ack, to)) = self.callbacks.settled.again(now, &key) {
            // §17.1.1.2 and §13.2.2.4: a retransmitted final means our ACK was lost.
            self.sip.transactions.send_stateless(to, ack);
        } else {
            tracing::debug!(%source, code, "response matching no transaction dropped");
        }
    }

    /// A non-2xx final for a restored INVITE: ACK it (§17.1.1.3); the attempt is over.
    fn ended_after_restart(
        &mut self,
        now: Instant,
        entry: EntryId,
        response: &rsip::Response,
        code: u16,
    ) {
        let Some(reconcile) = self.callbacks.end_reconcile(entry) else {
            return;
        };
        let ack = ack_for(&reconcile.invite, response);
        self.settle(now, reconcile, ack);
        self.retry_or_fail(
            now,
            entry,
            &format!("trunk answered {code} after a restart"),
        );
    }

    /// The caller answered an INVITE sent before the restart. Whoever dialled is gone, so
    /// the call is ACKed and hung up (§13.2.2.4, §15.1.1), and the callback is `failed`:
    /// a caller who answered is never called a second time.
    fn answered_during_restart(&mut self, now: Instant, entry: EntryId, ok: &rsip::Response) {
        let Some(reconcile) = self.callbacks.end_reconcile(entry) else {
            return;
        };
        match Dialog::from_uac(&reconcile.invite, ok) {
            Ok(mut dialog) => {
                let ack = dialog.ack(&self.sip.sent_by, &self.sip.ids.branch());
                let to = reconcile.destination;
                self.settle(now, reconcile, ack);
                self.sip.bye(now, &mut dialog, to);
            }
            Err(error) => tracing::warn!(%error, "2xx to a restored INVITE unusable"),
        }
        self.fail_callback(now, entry, ANSWERED_DURING_RESTART);
    }

    /// Sends `ack` for a restored INVITE's final and remembers it for retransmissions.
    fn settle(&mut self, now: Instant, reconcile: Reconcile, ack: rsip::Request) {
        let until = now + reconcile_window();
        self.sip
            .transactions
            .send_stateless(reconcile.destination, ack.clone());
        self.callbacks
            .settled
            .insert(reconcile.key, ack, reconcile.destination, until);
    }

    /// Restored INVITEs with no final response by their deadline: they were never answered
    /// and ACKed (we ACK only once `completed` is durable), so the attempt failed.
    pub(super) fn expire_reconciles(&mut self, now: Instant) {
        while let Some(entry) = self.callbacks.due_reconcile(now) {
            self.callbacks.end_reconcile(entry);
            self.retry_or_fail(
                now,
                entry,
                "no final response to the INVITE sent before a restart",
            );
        }
    }
}
