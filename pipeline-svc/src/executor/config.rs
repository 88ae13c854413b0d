//! The embedded executor's configuration (`HIGHWIND__PIPELINE__EXECUTOR__<KEY>`).

use std::path::PathBuf;

use super::{images, sandbox};

/// Configuration of the embedded executor (`HIGHWIND__PIPELINE__EXECUTOR__<KEY>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Where runs keep their task directories, artifacts and logs.
    pub data_dir: PathBuf,
    /// Most task processes at once; 0 means one per CPU core.
    pub parallelism: usize,
    /// Most bytes of a task attempt's log kept; the rest is dropped with a marker line.
    pub max_log_bytes: u64,
    /// `PATH` given to tasks; empty means the server's own, so the tools its user installed are found.
    pub task_path: String,
    /// How tasks are confined: `auto` (bubblewrap when `bwrap` is on the server's PATH, else none), `bwrap`
    /// (required: tasks fail without it) or `none`.
    pub sandbox: SandboxMode,
    /// More paths never mounted into a task's sandbox besides `data_dir` (the platform's data, secrets, blobs).
    pub hide: Vec<PathBuf>,
    /// Host paths tasks may read besides the system directories (`/usr`, `/etc`, `/opt`, `/lib*`) and the tools on
    /// `task_path`: data a pipeline reads in place, say.
    pub read_only: Vec<PathBuf>,
    /// The first uid of the range tasks run as when the server runs as root (one uid per running task).
    pub task_uids: u32,
    /// Limits of every task's processes.
    pub limits: sandbox::TaskLimits,
    /// Most tasks one run holds once expanded, sub-DAGs and loop iterations counted; 0 means no limit.
    pub max_tasks_per_run: usize,
    /// Most ParallelFor items one run's loops hold in all (every loop, every time it runs); 0 means no limit.
    pub max_loop_items: usize,
    /// Most runs one creator has PENDING, RUNNING or CANCELING on this server at once; 0 means no limit.
    pub max_active_runs_per_user: usize,
    /// Steps in their own images: whether, from which registries, and the cache of unpacked images.
    pub images: images::ImagesConfig,
    /// A package index lightweight components' `packages_to_install` come from (`PIP_INDEX_URL`, reached over
    /// the run's network), in place of PyPI; empty: PyPI. An index the component names itself still wins.
    pub package_index_url: String,
    /// A directory of wheels and source archives those packages may come from (`PIP_FIND_LINKS`), shown to the
    /// step read-only at `/highwind/packages`; a step whose run has no network installs from it alone.
    pub package_dir: PathBuf,
}

/// How tasks are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Bubblewrap when available, else none.
    #[default]
    Auto,
    /// Bubblewrap, required.
    Bwrap,
    /// No sandbox: tasks run as the server's user with its view of the machine.
    None,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/runs"),
            parallelism: 0,
            max_log_bytes: 16 * 1024 * 1024,
            task_path: String::new(),
            sandbox: SandboxMode::Auto,
            hide: Vec::new(),
            read_only: Vec::new(),
            task_uids: 1_500_000,
            limits: sandbox::TaskLimits::default(),
            max_tasks_per_run: 1_000,
            max_loop_items: 10_000,
            max_active_runs_per_user: 10,
            images: images::ImagesConfig::default(),
            package_index_url: String::new(),
            package_dir: PathBuf::new(),
        }
    }
}
