//! What a store's shared body needs to know of each backend beyond the SQL both accept: the database type, how to
//! open a transaction that is going to write, and the few fragments the dialects spell differently. A store's
//! `pg.rs` and `sqlite.rs` import one of these two modules and compile the same repository file against it.

/// PostgreSQL.
pub mod postgres {
    use sqlx::QueryBuilder;

    /// The backend.
    pub type Db = sqlx::Postgres;
    /// Its pool.
    pub type Pool = sqlx::PgPool;

    /// Appended to a `SELECT` whose rows must stay locked until the transaction ends.
    pub const FOR_UPDATE: &str = " FOR UPDATE";

    /// Appended to a text expression so it compares and orders bytewise, whatever the database's collation.
    pub const BYTEWISE: &str = " COLLATE \"C\"";

    /// A transaction for writing; PostgreSQL takes row locks as statements need them ([`FOR_UPDATE`]).
    pub async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin().await
    }

    /// `AND` the JSON object `labels` (a column, or `object` within it) maps `key` to the text `value`. `labels`
    /// and `object` are the caller's constants; `key` and `value` are bound.
    pub fn push_label_equals(sql: &mut QueryBuilder<Db>, labels: &str, object: Option<&str>, key: &str, value: &str) {
        sql.push(" AND ").push(labels);
        if let Some(object) = object {
            sql.push(format!(" -> '{object}'"));
        }
        sql.push(" ->> ").push_bind(key.to_owned()).push(" = ").push_bind(value.to_owned());
    }
}

/// SQLite.
pub mod sqlite {
    use sqlx::QueryBuilder;

    /// The backend.
    pub type Db = sqlx::Sqlite;
    /// Its pool.
    pub type Pool = sqlx::SqlitePool;

    /// Nothing: a write transaction ([`begin_write`]) already holds the whole database.
    pub const FOR_UPDATE: &str = "";

    /// Nothing: SQLite's default collation already compares bytewise.
    pub const BYTEWISE: &str = "";

    /// A transaction for writing: `BEGIN IMMEDIATE` takes the database's one write lock up front, so a
    /// transaction that reads before it writes waits its turn (busy timeout) instead of failing when it upgrades.
    pub async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// `AND` the JSON object `labels` (a column, or `object` within it) maps `key` to the text `value`. `labels`
    /// and `object` are the caller's constants; label keys are validated to `[a-z0-9_-]`, so the quoted JSON path
    /// cannot be escaped from.
    pub fn push_label_equals(sql: &mut QueryBuilder<Db>, labels: &str, object: Option<&str>, key: &str, value: &str) {
        let path = match object {
            Some(object) => format!("$.{object}.\"{key}\""),
            None => format!("$.\"{key}\""),
        };
        sql.push(" AND json_extract(").push(labels).push(", ").push_bind(path).push(") = ").push_bind(value.to_owned());
    }
}
