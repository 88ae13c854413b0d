//! Task caching, opt-in per run: a succeeded container task's outputs are remembered under a fingerprint shaped
//! like KFP's cache key, and a later task of the same creator with the same fingerprint takes them instead of
//! running, provided every file they name still exists.

use std::{collections::BTreeMap, path::Path};

use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;

use crate::{
    ir::spec::{ComponentSpec, Container},
    runs::entities::Values,
};

/// KFP's fingerprint: SHA-256 over the input artifacts (by identity, not content), the input parameter values,
/// the declared outputs and the unresolved command line; or, with a custom `cacheKey`, over the component name and
/// that key alone.
pub fn fingerprint(
    component_name: &str,
    custom_key: &str,
    component: &ComponentSpec,
    container: &Container,
    inputs: &Values,
) -> String {
    let text = if custom_key.is_empty() {
        let artifacts: BTreeMap<&String, Vec<&String>> =
            inputs.artifacts.iter().map(|(k, list)| (k, list.iter().map(|a| &a.uri).collect())).collect();
        let outputs: BTreeMap<&String, Value> = component
            .output_definitions
            .artifacts
            .iter()
            .map(|(k, d)| (k, json!({"schemaTitle": d.artifact_type.schema_title, "schemaVersion": d.artifact_type.schema_version})))
            .collect();
        let output_parameters: BTreeMap<&String, &String> =
            component.output_definitions.parameters.iter().map(|(k, d)| (k, &d.parameter_type)).collect();
        let command: Vec<&String> = container.command.iter().chain(&container.args).collect();
        json!({
            "inputArtifactNames": artifacts,
            "inputParameterValues": inputs.parameters,
            "outputArtifactsSpec": outputs,
            "outputParametersSpec": output_parameters,
            "containerSpec": {"image": container.image, "cmdArgs": command},
        })
        .to_string()
    } else {
        format!("{component_name}\0{custom_key}")
    };
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The first of `entries` (run, task, outputs) whose artifact files are all still there: an entry whose files are
/// gone is a miss. Looked at on a blocking thread, without following links.
pub async fn first_still_there(entries: Vec<(Uuid, String, Values)>) -> Option<(Uuid, String, Values)> {
    tokio::task::spawn_blocking(move || entries.into_iter().find(|(_, _, outputs)| still_there(outputs)))
        .await
        .ok()
        .flatten()
}

fn still_there(outputs: &Values) -> bool {
    outputs
        .artifacts
        .values()
        .flatten()
        .all(|a| !super::collect::needs_files(&a.artifact_type) || Path::new(&a.path).symlink_metadata().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::entities::Artifact;

    #[test]
    fn the_fingerprint_follows_inputs_and_command_unless_a_custom_key_is_given() {
        let component = ComponentSpec::default();
        let container = Container { image: "alpine".into(), command: vec!["sh".into()], ..Container::default() };
        let mut inputs = Values::default();
        inputs.parameters.insert("n".into(), json!(3));
        let base = fingerprint("comp-a", "", &component, &container, &inputs);
        assert_eq!(base, fingerprint("comp-a", "", &component, &container, &inputs), "stable");
        let mut other = inputs.clone();
        other.parameters.insert("n".into(), json!(4));
        assert_ne!(base, fingerprint("comp-a", "", &component, &container, &other));
        let mut with_artifact = inputs.clone();
        with_artifact
            .artifacts
            .insert("d".into(), vec![Artifact { uri: "highwind://x".into(), ..Artifact::default() }]);
        assert_ne!(base, fingerprint("comp-a", "", &component, &container, &with_artifact));
        let renamed = Container { args: vec!["-c".into()], ..container.clone() };
        assert_ne!(base, fingerprint("comp-a", "", &component, &renamed, &inputs));
        assert_eq!(
            fingerprint("comp-a", "v1", &component, &container, &inputs),
            fingerprint("comp-a", "v1", &component, &renamed, &other),
            "a custom key is all that counts"
        );
    }
}
