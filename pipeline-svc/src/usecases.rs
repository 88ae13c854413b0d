//! Use cases as deployments read them, from usecase-svc and as the caller: the caller's role on one, and the
//! links a release froze. usecase-svc decides who sees what; a use case or release the caller may not see is
//! NOT_FOUND here too.

use async_trait::async_trait;
use highwind_common::principal::{Principal, PrincipalSigner};
use highwind_proto::usecase::v1::{self as pb, use_case_service_client::UseCaseServiceClient};
use tonic::{Code, transport::Channel};

use crate::assets::THIS_SERVICE;

/// Why a use case or release cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// No such use case or release, or the caller may not see it.
    #[error("{0} not found")]
    NotFound(String),
    /// usecase-svc could not answer.
    #[error("the use case service cannot answer: {0}")]
    Unavailable(String),
}

/// One link of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedLink {
    /// `assets/{asset}`.
    pub asset: String,
    /// `assets/{asset}/versions/{version}`.
    pub asset_version: String,
    /// For a Docker Repo version, its linux/amd64 image manifest, `sha256:…`; empty otherwise.
    pub image_digest: String,
    /// What the asset does in the use case.
    pub role: pb::AssetLinkRole,
}

/// Use cases read as their callers.
#[async_trait]
pub trait UseCaseSource: Send + Sync + std::fmt::Debug {
    /// The caller's role on `use_case` (`Unspecified` for one they see without being a member).
    async fn role(&self, principal: &Principal, use_case: &str) -> Result<pb::MemberRole, UseCaseError>;

    /// The links `release` froze.
    async fn release_links(&self, principal: &Principal, release: &str) -> Result<Vec<ReleasedLink>, UseCaseError>;

    /// The use case's links as they resolve now: `asset_version` is the version each resolves to (empty when it
    /// does not resolve to a READY version), `image_digest` is left empty.
    async fn live_links(&self, principal: &Principal, use_case: &str) -> Result<Vec<ReleasedLink>, UseCaseError>;
}

/// usecase-svc over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcUseCases {
    client: UseCaseServiceClient<Channel>,
    signer: PrincipalSigner,
}

impl GrpcUseCases {
    /// Talks to usecase-svc at `url` (connected lazily).
    pub fn new(url: &str, signer: PrincipalSigner) -> Result<Self, UseCaseError> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| UseCaseError::Unavailable(e.to_string()))?;
        Ok(Self { client: UseCaseServiceClient::new(endpoint.tcp_nodelay(true).connect_lazy()), signer })
    }

    fn as_caller<T>(&self, principal: &Principal, message: T) -> Result<tonic::Request<T>, UseCaseError> {
        self.signer
            .request_on_behalf(principal, THIS_SERVICE, message)
            .map_err(|status| UseCaseError::Unavailable(status.message().to_owned()))
    }
}

fn answer(name: &str, status: tonic::Status) -> UseCaseError {
    match status.code() {
        Code::NotFound | Code::InvalidArgument | Code::PermissionDenied => UseCaseError::NotFound(name.to_owned()),
        _ => UseCaseError::Unavailable(status.message().to_owned()),
    }
}

#[async_trait]
impl UseCaseSource for GrpcUseCases {
    async fn role(&self, principal: &Principal, use_case: &str) -> Result<pb::MemberRole, UseCaseError> {
        let request = self.as_caller(principal, pb::GetUseCaseRequest { name: use_case.to_owned() })?;
        let found = self.client.clone().get_use_case(request).await.map_err(|s| answer(use_case, s))?.into_inner();
        Ok(found.caller_role())
    }

    async fn release_links(&self, principal: &Principal, release: &str) -> Result<Vec<ReleasedLink>, UseCaseError> {
        let request = self.as_caller(principal, pb::GetReleaseRequest { name: release.to_owned() })?;
        let found = self.client.clone().get_release(request).await.map_err(|s| answer(release, s))?.into_inner();
        Ok(found
            .links
            .into_iter()
            .map(|link| ReleasedLink {
                role: link.role(),
                asset: link.asset,
                asset_version: link.asset_version,
                image_digest: link.image_digest,
            })
            .collect())
    }

    async fn live_links(&self, principal: &Principal, use_case: &str) -> Result<Vec<ReleasedLink>, UseCaseError> {
        let mut links = Vec::new();
        let mut page_token = String::new();
        // A use case holds at most 256 links: a few pages at most.
        for _ in 0..8 {
            let page = pb::ListAssetLinksRequest {
                parent: use_case.to_owned(),
                page_size: 100,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let request = self.as_caller(principal, page)?;
            let found =
                self.client.clone().list_asset_links(request).await.map_err(|s| answer(use_case, s))?.into_inner();
            links.extend(found.asset_links.into_iter().map(|link| ReleasedLink {
                role: link.role(),
                asset: link.asset,
                asset_version: link.resolved_version,
                image_digest: String::new(),
            }));
            if found.next_page_token.is_empty() {
                break;
            }
            page_token = found.next_page_token;
        }
        Ok(links)
    }
}
