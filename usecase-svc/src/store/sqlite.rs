//! SQLite storage of use cases and members.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{SqlitePool, types::Json};
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

type MemberRow = (String, String, String, String, String, i64, i64, i64);

type ReleaseRow = (String, String, i64, String, Json<Vec<FrozenLink>>, Json<Snapshot>, String, String, i64);

fn release(row: ReleaseRow) -> Result<Release, StoreError> {
    let (id, use_case_id, number, description, links, snapshot, digest, creator, create) = row;
    let corrupt = || StoreError::Corrupt(id.clone());
    Ok(Release {
        id: Uuid::try_parse(&id).map_err(|_| corrupt())?,
        use_case_id: Uuid::try_parse(&use_case_id).map_err(|_| corrupt())?,
        create_time: DateTime::<Utc>::from_timestamp_micros(create).ok_or_else(corrupt)?,
        number,
        description,
        links: links.0,
        snapshot: snapshot.0,
        digest,
        creator,
    })
}

type LinkRow = (String, String, String, String, Option<i64>, Option<String>, String, i64, i64, i64, String);

fn link(row: LinkRow) -> Result<AssetLink, StoreError> {
    let (id, use_case_id, asset, role, pinned, alias, creator, create, update, revision, asset_owner) = row;
    let corrupt = || StoreError::Corrupt(id.clone());
    Ok(AssetLink {
        id: Uuid::try_parse(&id).map_err(|_| corrupt())?,
        use_case_id: Uuid::try_parse(&use_case_id).map_err(|_| corrupt())?,
        role: LinkRole::parse(&role).ok_or_else(corrupt)?,
        selector: selector_of(pinned, alias).ok_or_else(corrupt)?,
        create_time: DateTime::<Utc>::from_timestamp_micros(create).ok_or_else(corrupt)?,
        update_time: DateTime::<Utc>::from_timestamp_micros(update).ok_or_else(corrupt)?,
        asset,
        creator,
        revision,
        asset_owner,
    })
}

fn member(row: MemberRow) -> Result<Member, StoreError> {
    let (id, use_case_id, principal, role, creator, create, update, revision) = row;
    let corrupt = || StoreError::Corrupt(id.clone());
    Ok(Member {
        id: Uuid::try_parse(&id).map_err(|_| corrupt())?,
        use_case_id: Uuid::try_parse(&use_case_id).map_err(|_| corrupt())?,
        role: Role::parse(&role).ok_or_else(corrupt)?,
        create_time: DateTime::<Utc>::from_timestamp_micros(create).ok_or_else(corrupt)?,
        update_time: DateTime::<Utc>::from_timestamp_micros(update).ok_or_else(corrupt)?,
        principal,
        creator,
        revision,
    })
}

