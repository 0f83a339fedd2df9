use super::*;
use crate::queue::{EntryKind, LeaveReason, Level};

const VIP: Level = 0;
const NORMAL: Level = 5;
const NO_WRAPUP: Duration = Duration::ZERO;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn nobody(_: EntryId) -> bool {
    false
}

fn agents(specs: &[(&str, &[QueueId])]) -> Agents {
    Agents::new(specs.iter().map(|(user, queues)| AgentSpec {
        user: (*user).to_owned(),
        queues: queues.to_vec(),
        tiers: HashMap::new(),
    }))
}

fn drain(agents: &mut Agents) -> Vec<AgentEvent> {
    std::iter::from_fn(|| agents.poll_event()).collect()
}

fn join(queues: &mut Queues, now: Instant, queue: QueueId, id: u64, level: Level) {
    queues
        .join(now, queue, EntryId(id), level, EntryKind::Caller)
        .unwrap();
}

fn state(agents: &Agents, id: AgentId) -> AgentState {
    agents.get(id).unwrap().state()
}

/// What the controller does for a match that is answered: ring, answer, take the entry out
/// of its queue.
fn connect(agents: &mut Agents, queues: &mut Queues, now: Instant) -> Option<Assignment> {
    let a = agents.assign_next(now, queues, nobody)?;
    agents.answered(now, a.agent).unwrap();
    let (queue, _) = queues.leave(a.entry, LeaveReason::Dispatched).unwrap();
    assert_eq!(queue, a.queue);
    Some(a)
}

#[test]
fn premium_before_support_and_vip_first_inside_each_queue() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let premium = qs.add_queue("premium", 10);
    let support = qs.add_queue("support", 10);
    join(&mut qs, t0, support, 1, NORMAL);
    join(&mut qs, t0, support, 2, VIP);
    join(&mut qs, t0, premium, 3, NORMAL);
    join(&mut qs, t0, premium, 4, VIP);
    join(&mut qs, t0, support, 5, NORMAL);
    let mut ags = agents(&[("alice", &[premium, support])]);
    let alice = AgentId(0);
    ags.registered(t0, alice).unwrap();

    let mut served = Vec::new();
    for i in 1..=6 {
        let now = t0 + secs(i);
        let Some(a) = connect(&mut ags, &mut qs, now) else {
            break;
        };
        assert_eq!(a.agent, alice);
        served.push((a.queue, a.entry.0));
        ags.call_ended(now, alice, NO_WRAPUP).unwrap();
    }
    assert_eq!(
        served,
        [
            (premium, 4),
            (premium, 3),
            (support, 2),
            (support, 1),
            (support, 5)
        ]
    );
    assert_eq!(ags.get(alice).unwrap().calls_taken(), 5);
}

#[test]
fn longest_idle_agent_is_chosen_and_wrapup_sends_it_to_the_back() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let support = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[support]), ("b", &[support]), ("c", &[support])]);
    let (a, b, c) = (AgentId(0), AgentId(1), AgentId(2));
    // Registration order differs from config order, so id order cannot pass by chance.
    ags.registered(t0, b).unwrap();
    ags.registered(t0 + secs(1), c).unwrap();
    ags.registered(t0 + secs(2), a).unwrap();
    for id in 1..=3 {
        join(&mut qs, t0 + secs(3), support, id, NORMAL);
    }
    let order: Vec<_> = std::iter::from_fn(|| connect(&mut ags, &mut qs, t0 + secs(3)))
        .map(|m| (m.agent, m.entry.0))
        .collect();
    assert_eq!(order, [(b, 1), (c, 2), (a, 3)]);

    // b ends first but wraps up for 10 s; c and a end later with no wrap-up.
    ags.call_ended(t0 + secs(5), b, secs(10)).unwrap();
    ags.call_ended(t0 + secs(6), c, NO_WRAPUP).unwrap();
    ags.call_ended(t0 + secs(7), a, NO_WRAPUP).unwrap();
    assert_eq!(ags.poll_timeout(), Some(t0 + secs(15)));
    ags.handle_timeout(t0 + secs(20));
    assert_eq!(state(&ags, b), AgentState::Available);
    for id in 4..=6 {
        join(&mut qs, t0 + secs(20), support, id, NORMAL);
    }
    let order: Vec<_> = std::iter::from_fn(|| ags.assign_next(t0 + secs(20), &qs, nobody))
        .map(|m| m.agent)
        .collect();
    assert_eq!(order, [c, a, b]);
}

