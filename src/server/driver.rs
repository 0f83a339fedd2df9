//! [`Server`]: the thin tokio driver around the controller (ARCHITECTURE.md "The driver").
//! [`Server::start`] loads the media, opens the store, starts the media engine, binds the
//! SIP socket and the admin listener and restores what the store holds; [`Server::run`]
//! feeds the controller datagrams, timeouts, media events, store replies and admin requests
//! with the current time, carries out what it asks, and stops gracefully.
//!
//! Every task stops from one place: when `run` ends it tells the admin listener to stop
//! (axum's graceful shutdown; open event streams end with the controller's answers), stops
//! the media engine and drains the store thread. Channels between the parts are bounded,
//! each with its policy when full: admin requests (64, the HTTP handler waits), media
//! commands (the controller waits for the shard), media events (dropped and counted),
//! store writes (records dropped and counted; callback writes wait). Store replies the
//! controller needs are awaited here, in one set, not by a task each.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::streams::{self, Limits, Outbox, StreamEvent};
use super::{
    SIP_RECEIVE_BUFFER, ServeError, WallClock, answer_admin, enlarge_receive_buffer, load_music,
    load_prompts, log_media_stats, raise_nofile_limit, restore_callbacks, write_record,
};
use crate::admin::{self, AdminRequest};
use crate::b2bua::B2bua;
use crate::config::Config;
use crate::media::engine::{EngineConfig, MediaEngine, MediaEvents};
use crate::store::{StoreHandle, StoreThread};
use startup::{check_recordings, ledger_path, open_store};
use store_io::{PendingReply, StoreReply};

mod media_io;
mod startup;
mod store_io;

/// Longest a graceful stop waits for BYE responses: a peer that never answers must not keep
/// a supervisor waiting (Timer F would take 32 s).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(4);

/// Longest the admin listener is given to close its connections after the stop.
const ADMIN_STOP_BOUND: Duration = Duration::from_secs(2);

/// Admin requests queued for the controller; a full queue makes the HTTP handler wait.
const ADMIN_CAPACITY: usize = 64;

/// Sockets bound ahead of need for the controller's streams (see `b2bua::media`).
type Reserve = HashMap<u16, std::net::UdpSocket>;

/// holdfast, started: sockets bound, store open, callbacks restored.
pub struct Server {
    socket: UdpSocket,
    sip: SocketAddr,
    engine: MediaEngine,
    media_events: MediaEvents,
    reserve: Reserve,
    store: StoreHandle,
    store_thread: StoreThread,
    clock: WallClock,
    b2bua: B2bua,
    admin_requests: mpsc::Receiver<AdminRequest>,
    admin: Option<tokio::task::JoinHandle<()>>,
    admin_addr: Option<SocketAddr>,
    /// The one shutdown signal the other tasks watch.
    stop: watch::Sender<bool>,
    /// What the TCP and TLS connections say.
    stream_events: mpsc::Receiver<StreamEvent>,
    /// Each connection's send queue, by peer address.
    connections: HashMap<SocketAddr, Arc<Outbox>>,
    /// Opens holdfast's own connections.
    connector: streams::Connector,
    tls_addr: Option<SocketAddr>,
    /// This node's sequence slot when it is one of a cluster's (shared store).
    slot: Option<u8>,
    /// The cluster's log, when this node is one of a cluster's.
    cluster: Option<super::cluster::Link>,
    /// Where a new process asks to take over (`handover`).
    control: Option<super::handover::Control>,
    /// `[sip] listen` as configured: a new process must be configured the same to take over.
    listen: SocketAddr,
}

