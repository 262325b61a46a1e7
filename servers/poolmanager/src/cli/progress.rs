//! Following a fill, clean or reset to its end, with a progress bar.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::api::{types, Server};
use super::fail::{Exit, Failure};
use super::output::{self, Format};

/// How often the operation is read again.
const POLL: Duration = Duration::from_millis(250);

/// Whether a command that starts an operation waits for its end.
#[derive(Debug, Clone, Copy, Args)]
pub struct Wait {
    /// Print the operation's id and return at once instead of following it.
    #[arg(long)]
    no_wait: bool,
}

/// After an operation started: prints its id (`--no-wait`), or follows it and
/// prints how it ended; an operation that did not succeed is a failure.
pub async fn finish(
    server: &Server,
    started: &types::OperationRef,
    wait: Wait,
    what: &str,
) -> Result<(), Failure> {
    if wait.no_wait {
        return output::print(server.output, started, || {
            format!("{what} started: operation {}", started.operation_id)
        });
    }
    let op = follow(server, &started.operation_id, what).await?;
    ended(server.output, &op, what)
}

/// Prints an operation that ended; one that did not succeed is a failure.
pub fn ended(format: Format, op: &types::Operation, what: &str) -> Result<(), Failure> {
    if op.status == types::OperationStatus::Succeeded {
        return output::print(format, op, || {
            format!(
                "{what} succeeded: {}/{} done (operation {})",
                op.done, op.total, op.id
            )
        });
    }
    if format != Format::Table {
        output::print(format, op, String::new)?;
    }
    Err(Failure::new(
        Exit::Failed,
        format!(
            "{what} {}: {}/{} done{} (operation {})",
            op.status,
            op.done,
            op.total,
            op.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
            op.id
        ),
    ))
}

/// Reads the operation until it is no longer running, showing its progress on
/// stderr: a bar on a terminal, a line per step elsewhere (logs, CI).
pub async fn follow(server: &Server, id: &str, what: &str) -> Result<types::Operation, Failure> {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::new(0)
            .with_style(style)
            .with_message(what.to_owned())
    } else {
        ProgressBar::hidden()
    };
    let mut shown = None;
    loop {
        let op = server.call(server.client.get_operation().id(id).send()).await?;
        bar.set_length(u64::from(op.total));
        bar.set_position(u64::from(op.done));
        if !terminal && shown != Some((op.done, op.total)) {
            eprintln!("{what}: {}/{}", op.done, op.total);
            shown = Some((op.done, op.total));
        }
        if op.status != types::OperationStatus::Running {
            bar.finish_and_clear();
            return Ok(op);
        }
        tokio::time::sleep(POLL).await;
    }
}
