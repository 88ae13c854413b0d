//! A client of KFP's v2beta1 REST API: pipelines and versions uploaded as multipart files with their options in
//! the query, runs created, read, found by name, terminated and retried. Errors say whether trying again can help.

use std::{
    path::PathBuf,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use reqwest::{Method, StatusCode, Url, header::HeaderValue};
use serde::de::DeserializeOwned;

use super::{KfpAuth, KfpConfig, wire};

/// Why a KFP call failed.
#[derive(Debug, thiserror::Error)]
pub enum KfpError {
    /// KFP could not be reached, timed out or failed on its side: trying again may help.
    #[error("Kubeflow Pipelines is unavailable: {0}")]
    Unavailable(String),
    /// The thing asked for does not exist.
    #[error("not found in Kubeflow Pipelines: {0}")]
    NotFound(String),
    /// A thing of that name exists already.
    #[error("already exists in Kubeflow Pipelines: {0}")]
    AlreadyExists(String),
    /// KFP refused the request (bad request, permission, state); trying again will not help.
    #[error("Kubeflow Pipelines refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// KFP's message.
        message: String,
    },
    /// The configuration cannot work (bad URL, unreadable token file).
    #[error("the Kubeflow Pipelines backend is misconfigured: {0}")]
    Config(String),
}

impl KfpError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, KfpError::Unavailable(_))
    }
}

/// Most characters of an error answer from KFP kept in a message.
const MAX_ERROR_TEXT: usize = 1024;

/// A KFP API client.
#[derive(Debug)]
pub struct KfpClient {
    http: reqwest::Client,
    base: Url,
    config: KfpConfig,
    token_file: Mutex<Option<CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    modified: Option<SystemTime>,
    len: u64,
    value: String,
}

