//! Phones of the test's own for the tests of calls that outlive a holdfast process
//! (`tests/survive.rs`, docs/behaviour.md §13): RTP recorded packet by packet (and a tone
//! talked back, for bridged calls), raw UDP callers that answer holdfast's in-dialog
//! OPTIONS, agents' phones that answer its INVITEs, the checks of a stream across an outage
//! or a handover, and the admin API's view of the line.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use holdfast::media::g711;

use super::api::get_json;
use super::phones::free_tcp_port;
use super::{
    Heard, Holdfast, RawCall, RawUa, Setup, free_sip_port, header, pcmu_offer, scratch_dir,
};

/// The music (or the relayed voice) comes back this soon after the restarted holdfast
/// answers OPTIONS.
pub const RESUME_WITHIN: Duration = Duration::from_secs(2);
/// How far the RTP timestamp's jump may be from the real gap: 200 ms at 8 kHz.
pub const TIMESTAMP_SLACK: f64 = 1600.0;
/// How much audio [`check_tone`] listens to.
pub const TONE_WINDOW: Duration = Duration::from_millis(1200);

/// One RTP packet as a phone received it.
#[derive(Debug, Clone, Copy)]
pub struct Rtp {
    /// When the test read it.
    pub at: Instant,
    /// The address it came from (holdfast's RTP port for the call).
    pub from: SocketAddr,
    /// Its SSRC.
    pub ssrc: u32,
    /// Its sequence number.
    pub seq: u16,
    /// Its timestamp.
    pub ts: u32,
    /// Its marker bit.
    pub marker: bool,
}

impl Rtp {
    fn parse(packet: &[u8], at: Instant, from: SocketAddr) -> Option<Self> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        Some(Self {
            at,
            from,
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            ts: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            marker: packet[1] & 0x80 != 0,
        })
    }
}

/// A sine tone as PCMU RTP, one 20 ms packet at a time.
struct Tone {
    hz: f32,
    ssrc: u32,
    seq: u16,
    ts: u32,
    phase: f32,
}

impl Tone {
    fn packet(&mut self) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + 160);
        packet.extend_from_slice(&[0x80, 0]);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.ts.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        let step = 2.0 * std::f32::consts::PI * self.hz / 8000.0;
        for _ in 0..160 {
            packet.push(g711::linear_to_ulaw((self.phase.sin() * 8000.0) as i16));
            self.phase = (self.phase + step) % (2.0 * std::f32::consts::PI);
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        packet
    }
}

/// An RTP socket on loopback recording every packet that arrives, until dropped. A talking
/// one is a phone's audio: it also keeps what it hears, decoded, and sends a tone (PCMU,
/// 20 ms packets) to the address given to [`Recorder::talk_to`].
pub struct Recorder {
    /// Its port, for an SDP offer or answer, or SIPp's `rtp_port`.
    pub port: u16,
    packets: Arc<Mutex<Vec<Rtp>>>,
    heard: Arc<Mutex<Heard>>,
    peer: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// A recorder that only listens.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A phone's audio talking a `tone_hz` tone once it knows where to ([`Recorder::talk_to`]).
    pub fn talking(tone_hz: f32) -> Self {
        Self::spawn(Some(tone_hz))
    }

