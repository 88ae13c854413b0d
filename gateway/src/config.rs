//! Gateway configuration: `[gateway]` settings, `HIGHWIND__GATEWAY__*` in the environment.

use std::{collections::BTreeMap, net::SocketAddr};

use highwind_common::config::Secret;
use serde::{Deserialize, Serialize};

/// Largest gRPC message a client may send through the gateway, by default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

/// Where the gateway listens, whom it trusts and where it forwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address of the public listener (gRPC, gRPC-Web, HTTP/1.1 and HTTP/2).
    pub listen: SocketAddr,
    /// Key shared with the services to sign forwarded principals (at least 32 bytes).
    pub internal_secret: Secret,
    /// The gateway's own database (API keys): `postgres://…` or `sqlite://…`.
    pub database_url: String,
    /// Accepted static bearer tokens (for machines): user name → token. The caller becomes `users/{name}`.
    pub tokens: BTreeMap<String, Secret>,
    /// Trusted OIDC issuers; a JWT from one of them makes its caller `users/{sub}`.
    pub oidc_issuers: Vec<crate::oidc::IssuerConfig>,
    /// Where each service listens.
    pub upstreams: UpstreamsConfig,
    /// Origins browsers may call from (`*` for any).
    pub allowed_origins: Vec<String>,
    /// Largest single gRPC message a client may send; larger ones fail with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Most concurrent HTTP/2 streams (calls) one client connection may have open.
    pub max_concurrent_streams: u32,
    /// Per-principal call budget; unset means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::RateLimitConfig>,
    /// Seconds in-flight calls get to finish on shutdown.
    pub drain_seconds: u64,
    /// Deadline given to unary calls whose client sent none (`grpc-timeout`); streaming calls get none.
    #[serde(default = "default_deadline_seconds")]
    pub default_deadline_seconds: u64,
    /// The Docker registry token endpoint (`/registry/token`); off when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::registry::RegistryTokenConfig>,
}

fn default_deadline_seconds() -> u64 {
    30
}

/// Addresses of the services, `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamsConfig {
    /// asset-svc.
    pub asset: String,
    /// usecase-svc.
    pub usecase: String,
    /// pipeline-svc.
    pub pipeline: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            internal_secret: Secret::default(),
            database_url: "sqlite://./highwind-data/gateway.db".to_owned(),
            tokens: BTreeMap::new(),
            oidc_issuers: Vec::new(),
            upstreams: UpstreamsConfig {
                asset: format!("http://127.0.0.1:{}", asset_svc::DEFAULT_PORT),
                usecase: format!("http://127.0.0.1:{}", usecase_svc::DEFAULT_PORT),
                pipeline: format!("http://127.0.0.1:{}", pipeline_svc::DEFAULT_PORT),
            },
            allowed_origins: vec!["*".to_owned()],
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_streams: 256,
            rate_limit: None,
            drain_seconds: 10,
            default_deadline_seconds: default_deadline_seconds(),
            registry: None,
        }
    }
}

impl GatewayConfig {
    /// Checks what types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.internal_secret.expose().len() < 32 {
            return Err("internal_secret must be set and at least 32 bytes (HIGHWIND__GATEWAY__INTERNAL_SECRET)".into());
        }
        for (user, token) in &self.tokens {
            let valid_user = !user.is_empty()
                && user.len() <= 255
                && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b));
            if !valid_user {
                return Err(format!("tokens: user name {user:?} may hold only letters, digits and . _ @ - +"));
            }
            if token.expose().len() < 16 {
                return Err(format!("tokens: the token of {user:?} must be at least 16 characters"));
            }
        }
        if self.max_message_bytes < 1024 {
            return Err("max_message_bytes must be at least 1024".into());
        }
        if self.default_deadline_seconds == 0 {
            return Err("default_deadline_seconds must be at least 1".into());
        }
        if self.max_concurrent_streams == 0 {
            return Err("max_concurrent_streams must be at least 1".into());
        }
        if let Some(limit) = self.rate_limit
            && !(limit.requests_per_second > 0.0 && limit.burst >= 1.0)
        {
            return Err("rate_limit needs requests_per_second > 0 and burst >= 1".into());
        }
        Ok(())
    }
}
