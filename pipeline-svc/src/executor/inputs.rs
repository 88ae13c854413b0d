//! Resolving what flows into a task: constants, the enclosing DAG's inputs, upstream outputs and final statuses,
//! cast to the component's declared types with defaults applied.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{cel, launch};
use crate::{
    ir::spec::{ComponentSpec, Task as TaskSpec},
    runs::{
        entities::{State, Task, Values},
        values,
    },
};

/// What a task's inputs may come from.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The enclosing DAG's resolved inputs.
    pub dag_inputs: &'a Values,
    /// The tasks of the same DAG, by IR task key.
    pub siblings: &'a BTreeMap<String, &'a Task>,
    /// `runs/{run}`.
    pub run_name: &'a str,
}

/// The inputs of task `spec` (running `component`), or why they cannot be had. A loop's item input is filled per
/// iteration, so a loop task is not asked for it.
pub fn resolve(spec: &TaskSpec, component: &ComponentSpec, sources: &Sources<'_>) -> Result<Values, String> {
    let item_input =
        spec.parameter_iterator.as_ref().or(spec.artifact_iterator.as_ref()).map(|i| i.item_input.as_str());
    let mut resolved = Values::default();
    for (name, source) in &spec.inputs.parameters {
        let value = if let Some(constant) = &source.runtime_value {
            Some(constant.constant.clone())
        } else if let Some(input) = &source.component_input_parameter {
            sources.dag_inputs.parameters.get(input).cloned()
        } else if let Some(output) = &source.task_output_parameter {
            let producer = sibling(sources, &output.producer_task)?;
            match producer.outputs.parameters.get(&output.output_parameter_key) {
                Some(value) => Some(value.clone()),
                None if producer.state == State::Succeeded => {
                    return Err(format!(
                        "task {:?} has no output parameter {:?}",
                        output.producer_task, output.output_parameter_key
                    ));
                }
                None => None,
            }
        } else if let Some(status) = &source.task_final_status {
            let producer = sibling(sources, &status.producer_task)?;
            let error = producer.error.as_ref().map_or(json!({}), |e| json!({"code": e.code, "message": e.message}));
            Some(json!({
                "state": producer.state.as_str(),
                "error": error,
                "pipelineJobResourceName": sources.run_name,
                "pipelineTaskName": status.producer_task,
            }))
        } else {
            None
        };
        let Some(mut value) = value else { continue };
        if let Some(selector) = &source.parameter_expression_selector {
            value = cel::select(selector, &value).map_err(|e| format!("input {name:?}: {e}"))?;
        }
        let value = match component.input_definitions.parameters.get(name) {
            Some(definition) => {
                values::cast(&definition.parameter_type, &value).map_err(|e| format!("input {name:?}: {e}"))?
            }
            None => value,
        };
        resolved.parameters.insert(name.clone(), value);
    }
    for (name, definition) in &component.input_definitions.parameters {
        if resolved.parameters.contains_key(name) || item_input == Some(name.as_str()) {
            continue;
        }
        match &definition.default_value {
            Some(default) => {
                let value = values::cast(&definition.parameter_type, default)
                    .map_err(|e| format!("default of {name:?}: {e}"))?;
                resolved.parameters.insert(name.clone(), value);
            }
            None if definition.is_optional => {}
            None => return Err(format!("input parameter {name:?} has no value")),
        }
    }
    launch::resolve_self_references(&mut resolved.parameters)?;

    for (name, source) in &spec.inputs.artifacts {
        let artifacts = if let Some(output) = &source.task_output_artifact {
            let producer = sibling(sources, &output.producer_task)?;
            producer.outputs.artifacts.get(&output.output_artifact_key).cloned()
        } else if let Some(input) = &source.component_input_artifact {
            sources.dag_inputs.artifacts.get(input).cloned()
        } else {
            None
        };
        match artifacts {
            Some(list) if !list.is_empty() => {
                resolved.artifacts.insert(name.clone(), list);
            }
            _ if component.input_definitions.artifacts.get(name).is_some_and(|d| d.is_optional)
                || item_input == Some(name.as_str()) => {}
            _ => return Err(format!("input artifact {name:?} has no value")),
        }
    }
    Ok(resolved)
}

fn sibling<'a>(sources: &'a Sources<'_>, key: &str) -> Result<&'a Task, String> {
    sources.siblings.get(key).copied().ok_or_else(|| format!("task {key:?} is not part of this DAG"))
}

/// The value list a loop iterates over, from `raw` JSON text or one of the loop task's inputs.
pub fn loop_items(raw: Option<&str>, parameter: Option<&Value>) -> Result<Vec<Value>, String> {
    let value = match (raw, parameter) {
        (Some(raw), _) => serde_json::from_str(raw).map_err(|e| format!("loop items are not JSON: {e}"))?,
        (None, Some(value)) => match value {
            Value::String(text) => serde_json::from_str(text).map_err(|e| format!("loop items are not a list: {e}"))?,
            other => other.clone(),
        },
        (None, None) => return Err("the loop names no items".into()),
    };
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!("loop items must be a list, got {other}")),
    }
}
