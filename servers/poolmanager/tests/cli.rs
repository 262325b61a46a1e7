//! The operator CLI: the real `poolmanager` binary run as a process against a real
//! server (simulated engines; one session on a real Docker engine), checking what it
//! prints and its exit status.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use common::serve::ServeProcess;
use common::{unique, ADMIN, USER};

/// What one run of the CLI did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A server and the CLI pointed at it, with a config directory of its own so that
/// no developer's client config is read.
struct Cli {
    serve: ServeProcess,
    url: String,
    token: String,
    home: tempfile::TempDir,
    _db: tempfile::TempDir,
}

impl Cli {
    /// A server on a fresh SQLite file, without reconciler, with `env` beside.
    async fn start(env: &[(&str, &str)]) -> Cli {
        let db = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", db.path().join("pool.db").display());
        let mut env = env.to_vec();
        env.push(("POOLMANAGER_RECONCILE_INTERVAL", "0"));
        let serve = ServeProcess::start(&database, &env).await;
        Cli {
            url: format!("http://{}", serve.addr),
            serve,
            token: ADMIN.into(),
            home: tempfile::tempdir().expect("temp dir"),
            _db: db,
        }
    }

    /// A server whose simulated engines take `create_ms` per cluster, one at a time,
    /// so that a fill's progress can be seen.
    async fn start_slow(create_ms: u64) -> Cli {
        let config = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(config.path(), format!("[sim.latency]\ncreate_ms = {create_ms}\n"))
            .expect("write config");
        let path = config.path().display().to_string();
        let cli = Cli::start(&[
            ("POOLMANAGER_CONFIG_FILE", &path),
            ("POOLMANAGER_HOST_PARALLELISM", "1"),
        ])
        .await;
        drop(config);
        cli
    }

    /// The CLI with the URL and token in the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare(args);
        command
            .env("POOLMANAGER_URL", &self.url)
            .env("POOLMANAGER_TOKEN", &self.token);
        command
    }

    /// The CLI with no URL, token or CA given.
    fn bare(&self, args: &[&str]) -> Command {
        poolmanager(self.home.path(), args)
    }

    async fn run(&self, args: &[&str]) -> Run {
        output(self.command(args)).await
    }

    /// Runs and asserts success; gives stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert_eq!(run.code, 0, "poolmanager {args:?} failed: {run:#?}");
        run.stdout
    }

    /// Runs with `-o json`, asserts success; gives what it printed.
    async fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["-o", "json"]].concat();
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("poolmanager {args:?} printed no JSON ({e}): {stdout}"))
    }

    /// Runs and asserts it fails with `code`; gives stderr.
    async fn fails(&self, code: i32, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert_eq!(run.code, code, "poolmanager {args:?}: {run:#?}");
        assert!(run.stderr.starts_with("poolmanager: ") || code == 2, "{run:#?}");
        run.stderr
    }

    /// Adds a simulated host that does not fill itself; gives its name.
    async fn add_sim_host(&self, capacity: u32) -> String {
        let name = unique("sim");
        let endpoint = format!("sim://{}", unique("e"));
        let stdout = self
            .ok(&[
                "hosts",
                "add",
                "--name",
                &name,
                "--kind",
                "sim",
                "--endpoint",
                &endpoint,
                "--capacity",
                &capacity.to_string(),
                "--autofill",
                "false",
            ])
            .await;
        assert!(stdout.starts_with(&format!("host {name} added: ")), "{stdout}");
        name
    }

    /// Adds a blueprint of two nodes from a TOML file; gives its name.
    async fn add_blueprint(&self) -> String {
        let name = unique("bp");
        let file = self.home.path().join(format!("{name}.toml"));
        std::fs::write(&file, blueprint_toml(&name, "busybox")).expect("write blueprint");
        let stdout = self
            .ok(&["blueprints", "add", "-f", &file.display().to_string()])
            .await;
        assert_eq!(stdout.trim(), format!("blueprint {name} added: 2 nodes"));
        name
    }

    /// Fills `host` through the CLI and waits for the end.
    async fn fill(&self, host: &str) {
        let stdout = self.ok(&["hosts", "fill", host]).await;
        assert!(stdout.contains("succeeded"), "{stdout}");
    }
}

