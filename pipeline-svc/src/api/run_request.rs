//! What CreateRun checks in a request before anything is stored: parameters cast to their declared types, input
//! bindings resolved as the caller, output destinations the caller may write to.

use std::collections::BTreeMap;

use highwind_common::{labels, principal::Principal, status, validation::Violations};
use highwind_proto::{asset::v1::AssetKind, pipeline::v1 as pb};
use serde_json::Value;
use tonic::Status;

use super::{
    read_error,
    runs::{MAX_DESCRIPTION, MAX_DISPLAY_NAME, Runs, is_version_name},
};
use crate::{
    assets::ReadError,
    executor::{ExecutorConfig, register},
    ir,
    runs::{
        model::{Backend, Binding, Destination, NewAssetSpec},
        values,
    },
};

impl Runs {
    /// Checks and resolves input bindings: each target once, each version readable and of a fitting kind, every
    /// required input artifact bound and every unbound importer's URI a Highwind asset version (on KFP: an
    /// object-store URI KFP reads itself; asset versions cannot go there).
    pub(super) async fn bindings(
        &self,
        principal: &Principal,
        description: &pb::PipelineDescription,
        asked: &pb::Run,
        parameters: &BTreeMap<String, Value>,
        backend: Backend,
    ) -> Result<Vec<Binding>, Status> {
        use pb::input_binding::Target;
        let mut violations = Violations::new();
        let mut bound = Vec::new();
        let mut asset_importers = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, binding) in asked.input_bindings.iter().enumerate() {
            let at = format!("run.input_bindings[{index}]");
            let (pipeline_input, importer_task, artifact_type) = match &binding.target {
                Some(Target::PipelineInput(key)) => match description.input_artifacts.iter().find(|a| &a.name == key) {
                    Some(a) => (key.clone(), String::new(), a.artifact_type.clone()),
                    None => {
                        violations.add(
                            format!("{at}.pipeline_input"),
                            format!("{key:?} is not an input artifact of the pipeline"),
                        );
                        continue;
                    }
                },
                Some(Target::ImporterTask(task)) => match description.importers.iter().find(|i| &i.task == task) {
                    Some(i) => (String::new(), task.clone(), i.artifact_type.clone()),
                    None => {
                        violations.add(
                            format!("{at}.importer_task"),
                            format!("{task:?} is not an importer task of the pipeline"),
                        );
                        continue;
                    }
                },
                None => {
                    violations.add(format!("{at}.target"), "required: pipeline_input or importer_task");
                    continue;
                }
            };
            if !seen.insert((pipeline_input.clone(), importer_task.clone())) {
                violations.add(format!("{at}.target"), "bound more than once");
                continue;
            }
            if !is_version_name(&binding.asset_version) {
                violations.add(format!("{at}.asset_version"), "required: assets/{asset}/versions/{version-or-alias}");
                continue;
            }
            let version = match self.assets.version(principal, &binding.asset_version).await {
                Ok(version) if version.usable => version,
                Ok(version) => return Err(read_error(ReadError::NotReady(version.name))),
                Err(e) => return Err(read_error(e)),
            };
            let wanted = match artifact_type.as_str() {
                "system.Dataset" => Some(AssetKind::Dataset),
                "system.Model" => Some(AssetKind::Model),
                _ => None,
            };
            if let Some(wanted) = wanted
                && wanted != version.kind
            {
                violations.add(
                    format!("{at}.asset_version"),
                    format!(
                        "{artifact_type} needs a {} asset; {} is a {}",
                        wanted.as_str_name(),
                        version.name,
                        version.kind.as_str_name()
                    ),
                );
                continue;
            }
            let requested = binding.asset_version.rsplit('/').next().unwrap_or_default();
            let exact = version.name.rsplit('/').next().unwrap_or_default();
            bound.push(Binding {
                pipeline_input,
                importer_task,
                asset_version: version.name.clone(),
                alias: if requested == exact { String::new() } else { requested.to_owned() },
                asset_kind: version.kind.as_str_name().to_owned(),
            });
        }
        for input in &description.input_artifacts {
            if !input.optional && !seen.iter().any(|(p, _)| p == &input.name) {
                violations.add(
                    "run.input_bindings",
                    format!("input artifact {:?} must be bound to an asset version", input.name),
                );
            }
        }
        for importer in &description.importers {
            // A binding, even one refused above, replaces the URI: judge the binding, not the URI too.
            if seen.iter().any(|(_, task)| task == &importer.task) {
                continue;
            }
            let uri = if importer.uri_parameter.is_empty() {
                Some(importer.uri_constant.clone()).filter(|u| !u.is_empty())
            } else {
                parameters.get(&importer.uri_parameter).and_then(Value::as_str).map(str::to_owned)
            };
            let Some(uri) = uri else { continue };
            let field = if importer.uri_parameter.is_empty() {
                "run.input_bindings".to_owned()
            } else {
                format!("run.parameters.{}", importer.uri_parameter)
            };
            match backend {
                Backend::Local if !is_asset_uri(&uri) => violations.add(
                    field,
                    format!(
                        "importer {:?} would import {uri:?}: only highwind://assets/{{asset}}/versions/{{version}} URIs are \
                         imported (the server never fetches other URLs); bind the importer to an asset version",
                        importer.task
                    ),
                ),
                // KFP fetches these itself, with its own credentials; this server never reads them.
                Backend::Kfp if !is_asset_uri(&uri) && !is_object_store_uri(&uri) => violations.add(
                    field,
                    format!(
                        "importer {:?} would import {uri:?}: on Kubeflow Pipelines an importer takes an s3://, gs:// \
                         or minio:// URI that KFP reads itself",
                        importer.task
                    ),
                ),
                Backend::Kfp if is_asset_uri(&uri) => asset_importers.push(importer.task.clone()),
                _ => {}
            }
        }
        if !violations.is_empty() {
            return Err(status::invalid_argument(&violations));
        }
        if backend == Backend::Kfp && (!bound.is_empty() || !asset_importers.is_empty()) {
            return Err(super::runs::kfp_refusal(
                "KFP_ASSET_INPUTS",
                "Kubeflow Pipelines reads input artifacts from object storage (s3://...) and this server does not \
                 hand asset versions to KFP: a KFP run cannot take asset inputs; give importers an object-store URI \
                 or use LOCAL",
            ));
        }
        Ok(bound)
    }

    /// Checks output destinations: each names a Dataset or Model output of a task (or of the pipeline) once, and
    /// an existing asset of a fitting kind that the caller owns, or a well-formed new asset.
    pub(super) async fn destinations(
        &self,
        principal: &Principal,
        pipeline: &ir::Pipeline,
        description: &pb::PipelineDescription,
        asked: &[pb::OutputDestination],
    ) -> Result<Vec<Destination>, Status> {
        use pb::output_destination::Destination as Target;
        let mut violations = Violations::new();
        let mut checked = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, destination) in asked.iter().enumerate() {
            let at = format!("run.output_destinations[{index}]");
            let component = if destination.task.is_empty() {
                pipeline.spec.root.as_ref()
            } else {
                description
                    .tasks
                    .iter()
                    .find(|t| t.task == destination.task)
                    .and_then(|t| pipeline.spec.components.get(&t.component))
            };
            let Some(component) = component else {
                violations.add(format!("{at}.task"), format!("{:?} is not a task of the pipeline", destination.task));
                continue;
            };
            let Some(output) = component.output_definitions.artifacts.get(&destination.output_key) else {
                violations.add(
                    format!("{at}.output_key"),
                    format!("{:?} is not an output artifact there", destination.output_key),
                );
                continue;
            };
            let Some(kind) = register::kind_for(&output.artifact_type.schema_title) else {
                violations.add(
                    format!("{at}.output_key"),
                    format!(
                        "a {} output cannot become an asset version: only system.Dataset and system.Model",
                        output.artifact_type.schema_title
                    ),
                );
                continue;
            };
            if !seen.insert((destination.task.clone(), destination.output_key.clone())) {
                violations.add(format!("{at}.output_key"), "named by more than one destination");
                continue;
            }
            let mut checked_one = Destination {
                task: destination.task.clone(),
                output_key: destination.output_key.clone(),
                ..Destination::default()
            };
            match &destination.destination {
                Some(Target::Asset(name)) => {
                    let asset = self.assets.asset(principal, name).await.map_err(read_error)?;
                    if asset.owner != principal.as_str() {
                        return Err(Status::permission_denied(format!(
                            "{name}: only its owner can add versions to it"
                        )));
                    }
                    if asset.kind != kind {
                        violations.add(
                            format!("{at}.asset"),
                            format!(
                                "a {} output needs a {} asset; {name} is a {}",
                                output.artifact_type.schema_title,
                                kind.as_str_name(),
                                asset.kind.as_str_name()
                            ),
                        );
                        continue;
                    }
                    checked_one.asset = asset.name;
                }
                Some(Target::NewAsset(new)) => {
                    let length = new.display_name.chars().count();
                    if length == 0 || length > MAX_DISPLAY_NAME {
                        violations.add(
                            format!("{at}.new_asset.display_name"),
                            format!("required, at most {MAX_DISPLAY_NAME} characters"),
                        );
                    }
                    if new.description.chars().count() > MAX_DESCRIPTION {
                        violations.add(
                            format!("{at}.new_asset.description"),
                            format!("at most {MAX_DESCRIPTION} characters"),
                        );
                    }
                    let labels: BTreeMap<String, String> = new.labels.clone().into_iter().collect();
                    labels::validate(&labels, &format!("{at}.new_asset.labels"), &mut violations);
                    checked_one.new_asset = Some(NewAssetSpec {
                        display_name: new.display_name.clone(),
                        description: new.description.clone(),
                        labels,
                    });
                }
                None => {
                    violations.add(format!("{at}.destination"), "required: asset or new_asset");
                    continue;
                }
            }
            checked.push(checked_one);
        }
        if violations.is_empty() { Ok(checked) } else { Err(status::invalid_argument(&violations)) }
    }
}

