//! A run and its tasks as pipeline-svc keeps them: the state machine's states, what each task read and produced,
//! and why something failed. Stored as JSON documents, so every field has a serde default.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Lifecycle state of a run or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Accepted; waiting for the executor or for upstream tasks.
    #[default]
    Pending,
    /// Executing.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Being stopped.
    Canceling,
    /// Stopped before finishing.
    Canceled,
    /// Not executed.
    Skipped,
}

impl State {
    /// Every state, for parsing.
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Canceling,
        State::Canceled,
        State::Skipped,
    ];

    /// No change follows (except RetryRun taking a FAILED or CANCELED run back to PENDING).
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled | State::Skipped)
    }

    /// The name used in filters, logs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Canceling => "CANCELING",
            State::Canceled => "CANCELED",
            State::Skipped => "SKIPPED",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Where a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Backend {
    /// The embedded executor.
    #[default]
    Local,
    /// Kubeflow Pipelines.
    Kfp,
}

impl Backend {
    /// The name used in filters and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "LOCAL",
            Backend::Kfp => "KFP",
        }
    }
}

/// What kind of node a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskType {
    /// Runs a process.
    #[default]
    Container,
    /// Brings an asset version in.
    Importer,
    /// A sub-DAG.
    Dag,
}

/// Why a run or task failed, was canceled or was reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Failure {
    /// A `google.rpc.Code` value.
    pub code: i32,
    /// What happened, at most 4,096 characters.
    pub message: String,
    /// UPPER_SNAKE_CASE, e.g. `TASK_FAILED`.
    pub reason: String,
    /// For a run: the task it came from (its path); empty when run-level.
    pub task: String,
}

/// Longest failure message kept.
const MAX_MESSAGE: usize = 4096;

impl Failure {
    /// A failure with `code` (a `google.rpc.Code`), `reason` and `message` (cut at 4,096 characters).
    pub fn new(code: i32, reason: &str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self { code, message, reason: reason.to_owned(), task: String::new() }
    }
}

/// An artifact a task consumed or produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Artifact {
    /// The input or output key.
    pub key: String,
    /// KFP schema title, e.g. `system.Dataset`.
    pub artifact_type: String,
    /// KFP schema version, e.g. `0.0.1`.
    pub schema_version: String,
    /// What clients see: `highwind://runs/{run}/tasks/{task}/outputs/{key}` or the asset version's URI.
    pub uri: String,
    /// Where the content is on this host; never shown to clients.
    pub path: String,
    /// The artifact's metadata as the component wrote it.
    pub metadata: Map<String, Value>,
    /// `assets/{a}/versions/{n}` when the artifact is an asset version.
    pub asset_version: String,
    /// For outputs: the producing task's path.
    pub producer_task: String,
}

/// Values flowing into or out of a task or run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Values {
    /// Parameters, cast to their declared types.
    pub parameters: BTreeMap<String, Value>,
    /// Artifacts by key, in order (a list input holds several).
    pub artifacts: BTreeMap<String, Vec<Artifact>>,
}

/// An asset version bound to a pipeline input artifact or an importer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Binding {
    /// A root input artifact key, when the binding targets one.
    pub pipeline_input: String,
    /// An importer task path, when the binding targets one.
    pub importer_task: String,
    /// The exact version, `assets/{a}/versions/{n}`.
    pub asset_version: String,
    /// The alias the caller gave, if any.
    pub alias: String,
    /// The asset's kind as asset-svc named it (e.g. `DATASET`).
    pub asset_kind: String,
}

/// Where an output artifact goes when the run succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Destination {
    /// The producing task's static path (loop iterations left out); empty for a pipeline output.
    pub task: String,
    /// The output artifact key.
    pub output_key: String,
    /// An existing asset, `assets/{a}`; empty when `new_asset` is set.
    pub asset: String,
    /// A new asset of the run's creator.
    pub new_asset: Option<NewAssetSpec>,
}

/// How to create the asset an output becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NewAssetSpec {
    /// 1 to 200 characters.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Which way an asset version relates to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The run read it.
    In,
    /// The run produced it.
    Out,
}

impl Direction {
    /// The name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "IN",
            Direction::Out => "OUT",
        }
    }
}

/// One edge of the lineage graph: a run read or produced an asset version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineageEdge {
    /// The run.
    pub run_id: Uuid,
    /// `assets/{a}/versions/{n}`.
    pub asset_version: String,
    /// Read or produced.
    pub direction: Direction,
    /// The binding target (inputs) or `{task}/{output_key}` (outputs).
    pub port: String,
    /// KFP schema title.
    pub artifact_type: String,
}

