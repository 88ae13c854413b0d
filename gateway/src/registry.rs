//! The Docker registry token endpoint (`/registry/token`): `docker login`, `docker push`, `skopeo` and any client
//! of distribution's token auth trade Highwind credentials (an API key or a token, as the Basic password; the user
//! name is ignored) for a short-lived registry token. Actions follow asset access, as asset-svc answers for the
//! caller: the owner of a Docker Repo asset may pull, push and delete its repository, whoever may read the asset
//! (use case members, buyers) may pull, everyone else gets a token that grants nothing. Bad credentials are refused; a malformed scope or repository
//! name is refused naming it.
//!
//! It also receives the registry's notifications (`/registry/events`): only a caller presenting the configured
//! secret header is heard, each pushed repository is handed to asset-svc to reconcile from the registry itself,
//! and every heard call is answered 200 — a refused notification would block the registry's queue for good.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use highwind_common::{
    principal::{Principal, PrincipalSigner},
    registry::{
        keys::{Claims, RegistryKeys},
        scope::Access,
    },
};
use highwind_proto::asset::internal::v1::{
    AuthorizeRepositoryRequest, RepositoryPushedRequest, registry_service_client::RegistryServiceClient,
};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::identity::auth::Authenticator;

/// Where the token endpoint is served.
pub const TOKEN_PATH: &str = "/registry/token";
/// Where the registry's notifications arrive.
pub const EVENTS_PATH: &str = "/registry/events";
/// The header carrying the notification secret (a header of its own: the registry logs `Authorization`-like
/// values it is configured with less carefully than it should).
pub const SECRET_HEADER: &str = "x-highwind-registry-secret";
/// Most scopes one token request may ask for (docker and skopeo ask for one to three).
const MAX_SCOPES: usize = 32;
/// Largest notification body read.
const MAX_EVENTS_BYTES: usize = 1024 * 1024;

/// How the platform's registry trusts its tokens (`HIGHWIND__GATEWAY__REGISTRY__<KEY>`); the registry's
/// `auth.token` section must name the same `service`, `issuer` and the keys directory's `bundle.pem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryTokenConfig {
    /// Directory of the signing keys (`current.pem`, `next.pem`, `bundle.pem`), shared with asset-svc.
    pub keys_dir: std::path::PathBuf,
    /// The registry's `auth.token.service`: every token's audience.
    pub service: String,
    /// The registry's `auth.token.issuer`.
    pub issuer: String,
    /// How long a token lives.
    pub token_ttl_seconds: u64,
    /// The value the registry sends in `x-highwind-registry-secret` with its notifications; empty: notifications
    /// are not heard (the periodic reconciliation still finds every push).
    pub webhook_secret: highwind_common::config::Secret,
}

impl Default for RegistryTokenConfig {
    fn default() -> Self {
        Self {
            keys_dir: "registry-keys".into(),
            service: "highwind-registry".into(),
            issuer: "highwind".into(),
            token_ttl_seconds: 300,
            webhook_secret: highwind_common::config::Secret::default(),
        }
    }
}

/// What the token endpoint needs.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    config: RegistryTokenConfig,
    keys: Arc<RegistryKeys>,
    authenticator: Authenticator,
    assets: Option<Channel>,
    signer: PrincipalSigner,
}

impl TokenEndpoint {
    /// The endpoint signing with `keys`, checking access with asset-svc on `assets`.
    pub fn new(
        config: RegistryTokenConfig,
        keys: Arc<RegistryKeys>,
        authenticator: Authenticator,
        assets: Option<Channel>,
        signer: PrincipalSigner,
    ) -> Self {
        Self { config, keys, authenticator, assets, signer }
    }

