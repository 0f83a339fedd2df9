//! Each `[[queue]] strategy` and `[[agent]] tiers` with a fake clock: who is offered the
//! caller, over a sequence of calls.

use super::*;

/// Four agents of one queue, registered in file order at `t0` (so longest idle is file
/// order), each taking one call of `talk[i]` seconds before the run (fewest-calls and
/// least-talk-time need a history), then free again; `strategy` set on the queue.
fn floor(
    strategy: Strategy,
    calls: [u32; 4],
    talk: [u64; 4],
) -> (Agents, Queues, QueueId, Instant) {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 100);
    let mut ags = agents(&[("a0", &[q]), ("a1", &[q]), ("a2", &[q]), ("a3", &[q])]);
    ags.set_strategy(q, strategy);
    ags.seed(7);
    // Registered in reverse order, so longest idle (a3 first) differs from file order.
    for i in (0..4).rev() {
        ags.registered(t0, AgentId(i)).unwrap();
    }
    let mut id = 1000;
    for (i, (&n, &seconds)) in calls.iter().zip(&talk).enumerate() {
        for _ in 0..n {
            id += 1;
            join(&mut qs, t0, q, id, NORMAL);
            ags.ringing(t0, AgentId(i), EntryId(id)).unwrap();
            ags.answered(t0, AgentId(i)).unwrap();
            qs.leave(EntryId(id), LeaveReason::Dispatched).unwrap();
            ags.call_ended(t0 + secs(seconds), AgentId(i), NO_WRAPUP)
                .unwrap();
        }
    }
    (ags, qs, q, t0 + secs(1000))
}

/// Offers the next `n` callers one by one; each agent answers and hangs up at once, so it
/// is free again before the next caller (the picking order is all that differs).
fn offers(ags: &mut Agents, qs: &mut Queues, q: QueueId, now: Instant, n: u64) -> Vec<usize> {
    (0..n)
        .map(|i| {
            join(qs, now, q, i + 1, NORMAL);
            let a = ags.next_assignment(qs, nobody).unwrap();
            ags.served(a);
            ags.ringing(now, a.agent, a.entry).unwrap();
            ags.answered(now, a.agent).unwrap();
            qs.leave(a.entry, LeaveReason::Dispatched).unwrap();
            ags.call_ended(now, a.agent, NO_WRAPUP).unwrap();
            a.agent.0
        })
        .collect()
}

#[test]
fn longest_idle_serves_whoever_waited_longest() {
    let (mut ags, mut qs, q, now) = floor(Strategy::LongestIdle, [0; 4], [0; 4]);
    // Registered a3, a2, a1, a0; each goes to the back after its call.
    assert_eq!(offers(&mut ags, &mut qs, q, now, 6), [3, 2, 1, 0, 3, 2]);
}

#[test]
fn linear_always_starts_from_the_first_agent_in_the_file() {
    let (mut ags, mut qs, q, now) = floor(Strategy::Linear, [0; 4], [0; 4]);
    assert_eq!(offers(&mut ags, &mut qs, q, now, 3), [0, 0, 0]);
    // a0 busy: a1 is next in the file.
    join(&mut qs, now, q, 50, NORMAL);
    join(&mut qs, now, q, 51, NORMAL);
    let first = ags.assign_next(now, &qs, nobody).unwrap();
    let second = ags.assign_next(now, &qs, nobody).unwrap();
    assert_eq!((first.agent, second.agent), (AgentId(0), AgentId(1)));
}

#[test]
fn round_robin_continues_after_the_last_agent_offered() {
    let (mut ags, mut qs, q, now) = floor(Strategy::RoundRobin, [0; 4], [0; 4]);
    assert_eq!(offers(&mut ags, &mut qs, q, now, 6), [0, 1, 2, 3, 0, 1]);
    // a2 is away: it is skipped, and the turn goes on from where it was.
    ags.pause(now, AgentId(2)).unwrap();
    assert_eq!(offers(&mut ags, &mut qs, q, now, 3), [3, 0, 1]);
}

#[test]
fn fewest_calls_and_least_talk_time_count_today() {
    let (mut ags, mut qs, q, now) = floor(Strategy::FewestCalls, [3, 1, 2, 1], [0; 4]);
    // a1 and a3 have one call each; a3 has been idle longer (it registered first... and
    // its call ended at the same instant), ties go to the longest idle.
    let picked = offers(&mut ags, &mut qs, q, now, 4);
    assert_eq!(picked[..2], [1, 3], "{picked:?}");
    let (mut ags, mut qs, q, now) = floor(Strategy::LeastTalkTime, [1; 4], [300, 20, 90, 400]);
    assert_eq!(offers(&mut ags, &mut qs, q, now, 1), [1]);
    // A new day: nobody has talked, so the longest idle is first again.
    ags.new_day();
    let a = {
        join(&mut qs, now, q, 77, NORMAL);
        ags.next_assignment(&qs, nobody).unwrap()
    };
    assert_eq!(a.agent, AgentId(0), "a0's call ended first of all");
}

#[test]
fn random_is_seeded_and_reaches_every_agent() {
    let (mut ags, mut qs, q, now) = floor(Strategy::Random, [0; 4], [0; 4]);
    let first = offers(&mut ags, &mut qs, q, now, 40);
    let (mut again, mut qs2, q2, now2) = floor(Strategy::Random, [0; 4], [0; 4]);
    assert_eq!(
        offers(&mut again, &mut qs2, q2, now2, 40),
        first,
        "same seed, same draws"
    );
    for agent in 0..4 {
        assert!(first.contains(&agent), "{first:?}");
    }
}

#[test]
fn a_higher_tier_gets_callers_only_while_no_lower_tier_agent_is_free() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 100);
    let mut ags = Agents::new([
        AgentSpec {
            user: "backup".into(),
            queues: vec![q],
            tiers: HashMap::from([(q, 2)]),
        },
        AgentSpec {
            user: "first".into(),
            queues: vec![q],
            tiers: HashMap::new(),
        },
    ]);
    // The tier-2 agent has been idle the longest, yet the tier-1 agent is offered first.
    ags.registered(t0, AgentId(0)).unwrap();
    ags.registered(t0 + secs(5), AgentId(1)).unwrap();
    assert_eq!(ags.tier(AgentId(0), q), 2);
    join(&mut qs, t0, q, 1, NORMAL);
    join(&mut qs, t0, q, 2, NORMAL);
    let a = ags.assign_next(t0 + secs(6), &qs, nobody).unwrap();
    assert_eq!(a.agent, AgentId(1));
    // The tier-1 agent is ringing: no tier-1 agent is free, so the second caller goes to
    // the tier-2 agent.
    let b = ags.assign_next(t0 + secs(6), &qs, nobody).unwrap();
    assert_eq!((b.agent, b.entry), (AgentId(0), EntryId(2)));
}