/// One node of a run's executed DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Task {
    /// Its path: IR task keys joined by `.`, loop iterations as their index.
    pub path: String,
    /// UUIDv7.
    pub uid: Uuid,
    /// The IR task key.
    pub task_key: String,
    /// `taskInfo.name`.
    pub display_name: String,
    /// The enclosing DAG task's path; empty at the root.
    pub parent: String,
    /// For a loop iteration.
    pub iteration_index: Option<i64>,
    /// The IR component.
    pub component: String,
    /// Container, importer or DAG.
    pub task_type: TaskType,
    /// Current state.
    pub state: State,
    /// Short note on the state.
    pub state_message: String,
    /// When first scheduled.
    pub create_time: Option<DateTime<Utc>>,
    /// When the current attempt started.
    pub start_time: Option<DateTime<Utc>>,
    /// When terminal.
    pub end_time: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<Failure>,
    /// Resolved inputs.
    pub inputs: Values,
    /// Outputs.
    pub outputs: Values,
    /// Current attempt, from 1.
    pub attempt: i32,
    /// Outputs came from the cache.
    pub cached: bool,
    /// The process's exit status.
    pub exit_code: Option<i32>,
    /// Whether the log hit its size bound.
    pub log_truncated: bool,
    /// The backend's id of the task (KFP's task id); empty on the local executor.
    pub backend_task_id: String,
    /// Where the backend ran it (KFP's pod name), for finding its logs there.
    pub backend_pod: String,
    /// It ran although an upstream task had not succeeded (an exit handler, `ignore_upstream_failure`): when a
    /// retry runs that upstream again, it runs again too.
    pub ran_after_failure: bool,
    /// The image its current attempt runs in (container tasks of the embedded executor).
    pub image: Option<TaskImage>,
}

/// Where the embedded executor runs a container step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageMode {
    /// In its image when the image's registry is the platform's or a configured one and the sandbox is there;
    /// else on the host, with a note on the task that says why.
    #[default]
    Auto,
    /// Always in its image: a step whose image cannot be had fails, naming the image and the registry.
    Image,
    /// On the host, as if the image were the host's own system.
    Host,
}

/// Where a task's image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// Not used: the task ran on the host.
    #[default]
    Host,
    /// Pulled and unpacked for this task.
    Pulled,
    /// Unpacked already.
    Cached,
}

/// The image a container task ran in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskImage {
    /// The reference as the component names it.
    pub reference: String,
    /// The manifest digest it resolved to; empty on the host.
    pub digest: String,
    /// Where it came from.
    pub source: ImageSource,
    /// Bytes of its layers as stored.
    pub compressed_bytes: u64,
    /// Bytes of its files unpacked.
    pub unpacked_bytes: u64,
    /// The image's user resolved in it, `uid:gid (name)`; empty on the host.
    pub user: String,
}

/// One execution of a pipeline version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Run {
    /// UUIDv7.
    pub id: Uuid,
    /// Human-readable name.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// Exact pipeline version, `assets/{a}/versions/{n}`.
    pub pipeline_version: String,
    /// The alias given on create, if any.
    pub pipeline_alias: String,
    /// Every input parameter the run uses, cast, defaults applied.
    pub parameters: BTreeMap<String, Value>,
    /// Asset versions bound to inputs and importers.
    pub input_bindings: Vec<Binding>,
    /// Which assets Dataset and Model outputs become versions of.
    pub output_destinations: Vec<Destination>,
    /// `UnboundOutputPolicy` as its proto number.
    pub unbound_output_policy: i32,
    /// Reuse cached task outputs.
    pub enable_caching: bool,
    /// Give tasks network access.
    pub allow_network: bool,
    /// Whether container steps run in their images; `None` for runs stored before there was a choice (the
    /// executor's default then applies).
    pub image_mode: Option<ImageMode>,
    /// Where it runs.
    pub backend: Backend,
    /// The backend's run id.
    pub backend_run_id: String,
    /// The attempt the backend has been asked to run: behind `attempt` while a RetryRun has yet to reach KFP.
    pub backend_attempt: i32,
    /// Current state.
    pub state: State,
    /// Why it failed or was canceled.
    pub error: Option<Failure>,
    /// The run's outputs.
    pub outputs: Values,
    /// Who created it, e.g. `users/alice`.
    pub creator: String,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When the first task started.
    pub start_time: Option<DateTime<Utc>>,
    /// When terminal.
    pub end_time: Option<DateTime<Utc>>,
    /// When anything last changed.
    pub update_time: DateTime<Utc>,
    /// Labels for filtering.
    pub labels: BTreeMap<String, String>,
    /// 1, then one more per RetryRun.
    pub attempt: i32,
    /// Increases with every persisted change of the run or its tasks.
    pub sequence: i64,
    /// The creator's idempotency key, if any.
    pub request_id: Option<String>,
    /// The idempotency key of the RetryRun that started the current attempt, if any.
    pub retry_request_id: Option<String>,
}

impl Run {
    /// `assets/{a}` of the pipeline version.
    pub fn pipeline_asset(&self) -> &str {
        self.pipeline_version.split("/versions/").next().unwrap_or_default()
    }
}

/// Now, truncated to microseconds so both databases round-trip it exactly.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
