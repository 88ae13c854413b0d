//! List filters and orders as callers write them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = highwind_common::filter::terms(text);
    let _ = highwind_common::filter::comparisons(text);
    let _ = asset_svc::domain::paging::AssetFilter::parse(text);
    let _ = asset_svc::domain::paging::Order::parse(text);
});
