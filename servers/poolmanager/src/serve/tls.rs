//! HTTPS: the certificate chain and key from PEM files, read again on SIGHUP.
//!
//! rustls with the `ring` provider (the one the rest of the workspace builds), given
//! the current certificate by a resolver that a reload swaps in place: connections
//! already open keep the certificate they started with, new ones get the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

/// Why the certificate or key could not be used. Names the files, never shows what is
/// in them.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or holds no usable PEM item.
    #[error("TLS {what} file {path}: {reason}")]
    File {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not go with the certificate, or rustls refuses them.
    #[error("TLS key {key} with certificate {cert}: {reason}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls says.
        reason: String,
    },
}

/// The certificate the server presents, and where it is read from.
#[derive(Debug)]
pub struct Certificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    /// Reads and checks the certificate chain at `cert` and the key at `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificate>, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let current = read_pair(cert, key, &provider)?;
        Ok(Arc::new(Certificate {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads both files again and, if they make a valid pair, serves them from now on;
    /// otherwise keeps the current pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// A TLS acceptor presenting this certificate, HTTP/1.1 by ALPN.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| self.pair_error(e))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn pair_error(&self, reason: impl std::fmt::Display) -> TlsError {
        TlsError::Pair {
            cert: self.cert_path.display().to_string(),
            key: self.key_path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// Reloads `certificate` on every SIGHUP until the task is aborted. A pair that does
/// not load is logged and the one in use stays.
#[cfg(unix)]
pub fn reload_on_hangup(certificate: Arc<Certificate>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match certificate.reload() {
                Ok(()) => info!(cert = %certificate.cert_path.display(), "TLS certificate reloaded"),
                Err(e) => error!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
            }
        }
    }))
}

/// The certificate chain and key at these paths, checked to go together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_pem(cert, "certificate", |bytes| {
        CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>()
    })?;
    if chain.is_empty() {
        return Err(file_error(cert, "certificate", "holds no PEM certificate"));
    }
    let private = read_pem(key, "key", PrivateKeyDer::from_pem_slice)?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Pair {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads `path` and parses it with `parse`, keeping the contents out of any error.
fn read_pem<T>(
    path: &Path,
    what: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<T, pem::Error>,
) -> Result<T, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, what, format!("cannot be read: {e}")))?;
    parse(&bytes).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound if what == "key" => {
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned()
            }
            pem::Error::NoItemsFound => format!("holds no PEM {what}"),
            // The other errors can quote a line of the file: say only that it is broken.
            _ => "is not a valid PEM file".to_owned(),
        };
        file_error(path, what, reason)
    })
}

fn file_error(path: &Path, what: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        what,
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_TEXT: &str =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";

    #[test]
    fn errors_name_the_file_and_never_its_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let missing = Certificate::load(&cert, &key).expect_err("no files");
        assert!(missing.to_string().contains("cert.pem"), "{missing}");

        std::fs::write(&cert, "not a certificate").expect("write");
        let empty = Certificate::load(&cert, &key).expect_err("no PEM in it");
        assert!(empty.to_string().contains("holds no PEM certificate"), "{empty}");

        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(&cert, generated.cert.pem()).expect("write");
        std::fs::write(&key, KEY_TEXT).expect("write");
        let bad_key = Certificate::load(&cert, &key).expect_err("not a key");
        let text = bad_key.to_string();
        assert!(text.contains("key.pem") && !text.contains("c2VjcmV0"), "{text}");

        std::fs::write(&key, format!("-----BEGIN PRIVATE KEY-----{KEY_TEXT}")).expect("write");
        let broken = Certificate::load(&cert, &key)
            .expect_err("broken PEM")
            .to_string();
        assert!(
            broken.contains("key.pem") && !broken.contains("c2VjcmV0"),
            "{broken}"
        );

        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(&key, other.signing_key.serialize_pem()).expect("write");
        let mismatch = Certificate::load(&cert, &key).expect_err("key of another certificate");
        assert!(matches!(mismatch, TlsError::Pair { .. }), "{mismatch}");

        std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write");
        let loaded = Certificate::load(&cert, &key).expect("a matching pair");
        loaded.acceptor().expect("an acceptor");
        std::fs::write(&key, "garbage").expect("write");
        assert!(loaded.reload().is_err(), "a broken pair is refused");
    }
}
