//! `highwind.asset.v1.UploadService`: resumable, verified uploads, dedup by digest, and ranged reads.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::asset::v1::{self as pb, upload_service_server::UploadService};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming, codegen::BoxStream};

use super::{
    access,
    convert::{files_from_proto, upload_file_to_proto, upload_to_proto, version_to_proto},
    versions,
};
use crate::{
    blobs::BlobStore,
    domain::{
        asset::AssetKind,
        names,
        upload::{Upload, UploadFile, UploadHead},
        version::{FileEntry, Lineage, valid_sha256},
    },
    error::Error,
    pipeline_client::PipelineValidator,
    store::{AssetRepository, grants::GrantRepository},
    upload_workflow::{NewUpload, Uploads},
};

/// Largest pipeline IR file, as pipeline-svc takes it.
const IR_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Size of each frame `ReadFile` sends.
const READ_FRAME_BYTES: u64 = 1024 * 1024;
/// Most digests one `FindMissingBlobs` may ask about.
const MAX_DIGESTS: usize = 10_000;

/// Handlers of `UploadService`.
#[derive(Debug, Clone)]
pub struct UploadApi {
    assets: Arc<dyn AssetRepository>,
    grants: Arc<dyn GrantRepository>,
    pipelines: Arc<dyn PipelineValidator>,
    uploads: Uploads,
}

impl UploadApi {
    /// Handlers over `assets` and `grants` (for access) and `uploads`, asking `pipelines` about pipeline IR.
    pub fn new(
        assets: Arc<dyn AssetRepository>,
        grants: Arc<dyn GrantRepository>,
        uploads: Uploads,
        pipelines: Arc<dyn PipelineValidator>,
    ) -> Self {
        Self { assets, grants, pipelines, uploads }
    }

    /// The upload `name` if `principal` owns its asset and opened it.
    /// Refuses to commit a pipeline version whose IR (its one `.yaml` or `.yml` file) pipeline-svc finds unrunnable;
    /// the upload stays open, so the file can be written again or the upload cancelled.
    async fn check_pipeline(&self, principal: &Principal, upload: &Upload) -> Result<(), Error> {
        let upload = self.uploads.complete(upload).await?;
        let files = upload.manifest();
        let ir: Vec<_> = files.iter().filter(|f| f.path.ends_with(".yaml") || f.path.ends_with(".yml")).collect();
        let [file] = ir.as_slice() else {
            return Err(Error::Invalid(Violations::one(
                "files",
                format!("a pipeline version holds exactly one .yaml IR file, not {}", ir.len()),
            )));
        };
        let content = self.uploads.read_whole(&file.sha256, file.size, IR_MAX_BYTES).await?;
        let errors = self.pipelines.errors(principal, content).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        if errors.is_empty() { Ok(()) } else { Err(Error::Invalid(errors)) }
    }

    /// The upload `name` (without its files) if `principal` owns its asset and opened it.
    async fn owned_head(&self, principal: &Principal, field: &str, name: &str) -> Result<UploadHead, Error> {
        let (asset_id, upload_id) =
            names::parse_upload_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
        let (assets, grants) = (self.assets.as_ref(), self.grants.as_ref());
        access::owned_asset_by_id(assets, grants, principal, asset_id, access::OwnerOnly::Change).await?;
        match self.uploads.repo().get_upload_head(upload_id).await? {
            Some(head) if head.asset_id == asset_id && head.creator == principal.as_str() => Ok(head),
            _ => Err(Error::NotFound(name.to_owned())),
        }
    }

    /// The upload `name` with its files if `principal` owns its asset and opened it.
    async fn owned_upload(&self, principal: &Principal, field: &str, name: &str) -> Result<Upload, Error> {
        let head = self.owned_head(principal, field, name).await?;
        self.fresh(&head).await
    }

    /// The declared file of `upload` at `path`, or INVALID_ARGUMENT naming `path`.
    async fn declared(&self, upload: &UploadHead, path: &str) -> Result<UploadFile, Error> {
        self.uploads.repo().get_upload_file(upload.id, path).await?.ok_or_else(|| {
            let path = highwind_common::status_bounds::echo(path);
            Error::Invalid(Violations::one("path", format!("{path:?} is not a file of this upload")))
        })
    }

