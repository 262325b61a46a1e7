//! The shared HostDriver conformance suite against the simulated engine.
//!
//! It needs no engine: the sim plays one in memory, with its published ports listening
//! on `127.0.0.1`. The cases that need a node to run a command (see the suite's docs)
//! make it fail through the engine's fault hooks instead.

use std::sync::Arc;

use poolcore::conformance::driver::{run_all, DriverHarness, NodeFaults};
use poolcore::Host;
use poolcore_sim::SimConnector;

/// Makes nodes exit or fail their health check on the sim engine of the host.
struct SimFaults(SimConnector);

impl NodeFaults for SimFaults {
    fn exit(&self, host: &Host, cluster_id: &str, node: &str) {
        let engine = self.0.engine(&host.endpoint);
        if let Err(e) = engine.kill_node(cluster_id, node) {
            panic!("killing node {node} of {cluster_id}: {e}");
        }
    }

    fn fail_health_check(&self, host: &Host, cluster_id: &str, node: &str) {
        let engine = self.0.engine(&host.endpoint);
        if let Err(e) = engine.make_unhealthy(cluster_id, node, "health check failed") {
            panic!("making node {node} of {cluster_id} unhealthy: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_driver_passes_the_conformance_suite() {
    let connector = SimConnector::new();
    connector.engine("sim://unreachable").set_down(true);
    let harness = DriverHarness::new(Arc::new(connector.clone()), "sim://conformance")
        .with_unreachable_endpoint("sim://unreachable")
        .with_node_faults(SimFaults(connector.clone()))
        .with_parallelism(8);
    run_all(&harness).await;

    let engine = connector.engine("sim://conformance");
    assert!(
        engine.clusters().is_empty(),
        "left behind: {:?}",
        engine.clusters()
    );
    let counters = engine.counters();
    assert!(
        counters.creates > 0 && counters.create_failures > 0,
        "{counters:?}"
    );
}
