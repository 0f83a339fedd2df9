//! The thin tokio driver (ARCHITECTURE.md "The driver"): owns the SIP socket, feeds the sans-IO
//! [`B2bua`] with datagrams, timeouts and the current time, sends what it
//! produces, and stops gracefully. The media plane runs on its own threads.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::admin::{self, AdminRequest};
use crate::b2bua::{B2bua, HoldMusic};
use crate::config::Config;
use crate::media::audio;
use crate::media::engine::MediaEngine;
use crate::media::g711::Law;
use crate::media::prompts::{PromptPacks, Prompts};
use crate::store::{CallbackId, CallbackState, KeptKind, Record, StoreHandle};

mod cluster;
mod driver;
pub mod handover;
mod retention;
mod scheduling;
mod streams;
mod tls;
pub use driver::Server;

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
    /// The shared PostgreSQL store could not be opened.
    #[error("store at {url} (node {node}): {source}")]
    SharedStore {
        /// `[store] url`, its password hidden.
        url: String,
        /// `[cluster] node`.
        node: String,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The durable store could not be opened.
    #[error("store in {dir}: {source}")]
    Store {
        /// `[store] data_dir`.
        dir: std::path::PathBuf,
        /// Why.
        source: crate::store::StoreError,
    },
    /// Taking over from the process running on the data directory failed.
    #[error("graceful upgrade: {0}")]
    Handover(std::io::Error),
    /// The admin HTTP listener could not be bound.
    #[error("{0}")]
    Admin(#[from] admin::BindError),
    /// `[media] recordings` cannot be written, and a queue records.
    #[error("[media] recordings = {path:?}: {reason} (queue {queue:?} has record = true)")]
    Recordings {
        /// The directory.
        path: std::path::PathBuf,
        /// The first queue that records.
        queue: String,
        /// Why.
        reason: String,
    },
    /// The TLS certificate or key could not be read or created.
    #[error("TLS: {path}: {reason}")]
    Tls {
        /// `[sip] tls_cert` or `tls_key`.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Sending or receiving on the SIP socket failed fatally.
    #[error("SIP socket error: {0}")]
    Io(#[from] std::io::Error),
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
pub fn load_prompts(config: &Config) -> Result<PromptPacks, crate::media::prompts::PromptError> {
    let dir = &config.media.prompts;
    let english = if dir == Path::new(DEFAULT_PROMPTS) && !dir.exists() {
        Prompts::embedded()?
    } else {
        Prompts::load(dir)?
    };
    let mut others = Vec::new();
    for language in config.languages().into_iter().skip(1) {
        let dir = language_dir(config, language);
        others.push(if dir.is_dir() {
            Prompts::load_in(language, &dir)?
        } else {
            Prompts::embedded_in(language)?
        });
    }
    let messages = config
        .queues
        .iter()
        .map(|q| {
            q.periodic_messages
                .iter()
                .map(|path| crate::media::prompts::load_message(path))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let whispers = config
        .queues
        .iter()
        .map(|q| {
            (!q.announce_to_agent.as_os_str().is_empty())
                .then(|| crate::media::prompts::load_message(&q.announce_to_agent))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PromptPacks::new(english, others)
        .with_messages(messages)
        .with_whispers(whispers))
}

/// Packs on disk that lack clips their language needs (`check-config`): each directory of
/// a language a route or queue speaks, with the clip names it has no file for (the
/// built-in clip is spoken instead). A language without a directory uses its built-in
/// pack whole and is not listed.
pub fn missing_clips(config: &Config) -> Vec<(std::path::PathBuf, Vec<&'static str>)> {
    let mut report = Vec::new();
    for language in config.languages() {
        let dir = match language {
            crate::media::prompts::Language::En => config.media.prompts.clone(),
            other => language_dir(config, other),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let stems: std::collections::HashSet<String> = entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
            })
            .collect();
        let missing: Vec<&'static str> = Prompts::clip_names_in(language)
            .filter(|name| !stems.contains(*name))
            .collect();
        if !missing.is_empty() {
            report.push((dir, missing));
        }
    }
    report
}

/// Where `language`'s own recordings go: beside the English pack's directory
/// (`media/prompts/es` next to `media/prompts/en`). A directory that does not exist means
/// the built-in pack.
pub fn language_dir(
    config: &Config,
    language: crate::media::prompts::Language,
) -> std::path::PathBuf {
    let english = &config.media.prompts;
    english
        .parent()
        .unwrap_or(Path::new("."))
        .join(language.code())
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
pub(crate) const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// Asks for a `bytes` receive buffer on `socket` (`SO_RCVBUFFORCE` when privileged, else
/// `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`) and returns what the kernel
/// granted (Linux reports the doubled bookkeeping size, socket(7)).
pub(crate) fn enlarge_receive_buffer(socket: &UdpSocket, bytes: usize) -> usize {
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
    Server::start(config).await?.run(shutdown).await
}

/// Answers one admin request from the controller's own state (see [`crate::admin`]); a
/// request that waits for a durable write returns it, for the driver to await.
fn answer_admin(
    b2bua: &mut B2bua,
    engine: &MediaEngine,
    store: &StoreHandle,
    clock: &WallClock,
    request: AdminRequest,
) -> Option<scheduling::Pending> {
    // A requester that went away (client disconnected) is no error: drop the answer.
    match request {
        AdminRequest::Status(reply) => {
            let _ = reply.send(admin::Status {
                snapshot: b2bua.snapshot(Instant::now()),
                media: engine.stats(),
                store_dropped: store.dropped_records(),
            });
        }
        AdminRequest::Board(reply) => {
            let _ = reply.send(b2bua.snapshot_first(Instant::now(), admin::BOARD_CALLERS));
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
        AdminRequest::Report {
            from_ms,
            to_ms,
            reply,
        } => {
            let _ = reply.send((
                store.events_between(from_ms, to_ms),
                b2bua.service_level_targets(),
            ));
        }
        AdminRequest::Cluster(reply) => {
            let _ = reply.send(store.cluster_nodes());
        }
        AdminRequest::ScheduleCallback(ask) => {
            return scheduling::schedule(b2bua, store, clock, ask);
        }
        AdminRequest::CancelCallback { id, reply } => {
            return scheduling::cancel(b2bua, store, CallbackId(id), reply);
        }
    }
    None
}

/// Callbacks the admin API lists (newest first).
const CALLBACKS_LISTED: usize = 100;

/// One log line with the media clock's health, every few seconds: what an operator (and
/// `scripts/bench.sh`) reads before the metrics endpoint exists.
pub(crate) fn log_media_stats(engine: &MediaEngine) {
    let s = engine.stats();
    tracing::info!(
        "media stats streams={} playing={} sent={} received={} send_errors={} skipped={} \
         bridges={} relayed={} relay_dropped={} events_dropped={} lateness_p50_us={} lateness_p99_us={} lateness_max_us={}",
        s.streams,
        s.playing,
        s.packets_sent,
        s.packets_received,
        s.send_errors,
        s.skipped_frames,
        s.bridges,
        s.packets_relayed,
        s.relay_dropped,
        s.events_dropped,
        s.lateness.p50_us,
        s.lateness.p99_us,
        s.lateness.max_us
    );
}

/// Turns the controller's monotonic instants into wall-clock times for the store.
pub(crate) struct WallClock {
    instant: Instant,
    unix_ms: i64,
}

impl WallClock {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn instant_at(&self, unix_ms: i64) -> Instant {
        let ahead = u64::try_from(unix_ms.saturating_sub(self.unix_ms)).unwrap_or(0);
        self.instant + Duration::from_millis(ahead)
    }

    pub(crate) fn unix_ms(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.instant).as_millis();
        self.unix_ms + i64::try_from(since).unwrap_or(0)
    }
}

/// Fire-and-forget to the store thread, stamped with wall-clock time.
pub(crate) fn write_record(store: &StoreHandle, unix_ms: i64, record: Record) {
    match record {
        Record::Event(mut event) => {
            event.ts_ms = unix_ms;
            store.record_event(event);
        }
        Record::HandleTime(handle) => {
            store.record_handle_time(&handle.queue, handle.seconds, unix_ms);
        }
        record @ (Record::EstimateOutcome(_) | Record::Keep(_)) => store.record(record),
    }
}

/// docs/behaviour.md §6 recovery: every committed callback that is not completed goes back into its queue
/// at its original place, in the original order; new callers queue behind all of them.
pub(crate) async fn restore_callbacks(b2bua: &mut B2bua, store: &StoreHandle, clock: &WallClock) {
    match store.pending_callbacks().wait().await {
        Ok(records) => restore_records(b2bua, store, clock, records).await,
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

/// Puts stored open callbacks into their queues at their places (start-up, or taken over
/// from a dead node of the cluster); one that cannot be restored is marked failed.
pub(crate) async fn restore_records(
    b2bua: &mut B2bua,
    store: &StoreHandle,
    clock: &WallClock,
    records: Vec<crate::store::CallbackRecord>,
) {
    let now = Instant::now();
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

/// docs/behaviour.md §13: what the process before kept is taken back: registrations,
/// agents' pauses and wrap-ups, then the calls on the line (held and bridged), each probed
/// with an OPTIONS. A row that cannot be taken back is logged and deleted. Returns how many
/// calls came back.
pub(crate) async fn restore_kept(b2bua: &mut B2bua, store: &StoreHandle) -> usize {
    let read = |kind: KeptKind| {
        let reply = store.kept(kind);
        async move {
            reply.wait().await.unwrap_or_else(|error| {
                tracing::error!(%error, kind = kind.as_str(), "kept rows could not be read");
                Vec::new()
            })
        }
    };
    let forget = |kind: KeptKind, key: String| {
        store.record(Record::Keep(crate::store::Kept {
            kind,
            key,
            state: None,
        }));
    };
    for (user, state) in read(KeptKind::Registration).await {
        if !b2bua.restore_registration(Instant::now(), &user, &state) {
            forget(KeptKind::Registration, user);
        }
    }
    for (user, state) in read(KeptKind::Agent).await {
        if !b2bua.restore_agent(Instant::now(), &user, &state) {
            forget(KeptKind::Agent, user);
        }
    }
    let mut restored = 0;
    for (call_id, state) in read(KeptKind::Call).await {
        match b2bua.restore_call(Instant::now(), &state) {
            Ok(()) => restored += 1,
            Err(error) => {
                tracing::warn!(%call_id, %error, "kept call not restored");
                forget(KeptKind::Call, call_id);
            }
        }
    }
    b2bua.restore_done(Instant::now());
    if restored > 0 {
        tracing::info!(restored, "held calls restored");
    }
    restored
}

/// Gives freed heap back to the operating system after a surge of SIP state (a flood, a
/// burst of calls) has drained (docs/behaviour.md §9). The tables shrink themselves, but the
/// allocator keeps freed pages for reuse, so without this the process would stay at its
/// peak size.
#[derive(Debug, Default)]
pub(crate) struct MemoryTrim {
    peak: usize,
}

impl MemoryTrim {
    /// Transactions below which a drained surge is not worth a trim.
    const SURGE: usize = 10_000;

    /// Called periodically with the live transaction count; trims once it has fallen below a
    /// quarter of the peak seen since the last trim.
    pub(crate) fn check(&mut self, live: usize) {
        self.peak = self.peak.max(live);
        if self.peak < Self::SURGE || live >= self.peak / 4 {
            return;
        }
        tracing::info!(
            peak = self.peak,
            live,
            "SIP state drained: returning memory"
        );
        self.peak = live;
        release_free_heap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    // SAFETY: `malloc_trim` has no preconditions: it only returns free pages of glibc's heaps
    // to the kernel (madvise on free chunks, since glibc 2.8) and never touches allocated
    // memory, so it cannot invalidate anything the program holds. It is thread-safe (it
    // takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}
