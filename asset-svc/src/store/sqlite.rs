//! SQLite: the asset repositories' one body (`repository/`), compiled with SQLite's types. A write transaction
//! (`BEGIN IMMEDIATE`) holds the whole database, so the locks PostgreSQL needs are no-ops here.

use highwind_common::db::{
    DbUuid,
    sqlite::{BYTEWISE, Db, FOR_UPDATE, Pool, begin_write, push_label_equals},
};
use sqlx::Transaction;
use uuid::Uuid;

/// Assets in SQLite.
#[derive(Debug, Clone)]
pub struct Assets(pub Pool);

/// Versions, uploads and blobs in SQLite.
#[derive(Debug, Clone)]
pub struct Content(pub Pool);

/// Read grants in SQLite.
#[derive(Debug)]
pub struct Grants(pub Pool);

/// Nothing to take: the opening's write transaction already excludes every other writer.
async fn lock_upload_opening(_tx: &mut Transaction<'static, Db>, _creator: &str) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Nothing to take: the collector's write transaction already excludes every upload opening.
async fn lock_blob_collection(_tx: &mut Transaction<'static, Db>) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Inserts the grant rows `(principal, asset, version)` of `source`, one statement each (SQLite has no arrays).
async fn insert_grants(
    tx: &mut Transaction<'static, Db>,
    source: &str,
    (principals, assets, versions): (Vec<String>, Vec<Uuid>, Vec<i64>),
) -> Result<(), sqlx::Error> {
    for ((principal, asset), version) in principals.iter().zip(assets).zip(versions) {
        sqlx::query(
            "INSERT INTO grants (source, principal, asset_id, version_number) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(principal)
        .bind(DbUuid(asset))
        .bind(version)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

// The same files are compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository/mod.rs"]
mod repository;
