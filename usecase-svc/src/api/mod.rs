//! The gRPC surface of the use-case service.

mod convert;
mod error;
mod filters;
mod links;
mod listing;
mod marketplace;
mod members;
mod publishing;
mod releases;
mod resolved;
mod use_cases;

pub use marketplace::MarketplaceApi;
pub use use_cases::UseCaseApi;
