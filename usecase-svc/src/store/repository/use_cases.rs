//! Use cases, members, links and releases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    super::{UseCases, begin_write},
    hold_use_case, insert_link, insert_member, limit_plus_one, link_by_request, locked, member_by_request,
    release_by_request,
};
use crate::{
    domain::{
        link::AssetLink,
        member::{Change, Member},
        names,
        release::Release,
        role::Role,
        use_case::UseCase,
    },
    store::{
        After, LinkAdd, LinkUpdate, MemberAdd, StoreError, UseCaseRepository, allowed, link_update,
        rows::{
            LinkRow, MemberRow, ReleaseRow, UseCaseRow, UseCaseRowWithRole, link, link_columns, member, member_columns,
            release, release_columns, use_case_columns,
        },
        selector_columns,
    },
};

/// Where a page resumes, as the backends compare it: the create time and id of the last row read.
fn resume_point(after: Option<After>) -> (Option<DbTime>, Option<DbUuid>) {
    let time = after.and_then(|(micros, _)| DateTime::<Utc>::from_timestamp_micros(micros)).map(DbTime);
    (time, after.map(|(_, id)| DbUuid(id)))
}

#[async_trait]
impl UseCaseRepository for UseCases {
    async fn create(&self, u: &UseCase, links: &[AssetLink], request_id: Option<&str>) -> Result<UseCase, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let inserted = sqlx::query(
            "INSERT INTO use_cases (id, owner, display_name, description, cover_image_uri, model_card, \
             inference_schema, version_label, price_currency, price_units, price_nanos, labels, create_time, \
             update_time, archive_time, revision, request_id, forked_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING",
        )
        .bind(DbUuid(u.id))
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
        .bind(DbTime(u.create_time))
        .bind(DbTime(u.update_time))
        .bind(u.archive_time.map(DbTime))
        .bind(u.revision)
        .bind(request_id)
        .bind(u.forked_from.as_deref())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let row: UseCaseRow = sqlx::query_as(concat!(
                "SELECT ",
                use_case_columns!(),
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
        let row: Option<UseCaseRow> = sqlx::query_as(concat!(
            "SELECT ",
            use_case_columns!(),
            " FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id WHERE u.id = $1"
        ))
        .bind(DbUuid(id))
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(UseCase::from))
    }