    /// The acknowledged offsets of the files at `paths`, as they stand now: what a write answers, at a cost
    /// that follows the files written, not the files declared.
    async fn acknowledged(&self, upload: &UploadHead, paths: &BTreeSet<String>) -> Result<Vec<pb::UploadFile>, Error> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            files.push(self.declared(upload, path).await?);
        }
        let progress = self.uploads.progress_of(upload.id, files).await?;
        Ok(progress.iter().map(|(file, acknowledged)| upload_file_to_proto(file, *acknowledged)).collect())
    }

    /// Commits `principal`'s upload `name` (named by request field `field`) with lineage `source` (the upload
    /// itself when `None`); a pipeline's IR must validate first.
    pub(crate) async fn commit_as(
        &self,
        principal: &Principal,
        field: &str,
        name: &str,
        source: Option<Lineage>,
        metrics: BTreeMap<String, f64>,
    ) -> Result<pb::AssetVersion, Error> {
        let upload = self.owned_upload(principal, field, name).await?;
        let asset = self.assets.get(upload.asset_id).await.map_err(Error::from)?;
        if asset.is_some_and(|a| a.kind == AssetKind::Pipeline) {
            self.check_pipeline(principal, &upload).await?;
        }
        let version = self.uploads.commit(&upload, source, metrics).await?;
        tracing::info!(asset = %version.asset_id, version = version.number, digest = %version.manifest_digest, "version committed");
        let aliases = self.uploads.repo().aliases(version.asset_id).await.map_err(Error::from)?;
        Ok(version_to_proto(&version, &aliases))
    }

    async fn answer(&self, upload: &Upload) -> Result<pb::Upload, Error> {
        Ok(upload_to_proto(upload, &self.uploads.progress(upload).await?))
    }

    /// Writes one frame to the file at `path`, looked up in `files` (and the store on its first frame).
    async fn write_frame(
        &self,
        upload: &UploadHead,
        files: &mut HashMap<String, UploadFile>,
        path: &str,
        offset: u64,
        data: bytes::Bytes,
    ) -> Result<(), Error> {
        let file = match files.get_mut(path) {
            Some(file) => file,
            None => {
                let file = self.declared(upload, path).await?;
                files.entry(path.to_owned()).or_insert(file)
            }
        };
        if self.uploads.write(upload, file, offset, data).await? {
            file.complete = true;
        }
        Ok(())
    }

    async fn fresh(&self, upload: &UploadHead) -> Result<Upload, Error> {
        let name = names::upload_name(upload.asset_id, upload.id);
        self.uploads.repo().get_upload(upload.id).await?.ok_or(Error::NotFound(name))
    }

    /// CreateUpload: `principal` opens an upload of `opening`'s files on a live asset they own (once per request
    /// id: a retry returns the first).
    async fn open(&self, principal: &Principal, opening: Opening) -> Result<Upload, Error> {
        let (assets, grants) = (self.assets.as_ref(), self.grants.as_ref());
        let asset = access::owned_asset(assets, grants, principal, "parent", &opening.parent).await?;
        if asset.archive_time.is_some() {
            return Err(Error::Archived(opening.parent));
        }
        let upload = self
            .uploads
            .create(NewUpload {
                asset_id: asset.id,
                creator: principal.as_str().to_owned(),
                files: opening.files,
                description: opening.description,
                labels: opening.labels,
                request_id: opening.request_id,
            })
            .await?;
        tracing::info!(upload = %upload.id, asset = %asset.id, files = upload.files.len(), "upload opened");
        Ok(upload)
    }

    /// WriteUpload: writes every frame of one stream to one of `principal`'s uploads; what was written is durable
    /// before anything is acknowledged, success or not. The files written, as they stand.
    async fn write_stream(
        &self,
        principal: &Principal,
        mut frames: Streaming<pb::WriteUploadRequest>,
    ) -> Result<Vec<pb::UploadFile>, Error> {
        let mut upload: Option<UploadHead> = None;
        // The files this stream writes, looked up once each: a frame costs the same however many are declared.
        let mut files: HashMap<String, UploadFile> = HashMap::new();
        let mut result = Ok(());
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(Error::RequestStream)?;
            let current = match &upload {
                Some(current)
                    if frame.upload.is_empty() || frame.upload == names::upload_name(current.asset_id, current.id) =>
                {
                    current
                }
                Some(_) => {
                    result = Err(Error::Invalid(Violations::one("upload", "one stream writes to one upload")));
                    break;
                }
                None => {
                    if frame.upload.is_empty() {
                        result = Err(Error::Invalid(Violations::one("upload", "required on the first frame")));
                        break;
                    }
                    upload.insert(self.owned_head(principal, "upload", &frame.upload).await?)
                }
            };
            let written = match offset_of(frame.offset) {
                Ok(offset) => self.write_frame(current, &mut files, &frame.path, offset, frame.data).await,
                Err(error) => Err(error),
            };
            if let Err(error) = written {
                result = Err(error);
                break;
            }
        }
        let Some(upload) = upload else {
            result?;
            return Err(Error::Invalid(Violations::one("upload", "the stream sent no frame")));
        };
        self.uploads.sync(upload.id).await?;
        result?;
        let touched: BTreeSet<String> = files.into_keys().collect();
        self.acknowledged(&upload, &touched).await
    }

    /// WriteUploadChunk: one frame, durable before it is acknowledged.
    async fn write_chunk(
        &self,
        principal: &Principal,
        name: &str,
        path: String,
        offset: u64,
        data: bytes::Bytes,
    ) -> Result<Vec<pb::UploadFile>, Error> {
        let upload = self.owned_head(principal, "upload", name).await?;
        let mut files = HashMap::new();
        let written = self.write_frame(&upload, &mut files, &path, offset, data).await;
        self.uploads.sync(upload.id).await?;
        written?;
        self.acknowledged(&upload, &BTreeSet::from([path])).await
    }

    /// CancelUpload: the upload as it stands once cancelled.
    async fn cancel(&self, principal: &Principal, name: &str) -> Result<Upload, Error> {
        let upload = self.owned_head(principal, "name", name).await?;
        self.uploads.cancel(&upload).await?;
        self.fresh(&upload).await
    }

    /// ReadFile: the blob and byte range `range` selects, if `principal` may read the version.
    async fn readable_range(&self, principal: &Principal, range: FileRange) -> Result<(String, u64, u64), Error> {
        let repos = versions::Repos {
            assets: self.assets.as_ref(),
            content: self.uploads.repo().as_ref(),
            grants: self.grants.as_ref(),
        };
        let version = versions::resolve_readable(repos, principal, "version", &range.version).await?;
        let Some(file) = version.files.iter().find(|f| f.path == range.path) else {
            let path = highwind_common::status_bounds::echo(&range.path);
            return Err(Error::NotFound(format!("{} file {path}", range.version)));
        };
        if range.offset > file.size {
            return Err(Error::Invalid(Violations::one(
                "offset",
                format!("past the end of the file ({} bytes)", file.size),
            )));
        }
        let end = if range.length == 0 { file.size } else { range.offset.saturating_add(range.length).min(file.size) };
        Ok((file.sha256.clone(), range.offset, end))
    }
}

