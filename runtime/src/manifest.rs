//! Manifests, indexes and image configs (OCI and Docker v2 schema 2) read as untrusted JSON: bounded, every digest
//! checked, only the linux/amd64 image of an index taken, only the layer types we can unpack accepted, and no
//! foreign layers (`urls`: fetching them would let an image make the server call any address).

use serde::Deserialize;

use crate::{digest::Digest, unpack::Compression};

/// Largest manifest, index or config read.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;
/// Most entries of an index, most layers of an image.
const MAX_ENTRIES: usize = 128;

/// Every manifest type asked for (a registry answers 404 for a type not in `Accept`).
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A pointer to content, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob.
    pub blob: Descriptor,
    /// How it is compressed.
    pub compression: Compression,
}

/// What a manifest reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A multi-platform index: the linux/amd64 image's descriptor.
    Index(Descriptor),
    /// One image.
    Image(ImageManifest),
}

/// One image's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

/// What an image says about running it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ImageConfig {
    /// The digests of the layers' decompressed streams, bottom first.
    pub diff_ids: Vec<Digest>,
    /// `KEY=value` variables.
    pub env: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The default arguments.
    pub cmd: Vec<String>,
    /// The working directory, empty for `/`.
    pub working_dir: String,
    /// The user, empty for root.
    pub user: String,
}

/// Why a manifest, index or config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

fn error(why: impl Into<String>) -> ManifestError {
    ManifestError(why.into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
}

impl RawDescriptor {
    fn checked(self) -> Result<Descriptor, ManifestError> {
        if !self.urls.is_empty() {
            return Err(error("a foreign layer (urls) is not fetched"));
        }
        let digest = self.digest.parse().map_err(|e: crate::digest::DigestError| error(e.to_string()))?;
        Ok(Descriptor { media_type: self.media_type, digest, size: self.size })
    }
}

/// Reads the manifest or index `bytes`, which the registry served as `content_type` (the document's own
/// `mediaType` when absent).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(error(format!("a manifest larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    let raw: RawDocument = serde_json::from_slice(bytes).map_err(|e| error(format!("not a manifest: {e}")))?;
    let media_type = content_type.filter(|t| !t.is_empty()).unwrap_or(&raw.media_type).to_owned();
    let is_index = media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json");
    if is_index || (media_type.is_empty() && raw.manifests.is_some()) {
        return index(raw.manifests.unwrap_or_default()).map(Document::Index);
    }
    let config = raw.config.ok_or_else(|| error("an image manifest without a config"))?.checked()?;
    let raw_layers = raw.layers.unwrap_or_default();
    if raw_layers.len() > MAX_ENTRIES {
        return Err(error(format!("more than {MAX_ENTRIES} layers")));
    }
    let mut layers = Vec::with_capacity(raw_layers.len());
    for raw in raw_layers {
        let blob = raw.checked()?;
        let compression = compression(&blob.media_type)?;
        layers.push(Layer { blob, compression });
    }
    Ok(Document::Image(ImageManifest { config, layers }))
}

/// The linux/amd64 entry of an index (attestations, `unknown/unknown`, are not images).
fn index(entries: Vec<RawDescriptor>) -> Result<Descriptor, ManifestError> {
    if entries.len() > MAX_ENTRIES {
        return Err(error(format!("an index of more than {MAX_ENTRIES} entries")));
    }
    let mut platforms = Vec::new();
    for entry in entries {
        let platform = entry.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)).unwrap_or_default();
        if platform == "linux/amd64" {
            let descriptor = entry.checked()?;
            if descriptor.media_type.ends_with("index.v1+json") || descriptor.media_type.ends_with("list.v2+json") {
                return Err(error("an index inside an index"));
            }
            return Ok(descriptor);
        }
        if !platform.is_empty() && platform != "unknown/unknown" {
            platforms.push(platform);
        }
    }
    Err(error(format!(
        "no linux/amd64 image (the index has {})",
        if platforms.is_empty() { "none".to_owned() } else { platforms.join(", ") }
    )))
}

/// How a layer of `media_type` is compressed; the types that are not tar layers are refused.
fn compression(media_type: &str) -> Result<Compression, ManifestError> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip" | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            Ok(Compression::Gzip)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(Compression::Zstd),
        other => Err(error(format!("a layer of type {other:?}, which is not unpacked (gzip, zstd or plain tar)"))),
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    config: Option<RawRunConfig>,
    rootfs: RawRootfs,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    diff_ids: Vec<String>,
}

