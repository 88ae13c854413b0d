//! Runs: runs, tasks and their values (`entities`, `values`), and CreateRun's rule (`create`), which reads
//! pipelines and assets and hands new runs to the executor.

pub mod create;
pub mod entities;
pub mod values;
