//! HTTP Digest authentication of SIP requests, server side (RFC 3261 §22.4, RFC 2617 §3,
//! RFC 7616 for the SHA-256 algorithm, RFC 8760 for its use in SIP).
//!
//! holdfast challenges a `REGISTER` with `401 Unauthorized` carrying one `WWW-Authenticate`
//! per offered algorithm, most preferred first (RFC 8760 §2.4), and checks the
//! `Authorization` of the retried request. Only `qop=auth` is offered; a response without
//! `qop` (RFC 2069 style, still allowed by RFC 3261 §22.4) is accepted too.
//!
//! # Signed nonces bound to the source, counted once used
//! A nonce is `hex(t ‖ mac)`: `t` (8 bytes, big-endian) is the issue time in whole seconds
//! since the authenticator was created, shifted left by 20 bits, with a count of challenges
//! issued in the low 20 bits, so two challenges to one address in the same second carry two
//! nonces (a phone whose REGISTER and INVITE are challenged within a second starts each at
//! `nc=1`, and must not be told its second answer is a replay). `mac` is the first 16 bytes of
//! `HMAC-SHA256(secret, "holdfast-digest-nonce" ‖ t ‖ realm ‖ source)`, where `source` is the
//! address and port the challenge was sent to. Nothing is stored per challenge, so a flood of
//! unauthenticated REGISTERs costs no memory. The secret is random per process, so nonces die
//! with a restart; a client that then answers an old nonce correctly is told `stale=true`
//! (see [`AuthError::StaleNonce`]) and re-authenticates silently instead of failing.
//!
//! Replays are refused two ways:
//! - **Binding.** A nonce answered from another address or port than it was issued to fails
//!   its MAC: a sniffed `Authorization` sent from the attacker's own socket is `stale` at best,
//!   so it can never move an agent's binding to the attacker's Contact.
//! - **Counting** (RFC 7616 §3.4.5). Once an answer verifies, its nonce's `nc` is remembered
//!   until the nonce expires; the next use must carry a higher `nc` (a `qop`-less answer makes
//!   the nonce single-use). Only verified answers are remembered, so only real agents create
//!   entries, and the table is capped ([`MAX_TRACKED_NONCES`]): when full, the oldest entry
//!   goes and every nonce issued up to then is treated as expired, so forgetting never
//!   re-opens a replay.
//!
//! # Credentials
//! A [`Credential`] is the plain password or a precomputed HA1. An HA1 is bound to one
//! algorithm: 32 hex digits are the MD5 of `user:realm:password`, 64 the SHA-256. With only
//! an MD5 HA1 a client answering the SHA-256 challenge cannot be verified
//! ([`AuthError::AlgorithmUnavailable`]); offer MD5 only ([`DigestAuthenticator::with_algorithms`])
//! or configure the password for such users.
//!
//! Secrets and responses are compared in constant time (`subtle`), so timing does not leak
//! how many leading bytes of a guess were right.

mod client;
pub mod offer;
mod params;

pub use client::digest_credentials;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::Md5;
use rsip::message::HasHeaders;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::build::header_parts;

