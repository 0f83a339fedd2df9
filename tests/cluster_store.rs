//! The PostgreSQL store against a real server (docs/cluster.md): migrations raced by nodes
//! starting at once, durable and idempotent callback commits owned by their node, and a dead
//! node's callbacks taken over by exactly one survivor, its own writes fenced off after.

mod common;

use std::sync::{Arc, Barrier};

use common::postgres::Postgres;
use holdfast::queue::Seq;
use holdfast::store::{
    CallbackRequest, CallbackState, PostgresStore, ScheduledRequest, Store, StoreError,
};

fn request(seq: u64) -> CallbackRequest {
    CallbackRequest {
        queue: "support".into(),
        level: 5,
        seq: Seq(seq),
        number: format!("+1555000{seq:04}"),
        requested_at_ms: 1_764_583_200_000 + seq as i64,
    }
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect for inspection")
}

#[test]
fn nodes_starting_at_once_migrate_once_and_take_their_own_slots() {
    let pg = Postgres::start();
    let url = pg.database("race");
    let barrier = Arc::new(Barrier::new(4));
    let opened: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|node| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::open(&url, node).map(|s| s.slot())
            })
        })
        .collect();
    let mut slots: Vec<u8> = opened
        .into_iter()
        .map(|t| t.join().unwrap().expect("every node opens"))
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, [0, 1, 2, 3], "one slot each");
    let mut client = sql(&url);
    let version: i64 = client
        .query_one("SELECT version FROM holdfast_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, holdfast::store::PG_SCHEMA_VERSION);
    let rows = client
        .query("SELECT count(*) FROM holdfast_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    // A node that comes back gets its slot back; a new one the next free slot.
    let b = client
        .query_one("SELECT slot FROM nodes WHERE name = 'b'", &[])
        .unwrap()
        .get::<_, i16>(0);
    assert_eq!(i16::from(PostgresStore::open(&url, "b").unwrap().slot()), b);
    assert_eq!(PostgresStore::open(&url, "e").unwrap().slot(), 4);
}

#[test]
fn a_committed_callback_is_durable_idempotent_and_its_nodes_own() {
    let pg = Postgres::start();
    let url = pg.database("commit");
    let mut a = PostgresStore::open(&url, "a").unwrap();
    let mut b = PostgresStore::open(&url, "b").unwrap();
    let id = a.commit_callback(&request(7)).unwrap();
    assert_eq!(
        a.commit_callback(&request(7)).unwrap(),
        id,
        "a retry: same id"
    );
    let mut other = request(7);
    other.number = "+15559999999".into();
    assert!(matches!(
        b.commit_callback(&other),
        Err(StoreError::SeqTaken(7))
    ));
    let mine = a.pending_callbacks().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].request, request(7));
    assert!(b.pending_callbacks().unwrap().is_empty(), "b owns none");
    assert_eq!(
        b.recent_callbacks(10).unwrap().len(),
        1,
        "the admin view is global"
    );
    assert_eq!(a.seq_high_water().unwrap(), Seq(8));
    // Written by a fresh connection: the commit was on the server, not in a's session.
    drop(a);
    let mut a = PostgresStore::open(&url, "a").unwrap();
    assert_eq!(a.pending_callbacks().unwrap().len(), 1);
    let setting: String = sql(&url)
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    assert_eq!(setting, "on");
    // Handle times are shared by the nodes and pruned to the newest 100.
    for s in 1..=130 {
        b.record_handle_time("support", s, 0).unwrap();
    }
    let times = a.recent_handle_times("support", 1000).unwrap();
    assert_eq!(times.len(), 100);
    assert_eq!((times[0], times[99]), (31, 130));
}

