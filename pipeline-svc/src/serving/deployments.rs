//! The deployments this server runs: each is a supervisor of its predictor's replicas, started when the deployment
//! is created and again when the server starts (a server's replicas die with it), and stopped when it is deleted.
//! The image is pulled as the deployment's creator, as a step's image is for its run's creator.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use highwind_common::principal::Principal;

use super::{
    entities::DeploymentRecord,
    replica::ReplicaSpec,
    supervisor::{Component, ComponentStatus, Condition, ConditionStatus, Supervisor},
};
use crate::{
    assets::AssetFiles,
    executor::{
        images::{Images, StepImage},
        sandbox::{Confinement, TaskLimits},
    },
    store::{DeploymentRepository, StoreError},
};

/// The stem of a predictor replica's log file.
const PREDICTOR_LOG: &str = "predictor";

/// How deployments run here (`HIGHWIND__PIPELINE__DEPLOYMENTS__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    /// Most deployments this server runs at once.
    pub max_deployments: usize,
    /// The port predictors listen on inside their sandbox (KServe's servers use 8080).
    pub port: u16,
    /// The readiness path probed (the Open Inference Protocol's).
    pub ready_path: String,
    /// How long a replica may take to become ready before it is started again.
    pub startup_timeout_seconds: u64,
    /// Limits of each replica's processes.
    pub limits: TaskLimits,
    /// Most bytes of a replica's output kept.
    pub max_log_bytes: u64,
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        Self {
            max_deployments: 16,
            port: 8080,
            ready_path: "/v2/health/ready".to_owned(),
            startup_timeout_seconds: 120,
            limits: TaskLimits { cpu_seconds: 0, ..TaskLimits::default() },
            max_log_bytes: 16 << 20,
        }
    }
}

/// A deployment as it is now: what it runs and how its replicas are.
#[derive(Debug, Clone)]
pub struct DeploymentStatus {
    /// What it runs.
    pub record: DeploymentRecord,
    /// Its state.
    pub state: DeploymentState,
    /// `PredictorReady`, then `Ready`.
    pub conditions: Vec<Condition>,
    /// Replicas answering now.
    pub ready: u32,
    /// Restarts so far.
    pub restarts: u32,
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    /// Pulling its image, or its replicas are starting.
    Starting,
    /// A replica answers.
    Ready,
    /// Its image cannot be had, or its replicas keep failing.
    Failed,
}

/// Why a deployment cannot be made or run.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The server runs as many as allowed.
    #[error("this server runs {0} deployments, the most allowed (deployments.max_deployments)")]
    TooMany(usize),
    /// No sandbox or image store here.
    #[error("deployments need the sandbox (bubblewrap) and the image store, which this server does not have")]
    NoRuntime,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The deployments of this server.
#[derive(Debug)]
pub struct Deployments {
    config: DeploymentsConfig,
    store: Arc<dyn DeploymentRepository>,
    assets: Arc<dyn AssetFiles>,
    runtime: Option<(Arc<Images>, Arc<Confinement>)>,
    dir: PathBuf,
    live: Mutex<HashMap<String, Arc<Live>>>,
}

/// One running deployment.
#[derive(Debug)]
struct Live {
    /// While its image is pulled: nothing; then its supervisor, or why it cannot run.
    running: Mutex<Running>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Bumped whenever anything a client sees may have changed; closed when the deployment goes.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Live {
    fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[derive(Debug)]
enum Running {
    Pulling,
    /// The supervisor, and the image's root held while it runs.
    Supervised(Box<(Supervisor, StepImage)>),
    Failed {
        reason: &'static str,
        message: String,
        since: SystemTime,
    },
}

impl Deployments {
    /// Deployments kept in `store`, their replicas' directories under `dir`, run by `runtime` (the executor's image
    /// store and sandbox) when the server has it.
    pub fn new(
        config: DeploymentsConfig,
        store: Arc<dyn DeploymentRepository>,
        assets: Arc<dyn AssetFiles>,
        runtime: Option<(Arc<Images>, Arc<Confinement>)>,
        dir: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self { config, store, assets, runtime, dir, live: Mutex::new(HashMap::new()) })
    }

    /// Where they are kept.
    pub fn store(&self) -> &Arc<dyn DeploymentRepository> {
        &self.store
    }

    /// Starts every stored deployment again: a server's replicas end with it. How many.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, DeployError> {
        if self.runtime.is_none() {
            return Ok(0);
        }
        let stored = self.store.list(None).await?;
        for record in &stored {
            self.start(record.clone());
        }
        Ok(stored.len())
    }

