//! The image a step runs in: its reference resolved for the run's creator — in the platform's own registry with a
//! pull token asset-svc grants exactly as the registry token endpoint would, or in a registry of
//! `executor.images.registries` — and unpacked once into the image store, keyed by where it was resolved and its
//! manifest digest.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use highwind_common::principal::Principal;
use highwind_runtime::{
    reference::ImageRef,
    registry::{Credentials, Endpoint, PullError, RegistryClient},
    store::{ImageStore, RootKey, RootLease, StoreError, StoredRoot},
    unpack::Limits,
};

use crate::{
    assets::{AssetFiles, ReadError},
    runs::entities::{ImageSource, TaskImage},
};

pub use crate::runs::entities::ImageMode;

/// Where images come from and where they are kept (`HIGHWIND__PIPELINE__EXECUTOR__IMAGES__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Whether steps run in their images, for runs that do not say (`auto`, `image` or `host`).
    pub mode: ImageMode,
    /// The unpacked images (made 0700; tasks never see it); empty: `.images` in the executor's `data_dir`.
    pub cache_dir: PathBuf,
    /// Most bytes of unpacked images kept that no step uses; the least recently used go first.
    pub max_cache_bytes: u64,
    /// Most bytes one layer may unpack to.
    pub max_layer_bytes: u64,
    /// Most bytes one image may unpack to.
    pub max_image_bytes: u64,
    /// Most files, directories and links one image may hold.
    pub max_image_entries: u64,
    /// Registries besides the platform's, by the host image references name (`docker.io`, `ghcr.io`,
    /// `registry.example.com:5000`); a host may be served by a mirror (`docker.io` → a local mirror's URL).
    /// Images of any other registry are not pulled.
    pub registries: BTreeMap<String, RegistryEntry>,
}

/// One registry images are pulled from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryEntry {
    /// Its API's base URL, `https://registry-1.docker.io` or a mirror's `http://127.0.0.1:5001`.
    pub url: String,
    /// A file holding `user:password` (or `user:token`) on its first line; anonymous when empty. Read at each
    /// pull, so it can be rotated in place; never logged.
    pub credentials_file: PathBuf,
    /// Token realms on other hosts the credentials may be sent to (Docker Hub's `https://auth.docker.io/token`).
    pub token_realms: Vec<String>,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            mode: ImageMode::Auto,
            cache_dir: PathBuf::new(),
            max_cache_bytes: 20 << 30,
            max_layer_bytes: limits.layer_bytes,
            max_image_bytes: limits.image_bytes,
            max_image_entries: limits.entries,
            registries: BTreeMap::new(),
        }
    }
}

impl ImagesConfig {
    fn limits(&self) -> Limits {
        Limits { layer_bytes: self.max_layer_bytes, image_bytes: self.max_image_bytes, entries: self.max_image_entries }
    }
}

/// Why a step's image is not there.
#[derive(Debug, thiserror::Error)]
pub enum ImageProblem {
    /// Its registry is neither the platform's nor configured: in AUTO mode the step runs on the host.
    #[error("registry {registry} is neither the platform's nor in executor.images.registries")]
    UnknownRegistry {
        /// The registry host.
        registry: String,
    },
    /// The reference cannot be read.
    #[error("{0}")]
    BadReference(String),
    /// The run's creator may not pull it, or it does not exist.
    #[error("image {image} is not in registry {registry} or its run's creator may not pull it")]
    NotFound {
        /// The reference.
        image: String,
        /// The registry host.
        registry: String,
    },
    /// Pulling or unpacking it failed.
    #[error("image {image} from registry {registry}: {reason}")]
    Failed {
        /// The reference.
        image: String,
        /// The registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },
}

/// The image a step runs in, held (not evicted) while the step runs.
#[derive(Debug)]
pub struct StepImage {
    /// The reference as the step names it.
    pub reference: String,
    /// Where it was resolved: the registry's URL and the repository.
    pub source: String,
    /// The root, its config and sizes.
    pub lease: RootLease,
}

impl StepImage {
    /// What the task records of it.
    pub fn record(&self) -> TaskImage {
        let root = &self.lease.root;
        TaskImage {
            reference: self.reference.clone(),
            digest: root.digest.to_string(),
            source: if self.lease.built { ImageSource::Pulled } else { ImageSource::Cached },
            compressed_bytes: root.unpacked.compressed_bytes,
            unpacked_bytes: root.unpacked.unpacked_bytes,
            user: String::new(),
        }
    }