/// Reads an image config, which must be for linux/amd64 and name one diff_id per layer of `manifest`.
pub fn parse_config(bytes: &[u8], manifest: &ImageManifest) -> Result<ImageConfig, ManifestError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(error(format!("a config larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| error(format!("not an image config: {e}")))?;
    if (raw.os.as_str(), raw.architecture.as_str()) != ("linux", "amd64") {
        return Err(error(format!("an image for {}/{}, not linux/amd64", raw.os, raw.architecture)));
    }
    let diff_ids = raw
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.parse().map_err(|e: crate::digest::DigestError| error(e.to_string())))
        .collect::<Result<Vec<Digest>, _>>()?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(error(format!("{} layers but {} diff_ids", manifest.layers.len(), diff_ids.len())));
    }
    let run =
        raw.config.unwrap_or(RawRunConfig { env: None, entrypoint: None, cmd: None, working_dir: None, user: None });
    Ok(ImageConfig {
        diff_ids,
        env: run.env.unwrap_or_default(),
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        working_dir: run.working_dir.unwrap_or_default(),
        user: run.user.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest(layer_type: &str) -> serde_json::Value {
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c'), "size": 10},
            "layers": [{"mediaType": layer_type, "digest": digest('1'), "size": 20}]
        })
    }

    fn bytes(value: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap_or_default()
    }

    #[test]
    fn an_index_gives_its_linux_amd64_image_and_nothing_else() {
        let entry = |os: &str, arch: &str, d: char| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(d), "size": 5,
                "platform": {"os": os, "architecture": arch}
            })
        };
        let index = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry("linux", "arm64", 'a'), entry("unknown", "unknown", 'b'), entry("linux", "amd64", 'd')]});
        let Ok(Document::Index(chosen)) = parse(&bytes(&index), None) else { panic!("an index") };
        assert_eq!(chosen.digest.to_string(), digest('d'));
        let arm_only = json!({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry("linux", "arm64", 'a')]});
        let refused = parse(&bytes(&arm_only), None).expect_err("no amd64");
        assert!(refused.0.contains("linux/arm64"), "{refused}");
    }

    #[test]
    fn an_image_manifest_names_its_config_and_layers_and_refuses_what_is_not_unpacked() {
        let Ok(Document::Image(image)) = parse(&bytes(&manifest("application/vnd.oci.image.layer.v1.tar+gzip")), None)
        else {
            panic!("an image")
        };
        assert_eq!((image.layers.len(), image.layers[0].compression), (1, Compression::Gzip));
        let Ok(Document::Image(zstd)) = parse(&bytes(&manifest("application/vnd.oci.image.layer.v1.tar+zstd")), None)
        else {
            panic!("zstd layers are read")
        };
        assert_eq!(zstd.layers[0].compression, Compression::Zstd);
        assert!(parse(&bytes(&manifest("application/vnd.oci.image.layer.v1.tar+bzip2")), None).is_err());
        let mut foreign = manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        foreign["layers"][0]["urls"] = json!(["http://169.254.169.254/"]);
        assert!(parse(&bytes(&foreign), None).expect_err("foreign").0.contains("foreign"));
        let mut bad_digest = manifest("application/vnd.oci.image.layer.v1.tar");
        bad_digest["layers"][0]["digest"] = json!("sha256:../../etc/passwd");
        assert!(parse(&bytes(&bad_digest), None).is_err());
        assert!(parse(&vec![b' '; MAX_DOCUMENT_BYTES + 1], None).is_err());
    }

    #[test]
    fn a_config_must_be_linux_amd64_with_one_diff_id_per_layer() {
        let Ok(Document::Image(image)) = parse(&bytes(&manifest("application/vnd.oci.image.layer.v1.tar")), None)
        else {
            panic!("an image")
        };
        let config = |arch: &str, ids: Vec<String>| {
            bytes(&json!({"os": "linux", "architecture": arch, "rootfs": {"type": "layers", "diff_ids": ids},
                "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/work", "User": "app"}}))
        };
        let read = parse_config(&config("amd64", vec![digest('e')]), &image).expect("a config");
        assert_eq!(
            (read.env, read.cmd, read.working_dir, read.user),
            (vec!["PATH=/bin".to_owned()], vec!["sh".to_owned()], "/work".to_owned(), "app".to_owned())
        );
        assert!(parse_config(&config("arm64", vec![digest('e')]), &image).is_err());
        assert!(parse_config(&config("amd64", vec![]), &image).is_err());
    }
}
