//! PostgreSQL storage of use cases and members.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, types::Json};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    After, LinkAdd, LinkUpdate, MemberAdd, StoreError, UseCaseRepository, allowed, link_update, selector_columns,
    selector_of,
};
use crate::domain::{
    link::{AssetLink, LinkRole},
    member::{Change, Member},
    names,
    release::{FrozenLink, Release, Snapshot},
    role::Role,
    use_case::{Money, Publication, UseCase},
};

type MemberRow = (Uuid, Uuid, String, String, String, DateTime<Utc>, DateTime<Utc>, i64);

type ReleaseRow = (Uuid, Uuid, i64, String, Json<Vec<FrozenLink>>, Json<Snapshot>, String, String, DateTime<Utc>);

fn release(row: ReleaseRow) -> Release {
    let (id, use_case_id, number, description, links, snapshot, digest, creator, create_time) = row;
    Release { id, use_case_id, number, description, links: links.0, snapshot: snapshot.0, digest, creator, create_time }
}

type LinkRow =
    (Uuid, Uuid, String, String, Option<i64>, Option<String>, String, DateTime<Utc>, DateTime<Utc>, i64, String);

fn link(row: LinkRow) -> Result<AssetLink, StoreError> {
    let (id, use_case_id, asset, role, pinned, alias, creator, create_time, update_time, revision, asset_owner) = row;
    let corrupt = || StoreError::Corrupt(id.to_string());
    Ok(AssetLink {
        id,
        use_case_id,
        asset,
        role: LinkRole::parse(&role).ok_or_else(corrupt)?,
        selector: selector_of(pinned, alias).ok_or_else(corrupt)?,
        creator,
        create_time,
        update_time,
        revision,
        asset_owner,
    })
}

fn member(row: MemberRow) -> Result<Member, StoreError> {
    let (id, use_case_id, principal, role, creator, create_time, update_time, revision) = row;
    let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt(id.to_string()))?;
    Ok(Member { id, use_case_id, principal, role, creator, create_time, update_time, revision })
}

