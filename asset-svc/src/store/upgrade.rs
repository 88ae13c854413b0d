//! A SQLite database written before its columns took PostgreSQL's names reads the same after the migration that
//! renamed them: an embedded platform keeps its data across the upgrade.

use chrono::{DateTime, Utc};
use highwind_common::db::{Database, testing};
use uuid::Uuid;

use super::{SQLITE_MIGRATIONS, open_uncached};

/// The last migration before the rename.
const BEFORE_RENAME: i64 = 20261202000001;

#[tokio::test]
async fn assets_written_before_the_rename_read_back_whole() {
    let (_dir, db) = testing::sqlite().await;
    let Database::Sqlite(pool) = &db else { unreachable!("sqlite") };
    SQLITE_MIGRATIONS.run_to(BEFORE_RENAME, pool).await.expect("old schema");
    let id = Uuid::now_v7();
    let (created, archived) = (1_700_000_000_123_456_i64, 1_700_000_999_000_001_i64);
    sqlx::query(
        "INSERT INTO assets (id, owner, kind, display_name, labels, create_micros, update_micros, archive_micros, \
         revision, version_count, stored_bytes) VALUES (?, 'users/old', 'DATASET', 'kept', '{\"team\":\"a\"}', ?, ?, ?, 3, 0, 0)",
    )
    .bind(id.to_string())
    .bind(created)
    .bind(created)
    .bind(archived)
    .execute(pool)
    .await
    .expect("old row");

    let stores = open_uncached(db.clone()).await.expect("upgrade");
    let asset = stores.assets.get(id).await.expect("get").expect("the asset survived");
    assert_eq!(asset.create_time, DateTime::<Utc>::from_timestamp_micros(created).expect("time"));
    assert_eq!(asset.archive_time, DateTime::<Utc>::from_timestamp_micros(archived));
    assert_eq!((asset.owner.as_str(), asset.display_name.as_str(), asset.revision), ("users/old", "kept", 3));
    assert_eq!(asset.labels.get("team").map(String::as_str), Some("a"));
}
