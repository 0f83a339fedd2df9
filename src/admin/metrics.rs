//! `/metrics` in the Prometheus text exposition format (version 0.0.4), rendered from one
//! [`Status`]: names follow Prometheus conventions (`holdfast_` prefix, `_total` for
//! counters, base unit seconds). Every queue × priority, agent state and outcome series is
//! written even at zero, so dashboards and `rate()` see a series from the first scrape.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Status;
use crate::b2bua::events::{Histogram, TIME_BUCKETS_S};

/// Agent states as `GET /api/agents` names them.
const AGENT_STATES: [&str; 6] = [
    "offline",
    "available",
    "ringing",
    "busy",
    "wrapup",
    "paused",
];

/// Call events counted per queue as outcomes, with the label value each gets.
const OUTCOMES: [(&str, &str); 6] = [
    ("connect", "answered"),
    ("abandon", "abandoned"),
    ("complete", "completed"),
    ("callback_requested", "callback_requested"),
    ("callback_completed", "callback_completed"),
    ("callback_failed", "callback_failed"),
];

/// What a series' samples are read from.
struct Source<'a> {
    status: &'a Status,
    /// `[priorities]`: name → level.
    priorities: &'a BTreeMap<String, u32>,
}

/// Where a series writes its samples: the output, with the series' name.
struct Out<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Out<'_> {
    fn value(&mut self, labels: &[(&str, &str)], value: f64) {
        sample(self.out, self.name, labels, value);
    }

    fn count(&mut self, labels: &[(&str, &str)], value: u64) {
        self.value(labels, value as f64);
    }

    fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) {
        histogram(self.out, self.name, labels, h);
    }
}

/// One metric: name, type, help, and how its samples come out of a [`Status`].
struct Series {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&Source<'_>, &mut Out<'_>),
}

