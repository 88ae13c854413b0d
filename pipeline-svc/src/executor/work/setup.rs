//! What a container task's attempts need before they start: the image the step runs in, by its run's image mode,
//! and on the host the packages its lightweight component asks for.

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use highwind_common::principal::Principal;
use highwind_runtime::user::ImageUser;

use super::{ContainerWork, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE};
use crate::{
    executor::{
        images::{ImageMode, ImageProblem, StepImage},
        process::{self, Exit},
        python_env,
    },
    runs::entities::Failure,
};

/// Most bytes of pip's output quoted when it fails.
const MAX_PIP_TAIL: usize = 2_000;

/// The user the image's config names, resolved in its root (on the blocking pool: it reads the image's files).
pub(super) async fn image_user(rootfs: &Path, user: &str) -> Result<ImageUser, String> {
    let (rootfs, user) = (rootfs.to_path_buf(), user.to_owned());
    tokio::task::spawn_blocking(move || highwind_runtime::user::resolve(&rootfs, &user).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

impl ContainerWork {
    /// The image the step runs in, by the executor's image mode: `None` when it runs on the host (with a note that
    /// says why), or the failed outcome when its image is required and cannot be had, or may not be pulled.
    pub(super) async fn step_image(&self, notes: &mut Vec<String>) -> Result<Option<StepImage>, Failure> {
        let mode = self.image_mode;
        let mut on_host = |why: String| {
            if mode == ImageMode::Image {
                let message = format!("image {}: {why}", self.image);
                return Err(Failure::new(FAILED_PRECONDITION, "IMAGE_UNAVAILABLE", message));
            }
            notes.push(format!("image {} not used: {why}; the command runs on the host", self.image));
            Ok(None)
        };
        if mode == ImageMode::Host {
            return on_host("the executor runs steps on the host (executor.images.mode)".to_owned());
        }
        let images = match (&self.executor.images, &self.executor.confinement) {
            (Some(images), Some(confinement)) if confinement.runs_images() => images,
            _ => {
                return on_host(
                    "steps run in images only in the sandbox (bubblewrap) with the image store open".to_owned(),
                );
            }
        };
        let Some(creator) = Principal::parse(&self.creator) else {
            return on_host("the run's creator is not a principal".to_owned());
        };
        match images.root_for(self.shared.assets.as_ref(), &creator, &self.image).await {
            Ok(image) => Ok(Some(image)),
            Err(problem @ ImageProblem::UnknownRegistry { .. }) => on_host(problem.to_string()),
            Err(problem @ ImageProblem::BadReference(_)) if mode == ImageMode::Image => {
                Err(Failure::new(INVALID_ARGUMENT, "IMAGE_UNAVAILABLE", problem.to_string()))
            }
            Err(problem @ ImageProblem::BadReference(_)) => on_host(problem.to_string()),
            Err(problem @ ImageProblem::NotFound { .. }) => {
                Err(Failure::new(NOT_FOUND, "IMAGE_UNAVAILABLE", problem.to_string()))
            }
            Err(problem @ ImageProblem::Failed { .. }) => {
                Err(Failure::new(UNAVAILABLE, "IMAGE_UNAVAILABLE", problem.to_string()))
            }
        }
    }

    /// The directory holding `wanted` for this step's creator, installed now (true) or found in the cache: pip
    /// runs with `--target`, in the sandbox as a task uid of its own, with network (as the preamble would have
    /// had on KFP), never as root against the host's Python. A failure says what pip said last.
    pub(super) async fn python_env(&self, wanted: &python_env::Packages) -> Result<(PathBuf, bool), Failure> {
        let failed = |why: String| Failure::new(UNAVAILABLE, "PACKAGES_NOT_INSTALLED", why);
        let envs = self.executor.python_envs.as_ref().ok_or_else(|| {
            failed("the step's packages_to_install cannot be installed: the environment cache is not open".to_owned())
        })?;
        let config = &self.shared.config;
        let task_path = crate::executor::task_path(config);
        let log =
            crate::executor::run_dir(config, self.run_uuid).join("logs").join(format!("{}-packages.log", self.uid));
        let path = task_path.clone();
        let install = |work: PathBuf| async move {
            let lease = self.executor.confinement.as_ref().map(|c| c.lease());
            let sandbox = match (&self.executor.confinement, &lease) {
                (Some(confinement), Some(lease)) => Some(process::Sandbox {
                    confinement: confinement.clone(),
                    readable: Vec::new(),
                    network: true,
                    identity: lease.identity,
                    limits: config.limits,
                    inside: crate::executor::inside::Inside::host(),
                    image: None,
                    packages: self.executor.package_sources.dir.clone(),
                    relay: None,
                }),
                _ => None,
            };
            let identity = sandbox.as_ref().map(|s| s.identity);
            let target = work.clone();
            if let Some(identity) = identity {
                tokio::task::spawn_blocking(move || {
                    crate::executor::sandbox::Confinement::hand_over(&target, identity)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot prepare the environment: {e}"))?;
            }
            let mut argv: Vec<String> =
                ["python3", "-m", "pip", "install", "--quiet", "--no-warn-script-location"].map(str::to_owned).into();
            argv.extend(["--target".to_owned(), work.display().to_string()]);
            argv.extend(wanted.index_options.iter().cloned());
            argv.extend(wanted.requirements.iter().cloned());
            let spec = process::Spec {
                argv,
                dir: work.clone(),
                log: log.clone(),
                max_log_bytes: config.max_log_bytes,
                env: [
                    ("PIP_NO_CACHE_DIR".to_owned(), "1".to_owned()),
                    ("PIP_DISABLE_PIP_VERSION_CHECK".to_owned(), "1".to_owned()),
                ]
                .into_iter()
                .chain(self.executor.package_sources.env(true))
                .collect(),
                task_uid: self.uid.clone(),
                path,
                sandbox,
            };
            let running = process::start(&spec)?;
            self.group.store(running.group, Ordering::SeqCst);
            let (exit, _) = running.wait().await;
            self.group.store(0, Ordering::SeqCst);
            drop(lease);
            if exit != Exit::Code(0) {
                let said = tokio::fs::read(&log).await.unwrap_or_default();
                let tail = String::from_utf8_lossy(&said[said.len().saturating_sub(MAX_PIP_TAIL)..]).into_owned();
                return Err(format!("pip could not install {}: {}", wanted.requirements.join(" "), tail.trim()));
            }
            // Taken back from the task uid, which another task may hold next; what the install made for itself
            // (its TMPDIR) goes.
            let target = work.clone();
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(target.join("tmp"));
                match identity {
                    Some(_) => crate::executor::sandbox::Confinement::hand_over(
                        &target,
                        crate::executor::sandbox::Identity::Uid(nix::unistd::geteuid().as_raw()),
                    ),
                    None => Ok(()),
                }
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot keep the environment: {e}"))
        };
        envs.ensure(&self.creator, &task_path, wanted, install).await.map_err(failed)
    }
}
