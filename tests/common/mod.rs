//! Shared helpers for the end-to-end tests: start a real holdfast process on loopback with
//! a generated config, talk SIP to it over UDP, run SIPp scenarios from `sipp/`.
#![allow(dead_code)]

pub mod api;
pub mod dialback;
pub mod held;
pub mod kamailio;
pub mod phones;
pub mod postgres;
pub mod streams;

#[allow(unused_imports)] // each test binary uses the phones it needs
pub use phones::{Baresip, Linphone};

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "holdfast-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A port free on 127.0.0.1 for both UDP and TCP a moment ago: holdfast listens on both.
pub fn free_sip_port() -> u16 {
    loop {
        let port = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The options a test varies in the generated config.
pub struct Setup {
    /// First port of a 1000-port RTP range private to this test.
    pub rtp_base: u16,
    /// Extra TOML appended (queues, routes...). Without it: one queue `support`, route `*`.
    pub extra: String,
    /// `[sip] max_calls`.
    pub max_calls: u32,
    /// The trunk's `allow` CIDR.
    pub trunk_allow: String,
    /// Extra lines for the `[sip]` table.
    pub sip_extra: String,
    /// `[[trunk]] address`: where callback INVITEs go.
    pub trunk_address: String,
    /// Extra lines for the `[[trunk]]` table (e.g. `transport = "tcp"`).
    pub trunk_extra: String,
    /// Extra lines for the `[media]` table (e.g. `shards = 3`).
    pub media_extra: String,
    /// Extra lines for the `[store]` table (e.g. `backend = "postgres"`).
    pub store_extra: String,
    /// `[cluster] node`, when set.
    pub cluster_node: Option<String>,
    /// `[store] data_dir`; `None`: a `data` directory in the test's scratch directory.
    /// Set it to restart holdfast on the same database.
    pub data_dir: Option<PathBuf>,
    /// The lines of the `[admin]` table (default: disabled).
    pub admin: String,
    /// Extra command-line arguments (e.g. `--log-format json`).
    pub args: Vec<String>,
    /// The SIP port; `None`: a free one. Set it to restart holdfast where its peers
    /// (and the Via of what it sent before) expect it.
    pub sip_port: Option<u16>,
}

impl Setup {
    /// A default setup with the given RTP range.
    pub fn new(rtp_base: u16) -> Self {
        Self {
            rtp_base,
            extra: String::new(),
            max_calls: 10_000,
            trunk_allow: "127.0.0.0/8".to_string(),
            sip_extra: String::new(),
            trunk_address: "127.0.0.1:5070".to_string(),
            trunk_extra: String::new(),
            media_extra: String::new(),
            store_extra: String::new(),
            cluster_node: None,
            data_dir: None,
            admin: "listen = \"\"\n".to_string(),
            args: Vec::new(),
            sip_port: None,
        }
    }
}

/// A running holdfast, killed on drop.
pub struct Holdfast {
    child: Child,
    /// Its SIP address.
    pub sip: SocketAddr,
    /// Its scratch directory (config, data, log).
    pub dir: PathBuf,
}

impl Holdfast {
    /// Start holdfast with a generated config and wait until it answers OPTIONS.
    pub fn start(name: &str, setup: &Setup) -> Self {
        let mut tries = 0;
        loop {
            tries += 1;
            let port = setup.sip_port.unwrap_or_else(free_sip_port);
            match Self::launch(name, setup, port) {
                Ok(holdfast) => return holdfast,
                // Another process took the port between the check and holdfast's bind.
                Err(log)
                    if setup.sip_port.is_none()
                        && tries < 4
                        && log.contains("Address already in use") => {}
                Err(log) => panic!("holdfast exited early; log:\n{log}"),
            }
        }
    }

    fn launch(name: &str, setup: &Setup, port: u16) -> Result<Self, String> {
        let dir = scratch_dir(name);
        let music = repo().join("media/music/hold.flac");
        let queues = if setup.extra.is_empty() {
            "[[queue]]\nname = \"support\"\n\n[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n".to_string()
        } else {
            setup.extra.clone()
        };
        let config = format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\npublic_address = \"127.0.0.1\"\n\
             rtp_ports = \"{}-{}\"\nmax_calls = {}\n{}\n[admin]\n{}\n\
             [store]\ndata_dir = \"{}\"\n{}{}\n[media]\nmusic = [\"{}\"]\n{}\n\
             [[trunk]]\nname = \"carrier\"\nallow = [\"{}\"]\naddress = \"{}\"\n{}\n{queues}",
            setup.rtp_base,
            setup.rtp_base + 999,
            setup.max_calls,
            setup.sip_extra,
            setup.admin,
            setup
                .data_dir
                .clone()
                .unwrap_or_else(|| dir.join("data"))
                .display(),
            setup.store_extra,
            setup
                .cluster_node
                .as_ref()
                .map(|node| format!("[cluster]\nnode = \"{node}\"\n"))
                .unwrap_or_default(),
            music.display(),
            setup.media_extra,
            setup.trunk_allow,
            setup.trunk_address,
            setup.trunk_extra,
        );
        let config_path = dir.join("holdfast.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.join("holdfast.log")).expect("create log");
        let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(&setup.args)
            .env("RUST_LOG", "holdfast=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn holdfast");
        let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut holdfast = Self { child, sip, dir };
        holdfast.wait_ready()?;
        Ok(holdfast)
    }

    /// Waits until it answers OPTIONS; its log if it exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("({status})\n{}", self.log()));
            }
            if options(self.sip, Duration::from_millis(200)) == Some(200) {
                return Ok(());
            }
        }
        panic!("holdfast did not answer OPTIONS; log:\n{}", self.log());
    }

    /// Everything holdfast logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("holdfast.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: no chance to clean up (crash tests).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("holdfast did not stop after SIGTERM");
    }
}

