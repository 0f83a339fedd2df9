use super::*;
use crate::media::g711::{linear_to_ulaw, ulaw_to_linear};

/// Collects what the assembler hands on: (left, right) per frame, silence as zeros.
#[derive(Default)]
struct Tape {
    frames: Vec<(i16, i16)>,
    silence_calls: u64,
}

impl Sink for Tape {
    fn frames(&mut self, interleaved: &[i16]) {
        self.frames
            .extend(interleaved.chunks(2).map(|f| (f[0], f[1])));
    }
    fn silence(&mut self, frames: u64) {
        self.silence_calls += 1;
        self.frames
            .extend(std::iter::repeat_n((0, 0), frames as usize));
    }
}

/// One 20 ms payload of a constant level.
fn frame(level: i16) -> Vec<u8> {
    vec![linear_to_ulaw(level); 160]
}

fn level(v: i16) -> i16 {
    ulaw_to_linear(linear_to_ulaw(v))
}

#[test]
fn two_sides_line_up_left_caller_right_agent() {
    let (mut a, mut tape) = (Assembler::new(), Tape::default());
    for k in 0..50u32 {
        let at = u64::from(k + 1) * 20_000;
        a.push(
            Side::Caller,
            at,
            1000 + k * 160,
            Law::Mu,
            &frame(1000),
            &mut tape,
        );
        a.push(
            Side::Agent,
            at,
            77 + k * 160,
            Law::Mu,
            &frame(-2000),
            &mut tape,
        );
    }
    a.finish(&mut tape);
    assert_eq!(tape.frames.len(), 8_000);
    assert!(
        tape.frames
            .iter()
            .all(|&f| f == (level(1000), level(-2000)))
    );
}

#[test]
fn a_gap_is_silence_not_a_shift() {
    let (mut a, mut tape) = (Assembler::new(), Tape::default());
    // Caller: 0–1 s, nothing for 1 s (a new RTP stream after hold), then 2–3 s.
    for k in 0..50u32 {
        a.push(
            Side::Caller,
            u64::from(k + 1) * 20_000,
            k * 160,
            Law::Mu,
            &frame(500),
            &mut tape,
        );
        let at = 2_000_000 + u64::from(k + 1) * 20_000;
        a.push(
            Side::Caller,
            at,
            999_999 + k * 160,
            Law::Mu,
            &frame(-500),
            &mut tape,
        );
    }
    // Agent: all three seconds.
    for k in 0..150u32 {
        a.push(
            Side::Agent,
            u64::from(k + 1) * 20_000,
            k * 160,
            Law::A,
            &[0x55; 160],
            &mut tape,
        );
    }
    a.finish(&mut tape);
    assert_eq!(tape.frames.len(), 24_000);
    assert_eq!(tape.frames[7_999].0, level(500));
    assert!(tape.frames[8_000..16_000].iter().all(|f| f.0 == 0));
    assert!(tape.frames[16_000..].iter().all(|f| f.0 == level(-500)));
    assert!(tape.frames.iter().all(|f| f.1 == alaw_to_linear(0x55)));
}

#[test]
fn jitter_does_not_move_audio() {
    let (mut a, mut tape) = (Assembler::new(), Tape::default());
    // Arrivals up to 30 ms late, in a pattern; timestamps continuous; each packet a ramp
    // so a misplaced one shows.
    for k in 0..100u32 {
        let late = [0, 30_000, 5_000, 12_000, 0, 29_000][k as usize % 6];
        let payload: Vec<u8> = (0..160)
            .map(|i| linear_to_ulaw((k * 160 + i) as i16))
            .collect();
        a.push(
            Side::Caller,
            u64::from(k + 1) * 20_000 + late,
            k * 160,
            Law::Mu,
            &payload,
            &mut tape,
        );
    }
    a.finish(&mut tape);
    assert_eq!(tape.frames.len(), 16_000);
    for (i, f) in tape.frames.iter().enumerate() {
        assert_eq!(f.0, level(i as i16), "sample {i}");
    }
}

#[test]
fn settling_keeps_the_hold_back_and_a_late_packet_is_dropped() {
    let (mut a, mut tape) = (Assembler::new(), Tape::default());
    for k in 0..100u32 {
        a.push(
            Side::Agent,
            u64::from(k + 1) * 20_000,
            k * 160,
            Law::Mu,
            &frame(300),
            &mut tape,
        );
    }
    a.settle(&mut tape);
    assert_eq!(tape.frames.len() as u64, 16_000 - HOLD);
    assert_eq!(a.handed_on(), 16_000 - HOLD);
    // A caller packet stamped for the start arrives now (its arrival says the start too):
    // that part of the timeline is written, so it is dropped, not written over.
    a.push(Side::Caller, 20_000, 5, Law::Mu, &frame(100), &mut tape);
    a.finish(&mut tape);
    assert_eq!(tape.frames.len(), 16_000);
    assert!(tape.frames.iter().all(|f| f == &(0, level(300))));
}

#[test]
fn an_hour_of_silence_is_a_count_not_a_buffer() {
    let (mut a, mut tape) = (Assembler::new(), Tape::default());
    a.push(Side::Caller, 20_000, 0, Law::Mu, &frame(700), &mut tape);
    a.push(
        Side::Caller,
        3_600_020_000,
        160,
        Law::Mu,
        &frame(700),
        &mut tape,
    );
    a.finish(&mut tape);
    assert_eq!(tape.frames.len(), 3_600 * 8_000 + 160);
    assert!(tape.silence_calls >= 1);
    assert!(
        a.tracks
            .iter()
            .all(|t| t.samples.capacity() <= 2 * MAX_SPAN as usize)
    );
}