/// Every metric `/metrics` exposes, in order.
const SERIES: &[Series] = &[
    Series {
        name: "holdfast_waiting_callers",
        kind: "gauge",
        help: "Entries waiting, per queue and priority (callbacks included).",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                for name in src.priorities.keys() {
                    let n = queue.waiting.iter().filter(|w| &w.priority == name).count();
                    out.count(&[("queue", &queue.name), ("priority", name)], n as u64);
                }
            }
        },
    },
    Series {
        name: "holdfast_node_waiting_callers",
        kind: "gauge",
        help: "Entries waiting per cluster node holding them (absent on a single node).",
        samples: |src, out| {
            let mut nodes: std::collections::BTreeMap<&str, u64> = Default::default();
            for queue in &src.status.snapshot.queues {
                for w in queue.waiting.iter().filter(|w| !w.node.is_empty()) {
                    *nodes.entry(w.node.as_str()).or_default() += 1;
                }
            }
            for (node, n) in nodes {
                out.count(&[("node", node)], n);
            }
        },
    },
    Series {
        name: "holdfast_longest_wait_seconds",
        kind: "gauge",
        help: "Longest current wait in the queue.",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                let longest = queue.waiting.iter().map(|w| w.waited_s).max().unwrap_or(0);
                out.count(&[("queue", &queue.name)], longest);
            }
        },
    },
    Series {
        name: "holdfast_service_level",
        kind: "gauge",
        help: "Answered within the queue's service_level target / (answered + abandoned after it), \
               today and over the last 15 minutes (absent before any such call).",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                for (window, tally) in [("today", &queue.today), ("15m", &queue.last_15_min)] {
                    if let Some(level) = tally.service_level {
                        out.value(&[("queue", &queue.name), ("window", window)], level);
                    }
                }
            }
        },
    },
    Series {
        name: "holdfast_calls_today",
        kind: "gauge",
        help: "Calls of the queue since midnight UTC, by outcome.",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                let t = &queue.today;
                for (outcome, n) in [
                    ("offered", t.offered),
                    ("answered", t.answered),
                    ("abandoned", t.abandoned),
                ] {
                    out.count(&[("queue", &queue.name), ("outcome", outcome)], n);
                }
            }
        },
    },
    Series {
        name: "holdfast_queue_agents_staffed",
        kind: "gauge",
        help: "Registered, unpaused agents serving the queue.",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                out.count(&[("queue", &queue.name)], queue.agents_staffed as u64);
            }
        },
    },
    Series {
        name: "holdfast_queue_average_handle_time_seconds",
        kind: "gauge",
        help: "The estimator's mean handle time.",
        samples: |src, out| {
            for queue in &src.status.snapshot.queues {
                out.count(&[("queue", &queue.name)], queue.average_handle_time_s);
            }
        },
    },
    Series {
        name: "holdfast_agents",
        kind: "gauge",
        help: "Agents by state.",
        samples: |src, out| {
            for state in AGENT_STATES {
                let agents = &src.status.snapshot.agents;
                let n = agents.iter().filter(|a| a.state == state).count();
                out.count(&[("state", state)], n as u64);
            }
        },
    },
    Series {
        name: "holdfast_calls_active",
        kind: "gauge",
        help: "Trunk calls up (holding, ringing an agent or talking).",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.calls_up as u64),
    },
    Series {
        name: "holdfast_calls_admitted_total",
        kind: "counter",
        help: "INVITEs admitted into a queue.",
        samples: |src, out| {
            out.count(&[], src.status.snapshot.counters.calls.calls_answered);
        },
    },
    Series {
        name: "holdfast_calls_rejected_total",
        kind: "counter",
        help: "INVITEs refused, by status code.",
        samples: |src, out| {
            for (code, n) in &src.status.snapshot.counters.calls.rejected {
                out.count(&[("code", &code.to_string())], *n);
            }
        },
    },
    Series {
        name: "holdfast_calls_total",
        kind: "counter",
        help: "Calls by outcome and queue.",
        samples: |src, out| {
            let events = &src.status.snapshot.counters.observations.events;
            for queue in &src.status.snapshot.queues {
                for (event, outcome) in OUTCOMES {
                    let n = events.get(&(queue.name.clone(), event)).copied();
                    out.count(
                        &[("queue", &queue.name), ("outcome", outcome)],
                        n.unwrap_or(0),
                    );
                }
            }
        },
    },
    Series {
        name: "holdfast_call_events_total",
        kind: "counter",
        help: "Call events written to the log and the store.",
        samples: |src, out| {
            for ((queue, event), n) in &src.status.snapshot.counters.observations.events {
                out.count(&[("queue", queue), ("event", event)], *n);
            }
        },
    },
    Series {
        name: "holdfast_wait_seconds",
        kind: "histogram",
        help: "Arrival to agent answer (answered) or to hang-up while waiting (abandoned).",
        samples: |src, out| {
            let obs = &src.status.snapshot.counters.observations;
            for queue in &src.status.snapshot.queues {
                for (outcome, map) in [
                    ("answered", &obs.wait_answered),
                    ("abandoned", &obs.wait_abandoned),
                ] {
                    let empty = Histogram::default();
                    let h = map.get(&queue.name).unwrap_or(&empty);
                    out.histogram(&[("queue", &queue.name), ("outcome", outcome)], h);
                }
            }
        },
    },
    Series {
        name: "holdfast_handle_seconds",
        kind: "histogram",
        help: "Agent answer to hang-up.",
        samples: |src, out| {
            let handle = &src.status.snapshot.counters.observations.handle;
            for queue in &src.status.snapshot.queues {
                let empty = Histogram::default();
                out.histogram(
                    &[("queue", &queue.name)],
                    handle.get(&queue.name).unwrap_or(&empty),
                );
            }
        },
    },
    Series {
        name: "holdfast_rtp_packets_sent_total",
        kind: "counter",
        help: "RTP packets sent (music and prompts).",
        samples: |src, out| out.count(&[], src.status.media.packets_sent),
    },
    Series {
        name: "holdfast_rtp_packets_received_total",
        kind: "counter",
        help: "Valid RTP/RTCP packets received.",
        samples: |src, out| out.count(&[], src.status.media.packets_received),
    },
    Series {
        name: "holdfast_rtp_packets_relayed_total",
        kind: "counter",
        help: "RTP packets relayed between bridged legs.",
        samples: |src, out| out.count(&[], src.status.media.packets_relayed),
    },
    Series {
        name: "holdfast_rtp_send_errors_total",
        kind: "counter",
        help: "RTP sends the kernel refused (on a connected socket, also after the peer's port was reported unreachable).",
        samples: |src, out| out.count(&[], src.status.media.send_errors),
    },
    Series {
        name: "holdfast_rtp_skipped_frames_total",
        kind: "counter",
        help: "Frames skipped because the media clock fell behind.",
        samples: |src, out| out.count(&[], src.status.media.skipped_frames),
    },
    Series {
        name: "holdfast_media_events_dropped_total",
        kind: "counter",
        help: "Media events (key presses, prompt ends) dropped on a full queue.",
        samples: |src, out| out.count(&[], src.status.media.events_dropped),
    },
    Series {
        name: "holdfast_rtp_streams",
        kind: "gauge",
        help: "RTP streams open.",
        samples: |src, out| out.count(&[], src.status.media.streams),
    },
    Series {
        name: "holdfast_rtp_send_lateness_seconds",
        kind: "histogram",
        help: "RTP send time minus the stream's schedule (bucket resolution 12.5 %).",
        samples: |src, out| {
            let lateness = &src.status.media.lateness_buckets;
            let bucket = "holdfast_rtp_send_lateness_seconds_bucket";
            for &(le_us, n) in &lateness.le_us {
                let le = format!("{}", le_us as f64 / 1e6);
                sample(out.out, bucket, &[("le", &le)], n as f64);
            }
            sample(out.out, bucket, &[("le", "+Inf")], lateness.count as f64);
            let sum = "holdfast_rtp_send_lateness_seconds_sum";
            sample(out.out, sum, &[], lateness.sum_us as f64 / 1e6);
            let count = "holdfast_rtp_send_lateness_seconds_count";
            sample(out.out, count, &[], lateness.count as f64);
        },
    },
    Series {
        name: "holdfast_sip_transactions_total",
        kind: "counter",
        help: "SIP transactions created.",
        samples: |src, out| {
            let tx = &src.status.snapshot.counters.transactions;
            out.count(&[("role", "server")], tx.server_transactions);
            out.count(&[("role", "client")], tx.client_transactions);
        },
    },
    Series {
        name: "holdfast_sip_retransmissions_total",
        kind: "counter",
        help: "SIP messages re-sent (timers or peer retransmissions).",
        samples: |src, out| {
            out.count(
                &[],
                src.status.snapshot.counters.transactions.retransmissions,
            );
        },
    },
    Series {
        name: "holdfast_sip_retransmissions_absorbed_total",
        kind: "counter",
        help: "Retransmissions from peers absorbed by a transaction.",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.transactions.absorbed),
    },
    Series {
        name: "holdfast_sip_transaction_timeouts_total",
        kind: "counter",
        help: "Transactions that timed out (Timers B, F, H, L).",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.transactions.timeouts),
    },
    Series {
        name: "holdfast_sip_parse_errors_total",
        kind: "counter",
        help: "Datagrams that were not valid SIP.",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.calls.parse_errors),
    },
    Series {
        name: "holdfast_sip_dropped_total",
        kind: "counter",
        help: "SIP datagrams dropped without a reply.",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.calls.dropped),
    },
    Series {
        name: "holdfast_store_dropped_records_total",
        kind: "counter",
        help: "Call events or handle times the store could not write.",
        samples: |src, out| out.count(&[], src.status.store_dropped),
    },
    Series {
        name: "holdfast_sip_stateless_responses_total",
        kind: "counter",
        help: "Requests answered without a transaction (refusals, OPTIONS).",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.screen.stateless),
    },
    Series {
        name: "holdfast_sip_overload_total",
        kind: "counter",
        help: "Requests refused for the transaction caps: dropped for a source over its share, or 503 with every transaction in use.",
        samples: |src, out| {
            let screen = &src.status.snapshot.counters.screen;
            out.count(&[("reason", "source_share")], screen.over_source_share);
            out.count(&[("reason", "capacity")], screen.over_capacity);
        },
    },
    Series {
        name: "holdfast_auth_failures_total",
        kind: "counter",
        help: "Failed REGISTER logins (unknown user, wrong password, forged nonce).",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.auth_failures),
    },
    Series {
        name: "holdfast_auth_blocked_total",
        kind: "counter",
        help: "REGISTERs refused unchecked because their source and user were blocked.",
        samples: |src, out| out.count(&[], src.status.snapshot.counters.register_blocked),
    },
    Series {
        name: "holdfast_auth_blocks",
        kind: "gauge",
        help: "Source and user pairs blocked for failed logins now.",
        samples: |src, out| out.count(&[], src.status.snapshot.blocks.len() as u64),
    },
    Series {
        name: "holdfast_sip_transactions_live",
        kind: "gauge",
        help: "SIP transactions alive now.",
        samples: |src, out| {
            out.count(&[], src.status.snapshot.counters.transactions_live as u64);
        },
    },
];

