use super::*;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn array<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().unwrap()
}

/// The master key and salt of RFC 3711 §B.3, also used by the reference implementation's
/// known-answer packet.
fn rfc_master(suite: Suite) -> MasterKey {
    MasterKey::new(
        suite,
        array("E1F97A0D3E018BE0D64FA32C06DE4139"),
        array("0EC675AD498AFEEBB6960B3AABE6"),
    )
}

fn other_master(suite: Suite) -> MasterKey {
    MasterKey::generate(
        suite,
        std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a),
    )
}

/// An RTP packet: version 2, payload type 0, 20 bytes of payload derived from `seq`.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 0x00];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend((0..20).map(|i| (seq as u8).wrapping_add(i)));
    packet
}

fn pair(suite: Suite) -> (SrtpSender, SrtpReceiver) {
    let key = rfc_master(suite);
    (SrtpSender::new(&key), SrtpReceiver::new(&key))
}

fn protect(sender: &mut SrtpSender, packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sender.protect(packet, &mut out).unwrap();
    out
}

fn unprotect(receiver: &mut SrtpReceiver, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut out = Vec::new();
    receiver.unprotect(packet, &mut out).map(|()| out)
}

#[test]
fn suite_names_and_tags() {
    for suite in Suite::ALL {
        assert_eq!(Suite::from_name(suite.name()), Some(suite));
        assert_eq!(suite.to_string(), suite.name());
    }
    assert_eq!(Suite::AesCm128HmacSha1_80.name(), "AES_CM_128_HMAC_SHA1_80");
    assert_eq!(Suite::AesCm128HmacSha1_32.name(), "AES_CM_128_HMAC_SHA1_32");
    assert_eq!(Suite::AesCm128HmacSha1_80.tag_len(), 10);
    assert_eq!(Suite::AesCm128HmacSha1_32.tag_len(), 4);
    for unknown in [
        "",
        "aes_cm_128_hmac_sha1_80",
        "AES_256_CM_HMAC_SHA1_80",
        "AEAD_AES_128_GCM",
    ] {
        assert_eq!(Suite::from_name(unknown), None, "{unknown}");
    }
}

#[test]
fn inline_keys_round_trip_and_bad_ones_are_refused() {
    let key = rfc_master(Suite::AesCm128HmacSha1_80);
    let inline = key.to_inline();
    assert_eq!(inline.len(), 40);
    assert_eq!(
        MasterKey::from_inline(Suite::AesCm128HmacSha1_80, &inline),
        Ok(key)
    );
    // The inline form is key then salt.
    let decoded = BASE64.decode(&inline).unwrap();
    assert_eq!(decoded[..16], key.key()[..]);
    assert_eq!(decoded[16..], key.salt()[..]);

    let generated =
        MasterKey::generate(Suite::AesCm128HmacSha1_32, std::array::from_fn(|i| i as u8));
    assert_eq!(
        generated.key(),
        &std::array::from_fn::<u8, 16, _>(|i| i as u8)
    );
    assert_eq!(
        generated.salt(),
        &std::array::from_fn::<u8, 14, _>(|i| i as u8 + 16)
    );
    assert_eq!(generated.suite(), Suite::AesCm128HmacSha1_32);

    let bad = [
        String::new(),
        inline[..39].to_string(),
        format!("{inline}A"),
        format!("{}!", &inline[..39]),
        BASE64.encode([7u8; 29]),
        BASE64.encode([7u8; 31]),
        BASE64.encode([7u8; 24]),
        "é".repeat(20),
    ];
    for text in bad {
        assert_eq!(
            MasterKey::from_inline(Suite::AesCm128HmacSha1_80, &text),
            Err(SrtpError::BadKey),
            "{text:?}"
        );
    }
}

#[test]
fn debug_never_shows_key_material() {
    let key = rfc_master(Suite::AesCm128HmacSha1_80);
    let shown = format!(
        "{key:?} {:?} {:?}",
        SrtpSender::new(&key),
        SrtpReceiver::new(&key)
    );
    assert!(shown.contains("AesCm128HmacSha1_80"));
    // The key starts with 0xE1 = 225.
    assert!(!shown.contains("225") && !shown.contains("E1"), "{shown}");
    assert!(!shown.contains(&key.to_inline()));
}

