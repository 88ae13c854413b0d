//! One container task's contract with its process, the way KFP's launcher keeps it: the ExecutorInput JSON and
//! placeholders resolved into the argv (`collect` takes the outputs afterwards).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value, json};

use super::inside::Inside;
use crate::{
    ir::spec::{ComponentSpec, Container},
    runs::{
        entities::{Artifact, Values},
        values,
    },
};

/// Run-level values placeholders may ask for.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's id.
    pub run_id: String,
    /// The run's display name.
    pub run_name: String,
    /// The task's path.
    pub task_name: String,
    /// The task's uid.
    pub task_uid: String,
    /// The run's directory.
    pub run_root: PathBuf,
    /// RFC 3339.
    pub create_time: String,
}

/// A task ready to start: its argv and where its outputs will be.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The resolved command and arguments, with paths as the task sees them (see [`Inside`]).
    pub argv: Vec<String>,
    /// Whether the component names a command; when it does not, the image's entrypoint is the command, as on
    /// Kubernetes.
    pub command_given: bool,
    /// How the task sees the host paths below.
    pub inside: Inside,
    /// Output artifact key → (type, local path on the host).
    pub output_artifacts: BTreeMap<String, (String, String, PathBuf)>,
    /// Output parameter key → (type, file).
    pub output_parameters: BTreeMap<String, (String, PathBuf)>,
    /// `executor_output.json`.
    pub executor_output: PathBuf,
}

/// Names used as file names must be plain, so a declared output can never point outside the task directory.
fn plain_name(name: &str) -> Result<&str, String> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if plain { Ok(name) } else { Err(format!("output name {name:?} cannot be a file name")) }
}

/// Builds the ExecutorInput and argv of a container task whose resolved inputs are `inputs`, with `dir` as its own
/// directory, every path in them as `inside` shows it to the task.
pub fn prepare(
    component: &ComponentSpec,
    container: &Container,
    inputs: &Values,
    dir: &Path,
    run: &RunInfo,
    inside: &Inside,
) -> Result<Prepared, String> {
    let mut output_artifacts = BTreeMap::new();
    for (key, definition) in &component.output_definitions.artifacts {
        let path = dir.join("outputs").join(plain_name(key)?);
        let artifact_type = &definition.artifact_type;
        output_artifacts
            .insert(key.clone(), (artifact_type.schema_title.clone(), artifact_type.schema_version.clone(), path));
    }
    let mut output_parameters = BTreeMap::new();
    for (key, definition) in &component.output_definitions.parameters {
        output_parameters
            .insert(key.clone(), (definition.parameter_type.clone(), dir.join("parameters").join(plain_name(key)?)));
    }
    let executor_output = dir.join("executor_output.json");
    let seen = |path: &Path| inside.path(path).display().to_string();
    let executor_input = executor_input(inputs, &output_artifacts, &output_parameters, &executor_output, inside);

    let mut fills: BTreeMap<String, String> = BTreeMap::new();
    fills.insert("{{$}}".into(), values::integral(&executor_input).to_string());
    for (name, value) in &inputs.parameters {
        fills.insert(format!("{{{{$.inputs.parameters['{name}']}}}}"), values::to_text(value));
    }
    for (name, artifacts) in &inputs.artifacts {
        let list: Vec<Value> = artifacts.iter().map(|a| artifact_json(a, inside)).collect();
        fills.insert(format!("{{{{$.inputs.artifacts['{name}']}}}}"), json!({ "artifacts": list }).to_string());
        if let Some(first) = artifacts.first() {
            artifact_fills(&mut fills, "inputs", name, &inside.text(&first.path), &first.metadata);
        }
    }
    for (name, (_, _, path)) in &output_artifacts {
        artifact_fills(&mut fills, "outputs", name, &seen(path), &Map::new());
    }
    for (name, (_, path)) in &output_parameters {
        fills.insert(format!("{{{{$.outputs.parameters['{name}'].output_file}}}}"), seen(path));
    }
    let output_file = seen(&executor_output);
    fills.insert("{{$.outputs.output_file}}".into(), output_file.clone());
    fills.insert("{{$.outputMetadataUri}}".into(), output_file);
    for (key, value) in [
        ("pipeline_job_name", run.run_name.clone()),
        ("pipeline_job_resource_name", format!("runs/{}", run.run_id)),
        ("pipeline_job_uuid", run.run_id.clone()),
        ("pipeline_task_name", run.task_name.clone()),
        ("pipeline_task_uuid", run.task_uid.clone()),
        ("pipeline_root", seen(&run.run_root)),
        ("pipeline_job_create_time_utc", run.create_time.clone()),
        ("pipeline_job_schedule_time_utc", run.create_time.clone()),
        ("workspace_path", seen(&run.run_root.join("workspace"))),
    ] {
        fills.insert(format!("{{{{$.{key}}}}}"), value);
    }

    let mut argv = Vec::new();
    for arg in container.command.iter().chain(&container.args) {
        expand(arg, inputs, &fills, &mut argv)?;
    }
    Ok(Prepared {
        argv,
        command_given: !container.command.is_empty(),
        inside: inside.clone(),
        output_artifacts,
        output_parameters,
        executor_output,
    })
}

