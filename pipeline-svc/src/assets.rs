//! Reading a pipeline version's IR from asset-svc, on the caller's behalf, so pipeline-svc sees exactly what the
//! caller may read.

use async_trait::async_trait;
use bytes::Bytes;
use highwind_common::principal::{Principal, PrincipalSigner};
use highwind_proto::asset::{
    internal::v1::{
        CommitRunOutputRequest, IssuePullTokenRequest, registry_service_client::RegistryServiceClient,
        run_output_service_client::RunOutputServiceClient,
    },
    v1::{self as pb, asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
};
use tonic::{Code, Request, transport::Channel};

use crate::{ir, task_files};

/// How this service names itself to the services it calls.
pub(crate) const THIS_SERVICE: &str = "pipeline-svc";

/// Why a pipeline version's IR cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such version, or the caller may not read it.
    #[error("{0} not found")]
    NotFound(String),
    /// The asset is not a pipeline.
    #[error("{0} is not a PIPELINE asset")]
    NotPipeline(String),
    /// The version is not READY, or it or its asset is archived.
    #[error("{0} is not READY or is archived")]
    NotReady(String),
    /// The version holds no single IR file.
    #[error("{0} holds no single .yaml IR file")]
    NoIr(String),
    /// asset-svc could not answer.
    #[error("the asset service cannot answer: {0}")]
    Unavailable(String),
}

/// Whether `name` is `assets/{asset}/versions/{version-or-alias}`.
pub fn is_version_name(name: &str) -> bool {
    name.strip_prefix("assets/")
        .and_then(|rest| rest.split_once("/versions/"))
        .is_some_and(|(asset, version)| !asset.is_empty() && !version.is_empty() && !version.contains('/'))
}

/// A pipeline version's exact name and IR.
#[derive(Debug, Clone)]
pub struct PipelineIr {
    /// `assets/{a}/versions/{number}`.
    pub version: String,
    /// The IR YAML.
    pub content: Bytes,
}

/// Where pipeline IR comes from.
#[async_trait]
pub trait PipelineSource: Send + Sync + std::fmt::Debug {
    /// The IR of `version` (`assets/{a}/versions/{number-or-alias}`) as `principal` may read it.
    async fn ir(&self, principal: &Principal, version: &str) -> Result<PipelineIr, ReadError>;
}

/// The source over asset-svc's gRPC API.
#[derive(Debug, Clone)]
pub struct GrpcAssets {
    assets: AssetServiceClient<Channel>,
    uploads: UploadServiceClient<Channel>,
    run_outputs: RunOutputServiceClient<Channel>,
    registry: RegistryServiceClient<Channel>,
    signer: PrincipalSigner,
}

impl GrpcAssets {
    /// Talks to asset-svc at `url` (connected lazily).
    pub fn new(url: &str, signer: PrincipalSigner) -> Result<Self, ReadError> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        let channel = endpoint.tcp_nodelay(true).connect_lazy();
        Ok(Self {
            assets: AssetServiceClient::new(channel.clone()),
            uploads: UploadServiceClient::new(channel.clone()),
            run_outputs: RunOutputServiceClient::new(channel.clone()),
            registry: RegistryServiceClient::new(channel),
            signer,
        })
    }

    fn on_behalf_of<T>(&self, principal: &Principal, message: T) -> Result<Request<T>, ReadError> {
        self.signer
            .request_on_behalf(principal, THIS_SERVICE, message)
            .map_err(|status| ReadError::Unavailable(status.message().to_owned()))
    }
}

fn answer(name: &str, status: tonic::Status) -> ReadError {
    match status.code() {
        Code::NotFound | Code::InvalidArgument | Code::PermissionDenied => ReadError::NotFound(name.to_owned()),
        _ => ReadError::Unavailable(status.message().to_owned()),
    }
}

