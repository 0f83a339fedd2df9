//! The configuration: one TOML file (`holdfast.toml`) read into typed structs (docs/behaviour.md §12
//! "Configuration" is the schema; docs/behaviour.md §8 asks for errors that name file, key and reason).
//!
//! Reading happens in two steps. Serde turns the text into [`Config`]; unknown keys are
//! refused (a typo must not silently fall back to a default), and a value of the wrong type
//! or shape stops parsing with its key path and line/column. Then a validation pass checks the
//! rules that span keys (routes name existing queues, users are unique, …) and reports
//! *every* problem at once, each as `FILE: KEY: REASON`.
//!
//! [`demo`] is the built-in configuration used when no file is given; it is the example
//! file `holdfast.toml` shipped at the repository root, embedded, so the two cannot drift.

mod codes;
mod load;
mod net;
mod queue;
mod validate;

pub use load::{ConfigError, ConfigErrors, demo, from_str, load};

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use codes::{Codes, Supervisor};
pub use queue::{QueueConfig, WhenNoAgents};

pub use net::{Cidr, Pattern, PortRange, ValueError};

/// The example configuration, which is also the built-in demo.
const DEMO: &str = include_str!("../holdfast.toml");

/// Name used for the demo file in messages.
const DEMO_LABEL: &str = "holdfast.toml";

/// Everything holdfast reads from its configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP signalling and RTP ports.
    pub sip: Sip,
    /// The admin HTTP listener.
    pub admin: Admin,
    /// Where durable state lives.
    pub store: Store,
    /// This node among several (with `[store] backend = "postgres"`).
    pub cluster: Cluster,
    /// Hold music and prompt clips.
    pub media: Media,
    /// What agents' phones dial to act on holdfast (`*46` pause, `*47` unpause).
    pub codes: Codes,
    /// Priority names and their levels; lower is served first. When the table is present it
    /// replaces the defaults (`vip = 0`, `normal = 5`, `low = 10`) entirely.
    pub priorities: BTreeMap<String, u32>,
    /// SIP peers whose INVITEs may enter queues, and where callbacks are sent.
    #[serde(rename = "trunk", skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<Trunk>,
    /// The queues, in file order (a queue's index is its position here).
    #[serde(rename = "queue", skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueConfig>,
    /// Dialled number → queue and priority.
    #[serde(rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Callers who get a given priority whatever they dial.
    #[serde(rename = "vip", skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<Vip>,
    /// Softphone users who take calls.
    #[serde(rename = "agent", skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<Agent>,
    /// Users who may listen to, whisper to and barge into agents' calls.
    #[serde(rename = "supervisor", skip_serializing_if = "Vec::is_empty")]
    pub supervisors: Vec<Supervisor>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sip: Sip::default(),
            admin: Admin::default(),
            store: Store::default(),
            cluster: Cluster::default(),
            media: Media::default(),
            codes: Codes::default(),
            priorities: [("vip", 0), ("normal", 5), ("low", 10)]
                .into_iter()
                .map(|(name, level)| (name.to_owned(), level))
                .collect(),
            trunks: Vec::new(),
            queues: Vec::new(),
            routes: Vec::new(),
            vips: Vec::new(),
            agents: Vec::new(),
            supervisors: Vec::new(),
        }
    }
}

