//! OpenID Connect: verifying bearer JWTs from trusted issuers, and the small issuer the embedded platform runs
//! so everything works offline.

pub mod dev_issuer;
pub mod verify;

pub use dev_issuer::DevIssuer;
pub use verify::{IssuerConfig, OidcVerifier};