/// RFC 3711 §B.3: the session encryption key, salt and authentication key. The RFC prints 94
/// bytes of the label-1 keystream; the first 20 are the HMAC-SHA1 key.
#[test]
fn rfc3711_b3_key_derivation() {
    let master = rfc_master(Suite::AesCm128HmacSha1_80);
    let mut key = [0u8; 16];
    derive(&master, LABEL_ENCRYPTION, &mut key);
    assert_eq!(key[..], hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    derive(&master, LABEL_SALT, &mut salt);
    assert_eq!(salt[..], hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0u8; 94];
    derive(&master, LABEL_AUTHENTICATION, &mut auth);
    assert_eq!(
        auth[..],
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

/// RFC 3711 §B.2: the whole 1 044 512-byte keystream segment, checked at both ends, with the
/// IV built by §4.1.1 from the (already shifted) salt, SSRC 0 and index 0.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let cipher = Aes128::new(&array::<16>("2B7E151628AED2A6ABF7158809CF4F3C").into());
    let salt = array::<14>("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
    let iv = packet_iv(&salt, 0, 0);
    assert_eq!(iv[..], hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut stream = vec![0u8; 1_044_512];
    apply_keystream(&cipher, iv, &mut stream).unwrap();
    assert_eq!(
        stream[..48],
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
    assert_eq!(
        stream[stream.len() - 48..],
        hex(
            "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
             6A2CC3787889374FBEB4C81B17BA6C44"
        )
    );
}

#[test]
fn the_iv_mixes_ssrc_and_index_into_the_salt() {
    let salt = [0u8; 14];
    let iv = packet_iv(&salt, 0xCAFE_BABE, 0x0000_1234_5678_9ABC);
    assert_eq!(iv[..], hex("00000000 CAFEBABE 12345678 9ABC 0000"));
    let iv = packet_iv(&[0xff; 14], 0xffff_ffff, 0xffff_ffff_ffff);
    assert_eq!(iv[..], hex("FFFFFFFF 00000000 00000000 0000 0000"));
}

/// The known-answer packet of the reference C implementation (libsrtp's `srtp_validate`):
/// RFC 3711 §B.3's master key, SSRC 0xCAFEBABE, sequence 0x1234, 16 bytes of 0xAB.
#[test]
fn known_answer_packet_for_both_suites() {
    let plain = hex("800F1234DECAFBADCAFEBABE ABABABABABABABABABABABABABABABAB");
    let cipher = hex("800F1234DECAFBADCAFEBABE 4E55DC4CE79978D88CA4D215949D2402");
    let tag = hex("B78D6ACC99EA179B8DBB");
    for suite in Suite::ALL {
        let (mut sender, mut receiver) = pair(suite);
        let protected = protect(&mut sender, &plain);
        let mut expected = cipher.clone();
        expected.extend_from_slice(&tag[..suite.tag_len()]);
        assert_eq!(protected, expected, "{suite}");
        assert_eq!(
            unprotect(&mut receiver, &protected),
            Ok(plain.clone()),
            "{suite}"
        );
    }
}

#[test]
fn round_trip_keeps_headers_with_csrcs_and_extensions_in_the_clear() {
    let mut with_extras = vec![0x92, 0x00, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 9];
    with_extras.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // two CSRCs
    with_extras.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0, 0]); // one-word extension
    with_extras.extend_from_slice(b"payload bytes");
    for suite in Suite::ALL {
        let (mut sender, mut receiver) = pair(suite);
        for packet in [rtp(1, 42), rtp(2, 42), with_extras.clone()] {
            let protected = protect(&mut sender, &packet);
            assert_eq!(protected.len(), packet.len() + suite.tag_len());
            let header = parse_header(&packet).unwrap().len;
            assert_eq!(protected[..header], packet[..header]);
            assert_ne!(protected[header..packet.len()], packet[header..]);
            assert_eq!(unprotect(&mut receiver, &protected), Ok(packet));
        }
    }
}

#[test]
fn any_flipped_bit_fails_authentication_and_leaves_no_trace() {
    for suite in Suite::ALL {
        let (mut sender, mut receiver) = pair(suite);
        let protected = protect(&mut sender, &rtp(100, 7));
        for bit in 0..protected.len() * 8 {
            let mut bad = protected.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = unprotect(&mut receiver, &bad);
            // Flipping a version bit or a length-bearing bit may fail parsing first.
            assert!(result.is_err(), "{suite} bit {bit}");
            if bit >= 12 * 8 {
                assert_eq!(result, Err(SrtpError::AuthFailed), "{suite} bit {bit}");
            }
        }
        // None of those moved the replay window: the genuine packet is still new.
        assert_eq!(unprotect(&mut receiver, &protected), Ok(rtp(100, 7)));
        assert_eq!(receiver.roc(7), Some(0));
    }
}

#[test]
fn wrong_key_or_wrong_suite_fails_authentication() {
    let mut sender = SrtpSender::new(&rfc_master(Suite::AesCm128HmacSha1_80));
    let protected = protect(&mut sender, &rtp(5, 1));
    let mut other = SrtpReceiver::new(&other_master(Suite::AesCm128HmacSha1_80));
    assert_eq!(
        unprotect(&mut other, &protected),
        Err(SrtpError::AuthFailed)
    );
    let mut short_tags = SrtpReceiver::new(&rfc_master(Suite::AesCm128HmacSha1_32));
    assert_eq!(
        unprotect(&mut short_tags, &protected),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn replays_and_packets_behind_the_window_are_refused() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let packets: Vec<Vec<u8>> = (1000..1100)
        .map(|seq| protect(&mut sender, &rtp(seq, 3)))
        .collect();
    assert!(unprotect(&mut receiver, &packets[0]).is_ok());
    assert_eq!(
        unprotect(&mut receiver, &packets[0]),
        Err(SrtpError::Replay)
    );
    // Out of order within the window: each accepted exactly once.
    assert!(unprotect(&mut receiver, &packets[70]).is_ok());
    for seq in [69, 10, 7] {
        assert!(unprotect(&mut receiver, &packets[seq]).is_ok(), "{seq}");
        assert_eq!(
            unprotect(&mut receiver, &packets[seq]),
            Err(SrtpError::Replay),
            "{seq}"
        );
    }
    assert_eq!(
        unprotect(&mut receiver, &packets[70]),
        Err(SrtpError::Replay)
    );
    // Packet 6 is 64 behind the newest, outside the window; packet 8 is 62 behind, inside.
    assert_eq!(
        unprotect(&mut receiver, &packets[6]),
        Err(SrtpError::Replay)
    );
    assert!(unprotect(&mut receiver, &packets[8]).is_ok());
    // A jump ahead of the whole window clears it.
    assert!(unprotect(&mut receiver, &packets[99]).is_ok());
    assert!(unprotect(&mut receiver, &packets[98]).is_ok());
    assert_eq!(
        unprotect(&mut receiver, &packets[35]),
        Err(SrtpError::Replay)
    );
}

#[test]
fn the_sender_refuses_to_reuse_an_index() {
    let (mut sender, _) = pair(Suite::AesCm128HmacSha1_80);
    let mut out = Vec::new();
    sender.protect(&rtp(9, 1), &mut out).unwrap();
    assert_eq!(sender.protect(&rtp(9, 1), &mut out), Err(SrtpError::Replay));
    assert!(out.is_empty());
    // Another SSRC has its own index space.
    sender.protect(&rtp(9, 2), &mut out).unwrap();
}

#[test]
fn sequence_wrap_steps_the_roc_on_both_sides() {
    for suite in Suite::ALL {
        let (mut sender, mut receiver) = pair(suite);
        let seqs = (65_530..=65_535).chain(0..6);
        let packets: Vec<(u16, Vec<u8>)> = seqs
            .map(|seq| (seq, protect(&mut sender, &rtp(seq, 11))))
            .collect();
        assert_eq!(sender.roc(11), Some(1));
        for (seq, packet) in &packets {
            assert_eq!(
                unprotect(&mut receiver, packet),
                Ok(rtp(*seq, 11)),
                "{suite} {seq}"
            );
        }
        assert_eq!(receiver.roc(11), Some(1));
    }
}

#[test]
fn late_packets_from_before_the_wrap_use_the_old_roc() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let before = protect(&mut sender, &rtp(65_534, 5));
    let last = protect(&mut sender, &rtp(65_535, 5));
    let after = protect(&mut sender, &rtp(0, 5));
    let next = protect(&mut sender, &rtp(1, 5));
    assert_eq!(unprotect(&mut receiver, &before), Ok(rtp(65_534, 5)));
    assert_eq!(unprotect(&mut receiver, &after), Ok(rtp(0, 5)));
    assert_eq!(receiver.roc(5), Some(1));
    // 65535 arrives late, after 0: it belongs to ROC 0.
    assert_eq!(unprotect(&mut receiver, &last), Ok(rtp(65_535, 5)));
    assert_eq!(unprotect(&mut receiver, &next), Ok(rtp(1, 5)));
    assert_eq!(unprotect(&mut receiver, &last), Err(SrtpError::Replay));
}

#[test]
fn a_receiver_may_join_just_before_the_wrap() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_32);
    let packets: Vec<Vec<u8>> = [65_533, 65_534, 65_535, 0, 1]
        .iter()
        .map(|&seq| protect(&mut sender, &rtp(seq, 8)))
        .collect();
    // The receiver's first packet is 65534; 65533 comes after it, still within the window.
    assert!(unprotect(&mut receiver, &packets[1]).is_ok());
    assert!(unprotect(&mut receiver, &packets[0]).is_ok());
    assert_eq!(receiver.roc(8), Some(0));
    for packet in &packets[2..] {
        assert!(unprotect(&mut receiver, packet).is_ok());
    }
    assert_eq!(receiver.roc(8), Some(1));
}

#[test]
fn a_packet_from_before_the_first_roc_is_refused() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let early = protect(&mut sender, &rtp(10, 4));
    // The sender makes the same guess as the receiver and will not send what it would refuse.
    let mut out = Vec::new();
    assert_eq!(
        sender.protect(&rtp(40_000, 4), &mut out),
        Err(SrtpError::Replay)
    );
    let later = protect(
        &mut SrtpSender::new(&rfc_master(Suite::AesCm128HmacSha1_80)),
        &rtp(40_000, 4),
    );
    assert!(unprotect(&mut receiver, &early).is_ok());
    // 40000 after 10 reads as ROC −1, which does not exist: refused, not wrapped.
    assert_eq!(unprotect(&mut receiver, &later), Err(SrtpError::Replay));
}

