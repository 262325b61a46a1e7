//! The REST client, generated from `docs/openapi.json` by `build.rs`, and the
//! connection to the server it is built on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::Deserialize;

use super::fail::{Exit, Failure};
use super::output::Format;

#[allow(clippy::all, clippy::pedantic, dead_code, unused_imports, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/client.rs"));
}

pub use generated::types;
pub use generated::Client;

/// What a request through the generated client fails with.
pub type ApiError = generated::Error<types::Error>;

/// What the generated client answers an operation with.
pub type ApiResult<T> = Result<generated::ResponseValue<T>, ApiError>;

/// Where the server is and how to talk to it: flags, then `POOLMANAGER_*` variables,
/// then the client config file.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server and output")]
pub struct Connection {
    /// Server URL, such as `http://127.0.0.1:8080` (`/api/v1` is added when missing)
    /// [default: the config file's `url`, else http://127.0.0.1:8080].
    #[arg(long, env = "POOLMANAGER_URL", global = true, value_name = "URL")]
    url: Option<String>,
    /// Bearer token: the admin token, or the user token for the user commands.
    #[arg(
        long,
        env = "POOLMANAGER_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// File holding the bearer token, such as the server's `poolmanager.admin-token`.
    #[arg(long, env = "POOLMANAGER_TOKEN_FILE", global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust for an `https://` URL, beside
    /// the system's.
    #[arg(long, env = "POOLMANAGER_CA_FILE", global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Client config file (TOML: `url`, `token` or `token_file`, `ca_file`)
    /// [default: $XDG_CONFIG_HOME/poolmanager/client.toml, else
    /// ~/.config/poolmanager/client.toml, when it exists].
    #[arg(long, env = "POOLMANAGER_CLIENT_CONFIG", global = true, value_name = "FILE")]
    client_config: Option<PathBuf>,
    /// How to print what the server answers.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// The client config file. Relative paths in it are taken from its directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// The server's URL when nothing names one: where `poolmanager serve` listens.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The longest a request may go without the server sending anything. The event
/// stream sends a comment every 15 s, so it stays well within.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one server, ready to send requests.
pub struct Server {
    /// The generated client, with the token on every request.
    pub client: Client,
    /// The API's base URL, for messages.
    pub url: String,
    /// How to print answers.
    pub output: Format,
}

impl Connection {
    /// Resolves the layers and builds the client.
    pub fn connect(&self) -> Result<Server, Failure> {
        self.connect_waiting(Duration::ZERO)
    }

    /// As [`Connection::connect`], for a request the server may hold `wait` before it
    /// answers.
    pub fn connect_waiting(&self, wait: Duration) -> Result<Server, Failure> {
        let file = self.client_file()?;
        let (file, dir) = file.unwrap_or_default();
        let url = api_url(self.url.as_deref().or(file.url.as_deref()).unwrap_or(DEFAULT_URL))?;
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => match (&file.token, &file.token_file) {
                (Some(token), _) => Some(token.clone()),
                (None, Some(path)) => Some(read_token(&dir.join(path))?),
                (None, None) => None,
            },
        };
        let ca_file = self.ca_file.clone().or_else(|| file.ca_file.map(|p| dir.join(p)));
        let http = http_client(token.as_deref(), ca_file.as_deref(), READ_TIMEOUT + wait)?;
        Ok(Server {
            client: Client::new_with_client(&url, http),
            url,
            output: self.output,
        })
    }

    /// The config file and its directory, if there is one to read.
    fn client_file(&self) -> Result<Option<(ClientFile, PathBuf)>, Failure> {
        let (path, named) = match &self.client_config {
            Some(path) => (path.clone(), true),
            None => match default_client_file() {
                Some(path) => (path, false),
                None => return Ok(None),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Failure::usage(format!("reading {}: {e}", path.display()))),
        };
        let file: ClientFile = toml::from_str(&text)
            .map_err(|e| Failure::usage(format!("client config {}: {e}", path.display())))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Some((file, dir)))
    }
}

fn default_client_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("poolmanager").join("client.toml"))
}

/// The API's base URL from what the user gave: the server's root or the API's.
fn api_url(given: &str) -> Result<String, Failure> {
    let url = given.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::usage(format!(
            "server URL {url:?} is neither http:// nor https://"
        )));
    }
    if url.ends_with("/api/v1") {
        Ok(url.to_owned())
    } else {
        Ok(format!("{url}/api/v1"))
    }
}

fn read_token(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("reading the token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::usage(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

fn http_client(
    token: Option<&str>,
    ca_file: Option<&Path>,
    read_timeout: Duration,
) -> Result<reqwest::Client, Failure> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Failure::usage("the token holds characters a header cannot carry"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .default_headers(headers)
        .user_agent(concat!("poolmanager-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("reading the CA file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Failure::usage(format!("the CA file {} is not PEM: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Failure::usage(format!(
                "the CA file {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Failure::new(Exit::Failed, format!("making the HTTP client: {e}")))
}

impl Server {
    /// Sends one request and takes the answer, or what went wrong as a [`Failure`].
    pub async fn call<T>(&self, request: impl Future<Output = ApiResult<T>>) -> Result<T, Failure> {
        match request.await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(e) => Err(Failure::from_api(e, &self.url).await),
        }
    }
}
