//! Reading versions: `GetAssetVersion` and `ListAssetVersions` (served by `AssetService`).

use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::asset::v1 as pb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{access, convert::version_to_proto};
use crate::{
    domain::{
        listing::page_size,
        names::{self, VersionRef},
        version::{Version, VersionState},
    },
    error::Error,
    store::{AssetRepository, ContentRepository, VersionQuery},
};

/// The version `name` selects (by number, `latest` or alias), if `principal` may read its asset.
pub async fn resolve(
    assets: &dyn AssetRepository,
    content: &dyn ContentRepository,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<Version, Error> {
    let (asset_id, selector) =
        names::parse_version_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    access::owned_asset_by_id(assets, principal, asset_id).await?;
    let found = match selector {
        VersionRef::Number(number) => content.get_version(asset_id, number).await?,
        VersionRef::Latest => content.latest_version(asset_id).await?,
        // No alias can be set yet, so none resolves.
        VersionRef::Alias(_) => None,
    };
    found.ok_or_else(|| Error::NotFound(name.to_owned()))
}

/// `GetAssetVersion`.
pub async fn get(
    assets: &dyn AssetRepository,
    content: &dyn ContentRepository,
    principal: &Principal,
    request: &pb::GetAssetVersionRequest,
) -> Result<pb::AssetVersion, Error> {
    Ok(version_to_proto(&resolve(assets, content, principal, "name", &request.name).await?))
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    after: i64,
}

/// `ListAssetVersions`.
pub async fn list(
    assets: &dyn AssetRepository,
    content: &dyn ContentRepository,
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
    let state = parse_filter(&request.filter).unwrap_or_else(|e| {
        violations.add("filter", e);
        None
    });
    let Some(asset_id) = asset_id.filter(|_| violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    access::owned_asset_by_id(assets, principal, asset_id).await?;
    let scope =
        format!("versions|{}|{asset_id}|{}|{descending}", principal.as_str(), state.map_or("", VersionState::as_str));
    let after = if request.page_token.is_empty() {
        None
    } else {
        let cursor: Cursor = page_tokens.decode(&scope, &request.page_token).map_err(|_| {
            Error::Invalid(Violations::one("page_token", "not a token from a previous page of this same query"))
        })?;
        Some(cursor.after)
    };
    let query = VersionQuery { asset_id, state, descending, after, limit };
    let mut rows = content.list_versions(&query).await?;
    let next_page_token = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| page_tokens.encode(&scope, &Cursor { after: last.number })).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListAssetVersionsResponse { asset_versions: rows.iter().map(version_to_proto).collect(), next_page_token })
}

fn parse_filter(filter: &str) -> Result<Option<VersionState>, String> {
    if filter.trim().is_empty() {
        return Ok(None);
    }
    let (field, value) = filter.split_once('=').ok_or("use state = READY|PENDING|FAILED")?;
    if field.trim() != "state" {
        return Err(format!("cannot filter versions on {:?}: use state", field.trim()));
    }
    let value = value.trim().trim_matches('"');
    VersionState::parse(value).map(Some).ok_or_else(|| format!("unknown state {value:?}"))
}
