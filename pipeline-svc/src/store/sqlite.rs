//! SQLite: the one repository body, compiled against SQLite.

pub(super) use highwind_common::db::sqlite::{Db, Pool, begin_write};

/// Runs in SQLite.
#[derive(Debug, Clone)]
pub struct Runs(pub Pool);

// The same file is compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;
