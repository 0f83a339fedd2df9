//! The engine's per-stream commands: what plays, where it goes, bridges, recordings and
//! supervisors. Each is routed to the stream's shard and applied there in order.

use std::net::SocketAddr;

use bytes::Bytes;

use super::{MediaEngine, MediaError, StreamId};
use crate::media::player::{FramesError, Prompt, frame_count};
use crate::media::shard::Command;

impl MediaEngine {
    /// Starts sending `music` (looped 160-byte G.711 frames, shared) to `remote` with payload
    /// type `payload_type`, or to the latched address if RTP already arrived. On a stream that
    /// played (or relayed) before, the RTP stream continues (same SSRC, sequence and
    /// timestamp run on) and the new music starts at its first frame. A bridge the stream is
    /// in ends (the other leg goes idle).
    pub fn play(
        &self,
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
        music: Bytes,
    ) -> Result<(), MediaError> {
        frame_count(&music)?;
        self.send(
            id,
            Command::Play {
                id,
                remote,
                payload_type,
                music,
            },
        )
    }

    /// Queues an announcement: the music pauses, `frames` play, the music resumes where it
    /// paused, and [`MediaEvent::PromptDone`] follows. Ignored (logged) if the stream never
    /// played.
    pub fn prompt(&self, id: StreamId, frames: Prompt) -> Result<(), MediaError> {
        self.send_prompt(id, frames, false)
    }

    /// Plays `frames` at once, cutting short the prompt that plays and dropping any queued
    /// behind it (no [`MediaEvent::PromptDone`] for those): the callback confirmation
    /// answering a key pressed in the middle of the offer.
    pub fn prompt_now(&self, id: StreamId, frames: Prompt) -> Result<(), MediaError> {
        self.send_prompt(id, frames, true)
    }

    fn send_prompt(&self, id: StreamId, frames: Prompt, interrupt: bool) -> Result<(), MediaError> {
        if frames.is_empty() {
            return Err(FramesError::Empty.into());
        }
        self.send(
            id,
            Command::Prompt {
                id,
                frames,
                interrupt,
            },
        )
    }

    /// Sets the negotiated RFC 4733 telephone-event payload type (`None`: not negotiated),
    /// so those inbound packets are recognised.
    pub fn set_telephone_event(&self, id: StreamId, payload_type: Option<u8>) {
        let _ = self.send(id, Command::TelephoneEvent { id, payload_type });
    }

    /// Makes stream `id` SRTP (RFC 3711): what arrives is authenticated and decrypted with
    /// `receive` (the peer's SDES key), what leaves is encrypted with `send` (ours). Sent
    /// before the stream plays or connects, so no plain packet leaves it.
    pub fn secure(
        &self,
        id: StreamId,
        receive: crate::srtp::MasterKey,
        send: crate::srtp::MasterKey,
    ) -> Result<(), MediaError> {
        self.send(id, Command::Secure { id, receive, send })
    }

    /// Gives a leg its far end without playing anything: `remote` from SDP (a latched
    /// source still wins, as for [`MediaEngine::play`]) and the audio `payload_type` it
    /// receives, which decides PCMU/PCMA transcoding when bridged. For the agent leg, once
    /// the agent's answer arrives; may be called again (re-INVITE).
    pub fn connect(
        &self,
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
    ) -> Result<(), MediaError> {
        self.send(
            id,
            Command::Connect {
                id,
                remote,
                payload_type,
            },
        )
    }

    /// Bridges two streams on the same shard: each stops what it was doing (music, or an
    /// earlier bridge, whose partner goes idle) and every RTP packet received on one is
    /// forwarded out of the other to its far end (latched address, else the one from
    /// `play`/`connect`; dropped and counted while there is none), on that leg's own RTP
    /// stream (same SSRC as its music, sequence and timestamp continuing, marker on the
    /// first relayed packet), with telephone-event payload types mapped
    /// ([`MediaEngine::set_telephone_event`] on both legs) and G.711 transcoded when the
    /// legs' audio types differ. An id already closed makes this a no-op (logged).
    pub fn bridge(&self, a: StreamId, b: StreamId) -> Result<(), MediaError> {
        if a == b {
            return Err(MediaError::SameStream(a));
        }
        if a.shard() != b.shard() {
            return Err(MediaError::NotBeside { a, b });
        }
        self.send(a, Command::Bridge { a, b })
    }

    /// Records the call whose caller leg is `caller` and agent leg `agent` (both on one
    /// shard) into `path`, a stereo WAV (caller left, agent right) written while they are
    /// bridged, until either leg closes ([`crate::media::recording`]).
    pub fn record(
        &self,
        caller: StreamId,
        agent: StreamId,
        path: std::path::PathBuf,
    ) -> Result<(), MediaError> {
        if caller.shard() != agent.shard() {
            return Err(MediaError::NotBeside {
                a: caller,
                b: agent,
            });
        }
        self.send(
            caller,
            Command::Record {
                caller,
                agent,
                path,
            },
        )
    }

    /// Makes `supervisor` (a stream on the call's shard) monitor the bridged call of legs
    /// `caller` and `agent`: it is sent both sides mixed, and in `mode` whisper or barge its
    /// voice is mixed into what the agent (and the caller) hear ([`crate::media::mix`]). Ends when
    /// any of the three streams is stopped, played on or closed.
    pub fn monitor(
        &self,
        supervisor: StreamId,
        caller: StreamId,
        agent: StreamId,
        mode: crate::media::mix::MonitorMode,
    ) -> Result<(), MediaError> {
        if supervisor.shard() != caller.shard() || caller.shard() != agent.shard() {
            return Err(MediaError::NotBeside {
                a: supervisor,
                b: caller,
            });
        }
        self.send(
            supervisor,
            Command::Monitor {
                supervisor,
                caller,
                agent,
                mode,
            },
        )
    }

    /// Ends the bridge `id` is in (no-op if none): both legs go idle (open, receiving,
    /// sending nothing). [`MediaEngine::play`] afterwards continues the leg's RTP stream.
    /// `stop`, `play` and `close` on either leg end the bridge the same way.
    pub fn unbridge(&self, id: StreamId) {
        let _ = self.send(id, Command::Unbridge { id });
    }

    /// Stops sending (music, or relaying: a bridge ends and both legs go idle); the socket
    /// stays open (still receiving) until [`MediaEngine::close`].
    pub fn stop(&self, id: StreamId) {
        let _ = self.send(id, Command::Stop { id });
    }

    /// Stops the stream and frees its socket and port; if it was bridged, the other leg
    /// goes idle.
    pub fn close(&self, id: StreamId) {
        let _ = self.send(id, Command::Close { id });
    }
}
