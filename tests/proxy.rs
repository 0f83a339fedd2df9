//! End to end behind a real Kamailio (Debian package `kamailio`) that record-routes: the
//! caller's ACK and BYE follow the route set of holdfast's answer through the proxy (RFC
//! 3261 §12.1.1), and holdfast's own BYE goes back through it to the caller's Contact,
//! whatever form that takes (a Linphone-style Contact with no user part and a
//! `+sip.instance`).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::kamailio::Kamailio;
use common::{Holdfast, Setup, header, pcmu_offer, sipp, status_code};

fn sipp_caller_through(name: &str, defines: &[&str], rtp_base: u16) {
    let holdfast = Holdfast::start(name, &Setup::new(rtp_base));
    let proxy = Kamailio::start_with(&format!("{name}-kamailio"), holdfast.sip, defines);
    let (_sink, rtp_port) = common::rtp_sink();
    let rtp_port = rtp_port.to_string();
    let out = sipp(
        "caller.xml",
        proxy.addr,
        &[
            "-s", "100", "-m", "1", "-l", "1", "-d", "3000", "-key", "rtp_port", &rtp_port,
        ],
    );
    assert!(
        out.status.success(),
        "SIPp caller through Kamailio failed:\n{}\nholdfast:\n{}\nkamailio:\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log(),
        proxy.log()
    );
    for method in ["INVITE", "ACK", "BYE"] {
        assert!(
            proxy.wait_relayed(method, 1, Duration::from_secs(3)),
            "the caller's {method} went through the proxy:\n{}",
            proxy.log()
        );
    }
    assert_eq!(
        proxy.unrouted("ACK") + proxy.unrouted("BYE"),
        0,
        "{}",
        proxy.log()
    );
    assert!(
        !holdfast.log().contains("no ACK for our 200 OK"),
        "{}",
        holdfast.log()
    );
}

#[test]
fn a_caller_behind_a_record_routing_proxy_completes_its_call() {
    sipp_caller_through("proxy-rr", &[], 41_000);
}

#[test]
fn two_record_routes_are_kept_in_order() {
    sipp_caller_through("proxy-rr2", &["DOUBLE_RR"], 42_000);
}

/// Reads datagrams until a request `method` arrives; its text.
fn wait_request(socket: &UdpSocket, method: &str, wait: Duration) -> Option<String> {
    common::receive_until(socket, wait, |datagram, _| {
        let text = String::from_utf8_lossy(datagram).to_string();
        text.starts_with(&format!("{method} ")).then_some(text)
    })
}

/// The response to `request` with `code`, copying the headers §8.2.6.2 names.
fn reply(request: &str, code: u16) -> String {
    let lines: Vec<&str> = request
        .split("\r\n")
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .collect();
    format!(
        "SIP/2.0 {code} OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
        lines.join("\r\n")
    )
}

#[test]
fn holdfasts_bye_reaches_a_userless_instance_contact_through_the_proxy() {
    let mut holdfast = Holdfast::start("proxy-bye", &Setup::new(43_000));
    let proxy = Kamailio::start("proxy-bye-kamailio", holdfast.sip);
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = phone.local_addr().unwrap();
    let (_sink, rtp_port) = common::rtp_sink();
    let sdp = pcmu_offer(rtp_port);
    let contact = format!(
        "<sip:{me};transport=udp>;+sip.instance=\"<urn:uuid:0c3a8f2e-1b2c-4d5e-8f90-123456789abc>\""
    );
    let invite = format!(
        "INVITE sip:100@{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-lp1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15551234567@127.0.0.1>;tag=lp1\r\nTo: <sip:100@{proxy}>\r\n\
         Call-ID: linphone-style-1\r\nCSeq: 20 INVITE\r\nContact: {contact}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        proxy = proxy.addr,
    );
    phone.send_to(invite.as_bytes(), proxy.addr).unwrap();
    let ok = common::receive_until(&phone, Duration::from_secs(5), |datagram, _| {
        status_code(datagram)
            .filter(|code| *code >= 200)
            .map(|_| String::from_utf8_lossy(datagram).to_string())
    })
    .unwrap_or_else(|| panic!("no answer:\n{}", proxy.log()));
    assert_eq!(status_code(ok.as_bytes()), Some(200), "{ok}");
    let record_route = header(&ok, "Record-Route").expect("Record-Route copied into the 200");
    assert!(
        record_route.starts_with(&proxy.record_route_prefix()),
        "{record_route}"
    );
    let target = header(&ok, "Contact").unwrap();
    let target = target.trim_start_matches('<').split('>').next().unwrap();
    let to = header(&ok, "To").unwrap();
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-lp1ack;rport\r\n\
         Max-Forwards: 70\r\nRoute: {record_route}\r\nFrom: <sip:+15551234567@127.0.0.1>;tag=lp1\r\n\
         To: {to}\r\nCall-ID: linphone-style-1\r\nCSeq: 20 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(ack.as_bytes(), proxy.addr).unwrap();
    assert!(
        proxy.wait_relayed("ACK", 1, Duration::from_secs(3)),
        "{}",
        proxy.log()
    );

    // A graceful stop hangs up every caller: the BYE must go through the proxy (Route) to
    // the caller's Contact, not to the To URI.
    let answer = std::thread::spawn(move || {
        let bye = wait_request(&phone, "BYE", Duration::from_secs(5));
        if let Some(bye) = &bye {
            phone
                .send_to(reply(bye, 200).as_bytes(), proxy_addr(bye))
                .ok();
        }
        bye
    });
    let status = holdfast.terminate();
    let bye = answer.join().unwrap().unwrap_or_else(|| {
        panic!(
            "no BYE reached the caller\nholdfast:\n{}\nkamailio:\n{}",
            holdfast.log(),
            proxy.log()
        )
    });
    assert!(status.success());
    let start = bye.lines().next().unwrap().to_ascii_lowercase();
    assert_eq!(
        start,
        format!("bye sip:{me};transport=udp sip/2.0"),
        "{bye}"
    );
    let relayed = proxy.relayed_lines("BYE");
    assert!(
        relayed
            .iter()
            .any(|l| l.contains(&format!("src={}", holdfast.sip))),
        "holdfast's BYE went through the proxy: {relayed:?}"
    );
}

/// The proxy's address, from the top Via of a request it relayed to us.
fn proxy_addr(request: &str) -> std::net::SocketAddr {
    let via = header(request, "Via").unwrap();
    let sent_by = via.split_whitespace().nth(1).unwrap();
    sent_by.split(';').next().unwrap().parse().unwrap()
}
