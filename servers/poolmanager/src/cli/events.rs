//! `poolmanager events`: the server's event stream, one line per change.

use clap::Args;
use futures::StreamExt;

use super::api::{types, Connection};
use super::fail::{Exit, Failure};
use super::output::{self, Format};

pub const EXAMPLES: &str = "\
Examples:
  poolmanager events
  poolmanager events -o json | jq -c 'select(.kind == \"applied\")'
  poolmanager events --count 1      # wait for the next change, print it, exit

It runs until interrupted (or --count events came); when the server ends the stream
it exits with status 5. After a `lagged` event, read the state again.";

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: Connection,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

pub async fn run(args: EventsArgs) -> Result<(), Failure> {
    let server = args.conn.connect()?;
    let stream = server.call(server.client.stream_events().send()).await?;
    let mut bytes = stream.into_inner();
    let mut parser = Sse::default();
    let mut seen = 0;
    if args.count == Some(0) {
        return Ok(());
    }
    if server.output == Format::Table {
        println!("{}", line("TIME", "KIND", "OBJECT", "DETAIL"));
    }
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("the event stream from {} broke: {e}", server.url),
            )
        })?;
        for data in parser.feed(&chunk) {
            let event: types::Event = serde_json::from_str(&data).map_err(|e| {
                Failure::new(
                    Exit::Failed,
                    format!("an event does not match the spec's Event: {e}: {data}"),
                )
            })?;
            print(server.output, &event)?;
            seen += 1;
            if args.count.is_some_and(|count| seen >= count) {
                return Ok(());
            }
        }
    }
    Err(Failure::new(
        Exit::Unreachable,
        format!("the server at {} ended the event stream", server.url),
    ))
}

fn print(format: Format, event: &types::Event) -> Result<(), Failure> {
    match format {
        // One object per line, for `jq -c` and friends.
        Format::Json => {
            let text = serde_json::to_string(event)
                .map_err(|e| Failure::new(Exit::Failed, format!("printing JSON: {e}")))?;
            println!("{text}");
            Ok(())
        }
        Format::Yaml => {
            println!("---");
            output::print(format, event, String::new)
        }
        Format::Table => {
            let (object, detail) = describe(event);
            println!(
                "{}",
                line(
                    &output::time(&event.at),
                    &event.kind.to_string(),
                    &object,
                    &detail
                )
            );
            Ok(())
        }
    }
}

fn line(time: &str, kind: &str, object: &str, detail: &str) -> String {
    format!("{time:<21} {kind:<16} {:<40} {detail}", output::cut(object, 40))
        .trim_end()
        .to_owned()
}

/// What an event is about, and what it says of it.
fn describe(event: &types::Event) -> (String, String) {
    use types::EventKind as K;
    let cluster = |c: &types::Cluster| {
        let user = c
            .user_id
            .as_ref()
            .map(|u| format!(" user={u}"))
            .unwrap_or_default();
        (
            format!("cluster/{}", c.name),
            format!("{} {}{user}", c.status, c.health),
        )
    };
    let id = || event.id.clone().unwrap_or_default();
    match (&event.kind, &event.host, &event.cluster, &event.operation) {
        (K::Host, Some(h), _, _) => (
            format!("host/{}", h.name),
            match &h.last_error {
                Some(error) => format!("{} {}", h.status, output::cut(error, 60)),
                None => h.status.to_string(),
            },
        ),
        (K::HostDeleted, ..) => (format!("host/{}", id()), "deleted".into()),
        (K::ClusterDeleted, ..) => (format!("cluster/{}", id()), "deleted".into()),
        (K::Released, _, Some(c), _) => {
            let (object, _) = cluster(c);
            let user = event.user_id.clone().unwrap_or_default();
            let reason = event.reason.map(|r| r.to_string()).unwrap_or_default();
            (object, format!("user={user} reason={reason}"))
        }
        (K::Cluster | K::Applied, _, Some(c), _) => cluster(c),
        (K::Operation, _, _, Some(op)) => (
            format!("operation/{}", op.id),
            format!("{} {} {}/{}", op.kind, op.status, op.done, op.total),
        ),
        (K::Lagged, ..) => (
            "-".into(),
            format!(
                "missed {} events; read the state again",
                output::or_dash(event.missed)
            ),
        ),
        _ => ("-".into(), String::new()),
    }
}

/// Server-Sent Events, parsed as far as the API uses them: each event's `data`.
#[derive(Default)]
struct Sse {
    pending: Vec<u8>,
    data: Vec<String>,
}

impl Sse {
    /// Takes the next bytes of the stream; gives the data of every event they end.
    fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                if !self.data.is_empty() {
                    events.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(value) = text.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
            // `event:`, `id:`, `retry:` and `:` comments (keep-alives) say nothing the
            // data does not.
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_their_data_whatever_the_chunks() {
        let mut sse = Sse::default();
        assert!(sse.feed(b": keep-alive\n\nevent: host\nda").is_empty());
        assert!(sse.feed(b"ta: {\"a\":1}\r\n").is_empty());
        assert_eq!(
            sse.feed(b"\nevent: x\ndata: 1\ndata: 2\n\n"),
            vec!["{\"a\":1}", "1\n2"]
        );
    }
}
