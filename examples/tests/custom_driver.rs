//! The shared HostDriver conformance suite against the example's task driver.
//!
//! Its nodes run no processes, so the cases that need a node's command to exit or fail
//! a health check make it happen through the engine's fault hooks.

use std::sync::Arc;

use poolcore::conformance::driver::{run_all, DriverHarness, NodeFaults, TEST_IMAGE};
use poolcore::Host;
use poolmanager_examples::task_driver::{TaskConnector, TaskEngine};

struct Faults(TaskConnector);

impl Faults {
    fn engine(&self, host: &Host) -> Arc<TaskEngine> {
        match self.0.engine(&host.endpoint) {
            Some(engine) => engine,
            None => panic!("no engine at {}", host.endpoint),
        }
    }
}

impl NodeFaults for Faults {
    fn exit(&self, host: &Host, cluster_id: &str, node: &str) {
        if let Err(e) = self.engine(host).kill_node(cluster_id, node) {
            panic!("killing node {node} of {cluster_id}: {e}");
        }
    }

    fn fail_health_check(&self, host: &Host, cluster_id: &str, node: &str) {
        if let Err(e) = self.engine(host).make_unhealthy(cluster_id, node) {
            panic!("making node {node} of {cluster_id} unhealthy: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_driver_passes_the_conformance_suite() {
    let connector = TaskConnector::default();
    let engine = connector.start("sim://conformance", &[TEST_IMAGE]);
    let harness = DriverHarness::new(Arc::new(connector.clone()), "sim://conformance")
        .with_unreachable_endpoint("sim://never-started")
        .with_node_faults(Faults(connector.clone()))
        .with_parallelism(8);
    run_all(&harness).await;
    assert_eq!(engine.cluster_count(), 0, "the suite left clusters on the engine");
}
