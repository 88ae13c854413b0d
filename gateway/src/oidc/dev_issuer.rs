//! A tiny OIDC-compatible issuer for the embedded platform: discovery, JWKS and a token endpoint that mints
//! tokens for the configured dev users. The gateway verifies its tokens through the same code as any real
//! issuer's. Its P-256 key lives in the data directory (mode 0600), so tokens survive restarts.
//!
//! It signs for whoever asks on its address: it is for a developer's own machine, not for a shared one.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use axum::{
    Form, Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the issuer's routes live on the gateway.
pub const PATH: &str = "/dev-issuer";
/// The audience its tokens are for.
pub const AUDIENCE: &str = "highwind";
/// The `iss` of its tokens. Not the URL it is served at: tokens keep working when the platform restarts on
/// another address, so the gateway is told where discovery is separately.
pub const ISSUER: &str = "highwind-dev-issuer";
/// Lifetime of a minted token.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The key file in the data directory.
const KEY_FILE: &str = "dev-issuer-key.p8";

/// Why the issuer could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// The key file could not be read or written.
    #[error("dev issuer key {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The key file does not hold a P-256 key.
    #[error("dev issuer key {0} is not a PKCS#8 P-256 key; move it away to start afresh")]
    BadKey(String),
}

/// The embedded issuer.
pub struct DevIssuer {
    base_url: String,
    kid: String,
    encoding: EncodingKey,
    jwk: serde_json::Value,
    users: Vec<String>,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer").field("base_url", &self.base_url).field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    preferred_username: &'a str,
}

#[derive(Deserialize)]
struct TokenRequest {
    username: String,
}

impl DevIssuer {
    /// The issuer served at `base_url` (the gateway's URL + [`PATH`]) for `users`, with its key from `data_dir`
    /// (created on first start).
    pub fn load_or_create(data_dir: &Path, base_url: String, users: Vec<String>) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |error| DevIssuerError::Io { path: path.display().to_string(), error };
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let generated = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| DevIssuerError::BadKey(path.display().to_string()))?;
                crate::standalone::write_private(&path, generated.as_ref()).map_err(io)?;
                generated.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| DevIssuerError::BadKey(path.display().to_string()))?;
        // An uncompressed P-256 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = pair.public_key().as_ref();
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
        let kid = hex::encode(&Sha256::digest(point)[..8]);
        let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" });
        Ok(Self { base_url, kid, encoding: EncodingKey::from_ec_der(&pkcs8), jwk, users })
    }

    /// How the gateway trusts this issuer.
    pub fn trust(&self) -> crate::oidc::IssuerConfig {
        crate::oidc::IssuerConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            discovery_url: Some(format!("{}/.well-known/openid-configuration", self.base_url)),
        }
    }

    /// A token for `user`, or `None` when `user` is not a dev user.
    pub fn mint(&self, user: &str) -> Option<String> {
        if !self.users.iter().any(|u| u == user) {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let claims = Claims {
            iss: ISSUER,
            sub: user,
            aud: AUDIENCE,
            iat: now,
            nbf: now,
            exp: now + TOKEN_LIFETIME.as_secs(),
            preferred_username: user,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).ok()
    }

    /// Discovery, JWKS and token routes, mounted under [`PATH`].
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route(&format!("{PATH}/.well-known/openid-configuration"), get(discovery))
            .route(&format!("{PATH}/jwks"), get(jwks))
            .route(&format!("{PATH}/token"), post(token))
            .with_state(self)
    }
}

async fn discovery(State(issuer): State<Arc<DevIssuer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{}/jwks", issuer.base_url),
        "token_endpoint": format!("{}/token", issuer.base_url),
        "id_token_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": ["password"],
    }))
}

async fn jwks(State(issuer): State<Arc<DevIssuer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [issuer.jwk] }))
}

async fn token(
    State(issuer): State<Arc<DevIssuer>>,
    Form(request): Form<TokenRequest>,
) -> Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)> {
    match issuer.mint(&request.username) {
        Some(token) => Ok(Json(serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        }))),
        None => Err((
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({ "error": "invalid_grant", "error_description": "not a dev user of this platform" }),
            ),
        )),
    }
}