    fn spawn(tone_hz: Option<f32>) -> Self {
        let (socket, port) = super::rtp_sink();
        // A talking phone wakes every few milliseconds to keep its 20 ms rhythm.
        let wake = Duration::from_millis(if tone_hz.is_some() { 5 } else { 20 });
        socket
            .set_read_timeout(Some(wake))
            .expect("RTP read timeout");
        let packets: Arc<Mutex<Vec<Rtp>>> = Arc::new(Mutex::new(Vec::new()));
        let heard: Arc<Mutex<Heard>> = Arc::new(Mutex::new(Vec::new()));
        let peer: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (packets, heard) = (Arc::clone(&packets), Arc::clone(&heard));
            let (peer, stop) = (Arc::clone(&peer), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut tone = tone_hz.map(|hz| Tone {
                    hz,
                    ssrc: 0x7e57_0000 | u32::from(port),
                    seq: 0,
                    ts: 0,
                    phase: 0.0,
                });
                let mut next_send = Instant::now();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = socket.recv_from(&mut buf) {
                        let at = Instant::now();
                        if let Some(packet) = Rtp::parse(&buf[..len], at, from) {
                            packets.lock().unwrap().push(packet);
                            if tone.is_some() {
                                let samples = buf[12..len]
                                    .iter()
                                    .map(|&b| f32::from(g711::ulaw_to_linear(b)))
                                    .collect();
                                heard.lock().unwrap().push((at, samples));
                            }
                        }
                    }
                    let to = *peer.lock().unwrap();
                    let now = Instant::now();
                    if let (Some(tone), Some(to)) = (tone.as_mut(), to)
                        && now >= next_send
                    {
                        let _ = socket.send_to(&tone.packet(), to);
                        // After a pause (no peer yet, a stalled thread) the rhythm starts
                        // afresh instead of catching up in a burst.
                        let behind = now.duration_since(next_send) > Duration::from_millis(100);
                        next_send =
                            if behind { now } else { next_send } + Duration::from_millis(20);
                    }
                }
            })
        };
        Self {
            port,
            packets,
            heard,
            peer,
            stop,
            thread: Some(thread),
        }
    }

    /// From now on a talking recorder sends its tone to `peer` (a listening one ignores it).
    pub fn talk_to(&self, peer: SocketAddr) {
        *self.peer.lock().unwrap() = Some(peer);
    }

    /// Everything received so far, in arrival order.
    pub fn packets(&self) -> Vec<Rtp> {
        self.packets.lock().unwrap().clone()
    }

    /// How many streams (SSRCs) have brought at least `min` packets so far.
    pub fn streams_heard(&self, min: usize) -> usize {
        let packets = self.packets.lock().unwrap();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for p in packets.iter() {
            *counts.entry(p.ssrc).or_default() += 1;
        }
        counts.values().filter(|&&n| n >= min).count()
    }

    /// The decoded samples a talking recorder received between `from` and `to`.
    pub fn heard_between(&self, from: Instant, to: Instant) -> Vec<f32> {
        super::heard_between(&self.heard.lock().unwrap(), from, to)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The packets of each stream (SSRC), in arrival order.
pub fn by_ssrc(packets: &[Rtp]) -> HashMap<u32, Vec<Rtp>> {
    let mut streams: HashMap<u32, Vec<Rtp>> = HashMap::new();
    for p in packets {
        streams.entry(p.ssrc).or_default().push(*p);
    }
    streams
}

/// When the second holdfast was started, and when it answered OPTIONS.
pub struct Restart {
    /// When it was started.
    pub began: Instant,
    /// When it answered OPTIONS.
    pub ready: Instant,
}

/// Checks one caller's stream across the outage: the packets before `restart.began` came
/// from the killed process, the rest from the new one. The first packet after the gap comes
/// within [`RESUME_WITHIN`] of the restart, from the same address (`answer_port`, when
/// known: the port of holdfast's SDP answer) with the same SSRC, its sequence number 1 to 3
/// past the last one heard, the marker bit set, and its timestamp jumped by the real gap.
pub fn check_resumed(
    packets: &[Rtp],
    restart: &Restart,
    answer_port: Option<u16>,
) -> Result<(), String> {
    let split = packets.partition_point(|p| p.at < restart.began);
    let (before, after) = packets.split_at(split);
    let last = before.last().ok_or("no RTP before the kill")?;
    let first = after.first().ok_or("no RTP after the restart")?;
    let mut wrong = Vec::new();
    if let Some(port) = answer_port
        && last.from.port() != port
    {
        wrong.push(format!(
            "music came from {} before the kill, the SDP answer said port {port}",
            last.from
        ));
    }
    if first.from != last.from {
        wrong.push(format!(
            "music came from {} before the kill and from {} after",
            last.from, first.from
        ));
    }
    if let Some(other) = packets.iter().find(|p| p.ssrc != last.ssrc) {
        wrong.push(format!(
            "SSRC {:08x} before the kill, {:08x} seen too",
            last.ssrc, other.ssrc
        ));
    }
    let step = first.seq.wrapping_sub(last.seq);
    if !(1..=3).contains(&step) {
        wrong.push(format!(
            "sequence number {} before the gap, {} after it (+1 to +3 expected)",
            last.seq, first.seq
        ));
    }
    if !first.marker {
        wrong.push("no marker bit on the first packet after the gap".to_string());
    }
    let gap = first.at.duration_since(last.at);
    let expected = gap.as_secs_f64() * 8000.0;
    let jump = f64::from(first.ts.wrapping_sub(last.ts));
    if (jump - expected).abs() > TIMESTAMP_SLACK {
        wrong.push(format!(
            "timestamp jumped {jump} samples over a {gap:?} gap ({expected:.0} expected)"
        ));
    }
    let resumed = first.at.saturating_duration_since(restart.ready);
    if resumed > RESUME_WITHIN {
        wrong.push(format!(
            "music came back {resumed:?} after the restart answered OPTIONS"
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// One stream across a restart: the last packet before `restart.began` and the first after
/// it, which must come within [`RESUME_WITHIN`] of the restart answering OPTIONS.
pub fn resumed(packets: &[Rtp], restart: &Restart) -> Result<(Rtp, Rtp), String> {
    let split = packets.partition_point(|p| p.at < restart.began);
    let last = *packets[..split].last().ok_or("no RTP before the kill")?;
    let first = *packets.get(split).ok_or("no RTP after the restart")?;
    let late = first.at.saturating_duration_since(restart.ready);
    if late > RESUME_WITHIN {
        return Err(format!(
            "RTP came back {late:?} after the restart answered OPTIONS"
        ));
    }
    Ok((last, first))
}

/// Checks that `next` goes on from `last` in one stream: the same source address and SSRC,
/// a sequence number 1 to 3 past (a packet noted in the ledger but never sent is skipped).
pub fn check_step(last: &Rtp, next: &Rtp) -> Result<(), String> {
    if next.from != last.from || next.ssrc != last.ssrc {
        return Err(format!(
            "SSRC {:08x} from {}, then SSRC {:08x} from {}",
            last.ssrc, last.from, next.ssrc, next.from
        ));
    }
    let step = next.seq.wrapping_sub(last.seq);
    if !(1..=3).contains(&step) {
        return Err(format!(
            "sequence number {}, then {} (+1 to +3 expected)",
            last.seq, next.seq
        ));
    }
    Ok(())
}

/// How many packets repeat a sequence number their stream brought already.
pub fn duplicates(packets: &[Rtp]) -> usize {
    let mut seen = HashSet::new();
    packets
        .iter()
        .filter(|p| !seen.insert((p.ssrc, p.seq)))
        .count()
}

/// Judges one caller's stream across a handover that began at `began` and was over by
/// `until`: one SSRC from one address all along, no sequence number received twice, every
/// step of the sequence number overlapping the window 1 to 3, and RTP still coming after
/// it. Returns the longest silence between two consecutive packets overlapping the window:
/// the gap the caller heard when one process handed over to the other (or a longer stall
/// of either process's media clock, which the caller would hear just the same).
pub fn check_handover(packets: &[Rtp], began: Instant, until: Instant) -> Result<Duration, String> {
    let first = packets.first().ok_or("no RTP at all")?;
    if packets.last().is_none_or(|p| p.at <= until) {
        return Err("no RTP after the handover".to_string());
    }
    let mut wrong = Vec::new();
    if let Some(other) = packets
        .iter()
        .find(|p| p.ssrc != first.ssrc || p.from != first.from)
    {
        wrong.push(format!(
            "SSRC {:08x} from {}, later SSRC {:08x} from {}",
            first.ssrc, first.from, other.ssrc, other.from
        ));
    }
    let repeated = duplicates(packets);
    if repeated > 0 {
        wrong.push(format!(
            "{repeated} packets with a sequence number seen before"
        ));
    }
    if let Some(e) = packets
        .windows(2)
        .filter(|pair| pair[1].at >= began && pair[0].at <= until)
        .find_map(|pair| check_step(&pair[0], &pair[1]).err())
    {
        wrong.push(e);
    }
    if wrong.is_empty() {
        Ok(longest_gap(packets, began, until))
    } else {
        Err(wrong.join("; "))
    }
}

/// The longest silence between two consecutive packets of one stream (in arrival order)
/// that overlaps `from..to`.
pub fn longest_gap(packets: &[Rtp], from: Instant, to: Instant) -> Duration {
    packets
        .windows(2)
        .filter(|pair| pair[1].at >= from && pair[0].at <= to)
        .map(|pair| pair[1].at.duration_since(pair[0].at))
        .max()
        .unwrap_or_default()
}

/// The streams of a recorder that several callers share (SIPp's) across a handover that
/// began at `began` and was over by `until`: there must be `expected` of them (none begun
/// after the handover), each still coming after it, from one address, and with no sequence
/// number received twice; problems go to `wrong`. One socket takes every stream, so a
/// packet may be dropped by its receive buffer: the steps are left to [`check_handover`]
/// on the probes. Returns the longest gap in any of them.
pub fn check_handovers(
    packets: &[Rtp],
    expected: usize,
    began: Instant,
    until: Instant,
    wrong: &mut Vec<String>,
) -> Duration {
    let streams = by_ssrc(packets);
    if streams.len() != expected {
        wrong.push(format!("{} streams, {expected} calls", streams.len()));
    }
    let mut longest = Duration::ZERO;
    for (ssrc, packets) in &streams {
        let (first, last) = (packets[0], packets[packets.len() - 1]);
        if last.at <= until {
            wrong.push(format!("stream {ssrc:08x}: no RTP after the handover"));
        }
        if let Some(other) = packets.iter().find(|p| p.from != first.from) {
            wrong.push(format!(
                "stream {ssrc:08x}: from {}, later from {}",
                first.from, other.from
            ));
        }
        let repeated = duplicates(packets);
        if repeated > 0 {
            wrong.push(format!(
                "stream {ssrc:08x}: {repeated} sequence numbers twice"
            ));
        }
        longest = longest.max(longest_gap(packets, began, until));
    }
    longest
}

/// Whether the phone whose audio `rtp` records heard a `tone` Hz tone through the
/// [`TONE_WINDOW`] from `from`: most of the packets came, and the tone is 10× stronger
/// than `own` (the phone's own tone, which must not come back to it) and than 700 and
/// 1500 Hz.
pub fn check_tone(rtp: &Recorder, from: Instant, tone: f32, own: f32) -> Result<(), String> {
    let samples = rtp.heard_between(from, from + TONE_WINDOW);
    let expected = TONE_WINDOW.as_secs_f32() * 8000.0;
    if (samples.len() as f32) < 0.8 * expected {
        return Err(format!(
            "{} samples heard in {TONE_WINDOW:?}, {expected} sent",
            samples.len()
        ));
    }
    let others = [own, 700.0, 1500.0];
    if super::dominant(&samples, tone, &others) {
        return Ok(());
    }
    let powers: Vec<String> = std::iter::once(tone)
        .chain(others)
        .map(|f| format!("{f} Hz: {:.0}", super::tone_power(&samples, f, 8000.0)))
        .collect();
    Err(format!(
        "the {tone} Hz tone does not dominate ({})",
        powers.join(", ")
    ))
}

/// A request holdfast sent to one of the test's phones, with when it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// The request's text.
    pub text: String,
}

/// Plays a probe's phone on its SIP socket until stopped: answers every in-dialog OPTIONS
/// with `code` (`None`: never answers, like a phone that is gone) and records every request.
pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Request>>,
}

impl Responder {
    /// Starts answering on `socket`.
    pub fn start(socket: UdpSocket, code: Option<u16>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("SIP read timeout");
            let mut requests = Vec::new();
            let mut buf = [0u8; 65_536];
            while !flag.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let at = Instant::now();
                if super::status_code(&buf[..len]).is_some() {
                    continue;
                }
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if let Some(code) = code
                    && text.starts_with("OPTIONS ")
                {
                    let _ = socket.send_to(response_to(&text, code).as_bytes(), from);
                }
                requests.push(Request { at, text });
            }
            requests
        });
        Self { stop, thread }
    }

    /// Stops answering; the requests that came.
    pub fn stop(self) -> Vec<Request> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("SIP responder")
    }
}

