//! The grant outbox: which sources (`useCases/{u}`, `entitlements/{e}`) changed in ways that change who may read
//! which asset versions. Writes mark a source in the same transaction as the change; the relay reads the
//! source's complete grant set now (`relay::grants_of`) and delivers it with the source's version, so deliveries are idempotent and a
//! stale one is ignored by asset-svc.

use async_trait::async_trait;

use super::StoreError;

/// A source waiting for delivery, at the version of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// `useCases/{u}` or `entitlements/{e}`.
    pub source: String,
    /// Increases with every change of the source.
    pub version: i64,
}

/// The outbox and what the relay reads to fill a delivery.
#[async_trait]
pub trait GrantOutbox: Send + Sync + std::fmt::Debug {
    /// Up to `limit` sources with undelivered changes, by name, after `after`.
    async fn pending(&self, after: Option<&str>, limit: usize) -> Result<Vec<Pending>, StoreError>;

    /// Marks `pending` delivered, unless the source changed again since (then it stays pending).
    async fn delivered(&self, pending: &Pending) -> Result<(), StoreError>;
}