    /// What the task's note says of it: `image R as sha256:… (pulled, 12.3 MB unpacked)` or `(cached)`.
    pub fn note(&self) -> String {
        let root = &self.lease.root;
        let how = if self.lease.built {
            format!("pulled, {:.1} MB unpacked", root.unpacked.unpacked_bytes as f64 / 1e6)
        } else {
            "cached".to_owned()
        };
        format!("image {} as {} ({how})", self.reference, root.digest)
    }
}

/// Images for steps: the registry client, the store, and where each registry is.
#[derive(Debug)]
pub struct Images {
    config: ImagesConfig,
    client: Arc<RegistryClient>,
    store: ImageStore,
}

impl Images {
    /// The store in `config.cache_dir` (made absolute), locked to this process.
    pub fn open(mut config: ImagesConfig) -> Result<Self, String> {
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| format!("{}: {e}", config.cache_dir.display()))?;
        config.cache_dir =
            config.cache_dir.canonicalize().map_err(|e| format!("{}: {e}", config.cache_dir.display()))?;
        let store = ImageStore::open(&config.cache_dir, config.max_cache_bytes)
            .map_err(|e| format!("image store {}: {e}", config.cache_dir.display()))?;
        let client = RegistryClient::new().map_err(|e| e.to_string())?;
        Ok(Self { config, client: Arc::new(client), store })
    }

    /// The configuration.
    pub fn config(&self) -> &ImagesConfig {
        &self.config
    }

    /// The root of `reference` for `creator`: resolved with the creator's access (so a root in the cache is
    /// handed only to someone its registry lets pull it), unpacked unless it is here already.
    pub async fn root_for(
        &self,
        assets: &dyn AssetFiles,
        creator: &Principal,
        reference: &str,
    ) -> Result<StepImage, ImageProblem> {
        let image = ImageRef::parse(reference).map_err(|e| ImageProblem::BadReference(e.to_string()))?;
        let registry = image.registry.clone();
        let failed =
            |reason: String| ImageProblem::Failed { image: reference.to_owned(), registry: registry.clone(), reason };
        let endpoint = self.endpoint(assets, creator, &image).await.map_err(|e| match e {
            Located::Unknown => ImageProblem::UnknownRegistry { registry: registry.clone() },
            Located::NotFound => ImageProblem::NotFound { image: reference.to_owned(), registry: registry.clone() },
            Located::Failed(reason) => failed(reason),
        })?;
        let manifest = self.client.resolve(&endpoint, &image).await.map_err(|e| match e {
            PullError::NotFound(_) | PullError::Denied(_) => {
                ImageProblem::NotFound { image: reference.to_owned(), registry: registry.clone() }
            }
            other => failed(other.to_string()),
        })?;
        let key = RootKey {
            source: format!("{}/{}", endpoint.url.trim_end_matches('/'), image.repository),
            manifest: manifest.digest.clone(),
        };
        // Pinned to what was resolved: a tag moved meanwhile changes nothing.
        let pinned = ImageRef { digest: Some(manifest.digest), ..image };
        let (client, limits) = (self.client.clone(), self.config.limits());
        let lease = self
            .store
            .ensure(&key, move |root, scratch| async move {
                client.pull(&endpoint, &pinned, &scratch, &root, &limits).await
            })
            .await
            .map_err(|e| match e {
                StoreError::Build(e) => failed(e.to_string()),
                other => failed(other.to_string()),
            })?;
        Ok(StepImage { reference: reference.to_owned(), source: key.source, lease })
    }

    /// Every image in the store.
    pub async fn cached(&self) -> std::io::Result<Vec<StoredRoot>> {
        self.store.roots().await
    }

    /// Removes every image no step runs in; those removed.
    pub async fn prune(&self) -> std::io::Result<Vec<StoredRoot>> {
        self.store.prune().await
    }

    /// Where `image`'s registry is and how `creator` authenticates there.
    async fn endpoint(
        &self,
        assets: &dyn AssetFiles,
        creator: &Principal,
        image: &ImageRef,
    ) -> Result<Endpoint, Located> {
        match assets.pull_access(creator, &image.registry, &image.repository).await {
            Ok(Some(access)) => {
                return Ok(Endpoint {
                    url: access.url,
                    credentials: Credentials::Bearer(access.token),
                    token_realms: Vec::new(),
                });
            }
            Ok(None) => {}
            Err(ReadError::Unavailable(why)) => return Err(Located::Failed(format!("asset-svc: {why}"))),
            Err(_) => return Err(Located::NotFound),
        }
        let entry = self.config.registries.get(&image.registry).ok_or(Located::Unknown)?;
        let credentials = if entry.credentials_file.as_os_str().is_empty() {
            Credentials::Anonymous
        } else {
            read_credentials(&entry.credentials_file).await.map_err(Located::Failed)?
        };
        Ok(Endpoint { url: entry.url.clone(), credentials, token_realms: entry.token_realms.clone() })
    }
}

/// Where an image's registry was found.
enum Located {
    Unknown,
    NotFound,
    Failed(String),
}

/// `user:password` from the first line of `path`.
async fn read_credentials(path: &std::path::Path) -> Result<Credentials, String> {
    let text =
        tokio::fs::read_to_string(path).await.map_err(|e| format!("registry credentials {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    let (user, password) = line
        .split_once(':')
        .ok_or_else(|| format!("registry credentials {}: the first line is not user:password", path.display()))?;
    Ok(Credentials::Basic { user: user.to_owned(), password: password.to_owned() })
}
