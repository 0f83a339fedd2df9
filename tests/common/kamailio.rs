//! A real Kamailio (Debian package `kamailio`, 5.6) as a record-routing proxy between a
//! caller and holdfast, for the RFC 3261 §12 route-set tests.
//!
//! The proxy runs `tests/data/kamailio/proxy.cfg`: it listens on one UDP port on
//! 127.0.0.1, record-routes every initial request (one `Record-Route:
//! <sip:127.0.0.1:PORT;lr;ftag=...>`, or two `;r2=on` ones with [`Kamailio::start_with`]
//! and the `DOUBLE_RR` define), rewrites its R-URI host:port to holdfast's and relays it
//! statefully; in-dialog requests are loose-routed (their Route must name the proxy) and
//! relayed to their R-URI, whichever side sends them. Each relayed request is logged as
//!
//! ```text
//! HOLDFAST-RELAY <method> ruri=<R-URI> du=<next hop> src=<ip:port> callid=<Call-ID>
//! ```
//!
//! each reply to one as `HOLDFAST-REPLY <code> <method> src=... callid=...`, and each
//! in-dialog request that carried no Route naming the proxy (a UA that ignored the route
//! set: a 2xx ACK is then dropped, anything else answered 404) as `HOLDFAST-NOROUTE
//! <method> ...`. A test proves the caller's ACK and BYE went through the proxy with
//! [`Kamailio::relayed`] / [`Kamailio::wait_relayed`].
//!
//! Note: the ACK to a non-2xx final answer is hop-by-hop: Kamailio's tm sends its own ACK to
//! holdfast and absorbs the caller's, so no `HOLDFAST-RELAY ACK` line appears for a rejected
//! call.
//!
//! Kamailio runs in the foreground (`-DD -E`, log on stderr into `kamailio.log` in the
//! scratch directory), with a private runtime directory (`-Y`), ~8 MB of shared memory and
//! one UDP worker; it answers the readiness probe (an OPTIONS to `sip:127.0.0.1:PORT`,
//! no user part) within ~50 ms of the spawn. It is stopped with SIGTERM on drop (its main
//! process then stops its workers); SIGKILL to the main process alone would leave the
//! workers running and holding the port, so they are killed by pid if it comes to that.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The proxy's config file.
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kamailio/proxy.cfg");

/// The cluster front shipped for operators (`deploy/kamailio/`).
pub const FRONT_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kamailio/kamailio.cfg");

/// Kamailio's exit status when it cannot bind its listen socket (or fails to start at all).
const KAMAILIO_START_FAILED: i32 = 255;

/// A running Kamailio proxy, stopped on drop.
pub struct Kamailio {
    child: Child,
    /// Its worker processes (the main process forks them at start-up).
    workers: Vec<u32>,
    /// Where it listens (UDP); send the caller's INVITE here.
    pub addr: SocketAddr,
    /// Where it relays initial requests (holdfast).
    pub forward_to: SocketAddr,
    /// Its scratch directory (`kamailio.log`, pid file, runtime directory).
    pub dir: PathBuf,
}

impl Kamailio {
    /// Start a record-routing proxy on a free loopback UDP port that relays initial
    /// requests to `forward_to`, and wait until it answers OPTIONS.
    pub fn start(name: &str, forward_to: SocketAddr) -> Kamailio {
        Self::start_with(name, forward_to, &[])
    }

    /// [`Kamailio::start`] with extra config defines (`-A`), e.g. `"DOUBLE_RR"`: two
    /// Record-Route headers (`;r2=on`) instead of one.
    pub fn start_with(name: &str, forward_to: SocketAddr, defines: &[&str]) -> Kamailio {
        let mut all = vec![format!("HOLDFAST_HOSTPORT=\"{forward_to}\"")];
        all.extend(defines.iter().map(|d| (*d).to_owned()));
        let dir = super::scratch_dir(&format!("kamailio-{name}"));
        Self::launch(dir, CONFIG, &all, forward_to)
    }

    /// The cluster front of `deploy/kamailio/kamailio.cfg` (dispatcher over `nodes`, Path on
    /// REGISTER, OPTIONS probing every second), on a free loopback UDP port.
    pub fn front(name: &str, nodes: &[SocketAddr]) -> Kamailio {
        let dir = super::scratch_dir(&format!("kamailio-{name}"));
        let list = dir.join("dispatcher.list");
        let lines: String = nodes.iter().map(|n| format!("1 sip:{n} 0 0\n")).collect();
        std::fs::write(&list, lines).expect("write dispatcher.list");
        let defines = [format!("DISPATCHER_LIST=\"{}\"", list.display())];
        Self::launch(dir, FRONT_CONFIG, &defines, nodes[0])
    }

