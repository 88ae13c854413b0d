//! The Highwind pipeline service: KFP IR validation and runs, on Kubeflow Pipelines or the embedded executor.
//!
//! `ir` parses, validates and describes KFP IR; `runs` is the run model and CreateRun's rule, `store` keeps runs,
//! `executor` runs pipelines as local processes (and hands KFP runs to `kfp`, the Kubeflow Pipelines backend),
//! `task_files` reads what tasks leave behind without trusting it, and `api` serves the v1 contract, mapping the
//! one [`error::Error`] to `tonic::Status` once.

pub mod access;
pub mod api;
pub mod assets;
pub mod blocking;
pub mod error;
pub mod executor;
pub mod ir;
pub mod kfp;
pub mod runs;
pub mod serving;
pub mod store;
pub mod task_files;
pub mod usecases;

use std::future::Future;

use highwind_common::{
    config::{ServerConfig, Settings},
    db::Database,
    page_token::PageTokens,
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{RunError, ServeError, Served},
};
use highwind_proto::{
    deployment::v1::deployment_service_server::DeploymentServiceServer,
    pipeline::v1::{
        image_cache_service_server::ImageCacheServiceServer, pipeline_service_server::PipelineServiceServer,
    },
};
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Default port of a stand-alone pipeline service.
pub const DEFAULT_PORT: u16 = highwind_proto::PIPELINE_SERVICE.default_port;

/// Configuration of the pipeline service (`HIGHWIND__PIPELINE__<SECTION>__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Listener, database and shared secret.
    pub server: ServerConfig,
    /// Where asset-svc is (pipeline versions are read from it on the caller's behalf).
    #[serde(default)]
    pub assets: AssetsConfig,
    /// The embedded executor.
    #[serde(default)]
    pub executor: executor::ExecutorConfig,
    /// The Kubeflow Pipelines backend; off while its `url` is empty.
    #[serde(default)]
    pub kfp: kfp::KfpConfig,
    /// Principals who administer this service (`users/alice`): they list and prune the executor's images.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Where usecase-svc is (deployments ask it who may do what with a use case).
    #[serde(default)]
    pub usecases: UseCasesConfig,
    /// Deployments on this machine.
    #[serde(default)]
    pub deployments: serving::deployments::DeploymentsConfig,
}

/// Where usecase-svc is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseCasesConfig {
    /// `http://host:port`.
    pub url: String,
}

impl Default for UseCasesConfig {
    fn default() -> Self {
        Self { url: format!("http://127.0.0.1:{}", highwind_proto::USECASE_SERVICE.default_port) }
    }
}

/// Where asset-svc is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsConfig {
    /// `http://host:port`.
    pub url: String,
}

impl Default for AssetsConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:50061".into() }
    }
}

impl Settings for PipelineConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

/// Default configuration of a stand-alone pipeline service.
pub fn default_config() -> PipelineConfig {
    PipelineConfig {
        server: ServerConfig::defaults(DEFAULT_PORT, "pipeline.db"),
        assets: AssetsConfig::default(),
        executor: executor::ExecutorConfig::default(),
        kfp: kfp::KfpConfig::default(),
        admins: Vec::new(),
        usecases: UseCasesConfig::default(),
        deployments: serving::deployments::DeploymentsConfig::default(),
    }
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: PipelineConfig,
) -> Result<(), RunError> {
    let signer = PrincipalSigner::new(config.server.internal_secret.expose().as_bytes());
    let assets = assets::GrpcAssets::new(&config.assets.url, signer.clone())
        .map_err(|e| RunError::Serve(ServeError::Config(e.to_string())))?;
    let assets = std::sync::Arc::new(assets);
    let db = Database::connect(&config.server.database_url, config.server.max_connections).await?;
    let (store, deployment_store) = store::open_both(db).await?;
    let kfp = if config.kfp.url.is_empty() {
        None
    } else {
        let client = kfp::client::KfpClient::new(config.kfp.clone())
            .map_err(|e| RunError::Serve(ServeError::Config(e.to_string())))?;
        tracing::info!(url = %config.kfp.url, "runs with backend KFP go to Kubeflow Pipelines");
        Some(std::sync::Arc::new(client))
    };
    let engine = executor::Engine::new(config.executor.clone(), store.clone(), assets.clone(), kfp);
    let recovered = engine.recover().await.map_err(|e| RunError::Serve(ServeError::Config(e.to_string())))?;
    if recovered > 0 {
        tracing::info!(runs = recovered, "settled runs left unfinished by the previous server process");
    }
    let tokens = PageTokens::new(config.server.internal_secret.derive("pipeline-svc page tokens"));
    let image_cache = api::images::ImageCacheApi::new(engine.images(), assets.clone(), config.admins.clone());
    let use_cases = usecases::GrpcUseCases::new(&config.usecases.url, signer.clone())
        .map_err(|e| RunError::Serve(ServeError::Config(e.to_string())))?;
    let deployments = serving::deployments::Deployments::new(
        config.deployments.clone(),
        deployment_store,
        assets.clone(),
        engine.image_runtime(),
        engine.config().data_dir.join(".deployments"),
    );
    let started = deployments.recover().await.map_err(|e| RunError::Serve(ServeError::Config(e.to_string())))?;
    if started > 0 {
        tracing::info!(deployments = started, "started the deployments this server runs");
    }
    let deployment_api =
        api::deployments::DeploymentApi::new(deployments, std::sync::Arc::new(use_cases), assets.clone());
    let runs = api::runs::Runs { store, engine, pipelines: assets.clone(), assets, tokens };
    let config = config.server;
    let verify = VerifyPrincipal(signer);
    let api = api::PipelineApi::new(runs);
    // Requests up to twice the IR bound are read, so an IR over it is refused naming its field, not by the codec.
    let server = PipelineServiceServer::new(api).max_decoding_message_size(2 * ir::MAX_BYTES);
    let server = api::undecodable::UndecodableIsInvalid(server);
    let image_cache = api::undecodable::UndecodableIsInvalid(ImageCacheServiceServer::new(image_cache));
    let routes = Routes::new(tonic::service::interceptor::InterceptedService::new(server, verify.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(image_cache, verify.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            api::undecodable::UndecodableIsInvalid(DeploymentServiceServer::new(deployment_api)),
            verify,
        ));
    let served = Served { routes, names: highwind_proto::PIPELINE_SERVICE.served(), rules: access::rules() };
    let drain = std::time::Duration::from_secs(config.drain_seconds);
    highwind_common::serve::serve(listener, shutdown, served, drain).await?;
    Ok(())
}
