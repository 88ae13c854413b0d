//! SQLite: the use-case repositories' one body (`repository/`), compiled against SQLite.

use std::sync::Arc;

use highwind_common::db::sqlite::{BYTEWISE, Db, FOR_UPDATE, Pool, begin_write, push_label_equals};
use tokio::sync::Notify;

/// Use cases, the marketplace and the grant outbox in SQLite; the outbox's changes wake the relay through the
/// `Notify`.
#[derive(Debug)]
pub struct UseCases(pub(super) Pool, pub(super) Arc<Notify>);

// The same files are compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository/mod.rs"]
mod repository;
