//! Listings, entitlements and the payment ledger.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use highwind_common::db::{DbTime, DbUuid};
use sqlx::{QueryBuilder, types::Json};
use uuid::Uuid;

use super::{
    super::{BYTEWISE, Db, UseCases, begin_write, push_label_equals},
    limit_plus_one,
};
use crate::{
    domain::{
        market::{Charge, Entitlement, Listing, ListingOrder, ListingQuery, SortKey},
        names,
    },
    store::{
        StoreError,
        market::{EntitlementQuery, MarketRepository},
        rows::{EntitlementRow, ListingRow, entitlement_columns, listing_columns},
    },
};

/// A page token's time (microseconds) as the backends compare it; an impossible time compares as the epoch.
fn time_of(micros: i64) -> DbTime {
    DbTime(DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default())
}

#[async_trait]
impl MarketRepository for UseCases {
    async fn listing_of(&self, use_case_id: Uuid) -> Result<Option<Listing>, StoreError> {
        let sql = concat!("SELECT ", listing_columns!(), " FROM listings l WHERE l.use_case_id = $1");
        let row: Option<ListingRow> = sqlx::query_as(sql).bind(DbUuid(use_case_id)).fetch_optional(&self.0).await?;
        Ok(row.map(Listing::from))
    }

    async fn get_listing(&self, id: Uuid) -> Result<Option<Listing>, StoreError> {
        let sql = concat!("SELECT ", listing_columns!(), " FROM listings l WHERE l.id = $1");
        let row: Option<ListingRow> = sqlx::query_as(sql).bind(DbUuid(id)).fetch_optional(&self.0).await?;
        Ok(row.map(Listing::from))
    }

    async fn save_listing(&self, l: &Listing) -> Result<Listing, StoreError> {
        sqlx::query(
            "INSERT INTO listings (id, use_case_id, release_number, active, content, search_text, sort_name, \
             price_currency, price_units, price_nanos, seller, create_time, publish_time, withdraw_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (use_case_id) DO UPDATE SET release_number = excluded.release_number, \
             active = excluded.active, content = excluded.content, search_text = excluded.search_text, \
             sort_name = excluded.sort_name, price_currency = excluded.price_currency, \
             price_units = excluded.price_units, price_nanos = excluded.price_nanos, seller = excluded.seller, \
             publish_time = excluded.publish_time, withdraw_time = excluded.withdraw_time",
        )
        .bind(DbUuid(l.id))
        .bind(DbUuid(l.use_case_id))
        .bind(l.release_number)
        .bind(l.active)
        .bind(Json(&l.content))
        .bind(l.search_text())
        .bind(l.sort_name())
        .bind(&l.price.currency_code)
        .bind(l.price.units)
        .bind(l.price.nanos)
        .bind(&l.seller)
        .bind(DbTime(l.create_time))
        .bind(DbTime(l.publish_time))
        .bind(l.withdraw_time.map(DbTime))
        .execute(&self.0)
        .await?;
        self.listing_of(l.use_case_id).await?.ok_or_else(|| StoreError::Corrupt(l.id.to_string()))
    }

