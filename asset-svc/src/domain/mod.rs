//! Asset rules and types. No tonic, no sqlx: everything here can be tested without a server or a database.

pub mod aliases;
pub mod asset;
pub mod names;
pub mod paging;
pub mod paths;
pub mod upload;
pub mod version;
