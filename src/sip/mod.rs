//! SIP signalling, sans-IO (RFC 3261): nothing here touches a socket or reads the clock.
//!
//! - [`message`]: framing in front of rsip (unfolding, compact forms, Content-Length) and
//!   validation after it; error replies built from whatever could be read.
//! - [`transaction`]: the §17 client and server transaction machines and their timers.
//! - [`dialog`]: §12 dialog state and in-dialog requests.
//! - [`sdp`]: RFC 3264 offer/answer for G.711 and telephone-event.
//! - [`auth`]: §22.4 Digest challenges and verification (MD5, SHA-256), stateless nonces.
//! - [`registrar`]: §10.3 bindings with expiry, and the failed-authentication limiter.

pub mod auth;
mod build;
pub mod dialog;
mod fields;
mod framing;
pub mod message;
mod parse_error;
pub mod registrar;
pub mod sdp;
pub mod stream;
pub mod transaction;
pub mod transport;
mod uri;
