//! Pulling an image from a registry (the distribution API, `/v2/`): manifests with every type in `Accept`, each
//! document bounded and checked against its digest, blobs streamed to a scratch OCI layout within their declared
//! sizes, then unpacked from there (`image::unpack_image` checks every digest again). Registries that answer 401
//! are asked the way Docker asks them: a bearer token from the realm their challenge names, with the credentials
//! given (sent only to a realm on the registry's own host, or one the caller allows), or basic auth.

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use tokio::io::AsyncWriteExt;

use crate::{
    digest::Digest,
    image::{self, ImageError, Unpacked},
    layout::OciLayout,
    manifest::{self, Descriptor, Document, MANIFEST_TYPES, MAX_DOCUMENT_BYTES},
    reference::ImageRef,
    unpack::Limits,
};

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
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
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

/// A registry client: one HTTP client and its tokens, shared by every pull.
pub struct RegistryClient {
    http: reqwest::Client,
    /// Bearer tokens by (registry, scope, whose credentials), until they expire.
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

/// Whose token for what: a token one set of credentials obtained is never used with another.
type TokenKey = (String, String, String);

impl Credentials {
    /// Who these credentials are, for the token cache: a digest, never the password itself.
    fn identity(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".to_owned(),
            Self::Basic { user, password } => Digest::of(format!("{user}\0{password}").as_bytes()).to_string(),
        }
    }
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
        for layer in &parsed.layers {
            self.blob(endpoint, repository, &layer.blob, scratch).await?;
        }
        let (scratch, root, limits) = (scratch.to_path_buf(), root.to_path_buf(), *limits);
        tokio::task::spawn_blocking(move || {
            let layout = OciLayout::open(&scratch)?;
            Ok::<_, PullError>(image::unpack_image(&root, &layout, &top, &limits)?)
        })
        .await
        .map_err(|e| PullError::Io(std::io::Error::other(e)))?
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

