//! Where use cases, their members, links and releases, the marketplace and the grant outbox are kept: the
//! repository traits, one implementation of them (`repository/`) compiled for PostgreSQL (`pg.rs`) and for SQLite
//! (`sqlite.rs`), and one conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
use highwind_common::db::{Database, DbError};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::domain::{
    link::{AssetLink, Selector},
    member::{Change, Member},
    release::Release,
    role::Role,
    use_case::UseCase,
};

pub mod market;
pub mod outbox;
mod pg;
mod rows;
mod sqlite;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod upgrade;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A storage failure; logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode.
    #[error("stored use case {0} is corrupt")]
    Corrupt(String),
}

/// Where a page of use cases resumes: after this create time (microseconds) and id.
pub type After = (i64, Uuid);

/// Persistence of use cases, members, links and releases.
#[async_trait]
pub trait UseCaseRepository: Send + Sync + std::fmt::Debug {
    /// Inserts `use_case` with its creator as OWNER and its first `links` (a fork's), all or nothing. When the
    /// creator already used `request_id`, nothing is inserted and that use case is returned.
    async fn create(
        &self,
        use_case: &UseCase,
        links: &[AssetLink],
        request_id: Option<&str>,
    ) -> Result<UseCase, StoreError>;

    /// The use case with `id`.
    async fn get(&self, id: Uuid) -> Result<Option<UseCase>, StoreError>;

    /// `principal`'s role on use case `id`, if a member.
    async fn role_of(&self, id: Uuid, principal: &str) -> Result<Option<Role>, StoreError>;

