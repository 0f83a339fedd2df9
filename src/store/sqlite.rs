//! The embedded default backend: one SQLite file, `holdfast.db`, in `data_dir` (docs/behaviour.md §7).
//!
//! Durability: the connection runs in WAL mode with `synchronous=FULL`, so every commit
//! appends to the write-ahead log and fsyncs it before `COMMIT` returns. A method of
//! [`SqliteStore`] that returned `Ok` has therefore put its rows on stable storage: they
//! survive the process being killed (`kill -9`) and, as far as the disk honours fsync, a power
//! cut. Fire-and-forget records ([`Record`]: call events, handle times, estimate outcomes,
//! kept calls and agents) are written with `synchronous=NORMAL` instead: their commit is in
//! the log when it returns, safe from a process crash, and reaches stable storage at the next
//! checkpoint; a power cut may lose the last of them, never a callback promise. Readers never
//! block the writer in WAL mode, and `busy_timeout` makes a second
//! process (e.g. an operator's `sqlite3` shell) wait instead of failing at once.
//!
//! Schema changes are numbered migrations recorded in `PRAGMA user_version`; each runs in
//! its own transaction, so a crash mid-upgrade leaves the previous version intact. A file with
//! a newer version than this build knows is refused ([`StoreError::NewerSchema`]) rather than
//! misread.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{
    CallEvent, CallEventKind, CallbackId, CallbackRecord, CallbackRequest, CallbackState,
    EstimateOutcome, KeptKind, Record, ScheduledRequest, Store, StoreError,
};
use crate::queue::Seq;

/// File name of the database inside `data_dir`.
pub const DB_FILE: &str = "holdfast.db";

/// Handle times kept per queue; older ones are pruned on insert. The estimator averages the
/// last 100 (docs/behaviour.md §4), so nothing older is ever read.
pub const HANDLE_TIMES_KEPT: usize = 100;

/// Estimate outcomes kept per queue (the calibration remembers as many, docs/behaviour.md §4).
pub const ESTIMATE_OUTCOMES_KEPT: usize = 500;

/// How long a write waits for another connection's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `meta` key of the sequence high-water mark.
const SEQ_HIGH_WATER: &str = "seq_high_water";

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only: never edit a
/// migration that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema.
    "CREATE TABLE callbacks (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        queue           TEXT    NOT NULL,
        level           INTEGER NOT NULL,
        seq             INTEGER NOT NULL UNIQUE,
        number          TEXT    NOT NULL,
        requested_at    INTEGER NOT NULL,
        state           TEXT    NOT NULL
                        CHECK (state IN ('pending', 'dialling', 'completed', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        last_error      TEXT,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX callbacks_open ON callbacks (seq) WHERE state IN ('pending', 'dialling');
    CREATE TABLE handle_times (
        id       INTEGER PRIMARY KEY,
        queue    TEXT    NOT NULL,
        seconds  INTEGER NOT NULL,
        ended_at INTEGER NOT NULL
    );
    CREATE INDEX handle_times_queue ON handle_times (queue, id);
    CREATE TABLE call_events (
        id      INTEGER PRIMARY KEY,
        ts      INTEGER NOT NULL,
        event   TEXT    NOT NULL,
        call_id TEXT,
        queue   TEXT,
        caller  TEXT,
        agent   TEXT,
        wait_ms INTEGER,
        detail  TEXT
    );
    CREATE INDEX call_events_ts ON call_events (ts);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 1 → 2: the wire bytes of a dial-back's trunk INVITE, written before it is sent and
    // cleared when the attempt ends, so a restart can cancel it (docs/behaviour.md §6).
    "ALTER TABLE callbacks ADD COLUMN attempt_invite BLOB;",
    // 2 → 3: what the wait estimate learns from (docs/behaviour.md §4): each answered caller's
    // forecast quantiles (seconds, comma-separated) and real wait.
    "CREATE TABLE estimate_outcomes (
        id        INTEGER PRIMARY KEY,
        queue     TEXT    NOT NULL,
        quantiles TEXT    NOT NULL,
        waited_ms INTEGER NOT NULL
    );
    CREATE INDEX estimate_outcomes_queue ON estimate_outcomes (queue, id);",
    // 3 → 4: what a restarted process picks up again (docs/behaviour.md §13): calls on the
    // line, registrations, agent states, each an opaque JSON state.
    // Rows of a kilobyte or more: a rowid table (WITHOUT ROWID suits small rows).
    "CREATE TABLE kept (
        id    INTEGER PRIMARY KEY,
        kind  TEXT NOT NULL,
        key   TEXT NOT NULL,
        state TEXT NOT NULL,
        UNIQUE (kind, key)
    );",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQL for "now" in Unix ms, evaluated by SQLite (audit column only).
const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

