//! Members: who may do what with a use case. A use case always keeps at least one owner.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::role::Role;

/// A membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// UUIDv7, the `{member}` of its name.
    pub id: Uuid,
    /// The use case.
    pub use_case_id: Uuid,
    /// `users/{id}`.
    pub principal: String,
    /// What the member may do.
    pub role: Role,
    /// Who added the member.
    pub creator: String,
    /// When added.
    pub create_time: DateTime<Utc>,
    /// When the role last changed.
    pub update_time: DateTime<Utc>,
    /// Incremented on every change; the etag is derived from it.
    pub revision: i64,
}

impl Member {
    /// A new membership of `principal` in `use_case_id`, added by `creator`.
    pub fn new(use_case_id: Uuid, principal: &str, role: Role, creator: &str, now: DateTime<Utc>) -> Self {
        let now = now.trunc_subsecs(6);
        Self {
            id: Uuid::now_v7(),
            use_case_id,
            principal: principal.to_owned(),
            role,
            creator: creator.to_owned(),
            create_time: now,
            update_time: now,
            revision: 1,
        }
    }

    /// Opaque concurrency token.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }
}

/// Longest member principal, `users/` included, in characters.
pub const MAX_PRINCIPAL: usize = 256;

/// Whether `principal` names a user: `users/` then at least one of letters, digits and `._@-+`, at most
/// [`MAX_PRINCIPAL`] characters in all.
pub fn valid_principal(principal: &str) -> bool {
    principal.len() <= MAX_PRINCIPAL
        && principal
            .strip_prefix("users/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b)))
}

/// What became of a change to a membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Done; the membership as it now is (or was, when removed).
    Done(Member),
    /// No such member of that use case.
    Missing,
    /// The revision the caller expected is not the current one.
    Stale,
    /// It would leave the use case without an owner.
    LastOwner,
}
