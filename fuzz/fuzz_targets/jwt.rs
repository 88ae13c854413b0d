//! Bearer tokens shaped like JWTs: headers and claims of any shape are refused without a panic (no issuer is
//! trusted, so nothing is fetched).
#![no_main]

use std::sync::OnceLock;

use gateway::identity::oidc::verify::OidcVerifier;
use libfuzzer_sys::fuzz_target;

fn parts() -> &'static (tokio::runtime::Runtime, OidcVerifier) {
    static PARTS: OnceLock<(tokio::runtime::Runtime, OidcVerifier)> = OnceLock::new();
    PARTS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        (runtime, OidcVerifier::new(Vec::new()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (runtime, verifier) = parts();
    assert!(runtime.block_on(verifier.verify(text)).is_err());
});
