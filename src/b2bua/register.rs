//! Agents registering (docs/behaviour.md §1, RFC 3261 §10.3 and §22): Digest challenge and
//! verification, bindings, and the agent becoming available or offline as its binding
//! comes and goes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::log_limit::LogLimit;
use super::{B2bua, push_other};
use crate::config::{Credential as ConfigCredential, DigestAlgorithm};
use crate::sip::auth::{Algorithm, Credential, DigestAuthenticator};
use crate::sip::message;
use crate::sip::registrar::{self, AuthKey, FailureLimiter, Registrar, RegistrarEvent};
use crate::sip::transaction::ServerKey;

/// Shortest registration accepted (`423` below it), longest granted, default.
const MIN_EXPIRES: u32 = 60;
const MAX_EXPIRES: u32 = 3600;
const DEFAULT_EXPIRES: u32 = 3600;
/// How long a challenge's nonce stays fresh.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Failed authentications for one user name from one address (or for unknown user names from
/// one address) before those are refused for the rest of the window (docs/behaviour.md §9).
const MAX_AUTH_FAILURES: u32 = 10;
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Everything about agents registering: their bindings, the Digest authenticator, the
/// failure limiter and the choice of algorithms offered.
#[derive(Debug)]
pub struct Registration {
    /// Bindings with expiry (RFC 3261 §10.3).
    pub registrar: Registrar,
    /// Challenges and verifies Digest (RFC 7616, RFC 8760).
    pub authenticator: DigestAuthenticator,
    /// Failed authentications per (source, user), and per source for unknown users.
    pub limiter: FailureLimiter,
    /// Which algorithms each phone is offered.
    pub offer: crate::sip::auth::offer::AlgorithmOffer,
    /// Failed logins counted (unknown user, wrong password, forged nonce).
    pub failures: u64,
    /// REGISTERs refused unchecked because their (source, user) was blocked.
    pub refused_blocked: u64,
    /// A REGISTER verified before its transaction was made, for `on_register` to take.
    pub verified: Option<(ServerKey, String, Algorithm)>,
    /// Log lines for failures and for blocked refusals, rate-limited.
    log_failure: LogLimit,
    log_blocked: LogLimit,
}

impl Registration {
    /// A registration with holdfast's bounds and `authenticator`.
    pub(super) fn new(authenticator: DigestAuthenticator) -> Self {
        Self {
            registrar: Registrar::new(MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES),
            authenticator,
            limiter: FailureLimiter::new(MAX_AUTH_FAILURES, AUTH_FAILURE_WINDOW),
            offer: Default::default(),
            failures: 0,
            refused_blocked: 0,
            verified: None,
            log_failure: LogLimit::default(),
            log_blocked: LogLimit::default(),
        }
    }
}

/// The Digest authenticator for `[sip] realm` and `digest_algorithms`, with a secret that
/// lives as long as the process (nonces from before a restart are answered `stale`).
pub(super) fn new_authenticator(
    now: Instant,
    realm: &str,
    algorithms: &[DigestAlgorithm],
    secret: [u8; 32],
) -> DigestAuthenticator {
    let algorithms: Vec<Algorithm> = algorithms
        .iter()
        .map(|a| match a {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        })
        .collect();
    DigestAuthenticator::new(now, realm.to_string(), secret, NONCE_LIFETIME)
        .with_algorithms(&algorithms)
}

