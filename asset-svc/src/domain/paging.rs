//! What a List call asks for: filter, order, page size and the keyset cursor to resume after.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use highwind_common::labels;

use super::asset::{Asset, AssetKind};

/// Page size when the client sends 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// The column a list is sorted by; the id breaks ties so every position is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    /// Creation time (the default).
    CreateTime,
    /// Display name, compared bytewise.
    DisplayName,
}

/// Sort order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// The sort column.
    pub key: OrderKey,
    /// Largest first.
    pub descending: bool,
}

impl Default for Order {
    /// Oldest first.
    fn default() -> Self {
        Self { key: OrderKey::CreateTime, descending: false }
    }
}

impl Order {
    /// Parses `order_by`: `create_time` (default), `display_name`, each optionally followed by ` desc` or ` asc`.
    pub fn parse(order_by: &str) -> Result<Self, String> {
        let words: Vec<&str> = order_by.split_whitespace().collect();
        let (field, direction) = match words.as_slice() {
            [] => {
                return Ok(Self { key: OrderKey::CreateTime, descending: false });
            }
            [field] => (*field, "asc"),
            [field, direction] => (*field, *direction),
            _ => return Err("use one field, optionally followed by asc or desc".to_owned()),
        };
        let key = match field {
            "create_time" => OrderKey::CreateTime,
            "display_name" => OrderKey::DisplayName,
            other => {
                return Err(format!(
                    "cannot order by {}: use create_time or display_name",
                    highwind_common::status_bounds::echo(other)
                ));
            }
        };
        let descending = match direction.to_ascii_lowercase().as_str() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(format!(
                    "unknown direction {}: use asc or desc",
                    highwind_common::status_bounds::echo(other)
                ));
            }
        };
        Ok(Self { key, descending })
    }

    fn canonical(self) -> String {
        let field = match self.key {
            OrderKey::CreateTime => "create_time",
            OrderKey::DisplayName => "display_name",
        };
        format!("{field} {}", if self.descending { "desc" } else { "asc" })
    }
}

/// The conditions of a list's `filter`, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFilter {
    /// `kind = DATASET`.
    pub kind: Option<AssetKind>,
    /// `labels.team = "vision"`, sorted by key.
    pub labels: Vec<(String, String)>,
    /// `archived = true|false`.
    pub archived: Option<bool>,
}

impl AssetFilter {
    /// Parses `field = value` terms joined by ` AND `: `kind`, `archived` and `labels.<key>`. Values may be
    /// double-quoted.
    pub fn parse(filter: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, value) in highwind_common::filter::terms(filter)? {
            match field.as_str() {
                "kind" => {
                    let name = value.strip_prefix("ASSET_KIND_").unwrap_or(&value);
                    let kind = AssetKind::parse(name).ok_or_else(|| {
                        format!(
                            "unknown kind {}: use DATASET, DOCKER_REPO, MODEL or PIPELINE",
                            highwind_common::status_bounds::echo(&value)
                        )
                    })?;
                    parsed.kind = Some(kind);
                }
                "archived" => parsed.archived = Some(highwind_common::filter::boolean("archived", &value)?),
                _ => {
                    let key = field.strip_prefix("labels.").ok_or_else(|| {
                        format!(
                            "cannot filter on {}: use kind, archived or labels.<key>",
                            highwind_common::status_bounds::echo(&field)
                        )
                    })?;
                    if !labels::valid_key(key) {
                        return Err(format!("{} is not a valid label key", highwind_common::status_bounds::echo(key)));
                    }
                    parsed.labels.push((key.to_owned(), value));
                }
            }
        }
        parsed.labels.sort();
        parsed.labels.dedup();
        Ok(parsed)
    }

    fn canonical(&self) -> String {
        let mut parts = Vec::new();
        if let Some(kind) = self.kind {
            parts.push(format!("kind={}", kind.as_str()));
        }
        if let Some(archived) = self.archived {
            parts.push(format!("archived={archived}"));
        }
        for (k, v) in &self.labels {
            parts.push(format!("labels.{k}={v:?}"));
        }
        parts.join("&")
    }
}

/// The position just after the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Create time in microseconds since the epoch, when ordering by it.
    #[serde(rename = "t", skip_serializing_if = "Option::is_none", default)]
    pub create_micros: Option<i64>,
    /// Display name, when ordering by it.
    #[serde(rename = "n", skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    /// Tie-breaker.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor just after `asset` in `order`.
    pub fn after(asset: &Asset, order: Order) -> Self {
        match order.key {
            OrderKey::CreateTime => {
                Self { create_micros: Some(asset.create_time.timestamp_micros()), display_name: None, id: asset.id }
            }
            OrderKey::DisplayName => {
                Self { create_micros: None, display_name: Some(asset.display_name.clone()), id: asset.id }
            }
        }
    }

    /// Whether the cursor carries the key `order` sorts by.
    pub fn fits(&self, order: Order) -> bool {
        match order.key {
            OrderKey::CreateTime => self.create_micros.is_some() && self.display_name.is_none(),
            OrderKey::DisplayName => self.display_name.is_some() && self.create_micros.is_none(),
        }
    }
}

/// A fully decoded ListAssets request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetQuery {
    /// Only this principal's assets.
    pub owner: String,
    /// Conditions.
    pub filter: AssetFilter,
    /// Sort order.
    pub order: Order,
    /// Include archived assets (`show_deleted`, or a filter on `archived`).
    pub include_archived: bool,
    /// Resume after this position.
    pub after: Option<Cursor>,
    /// Rows to return; the store fetches one more to learn whether another page exists.
    pub limit: usize,
}

impl AssetQuery {
    /// What a page token is bound to: the same caller, filter, order and archive visibility.
    pub fn scope(&self) -> String {
        format!(
            "assets|owner={}|filter={}|order={}|archived={}",
            self.owner,
            self.filter.canonical(),
            self.order.canonical(),
            self.include_archived
        )
    }
}

/// The page size to use for the client's `page_size`, or what is wrong with it.
pub fn page_size(requested: i32) -> Result<usize, String> {
    highwind_common::validation::page_size(requested, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject_unknown_fields() {
        let f = AssetFilter::parse(r#"kind = DATASET AND labels.team = "vision" AND archived=false"#).expect("valid");
        assert_eq!(f.kind, Some(AssetKind::Dataset));
        assert_eq!(f.labels, [("team".to_owned(), "vision".to_owned())]);
        assert_eq!(f.archived, Some(false));
        assert_eq!(AssetFilter::parse("kind = ASSET_KIND_MODEL").expect("valid").kind, Some(AssetKind::Model));
        for bad in ["owner = users/x", "kind = BOAT", "kind", "labels.Bad = x", "archived = maybe", r#"labels.a = "x"#]
        {
            assert!(AssetFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_by_accepts_known_fields_and_directions() {
        assert_eq!(Order::parse("").expect("default"), Order { key: OrderKey::CreateTime, descending: false });
        assert_eq!(
            Order::parse("display_name desc").expect("valid"),
            Order { key: OrderKey::DisplayName, descending: true }
        );
        assert!(Order::parse("owner").is_err());
        assert!(Order::parse("create_time sideways").is_err());
        assert!(Order::parse("create_time desc extra").is_err());
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1000), Ok(1000));
        assert!(page_size(1001).is_err());
        assert!(page_size(-1).is_err());
    }
}
