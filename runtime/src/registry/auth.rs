//! How a pull authenticates: Docker's token challenge answered with the caller's credentials (sent only to the
//! registry's origin or a realm the configuration names), tokens cached per registry, scope and set of
//! credentials, and redirects followed by hand so credentials never leave the registry's origin.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};

use super::{Credentials, Endpoint, PullError, RegistryClient, Target, read_bounded};
use crate::digest::Digest;

/// Whose token for what: a token one set of credentials obtained is never used with another.
pub(super) type TokenKey = (String, String, String);

impl Credentials {
    /// Who these credentials are, for the token cache: a digest, never the password itself.
    fn identity(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".to_owned(),
            Self::Basic { user, password } => Digest::of(format!("{user}\0{password}").as_bytes()).to_string(),
            Self::Bearer(token) => Digest::of(token.as_bytes()).to_string(),
        }
    }
}

impl RegistryClient {
    /// GET with whatever authentication the registry asks for; a success, or the error its status means. A token
    /// the registry turns down is dropped and the challenge answered again, once.
    pub(super) async fn get(&self, target: &Target<'_>) -> Result<reqwest::Response, PullError> {
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
        // A token issued for this pull is the only answer there is.
        let mut answered = false;
        if let Credentials::Bearer(token) = &target.endpoint.credentials {
            auth = Some(Auth::Bearer(token.clone()));
            answered = true;
        }
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
pub(super) fn unavailable(error: reqwest::Error) -> PullError {
    PullError::Unavailable(error.without_url().to_string())
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::reference::ImageRef;

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
