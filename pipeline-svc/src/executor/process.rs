//! Running one task process on the host: its own process group (so cancelling kills everything it started), a
//! scrubbed environment, and its stdout and stderr captured, interleaved, into a size-bounded log file.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    io::{Read, Write},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use command_fds::{CommandFdExt, FdMapping};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

use super::{
    inside::Inside,
    sandbox::{Confined, Confinement, Identity, InImage, SECCOMP_FDS, TaskLimits, image::Relay, network},
};

/// The environment variable that marks a task's processes, so a restarted server stops only its own.
pub const TASK_MARKER: &str = "HIGHWIND_TASK";

/// Variables of the server's environment a task keeps: what finds tools and sets the locale, nothing else.
const KEPT: [&str; 6] = ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER"];

/// How a task process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status (a signal's number + 128 when killed).
    Code(i32),
    /// Could not be started.
    NotStarted,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Command and arguments; never through a shell.
    pub argv: Vec<String>,
    /// The task's directory: its working directory and `TMPDIR`.
    pub dir: PathBuf,
    /// The log file.
    pub log: PathBuf,
    /// Most bytes of output kept.
    pub max_log_bytes: u64,
    /// Extra variables (`_KFP_RUNTIME`, the component's `env`).
    pub env: Vec<(String, String)>,
    /// The task's uid, written into [`TASK_MARKER`].
    pub task_uid: String,
    /// `PATH` for the task; the server's when empty.
    pub path: String,
    /// Run inside this sandbox; on the host as is when `None`.
    pub sandbox: Option<Sandbox>,
}

/// A task's sandbox: the executor's confinement and this task's part of it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// What every task shares.
    pub confinement: Arc<Confinement>,
    /// Paths the task reads (its input artifacts).
    pub readable: Vec<PathBuf>,
    /// Keep the host's network.
    pub network: bool,
    /// Who the task runs as.
    pub identity: Identity,
    /// Its limits.
    pub limits: TaskLimits,
    /// Where it sees its directory and inputs.
    pub inside: Inside,
    /// The image it runs in; the host's view when `None`.
    pub image: Option<ImageRun>,
    /// A directory of Python packages it may install from, shown read-only at
    /// [`PACKAGE_DIR`](super::python_env::PACKAGE_DIR).
    pub packages: Option<PathBuf>,
    /// For a long-lived server in its image: where the platform reaches it.
    pub relay: Option<Listening>,
}

/// A long-lived server's relay: the listening socket the platform made (in a directory of its own) and the port
/// the server listens on inside its sandbox. The sandbox's init relays what the socket accepts to that port.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The socket, handed down to the sandbox.
    pub listener: Arc<std::os::unix::net::UnixListener>,
    /// The server's port inside.
    pub port: u16,
}

/// The descriptor number a relay's socket has in the sandbox (after the seccomp and network ones).
const RELAY_FD: i32 = 8;

/// A step's image as its process needs it.
#[derive(Debug, Clone)]
pub struct ImageRun {
    /// The unpacked root.
    pub rootfs: PathBuf,
    /// The image config's `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// Where the command starts inside the root.
    pub workdir: String,
}

/// A started task process.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    /// Its process group.
    pub group: i32,
    capture: tokio::task::JoinHandle<bool>,
    guard: GroupGuard,
    /// The task's link to the outside, while it runs (when its run allows network).
    network: Option<tokio::task::JoinHandle<Option<tokio::process::Child>>>,
}

/// Kills the process group when dropped before the task was waited for (its work was aborted, say by a cancel
/// that came while the process was starting).
#[derive(Debug)]
struct GroupGuard {
    group: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.group);
        }
    }
}