#[test]
fn agents_freed_at_the_same_instant_are_served_in_event_order() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q]), ("b", &[q])]);
    ags.registered(t0, AgentId(1)).unwrap();
    ags.registered(t0, AgentId(0)).unwrap();
    join(&mut qs, t0, q, 1, NORMAL);
    assert_eq!(
        ags.next_assignment(&qs, nobody).map(|m| m.agent),
        Some(AgentId(1))
    );
}

#[test]
fn an_agent_with_nothing_to_take_does_not_block_the_next_one() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let premium = qs.add_queue("premium", 10);
    let support = qs.add_queue("support", 10);
    // x serves support only and is the longest idle; y serves premium then support.
    let mut ags = agents(&[("x", &[support]), ("y", &[premium, support])]);
    let (x, y) = (AgentId(0), AgentId(1));
    ags.registered(t0, x).unwrap();
    ags.registered(t0 + secs(1), y).unwrap();

    join(&mut qs, t0 + secs(2), premium, 1, NORMAL);
    let m = ags.next_assignment(&qs, nobody).unwrap();
    assert_eq!((m.agent, m.queue, m.entry), (y, premium, EntryId(1)));

    // With a support caller too, x (longest idle) takes it, and y still takes premium.
    join(&mut qs, t0 + secs(3), support, 2, NORMAL);
    let first = ags.assign_next(t0 + secs(3), &qs, nobody).unwrap();
    let second = ags.assign_next(t0 + secs(3), &qs, nobody).unwrap();
    assert_eq!((first.agent, first.entry), (x, EntryId(2)));
    assert_eq!((second.agent, second.entry), (y, EntryId(1)));
    assert_eq!(ags.next_assignment(&qs, nobody), None);
}

#[test]
fn no_answer_keeps_the_place_and_the_next_agent_gets_the_same_caller() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q]), ("b", &[q])]);
    let (a, b) = (AgentId(0), AgentId(1));
    ags.registered(t0, a).unwrap();
    ags.registered(t0 + secs(1), b).unwrap();
    join(&mut qs, t0 + secs(2), q, 1, NORMAL);
    join(&mut qs, t0 + secs(2), q, 2, NORMAL);

    let m = ags.assign_next(t0 + secs(2), &qs, nobody).unwrap();
    assert_eq!((m.agent, m.entry), (a, EntryId(1)));
    assert_eq!(ags.offered_to(EntryId(1)), Some(a));
    ags.no_answer(t0 + secs(17), a, 3).unwrap();
    assert_eq!(ags.offered_to(EntryId(1)), None);
    assert_eq!(
        qs.position(EntryId(1)),
        Some(1),
        "the caller kept its place"
    );
    let agent_a = ags.get(a).unwrap();
    assert_eq!(
        (agent_a.state(), agent_a.no_answer_marks()),
        (AgentState::Available, 1)
    );

    // a went to the back of the idle line: b is offered the same caller.
    let m = ags.assign_next(t0 + secs(17), &qs, nobody).unwrap();
    assert_eq!((m.agent, m.entry), (b, EntryId(1)));
    ags.no_answer(t0 + secs(32), b, 3).unwrap();
    // Now a has been idle longer than b again.
    let m = ags.assign_next(t0 + secs(32), &qs, nobody).unwrap();
    assert_eq!((m.agent, m.entry), (a, EntryId(1)));
    ags.answered(t0 + secs(33), a).unwrap();
    let agent_a = ags.get(a).unwrap();
    assert_eq!((agent_a.no_answer_marks(), agent_a.missed_calls()), (0, 1));
    assert_eq!(agent_a.calls_taken(), 1);
}