impl Server {
    /// Loads music and prompts, opens the store, starts the media engine, binds SIP and the
    /// admin listener, restores handle times and callbacks.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        raise_nofile_limit();
        let music = load_music(&config)?;
        let prompts = load_prompts(&config)?;
        // Everything that may fail on the configuration fails before a running process is
        // asked to hand over.
        let tls = match config.sip.listen_tls {
            Some(addr) => Some((addr, super::tls::server_config(&config)?)),
            None => None,
        };
        let limits = Limits {
            idle: Duration::from_secs(config.sip.connection_idle.into()),
            per_source: config.sip.max_connections_per_source,
        };
        let admin_config = (
            config.admin.listen,
            config.admin.token.clone(),
            config.priorities.clone(),
            config.media.recordings.clone(),
        );
        let recordings_keep_days = config.media.recordings_keep_days;
        // A process already running on this data directory hands over (a graceful upgrade):
        // from here on, what it kept is final.
        let data_dir = config.store.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(ServeError::Handover)?;
        check_recordings(&config)?;
        let predecessor = super::handover::take_over(&data_dir, config.sip.listen)
            .map_err(ServeError::Handover)?;
        let (store, store_thread, slot) = open_store(&config)?;
        let mut histories: Vec<(String, Vec<u32>)> = Vec::new();
        let mut outcomes = Vec::new();
        for queue in &config.queues {
            let history = store
                .recent_handle_times(&queue.name, 100)
                .wait()
                .await
                .unwrap_or_default();
            histories.push((queue.name.clone(), history));
            outcomes.push(
                store
                    .recent_estimate_outcomes(&queue.name, crate::store::ESTIMATE_OUTCOMES_KEPT)
                    .wait()
                    .await
                    .unwrap_or_default(),
            );
        }
        let listen = config.sip.listen;
        let rtp = EngineConfig {
            bind_ip: config.sip.public_address,
            port_min: config.sip.rtp_ports.start(),
            port_max: config.sip.rtp_ports.end(),
            shards: config.media.shard_count(),
            pin: config.media.pin_shards,
            ledger: Some(ledger_path(&config)?),
        };
        let clock = WallClock::new();
        let cluster = match slot {
            Some(_) => Some(super::cluster::start(
                &config.store.url,
                &config.cluster.node_name(),
            )?),
            None => None,
        };
        let node = config.cluster.node_name();
        let mut b2bua = B2bua::new(config, music, prompts, Instant::now(), rand::random());
        b2bua.seed_keys(rand::random());
        let now = Instant::now();
        b2bua.set_wall_clock(now, clock.unix_ms(now));
        if let Some(slot) = slot {
            b2bua.set_seq_slot(slot);
            let now = Instant::now();
            b2bua.join_cluster(&node, now, clock.unix_ms(now));
        }
        for (queue, history) in histories {
            let count = history.len();
            b2bua.restore_handle_times(
                &queue,
                history.into_iter().map(|s| Duration::from_secs(s.into())),
            );
            if count > 0 {
                tracing::info!(%queue, count, "handle-time history restored");
            }
        }
        for outcomes in outcomes {
            let Some(queue) = outcomes.first().map(|o| o.queue.clone()) else {
                continue;
            };
            let count = outcomes.len();
            b2bua.restore_estimate_outcomes(
                &queue,
                outcomes.iter().filter_map(crate::b2bua::estimate_outcome),
            );
            tracing::info!(%queue, count, "wait-estimate outcomes restored");
        }
        // What the process before left: callbacks, and the calls on the line. All of it is
        // the controller's work; the media commands wait for the engine.
        restore_callbacks(&mut b2bua, &store, &clock).await;
        super::restore_kept(&mut b2bua, &store).await;
        // The SIP socket: the running process's, once it has stopped its media (only now do
        // its callers hear a gap), or bound here.
        let mut reserve = Reserve::new();
        let (socket, gone) = match predecessor {
            Some(predecessor) => {
                let ports = usize::from(rtp.port_max.saturating_sub(rtp.port_min)) / 2;
                predecessor.make_room(ports + 1024);
                match predecessor.finish() {
                    Ok(taken) => {
                        // Its RTP sockets stay bound: the streams reopen on them.
                        for rtp in taken.rtp {
                            if let Ok(local) = rtp.local_addr() {
                                reserve.insert(local.port(), rtp);
                            }
                        }
                        (UdpSocket::from_std(taken.sip), Some(taken.gone))
                    }
                    Err(error) => return Err(ServeError::Handover(error)),
                }
            }
            None => (UdpSocket::bind(listen).await, None),
        };
        let socket = socket.map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
        let sip = socket.local_addr().unwrap_or(listen);
        let rcvbuf = enlarge_receive_buffer(&socket, SIP_RECEIVE_BUFFER);
        tracing::info!(listen = %sip, receive_buffer = rcvbuf, "holdfast listening (SIP/UDP)");
        // After the SIP socket: a second process on the same config stops at its bind
        // before it replaces the running one's media ledger. The first RTP ports are bound
        // and the restored calls' streams go on.
        let (engine, media_events) = MediaEngine::start(rtp).map_err(ServeError::Media)?;
        media_io::flush_media(&engine, &mut reserve, &mut b2bua);
        // The process taken over from frees its listeners as it exits.
        if let Some(gone) = gone {
            gone.wait();
        }
        let (stop, stopped) = watch::channel(false);
        let (stream_events, tls_addr, connector) =
            streams::listen(sip, tls, limits, stopped.clone())
                .await
                .map_err(|(addr, source)| ServeError::Bind { addr, source })?;
        let (admin_tx, admin_requests) = mpsc::channel::<AdminRequest>(ADMIN_CAPACITY);
        let (admin_listen, token, priorities, recordings) = admin_config;
        super::retention::spawn(recordings.clone(), recordings_keep_days, stopped.clone());
        let (admin, admin_addr) = match admin_listen {
            Some(addr) => {
                let mut stopped = stopped.clone();
                let (handle, bound) =
                    admin::spawn(addr, &token, priorities, recordings, admin_tx, async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await?;
                (Some(handle), Some(bound))
            }
            None => (None, None),
        };
        let control = match super::handover::Control::bind(&data_dir) {
            Ok(control) => Some(control),
            Err(error) => {
                tracing::warn!(%error, "no control socket: a new process cannot take over from this one");
                None
            }
        };
        Ok(Self {
            socket,
            sip,
            engine,
            media_events,
            reserve,
            store,
            store_thread,
            clock,
            b2bua,
            admin_requests,
            admin,
            admin_addr,
            stop,
            stream_events,
            connections: HashMap::new(),
            connector,
            tls_addr,
            slot,
            cluster,
            control,
            listen,
        })
    }

