//! Store tests over real SQLite files in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::queue::Seq;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "holdfast-store-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn request(queue: &str, seq: u64, number: &str) -> CallbackRequest {
    CallbackRequest {
        queue: queue.into(),
        level: 5,
        seq: Seq(seq),
        number: number.into(),
        requested_at_ms: 1_700_000_000_000 + seq as i64,
    }
}

#[test]
fn open_creates_dir_wal_and_schema() {
    let dir = TempDir::new();
    let nested = dir.path().join("a/b");
    let store = SqliteStore::open(&nested).unwrap();
    assert!(nested.join(DB_FILE).exists());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = store
        .conn_for_tests()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = store
        .conn_for_tests()
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous must be FULL");
}

#[test]
fn commit_then_reopen_finds_callback() {
    let dir = TempDir::new();
    let id = {
        let mut s = SqliteStore::open(dir.path()).unwrap();
        s.commit_callback(&request("customers", 7, "+4915112345678"))
            .unwrap()
    };
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let pending = s.pending_callbacks().unwrap();
    assert_eq!(pending.len(), 1);
    let r = &pending[0];
    assert_eq!(r.id, id);
    assert_eq!(r.request, request("customers", 7, "+4915112345678"));
    assert_eq!(r.state, CallbackState::Pending);
    assert_eq!(r.attempts, 0);
    assert!(
        r.updated_at_ms > 1_600_000_000_000,
        "stamped with wall time"
    );
    // The commit raised the high-water mark past the callback's place.
    assert_eq!(s.seq_high_water().unwrap(), Seq(8));
}

#[test]
fn commit_is_idempotent_and_guards_seq() {
    let dir = TempDir::new();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let a = s.commit_callback(&request("q", 3, "+1555000111")).unwrap();
    let again = s.commit_callback(&request("q", 3, "+1555000111")).unwrap();
    assert_eq!(a, again);
    assert_eq!(s.pending_callbacks().unwrap().len(), 1);
    let err = s
        .commit_callback(&request("q", 3, "+1555000999"))
        .unwrap_err();
    assert!(matches!(err, StoreError::SeqTaken(3)), "{err}");
    let err = s
        .commit_callback(&request("q", u64::MAX, "+1555000111"))
        .unwrap_err();
    assert!(matches!(err, StoreError::OutOfRange { .. }), "{err}");
}

#[test]
fn states_persist_and_only_open_ones_are_pending() {
    let dir = TempDir::new();
    let (a, b, c, d);
    {
        let mut s = SqliteStore::open(dir.path()).unwrap();
        a = s.commit_callback(&request("q", 1, "+100000001")).unwrap();
        b = s.commit_callback(&request("q", 2, "+100000002")).unwrap();
        c = s.commit_callback(&request("q", 3, "+100000003")).unwrap();
        d = s.commit_callback(&request("q", 4, "+100000004")).unwrap();
        s.set_callback_state(a, CallbackState::Completed, 1, None, None)
            .unwrap();
        s.set_callback_state(b, CallbackState::Dialling, 2, None, None)
            .unwrap();
        s.set_callback_state(c, CallbackState::Failed, 3, None, Some("486 Busy Here"))
            .unwrap();
        s.set_callback_state(d, CallbackState::Pending, 1, Some(42_000), Some("timeout"))
            .unwrap();
        let err = s
            .set_callback_state(CallbackId(999), CallbackState::Failed, 0, None, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCallback(999)));
    }
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let pending = s.pending_callbacks().unwrap();
    let ids: Vec<_> = pending.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![b, d], "completed and failed are never reloaded");
    assert_eq!(pending[0].state, CallbackState::Dialling);
    assert_eq!(pending[0].attempts, 2);
    assert_eq!(pending[1].next_attempt_at_ms, Some(42_000));
    assert_eq!(pending[1].last_error.as_deref(), Some("timeout"));
    let recent = s.recent_callbacks(10).unwrap();
    let recent_ids: Vec<_> = recent.iter().map(|r| r.id).collect();
    assert_eq!(recent_ids, vec![d, c, b, a], "newest first");
    assert_eq!(recent[1].state, CallbackState::Failed);
    assert_eq!(recent[1].last_error.as_deref(), Some("486 Busy Here"));
    assert_eq!(s.recent_callbacks(2).unwrap().len(), 2);
}