/// The CLI with no URL, token or CA given, and `home` for its config directory.
fn poolmanager(home: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poolmanager"));
    command
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .env_remove("POOLMANAGER_URL")
        .env_remove("POOLMANAGER_TOKEN")
        .env_remove("POOLMANAGER_TOKEN_FILE")
        .env_remove("POOLMANAGER_CA_FILE")
        .env_remove("POOLMANAGER_CLIENT_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn output(mut command: Command) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the CLI ends within 2 minutes")
        .expect("run poolmanager");
    Run {
        code: out.status.code().expect("an exit status, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn blueprint_toml(name: &str, image: &str) -> String {
    format!(
        "name = \"{name}\"\nlabels = {{ consensus = \"pbft\" }}\n\n\
         [[nodes]]\nname = \"vp0\"\nimage = \"{image}\"\nports = {{ web = \"80/tcp\" }}\n\n\
         [[nodes]]\nname = \"vp1\"\nimage = \"{image}\"\nports = {{ web = \"80/tcp\" }}\n"
    )
}

/// The row of a table whose first cell is `name`, split on runs of spaces.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

/// The header of a table: its first line's cells.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

// ---------------------------------------------------------------------------------
// hosts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_add_list_show_update_and_rm() {
    let cli = Cli::start(&[]).await;
    let name = cli.add_sim_host(3).await;

    let table = cli.ok(&["hosts", "list"]).await;
    assert_eq!(
        header(&table),
        [
            "NAME",
            "ID",
            "KIND",
            "STATUS",
            "CAPACITY",
            "SCHEDULABLE",
            "AUTOFILL",
            "ENDPOINT",
            "AGE"
        ]
    );
    let cells = row(&table, &name);
    assert_eq!(&cells[2..7], ["sim", "active", "3", "true", "false"], "{table}");
    let id = cells[1].to_owned();

    let listed = cli.json(&["hosts", "list"]).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());

    // By id or by name, in every format.
    let shown = cli.ok(&["hosts", "show", &name]).await;
    assert_eq!(row(&shown, "ID:")[1], id, "{shown}");
    assert!(row(&shown, "Engine:")[2].starts_with("sim"), "{shown}");
    let by_id = cli.json(&["hosts", "show", &id]).await;
    assert_eq!(by_id["name"], name.as_str());
    let yaml = cli.ok(&["hosts", "show", &id, "-o", "yaml"]).await;
    assert!(yaml.contains(&format!("name: {name}")), "{yaml}");

    let updated = cli
        .json(&[
            "hosts",
            "update",
            &name,
            "--capacity",
            "5",
            "--schedulable",
            "false",
            "--label",
            "zone=a",
        ])
        .await;
    assert_eq!(updated["capacity"], 5);
    assert_eq!(updated["schedulable"], false);
    assert_eq!(updated["labels"], json!({"zone": "a"}));
    cli.fails(2, &["hosts", "update", &name]).await;

    // A file gives the whole body; flags override it.
    let file = cli.home.path().join("host.toml");
    let other = unique("sim");
    std::fs::write(
        &file,
        format!("name = \"x\"\nkind = \"sim\"\nendpoint = \"sim://{other}\"\ncapacity = 2\nautofill = false\nlabels = {{ rack = \"r1\" }}\n"),
    )
    .expect("write host file");
    let added = cli
        .json(&[
            "hosts",
            "add",
            "-f",
            &file.display().to_string(),
            "--name",
            &other,
        ])
        .await;
    assert_eq!(added["name"], other.as_str());
    assert_eq!(added["labels"], json!({"rack": "r1"}));
    assert_eq!(added["capacity"], 2);

    // The server's refusals, with their exit statuses.
    let taken = cli
        .fails(
            4,
            &[
                "hosts",
                "add",
                "--name",
                &name,
                "--kind",
                "sim",
                "--endpoint",
                "sim://again",
                "--capacity",
                "1",
            ],
        )
        .await;
    assert!(taken.contains("(conflict)"), "{taken}");
    // The spec's rules are checked before anything is sent.
    let bad = cli
        .fails(
            2,
            &[
                "hosts",
                "add",
                "--name",
                "no spaces allowed",
                "--kind",
                "sim",
                "--endpoint",
                "sim://x",
                "--capacity",
                "1",
            ],
        )
        .await;
    assert!(bad.contains("invalid host"), "{bad}");
    // ... and the server's own checks too (400 invalid_input).
    let refused = cli
        .fails(
            2,
            &[
                "hosts",
                "add",
                "--name",
                &unique("sim"),
                "--kind",
                "docker",
                "--endpoint",
                "sim://x",
                "--capacity",
                "1",
            ],
        )
        .await;
    assert!(refused.contains("(invalid_input)"), "{refused}");

    let removed = cli.ok(&["hosts", "rm", &name]).await;
    assert_eq!(removed.trim(), format!("host {name} removed"));
    let gone = cli.fails(3, &["hosts", "show", &name]).await;
    assert!(
        gone.contains(&format!("no host has the id or name \"{name}\"")),
        "{gone}"
    );
    cli.fails(3, &["hosts", "rm", &id]).await;
    cli.ok(&["hosts", "rm", &other, "--force"]).await;
    assert_eq!(cli.ok(&["hosts", "list"]).await.trim(), "No resources found.");
    assert_eq!(cli.json(&["hosts", "list"]).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_fill_clean_and_reset_follow_their_operation_to_the_end() {
    let cli = Cli::start_slow(300).await;
    let host = cli.add_sim_host(3).await;
    let bp = cli.add_blueprint().await;

    let run = cli.run(&["hosts", "fill", &host, "--blueprint", &bp]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout
            .starts_with(&format!("fill of host {host} succeeded: 3/3 done (operation ")),
        "{run:#?}"
    );
    // Off a terminal the progress is a line per step, on stderr.
    let steps: Vec<&str> = run.stderr.lines().collect();
    assert!(steps.len() >= 2, "the progress is followed: {run:#?}");
    assert_eq!(
        steps.last().copied(),
        Some(format!("fill of host {host}: 3/3").as_str())
    );
    assert!(
        steps
            .iter()
            .all(|s| s.starts_with(&format!("fill of host {host}: "))),
        "{steps:?}"
    );
    let ready = cli
        .json(&["clusters", "list", "--host", &host, "--status", "ready"])
        .await;
    assert_eq!(ready.as_array().map(Vec::len), Some(3), "{ready}");

    let cleaned = cli.ok(&["hosts", "clean", &host]).await;
    assert!(
        cleaned.starts_with(&format!("clean of host {host} succeeded: 3/3 done")),
        "{cleaned}"
    );
    assert_eq!(cli.json(&["clusters", "list", "--host", &host]).await, json!([]));

    // --no-wait gives the operation; `operations show --follow` follows it.
    let started = cli.json(&["hosts", "reset", &host, "--no-wait"]).await;
    let op = started["operation_id"].as_str().expect("operation id").to_owned();
    let followed = cli.ok(&["operations", "show", &op, "--follow"]).await;
    // A reset counts its removal as one step more.
    assert!(
        followed.starts_with(&format!("reset of host {host} succeeded: 4/4 done")),
        "{followed}"
    );
    let ready = cli
        .json(&["clusters", "list", "--host", &host, "--status", "ready"])
        .await;
    assert_eq!(
        ready.as_array().map(Vec::len),
        Some(3),
        "a reset fills again: {ready}"
    );

    // operations list and show
    let table = cli.ok(&["operations", "list"]).await;
    assert_eq!(
        header(&table),
        ["ID", "KIND", "HOST", "STATUS", "DONE", "ERROR", "AGE"]
    );
    let cells = row(&table, &op);
    assert_eq!(
        &cells[1..5],
        ["reset", host.as_str(), "succeeded", "4/4"],
        "{table}"
    );
    let kinds: Vec<Value> = cli
        .json(&["operations", "list", "--host", &host])
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("reset"), json!("clean"), json!("fill")],
        "newest first"
    );
    let fills = cli.json(&["operations", "list", "--kind", "fill"]).await;
    assert_eq!(fills.as_array().map(Vec::len), Some(1), "{fills}");
    let shown = cli.ok(&["operations", "show", &op]).await;
    assert_eq!(row(&shown, "Status:")[1], "succeeded", "{shown}");
    assert_eq!(row(&shown, "Done:")[1], "4/4", "{shown}");
    assert_eq!(row(&shown, "Host:")[1], host, "{shown}");
    cli.fails(3, &["operations", "show", "00000000-0000-0000-0000-000000000000"])
        .await;
    cli.fails(2, &["operations", "list", "--kind", "refill"]).await;

    // Unknown hosts, and a reset refused while a cluster is applied.
    cli.fails(3, &["hosts", "fill", "no-such-host"]).await;
    let unknown = cli
        .fails(2, &["hosts", "fill", &host, "--blueprint", "no-such-bp"])
        .await;
    assert!(unknown.contains("(invalid_input)"), "{unknown}");
    cli.ok(&["apply", "--user", "ann", "--blueprint", &bp]).await;
    let busy = cli.fails(4, &["hosts", "reset", &host]).await;
    assert!(busy.contains("(conflict)"), "{busy}");
}

