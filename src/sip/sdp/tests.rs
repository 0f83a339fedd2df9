use super::*;

/// The offer of SIPp's default `uac` scenario.
const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn offer(media: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n{media}")
}

#[test]
fn sipp_default_offer_gets_pcmu() {
    let offer = parse_offer(SIPP.as_bytes()).unwrap();
    assert_eq!(offer.remote, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(offer.formats, [0]);
    assert_eq!(offer.direction, Direction::SendRecv);
    let answer = negotiate(&offer).unwrap();
    assert_eq!((answer.codec, answer.payload_type), (Codec::Pcmu, 0));
    assert_eq!(answer.telephone_event, None);
    let ip: IpAddr = "203.0.113.1".parse().unwrap();
    let sdp = render_answer(&answer, ip, 20000, 42, 1);
    assert_eq!(
        sdp,
        "v=0\r\no=holdfast 42 1 IN IP4 203.0.113.1\r\ns=holdfast\r\nc=IN IP4 203.0.113.1\r\n\
         t=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    // Our answer is itself a valid SDP that reads back the same.
    let back = parse_offer(sdp.as_bytes()).unwrap();
    assert_eq!(back.remote, SocketAddr::new(ip, 20000));
    assert_eq!(negotiate(&back).unwrap().codec, Codec::Pcmu);
}

#[test]
fn pcma_only_offer_without_rtpmap() {
    let answer = negotiate(&parse_offer(offer("m=audio 4000 RTP/AVP 8\r\n").as_bytes()).unwrap());
    assert_eq!(answer.unwrap().codec, Codec::Pcma);
}

#[test]
fn first_supported_codec_wins_and_telephone_event_is_kept() {
    let body = offer(
        "m=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:18 G729/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendonly\r\n",
    );
    let offer = parse_offer(body.as_bytes()).unwrap();
    assert_eq!(offer.telephone_event, Some(101));
    assert_eq!(offer.telephone_event_fmtp.as_deref(), Some("0-15"));
    let answer = negotiate(&offer).unwrap();
    assert_eq!((answer.codec, answer.payload_type), (Codec::Pcma, 8));
    assert_eq!(answer.telephone_event, Some(101));
    assert_eq!(answer.direction, Direction::RecvOnly);
    let sdp = render_answer(&answer, "::1".parse().unwrap(), 30000, 7, 2);
    assert!(sdp.contains("c=IN IP6 ::1\r\n"), "{sdp}");
    assert!(sdp.contains("m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"));
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
    assert!(sdp.ends_with("a=ptime:20\r\na=recvonly\r\n"));
}

#[test]
fn dynamic_payload_type_mapped_to_pcmu_is_answered_with_it() {
    let body = offer("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\n");
    let answer = negotiate(&parse_offer(body.as_bytes()).unwrap()).unwrap();
    assert_eq!((answer.codec, answer.payload_type), (Codec::Pcmu, 96));
}

#[test]
fn no_common_codec_is_488() {
    let body = offer(
        "m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/8000\r\n",
    );
    let err = negotiate(&parse_offer(body.as_bytes()).unwrap()).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.status_code(), 488);
    // A static type remapped to another clock rate is not G.711.
    let body = offer("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/16000\r\n");
    assert!(negotiate(&parse_offer(body.as_bytes()).unwrap()).is_err());
}

#[test]
fn media_level_connection_and_direction_override_session_level() {
    let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\na=inactive\r\n\
         m=video 5000 RTP/AVP 31\r\nc=IN IP4 192.0.2.99\r\na=sendonly\r\n\
         m=audio 4000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7/127\r\n";
    let offer = parse_offer(body.as_bytes()).unwrap();
    assert_eq!(offer.remote, "198.51.100.7:4000".parse().unwrap());
    assert_eq!(offer.direction, Direction::Inactive);
}

#[test]
fn rejects_unusable_and_malformed_offers() {
    let cases: Vec<(String, SdpError)> = vec![
        (offer("m=audio 0 RTP/AVP 0\r\n"), SdpError::AudioDisabled),
        (
            offer("m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"),
            SdpError::UnsupportedTransport("UDP/TLS/RTP/SAVP".into()),
        ),
        (offer("m=video 4000 RTP/AVP 31\r\n"), SdpError::NoAudio),
        (
            offer("m=audio 4000 RTP/AVP\r\n"),
            SdpError::MalformedLine { line: 6 },
        ),
        (
            offer("m=audio 4000 RTP/AVP 0 300\r\n"),
            SdpError::MalformedLine { line: 6 },
        ),
        (
            offer("m=audio 99999 RTP/AVP 0\r\n"),
            SdpError::MalformedLine { line: 6 },
        ),
        (offer("garbage\r\n"), SdpError::MalformedLine { line: 6 }),
        (
            offer("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n"),
            SdpError::MalformedLine { line: 7 },
        ),
        (
            "v=0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n".into(),
            SdpError::MissingConnection,
        ),
        ("v=1\r\n".into(), SdpError::BadVersion),
        (String::new(), SdpError::BadVersion),
        (
            offer("c=IN IP4 not-an-ip\r\n"),
            SdpError::MalformedLine { line: 6 },
        ),
        (
            offer("c=IN IP6 192.0.2.1\r\n"),
            SdpError::MalformedLine { line: 6 },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_offer(body.as_bytes()), Err(expected), "{body:?}");
    }
    assert_eq!(parse_offer(b"v=0\r\n\xff"), Err(SdpError::NotUtf8));
    assert_eq!(
        parse_offer(&vec![b'a'; MAX_SDP_SIZE + 1]),
        Err(SdpError::TooLarge)
    );
    let many = (0..=MAX_FORMATS)
        .map(|i| (i % 128).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let body = offer(&format!("m=audio 4000 RTP/AVP {many}\r\n"));
    assert_eq!(parse_offer(body.as_bytes()), Err(SdpError::TooManyFormats));
}

#[test]
fn our_offer_lists_both_codecs_and_dtmf() {
    let sdp = render_offer(
        &[Codec::Pcmu, Codec::Pcma],
        &[],
        "192.0.2.1".parse().unwrap(),
        10000,
        9,
        1,
    );
    let parsed = parse_offer(sdp.as_bytes()).unwrap();
    assert_eq!(parsed.formats, [0, 8, TELEPHONE_EVENT_PT]);
    assert_eq!(parsed.telephone_event, Some(TELEPHONE_EVENT_PT));
    assert_eq!(parsed.telephone_event_fmtp.as_deref(), Some("0-16"));
    assert_eq!(parsed.ptime, Some(20));
    assert_eq!(negotiate(&parsed).unwrap().codec, Codec::Pcmu);
    assert_eq!(Codec::Pcma.payload_type(), 8);
}

const KEY_80: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
const KEY_32: &str = "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

fn savp_offer(crypto: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
         m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{crypto}"
    )
}

#[test]
fn an_srtp_offer_is_answered_with_srtp_and_a_key_of_ours_for_the_same_tag() {
    let body = savp_offer(&format!(
        "a=crypto:9 AES_256_CM_HMAC_SHA1_80 inline:xxxx\r\na=crypto:{KEY_32}\r\na=crypto:{KEY_80}\r\n"
    ));
    let offer = parse_offer(body.as_bytes()).unwrap();
    assert!(offer.secure);
    assert_eq!(offer.crypto.len(), 2, "the unknown suite is left out");
    let mut answer = negotiate(&offer).unwrap();
    answer.srtp = answer_keys(&offer, [7; crate::srtp::INLINE_LEN]).unwrap();
    let keys = answer.srtp.expect("SRTP");
    // RFC 4568 §7.1.2: the first usable line in the offerer's order, its tag echoed.
    assert_eq!(keys.theirs.tag, 2);
    assert_eq!(keys.ours.tag, 2);
    assert_eq!(keys.ours.key.suite(), keys.theirs.key.suite());
    assert_ne!(keys.ours.key, keys.theirs.key, "our own key");
    let text = render_answer(&answer, "192.0.2.1".parse().unwrap(), 10000, 1, 1);
    assert!(text.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{text}");
    assert!(text.contains(&format!("a=crypto:{}\r\n", keys.ours.render())));
    // Our answer reads back as the SRTP description it is.
    let back = parse_offer(text.as_bytes()).unwrap();
    assert!(back.secure);
    assert_eq!(back.crypto, vec![keys.ours]);
}

#[test]
fn srtp_without_a_usable_key_is_488_and_plain_rtp_has_no_keys() {
    let none = parse_offer(savp_offer("").as_bytes()).unwrap();
    assert_eq!(answer_keys(&none, [0; 30]), Err(SdpError::NoCrypto));
    assert_eq!(SdpError::NoCrypto.status_code(), 488);
    let mki = savp_offer(&format!("a=crypto:{KEY_80}|2^20|1:4\r\n"));
    let mki = parse_offer(mki.as_bytes()).unwrap();
    assert_eq!(
        answer_keys(&mki, [0; 30]),
        Err(SdpError::NoCrypto),
        "MKI is not spoken"
    );
    // A key on a plain RTP line (some phones do) does not make the stream SRTP.
    let plain = savp_offer(&format!("a=crypto:{KEY_80}\r\n")).replace("RTP/SAVP", "RTP/AVP");
    let plain = parse_offer(plain.as_bytes()).unwrap();
    assert_eq!(answer_keys(&plain, [0; 30]), Ok(None));
}

#[test]
fn our_srtp_offer_carries_its_keys() {
    let key = crate::srtp::MasterKey::generate(
        crate::srtp::Suite::AesCm128HmacSha1_80,
        [3; crate::srtp::INLINE_LEN],
    );
    let attr = crypto::CryptoAttr { tag: 1, key };
    let sdp = render_offer(
        &[Codec::Pcmu],
        &[attr],
        "192.0.2.1".parse().unwrap(),
        10000,
        9,
        1,
    );
    assert!(sdp.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{sdp}");
    let parsed = parse_offer(sdp.as_bytes()).unwrap();
    assert!(parsed.secure);
    assert_eq!(parsed.crypto, vec![attr]);
}
