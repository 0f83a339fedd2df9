//! The thin tokio driver (ARCHITECTURE.md "The driver"): owns the SIP socket, feeds the sans-IO
//! [`B2bua`] with datagrams, timeouts and the current time, sends what it
//! produces, and stops gracefully. The media plane runs on its own threads.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::admin::{self, AdminRequest};
use crate::b2bua::{B2bua, CallKey, HoldMusic, MediaCommand, StoreRequest};
use crate::config::Config;
use crate::media::audio;
use crate::media::engine::{EngineConfig, MediaEngine, MediaEvent};
use crate::media::g711::Law;
use crate::media::prompts::Prompts;
use crate::store::{CallbackId, CallbackState, Record, SqliteStore, StoreError, StoreHandle};

/// The hold music built into the binary, used when the configured default file is absent
/// (so `holdfast` runs from any directory with no files around it).
const EMBEDDED_MUSIC: &[u8] = include_bytes!("../media/music/hold.flac");
/// The path the default configuration names for the music.
const DEFAULT_MUSIC: &str = "media/music/hold.flac";
/// The path the default configuration names for the clip pack.
const DEFAULT_PROMPTS: &str = "media/prompts/en";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The SIP listen address could not be bound.
    #[error("cannot bind SIP socket {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The media engine failed to start.
    #[error("cannot start media engine: {0}")]
    Media(std::io::Error),
    /// A music file could not be loaded.
    #[error("{0}")]
    Audio(#[from] audio::AudioError),
    /// The announcement clips could not be loaded.
    #[error("{0}")]
    Prompts(#[from] crate::media::prompts::PromptError),
    /// The durable store could not be opened.
    #[error("store in {dir}: {source}")]
    Store {
        /// `[store] data_dir`.
        dir: std::path::PathBuf,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The admin HTTP listener could not be bound.
    #[error("{0}")]
    Admin(#[from] admin::BindError),
    /// Sending or receiving on the SIP socket failed fatally.
    #[error("SIP socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Sockets bound ahead of need for the controller's streams (see `b2bua::media`).
type Reserve = HashMap<u16, std::net::UdpSocket>;

/// Carries out one of the controller's media commands on the engine; what it has to tell
/// the controller back (a port reserved or busy, a stream that could not be opened) is the
/// returned event.
fn carry_out(
    engine: &MediaEngine,
    reserve: &mut Reserve,
    command: MediaCommand,
) -> Option<MediaEvent> {
    let refused = |what: &str, error: crate::media::engine::MediaError| {
        tracing::error!(%error, "media engine refused to {what}");
    };
    match command {
        MediaCommand::Reserve { port } => {
            let bound = match engine.bind_port(port) {
                Ok(socket) => {
                    reserve.insert(port, socket);
                    true
                }
                Err(error) => {
                    tracing::debug!(%error, port, "RTP port busy: skipped for now");
                    false
                }
            };
            return Some(MediaEvent::Reserved { port, bound });
        }
        MediaCommand::Open { id, port } => {
            let socket = match reserve.remove(&port) {
                Some(socket) => Ok(socket),
                None => engine.bind_port(port),
            };
            if let Err(error) = socket.and_then(|socket| engine.open_with(id, socket)) {
                tracing::error!(%error, port, "RTP stream could not be opened");
                return Some(MediaEvent::OpenFailed { id });
            }
        }
        MediaCommand::Play {
            id,
            remote,
            pt,
            music,
        } => {
            if let Err(error) = engine.play(id, remote, pt, music) {
                refused("play", error);
            }
        }
        MediaCommand::Connect { id, remote, pt } => {
            if let Err(error) = engine.connect(id, remote, pt) {
                refused("connect a leg", error);
            }
        }
        MediaCommand::Bridge { a, b } => {
            if let Err(error) = engine.bridge(a, b) {
                refused("bridge", error);
            }
        }
        MediaCommand::Prompt {
            id,
            frames,
            at_once,
        } => {
            let result = if at_once {
                engine.prompt_now(id, frames)
            } else {
                engine.prompt(id, frames)
            };
            if let Err(error) = result {
                refused("play a prompt", error);
            }
        }
        MediaCommand::TelephoneEvent { id, pt } => engine.set_telephone_event(id, pt),
        MediaCommand::Stop { id } => engine.stop(id),
        MediaCommand::Close { id } => engine.close(id),
    }
    None
}

/// Carries out every media command the controller has queued, feeding results back.
fn flush_media(b2bua: &mut B2bua, engine: &MediaEngine, reserve: &mut Reserve) {
    while let Some(command) = b2bua.poll_media() {
        if let Some(event) = carry_out(engine, reserve, command) {
            b2bua.handle_media_event(Instant::now(), event);
        }
    }
}

/// Loads, mixes, resamples and encodes the configured music once (docs/behaviour.md §4).
pub fn load_music(config: &Config) -> Result<HoldMusic, audio::AudioError> {
    let mut pcm: Vec<i16> = Vec::new();
    for path in &config.media.music {
        let samples = if path == Path::new(DEFAULT_MUSIC) && !path.exists() {
            audio::load_pcm8k_from_bytes(EMBEDDED_MUSIC.to_vec(), "flac")?
        } else {
            audio::load_pcm8k(path)?
        };
        pcm.extend_from_slice(&samples);
    }
    if pcm.is_empty() {
        // No music configured: comfort silence keeps the RTP flowing so NAT bindings and
        // the caller's jitter buffer stay alive.
        pcm = vec![0; 8000];
    }
    Ok(HoldMusic {
        pcmu: audio::frames(&pcm, Law::Mu),
        pcma: audio::frames(&pcm, Law::A),
    })
}

/// The clip pack: the built-in English one, with clips from `[media] prompts` replacing
/// it one by one when that directory exists (users drop in recordings with the same names).
pub fn load_prompts(config: &Config) -> Result<Prompts, crate::media::prompts::PromptError> {
    let dir = &config.media.prompts;
    if dir == Path::new(DEFAULT_PROMPTS) && !dir.exists() {
        Prompts::embedded()
    } else {
        Prompts::load(dir)
    }
}

/// Raise the open-file limit to its hard maximum: every held call owns an RTP socket.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the `rlimit` struct we own on the
    // stack; no pointers escape the calls.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise RLIMIT_NOFILE");
            }
        }
    }
}

