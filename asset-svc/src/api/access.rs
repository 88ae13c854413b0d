//! Who may see an asset: its owner changes it; its owner and the principals usecase-svc granted read access (members
//! of a use case that links it, buyers of a release that pins it) read it. Anyone else is told it does not exist.

use highwind_common::{principal::Principal, validation::Violations};
use uuid::Uuid;

use crate::{
    domain::{asset::Asset, names},
    error::Error,
    store::{AssetRepository, grants::GrantRepository},
};

/// The asset `name` (found in request field `field`) if `principal` owns it: for changes.
pub async fn owned_asset(
    repo: &dyn AssetRepository,
    grants: &dyn GrantRepository,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<Asset, Error> {
    let id = names::parse_asset_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    owned_asset_by_id(repo, grants, principal, id, OwnerOnly::Change).await
}

/// What only an asset's owner may do, as a reader who tries it is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerOnly {
    /// Change the asset or its content.
    Change,
    /// List its versions: the list shows every version, granted or not.
    ListVersions,
}

impl OwnerOnly {
    fn phrase(self) -> &'static str {
        match self {
            Self::Change => "change it",
            Self::ListVersions => "list its versions; read the versions granted to you by name",
        }
    }
}

/// The asset with `id` if `principal` owns it, for `purpose`. Those who may only read it are told so
/// (PERMISSION_DENIED); to everyone else it does not exist.
pub async fn owned_asset_by_id(
    repo: &dyn AssetRepository,
    grants: &dyn GrantRepository,
    principal: &Principal,
    id: Uuid,
    purpose: OwnerOnly,
) -> Result<Asset, Error> {
    match repo.get(id).await? {
        Some(asset) if asset.is_owned_by(principal.as_str()) => Ok(asset),
        Some(_) if grants.may_read(principal.as_str(), id, None).await? => Err(Error::PermissionDenied(format!(
            "only the owner of {} may {}",
            names::asset_name(id),
            purpose.phrase()
        ))),
        _ => Err(Error::NotFound(names::asset_name(id))),
    }
}

/// The asset `name` if `principal` owns it or holds a grant on some version of it.
pub async fn readable_asset(
    repo: &dyn AssetRepository,
    grants: &dyn GrantRepository,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<Asset, Error> {
    let id = names::parse_asset_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    match repo.get(id).await? {
        Some(asset) if asset.is_owned_by(principal.as_str()) => Ok(asset),
        Some(asset) if grants.may_read(principal.as_str(), id, None).await? => Ok(asset),
        _ => Err(Error::NotFound(names::asset_name(id))),
    }
}
