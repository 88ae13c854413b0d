//! A run's output destinations: each a Dataset or Model output of a task (or of the pipeline), named once, going
//! to an asset of a fitting kind that the caller owns or to a well-formed new asset.

use std::collections::{BTreeMap, HashSet};

use highwind_common::{labels, principal::Principal, validation::Violations};
use highwind_proto::{asset::v1::AssetKind, pipeline::v1 as pb};

use super::{MAX_DESCRIPTION, MAX_DISPLAY_NAME};
use crate::{
    assets::AssetFiles,
    error::Error,
    executor::register,
    ir,
    runs::entities::{Destination, NewAssetSpec},
};

/// The output a destination names: the asset kind it becomes a version of, and its artifact type.
#[derive(Debug)]
struct Output {
    kind: AssetKind,
    artifact_type: String,
}

/// Checks output destinations: each names a Dataset or Model output of a task (or of the pipeline) once, and
/// an existing asset of a fitting kind that the caller owns, or a well-formed new asset.
pub(super) async fn destinations(
    assets: &dyn AssetFiles,
    principal: &Principal,
    pipeline: &ir::Pipeline,
    description: &pb::PipelineDescription,
    asked: &[pb::OutputDestination],
) -> Result<Vec<Destination>, Error> {
    let mut violations = Violations::new();
    let mut checked = Vec::new();
    let mut seen = HashSet::new();
    for (index, destination) in asked.iter().enumerate() {
        let at = format!("run.output_destinations[{index}]");
        let Some(output) = output(pipeline, description, destination, &at, &mut violations) else { continue };
        if !seen.insert((destination.task.clone(), destination.output_key.clone())) {
            violations.add(format!("{at}.output_key"), "named by more than one destination");
            continue;
        }
        if let Some(one) = check(assets, principal, destination, &output, &at, &mut violations).await? {
            checked.push(one);
        }
    }
    if violations.is_empty() { Ok(checked) } else { Err(Error::Invalid(violations)) }
}

/// The output `destination` names, if its task has it and it can become an asset version.
fn output(
    pipeline: &ir::Pipeline,
    description: &pb::PipelineDescription,
    destination: &pb::OutputDestination,
    at: &str,
    violations: &mut Violations,
) -> Option<Output> {
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
        return None;
    };
    let Some(output) = component.output_definitions.artifacts.get(&destination.output_key) else {
        violations
            .add(format!("{at}.output_key"), format!("{:?} is not an output artifact there", destination.output_key));
        return None;
    };
    let artifact_type = output.artifact_type.schema_title.clone();
    let Some(kind) = register::kind_for(&artifact_type) else {
        violations.add(
            format!("{at}.output_key"),
            format!("a {artifact_type} output cannot become an asset version: only system.Dataset and system.Model"),
        );
        return None;
    };
    Some(Output { kind, artifact_type })
}

/// `destination` checked for `output`: the existing asset it names or the new asset it describes.
async fn check(
    assets: &dyn AssetFiles,
    principal: &Principal,
    destination: &pb::OutputDestination,
    output: &Output,
    at: &str,
    violations: &mut Violations,
) -> Result<Option<Destination>, Error> {
    use pb::output_destination::Destination as Target;
    let mut checked = Destination {
        task: destination.task.clone(),
        output_key: destination.output_key.clone(),
        ..Destination::default()
    };
    match &destination.destination {
        Some(Target::Asset(name)) => {
            let asset = assets.asset(principal, name).await?;
            if asset.owner != principal.as_str() {
                return Err(Error::NotOwner(name.clone()));
            }
            if asset.kind != output.kind {
                violations.add(
                    format!("{at}.asset"),
                    format!(
                        "a {} output needs a {} asset; {name} is a {}",
                        output.artifact_type,
                        output.kind.as_str_name(),
                        asset.kind.as_str_name()
                    ),
                );
                return Ok(None);
            }
            checked.asset = asset.name;
        }
        Some(Target::NewAsset(new)) => checked.new_asset = Some(new_asset(new, at, violations)),
        None => {
            violations.add(format!("{at}.destination"), "required: asset or new_asset");
            return Ok(None);
        }
    }
    Ok(Some(checked))
}

/// The new asset `new` describes; a violation for each field out of bounds.
fn new_asset(new: &pb::NewAssetSpec, at: &str, violations: &mut Violations) -> NewAssetSpec {
    let length = new.display_name.chars().count();
    if length == 0 || length > MAX_DISPLAY_NAME {
        violations
            .add(format!("{at}.new_asset.display_name"), format!("required, at most {MAX_DISPLAY_NAME} characters"));
    }
    if new.description.chars().count() > MAX_DESCRIPTION {
        violations.add(format!("{at}.new_asset.description"), format!("at most {MAX_DESCRIPTION} characters"));
    }
    let labels: BTreeMap<String, String> = new.labels.clone().into_iter().collect();
    labels::validate(&labels, &format!("{at}.new_asset.labels"), violations);
    NewAssetSpec { display_name: new.display_name.clone(), description: new.description.clone(), labels }
}
