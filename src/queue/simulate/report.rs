//! The figures `holdfast simulate` reports, computed from the caller records, and their
//! human-readable table (the JSON form is the serde serialisation of [`Report`]).

use std::fmt;

use super::{Announced, CallerRecord, Outcome, Params, SERVICE_LEVEL_SECS, bucket_of};
use crate::queue::estimate::WaitBucket;

/// Everything one simulation run reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The parameters simulated.
    pub params: Params,
    /// Handle-time distribution used: `"exponential"` or `"lognormal"`.
    pub handle_time_distribution: &'static str,
    /// The answer-time target of [`PriorityReport::service_level`], seconds.
    pub service_level_target_s: f64,
    /// One row per priority: `"vip"`, then `"normal"`.
    pub priorities: Vec<PriorityReport>,
    /// All callers together.
    pub total: PriorityReport,
    /// How the work was spread over the agents.
    pub agents: Option<super::AgentsReport>,
}

/// Waits, abandons, service level and estimate error for one group of callers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PriorityReport {
    /// `"vip"`, `"normal"` or `"all"`.
    pub priority: &'static str,
    /// Callers who arrived (= `answered + abandoned`).
    pub offered: usize,
    /// Callers an agent answered.
    pub answered: usize,
    /// Of the answered, those put through at once (a free agent, nothing announced).
    pub answered_at_once: usize,
    /// Callers who hung up while waiting.
    pub abandoned: usize,
    /// Callers released at `max_wait` (`--overflow hangup`).
    pub overflowed: usize,
    /// Callers moved to the overflow queue at `max_wait` (`--overflow queue`); they are
    /// then answered or abandon there, and count as such too.
    pub moved: usize,
    /// `abandoned / offered`; 0 when nobody called.
    pub abandon_rate: f64,
    /// Mean wait of the answered callers, seconds.
    pub mean_wait_s: f64,
    /// 90th percentile (nearest rank) wait of the answered callers, seconds.
    pub p90_wait_s: f64,
    /// Longest wait of an answered caller, seconds.
    pub max_wait_s: f64,
    /// Share of offered callers answered within the target; 0 when nobody called.
    pub service_level: f64,
    /// How the announced estimates compared with the real waits.
    pub estimate: EstimateReport,
}

/// Announced estimate vs. real wait, over callers who heard an estimate (joined at
/// position 2 or later) and were answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EstimateReport {
    /// Answered callers who joined at position 1 and heard "you are next", no estimate.
    pub told_next: usize,
    /// Callers compared.
    pub compared: usize,
    /// holdfast's: the calibrated quantile of the forecast (docs/behaviour.md §4).
    pub holdfast: ErrorStats,
    /// The seed's `p × H`.
    pub seed: ErrorStats,
    /// Share of compared callers who waited longer than holdfast's *spoken* phrase allows
    /// ("about 2 minutes" promises at most 120 s; "more than 10 minutes" promises nothing).
    pub spoken_under_share: f64,
    /// The same, phrase by phrase, for the phrases anybody was told.
    pub by_phrase: Vec<PhraseReport>,
}

/// Callers told one phrase, and how many of them waited longer than it promised.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhraseReport {
    /// The phrase: `"less than a minute"`, `"about 3 minutes"`, `"5 to 10 minutes"`,
    /// `"more than 10 minutes"`.
    pub phrase: String,
    /// Compared callers told it.
    pub told: usize,
    /// Of those, callers who waited longer than it promised.
    pub waited_longer: usize,
    /// `waited_longer / told`.
    pub share: f64,
}

fn phrase(bucket: WaitBucket) -> String {
    match bucket {
        WaitBucket::LessThanAMinute => "less than a minute".into(),
        WaitBucket::About(1) => "about 1 minute".into(),
        WaitBucket::About(m) => format!("about {m} minutes"),
        WaitBucket::FiveToTen => "5 to 10 minutes".into(),
        WaitBucket::MoreThanTen => "more than 10 minutes".into(),
    }
}

/// Sort key of a phrase: shortest first.
fn phrase_order(bucket: WaitBucket) -> u64 {
    bucket.lower_bound_secs()
}

