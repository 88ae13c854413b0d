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
    pub oidc_issuers: Vec<crate::identity::oidc::IssuerConfig>,
    /// Where each service listens.
    pub upstreams: UpstreamsConfig,
    /// Origins browsers may call from besides the gateway's own (`http://<listen>`, and `localhost`, `127.0.0.1`
    /// and `[::1]` with its port), e.g. `https://console.example.com`; `*` allows any page anywhere to call with
    /// its visitor's credentials.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Host names requests may name (`Host`, `:authority`) besides IP addresses and `localhost`, e.g. the public
    /// name behind a proxy; others get 421 (a defence against DNS rebinding). `*` turns the check off.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Largest single gRPC message a client may send; larger ones fail with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Most concurrent HTTP/2 streams (calls) one client connection may have open.
    pub max_concurrent_streams: u32,
    /// Per-principal call budget; unset means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::identity::rate_limit::RateLimitConfig>,
    /// Seconds in-flight calls get to finish on shutdown.
    pub drain_seconds: u64,
    /// Deadline given to unary calls whose client sent none (`grpc-timeout`); streaming calls get none.
    #[serde(default = "default_deadline_seconds")]
    pub default_deadline_seconds: u64,
    /// The Docker registry token endpoint (`/registry/token`); off when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::registry::RegistryTokenConfig>,
}

/// `*`, or `http(s)://host[:port]` with nothing after it (a browser's `Origin` never has a path).
fn valid_origin(origin: &str) -> bool {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    origin == "*" || rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', ' ', '?', '#']))
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
                asset: format!("http://127.0.0.1:{}", highwind_proto::ASSET_SERVICE.default_port),
                usecase: format!("http://127.0.0.1:{}", highwind_proto::USECASE_SERVICE.default_port),
                pipeline: format!("http://127.0.0.1:{}", highwind_proto::PIPELINE_SERVICE.default_port),
            },
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
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
        if let Some(bad) = self.allowed_origins.iter().find(|o| !valid_origin(o)) {
            return Err(format!("allowed_origins: {bad:?} is not an origin like https://console.example.com or *"));
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| h.is_empty() || h.contains(['/', ' '])) {
            return Err(format!("allowed_hosts: {bad:?} is not a host name like highwind.example.com or *"));
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
