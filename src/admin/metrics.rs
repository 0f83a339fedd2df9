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

/// Renders every metric. `priorities` are `[priorities]` (name → level).
pub fn render(status: &Status, priorities: &BTreeMap<String, u32>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let snapshot = &status.snapshot;
    let counters = &snapshot.counters;
    let obs = &counters.observations;

    header(
        &mut out,
        "holdfast_waiting_callers",
        "gauge",
        "Entries waiting, per queue and priority (callbacks included).",
    );
    for queue in &snapshot.queues {
        for name in priorities.keys() {
            let n = queue.waiting.iter().filter(|w| &w.priority == name).count();
            sample(
                &mut out,
                "holdfast_waiting_callers",
                &[("queue", &queue.name), ("priority", name)],
                n as f64,
            );
        }
    }
    header(
        &mut out,
        "holdfast_longest_wait_seconds",
        "gauge",
        "Longest current wait in the queue.",
    );
    for queue in &snapshot.queues {
        let longest = queue.waiting.iter().map(|w| w.waited_s).max().unwrap_or(0);
        sample(
            &mut out,
            "holdfast_longest_wait_seconds",
            &[("queue", &queue.name)],
            longest as f64,
        );
    }
    header(
        &mut out,
        "holdfast_queue_agents_staffed",
        "gauge",
        "Registered, unpaused agents serving the queue.",
    );
    for queue in &snapshot.queues {
        sample(
            &mut out,
            "holdfast_queue_agents_staffed",
            &[("queue", &queue.name)],
            queue.agents_staffed as f64,
        );
    }
    header(
        &mut out,
        "holdfast_queue_average_handle_time_seconds",
        "gauge",
        "The estimator's mean handle time.",
    );
    for queue in &snapshot.queues {
        sample(
            &mut out,
            "holdfast_queue_average_handle_time_seconds",
            &[("queue", &queue.name)],
            queue.average_handle_time_s as f64,
        );
    }
    header(&mut out, "holdfast_agents", "gauge", "Agents by state.");
    for state in AGENT_STATES {
        let n = snapshot.agents.iter().filter(|a| a.state == state).count();
        sample(&mut out, "holdfast_agents", &[("state", state)], n as f64);
    }
    header(
        &mut out,
        "holdfast_calls_active",
        "gauge",
        "Trunk calls up (holding, ringing an agent or talking).",
    );
    sample(
        &mut out,
        "holdfast_calls_active",
        &[],
        counters.calls_up as f64,
    );

    header(
        &mut out,
        "holdfast_calls_admitted_total",
        "counter",
        "INVITEs admitted into a queue.",
    );
    sample(
        &mut out,
        "holdfast_calls_admitted_total",
        &[],
        counters.calls.calls_answered as f64,
    );
    header(
        &mut out,
        "holdfast_calls_rejected_total",
        "counter",
        "INVITEs refused, by status code.",
    );
    for (code, n) in &counters.calls.rejected {
        sample(
            &mut out,
            "holdfast_calls_rejected_total",
            &[("code", &code.to_string())],
            *n as f64,
        );
    }
    header(
        &mut out,
        "holdfast_calls_total",
        "counter",
        "Calls by outcome and queue.",
    );
    for queue in &snapshot.queues {
        for (event, outcome) in OUTCOMES {
            let n = obs
                .events
                .get(&(queue.name.clone(), event))
                .copied()
                .unwrap_or(0);
            sample(
                &mut out,
                "holdfast_calls_total",
                &[("queue", &queue.name), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    header(
        &mut out,
        "holdfast_call_events_total",
        "counter",
        "Call events written to the log and the store.",
    );
    for ((queue, event), n) in &obs.events {
        sample(
            &mut out,
            "holdfast_call_events_total",
            &[("queue", queue), ("event", event)],
            *n as f64,
        );
    }

    header(
        &mut out,
        "holdfast_wait_seconds",
        "histogram",
        "Arrival to agent answer (answered) or to hang-up while waiting (abandoned).",
    );
    for queue in &snapshot.queues {
        for (outcome, map) in [
            ("answered", &obs.wait_answered),
            ("abandoned", &obs.wait_abandoned),
        ] {
            let empty = Histogram::default();
            let h = map.get(&queue.name).unwrap_or(&empty);
            histogram(
                &mut out,
                "holdfast_wait_seconds",
                &[("queue", &queue.name), ("outcome", outcome)],
                h,
            );
        }
    }
    header(
        &mut out,
        "holdfast_handle_seconds",
        "histogram",
        "Agent answer to hang-up.",
    );
    for queue in &snapshot.queues {
        let empty = Histogram::default();
        let h = obs.handle.get(&queue.name).unwrap_or(&empty);
        histogram(
            &mut out,
            "holdfast_handle_seconds",
            &[("queue", &queue.name)],
            h,
        );
    }

    let media = &status.media;
    for (name, help, value) in [
        (
            "holdfast_rtp_packets_sent_total",
            "RTP packets sent (music and prompts).",
            media.packets_sent,
        ),
        (
            "holdfast_rtp_packets_received_total",
            "Valid RTP/RTCP packets received.",
            media.packets_received,
        ),
        (
            "holdfast_rtp_packets_relayed_total",
            "RTP packets relayed between bridged legs.",
            media.packets_relayed,
        ),
        (
            "holdfast_rtp_send_errors_total",
            "RTP sends the kernel refused.",
            media.send_errors,
        ),
        (
            "holdfast_rtp_skipped_frames_total",
            "Frames skipped because the media clock fell behind.",
            media.skipped_frames,
        ),
    ] {
        header(&mut out, name, "counter", help);
        sample(&mut out, name, &[], value as f64);
    }
    header(
        &mut out,
        "holdfast_rtp_streams",
        "gauge",
        "RTP streams open.",
    );
    sample(&mut out, "holdfast_rtp_streams", &[], media.streams as f64);
    let lateness = &media.lateness_buckets;
    header(
        &mut out,
        "holdfast_rtp_send_lateness_seconds",
        "histogram",
        "RTP send time minus the stream's schedule (bucket resolution 12.5 %).",
    );
    for &(le_us, n) in &lateness.le_us {
        let le = format!("{}", le_us as f64 / 1e6);
        sample(
            &mut out,
            "holdfast_rtp_send_lateness_seconds_bucket",
            &[("le", &le)],
            n as f64,
        );
    }
    sample(
        &mut out,
        "holdfast_rtp_send_lateness_seconds_bucket",
        &[("le", "+Inf")],
        lateness.count as f64,
    );
    sample(
        &mut out,
        "holdfast_rtp_send_lateness_seconds_sum",
        &[],
        lateness.sum_us as f64 / 1e6,
    );
    sample(
        &mut out,
        "holdfast_rtp_send_lateness_seconds_count",
        &[],
        lateness.count as f64,
    );

    let tx = &counters.transactions;
    header(
        &mut out,
        "holdfast_sip_transactions_total",
        "counter",
        "SIP transactions created.",
    );
    sample(
        &mut out,
        "holdfast_sip_transactions_total",
        &[("role", "server")],
        tx.server_transactions as f64,
    );
    sample(
        &mut out,
        "holdfast_sip_transactions_total",
        &[("role", "client")],
        tx.client_transactions as f64,
    );
    for (name, help, value) in [
        (
            "holdfast_sip_retransmissions_total",
            "SIP messages re-sent (timers or peer retransmissions).",
            tx.retransmissions,
        ),
        (
            "holdfast_sip_retransmissions_absorbed_total",
            "Retransmissions from peers absorbed by a transaction.",
            tx.absorbed,
        ),
        (
            "holdfast_sip_transaction_timeouts_total",
            "Transactions that timed out (Timers B, F, H, L).",
            tx.timeouts,
        ),
        (
            "holdfast_sip_parse_errors_total",
            "Datagrams that were not valid SIP.",
            counters.calls.parse_errors,
        ),
        (
            "holdfast_sip_dropped_total",
            "SIP datagrams dropped without a reply.",
            counters.calls.dropped,
        ),
        (
            "holdfast_store_dropped_records_total",
            "Call events or handle times the store could not write.",
            status.store_dropped,
        ),
    ] {
        header(&mut out, name, "counter", help);
        sample(&mut out, name, &[], value as f64);
    }
    header(
        &mut out,
        "holdfast_sip_transactions_live",
        "gauge",
        "SIP transactions alive now.",
    );
    sample(
        &mut out,
        "holdfast_sip_transactions_live",
        &[],
        counters.transactions_live as f64,
    );
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
