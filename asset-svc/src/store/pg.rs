//! PostgreSQL: the asset repositories' one body (`repository/`), compiled with PostgreSQL's types and the few
//! statements only PostgreSQL speaks (advisory locks, row locks, array binds, JSON operators, collations).

use highwind_common::db::postgres::{BYTEWISE, Db, FOR_UPDATE, Pool, begin_write, push_label_equals};
use sqlx::Transaction;
use uuid::Uuid;

/// Assets in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Assets(pub Pool);

/// Versions, uploads and blobs in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Content(pub Pool);

/// Read grants in PostgreSQL.
#[derive(Debug)]
pub struct Grants(pub Pool);

/// Advisory lock key that serializes garbage collection against uploads claiming existing blobs.
const GC_LOCK: i64 = 0x4869_6768_7769_6e64;

/// Class of the two-key advisory locks that serialize one creator's upload openings ("upld").
const QUOTA_LOCK_CLASS: i32 = 0x7570_6c64;

/// Serializes `creator`'s upload openings, so a quota is checked against settled usage, and holds blob
/// collection off while the opening claims blobs already stored (the two-key lock space is apart from GC_LOCK's).
async fn lock_upload_opening(tx: &mut Transaction<'static, Db>, creator: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)").bind(GC_LOCK).execute(&mut **tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(QUOTA_LOCK_CLASS)
        .bind(creator)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Holds upload openings off while an unreferenced blob is dropped.
async fn lock_blob_collection(tx: &mut Transaction<'static, Db>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(GC_LOCK).execute(&mut **tx).await?;
    Ok(())
}

/// Inserts the grant rows `(principal, asset, version)` of `source` in one statement.
async fn insert_grants(
    tx: &mut Transaction<'static, Db>,
    source: &str,
    (principals, assets, versions): (Vec<String>, Vec<Uuid>, Vec<i64>),
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grants (source, principal, asset_id, version_number) \
         SELECT $1, p, a, v FROM UNNEST($2::text[], $3::uuid[], $4::bigint[]) AS t(p, a, v) ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .bind(principals)
    .bind(assets)
    .bind(versions)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// The same files are compiled once per backend on purpose: that is how both share one body.
#[allow(clippy::duplicate_mod)]
#[path = "repository/mod.rs"]
mod repository;