const CALLBACK_COLUMNS: &str = "id, queue, level, seq, number, requested_at, state, attempts, \
                                next_attempt_at, last_error, updated_at, attempt_invite";

/// The embedded SQLite store. One connection, used from one thread (see
/// [`super::StoreHandle`] to keep fsyncs off the controller's thread).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/holdfast.db`, creating `dir` too, switches to WAL with
    /// `synchronous=FULL` and migrates the schema to [`SCHEMA_VERSION`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let mut conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Check the version before changing anything in a file we may not understand.
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found < 0 {
            return Err(corrupt("user_version", found));
        }
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal(mode));
        }
        // Per connection, not stored in the file: FULL fsyncs the WAL on every commit.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// The raw connection, for tests that inspect pragmas and tables.
    #[cfg(test)]
    pub(super) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

/// Runs every migration after the file's version, each in its own transaction together with
/// its version bump. The version is re-read inside the write lock, so two processes opening a
/// fresh file at once do not both run a migration.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            // Up to date (a newer or negative version was refused before).
            return Ok(());
        };
        tx.execute_batch(sql)?;
        // user_version lives in the file header and is part of the transaction.
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

pub(super) fn seq_to_sql(seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq.0).map_err(|_| StoreError::OutOfRange {
        what: "sequence number",
        value: seq.0,
    })
}

pub(super) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} {value}"))
}

/// Reads one `CALLBACK_COLUMNS` row.
fn read_callback(row: &Row<'_>) -> Result<CallbackRecord, StoreError> {
    let level: i64 = row.get(2)?;
    let seq: i64 = row.get(3)?;
    let state: String = row.get(6)?;
    let attempts: i64 = row.get(7)?;
    Ok(CallbackRecord {
        id: CallbackId(row.get(0)?),
        // A negative seq is a scheduled callback's placeholder (not in its queue yet).
        scheduled: seq < 0,
        request: CallbackRequest {
            queue: row.get(1)?,
            level: u32::try_from(level).map_err(|_| corrupt("level", level))?,
            seq: Seq(u64::try_from(seq.max(0)).map_err(|_| corrupt("seq", seq))?),
            number: row.get(4)?,
            requested_at_ms: row.get(5)?,
        },
        state: CallbackState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts", attempts))?,
        next_attempt_at_ms: row.get(8)?,
        last_error: row.get(9)?,
        updated_at_ms: row.get(10)?,
        attempt_invite: row.get(11)?,
    })
}

fn read_event(row: &Row<'_>) -> Result<CallEvent, StoreError> {
    let kind: String = row.get(1)?;
    let wait_ms: Option<i64> = row.get(6)?;
    let detail: Option<String> = row.get(7)?;
    Ok(CallEvent {
        ts_ms: row.get(0)?,
        kind: CallEventKind::parse(&kind).ok_or_else(|| corrupt("event", &kind))?,
        call_id: row.get(2)?,
        queue: row.get(3)?,
        caller: row.get(4)?,
        agent: row.get(5)?,
        wait_ms: wait_ms
            .map(|w| u64::try_from(w).map_err(|_| corrupt("wait_ms", w)))
            .transpose()?,
        detail: detail
            .map(|d| serde_json::from_str(&d).map_err(|e| corrupt("detail", e)))
            .transpose()?,
    })
}

