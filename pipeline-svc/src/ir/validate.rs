//! What makes a parsed pipeline runnable: every reference resolves, DAGs are acyclic, placeholders are known,
//! types agree, required inputs are supplied, and every executor is one we can run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{
    Issue, Pipeline,
    placeholders::{Scope, unknown_in},
    spec::{ComponentSpec, Dag, Definitions, PipelineSpec, Task},
};

/// Parameter types the executor fills in itself; a task never has to supply them.
const FILLED_BY_EXECUTOR: [&str; 2] = ["TASK_FINAL_STATUS", "TASK_CONFIG"];
/// Longest CEL expression accepted.
const MAX_CEL_BYTES: usize = 4096;
/// Deepest bracket nesting in a CEL expression.
const MAX_CEL_NESTING: usize = 32;
/// Every parameter type the IR may declare.
const PARAMETER_TYPES: [&str; 8] =
    ["NUMBER_DOUBLE", "NUMBER_INTEGER", "STRING", "BOOLEAN", "LIST", "STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG"];

/// Every issue of `pipeline`, errors first, then in document order.
pub fn validate(pipeline: &Pipeline) -> Vec<Issue> {
    let spec = &pipeline.spec;
    let mut issues = Vec::new();
    if !spec.schema_version.starts_with("2.") {
        issues.push(Issue::error(
            "schemaVersion",
            "UNSUPPORTED_SCHEMA_VERSION",
            format!("schema version {:?} is not a KFP v2 pipeline spec (2.x)", spec.schema_version),
        ));
    }
    match &spec.root {
        Some(root) if root.dag.is_some() => check_component(spec, "root", root, &mut issues),
        _ => issues.push(Issue::error("root", "MISSING_ROOT_DAG", "the pipeline has no root DAG")),
    }
    for (name, component) in &spec.components {
        check_component(spec, &format!("components.{name}"), component, &mut issues);
    }
    check_executors(spec, &mut issues);
    check_component_recursion(spec, &mut issues);
    if pipeline.has_platform_spec {
        issues.push(Issue::warning(
            "",
            "PLATFORM_SPEC_IGNORED",
            "the platform spec (kfp-kubernetes features) is used on KFP and ignored by the local executor",
        ));
    }
    issues.sort_by_key(|issue| issue.severity);
    issues
}

fn check_component(spec: &PipelineSpec, at: &str, component: &ComponentSpec, issues: &mut Vec<Issue>) {
    for (kind, definitions) in
        [("inputDefinitions", &component.input_definitions), ("outputDefinitions", &component.output_definitions)]
    {
        for (name, parameter) in &definitions.parameters {
            if !PARAMETER_TYPES.contains(&parameter.parameter_type.as_str()) {
                issues.push(Issue::error(
                    format!("{at}.{kind}.parameters.{name}.parameterType"),
                    "TYPE_MISMATCH",
                    format!("unknown parameter type {:?}", parameter.parameter_type),
                ));
            } else if let Some(default) = &parameter.default_value
                && !fits(&parameter.parameter_type, default)
            {
                issues.push(Issue::error(
                    format!("{at}.{kind}.parameters.{name}.defaultValue"),
                    "TYPE_MISMATCH",
                    format!("default {default} is not a {}", parameter.parameter_type),
                ));
            }
        }
    }
    match (&component.dag, &component.executor_label) {
        (Some(dag), None) => check_dag(spec, at, component, dag, issues),
        (None, Some(label)) => {
            if !spec.deployment_spec.executors.contains_key(label) {
                issues.push(Issue::error(
                    format!("{at}.executorLabel"),
                    "DANGLING_EXECUTOR_LABEL",
                    format!("executor {label:?} is not in deploymentSpec.executors"),
                ));
            }
        }
        (Some(_), Some(_)) => {
            issues.push(Issue::error(at, "INVALID_COMPONENT", "a component has a dag or an executorLabel, not both"))
        }
        (None, None) if at == "root" => {}
        (None, None) => {
            issues.push(Issue::error(at, "INVALID_COMPONENT", "a component needs a dag or an executorLabel"))
        }
    }
}

