//! DTMF in: RFC 4733 telephone-event payloads on RTP, and SIP INFO bodies.
//!
//! This module owns turning what a caller's phone sends into digits, exactly once each:
//! - [`TelephoneEvent::parse`] decodes the payload format of RFC 4733 §2.3, pure over
//!   `&[u8]`, rejecting malformed payloads with a [`DtmfError`] (never a panic; fuzzed).
//! - [`DtmfReceiver`] is the per-stream, sans-IO state machine of the receiver side
//!   (RFC 4733 §2.5.2): fed `(now, RTP timestamp, payload)` and time, it yields each key
//!   press once as a [`Digit`].
//! - [`parse_info_dtmf`] reads SIP INFO bodies (`application/dtmf-relay`, `application/dtmf`).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! How the receiver tells events apart (RFC 4733 §2.5.1):
//! - **The RTP timestamp identifies an event**: every packet of one event carries the
//!   timestamp of its start, while `duration` grows (§2.5.1.3). A new timestamp is a new
//!   event. The marker bit is deliberately not used: it rides on the first packet only, which
//!   may be lost, and the timestamp already says everything it would.
//! - **The end packet is sent three times** (§2.5.1.4): only the first end is reported.
//! - **Lost end packets**: an event still open is reported when the next event starts, or
//!   when no packet for it arrived for the receiver's timeout.
//! - **Long events** (§2.5.1.3): `duration` is 16 bits; a sender keeps a longer key press
//!   going in a new segment whose timestamp is the old one plus 0xFFFF. Such a continuation is
//!   the same key press and is not reported again.
//! - **Reordering**: a packet whose timestamp is a little *older* than the current event's
//!   belongs to an event already handled and is dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// How long an open event may go without packets before it is reported as ended. Senders
/// refresh an ongoing event every 50 ms or so (RFC 4733 §2.5.1.2), so this is many lost
/// packets in a row, yet short enough that a caller does not notice the delay.
pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(500);

/// Largest duration of one segment of a long event (RFC 4733 §2.5.1.3).
const SEGMENT_MAX: u16 = 0xFFFF;

/// A packet this much older (in RTP timestamp units) than the current event is a late
/// straggler; anything further back is a timestamp jump (new sender state) and starts a new
/// event. 2^20 units is over 2 minutes at 8 kHz, 20 s at 48 kHz: far beyond any reordering.
const STALE_WINDOW: u32 = 1 << 20;

/// Why a telephone-event payload is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is empty.
    #[error("empty telephone-event payload")]
    Empty,
    /// The payload is not a whole number of 4-byte event blocks.
    #[error("telephone-event payload of {0} bytes is not a multiple of 4")]
    BadLength(usize),
}

/// One decoded telephone-event block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0–15 are the DTMF keys (§3.2), others are tones and line events.
    pub event: u8,
    /// E bit: this packet reports the end of the event.
    pub end: bool,
    /// Power level of the tone in −dBm0 (0–63); 0 for non-tone events.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units since the event's timestamp.
    pub duration: u16,
}

/// Length of one event block.
pub const EVENT_BLOCK_LEN: usize = 4;

impl TelephoneEvent {
    /// Decodes a payload. It may pack several blocks (§2.5.1.5); the last one is the event
    /// the packet's RTP timestamp belongs to, and is the one returned. The R bit is ignored
    /// on receipt as §2.3.3 requires.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        if payload.is_empty() {
            return Err(DtmfError::Empty);
        }
        if !payload.len().is_multiple_of(EVENT_BLOCK_LEN) {
            return Err(DtmfError::BadLength(payload.len()));
        }
        let b = &payload[payload.len() - EVENT_BLOCK_LEN..];
        Ok(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The key this event stands for, if it is a DTMF event.
    pub fn digit(&self) -> Option<char> {
        event_digit(self.event)
    }
}

/// DTMF event code → key (RFC 4733 §3.2): 0–9, 10 = `*`, 11 = `#`, 12–15 = `A`–`D`.
pub fn event_digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => char::from(b'0' + code),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + code - 12),
        _ => return None,
    })
}

/// How the receiver learned that a key press ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitEnd {
    /// A packet with the E bit arrived.
    EndBit,
    /// The end packets were lost; the next event started.
    NextEvent,
    /// The end packets were lost; nothing more came for the timeout.
    Timeout,
}

/// One key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// RTP timestamp of the event's start (its identity).
    pub timestamp: u32,
    /// Total length in RTP timestamp units, over all segments of a long event; the last
    /// duration seen when the end was lost.
    pub duration: u32,
    /// Tone power in −dBm0, from the last packet.
    pub volume: u8,
    /// How the end was detected.
    pub end: DigitEnd,
}

/// The event the receiver is tracking: the last one seen, open or already reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    /// Timestamp of the event's first segment: its identity in reports.
    start: u32,
    /// Timestamp of the segment being received (differs from `start` for long events).
    segment: u32,
    code: u8,
    /// Durations of the completed earlier segments.
    base: u32,
    /// Latest duration in the current segment.
    duration: u16,
    volume: u8,
    /// Reported already; later packets of it are retransmissions.
    done: bool,
    last_packet: Instant,
}

