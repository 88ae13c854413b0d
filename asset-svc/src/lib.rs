//! The Highwind asset service: assets, their versions and content, and Docker Repo images.
//!
//! `api` (tonic handlers) → `domain` (rules) → `store` (sqlx). [`serve`] wires them together.

pub mod access;
pub mod api;
pub mod blobs;
pub mod config;
pub mod domain;
pub mod error;
pub mod gc;
pub mod images;
pub mod pipeline_client;
pub mod registry_client;
pub mod store;
pub mod upload_workflow;

use std::{future::Future, sync::Arc, time::Duration};

use domain::upload::{UploadLimits, UploadQuota};
use highwind_common::{
    db::Database,
    page_token::PageTokens,
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{RunError, Served},
};
use highwind_proto::asset::internal::v1::{
    grant_service_server::GrantServiceServer, registry_service_server::RegistryServiceServer,
    run_output_service_server::RunOutputServiceServer,
};
use highwind_proto::asset::v1::{
    asset_service_server::AssetServiceServer, image_service_server::ImageServiceServer,
    upload_service_server::UploadServiceServer,
};
use highwind_proto::audit::internal::v1::audit_access_service_server::AuditAccessServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::{AssetConfig, DEFAULT_PORT};

/// Default configuration of a stand-alone asset service.
pub fn default_config() -> AssetConfig {
    AssetConfig::default()
}

/// Opens and migrates the database, then serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: AssetConfig,
) -> Result<(), ServiceError> {
    let server = &config.server;
    let db = Database::connect(&server.database_url, server.max_connections).await.map_err(RunError::from)?;
    tracing::info!(backend = db.backend(), "asset database connected");
    let stores = store::open(db).await.map_err(RunError::from)?;
    let blobs = blobs::BlobStore::open(&config.blobs.url, &config.blobs.staging_dir, &config.blobs.s3)?;
    let limits =
        UploadLimits { max_files: config.uploads.max_files, max_version_bytes: config.uploads.max_version_bytes };
    let ttl = Duration::from_secs(config.uploads.ttl_seconds);
    let housekeeping = api::Housekeeping {
        blobs: blobs.clone(),
        grace: Duration::from_secs(config.gc.grace_seconds),
        admins: config.admins.clone(),
    };
    let quota = UploadQuota {
        max_open_uploads: config.uploads.max_open_per_user,
        max_open_bytes: config.uploads.max_open_bytes_per_user,
        max_stored_bytes: config.uploads.max_stored_bytes_per_user,
    };
    let uploads = upload_workflow::Uploads::new(stores.content.clone(), blobs, limits, quota, ttl);
    let signer = PrincipalSigner::new(server.internal_secret.expose().as_bytes());
    let pipelines: Arc<dyn pipeline_client::PipelineValidator> = Arc::new(
        pipeline_client::GrpcPipelines::new(&config.pipelines.url, signer)
            .map_err(|e| RunError::Serve(highwind_common::serve::ServeError::Config(e.to_string())))?,
    );
    let sweeper = tokio::spawn(sweep_expired_uploads(uploads.clone()));
    let images = if config.registry.url.is_empty() {
        None
    } else {
        let client = registry_client::client::RegistryClient::new(config.registry.clone())
            .map_err(|e| RunError::Serve(highwind_common::serve::ServeError::Config(e)))?;
        Some(images::Images::new(client, stores.assets.clone(), stores.content.clone()))
    };
    let reconciler = images.clone().map(|images| {
        let every = Duration::from_secs(config.registry.reconcile_seconds.max(1));
        tokio::spawn(images::sweep_forever(images, every))
    });

    let verify = VerifyPrincipal(PrincipalSigner::new(server.internal_secret.expose().as_bytes()));
    let page_tokens = PageTokens::new(server.internal_secret.derive("asset-svc page tokens"));
    // A frame carries up to 4 MiB of data plus its path and upload name.
    let upload_api = api::UploadApi::new(stores.assets.clone(), stores.grants.clone(), uploads, pipelines);
    let run_outputs = api::RunOutputApi::new(upload_api.clone());
    let uploads_server = tonic::service::interceptor::InterceptedService::new(
        UploadServiceServer::new(upload_api).max_decoding_message_size(domain::upload::MAX_CHUNK_BYTES + 64 * 1024),
        verify.clone(),
    );
    let stores_grants = stores.grants.clone();
    let audit_access = api::AuditAccessApi::new(stores.assets.clone(), stores.grants.clone());
    let registry_api =
        api::RegistryApi::new(stores.assets.clone(), stores.grants.clone(), config.registry.clone(), images.clone());
    let image_api = api::ImageApi::new(
        stores.assets.clone(),
        stores.grants.clone(),
        images,
        PageTokens::new(server.internal_secret.derive("asset-svc image page tokens")),
    );
    let registry_naming = (!config.registry.url.is_empty()).then(|| config.registry.clone());
    let routes = Routes::new(uploads_server)
        .add_service(AssetServiceServer::with_interceptor(
            api::AssetApi::new(stores, page_tokens, housekeeping).with_registry(registry_naming),
            verify.clone(),
        ))
        .add_service(GrantServiceServer::with_interceptor(api::GrantApi::new(stores_grants), verify.clone()))
        .add_service(RunOutputServiceServer::with_interceptor(run_outputs, verify.clone()))
        .add_service(RegistryServiceServer::with_interceptor(registry_api, verify.clone()))
        .add_service(AuditAccessServiceServer::with_interceptor(audit_access, verify.clone()))
        .add_service(ImageServiceServer::with_interceptor(image_api, verify));
    let served = Served { routes, names: highwind_proto::ASSET_SERVICE.served(), rules: access::rules() };
    let drain = Duration::from_secs(server.drain_seconds);
    let result = highwind_common::serve::serve(listener, shutdown, served, drain).await;
    sweeper.abort();
    if let Some(reconciler) = reconciler {
        reconciler.abort();
    }
    result.map_err(|e| ServiceError::Run(e.into()))
}

/// Why the asset service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The database or the server failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The blob store could not be opened.
    #[error(transparent)]
    Blobs(#[from] blobs::BlobError),
}

/// How often idle uploads are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

async fn sweep_expired_uploads(uploads: upload_workflow::Uploads) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match uploads.sweep().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired idle uploads"),
            Err(error) => tracing::warn!(error = %error, "upload sweep failed"),
        }
    }
}
