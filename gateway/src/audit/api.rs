//! `highwind.identity.v1.AuditService`: principals read their own calls; owners of a use case or an asset read every
//! call on it. Ownership is asked of the owning service, as the caller.

use std::sync::Arc;

use highwind_common::{
    filter,
    page_token::PageTokens,
    principal::{Principal, PrincipalSigner},
    status,
    validation::{Violations, page_size},
};
use highwind_proto::{
    audit::internal::v1::{AuthorizeAuditReadRequest, audit_access_service_client::AuditAccessServiceClient},
    identity::v1::{self as pb, audit_service_server::AuditService},
};
use tonic::{Request, Response, Status, transport::Channel};
use uuid::Uuid;

use super::{
    AuditEvent, code_name,
    store::{AuditQuery, AuditStore},
};

/// Handlers of `AuditService`.
#[derive(Debug, Clone)]
pub struct AuditApi {
    store: Arc<dyn AuditStore>,
    page_tokens: PageTokens,
    use_cases: Option<Channel>,
    assets: Option<Channel>,
    signer: PrincipalSigner,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    t: i64,
    id: Uuid,
}

impl AuditApi {
    /// Handlers over `store`, asking the services behind `use_cases` and `assets` who owns a target.
    pub fn new(
        store: Arc<dyn AuditStore>,
        page_tokens: PageTokens,
        use_cases: Option<Channel>,
        assets: Option<Channel>,
        signer: PrincipalSigner,
    ) -> Self {
        Self { store, page_tokens, use_cases, assets, signer }
    }

    /// Whether `principal` owns `target`, as the service that owns it answers (NOT_FOUND and the like are that
    /// service's own answer).
    async fn check_owner(&self, principal: &Principal, target: &str) -> Result<(), Status> {
        let unavailable = || Status::unavailable("the owning service cannot be reached; try again shortly");
        let owning_service = if target.starts_with("useCases/") { &self.use_cases } else { &self.assets };
        let channel = owning_service.clone().ok_or_else(unavailable)?;
        let request = self.signer.request(principal, AuthorizeAuditReadRequest { target: target.to_owned() })?;
        let answer = AuditAccessServiceClient::new(channel).authorize_audit_read(request).await?.into_inner();
        if answer.owner {
            Ok(())
        } else {
            Err(Status::permission_denied(format!("only an owner of {target} reads its audit events")))
        }
    }
}

fn event_to_proto(e: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        name: format!("auditEvents/{}", e.id),
        principal: e.principal.clone(),
        method: e.method.clone(),
        target: e.target.clone(),
        code: e.code.clone(),
        time: Some(prost_types::Timestamp {
            seconds: e.time.timestamp(),
            nanos: i32::try_from(e.time.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        trace_id: e.trace_id.clone(),
    }
}

/// A target the log can be read by: a use case or an asset, by its top-level name.
fn valid_target(target: &str) -> bool {
    let Some((collection, id)) = target.split_once('/') else {
        return false;
    };
    ["useCases", "assets"].contains(&collection) && Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let mut violations = Violations::new();
        let limit = page_size(request.page_size, 50, 1_000).unwrap_or_else(|e| {
            violations.add("page_size", e);
            0
        });
        let mut query = AuditQuery { limit, ..AuditQuery::default() };
        match filter::terms(&request.filter) {
            Err(e) => violations.add("filter", e),
            Ok(terms) => {
                for (field, value) in terms {
                    match field.as_str() {
                        "target" if valid_target(&value) => query.target = Some(value),
                        "target" => violations.add("filter", "target must be useCases/{use_case} or assets/{asset}"),
                        "principal" => query.principal = Some(value),
                        "code" => {
                            let known = (0..=16).map(tonic::Code::from_i32).any(|c| code_name(c) == value);
                            if known {
                                query.code = Some(value);
                            } else {
                                violations.add(
                                    "filter",
                                    format!(
                                        "unknown code {}: use a gRPC code name",
                                        highwind_common::status_bounds::echo(&value)
                                    ),
                                );
                            }
                        }
                        _ => violations.add(
                            "filter",
                            format!(
                                "cannot filter on {}: use target, principal or code",
                                highwind_common::status_bounds::echo(&field)
                            ),
                        ),
                    }
                }
            }
        }
        if !violations.is_empty() {
            return Err(status::invalid_argument(&violations));
        }
        match &query.target {
            Some(target) => self.check_owner(&principal, target).await?,
            None if query.principal.as_ref().is_some_and(|p| p != principal.as_str()) => {
                return Err(Status::permission_denied(
                    "another principal's calls are listed only with a target you own: add target = …",
                ));
            }
            None => query.principal = Some(principal.as_str().to_owned()),
        }
        let scope = format!("audit|{principal}|{:?}", request.filter.trim());
        if !request.page_token.is_empty() {
            let cursor: Cursor = self.page_tokens.decode(&scope, &request.page_token).map_err(|_| {
                status::invalid_argument(&Violations::one(
                    "page_token",
                    "not a token from a previous page of this list",
                ))
            })?;
            query.before = Some((cursor.t, cursor.id));
        }
        let mut events = self.store.list(&query).await.map_err(|e| status::internal(&e))?;
        let next_page_token = if events.len() > limit {
            events.truncate(limit);
            events
                .last()
                .map(|e| self.page_tokens.encode(&scope, &Cursor { t: e.time.timestamp_micros(), id: e.id }))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: events.iter().map(event_to_proto).collect(),
            next_page_token,
        }))
    }
}
