//! One replica: its image's root shown read-only as `/` (as for a pipeline step), its own writable directory at
//! `/highwind/serve`, a uid of its own, its limits, and a network namespace of its own where it listens on its
//! port (8080, as KServe's servers do). The platform makes a listening Unix socket in a directory only it can enter
//! and hands it down; the sandbox's init accepts there and relays each connection to the port inside. So replicas
//! that all listen on 8080 run side by side, nothing on the machine but the platform can call a replica, and a
//! replica reaches nothing on the machine (nor anywhere, unless its deployment allows network).

use std::{
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use highwind_runtime::manifest::ImageConfig;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::executor::{
    inside::Inside,
    process::{self, Exit, ImageRun, Listening},
    sandbox::{Confinement, Lease, TaskLimits, image},
};

/// Longest path a Unix socket may have (`sun_path`, with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Most bytes of a probe's answer read.
const MAX_PROBE_BYTES: usize = 64 * 1024;

/// What a replica runs and where.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// Names the replica's processes (the task marker) and its socket: `<deployment>-predictor-0`.
    pub id: String,
    /// The image's unpacked root.
    pub rootfs: PathBuf,
    /// The image's config: entrypoint, command, environment, working directory.
    pub config: ImageConfig,
    /// The container's `args`, in place of the image's `Cmd` (as on Kubernetes); empty: the image's `Cmd`.
    pub args: Vec<String>,
    /// Variables besides the image's `Env`; they win.
    pub env: Vec<(String, String)>,
    /// The port it listens on inside.
    pub port: u16,
    /// Its own directory, made afresh and given to its uid.
    pub dir: PathBuf,
    /// Where its output goes (outside `dir`, so it cannot swap the log for a link).
    pub log: PathBuf,
    /// Most bytes of output kept.
    pub max_log_bytes: u64,
    /// Where its relay socket is made: a directory of the server's alone.
    pub sockets: PathBuf,
    /// Whether it may reach other hosts (never the machine's loopback).
    pub network: bool,
    /// Its limits.
    pub limits: TaskLimits,
}

/// How waiting for a replica to be ready ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Its readiness path answered 2xx.
    Ready,
    /// It exited first.
    Exited(Exit),
    /// Neither, in the time given.
    TimedOut,
}

/// A started replica; [`Replica::stop`] ends it (dropping it kills its processes too).
#[derive(Debug)]
pub struct Replica {
    running: process::Running,
    socket: PathBuf,
    _lease: Lease,
}

impl Replica {
    /// Starts `spec` confined by `confinement`; the error says why it cannot run.
    pub async fn start(confinement: &Arc<Confinement>, spec: ReplicaSpec) -> Result<Self, String> {
        if !confinement.runs_images() {
            return Err("replicas run in their images, which this server cannot do (no static init)".to_owned());
        }
        let argv: Vec<String> = spec
            .config
            .entrypoint
            .iter()
            .chain(if spec.args.is_empty() { &spec.config.cmd } else { &spec.args })
            .cloned()
            .collect();
        if argv.is_empty() {
            return Err("the image names no entrypoint or command, and the deployment gives none".to_owned());
        }
        let lease = confinement.lease();
        let (dir, identity) = (spec.dir.clone(), lease.identity);
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("tmp"))?;
            Confinement::hand_over(&dir, identity)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot prepare the replica's directory: {e}"))?;
        let (listener, socket) = listen(&spec.sockets, &spec.id)?;
        let (workdir, _) = image::workdir(&spec.rootfs, &spec.config.working_dir);
        let sandbox = process::Sandbox {
            confinement: confinement.clone(),
            readable: Vec::new(),
            network: spec.network,
            identity,
            limits: spec.limits,
            inside: Inside::serving(&spec.dir),
            image: Some(ImageRun { rootfs: spec.rootfs.clone(), env: spec.config.env.clone(), workdir }),
            packages: None,
            relay: Some(Listening { listener: Arc::new(listener), port: spec.port }),
        };
        let running = process::start(&process::Spec {
            argv,
            dir: spec.dir.clone(),
            log: spec.log.clone(),
            max_log_bytes: spec.max_log_bytes,
            env: spec.env.clone(),
            task_uid: spec.id.clone(),
            path: String::new(),
            sandbox: Some(sandbox),
        })?;
        // Only the sandbox holds the socket now: once it is gone, a connection is refused at once rather than left
        // waiting in the backlog.
        Ok(Self { running, socket, _lease: lease })
    }

    /// A connection to the server inside, through the relay.
    pub async fn connect(&self) -> std::io::Result<UnixStream> {
        UnixStream::connect(&self.socket).await
    }

    /// What `GET path` answers, status and body (at most 64 KiB); `None` when nothing answers (the server is not
    /// listening yet, or is gone).
    pub async fn get(&self, path: &str) -> Option<(u16, Bytes)> {
        let stream = self.connect().await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
        let driving = tokio::spawn(connection);
        let request = http::Request::get(path).header(http::header::HOST, "localhost").body(Empty::<Bytes>::new());
        let answer = async {
            let response = sender.send_request(request.ok()?).await.ok()?;
            let status = response.status().as_u16();
            let body = http_body_util::Limited::new(response.into_body(), MAX_PROBE_BYTES).collect().await.ok()?;
            Some((status, body.to_bytes()))
        }
        .await;
        driving.abort();
        answer
    }

    /// Waits until `GET path` answers 2xx, probing every `every`, for at most `timeout`.
    pub async fn until_ready(&mut self, path: &str, every: Duration, timeout: Duration) -> Readiness {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(exit) = self.running.exited() {
                return Readiness::Exited(exit);
            }
            if let Some((status, _)) = self.get(path).await
                && (200..300).contains(&status)
            {
                return Readiness::Ready;
            }
            if tokio::time::Instant::now() + every > deadline {
                return Readiness::TimedOut;
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<Exit> {
        self.running.exited()
    }

    /// Its relay socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its process group: killing it stops the replica.
    pub fn group(&self) -> i32 {
        self.running.group
    }

    /// Waits for it to exit by itself.
    pub async fn wait(self) -> Exit {
        self.running.wait().await.0
    }

    /// Stops it: every process of its sandbox killed, then waited for.
    pub async fn stop(self) -> Exit {
        process::kill_group(self.running.group);
        let (exit, _) = self.running.wait().await;
        let _ = tokio::fs::remove_file(&self.socket).await;
        exit
    }
}

/// A listening socket for replica `id` in `sockets` (made 0700 if missing); its path.
fn listen(sockets: &Path, id: &str) -> Result<(UnixListener, PathBuf), String> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| format!("cannot make the replica's socket in {}: {e}", sockets.display());
    std::fs::create_dir_all(sockets).map_err(failed)?;
    std::fs::set_permissions(sockets, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    let path = sockets.join(format!("{id}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!("{} is too long for a socket (at most {MAX_SOCKET_PATH} bytes)", path.display()));
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        _ => {}
    }
    let listener = UnixListener::bind(&path).map_err(failed)?;
    Ok((listener, path))
}

#[cfg(test)]
pub(crate) mod tests;