/// Receive buffer asked for the SIP socket. The kernel default (≈ 208 KiB, a couple of
/// hundred datagrams once per-packet overhead counts) holds only ~60 ms of traffic at
/// 1 000 calls/s (INVITE, ACK and BYE: ~3 000 datagrams/s); a controller pause longer than
/// that (the machine busy, a table growing) would drop requests and cost the caller a
/// 500 ms retransmission. 4 MiB holds over a second of that load.
const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// Asks for a `bytes` receive buffer on `socket` (`SO_RCVBUFFORCE` when privileged, else
/// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`) and returns what the kernel
/// granted (Linux reports the doubled bookkeeping size, socket(7)).
fn enlarge_receive_buffer(socket: &UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is the open socket borrowed for this call; setsockopt only reads `len`
    // bytes from `value`, an int on our stack, and getsockopt writes at most `len` bytes
    // into `granted`, another int on our stack; no pointer outlives the calls.
    unsafe {
        let set = |option| {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast(),
                len,
            ) == 0
        };
        if !set(libc::SO_RCVBUFFORCE) && !set(libc::SO_RCVBUF) {
            tracing::warn!("could not enlarge the SIP socket's receive buffer");
        }
        let mut granted: libc::c_int = 0;
        let mut granted_len = len;
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_mut(&mut granted).cast(),
            &mut granted_len,
        );
        usize::try_from(granted).unwrap_or(0)
    }
}

