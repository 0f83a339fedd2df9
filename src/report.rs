//! The day's figures from the call events in the store (docs/behaviour.md §8): `holdfast
//! report --day YYYY-MM-DD` and `GET /api/report?from=…&to=…`. Per queue the figures of the
//! wallboard's "today" ([`crate::queue::service`]: offered, answered, abandoned, service
//! level, average wait and handle time), per agent its calls, talk time and missed rings.
//! Pure: computed from the events and each queue's service-level target.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::queue::service::{Tally, TallyView};
use crate::store::{CallEvent, CallEventKind};

/// One queue's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    /// Queue name.
    pub queue: String,
    /// The service-level target used, seconds.
    pub service_level_s: u64,
    /// The figures.
    #[serde(flatten)]
    pub figures: TallyView,
}

/// One agent's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentReport {
    /// Agent name.
    pub agent: String,
    /// Conversations that ended.
    pub calls: u64,
    /// Their talk time, seconds.
    pub talk_s: f64,
    /// Rings it let go unanswered.
    pub missed: u64,
}

/// A report over a stretch of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Start, Unix ms (included).
    pub from_ms: i64,
    /// End, Unix ms (excluded).
    pub to_ms: i64,
    /// Queues by name.
    pub queues: Vec<QueueReport>,
    /// Agents by name.
    pub agents: Vec<AgentReport>,
}

impl Report {
    /// The figures of `events` (all within `[from_ms, to_ms)`), each queue against its
    /// `targets` service level (20 s for a queue no longer configured).
    pub fn new(
        from_ms: i64,
        to_ms: i64,
        events: &[CallEvent],
        targets: &BTreeMap<String, u64>,
    ) -> Self {
        // Per queue: its answer-time target and the range's counts.
        let mut queues: BTreeMap<String, (Duration, Tally)> = BTreeMap::new();
        let mut agents: BTreeMap<String, AgentReport> = BTreeMap::new();
        for event in events {
            if let Some(name) = &event.queue {
                let target = targets.get(name).copied().unwrap_or(20);
                let (target, tally) = queues
                    .entry(name.clone())
                    .or_insert_with(|| (Duration::from_secs(target), Tally::default()));
                let waited = Duration::from_millis(event.wait_ms.unwrap_or(0));
                match event.kind {
                    CallEventKind::Join => tally.offer(),
                    CallEventKind::Connect => tally.answer(waited, *target),
                    CallEventKind::Abandon => tally.abandon(waited, *target),
                    CallEventKind::Complete => tally.handle(handle(event)),
                    _ => {}
                }
            }
            if let Some(agent) = &event.agent {
                let row = agents.entry(agent.clone()).or_insert_with(|| AgentReport {
                    agent: agent.clone(),
                    ..AgentReport::default()
                });
                match event.kind {
                    CallEventKind::Complete => {
                        row.calls += 1;
                        row.talk_s += handle(event).as_secs_f64();
                    }
                    CallEventKind::RingNoAnswer => row.missed += 1,
                    _ => {}
                }
            }
        }
        Self {
            from_ms,
            to_ms,
            queues: queues
                .into_iter()
                .map(|(queue, (target, tally))| QueueReport {
                    service_level_s: target.as_secs(),
                    figures: tally.view(),
                    queue,
                })
                .collect(),
            agents: agents.into_values().collect(),
        }
    }

    /// The report as CSV: a queue table, a blank line, an agent table.
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let mut out = String::from(
            "queue,offered,answered,answered_within,abandoned,abandoned_within,abandon_rate,\
             service_level,service_level_s,average_wait_s,average_handle_s\n",
        );
        for q in &self.queues {
            let f = &q.figures;
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(&q.queue),
                f.offered,
                f.answered,
                f.answered_within,
                f.abandoned,
                f.abandoned_within,
                opt(f.abandon_rate),
                opt(f.service_level),
                q.service_level_s,
                opt(f.average_wait_s),
                opt(f.average_handle_s),
            ));
        }
        out.push_str("\nagent,calls,talk_s,missed\n");
        for a in &self.agents {
            out.push_str(&format!(
                "{},{},{:.1},{}\n",
                csv_field(&a.agent),
                a.calls,
                a.talk_s,
                a.missed
            ));
        }
        out
    }
}