/// A UAS's response to `request` (RFC 3261 §8.2.6.2): its Via values, From, To (it carries
/// our tag already: the request is in a dialog), Call-ID and CSeq copied.
pub fn response_to(request: &str, code: u16) -> String {
    respond(request, code, None, "", "")
}

/// A UAS's response to `request` (RFC 3261 §8.2.6.2): its Via values, From, To, Call-ID and
/// CSeq copied, `to_tag` added to a To without a tag (the response that makes a dialog),
/// then the `extra` header lines (each ending in CRLF) and an SDP body (none when empty).
fn respond(request: &str, code: u16, to_tag: Option<&str>, extra: &str, sdp: &str) -> String {
    let reason = match code {
        200 => "OK",
        481 => "Call/Transaction Does Not Exist",
        _ => "Unknown",
    };
    let mut response = format!("SIP/2.0 {code} {reason}\r\n");
    for line in request
        .split("\r\n")
        .skip(1)
        .take_while(|line| !line.is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value))
            .unwrap_or_default();
        if !matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            continue;
        }
        response.push_str(line);
        if let Some(to_tag) = to_tag
            && matches!(name.as_str(), "to" | "t")
            && tag(value).is_none()
        {
            response.push_str(";tag=");
            response.push_str(to_tag);
        }
        response.push_str("\r\n");
    }
    let content_type = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{response}{extra}{content_type}Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The first of the headers `names` (long and compact forms) in a message's text.
