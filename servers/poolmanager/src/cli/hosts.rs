//! `poolmanager hosts ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Map;

use super::api::{types, Connection, Server};
use super::fail::{Exit, Failure};
use super::input::{self, body, every, pair, set, set_map, PAGE};
use super::output::{self, age, or_dash, pairs, Fields, Table};
use super::progress::{self, Wait};

const EXAMPLES: &str = "\
Examples:
  poolmanager hosts add --name local --endpoint unix:///var/run/docker.sock --capacity 4
  poolmanager hosts add --name lab --kind swarm --endpoint tcp://10.0.0.5:2376 -f lab-tls.toml
  poolmanager hosts list
  poolmanager hosts update local --capacity 8 --autofill true
  poolmanager hosts fill local --blueprint demo
  poolmanager hosts rm local --force

A host is named by its id or its name.";

/// The hosts commands.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct Hosts {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: HostsCommand,
}

#[derive(Debug, Subcommand)]
enum HostsCommand {
    /// List the hosts, by name.
    #[command(visible_alias = "ls")]
    List,
    /// Show a host: status, last error, engine facts, settings.
    Show {
        /// The host's id or name.
        host: String,
    },
    /// Add a host; the server probes its engine first.
    Add(AddHost),
    /// Change a host's settings; what is not given stays.
    Update(UpdateHost),
    /// Remove a host: its clusters and everything PoolManager made on its engine.
    #[command(visible_alias = "delete")]
    Rm {
        /// The host's id or name.
        host: String,
        /// Remove it even while clusters on it are applied (their leases end).
        #[arg(long)]
        force: bool,
    },
    /// Fill a host to its capacity, following the operation to its end.
    Fill {
        /// The host's id or name.
        host: String,
        /// Fill with clusters of this blueprint only [default: spread over every
        /// blueprint].
        #[arg(long)]
        blueprint: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove a host's free clusters (ready, stopped, failed).
    Clean {
        /// The host's id or name.
        host: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove everything PoolManager made on a host and fill it again.
    Reset {
        /// The host's id or name.
        host: String,
        #[command(flatten)]
        wait: Wait,
    },
}

/// The fields of a host, from flags or a file.
#[derive(Debug, Args)]
struct HostFields {
    /// Its name, unique in the pool.
    #[arg(long)]
    name: Option<String>,
    /// Most clusters it may hold.
    #[arg(long)]
    capacity: Option<u32>,
    /// Address used in the clusters' service URLs [default: from the endpoint].
    #[arg(long)]
    public_address: Option<String>,
    /// Label for placement, KEY=VALUE (repeat it; replaces all labels).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = pair)]
    labels: Vec<(String, String)>,
    /// Hand its clusters to users.
    #[arg(long, value_name = "BOOL")]
    schedulable: Option<bool>,
    /// Keep it filled to capacity.
    #[arg(long, value_name = "BOOL")]
    autofill: Option<bool>,
    /// Read the body (JSON, or TOML for a `.toml` name; `-`: standard input) from a
    /// file, with every field the API takes (`tls`, `log`, ...); flags override it.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
}

impl HostFields {
    fn fields(&self) -> Result<Map<String, serde_json::Value>, Failure> {
        let mut fields = match &self.file {
            Some(path) => input::object_file(path)?,
            None => Map::new(),
        };
        set(&mut fields, "name", self.name.clone());
        set(&mut fields, "capacity", self.capacity);
        set(&mut fields, "public_address", self.public_address.clone());
        set_map(&mut fields, "labels", &self.labels);
        set(&mut fields, "schedulable", self.schedulable);
        set(&mut fields, "autofill", self.autofill);
        Ok(fields)
    }
}

#[derive(Debug, Args)]
struct AddHost {
    /// `docker` (one engine), `swarm` (a Swarm manager) or `sim` (a simulated engine)
    /// [default: docker].
    #[arg(long)]
    kind: Option<String>,
    /// The engine: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2376`, `sim://NAME`.
    #[arg(long)]
    endpoint: Option<String>,
    #[command(flatten)]
    host: HostFields,
}

#[derive(Debug, Args)]
struct UpdateHost {
    /// The host's id or name.
    host: String,
    #[command(flatten)]
    fields: HostFields,
}

pub async fn run(args: Hosts) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    match args.command {
        HostsCommand::List => list(&server).await,
        HostsCommand::Show { host } => {
            let host = find(&server, &host).await?;
            output::print(server.output, &host, || show(&host))
        }
        HostsCommand::Add(add) => {
            let mut fields = add.host.fields()?;
            set(&mut fields, "kind", add.kind);
            set(&mut fields, "endpoint", add.endpoint);
            let new: types::NewHost = body("host", fields)?;
            let host = server.call(server.client.create_host().body(new).send()).await?;
            output::print(server.output, &host, || {
                format!("host {} added: {} ({})", host.name, host.id, host.status)
            })
        }
        HostsCommand::Update(update) => {
            let fields = update.fields.fields()?;
            if fields.is_empty() {
                return Err(Failure::usage("nothing to change: give a flag or --file"));
            }
            let patch: types::HostPatch = body("host change", fields)?;
            let id = find(&server, &update.host).await?.id;
            let host = server
                .call(server.client.update_host().id(id).body(patch).send())
                .await?;
            output::print(server.output, &host, || show(&host))
        }
        HostsCommand::Rm { host, force } => {
            let host = find(&server, &host).await?;
            let mut request = server.client.delete_host().id(host.id.clone());
            if force {
                request = request.force(true);
            }
            server.call(request.send()).await?;
            let gone = serde_json::json!({"deleted": host.id});
            output::print(server.output, &gone, || format!("host {} removed", host.name))
        }
        HostsCommand::Fill {
            host,
            blueprint,
            wait,
        } => {
            let host = find(&server, &host).await?;
            let mut fields = Map::new();
            set(&mut fields, "blueprint", blueprint);
            let fill: types::Fill = body("fill", fields)?;
            let started = server
                .call(server.client.fill_host().id(host.id.clone()).body(fill).send())
                .await?;
            progress::finish(&server, &started, wait, &format!("fill of host {}", host.name)).await
        }
        HostsCommand::Clean { host, wait } => {
            let host = find(&server, &host).await?;
            let started = server
                .call(server.client.clean_host().id(host.id.clone()).send())
                .await?;
            progress::finish(&server, &started, wait, &format!("clean of host {}", host.name)).await
        }
        HostsCommand::Reset { host, wait } => {
            let host = find(&server, &host).await?;
            let started = server
                .call(server.client.reset_host().id(host.id.clone()).send())
                .await?;
            progress::finish(&server, &started, wait, &format!("reset of host {}", host.name)).await
        }
    }
}

/// Every host, by name.
pub async fn all(server: &Server) -> Result<Vec<types::Host>, Failure> {
    every(|offset| async move {
        let page = server
            .call(server.client.list_hosts().limit(PAGE).offset(offset).send())
            .await?;
        Ok((page.items, page.total))
    })
    .await
}

/// The host whose id, or else name, is `key`.
pub async fn find(server: &Server, key: &str) -> Result<types::Host, Failure> {
    match server.call(server.client.get_host().id(key).send()).await {
        Err(failure) if failure.exit == Exit::NotFound => all(server)
            .await?
            .into_iter()
            .find(|h| h.name == key)
            .ok_or_else(|| Failure::not_found(format!("no host has the id or name {key:?}"))),
        found => found,
    }
}

async fn list(server: &Server) -> Result<(), Failure> {
    let hosts = all(server).await?;
    output::print(server.output, &hosts, || {
        let mut table = Table::new(&[
            "NAME",
            "ID",
            "KIND",
            "STATUS",
            "CAPACITY",
            "SCHEDULABLE",
            "AUTOFILL",
            "ENDPOINT",
            "AGE",
        ]);
        for h in &hosts {
            table.row(vec![
                h.name.clone(),
                h.id.clone(),
                h.kind.to_string(),
                h.status.to_string(),
                h.capacity.to_string(),
                h.schedulable.to_string(),
                h.autofill.to_string(),
                h.endpoint.clone(),
                age(&h.created_at),
            ]);
        }
        table.render()
    })
}

fn show(h: &types::Host) -> String {
    let facts = &h.facts;
    let mut fields = Fields::new();
    fields
        .field("Name", h.name.clone())
        .field("ID", h.id.clone())
        .field("Kind", h.kind.to_string())
        .field("Endpoint", h.endpoint.clone())
        .field("Public address", h.public_address.clone())
        .field("Status", h.status.to_string())
        .field("Last seen", or_dash(h.last_seen.as_ref().map(output::time)))
        .field("Last error", or_dash(h.last_error.as_ref()))
        .field("Capacity", h.capacity.to_string())
        .field("Schedulable", h.schedulable.to_string())
        .field("Autofill", h.autofill.to_string())
        .field(
            "Labels",
            pairs(h.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
        .field(
            "Log",
            or_dash(h.log.as_ref().map(|log| {
                let options = log
                    .options
                    .as_ref()
                    .map(|o| pairs(o.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
                format!("{} {}", log.driver.as_str(), options.unwrap_or_default())
            })),
        )
        .field(
            "TLS",
            or_dash(
                h.tls
                    .as_ref()
                    .map(|t| format!("verify={} client_certificate={}", t.verify, t.client_certificate)),
            ),
        )
        .field(
            "Engine",
            format!(
                "version {}, {} CPUs, {} MiB, {} containers{}",
                facts.version,
                facts.cpus,
                facts.memory_bytes / (1024 * 1024),
                facts.containers,
                if facts.swarm_manager {
                    ", swarm manager"
                } else {
                    ""
                },
            ),
        )
        .field(
            "Created",
            format!("{} ({} ago)", output::time(&h.created_at), age(&h.created_at)),
        );
    fields.render()
}