#[test]
fn consecutive_no_answers_pause_the_agent_and_an_answer_resets_the_count() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q])]);
    let a = AgentId(0);
    ags.registered(t0, a).unwrap();
    join(&mut qs, t0, q, 1, NORMAL);
    join(&mut qs, t0, q, 2, NORMAL);

    // Miss, answer, miss: the answer resets the count, so max 2 is not reached.
    let m = ags.assign_next(t0, &qs, nobody).unwrap();
    ags.no_answer(t0 + secs(1), a, 2).unwrap();
    assert_eq!(m.entry, EntryId(1));
    assert_eq!(
        connect(&mut ags, &mut qs, t0 + secs(2)).unwrap().entry,
        EntryId(1)
    );
    ags.call_ended(t0 + secs(3), a, NO_WRAPUP).unwrap();
    ags.assign_next(t0 + secs(3), &qs, nobody).unwrap();
    ags.no_answer(t0 + secs(4), a, 2).unwrap();
    assert_eq!(state(&ags, a), AgentState::Available);
    drain(&mut ags);

    // A second miss in a row pauses it.
    ags.assign_next(t0 + secs(5), &qs, nobody).unwrap();
    ags.no_answer(t0 + secs(6), a, 2).unwrap();
    assert_eq!(state(&ags, a), AgentState::Paused);
    assert_eq!(
        drain(&mut ags),
        [
            AgentEvent::StateChanged {
                agent: a,
                from: AgentState::Available,
                to: AgentState::Ringing
            },
            AgentEvent::StateChanged {
                agent: a,
                from: AgentState::Ringing,
                to: AgentState::Paused
            },
            AgentEvent::AutoPaused { agent: a, marks: 2 },
        ]
    );
    assert_eq!(ags.next_assignment(&qs, nobody), None);
    assert_eq!(qs.position(EntryId(2)), Some(1));

    // Unpausing clears the marks and makes it eligible again.
    ags.unpause(t0 + secs(7), a).unwrap();
    assert_eq!(ags.get(a).unwrap().no_answer_marks(), 0);
    let m = ags.next_assignment(&qs, nobody).unwrap();
    assert_eq!((m.agent, m.entry), (a, EntryId(2)));
}

#[test]
fn wrapup_then_available() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q])]);
    let a = AgentId(0);
    ags.registered(t0, a).unwrap();
    join(&mut qs, t0, q, 1, NORMAL);
    connect(&mut ags, &mut qs, t0).unwrap();
    ags.call_ended(t0 + secs(60), a, secs(10)).unwrap();
    assert_eq!(state(&ags, a), AgentState::Wrapup);
    assert_eq!(ags.poll_timeout(), Some(t0 + secs(70)));
    join(&mut qs, t0 + secs(61), q, 2, NORMAL);
    assert_eq!(
        ags.next_assignment(&qs, nobody),
        None,
        "no offer during wrap-up"
    );

    drain(&mut ags);
    ags.handle_timeout(t0 + secs(70) - Duration::from_millis(1));
    assert_eq!(state(&ags, a), AgentState::Wrapup);
    assert!(drain(&mut ags).is_empty());
    // A late wake-up: the agent counts as idle since the deadline.
    ags.handle_timeout(t0 + secs(72));
    assert_eq!(ags.poll_timeout(), None);
    assert_eq!(ags.get(a).unwrap().idle_since(), Some(t0 + secs(70)));
    assert_eq!(
        drain(&mut ags),
        [AgentEvent::StateChanged {
            agent: a,
            from: AgentState::Wrapup,
            to: AgentState::Available
        }]
    );
    assert_eq!(ags.next_assignment(&qs, nobody).unwrap().entry, EntryId(2));
}

#[test]
fn pause_is_honoured_after_the_call_and_unpause_makes_the_agent_eligible() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q])]);
    let a = AgentId(0);
    ags.registered(t0, a).unwrap();
    ags.pause(t0, a).unwrap();
    join(&mut qs, t0, q, 1, NORMAL);
    assert_eq!(state(&ags, a), AgentState::Paused);
    assert_eq!((ags.staffed(q), ags.free(q)), (0, 0));
    assert_eq!(ags.next_assignment(&qs, nobody), None);
    ags.unpause(t0 + secs(1), a).unwrap();
    assert_eq!(ags.get(a).unwrap().idle_since(), Some(t0 + secs(1)));
    connect(&mut ags, &mut qs, t0 + secs(1)).unwrap();

    // Paused during the call: the call goes on, then paused while the wrap-up runs.
    ags.pause(t0 + secs(2), a).unwrap();
    assert_eq!(state(&ags, a), AgentState::Busy);
    ags.call_ended(t0 + secs(3), a, secs(10)).unwrap();
    assert_eq!(state(&ags, a), AgentState::Paused);
    ags.unpause(t0 + secs(4), a).unwrap();
    assert_eq!(
        state(&ags, a),
        AgentState::Wrapup,
        "the wrap-up timer still runs"
    );
    ags.handle_timeout(t0 + secs(13));
    assert_eq!(state(&ags, a), AgentState::Available);
}

