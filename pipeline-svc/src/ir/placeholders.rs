//! The placeholders an executor understands (`{{$...}}` and the structural `IfPresent` / `Concat`), checked
//! against what the component declares.

use serde_json::Value;

use super::spec::Definitions;

/// Run-level placeholders, after `{{$.`.
const RUN_LEVEL: [&str; 11] = [
    "pipeline_job_name",
    "pipeline_job_resource_name",
    "pipeline_job_uuid",
    "pipeline_task_name",
    "pipeline_task_uuid",
    "pipeline_root",
    "pipeline_job_create_time_utc",
    "pipeline_job_schedule_time_utc",
    "workspace_path",
    "outputs.output_file",
    "outputMetadataUri",
];

/// What a string may refer to: the component's declared inputs and outputs.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Declared inputs.
    pub inputs: &'a Definitions,
    /// Declared outputs.
    pub outputs: &'a Definitions,
}

/// Every placeholder in `text` this scope cannot fill, as written. `text` may be a structural placeholder (a JSON
/// `IfPresent` or `Concat` object).
pub fn unknown_in(text: &str, scope: Scope<'_>) -> Vec<String> {
    let mut unknown = Vec::new();
    if text.trim_start().starts_with('{')
        && let Ok(structural @ Value::Object(_)) = serde_json::from_str::<Value>(text)
    {
        structural_unknowns(&structural, scope, &mut unknown);
        return unknown;
    }
    let mut rest = text;
    while let Some(start) = rest.find("{{$") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            unknown.push(rest[start..].to_owned());
            break;
        };
        let expression = &after[..end];
        if !known(expression, scope) {
            unknown.push(format!("{{{{{expression}}}}}"));
        }
        rest = &after[end + 2..];
    }
    unknown
}

fn structural_unknowns(value: &Value, scope: Scope<'_>, unknown: &mut Vec<String>) {
    match value {
        Value::String(text) => unknown.extend(unknown_in(text, scope)),
        Value::Array(items) => items.iter().for_each(|item| structural_unknowns(item, scope, unknown)),
        Value::Object(object) => {
            for (key, inner) in object {
                match key.as_str() {
                    "IfPresent" => {
                        let name = inner.get("InputName").and_then(Value::as_str).unwrap_or_default();
                        if !scope.inputs.parameters.contains_key(name) && !scope.inputs.artifacts.contains_key(name) {
                            unknown.push(format!("IfPresent InputName {name:?}"));
                        }
                        for branch in ["Then", "Else"] {
                            if let Some(branch) = inner.get(branch) {
                                structural_unknowns(branch, scope, unknown);
                            }
                        }
                    }
                    "Concat" => structural_unknowns(inner, scope, unknown),
                    other => unknown.push(format!("structural placeholder {other:?}")),
                }
            }
        }
        _ => {}
    }
}

/// Whether `expression` (between `{{` and `}}`, starting with `$`) names something the scope has.
fn known(expression: &str, scope: Scope<'_>) -> bool {
    if expression == "$" {
        return true;
    }
    let Some(path) = expression.strip_prefix("$.") else {
        return false;
    };
    if RUN_LEVEL.contains(&path) {
        return true;
    }
    let artifact_suffix = |suffix: &str| {
        suffix.is_empty()
            || [".path", ".uri", ".metadata"].contains(&suffix)
            || suffix.strip_prefix(".metadata['").is_some_and(|k| k.ends_with("']"))
    };
    if let Some((name, suffix)) = named(path, "inputs.parameters") {
        return suffix.is_empty() && scope.inputs.parameters.contains_key(name);
    }
    if let Some((name, suffix)) = named(path, "inputs.artifacts") {
        return artifact_suffix(suffix) && scope.inputs.artifacts.contains_key(name);
    }
    if let Some((name, suffix)) = named(path, "outputs.artifacts") {
        return artifact_suffix(suffix) && scope.outputs.artifacts.contains_key(name);
    }
    if let Some((name, suffix)) = named(path, "outputs.parameters") {
        return suffix == ".output_file" && scope.outputs.parameters.contains_key(name);
    }
    false
}

/// `prefix['name']suffix` → (name, suffix).
fn named<'p>(path: &'p str, prefix: &str) -> Option<(&'p str, &'p str)> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
    let end = rest.find("']")?;
    Some((&rest[..end], &rest[end + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::spec::{ArtifactDefinition, ParameterDefinition};

    #[test]
    fn declared_names_and_run_values_are_known_everything_else_is_not() {
        let mut inputs = Definitions::default();
        inputs.parameters.insert("n".into(), ParameterDefinition::default());
        inputs.artifacts.insert("in_ds".into(), ArtifactDefinition::default());
        let mut outputs = Definitions::default();
        outputs.parameters.insert("count".into(), ParameterDefinition::default());
        outputs.artifacts.insert("out_ds".into(), ArtifactDefinition::default());
        let scope = Scope { inputs: &inputs, outputs: &outputs };
        for fine in [
            "{{$}}",
            "run {{$.inputs.parameters['n']}} on {{$.inputs.artifacts['in_ds'].path}}",
            "{{$.outputs.artifacts['out_ds'].uri}} {{$.outputs.parameters['count'].output_file}}",
            "{{$.inputs.artifacts['in_ds'].metadata['rows']}} {{$.pipeline_job_name}} {{$.outputs.output_file}}",
            r#"{"IfPresent": {"InputName": "n", "Then": ["--n", "{{$.inputs.parameters['n']}}"]}}"#,
            r#"{"Concat": ["--out=", "{{$.outputs.artifacts['out_ds'].path}}"]}"#,
        ] {
            assert_eq!(unknown_in(fine, scope), Vec::<String>::new(), "{fine}");
        }
        for (bad, expected) in [
            ("{{$.inputs.parameters['m']}}", "{{$.inputs.parameters['m']}}"),
            ("{{$.inputs.parameters['n'].path}}", "{{$.inputs.parameters['n'].path}}"),
            ("{{$.outputs.parameters['count']}}", "{{$.outputs.parameters['count']}}"),
            ("{{$.secrets['token']}}", "{{$.secrets['token']}}"),
            ("{{$.inputs.parameters['n']", "{{$.inputs.parameters['n']"),
            (r#"{"IfPresent": {"InputName": "nope", "Then": []}}"#, "IfPresent InputName \"nope\""),
        ] {
            assert_eq!(unknown_in(bad, scope), [expected], "{bad}");
        }
    }
}
