//! Verifying OIDC access tokens: issuer discovery, JWKS fetched and cached by key id (an unknown `kid` triggers
//! one refresh, at most every 30 s per issuer), RS256 and ES256 only, `iss`, `aud`, `exp` and `nbf` checked with
//! a small leeway; a header with critical extensions (`crit`) is refused. The caller becomes `users/{sub}`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use highwind_common::principal::Principal;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use tonic::Status;

/// Signature algorithms accepted; everything else (`none`, HMAC, …) is refused before any key is looked at.
const ACCEPTED: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// Least time between two JWKS fetches for one issuer.
const MIN_REFRESH: Duration = Duration::from_secs(30);

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry, e.g. `https://keycloak.example.com/realms/highwind`; discovery is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` tokens must be meant for (the client id, e.g. `highwind`).
    pub audience: String,
    /// Where to read the discovery document when it is not at `<issuer>/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Unverified {
    iss: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
}

struct Issuer {
    config: IssuerConfig,
    keys: RwLock<Keys>,
    last_fetch: Mutex<Option<Instant>>,
}

/// Verifies tokens of the configured issuers.
pub struct OidcVerifier {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers.iter().map(|i| i.config.issuer.as_str()).collect();
        f.debug_struct("OidcVerifier").field("issuers", &issuers).finish()
    }
}

fn refuse(why: &str) -> Status {
    Status::unauthenticated(format!("invalid token: {why}"))
}

impl OidcVerifier {
    /// Trusts `issuers`; keys are fetched on first use.
    pub fn new(issuers: Vec<IssuerConfig>) -> Self {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).tcp_nodelay(true).build().unwrap_or_default();
        let issuers = issuers
            .into_iter()
            .map(|config| Issuer {
                config,
                keys: RwLock::new(Keys { by_kid: HashMap::new() }),
                last_fetch: Mutex::new(None),
            })
            .collect();
        Self { issuers, http }
    }

    /// Whether `token` has the shape of a JWT (three dot-separated parts), so it is for this verifier.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The principal a valid token names, or UNAUTHENTICATED saying what is wrong (never echoing the token).
    pub async fn verify(&self, token: &str) -> Result<Principal, Status> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(refuse("signature algorithm not accepted (RS256 or ES256 only)"));
        }
        // RFC 7515 §4.1.11: a recipient must refuse a token naming a critical extension it does not understand,
        // and this verifier understands none.
        if header.crit.is_some() {
            return Err(refuse("critical header extension (crit) not understood"));
        }
        let kid = header.kid.ok_or_else(|| refuse("no key id (kid)"))?;
        let unverified: Unverified =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| refuse("malformed claims"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == unverified.iss)
            .ok_or_else(|| refuse("issued by an issuer this platform does not trust"))?;
        let (alg, key) = self.key(issuer, &kid).await?;
        if alg != header.alg {
            return Err(refuse("the key does not match the token's algorithm"));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&[&issuer.config.audience]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"].iter().map(|c| (*c).to_owned()).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            refuse(match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not valid yet",
                ErrorKind::InvalidAudience => "meant for another audience",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidSignature => "signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "does not verify",
            })
        })?;
        let sub = data.claims.sub;
        let valid = !sub.is_empty()
            && sub.len() <= 255
            && sub.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b));
        if !valid {
            return Err(refuse("the subject is not a usable user id"));
        }
        Ok(Principal::user(&sub))
    }

    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<(Algorithm, DecodingKey), Status> {
        if let Some(found) = issuer.keys.read().await.by_kid.get(kid) {
            return Ok(found.clone());
        }
        {
            let mut last = issuer.last_fetch.lock().await;
            let due = last.is_none_or(|at| at.elapsed() >= MIN_REFRESH);
            if due {
                *last = Some(Instant::now());
                match self.fetch(&issuer.config).await {
                    Ok(keys) => issuer.keys.write().await.by_kid = keys,
                    Err(error) => tracing::warn!(issuer = %issuer.config.issuer, error = %error, "jwks fetch failed"),
                }
            }
        }
        issuer.keys.read().await.by_kid.get(kid).cloned().ok_or_else(|| refuse("unknown signing key"))
    }

    async fn fetch(&self, issuer: &IssuerConfig) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        let discovery_url = issuer
            .discovery_url
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/openid-configuration", issuer.issuer.trim_end_matches('/')));
        let discovery: Discovery = self
            .http
            .get(&discovery_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let set: JwkSet = self
            .http
            .get(&discovery.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec)
                    if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (alg, key));
            }
        }
        Ok(keys)
    }
}
