//! The registrar: where each agent can be reached, and until when (RFC 3261 §10.3).
//!
//! holdfast keeps one [`Binding`] per user (an agent has one phone; a newer registration
//! replaces the older, "latest wins"). A binding records both the `Contact` the phone asked
//! for and the source address its REGISTER came from, because a phone behind NAT advertises
//! a private Contact that only the source address reaches.
//!
//! Sans-IO like the rest of `sip`: fed `now`, it never reads the clock. Expiry deadlines
//! live in an ordered set, so [`Registrar::poll_timeout`] and [`Registrar::handle_timeout`]
//! never scan the bindings. Events report only changes of reachability (a user coming
//! online or going offline); a refresh is silent.
//!
//! Expiry rules (§10.2.1.1, §10.3 steps 6–8): the Contact's `expires` parameter wins over
//! the `Expires` header, which wins over the registrar's default; `0` removes the binding;
//! a non-zero value below `min_expires` is refused with `423 Interval Too Brief` and a
//! `Min-Expires` header; a value above `max_expires` is shortened to it.
//!
//! [`FailureLimiter`] (in `limiter`) counts failed authentications per source and user
//! (docs/behaviour.md §9).

mod limiter;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use limiter::{AuthKey, Block, FailureLimiter};

use super::fields::{contact_uri_text, header_user, header_value};
use super::uri;

/// Where one user's phone can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The registered user (the agent's `user`).
    pub user: String,
    /// The Contact URI the phone registered, as it wrote it.
    pub contact: String,
    /// The address the REGISTER came from; reaches the phone when the Contact is a private
    /// address behind NAT.
    pub source: SocketAddr,
    /// When the binding lapses unless refreshed.
    pub expires_at: Instant,
    /// The REGISTER's `Path` values in order (RFC 3327 §5.3): the proxies between holdfast
    /// and the phone, used as the Route of every request to it (§5.4).
    pub path: Vec<String>,
}

impl Binding {
    /// Whole seconds left at `now`, rounded up, for the `expires` parameter of the `200 OK`.
    pub fn expires_in(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// The address of the first `Path` hop when it names an IP address (port 5060 when it
    /// names none); `None` without a Path or for a host name.
    pub fn first_hop(&self) -> Option<SocketAddr> {
        let uri = uri::parse(uri::addr_spec(self.path.first()?)?)?;
        match uri.host_with_port.host {
            rsip::Host::IpAddr(ip) => Some(SocketAddr::new(
                ip,
                uri.host_with_port.port.map_or(5060, |p| *p.value()),
            )),
            rsip::Host::Domain(_) => None,
        }
    }

    /// The Contact as a URI (the Request-URI of INVITEs to this phone).
    pub fn contact_uri(&self) -> Option<rsip::Uri> {
        uri::parse(&self.contact)
    }

    /// The `Contact` header value for the `200 OK` (§10.3 step 8): `<uri>;expires=N`.
    pub fn contact_header(&self, now: Instant) -> String {
        format!("<{}>;expires={}", self.contact, self.expires_in(now))
    }
}

/// A change in whether a user is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// The user had no binding and now has one.
    Registered {
        /// The user.
        user: String,
    },
    /// The user removed its binding (`Expires: 0`).
    Unregistered {
        /// The user.
        user: String,
    },
    /// The user's binding lapsed without a refresh.
    Expired {
        /// The user.
        user: String,
    },
}

/// Why a REGISTER cannot be applied. [`RegisterError::status_code`] says what to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A non-zero expiry below the minimum: answer `423 Interval Too Brief` with
    /// `Min-Expires: min_expires` (§10.3 step 7).
    #[error("expiry too brief; minimum is {min_expires} s")]
    IntervalTooBrief {
        /// The value for the `Min-Expires` header.
        min_expires: u32,
    },
    /// `Contact: *` with a non-zero expiry or beside other contacts (§10.3 step 6): `400`.
    #[error("wildcard Contact needs Expires: 0 and no other Contact")]
    BadWildcard,
    /// An `Expires` header or `expires` parameter that is not a number: `400`.
    #[error("unreadable expiry value")]
    BadExpires,
    /// A Contact whose URI cannot be read: `400`.
    #[error("unreadable Contact")]
    BadContact,
}

impl RegisterError {
    /// The status code to answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::BadWildcard | RegisterError::BadExpires | RegisterError::BadContact => {
                400
            }
        }
    }
}

/// What a REGISTER asks for (§10.2), read by [`read_register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The user of the address-of-record in `To`; only the authenticated user may change
    /// its own bindings (§10.3 step 3: answer `403` when they differ).
    pub aor_user: Option<String>,
    /// What to do with the bindings.
    pub contact: ContactRequest,
    /// The requested expiry in seconds: the Contact's `expires` parameter, else the
    /// `Expires` header, else `None` (the registrar's default applies).
    pub expires: Option<u32>,
    /// `Path` header values in order, each one URI (RFC 3327 §4: the first is the proxy
    /// nearest holdfast).
    pub path: Vec<String>,
}

