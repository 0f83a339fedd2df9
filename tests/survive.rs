//! Held callers survive `kill -9` (docs/behaviour.md §3, §4, §9): holdfast is killed with
//! callers on hold and started again with the same config, data directory and SIP port.
//! Every caller that was waiting is back on hold at its place: the music comes from the same
//! RTP port with the same SSRC, the sequence number going on and the timestamp jumped by the
//! outage (RFC 3550 §5.1), the marker bit on the first packet after the gap; each is asked
//! with an in-dialog OPTIONS whether its phone still knows the call, and one that answers
//! `481` (or never answers) leaves the line. SIPp plays most callers; a few raw UDP callers
//! of the test's own record every RTP packet and answer the OPTIONS as a UAS does.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::api::get_json;
use common::phones::free_tcp_port;
use common::{Holdfast, RawCall, RawUa, Setup, free_sip_port, header, pcmu_offer, scratch_dir};

/// RTP ranges above the ephemeral ports (32768–60999): no other socket can take a restored
/// call's port while holdfast is down.
const RTP_BASE: u16 = 61_000;
const RTP_BASE_TIMER_F: u16 = 62_000;
/// SIPp runs, each with its own RTP sink, and the callers each places.
const SIPP_RUNS: usize = 4;
const SIPP_CALLS: usize = 48;
/// Raw callers of the test's own.
const PROBES: usize = 8;
/// How long the SIPp callers hold before they hang up (their `-d`).
const HOLD: Duration = Duration::from_secs(20);
/// How long holdfast stays dead.
const OUTAGE: Duration = Duration::from_secs(1);
/// The music comes back this soon after the restarted holdfast answers OPTIONS.
const RESUME_WITHIN: Duration = Duration::from_secs(2);
/// How far the RTP timestamp's jump may be from the real gap: 200 ms at 8 kHz.
const TIMESTAMP_SLACK: f64 = 1600.0;
/// Timer F (64 × T1): a non-INVITE transaction without an answer gives up after it.
const TIMER_F: Duration = Duration::from_secs(32);

/// One RTP packet as a caller received it.
#[derive(Debug, Clone, Copy)]
struct Rtp {
    /// When the test read it.
    at: Instant,
    /// The address it came from (holdfast's RTP port for the call).
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
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

/// An RTP socket on loopback recording every packet that arrives, until dropped.
struct Recorder {
    /// Its port, for an SDP offer or SIPp's `rtp_port`.
    port: u16,
    packets: Arc<Mutex<Vec<Rtp>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Self {
        let (socket, port) = common::rtp_sink();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("RTP read timeout");
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (packets, stop) = (Arc::clone(&packets), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = socket.recv_from(&mut buf)
                        && let Some(packet) = Rtp::parse(&buf[..len], Instant::now(), from)
                    {
                        packets.lock().unwrap().push(packet);
                    }
                }
            })
        };
        Self {
            port,
            packets,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything received so far, in arrival order.
    fn packets(&self) -> Vec<Rtp> {
        self.packets.lock().unwrap().clone()
    }

    /// How many streams (SSRCs) have brought at least `min` packets so far.
    fn streams_heard(&self, min: usize) -> usize {
        let packets = self.packets.lock().unwrap();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for p in packets.iter() {
            *counts.entry(p.ssrc).or_default() += 1;
        }
        counts.values().filter(|&&n| n >= min).count()
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
fn by_ssrc(packets: &[Rtp]) -> HashMap<u32, Vec<Rtp>> {
    let mut streams: HashMap<u32, Vec<Rtp>> = HashMap::new();
    for p in packets {
        streams.entry(p.ssrc).or_default().push(*p);
    }
    streams
}

/// When the second holdfast was started, and when it answered OPTIONS.
struct Restart {
    began: Instant,
    ready: Instant,
}

/// Checks one caller's stream across the outage: the packets before `restart.began` came
/// from the killed process, the rest from the new one. The first packet after the gap comes
/// within [`RESUME_WITHIN`] of the restart, from the same address (`answer_port`, when
/// known: the port of holdfast's SDP answer) with the same SSRC, its sequence number 1 to 3
/// past the last one heard, the marker bit set, and its timestamp jumped by the real gap.
fn check_resumed(
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

/// A request holdfast sent to a probe, with when it arrived.
struct Request {
    at: Instant,
    text: String,
}

/// Plays a probe's phone on its SIP socket until stopped: answers every in-dialog OPTIONS
/// with `code` (`None`: never answers, like a phone that is gone) and records every request.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Request>>,
}

impl Responder {
    fn start(socket: UdpSocket, code: Option<u16>) -> Self {
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
                if common::status_code(&buf[..len]).is_some() {
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
    fn stop(self) -> Vec<Request> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("SIP responder")
    }
}

/// A UAS's response to `request` (RFC 3261 §8.2.6.2): its Via values, From, To (it carries
/// our tag already: the request is in a dialog), Call-ID and CSeq copied.
fn response_to(request: &str, code: u16) -> String {
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
        let name = line
            .split_once(':')
            .map(|(name, _)| name.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            response.push_str(line);
            response.push_str("\r\n");
        }
    }
    response.push_str("Content-Length: 0\r\n\r\n");
    response
}

/// The first of the headers `names` (long and compact forms) in a message's text.
fn field<'a>(text: &'a str, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| header(text, name))
}