#[test]
fn a_dead_nodes_callbacks_go_to_exactly_one_survivor_and_its_own_writes_are_refused() {
    let pg = Postgres::start();
    let url = pg.database("adopt");
    let mut a = PostgresStore::open(&url, "a").unwrap();
    let ids: Vec<_> = (0..200)
        .map(|i| a.commit_callback(&request(i * 256)).unwrap())
        .collect();
    a.begin_attempt(ids[0], 1, b"INVITE sip:+15550000000@trunk SIP/2.0\r\n\r\n")
        .unwrap();
    let mut b = PostgresStore::open(&url, "b").unwrap();
    let c = PostgresStore::open(&url, "c").unwrap();
    assert!(
        b.renew_lease(&Default::default()).unwrap().is_empty(),
        "a's lease still runs"
    );
    // a stops renewing: its lease runs out.
    sql(&url)
        .execute(
            "UPDATE nodes SET lease_until = now() - interval '1 second' WHERE name = 'a'",
            &[],
        )
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [b, c]
        .into_iter()
        .map(|mut store| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let adopted = store.renew_lease(&Default::default()).unwrap();
                (store, adopted)
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let mut taken: Vec<i64> = results
        .iter()
        .flat_map(|(_, adopted)| adopted.iter().map(|c| c.id.0))
        .collect();
    taken.sort_unstable();
    let mut all: Vec<i64> = ids.iter().map(|id| id.0).collect();
    all.sort_unstable();
    assert_eq!(
        taken, all,
        "every callback taken over, each by one survivor"
    );
    for (_, adopted) in &results {
        assert!(
            adopted
                .windows(2)
                .all(|w| w[0].request.seq < w[1].request.seq)
        );
    }
    // The one a was dialling comes with its INVITE, for the new owner to cancel first.
    let dialling = results
        .iter()
        .flat_map(|(_, adopted)| adopted.iter())
        .find(|c| c.id == ids[0])
        .unwrap();
    assert_eq!(dialling.state, CallbackState::Dialling);
    assert!(dialling.attempt_invite.is_some());
    // a, back in touch with the store, may not dial or change any of them.
    match a.begin_attempt(ids[1], 1, b"INVITE") {
        Err(StoreError::Adopted { id, node }) => {
            assert_eq!(id, ids[1].0);
            assert!(node == "b" || node == "c", "{node}");
        }
        other => panic!("a dialled an adopted callback: {other:?}"),
    }
    assert!(matches!(
        a.set_callback_state(ids[2], CallbackState::Completed, 1, None, None),
        Err(StoreError::Adopted { .. })
    ));
    assert!(a.pending_callbacks().unwrap().is_empty());
    // The new owner completes one.
    let (mut owner, adopted) = results.into_iter().find(|(_, a)| !a.is_empty()).unwrap();
    owner
        .set_callback_state(adopted[0].id, CallbackState::Completed, 1, None, None)
        .unwrap();
    // a comes back: it renews its lease, takes nothing, and keeps its slot.
    assert!(a.renew_lease(&Default::default()).unwrap().is_empty());
}

/// Claims on one agent from three nodes at once, round after round: exactly one wins each
/// round, the losers are told who holds it, and the log the readers follow has no gap and
/// one `ringing` row per round, by the winner (docs/cluster.md "Agents and claims").
#[test]
fn nodes_racing_to_claim_one_agent_never_both_win_and_the_log_has_no_gap() {
    use holdfast::store::cluster::{Change, Claim, sql as cluster};
    let pg = Postgres::start();
    let url = pg.database("claims");
    // The schema, and the three nodes' rows.
    for node in ["a", "b", "c"] {
        PostgresStore::open(&url, node).expect("open");
    }
    const ROUNDS: usize = 40;
    let barrier = Arc::new(Barrier::new(3));
    let racers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|node| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut client = sql(&url);
                let mut won = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait();
                    let claim =
                        cluster::claim(&mut client, node, "alice", round as u64).expect("claim");
                    barrier.wait();
                    match claim {
                        Claim::Won => {
                            won.push(round);
                            // Talks, then lets go, while the others write joins.
                            let release = [Change::Released {
                                user: "alice".into(),
                            }];
                            cluster::append(&mut client, node, &release).expect("release");
                        }
                        Claim::Lost { holder, .. } => {
                            assert_ne!(holder, node);
                            let join = [Change::Joined {
                                queue: "support".into(),
                                seq: (round * 3) as u64,
                                level: 1,
                                callback: false,
                                joined_ms: 0,
                                caller: String::new(),
                            }];
                            cluster::append(&mut client, node, &join).expect("join");
                        }
                    }
                    barrier.wait();
                }
                won
            })
        })
        .collect();
    let mut winners = vec![0; ROUNDS];
    for racer in racers {
        for round in racer.join().unwrap() {
            winners[round] += 1;
        }
    }
    assert!(winners.iter().all(|&n| n == 1), "{winners:?}");
    let mut client = sql(&url);
    let rows = cluster::read_after(&mut client, 0, 100_000).expect("log");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.id, i as i64 + 1, "contiguous ids");
    }
    let ringing = rows
        .iter()
        .filter(|r| matches!(&r.change, Change::Agent { state, .. } if state == "ringing"))
        .count();
    assert_eq!(ringing, ROUNDS);
    let (head, snapshot) = cluster::snapshot(&mut client).expect("snapshot");
    assert_eq!(head, rows.len() as i64);
    assert!(
        !snapshot
            .iter()
            .any(|(_, c)| matches!(c, Change::Agent { .. })),
        "alice is free at the end"
    );
}

/// Scheduled callbacks (admin API) in the shared store: a placeholder place unique across
/// nodes, duplicates refused whichever node asks, the real place set by the owner only.
#[test]
fn scheduled_callbacks_are_refused_twice_and_placed_by_their_node() {
    let pg = Postgres::start();
    let url = pg.database("scheduled");
    let mut a = PostgresStore::open(&url, "a").unwrap();
    let mut b = PostgresStore::open(&url, "b").unwrap();
    let ask = |number: &str| ScheduledRequest {
        queue: "support".into(),
        level: 5,
        number: number.into(),
        requested_at_ms: 1_764_583_200_000,
        not_before_ms: 1_764_590_000_000,
    };
    let first = a.schedule_callback(&ask("+15550002222")).unwrap();
    let second = b.schedule_callback(&ask("+15550003333")).unwrap();
    assert_ne!(first, second);
    assert!(matches!(
        b.schedule_callback(&ask("+15550002222")),
        Err(StoreError::AlreadyPending(id)) if id == first.0
    ));
    assert_eq!(a.seq_high_water().unwrap(), Seq(0), "no place taken yet");
    let mine = a.pending_callbacks().unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].scheduled);
    assert_eq!(mine[0].next_attempt_at_ms, Some(1_764_590_000_000));
    assert!(b.set_callback_seq(first, Seq(4)).is_err(), "a's callback");
    a.set_callback_seq(first, Seq(4)).unwrap();
    let mine = a.pending_callbacks().unwrap();
    assert!(!mine[0].scheduled);
    assert_eq!(mine[0].request.seq, Seq(4));
    assert_eq!(a.seq_high_water().unwrap(), Seq(5));
}
