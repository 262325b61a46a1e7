//! Applies and releases per minute, kept beside the lease records: the lease history
//! reads these instead of every lease of the period.
//!
//! One document per minute: `_id` is the minute's start in Unix seconds, `applied`
//! and `released` its counts. A write that first writes a lease record, or first
//! closes one (a claim's batch, a release, the lease repair), adds to them with an
//! `$inc` upsert right after. MongoDB has no transaction between the two here, so a
//! crash between a lease write and its count leaves that lease out of the counts,
//! and a count that fails is logged and left out; the lease records stay whole. A
//! database of an earlier version gets its counts from its lease records when a
//! store first connects to it.

use std::collections::BTreeMap;

use bson::{doc, Document};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Collection;
use poolcore::{LeaseActivity, LeaseRecord, MinuteSummary};
use tracing::warn;

use crate::core::MongoStore;
use crate::documents::{self, date};
use crate::error::{is_duplicate_key, MongoError};

/// The collection of the per-minute counts.
pub(crate) const LEASE_MINUTES: &str = "lease_minutes";

/// Something to count: a lease applied, or released, at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeaseEvent {
    Applied(DateTime<Utc>),
    Released(DateTime<Utc>),
}

/// The apply of `lease` and, if it is closed, its release.
pub(crate) fn events_of(lease: &LeaseRecord) -> impl Iterator<Item = LeaseEvent> {
    std::iter::once(LeaseEvent::Applied(lease.applied_at)).chain(lease.released_at.map(LeaseEvent::Released))
}

/// `events` added up per minute: start in Unix seconds → (applied, released).
fn per_minute(events: impl IntoIterator<Item = LeaseEvent>) -> BTreeMap<i64, (i64, i64)> {
    let mut minutes: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for event in events {
        let (at, applied) = match event {
            LeaseEvent::Applied(at) => (at, 1),
            LeaseEvent::Released(at) => (at, 0),
        };
        let minute = minutes
            .entry(MinuteSummary::minute_of(at).timestamp())
            .or_default();
        minute.0 += applied;
        minute.1 += 1 - applied;
    }
    minutes
}

/// Adds `events` to the counts, one upsert per minute they fall in; logs a failure
/// (the counts then miss those events).
pub(crate) async fn add_events(minutes: &Collection<Document>, events: impl IntoIterator<Item = LeaseEvent>) {
    for (minute, (applied, released)) in per_minute(events) {
        let update = doc! {"$inc": {"applied": applied, "released": released}};
        if let Err(e) = upsert(minutes, minute, update).await {
            warn!(minute, applied, released, error = %e, "lease activity not counted");
        }
    }
}

async fn upsert(minutes: &Collection<Document>, minute: i64, update: Document) -> Result<(), MongoError> {
    let filter = doc! {"_id": minute};
    match minutes
        .update_one(filter.clone(), update.clone())
        .upsert(true)
        .await
    {
        Ok(_) => Ok(()),
        // Another writer inserted the minute between the upsert's look and its insert.
        Err(e) if is_duplicate_key(&e) => Ok(minutes.update_one(filter, update).await.map(drop)?),
        Err(e) => Err(e.into()),
    }
}

/// A minute's document as the activity of that minute.
fn minute_from(doc: &Document) -> Option<LeaseActivity> {
    let start = documents::whole_number(doc.get("_id")).and_then(|s| i64::try_from(s).ok())?;
    Some(LeaseActivity {
        start: DateTime::from_timestamp(start, 0)?,
        applied: documents::whole_number(doc.get("applied")).unwrap_or(0),
        released: documents::whole_number(doc.get("released")).unwrap_or(0),
    })
}

/// The first millisecond at or after `at`: stored times have milliseconds, so a
/// stored time is before `at` exactly when it is before this.
fn ceil_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
    if floor < at {
        floor + chrono::Duration::milliseconds(1)
    } else {
        floor
    }
}

