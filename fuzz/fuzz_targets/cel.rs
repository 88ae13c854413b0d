//! CEL conditions and selectors of a pipeline, evaluated over a small parameter set.
#![no_main]

use std::{collections::BTreeMap, sync::Once};

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    // The interpreter panics on some inputs and `executor::cel` catches that as a refusal; libFuzzer's hook would
    // abort on the caught panic too. An uncaught one still fails the run (libfuzzer-sys aborts after the input).
    static QUIET: Once = Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parameters = BTreeMap::from([("x".to_owned(), json!(10)), ("s".to_owned(), json!("a,b"))]);
    let _ = pipeline_svc::executor::cel::condition(text, &parameters);
    let _ = pipeline_svc::executor::cel::select(text, &json!({"a": [1, 2, {"b": "c"}]}));
});
