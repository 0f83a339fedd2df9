//! The shared backend: a PostgreSQL server that every node of a cluster writes to
//! (`[store] backend = "postgres"`, docs/cluster.md).
//!
//! Durability: the session runs with `synchronous_commit = on`, so `COMMIT` returns only
//! after the server has flushed the commit record to its write-ahead log (and, when the
//! server has synchronous standbys, after they have too). A method that returned `Ok` has
//! therefore put its rows where a `kill -9` of holdfast or of PostgreSQL cannot undo them.
//!
//! Schema: numbered migrations in [`MIGRATIONS`], recorded in `holdfast_schema`. Every node
//! runs them at start-up inside one transaction holding a transaction-scoped advisory lock,
//! so two nodes starting at once apply each migration exactly once (the second waits, then
//! finds the work done).
//!
//! Nodes: each node has a row in `nodes` with a **lease** (`lease_until`, in the server's
//! clock, so the nodes' clocks do not matter) renewed every [`HEARTBEAT`]. A callback row
//! names the node that owns it (`node`). A node whose lease has run out for [`LEASE`] is
//! dead: the first survivor to renew its own lease afterwards takes its open callbacks
//! (`UPDATE … SET node = me … RETURNING`: row locks make each one go to exactly one
//! survivor). Every write a node makes to a callback checks it still owns it, so a node that
//! was cut off from the database and later comes back can never dial a callback that was
//! adopted meanwhile ([`StoreError::Adopted`]).

use std::collections::BTreeSet;
use std::time::Duration;

use postgres::{Client, NoTls, Row, Transaction};

use super::sqlite::{corrupt, outcome_from_row, quantiles_to_text, seq_to_sql, wait_ms_to_sql};
use super::{
    CallEvent, CallEventKind, CallbackId, CallbackRecord, CallbackRequest, CallbackState,
    ESTIMATE_OUTCOMES_KEPT, EstimateOutcome, HANDLE_TIMES_KEPT, KeptKind, NodeRecord, NodeStatus,
    Record, ScheduledRequest, Store, StoreError,
};
use crate::queue::Seq;

/// How long a node's lease lasts after each renewal: a node silent for this long is dead,
/// and its callbacks go to the survivors.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often a node renews its lease and looks for dead nodes' callbacks.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// Nodes a cluster may have (each gets a slot `0..MAX_NODES` for its sequence numbers).
pub const MAX_NODES: i16 = 256;

/// Advisory lock key held while migrating and while a node takes its slot ("holdfast").
const LOCK_KEY: i64 = 0x686f_6c64_6661_7374;

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema: the SQLite one (version 3) plus the nodes and their leases.
    "CREATE TABLE callbacks (
        id              BIGSERIAL PRIMARY KEY,
        node            TEXT     NOT NULL,
        queue           TEXT     NOT NULL,
        level           BIGINT   NOT NULL,
        seq             BIGINT   NOT NULL UNIQUE,
        number          TEXT     NOT NULL,
        requested_at    BIGINT   NOT NULL,
        state           TEXT     NOT NULL
                        CHECK (state IN ('pending', 'dialling', 'completed', 'failed')),
        attempts        INTEGER  NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        last_error      TEXT,
        updated_at      BIGINT   NOT NULL,
        attempt_invite  BYTEA
    );
    CREATE INDEX callbacks_open ON callbacks (node, seq) WHERE state IN ('pending', 'dialling');
    CREATE TABLE handle_times (
        id       BIGSERIAL PRIMARY KEY,
        queue    TEXT    NOT NULL,
        seconds  INTEGER NOT NULL,
        ended_at BIGINT  NOT NULL
    );
    CREATE INDEX handle_times_queue ON handle_times (queue, id);
    CREATE TABLE call_events (
        id      BIGSERIAL PRIMARY KEY,
        node    TEXT   NOT NULL,
        ts      BIGINT NOT NULL,
        event   TEXT   NOT NULL,
        call_id TEXT,
        queue   TEXT,
        caller  TEXT,
        agent   TEXT,
        wait_ms BIGINT,
        detail  TEXT
    );
    CREATE INDEX call_events_ts ON call_events (ts);
    CREATE TABLE estimate_outcomes (
        id        BIGSERIAL PRIMARY KEY,
        queue     TEXT   NOT NULL,
        quantiles TEXT   NOT NULL,
        waited_ms BIGINT NOT NULL
    );
    CREATE INDEX estimate_outcomes_queue ON estimate_outcomes (queue, id);
    CREATE TABLE nodes (
        name           TEXT        PRIMARY KEY,
        slot           SMALLINT    NOT NULL UNIQUE,
        lease_until    TIMESTAMPTZ NOT NULL,
        started_at     TIMESTAMPTZ NOT NULL,
        seq_high_water BIGINT      NOT NULL DEFAULT 0,
        sip            TEXT        NOT NULL DEFAULT '',
        calls          INTEGER     NOT NULL DEFAULT 0,
        waiting        INTEGER     NOT NULL DEFAULT 0,
        agents         INTEGER     NOT NULL DEFAULT 0
    );",
    // 1 → 2: one queue and one set of agents across the nodes (docs/cluster.md).
    super::cluster::sql::MIGRATION,
    // 2 → 3: what a restarted node picks up again (docs/behaviour.md §13), per node.
    "CREATE TABLE kept (
        node  TEXT NOT NULL,
        kind  TEXT NOT NULL,
        key   TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (node, kind, key)
    );",
];

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQL for "now" in Unix ms, in the server's clock (audit column only).
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

