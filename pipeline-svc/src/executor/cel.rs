//! Conditions and parameter selectors evaluated with a real CEL interpreter, over the same variables KFP's driver
//! gives them: `inputs.parameter_values` for conditions; `string_value`, `number_value`, `bool_value`,
//! `struct_value` and `list_value` for selectors; plus KFP's `parseJson()`.

use std::{collections::BTreeMap, sync::Arc};

use cel_interpreter::{Context, ExecutionError, Program, Value as CelValue};
use serde_json::{Value, json};

fn context() -> Context<'static> {
    let mut context = Context::default();
    context.add_function("parseJson", |text: Arc<String>| -> Result<CelValue, ExecutionError> {
        let parsed: Value = serde_json::from_str(&text).map_err(|e| ExecutionError::function_error("parseJson", e))?;
        cel_interpreter::to_value(doubles(&parsed)).map_err(|e| ExecutionError::function_error("parseJson", e))
    });
    context
}

/// KFP hands CEL `google.protobuf.Value`s, whose numbers are all doubles.
fn doubles(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        Value::Array(items) => Value::Array(items.iter().map(doubles).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), doubles(v))).collect()),
        other => other.clone(),
    }
}

/// Parses `expression`; the error is the parser's. The interpreter's parser panics on some inputs (an integer
/// literal past `i64`, say): that is a refusal like any other, never a crash of the caller.
pub fn compile(expression: &str) -> Result<Program, String> {
    match std::panic::catch_unwind(|| Program::compile(expression)) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the CEL parser cannot read it".to_owned()),
    }
}

/// Runs `program`; a panic inside the interpreter is an error, as for [`compile`].
fn execute(program: &Program, context: &Context, expression: &str) -> Result<CelValue, String> {
    let run = std::panic::AssertUnwindSafe(|| program.execute(context));
    match std::panic::catch_unwind(run) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{expression:?} failed: {e}")),
        Err(_) => Err(format!("{expression:?} failed")),
    }
}

/// Whether the trigger `condition` holds for a task whose input parameters are `parameters`.
pub fn condition(condition: &str, parameters: &BTreeMap<String, Value>) -> Result<bool, String> {
    let program = compile(condition).map_err(|e| format!("{condition:?} does not parse: {e}"))?;
    let mut context = context();
    let parameter_values: serde_json::Map<String, Value> =
        parameters.iter().map(|(k, v)| (k.clone(), doubles(v))).collect();
    context
        .add_variable("inputs", json!({ "parameter_values": parameter_values }))
        .map_err(|e| format!("cannot pass the inputs to CEL: {e}"))?;
    match execute(&program, &context, condition)? {
        CelValue::Bool(holds) => Ok(holds),
        other => Err(format!("{condition:?} gave {other:?}, not a boolean")),
    }
}

/// The value `selector` picks out of `value` (e.g. a field of a loop item).
pub fn select(selector: &str, value: &Value) -> Result<Value, String> {
    let program = compile(selector).map_err(|e| format!("{selector:?} does not parse: {e}"))?;
    let mut context = context();
    let as_string = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let variables = [
        ("string_value", Value::String(as_string)),
        ("number_value", doubles(&value.as_f64().map_or(Value::Null, Value::from))),
        ("bool_value", value.as_bool().map_or(Value::Null, Value::Bool)),
        ("struct_value", if value.is_object() { doubles(value) } else { Value::Null }),
        ("list_value", if value.is_array() { doubles(value) } else { Value::Null }),
    ];
    for (name, variable) in variables {
        context.add_variable(name, variable).map_err(|e| format!("cannot pass {name} to CEL: {e}"))?;
    }
    let picked = execute(&program, &context, selector)?;
    picked.json().map_err(|e| format!("{selector:?} gave a value with no JSON form: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_see_parameter_values_the_way_kfp_passes_them() {
        let parameters: BTreeMap<String, Value> =
            [("pipelinechannel--join-Output".to_owned(), json!(12)), ("coin".to_owned(), json!("heads"))].into();
        assert_eq!(
            condition("int(inputs.parameter_values['pipelinechannel--join-Output']) > 10", &parameters),
            Ok(true)
        );
        assert_eq!(condition("!(inputs.parameter_values['coin'] == 'heads')", &parameters), Ok(false));
        assert!(condition("inputs.parameter_values['coin']", &parameters).is_err());
    }

    #[test]
    fn inputs_that_make_the_interpreter_panic_are_refused() {
        // Found by the `cel` fuzz target: an integer literal past i64 made the parser panic.
        let huge = "-0888888888888888888888888888888888888888";
        assert!(condition(huge, &BTreeMap::new()).is_err());
        assert!(select(huge, &json!(1)).is_err());
        assert!(compile(huge).is_err());
    }

    #[test]
    fn selectors_pick_fields_of_json_items() {
        assert_eq!(select("parseJson(string_value)[\"a\"]", &json!("{\"a\": 1, \"b\": 2}")), Ok(json!(1.0)));
        assert_eq!(select("struct_value.b", &json!({"a": 1, "b": "x"})), Ok(json!("x")));
    }
}
