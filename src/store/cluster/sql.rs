//! The statements of the cluster's log, its sum tables and claims (see the module above).
//!
//! Lock order: every transaction that writes the log or the sum tables locks the single row
//! of `cluster_head` first, so writers are serialised (ids commit in order, a reader by id
//! never skips one) and no two writers can deadlock over agent rows.

use postgres::{Client, Transaction};

use super::{Change, Claim, LogRow};
use crate::store::StoreError;
use crate::store::postgres::pg;

/// Schema migration 1 → 2 of the PostgreSQL store: the log, its sums, the dead-node flag.
pub const MIGRATION: &str = "
    CREATE TABLE cluster_head (
        only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
        id       BIGINT  NOT NULL
    );
    INSERT INTO cluster_head (only_row, id) VALUES (true, 0);
    CREATE TABLE cluster_log (
        id     BIGINT      PRIMARY KEY,
        node   TEXT        NOT NULL,
        at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        change TEXT        NOT NULL
    );
    CREATE INDEX cluster_log_at ON cluster_log (at);
    CREATE TABLE cluster_waiting (
        seq    BIGINT PRIMARY KEY,
        node   TEXT   NOT NULL,
        change TEXT   NOT NULL
    );
    CREATE TABLE cluster_agents (
        user_name    TEXT    PRIMARY KEY,
        registrar    TEXT,
        registration TEXT,
        paused       BOOLEAN NOT NULL DEFAULT false,
        holder       TEXT,
        holder_log   BIGINT  NOT NULL DEFAULT 0,
        held_state   TEXT
    );
    ALTER TABLE nodes ADD COLUMN cleaned BOOLEAN NOT NULL DEFAULT false;
";

/// The channel every append notifies.
pub const CHANNEL: &str = "holdfast_log";

fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Locks the log's head and returns the last id written.
fn lock_head(tx: &mut Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT id FROM cluster_head FOR UPDATE", &[])
        .map_err(pg)?
        .get(0))
}

/// Applies `change` by `node` to the sum tables; returns the changes to log (none when it
/// changed nothing: e.g. a release of an agent this node no longer holds).
fn apply(tx: &mut Transaction<'_>, node: &str, change: &Change) -> Result<Vec<Change>, StoreError> {
    let touched = match change {
        Change::Joined { seq, .. } => tx
            .execute(
                "INSERT INTO cluster_waiting (seq, node, change) VALUES ($1, $2, $3) \
                 ON CONFLICT (seq) DO UPDATE SET node = EXCLUDED.node, change = EXCLUDED.change",
                &[&seq_sql(*seq), &node, &change.to_json()],
            )
            .map_err(pg)?,
        Change::Left { seq } => {
            tx.execute(
                "DELETE FROM cluster_waiting WHERE seq = $1 AND node = $2",
                &[&seq_sql(*seq), &node],
            )
            .map_err(pg)?;
            1
        }
        Change::Registered { user, .. } => tx
            .execute(
                "INSERT INTO cluster_agents (user_name, registrar, registration) \
                 VALUES ($1, $2, $3) ON CONFLICT (user_name) DO UPDATE \
                 SET registrar = EXCLUDED.registrar, registration = EXCLUDED.registration",
                &[user, &node, &change.to_json()],
            )
            .map_err(pg)?,
        Change::Unregistered { user } => tx
            .execute(
                "UPDATE cluster_agents SET registrar = NULL, registration = NULL \
                 WHERE user_name = $1 AND registrar = $2",
                &[user, &node],
            )
            .map_err(pg)?,
        Change::Paused { user, paused } => tx
            .execute(
                "INSERT INTO cluster_agents (user_name, paused) VALUES ($1, $2) \
                 ON CONFLICT (user_name) DO UPDATE SET paused = EXCLUDED.paused",
                &[user, paused],
            )
            .map_err(pg)?,
        Change::Agent { user, .. } => tx
            .execute(
                "UPDATE cluster_agents SET held_state = $3 WHERE user_name = $1 AND holder = $2",
                &[user, &node, &change.to_json()],
            )
            .map_err(pg)?,
        Change::Released { user } => tx
            .execute(
                "UPDATE cluster_agents SET holder = NULL, held_state = NULL \
                 WHERE user_name = $1 AND holder = $2",
                &[user, &node],
            )
            .map_err(pg)?,
        Change::Reset => {
            tx.execute("DELETE FROM cluster_waiting WHERE node = $1", &[&node])
                .map_err(pg)?;
            let released = tx
                .query(
                    "UPDATE cluster_agents SET holder = NULL, held_state = NULL \
                     WHERE holder = $1 RETURNING user_name",
                    &[&node],
                )
                .map_err(pg)?;
            let mut logged = vec![Change::Reset];
            logged.extend(
                released
                    .iter()
                    .map(|row| Change::Released { user: row.get(0) }),
            );
            return Ok(logged);
        }
    };
    Ok(if touched > 0 {
        vec![change.clone()]
    } else {
        Vec::new()
    })
}

