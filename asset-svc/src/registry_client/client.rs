//! asset-svc's own registry client: tags, manifests and blobs read, manifests deleted, each call with a token
//! minted for `services/asset-svc` on exactly the repository and actions it needs.

use std::{sync::Arc, time::Duration};

use highwind_common::registry::{
    keys::{Claims, RegistryKeys},
    scope::Access,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::RegistryConfig;

/// Every manifest type a registry may hold; 2.8 answers 404 for an OCI manifest not in `Accept`.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How long a pull token lasts: long enough to pull a large image's blobs, short enough to be worth little.
pub const PULL_TOKEN_TTL: Duration = Duration::from_secs(900);

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or failed.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// The repository, tag or blob does not exist.
    #[error("not in the registry: {0}")]
    NotFound(String),
    /// The registry sent something this client will not read (too large, not JSON, wrong digest).
    #[error("the registry sent an unusable answer: {0}")]
    Unusable(String),
}

/// A manifest or index as stored.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `sha256:…` of the bytes.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The parsed JSON.
    pub body: serde_json::Value,
}

/// The registry client.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    config: Arc<RegistryConfig>,
    keys: Arc<RegistryKeys>,
}

impl RegistryClient {
    /// A client for the registry of `config`, signing with the keys in its `keys_dir`.
    pub fn new(config: RegistryConfig) -> Result<Self, String> {
        let keys = RegistryKeys::open(&config.keys_dir).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { http, config: Arc::new(config), keys: Arc::new(keys) })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    async fn token(&self, repository: &str, actions: &[&str]) -> Result<String, RegistryError> {
        self.mint(&[Access {
            kind: "repository".into(),
            name: repository.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }])
        .await
    }

    /// A one-minute token of `services/asset-svc` granting `access`.
    async fn mint(&self, access: &[Access]) -> Result<String, RegistryError> {
        self.mint_for("services/asset-svc", access, PULL_TOKEN_TTL.min(Duration::from_secs(60))).await
    }

    /// A token of `subject` that pulls `repository` and nothing else, lasting [`PULL_TOKEN_TTL`]: what a service
    /// pulling an image on a principal's behalf presents (the caller decided the principal may pull).
    pub async fn pull_token(&self, subject: &str, repository: &str) -> Result<String, RegistryError> {
        let access =
            [Access { kind: "repository".into(), name: repository.to_owned(), actions: vec!["pull".to_owned()] }];
        self.mint_for(subject, &access, PULL_TOKEN_TTL).await
    }

    async fn mint_for(&self, subject: &str, access: &[Access], ttl: Duration) -> Result<String, RegistryError> {
        let claims = Claims { issuer: &self.config.issuer, service: &self.config.service, subject, access, ttl };
        self.keys.mint(&claims).await.map_err(|e| RegistryError::Unavailable(e.to_string()))
    }