#[test]
fn offered_entries_are_skipped() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let premium = qs.add_queue("premium", 10);
    let support = qs.add_queue("support", 10);
    join(&mut qs, t0, premium, 4, NORMAL);
    for id in 1..=3 {
        join(&mut qs, t0, support, id, NORMAL);
    }
    let mut ags = agents(&[("a", &[premium, support]), ("b", &[support])]);
    ags.registered(t0, AgentId(0)).unwrap();
    let pick = |ags: &Agents, taken: &[u64]| {
        ags.next_assignment(&qs, |e: EntryId| taken.contains(&e.0))
            .map(|m| (m.queue, m.entry.0))
    };
    assert_eq!(pick(&ags, &[]), Some((premium, 4)));
    assert_eq!(pick(&ags, &[4]), Some((support, 1)));
    assert_eq!(pick(&ags, &[4, 1]), Some((support, 2)));
    assert_eq!(pick(&ags, &[4, 1, 2, 3]), None);

    // Entries ringing an agent are skipped even when the predicate forgets them.
    ags.registered(t0 + secs(1), AgentId(1)).unwrap();
    ags.assign_next(t0 + secs(1), &qs, |e| e == EntryId(4))
        .unwrap();
    assert_eq!(ags.offered_to(EntryId(1)), Some(AgentId(0)));
    let m = ags.next_assignment(&qs, nobody).unwrap();
    assert_eq!((m.agent, m.entry), (AgentId(1), EntryId(2)));
}

#[test]
fn a_cancelled_ring_keeps_the_agents_turn_and_leaves_no_mark() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q]), ("b", &[q])]);
    let (a, b) = (AgentId(0), AgentId(1));
    ags.registered(t0, a).unwrap();
    ags.registered(t0 + secs(1), b).unwrap();
    join(&mut qs, t0 + secs(2), q, 1, NORMAL);
    assert_eq!(ags.assign_next(t0 + secs(2), &qs, nobody).unwrap().agent, a);
    // The caller hangs up while a rings.
    qs.leave(EntryId(1), LeaveReason::Abandoned).unwrap();
    ags.ring_cancelled(t0 + secs(5), a).unwrap();
    let agent_a = ags.get(a).unwrap();
    assert_eq!(agent_a.state(), AgentState::Available);
    assert_eq!(agent_a.idle_since(), Some(t0));
    assert_eq!((agent_a.no_answer_marks(), agent_a.missed_calls()), (0, 0));
    join(&mut qs, t0 + secs(6), q, 2, NORMAL);
    assert_eq!(ags.next_assignment(&qs, nobody).unwrap().agent, a);
}

#[test]
fn unregistering_never_cuts_a_call_and_skips_the_wrapup() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 10);
    let mut ags = agents(&[("a", &[q])]);
    let a = AgentId(0);
    ags.registered(t0, a).unwrap();
    join(&mut qs, t0, q, 1, NORMAL);
    join(&mut qs, t0, q, 2, NORMAL);
    connect(&mut ags, &mut qs, t0).unwrap();
    ags.unregistered(t0 + secs(1), a).unwrap();
    assert_eq!(state(&ags, a), AgentState::Busy);
    assert_eq!(ags.staffed(q), 0);
    ags.call_ended(t0 + secs(2), a, secs(10)).unwrap();
    assert_eq!(state(&ags, a), AgentState::Offline);
    assert_eq!(ags.poll_timeout(), None);

    // Ringing, then unregistered, then no answer: offline with the mark counted.
    ags.registered(t0 + secs(3), a).unwrap();
    ags.assign_next(t0 + secs(3), &qs, nobody).unwrap();
    ags.unregistered(t0 + secs(4), a).unwrap();
    assert_eq!(state(&ags, a), AgentState::Ringing);
    ags.no_answer(t0 + secs(5), a, 3).unwrap();
    assert_eq!(state(&ags, a), AgentState::Offline);
    assert_eq!(ags.get(a).unwrap().no_answer_marks(), 1);

    // Unregistering during wrap-up ends it.
    ags.registered(t0 + secs(6), a).unwrap();
    connect(&mut ags, &mut qs, t0 + secs(6)).unwrap();
    ags.call_ended(t0 + secs(7), a, secs(10)).unwrap();
    ags.unregistered(t0 + secs(8), a).unwrap();
    assert_eq!(
        (state(&ags, a), ags.poll_timeout()),
        (AgentState::Offline, None)
    );
    // A refresh of a registration emits nothing.
    ags.registered(t0 + secs(9), a).unwrap();
    drain(&mut ags);
    ags.registered(t0 + secs(10), a).unwrap();
    assert_eq!(ags.poll_event(), None);
    assert_eq!(ags.get(a).unwrap().state_since(), Some(t0 + secs(9)));
}