    /// GET with whatever authentication the registry asks for; a success, or the error its status means. A token
    /// the registry turns down is dropped and the challenge answered again, once.
    async fn get(&self, target: &Target<'_>) -> Result<reqwest::Response, PullError> {
        let url = format!("{}/v2/{}", target.endpoint.url.trim_end_matches('/'), target.path);
        let url = reqwest::Url::parse(&url).map_err(|e| PullError::Unavailable(format!("registry URL: {e}")))?;
        let scope = format!("repository:{}:pull", target.repository);
        let key = (target.endpoint.url.clone(), scope.clone(), target.endpoint.credentials.identity());
        let cached = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&key).filter(|(_, until)| *until > Instant::now()).map(|(t, _)| t.clone()));
        let mut auth = cached.map(Auth::Bearer);
        let mut answered = false;
        for _ in 0..3 {
            let response = self
                .send_following(&url, target.accept.as_deref(), auth.as_ref(), &target.endpoint.credentials)
                .await?;
            match response.status() {
                status if status.is_success() => return Ok(response),
                // A challenge counts only from the registry itself, not from wherever a redirect led.
                StatusCode::UNAUTHORIZED if !answered && origin(response.url()) == origin(&url) => {
                    if let Ok(mut tokens) = self.tokens.lock() {
                        tokens.remove(&key);
                    }
                    let challenge = response
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    auth = Some(self.answer(target.endpoint, &challenge, &scope, &key).await?);
                    answered = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(PullError::Denied(target.path.clone())),
                StatusCode::NOT_FOUND => return Err(PullError::NotFound(target.path.clone())),
                status => return Err(PullError::Unavailable(format!("{} answered {status}", target.path))),
            }
        }
        Err(PullError::Denied(target.path.clone()))
    }

    /// Sends a GET of `url`, following redirects (blobs live in object stores) at most five times ourselves: only
    /// to http(s), never from https down to http, and with credentials only while the origin stays the
    /// registry's.
    async fn send_following(
        &self,
        url: &reqwest::Url,
        accept: Option<&str>,
        auth: Option<&Auth>,
        credentials: &Credentials,
    ) -> Result<reqwest::Response, PullError> {
        let registry = origin(url);
        let mut next = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.http.get(next.clone());
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if origin(&next) == registry {
                request = match (auth, credentials) {
                    (Some(Auth::Bearer(token)), _) => request.bearer_auth(token),
                    (Some(Auth::Basic), Credentials::Basic { user, password }) => {
                        request.basic_auth(user, Some(password))
                    }
                    _ => request,
                };
            }
            let response = request.send().await.map_err(unavailable)?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| next.join(l).ok())
                .ok_or_else(|| PullError::Unavailable("a redirect without a usable Location".into()))?;
            let downgrade = next.scheme() == "https" && location.scheme() != "https";
            if !matches!(location.scheme(), "http" | "https") || downgrade {
                return Err(PullError::Unavailable("a redirect to a scheme that is not followed".into()));
            }
            next = location;
        }
        Err(PullError::Unavailable(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// How to answer `challenge`: basic auth, or a bearer token from its realm (cached under `key`).
    async fn answer(
        &self,
        endpoint: &Endpoint,
        challenge: &str,
        scope: &str,
        key: &TokenKey,
    ) -> Result<Auth, PullError> {
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return Ok(Auth::Basic);
        };
        let params = challenge_params(params);
        let realm =
            params.get("realm").ok_or_else(|| PullError::Unavailable("a token challenge without a realm".into()))?;
        let realm_url = reqwest::Url::parse(realm).map_err(|e| PullError::Unavailable(format!("token realm: {e}")))?;
        let registry_url =
            reqwest::Url::parse(&endpoint.url).map_err(|e| PullError::Unavailable(format!("registry URL: {e}")))?;
        if !matches!(realm_url.scheme(), "http" | "https")
            || (registry_url.scheme() == "https" && realm_url.scheme() != "https")
        {
            return Err(PullError::Unavailable("a token realm that is not https like its registry".into()));
        }
        // Credentials go to the registry's own origin, or to a realm the configuration names (origin and path).
        let trusted =
            origin(&realm_url) == origin(&registry_url)
                || endpoint.token_realms.iter().filter_map(|allowed| reqwest::Url::parse(allowed).ok()).any(
                    |allowed| origin(&allowed) == origin(&realm_url) && realm_url.path().starts_with(allowed.path()),
                );
        let mut token_url = realm_url.clone();
        token_url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = params.get("service") {
            token_url.query_pairs_mut().append_pair("service", service);
        }
        let mut request = self.http.get(token_url);
        if let (true, Credentials::Basic { user, password }) = (trusted, &endpoint.credentials) {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(PullError::Denied(format!("a token for {scope}")));
        }
        let body: serde_json::Value = serde_json::from_slice(&read_bounded(response, 64 << 10, "a token").await?)
            .map_err(|e| PullError::Unavailable(format!("token realm: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| PullError::Unavailable("the token realm sent no token".into()))?
            .to_owned();
        let lifetime = body["expires_in"].as_u64().unwrap_or(60).clamp(1, 3_600);
        if let Ok(mut tokens) = self.tokens.lock() {
            // Bounded: expired tokens go first; past the bound, the cache starts over.
            let now = Instant::now();
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= MAX_CACHED_TOKENS {
                tokens.clear();
            }
            let until = now + Duration::from_secs(lifetime.saturating_sub(10).max(1));
            tokens.insert(key.clone(), (token.clone(), until));
        }
        Ok(Auth::Bearer(token))
    }
}

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// Most tokens kept.
const MAX_CACHED_TOKENS: usize = 1_000;

/// A URL's origin: scheme, host and port.
fn origin(url: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_owned(), url.host_str().map(str::to_owned), url.port_or_known_default())
}

/// A transport error, without the URL (which may be a signed object-store URL after a redirect).
fn unavailable(error: reqwest::Error) -> PullError {
    PullError::Unavailable(error.without_url().to_string())
}

/// The tag or digest a request names `image` by: the digest when pinned.
fn reference_of(image: &ImageRef) -> String {
    match (&image.digest, &image.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_owned(),
    }
}

/// How a request authenticates.
enum Auth {
    Bearer(String),
    Basic,
}

/// The `key="value"` parameters of a challenge.
fn challenge_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, next)) => (value.to_owned(), next),
                None => (quoted.to_owned(), ""),
            },
            None => match after.split_once(',') {
                Some((value, next)) => (value.trim().to_owned(), next),
                None => (after.trim().to_owned(), ""),
            },
        };
        params.insert(key, value);
        rest = next.trim_start_matches(',').trim();
    }
    params
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_names_its_realm_service_and_scope() {
        let params = challenge_params(
            r#"realm="http://127.0.0.1:8080/registry/token",service="highwind-registry",scope="repository:a/b:pull""#,
        );
        assert_eq!(params.get("realm").map(String::as_str), Some("http://127.0.0.1:8080/registry/token"));
        assert_eq!(params.get("service").map(String::as_str), Some("highwind-registry"));
        assert_eq!(params.get("scope").map(String::as_str), Some("repository:a/b:pull"));
    }

    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A tiny HTTP server on loopback answering each request with `answer(path, authorization)`, and every
    /// request it saw (path, authorization).
    async fn serve(
        answer: impl Fn(&str, Option<&str>) -> String + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let authorization = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                    .map(str::to_owned);
                let response = answer(&path, authorization.as_deref());
                if let Ok(mut seen) = log.lock() {
                    seen.push((path, authorization));
                }
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        (address, seen)
    }

    #[tokio::test]
    async fn credentials_stay_with_the_registry_when_it_redirects_elsewhere() {
        let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;
        // B, another origin: redirects once to itself, then answers.
        let (storage, storage_seen) = serve(move |path, _| match path {
            "/first" => "HTTP/1.1 302 Found\r\nLocation: /second\r\nContent-Length: 0\r\n\r\n".to_owned(),
            _ => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n{manifest}",
                manifest.len()
            ),
        })
        .await;
        // A, the registry: wants basic auth, then sends the client to B.
        let target = format!("http://localhost:{}/first", storage.rsplit(':').next().unwrap_or_default());
        let (registry, registry_seen) = serve(move |_, authorization| match authorization {
            None => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n"
                .to_owned(),
            Some(_) => format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"),
        })
        .await;
        let client = RegistryClient::new().unwrap_or_else(|e| panic!("{e}"));
        let endpoint = Endpoint {
            url: format!("http://{registry}"),
            credentials: Credentials::Basic { user: "u".into(), password: "hwk_secret".into() },
            token_realms: Vec::new(),
        };
        let image = ImageRef::parse(&format!("{registry}/team/image:v1")).unwrap_or_else(|e| panic!("{e}"));
        let resolved = client.resolve(&endpoint, &image).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolved.digest, Digest::of(manifest.as_bytes()));
        let registry_seen = registry_seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(registry_seen.iter().any(|(_, a)| a.as_deref().is_some_and(|a| a.starts_with("Basic "))));
        let storage_seen = storage_seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(storage_seen.len(), 2, "both hops reached the other origin: {storage_seen:?}");
        assert!(storage_seen.iter().all(|(_, a)| a.is_none()), "no credentials left the registry: {storage_seen:?}");
    }

    #[test]
    fn credentials_never_show_their_password_and_each_set_is_its_own_token_holder() {
        let alice = Credentials::Basic { user: "highwind".into(), password: "hwk_alice".into() };
        let bob = Credentials::Basic { user: "highwind".into(), password: "hwk_bob".into() };
        assert!(!format!("{alice:?}").contains("hwk_alice"));
        assert!(!alice.identity().contains("hwk_alice"));
        assert_ne!(alice.identity(), bob.identity());
        assert_ne!(alice.identity(), Credentials::Anonymous.identity());
    }
}
