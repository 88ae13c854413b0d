//! What every Highwind service repeats, and nothing more: configuration loading, telemetry, database connect and
//! migrate, the forwarded principal, `google.rpc` error details (bounded in size), signed page tokens and the serving loop with
//! health, reflection and a bounded drain.

pub mod access;
pub mod bounded_errors;
pub mod config;
pub mod db;
pub mod executables;
pub mod filter;
pub mod http2_limits;
pub mod idempotency;
pub mod labels;
pub mod page_bytes;
pub mod page_token;
pub mod principal;
pub mod private_file;
pub mod proto_json;
pub mod registry;
pub mod serve;
pub mod service_main;
pub mod shutdown;
pub mod status;
pub mod status_bounds;
pub mod telemetry;
pub mod time;
pub mod validation;
