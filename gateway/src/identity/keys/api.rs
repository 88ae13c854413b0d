//! `highwind.identity.v1.ApiKeyService`, served by the gateway: keys belong to the caller alone.

use chrono::{DateTime, Utc};
use highwind_common::{page_token::PageTokens, principal::Principal, status, validation::Violations};
use highwind_proto::identity::v1::{self as pb, api_key_service_server::ApiKeyService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{ApiKey, ApiKeys, KeyError};
use crate::identity::auth::Credential;

const MAX_DISPLAY_NAME: usize = 200;
const MAX_PAGE_SIZE: usize = 1_000;
const DEFAULT_PAGE_SIZE: usize = 50;
/// The furthest ahead a key's expiry may be set: a typo of a year stays a mistake, not a key for ever.
const MAX_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(5 * 366);

/// The expiry of a key created with `credential`: a key created by a key never outlives it, so it gets the
/// creating key's expiry when it asked for none or for a later one. Keys created with a token keep what they asked
/// for (the point of a key is to outlive the session that made it).
fn lifetime_within(requested: Option<DateTime<Utc>>, credential: Option<Credential>) -> Option<DateTime<Utc>> {
    match credential {
        Some(Credential::ApiKey { expire_time: Some(parent), .. }) => {
            Some(requested.map_or(parent, |at| at.min(parent)))
        }
        _ => requested,
    }
}

/// Handlers of `ApiKeyService`.
#[derive(Debug, Clone)]
pub struct ApiKeyApi {
    keys: ApiKeys,
    page_tokens: PageTokens,
}

impl ApiKeyApi {
    /// Handlers over `keys`, signing page tokens with `page_tokens`.
    pub fn new(keys: ApiKeys, page_tokens: PageTokens) -> Self {
        Self { keys, page_tokens }
    }
}

impl From<KeyError> for Status {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::NotFound(name) => Status::not_found(format!("{name} not found")),
            KeyError::Store(cause) => status::internal(&cause),
        }
    }
}

use highwind_common::time::timestamp;

fn to_proto(key: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: format!("apiKeys/{}", key.id),
        display_name: key.display_name.clone(),
        owner: key.owner.clone(),
        prefix: key.prefix(),
        create_time: Some(timestamp(key.create_time)),
        expire_time: key.expire_time.map(timestamp),
        revoke_time: key.revoke_time.map(timestamp),
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let owner = Principal::of(&request)?.clone();
        let credential = request.extensions().get::<Credential>().copied();
        let Some(draft) = request.into_inner().api_key else {
            return Err(status::invalid_argument(&Violations::one("api_key", "required")));
        };
        let mut violations = Violations::new();
        let chars = draft.display_name.chars().count();
        if chars == 0 || chars > MAX_DISPLAY_NAME || draft.display_name.chars().any(char::is_control) {
            violations.add(
                "api_key.display_name",
                format!("required: 1 to {MAX_DISPLAY_NAME} characters, no control characters"),
            );
        }
        let expire_time =
            draft.expire_time.map(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)));
        let now = Utc::now();
        let expire_time = match expire_time {
            Some(Some(at)) if at > now && at <= now + MAX_LIFETIME => Some(at),
            Some(_) => {
                let reason =
                    format!("must be a valid time in the future, at most {} days ahead", MAX_LIFETIME.num_days());
                violations.add("api_key.expire_time", reason);
                None
            }
            None => None,
        };
        if !violations.is_empty() {
            return Err(status::invalid_argument(&violations));
        }
        let expire_time = lifetime_within(expire_time, credential);
        let parent = match credential {
            Some(Credential::ApiKey { id, .. }) => Some(id),
            _ => None,
        };
        let (key, secret) = self.keys.create(&owner, draft.display_name, expire_time, parent).await?;
        tracing::info!(key = %key.id, owner = %owner, "api key created");
        Ok(Response::new(pb::CreateApiKeyResponse { api_key: Some(to_proto(&key)), key: secret }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let owner = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let limit = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                let reason = format!("must be between 0 and {MAX_PAGE_SIZE}");
                return Err(status::invalid_argument(&Violations::one("page_size", reason)));
            }
        };
        let scope = format!("api-keys|{owner}");
        let after = if request.page_token.is_empty() {
            None
        } else {
            let cursor: Uuid = self.page_tokens.decode(&scope, &request.page_token).map_err(|_| {
                status::invalid_argument(&Violations::one(
                    "page_token",
                    "not a token from a previous page of this list",
                ))
            })?;
            Some(cursor)
        };
        let mut keys = self.keys.list(&owner, after, limit).await?;
        let next_page_token = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().map(|k| self.page_tokens.encode(&scope, &k.id)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListApiKeysResponse { api_keys: keys.iter().map(to_proto).collect(), next_page_token }))
    }

    async fn delete_api_key(&self, request: Request<pb::DeleteApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let owner = Principal::of(&request)?.clone();
        let name = request.into_inner().name;
        let id = name
            .strip_prefix("apiKeys/")
            .and_then(|id| Uuid::try_parse(id).ok())
            .ok_or_else(|| status::invalid_argument(&Violations::one("name", "must be of the form apiKeys/{key}")))?;
        let revoked = self.keys.revoke(&owner, id).await?;
        tracing::info!(key = %id, owner = %owner, "api key revoked");
        Ok(Response::new(to_proto(&revoked)))
    }
}
