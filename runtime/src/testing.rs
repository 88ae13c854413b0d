//! Building OCI image layouts for tests: real gzip layers of the files a test names, configs, manifests and
//! indexes, written as `skopeo` and registries expect them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use crate::{digest::Digest, manifest::Descriptor, unpack::Compression};

/// One entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    File { path: &'a str, content: &'a [u8], mode: u32 },
    Dir { path: &'a str },
    Symlink { path: &'a str, target: &'a str },
    Hardlink { path: &'a str, target: &'a str },
}

/// An OCI image layout being written in a directory.
#[derive(Debug)]
pub struct LayoutBuilder {
    dir: PathBuf,
    refs: Vec<serde_json::Value>,
}

/// A layer as written: its blob and the digest of its tar stream.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    pub blob: Descriptor,
    pub diff_id: Digest,
}

fn json(descriptor: &Descriptor) -> serde_json::Value {
    serde_json::json!({"mediaType": descriptor.media_type, "digest": descriptor.digest.to_string(), "size": descriptor.size})
}

impl LayoutBuilder {
    /// A new layout in `dir` (made if missing).
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self { dir: dir.to_path_buf(), refs: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `content` as a blob.
    pub fn blob(&self, media_type: &str, content: &[u8]) -> Descriptor {
        let digest = Digest::of(content);
        std::fs::write(self.dir.join("blobs/sha256").join(digest.hex()), content).unwrap();
        Descriptor { media_type: media_type.into(), digest, size: content.len() as u64 }
    }

    /// A gzip layer of `entries`.
    pub fn layer(&self, entries: &[Entry<'_>]) -> BuiltLayer {
        self.layer_compressed(entries, Compression::Gzip)
    }

    /// A layer of `entries`, compressed as `compression` says.
    pub fn layer_compressed(&self, entries: &[Entry<'_>], compression: Compression) -> BuiltLayer {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(1_700_000_000);
            match entry {
                Entry::File { path, content, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, path, *content).unwrap();
                }
                Entry::Dir { path } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
                Entry::Symlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Entry::Hardlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_mode(0o644);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
            }
        }
        let tar = builder.into_inner().unwrap();
        let blob = match compression {
            Compression::None => self.blob("application/vnd.oci.image.layer.v1.tar", &tar),
            Compression::Gzip => {
                let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gzip.write_all(&tar).unwrap();
                self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gzip.finish().unwrap())
            }
            Compression::Zstd => {
                let zstd =
                    ruzstd::encoding::compress_to_vec(tar.as_slice(), ruzstd::encoding::CompressionLevel::Fastest);
                self.blob("application/vnd.oci.image.layer.v1.tar+zstd", &zstd)
            }
        };
        BuiltLayer { blob, diff_id: Digest::of(&tar) }
    }

    /// An image for `os/architecture` of `layers` (bottom first) whose config's `config` is `run`.
    pub fn image(&self, platform: &str, layers: &[BuiltLayer], run: serde_json::Value) -> Descriptor {
        let (os, architecture) = platform.split_once('/').unwrap();
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config = serde_json::json!({
            "architecture": architecture, "os": os, "config": run,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.blob("application/vnd.oci.image.config.v1+json", config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": json(&config),
            "layers": layers.iter().map(|l| json(&l.blob)).collect::<Vec<_>>(),
        });
        self.blob("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes())
    }

    /// An index over `images`, each with its `os/architecture`.
    pub fn index(&self, images: &[(&str, &Descriptor)]) -> Descriptor {
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|(platform, image)| {
                let (os, architecture) = platform.split_once('/').unwrap();
                let mut entry = json(image);
                entry["platform"] = serde_json::json!({"os": os, "architecture": architecture});
                entry
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
        });
        self.blob("application/vnd.oci.image.index.v1+json", index.to_string().as_bytes())
    }

    /// Names `descriptor` `name` in the layout's index.json.
    pub fn tag(&mut self, name: &str, descriptor: &Descriptor) {
        let mut entry = json(descriptor);
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        self.refs.push(entry);
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.refs});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}
