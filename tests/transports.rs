//! SIP over TCP and TLS end to end (RFC 3261 §18, RFC 5626): SIPp callers over TCP held and
//! bridged, baresip registering over TLS and bridged to a UDP caller with audio both ways,
//! keep-alives, and connections that misbehave (a 10 MB Content-Length, none at all, a sender
//! trickling bytes, silence, too many from one address) cut off while everyone else is
//! served. Memory per idle connection is measured and printed.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::streams::{Conn, trusting};
use common::{Baresip, Holdfast, Setup, collect_rtp, options, rtp_sink, scratch_dir, sipp};

/// A setup with TLS on a free port, its certificate and key (created by holdfast on start) in
/// a scratch directory; returns the TLS address and the certificate's path too.
fn tls_setup(name: &str, rtp_base: u16, sip_extra: &str) -> (Setup, SocketAddr, PathBuf) {
    let keys = scratch_dir(&format!("{name}-keys"));
    let tls_port = common::phones::free_tcp_port();
    let cert = keys.join("holdfast.crt");
    let mut setup = Setup::new(rtp_base);
    setup.sip_extra = format!(
        "listen_tls = \"127.0.0.1:{tls_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{sip_extra}",
        cert.display(),
        keys.join("holdfast.key").display()
    );
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    (setup, tls, cert)
}

fn options_text(call_id: &str, transport: &str, extra: &str) -> String {
    format!(
        "OPTIONS sip:q@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:q@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}"
    )
}

#[test]
fn sipp_callers_over_tcp_hear_hold_music() {
    let holdfast = Holdfast::start("tcp-hold", &Setup::new(54_000));
    // `tn`: a connection per call; `t1`: every call on one connection.
    for mode in ["tn", "t1"] {
        let (sink, rtp_port) = rtp_sink();
        let rtp_port = rtp_port.to_string();
        let receiver = std::thread::spawn(move || collect_rtp(&sink, Duration::from_secs(7)));
        let out = sipp(
            "caller.xml",
            holdfast.sip,
            &[
                "-t",
                mode,
                "-max_socket",
                "100",
                "-s",
                "100",
                "-m",
                "5",
                "-l",
                "5",
                "-r",
                "10",
                "-d",
                "4000",
                "-key",
                "rtp_port",
                &rtp_port,
            ],
        );
        let streams = receiver.join().expect("RTP receiver");
        assert!(
            out.status.success(),
            "SIPp over TCP ({mode}) failed:\n{}\n{}\nholdfast:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            holdfast.log()
        );
        assert_eq!(streams.len(), 5, "{mode}: one stream per caller");
        for (ssrc, s) in &streams {
            assert!(s.packets >= 150, "{mode} {ssrc:08x}: {} packets", s.packets);
            assert_eq!(s.seq_breaks, 0, "{mode} {ssrc:08x}");
            assert!(
                s.loud_bytes > u64::from(s.packets) * 40,
                "music, not silence"
            );
        }
    }
    // The 200s said where holdfast is reached over TCP.
    assert!(
        holdfast.log().contains("SIP/TCP"),
        "TCP listener: {}",
        holdfast.log()
    );
}