pub fn field<'a>(text: &'a str, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| header(text, name))
}

/// The `tag` parameter of a From or To value.
pub fn tag(value: &str) -> Option<&str> {
    value
        .split(';')
        .find_map(|param| param.trim().strip_prefix("tag="))
}

/// The `branch` of a request's top Via.
pub fn branch(text: &str) -> Option<&str> {
    field(text, &["Via", "v"])?
        .split(';')
        .find_map(|param| param.trim().strip_prefix("branch="))
}

/// The audio address of an SDP body: its `c=` address and `m=audio` port.
pub fn sdp_audio(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port: u16 = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok())?;
    format!("{ip}:{port}").parse().ok()
}

/// A raw UDP caller of the test's own: its SIP socket, its call, and every RTP packet it
/// heard on a socket of its own.
pub struct Probe {
    /// Its SIP user agent.
    pub ua: RawUa,
    /// Its call to holdfast.
    pub call: RawCall,
    /// holdfast's RTP port for this call, from its SDP answer.
    pub answer_port: u16,
    /// Its RTP socket.
    pub rtp: Recorder,
}

impl Probe {
    /// Calls holdfast as caller `+1555010nnnn`; it is answered and holds.
    pub fn dial(holdfast: &Holdfast, n: usize) -> Self {
        Self::dial_with(holdfast, n, Recorder::start())
    }

