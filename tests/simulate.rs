//! `holdfast simulate` as a user runs it: the binary, its flags, its JSON and its table.

use std::process::Command;

use serde_json::Value;

fn holdfast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .output()
        .expect("the holdfast binary runs")
}

fn count(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is a count in {row}"))
}

fn number(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {row}"))
}

#[test]
fn json_report_is_internally_consistent() {
    let args = [
        "simulate",
        "--agents",
        "5",
        "--arrivals-per-hour",
        "60",
        "--aht",
        "240",
        "--hours",
        "24",
        "--seed",
        "1",
        "--vip-share",
        "0.2",
        "--patience",
        "240",
        "--json",
    ];
    let out = holdfast(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["params"]["agents"], 5);
    assert_eq!(report["params"]["vip_share"], 0.2);
    assert_eq!(report["params"]["patience"], 240.0);

    let rows = report["priorities"]
        .as_array()
        .expect("priorities is a list");
    assert_eq!(rows.len(), 2);
    let total = &report["total"];
    for row in rows.iter().chain([total]) {
        let offered = count(row, "offered");
        assert_eq!(
            offered,
            count(row, "answered") + count(row, "abandoned"),
            "{row}"
        );
        assert_eq!(
            count(row, "answered"),
            count(row, "answered_at_once")
                + count(&row["estimate"], "told_next")
                + count(&row["estimate"], "compared"),
            "{row}"
        );
        for key in ["mean_wait_s", "p90_wait_s", "max_wait_s"] {
            assert!(number(row, key) >= 0.0, "{key} in {row}");
        }
        for key in ["abandon_rate", "service_level"] {
            assert!((0.0..=1.0).contains(&number(row, key)), "{key} in {row}");
        }
        for estimator in ["holdfast", "seed"] {
            let e = &row["estimate"][estimator];
            assert!(number(e, "mean_absolute_error_s") >= number(e, "mean_error_s").abs());
            assert!((0.0..=1.0).contains(&number(e, "under_share")));
        }
    }
    for key in ["offered", "answered", "abandoned"] {
        let sum: u64 = rows.iter().map(|r| count(r, key)).sum();
        assert_eq!(sum, count(total, key), "{key}");
    }
    // About 60 calls an hour for 24 hours.
    assert!((1_200..1_700).contains(&count(total, "offered")));

    // Deterministic: the same flags give the same bytes.
    let again = holdfast(&args);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn table_is_the_default_output() {
    let out = holdfast(&["simulate", "--hours", "2", "--seed", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8 table");
    for needle in [
        "priority",
        "vip",
        "normal",
        "all",
        "holdfast MAE",
        "seed p×H MAE",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn bad_flags_exit_with_a_message() {
    let out = holdfast(&["simulate", "--agents", "0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--agents 0"), "{stderr}");

    let out = holdfast(&["simulate", "--vip-share", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vip-share"));
}

#[test]
fn lognormal_handle_times_and_a_shaped_day() {
    let out = holdfast(&[
        "simulate",
        "--agents",
        "4",
        "--arrivals-per-hour",
        "50",
        "--hours",
        "48",
        "--handle-distribution",
        "lognormal",
        "--profile",
        "office",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["handle_time_distribution"], "lognormal");
    assert_eq!(report["params"]["profile"]["name"], "office");
    let phrases = report["total"]["estimate"]["by_phrase"]
        .as_array()
        .expect("by_phrase is a list");
    assert!(!phrases.is_empty());
    let told: u64 = phrases.iter().map(|p| count(p, "told")).sum();
    assert_eq!(told, count(&report["total"]["estimate"], "compared"));
    // 24 hourly weights work too; the mean rate is kept, so the day offers about as many.
    let mut weights = vec!["1"; 24];
    weights[10] = "5";
    let custom = weights.join(",");
    let out = holdfast(&[
        "simulate",
        "--hours",
        "48",
        "--profile",
        &custom,
        "--seed",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let offered = count(&report["total"], "offered");
    assert!(
        (2400..3400).contains(&offered),
        "{offered} offered, expected ~2 880"
    );
    assert_eq!(report["params"]["profile"]["name"], "custom");
}

#[test]
fn bad_distribution_or_profile_names_the_flag() {
    for args in [
        &["simulate", "--handle-distribution", "gamma"][..],
        &["simulate", "--profile", "1,2,3"][..],
    ] {
        let out = holdfast(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(args[1]), "{stderr}");
    }
}

/// Routing rules on a synthetic day (docs/behaviour.md §8): a strategy, tier-2 agents and a
/// max wait with an overflow queue, reported with how the work was spread.
#[test]
fn routing_rules_are_simulated_and_reported() {
    let out = holdfast(&[
        "simulate",
        "--hours",
        "8",
        "--arrivals-per-hour",
        "70",
        "--strategy",
        "linear",
        "--tier2-agents",
        "1",
        "--max-wait",
        "60",
        "--overflow",
        "queue",
        "--overflow-agents",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["params"]["strategy"], "linear");
    assert_eq!(report["params"]["overflow"], "queue");
    assert!(count(&report["total"], "moved") > 0, "{}", report["total"]);
    let agents = &report["agents"];
    assert!(count(agents, "calls_max") >= count(agents, "calls_min"));
    assert!(agents["tier2_occupancy"].as_f64().is_some());
    let text = holdfast(&["simulate", "--hours", "2", "--strategy", "round-robin"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("routing: strategy round-robin"), "{text}");
    assert!(text.contains("calls each"), "{text}");
    let out = holdfast(&["simulate", "--strategy", "cheapest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--strategy"));
}
