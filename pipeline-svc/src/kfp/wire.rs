//! KFP v2beta1 JSON as the server speaks it: snake_case fields, enums as strings, empty fields left out. Requests
//! carry only fields KFP knows (it refuses unknown ones); every response field is optional, since KFP omits
//! empty ones and newer servers add more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

/// `POST /runs` body.
#[derive(Debug, Serialize)]
pub struct NewRun<'a> {
    /// Required by KFP.
    pub display_name: &'a str,
    /// Free text.
    #[serde(skip_serializing_if = "is_empty")]
    pub description: &'a str,
    /// Empty: KFP's default experiment.
    #[serde(skip_serializing_if = "is_empty")]
    pub experiment_id: &'a str,
    /// Empty: KFP's default.
    #[serde(skip_serializing_if = "is_empty")]
    pub service_account: &'a str,
    /// The uploaded version to run.
    pub pipeline_version_reference: VersionReference<'a>,
    /// Parameters and pipeline root.
    pub runtime_config: RuntimeConfig<'a>,
}

/// A pipeline version by ids.
#[derive(Debug, Serialize)]
pub struct VersionReference<'a> {
    /// The pipeline.
    pub pipeline_id: &'a str,
    /// Its version.
    pub pipeline_version_id: &'a str,
}

/// A run's inputs.
#[derive(Debug, Serialize)]
pub struct RuntimeConfig<'a> {
    /// Pipeline parameters by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: &'a BTreeMap<String, Value>,
    /// Where artifacts go; empty: KFP's default.
    #[serde(skip_serializing_if = "is_empty")]
    pub pipeline_root: &'a str,
}

/// The `filter` query parameter: predicates joined by AND.
#[derive(Debug, Serialize)]
pub struct Filter<'a> {
    /// The predicates.
    pub predicates: Vec<Predicate<'a>>,
}

/// One filter predicate on a string field.
#[derive(Debug, Serialize)]
pub struct Predicate<'a> {
    /// The field, e.g. `display_name`.
    pub key: &'a str,
    /// `EQUALS`, `IS_SUBSTRING`, ...
    pub operation: &'a str,
    /// The value compared with.
    pub string_value: &'a str,
}

/// `google.rpc.Status`, as KFP reports errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    /// A gRPC code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// grpc-gateway's copy of `message`.
    pub error: String,
}

/// A pipeline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    /// KFP's id.
    pub pipeline_id: String,
    /// Unique per namespace.
    pub name: String,
    /// Shown in the UI.
    pub display_name: String,
}

/// A pipeline version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipelineVersion {
    /// Its pipeline.
    pub pipeline_id: String,
    /// KFP's id.
    pub pipeline_version_id: String,
    /// Unique per pipeline.
    pub name: String,
}

/// `GET /pipelines/{id}/versions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipelineVersions {
    /// This page.
    pub pipeline_versions: Vec<PipelineVersion>,
    /// The next page, if any.
    pub next_page_token: String,
}

/// A run as KFP reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Run {
    /// KFP's id.
    pub run_id: String,
    /// As created.
    pub display_name: String,
    /// A `RuntimeState` name; empty means unspecified.
    pub state: String,
    /// Why it failed.
    pub error: Option<RpcStatus>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Its tasks.
    pub run_details: Option<RunDetails>,
}

/// A run's tasks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunDetails {
    /// Every node KFP reports: executors, DAGs and drivers alike.
    pub task_details: Vec<TaskDetail>,
}

/// One task of a KFP run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskDetail {
    /// KFP's id.
    pub task_id: String,
    /// The IR task's `taskInfo.name`.
    pub display_name: String,
    /// A `RuntimeState` name.
    pub state: String,
    /// RFC 3339.
    pub create_time: Option<String>,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339.
    pub end_time: Option<String>,
    /// Why it failed.
    pub error: Option<RpcStatus>,
    /// The enclosing DAG task.
    pub parent_task_id: String,
    /// Where its logs are.
    pub pod_name: String,
    /// Set for DAG nodes.
    pub child_tasks: Vec<Value>,
}

/// `GET /runs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Runs {
    /// This page.
    pub runs: Vec<Run>,
    /// The next page, if any.
    pub next_page_token: String,
}