#[async_trait]
impl PipelineSource for GrpcAssets {
    async fn ir(&self, principal: &Principal, version: &str) -> Result<PipelineIr, ReadError> {
        let asset_name = version.split("/versions/").next().unwrap_or_default().to_owned();
        let request = self.on_behalf_of(principal, pb::GetAssetRequest { name: asset_name.clone() })?;
        let asset = self.assets.clone().get_asset(request).await.map_err(|s| answer(version, s))?.into_inner();
        if asset.kind != pb::AssetKind::Pipeline as i32 {
            return Err(ReadError::NotPipeline(asset_name));
        }
        let request = self.on_behalf_of(principal, pb::GetAssetVersionRequest { name: version.to_owned() })?;
        let found = self.assets.clone().get_asset_version(request).await.map_err(|s| answer(version, s))?.into_inner();
        let exact = format!("{asset_name}/versions/{}", found.version_number);
        if found.state != pb::VersionState::Ready as i32 || found.archived || asset.archived {
            return Err(ReadError::NotReady(exact));
        }
        let ir: Vec<_> = found.files.iter().filter(|f| f.path.ends_with(".yaml") || f.path.ends_with(".yml")).collect();
        let [file] = ir.as_slice() else {
            return Err(ReadError::NoIr(exact));
        };
        if usize::try_from(file.size_bytes).unwrap_or(usize::MAX) > ir::MAX_BYTES {
            return Err(ReadError::NoIr(exact));
        }
        let read = pb::ReadFileRequest { version: exact.clone(), path: file.path.clone(), offset: 0, length: 0 };
        let request = self.on_behalf_of(principal, read)?;
        let mut frames = self.uploads.clone().read_file(request).await.map_err(|s| answer(version, s))?.into_inner();
        let mut content = Vec::new();
        while let Some(frame) = frames.message().await.map_err(|s| answer(version, s))? {
            content.extend_from_slice(&frame.data);
            if content.len() > ir::MAX_BYTES {
                return Err(ReadError::NoIr(exact));
            }
        }
        Ok(PipelineIr { version: exact, content: content.into() })
    }
}

/// An asset version as a run sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The exact name, `assets/{a}/versions/{n}`.
    pub name: String,
    /// The asset's kind.
    pub kind: pb::AssetKind,
    /// Its files: path and size.
    pub files: Vec<(String, u64)>,
    /// READY, and neither it nor its asset archived: a run may read it.
    pub usable: bool,
    /// For an image: the linux/amd64 manifest digest deployments pull, or why there is none.
    pub image: Option<Result<String, String>>,
}

/// An asset as a run's destination sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    /// `assets/{a}`.
    pub name: String,
    /// Its kind.
    pub kind: pb::AssetKind,
    /// Its owner, e.g. `users/alice`.
    pub owner: String,
    /// For a Docker Repo asset: `registry/repository`, to which `@sha256:…` is appended; empty otherwise.
    pub image_prefix: String,
}

/// A new asset for a run's output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewAsset {
    /// Its kind.
    pub kind: i32,
    /// 1 to 200 characters.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// How to pull an image of the platform's own registry for a principal.
#[derive(Clone, PartialEq, Eq)]
pub struct PullAccess {
    /// Where the registry's API is, `http://127.0.0.1:5000`.
    pub url: String,
    /// A bearer token that pulls the one repository asked for.
    pub token: String,
}

impl std::fmt::Debug for PullAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAccess").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Asset versions a run reads (bound inputs and importers) and the ones its outputs become.
#[async_trait]
pub trait AssetFiles: Send + Sync + std::fmt::Debug {
    /// The asset `name` as `principal` may read it.
    async fn asset(&self, principal: &Principal, name: &str) -> Result<AssetInfo, ReadError>;

    /// Creates `asset` for `principal` (once per `request_id`); its name.
    async fn create_asset(
        &self,
        principal: &Principal,
        asset: &NewAsset,
        request_id: &str,
    ) -> Result<String, ReadError>;

    /// Uploads `files` (path in the version → local file) as a new version of `asset` for `principal`, committed
    /// with lineage `source` and `metrics`; the version's exact name. `request_id` makes a repeated call reuse the
    /// upload.
    async fn store_output(
        &self,
        principal: &Principal,
        asset: &str,
        files: &[(String, std::path::PathBuf)],
        request_id: &str,
        source: pb::PipelineRunSource,
        metrics: std::collections::HashMap<String, f64>,
    ) -> Result<String, ReadError>;