/// The `tag` parameter of a From or To value.
fn tag(value: &str) -> Option<&str> {
    value
        .split(';')
        .find_map(|param| param.trim().strip_prefix("tag="))
}

/// The `branch` of a request's top Via.
fn branch(text: &str) -> Option<&str> {
    field(text, &["Via", "v"])?
        .split(';')
        .find_map(|param| param.trim().strip_prefix("branch="))
}

/// A raw UDP caller of the test's own: its SIP socket, its call, and every RTP packet it
/// heard on a socket of its own.
struct Probe {
    ua: RawUa,
    call: RawCall,
    /// holdfast's RTP port for this call, from its SDP answer.
    answer_port: u16,
    rtp: Recorder,
}

impl Probe {
    /// Calls holdfast as caller `+1555010nnnn`; it is answered and holds.
    fn dial(holdfast: &Holdfast, n: usize) -> Self {
        let rtp = Recorder::start();
        let ua = RawUa::new("127.0.0.1", holdfast.sip);
        let call = ua.invite("100", &format!("+1555010{n:04}"), &pcmu_offer(rtp.port));
        assert_eq!(
            call.code,
            200,
            "probe {n}: {}\n{}",
            call.response,
            holdfast.log()
        );
        let answer_port: u16 = common::body(&call.response)
            .lines()
            .find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("probe {n}: no m=audio in the answer:\n{}", call.response));
        Self {
            ua,
            call,
            answer_port,
            rtp,
        }
    }

    /// From now on its phone answers holdfast's OPTIONS with `code` (`None`: never).
    fn answer_options(&self, code: Option<u16>) -> Responder {
        let socket = self.ua.socket.try_clone().expect("clone the SIP socket");
        Responder::start(socket, code)
    }

    /// Whether `request` is an OPTIONS within this probe's dialog, sent by holdfast: its
    /// Call-ID, From tagged with holdfast's tag, To with ours.
    fn check_options(&self, request: &str) -> Result<(), String> {
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
    fn options<'a>(
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

/// SIPp callers in the background: `SIPP_CALLS` callers who hold for [`HOLD`], their music
/// sent to `rtp_port`. `-aa` answers holdfast's in-dialog OPTIONS with `200`.
fn sipp_callers(target: SocketAddr, rtp_port: u16) -> JoinHandle<Output> {
    std::thread::spawn(move || {
        let calls = SIPP_CALLS.to_string();
        let hold = HOLD.as_millis().to_string();
        let rtp_port = rtp_port.to_string();
        common::sipp(
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
fn setup(name: &str, rtp_base: u16) -> (Setup, SocketAddr) {
    let admin = free_tcp_port();
    let mut setup = Setup::new(rtp_base);
    setup.admin = format!("listen = \"127.0.0.1:{admin}\"\n");
    setup.sip_port = Some(free_sip_port());
    setup.data_dir = Some(scratch_dir(&format!("{name}-data")));
    (setup, SocketAddr::from(([127, 0, 0, 1], admin)))
}

/// Waits until the admin API accepts connections (it may come up just after SIP).
fn wait_admin(api: SocketAddr) {
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
fn wait_until(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
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
fn sleep_until(at: Instant) {
    if let Some(left) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// The callers waiting in `support` as the admin API lists them, in dispatch order:
/// (Call-ID, position).
fn line(api: SocketAddr) -> Vec<(String, u64)> {
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
fn without(line: &[(String, u64)], gone: &str) -> Vec<(String, u64)> {
    line.iter()
        .filter(|w| w.0 != gone)
        .enumerate()
        .map(|(i, w)| (w.0.clone(), i as u64 + 1))
        .collect()
}

/// Where two lines first differ, for a failure message (a line of 200 is long).
fn difference(expected: &[(String, u64)], actual: &[(String, u64)]) -> String {
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
fn log_tail(holdfast: &Holdfast) -> String {
    let log = holdfast.log();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "holdfast log {} (last 200 lines):\n{}",
        holdfast.dir.join("holdfast.log").display(),
        lines[lines.len().saturating_sub(200)..].join("\n")
    )
}

/// 200 callers hold (192 from SIPp, 8 probes of the test's own), with no agent, when
/// holdfast is killed with SIGKILL; a second holdfast starts a second later with the same
/// config, data directory and SIP port. It restores every one of them (one `held call
/// restored` each): each probe hears its music again within 2 s from the same RTP port
/// (the one in the SDP answer) with the same SSRC, the sequence number going on, the marker
/// bit on the first packet after the gap and the timestamp jumped by the gap; so does every
/// SIPp caller's stream. Each probe is asked with an in-dialog OPTIONS; the one whose phone
/// answers `481` (its caller hung up during the outage) leaves the line at once and its
/// music stops (`restored call gone`), and the others keep their places: the admin API lists
/// the same line as before the kill, without it. The probes then hang up (`200`; `481` for
/// the one that is gone) and SIPp's callers hang up at the end of their hold, every call a
/// success.
#[test]
fn held_callers_survive_kill_9_with_their_rtp_stream_and_place() {
    let (setup, api) = setup("survive", RTP_BASE);
    let mut first = Holdfast::start("survive-1", &setup);
    wait_admin(api);

    // Half the probes call first, then SIPp's callers, then the other half: probes stand at
    // the front of the line and at its back.
    let mut probes: Vec<Probe> = (0..PROBES / 2).map(|n| Probe::dial(&first, n)).collect();
    let sinks: Vec<Recorder> = (0..SIPP_RUNS).map(|_| Recorder::start()).collect();
    let sipp_started = Instant::now();
    let runs: Vec<JoinHandle<Output>> = sinks
        .iter()
        .map(|sink| sipp_callers(first.sip, sink.port))
        .collect();
    let sipp_in = PROBES / 2 + SIPP_RUNS * SIPP_CALLS;
    assert!(
        wait_until(Duration::from_secs(20), || line(api).len() == sipp_in),
        "SIPp's callers did not all get in: {} waiting\n{}",
        line(api).len(),
        log_tail(&first)
    );
    probes.extend((PROBES / 2..PROBES).map(|n| Probe::dial(&first, n)));

    // Everyone is in line and has heard at least half a second of music.
    let all = PROBES + SIPP_RUNS * SIPP_CALLS;
    let hearing = wait_until(Duration::from_secs(10), || {
        probes.iter().all(|p| p.rtp.streams_heard(25) == 1)
            && sinks.iter().all(|s| s.streams_heard(25) == SIPP_CALLS)
    });
    assert!(
        hearing,
        "not every caller hears music\n{}",
        log_tail(&first)
    );
    let before = line(api);
    assert_eq!(before.len(), all, "{}", log_tail(&first));
    assert!(
        before.iter().enumerate().all(|(i, w)| w.1 == i as u64 + 1),
        "positions 1 to {all}: {before:?}"
    );
    for probe in &probes {
        assert!(
            before.iter().any(|w| w.0 == probe.call.call_id),
            "probe {} is not in line",
            probe.call.call_id
        );
    }
    // SIPp's callers must all still hold when the checks after the restart are done.
    assert!(
        sipp_started.elapsed() + Duration::from_secs(10) < HOLD,
        "getting {all} callers in took {:?}: too slow for a {HOLD:?} hold",
        sipp_started.elapsed()
    );

    // The second probe's caller hangs up while holdfast is down: its phone answers the
    // OPTIONS after the restart with 481. Every other phone answers 200.
    let gone = 1;
    first.kill9();
    let responders: Vec<Responder> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| p.answer_options(Some(if i == gone { 481 } else { 200 })))
        .collect();
    std::thread::sleep(OUTAGE);
    let began = Instant::now();
    let second = Holdfast::start("survive-2", &setup);
    let restart = Restart {
        began,
        ready: Instant::now(),
    };
    wait_admin(api);

    // The same line without the caller who hung up, at once.
    let expected = without(&before, &probes[gone].call.call_id);
    let in_place = wait_until(Duration::from_secs(5), || line(api) == expected);
    let settled = Instant::now();
    assert!(
        in_place,
        "the line after the restart: {}\n{}",
        difference(&expected, &line(api)),
        log_tail(&second)
    );
    assert!(
        second.wait_log("restored call gone", Duration::from_secs(2)),
        "{}",
        log_tail(&second)
    );
    let restored = || second.log().matches("held call restored").count();
    assert!(
        wait_until(Duration::from_secs(5), || restored() >= all),
        "{} of {all} calls restored\n{}",
        restored(),
        log_tail(&second)
    );

    // Three seconds of music after the restart, then the recordings are judged.
    sleep_until(restart.ready + Duration::from_secs(3));
    let requests: Vec<Vec<Request>> = responders.into_iter().map(Responder::stop).collect();
    let mut wrong = Vec::new();
    for (i, (probe, requests)) in probes.iter().zip(&requests).enumerate() {
        let name = format!("probe {i}");
        let options = probe.options(&name, requests, &mut wrong);
        if let Some(asked) = options.first()
            && asked.at.saturating_duration_since(restart.ready) > RESUME_WITHIN
        {
            wrong.push(format!(
                "{name}: first OPTIONS {:?} after the restart",
                asked.at.duration_since(restart.ready)
            ));
        }
        if i != gone
            && let Err(e) = check_resumed(&probe.rtp.packets(), &restart, Some(probe.answer_port))
        {
            wrong.push(format!("{name}: {e}"));
        }
    }
    let late = probes[gone]
        .rtp
        .packets()
        .iter()
        .filter(|p| p.at > settled + Duration::from_millis(500))
        .count();
    if late > 0 {
        wrong.push(format!(
            "probe {gone} answered 481 and left the line, yet {late} RTP packets came after"
        ));
    }
    let mut streams = 0;
    for (run, sink) in sinks.iter().enumerate() {
        for (ssrc, packets) in by_ssrc(&sink.packets()) {
            if packets[0].at >= restart.began {
                wrong.push(format!(
                    "SIPp run {run}: a new stream {ssrc:08x} after the restart"
                ));
                continue;
            }
            streams += 1;
            if let Err(e) = check_resumed(&packets, &restart, None) {
                wrong.push(format!("SIPp run {run}, SSRC {ssrc:08x}: {e}"));
            }
        }
    }
    if streams != SIPP_RUNS * SIPP_CALLS {
        wrong.push(format!(
            "{streams} SIPp streams before the kill, {} calls",
            SIPP_RUNS * SIPP_CALLS
        ));
    }
    assert!(
        wrong.is_empty(),
        "{} problems after the restart:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        log_tail(&second)
    );
    assert!(
        sipp_started.elapsed() < HOLD,
        "the checks ended {:?} after SIPp started: its callers may have hung up already",
        sipp_started.elapsed()
    );
    let log = second.log();
    assert_eq!(
        log.matches("held call restored").count(),
        all,
        "one per caller held at the kill\n{}",
        log_tail(&second)
    );
    assert_eq!(
        log.matches("restored call gone").count(),
        1,
        "{}",
        log_tail(&second)
    );

    // The probes hang up: the restored dialogs answer 200, the gone one 481.
    for (i, probe) in probes.iter().enumerate() {
        let code = probe.ua.request(&probe.call, "BYE", 2, "").map(|r| r.0);
        let want = if i == gone { 481 } else { 200 };
        assert_eq!(code, Some(want), "probe {i}'s BYE\n{}", log_tail(&second));
    }
    assert_eq!(
        line(api).len(),
        SIPP_RUNS * SIPP_CALLS,
        "only SIPp's callers are left"
    );

    // SIPp's callers hang up at the end of their hold: every BYE answered 200 and every
    // OPTIONS answered by SIPp, so every call is a success.
    for run in runs {
        let out = run.join().expect("SIPp thread");
        assert!(
            out.status.success(),
            "SIPp reported failed calls:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log_tail(&second)
        );
    }
    assert!(
        wait_until(Duration::from_secs(2), || line(api).is_empty()),
        "{:?}",
        line(api)
    );
}

/// A restored caller whose phone never answers the OPTIONS after the restart (it is gone
/// and nothing says so) keeps its place and its music while holdfast retransmits that one
/// OPTIONS (RFC 3261 §17.1.2); at Timer F, 32 s after it was first sent, the caller leaves
/// the line (`restored call gone`), its music stops, and its BYE gets `481`. The caller
/// behind it, whose phone answered, moves up and hangs up with a `200`.
#[test]
#[ignore = "waits out Timer F (32 s); run with --ignored"]
fn a_caller_who_never_answers_the_probe_is_removed_after_timer_f() {
    let (setup, api) = setup("timer-f", RTP_BASE_TIMER_F);
    let mut first = Holdfast::start("timer-f-1", &setup);
    wait_admin(api);
    let silent = Probe::dial(&first, 0);
    let answering = Probe::dial(&first, 1);
    let hearing = wait_until(Duration::from_secs(5), || {
        silent.rtp.streams_heard(25) == 1 && answering.rtp.streams_heard(25) == 1
    });
    assert!(hearing, "{}", first.log());
    let before = line(api);
    assert_eq!(
        before,
        [
            (silent.call.call_id.clone(), 1),
            (answering.call.call_id.clone(), 2)
        ]
    );

    first.kill9();
    let responders = [
        silent.answer_options(None),
        answering.answer_options(Some(200)),
    ];
    std::thread::sleep(OUTAGE);
    let began = Instant::now();
    let second = Holdfast::start("timer-f-2", &setup);
    let restart = Restart {
        began,
        ready: Instant::now(),
    };
    wait_admin(api);
    assert!(
        wait_until(Duration::from_secs(5), || {
            second.log().matches("held call restored").count() == 2
        }),
        "{}",
        second.log()
    );

    // The silent caller keeps its place until Timer F fires.
    let left = wait_until(TIMER_F + Duration::from_secs(8), || {
        !line(api).iter().any(|w| w.0 == silent.call.call_id)
    });
    let left_at = Instant::now();
    assert!(left, "the silent caller never left\n{}", second.log());
    // A second more of music for the caller who stays.
    std::thread::sleep(Duration::from_secs(1));
    let [silent_requests, answering_requests] = responders.map(Responder::stop);

    let mut wrong = Vec::new();
    let options = silent.options("the silent probe", &silent_requests, &mut wrong);
    answering.options("the answering probe", &answering_requests, &mut wrong);
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), second.log());
    let sent = options[0].at;
    assert!(
        sent.saturating_duration_since(restart.ready) <= RESUME_WITHIN,
        "the OPTIONS came {:?} after the restart",
        sent.duration_since(restart.ready)
    );
    // One transaction, retransmitted (Timer E: 0.5 s doubling to 4 s), then given up.
    assert!(
        options
            .iter()
            .all(|r| branch(&r.text) == branch(&options[0].text)),
        "one OPTIONS transaction, retransmitted"
    );
    assert!(
        options.len() >= 5,
        "{} OPTIONS in {TIMER_F:?}: retransmissions expected",
        options.len()
    );
    let waited = left_at.duration_since(sent);
    assert!(
        (TIMER_F - Duration::from_secs(1)..=TIMER_F + Duration::from_secs(3)).contains(&waited),
        "the silent caller left {waited:?} after the first OPTIONS (Timer F is {TIMER_F:?})"
    );

    for (name, probe) in [("silent", &silent), ("answering", &answering)] {
        if let Err(e) = check_resumed(&probe.rtp.packets(), &restart, Some(probe.answer_port)) {
            panic!("the {name} probe: {e}\n{}", second.log());
        }
    }
    let late = silent
        .rtp
        .packets()
        .iter()
        .filter(|p| p.at > left_at + Duration::from_millis(500))
        .count();
    assert_eq!(late, 0, "RTP to the silent caller after it left the line");
    let log = second.log();
    assert_eq!(log.matches("restored call gone").count(), 1, "{log}");
    assert_eq!(line(api), [(answering.call.call_id.clone(), 1)]);

    assert_eq!(
        silent.ua.request(&silent.call, "BYE", 2, "").map(|r| r.0),
        Some(481)
    );
    assert_eq!(
        answering
            .ua
            .request(&answering.call, "BYE", 2, "")
            .map(|r| r.0),
        Some(200)
    );
    assert!(line(api).is_empty());
}