/// Renders every metric of [`SERIES`]. `priorities` are `[priorities]` (name → level).
pub fn render(status: &Status, priorities: &BTreeMap<String, u32>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let source = Source { status, priorities };
    for series in SERIES {
        header(&mut out, series.name, series.kind, series.help);
        (series.samples)(
            &source,
            &mut Out {
                out: &mut out,
                name: series.name,
            },
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    let bucket = format!("{name}_bucket");
    let bounds = TIME_BUCKETS_S
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_owned()]);
    for (le, n) in bounds.zip(h.cumulative()) {
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        sample(out, &bucket, &with_le, n as f64);
    }
    sample(out, &format!("{name}_sum"), labels, h.sum_s);
    sample(out, &format!("{name}_count"), labels, h.count as f64);
}

/// Label values escape `\`, `"` and newline (exposition format).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2bua::snapshot::{AgentView, QueueView, WaitingView};

    fn waiting(priority: &str, waited_s: u64) -> WaitingView {
        WaitingView {
            priority: priority.into(),
            waited_s,
            ..WaitingView::default()
        }
    }

    #[test]
    fn renders_waiting_longest_agents_and_histograms() {
        let mut status = Status::default();
        status.snapshot.queues.push(QueueView {
            name: "sup\"port".into(),
            waiting: vec![
                waiting("vip", 3),
                waiting("normal", 40),
                waiting("normal", 7),
            ],
            ..QueueView::default()
        });
        status.snapshot.agents.push(AgentView {
            state: "busy".into(),
            ..AgentView::default()
        });
        let obs = &mut status.snapshot.counters.observations;
        obs.events.insert(("sup\"port".into(), "abandon"), 2);
        obs.handle
            .entry("sup\"port".into())
            .or_default()
            .observe(std::time::Duration::from_secs(42));
        status.snapshot.counters.calls.rejected.insert(503, 4);
        let priorities = [
            ("vip".to_owned(), 0),
            ("normal".to_owned(), 5),
            ("low".to_owned(), 10),
        ]
        .into_iter()
        .collect();
        let text = render(&status, &priorities);
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            )
        };
        has(r#"holdfast_waiting_callers{queue="sup\"port",priority="normal"} 2"#);
        has(r#"holdfast_waiting_callers{queue="sup\"port",priority="low"} 0"#);
        has(r#"holdfast_longest_wait_seconds{queue="sup\"port"} 40"#);
        has(r#"holdfast_agents{state="busy"} 1"#);
        has(r#"holdfast_agents{state="paused"} 0"#);
        has(r#"holdfast_calls_total{queue="sup\"port",outcome="abandoned"} 2"#);
        has(r#"holdfast_calls_rejected_total{code="503"} 4"#);
        has(r#"holdfast_handle_seconds_bucket{queue="sup\"port",le="30"} 0"#);
        has(r#"holdfast_handle_seconds_bucket{queue="sup\"port",le="60"} 1"#);
        has(r#"holdfast_handle_seconds_bucket{queue="sup\"port",le="+Inf"} 1"#);
        has(r#"holdfast_handle_seconds_sum{queue="sup\"port"} 42"#);
        has("holdfast_rtp_send_lateness_seconds_count 0");
        // Every sample line is `name{labels} value` with a parseable value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
