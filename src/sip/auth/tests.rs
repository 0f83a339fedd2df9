use std::net::SocketAddr;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};

use super::*;

const LIFETIME: Duration = Duration::from_secs(300);

/// Hashes computed here with the hash crates directly, independently of the module.
fn h(algorithm: Algorithm, text: &str) -> String {
    match algorithm {
        Algorithm::Md5 => format!("{:x}", Md5::digest(text.as_bytes())),
        Algorithm::Sha256 => format!("{:x}", Sha256::digest(text.as_bytes())),
    }
}

/// What a phone sends: the RFC 2617 §3.2.2.1 response with `qop=auth`.
fn phone_response(
    algorithm: Algorithm,
    user_realm_password: &str,
    nonce: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = h(algorithm, user_realm_password);
    let ha2 = h(algorithm, &format!("{method}:{uri}"));
    h(
        algorithm,
        &format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"),
    )
}

fn authenticator(epoch: Instant) -> DigestAuthenticator {
    DigestAuthenticator::new(epoch, "holdfast".into(), [7; 32], LIFETIME)
}

fn nonce_of(challenge: &str) -> String {
    let start = challenge.find("nonce=\"").unwrap() + 7;
    let len = challenge[start..].find('"').unwrap();
    challenge[start..start + len].to_owned()
}

fn alice(user: &str) -> Option<Credential<'static>> {
    (user == "alice").then_some(Credential::Password("alice-secret"))
}

/// An `Authorization` value as baresip (libre) writes it for a REGISTER to `sip:127.0.0.1`:
/// no `algorithm`, `qop` and `nc` unquoted, cnonce as 16 hex digits.
fn baresip_header(nonce: &str, password: &str) -> String {
    let cnonce = "3f5e1a2b9c0d7e64";
    let response = phone_response(
        Algorithm::Md5,
        &format!("alice:holdfast:{password}"),
        nonce,
        cnonce,
        "REGISTER",
        "sip:127.0.0.1",
    );
    format!(
        "Digest username=\"alice\", realm=\"holdfast\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", \
         response=\"{response}\", cnonce=\"{cnonce}\", qop=auth, nc=00000001"
    )
}

