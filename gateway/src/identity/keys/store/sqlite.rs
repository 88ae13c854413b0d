//! SQLite: the one key repository body, compiled against SQLite.

pub(super) use highwind_common::db::sqlite::Pool;

/// API keys in SQLite.
#[derive(Debug)]
pub struct Keys(pub Pool);

// The same file is compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;