#[tonic::async_trait]
impl UploadService for UploadApi {
    async fn create_upload(&self, request: Request<pb::CreateUploadRequest>) -> Result<Response<pb::Upload>, Status> {
        let principal = Principal::of(&request)?.clone();
        let opening = Opening::try_from(request.into_inner())?;
        let upload = self.open(&principal, opening).await?;
        Ok(Response::new(self.answer(&upload).await?))
    }

    async fn get_upload(&self, request: Request<pb::GetUploadRequest>) -> Result<Response<pb::Upload>, Status> {
        let principal = Principal::of(&request)?;
        let upload = self.owned_upload(principal, "name", &request.get_ref().name).await?;
        Ok(Response::new(self.answer(&upload).await?))
    }

    async fn write_upload(
        &self,
        request: Request<Streaming<pb::WriteUploadRequest>>,
    ) -> Result<Response<pb::WriteUploadResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let files = self.write_stream(&principal, request.into_inner()).await?;
        Ok(Response::new(pb::WriteUploadResponse { files }))
    }

    async fn write_upload_chunk(
        &self,
        request: Request<pb::WriteUploadChunkRequest>,
    ) -> Result<Response<pb::WriteUploadChunkResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let frame = request.into_inner();
        let offset = offset_of(frame.offset)?;
        let files = self.write_chunk(&principal, &frame.upload, frame.path, offset, frame.data).await?;
        Ok(Response::new(pb::WriteUploadChunkResponse { files }))
    }

    async fn commit_upload(
        &self,
        request: Request<pb::CommitUploadRequest>,
    ) -> Result<Response<pb::AssetVersion>, Status> {
        let principal = Principal::of(&request)?.clone();
        let version = self.commit_as(&principal, "name", &request.get_ref().name, None, BTreeMap::new()).await?;
        Ok(Response::new(version))
    }

    async fn cancel_upload(&self, request: Request<pb::CancelUploadRequest>) -> Result<Response<pb::Upload>, Status> {
        let principal = Principal::of(&request)?.clone();
        let upload = self.cancel(&principal, &request.get_ref().name).await?;
        Ok(Response::new(self.answer(&upload).await?))
    }

    async fn find_missing_blobs(
        &self,
        request: Request<pb::FindMissingBlobsRequest>,
    ) -> Result<Response<pb::FindMissingBlobsResponse>, Status> {
        Principal::of(&request)?;
        let digests = digests(request.into_inner().sha256)?;
        let missing = self.uploads.repo().missing_blobs(&digests).await.map_err(Error::from)?;
        Ok(Response::new(pb::FindMissingBlobsResponse { missing_sha256: missing }))
    }

    async fn read_file(
        &self,
        request: Request<pb::ReadFileRequest>,
    ) -> Result<Response<BoxStream<pb::ReadFileResponse>>, Status> {
        let principal = Principal::of(&request)?.clone();
        let range = FileRange::try_from(request.into_inner())?;
        let (sha256, start, end) = self.readable_range(&principal, range).await?;
        Ok(Response::new(read_stream(self.uploads.blobs().clone(), sha256, start, end)))
    }
}

