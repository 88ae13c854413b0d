//! The grant relay: delivers every pending source of the grant outbox to asset-svc, as this service, until none is
//! left; woken by every commit that marks a source and by a periodic sweep, and backing off while asset-svc is
//! unreachable. A delivery is marked done only after asset-svc answered, and asset-svc ignores one older than
//! what it holds, so restarts on either side neither lose nor double a grant.

use std::{sync::Arc, time::Duration};

use highwind_proto::asset::internal::v1 as pb;
use tokio::sync::Notify;

use crate::{
    asset_client::GrantSink,
    domain::{grants::Grants, names},
    store::{StoreError, Stores, outbox::Pending, read_all},
};

/// Sources read per round, and rows per page while reading one.
const BATCH: usize = 100;
/// How often pending sources are looked for without a wake-up (after a restart, or another replica's writes).
const SWEEP: Duration = Duration::from_secs(5);
/// Longest wait between attempts while asset-svc fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The outbox could not be read or updated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// asset-svc refused or could not be reached.
    #[error("{0}")]
    Delivery(String),
}

/// Delivers the grant outbox of `stores` to `sink`.
#[derive(Debug, Clone)]
pub struct GrantRelay {
    stores: Stores,
    sink: Arc<dyn GrantSink>,
    changed: Arc<Notify>,
}

impl GrantRelay {
    /// A relay woken whenever `stores` mark a source.
    pub fn new(stores: Stores, sink: Arc<dyn GrantSink>) -> Self {
        let changed = stores.changed.clone();
        Self { stores, sink, changed }
    }

    /// Delivers until the task is dropped.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.deliver_pending().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep(SWEEP) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "grant delivery failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Delivers every pending source once. A source asset-svc refuses does not hold up the others: the sweep goes
    /// on, and the first failure is returned at the end so the caller backs off before trying it again.
    pub async fn deliver_pending(&self) -> Result<(), RelayError> {
        let mut first_failure = None;
        let mut after: Option<String> = None;
        loop {
            let batch = self.stores.outbox.pending(after.as_deref(), BATCH).await?;
            for pending in &batch {
                if let Err(error) = self.deliver(pending).await {
                    tracing::warn!(source = %pending.source, %error, "grant delivery failed; the source stays pending");
                    first_failure.get_or_insert(error);
                }
            }
            if batch.len() < BATCH {
                return first_failure.map_or(Ok(()), Err);
            }
            after = batch.last().map(|p| p.source.clone());
        }
    }

    async fn deliver(&self, pending: &Pending) -> Result<(), RelayError> {
        let grants = grants_of(&self.stores, &pending.source).await?;
        let request = pb::ReplaceGrantsRequest {
            source: pending.source.clone(),
            sequence: pending.version,
            principals: grants.principals.into_iter().collect(),
            targets: grants
                .targets
                .into_iter()
                .map(|(asset, version_number)| pb::GrantTarget { asset, version_number })
                .collect(),
        };
        let applied = self.sink.replace_grants(request).await.map_err(|e| RelayError::Delivery(e.to_string()))?;
        self.stores.outbox.delivered(pending).await?;
        tracing::debug!(source = %pending.source, version = pending.version, applied, "grants delivered");
        Ok(())
    }
}