impl MongoStore {
    /// Adds `events` to the counts (see [`add_events`]).
    pub(crate) async fn count_events(&self, events: impl IntoIterator<Item = LeaseEvent>) {
        add_events(&self.lease_minutes, events).await;
    }

    /// Lease activity from the per-minute counts; the heads of the minutes bucket
    /// boundaries cut are counted from the lease records, side by side.
    pub(crate) async fn summarised_activity(
        &self,
        summary: &MinuteSummary,
    ) -> Result<Vec<LeaseActivity>, MongoError> {
        let docs: Vec<Document> = self
            .lease_minutes
            .find(doc! {"_id": {"$gte": summary.first_minute().timestamp()}})
            .sort(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        let minutes: Vec<LeaseActivity> = docs.iter().filter_map(minute_from).collect();
        let heads =
            futures::future::try_join_all(summary.heads(&minutes).map(|(start, end)| self.head(start, end)))
                .await?;
        Ok(summary.buckets(minutes, &heads))
    }

    /// The leases applied and released in `[start, end)`: a part of a minute, so few,
    /// read and counted here (nx-27017, the test server, answers a `$count` of a time
    /// range with nothing).
    async fn head(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<LeaseActivity, MongoError> {
        let range = doc! {"$gte": date(start), "$lt": date(ceil_millis(end))};
        let (applied, released) = futures::try_join!(
            self.lease_count(doc! {"applied_at": range.clone()}),
            self.lease_count(doc! {"released_at": range}),
        )?;
        Ok(LeaseActivity {
            start,
            applied,
            released,
        })
    }

    async fn lease_count(&self, filter: Document) -> Result<u64, MongoError> {
        let found = self.leases.find(filter).projection(doc! {"_id": 1}).await?;
        Ok(found.try_collect::<Vec<Document>>().await?.len() as u64)
    }

    /// Counts the lease records of a database whose counts are missing (written by an
    /// earlier version); returns how many minutes it wrote. Idempotent: it sets each
    /// minute's counts rather than adding to them.
    pub(crate) async fn summarise_leases(&self) -> Result<u64, MongoError> {
        if self.lease_minutes.find_one(doc! {}).await?.is_some() {
            return Ok(0);
        }
        let leases: Vec<Document> = self
            .leases
            .find(doc! {})
            .projection(doc! {"applied_at": 1, "released_at": 1})
            .await?
            .try_collect()
            .await?;
        let events = leases.into_iter().flat_map(|doc| {
            let time = |field| documents::stored_time(doc.get(field));
            let applied = time("applied_at").map(LeaseEvent::Applied);
            applied
                .into_iter()
                .chain(time("released_at").map(LeaseEvent::Released))
        });
        let minutes = per_minute(events);
        for (minute, (applied, released)) in &minutes {
            upsert(
                &self.lease_minutes,
                *minute,
                doc! {"$set": {"applied": applied, "released": released}},
            )
            .await?;
        }
        Ok(minutes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_add_up_per_minute() {
        let at = |s: i64| DateTime::from_timestamp(s, 500).expect("time");
        let minutes = per_minute([
            LeaseEvent::Applied(at(60)),
            LeaseEvent::Applied(at(119)),
            LeaseEvent::Released(at(120)),
            LeaseEvent::Released(at(-1)),
        ]);
        assert_eq!(
            minutes,
            BTreeMap::from([(-60, (0, 1)), (60, (2, 0)), (120, (0, 1))])
        );
    }

    #[test]
    fn ends_round_up_to_a_millisecond() {
        let t = DateTime::from_timestamp(10, 1_000_001).expect("time");
        assert_eq!(
            ceil_millis(t),
            DateTime::from_timestamp(10, 2_000_000).expect("time")
        );
        let exact = DateTime::from_timestamp(10, 3_000_000).expect("time");
        assert_eq!(ceil_millis(exact), exact);
    }
}
