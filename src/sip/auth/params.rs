//! Reader for the `Authorization` header value of the Digest scheme (RFC 3261 §25.1
//! `credentials`, RFC 7616 §3.4, RFC 7235 §2.1 `auth-param`).
//!
//! ```text
//! credentials = "Digest" LWS auth-param *( *LWS "," *LWS auth-param )
//! auth-param  = token *LWS "=" *LWS ( token / quoted-string )
//! ```
//!
//! Parameters may come in any order; names are case-insensitive; quoted strings may contain
//! `\`-escapes; unknown parameters are skipped; a parameter given twice is an error (RFC 7616
//! §3.4: "MUST NOT appear more than once"), because two different `response` values would
//! make it unclear which one was checked.

/// The Digest credentials a client sent, unescaped. Only the fields holdfast reads are kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DigestParams {
    pub username: Option<String>,
    pub realm: Option<String>,
    pub nonce: Option<String>,
    pub uri: Option<String>,
    pub response: Option<String>,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    /// Opaque server state in a challenge, which a client must return unchanged.
    pub opaque: Option<String>,
}

/// Why a header value is not readable Digest credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamsError {
    /// The scheme is not `Digest` (e.g. `Basic`).
    NotDigest,
    /// The parameter list does not follow the grammar.
    Syntax,
    /// A parameter holdfast reads occurs twice.
    Duplicate,
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A cursor over the header text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_token_byte) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.text[start..self.at])
    }

    /// A quoted string, opening quote already seen; returns the unescaped content.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Some(out);
                }
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F): the next character is literal.
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    }
}

/// Parses one `Authorization` (or `Proxy-Authorization`) header value.
pub(crate) fn parse(value: &str) -> Result<DigestParams, ParamsError> {
    let mut cursor = Cursor { text: value, at: 0 };
    cursor.skip_space();
    let scheme = cursor.token().ok_or(ParamsError::Syntax)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(ParamsError::NotDigest);
    }
    let mut params = DigestParams::default();
    let mut expect_comma = false;
    loop {
        cursor.skip_space();
        match cursor.peek() {
            None => break,
            // Empty list elements (`a=1,,b=2`) are allowed by RFC 7230 §7's `#rule`.
            Some(b',') => {
                cursor.at += 1;
                expect_comma = false;
                continue;
            }
            Some(_) if expect_comma => return Err(ParamsError::Syntax),
            Some(_) => {}
        }
        let name = cursor.token().ok_or(ParamsError::Syntax)?;
        cursor.skip_space();
        if cursor.peek() != Some(b'=') {
            return Err(ParamsError::Syntax);
        }
        cursor.at += 1;
        cursor.skip_space();
        let value = if cursor.peek() == Some(b'"') {
            cursor.at += 1;
            cursor.quoted().ok_or(ParamsError::Syntax)?
        } else {
            cursor.token().ok_or(ParamsError::Syntax)?.to_owned()
        };
        expect_comma = true;
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut params.username,
            "realm" => &mut params.realm,
            "nonce" => &mut params.nonce,
            "uri" => &mut params.uri,
            "response" => &mut params.response,
            "algorithm" => &mut params.algorithm,
            "cnonce" => &mut params.cnonce,
            "qop" => &mut params.qop,
            "nc" => &mut params.nc,
            "opaque" => &mut params.opaque,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ParamsError::Duplicate);
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_and_token_values_in_any_order() {
        let p = parse(
            "dIgEsT  qop=auth ,nc=00000001, username = \"Mu\\\"fa\\\\sa\",\r\n realm=\"a, b\",\
             x-unknown=\"ignored\",, uri=\"sip:127.0.0.1\", algorithm=SHA-256",
        )
        .unwrap();
        assert_eq!(p.username.as_deref(), Some("Mu\"fa\\sa"));
        assert_eq!(p.realm.as_deref(), Some("a, b"));
        assert_eq!(p.qop.as_deref(), Some("auth"));
        assert_eq!(p.nc.as_deref(), Some("00000001"));
        assert_eq!(p.uri.as_deref(), Some("sip:127.0.0.1"));
        assert_eq!(p.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(p.nonce, None);
    }

    #[test]
    fn refuses_other_schemes_and_broken_lists() {
        assert_eq!(parse("Basic QWxhZGRpbjpvcGVu"), Err(ParamsError::NotDigest));
        for bad in [
            "",
            "Digest username",
            "Digest username=",
            "Digest username=\"open",
            "Digest a=1 b=2",
            "Digest =1",
            "Digest realm=\"x\"y",
        ] {
            assert_eq!(parse(bad), Err(ParamsError::Syntax), "{bad}");
        }
        assert_eq!(
            parse("Digest response=\"1\", response=\"2\""),
            Err(ParamsError::Duplicate)
        );
        // An unknown parameter may repeat: it is not read.
        assert!(parse("Digest x=1, x=2").is_ok());
    }
}
