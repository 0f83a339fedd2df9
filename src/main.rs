//! The `holdfast` command line (SPEC §12): `serve` (the default), `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use holdfast::config;

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
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                print!("{}", config.to_toml_string());
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
