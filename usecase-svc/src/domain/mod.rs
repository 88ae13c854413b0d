//! Use-case rules and types. No tonic, no sqlx.

pub mod grants;
pub mod link;
pub mod market;
pub mod member;
pub mod names;
pub mod release;
pub mod role;
pub mod use_case;