    /// The bound SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// The bound TLS address, when TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The bound admin address, when the admin API is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Serves until `shutdown` resolves, then stops gracefully: new INVITEs get `503`, held
    /// callers get a BYE, their answers are awaited (at most [`SHUTDOWN_BOUND`]), every other
    /// task is stopped and every record is written.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let mut buf = vec![0u8; 65_536];
        tokio::pin!(shutdown);
        let mut stopping_since: Option<Instant> = None;
        let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
        // A node of a cluster renews its lease and takes over dead nodes' callbacks.
        let mut lease_tick = tokio::time::interval(crate::store::HEARTBEAT);
        let mut trim = super::MemoryTrim::default();
        let day = |clock: &WallClock| clock.unix_ms(Instant::now()).div_euclid(86_400_000);
        let mut today = day(&self.clock);
        let mut replies: FuturesUnordered<PendingReply> = FuturesUnordered::new();
        // What start-up queued leaves at once: the CANCELs of INVITEs from before a restart.
        self.send_transmits().await;
        let mut successor = None;
        loop {
            if self.slot.is_some() {
                self.b2bua.advance_seq(crate::queue::seq_floor_at(
                    u64::try_from(self.clock.unix_ms(Instant::now())).unwrap_or(0),
                ));
            }
            let sleep_until = self
                .b2bua
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, source)) => {
                        self.b2bua.handle_datagram(Instant::now(), source, &buf[..len]);
                    }
                    // ICMP errors from earlier sends surface here on some systems; they are
                    // about one peer, not the socket.
                    Err(error) => tracing::debug!(%error, "SIP recv error"),
                },
                Some(event) = self.stream_events.recv() => match event {
                    StreamEvent::Opened { peer, writer } => {
                        self.connections.insert(peer, writer);
                    }
                    StreamEvent::Message { peer, transport, bytes } => {
                        self.b2bua.handle_stream_message(Instant::now(), peer, transport, &bytes);
                    }
                    StreamEvent::Closed { peer } => {
                        self.connections.remove(&peer);
                        self.b2bua.connection_closed(Instant::now(), peer);
                    }
                },
                _ = tokio::time::sleep_until(sleep_until) => {
                    self.b2bua.handle_timeout(Instant::now());
                }
                Some(event) = self.media_events.recv() => {
                    self.b2bua.handle_media_event(Instant::now(), event);
                }
                Some(feed) = super::cluster::next_feed(&mut self.cluster) => {
                    let now = Instant::now();
                    self.b2bua.apply_cluster(now, self.clock.unix_ms(now), feed);
                }
                Some(reply) = replies.next(), if !replies.is_empty() => match reply {
                    StoreReply::Committed(token, result) => {
                        self.b2bua.callback_committed(Instant::now(), token, result);
                    }
                    StoreReply::Persisted(id, state, Err(error)) => tracing::error!(
                        %error, callback = id.0, state = state.as_str(),
                        "callback state not persisted"
                    ),
                    StoreReply::Persisted(..) => {}
                    StoreReply::AttemptRecorded(token, result) => {
                        self.b2bua.attempt_recorded(Instant::now(), token, result);
                    }
                    StoreReply::Completed(token, result) => {
                        self.b2bua.completion_recorded(Instant::now(), token, result);
                    }
                    StoreReply::Lease(Ok(adopted)) if !adopted.is_empty() => {
                        tracing::warn!(count = adopted.len(), "took over the callbacks of a node whose lease ran out");
                        super::restore_records(&mut self.b2bua, &self.store, &self.clock, adopted).await;
                    }
                    StoreReply::Lease(Ok(_)) => {}
                    StoreReply::Lease(Err(error)) => {
                        tracing::error!(%error, "cluster lease not renewed (PostgreSQL unreachable?)");
                    }
                    StoreReply::Claim((user, result)) => {
                        self.b2bua.claim_result(Instant::now(), &user, result);
                    }
                    StoreReply::SeqSet(id, Err(error)) => tracing::error!(
                        %error, callback = id.0, "scheduled callback's place not persisted"
                    ),
                    StoreReply::SeqSet(_, Ok(())) => {}
                    StoreReply::Admin(done) => {
                        super::scheduling::finish(&mut self.b2bua, &self.clock, done);
                    }
                },
                _ = lease_tick.tick(), if self.slot.is_some() && stopping_since.is_none() => {
                    let status = crate::store::NodeStatus {
                        sip: self.sip.to_string(),
                        calls: self.b2bua.calls(),
                        waiting: self.b2bua.local_waiting(),
                        agents: self.b2bua.agents().iter().filter(|(_, a)| a.state() != crate::queue::dispatch::AgentState::Offline).count(),
                    };
                    let reply = self.store.renew_lease(status);
                    replies.push(Box::pin(async move { StoreReply::Lease(reply.wait().await) }));
                }
                _ = stats_tick.tick() => {
                    log_media_stats(&self.engine);
                    if day(&self.clock) != today {
                        today = day(&self.clock);
                        self.b2bua.new_day();
                    }
                    trim.check(self.b2bua.transactions_in_flight());
                }
                Some(request) = self.admin_requests.recv() => {
                    let pending =
                        answer_admin(&mut self.b2bua, &self.engine, &self.store, &self.clock, request);
                    if let Some(pending) = pending {
                        replies.push(Box::pin(async move { StoreReply::Admin(pending.await) }));
                    }
                }
                (stream, wants) = next_successor(self.control.as_ref()), if stopping_since.is_none() => {
                    let ours = self.listen.to_string();
                    if wants == ours {
                        successor = Some(stream);
                        break;
                    }
                    tracing::warn!(%wants, %ours, "a process for another SIP address asked to take over: refused");
                    super::handover::refuse(&stream, &format!("this process listens on {ours}, not {wants}"));
                }
                _ = &mut shutdown, if stopping_since.is_none() => {
                    tracing::info!("shutting down: hanging up held callers");
                    stopping_since = Some(Instant::now());
                    self.b2bua.shutdown(Instant::now());
                }
            }
            self.flush_media();
            while let Some((at, record)) = self.b2bua.poll_record() {
                write_record(&self.store, self.clock.unix_ms(at), record);
            }
            while let Some(request) = self.b2bua.poll_store_request() {
                replies.push(self.store_request(request));
            }
            for claim in super::cluster::flush(&mut self.b2bua, self.cluster.as_ref()) {
                replies.push(Box::pin(async move { StoreReply::Claim(claim.await) }));
            }
            self.send_transmits().await;
            if let Some(since) = stopping_since {
                // Done once every call is released and every BYE (or CANCELled INVITE) of
                // ours has its final response; server transactions lingering only to absorb
                // retransmissions (Timer J, 32 s) are not worth waiting for.
                let settled =
                    self.b2bua.calls() == 0 && self.b2bua.requests_awaiting_response() == 0;
                if settled || since.elapsed() > SHUTDOWN_BOUND {
                    if !settled {
                        tracing::warn!(
                            awaiting = self.b2bua.requests_awaiting_response(),
                            "stopping with requests still unanswered"
                        );
                    }
                    break;
                }
            }
        }
        match successor {
            Some(stream) => self.hand_over(stream, replies).await,
            None => self.stop_tasks(replies).await,
        }
        Ok(())
    }

    /// A new process takes over (docs/behaviour.md §13): nothing is hung up. Listeners
    /// close, what the controller queued is written and the store flushed, the media
    /// shards stop (the ledger is final), and the SIP socket goes to the new process.
    async fn hand_over(
        mut self,
        stream: std::os::unix::net::UnixStream,
        mut replies: FuturesUnordered<PendingReply>,
    ) {
        tracing::info!("a new process takes over: handing over the calls on the line");
        self.admin_requests.close();
        let _ = self.stop.send(true);
        if let Some(admin) = self.admin.take()
            && tokio::time::timeout(ADMIN_STOP_BOUND, admin).await.is_err()
        {
            tracing::warn!("admin listener did not stop in time");
        }
        while let Some((at, record)) = self.b2bua.poll_record() {
            write_record(&self.store, self.clock.unix_ms(at), record);
        }
        while let Some(reply) = replies.next().await {
            if let StoreReply::Persisted(id, state, Err(error)) = reply {
                tracing::error!(%error, callback = id.0, state = state.as_str(), "callback state not persisted");
            }
        }
        if let Err(error) = self.store.flush().wait().await {
            tracing::error!(%error, "store not flushed before the handover");
        }
        super::cluster::stop(self.cluster.take());
        drop(self.store);
        self.store_thread.join();
        // The new process reads the store and takes the calls back while RTP still plays.
        if let Err(error) = super::handover::ready(&stream) {
            tracing::error!(%error, "the new process is gone: stopping (the calls are kept)");
        } else if !super::handover::await_go(&stream) {
            tracing::error!(
                "the new process did not finish taking over: stopping (the calls are kept)"
            );
        }
        // The callers' gap starts here: RTP stops, the ledger is final. The sockets, open
        // streams' and reserved ones, go to the new process still bound.
        let mut rtp = self.engine.surrender();
        rtp.extend(self.reserve.drain().map(|(_, socket)| socket));
        let fds: Vec<std::os::fd::RawFd> =
            rtp.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        let sip = std::os::fd::AsRawFd::as_raw_fd(&self.socket);
        if let Err(error) = super::handover::hand_over(&stream, sip, &fds) {
            tracing::error!(%error, "sockets not handed over");
        }
        tracing::info!("handed over; holdfast stopped");
    }

    /// Sends every datagram the controller has queued.
    async fn send_transmits(&mut self) {
        while let Some(transmit) = self.b2bua.poll_transmit() {
            // A peer the controller reaches over TCP without a connection yet (a request
            // too large for UDP, RFC 3261 §18.1.1): connect, queueing meanwhile.
            if !self.connections.contains_key(&transmit.destination)
                && self.b2bua.flow(transmit.destination)
                    == Some(crate::sip::transport::Transport::Tcp)
            {
                let outbox = self.connector.connect(transmit.destination);
                self.connections.insert(transmit.destination, outbox);
            }
            // A peer that is a connection is sent to over it (RFC 3261 §18.2.2, RFC 5626).
            if let Some(writer) = self.connections.get(&transmit.destination) {
                if !writer.send(transmit.payload) {
                    tracing::debug!(destination = %transmit.destination, "SIP connection not reading: message dropped");
                }
                continue;
            }
            if let Err(error) = self
                .socket
                .send_to(&transmit.payload, transmit.destination)
                .await
            {
                tracing::debug!(%error, destination = %transmit.destination, "SIP send failed");
            }
        }
    }

    /// Stops every other task: the admin listener (its open connections see `503` and end),
    /// the media engine, and the store thread once every write queued is done.
    async fn stop_tasks(mut self, mut replies: FuturesUnordered<PendingReply>) {
        self.admin_requests.close();
        let _ = self.stop.send(true);
        if let Some(admin) = self.admin.take()
            && tokio::time::timeout(ADMIN_STOP_BOUND, admin).await.is_err()
        {
            tracing::warn!("admin listener did not stop in time");
        }
        self.engine.shutdown();
        // Callback writes already queued finish (their failures are still logged).
        while let Some(reply) = replies.next().await {
            if let StoreReply::Persisted(id, state, Err(error)) = reply {
                tracing::error!(%error, callback = id.0, state = state.as_str(), "callback state not persisted");
            }
        }
        super::cluster::stop(self.cluster.take());
        drop(self.store);
        self.store_thread.join();
        tracing::info!("holdfast stopped");
    }

    /// Carries out every media command the controller has queued, feeding results back.
    fn flush_media(&mut self) {
        media_io::flush_media(&self.engine, &mut self.reserve, &mut self.b2bua);
    }
}

/// The next process asking to take over, or never when there is no control socket.
async fn next_successor(
    control: Option<&super::handover::Control>,
) -> (std::os::unix::net::UnixStream, String) {
    match control {
        Some(control) => control.next().await,
        None => std::future::pending().await,
    }
}