    /// Like [`Probe::dial`], a caller who talks: from the answer on, it sends a `tone_hz`
    /// tone to holdfast's port for the call and keeps what it hears.
    pub fn dial_talking(holdfast: &Holdfast, n: usize, tone_hz: f32) -> Self {
        Self::dial_with(holdfast, n, Recorder::talking(tone_hz))
    }

    fn dial_with(holdfast: &Holdfast, n: usize, rtp: Recorder) -> Self {
        let ua = RawUa::new("127.0.0.1", holdfast.sip);
        let call = ua.invite("100", &format!("+1555010{n:04}"), &pcmu_offer(rtp.port));
        assert_eq!(
            call.code,
            200,
            "probe {n}: {}\n{}",
            call.response,
            holdfast.log()
        );
        let answer_port: u16 = super::body(&call.response)
            .lines()
            .find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("probe {n}: no m=audio in the answer:\n{}", call.response));
        rtp.talk_to(SocketAddr::from(([127, 0, 0, 1], answer_port)));
        Self {
            ua,
            call,
            answer_port,
            rtp,
        }
    }

    /// From now on its phone answers holdfast's OPTIONS with `code` (`None`: never).
    pub fn answer_options(&self, code: Option<u16>) -> Responder {
        let socket = self.ua.socket.try_clone().expect("clone the SIP socket");
        Responder::start(socket, code)
    }

    /// Whether `request` is an OPTIONS within this probe's dialog, sent by holdfast: its
    /// Call-ID, From tagged with holdfast's tag, To with ours.
    pub fn check_options(&self, request: &str) -> Result<(), String> {
        let call_id = field(request, &["Call-ID", "i"]);
        let from_tag = field(request, &["From", "f"]).and_then(tag);
        let to_tag = field(request, &["To", "t"]).and_then(tag);
        let cseq = field(request, &["CSeq"]);
        let ok = request.starts_with("OPTIONS ")
            && call_id == Some(self.call.call_id.as_str())
            && from_tag == Some(self.call.to_tag.as_str())
            && to_tag == Some(self.call.from_tag.as_str())
            && cseq.is_some_and(|c| c.ends_with("OPTIONS"));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "not an OPTIONS in the dialog (Call-ID {}, holdfast's tag {}, ours {}):\n{request}",
                self.call.call_id, self.call.to_tag, self.call.from_tag
            ))
        }
    }

    /// The OPTIONS among `requests`, each checked: problems go to `wrong`.
    pub fn options<'a>(
        &self,
        name: &str,
        requests: &'a [Request],
        wrong: &mut Vec<String>,
    ) -> Vec<&'a Request> {
        let options: Vec<&Request> = requests
            .iter()
            .filter(|r| r.text.starts_with("OPTIONS "))
            .collect();
        if options.is_empty() {
            wrong.push(format!("{name}: no in-dialog OPTIONS after the restart"));
        }
        for request in &options {
            if let Err(e) = self.check_options(&request.text) {
                wrong.push(format!("{name}: {e}"));
            }
        }
        options
    }
}