impl B2bua {
    /// Checks a REGISTER's credentials before any transaction exists for it: `Err` is the
    /// response for a refusal (`401` challenge, `403`, `400`), sent statelessly so a flood of
    /// unauthenticated REGISTERs keeps no state (docs/behaviour.md §9); `Ok` names the agent.
    pub(super) fn authenticate_register(
        &mut self,
        now: Instant,
        request: &rsip::Request,
        source: SocketAddr,
    ) -> Result<(String, Algorithm), rsip::Response> {
        // Failures count against the user name the credentials claim (else the To user), or
        // against "unknown users" from this source when no agent has that name.
        let claimed = self
            .registration
            .authenticator
            .claimed_user(request)
            .or_else(|| message::header_user(request, "To"))
            .unwrap_or_default();
        let known = self.config.agents.iter().any(|a| a.user == claimed)
            || self.config.supervisors.iter().any(|s| s.user == claimed);
        let limit_key = AuthKey {
            source: source.ip(),
            user: known.then(|| claimed.clone()),
        };
        let never_block = self
            .config
            .sip
            .auth_never_block
            .iter()
            .any(|net| net.contains(source.ip()));
        if !never_block && self.registration.limiter.is_blocked(now, &limit_key) {
            // The same answer as a wrong password or an unknown user: nothing to probe.
            self.registration.refused_blocked += 1;
            if let Some(suppressed) = self.registration.log_blocked.allow(now) {
                tracing::warn!(%source, user = %claimed, suppressed, "REGISTER refused: too many failed authentications");
            }
            return Err(message::response(request, 403, None));
        }
        let (agents, supervisors) = (&self.config.agents, &self.config.supervisors);
        // Supervisors register and dial codes with their password like agents.
        let lookup = |user: &str| {
            agents
                .iter()
                .find(|a| a.user == user)
                .and_then(|a| a.credential())
                .map(|c| match c {
                    ConfigCredential::Password(p) => Credential::Password(p),
                    ConfigCredential::Ha1(h) => Credential::Ha1(h),
                })
                .or_else(|| {
                    supervisors
                        .iter()
                        .find(|s| s.user == user)
                        .map(|s| Credential::Password(&s.password))
                })
        };
        let error =
            match self
                .registration
                .authenticator
                .verify_request(now, Some(source), request, lookup)
            {
                Ok(verified) => return Ok(verified),
                Err(error) => error,
            };
        if error.is_failure() {
            self.registration.failures += 1;
            self.registration.limiter.record_failure(now, limit_key);
            if let Some(suppressed) = self.registration.log_failure.allow(now) {
                tracing::warn!(%source, user = %claimed, %error, suppressed, "REGISTER authentication failed");
            }
        }
        let code = error.status_code();
        let mut response = message::response(request, code, None);
        if code == 401 {
            let algorithms = self.registration.offer.choose(
                now,
                source.ip(),
                &claimed,
                self.registration.authenticator.algorithms(),
            );
            for challenge in self.registration.authenticator.challenge_with(
                now,
                Some(source),
                error.is_stale(),
                &algorithms,
            ) {
                push_other(&mut response, "WWW-Authenticate", &challenge);
            }
        }
        Err(response)
    }

    /// A REGISTER with a server transaction: its credentials verified by
    /// [`Self::authenticate_register`] before the transaction was made (`verified`), or
    /// checked now.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        key: ServerKey,
        request: rsip::Request,
        source: SocketAddr,
        verified: Option<(String, Algorithm)>,
    ) {
        let verified = match verified {
            Some(verified) => Ok(verified),
            None => self.authenticate_register(now, &request, source),
        };
        let (user, algorithm) = match verified {
            Ok(verified) => verified,
            Err(response) => {
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                return self.respond(now, &key, response);
            }
        };
        self.registration
            .offer
            .succeeded(source.ip(), &user, algorithm);
        let register = match registrar::read_register(&request) {
            Ok(register) => register,
            Err(error) => return self.reply(now, &key, &request, error.status_code()),
        };
        if register.aor_user.as_deref() != Some(user.as_str()) {
            // §10.3 step 3: an agent may only change its own bindings.
            return self.reply(now, &key, &request, 403);
        }
        match self
            .registration
            .registrar
            .apply(now, &user, &register, source)
        {
            Ok(binding) => {
                if !matches!(register.contact, registrar::ContactRequest::Query) {
                    self.keep_registration(now, &user, binding.as_ref());
                }
                let mut response = message::response(&request, 200, None);
                if let Some(binding) = binding {
                    self.cluster_registered(&binding);
                    // RFC 3327 §5.3: the Path stored is echoed, so the phone knows it.
                    for hop in &binding.path {
                        push_other(&mut response, "Path", hop);
                    }
                    push_other(&mut response, "Contact", &binding.contact_header(now));
                }
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                self.respond(now, &key, response);
            }
            Err(error) => {
                let code = error.status_code();
                let mut response = message::response(&request, code, None);
                if code == 423 {
                    push_other(&mut response, "Min-Expires", &MIN_EXPIRES.to_string());
                }
                self.respond(now, &key, response);
            }
        }
    }

    /// Bindings that appear or disappear make agents available or offline.
    pub(super) fn process_registrar_events(&mut self, now: Instant) {
        while let Some(event) = self.registration.registrar.poll_event() {
            let (user, online) = match &event {
                RegistrarEvent::Registered { user } => (user, true),
                RegistrarEvent::Unregistered { user } | RegistrarEvent::Expired { user } => {
                    (user, false)
                }
            };
            tracing::info!(?event, "registration");
            if !online {
                let user = user.clone();
                self.keep_registration(now, &user, None);
            }
            let Some(agent) = self.agents.find(user) else {
                continue;
            };
            let _ = if online {
                self.agents.registered(now, agent)
            } else if self.cluster_unregistered(user) {
                // Still bound on another node of the cluster.
                Ok(())
            } else {
                self.agents.unregistered(now, agent)
            };
        }
    }
}