/// `highwind://assets/{asset}/versions/{version}` with plain segments.
fn is_asset_uri(uri: &str) -> bool {
    uri.strip_prefix("highwind://").is_some_and(|rest| {
        is_version_name(rest)
            && rest
                .split('/')
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    })
}

/// `s3://`, `gs://` or `minio://` with a bucket and a key of plain segments: what KFP's launcher imports.
fn is_object_store_uri(uri: &str) -> bool {
    ["s3://", "gs://", "minio://"].iter().any(|scheme| {
        uri.strip_prefix(scheme).is_some_and(|rest| {
            rest.contains('/')
                && rest.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
                && !rest.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        })
    })
}

/// Casts the given parameters to their declared types and applies defaults; unknown, mistyped and missing
/// required parameters are INVALID_ARGUMENT naming `run.parameters.<name>`.
pub(super) fn cast_parameters(
    description: &pb::PipelineDescription,
    given: &std::collections::HashMap<String, prost_types::Value>,
) -> Result<BTreeMap<String, Value>, Status> {
    let mut violations = Violations::new();
    let mut parameters = BTreeMap::new();
    let mut names: Vec<&String> = given.keys().collect();
    names.sort();
    for name in names {
        if !description.input_parameters.iter().any(|p| &p.name == name) {
            violations.add(format!("run.parameters.{name}"), "the pipeline has no such input parameter");
        }
    }
    for declared in &description.input_parameters {
        let at = format!("run.parameters.{}", declared.name);
        let type_name = pb::ParameterType::try_from(declared.r#type)
            .map(|t| t.as_str_name().trim_start_matches("PARAMETER_TYPE_").to_owned())
            .unwrap_or_default();
        let value = match given.get(&declared.name) {
            Some(value) => match highwind_common::proto_json::from_proto(value) {
                Ok(value) => Some(value),
                Err(e) => {
                    violations.add(&at, e);
                    continue;
                }
            },
            None => declared.default_value.as_ref().and_then(|d| highwind_common::proto_json::from_proto(d).ok()),
        };
        match value {
            Some(value) => match values::cast(&type_name, &value) {
                Ok(value) => {
                    parameters.insert(declared.name.clone(), value);
                }
                Err(e) => violations.add(&at, e),
            },
            None if declared.required => violations.add(&at, "required: the pipeline gives it no default"),
            None => {}
        }
    }
    if violations.is_empty() { Ok(parameters) } else { Err(status::invalid_argument(&violations)) }
}

/// INVALID_ARGUMENT naming the executor limit a run of this size would pass (`run.pipeline_version` is where the
/// size comes from); what only the run can tell is checked by its driver.
pub(super) fn within_limits(size: &ir::Size, config: &ExecutorConfig) -> Result<(), Status> {
    let mut violations = Violations::new();
    let over = |count: u64, limit: usize| limit > 0 && count > u64::try_from(limit).unwrap_or(u64::MAX);
    if over(size.tasks, config.max_tasks_per_run) {
        violations.add(
            "run.pipeline_version",
            format!(
                "the pipeline expands to {} tasks; at most {} per run (executor.max_tasks_per_run)",
                size.tasks, config.max_tasks_per_run
            ),
        );
    }
    if over(size.loop_items, config.max_loop_items) {
        violations.add(
            "run.pipeline_version",
            format!(
                "the pipeline's loops hold {} items; at most {} per run (executor.max_loop_items)",
                size.loop_items, config.max_loop_items
            ),
        );
    }
    if violations.is_empty() { Ok(()) } else { Err(status::invalid_argument(&violations)) }
}
