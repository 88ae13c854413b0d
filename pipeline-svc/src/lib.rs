//! The Highwind pipeline service: KFP IR validation and runs, on Kubeflow Pipelines or the embedded executor.
//!
//! The v1 contract is complete; its methods are served as they are built and answer UNIMPLEMENTED until then:
//! `ir` parses, validates and describes KFP IR; `api` serves `ValidatePipeline`.

pub mod access;
pub mod api;
pub mod ir;

use std::future::Future;

use highwind_common::{
    config::{ServerConfig, Settings},
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{RunError, Served},
};
use highwind_proto::pipeline::v1::pipeline_service_server::PipelineServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Default port of a stand-alone pipeline service.
pub const DEFAULT_PORT: u16 = 50063;

/// The services this crate serves, by their fully qualified names.
pub const SERVICE_NAMES: [&str; 1] = ["highwind.pipeline.v1.PipelineService"];

/// Configuration of the pipeline service (`HIGHWIND__PIPELINE__<SECTION>__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Listener, database and shared secret.
    pub server: ServerConfig,
}

impl Settings for PipelineConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

/// Default configuration of a stand-alone pipeline service.
pub fn default_config() -> PipelineConfig {
    PipelineConfig { server: ServerConfig::defaults(DEFAULT_PORT, "pipeline.db") }
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: PipelineConfig,
) -> Result<(), RunError> {
    let config = config.server;
    let verify = VerifyPrincipal(PrincipalSigner::new(config.internal_secret.expose().as_bytes()));
    let routes = Routes::new(PipelineServiceServer::with_interceptor(api::PipelineApi, verify));
    let served = Served { routes, names: SERVICE_NAMES.to_vec(), rules: access::rules() };
    let drain = std::time::Duration::from_secs(config.drain_seconds);
    highwind_common::serve::serve(listener, shutdown, served, drain).await?;
    Ok(())
}
