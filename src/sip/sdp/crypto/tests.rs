use super::*;

/// Keys of RFC 4568's examples (§4.5 and §7.1), 30 bytes each.
const RFC_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const RFC_KEY_2: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

fn attr(value: &str) -> CryptoAttr {
    CryptoAttr::parse(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

fn refused(value: &str) -> CryptoError {
    CryptoAttr::parse(value).expect_err(value)
}

/// The two lines baresip's SDES offer carries, one per suite: parsed, and rendered back the same.
#[test]
fn baresip_lines_parse_and_render_back() {
    let lines = [
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}"),
        format!("2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY_2}"),
    ];
    let parsed: Vec<CryptoAttr> = lines.iter().map(|line| attr(line)).collect();
    assert_eq!(parsed[0].tag, 1);
    assert_eq!(parsed[0].key.suite(), Suite::AesCm128HmacSha1_80);
    assert_eq!(parsed[0].key.to_inline(), RFC_KEY);
    assert_eq!(parsed[1].tag, 2);
    assert_eq!(parsed[1].key.suite(), Suite::AesCm128HmacSha1_32);
    assert_eq!(
        parsed[1].key,
        MasterKey::from_inline(Suite::AesCm128HmacSha1_32, RFC_KEY_2).unwrap()
    );
    for (line, attr) in lines.iter().zip(&parsed) {
        assert_eq!(&attr.render(), line);
        assert_eq!(CryptoAttr::parse(&attr.render()).as_ref(), Ok(attr));
    }
}

/// Linphone adds a lifetime of 2^31; other phones a plain number. Both are read and dropped.
#[test]
fn lifetimes_are_accepted_and_ignored() {
    let linphone = attr(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^31"));
    assert_eq!(
        linphone.render(),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}")
    );
    let decimal = attr(&format!(
        "7 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}|1048576"
    ));
    assert_eq!(
        (decimal.tag, decimal.key.suite()),
        (7, Suite::AesCm128HmacSha1_32)
    );
    assert_eq!(
        (decimal.key.key(), decimal.key.salt()),
        (linphone.key.key(), linphone.key.salt())
    );
    for bad in ["|", "|2^", "|^20", "|2^20x", "|two", "|2^20|2^20", "|-5"] {
        let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}{bad}");
        assert_eq!(refused(&value), CryptoError::BadLifetime, "{value}");
    }
}

/// RFC 4568 §4.5's own example has an MKI: that line is refused, with or without a lifetime.
#[test]
fn an_mki_is_refused() {
    for value in [
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:32"),
        format!("1 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY_2}|2^20|1:32"),
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|1:4"),
    ] {
        assert_eq!(refused(&value), CryptoError::Mki, "{value}");
    }
}

#[test]
fn bad_keys_are_refused() {
    for key in [
        "",
        "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB!", // not base64
        "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB",  // 39 characters
        "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRAA", // 42 characters
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 29 bytes
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 32 bytes
    ] {
        let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}");
        assert_eq!(refused(&value), CryptoError::BadKey, "{key:?}");
    }
}

#[test]
fn unsupported_suites_are_refused() {
    for suite in [
        "AEAD_AES_256_GCM",
        "AEAD_AES_128_GCM",
        "AES_256_CM_HMAC_SHA1_80",
        "AES_192_CM_HMAC_SHA1_32",
        "F8_128_HMAC_SHA1_80",
        "aes_cm_128_hmac_sha1_80",
    ] {
        let value = format!("1 {suite} inline:{RFC_KEY}");
        assert_eq!(refused(&value), CryptoError::UnsupportedSuite, "{suite}");
    }
}

