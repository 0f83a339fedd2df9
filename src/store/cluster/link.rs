//! The cluster's two threads: the writer (appends, claims, heartbeat) and the reader
//! (snapshot, then the log as it grows). Each has its own connection and makes it again
//! after PostgreSQL or the network dropped it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokio::sync::{mpsc, oneshot};

use super::{Change, Claim, Feed, sql};
use crate::store::postgres::pg;
use crate::store::{HEARTBEAT, Reply, StoreError};

/// Longest the reader sleeps without a notification before it looks at the log anyway (a
/// safety net: a notification is not lost while the connection lives, and a lost connection
/// is an error that starts the reader over).
const POLL: Duration = Duration::from_secs(2);

/// Changes kept for writing again while PostgreSQL is away; beyond, the newest are dropped
/// (a node that was away longer than its lease tells the others everything again anyway).
const MAX_UNWRITTEN: usize = 100_000;

/// How long the writer waits for more changes before it commits what it has.
const LINGER: Duration = Duration::from_millis(5);

/// How often a waiting reader looks whether it was told to stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Rows read per query.
const READ_BATCH: i64 = 2000;

/// Pause before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

enum Command {
    Append(Vec<Change>),
    Claim {
        user: String,
        seq: u64,
        reply: oneshot::Sender<Result<Claim, StoreError>>,
    },
}

/// The node's link to the cluster's log; dropping it (or [`ClusterLink::stop`]) ends both
/// threads.
pub struct ClusterLink {
    commands: Option<Sender<Command>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink").finish_non_exhaustive()
    }
}

fn connect(url: &str, node: &str, role: &str) -> Result<Client, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(pg)?;
    // A server that vanishes without closing the connection must not block a thread for
    // ever: keepalives and a TCP user timeout end the connection, a statement timeout ends
    // a statement that waits too long.
    config
        .application_name(&format!("holdfast {node} {role}"))
        .connect_timeout(Duration::from_secs(5))
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(10))
        .options("-c statement_timeout=10000");
    let mut client = config.connect(NoTls).map_err(pg)?;
    client
        .batch_execute("SET synchronous_commit = on")
        .map_err(pg)?;
    Ok(client)
}

impl ClusterLink {
    /// Connects as `node`, forgets what the node had before (a restart: [`sql::reset`]) and
    /// starts the threads; what other nodes change arrives on `feed`, a snapshot first.
    /// Blocking: call it off the async runtime.
    pub fn start(url: &str, node: &str, feed: mpsc::Sender<Feed>) -> Result<Self, StoreError> {
        let mut writer = connect(url, node, "writer")?;
        sql::reset(&mut writer, node)?;
        let reader = connect(url, node, "reader")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (commands, inbox) = channel();
        let write = {
            let (url, node, feed) = (url.to_owned(), node.to_owned(), feed.clone());
            std::thread::Builder::new()
                .name("cluster-writer".into())
                .spawn(move || write_loop(&url, &node, Some(writer), &inbox, &feed))
                .map_err(|e| StoreError::Postgres(format!("cannot start a thread: {e}")))?
        };
        let read = {
            let (url, node, stop) = (url.to_owned(), node.to_owned(), stop.clone());
            std::thread::Builder::new()
                .name("cluster-reader".into())
                .spawn(move || read_loop(&url, &node, Some(reader), &feed, &stop))
                .map_err(|e| StoreError::Postgres(format!("cannot start a thread: {e}")))?
        };
        Ok(Self {
            commands: Some(commands),
            stop,
            threads: vec![write, read],
        })
    }

    /// Queues changes of this node for the log (fire and forget; a failure is logged).
    pub fn append(&self, changes: Vec<Change>) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Append(changes));
        }
    }

    /// Claims `user` to ring it for entry `seq` ([`sql::claim`]).
    pub fn claim(&self, user: String, seq: u64) -> Reply<Claim> {
        let (reply, rx) = oneshot::channel();
        match &self.commands {
            Some(commands) => {
                if let Err(error) = commands.send(Command::Claim { user, seq, reply })
                    && let Command::Claim { reply, .. } = error.0
                {
                    let _ = reply.send(Err(StoreError::Closed));
                }
            }
            None => {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
        Reply::from_receiver(rx)
    }

    /// Ends both threads after the writer has written what was queued.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.commands = None;
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        self.shut();
    }
}

