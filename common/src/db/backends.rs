//! What a store's shared body needs to know of each backend beyond the SQL both accept: the database type, and
//! how to open a transaction that is going to write. A store's `pg.rs` and `sqlite.rs` import one of these two
//! modules and compile the same repository file against it.

/// PostgreSQL.
pub mod postgres {
    /// The backend.
    pub type Db = sqlx::Postgres;
    /// Its pool.
    pub type Pool = sqlx::PgPool;

    /// A transaction for writing; PostgreSQL takes row locks as statements need them (`FOR UPDATE`).
    pub async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin().await
    }
}

/// SQLite.
pub mod sqlite {
    /// The backend.
    pub type Db = sqlx::Sqlite;
    /// Its pool.
    pub type Pool = sqlx::SqlitePool;

    /// A transaction for writing: `BEGIN IMMEDIATE` takes the database's one write lock up front, so a
    /// transaction that reads before it writes waits its turn (busy timeout) instead of failing when it upgrades.
    pub async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}