    /// Stores `record` under a fresh inference id (drawn again if taken) and starts it; the record as stored.
    pub async fn create(self: &Arc<Self>, mut record: DeploymentRecord) -> Result<DeploymentRecord, DeployError> {
        if self.runtime.is_none() {
            return Err(DeployError::NoRuntime);
        }
        let running = self.live.lock().map(|live| live.len()).unwrap_or(usize::MAX);
        if running >= self.config.max_deployments {
            return Err(DeployError::TooMany(self.config.max_deployments));
        }
        for _ in 0..8 {
            record.id = super::entities::new_inference_id();
            if self.store.insert(&record).await? {
                self.start(record.clone());
                return Ok(record);
            }
        }
        Err(DeployError::Store(StoreError::Corrupt("deployments".into(), "no free inference id".into())))
    }

    /// Stops `id`'s replicas and forgets it; false when there was no such deployment.
    pub async fn delete(&self, id: &str) -> Result<bool, DeployError> {
        let removed = self.store.delete(id).await?;
        let live = self.live.lock().ok().and_then(|mut live| live.remove(id));
        if let Some(live) = live {
            if let Some(task) = live.task.lock().ok().and_then(|mut task| task.take()) {
                task.abort();
            }
            let running = match live.running.lock() {
                Ok(mut running) => std::mem::replace(&mut *running, Running::Pulling),
                Err(_) => Running::Pulling,
            };
            if let Running::Supervised(supervised) = running {
                let (supervisor, _image) = *supervised;
                supervisor.stop().await;
            }
        }
        let dir = self.dir.join(id);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        Ok(removed)
    }

    /// Where replica `replica` of deployment `id` writes its output (the supervisor numbers each slot's log).
    pub fn log_path(&self, id: &str, replica: u32) -> PathBuf {
        self.dir.join(id).join("logs").join(format!("{PREDICTOR_LOG}.{replica}.log"))
    }

    /// A signal that changes whenever `id`'s status may have, and closes when it is deleted; `None` when it does
    /// not run here.
    pub fn changes(&self, id: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.live.lock().ok()?.get(id).map(|live| live.changed.subscribe())
    }

    /// `record` with its live status.
    pub fn status(&self, record: DeploymentRecord) -> DeploymentStatus {
        let live = self.live.lock().ok().and_then(|live| live.get(&record.id).cloned());
        let component = live.as_ref().and_then(|live| {
            live.running.lock().ok().map(|running| match &*running {
                Running::Pulling => None,
                Running::Supervised(supervised) => Some(Ok(supervised.0.status().borrow().clone())),
                Running::Failed { reason, message, since } => Some(Err((*reason, message.clone(), *since))),
            })
        });
        let (state, predictor, ready, restarts) = match component.flatten() {
            None if self.runtime.is_none() => {
                let why = DeployError::NoRuntime.to_string();
                (DeploymentState::Failed, condition(ConditionStatus::False, "NoRuntime", &why, SystemTime::now()), 0, 0)
            }
            None => {
                let condition = condition(ConditionStatus::Unknown, "Starting", "pulling the image", SystemTime::now());
                (DeploymentState::Starting, condition, 0, 0)
            }
            Some(Err((reason, message, since))) => {
                (DeploymentState::Failed, condition(ConditionStatus::False, reason, &message, since), 0, 0)
            }
            Some(Ok(ComponentStatus { ready, condition, restarts, .. })) => {
                let state = match (ready, condition.reason.as_str()) {
                    (1.., _) => DeploymentState::Ready,
                    (0, "CrashLoopBackOff" | "CannotStart") => DeploymentState::Failed,
                    _ => DeploymentState::Starting,
                };
                (state, condition, ready, restarts)
            }
        };
        let ready_condition = Condition { kind: "Ready", ..predictor.clone() };
        DeploymentStatus { record, state, conditions: vec![predictor, ready_condition], ready, restarts }
    }

