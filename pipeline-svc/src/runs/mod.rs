//! The run model: runs, tasks and their values.

pub mod model;
pub mod values;