/// Run holdfast until `shutdown` resolves, then stop gracefully: refuse new calls, hang up
/// held callers with BYE and let their transactions finish (bounded to a few seconds).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    raise_nofile_limit();
    let music = load_music(&config)?;
    let prompts = load_prompts(&config)?;
    let data_dir = config.store.data_dir.clone();
    let store = SqliteStore::open(&data_dir).map_err(|source| ServeError::Store {
        dir: data_dir.clone(),
        source,
    })?;
    let (store, store_thread) = StoreHandle::spawn(store)?;
    let mut histories: Vec<(String, Vec<u32>)> = Vec::new();
    for queue in &config.queues {
        let history = store
            .recent_handle_times(&queue.name, 100)
            .wait()
            .await
            .unwrap_or_default();
        histories.push((queue.name.clone(), history));
    }
    let (engine, media_events) = MediaEngine::start(EngineConfig {
        bind_ip: config.sip.public_address,
        port_min: config.sip.rtp_ports.start(),
        port_max: config.sip.rtp_ports.end(),
        shards: crate::b2bua::MEDIA_SHARDS,
    })
    .map_err(ServeError::Media)?;
    let listen = config.sip.listen;
    let socket = UdpSocket::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let rcvbuf = enlarge_receive_buffer(&socket, SIP_RECEIVE_BUFFER);
    tracing::info!(%listen, receive_buffer = rcvbuf, "holdfast listening (SIP/UDP)");
    let mut media_events = media_events;
    // The admin task asks this loop for state; a small buffer is enough (each request is
    // answered before the next datagram).
    let (admin_tx, mut admin_rx) = tokio::sync::mpsc::channel::<AdminRequest>(64);
    if let Some(addr) = config.admin.listen {
        admin::spawn(
            addr,
            &config.admin.token,
            config.priorities.clone(),
            admin_tx,
        )
        .await?;
    } else {
        drop(admin_tx);
    }

    let mut b2bua = B2bua::new(config, music, prompts, Instant::now(), rand::random());
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
    let clock = WallClock::new();
    let mut reserve = Reserve::new();
    // The first RTP ports are bound before the first call can arrive.
    flush_media(&mut b2bua, &engine, &mut reserve);
    restore_callbacks(&mut b2bua, &store, &clock).await;
    // Commit results come back through this channel: the loop never waits for an fsync.
    let (committed_tx, mut committed) =
        tokio::sync::mpsc::unbounded_channel::<(CallKey, Result<CallbackId, StoreError>)>();
    let mut buf = vec![0u8; 65_536];
    tokio::pin!(shutdown);
    let mut stopping_since: Option<Instant> = None;
    let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        let deadline = b2bua.poll_timeout();
        let sleep_until = deadline
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                match received {
                    Ok((len, source)) => b2bua.handle_datagram(Instant::now(), source, &buf[..len]),
                    // ICMP errors from earlier sends surface here on some systems; they are
                    // about one peer, not the socket.
                    Err(error) => tracing::debug!(%error, "SIP recv error"),
                }
            }
            _ = tokio::time::sleep_until(sleep_until) => b2bua.handle_timeout(Instant::now()),
            Some(event) = media_events.recv() => b2bua.handle_media_event(Instant::now(), event),
            Some((token, result)) = committed.recv() => {
                b2bua.callback_committed(Instant::now(), token, result);
            }
            _ = stats_tick.tick() => log_media_stats(&engine),
            Some(request) = admin_rx.recv() => answer_admin(&mut b2bua, &engine, &store, request),
            _ = &mut shutdown, if stopping_since.is_none() => {
                tracing::info!("shutting down: hanging up held callers");
                stopping_since = Some(Instant::now());
                b2bua.shutdown(Instant::now());
            }
        }
        flush_media(&mut b2bua, &engine, &mut reserve);
        while let Some((at, record)) = b2bua.poll_record() {
            write_record(&store, clock.unix_ms(at), record);
        }
        while let Some(request) = b2bua.poll_store_request() {
            send_store_request(&store, &clock, request, &committed_tx);
        }
        while let Some(transmit) = b2bua.poll_transmit() {
            if let Err(error) = socket
                .send_to(&transmit.payload, transmit.destination)
                .await
            {
                tracing::debug!(%error, destination = %transmit.destination, "SIP send failed");
            }
        }
        if let Some(since) = stopping_since {
            // Done once every call is released and every BYE (or CANCELled INVITE) of ours
            // has its final response; server transactions lingering only to absorb
            // retransmissions (Timer J, 32 s) are not worth waiting for.
            let settled = b2bua.calls() == 0 && b2bua.requests_awaiting_response() == 0;
            if settled || since.elapsed() > SHUTDOWN_BOUND {
                if !settled {
                    tracing::warn!(
                        awaiting = b2bua.requests_awaiting_response(),
                        "stopping with requests still unanswered"
                    );
                }
                break;
            }
        }
    }
    // No admin request is answered from here on; open API connections see 503.
    admin_rx.close();
    engine.shutdown();
    // Everything journalled is written before we exit.
    drop(store);
    store_thread.join();
    tracing::info!("holdfast stopped");
    Ok(())
}

/// Longest a graceful stop waits for BYE responses: a peer that never answers must not keep
/// a supervisor waiting (Timer F would take 32 s).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(4);

/// Answers one admin request from the controller's own state (see [`crate::admin`]).
fn answer_admin(
    b2bua: &mut B2bua,
    engine: &MediaEngine,
    store: &StoreHandle,
    request: AdminRequest,
) {
    // A requester that went away (client disconnected) is no error: drop the answer.
    match request {
        AdminRequest::Status(reply) => {
            let _ = reply.send(admin::Status {
                snapshot: b2bua.snapshot(Instant::now()),
                media: engine.stats(),
                store_dropped: store.dropped_records(),
            });
        }
        AdminRequest::SetPaused {
            user,
            paused,
            reply,
        } => {
            let _ = reply.send(b2bua.set_paused(Instant::now(), &user, paused));
        }
        AdminRequest::Callbacks(reply) => {
            let _ = reply.send(store.recent_callbacks(CALLBACKS_LISTED));
        }
    }
}

