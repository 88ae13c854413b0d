//! Pulling an image from a registry (the distribution API, `/v2/`): manifests with every type in `Accept`, each
//! document bounded and checked against its digest, blobs streamed to a scratch OCI layout within their declared
//! sizes, then unpacked from there (`image::unpack_image` checks every digest again). Registries that answer 401
//! are asked the way Docker asks them: a bearer token from the realm their challenge names, with the credentials
//! given (sent only to the registry's origin or a realm the configuration names, `auth`), or basic auth.

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use reqwest::header;
use tokio::io::AsyncWriteExt;

use crate::{
    digest::Digest,
    image::{self, ImageError, Unpacked},
    layout::OciLayout,
    manifest::{self, Descriptor, Document, MANIFEST_TYPES, MAX_DOCUMENT_BYTES},
    reference::ImageRef,
    unpack::Limits,
};

mod auth;

use self::auth::{TokenKey, unavailable};

/// How requests to a registry authenticate.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// A user name and password (or API key), for basic auth or to obtain tokens.
    Basic {
        /// The user.
        user: String,
        /// The password; never logged.
        password: String,
    },
    /// A bearer token issued for this pull elsewhere (the platform's own registry, whose tokens the platform
    /// mints): sent as it is, and a registry that turns it down is not asked again.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Where a registry is and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its base URL, `https://ghcr.io` or `http://127.0.0.1:5000`.
    pub url: String,
    /// Its credentials.
    pub credentials: Credentials,
    /// Token realms on other hosts the credentials may be sent to.
    pub token_realms: Vec<String>,
}

/// Why a pull failed; each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry has no such repository, tag or blob.
    #[error("{0} is not in the registry")]
    NotFound(String),
    /// The registry refused the credentials or the access.
    #[error("the registry refused access to {0}")]
    Denied(String),
    /// The registry could not be reached or failed.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// A manifest or blob is larger than allowed or declared.
    #[error("{0} is too large")]
    TooLarge(String),
    /// Content is not what its digest says.
    #[error("{what} has digest {found}, not {expected}")]
    DigestMismatch {
        /// What was read.
        what: String,
        /// What was asked for.
        expected: Digest,
        /// What arrived.
        found: Digest,
    },
    /// A manifest, index or config is unusable.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// The image could not be unpacked.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The scratch space failed.
    #[error("scratch space: {0}")]
    Io(#[from] std::io::Error),
}

/// Which layer blobs of a pull have been downloaded into its scratch layout, for the unpacking that waits on them.
#[derive(Debug, Clone, Default)]
struct Arrivals(std::sync::Arc<(Mutex<ArrivalState>, std::sync::Condvar)>);

#[derive(Debug, Default)]
struct ArrivalState {
    here: std::collections::HashSet<Digest>,
    stopped: bool,
}

impl Arrivals {
    /// Blob `digest` is complete (`true`), or its download failed and no more will come (`false`).
    fn arrived(&self, digest: &Digest, complete: bool) {
        let (state, changed) = &*self.0;
        if let Ok(mut state) = state.lock() {
            if complete {
                state.here.insert(digest.clone());
            } else {
                state.stopped = true;
            }
        }
        changed.notify_all();
    }

    /// Waits for blob `digest`; an error when the downloads stopped before it came.
    fn wait_for(&self, digest: &Digest) -> std::io::Result<()> {
        let (state, changed) = &*self.0;
        let mut state = state.lock().map_err(|_| std::io::Error::other("the download was abandoned"))?;
        while !state.here.contains(digest) {
            if state.stopped {
                return Err(std::io::Error::other("the download stopped before this blob"));
            }
            state = changed.wait(state).map_err(|_| std::io::Error::other("the download was abandoned"))?;
        }
        Ok(())
    }
}

/// Stops the waiting when the pull ends, however it ends: a pull dropped half-way must not leave its unpacking
/// blocked for ever.
struct ArrivalGuard(Arrivals);

impl Drop for ArrivalGuard {
    fn drop(&mut self) {
        let (state, changed) = &*(self.0).0;
        if let Ok(mut state) = state.lock() {
            state.stopped = true;
        }
        changed.notify_all();
    }
}

