//! `poolmanager clusters ...`

use std::collections::HashMap;

use clap::{Args, Subcommand};
use serde_json::Map;

use super::api::{types, Connection, Server};
use super::fail::{Exit, Failure};
use super::hosts;
use super::input::{body, every, every_upto, set, spec_enum, PAGE};
use super::output::{self, age, or_dash, pairs, until, Fields, Table};

const EXAMPLES: &str = "\
Examples:
  poolmanager clusters list --status applied --sort applied_at --desc
  poolmanager clusters list --health failing -o json
  poolmanager clusters show demo-3f2a1c
  poolmanager clusters restart demo-3f2a1c --node vp0
  poolmanager clusters renew demo-3f2a1c --ttl 3600
  poolmanager clusters rm demo-3f2a1c --force

A cluster is named by its id or its name.";

/// The clusters commands.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct Clusters {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: ClustersCommand,
}

#[derive(Debug, Subcommand)]
enum ClustersCommand {
    /// List clusters, by name unless --sort says otherwise.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a cluster: nodes, service URLs, owner, lease.
    Show {
        /// The cluster's id or name.
        cluster: String,
    },
    /// Delete a cluster (admin).
    #[command(visible_alias = "delete")]
    Rm {
        /// The cluster's id or name.
        cluster: String,
        /// Delete it even while applied (its lease is closed).
        #[arg(long)]
        force: bool,
    },
    /// Start a cluster, or one of its nodes.
    Start(NodeArgs),
    /// Stop a cluster, or one of its nodes.
    Stop(NodeArgs),
    /// Restart a cluster, or one of its nodes.
    Restart(NodeArgs),
    /// Move an applied cluster's lease end to TTL seconds from now.
    Renew {
        /// The cluster's id or name.
        cluster: String,
        /// Seconds from now [default: the server's default TTL].
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// The user it is applied to (needed with the user token).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only clusters in this status: creating, ready, applied, releasing, stopped,
    /// failed, deleting.
    #[arg(long, value_parser = spec_enum::<types::ClusterStatus>)]
    status: Option<types::ClusterStatus>,
    /// Only clusters of this health: ok, failing, unknown.
    #[arg(long, value_parser = spec_enum::<types::Health>)]
    health: Option<types::Health>,
    /// Only clusters on this host (id, or name with the admin token).
    #[arg(long)]
    host: Option<String>,
    /// Only clusters applied to this user.
    #[arg(long)]
    user: Option<String>,
    /// Only clusters of this blueprint.
    #[arg(long)]
    blueprint: Option<String>,
    /// Order by: name, blueprint, host_id, status, health, user_id, applied_at,
    /// expires_at, created_at.
    #[arg(long, value_parser = spec_enum::<types::ClusterSortKey>)]
    sort: Option<types::ClusterSortKey>,
    /// Reverse the order.
    #[arg(long)]
    desc: bool,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The cluster's id or name.
    cluster: String,
    /// Only this node.
    #[arg(long)]
    node: Option<String>,
    /// The user it is applied to (needed with the user token).
    #[arg(long)]
    user: Option<String>,
}

impl NodeArgs {
    fn target(&self) -> Result<types::NodeTarget, Failure> {
        let mut fields = Map::new();
        set(&mut fields, "node", self.node.clone());
        set(&mut fields, "user_id", self.user.clone());
        body("node target", fields)
    }
}

/// What `start`, `stop` and `restart` did, for messages.
#[derive(Clone, Copy)]
enum Action {
    Start,
    Stop,
    Restart,
}

pub async fn run(args: Clusters) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    match args.command {
        ClustersCommand::List(list_args) => list(&server, list_args).await,
        ClustersCommand::Show { cluster } => {
            let cluster = find(&server, &cluster).await?;
            output::print(server.output, &cluster, || show(&cluster))
        }
        ClustersCommand::Rm { cluster, force } => {
            let cluster = find(&server, &cluster).await?;
            let mut request = server.client.delete_cluster().id(cluster.id.clone());
            if force {
                request = request.force(true);
            }
            server.call(request.send()).await?;
            let gone = serde_json::json!({"deleted": cluster.id});
            output::print(server.output, &gone, || {
                format!("cluster {} deleted", cluster.name)
            })
        }
        ClustersCommand::Start(node) => act(&server, node, Action::Start).await,
        ClustersCommand::Stop(node) => act(&server, node, Action::Stop).await,
        ClustersCommand::Restart(node) => act(&server, node, Action::Restart).await,
        ClustersCommand::Renew { cluster, ttl, user } => {
            let id = find(&server, &cluster).await?.id;
            let mut fields = Map::new();
            set(&mut fields, "ttl_seconds", ttl);
            set(&mut fields, "user_id", user);
            let renewal: types::Renewal = body("renewal", fields)?;
            let cluster = server
                .call(server.client.renew_lease().id(id).body(renewal).send())
                .await?;
            output::print(server.output, &cluster, || {
                format!(
                    "lease of cluster {} ends {} ({})",
                    cluster.name,
                    or_dash(cluster.expires_at.as_ref().map(output::time)),
                    until(cluster.expires_at.as_ref())
                )
            })
        }
    }
}

async fn act(server: &Server, node: NodeArgs, action: Action) -> Result<(), Failure> {
    let target = node.target()?;
    let id = find(server, &node.cluster).await?.id;
    let request = match action {
        Action::Start => {
            server
                .call(server.client.start_cluster().id(id).body(target).send())
                .await
        }
        Action::Stop => {
            server
                .call(server.client.stop_cluster().id(id).body(target).send())
                .await
        }
        Action::Restart => {
            server
                .call(server.client.restart_cluster().id(id).body(target).send())
                .await
        }
    };
    let cluster = request?;
    let done = match action {
        Action::Start => "started",
        Action::Stop => "stopped",
        Action::Restart => "restarted",
    };
    output::print(server.output, &cluster, || {
        let what = match &node.node {
            Some(n) => format!("node {n} of cluster {}", cluster.name),
            None => format!("cluster {}", cluster.name),
        };
        format!("{what} {done} (cluster {})", cluster.status)
    })
}