const CALLBACK_COLUMNS: &str = "id, queue, level, seq, number, requested_at, state, attempts, \
                                next_attempt_at, last_error, updated_at, attempt_invite";

/// A connection to the shared PostgreSQL store, as node `node`. Used from one thread (the
/// store thread, [`super::StoreHandle`]); it reconnects by itself after the server or the
/// network dropped the connection, so a PostgreSQL restart costs only the requests that
/// were in flight (each answered with an error: a callback is refused, never promised).
pub struct PostgresStore {
    url: String,
    node: String,
    slot: u8,
    client: Option<Client>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node", &self.node)
            .field("slot", &self.slot)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url`, migrates the schema to [`PG_SCHEMA_VERSION`], and takes (or takes
    /// back, after a restart) node `node`'s row, slot and lease.
    pub fn open(url: &str, node: &str) -> Result<Self, StoreError> {
        let mut store = Self {
            url: url.to_owned(),
            node: node.to_owned(),
            slot: 0,
            client: None,
        };
        let client = store.client()?;
        migrate(client)?;
        store.slot = join_cluster(store.client()?, node)?;
        Ok(store)
    }

    /// A connection that only reads (`holdfast report`): no migration, no node row, no
    /// lease; the schema must already be there.
    pub fn reader(url: &str) -> Result<Self, StoreError> {
        let mut store = Self {
            url: url.to_owned(),
            node: "report".to_owned(),
            slot: 0,
            client: None,
        };
        store.client()?;
        Ok(store)
    }

    /// This node's slot, `0..MAX_NODES`: the low byte of every sequence number it hands out,
    /// so two nodes never hand out the same one ([`crate::queue::Queues::set_slot`]).
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// The connection, made again if there is none or the last one broke.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut config: postgres::Config = self
                .url
                .parse()
                .map_err(|e: postgres::Error| StoreError::Postgres(e.to_string()))?;
            config
                .application_name(&format!("holdfast {}", self.node))
                .connect_timeout(Duration::from_secs(5));
            let mut client = config.connect(NoTls).map_err(pg)?;
            client
                .batch_execute("SET synchronous_commit = on")
                .map_err(pg)?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected just above"))
    }

    fn query_callbacks(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let rows = self.client()?.query(sql, params).map_err(pg)?;
        rows.iter().map(read_callback).collect()
    }

    /// Checks why an update of callback `id` by this node touched no row.
    fn not_ours(&mut self, id: CallbackId) -> StoreError {
        let node = self.node.clone();
        match self.client().and_then(|c| {
            c.query_opt("SELECT node FROM callbacks WHERE id = $1", &[&id.0])
                .map_err(pg)
        }) {
            Ok(Some(row)) => {
                let owner: String = row.get(0);
                if owner == node {
                    StoreError::UnknownCallback(id.0)
                } else {
                    StoreError::Adopted {
                        id: id.0,
                        node: owner,
                    }
                }
            }
            Ok(None) => StoreError::UnknownCallback(id.0),
            Err(error) => error,
        }
    }
}

/// A client error as the store's error.
pub(super) fn pg(error: postgres::Error) -> StoreError {
    StoreError::Postgres(error.to_string())
}

/// Applies the migrations after the stored version, all under the advisory lock.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS holdfast_schema (version BIGINT NOT NULL)")
        .map_err(pg)?;
    let found: i64 = match tx
        .query_opt("SELECT version FROM holdfast_schema", &[])
        .map_err(pg)?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO holdfast_schema (version) VALUES (0)", &[])
                .map_err(pg)?;
            0
        }
    };
    if !(0..=PG_SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::NewerSchema {
            found,
            known: PG_SCHEMA_VERSION,
        });
    }
    for sql in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.batch_execute(sql).map_err(pg)?;
    }
    tx.execute(
        "UPDATE holdfast_schema SET version = $1",
        &[&PG_SCHEMA_VERSION],
    )
    .map_err(pg)?;
    tx.commit().map_err(pg)
}

/// Takes node `node`'s row (its old slot after a restart, else the lowest free one) and a
/// fresh lease.
fn join_cluster(client: &mut Client, node: &str) -> Result<u8, StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(pg)?;
    let lease = lease_interval();
    let existing = tx
        .query_opt(
            "SELECT slot, lease_until > now() FROM nodes WHERE name = $1",
            &[&node],
        )
        .map_err(pg)?;
    let slot: i16 = match existing {
        Some(row) => {
            if row.get::<_, bool>(1) {
                tracing::warn!(
                    node,
                    "this node's lease is still held: either it restarted within the lease, \
                     or another process runs with the same [cluster] node name"
                );
            }
            tx.execute(
                &format!(
                    "UPDATE nodes SET lease_until = now() + interval '{lease}', \
                     started_at = now() WHERE name = $1"
                ),
                &[&node],
            )
            .map_err(pg)?;
            row.get(0)
        }
        None => {
            let free = tx
                .query_opt(
                    "SELECT s::smallint FROM generate_series(0, $1::int - 1) s \
                     WHERE s NOT IN (SELECT slot FROM nodes) ORDER BY s LIMIT 1",
                    &[&i32::from(MAX_NODES)],
                )
                .map_err(pg)?
                .ok_or(StoreError::ClusterFull(MAX_NODES))?;
            let slot: i16 = free.get(0);
            tx.execute(
                &format!(
                    "INSERT INTO nodes (name, slot, lease_until, started_at) \
                     VALUES ($1, $2, now() + interval '{lease}', now())"
                ),
                &[&node, &slot],
            )
            .map_err(pg)?;
            slot
        }
    };
    tx.commit().map_err(pg)?;
    u8::try_from(slot).map_err(|_| corrupt("node slot", slot))
}

fn lease_interval() -> String {
    format!("{} milliseconds", LEASE.as_millis())
}

/// Reads one `CALLBACK_COLUMNS` row.
fn read_callback(row: &Row) -> Result<CallbackRecord, StoreError> {
    let level: i64 = row.get(2);
    let seq: i64 = row.get(3);
    let state: String = row.get(6);
    let attempts: i32 = row.get(7);
    Ok(CallbackRecord {
        id: CallbackId(row.get(0)),
        // A negative seq is a scheduled callback's placeholder (not in its queue yet).
        scheduled: seq < 0,
        request: CallbackRequest {
            queue: row.get(1),
            level: u32::try_from(level).map_err(|_| corrupt("level", level))?,
            seq: Seq(u64::try_from(seq.max(0)).map_err(|_| corrupt("seq", seq))?),
            number: row.get(4),
            requested_at_ms: row.get(5),
        },
        state: CallbackState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts", attempts))?,
        next_attempt_at_ms: row.get(8),
        last_error: row.get(9),
        updated_at_ms: row.get(10),
        attempt_invite: row.get(11),
    })
}

fn read_event(row: &Row) -> Result<CallEvent, StoreError> {
    let kind: String = row.get(1);
    let wait_ms: Option<i64> = row.get(6);
    let detail: Option<String> = row.get(7);
    Ok(CallEvent {
        ts_ms: row.get(0),
        kind: CallEventKind::parse(&kind).ok_or_else(|| corrupt("event", &kind))?,
        call_id: row.get(2),
        queue: row.get(3),
        caller: row.get(4),
        agent: row.get(5),
        wait_ms: wait_ms
            .map(|w| u64::try_from(w).map_err(|_| corrupt("wait_ms", w)))
            .transpose()?,
        detail: detail
            .map(|d| serde_json::from_str(&d).map_err(|e| corrupt("detail", e)))
            .transpose()?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn raise_high_water(tx: &mut Transaction<'_>, node: &str, next: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE nodes SET seq_high_water = GREATEST(seq_high_water, $2) WHERE name = $1",
        &[&node, &next],
    )
    .map_err(pg)?;
    Ok(())
}

fn insert_record(tx: &mut Transaction<'_>, node: &str, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Event(e) => {
            let wait_ms = wait_ms_to_sql(e)?;
            tx.execute(
                "INSERT INTO call_events \
                 (node, ts, event, call_id, queue, caller, agent, wait_ms, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &node,
                    &e.ts_ms,
                    &e.kind.as_str(),
                    &e.call_id,
                    &e.queue,
                    &e.caller,
                    &e.agent,
                    &wait_ms,
                    &e.detail.as_ref().map(ToString::to_string),
                ],
            )
        }
        Record::HandleTime(h) => tx.execute(
            "INSERT INTO handle_times (queue, seconds, ended_at) VALUES ($1, $2, $3)",
            &[
                &h.queue,
                &i32::try_from(h.seconds).unwrap_or(i32::MAX),
                &h.ended_at_ms,
            ],
        ),
        Record::EstimateOutcome(o) => tx.execute(
            "INSERT INTO estimate_outcomes (queue, quantiles, waited_ms) VALUES ($1, $2, $3)",
            &[
                &o.queue,
                &quantiles_to_text(&o.quantiles),
                &i64::try_from(o.waited_ms).unwrap_or(i64::MAX),
            ],
        ),
        Record::Keep(k) => match &k.state {
            Some(state) => tx.execute(
                "INSERT INTO kept (node, kind, key, state) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (node, kind, key) DO UPDATE SET state = excluded.state",
                &[&node, &k.kind.as_str(), &k.key, state],
            ),
            None => tx.execute(
                "DELETE FROM kept WHERE node = $1 AND kind = $2 AND key = $3",
                &[&node, &k.kind.as_str(), &k.key],
            ),
        },
    }
    .map_err(pg)?;
    Ok(())
}

impl Store for PostgresStore {
    fn commit_callback(&mut self, request: &CallbackRequest) -> Result<CallbackId, StoreError> {
        let seq = seq_to_sql(request.seq)?;
        let next = seq_to_sql(Seq(request.seq.0.saturating_add(1)))?;
        let node = self.node.clone();
        let mut tx = self.client()?.transaction().map_err(pg)?;
        let inserted = tx
            .query_opt(
                &format!(
                    "INSERT INTO callbacks (node, queue, level, seq, number, requested_at, \
                     state, attempts, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, {NOW_MS}) \
                     ON CONFLICT (seq) DO NOTHING RETURNING id"
                ),
                &[
                    &node,
                    &request.queue,
                    &i64::from(request.level),
                    &seq,
                    &request.number,
                    &request.requested_at_ms,
                ],
            )
            .map_err(pg)?;
        let id = match inserted {
            Some(row) => row.get(0),
            None => {
                // A retried commit of the same press hands back the first id.
                let row = tx
                    .query_one(
                        "SELECT id, queue, level, number FROM callbacks WHERE seq = $1",
                        &[&seq],
                    )
                    .map_err(pg)?;
                let same = row.get::<_, String>(1) == request.queue
                    && row.get::<_, i64>(2) == i64::from(request.level)
                    && row.get::<_, String>(3) == request.number;
                if !same {
                    return Err(StoreError::SeqTaken(request.seq.0));
                }
                row.get(0)
            }
        };
        raise_high_water(&mut tx, &node, next)?;
        tx.commit().map_err(pg)?;
        Ok(CallbackId(id))
    }

    fn schedule_callback(&mut self, request: &ScheduledRequest) -> Result<CallbackId, StoreError> {
        let node = self.node.clone();
        let mut tx = self.client()?.transaction().map_err(pg)?;
        let open = tx
            .query_opt(
                "SELECT id FROM callbacks WHERE queue = $1 AND number = $2 \
                 AND state IN ('pending', 'dialling') LIMIT 1",
                &[&request.queue, &request.number],
            )
            .map_err(pg)?;
        if let Some(row) = open {
            return Err(StoreError::AlreadyPending(row.get(0)));
        }
        // The placeholder seq is minus the row's own id: unique across nodes, never a place.
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO callbacks (id, node, queue, level, seq, number, requested_at, \
                     state, attempts, next_attempt_at, updated_at) \
                     SELECT n, $1, $2, $3, -n, $4, $5, 'pending', 0, $6, {NOW_MS} \
                     FROM (SELECT nextval(pg_get_serial_sequence('callbacks', 'id')) AS n) s \
                     RETURNING id"
                ),
                &[
                    &node,
                    &request.queue,
                    &i64::from(request.level),
                    &request.number,
                    &request.requested_at_ms,
                    &request.not_before_ms,
                ],
            )
            .map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(CallbackId(row.get(0)))
    }

    fn set_callback_seq(&mut self, id: CallbackId, seq: Seq) -> Result<(), StoreError> {
        let node = self.node.clone();
        let value = seq_to_sql(seq)?;
        let next = seq_to_sql(Seq(seq.0.saturating_add(1)))?;
        let mut tx = self.client()?.transaction().map_err(pg)?;
        let changed = tx
            .execute(
                &format!(
                    "UPDATE callbacks SET seq = $3, next_attempt_at = NULL, updated_at = {NOW_MS} \
                     WHERE id = $1 AND node = $2 AND seq < 0"
                ),
                &[&id.0, &node, &value],
            )
            .map_err(pg)?;
        if changed == 0 {
            drop(tx);
            return Err(self.not_ours(id));
        }
        raise_high_water(&mut tx, &node, next)?;
        tx.commit().map_err(pg)
    }

    fn set_callback_state(
        &mut self,
        id: CallbackId,
        state: CallbackState,
        attempts: u32,
        next_attempt_at_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let node = self.node.clone();
        let changed = self
            .client()?
            .execute(
                &format!(
                    "UPDATE callbacks SET state = $3, attempts = $4, next_attempt_at = $5, \
                     last_error = $6, attempt_invite = NULL, updated_at = {NOW_MS} \
                     WHERE id = $1 AND node = $2"
                ),
                &[
                    &id.0,
                    &node,
                    &state.as_str(),
                    &i32::try_from(attempts).unwrap_or(i32::MAX),
                    &next_attempt_at_ms,
                    &error,
                ],
            )
            .map_err(pg)?;
        if changed == 0 {
            return Err(self.not_ours(id));
        }
        Ok(())
    }

    fn begin_attempt(
        &mut self,
        id: CallbackId,
        attempts: u32,
        invite: &[u8],
    ) -> Result<(), StoreError> {
        let node = self.node.clone();
        // Only while this node owns it: an adopted callback is dialled by its new owner only.
        let changed = self
            .client()?
            .execute(
                &format!(
                    "UPDATE callbacks SET state = 'dialling', attempts = $3, \
                     next_attempt_at = NULL, last_error = NULL, attempt_invite = $4, \
                     updated_at = {NOW_MS} WHERE id = $1 AND node = $2"
                ),
                &[
                    &id.0,
                    &node,
                    &i32::try_from(attempts).unwrap_or(i32::MAX),
                    &invite,
                ],
            )
            .map_err(pg)?;
        if changed == 0 {
            return Err(self.not_ours(id));
        }
        Ok(())
    }

    fn pending_callbacks(&mut self) -> Result<Vec<CallbackRecord>, StoreError> {
        let node = self.node.clone();
        // FOR UPDATE waits for a survivor adopting them right now, then skips what it took.
        self.query_callbacks(
            &format!(
                "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE node = $1 \
                 AND state IN ('pending', 'dialling') ORDER BY seq FOR UPDATE"
            ),
            &[&node],
        )
    }

    fn recent_callbacks(&mut self, n: usize) -> Result<Vec<CallbackRecord>, StoreError> {
        self.query_callbacks(
            &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks ORDER BY id DESC LIMIT $1"),
            &[&limit(n)],
        )
    }

    fn record_batch(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let node = self.node.clone();
        let mut tx = self.client()?.transaction().map_err(pg)?;
        // Fire-and-forget records need no flush to disk before the commit returns (a
        // server crash may lose the last of them, never a callback, docs/behaviour.md §13).
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .map_err(pg)?;
        let mut pruned = BTreeSet::new();
        let mut pruned_outcomes = BTreeSet::new();
        for record in records {
            insert_record(&mut tx, &node, record)?;
            match record {
                Record::HandleTime(h) => {
                    pruned.insert(h.queue.as_str());
                }
                Record::EstimateOutcome(o) => {
                    pruned_outcomes.insert(o.queue.as_str());
                }
                Record::Event(_) | Record::Keep(_) => {}
            }
        }
        for (table, queues, kept) in [
            ("handle_times", pruned, HANDLE_TIMES_KEPT),
            ("estimate_outcomes", pruned_outcomes, ESTIMATE_OUTCOMES_KEPT),
        ] {
            for queue in queues {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE queue = $1 AND id < \
                         (SELECT min(id) FROM (SELECT id FROM {table} WHERE queue = $1 \
                         ORDER BY id DESC LIMIT $2) newest)"
                    ),
                    &[&queue, &limit(kept)],
                )
                .map_err(pg)?;
            }
        }
        tx.commit().map_err(pg)
    }

    fn recent_handle_times(&mut self, queue: &str, n: usize) -> Result<Vec<u32>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT seconds FROM (SELECT id, seconds FROM handle_times WHERE queue = $1 \
                 ORDER BY id DESC LIMIT $2) newest ORDER BY id",
                &[&queue, &limit(n)],
            )
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let s: i32 = r.get(0);
                u32::try_from(s).map_err(|_| corrupt("handle time", s))
            })
            .collect()
    }

    fn recent_estimate_outcomes(
        &mut self,
        queue: &str,
        n: usize,
    ) -> Result<Vec<EstimateOutcome>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT quantiles, waited_ms FROM (SELECT id, quantiles, waited_ms \
                 FROM estimate_outcomes WHERE queue = $1 ORDER BY id DESC LIMIT $2) newest \
                 ORDER BY id",
                &[&queue, &limit(n)],
            )
            .map_err(pg)?;
        rows.iter()
            .map(|r| outcome_from_row(queue, r.get::<_, &str>(0), r.get(1)))
            .collect()
    }

    fn recent_events(&mut self, n: usize) -> Result<Vec<CallEvent>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT ts, event, call_id, queue, caller, agent, wait_ms, detail \
                 FROM call_events ORDER BY id DESC LIMIT $1",
                &[&limit(n)],
            )
            .map_err(pg)?;
        rows.iter().map(read_event).collect()
    }

    fn events_between(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<CallEvent>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT ts, event, call_id, queue, caller, agent, wait_ms, detail \
                 FROM call_events WHERE ts >= $1 AND ts < $2 ORDER BY ts, id",
                &[&from_ms, &to_ms],
            )
            .map_err(pg)?;
        rows.iter().map(read_event).collect()
    }

    fn kept(&mut self, kind: KeptKind) -> Result<Vec<(String, String)>, StoreError> {
        let node = self.node.clone();
        let rows = self
            .client()?
            .query(
                "SELECT key, state FROM kept WHERE node = $1 AND kind = $2 ORDER BY key",
                &[&node, &kind.as_str()],
            )
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn seq_high_water(&mut self) -> Result<Seq, StoreError> {
        let node = self.node.clone();
        let row = self
            .client()?
            .query_opt("SELECT seq_high_water FROM nodes WHERE name = $1", &[&node])
            .map_err(pg)?;
        let value: i64 = row.map_or(0, |r| r.get(0));
        Ok(Seq(
            u64::try_from(value).map_err(|_| corrupt("seq_high_water", value))?
        ))
    }

    fn set_seq_high_water(&mut self, seq: Seq) -> Result<(), StoreError> {
        let node = self.node.clone();
        let value = seq_to_sql(seq)?;
        let mut tx = self.client()?.transaction().map_err(pg)?;
        raise_high_water(&mut tx, &node, value)?;
        tx.commit().map_err(pg)
    }

    fn renew_lease(&mut self, status: &NodeStatus) -> Result<Vec<CallbackRecord>, StoreError> {
        let node = self.node.clone();
        let lease = lease_interval();
        let mut tx = self.client()?.transaction().map_err(pg)?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let renewed = tx
            .execute(
                &format!(
                    "UPDATE nodes SET lease_until = now() + interval '{lease}', sip = $2, \
                     calls = $3, waiting = $4, agents = $5 WHERE name = $1"
                ),
                &[
                    &node,
                    &status.sip,
                    &count(status.calls),
                    &count(status.waiting),
                    &count(status.agents),
                ],
            )
            .map_err(pg)?;
        if renewed == 0 {
            // The row was deleted by hand: take a slot again.
            tx.rollback().map_err(pg)?;
            self.slot = join_cluster(self.client()?, &node)?;
            return Ok(Vec::new());
        }
        // A dead node's open callbacks: each row goes to whichever survivor locks it first;
        // the others skip it (their WHERE no longer matches once they get the lock).
        let rows = tx
            .query(
                &format!(
                    "UPDATE callbacks SET node = $1, updated_at = {NOW_MS} \
                     WHERE state IN ('pending', 'dialling') AND node IN \
                     (SELECT name FROM nodes WHERE lease_until < now() AND name <> $1) \
                     RETURNING {CALLBACK_COLUMNS}"
                ),
                &[&node],
            )
            .map_err(pg)?;
        let mut adopted = rows
            .iter()
            .map(read_callback)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(pg)?;
        adopted.sort_by_key(|c| c.request.seq);
        Ok(adopted)
    }

    fn cluster_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT n.name, n.slot, n.lease_until > now(), \
                 (extract(epoch from n.lease_until) * 1000)::bigint, \
                 (extract(epoch from n.started_at) * 1000)::bigint, n.sip, n.calls, n.waiting, \
                 n.agents, (SELECT count(*) FROM callbacks c WHERE c.node = n.name \
                 AND c.state IN ('pending', 'dialling')) FROM nodes n ORDER BY n.name",
                &[],
            )
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| NodeRecord {
                name: r.get(0),
                slot: r.get::<_, i16>(1),
                alive: r.get(2),
                lease_until_ms: r.get(3),
                started_at_ms: r.get(4),
                sip: r.get(5),
                calls: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
                waiting: u32::try_from(r.get::<_, i32>(7)).unwrap_or(0),
                agents: u32::try_from(r.get::<_, i32>(8)).unwrap_or(0),
                open_callbacks: u64::try_from(r.get::<_, i64>(9)).unwrap_or(0),
            })
            .collect())
    }
}
