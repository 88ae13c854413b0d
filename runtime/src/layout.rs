//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), as `skopeo copy … oci:DIR:REF`
//! and image builders write it: a source of blobs, and of the images its index names.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    digest::Digest,
    image::BlobSource,
    manifest::{Descriptor, MAX_DOCUMENT_BYTES},
};

/// The annotation naming an image in a layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl OciLayout {
    /// The layout in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let marker = std::fs::read_to_string(dir.join("oci-layout"))?;
        if !marker.contains("imageLayoutVersion") {
            return Err(std::io::Error::other("not an OCI image layout (oci-layout)"));
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The manifest or index the layout's index names `name`.
    pub fn resolve(&self, name: &str) -> std::io::Result<Descriptor> {
        let mut bytes = Vec::new();
        std::fs::File::open(self.dir.join("index.json"))?
            .take(MAX_DOCUMENT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
        let index: RawIndex = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        let entry = index
            .manifests
            .into_iter()
            .find(|m| m.annotations.get(REF_NAME).is_some_and(|n| n == name))
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no image named {name:?}")))?;
        let digest = entry.digest.parse().map_err(std::io::Error::other)?;
        Ok(Descriptor { media_type: entry.media_type, digest, size: entry.size })
    }
}

impl BlobSource for OciLayout {
    fn open(&self, digest: &Digest) -> std::io::Result<Box<dyn Read + '_>> {
        // A checked digest is 64 hex digits: it names a file in blobs/sha256 and nothing else.
        Ok(Box::new(std::fs::File::open(self.dir.join("blobs/sha256").join(digest.hex()))?))
    }
}