/// Callbacks the admin API lists (newest first).
const CALLBACKS_LISTED: usize = 100;

/// One log line with the media clock's health, every few seconds: what an operator (and
/// `scripts/bench.sh`) reads before the metrics endpoint exists.
fn log_media_stats(engine: &MediaEngine) {
    let s = engine.stats();
    tracing::info!(
        "media stats streams={} playing={} sent={} received={} send_errors={} skipped={} \
         bridges={} relayed={} relay_dropped={} lateness_p50_us={} lateness_p99_us={} lateness_max_us={}",
        s.streams,
        s.playing,
        s.packets_sent,
        s.packets_received,
        s.send_errors,
        s.skipped_frames,
        s.bridges,
        s.packets_relayed,
        s.relay_dropped,
        s.lateness.p50_us,
        s.lateness.p99_us,
        s.lateness.max_us
    );
}

/// Turns the controller's monotonic instants into wall-clock times for the store.
struct WallClock {
    instant: Instant,
    unix_ms: i64,
}

impl WallClock {
    fn new() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    /// The monotonic instant of a wall-clock time (the past maps to now).
    fn instant_at(&self, unix_ms: i64) -> Instant {
        let ahead = u64::try_from(unix_ms.saturating_sub(self.unix_ms)).unwrap_or(0);
        self.instant + Duration::from_millis(ahead)
    }

    fn unix_ms(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.instant).as_millis();
        self.unix_ms + i64::try_from(since).unwrap_or(0)
    }
}

/// Fire-and-forget to the store thread, stamped with wall-clock time.
fn write_record(store: &StoreHandle, unix_ms: i64, record: Record) {
    match record {
        Record::Event(mut event) => {
            event.ts_ms = unix_ms;
            store.record_event(event);
        }
        Record::HandleTime(handle) => {
            store.record_handle_time(&handle.queue, handle.seconds, unix_ms);
        }
    }
}

/// Runs one of the controller's durable writes on the store thread. A commit's result goes
/// back to the controller (which plays the confirmation only after a durable `Ok`); a state
/// change failing is logged (recovery reloads the last state that did commit).
fn send_store_request(
    store: &StoreHandle,
    clock: &WallClock,
    request: StoreRequest,
    committed: &tokio::sync::mpsc::UnboundedSender<(CallKey, Result<CallbackId, StoreError>)>,
) {
    match request {
        StoreRequest::Commit {
            token,
            at,
            mut request,
        } => {
            request.requested_at_ms = clock.unix_ms(at);
            let reply = store.commit_callback(request);
            let committed = committed.clone();
            tokio::spawn(async move {
                let _ = committed.send((token, reply.wait().await));
            });
        }
        StoreRequest::SetState {
            id,
            state,
            attempts,
            next_attempt_at,
            error,
        } => {
            let next = next_attempt_at.map(|at| clock.unix_ms(at));
            let reply = store.set_callback_state(id, state, attempts, next, error);
            tokio::spawn(async move {
                if let Err(error) = reply.wait().await {
                    tracing::error!(%error, callback = id.0, state = state.as_str(), "callback state not persisted");
                }
            });
        }
    }
}

/// docs/behaviour.md §6 recovery: every committed callback that is not completed goes back into its queue
/// at its original place, in the original order; new callers queue behind all of them.
async fn restore_callbacks(b2bua: &mut B2bua, store: &StoreHandle, clock: &WallClock) {
    let now = Instant::now();
    match store.pending_callbacks().wait().await {
        Ok(records) => {
            for record in records {
                let retry_at = record.next_attempt_at_ms.map(|ms| clock.instant_at(ms));
                if let Err(error) = b2bua.restore_callback(now, &record, retry_at) {
                    tracing::error!(callback = record.id.0, %error, "callback cannot be restored: marked failed");
                    let reply = store.set_callback_state(
                        record.id,
                        CallbackState::Failed,
                        record.attempts,
                        None,
                        Some(error.to_string()),
                    );
                    if let Err(error) = reply.wait().await {
                        tracing::error!(%error, "callback state not persisted");
                    }
                }
            }
        }
        Err(error) => tracing::error!(%error, "pending callbacks could not be read"),
    }
    match store.seq_high_water().wait().await {
        Ok(seq) => b2bua.advance_seq(seq),
        Err(error) => tracing::error!(%error, "sequence high-water mark could not be read"),
    }
    let waiting = b2bua.callbacks_waiting();
    if waiting > 0 {
        tracing::info!(waiting, "callbacks restored");
    }
}
