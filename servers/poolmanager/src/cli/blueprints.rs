//! `poolmanager blueprints ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::api::{types, Connection, Server};
use super::fail::Failure;
use super::input::{self, body, every, PAGE};
use super::output::{self, age, or_dash, pairs, Fields, Table};

const EXAMPLES: &str = "\
Examples:
  poolmanager blueprints add -f demo.toml
  poolmanager blueprints list
  poolmanager blueprints show demo -o yaml
  poolmanager blueprints update demo --min-ready 3 --unset max_total
  poolmanager blueprints update demo --host-selector zone=eu --placement packed --release-mode reset
  poolmanager blueprints update demo --windows office-hours.json
  poolmanager blueprints update demo --rollout recreate --rollout-per-minute 10
  poolmanager blueprints version demo -f nodes-v2.toml
  poolmanager blueprints rollout demo
  poolmanager blueprints rm demo

A blueprint file (TOML; the same fields as JSON for a .json name):
  name = \"demo\"
  labels = { consensus = \"pbft\" }
  min_ready = 1

  [[nodes]]
  name = \"vp0\"
  image = \"poolmanager/testnode:latest\"
  ports = { web = \"80/tcp\" }

A version file holds `nodes` (and `api_port`) as above, nothing else.";

/// The blueprints commands.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct Blueprints {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: BlueprintsCommand,
}

#[derive(Debug, Subcommand)]
enum BlueprintsCommand {
    /// List the blueprints, by name.
    #[command(visible_alias = "ls")]
    List,
    /// Show a blueprint and its nodes.
    Show {
        /// The blueprint's name.
        name: String,
    },
    /// Add a blueprint from a file (admin).
    Add {
        /// The blueprint: TOML for a `.toml` name, JSON otherwise; `-`: standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Change a blueprint's policies (admin): its quota, ready buffer, time windows,
    /// placement and release mode. What is not given stays as it is.
    #[command(visible_alias = "patch")]
    Update(Update),
    /// Make a new version of a blueprint's nodes from a file (admin): free clusters of
    /// earlier versions are made anew as its rollout says, applied ones after release.
    Version {
        /// The blueprint's name.
        name: String,
        /// `nodes` and `api_port`: TOML for a `.toml` name, JSON otherwise; `-`:
        /// standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Show how many clusters run each version of a blueprint.
    Rollout {
        /// The blueprint's name.
        name: String,
    },
    /// Remove a blueprint no cluster uses (admin).
    #[command(visible_alias = "delete")]
    Rm {
        /// The blueprint's name.
        name: String,
    },
}

/// `blueprints update`: each flag one field of the spec's `BlueprintPatch`.
#[derive(Debug, Args)]
struct Update {
    /// The blueprint's name.
    name: String,
    /// Most clusters applied at once, over all users.
    #[arg(long, value_name = "N")]
    max_applied: Option<u32>,
    /// Free clusters to keep ready, at least.
    #[arg(long, value_name = "N")]
    min_ready: Option<u32>,
    /// Free clusters to keep as a percentage of the applied ones.
    #[arg(long, value_name = "PERCENT")]
    min_ready_percent: Option<u32>,
    /// Most clusters of the blueprint, free and applied.
    #[arg(long, value_name = "N")]
    max_total: Option<u32>,
    /// A policy to remove: max_applied, min_ready, min_ready_percent, max_total or
    /// buffer_windows (repeatable).
    #[arg(long, value_name = "POLICY")]
    unset: Vec<String>,
    /// A label hosts must carry to hold its clusters (repeatable; replaces the
    /// selector).
    #[arg(long, value_name = "KEY=VALUE", value_parser = input::pair, conflicts_with = "any_host")]
    host_selector: Vec<(String, String)>,
    /// Admit every host again (an empty selector).
    #[arg(long)]
    any_host: bool,
    /// How new clusters are laid out: spread or packed.
    #[arg(long, value_name = "STRATEGY")]
    placement: Option<String>,
    /// What a release does: recreate or reset.
    #[arg(long, value_name = "MODE")]
    release_mode: Option<String>,
    /// How free clusters move to a new version: recreate or on_release.
    #[arg(long, value_name = "STRATEGY")]
    rollout: Option<String>,
    /// Most free clusters of earlier versions made anew in a minute.
    #[arg(long, value_name = "N")]
    rollout_per_minute: Option<u32>,
    /// Time windows with other buffer values, from a JSON file holding a list of
    /// `BufferWindow`s (`[]` removes them); `-`: standard input.
    #[arg(long, value_name = "FILE")]
    windows: Option<PathBuf>,
}

impl Update {
    /// The patch, checked against the spec's `BlueprintPatch` before it is sent.
    fn patch(&self) -> Result<types::BlueprintPatch, Failure> {
        let mut fields = serde_json::Map::new();
        input::set(&mut fields, "max_applied", self.max_applied);
        input::set(&mut fields, "min_ready", self.min_ready);
        input::set(&mut fields, "min_ready_percent", self.min_ready_percent);
        input::set(&mut fields, "max_total", self.max_total);
        let mut unset = self.unset.clone();
        if let Some(file) = &self.windows {
            match input::json_file(file)? {
                // An empty list is not sent (the client leaves empty lists out): unset.
                serde_json::Value::Array(list) if list.is_empty() => unset.push("buffer_windows".into()),
                windows => input::set(&mut fields, "buffer_windows", Some(windows)),
            }
        }
        if !unset.is_empty() {
            input::set(&mut fields, "unset", Some(unset));
        }
        if self.any_host {
            fields.insert("host_selector".into(), serde_json::json!({}));
        }
        input::set_map(&mut fields, "host_selector", &self.host_selector);
        input::set(&mut fields, "placement", self.placement.clone());
        input::set(&mut fields, "release_mode", self.release_mode.clone());
        input::set(&mut fields, "rollout", self.rollout.clone());
        input::set(&mut fields, "rollout_per_minute", self.rollout_per_minute);
        if fields.is_empty() {
            return Err(Failure::usage(
                "nothing to change: give at least one policy (see --help)",
            ));
        }
        body("policies", fields)
    }
}

pub async fn run(args: Blueprints) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    match args.command {
        BlueprintsCommand::List => list(&server).await,
        BlueprintsCommand::Show { name } => {
            let bp = server
                .call(server.client.get_blueprint().name(name).send())
                .await?;
            output::print(server.output, &bp, || show(&bp))
        }
        BlueprintsCommand::Add { file } => {
            let new: types::NewBlueprint = body("blueprint", input::object_file(&file)?)?;
            let bp = server
                .call(server.client.create_blueprint().body(new).send())
                .await?;
            output::print(server.output, &bp, || {
                format!("blueprint {} added: {} nodes", bp.name, bp.nodes.len())
            })
        }
        BlueprintsCommand::Update(update) => {
            let patch = update.patch()?;
            let bp = server
                .call(
                    server
                        .client
                        .update_blueprint()
                        .name(update.name.clone())
                        .body(patch)
                        .send(),
                )
                .await?;
            output::print(server.output, &bp, || show(&bp))
        }
        BlueprintsCommand::Version { name, file } => {
            let new: types::NewBlueprintVersion = body("version", input::object_file(&file)?)?;
            let bp = server
                .call(
                    server
                        .client
                        .create_blueprint_version()
                        .name(name)
                        .body(new)
                        .send(),
                )
                .await?;
            output::print(server.output, &bp, || {
                format!(
                    "blueprint {} is at version {}: {} nodes",
                    bp.name,
                    bp.version,
                    bp.nodes.len()
                )
            })
        }
        BlueprintsCommand::Rollout { name } => {
            let status = server
                .call(server.client.get_blueprint_rollout().name(name).send())
                .await?;
            output::print(server.output, &status, || rollout(&status))
        }
        BlueprintsCommand::Rm { name } => {
            server
                .call(server.client.delete_blueprint().name(name.clone()).send())
                .await?;
            let gone = serde_json::json!({"deleted": name});
            output::print(server.output, &gone, || format!("blueprint {name} removed"))
        }
    }
}

async fn list(server: &Server) -> Result<(), Failure> {
    let blueprints = every(|offset| async move {
        let page = server
            .call(server.client.list_blueprints().limit(PAGE).offset(offset).send())
            .await?;
        Ok((page.items, page.total))
    })
    .await?;
    output::print(server.output, &blueprints, || {
        let mut table = Table::new(&[
            "NAME",
            "NODES",
            "LABELS",
            "MAX-APPLIED",
            "MIN-READY",
            "MAX-TOTAL",
            "AGE",
        ]);
        for bp in &blueprints {
            table.row(vec![
                bp.name.clone(),
                bp.nodes.len().to_string(),
                labels(&bp.labels),
                or_dash(bp.max_applied),
                min_ready(bp),
                or_dash(bp.max_total),
                age(&bp.created_at),
            ]);
        }
        table.render()
    })
}

fn labels(labels: &types::Labels) -> String {
    pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn min_ready(bp: &types::Blueprint) -> String {
    match (bp.min_ready, bp.min_ready_percent) {
        (None, None) => "-".into(),
        (Some(n), None) => n.to_string(),
        (None, Some(p)) => format!("{p}%"),
        (Some(n), Some(p)) => format!("{n}, {p}%"),
    }
}

/// A selector in words: `any` when empty.
fn or_any(selector: String) -> String {
    if selector == "-" {
        "any".into()
    } else {
        selector
    }
}

/// Time windows in words: `mon,fri 08:00-18:30 min_ready=5; ...`, or `-`.
fn windows(list: &[types::BufferWindow]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|w| {
            let days: Vec<String> = w.days.iter().map(ToString::to_string).collect();
            let values: Vec<String> = [
                ("min_ready", w.min_ready),
                ("min_ready_percent", w.min_ready_percent),
                ("max_total", w.max_total),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some(format!("{k}={}", v?)))
            .collect();
            let days = if days.is_empty() {
                "every day".to_owned()
            } else {
                days.join(",")
            };
            format!("{days} {}-{} {}", *w.from, *w.until, values.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A rollout status: one row per version, then whether it is complete.
fn rollout(status: &types::RolloutStatus) -> String {
    let mut table = Table::new(&["VERSION", "MADE", "READY", "APPLIED", "OTHER", "TOTAL"]);
    for v in &status.versions {
        let c = &v.clusters;
        table.row(vec![
            if v.version == status.version {
                format!("{} (current)", v.version)
            } else {
                v.version.to_string()
            },
            or_dash(v.created_at.as_ref().map(output::time)),
            c.ready.to_string(),
            c.applied.to_string(),
            (v.total - c.ready - c.applied).to_string(),
            v.total.to_string(),
        ]);
    }
    let summary = if status.complete {
        format!("every cluster runs version {}", status.version)
    } else {
        format!("{} clusters of earlier versions left", status.outdated)
    };
    format!("{}\n{summary}", table.render().trim_end())
}

fn show(bp: &types::Blueprint) -> String {
    let mut nodes = Table::new(&["NAME", "IMAGE", "PORTS", "COMMAND", "HEALTH CHECK"]);
    for node in &bp.nodes {
        nodes.row(vec![
            node.name.to_string(),
            node.image.to_string(),
            node.ports
                .as_ref()
                .map(|p| pairs(p.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
                .unwrap_or_else(|| "-".into()),
            if node.command.is_empty() {
                "-".into()
            } else {
                node.command
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            or_dash(node.health.as_ref().map(|h| h.command.to_string())),
        ]);
    }
    let mut fields = Fields::new();
    fields
        .field("Name", bp.name.clone())
        .field("Labels", labels(&bp.labels))
        .field("API port", or_dash(bp.api_port.as_ref()))
        .field("Max applied", or_dash(bp.max_applied))
        .field("Min ready", min_ready(bp))
        .field("Max total", or_dash(bp.max_total))
        .field("Time windows", windows(&bp.buffer_windows))
        .field("Hosts", or_any(labels(&bp.host_selector)))
        .field("Placement", bp.placement.to_string())
        .field("On release", bp.release_mode.to_string())
        .field(
            "Version",
            format!("{} (made {})", bp.version, output::time(&bp.version_created_at)),
        )
        .field(
            "Rollout",
            format!("{}, at most {} a minute", bp.rollout, bp.rollout_per_minute),
        )
        .field(
            "Created",
            format!("{} ({} ago)", output::time(&bp.created_at), age(&bp.created_at)),
        )
        .section("Nodes", &nodes);
    fields.render()
}