    fn launch(dir: PathBuf, config: &str, defines: &[String], forward_to: SocketAddr) -> Kamailio {
        let mut tries = 0;
        loop {
            tries += 1;
            let port = super::free_udp_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let log = std::fs::File::create(dir.join("kamailio.log")).expect("create kamailio log");
            let mut command = Command::new("kamailio");
            command
                .arg("-f")
                .arg(config)
                .args(["-DD", "-E", "-n", "1", "-m", "8", "-M", "4"])
                .arg("-l")
                .arg(format!("udp:{addr}"));
            for define in defines {
                command.arg("-A").arg(define);
            }
            let child = command
                .arg("-Y")
                .arg(&dir)
                .arg("-P")
                .arg(dir.join("kamailio.pid"))
                .arg("-w")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone kamailio log"))
                .stderr(log)
                .spawn()
                .expect("run kamailio (apt-get install kamailio)");
            let mut kamailio = Kamailio {
                child,
                workers: Vec::new(),
                addr,
                forward_to,
                dir: dir.clone(),
            };
            match kamailio.wait_ready() {
                Ok(()) => {
                    kamailio.workers = children_of(kamailio.child.id());
                    return kamailio;
                }
                // Another process took the port between `free_udp_port` and the bind.
                Err(code)
                    if code == Some(KAMAILIO_START_FAILED)
                        && tries < 4
                        && kamailio.log().contains("Address already in use") => {}
                Err(code) => panic!("kamailio exited early ({code:?}); log:\n{}", kamailio.log()),
            }
        }
    }

    /// Probe with OPTIONS until the proxy answers 200; `Err(exit code)` if it exits first.
    fn wait_ready(&mut self) -> Result<(), Option<i32>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status.code());
            }
            if probe(self.addr, Duration::from_millis(50)) == Some(200) {
                return Ok(());
            }
        }
        panic!(
            "kamailio did not answer OPTIONS within 10 s; log:\n{}",
            self.log()
        );
    }

    /// Everything Kamailio logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// The `HOLDFAST-RELAY` log lines of the requests of `method` (e.g. `"ACK"`) relayed so
    /// far, in order.
    pub fn relayed_lines(&self, method: &str) -> Vec<String> {
        lines_with(&self.log(), &format!("HOLDFAST-RELAY {method} "))
    }

    /// How many requests of `method` (e.g. `"INVITE"`, `"ACK"`, `"BYE"`) it relayed so far.
    pub fn relayed(&self, method: &str) -> usize {
        self.relayed_lines(method).len()
    }

    /// Wait until it relayed at least `count` requests of `method`; whether it did in time.
    /// (Relaying is asynchronous: an ACK sent by the test may not be logged yet.)
    pub fn wait_relayed(&self, method: &str, count: usize, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.relayed(method) >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many replies `code` to requests of `method` came back through it so far.
    pub fn replies(&self, code: u16, method: &str) -> usize {
        lines_with(&self.log(), &format!("HOLDFAST-REPLY {code} {method} ")).len()
    }

    /// How many in-dialog requests of `method` reached it without a Route naming it (the
    /// sender ignored the route set) so far.
    pub fn unrouted(&self, method: &str) -> usize {
        lines_with(&self.log(), &format!("HOLDFAST-NOROUTE {method} ")).len()
    }

    /// The start of the Record-Route value it inserts without `DOUBLE_RR` (the `;ftag=`
    /// that follows depends on the call): `<sip:127.0.0.1:PORT;lr`, for `starts_with`
    /// checks on holdfast's replies. (With `DOUBLE_RR`: `<sip:127.0.0.1:PORT;r2=on;lr`.)
    pub fn record_route_prefix(&self) -> String {
        format!("<sip:{};lr", self.addr)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return; // exited (and reaped) already: its pid may belong to someone else now
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Killing the main process alone would orphan the workers, which hold the port.
        let mut kill = Command::new("kill");
        kill.arg("-KILL").arg(self.child.id().to_string());
        for worker in &self.workers {
            kill.arg(worker.to_string());
        }
        let _ = kill.stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// The log lines containing `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The pids of the processes whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Send an OPTIONS to the proxy itself (no user part: answered locally, not relayed) and
/// return the status code of the final reply, if one arrives in time.
fn probe(to: SocketAddr, wait: Duration) -> Option<u16> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    let local = socket.local_addr().ok()?;
    let branch = format!("z9hG4bK-kprobe-{}-{n}", std::process::id());
    let msg = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=kp{n}\r\nTo: <sip:{to}>\r\n\
         Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(msg.as_bytes(), to).ok()?;
    super::final_status(&socket, wait)
}