/// `[sip]`: signalling listener and media ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    /// Address SIP listens on, over UDP and TCP alike (RFC 3261 §18).
    pub listen: SocketAddr,
    /// Address of the SIP-over-TLS listener; `None` (written `""`, the default) disables TLS.
    #[serde(with = "optional_addr")]
    pub listen_tls: Option<SocketAddr>,
    /// The TLS certificate chain (PEM), relative to the working directory. Created
    /// self-signed, with its key, when TLS is on and neither file exists.
    pub tls_cert: PathBuf,
    /// The TLS private key (PEM) for `tls_cert`.
    pub tls_key: PathBuf,
    /// Seconds a SIP connection (TCP, TLS) may stay silent before holdfast closes it; a
    /// phone keeps its connection with CRLF keep-alives (RFC 5626 §4.4.1) or re-registering.
    pub connection_idle: u32,
    /// SIP connections one IP address may hold open at once; more are refused at accept.
    pub max_connections_per_source: u32,
    /// Address written into Contact headers and SDP `c=` lines.
    pub public_address: IpAddr,
    /// Ports for RTP (even ports only are used).
    pub rtp_ports: PortRange,
    /// Concurrent calls beyond which INVITEs get `503` with `Retry-After`.
    pub max_calls: u32,
    /// Digest realm in the `401` challenge to REGISTER; agents' HA1 values are hashed with it.
    pub realm: String,
    /// Digest algorithms offered to registering agents, most preferred first (RFC 8760).
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Session interval (seconds) holdfast asks of trunk calls (RFC 4028): the call is
    /// refreshed every half interval, and one whose refresh fails or never comes is hung
    /// up, so a caller whose BYE was lost does not wait forever. 0: only when the caller
    /// asks for session timers.
    pub session_expires: u32,
    /// Smallest session interval accepted (RFC 4028 `Min-SE`); shorter asks get `422`.
    pub min_se: u32,
    /// Networks whose failed REGISTER logins never block them (docs/behaviour.md §9): an
    /// office you trust, a monitoring host. Failures are still counted and logged.
    pub auth_never_block: Vec<Cidr>,
    /// Live server transactions beyond which new requests are refused statelessly (`503`
    /// with `Retry-After`): the bound on SIP state under a flood (docs/behaviour.md §9).
    pub max_transactions: u32,
    /// Live server transactions one source address may hold; its requests beyond are
    /// dropped. Trunk sources and `auth_never_block` networks are exempt.
    pub max_transactions_per_source: u32,
}

/// A Digest algorithm name as written in the config (RFC 8760 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    /// `MD5` (RFC 3261): what every phone speaks.
    #[serde(rename = "MD5")]
    Md5,
    /// `SHA-256` (RFC 8760).
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Default for Sip {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            listen_tls: None,
            tls_cert: PathBuf::from("tls/holdfast.crt"),
            tls_key: PathBuf::from("tls/holdfast.key"),
            connection_idle: 600,
            max_connections_per_source: 100,
            public_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_ports: PortRange::new(20000, 29999).expect("20000-29999 is a valid range"),
            max_calls: 10_000,
            realm: "holdfast".to_owned(),
            // SHA-256 preferred; a phone that gives up on it is offered MD5 alone on its
            // next try (sip::auth::offer).
            digest_algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            session_expires: 1800,
            min_se: 90,
            auth_never_block: Vec::new(),
            max_transactions: 200_000,
            max_transactions_per_source: 1_000,
        }
    }
}

/// `[admin]`: the HTTP API and metrics listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Listen address; `None` (written `""`) disables the admin API.
    #[serde(with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// Bearer token every admin request must carry (`Authorization: Bearer …`, or
    /// `?access_token=…` for the wallboard); empty = no token asked.
    pub token: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))),
            token: String::new(),
        }
    }
}

/// `[store]`: durable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Directory holding the SQLite database.
    pub data_dir: PathBuf,
    /// Which database keeps the durable state.
    pub backend: StoreBackend,
    /// The PostgreSQL server (`backend = "postgres"`), a libpq-style URL such as
    /// `postgres://holdfast@127.0.0.1:5432/holdfast`.
    pub url: String,
    /// Keep each call on the line in the store so a restarted process takes it back
    /// (docs/behaviour.md §13); `false` saves two row writes per call and loses the calls
    /// on a crash.
    pub keep_calls: bool,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded SQLite file in `data_dir` (one node).
    #[default]
    Sqlite,
    /// A PostgreSQL server, shared by every node of a cluster (docs/cluster.md).
    Postgres,
}

/// `[cluster]`: this node's place among several sharing one PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This node's name, unique among the nodes; empty: the machine's host name.
    pub node: String,
}

impl Cluster {
    /// The node name in use: `node`, or the host name when it is empty.
    #[must_use]
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "holdfast".to_owned())
    }
}

impl Default for Store {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            backend: StoreBackend::Sqlite,
            url: String::new(),
            keep_calls: true,
        }
    }
}

/// `[media]`: audio files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    /// Hold music files, played in order and looped.
    pub music: Vec<PathBuf>,
    /// Directory of prompt clips.
    pub prompts: PathBuf,
    /// Media threads (RTP shards). Absent: one per available core, leaving one core for
    /// signalling and the admin API when there are more than two ([`Media::shard_count`]).
    pub shards: Option<u32>,
    /// Pin shard `i` to one core of the process's allowed set (Linux `sched_setaffinity`).
    pub pin_shards: bool,
    /// Where call recordings are written: `<recordings>/<YYYY-MM-DD>/<call-id>.wav`
    /// (`[[queue]] record`).
    pub recordings: PathBuf,
    /// Day directories of recordings older than this many days are deleted (checked at
    /// start and every hour); 0 keeps them all.
    pub recordings_keep_days: u32,
}

