//! The gRPC surface of the asset service: decode and validate, apply the domain's rules, call the store, map
//! errors once (`error.rs`).

mod access;
mod assets;
mod audit_access;
mod convert;
mod error;
mod grants;
mod images;
mod registry;
mod run_outputs;
mod uploads;
mod versions;

pub use assets::{AssetApi, Housekeeping};
pub use audit_access::AuditAccessApi;
pub use grants::GrantApi;
pub use images::ImageApi;
pub use registry::RegistryApi;
pub use run_outputs::RunOutputApi;
pub use uploads::UploadApi;
