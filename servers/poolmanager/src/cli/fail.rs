//! What a command failed with, and the exit status that says so to scripts.

use std::error::Error as _;
use std::fmt;
use std::process::ExitCode;

use super::api::types::{self, ErrorCode};

/// The exit statuses of the client commands (docs/cli.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The server refused for another reason (quota, engine failure, its own
    /// error), an operation failed, or a local file could not be written.
    Failed = 1,
    /// The command line, a file it names or a value in it is wrong, or the server
    /// said so (400 `invalid_input`). Also clap's status for a bad command line.
    Usage = 2,
    /// What the command names does not exist (404).
    NotFound = 3,
    /// It exists but is in the way: a taken name, something in use, a cluster in the
    /// wrong status, a change meanwhile (409).
    Conflict = 4,
    /// No answer from the server: refused connection, unknown name, TLS failure,
    /// timeout.
    Unreachable = 5,
    /// The token is missing, wrong, or not allowed this (401, 403).
    Denied = 6,
    /// Nothing ready to apply, or the engine does not answer: try again later (503).
    Unavailable = 7,
}

/// A failed command: its message and exit status.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(Exit::NotFound, message)
    }

    /// Prints the message on stderr and gives the exit status.
    pub fn report(&self) -> ExitCode {
        eprintln!("poolmanager: {}", self.message);
        ExitCode::from(self.exit as u8)
    }

    /// What a request through the generated client failed with.
    pub async fn from_api(e: super::api::ApiError, url: &str) -> Failure {
        use progenitor_client::Error as E;
        match e {
            E::ErrorResponse(answer) => {
                let status = answer.status();
                server_error(status, &answer.into_inner())
            }
            E::UnexpectedResponse(response) => {
                let status = response.status();
                match response.json::<types::Error>().await {
                    Ok(body) => server_error(status, &body),
                    Err(_) => Failure::new(
                        Exit::Failed,
                        format!("the server answered {status}, not in the spec"),
                    ),
                }
            }
            E::InvalidRequest(reason) => Failure::usage(reason),
            E::CommunicationError(e) | E::InvalidUpgrade(e) | E::ResponseBodyError(e) => {
                communication(&e, url)
            }
            E::InvalidResponsePayload(_, e) => Failure::new(
                Exit::Failed,
                format!("the server's answer does not match its spec: {e}"),
            ),
            E::Custom(reason) => Failure::new(Exit::Failed, reason),
        }
    }
}

/// A server's error body, as the user should read it.
fn server_error(status: reqwest::StatusCode, body: &types::Error) -> Failure {
    let exit = match body.code {
        ErrorCode::InvalidInput
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::MethodNotAllowed => Exit::Usage,
        ErrorCode::NotFound => Exit::NotFound,
        ErrorCode::Conflict | ErrorCode::Stale => Exit::Conflict,
        ErrorCode::Unauthorized | ErrorCode::Forbidden => Exit::Denied,
        ErrorCode::PoolExhausted | ErrorCode::Unavailable => Exit::Unavailable,
        _ => Exit::Failed,
    };
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
        " (give a token with --token, --token-file or POOLMANAGER_TOKEN)"
    } else {
        ""
    };
    Failure::new(exit, format!("{} ({}){hint}", body.message, body.code))
}

/// A request that got no answer, with its causes (reqwest's own message repeats the
/// whole URL, which the message names already).
fn communication(e: &reqwest::Error, url: &str) -> Failure {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let message = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    let exit = if e.is_connect() || e.is_timeout() || e.is_request() {
        Exit::Unreachable
    } else {
        Exit::Failed
    };
    Failure::new(exit, format!("cannot talk to the server at {url}: {message}"))
}