/// A call an [`AgentPhone`] answered.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// Its Call-ID.
    pub call_id: String,
    /// holdfast's tag (the INVITE's From).
    pub holdfast_tag: String,
    /// The phone's tag (its 200's To).
    pub tag: String,
    /// Where holdfast wants the agent's RTP (its SDP offer).
    pub holdfast_rtp: SocketAddr,
}

impl AgentCall {
    /// Whether `request` (sent by holdfast) belongs to this call's dialog.
    pub fn owns(&self, request: &str) -> bool {
        field(request, &["Call-ID", "i"]) == Some(self.call_id.as_str())
            && field(request, &["From", "f"]).and_then(tag) == Some(self.holdfast_tag.as_str())
            && field(request, &["To", "t"]).and_then(tag) == Some(self.tag.as_str())
    }
}

/// An agent's phone played by the test on a SIP socket of its own, until dropped: it answers
/// holdfast's INVITEs at once with `200` and an SDP answer naming its RTP socket, which then
/// talks a tone to holdfast's port from the offer and records what it hears; it answers
/// every other request (in-dialog OPTIONS, BYE) with `200` and records them all.
pub struct AgentPhone {
    /// The agent's user name.
    pub user: String,
    /// Its SIP socket's address: the Contact it registered.
    pub sip: SocketAddr,
    /// Its audio.
    pub rtp: Recorder,
    calls: Arc<Mutex<Vec<AgentCall>>>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentPhone {
    /// Starts agent `user`'s phone, talking a `tone_hz` tone in its calls, and registers it
    /// with Digest, password `<user>-secret` (SIPp's `agent_register.xml`, its Contact this
    /// phone's SIP socket).
    pub fn register(holdfast: &Holdfast, user: &str, tone_hz: f32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the agent's SIP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("SIP read timeout");
        let sip = socket.local_addr().unwrap();
        let rtp = Recorder::talking(tone_hz);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sip_side = PhoneLine {
            socket,
            user: user.to_owned(),
            contact: sip,
            rtp_port: rtp.port,
            peer: Arc::clone(&rtp.peer),
            calls: Arc::clone(&calls),
            requests: Arc::clone(&requests),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::spawn(move || sip_side.run());
        let phone = Self {
            user: user.to_owned(),
            sip,
            rtp,
            calls,
            requests,
            stop,
            thread: Some(thread),
        };
        super::register_sipp_agent(holdfast, user, &format!("{user}-secret"), sip.port());
        phone
    }

    /// The calls it answered so far.
    pub fn calls(&self) -> Vec<AgentCall> {
        self.calls.lock().unwrap().clone()
    }

    /// How many `method` requests within the dialog of a call it answered arrived since
    /// `since`.
    pub fn in_dialog(&self, method: &str, since: Instant) -> usize {
        let calls = self.calls();
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.at >= since && r.text.split(' ').next() == Some(method))
            .filter(|r| calls.iter().any(|c| c.owns(&r.text)))
            .count()
    }
}

impl Drop for AgentPhone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The SIP side of an [`AgentPhone`], on its own thread.
struct PhoneLine {
    socket: UdpSocket,
    user: String,
    contact: SocketAddr,
    rtp_port: u16,
    peer: Arc<Mutex<Option<SocketAddr>>>,
    calls: Arc<Mutex<Vec<AgentCall>>>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl PhoneLine {
    fn run(self) {
        // Call-ID → the 200 that answered its INVITE, sent again for a retransmission.
        let mut answers: HashMap<String, String> = HashMap::new();
        let mut buf = [0u8; 65_536];
        while !self.stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            if super::status_code(&buf[..len]).is_some() {
                continue;
            }
            let at = Instant::now();
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let reply = if text.starts_with("ACK ") {
                None
            } else if text.starts_with("INVITE ") {
                Some(self.answer(&text, &mut answers))
            } else {
                Some(response_to(&text, 200))
            };
            if let Some(reply) = reply {
                let _ = self.socket.send_to(reply.as_bytes(), from);
            }
            self.requests.lock().unwrap().push(Request { at, text });
        }
    }