impl KfpClient {
    /// A client for the KFP at `config.url`.
    pub fn new(config: KfpConfig) -> Result<Self, KfpError> {
        let mut base = Url::parse(config.url.trim_end_matches('/'))
            .map_err(|e| KfpError::Config(format!("url {:?}: {e}", config.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(KfpError::Config(format!("url {:?} must be http(s)://host[:port][/path]", config.url)));
        }
        base.path_segments_mut()
            .map_err(|()| KfpError::Config("url cannot take a path".into()))?
            .pop_if_empty()
            .extend(["apis", "v2beta1"]);
        match config.auth {
            KfpAuth::Bearer if config.token.is_empty() => {
                return Err(KfpError::Config("auth = bearer needs a token".into()));
            }
            KfpAuth::TokenFile if config.token_file.as_os_str().is_empty() => {
                return Err(KfpError::Config("auth = token_file needs token_file".into()));
            }
            KfpAuth::UserHeader if config.user.is_empty() || config.user_header.is_empty() => {
                return Err(KfpError::Config("auth = user_header needs user and user_header".into()));
            }
            _ => {}
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| KfpError::Config(e.to_string()))?;
        Ok(Self { http, base, config, token_file: Mutex::new(None) })
    }

    /// The configuration.
    pub fn config(&self) -> &KfpConfig {
        &self.config
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The token file's content, read again when its modification time or size changed. The file may sit on a
    /// slow mount (a projected service-account token): it is read through `tokio::fs`, off the async workers.
    async fn file_token(&self, path: &PathBuf) -> Result<String, KfpError> {
        let unreadable = |e: std::io::Error| KfpError::Config(format!("token file {}: {e}", path.display()));
        let meta = tokio::fs::metadata(path).await.map_err(unreadable)?;
        let poisoned = || KfpError::Config("token cache poisoned".into());
        if let Some(token) = self.token_file.lock().map_err(|_| poisoned())?.as_ref()
            && token.modified == meta.modified().ok()
            && token.len == meta.len()
        {
            return Ok(token.value.clone());
        }
        let value = tokio::fs::read_to_string(path).await.map_err(unreadable)?.trim().to_owned();
        let fresh = CachedToken { modified: meta.modified().ok(), len: meta.len(), value: value.clone() };
        *self.token_file.lock().map_err(|_| poisoned())? = Some(fresh);
        Ok(value)
    }

    async fn authorize(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, KfpError> {
        let bearer = |token: &str| {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| KfpError::Config("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            Ok::<_, KfpError>(value)
        };
        Ok(match self.config.auth {
            KfpAuth::None => request,
            KfpAuth::Bearer => request.header(reqwest::header::AUTHORIZATION, bearer(self.config.token.expose())?),
            KfpAuth::TokenFile => request
                .header(reqwest::header::AUTHORIZATION, bearer(&self.file_token(&self.config.token_file).await?)?),
            KfpAuth::UserHeader => request.header(self.config.user_header.as_str(), self.config.user.as_str()),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<T, KfpError> {
        let mut request = self.authorize(self.http.request(method, url.clone())).await?;
        if let Some((content_type, bytes)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "unreachable" };
            KfpError::Unavailable(format!("{} {what}: {e}", url.path()))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| KfpError::Unavailable(format!("reading the answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| KfpError::Unavailable(format!("{} answered with unexpected JSON: {e}", url.path())));
        }
        Err(error_of(status, &bytes))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, KfpError> {
        let body = body
            .map(|b| serde_json::to_vec(b).map(|bytes| ("application/json".to_owned(), bytes)))
            .transpose()
            .map_err(|e| KfpError::Config(e.to_string()))?;
        self.call(method, url, body).await
    }

    fn namespace_query(&self) -> Vec<(&str, &str)> {
        if self.config.namespace.is_empty() { Vec::new() } else { vec![("namespace", self.config.namespace.as_str())] }
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<serde_json::Value, KfpError> {
        self.json(Method::GET, self.url(&["healthz"], &[]), None::<&()>).await
    }

    /// The pipeline named `name` in the configured namespace.
    pub async fn pipeline_by_name(&self, name: &str) -> Result<wire::Pipeline, KfpError> {
        let url = self.url(&["pipelines", "names", name], &self.namespace_query());
        self.json(Method::GET, url, None::<&()>).await
    }

    /// Uploads `spec` as a new pipeline `name` (KFP makes it its first version too).
    pub async fn upload_pipeline(
        &self,
        name: &str,
        display_name: &str,
        description: &str,
        spec: &[u8],
    ) -> Result<wire::Pipeline, KfpError> {
        let mut query = vec![("name", name), ("display_name", display_name)];
        if !description.is_empty() {
            query.push(("description", description));
        }
        query.extend(self.namespace_query());
        let url = self.url(&["pipelines", "upload"], &query);
        self.call(Method::POST, url, Some(multipart(spec))).await
    }

    /// Uploads `spec` as version `name` of pipeline `pipeline_id`.
    pub async fn upload_version(
        &self,
        pipeline_id: &str,
        name: &str,
        description: &str,
        spec: &[u8],
    ) -> Result<wire::PipelineVersion, KfpError> {
        let mut query = vec![("pipelineid", pipeline_id), ("name", name), ("display_name", name)];
        if !description.is_empty() {
            query.push(("description", description));
        }
        let url = self.url(&["pipelines", "upload_version"], &query);
        self.call(Method::POST, url, Some(multipart(spec))).await
    }

    /// The version named `name` of pipeline `pipeline_id`, if it exists.
    pub async fn version_by_name(
        &self,
        pipeline_id: &str,
        name: &str,
    ) -> Result<Option<wire::PipelineVersion>, KfpError> {
        let filter = filter_equals("name", name)?;
        let url = self.url(&["pipelines", pipeline_id, "versions"], &[("filter", &filter), ("page_size", "2")]);
        let page: wire::PipelineVersions = self.json(Method::GET, url, None::<&()>).await?;
        Ok(page.pipeline_versions.into_iter().find(|v| v.name == name))
    }

    /// `POST /runs`.
    pub async fn create_run(&self, run: &wire::NewRun<'_>) -> Result<wire::Run, KfpError> {
        self.json(Method::POST, self.url(&["runs"], &[]), Some(run)).await
    }

    /// `GET /runs/{id}`.
    pub async fn run(&self, run_id: &str) -> Result<wire::Run, KfpError> {
        self.json(Method::GET, self.url(&["runs", run_id], &[]), None::<&()>).await
    }

    /// The runs whose display name is exactly `display_name`, newest first.
    pub async fn runs_named(&self, display_name: &str) -> Result<Vec<wire::Run>, KfpError> {
        let filter = filter_equals("display_name", display_name)?;
        let mut query = self.namespace_query();
        if !self.config.experiment_id.is_empty() {
            query.push(("experiment_id", self.config.experiment_id.as_str()));
        }
        query.extend([("filter", filter.as_str()), ("page_size", "10"), ("sort_by", "created_at desc")]);
        let page: wire::Runs = self.json(Method::GET, self.url(&["runs"], &query), None::<&()>).await?;
        Ok(page.runs.into_iter().filter(|r| r.display_name == display_name).collect())
    }

    /// `POST /runs/{id}:terminate`: the run goes to CANCELING, later CANCELED.
    pub async fn terminate(&self, run_id: &str) -> Result<(), KfpError> {
        let url = self.url(&["runs", &format!("{run_id}:terminate")], &[]);
        self.json::<serde_json::Value>(Method::POST, url, Some(&serde_json::json!({}))).await.map(drop)
    }

    /// `POST /runs/{id}:retry`: a FAILED or CANCELED run runs its failed tasks again, as the same run.
    pub async fn retry(&self, run_id: &str) -> Result<(), KfpError> {
        let url = self.url(&["runs", &format!("{run_id}:retry")], &[]);
        self.json::<serde_json::Value>(Method::POST, url, Some(&serde_json::json!({}))).await.map(drop)
    }
}

fn filter_equals(key: &str, value: &str) -> Result<String, KfpError> {
    let filter = wire::Filter { predicates: vec![wire::Predicate { key, operation: "EQUALS", string_value: value }] };
    serde_json::to_string(&filter).map_err(|e| KfpError::Config(e.to_string()))
}

/// A `multipart/form-data` body with `spec` as the `uploadfile` field KFP's upload handler reads.
fn multipart(spec: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("highwind-{}", uuid::Uuid::now_v7().simple());
    let mut body = Vec::with_capacity(spec.len() + 256);
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(b"Content-Disposition: form-data; name=\"uploadfile\"; filename=\"pipeline.yaml\"\r\n");
    body.extend_from_slice(b"Content-Type: application/x-yaml\r\n\r\n");
    body.extend_from_slice(spec);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The error an unsuccessful answer means: KFP's JSON `google.rpc.Status` or the upload handler's plain text.
fn error_of(status: StatusCode, body: &[u8]) -> KfpError {
    let text = match serde_json::from_slice::<wire::RpcStatus>(body) {
        Ok(rpc) if !rpc.message.is_empty() => rpc.message,
        Ok(rpc) if !rpc.error.is_empty() => rpc.error,
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    };
    // Failure::new bounds what reaches a run; the answer's first characters are what a log needs.
    let message = if text.is_empty() { status.to_string() } else { text.chars().take(MAX_ERROR_TEXT).collect() };
    match status {
        StatusCode::NOT_FOUND => KfpError::NotFound(message),
        StatusCode::CONFLICT => KfpError::AlreadyExists(message),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => KfpError::Unavailable(message),
        s if s.is_server_error() => KfpError::Unavailable(format!("{s}: {message}")),
        s => KfpError::Refused { status: s.as_u16(), message },
    }
}
