//! Resource names and upload paths.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = asset_svc::domain::names::parse_asset_name(text);
    let _ = asset_svc::domain::names::parse_version_name(text);
    let _ = asset_svc::domain::names::parse_upload_name(text);
    let _ = asset_svc::domain::paths::validate(text);
});
