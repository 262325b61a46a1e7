//! Creation slots: a host's parallelism and the pool's creation limit held across two
//! servers sharing one store, counted on the simulated engine that does the work.

use poolcore::{HostKind, HostPatch, NewHost, PoolConfig};
use poolcore_rules::{Rig, STORES};
use poolcore_sim::Latencies;

/// Two servers on one store fill `hosts` (all on one simulated engine) side by side;
/// returns the most creations the engine saw in flight, per store kind.
async fn most_at_once(config: PoolConfig, hosts: &[(&str, u32)]) -> Vec<u64> {
    let mut seen = Vec::new();
    for kind in STORES {
        let rig = Rig::with_config(kind, config.clone()).await;
        let engine = rig.engine("shared");
        engine.set_latencies(Latencies {
            create_ms: 100,
            ..Latencies::NONE
        });
        rig.blueprint("bp", &[]).await;
        let second = rig.second_server();
        // Each server fills half of each host, the second while the first still works.
        for (name, capacity) in hosts {
            let new = NewHost {
                kind: HostKind::Sim,
                autofill: false,
                ..NewHost::docker(*name, "sim://shared", capacity / 2)
            };
            let host = rig.pool.add_host(new).await.expect("host");
            rig.pool.fill_host(&host.id, None).await.expect("fill");
            let full = HostPatch {
                capacity: Some(*capacity),
                ..HostPatch::default()
            };
            second.update_host(&host.id, full).await.expect("grow");
            second.fill_host(&host.id, None).await.expect("fill");
        }
        rig.pool.wait_idle().await;
        second.wait_idle().await;
        let total: u32 = hosts.iter().map(|(_, c)| c).sum();
        assert_eq!(
            engine.clusters().len(),
            total as usize,
            "{kind:?}: every host filled"
        );
        seen.push(engine.counters().most_creates_at_once);
    }
    seen
}

#[tokio::test]
async fn a_hosts_parallelism_can_hold_across_servers() {
    let own = PoolConfig::default().with_host_parallelism(2);
    let shared = own.clone().with_shared_host_parallelism(true);
    let per_server = most_at_once(own, &[("h1", 8)]).await;
    assert!(
        per_server.iter().all(|n| *n > 2),
        "each server takes its own 2: {per_server:?}"
    );
    let held = most_at_once(shared, &[("h1", 8)]).await;
    assert_eq!(held, vec![2, 2], "two at once on the host, over both servers");
}

#[tokio::test]
async fn a_creation_limit_holds_over_hosts_and_servers() {
    let config = PoolConfig::default()
        .with_host_parallelism(4)
        .with_creation_limit(Some(3));
    let held = most_at_once(config, &[("h1", 6), ("h2", 6)]).await;
    assert_eq!(held, vec![3, 3], "three at once in all");
}
