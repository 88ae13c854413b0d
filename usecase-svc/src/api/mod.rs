//! The gRPC surface of the use-case service.

mod acquisitions;
mod convert;
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

pub use marketplace::MarketplaceApi;
pub use use_cases::UseCaseApi;
