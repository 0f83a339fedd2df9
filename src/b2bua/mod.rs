//! The call controller: the one place that joins a SIP dialog, a queue entry and a media
//! stream (ARCHITECTURE.md "Who may import whom").
//!
//! Sans-IO like the layers under it: the driver feeds datagrams, timeouts and media events
//! with the current time, then drains [`B2bua::poll_transmit`] and sleeps until
//! [`B2bua::poll_timeout`]. Media is an outbox too ([`B2bua::poll_media`], see `media`):
//! the controller never touches a socket, and its randomness comes from one seeded
//! [`Ids`], so tests and fuzz cases replay a run exactly.
//!
//! Inbound call flow (docs/behaviour.md §2): admission (trunk allowlist → `403`, `max_calls` → `503`,
//! route → `404`, SDP → `488`, full queue → `486`), then `200 OK` with our SDP answer, the
//! caller joins its queue and hears hold music until it hangs up (RFC 3261 §15: BYE).

pub mod announce;
mod call;
mod callback;
mod callbacks;
mod cluster;
mod codes;
mod dialback;
mod dialback_end;
mod ending;
pub mod events;
mod flows;
mod history;
mod hold;
mod hours;
mod ids;
mod inbound;
mod kept_agents;
mod leg;
mod legs;
mod log_limit;
pub mod media;
mod monitor;
mod no_agents;
mod overflow;
mod reconcile;
mod recording;
mod refer;
mod register;
mod requests;
mod resume;
mod ring_all;
pub mod scheduled;
pub mod screen;
mod session;
pub mod snapshot;
mod survive;
mod timers;
mod waits;
pub use survive::RestoreCallError;
pub use waits::estimate_outcome;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use call::{Call, CallKey, CallState, CallTimer, Calls, NewCall};
pub use callback::{AttemptToken, RestoreError, StoreRequest};
pub use cluster::{REMOTE, RemoteEntry, is_remote};
pub use ids::Ids;
pub use leg::{AgentLeg, LegFor, LegKey, LegState, Legs};
pub use legs::DispatchError;
pub use media::{MediaCommand, MediaPlane, NoFreePort};

use crate::config::Config;
use crate::media::prompts::PromptPacks;
use crate::queue::dispatch::{AgentSpec, Agents};
use crate::queue::estimate::HandleTimes;
use crate::queue::{EntryId, LeaveReason, QueueId, Queues};
use crate::sip::message;
use crate::sip::sdp::Codec;
use crate::sip::transaction::{TimerConfig, Transactions, Transmit};
use crate::store::Record;

/// Hold music encoded once per codec at start-up (docs/behaviour.md §4): every call shares these bytes.
#[derive(Debug, Clone)]
pub struct HoldMusic {
    /// G.711 µ-law frames, 160 bytes each.
    pub pcmu: Bytes,
    /// G.711 A-law frames, 160 bytes each.
    pub pcma: Bytes,
}

impl HoldMusic {
    /// The frames for a negotiated codec.
    pub fn for_codec(&self, codec: Codec) -> Bytes {
        match codec {
            Codec::Pcmu => self.pcmu.clone(),
            Codec::Pcma => self.pcma.clone(),
        }
    }
}

/// The SIP side of the controller: transactions, what we put in Via and Contact, replies
/// sent without a transaction, and the seeded source of tags and branches.
#[derive(Debug)]
pub struct Signalling {
    /// `host:port` we put in Via and Contact.
    pub sent_by: String,
    /// `host:port` of the TLS listener, for Via and Contact on TLS flows.
    pub tls_sent_by: String,
    /// Peers reached over a connection (RFC 5626 flows), by their address.
    pub flows: HashMap<SocketAddr, crate::sip::transport::Transport>,
    /// Flows the configuration asks for (`[[trunk]] transport = "tcp"`): kept when their
    /// connection closes, so the next request opens a new one.
    pub pinned: HashSet<SocketAddr>,
    /// RFC 3261 §17 transactions.
    pub transactions: Transactions,
    /// Stateless replies (to messages that never became a transaction).
    pub stateless: VecDeque<Transmit>,
    /// The one random source (tags, branches, nonce secret), seeded by the caller.
    pub ids: Ids,
}

