//! The OCI registry holding Docker Repo assets' images: where it is (`RegistryConfig`), how asset-svc talks to it
//! (`client`, with tokens it mints for itself from the platform's registry keys) and what an image is made of
//! (`inspect`: platforms, sizes, whether linux/amd64 can be deployed).

pub mod client;
pub mod inspect;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The registry (`HIGHWIND__ASSET__REGISTRY__<KEY>`); Docker Repo assets have no images while `url` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// How asset-svc reaches the registry's API, e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// The registry as users name it in image URIs (`registry.example.com`); empty: `url`'s host and port.
    pub host: String,
    /// The registry token signing keys' directory (the same as the gateway's `registry.keys_dir`).
    pub keys_dir: PathBuf,
    /// The registry's `auth.token.service`.
    pub service: String,
    /// The registry's `auth.token.issuer`.
    pub issuer: String,
    /// First path component of every asset's repository.
    pub repository_prefix: String,
    /// Largest manifest, index or config read.
    pub max_manifest_bytes: usize,
    /// Delete pushed images without a linux/amd64 variant instead of keeping them as not deployable.
    pub delete_non_amd64: bool,
    /// How often every repository is reconciled with the recorded versions (what webhooks missed).
    pub reconcile_seconds: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            host: String::new(),
            keys_dir: "registry-keys".into(),
            service: "highwind-registry".into(),
            issuer: "highwind".into(),
            repository_prefix: "highwind".into(),
            max_manifest_bytes: 4 * 1024 * 1024,
            delete_non_amd64: false,
            reconcile_seconds: 60,
        }
    }
}

impl RegistryConfig {
    /// The registry host (and port) of image URIs.
    pub fn public_host(&self) -> String {
        if !self.host.is_empty() {
            return self.host.clone();
        }
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        rest.trim_end_matches('/').to_owned()
    }

    /// The repository of the asset `asset_id` owned by `owner`: `<prefix>/<owner>/<asset id>`.
    pub fn repository(&self, owner: &str, asset_id: uuid::Uuid) -> String {
        format!("{}/{}/{asset_id}", self.repository_prefix, highwind_common::registry::scope::owner_component(owner))
    }
}
