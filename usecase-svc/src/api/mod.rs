//! The gRPC surface of the use-case service.

mod acquisitions;
mod audit_access;
mod convert;
mod entitlements;
mod error;
mod filters;
mod forks;
mod links;
mod marketplace;
mod members;
mod paging;
mod publishing;
mod releases;
mod resolved;
mod use_cases;

pub use audit_access::AuditAccessApi;
pub use marketplace::MarketplaceApi;
pub use use_cases::UseCaseApi;