#[test]
fn several_ssrcs_and_the_least_recently_used_is_forgotten() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let first = protect(&mut sender, &rtp(500, 0));
    assert!(unprotect(&mut receiver, &first).is_ok());
    for ssrc in 1..=MAX_STREAMS as u32 {
        let packet = protect(&mut sender, &rtp(7, ssrc));
        assert!(unprotect(&mut receiver, &packet).is_ok(), "{ssrc}");
    }
    assert_eq!(receiver.roc(0), None);
    assert_eq!(receiver.roc(1), Some(0));
    // Streams do not share index spaces: sequence 7 of each SSRC was accepted once.
    let again = protect(&mut sender, &rtp(8, 3));
    assert!(unprotect(&mut receiver, &again).is_ok());
}

#[test]
fn out_is_reused_without_reallocation() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let mut protected = Vec::with_capacity(MAX_PACKET_LEN);
    let mut plain = Vec::with_capacity(MAX_PACKET_LEN);
    let (sent_at, received_at) = (protected.as_ptr(), plain.as_ptr());
    for seq in 0..2000u16 {
        sender.protect(&rtp(seq, 77), &mut protected).unwrap();
        receiver.unprotect(&protected, &mut plain).unwrap();
        assert_eq!(plain, rtp(seq, 77));
    }
    assert_eq!((protected.as_ptr(), plain.as_ptr()), (sent_at, received_at));
}

