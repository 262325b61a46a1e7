//! TLS to a `tcp://` (or `https://`) engine: the client's rustls config, built from the
//! PEM documents of a host's [`EngineTls`], and a bollard client that speaks through it.
//!
//! A module of its own because it is the one part of connecting that reads secrets.
//! bollard's own TLS (`Docker::connect_with_ssl`) takes file paths only, reads the key
//! again on every handshake and also trusts the system's roots beside the given CA.
//! This client instead builds its rustls config from PEM bytes once, when the driver
//! is made (so an inline key never touches the disk, and a wrong file is refused at
//! once), trusts only the given CA, and hands bollard a custom transport on
//! hyper-rustls.
//!
//! Nothing read here is logged or put in an error: errors name the setting (`tls.ca`,
//! `tls.cert`, `tls.key`) and the file (or "inline PEM"), never what it holds, and
//! [`TlsConfig`]'s `Debug` says only whether there is a client certificate.

use std::fmt;
use std::sync::Arc;

use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, ClientVersion, Docker};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use poolcore::{EngineTls, Error, Pem, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore, SignatureScheme};

/// A host's TLS settings, read and checked: the rustls config every connection to the
/// engine uses. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TlsConfig {
    config: Arc<ClientConfig>,
    client_cert: bool,
    verify: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_cert", &self.client_cert)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads and checks `tls`: each PEM must be readable and hold what its setting
    /// needs, and the key must match the certificate; else [`Error::Invalid`] naming the
    /// setting and the file.
    pub(crate) fn new(tls: &EngineTls) -> Result<Self> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("tls", e.to_string()))?;
        let builder = if tls.verify {
            builder.with_root_certificates(roots(tls.ca.as_ref())?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
        };
        let config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                let cert = Document::read("tls.cert", cert)?;
                let key = Document::read("tls.key", key)?;
                builder
                    .with_client_auth_cert(cert.certificates()?, key.private_key()?)
                    .map_err(|e| key.refused(&cert, e))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(Error::invalid(
                    "tls.key",
                    "a client certificate (tls.cert) needs its key",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "tls.cert",
                    "a key (tls.key) needs its client certificate",
                ))
            }
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            client_cert: tls.cert.is_some(),
            verify: tls.verify,
        })
    }

    /// A client of the engine at `authority` (`host:port`) over this TLS; it connects on
    /// its first request. As bollard's own clients, it keeps no idle connection.
    pub(crate) fn connect(
        &self,
        authority: &str,
        timeout: u64,
        version: &ClientVersion,
    ) -> std::result::Result<Docker, BollardError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        let connector = HttpsConnector::from((tcp, self.config.clone()));
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_max_idle_per_host(0);
        let client = builder.build(connector);
        let transport = move |request: BollardRequest| {
            let response = client.request(request);
            async move { response.await.map_err(BollardError::from) }
        };
        let address = format!("https://{authority}");
        Docker::connect_with_custom_transport(transport, Some(address), timeout, version)
    }
}

/// What to check when an engine reached over TLS without a client certificate drops
/// the connection.
pub(crate) const NO_CLIENT_CERT: &str = "the engine closed the connection: an engine started with \
     --tlsverify wants a client certificate (tls.cert, tls.key) signed by the CA it trusts";

impl TlsConfig {
    /// Whether the client shows a certificate.
    pub(crate) fn has_client_cert(&self) -> bool {
        self.client_cert
    }
}

/// What an operator should check when `err` is a failed TLS handshake, if it is one.
/// rustls's own words ("invalid peer certificate: UnknownIssuer", "received fatal
/// alert: BadCertificate") say what happened, not which setting to look at.
pub(crate) fn handshake_hint(err: &BollardError) -> Option<&'static str> {
    use rustls::AlertDescription as Alert;
    // bollard's IOError is transparent: its `source` is the io::Error's.
    let mut next: Option<&(dyn std::error::Error + 'static)> = match err {
        BollardError::IOError { err } => Some(err),
        other => Some(other),
    };
    while let Some(err) = next {
        match rustls_error(err) {
            Some(rustls::Error::InvalidCertificate(_)) => {
                return Some(
                    "the engine's certificate is not trusted: it must be signed by tls.ca (without one, \
                     by a root this machine trusts) and name the endpoint's host",
                )
            }
            Some(rustls::Error::AlertReceived(
                Alert::BadCertificate
                | Alert::CertificateRequired
                | Alert::UnknownCA
                | Alert::UnsupportedCertificate
                | Alert::CertificateUnknown
                | Alert::CertificateExpired
                | Alert::CertificateRevoked,
            )) => {
                return Some(
                    "the engine refused this client: it wants a client certificate (tls.cert, tls.key) \
                     signed by the CA it trusts",
                )
            }
            Some(rustls::Error::InvalidMessage(_)) => {
                return Some("the endpoint does not answer with TLS: is the engine started with --tlsverify?")
            }
            Some(_) => return None,
            None => next = err.source(),
        }
    }
    None
}

