//! The work a task hands off: a container task's attempts as processes (slot, sandbox, retries, outputs, cache)
//! and an importer's download of an asset version. Each reports to its run's driver through events.

use std::{
    path::{Component, Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;

mod setup;

use super::{
    Shared, cache, collect, creator,
    images::ImageMode,
    launch,
    local::LocalExecutor,
    process::{self, Exit},
    python_env,
};
use crate::{
    ir::spec::RetryPolicy,
    runs::entities::{Artifact, Failure, Run, State, TaskImage, Values},
};

/// `google.rpc.Code` values used in failures.
pub(super) const UNKNOWN: i32 = 2;
pub(super) const INVALID_ARGUMENT: i32 = 3;
pub(super) const NOT_FOUND: i32 = 5;
pub(super) const FAILED_PRECONDITION: i32 = 9;
pub(super) const CANCELLED: i32 = 1;
pub(super) const UNAVAILABLE: i32 = 14;

/// How a task's work ended.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) state: State,
    pub(super) outputs: Values,
    pub(super) error: Option<Failure>,
    pub(super) exit_code: Option<i32>,
    pub(super) log_truncated: bool,
    /// Taken from the cache: what the task's note says about where from.
    pub(super) cached_from: Option<String>,
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        Self {
            state: State::Failed,
            outputs: Values::default(),
            error: Some(failure),
            exit_code: None,
            log_truncated: false,
            cached_from: None,
        }
    }
}

impl Outcome {
    pub(super) fn failed(code: i32, reason: &str, message: impl Into<String>) -> Self {
        Self::from(Failure::new(code, reason, message))
    }
}

/// What dispatched work tells its driver.
#[derive(Debug)]
pub(super) enum Event {
    Started { path: String, attempt: i32, message: String, image: Option<TaskImage> },
    Waiting { path: String, message: String },
    Finished { path: String, outcome: Outcome },
}

/// `highwind://assets/{a}/versions/{v}` → `assets/{a}/versions/{v}`; anything else is refused, never fetched.
pub(super) fn importer_version(uri: &str) -> Result<String, Failure> {
    let refused = |why: &str| {
        Failure::new(
            INVALID_ARGUMENT,
            "IMPORTER_URI_REFUSED",
            format!(
                "importer URI {uri:?} refused: {why}; bind the importer to an asset version or use highwind://assets/{{asset}}/versions/{{version}}"
            ),
        )
    };
    let rest =
        uri.strip_prefix("highwind://").ok_or_else(|| refused("only Highwind asset versions can be imported"))?;
    let (asset, version) = rest
        .strip_prefix("assets/")
        .and_then(|r| r.split_once("/versions/"))
        .ok_or_else(|| refused("it names no asset version"))?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain(asset) || !plain(version) {
        return Err(refused("it names no asset version"));
    }
    Ok(format!("assets/{asset}/versions/{version}"))
}

/// Downloads asset version `version` into `dest` as artifact `key`: a one-file version is that file, any other a
/// directory.
pub(super) async fn fetch_version(
    shared: &Shared,
    run: &Run,
    version: &str,
    dest: &Path,
    key: &str,
    artifact_type: &crate::ir::spec::ArtifactType,
    producer: &str,
) -> Result<Artifact, Failure> {
    let Some(principal) = creator(run) else {
        return Err(Failure::new(INVALID_ARGUMENT, "INPUT_UNAVAILABLE", "the run's creator is not a principal"));
    };
    let unavailable = |e: crate::assets::ReadError| match e {
        crate::assets::ReadError::Unavailable(why) => Failure::new(UNAVAILABLE, "INPUT_UNAVAILABLE", why),
        other => Failure::new(NOT_FOUND, "INPUT_UNAVAILABLE", other.to_string()),
    };
    let info = shared.assets.version(&principal, version).await.map_err(unavailable)?;
    if !info.usable {
        return Err(unavailable(crate::assets::ReadError::NotReady(info.name)));
    }
    let wanted = match artifact_type.schema_title.as_str() {
        "system.Dataset" => Some(highwind_proto::asset::v1::AssetKind::Dataset),
        "system.Model" => Some(highwind_proto::asset::v1::AssetKind::Model),
        _ => None,
    };
    if wanted.is_some_and(|w| w != info.kind) {
        return Err(Failure::new(
            INVALID_ARGUMENT,
            "INPUT_KIND_MISMATCH",
            format!(
                "{} is a {:?} asset; {} needs a {:?}",
                info.name,
                info.kind,
                artifact_type.schema_title,
                wanted.unwrap_or_default()
            ),
        ));
    }
    let mut local = dest.to_path_buf();
    for (file, _) in &info.files {
        let relative = Path::new(file);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Failure::new(
                INVALID_ARGUMENT,
                "INPUT_UNAVAILABLE",
                format!("file {file:?} has no safe local path"),
            ));
        }
        let target: PathBuf = dest.join(relative);
        shared.assets.download(&principal, &info.name, file, &target).await.map_err(unavailable)?;
        local = target;
    }
    if info.files.len() != 1 {
        local = dest.to_path_buf();
        tokio::fs::create_dir_all(&local)
            .await
            .map_err(|e| Failure::new(UNAVAILABLE, "INPUT_UNAVAILABLE", e.to_string()))?;
    }
    Ok(Artifact {
        key: key.to_owned(),
        artifact_type: artifact_type.schema_title.clone(),
        schema_version: artifact_type.schema_version.clone(),
        uri: format!("highwind://{}", info.name),
        path: local.display().to_string(),
        metadata: serde_json::Map::new(),
        asset_version: info.name.clone(),
        producer_task: producer.to_owned(),
    })
}