impl Signalling {
    /// BYE in `dialog` to `destination` through a new client transaction (RFC 3261 §15.1.1).
    fn bye(
        &mut self,
        now: Instant,
        dialog: &mut crate::sip::dialog::Dialog,
        destination: SocketAddr,
    ) {
        let bye = dialog.request(rsip::Method::Bye, &self.sent_by, &self.ids.branch());
        if let Err(error) = self.transactions.send_request(now, destination, bye) {
            tracing::warn!(%error, "BYE not sent");
        }
    }
}

/// Hold music and announcement clips, encoded once at start-up and shared by every call.
#[derive(Debug)]
pub struct Audio {
    /// The hold music per codec.
    pub music: HoldMusic,
    /// The announcement clips, one pack per language spoken.
    pub prompts: PromptPacks,
}

/// What the controller counts: its own counters and the call-event observations.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagram, call and refusal counters.
    pub stats: Stats,
    /// Call-event counters and histograms for `/metrics`.
    pub observations: events::Observations,
    /// Requests answered or dropped before the transaction layer.
    pub screen: screen::ScreenStats,
    /// The log line for those, rate-limited.
    pub screen_log: log_limit::LogLimit,
}

/// Counters the controller keeps for metrics and tests.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Datagrams that did not parse as SIP (replied 4xx/5xx or dropped).
    pub parse_errors: u64,
    /// Of those, dropped without any reply (no routable Via, or a response).
    pub dropped: u64,
    /// Calls admitted into a queue.
    pub calls_answered: u64,
    /// Calls that left the queue by hanging up.
    pub calls_abandoned: u64,
    /// INVITEs refused, by status code.
    pub rejected: BTreeMap<u16, u64>,
}

/// The controller: pure, fed `now`; SIP out through [`B2bua::poll_transmit`], media
/// commands out through [`B2bua::poll_media`].
pub struct B2bua {
    config: Config,
    /// The transaction layer, our sent-by, stateless replies and the random source.
    sip: Signalling,
    /// The media outbox and the stream id and port allocators.
    media: MediaPlane,
    /// Hold music and announcement clips, encoded once.
    audio: Audio,
    queues: Queues,
    /// The trunk calls, their indexes and deadlines.
    calls: Calls,
    next_key: u64,
    /// Counters and histograms for metrics and tests.
    counters: Counters,
    draining: bool,
    agents: Agents,
    /// Agents' registrations: bindings, Digest, the failure limiter, the algorithm offer.
    registration: register::Registration,
    /// Entries whose caller an agent's phone is ringing for (they keep their place).
    offered: HashSet<EntryId>,
    /// Calls to agents' phones, their indexes and ring deadlines.
    legs: Legs,
    /// REFER client transactions → the caller being transferred.
    transfers_by_client: HashMap<crate::sip::transaction::ClientKey, CallKey>,
    /// Completed handle times per queue (docs/behaviour.md §4 estimator input).
    handle_times: Vec<HandleTimes>,
    /// Per queue: the calibration of the wait estimate and what it learns from.
    waits: Vec<waits::QueueWaits>,
    /// Records for the durable store, stamped with when they happened; the driver writes them.
    journal: VecDeque<(Instant, Record)>,
    /// Callbacks: offers, commits, waiting callbacks and dial-backs (docs/behaviour.md §6).
    callbacks: callbacks::Callbacks,
    /// Our session refreshes in flight → their call.
    refreshes: HashMap<crate::sip::transaction::ClientKey, CallKey>,
    /// One node of a cluster: the replica of the other nodes and the outbox to them.
    cluster: Option<cluster::Cluster>,
    /// Queues with `when_no_agents` that nobody serves: when their grace period ends, and
    /// whether it has been applied.
    no_agents: HashMap<QueueId, (Instant, bool)>,
    /// Each queue's opening hours (`[[queue]] hours`, `timezone`).
    schedules: Vec<crate::queue::hours::Schedule>,
    /// The wall clock (Unix ms) at an instant, set by the driver.
    wall: (Instant, i64),
    /// When a queue next opens or closes.
    hours_change: Option<Instant>,
    /// Places kept for callers who hung up (`[[queue]] resume_within`).
    resumes: resume::Resumes,
    /// Calls kept for a restart: those to write, the liveness probes of restored ones.
    survival: survive::Survival,
    /// Callbacks scheduled through the admin API, waiting for their time.
    scheduled: scheduled::Scheduled,
    /// Per queue: today's and the last 15 minutes' figures (service level…).
    service: Vec<crate::queue::service::ServiceFigures>,
    /// Per queue: waiting callers and longest wait over the last hour.
    history: history::History,
    /// Agent streams hearing `announce_to_agent`, and their legs: connected when it ends.
    whispering: HashMap<crate::media::engine::StreamId, LegKey>,
    /// Agent legs monitored by a supervisor, and the supervisor's call.
    watched: HashMap<LegKey, CallKey>,
}

