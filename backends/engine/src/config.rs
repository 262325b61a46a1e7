//! How to reach an engine: the endpoint forms the client accepts.

use std::fmt;

use poolcore::{Error, Result};

/// Where an engine listens, parsed from [`Host::endpoint`](poolcore::Host::endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `unix:///var/run/docker.sock`: the socket's path.
    Unix(String),
    /// `tcp://10.0.0.1:2375` or `http://…`: `host:port`.
    Http(String),
}

/// Port Docker uses for plain TCP when an endpoint names none.
const DEFAULT_TCP_PORT: u16 = 2375;

impl Endpoint {
    /// Parses an endpoint; one this driver cannot use is [`Error::Invalid`] naming it.
    pub(crate) fn parse(endpoint: &str) -> Result<Self> {
        let invalid = |why: &str| Error::invalid("endpoint", format!("{endpoint:?}: {why}"));
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| invalid("expected unix:///path/to/docker.sock or tcp://host:port"))?;
        match scheme {
            "unix" if rest.starts_with('/') && rest.len() > 1 => Ok(Endpoint::Unix(rest.to_owned())),
            "unix" => Err(invalid("a unix endpoint needs an absolute socket path")),
            "tcp" | "http" => {
                let authority = rest.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') {
                    return Err(invalid("expected tcp://host:port"));
                }
                Ok(Endpoint::Http(with_default_port(authority)))
            }
            "https" | "tls" => Err(invalid("TLS endpoints are not supported; use unix:// or tcp://")),
            _ => Err(invalid("expected a unix:// or tcp:// (or http://) endpoint")),
        }
    }
}

/// `host` → `host:2375`; `host:port` and `[v6]:port` stay as they are.
fn with_default_port(authority: &str) -> String {
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) => !port.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{DEFAULT_TCP_PORT}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Http(authority) => write!(f, "tcp://{authority}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.1:2375").unwrap(),
            Endpoint::Http("10.0.0.1:2375".into())
        );
        assert_eq!(
            Endpoint::parse("http://docker.local/").unwrap(),
            Endpoint::Http("docker.local:2375".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:2376").unwrap(),
            Endpoint::Http("[::1]:2376".into())
        );
    }

    #[test]
    fn unusable_endpoints_are_invalid_and_named() {
        for bad in [
            "",
            "docker.sock",
            "unix://",
            "unix://relative",
            "tcp://",
            "https://h:2376",
            "ssh://h",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
