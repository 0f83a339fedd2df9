//! Recording bridged calls (docs/behaviour.md §5, "Recording"): the controller decides that
//! a call is recorded and where; the media engine's tap and writer thread do the rest
//! (`crate::media::recording`).

use std::time::Instant;

use super::B2bua;
use super::leg::LegKey;
use crate::media::engine::StreamId;
use crate::media::recording::files;

impl B2bua {
    /// Starts recording the call of agent leg `leg_key`, just bridged to `caller_stream`,
    /// when its queue records. The file is named by `call_id` under the day of `now`; a
    /// leg that was recorded before (a call kept through a restart) keeps its file, which
    /// the writer continues.
    pub(super) fn start_recording(
        &mut self,
        now: Instant,
        leg_key: LegKey,
        caller_stream: StreamId,
        call_id: &str,
    ) {
        let unix_ms = self.unix_ms_at(now);
        let Some(leg) = self.legs.get_mut(&leg_key) else {
            return;
        };
        if !self.config.queues[leg.queue.0].record {
            return;
        }
        let path = leg.recording.get_or_insert_with(|| {
            files::path_for(&self.config.media.recordings, unix_ms, call_id)
        });
        self.media.record(caller_stream, leg.stream, path.clone());
    }
}

/// The `complete` event's detail for an ending leg: the recording's path, if any.
pub(super) fn detail(recording: Option<&std::path::Path>) -> Option<serde_json::Value> {
    recording.map(|path| serde_json::json!({ "recording": path.display().to_string() }))
}
