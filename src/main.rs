//! The `holdfast` command line (docs/behaviour.md §12): `serve` (the default), `check-config`,
//! `simulate`, `report`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use holdfast::config;
use holdfast::queue::simulate;

#[derive(Parser)]
#[command(name = "holdfast", version, about = "SIP call-queue server")]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve {
        /// Configuration file; default ./holdfast.toml if present, else the built-in demo.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Simulate a day of calls in virtual time: waits, abandons, service level, estimate error.
    Simulate(SimulateArgs),
    /// Print a day's figures per queue and per agent from the store's call events.
    Report {
        /// The day, UTC: YYYY-MM-DD.
        #[arg(long)]
        day: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
        format: ReportFormat,
        /// Configuration file (for the store and the queues' service-level targets);
        /// default ./holdfast.toml if present, else the built-in demo.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Csv,
    Json,
}

/// `holdfast report`: the day's call events from the configured store, summarised.
fn run_report(day: &str, format: ReportFormat, config: config::Config) -> Result<String, String> {
    use holdfast::store::Store;
    let (from, to) = holdfast::report::day_bounds(day)?;
    let events = match config.store.backend {
        config::StoreBackend::Sqlite => {
            let file = config.store.data_dir.join(holdfast::store::DB_FILE);
            if !file.exists() {
                return Err(format!("no store at {}", file.display()));
            }
            holdfast::store::SqliteStore::open(&config.store.data_dir)
                .and_then(|mut store| store.events_between(from, to))
        }
        config::StoreBackend::Postgres => holdfast::store::PostgresStore::reader(&config.store.url)
            .and_then(|mut store| store.events_between(from, to)),
    }
    .map_err(|e| format!("store: {e}"))?;
    let targets = config
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.service_level))
        .collect();
    let report = holdfast::report::Report::new(from, to, &events, &targets);
    Ok(match format {
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
        }
    })
}

/// `holdfast simulate` flags; defaults are [`simulate::Params::default`].
#[derive(clap::Args)]
struct SimulateArgs {
    /// Agents staffed all the time.
    #[arg(long, default_value_t = simulate::Params::default().agents)]
    agents: usize,
    /// Mean arrival rate (Poisson).
    #[arg(long, default_value_t = simulate::Params::default().arrivals_per_hour)]
    arrivals_per_hour: f64,
    /// Mean handle time in seconds.
    #[arg(long, default_value_t = simulate::Params::default().aht)]
    aht: f64,
    /// How handle times spread around the mean: exponential or lognormal.
    #[arg(long, default_value = "exponential")]
    handle_distribution: simulate::HandleDistribution,
    /// How arrivals vary over the day: flat, office, or 24 comma-separated hourly weights
    /// (the mean rate stays --arrivals-per-hour).
    #[arg(long, default_value = "flat")]
    profile: simulate::Profile,
    /// Share of callers with VIP priority, 0 to 1.
    #[arg(long, default_value_t = simulate::Params::default().vip_share)]
    vip_share: f64,
    /// Hours of arrivals to simulate.
    #[arg(long, default_value_t = simulate::Params::default().hours)]
    hours: f64,
    /// Mean caller patience in seconds before hanging up (exponential).
    #[arg(long, default_value_t = simulate::Params::default().patience)]
    patience: f64,
    /// The estimator's handle time before any call completes, seconds.
    #[arg(long, default_value_t = simulate::Params::default().default_handle_time)]
    default_handle_time: f64,
    /// Random seed; the same flags and seed give the same report.
    #[arg(long, default_value_t = simulate::Params::default().seed)]
    seed: u64,
    /// Which free agent takes a caller: longest-idle, round-robin, fewest-calls,
    /// least-talk-time, ring-all, linear or random (`[[queue]] strategy`).
    #[arg(long, default_value = "longest-idle")]
    strategy: holdfast::queue::dispatch::Strategy,
    /// How many of the agents are tier 2 (callers only while no tier-1 agent is free).
    #[arg(long, default_value_t = 0)]
    tier2_agents: usize,
    /// Seconds a caller waits before overflowing (`[[queue]] max_wait`); 0: never.
    #[arg(long, default_value_t = 0.0)]
    max_wait: f64,
    /// Where it overflows: hangup, or queue (a second queue, see --overflow-agents).
    #[arg(long, default_value = "hangup")]
    overflow: simulate::OverflowTo,
    /// Agents of the overflow queue only (with --overflow queue); the main agents serve it
    /// after their own.
    #[arg(long, default_value_t = 0)]
    overflow_agents: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn run_simulate(args: SimulateArgs) -> ExitCode {
    let params = simulate::Params {
        agents: args.agents,
        arrivals_per_hour: args.arrivals_per_hour,
        aht: args.aht,
        handle_distribution: args.handle_distribution,
        profile: args.profile,
        vip_share: args.vip_share,
        hours: args.hours,
        patience: args.patience,
        default_handle_time: args.default_handle_time,
        seed: args.seed,
        strategy: args.strategy,
        tier2_agents: args.tier2_agents,
        max_wait: args.max_wait,
        overflow: args.overflow,
        overflow_agents: args.overflow_agents,
    };
    // The clock is read only to give virtual time an origin; the report does not depend on it.
    let report = match simulate::run(&params, std::time::Instant::now()) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("holdfast simulate: {error}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("holdfast simulate: cannot write JSON: {error}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(path: Option<PathBuf>) -> Result<config::Config, ExitCode> {
    let path = path.or_else(|| {
        let local = PathBuf::from("holdfast.toml");
        local.exists().then_some(local)
    });
    match path {
        Some(path) => config::load(&path).map_err(|errors| {
            eprintln!("{errors}");
            ExitCode::from(1)
        }),
        None => {
            tracing::info!("no holdfast.toml: using the built-in demo configuration");
            Ok(config::demo())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Simulate(args) => run_simulate(args),
        Command::Report {
            day,
            format,
            config,
        } => {
            let config = match load_config(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            match run_report(&day, format, config) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("holdfast report: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                print!("{}", config.to_toml_string());
                for (dir, missing) in holdfast::server::missing_clips(&config) {
                    eprintln!(
                        "{}: prompt pack has no clip {} (the built-in clip is spoken instead)",
                        dir.display(),
                        missing.join(", ")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Serve { config } => {
            init_logging(cli.log_format);
            let config = match load_config(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("holdfast: cannot start runtime: {error}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(holdfast::server::run(config, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("holdfast: {error}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
