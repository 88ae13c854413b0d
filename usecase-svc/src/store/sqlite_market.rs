//! SQLite storage of the marketplace.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, types::Json};
use uuid::Uuid;

use super::{
    StoreError,
    market::{EntitlementQuery, MarketRepository},
    sqlite::SqliteUseCases,
};
use crate::domain::{
    market::{Charge, Entitlement, Listing, ListingOrder, ListingQuery, SortKey},
    names,
    release::Snapshot,
    use_case::Money,
};

macro_rules! listing_columns {
    () => {
        "l.id, l.use_case_id, l.release_number, l.active, l.content, l.price_currency, \
     l.price_units, l.price_nanos, l.seller, l.create_micros, l.publish_micros, l.withdraw_micros"
    };
}

#[derive(sqlx::FromRow)]
struct ListingRow {
    id: String,
    use_case_id: String,
    release_number: i64,
    active: bool,
    content: Json<Snapshot>,
    price_currency: String,
    price_units: i64,
    price_nanos: i32,
    seller: String,
    create_micros: i64,
    publish_micros: i64,
    withdraw_micros: Option<i64>,
}

fn time(micros: i64, id: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt(id.to_owned()))
}

fn uuid(text: &str, id: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(text).map_err(|_| StoreError::Corrupt(id.to_owned()))
}

impl TryFrom<ListingRow> for Listing {
    type Error = StoreError;

    fn try_from(r: ListingRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid(&r.id, &r.id)?,
            use_case_id: uuid(&r.use_case_id, &r.id)?,
            create_time: time(r.create_micros, &r.id)?,
            publish_time: time(r.publish_micros, &r.id)?,
            withdraw_time: r.withdraw_micros.map(|t| time(t, &r.id)).transpose()?,
            release_number: r.release_number,
            active: r.active,
            content: r.content.0,
            price: Money { currency_code: r.price_currency, units: r.price_units, nanos: r.price_nanos },
            seller: r.seller,
        })
    }
}

macro_rules! entitlement_columns {
    () => {
        "id, buyer, listing_id, use_case_id, release_number, price_currency, price_units, \
     price_nanos, payment_reference, seller, create_micros"
    };
}

#[derive(sqlx::FromRow)]
struct EntitlementRow {
    id: String,
    buyer: String,
    listing_id: String,
    use_case_id: String,
    release_number: i64,
    price_currency: String,
    price_units: i64,
    price_nanos: i32,
    payment_reference: String,
    seller: String,
    create_micros: i64,
}

impl TryFrom<EntitlementRow> for Entitlement {
    type Error = StoreError;

    fn try_from(r: EntitlementRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid(&r.id, &r.id)?,
            listing_id: uuid(&r.listing_id, &r.id)?,
            use_case_id: uuid(&r.use_case_id, &r.id)?,
            create_time: time(r.create_micros, &r.id)?,
            buyer: r.buyer,
            release_number: r.release_number,
            price_paid: Money { currency_code: r.price_currency, units: r.price_units, nanos: r.price_nanos },
            payment_reference: r.payment_reference,
            seller: r.seller,
        })
    }
}

#[async_trait]
impl MarketRepository for SqliteUseCases {
    async fn listing_of(&self, use_case_id: Uuid) -> Result<Option<Listing>, StoreError> {
        let sql = concat!("SELECT ", listing_columns!(), " FROM listings l WHERE l.use_case_id = ?");
        let row: Option<ListingRow> = sqlx::query_as(sql).bind(use_case_id.to_string()).fetch_optional(&self.0).await?;
        row.map(Listing::try_from).transpose()
    }

    async fn get_listing(&self, id: Uuid) -> Result<Option<Listing>, StoreError> {
        let sql = concat!("SELECT ", listing_columns!(), " FROM listings l WHERE l.id = ?");
        let row: Option<ListingRow> = sqlx::query_as(sql).bind(id.to_string()).fetch_optional(&self.0).await?;
        row.map(Listing::try_from).transpose()
    }

