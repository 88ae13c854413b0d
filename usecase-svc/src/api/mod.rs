//! The gRPC surface of the use-case service.

mod convert;
mod error;
mod links;
mod listing;
mod members;
mod releases;
mod use_cases;

pub use use_cases::UseCaseApi;