/// The rustls error `err` is, or carries inside io::Errors: tokio-rustls reports one
/// as an io::Error, which hyper-rustls wraps in another, and an io::Error's `source`
/// skips what it wraps.
fn rustls_error<'a>(mut err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        err = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// The roots the engine's certificate must chain to: those of `ca`, else the system's
/// (as the docker CLI's `--tlsverify` without `--tlscacert`).
fn roots(ca: Option<&Pem>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            let ca = Document::read("tls.ca", ca)?;
            for cert in ca.certificates()? {
                roots
                    .add(cert)
                    .map_err(|e| ca.invalid(&format!("holds a certificate that cannot be a CA: {e}")))?;
            }
        }
        None => {
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(Error::invalid(
                    "tls.ca",
                    "none is given and this machine trusts no root certificates to verify the engine with",
                ));
            }
        }
    }
    Ok(roots)
}

/// One PEM setting, read: which setting, where it came from, and its bytes. Errors name
/// the first two only.
struct Document {
    setting: &'static str,
    origin: String,
    bytes: Vec<u8>,
}

impl Document {
    fn read(setting: &'static str, pem: &Pem) -> Result<Self> {
        let (origin, bytes) = match pem {
            Pem::Path(path) => {
                let origin = format!("file {path:?}");
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::invalid(setting, format!("{origin} cannot be read: {e}")))?;
                (origin, bytes)
            }
            Pem::Inline(text) => ("inline PEM".to_owned(), text.as_bytes().to_vec()),
        };
        Ok(Document {
            setting,
            origin,
            bytes,
        })
    }

    fn invalid(&self, why: &str) -> Error {
        Error::invalid(self.setting, format!("{} {why}", self.origin))
    }

    /// Every certificate in the document; at least one.
    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| self.invalid("is not valid PEM"))?;
        if certs.is_empty() {
            return Err(self.invalid("holds no certificate (-----BEGIN CERTIFICATE-----)"));
        }
        Ok(certs)
    }

    /// The first private key in the document.
    fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            pem::Error::NoItemsFound => self.invalid("holds no private key (-----BEGIN PRIVATE KEY-----)"),
            _ => self.invalid("is not valid PEM"),
        })
    }

    /// Why rustls refused this key with `cert`. Its messages name no key material.
    fn refused(&self, cert: &Document, err: rustls::Error) -> Error {
        match err {
            rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => self.invalid(&format!(
                "does not match the certificate of tls.cert ({})",
                cert.origin
            )),
            other => self.invalid(&format!("holds a key that cannot be used: {other}")),
        }
    }
}

