//! Running one task process on the host: its own process group (so cancelling kills everything it started), a
//! scrubbed environment, and its stdout and stderr captured, interleaved, into a size-bounded log file.

use std::{
    ffi::{OsStr, OsString},
    io::{Read, Write},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
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

/// A bubblewrap sandbox: the host's file system read-only, the platform's data directory hidden except the task's
/// own directory (writable) and its input artifacts (read-only), its own PID namespace, and no network unless
/// allowed.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The `bwrap` binary.
    pub bwrap: PathBuf,
    /// Directories replaced by an empty tmpfs (the platform's data directory).
    pub hidden: Vec<PathBuf>,
    /// Paths the task reads (its input artifacts).
    pub readable: Vec<PathBuf>,
    /// Keep the host's network.
    pub network: bool,
}

impl Sandbox {
    /// The arguments to `bwrap` that run `argv` in this sandbox, with `dir` writable and the working directory.
    fn wrap(&self, argv: &[String], dir: &Path) -> Vec<OsString> {
        let mut wrapped: Vec<OsString> = Vec::new();
        let mut add = |items: &[&OsStr]| wrapped.extend(items.iter().map(|i| i.to_os_string()));
        add(&[OsStr::new("--ro-bind"), OsStr::new("/"), OsStr::new("/"), OsStr::new("--dev"), OsStr::new("/dev")]);
        add(&[OsStr::new("--proc"), OsStr::new("/proc"), OsStr::new("--unshare-pid"), OsStr::new("--unshare-ipc")]);
        for hidden in &self.hidden {
            add(&[OsStr::new("--tmpfs"), hidden.as_os_str()]);
        }
        for readable in self.readable.iter().filter(|p| p.exists()) {
            add(&[OsStr::new("--ro-bind"), readable.as_os_str(), readable.as_os_str()]);
        }
        add(&[OsStr::new("--bind"), dir.as_os_str(), dir.as_os_str(), OsStr::new("--chdir"), dir.as_os_str()]);
        if !self.network {
            add(&[OsStr::new("--unshare-net")]);
        }
        add(&[OsStr::new("--")]);
        wrapped.extend(argv.iter().map(OsString::from));
        wrapped
    }
}

/// A started task process.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    /// Its process group.
    pub group: i32,
    capture: tokio::task::JoinHandle<bool>,
    guard: GroupGuard,
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

/// Starts `spec`; the error says why it could not be (e.g. the command does not exist).
pub fn start(spec: &Spec) -> Result<Running, String> {
    std::fs::create_dir_all(spec.dir.join("tmp")).map_err(|e| format!("cannot prepare the task directory: {e}"))?;
    let log = std::fs::File::create(&spec.log).map_err(|e| format!("cannot create the task log: {e}"))?;
    let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let stderr = writer.try_clone().map_err(|e| e.to_string())?;
    let mut command = match &spec.sandbox {
        Some(sandbox) => {
            let mut command = tokio::process::Command::new(&sandbox.bwrap);
            command.args(sandbox.wrap(&spec.argv, &spec.dir));
            command
        }
        None => {
            let mut command = tokio::process::Command::new(&spec.argv[0]);
            command.args(&spec.argv[1..]);
            command
        }
    };
    command
        .current_dir(&spec.dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    for key in KEPT {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    for (key, value) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("LC_")) {
            command.env(key, value);
        }
    }
    if !spec.path.is_empty() {
        command.env("PATH", &spec.path);
    }
    command.env("TMPDIR", spec.dir.join("tmp")).env(TASK_MARKER, &spec.task_uid);
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    let child = command.spawn().map_err(|e| format!("cannot start {:?}: {e}", spec.argv[0]))?;
    // The parent's copies of the pipe's write end went with `command`: the log ends when the task's processes do.
    drop(command);
    let group = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    let max = spec.max_log_bytes;
    let capture = tokio::task::spawn_blocking(move || copy_bounded(reader, log, max));
    Ok(Running { child, group, capture, guard: GroupGuard { group, armed: true } })
}

impl Running {
    /// Waits for the process to exit and its output to be captured; true in the second place when the log was
    /// cut at its bound.
    pub async fn wait(mut self) -> (Exit, bool) {
        let status = self.child.wait().await;
        // Processes the task left in the background keep the log open; the task is over, so they go too.
        kill_group(self.group);
        self.guard.armed = false;
        let truncated = tokio::time::timeout(Duration::from_secs(5), self.capture).await.ok().and_then(Result::ok);
        let exit = match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                Exit::Code(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1))
            }
            Err(_) => Exit::NotStarted,
        };
        (exit, truncated.unwrap_or(false))
    }
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