fn write_loop(
    url: &str,
    node: &str,
    mut client: Option<Client>,
    inbox: &Receiver<Command>,
    feed: &mpsc::Sender<Feed>,
) {
    let mut next_beat = Instant::now() + HEARTBEAT;
    // Changes whose transaction failed, written again (in order) before anything newer.
    let mut unwritten: Vec<Change> = Vec::new();
    loop {
        let wait = next_beat.saturating_duration_since(Instant::now());
        let command = match inbox.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                // Stopping: what this node had waiting and held goes with it.
                if let Some(client) = client.as_mut() {
                    if !unwritten.is_empty() {
                        let _ = sql::append(client, node, &unwritten);
                    }
                    if let Err(error) = sql::reset(client, node) {
                        tracing::warn!(%error, "cluster reset at stop not written");
                    }
                }
                return;
            }
        };
        let mut conn = |client: &mut Option<Client>| -> Result<(), StoreError> {
            if client.as_ref().is_none_or(Client::is_closed) {
                *client = Some(connect(url, node, "writer")?);
            }
            Ok(())
        };
        match command {
            Some(Command::Append(mut changes)) => {
                // What else comes within LINGER joins the same transaction (one commit and
                // one read by each other node instead of several). A claim, or a released
                // agent another node may be waiting for, ends the wait.
                let mut claims = Vec::new();
                let until = Instant::now() + LINGER;
                let urgent = |changes: &[Change]| {
                    changes.iter().any(|c| matches!(c, Change::Released { .. }))
                };
                while !urgent(&changes)
                    && let Ok(more) =
                        inbox.recv_timeout(until.saturating_duration_since(Instant::now()))
                {
                    match more {
                        Command::Append(more) => changes.extend(more),
                        claim => {
                            claims.push(claim);
                            break;
                        }
                    }
                }
                if !unwritten.is_empty() {
                    unwritten.append(&mut changes);
                    changes = std::mem::take(&mut unwritten);
                }
                let written = conn(&mut client).and_then(|()| {
                    sql::append(client.as_mut().expect("connected"), node, &changes)
                });
                if let Err(error) = written {
                    tracing::error!(%error, count = changes.len(), "cluster changes not written; kept to write again");
                    client = None;
                    unwritten = changes;
                    unwritten.truncate(MAX_UNWRITTEN);
                }
                for claim in claims {
                    run_claim(&mut client, &mut conn, node, claim);
                }
            }
            Some(claim) => run_claim(&mut client, &mut conn, node, claim),
            None => {}
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + HEARTBEAT;
            if !unwritten.is_empty() && conn(&mut client).is_ok() {
                match sql::append(client.as_mut().expect("connected"), node, &unwritten) {
                    Ok(()) => unwritten.clear(),
                    Err(_) => client = None,
                }
            }
            let beat = conn(&mut client)
                .and_then(|()| sql::heartbeat(client.as_mut().expect("connected"), node));
            match beat {
                Ok((dead, back)) => {
                    for name in dead {
                        tracing::warn!(node = %name, "cluster node's lease ran out: its callers left the queues, its agents are free");
                    }
                    if back {
                        tracing::warn!(
                            "this node had been taken for dead: telling the cluster its callers again"
                        );
                        let _ = feed.blocking_send(Feed::Rejoined);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cluster heartbeat failed");
                    client = None;
                }
            }
        }
    }
}

fn run_claim(
    client: &mut Option<Client>,
    conn: &mut impl FnMut(&mut Option<Client>) -> Result<(), StoreError>,
    node: &str,
    command: Command,
) {
    let Command::Claim { user, seq, reply } = command else {
        return;
    };
    let result = conn(client)
        .and_then(|()| sql::claim(client.as_mut().expect("connected"), node, &user, seq));
    if result.is_err() {
        *client = None;
    }
    let _ = reply.send(result);
}

fn read_loop(
    url: &str,
    node: &str,
    mut first: Option<Client>,
    feed: &mpsc::Sender<Feed>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let client = match first.take() {
            Some(client) => Ok(client),
            None => connect(url, node, "reader"),
        };
        let outcome = client.and_then(|mut client| follow(&mut client, node, feed, stop));
        match outcome {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, "cluster log not readable; reading it again from a snapshot");
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Snapshot, then the log; returns `Ok` when told to stop or when the controller is gone,
/// an error to start over (connection lost, or the log was pruned past where it read).
fn follow(
    client: &mut Client,
    node: &str,
    feed: &mpsc::Sender<Feed>,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("LISTEN {}", sql::CHANNEL))
        .map_err(pg)?;
    let (head, rows) = sql::snapshot(client)?;
    if feed.blocking_send(Feed::Snapshot { head, rows }).is_err() {
        return Ok(());
    }
    let mut last = head;
    while !stop.load(Ordering::Relaxed) {
        let rows = sql::read_after(client, last, READ_BATCH)?;
        if let Some(first) = rows.first()
            && first.id != last + 1
        {
            return Err(StoreError::Postgres(format!(
                "log pruned past id {last} (next is {})",
                first.id
            )));
        }
        let full = rows.len() as i64 == READ_BATCH;
        if let Some(row) = rows.last() {
            last = row.id;
        }
        let theirs: Vec<_> = rows.into_iter().filter(|r| r.node != node).collect();
        if !theirs.is_empty() && feed.blocking_send(Feed::Rows(theirs)).is_err() {
            return Ok(());
        }
        if full {
            continue;
        }
        // Sleep until another node's notification (or POLL); this node's own appends
        // notify too, and need no read.
        let mut notifications = client.notifications();
        let deadline = Instant::now() + POLL;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(STOP_CHECK);
            let Some(first) = notifications.timeout_iter(slice).next().map_err(pg)? else {
                continue;
            };
            let mut others = first.payload() != node;
            while let Some(more) = notifications.iter().next().map_err(pg)? {
                others |= more.payload() != node;
            }
            if others {
                break;
            }
        }
    }
    Ok(())
}