#[test]
fn malformed_values_are_refused() {
    for value in [
        "",
        "   ",
        "1",
        "1 AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_80 inline:x",
    ] {
        assert!(CryptoAttr::parse(value).is_err(), "{value:?}");
    }
    assert_eq!(refused("1 AES_CM_128_HMAC_SHA1_80"), CryptoError::Malformed);
    for tag in ["x", "-1", "+1", "1234567890", "1.0", "١"] {
        let value = format!("{tag} AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}");
        assert_eq!(refused(&value), CryptoError::BadTag, "{tag}");
    }
    assert_eq!(
        attr(&format!(
            "999999999 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}"
        ))
        .tag,
        999_999_999
    );
    for method in [
        format!("uri:{RFC_KEY}"),
        format!("inline{RFC_KEY}"),
        format!("INLINE:{RFC_KEY}"),
    ] {
        let value = format!("1 AES_CM_128_HMAC_SHA1_80 {method}");
        assert_eq!(
            refused(&value),
            CryptoError::UnsupportedKeyMethod,
            "{method}"
        );
    }
    let two_keys =
        format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4;inline:{RFC_KEY_2}|2^20|2:4");
    assert_eq!(refused(&two_keys), CryptoError::SeveralKeys);
}

#[test]
fn only_the_window_size_hint_is_an_acceptable_session_parameter() {
    let base = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}");
    assert_eq!(attr(&format!("{base} WSH=128")).tag, 1);
    // Whitespace as an SDP line may leave it: repeated spaces, a stray carriage return.
    assert_eq!(
        attr(&format!(
            "1  AES_CM_128_HMAC_SHA1_80\tinline:{RFC_KEY}  WSH=64\r"
        ))
        .tag,
        1
    );
    for param in [
        "UNENCRYPTED_SRTP",
        "UNENCRYPTED_SRTCP",
        "UNAUTHENTICATED_SRTP",
        "KDR=0",
        "KDR=24",
        "FEC_ORDER=FEC_SRTP",
        "FEC_KEY=inline:x",
        "WSH=",
        "WSH=big",
        "-",
    ] {
        assert_eq!(
            refused(&format!("{base} {param}")),
            CryptoError::UnsupportedSessionParam,
            "{param}"
        );
    }
}

#[test]
fn choose_takes_the_first_acceptable_line_in_offer_order() {
    let offer = [
        "1 AEAD_AES_256_GCM inline:e7FgWHk8CnRHkSlVRTCfxF1Wlw5o9NTuU9TkwSY+NVpMYnOkn5p2YNyvBaI="
            .to_string(),
        format!("2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY_2}"),
        format!("3 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4"),
        format!("4 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}"),
    ];
    // The caller keeps the lines that parse, in order.
    let usable: Vec<CryptoAttr> = offer
        .iter()
        .filter_map(|v| CryptoAttr::parse(v).ok())
        .collect();
    assert_eq!(usable.iter().map(|a| a.tag).collect::<Vec<_>>(), [2, 4]);
    // The offerer preferred the 32-bit tag, so that is the one answered.
    assert_eq!(choose(&usable).map(|a| a.tag), Some(2));
    let reversed: Vec<CryptoAttr> = usable.iter().rev().cloned().collect();
    assert_eq!(choose(&reversed).map(|a| a.tag), Some(4));
    assert_eq!(choose(&[]), None);
}

#[test]
fn an_answer_keeps_tag_and_suite_with_a_new_key() {
    let offered = attr(&format!("5 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}|2^31"));
    let answer = offered.answer(std::array::from_fn(|i| i as u8 * 3));
    assert_eq!(
        (answer.tag, answer.key.suite()),
        (5, Suite::AesCm128HmacSha1_32)
    );
    assert_ne!(answer.key, offered.key);
    assert_eq!(
        answer.render(),
        "5 AES_CM_128_HMAC_SHA1_32 inline:AAMGCQwPEhUYGx4hJCcqLTAzNjk8P0JFSEtOUVRX"
    );
}

/// Arbitrary text, including multi-byte characters where ASCII is expected, is an error.
#[test]
fn garbage_never_panics() {
    let pieces = [
        "1",
        " ",
        "AES_CM_128_HMAC_SHA1_80",
        "inline:",
        RFC_KEY,
        "|",
        "2^",
        ":",
        ";",
        "é",
        "\u{0}",
    ];
    let mut state = 7u32;
    for _ in 0..5000 {
        let mut value = String::new();
        for _ in 0..(state % 9) {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            value.push_str(pieces[(state >> 16) as usize % pieces.len()]);
        }
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        if let Ok(parsed) = CryptoAttr::parse(&value) {
            assert_eq!(CryptoAttr::parse(&parsed.render()), Ok(parsed));
        }
    }
}
