//! A run's input parameters: the given ones cast to their declared types, defaults applied.

use std::collections::{BTreeMap, HashMap};

use highwind_common::{proto_json, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use serde_json::Value;

use crate::{error::Error, runs::values};

/// Casts the given parameters to their declared types and applies defaults; unknown, mistyped and missing
/// required parameters are violations naming `run.parameters.<name>`.
pub(super) fn cast(
    description: &pb::PipelineDescription,
    given: &HashMap<String, prost_types::Value>,
) -> Result<BTreeMap<String, Value>, Error> {
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
            Some(value) => match proto_json::from_proto(value) {
                Ok(value) => Some(value),
                Err(e) => {
                    violations.add(&at, e);
                    continue;
                }
            },
            None => declared.default_value.as_ref().and_then(|d| proto_json::from_proto(d).ok()),
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
    if violations.is_empty() { Ok(parameters) } else { Err(Error::Invalid(violations)) }
}
