//! The marketplace: a use case's listing (the release on sale, at what price), the entitlements buyers acquire,
//! and what a search or list of listings asks for.

use chrono::{DateTime, SubsecRound, Utc};
use highwind_common::{filter, labels};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{names, release::Snapshot, use_case::Money};

/// Longest free-text query, in characters.
pub const MAX_QUERY: usize = 256;

/// A use case on the marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// UUIDv7.
    pub id: Uuid,
    /// The listed use case.
    pub use_case_id: Uuid,
    /// The release on sale.
    pub release_number: i64,
    /// Searchable and acquirable; false once withdrawn.
    pub active: bool,
    /// The release's snapshot: what buyers see is what they acquire.
    pub content: Snapshot,
    /// What acquiring costs; zero is free.
    pub price: Money,
    /// The owner who last published it, who is paid.
    pub seller: String,
    /// First publish.
    pub create_time: DateTime<Utc>,
    /// Last publish.
    pub publish_time: DateTime<Utc>,
    /// Last withdrawal, while withdrawn.
    pub withdraw_time: Option<DateTime<Utc>>,
}

impl Listing {
    /// The listing a first publish of `release_number` creates.
    pub fn first(
        use_case_id: Uuid,
        release_number: i64,
        content: Snapshot,
        price: Money,
        seller: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let now = now.trunc_subsecs(6);
        Self {
            id: Uuid::now_v7(),
            use_case_id,
            release_number,
            active: true,
            content,
            price,
            seller: seller.to_owned(),
            create_time: now,
            publish_time: now,
            withdraw_time: None,
        }
    }

    /// This listing published again by `seller` with `release_number` at `price`: unchanged when it already is
    /// exactly that.
    pub fn republished(
        &self,
        release_number: i64,
        content: Snapshot,
        price: Money,
        seller: &str,
        now: DateTime<Utc>,
    ) -> Self {
        if self.active && self.release_number == release_number && self.price == price && self.seller == seller {
            return self.clone();
        }
        Self {
            release_number,
            content,
            price,
            seller: seller.to_owned(),
            active: true,
            publish_time: now.trunc_subsecs(6).max(self.publish_time),
            withdraw_time: None,
            ..self.clone()
        }
    }

    /// This listing withdrawn at `now` (unchanged when already withdrawn).
    pub fn withdrawn(&self, now: DateTime<Utc>) -> Self {
        if !self.active {
            return self.clone();
        }
        Self { active: false, withdraw_time: Some(now.trunc_subsecs(6).max(self.publish_time)), ..self.clone() }
    }

    /// The release on sale, `useCases/{u}/releases/{n}`.
    pub fn release_name(&self) -> String {
        names::release_name(self.use_case_id, self.release_number)
    }

    /// Lowercase words of the searchable text, each preceded by a space, so `LIKE '% word%'` is a word-prefix match.
    pub fn search_text(&self) -> String {
        let c = &self.content;
        [&c.display_name, &c.description, &c.model_card, &c.version_label]
            .into_iter()
            .flat_map(|text| words(text))
            .map(|word| format!(" {word}"))
            .collect()
    }

    /// The key `content.display_name` orders by: case-insensitive.
    pub fn sort_name(&self) -> String {
        self.content.display_name.to_lowercase()
    }

    /// Whether acquiring costs nothing.
    pub fn is_free(&self) -> bool {
        self.price.is_zero()
    }
}

/// The lowercase alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// A buyer's right to one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// UUIDv7.
    pub id: Uuid,
    /// Who acquired it.
    pub buyer: String,
    /// Where from.
    pub listing_id: Uuid,
    /// The release's use case.
    pub use_case_id: Uuid,
    /// The acquired release.
    pub release_number: i64,
    /// As listed when acquired.
    pub price_paid: Money,
    /// The payment provider's reference; empty when free.
    pub payment_reference: String,
    /// Who was paid.
    pub seller: String,
    /// When acquired.
    pub create_time: DateTime<Utc>,
}

