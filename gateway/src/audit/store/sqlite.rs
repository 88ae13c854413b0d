//! SQLite: the one audit repository body, compiled against SQLite.

pub(super) use highwind_common::db::sqlite::{Db, Pool, begin_write};

/// Audit events in SQLite.
#[derive(Debug)]
pub struct Audit(pub Pool);

// The same file is compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository.rs"]
mod repository;
