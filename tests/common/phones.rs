//! Real softphones that put their call on hold and resume it, for the agent-Hold tests.
//!
//! Both phones register to holdfast with Digest auth, auto-answer the INVITE holdfast sends
//! them, send a sine tone, and record what they hear. Pressing Hold sends a re-INVITE on that
//! dialog (the phone is its UAS, so the re-INVITE comes from the phone with its own `CSeq`).
//! Everything binds 127.0.0.1 except baresip's RTP socket (0.0.0.0; 1.0.0 has no setting).
//!
//! # baresip 1.0.0 (Debian `baresip`): [`Baresip`]
//!
//! Driven over the `ctrl_tcp` module: netstrings (`LEN:JSON,`) on a TCP port of its own,
//! `{"command":"hold","params":"","token":"t1"}` answered with
//! `{"response":true,"ok":true,"data":"","token":"t1"}`, plus call events
//! (`{"event":true,"type":"CALL_ESTABLISHED",...}`) pushed to the connection. The commands
//! are the `menu` module's (`hold`, `resume`, `hangup`, `audio_debug`, `callstat`...), so
//! `menu.so` must be loaded too. Config lines: `module_app ctrl_tcp.so`,
//! `ctrl_tcp_listen 127.0.0.1:PORT` (and `statmode_default off` to keep the log small).
//! - `hold` re-INVITEs at once with `a=sendonly` (same o= session id, version +1), and then
//!   sends **no RTP at all** until `resume` (baresip drops its own media while held, and
//!   ignores what it receives). `resume` re-INVITEs with `a=sendrecv`; RTP restarts with the
//!   same SSRC and continuous sequence numbers.
//! - Known bug of 1.0.0: the re-INVITE that goes to `sendonly` resets the decoder's filter
//!   chain and it is never rebuilt (`aufilt_setup` skips it because the encoder's chain is
//!   still there), so the `sndfile` recording of what baresip hears ENDS AT THE FIRST HOLD.
//!   [`Baresip::heard`] therefore only covers the audio before the hold; check audio
//!   after a resume on the caller's side, or use [`Linphone`].
//! - Digest: baresip 1.0.0 (libre 1.1.0) gives up a registration whose first challenge is
//!   not MD5 ("Register: Function not implemented") and retries only 30-60 s later (holdfast
//!   then offers MD5 alone), so give its tests `digest_algorithms = ["MD5"]` (`Setup::sip_extra`).
//! - baresip also listens on TCP at the SIP port and at SIP port + 1 (TLS).
//!
//! # linphonec 5.1.65 (Debian `linphone-cli`): [`Linphone`]
//!
//! Driven through stdin with `--pipe`: without it linphonec uses readline and, when stdin is
//! not a terminal, never runs its main loop (no SIP port is ever opened). In `--pipe` mode a
//! reader thread keeps only the LAST line received, so commands must be sent one at a time:
//! [`Linphone::command`] waits for the next `linphonec> ` prompt before returning.
//! Settings it needs:
//! - a private `HOME` (and `XDG_DATA_HOME`/`XDG_CONFIG_HOME`) with
//!   `$HOME/.local/share/linphone/` created: when the `SQLite` database cannot be opened the
//!   core never starts (again: no SIP port, nothing in the log but the database error);
//! - `-c rcfile` with `[sip] sip_port=P`, `sip_tcp_port=0`, `sip_tls_port=0`,
//!   `bind_address=127.0.0.1`, `[rtp] audio_rtp_port=R` (RTCP on R+1) and
//!   `bind_address=127.0.0.1` (else RTP binds `*`), a `[proxy_0]` +
//!   `[auth_info_0]` for the registration (it picks the first challenge it supports: SHA-256
//!   with holdfast's default), and only PCMU/PCMA enabled so that everything is 8 kHz
//!   (by default its re-INVITEs offer opus, speex, G729... too);
//! - the commands `soundcard use files`, `play FILE.wav` (what it sends; looped, with a
//!   short gap at each loop) and `record FILE.wav` (what it hears), and `-a` to auto-answer.
//! - `pause` re-INVITEs at once with `a=sendonly` and `Subject: Call on hold`; while paused it
//!   KEEPS SENDING RTP (its play file, restarted from the beginning, same SSRC, continuous
//!   sequence numbers) and records nothing. `resume` re-INVITEs with `Subject: Call resuming`
//!   and NO direction attribute at all (implicitly sendrecv). In-dialog requests drop the
//!   ports from the From/To URIs (`From: <sip:alice@127.0.0.1>;tag=...`).
//! - It does not exit on SIGTERM or `quit` in `--pipe` mode (it waits on its command socket,
//!   `/tmp/linphonec-<uid>`, which every instance re-creates): [`Drop`] sends SIGKILL.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{free_udp_port, scratch_dir};

