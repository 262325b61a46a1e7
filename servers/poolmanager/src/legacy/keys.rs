//! The keys each legacy call reads, typed. They are documented in the spec as these
//! objects and read by [`FromParams`] from wherever the request holds them.

use poem_openapi::{Enum, Object};
use poolcore::{Labels, NodeAction};

use super::cluster::{MODE, PLUGIN, SIZE};
use super::envelope::Failure;
use super::params::{FromParams, Params};

/// The original's filters, matched against blueprint labels of the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
#[oai(rename = "LegacyLabelFilter")]
pub struct LabelKeys {
    /// Only clusters of blueprints labelled `consensus_plugin` with this value.
    pub consensus_plugin: Option<String>,
    /// Only clusters of blueprints labelled `consensus_mode` with this value.
    pub consensus_mode: Option<String>,
    /// Only clusters of blueprints labelled `size` with this number.
    pub size: Option<u32>,
}

impl LabelKeys {
    /// The blueprint labels asked for.
    pub fn labels(&self) -> Labels {
        let size = self.size.map(|s| s.to_string());
        [
            (PLUGIN, &self.consensus_plugin),
            (MODE, &self.consensus_mode),
            (SIZE, &size),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value.clone()?)))
        .collect()
    }
}

impl FromParams for LabelKeys {
    fn from_params(p: &Params) -> Result<Self, Failure> {
        Ok(LabelKeys {
            consensus_plugin: p.given(PLUGIN)?,
            consensus_mode: p.given(MODE)?,
            size: p.number(SIZE)?,
        })
    }
}

/// The keys of an apply, and the user of the other actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
#[oai(rename = "LegacyApply")]
pub struct ApplyKeys {
    /// The user. Apply: who gets the cluster (required). Release: alone, every
    /// cluster of this user; with `cluster_id`, the user it is applied to. Start,
    /// stop, restart: the user the cluster is applied to.
    pub user_id: Option<String>,
    /// Hand out another cluster even when the user holds a matching one: `true`,
    /// `false`, `True`, `False`, `1` or `0` (default false).
    pub allow_multiple: Option<bool>,
    /// `/v1/cluster_apply`'s name for `allow_multiple`: `1` or `0`.
    pub new: Option<bool>,
    /// Which clusters may be handed out.
    #[oai(flatten)]
    pub filter: LabelKeys,
}

impl ApplyKeys {
    /// Whether the apply may hand out another cluster to a user who holds one.
    pub fn multiple(&self) -> bool {
        self.allow_multiple.or(self.new).unwrap_or(false)
    }
}

impl FromParams for ApplyKeys {
    fn from_params(p: &Params) -> Result<Self, Failure> {
        Ok(ApplyKeys {
            user_id: p.given("user_id")?,
            allow_multiple: p.flag("allow_multiple")?,
            new: p.flag("new")?,
            filter: LabelKeys::from_params(p)?,
        })
    }
}

/// The keys of a release: one cluster, or every cluster of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
#[oai(rename = "LegacyRelease")]
pub struct ReleaseKeys {
    /// Release this cluster.
    pub cluster_id: Option<String>,
    /// Alone, release every cluster of this user; with `cluster_id`, the user the
    /// cluster is applied to.
    pub user_id: Option<String>,
}

impl FromParams for ReleaseKeys {
    fn from_params(p: &Params) -> Result<Self, Failure> {
        Ok(ReleaseKeys {
            cluster_id: p.given("cluster_id")?,
            user_id: p.given("user_id")?,
        })
    }
}

/// What `/v2/cluster_op` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "LegacyAction", rename_all = "lowercase")]
pub enum Action {
    /// Hand a cluster to `user_id`.
    Apply,
    /// Give back `cluster_id`, or every cluster of `user_id`.
    Release,
    /// Start `cluster_id`, or its node `node_id`.
    Start,
    /// Stop `cluster_id`, or its node `node_id`.
    Stop,
    /// Restart `cluster_id`, or its node `node_id`.
    Restart,
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        [
            Action::Apply,
            Action::Release,
            Action::Start,
            Action::Stop,
            Action::Restart,
        ]
        .into_iter()
        .find(|a| a.name() == text)
    }

    fn name(self) -> &'static str {
        match self {
            Action::Apply => "apply",
            Action::Release => "release",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    /// The node action of `start`, `stop` and `restart`.
    pub fn node_action(self) -> Option<NodeAction> {
        match self {
            Action::Start => Some(NodeAction::Start),
            Action::Stop => Some(NodeAction::Stop),
            Action::Restart => Some(NodeAction::Restart),
            Action::Apply | Action::Release => None,
        }
    }
}

