//! `poolmanager apply`, `release`, `operations ...` and `stats`.

use std::collections::HashMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Map;

use super::api::{types, Connection, Server};
use super::clusters;
use super::fail::Failure;
use super::hosts;
use super::input::{body, every_upto, pair, set, set_map, spec_enum, PAGE};
use super::output::{self, age, Fields, Table};
use super::progress;

pub const APPLY_EXAMPLES: &str = "\
Examples:
  poolmanager apply --user alice --blueprint demo
  poolmanager apply --user alice --label consensus=pbft --ttl 3600 --metadata ticket=OPS-12
  poolmanager apply --user alice --blueprint demo --wait 60 -o json | jq -r '.service_urls.vp0.web'";

pub const RELEASE_EXAMPLES: &str = "\
Examples:
  poolmanager release --user alice
  poolmanager release --cluster demo-3f2a1c";

const OPERATIONS_EXAMPLES: &str = "\
Examples:
  poolmanager operations list --status running
  poolmanager operations show 5f0c... --follow";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    conn: Connection,
    /// The user the cluster is for.
    #[arg(long)]
    user: String,
    /// A cluster of this blueprint.
    #[arg(long)]
    blueprint: Option<String>,
    /// A cluster of any blueprint carrying this label, KEY=VALUE (repeat it).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = pair)]
    labels: Vec<(String, String)>,
    /// Give another cluster even when the user already holds a matching one.
    #[arg(long)]
    allow_multiple: bool,
    /// Kept with the lease, KEY=VALUE (repeat it).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = pair)]
    metadata: Vec<(String, String)>,
    /// Lease length in seconds [default: the server's].
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
    /// When nothing is ready, wait up to this many seconds for a cluster.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
}

pub async fn apply(args: ApplyArgs) -> Result<(), Failure> {
    let server = args
        .conn
        .connect_waiting(Duration::from_secs(args.wait.unwrap_or(0)))?;
    let mut fields = Map::new();
    set(&mut fields, "user_id", Some(args.user));
    set(&mut fields, "blueprint", args.blueprint);
    set_map(&mut fields, "labels", &args.labels);
    if args.allow_multiple {
        set(&mut fields, "allow_multiple", Some(true));
    }
    set_map(&mut fields, "metadata", &args.metadata);
    set(&mut fields, "ttl_seconds", args.ttl);
    set(&mut fields, "wait_seconds", args.wait);
    let apply: types::Apply = body("apply", fields)?;
    let cluster = server.call(server.client.apply().body(apply).send()).await?;
    output::print(server.output, &cluster, || clusters::show(&cluster))
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    conn: Connection,
    /// The cluster to release (id or name).
    #[arg(long, required_unless_present = "user")]
    cluster: Option<String>,
    /// Release this user's clusters (with --cluster: the user it is applied to).
    #[arg(long)]
    user: Option<String>,
}

pub async fn release(args: ReleaseArgs) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    let cluster_id = match &args.cluster {
        Some(key) => Some(clusters::find(&server, key).await?.id),
        None => None,
    };
    let mut fields = Map::new();
    set(&mut fields, "cluster_id", cluster_id);
    set(&mut fields, "user_id", args.user);
    let release: types::Release = body("release", fields)?;
    let released = server.call(server.client.release().body(release).send()).await?;
    output::print(server.output, &released, || match released.released.len() {
        0 => "nothing to release".into(),
        n => format!(
            "released {n} cluster{}: {}",
            if n == 1 { "" } else { "s" },
            released.released.join(", ")
        ),
    })
}

#[derive(Debug, Args)]
#[command(after_help = OPERATIONS_EXAMPLES)]
pub struct Operations {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: OperationsCommand,
}

#[derive(Debug, Subcommand)]
enum OperationsCommand {
    /// List operations, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Only those of this host (id or name).
        #[arg(long)]
        host: Option<String>,
        /// Only fills, cleans or resets: fill, clean, reset.
        #[arg(long, value_parser = spec_enum::<types::OperationKind>)]
        kind: Option<types::OperationKind>,
        /// Only those in this status: running, succeeded, failed, interrupted.
        #[arg(long, value_parser = spec_enum::<types::OperationStatus>)]
        status: Option<types::OperationStatus>,
        /// At most this many [default: 100].
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show an operation: status and progress.
    Show {
        /// The operation's id.
        id: String,
        /// Follow it to its end with a progress bar.
        #[arg(long)]
        follow: bool,
    },
}

