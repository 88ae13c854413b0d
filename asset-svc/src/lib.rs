//! The Highwind asset service: assets, their versions and content, and Docker Repo images.
//!
//! `api` (tonic handlers) → `domain` (rules) → `store` (sqlx). [`serve`] wires them together.

pub mod api;
pub mod domain;
pub mod error;
pub mod store;

use std::future::Future;

use highwind_common::{
    config::ServiceConfig,
    db::Database,
    page_token::PageTokens,
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{RunError, Served},
};
use highwind_proto::asset::v1::{
    asset_service_server::AssetServiceServer, image_service_server::ImageServiceServer,
    upload_service_server::UploadServiceServer,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Default port of a stand-alone asset service.
pub const DEFAULT_PORT: u16 = 50061;

/// The services this crate serves, by their fully qualified names.
pub const SERVICE_NAMES: [&str; 3] =
    ["highwind.asset.v1.AssetService", "highwind.asset.v1.UploadService", "highwind.asset.v1.ImageService"];

/// Default configuration of a stand-alone asset service.
pub fn default_config() -> ServiceConfig {
    ServiceConfig::defaults(DEFAULT_PORT, "asset.db")
}

/// Opens and migrates the database, then serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: ServiceConfig,
) -> Result<(), RunError> {
    let db = Database::connect(&config.database_url, config.max_connections).await?;
    tracing::info!(backend = db.backend(), "asset database connected");
    let repo = store::open(db).await?;
    let verify = VerifyPrincipal(PrincipalSigner::new(config.internal_secret.expose().as_bytes()));
    let page_tokens = PageTokens::new(config.internal_secret.derive("asset-svc page tokens"));
    let assets = api::AssetApi::new(repo, page_tokens);
    let routes = Routes::new(AssetServiceServer::with_interceptor(assets, verify.clone()))
        .add_service(UploadServiceServer::with_interceptor(NotYetServed, verify.clone()))
        .add_service(ImageServiceServer::with_interceptor(NotYetServed, verify));
    let served = Served { routes, names: SERVICE_NAMES.to_vec() };
    let drain = std::time::Duration::from_secs(config.drain_seconds);
    highwind_common::serve::serve(listener, shutdown, served, drain).await?;
    Ok(())
}

/// Uploads, downloads and images are declared in v1 but not served yet: every call answers UNIMPLEMENTED.
#[derive(Debug, Clone, Copy)]
struct NotYetServed;

impl highwind_proto::asset::v1::upload_service_server::UploadService for NotYetServed {}
impl highwind_proto::asset::v1::image_service_server::ImageService for NotYetServed {}
