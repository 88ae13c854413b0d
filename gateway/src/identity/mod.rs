//! Who is calling: authentication (OIDC tokens, API keys, the development issuer), the API keys and their store,
//! and each principal's rate limit. The door (`lib.rs`) installs [`auth::AuthLayer`]; nothing here routes calls.

pub mod auth;
pub mod keys;
pub mod oidc;
pub mod rate_limit;