    async fn save_listing(&self, l: &Listing) -> Result<Listing, StoreError> {
        sqlx::query(
            "INSERT INTO listings (id, use_case_id, release_number, active, content, search_text, sort_name, \
             price_currency, price_units, price_nanos, seller, create_micros, publish_micros, withdraw_micros) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (use_case_id) DO UPDATE SET release_number = excluded.release_number, \
             active = excluded.active, content = excluded.content, search_text = excluded.search_text, \
             sort_name = excluded.sort_name, price_currency = excluded.price_currency, \
             price_units = excluded.price_units, price_nanos = excluded.price_nanos, seller = excluded.seller, \
             publish_micros = excluded.publish_micros, withdraw_micros = excluded.withdraw_micros",
        )
        .bind(l.id.to_string())
        .bind(l.use_case_id.to_string())
        .bind(l.release_number)
        .bind(l.active)
        .bind(Json(&l.content))
        .bind(l.search_text())
        .bind(l.sort_name())
        .bind(&l.price.currency_code)
        .bind(l.price.units)
        .bind(l.price.nanos)
        .bind(&l.seller)
        .bind(l.create_time.timestamp_micros())
        .bind(l.publish_time.timestamp_micros())
        .bind(l.withdraw_time.map(|t| t.timestamp_micros()))
        .execute(&self.0)
        .await?;
        self.listing_of(l.use_case_id).await?.ok_or_else(|| StoreError::Corrupt(l.id.to_string()))
    }