impl Default for Media {
    fn default() -> Self {
        Self {
            music: vec![PathBuf::from("media/music/hold.flac")],
            prompts: PathBuf::from("media/prompts/en"),
            shards: None,
            pin_shards: false,
            recordings: PathBuf::from("data/recordings"),
            recordings_keep_days: 0,
        }
    }
}

/// The most media shards `[media] shards` may ask for.
pub const MAX_SHARDS: u32 = 1024;

impl Media {
    /// How many media shards to start: `shards` when set, else [`default_shards`] of the
    /// cores this process may run on.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        match self.shards {
            Some(n) => n.clamp(1, MAX_SHARDS) as usize,
            None => default_shards(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
        }
    }
}

/// One shard per core, but one core left to signalling (the controller's thread, the admin
/// API) when there are more than two: on two cores the shards and the controller share, as
/// media is most of the work and the controller's share is small (BENCHMARKS.md, "Cores").
#[must_use]
pub fn default_shards(cores: usize) -> usize {
    if cores > 2 { cores - 1 } else { cores.max(1) }
}

/// `[[trunk]]`: a SIP peer that sends inbound calls and takes callback calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Trunk {
    /// Name used in logs.
    pub name: String,
    /// Sources whose INVITEs may enter queues.
    pub allow: Vec<Cidr>,
    /// Where callback INVITEs are sent.
    pub address: SocketAddr,
    /// Digest user name if the trunk challenges our INVITEs; empty for none.
    pub username: String,
    /// Digest password for `username`.
    pub password: String,
    /// Whether this trunk's `P-Asserted-Identity` names the caller (RFC 3325 §5: only
    /// within a trust domain); `false`: the `From` user does.
    pub trust_asserted_identity: bool,
    /// How holdfast reaches `address`: over UDP, or over a TCP connection it opens (and
    /// opens again when it closes).
    pub transport: TrunkTransport,
}

/// How holdfast sends to a trunk (docs/behaviour.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    /// Datagrams.
    #[default]
    Udp,
    /// A TCP connection holdfast opens.
    Tcp,
}

impl Default for Trunk {
    fn default() -> Self {
        Self {
            name: "carrier".to_owned(),
            allow: vec!["127.0.0.0/8".parse().expect("valid CIDR literal")],
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 5070)),
            username: String::new(),
            password: String::new(),
            trust_asserted_identity: true,
            transport: TrunkTransport::Udp,
        }
    }
}

/// How a caller is joined to an agent (docs/behaviour.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMode {
    /// holdfast calls the agent and relays RTP between the two legs.
    Relay,
    /// holdfast transfers the caller to the agent with REFER (RFC 3515).
    Refer,
}

/// `[[route]]`: a dialled number (Request-URI user) → queue and priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// The dialled number, or `"*"` for any number without an exact route.
    pub number: String,
    /// Name of the queue.
    pub queue: String,
    /// Name of the priority from `[priorities]`.
    pub priority: String,
    /// The language its callers hear (`en`, `es`, `de`); left out: the queue's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::media::prompts::Language>,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            number: String::new(),
            queue: String::new(),
            priority: "normal".to_owned(),
            language: None,
        }
    }
}

/// `[[vip]]`: a caller who gets a priority whatever number they dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vip {
    /// The caller's number (From / P-Asserted-Identity user), compared exactly.
    pub caller: String,
    /// Name of the priority from `[priorities]`.
    pub priority: String,
}

impl Default for Vip {
    fn default() -> Self {
        Self {
            caller: String::new(),
            priority: "vip".to_owned(),
        }
    }
}

/// `[[agent]]`: a softphone user who registers and takes calls.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    /// SIP user name for REGISTER (required, unique).
    pub user: String,
    /// Plain password; exactly one of `password` and `ha1` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Precomputed digest HA1 (hex MD5 or SHA-256 of `user:realm:password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha1: Option<String>,
    /// Queue names in order of importance; empty in the file means every queue in file
    /// order, and is filled in so when loading.
    pub queues: Vec<String>,
    /// Tier per queue name (1 = first, the default): a tier-2 agent of a queue gets its
    /// callers only while no tier-1 agent of it is free.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, u32>,
}

/// An agent's secret, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The plain password.
    Password(&'a str),
    /// The precomputed HA1 hex string.
    Ha1(&'a str),
}

impl Agent {
    /// The configured secret; `None` only for a hand-built agent that skipped validation.
    pub fn credential(&self) -> Option<Credential<'_>> {
        match (&self.password, &self.ha1) {
            (Some(password), None) => Some(Credential::Password(password)),
            (None, Some(ha1)) => Some(Credential::Ha1(ha1)),
            _ => None,
        }
    }
}