#[test]
fn rfc2617_example_response() {
    let ha1 = h(Algorithm::Md5, "Mufasa:testrealm@host.com:Circle Of Life");
    let response = digest_response(
        Algorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some(("00000001", "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(response, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_sha256_example_response() {
    let ha1 = h(
        Algorithm::Sha256,
        "Mufasa:http-auth@example.org:Circle of Life",
    );
    let response = digest_response(
        Algorithm::Sha256,
        &ha1,
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(
        response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

/// The RFC examples' headers go through the full parser and checker. Their nonces are not
/// ours, so a right response is reported stale (re-challenge silently) and a wrong one as
/// a bad nonce.
#[test]
fn rfc_example_headers_verify_as_stale_foreign_nonces() {
    let now = Instant::now();
    let rfc2617 = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
        nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let mut auth = DigestAuthenticator::new(now, "testrealm@host.com".into(), [1; 32], LIFETIME);
    let right = |_: &str| Some(Credential::Password("Circle Of Life"));
    let wrong = |_: &str| Some(Credential::Password("circle of life"));
    assert_eq!(
        auth.verify(now, "GET", rfc2617, right),
        Err(AuthError::StaleNonce)
    );
    assert_eq!(
        auth.verify(now, "GET", rfc2617, wrong),
        Err(AuthError::BadNonce)
    );

    let rfc7616 = "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
        uri=\"/dir/index.html\", algorithm=SHA-256, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
        cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
        response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    let mut auth = DigestAuthenticator::new(now, "http-auth@example.org".into(), [1; 32], LIFETIME);
    let right = |_: &str| Some(Credential::Password("Circle of Life"));
    assert_eq!(
        auth.verify(now, "GET", rfc7616, right),
        Err(AuthError::StaleNonce)
    );
    assert_eq!(
        auth.verify(now, "GET", rfc7616, wrong),
        Err(AuthError::BadNonce)
    );
}

#[test]
fn challenge_offers_sha256_then_md5_with_a_fresh_nonce() {
    let t0 = Instant::now();
    let auth = authenticator(t0);
    let values = auth.challenge(t0, false);
    assert_eq!(values.len(), 2);
    assert!(values[0].starts_with("Digest realm=\"holdfast\", nonce=\""));
    assert!(values[0].ends_with("qop=\"auth\", algorithm=SHA-256"));
    assert!(values[1].ends_with("qop=\"auth\", algorithm=MD5"));
    assert_eq!(nonce_of(&values[0]), nonce_of(&values[1]));
    assert!(!values[0].contains("stale"));
    let stale = auth.challenge(t0, true);
    assert!(stale.iter().all(|v| v.ends_with(", stale=true")));
    // Nonces change with time, so a captured one ages out.
    assert_ne!(
        nonce_of(&values[0]),
        nonce_of(&auth.challenge(t0 + Duration::from_secs(1), false)[0])
    );
    let md5_only = auth.clone().with_algorithms(&[Algorithm::Md5]);
    let values = md5_only.challenge(t0, false);
    assert_eq!(values.len(), 1);
    assert!(values[0].ends_with("algorithm=MD5"));
}

#[test]
fn realm_is_quoted_with_escapes() {
    let t0 = Instant::now();
    let auth = DigestAuthenticator::new(t0, "a\"b\\c".into(), [0; 32], LIFETIME);
    assert!(auth.challenge(t0, false)[0].starts_with("Digest realm=\"a\\\"b\\\\c\""));
}

#[test]
fn baresip_register_is_accepted() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[1]);
    let later = t0 + Duration::from_secs(2);
    let header = baresip_header(&nonce, "alice-secret");
    assert_eq!(
        auth.verify(later, "REGISTER", &header, alice),
        Ok("alice".into())
    );
    // The response binds the method.
    assert_eq!(
        auth.verify(later, "INVITE", &header, alice),
        Err(AuthError::WrongResponse)
    );
    let wrong = baresip_header(&nonce, "guess");
    assert_eq!(
        auth.verify(later, "REGISTER", &wrong, alice),
        Err(AuthError::WrongResponse)
    );
    assert_eq!(
        auth.verify(later, "REGISTER", &header, |_| None),
        Err(AuthError::UnknownUser)
    );
}

#[test]
fn whole_register_request_is_verified_through_its_headers() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[0]);
    let datagram = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1;rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:alice@127.0.0.1>\r\n\
         From: <sip:alice@127.0.0.1>;tag=1\r\n\
         Call-ID: reg1\r\n\
         CSeq: 2 REGISTER\r\n\
         Contact: <sip:alice@127.0.0.1:5080;transport=udp>;expires=3600\r\n\
         Authorization: Digest username=\"alice\", realm=\"elsewhere\", nonce=\"x\", uri=\"sip:x\", response=\"0\"\r\n\
         Authorization: {}\r\n\
         Content-Length: 0\r\n\r\n",
        baresip_header(&nonce, "alice-secret")
    );
    let rsip::SipMessage::Request(request) =
        crate::sip::message::parse(datagram.as_bytes()).unwrap()
    else {
        panic!("a request");
    };
    assert_eq!(
        auth.verify_request(t0, None, &request, alice),
        Ok(("alice".into(), Algorithm::Md5))
    );
    let mut bare = request.clone();
    bare.headers
        .retain(|h| !matches!(h, rsip::Header::Authorization(_)));
    assert_eq!(
        auth.verify_request(t0, None, &bare, alice),
        Err(AuthError::Missing)
    );
}

#[test]
fn sha256_and_ha1_credentials() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[0]);
    let response = phone_response(
        Algorithm::Sha256,
        "alice:holdfast:alice-secret",
        &nonce,
        "c1",
        "REGISTER",
        "sip:127.0.0.1",
    );
    let header = format!(
        "Digest username=\"alice\",realm=\"holdfast\",cnonce=\"c1\",nc=00000001,qop=auth,\
         uri=\"sip:127.0.0.1\",nonce=\"{nonce}\",response=\"{}\",algorithm=sha-256",
        response.to_uppercase()
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header, alice),
        Ok("alice".into())
    );
    let sha_ha1 = h(Algorithm::Sha256, "alice:holdfast:alice-secret");
    let md5_ha1 = h(Algorithm::Md5, "alice:holdfast:alice-secret");
    let md5_ha1 = md5_ha1.to_uppercase();
    let sha = |_: &str| Some(Credential::Ha1(&sha_ha1));
    let md5 = |_: &str| Some(Credential::Ha1(&md5_ha1));
    // Each credential form is checked by a fresh authenticator: the same answer twice to one
    // would be a replay.
    assert_eq!(
        authenticator(t0).verify(t0, "REGISTER", &header, sha),
        Ok("alice".into())
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header, md5),
        Err(AuthError::AlgorithmUnavailable)
    );
    let md5_header = baresip_header(&nonce, "alice-secret");
    assert_eq!(
        authenticator(t0).verify(t0, "REGISTER", &md5_header, md5),
        Ok("alice".into())
    );
    // Not offered, so not accepted.
    let mut md5_only = auth.clone().with_algorithms(&[Algorithm::Md5]);
    assert_eq!(
        md5_only.verify(t0, "REGISTER", &header, alice),
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0 + Duration::from_secs(10), false)[1]);
    let header = baresip_header(&nonce, "alice-secret");
    let edge = t0 + Duration::from_secs(10) + LIFETIME;
    assert_eq!(
        auth.verify(edge, "REGISTER", &header, alice),
        Ok("alice".into())
    );
    let late = edge + Duration::from_secs(1);
    assert_eq!(
        auth.verify(late, "REGISTER", &header, alice),
        Err(AuthError::StaleNonce)
    );
    assert!(AuthError::StaleNonce.is_stale());
    let wrong = baresip_header(&nonce, "guess");
    assert_eq!(
        auth.verify(late, "REGISTER", &wrong, alice),
        Err(AuthError::WrongResponse)
    );
    // A nonce dated after `now` was not issued by us.
    assert_eq!(
        auth.verify(t0, "REGISTER", &header, alice),
        Err(AuthError::StaleNonce)
    );
}