async fn insert_member(
    tx: &mut sqlx::SqliteConnection,
    m: &Member,
    request_id: Option<&str>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO members (id, use_case_id, principal, role, creator, create_micros, update_micros, revision, \
         request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(m.id.to_string())
    .bind(m.use_case_id.to_string())
    .bind(&m.principal)
    .bind(m.role.as_str())
    .bind(&m.creator)
    .bind(m.create_time.timestamp_micros())
    .bind(m.update_time.timestamp_micros())
    .bind(m.revision)
    .bind(request_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// The member `creator` added to `use_case_id` with idempotency key `request_id`.
async fn member_by_request(
    db: impl sqlx::SqliteExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Member>, StoreError> {
    let row: Option<MemberRow> = sqlx::query_as(
        "SELECT id, use_case_id, principal, role, creator, create_micros, update_micros, revision FROM members \
         WHERE use_case_id = ? AND creator = ? AND request_id = ?",
    )
    .bind(use_case_id.to_string())
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(member).transpose()
}

/// The link `creator` added to `use_case_id` with idempotency key `request_id`.
async fn link_by_request(
    db: impl sqlx::SqliteExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<AssetLink>, StoreError> {
    let row: Option<LinkRow> = sqlx::query_as(
        "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_micros, update_micros, \
         revision, asset_owner FROM asset_links WHERE use_case_id = ? AND creator = ? AND request_id = ?",
    )
    .bind(use_case_id.to_string())
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(link).transpose()
}

/// The release `creator` made of `use_case_id` with idempotency key `request_id`.
async fn release_by_request(
    db: impl sqlx::SqliteExecutor<'_>,
    use_case_id: Uuid,
    creator: &str,
    request_id: &str,
) -> Result<Option<Release>, StoreError> {
    let row: Option<ReleaseRow> = sqlx::query_as(
        "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_micros FROM releases \
         WHERE use_case_id = ? AND creator = ? AND request_id = ?",
    )
    .bind(use_case_id.to_string())
    .bind(creator)
    .bind(request_id)
    .fetch_optional(db)
    .await?;
    row.map(release).transpose()
}

/// Records in the grant outbox, inside the caller's transaction, that `source`'s grants changed.
async fn mark_changed(tx: &mut sqlx::SqliteConnection, source: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grant_outbox (source, version, pending) VALUES (?, 1, TRUE) \
         ON CONFLICT (source) DO UPDATE SET version = grant_outbox.version + 1, pending = TRUE",
    )
    .bind(source)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_link(
    tx: &mut sqlx::SqliteConnection,
    l: &AssetLink,
    request_id: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let (pinned, alias) = selector_columns(l);
    let done = sqlx::query(
        "INSERT INTO asset_links (id, use_case_id, asset, role, pinned_version, alias, creator, create_micros, \
         update_micros, revision, asset_owner, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(l.id.to_string())
    .bind(l.use_case_id.to_string())
    .bind(&l.asset)
    .bind(l.role.as_str())
    .bind(pinned)
    .bind(alias)
    .bind(&l.creator)
    .bind(l.create_time.timestamp_micros())
    .bind(l.update_time.timestamp_micros())
    .bind(l.revision)
    .bind(&l.asset_owner)
    .bind(request_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Member `id` and the number of owners, read inside a write transaction (BEGIN IMMEDIATE serializes them).
async fn locked(
    tx: &mut sqlx::SqliteConnection,
    use_case_id: Uuid,
    id: Uuid,
) -> Result<(Option<Member>, i64), StoreError> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT id, use_case_id, principal, role, creator, create_micros, update_micros, revision FROM members \
         WHERE use_case_id = ?",
    )
    .bind(use_case_id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let members = rows.into_iter().map(member).collect::<Result<Vec<_>, _>>()?;
    let owners = i64::try_from(members.iter().filter(|m| m.role == Role::Owner).count()).unwrap_or(i64::MAX);
    Ok((members.into_iter().find(|m| m.id == id), owners))
}

/// Use cases in SQLite.
#[derive(Debug)]
pub struct SqliteUseCases(pub(super) SqlitePool, pub(super) Arc<Notify>);

macro_rules! columns {
    () => {
        "u.id, u.owner, u.display_name, u.description, u.cover_image_uri, u.model_card, u.inference_schema, \
         u.version_label, u.price_currency, u.price_units, u.price_nanos, u.labels, u.create_micros, u.update_micros, \
         u.archive_micros, u.revision, u.forked_from, l.id AS listing_id, l.release_number AS listing_release, \
         l.active AS listing_active, (SELECT MAX(r.number) FROM releases r WHERE r.use_case_id = u.id) AS latest_release"
    };
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
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
    create_micros: i64,
    update_micros: i64,
    archive_micros: Option<i64>,
    revision: i64,
    forked_from: Option<String>,
    listing_id: Option<String>,
    listing_release: Option<i64>,
    listing_active: Option<bool>,
    latest_release: Option<i64>,
}

impl TryFrom<Row> for UseCase {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt(row.id.clone());
        let time = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(corrupt);
        Ok(Self {
            id: Uuid::try_parse(&row.id).map_err(|_| corrupt())?,
            create_time: time(row.create_micros)?,
            update_time: time(row.update_micros)?,
            archive_time: row.archive_micros.map(time).transpose()?,
            owner: row.owner,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            model_card: row.model_card,
            inference_schema: row.inference_schema,
            version_label: row.version_label,
            price: Money { currency_code: row.price_currency, units: row.price_units, nanos: row.price_nanos },
            labels: row.labels.0,
            revision: row.revision,
            forked_from: row.forked_from,
            latest_release: row.latest_release,
            publication: match (row.listing_id, row.listing_release, row.listing_active) {
                (Some(listing_id), Some(release_number), Some(active)) => Some(Publication {
                    listing_id: Uuid::try_parse(&listing_id).map_err(|_| corrupt())?,
                    release_number,
                    active,
                }),
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct RowWithRole {
    #[sqlx(flatten)]
    row: Row,
    role: String,
}

impl SqliteUseCases {
    /// Commits `tx`, having first marked `source`'s grants changed in the outbox (when there is one), and wakes the
    /// relay once the change is visible.
    pub(super) async fn commit_marking(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
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
impl UseCaseRepository for SqliteUseCases {
    async fn create(&self, u: &UseCase, links: &[AssetLink], request_id: Option<&str>) -> Result<UseCase, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO use_cases (id, owner, display_name, description, cover_image_uri, model_card, \
             inference_schema, version_label, price_currency, price_units, price_nanos, labels, create_micros, \
             update_micros, archive_micros, revision, request_id, forked_from) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(u.id.to_string())
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
        .bind(u.create_time.timestamp_micros())
        .bind(u.update_time.timestamp_micros())
        .bind(u.archive_time.map(|t| t.timestamp_micros()))
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
                " FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id WHERE u.owner = ? AND u.request_id = ?"
            ))
            .bind(&u.owner)
            .bind(request_id)
            .fetch_one(&self.0)
            .await?;
            return row.try_into();
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
            " FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id WHERE u.id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.0)
        .await?;
        row.map(UseCase::try_from).transpose()
    }

    async fn role_of(&self, id: Uuid, principal: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE use_case_id = ? AND principal = ?")
                .bind(id.to_string())
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
        let rows: Vec<RowWithRole> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            ", m.role FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id JOIN members m ON m.use_case_id = u.id WHERE m.principal = ? \
             AND (? OR u.archive_micros IS NULL) \
             AND (? IS NULL OR (u.create_micros, u.id) > (?, ?)) \
             ORDER BY u.create_micros, u.id LIMIT ?"
        ))
        .bind(principal)
        .bind(include_archived)
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(_, id)| id.to_string()))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter()
            .map(|r| {
                let role = Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(r.row.id.clone()))?;
                Ok((UseCase::try_from(r.row)?, role))
            })
            .collect()
    }

    async fn update(&self, u: &UseCase, expected_revision: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE use_cases SET display_name = ?, description = ?, cover_image_uri = ?, model_card = ?, \
             inference_schema = ?, version_label = ?, price_currency = ?, price_units = ?, price_nanos = ?, \
             labels = ?, update_micros = ?, archive_micros = ?, revision = ? WHERE id = ? AND revision = ?",
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
        .bind(u.update_time.timestamp_micros())
        .bind(u.archive_time.map(|t| t.timestamp_micros()))
        .bind(u.revision)
        .bind(u.id.to_string())
        .bind(expected_revision)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_member(&self, m: &Member, request_id: Option<&str>) -> Result<MemberAdd, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
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
            "SELECT id, use_case_id, principal, role, creator, create_micros, update_micros, revision FROM members \
             WHERE use_case_id = ? AND id = ?",
        )
        .bind(use_case_id.to_string())
        .bind(id.to_string())
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
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT id, use_case_id, principal, role, creator, create_micros, update_micros, revision FROM members \
             WHERE use_case_id = ? AND (? IS NULL OR (create_micros, id) > (?, ?)) ORDER BY create_micros, id LIMIT ?",
        )
        .bind(use_case_id.to_string())
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(_, id)| id.to_string()))
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
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, Some(role), owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        let next =
            Member { role, update_time: now.max(current.update_time), revision: current.revision + 1, ..current };
        sqlx::query("UPDATE members SET role = ?, update_micros = ?, revision = ? WHERE id = ?")
            .bind(next.role.as_str())
            .bind(next.update_time.timestamp_micros())
            .bind(next.revision)
            .bind(next.id.to_string())
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
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, None, owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        sqlx::query("DELETE FROM members WHERE id = ?").bind(current.id.to_string()).execute(&mut *tx).await?;
        self.commit_marking(tx, Some(names::use_case_name(use_case_id))).await?;
        Ok(Change::Done(current))
    }

    async fn add_link(&self, l: &AssetLink, max_links: usize, request_id: Option<&str>) -> Result<LinkAdd, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        // BEGIN IMMEDIATE serializes adds, so the key check and the count below stay true until the insert.
        if let Some(key) = request_id
            && let Some(earlier) = link_by_request(&mut *tx, l.use_case_id, &l.creator, key).await?
        {
            return Ok(LinkAdd::Earlier(earlier));
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM asset_links WHERE use_case_id = ?")
            .bind(l.use_case_id.to_string())
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
            "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_micros, update_micros, \
             revision, asset_owner FROM asset_links WHERE use_case_id = ? AND id = ?",
        )
        .bind(use_case_id.to_string())
        .bind(id.to_string())
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
        let rows: Vec<LinkRow> = sqlx::query_as(
            "SELECT id, use_case_id, asset, role, pinned_version, alias, creator, create_micros, update_micros, \
             revision, asset_owner FROM asset_links WHERE use_case_id = ? AND (? IS NULL OR (create_micros, id) > (?, ?)) \
             ORDER BY create_micros, id LIMIT ?",
        )
        .bind(use_case_id.to_string())
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(micros, _)| micros))
        .bind(after.map(|(_, id)| id.to_string()))
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(link).collect()
    }

    async fn remove_link(&self, use_case_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM asset_links WHERE use_case_id = ? AND id = ?")
            .bind(use_case_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() == 1;
        self.commit_marking(tx, removed.then(|| names::use_case_name(use_case_id))).await?;
        Ok(removed)
    }

    async fn create_release(&self, r: &Release, request_id: Option<&str>) -> Result<Release, StoreError> {
        // BEGIN IMMEDIATE serializes releases, so numbers never collide and a key is used once.
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(key) = request_id
            && let Some(earlier) = release_by_request(&mut *tx, r.use_case_id, &r.creator, key).await?
        {
            return Ok(earlier);
        }
        let number: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE use_case_id = ?")
            .bind(r.use_case_id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO releases (id, use_case_id, number, description, links, snapshot, digest, creator, \
             create_micros, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(r.use_case_id.to_string())
        .bind(number)
        .bind(&r.description)
        .bind(Json(&r.links))
        .bind(Json(&r.snapshot))
        .bind(&r.digest)
        .bind(&r.creator)
        .bind(r.create_time.timestamp_micros())
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
            "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_micros FROM releases \
             WHERE use_case_id = ? AND number = ?",
        )
        .bind(use_case_id.to_string())
        .bind(number)
        .fetch_optional(&self.0)
        .await?;
        row.map(release).transpose()
    }

    async fn list_releases(
        &self,
        use_case_id: Uuid,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Release>, StoreError> {
        let rows: Vec<ReleaseRow> = sqlx::query_as(
            "SELECT id, use_case_id, number, description, links, snapshot, digest, creator, create_micros FROM releases \
             WHERE use_case_id = ? AND (? IS NULL OR number < ?) ORDER BY number DESC LIMIT ?",
        )
        .bind(use_case_id.to_string())
        .bind(before)
        .bind(before)
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(release).collect()
    }

    async fn update_link(&self, l: &AssetLink, expected_revision: i64) -> Result<LinkUpdate, StoreError> {
        let (pinned, alias) = selector_columns(l);
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let result = sqlx::query(
            "UPDATE asset_links SET asset = ?, pinned_version = ?, alias = ?, update_micros = ?, revision = ?, \
             asset_owner = ? WHERE id = ? AND revision = ?",
        )
        .bind(&l.asset)
        .bind(pinned)
        .bind(alias)
        .bind(l.update_time.timestamp_micros())
        .bind(l.revision)
        .bind(&l.asset_owner)
        .bind(l.id.to_string())
        .bind(expected_revision)
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
