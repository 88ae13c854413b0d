//! The seam between the engine and where runs execute: one [`Executor`] per backend, the engine choosing by the
//! run's `backend` and asking it only what differs (how a run is followed, what a restart, a cancel without a
//! driver and a retry mean there). Everything else (admission, persistence, watchers) is the engine's.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Command, EngineError, Shared};
use crate::{
    ir::spec::PipelineSpec,
    runs::entities::{Backend, Run, Task},
};

/// Where runs of one backend execute.
#[async_trait]
pub(crate) trait Executor: Send + Sync + std::fmt::Debug {
    /// Follows `run` (persisted) until it ends, as its only writer while it lives, answering `commands`.
    async fn drive(self: Arc<Self>, shared: Arc<Shared>, run: Run, spec: Arc<PipelineSpec>, commands: Commands);

    /// What becomes of `run`, with `tasks` stored, that a stopped server left unfinished.
    async fn after_restart(&self, run: &Run, tasks: &[Task]) -> AfterRestart;

    /// How `run`, which has no live driver, is cancelled; `open` are its unfinished tasks.
    async fn cancel_without_driver(&self, open: &[Task]) -> Orphan;

    /// The tasks of a FAILED or CANCELED run that run again on RetryRun, out of all its `tasks` (parents first),
    /// already reset for their next attempt.
    fn tasks_to_retry(&self, tasks: Vec<Task>) -> Vec<Task>;
}

/// A driver's commands.
pub(crate) type Commands = mpsc::Receiver<Command>;

/// What becomes of a run a stopped server left unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRestart {
    /// It goes on: a driver follows it again.
    Resume,
    /// It ends FAILED with SERVER_RESTARTED (or CANCELED if it was being cancelled); RetryRun resumes it.
    End,
}

/// How a run with no live driver is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orphan {
    /// Nothing of it runs any more: the engine records it CANCELED.
    EndHere,
    /// It runs elsewhere and only a driver can stop it: the engine follows it again and asks.
    NeedsDriver,
}

/// The executors this server has: the embedded one always, Kubeflow Pipelines when configured.
#[derive(Debug, Clone)]
pub(crate) struct Executors {
    pub(crate) local: Arc<dyn Executor>,
    pub(crate) kfp: Option<Arc<dyn Executor>>,
}

impl Executors {
    /// The executor of `backend`, or NoKfp when it is not configured.
    pub(crate) fn of(&self, backend: Backend) -> Result<&Arc<dyn Executor>, EngineError> {
        match backend {
            Backend::Local => Ok(&self.local),
            Backend::Kfp => self.kfp.as_ref().ok_or(EngineError::NoKfp),
        }
    }
}
