//! Reaching the gateway with a bearer token.

use highwind_proto::{
    asset::v1::{asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
    deployment::v1::deployment_service_client::DeploymentServiceClient,
    pipeline::v1::{
        image_cache_service_client::ImageCacheServiceClient, pipeline_service_client::PipelineServiceClient,
    },
    usecase::v1::use_case_service_client::UseCaseServiceClient,
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use super::CliError;

/// Where the platform is and who is calling.
#[derive(Debug, Clone)]
pub struct Target {
    /// The gateway, `http://host:port`.
    pub url: String,
    /// A bearer token.
    pub token: String,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<token>)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Clients of the services the commands call.
#[derive(Debug)]
pub struct Clients {
    pub assets: AssetServiceClient<InterceptedService<Channel, Bearer>>,
    pub uploads: UploadServiceClient<InterceptedService<Channel, Bearer>>,
    pub pipelines: PipelineServiceClient<InterceptedService<Channel, Bearer>>,
    pub images: ImageCacheServiceClient<InterceptedService<Channel, Bearer>>,
    pub deployments: DeploymentServiceClient<InterceptedService<Channel, Bearer>>,
    pub use_cases: UseCaseServiceClient<InterceptedService<Channel, Bearer>>,
}

impl Target {
    /// Connects, or says clearly why not.
    pub async fn connect(&self) -> Result<Clients, CliError> {
        let fail = |reason: String| CliError::Connect { url: self.url.clone(), reason };
        if self.token.is_empty() {
            return Err(CliError::Usage("no token: pass --token or set HIGHWIND_TOKEN".into()));
        }
        let header = MetadataValue::try_from(format!("Bearer {}", self.token))
            .map_err(|_| CliError::Usage("the token holds characters a header cannot carry".into()))?;
        let channel = Endpoint::from_shared(self.url.clone())
            .map_err(|e| fail(e.to_string()))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let bearer = Bearer(header);
        Ok(Clients {
            assets: AssetServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            pipelines: PipelineServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            images: ImageCacheServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            deployments: DeploymentServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            use_cases: UseCaseServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            uploads: UploadServiceClient::with_interceptor(channel, bearer).max_decoding_message_size(8 * 1024 * 1024),
        })
    }
}