/// Accepts any certificate the engine shows: `verify: false`. The handshake's own
/// signatures are still checked, so the connection is encrypted, but to whoever answers.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Certificates;

    /// The base64 lines of a PEM document: what must never appear in a message.
    fn secret_lines(pem: &str) -> Vec<&str> {
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .collect()
    }

    fn refusal(tls: &EngineTls) -> String {
        let err = TlsConfig::new(tls).expect_err("refused");
        assert_eq!(err.code(), "invalid_input", "{err}");
        err.to_string()
    }

    fn assert_no_key_in(text: &str, certs: &Certificates) {
        for line in secret_lines(&certs.client_key)
            .into_iter()
            .chain(secret_lines(&certs.server_key))
        {
            assert!(!text.contains(line), "a key leaked into {text:?}");
        }
    }

    #[test]
    fn inline_and_file_settings_both_make_a_config() {
        let certs = Certificates::generate();
        let inline = TlsConfig::new(&certs.inline()).expect("inline PEM");
        assert!(inline.client_cert && inline.verify);

        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            Some(Pem::Path(path.display().to_string()))
        };
        let files = EngineTls {
            ca: file("ca.pem", &certs.ca),
            cert: file("cert.pem", &certs.client_cert),
            key: file("key.pem", &certs.client_key),
            verify: true,
        };
        TlsConfig::new(&files).expect("PEM files");

        let server_only = EngineTls {
            cert: None,
            key: None,
            ..certs.inline()
        };
        assert!(
            !TlsConfig::new(&server_only)
                .expect("no client certificate")
                .client_cert
        );
    }

    #[test]
    fn a_wrong_setting_is_named_with_its_file_never_its_contents() {
        let certs = Certificates::generate();
        let missing = EngineTls {
            ca: Some(Pem::Path("/nonexistent/ca.pem".into())),
            ..certs.inline()
        };
        let text = refusal(&missing);
        assert!(
            text.contains("tls.ca") && text.contains(r#"file "/nonexistent/ca.pem" cannot be read"#),
            "{text}"
        );

        let key_as_cert = EngineTls {
            cert: Some(Pem::Inline(certs.client_key.clone())),
            ..certs.inline()
        };
        let text = refusal(&key_as_cert);
        assert!(
            text.contains("tls.cert: inline PEM holds no certificate"),
            "{text}"
        );
        assert_no_key_in(&text, &certs);

        let cert_as_key = EngineTls {
            key: Some(Pem::Inline(certs.client_cert.clone())),
            ..certs.inline()
        };
        let text = refusal(&cert_as_key);
        assert!(
            text.contains("tls.key: inline PEM holds no private key"),
            "{text}"
        );

        let garbled = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let not_pem = EngineTls {
            ca: Some(Pem::Inline(garbled.into())),
            ..certs.inline()
        };
        assert!(refusal(&not_pem).contains("tls.ca: inline PEM is not valid PEM"));

        let mut broken_key = certs
            .client_key
            .replace("PRIVATE KEY-----\n", "PRIVATE KEY-----\n!");
        broken_key.push_str("trailing");
        let not_pem_key = EngineTls {
            key: Some(Pem::Inline(broken_key)),
            ..certs.inline()
        };
        let text = refusal(&not_pem_key);
        assert!(text.contains("tls.key: inline PEM is not valid PEM"), "{text}");
        assert_no_key_in(&text, &certs);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let certs = Certificates::generate();
        let mismatched = EngineTls {
            key: Some(Pem::Inline(certs.server_key.clone())),
            ..certs.inline()
        };
        let text = refusal(&mismatched);
        assert!(
            text.contains("tls.key: inline PEM does not match the certificate of tls.cert (inline PEM)"),
            "{text}"
        );
        assert_no_key_in(&text, &certs);
    }

    #[test]
    fn a_certificate_and_its_key_go_together() {
        let certs = Certificates::generate();
        let text = refusal(&EngineTls {
            key: None,
            ..certs.inline()
        });
        assert!(
            text.contains("tls.key") && text.contains("needs its key"),
            "{text}"
        );
        let text = refusal(&EngineTls {
            cert: None,
            ..certs.inline()
        });
        assert!(
            text.contains("tls.cert") && text.contains("needs its client certificate"),
            "{text}"
        );
    }

    #[test]
    fn without_verification_no_ca_is_read() {
        let unverified = EngineTls {
            ca: Some(Pem::Path("/nonexistent/ca.pem".into())),
            cert: None,
            key: None,
            verify: false,
        };
        let config = TlsConfig::new(&unverified).expect("the CA is not used");
        assert!(!config.verify);
    }

    #[test]
    fn failed_handshakes_say_which_setting_to_check() {
        // As hyper-rustls reports a failed handshake.
        let failed = |tls: rustls::Error| BollardError::IOError {
            err: std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls)),
        };
        let untrusted = failed(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(handshake_hint(&untrusted).is_some_and(|h| h.contains("tls.ca")));
        let refused = failed(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        ));
        assert!(handshake_hint(&refused).is_some_and(|h| h.contains("tls.cert")));
        let plain = failed(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(handshake_hint(&plain).is_some_and(|h| h.contains("--tlsverify")));
        let other = failed(rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion,
        ));
        assert_eq!(handshake_hint(&other), None);
        assert_eq!(handshake_hint(&BollardError::RequestTimeoutError), None);
    }

    #[test]
    fn debug_output_holds_no_pem() {
        let certs = Certificates::generate();
        let settings = certs.inline();
        let config = TlsConfig::new(&settings).unwrap();
        for text in [format!("{settings:?}"), format!("{config:?}")] {
            assert_no_key_in(&text, &certs);
            assert!(!text.contains("BEGIN"), "{text}");
        }
        assert_eq!(
            format!("{:?}", Pem::Inline("secret".into())),
            "Inline(<redacted>)"
        );
        assert_eq!(format!("{:?}", Pem::Path("/k.pem".into())), r#"Path("/k.pem")"#);
    }
}