#[test]
fn pending_in_seq_order_not_commit_order() {
    let dir = TempDir::new();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    for seq in [50, 10, 30, 20, 40] {
        s.commit_callback(&request("q", seq, &format!("+1000000{seq}")))
            .unwrap();
    }
    let seqs: Vec<u64> = s
        .pending_callbacks()
        .unwrap()
        .iter()
        .map(|r| r.request.seq.0)
        .collect();
    assert_eq!(seqs, vec![10, 20, 30, 40, 50]);
    assert_eq!(s.seq_high_water().unwrap(), Seq(51));
}

#[test]
fn seq_high_water_never_goes_back() {
    let dir = TempDir::new();
    {
        let mut s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.seq_high_water().unwrap(), Seq(0));
        s.set_seq_high_water(Seq(100)).unwrap();
        s.set_seq_high_water(Seq(60)).unwrap();
        s.commit_callback(&request("q", 5, "+100000005")).unwrap();
    }
    let mut s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.seq_high_water().unwrap(), Seq(100));
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new();
    drop(SqliteStore::open(dir.path()).unwrap());
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = SqliteStore::open(dir.path()).unwrap_err();
    match err {
        StoreError::NewerSchema { found, known } => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(known, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other}"),
    }
}

#[test]
fn a_version_1_file_upgrades_and_keeps_its_callbacks() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    {
        // A file as version 1 of holdfast left it, mid-dial.
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(sqlite::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO callbacks (queue, level, seq, number, requested_at, state, attempts, \
             updated_at) VALUES ('q', 5, 3, '+100000003', 0, 'dialling', 1, 0)",
            [],
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
    let pending = s.pending_callbacks().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, CallbackState::Dialling);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(
        pending[0].attempt_invite, None,
        "nothing recorded before v2"
    );
    // The upgraded file takes the new column.
    s.begin_attempt(pending[0].id, 2, b"INVITE sip:x SIP/2.0\r\n\r\n")
        .unwrap();
    drop(s);
    let mut s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        s.schema_version().unwrap(),
        SCHEMA_VERSION,
        "opening again migrates nothing"
    );
    assert_eq!(
        s.pending_callbacks().unwrap()[0].attempt_invite.as_deref(),
        Some(&b"INVITE sip:x SIP/2.0\r\n\r\n"[..])
    );
}

#[test]
fn begin_attempt_records_the_invite_and_every_other_state_clears_it() {
    let dir = TempDir::new();
    let invite = b"INVITE sip:+100000001@127.0.0.1:5070 SIP/2.0\r\nCall-ID: a\r\n\r\n\x00\xff";
    let (a, b, c);
    {
        let mut s = SqliteStore::open(dir.path()).unwrap();
        a = s.commit_callback(&request("q", 1, "+100000001")).unwrap();
        b = s.commit_callback(&request("q", 2, "+100000002")).unwrap();
        c = s.commit_callback(&request("q", 3, "+100000003")).unwrap();
        s.set_callback_state(a, CallbackState::Pending, 1, Some(5), Some("busy"))
            .unwrap();
        s.begin_attempt(a, 2, invite).unwrap();
        s.begin_attempt(b, 1, invite).unwrap();
        s.begin_attempt(c, 1, invite).unwrap();
        let err = s.begin_attempt(CallbackId(999), 1, invite).unwrap_err();
        assert!(matches!(err, StoreError::UnknownCallback(999)));
    }
    // Survives a reopen: the write was durable when it returned.
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let pending = s.pending_callbacks().unwrap();
    let r = &pending[0];
    assert_eq!((r.id, r.state, r.attempts), (a, CallbackState::Dialling, 2));
    assert_eq!(
        r.attempt_invite.as_deref(),
        Some(&invite[..]),
        "bytes as given"
    );
    assert_eq!(r.next_attempt_at_ms, None);
    assert_eq!(r.last_error, None);
    // Any other state ends the attempt and clears its INVITE, dialling included.
    s.set_callback_state(a, CallbackState::Pending, 2, Some(9), Some("487"))
        .unwrap();
    s.set_callback_state(b, CallbackState::Completed, 1, None, None)
        .unwrap();
    s.set_callback_state(c, CallbackState::Dialling, 1, None, None)
        .unwrap();
    let recent = s.recent_callbacks(10).unwrap();
    assert!(
        recent.iter().all(|r| r.attempt_invite.is_none()),
        "{recent:?}"
    );
}