#[test]
fn staffed_and_free_count_the_agents_of_each_queue() {
    let t0 = Instant::now();
    let mut qs = Queues::new();
    let premium = qs.add_queue("premium", 10);
    let support = qs.add_queue("support", 10);
    let mut ags = agents(&[
        ("a", &[premium, support, premium]),
        ("b", &[support]),
        ("c", &[premium]),
        ("d", &[support]),
    ]);
    for i in 0..3 {
        ags.registered(t0, AgentId(i)).unwrap();
    }
    ags.pause(t0, AgentId(2)).unwrap();
    join(&mut qs, t0, support, 1, NORMAL);
    ags.ringing(t0, AgentId(1), EntryId(1)).unwrap();
    assert_eq!((ags.staffed(support), ags.free(support)), (2, 1));
    assert_eq!((ags.staffed(premium), ags.free(premium)), (1, 1));
    assert_eq!((ags.staffed(QueueId(9)), ags.free(QueueId(9))), (0, 0));
    let users: Vec<_> = ags.iter().map(|(_, a)| a.user()).collect();
    assert_eq!(users, ["a", "b", "c", "d"]);
    assert_eq!(ags.find("c"), Some(AgentId(2)));
    assert_eq!(ags.find("zed"), None);
    assert_eq!(AgentState::Wrapup.to_string(), "wrapup");
}

#[test]
fn bad_inputs_are_errors_and_change_nothing() {
    let t0 = Instant::now();
    let mut ags = agents(&[("a", &[QueueId(0)]), ("b", &[QueueId(0)])]);
    let (a, b) = (AgentId(0), AgentId(1));
    assert_eq!(
        ags.registered(t0, AgentId(5)),
        Err(AgentError::UnknownAgent(AgentId(5)))
    );
    assert_eq!(
        ags.ringing(t0, a, EntryId(1)),
        Err(AgentError::WrongState {
            agent: a,
            state: AgentState::Offline,
            expected: AgentState::Available
        })
    );
    ags.registered(t0, a).unwrap();
    ags.registered(t0, b).unwrap();
    ags.ringing(t0, a, EntryId(1)).unwrap();
    drain(&mut ags);
    assert_eq!(
        ags.ringing(t0, b, EntryId(1)),
        Err(AgentError::AlreadyOffered {
            entry: EntryId(1),
            agent: a
        })
    );
    assert!(matches!(
        ags.call_ended(t0, a, NO_WRAPUP),
        Err(AgentError::WrongState { .. })
    ));
    assert!(matches!(
        ags.answered(t0, b),
        Err(AgentError::WrongState { .. })
    ));
    assert!(matches!(
        ags.no_answer(t0, b, 3),
        Err(AgentError::WrongState { .. })
    ));
    assert_eq!(
        (state(&ags, a), state(&ags, b)),
        (AgentState::Ringing, AgentState::Available)
    );
    assert_eq!(ags.poll_event(), None);
}

#[test]
fn time_never_goes_backwards() {
    let t0 = Instant::now();
    let mut ags = agents(&[("a", &[QueueId(0)])]);
    let a = AgentId(0);
    ags.registered(t0 + secs(10), a).unwrap();
    ags.pause(t0, a).unwrap();
    assert_eq!(ags.get(a).unwrap().state_since(), Some(t0 + secs(10)));
}

mod model;
mod strategies;