/// The environment the task's own process starts with. On the host: a few of the server's variables (locale,
/// time zone, and its PATH and HOME unless sandboxed); in an image: the image's `Env`. Then the task's: PATH, HOME,
/// TMPDIR, the marker, and `spec.env` last, so the component's own settings win.
fn task_environment(spec: &Spec) -> Vec<(OsString, OsString)> {
    let mut environment: BTreeMap<OsString, OsString> = BTreeMap::new();
    let image = spec.sandbox.as_ref().and_then(|s| s.image.as_ref());
    let inside = spec.sandbox.as_ref().map(|s| s.inside.clone()).unwrap_or_else(Inside::host);
    let dir = inside.path(&spec.dir);
    match image {
        Some(image) => {
            for entry in &image.env {
                let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                environment.insert(key.into(), value.into());
            }
            environment.entry("PATH".into()).or_insert_with(|| super::sandbox::view::DEFAULT_PATH.into());
            environment.entry("HOME".into()).or_insert_with(|| dir.clone().into());
        }
        None => {
            for key in KEPT {
                if let Some(value) = std::env::var_os(key) {
                    environment.insert(key.into(), value);
                }
            }
            for (key, value) in std::env::vars_os() {
                if key.to_str().is_some_and(|k| k.starts_with("LC_")) {
                    environment.insert(key, value);
                }
            }
            if !spec.path.is_empty() {
                environment.insert("PATH".into(), spec.path.clone().into());
            }
            if spec.sandbox.is_some() {
                // The server's home is not in the sandbox; the task's own directory is.
                environment.insert("HOME".into(), dir.clone().into());
                environment.remove(OsStr::new("USER"));
            }
        }
    }
    environment.insert("TMPDIR".into(), dir.join("tmp").into());
    for (key, value) in &spec.env {
        environment.insert(key.into(), value.into());
    }
    // Last: the marker is how a restarted server finds what a task left running; no component overrides it.
    environment.insert(TASK_MARKER.into(), spec.task_uid.clone().into());
    environment.into_iter().collect()
}

/// Starts `spec`; the error says why it could not be (e.g. the command does not exist).
pub fn start(spec: &Spec) -> Result<Running, String> {
    std::fs::create_dir_all(spec.dir.join("tmp")).map_err(|e| format!("cannot prepare the task directory: {e}"))?;
    if let Some(logs) = spec.log.parent() {
        std::fs::create_dir_all(logs).map_err(|e| format!("cannot prepare the task log: {e}"))?;
    }
    let log = std::fs::File::create(&spec.log).map_err(|e| format!("cannot create the task log: {e}"))?;
    let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let stderr = writer.try_clone().map_err(|e| e.to_string())?;
    let mut link = None;
    let environment = task_environment(spec);
    let mut command = match &spec.sandbox {
        Some(sandbox) => {
            let confinement = &sandbox.confinement;
            let mut command = tokio::process::Command::new(confinement.bwrap());
            command.args(confinement.wrap(&Confined {
                argv: &spec.argv,
                env: &environment,
                dir: &spec.dir,
                inside: &sandbox.inside,
                image: sandbox.image.as_ref().map(|image| InImage { rootfs: &image.rootfs, workdir: &image.workdir }),
                readable: &sandbox.readable,
                packages: sandbox.packages.as_deref(),
                relay: sandbox.relay.as_ref().map(|relay| Relay { fd: RELAY_FD, port: relay.port }),
                network: sandbox.network,
                identity: sandbox.identity,
                limits: sandbox.limits,
            })?);
            // bwrap, prlimit and setpriv run before the task is confined (as root, when the server is): nothing
            // the pipeline chose may reach them (LD_PRELOAD, LD_AUDIT, GCONV_PATH… would run its code there). The
            // task's own environment is set by the last program before it, inside the sandbox.
            command.env_clear().env(TASK_MARKER, &spec.task_uid);
            let mut mappings = Vec::new();
            for (program, fd) in confinement.seccomp_programs().iter().zip(SECCOMP_FDS) {
                mappings.push(FdMapping { parent_fd: program_fd(program)?, child_fd: fd });
            }
            if sandbox.network {
                let slirp4netns = confinement.slirp4netns().ok_or_else(|| {
                    "the run allows network, which tasks get through slirp4netns: it is not installed".to_owned()
                })?;
                let (more, pipes) = network::pipes().map_err(|e| format!("cannot prepare the task's network: {e}"))?;
                mappings.extend(more);
                link = Some((pipes, slirp4netns.to_path_buf(), sandbox.identity));
            }
            if let Some(relay) = &sandbox.relay {
                let listener =
                    relay.listener.try_clone().map_err(|e| format!("cannot hand the relay its socket: {e}"))?;
                mappings.push(FdMapping { parent_fd: listener.into(), child_fd: RELAY_FD });
            }
            command.fd_mappings(mappings).map_err(|_| "cannot hand the seccomp filter to the sandbox".to_owned())?;
            command
        }
        None => {
            let mut command = tokio::process::Command::new(&spec.argv[0]);
            command.args(&spec.argv[1..]).env_clear().envs(environment);
            command
        }
    };
    command
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    let child = command.spawn().map_err(|e| format!("cannot start {:?}: {e}", spec.argv[0]))?;
    // The parent's copies of the pipe's write end went with `command`: the log ends when the task's processes do.
    drop(command);
    let group = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    let max = spec.max_log_bytes;
    let capture = tokio::task::spawn_blocking(move || copy_bounded(reader, log, max));
    let network = link.map(|(pipes, slirp4netns, identity)| {
        tokio::spawn(async move {
            match network::connect(pipes, slirp4netns, identity).await {
                Ok(helper) => Some(helper),
                Err(message) => {
                    tracing::warn!(group, error = %message, "a task's network could not be brought up; it is stopped");
                    kill_group(group);
                    None
                }
            }
        })
    });
    Ok(Running { child, group, capture, guard: GroupGuard { group, armed: true }, network })
}