/// A TCP port on loopback that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral TCP port")
        .port()
}

/// A UDP port `p` on loopback such that `p` and `p + 1` (RTP and RTCP) were free a moment ago.
pub fn free_udp_pair() -> u16 {
    for _ in 0..50 {
        let first = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of UDP ports");
}

/// Write `seconds` of a `hz` sine at half scale as an 8 kHz mono 16-bit WAV file.
pub fn write_tone_wav(path: &Path, hz: u32, seconds: u32) {
    let rate = 8000u32;
    let samples = rate * seconds;
    let mut wav = Vec::with_capacity(44 + 2 * samples as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + 2 * samples).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(2 * rate).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(2 * samples).to_le_bytes());
    let step = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(rate);
    for n in 0..samples {
        let s = (16_383.0 * (step * f64::from(n)).sin()) as i16;
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, wav).expect("write tone WAV");
}

/// The first channel of a 16-bit PCM WAV file as f32 in -1..1, and its sample rate (0 when
/// the file is missing or not a WAV). The `data` chunk is read to the end of the file unless
/// another chunk follows its declared end: recorders still writing (or killed) leave a stale
/// size there (linphonec rewrites it only when it closes the file, e.g. at a pause).
pub fn read_wav(path: &Path) -> (Vec<f32>, u32) {
    let Ok(bytes) = std::fs::read(path) else {
        return (Vec::new(), 0);
    };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return (Vec::new(), 0);
    }
    let (mut rate, mut channels) = (0u32, 1usize);
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = i + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            channels = usize::from(u16::from_le_bytes([bytes[body + 2], bytes[body + 3]])).max(1);
            rate = u32::from_le_bytes(bytes[body + 4..body + 8].try_into().unwrap());
        } else if id == b"data" {
            let declared = body.saturating_add(len);
            let chunk_follows = bytes
                .get(declared..declared + 4)
                .is_some_and(|next| next.iter().all(|b| b.is_ascii_alphanumeric() || *b == b' '));
            let end = if chunk_follows { declared } else { bytes.len() };
            let samples = bytes[body..end]
                .chunks_exact(2 * channels)
                .map(|frame| f32::from(i16::from_le_bytes([frame[0], frame[1]])) / 32_768.0)
                .collect();
            return (samples, rate);
        }
        i = body.saturating_add(len + (len & 1));
    }
    (Vec::new(), rate)
}

