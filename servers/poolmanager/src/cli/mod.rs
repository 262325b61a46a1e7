//! The operator CLI: the client subcommands of `poolmanager`, which talk to a
//! running server through the client `build.rs` generates from `docs/openapi.json`.

mod api;
mod blueprints;
mod clusters;
mod events;
mod fail;
mod hosts;
mod input;
mod output;
mod pool;
mod progress;

use std::process::ExitCode;

use clap::Subcommand;
use clap_complete::Shell;

/// Examples shown under `poolmanager --help`.
pub const EXAMPLES: &str = "\
Client examples (server URL and token from flags, POOLMANAGER_URL / POOLMANAGER_TOKEN,
or ~/.config/poolmanager/client.toml):
  export POOLMANAGER_URL=http://127.0.0.1:8080 POOLMANAGER_TOKEN_FILE=poolmanager.admin-token
  poolmanager hosts add --name local --endpoint unix:///var/run/docker.sock --capacity 2
  poolmanager blueprints add -f demo.toml
  poolmanager hosts fill local
  poolmanager apply --user alice --blueprint demo
  poolmanager release --user alice
  poolmanager clusters list --status applied -o json
  poolmanager events

Exit status: 0 done, 1 failed, 2 usage or invalid input, 3 not found, 4 conflict,
5 server unreachable, 6 token refused, 7 nothing ready or engine unavailable.";

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hosts: the Docker engines and Swarm managers clusters run on (admin).
    Hosts(hosts::Hosts),
    /// Blueprints: the kinds of cluster users apply for.
    Blueprints(blueprints::Blueprints),
    /// Clusters: list, inspect, start, stop, renew, delete.
    Clusters(clusters::Clusters),
    /// Apply for a cluster: a dedicated, running one at once.
    #[command(after_help = pool::APPLY_EXAMPLES)]
    Apply(pool::ApplyArgs),
    /// Release a cluster, or every cluster of a user; each is recreated fresh.
    #[command(after_help = pool::RELEASE_EXAMPLES)]
    Release(pool::ReleaseArgs),
    /// Fills, cleans and resets of hosts, and their progress (admin).
    Operations(pool::Operations),
    /// Cluster counts per status, host and blueprint (admin).
    Stats(pool::StatsArgs),
    /// Follow the pool's changes as they happen, like `kubectl get -w` (admin).
    #[command(after_help = events::EXAMPLES)]
    Events(events::EventsArgs),
    /// Print a completion script for a shell.
    #[command(
        after_help = "Examples:\n  poolmanager completions bash > /etc/bash_completion.d/poolmanager\n  \
                            poolmanager completions zsh > \"${fpath[1]}/_poolmanager\""
    )]
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// Runs a client subcommand; `top` is the whole command line's definition, for the
/// completion scripts.
pub async fn run(command: Command, top: impl FnOnce() -> clap::Command) -> ExitCode {
    let outcome = match command {
        Command::Hosts(args) => hosts::run(args).await,
        Command::Blueprints(args) => blueprints::run(args).await,
        Command::Clusters(args) => clusters::run(args).await,
        Command::Apply(args) => pool::apply(args).await,
        Command::Release(args) => pool::release(args).await,
        Command::Operations(args) => pool::operations(args).await,
        Command::Stats(args) => pool::stats(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Completions { shell } => {
            let mut top = top();
            let name = top.get_name().to_owned();
            clap_complete::generate(shell, &mut top, name, &mut std::io::stdout());
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
