//! An image from wherever its blobs come from (an OCI layout on disk, a registry) unpacked into a root: the
//! manifest a reference resolved to (an index gives its linux/amd64 image), the config, then every layer bottom
//! first, each blob read once and checked against its digest and size.

use std::{io::Read, path::Path};

use crate::{
    digest::{Digest, Hashing},
    manifest::{self, Descriptor, Document, ImageConfig, MAX_DOCUMENT_BYTES},
    unpack::{self, Expected, Limits, UnpackError, Used},
};

/// Where an image's blobs are read from.
pub trait BlobSource {
    /// The blob `digest` (its digest is checked by whoever reads it).
    fn open(&self, digest: &Digest) -> std::io::Result<Box<dyn Read + '_>>;
}

/// Why an image could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A manifest, index or config is unusable.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// A blob is missing or cannot be read.
    #[error("blob {digest}: {error}")]
    Blob {
        /// Which.
        digest: Digest,
        /// Why.
        error: std::io::Error,
    },
    /// A small blob (manifest, config) is not what its digest says.
    #[error("blob {expected} holds content whose digest is {found}")]
    DigestMismatch {
        /// What was asked for.
        expected: Digest,
        /// What was read.
        found: Digest,
    },
    /// A layer could not be unpacked.
    #[error("layer {layer} ({digest}): {error}")]
    Layer {
        /// Its index, bottom first.
        layer: usize,
        /// Its blob.
        digest: Digest,
        /// Why.
        error: UnpackError,
    },
}

/// What was unpacked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unpacked {
    /// The image manifest's digest (for an index, its linux/amd64 entry's).
    pub manifest: Digest,
    /// The image's config.
    pub config: ImageConfig,
    /// Bytes of the compressed layers.
    pub compressed_bytes: u64,
    /// Bytes they decompressed to.
    pub unpacked_bytes: u64,
}

/// Reads the small blob `descriptor` names (manifest, index, config), checked against its digest and bounded.
pub fn read_document(source: &dyn BlobSource, digest: &Digest, max: usize) -> Result<Vec<u8>, ImageError> {
    let blob_error = |error| ImageError::Blob { digest: digest.clone(), error };
    let mut reader = Hashing::new(source.open(digest).map_err(blob_error)?, max as u64);
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(blob_error)?;
    let (found, _) = reader.finish();
    if &found != digest {
        return Err(ImageError::DigestMismatch { expected: digest.clone(), found });
    }
    Ok(bytes)
}