    /// Resolves `version` (number or alias) as `principal` may read it, archived or not (see `usable`).
    async fn version(&self, principal: &Principal, version: &str) -> Result<VersionInfo, ReadError>;

    /// Writes file `path` of the exact `version` to `dest`.
    async fn download(
        &self,
        principal: &Principal,
        version: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<(), ReadError>;

    /// How `principal` pulls `repository` from the registry at `host`, when that is the platform's own registry
    /// (`None` when it is another); NOT_FOUND when they may not pull it.
    async fn pull_access(
        &self,
        principal: &Principal,
        host: &str,
        repository: &str,
    ) -> Result<Option<PullAccess>, ReadError>;
}

/// SHA-256 (hex) and size of a file a task left (a regular file, opened without following or blocking).
fn digest(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut file = open_left_behind(path)?;
    let mut hasher = sha2::Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Opens a file a task left for reading: see [`task_files::open_regular`].
fn open_left_behind(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    task_files::open_regular(path).map_err(|e| std::io::Error::other(format!("{} {e}", path.display())))
}

/// Largest chunk sent per WriteUploadChunk.
const CHUNK: usize = 4 * 1024 * 1024;

#[async_trait]
impl AssetFiles for GrpcAssets {
    async fn pull_access(
        &self,
        principal: &Principal,
        host: &str,
        repository: &str,
    ) -> Result<Option<PullAccess>, ReadError> {
        let asked = IssuePullTokenRequest { host: host.to_owned(), repository: repository.to_owned() };
        let request = self.on_behalf_of(principal, asked)?;
        let answer = self
            .registry
            .clone()
            .issue_pull_token(request)
            .await
            .map_err(|status| match status.code() {
                // Only a repository the principal may not pull is theirs to hear about; anything else (a refused
                // caller, a broken registry) is the platform's problem.
                Code::NotFound => ReadError::NotFound(format!("image repository {host}/{repository}")),
                _ => ReadError::Unavailable(status.message().to_owned()),
            })?
            .into_inner();
        Ok(answer.platform.then_some(PullAccess { url: answer.url, token: answer.token }))
    }

    async fn asset(&self, principal: &Principal, name: &str) -> Result<AssetInfo, ReadError> {
        let request = self.on_behalf_of(principal, pb::GetAssetRequest { name: name.to_owned() })?;
        let asset = self.assets.clone().get_asset(request).await.map_err(|s| answer(name, s))?.into_inner();
        if asset.archived {
            return Err(ReadError::NotReady(asset.name));
        }
        let kind = pb::AssetKind::try_from(asset.kind).unwrap_or(pb::AssetKind::Unspecified);
        let image_prefix = match &asset.details {
            Some(pb::asset::Details::DockerRepo(repo)) => repo.image_uri_prefix.clone(),
            _ => String::new(),
        };
        Ok(AssetInfo { name: asset.name, kind, owner: asset.owner, image_prefix })
    }

    async fn create_asset(
        &self,
        principal: &Principal,
        asset: &NewAsset,
        request_id: &str,
    ) -> Result<String, ReadError> {
        let message = pb::CreateAssetRequest {
            asset: Some(pb::Asset {
                kind: asset.kind,
                display_name: asset.display_name.clone(),
                description: asset.description.clone(),
                labels: asset.labels.clone().into_iter().collect(),
                ..Default::default()
            }),
            request_id: request_id.to_owned(),
        };
        let request = self.on_behalf_of(principal, message)?;
        let created = self
            .assets
            .clone()
            .create_asset(request)
            .await
            .map_err(|s| ReadError::Unavailable(s.message().to_owned()))?;
        Ok(created.into_inner().name)
    }

    async fn store_output(
        &self,
        principal: &Principal,
        asset: &str,
        files: &[(String, std::path::PathBuf)],
        request_id: &str,
        source: pb::PipelineRunSource,
        metrics: std::collections::HashMap<String, f64>,
    ) -> Result<String, ReadError> {
        use tokio::io::AsyncReadExt;
        let failed = |e: tonic::Status| ReadError::Unavailable(format!("{}: {}", e.code(), e.message()));
        let mut declared = Vec::with_capacity(files.len());
        for (path, local) in files {
            let local = local.clone();
            let (sha256, size) = tokio::task::spawn_blocking(move || digest(&local))
                .await
                .map_err(|e| ReadError::Unavailable(e.to_string()))?
                .map_err(|e| ReadError::Unavailable(format!("{path}: {e}")))?;
            let size_bytes = i64::try_from(size).unwrap_or(i64::MAX);
            declared.push(pb::UploadFile { path: path.clone(), size_bytes, sha256, ..Default::default() });
        }
        let create = pb::CreateUploadRequest {
            parent: asset.to_owned(),
            files: declared,
            request_id: request_id.to_owned(),
            ..Default::default()
        };
        let request = self.on_behalf_of(principal, create)?;
        let upload = self.uploads.clone().create_upload(request).await.map_err(failed)?.into_inner();
        for ((path, local), state) in files.iter().zip(&upload.files) {
            if state.present {
                continue;
            }
            let mut offset = u64::try_from(state.acknowledged_offset).unwrap_or(0);
            let opened = local.clone();
            let file = tokio::task::spawn_blocking(move || open_left_behind(&opened))
                .await
                .map_err(|e| ReadError::Unavailable(e.to_string()))?
                .map_err(|e| ReadError::Unavailable(e.to_string()))?;
            let mut file = tokio::fs::File::from_std(file);
            tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| ReadError::Unavailable(e.to_string()))?;
            let mut buffer = vec![0u8; CHUNK];
            loop {
                let n = file.read(&mut buffer).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
                if n == 0 {
                    break;
                }
                let chunk = pb::WriteUploadChunkRequest {
                    upload: upload.name.clone(),
                    path: path.clone(),
                    offset: i64::try_from(offset).unwrap_or(i64::MAX),
                    data: Bytes::copy_from_slice(&buffer[..n]),
                };
                let request = self.on_behalf_of(principal, chunk)?;
                self.uploads.clone().write_upload_chunk(request).await.map_err(failed)?;
                offset += n as u64;
            }
        }
        let commit = CommitRunOutputRequest { upload: upload.name.clone(), source: Some(source), metrics };
        let request = self.on_behalf_of(principal, commit)?;
        let version = self.run_outputs.clone().commit_run_output(request).await.map_err(failed)?.into_inner();
        Ok(version.name)
    }

    async fn version(&self, principal: &Principal, version: &str) -> Result<VersionInfo, ReadError> {
        let asset_name = version.split("/versions/").next().unwrap_or_default().to_owned();
        let request = self.on_behalf_of(principal, pb::GetAssetRequest { name: asset_name.clone() })?;
        let asset = self.assets.clone().get_asset(request).await.map_err(|s| answer(version, s))?.into_inner();
        let request = self.on_behalf_of(principal, pb::GetAssetVersionRequest { name: version.to_owned() })?;
        let found = self.assets.clone().get_asset_version(request).await.map_err(|s| answer(version, s))?.into_inner();
        let name = format!("{asset_name}/versions/{}", found.version_number);
        let usable = found.state == pb::VersionState::Ready as i32 && !found.archived && !asset.archived;
        let kind = pb::AssetKind::try_from(asset.kind).unwrap_or(pb::AssetKind::Unspecified);
        let files = found.files.iter().map(|f| (f.path.clone(), u64::try_from(f.size_bytes).unwrap_or(0))).collect();
        let image = found.image.map(|image| match image.deployable_digest.is_empty() {
            true => Err(image.not_deployable_reason),
            false => Ok(image.deployable_digest),
        });
        Ok(VersionInfo { name, kind, files, usable, image })
    }

    async fn download(
        &self,
        principal: &Principal,
        version: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<(), ReadError> {
        use tokio::io::AsyncWriteExt;
        let read = pb::ReadFileRequest { version: version.to_owned(), path: path.to_owned(), offset: 0, length: 0 };
        let request = self.on_behalf_of(principal, read)?;
        let mut frames = self.uploads.clone().read_file(request).await.map_err(|s| answer(version, s))?.into_inner();
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        while let Some(frame) = frames.message().await.map_err(|s| answer(version, s))? {
            file.write_all(&frame.data).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        }
        file.flush().await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok(())
    }
}
