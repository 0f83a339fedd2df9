//! `[[queue]] max_wait` and `overflow` (docs/behaviour.md §3): a timer per held caller, set
//! when it starts holding in a queue with a limit, fired to the second (not polled).
//!
//! ```text
//!  overflow = "<queue>"   the caller leaves for that queue with its level, sequence number
//!                         and join time: its place there is the one its arrival gives it,
//!                         not the back; that queue's max_wait counts from the move
//!  overflow = "callback"  the callback offer is played at once (whatever the estimate);
//!                         1 commits it as usual
//!  overflow = "hangup"    "Goodbye.", then BYE
//! ```
//! A caller whose agent is ringing when the limit comes is left alone; the limit is looked
//! at again a second later.

use std::time::{Duration, Instant};

use super::callback::law;
use super::{B2bua, CallKey, CallTimer};
use crate::media::prompts::Announcement;
use crate::queue::{EntryKind, LeaveReason, QueueId};
use crate::store::CallEventKind;

/// How long a limit reached while the caller's agent rings waits before it is looked at again.
const WHILE_RINGING: Duration = Duration::from_secs(1);

impl B2bua {
    /// Starts the queue's `max_wait` for a caller that now holds in `queue`, unless it runs
    /// already.
    pub(super) fn start_max_wait(&mut self, now: Instant, call_key: CallKey, queue: QueueId) {
        let limit = self.config.queues[queue.0].max_wait;
        let running = self
            .calls
            .get(&call_key)
            .is_none_or(|c| c.max_wait_at().is_some());
        if limit == 0 || running {
            return;
        }
        let joined = self
            .queues
            .get(call_key.entry())
            .map_or(now, |(_, entry)| entry.joined_at);
        let at = joined + Duration::from_secs(limit);
        self.calls.schedule(call_key, CallTimer::MaxWait, Some(at));
    }

    /// Overflows every caller whose `max_wait` ran out by `now`.
    pub(super) fn run_max_waits(&mut self, now: Instant) {
        while let Some(call_key) = self.calls.pop_due(CallTimer::MaxWait, now) {
            let entry = call_key.entry();
            let Some(queue) = self.calls.get(&call_key).and_then(|c| c.queue) else {
                continue;
            };
            if self.queues.get(entry).is_none() {
                continue;
            }
            if self.agents.offered_to(entry).is_some() || self.offered.contains(&entry) {
                self.calls
                    .schedule(call_key, CallTimer::MaxWait, Some(now + WHILE_RINGING));
                continue;
            }
            let target = self.config.queues[queue.0].overflow.clone();
            self.overflow(now, call_key, queue, &target, "max_wait");
        }
    }

    /// Sends the caller at `call_key`, waiting in `from`, to `target` (a queue's name,
    /// `"callback"` or `"hangup"`); `because` names the rule for the call event.
    pub(super) fn overflow(
        &mut self,
        now: Instant,
        call_key: CallKey,
        from: QueueId,
        target: &str,
        because: &str,
    ) {
        let entry = call_key.entry();
        self.keep(call_key);
        let waited = self
            .calls
            .get(&call_key)
            .map(|c| now.saturating_duration_since(c.started));
        let mut facts = self.leg_facts(from, None, call_key);
        facts.waited = waited;
        facts.detail = Some(serde_json::json!({ "to": target, "because": because }));
        self.call_event(now, CallEventKind::Overflow, facts);
        match target {
            "hangup" => {
                // Out of the line at once: nobody is offered a caller who is being let go.
                self.queues.leave(entry, LeaveReason::Removed);
                self.drain_queue_events(now);
                let Some(call) = self.calls.get_mut(&call_key) else {
                    return;
                };
                call.announce = None;
                let (stream, codec, language) = (call.stream, call.codec, call.language);
                self.calls.schedule(call_key, CallTimer::Announce, None);
                let message = if because == "closed" {
                    Announcement::Closed
                } else {
                    Announcement::Goodbye
                };
                let frames = self.audio.prompts.render(language, &message, law(codec));
                self.media.prompt_now(stream, frames);
                self.callbacks.confirming(stream, call_key);
            }
            "callback" => {
                let Some(call) = self.calls.get_mut(&call_key) else {
                    return;
                };
                if !self.config.queues[from.0].callback_number_allowed(&call.caller) {
                    tracing::info!(
                        call = call_key.0,
                        "overflow to callback: number not allowed; keeps waiting"
                    );
                    return;
                }
                call.offer_from = Some(call.offer_from.map_or(now, |at| at.min(now)));
                let (stream, codec, language) = (call.stream, call.codec, call.language);
                let frames =
                    self.audio
                        .prompts
                        .render(language, &Announcement::CallbackOffer, law(codec));
                self.media.prompt_now(stream, frames);
                self.callbacks.offer_heard(stream, call_key);
            }
            name => {
                let Some(to) = self.config.queue_index(name).map(QueueId) else {
                    return;
                };
                let Some((_, left)) = self.queues.leave(entry, LeaveReason::Removed) else {
                    return;
                };
                // Its arrival, not the moment of the move, decides its place there.
                let joined = left.joined_at;
                if let Err(error) = self.queues.join_with_seq(
                    joined,
                    to,
                    entry,
                    left.level,
                    left.seq,
                    EntryKind::Caller,
                ) {
                    tracing::error!(%error, call = call_key.0, "overflow join failed");
                    return;
                }
                self.drain_queue_events(now);
                if let Some(call) = self.calls.get_mut(&call_key) {
                    call.queue = Some(to);
                }
                self.start_announcements(now, call_key);
                let limit = self.config.queues[to.0].max_wait;
                if limit > 0 {
                    let at = now + Duration::from_secs(limit);
                    self.calls.schedule(call_key, CallTimer::MaxWait, Some(at));
                }
            }
        }
    }
}
