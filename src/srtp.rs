//! SRTP for RTP packets (RFC 3711), with the two crypto suites SDES offers (RFC 4568 §6.2):
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`.
//!
//! The transforms are RustCrypto primitives put together the way RFC 3711 says:
//! AES-128 in counter mode for encryption (§4.1.1), HMAC-SHA1 truncated to 80 or 32 bits for
//! authentication (§4.2), the AES-CM pseudo-random function for session keys (§4.3.1, §4.3.3),
//! the packet index guessed from the sequence number (§3.3.1) and a 64-packet replay window
//! (§3.3.2). Nothing here does I/O.
//!
//! One [`SrtpSender`] protects what we send and one [`SrtpReceiver`] checks what we receive;
//! with SDES each side announces the master key it sends with. Both serve any number of SSRCs
//! (at most [`MAX_STREAMS`] at once, the least recently used is forgotten beyond that), since all
//! streams of one master key share the session keys (§4.3 with a key derivation rate of 0).
//!
//! Not covered, deliberately:
//! - SRTCP (§3.4). The caller must not pass RTCP here; with `rtcp-mux` it tells the two apart by
//!   payload type (RFC 5761 §4) and drops or plainly handles RTCP.
//! - MKI (§3.1), a key derivation rate other than 0 (§4.3.1), rekeying, f8 mode, null ciphers.
//!
//! Per packet, protecting and unprotecting do no heap allocation besides growing the caller's
//! `out` buffer: the AES key schedule and the keyed HMAC state are computed once, in `new`, and
//! copied on the stack for each packet.

use std::fmt;

use aes::Aes128;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ctr::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use hmac::Mac;
use subtle::ConstantTimeEq;

/// AES-128 in counter mode over the whole 128-bit block, the AES-CM of RFC 3711 §4.1.1.
type AesCm = ctr::Ctr128BE<Aes128>;
type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Master key length of both suites, in bytes (RFC 4568 §6.2).
pub const KEY_LEN: usize = 16;
/// Master salt length of both suites, in bytes (RFC 4568 §6.2).
pub const SALT_LEN: usize = 14;
/// Bytes in an SDES inline key: master key then master salt (RFC 4568 §6.1).
pub const INLINE_LEN: usize = KEY_LEN + SALT_LEN;
/// SSRCs one sender or receiver keeps state for at once. Past that the least recently used is
/// forgotten; should it come back it starts afresh, as a new SSRC does (§3.3.1).
pub const MAX_STREAMS: usize = 16;
/// Longest packet accepted. AES-CM may not run past 2^16 blocks in one packet (§4.1.1) and no
/// UDP datagram is longer than this anyway.
pub const MAX_PACKET_LEN: usize = 65_535;

/// Packets the replay window remembers behind the highest index seen (§3.3.2: at least 64).
const REPLAY_WINDOW: u64 = 64;
/// Fixed RTP header: V, P, X, CC, M, PT, sequence number, timestamp, SSRC (RFC 3550 §5.1).
const RTP_HEADER_LEN: usize = 12;
/// Key derivation labels for SRTP (§4.3.2); the SRTCP ones (3 to 5) are not used.
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTHENTICATION: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;
/// Session authentication key length for HMAC-SHA1 (§4.2.1: n_a = 160).
const AUTH_KEY_LEN: usize = 20;

/// Why a packet, or a key, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Shorter than an RTP header, or than its own header plus the authentication tag.
    #[error("packet too short")]
    TooShort,
    /// Longer than [`MAX_PACKET_LEN`].
    #[error("packet too long")]
    TooLong,
    /// Not RTP version 2 (RFC 3550 §5.1).
    #[error("not an RTP version 2 packet")]
    NotRtp,
    /// The authentication tag does not match (§3.3 step 5): altered, or another key.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was seen already, or is older than the replay window (§3.3.2).
    #[error("replayed or too old SRTP packet")]
    Replay,
    /// The 48-bit packet index is used up; the master key must be replaced (§9.2).
    #[error("SRTP packet index exhausted")]
    IndexExhausted,
    /// An SDES inline key is not base64 of exactly [`INLINE_LEN`] bytes.
    #[error("SDES key is not {INLINE_LEN} bytes of base64")]
    BadKey,
}

/// The crypto suites supported, both from RFC 4568 §6.2 (RFC 3711 §5 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Every supported suite, strongest first.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The suite's name in an SDP `a=crypto` line (RFC 4568 §6.2).
    pub const fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name`, exactly as registered (the names are case-sensitive tokens).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|suite| suite.name() == name)
    }

    /// Authentication tag length in bytes: 10 or 4 (§4.2, RFC 4568 §6.2).
    pub const fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key and salt for one suite (§3.2.1). `Debug` shows the suite only, never the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    suite: Suite,
    key: [u8; KEY_LEN],
    salt: [u8; SALT_LEN],
}

