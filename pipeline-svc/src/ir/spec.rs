//! The KFP v2 pipeline spec (IR) as the `kfp` compiler writes it: camelCase keys, every field optional, unknown
//! fields ignored so newer compilers still parse.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The first YAML document: `PipelineSpec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineSpec {
    /// Name and description.
    pub pipeline_info: PipelineInfo,
    /// e.g. `kfp-2.17.3`.
    pub sdk_version: String,
    /// e.g. `2.1.0`.
    pub schema_version: String,
    /// The pipeline itself: a component with a DAG.
    pub root: Option<ComponentSpec>,
    /// `comp-*` → component.
    pub components: BTreeMap<String, ComponentSpec>,
    /// How each executor label runs.
    pub deployment_spec: DeploymentSpec,
}

/// `pipelineInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineInfo {
    /// e.g. `a-linear`.
    pub name: String,
    /// Optional.
    pub display_name: String,
    /// Optional.
    pub description: String,
}

/// A component: inputs, outputs, and either a DAG or an executor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ComponentSpec {
    /// Declared inputs.
    pub input_definitions: Definitions,
    /// Declared outputs.
    pub output_definitions: Definitions,
    /// Present for pipelines and their sub-DAGs.
    pub dag: Option<Dag>,
    /// Present for tasks that run something.
    pub executor_label: Option<String>,
}

/// Parameters and artifacts by name (maps are sorted, as the compiler writes them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Definitions {
    /// Parameters.
    pub parameters: BTreeMap<String, ParameterDefinition>,
    /// Artifacts.
    pub artifacts: BTreeMap<String, ArtifactDefinition>,
}

/// A declared parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterDefinition {
    /// `NUMBER_DOUBLE`, `NUMBER_INTEGER`, `STRING`, `BOOLEAN`, `LIST`, `STRUCT`, `TASK_FINAL_STATUS`, `TASK_CONFIG`.
    pub parameter_type: String,
    /// A `google.protobuf.Value` (integers come out as floats).
    pub default_value: Option<Value>,
    /// May be left out.
    pub is_optional: bool,
    /// Free text.
    pub description: String,
}

/// A declared artifact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactDefinition {
    /// Its type.
    pub artifact_type: ArtifactType,
    /// A list of artifacts (`dsl.Collected`).
    pub is_artifact_list: bool,
    /// May be left out.
    pub is_optional: bool,
    /// Free text.
    pub description: String,
}

/// `artifactType` / `typeSchema`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactType {
    /// e.g. `system.Dataset`.
    pub schema_title: String,
    /// e.g. `0.0.1`.
    pub schema_version: String,
}

/// A DAG: its tasks and what it outputs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Dag {
    /// Task key → task.
    pub tasks: BTreeMap<String, Task>,
    /// Where the DAG's outputs come from.
    pub outputs: DagOutputs,
}

/// One task of a DAG.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    /// Display name.
    pub task_info: TaskInfo,
    /// The component it runs.
    pub component_ref: ComponentRef,
    /// Upstream tasks of the same DAG.
    pub dependent_tasks: Vec<String>,
    /// Where its inputs come from.
    pub inputs: TaskInputs,
    /// Caching.
    pub caching_options: CachingOptions,
    /// Condition and strategy.
    pub trigger_policy: TriggerPolicy,
    /// ParallelFor over parameters.
    pub parameter_iterator: Option<Iterator>,
    /// ParallelFor over artifacts.
    pub artifact_iterator: Option<Iterator>,
    /// Retries.
    pub retry_policy: RetryPolicy,
    /// How many loop iterations run at once.
    pub iterator_policy: IteratorPolicy,
}

/// `taskInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskInfo {
    /// Display name.
    pub name: String,
}

/// `componentRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ComponentRef {
    /// A `comp-*` key.
    pub name: String,
}

/// `cachingOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachingOptions {
    /// Caching on.
    pub enable_cache: bool,
    /// A key that replaces the computed one.
    pub cache_key: String,
}

/// `triggerPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TriggerPolicy {
    /// A CEL condition.
    pub condition: String,
    /// `ALL_UPSTREAM_TASKS_SUCCEEDED` (default) or `ALL_UPSTREAM_TASKS_COMPLETED`.
    pub strategy: String,
}

/// `parameterIterator` / `artifactIterator`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Iterator {
    /// The component input each iteration's item fills.
    pub item_input: String,
    /// Where the items come from.
    pub items: IteratorItems,
}

/// `items` of an iterator.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IteratorItems {
    /// A JSON list as a string (`parameterIterator`).
    pub raw: Option<String>,
    /// The loop task's input parameter holding the list.
    pub input_parameter: Option<String>,
    /// The loop task's input artifact holding the list (`artifactIterator`).
    pub input_artifact: Option<String>,
}

