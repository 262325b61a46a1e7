//! `poolmanager`: the PoolManager server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use poolmanager::config::{Config, LogFormat, Overrides};

/// A pool of ready, running multi-container clusters on Docker hosts.
#[derive(Debug, Parser)]
#[command(name = "poolmanager", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API, Swagger UI at /docs.
    Serve {
        /// TOML config file [env: POOLMANAGER_CONFIG_FILE].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, overrides } => {
            let config = match Config::load(config.as_deref(), &overrides) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("poolmanager: configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs(config.log_format);
            tracing::debug!(?config, "configuration");
            match poolmanager::run(config, shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("poolmanager: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
