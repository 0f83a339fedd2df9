//! SDP offer/answer for holdfast's one audio stream (RFC 4566, RFC 3264, RFC 4733 §7.1.1).
//!
//! holdfast speaks G.711 only: PCMU and PCMA at 8 kHz, 20 ms packets, plus `telephone-event`
//! for DTMF. This module reads the audio part of an offer ([`parse_offer`]), picks the codec
//! the RFC 3264 §6.1 way — the offerer's first preference that we support ([`negotiate`]) — and
//! writes answers and offers ([`render_answer`], [`render_offer`]).
//!
//! Parsing is one pass over the lines, bounded by [`MAX_SDP_SIZE`] and [`MAX_FORMATS`], and
//! every defect is an [`SdpError`], never a panic. `parse_offer` reads an agent's *answer*
//! just as well, since both have the same shape.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::srtp::INLINE_LEN;
use crypto::{CryptoAttr, choose};

pub mod crypto;

/// Largest SDP body accepted, in bytes; real offers are well under 2 KiB.
pub const MAX_SDP_SIZE: usize = 16 * 1024;

/// Most payload types read from one `m=` line; more is not a real offer.
pub const MAX_FORMATS: usize = 64;

/// Payload type holdfast uses for `telephone-event` in its own offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is larger than [`MAX_SDP_SIZE`].
    #[error("SDP body too large")]
    TooLarge,
    /// The body is not UTF-8 text (RFC 4566 §5).
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// A line is not `<letter>=<value>`, or a known line is malformed; `line` is 1-based.
    #[error("malformed SDP line {line}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
    },
    /// The first line is not `v=0`.
    #[error("SDP does not start with v=0")]
    BadVersion,
    /// There is no `m=audio` section.
    #[error("no audio stream offered")]
    NoAudio,
    /// The audio stream has port 0, i.e. it is rejected or disabled (RFC 3264 §5.1).
    #[error("audio stream disabled (port 0)")]
    AudioDisabled,
    /// The audio transport is neither RTP (`RTP/AVP`, `RTP/AVPF`) nor SRTP (`RTP/SAVP`,
    /// `RTP/SAVPF`): DTLS-SRTP (`UDP/TLS/RTP/SAVP`) and others are not supported.
    #[error("unsupported media transport {0}")]
    UnsupportedTransport(String),
    /// SRTP offered without an `a=crypto` key holdfast can use (RFC 4568 §7.1.2).
    #[error("SRTP offered without a usable a=crypto key")]
    NoCrypto,
    /// No usable `c=` line at session or audio media level.
    #[error("no connection address for the audio stream")]
    MissingConnection,
    /// More than [`MAX_FORMATS`] payload types.
    #[error("too many payload types")]
    TooManyFormats,
    /// None of the offered codecs is PCMU or PCMA at 8000 Hz.
    #[error("no common codec")]
    NoCommonCodec,
}

impl SdpError {
    /// The SIP status a UAS answers an INVITE with when its offer fails this way: `488 Not
    /// Acceptable Here` for a valid offer we cannot meet, `400 Bad Request` for a broken one.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::NoAudio
            | Self::AudioDisabled
            | Self::UnsupportedTransport(_)
            | Self::NoCrypto
            | Self::NoCommonCodec => 488,
            _ => 400,
        }
    }
}

/// The G.711 codecs holdfast sends and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1); `sendrecv` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// Both ways.
    #[default]
    SendRecv,
    /// The offerer only sends (e.g. it put us on hold).
    SendOnly,
    /// The offerer only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    fn from_attribute(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }

    /// The direction an answerer uses for this offered direction (RFC 3264 §6.1).
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// One `a=rtpmap` line of the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type it describes.
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
}