/// The grants `source` justifies now, read through the repositories; empty when it names nothing that exists.
pub async fn grants_of(stores: &Stores, source: &str) -> Result<Grants, StoreError> {
    if let Ok(id) = names::parse_entitlement_name(source) {
        let Some(bought) = stores.market.get_entitlement(id).await? else {
            return Ok(Grants::default());
        };
        let release = stores.use_cases.get_release(bought.use_case_id, bought.release_number).await?;
        return Ok(release.map(|r| Grants::of_entitlement(bought.buyer, &r.links)).unwrap_or_default());
    }
    let Ok(id) = names::parse_use_case_name(source) else {
        return Ok(Grants::default());
    };
    let repo = stores.use_cases.as_ref();
    let time_key = |create_time: chrono::DateTime<chrono::Utc>, id| (create_time.timestamp_micros(), id);
    let members =
        read_all(BATCH, move |after| repo.list_members(id, after, BATCH), |m| time_key(m.create_time, m.id)).await?;
    let links =
        read_all(BATCH, move |after| repo.list_links(id, after, BATCH), |l| time_key(l.create_time, l.id)).await?;
    let releases = read_all(BATCH, move |before| repo.list_releases(id, before, BATCH), |r| r.number).await?;
    let members = members.into_iter().map(|m| (m.principal, m.role));
    let links = links.into_iter().map(|l| {
        let sharer = if l.linked_by_owner() { l.asset_owner.clone() } else { String::new() };
        (l.asset.clone(), l.selector.pinned(), sharer)
    });
    let releases: Vec<_> = releases.into_iter().flat_map(|r| r.links).collect();
    Ok(Grants::of_use_case(members, links, &releases))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::Utc;

    use super::*;
    use crate::{
        asset_client::DirectoryError,
        domain::use_case::{UseCase, UseCaseDraft},
    };

    /// asset-svc as the relay sees it: down until told otherwise, recording what it applied.
    #[derive(Debug, Default)]
    struct Sink {
        up: Mutex<bool>,
        refused: Mutex<Option<String>>,
        applied: Mutex<Vec<(String, i64, Vec<String>)>>,
    }

    #[async_trait]
    impl GrantSink for Sink {
        async fn replace_grants(&self, request: pb::ReplaceGrantsRequest) -> Result<bool, DirectoryError> {
            if !*self.up.lock().expect("lock") {
                return Err(DirectoryError::unreachable("connection refused"));
            }
            if self.refused.lock().expect("lock").as_deref() == Some(request.source.as_str()) {
                return Err(DirectoryError::unreachable("InvalidArgument: too many grants"));
            }
            self.applied.lock().expect("lock").push((request.source, request.sequence, request.principals));
            Ok(true)
        }
    }

    #[tokio::test]
    async fn a_change_stays_pending_until_asset_svc_has_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = highwind_common::db::testing::fresh_sqlite_url(dir.path());
        let db = highwind_common::db::Database::connect(&url, 2).await.expect("sqlite");
        let stores = crate::store::open(db).await.expect("migrate");
        let draft = UseCaseDraft { display_name: "shared".into(), ..Default::default() };
        let use_case = UseCase::create(draft, "users/alice", Utc::now()).expect("valid");
        stores.use_cases.create(&use_case, &[], None).await.expect("create");

        let sink = Arc::new(Sink::default());
        let relay = GrantRelay::new(stores.clone(), sink.clone());
        assert!(relay.deliver_pending().await.is_err(), "asset-svc is down");
        assert_eq!(stores.outbox.pending(None, 10).await.expect("pending").len(), 1, "nothing is lost");

        *sink.up.lock().expect("lock") = true;
        relay.deliver_pending().await.expect("delivered");
        assert!(stores.outbox.pending(None, 10).await.expect("pending").is_empty());
        relay.deliver_pending().await.expect("nothing to do");
        let applied = sink.applied.lock().expect("lock").clone();
        let source = names::use_case_name(use_case.id);
        assert_eq!(applied, [(source, 1, vec!["users/alice".to_owned()])], "delivered once");
    }

    #[tokio::test]
    async fn a_source_asset_svc_refuses_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = highwind_common::db::testing::fresh_sqlite_url(dir.path());
        let db = highwind_common::db::Database::connect(&url, 2).await.expect("sqlite");
        let stores = crate::store::open(db).await.expect("migrate");
        let mut sources = Vec::new();
        for name in ["first", "second"] {
            let draft = UseCaseDraft { display_name: name.into(), ..Default::default() };
            let use_case = UseCase::create(draft, "users/alice", Utc::now()).expect("valid");
            stores.use_cases.create(&use_case, &[], None).await.expect("create");
            sources.push(names::use_case_name(use_case.id));
        }
        sources.sort();
        let sink = Arc::new(Sink { up: Mutex::new(true), ..Default::default() });
        *sink.refused.lock().expect("lock") = Some(sources[0].clone());
        let relay = GrantRelay::new(stores.clone(), sink.clone());
        assert!(relay.deliver_pending().await.is_err(), "the refusal is reported");
        let delivered: Vec<_> = sink.applied.lock().expect("lock").iter().map(|(s, _, _)| s.clone()).collect();
        assert_eq!(delivered, [sources[1].clone()], "the other source went out");
        let pending = stores.outbox.pending(None, 10).await.expect("pending");
        assert_eq!(pending.iter().map(|p| p.source.clone()).collect::<Vec<_>>(), [sources[0].clone()]);
    }
}
