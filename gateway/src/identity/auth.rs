//! Who is calling: bearer tokens checked against the configured token → principal map, and the verified
//! principal forwarded to services, signed. Health and reflection need no credentials.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use highwind_common::principal::{CALLER_HEADER, PRINCIPAL_HEADER, Principal, PrincipalSigner, SIGNATURE_HEADER};
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::{keys::ApiKeys, oidc::OidcVerifier, rate_limit::RateLimiter};

/// Paths anyone may call: health checks, reflection and the embedded issuer.
const PUBLIC_PREFIXES: [&str; 4] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/dev-issuer/",
];

/// Turns bearer credentials into principals: API keys (`hw_…`) through the key store, JWTs through the OIDC
/// verifier, other tokens through the configured token map (kept only as SHA-256 digests, so a lookup's timing says nothing about any token).
#[derive(Clone)]
pub struct Authenticator {
    principals: Arc<HashMap<[u8; 32], Principal>>,
    oidc: Option<Arc<OidcVerifier>>,
    keys: Option<ApiKeys>,
    limiter: Option<Arc<RateLimiter>>,
    signer: PrincipalSigner,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.principals.len()).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Accepts each `(user, token)` pair as principal `users/{user}`; signs forwarded principals with `signer`.
    pub fn new<'a>(tokens: impl IntoIterator<Item = (&'a str, &'a str)>, signer: PrincipalSigner) -> Self {
        let principals = tokens.into_iter().map(|(user, token)| (digest(token), Principal::user(user))).collect();
        Self { principals: Arc::new(principals), oidc: None, keys: None, limiter: None, signer }
    }

    /// Also accepts the API keys in `keys`.
    pub fn with_api_keys(mut self, keys: ApiKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Holds every principal to `limiter`'s budget.
    pub fn with_rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(Arc::new(limiter));
        self
    }

    /// Also accepts JWTs that `verifier` verifies.
    pub fn with_oidc(mut self, verifier: OidcVerifier) -> Self {
        self.oidc = Some(Arc::new(verifier));
        self
    }

    /// The principal a request's `authorization` header proves, or UNAUTHENTICATED. Accepts `Bearer <token>`
    /// and, as Highwind's inference clients send it, the bare token.
    pub async fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Principal, Status> {
        self.authenticate_with(authorization).await.map(|(principal, _)| principal)
    }

    /// [`Authenticator::authenticate`], also saying which kind of credential proved it.
    pub async fn authenticate_with(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<(Principal, Credential), Status> {
        let token = bearer_token(authorization)?;
        if let Some(keys) = self.keys.as_ref().filter(|_| ApiKeys::looks_like_key(token)) {
            let key = keys.verify(token).await?;
            let principal =
                key.principal().ok_or_else(|| Status::unauthenticated("invalid, expired or revoked API key"))?;
            return Ok((principal, Credential::ApiKey { id: key.id, expire_time: key.expire_time }));
        }
        if let Some(oidc) = self.oidc.as_ref().filter(|_| OidcVerifier::looks_like_jwt(token)) {
            return Ok((oidc.verify(token).await?, Credential::Token));
        }
        let principal = self.principals.get(&digest(token)).cloned();
        principal.map(|p| (p, Credential::Token)).ok_or_else(|| Status::unauthenticated("invalid or expired token"))
    }
}

/// The kind of credential a call was authenticated with; the auth layer puts it in the request's extensions
/// (where no client can set it) for rules that depend on it, such as the lifetime of a key created by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key, which stops working at `expire_time` (never when `None`).
    ApiKey {
        /// The key's id.
        id: uuid::Uuid,
        /// When the key expires.
        expire_time: Option<DateTime<Utc>>,
    },
    /// An OIDC token or a configured static token.
    Token,
}

/// The token of an `authorization` header: `Bearer <token>` or the bare token.
fn bearer_token(authorization: Option<&HeaderValue>) -> Result<&str, Status> {
    let value = authorization
        .ok_or_else(|| Status::unauthenticated("missing credentials: send authorization: Bearer <token>"))?;
    let value = value.to_str().map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        Some(_) => Err(Status::unauthenticated("unsupported authorization scheme: use Bearer")),
        None => Ok(value.trim()),
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Authenticates every call but health and reflection, and replaces any client-sent identity headers with the
/// signed principal.
#[derive(Debug, Clone)]
pub struct AuthLayer(Authenticator);

impl AuthLayer {
    /// Authenticates with `authenticator`.
    pub fn new(authenticator: Authenticator) -> Self {
        Self(authenticator)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, authenticator: self.0.clone() }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S, B, ResBody> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let headers = request.headers_mut();
        // Only the gateway speaks for a principal: whatever a client claims is dropped.
        headers.remove(PRINCIPAL_HEADER);
        headers.remove(SIGNATURE_HEADER);
        headers.remove(CALLER_HEADER);
        let path = request.uri().path();
        // The ready inner service goes into the future; a fresh clone waits for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if PUBLIC_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return Box::pin(inner.call(request));
        }
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let (principal, credential) =
                match authenticator.authenticate_with(request.headers().get(AUTHORIZATION)).await {
                    Ok(authenticated) => authenticated,
                    Err(status) => return Ok(status.into_http()),
                };
            request.extensions_mut().insert(credential);
            if let Some(wait) = authenticator.limiter.as_ref().and_then(|l| l.check(&principal, Instant::now()).err()) {
                let status = Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    format!("rate limit reached for {principal}; retry in {} ms", wait.as_millis().max(1)),
                    ErrorDetails::with_retry_info(Some(wait)),
                );
                return Ok(status.into_http());
            }
            let signature = authenticator.signer.sign(&principal, SystemTime::now());
            let (Ok(name), Ok(signature)) =
                (HeaderValue::from_str(principal.as_str()), HeaderValue::from_str(&signature))
            else {
                return Ok(Status::internal("cannot forward the principal").into_http());
            };
            request.headers_mut().insert(PRINCIPAL_HEADER, name);
            request.headers_mut().insert(SIGNATURE_HEADER, signature);
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new([("alice", "tok-a"), ("bob", "tok-b")], PrincipalSigner::new(b"k".to_vec()))
    }

    #[tokio::test]
    async fn bearer_and_bare_tokens_map_to_their_principals() {
        let auth = authenticator();
        let principal = async |v: &'static str| auth.authenticate(Some(&HeaderValue::from_static(v))).await;
        assert_eq!(principal("Bearer tok-a").await.expect("alice"), Principal::user("alice"));
        assert_eq!(principal("bearer tok-b").await.expect("bob"), Principal::user("bob"));
        assert_eq!(principal("tok-a").await.expect("bare"), Principal::user("alice"));
        assert!(principal("Bearer tok-c").await.is_err());
        assert!(principal("Basic dG9rLWE=").await.is_err());
        assert!(auth.authenticate(None).await.is_err());
    }
}
