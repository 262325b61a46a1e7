//! The writer: the one connection that writes, on a thread of its own, committing the
//! writes that wait for it together.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use poolcore::{Error, Result};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

use crate::error::SqliteError;

/// Writes committed in one transaction at most: enough to share a commit among every
/// request a busy server has in flight, few enough that none waits long.
const BATCH_MAX: usize = 256;

/// Pages of log past which the checkpointer starts the log again (see [`LogRestart`]):
/// 64 MiB of 4 KiB pages.
pub(crate) const RESTART_PAGES: i64 = 16_384;

/// Pages of log past which the writer checkpoints it itself, as SQLite's automatic
/// checkpoint does: only when the checkpointer cannot start the log again, because
/// another process's writer keeps writing to it.
pub(crate) const WRITER_CHECKPOINT_PAGES: i64 = 4 * RESTART_PAGES;

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Longest the checkpointer waits for the writer to hold: a batch is far shorter, so
/// a writer that does not hold by then is idle.
const HOLD_WAIT: Duration = Duration::from_millis(50);

/// Longest the writer holds for the checkpointer, whatever happens to it.
const HOLD_MAX: Duration = Duration::from_secs(1);

/// The one connection that writes, on its own thread.
///
/// Every write waits in a queue. The thread takes all that wait (up to [`BATCH_MAX`]),
/// runs each in a savepoint of one `BEGIN IMMEDIATE` transaction, and commits once:
/// a write that fails rolls back to its savepoint and fails alone; a commit that
/// fails fails them all. Each caller hears of its write only after the commit, so a
/// write answered is a write stored, as with a transaction of its own. Sharing the
/// commit is what makes writes cheap under load: one commit, one write of each
/// changed page to the log, for many writes.
pub(crate) struct Writer {
    jobs: Fed<Box<dyn Job>>,
}

/// How the checkpointer lets the log start again from its beginning without the
/// writer checkpointing.
///
/// Only a write transaction that begins when every page of the log is copied into
/// the database file starts the log again; under writes that never pause, a
/// checkpoint on another thread never finds the log copied to its end, and the log
/// grows without bound. A checkpoint on the writer's thread would bound it, but
/// stops every write for its two `fsync`s (5–20 ms each on a virtual disk), and
/// SQLite's automatic one runs every 1,000 pages. So the checkpointer copies the log
/// beside the writer, and when the log is longer than [`RESTART_PAGES`] asks the
/// writer to hold between two batches while it copies what the writer added since;
/// the writer's next transaction then starts the log again. The writer stops once
/// per [`RESTART_PAGES`], for one short checkpoint, instead of at every 1,000 pages.
#[derive(Debug, Default)]
pub(crate) struct LogRestart {
    phase: Mutex<Phase>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Writing,
    /// The checkpointer waits for the writer to hold.
    Wanted,
    /// The writer holds until the checkpointer is done.
    Held,
}

impl LogRestart {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A plain value: consistent whatever a panicking holder did.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// On the writer, between batches: holds while the checkpointer asks it to.
    fn hold_if_wanted(&self) {
        let mut phase = self.phase();
        if *phase != Phase::Wanted {
            return;
        }
        *phase = Phase::Held;
        self.changed.notify_all();
        let (mut phase, _) = self
            .changed
            .wait_timeout_while(phase, HOLD_MAX, |p| *p == Phase::Held)
            .unwrap_or_else(|e| e.into_inner());
        *phase = Phase::Writing;
    }

    /// On the checkpointer: runs `f` while the writer holds (or is idle).
    fn with_writer_held<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut phase = self.phase();
        *phase = Phase::Wanted;
        let (phase, _) = self
            .changed
            .wait_timeout_while(phase, HOLD_WAIT, |p| *p == Phase::Wanted)
            .unwrap_or_else(|e| e.into_inner());
        // An idle writer that wakes meanwhile still finds `Wanted` and holds.
        drop(phase);
        let out = f();
        *self.phase() = Phase::Writing;
        self.changed.notify_all();
        out
    }
}

