//! Publishing a release of a use case on the marketplace, and withdrawing it. Owners only.

use chrono::Utc;
use highwind_common::{principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1 as pb;

use super::{
    convert::{listing_to_proto, use_case_to_proto},
    paging::caller_role,
};
use crate::{
    domain::{grants::sharers, market::Listing, names, release::Release, role::Role, use_case::UseCase},
    error::Error,
    store::{Stores, read_all},
};

/// Members read per store call.
const MEMBER_BATCH: usize = 500;

/// The use case `name` if the caller owns it; NOT_FOUND for non-members, PERMISSION_DENIED for other roles.
async fn owned(stores: &Stores, principal: &Principal, name: &str, etag: &str) -> Result<UseCase, Error> {
    let (id, role) = caller_role(stores.use_cases.as_ref(), principal, "name", name).await?;
    if role != Role::Owner {
        return Err(Error::PermissionDenied(format!("only an owner may publish or unpublish {name}")));
    }
    let use_case = stores.use_cases.get(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    if !etag.is_empty() && etag != use_case.etag() {
        return Err(Error::StaleEtag(name.to_owned()));
    }
    Ok(use_case)
}

/// `PublishUseCase`.
pub async fn publish(
    stores: &Stores,
    principal: &Principal,
    request: pb::PublishUseCaseRequest,
) -> Result<pb::PublishUseCaseResponse, Error> {
    let use_case = owned(stores, principal, &request.name, &request.etag).await?;
    if request.release.is_empty() {
        return Err(match use_case.latest_release {
            None => unpublishable(&request.name, "RELEASE", "has no release: create one with CreateRelease first"),
            Some(n) => Error::Invalid(Violations::one(
                "release",
                format!("required: the release to publish, e.g. the latest, {}", names::release_name(use_case.id, n)),
            )),
        });
    }
    let (release_use_case, number) =
        names::parse_release_name(&request.release).map_err(|e| Error::Invalid(Violations::one("release", e)))?;
    if release_use_case != use_case.id {
        return Err(Error::NotFound(request.release));
    }
    if use_case.archive_time.is_some() {
        return Err(Error::Archived(request.name));
    }
    let release = stores
        .use_cases
        .get_release(use_case.id, number)
        .await?
        .ok_or_else(|| Error::NotFound(request.release.clone()))?;
    let mut unmet = Vec::new();
    for (field, value) in [("description", &release.snapshot.description), ("model_card", &release.snapshot.model_card)]
    {
        if value.trim().is_empty() {
            unmet.push(Precondition {
                kind: "RELEASE_CONTENT",
                subject: format!("{}.snapshot.{field}", request.release),
                description: format!(
                    "a published release needs a {}: set it, then create a new release",
                    field.replace('_', " ")
                ),
            });
        }
    }
    unmet.extend(foreign_assets(stores, &release).await?);
    if !unmet.is_empty() {
        return Err(Error::Unmet(format!("{} cannot be published", request.release), "NOT_PUBLISHABLE", unmet));
    }
    let now = Utc::now();
    let listing = match stores.market.listing_of(use_case.id).await? {
        Some(current) => {
            current.republished(number, release.snapshot.clone(), use_case.price.clone(), principal.as_str(), now)
        }
        None => Listing::first(
            use_case.id,
            number,
            release.snapshot.clone(),
            use_case.price.clone(),
            principal.as_str(),
            now,
        ),
    };
    let listing = stores.market.save_listing(&listing).await?;
    tracing::info!(use_case = %use_case.id, listing = %listing.id, release = number, "use case published");
    let use_case = stores.use_cases.get(use_case.id).await?.ok_or_else(|| Error::NotFound(request.name.clone()))?;
    Ok(pb::PublishUseCaseResponse {
        use_case: Some(use_case_to_proto(&use_case, Role::Owner)),
        listing: Some(listing_to_proto(&listing, None)),
    })
}

/// `UnpublishUseCase`: withdraws the listing; entitlements stay.
pub async fn unpublish(
    stores: &Stores,
    principal: &Principal,
    request: pb::UnpublishUseCaseRequest,
) -> Result<pb::UnpublishUseCaseResponse, Error> {
    let use_case = owned(stores, principal, &request.name, &request.etag).await?;
    let Some(current) = stores.market.listing_of(use_case.id).await? else {
        return Ok(pb::UnpublishUseCaseResponse {
            use_case: Some(use_case_to_proto(&use_case, Role::Owner)),
            listing: None,
        });
    };
    let listing = stores.market.save_listing(&current.withdrawn(Utc::now())).await?;
    tracing::info!(use_case = %use_case.id, listing = %listing.id, "use case unpublished");
    let use_case = stores.use_cases.get(use_case.id).await?.ok_or_else(|| Error::NotFound(request.name.clone()))?;
    Ok(pb::UnpublishUseCaseResponse {
        use_case: Some(use_case_to_proto(&use_case, Role::Owner)),
        listing: Some(listing_to_proto(&listing, None)),
    })
}

/// The versions `release` pins that its use case may not sell: assets not linked by their owner, or whose owner is
/// no longer one of its owners or editors.
pub async fn foreign_assets(stores: &Stores, release: &Release) -> Result<Vec<Precondition>, Error> {
    let repo = stores.use_cases.as_ref();
    let id = release.use_case_id;
    let members = read_all(
        MEMBER_BATCH,
        move |after| repo.list_members(id, after, MEMBER_BATCH),
        |m| (m.create_time.timestamp_micros(), m.id),
    )
    .await?;
    let members: Vec<_> = members.into_iter().map(|m| (m.principal, m.role)).collect();
    let sharers = sharers(&members);
    Ok(release
        .links
        .iter()
        .filter(|l| !sharers.contains(l.owner.as_str()))
        .map(|link| Precondition {
            kind: "ASSET_OWNER",
            subject: format!("{}/versions/{}", link.asset, link.version_number),
            description: "only assets that the use case's owners and editors own and linked themselves can be sold"
                .into(),
        })
        .collect())
}

fn unpublishable(subject: &str, kind: &'static str, description: &str) -> Error {
    Error::Unmet(
        format!("{subject} cannot be published"),
        "NOT_PUBLISHABLE",
        vec![Precondition { kind, subject: subject.to_owned(), description: description.to_owned() }],
    )
}
