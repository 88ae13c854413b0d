//! Where API keys are kept: PostgreSQL or SQLite, by URL scheme, like every service's data.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::Database;
use uuid::Uuid;

use super::ApiKey;

/// Persistence of API keys.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Stores a new key.
    async fn insert(&self, key: &ApiKey) -> Result<(), sqlx::Error>;
    /// The key with `id`.
    async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error>;
    /// At most `limit + 1` of `owner`'s keys, newest first, older than `after`.
    async fn list(&self, owner: &str, after: Option<Uuid>, limit: usize) -> Result<Vec<ApiKey>, sqlx::Error>;
    /// Marks key `id` revoked at `at`, and every key created with it (transitively) that is not revoked yet.
    async fn revoke(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error>;
}

/// The key store of the gateway's (migrated) database.
pub fn open(db: &Database) -> Arc<dyn KeyStore> {
    match db {
        Database::Postgres(pool) => Arc::new(PgKeys(pool.clone())),
        Database::Sqlite(pool) => Arc::new(SqliteKeys(pool.clone())),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n + 1).unwrap_or(i64::MAX)
}

#[derive(Debug)]
struct PgKeys(sqlx::PgPool);

type PgRow =
    (Uuid, String, String, String, String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<Uuid>);

fn from_pg(row: PgRow) -> ApiKey {
    let (id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent) = row;
    ApiKey { id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent }
}

#[async_trait]
impl KeyStore for PgKeys {
    async fn insert(&self, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_keys (id, owner, display_name, salt, hash, create_time, expire_time, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id)
        .bind(&key.owner)
        .bind(&key.display_name)
        .bind(&key.salt)
        .bind(&key.hash)
        .bind(key.create_time)
        .bind(key.expire_time)
        .bind(key.parent)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<PgRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent_id FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(from_pg))
    }

    async fn list(&self, owner: &str, after: Option<Uuid>, n: usize) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows: Vec<PgRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_time, expire_time, revoke_time, parent_id FROM api_keys \
             WHERE owner = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(owner)
        .bind(after)
        .bind(limit(n))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(from_pg).collect())
    }

    async fn revoke(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH RECURSIVE made_from(id) AS \
             (SELECT $1::uuid UNION SELECT k.id FROM api_keys k JOIN made_from m ON k.parent_id = m.id) \
             UPDATE api_keys SET revoke_time = $2 WHERE id IN (SELECT id FROM made_from) AND revoke_time IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.0)
        .await?;
        Ok(())
    }
}

#[derive(Debug)]
struct SqliteKeys(sqlx::SqlitePool);

type SqliteRow = (String, String, String, String, String, i64, Option<i64>, Option<i64>, Option<String>);

fn from_sqlite(row: SqliteRow) -> Option<ApiKey> {
    let (id, owner, display_name, salt, hash, create, expire, revoke, parent) = row;
    let time = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros);
    Some(ApiKey {
        id: Uuid::try_parse(&id).ok()?,
        owner,
        display_name,
        salt,
        hash,
        create_time: time(create)?,
        expire_time: expire.and_then(time),
        revoke_time: revoke.and_then(time),
        parent: parent.and_then(|p| Uuid::try_parse(&p).ok()),
    })
}

