//! CEL conditions and selectors of a pipeline, evaluated over a small parameter set.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parameters = BTreeMap::from([("x".to_owned(), json!(10)), ("s".to_owned(), json!("a,b"))]);
    let _ = pipeline_svc::executor::cel::condition(text, &parameters);
    let _ = pipeline_svc::executor::cel::select(text, &json!({"a": [1, 2, {"b": "c"}]}));
});
