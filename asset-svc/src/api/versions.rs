//! Versions through `AssetService`: get and list, metadata updates, archive, and aliases.

use chrono::{SubsecRound, Utc};
use highwind_common::{
    page_bytes::{PAGE_BYTES, bounded_page},
    page_token::PageTokens,
    principal::Principal,
    validation::Violations,
};
use highwind_proto::asset::v1 as pb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    access::{self, OwnerOnly},
    convert::version_to_proto,
};
use crate::{
    domain::{
        aliases::{self, Alias},
        names::{self, VersionRef},
        paging::page_size,
        version::{Version, VersionDraft, VersionField, VersionState},
    },
    error::Error,
    store::{AssetRepository, ContentRepository, VersionQuery, grants::GrantRepository},
};

/// The repositories versions are read and written through.
#[derive(Clone, Copy)]
pub struct Repos<'a> {
    /// Assets (for access).
    pub assets: &'a dyn AssetRepository,
    /// Versions and aliases.
    pub content: &'a dyn ContentRepository,
    /// Read grants.
    pub grants: &'a dyn GrantRepository,
}

/// The version `name` selects (by number, `latest` or alias), if `principal` owns its asset: for changes.
pub async fn resolve(repos: Repos<'_>, principal: &Principal, field: &str, name: &str) -> Result<Version, Error> {
    let (asset_id, selector) =
        names::parse_version_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    access::owned_asset_by_id(repos.assets, repos.grants, principal, asset_id, OwnerOnly::Change).await?;
    select(repos, asset_id, selector).await?.ok_or_else(|| Error::NotFound(name.to_owned()))
}

/// The version `name` selects, if `principal` owns its asset or holds a grant on that version: for reads.
pub async fn resolve_readable(
    repos: Repos<'_>,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<Version, Error> {
    let (asset_id, selector) =
        names::parse_version_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    let missing = || Error::NotFound(name.to_owned());
    let asset = repos.assets.get(asset_id).await?.ok_or_else(missing)?;
    let owner = asset.is_owned_by(principal.as_str());
    // Non-owners without any grant on the asset learn nothing, not even which versions exist.
    if !owner && !repos.grants.may_read(principal.as_str(), asset_id, None).await? {
        return Err(missing());
    }
    let version = select(repos, asset_id, selector).await?.ok_or_else(missing)?;
    if !owner && !repos.grants.may_read(principal.as_str(), asset_id, Some(version.number)).await? {
        return Err(missing());
    }
    Ok(version)
}

async fn select(repos: Repos<'_>, asset_id: Uuid, selector: VersionRef) -> Result<Option<Version>, Error> {
    Ok(match selector {
        VersionRef::Number(number) => repos.content.get_version(asset_id, number).await?,
        VersionRef::Latest => repos.content.latest_version(asset_id).await?,
        VersionRef::Alias(alias) => {
            let aliases = repos.content.aliases(asset_id).await?;
            match aliases.iter().find(|a| a.name == alias) {
                Some(alias) => repos.content.get_version(asset_id, alias.version_number).await?,
                None => None,
            }
        }
    })
}

async fn answer(repos: Repos<'_>, version: &Version) -> Result<pb::AssetVersion, Error> {
    let aliases = repos.content.aliases(version.asset_id).await?;
    Ok(version_to_proto(version, &aliases))
}

/// `GetAssetVersion`.
pub async fn get(
    repos: Repos<'_>,
    principal: &Principal,
    request: &pb::GetAssetVersionRequest,
) -> Result<pb::AssetVersion, Error> {
    let version = resolve_readable(repos, principal, "name", &request.name).await?;
    answer(repos, &version).await
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    after: i64,
}

/// What a version list's filter asks for.
#[derive(Debug, Default, PartialEq)]
struct VersionFilter {
    state: Option<VersionState>,
    alias: Option<String>,
    labels: Vec<(String, String)>,
}