/// The Contact part of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactRequest {
    /// No Contact: a query for the current binding (§10.2.3).
    Query,
    /// `Contact: *`: remove every binding of the user (§10.2.2).
    Wildcard,
    /// Bind this URI (the first Contact when there are several: one binding per user).
    Uri(String),
}

/// Reads a REGISTER's AoR user, Contact and requested expiry with the `message` accessors.
pub fn read_register(request: &rsip::Request) -> Result<RegisterRequest, RegisterError> {
    let contacts: Vec<&str> = request
        .headers
        .iter()
        .filter_map(|h| {
            let (name, value) = super::build::header_parts(h);
            name.eq_ignore_ascii_case("Contact").then_some(value)
        })
        .collect();
    let header_expires = header_value(request, "Expires")
        .map(parse_expires)
        .transpose()?;
    let (contact, param_expires) = match contacts.first() {
        None => (ContactRequest::Query, None),
        Some(first) if first.trim() == "*" => {
            if contacts.len() > 1 || header_expires != Some(0) {
                return Err(RegisterError::BadWildcard);
            }
            (ContactRequest::Wildcard, None)
        }
        Some(first) => {
            let text = contact_uri_text(request).ok_or(RegisterError::BadContact)?;
            if uri::parse(text).is_none() {
                return Err(RegisterError::BadContact);
            }
            let param = uri::header_param(first, "expires")
                .map(parse_expires)
                .transpose()?;
            (ContactRequest::Uri(text.to_owned()), param)
        }
    };
    let path = request
        .headers
        .iter()
        .filter_map(|h| {
            let (name, value) = super::build::header_parts(h);
            name.eq_ignore_ascii_case("Path").then_some(value)
        })
        .flat_map(split_uri_list)
        .collect::<Vec<_>>();
    if path
        .iter()
        .any(|p| uri::addr_spec(p).and_then(uri::parse).is_none())
    {
        return Err(RegisterError::BadContact);
    }
    Ok(RegisterRequest {
        aor_user: header_user(request, "To"),
        contact,
        expires: param_expires.or(header_expires),
        path,
    })
}

/// The entries of a comma-separated list of `<uri>` values (commas inside `<>` kept).
fn split_uri_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in value.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(value[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim().to_owned());
    out.retain(|v| !v.is_empty());
    out
}

/// `delta-seconds`; values beyond 2³²−1 mean 2³²−1 (§20.19 via RFC 2616 §14.21's rule).
fn parse_expires(text: &str) -> Result<u32, RegisterError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegisterError::BadExpires);
    }
    Ok(text.parse::<u32>().unwrap_or(u32::MAX))
}

/// Whether two Contact URIs name the same place: scheme, user, host and port compared
/// (host case-insensitively, §19.1.4), parameters ignored; unreadable ones by exact text.
fn same_contact(a: &str, b: &str) -> bool {
    match (uri::parse(a), uri::parse(b)) {
        (Some(a), Some(b)) => {
            a.scheme == b.scheme
                && a.user() == b.user()
                && a.host_with_port
                    .to_string()
                    .eq_ignore_ascii_case(&b.host_with_port.to_string())
        }
        _ => a == b,
    }
}

/// The bindings of all users, with their expiry timers.
#[derive(Debug)]
pub struct Registrar {
    min_expires: u32,
    max_expires: u32,
    default_expires: u32,
    bindings: HashMap<String, Binding>,
    /// `(expires_at, user)` for every binding: the first entry is the next deadline.
    deadlines: BTreeSet<(Instant, String)>,
    events: VecDeque<RegistrarEvent>,
    /// Latest `now` seen; time never goes backwards inside the machine.
    now: Option<Instant>,
}

impl Registrar {
    /// A registrar accepting expiries in `min_expires..=max_expires` seconds (longer ones are
    /// shortened), using `default_expires` when the REGISTER names none. holdfast uses 60,
    /// 3600, 3600. `max_expires` below `min_expires` is raised to it, and `default_expires`
    /// is kept within the two, so the registrar cannot refuse its own default.
    pub fn new(min_expires: u32, max_expires: u32, default_expires: u32) -> Self {
        let max_expires = max_expires.max(min_expires);
        Self {
            min_expires,
            max_expires,
            default_expires: default_expires.clamp(min_expires, max_expires),
            bindings: HashMap::new(),
            deadlines: BTreeSet::new(),
            events: VecDeque::new(),
            now: None,
        }
    }

