//! Callers on hold (docs/behaviour.md §4): the music starts with the entry announcement due at once,
//! and every `announce_every` seconds the position and the estimated wait are spoken
//! (with the callback offer when the wait is long, docs/behaviour.md §6).

use std::time::Instant;

use super::announce::AnnounceSchedule;
use super::{B2bua, CallKey, CallTimer};
use crate::queue::QueueId;
use crate::store::CallEventKind;

impl B2bua {
    /// Start the hold music for an answered, waiting caller, with its entry announcement
    /// due at once (docs/behaviour.md §4).
    pub(super) fn start_music(&mut self, now: Instant, call_key: CallKey) {
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        let media = call.media;
        let music = self.audio.music.for_codec(media.codec);
        self.media
            .play(call.stream, media.remote, media.payload_type, music);
        self.media
            .set_telephone_event(call.stream, media.telephone_event);
        self.start_announcements(now, call_key);
    }

    /// (Re)starts a held caller's announcements, the first one due at once.
    pub(super) fn start_announcements(&mut self, now: Instant, call_key: CallKey) {
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        let Some(queue) = call.queue else {
            return;
        };
        let config = &self.config.queues[queue.0];
        let schedule = AnnounceSchedule::new(
            now,
            config.announce_every,
            config.announce_position_only_down,
        )
        .with_options(super::announce::options(config), now, now);
        let at = schedule.poll_timeout();
        call.announce = Some(schedule);
        self.calls.schedule(call_key, CallTimer::Announce, at);
        self.start_max_wait(now, call_key, queue);
    }

    /// Speak to every held caller whose announcement is due: position and estimated wait
    /// (docs/behaviour.md §4), as a list of the shared, pre-encoded clips, played between music frames.
    pub(super) fn run_announcements(&mut self, now: Instant) {
        while let Some(call_key) = self.calls.pop_due(CallTimer::Announce, now) {
            let Some(call) = self.calls.get_mut(&call_key) else {
                continue;
            };
            let (Some(queue), Some(schedule)) = (call.queue, call.announce.as_mut()) else {
                continue;
            };
            let Some(position) = self.queues.position(call_key.entry()) else {
                continue;
            };
            let spoken = schedule.on_timeout(now, position);
            let message = schedule.take_message(now);
            let next = schedule.poll_timeout();
            self.calls.schedule(call_key, CallTimer::Announce, next);
            let Some(call) = self.calls.get(&call_key) else {
                continue;
            };
            let (stream, codec) = (call.stream, call.codec);
            if let Some(position) = spoken {
                self.announce_position(now, call_key, queue, position);
            }
            if let Some(index) = message {
                // A periodic message, after whatever is playing.
                match self
                    .audio
                    .prompts
                    .message(queue.0, index, super::callback::law(codec))
                {
                    Some(frames) => self.media.prompt(stream, frames),
                    None => tracing::warn!(queue = queue.0, index, "periodic message not loaded"),
                }
            }
        }
    }

    /// Says `position` and the wait to the caller (with the callback offer when it applies).
    fn announce_position(
        &mut self,
        now: Instant,
        call_key: CallKey,
        queue: QueueId,
        position: usize,
    ) {
        let Some(call) = self.calls.get(&call_key) else {
            return;
        };
        let (stream, codec, language) = (call.stream, call.codec, call.language);
        let staffed = self.agents.staffed(queue);
        let estimate = self.tell_wait(now, queue, call_key.entry(), position);
        let announcement =
            super::announce::queue_announcement(&self.config.queues[queue.0], position, estimate);
        let frames =
            self.audio
                .prompts
                .render(language, &announcement, super::callback::law(codec));
        let frames = self.with_callback_offer(now, call_key, queue, estimate, frames);
        self.media.prompt(stream, frames);
        let mut facts = self.leg_facts(queue, None, call_key);
        facts.waited = self
            .calls
            .get(&call_key)
            .map(|c| now.saturating_duration_since(c.started));
        facts.detail = Some(serde_json::json!({
            "position": position,
            "staffed": staffed,
            "estimate_s": estimate.as_secs(),
        }));
        self.call_event(now, CallEventKind::Announce, facts);
    }
}
