//! What a tag holds: platforms (from the config of an image, from the entries of an index), compressed size,
//! creation time, and whether linux/amd64 — the only platform the platform deploys — is there, with the digest
//! that gets pinned for it.

use chrono::{DateTime, Utc};

use super::client::{Manifest, RegistryClient, RegistryError};

/// Most entries of an index looked at.
const MAX_INDEX_ENTRIES: usize = 64;

/// One inspected image or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Manifest or index digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// `os/architecture[/variant]`, in the image's order.
    pub platforms: Vec<String>,
    /// Config plus layers (of the amd64 image, for an index).
    pub compressed_size: u64,
    /// The config's `created`, if any.
    pub created: Option<DateTime<Utc>>,
    /// The linux/amd64 manifest's digest; empty when there is none.
    pub deployable_digest: String,
    /// Why it cannot be deployed; empty when it can.
    pub not_deployable_reason: String,
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

fn platform_of(value: &serde_json::Value) -> String {
    let os = value["os"].as_str().unwrap_or("unknown");
    let architecture = value["architecture"].as_str().unwrap_or("unknown");
    match value["variant"].as_str() {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    }
}

fn size_of(manifest: &serde_json::Value) -> u64 {
    let config = manifest["config"]["size"].as_u64().unwrap_or(0);
    let layers: u64 =
        manifest["layers"].as_array().map(|l| l.iter().filter_map(|d| d["size"].as_u64()).sum()).unwrap_or(0);
    config + layers
}

/// Inspects `reference` (tag or digest) of `repository`.
pub async fn inspect(client: &RegistryClient, repository: &str, reference: &str) -> Result<ImageInfo, RegistryError> {
    let manifest = client.manifest(repository, reference).await?;
    if is_index(&manifest.media_type) {
        return inspect_index(client, repository, manifest).await;
    }
    let config_digest = manifest.body["config"]["digest"].as_str().unwrap_or_default().to_owned();
    if !config_digest.starts_with("sha256:") {
        return Err(RegistryError::Unusable(format!("{reference}: no image config")));
    }
    let config = client.json_blob(repository, &config_digest).await?;
    let platform = platform_of(&config);
    let amd64 = platform == "linux/amd64";
    Ok(ImageInfo {
        compressed_size: size_of(&manifest.body),
        created: created(&config),
        deployable_digest: if amd64 { manifest.digest.clone() } else { String::new() },
        not_deployable_reason: if amd64 { String::new() } else { not_amd64(std::slice::from_ref(&platform)) },
        platforms: vec![platform],
        digest: manifest.digest,
        media_type: manifest.media_type,
    })
}

async fn inspect_index(client: &RegistryClient, repository: &str, index: Manifest) -> Result<ImageInfo, RegistryError> {
    let entries = index.body["manifests"].as_array().cloned().unwrap_or_default();
    // Attestations and other artifacts ride in indexes as `unknown/unknown` entries: not platforms.
    let images: Vec<&serde_json::Value> = entries
        .iter()
        .take(MAX_INDEX_ENTRIES)
        .filter(|e| e["platform"].is_object() && platform_of(&e["platform"]) != "unknown/unknown")
        .collect();
    let platforms: Vec<String> = images.iter().map(|e| platform_of(&e["platform"])).collect();
    let amd64 = images.iter().find(|e| platform_of(&e["platform"]) == "linux/amd64");
    let mut info = ImageInfo {
        digest: index.digest,
        media_type: index.media_type,
        platforms: platforms.clone(),
        compressed_size: 0,
        created: None,
        deployable_digest: String::new(),
        not_deployable_reason: not_amd64(&platforms),
    };
    if let Some(entry) = amd64 {
        let digest = entry["digest"].as_str().unwrap_or_default();
        let manifest = client.manifest(repository, digest).await?;
        if is_index(&manifest.media_type) {
            info.not_deployable_reason = "the index's linux/amd64 entry is another index, not an image".into();
            return Ok(info);
        }
        let config_digest = manifest.body["config"]["digest"].as_str().unwrap_or_default().to_owned();
        let config = client.json_blob(repository, &config_digest).await?;
        info.compressed_size = size_of(&manifest.body);
        info.created = created(&config);
        // The index only claims a platform; the image's own config says what it is.
        let actual = platform_of(&config);
        if actual == "linux/amd64" {
            info.deployable_digest = manifest.digest;
            info.not_deployable_reason = String::new();
        } else {
            info.not_deployable_reason =
                format!("the index's linux/amd64 entry is an image for {actual}; only linux/amd64 images are deployed");
        }
    }
    Ok(info)
}

fn created(config: &serde_json::Value) -> Option<DateTime<Utc>> {
    config["created"].as_str().and_then(|c| DateTime::parse_from_rfc3339(c).ok()).map(|t| t.with_timezone(&Utc))
}

fn not_amd64(platforms: &[String]) -> String {
    let found = if platforms.is_empty() { "no platform".to_owned() } else { platforms.join(", ") };
    format!("no linux/amd64 image (found {found}); only linux/amd64 images are deployed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_read_os_architecture_and_variant() {
        assert_eq!(
            platform_of(&serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
            "linux/arm64/v8"
        );
        assert_eq!(platform_of(&serde_json::json!({"os": "linux", "architecture": "amd64"})), "linux/amd64");
        assert!(is_index("application/vnd.docker.distribution.manifest.list.v2+json"));
        assert!(!is_index("application/vnd.oci.image.manifest.v1+json"));
        assert!(not_amd64(&["linux/arm64/v8".into()]).contains("found linux/arm64/v8"));
    }
}
