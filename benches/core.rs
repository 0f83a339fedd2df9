//! Micro-benchmarks of the hot pure code (BENCHMARKS.md): the queue engine with 100 000 waiting
//! entries, the SIP parser on an INVITE with SDP, writing one RTP packet of hold music, and
//! the wait forecast behind one announcement.
//!
//! `cargo bench` (criterion; a few seconds per benchmark). The queue target is < 1 µs per
//! join/leave and per position query at 100 000 entries.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use holdfast::media::player::{FRAME_LEN, PACKET_LEN, Player};
use holdfast::queue::{EntryId, EntryKind, LeaveReason, QueueId, Queues};
use holdfast::sip::message::parse;

const WAITING: u64 = 100_000;
/// Priority levels the waiting entries are spread over (vip, normal, low).
const LEVELS: u64 = 3;

/// One queue holding `WAITING` entries over `LEVELS` levels, events drained.
fn full_queues(now: Instant) -> (Queues, QueueId) {
    let mut qs = Queues::new();
    let q = qs.add_queue("support", 1_000_000);
    for i in 0..WAITING {
        qs.join(now, q, EntryId(i), (i % LEVELS) as u32, EntryKind::Caller)
            .expect("room");
    }
    while qs.poll_event().is_some() {}
    (qs, q)
}

fn queue_engine(c: &mut Criterion) {
    let now = Instant::now();
    let (mut qs, q) = full_queues(now);
    let mut g = c.benchmark_group("queue_100k");

    // A join at the back of the middle level and the same entry leaving again: the queue
    // stays at 100 000 entries, so every iteration sees the same size.
    let mut next = WAITING;
    g.bench_function("join+leave", |b| {
        b.iter(|| {
            let id = EntryId(next);
            next += 1;
            qs.join(now, q, id, 1, EntryKind::Caller).expect("room");
            qs.leave(id, LeaveReason::Abandoned).expect("waiting");
            while qs.poll_event().is_some() {}
        })
    });

    // Position of entries spread over the whole queue (all levels, front to back).
    let mut probe = 0u64;
    g.bench_function("position", |b| {
        b.iter(|| {
            probe = (probe + 7_919) % WAITING;
            black_box(qs.position(EntryId(probe)))
        })
    });

    // A dispatch: the head for an agent, that entry leaving as dispatched, and a new caller
    // joining so the size stays at 100 000.
    let order = [q];
    g.bench_function("next_for_agent+dispatch", |b| {
        b.iter(|| {
            let (_, head) = qs.next_for_agent(&order).expect("not empty");
            qs.leave(head, LeaveReason::Dispatched).expect("waiting");
            let id = EntryId(next);
            next += 1;
            qs.join(now, q, id, 1, EntryKind::Caller).expect("room");
            while qs.poll_event().is_some() {}
        })
    });

    g.bench_function("next_for_agent", |b| {
        b.iter(|| black_box(qs.next_for_agent(black_box(&order))))
    });
    g.finish();
}

/// A trunk INVITE as SIPp's `sipp/caller.xml` sends it, with its SDP offer.
fn invite() -> Vec<u8> {
    let sdp = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
               c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\n\
               a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
               a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
    format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1234-1-0\r\n\
         From: \"Caller 1\" <sip:+15551@127.0.0.1:5061>;tag=1234SIPpTag001\r\n\
         To: <sip:service@127.0.0.1:5060>\r\n\
         Call-ID: 1-1234@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:sipp@127.0.0.1:5061>\r\n\
         Max-Forwards: 70\r\n\
         Subject: holdfast caller\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn sip_parser(c: &mut Criterion) {
    let bytes = invite();
    parse(&bytes).expect("the benchmark INVITE parses");
    c.bench_function("sip_parse_invite_sdp", |b| {
        b.iter(|| parse(black_box(&bytes)).expect("parses"))
    });
}

fn rtp_packet(c: &mut Criterion) {
    // Ten seconds of music, as the engine shares it between every held caller.
    let music = Bytes::from(vec![0xffu8; FRAME_LEN * 500]);
    let mut player = Player::with_initial(0, music, 0x1234_5678, 1, 160).expect("whole frames");
    let mut out = [0u8; PACKET_LEN];
    c.bench_function("rtp_player_write_next", |b| {
        b.iter(|| {
            black_box(player.write_next(&mut out));
            black_box(&out);
        })
    });
    // Building a player per call (what answering a caller costs on the media side).
    let music = Bytes::from(vec![0xffu8; FRAME_LEN * 500]);
    c.bench_function("rtp_player_new", |b| {
        b.iter_batched(
            || music.clone(),
            |m| Player::with_initial(0, m, 1, 2, 3).expect("whole frames"),
            BatchSize::SmallInput,
        )
    });
}

/// One announcement's wait forecast (docs/behaviour.md §4): 10 and 100 agents on calls of
/// every length, 100 recent handle times, callers hanging up and VIPs overtaking. `line_*`
/// replays a whole line (what the controller does at most once a second per queue and level,
/// or when an agent changes state); `read_*` is what each announcement then costs, at the head
/// of the line and at position 10 000 (the replay depth plus the approximation beyond);
/// `alone_*` forecasts one caller from scratch.
fn wait_forecast(c: &mut Criterion) {
    use holdfast::queue::estimate::HandleTimes;
    use holdfast::queue::forecast::{
        AgentOutlook, HandleModel, LineOutlook, Outlook, REPLAY_DEPTH, forecast, forecast_line,
    };
    let times = HandleTimes::with_history(
        Duration::from_secs(300),
        (0..100u64).map(|i| Duration::from_secs(60 + (i * 37) % 600)),
    );
    let model = HandleModel::new(&times);
    let mut g = c.benchmark_group("wait_forecast");
    for agents in [10u64, 100] {
        let outlook: Vec<AgentOutlook> = (0..agents)
            .map(|i| AgentOutlook::Busy {
                elapsed: Duration::from_secs((i * 53) % 500),
            })
            .collect();
        let line = LineOutlook {
            agents: &outlook,
            depth: REPLAY_DEPTH,
            callbacks: 0b1000,
            abandon_rate: 1.0 / 300.0,
            overtaking_rate: 1.0 / 600.0,
        };
        g.bench_function(format!("line_{agents}_agents"), |b| {
            b.iter(|| black_box(forecast_line(black_box(&line), &model)))
        });
        let made = forecast_line(&line, &model);
        for position in [2usize, 10_000] {
            g.bench_function(format!("read_{agents}_agents_position_{position}"), |b| {
                b.iter(|| black_box(made.at(black_box(position))))
            });
            let o = Outlook {
                position,
                agents: &outlook,
                callbacks_ahead: 1,
                abandon_rate: 1.0 / 300.0,
                overtaking_rate: 1.0 / 600.0,
            };
            g.bench_function(format!("alone_{agents}_agents_position_{position}"), |b| {
                b.iter(|| black_box(forecast(black_box(&o), &model)))
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = queue_engine, sip_parser, rtp_packet, wait_forecast
}
criterion_main!(benches);
