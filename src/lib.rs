//! holdfast: a SIP-native call-queue server.
//!
//! A SIP trunk points at holdfast. When every agent is busy, callers wait here: they are
//! answered, hear hold music over RTP and keep a fair place in line (VIP callers first,
//! strict FIFO inside a priority level).
//!
//! # Layout
//! ```text
//! main.rs      CLI: serve | check-config | simulate
//! config       holdfast.toml → typed config; errors name file, key, reason
//! sip/         signalling, sans-IO: message (framing over rsip), transaction (RFC 3261 §17),
//!              dialog (§12), sdp (RFC 3264 offer/answer, RFC 4568 keys), stream (TCP/TLS
//!              framing), transport (flows)
//! media/       RTP and audio: g711, rtp (RFC 3550), audio (decode + resample once),
//!              player (per-call cursor over shared frames), engine (the media clock)
//! srtp         RFC 3711 contexts and master keys: a leaf both sdp (keys) and media use
//! queue/       the domain, pure: queues, priorities, positions, dispatch order
//! store/       durable state: callbacks, handle times, call events (SQLite, WAL, fsync)
//! b2bua/       the call controller: SIP events + queue decisions → SIP and media commands
//! server       the tokio driver: sockets, time, graceful shutdown
//! admin/       HTTP: JSON API, Prometheus /metrics, live wallboard (asks the SIP task)
//! ```
//! Who may import whom: `sip`, `media` and `queue` know nothing of each other (`srtp` is a
//! leaf either may use); only `b2bua` joins a dialog, a queue entry and a media stream.

pub mod admin;
pub mod b2bua;
pub mod config;
pub mod media;
pub mod queue;
pub mod report;
pub mod server;
pub mod sip;
pub mod srtp;
pub mod store;