    /// The `200` to an INVITE: a new call gets the phone's RTP socket in the SDP answer, and
    /// the phone's tone goes to holdfast's port from the offer.
    fn answer(&self, invite: &str, answers: &mut HashMap<String, String>) -> String {
        let call_id = field(invite, &["Call-ID", "i"])
            .unwrap_or_default()
            .to_owned();
        if let Some(answer) = answers.get(&call_id) {
            return answer.clone();
        }
        let our_tag = format!("{}-{}", self.user, answers.len() + 1);
        let sdp = super::sdp_offer(self.rtp_port, "0", "a=rtpmap:0 PCMU/8000\r\n");
        let contact = format!("Contact: <sip:{}@{}>\r\n", self.user, self.contact);
        let answer = respond(invite, 200, Some(&our_tag), &contact, &sdp);
        if let Some(holdfast_rtp) = sdp_audio(super::body(invite)) {
            *self.peer.lock().unwrap() = Some(holdfast_rtp);
            self.calls.lock().unwrap().push(AgentCall {
                call_id: call_id.clone(),
                holdfast_tag: field(invite, &["From", "f"])
                    .and_then(tag)
                    .unwrap_or_default()
                    .to_owned(),
                tag: our_tag,
                holdfast_rtp,
            });
        }
        answers.insert(call_id, answer.clone());
        answer
    }
}

/// A caller talking `caller_tone` bridged to agent `user` (password `<user>-secret`)
/// talking `agent_tone`: the agent registers, the caller dials and goes straight to it.
pub fn talking_call(
    holdfast: &Holdfast,
    user: &str,
    agent_tone: f32,
    caller_tone: f32,
) -> (AgentPhone, Probe) {
    let agent = AgentPhone::register(holdfast, user, agent_tone);
    let caller = Probe::dial_talking(holdfast, 1, caller_tone);
    assert!(
        wait_until(Duration::from_secs(5), || agent.calls().len() == 1),
        "the agent answers\n{}",
        log_tail(holdfast)
    );
    (agent, caller)
}

/// SIPp callers in the background: `calls` callers who hold for `hold`, their music sent to
/// `rtp_port`. `-aa` answers holdfast's in-dialog OPTIONS with `200`.
pub fn sipp_callers(
    target: SocketAddr,
    rtp_port: u16,
    calls: usize,
    hold: Duration,
) -> JoinHandle<Output> {
    std::thread::spawn(move || {
        let calls = calls.to_string();
        let hold = hold.as_millis().to_string();
        let rtp_port = rtp_port.to_string();
        super::sipp(
            "caller.xml",
            target,
            &[
                "-s", "100", "-m", &calls, "-l", &calls, "-r", "25", "-d", &hold, "-aa", "-key",
                "rtp_port", &rtp_port,
            ],
        )
    })
}

/// A setup with the admin API on, on a SIP port, admin port and data directory of its own:
/// starting holdfast twice with it writes the same config both times. Returns it with the
/// admin API's address.
pub fn setup(name: &str, rtp_base: u16) -> (Setup, SocketAddr) {
    let admin = free_tcp_port();
    let mut setup = Setup::new(rtp_base);
    setup.admin = format!("listen = \"127.0.0.1:{admin}\"\n");
    setup.sip_port = Some(free_sip_port());
    setup.data_dir = Some(scratch_dir(&format!("{name}-data")));
    (setup, SocketAddr::from(([127, 0, 0, 1], admin)))
}

/// Waits until the admin API accepts connections (it may come up just after SIP).
pub fn wait_admin(api: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(api).is_err() {
        assert!(
            Instant::now() < deadline,
            "the admin API at {api} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 100 ms until it holds or `wait` passes; whether it held.
pub fn wait_until(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sleeps until `at` (at once if it has passed).
pub fn sleep_until(at: Instant) {
    if let Some(left) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// Asserts that the line empties within 2 s.
pub fn line_empties(api: SocketAddr) {
    assert!(
        wait_until(Duration::from_secs(2), || line(api).is_empty()),
        "{:?}",
        line(api)
    );
}

/// Waits for a SIPp run to end and asserts it reported every call successful.
pub fn sipp_succeeded(run: std::thread::JoinHandle<std::process::Output>, holdfast: &Holdfast) {
    let out = run.join().expect("SIPp thread");
    assert!(
        out.status.success(),
        "SIPp reported failed calls:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log_tail(holdfast)
    );
}

/// The callers waiting in `support` as the admin API lists them, in dispatch order:
/// (Call-ID, position).
pub fn line(api: SocketAddr) -> Vec<(String, u64)> {
    let queues = get_json(api, "/api/queues");
    queues[0]["waiting"]
        .as_array()
        .expect("a waiting list")
        .iter()
        .map(|w| {
            (
                w["call_id"].as_str().expect("a call_id").to_owned(),
                w["position"].as_u64().expect("a position"),
            )
        })
        .collect()
}

/// `line` without the call `gone`, positions counted again from 1.
pub fn without(line: &[(String, u64)], gone: &str) -> Vec<(String, u64)> {
    line.iter()
        .filter(|w| w.0 != gone)
        .enumerate()
        .map(|(i, w)| (w.0.clone(), i as u64 + 1))
        .collect()
}

/// Where two lines first differ, for a failure message (a line of 200 is long).
pub fn difference(expected: &[(String, u64)], actual: &[(String, u64)]) -> String {
    let lengths = format!("{} expected, {} listed", expected.len(), actual.len());
    match expected.iter().zip(actual).position(|(e, a)| e != a) {
        Some(i) => format!(
            "{lengths}; first difference at {i}: expected {:?}, listed {:?}",
            expected[i], actual[i]
        ),
        None => lengths,
    }
}

/// The end of holdfast's log and where the whole of it is, for failure messages.
pub fn log_tail(holdfast: &Holdfast) -> String {
    let log = holdfast.log();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "holdfast log {} (last 200 lines):\n{}",
        holdfast.dir.join("holdfast.log").display(),
        lines[lines.len().saturating_sub(200)..].join("\n")
    )
}

/// `text` without the ANSI colour sequences of holdfast's human log (its field names and
/// values are coloured apart: `bridged=true` is only found in the plain text).
pub fn plain(text: &str) -> String {
    let mut pieces = text.split('\x1b');
    let mut out = pieces.next().unwrap_or_default().to_owned();
    for piece in pieces {
        // `[` parameters `m`: the only sequences (Select Graphic Rendition) the log has.
        out.push_str(piece.split_once('m').map_or(piece, |(_, rest)| rest));
    }
    out
}

/// The exit status of the child process `pid` once it has exited (in waitpid(2)'s form: 0
/// for a process that returned 0 from `main`), waiting at most `wait`; `None` while it
/// runs. It is read from `/proc/<pid>/stat` while the process is a zombie, so nothing reaps
/// it and its [`Holdfast`] can still wait for it.
pub fn exit_status(pid: u32, wait: Duration) -> Option<i32> {
    let deadline = Instant::now() + wait;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ...`; comm may contain spaces and parentheses. After it, field
        // 3 (state) comes first, so field 52 (exit_code, Linux 3.5 and later) is the 50th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return fields.get(49)?.parse().ok();
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