/// `iteratorPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IteratorPolicy {
    /// Most iterations at once; 0 means no limit.
    pub parallelism_limit: i64,
}

/// `retryPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retry_count: i32,
    /// Wait before the first retry, e.g. `1s`.
    pub backoff_duration: String,
    /// Each later wait is the previous one times this.
    pub backoff_factor: f64,
    /// Longest wait, e.g. `3600s`.
    pub backoff_max_duration: String,
}

/// `inputs` of a task.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskInputs {
    /// Parameter name → source.
    pub parameters: BTreeMap<String, ParameterSource>,
    /// Artifact name → source.
    pub artifacts: BTreeMap<String, ArtifactSource>,
}

/// Where a task's input parameter comes from (one of these).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterSource {
    /// A constant.
    pub runtime_value: Option<RuntimeValue>,
    /// An input of the enclosing DAG.
    pub component_input_parameter: Option<String>,
    /// Another task's output.
    pub task_output_parameter: Option<TaskOutputParameter>,
    /// An upstream task's final status (exit handlers).
    pub task_final_status: Option<TaskFinalStatus>,
    /// CEL over the value (e.g. picking a field of a loop item).
    pub parameter_expression_selector: Option<String>,
}

/// `runtimeValue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeValue {
    /// Any JSON value.
    pub constant: Value,
}

/// `taskOutputParameter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskOutputParameter {
    /// A task of the same DAG.
    pub producer_task: String,
    /// One of its outputs.
    pub output_parameter_key: String,
}

/// `taskFinalStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskFinalStatus {
    /// A task of the same DAG.
    pub producer_task: String,
}

/// Where a task's input artifact comes from (one of these).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactSource {
    /// Another task's output.
    pub task_output_artifact: Option<TaskOutputArtifact>,
    /// An input of the enclosing DAG.
    pub component_input_artifact: Option<String>,
}

/// `taskOutputArtifact`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskOutputArtifact {
    /// A task of the same DAG.
    pub producer_task: String,
    /// One of its outputs.
    pub output_artifact_key: String,
}

/// `dag.outputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputs {
    /// Output parameter → source.
    pub parameters: BTreeMap<String, DagOutputParameter>,
    /// Output artifact → sources.
    pub artifacts: BTreeMap<String, DagOutputArtifact>,
}

/// Where a DAG output parameter comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputParameter {
    /// One subtask's output.
    pub value_from_parameter: Option<OutputSelector>,
    /// The branch that ran (`dsl.OneOf`).
    pub value_from_oneof: Option<OneOf>,
}

/// `valueFromOneof`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OneOf {
    /// Candidates.
    pub parameter_selectors: Vec<OutputSelector>,
}

/// A subtask's output parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutputSelector {
    /// A task of this DAG.
    pub producer_subtask: String,
    /// One of its outputs.
    pub output_parameter_key: String,
}

/// Where a DAG output artifact comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DagOutputArtifact {
    /// Candidates.
    pub artifact_selectors: Vec<ArtifactSelector>,
}

/// A subtask's output artifact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactSelector {
    /// A task of this DAG.
    pub producer_subtask: String,
    /// One of its outputs.
    pub output_artifact_key: String,
}

/// `deploymentSpec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    /// Executor label → executor.
    pub executors: BTreeMap<String, Executor>,
}

/// How a component runs: one of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Executor {
    /// A process (in a container remotely).
    pub container: Option<Container>,
    /// Brings an existing artifact in.
    pub importer: Option<Importer>,
    /// Vertex only.
    pub resolver: Option<Value>,
    /// Vertex only (deprecated).
    pub custom_job: Option<Value>,
}

/// `container`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// The image.
    pub image: String,
    /// The command, with placeholders.
    pub command: Vec<String>,
    /// The arguments, with placeholders.
    pub args: Vec<String>,
    /// CPU, memory and accelerator requests and limits (honoured by KFP, not by the local executor).
    pub resources: Option<Value>,
    /// Environment variables (`set_env_variable`).
    pub env: Vec<EnvVar>,
}

/// One `env` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// `importer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Importer {
    /// The URI.
    pub artifact_uri: ArtifactUri,
    /// The imported type.
    pub type_schema: ArtifactType,
    /// Import again even if known.
    pub reimport: bool,
    /// Metadata given to the imported artifact.
    pub metadata: serde_json::Map<String, Value>,
}

/// `artifactUri`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactUri {
    /// A constant URI (a `google.protobuf.Value`, a string in practice).
    pub constant: Option<Value>,
    /// The input parameter that carries it.
    pub runtime_parameter: Option<String>,
}