    /// Pulls `record`'s image as its creator and supervises its replicas, in the background.
    fn start(self: &Arc<Self>, record: DeploymentRecord) {
        let live = Arc::new(Live {
            running: Mutex::new(Running::Pulling),
            task: Mutex::new(None),
            changed: tokio::sync::watch::channel(0).0,
        });
        if let Ok(mut all) = self.live.lock() {
            all.insert(record.id.clone(), live.clone());
        }
        // Weak both ways: a deployment whose server stopped, or that was deleted, ends its task, and the task never
        // keeps the server's deployments (and with them the image store) alive.
        let (weak_self, weak_live) = (Arc::downgrade(self), Arc::downgrade(&live));
        let handle = tokio::spawn(async move {
            // An image that cannot be had now (the registry or asset-svc away) is tried again, less and less often;
            // the deployment says why meanwhile.
            let mut backoff = Duration::from_secs(1);
            loop {
                let Some(this) = weak_self.upgrade() else { return };
                let running = this.run(&record).await;
                drop(this);
                let retry = matches!(running, Running::Failed { .. });
                let status = match &running {
                    Running::Supervised(supervised) => Some(supervised.0.status()),
                    _ => None,
                };
                let Some(live) = weak_live.upgrade() else { return };
                if let Ok(mut slot) = live.running.lock() {
                    *slot = running;
                }
                live.touch();
                drop(live);
                if let Some(mut status) = status {
                    // The replicas' changes, passed on until the supervisor goes.
                    while status.changed().await.is_ok() {
                        let Some(live) = weak_live.upgrade() else { return };
                        live.touch();
                    }
                    return;
                }
                if !retry {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        });
        if let Ok(mut task) = live.task.lock() {
            *task = Some(handle);
        }
    }

    async fn run(&self, record: &DeploymentRecord) -> Running {
        let failed = |reason, message: String| Running::Failed { reason, message, since: SystemTime::now() };
        let Some((images, confinement)) = &self.runtime else {
            return failed("CannotStart", DeployError::NoRuntime.to_string());
        };
        let Some(creator) = Principal::parse(&record.creator) else {
            return failed("CannotStart", format!("{} is not a principal", record.creator));
        };
        let image = match images.root_for(self.assets.as_ref(), &creator, &record.predictor_image).await {
            Ok(image) => image,
            Err(problem) => return failed("ImagePullFailed", problem.to_string()),
        };
        let root = &image.lease.root;
        let home = self.dir.join(&record.id);
        let replica = ReplicaSpec {
            id: format!("{}-predictor", record.id),
            rootfs: root.rootfs.clone(),
            config: root.unpacked.config.clone(),
            // As the product we follow passes it: the model is served under the inference id.
            args: vec!["--model_name".to_owned(), record.id.clone()],
            env: Vec::new(),
            port: self.config.port,
            dir: home.join("replicas"),
            log: home.join("logs").join(format!("{PREDICTOR_LOG}.log")),
            max_log_bytes: self.config.max_log_bytes,
            sockets: self.dir.join("sockets"),
            network: record.allow_network,
            limits: self.config.limits,
        };
        let component = Component {
            condition: "PredictorReady",
            replica,
            replicas: record.replicas,
            ready_path: self.config.ready_path.clone(),
            startup_timeout: Duration::from_secs(self.config.startup_timeout_seconds),
            probe_every: Duration::from_millis(100),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        Running::Supervised(Box::new((Supervisor::start(confinement.clone(), component), image)))
    }
}

fn condition(status: ConditionStatus, reason: &str, message: &str, since: SystemTime) -> Condition {
    Condition {
        kind: "PredictorReady",
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
        transition_time: since,
    }
}
