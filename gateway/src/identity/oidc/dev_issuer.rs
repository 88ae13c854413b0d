//! A tiny OIDC-compatible issuer for the embedded platform: discovery, JWKS and a token endpoint that mints
//! tokens for the configured dev users. The gateway verifies its tokens through the same code as any real
//! issuer's. Its P-256 key lives in the data directory (mode 0600), so tokens survive restarts.
//!
//! It signs only for someone who shows the dev user's password, which the platform keeps in its data directory
//! (mode 0600) and prints at start: being able to reach the port is not enough (a pipeline task with network,
//! or a web page in a browser on this machine, can reach it too). Its routes send no CORS headers, so no page
//! of another origin reads an answer.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    constant_time::verify_slices_are_equal,
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
use highwind_common::config::Secret;
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
    /// Dev user → SHA-256 of their password (digests, so the comparison's time says nothing about the length).
    passwords: BTreeMap<String, [u8; 32]>,
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
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Option<String>,
}

/// Why the token endpoint refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request carried no password.
    #[error(
        "a password is required: the platform prints one per dev user at start (dev password (NAME): …) and keeps \
         them in its data directory"
    )]
    NoPassword,
    /// No such dev user, or not their password (the same answer, so it does not tell which users exist).
    #[error("unknown dev user or wrong password")]
    WrongPassword,
}

impl DevIssuer {
    /// The issuer served at `base_url` (the gateway's URL + [`PATH`]) for `users` (name, password), with its key
    /// from `data_dir` (created on first start).
    pub fn load_or_create(
        data_dir: &Path,
        base_url: String,
        users: Vec<(String, Secret)>,
    ) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |error| DevIssuerError::Io { path: path.display().to_string(), error };
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let generated = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| DevIssuerError::BadKey(path.display().to_string()))?;
                highwind_common::private_file::write_private(&path, generated.as_ref()).map_err(io)?;
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
        let passwords = users.into_iter().map(|(user, password)| (user, password_digest(password.expose()))).collect();
        Ok(Self { base_url, kid, encoding: EncodingKey::from_ec_der(&pkcs8), jwk, passwords })
    }

    /// How the gateway trusts this issuer.
    pub fn trust(&self) -> crate::identity::oidc::IssuerConfig {
        crate::identity::oidc::IssuerConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            discovery_url: Some(format!("{}/.well-known/openid-configuration", self.base_url)),
        }
    }

    /// A token for `user` when `password` is theirs.
    pub fn grant(&self, user: &str, password: Option<&str>) -> Result<String, Refusal> {
        let password = password.filter(|p| !p.is_empty()).ok_or(Refusal::NoPassword)?;
        // Compared even for an unknown user, so the answer's time does not tell which users exist.
        let expected = self.passwords.get(user).copied().unwrap_or_default();
        let matches = verify_slices_are_equal(&expected, &password_digest(password)).is_ok();
        if !matches || !self.passwords.contains_key(user) {
            return Err(Refusal::WrongPassword);
        }
        self.mint(user).ok_or(Refusal::WrongPassword)
    }

    /// A token for `user`, or `None` when `user` is not a dev user. For the platform's own console output; the
    /// token endpoint goes through [`DevIssuer::grant`].
    pub fn mint(&self, user: &str) -> Option<String> {
        if !self.passwords.contains_key(user) {
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

fn password_digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

async fn token(
    State(issuer): State<Arc<DevIssuer>>,
    Form(request): Form<TokenRequest>,
) -> Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)> {
    match issuer.grant(&request.username, request.password.as_deref()) {
        Ok(token) => Ok(Json(serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        }))),
        Err(refusal) => {
            tracing::warn!(user = %request.username.chars().take(64).collect::<String>(), "dev token refused");
            Err((
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "invalid_grant", "error_description": refusal.to_string() })),
            ))
        }
    }
}