#[test]
fn tampered_or_foreign_nonce_is_bad() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[1]);
    let header = baresip_header(&nonce, "alice-secret");
    let later = t0 + Duration::from_secs(20);
    assert_eq!(
        auth.verify(later, "REGISTER", &header, alice),
        Ok("alice".into())
    );
    // Re-dating the nonce (to extend its life) breaks the MAC, as does editing the MAC.
    for at in [15, nonce.len() - 1] {
        let mut forged = nonce.clone().into_bytes();
        forged[at] = if forged[at] == b'9' { b'8' } else { b'9' };
        let forged = String::from_utf8(forged).unwrap();
        let tampered = header.replace(&nonce, &forged);
        assert_eq!(
            auth.verify(later, "REGISTER", &tampered, alice),
            Err(AuthError::BadNonce)
        );
    }
    assert_eq!(
        auth.verify(later, "REGISTER", &header.replace(&nonce, "zz"), alice),
        Err(AuthError::BadNonce)
    );
    // Another process's secret: same shape, other MAC.
    let mut other = DigestAuthenticator::new(t0, "holdfast".into(), [8; 32], LIFETIME);
    assert_eq!(
        other.verify(t0, "REGISTER", &baresip_header(&nonce, "guess"), alice),
        Err(AuthError::BadNonce)
    );
    // ... but a correct response to it (a phone registered before a restart) is stale.
    assert_eq!(
        other.verify(t0, "REGISTER", &header, alice),
        Err(AuthError::StaleNonce)
    );
    assert!(AuthError::BadNonce.is_failure() && AuthError::WrongResponse.is_failure());
}

