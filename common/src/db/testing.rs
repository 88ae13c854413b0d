//! Test support, built only with the `testing` feature: throwaway databases on both backends, and the one
//! conformance macro every store's suite is written with.

use std::{path::Path, time::Duration};

use rand::Rng;
use sqlx::postgres::PgPoolOptions;

use super::{Database, redact_url};

/// Environment variable naming the PostgreSQL server the storage tests use; default
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const TEST_POSTGRES_ENV: &str = "HIGHWIND_TEST_POSTGRES_URL";

/// Creates a fresh, empty PostgreSQL database on the test server and returns its URL, or `None` when no
/// server answers (the suite then runs on SQLite alone and says so). Set `HIGHWIND_REQUIRE_POSTGRES=1` to
/// make an unreachable server a failure instead.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin_url =
        std::env::var(TEST_POSTGRES_ENV).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let required = std::env::var("HIGHWIND_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let admin =
        match PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(3)).connect(&admin_url).await
        {
            Ok(pool) => pool,
            Err(e) if required => panic!("PostgreSQL required but unreachable at {}: {e}", redact_url(&admin_url)),
            Err(_) => return None,
        };
    let name = format!("highwind_test_{}", random_suffix());
    // The name is generated here from hex digits only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

/// A fresh SQLite database file inside `dir`.
pub fn fresh_sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/test-{}.db", dir.display(), random_suffix())
}

/// A connected, empty SQLite database in a temporary directory that lives as long as the returned guard.
pub async fn sqlite() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::connect(&fresh_sqlite_url(dir.path()), 4).await.expect("sqlite");
    (dir, db)
}

/// A connected, empty PostgreSQL database, or `None` (and a line naming `check` as skipped) when no server
/// answers and none is required.
pub async fn postgres(check: &str) -> Option<Database> {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("postgres::{check} skipped: no PostgreSQL server reachable");
        return None;
    };
    Some(Database::connect(&url, 4).await.expect("postgres"))
}

fn random_suffix() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// One storage suite, run on every backend: each check becomes `sqlite::<check>` and `postgres::<check>` tests.
///
/// `open` names an `async fn(Database) -> S` in the invoking module that migrates the database and returns what
/// the checks test; each check is an `async fn(S)` there too.
///
/// ```ignore
/// highwind_common::db::testing::conformance!(open: stores; creates_once, lists_in_pages);
/// ```
#[macro_export]
macro_rules! conformance {
    (open: $open:ident; $($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, db) = $crate::db::testing::sqlite().await;
                    super::$check(super::$open(db).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(db) = $crate::db::testing::postgres(stringify!($check)).await else {
                        return;
                    };
                    super::$check(super::$open(db).await).await;
                }
            )*
        }
    };
}

pub use crate::conformance;
