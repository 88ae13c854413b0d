//! The Kubeflow Pipelines backend: a client of KFP's v2beta1 REST API (`client`, `wire`), how pipeline versions
//! reach KFP (`upload`) and the driver that follows one run there (`driver`).

pub mod client;
pub(crate) mod driver;
pub(crate) mod executor;
pub mod upload;
pub mod wire;

use std::path::PathBuf;

use highwind_common::config::Secret;

/// Where Kubeflow Pipelines is and how to call it (`HIGHWIND__PIPELINE__KFP__<KEY>`). An empty `url` means no
/// KFP backend: runs asking for one are refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KfpConfig {
    /// The API's base, without `/apis/v2beta1`: `http://ml-pipeline.kubeflow:8888` in the cluster,
    /// `https://HOST/pipeline` through the Kubeflow gateway.
    pub url: String,
    /// The profile namespace runs and pipelines go to (multi-user Kubeflow); empty in single-user mode.
    pub namespace: String,
    /// The experiment runs are created in; empty means KFP's default experiment.
    pub experiment_id: String,
    /// The Kubernetes service account runs use; empty means KFP's default.
    pub service_account: String,
    /// `runtime_config.pipeline_root` of each run; empty means KFP's default.
    pub pipeline_root: String,
    /// How requests authenticate.
    pub auth: KfpAuth,
    /// For `auth = bearer`: the token.
    pub token: Secret,
    /// For `auth = token_file`: a file holding the token, read again whenever it changes (a projected service
    /// account token, e.g. `/var/run/secrets/kubeflow/pipelines/token`).
    pub token_file: PathBuf,
    /// For `auth = user_header`: the user KFP trusts this server to speak for.
    pub user: String,
    /// For `auth = user_header`: the header carrying `user`.
    pub user_header: String,
    /// How long one request may take.
    pub request_timeout_ms: u64,
    /// How often a live run is read.
    pub poll_interval_ms: u64,
    /// How long a run may keep failing to reach KFP before it fails.
    pub give_up_after_seconds: u64,
}

impl Default for KfpConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            namespace: String::new(),
            experiment_id: String::new(),
            service_account: String::new(),
            pipeline_root: String::new(),
            auth: KfpAuth::None,
            token: Secret::default(),
            token_file: PathBuf::new(),
            user: String::new(),
            user_header: "kubeflow-userid".into(),
            request_timeout_ms: 30_000,
            poll_interval_ms: 5_000,
            give_up_after_seconds: 3_600,
        }
    }
}

/// How requests to KFP authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KfpAuth {
    /// No credentials (single-user KFP, or a port-forward).
    #[default]
    None,
    /// `Authorization: Bearer` with the configured `token`.
    Bearer,
    /// `Authorization: Bearer` with the token in `token_file`, re-read when the file changes.
    TokenFile,
    /// A trusted user header (`kubeflow-userid: USER`), for a server inside the mesh KFP trusts.
    UserHeader,
}