/// The original's answer to a missing or unknown `action`.
pub fn unknown_action() -> Failure {
    Failure::invalid("Unknown action type")
}

/// The keys of `/v2/cluster_op`.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "LegacyClusterOp")]
pub struct ClusterOpKeys {
    /// What to do; a missing or unknown action fails with `Unknown action type`.
    pub action: Option<Action>,
    /// Release, start, stop, restart: the cluster.
    pub cluster_id: Option<String>,
    /// Start, stop, restart: one node of the cluster (its name in the blueprint, e.g.
    /// `vp0`) instead of all.
    pub node_id: Option<String>,
    /// The user, and what an apply asks for.
    #[oai(flatten)]
    pub apply: ApplyKeys,
}

impl ClusterOpKeys {
    /// The keys of a release.
    pub fn release(&self) -> ReleaseKeys {
        ReleaseKeys {
            cluster_id: self.cluster_id.clone(),
            user_id: self.apply.user_id.clone(),
        }
    }
}

impl FromParams for ClusterOpKeys {
    /// The action is read first: an unknown one fails as such, whatever else is wrong.
    fn from_params(p: &Params) -> Result<Self, Failure> {
        let action = p.given("action")?.as_deref().and_then(Action::parse);
        if action.is_none() {
            return Err(unknown_action());
        }
        Ok(ClusterOpKeys {
            action,
            cluster_id: p.given("cluster_id")?,
            node_id: p.given("node_id")?,
            apply: ApplyKeys::from_params(p)?,
        })
    }
}

/// Filters of `/v2/clusters`; none lists every cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
#[oai(rename = "LegacyClusterFilter")]
pub struct FilterKeys {
    /// `""` for the free (ready) clusters; a user's id for the clusters applied to them.
    pub user_id: Option<String>,
    /// Only the clusters on this host.
    pub host_id: Option<String>,
    /// Only clusters of blueprints with these labels.
    #[oai(flatten)]
    pub labels: LabelKeys,
}

const FILTERS: [&str; 5] = ["user_id", "host_id", PLUGIN, MODE, SIZE];

impl FromParams for FilterKeys {
    /// A key that is not a filter here is refused: ignoring it would list more than
    /// the caller asked for.
    fn from_params(p: &Params) -> Result<Self, Failure> {
        if let Some(key) = p.keys().find(|key| !FILTERS.contains(key)) {
            return Err(Failure::invalid(format!(
                "cannot filter clusters on {key:?}: the filters are {}",
                FILTERS.join(", ")
            )));
        }
        Ok(FilterKeys {
            user_id: p.text("user_id")?,
            host_id: p.given("host_id")?,
            labels: LabelKeys::from_params(p)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Params {
        Params::parse(q, None, b"")
    }

    #[test]
    fn an_unknown_action_fails_first() {
        for q in ["", "action=fly", "action=fly&size=four", "action=APPLY"] {
            assert_eq!(
                ClusterOpKeys::from_params(&query(q)),
                Err(unknown_action()),
                "{q}"
            );
        }
        let op = ClusterOpKeys::from_params(&query("action=stop&cluster_id=c&node_id=vp0")).expect("keys");
        assert_eq!(op.action.and_then(Action::node_action), Some(NodeAction::Stop));
        assert_eq!(
            op.release(),
            ReleaseKeys {
                cluster_id: Some("c".into()),
                user_id: None
            }
        );
    }

    #[test]
    fn apply_filters_become_labels() {
        let keys = ApplyKeys::from_params(&query(
            "user_id=u&consensus_plugin=pbft&consensus_mode=&size=4&new=1",
        ))
        .expect("keys");
        assert!(keys.multiple(), "new=1");
        let labels = keys.filter.labels();
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("consensus_plugin", "pbft"), ("size", "4")]);
        let keys = ApplyKeys::from_params(&query("user_id=u&allow_multiple=False&new=1")).expect("keys");
        assert!(!keys.multiple(), "allow_multiple wins over new");
    }

    #[test]
    fn cluster_filters_keep_the_empty_user_and_refuse_unknown_keys() {
        let keys = FilterKeys::from_params(&Params::parse("", None, br#"{"user_id": "", "size": 4}"#))
            .expect("keys");
        assert_eq!(keys.user_id.as_deref(), Some(""), "\"\" asks for free clusters");
        assert_eq!(keys.labels.size, Some(4));
        let err = FilterKeys::from_params(&query("status=running")).expect_err("unknown filter");
        assert!(err.error.contains("status"), "{err:?}");
    }
}
