//! Releases: editors freeze every link to the exact version and digest it resolves to now (asked of asset-svc
//! as the caller); members read them. Releases never change.

use chrono::Utc;
use highwind_common::{page_token::PageTokens, principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1 as pb;

use super::convert::{frozen_to_proto, release_to_proto};
use super::{
    filters::ReleaseFilter,
    paging::{READ_BATCH, SortValue, caller_role, check_request_id, idempotency_key, page_limit, page_of, parse_order},
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        link::{LinkRole, Selector},
        names,
        release::{FrozenLink, LinkDiff, Release, diff},
        use_case::MAX_DESCRIPTION,
    },
    error::Error,
    store::{Stores, UseCaseRepository, read_all},
};

/// Links read per store call while freezing a release.
const LINK_BATCH: usize = 500;

/// `CreateRelease`: a retry with the same `request_id` by the same editor returns the release the first call made,
/// whatever the links resolve to since.
pub async fn create(
    repo: &dyn UseCaseRepository,
    assets: &dyn AssetDirectory,
    principal: &Principal,
    request: pb::CreateReleaseRequest,
) -> Result<pb::Release, Error> {
    let description = request.release.map(|r| r.description).unwrap_or_default();
    let mut violations = Violations::new();
    check_request_id(&request.request_id, &mut violations);
    if description.chars().count() > MAX_DESCRIPTION {
        violations.add("release.description", format!("at most {MAX_DESCRIPTION} characters"));
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let (use_case_id, caller) = caller_role(repo, principal, "parent", &request.parent).await?;
    if !caller.may_edit() {
        return Err(Error::PermissionDenied(format!("a viewer cannot release {}", request.parent)));
    }
    let request_id = idempotency_key(&request.request_id);
    if let Some(key) = request_id
        && let Some(first) = repo.release_by_request(use_case_id, principal.as_str(), key).await?
    {
        return Ok(release_to_proto(&first));
    }
    let use_case = repo.get(use_case_id).await?.ok_or_else(|| Error::NotFound(request.parent.clone()))?;
    if use_case.archive_time.is_some() {
        return Err(Error::Archived(request.parent));
    }
    let links = read_all(
        LINK_BATCH,
        move |after| repo.list_links(use_case_id, after, LINK_BATCH),
        |l| (l.create_time.timestamp_micros(), l.id),
    )
    .await?;
    let mut frozen = Vec::with_capacity(links.len());
    for link in &links {
        let (selector, alias) = match &link.selector {
            Selector::Pinned(n) => (n.to_string(), None),
            Selector::Alias(a) => (a.clone(), Some(a.clone())),
        };
        let version = format!("{}/versions/{selector}", link.asset);
        let resolved = assets.resolve(principal, &version).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        let Some(found) = resolved.filter(|v| v.usable) else {
            return Err(Error::Unresolvable(format!(
                "{}: {version} does not resolve to a READY version (no such version or alias, archived, or you may \
                 not read it)",
                names::link_name(use_case_id, link.id)
            )));
        };
        if matches!(link.role, LinkRole::Predictor | LinkRole::Transformer)
            && let Some(why) = &found.not_deployable
        {
            return Err(Error::Unmet(
                format!("{version} cannot be deployed"),
                "IMAGE_NOT_DEPLOYABLE",
                vec![Precondition {
                    kind: "PLATFORM",
                    subject: names::link_name(use_case_id, link.id),
                    description: why.clone(),
                }],
            ));
        }
        let (version_number, manifest_digest, image_digest) = (found.number, found.manifest_digest, found.image_digest);
        frozen.push(FrozenLink {
            link: names::link_name(use_case_id, link.id),
            asset: link.asset.clone(),
            role: link.role.as_str().to_owned(),
            version_number,
            manifest_digest,
            alias,
            // Only what its owner linked is theirs to share or sell.
            owner: if link.linked_by_owner() { link.asset_owner.clone() } else { String::new() },
            image_digest,
        });
    }
    let made = Release::new(&use_case, frozen, description, principal.as_str(), Utc::now());
    let release = repo.create_release(&made, request_id).await?;
    if release.id != made.id {
        // A retry that overtook the first call's answer.
        return Ok(release_to_proto(&release));
    }
    tracing::info!(use_case = %use_case_id, release = release.number, digest = %release.digest, "release created");
    Ok(release_to_proto(&release))
}

/// `GetRelease`: members read every release, buyers the ones they hold an entitlement to.
pub async fn get(stores: &Stores, principal: &Principal, name: &str) -> Result<pb::Release, Error> {
    let (use_case, number) =
        names::parse_release_name(name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    let member = stores.use_cases.role_of(use_case, principal.as_str()).await?.is_some();
    if !member && stores.market.entitlement_to(principal.as_str(), use_case, number).await?.is_none() {
        return Err(Error::NotFound(name.to_owned()));
    }
    let release =
        stores.use_cases.get_release(use_case, number).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    Ok(release_to_proto(&release))
}

/// `ListReleases`, newest first.
pub async fn list(
    repo: &dyn UseCaseRepository,
    page_tokens: &PageTokens,
    principal: &Principal,
    request: pb::ListReleasesRequest,
) -> Result<pb::ListReleasesResponse, Error> {
    let mut violations = Violations::new();
    let limit = page_limit(request.page_size, &mut violations);
    let filter = ReleaseFilter::parse(&request.filter).unwrap_or_else(|e| {
        violations.add("filter", e);
        ReleaseFilter::default()
    });
    let order = parse_order(&request.order_by, &["release_number", "create_time"], ("release_number", true))
        .unwrap_or_else(|e| {
            violations.add("order_by", e);
            ("release_number", true)
        });
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let (use_case, _) = caller_role(repo, principal, "parent", &request.parent).await?;
    let rows =
        read_all(READ_BATCH, move |before| repo.list_releases(use_case, before, READ_BATCH), |r| r.number).await?;
    // Release numbers follow creation, so both orders sort by number.
    let keyed =
        rows.into_iter().filter(|r| filter.keeps(r)).map(|r| ((SortValue::Int(r.number), String::new()), r)).collect();
    let scope = format!("releases|{principal}|{use_case}|{filter:?}|{:?}", order.1);
    let (page, next_page_token) = page_of(keyed, order.1, limit, page_tokens, &scope, &request.page_token)?;
    Ok(pb::ListReleasesResponse { releases: page.iter().map(release_to_proto).collect(), next_page_token })
}

/// `DiffReleases`: links matched by (role, asset), snapshot fields compared.
pub async fn compare(
    repo: &dyn UseCaseRepository,
    principal: &Principal,
    request: pb::DiffReleasesRequest,
) -> Result<pb::DiffReleasesResponse, Error> {
    let mut releases = Vec::with_capacity(2);
    for (field, name) in [("base_release", &request.base_release), ("target_release", &request.target_release)] {
        let (use_case, number) =
            names::parse_release_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
        caller_role(repo, principal, field, &names::use_case_name(use_case)).await?;
        releases.push(repo.get_release(use_case, number).await?.ok_or_else(|| Error::NotFound(name.clone()))?);
    }
    let (base, target) = (&releases[0], &releases[1]);
    let (links, snapshot) = diff(base, target);
    use pb::AssetLinkChangeType as Kind;
    let identical = base.digest == target.digest && snapshot.is_empty();
    let link_changes = links
        .into_iter()
        .filter(|d| request.include_unchanged || !matches!(d, LinkDiff::Unchanged(..)))
        .map(|d| {
            let (kind, before, after, fields) = match d {
                LinkDiff::Added(a) => (Kind::Added, None, Some(a), Vec::new()),
                LinkDiff::Removed(b) => (Kind::Removed, Some(b), None, Vec::new()),
                LinkDiff::Changed(b, a, fields) => (Kind::Changed, Some(b), Some(a), fields),
                LinkDiff::Unchanged(b, a) => (Kind::Unchanged, Some(b), Some(a), Vec::new()),
            };
            pb::AssetLinkChange {
                change_type: kind as i32,
                base: before.map(frozen_to_proto),
                target: after.map(frozen_to_proto),
                changed_fields: fields.into_iter().map(str::to_owned).collect(),
            }
        })
        .collect();
    Ok(pb::DiffReleasesResponse {
        link_changes,
        changed_snapshot_fields: snapshot.into_iter().map(str::to_owned).collect(),
        identical,
    })
}