/// Poll `done` every 50 ms until it holds or `wait` passes.
fn wait_until(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A headless baresip agent (Debian's 1.0) with a `ctrl_tcp` control channel, so
/// a test can press Hold and Resume. Auto-answers, sends an `ausine` tone, records what it
/// hears with `sndfile` (only until the first hold: see the module docs).
pub struct Baresip {
    child: Child,
    /// Its config directory (also where the `dump-*-dec.wav` recordings land).
    pub dir: PathBuf,
    /// Its SIP port on 127.0.0.1.
    pub sip_port: u16,
    ctrl: TcpStream,
    /// Every netstring received on the control connection (responses and events), as JSON.
    messages: Arc<Mutex<Vec<String>>>,
    token: u32,
}

impl Baresip {
    /// Start baresip registering `user`/`password` to holdfast at `registrar`, and connect to
    /// its control port (panics if it does not come up within 10 s).
    pub fn start(
        name: &str,
        registrar: SocketAddr,
        user: &str,
        password: &str,
        tone_hz: u32,
    ) -> Self {
        let account = format!(
            "<sip:{user}@{registrar}>;auth_pass={password};answermode=auto;audio_codecs=PCMU;regint=600"
        );
        Self::start_with(name, &account, "", tone_hz)
    }

    /// Start baresip with the `accounts` line `account` and `extra` lines of `config` (e.g.
    /// `module srtp.so` for `mediaenc=srtp-mand`). Its TLS listener, when it has one, is on
    /// `sip_port + 1`.
    pub fn start_with(name: &str, account: &str, extra: &str, tone_hz: u32) -> Self {
        let dir = scratch_dir(name);
        let sip_port = free_udp_port();
        let ctrl_port = free_tcp_port();
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
             audio_player aufile,{dir}/heard.wav\naudio_source ausine,{tone_hz}\n\
             audio_alert aufile,/dev/null\nausrc_srate 48000\nausrc_channels 2\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\n\
             module aufile.so\nmodule sndfile.so\nsnd_path {dir}\n\
             module_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\nstatmode_default off\n{extra}",
            dir = dir.display()
        );
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run baresip (apt-get install baresip)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            let addr = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                break stream;
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "baresip's ctrl_tcp port {ctrl_port} did not open; log:\n{}",
                    std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let messages = Arc::new(Mutex::new(Vec::new()));
        let reader = ctrl.try_clone().expect("clone the control connection");
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || read_netstrings(reader, &sink));
        Self {
            child,
            dir,
            sip_port,
            ctrl,
            messages,
            token: 0,
        }
    }

    /// Run a `menu` command (e.g. `"hold"`, `"audio_debug"`, `"dial", "sip:..."`) over
    /// `ctrl_tcp`: whether baresip accepted it and the text it returned, or `None` without a
    /// response within 5 s.
    pub fn command(&mut self, command: &str, params: &str) -> Option<(bool, String)> {
        self.token += 1;
        let token = format!("t{}", self.token);
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"{token}\"}}",
            json_escape(command),
            json_escape(params)
        );
        self.ctrl
            .write_all(format!("{}:{json},", json.len()).as_bytes())
            .ok()?;
        let needle = format!("\"token\":\"{token}\"");
        let mut response = None;
        wait_until(Duration::from_secs(5), || {
            response = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.contains("\"response\":true") && m.contains(&needle))
                .cloned();
            response.is_some()
        });
        let response = response?;
        let ok = response.contains("\"ok\":true");
        Some((ok, json_string(&response, "data").unwrap_or_default()))
    }

    /// How many events of `kind` (`CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`,
    /// `CALL_REMOTE_SDP`, `CALL_RTPESTAB`...) baresip has reported since the control connection
    /// opened, right after start (an early `REGISTER_OK` may come before it).
    pub fn events(&self, kind: &str) -> usize {
        let needle = format!("\"type\":\"{kind}\"");
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("\"event\":true") && m.contains(&needle))
            .count()
    }

    /// Whether a call is established now (more calls established than closed).
    pub fn in_call(&self) -> bool {
        self.events("CALL_ESTABLISHED") > self.events("CALL_CLOSED")
    }

    /// Wait up to `wait` for a call to be established.
    pub fn wait_call(&self, wait: Duration) -> bool {
        wait_until(wait, || self.in_call())
    }

    /// Press Hold on the current call: re-INVITE with `a=sendonly`. True when a call was up
    /// (waits up to 10 s for one), baresip accepted the command and the answer to its
    /// re-INVITE arrived (a new `CALL_REMOTE_SDP` event) within 5 s.
    pub fn hold(&mut self) -> bool {
        self.reinvite("hold")
    }

    /// Resume the call: re-INVITE with `a=sendrecv`. True as for [`Self::hold`].
    pub fn resume(&mut self) -> bool {
        self.reinvite("resume")
    }

    fn reinvite(&mut self, command: &str) -> bool {
        if !self.wait_call(Duration::from_secs(10)) {
            return false;
        }
        let answers = self.events("CALL_REMOTE_SDP");
        matches!(self.command(command, ""), Some((true, _)))
            && wait_until(Duration::from_secs(5), || {
                self.events("CALL_REMOTE_SDP") > answers
            })
    }

    /// Hang up the current call.
    pub fn hangup(&mut self) -> bool {
        matches!(self.command("hangup", ""), Some((true, _)))
    }

    /// What baresip heard, 8 kHz mono (decoded G.711), f32 in -1..1: every call's
    /// `dump-*-dec.wav` in turn. With baresip 1.0.0 a call's recording stops at its first
    /// hold and does not restart on resume (see the module docs).
    pub fn heard(&self) -> Vec<f32> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().unwrap_or_default().to_string_lossy();
                        name.starts_with("dump-") && name.ends_with("-dec.wav")
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.iter().flat_map(|p| read_wav(p).0).collect()
    }

    /// Its log so far, then the control messages (responses and events) received.
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default();
        log.push_str("\n--- ctrl_tcp ---\n");
        for message in self.messages.lock().unwrap().iter() {
            log.push_str(message);
            log.push('\n');
        }
        log
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Split the control connection's byte stream into netstrings (`LEN:PAYLOAD,`) until it
/// closes.
fn read_netstrings(mut stream: TcpStream, sink: &Mutex<Vec<String>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(colon) = buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|l| l.trim().parse::<usize>().ok())
            else {
                return; // not a netstring stream
            };
            if buf.len() < colon + len + 2 {
                break;
            }
            let payload = String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).into_owned();
            sink.lock().unwrap().push(payload);
            buf.drain(..colon + len + 2);
        }
    }
}

