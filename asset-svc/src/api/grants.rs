//! `highwind.asset.internal.v1.GrantService`: usecase-svc delivers the read grants it derives. Only its own
//! identity may call; the gateway never routes here.

use std::sync::Arc;

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::asset::internal::v1::{self as pb, grant_service_server::GrantService};
use tonic::{Request, Response, Status};

use crate::{
    domain::names,
    error::Error,
    store::grants::{GrantRepository, GrantSet},
};

/// The only service that may deliver grants.
pub const GRANTING_SERVICE: &str = "usecase-svc";

/// Most principals × targets one delivery may hold.
const MAX_GRANTS: usize = 100_000;

/// Handlers of `GrantService`.
#[derive(Debug, Clone)]
pub struct GrantApi {
    grants: Arc<dyn GrantRepository>,
}

impl GrantApi {
    /// Handlers over `grants`.
    pub fn new(grants: Arc<dyn GrantRepository>) -> Self {
        Self { grants }
    }
}

fn decode(request: pb::ReplaceGrantsRequest) -> Result<GrantSet, Violations> {
    let mut violations = Violations::new();
    let known_source = ["useCases/", "entitlements/"]
        .iter()
        .any(|p| request.source.strip_prefix(p).is_some_and(|id| uuid::Uuid::try_parse(id).is_ok()));
    if !known_source {
        violations.add("source", "must be useCases/{use_case} or entitlements/{entitlement}");
    }
    if request.sequence < 1 {
        violations.add("sequence", "must be 1 or more");
    }
    if request.principals.iter().any(|p| !p.starts_with("users/") || p.len() > 300) {
        violations.add("principals", "each must be a users/… principal");
    }
    let mut targets = Vec::with_capacity(request.targets.len());
    for (i, target) in request.targets.iter().enumerate() {
        match names::parse_asset_name(&target.asset) {
            Ok(id) if target.version_number >= 0 => targets.push((id, target.version_number)),
            Ok(_) => violations.add(format!("targets[{i}].version_number"), "must not be negative"),
            Err(e) => violations.add(format!("targets[{i}].asset"), e),
        }
    }
    if request.principals.len().saturating_mul(targets.len()) > MAX_GRANTS {
        violations.add("targets", format!("at most {MAX_GRANTS} principal × target pairs per source"));
    }
    violations.into_result(GrantSet {
        source: request.source,
        sequence: request.sequence,
        principals: request.principals,
        targets,
    })
}

/// ReplaceGrants: only the granting service delivers (anyone else is refused before the request is read); an
/// older delivery than the one applied is ignored (whether this one applied is returned).
async fn deliver(
    grants: &dyn GrantRepository,
    caller: &Principal,
    request: pb::ReplaceGrantsRequest,
) -> Result<bool, Error> {
    if !caller.is_service(GRANTING_SERVICE) {
        return Err(Error::NotTheCallers(format!("only {GRANTING_SERVICE} delivers grants")));
    }
    let set = decode(request).map_err(Error::Invalid)?;
    let applied = grants.replace(&set).await?;
    tracing::info!(source = %set.source, sequence = set.sequence, applied, "grants delivered");
    Ok(applied)
}

#[tonic::async_trait]
impl GrantService for GrantApi {
    async fn replace_grants(
        &self,
        request: Request<pb::ReplaceGrantsRequest>,
    ) -> Result<Response<pb::ReplaceGrantsResponse>, Status> {
        let caller = Principal::of(&request)?.clone();
        let applied = deliver(self.grants.as_ref(), &caller, request.into_inner()).await?;
        Ok(Response::new(pb::ReplaceGrantsResponse { applied }))
    }
}
