//! RTP and audio (RFC 3550, ITU-T G.711). Knows nothing of SIP or queues.
//!
//! - [`g711`]: µ-law / A-law companding.
//! - [`audio`]: decode music files once, mono, 8 kHz.
//! - [`rtp`]: RTP header parse and write.
//! - [`dtmf`]: RFC 4733 telephone-event decoding and SIP INFO DTMF bodies.
//! - [`player`]: the per-stream cursor over shared frames (music loop + prompts).
//! - [`prompts`]: spoken announcements: clip pack, composition, rendered-frame cache.
//! - [`engine`]: the media clock: shard threads that send every stream on its own phase, and
//!   relay RTP between bridged legs (header rewriting in `rewrite`).

mod affinity;
pub mod audio;
pub mod dtmf;
pub mod engine;
pub mod g711;
mod inbound;
pub mod ledger;
pub mod mix;
pub mod player;
mod poller;
pub mod prompts;
pub mod recording;
mod rewrite;
pub mod rtp;
mod secure;
mod shard;
pub mod stats;