#[test]
fn baresip_over_tls_with_srtp_is_bridged_to_a_plain_udp_caller() {
    let queue = "[[queue]]\nname = \"support\"\n\n[[route]]\nnumber = \"*\"\nqueue = \"support\"\n\
                 priority = \"normal\"\n\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";
    let (mut setup, tls, _) = tls_setup("tls-agent", 55_000, "digest_algorithms = [\"MD5\"]\n");
    setup.extra = queue.into();
    let holdfast = Holdfast::start("tls-agent", &setup);
    // SRTP mandatory: baresip refuses a call whose media is not encrypted.
    let account = format!(
        "<sip:alice@{tls};transport=tls>;auth_pass=alice-secret;answermode=auto;\
         audio_codecs=PCMU;regint=600;mediaenc=srtp-mand"
    );
    let phone = Baresip::start_with("baresip-tls", &account, "module srtp.so\n", 440);
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(20)),
        "baresip registered over TLS\nholdfast:\n{}\nbaresip:\n{}",
        holdfast.log(),
        phone.log()
    );
    let (out, heard_by_caller) = common::one_talking_call(&holdfast);
    assert!(
        out.status.success(),
        "SIPp caller failed:\n{}\nholdfast:\n{}\nbaresip:\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log(),
        phone.log()
    );
    assert!(holdfast.log().contains("caller connected to agent"));
    assert!(
        common::dominant(
            &heard_by_caller[1600..],
            440.0,
            &[300.0, 700.0, 1000.0, 2000.0]
        ),
        "the caller hears the agent's tone"
    );
    std::thread::sleep(Duration::from_millis(500));
    let heard_by_agent = phone.heard();
    assert!(heard_by_agent.len() > 8000 * 3, "{}", phone.log());
    assert!(
        common::dominant(
            &heard_by_agent[1600..],
            1000.0,
            &[440.0, 700.0, 1500.0, 2500.0]
        ),
        "the agent hears the caller's tone"
    );
    // The call's media was SRTP on the agent's side, and the caller's BYE reached baresip
    // over its TLS connection.
    assert!(phone.log().contains("SRTP is Enabled"), "{}", phone.log());
    assert!(phone.log().contains("terminated"), "{}", phone.log());
}