#[async_trait]
impl KeyStore for SqliteKeys {
    async fn insert(&self, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_keys (id, owner, display_name, salt, hash, create_micros, expire_micros, parent_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.to_string())
        .bind(&key.owner)
        .bind(&key.display_name)
        .bind(&key.salt)
        .bind(&key.hash)
        .bind(key.create_time.timestamp_micros())
        .bind(key.expire_time.map(|t| t.timestamp_micros()))
        .bind(key.parent.map(|p| p.to_string()))
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<SqliteRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_micros, expire_micros, revoke_micros, parent_id FROM api_keys \
             WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.0)
        .await?;
        Ok(row.and_then(from_sqlite))
    }

    async fn list(&self, owner: &str, after: Option<Uuid>, n: usize) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows: Vec<SqliteRow> = sqlx::query_as(
            "SELECT id, owner, display_name, salt, hash, create_micros, expire_micros, revoke_micros, parent_id FROM api_keys \
             WHERE owner = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(owner)
        .bind(after.map(|a| a.to_string()))
        .bind(after.map(|a| a.to_string()))
        .bind(limit(n))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().filter_map(from_sqlite).collect())
    }

    async fn revoke(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH RECURSIVE made_from(id) AS \
             (SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN made_from m ON k.parent_id = m.id) \
             UPDATE api_keys SET revoke_micros = ?2 WHERE id IN (SELECT id FROM made_from) AND revoke_micros IS NULL",
        )
        .bind(id.to_string())
        .bind(at.timestamp_micros())
        .execute(&self.0)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod conformance {
    use chrono::SubsecRound;

    use super::*;

    fn key(owner: &str, name: &str) -> ApiKey {
        ApiKey {
            id: Uuid::now_v7(),
            owner: owner.into(),
            display_name: name.into(),
            salt: "00".repeat(16),
            hash: "11".repeat(32),
            create_time: Utc::now().trunc_subsecs(6),
            expire_time: Some(Utc::now().trunc_subsecs(6) + chrono::Duration::days(1)),
            revoke_time: None,
            parent: None,
        }
    }

    async fn keys_round_trip_page_and_revoke(store: Arc<dyn KeyStore>) {
        let keys: Vec<ApiKey> = (0..5).map(|i| key("users/a", &format!("k{i}"))).collect();
        for k in &keys {
            store.insert(k).await.expect("insert");
        }
        store.insert(&key("users/b", "other")).await.expect("insert");
        assert_eq!(store.get(keys[0].id).await.expect("get"), Some(keys[0].clone()));
        let first = store.list("users/a", None, 2).await.expect("list");
        assert_eq!(first.iter().map(|k| k.id).collect::<Vec<_>>(), [keys[4].id, keys[3].id, keys[2].id]);
        let rest = store.list("users/a", Some(keys[3].id), 10).await.expect("list");
        assert_eq!(rest.iter().map(|k| k.id).collect::<Vec<_>>(), [keys[2].id, keys[1].id, keys[0].id]);
        let at = Utc::now().trunc_subsecs(6);
        store.revoke(keys[1].id, at).await.expect("revoke");
        store.revoke(keys[1].id, at + chrono::Duration::hours(1)).await.expect("revoke again");
        assert_eq!(
            store.get(keys[1].id).await.expect("get").and_then(|k| k.revoke_time),
            Some(at),
            "first revocation stays"
        );

        // keys[2] made a child, which made a grandchild; revoking keys[2] revokes both, and nothing else.
        let child = ApiKey { parent: Some(keys[2].id), ..key("users/a", "child") };
        let grandchild = ApiKey { parent: Some(child.id), ..key("users/a", "grandchild") };
        store.insert(&child).await.expect("insert");
        store.insert(&grandchild).await.expect("insert");
        assert_eq!(store.get(grandchild.id).await.expect("get").and_then(|k| k.parent), Some(child.id));
        store.revoke(keys[2].id, at).await.expect("revoke");
        for made in [&child, &grandchild] {
            assert_eq!(
                store.get(made.id).await.expect("get").and_then(|k| k.revoke_time),
                Some(at),
                "{}",
                made.display_name
            );
        }
        assert_eq!(store.get(keys[3].id).await.expect("get").and_then(|k| k.revoke_time), None, "others stay");
    }

    #[tokio::test]
    async fn sqlite_keys_round_trip_page_and_revoke() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = highwind_common::db::testing::fresh_sqlite_url(dir.path());
        keys_round_trip_page_and_revoke(open(&crate::storage::open(&url).await.expect("open"))).await;
    }

    #[tokio::test]
    async fn postgres_keys_round_trip_page_and_revoke() {
        let Some(url) = highwind_common::db::testing::fresh_postgres_url().await else {
            eprintln!("postgres_keys_round_trip_page_and_revoke skipped: no PostgreSQL server reachable");
            return;
        };
        keys_round_trip_page_and_revoke(open(&crate::storage::open(&url).await.expect("open"))).await;
    }
}