    /// At most `limit + 1` use cases `principal` is a member of, oldest first, after `after`.
    async fn list_for(
        &self,
        principal: &str,
        include_archived: bool,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<(UseCase, Role)>, StoreError>;

    /// Replaces the use case if its revision is still `expected_revision`.
    async fn update(&self, use_case: &UseCase, expected_revision: i64) -> Result<bool, StoreError>;

    /// Adds `member`, keeping `request_id` as its creator's idempotency key on this use case. When that creator
    /// already used the key here, or the principal is already a member, nothing changes.
    async fn add_member(&self, member: &Member, request_id: Option<&str>) -> Result<MemberAdd, StoreError>;

    /// Member `id` of use case `use_case_id`.
    async fn get_member(&self, use_case_id: Uuid, id: Uuid) -> Result<Option<Member>, StoreError>;

    /// At most `limit + 1` members, oldest first, after `after`.
    async fn list_members(
        &self,
        use_case_id: Uuid,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;

    /// Gives member `id` the role `role`, atomically refusing to leave the use case without an owner.
    async fn set_role(
        &self,
        use_case_id: Uuid,
        id: Uuid,
        role: Role,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError>;

    /// Removes member `id`, atomically refusing to leave the use case without an owner.
    async fn remove_member(
        &self,
        use_case_id: Uuid,
        id: Uuid,
        expected_revision: Option<i64>,
    ) -> Result<Change, StoreError>;

    /// Adds `link`, keeping `request_id` as its creator's idempotency key on this use case, unless that creator
    /// already used the key here, the use case already has `max_links` links, or it links that asset in that role
    /// (then nothing changes). The key check, the count and the insert share one transaction that holds the use
    /// case, so concurrent adds never pass the limit nor both use one key.
    async fn add_link(
        &self,
        link: &AssetLink,
        max_links: usize,
        request_id: Option<&str>,
    ) -> Result<LinkAdd, StoreError>;

    /// The link `creator` added to use case `use_case_id` with idempotency key `request_id`, as it is now.
    async fn link_by_request(
        &self,
        use_case_id: Uuid,
        creator: &str,
        request_id: &str,
    ) -> Result<Option<AssetLink>, StoreError>;

    /// Link `id` of use case `use_case_id`.
    async fn get_link(&self, use_case_id: Uuid, id: Uuid) -> Result<Option<AssetLink>, StoreError>;

    /// At most `limit + 1` links, oldest first, after `after`.
    async fn list_links(
        &self,
        use_case_id: Uuid,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<AssetLink>, StoreError>;

    /// Removes link `id`; false when there was none.
    async fn remove_link(&self, use_case_id: Uuid, id: Uuid) -> Result<bool, StoreError>;

    /// Replaces link `link.id` (asset, selector, update time, revision) if its revision is still
    /// `expected_revision`.
    async fn update_link(&self, link: &AssetLink, expected_revision: i64) -> Result<LinkUpdate, StoreError>;

    /// Stores `release` under the use case's next release number, which it returns with. When its creator already
    /// used `request_id` on this use case, nothing is stored and that release is returned.
    async fn create_release(&self, release: &Release, request_id: Option<&str>) -> Result<Release, StoreError>;

    /// The release `creator` made of use case `use_case_id` with idempotency key `request_id`.
    async fn release_by_request(
        &self,
        use_case_id: Uuid,
        creator: &str,
        request_id: &str,
    ) -> Result<Option<Release>, StoreError>;

    /// Release `number` of a use case.
    async fn get_release(&self, use_case_id: Uuid, number: i64) -> Result<Option<Release>, StoreError>;

    /// At most `limit + 1` releases, newest first, numbered below `before`.
    async fn list_releases(
        &self,
        use_case_id: Uuid,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Release>, StoreError>;
}

/// Every row of a keyset-paged list: `page(after)` returns up to `batch + 1` rows after `after` (the extra row
/// says more follow), `key` gives a row's resume point.
pub async fn read_all<T, K, F, Fut>(batch: usize, mut page: F, key: impl Fn(&T) -> K) -> Result<Vec<T>, StoreError>
where
    F: FnMut(Option<K>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut rows = page(after).await?;
        let more = rows.len() > batch;
        rows.truncate(batch);
        after = rows.last().map(&key);
        all.extend(rows);
        if !more {
            return Ok(all);
        }
    }
}

/// What became of a new member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAdd {
    /// Stored.
    Added,
    /// Its creator already used the idempotency key on this use case: the member that call added, as it is now.
    Earlier(Member),
    /// The principal is already a member.
    AlreadyMember,
}

/// What became of a new link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAdd {
    /// Stored.
    Added,
    /// Its creator already used the idempotency key on this use case: the link that call added, as it is now.
    Earlier(AssetLink),
    /// The use case already links that asset in that role.
    Duplicate,
    /// The use case already has as many links as it may.
    Full,
}

/// What became of a link update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUpdate {
    /// Stored.
    Done,
    /// The link changed (or went) since it was read.
    Stale,
    /// The use case already links the new asset in this role.
    Duplicate,
}

fn link_update(result: Result<u64, sqlx::Error>) -> Result<LinkUpdate, StoreError> {
    match result {
        Ok(1) => Ok(LinkUpdate::Done),
        Ok(_) => Ok(LinkUpdate::Stale),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(LinkUpdate::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// A link's selector as its two stored columns.
fn selector_columns(link: &AssetLink) -> (Option<i64>, Option<&str>) {
    match &link.selector {
        Selector::Pinned(n) => (Some(*n), None),
        Selector::Alias(a) => (None, Some(a.as_str())),
    }
}

/// A link's selector from its two stored columns.
fn selector_of(pinned: Option<i64>, alias: Option<String>) -> Option<Selector> {
    match (pinned, alias) {
        (Some(n), None) => Some(Selector::Pinned(n)),
        (None, Some(a)) => Some(Selector::Alias(a)),
        _ => None,
    }
}

/// The member to change (to `new_role`, or remove with `None`), or why the change is refused: it is gone, the
/// caller's revision is stale, or it would leave the use case with no owner (`owners` counts them now).
fn allowed(
    current: Option<Member>,
    expected_revision: Option<i64>,
    new_role: Option<Role>,
    owners: i64,
) -> Result<Member, Change> {
    let current = current.ok_or(Change::Missing)?;
    if expected_revision.is_some_and(|r| r != current.revision) {
        return Err(Change::Stale);
    }
    if current.role == Role::Owner && new_role != Some(Role::Owner) && owners <= 1 {
        return Err(Change::LastOwner);
    }
    Ok(current)
}

/// The repositories of one database.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Use cases, members, links and releases.
    pub use_cases: Arc<dyn UseCaseRepository>,
    /// Listings, entitlements and the payment ledger.
    pub market: Arc<dyn market::MarketRepository>,
    /// Grant changes waiting to be delivered to asset-svc.
    pub outbox: Arc<dyn outbox::GrantOutbox>,
    /// Notified after every commit that wrote to the outbox.
    pub changed: Arc<tokio::sync::Notify>,
}

/// Migrates `db` and returns the repositories for its backend.
pub async fn open(db: Database) -> Result<Stores, DbError> {
    db.migrate(&POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS).await?;
    let changed = Arc::new(tokio::sync::Notify::new());
    Ok(match db {
        Database::Postgres(pool) => {
            let store = Arc::new(pg::UseCases(pool, changed.clone()));
            Stores { use_cases: store.clone(), market: store.clone(), outbox: store, changed }
        }
        Database::Sqlite(pool) => {
            let store = Arc::new(sqlite::UseCases(pool, changed.clone()));
            Stores { use_cases: store.clone(), market: store.clone(), outbox: store, changed }
        }
    })
}
