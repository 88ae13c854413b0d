//! Kubeflow Pipelines' side of the executor seam: a run executes in KFP, followed by one driver here.

use std::sync::Arc;

use async_trait::async_trait;

use super::{client::KfpClient, driver};
use crate::{
    executor::{AfterRestart, Commands, Executor, Orphan, Shared},
    ir::spec::PipelineSpec,
    runs::entities::{Run, Task},
};

/// Runs pipelines on Kubeflow Pipelines.
#[derive(Debug)]
pub(crate) struct KfpExecutor {
    client: Arc<KfpClient>,
}

impl KfpExecutor {
    pub(crate) fn new(client: Arc<KfpClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Executor for KfpExecutor {
    /// KFP reads the pipeline from the version it was given, not from `spec`.
    async fn drive(self: Arc<Self>, shared: Arc<Shared>, run: Run, _spec: Arc<PipelineSpec>, commands: Commands) {
        driver::drive(shared, self.client.clone(), run, commands).await;
    }

    /// The run went on in KFP (one whose submission was cut short is found there by name, or submitted): it is
    /// followed again.
    async fn after_restart(&self, _run: &Run, _tasks: &[Task]) -> AfterRestart {
        AfterRestart::Resume
    }

    /// Only KFP can stop a KFP run.
    async fn cancel_without_driver(&self, _open: &[Task]) -> Orphan {
        Orphan::NeedsDriver
    }

    /// KFP retries its run itself (the run's driver asks it to); its tasks are KFP's to report.
    fn tasks_to_retry(&self, _tasks: Vec<Task>) -> Vec<Task> {
        Vec::new()
    }
}