/// Writes `changes` as log rows by `node` after `head`; returns the new head.
fn write_log(
    tx: &mut Transaction<'_>,
    head: i64,
    node: &str,
    changes: &[Change],
) -> Result<i64, StoreError> {
    let mut id = head;
    for change in changes {
        id += 1;
        tx.execute(
            "INSERT INTO cluster_log (id, node, change) VALUES ($1, $2, $3)",
            &[&id, &node, &change.to_json()],
        )
        .map_err(pg)?;
    }
    if id != head {
        tx.execute("UPDATE cluster_head SET id = $1", &[&id])
            .map_err(pg)?;
        // The payload names the writer, so its own reader need not read for it.
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &node])
            .map_err(pg)?;
    }
    Ok(id)
}

/// Appends what changed on `node`, in one transaction. Joins, leaves and states commit
/// without waiting for the disk (`synchronous_commit = off`): a crash of PostgreSQL may
/// lose the last few milliseconds of them, which only the callers and agents they describe
/// would notice, and the nodes' next changes repair. A release is durable like a claim (an
/// agent whose release was lost would stay held), and so are callbacks.
pub fn append(client: &mut Client, node: &str, changes: &[Change]) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    if !changes.iter().any(|c| matches!(c, Change::Released { .. })) {
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .map_err(pg)?;
    }
    let head = lock_head(&mut tx)?;
    let mut logged = Vec::with_capacity(changes.len());
    for change in changes {
        logged.extend(apply(&mut tx, node, change)?);
    }
    write_log(&mut tx, head, node, &logged)?;
    tx.commit().map_err(pg)
}

/// Claims `user` for `node`, to ring it for the entry `seq`: won only where no other node
/// holds it (a node that still holds it, its release lost, wins it again). Durable before
/// it returns (the session's `synchronous_commit = on`).
pub fn claim(client: &mut Client, node: &str, user: &str, seq: u64) -> Result<Claim, StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    let head = lock_head(&mut tx)?;
    tx.execute(
        "INSERT INTO cluster_agents (user_name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&user],
    )
    .map_err(pg)?;
    let change = Change::Agent {
        user: user.to_owned(),
        state: "ringing".into(),
        seq: Some(seq),
    };
    let won = tx
        .execute(
            "UPDATE cluster_agents SET holder = $2, holder_log = $3, held_state = $4 \
             WHERE user_name = $1 AND (holder IS NULL OR holder = $2)",
            &[&user, &node, &(head + 1), &change.to_json()],
        )
        .map_err(pg)?;
    if won == 0 {
        let row = tx
            .query_one(
                "SELECT holder, holder_log FROM cluster_agents WHERE user_name = $1",
                &[&user],
            )
            .map_err(pg)?;
        let holder: Option<String> = row.get(0);
        tx.rollback().map_err(pg)?;
        return Ok(Claim::Lost {
            holder: holder.unwrap_or_default(),
            at: row.get(1),
        });
    }
    write_log(&mut tx, head, node, &[change])?;
    tx.commit().map_err(pg)?;
    Ok(Claim::Won)
}

