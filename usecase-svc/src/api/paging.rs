//! What every handler of this service repeats: the caller's role on the use case a name points into, the checks
//! of a List request and of an idempotency key, the order a List asks for, and paging through sorted rows.

use highwind_common::{
    page_token::PageTokens,
    principal::Principal,
    validation::{Violations, page_size},
};
use uuid::Uuid;

use crate::{domain::names, domain::role::Role, error::Error, store::UseCaseRepository};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1_000;
pub use highwind_common::idempotency::{check_request_id, idempotency_key};

/// The page size a List request asks for (0 means the default), recording a violation when out of range.
pub fn page_limit(requested: i32, violations: &mut Violations) -> usize {
    page_size(requested, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE).unwrap_or_else(|e| {
        violations.add("page_size", e);
        0
    })
}

/// The use case `name` (found in request field `field`) and the caller's role on it; NOT_FOUND for non-members,
/// so existence stays private.
pub async fn caller_role(
    repo: &dyn UseCaseRepository,
    principal: &Principal,
    field: &str,
    name: &str,
) -> Result<(Uuid, Role), Error> {
    let id = names::parse_use_case_name(name).map_err(|reason| Error::Invalid(Violations::one(field, reason)))?;
    let role = repo.role_of(id, principal.as_str()).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    Ok((id, role))
}

/// Rows read per store call when a list is read whole.
pub const READ_BATCH: usize = 500;

/// A row's sort value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum SortValue {
    /// A time in microseconds, or a number.
    Int(i64),
    /// A name, compared bytewise.
    Text(String),
}

/// A row's place in a sorted list: its sort value, then its id to break ties.
pub type RowKey = (SortValue, String);

/// The field and direction (`true`: largest first) `order_by` asks for, among `fields` (`field` or `field desc` or
/// `field asc`); `default` when empty.
pub fn parse_order(
    order_by: &str,
    fields: &[&'static str],
    default: (&'static str, bool),
) -> Result<(&'static str, bool), String> {
    let words: Vec<&str> = order_by.split_whitespace().collect();
    let (field, descending) = match words.as_slice() {
        [] => return Ok(default),
        [field] | [field, "asc"] => (*field, false),
        [field, "desc"] => (*field, true),
        _ => return Err("use one field, optionally followed by asc or desc".to_owned()),
    };
    let known = fields.iter().find(|f| **f == field).ok_or_else(|| format!("order by one of {}", fields.join(", ")))?;
    Ok((known, descending))
}

/// One page of `rows` (each with its key), sorted by key in the given direction, after the key in `token` (signed
/// for `scope`); the next page's token, empty at the end. Lists of one principal's use cases and of one use case's
/// members, links and releases are small enough to sort whole.
pub fn page_of<T>(
    mut rows: Vec<(RowKey, T)>,
    descending: bool,
    limit: usize,
    page_tokens: &PageTokens,
    scope: &str,
    token: &str,
) -> Result<(Vec<T>, String), Error> {
    let after: Option<RowKey> = if token.is_empty() {
        None
    } else {
        Some(page_tokens.decode(scope, token).map_err(|_| {
            Error::Invalid(Violations::one("page_token", "not a token from a previous page of this same query"))
        })?)
    };
    rows.sort_by(|a, b| if descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    let start = after.map_or(0, |k| rows.partition_point(|(key, _)| if descending { *key >= k } else { *key <= k }));
    let mut page: Vec<(RowKey, T)> = rows.into_iter().skip(start).take(limit + 1).collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(key, _)| page_tokens.encode(scope, key)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page.into_iter().map(|(_, row)| row).collect(), next))
}

/// Where a create-time-ordered page read from the store resumes.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TimeCursor {
    t: i64,
    id: Uuid,
}

impl TimeCursor {
    /// Just after the row created at `micros` with `id`.
    pub fn new(micros: i64, id: Uuid) -> Self {
        Self { t: micros, id }
    }

    /// The store's resume point.
    pub fn after(&self) -> (i64, Uuid) {
        (self.t, self.id)
    }
}