fn json_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The string value of `"key":"..."` in a flat JSON object, unescaped (enough for baresip's
/// responses).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('?'),
                    );
                }
                other => out.push(other), // \" \\ \/
            },
            c => out.push(c),
        }
    }
    None
}

/// A headless linphonec (Linphone 5) agent: registers with Digest auth, auto-answers, sends
/// a tone from a WAV file, records what it hears, and can pause/resume its call (see the
/// module docs for how it is driven).
pub struct Linphone {
    child: Child,
    stdin: ChildStdin,
    /// Its scratch directory: `linphonerc`, `home/`, `tone.wav`, `heard.wav`, `linphonec.log`
    /// (console output) and `linphone-debug.log` (liblinphone's log, with the SIP messages).
    pub dir: PathBuf,
    /// Its SIP port on 127.0.0.1.
    pub sip_port: u16,
    /// Its RTP port (RTCP is the next one).
    pub rtp_port: u16,
}

impl Linphone {
    /// Start linphonec registering `user`/`password` to holdfast at `registrar`, playing a
    /// `tone_hz` sine and recording to `heard.wav`. Returns once its command prompt answers
    /// (well under a second; its REGISTER is on its way by then, the test waits for holdfast's
    /// `Registered` log line or calls [`Self::registered`]).
    pub fn start(
        name: &str,
        registrar: SocketAddr,
        user: &str,
        password: &str,
        tone_hz: u32,
    ) -> Self {
        let dir = scratch_dir(name);
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        std::fs::create_dir_all(home.join(".config")).unwrap();
        let tone = dir.join("tone.wav");
        write_tone_wav(&tone, tone_hz, 60);
        let sip_port = free_udp_port();
        let rtp_port = free_udp_pair();
        let mut rc = format!(
            "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\nbind_address=127.0.0.1\n\
             default_proxy=0\ninc_timeout=60\n\n\
             [rtp]\naudio_rtp_port={rtp_port}\nbind_address=127.0.0.1\n\n\
             [sound]\nechocancellation=0\n\n\
             [proxy_0]\nreg_proxy=<sip:{registrar};transport=udp>\nreg_identity=sip:{user}@{registrar}\n\
             reg_expires=600\nreg_sendregister=1\npublish=0\n\n\
             [auth_info_0]\nusername={user}\npasswd={password}\n\n"
        );
        let codecs = [
            ("PCMU", 8000, 1, 1),
            ("PCMA", 8000, 1, 1),
            ("opus", 48000, 2, 0),
            ("speex", 16000, 1, 0),
            ("speex", 8000, 1, 0),
            ("speex", 32000, 1, 0),
            ("G729", 8000, 1, 0),
            ("GSM", 8000, 1, 0),
            ("G722", 8000, 1, 0),
        ];
        for (i, (mime, rate, channels, enabled)) in codecs.iter().enumerate() {
            rc.push_str(&format!(
                "[audio_codec_{i}]\nmime={mime}\nrate={rate}\nchannels={channels}\nenabled={enabled}\n\n"
            ));
        }
        let rc_path = dir.join("linphonerc");
        std::fs::write(&rc_path, rc).unwrap();
        let log = std::fs::File::create(dir.join("linphonec.log")).unwrap();
        let mut child = Command::new("linphonec")
            .arg("--pipe")
            .arg("-a")
            .arg("-c")
            .arg(&rc_path)
            .args(["-d", "6", "-l"])
            .arg(dir.join("linphone-debug.log"))
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run linphonec (apt-get install linphone-cli)");
        let stdin = child.stdin.take().unwrap();
        let mut phone = Self {
            child,
            stdin,
            dir,
            sip_port,
            rtp_port,
        };
        assert!(
            wait_until(Duration::from_secs(15), || phone.prompts() >= 1),
            "linphonec did not start; log:\n{}",
            phone.log()
        );
        let heard = phone.dir.join("heard.wav");
        for command in [
            "soundcard use files".to_string(),
            format!("play {}", tone.display()),
            format!("record {}", heard.display()),
        ] {
            phone.command(&command);
        }
        assert!(
            phone.log().contains("Using wav files instead of soundcard"),
            "linphonec did not switch to files; log:\n{}",
            phone.log()
        );
        phone
    }