    async fn query_listings(&self, q: &ListingQuery) -> Result<Vec<Listing>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!("SELECT ", listing_columns!(), " FROM listings l WHERE "));
        match &q.withdrawn_visible_to {
            None => {
                sql.push("l.active");
            }
            Some(principal) => {
                sql.push("(l.active OR EXISTS (SELECT 1 FROM members m WHERE m.use_case_id = l.use_case_id AND m.principal = ")
                    .push_bind(principal.clone())
                    .push(") OR EXISTS (SELECT 1 FROM entitlements e WHERE e.listing_id = l.id AND e.buyer = ")
                    .push_bind(principal.clone())
                    .push("))");
            }
        }
        let f = &q.filter;
        if let Some(active) = f.active {
            sql.push(" AND l.active = ").push_bind(active);
        }
        if let Some(seller) = &f.seller {
            sql.push(" AND l.seller = ").push_bind(seller.clone());
        }
        if let Some(use_case) = f.use_case {
            sql.push(" AND l.use_case_id = ").push_bind(use_case.to_string());
        }
        if let Some(currency) = &f.currency {
            sql.push(" AND l.price_currency = ").push_bind(currency.clone());
        }
        if let Some(free) = f.free {
            sql.push(if free { " AND " } else { " AND NOT " }).push("(l.price_units = 0 AND l.price_nanos = 0)");
        }
        for (key, value) in &f.labels {
            // Label keys are validated (no quotes), so the JSON path is well-formed.
            sql.push(" AND json_extract(l.content, ").push_bind(format!("$.labels.\"{key}\"")).push(") = ");
            sql.push_bind(value.clone());
        }
        for word in &q.words {
            sql.push(" AND l.search_text LIKE ").push_bind(format!("% {word}%"));
        }
        let column = match q.order {
            ListingOrder::PublishTime | ListingOrder::PublishTimeDesc => "l.publish_micros",
            ListingOrder::CreateTime | ListingOrder::CreateTimeDesc => "l.create_micros",
            ListingOrder::DisplayName | ListingOrder::DisplayNameDesc => "l.sort_name",
        };
        let (cmp, dir) = if q.order.descending() { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = &q.after {
            sql.push(format!(" AND ({column}, l.id) {cmp} ("));
            match &after.key {
                SortKey::Time(micros) => sql.push_bind(*micros),
                SortKey::Name(name) => sql.push_bind(name.clone()),
            };
            sql.push(", ").push_bind(after.id.to_string()).push(")");
        }
        sql.push(format!(" ORDER BY {column} {dir}, l.id {dir} LIMIT "));
        sql.push_bind(i64::try_from(q.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<ListingRow> = sql.build_query_as().fetch_all(&self.0).await?;
        rows.into_iter().map(Listing::try_from).collect()
    }

    async fn is_buyer(&self, listing_id: Uuid, principal: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM entitlements WHERE listing_id = ? AND buyer = ? LIMIT 1")
                .bind(listing_id.to_string())
                .bind(principal)
                .fetch_optional(&self.0)
                .await?;
        Ok(found.is_some())
    }

    async fn entitlement_to(
        &self,
        buyer: &str,
        use_case_id: Uuid,
        release: i64,
    ) -> Result<Option<Entitlement>, StoreError> {
        let sql = concat!(
            "SELECT ",
            entitlement_columns!(),
            " FROM entitlements WHERE buyer = ? AND use_case_id = ? AND release_number = ?"
        );
        let row: Option<EntitlementRow> =
            sqlx::query_as(sql).bind(buyer).bind(use_case_id.to_string()).bind(release).fetch_optional(&self.0).await?;
        row.map(Entitlement::try_from).transpose()
    }

    async fn entitlement_by_request(&self, buyer: &str, request_id: &str) -> Result<Option<Entitlement>, StoreError> {
        let sql = concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE buyer = ? AND request_id = ?");
        let row: Option<EntitlementRow> =
            sqlx::query_as(sql).bind(buyer).bind(request_id).fetch_optional(&self.0).await?;
        row.map(Entitlement::try_from).transpose()
    }

    async fn get_entitlement(&self, id: Uuid) -> Result<Option<Entitlement>, StoreError> {
        let sql = concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE id = ?");
        let row: Option<EntitlementRow> = sqlx::query_as(sql).bind(id.to_string()).fetch_optional(&self.0).await?;
        row.map(Entitlement::try_from).transpose()
    }

    async fn add_entitlement(&self, e: &Entitlement, request_id: Option<&str>) -> Result<Entitlement, StoreError> {
        let mut tx = self.0.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO entitlements (id, buyer, listing_id, use_case_id, release_number, price_currency, \
             price_units, price_nanos, payment_reference, seller, create_micros, request_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(e.id.to_string())
        .bind(&e.buyer)
        .bind(e.listing_id.to_string())
        .bind(e.use_case_id.to_string())
        .bind(e.release_number)
        .bind(&e.price_paid.currency_code)
        .bind(e.price_paid.units)
        .bind(e.price_paid.nanos)
        .bind(&e.payment_reference)
        .bind(&e.seller)
        .bind(e.create_time.timestamp_micros())
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            self.commit_marking(tx, Some(names::entitlement_name(e.id))).await?;
            return Ok(e.clone());
        }
        tx.rollback().await?;
        if let Some(request_id) = request_id
            && let Some(first) = self.entitlement_by_request(&e.buyer, request_id).await?
        {
            return Ok(first);
        }
        self.entitlement_to(&e.buyer, e.use_case_id, e.release_number)
            .await?
            .ok_or_else(|| StoreError::Corrupt(e.id.to_string()))
    }

    async fn list_entitlements(&self, q: &EntitlementQuery) -> Result<Vec<Entitlement>, StoreError> {
        let mut sql =
            QueryBuilder::<Sqlite>::new(concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE 1 = 1"));
        if let Some(buyer) = &q.buyer {
            sql.push(" AND buyer = ").push_bind(buyer.clone());
        }
        if let Some(listing) = q.listing {
            sql.push(" AND listing_id = ").push_bind(listing.to_string());
        }
        if let Some(use_case) = q.use_case {
            sql.push(" AND use_case_id = ").push_bind(use_case.to_string());
        }
        if let Some(release) = q.release {
            sql.push(" AND release_number = ").push_bind(release);
        }
        let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((micros, id)) = q.after {
            sql.push(format!(" AND (create_micros, id) {cmp} (")).push_bind(micros);
            sql.push(", ").push_bind(id.to_string()).push(")");
        }
        sql.push(format!(" ORDER BY create_micros {dir}, id {dir} LIMIT "));
        sql.push_bind(i64::try_from(q.limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<EntitlementRow> = sql.build_query_as().fetch_all(&self.0).await?;
        rows.into_iter().map(Entitlement::try_from).collect()
    }

    async fn record_charge(&self, c: &Charge) -> Result<Uuid, StoreError> {
        sqlx::query(
            "INSERT INTO payment_ledger (id, idempotency_key, payer, payee, currency, units, nanos, create_micros) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&c.idempotency_key)
        .bind(&c.payer)
        .bind(&c.payee)
        .bind(&c.amount.currency_code)
        .bind(c.amount.units)
        .bind(c.amount.nanos)
        .bind(c.time.timestamp_micros())
        .execute(&self.0)
        .await?;
        let id: String = sqlx::query_scalar("SELECT id FROM payment_ledger WHERE idempotency_key = ?")
            .bind(&c.idempotency_key)
            .fetch_one(&self.0)
            .await?;
        uuid(&id, &id)
    }
}
