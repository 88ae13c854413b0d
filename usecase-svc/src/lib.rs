//! The Highwind use-case service: use cases, members, asset links, releases and the marketplace.
//!
//! `api` (tonic handlers) → `domain` (rules) → `store` (sqlx); `assets` asks asset-svc on the caller's behalf and
//! `payments` charges for priced listings; `relay` delivers the grant outbox to asset-svc.

pub mod access;
pub mod api;
pub mod asset_client;
pub mod domain;
pub mod error;
pub mod payments;
pub mod relay;
pub mod store;

use std::future::Future;

use highwind_common::{
    config::{ServerConfig, Settings},
    db::Database,
    page_token::PageTokens,
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{RunError, Served},
};
use highwind_proto::audit::internal::v1::audit_access_service_server::AuditAccessServiceServer;
use highwind_proto::usecase::v1::{
    marketplace_service_server::MarketplaceServiceServer, use_case_service_server::UseCaseServiceServer,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Default port of a stand-alone use-case service.
pub const DEFAULT_PORT: u16 = highwind_proto::USECASE_SERVICE.default_port;

/// Configuration of the use-case service (`HIGHWIND__USECASE__<SECTION>__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseCaseConfig {
    /// Listener, database and shared secret.
    pub server: ServerConfig,
    /// Where asset-svc listens (for checking linked assets on the caller's behalf).
    pub assets: AssetsConfig,
}

/// Where asset-svc is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsConfig {
    /// `http://host:port`.
    pub url: String,
}

impl Settings for UseCaseConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

/// Default configuration of a stand-alone use-case service.
pub fn default_config() -> UseCaseConfig {
    UseCaseConfig {
        server: ServerConfig::defaults(DEFAULT_PORT, "usecase.db"),
        assets: AssetsConfig { url: "http://127.0.0.1:50061".into() },
    }
}

/// Opens and migrates the database, then serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: UseCaseConfig,
) -> Result<(), RunError> {
    let assets = asset_client::GrpcAssets::new(
        &config.assets.url,
        PrincipalSigner::new(config.server.internal_secret.expose().as_bytes()),
    )
    .map_err(|e| RunError::Serve(highwind_common::serve::ServeError::Config(e.to_string())))?;
    let config = config.server;
    let db = Database::connect(&config.database_url, config.max_connections).await?;
    tracing::info!(backend = db.backend(), "use-case database connected");
    let stores = store::open(db).await?;
    let page_tokens = PageTokens::new(config.internal_secret.derive("usecase-svc page tokens"));
    let verify = VerifyPrincipal(PrincipalSigner::new(config.internal_secret.expose().as_bytes()));
    let assets = std::sync::Arc::new(assets);
    let relay = relay::GrantRelay::new(stores.clone(), assets.clone());
    let relay = tokio::spawn(relay.run());
    let assets: std::sync::Arc<dyn asset_client::AssetDirectory> = assets;
    let payments = std::sync::Arc::new(payments::LedgerPayments(stores.market.clone()));
    let market = api::MarketplaceApi::new(stores.clone(), assets.clone(), payments, page_tokens.clone());
    let audit_access = api::AuditAccessApi::new(stores.use_cases.clone());
    let use_cases = api::UseCaseApi::new(stores, assets, page_tokens);
    let routes = Routes::new(UseCaseServiceServer::with_interceptor(use_cases, verify.clone()))
        .add_service(MarketplaceServiceServer::with_interceptor(market, verify.clone()))
        .add_service(AuditAccessServiceServer::with_interceptor(audit_access, verify));
    let served = Served { routes, names: highwind_proto::USECASE_SERVICE.served(), rules: access::rules() };
    let drain = std::time::Duration::from_secs(config.drain_seconds);
    let result = highwind_common::serve::serve(listener, shutdown, served, drain).await;
    relay.abort();
    result?;
    Ok(())
}
