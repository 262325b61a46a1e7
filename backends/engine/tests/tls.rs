//! The engine client over TLS against a real dockerd started with `--tlsverify` (see
//! [`TlsEngine`]): verified TLS with PEM files and inline PEM, and the refusals an
//! operator meets with a wrong CA or without a client certificate.
//!
//! Needs `dockerd` and root. Without them the test is skipped with a notice, except
//! under `CI=true`, where that is a failure.

use std::time::{Duration, Instant};

use poolcore::{Cluster, EngineTls, Error, HostKind, Pem};
use poolcore_engine::testing::TlsEngine;
use poolcore_engine::{ClusterNetwork, Engine, LabelFilter};

const TIMEOUT: Duration = Duration::from_secs(10);

fn engine(tls_engine: &TlsEngine, tls: &EngineTls) -> Engine {
    Engine::new(HostKind::Docker, &tls_engine.endpoint, Some(tls), TIMEOUT).expect("TLS settings")
}

/// The refusal of a probe, as an operator reads it.
async fn refusal(engine: &Engine) -> String {
    match engine.facts().await {
        Err(err @ Error::Unavailable { .. }) => err.to_string(),
        other => panic!("expected the engine to be unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_speak_tls_with_verified_certificates() {
    let started = Instant::now();
    let Some(tls_engine) = TlsEngine::start().await else {
        return;
    };
    eprintln!("TLS dockerd up after {:?}", started.elapsed());
    let certs = &tls_engine.certificates;

    // Verified TLS, with PEM files and with inline PEM.
    for tls in [tls_engine.files(), certs.inline()] {
        let facts = engine(&tls_engine, &tls).facts().await.expect("a probe over TLS");
        assert!(!facts.version.is_empty(), "{facts:?}");
    }

    // An engine certificate that the given CA did not sign.
    let wrong_ca = EngineTls {
        ca: Some(Pem::Path(tls_engine.file("other-ca.pem"))),
        ..tls_engine.files()
    };
    let text = refusal(&engine(&tls_engine, &wrong_ca)).await;
    assert!(text.contains(&tls_engine.endpoint), "{text}");
    assert!(
        text.contains("UnknownIssuer") && text.contains("signed by tls.ca"),
        "{text}"
    );
    eprintln!("wrong CA: {text}");

    // No client certificate: `dockerd --tlsverify` refuses the connection.
    let anonymous = EngineTls {
        cert: None,
        key: None,
        ..tls_engine.files()
    };
    let text = refusal(&engine(&tls_engine, &anonymous)).await;
    assert!(text.contains(&tls_engine.endpoint), "{text}");
    assert!(text.contains("tls.cert, tls.key"), "{text}");
    eprintln!("no client certificate: {text}");

    // Without verification the wrong CA does not matter (the operator's own risk).
    let unverified = EngineTls {
        verify: false,
        ..wrong_ca
    };
    engine(&tls_engine, &unverified)
        .facts()
        .await
        .expect("a probe without verification");

    // A cluster's network made and removed over TLS.
    let engine = engine(&tls_engine, &certs.inline());
    let cluster = Cluster::new(
        format!("tls-{}", &poolcore::model::new_id()[..8]),
        "bp",
        "tls-host",
    );
    engine
        .ensure_network(&cluster, ClusterNetwork::Bridge)
        .await
        .expect("a network over TLS");
    let filter = LabelFilter::cluster(&cluster.id);
    assert_eq!(engine.networks(&filter).await.expect("networks").len(), 1);
    let removed = engine
        .remove_networks(&filter, Duration::from_secs(10))
        .await
        .expect("networks removed over TLS");
    assert!(removed.contains(&cluster.id));

    drop(tls_engine);
    eprintln!("TLS engine test done after {:?}", started.elapsed());
}