impl B2bua {
    /// A controller for `config`, sending media through `media`.
    /// A controller for `config`; `seed` seeds every random value it makes (production
    /// passes a random one, tests a fixed one). RTP streams spread over `media_shards`.
    pub fn new(
        config: Config,
        music: HoldMusic,
        prompts: impl Into<PromptPacks>,
        now: Instant,
        seed: u64,
    ) -> Self {
        let mut ids = Ids::new(seed);
        let service = config
            .queues
            .iter()
            .map(|q| {
                crate::queue::service::ServiceFigures::new(
                    Duration::from_secs(q.service_level),
                    now,
                )
            })
            .collect();
        let media = MediaPlane::new(config.sip.rtp_ports, config.media.shard_count());
        let port = config.sip.listen.port();
        let sent_by = format!("{}:{}", config.sip.public_address, port);
        let tls_port = config.sip.listen_tls.map_or(5061, |a| a.port());
        let tls_sent_by = format!("{}:{}", config.sip.public_address, tls_port);
        let mut queues = Queues::new();
        for queue in &config.queues {
            queues.add_queue(queue.name.clone(), queue.max_len as usize);
        }
        let mut agents = Agents::new(config.agents.iter().map(|agent| {
            AgentSpec {
                user: agent.user.clone(),
                queues: config
                    .agent_queues(agent)
                    .into_iter()
                    .map(QueueId)
                    .collect(),
                tiers: agent
                    .tiers
                    .iter()
                    .filter_map(|(name, &tier)| Some((QueueId(config.queue_index(name)?), tier)))
                    .collect(),
            }
        }));
        for (i, queue) in config.queues.iter().enumerate() {
            agents.set_strategy(QueueId(i), queue.strategy);
        }
        agents.seed(seed);
        let handle_times: Vec<HandleTimes> = config
            .queues
            .iter()
            .map(|q| HandleTimes::new(Duration::from_secs(q.default_handle_time)))
            .collect();
        let authenticator = register::new_authenticator(
            now,
            &config.sip.realm,
            &config.sip.digest_algorithms,
            ids.secret(),
        );
        let mut b2bua = Self {
            config,
            sip: Signalling {
                sent_by,
                tls_sent_by,
                flows: HashMap::new(),
                pinned: HashSet::new(),
                transactions: Transactions::new(TimerConfig::default()),
                stateless: VecDeque::new(),
                ids,
            },
            media,
            audio: Audio {
                music,
                prompts: prompts.into(),
            },
            queues,
            calls: Calls::default(),
            next_key: 1,
            counters: Counters::default(),
            draining: false,
            agents,
            registration: register::Registration::new(authenticator),
            offered: HashSet::new(),
            legs: Legs::default(),
            transfers_by_client: HashMap::new(),
            waits: handle_times.iter().map(|_| Default::default()).collect(),
            handle_times,
            journal: VecDeque::new(),
            callbacks: callbacks::Callbacks::default(),
            refreshes: HashMap::new(),
            cluster: None,
            no_agents: HashMap::new(),
            schedules: Vec::new(),
            wall: (now, 0),
            hours_change: None,
            resumes: resume::Resumes::default(),
            survival: survive::Survival::default(),
            scheduled: scheduled::Scheduled::default(),
            service,
            history: history::History::default(),
            whispering: HashMap::new(),
            watched: HashMap::new(),
        };
        b2bua.schedules = Self::schedules(&b2bua.config);
        b2bua.pin_trunk_flows();
        b2bua
    }

