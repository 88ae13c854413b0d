//! The registry token endpoint's scope grammar, repository names and tags.
#![no_main]

use highwind_common::registry::scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = scope::Access::parse(text);
    let _ = scope::validate_repository(text);
    let _ = scope::is_valid_tag(text);
});
