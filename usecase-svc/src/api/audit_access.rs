//! `highwind.audit.internal.v1.AuditAccessService` for use cases: the gateway asks whether its caller owns a use
//! case before it shows the calls made on it. The gateway never routes here.

use std::sync::Arc;

use highwind_common::principal::Principal;
use highwind_proto::audit::internal::v1::{self as pb, audit_access_service_server::AuditAccessService};
use tonic::{Request, Response, Status};

use super::paging::caller_role;
use crate::{domain::role::Role, store::UseCaseRepository};

/// Handlers of `AuditAccessService`.
#[derive(Debug, Clone)]
pub struct AuditAccessApi {
    repo: Arc<dyn UseCaseRepository>,
}

impl AuditAccessApi {
    /// Handlers over the use cases in `repo`.
    pub fn new(repo: Arc<dyn UseCaseRepository>) -> Self {
        Self { repo }
    }
}

#[tonic::async_trait]
impl AuditAccessService for AuditAccessApi {
    async fn authorize_audit_read(
        &self,
        request: Request<pb::AuthorizeAuditReadRequest>,
    ) -> Result<Response<pb::AuthorizeAuditReadResponse>, Status> {
        let principal = Principal::of(&request)?;
        // NOT_FOUND for non-members, so the answer leaks nothing.
        let (_, role) = caller_role(self.repo.as_ref(), principal, "target", &request.get_ref().target).await?;
        Ok(Response::new(pb::AuthorizeAuditReadResponse { owner: role == Role::Owner }))
    }
}
