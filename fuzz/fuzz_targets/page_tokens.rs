//! Page tokens as a caller sends them back: forged, cut or altered ones are refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tokens = highwind_common::page_token::PageTokens::new(b"fuzzing-key".to_vec());
    let _ = tokens.decode::<serde_json::Value>("users/fuzz", text);
});