/// Per-stream RFC 4733 receiver; see the module docs for the rules. Sans-IO: feed packets
/// with [`DtmfReceiver::handle_packet`], time with [`DtmfReceiver::handle_timeout`] at
/// [`DtmfReceiver::poll_timeout`], and take digits with [`DtmfReceiver::poll_digit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmfReceiver {
    end_timeout: Duration,
    current: Option<Current>,
    last_now: Option<Instant>,
    digits: VecDeque<Digit>,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new(DEFAULT_END_TIMEOUT)
    }
}

impl DtmfReceiver {
    /// A receiver that reports an event whose end packets were lost after `end_timeout`
    /// without packets.
    pub fn new(end_timeout: Duration) -> Self {
        Self {
            end_timeout,
            current: None,
            last_now: None,
            digits: VecDeque::new(),
        }
    }

    /// Time never goes backwards inside the machine: an earlier `now` is taken as the latest.
    fn clamp(&mut self, now: Instant) -> Instant {
        let now = self.last_now.map_or(now, |last| last.max(now));
        self.last_now = Some(now);
        now
    }

    /// Takes one telephone-event RTP packet's timestamp and payload (header already
    /// parsed, padding stripped). A malformed payload is an error and changes nothing.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let now = self.clamp(now);
        self.handle_timeout(now);
        let Some(cur) = self.current.as_mut() else {
            self.start(now, timestamp, ev);
            return Ok(());
        };
        if timestamp == cur.segment {
            // Same event: an update, the end, or a retransmitted end.
            if cur.done || ev.event != cur.code {
                return Ok(());
            }
            cur.duration = cur.duration.max(ev.duration);
            cur.volume = ev.volume;
            cur.last_packet = now;
            if ev.end {
                self.finish(DigitEnd::EndBit);
            }
            return Ok(());
        }
        let continues = !cur.done
            && ev.event == cur.code
            && cur.duration == SEGMENT_MAX
            && timestamp == cur.segment.wrapping_add(u32::from(SEGMENT_MAX));
        if continues {
            cur.base = cur.base.saturating_add(u32::from(SEGMENT_MAX));
            cur.segment = timestamp;
            cur.duration = ev.duration;
            cur.volume = ev.volume;
            cur.last_packet = now;
            if ev.end {
                self.finish(DigitEnd::EndBit);
            }
            return Ok(());
        }
        let behind = cur.segment.wrapping_sub(timestamp);
        if behind != 0 && behind < STALE_WINDOW {
            // A straggler of an earlier event (or an earlier segment): already handled.
            return Ok(());
        }
        if !cur.done {
            self.finish(DigitEnd::NextEvent);
        }
        self.start(now, timestamp, ev);
        Ok(())
    }

    fn start(&mut self, now: Instant, timestamp: u32, ev: TelephoneEvent) {
        self.current = Some(Current {
            start: timestamp,
            segment: timestamp,
            code: ev.event,
            base: 0,
            duration: ev.duration,
            volume: ev.volume,
            done: false,
            last_packet: now,
        });
        if ev.end {
            // Every earlier packet was lost; the end alone still counts once.
            self.finish(DigitEnd::EndBit);
        }
    }

    /// Marks the current event reported and queues its digit if it is a DTMF key.
    fn finish(&mut self, end: DigitEnd) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.done = true;
        if let Some(digit) = event_digit(cur.code) {
            self.digits.push_back(Digit {
                digit,
                timestamp: cur.start,
                duration: cur.base.saturating_add(u32::from(cur.duration)),
                volume: cur.volume,
                end,
            });
        }
    }

    /// Reports an open event whose packets stopped for the end timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.finish(DigitEnd::Timeout);
        }
    }

    /// When [`DtmfReceiver::handle_timeout`] must be called next, if an event is open.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .filter(|c| !c.done)
            .map(|c| c.last_packet + self.end_timeout)
    }

    /// The next completed key press, oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<Digit> {
        self.digits.pop_front()
    }
}

/// Reads the key from a SIP INFO body, or `None` if the content type is not a DTMF one or the
/// body carries no valid key.
///
/// - `application/dtmf-relay`: lines `Signal=<key>` and `Duration=<ms>`; keys `0`–`9`, `*`,
///   `#`, `A`–`D`, and the event codes `10`–`15` that some phones send for `*`, `#`, `A`–`D`.
/// - `application/dtmf`: the body is the key alone, same spellings.
///
/// Parameters after `;` and letter case in the content type are ignored.
pub fn parse_info_dtmf(content_type: &str, body: &[u8]) -> Option<char> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let body = std::str::from_utf8(body).ok()?;
    if mime.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            if key.trim().eq_ignore_ascii_case("signal") {
                info_key(value)
            } else {
                None
            }
        })
    } else if mime.eq_ignore_ascii_case("application/dtmf") {
        info_key(body)
    } else {
        None
    }
}

/// One key as spelled in an INFO body.
fn info_key(value: &str) -> Option<char> {
    let value = value.trim();
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => {
            let c = c.to_ascii_uppercase();
            matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
        }
        _ => match value.parse::<u8>() {
            Ok(code @ 10..=15) => event_digit(code),
            _ => None,
        },
    }
}
