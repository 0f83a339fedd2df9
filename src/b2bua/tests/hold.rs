//! re-INVITE and UPDATE on every dialog (hold and resume, RFC 3264 §8.4), route sets in
//! dialog-creating responses (RFC 3261 §12.1.1) and RFC 4028 session timers.

use super::agents::{AGENT, CONFIG_AGENTS, agent_reply, find, register_alice};
use super::*;

fn sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// A request inside a dialog, from `from` (with tag) to `to` (with tag), with an SDP body.
fn request(method: &str, ids: (&str, &str, &str), cseq: u32, branch: &str, body: &str) -> String {
    let (call_id, from, to) = ids;
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:holdfast@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:peer@127.0.0.1:5000>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn o_version(text: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("o=")).unwrap();
    line.split(' ').nth(2).unwrap().parse().unwrap()
}

/// A caller bridged to alice; returns the agent's dialog ids (Call-ID, its From, its To).
fn bridged(h: &mut Harness) -> (String, String, String) {
    register_alice(h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let sent = h.take();
    let agent_invite = find(&sent, "INVITE ").unwrap().1.clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    let ok = h.take();
    let tag = to_tag(&ok.iter().find(|(d, _)| d.to_string() == TRUNK).unwrap().1);
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    assert_eq!(h.media.bridged.len(), 1);
    let ours = header(&agent_invite, "From").unwrap().to_string();
    let call_id = header(&agent_invite, "Call-ID").unwrap().to_string();
    (call_id, "<sip:alice@127.0.0.1>;tag=ag1".to_string(), ours)
}

#[test]
fn an_agent_on_hold_is_answered_recvonly_and_the_caller_hears_music_until_resume() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    let (call_id, agent, ours) = bridged(&mut h);
    let ids = (call_id.as_str(), agent.as_str(), ours.as_str());
    let caller_stream = h.b2bua.calls[&CallKey(1)].stream;
    let ip = h.b2bua.config.sip.public_address;
    let leg = h.b2bua.legs.values().next().unwrap().key;
    let first_version = o_version(&h.b2bua.legs.get_mut(&leg).unwrap().local.current(ip));

    h.deliver(
        AGENT,
        &request("INVITE", ids, 2, "h1", &sdp(9000, "sendonly")),
    );
    let sent = answers(&mut h);
    assert_eq!(sent.len(), 1, "one answer and nothing else: {sent:?}");
    let ok = &sent[0].1;
    assert_eq!(status(ok), Some(200), "{ok}");
    assert!(ok.contains("a=recvonly\r\n"), "RFC 3264 §8.4: {ok}");
    assert!(
        o_version(ok) > first_version,
        "a changed SDP has a new version"
    );
    assert!(header(ok, "Contact").is_some());
    let (stream, remote, pt, _) = *h.media.played.last().expect("music");
    assert_eq!(
        (stream, remote, pt),
        (caller_stream, "127.0.0.1:7000".parse().unwrap(), 0)
    );
    assert_eq!(h.b2bua.calls(), 1, "nobody is hung up");

    // A repeated hold offer changes nothing: same answer, same version.
    h.deliver(
        AGENT,
        &request("INVITE", ids, 3, "h2", &sdp(9000, "sendonly")),
    );
    let again = answers(&mut h)[0].1.clone();
    assert_eq!(o_version(&again), o_version(ok));

    h.deliver(
        AGENT,
        &request("INVITE", ids, 4, "h3", &sdp(9000, "sendrecv")),
    );
    let ok = answers(&mut h)[0].1.clone();
    assert!(ok.contains("a=sendrecv\r\n"), "{ok}");
    assert_eq!(h.media.bridged.len(), 2, "bridged again on resume");

    // An old CSeq is refused (§12.2.2); an unknown dialog is 481.
    h.deliver(
        AGENT,
        &request("INVITE", ids, 1, "h4", &sdp(9000, "sendonly")),
    );
    assert_eq!(status(&answers(&mut h)[0].1), Some(500));
    let stranger = ("nope", agent.as_str(), ours.as_str());
    h.deliver(
        AGENT,
        &request("INVITE", stranger, 9, "h5", &sdp(9000, "sendonly")),
    );
    assert_eq!(status(&answers(&mut h)[0].1), Some(481));
}

#[test]
fn update_and_info_from_an_agent_are_answered_and_silence_replaces_music_when_off() {
    let config = CONFIG_AGENTS.replace(
        "max_no_answer = 2",
        "max_no_answer = 2\nmusic_on_hold = false",
    );
    let mut h = Harness::with_config(&config);
    let (call_id, agent, ours) = bridged(&mut h);
    let ids = (call_id.as_str(), agent.as_str(), ours.as_str());
    let caller_stream = h.b2bua.calls[&CallKey(1)].stream;
    let played = h.media.played.len();
    h.deliver(
        AGENT,
        &request("UPDATE", ids, 2, "u1", &sdp(9000, "inactive")),
    );
    let ok = answers(&mut h)[0].1.clone();
    assert_eq!(status(&ok), Some(200));
    assert!(ok.contains("a=inactive\r\n"), "{ok}");
    assert_eq!(h.media.played.len(), played, "no music");
    assert_eq!(h.media.stopped.last(), Some(&caller_stream), "silence");
    h.deliver(AGENT, &request("INFO", ids, 3, "i1", ""));
    assert_eq!(status(&answers(&mut h)[0].1), Some(200));
    h.deliver(AGENT, &request("OPTIONS", ids, 4, "o1", ""));
    assert_eq!(status(&answers(&mut h)[0].1), Some(200));
}