/// The audio part of a parsed offer (or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the peer wants RTP: the audio `c=` (or session `c=`) address and `m=` port.
    pub remote: SocketAddr,
    /// Payload types of the `m=audio` line, in the offerer's order of preference.
    pub formats: Vec<u8>,
    /// `a=rtpmap` lines of the audio stream.
    pub rtpmaps: Vec<RtpMap>,
    /// Payload type of `telephone-event/8000`, if offered.
    pub telephone_event: Option<u8>,
    /// The `a=fmtp` value for that payload type (e.g. `0-16`), if any.
    pub telephone_event_fmtp: Option<String>,
    /// Media direction (media-level attribute overrides session-level).
    pub direction: Direction,
    /// `a=ptime`, if given.
    pub ptime: Option<u32>,
    /// The audio stream is SRTP (`RTP/SAVP`, `RTP/SAVPF`, RFC 3711 §12).
    pub secure: bool,
    /// Its `a=crypto` lines that holdfast can use, in the offerer's order (RFC 4568); lines
    /// with an unknown suite, an MKI or a bad key are left out.
    pub crypto: Vec<CryptoAttr>,
}

/// The negotiated audio session, ready for the media engine and for [`render_answer`].
/// Kept across a restart without its SRTP keys (docs/behaviour.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    /// The codec both sides use.
    pub codec: Codec,
    /// Its payload type as the offer numbered it (normally the static one).
    pub payload_type: u8,
    /// `telephone-event` payload type, when the offer had it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (until symmetric RTP learns the real source).
    pub remote: SocketAddr,
    /// The direction we answer with.
    pub direction: Direction,
    /// SRTP keys, when the stream is SRTP.
    #[serde(skip)]
    pub srtp: Option<SrtpKeys>,
}

/// The two SDES keys of an SRTP stream (RFC 4568 §6.1: each side's key protects what it
/// sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The peer's: what it sends is decrypted with it.
    pub theirs: CryptoAttr,
    /// Ours: what holdfast sends is encrypted with it.
    pub ours: CryptoAttr,
}