    async fn role_of(&self, id: Uuid, principal: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE use_case_id = $1 AND principal = $2")
                .bind(DbUuid(id))
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
        let (after_time, after_id) = resume_point(after);
        let rows: Vec<UseCaseRowWithRole> = sqlx::query_as(concat!(
            "SELECT ",
            use_case_columns!(),
            ", m.role FROM use_cases u LEFT JOIN listings l ON l.use_case_id = u.id \
             JOIN members m ON m.use_case_id = u.id WHERE m.principal = $1 \
             AND ($2 OR u.archive_time IS NULL) \
             AND ($3 IS NULL OR (u.create_time, u.id) > ($3, $4)) \
             ORDER BY u.create_time, u.id LIMIT $5"
        ))
        .bind(principal)
        .bind(include_archived)
        .bind(after_time)
        .bind(after_id)
        .bind(limit_plus_one(limit))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(TryFrom::try_from).collect()
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
        .bind(DbTime(u.update_time))
        .bind(u.archive_time.map(DbTime))
        .bind(u.revision)
        .bind(DbUuid(u.id))
        .bind(expected_revision)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_member(&self, m: &Member, request_id: Option<&str>) -> Result<MemberAdd, StoreError> {
        let mut tx = begin_write(&self.0).await?;
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
        let row: Option<MemberRow> =
            sqlx::query_as(concat!("SELECT ", member_columns!(), " FROM members WHERE use_case_id = $1 AND id = $2"))
                .bind(DbUuid(use_case_id))
                .bind(DbUuid(id))
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
        let (after_time, after_id) = resume_point(after);
        let rows: Vec<MemberRow> = sqlx::query_as(concat!(
            "SELECT ",
            member_columns!(),
            " FROM members WHERE use_case_id = $1 AND ($2 IS NULL OR (create_time, id) > ($2, $3)) \
             ORDER BY create_time, id LIMIT $4"
        ))
        .bind(DbUuid(use_case_id))
        .bind(after_time)
        .bind(after_id)
        .bind(limit_plus_one(limit))
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
        let mut tx = begin_write(&self.0).await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, Some(role), owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        let next =
            Member { role, update_time: now.max(current.update_time), revision: current.revision + 1, ..current };
        sqlx::query("UPDATE members SET role = $1, update_time = $2, revision = $3 WHERE id = $4")
            .bind(next.role.as_str())
            .bind(DbTime(next.update_time))
            .bind(next.revision)
            .bind(DbUuid(next.id))
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
        let mut tx = begin_write(&self.0).await?;
        let (current, owners) = locked(&mut tx, use_case_id, id).await?;
        let current = match allowed(current, expected_revision, None, owners) {
            Ok(current) => current,
            Err(refused) => return Ok(refused),
        };
        sqlx::query("DELETE FROM members WHERE id = $1").bind(DbUuid(current.id)).execute(&mut *tx).await?;
        self.commit_marking(tx, Some(names::use_case_name(use_case_id))).await?;
        Ok(Change::Done(current))
    }

    async fn add_link(&self, l: &AssetLink, max_links: usize, request_id: Option<&str>) -> Result<LinkAdd, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        // Holding the use case serializes adds, so the key check and the count below stay true until the insert.
        hold_use_case(&mut tx, l.use_case_id).await?;
        if let Some(key) = request_id
            && let Some(earlier) = link_by_request(&mut *tx, l.use_case_id, &l.creator, key).await?
        {
            return Ok(LinkAdd::Earlier(earlier));
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM asset_links WHERE use_case_id = $1")
            .bind(DbUuid(l.use_case_id))
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
        let row: Option<LinkRow> =
            sqlx::query_as(concat!("SELECT ", link_columns!(), " FROM asset_links WHERE use_case_id = $1 AND id = $2"))
                .bind(DbUuid(use_case_id))
                .bind(DbUuid(id))
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
        let (after_time, after_id) = resume_point(after);
        let rows: Vec<LinkRow> = sqlx::query_as(concat!(
            "SELECT ",
            link_columns!(),
            " FROM asset_links WHERE use_case_id = $1 AND ($2 IS NULL OR (create_time, id) > ($2, $3)) \
             ORDER BY create_time, id LIMIT $4"
        ))
        .bind(DbUuid(use_case_id))
        .bind(after_time)
        .bind(after_id)
        .bind(limit_plus_one(limit))
        .fetch_all(&self.0)
        .await?;
        rows.into_iter().map(link).collect()
    }

    async fn remove_link(&self, use_case_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let done = sqlx::query("DELETE FROM asset_links WHERE use_case_id = $1 AND id = $2")
            .bind(DbUuid(use_case_id))
            .bind(DbUuid(id))
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() == 1;
        self.commit_marking(tx, removed.then(|| names::use_case_name(use_case_id))).await?;
        Ok(removed)
    }

    async fn update_link(&self, l: &AssetLink, expected_revision: i64) -> Result<LinkUpdate, StoreError> {
        let (pinned, alias) = selector_columns(l);
        let mut tx = begin_write(&self.0).await?;
        let result = sqlx::query(
            "UPDATE asset_links SET asset = $1, pinned_version = $2, alias = $3, update_time = $4, revision = $5, \
             asset_owner = $8 WHERE id = $6 AND revision = $7",
        )
        .bind(&l.asset)
        .bind(pinned)
        .bind(alias)
        .bind(DbTime(l.update_time))
        .bind(l.revision)
        .bind(DbUuid(l.id))
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

    async fn create_release(&self, r: &Release, request_id: Option<&str>) -> Result<Release, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        // Holding the use case serializes releases, so numbers never collide and a key is used once.
        hold_use_case(&mut tx, r.use_case_id).await?;
        if let Some(key) = request_id
            && let Some(earlier) = release_by_request(&mut *tx, r.use_case_id, &r.creator, key).await?
        {
            return Ok(earlier);
        }
        let number: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE use_case_id = $1")
                .bind(DbUuid(r.use_case_id))
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO releases (id, use_case_id, number, description, links, snapshot, digest, creator, create_time, \
             request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(DbUuid(r.id))
        .bind(DbUuid(r.use_case_id))
        .bind(number)
        .bind(&r.description)
        .bind(Json(&r.links))
        .bind(Json(&r.snapshot))
        .bind(&r.digest)
        .bind(&r.creator)
        .bind(DbTime(r.create_time))
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
        let row: Option<ReleaseRow> = sqlx::query_as(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE use_case_id = $1 AND number = $2"
        ))
        .bind(DbUuid(use_case_id))
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
        let rows: Vec<ReleaseRow> = sqlx::query_as(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE use_case_id = $1 AND ($2 IS NULL OR number < $2) ORDER BY number DESC LIMIT $3"
        ))
        .bind(DbUuid(use_case_id))
        .bind(before)
        .bind(limit_plus_one(limit))
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(release).collect())
    }
}
