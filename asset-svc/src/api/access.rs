//! Who may see an asset: for now its owner alone. Anyone else is told it does not exist.

use highwind_common::{principal::Principal, validation::Violations};
use uuid::Uuid;

use crate::{
    domain::{asset::Asset, names},
    error::Error,
    store::AssetRepository,
};

/// The asset `name` (found in request field `field`) if `principal` owns it.
pub async fn owned_asset(
    repo: &dyn AssetRepository,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<Asset, Error> {
    let id = names::parse_asset_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    owned_asset_by_id(repo, principal, id).await
}

/// The asset with `id` if `principal` owns it.
pub async fn owned_asset_by_id(repo: &dyn AssetRepository, principal: &Principal, id: Uuid) -> Result<Asset, Error> {
    match repo.get(id).await? {
        Some(asset) if asset.is_owned_by(principal.as_str()) => Ok(asset),
        _ => Err(Error::NotFound(names::asset_name(id))),
    }
}