#[test]
fn oversized_packets_are_refused() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let mut huge = rtp(1, 1);
    huge.resize(MAX_PACKET_LEN + 1, 0);
    let mut out = Vec::new();
    assert_eq!(sender.protect(&huge, &mut out), Err(SrtpError::TooLong));
    assert_eq!(receiver.unprotect(&huge, &mut out), Err(SrtpError::TooLong));
}

#[test]
fn malformed_headers_are_refused() {
    let (mut sender, mut receiver) = pair(Suite::AesCm128HmacSha1_80);
    let mut out = Vec::new();
    let mut v1 = rtp(1, 1);
    v1[0] = 0x40;
    assert_eq!(sender.protect(&v1, &mut out), Err(SrtpError::NotRtp));
    // Fifteen CSRCs declared, none present.
    let mut csrcs = rtp(1, 1);
    csrcs[0] = 0x8f;
    assert_eq!(sender.protect(&csrcs, &mut out), Err(SrtpError::TooShort));
    // An extension longer than the packet.
    let mut extension = rtp(1, 1);
    extension[0] = 0x90;
    extension[14..16].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(
        sender.protect(&extension, &mut out),
        Err(SrtpError::TooShort)
    );
    // A header that only fits if the tag is counted as header.
    let mut tight = protect(&mut sender, &rtp(2, 1));
    tight[0] = 0x90;
    tight[14..16].copy_from_slice(&[0x00, 0x07]);
    assert_eq!(
        receiver.unprotect(&tight, &mut out),
        Err(SrtpError::TooShort)
    );
    assert!(out.is_empty());
}

/// Every length from 0 to 64 with a spread of contents: errors, never a panic, never a packet.
#[test]
fn garbage_never_panics_or_passes() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    for suite in Suite::ALL {
        let (mut sender, mut receiver) = pair(suite);
        let mut out = Vec::new();
        for len in 0..=64 {
            let mut inputs = vec![
                vec![0u8; len],
                vec![0xff; len],
                vec![0x80; len],
                vec![0x9f; len],
            ];
            for _ in 0..32 {
                let mut bytes: Vec<u8> = (0..len).map(|_| next()).collect();
                if let Some(first) = bytes.first_mut() {
                    *first = 0x80 | (*first & 0x3f); // mostly valid version bits
                }
                inputs.push(bytes);
            }
            for input in &inputs {
                assert!(
                    receiver.unprotect(input, &mut out).is_err(),
                    "{suite} {input:02x?}"
                );
                assert!(out.is_empty());
                match sender.protect(input, &mut out) {
                    Ok(()) => assert_eq!(out.len(), input.len() + suite.tag_len()),
                    Err(_) => assert!(out.is_empty()),
                }
            }
        }
    }
}