/// A CreateUpload request, decoded.
#[derive(Debug)]
struct Opening {
    parent: String,
    files: Vec<FileEntry>,
    description: String,
    labels: BTreeMap<String, String>,
    request_id: Option<String>,
}

impl TryFrom<pb::CreateUploadRequest> for Opening {
    type Error = Error;

    fn try_from(request: pb::CreateUploadRequest) -> Result<Self, Error> {
        let mut violations = Violations::new();
        let files = files_from_proto(request.files, &mut violations);
        highwind_common::idempotency::check_request_id(&request.request_id, &mut violations);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self {
            parent: request.parent,
            files,
            description: request.description,
            labels: request.labels.into_iter().collect(),
            request_id: Some(request.request_id).filter(|id| !id.is_empty()),
        })
    }
}

/// A ReadFile request, decoded: which file of which version, and the byte range asked for (`length` 0: to the
/// end).
#[derive(Debug)]
struct FileRange {
    version: String,
    path: String,
    offset: u64,
    length: u64,
}

impl TryFrom<pb::ReadFileRequest> for FileRange {
    type Error = Error;

    fn try_from(request: pb::ReadFileRequest) -> Result<Self, Error> {
        let mut violations = Violations::new();
        // No stored path is longer, so a longer one is refused before any lookup (and never echoed whole).
        if request.path.len() > crate::domain::paths::MAX_PATH_BYTES {
            violations.add("path", format!("must be at most {} bytes", crate::domain::paths::MAX_PATH_BYTES));
        }
        let offset = u64::try_from(request.offset).unwrap_or_else(|_| {
            violations.add("offset", "must not be negative");
            0
        });
        let length = u64::try_from(request.length).unwrap_or_else(|_| {
            violations.add("length", "must not be negative");
            0
        });
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        Ok(Self { version: request.version, path: request.path, offset, length })
    }
}

/// A write's offset, which must not be negative.
fn offset_of(offset: i64) -> Result<u64, Error> {
    u64::try_from(offset).map_err(|_| Error::Invalid(Violations::one("offset", "must not be negative")))
}

/// FindMissingBlobs' digests, checked: a bounded number of SHA-256 hex digests.
fn digests(digests: Vec<String>) -> Result<Vec<String>, Error> {
    let mut violations = Violations::new();
    if digests.len() > MAX_DIGESTS {
        violations.add("sha256", format!("at most {MAX_DIGESTS} digests per call"));
    }
    for (i, _) in digests.iter().enumerate().filter(|(_, d)| !valid_sha256(d)).take(20) {
        violations.add(format!("sha256[{i}]"), "must be 64 lowercase hex digits");
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    Ok(digests)
}

/// Bytes `start..end` of blob `sha256`, in frames of at most `READ_FRAME_BYTES`; a failed read ends the stream.
fn read_stream(blobs: BlobStore, sha256: String, start: u64, end: u64) -> BoxStream<pb::ReadFileResponse> {
    let stream = futures::stream::unfold(start, move |position| {
        let blobs = blobs.clone();
        let sha256 = sha256.clone();
        async move {
            if position >= end {
                return None;
            }
            let len = READ_FRAME_BYTES.min(end - position);
            let frame = match blobs.read(&sha256, position, len).await {
                Ok(data) => Ok(pb::ReadFileResponse { offset: i64::try_from(position).unwrap_or(i64::MAX), data }),
                Err(error) => Err(Status::from(Error::from(error))),
            };
            let next = if frame.is_ok() { position + len } else { end };
            Some((frame, next))
        }
    });
    Box::pin(stream)
}
