//! An API key written before the gateway's SQLite columns took PostgreSQL's names still works after the migration
//! that renamed them: nobody's key stops working across the upgrade.

use chrono::{DateTime, Utc};
use highwind_common::db::{Database, testing};
use uuid::Uuid;

/// The last migration before the rename.
const BEFORE_RENAME: i64 = 20261201000001;

#[tokio::test]
async fn keys_written_before_the_rename_read_back_whole() {
    let (_dir, db) = testing::sqlite().await;
    let Database::Sqlite(pool) = &db else { unreachable!("sqlite") };
    crate::storage::SQLITE_MIGRATIONS.run_to(BEFORE_RENAME, pool).await.expect("old schema");
    let id = Uuid::now_v7();
    let (created, expires) = (1_700_000_000_123_456_i64, 1_900_000_000_000_000_i64);
    sqlx::query(
        "INSERT INTO api_keys (id, owner, display_name, salt, hash, create_micros, expire_micros) \
         VALUES (?, 'users/old', 'ci', 'aa', 'bb', ?, ?)",
    )
    .bind(id.to_string())
    .bind(created)
    .bind(expires)
    .execute(pool)
    .await
    .expect("old key");

    crate::storage::migrate(&db).await.expect("upgrade");
    let key = super::open(&db).get(id).await.expect("get").expect("the key survived");
    assert_eq!(key.create_time, DateTime::<Utc>::from_timestamp_micros(created).expect("time"));
    assert_eq!(key.expire_time, DateTime::<Utc>::from_timestamp_micros(expires));
    assert_eq!((key.owner.as_str(), key.revoke_time, key.parent), ("users/old", None, None));
}
