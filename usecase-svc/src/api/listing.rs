//! What every handler of this service repeats: the caller's role on the use case a name points into, the checks
//! of a List request and of an idempotency key, and the keyset cursor of lists ordered by create time.

use highwind_common::{
    principal::Principal,
    validation::{Violations, page_size},
};
use uuid::Uuid;

use crate::{domain::names, domain::role::Role, error::Error, store::UseCaseRepository};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1_000;
const MAX_REQUEST_ID: usize = 128;

/// Records a violation when an idempotency key is too long or holds control characters.
pub fn check_request_id(request_id: &str, violations: &mut Violations) {
    if request_id.chars().count() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        violations.add("request_id", format!("at most {MAX_REQUEST_ID} characters, no control characters"));
    }
}

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

/// The page size of a List request, recording violations for it, for a filter (none is supported yet) and for an
/// `order_by` other than `orders` (described by `order_hint`). `noun` names what is listed.
pub fn list_limit(
    requested: i32,
    filter: &str,
    order_by: &str,
    noun: &str,
    orders: &[&str],
    order_hint: &str,
    violations: &mut Violations,
) -> usize {
    let limit = page_limit(requested, violations);
    if !filter.trim().is_empty() {
        violations.add("filter", format!("filtering {noun} is not supported yet: send an empty filter"));
    }
    if !orders.contains(&order_by.trim()) {
        violations.add("order_by", format!("{noun} are listed {order_hint}"));
    }
    limit
}

/// Orders accepted by lists sorted oldest first.
pub const BY_CREATE_TIME: [&str; 3] = ["", "create_time", "create_time asc"];

/// Where a create-time-ordered page resumes.
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