/// A container task's work: wait for a slot, run each attempt, collect outputs.
pub(super) struct ContainerWork {
    pub(super) shared: Arc<Shared>,
    pub(super) executor: Arc<LocalExecutor>,
    pub(super) events: mpsc::UnboundedSender<Event>,
    pub(super) path: String,
    pub(super) run_id: String,
    pub(super) uid: String,
    pub(super) dir: PathBuf,
    pub(super) image: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) retry: RetryPolicy,
    pub(super) first_attempt: i32,
    pub(super) group: Arc<AtomicI32>,
    pub(super) creator: String,
    pub(super) run_uuid: uuid::Uuid,
    /// Set when the run and the task both enable caching.
    pub(super) fingerprint: Option<String>,
    /// Input artifact paths the sandbox lets the task read.
    pub(super) readable: Vec<PathBuf>,
    /// The run allows network access.
    pub(super) network: bool,
    /// Whether the step runs in its image.
    pub(super) image_mode: ImageMode,
}

impl ContainerWork {
    pub(super) async fn run(self, mut prepared: launch::Prepared) {
        if let Some(hit) = self.cached().await {
            let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: hit });
            return;
        }
        let _slot = self.executor.slots.acquire(&self.creator).await;
        let mut notes = Vec::new();
        let image = match self.step_image(&mut notes).await {
            Ok(image) => image,
            Err(failure) => {
                let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: failure.into() });
                return;
            }
        };
        let mut image_run = None;
        let mut python_path: Option<PathBuf> = None;
        let (mut package_env, mut package_dir) = (Vec::new(), None);
        let mut record = match &image {
            Some(image) => image.record(),
            None => TaskImage { reference: self.image.clone(), ..TaskImage::default() },
        };
        if let Some(image) = &image {
            let config = &image.lease.root.unpacked.config;
            let rootfs = image.lease.root.rootfs.clone();
            match setup::image_user(&rootfs, &config.user).await {
                Ok(user) => record.user = user.to_string(),
                Err(why) => {
                    let message = format!("image {}: {why}", self.image);
                    let failure = Outcome::failed(FAILED_PRECONDITION, "IMAGE_USER_UNKNOWN", message);
                    let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: failure });
                    return;
                }
            }
            let (workdir, why) = super::sandbox::image::workdir(&rootfs, &config.working_dir);
            notes.push(image.note());
            notes.extend(why);
            // As Kubernetes runs a container: no command means the image's entrypoint, and no arguments either
            // its command too.
            if !prepared.command_given {
                let args =
                    if prepared.argv.is_empty() { config.cmd.clone() } else { std::mem::take(&mut prepared.argv) };
                prepared.argv = config.entrypoint.iter().cloned().chain(args).collect();
            }
            image_run = Some(process::ImageRun { rootfs, env: config.env.clone(), workdir });
            if is_lightweight(&prepared.argv) {
                // The preamble runs in the image, as on KFP, with the packages the configuration offers.
                package_env = self.executor.package_sources.env(self.network);
                package_dir = self.executor.package_sources.dir.clone();
            }
        } else if is_lightweight(&prepared.argv) {
            // On the host the preamble would install into the host's Python: it is read, never run.
            let wanted = python_env::packages(&prepared.argv[2], !self.kfp_importable().await);
            prepared.argv.drain(..3);
            if wanted.is_empty() {
                notes.push("pip preamble skipped: kfp already imports".to_owned());
            } else {
                match self.python_env(&wanted).await {
                    Ok((dir, installed)) => {
                        let how = if installed { "installed for it" } else { "from its cache" };
                        notes.push(format!("packages {} {how} (PYTHONPATH)", wanted.requirements.join(" ")));
                        python_path = Some(dir);
                    }
                    Err(failure) => {
                        let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: failure.into() });
                        return;
                    }
                }
            }
        }
        if prepared.argv.is_empty() {
            let failure = Outcome::failed(INVALID_ARGUMENT, "TASK_NOT_STARTED", "the step names no command to run");
            let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: failure });
            return;
        }
        let lease = self.executor.confinement.as_ref().map(|c| c.lease());
        let sandbox = match (&self.executor.confinement, &lease) {
            (Some(confinement), Some(lease)) => Some(process::Sandbox {
                confinement: confinement.clone(),
                readable: self.readable.iter().cloned().chain(python_path.clone()).collect(),
                network: self.network,
                identity: lease.identity,
                limits: self.shared.config.limits,
                inside: prepared.inside.clone(),
                image: image_run,
                packages: package_dir,
                relay: None,
            }),
            _ if self.shared.config.sandbox == super::SandboxMode::Bwrap => {
                let failure = Outcome::failed(
                    UNKNOWN,
                    "TASK_NOT_STARTED",
                    "the sandbox is required and bwrap, setpriv or prlimit is not installed",
                );
                let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome: failure });
                return;
            }
            _ => {
                notes.push("no sandbox: bwrap, setpriv or prlimit is not installed".to_owned());
                None
            }
        };
        let message = notes.join("; ");
        let retries = self.retry.max_retry_count.max(0);
        let mut attempt = self.first_attempt;
        let mut retried = 0;
        let outcome = loop {
            // Each attempt starts from empty outputs: nothing an earlier attempt wrote may pass for this one's.
            if let Err(e) = self.fresh_attempt(&prepared, sandbox.as_ref(), attempt).await {
                break Outcome::failed(
                    UNKNOWN,
                    "TASK_NOT_STARTED",
                    format!("cannot prepare the task's directory: {e}"),
                );
            }
            let _ = self.events.send(Event::Started {
                path: self.path.clone(),
                attempt,
                message: message.clone(),
                image: Some(record.clone()),
            });
            let mut env = vec![("_KFP_RUNTIME".to_owned(), "true".to_owned())];
            if let Some(dir) = &python_path {
                env.push(("PYTHONPATH".to_owned(), dir.display().to_string()));
            }
            env.extend(package_env.iter().cloned());
            env.extend(self.env.iter().cloned());
            let spec = process::Spec {
                argv: prepared.argv.clone(),
                dir: self.dir.clone(),
                log: super::attempt_log(&self.shared.config, self.run_uuid, &self.uid, attempt),
                max_log_bytes: self.shared.config.max_log_bytes,
                env,
                task_uid: self.uid.clone(),
                path: super::task_path(&self.shared.config),
                sandbox: sandbox.clone(),
            };
            let running = match process::start(&spec) {
                Ok(running) => running,
                Err(message) => break Outcome::failed(UNKNOWN, "TASK_NOT_STARTED", message),
            };
            self.group.store(running.group, Ordering::SeqCst);
            let (exit, log_truncated) = running.wait().await;
            self.group.store(0, Ordering::SeqCst);
            let outcome = match exit {
                Exit::Code(0) => match collect::collect(&prepared, &self.dir, &self.run_id, &self.path).await {
                    Ok(outputs) => Outcome {
                        state: State::Succeeded,
                        outputs,
                        error: None,
                        exit_code: Some(0),
                        log_truncated,
                        cached_from: None,
                    },
                    Err(e) => Outcome {
                        exit_code: Some(0),
                        log_truncated,
                        ..Outcome::failed(INVALID_ARGUMENT, e.reason, e.message)
                    },
                },
                Exit::Code(code) => {
                    let (reason, message) = match self.limit_reached(code, &spec.log, sandbox.as_ref()).await {
                        Some((reason, message)) => (reason, format!("task {:?}: {message}", self.path)),
                        None => ("TASK_FAILED", format!("task {:?} exited with status {code}", self.path)),
                    };
                    Outcome { exit_code: Some(code), log_truncated, ..Outcome::failed(UNKNOWN, reason, message) }
                }
                Exit::NotStarted => Outcome::failed(UNKNOWN, "TASK_NOT_STARTED", "the process could not be waited for"),
            };
            if outcome.state == State::Succeeded || retried >= retries {
                if outcome.state == State::Succeeded
                    && let Some(fingerprint) = &self.fingerprint
                {
                    let remembered = self
                        .shared
                        .store
                        .remember_outputs(&self.creator, fingerprint, self.run_uuid, &self.path, &outcome.outputs)
                        .await;
                    if let Err(e) = remembered {
                        tracing::warn!(task = %self.path, error = %e, "cannot remember the task's outputs for caching");
                    }
                }
                break outcome;
            }
            retried += 1;
            attempt += 1;
            let wait = backoff(&self.retry, retried);
            let message =
                format!("attempt {} failed; retry {retried} of {retries} in {}s", attempt - 1, wait.as_secs_f64());
            let _ = self.events.send(Event::Waiting { path: self.path.clone(), message });
            tokio::time::sleep(wait).await;
        };
        let _ = self.events.send(Event::Finished { path: self.path.clone(), outcome });
    }

    /// The outputs of an earlier identical task of the same creator whose files are all still there.
    async fn cached(&self) -> Option<Outcome> {
        let fingerprint = self.fingerprint.as_ref()?;
        let entries = match self.shared.store.cached_outputs(&self.creator, fingerprint, 8).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(task = %self.path, error = %e, "cannot read the task cache; running the task");
                return None;
            }
        };
        let (run, task, outputs) = cache::first_still_there(entries).await?;
        Some(Outcome {
            state: State::Succeeded,
            outputs,
            error: None,
            exit_code: None,
            log_truncated: false,
            cached_from: Some(format!("cache hit: outputs of runs/{run}/tasks/{task}")),
        })
    }

    /// Clears what an earlier attempt left (see [`fresh_attempt`]) and, in a sandbox, gives the directory to the
    /// task's uid; on a blocking thread, since an earlier attempt chose what is in there.
    async fn fresh_attempt(
        &self,
        prepared: &launch::Prepared,
        sandbox: Option<&process::Sandbox>,
        attempt: i32,
    ) -> std::io::Result<()> {
        let (dir, executor_output) = (self.dir.clone(), prepared.executor_output.clone());
        let log = super::attempt_log(&self.shared.config, self.run_uuid, &self.uid, attempt);
        let identity = sandbox.map(|s| s.identity);
        tokio::task::spawn_blocking(move || {
            fresh_attempt(&dir, &executor_output, &log)?;
            match identity {
                Some(identity) => super::sandbox::Confinement::hand_over(&dir, identity),
                None => Ok(()),
            }
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Whether a sandboxed task that exited with `code` was stopped by one of its limits, and which.
    async fn limit_reached(
        &self,
        code: i32,
        log: &Path,
        sandbox: Option<&process::Sandbox>,
    ) -> Option<(&'static str, String)> {
        let limits = sandbox?.limits;
        let log = log.to_path_buf();
        tokio::task::spawn_blocking(move || super::sandbox::limits::exceeded(code, &log, &limits)).await.ok().flatten()
    }

    async fn kfp_importable(&self) -> bool {
        let path = super::task_path(&self.shared.config);
        *self
            .executor
            .kfp_importable
            .get_or_init(|| async move {
                let mut probe = tokio::process::Command::new("python3");
                probe
                    .args(["-c", "import kfp"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                if !path.is_empty() {
                    probe.env("PATH", path);
                }
                probe.status().await.is_ok_and(|s| s.success())
            })
            .await
    }
}

/// Removes what an earlier attempt left in the output locations and recreates their directories, and gives the
/// attempt a new empty log file and an empty `tmp` directory. Whatever an earlier attempt left there (a FIFO at
/// the log path would block the open for writing for ever) is removed, never followed. Blocking.
fn fresh_attempt(dir: &Path, executor_output: &Path, log: &Path) -> std::io::Result<()> {
    for name in ["outputs", "parameters", "tmp"] {
        remove_whatever_is_at(&dir.join(name))?;
        std::fs::create_dir_all(dir.join(name))?;
    }
    remove_whatever_is_at(executor_output)?;
    remove_whatever_is_at(log)?;
    if let Some(logs) = log.parent() {
        std::fs::create_dir_all(logs)?;
    }
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        std::fs::OpenOptions::new().write(true).create_new(true),
        libc::O_NOFOLLOW,
    )
    .open(log)?;
    Ok(())
}

/// Removes the file, link or directory tree at `path`, if any; a link is removed, not followed.
fn remove_whatever_is_at(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// The compiled command of a lightweight Python component: `sh -c "<pip install kfp…> && \"$0\" \"$@\"" …`.
fn is_lightweight(argv: &[String]) -> bool {
    argv.len() > 3
        && argv[0] == "sh"
        && argv[1] == "-c"
        && argv[2].contains("pip install")
        && argv[2].trim_end().ends_with("\"$0\" \"$@\"")
}

/// The wait before retry number `n` (from 1): `backoffDuration × backoffFactor^(n-1)`, at most
/// `backoffMaxDuration`.
fn backoff(policy: &RetryPolicy, n: i32) -> Duration {
    let seconds =
        |text: &str, default: f64| text.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()).unwrap_or(default);
    let base = seconds(&policy.backoff_duration, 0.0);
    let factor = if policy.backoff_factor > 0.0 { policy.backoff_factor } else { 2.0 };
    let max = seconds(&policy.backoff_max_duration, 3600.0);
    let wait = (base * factor.powi(n - 1)).min(max).max(0.0);
    Duration::from_secs_f64(wait)
}