impl Config {
    /// The effective configuration as TOML, for `holdfast check-config`. Agent passwords,
    /// HA1 values and trunk passwords are replaced by `"<redacted>"` so the output can be
    /// pasted into a ticket.
    pub fn to_toml_string(&self) -> String {
        let mut shown = self.clone();
        let redact = |s: &mut String| {
            if !s.is_empty() {
                *s = "<redacted>".to_owned();
            }
        };
        for agent in &mut shown.agents {
            agent.password.as_mut().map(redact);
            agent.ha1.as_mut().map(redact);
        }
        for trunk in &mut shown.trunks {
            redact(&mut trunk.password);
        }
        for supervisor in &mut shown.supervisors {
            redact(&mut supervisor.password);
        }
        redact(&mut shown.admin.token);
        shown.store.url = redact_url_password(&shown.store.url);
        toml::to_string(&shown).expect("every config value has a TOML form")
    }

    /// Index of the queue with this name in [`Config::queues`].
    pub fn queue_index(&self, name: &str) -> Option<usize> {
        self.queues.iter().position(|q| q.name == name)
    }

    /// Level of a named priority.
    pub fn priority(&self, name: &str) -> Option<u32> {
        self.priorities.get(name).copied()
    }

    /// Indices of the agent's queues, most important first.
    pub fn agent_queues(&self, agent: &Agent) -> Vec<usize> {
        agent
            .queues
            .iter()
            .filter_map(|name| self.queue_index(name))
            .collect()
    }

    /// Whether `ip` is inside some trunk's `allow` list (docs/behaviour.md §1: INVITEs from anywhere
    /// else get `403`).
    pub fn is_trunk_source(&self, ip: std::net::IpAddr) -> bool {
        self.trunks
            .iter()
            .any(|trunk| trunk.allow.iter().any(|cidr| cidr.contains(ip)))
    }

    /// Whether a `P-Asserted-Identity` from `ip` may name the caller: `ip` is a trunk source
    /// and that trunk has `trust_asserted_identity` (RFC 3325 §5).
    pub fn trusts_asserted_identity(&self, ip: std::net::IpAddr) -> bool {
        self.trunks.iter().any(|trunk| {
            trunk.trust_asserted_identity && trunk.allow.iter().any(|cidr| cidr.contains(ip))
        })
    }

    /// The language a caller dialling `dialled_user` hears: its route's, else its queue's.
    pub fn language(&self, dialled_user: &str) -> crate::media::prompts::Language {
        self.find_route(dialled_user)
            .and_then(|r| {
                r.language
                    .or_else(|| self.queue_index(&r.queue).map(|i| self.queues[i].language))
            })
            .unwrap_or_default()
    }

    /// Every language a route or queue speaks, English first (always loaded).
    pub fn languages(&self) -> Vec<crate::media::prompts::Language> {
        let mut all = vec![crate::media::prompts::Language::En];
        let used = self
            .routes
            .iter()
            .filter_map(|r| r.language)
            .chain(self.queues.iter().map(|q| q.language));
        for language in used {
            if !all.contains(&language) {
                all.push(language);
            }
        }
        all
    }

    /// Where a call goes: (queue index, priority level). The exact `number` route wins over
    /// `"*"`; a `[[vip]]` entry for the caller then overrides the priority. `None` means no
    /// route (the call gets `404 Not Found`).
    pub fn route(&self, dialled_user: &str, caller_user: &str) -> Option<(usize, u32)> {
        let route = self.find_route(dialled_user)?;
        let queue = self.queue_index(&route.queue)?;
        let priority = self
            .vips
            .iter()
            .find(|v| v.caller == caller_user)
            .map_or(route.priority.as_str(), |v| v.priority.as_str());
        Some((queue, self.priority(priority)?))
    }

    /// The route of a dialled number: its exact number, else `"*"`.
    fn find_route(&self, dialled_user: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.number == dialled_user)
            .or_else(|| self.routes.iter().find(|r| r.number == "*"))
    }
}

/// `Option<SocketAddr>` written as a string where `""` means "off".
mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "invalid address {text:?}: expected IP:PORT, or \"\" to disable"
            ))
        })
    }
}

#[cfg(test)]
mod tests;

/// `postgres://user:secret@host/db` with the password replaced by `<redacted>`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}
