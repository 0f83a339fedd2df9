//! The client side of Digest (RFC 3261 §22.2–§22.4, RFC 8760): answering a trunk's `401`/`407`
//! challenge to an INVITE holdfast sends (callbacks, docs/behaviour.md §6) with configured credentials.
//!
//! Pure: the challenge header value and the request line go in, the credentials header value
//! comes out. `qop=auth` is used when the challenge offers it (RFC 7616 §3.4), else the
//! RFC 2069 form without `qop`; `auth-int` and the `-sess` algorithms are not supported.
//! The challenge's `opaque` is returned unchanged (RFC 7616 §3.4, RFC 2617 §3.2.2): servers
//! that keep state in it refuse credentials without it.

use super::{Algorithm, params, quote};

/// Credentials answering `challenge` (a `WWW-Authenticate` or `Proxy-Authenticate` value)
/// for `method` on `uri`, or `None` if the challenge is not a Digest one holdfast can answer.
/// `cnonce` must be fresh per request (any unguessable token).
pub fn digest_credentials(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
) -> Option<String> {
    let params = params::parse(challenge).ok()?;
    let realm = params.realm?;
    let nonce = params.nonce?;
    let algorithm = match params.algorithm.as_deref() {
        None => Algorithm::Md5,
        Some(token) => Algorithm::from_token(token)?,
    };
    let qop_auth = params
        .qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
    let ha1 = algorithm.hash_hex(&[username, &realm, password]);
    let ha2 = algorithm.hash_hex(&[method, uri]);
    let nc = "00000001";
    let response = if qop_auth {
        algorithm.hash_hex(&[&ha1, &nonce, nc, cnonce, "auth", &ha2])
    } else {
        algorithm.hash_hex(&[&ha1, &nonce, &ha2])
    };
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(username),
        quote(&realm),
        quote(&nonce),
        quote(uri),
        quote(&response),
        algorithm.token()
    );
    if qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce)));
    }
    if let Some(opaque) = params.opaque {
        out.push_str(&format!(", opaque={}", quote(&opaque)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_an_md5_challenge_with_qop_as_rfc_2617_computes_it() {
        let challenge = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let header = digest_credentials(
            challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        )
        .unwrap();
        // RFC 2617 §3.5's worked example.
        assert!(
            header.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{header}"
        );
        assert!(header.contains("qop=auth, nc=00000001"), "{header}");
        assert!(
            header.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#),
            "the challenge's opaque comes back unchanged: {header}"
        );
    }

    #[test]
    fn answers_without_qop_and_refuses_other_schemes() {
        let header = digest_credentials(
            r#"Digest realm="r", nonce="n""#,
            "INVITE",
            "sip:1@h",
            "u",
            "p",
            "c",
        )
        .unwrap();
        assert!(!header.contains("qop"), "{header}");
        assert!(
            !header.contains("opaque"),
            "no opaque when none was sent: {header}"
        );
        assert!(
            digest_credentials(r#"Basic realm="r""#, "INVITE", "sip:1@h", "u", "p", "c").is_none()
        );
        assert!(
            digest_credentials(
                r#"Digest realm="r", nonce="n", algorithm=MD5-sess"#,
                "INVITE",
                "sip:1@h",
                "u",
                "p",
                "c"
            )
            .is_none()
        );
    }
}