/// A Digest hash algorithm (RFC 7616 §3.2, RFC 8760 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`: what every SIP phone supports; weak, kept for compatibility.
    Md5,
    /// `SHA-256`: preferred when the phone supports it.
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm=` parameter.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm=` token (case-insensitive). The `-sess` variants are not
    /// supported: SIP has no use for them (RFC 8760 §2.2 keeps them only for HTTP parity).
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    fn hash_hex(self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut hasher = D::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    hasher.update(b":");
                }
                hasher.update(part.as_bytes());
            }
            hex(&hasher.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }

    /// Length of the hash in hex digits.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// A user's secret as configured, borrowed from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The plain password: every algorithm can be verified.
    Password(&'a str),
    /// A precomputed HA1 in hex: `MD5(user:realm:password)` (32 digits) or
    /// `SHA-256(user:realm:password)` (64 digits). Only its own algorithm can be verified.
    Ha1(&'a str),
}

/// Why a request's credentials were not accepted. [`AuthError::status_code`] says what to
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request carries no `Authorization` header with Digest credentials for our realm:
    /// the normal first attempt, answered with a challenge.
    #[error("no credentials for our realm")]
    Missing,
    /// The `Authorization` header is not readable Digest credentials, or lacks a required
    /// parameter (`username`, `realm`, `nonce`, `uri`, `response`; `nc` and `cnonce` with
    /// `qop=auth`).
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// The credentials name another realm (RFC 3261 §22.4: the client must use ours).
    #[error("credentials for another realm")]
    WrongRealm,
    /// `algorithm=` names an algorithm we do not offer (or a `-sess` variant).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// `qop=` is something other than `auth` (e.g. `auth-int`, which we never offer).
    #[error("unsupported qop")]
    UnsupportedQop,
    /// The user name is not configured.
    #[error("unknown user")]
    UnknownUser,
    /// The user is configured with an HA1 of another algorithm, so this response cannot be
    /// checked; re-challenge offering only the HA1's algorithm, or configure the password.
    #[error("no credential usable with this algorithm")]
    AlgorithmUnavailable,
    /// The response is right but the nonce has expired, or was not issued by this process
    /// (e.g. before a restart): answer a fresh challenge with `stale=true` so the client
    /// retries without asking its user (RFC 7616 §3.3).
    #[error("stale nonce")]
    StaleNonce,
    /// The nonce is not one we issued and the response does not match it either: a forged
    /// or corrupted nonce.
    #[error("invalid nonce")]
    BadNonce,
    /// The response does not match: wrong password (or wrong method/uri).
    #[error("wrong response")]
    WrongResponse,
    /// The response is right but its nonce count was used already (RFC 7616 §3.4.5): a
    /// replayed request, or a client that reuses `nc`. Answered like a stale nonce, so an
    /// honest client re-authenticates without asking its user; not a guess.
    #[error("nonce count already used")]
    Replayed,
}

impl AuthError {
    /// The status to answer with: `400` for [`AuthError::Malformed`], `403` for an unknown user
    /// or a wrong password (the same code for both, so user names cannot be probed), `401`
    /// with a fresh challenge otherwise (with `stale=true` for [`AuthError::StaleNonce`]).
    pub fn status_code(&self) -> u16 {
        match self {
            AuthError::Malformed(_) => 400,
            AuthError::UnknownUser | AuthError::WrongResponse => 403,
            AuthError::Missing
            | AuthError::WrongRealm
            | AuthError::UnsupportedAlgorithm
            | AuthError::UnsupportedQop
            | AuthError::AlgorithmUnavailable
            | AuthError::StaleNonce
            | AuthError::Replayed
            | AuthError::BadNonce => 401,
        }
    }

    /// Whether this is a failed guess that the per-source limiter (docs/behaviour.md §9) should count:
    /// an unknown user, a wrong password or a forged nonce. A missing header or a stale
    /// nonce is normal protocol flow.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            AuthError::UnknownUser | AuthError::WrongResponse | AuthError::BadNonce
        )
    }

    /// Whether the next challenge should carry `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::StaleNonce | AuthError::Replayed)
    }
}

/// Tag mixed into the nonce MAC so the secret is never used for anything else by accident.
const NONCE_DOMAIN: &[u8] = b"holdfast-digest-nonce";
/// Bytes of the issue time in a nonce.
const NONCE_TIME_LEN: usize = 8;
/// Low bits of a nonce's time field that count challenges (see the module docs).
const NONCE_SEQ_BITS: u32 = 20;
/// Bytes of the truncated MAC in a nonce: 128 bits is far beyond guessing range.
const NONCE_MAC_LEN: usize = 16;
/// Used nonces remembered at most (about 60 bytes each): far more than the agents that can
/// register within one nonce lifetime.
pub const MAX_TRACKED_NONCES: usize = 100_000;

/// How a presented nonce relates to the ones we issue.
enum NonceState {
    /// Issued by us to this source and not expired: `t` and `mac` identify it.
    Fresh {
        t: u64,
        mac: [u8; NONCE_MAC_LEN],
    },
    Expired,
    /// Not decodable, not authentic, or from the future: not issued by this process.
    Foreign,
}

/// Issues Digest challenges and verifies credentials. The only per-client state is the
/// count of each nonce that has verified (see the module docs).
#[derive(Debug, Clone)]
pub struct DigestAuthenticator {
    realm: String,
    secret: [u8; 32],
    nonce_lifetime: Duration,
    /// Nonce times count seconds from here.
    epoch: Instant,
    algorithms: Vec<Algorithm>,
    used: UsedNonces,
    /// Challenges issued so far (the low bits of each nonce's time field).
    issued: std::cell::Cell<u64>,
}