impl Running {
    /// Whether the process has exited, and how; `None` while it runs.
    pub fn exited(&mut self) -> Option<Exit> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(exit_of(status)),
            Ok(None) => None,
            Err(_) => Some(Exit::NotStarted),
        }
    }

    /// Waits for the process to exit and its output to be captured; true in the second place when the log was
    /// cut at its bound.
    pub async fn wait(mut self) -> (Exit, bool) {
        let status = self.child.wait().await;
        // Processes the task left in the background keep the log open; the task is over, so they go too.
        kill_group(self.group);
        self.guard.armed = false;
        if let Some(network) = self.network.take() {
            network.abort();
            // Dropping the helper kills it; the namespace it served is gone with the task.
            drop(network.await);
        }
        let truncated = tokio::time::timeout(Duration::from_secs(5), self.capture).await.ok().and_then(Result::ok);
        let exit = match status {
            Ok(status) => exit_of(status),
            Err(_) => Exit::NotStarted,
        };
        (exit, truncated.unwrap_or(false))
    }
}

/// An exit status as a task's: its code, or 128 + the signal that ended it.
fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    Exit::Code(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1))
}

/// A pipe whose read end yields `program` and then ends: how `bwrap` takes a seccomp filter. A filter is a few
/// hundred bytes, far below a pipe's buffer, so the write cannot block.
fn program_fd(program: &[u8]) -> Result<OwnedFd, String> {
    let (reader, mut writer) = std::io::pipe().map_err(|e| format!("cannot pass the seccomp filter: {e}"))?;
    writer.write_all(program).map_err(|e| format!("cannot pass the seccomp filter: {e}"))?;
    Ok(reader.into())
}

/// Kills every process of `group` at once.
pub fn kill_group(group: i32) {
    if group > 1 {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
}

/// Copies the task's output into the log until every writer is gone, keeping at most `max` bytes and then a
/// line saying the rest was dropped. True when it was.
fn copy_bounded(mut from: impl Read, mut to: std::fs::File, max: u64) -> bool {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    let mut truncated = false;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if truncated {
            continue;
        }
        let room = usize::try_from(max.saturating_sub(written)).unwrap_or(usize::MAX);
        let keep = n.min(room);
        if to.write_all(&buffer[..keep]).is_err() {
            break;
        }
        written += keep as u64;
        if keep < n {
            truncated = true;
            let _ = writeln!(to, "\n[highwind: log truncated at {max} bytes; later output was dropped]");
        }
    }
    let _ = to.sync_data();
    truncated
}

/// Kills every process a previous server process left running for task `uid`: those carrying the task's marker
/// in their environment, which every process the task started inherits. Returns how many were killed.
pub fn kill_leftovers(uid: &str) -> usize {
    let marker = format!("{TASK_MARKER}={uid}");
    let mut killed = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if carries(&entry.path(), &marker) && nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    killed
}

fn carries(proc_dir: &Path, marker: &str) -> bool {
    std::fs::read(proc_dir.join("environ"))
        .is_ok_and(|environ| environ.split(|b| *b == 0).any(|entry| entry == marker.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_keeps_its_bound_and_says_what_it_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let output = vec![b'x'; 10_000];
        let truncated = copy_bounded(output.as_slice(), std::fs::File::create(&path).expect("log"), 4096);
        assert!(truncated);
        let log = std::fs::read(&path).expect("read");
        assert_eq!(&log[..4096], &output[..4096]);
        assert_eq!(
            String::from_utf8_lossy(&log[4096..]),
            "\n[highwind: log truncated at 4096 bytes; later output was dropped]\n"
        );
        let short = copy_bounded(&b"short"[..], std::fs::File::create(&path).expect("log"), 4096);
        assert!(!short);
        assert_eq!(std::fs::read(&path).expect("read"), b"short");
    }
}