fn check_dag(spec: &PipelineSpec, at: &str, owner: &ComponentSpec, dag: &Dag, issues: &mut Vec<Issue>) {
    for (key, task) in &dag.tasks {
        let task_at = format!("{at}.dag.tasks.{key}");
        let Some(component) = spec.components.get(&task.component_ref.name) else {
            issues.push(Issue::error(
                format!("{task_at}.componentRef.name"),
                "DANGLING_COMPONENT_REF",
                format!("component {:?} is not in components", task.component_ref.name),
            ));
            continue;
        };
        for (i, upstream) in task.dependent_tasks.iter().enumerate() {
            if !dag.tasks.contains_key(upstream) {
                issues.push(dangling_task(format!("{task_at}.dependentTasks[{i}]"), upstream));
            }
        }
        if !task.trigger_policy.condition.is_empty() {
            check_cel(&format!("{task_at}.triggerPolicy.condition"), &task.trigger_policy.condition, issues);
        }
        for (name, source) in &task.inputs.parameters {
            if let Some(selector) = &source.parameter_expression_selector {
                check_cel(&format!("{task_at}.inputs.parameters.{name}.parameterExpressionSelector"), selector, issues);
            }
        }
        check_task_parameters(spec, &task_at, owner, dag, task, component, issues);
        check_task_artifacts(spec, &task_at, owner, dag, task, component, issues);
    }
    check_acyclic(at, dag, issues);
    for (name, output) in &dag.outputs.parameters {
        let selectors = output
            .value_from_parameter
            .iter()
            .chain(output.value_from_oneof.iter().flat_map(|o| &o.parameter_selectors));
        for selector in selectors {
            let produces = produced_definitions(spec, dag, &selector.producer_subtask)
                .is_some_and(|d| d.parameters.contains_key(&selector.output_parameter_key));
            if !produces && !broken_producer(spec, dag, &selector.producer_subtask) {
                issues.push(Issue::error(
                    format!("{at}.dag.outputs.parameters.{name}"),
                    "DANGLING_OUTPUT_SELECTOR",
                    format!(
                        "{:?} has no output parameter {:?}",
                        selector.producer_subtask, selector.output_parameter_key
                    ),
                ));
            }
        }
    }
    for (name, output) in &dag.outputs.artifacts {
        for selector in &output.artifact_selectors {
            let produces = produced_definitions(spec, dag, &selector.producer_subtask)
                .is_some_and(|d| d.artifacts.contains_key(&selector.output_artifact_key));
            if !produces && !broken_producer(spec, dag, &selector.producer_subtask) {
                issues.push(Issue::error(
                    format!("{at}.dag.outputs.artifacts.{name}"),
                    "DANGLING_OUTPUT_SELECTOR",
                    format!(
                        "{:?} has no output artifact {:?}",
                        selector.producer_subtask, selector.output_artifact_key
                    ),
                ));
            }
        }
    }
}

/// The output definitions of task `key` of `dag`, if it exists and its component does.
fn produced_definitions<'s>(spec: &'s PipelineSpec, dag: &Dag, key: &str) -> Option<&'s Definitions> {
    let task = dag.tasks.get(key)?;
    spec.components.get(&task.component_ref.name).map(|c| &c.output_definitions)
}

/// Whether task `key` of `dag` names a component that does not exist: reported once, at the task, so what reads
/// its outputs is not reported again.
fn broken_producer(spec: &PipelineSpec, dag: &Dag, key: &str) -> bool {
    dag.tasks.get(key).is_some_and(|task| !spec.components.contains_key(&task.component_ref.name))
}

fn dangling_task(location: String, name: &str) -> Issue {
    Issue::error(location, "DANGLING_PRODUCER_TASK", format!("{name:?} is not a task of this DAG"))
}

