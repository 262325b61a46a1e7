//! The legacy calls as [`Pool`] operations: the same rules and the same atomic claim
//! as `/api/v1`, answered in the original's terms.

use std::collections::BTreeMap;

use poolcore::{
    Actor, ApplyRequest, Cluster, ClusterFilter, ClusterStatus, NodeAction, Page, Pool, ReleaseTarget,
};

use super::access::Caller;
use super::cluster::LegacyCluster;
use super::envelope::{Failure, Nothing, OpData};
use super::keys::{unknown_action, Action, ApplyKeys, ClusterOpKeys, FilterKeys, ReleaseKeys};

/// `/v2/cluster_op`: the action named in `keys`.
pub async fn cluster_op(pool: &Pool, caller: Caller, keys: ClusterOpKeys) -> Result<OpData, Failure> {
    let action = keys.action.ok_or_else(unknown_action)?;
    match action.node_action() {
        Some(node_action) => {
            control(pool, caller, node_action, &keys).await?;
            Ok(OpData::Nothing(Nothing {}))
        }
        None if action == Action::Apply => apply(pool, keys.apply)
            .await
            .map(|c| OpData::Cluster(Box::new(c))),
        None => release(pool, caller, keys.release()).await.map(OpData::Nothing),
    }
}

/// Hands `keys.user_id` a ready cluster of a blueprint carrying the filter labels.
pub async fn apply(pool: &Pool, keys: ApplyKeys) -> Result<LegacyCluster, Failure> {
    let Some(user_id) = keys.user_id.clone() else {
        return Err(Failure::invalid("cluster_apply without user_id"));
    };
    let request = ApplyRequest {
        user_id: user_id.clone(),
        labels: keys.filter.labels(),
        allow_multiple: keys.multiple(),
        ..ApplyRequest::default()
    };
    let cluster = pool.apply(request).await.map_err(|err| match err {
        // The original's words for "nothing matches" (a quota is one more reason for
        // it), with ours after them.
        poolcore::Error::PoolExhausted { .. }
        | poolcore::Error::NotFound { .. }
        | poolcore::Error::QuotaExceeded { .. } => {
            Failure::invalid(format!("No available res for {user_id}: {err}"))
        }
        other => other.into(),
    })?;
    shown(pool, cluster).await
}

/// Gives back `keys.cluster_id`, or every cluster of `keys.user_id`; a failure names
/// both in its `data`, as the original's did.
pub async fn release(pool: &Pool, caller: Caller, keys: ReleaseKeys) -> Result<Nothing, Failure> {
    match released(pool, caller, &keys).await {
        Ok(_) => Ok(Nothing {}),
        Err(failure) => Err(failure
            .with_data("user_id", keys.user_id.as_deref())
            .with_data("cluster_id", keys.cluster_id.as_deref())),
    }
}

async fn released(pool: &Pool, caller: Caller, keys: &ReleaseKeys) -> Result<Vec<String>, Failure> {
    match (&keys.cluster_id, &keys.user_id) {
        (Some(id), user) => {
            let cluster = pool.cluster(id).await?;
            if !cluster.is_applied() {
                // Said as such, whoever asks (the pool would say it to the admin token).
                return Err(Failure::invalid(format!(
                    "cluster {id} is {}, not applied",
                    cluster.status
                )));
            }
            let actor = caller.actor(user.as_deref(), &cluster)?;
            Ok(pool.release(ReleaseTarget::Cluster(id.clone()), actor).await?)
        }
        (None, Some(user)) => Ok(pool
            .release(ReleaseTarget::User(user.clone()), Actor::User(user))
            .await?),
        (None, None) => Err(Failure::invalid("cluster_release without id")),
    }
}

/// Starts, stops or restarts `keys.cluster_id`, or its node `keys.node_id`.
async fn control(
    pool: &Pool,
    caller: Caller,
    action: NodeAction,
    keys: &ClusterOpKeys,
) -> Result<(), Failure> {
    let id = keys
        .cluster_id
        .as_deref()
        .ok_or_else(|| Failure::invalid("No cluster_id is given"))?;
    let cluster = pool.cluster(id).await?;
    let actor = caller.actor(keys.apply.user_id.as_deref(), &cluster)?;
    pool.control_cluster(id, action, keys.node_id.as_deref(), actor)
        .await?;
    Ok(())
}

/// `/v2/cluster/{id}`.
pub async fn get(pool: &Pool, id: &str) -> Result<LegacyCluster, Failure> {
    let cluster = pool.cluster(id).await.map_err(|err| match err {
        err if err.is_not_found() => Failure::not_found(format!("cluster not found with id={id}")),
        err => err.into(),
    })?;
    shown(pool, cluster).await
}

/// `/v2/clusters`: the clusters matching `keys`, by name.
pub async fn list(pool: &Pool, keys: FilterKeys) -> Result<Vec<LegacyCluster>, Failure> {
    let labels = keys.labels.labels();
    let blueprints = keyed(pool.blueprints().await?, |b| &b.name);
    let matching: Vec<String> = blueprints
        .values()
        .filter(|b| b.matches(&labels))
        .map(|b| b.name.clone())
        .collect();
    if matching.is_empty() {
        return Ok(Vec::new());
    }
    let (status, user_id) = match keys.user_id {
        Some(user) if user.is_empty() => (Some(ClusterStatus::Ready), None),
        Some(user) => (Some(ClusterStatus::Applied), Some(user)),
        None => (None, None),
    };
    let filter = ClusterFilter {
        status,
        host_id: keys.host_id,
        user_id,
        blueprints: (!labels.is_empty()).then_some(matching),
        ..ClusterFilter::default()
    };
    let clusters = pool.clusters(&filter, Page::ALL).await?.items;
    let hosts = keyed(pool.hosts().await?, |h| &h.id);
    Ok(clusters
        .into_iter()
        .map(|c| {
            let (host, blueprint) = (hosts.get(&c.host_id), blueprints.get(&c.blueprint));
            LegacyCluster::new(c, host, blueprint)
        })
        .collect())
}

fn keyed<T>(items: Vec<T>, key: impl Fn(&T) -> &String) -> BTreeMap<String, T> {
    items.into_iter().map(|item| (key(&item).clone(), item)).collect()
}

/// `cluster` with its host's endpoint and its blueprint's labels and API port; a host
/// or blueprint removed meanwhile leaves those fields empty.
async fn shown(pool: &Pool, cluster: Cluster) -> Result<LegacyCluster, Failure> {
    let host = unless_gone(pool.host(&cluster.host_id).await)?;
    let blueprint = unless_gone(pool.blueprint(&cluster.blueprint).await)?;
    Ok(LegacyCluster::new(cluster, host.as_ref(), blueprint.as_ref()))
}

fn unless_gone<T>(found: poolcore::Result<T>) -> Result<Option<T>, Failure> {
    match found {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err.into()),
    }
}
