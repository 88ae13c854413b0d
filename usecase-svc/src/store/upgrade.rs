//! A SQLite database written before its columns took PostgreSQL's names reads the same after the migration that
//! renamed them: an embedded platform keeps its use cases across the upgrade.

use chrono::{DateTime, Utc};
use highwind_common::db::{Database, testing};
use uuid::Uuid;

use super::{SQLITE_MIGRATIONS, open};
use crate::domain::role::Role;

/// The last migration before the rename.
const BEFORE_RENAME: i64 = 20261125000007;

#[tokio::test]
async fn use_cases_and_members_written_before_the_rename_read_back_whole() {
    let (_dir, db) = testing::sqlite().await;
    let Database::Sqlite(pool) = &db else { unreachable!("sqlite") };
    SQLITE_MIGRATIONS.run_to(BEFORE_RENAME, pool).await.expect("old schema");
    let (id, member) = (Uuid::now_v7(), Uuid::now_v7());
    let created = 1_700_000_000_123_456_i64;
    sqlx::query(
        "INSERT INTO use_cases (id, owner, display_name, description, cover_image_uri, model_card, inference_schema, \
         version_label, price_currency, price_units, price_nanos, labels, create_micros, update_micros, revision) \
         VALUES (?, 'users/old', 'kept', '', '', '# Card', '{}', '', 'USD', 5, 0, '{}', ?, ?, 2)",
    )
    .bind(id.to_string())
    .bind(created)
    .bind(created)
    .execute(pool)
    .await
    .expect("old use case");
    sqlx::query(
        "INSERT INTO members (id, use_case_id, principal, role, creator, create_micros, update_micros, revision) \
         VALUES (?, ?, 'users/old', 'OWNER', 'users/old', ?, ?, 1)",
    )
    .bind(member.to_string())
    .bind(id.to_string())
    .bind(created)
    .bind(created)
    .execute(pool)
    .await
    .expect("old member");

    let stores = open(db.clone()).await.expect("upgrade");
    let use_case = stores.use_cases.get(id).await.expect("get").expect("the use case survived");
    assert_eq!(use_case.create_time, DateTime::<Utc>::from_timestamp_micros(created).expect("time"));
    assert_eq!((use_case.display_name.as_str(), use_case.revision, use_case.price.units), ("kept", 2, 5));
    assert_eq!(stores.use_cases.role_of(id, "users/old").await.expect("role"), Some(Role::Owner));
    let listed = stores.use_cases.list_for("users/old", false, None, 10).await.expect("list");
    assert_eq!(listed.iter().map(|(u, _)| u.id).collect::<Vec<_>>(), [id]);
}