#[test]
fn refuses_bad_parameters() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[1]);
    let good = baresip_header(&nonce, "alice-secret");
    let mut check = |header: &str| auth.verify(t0, "REGISTER", header, alice);
    assert_eq!(
        check(&good.replace("holdfast", "other")),
        Err(AuthError::WrongRealm)
    );
    assert_eq!(
        check(&format!("{good}, algorithm=MD5-sess")),
        Err(AuthError::UnsupportedAlgorithm)
    );
    assert_eq!(
        check(&good.replace("qop=auth", "qop=auth-int")),
        Err(AuthError::UnsupportedQop)
    );
    assert!(matches!(
        check(&good.replace(", nc=00000001", "")),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        check(&good.replace("nc=00000001", "nc=1")),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        check(&good.replace("uri=", "url=")),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        check(&good.replace("\", cnonce", "\" cnonce")),
        Err(AuthError::Malformed(_))
    ));
    assert_eq!(check("Basic YWxpY2U6eA=="), Err(AuthError::Missing));
    assert_eq!(AuthError::Malformed("x").status_code(), 400);
    assert_eq!(AuthError::UnknownUser.status_code(), 403);
    assert_eq!(AuthError::WrongResponse.status_code(), 403);
    assert_eq!(AuthError::StaleNonce.status_code(), 401);
    assert_eq!(AuthError::Missing.status_code(), 401);
    assert!(!AuthError::Missing.is_failure() && !AuthError::StaleNonce.is_failure());
}

#[test]
fn response_without_qop_is_rfc2069_style() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[1]);
    let ha1 = h(Algorithm::Md5, "alice:holdfast:alice-secret");
    let ha2 = h(Algorithm::Md5, "REGISTER:sip:127.0.0.1");
    let response = h(Algorithm::Md5, &format!("{ha1}:{nonce}:{ha2}"));
    let header = format!(
        "Digest username=\"alice\", realm=\"holdfast\", nonce=\"{nonce}\", \
         uri=\"sip:127.0.0.1\", response=\"{response}\", algorithm=MD5"
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header, alice),
        Ok("alice".into())
    );
    // Without a count the nonce is single-use (RFC 7616 §3.4.5), for a qop answer too.
    assert_eq!(
        auth.verify(t0, "REGISTER", &header, alice),
        Err(AuthError::Replayed)
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 7), alice),
        Err(AuthError::Replayed)
    );
}

/// A header captured from Debian's baresip 1.0 (libre 1.1.0) answering a challenge with
/// nonce `abc123` for `alice` / `secret`. The nonce is not ours, so a right password reads
/// as stale and a wrong one as a bad nonce.
#[test]
fn captured_baresip_header() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let header = "Digest username=\"alice\", realm=\"holdfast\", nonce=\"abc123\", \
        uri=\"sip:127.0.0.1:15090\", response=\"59df60935a2047fcecda1aa3aea7fc52\", \
        cnonce=\"f4f0958c27211697\", qop=auth, nc=00000001";
    let secret = |_: &str| Some(Credential::Password("secret"));
    let wrong = |_: &str| Some(Credential::Password("secret2"));
    assert_eq!(
        auth.verify(t0, "REGISTER", header, secret),
        Err(AuthError::StaleNonce)
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", header, wrong),
        Err(AuthError::BadNonce)
    );
}

/// A baresip-style answer with a chosen `nc`.
fn header_with_nc(nonce: &str, nc: u32) -> String {
    let nc = format!("{nc:08x}");
    let cnonce = "3f5e1a2b9c0d7e64";
    let ha1 = h(Algorithm::Md5, "alice:holdfast:alice-secret");
    let ha2 = h(Algorithm::Md5, "REGISTER:sip:127.0.0.1");
    let response = h(
        Algorithm::Md5,
        &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
    );
    format!(
        "Digest username=\"alice\",realm=\"holdfast\",nonce=\"{nonce}\",uri=\"sip:127.0.0.1\",\
         response=\"{response}\",cnonce=\"{cnonce}\",qop=auth,nc={nc}"
    )
}

