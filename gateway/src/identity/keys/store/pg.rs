//! PostgreSQL: the one key repository body, compiled against PostgreSQL.

pub(super) use highwind_common::db::postgres::Pool;

/// API keys in PostgreSQL.
#[derive(Debug)]
pub struct Keys(pub Pool);

// The same file is compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;