#[test]
fn a_caller_on_hold_while_bridged_leaves_the_agent_music_and_a_held_queued_caller_keeps_its_place()
{
    let mut h = Harness::with_config(CONFIG_AGENTS);
    let (_, _, _) = bridged(&mut h);
    let tag = h.b2bua.calls[&CallKey(1)].dialog.local_tag.clone();
    let caller = (
        "c1",
        "<sip:+15551230001@127.0.0.1>;tag=f-c1",
        &*format!("<sip:100@127.0.0.1:5060>;tag={tag}"),
    );
    let agent_stream = h.b2bua.legs.values().next().unwrap().stream;
    h.deliver(
        TRUNK,
        &request("INVITE", caller, 2, "ch1", &sdp(7000, "sendonly")),
    );
    let ok = answers(&mut h)[0].1.clone();
    assert!(ok.contains("a=recvonly\r\n"), "{ok}");
    let (stream, remote, _, _) = *h.media.played.last().expect("music to the agent");
    assert_eq!(
        (stream, remote),
        (agent_stream, "127.0.0.1:9000".parse().unwrap())
    );

    // A second caller waits in the queue, then holds: music stops, the place stays.
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    let tag2 = to_tag(&find(&h.take(), "SIP/2.0 200").unwrap().1);
    let second = (
        "c2",
        "<sip:+15551230002@127.0.0.1>;tag=f-c2",
        &*format!("<sip:100@127.0.0.1:5060>;tag={tag2}"),
    );
    let stream2 = h.b2bua.calls[&CallKey(h.b2bua.next_key - 1)].stream;
    h.deliver(
        TRUNK,
        &request("INVITE", second, 2, "ch2", &sdp(7002, "sendonly")),
    );
    assert!(answers(&mut h)[0].1.contains("a=recvonly\r\n"));
    assert_eq!(h.media.stopped.last(), Some(&stream2));
    let second_key = CallKey(h.b2bua.next_key - 1);
    assert_eq!(
        h.b2bua.queues().position(second_key.entry()),
        Some(1),
        "place kept"
    );
    let played = h.media.played.len();
    h.deliver(
        TRUNK,
        &request("INVITE", second, 3, "ch3", &sdp(7002, "sendrecv")),
    );
    assert!(answers(&mut h)[0].1.contains("a=sendrecv\r\n"));
    assert_eq!(h.media.played.len(), played + 1, "music again");

    // A re-INVITE without SDP gets our offer; one dropping our codec gets 488.
    h.deliver(TRUNK, &request("INVITE", second, 4, "ch4", ""));
    let ok = answers(&mut h)[0].1.clone();
    assert!(ok.contains("m=audio ") && ok.contains("a=sendrecv"), "{ok}");
    let pcma = sdp(7002, "sendrecv")
        .replace("RTP/AVP 0 101", "RTP/AVP 8")
        .replace("0 PCMU", "8 PCMA");
    h.deliver(TRUNK, &request("INVITE", second, 5, "ch5", &pcma));
    assert_eq!(status(&answers(&mut h)[0].1), Some(488));
    assert_eq!(h.b2bua.calls(), 2);
}

#[test]
fn record_route_is_copied_into_the_answer_and_routes_our_bye() {
    let mut h = Harness::new();
    let text = invite("c1", "+15551230001").replace(
        "Contact: ",
        "Record-Route: <sip:127.0.0.1:5070;lr;ftag=f-c1>\r\nRecord-Route: <sip:10.9.9.9;lr>\r\nContact: ",
    );
    h.deliver(TRUNK, &text);
    let ok = h.take()[1].1.clone();
    let first = ok
        .find("Record-Route: <sip:127.0.0.1:5070;lr;ftag=f-c1>\r\n")
        .expect(&ok);
    let second = ok.find("Record-Route: <sip:10.9.9.9;lr>\r\n").expect(&ok);
    assert!(first < second, "in order (§12.1.1): {ok}");
    h.b2bua.shutdown(h.now);
    h.drain();
    let bye = find(&h.take(), "BYE ").unwrap().1.clone();
    assert!(bye.starts_with("BYE sip:c@127.0.0.1:5080 SIP/2.0"), "{bye}");
    let r1 = bye
        .find("Route: <sip:127.0.0.1:5070;lr;ftag=f-c1>\r\n")
        .expect(&bye);
    let r2 = bye.find("Route: <sip:10.9.9.9;lr>\r\n").expect(&bye);
    assert!(r1 < r2, "{bye}");
}

