//! The benchmarks' pieces: seeding a store with ready clusters, summarising
//! latencies, and the `poolmanager-bench` load generator ([`load`], [`server`],
//! [`plot`]).

pub mod load;
pub mod plot;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
use poolcore::Store;

/// Adds one active host, one blueprint and `clusters` ready clusters; returns the
/// blueprint name.
pub async fn seed(store: &Arc<dyn Store>, clusters: usize) -> String {
    let host = sample_host();
    let blueprint = sample_blueprint();
    store.insert_host(&host).await.expect("seed host");
    store.insert_blueprint(&blueprint).await.expect("seed blueprint");
    for _ in 0..clusters {
        store
            .insert_cluster(&ready_cluster(&blueprint.name, &host.id), u32::MAX)
            .await
            .expect("seed cluster");
    }
    blueprint.name
}

/// p50, p90, p99 and max of `samples`, sorted in place.
pub fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!(
        "n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        samples[samples.len() - 1]
    )
}