fn parse_u8(s: &str) -> Option<u8> {
    (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `c=IN IP4 <addr>` / `c=IN IP6 <addr>`; a TTL or count suffix (`/127`) is ignored.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_ascii_whitespace();
    let (Some("IN"), Some(kind), Some(addr), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let addr = addr.split('/').next()?;
    let ip: IpAddr = addr.parse().ok()?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

/// Reads the first audio stream of an SDP offer (or answer).
pub fn parse_offer(body: &[u8]) -> Result<Offer, SdpError> {
    if body.len() > MAX_SDP_SIZE {
        return Err(SdpError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut session_c = None;
    let mut session_dir = None;
    // Section we are in: None = session level, Some(true) = the chosen audio stream,
    // Some(false) = any other media section (ignored).
    let mut in_audio: Option<bool> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let (mut media_c, mut media_dir, mut ptime) = (None, None, None);
    let mut rtpmaps = Vec::new();
    let mut fmtps: Vec<(u8, String)> = Vec::new();
    let (mut secure, mut crypto) = (false, Vec::new());
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "v=0")) => {}
        _ => return Err(SdpError::BadVersion),
    }
    for (index, line) in lines {
        let bad = SdpError::MalformedLine { line: index + 1 };
        let (kind, value) = line.split_at_checked(2).ok_or(bad.clone())?;
        let [letter, b'='] = kind.as_bytes() else {
            return Err(bad);
        };
        if !letter.is_ascii_lowercase() {
            return Err(bad);
        }
        match (letter, in_audio) {
            (b'm', _) => {
                let mut parts = value.split_ascii_whitespace();
                let (Some(media), Some(port), Some(proto)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad);
                };
                if media != "audio" || audio.is_some() {
                    in_audio = Some(false);
                    continue;
                }
                // `port/count` is legal; holdfast uses the first port only.
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(bad.clone())?;
                if port == 0 {
                    return Err(SdpError::AudioDisabled);
                }
                match proto {
                    "RTP/AVP" | "RTP/AVPF" => {}
                    "RTP/SAVP" | "RTP/SAVPF" => secure = true,
                    _ => return Err(SdpError::UnsupportedTransport(proto.to_owned())),
                }
                let mut formats = Vec::new();
                for fmt in parts {
                    if formats.len() == MAX_FORMATS {
                        return Err(SdpError::TooManyFormats);
                    }
                    formats.push(parse_u8(fmt).filter(|pt| *pt < 128).ok_or(bad.clone())?);
                }
                if formats.is_empty() {
                    return Err(bad);
                }
                audio = Some((port, formats));
                in_audio = Some(true);
            }
            (b'c', None) => session_c = Some(parse_connection(value).ok_or(bad)?),
            (b'c', Some(true)) => media_c = Some(parse_connection(value).ok_or(bad)?),
            (b'a', None) => session_dir = Direction::from_attribute(value).or(session_dir),
            (b'a', Some(true)) => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                match name {
                    "rtpmap" => rtpmaps.push(parse_rtpmap(arg).ok_or(bad)?),
                    "fmtp" => {
                        let (pt, params) = arg.split_once(' ').ok_or(bad.clone())?;
                        fmtps.push((parse_u8(pt).ok_or(bad)?, params.trim().to_owned()));
                    }
                    "ptime" => ptime = arg.trim().parse().ok(),
                    // A line we cannot use is skipped: the offer may carry another.
                    "crypto" if crypto.len() < MAX_FORMATS => {
                        crypto.extend(CryptoAttr::parse(arg).ok());
                    }
                    _ => media_dir = Direction::from_attribute(name).or(media_dir),
                }
            }
            _ => {}
        }
    }
    let (port, formats) = audio.ok_or(SdpError::NoAudio)?;
    let ip = media_c.or(session_c).ok_or(SdpError::MissingConnection)?;
    let telephone_event = rtpmaps
        .iter()
        .find(|m| {
            m.encoding.eq_ignore_ascii_case("telephone-event")
                && m.clock_rate == 8000
                && formats.contains(&m.payload_type)
        })
        .map(|m| m.payload_type);
    let telephone_event_fmtp =
        telephone_event.and_then(|pt| fmtps.into_iter().find(|(p, _)| *p == pt).map(|(_, f)| f));
    Ok(Offer {
        remote: SocketAddr::new(ip, port),
        formats,
        rtpmaps,
        telephone_event,
        telephone_event_fmtp,
        direction: media_dir.or(session_dir).unwrap_or_default(),
        ptime,
        secure,
        crypto,
    })
}

/// `<pt> <name>/<rate>[/<channels>]`.
fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, encoding) = arg.split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let (Some(name), Some(rate)) = (parts.next(), parts.next()) else {
        return None;
    };
    Some(RtpMap {
        payload_type: parse_u8(pt).filter(|pt| *pt < 128)?,
        encoding: name.to_owned(),
        clock_rate: rate.parse().ok()?,
    })
}

