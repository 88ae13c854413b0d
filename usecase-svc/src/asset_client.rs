//! What usecase-svc asks asset-svc, on behalf of the caller: does this asset exist for them, of which kind, and
//! does this version exist. Calls carry the caller's signed principal (on-behalf-of) and name this service.
//! Grant deliveries are the one call made as this service itself.

use std::time::SystemTime;

use async_trait::async_trait;
use highwind_common::principal::{CALLER_HEADER, PRINCIPAL_HEADER, Principal, PrincipalSigner, SIGNATURE_HEADER};
use highwind_proto::asset::{
    internal::v1::{self as internal, grant_service_client::GrantServiceClient},
    v1::{self as pb, asset_service_client::AssetServiceClient},
};
use tonic::{Code, Request, transport::Channel};

/// How this service names itself to the services it calls.
const THIS_SERVICE: &str = "usecase-svc";

/// asset-svc could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the asset service cannot answer: {0}")]
pub struct DirectoryError(String);

impl DirectoryError {
    /// asset-svc could not be reached or refused, for `reason`.
    pub fn unreachable(reason: &str) -> Self {
        Self(reason.to_owned())
    }
}

/// The questions use cases ask about assets.
#[async_trait]
pub trait AssetDirectory: Send + Sync + std::fmt::Debug {
    /// The kind and owner of `asset` if `principal` may read it.
    async fn describe(&self, principal: &Principal, asset: &str) -> Result<Option<AssetInfo>, DirectoryError>;

    /// What `version` (`assets/{a}/versions/{number-or-alias}`) is, if it exists for `principal`.
    async fn resolve(&self, principal: &Principal, version: &str) -> Result<Option<ResolvedVersion>, DirectoryError>;
}

/// An asset as a link sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    /// `DATASET`, `DOCKER_REPO`, `MODEL` or `PIPELINE`.
    pub kind: &'static str,
    /// The owning principal.
    pub owner: String,
}

/// A version as a link or release sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVersion {
    /// Its number.
    pub number: i64,
    /// Its manifest digest.
    pub manifest_digest: String,
    /// READY and not archived: the only kind a link may pin and a release may freeze.
    pub usable: bool,
    /// For an image with no linux/amd64 variant: why it cannot be deployed.
    pub not_deployable: Option<String>,
    /// For an image: the linux/amd64 manifest digest deployments pull; empty otherwise.
    pub image_digest: String,
}

/// Where grants are delivered: asset-svc's internal `GrantService`.
#[async_trait]
pub trait GrantSink: Send + Sync + std::fmt::Debug {
    /// Delivers one source's complete grant set; false when asset-svc had already applied a newer one.
    async fn replace_grants(&self, request: internal::ReplaceGrantsRequest) -> Result<bool, DirectoryError>;
}

/// The directory and grant sink over asset-svc's gRPC API.
#[derive(Debug, Clone)]
pub struct GrpcAssets {
    client: AssetServiceClient<Channel>,
    grants: GrantServiceClient<Channel>,
    signer: PrincipalSigner,
}

impl GrpcAssets {
    /// Talks to asset-svc at `url` (connected lazily), signing with the shared `signer`.
    pub fn new(url: &str, signer: PrincipalSigner) -> Result<Self, DirectoryError> {
        let endpoint =
            tonic::transport::Endpoint::from_shared(url.to_owned()).map_err(|e| DirectoryError(e.to_string()))?;
        let channel = endpoint.tcp_nodelay(true).connect_lazy();
        Ok(Self { client: AssetServiceClient::new(channel.clone()), grants: GrantServiceClient::new(channel), signer })
    }

    fn on_behalf_of<T>(&self, principal: &Principal, message: T) -> Result<Request<T>, DirectoryError> {
        let mut request = Request::new(message);
        let bad = |e: tonic::metadata::errors::InvalidMetadataValue| DirectoryError(e.to_string());
        let metadata = request.metadata_mut();
        metadata.insert(PRINCIPAL_HEADER, principal.as_str().parse().map_err(bad)?);
        let signature = self.signer.sign_on_behalf(principal, THIS_SERVICE, SystemTime::now());
        metadata.insert(SIGNATURE_HEADER, signature.parse().map_err(bad)?);
        metadata.insert(CALLER_HEADER, tonic::metadata::MetadataValue::from_static(THIS_SERVICE));
        Ok(request)
    }
}

#[async_trait]
impl GrantSink for GrpcAssets {
    async fn replace_grants(&self, request: internal::ReplaceGrantsRequest) -> Result<bool, DirectoryError> {
        // Delivered as this service itself, not on anyone's behalf.
        let request = self.on_behalf_of(&Principal::service(THIS_SERVICE), request)?;
        match self.grants.clone().replace_grants(request).await {
            Ok(done) => Ok(done.get_ref().applied),
            Err(status) => Err(DirectoryError(format!("{:?}: {}", status.code(), status.message()))),
        }
    }
}

#[async_trait]
impl AssetDirectory for GrpcAssets {
    async fn describe(&self, principal: &Principal, asset: &str) -> Result<Option<AssetInfo>, DirectoryError> {
        let request = self.on_behalf_of(principal, pb::GetAssetRequest { name: asset.to_owned() })?;
        match self.client.clone().get_asset(request).await {
            Ok(found) => {
                let found = found.into_inner();
                let kind = match pb::AssetKind::try_from(found.kind) {
                    Ok(pb::AssetKind::Dataset) => "DATASET",
                    Ok(pb::AssetKind::DockerRepo) => "DOCKER_REPO",
                    Ok(pb::AssetKind::Model) => "MODEL",
                    Ok(pb::AssetKind::Pipeline) => "PIPELINE",
                    _ => "UNSPECIFIED",
                };
                Ok(Some(AssetInfo { kind, owner: found.owner }))
            }
            // Unreadable is not found: the caller learns nothing about assets that are not theirs to read.
            Err(status) if matches!(status.code(), Code::NotFound | Code::PermissionDenied | Code::InvalidArgument) => {
                Ok(None)
            }
            Err(status) => Err(DirectoryError(status.message().to_owned())),
        }
    }

    async fn resolve(&self, principal: &Principal, version: &str) -> Result<Option<ResolvedVersion>, DirectoryError> {
        let request = self.on_behalf_of(principal, pb::GetAssetVersionRequest { name: version.to_owned() })?;
        match self.client.clone().get_asset_version(request).await {
            Ok(found) => {
                let found = found.into_inner();
                Ok(Some(ResolvedVersion {
                    number: found.version_number,
                    image_digest: found.image.as_ref().map(|image| image.deployable_digest.clone()).unwrap_or_default(),
                    usable: found.state == pb::VersionState::Ready as i32 && !found.archived,
                    manifest_digest: found.manifest_digest,
                    not_deployable: found
                        .image
                        .filter(|image| image.deployable_digest.is_empty())
                        .map(|image| image.not_deployable_reason),
                }))
            }
            Err(status) if matches!(status.code(), Code::NotFound | Code::InvalidArgument) => Ok(None),
            Err(status) => Err(DirectoryError(status.message().to_owned())),
        }
    }
}