/// The cluster whose id, or else name, is `key`.
pub async fn find(server: &Server, key: &str) -> Result<types::Cluster, Failure> {
    match server.call(server.client.get_cluster().id(key).send()).await {
        Err(failure) if failure.exit == Exit::NotFound => {
            let all = every(|offset| async move {
                let page = server
                    .call(server.client.list_clusters().limit(PAGE).offset(offset).send())
                    .await?;
                Ok((page.items, page.total))
            })
            .await?;
            all.into_iter()
                .find(|c| c.name == key)
                .ok_or_else(|| Failure::not_found(format!("no cluster has the id or name {key:?}")))
        }
        found => found,
    }
}

/// Host names by id, when the token may list hosts; empty otherwise.
async fn host_names(server: &Server) -> Result<HashMap<String, String>, Failure> {
    match hosts::all(server).await {
        Ok(hosts) => Ok(hosts.into_iter().map(|h| (h.id, h.name)).collect()),
        Err(failure) if failure.exit == Exit::Denied => Ok(HashMap::new()),
        Err(failure) => Err(failure),
    }
}

async fn list(server: &Server, args: ListArgs) -> Result<(), Failure> {
    let host_id = match &args.host {
        None => None,
        Some(key) => match hosts::find(server, key).await {
            Ok(host) => Some(host.id),
            // The user token may not read hosts: take the value as the id.
            Err(failure) if failure.exit == Exit::Denied => Some(key.clone()),
            Err(failure) => return Err(failure),
        },
    };
    let limit = args.limit.unwrap_or(usize::MAX);
    let args = &args;
    let host_id = &host_id;
    let mut clusters = every_upto(limit, |offset| async move {
        let mut request = server.client.list_clusters().limit(PAGE).offset(offset);
        if let Some(status) = args.status {
            request = request.status(status);
        }
        if let Some(health) = args.health {
            request = request.health(health);
        }
        if let Some(host) = host_id {
            request = request.host_id(host.clone());
        }
        if let Some(user) = &args.user {
            request = request.user_id(user.clone());
        }
        if let Some(blueprint) = &args.blueprint {
            request = request.blueprint(blueprint.clone());
        }
        if let Some(sort) = args.sort {
            request = request.sort(sort);
        }
        if args.desc {
            request = request.order(types::SortOrder::Desc);
        }
        let page = server.call(request.send()).await?;
        Ok((page.items, page.total))
    })
    .await?;
    clusters.truncate(limit);
    let names = if server.output == output::Format::Table {
        host_names(server).await?
    } else {
        HashMap::new()
    };
    output::print(server.output, &clusters, || {
        let mut table = Table::new(&[
            "NAME",
            "ID",
            "BLUEPRINT",
            "HOST",
            "STATUS",
            "HEALTH",
            "USER",
            "EXPIRES",
            "AGE",
        ]);
        for c in &clusters {
            table.row(vec![
                c.name.clone(),
                c.id.clone(),
                c.blueprint.clone(),
                names
                    .get(&c.host_id)
                    .cloned()
                    .unwrap_or_else(|| c.host_id.clone()),
                c.status.to_string(),
                c.health.to_string(),
                or_dash(c.user_id.as_ref()),
                until(c.expires_at.as_ref()),
                age(&c.created_at),
            ]);
        }
        table.render()
    })
}

/// A cluster's fields, nodes and service URLs.
pub fn show(c: &types::Cluster) -> String {
    let mut nodes: Vec<&String> = c.containers.keys().chain(c.service_urls.keys()).collect();
    nodes.sort();
    nodes.dedup();
    let mut node_table = Table::new(&["NODE", "CONTAINER", "STOPPED"]);
    for node in &nodes {
        node_table.row(vec![
            (*node).clone(),
            or_dash(c.containers.get(*node)),
            c.stopped_nodes.contains(node).to_string(),
        ]);
    }
    let mut urls = Table::new(&["NODE", "PORT", "URL"]);
    for node in &nodes {
        if let Some(ports) = c.service_urls.get(*node) {
            let mut ports: Vec<_> = ports.iter().collect();
            ports.sort();
            for (port, url) in ports {
                urls.row(vec![(*node).clone(), port.clone(), url.clone()]);
            }
        }
    }
    let reason = |status: Option<&String>| status.map(|r| format!(" ({r})")).unwrap_or_default();
    let mut fields = Fields::new();
    fields
        .field("Name", c.name.clone())
        .field("ID", c.id.clone())
        .field("Blueprint", c.blueprint.clone())
        .field("Host", c.host_id.clone())
        .field(
            "Status",
            format!("{}{}", c.status, reason(c.status_reason.as_ref())),
        )
        .field(
            "Health",
            format!("{}{}", c.health, reason(c.health_reason.as_ref())),
        )
        .field("User", or_dash(c.user_id.as_ref()))
        .field("Applied", or_dash(c.applied_at.as_ref().map(output::time)))
        .field(
            "Expires",
            match &c.expires_at {
                Some(at) => format!("{} ({})", output::time(at), until(Some(at))),
                None => "-".into(),
            },
        )
        .field(
            "Metadata",
            pairs(c.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
        .field(
            "Created",
            format!("{} ({} ago)", output::time(&c.created_at), age(&c.created_at)),
        )
        .section("Nodes", &node_table)
        .section("Service URLs", &urls);
    fields.render()
}