fn check_task_parameters(
    spec: &PipelineSpec,
    task_at: &str,
    owner: &ComponentSpec,
    dag: &Dag,
    task: &Task,
    component: &ComponentSpec,
    issues: &mut Vec<Issue>,
) {
    let declared = &component.input_definitions.parameters;
    for (name, source) in &task.inputs.parameters {
        let at = format!("{task_at}.inputs.parameters.{name}");
        let Some(definition) = declared.get(name) else {
            // The compiler passes the values an f-string constant refers to as extra `pipelinechannel--` inputs
            // the component does not declare; they are there for the task's own placeholders.
            if !name.starts_with("pipelinechannel--") {
                issues.push(Issue::error(
                    &at,
                    "UNKNOWN_INPUT",
                    format!("component {:?} has no input parameter {name:?}", task.component_ref.name),
                ));
            }
            continue;
        };
        let wanted = definition.parameter_type.as_str();
        if let Some(value) = &source.runtime_value {
            if !fits(wanted, &value.constant) {
                issues.push(Issue::error(&at, "TYPE_MISMATCH", format!("{} is not a {wanted}", value.constant)));
            }
            if let Value::String(text) = &value.constant {
                // f-strings refer to the task's other inputs.
                let own = Definitions {
                    parameters: task.inputs.parameters.keys().map(|k| (k.clone(), Default::default())).collect(),
                    ..Default::default()
                };
                let scope = Scope { inputs: &own, outputs: &Definitions::default() };
                for unknown in unknown_in(text, scope) {
                    issues.push(Issue::error(
                        &at,
                        "UNKNOWN_PLACEHOLDER",
                        format!("{unknown} names none of this task's inputs"),
                    ));
                }
            }
        } else if let Some(parent) = &source.component_input_parameter {
            match owner.input_definitions.parameters.get(parent) {
                None => issues.push(Issue::error(
                    format!("{at}.componentInputParameter"),
                    "DANGLING_COMPONENT_INPUT",
                    format!("the enclosing DAG has no input parameter {parent:?}"),
                )),
                Some(given) if !assignable(&given.parameter_type, wanted) => {
                    issues.push(type_mismatch(&at, &given.parameter_type, wanted))
                }
                Some(_) => {}
            }
        } else if let Some(output) = &source.task_output_parameter {
            if !dag.tasks.contains_key(&output.producer_task) {
                issues.push(dangling_task(format!("{at}.taskOutputParameter.producerTask"), &output.producer_task));
            } else if !broken_producer(spec, dag, &output.producer_task) {
                match produced_definitions(spec, dag, &output.producer_task)
                    .and_then(|d| d.parameters.get(&output.output_parameter_key))
                {
                    None => issues.push(Issue::error(
                        format!("{at}.taskOutputParameter.outputParameterKey"),
                        "DANGLING_OUTPUT_SELECTOR",
                        format!("{:?} has no output parameter {:?}", output.producer_task, output.output_parameter_key),
                    )),
                    Some(given) if !assignable(&given.parameter_type, wanted) => {
                        issues.push(type_mismatch(&at, &given.parameter_type, wanted))
                    }
                    Some(_) => {}
                }
            }
        } else if let Some(status) = &source.task_final_status {
            if !dag.tasks.contains_key(&status.producer_task) {
                issues.push(dangling_task(format!("{at}.taskFinalStatus.producerTask"), &status.producer_task));
            }
        } else {
            issues.push(Issue::error(&at, "MISSING_REQUIRED_INPUT", "the input names no source"));
        }
    }
    let iterated = task.parameter_iterator.as_ref().map(|i| i.item_input.as_str());
    for (name, definition) in declared {
        let supplied = task.inputs.parameters.contains_key(name) || iterated == Some(name.as_str());
        let needed = definition.default_value.is_none()
            && !definition.is_optional
            && !FILLED_BY_EXECUTOR.contains(&definition.parameter_type.as_str());
        if needed && !supplied {
            issues.push(Issue::error(
                format!("{task_at}.inputs.parameters.{name}"),
                "MISSING_REQUIRED_INPUT",
                format!(
                    "{:?} needs {name:?} ({}), which has no default",
                    task.component_ref.name, definition.parameter_type
                ),
            ));
        }
    }
}

fn check_task_artifacts(
    spec: &PipelineSpec,
    task_at: &str,
    owner: &ComponentSpec,
    dag: &Dag,
    task: &Task,
    component: &ComponentSpec,
    issues: &mut Vec<Issue>,
) {
    let declared = &component.input_definitions.artifacts;
    for (name, source) in &task.inputs.artifacts {
        let at = format!("{task_at}.inputs.artifacts.{name}");
        if !declared.contains_key(name) {
            issues.push(Issue::error(
                &at,
                "UNKNOWN_INPUT",
                format!("component {:?} has no input artifact {name:?}", task.component_ref.name),
            ));
        }
        if let Some(output) = &source.task_output_artifact {
            if !dag.tasks.contains_key(&output.producer_task) {
                issues.push(dangling_task(format!("{at}.taskOutputArtifact.producerTask"), &output.producer_task));
            } else if !broken_producer(spec, dag, &output.producer_task)
                && !produced_definitions(spec, dag, &output.producer_task)
                    .is_some_and(|d| d.artifacts.contains_key(&output.output_artifact_key))
            {
                issues.push(Issue::error(
                    format!("{at}.taskOutputArtifact.outputArtifactKey"),
                    "DANGLING_OUTPUT_SELECTOR",
                    format!("{:?} has no output artifact {:?}", output.producer_task, output.output_artifact_key),
                ));
            }
        } else if let Some(parent) = &source.component_input_artifact {
            if !owner.input_definitions.artifacts.contains_key(parent) {
                issues.push(Issue::error(
                    format!("{at}.componentInputArtifact"),
                    "DANGLING_COMPONENT_INPUT",
                    format!("the enclosing DAG has no input artifact {parent:?}"),
                ));
            }
        } else {
            issues.push(Issue::error(&at, "MISSING_REQUIRED_INPUT", "the input names no source"));
        }
    }
    let iterated = task.artifact_iterator.as_ref().map(|i| i.item_input.as_str());
    for (name, definition) in declared {
        if !definition.is_optional && !task.inputs.artifacts.contains_key(name) && iterated != Some(name.as_str()) {
            issues.push(Issue::error(
                format!("{task_at}.inputs.artifacts.{name}"),
                "MISSING_REQUIRED_INPUT",
                format!("{:?} needs the artifact {name:?}", task.component_ref.name),
            ));
        }
    }
}

