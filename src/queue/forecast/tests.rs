//! Hand-computed forecasts: with handle times that are all equal the trials agree, so the
//! wait is exact.

use std::time::Duration;

use super::*;
use crate::queue::calibration::{Calibration, Outcome, waited_past};
use crate::queue::estimate::WaitBucket;

const S: fn(u64) -> Duration = Duration::from_secs;

fn model(samples: &[u64]) -> HandleModel {
    HandleModel::new(&HandleTimes::with_history(
        S(300),
        samples.iter().map(|&s| S(s)),
    ))
}

fn outlook(position: usize, agents: &[AgentOutlook]) -> Outlook<'_> {
    Outlook {
        position,
        agents,
        callbacks_ahead: 0,
        abandon_rate: 0.0,
        overtaking_rate: 0.0,
    }
}

/// Every quantile of the forecast, seconds.
fn all(forecast: &Forecast) -> Vec<u64> {
    (0..QUANTILES.len())
        .map(|step| forecast.at(step).as_secs())
        .collect()
}

#[test]
fn an_idle_agent_takes_the_head_of_the_line_at_once() {
    let f = forecast(&outlook(1, &[AgentOutlook::Free]), &model(&[300]));
    assert_eq!(all(&f), vec![0; 8]);
}

#[test]
fn a_call_200_s_in_has_100_s_left_of_a_300_s_handle_time() {
    let busy = [AgentOutlook::Busy { elapsed: S(200) }];
    let m = model(&[300; 30]);
    assert_eq!(all(&forecast(&outlook(1, &busy), &m)), vec![100; 8]);
    // Second in line: the rest of that call, then one whole call.
    assert_eq!(all(&forecast(&outlook(2, &busy), &m)), vec![400; 8]);
    // A call that ran past every handle time seen: its rest is exponential around the mean.
    let long = [AgentOutlook::Busy { elapsed: S(900) }];
    let f = forecast(&outlook(1, &long), &m);
    assert!(f.at(0) < f.at(5), "a spread, not a point: {:?}", all(&f));
    assert!(
        (150..=260).contains(&f.at(0).as_secs()),
        "median ≈ 300·ln 2: {:?}",
        all(&f)
    );
}

#[test]
fn resting_agents_and_several_agents() {
    let agents = [
        AgentOutlook::Resting { remaining: S(30) },
        AgentOutlook::Busy { elapsed: S(100) },
        AgentOutlook::Free,
    ];
    let m = model(&[300; 30]);
    // Frees up at 0, 30 and 200; then 300, 330, 500 …
    for (position, wait) in [(1, 0), (2, 30), (3, 200), (4, 300), (5, 330), (6, 500)] {
        assert_eq!(
            all(&forecast(&outlook(position, &agents), &m)),
            vec![wait; 8],
            "position {position}"
        );
    }
}

#[test]
fn the_spread_of_handle_times_sets_the_quantiles() {
    // Half the calls take 100 s, half 500 s: second in line waits one of them.
    let m = model(&[[100; 15], [500; 15]].concat());
    let f = forecast(&outlook(2, &[AgentOutlook::Free]), &m);
    assert_eq!(f.at(Forecast::step_of(0.9)), S(500));
    assert!([S(100), S(500)].contains(&f.median()));
    assert!(m.mean() == 300.0);
}

#[test]
fn callbacks_ahead_hold_the_agent_for_the_dial_back_too() {
    let m = model(&[300; 30]);
    let with_callback = Outlook {
        callbacks_ahead: 1,
        ..outlook(2, &[AgentOutlook::Free])
    };
    assert_eq!(all(&forecast(&with_callback, &m)), vec![320; 8]);
}

#[test]
fn callers_ahead_who_hang_up_shorten_the_wait() {
    let m = model(&[300; 30]);
    let agents = [AgentOutlook::Free];
    assert_eq!(all(&forecast(&outlook(3, &agents), &m)), vec![600; 8]);
    // Everybody hangs up within seconds: the first one ahead is served at once (still
    // there at 0), the second is gone by 300 s.
    let impatient = Outlook {
        abandon_rate: 1.0,
        ..outlook(3, &agents)
    };
    assert_eq!(all(&forecast(&impatient, &m)), vec![300; 8]);
    // Callbacks never hang up.
    let callbacks = Outlook {
        callbacks_ahead: 2,
        ..impatient
    };
    assert_eq!(all(&forecast(&callbacks, &m)), vec![640; 8]);
}

#[test]
fn callers_who_overtake_push_the_wait_back() {
    let m = model(&[300; 30]);
    let agents = [AgentOutlook::Free];
    let plain = forecast(&outlook(2, &agents), &m);
    // A VIP every 1 000 s on average, 30 % of the hand-overs: often one goes ahead.
    let overtaken = forecast(
        &Outlook {
            overtaking_rate: 0.001,
            ..outlook(2, &agents)
        },
        &m,
    );
    assert_eq!(all(&plain), vec![300; 8]);
    assert!(
        overtaken.at(Forecast::step_of(0.9)) >= S(600),
        "{:?}",
        all(&overtaken)
    );
    // Far more overtakers than agents can serve: capped, and the forecast still ends.
    let flood = forecast(
        &Outlook {
            overtaking_rate: 1.0,
            ..outlook(2, &agents)
        },
        &m,
    );
    assert!(flood.median() > overtaken.median());
}

