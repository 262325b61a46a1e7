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
  poolmanager blueprints rm demo

A blueprint file (TOML; the same fields as JSON for a .json name):
  name = \"demo\"
  labels = { consensus = \"pbft\" }
  min_ready = 1

  [[nodes]]
  name = \"vp0\"
  image = \"poolmanager/testnode:latest\"
  ports = { web = \"80/tcp\" }";

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
    /// Remove a blueprint no cluster uses (admin).
    #[command(visible_alias = "delete")]
    Rm {
        /// The blueprint's name.
        name: String,
    },
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
        .field(
            "Created",
            format!("{} ({} ago)", output::time(&bp.created_at), age(&bp.created_at)),
        )
        .section("Nodes", &nodes);
    fields.render()
}