/// Error of one estimator; all 0 when nothing was compared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorStats {
    /// Mean of |estimate − wait|, seconds.
    pub mean_absolute_error_s: f64,
    /// Mean of estimate − wait, seconds: positive means callers were told too much.
    pub mean_error_s: f64,
    /// Share of callers told less than they waited.
    pub under_share: f64,
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        0.0
    } else {
        values.sum::<f64>() / n as f64
    }
}

impl ErrorStats {
    fn new(pairs: &[(f64, f64)]) -> Self {
        let under = pairs.iter().filter(|(est, wait)| wait > est).count();
        Self {
            mean_absolute_error_s: mean(pairs.iter().map(|(est, wait)| (est - wait).abs())),
            mean_error_s: mean(pairs.iter().map(|(est, wait)| est - wait)),
            under_share: ratio(under, pairs.len()),
        }
    }
}

impl PriorityReport {
    fn new<'a>(priority: &'static str, callers: impl Iterator<Item = &'a CallerRecord>) -> Self {
        let mut offered = 0;
        let mut abandoned = 0;
        let mut answered_at_once = 0;
        let mut waits = Vec::new();
        let mut holdfast = Vec::new();
        let mut seed = Vec::new();
        let mut spoken_under = 0;
        let mut phrases: std::collections::BTreeMap<u64, (WaitBucket, usize, usize)> =
            std::collections::BTreeMap::new();
        let mut told_next = 0;
        let (mut overflowed, mut moved) = (0, 0);
        for caller in callers {
            offered += 1;
            moved += usize::from(caller.moved);
            match caller.outcome {
                Outcome::Answered { wait } => {
                    waits.push(wait);
                    match caller.announced {
                        None => answered_at_once += 1,
                        Some(Announced { position: ..=1, .. }) => told_next += 1,
                        Some(Announced {
                            holdfast: h,
                            seed: s,
                            ..
                        }) => {
                            holdfast.push((h, wait));
                            seed.push((s, wait));
                            let bucket = bucket_of(h);
                            let row = phrases
                                .entry(phrase_order(bucket))
                                .or_insert((bucket, 0, 0));
                            row.1 += 1;
                            if bucket.upper_bound_secs().is_some_and(|b| wait > b as f64) {
                                row.2 += 1;
                                spoken_under += 1;
                            }
                        }
                    }
                }
                Outcome::Abandoned { .. } => abandoned += 1,
                Outcome::Overflowed { .. } => overflowed += 1,
                // The simulation runs until nobody waits; count it as neither if it did not.
                Outcome::Waiting => {}
            }
        }
        waits.sort_by(f64::total_cmp);
        let within = waits.iter().filter(|&&w| w <= SERVICE_LEVEL_SECS).count();
        let p90 = match waits.len() {
            0 => 0.0,
            n => waits[(n * 9).div_ceil(10) - 1],
        };
        Self {
            priority,
            offered,
            answered: waits.len(),
            answered_at_once,
            abandoned,
            overflowed,
            moved,
            abandon_rate: ratio(abandoned, offered),
            mean_wait_s: mean(waits.iter().copied()),
            p90_wait_s: p90,
            max_wait_s: waits.last().copied().unwrap_or(0.0),
            service_level: ratio(within, offered),
            estimate: EstimateReport {
                told_next,
                compared: holdfast.len(),
                holdfast: ErrorStats::new(&holdfast),
                seed: ErrorStats::new(&seed),
                spoken_under_share: ratio(spoken_under, holdfast.len()),
                by_phrase: phrases
                    .into_values()
                    .map(|(bucket, told, longer)| PhraseReport {
                        phrase: phrase(bucket),
                        told,
                        waited_longer: longer,
                        share: ratio(longer, told),
                    })
                    .collect(),
            },
        }
    }
}

impl Report {
    /// Summarises the caller records of a run with `params`.
    pub fn new(params: Params, callers: &[CallerRecord]) -> Self {
        let handle_time_distribution = match params.handle_distribution {
            super::HandleDistribution::Exponential => "exponential",
            super::HandleDistribution::Lognormal => "lognormal",
        };
        Self {
            params,
            handle_time_distribution,
            service_level_target_s: SERVICE_LEVEL_SECS,
            priorities: vec![
                PriorityReport::new("vip", callers.iter().filter(|c| c.vip)),
                PriorityReport::new("normal", callers.iter().filter(|c| !c.vip)),
            ],
            total: PriorityReport::new("all", callers.iter()),
            agents: None,
        }
    }

