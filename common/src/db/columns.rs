//! Column types that read and write the same Rust value on both backends, so a store's row types and binds are
//! written once: PostgreSQL keeps its native types, SQLite the portable forms its tables were created with.

use chrono::{DateTime, Utc};
use sqlx::{
    Decode, Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef},
};
use uuid::{Uuid, fmt::Hyphenated};

/// An id column: `UUID` on PostgreSQL, lowercase hyphenated `TEXT` on SQLite (what `Uuid::to_string` writes, so
/// rows written before this type existed read back unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbUuid(pub Uuid);

/// A time column: `TIMESTAMPTZ` on PostgreSQL, `INTEGER` microseconds since the Unix epoch on SQLite. Both keep
/// microseconds, so a time reads back as it was written on either backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbTime(pub DateTime<Utc>);

impl From<Uuid> for DbUuid {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl From<DbUuid> for Uuid {
    fn from(id: DbUuid) -> Self {
        id.0
    }
}

impl From<DateTime<Utc>> for DbTime {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time)
    }
}

impl From<DbTime> for DateTime<Utc> {
    fn from(time: DbTime) -> Self {
        time.0
    }
}

impl Type<Postgres> for DbUuid {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbUuid {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Decode<'_, Postgres> for DbUuid {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<Postgres>>::decode(value).map(Self)
    }
}

impl Type<Sqlite> for DbUuid {
    fn type_info() -> SqliteTypeInfo {
        <Hyphenated as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for DbUuid {
    fn encode_by_ref(&self, args: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <Hyphenated as Encode<Sqlite>>::encode(self.0.hyphenated(), args)
    }
}

impl Decode<'_, Sqlite> for DbUuid {
    fn decode(value: SqliteValueRef<'_>) -> Result<Self, BoxDynError> {
        <Hyphenated as Decode<Sqlite>>::decode(value).map(|id| Self(id.into_uuid()))
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Decode<'_, Postgres> for DbTime {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Self)
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(&self, args: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.0.timestamp_micros(), args)
    }
}

impl Decode<'_, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'_>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::<Utc>::from_timestamp_micros(micros)
            .map(Self)
            .ok_or_else(|| format!("{micros} microseconds is out of the range of a time").into())
    }
}

#[cfg(test)]
mod tests {
    use chrono::SubsecRound;

    use super::*;
    use crate::db::{Database, testing};

    /// Writes an id and a time through the column types, reads them back, and answers how the backend stored
    /// them.
    async fn round_trip(db: &Database, id: Uuid, time: DateTime<Utc>) -> (DbUuid, DbTime, String, String) {
        match db {
            Database::Postgres(pool) => {
                let (back_id, back_time, id_type, time_type) =
                    sqlx::query_as("SELECT $1, $2, pg_typeof($1)::text, pg_typeof($2)::text")
                        .bind(DbUuid(id))
                        .bind(DbTime(time))
                        .fetch_one(pool)
                        .await
                        .expect("round trip");
                (back_id, back_time, id_type, time_type)
            }
            Database::Sqlite(pool) => {
                sqlx::query("CREATE TABLE t (id TEXT NOT NULL, time INTEGER NOT NULL) STRICT")
                    .execute(pool)
                    .await
                    .expect("table");
                sqlx::query("INSERT INTO t (id, time) VALUES ($1, $2)")
                    .bind(DbUuid(id))
                    .bind(DbTime(time))
                    .execute(pool)
                    .await
                    .expect("insert");
                sqlx::query_as("SELECT id, time, typeof(id), typeof(time) FROM t WHERE id = $1 AND time = $2")
                    .bind(DbUuid(id))
                    .bind(DbTime(time))
                    .fetch_one(pool)
                    .await
                    .expect("select")
            }
        }
    }

    #[tokio::test]
    async fn sqlite_keeps_ids_as_the_text_uuid_writes_and_times_as_microseconds() {
        let (_dir, db) = testing::sqlite().await;
        let (id, time) = (Uuid::now_v7(), Utc::now().trunc_subsecs(6));
        let (back_id, back_time, id_type, time_type) = round_trip(&db, id, time).await;
        assert_eq!((back_id, back_time), (DbUuid(id), DbTime(time)));
        assert_eq!((id_type.as_str(), time_type.as_str()), ("text", "integer"));
        let Database::Sqlite(pool) = &db else { unreachable!("sqlite") };
        let stored: (String, i64) = sqlx::query_as("SELECT id, time FROM t").fetch_one(pool).await.expect("raw read");
        assert_eq!(stored, (id.to_string(), time.timestamp_micros()), "the forms older rows were written in");
    }

    #[tokio::test]
    async fn postgres_keeps_its_native_uuid_and_timestamptz() {
        let Some(db) = testing::postgres("postgres_keeps_its_native_uuid_and_timestamptz").await else {
            return;
        };
        let (id, time) = (Uuid::now_v7(), Utc::now().trunc_subsecs(6));
        let (back_id, back_time, id_type, time_type) = round_trip(&db, id, time).await;
        assert_eq!((back_id, back_time), (DbUuid(id), DbTime(time)));
        assert_eq!((id_type.as_str(), time_type.as_str()), ("uuid", "timestamp with time zone"));
    }

    #[tokio::test]
    async fn a_time_out_of_range_is_an_error_not_a_default() {
        let (_dir, db) = testing::sqlite().await;
        let Database::Sqlite(pool) = &db else { unreachable!("sqlite") };
        let read: Result<(DbTime,), _> = sqlx::query_as("SELECT 9223372036854775807").fetch_one(pool).await;
        assert!(read.is_err(), "{read:?}");
    }
}
