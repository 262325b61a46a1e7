//! How to reach an engine: the endpoint forms the client accepts, plain or with TLS.

use std::fmt;

use poolcore::{Error, Result};

use crate::tls::TlsConfig;

/// Where an engine listens, parsed from [`Host::endpoint`](poolcore::Host::endpoint).
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// `unix:///var/run/docker.sock`: the socket's path.
    Unix(String),
    /// `tcp://10.0.0.1:2375` or `http://…` of a host without TLS settings: `host:port`.
    Http(String),
    /// `tcp://10.0.0.1:2376` or `https://…` of a host with TLS settings: `host:port`,
    /// and the client's TLS config.
    Https(String, TlsConfig),
}

/// Port Docker uses for plain TCP when an endpoint names none.
const DEFAULT_TCP_PORT: u16 = 2375;

/// Port Docker uses for TLS when an endpoint names none.
const DEFAULT_TLS_PORT: u16 = 2376;

impl Endpoint {
    /// Parses the endpoint of a host with TLS settings `tls`, or none: a `tcp://`
    /// endpoint is TLS with them and plain TCP without. One this client cannot use is
    /// [`Error::Invalid`] naming it.
    pub(crate) fn parse(endpoint: &str, tls: Option<TlsConfig>) -> Result<Self> {
        let invalid = |why: &str| Error::invalid("endpoint", format!("{endpoint:?}: {why}"));
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| invalid("expected unix:///path/to/docker.sock or tcp://host:port"))?;
        let authority = |default_port| {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(invalid("expected tcp://host:port"));
            }
            Ok(with_default_port(authority, default_port))
        };
        match (scheme, tls) {
            ("unix", None) if rest.starts_with('/') && rest.len() > 1 => Ok(Endpoint::Unix(rest.to_owned())),
            ("unix", None) => Err(invalid("a unix endpoint needs an absolute socket path")),
            ("unix", Some(_)) => Err(invalid(
                "TLS settings apply to tcp:// and https:// endpoints, not to a unix socket",
            )),
            ("tcp" | "http", None) => authority(DEFAULT_TCP_PORT).map(Endpoint::Http),
            ("tcp" | "https", Some(tls)) => Ok(Endpoint::Https(authority(DEFAULT_TLS_PORT)?, tls)),
            ("https", None) => Err(invalid(
                "an https:// endpoint needs the host's TLS settings (ca, cert, key)",
            )),
            ("http", Some(_)) => Err(invalid(
                "http:// is plain TCP; with TLS settings use tcp:// or https://",
            )),
            _ => Err(invalid(
                "expected a unix://, tcp://, http:// or https:// endpoint",
            )),
        }
    }
}

/// `host` → `host:default_port`; `host:port` and `[v6]:port` stay as they are.
fn with_default_port(authority: &str, default_port: u16) -> String {
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) => !port.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{path}"),
            Endpoint::Http(authority) => write!(f, "tcp://{authority}"),
            Endpoint::Https(authority, _) => write!(f, "https://{authority}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use poolcore::EngineTls;

    use super::*;

    fn plain(endpoint: &str) -> Result<String> {
        Endpoint::parse(endpoint, None).map(|e| e.to_string())
    }

    /// TLS settings that read no file: no client certificate, no verification.
    fn tls_config() -> Option<TlsConfig> {
        let settings = EngineTls {
            ca: None,
            cert: None,
            key: None,
            verify: false,
        };
        Some(TlsConfig::new(&settings).expect("TLS settings without files"))
    }

    fn tls(endpoint: &str) -> Result<String> {
        Endpoint::parse(endpoint, tls_config()).map(|e| e.to_string())
    }

    #[test]
    fn endpoints_parse() {
        assert!(matches!(
            Endpoint::parse("unix:///var/run/docker.sock", None).unwrap(),
            Endpoint::Unix(path) if path == "/var/run/docker.sock"
        ));
        assert!(matches!(
            Endpoint::parse("tcp://10.0.0.1:2375", None).unwrap(),
            Endpoint::Http(authority) if authority == "10.0.0.1:2375"
        ));
        assert_eq!(plain("http://docker.local/").unwrap(), "tcp://docker.local:2375");
        assert_eq!(plain("tcp://[::1]:2376").unwrap(), "tcp://[::1]:2376");
    }

    #[test]
    fn tls_endpoints_parse_with_tls_settings_only() {
        assert!(matches!(
            Endpoint::parse("tcp://10.0.0.1:2376", tls_config()).unwrap(),
            Endpoint::Https(authority, _) if authority == "10.0.0.1:2376"
        ));
        assert_eq!(
            tls("https://docker.local/").unwrap(),
            "https://docker.local:2376",
            "TLS defaults to Docker's port 2376"
        );
        assert_eq!(tls("tcp://[::1]").unwrap(), "https://[::1]:2376");
        let err = plain("https://h:2376").unwrap_err();
        assert!(err.to_string().contains("needs the host's TLS settings"), "{err}");
        let err = tls("unix:///var/run/docker.sock").unwrap_err();
        assert!(err.to_string().contains("not to a unix socket"), "{err}");
        let err = tls("http://h:2375").unwrap_err();
        assert!(err.to_string().contains("plain TCP"), "{err}");
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
            "tls://h:2376",
            "ssh://h",
        ] {
            let err = plain(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        for bad in ["tcp://", "https://h/path", "ssh://h"] {
            let err = tls(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