    /// The report with the agents' figures of a run lasting `duration_s` seconds.
    pub fn with_agents(mut self, agents: &[super::AgentRecord], duration_s: f64) -> Self {
        self.agents = Some(super::AgentsReport::new(agents, duration_s));
        self
    }
}

/// Formats a share as a percentage with one decimal.
fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "holdfast simulate: {} agents, {} calls/hour for {} h, handle time {} s ({}), \
             patience {} s (exponential), VIP share {}, seed {}",
            p.agents,
            p.arrivals_per_hour,
            p.hours,
            p.aht,
            self.handle_time_distribution,
            p.patience,
            p.vip_share,
            p.seed
        )?;
        write!(f, "routing: strategy {}", p.strategy.as_str())?;
        if p.tier2_agents > 0 {
            write!(f, ", {} of the agents in tier 2", p.tier2_agents)?;
        }
        if p.max_wait > 0.0 {
            match p.overflow {
                super::OverflowTo::Hangup => {
                    write!(f, ", max wait {} s then released", p.max_wait)?;
                }
                super::OverflowTo::Queue => write!(
                    f,
                    ", max wait {} s then to an overflow queue with {} agents of its own",
                    p.max_wait, p.overflow_agents
                )?,
            }
        }
        writeln!(f)?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>10} {:>10} {:>8}",
            "priority",
            "offered",
            "answered",
            "abandoned",
            "abandon",
            "mean wait",
            "p90 wait",
            "max wait",
            format!("SL {}s", self.service_level_target_s),
        )?;
        let rows = || self.priorities.iter().chain(std::iter::once(&self.total));
        for r in rows() {
            writeln!(
                f,
                "{:<8} {:>8} {:>8} {:>9} {:>8} {:>9.1}s {:>9.1}s {:>9.1}s {:>8}",
                r.priority,
                r.offered,
                r.answered,
                r.abandoned,
                pct(r.abandon_rate),
                r.mean_wait_s,
                r.p90_wait_s,
                r.max_wait_s,
                pct(r.service_level),
            )?;
        }
        if p.max_wait > 0.0 {
            writeln!(
                f,
                "at max wait: {} released, {} moved to the overflow queue",
                self.total.overflowed, self.total.moved
            )?;
        }
        if let Some(agents) = &self.agents {
            write!(f, "{agents}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Estimate heard on joining vs. real wait (answered callers who heard one; \
             position 1 hears \"you are next\" instead):"
        )?;
        writeln!(
            f,
            "{:<8} {:>9} {:>8} | {:>17} {:>10} {:>12} | {:>13} {:>10} {:>12}",
            "priority",
            "told next",
            "compared",
            "holdfast MAE",
            "under",
            "spoken under",
            "seed p×H MAE",
            "under",
            "MAE ratio"
        )?;
        for r in rows() {
            let e = &r.estimate;
            let ratio = if e.seed.mean_absolute_error_s > 0.0 {
                format!(
                    "{:.2}",
                    e.holdfast.mean_absolute_error_s / e.seed.mean_absolute_error_s
                )
            } else {
                "-".into()
            };
            writeln!(
                f,
                "{:<8} {:>9} {:>8} | {:>16.1}s {:>10} {:>12} | {:>12.1}s {:>10} {:>12}",
                r.priority,
                e.told_next,
                e.compared,
                e.holdfast.mean_absolute_error_s,
                pct(e.holdfast.under_share),
                pct(e.spoken_under_share),
                e.seed.mean_absolute_error_s,
                pct(e.seed.under_share),
                ratio,
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Phrase heard on joining (all callers): told, waited longer than it promised:"
        )?;
        for row in &self.total.estimate.by_phrase {
            writeln!(
                f,
                "  {:<22} {:>7} {:>7} {:>7}",
                row.phrase,
                row.told,
                row.waited_longer,
                pct(row.share)
            )?;
        }
        Ok(())
    }
}
