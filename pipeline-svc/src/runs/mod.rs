//! The run model: runs, tasks and their values (`model`, `values`), and CreateRun's rule (`create`), which reads
//! pipelines and assets and hands new runs to the executor.

pub mod create;
pub mod model;
pub mod values;
