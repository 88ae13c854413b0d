//! What a pipeline takes and produces, for clients that build run forms without parsing YAML.

use highwind_proto::pipeline::v1 as pb;
use serde_json::Value;

use super::{
    Pipeline,
    spec::{ComponentSpec, Dag, Definitions},
};

/// The description of `pipeline` (its `pipeline_version` left empty).
pub fn describe(pipeline: &Pipeline) -> pb::PipelineDescription {
    let spec = &pipeline.spec;
    let root = spec.root.clone().unwrap_or_default();
    let mut description = pb::PipelineDescription {
        pipeline_name: spec.pipeline_info.name.clone(),
        display_name: spec.pipeline_info.display_name.clone(),
        description: spec.pipeline_info.description.clone(),
        sdk_version: spec.sdk_version.clone(),
        schema_version: spec.schema_version.clone(),
        input_parameters: parameters(&root.input_definitions, true),
        input_artifacts: artifacts(&root.input_definitions),
        output_parameters: parameters(&root.output_definitions, false),
        output_artifacts: artifacts(&root.output_definitions),
        has_platform_spec: pipeline.has_platform_spec,
        ..Default::default()
    };
    if let Some(dag) = &root.dag {
        walk(pipeline, dag, "", &mut description, 0);
    }
    description
}

/// Appends the tasks of `dag` (and of its sub-DAGs, parents first) under `parent`.
fn walk(pipeline: &Pipeline, dag: &Dag, parent: &str, out: &mut pb::PipelineDescription, depth: usize) {
    let spec = &pipeline.spec;
    for (key, task) in &dag.tasks {
        let path = if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") };
        let component = spec.components.get(&task.component_ref.name);
        let executor =
            component.and_then(|c| c.executor_label.as_ref()).and_then(|l| spec.deployment_spec.executors.get(l));
        let task_type = match (component.and_then(|c| c.dag.as_ref()), executor) {
            (Some(_), _) => pb::TaskType::Dag,
            (None, Some(e)) if e.importer.is_some() => pb::TaskType::Importer,
            (None, Some(_)) => pb::TaskType::Container,
            (None, None) => pb::TaskType::Unspecified,
        };
        let prefix = |name: &String| if parent.is_empty() { name.clone() } else { format!("{parent}.{name}") };
        out.tasks.push(pb::TaskSpec {
            task: path.clone(),
            task_key: key.clone(),
            display_name: task.task_info.name.clone(),
            component: task.component_ref.name.clone(),
            task_type: task_type as i32,
            parent_task: parent.to_owned(),
            dependent_tasks: task.dependent_tasks.iter().map(prefix).collect(),
            image: executor.and_then(|e| e.container.as_ref()).map(|c| c.image.clone()).unwrap_or_default(),
            condition: task.trigger_policy.condition.clone(),
            is_loop: task.parameter_iterator.is_some() || task.artifact_iterator.is_some(),
            is_exit_handler: task.trigger_policy.strategy == "ALL_UPSTREAM_TASKS_COMPLETED",
            max_retry_count: task.retry_policy.max_retry_count,
            caching_enabled: task.caching_options.enable_cache,
        });
        if let Some(importer) = executor.and_then(|e| e.importer.as_ref()) {
            let uri_parameter = importer.artifact_uri.runtime_parameter.clone().unwrap_or_default();
            out.importers.push(pb::ImporterSpec {
                task: path.clone(),
                artifact_type: importer.type_schema.schema_title.clone(),
                // The compiler passes a constant URI either in the executor or as the task's `uri` input.
                uri_constant: importer
                    .artifact_uri
                    .constant
                    .as_ref()
                    .or_else(|| {
                        let source = task.inputs.parameters.get(&uri_parameter)?;
                        source.runtime_value.as_ref().map(|v| &v.constant)
                    })
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                // The importer's `uri` input comes from a pipeline input when the DAG passes one through.
                uri_parameter: task
                    .inputs
                    .parameters
                    .get(&uri_parameter)
                    .and_then(|s| s.component_input_parameter.clone())
                    .unwrap_or_default(),
                reimport: importer.reimport,
            });
        }
        // The validator bounds nesting; this guards a description of an unvalidated document.
        if depth < 32
            && let Some(sub) = component.and_then(|c: &ComponentSpec| c.dag.as_ref())
        {
            walk(pipeline, sub, &path, out, depth + 1);
        }
    }
}

fn parameters(definitions: &Definitions, inputs: bool) -> Vec<pb::ParameterSpec> {
    definitions
        .parameters
        .iter()
        .map(|(name, p)| pb::ParameterSpec {
            name: name.clone(),
            r#type: parameter_type(&p.parameter_type) as i32,
            default_value: p.default_value.as_ref().map(highwind_common::proto_json::to_proto),
            optional: p.is_optional,
            required: inputs && p.default_value.is_none() && !p.is_optional,
            description: p.description.clone(),
        })
        .collect()
}

fn artifacts(definitions: &Definitions) -> Vec<pb::ArtifactSpec> {
    definitions
        .artifacts
        .iter()
        .map(|(name, a)| pb::ArtifactSpec {
            name: name.clone(),
            artifact_type: a.artifact_type.schema_title.clone(),
            schema_version: a.artifact_type.schema_version.clone(),
            is_list: a.is_artifact_list,
            optional: a.is_optional,
            description: a.description.clone(),
        })
        .collect()
}

fn parameter_type(name: &str) -> pb::ParameterType {
    pb::ParameterType::from_str_name(&format!("PARAMETER_TYPE_{name}")).unwrap_or(pb::ParameterType::Unspecified)
}
