//! The embedded executor: runs pipelines as DAGs of local processes, one driver task per run that alone writes
//! that run's state, persists every change and announces it to watchers.

mod artifact_metrics;
mod backends;
mod cache;
pub mod cel;
mod collect;
mod config;
mod driver;
pub mod images;
mod inputs;
pub mod inside;
pub mod launch;
mod local;
pub mod process;
pub mod python_env;
pub mod register;
pub mod sandbox;
mod slots;
mod work;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use highwind_common::principal::Principal;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

pub(crate) use self::backends::{AfterRestart, Commands, Executor, Orphan};
pub use self::config::{ExecutorConfig, SandboxMode};
use self::{backends::Executors, local::LocalExecutor};
use crate::{
    assets::AssetFiles,
    ir::spec::PipelineSpec,
    kfp::{client::KfpClient, executor::KfpExecutor},
    runs::entities::{Backend, Failure, Run, State, Task, now},
    store::{RunRepository, StoreError},
};

/// What changed in a run, as watchers receive it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The run.
    pub run_id: Uuid,
    /// The run's change counter after this change.
    pub sequence: i64,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// The run's fields or one task.
    pub what: Changed,
}

/// The changed thing.
#[derive(Debug, Clone)]
pub enum Changed {
    /// The run (its tasks are not part of it).
    Run(Box<Run>),
    /// One task, complete.
    Task(Box<Task>),
}

/// Why an executor call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run is not in a state that allows this.
    #[error("run is {0}")]
    WrongState(&'static str),
    /// The run is a Kubeflow Pipelines run and this server has no KFP backend.
    #[error("no Kubeflow Pipelines backend is configured")]
    NoKfp,
    /// Another change won the race; try again.
    #[error("the run changed concurrently")]
    Conflict,
    /// The creator already has as many active runs as allowed.
    #[error("{creator} already has {limit} active runs, the most allowed (executor.max_active_runs_per_user)")]
    TooManyActiveRuns {
        /// Whose runs.
        creator: String,
        /// The limit reached.
        limit: usize,
    },
}

/// What drivers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn RunRepository>,
    assets: Arc<dyn AssetFiles>,
    config: ExecutorConfig,
    pub(crate) changes: broadcast::Sender<Change>,
    live: Mutex<HashMap<Uuid, mpsc::Sender<Command>>>,
    /// Live drivers (and admissions not yet launched) per creator, for `max_active_runs_per_user`.
    active: Mutex<HashMap<String, usize>>,
}

/// One of a creator's places among their active runs, held from admission until the run's driver ends (or
/// until dropped, when the run was never launched).
#[derive(Debug)]
pub struct Admission {
    shared: Arc<Shared>,
    creator: String,
}

impl Admission {
    /// A place taken whatever the limit: for runs that are active already (recovered, or followed again).
    fn taken(shared: &Arc<Shared>, creator: &str) -> Self {
        if let Ok(mut active) = shared.active.lock() {
            *active.entry(creator.to_owned()).or_default() += 1;
        }
        Self { shared: shared.clone(), creator: creator.to_owned() }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut active) = self.shared.active.lock()
            && let Some(count) = active.get_mut(&self.creator)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                active.remove(&self.creator);
            }
        }
    }
}

/// A request to a run's driver.
#[derive(Debug)]
pub(crate) enum Command {
    Cancel(oneshot::Sender<Result<Run, EngineError>>),
}

/// Runs pipelines: on the embedded executor, or on Kubeflow Pipelines when configured; either way one driver task
/// per live run is its only writer.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    executors: Executors,
    /// The store of the images steps run in, also served by `ImageCacheService`.
    images: Option<Arc<images::Images>>,
    /// The sandbox, which deployments' replicas run in too.
    confinement: Option<Arc<sandbox::Confinement>>,
}