/// The highest `nc` seen per verified nonce, by its MAC, with eviction by issue time.
#[derive(Debug, Clone, Default)]
struct UsedNonces {
    counts: HashMap<[u8; NONCE_MAC_LEN], (u64, u32)>,
    by_issue: BTreeSet<(u64, [u8; NONCE_MAC_LEN])>,
    /// Nonces issued at or before this second were forgotten to make room: all expired.
    forgotten_through: Option<u64>,
}

impl UsedNonces {
    /// Records `nc` for the nonce issued at `t` with `mac`; `false` if it is not above the
    /// highest count already seen (a replay).
    fn record(&mut self, t: u64, mac: [u8; NONCE_MAC_LEN], nc: u32, oldest_live: u64) -> bool {
        if let Some((_, seen)) = self.counts.get_mut(&mac) {
            if nc <= *seen {
                return false;
            }
            *seen = nc;
            return true;
        }
        // Entries whose nonces expired can go: an expired nonce never verifies again.
        while let Some(&(issued, old)) = self.by_issue.first() {
            if issued >= oldest_live && self.counts.len() < MAX_TRACKED_NONCES {
                break;
            }
            self.by_issue.pop_first();
            self.counts.remove(&old);
            if issued >= oldest_live {
                self.forgotten_through = Some(self.forgotten_through.unwrap_or(0).max(issued));
            }
        }
        self.counts.insert(mac, (t, nc));
        self.by_issue.insert((t, mac));
        true
    }

    fn forgotten(&self, t: u64) -> bool {
        self.forgotten_through.is_some_and(|through| t <= through)
    }
}

impl DigestAuthenticator {
    /// An authenticator for `realm` whose nonces are signed with `secret` (draw it at random
    /// at start-up) and accepted for `nonce_lifetime`. Offers SHA-256 then MD5. `now` becomes
    /// the epoch that nonce times count from; every later `now` must not be earlier.
    pub fn new(now: Instant, realm: String, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        Self {
            realm,
            secret,
            nonce_lifetime,
            epoch: now,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            used: UsedNonces::default(),
            issued: std::cell::Cell::new(0),
        }
    }

    /// Offer exactly `algorithms`, in this order of preference; credentials using any other
    /// algorithm are refused. An empty list keeps the current set.
    ///
    /// Some MD5-only stacks give up on the whole `401` when any challenge names SHA-256,
    /// whatever the order (libre 1.1, as in Debian's baresip 1.0, fails with `ENOSYS`);
    /// such phones need `&[Algorithm::Md5]`.
    #[must_use]
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// The algorithms offered, preferred first.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The `WWW-Authenticate` values for a `401`, one per offered algorithm, preferred first
    /// (RFC 8760 §2.4). `stale` adds `stale=true` (after [`AuthError::StaleNonce`]).
    ///
    /// The nonce is bound to no source: only [`Self::verify`] (no source either) accepts it.
    pub fn challenge(&self, now: Instant, stale: bool) -> Vec<String> {
        self.challenge_with(now, None, stale, &self.algorithms)
    }

    /// Like [`Self::challenge`] for a request from `source` (the nonce only verifies from
    /// there), offering only `algorithms` (e.g. only MD5 after
    /// [`AuthError::AlgorithmUnavailable`]).
    pub fn challenge_with(
        &self,
        now: Instant,
        source: Option<SocketAddr>,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.nonce(now, source);
        let realm = quote(&self.realm);
        algorithms
            .iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", qop=\"auth\", algorithm={}",
                    algorithm.token()
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Verifies one `Authorization` header value of a request with `method`, looking the
    /// user up with `lookup`. Returns the authenticated user name.
    ///
    /// The `uri` parameter must be present but is not compared with the Request-URI: proxies
    /// and NATs rewrite the latter, and `qop=auth` already binds the response to the `uri`
    /// the client hashed.
    ///
    /// For nonces from [`Self::challenge`] (bound to no source).
    pub fn verify<'c>(
        &mut self,
        now: Instant,
        method: &str,
        authorization: &str,
        lookup: impl Fn(&str) -> Option<Credential<'c>>,
    ) -> Result<String, AuthError> {
        self.verify_answer(now, None, method, authorization, lookup)
            .map(|(user, _)| user)
    }

