//! The rows the repositories read, derived once for both backends: ids and times go through `DbUuid` and
//! `DbTime`, documents through `Json`.

use std::collections::BTreeMap;

use highwind_common::db::{DbTime, DbUuid};
use sqlx::types::Json;

use super::{StoreError, selector_of};
use crate::domain::{
    link::{AssetLink, LinkRole},
    market::{Entitlement, Listing},
    member::Member,
    release::{FrozenLink, Release, Snapshot},
    role::Role,
    use_case::{Money, Publication, UseCase},
};

/// The columns a [`UseCaseRow`] reads, from `use_cases u LEFT JOIN listings l`.
macro_rules! use_case_columns {
    () => {
        "u.id, u.owner, u.display_name, u.description, u.cover_image_uri, u.model_card, u.inference_schema, \
         u.version_label, u.price_currency, u.price_units, u.price_nanos, u.labels, u.create_time, u.update_time, \
         u.archive_time, u.revision, u.forked_from, l.id AS listing_id, l.release_number AS listing_release, \
         l.active AS listing_active, (SELECT MAX(r.number) FROM releases r WHERE r.use_case_id = u.id) AS latest_release"
    };
}
pub(super) use use_case_columns;

/// The `members` columns a [`MemberRow`] reads.
macro_rules! member_columns {
    () => {
        "id, use_case_id, principal, role, creator, create_time, update_time, revision"
    };
}
pub(super) use member_columns;

/// The `asset_links` columns a [`LinkRow`] reads.
macro_rules! link_columns {
    () => {
        "id, use_case_id, asset, role, pinned_version, alias, creator, create_time, update_time, revision, asset_owner"
    };
}
pub(super) use link_columns;

/// The `releases` columns a [`ReleaseRow`] reads.
macro_rules! release_columns {
    () => {
        "id, use_case_id, number, description, links, snapshot, digest, creator, create_time"
    };
}
pub(super) use release_columns;

/// The `listings l` columns a [`ListingRow`] reads.
macro_rules! listing_columns {
    () => {
        "l.id, l.use_case_id, l.release_number, l.active, l.content, l.price_currency, l.price_units, l.price_nanos, \
         l.seller, l.create_time, l.publish_time, l.withdraw_time"
    };
}
pub(super) use listing_columns;

/// The `entitlements` columns an [`EntitlementRow`] reads.
macro_rules! entitlement_columns {
    () => {
        "id, buyer, listing_id, use_case_id, release_number, price_currency, price_units, price_nanos, \
         payment_reference, seller, create_time"
    };
}
pub(super) use entitlement_columns;

pub(super) type MemberRow = (DbUuid, DbUuid, String, String, String, DbTime, DbTime, i64);

pub(super) fn member(row: MemberRow) -> Result<Member, StoreError> {
    let (id, use_case_id, principal, role, creator, create_time, update_time, revision) = row;
    let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt(id.0.to_string()))?;
    Ok(Member {
        id: id.0,
        use_case_id: use_case_id.0,
        principal,
        role,
        creator,
        create_time: create_time.0,
        update_time: update_time.0,
        revision,
    })
}

pub(super) type LinkRow =
    (DbUuid, DbUuid, String, String, Option<i64>, Option<String>, String, DbTime, DbTime, i64, String);

pub(super) fn link(row: LinkRow) -> Result<AssetLink, StoreError> {
    let (id, use_case_id, asset, role, pinned, alias, creator, create_time, update_time, revision, asset_owner) = row;
    let corrupt = || StoreError::Corrupt(id.0.to_string());
    Ok(AssetLink {
        id: id.0,
        use_case_id: use_case_id.0,
        asset,
        role: LinkRole::parse(&role).ok_or_else(corrupt)?,
        selector: selector_of(pinned, alias).ok_or_else(corrupt)?,
        creator,
        create_time: create_time.0,
        update_time: update_time.0,
        revision,
        asset_owner,
    })
}