async fn insert_member(tx: &mut sqlx::PgConnection, m: &Member, request_id: Option<&str>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO members (id, use_case_id, principal, role, creator, create_time, update_time, revision, \
         request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(m.id)
    .bind(m.use_case_id)
    .bind(&m.principal)
    .bind(m.role.as_str())
    .bind(&m.creator)
    .bind(m.create_time)
    .bind(m.update_time)
    .bind(m.revision)
    .bind(request_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// The member `creator` added to `use_case_id` with idempotency key `request_id`.
async fn member_by_request(
    db: impl sqlx::PgExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Member>, StoreError> {
    let row: Option<MemberRow> = sqlx::query_as(
        "SELECT id, use_case_id, principal, role, creator, create_time, update_time, revision FROM members \
         WHERE use_case_id = $1 AND creator = $2 AND request_id = $3",
    )
    .bind(use_case_id)
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(member).transpose()
}

/// The link `creator` added to `use_case_id` with idempotency key `request_id`.
async fn link_by_request(
    db: impl sqlx::PgExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<AssetLink>, StoreError> {
    let row: Option<LinkRow> = sqlx::query_as(
        "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_time, update_time, revision, \
         asset_owner FROM asset_links WHERE use_case_id = $1 AND creator = $2 AND request_id = $3",
    )
    .bind(use_case_id)
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(link).transpose()
}

/// The release `creator` made of `use_case_id` with idempotency key `request_id`.
async fn release_by_request(
    db: impl sqlx::PgExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Release>, StoreError> {
    let row: Option<ReleaseRow> = sqlx::query_as(
        "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_time FROM releases \
         WHERE use_case_id = $1 AND creator = $2 AND request_id = $3",
    )
    .bind(use_case_id)
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(release))
}

/// Records in the grant outbox, inside the caller's transaction, that `source`'s grants changed.
async fn mark_changed(tx: &mut sqlx::PgConnection, source: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grant_outbox (source, version, pending) VALUES ($1, 1, TRUE) \
         ON CONFLICT (source) DO UPDATE SET version = grant_outbox.version + 1, pending = TRUE",
    )
    .bind(source)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_link(tx: &mut sqlx::PgConnection, l: &AssetLink, request_id: Option<&str>) -> Result<u64, sqlx::Error> {
    let (pinned, alias) = selector_columns(l);
    let done = sqlx::query(
        "INSERT INTO asset_links (id, use_case_id, asset, role, pinned_version, alias, creator, create_time, \
         update_time, revision, asset_owner, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(l.id)
    .bind(l.use_case_id)
    .bind(&l.asset)
    .bind(l.role.as_str())
    .bind(pinned)
    .bind(alias)
    .bind(&l.creator)
    .bind(l.create_time)
    .bind(l.update_time)
    .bind(l.revision)
    .bind(&l.asset_owner)
    .bind(request_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Locks the use case's members and returns member `id` and the number of owners, for an owner-preserving change.
async fn locked(tx: &mut sqlx::PgConnection, use_case_id: Uuid, id: Uuid) -> Result<(Option<Member>, i64), StoreError> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT id, use_case_id, principal, role, creator, create_time, update_time, revision FROM members \
         WHERE use_case_id = $1 FOR UPDATE",
    )
    .bind(use_case_id)
    .fetch_all(&mut *tx)
    .await?;
    let members = rows.into_iter().map(member).collect::<Result<Vec<_>, _>>()?;
    let owners = i64::try_from(members.iter().filter(|m| m.role == Role::Owner).count()).unwrap_or(i64::MAX);
    Ok((members.into_iter().find(|m| m.id == id), owners))
}

/// Use cases in PostgreSQL.
#[derive(Debug)]
pub struct PgUseCases(pub(super) PgPool, pub(super) Arc<Notify>);

macro_rules! columns {
    () => {
        "u.id, u.owner, u.display_name, u.description, u.cover_image_uri, u.model_card, u.inference_schema, \
         u.version_label, u.price_currency, u.price_units, u.price_nanos, u.labels, u.create_time, u.update_time, \
         u.archive_time, u.revision, u.forked_from, l.id AS listing_id, l.release_number AS listing_release, \
         l.active AS listing_active, (SELECT MAX(r.number) FROM releases r WHERE r.use_case_id = u.id) AS latest_release"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    owner: String,
    display_name: String,
    description: String,
    cover_image_uri: String,
    model_card: String,
    inference_schema: String,
    version_label: String,
    price_currency: String,
    price_units: i64,
    price_nanos: i32,
    labels: Json<BTreeMap<String, String>>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    archive_time: Option<DateTime<Utc>>,
    revision: i64,
    forked_from: Option<String>,
    listing_id: Option<Uuid>,
    listing_release: Option<i64>,
    listing_active: Option<bool>,
    latest_release: Option<i64>,
}

impl From<Row> for UseCase {
    fn from(row: Row) -> Self {
        Self {
            id: row.id,
            owner: row.owner,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            model_card: row.model_card,
            inference_schema: row.inference_schema,
            version_label: row.version_label,
            price: Money { currency_code: row.price_currency, units: row.price_units, nanos: row.price_nanos },
            labels: row.labels.0,
            create_time: row.create_time,
            update_time: row.update_time,
            archive_time: row.archive_time,
            revision: row.revision,
            forked_from: row.forked_from,
            latest_release: row.latest_release,
            publication: match (row.listing_id, row.listing_release, row.listing_active) {
                (Some(listing_id), Some(release_number), Some(active)) => {
                    Some(Publication { listing_id, release_number, active })
                }
                _ => None,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
struct RowWithRole {
    #[sqlx(flatten)]
    row: Row,
    role: String,
}

impl PgUseCases {
    /// Commits `tx`, having first marked `source`'s grants changed in the outbox (when there is one), and wakes the
    /// relay once the change is visible.
    pub(super) async fn commit_marking(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
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

#[async_trait]
impl UseCaseRepository for PgUseCases {
    async fn create(&self, u: &UseCase, links: &[AssetLink], request_id: Option<&str>) -> Result<UseCase, StoreError> {
        let mut tx = self.0.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO use_cases (id, owner, display_name, description, cover_image_uri, model_card, \
             inference_schema, version_label, price_currency, price_units, price_nanos, labels, create_time, \
             update_time, archive_time, revision, request_id, forked_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING",
        )
        .bind(u.id)
        .bind(&u.owner)
        .bind(&u.display_name)
        .bind(&u.description)
        .bind(&u.cover_image_uri)
        .bind(&u.model_card)
        .bind(&u.inference_schema)
        .bind(&u.version_label)
        .bind(&u.price.currency_code)
        .bind(u.price.units)
        .bind(u.price.nanos)
        .bind(Json(&u.labels))
        .bind(u.create_time)
        .bind(u.update_time)
        .bind(u.archive_time)
        .bind(u.revision)
        .bind(request_id)
        .bind(u.forked_from.as_deref())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let row: Row = sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id WHERE u.owner = $1 AND u.request_id = $2"
            ))
            .bind(&u.owner)
            .bind(request_id)
            .fetch_one(&self.0)
            .await?;
            return Ok(row.into());
        }
        insert_member(&mut tx, &Member::new(u.id, &u.owner, Role::Owner, &u.owner, u.create_time), None).await?;
        for link in links {
            insert_link(&mut tx, link, None).await?;
        }
        self.commit_marking(tx, Some(names::use_case_name(u.id))).await?;
        Ok(u.clone())
    }

    async fn get(&self, id: Uuid) -> Result<Option<UseCase>, StoreError> {
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(UseCase::from))
    }

    async fn role_of(&self, id: Uuid, principal: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE use_case_id = $1 AND principal = $2")
                .bind(id)
                .bind(principal)
                .fetch_optional(&self.0)
                .await?;
        role.map(|r| Role::parse(&r).ok_or_else(|| StoreError::Corrupt(id.to_string()))).transpose()
    }

    async fn list_for(
        &self,
        principal: &str,
        include_archived: bool,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<(UseCase, Role)>, StoreError> {
        let after_time = after.and_then(|(micros, _)| DateTime::<Utc>::from_timestamp_micros(micros));
        let rows: Vec<RowWithRole> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            ", m.role FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id JOIN members m ON m.use_case_id = u.id WHERE m.principal = $1 \
             AND ($2 OR u.archive_time IS NULL) \
             AND ($3::timestamptz IS NULL OR (u.create_time, u.id) > ($3, $4)) \
             ORDER BY u.create_time, u.id LIMIT $5"
        ))
        .bind(principal)
        .bind(include_archived)
        .bind(after_time)
        .bind(after.map(|(_, id)| id))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter()
            .map(|r| {
                let role = Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(r.row.id.to_string()))?;
                Ok((UseCase::from(r.row), role))
            })
            .collect()
    }

    async fn update(&self, u: &UseCase, expected_revision: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE use_cases SET display_name = $1, description = $2, cover_image_uri = $3, model_card = $4, \
             inference_schema = $5, version_label = $6, price_currency = $7, price_units = $8, price_nanos = $9, \
             labels = $10, update_time = $11, archive_time = $12, revision = $13 WHERE id = $14 AND revision = $15",
        )
        .bind(&u.display_name)
        .bind(&u.description)
        .bind(&u.cover_image_uri)
        .bind(&u.model_card)
        .bind(&u.inference_schema)
        .bind(&u.version_label)
        .bind(&u.price.currency_code)
        .bind(u.price.units)
        .bind(u.price.nanos)
        .bind(Json(&u.labels))
        .bind(u.update_time)
        .bind(u.archive_time)
        .bind(u.revision)
        .bind(u.id)
        .bind(expected_revision)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_member(&self, m: &Member, request_id: Option<&str>) -> Result<MemberAdd, StoreError> {
        let mut tx = self.0.begin().await?;
        // A concurrent insert with the same key makes this one wait for its commit, then do nothing; the lookup
        // below then sees the row it committed.
        if insert_member(&mut tx, m, request_id).await? == 1 {
            self.commit_marking(tx, Some(names::use_case_name(m.use_case_id))).await?;
            return Ok(MemberAdd::Added);
        }
        let earlier = match request_id {
            Some(key) => member_by_request(&mut *tx, m.use_case_id, &m.creator, key).await?,
            None => None,
        };
        tx.rollback().await?;
        Ok(earlier.map_or(MemberAdd::AlreadyMember, MemberAdd::Earlier))
    }

    async fn get_member(&self, use_case_id: Uuid, id: Uuid) -> Result<Option<Member>, StoreError> {
        let row: Option<MemberRow> = sqlx::query_as(
            "SELECT id, use_case_id, principal, role, creator, create_time, update_time, revision FROM members \
             WHERE use_case_id = $1 AND id = $2",
        )
        .bind(use_case_id)
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        row.map(member).transpose()
    }

    async fn list_members(
        &self,
        use_case_id: Uuid,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let after_time = after.and_then(|(micros, _)| DateTime::<Utc>::from_timestamp_micros(micros));
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT id, use_case_id, principal, role, creator, create_time, update_time, revision FROM members \
             WHERE use_case_id = $1 AND ($2::timestamptz IS NULL OR (create_time, id) > ($2, $3)) \
             ORDER BY create_time, id LIMIT $4",
        )
        .bind(use_case_id)
        .bind(after_time)
        .bind(after.map(|(_, id)| id))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(member).collect()
    }

    async fn set_role(
        &self,
        use_case_id: Uuid,
        id: Uuid,
        role: Role,
        expected_revision: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let mut tx = self.0.begin().await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, Some(role), owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        let next =
            Member { role, update_time: now.max(current.update_time), revision: current.revision + 1, ..current };
        sqlx::query("UPDATE members SET role = $1, update_time = $2, revision = $3 WHERE id = $4")
            .bind(next.role.as_str())
            .bind(next.update_time)
            .bind(next.revision)
            .bind(next.id)
            .execute(&mut *tx)
            .await?;
        self.commit_marking(tx, Some(names::use_case_name(use_case_id))).await?;
        Ok(Change::Done(next))
    }

    async fn remove_member(
        &self,
        use_case_id: Uuid,
        id: Uuid,
        expected_revision: Option<i64>,
    ) -> Result<Change, StoreError> {
        let mut tx = self.0.begin().await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, None, owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        sqlx::query("DELETE FROM members WHERE id = $1").bind(current.id).execute(&mut *tx).await?;
        self.commit_marking(tx, Some(names::use_case_name(use_case_id))).await?;
        Ok(Change::Done(current))
    }

    async fn add_link(&self, l: &AssetLink, max_links: usize, request_id: Option<&str>) -> Result<LinkAdd, StoreError> {
        let mut tx = self.0.begin().await?;
        // The row lock on the use case serializes adds, so the key check and the count below stay true until the
        // insert.
        sqlx::query("SELECT id FROM use_cases WHERE id = $1 FOR UPDATE").bind(l.use_case_id).execute(&mut *tx).await?;
        if let Some(key) = request_id
            && let Some(earlier) = link_by_request(&mut *tx, l.use_case_id, &l.creator, key).await?
        {
            return Ok(LinkAdd::Earlier(earlier));
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM asset_links WHERE use_case_id = $1")
            .bind(l.use_case_id)
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_links {
            return Ok(LinkAdd::Full);
        }
        let added = insert_link(&mut tx, l, request_id).await? == 1;
        self.commit_marking(tx, added.then(|| names::use_case_name(l.use_case_id))).await?;
        Ok(if added { LinkAdd::Added } else { LinkAdd::Duplicate })
    }

    async fn link_by_request(
        &self,
        use_case_id: Uuid,
        creator: &str,
        request_id: &str,
    ) -> Result<Option<AssetLink>, StoreError> {
        link_by_request(&self.0, use_case_id, creator, request_id).await
    }

    async fn get_link(&self, use_case_id: Uuid, id: Uuid) -> Result<Option<AssetLink>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(
            "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_time, update_time, revision, \
             asset_owner FROM asset_links WHERE use_case_id = $1 AND id = $2",
        )
        .bind(use_case_id)
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        row.map(link).transpose()
    }

    async fn list_links(
        &self,
        use_case_id: Uuid,
        after: Option<After>,
        limit: usize,
    ) -> Result<Vec<AssetLink>, StoreError> {
        let after_time = after.and_then(|(micros, _)| DateTime::<Utc>::from_timestamp_micros(micros));
        let rows: Vec<LinkRow> = sqlx::query_as(
            "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_time, update_time, revision, \
             asset_owner FROM asset_links WHERE use_case_id = $1 AND ($2::timestamptz IS NULL OR (create_time, id) > ($2, $3)) \
             ORDER BY create_time, id LIMIT $4",
        )
        .bind(use_case_id)
        .bind(after_time)
        .bind(after.map(|(_, id)| id))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(link).collect()
    }

    async fn remove_link(&self, use_case_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await?;
        let done = sqlx::query("DELETE FROM asset_links WHERE use_case_id = $1 AND id = $2")
            .bind(use_case_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() == 1;
        self.commit_marking(tx, removed.then(|| names::use_case_name(use_case_id))).await?;
        Ok(removed)
    }

    async fn create_release(&self, r: &Release, request_id: Option<&str>) -> Result<Release, StoreError> {
        let mut tx = self.0.begin().await?;
        // The use case's row lock serializes releases, so numbers never collide and a key is used once.
        sqlx::query("SELECT id FROM use_cases WHERE id = $1 FOR UPDATE").bind(r.use_case_id).execute(&mut *tx).await?;
        if let Some(key) = request_id
            && let Some(earlier) = release_by_request(&mut *tx, r.use_case_id, &r.creator, key).await?
        {
            return Ok(earlier);
        }
        let number: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE use_case_id = $1")
                .bind(r.use_case_id)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO releases (id, use_case_id, number, description, links, snapshot, digest, creator, create_time, \
             request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.id)
        .bind(r.use_case_id)
        .bind(number)
        .bind(&r.description)
        .bind(Json(&r.links))
        .bind(Json(&r.snapshot))
        .bind(&r.digest)
        .bind(&r.creator)
        .bind(r.create_time)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        self.commit_marking(tx, Some(names::use_case_name(r.use_case_id))).await?;
        Ok(Release { number, ..r.clone() })
    }

    async fn release_by_request(
        &self,
        use_case_id: Uuid,
        creator: &str,
        request_id: &str,
    ) -> Result<Option<Release>, StoreError> {
        release_by_request(&self.0, use_case_id, creator, request_id).await
    }

    async fn get_release(&self, use_case_id: Uuid, number: i64) -> Result<Option<Release>, StoreError> {
        let row: Option<ReleaseRow> = sqlx::query_as(
            "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_time FROM releases \
             WHERE use_case_id = $1 AND number = $2",
        )
        .bind(use_case_id)
        .bind(number)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(release))
    }

    async fn list_releases(
        &self,
        use_case_id: Uuid,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Release>, StoreError> {
        let rows: Vec<ReleaseRow> = sqlx::query_as(
            "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_time FROM releases \
             WHERE use_case_id = $1 AND ($2::bigint IS NULL OR number < $2) ORDER BY number DESC LIMIT $3",
        )
        .bind(use_case_id)
        .bind(before)
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(release).collect())
    }

    async fn update_link(&self, l: &AssetLink, expected_revision: i64) -> Result<LinkUpdate, StoreError> {
        let (pinned, alias) = selector_columns(l);
        let mut tx = self.0.begin().await?;
        let result = sqlx::query(
            "UPDATE asset_links SET asset = $1, pinned_version = $2, alias = $3, update_time = $4, revision = $5, \
             asset_owner = $8 WHERE id = $6 AND revision = $7",
        )
        .bind(&l.asset)
        .bind(pinned)
        .bind(alias)
        .bind(l.update_time)
        .bind(l.revision)
        .bind(l.id)
        .bind(expected_revision)
        .bind(&l.asset_owner)
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected());
        let update = link_update(result)?;
        if update == LinkUpdate::Done {
            self.commit_marking(tx, Some(names::use_case_name(l.use_case_id))).await?;
        }
        Ok(update)
    }
}
