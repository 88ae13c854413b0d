//! The embedded executor's side of the seam: runs become DAGs of local processes, sharing this server's task
//! slots and sandbox.

use std::{collections::HashSet, sync::Arc};

use async_trait::async_trait;

use super::{
    Shared,
    backends::{AfterRestart, Commands, Executor, Orphan},
    driver, images, process, python_env, sandbox, slots,
};
use crate::{
    ir::spec::PipelineSpec,
    runs::entities::{Run, State, Task},
};

/// Runs pipelines' tasks as processes on this machine.
#[derive(Debug)]
pub(crate) struct LocalExecutor {
    /// Task slots, shared round-robin between the users whose tasks wait.
    pub(super) slots: Arc<slots::FairSlots>,
    /// Whether `python3` on the tasks' PATH imports `kfp` (then the pip preamble is skipped), probed once.
    pub(super) kfp_importable: tokio::sync::OnceCell<bool>,
    /// How tasks are confined, if the sandbox is on and everything it needs is installed.
    pub(super) confinement: Option<Arc<sandbox::Confinement>>,
    /// The images steps run in, unless they run on the host.
    pub(super) images: Option<Arc<images::Images>>,
    /// `packages_to_install` of lightweight components on the host, installed once per creator and set.
    pub(super) python_envs: Option<python_env::PythonEnvs>,
    /// Where pip finds those packages, and those of lightweight components in their images.
    pub(super) package_sources: python_env::PackageSources,
}

impl LocalExecutor {
    pub(super) fn new(
        parallelism: usize,
        confinement: Option<Arc<sandbox::Confinement>>,
        images: Option<Arc<images::Images>>,
        python_envs: Option<python_env::PythonEnvs>,
        package_sources: python_env::PackageSources,
    ) -> Self {
        Self {
            slots: slots::FairSlots::new(parallelism),
            kfp_importable: tokio::sync::OnceCell::new(),
            confinement,
            images,
            python_envs,
            package_sources,
        }
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    async fn drive(self: Arc<Self>, shared: Arc<Shared>, run: Run, spec: Arc<PipelineSpec>, commands: Commands) {
        driver::drive(shared, self, run, spec, commands).await;
    }

    /// A run that had not started starts now; one that had ends, after whatever its tasks left running is killed
    /// (their processes died with the server's, or were left orphaned by it).
    async fn after_restart(&self, run: &Run, tasks: &[Task]) -> AfterRestart {
        if run.state == State::Pending && tasks.is_empty() {
            return AfterRestart::Resume;
        }
        let killed = kill_leftovers(open(tasks)).await;
        if killed > 0 {
            tracing::info!(run = %run.id, killed, "stopped what a stopped server left running");
        }
        AfterRestart::End
    }

    async fn cancel_without_driver(&self, open_tasks: &[Task]) -> Orphan {
        kill_leftovers(open(open_tasks)).await;
        Orphan::EndHere
    }

    /// Top-down (parents come first): a task runs again only if it did not succeed (or ran only because an
    /// upstream task had not) and its DAG runs again too; a task skipped inside a DAG that succeeded (a false
    /// condition) stays as it was.
    fn tasks_to_retry(&self, tasks: Vec<Task>) -> Vec<Task> {
        let mut again = HashSet::from([String::new()]);
        let mut reset = Vec::new();
        for mut task in tasks.into_iter().filter(|t| t.state != State::Succeeded || t.ran_after_failure) {
            if !again.contains(&task.parent) {
                continue;
            }
            again.insert(task.path.clone());
            task.state = State::Pending;
            task.attempt += 1;
            task.state_message = "waiting to run again".into();
            task.error = None;
            task.start_time = None;
            task.end_time = None;
            task.exit_code = None;
            task.outputs = Default::default();
            reset.push(task);
        }
        reset
    }
}

fn open(tasks: &[Task]) -> Vec<String> {
    tasks.iter().filter(|t| !t.state.is_terminal()).map(|t| t.uid.to_string()).collect()
}

/// Kills whatever is left running for the tasks `uids`, on a blocking thread: finding it reads every process's
/// environment in /proc, which stalls on a process stuck in the kernel. How many processes were killed.
async fn kill_leftovers(uids: Vec<String>) -> usize {
    tokio::task::spawn_blocking(move || uids.iter().map(|uid| process::kill_leftovers(uid)).sum())
        .await
        .unwrap_or_default()
}