/// A `complete` event's handle time (`detail.handle_ms`).
fn handle(event: &CallEvent) -> Duration {
    let ms = event
        .detail
        .as_ref()
        .and_then(|d| d.get("handle_ms"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Duration::from_millis(ms)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180 §2).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `[from, to)` of a UTC day `YYYY-MM-DD`, Unix ms.
pub fn day_bounds(day: &str) -> Result<(i64, i64), String> {
    let date: jiff::civil::Date = day
        .parse()
        .map_err(|e| format!("{day:?} is not a date (YYYY-MM-DD): {e}"))?;
    let start = date
        .to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map_err(|e| format!("{day}: {e}"))?
        .timestamp()
        .as_millisecond();
    Ok((start, start + 86_400_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: CallEventKind, queue: &str, agent: Option<&str>, wait_s: u64) -> CallEvent {
        CallEvent {
            queue: Some(queue.into()),
            agent: agent.map(str::to_owned),
            wait_ms: Some(wait_s * 1000),
            ..CallEvent::new(0, kind)
        }
    }

    #[test]
    fn a_scripted_day_gives_exact_queue_and_agent_figures() {
        use CallEventKind::*;
        let mut complete = event(Complete, "support", Some("alice"), 0);
        complete.detail = Some(serde_json::json!({ "handle_ms": 90_000 }));
        let events = vec![
            event(Join, "support", None, 0),
            event(Join, "support", None, 0),
            event(Join, "support", None, 0),
            event(Join, "sales", None, 0),
            event(Connect, "support", Some("alice"), 12),
            event(RingNoAnswer, "support", Some("bob"), 0),
            event(Connect, "support", Some("bob"), 45),
            event(Abandon, "support", None, 8),
            event(Abandon, "sales", None, 100),
            complete,
        ];
        let targets = [("support".to_owned(), 30)].into_iter().collect();
        let report = Report::new(0, 86_400_000, &events, &targets);
        let support = report.queues.iter().find(|q| q.queue == "support").unwrap();
        assert_eq!(support.service_level_s, 30);
        let f = support.figures;
        assert_eq!((f.offered, f.answered, f.answered_within), (3, 2, 1));
        assert_eq!((f.abandoned, f.abandoned_within), (1, 1));
        assert_eq!(
            f.service_level,
            Some(0.5),
            "1 in time ÷ 2 answered (the 8 s abandon is short)"
        );
        assert_eq!(f.average_wait_s, Some(28.5));
        assert_eq!(f.average_handle_s, Some(90.0));
        let sales = report.queues.iter().find(|q| q.queue == "sales").unwrap();
        assert_eq!(sales.service_level_s, 20, "not configured: the default");
        assert_eq!(sales.figures.service_level, Some(0.0));
        let alice = &report.agents[0];
        assert_eq!(
            (alice.agent.as_str(), alice.calls, alice.talk_s),
            ("alice", 1, 90.0)
        );
        assert_eq!(report.agents[1].missed, 1);
        let csv = report.to_csv();
        assert!(csv.starts_with("queue,offered,answered,"));
        assert!(
            csv.contains("\nsales,1,0,0,1,0,1.000,0.000,20,,\n"),
            "{csv}"
        );
        assert!(csv.contains("\nalice,1,90.0,0\n"), "{csv}");
    }

    #[test]
    fn a_day_is_its_utc_midnights() {
        assert_eq!(
            day_bounds("2026-12-02").unwrap(),
            (1_796_169_600_000, 1_796_256_000_000)
        );
        assert!(day_bounds("2026-13-01").is_err());
        assert!(day_bounds("yesterday").is_err());
    }
}