/// `ListAssetVersions`.
pub async fn list(
    repos: Repos<'_>,
    page_tokens: &PageTokens,
    principal: &Principal,
    request: pb::ListAssetVersionsRequest,
) -> Result<pb::ListAssetVersionsResponse, Error> {
    let mut violations = Violations::new();
    let asset_id: Option<Uuid> = names::parse_asset_name(&request.parent).map_err(|e| violations.add("parent", e)).ok();
    let limit = page_size(request.page_size).unwrap_or_else(|e| {
        violations.add("page_size", e);
        0
    });
    let descending = match request.order_by.split_whitespace().collect::<Vec<_>>().as_slice() {
        [] | ["version_number", "desc"] => true,
        ["version_number"] | ["version_number", "asc"] => false,
        _ => {
            violations.add("order_by", "use version_number, optionally followed by asc or desc");
            true
        }
    };
    let filter = parse_filter(&request.filter).unwrap_or_else(|e| {
        violations.add("filter", e);
        VersionFilter::default()
    });
    let Some(asset_id) = asset_id.filter(|_| violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    access::owned_asset_by_id(repos.assets, repos.grants, principal, asset_id, OwnerOnly::ListVersions).await?;
    let scope = format!(
        "versions|{}|{asset_id}|{}|{}|{:?}|{descending}|{}",
        principal.as_str(),
        filter.state.map_or("", VersionState::as_str),
        filter.alias.as_deref().unwrap_or(""),
        filter.labels,
        request.show_deleted
    );
    let after = if request.page_token.is_empty() {
        None
    } else {
        let cursor: Cursor = page_tokens.decode(&scope, &request.page_token).map_err(|_| {
            Error::Invalid(Violations::one("page_token", "not a token from a previous page of this same query"))
        })?;
        Some(cursor.after)
    };
    let query = VersionQuery {
        asset_id,
        state: filter.state,
        alias: filter.alias,
        labels: filter.labels,
        include_archived: request.show_deleted,
        descending,
        after,
        limit,
    };
    let rows = repos.content.list_versions(&query).await?;
    let aliases = repos.content.aliases(asset_id).await?;
    let (asset_versions, resume) = bounded_page(rows, limit, PAGE_BYTES, |v| version_to_proto(v, &aliases));
    let next_page_token =
        resume.map(|last| page_tokens.encode(&scope, &Cursor { after: last.number })).unwrap_or_default();
    Ok(pb::ListAssetVersionsResponse { asset_versions, next_page_token })
}

fn parse_filter(filter: &str) -> Result<VersionFilter, String> {
    let mut parsed = VersionFilter::default();
    for (field, value) in highwind_common::filter::terms(filter)? {
        let value = value.as_str();
        match field.as_str() {
            "state" => {
                parsed.state = Some(
                    VersionState::parse(value)
                        .ok_or_else(|| format!("unknown state {}", highwind_common::status_bounds::echo(value)))?,
                )
            }
            "alias" => {
                aliases::validate(value).map_err(|e| format!("alias {value:?}: {e}"))?;
                parsed.alias = Some(value.to_owned());
            }
            other => {
                let key = other.strip_prefix("labels.").filter(|k| highwind_common::labels::valid_key(k)).ok_or_else(
                    || {
                        format!(
                            "cannot filter versions on {}: use state, alias or labels.<key>",
                            highwind_common::status_bounds::echo(other)
                        )
                    },
                )?;
                parsed.labels.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    parsed.labels.sort();
    Ok(parsed)
}

/// Stores `next` in place of `current` if the client's etag (when sent) and the stored revision still match.
async fn replace(repos: Repos<'_>, current: &Version, next: Version, etag: &str) -> Result<Version, Error> {
    let name = names::version_name(current.asset_id, current.number);
    if !etag.is_empty() && etag != current.etag() {
        return Err(Error::StaleEtag { name, sent: etag.to_owned() });
    }
    if repos.content.update_version(&next, current.revision).await? {
        Ok(next)
    } else if etag.is_empty() {
        Err(Error::Concurrent(name))
    } else {
        Err(Error::StaleEtag { name, sent: etag.to_owned() })
    }
}

/// `UpdateAssetVersion`: description, labels and metrics; the content never changes.
pub async fn update(
    repos: Repos<'_>,
    principal: &Principal,
    request: pb::UpdateAssetVersionRequest,
) -> Result<pb::AssetVersion, Error> {
    let Some(incoming) = request.asset_version else {
        return Err(Error::Invalid(Violations::one("asset_version", "required")));
    };
    let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut violations = Violations::new();
    let mut fields = Vec::new();
    for path in &paths {
        match VersionField::parse(path) {
            Some(field) => fields.push(field),
            None => {
                violations.add("update_mask", format!("{path:?} cannot be updated: use description, labels or metrics"))
            }
        }
    }
    if paths.is_empty() {
        for (set, field) in [
            (!incoming.description.is_empty(), VersionField::Description),
            (!incoming.labels.is_empty(), VersionField::Labels),
            (!incoming.metrics.is_empty(), VersionField::Metrics),
        ] {
            if set {
                fields.push(field);
            }
        }
        if fields.is_empty() {
            violations.add("update_mask", "names no field and the version sets none: nothing to update");
        }
    }
    if let Ok((_, VersionRef::Latest | VersionRef::Alias(_))) = names::parse_version_name(&incoming.name) {
        violations.add("asset_version.name", "name the version by its number to update it");
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let current = resolve(repos, principal, "asset_version.name", &incoming.name).await?;
    if current.archive_time.is_some() {
        return Err(Error::Archived(incoming.name));
    }
    let draft = VersionDraft {
        description: incoming.description,
        labels: incoming.labels.into_iter().collect(),
        metrics: incoming.metrics.into_iter().collect(),
    };
    let next = current.updated(&draft, &fields).map_err(Error::Invalid)?;
    let stored = replace(repos, &current, next, &incoming.etag).await?;
    answer(repos, &stored).await
}

/// `DeleteAssetVersion` (archive) and `UndeleteAssetVersion`.
pub async fn set_archived(
    repos: Repos<'_>,
    principal: &Principal,
    name: &str,
    archived: bool,
) -> Result<pb::AssetVersion, Error> {
    if let Ok((_, VersionRef::Latest | VersionRef::Alias(_))) = names::parse_version_name(name) {
        return Err(Error::Invalid(Violations::one("name", "name the version by its number")));
    }
    let current = resolve(repos, principal, "name", name).await?;
    let stored = match (archived, current.archive_time.is_some()) {
        (true, true) => current,
        (false, false) => return Err(Error::NotArchived(name.to_owned())),
        (true, false) => {
            let next = current.with_archive_time(Some(Utc::now().trunc_subsecs(6)));
            replace(repos, &current, next, "").await?
        }
        (false, true) => {
            let next = current.with_archive_time(None);
            replace(repos, &current, next, "").await?
        }
    };
    answer(repos, &stored).await
}

/// `SetVersionAlias`: points an alias at a READY, live version.
pub async fn set_alias(
    repos: Repos<'_>,
    principal: &Principal,
    request: pb::SetVersionAliasRequest,
) -> Result<pb::AssetVersion, Error> {
    let mut violations = Violations::new();
    if let Err(reason) = aliases::validate(&request.alias) {
        violations.add("alias", reason);
    }
    if let Ok((_, VersionRef::Latest | VersionRef::Alias(_))) = names::parse_version_name(&request.name) {
        violations.add("name", "name the version by its number");
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let version = resolve(repos, principal, "name", &request.name).await?;
    if version.state != VersionState::Ready {
        return Err(Error::Invalid(Violations::one("name", "only a READY version can hold an alias")));
    }
    if version.archive_time.is_some() {
        return Err(Error::Archived(request.name));
    }
    // Every caller who gets this far owns the asset, so protected aliases may move too; once others may write,
    // the owner check for protected aliases belongs here.
    let alias = Alias { name: request.alias, version_number: version.number, protected: request.protected };
    repos.content.set_alias(version.asset_id, &alias, Utc::now()).await?;
    answer(repos, &version).await
}

/// `DeleteVersionAlias`.
pub async fn delete_alias(
    repos: Repos<'_>,
    principal: &Principal,
    request: pb::DeleteVersionAliasRequest,
) -> Result<pb::DeleteVersionAliasResponse, Error> {
    let asset = access::owned_asset(repos.assets, repos.grants, principal, "asset", &request.asset).await?;
    let removed = repos.content.delete_alias(asset.id, &request.alias).await?;
    let removed = removed.ok_or_else(|| Error::NotFound(format!("alias {:?} of {}", request.alias, request.asset)))?;
    Ok(pb::DeleteVersionAliasResponse { previous_version: names::version_name(asset.id, removed.version_number) })
}