    /// `GET` and `POST` on [`TOKEN_PATH`], `POST` on [`EVENTS_PATH`].
    pub fn routes(self) -> Router {
        Router::new()
            .route(TOKEN_PATH, get(token_get).post(token_post))
            .route(EVENTS_PATH, axum::routing::post(events))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_EVENTS_BYTES))
            .with_state(Arc::new(self))
    }

    /// Whether `headers` carry the configured notification secret (compared by digest, in constant time).
    fn is_from_registry(&self, headers: &HeaderMap) -> bool {
        use sha2::{Digest, Sha256};
        let expected = self.config.webhook_secret.expose();
        let Some(sent) = headers.get(SECRET_HEADER) else { return false };
        if expected.is_empty() {
            return false;
        }
        let (a, b) = (Sha256::digest(sent.as_bytes()), Sha256::digest(expected.as_bytes()));
        a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The actions of `wanted` that `principal` may have: asset-svc decides, for the caller.
    async fn grant(&self, principal: Option<&Principal>, wanted: &Access) -> Vec<String> {
        let (Some(principal), Some(channel)) = (principal, self.assets.clone()) else { return Vec::new() };
        if wanted.kind != "repository" {
            return Vec::new();
        }
        let message = AuthorizeRepositoryRequest { repository: wanted.name.clone(), actions: wanted.actions.clone() };
        let Ok(request) = self.signer.request(principal, message) else { return Vec::new() };
        match RegistryServiceClient::new(channel).authorize_repository(request).await {
            Ok(answer) => answer.into_inner().granted,
            Err(status) => {
                tracing::warn!(error = %status, "cannot check registry access with asset-svc");
                Vec::new()
            }
        }
    }

    async fn answer(&self, request: TokenRequest) -> Response {
        if request.service.as_deref().is_some_and(|s| s != self.config.service) {
            return refusal(
                StatusCode::BAD_REQUEST,
                "DENIED",
                format!("this endpoint issues tokens for service {:?}", self.config.service),
            );
        }
        let principal = match request.password {
            None => None,
            Some(password) => {
                let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {password}")) else {
                    return unauthorized("the password is not a valid credential");
                };
                match self.authenticator.authenticate(Some(&bearer)).await {
                    Ok(principal) => Some(principal),
                    Err(_) => {
                        return unauthorized("invalid credentials: use an API key or a Highwind token as the password");
                    }
                }
            }
        };
        if request.scopes.len() > MAX_SCOPES {
            let message = format!("at most {MAX_SCOPES} scopes per request");
            return refusal(StatusCode::BAD_REQUEST, "DENIED", message);
        }
        let mut wanted = Vec::new();
        for scope in &request.scopes {
            match Access::parse(scope) {
                Ok(access) => wanted.push(access),
                Err(e) => return refusal(StatusCode::BAD_REQUEST, "NAME_INVALID", format!("scope: {e}")),
            }
        }
        let mut access = Vec::new();
        for want in &wanted {
            let actions = self.grant(principal.as_ref(), want).await;
            access.push(Access { kind: want.kind.clone(), name: want.name.clone(), actions });
        }
        let subject = principal.as_ref().map_or("anonymous", Principal::as_str);
        let ttl = Duration::from_secs(self.config.token_ttl_seconds.max(1));
        let claims =
            Claims { issuer: &self.config.issuer, service: &self.config.service, subject, access: &access, ttl };
        match self.keys.mint(&claims).await {
            Ok(token) => Json(TokenResponse {
                access_token: token.clone(),
                token,
                expires_in: ttl.as_secs(),
                issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a registry token");
                refusal(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot sign a registry token".into())
            }
        }
    }
}

/// The registry's notification envelope; everything read is optional, unusable events are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    events: Vec<Event>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event {
    action: String,
    target: Target,
    actor: Actor,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Target {
    repository: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Actor {
    name: String,
}

/// `POST /registry/events`: the registry's notifications.
async fn events(State(endpoint): State<Arc<TokenEndpoint>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !endpoint.is_from_registry(&headers) {
        tracing::warn!("a registry notification without the registry's secret was refused");
        return unauthorized("registry notifications must carry the registry's secret");
    }
    let envelope: Envelope = serde_json::from_slice(&body).unwrap_or_default();
    let mut pushed: Vec<(String, String)> = envelope
        .events
        .into_iter()
        .filter(|e| e.action == "push" && !e.target.repository.is_empty())
        .map(|e| (e.target.repository, e.actor.name))
        .collect();
    pushed.sort();
    pushed.dedup_by(|a, b| a.0 == b.0);
    let Some(channel) = endpoint.assets.clone() else { return StatusCode::OK.into_response() };
    // Answered at once: reconciling a large repository may take longer than the registry waits, and a notification
    // it counts as failed is retried ahead of every later one.
    let relay = endpoint.clone();
    tokio::spawn(async move {
        let gateway = Principal::service("gateway");
        for (repository, pusher) in pushed {
            let message = RepositoryPushedRequest { repository: repository.clone(), pusher };
            let Ok(request) = relay.signer.request(&gateway, message) else { continue };
            if let Err(status) = RegistryServiceClient::new(channel.clone()).repository_pushed(request).await {
                // The periodic reconciliation finds it later.
                tracing::warn!(%repository, error = %status, "cannot record a push now");
            }
        }
    });
    StatusCode::OK.into_response()
}

/// A token request, from either form.
#[derive(Debug, Default)]
struct TokenRequest {
    service: Option<String>,
    scopes: Vec<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

/// `GET /registry/token?service=…&scope=…&scope=…` with Basic credentials, as docker and skopeo send it.
async fn token_get(
    State(endpoint): State<Arc<TokenEndpoint>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut request = TokenRequest::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "service" => request.service = Some(value.into_owned()),
            "scope" => request.scopes.extend(value.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)),
            _ => {}
        }
    }
    match basic_password(&headers) {
        Ok(password) => request.password = password,
        Err(message) => return unauthorized(message),
    }
    endpoint.answer(request).await
}

/// The OAuth2 form, `POST /registry/token` with `grant_type=password` (docker's `--password-stdin` login flow).
async fn token_post(
    State(endpoint): State<Arc<TokenEndpoint>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut request = TokenRequest::default();
    let mut grant_type = String::new();
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "service" => request.service = Some(value.into_owned()),
            "scope" => request.scopes.extend(value.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)),
            "password" => request.password = Some(value.into_owned()),
            "grant_type" => grant_type = value.into_owned(),
            _ => {}
        }
    }
    if grant_type != "password" {
        let body = serde_json::json!({
            "error": "unsupported_grant_type",
            "error_description": "use grant_type=password with an API key or a Highwind token as the password",
        });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    if request.password.is_none() {
        match basic_password(&headers) {
            Ok(password) => request.password = password,
            Err(message) => return unauthorized(message),
        }
    }
    endpoint.answer(request).await
}

/// The password of a Basic `authorization` header; `None` without one.
fn basic_password(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| "the authorization header is not ASCII")?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Err("use Basic credentials") };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("use Basic credentials");
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| "Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
    let (_user, password) = decoded.split_once(':').ok_or("Basic credentials are not user:password")?;
    Ok(Some(password.to_owned()))
}

fn refusal(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(serde_json::json!({"errors": [{"code": code, "message": message}]}))).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = refusal(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message.to_owned());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Highwind\""));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_give_their_password_and_bad_ones_are_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_password(&headers), Ok(None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YWxpY2U6aHdrX3NlY3JldDpwYXJ0"));
        assert_eq!(basic_password(&headers), Ok(Some("hwk_secret:part".into())), "the password may hold ':'");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(basic_password(&headers).is_err());
    }
}