impl Entitlement {
    /// `buyer`'s entitlement to what `listing` sells now, paid with `payment_reference`.
    pub fn of(listing: &Listing, buyer: &str, payment_reference: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            buyer: buyer.to_owned(),
            listing_id: listing.id,
            use_case_id: listing.use_case_id,
            release_number: listing.release_number,
            price_paid: listing.price.clone(),
            payment_reference,
            seller: listing.seller.clone(),
            create_time: now.trunc_subsecs(6),
        }
    }
}

/// A charge the built-in payment provider records in place of moving money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The same key always yields the first charge's reference.
    pub idempotency_key: String,
    /// Who pays.
    pub payer: String,
    /// Who is paid.
    pub payee: String,
    /// How much.
    pub amount: Money,
    /// When.
    pub time: DateTime<Utc>,
}

/// How listings are sorted; the id breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingOrder {
    /// Newest publish first (the default).
    PublishTimeDesc,
    /// Oldest publish first.
    PublishTime,
    /// Oldest listing first.
    CreateTime,
    /// Newest listing first.
    CreateTimeDesc,
    /// Display name, case-insensitive.
    DisplayName,
    /// Display name, reversed.
    DisplayNameDesc,
}

impl ListingOrder {
    /// Parses `order_by`; `with_create_time` allows the create-time orders (ListListings, not SearchListings).
    pub fn parse(order_by: &str, with_create_time: bool) -> Result<Self, String> {
        let words: Vec<&str> = order_by.split_whitespace().collect();
        let (field, descending) = match words.as_slice() {
            [] => return Ok(Self::PublishTimeDesc),
            [field] => (*field, false),
            [field, "asc"] => (*field, false),
            [field, "desc"] => (*field, true),
            _ => return Err("use one field, optionally followed by asc or desc".to_owned()),
        };
        Ok(match (field, descending) {
            ("publish_time", true) => Self::PublishTimeDesc,
            ("publish_time", false) => Self::PublishTime,
            ("create_time", false) if with_create_time => Self::CreateTime,
            ("create_time", true) if with_create_time => Self::CreateTimeDesc,
            ("content.display_name", false) => Self::DisplayName,
            ("content.display_name", true) => Self::DisplayNameDesc,
            _ if with_create_time => {
                return Err(format!(
                    "cannot order by {field:?}: use publish_time, create_time or content.display_name"
                ));
            }
            _ => {
                return Err(format!(
                    "cannot order by {}: use publish_time or content.display_name",
                    highwind_common::status_bounds::echo(field)
                ));
            }
        })
    }

    /// Largest first.
    pub fn descending(self) -> bool {
        matches!(self, Self::PublishTimeDesc | Self::CreateTimeDesc | Self::DisplayNameDesc)
    }

    /// The position just after `listing` in this order.
    pub fn cursor(self, listing: &Listing) -> ListingCursor {
        let key = match self {
            Self::PublishTime | Self::PublishTimeDesc => SortKey::Time(listing.publish_time.timestamp_micros()),
            Self::CreateTime | Self::CreateTimeDesc => SortKey::Time(listing.create_time.timestamp_micros()),
            Self::DisplayName | Self::DisplayNameDesc => SortKey::Name(listing.sort_name()),
        };
        ListingCursor { order: self, key, id: listing.id }
    }
}

/// The value a listing is sorted by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    /// Microseconds since the epoch.
    Time(i64),
    /// Lowercased display name.
    Name(String),
}

/// Where a page of listings resumes; carries its order so a token cannot be replayed under another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingCursor {
    /// The order the page was read in.
    pub order: ListingOrder,
    /// The last row's sort value.
    pub key: SortKey,
    /// The last row's id.
    pub id: Uuid,
}

/// The structured conditions of a listing filter, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListingFilter {
    /// `seller = "users/alice"`.
    pub seller: Option<String>,
    /// `use_case = "useCases/…"`.
    pub use_case: Option<Uuid>,
    /// `state = ACTIVE|WITHDRAWN`: `Some(true)` for ACTIVE.
    pub active: Option<bool>,
    /// `labels.k = "v"`, sorted.
    pub labels: Vec<(String, String)>,
    /// `price.currency_code = "USD"`.
    pub currency: Option<String>,
    /// `free = true|false`.
    pub free: Option<bool>,
}