impl SqliteStore {
    fn query_callbacks(
        &mut self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_callback(row)?);
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn commit_callback(&mut self, request: &CallbackRequest) -> Result<CallbackId, StoreError> {
        let seq = seq_to_sql(request.seq)?;
        let next = seq_to_sql(Seq(request.seq.0.saturating_add(1)))?;
        // IMMEDIATE takes the write lock up front, so the check-then-insert cannot race.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<(i64, String, i64, String)> = tx
            .query_row(
                "SELECT id, queue, level, number FROM callbacks WHERE seq = ?1",
                [seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let id = match existing {
            // A retried commit of the same press: hand back the first id, insert nothing.
            Some((id, queue, level, number))
                if queue == request.queue
                    && level == i64::from(request.level)
                    && number == request.number =>
            {
                id
            }
            Some(_) => return Err(StoreError::SeqTaken(request.seq.0)),
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO callbacks (queue, level, seq, number, requested_at, state, \
                         attempts, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, {NOW_MS})"
                    ),
                    params![
                        request.queue,
                        i64::from(request.level),
                        seq,
                        request.number,
                        request.requested_at_ms
                    ],
                )?;
                tx.last_insert_rowid()
            }
        };
        raise_high_water(&tx, next)?;
        tx.commit()?;
        Ok(CallbackId(id))
    }

    fn schedule_callback(&mut self, request: &ScheduledRequest) -> Result<CallbackId, StoreError> {
        // IMMEDIATE takes the write lock up front, so the check-then-insert cannot race.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM callbacks WHERE queue = ?1 AND number = ?2 \
                 AND state IN ('pending', 'dialling') LIMIT 1",
                params![request.queue, request.number],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = open {
            return Err(StoreError::AlreadyPending(id));
        }
        // The placeholder seq: below every seq in the table, so unique and never a place.
        tx.execute(
            &format!(
                "INSERT INTO callbacks (queue, level, seq, number, requested_at, state, \
                 attempts, next_attempt_at, updated_at) \
                 VALUES (?1, ?2, (SELECT MIN(0, COALESCE(MIN(seq), 0)) - 1 FROM callbacks), \
                 ?3, ?4, 'pending', 0, ?5, {NOW_MS})"
            ),
            params![
                request.queue,
                i64::from(request.level),
                request.number,
                request.requested_at_ms,
                request.not_before_ms
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(CallbackId(id))
    }

    fn set_callback_seq(&mut self, id: CallbackId, seq: Seq) -> Result<(), StoreError> {
        let value = seq_to_sql(seq)?;
        let next = seq_to_sql(Seq(seq.0.saturating_add(1)))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            &format!(
                "UPDATE callbacks SET seq = ?2, next_attempt_at = NULL, updated_at = {NOW_MS} \
                 WHERE id = ?1 AND seq < 0"
            ),
            params![id.0, value],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownCallback(id.0));
        }
        raise_high_water(&tx, next)?;
        tx.commit()?;
        Ok(())
    }

    fn set_callback_state(
        &mut self,
        id: CallbackId,
        state: CallbackState,
        attempts: u32,
        next_attempt_at_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            &format!(
                "UPDATE callbacks SET state = ?2, attempts = ?3, next_attempt_at = ?4, \
                 last_error = ?5, attempt_invite = NULL, updated_at = {NOW_MS} WHERE id = ?1"
            ),
            params![
                id.0,
                state.as_str(),
                i64::from(attempts),
                next_attempt_at_ms,
                error
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownCallback(id.0));
        }
        Ok(())
    }

    fn begin_attempt(
        &mut self,
        id: CallbackId,
        attempts: u32,
        invite: &[u8],
    ) -> Result<(), StoreError> {
        // One statement, so one transaction: state, count and INVITE land together or not.
        let changed = self.conn.execute(
            &format!(
                "UPDATE callbacks SET state = 'dialling', attempts = ?2, next_attempt_at = NULL, \
                 last_error = NULL, attempt_invite = ?3, updated_at = {NOW_MS} WHERE id = ?1"
            ),
            params![id.0, i64::from(attempts), invite],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownCallback(id.0));
        }
        Ok(())
    }

    fn pending_callbacks(&mut self) -> Result<Vec<CallbackRecord>, StoreError> {
        self.query_callbacks(
            &format!(
                "SELECT {CALLBACK_COLUMNS} FROM callbacks \
                 WHERE state IN ('pending', 'dialling') ORDER BY seq"
            ),
            [],
        )
    }

    fn recent_callbacks(&mut self, limit: usize) -> Result<Vec<CallbackRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_callbacks(
            &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks ORDER BY id DESC LIMIT ?1"),
            [limit],
        )
    }

    fn record_batch(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // No fsync for records (module docs); back to FULL for whatever comes next.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = write_records(&mut self.conn, records);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written
    }

    fn recent_estimate_outcomes(
        &mut self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<EstimateOutcome>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT quantiles, waited_ms FROM (SELECT id, quantiles, waited_ms \
             FROM estimate_outcomes WHERE queue = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let mut rows = stmt.query(params![queue, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let waited: i64 = row.get(1)?;
            out.push(outcome_from_row(queue, &text, waited)?);
        }
        Ok(out)
    }

    fn recent_handle_times(&mut self, queue: &str, limit: usize) -> Result<Vec<u32>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seconds FROM (SELECT id, seconds FROM handle_times WHERE queue = ?1 \
             ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let mut rows = stmt.query(params![queue, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let s: i64 = row.get(0)?;
            out.push(u32::try_from(s).map_err(|_| corrupt("handle time", s))?);
        }
        Ok(out)
    }

    fn recent_events(&mut self, limit: usize) -> Result<Vec<CallEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, event, call_id, queue, caller, agent, wait_ms, detail \
             FROM call_events ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query([limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_event(row)?);
        }
        Ok(out)
    }

    fn events_between(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<CallEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, event, call_id, queue, caller, agent, wait_ms, detail \
             FROM call_events WHERE ts >= ?1 AND ts < ?2 ORDER BY ts, id",
        )?;
        let mut rows = stmt.query([from_ms, to_ms])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_event(row)?);
        }
        Ok(out)
    }

    fn kept(&mut self, kind: KeptKind) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT key, state FROM kept WHERE kind = ?1 ORDER BY key")?;
        let rows = statement.query_map([kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn seq_high_water(&mut self) -> Result<Seq, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [SEQ_HIGH_WATER],
                |r| r.get(0),
            )
            .optional()?;
        let value = value.unwrap_or(0);
        Ok(Seq(
            u64::try_from(value).map_err(|_| corrupt("seq high-water", value))?
        ))
    }

    fn set_seq_high_water(&mut self, seq: Seq) -> Result<(), StoreError> {
        let value = seq_to_sql(seq)?;
        raise_high_water(&self.conn, value)
    }
}