impl Engine {
    /// An engine over `store`, reading asset versions through `assets`, with KFP runs going to `kfp`. Call
    /// [`Engine::recover`] once at start.
    pub fn new(
        mut config: ExecutorConfig,
        store: Arc<dyn RunRepository>,
        assets: Arc<dyn AssetFiles>,
        kfp: Option<Arc<KfpClient>>,
    ) -> Self {
        // Tasks run as this process's user: they must not read its environment or memory through /proc.
        if let Err(e) = nix::sys::prctl::set_dumpable(false) {
            tracing::warn!(error = %e, "cannot mark the server undumpable; tasks could read its /proc entries");
        }
        // Task paths reach argv, ExecutorInput and working directories: they must be absolute.
        if std::fs::create_dir_all(&config.data_dir).is_ok()
            && let Ok(absolute) = config.data_dir.canonicalize()
        {
            config.data_dir = absolute;
        }
        let parallelism = if config.parallelism == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.parallelism
        };
        if config.images.cache_dir.as_os_str().is_empty() {
            config.images.cache_dir = config.data_dir.join(".images");
        }
        let images = step_images(&config);
        let confinement = confinement(&config, images.is_some());
        let (changes, _) = broadcast::channel(4096);
        let executors = Executors {
            local: Arc::new(LocalExecutor::new(
                parallelism,
                confinement.clone(),
                images.clone(),
                python_envs(&config),
                python_env::PackageSources::of(&config.package_index_url, &config.package_dir),
            )),
            kfp: kfp.map(|client| Arc::new(KfpExecutor::new(client)) as Arc<dyn Executor>),
        };
        Self {
            shared: Arc::new(Shared {
                store,
                assets,
                config,
                changes,
                live: Mutex::new(HashMap::new()),
                active: Mutex::new(HashMap::new()),
            }),
            executors,
            images,
            confinement,
        }
    }

    /// A place for one more active run of `creator`, or TooManyActiveRuns when they have as many as allowed.
    /// Checked and taken under one lock, so concurrent creates cannot pass the limit together.
    pub fn admit(&self, creator: &str) -> Result<Admission, EngineError> {
        let limit = self.shared.config.max_active_runs_per_user;
        {
            let mut active = self.shared.active.lock().map_err(|_| EngineError::Conflict)?;
            let count = active.entry(creator.to_owned()).or_default();
            if limit > 0 && *count >= limit {
                return Err(EngineError::TooManyActiveRuns { creator: creator.to_owned(), limit });
            }
            *count += 1;
        }
        Ok(Admission { shared: self.shared.clone(), creator: creator.to_owned() })
    }

    /// The images steps run in, unless they run on the host.
    pub fn images(&self) -> Option<Arc<images::Images>> {
        self.images.clone()
    }

    /// The image store and the sandbox that can run images, when this server has both.
    pub fn image_runtime(&self) -> Option<(Arc<images::Images>, Arc<sandbox::Confinement>)> {
        match (&self.images, &self.confinement) {
            (Some(images), Some(confinement)) if confinement.runs_images() => {
                Some((images.clone(), confinement.clone()))
            }
            _ => None,
        }
    }

    /// The executor's limits on runs.
    pub fn config(&self) -> &ExecutorConfig {
        &self.shared.config
    }

    /// Whether runs on `backend` can be created.
    pub fn runs_on(&self, backend: Backend) -> bool {
        self.executors.of(backend).is_ok()
    }

    /// Takes every run a previous server process left unfinished to a definite state: a local run that had not
    /// started starts now; one that had is FAILED with reason SERVER_RESTARTED, after whatever its tasks left
    /// running is killed (RetryRun resumes it, keeping what succeeded). A KFP run is followed again: it went on
    /// running in KFP (one whose submission was cut short is found there by name, or submitted).
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let unfinished = self.shared.store.unfinished().await?;
        for id in &unfinished {
            let Some(mut run) = self.shared.store.get(*id).await? else { continue };
            let mut tasks = self.shared.store.tasks(*id).await?;
            // A run whose backend is not configured never runs here: it can only end.
            let orphaned = self.executors.of(run.backend).is_err();
            if let Ok(executor) = self.executors.of(run.backend)
                && executor.after_restart(&run, &tasks).await == AfterRestart::Resume
                && let Some(spec) = self.spec_of(*id).await?
            {
                let admission = Admission::taken(&self.shared, &run.creator);
                self.launch(run, spec, admission);
                continue;
            }
            let expected = run.sequence;
            let time = now();
            let reason = "the server stopped while the run was in progress; RetryRun resumes it";
            // A run being cancelled ends as one would have; any other ends FAILED.
            let (state, failure) = if run.state == State::Canceling {
                (State::Canceled, Failure::new(1, "CANCELED", "the run was canceled"))
            } else if orphaned {
                let why = "the server restarted without a Kubeflow Pipelines backend; the KFP run may still be running";
                (State::Failed, Failure::new(9, "BACKEND_NOT_CONFIGURED", why))
            } else {
                (State::Failed, Failure::new(10, "SERVER_RESTARTED", reason))
            };
            for task in tasks.iter_mut().filter(|t| !t.state.is_terminal()) {
                task.state = state;
                task.error = Some(failure.clone());
                task.end_time = Some(time);
                run.sequence += 1;
            }
            run.state = state;
            run.error = Some(failure);
            run.end_time = Some(time);
            run.update_time = time;
            run.sequence += 1;
            let changed: Vec<Task> = tasks.into_iter().filter(|t| t.end_time == Some(time)).collect();
            self.shared.store.save(&run, &changed, expected).await?;
            tracing::warn!(run = %id, "run failed: the server stopped while it was in progress");
        }
        Ok(unfinished.len())
    }

    async fn spec_of(&self, id: Uuid) -> Result<Option<Arc<PipelineSpec>>, StoreError> {
        let Some(ir) = self.shared.store.ir(id).await? else { return Ok(None) };
        Ok(crate::ir::parse(ir.as_bytes()).ok().map(|p| Arc::new(p.spec)))
    }

    /// Starts executing `run` (persisted, PENDING) of `spec` on its backend (a KFP run reads its IR from the store);
    /// `admission` is held until its driver ends.
    pub fn launch(&self, run: Run, spec: Arc<PipelineSpec>, admission: Admission) {
        let (commands, receiver) = mpsc::channel(8);
        if let Ok(mut live) = self.shared.live.lock() {
            live.insert(run.id, commands.clone());
        }
        let shared = self.shared.clone();
        let executor = self.executors.of(run.backend).cloned();
        let mine = commands.clone();
        tokio::spawn(async move {
            let _admission = admission;
            let id = run.id;
            match executor {
                Ok(executor) => executor.drive(shared.clone(), run, spec, receiver).await,
                Err(e) => tracing::error!(run = %id, error = %e, "a run was launched without its backend"),
            }
            if let Ok(mut live) = shared.live.lock()
                && live.get(&id).is_some_and(|current| current.same_channel(&mine))
            {
                live.remove(&id);
            }
        });
    }

    /// Asks run `run` to stop: the run as it is once CANCELING (or already CANCELING or CANCELED).
    pub async fn cancel(&self, run: &Run) -> Result<Run, EngineError> {
        if let Some(answer) = self.ask_driver(run.id).await {
            return answer;
        }
        // No driver: the run ended meanwhile, or its driver stopped without ending it. Answer from what is stored,
        // and end an orphaned run here.
        let mut stored = self.shared.store.get(run.id).await?.ok_or(EngineError::Conflict)?;
        let mut tasks = self.shared.store.tasks(run.id).await?;
        if !stored.state.is_terminal()
            && let Ok(executor) = self.executors.of(stored.backend)
            && executor.cancel_without_driver(&tasks).await == Orphan::NeedsDriver
        {
            let spec = self.spec_of(run.id).await?.ok_or(EngineError::Conflict)?;
            let admission = Admission::taken(&self.shared, &stored.creator);
            self.launch(stored.clone(), spec, admission);
            return self.ask_driver(run.id).await.unwrap_or(Err(EngineError::Conflict));
        }
        match stored.state {
            State::Canceling | State::Canceled => Ok(stored),
            State::Pending | State::Running => {
                let expected = stored.sequence;
                let time = now();
                let failure = Failure::new(1, "CANCELED", "the run was canceled");
                let mut changed = Vec::new();
                for task in tasks.iter_mut().filter(|t| !t.state.is_terminal()) {
                    task.state = State::Canceled;
                    task.error = Some(failure.clone());
                    task.end_time = Some(time);
                    stored.sequence += 1;
                    changed.push(task.clone());
                }
                stored.state = State::Canceled;
                stored.error = Some(failure);
                stored.end_time = Some(time);
                stored.update_time = time;
                stored.sequence += 1;
                if !self.shared.store.save(&stored, &changed, expected).await? {
                    return Err(EngineError::Conflict);
                }
                self.announce(&stored, &changed);
                Ok(stored)
            }
            other => Err(EngineError::WrongState(other.as_str())),
        }
    }

    /// Asks run `id`'s live driver to cancel it; `None` when it has none.
    async fn ask_driver(&self, id: Uuid) -> Option<Result<Run, EngineError>> {
        let driver = self.shared.live.lock().ok().and_then(|live| live.get(&id).cloned())?;
        let (reply, answer) = oneshot::channel();
        driver.send(Command::Cancel(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Takes a FAILED or CANCELED run back to PENDING for another attempt: tasks that did not succeed run again,
    /// succeeded ones keep their outputs.
    pub async fn retry(&self, run: &Run, request_id: Option<String>) -> Result<Run, EngineError> {
        if !matches!(run.state, State::Failed | State::Canceled) {
            return Err(EngineError::WrongState(run.state.as_str()));
        }
        let executor = self.executors.of(run.backend)?;
        let admission = self.admit(&run.creator)?;
        let tasks = self.shared.store.tasks(run.id).await?;
        let mut next = run.clone();
        let expected = run.sequence;
        let time = now();
        let changed = executor.tasks_to_retry(tasks);
        next.sequence += i64::try_from(changed.len()).unwrap_or(i64::MAX);
        next.state = State::Pending;
        next.error = None;
        next.end_time = None;
        next.attempt += 1;
        next.retry_request_id = request_id;
        next.update_time = time;
        next.sequence += 1;
        if !self.shared.store.save(&next, &changed, expected).await? {
            return Err(EngineError::Conflict);
        }
        let spec = self.spec_of(run.id).await?.ok_or(EngineError::Conflict)?;
        self.announce(&next, &changed);
        self.launch(next.clone(), spec, admission);
        Ok(next)
    }

    fn announce(&self, run: &Run, tasks: &[Task]) {
        let first = run.sequence - i64::try_from(tasks.len()).unwrap_or(0);
        for (offset, task) in tasks.iter().enumerate() {
            let sequence = first + i64::try_from(offset).unwrap_or(0);
            let _ = self.shared.changes.send(Change {
                run_id: run.id,
                sequence,
                time: run.update_time,
                what: Changed::Task(Box::new(task.clone())),
            });
        }
        let _ = self.shared.changes.send(Change {
            run_id: run.id,
            sequence: run.sequence,
            time: run.update_time,
            what: Changed::Run(Box::new(run.clone())),
        });
    }

    /// Every change of every run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// The bound on a task attempt's log.
    pub fn max_log_bytes(&self) -> u64 {
        self.shared.config.max_log_bytes
    }

    /// The log file of `task`'s `attempt` in run `run`.
    pub fn log_path(&self, run: Uuid, task: &Task, attempt: i32) -> PathBuf {
        attempt_log(&self.shared.config, run, &task.uid.to_string(), attempt)
    }
}

/// The stored tasks of run `id`. A live run's driver cannot give up on its run, so storage errors are retried.
pub(crate) async fn load_tasks(shared: &Shared, id: Uuid) -> Vec<Task> {
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match shared.store.tasks(id).await {
            Ok(tasks) => return tasks,
            Err(e) => {
                tracing::warn!(run = %id, error = %e, "cannot load the run's tasks; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// Saves `tasks` (and `run` when `run_changed`) as the next changes after `persisted`, one sequence number each,
/// retrying storage errors, then announces them to watchers. False when someone else changed the run meanwhile.
pub(crate) async fn persist(
    shared: &Shared,
    run: &mut Run,
    tasks: Vec<Task>,
    run_changed: bool,
    persisted: i64,
) -> bool {
    let time = now();
    let mut announcements = Vec::new();
    for task in &tasks {
        run.sequence += 1;
        announcements.push((run.sequence, Changed::Task(Box::new(task.clone()))));
    }
    run.update_time = time;
    if run_changed {
        run.sequence += 1;
        announcements.push((run.sequence, Changed::Run(Box::new(run.clone()))));
    }
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match shared.store.save(run, &tasks, persisted).await {
            Ok(true) => break,
            Ok(false) => {
                // A save that failed to answer may still have committed: then the stored run is this one.
                if let Ok(Some(stored)) = shared.store.get(run.id).await
                    && stored.sequence == run.sequence
                {
                    break;
                }
                return false;
            }
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "cannot save run state; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    for (sequence, what) in announcements {
        let _ = shared.changes.send(Change { run_id: run.id, sequence, time, what });
    }
    true
}

/// A task's own directory: named by its uid, so nothing in the IR picks a path.
fn task_dir(config: &ExecutorConfig, run: Uuid, task: &Task) -> PathBuf {
    run_dir(config, run).join(task.uid.to_string())
}

/// Where a task attempt's log is kept: beside the task's directory, not in it, so the task (which owns its
/// directory) cannot swap the file for a link to something of the server's.
fn attempt_log(config: &ExecutorConfig, run: Uuid, task_uid: &str, attempt: i32) -> PathBuf {
    run_dir(config, run).join("logs").join(format!("{task_uid}-attempt-{attempt}.log"))
}

/// Where `packages_to_install` of steps on the host are installed; `None` (with a warning) when it cannot open.
fn python_envs(config: &ExecutorConfig) -> Option<python_env::PythonEnvs> {
    python_env::PythonEnvs::open(&config.images.cache_dir.join("python"))
        .map_err(|e| tracing::warn!(error = %e, "packages_to_install cannot be installed for steps on the host"))
        .ok()
}

/// The image store steps run from, unless they run on the host; `None` (with a warning) when it cannot open.
fn step_images(config: &ExecutorConfig) -> Option<Arc<images::Images>> {
    if config.images.mode == images::ImageMode::Host {
        return None;
    }
    match images::Images::open(config.images.clone()) {
        Ok(images) => Some(Arc::new(images)),
        Err(e) => {
            tracing::warn!(error = %e, "steps cannot run in their images");
            None
        }
    }
}

/// The sandbox tasks run in: `None` when it is off, or when it is `auto` and something it needs is missing. With
/// `images`, it can run steps in their own image too.
fn confinement(config: &ExecutorConfig, images: bool) -> Option<Arc<sandbox::Confinement>> {
    if config.sandbox == SandboxMode::None {
        return None;
    }
    let Some(bwrap) = highwind_common::executables::find_on_path("bwrap") else {
        tracing::warn!("bwrap not found: pipeline tasks run without a sandbox (install bubblewrap)");
        return None;
    };
    let mut readable = sandbox::view::tool_prefixes(&task_path(config));
    readable.extend(config.read_only.iter().cloned());
    let excluded: Vec<PathBuf> = config.hide.iter().chain([&config.data_dir]).cloned().collect();
    match sandbox::Confinement::new(bwrap, &readable, &excluded, config.task_uids) {
        Ok(mut confinement) => {
            if images && let Err(e) = confinement.install_init(&config.images.cache_dir) {
                tracing::warn!(error = %e, "cannot install the init of steps in images; they run on the host");
            }
            Some(Arc::new(confinement))
        }
        Err(e) => {
            tracing::warn!(error = %e, "pipeline tasks cannot be sandboxed");
            None
        }
    }
}

/// The `PATH` tasks get: the configured one, else the system's when sandboxed (the server's own may name
/// directories the sandbox does not show), else the server's.
fn task_path(config: &ExecutorConfig) -> String {
    if !config.task_path.is_empty() {
        config.task_path.clone()
    } else if config.sandbox == SandboxMode::None {
        String::new()
    } else {
        sandbox::view::DEFAULT_PATH.to_owned()
    }
}

fn run_dir(config: &ExecutorConfig, run: Uuid) -> PathBuf {
    config.data_dir.join(run.to_string())
}

/// The principal a run's reads of asset versions happen as: its creator.
fn creator(run: &Run) -> Option<Principal> {
    Principal::parse(&run.creator)
}
