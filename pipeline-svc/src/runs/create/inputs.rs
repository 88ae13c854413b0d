//! A run's inputs: bindings resolved as the caller (each target once, the exact version, a kind that fits the
//! artifact type), every required input artifact bound, and importers left unbound reading only what the backend
//! may import.

use std::collections::{BTreeMap, HashSet};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::{asset::v1::AssetKind, pipeline::v1 as pb};
use serde_json::Value;

use super::RunRequest;
use crate::{
    assets::{AssetFiles, is_version_name},
    error::{Error, KfpRefusal},
    runs::entities::{Backend, Binding},
};

/// What a binding binds: a pipeline input artifact or an importer task, and the artifact type it takes.
#[derive(Debug)]
struct Target {
    pipeline_input: String,
    importer_task: String,
    artifact_type: String,
}

/// The (pipeline input, importer task) pairs bound so far.
type Seen = HashSet<(String, String)>;

/// Checks and resolves the request's input bindings: each target once, each version readable and of a fitting
/// kind, every required input artifact bound and every unbound importer's URI a Highwind asset version (on KFP:
/// an object-store URI KFP reads itself; asset versions cannot go there).
pub(super) async fn bindings(
    assets: &dyn AssetFiles,
    principal: &Principal,
    description: &pb::PipelineDescription,
    request: &RunRequest,
    parameters: &BTreeMap<String, Value>,
) -> Result<Vec<Binding>, Error> {
    let mut violations = Violations::new();
    let mut bound = Vec::new();
    let mut seen = Seen::new();
    for (index, binding) in request.input_bindings.iter().enumerate() {
        let at = format!("run.input_bindings[{index}]");
        let Some(target) = target(description, binding, &at, &mut violations) else { continue };
        if !seen.insert((target.pipeline_input.clone(), target.importer_task.clone())) {
            violations.add(format!("{at}.target"), "bound more than once");
            continue;
        }
        if let Some(resolved) = resolve(assets, principal, binding, target, &at, &mut violations).await? {
            bound.push(resolved);
        }
    }
    required_inputs_bound(description, &seen, &mut violations);
    let asset_importers = unbound_importers(description, &seen, parameters, request.backend, &mut violations);
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    if request.backend == Backend::Kfp && (!bound.is_empty() || !asset_importers.is_empty()) {
        return Err(Error::NotForKfp(KfpRefusal::AssetInputs));
    }
    Ok(bound)
}

/// The pipeline input or importer `binding` names, if the pipeline has it.
fn target(
    description: &pb::PipelineDescription,
    binding: &pb::InputBinding,
    at: &str,
    violations: &mut Violations,
) -> Option<Target> {
    use pb::input_binding::Target as Asked;
    match &binding.target {
        Some(Asked::PipelineInput(key)) => match description.input_artifacts.iter().find(|a| &a.name == key) {
            Some(a) => Some(Target {
                pipeline_input: key.clone(),
                importer_task: String::new(),
                artifact_type: a.artifact_type.clone(),
            }),
            None => {
                violations
                    .add(format!("{at}.pipeline_input"), format!("{key:?} is not an input artifact of the pipeline"));
                None
            }
        },
        Some(Asked::ImporterTask(task)) => match description.importers.iter().find(|i| &i.task == task) {
            Some(i) => Some(Target {
                pipeline_input: String::new(),
                importer_task: task.clone(),
                artifact_type: i.artifact_type.clone(),
            }),
            None => {
                violations
                    .add(format!("{at}.importer_task"), format!("{task:?} is not an importer task of the pipeline"));
                None
            }
        },
        None => {
            violations.add(format!("{at}.target"), "required: pipeline_input or importer_task");
            None
        }
    }
}

/// `binding`'s asset version as `principal` may read it, if it is usable and its kind fits `target`.
async fn resolve(
    assets: &dyn AssetFiles,
    principal: &Principal,
    binding: &pb::InputBinding,
    target: Target,
    at: &str,
    violations: &mut Violations,
) -> Result<Option<Binding>, Error> {
    if !is_version_name(&binding.asset_version) {
        violations.add(format!("{at}.asset_version"), "required: assets/{asset}/versions/{version-or-alias}");
        return Ok(None);
    }
    let version = assets.version(principal, &binding.asset_version).await?;
    if !version.usable {
        return Err(Error::NotReady(version.name));
    }
    let wanted = match target.artifact_type.as_str() {
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
                "{} needs a {} asset; {} is a {}",
                target.artifact_type,
                wanted.as_str_name(),
                version.name,
                version.kind.as_str_name()
            ),
        );
        return Ok(None);
    }
    let requested = binding.asset_version.rsplit('/').next().unwrap_or_default();
    let exact = version.name.rsplit('/').next().unwrap_or_default();
    Ok(Some(Binding {
        pipeline_input: target.pipeline_input,
        importer_task: target.importer_task,
        alias: if requested == exact { String::new() } else { requested.to_owned() },
        asset_kind: version.kind.as_str_name().to_owned(),
        asset_version: version.name,
    }))
}

/// A violation for every required input artifact no binding targets.
fn required_inputs_bound(description: &pb::PipelineDescription, seen: &Seen, violations: &mut Violations) {
    for input in &description.input_artifacts {
        if !input.optional && !seen.iter().any(|(p, _)| p == &input.name) {
            violations.add(
                "run.input_bindings",
                format!("input artifact {:?} must be bound to an asset version", input.name),
            );
        }
    }
}

/// A violation for every unbound importer whose URI `backend` may not import; the unbound importers that import
/// an asset version, which only LOCAL runs can.
fn unbound_importers(
    description: &pb::PipelineDescription,
    seen: &Seen,
    parameters: &BTreeMap<String, Value>,
    backend: Backend,
    violations: &mut Violations,
) -> Vec<String> {
    let mut asset_importers = Vec::new();
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
    asset_importers
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
