//! Placement: which hosts may hold a blueprint's clusters (its host selector, matched
//! against the hosts' labels) and how its new clusters are laid out over them.
//!
//! A blueprint whose ready buffer or `max_total` limits how many it has is laid out
//! over every active autofill host its selector admits: `spread` puts each new
//! cluster on the host with the fewest of the blueprint's clusters, `packed` on the
//! fullest host that still has room. A fill of one host makes that host's part of the
//! layout, so that the fills of several hosts (a reconcile pass, a top-up) add up to
//! the layout of all. A blueprint without a limit takes whatever room each admitted
//! autofill host has, so its strategy changes nothing.

use std::collections::{BTreeMap, HashMap};

use tracing::info;

use super::Pool;
use crate::error::{Error, Result};
use crate::limits;
use crate::model::{
    Blueprint, ClusterCount, ClusterFilter, ClusterStatus, Host, HostStatus, Page, PlacementStrategy,
};

/// One host as a layout sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostLoad {
    /// Clusters of the blueprint being laid out.
    pub of_blueprint: u64,
    /// Clusters of every blueprint.
    pub total: u64,
    /// Most clusters the host may hold.
    pub capacity: u64,
}

impl HostLoad {
    fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.total)
    }
}

/// Lays `count` new clusters of one blueprint out over `hosts` by `strategy`; returns
/// how many land on each host, in the order of `hosts`. Fewer than `count` are laid
/// out when the hosts run out of room.
pub fn lay_out(strategy: PlacementStrategy, hosts: &[HostLoad], count: u64) -> Vec<u64> {
    let mut loads = hosts.to_vec();
    let mut placed = vec![0; hosts.len()];
    for _ in 0..count {
        let with_room = loads.iter().enumerate().filter(|(_, h)| h.room() > 0);
        let chosen = match strategy {
            // The fewest of the blueprint's, then the most room, then the first.
            PlacementStrategy::Spread => {
                with_room.min_by_key(|(i, h)| (h.of_blueprint, std::cmp::Reverse(h.room()), *i))
            }
            // The fullest, then the first.
            PlacementStrategy::Packed => with_room.min_by_key(|(i, h)| (h.room(), *i)),
        };
        let Some((i, _)) = chosen else { break };
        loads[i].of_blueprint += 1;
        loads[i].total += 1;
        placed[i] += 1;
    }
    placed
}

/// [`Error::Invalid`] when `blueprint`'s host selector does not admit `host`.
pub(super) fn check_admits(blueprint: &Blueprint, host: &Host) -> Result<()> {
    if blueprint.placement.admits(host) {
        return Ok(());
    }
    let wanted: Vec<String> = blueprint
        .placement
        .host_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Err(Error::invalid(
        "blueprint",
        format!(
            "blueprint {} only goes on hosts labelled {}, which host {} is not",
            limits::quoted(&blueprint.name),
            wanted.join(", "),
            limits::quoted(&host.name)
        ),
    ))
}