    /// Handle times recorded before a restart, oldest first (docs/behaviour.md §4: they persist).
    pub fn restore_handle_times(
        &mut self,
        queue: &str,
        history: impl IntoIterator<Item = Duration>,
    ) {
        if let Some(index) = self.config.queue_index(queue) {
            let default = Duration::from_secs(self.config.queues[index].default_handle_time);
            self.handle_times[index] = HandleTimes::with_history(default, history);
        }
    }

    /// The next record for the durable store, with when it happened.
    #[must_use]
    pub fn poll_record(&mut self) -> Option<(Instant, Record)> {
        self.journal.pop_front()
    }

    /// The mean handle time the estimator uses for a queue.
    pub fn average_handle_time(&self, queue: QueueId) -> Option<Duration> {
        self.handle_times.get(queue.0).map(HandleTimes::mean)
    }

    /// One UDP datagram arrived from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        match message::parse(datagram) {
            Ok(rsip::SipMessage::Request(mut request)) => {
                message::stamp_received(&mut request, source);
                if self.screen(now, &request, source) {
                    return self.process_events(now);
                }
                if let Err(error) = self.sip.transactions.handle_request(now, source, request) {
                    self.counters.stats.parse_errors += 1;
                    tracing::debug!(%source, %error, "request refused by the transaction layer");
                }
            }
            Ok(rsip::SipMessage::Response(response)) => {
                if let Err(error) = self.sip.transactions.handle_response(now, source, response) {
                    self.counters.stats.dropped += 1;
                    tracing::debug!(%source, %error, "response dropped");
                }
            }
            Err(error) => {
                self.counters.stats.parse_errors += 1;
                match error.reply() {
                    // §18.2.2: the reply goes to the datagram's source, whatever Via says.
                    Some(payload) => {
                        tracing::debug!(%source, %error, "malformed SIP answered");
                        self.sip.stateless.push_back(Transmit {
                            destination: source,
                            payload: payload.into(),
                        });
                    }
                    None => {
                        self.counters.stats.dropped += 1;
                        tracing::debug!(%source, %error, "malformed SIP dropped");
                    }
                }
            }
        }
        self.process_events(now);
    }

    /// The deadline from [`Self::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sip.transactions.handle_timeout(now);
        self.registration.registrar.handle_timeout(now);
        self.agents.handle_timeout(now);
        self.expire_rings(now);
        self.expire_callback_deadlines(now);
        self.run_announcements(now);
        self.run_max_waits(now);
        self.run_session_timers(now);
        self.cluster_timeouts(now);
        self.run_no_agents(now);
        self.run_hours(now);
        self.run_scheduled(now);
        self.process_events(now);
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        // Requests too large for UDP (RFC 3261 §18.1.1): their destinations become TCP flows
        // the driver connects to ([`Self::flow`]).
        while let Some(destination) = self.sip.transactions.poll_stream() {
            self.sip
                .flows
                .entry(destination)
                .or_insert(crate::sip::transport::Transport::Tcp);
        }
        let transmit = self
            .sip
            .stateless
            .pop_front()
            .or_else(|| self.sip.transactions.poll_transmit())?;
        Some(self.over_flow(transmit))
    }

    /// Seeds the generator of SRTP master keys (production: 32 bytes from the OS, so keys are
    /// not a function of the 64-bit seed the rest of the controller replays from).
    pub fn seed_keys(&mut self, seed: [u8; 32]) {
        self.sip.ids.seed_keys(seed);
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.sip.transactions.poll_timeout(),
            self.registration.registrar.poll_timeout(),
            self.agents.poll_timeout(),
            self.legs.poll_timeout(),
            self.calls.poll_timeout(),
            self.callbacks.poll_timeout(),
            self.cluster
                .as_ref()
                .and_then(cluster::Cluster::poll_timeout),
            self.no_agents_timeout(),
            self.hours_timeout(),
            self.scheduled.poll_timeout(),
            self.history.next_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.counters.stats
    }

    /// Calls currently up.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The queues (read-only), for the admin API and tests.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// Open transactions (finishing retransmissions count too), so a graceful stop can
    /// wait for them.
    pub fn transactions_in_flight(&self) -> usize {
        self.sip.transactions.len()
    }

    /// Live server transactions (requests we received and still keep state for).
    pub fn server_transactions(&self) -> usize {
        self.sip.transactions.servers()
    }

    /// Requests we sent (our BYEs, CANCELled INVITEs) still waiting for a final response:
    /// what a graceful stop waits for. Transactions that only linger to absorb
    /// retransmissions (Timers D, J, K) are not counted.
    pub fn requests_awaiting_response(&self) -> usize {
        self.sip.transactions.awaiting_final()
    }

    /// Graceful stop (docs/behaviour.md §9): refuse new INVITEs with `503` and hang up every caller
    /// with BYE, so nobody is left listening to a dead line.
    pub fn shutdown(&mut self, now: Instant) {
        self.draining = true;
        for key in self.calls.keys() {
            // A caller still ringing an agent has no confirmed dialog to BYE: its INVITE
            // gets a final `480` instead (RFC 3261 §15: BYE only after the 2xx).
            let early = self.calls.get_mut(&key).and_then(|c| {
                let invite = c.state.answer()?;
                Some((invite, c.invite.clone(), c.dialog.local_tag.clone()))
            });
            match early {
                Some((invite, server, tag)) => {
                    let response =
                        message::with_to_tag(message::response(&invite, 480, None), &tag);
                    self.respond(now, &server, response);
                    self.release(now, key, LeaveReason::Removed);
                }
                None => self.hang_up(now, key, LeaveReason::Removed),
            }
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    fn process_events(&mut self, now: Instant) {
        loop {
            self.process_transaction_events(now);
            self.process_registrar_events(now);
            self.drain_agent_events();
            self.watch_staffing(now);
            self.dispatch(now);
            // Dispatch sends INVITEs, which may already have produced events (a send
            // failure); loop until everything is quiet.
            if !self.sip.transactions.has_events() {
                break;
            }
        }
        self.write_kept(now);
        self.sample_history(now);
        // Every input ends here: debug builds (tests, end-to-end runs) check that the
        // tables' indexes still agree with what they index.
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Panics when a table's indexes or deadline sets disagree with its rows.
    pub fn check_invariants(&self) {
        self.calls.check_invariants();
        self.legs.check_invariants();
        self.callbacks.check_invariants();
    }
}

impl B2bua {
    /// The agents (read-only), for the admin API and tests.
    pub fn agents(&self) -> &Agents {
        &self.agents
    }
}

/// Adds an untyped header.
fn push_other(response: &mut rsip::Response, name: &str, value: &str) {
    response
        .headers
        .push(rsip::Header::Other(name.to_string(), value.to_string()));
}

#[cfg(test)]
mod tests;