/// A node starting: whatever it had waiting and held is gone (its calls died with the old
/// process); it is no longer flagged dead.
pub fn reset(client: &mut Client, node: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    let head = lock_head(&mut tx)?;
    let logged = apply(&mut tx, node, &Change::Reset)?;
    write_log(&mut tx, head, node, &logged)?;
    tx.execute("UPDATE nodes SET cleaned = false WHERE name = $1", &[&node])
        .map_err(pg)?;
    tx.commit().map_err(pg)
}

/// The writer's heartbeat: each node whose lease ran out is cleaned up once (its entries
/// leave every replica, the agents it held are released); returns those nodes, and whether
/// this node had itself been cleaned up (it was cut off longer than its lease) and is back.
pub fn heartbeat(client: &mut Client, node: &str) -> Result<(Vec<String>, bool), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    let head = lock_head(&mut tx)?;
    let dead: Vec<String> = tx
        .query(
            "UPDATE nodes SET cleaned = true \
             WHERE lease_until < now() AND NOT cleaned AND name <> $1 RETURNING name",
            &[&node],
        )
        .map_err(pg)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut at = head;
    for name in &dead {
        let logged = apply(&mut tx, name, &Change::Reset)?;
        at = write_log(&mut tx, at, name, &logged)?;
    }
    let back = tx
        .execute(
            "UPDATE nodes SET cleaned = false WHERE name = $1 AND cleaned AND lease_until > now()",
            &[&node],
        )
        .map_err(pg)?
        > 0;
    tx.execute(
        &format!(
            "DELETE FROM cluster_log WHERE at < now() - interval '{} seconds'",
            super::LOG_KEPT.as_secs()
        ),
        &[],
    )
    .map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok((dead, back))
}

/// The sum tables as of one log id, read in one snapshot.
pub fn snapshot(client: &mut Client) -> Result<(i64, Vec<(String, Change)>), StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg)?;
    let head: i64 = tx
        .query_one("SELECT id FROM cluster_head", &[])
        .map_err(pg)?
        .get(0);
    let mut rows = Vec::new();
    for row in tx
        .query("SELECT node, change FROM cluster_waiting ORDER BY seq", &[])
        .map_err(pg)?
    {
        if let Some(change) = Change::from_json(row.get(1)) {
            rows.push((row.get(0), change));
        }
    }
    for row in tx
        .query(
            "SELECT user_name, registrar, registration, paused, holder, held_state \
             FROM cluster_agents ORDER BY user_name",
            &[],
        )
        .map_err(pg)?
    {
        let user: String = row.get(0);
        let registrar: Option<String> = row.get(1);
        let registration: Option<&str> = row.get(2);
        if let (Some(node), Some(change)) = (registrar, registration.and_then(Change::from_json)) {
            rows.push((node, change));
        }
        if row.get::<_, bool>(3) {
            rows.push((String::new(), Change::Paused { user, paused: true }));
        }
        let holder: Option<String> = row.get(4);
        let held: Option<&str> = row.get(5);
        if let (Some(node), Some(change)) = (holder, held.and_then(Change::from_json)) {
            rows.push((node, change));
        }
    }
    tx.commit().map_err(pg)?;
    Ok((head, rows))
}

/// Log rows after `after`, oldest first, at most `limit`.
pub fn read_after(client: &mut Client, after: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
    let rows = client
        .query(
            "SELECT id, node, change FROM cluster_log WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &limit],
        )
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|row| LogRow {
            id: row.get(0),
            node: row.get(1),
            // A row this build cannot read still takes its place in the order.
            change: Change::from_json(row.get(2)).unwrap_or(Change::Left { seq: u64::MAX }),
        })
        .collect())
}