impl Drop for Holdfast {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send an OPTIONS and return the status code of the final reply, if any arrives in time.
pub fn options(to: SocketAddr, wait: Duration) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    let local = socket.local_addr().ok()?;
    let branch = format!("z9hG4bK-opt-{}", rand_suffix());
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: <sip:ping@{to}>\r\n\
         Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(msg.as_bytes(), to).ok()?;
    final_status(&socket, wait)
}

/// Reads datagrams on `socket` until `pick` takes one (returns `Some`) or `wait` ends.
pub fn receive_until<T>(
    socket: &UdpSocket,
    wait: Duration,
    mut pick: impl FnMut(&[u8], SocketAddr) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65_536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (len, from) = socket.recv_from(&mut buf).ok()?;
        if let Some(picked) = pick(&buf[..len], from) {
            return Some(picked);
        }
    }
}

/// Read datagrams until a final (≥ 200) response or the wait ends; its status code.
pub fn final_status(socket: &UdpSocket, wait: Duration) -> Option<u16> {
    receive_until(socket, wait, |datagram, _| {
        status_code(datagram).filter(|code| *code >= 200)
    })
}

/// The status code of a response datagram.
pub fn status_code(datagram: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(datagram.get(..12)?).ok()?;
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn rand_suffix() -> u64 {
    static N: AtomicU32 = AtomicU32::new(0);
    u64::from(std::process::id()) << 20 | u64::from(N.fetch_add(1, Ordering::Relaxed))
}

/// Run a SIPp scenario from `sipp/` against holdfast; returns SIPp's output. SIPp exits 0
/// only when every call succeeded.
pub fn sipp(scenario: &str, target: SocketAddr, args: &[&str]) -> Output {
    let scenario = repo().join("sipp").join(scenario);
    run_sipp(|| {
        let mut command = Command::new("sipp");
        command
            .arg(target.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1"])
            .args(["-p", &free_udp_port().to_string()])
            .args(["-mp", &free_udp_port().to_string()])
            .args(["-nostdin", "-timeout", "120s", "-timeout_error"])
            .args(args);
        command
    })
}

/// SIPp's exit status when it cannot bind a socket. Test ports are picked by binding port 0
/// and letting it go, and SIPp also binds ports next to `-mp`, so another process (a
/// parallel test's SIPp or holdfast's RTP) can take one in between: such a run never sent
/// anything and is retried on fresh ports.
const SIPP_BIND_FAILED: i32 = 254;

/// Runs the SIPp that `command` builds (afresh, with fresh ports, for each try) to the end.
pub fn run_sipp(mut command: impl FnMut() -> Command) -> Output {
    let mut tries = 0;
    loop {
        tries += 1;
        let out = command()
            .stdin(Stdio::null())
            .output()
            .expect("run sipp (apt-get install sip-tester)");
        if out.status.code() != Some(SIPP_BIND_FAILED) || tries == 4 {
            return out;
        }
    }
}

/// Starts the SIPp that `command` builds in the background, returning it with whatever
/// `command` returned beside it (e.g. the port it listens on). A start-up bind failure (exit
/// within the first 300 ms with [`SIPP_BIND_FAILED`]) is retried with a fresh `command()`.
pub fn spawn_sipp<T>(mut command: impl FnMut() -> (Command, T)) -> (Child, T) {
    let mut tries = 0;
    loop {
        tries += 1;
        let (mut command, extra) = command();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sipp (apt-get install sip-tester)");
        std::thread::sleep(Duration::from_millis(300));
        let bind_failed = matches!(
            child.try_wait(),
            Ok(Some(status)) if status.code() == Some(SIPP_BIND_FAILED)
        );
        if !bind_failed || tries == 4 {
            return (child, extra);
        }
    }
}

/// One RTP stream as received, keyed by SSRC.
#[derive(Debug, Default, Clone)]
pub struct StreamStats {
    /// Packets received.
    pub packets: u32,
    /// First and last sequence numbers.
    pub first_seq: u16,
    /// Last sequence number seen.
    pub last_seq: u16,
    /// Sequence steps other than +1 (loss, reordering, restarts).
    pub seq_breaks: u32,
    /// Timestamp steps other than +160.
    pub ts_breaks: u32,
    /// Packets with the marker bit set, and whether the first one had it.
    pub markers: u32,
    /// The first packet carried the marker bit.
    pub first_marked: bool,
    /// Payload types seen.
    pub payload_type: u8,
    /// Payload bytes that are not G.711 silence (0xFF µ-law / 0xD5 A-law, ±2 steps).
    pub loud_bytes: u64,
    /// Payload sizes other than 160.
    pub odd_sizes: u32,
    last_ts: u32,
}

/// Receive RTP on `socket` for `duration`, grouping by SSRC.
pub fn collect_rtp(socket: &UdpSocket, duration: Duration) -> HashMap<u32, StreamStats> {
    let mut streams: HashMap<u32, StreamStats> = HashMap::new();
    let deadline = Instant::now() + duration;
    let mut buf = [0u8; 2048];
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while Instant::now() < deadline {
        let Ok((len, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let packet = &buf[..len];
        if len < 12 || packet[0] >> 6 != 2 {
            continue;
        }
        let marker = packet[1] & 0x80 != 0;
        let pt = packet[1] & 0x7f;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let payload = &packet[12..];
        let s = streams.entry(ssrc).or_default();
        if s.packets == 0 {
            s.first_seq = seq;
            s.first_marked = marker;
            s.payload_type = pt;
        } else {
            if seq != s.last_seq.wrapping_add(1) {
                s.seq_breaks += 1;
            }
            if ts != s.last_ts.wrapping_add(160) {
                s.ts_breaks += 1;
            }
        }
        s.packets += 1;
        s.markers += u32::from(marker);
        s.last_seq = seq;
        s.last_ts = ts;
        if payload.len() != 160 {
            s.odd_sizes += 1;
        }
        let silence: u8 = if pt == 8 { 0xD5 } else { 0xFF };
        s.loud_bytes += payload
            .iter()
            .filter(|&&b| (b ^ silence) & 0x7f > 2)
            .count() as u64;
    }
    streams
}

/// Bind a UDP socket on loopback at an ephemeral port, for RTP.
pub fn rtp_sink() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind RTP sink");
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Path helper for the torture corpus.
pub fn torture_dir() -> PathBuf {
    repo().join("tests/data/sip-torture")
}

/// Whether `path` exists (for skipping with a clear message).
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A minimal raw SIP user agent over one UDP socket, for tests that need exact control.
pub struct RawUa {
    /// The socket.
    pub socket: UdpSocket,
    /// Its address.
    pub local: SocketAddr,
    /// Where requests go.
    pub target: SocketAddr,
}

/// A call placed by [`RawUa::invite`].
#[derive(Debug, Clone)]
pub struct RawCall {
    /// Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub from_tag: String,
    /// The To tag of the final response.
    pub to_tag: String,
    /// The dialled user.
    pub user: String,
    /// Final status code.
    pub code: u16,
    /// The final response, as text.
    pub response: String,
}

impl RawUa {
    /// Bind on `ip` (a loopback address) and aim at `target`.
    pub fn new(ip: &str, target: SocketAddr) -> Self {
        let socket = UdpSocket::bind(format!("{ip}:0")).expect("bind UA");
        let local = socket.local_addr().unwrap();
        Self {
            socket,
            local,
            target,
        }
    }

    /// Send raw text.
    pub fn send(&self, text: &str) {
        self.socket.send_to(text.as_bytes(), self.target).unwrap();
    }

    /// Read datagrams until a final response for `cseq_method` arrives; its text.
    pub fn wait_final(&self, cseq_method: &str, wait: Duration) -> Option<String> {
        receive_until(&self.socket, wait, |datagram, _| {
            let text = String::from_utf8_lossy(datagram).to_string();
            let code = status_code(datagram)?;
            (code >= 200 && header(&text, "CSeq").is_some_and(|c| c.ends_with(cseq_method)))
                .then_some(text)
        })
    }

    /// Place an INVITE with `sdp` to `user`; ACKs a 2xx. Returns the outcome.
    pub fn invite(&self, user: &str, from_user: &str, sdp: &str) -> RawCall {
        let call_id = format!("raw-{}@test", rand_suffix());
        let from_tag = format!("ft{}", rand_suffix());
        let branch = format!("z9hG4bK-{}", rand_suffix());
        let (local, target) = (self.local, self.target);
        self.send(&format!(
            "INVITE sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from_user}@{local}>;tag={from_tag}\r\n\
             To: <sip:{user}@{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:raw@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
        let response = self
            .wait_final("INVITE", Duration::from_secs(3))
            .expect("a final response to INVITE");
        let code = status_code(response.as_bytes()).unwrap();
        let to_tag = header(&response, "To")
            .and_then(|to| to.split(";tag=").nth(1).map(|t| t.trim().to_string()))
            .unwrap_or_default();
        let call = RawCall {
            call_id,
            from_tag,
            to_tag,
            user: user.to_string(),
            code,
            response,
        };
        let ack_branch = if code < 300 {
            format!("z9hG4bK-ack-{}", rand_suffix())
        } else {
            branch // a non-2xx ACK is part of the INVITE transaction (§17.1.1.3)
        };
        self.send(&self.in_dialog(&call, "ACK", 1, &ack_branch, ""));
        call
    }

    /// Build an in-dialog request of `method` for `call`.
    pub fn in_dialog(
        &self,
        call: &RawCall,
        method: &str,
        cseq: u32,
        branch: &str,
        body: &str,
    ) -> String {
        let (local, target) = (self.local, self.target);
        let content_type = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} sip:{}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@{local}>;tag={}\r\nTo: <sip:{}@{target}>;tag={}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:raw@{local}>\r\n{content_type}\
             Content-Length: {}\r\n\r\n{body}",
            call.user,
            call.from_tag,
            call.user,
            call.to_tag,
            call.call_id,
            body.len()
        )
    }

    /// Send an in-dialog request and return the final status.
    pub fn request(
        &self,
        call: &RawCall,
        method: &str,
        cseq: u32,
        body: &str,
    ) -> Option<(u16, String)> {
        let branch = format!("z9hG4bK-{}", rand_suffix());
        self.send(&self.in_dialog(call, method, cseq, &branch, body));
        let text = self.wait_final(method, Duration::from_secs(3))?;
        Some((status_code(text.as_bytes())?, text))
    }
}

/// The value of the first header `name` (case-insensitive) in a message's text.
pub fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The body of a message's text.
pub fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// An SDP offer with the given payload types on `port`.
pub fn sdp_offer(port: u16, payloads: &str, rtpmaps: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {payloads}\r\n{rtpmaps}"
    )
}

/// A PCMU offer with telephone-event.
pub fn pcmu_offer(port: u16) -> String {
    sdp_offer(
        port,
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    )
}

/// Goertzel power of `freq` in `samples` at `rate` Hz: how much of that tone is present.
pub fn tone_power(samples: &[f32], freq: f32, rate: f32) -> f32 {
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len().max(1) as f32
}

/// The 16-bit PCM samples of a WAV file (the `data` chunk), as f32.
pub fn wav_samples(bytes: &[u8]) -> Vec<f32> {
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let end = (i + 8 + len).min(bytes.len());
            return bytes[i + 8..end]
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    Vec::new()
}

impl Holdfast {
    /// Wait until the log contains `needle` (e.g. an agent registered).
    pub fn wait_log(&self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Register agent `user` with SIPp (`sipp/agent_register.xml`, Digest), its Contact naming
/// the port where its phone (a SIPp UAS) listens.
pub fn register_sipp_agent(holdfast: &Holdfast, user: &str, password: &str, contact_port: u16) {
    let port = contact_port.to_string();
    let out = sipp(
        "agent_register.xml",
        holdfast.sip,
        &[
            "-m",
            "1",
            "-s",
            user,
            "-au",
            user,
            "-ap",
            password,
            "-key",
            "contact_port",
            &port,
            "-key",
            "expires",
            "3600",
        ],
    );
    assert!(
        out.status.success(),
        "registration failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
}

/// A SIPp UAS (`scenario`: an agent's phone or a trunk) listening on `port` for `calls`
/// calls, echoing RTP on a fresh media port, giving up after `timeout` (e.g. `"60s"`).
pub fn sipp_uas_command(scenario: &str, port: u16, calls: &str, timeout: &str) -> Command {
    let mut command = Command::new("sipp");
    command
        .arg("-sf")
        .arg(repo().join("sipp").join(scenario))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string(), "-rtp_echo"])
        .args([
            "-m",
            calls,
            "-nostdin",
            "-timeout",
            timeout,
            "-timeout_error",
        ]);
    command
}

/// Agent alice's phone played by SIPp (`scenario`, e.g. `agent.xml`, echoing RTP) for
/// `calls` calls, registered to holdfast. The caller waits for it or kills it.
pub fn sipp_agent(holdfast: &Holdfast, scenario: &str, calls: &str) -> Child {
    let (child, port) = spawn_sipp(|| {
        let port = free_udp_port();
        (sipp_uas_command(scenario, port, calls, "60s"), port)
    });
    register_sipp_agent(holdfast, "alice", "alice-secret", port);
    child
}

/// What a [`talking_caller`] heard: each RTP packet's decoded samples with when it came.
pub type Heard = Vec<(Instant, Vec<f32>)>;

/// The samples of `heard` that arrived between `from` and `to`.
pub fn heard_between(heard: &Heard, from: Instant, to: Instant) -> Vec<f32> {
    heard
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .flat_map(|(_, samples)| samples.iter().copied())
        .collect()
}

/// A trunk caller's phone on `socket`: receives holdfast's PCMU for `duration`, and once it
/// knows where holdfast sends from, talks back with a `tone_hz` tone (PCMU, 50 packets/s).
pub fn talking_caller(socket: UdpSocket, duration: Duration, tone_hz: f32) -> Heard {
    use holdfast::media::g711;
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let start = Instant::now();
    let mut heard = Vec::new();
    let mut peer: Option<SocketAddr> = None;
    let mut next_send = Instant::now();
    let (mut seq, mut ts, mut phase) = (0u16, 0u32, 0f32);
    let mut buf = [0u8; 2048];
    while start.elapsed() < duration {
        if let Ok((len, from)) = socket.recv_from(&mut buf)
            && len > 12
        {
            peer.get_or_insert(from);
            let samples = buf[12..len]
                .iter()
                .map(|&b| f32::from(g711::ulaw_to_linear(b)))
                .collect();
            heard.push((Instant::now(), samples));
        }
        if let Some(peer) = peer
            && Instant::now() >= next_send
        {
            let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&ts.to_be_bytes());
            for _ in 0..160 {
                let sample = (phase.sin() * 8000.0) as i16;
                packet.push(g711::linear_to_ulaw(sample));
                phase += 2.0 * std::f32::consts::PI * tone_hz / 8000.0;
            }
            let _ = socket.send_to(&packet, peer);
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            next_send += Duration::from_millis(20);
        }
    }
    heard
}

/// Whether `tone` dominates `samples` (8 kHz) against each of `others` by 10×.
pub fn dominant(samples: &[f32], tone: f32, others: &[f32]) -> bool {
    let p = tone_power(samples, tone, 8000.0);
    others
        .iter()
        .all(|&f| p > 10.0 * tone_power(samples, f, 8000.0))
}

/// One SIPp trunk caller that talks a 1 kHz tone for 5 s (from a socket of the test's, so
/// what it hears is recorded): SIPp's output and the samples the caller heard.
pub fn one_talking_call(holdfast: &Holdfast) -> (Output, Vec<f32>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = socket.local_addr().unwrap().port().to_string();
    let caller = std::thread::spawn(move || {
        let heard = talking_caller(socket, Duration::from_secs(7), 1000.0);
        heard.into_iter().flat_map(|(_, s)| s).collect::<Vec<f32>>()
    });
    let out = sipp(
        "caller.xml",
        holdfast.sip,
        &[
            "-s", "100", "-m", "1", "-l", "1", "-d", "5000", "-key", "rtp_port", &rtp_port,
        ],
    );
    (out, caller.join().unwrap())
}