/// A thread fed through a channel. Dropping it closes the channel and waits for the
/// thread to end, so that the file is let go of when the store is dropped: another
/// store (or process) opening it next does not find it locked by a connection still
/// closing.
struct Fed<T> {
    /// `None` once dropped: the thread ends when the channel closes.
    sender: Option<mpsc::Sender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Fed<T> {
    /// Starts the thread `name` running `body` on the receiving end.
    fn spawn(name: String, body: impl FnOnce(mpsc::Receiver<T>) + Send + 'static) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || body(receiver))?;
        Ok(Fed {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// The sending end, `None` once dropped.
    fn sender(&self) -> Option<&mpsc::Sender<T>> {
        self.sender.as_ref()
    }
}

impl<T> Drop for Fed<T> {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn`; a write waits at most `busy_timeout` for
    /// another process to let go of the database.
    /// It holds between batches when `restart` asks it to.
    pub(crate) fn start(
        conn: Connection,
        name: &str,
        busy_timeout: Duration,
        restart: Arc<LogRestart>,
    ) -> std::io::Result<Writer> {
        let jobs = Fed::spawn(format!("sqlite-writer {name}"), move |queue| {
            BUSY_TRIES.set(busy_timeout.as_micros().div_ceil(BUSY_POLL.as_micros()));
            if let Err(e) = conn.busy_handler(Some(wait_while_busy)) {
                tracing::warn!(error = %e, "sqlite: no busy handler of its own; keeping the busy timeout");
            }
            write_loop(&conn, &queue, &restart)
        })?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in the next batch and returns its result once the batch is committed.
    pub(crate) async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Write {
            op,
            f: Some(f),
            outcome: None,
            reply,
            // Created here, the span is a child of the caller's (the pool operation's).
            span: tracing::debug_span!("sqlite", op),
        };
        let stopped = || Error::unavailable("sqlite store", format!("{op}: the writer thread stopped"));
        let jobs = self.jobs.sender().ok_or_else(stopped)?;
        jobs.send(Box::new(job)).map_err(|_| stopped())?;
        match answer.await.map_err(|_| stopped())? {
            Ok(result) => result,
            // A panic in a query is a bug: let it reach the caller as a panic.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// How often a writer that finds the database locked by another process tries again.
///
/// SQLite's own busy timeout sleeps longer and longer (up to 100 ms) between tries,
/// while a writer committing batches takes the lock again within microseconds: two
/// busy processes sharing a file would take turns in bursts of a whole second. Trying
/// often lets each in between the other's batches.
const BUSY_POLL: Duration = Duration::from_micros(200);

thread_local! {
    /// Tries of the writer thread's busy handler before it gives up.
    static BUSY_TRIES: std::cell::Cell<u128> = const { std::cell::Cell::new(0) };
}

/// The writer's busy handler: waits [`BUSY_POLL`] and tries again, until the busy
/// timeout has passed.
fn wait_while_busy(tries_so_far: i32) -> bool {
    let tries = u128::try_from(tries_so_far).unwrap_or(0);
    if tries >= BUSY_TRIES.get() {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs the write; returns whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Tells the caller how it went, once the batch has ended: `committed` is the
    /// batch's failure, if it failed.
    fn answer(self: Box<Self>, failed: Option<&rusqlite::Error>);
}

struct Write<T, F> {
    op: &'static str,
    f: Option<F>,
    outcome: Option<std::thread::Result<Result<T, SqliteError>>>,
    reply: oneshot::Sender<std::thread::Result<Result<T>>>,
    span: tracing::Span,
}

impl<T, F> Job for Write<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let _entered = self.span.enter();
        let Some(f) = self.f.take() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)));
        let ok = matches!(outcome, Ok(Ok(_)));
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<&rusqlite::Error>) {
        let op = self.op;
        let answer = match (self.outcome, failed) {
            (Some(Err(panic)), _) => Err(panic),
            (Some(Ok(Err(e))), _) => Ok(Err(e.into_error(op))),
            (Some(Ok(Ok(value))), None) => Ok(Ok(value)),
            (_, Some(e)) => Ok(Err(batch_error(op, e))),
            (None, None) => Ok(Err(Error::backend("sqlite", format!("{op}: never run")))),
        };
        // A caller that stopped waiting does not need the answer.
        let _ = self.reply.send(answer);
    }
}

/// What a write hears when its batch could not begin or commit.
fn batch_error(op: &'static str, e: &rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::unavailable("sqlite database", format!("{op}: {e}"))
        }
        _ => Error::backend("sqlite", format!("{op}: {e}")),
    }
}

fn write_loop(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Job>>, restart: &LogRestart) {
    // Ends when the store, and with it the sending side, is dropped.
    while let Ok(first) = queue.recv() {
        restart.hold_if_wanted();
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        write_batch(conn, batch);
    }
}

fn write_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for job in batch {
            job.answer(Some(&e));
        }
        return;
    }
    // Cached: parsing them again for every write would cost more than running them.
    let statement = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    for job in &mut batch {
        let ran = statement("SAVEPOINT write").and_then(|()| {
            if job.run(conn) {
                statement("RELEASE write")
            } else {
                statement("ROLLBACK TO write").and_then(|()| statement("RELEASE write"))
            }
        });
        if let Err(e) = ran {
            // The transaction is in an unknown state: give it up with every write in it.
            let _ = conn.execute_batch("ROLLBACK");
            for job in batch {
                job.answer(Some(&e));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => batch.into_iter().for_each(|job| job.answer(None)),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            batch.into_iter().for_each(|job| job.answer(Some(&e)));
        }
    }
}

/// One round of the checkpointer: `PASSIVE` never waits for a reader or the writer.
/// Returns the pages in the log.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// Copies the write-ahead log into the database file from a thread of its own, so
/// that the writer does not, and starts the log again when it is long (see
/// [`LogRestart`]). Dropping it stops the thread and waits for it, as [`Writer`]'s
/// drop does.
pub(crate) struct Checkpointer {
    _thread: Fed<()>,
}

impl Checkpointer {
    /// Starts checkpointing on `conn` until the checkpointer is dropped.
    pub(crate) fn start(
        conn: Connection,
        name: &str,
        restart: Arc<LogRestart>,
    ) -> std::io::Result<Checkpointer> {
        let thread = Fed::spawn(format!("sqlite-checkpoint {name}"), move |stopped| {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                let round = checkpoint(&conn).and_then(|pages| {
                    if pages < RESTART_PAGES {
                        return Ok(pages);
                    }
                    restart.with_writer_held(|| checkpoint(&conn))
                });
                if let Err(e) = round {
                    tracing::warn!(error = %e, "sqlite checkpoint failed; trying again");
                }
            }
        })?;
        Ok(Checkpointer { _thread: thread })
    }
}
