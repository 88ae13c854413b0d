//! KFP IR as a user uploads it (YAML, or JSON, which YAML reads too): parsing, validation and description never
//! panic, and stay fast (libFuzzer's `-timeout` catches an input that makes them crawl).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pipeline) = pipeline_svc::ir::parse(data) {
        let issues = pipeline_svc::ir::validate(&pipeline);
        if issues.is_empty() {
            let _ = pipeline_svc::ir::describe(&pipeline);
        }
    }
});