fn artifact_json(artifact: &Artifact, inside: &Inside) -> Value {
    json!({
        "name": artifact.key,
        "type": {"schemaTitle": artifact.artifact_type, "schemaVersion": artifact.schema_version},
        "uri": inside.text(&artifact.path),
        "metadata": artifact.metadata,
    })
}

fn artifact_fills(
    fills: &mut BTreeMap<String, String>,
    side: &str,
    name: &str,
    path: &str,
    metadata: &Map<String, Value>,
) {
    let at = format!("{{{{$.{side}.artifacts['{name}']");
    fills.insert(format!("{at}.path}}}}"), path.to_owned());
    fills.insert(format!("{at}.uri}}}}"), path.to_owned());
    fills.insert(format!("{at}.metadata}}}}"), values::integral(&Value::Object(metadata.clone())).to_string());
    for (key, value) in metadata {
        fills.insert(format!("{at}.metadata['{key}']}}}}"), values::to_text(value));
    }
}

fn executor_input(
    inputs: &Values,
    output_artifacts: &BTreeMap<String, (String, String, PathBuf)>,
    output_parameters: &BTreeMap<String, (String, PathBuf)>,
    executor_output: &Path,
    inside: &Inside,
) -> Value {
    let seen = |path: &Path| inside.path(path).display().to_string();
    let artifacts: Map<String, Value> = inputs
        .artifacts
        .iter()
        .map(|(key, list)| {
            let list: Vec<Value> = list.iter().map(|a| artifact_json(a, inside)).collect();
            (key.clone(), json!({ "artifacts": list }))
        })
        .collect();
    let outputs_artifacts: Map<String, Value> = output_artifacts
        .iter()
        .map(|(key, (title, version, path))| {
            let artifact = json!({
                "name": key,
                "type": {"schemaTitle": title, "schemaVersion": version},
                "uri": seen(path),
                "metadata": {},
            });
            (key.clone(), json!({ "artifacts": [artifact] }))
        })
        .collect();
    let outputs_parameters: Map<String, Value> =
        output_parameters.iter().map(|(key, (_, path))| (key.clone(), json!({ "outputFile": seen(path) }))).collect();
    values::integral(&json!({
        "inputs": {"parameterValues": inputs.parameters, "artifacts": artifacts},
        "outputs": {
            "parameters": outputs_parameters,
            "artifacts": outputs_artifacts,
            "outputFile": seen(executor_output),
        },
    }))
}

/// Appends what `arg` expands to: a structural placeholder (`IfPresent`, `Concat`) gives zero or more arguments,
/// anything else one, with every `{{$...}}` replaced.
fn expand(arg: &str, inputs: &Values, fills: &BTreeMap<String, String>, argv: &mut Vec<String>) -> Result<(), String> {
    if arg.trim_start().starts_with('{')
        && let Ok(structural @ Value::Object(_)) = serde_json::from_str::<Value>(arg)
    {
        return structural_args(&structural, inputs, fills, argv);
    }
    argv.push(substitute(arg, fills)?);
    Ok(())
}

fn structural_args(
    value: &Value,
    inputs: &Values,
    fills: &BTreeMap<String, String>,
    argv: &mut Vec<String>,
) -> Result<(), String> {
    match value {
        Value::String(text) => expand(text, inputs, fills, argv),
        Value::Array(items) => items.iter().try_for_each(|item| structural_args(item, inputs, fills, argv)),
        Value::Object(object) => {
            if let Some(condition) = object.get("IfPresent") {
                let name = condition.get("InputName").and_then(Value::as_str).unwrap_or_default();
                let present = inputs.parameters.contains_key(name) || inputs.artifacts.contains_key(name);
                let branch = condition.get(if present { "Then" } else { "Else" });
                return branch.map_or(Ok(()), |b| structural_args(b, inputs, fills, argv));
            }
            if let Some(Value::Array(parts)) = object.get("Concat") {
                let mut joined = String::new();
                for part in parts {
                    let mut pieces = Vec::new();
                    structural_args(part, inputs, fills, &mut pieces)?;
                    joined.push_str(&pieces.concat());
                }
                argv.push(joined);
                return Ok(());
            }
            Err(format!("unknown structural placeholder {value}"))
        }
        other => {
            argv.push(values::to_text(other));
            Ok(())
        }
    }
}

/// `text` with every `{{$...}}` replaced by its value; an unknown one is an error.
pub fn substitute(text: &str, fills: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{$") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        let placeholder = &rest[start..start + end + 2];
        let value = fills.get(placeholder).ok_or_else(|| format!("{placeholder} has no value for this task"))?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces `{{$.inputs.parameters['x']}}` inside string parameters with the task's own other inputs (what the
/// compiler emits for f-strings).
pub fn resolve_self_references(parameters: &mut BTreeMap<String, Value>) -> Result<(), String> {
    let fills: BTreeMap<String, String> = parameters
        .iter()
        .map(|(name, value)| (format!("{{{{$.inputs.parameters['{name}']}}}}"), values::to_text(value)))
        .collect();
    for value in parameters.values_mut() {
        if let Value::String(text) = value
            && text.contains("{{$")
        {
            *text = substitute(text, &fills)?;
        }
    }
    Ok(())
}