/// Unpacks the image whose manifest (or index) is `top` from `source` into the empty directory `root`.
pub fn unpack_image(
    root: &Path,
    source: &dyn BlobSource,
    top: &Descriptor,
    limits: &Limits,
) -> Result<Unpacked, ImageError> {
    let bytes = read_document(source, &top.digest, MAX_DOCUMENT_BYTES)?;
    let (digest, image) = match manifest::parse(&bytes, Some(&top.media_type))? {
        Document::Image(image) => (top.digest.clone(), image),
        Document::Index(entry) => {
            let bytes = read_document(source, &entry.digest, MAX_DOCUMENT_BYTES)?;
            match manifest::parse(&bytes, Some(&entry.media_type))? {
                Document::Image(image) => (entry.digest, image),
                Document::Index(_) => return Err(manifest::ManifestError("an index inside an index".into()).into()),
            }
        }
    };
    let config_bytes = read_document(source, &image.config.digest, MAX_DOCUMENT_BYTES)?;
    let config = manifest::parse_config(&config_bytes, &image)?;
    let declared = image.layers.iter().try_fold(0u64, |sum, l| sum.checked_add(l.blob.size));
    let Some(declared) = declared.filter(|declared| *declared <= limits.image_bytes) else {
        let error = UnpackError::TooLarge(format!("the layers declare more than {} bytes", limits.image_bytes));
        return Err(ImageError::Layer { layer: 0, digest: image.config.digest.clone(), error });
    };
    let mut used = Used::default();
    for (index, (layer, diff_id)) in image.layers.iter().zip(&config.diff_ids).enumerate() {
        let layer_error = |error| ImageError::Layer { layer: index, digest: layer.blob.digest.clone(), error };
        let blob = source
            .open(&layer.blob.digest)
            .map_err(|error| ImageError::Blob { digest: layer.blob.digest.clone(), error })?;
        let expected = Expected {
            blob: layer.blob.digest.clone(),
            size: layer.blob.size,
            diff_id: diff_id.clone(),
            compression: layer.compression,
        };
        unpack::unpack_layer(root, blob, &expected, limits, &mut used).map_err(layer_error)?;
    }
    Ok(Unpacked { manifest: digest, config, compressed_bytes: declared, unpacked_bytes: used.bytes })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::{
        layout::OciLayout,
        testing::{Entry, LayoutBuilder},
    };

    fn two_layer_image(builder: &LayoutBuilder) -> Descriptor {
        let base = builder.layer(&[
            Entry::Dir { path: "etc/" },
            Entry::File { path: "etc/os-release", content: b"ID=test\n", mode: 0o644 },
            Entry::File { path: "bin/tool", content: b"#!/bin/sh\necho tool\n", mode: 0o755 },
            Entry::File { path: "tmp-file", content: b"gone soon", mode: 0o644 },
        ]);
        let top = builder.layer(&[
            Entry::File { path: ".wh.tmp-file", content: b"", mode: 0o644 },
            Entry::File { path: "app/model.txt", content: b"weights", mode: 0o644 },
        ]);
        let run = json!({"Env": ["PATH=/bin"], "Cmd": ["tool"], "WorkingDir": "/app", "User": "1000"});
        builder.image("linux/amd64", &[base, top], run)
    }

    #[test]
    fn an_image_in_a_layout_unpacks_layer_on_layer_with_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = LayoutBuilder::new(&dir.path().join("layout"));
        let amd64 = two_layer_image(&builder);
        let arm64 = builder.image("linux/arm64", &[], json!({}));
        let index = builder.index(&[("linux/arm64", &arm64), ("linux/amd64", &amd64)]);
        builder.tag("v1", &index);
        let layout = OciLayout::open(builder.path()).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();

        let unpacked = unpack_image(&root, &layout, &layout.resolve("v1").unwrap(), &Limits::default()).unwrap();
        assert_eq!(unpacked.manifest, amd64.digest, "the index's linux/amd64 image");
        assert_eq!((unpacked.config.cmd, unpacked.config.working_dir), (vec!["tool".to_owned()], "/app".to_owned()));
        assert_eq!(std::fs::read_to_string(root.join("app/model.txt")).unwrap(), "weights");
        assert!(root.join("bin/tool").exists() && !root.join("tmp-file").exists());
        assert!(unpacked.unpacked_bytes > 0 && unpacked.compressed_bytes > 0);
        assert!(layout.resolve("v2").is_err(), "no image is named v2");
    }

    #[test]
    fn a_blob_that_is_not_what_its_digest_says_stops_the_unpacking() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = LayoutBuilder::new(&dir.path().join("layout"));
        let image = two_layer_image(&builder);
        builder.tag("v1", &image);
        let layout = OciLayout::open(builder.path()).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&read_document(&layout, &image.digest, MAX_DOCUMENT_BYTES).unwrap()).unwrap();
        // The top layer's blob swapped for other gzip content on disk.
        let top: Digest = manifest["layers"][1]["digest"].as_str().unwrap().parse().unwrap();
        let other = builder.layer(&[Entry::File { path: "evil", content: b"x", mode: 0o644 }]);
        let blobs = builder.path().join("blobs/sha256");
        std::fs::copy(blobs.join(other.blob.digest.hex()), blobs.join(top.hex())).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let error = unpack_image(&root, &layout, &image, &Limits::default()).unwrap_err();
        assert!(matches!(error, ImageError::Layer { layer: 1, .. }), "{error}");
        // A manifest that is not what its digest says.
        std::fs::write(blobs.join(image.digest.hex()), b"{}").unwrap();
        let error = unpack_image(&root, &layout, &image, &Limits::default()).unwrap_err();
        assert!(matches!(error, ImageError::DigestMismatch { .. }), "{error}");
    }

    #[test]
    fn an_image_larger_than_the_bound_is_refused_before_any_layer_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let image = two_layer_image(&builder);
        let layout = OciLayout::open(builder.path()).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let tiny = Limits { image_bytes: 10, ..Limits::default() };
        let error = unpack_image(&root, &layout, &image, &tiny).unwrap_err();
        assert!(error.to_string().contains("too large"), "{error}");
        assert!(std::fs::read_dir(&root).unwrap().next().is_none(), "nothing was unpacked");
    }
}
