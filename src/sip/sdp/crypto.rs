//! SDES: the SDP `a=crypto` attribute that carries SRTP master keys (RFC 4568).
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]
//! ```
//!
//! [`CryptoAttr::parse`] reads the value after `a=crypto:` (RFC 4568 §9.1 and §9.2 grammar, §6.1
//! for the SRTP key parameter) and refuses, with a [`CryptoError`], every line holdfast cannot honour;
//! the caller skips such lines and [`choose`]s among the rest. [`CryptoAttr::render`] writes
//! the value for an offer or answer.
//!
//! What is refused, so that the whole line is skipped (each is a property of that line only):
//! - crypto suites other than the two of [`Suite`] (§6.2);
//! - an MKI (§6.1): SRTP here carries no MKI field in packets;
//! - several key parameters in one line (§6.1), which only make sense with MKIs;
//! - session parameters (§6.3) other than `WSH=`, a window size hint (ours is 64, §6.3.6): no
//!   unencrypted or unauthenticated SRTP, no FEC, and no `KDR=`, since only the default of never
//!   re-deriving session keys is implemented.
//!
//! A lifetime (`|2^31`, `|1048576`) is checked for form and otherwise ignored (§6.1): holdfast
//! does not count packets against it, only against SRTP's own limit of 2^48.

use crate::srtp::{INLINE_LEN, MasterKey, Suite};

/// Why an `a=crypto` value was refused; the caller skips the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not `<tag> <suite> <key-params> [<session-params>]`.
    #[error("malformed crypto attribute")]
    Malformed,
    /// The tag is not 1 to 9 decimal digits (§4.1, §9.1).
    #[error("crypto attribute tag is not 1 to 9 digits")]
    BadTag,
    /// A crypto suite other than `AES_CM_128_HMAC_SHA1_80` or `_32`.
    #[error("unsupported crypto suite")]
    UnsupportedSuite,
    /// A key method other than `inline:` (§6.1).
    #[error("unsupported key method")]
    UnsupportedKeyMethod,
    /// The key is not base64 of 30 bytes (§6.1, §6.2).
    #[error("crypto key is not {INLINE_LEN} bytes of base64")]
    BadKey,
    /// The lifetime is not `2^<n>` or a decimal number (§6.1, §9.2).
    #[error("malformed key lifetime")]
    BadLifetime,
    /// The key has an MKI (§6.1), which is not supported.
    #[error("MKI not supported")]
    Mki,
    /// More than one key parameter (§6.1), which is not supported.
    #[error("several keys in one crypto attribute")]
    SeveralKeys,
    /// A session parameter other than `WSH=` (§6.3).
    #[error("unsupported session parameter")]
    UnsupportedSessionParam,
}

/// One usable `a=crypto` line: its tag and the master key it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag that names this line in offer/answer (§4.1); an answer repeats it (§5.1.2).
    pub tag: u32,
    /// The suite and master key (the key the line's sender will protect its SRTP with).
    pub key: MasterKey,
}

impl CryptoAttr {
    /// Reads the value of an `a=crypto:` attribute, the text after the colon.
    pub fn parse(value: &str) -> Result<CryptoAttr, CryptoError> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(key_params)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let tag = parse_tag(tag)?;
        let suite = Suite::from_name(suite).ok_or(CryptoError::UnsupportedSuite)?;
        for param in fields {
            check_session_param(param)?;
        }
        if key_params.contains(';') {
            return Err(CryptoError::SeveralKeys);
        }
        let info = key_params
            .strip_prefix("inline:")
            .ok_or(CryptoError::UnsupportedKeyMethod)?;
        let mut parts = info.split('|');
        let key_salt = parts.next().unwrap_or_default();
        let key = MasterKey::from_inline(suite, key_salt).map_err(|_| CryptoError::BadKey)?;
        // Lifetime first, then MKI; an MKI is the part with a colon (§9.2).
        let mut seen_lifetime = false;
        for part in parts {
            if part.contains(':') {
                return Err(CryptoError::Mki);
            }
            if seen_lifetime || !is_lifetime(part) {
                return Err(CryptoError::BadLifetime);
            }
            seen_lifetime = true;
        }
        Ok(CryptoAttr { tag, key })
    }

    /// The attribute value, `<tag> <suite> inline:<key||salt>`, to follow `a=crypto:`.
    pub fn render(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.key.suite().name(),
            self.key.to_inline()
        )
    }

    /// The answer to this offered line: same tag and suite (§5.1.2, §7.1.2), with our own fresh master
    /// key made from `random`, which the caller fills from a secure generator.
    pub fn answer(&self, random: [u8; INLINE_LEN]) -> CryptoAttr {
        CryptoAttr {
            tag: self.tag,
            key: MasterKey::generate(self.key.suite(), random),
        }
    }
}

/// The line to answer among those [`CryptoAttr::parse`] accepted, kept in offer order: the
/// first one. The offerer lists its lines most preferred first (§5.1.1, §7.1.1) and every line
/// that parsed is one we support, so the 80-bit tag wins only when the offer puts it first.
pub fn choose(offered: &[CryptoAttr]) -> Option<&CryptoAttr> {
    offered
        .iter()
        .find(|attr| Suite::ALL.contains(&attr.key.suite()))
}

/// A tag is 1 to 9 digits (§9.1), so it fits a `u32`.
fn parse_tag(text: &str) -> Result<u32, CryptoError> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::BadTag);
    }
    text.parse().map_err(|_| CryptoError::BadTag)
}

/// `lifetime = ["2^"] 1*(DIGIT)` (§9.2).
fn is_lifetime(text: &str) -> bool {
    let digits = text.strip_prefix("2^").unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The one session parameter we can honour: a window size hint (§6.3.6), ignored since our
/// window is already the 64 packets it may ask for at least.
fn check_session_param(param: &str) -> Result<(), CryptoError> {
    match param.strip_prefix("WSH=") {
        Some(hint) if !hint.is_empty() && hint.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(CryptoError::UnsupportedSessionParam),
    }
}

#[cfg(test)]
mod tests;