    async fn query_listings(&self, q: &ListingQuery) -> Result<Vec<Listing>, StoreError> {
        let mut sql = QueryBuilder::<Db>::new(concat!("SELECT ", listing_columns!(), " FROM listings l WHERE "));
        match &q.withdrawn_visible_to {
            None => {
                sql.push("l.active");
            }
            Some(principal) => {
                sql.push(
                    "(l.active OR EXISTS (SELECT 1 FROM members m WHERE m.use_case_id = l.use_case_id \
                     AND m.principal = ",
                )
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
            sql.push(" AND l.use_case_id = ").push_bind(DbUuid(use_case));
        }
        if let Some(currency) = &f.currency {
            sql.push(" AND l.price_currency = ").push_bind(currency.clone());
        }
        if let Some(free) = f.free {
            sql.push(if free { " AND " } else { " AND NOT " }).push("(l.price_units = 0 AND l.price_nanos = 0)");
        }
        for (key, value) in &f.labels {
            push_label_equals(&mut sql, "l.content", Some("labels"), key, value);
        }
        for word in &q.words {
            sql.push(" AND l.search_text LIKE ").push_bind(format!("% {word}%"));
        }
        let column = match q.order {
            ListingOrder::PublishTime | ListingOrder::PublishTimeDesc => "l.publish_time".to_owned(),
            ListingOrder::CreateTime | ListingOrder::CreateTimeDesc => "l.create_time".to_owned(),
            // Bytewise, so the order does not depend on the database's collation.
            ListingOrder::DisplayName | ListingOrder::DisplayNameDesc => format!("l.sort_name{BYTEWISE}"),
        };
        let (cmp, dir) = if q.order.descending() { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = &q.after {
            sql.push(format!(" AND ({column}, l.id) {cmp} ("));
            match &after.key {
                SortKey::Time(micros) => sql.push_bind(time_of(*micros)),
                SortKey::Name(name) => sql.push_bind(name.clone()),
            };
            sql.push(", ").push_bind(DbUuid(after.id)).push(")");
        }
        sql.push(format!(" ORDER BY {column} {dir}, l.id {dir} LIMIT "));
        sql.push_bind(limit_plus_one(q.limit));
        let rows: Vec<ListingRow> = sql.build_query_as().fetch_all(&self.0).await?;
        Ok(rows.into_iter().map(Listing::from).collect())
    }

    async fn is_buyer(&self, listing_id: Uuid, principal: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT release_number FROM entitlements WHERE listing_id = $1 AND buyer = $2 LIMIT 1")
                .bind(DbUuid(listing_id))
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
            " FROM entitlements WHERE buyer = $1 AND use_case_id = $2 AND release_number = $3"
        );
        let row: Option<EntitlementRow> =
            sqlx::query_as(sql).bind(buyer).bind(DbUuid(use_case_id)).bind(release).fetch_optional(&self.0).await?;
        Ok(row.map(Entitlement::from))
    }

    async fn entitlement_by_request(&self, buyer: &str, request_id: &str) -> Result<Option<Entitlement>, StoreError> {
        let sql = concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE buyer = $1 AND request_id = $2");
        let row: Option<EntitlementRow> =
            sqlx::query_as(sql).bind(buyer).bind(request_id).fetch_optional(&self.0).await?;
        Ok(row.map(Entitlement::from))
    }

    async fn get_entitlement(&self, id: Uuid) -> Result<Option<Entitlement>, StoreError> {
        let sql = concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE id = $1");
        let row: Option<EntitlementRow> = sqlx::query_as(sql).bind(DbUuid(id)).fetch_optional(&self.0).await?;
        Ok(row.map(Entitlement::from))
    }

    async fn add_entitlement(&self, e: &Entitlement, request_id: Option<&str>) -> Result<Entitlement, StoreError> {
        let mut tx = begin_write(&self.0).await?;
        let inserted = sqlx::query(
            "INSERT INTO entitlements (id, buyer, listing_id, use_case_id, release_number, price_currency, \
             price_units, price_nanos, payment_reference, seller, create_time, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(DbUuid(e.id))
        .bind(&e.buyer)
        .bind(DbUuid(e.listing_id))
        .bind(DbUuid(e.use_case_id))
        .bind(e.release_number)
        .bind(&e.price_paid.currency_code)
        .bind(e.price_paid.units)
        .bind(e.price_paid.nanos)
        .bind(&e.payment_reference)
        .bind(&e.seller)
        .bind(DbTime(e.create_time))
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
            QueryBuilder::<Db>::new(concat!("SELECT ", entitlement_columns!(), " FROM entitlements WHERE 1 = 1"));
        if let Some(buyer) = &q.buyer {
            sql.push(" AND buyer = ").push_bind(buyer.clone());
        }
        if let Some(listing) = q.listing {
            sql.push(" AND listing_id = ").push_bind(DbUuid(listing));
        }
        if let Some(use_case) = q.use_case {
            sql.push(" AND use_case_id = ").push_bind(DbUuid(use_case));
        }
        if let Some(release) = q.release {
            sql.push(" AND release_number = ").push_bind(release);
        }
        let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((micros, id)) = q.after {
            sql.push(format!(" AND (create_time, id) {cmp} (")).push_bind(time_of(micros));
            sql.push(", ").push_bind(DbUuid(id)).push(")");
        }
        sql.push(format!(" ORDER BY create_time {dir}, id {dir} LIMIT "));
        sql.push_bind(limit_plus_one(q.limit));
        let rows: Vec<EntitlementRow> = sql.build_query_as().fetch_all(&self.0).await?;
        Ok(rows.into_iter().map(Entitlement::from).collect())
    }

    async fn record_charge(&self, c: &Charge) -> Result<Uuid, StoreError> {
        sqlx::query(
            "INSERT INTO payment_ledger (id, idempotency_key, payer, payee, currency, units, nanos, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(DbUuid(Uuid::now_v7()))
        .bind(&c.idempotency_key)
        .bind(&c.payer)
        .bind(&c.payee)
        .bind(&c.amount.currency_code)
        .bind(c.amount.units)
        .bind(c.amount.nanos)
        .bind(DbTime(c.time))
        .execute(&self.0)
        .await?;
        let DbUuid(id) = sqlx::query_scalar("SELECT id FROM payment_ledger WHERE idempotency_key = $1")
            .bind(&c.idempotency_key)
            .fetch_one(&self.0)
            .await?;
        Ok(id)
    }
}