/// The scratch layout of a pull whose layers are still arriving: a blob is read once it is complete.
struct ArrivingLayout {
    layout: OciLayout,
    arrivals: Arrivals,
}

impl image::BlobSource for ArrivingLayout {
    fn open(&self, digest: &Digest) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        self.arrivals.wait_for(digest)?;
        self.layout.open(digest)
    }
}

/// A registry client: one HTTP client and its tokens, shared by every pull.
pub struct RegistryClient {
    http: reqwest::Client,
    /// Bearer tokens by (registry, scope, whose credentials), until they expire.
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its tokens are secrets.
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

/// One request's target.
struct Target<'a> {
    endpoint: &'a Endpoint,
    repository: &'a str,
    path: String,
    accept: Option<String>,
}

impl RegistryClient {
    /// A client with sane timeouts.
    pub fn new() -> Result<Self, PullError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            // Followed by hand (`send_following`): reqwest compares each hop only with the one before it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(unavailable)?;
        Ok(Self { http, tokens: Mutex::new(HashMap::new()) })
    }

    /// The linux/amd64 image manifest `image` names in `endpoint`, read with its credentials: for an index, its
    /// amd64 entry. Asking proves the credentials may pull that digest from that repository, which is what a
    /// cache keyed by digest must know before it hands out a root.
    pub async fn resolve(&self, endpoint: &Endpoint, image: &ImageRef) -> Result<Descriptor, PullError> {
        let repository = image.repository.as_str();
        let (top, bytes) =
            self.fetch_manifest(endpoint, repository, &reference_of(image), image.digest.as_ref()).await?;
        match manifest::parse(&bytes, Some(&top.media_type))? {
            Document::Image(_) => Ok(top),
            Document::Index(entry) => {
                let (manifest, bytes) =
                    self.fetch_manifest(endpoint, repository, &entry.digest.to_string(), Some(&entry.digest)).await?;
                match manifest::parse(&bytes, Some(&manifest.media_type))? {
                    Document::Image(_) => Ok(manifest),
                    Document::Index(_) => Err(manifest::ManifestError("an index inside an index".into()).into()),
                }
            }
        }
    }

    /// Pulls `image` from `endpoint` into the empty directory `root`, its blobs kept in `scratch` (an OCI layout
    /// the caller removes).
    pub async fn pull(
        &self,
        endpoint: &Endpoint,
        image: &ImageRef,
        scratch: &Path,
        root: &Path,
        limits: &Limits,
    ) -> Result<Unpacked, PullError> {
        let repository = image.repository.as_str();
        tokio::fs::create_dir_all(scratch.join("blobs/sha256")).await?;
        tokio::fs::write(scratch.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        let top = self.manifest(endpoint, repository, &reference_of(image), image.digest.as_ref(), scratch).await?;
        let mut manifest = top.clone();
        if let Document::Index(entry) = self.document(scratch, &top)? {
            manifest =
                self.manifest(endpoint, repository, &entry.digest.to_string(), Some(&entry.digest), scratch).await?;
        }
        let Document::Image(parsed) = self.document(scratch, &manifest)? else {
            return Err(manifest::ManifestError("an index inside an index".into()).into());
        };
        if parsed.config.size > MAX_DOCUMENT_BYTES as u64 {
            return Err(PullError::TooLarge(format!("the config of {image}")));
        }
        let declared = parsed.layers.iter().try_fold(0u64, |sum, l| sum.checked_add(l.blob.size));
        if declared.is_none_or(|declared| declared > limits.image_bytes) {
            return Err(PullError::TooLarge(format!(
                "{image} (its layers declare more than {} bytes)",
                limits.image_bytes
            )));
        }
        self.blob(endpoint, repository, &parsed.config, scratch).await?;
        // Each layer unpacks as soon as it is here, while the next ones download.
        let arrivals = Arrivals::default();
        let _stop_waiting = ArrivalGuard(arrivals.clone());
        for document in [&top.digest, &manifest.digest, &parsed.config.digest] {
            arrivals.arrived(document, true);
        }
        let source = ArrivingLayout { layout: OciLayout::open(scratch)?, arrivals: arrivals.clone() };
        let (root, limits) = (root.to_path_buf(), *limits);
        let unpacking = tokio::task::spawn_blocking(move || image::unpack_image(&root, &source, &top, &limits));
        let mut downloaded = Ok(());
        for layer in &parsed.layers {
            if unpacking.is_finished() {
                break;
            }
            downloaded = self.blob(endpoint, repository, &layer.blob, scratch).await;
            arrivals.arrived(&layer.blob.digest, downloaded.is_ok());
            if downloaded.is_err() {
                break;
            }
        }
        let unpacked = unpacking.await.map_err(|e| PullError::Io(std::io::Error::other(e)))?;
        // A failed download is the reason the unpacking stopped, if it did.
        downloaded?;
        Ok(unpacked?)
    }

    fn document(&self, scratch: &Path, descriptor: &Descriptor) -> Result<Document, PullError> {
        let bytes = std::fs::read(scratch.join("blobs/sha256").join(descriptor.digest.hex()))?;
        Ok(manifest::parse(&bytes, Some(&descriptor.media_type))?)
    }

    /// Fetches manifest `reference` (a tag or digest) into the scratch layout; its descriptor.
    async fn manifest(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        reference: &str,
        pinned: Option<&Digest>,
        scratch: &Path,
    ) -> Result<Descriptor, PullError> {
        let (descriptor, bytes) = self.fetch_manifest(endpoint, repository, reference, pinned).await?;
        tokio::fs::write(scratch.join("blobs/sha256").join(descriptor.digest.hex()), &bytes).await?;
        Ok(descriptor)
    }

    /// Fetches manifest `reference` (a tag or digest), bounded and checked against the digest it is pinned to and
    /// the one the registry announces.
    async fn fetch_manifest(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        reference: &str,
        pinned: Option<&Digest>,
    ) -> Result<(Descriptor, Vec<u8>), PullError> {
        let target = Target {
            endpoint,
            repository,
            path: format!("{repository}/manifests/{reference}"),
            accept: Some(MANIFEST_TYPES.join(", ")),
        };
        let response = self.get(&target).await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let announced =
            response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let what = format!("{repository}:{reference}");
        let bytes = read_bounded(response, MAX_DOCUMENT_BYTES as u64, &what).await?;
        let digest = Digest::of(&bytes);
        for expected in pinned.cloned().into_iter().chain(announced.and_then(|a| a.parse().ok())) {
            if expected != digest {
                return Err(PullError::DigestMismatch { what: format!("manifest {what}"), expected, found: digest });
            }
        }
        Ok((Descriptor { media_type, digest, size: bytes.len() as u64 }, bytes))
    }

    /// Streams blob `descriptor` into the scratch layout, no longer than it declares, checked against its digest.
    async fn blob(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        descriptor: &Descriptor,
        scratch: &Path,
    ) -> Result<(), PullError> {
        let path = scratch.join("blobs/sha256").join(descriptor.digest.hex());
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let target =
            Target { endpoint, repository, path: format!("{repository}/blobs/{}", descriptor.digest), accept: None };
        let mut response = self.get(&target).await?;
        let partial = path.with_extension("partial");
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            written += chunk.len() as u64;
            if written > descriptor.size {
                return Err(PullError::TooLarge(format!(
                    "blob {} (more than its {} bytes)",
                    descriptor.digest, descriptor.size
                )));
            }
            sha2::Digest::update(&mut hasher, &chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let found = Digest::from_hasher(hasher);
        if found != descriptor.digest || written != descriptor.size {
            return Err(PullError::DigestMismatch {
                what: format!("blob of {repository}"),
                expected: descriptor.digest.clone(),
                found,
            });
        }
        tokio::fs::rename(&partial, &path).await?;
        Ok(())
    }
}

/// The tag or digest a request names `image` by: the digest when pinned.
fn reference_of(image: &ImageRef) -> String {
    match (&image.digest, &image.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_owned(),
    }
}

/// The body of `response`, at most `max` bytes.
async fn read_bounded(mut response: reqwest::Response, max: u64, what: &str) -> Result<Vec<u8>, PullError> {
    if response.content_length().is_some_and(|length| length > max) {
        return Err(PullError::TooLarge(what.to_owned()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        if bytes.len() as u64 + chunk.len() as u64 > max {
            return Err(PullError::TooLarge(what.to_owned()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