impl MasterKey {
    /// A master key from its parts.
    pub const fn new(suite: Suite, key: [u8; KEY_LEN], salt: [u8; SALT_LEN]) -> MasterKey {
        MasterKey { suite, key, salt }
    }

    /// A fresh master key from `random`, which the caller fills from a cryptographically
    /// secure generator (§9.1 and RFC 4568 §6.1 want a new random key for every session).
    pub fn generate(suite: Suite, random: [u8; INLINE_LEN]) -> MasterKey {
        MasterKey::from_concatenated(suite, &random)
    }

    /// Reads the `key||salt` of an SDES `inline:` parameter: base64 of 30 bytes (RFC 4568 §6.1).
    pub fn from_inline(suite: Suite, inline: &str) -> Result<MasterKey, SrtpError> {
        // 30 bytes are exactly 40 base64 characters, without padding.
        if inline.len() != INLINE_LEN / 3 * 4 {
            return Err(SrtpError::BadKey);
        }
        let bytes = BASE64.decode(inline).map_err(|_| SrtpError::BadKey)?;
        let bytes: [u8; INLINE_LEN] = bytes.try_into().map_err(|_| SrtpError::BadKey)?;
        Ok(MasterKey::from_concatenated(suite, &bytes))
    }

    /// The `key||salt` for an SDES `inline:` parameter (RFC 4568 §6.1).
    pub fn to_inline(&self) -> String {
        let mut both = [0u8; INLINE_LEN];
        both[..KEY_LEN].copy_from_slice(&self.key);
        both[KEY_LEN..].copy_from_slice(&self.salt);
        BASE64.encode(both)
    }

    /// The suite this key is for.
    pub const fn suite(&self) -> Suite {
        self.suite
    }

    /// The master key.
    pub const fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The master salt.
    pub const fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    fn from_concatenated(suite: Suite, bytes: &[u8; INLINE_LEN]) -> MasterKey {
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        key.copy_from_slice(&bytes[..KEY_LEN]);
        salt.copy_from_slice(&bytes[KEY_LEN..]);
        MasterKey { suite, key, salt }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The AES-CM pseudo-random function of §4.3.1 and §4.3.3 with a key derivation rate of 0:
/// fills `out` with the keystream of the master key at IV = (master salt XOR label·2^48)·2^16.
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..SALT_LEN].copy_from_slice(&master.salt);
    // key_id = label || r, 56 bits at the low end of the 112-bit salt; r = 0 here.
    iv[SALT_LEN - 7] ^= label;
    out.fill(0);
    AesCm::new(&master.key.into(), &iv.into()).apply_keystream(out);
}

/// The AES-CM counter of §4.1.1: IV = (salt·2^16) XOR (SSRC·2^64) XOR (index·2^16).
fn packet_iv(salt: &[u8; SALT_LEN], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..SALT_LEN].copy_from_slice(salt);
    for (byte, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *byte ^= s;
    }
    // The 48-bit index sits in bytes 8..14.
    for (byte, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *byte ^= i;
    }
    iv
}