/// `meta.seq_high_water = max(current, value)`: the mark never moves back.
/// One transaction of fire-and-forget records (see [`Store::record_batch`]).
fn write_records(conn: &mut Connection, records: &[Record]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut pruned = BTreeSet::new();
    let mut pruned_outcomes = BTreeSet::new();
    for record in records {
        match record {
            Record::Event(e) => {
                let wait_ms = wait_ms_to_sql(e)?;
                tx.prepare_cached(
                    "INSERT INTO call_events \
                     (ts, event, call_id, queue, caller, agent, wait_ms, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    e.ts_ms,
                    e.kind.as_str(),
                    e.call_id,
                    e.queue,
                    e.caller,
                    e.agent,
                    wait_ms,
                    e.detail.as_ref().map(|d| d.to_string()),
                ])?;
            }
            Record::HandleTime(h) => {
                tx.prepare_cached(
                    "INSERT INTO handle_times (queue, seconds, ended_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![h.queue, i64::from(h.seconds), h.ended_at_ms])?;
                pruned.insert(h.queue.as_str());
            }
            Record::EstimateOutcome(o) => {
                tx.prepare_cached(
                    "INSERT INTO estimate_outcomes (queue, quantiles, waited_ms) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    o.queue,
                    quantiles_to_text(&o.quantiles),
                    i64::try_from(o.waited_ms).unwrap_or(i64::MAX)
                ])?;
                pruned_outcomes.insert(o.queue.as_str());
            }
            Record::Keep(k) => match &k.state {
                Some(state) => {
                    tx.prepare_cached(
                        "INSERT INTO kept (kind, key, state) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (kind, key) DO UPDATE SET state = excluded.state",
                    )?
                    .execute(params![k.kind.as_str(), k.key, state])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM kept WHERE kind = ?1 AND key = ?2")?
                        .execute(params![k.kind.as_str(), k.key])?;
                }
            },
        }
    }
    for queue in pruned_outcomes {
        tx.prepare_cached(
            "DELETE FROM estimate_outcomes WHERE queue = ?1 AND id NOT IN \
             (SELECT id FROM estimate_outcomes WHERE queue = ?1 ORDER BY id DESC LIMIT ?2)",
        )?
        .execute(params![queue, ESTIMATE_OUTCOMES_KEPT as i64])?;
    }
    // Prune once per queue per batch, keeping the newest HANDLE_TIMES_KEPT rows.
    for queue in pruned {
        tx.prepare_cached(
            "DELETE FROM handle_times WHERE queue = ?1 AND id NOT IN \
             (SELECT id FROM handle_times WHERE queue = ?1 ORDER BY id DESC LIMIT ?2)",
        )?
        .execute(params![queue, HANDLE_TIMES_KEPT as i64])?;
    }
    tx.commit()?;
    Ok(())
}

fn raise_high_water(conn: &Connection, value: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![SEQ_HIGH_WATER, value])?;
    Ok(())
}

/// The `quantiles` column: seconds, comma-separated, lowest first.
pub(super) fn quantiles_to_text(quantiles: &[f64]) -> String {
    let parts: Vec<String> = quantiles.iter().map(|q| format!("{q:.3}")).collect();
    parts.join(",")
}

/// An `estimate_outcomes` row read back.
pub(super) fn outcome_from_row(
    queue: &str,
    text: &str,
    waited: i64,
) -> Result<EstimateOutcome, StoreError> {
    let quantiles = text
        .split(',')
        .map(|q| q.parse::<f64>().ok().filter(|q| q.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| corrupt("estimate quantiles", text))?;
    Ok(EstimateOutcome {
        queue: queue.to_owned(),
        quantiles,
        waited_ms: u64::try_from(waited).map_err(|_| corrupt("waited_ms", waited))?,
    })
}

/// An event's `wait_ms` as the signed column holds it.
pub(super) fn wait_ms_to_sql(event: &CallEvent) -> Result<Option<i64>, StoreError> {
    event
        .wait_ms
        .map(|w| {
            i64::try_from(w).map_err(|_| StoreError::OutOfRange {
                what: "wait_ms",
                value: w,
            })
        })
        .transpose()
}
