//! Read grants that usecase-svc derives from use-case membership and entitlements, kept here so a read check is
//! one indexed lookup. Each source's set is replaced whole, in sequence order.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// The grants one source justifies: every principal may read every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSet {
    /// `useCases/{u}` or `entitlements/{e}`.
    pub source: String,
    /// Increases with every change of the source.
    pub sequence: i64,
    /// Who may read.
    pub principals: Vec<String>,
    /// What: an asset and a version number, 0 for every version.
    pub targets: Vec<(Uuid, i64)>,
}

/// Persistence of grants.
#[async_trait]
pub trait GrantRepository: Send + Sync + std::fmt::Debug {
    /// Replaces the source's grants with `set` unless a set with an equal or higher sequence was stored; whether it
    /// was applied.
    async fn replace(&self, set: &GrantSet) -> Result<bool, StoreError>;

    /// Whether some grant lets `principal` read version `version` of `asset` (`None`: some version of it).
    async fn may_read(&self, principal: &str, asset: Uuid, version: Option<i64>) -> Result<bool, StoreError>;

    /// Whether a use case pins version `version` of `asset` (a link or release grants exactly that version).
    async fn is_pinned(&self, asset: Uuid, version: i64) -> Result<bool, StoreError>;
}

/// Every (principal, asset, version) row of `set`, as three columns.
pub(super) fn cross(set: &GrantSet) -> (Vec<String>, Vec<Uuid>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for principal in &set.principals {
        for (asset, version) in &set.targets {
            columns.0.push(principal.clone());
            columns.1.push(*asset);
            columns.2.push(*version);
        }
    }
    columns
}
