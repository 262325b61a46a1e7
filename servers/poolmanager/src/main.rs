//! `poolmanager`: the PoolManager server, and the operator CLI that talks to one.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use poolcore::ReconcileReport;
use poolmanager::config::{Config, LogFormat, Overrides};

/// A pool of ready, running multi-container clusters on Docker hosts.
#[derive(Debug, Parser)]
#[command(name = "poolmanager", version, about, after_help = cli::EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API, Swagger UI at /docs and the dashboard at /ui/.
    Serve {
        /// TOML config file [env: POOLMANAGER_CONFIG_FILE].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Reconcile the pool without serving the API: probe hosts, heal and replace
    /// clusters, remove orphans, expire leases, fill hosts. Every
    /// POOLMANAGER_RECONCILE_INTERVAL seconds, or once.
    Reconcile {
        /// Run one pass, wait for the work it starts, print what it did and exit
        /// (status 1 if anything failed).
        #[arg(long)]
        once: bool,
        /// TOML config file [env: POOLMANAGER_CONFIG_FILE].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print the OpenAPI spec of the REST API, as served at /api/v1/openapi.json
    /// (`docs/openapi.json` is this output).
    Openapi,
    #[command(flatten)]
    Client(cli::Command),
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

fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ExitCode> {
    match Config::load(file, overrides) {
        Ok(config) => {
            init_logs(config.log_format);
            tracing::debug!(?config, "configuration");
            Ok(config)
        }
        Err(e) => {
            eprintln!("poolmanager: configuration: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    tracing::error!("{e}");
    eprintln!("poolmanager: {e}");
    ExitCode::FAILURE
}

fn print_report(report: &ReconcileReport) {
    println!(
        "hosts probed: {}, unreachable: {}\nleases expired: {}\nclusters replaced: {}, repaired: {}, \
         resumed: {}, created: {}, beyond a ready buffer removed: {}\norphans removed: {}\noperations interrupted: {}",
        report.hosts_probed,
        report.hosts_unreachable,
        report.leases_expired,
        report.replaced,
        report.repaired,
        report.resumed,
        report.created,
        report.trimmed,
        report.orphans_removed,
        report.operations_interrupted,
    );
    for error in &report.errors {
        println!("error: {error}");
    }
}

impl Command {
    /// The config file and flags of the commands that take them.
    fn config(&self) -> Option<(Option<&Path>, &Overrides)> {
        match self {
            Command::Serve { config, overrides }
            | Command::Reconcile {
                config, overrides, ..
            } => Some((config.as_deref(), overrides)),
            Command::Openapi | Command::Client(_) => None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    if let Command::Client(command) = args.command {
        return cli::run(command, Cli::command).await;
    }
    let Some((file, overrides)) = args.command.config() else {
        println!("{}", poolmanager::api::spec());
        return ExitCode::SUCCESS;
    };
    let config = match load(file, overrides) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let outcome = match args.command {
        Command::Serve { .. } => poolmanager::run(config, shutdown_signal()).await.map_err(fail),
        Command::Reconcile { once: true, .. } => match poolmanager::reconcile_once(&config).await {
            Ok(report) => {
                print_report(&report);
                if report.errors.is_empty() {
                    Ok(())
                } else {
                    Err(ExitCode::FAILURE)
                }
            }
            Err(e) => Err(fail(e)),
        },
        Command::Reconcile { once: false, .. } => poolmanager::reconcile_forever(&config, shutdown_signal())
            .await
            .map_err(fail),
        Command::Openapi | Command::Client(_) => Ok(()),
    };
    outcome.err().unwrap_or(ExitCode::SUCCESS)
}