    /// How many prompts linphonec has printed: one at start, then one after each command.
    fn prompts(&self) -> usize {
        self.log().matches("linphonec> ").count()
    }

    /// Run one linphonec command and return what it printed until its next prompt (panics
    /// if no prompt comes back within 10 s).
    pub fn command(&mut self, line: &str) -> String {
        let before = self.log().len();
        let prompts = self.prompts();
        writeln!(self.stdin, "{line}").expect("write to linphonec");
        self.stdin.flush().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || self.prompts() > prompts),
            "linphonec did not run {line:?}; log:\n{}",
            self.log()
        );
        let log = self.log();
        log.get(before..).unwrap_or_default().to_string()
    }

    /// Whether its registration is `LinphoneRegistrationOk` now.
    pub fn registered(&mut self) -> bool {
        self.command("states proxies")
            .contains("LinphoneRegistrationOk")
    }

    /// How many times linphonec printed `text` so far.
    fn count(&self, text: &str) -> usize {
        self.log().matches(text).count()
    }

    /// Wait up to `wait` for a call to be answered (auto-answer) and its media to start (any
    /// call since the phone started).
    pub fn wait_call(&self, wait: Duration) -> bool {
        wait_until(wait, || self.count("Media streams established") > 0)
    }

    /// Press Hold (`pause`): re-INVITE with `a=sendonly`. True when a call was up (waits up
    /// to 10 s for one) and linphonec reports it paused (the re-INVITE got its 200) within
    /// 10 s.
    pub fn hold(&mut self) -> bool {
        if !self.wait_call(Duration::from_secs(10)) {
            return false;
        }
        let paused = self.count("is now paused");
        self.command("pause");
        wait_until(Duration::from_secs(10), || {
            self.count("is now paused") > paused
        })
    }

    /// Resume the paused call: re-INVITE without a direction attribute (sendrecv). True when
    /// linphonec reports the media running again within 10 s.
    pub fn resume(&mut self) -> bool {
        let running = self.count("Media streams established");
        self.command("resume");
        wait_until(Duration::from_secs(10), || {
            self.count("Media streams established") > running
        })
    }

    /// Hang up the current call.
    pub fn hangup(&mut self) {
        self.command("terminate");
    }

    /// What it heard, 8 kHz mono (G.711 only is enabled), f32 in -1..1. The recording pauses
    /// while the call is on hold and continues in the same file after resume, so it is the
    /// audio before the hold followed by the audio after the resume. Readable mid-call.
    pub fn heard(&self) -> Vec<f32> {
        read_wav(&self.dir.join("heard.wav")).0
    }

    /// Its console output so far (call events, command output).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("linphonec.log")).unwrap_or_default()
    }

    /// liblinphone's debug log so far, with every SIP message sent and received.
    pub fn debug_log(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.join("linphone-debug.log")).unwrap_or_default(),
        )
        .into_owned()
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        // SIGKILL: linphonec --pipe ignores SIGTERM (it waits on its command socket).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