pub async fn operations(args: Operations) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    match args.command {
        OperationsCommand::List {
            host,
            kind,
            status,
            limit,
        } => {
            let host_id = match host {
                Some(key) => Some(hosts::find(&server, &key).await?.id),
                None => None,
            };
            let server = &server;
            let host_id = &host_id;
            let mut ops = every_upto(limit, |offset| async move {
                let mut request = server.client.list_operations().limit(PAGE).offset(offset);
                if let Some(host) = host_id {
                    request = request.host_id(host.clone());
                }
                if let Some(kind) = kind {
                    request = request.kind(kind);
                }
                if let Some(status) = status {
                    request = request.status(status);
                }
                let page = server.call(request.send()).await?;
                Ok((page.items, page.total))
            })
            .await?;
            ops.truncate(limit);
            let names = host_names(server).await?;
            output::print(server.output, &ops, || {
                let mut table = Table::new(&["ID", "KIND", "HOST", "STATUS", "DONE", "ERROR", "AGE"]);
                for op in &ops {
                    table.row(vec![
                        op.id.clone(),
                        op.kind.to_string(),
                        names
                            .get(&op.host_id)
                            .cloned()
                            .unwrap_or_else(|| op.host_id.clone()),
                        op.status.to_string(),
                        format!("{}/{}", op.done, op.total),
                        output::or_dash(op.error.as_ref()),
                        age(&op.created_at),
                    ]);
                }
                table.render()
            })
        }
        OperationsCommand::Show { id, follow } => {
            let op = server.call(server.client.get_operation().id(id).send()).await?;
            let host = host_name(&server, &op.host_id).await;
            if follow {
                let what = format!("{} of host {host}", op.kind);
                let op = progress::follow(&server, &op.id, &what).await?;
                return progress::ended(server.output, &op, &what);
            }
            output::print(server.output, &op, || {
                let mut fields = Fields::new();
                fields
                    .field("ID", op.id.clone())
                    .field("Kind", op.kind.to_string())
                    .field("Host", host)
                    .field("Status", op.status.to_string())
                    .field("Done", format!("{}/{}", op.done, op.total))
                    .field("Error", output::or_dash(op.error.as_ref()))
                    .field("Started", output::time(&op.created_at))
                    .field("Updated", output::time(&op.updated_at));
                fields.render()
            })
        }
    }
}

/// A host's name, or its id when it cannot be read (removed meanwhile).
async fn host_name(server: &Server, id: &str) -> String {
    match server.call(server.client.get_host().id(id).send()).await {
        Ok(host) => host.name,
        Err(_) => id.to_owned(),
    }
}

async fn host_names(server: &Server) -> Result<HashMap<String, String>, Failure> {
    Ok(hosts::all(server)
        .await?
        .into_iter()
        .map(|h| (h.id, h.name))
        .collect())
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    conn: Connection,
}

pub async fn stats(args: StatsArgs) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    let stats = server.call(server.client.get_stats().send()).await?;
    output::print(server.output, &stats, || stats_tables(&stats))
}

const COUNT_HEADER: [&str; 7] = [
    "READY",
    "APPLIED",
    "CREATING",
    "RELEASING",
    "STOPPED",
    "FAILED",
    "DELETING",
];

fn counts(c: &types::ClusterCounts) -> Vec<String> {
    [
        c.ready,
        c.applied,
        c.creating,
        c.releasing,
        c.stopped,
        c.failed,
        c.deleting,
    ]
    .iter()
    .map(u64::to_string)
    .collect()
}

fn stats_tables(stats: &types::Stats) -> String {
    let mut all = Table::new(&COUNT_HEADER);
    all.row(counts(&stats.clusters));
    let mut hosts = Table::new(&[&["HOST", "STATUS", "CAPACITY"][..], &COUNT_HEADER[..]].concat());
    for h in &stats.hosts {
        let mut row = vec![h.name.clone(), h.status.to_string(), h.capacity.to_string()];
        row.extend(counts(&h.clusters));
        hosts.row(row);
    }
    let mut blueprints = Table::new(
        &[
            &["BLUEPRINT"][..],
            &COUNT_HEADER[..],
            &["READY-TARGET", "BACKOFF"][..],
        ]
        .concat(),
    );
    for b in &stats.blueprints {
        let mut row = vec![b.name.clone()];
        row.extend(counts(&b.clusters));
        row.push(output::or_dash(b.ready_target));
        row.push(output::or_dash(b.backoff.as_ref().map(|off| {
            format!("{} failures, until {}", off.failures, output::time(&off.until))
        })));
        blueprints.row(row);
    }
    let mut fields = Fields::new();
    fields
        .field(
            "Hosts",
            format!(
                "{} active, {} inactive",
                stats.hosts_by_status.active, stats.hosts_by_status.inactive
            ),
        )
        .field("Applies waiting", stats.waiting.to_string())
        .section("Clusters", &all)
        .section("Per host", &hosts)
        .section("Per blueprint", &blueprints);
    fields.render()
}
