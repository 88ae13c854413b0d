//! The one error type of the pipeline service. `api::error` maps it to `tonic::Status`, once.

use highwind_common::validation::Violations;

use crate::{
    assets::ReadError,
    executor::{EngineError, images::ImageProblem},
    ir::Issue,
    store::StoreError,
};

/// Why a pipeline operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No such run, task or asset version, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(String),
    /// A run has no task of that name; some of the names it has.
    #[error("{name} not found")]
    NoSuchTask {
        /// The task's name as asked for.
        name: String,
        /// Paths of the run's tasks, at most [`Error::TASKS_LISTED`].
        tasks: Vec<String>,
        /// How many tasks the run has in all.
        total: usize,
    },
    /// A task named by its key or display name matches several tasks (loop iterations, say).
    #[error("{name} names {} tasks", candidates.len())]
    AmbiguousTask {
        /// The task's name as asked for.
        name: String,
        /// The paths of the tasks it matches, at most [`Error::TASKS_LISTED`].
        candidates: Vec<String>,
    },
    /// The asset named as a pipeline version's is of another kind.
    #[error("{0} is not a PIPELINE asset")]
    NotPipeline(String),
    /// A run would add versions to an asset the caller may read but does not own.
    #[error("{0}: only its owner can add versions to it")]
    NotOwner(String),
    /// An asset version is not READY, or it or its asset is archived.
    #[error("{0} is not READY or is archived")]
    NotReady(String),
    /// A pipeline version holds no single IR file.
    #[error("{0} holds no single .yaml IR file")]
    NoIr(String),
    /// A stored pipeline version's IR no longer parses.
    #[error("{}: {}", .0.reason, .0.message)]
    Unparsable(Issue),
    /// A stored pipeline version's IR parses but no longer validates; the first error found.
    #[error("the pipeline version no longer validates: {} at {}: {}", .0.reason, .0.location, .0.message)]
    NoLongerValid(Issue),
    /// The run is not in a state that allows this.
    #[error("the run is {0}")]
    WrongState(&'static str),
    /// Another change to the run won a race.
    #[error("the run changed concurrently")]
    Conflict,
    /// The run cannot go to Kubeflow Pipelines.
    #[error("the run cannot go to Kubeflow Pipelines: {0}")]
    NotForKfp(KfpRefusal),
    /// Logs of Kubeflow Pipelines tasks are not captured here.
    #[error("logs of Kubeflow Pipelines tasks stay in the cluster")]
    LogsInKfp {
        /// The task's pod, empty when KFP has not named it yet.
        pod: String,
    },
    /// A log read would start past the end of a log that grows no more.
    #[error("offset {offset} is beyond the end of the log ({length} bytes)")]
    PastLogEnd {
        /// Where the read would start.
        offset: i64,
        /// The log's size.
        length: i64,
    },
    /// The creator already has as many active runs as allowed.
    #[error("{creator} already has {limit} active runs, the most allowed")]
    TooManyActiveRuns {
        /// Whose runs, e.g. `users/alice`.
        creator: String,
        /// The limit reached.
        limit: usize,
    },
    /// asset-svc could not answer.
    #[error("the asset service cannot answer: {0}")]
    AssetsUnavailable(String),
    /// The caller left before its work on the blocking pool finished.
    #[error("the call was abandoned before its work finished")]
    Abandoned,
    /// Work on the blocking pool panicked.
    #[error(transparent)]
    Blocking(#[from] tokio::task::JoinError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The call is for the service's administrators; what it would have done.
    #[error("{0} is for the platform's administrators")]
    NotAdministrator(&'static str),
    /// Steps run on the host here, so there is no image store.
    #[error("no image store here: {0}")]
    NoImageStore(&'static str),
    /// An image asked for cannot be had.
    #[error(transparent)]
    Image(#[from] ImageProblem),
    /// The image store's own files failed.
    #[error("image store: {0}")]
    ImageStore(std::io::Error),
    /// The caller may see the resource but not do this to it.
    #[error("{0}")]
    NotAllowed(String),
    /// usecase-svc could not answer.
    #[error("the use case service cannot answer: {0}")]
    UseCasesUnavailable(String),
    /// A use case's release cannot be deployed; the reason clients switch on.
    #[error("{message}")]
    NotDeployable {
        /// `NO_PREDICTOR`, `TRANSFORMER_NOT_SUPPORTED`, `IMAGE_NOT_DEPLOYABLE`, `NO_RUNTIME`.
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The server runs as many deployments as allowed.
    #[error("at most {0} deployments")]
    TooManyDeployments(usize),
}

/// Why Kubeflow Pipelines cannot take a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KfpRefusal {
    /// This server has no KFP backend.
    #[error("no Kubeflow Pipelines backend is configured")]
    NotConfigured,
    /// KFP runs' outputs stay in KFP's pipeline root, so they cannot have output destinations.
    #[error("its outputs would stay in KFP")]
    OutputDestinations,
    /// KFP reads input artifacts from object storage, never from asset versions.
    #[error("it takes asset inputs")]
    AssetInputs,
    /// KFP runs every step in its image.
    #[error("it asks for its steps to run on the host")]
    HostImageMode,
}

impl From<crate::serving::deployments::DeployError> for Error {
    fn from(error: crate::serving::deployments::DeployError) -> Self {
        use crate::serving::deployments::DeployError;
        match error {
            DeployError::TooMany(limit) => Self::TooManyDeployments(limit),
            DeployError::NoRuntime => Self::NotDeployable { reason: "NO_RUNTIME", message: error.to_string() },
            DeployError::Store(cause) => Self::Store(cause),
        }
    }
}

impl From<Violations> for Error {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<ReadError> for Error {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::NotFound(name) => Self::NotFound(name),
            ReadError::NotPipeline(asset) => Self::NotPipeline(asset),
            ReadError::NotReady(name) => Self::NotReady(name),
            ReadError::NoIr(name) => Self::NoIr(name),
            ReadError::Unavailable(why) => Self::AssetsUnavailable(why),
        }
    }
}

impl From<EngineError> for Error {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(cause) => Self::Store(cause),
            EngineError::WrongState(state) => Self::WrongState(state),
            EngineError::NoKfp => Self::NotForKfp(KfpRefusal::NotConfigured),
            EngineError::Conflict => Self::Conflict,
            EngineError::TooManyActiveRuns { creator, limit } => Self::TooManyActiveRuns { creator, limit },
        }
    }
}

impl Error {
    /// Most task names an error lists.
    pub const TASKS_LISTED: usize = 20;
}