/// Reports every task on a cycle of `dag`'s edges (explicit `dependentTasks` and data edges).
fn check_acyclic(at: &str, dag: &Dag, issues: &mut Vec<Issue>) {
    let mut upstream: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (key, task) in &dag.tasks {
        let edges = upstream.entry(key.as_str()).or_default();
        edges.extend(task.dependent_tasks.iter().map(String::as_str));
        edges.extend(
            task.inputs
                .parameters
                .values()
                .filter_map(|s| s.task_output_parameter.as_ref())
                .map(|o| o.producer_task.as_str()),
        );
        edges.extend(
            task.inputs
                .parameters
                .values()
                .filter_map(|s| s.task_final_status.as_ref())
                .map(|o| o.producer_task.as_str()),
        );
        edges.extend(
            task.inputs
                .artifacts
                .values()
                .filter_map(|s| s.task_output_artifact.as_ref())
                .map(|o| o.producer_task.as_str()),
        );
        edges.retain(|e| dag.tasks.contains_key(*e));
    }
    // Kahn's algorithm: whatever never becomes free is on (or behind) a cycle.
    let mut remaining = upstream.clone();
    loop {
        let free: Vec<&str> = remaining.iter().filter(|(_, ups)| ups.is_empty()).map(|(k, _)| *k).collect();
        if free.is_empty() {
            break;
        }
        for key in &free {
            remaining.remove(key);
        }
        for ups in remaining.values_mut() {
            for key in &free {
                ups.remove(key);
            }
        }
    }
    if !remaining.is_empty() {
        let stuck: Vec<&str> = remaining.keys().copied().collect();
        issues.push(Issue::error(
            format!("{at}.dag.tasks.{}", stuck[0]),
            "CYCLE",
            format!("tasks {} depend on each other in a cycle", stuck.join(", ")),
        ));
    }
}

/// A DAG component that (through its tasks' components) contains itself would never finish expanding.
fn check_component_recursion(spec: &PipelineSpec, issues: &mut Vec<Issue>) {
    fn visit<'s>(
        spec: &'s PipelineSpec,
        name: &'s str,
        path: &mut Vec<&'s str>,
        done: &mut BTreeSet<&'s str>,
    ) -> Option<Vec<&'s str>> {
        if let Some(start) = path.iter().position(|p| *p == name) {
            return Some(path[start..].to_vec());
        }
        if done.contains(name) {
            return None;
        }
        path.push(name);
        let found = spec
            .components
            .get(name)
            .and_then(|c| c.dag.as_ref())
            .into_iter()
            .flat_map(|dag| dag.tasks.values())
            .find_map(|task| visit(spec, &task.component_ref.name, path, done));
        path.pop();
        done.insert(name);
        found
    }
    let mut done = BTreeSet::new();
    for name in spec.components.keys() {
        if let Some(cycle) = visit(spec, name, &mut Vec::new(), &mut done) {
            issues.push(Issue::error(
                format!("components.{}", cycle[0]),
                "CYCLE",
                format!("components contain each other: {}", cycle.join(" → ")),
            ));
            return;
        }
    }
}