// ---------------------------------------------------------------------------------
// blueprints

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blueprints_add_list_show_and_rm() {
    let cli = Cli::start(&[]).await;
    let from_toml = cli.add_blueprint().await;
    let from_json = unique("bp");
    let file = cli.home.path().join("bp.json");
    let body = json!({"name": from_json, "min_ready": 1, "max_total": 4,
                      "nodes": [{"name": "ca", "image": "busybox", "command": ["httpd", "-f"]}]});
    std::fs::write(&file, body.to_string()).expect("write blueprint");
    let added = cli
        .json(&["blueprints", "add", "--file", &file.display().to_string()])
        .await;
    assert_eq!(added["name"], from_json.as_str());
    assert_eq!(added["min_ready"], 1);

    let table = cli.ok(&["blueprints", "list"]).await;
    assert_eq!(
        header(&table),
        [
            "NAME",
            "NODES",
            "LABELS",
            "MAX-APPLIED",
            "MIN-READY",
            "MAX-TOTAL",
            "AGE"
        ]
    );
    assert_eq!(
        &row(&table, &from_toml)[1..6],
        ["2", "consensus=pbft", "-", "-", "-"],
        "{table}"
    );
    assert_eq!(
        &row(&table, &from_json)[1..6],
        ["1", "-", "-", "1", "4"],
        "{table}"
    );
    let names: Vec<Value> = cli
        .json(&["blueprints", "list"])
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    let mut sorted = vec![json!(from_toml), json!(from_json)];
    sorted.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(names, sorted, "by name");

    let shown = cli.ok(&["blueprints", "show", &from_toml]).await;
    assert_eq!(row(&shown, "Labels:")[1], "consensus=pbft", "{shown}");
    assert_eq!(&row(&shown, "vp1")[1..3], ["busybox", "web=80/tcp"], "{shown}");
    let shown = cli.ok(&["blueprints", "show", &from_json]).await;
    assert_eq!(
        &row(&shown, "ca")[1..5],
        ["busybox", "-", "httpd", "-f"],
        "{shown}"
    );
    let yaml = cli.ok(&["blueprints", "show", &from_json, "-o", "yaml"]).await;
    assert!(yaml.contains("max_total: 4"), "{yaml}");

    // Bad files are refused before anything is sent.
    std::fs::write(
        &file,
        json!({"name": unique("bp"), "nodes": [], "colour": "red"}).to_string(),
    )
    .expect("write");
    let unknown = cli
        .fails(2, &["blueprints", "add", "-f", &file.display().to_string()])
        .await;
    assert!(unknown.contains("colour"), "{unknown}");
    std::fs::write(&file, "{ not json").expect("write");
    cli.fails(2, &["blueprints", "add", "-f", &file.display().to_string()])
        .await;
    cli.fails(2, &["blueprints", "add", "-f", "/no/such/file.toml"])
        .await;
    let taken = cli
        .fails(
            4,
            &[
                "blueprints",
                "add",
                "-f",
                &cli.home
                    .path()
                    .join(format!("{from_toml}.toml"))
                    .display()
                    .to_string(),
            ],
        )
        .await;
    assert!(taken.contains("(conflict)"), "{taken}");

    // Policies changed: each flag one field, read back; bad ones refused.
    let windows = cli.home.path().join("windows.json");
    std::fs::write(
        &windows,
        json!([{"days": ["mon", "fri"], "from": "08:00", "until": "18:30", "min_ready": 5}]).to_string(),
    )
    .expect("write windows");
    let windows = windows.display().to_string();
    let changed = cli
        .json(&[
            "blueprints",
            "update",
            &from_json,
            "--min-ready",
            "2",
            "--unset",
            "max_total",
            "--host-selector",
            "zone=eu",
            "--placement",
            "packed",
            "--release-mode",
            "reset",
            "--windows",
            &windows,
        ])
        .await;
    assert_eq!(changed["min_ready"], 2, "{changed}");
    assert!(changed.get("max_total").is_none(), "unset: {changed}");
    assert_eq!(changed["host_selector"], json!({"zone": "eu"}), "{changed}");
    assert_eq!(
        (&changed["placement"], &changed["release_mode"]),
        (&json!("packed"), &json!("reset"))
    );
    assert_eq!(changed["buffer_windows"][0]["min_ready"], 5, "{changed}");
    let shown = cli.ok(&["blueprints", "show", &from_json]).await;
    assert_eq!(row(&shown, "Placement:")[1], "packed", "{shown}");
    assert_eq!(row(&shown, "Hosts:")[1], "zone=eu", "{shown}");
    assert!(shown.contains("mon,fri 08:00-18:30 min_ready=5"), "{shown}");
    let none = cli.home.path().join("no-windows.json");
    std::fs::write(&none, "[]").expect("write windows");
    let none = none.display().to_string();
    let back = cli
        .json(&[
            "blueprints",
            "update",
            &from_json,
            "--any-host",
            "--release-mode",
            "recreate",
            "--windows",
            &none,
        ])
        .await;
    assert_eq!(back["host_selector"], json!({}), "{back}");
    assert_eq!(
        back["buffer_windows"],
        json!([]),
        "[] removes the windows: {back}"
    );
    cli.fails(2, &["blueprints", "update", &from_json]).await;
    cli.fails(
        2,
        &["blueprints", "update", &from_json, "--placement", "scattered"],
    )
    .await;
    let above = cli
        .fails(
            2,
            &[
                "blueprints",
                "update",
                &from_json,
                "--min-ready",
                "9",
                "--max-total",
                "3",
            ],
        )
        .await;
    assert!(above.contains("max_total"), "{above}");
    cli.fails(3, &["blueprints", "update", &unique("none"), "--min-ready", "1"])
        .await;

    // A new version from a TOML file of nodes: the filled cluster stays at version 1
    // (on_release) and the rollout says so.
    let host = cli.add_sim_host(1).await;
    cli.ok(&["hosts", "fill", &host, "--blueprint", &from_json]).await;
    let rolling = cli
        .json(&[
            "blueprints",
            "update",
            &from_json,
            "--rollout",
            "on_release",
            "--rollout-per-minute",
            "12",
        ])
        .await;
    assert_eq!(
        (&rolling["rollout"], &rolling["rollout_per_minute"]),
        (&json!("on_release"), &json!(12)),
        "{rolling}"
    );
    let nodes = cli.home.path().join("nodes-v2.toml");
    std::fs::write(
        &nodes,
        "api_port = \"vp0.web\"\n\n[[nodes]]\nname = \"vp0\"\nimage = \"busybox:v2\"\nports = { web = \"80/tcp\" }\n",
    )
    .expect("write nodes");
    let nodes = nodes.display().to_string();
    assert_eq!(
        cli.ok(&["blueprints", "version", &from_json, "-f", &nodes])
            .await
            .trim(),
        format!("blueprint {from_json} is at version 2: 1 nodes")
    );
    let shown = cli.ok(&["blueprints", "show", &from_json]).await;
    assert!(shown.contains("on_release, at most 12 a minute"), "{shown}");
    let rollout = cli.ok(&["blueprints", "rollout", &from_json]).await;
    assert_eq!(row(&rollout, "2")[..2], ["2", "(current)"], "{rollout}");
    assert_eq!(
        row(&rollout, "1").last(),
        Some(&"1"),
        "one cluster at version 1: {rollout}"
    );
    assert!(
        rollout.contains("1 clusters of earlier versions left"),
        "{rollout}"
    );
    let status = cli.json(&["blueprints", "rollout", &from_json]).await;
    assert_eq!(
        (&status["outdated"], &status["complete"]),
        (&json!(1), &json!(false)),
        "{status}"
    );
    let bad = cli.home.path().join("nodes-bad.json");
    std::fs::write(&bad, r#"{"nodes": [], "api_port": "vp0.web"}"#).expect("write nodes");
    cli.fails(
        2,
        &[
            "blueprints",
            "version",
            &from_json,
            "-f",
            &bad.display().to_string(),
        ],
    )
    .await;
    cli.fails(3, &["blueprints", "version", &unique("none"), "-f", &nodes])
        .await;

    // In use: refused; then removed.
    let in_use = cli.fails(4, &["blueprints", "rm", &from_json]).await;
    assert!(in_use.contains("(conflict)"), "{in_use}");
    cli.ok(&["hosts", "rm", &host]).await;
    assert_eq!(
        cli.ok(&["blueprints", "rm", &from_json]).await.trim(),
        format!("blueprint {from_json} removed")
    );
    cli.ok(&["blueprints", "delete", &from_toml]).await;
    cli.fails(3, &["blueprints", "show", &from_toml]).await;
    cli.fails(3, &["blueprints", "rm", &from_toml]).await;
}

// ---------------------------------------------------------------------------------
// clusters, apply, release

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_list_show_start_stop_restart_renew_and_rm() {
    let cli = Cli::start(&[("POOLMANAGER_DEFAULT_TTL_SECONDS", "600")]).await;
    let host = cli.add_sim_host(3).await;
    let bp = cli.add_blueprint().await;
    cli.fill(&host).await;

    let table = cli.ok(&["clusters", "list"]).await;
    assert_eq!(
        header(&table),
        [
            "NAME",
            "ID",
            "BLUEPRINT",
            "HOST",
            "STATUS",
            "HEALTH",
            "USER",
            "EXPIRES",
            "AGE"
        ]
    );
    let applied = cli.json(&["apply", "--user", "ann", "--blueprint", &bp]).await;
    let name = applied["name"].as_str().expect("name").to_owned();
    let table = cli.ok(&["clusters", "list", "--status", "applied"]).await;
    assert_eq!(table.lines().count(), 2, "one applied: {table}");
    let cells = row(&table, &name);
    assert_eq!(
        &cells[2..7],
        [bp.as_str(), host.as_str(), "applied", "ok", "ann"],
        "{table}"
    );
    assert!(
        cells[7] == "in" && cells[8].ends_with('m'),
        "the lease ends in some minutes: {table}"
    );
    let free = cli
        .json(&[
            "clusters", "list", "--status", "ready", "--sort", "name", "--desc",
        ])
        .await;
    let free: Vec<String> = free
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(free.len(), 2);
    assert!(free[0] > free[1], "--desc reverses the order: {free:?}");
    let one = cli.json(&["clusters", "list", "--limit", "1"]).await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(cli.json(&["clusters", "list", "--user", "ben"]).await, json!([]));
    cli.fails(2, &["clusters", "list", "--status", "sleeping"]).await;

    let shown = cli.ok(&["clusters", "show", &name]).await;
    assert_eq!(row(&shown, "User:")[1], "ann", "{shown}");
    let urls = shown
        .split("Service URLs:")
        .nth(1)
        .expect("a service URL section");
    assert_eq!(&row(urls, "vp0")[1..2], ["web"], "{shown}");
    assert!(row(urls, "vp1")[2].starts_with("http://127.0.0.1:"), "{shown}");
    let by_id = cli
        .json(&["clusters", "show", applied["id"].as_str().expect("id")])
        .await;
    assert_eq!(by_id["service_urls"], applied["service_urls"]);

    // A free cluster stopped whole is `stopped`; started, `ready` again.
    let target = free[0].as_str();
    let stopped = cli.ok(&["clusters", "stop", target]).await;
    assert_eq!(
        stopped.trim(),
        format!("cluster {target} stopped (cluster stopped)")
    );
    assert_eq!(cli.json(&["clusters", "show", target]).await["status"], "stopped");
    let started = cli.json(&["clusters", "start", target]).await;
    assert_eq!(started["status"], "ready");
    let restarted = cli.ok(&["clusters", "restart", &name, "--node", "vp0"]).await;
    assert_eq!(
        restarted.trim(),
        format!("node vp0 of cluster {name} restarted (cluster applied)")
    );
    cli.fails(3, &["clusters", "restart", &name, "--node", "vp9"])
        .await;

    // renew: only an applied cluster's lease.
    let before = cli.json(&["clusters", "show", &name]).await["expires_at"].clone();
    let renewed = cli.ok(&["clusters", "renew", &name, "--ttl", "7200"]).await;
    assert!(
        renewed.starts_with(&format!("lease of cluster {name} ends ")) && renewed.contains("(in "),
        "{renewed}"
    );
    let after = cli.json(&["clusters", "show", &name]).await["expires_at"].clone();
    assert!(after.as_str() > before.as_str(), "{before} -> {after}");
    cli.fails(4, &["clusters", "renew", target]).await;

    // rm: refused while applied unless forced.
    let busy = cli.fails(4, &["clusters", "rm", &name]).await;
    assert!(busy.contains("(conflict)"), "{busy}");
    assert_eq!(
        cli.ok(&["clusters", "rm", &name, "--force"]).await.trim(),
        format!("cluster {name} deleted")
    );
    cli.fails(3, &["clusters", "show", &name]).await;
    cli.fails(3, &["clusters", "rm", "no-such-cluster"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_release() {
    let cli = Cli::start(&[]).await;
    let host = cli.add_sim_host(3).await;
    let bp = cli.add_blueprint().await;
    cli.fill(&host).await;

    let shown = cli
        .ok(&[
            "apply",
            "--user",
            "ann",
            "--blueprint",
            &bp,
            "--metadata",
            "ticket=OPS-1",
        ])
        .await;
    assert_eq!(row(&shown, "Status:")[1], "applied", "{shown}");
    assert_eq!(row(&shown, "Metadata:")[1], "ticket=OPS-1", "{shown}");
    assert!(shown.contains("Service URLs:"), "{shown}");
    let again = cli.json(&["apply", "--user", "ann", "--blueprint", &bp]).await;
    let first = again["id"].as_str().expect("id").to_owned();
    assert_eq!(
        again["metadata"],
        json!({"ticket": "OPS-1"}),
        "the same cluster back"
    );
    let second = cli
        .json(&[
            "apply",
            "--user",
            "ann",
            "--label",
            "consensus=pbft",
            "--allow-multiple",
            "--ttl",
            "60",
        ])
        .await;
    assert_ne!(second["id"], first.as_str());
    assert!(second["expires_at"].is_string(), "{second}");
    let third = cli.json(&["apply", "--user", "ben", "--blueprint", &bp]).await;

    // Nothing ready: 7; unknown blueprint: 3; invalid: 2.
    let exhausted = cli.fails(7, &["apply", "--user", "cy", "--blueprint", &bp]).await;
    assert!(exhausted.contains("(pool_exhausted)"), "{exhausted}");
    cli.fails(3, &["apply", "--user", "cy", "--blueprint", "no-such-bp"])
        .await;
    cli.fails(2, &["apply", "--user", "has space", "--blueprint", &bp])
        .await;
    cli.fails(2, &["apply", "--blueprint", &bp]).await;

    // release one cluster by name, then a user's.
    let name = third["name"].as_str().expect("name");
    let one = cli.ok(&["release", "--cluster", name]).await;
    assert_eq!(
        one.trim(),
        format!("released 1 cluster: {}", third["id"].as_str().expect("id"))
    );
    let mine = cli.json(&["release", "--user", "ann"]).await;
    let mut released: Vec<&str> = mine["released"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    released.sort();
    let mut expected = vec![first.as_str(), second["id"].as_str().expect("id")];
    expected.sort();
    assert_eq!(released, expected);
    assert_eq!(
        cli.ok(&["release", "--user", "ann"]).await.trim(),
        "nothing to release"
    );
    cli.fails(4, &["release", "--cluster", name]).await;
    cli.fails(2, &["release"]).await;
    assert_eq!(
        cli.json(&["clusters", "list", "--status", "applied"]).await,
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_clusters_per_status_host_and_blueprint() {
    let cli = Cli::start(&[]).await;
    let host = cli.add_sim_host(3).await;
    let bp = cli.add_blueprint().await;
    cli.fill(&host).await;
    cli.ok(&["apply", "--user", "ann", "--blueprint", &bp]).await;

    let stats = cli.json(&["stats"]).await;
    assert_eq!(stats["clusters"]["ready"], 2, "{stats}");
    assert_eq!(stats["clusters"]["applied"], 1, "{stats}");
    assert_eq!(stats["hosts_by_status"]["active"], 1);
    let table = cli.ok(&["stats"]).await;
    assert_eq!(
        &row(&table, "Hosts:")[1..],
        ["1", "active,", "0", "inactive"],
        "{table}"
    );
    let per_host = table.split("Per host:").nth(1).expect("per host");
    assert_eq!(&row(per_host, &host)[1..5], ["active", "3", "2", "1"], "{table}");
    let per_bp = table.split("Per blueprint:").nth(1).expect("per blueprint");
    assert_eq!(&row(per_bp, &bp)[1..3], ["2", "1"], "{table}");
    // The user token may not read the stats.
    let mut user = cli.command(&["stats"]);
    user.env("POOLMANAGER_TOKEN", USER);
    let denied = output(user).await;
    assert_eq!(denied.code, 6, "{denied:#?}");
    assert!(denied.stderr.contains("(forbidden)"), "{denied:#?}");
}

// ---------------------------------------------------------------------------------
// events

/// Runs `events` with `args` until it ends, changing `host` every 300 ms meanwhile
/// (so that it sees changes however long it takes to subscribe); gives its stdout.
async fn events_while_changing(cli: &Cli, host: &str, args: &[&str]) -> String {
    let mut command = cli.command(&[&["events"], args].concat());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start events");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let reader = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = stdout.next_line().await {
            lines.push(line);
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut capacity = 1;
    let status = loop {
        if let Some(status) = child.try_wait().expect("events runs") {
            break status;
        }
        assert!(Instant::now() < deadline, "events did not end");
        capacity = capacity % 5 + 1;
        cli.ok(&["hosts", "update", host, "--capacity", &capacity.to_string()])
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(status.success(), "events: {status}");
    reader.await.expect("read events").join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_pools_changes() {
    let cli = Cli::start(&[]).await;
    let host = cli.add_sim_host(1).await;

    let json_lines = events_while_changing(&cli, &host, &["--count", "3", "-o", "json"]).await;
    let events: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 3, "one JSON object per line: {json_lines}");
    for event in &events {
        assert_eq!(event["kind"], "host", "{event}");
        assert_eq!(event["host"]["name"], host.as_str(), "{event}");
        assert!(event["at"].is_string());
    }

    let table = events_while_changing(&cli, &host, &["--count", "1"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one event: {table}");
    assert_eq!(header(&table), ["TIME", "KIND", "OBJECT", "DETAIL"]);
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[1..4],
        ["host", format!("host/{host}").as_str(), "active"],
        "{table}"
    );

    // The user token may not follow events.
    let mut user = cli.command(&["events", "--count", "1"]);
    user.env("POOLMANAGER_TOKEN", USER);
    assert_eq!(output(user).await.code, 6);
}

// ---------------------------------------------------------------------------------
// connection, config file, errors, help and completions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_token_come_from_flags_env_or_the_config_file_and_errors_have_their_status() {
    let cli = Cli::start(&[]).await;
    let host = cli.add_sim_host(1).await;

    // Flags, with the server's root or the API's URL.
    let api_url = format!("{}/api/v1/", cli.url);
    let listed =
        output(cli.bare(&["hosts", "list", "--url", &api_url, "--token", ADMIN, "-o", "json"])).await;
    assert_eq!(listed.code, 0, "{listed:#?}");
    assert!(listed.stdout.contains(&host));

    // A token file, and the config file at its default place (relative paths from it).
    let dir = cli.home.path().join("poolmanager");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("admin-token"), format!("{ADMIN}\n")).expect("token file");
    std::fs::write(
        dir.join("client.toml"),
        format!("url = \"{}\"\ntoken_file = \"admin-token\"\n", cli.url),
    )
    .expect("config");
    let from_file = output(cli.bare(&["hosts", "show", &host])).await;
    assert_eq!(from_file.code, 0, "{from_file:#?}");
    // Flags and the environment come before the file.
    let mut wrong = cli.bare(&["hosts", "list"]);
    wrong.env("POOLMANAGER_TOKEN", "wrong-token");
    let denied = output(wrong).await;
    assert_eq!(denied.code, 6, "{denied:#?}");
    assert!(
        denied.stderr.contains("(unauthorized)") && denied.stderr.contains("--token"),
        "{denied:#?}"
    );
    let token_file = dir.join("admin-token").display().to_string();
    let named = output(cli.bare(&["hosts", "list", "--token-file", &token_file, "--url", &cli.url])).await;
    assert_eq!(named.code, 0, "{named:#?}");
    // A file named explicitly must exist and parse.
    let mut missing = cli.bare(&["hosts", "list"]);
    missing.env("POOLMANAGER_CLIENT_CONFIG", "/no/such/client.toml");
    assert_eq!(output(missing).await.code, 2);
    std::fs::write(dir.join("client.toml"), "server = \"x\"\n").expect("config");
    let bad = output(cli.bare(&["hosts", "list"])).await;
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.stderr.contains("unknown field `server`"), "{bad:#?}");
    std::fs::remove_file(dir.join("client.toml")).expect("remove config");

    // No token at all: 6, saying how to give one.
    let mut none = cli.bare(&["hosts", "list"]);
    none.env("POOLMANAGER_URL", &cli.url);
    let none = output(none).await;
    assert_eq!(none.code, 6, "{none:#?}");

    // Nothing listening: 5.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let mut unreachable = cli.command(&["hosts", "list"]);
    unreachable.env("POOLMANAGER_URL", format!("http://{closed}"));
    let unreachable = output(unreachable).await;
    assert_eq!(unreachable.code, 5, "{unreachable:#?}");
    assert!(
        unreachable.stderr.contains("cannot talk to the server at"),
        "{unreachable:#?}"
    );

    // Usage: clap's 2.
    assert_eq!(cli.run(&["hosts", "frobnicate"]).await.code, 2);
    assert_eq!(cli.run(&["hosts", "add", "--capacity", "many"]).await.code, 2);
    let mut bad_url = cli.command(&["hosts", "list"]);
    bad_url.env("POOLMANAGER_URL", "ftp://example.com");
    assert_eq!(output(bad_url).await.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_trusted_through_a_ca_file() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let tls = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut cli = Cli::start(&[("POOLMANAGER_TLS_CERT", &cert), ("POOLMANAGER_TLS_KEY", &key)]).await;
    cli.url = format!("https://localhost:{}", cli.serve.addr.port());

    let untrusted = cli.run(&["hosts", "list"]).await;
    assert_eq!(
        untrusted.code, 5,
        "the self-signed certificate is not trusted: {untrusted:#?}"
    );
    let trusted = cli.run(&["hosts", "list", "--ca-file", &cert]).await;
    assert_eq!(trusted.code, 0, "{trusted:#?}");
    assert_eq!(trusted.stdout.trim(), "No resources found.");
    let not_pem = cli.home.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let refused = cli
        .run(&["hosts", "list", "--ca-file", &not_pem.display().to_string()])
        .await;
    assert_eq!(refused.code, 2, "{refused:#?}");
}

#[tokio::test]
async fn help_has_examples_and_completions_cover_every_command() {
    let home = tempfile::tempdir().expect("temp dir");
    let ok = |args: &'static [&'static str]| {
        let command = poolmanager(home.path(), args);
        async move {
            let run = output(command).await;
            assert_eq!(run.code, 0, "poolmanager {args:?}: {run:#?}");
            run.stdout
        }
    };
    let help = ok(&["--help"]).await;
    for command in [
        "hosts",
        "blueprints",
        "clusters",
        "apply",
        "release",
        "operations",
        "stats",
        "events",
        "completions",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "{command} in --help: {help}"
        );
    }
    assert!(help.contains("Exit status: 0 done"), "{help}");
    for group in [
        &["hosts", "--help"][..],
        &["blueprints", "--help"],
        &["clusters", "--help"],
        &["apply", "--help"],
        &["release", "--help"],
        &["operations", "--help"],
        &["events", "--help"],
    ] {
        let help = ok(group).await;
        assert!(help.contains("Examples:\n  poolmanager "), "{group:?}: {help}");
    }
    let bash = ok(&["completions", "bash"]).await;
    assert!(bash.contains("_poolmanager()"), "a bash completion function");
    for word in ["hosts", "fill", "blueprints", "renew", "--output"] {
        assert!(bash.contains(word), "{word} completes");
    }
    let zsh = ok(&["completions", "zsh"]).await;
    assert!(
        zsh.starts_with("#compdef poolmanager"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    assert_eq!(
        output(poolmanager(home.path(), &["completions", "tcsh"]))
            .await
            .code,
        2
    );
}

// ---------------------------------------------------------------------------------
// a real engine

/// The operator's session on a real Docker engine: host, blueprint, fill with
/// progress, apply, the cluster serving, release, removal leaving nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_on_a_real_docker_engine() {
    let Some(endpoint) = common::engine().await else {
        return;
    };
    let cli = Cli::start(&[]).await;
    let host = unique("docker");
    let added = cli
        .json(&[
            "hosts",
            "add",
            "--name",
            &host,
            "--endpoint",
            &endpoint,
            "--capacity",
            "2",
            "--autofill",
            "false",
        ])
        .await;
    assert_eq!(added["kind"], "docker");
    let host_id = added["id"].as_str().expect("id").to_owned();
    let bp = unique("bp");
    let file = cli.home.path().join("demo.toml");
    std::fs::write(&file, blueprint_toml(&bp, &common::image())).expect("write blueprint");
    cli.ok(&["blueprints", "add", "-f", &file.display().to_string()])
        .await;

    let fill = cli.run(&["hosts", "fill", &host]).await;
    assert_eq!(fill.code, 0, "{fill:#?}");
    assert!(fill.stdout.contains("succeeded: 2/2 done"), "{fill:#?}");
    assert!(fill.stderr.trim_end().ends_with(": 2/2"), "{fill:#?}");

    let cluster = cli.json(&["apply", "--user", "alice", "--blueprint", &bp]).await;
    assert_eq!(cluster["status"], "applied");
    let url = cluster["service_urls"]["vp0"]["web"]
        .as_str()
        .expect("vp0 web URL")
        .to_owned();
    let answer = reqwest::get(&url)
        .await
        .expect("the node answers")
        .text()
        .await
        .expect("body");
    assert_eq!(answer.trim(), "ok", "{url}");
    let shown = cli
        .ok(&["clusters", "show", cluster["name"].as_str().expect("name")])
        .await;
    assert!(shown.contains(&url), "{shown}");

    let released = cli.json(&["release", "--user", "alice"]).await;
    assert_eq!(released["released"], json!([cluster["id"]]));
    let table = cli.ok(&["stats"]).await;
    assert!(table.contains(&host), "{table}");

    cli.ok(&["hosts", "rm", &host, "--force"]).await;
    cli.ok(&["blueprints", "rm", &bp]).await;
    assert_nothing_left(&endpoint, &host_id, &cli).await;
}

/// Waits until the engine holds no container or network labelled with `host_id`.
async fn assert_nothing_left(endpoint: &str, host_id: &str, cli: &Cli) {
    use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
    use bollard::{Docker, API_DEFAULT_VERSION};
    let docker = match endpoint.strip_prefix("unix://") {
        Some(socket) => Docker::connect_with_unix(socket, 60, API_DEFAULT_VERSION),
        None => Docker::connect_with_http(&endpoint.replace("tcp://", "http://"), 60, API_DEFAULT_VERSION),
    }
    .expect("docker client");
    let label = format!("{}={host_id}", poolcore::driver::LABEL_HOST);
    let filters = std::collections::HashMap::from([("label", vec![label])]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .expect("list containers");
        let networks = docker
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .expect("list networks");
        if containers.is_empty() && networks.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left on the engine: {containers:?} {networks:?}; server log: {:#?}",
            cli.serve.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