#[test]
fn misbehaving_connections_are_cut_off_and_the_rest_are_served() {
    let (setup, tls, cert) = tls_setup(
        "streams-abuse",
        56_000,
        "connection_idle = 2\nmax_connections_per_source = 20\n",
    );
    let holdfast = Holdfast::start("streams-abuse", &setup);
    let config = trusting(&cert);

    // Over TLS as over TCP: a request is answered on its connection, and a double-CRLF
    // keep-alive gets its CRLF (RFC 5626 §4.4.1).
    for mut conn in [
        Conn::tcp(holdfast.sip),
        Conn::tls_from("127.0.0.1", tls, &config).expect("TLS handshake"),
    ] {
        conn.send(b"\r\n\r\n").unwrap();
        assert_eq!(conn.read_n(2, Duration::from_secs(2)), b"\r\n");
        conn.send(options_text("ok1", "TCP", "Content-Length: 0\r\n\r\n").as_bytes())
            .unwrap();
        let reply = conn.final_response(Duration::from_secs(3)).expect("200");
        assert!(reply.starts_with("SIP/2.0 200 "), "{reply}");
    }

    // 10 MB declared: 400 at once, connection closed, nothing buffered.
    let mut huge = Conn::tcp(holdfast.sip);
    huge.send(options_text("big", "TCP", "Content-Length: 10485760\r\n\r\n").as_bytes())
        .unwrap();
    let reply = huge.final_response(Duration::from_secs(3)).expect("400");
    assert!(
        reply.starts_with("SIP/2.0 400 Message Too Large"),
        "{reply}"
    );
    assert!(
        huge.read_for(Duration::from_secs(2)).1,
        "closed after the 400"
    );

    // No Content-Length on a stream: 400, closed.
    let mut none = Conn::tcp(holdfast.sip);
    none.send(options_text("nolen", "TCP", "\r\n").as_bytes())
        .unwrap();
    let reply = none.final_response(Duration::from_secs(3)).expect("400");
    assert!(
        reply.starts_with("SIP/2.0 400 Missing Content-Length"),
        "{reply}"
    );

    // A sender trickling a message that never ends, and one that sends nothing: both are
    // closed after `connection_idle` (2 s), not kept.
    let mut trickle = Conn::tcp(holdfast.sip);
    let mut silent = Conn::tcp(holdfast.sip);
    let started = Instant::now();
    let text = options_text("slow", "TCP", "X-Pad: ");
    let mut closed_at = None;
    for byte in text.as_bytes().iter().cycle().take(40) {
        if trickle.send(&[*byte]).is_err() || trickle.read_for(Duration::from_millis(250)).1 {
            closed_at = Some(started.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("the trickler was cut off");
    assert!(closed_at < Duration::from_secs(6), "{closed_at:?}");
    assert!(
        silent.read_for(Duration::from_secs(3)).1,
        "the silent one too"
    );

    // 20 connections per source: the 21st to 30th are closed at once, and the first 20
    // still work; another source is not affected.
    let mut held: Vec<Conn> = (0..20)
        .map(|_| Conn::tcp_from("127.0.0.1", holdfast.sip).unwrap())
        .collect();
    let refused = (0..10)
        .filter(|_| {
            let mut extra = Conn::tcp_from("127.0.0.1", holdfast.sip).unwrap();
            extra.read_for(Duration::from_millis(300)).1
        })
        .count();
    assert_eq!(
        refused, 10,
        "connections past the per-source limit are refused"
    );
    held[0]
        .send(options_text("kept", "TCP", "Content-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    assert!(held[0].final_response(Duration::from_secs(3)).is_some());
    let mut other = Conn::tcp_from("127.0.0.2", holdfast.sip).unwrap();
    other
        .send(options_text("other", "TCP", "Content-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    assert!(other.final_response(Duration::from_secs(3)).is_some());
    assert_eq!(
        options(holdfast.sip, Duration::from_secs(2)),
        Some(200),
        "UDP too"
    );
}

#[test]
fn idle_connections_cost_little_memory() {
    const TCP: usize = 2_000;
    const TLS: usize = 500;
    let (setup, tls, cert) = tls_setup("streams-memory", 57_000, "");
    let holdfast = Holdfast::start("streams-memory", &setup);
    let config = trusting(&cert);
    // One warm-up connection of each kind, so one-time allocations are not counted.
    let warm = [
        Conn::tcp(holdfast.sip),
        Conn::tls_from("127.0.0.1", tls, &config).unwrap(),
    ];
    std::thread::sleep(Duration::from_millis(300));
    let before = holdfast.rss_kib();
    // Spread over loopback sources (100 per source, the default limit).
    let source = |i: usize| format!("127.0.{}.{}", 1 + i / 100 / 250, 1 + (i / 100) % 250);
    let mut tcp = Vec::with_capacity(TCP);
    for i in 0..TCP {
        tcp.push(Conn::tcp_from(&source(i), holdfast.sip).expect("connect"));
    }
    // Each connection talks once, so its task has really read from it.
    for conn in tcp.iter_mut() {
        conn.send(b"\r\n\r\n").unwrap();
    }
    for conn in tcp.iter_mut() {
        assert_eq!(conn.read_n(2, Duration::from_secs(2)), b"\r\n");
    }
    std::thread::sleep(Duration::from_millis(500));
    let after_tcp = holdfast.rss_kib();
    let mut tls_conns = Vec::with_capacity(TLS);
    for i in 0..TLS {
        let mut conn = Conn::tls_from(&source(TCP + i), tls, &config).expect("TLS");
        conn.send(b"\r\n\r\n").unwrap();
        assert_eq!(conn.read_n(2, Duration::from_secs(2)), b"\r\n");
        tls_conns.push(conn);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after_tls = holdfast.rss_kib();
    let per_tcp = (after_tcp.saturating_sub(before)) as f64 * 1024.0 / TCP as f64;
    let per_tls = (after_tls.saturating_sub(after_tcp)) as f64 * 1024.0 / TLS as f64;
    println!(
        "memory per idle SIP connection: TCP {:.0} bytes ({TCP} connections), TLS {:.0} bytes ({TLS})",
        per_tcp, per_tls
    );
    // Kamailio's published figures: about 4.5 KB per TCP and 61 KB per TLS connection.
    assert!(
        per_tcp < 4.5 * 1024.0,
        "TCP: {per_tcp:.0} bytes per connection"
    );
    assert!(
        per_tls < 61.0 * 1024.0,
        "TLS: {per_tls:.0} bytes per connection"
    );
    assert_eq!(options(holdfast.sip, Duration::from_secs(2)), Some(200));
    drop(warm);
}

/// A caller offering SRTP (RTP/SAVP with an SDES key) is answered with SRTP and a key of
/// holdfast's, and hears the same hold music encrypted with that key; a queue that requires
/// SRTP answers a plain offer 488.
#[test]
fn an_srtp_caller_hears_music_encrypted_and_a_queue_can_require_srtp() {
    use holdfast::sip::sdp::crypto::CryptoAttr;
    use holdfast::srtp::{MasterKey, SrtpReceiver, Suite};
    let mut setup = Setup::new(58_000);
    setup.extra = "[[queue]]\nname = \"secure\"\nrequire_srtp = true\n\n\
                   [[route]]\nnumber = \"300\"\nqueue = \"secure\"\npriority = \"normal\"\n\n\
                   [[queue]]\nname = \"support\"\n\n[[route]]\nnumber = \"*\"\n\
                   queue = \"support\"\npriority = \"normal\"\n"
        .into();
    let holdfast = Holdfast::start("srtp-caller", &setup);
    let (sink, rtp_port) = rtp_sink();
    let ours = CryptoAttr {
        tag: 1,
        key: MasterKey::generate(Suite::AesCm128HmacSha1_80, [5; 30]),
    };
    let savp = common::pcmu_offer(rtp_port).replace("RTP/AVP", "RTP/SAVP")
        + &format!("a=crypto:{}\r\n", ours.render());
    let ua = common::RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite("300", "+15550001", &savp);
    assert_eq!(call.code, 200, "{}", call.response);
    let answer = common::body(&call.response);
    assert!(answer.contains("RTP/SAVP"), "{answer}");
    let line = answer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=crypto:"))
        .expect("holdfast's key");
    let theirs = CryptoAttr::parse(line).expect("a usable key");
    assert_eq!(theirs.tag, 1, "the offer's tag echoed");
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rx = SrtpReceiver::new(&theirs.key);
    let (mut decrypted, mut loud) = (0, 0);
    let mut buf = [0u8; 2048];
    let mut plain = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let Ok((n, _)) = sink.recv_from(&mut buf) else {
            break;
        };
        assert_ne!(n, 12 + 160, "not plain RTP");
        rx.unprotect(&buf[..n], &mut plain)
            .expect("decrypts with holdfast's key");
        decrypted += 1;
        loud += plain[12..]
            .iter()
            .filter(|&&b| (b ^ 0xFF) & 0x7f > 2)
            .count();
    }
    assert!(decrypted >= 80, "{decrypted} packets in 2 s");
    assert!(loud > decrypted * 40, "music, not silence");
    // The queue that requires SRTP refuses a plain offer.
    let plain_call = ua.invite("300", "+15550002", &common::pcmu_offer(rtp_port));
    assert_eq!(plain_call.code, 488, "{}", plain_call.response);
    // Other queues take plain callers as before.
    let plain_ok = ua.invite("100", "+15550003", &common::pcmu_offer(rtp_port));
    assert_eq!(plain_ok.code, 200);
}

/// RFC 3261 §18.1.1: holdfast's INVITE to an agent is larger than 1300 bytes (a queue with a
/// long name, carried in Subject and X-Holdfast-Queue), so holdfast connects to the agent over
/// TCP and sends it there; the call is answered, bridged and hung up over that connection.
#[test]
fn a_request_too_large_for_udp_goes_to_the_agent_over_tcp() {
    let long = "q".repeat(600);
    let mut setup = Setup::new(59_000);
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.extra = format!(
        "[[queue]]\nname = \"{long}\"\n\n[[route]]\nnumber = \"*\"\nqueue = \"{long}\"\n\
         priority = \"normal\"\n\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n"
    );
    let holdfast = Holdfast::start("tcp-large", &setup);
    // The agent's SIPp listens on TCP (-t t1) at the port its REGISTER names.
    let (mut agent, port) = common::spawn_sipp(|| {
        let port = common::free_udp_port();
        let mut command = common::sipp_uas_command("agent.xml", port, "1", "60s");
        command.args(["-t", "t1", "-max_socket", "100"]);
        (command, port)
    });
    common::register_sipp_agent(&holdfast, "alice", "alice-secret", port);
    let (_sink, rtp_port) = rtp_sink();
    let rtp_port = rtp_port.to_string();
    let out = sipp(
        "caller.xml",
        holdfast.sip,
        &[
            "-s", "100", "-m", "1", "-l", "1", "-d", "3000", "-key", "rtp_port", &rtp_port,
        ],
    );
    assert!(
        out.status.success(),
        "caller failed:\n{}\nholdfast:\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    let status = agent.wait().expect("the agent's SIPp ends");
    assert!(
        status.success(),
        "the agent got the INVITE over TCP, answered and was hung up\nholdfast:\n{}",
        holdfast.log()
    );
    assert!(holdfast.log().contains("caller connected to agent"));
}
