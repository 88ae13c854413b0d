//! JSON values as `google.protobuf.Value` and back, for the contracts' `Struct` and `Value` fields.

use serde_json::Value;

/// `value` as a `google.protobuf.Value`.
pub fn to_proto(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(to_proto).collect() }),
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The entries of a JSON object as a `google.protobuf.Struct`; `None` when there are none, so an empty object
/// is an unset field.
pub fn struct_to_proto<'a>(entries: impl IntoIterator<Item = (&'a String, &'a Value)>) -> Option<prost_types::Struct> {
    let fields: std::collections::BTreeMap<String, prost_types::Value> =
        entries.into_iter().map(|(k, v)| (k.clone(), to_proto(v))).collect();
    (!fields.is_empty()).then_some(prost_types::Struct { fields })
}

/// A `google.protobuf.Struct` as a JSON object; a non-finite number anywhere is an error.
pub fn struct_from_proto(fields: &prost_types::Struct) -> Result<serde_json::Map<String, Value>, String> {
    fields.fields.iter().map(|(k, v)| Ok((k.clone(), from_proto(v)?))).collect()
}

/// A `google.protobuf.Value` as JSON; an unset kind is null, a non-finite number an error.
pub fn from_proto(value: &prost_types::Value) -> Result<Value, String> {
    use prost_types::value::Kind;
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => Value::from(serde_json::Number::from_f64(*n).ok_or("numbers must be finite")?),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(from_proto).collect::<Result<_, _>>()?),
        Some(Kind::StructValue(fields)) => Value::Object(
            fields.fields.iter().map(|(k, v)| Ok((k.clone(), from_proto(v)?))).collect::<Result<_, String>>()?,
        ),
    })
}
