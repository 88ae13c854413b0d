//! The use-case repositories, written once: `pg.rs` and `sqlite.rs` each compile these files against their own
//! `Db`, `Pool`, `begin_write` and the fragments the dialects spell differently (`FOR_UPDATE`, `BYTEWISE`,
//! `push_label_equals`). The statements shared by several methods live here.

use highwind_common::db::{DbTime, DbUuid};
use uuid::Uuid;

use super::{Db, FOR_UPDATE, UseCases};
use crate::{
    domain::{link::AssetLink, member::Member, release::Release, role::Role},
    store::{
        StoreError,
        rows::{LinkRow, MemberRow, ReleaseRow, link, link_columns, member, member_columns, release, release_columns},
        selector_columns,
    },
};

mod market;
mod outbox;
mod use_cases;

type Connection = <Db as sqlx::Database>::Connection;

async fn insert_member(tx: &mut Connection, m: &Member, request_id: Option<&str>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO members (id, use_case_id, principal, role, creator, create_time, update_time, revision, \
         request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(DbUuid(m.id))
    .bind(DbUuid(m.use_case_id))
    .bind(&m.principal)
    .bind(m.role.as_str())
    .bind(&m.creator)
    .bind(DbTime(m.create_time))
    .bind(DbTime(m.update_time))
    .bind(m.revision)
    .bind(request_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// The member `creator` added to `use_case_id` with idempotency key `request_id`.
async fn member_by_request(
    db: impl sqlx::Executor<'_, Database = Db>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Member>, StoreError> {
    let row: Option<MemberRow> = sqlx::query_as(concat!(
        "SELECT ",
        member_columns!(),
        " FROM members WHERE use_case_id = $1 AND creator = $2 AND request_id = $3"
    ))
    .bind(DbUuid(use_case_id))
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(member).transpose()
}

/// The link `creator` added to `use_case_id` with idempotency key `request_id`.
async fn link_by_request(
    db: impl sqlx::Executor<'_, Database = Db>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<AssetLink>, StoreError> {
    let row: Option<LinkRow> = sqlx::query_as(concat!(
        "SELECT ",
        link_columns!(),
        " FROM asset_links WHERE use_case_id = $1 AND creator = $2 AND request_id = $3"
    ))
    .bind(DbUuid(use_case_id))
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(link).transpose()
}

/// The release `creator` made of `use_case_id` with idempotency key `request_id`.
async fn release_by_request(
    db: impl sqlx::Executor<'_, Database = Db>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Release>, StoreError> {
    let row: Option<ReleaseRow> = sqlx::query_as(concat!(
        "SELECT ",
        release_columns!(),
        " FROM releases WHERE use_case_id = $1 AND creator = $2 AND request_id = $3"
    ))
    .bind(DbUuid(use_case_id))
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(release))
}

/// Records in the grant outbox, inside the caller's transaction, that `source`'s grants changed.
async fn mark_changed(tx: &mut Connection, source: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grant_outbox (source, version, pending) VALUES ($1, 1, TRUE) \
         ON CONFLICT (source) DO UPDATE SET version = grant_outbox.version + 1, pending = TRUE",
    )
    .bind(source)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_link(tx: &mut Connection, l: &AssetLink, request_id: Option<&str>) -> Result<u64, sqlx::Error> {
    let (pinned, alias) = selector_columns(l);
    let done = sqlx::query(
        "INSERT INTO asset_links (id, use_case_id, asset, role, pinned_version, alias, creator, create_time, \
         update_time, revision, asset_owner, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(DbUuid(l.id))
    .bind(DbUuid(l.use_case_id))
    .bind(&l.asset)
    .bind(l.role.as_str())
    .bind(pinned)
    .bind(alias)
    .bind(&l.creator)
    .bind(DbTime(l.create_time))
    .bind(DbTime(l.update_time))
    .bind(l.revision)
    .bind(&l.asset_owner)
    .bind(request_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Holds use case `id` until the transaction ends, so its adds (links, releases) and their counts serialize.
async fn hold_use_case(tx: &mut Connection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM use_cases WHERE id = $1{FOR_UPDATE}")))
        .bind(DbUuid(id))
        .execute(tx)
        .await?;
    Ok(())
}

/// Holds the use case's members and returns member `id` and the number of owners, for an owner-preserving change.
async fn locked(tx: &mut Connection, use_case_id: Uuid, id: Uuid) -> Result<(Option<Member>, i64), StoreError> {
    let rows: Vec<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM members WHERE use_case_id = $1{FOR_UPDATE}",
        member_columns!()
    )))
    .bind(DbUuid(use_case_id))
    .fetch_all(&mut *tx)
    .await?;
    let members = rows.into_iter().map(member).collect::<Result<Vec<_>, _>>()?;
    let owners = i64::try_from(members.iter().filter(|m| m.role == Role::Owner).count()).unwrap_or(i64::MAX);
    Ok((members.into_iter().find(|m| m.id == id), owners))
}

impl UseCases {
    /// Commits `tx`, having first marked `source`'s grants changed in the outbox (when there is one), and wakes the
    /// relay once the change is visible.
    async fn commit_marking(
        &self,
        mut tx: sqlx::Transaction<'static, Db>,
        source: Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(source) = &source {
            mark_changed(&mut tx, source).await?;
        }
        tx.commit().await?;
        if source.is_some() {
            self.1.notify_one();
        }
        Ok(())
    }
}

/// A page size as the `LIMIT` both backends bind: one more than asked, to tell whether more follow.
fn limit_plus_one(limit: usize) -> i64 {
    i64::try_from(limit + 1).unwrap_or(i64::MAX)
}