    async fn send(
        &self,
        method: Method,
        repository: &str,
        path: &str,
        actions: &[&str],
    ) -> Result<reqwest::Response, RegistryError> {
        let url = format!("{}/v2/{repository}/{path}", self.config.url.trim_end_matches('/'));
        let response = self
            .http
            .request(method, &url)
            .bearer_auth(self.token(repository, actions).await?)
            .header(reqwest::header::ACCEPT, MANIFEST_TYPES.join(", "))
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound(format!("{repository}/{path}"))),
            s => Err(RegistryError::Unavailable(format!("{path}: {s}"))),
        }
    }

    /// Reads at most `max_manifest_bytes` of a response.
    async fn bounded(&self, mut response: reqwest::Response) -> Result<Vec<u8>, RegistryError> {
        let limit = self.config.max_manifest_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(RegistryError::Unusable(format!("larger than {limit} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| RegistryError::Unavailable(e.to_string()))? {
            if bytes.len() + chunk.len() > limit {
                return Err(RegistryError::Unusable(format!("larger than {limit} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Every tag of `repository` (none when it does not exist yet).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let response = match self.send(Method::GET, repository, "tags/list", &["pull"]).await {
            Ok(response) => response,
            Err(RegistryError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let body: serde_json::Value = serde_json::from_slice(&self.bounded(response).await?)
            .map_err(|e| RegistryError::Unusable(format!("tag list: {e}")))?;
        Ok(body["tags"]
            .as_array()
            .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// The manifest or index `reference` (a tag or digest) of `repository`; its digest is computed from the bytes.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let response = self.send(Method::GET, repository, &format!("manifests/{reference}"), &["pull"]).await?;
        let header_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = self.bounded(response).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(RegistryError::Unusable(format!("{reference} has content hashing to {digest}")));
        }
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Unusable(format!("manifest: {e}")))?;
        let media_type = body["mediaType"].as_str().map_or(header_type, str::to_owned);
        Ok(Manifest { digest, media_type, body })
    }

    /// The JSON blob `digest` of `repository` (an image config).
    pub async fn json_blob(&self, repository: &str, digest: &str) -> Result<serde_json::Value, RegistryError> {
        let response = self.send(Method::GET, repository, &format!("blobs/{digest}"), &["pull"]).await?;
        let bytes = self.bounded(response).await?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&bytes))) != digest {
            return Err(RegistryError::Unusable(format!("blob {digest} does not hash to its digest")));
        }
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Unusable(format!("config: {e}")))
    }

    /// Every repository the registry holds (`registry:catalog:*`), following its pages.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        let token =
            self.mint(&[Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }]).await?;
        let mut all: Vec<String> = Vec::new();
        loop {
            let mut url = format!("{}/v2/_catalog?n=1000", self.config.url.trim_end_matches('/'));
            if let Some(last) = all.last() {
                url.push_str(&format!("&last={last}"));
            }
            let response = self
                .http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            if !response.status().is_success() {
                return Err(RegistryError::Unavailable(format!("catalog: {}", response.status())));
            }
            let body: serde_json::Value = serde_json::from_slice(&self.bounded(response).await?)
                .map_err(|e| RegistryError::Unusable(format!("catalog: {e}")))?;
            let page: Vec<String> = body["repositories"]
                .as_array()
                .map(|r| r.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let full = page.len() >= 1000;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Deletes manifest `digest` of `repository` (and with it every tag pointing at it).
    pub async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<(), RegistryError> {
        self.send(Method::DELETE, repository, &format!("manifests/{digest}"), &["pull", "delete"]).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A registry that answers every request with `body`, with or without a Content-Length.
    async fn serving(body: Vec<u8>, with_length: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = if with_length {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n".to_owned()
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn client(url: String, keys: &std::path::Path) -> RegistryClient {
        let config =
            RegistryConfig { url, keys_dir: keys.to_path_buf(), max_manifest_bytes: 1024, ..Default::default() };
        RegistryClient::new(config).expect("client")
    }

    #[tokio::test]
    async fn manifests_over_the_cap_or_not_matching_their_digest_are_refused() {
        let keys = tempfile::tempdir().expect("tempdir");
        let huge = format!("{{\"schemaVersion\":2,\"annotations\":{{\"x\":\"{}\"}}}}", "a".repeat(5000)).into_bytes();
        for with_length in [true, false] {
            let registry = client(serving(huge.clone(), with_length).await, keys.path());
            let refused = registry.manifest("highwind/a/b", "v1").await.expect_err("too large");
            assert!(
                matches!(refused, RegistryError::Unusable(ref why) if why.contains("larger than 1024")),
                "{refused}"
            );
        }
        let small = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
        let registry = client(serving(small.clone(), true).await, keys.path());
        let read = registry.manifest("highwind/a/b", "v1").await.expect("a small manifest reads");
        assert_eq!(read.digest, format!("sha256:{}", hex::encode(Sha256::digest(&small))));
        let forged = format!("sha256:{}", "0".repeat(64));
        let refused = registry.manifest("highwind/a/b", &forged).await.expect_err("wrong digest");
        assert!(matches!(refused, RegistryError::Unusable(_)), "{refused}");
    }
}