impl Offer {
    /// The codec a payload type stands for in this offer: its `a=rtpmap`, or for the static
    /// types 0 and 8 without one, RFC 3551's assignment.
    pub fn codec_of(&self, payload_type: u8) -> Option<Codec> {
        let by_name = |name: &str| {
            if name.eq_ignore_ascii_case("PCMU") {
                Some(Codec::Pcmu)
            } else if name.eq_ignore_ascii_case("PCMA") {
                Some(Codec::Pcma)
            } else {
                None
            }
        };
        match self.rtpmaps.iter().find(|m| m.payload_type == payload_type) {
            Some(map) if map.clock_rate == 8000 => by_name(&map.encoding),
            Some(_) => None,
            None => match payload_type {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }
}

/// Chooses the offerer's most preferred codec that holdfast supports (RFC 3264 §6.1) and keeps
/// `telephone-event` with the offer's payload type. [`SdpError::NoCommonCodec`] maps to `488`.
pub fn negotiate(offer: &Offer) -> Result<Answer, SdpError> {
    let (payload_type, codec) = offer
        .formats
        .iter()
        .find_map(|&pt| offer.codec_of(pt).map(|c| (pt, c)))
        .ok_or(SdpError::NoCommonCodec)?;
    Ok(Answer {
        codec,
        payload_type,
        telephone_event: offer.telephone_event,
        remote: offer.remote,
        direction: offer.direction.answer(),
        srtp: None,
    })
}

/// The SRTP keys of the answer to `offer`: `None` for plain RTP; for SRTP the first offered
/// key holdfast can use and ours for the same suite and tag, made from `random` (RFC 4568
/// §7.1.2), or [`SdpError::NoCrypto`].
pub fn answer_keys(offer: &Offer, random: [u8; INLINE_LEN]) -> Result<Option<SrtpKeys>, SdpError> {
    if !offer.secure {
        return Ok(None);
    }
    let theirs = *choose(&offer.crypto).ok_or(SdpError::NoCrypto)?;
    Ok(Some(SrtpKeys {
        theirs,
        ours: theirs.answer(random),
    }))
}

fn push_session_head(out: &mut String, ip: IpAddr, session_id: u64, version: u64) {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\no=holdfast {session_id} {version} IN {family} {ip}\r\ns=holdfast\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
}

fn push_telephone_event(out: &mut String, pt: u8) {
    let _ = write!(
        out,
        "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
    );
}

/// The SDP answer for `answer`, offering our RTP socket `public_ip:rtp_port`.
///
/// `session_id` stays fixed for the call; `version` must grow with each new SDP in it.
pub fn render_answer(
    answer: &Answer,
    public_ip: IpAddr,
    rtp_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    let mut out = String::with_capacity(320);
    push_session_head(&mut out, public_ip, session_id, version);
    let pt = answer.payload_type;
    let proto = if answer.srtp.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let _ = write!(out, "m=audio {rtp_port} {proto} {pt}");
    if let Some(te) = answer.telephone_event {
        let _ = write!(out, " {te}");
    }
    let _ = write!(
        out,
        "\r\na=rtpmap:{pt} {}/8000\r\n",
        answer.codec.encoding_name()
    );
    if let Some(te) = answer.telephone_event {
        push_telephone_event(&mut out, te);
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", answer.direction.attribute());
    if let Some(keys) = &answer.srtp {
        let _ = write!(out, "a=crypto:{}\r\n", keys.ours.render());
    }
    out
}

/// holdfast's own offer (calls to agents, callbacks): the given G.711 codecs in order of
/// preference and `telephone-event` at payload type [`TELEPHONE_EVENT_PT`]. Calls to agents
/// offer the caller's codec only, so the relay never has to transcode. With `crypto` keys the
/// stream is offered as SRTP (`RTP/SAVP`, one `a=crypto` line each, RFC 4568).
pub fn render_offer(
    codecs: &[Codec],
    crypto: &[CryptoAttr],
    public_ip: IpAddr,
    rtp_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    let mut out = String::with_capacity(360);
    push_session_head(&mut out, public_ip, session_id, version);
    let te = TELEPHONE_EVENT_PT;
    let proto = if crypto.is_empty() {
        "RTP/AVP"
    } else {
        "RTP/SAVP"
    };
    let _ = write!(out, "m=audio {rtp_port} {proto}");
    for codec in codecs {
        let _ = write!(out, " {}", codec.payload_type());
    }
    let _ = write!(out, " {te}\r\n");
    for codec in codecs {
        let _ = match codec {
            Codec::Pcmu => write!(out, "a=rtpmap:0 PCMU/8000\r\n"),
            Codec::Pcma => write!(out, "a=rtpmap:8 PCMA/8000\r\n"),
        };
    }
    push_telephone_event(&mut out, te);
    out.push_str("a=ptime:20\r\na=sendrecv\r\n");
    for attr in crypto {
        let _ = write!(out, "a=crypto:{}\r\n", attr.render());
    }
    out
}

#[cfg(test)]
mod tests;
