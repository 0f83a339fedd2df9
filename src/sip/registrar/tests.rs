use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

const CONTACT: &str = "sip:alice@192.168.1.20:5060;transport=udp";

fn source() -> SocketAddr {
    "203.0.113.7:40001".parse().unwrap()
}

fn registrar() -> Registrar {
    Registrar::new(60, 3600, 3600)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn events(r: &mut Registrar) -> Vec<RegistrarEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn registered(user: &str) -> RegistrarEvent {
    RegistrarEvent::Registered { user: user.into() }
}

fn request(contact_and_expires: &str) -> rsip::Request {
    let datagram = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\n\
         To: \"Alice\" <sip:alice@127.0.0.1>\r\n\
         From: <sip:alice@127.0.0.1>;tag=1\r\n\
         Call-ID: reg1\r\n\
         CSeq: 1 REGISTER\r\n\
         {contact_and_expires}\
         Content-Length: 0\r\n\r\n"
    );
    match crate::sip::message::parse(datagram.as_bytes()).unwrap() {
        rsip::SipMessage::Request(request) => request,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn binding_records_contact_source_and_expiry() {
    let t0 = Instant::now();
    let mut r = registrar();
    let binding = r
        .register(t0, "alice", CONTACT, Some(120), source())
        .unwrap()
        .unwrap();
    assert_eq!(binding.contact, CONTACT);
    assert_eq!(binding.source, source());
    assert_eq!(binding.expires_at, t0 + secs(120));
    assert_eq!(r.binding("alice"), Some(&binding));
    assert_eq!(
        binding.contact_header(t0 + Duration::from_millis(500)),
        format!("<{CONTACT}>;expires=120")
    );
    assert_eq!(events(&mut r), vec![registered("alice")]);
    assert_eq!(r.poll_timeout(), Some(t0 + secs(120)));
}

#[test]
fn expiry_defaults_and_clamps() {
    let t0 = Instant::now();
    let mut r = Registrar::new(60, 600, 300);
    let b = r.register(t0, "a", CONTACT, None, source()).unwrap();
    assert_eq!(b.unwrap().expires_at, t0 + secs(300));
    let b = r.register(t0, "b", CONTACT, Some(7200), source()).unwrap();
    assert_eq!(b.unwrap().expires_at, t0 + secs(600));
    let b = r.register(t0, "c", CONTACT, Some(60), source()).unwrap();
    assert_eq!(b.unwrap().expires_at, t0 + secs(60));
    assert_eq!(
        r.register(t0, "d", CONTACT, Some(59), source()),
        Err(RegisterError::IntervalTooBrief { min_expires: 60 })
    );
    assert_eq!(
        RegisterError::IntervalTooBrief { min_expires: 60 }.status_code(),
        423
    );
    assert!(r.binding("d").is_none());
    // A default outside the bounds is pulled inside them.
    let mut r = Registrar::new(60, 600, 10);
    let b = r.register(t0, "a", CONTACT, None, source()).unwrap();
    assert_eq!(b.unwrap().expires_at, t0 + secs(60));
}

#[test]
fn refresh_moves_the_deadline_silently() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(t0, "alice", CONTACT, Some(120), source())
        .unwrap();
    events(&mut r);
    let other: SocketAddr = "203.0.113.7:40002".parse().unwrap();
    let moved = "sip:alice@192.168.1.21:5062";
    let b = r
        .register(t0 + secs(100), "alice", moved, Some(120), other)
        .unwrap()
        .unwrap();
    assert_eq!((b.contact.as_str(), b.source), (moved, other));
    assert_eq!(events(&mut r), vec![]);
    assert_eq!(r.poll_timeout(), Some(t0 + secs(220)));
    // The old deadline is gone: nothing happens at t0 + 120.
    r.handle_timeout(t0 + secs(120));
    assert!(r.binding("alice").is_some());
    assert_eq!(events(&mut r), vec![]);
    assert_eq!(r.len(), 1);
}

#[test]
fn bindings_expire_on_their_own_in_deadline_order() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(t0, "bob", CONTACT, Some(200), source()).unwrap();
    r.register(t0, "alice", CONTACT, Some(100), source())
        .unwrap();
    events(&mut r);
    assert_eq!(r.poll_timeout(), Some(t0 + secs(100)));
    r.handle_timeout(t0 + secs(99));
    assert_eq!(events(&mut r), vec![]);
    r.handle_timeout(t0 + secs(100));
    assert_eq!(
        events(&mut r),
        vec![RegistrarEvent::Expired {
            user: "alice".into()
        }]
    );
    assert!(r.binding("alice").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + secs(200)));
    // Time does not run backwards: an earlier `now` is ignored.
    r.handle_timeout(t0 + secs(300));
    r.handle_timeout(t0);
    assert!(r.is_empty());
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(
        events(&mut r),
        vec![RegistrarEvent::Expired { user: "bob".into() }]
    );
}

#[test]
fn late_timer_does_not_hide_an_expiry() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(t0, "alice", CONTACT, Some(60), source())
        .unwrap();
    events(&mut r);
    // The driver was slow: the phone re-registers after the binding lapsed.
    r.register(t0 + secs(90), "alice", CONTACT, Some(60), source())
        .unwrap();
    assert_eq!(
        events(&mut r),
        vec![
            RegistrarEvent::Expired {
                user: "alice".into()
            },
            registered("alice")
        ]
    );
}

