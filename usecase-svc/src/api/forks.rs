//! ForkRelease's rule: a new use case of the caller's, made from a release they may read, with its links pinned to
//! the versions the release froze.

use chrono::Utc;
use highwind_common::{principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1 as pb;
use uuid::Uuid;

use super::paging::{check_request_id, idempotency_key};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        link::{AssetLink, LinkRole, Selector},
        names,
        release::Release,
        use_case::{UseCase, UseCaseDraft},
    },
    error::Error,
    store::Stores,
};

/// A ForkRelease request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// `useCases/{u}/releases/{n}`, as the caller named it.
    pub release: String,
    /// The release's use case.
    pub use_case: Uuid,
    /// The release's number.
    pub number: i64,
    /// The fork's display name; empty keeps the release's.
    pub display_name: String,
    /// The caller's idempotency key, if any.
    pub request_id: Option<String>,
}

impl TryFrom<pb::ForkReleaseRequest> for Fork {
    type Error = Error;

    fn try_from(request: pb::ForkReleaseRequest) -> Result<Self, Error> {
        let mut violations = Violations::new();
        check_request_id(&request.request_id, &mut violations);
        let parsed = names::parse_release_name(&request.release).map_err(|e| violations.add("release", e)).ok();
        let Some((use_case, number)) = parsed.filter(|_| violations.is_empty()) else {
            return Err(Error::Invalid(violations));
        };
        Ok(Self {
            request_id: idempotency_key(&request.request_id).map(str::to_owned),
            release: request.release,
            use_case,
            number,
            display_name: request.display_name,
        })
    }
}

/// The caller's right to the release: a member role, or an entitlement. NOT_FOUND without.
async fn may_fork(stores: &Stores, principal: &Principal, fork: &Fork) -> Result<(), Error> {
    if stores.use_cases.role_of(fork.use_case, principal.as_str()).await?.is_some()
        || stores.market.entitlement_to(principal.as_str(), fork.use_case, fork.number).await?.is_some()
    {
        Ok(())
    } else {
        Err(Error::NotFound(fork.release.clone()))
    }
}

/// Forks the release for `principal`, who owns the new use case; every frozen version must still be usable and
/// unchanged, else nothing is made and each one that is not is named.
pub async fn fork(
    stores: &Stores,
    assets: &dyn AssetDirectory,
    principal: &Principal,
    request: &Fork,
) -> Result<UseCase, Error> {
    may_fork(stores, principal, request).await?;
    let release = stores
        .use_cases
        .get_release(request.use_case, request.number)
        .await?
        .ok_or_else(|| Error::NotFound(request.release.clone()))?;
    let now = Utc::now();
    let mut fork =
        UseCase::create(draft_of(&release, &request.display_name), principal.as_str(), now).map_err(|v| {
            // Only the display name comes from the request; anything else was valid when released.
            let mut renamed = Violations::new();
            for violation in v.iter() {
                renamed.add(violation.field.replace("use_case.", ""), violation.description.clone());
            }
            Error::Invalid(renamed)
        })?;
    fork.forked_from = Some(request.release.clone());
    let mut unmet = Vec::new();
    let mut links = Vec::with_capacity(release.links.len());
    for frozen in &release.links {
        let version = format!("{}/versions/{}", frozen.asset, frozen.version_number);
        let resolved = assets.resolve(principal, &version).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        if resolved.as_ref().is_none_or(|v| !v.usable || v.manifest_digest != frozen.manifest_digest) {
            unmet.push(Precondition {
                kind: "ASSET_VERSION",
                subject: version.clone(),
                description: "the pinned version has been archived or purged since the release".into(),
            });
            continue;
        }
        let role = LinkRole::parse(&frozen.role).ok_or_else(|| Error::Unresolvable(frozen.link.clone()))?;
        links.push(AssetLink {
            asset_owner: frozen.owner.clone(),
            ..AssetLink::new(
                fork.id,
                &frozen.asset,
                role,
                Selector::Pinned(frozen.version_number),
                principal.as_str(),
                now,
            )
        });
    }
    if !unmet.is_empty() {
        return Err(Error::Unmet(format!("{} cannot be forked", request.release), "NOT_FORKABLE", unmet));
    }
    let stored = stores.use_cases.create(&fork, &links, request.request_id.as_deref()).await?;
    tracing::info!(use_case = %stored.id, from = %request.release, owner = %principal, "release forked");
    Ok(stored)
}

/// The fork's fields: the release's snapshot, under `display_name` unless that is empty, free of charge.
fn draft_of(release: &Release, display_name: &str) -> UseCaseDraft {
    let snapshot = &release.snapshot;
    UseCaseDraft {
        display_name: if display_name.is_empty() { snapshot.display_name.clone() } else { display_name.to_owned() },
        description: snapshot.description.clone(),
        cover_image_uri: snapshot.cover_image_uri.clone(),
        model_card: snapshot.model_card.clone(),
        inference_schema: snapshot.inference_schema.clone(),
        version_label: snapshot.version_label.clone(),
        price: Default::default(),
        labels: snapshot.labels.clone(),
    }
}