#[test]
fn far_down_the_line_the_approximation_stays_close() {
    let agents = [AgentOutlook::Free; 10];
    let m = model(&[300; 100]);
    // Exactly: the 9 999 ahead go ten at a time, so the caller waits 999 rounds of 300 s.
    let exact = 999.0 * 300.0;
    let f = forecast(&outlook(10_000, &agents), &m);
    let got = f.median().as_secs_f64();
    assert!((got - exact).abs() / exact < 0.01, "{got} vs {exact}");
    // No agent staffed counts as one who has just taken a call.
    assert_eq!(all(&forecast(&outlook(1, &[]), &m)), vec![300; 8]);
    assert_eq!(all(&forecast(&outlook(2, &[]), &m)), vec![600; 8]);
}

#[test]
fn forecasts_are_deterministic() {
    let agents = [AgentOutlook::Busy { elapsed: S(40) }, AgentOutlook::Free];
    let m = model(&[30, 90, 200, 400, 800]); // few samples: the prior is drawn from too
    let o = Outlook {
        abandon_rate: 0.002,
        ..outlook(7, &agents)
    };
    assert_eq!(forecast(&o, &m), forecast(&o, &m));
}

/// A line of ten agents on calls of every length, hang-ups and overtakers.
fn busy_line(depth: usize, callbacks: u64, agents: &[AgentOutlook]) -> LineOutlook<'_> {
    LineOutlook {
        agents,
        depth,
        callbacks,
        abandon_rate: 1.0 / 300.0,
        overtaking_rate: 1.0 / 900.0,
    }
}

fn ten_busy() -> Vec<AgentOutlook> {
    (0..10)
        .map(|i| AgentOutlook::Busy {
            elapsed: S(i * 47 % 400),
        })
        .collect()
}

fn spread_model() -> HandleModel {
    model(&(0..100).map(|i| 60 + (i * 37) % 600).collect::<Vec<_>>())
}

#[test]
fn one_replay_of_the_line_gives_each_caller_its_own_forecast() {
    let agents = ten_busy();
    let m = spread_model();
    let line = forecast_line(&busy_line(REPLAY_DEPTH, 0b111, &agents), &m);
    assert_eq!(line.depth(), REPLAY_DEPTH);
    for position in [1, 2, 3, 4, 17, 48, 49, 500, 10_000] {
        let alone = forecast(
            &Outlook {
                position,
                agents: &agents,
                callbacks_ahead: 3,
                abandon_rate: 1.0 / 300.0,
                overtaking_rate: 1.0 / 900.0,
            },
            &m,
        );
        assert_eq!(line.at(position), alone, "position {position}");
    }
    // The same draws for every place: no quantile of a place is below the one ahead's.
    for position in 1..600 {
        let (ahead, behind) = (line.at(position), line.at(position + 1));
        for step in 0..STEPS {
            assert!(ahead.at(step) <= behind.at(step), "{position} step {step}");
        }
    }
}

#[test]
fn a_callback_in_the_line_delays_only_those_behind_it() {
    let agents = [AgentOutlook::Busy { elapsed: S(0) }];
    let m = model(&[300; 30]);
    let line = |callbacks| {
        forecast_line(
            &LineOutlook {
                abandon_rate: 0.0,
                overtaking_rate: 0.0,
                ..busy_line(6, callbacks, &agents)
            },
            &m,
        )
    };
    let plain = line(0);
    // The caller at place 3 is a callback: the dial-back holds the agent 20 s longer.
    let with = line(0b100);
    for position in 1..=3 {
        assert_eq!(all(&with.at(position)), vec![300 * position as u64; 8]);
        assert_eq!(with.at(position), plain.at(position));
    }
    for position in 4..=6 {
        assert_eq!(all(&with.at(position)), vec![300 * position as u64 + 20; 8]);
    }
}

#[test]
fn calibration_tells_a_high_quantile_until_it_has_learned() {
    let m = model(&[[10, 20, 30, 40, 50]; 6].concat());
    let f = forecast(&outlook(2, &[AgentOutlook::Free]), &m);
    let mut calibration = Calibration::default();
    assert_eq!(calibration.step(), Forecast::step_of(0.995));
    // The phrase is the high quantile's; the seconds, the nearest to the median within it.
    let told = calibration.estimate(&f);
    let phrase = WaitBucket::from_estimate(f.at(calibration.step()));
    assert_eq!(WaitBucket::from_estimate(told), phrase);
    assert!(told <= f.at(calibration.step()) && told >= f.median().min(told));
    // Callers who all wait about the median: the 90 % quantile is enough once learned.
    for _ in 0..crate::queue::calibration::WARM {
        calibration.record(Outcome {
            forecast: f,
            waited: f.median(),
        });
    }
    assert_eq!(calibration.step(), Calibration::min_step());
    // Callers who wait far longer than forecast (75 s where at most 50 s was forecast, so
    // "less than a minute" would be wrong): it climbs past the highest quantile.
    for _ in 0..crate::queue::calibration::KEPT {
        calibration.record(Outcome {
            forecast: f,
            waited: f.at(QUANTILES.len() - 1).mul_f64(1.5),
        });
    }
    assert!(calibration.step() >= QUANTILES.len());
    assert!(!waited_past(
        calibration.estimate(&f),
        f.at(QUANTILES.len() - 1).mul_f64(1.5)
    ));
}