impl ListingFilter {
    /// Parses the terms of ListListings' and SearchListings' `filter`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, value) in filter::terms(text)? {
            match field.as_str() {
                "seller" => parsed.seller = Some(value),
                "use_case" => {
                    parsed.use_case = Some(names::parse_use_case_name(&value).map_err(|e| format!("use_case {e}"))?)
                }
                "state" => {
                    parsed.active = Some(match value.trim_start_matches("LISTING_STATE_") {
                        "ACTIVE" => true,
                        "WITHDRAWN" => false,
                        _ => {
                            return Err(format!(
                                "unknown state {}: use ACTIVE or WITHDRAWN",
                                highwind_common::status_bounds::echo(&value)
                            ));
                        }
                    })
                }
                "price.currency_code" => parsed.currency = Some(value),
                "free" => parsed.free = Some(filter::boolean("free", &value)?),
                _ => {
                    let key = field.strip_prefix("labels.").filter(|k| labels::valid_key(k)).ok_or_else(|| {
                        format!(
                            "cannot filter listings on {field:?}: use seller, use_case, state, labels.<key>, \
                             price.currency_code or free"
                        )
                    })?;
                    parsed.labels.push((key.to_owned(), value));
                }
            }
        }
        parsed.labels.sort();
        parsed.labels.dedup();
        Ok(parsed)
    }
}

/// A decoded ListListings or SearchListings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingQuery {
    /// Every word must prefix a word of the listing's text.
    pub words: Vec<String>,
    /// Structured conditions.
    pub filter: ListingFilter,
    /// Also withdrawn listings this principal is a member or buyer of; `None` means active listings only.
    pub withdrawn_visible_to: Option<String>,
    /// Sort order.
    pub order: ListingOrder,
    /// Resume after.
    pub after: Option<ListingCursor>,
    /// Page size; the store returns up to `limit + 1`.
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(name: &str) -> Listing {
        let content =
            Snapshot { display_name: name.into(), description: "Gradient-boosted, v2.1".into(), ..Default::default() };
        Listing::first(Uuid::now_v7(), 1, content, Money::default(), "users/alice", Utc::now())
    }

    #[test]
    fn search_text_is_word_prefixed_lowercase() {
        let text = listing("House PRICES").search_text();
        assert_eq!(text, " house prices gradient boosted v2 1");
        assert!(text.contains(" pri") && !text.contains(" rices"));
    }

    #[test]
    fn republishing_the_same_release_and_price_changes_nothing() {
        let first = listing("a");
        assert_eq!(first.republished(1, first.content.clone(), Money::default(), "users/alice", Utc::now()), first);
        let withdrawn = first.withdrawn(Utc::now());
        assert!(!withdrawn.active && withdrawn.withdraw_time.is_some());
        assert_eq!(withdrawn.withdrawn(Utc::now()), withdrawn);
        let again = withdrawn.republished(1, first.content.clone(), Money::default(), "users/alice", Utc::now());
        assert!(again.active && again.withdraw_time.is_none());
    }

    #[test]
    fn filters_and_orders_parse_or_say_why_not() {
        let f = ListingFilter::parse(r#"labels.domain = "housing" AND free = true AND state = ACTIVE"#).expect("valid");
        assert_eq!(f.labels, vec![("domain".to_owned(), "housing".to_owned())]);
        assert_eq!((f.free, f.active), (Some(true), Some(true)));
        assert!(ListingFilter::parse("price > 3").is_err());
        assert!(ListingFilter::parse("use_case = useCases/x").is_err());
        assert_eq!(ListingOrder::parse("", false), Ok(ListingOrder::PublishTimeDesc));
        assert_eq!(ListingOrder::parse("content.display_name desc", false), Ok(ListingOrder::DisplayNameDesc));
        assert!(ListingOrder::parse("create_time", false).is_err());
        assert_eq!(ListingOrder::parse("create_time", true), Ok(ListingOrder::CreateTime));
    }
}