    /// [`Self::verify`] for a request from `source`, also naming the algorithm the answer used.
    fn verify_answer<'c>(
        &mut self,
        now: Instant,
        source: Option<SocketAddr>,
        method: &str,
        authorization: &str,
        lookup: impl Fn(&str) -> Option<Credential<'c>>,
    ) -> Result<(String, Algorithm), AuthError> {
        let p = params::parse(authorization).map_err(|e| match e {
            params::ParamsError::NotDigest => AuthError::Missing,
            params::ParamsError::Syntax => AuthError::Malformed("syntax"),
            params::ParamsError::Duplicate => AuthError::Malformed("repeated parameter"),
        })?;
        let username = p.username.ok_or(AuthError::Malformed("no username"))?;
        let realm = p.realm.ok_or(AuthError::Malformed("no realm"))?;
        let nonce = p.nonce.ok_or(AuthError::Malformed("no nonce"))?;
        let uri = p.uri.ok_or(AuthError::Malformed("no uri"))?;
        let response = p.response.ok_or(AuthError::Malformed("no response"))?;
        // RFC 2617 §3.2.2: no algorithm means MD5.
        let algorithm = match p.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(token) => Algorithm::from_token(token).ok_or(AuthError::UnsupportedAlgorithm)?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let qop = match p.qop.as_deref() {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let nc = p.nc.ok_or(AuthError::Malformed("qop without nc"))?;
                let cnonce = p.cnonce.ok_or(AuthError::Malformed("qop without cnonce"))?;
                if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::Malformed("nc is not 8 hex digits"));
                }
                Some((nc, cnonce))
            }
            Some(_) => return Err(AuthError::UnsupportedQop),
        };
        if realm != self.realm {
            return Err(AuthError::WrongRealm);
        }
        let state = self.check_nonce(now, source, &nonce);
        let credential = lookup(&username).ok_or(AuthError::UnknownUser)?;
        let ha1 = match credential {
            Credential::Password(password) => algorithm.hash_hex(&[&username, &realm, password]),
            Credential::Ha1(ha1) if ha1.len() == algorithm.hex_len() => ha1.to_ascii_lowercase(),
            Credential::Ha1(_) => return Err(AuthError::AlgorithmUnavailable),
        };
        let expected = digest_response(
            algorithm,
            &ha1,
            &nonce,
            qop.as_ref()
                .map(|(nc, cnonce)| (nc.as_str(), cnonce.as_str())),
            method,
            &uri,
        );
        // Hex digits may come in either case; compare in constant time (the length is public:
        // it is fixed by the algorithm).
        let matches = bool::from(
            expected
                .as_bytes()
                .ct_eq(response.to_ascii_lowercase().as_bytes()),
        );
        match (matches, state) {
            (true, NonceState::Fresh { t, mac }) => {
                // Without qop there is no count: the nonce is single-use, recorded as the
                // highest count so no later answer (with or without qop) exceeds it.
                let nc = match &qop {
                    Some((nc, _)) => u32::from_str_radix(nc, 16)
                        .map_err(|_| AuthError::Malformed("nc is not 8 hex digits"))?,
                    None => u32::MAX,
                };
                let oldest_live = self
                    .seconds(now)
                    .saturating_sub(self.nonce_lifetime.as_secs());
                if self.used.record(t, mac, nc, oldest_live) {
                    Ok((username, algorithm))
                } else {
                    Err(AuthError::Replayed)
                }
            }
            (true, NonceState::Expired | NonceState::Foreign) => Err(AuthError::StaleNonce),
            (false, NonceState::Foreign) => Err(AuthError::BadNonce),
            (false, _) => Err(AuthError::WrongResponse),
        }
    }

    /// Verifies a request's credentials: every `Authorization` header naming our realm is
    /// tried (a client may answer each offered algorithm) and the first success wins, with
    /// the algorithm it used. Without one, [`AuthError::Missing`]; otherwise the error of
    /// the last one tried.
    pub fn verify_request<'c>(
        &mut self,
        now: Instant,
        source: Option<SocketAddr>,
        request: &rsip::Request,
        lookup: impl Fn(&str) -> Option<Credential<'c>>,
    ) -> Result<(String, Algorithm), AuthError> {
        let method = request.method.to_string();
        let mut result = Err(AuthError::Missing);
        for header in request.headers().iter() {
            let (name, value) = header_parts(header);
            if !name.eq_ignore_ascii_case("Authorization") {
                continue;
            }
            // Credentials for other realms (e.g. an upstream proxy's) are not ours to judge.
            let ours = params::parse(value)
                .map(|p| p.realm.as_deref().is_none_or(|r| r == self.realm))
                .unwrap_or(true);
            if !ours {
                continue;
            }
            result = self.verify_answer(now, source, &method, value, &lookup);
            if result.is_ok() {
                break;
            }
        }
        result
    }

    fn seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The user name of the first Digest `Authorization` of `request` for our realm, before
    /// any check: who the sender claims to be (the failure limiter counts by it).
    pub fn claimed_user(&self, request: &rsip::Request) -> Option<String> {
        request.headers().iter().find_map(|header| {
            let (name, value) = header_parts(header);
            if !name.eq_ignore_ascii_case("Authorization") {
                return None;
            }
            let p = params::parse(value).ok()?;
            if p.realm.as_deref().is_some_and(|r| r != self.realm) {
                return None;
            }
            p.username
        })
    }

    /// A nonce for `now`, bound to `source`.
    fn nonce(&self, now: Instant, source: Option<SocketAddr>) -> String {
        let count = self.issued.get().wrapping_add(1);
        self.issued.set(count);
        let t = (self.seconds(now) << NONCE_SEQ_BITS) | (count & ((1 << NONCE_SEQ_BITS) - 1));
        let mut bytes = t.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.nonce_mac(t, source)[..NONCE_MAC_LEN]);
        hex(&bytes)
    }

    fn nonce_mac(&self, t: u64, source: Option<SocketAddr>) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(NONCE_DOMAIN);
        mac.update(&t.to_be_bytes());
        mac.update(self.realm.as_bytes());
        // Length-prefixed: the realm is variable, so the source must not run into it.
        match source {
            None => mac.update(&[0]),
            Some(SocketAddr::V4(a)) => {
                mac.update(&[4]);
                mac.update(&a.ip().octets());
                mac.update(&a.port().to_be_bytes());
            }
            Some(SocketAddr::V6(a)) => {
                mac.update(&[6]);
                mac.update(&a.ip().octets());
                mac.update(&a.port().to_be_bytes());
            }
        }
        mac.finalize().into_bytes().into()
    }

    fn check_nonce(&self, now: Instant, source: Option<SocketAddr>, nonce: &str) -> NonceState {
        let Some(bytes) = unhex(nonce) else {
            return NonceState::Foreign;
        };
        if bytes.len() != NONCE_TIME_LEN + NONCE_MAC_LEN {
            return NonceState::Foreign;
        }
        let (time, mac) = bytes.split_at(NONCE_TIME_LEN);
        let stamp = u64::from_be_bytes(time.try_into().expect("split at NONCE_TIME_LEN"));
        let expected = self.nonce_mac(stamp, source);
        let t = stamp >> NONCE_SEQ_BITS;
        if !bool::from(expected[..NONCE_MAC_LEN].ct_eq(mac)) {
            return NonceState::Foreign;
        }
        match self.seconds(now).checked_sub(t) {
            None => NonceState::Foreign,
            Some(age) if Duration::from_secs(age) > self.nonce_lifetime => NonceState::Expired,
            Some(_) if self.used.forgotten(t) => NonceState::Expired,
            Some(_) => NonceState::Fresh {
                t,
                mac: mac.try_into().expect("split at NONCE_TIME_LEN"),
            },
        }
    }
}

/// The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1) for an HA1 in hex:
/// `H(HA1:nonce:nc:cnonce:auth:HA2)` with `qop=auth`, `H(HA1:nonce:HA2)` without, where
/// `HA2 = H(method:uri)`.
fn digest_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash_hex(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => algorithm.hash_hex(&[ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => algorithm.hash_hex(&[ha1, nonce, &ha2]),
    }
}

/// A quoted-string with `"` and `\` escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            // Two hex digits always fit a byte.
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests;