pub(super) type ReleaseRow =
    (DbUuid, DbUuid, i64, String, Json<Vec<FrozenLink>>, Json<Snapshot>, String, String, DbTime);

pub(super) fn release(row: ReleaseRow) -> Release {
    let (id, use_case_id, number, description, links, snapshot, digest, creator, create_time) = row;
    Release {
        id: id.0,
        use_case_id: use_case_id.0,
        number,
        description,
        links: links.0,
        snapshot: snapshot.0,
        digest,
        creator,
        create_time: create_time.0,
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UseCaseRow {
    id: DbUuid,
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
    create_time: DbTime,
    update_time: DbTime,
    archive_time: Option<DbTime>,
    revision: i64,
    forked_from: Option<String>,
    listing_id: Option<DbUuid>,
    listing_release: Option<i64>,
    listing_active: Option<bool>,
    latest_release: Option<i64>,
}

impl From<UseCaseRow> for UseCase {
    fn from(row: UseCaseRow) -> Self {
        Self {
            id: row.id.0,
            owner: row.owner,
            display_name: row.display_name,
            description: row.description,
            cover_image_uri: row.cover_image_uri,
            model_card: row.model_card,
            inference_schema: row.inference_schema,
            version_label: row.version_label,
            price: Money { currency_code: row.price_currency, units: row.price_units, nanos: row.price_nanos },
            labels: row.labels.0,
            create_time: row.create_time.0,
            update_time: row.update_time.0,
            archive_time: row.archive_time.map(|t| t.0),
            revision: row.revision,
            forked_from: row.forked_from,
            latest_release: row.latest_release,
            publication: match (row.listing_id, row.listing_release, row.listing_active) {
                (Some(listing_id), Some(release_number), Some(active)) => {
                    Some(Publication { listing_id: listing_id.0, release_number, active })
                }
                _ => None,
            },
        }
    }
}

/// A use case with the role of the member it was listed for.
#[derive(sqlx::FromRow)]
pub(super) struct UseCaseRowWithRole {
    #[sqlx(flatten)]
    row: UseCaseRow,
    role: String,
}

impl TryFrom<UseCaseRowWithRole> for (UseCase, Role) {
    type Error = StoreError;

    fn try_from(r: UseCaseRowWithRole) -> Result<Self, StoreError> {
        let role = Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(r.row.id.0.to_string()))?;
        Ok((UseCase::from(r.row), role))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ListingRow {
    id: DbUuid,
    use_case_id: DbUuid,
    release_number: i64,
    active: bool,
    content: Json<Snapshot>,
    price_currency: String,
    price_units: i64,
    price_nanos: i32,
    seller: String,
    create_time: DbTime,
    publish_time: DbTime,
    withdraw_time: Option<DbTime>,
}

impl From<ListingRow> for Listing {
    fn from(r: ListingRow) -> Self {
        Self {
            id: r.id.0,
            use_case_id: r.use_case_id.0,
            create_time: r.create_time.0,
            publish_time: r.publish_time.0,
            withdraw_time: r.withdraw_time.map(|t| t.0),
            release_number: r.release_number,
            active: r.active,
            content: r.content.0,
            price: Money { currency_code: r.price_currency, units: r.price_units, nanos: r.price_nanos },
            seller: r.seller,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EntitlementRow {
    id: DbUuid,
    buyer: String,
    listing_id: DbUuid,
    use_case_id: DbUuid,
    release_number: i64,
    price_currency: String,
    price_units: i64,
    price_nanos: i32,
    payment_reference: String,
    seller: String,
    create_time: DbTime,
}

impl From<EntitlementRow> for Entitlement {
    fn from(r: EntitlementRow) -> Self {
        Self {
            id: r.id.0,
            listing_id: r.listing_id.0,
            use_case_id: r.use_case_id.0,
            create_time: r.create_time.0,
            buyer: r.buyer,
            release_number: r.release_number,
            price_paid: Money { currency_code: r.price_currency, units: r.price_units, nanos: r.price_nanos },
            payment_reference: r.payment_reference,
            seller: r.seller,
        }
    }
}