#[test]
fn we_refresh_a_caller_without_timer_support_and_hang_up_when_it_is_gone() {
    let mut h = Harness::new();
    let start = h.now;
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let ok = h.take()[1].1.clone();
    assert_eq!(header(&ok, "Session-Expires"), Some("1800;refresher=uas"));
    assert_eq!(
        header(&ok, "Require"),
        None,
        "the caller did not say it supports timer"
    );
    let tag = to_tag(&ok);
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    h.run_until(start + Duration::from_secs(899));
    assert!(find(&h.take(), "INVITE ").is_none());
    h.run_until(start + Duration::from_secs(901));
    let sent = h.take();
    let refresh = find(&sent, "INVITE ")
        .expect("refresh at half the interval")
        .1
        .clone();
    assert!(
        refresh.contains("Session-Expires: 1800;refresher=uas"),
        "{refresh}"
    );
    assert!(
        refresh.contains("m=audio "),
        "a re-INVITE carries our unchanged SDP"
    );
    // The caller's side no longer knows the call: 481 ends it (RFC 4028 §10).
    let reply = refresh_reply(&refresh, 481);
    h.deliver(TRUNK, &reply);
    let sent = h.take();
    assert!(find(&sent, "BYE ").is_some(), "{sent:?}");
    assert_eq!(h.position(1), None);
    assert_eq!(h.b2bua.calls(), 0);
}

#[test]
fn a_caller_that_refreshes_is_kept_and_one_that_stops_is_hung_up() {
    let mut h = Harness::new();
    let start = h.now;
    let text = invite("c1", "+15551230001").replace(
        "Contact: ",
        "Supported: timer\r\nSession-Expires: 90\r\nContact: ",
    );
    h.deliver(TRUNK, &text);
    let ok = h.take()[1].1.clone();
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(header(&ok, "Require"), Some("timer"));
    let tag = to_tag(&ok);
    let ids = (
        "c1",
        "<sip:+15551230001@127.0.0.1>;tag=f-c1",
        &*format!("<sip:100@127.0.0.1:5060>;tag={tag}"),
    );
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    h.run_until(start + Duration::from_secs(50));
    h.deliver(
        TRUNK,
        &request("UPDATE", ids, 2, "up1", "").replace(
            "Contact: ",
            "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\nContact: ",
        ),
    );
    let ok = answers(&mut h)[0].1.clone();
    assert_eq!(
        header(&ok, "Session-Expires"),
        Some("90;refresher=uac"),
        "{ok}"
    );
    h.run_until(start + Duration::from_secs(109));
    assert!(
        find(&h.take(), "BYE ").is_none(),
        "refreshed at 50 s: good until 110 s"
    );
    assert_eq!(h.position(1), Some(1));
    h.run_until(start + Duration::from_secs(111));
    assert!(find(&h.take(), "BYE ").is_some(), "no refresh: hung up");
    assert_eq!(h.position(1), None);
}

#[test]
fn too_short_a_session_interval_is_refused_with_422() {
    let mut h = Harness::new();
    let text =
        invite("c1", "+15551230001").replace("Contact: ", "Session-Expires: 30\r\nContact: ");
    h.deliver(TRUNK, &text);
    let sent = h.take();
    let refusal = &sent.last().unwrap().1;
    assert_eq!(status(refusal), Some(422), "{refusal}");
    assert_eq!(header(refusal, "Min-SE"), Some("90"));
    assert_eq!(h.b2bua.calls(), 0);
}

/// What holdfast sent, without the `100 Trying` of INVITE transactions.
fn answers(h: &mut Harness) -> Vec<(SocketAddr, String)> {
    h.take()
        .into_iter()
        .filter(|(_, t)| status(t) != Some(100))
        .collect()
}

/// The caller's answer to our refresh re-INVITE.
fn refresh_reply(refresh: &str, code: u16) -> String {
    let pick = |name: &str| {
        refresh
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    format!(
        "SIP/2.0 {code} Whatever\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        pick("Via:"),
        pick("From:"),
        pick("To:"),
        pick("Call-ID:"),
        pick("CSeq:")
    )
}

#[test]
fn a_caller_that_allows_update_is_refreshed_with_update_even_after_its_own_update() {
    let mut h = Harness::new();
    let start = h.now;
    let text = invite("c1", "+15551230001").replace(
        "Contact: ",
        "Allow: INVITE, ACK, BYE, CANCEL, UPDATE\r\nContact: ",
    );
    h.deliver(TRUNK, &text);
    let tag = to_tag(&h.take()[1].1);
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    let ids = (
        "c1",
        "<sip:+15551230001@127.0.0.1>;tag=f-c1",
        &*format!("<sip:100@127.0.0.1:5060>;tag={tag}"),
    );
    h.run_until(start + Duration::from_secs(300));
    h.deliver(TRUNK, &request("UPDATE", ids, 2, "up1", ""));
    assert_eq!(status(&answers(&mut h)[0].1), Some(200));
    h.run_until(start + Duration::from_secs(300 + 901));
    let sent = h.take();
    assert!(
        find(&sent, "UPDATE ").is_some(),
        "our refresh is an UPDATE: {sent:?}"
    );
    assert!(find(&sent, "INVITE ").is_none());
}
