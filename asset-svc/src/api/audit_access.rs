//! `highwind.audit.internal.v1.AuditAccessService` for assets: the gateway asks whether its caller owns an asset
//! before it shows the calls made on it. The gateway never routes here.

use std::sync::Arc;

use highwind_common::principal::Principal;
use highwind_proto::audit::internal::v1::{self as pb, audit_access_service_server::AuditAccessService};
use tonic::{Request, Response, Status};

use super::access::readable_asset;
use crate::store::{AssetRepository, grants::GrantRepository};

/// Handlers of `AuditAccessService`.
#[derive(Debug, Clone)]
pub struct AuditAccessApi {
    repo: Arc<dyn AssetRepository>,
    grants: Arc<dyn GrantRepository>,
}

impl AuditAccessApi {
    /// Handlers over the assets in `repo`, visible as `grants` allow.
    pub fn new(repo: Arc<dyn AssetRepository>, grants: Arc<dyn GrantRepository>) -> Self {
        Self { repo, grants }
    }
}

#[tonic::async_trait]
impl AuditAccessService for AuditAccessApi {
    async fn authorize_audit_read(
        &self,
        request: Request<pb::AuthorizeAuditReadRequest>,
    ) -> Result<Response<pb::AuthorizeAuditReadResponse>, Status> {
        let principal = Principal::of(&request)?;
        let target = &request.get_ref().target;
        // NOT_FOUND unless the caller may read the asset at all, so the answer leaks nothing.
        let asset = readable_asset(self.repo.as_ref(), self.grants.as_ref(), principal, "target", target).await?;
        Ok(Response::new(pb::AuthorizeAuditReadResponse { owner: asset.is_owned_by(principal.as_str()) }))
    }
}