#[test]
fn handle_times_pruned_oldest_first() {
    let dir = TempDir::new();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let extra = 37;
    for i in 0..(HANDLE_TIMES_KEPT + extra) as u32 {
        s.record_handle_time("q", i, i64::from(i)).unwrap();
    }
    s.record_handle_time("other", 999, 0).unwrap();
    let all = s.recent_handle_times("q", 10_000).unwrap();
    let expected: Vec<u32> = (extra as u32..(HANDLE_TIMES_KEPT + extra) as u32).collect();
    assert_eq!(all, expected, "only the newest are kept, oldest first");
    assert_eq!(
        s.recent_handle_times("q", 3).unwrap(),
        expected[expected.len() - 3..].to_vec()
    );
    assert_eq!(s.recent_handle_times("other", 100).unwrap(), vec![999]);
    let rows: i64 = s
        .conn_for_tests()
        .query_row("SELECT count(*) FROM handle_times", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows as usize,
        HANDLE_TIMES_KEPT + 1,
        "pruned rows are deleted"
    );
}

#[test]
fn events_round_trip() {
    let dir = TempDir::new();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let mut e = CallEvent::new(1234, CallEventKind::CallbackRequested);
    e.call_id = Some("abc@host".into());
    e.queue = Some("customers".into());
    e.caller = Some("+4915112345678".into());
    e.wait_ms = Some(61_000);
    e.detail = Some(serde_json::json!({"seq": 17, "position": 4}));
    let plain = CallEvent::new(1300, CallEventKind::Abandon);
    s.record_batch(&[Record::Event(e.clone()), Record::Event(plain.clone())])
        .unwrap();
    assert_eq!(s.recent_events(10).unwrap(), vec![plain, e]);
    for kind in CallEventKind::ALL {
        assert_eq!(CallEventKind::parse(kind.as_str()), Some(kind));
    }
}

#[test]
fn handle_applies_in_order_and_batches() {
    let dir = TempDir::new();
    let (handle, thread) = StoreHandle::spawn(SqliteStore::open(dir.path()).unwrap()).unwrap();
    for i in 0..500 {
        handle.record_event(CallEvent::new(i, CallEventKind::Join));
    }
    handle.record_handle_time("q", 120, 5);
    // The commit's ack implies every record sent before it is committed (guarantee 2).
    let id = handle
        .commit_callback(request("q", 9, "+100000009"))
        .blocking_wait()
        .unwrap();
    handle
        .set_callback_state(id, CallbackState::Dialling, 1, None, None)
        .blocking_wait()
        .unwrap();
    let pending = handle.pending_callbacks().blocking_wait().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, CallbackState::Dialling);
    assert_eq!(
        handle
            .recent_handle_times("q", 100)
            .blocking_wait()
            .unwrap(),
        vec![120]
    );
    let events = handle.recent_events(1000).blocking_wait().unwrap();
    assert_eq!(events.len(), 500);
    assert_eq!(events[0].ts_ms, 499, "newest first, all in order");
    assert_eq!(handle.dropped_records(), 0);
    // Records sent last are written before the thread exits (guarantee 6).
    handle.record_event(CallEvent::new(7777, CallEventKind::Complete));
    drop(handle);
    thread.join();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.recent_events(1).unwrap()[0].ts_ms, 7777);
}

#[test]
fn reply_polls_and_reports_closed() {
    let dir = TempDir::new();
    let (handle, thread) = StoreHandle::spawn(SqliteStore::open(dir.path()).unwrap()).unwrap();
    let mut reply = handle.seq_high_water();
    let result = loop {
        if let Some(r) = reply.try_wait() {
            break r;
        }
        std::thread::yield_now();
    };
    assert_eq!(result.unwrap(), Seq(0));
    let other = handle.clone();
    drop(handle);
    drop(other);
    thread.join();
}

/// Environment variable that turns [`crash_child`] on; it names the data directory.
const CHILD_DIR_ENV: &str = "HOLDFAST_STORE_CRASH_CHILD_DIR";

/// Run by [`commit_survives_sigkill`] as a child process: commits callbacks, prints each id
/// only after `commit_callback` returned, then waits to be killed.
#[test]
#[ignore = "child process of commit_survives_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let (handle, _thread) = StoreHandle::spawn(SqliteStore::open(&dir).unwrap()).unwrap();
    for seq in 0..5 {
        // Events sent before the commit ride along in the same durable order.
        handle.record_event(CallEvent::new(seq as i64, CallEventKind::Join));
        let id = handle
            .commit_callback(request("q", seq, &format!("+10000000{seq}")))
            .blocking_wait()
            .unwrap();
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "COMMITTED {}", id.0).unwrap();
        out.flush().unwrap();
    }
    // Wait to be killed; give up after a while so a failed parent leaves no orphan behind.
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn commit_survives_sigkill() {
    let dir = TempDir::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut ids = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("COMMITTED ") {
            ids.push(CallbackId(id.trim().parse().unwrap()));
            if ids.len() == 5 {
                break;
            }
        }
    }
    // SIGKILL at once: no destructor, no checkpoint, no orderly close runs in the child.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(ids.len(), 5, "child reported every commit");
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let pending = s.pending_callbacks().unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(s.recent_events(10).unwrap().len(), 5);
    assert_eq!(s.seq_high_water().unwrap(), Seq(5));
}