#[test]
fn expires_zero_unregisters_the_same_contact_only() {
    let t0 = Instant::now();
    let mut r = registrar();
    r.register(t0, "alice", CONTACT, None, source()).unwrap();
    events(&mut r);
    // An unregister from a place the phone left does not drop the current binding.
    let stale = r
        .register(t0, "alice", "sip:alice@10.0.0.9", Some(0), source())
        .unwrap();
    assert_eq!(stale.map(|b| b.contact), Some(CONTACT.to_owned()));
    // The same URI with other parameters is the same contact.
    let same = "sip:alice@192.168.1.20:5060;rinstance=x";
    assert_eq!(r.register(t0, "alice", same, Some(0), source()), Ok(None));
    assert_eq!(
        events(&mut r),
        vec![RegistrarEvent::Unregistered {
            user: "alice".into()
        }]
    );
    assert_eq!(r.poll_timeout(), None);
    // Unregistering again changes nothing and says nothing.
    assert_eq!(r.register(t0, "alice", same, Some(0), source()), Ok(None));
    assert_eq!(events(&mut r), vec![]);
}

#[test]
fn read_register_prefers_the_contact_param() {
    let read = |lines: &str| read_register(&request(lines));
    let r = read("Contact: <sip:alice@192.168.1.20:5060>;expires=120\r\nExpires: 300\r\n").unwrap();
    assert_eq!(r.aor_user.as_deref(), Some("alice"));
    assert_eq!(
        r.contact,
        ContactRequest::Uri("sip:alice@192.168.1.20:5060".into())
    );
    assert_eq!(r.expires, Some(120));
    let r = read("Contact: <sip:alice@192.168.1.20:5060>\r\nExpires: 300\r\n").unwrap();
    assert_eq!(r.expires, Some(300));
    let r = read("Contact: <sip:alice@192.168.1.20>\r\n").unwrap();
    assert_eq!(r.expires, None);
    let r = read("Contact: <sip:a@h>;expires=99999999999\r\n").unwrap();
    assert_eq!(r.expires, Some(u32::MAX));
    let r = read("Contact: <sip:a@h>;expires=0, <sip:b@h>;expires=60\r\n").unwrap();
    assert_eq!(
        (r.contact, r.expires),
        (ContactRequest::Uri("sip:a@h".into()), Some(0))
    );
    assert_eq!(read("").unwrap().contact, ContactRequest::Query);
    assert_eq!(
        read("Contact: *\r\nExpires: 0\r\n").unwrap().contact,
        ContactRequest::Wildcard
    );
    for (lines, error) in [
        ("Contact: *\r\n", RegisterError::BadWildcard),
        ("Contact: *\r\nExpires: 60\r\n", RegisterError::BadWildcard),
        (
            "Contact: *, <sip:a@h>\r\nExpires: 0\r\n",
            RegisterError::BadWildcard,
        ),
        (
            "Contact: <sip:a@h>;expires=soon\r\n",
            RegisterError::BadExpires,
        ),
        (
            "Contact: <sip:a@h>\r\nExpires: -1\r\n",
            RegisterError::BadExpires,
        ),
        ("Contact: <http://a>\r\n", RegisterError::BadContact),
    ] {
        let got = read(lines);
        assert_eq!(got, Err(error.clone()), "{lines:?}");
        assert_eq!(error.status_code(), 400);
    }
}

#[test]
fn apply_handles_query_wildcard_and_bind() {
    let t0 = Instant::now();
    let mut r = registrar();
    let bind = read_register(&request(&format!("Contact: <{CONTACT}>;expires=600\r\n"))).unwrap();
    let b = r.apply(t0, "alice", &bind, source()).unwrap().unwrap();
    assert_eq!(b.expires_at, t0 + secs(600));
    let query = read_register(&request("")).unwrap();
    assert_eq!(r.apply(t0, "alice", &query, source()), Ok(Some(b)));
    let wildcard = read_register(&request("Contact: *\r\nExpires: 0\r\n")).unwrap();
    assert_eq!(r.apply(t0, "alice", &wildcard, source()), Ok(None));
    assert_eq!(
        events(&mut r),
        vec![
            registered("alice"),
            RegistrarEvent::Unregistered {
                user: "alice".into()
            }
        ]
    );
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn the_path_of_a_register_is_kept_with_the_binding_and_names_the_first_hop() {
    let read = read_register(&request(&format!(
        "Path: <sip:10.0.0.5:5090;lr;received=sip:192.168.1.20:5060>\r\n\
         Path: <sip:edge.example.com;lr>, <sip:10.0.0.9;lr>\r\n\
         Contact: <{CONTACT}>\r\n"
    )))
    .unwrap();
    assert_eq!(
        read.path,
        [
            "<sip:10.0.0.5:5090;lr;received=sip:192.168.1.20:5060>",
            "<sip:edge.example.com;lr>",
            "<sip:10.0.0.9;lr>"
        ]
    );
    let mut r = registrar();
    let now = Instant::now();
    let proxy: SocketAddr = "10.0.0.5:5090".parse().unwrap();
    let binding = r.apply(now, "alice", &read, proxy).unwrap().unwrap();
    assert_eq!(binding.path, read.path);
    assert_eq!(r.binding("alice").unwrap().path, read.path);
    assert_eq!(binding.first_hop(), Some(proxy));
    // A refresh without Path (the phone now registers directly) forgets it.
    let direct = read_register(&request(&format!("Contact: <{CONTACT}>\r\n"))).unwrap();
    let binding = r.apply(now, "alice", &direct, source()).unwrap().unwrap();
    assert!(binding.path.is_empty() && binding.first_hop().is_none());
    // A Path that is not a URI is refused like a bad Contact.
    assert_eq!(
        read_register(&request(&format!(
            "Path: <not a uri>\r\nContact: <{CONTACT}>\r\n"
        )))
        .err(),
        Some(RegisterError::BadContact)
    );
}
