//! `AssetLink.resolved_version`: the exact version each link names now. A pin names itself; an alias (or `latest`)
//! is asked of asset-svc as the reader, at read time, because aliases move without usecase-svc hearing of it.
//! Best effort: an alias that names nothing, a version that is not READY, or an asset-svc that does not answer
//! leaves the field empty and never fails the read.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use highwind_common::principal::Principal;
use highwind_proto::usecase::v1 as pb;

use super::convert::link_to_proto;
use crate::{
    asset_client::AssetDirectory,
    domain::link::{AssetLink, Selector},
};

/// How long one read waits for asset-svc in all, however many aliases it asks about.
pub const WAIT: Duration = Duration::from_secs(2);

/// Aliases asked about at once.
const CONCURRENT: usize = 8;

/// The wire form of `links`, each with the version it resolves to now for `principal`, asking for at most `wait`.
pub async fn links_to_proto(
    assets: &dyn AssetDirectory,
    principal: &Principal,
    links: &[AssetLink],
    wait: Duration,
) -> Vec<pb::AssetLink> {
    let resolved = resolve(assets, principal, links, wait).await;
    links.iter().zip(resolved).map(|(link, number)| link_to_proto(link, number)).collect()
}

/// The wire form of `link` with the version it resolves to now for `principal`.
pub async fn link_to_proto_now(assets: &dyn AssetDirectory, principal: &Principal, link: &AssetLink) -> pb::AssetLink {
    links_to_proto(assets, principal, std::slice::from_ref(link), WAIT).await.remove(0)
}

/// The version number each of `links` names now, in order: a pin its own, an alias what asset-svc answers within
/// `wait` (`None` when it answers nothing usable, or nothing at all).
async fn resolve(
    assets: &dyn AssetDirectory,
    principal: &Principal,
    links: &[AssetLink],
    wait: Duration,
) -> Vec<Option<i64>> {
    let alias_version = |link: &AssetLink| match &link.selector {
        Selector::Alias(alias) => Some(format!("{}/versions/{alias}", link.asset)),
        Selector::Pinned(_) => None,
    };
    // Links of one asset in several roles often follow the same alias: ask once.
    let mut asked: Vec<String> = links.iter().filter_map(alias_version).collect();
    asked.sort_unstable();
    asked.dedup();
    let deadline = tokio::time::Instant::now() + wait;
    let found: HashMap<String, i64> = futures::stream::iter(asked)
        .map(|version| async move {
            let answer = tokio::time::timeout_at(deadline, assets.resolve(principal, &version)).await;
            let number = match answer {
                Ok(Ok(Some(found))) if found.usable => Some(found.number),
                Ok(Ok(_)) => None,
                Ok(Err(e)) => {
                    tracing::debug!(version = %version, error = %e, "alias left unresolved");
                    None
                }
                Err(_) => {
                    tracing::debug!(version = %version, "alias left unresolved: the asset service did not answer in time");
                    None
                }
            };
            number.map(|n| (version, n))
        })
        .buffer_unordered(CONCURRENT)
        .filter_map(std::future::ready)
        .collect()
        .await;
    links
        .iter()
        .map(|link| match &link.selector {
            Selector::Pinned(n) => Some(*n),
            Selector::Alias(_) => alias_version(link).and_then(|v| found.get(&v).copied()),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use async_trait::async_trait;
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::{
        asset_client::{AssetInfo, DirectoryError, ResolvedVersion},
        domain::link::LinkRole,
    };

    const ASSET: &str = "assets/0190b5b2-8c1e-7000-8000-000000000001";

    /// asset-svc as it answers, down, or silent.
    #[derive(Debug)]
    enum Directory {
        /// `production` names version 4 (READY), `staging` version 5 (not READY), nothing else resolves.
        Answering,
        Down,
        Silent,
    }

    #[async_trait]
    impl AssetDirectory for Directory {
        async fn describe(&self, _: &Principal, _: &str) -> Result<Option<AssetInfo>, DirectoryError> {
            unreachable!("a read never describes assets")
        }

        async fn resolve(&self, _: &Principal, version: &str) -> Result<Option<ResolvedVersion>, DirectoryError> {
            let found = |number, usable| {
                Some(ResolvedVersion {
                    number,
                    manifest_digest: String::new(),
                    usable,
                    not_deployable: None,
                    image_digest: String::new(),
                })
            };
            match self {
                Self::Answering => Ok(match version.rsplit('/').next() {
                    Some("production") => found(4, true),
                    Some("staging") => found(5, false),
                    _ => None,
                }),
                Self::Down => Err(DirectoryError::unreachable("connection refused")),
                Self::Silent => std::future::pending().await,
            }
        }
    }

    fn link(role: LinkRole, selector: Selector) -> AssetLink {
        AssetLink::new(Uuid::now_v7(), ASSET, role, selector, "users/alice", Utc::now())
    }

    fn resolved_versions(links: &[pb::AssetLink]) -> Vec<&str> {
        links.iter().map(|l| l.resolved_version.as_str()).collect()
    }

    #[tokio::test]
    async fn aliases_resolve_to_ready_versions_only() {
        let links = [
            link(LinkRole::Dataset, Selector::Pinned(2)),
            link(LinkRole::App, Selector::Alias("production".into())),
            link(LinkRole::Model, Selector::Alias("staging".into())),
            link(LinkRole::Pipeline, Selector::Alias("gone".into())),
        ];
        let got = links_to_proto(&Directory::Answering, &Principal::user("alice"), &links, WAIT).await;
        let expected = [format!("{ASSET}/versions/2"), format!("{ASSET}/versions/4"), String::new(), String::new()];
        assert_eq!(resolved_versions(&got), expected);
    }

    #[tokio::test]
    async fn an_unreachable_or_silent_asset_service_leaves_aliases_empty() {
        let links =
            [link(LinkRole::Dataset, Selector::Pinned(3)), link(LinkRole::App, Selector::Alias("production".into()))];
        let pinned = format!("{ASSET}/versions/3");
        let down = links_to_proto(&Directory::Down, &Principal::user("alice"), &links, WAIT).await;
        assert_eq!(resolved_versions(&down), [pinned.as_str(), ""]);
        let started = std::time::Instant::now();
        let wait = Duration::from_millis(50);
        let silent = links_to_proto(&Directory::Silent, &Principal::user("alice"), &links, wait).await;
        assert_eq!(resolved_versions(&silent), [pinned.as_str(), ""]);
        assert!(started.elapsed() < Duration::from_secs(1), "the read waited {:?}", started.elapsed());
    }
}
