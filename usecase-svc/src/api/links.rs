//! Asset links: editors compose a use case from assets the caller may read (checked with asset-svc on the
//! caller's behalf); members read them, each with the version it resolves to now.

use chrono::Utc;
use highwind_common::{page_token::PageTokens, principal::Principal, status::Precondition, validation::Violations};
use highwind_proto::usecase::v1 as pb;
use uuid::Uuid;

use super::convert::link_role_from_proto;
use super::{
    filters::LinkFilter,
    paging::{READ_BATCH, SortValue, caller_role, check_request_id, idempotency_key, page_limit, page_of, parse_order},
    resolved::{self, link_to_proto_now},
};
use crate::{
    asset_client::AssetDirectory,
    domain::{
        link::{AssetLink, LinkRole, MAX_LINKS, Selector},
        names,
    },
    error::Error,
    store::{LinkAdd, LinkUpdate, UseCaseRepository, read_all},
};

fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 63
        && alias.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !alias.bytes().all(|b| b.is_ascii_digit())
}

/// `CreateAssetLink`: a retry with the same `request_id` by the same editor returns the link the first call added,
/// without asking asset-svc again.
pub async fn create(
    repo: &dyn UseCaseRepository,
    assets: &dyn AssetDirectory,
    principal: &Principal,
    request: pb::CreateAssetLinkRequest,
) -> Result<pb::AssetLink, Error> {
    let link = request.asset_link.unwrap_or_default();
    let mut violations = Violations::new();
    check_request_id(&request.request_id, &mut violations);
    if let Err(reason) = names::parse_use_case_name(&request.parent) {
        violations.add("parent", reason);
    }
    let asset_ok = link.asset.strip_prefix("assets/").is_some_and(|id| Uuid::try_parse(id).is_ok());
    if !asset_ok {
        violations.add("asset_link.asset", "must be of the form assets/{asset}");
    }
    let link_role = link_role_from_proto(link.role);
    if link_role.is_none() {
        violations.add("asset_link.role", "required: PREDICTOR, TRANSFORMER, DATASET, MODEL, PIPELINE or APP");
    }
    let selector = match link.version {
        Some(pb::asset_link::Version::PinnedVersionNumber(n)) if n >= 1 => Some(Selector::Pinned(n)),
        Some(pb::asset_link::Version::PinnedVersionNumber(_)) => {
            violations.add("asset_link.pinned_version_number", "version numbers start at 1");
            None
        }
        Some(pb::asset_link::Version::Alias(alias)) if valid_alias(&alias) => Some(Selector::Alias(alias)),
        Some(pb::asset_link::Version::Alias(_)) => {
            violations.add("asset_link.alias", "lowercase letters, digits and -, 1 to 63 characters, not a number");
            None
        }
        None => {
            violations.add("asset_link.version", "required: pinned_version_number or alias");
            None
        }
    };
    let (Some(link_role), Some(selector), true) = (link_role, selector, violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    let (use_case, caller) = caller_role(repo, principal, "parent", &request.parent).await?;
    if !caller.may_edit() {
        return Err(Error::PermissionDenied(format!("a viewer cannot link assets to {}", request.parent)));
    }
    let request_id = idempotency_key(&request.request_id);
    if let Some(key) = request_id
        && let Some(first) = repo.link_by_request(use_case, principal.as_str(), key).await?
    {
        return Ok(link_to_proto_now(assets, principal, &first).await);
    }
    let asset_owner = check_target(assets, principal, &link.asset, link_role, &selector, false, "asset_link").await?;
    let added = AssetLink {
        asset_owner,
        ..AssetLink::new(use_case, &link.asset, link_role, selector, principal.as_str(), Utc::now())
    };
    match repo.add_link(&added, MAX_LINKS, request_id).await? {
        LinkAdd::Added => {}
        // A retry that overtook the first call's answer.
        LinkAdd::Earlier(first) => return Ok(link_to_proto_now(assets, principal, &first).await),
        LinkAdd::Duplicate => {
            return Err(Error::AlreadyLinked(format!("{} as {}", link.asset, link_role.as_str())));
        }
        LinkAdd::Full => return Err(Error::TooManyLinks(request.parent)),
    }
    tracing::info!(use_case = %use_case, asset = %added.asset, role = added.role.as_str(), "asset linked");
    Ok(link_to_proto_now(assets, principal, &added).await)
}

/// Checks with asset-svc, as `principal`, that `asset` is readable, of a kind `role` accepts, and that a pinned
/// version exists (and, when `alias_must_resolve`, that an alias names a version now); the asset's owner. `prefix`
/// names the request fields in errors.
async fn check_target(
    assets: &dyn AssetDirectory,
    principal: &Principal,
    asset: &str,
    role: LinkRole,
    selector: &Selector,
    alias_must_resolve: bool,
    prefix: &str,
) -> Result<String, Error> {
    let unavailable = |e: crate::asset_client::DirectoryError| Error::Unavailable(e.to_string());
    let field = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
    let Some(info) = assets.describe(principal, asset).await.map_err(unavailable)? else {
        return Err(Error::AssetNotFound(asset.to_owned()));
    };
    let kind = info.kind;
    if !role.accepts().contains(&kind) {
        let reason = format!("a {} link needs a {} asset, not {kind}", role.as_str(), role.accepts().join(" or "));
        return Err(Error::Invalid(Violations::one(field("role"), reason)));
    }
    let serves = matches!(role, LinkRole::Predictor | LinkRole::Transformer);
    let (version, selector_field) = match selector {
        Selector::Pinned(n) => (format!("{asset}/versions/{n}"), "pinned_version_number"),
        // An alias that serves is checked for what it names now (releases check what it names then).
        Selector::Alias(a) if alias_must_resolve || serves => (format!("{asset}/versions/{a}"), "alias"),
        Selector::Alias(_) => return Ok(info.owner),
    };
    match assets.resolve(principal, &version).await.map_err(unavailable)? {
        None if !alias_must_resolve && matches!(selector, Selector::Alias(_)) => Ok(info.owner),
        None => Err(Error::Invalid(Violations::one(field(selector_field), format!("{version} does not resolve")))),
        Some(found) if !found.usable => Err(Error::Unmet(
            format!("{version} cannot be linked"),
            "VERSION_NOT_READY",
            vec![Precondition {
                kind: "VERSION_STATE",
                subject: field(selector_field),
                description: format!("{version} is archived or not READY: link a READY version"),
            }],
        )),
        Some(found)
            if matches!(role, LinkRole::Predictor | LinkRole::Transformer) && found.not_deployable.is_some() =>
        {
            Err(Error::Unmet(
                format!("{version} cannot be deployed"),
                "IMAGE_NOT_DEPLOYABLE",
                vec![Precondition {
                    kind: "PLATFORM",
                    subject: field(selector_field),
                    description: found.not_deployable.unwrap_or_default(),
                }],
            ))
        }
        Some(_) => Ok(info.owner),
    }
}

/// `SwapAssetLink`: a new asset and/or version selector for a link, keeping its name and role.
pub async fn swap(
    repo: &dyn UseCaseRepository,
    assets: &dyn AssetDirectory,
    principal: &Principal,
    request: pb::SwapAssetLinkRequest,
) -> Result<pb::AssetLink, Error> {
    let (use_case, id) =
        names::parse_link_name(&request.name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    let (_, caller) = caller_role(repo, principal, "name", &names::use_case_name(use_case)).await?;
    if !caller.may_edit() {
        return Err(Error::PermissionDenied(format!(
            "a viewer cannot change the links of {}",
            names::use_case_name(use_case)
        )));
    }
    let current = repo.get_link(use_case, id).await?.ok_or_else(|| Error::NotFound(request.name.clone()))?;
    if !request.etag.is_empty() && request.etag != current.etag() {
        return Err(Error::StaleEtag(request.name));
    }
    let asset = if request.asset.is_empty() { current.asset.clone() } else { request.asset.clone() };
    if asset.strip_prefix("assets/").is_none_or(|a| Uuid::try_parse(a).is_err()) {
        return Err(Error::Invalid(Violations::one("asset", "must be of the form assets/{asset}")));
    }
    let selector = match request.version {
        Some(pb::swap_asset_link_request::Version::PinnedVersionNumber(n)) if n >= 1 => Selector::Pinned(n),
        Some(pb::swap_asset_link_request::Version::PinnedVersionNumber(_)) => {
            return Err(Error::Invalid(Violations::one("pinned_version_number", "version numbers start at 1")));
        }
        Some(pb::swap_asset_link_request::Version::Alias(a)) if valid_alias(&a) => Selector::Alias(a),
        Some(pb::swap_asset_link_request::Version::Alias(_)) => {
            return Err(Error::Invalid(Violations::one("alias", "lowercase letters, digits and -, not a number")));
        }
        None if asset != current.asset => {
            return Err(Error::Invalid(Violations::one("version", "required when the asset changes")));
        }
        None => current.selector.clone(),
    };
    let asset_owner = check_target(assets, principal, &asset, current.role, &selector, true, "").await?;
    let next = AssetLink {
        asset,
        asset_owner,
        selector,
        update_time: Utc::now().max(current.update_time),
        revision: current.revision + 1,
        ..current.clone()
    };
    match repo.update_link(&next, current.revision).await? {
        LinkUpdate::Done => Ok(link_to_proto_now(assets, principal, &next).await),
        LinkUpdate::Stale => Err(Error::Concurrent(request.name)),
        LinkUpdate::Duplicate => Err(Error::AlreadyLinked(format!("{} as {}", next.asset, next.role.as_str()))),
    }
}

/// `GetAssetLink`.
pub async fn get(
    repo: &dyn UseCaseRepository,
    assets: &dyn AssetDirectory,
    principal: &Principal,
    name: &str,
) -> Result<pb::AssetLink, Error> {
    let (use_case, id) =
        names::parse_link_name(name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    caller_role(repo, principal, "name", &names::use_case_name(use_case)).await?;
    let link = repo.get_link(use_case, id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    Ok(link_to_proto_now(assets, principal, &link).await)
}

/// `ListAssetLinks`: only the page's links are resolved.
pub async fn list(
    repo: &dyn UseCaseRepository,
    assets: &dyn AssetDirectory,
    page_tokens: &PageTokens,
    principal: &Principal,
    request: pb::ListAssetLinksRequest,
) -> Result<pb::ListAssetLinksResponse, Error> {
    let mut violations = Violations::new();
    let limit = page_limit(request.page_size, &mut violations);
    let filter = LinkFilter::parse(&request.filter).unwrap_or_else(|e| {
        violations.add("filter", e);
        LinkFilter::default()
    });
    let order = parse_order(&request.order_by, &["create_time", "role"], ("create_time", false)).unwrap_or_else(|e| {
        violations.add("order_by", e);
        ("create_time", false)
    });
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let (use_case, _) = caller_role(repo, principal, "parent", &request.parent).await?;
    let rows = read_all(
        READ_BATCH,
        move |after| repo.list_links(use_case, after, READ_BATCH),
        |l| (l.create_time.timestamp_micros(), l.id),
    )
    .await?;
    let keyed = rows
        .into_iter()
        .filter(|l| filter.keeps(l))
        .map(|l| {
            let value = match order.0 {
                "role" => SortValue::Text(l.role.as_str().to_owned()),
                _ => SortValue::Int(l.create_time.timestamp_micros()),
            };
            ((value, l.id.to_string()), l)
        })
        .collect();
    let scope = format!("links|{principal}|{use_case}|{filter:?}|{order:?}");
    let (page, next_page_token) = page_of(keyed, order.1, limit, page_tokens, &scope, &request.page_token)?;
    let asset_links = resolved::links_to_proto(assets, principal, &page, resolved::WAIT).await;
    Ok(pb::ListAssetLinksResponse { asset_links, next_page_token })
}

/// `DeleteAssetLink`.
pub async fn delete(repo: &dyn UseCaseRepository, principal: &Principal, name: &str) -> Result<(), Error> {
    let (use_case, id) =
        names::parse_link_name(name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    let (_, caller) = caller_role(repo, principal, "name", &names::use_case_name(use_case)).await?;
    if !caller.may_edit() {
        return Err(Error::PermissionDenied(format!(
            "a viewer cannot unlink assets from {}",
            names::use_case_name(use_case)
        )));
    }
    if !repo.remove_link(use_case, id).await? {
        return Err(Error::NotFound(name.to_owned()));
    }
    Ok(())
}
