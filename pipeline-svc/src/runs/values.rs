//! Parameter values the way KFP's launcher treats them: cast by `parameterType`, integral numbers written as
//! integers, and the text form placeholders substitute.

use serde_json::{Number, Value};

/// `value` as a `parameter_type`, or why it is not one. A whole float is an integer (`5.0` → `5`); a string is
/// never parsed into anything else.
pub fn cast(parameter_type: &str, value: &Value) -> Result<Value, String> {
    let wrong = || format!("expected {}, got {}", describe(parameter_type), kind(value));
    match parameter_type {
        "NUMBER_INTEGER" => match value.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Ok(Value::from(f as i64)),
            Some(_) => Err(format!("expected a whole number, got {value}")),
            None => Err(wrong()),
        },
        "NUMBER_DOUBLE" => value.as_f64().map(Value::from).ok_or_else(wrong),
        "STRING" => value.is_string().then(|| value.clone()).ok_or_else(wrong),
        "BOOLEAN" => value.is_boolean().then(|| value.clone()).ok_or_else(wrong),
        "LIST" => value.is_array().then(|| integral(value)).ok_or_else(wrong),
        "STRUCT" => value.is_object().then(|| integral(value)).ok_or_else(wrong),
        _ => Ok(integral(value)),
    }
}

/// Converts a parameter's text, as a task wrote it to its output file, by type: strings raw, numbers and booleans
/// trimmed and parsed, lists and structs as JSON.
pub fn from_text(parameter_type: &str, text: &str) -> Result<Value, String> {
    let parsed = match parameter_type {
        "STRING" => return Ok(Value::String(text.to_owned())),
        "BOOLEAN" => match text.trim() {
            "true" | "True" => Value::Bool(true),
            "false" | "False" => Value::Bool(false),
            other => return Err(format!("{other:?} is not a boolean")),
        },
        _ => serde_json::from_str(text.trim()).map_err(|_| format!("{:?} is not a {}", text.trim(), parameter_type))?,
    };
    cast(parameter_type, &parsed)
}

/// The text a `{{$.inputs.parameters['x']}}` placeholder becomes: strings raw, whole numbers without a fraction,
/// lists and structs as JSON.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => integral(other).to_string(),
    }
}

/// `value` with every whole float written as an integer, the way Go's protojson prints numbers.
pub fn integral(value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                Value::Number(Number::from(f as i64))
            }
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(integral).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), integral(v))).collect()),
        other => other.clone(),
    }
}

fn describe(parameter_type: &str) -> &str {
    match parameter_type {
        "NUMBER_DOUBLE" => "a number",
        "NUMBER_INTEGER" => "a whole number",
        "STRING" => "a string",
        "BOOLEAN" => "a boolean",
        "LIST" => "a list",
        "STRUCT" => "an object",
        other => other,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_accept_whole_floats_and_nothing_is_parsed_from_strings() {
        assert_eq!(cast("NUMBER_INTEGER", &json!(5.0)), Ok(json!(5)));
        assert!(cast("NUMBER_INTEGER", &json!(5.5)).is_err());
        assert!(cast("NUMBER_INTEGER", &json!("5")).is_err());
        assert_eq!(cast("NUMBER_DOUBLE", &json!(2)), Ok(json!(2.0)));
        assert_eq!(cast("LIST", &json!([1.0, 4.0])), Ok(json!([1, 4])));
        assert!(cast("BOOLEAN", &json!("true")).is_err());
    }

    #[test]
    fn output_files_convert_by_type_and_text_drops_whole_fractions() {
        assert_eq!(from_text("STRING", "made 5 rows\n"), Ok(json!("made 5 rows\n")));
        assert_eq!(from_text("NUMBER_INTEGER", " 4\n"), Ok(json!(4)));
        assert_eq!(from_text("NUMBER_DOUBLE", "60.0"), Ok(json!(60.0)));
        assert_eq!(from_text("STRUCT", "{\"a\": 1}"), Ok(json!({"a": 1})));
        assert!(from_text("NUMBER_INTEGER", "four").is_err());
        assert_eq!(to_text(&json!(2.0)), "2");
        assert_eq!(to_text(&json!(2.5)), "2.5");
        assert_eq!(to_text(&json!([1.0, "a"])), "[1,\"a\"]");
    }
}
