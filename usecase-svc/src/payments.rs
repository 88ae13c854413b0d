//! Charging for priced listings. A real payment provider is out of scope: the built-in one records each purchase in
//! the `payment_ledger` table and never moves money. Another provider plugs in behind [`PaymentProvider`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::{domain::market::Charge, store::market::MarketRepository};

/// Why a charge did not go through; nothing is recorded and the buyer may retry.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the charge.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider could not be reached.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// Takes payments for priced listings.
#[async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// Charges `charge` and returns the provider's reference for it. The same idempotency key never charges twice:
    /// it returns the first charge's reference.
    async fn charge(&self, charge: &Charge) -> Result<String, PaymentError>;
}

/// The default provider: a ledger row per purchase, no money moved.
#[derive(Debug, Clone)]
pub struct LedgerPayments(pub Arc<dyn MarketRepository>);

#[async_trait]
impl PaymentProvider for LedgerPayments {
    async fn charge(&self, charge: &Charge) -> Result<String, PaymentError> {
        match self.0.record_charge(charge).await {
            Ok(id) => Ok(format!("ledger/{id}")),
            Err(e) => {
                tracing::error!(error = %e, "payment ledger write failed");
                Err(PaymentError::Unavailable("the payment ledger cannot be written".into()))
            }
        }
    }
}