fn check_executors(spec: &PipelineSpec, issues: &mut Vec<Issue>) {
    for (label, executor) in &spec.deployment_spec.executors {
        let at = format!("deploymentSpec.executors.{label}");
        if executor.resolver.is_some() || executor.custom_job.is_some() {
            let kind = if executor.resolver.is_some() { "resolver" } else { "customJob" };
            issues.push(Issue::error(
                format!("{at}.{kind}"),
                "UNSUPPORTED_EXECUTOR",
                format!("{kind} executors run only on Vertex AI; neither KFP nor the local executor can run them"),
            ));
            continue;
        }
        if let Some(container) = &executor.container {
            if container.resources.as_ref().is_some_and(|r| r.as_object().is_some_and(|o| !o.is_empty())) {
                issues.push(Issue::warning(
                    format!("{at}.container.resources"),
                    "RESOURCES_IGNORED",
                    "CPU, memory and accelerator settings apply on KFP; the local executor runs without them",
                ));
            }
            // The same executor may serve several components; a placeholder is fine if every one declares it.
            let users: Vec<&ComponentSpec> =
                spec.components.values().filter(|c| c.executor_label.as_deref() == Some(label.as_str())).collect();
            for (field, items) in [("command", &container.command), ("args", &container.args)] {
                for (i, text) in items.iter().enumerate() {
                    let mut unknown = BTreeSet::new();
                    for component in &users {
                        let scope =
                            Scope { inputs: &component.input_definitions, outputs: &component.output_definitions };
                        unknown.extend(unknown_in(text, scope));
                    }
                    for placeholder in unknown {
                        issues.push(Issue::error(
                            format!("{at}.container.{field}[{i}]"),
                            "UNKNOWN_PLACEHOLDER",
                            format!("{placeholder} is not a placeholder this component can fill"),
                        ));
                    }
                }
            }
        } else if let Some(importer) = &executor.importer {
            let constant = importer.artifact_uri.constant.as_ref().and_then(Value::as_str);
            if let Some(uri) = constant.filter(|uri| !is_asset_uri(uri)) {
                issues.push(Issue::warning(
                    format!("{at}.importer.artifactUri.constant"),
                    "IMPORTER_URI_REFUSED",
                    format!(
                        "{uri:?} is not a Highwind asset version (highwind://assets/{{asset}}/versions/{{version}}): a \
                         run must bind this importer to an asset version, the server never fetches other URIs"
                    ),
                ));
            }
        } else {
            issues.push(Issue::error(&at, "UNSUPPORTED_EXECUTOR", "an executor needs a container or an importer"));
        }
    }
}

/// Conditions and selectors are CEL, evaluated when the run reaches them; one that does not parse never could be.
fn check_cel(at: &str, expression: &str, issues: &mut Vec<Issue>) {
    // The parser recurses over nesting: bound the input before it sees it.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for c in expression.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    if expression.len() > MAX_CEL_BYTES || deepest > MAX_CEL_NESTING {
        issues.push(Issue::error(
            at,
            "INVALID_CEL",
            format!("a condition is at most {MAX_CEL_BYTES} bytes and {MAX_CEL_NESTING} brackets deep"),
        ));
        return;
    }
    if let Err(error) = crate::executor::cel::compile(expression) {
        issues.push(Issue::error(at, "INVALID_CEL", format!("{expression:?} is not a CEL expression: {error}")));
    }
}

/// `highwind://assets/{asset}/versions/{version}`, with plain segments only.
fn is_asset_uri(uri: &str) -> bool {
    let Some((asset, version)) = uri.strip_prefix("highwind://assets/").and_then(|rest| rest.split_once("/versions/"))
    else {
        return false;
    };
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plain(asset) && plain(version)
}

/// Whether `value` is a valid `parameter_type`; integers arrive as whole floats.
fn fits(parameter_type: &str, value: &Value) -> bool {
    match parameter_type {
        "NUMBER_DOUBLE" => value.is_number(),
        "NUMBER_INTEGER" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "STRING" => value.is_string(),
        "BOOLEAN" => value.is_boolean(),
        "LIST" => value.is_array(),
        "STRUCT" => value.is_object(),
        _ => true,
    }
}

/// Whether a value of type `given` may feed an input of type `wanted` (an integer may feed a double).
fn assignable(given: &str, wanted: &str) -> bool {
    given == wanted || (given == "NUMBER_INTEGER" && wanted == "NUMBER_DOUBLE")
}

fn type_mismatch(at: &str, given: &str, wanted: &str) -> Issue {
    Issue::error(at, "TYPE_MISMATCH", format!("a {given} cannot feed an input of type {wanted}"))
}
