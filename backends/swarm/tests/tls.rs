//! The Swarm driver over TLS: it connects through the same engine client as the Docker
//! driver, so a probe of a private dockerd started with `--tlsverify` (see
//! [`TlsEngine`]; not a swarm manager) answers with inline PEM settings, and wrong
//! settings are refused when the driver is made.
//!
//! The probe needs `dockerd` and root. Without them it is skipped with a notice, except
//! under `CI=true`, where that is a failure.

use std::sync::Arc;

use poolcore::conformance::driver::DriverHarness;
use poolcore::{Connector, Error};
use poolcore::{EngineTls, Pem};
use poolcore_engine::testing::TlsEngine;
use poolcore_swarm::SwarmConnector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_are_probed_over_tls() {
    let Some(engine) = TlsEngine::start().await else {
        return;
    };
    let harness = DriverHarness::new(Arc::new(SwarmConnector::new()), engine.endpoint.clone());
    let mut host = harness.host("tls");
    host.tls = Some(engine.certificates.inline());
    let facts = harness.driver(&host).probe().await.expect("a probe over TLS");
    assert!(!facts.version.is_empty(), "{facts:?}");
    assert!(!facts.swarm_manager, "the TLS engine is no swarm: {facts:?}");
}

#[test]
fn wrong_tls_settings_are_refused_when_the_driver_is_made() {
    let harness = DriverHarness::new(Arc::new(SwarmConnector::new()), "tcp://127.0.0.1:2376");
    let mut host = harness.host("tls-settings");
    host.tls = Some(EngineTls {
        ca: None,
        cert: Some(Pem::Inline("not a certificate".to_owned())),
        key: Some(Pem::Inline("not a key".to_owned())),
        verify: false,
    });
    let err = SwarmConnector::new()
        .connect(&host)
        .expect_err("a certificate that is none");
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "tls.cert",
                ..
            }
        ),
        "{err:?}"
    );
}
