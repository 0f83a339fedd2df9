//! The live wallboard in a real browser (docs/behaviour.md §8): headless Chromium loads `GET /` while
//! callers wait and an agent is busy; the page, fed by the server-sent-events stream, shows
//! the waiting callers in order and the agent's state. A screenshot is written next to the
//! test's holdfast log.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Holdfast, RawUa, Setup, pcmu_offer, sipp};

const CONFIG: &str = "[[queue]]\nname = \"support\"\nstrategy = \"fewest-calls\"\nrecord = true\n\n\
[[queue]]\nname = \"night\"\nhours = [\"Mon-Sun 00:00-00:01\"]\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n\n\
[[vip]]\ncaller = \"+15550009999\"\npriority = \"vip\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\nqueues = [\"support\"]\n\n\
[[agent]]\nuser = \"bob\"\npassword = \"bob-secret\"\ntiers = { support = 2 }\n";

/// Headless Chromium with a fresh profile, driven over the DevTools protocol (a minimal
/// WebSocket client below: no browser driver to install). Killed on drop.
struct Browser {
    child: Child,
    page: TcpStream,
    next_id: u64,
}

impl Browser {
    fn open(profile: &Path, url: &str) -> Self {
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1600,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromium (Debian package `chromium`; scripts/test.sh installs it)");
        let mut child = child;
        // Chromium writes its DevTools port into the profile once it listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break port;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not start DevTools");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let ws_path = loop {
            let targets = http_get(port, "/json/list");
            let page = serde_json::from_str::<serde_json::Value>(&targets)
                .ok()
                .and_then(|v| {
                    v.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                        .as_str()
                        .map(str::to_owned)
                });
            if let Some(url) = page {
                break url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
            }
            assert!(Instant::now() < deadline, "no page target: {targets}");
            std::thread::sleep(Duration::from_millis(100));
        };
        Self {
            child,
            page: ws_connect(port, &ws_path),
            next_id: 1,
        }
    }

    /// Sends one DevTools command and returns its `result`.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = serde_json::json!({ "id": id, "method": method, "params": params });
        ws_send(&mut self.page, message.to_string().as_bytes());
        loop {
            let reply: serde_json::Value =
                serde_json::from_slice(&ws_read(&mut self.page)).expect("DevTools JSON");
            if reply["id"] == id {
                return reply["result"].clone();
            }
        }
    }

    /// The page's visible text.
    fn text(&mut self) -> String {
        self.evaluate("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The value of a JavaScript expression in the page.
    fn evaluate(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    // DevTools keeps the connection open: read exactly Content-Length bytes.
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|n| body.len() >= n) {
                return body.to_owned();
            }
        }
    }
    String::new()
}

/// RFC 6455 client handshake (the key is fixed: nothing here needs it to be secret).
fn ws_connect(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("DevTools socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("handshake response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// One masked text frame (clients must mask, RFC 6455 §5.3).
fn ws_send(stream: &mut TcpStream, payload: &[u8]) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
}

/// One whole message (continuation frames joined; the server does not mask).
fn ws_read(stream: &mut TcpStream) -> Vec<u8> {
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).expect("frame header");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                stream.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                stream.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).unwrap();
        message.extend_from_slice(&payload);
        if head[0] & 0x80 != 0 {
            return message;
        }
    }
}

/// Standard base64 (the screenshot comes as base64 PNG).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn wallboard_in_headless_chromium_shows_waiting_callers_and_busy_agent() {
    let api_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut setup = Setup::new(53_000);
    setup.extra = CONFIG.into();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.admin = format!("listen = \"127.0.0.1:{api_port}\"\n");
    let recordings = common::scratch_dir("wallboard-recordings");
    setup.media_extra = format!("recordings = \"{}\"\n", recordings.display());
    let holdfast = Holdfast::start("wallboard", &setup);

    // alice registers and takes a first caller (SIPp, talking 25 s): she is busy.
    let mut agent = common::sipp_agent(&holdfast, "agent.xml", "1");
    let sip = holdfast.sip;
    let talking = std::thread::spawn(move || {
        sipp(
            "caller.xml",
            sip,
            &[
                "-s", "100", "-m", "1", "-d", "25000", "-key", "rtp_port", "9",
            ],
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holdfast.log().contains("caller connected to agent") {
        assert!(
            Instant::now() < deadline,
            "agent never answered:\n{}",
            holdfast.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Two callers wait behind her: a regular one, then a VIP who goes first.
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let regular = ua.invite("100", "+15550000001", &pcmu_offer(9));
    let vip = ua.invite("100", "+15550009999", &pcmu_offer(9));
    assert_eq!((regular.code, vip.code), (200, 200));

    let url = format!("http://127.0.0.1:{api_port}/");
    let mut browser = Browser::open(&holdfast.dir.join("chromium-profile"), &url);
    // The page renders what the server-sent-events stream delivers; wait for it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = browser.text();
        if text.contains("live ·") && text.contains("+15550000001") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "wallboard never showed the callers:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let vip_at = text
        .find("+15550009999")
        .unwrap_or_else(|| panic!("VIP not shown:\n{text}"));
    let regular_at = text.find("+15550000001").unwrap();
    assert!(vip_at < regular_at, "the VIP is listed first:\n{text}");
    assert!(text.contains("support"), "{text}");
    let agent_line = text
        .lines()
        .find(|l| l.starts_with("alice"))
        .unwrap_or_else(|| panic!("alice not shown:\n{text}"));
    assert!(agent_line.contains("busy"), "alice busy: {agent_line:?}");
    // Her call is recorded (the queue records), and the board says so.
    assert!(agent_line.contains("● REC"), "recorded: {agent_line:?}");
    // The routing rules show: the queue's strategy, bob's tier, a queue closed now (open
    // one minute a day, at midnight UTC).
    assert!(text.contains("fewest-calls"), "{text}");
    let bob_line = text
        .lines()
        .find(|l| l.starts_with("bob"))
        .unwrap_or_else(|| panic!("bob not shown:\n{text}"));
    assert!(bob_line.contains("support 2"), "bob's tier: {bob_line:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 86_400 >= 120 {
        assert!(
            text.contains("CLOSED"),
            "the night queue is closed:\n{text}"
        );
    }
    // Today's figures: three offered, one answered at once (within the 20 s target: a
    // service level of 100 %), nobody abandoned yet; and the last hour's chart is drawn.
    let today = browser.evaluate(
        "document.querySelector('section[data-queue=support] [data-figures=today]').textContent",
    );
    let today = today.as_str().unwrap_or_default();
    assert!(
        today.contains("3 offered")
            && today.contains("1 answered")
            && today.contains("0 abandoned"),
        "{today}"
    );
    assert!(text.contains("100%"), "service level 100 %:\n{text}");
    let lines = browser.evaluate(
        "document.querySelectorAll('section[data-queue=support] svg.chart polyline').length",
    );
    assert_eq!(lines, serde_json::json!(2), "the chart's two lines");
    // alice talks to the first caller (SIPp's "+15551"), for some seconds.
    assert!(agent_line.contains("+15551"), "{agent_line}");
    eprintln!("wallboard text:\n{text}");

    let shot = browser.call(
        "Page.captureScreenshot",
        serde_json::json!({ "format": "png" }),
    );
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = holdfast.dir.join("wallboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("wallboard screenshot: {}", path.display());
    drop(browser);

    for call in [&regular, &vip] {
        let _ = ua.request(call, "BYE", 2, "");
    }
    let _ = agent.kill();
    let _ = agent.wait();
    drop(talking);
}