#[test]
fn estimate_outcomes_round_trip_and_keep_the_newest_per_queue() {
    let dir = TempDir::new();
    let mut s = SqliteStore::open(dir.path()).unwrap();
    let outcome = |queue: &str, waited_ms: u64| {
        Record::EstimateOutcome(EstimateOutcome {
            queue: queue.into(),
            quantiles: vec![1.0, 2.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0],
            waited_ms,
        })
    };
    let records: Vec<Record> = (0..ESTIMATE_OUTCOMES_KEPT as u64 + 10)
        .map(|i| outcome("q", i))
        .chain([outcome("other", 7)])
        .collect();
    s.record_batch(&records).unwrap();
    let kept = s.recent_estimate_outcomes("q", 10_000).unwrap();
    assert_eq!(kept.len(), ESTIMATE_OUTCOMES_KEPT);
    assert_eq!(kept.first().unwrap().waited_ms, 10, "oldest kept first");
    assert_eq!(kept.last().unwrap().quantiles[2], 3.5);
    let other = s.recent_estimate_outcomes("other", 5).unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].queue, "other");
}

fn scheduled(number: &str, not_before_ms: i64) -> ScheduledRequest {
    ScheduledRequest {
        queue: "support".into(),
        level: 5,
        number: number.into(),
        requested_at_ms: 1_764_583_200_000,
        not_before_ms,
    }
}

#[test]
fn a_scheduled_callback_waits_outside_the_line_then_takes_its_place() {
    let dir = TempDir::new();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store
        .commit_callback(&request("support", 3, "+15550001111"))
        .unwrap();
    let high = store.seq_high_water().unwrap();
    let a = store
        .schedule_callback(&scheduled("+15550002222", 1_764_590_000_000))
        .unwrap();
    let b = store
        .schedule_callback(&scheduled("+15550003333", 1_764_590_000_000))
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(store.seq_high_water().unwrap(), high, "no place taken yet");
    // Open callbacks, scheduled ones first (they have no place yet), with their time.
    let open = store.pending_callbacks().unwrap();
    assert_eq!(open.len(), 3);
    let of = |id: CallbackId| open.iter().find(|r| r.id == id).unwrap().clone();
    assert!(of(a).scheduled && of(b).scheduled);
    assert_eq!(of(a).next_attempt_at_ms, Some(1_764_590_000_000));
    assert_eq!(of(a).state, CallbackState::Pending);
    // The same number for the same queue while one is open: refused with the open one's id.
    assert!(matches!(
        store.schedule_callback(&scheduled("+15550002222", 0)),
        Err(StoreError::AlreadyPending(id)) if id == a.0
    ));
    assert!(
        matches!(
            store.schedule_callback(&scheduled("+15550001111", 0)),
            Err(StoreError::AlreadyPending(_))
        ),
        "a caller's own pending callback counts too"
    );
    // Its time comes: it joins with seq 9 and the high-water mark moves past it.
    store.set_callback_seq(a, Seq(9)).unwrap();
    let joined = store
        .pending_callbacks()
        .unwrap()
        .into_iter()
        .find(|r| r.id == a)
        .unwrap();
    assert!(!joined.scheduled);
    assert_eq!(
        (joined.request.seq, joined.next_attempt_at_ms),
        (Seq(9), None)
    );
    assert_eq!(store.seq_high_water().unwrap(), Seq(10));
    assert!(
        matches!(
            store.set_callback_seq(a, Seq(11)),
            Err(StoreError::UnknownCallback(_))
        ),
        "a place is given once"
    );
    // Cancelled (failed): the number may be scheduled again.
    store
        .set_callback_state(b, CallbackState::Failed, 0, None, Some("cancelled"))
        .unwrap();
    store
        .schedule_callback(&scheduled("+15550003333", 0))
        .unwrap();
}