    /// Moves the clock to `now` (never backwards) and drops the bindings that lapsed by
    /// then, so a late timer cannot turn a re-registration into a silent refresh.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        while let Some(first) = self.deadlines.first()
            && first.0 <= now
        {
            let (_, user) = self.deadlines.pop_first().expect("first() was Some");
            self.bindings.remove(&user);
            self.events.push_back(RegistrarEvent::Expired { user });
        }
        now
    }

    /// Applies a REGISTER from `user` (already authenticated) that came from `source`,
    /// as read by [`read_register`]. Returns the user's binding afterwards, for the
    /// `Contact` of the `200 OK` (`None`: the user has no binding now).
    pub fn apply(
        &mut self,
        now: Instant,
        user: &str,
        request: &RegisterRequest,
        source: SocketAddr,
    ) -> Result<Option<Binding>, RegisterError> {
        match &request.contact {
            ContactRequest::Query => {
                self.advance(now);
                Ok(self.binding(user).cloned())
            }
            ContactRequest::Wildcard => {
                self.advance(now);
                self.remove(user, RegistrarEvent::Unregistered { user: user.into() });
                Ok(None)
            }
            ContactRequest::Uri(contact) => {
                let binding = self.register(now, user, contact, request.expires, source)?;
                // The Path of the REGISTER that made or refreshed the binding (§5.3).
                Ok(binding.map(|mut b| {
                    if let Some(stored) = self.bindings.get_mut(user) {
                        stored.path.clone_from(&request.path);
                    }
                    b.path.clone_from(&request.path);
                    b
                }))
            }
        }
    }

    /// Binds `user` to `contact` for `expires_requested` seconds (the default when `None`).
    /// `Some(0)` removes the binding if it is for the same contact (a phone that moved does
    /// not lose its new binding to a late unregister from the old place). Returns the
    /// user's binding afterwards.
    pub fn register(
        &mut self,
        now: Instant,
        user: &str,
        contact: &str,
        expires_requested: Option<u32>,
        source: SocketAddr,
    ) -> Result<Option<Binding>, RegisterError> {
        let now = self.advance(now);
        let expires = expires_requested.unwrap_or(self.default_expires);
        if expires == 0 {
            if self
                .bindings
                .get(user)
                .is_some_and(|b| same_contact(&b.contact, contact))
            {
                self.remove(user, RegistrarEvent::Unregistered { user: user.into() });
            }
            return Ok(self.binding(user).cloned());
        }
        if expires < self.min_expires {
            return Err(RegisterError::IntervalTooBrief {
                min_expires: self.min_expires,
            });
        }
        let expires_at = now + Duration::from_secs(u64::from(expires.min(self.max_expires)));
        let binding = Binding {
            user: user.to_owned(),
            contact: contact.to_owned(),
            source,
            expires_at,
            path: Vec::new(),
        };
        match self.bindings.insert(user.to_owned(), binding.clone()) {
            Some(old) => {
                self.deadlines.remove(&(old.expires_at, old.user));
            }
            None => self.events.push_back(RegistrarEvent::Registered {
                user: user.to_owned(),
            }),
        }
        self.deadlines.insert((expires_at, user.to_owned()));
        Ok(Some(binding))
    }

    /// Puts back a binding a restarted process kept (docs/behaviour.md §13), reported as a
    /// registration; one whose time is up at `now` is not put back.
    pub fn restore(&mut self, now: Instant, binding: Binding) -> bool {
        if binding.expires_at <= now || self.bindings.contains_key(&binding.user) {
            return false;
        }
        self.deadlines
            .insert((binding.expires_at, binding.user.clone()));
        self.events.push_back(RegistrarEvent::Registered {
            user: binding.user.clone(),
        });
        self.bindings.insert(binding.user.clone(), binding);
        true
    }

    /// Removes `user`'s binding, if any, reporting `event`.
    fn remove(&mut self, user: &str, event: RegistrarEvent) {
        if let Some(old) = self.bindings.remove(user) {
            self.deadlines.remove(&(old.expires_at, old.user));
            self.events.push_back(event);
        }
    }

    /// Removes every binding learned from `source` (its connection closed: RFC 5626 §5.3),
    /// reporting each as unregistered; returns their users.
    pub fn unbind_source(&mut self, source: SocketAddr) -> Vec<String> {
        let users: Vec<String> = self
            .bindings
            .values()
            .filter(|b| b.source == source)
            .map(|b| b.user.clone())
            .collect();
        for user in &users {
            self.remove(user, RegistrarEvent::Unregistered { user: user.clone() });
        }
        users
    }

    /// Drops the bindings whose time is up at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// When the next binding lapses.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The next change of a user's reachability.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// The user's current binding. A binding whose deadline passed stays visible until
    /// [`Self::handle_timeout`] runs.
    pub fn binding(&self, user: &str) -> Option<&Binding> {
        self.bindings.get(user)
    }

    /// Every binding.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values()
    }

    /// Number of users with a binding.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests;
