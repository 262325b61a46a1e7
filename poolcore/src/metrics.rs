//! What the pool measures, through the [`metrics`] facade: the names, their labels,
//! and the helpers that record them.
//!
//! `poolcore` only records; a program installs a recorder to export them (the
//! PoolManager server serves them in Prometheus text format at `/metrics`). Without a
//! recorder, recording costs next to nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `poolmanager_apply_duration_seconds` | histogram | `outcome` |
//! | `poolmanager_applies_total` | counter | `outcome`: `served`, `held`, `exhausted`, `refused` |
//! | `poolmanager_releases_total` | counter | `reason`: `release`, `expired`, `deleted` |
//! | `poolmanager_cluster_create_duration_seconds` | histogram | `outcome`: `ready`, `failed` |
//! | `poolmanager_cluster_delete_duration_seconds` | histogram | `outcome`: `ok`, `error` |
//! | `poolmanager_operation_duration_seconds` | histogram | `kind`, `status` |
//! | `poolmanager_reconcile_pass_duration_seconds` | histogram | |
//! | `poolmanager_reconcile_errors_total` | counter | |
//! | `poolmanager_reconcile_actions_total` | counter | `action` |

use std::time::Duration;

use crate::model::{OperationKind, OperationStatus, ReleaseReason};
use crate::pool::ReconcileReport;

/// Time an apply took, by outcome.
pub const APPLY_DURATION: &str = "poolmanager_apply_duration_seconds";
/// Applies, by outcome.
pub const APPLIES: &str = "poolmanager_applies_total";
/// Releases, by reason.
pub const RELEASES: &str = "poolmanager_releases_total";
/// Time to make a cluster on its engine (creating or recycling), by outcome.
pub const CLUSTER_CREATE_DURATION: &str = "poolmanager_cluster_create_duration_seconds";
/// Time to remove a cluster from its engine, by outcome.
pub const CLUSTER_DELETE_DURATION: &str = "poolmanager_cluster_delete_duration_seconds";
/// Time a fill, clean or reset took, by kind and end status.
pub const OPERATION_DURATION: &str = "poolmanager_operation_duration_seconds";
/// Time a reconcile pass took (not the work it started).
pub const RECONCILE_PASS_DURATION: &str = "poolmanager_reconcile_pass_duration_seconds";
/// Errors met by reconcile passes.
pub const RECONCILE_ERRORS: &str = "poolmanager_reconcile_errors_total";
/// What reconcile passes did, by action.
pub const RECONCILE_ACTIONS: &str = "poolmanager_reconcile_actions_total";

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A new cluster was handed out.
    Served,
    /// The user's held cluster was handed back.
    Held,
    /// Nothing matching was ready.
    Exhausted,
    /// The request was refused (bad input, a conflict, a store error).
    Refused,
}

impl ApplyOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Served => "served",
            ApplyOutcome::Held => "held",
            ApplyOutcome::Exhausted => "exhausted",
            ApplyOutcome::Refused => "refused",
        }
    }
}

pub(crate) fn apply(outcome: ApplyOutcome, took: Duration) {
    let outcome = outcome.as_str();
    metrics::histogram!(APPLY_DURATION, "outcome" => outcome).record(took);
    metrics::counter!(APPLIES, "outcome" => outcome).increment(1);
}

pub(crate) fn release(reason: ReleaseReason) {
    metrics::counter!(RELEASES, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn cluster_created(ready: bool, took: Duration) {
    let outcome = if ready { "ready" } else { "failed" };
    metrics::histogram!(CLUSTER_CREATE_DURATION, "outcome" => outcome).record(took);
}

pub(crate) fn cluster_deleted(ok: bool, took: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::histogram!(CLUSTER_DELETE_DURATION, "outcome" => outcome).record(took);
}

pub(crate) fn operation(kind: OperationKind, status: OperationStatus, took: Duration) {
    metrics::histogram!(OPERATION_DURATION, "kind" => kind.as_str(), "status" => status.as_str())
        .record(took);
}

pub(crate) fn reconcile_pass(report: &ReconcileReport, took: Duration) {
    metrics::histogram!(RECONCILE_PASS_DURATION).record(took);
    metrics::counter!(RECONCILE_ERRORS).increment(report.errors.len() as u64);
    for (action, n) in [
        ("lease_expired", report.leases_expired),
        ("replaced", report.replaced),
        ("repaired", report.repaired),
        ("resumed", report.resumed),
        ("orphan_removed", report.orphans_removed),
        ("created", report.created),
        ("trimmed", report.trimmed),
        ("rolled_out", report.rolled_out),
        ("operation_interrupted", report.operations_interrupted),
    ] {
        if n > 0 {
            metrics::counter!(RECONCILE_ACTIONS, "action" => action).increment(u64::from(n));
        }
    }
}
