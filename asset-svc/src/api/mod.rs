//! The gRPC surface of the asset service: decode and validate, apply the domain's rules, call the store, map
//! errors once (`error.rs`).

mod assets;
mod convert;
mod error;

pub use assets::AssetApi;