#[test]
fn a_nonce_count_is_accepted_once_and_must_grow() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let nonce = nonce_of(&auth.challenge(t0, false)[1]);
    let ok = Ok("alice".to_owned());
    assert_eq!(
        auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 1), alice),
        ok
    );
    // The captured request sent again: refused, answered like a stale nonce, not a guess.
    let replay = auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 1), alice);
    assert_eq!(replay, Err(AuthError::Replayed));
    let error = replay.unwrap_err();
    assert!(error.is_stale() && !error.is_failure() && error.status_code() == 401);
    // A refresh reusing the nonce with the next count is fine; going back is not.
    assert_eq!(
        auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 2), alice),
        ok
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 5), alice),
        ok
    );
    assert_eq!(
        auth.verify(t0, "REGISTER", &header_with_nc(&nonce, 4), alice),
        Err(AuthError::Replayed)
    );
}

fn register_from(nonce: &str, nc: u32) -> rsip::Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
         From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: r1\r\n\
         CSeq: 2 REGISTER\r\nAuthorization: {}\r\nContent-Length: 0\r\n\r\n",
        header_with_nc(nonce, nc)
    );
    match crate::sip::message::parse(text.as_bytes()) {
        Ok(rsip::SipMessage::Request(request)) => request,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_nonce_only_verifies_from_the_address_and_port_it_was_sent_to() {
    let t0 = Instant::now();
    let mut auth = authenticator(t0);
    let phone: SocketAddr = "192.0.2.7:5062".parse().unwrap();
    let attacker: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let challenge = auth.challenge_with(t0, Some(phone), false, &[Algorithm::Md5]);
    let nonce = nonce_of(&challenge[0]);
    // The captured answer, first to arrive, from another port: refused (stale, so an honest
    // phone whose NAT moved it simply retries), and it does not use up the phone's count.
    assert_eq!(
        auth.verify_request(t0, Some(attacker), &register_from(&nonce, 1), alice),
        Err(AuthError::StaleNonce)
    );
    assert_eq!(
        auth.verify_request(t0, Some(phone), &register_from(&nonce, 1), alice),
        Ok(("alice".into(), Algorithm::Md5))
    );
    assert_eq!(
        auth.verify_request(t0, None, &register_from(&nonce, 2), alice),
        Err(AuthError::StaleNonce),
        "an unbound check does not accept a bound nonce"
    );
    assert_eq!(
        auth.claimed_user(&register_from(&nonce, 3)).as_deref(),
        Some("alice")
    );
}

#[test]
fn forgetting_used_nonces_to_make_room_expires_them_instead() {
    let mut used = UsedNonces::default();
    let mac = |i: u32| {
        let mut m = [0u8; NONCE_MAC_LEN];
        m[..4].copy_from_slice(&i.to_be_bytes());
        m
    };
    for i in 0..MAX_TRACKED_NONCES as u32 {
        assert!(used.record(10, mac(i), 1, 0));
    }
    assert!(!used.record(10, mac(3), 1, 0), "remembered: a replay");
    // One more live nonce: the oldest goes, and every nonce of its second counts as expired.
    assert!(used.record(11, mac(u32::MAX), 1, 0));
    assert_eq!(used.counts.len(), MAX_TRACKED_NONCES);
    assert!(used.forgotten(10) && !used.forgotten(11));
    // Expired entries go first and forget nothing live.
    let mut used = UsedNonces::default();
    assert!(used.record(1, mac(1), 1, 0));
    assert!(used.record(400, mac(2), 1, 100));
    assert_eq!(used.counts.len(), 1);
    assert!(!used.forgotten(1));
}