/// XORs `data` with the AES-CM keystream of `cipher` at `iv` (§4.1.1).
fn apply_keystream(cipher: &Aes128, iv: [u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
    AesCm::from_core(InnerIvInit::inner_iv_init(cipher.clone(), &iv.into()))
        .try_apply_keystream(data)
        .map_err(|_| SrtpError::TooLong)
}

/// The session keys of one direction (§4.3), derived once from the master key.
#[derive(Clone)]
struct SessionKeys {
    /// Key schedule of the session encryption key k_e.
    cipher: Aes128,
    /// Session salt k_s.
    salt: [u8; SALT_LEN],
    /// HMAC-SHA1 already keyed with the session authentication key k_a.
    mac: HmacSha1,
    tag_len: usize,
}

impl SessionKeys {
    fn new(master: &MasterKey) -> SessionKeys {
        let mut encryption = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        let mut authentication = [0u8; AUTH_KEY_LEN];
        derive(master, LABEL_ENCRYPTION, &mut encryption);
        derive(master, LABEL_SALT, &mut salt);
        derive(master, LABEL_AUTHENTICATION, &mut authentication);
        SessionKeys {
            cipher: Aes128::new(&encryption.into()),
            salt,
            mac: <HmacSha1 as Mac>::new_from_slice(&authentication)
                .expect("HMAC takes a key of any length"),
            tag_len: master.suite.tag_len(),
        }
    }

    fn crypt(&self, ssrc: u32, index: u64, payload: &mut [u8]) -> Result<(), SrtpError> {
        apply_keystream(&self.cipher, packet_iv(&self.salt, ssrc, index), payload)
    }

    /// HMAC-SHA1 over the authenticated portion and the ROC (§4.2), all 20 bytes; the tag is
    /// its first `tag_len` bytes.
    fn mac(&self, authenticated: &[u8], roc: u32) -> [u8; 20] {
        let mut mac = self.mac.clone();
        mac.update(authenticated);
        mac.update(&roc.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// What the cryptography needs from an RTP header (RFC 3550 §5.1, §5.3.1).
struct Header {
    sequence: u16,
    ssrc: u32,
    /// Header length with CSRCs and extension: where the encrypted payload starts (§3.1).
    len: usize,
}

fn parse_header(packet: &[u8]) -> Result<Header, SrtpError> {
    let fixed = packet.get(..RTP_HEADER_LEN).ok_or(SrtpError::TooShort)?;
    if fixed[0] >> 6 != 2 {
        return Err(SrtpError::NotRtp);
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(fixed[0] & 0x0f);
    if fixed[0] & 0x10 != 0 {
        let extension = packet.get(len..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([extension[2], extension[3]]));
    }
    if len > packet.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(Header {
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        len,
    })
}

/// Index and replay state of one SSRC (§3.2.1, §3.3.1, §3.3.2).
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Rollover counter of the highest index accepted.
    roc: u32,
    /// Highest sequence number accepted, s_l.
    highest: u16,
    /// Bit k set: index (highest index − k) was accepted.
    window: u64,
    /// When this stream was last used, for eviction.
    used: u64,
}

impl Stream {
    /// State before the first packet: s_l is that packet's sequence number and ROC is 0
    /// (§3.3.1), and nothing is in the window yet.
    fn first(ssrc: u32, sequence: u16) -> Stream {
        Stream {
            ssrc,
            roc: 0,
            highest: sequence,
            window: 0,
            used: 0,
        }
    }

    fn highest_index(&self) -> u64 {
        u64::from(self.roc) << 16 | u64::from(self.highest)
    }

    /// The ROC guess of §3.3.1 (the pseudo-code of Appendix A) and the resulting index.
    /// A guess below ROC 0 is a packet from before the stream began: a replay.
    fn estimate(&self, sequence: u16) -> Result<(u32, u64), SrtpError> {
        const HALF: u16 = 0x8000;
        let roc = if self.highest < HALF {
            if sequence > self.highest && sequence - self.highest > HALF {
                self.roc.checked_sub(1).ok_or(SrtpError::Replay)?
            } else {
                self.roc
            }
        } else if sequence < self.highest - HALF {
            self.roc.checked_add(1).ok_or(SrtpError::IndexExhausted)?
        } else {
            self.roc
        };
        Ok((roc, u64::from(roc) << 16 | u64::from(sequence)))
    }

    /// §3.3.2: ahead of the window is new, inside it is new unless marked, behind it is refused.
    fn check_replay(&self, index: u64) -> Result<(), SrtpError> {
        let highest = self.highest_index();
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= REPLAY_WINDOW || self.window & (1 << behind) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    /// Records an accepted index, moving ROC and s_l forward when it is the newest (§3.3.1).
    fn accept(&mut self, index: u64) {
        let highest = self.highest_index();
        if index > highest {
            let ahead = index - highest;
            self.window = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.window << ahead
            };
            self.window |= 1;
            // Both fit: the index is a 32-bit ROC over a 16-bit sequence number.
            self.roc = u32::try_from(index >> 16).unwrap_or(u32::MAX);
            self.highest = (index & 0xffff) as u16;
        } else {
            self.window |= 1 << (highest - index);
        }
    }
}

/// Per-SSRC state of one direction, a short list searched in place.
struct Streams {
    list: Vec<Stream>,
    clock: u64,
}

impl Streams {
    fn new() -> Streams {
        Streams {
            list: Vec::with_capacity(MAX_STREAMS),
            clock: 0,
        }
    }

    /// The state of `ssrc`, or what it would be if this packet is its first.
    fn get(&self, ssrc: u32, sequence: u16) -> Stream {
        self.list
            .iter()
            .find(|stream| stream.ssrc == ssrc)
            .copied()
            .unwrap_or_else(|| Stream::first(ssrc, sequence))
    }

    /// Stores `stream` after its packet passed, replacing the least recently used stream when
    /// the list is full.
    fn put(&mut self, mut stream: Stream) {
        self.clock += 1;
        stream.used = self.clock;
        if let Some(slot) = self.list.iter_mut().find(|s| s.ssrc == stream.ssrc) {
            *slot = stream;
        } else if self.list.len() < MAX_STREAMS {
            self.list.push(stream);
        } else if let Some(oldest) = self.list.iter_mut().min_by_key(|s| s.used) {
            *oldest = stream;
        }
    }

    fn roc(&self, ssrc: u32) -> Option<u32> {
        self.list.iter().find(|s| s.ssrc == ssrc).map(|s| s.roc)
    }
}

/// Protects the RTP packets we send with one master key (§3.3).
pub struct SrtpSender {
    keys: SessionKeys,
    streams: Streams,
}

impl SrtpSender {
    /// A sender for `key`; derives the session keys once.
    pub fn new(key: &MasterKey) -> SrtpSender {
        SrtpSender {
            keys: SessionKeys::new(key),
            streams: Streams::new(),
        }
    }

    /// Writes the SRTP form of `rtp` into `out` (cleared first): the header as it was, the
    /// payload encrypted, then the authentication tag (§3.1, §3.3).
    ///
    /// The ROC steps up when the sequence number wraps (§3.3.1). A packet whose index this
    /// sender protected already, or one older than the replay window, is refused with
    /// [`SrtpError::Replay`]: a second packet under the same index would reuse keystream (§9.1).
    /// The sender guesses indexes as the receiver will (§3.3.1), so the sequence numbers of one
    /// SSRC must advance by less than 2^15 at a time. On error `out` is empty.
    pub fn protect(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        if rtp.len() > MAX_PACKET_LEN {
            return Err(SrtpError::TooLong);
        }
        let header = parse_header(rtp)?;
        let mut stream = self.streams.get(header.ssrc, header.sequence);
        let (roc, index) = stream.estimate(header.sequence)?;
        stream.check_replay(index)?;

        out.reserve(rtp.len() + self.keys.tag_len);
        out.extend_from_slice(rtp);
        if let Err(e) = self.keys.crypt(header.ssrc, index, &mut out[header.len..]) {
            out.clear();
            return Err(e);
        }
        let mac = self.keys.mac(out, roc);
        out.extend_from_slice(&mac[..self.keys.tag_len]);

        stream.accept(index);
        self.streams.put(stream);
        Ok(())
    }

    /// The suite's tag length: how much longer each packet gets.
    pub fn tag_len(&self) -> usize {
        self.keys.tag_len
    }

    /// The current ROC of `ssrc`, if this sender has protected a packet of it.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.streams.roc(ssrc)
    }
}

impl fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSender")
            .field("streams", &self.streams.list.len())
            .finish()
    }
}

/// Checks and decrypts the SRTP packets we receive under one master key (§3.3).
pub struct SrtpReceiver {
    keys: SessionKeys,
    streams: Streams,
}

impl SrtpReceiver {
    /// A receiver for `key`; derives the session keys once.
    pub fn new(key: &MasterKey) -> SrtpReceiver {
        SrtpReceiver {
            keys: SessionKeys::new(key),
            streams: Streams::new(),
        }
    }

    /// Writes the RTP packet inside `packet` into `out` (cleared first), after checking the
    /// replay window (§3.3.2) and the authentication tag in constant time (§3.3 step 5).
    ///
    /// A new SSRC starts with ROC 0 at its first packet's sequence number (§3.3.1); the
    /// sequence numbers of one SSRC must advance by less than 2^15 at a time. State changes only
    /// for packets that pass, so forged or replayed packets cannot disturb it. On error `out` is
    /// empty; no input makes this panic.
    pub fn unprotect(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        if packet.len() > MAX_PACKET_LEN {
            return Err(SrtpError::TooLong);
        }
        let tag_len = self.keys.tag_len;
        if packet.len() < RTP_HEADER_LEN + tag_len {
            return Err(SrtpError::TooShort);
        }
        let (authenticated, tag) = packet.split_at(packet.len() - tag_len);
        let header = parse_header(authenticated)?;
        let mut stream = self.streams.get(header.ssrc, header.sequence);
        let (roc, index) = stream.estimate(header.sequence)?;
        stream.check_replay(index)?;

        let mac = self.keys.mac(authenticated, roc);
        if !bool::from(mac[..tag_len].ct_eq(tag)) {
            return Err(SrtpError::AuthFailed);
        }
        out.reserve(authenticated.len());
        out.extend_from_slice(authenticated);
        if let Err(e) = self.keys.crypt(header.ssrc, index, &mut out[header.len..]) {
            out.clear();
            return Err(e);
        }

        stream.accept(index);
        self.streams.put(stream);
        Ok(())
    }

    /// The suite's tag length: how much shorter each packet gets.
    pub fn tag_len(&self) -> usize {
        self.keys.tag_len
    }

    /// The current ROC of `ssrc`, if this receiver has accepted a packet of it.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.streams.roc(ssrc)
    }
}

impl fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpReceiver")
            .field("streams", &self.streams.list.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