impl Pool {
    /// Narrows each limited blueprint's `room` to the part of it that its placement
    /// lays on `host`, out of every active autofill host it admits (and `host`).
    /// Called under the planning lock, with `room` from `buffer_room` over the same
    /// cluster `counts`.
    pub(super) async fn share_of_room(
        &self,
        host: &Host,
        blueprints: &[Blueprint],
        counts: &[ClusterCount],
        room: &mut BTreeMap<String, u64>,
    ) -> Result<()> {
        if room.values().all(|left| *left == 0) {
            return Ok(());
        }
        let hosts = self.hosts().await?;
        let mut per_host: HashMap<&str, u64> = HashMap::new();
        let mut per_pair: HashMap<(String, String), u64> = HashMap::new();
        for c in counts {
            if c.status == ClusterStatus::Deleting {
                continue;
            }
            *per_host.entry(c.host_id.as_str()).or_default() += c.count;
            *per_pair
                .entry((c.host_id.clone(), c.blueprint.clone()))
                .or_default() += c.count;
        }
        for blueprint in blueprints {
            let Some(left) = room.get_mut(&blueprint.name) else {
                continue;
            };
            if *left == 0 {
                continue;
            }
            let candidates: Vec<&Host> = hosts
                .iter()
                .filter(|h| {
                    h.id == host.id
                        || (h.autofill && h.status == HostStatus::Active && blueprint.placement.admits(h))
                })
                .collect();
            let loads: Vec<HostLoad> = candidates
                .iter()
                .map(|h| HostLoad {
                    of_blueprint: per_pair
                        .get(&(h.id.clone(), blueprint.name.clone()))
                        .copied()
                        .unwrap_or(0),
                    total: per_host.get(h.id.as_str()).copied().unwrap_or(0),
                    capacity: u64::from(h.capacity),
                })
                .collect();
            let placed = lay_out(blueprint.placement.strategy, &loads, *left);
            *left = candidates
                .iter()
                .position(|h| h.id == host.id)
                .map_or(0, |i| placed[i]);
        }
        Ok(())
    }

    /// Starts removing the free clusters on hosts their blueprint's host selector no
    /// longer admits (the selector or the host's labels changed); fills make their
    /// replacements on admitted hosts. Applied clusters stay until released. Returns
    /// how many.
    pub(super) async fn remove_misplaced(&self, blueprints: &[Blueprint], hosts: &[Host]) -> Result<u32> {
        let selective: Vec<&Blueprint> = blueprints
            .iter()
            .filter(|b| !b.placement.host_selector.is_empty())
            .collect();
        if selective.is_empty() {
            return Ok(0);
        }
        let hosts: HashMap<&str, &Host> = hosts.iter().map(|h| (h.id.as_str(), h)).collect();
        let _planning = self.inner.planning.lock().await;
        let mut removed = 0;
        for blueprint in selective {
            let free = ClusterFilter {
                status: Some(ClusterStatus::Ready),
                blueprints: Some(vec![blueprint.name.clone()]),
                ..ClusterFilter::default()
            };
            for cluster in self.store().list_clusters(&free, Page::ALL).await?.items {
                let admitted = hosts
                    .get(cluster.host_id.as_str())
                    .is_none_or(|h| blueprint.placement.admits(h));
                if admitted || self.is_busy(&cluster.id) {
                    continue;
                }
                // One applied meanwhile stays until released.
                if self.start_removing_free(cluster, "misplaced").await? {
                    info!(blueprint = %blueprint.name, "the blueprint no longer admits the host of a free cluster");
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(of_blueprint: u64, total: u64, capacity: u64) -> HostLoad {
        HostLoad {
            of_blueprint,
            total,
            capacity,
        }
    }

    #[test]
    fn spread_evens_out_the_blueprint_over_the_hosts() {
        let hosts = [load(0, 0, 10), load(0, 0, 10), load(0, 0, 10)];
        assert_eq!(lay_out(PlacementStrategy::Spread, &hosts, 5), vec![2, 2, 1]);
        // A host that already holds two gets the new ones last.
        let hosts = [load(2, 2, 10), load(0, 0, 10), load(0, 5, 10)];
        assert_eq!(lay_out(PlacementStrategy::Spread, &hosts, 3), vec![0, 2, 1]);
    }

    #[test]
    fn packed_fills_the_fullest_host_first() {
        let hosts = [load(0, 1, 4), load(0, 3, 4), load(0, 0, 4)];
        assert_eq!(lay_out(PlacementStrategy::Packed, &hosts, 4), vec![3, 1, 0]);
    }

    #[test]
    fn a_layout_stops_where_the_hosts_are_full() {
        let hosts = [load(0, 2, 3), load(0, 4, 4)];
        for strategy in PlacementStrategy::ALL {
            assert_eq!(lay_out(*strategy, &hosts, 5), vec![1, 0], "{strategy}");
        }
        assert_eq!(lay_out(PlacementStrategy::Spread, &[], 5), Vec::<u64>::new());
    }
}
