//! SRTP on a stream (RFC 3711): what the shard keeps for a leg whose peer speaks SRTP, and
//! the two places it acts. Packets are built and relayed as plain RTP, as for every other
//! leg; the last step before `sendto` encrypts ([`Outbound::protect`]) and the first after
//! `recvfrom` decrypts and authenticates ([`Inbound::unprotect`]), so held callers on SRTP
//! share the same music frames and the relay between an SRTP leg and a plain one (or two
//! SRTP legs with their own keys) decrypts on one side and encrypts on the other.
//!
//! A packet that fails authentication is dropped before anything reads it: it is not
//! latched to, not relayed, not taken for a key press. SRTCP is not spoken: RTCP arriving
//! on an SRTP leg is counted and dropped, as RTCP is on every leg.

use crate::srtp::{MasterKey, SrtpError, SrtpReceiver, SrtpSender};

/// The sending half: encrypts into a buffer kept for the stream (no allocation per packet).
pub(crate) struct Outbound {
    sender: SrtpSender,
    out: Vec<u8>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("srtp::Outbound")
    }
}

impl Outbound {
    /// Encrypting with `key` (ours, as our SDP gave it).
    pub(crate) fn new(key: &MasterKey) -> Self {
        Self {
            sender: SrtpSender::new(key),
            out: Vec::with_capacity(256),
        }
    }

    /// The SRTP packet for the RTP packet `rtp`.
    pub(crate) fn protect(&mut self, rtp: &[u8]) -> Result<&[u8], SrtpError> {
        self.sender.protect(rtp, &mut self.out)?;
        Ok(&self.out)
    }
}

/// The receiving half: authenticates and decrypts into the shard's receive buffer.
pub(crate) struct Inbound {
    receiver: SrtpReceiver,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("srtp::Inbound")
    }
}

impl Inbound {
    /// Decrypting with `key` (the peer's, as its SDP gave it).
    pub(crate) fn new(key: &MasterKey) -> Self {
        Self {
            receiver: SrtpReceiver::new(key),
            out: Vec::with_capacity(256),
        }
    }

    /// Replaces the SRTP packet in `buf[..len]` with its RTP packet; its new length, or
    /// `None` when it does not authenticate (or is a replay).
    pub(crate) fn unprotect(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        self.receiver.unprotect(&buf[..len], &mut self.out).ok()?;
        let n = self.out.len();
        buf.get_mut(..n)?.copy_from_slice(&self.out);
        Some(n)
    }
}
