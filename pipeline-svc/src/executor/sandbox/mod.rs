//! The bubblewrap sandbox a task runs in. It holds because the code inside has no power to undo it:
//! - the platform's data directory is never mounted into the task's namespace (only the system directories, the
//!   tools on the task's `PATH`, its own directory and its input artifacts are, see [`view`]);
//! - the task is never root and holds no capabilities: a server running as root starts it as a uid of its own
//!   (one per running task, from `executor.task_uids`) through `setpriv`, with `no_new_privs` and an empty bounding
//!   set; a server running as another user maps it into a user namespace with `--cap-drop ALL`;
//! - a seccomp filter ([`seccomp`]) refuses mounts, new namespaces, tracing, the keyring and BPF;
//! - its own session, PID, IPC and UTS namespaces, no network unless the run allows it, and it dies with the
//!   server;
//! - rlimits (through `prlimit`) bound its memory, CPU time, processes and file sizes.

pub mod image;
pub mod limits;
pub mod network;
pub mod seccomp;
pub mod view;

use std::{
    collections::BTreeSet,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::inside::Inside;

/// Most entries of a task directory handed over to a new task uid.
pub const MAX_HANDED_OVER: usize = 100_000;

/// Most arguments a sandbox is built with: bwrap refuses more than 9,000.
const MAX_BWRAP_ARGS: usize = 8_000;

/// The fd numbers the seccomp programs are handed to `bwrap` on.
pub const SECCOMP_FDS: [i32; 2] = [3, 4];

/// Limits of one task process tree (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskLimits {
    /// Address space of each process, bytes.
    pub memory_bytes: u64,
    /// CPU time of each process, seconds.
    pub cpu_seconds: u64,
    /// Processes (and threads) of the task at once; enforced when the server runs as root (each task has its
    /// own uid), since elsewhere the count would include every process of the server's user.
    pub processes: u64,
    /// Largest file a process may write, bytes.
    pub file_bytes: u64,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self { memory_bytes: 4 << 30, cpu_seconds: 3_600, processes: 512, file_bytes: 64 << 30 }
    }
}

/// Who the task runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The server is root: the task gets this uid and gid of its own (via `setpriv`).
    Uid(u32),
    /// The server is an ordinary user: a user namespace maps the task to it, as `nobody` inside.
    UserNamespace,
}

/// Everything a sandbox needs that does not change between tasks, found once when the executor starts.
#[derive(Debug)]
pub struct Confinement {
    bwrap: PathBuf,
    prlimit: PathBuf,
    /// `setpriv`, when the server is root.
    setpriv: Option<PathBuf>,
    /// `env`, which sets the task's environment as the last step before it, inside the sandbox.
    env: PathBuf,
    /// `slirp4netns`, which tasks with network need.
    slirp4netns: Option<PathBuf>,
    /// The `bwrap` arguments of the task's read-only view of the host.
    host_view: Vec<OsString>,
    /// The compiled seccomp programs.
    seccomp: Vec<Vec<u8>>,
    uids: Option<UidPool>,
    /// The static first program of steps in their own image ([`image::INIT`]), installed by [`Self::install_init`].
    init: Option<PathBuf>,
}

/// Why tasks cannot be confined.
#[derive(Debug, thiserror::Error)]
pub enum ConfinementError {
    /// A program the sandbox needs is not installed.
    #[error("{0} is not installed")]
    Missing(&'static str),
    /// The seccomp filter could not be compiled.
    #[error(transparent)]
    Filter(#[from] seccomp::FilterError),
}

impl Confinement {
    /// Finds the programs, compiles the filter and builds the host view with `excluded` left out and `extra`
    /// (read-only tool directories) added. `task_uids` is the first uid of the range tasks get when the server is
    /// root.
    pub fn new(
        bwrap: PathBuf,
        extra: &[PathBuf],
        excluded: &[PathBuf],
        task_uids: u32,
    ) -> Result<Self, ConfinementError> {
        let find = |name: &'static str| {
            highwind_common::executables::find_on_path(name).ok_or(ConfinementError::Missing(name))
        };
        let root = nix::unistd::geteuid().is_root();
        let setpriv = if root { Some(find("setpriv")?) } else { None };
        Ok(Self {
            bwrap,
            prlimit: find("prlimit")?,
            setpriv,
            env: find("env")?,
            slirp4netns: highwind_common::executables::find_on_path("slirp4netns"),
            host_view: view::host_view(extra, excluded),
            seccomp: seccomp::programs()?,
            uids: root.then(|| UidPool::new(task_uids)),
            init: None,
        })
    }

    /// Lets steps run in their own image: installs the static first program they start with in `dir` (the
    /// server's own directory, never shown to tasks).
    pub fn install_init(&mut self, dir: &Path) -> std::io::Result<()> {
        self.init = Some(image::install_init(dir)?);
        Ok(())
    }

    /// Whether steps can run in their own image.
    pub fn runs_images(&self) -> bool {
        self.init.is_some()
    }

    /// The `bwrap` binary.
    pub fn bwrap(&self) -> &Path {
        &self.bwrap
    }

    /// `slirp4netns`, if installed: tasks whose run allows network cannot start without it.
    pub fn slirp4netns(&self) -> Option<&Path> {
        self.slirp4netns.as_deref()
    }

    /// The seccomp programs, in the order of [`SECCOMP_FDS`].
    pub fn seccomp_programs(&self) -> &[Vec<u8>] {
        &self.seccomp
    }

    /// An identity for one task; returned to the pool when the lease is dropped.
    pub fn lease(&self) -> Lease {
        match &self.uids {
            Some(pool) => pool.take(),
            None => Lease { identity: Identity::UserNamespace, pool: None },
        }
    }

    /// Gives the task's directory (and what earlier attempts left in it, at most [`MAX_HANDED_OVER`] entries) to
    /// the task's uid, so it can write there and nowhere else. Blocking: call it off the async workers.
    pub fn hand_over(dir: &Path, identity: Identity) -> std::io::Result<()> {
        let Identity::Uid(uid) = identity else { return Ok(()) };
        let owner = (Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(uid)));
        let chown = |path: &Path| {
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                path,
                owner.0,
                owner.1,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(std::io::Error::from)
        };
        chown(dir)?;
        let mut pending = vec![dir.to_path_buf()];
        let mut seen = 0usize;
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next)?.flatten() {
                seen += 1;
                if seen > MAX_HANDED_OVER {
                    return Err(std::io::Error::other(format!(
                        "the task directory holds over {MAX_HANDED_OVER} entries"
                    )));
                }
                chown(&entry.path())?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
        Ok(())
    }

    /// The `bwrap` arguments that run `argv` confined as `identity`, with `dir` its writable directory (mounted
    /// where [`Confined::inside`] says), `readable` its read-only inputs and `env` its whole environment; in its
    /// image's root when [`Confined::image`] is set, else in the read-only view of the host. The error says why
    /// `argv` cannot run so.
    pub fn wrap(&self, task: &Confined<'_>) -> Result<Vec<OsString>, String> {
        // `env` would take a program named like an assignment for one.
        if task.argv.first().is_none_or(|program| program.contains('=')) {
            return Err("a command must be named, and its name cannot contain '='".to_owned());
        }
        let mut args = Args::default();
        args.add(&["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
        // Always a network namespace of its own: with network allowed, slirp4netns links it to the outside.
        args.add(&["--unshare-cgroup-try", "--unshare-net"]);
        match task.image {
            None => {
                // `/tmp` first: read-only paths the configuration names may lie inside it.
                args.add(&["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]);
                args.items.extend(self.host_view.iter().cloned());
            }
            Some(image) => {
                let init = self.init.as_deref().ok_or("steps cannot run in their image here")?;
                args.items.extend(image::view(image.rootfs, task.network).map_err(|e| e.to_string())?);
                args.add(&["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]);
                args.parents_of(Path::new(image::INIT));
                args.pair("--ro-bind", init, Path::new(image::INIT));
            }
        }
        if task.network {
            let fd = |n: i32| OsString::from(n.to_string());
            args.items.extend(["--info-fd".into(), fd(network::INFO_FD), "--block-fd".into(), fd(network::BLOCK_FD)]);
            // bwrap makes the file 0600 and root's unless told: the task's own uid could not resolve a name.
            args.add(&["--perms", "0644"]);
            args.items.extend(["--ro-bind-data".into(), fd(network::RESOLV_FD), "/etc/resolv.conf".into()]);
        }
        for readable in task.readable.iter().filter(|p| p.exists()) {
            let seen = task.inside.path(readable);
            // In an image, the directories above a mount point are the image's, which may be links: only the
            // sandbox's own neutral root is made there.
            if task.image.is_some() && !task.inside.is_neutral(&seen) {
                return Err("an input outside the runs directory cannot be shown in an image".to_owned());
            }
            args.parents_of(&seen);
            args.pair("--ro-bind", readable, &seen);
        }
        if let Some(packages) = task.packages {
            let seen = Path::new(super::python_env::PACKAGE_DIR);
            args.parents_of(seen);
            args.pair("--ro-bind", packages, seen);
        }
        let dir = task.inside.path(task.dir);
        args.parents_of(&dir);
        args.pair("--bind", task.dir, &dir);
        args.add(&["--chdir"]);
        match task.image {
            Some(image) => args.items.push(image.workdir.into()),
            None => args.path(&dir),
        }
        for fd in SECCOMP_FDS.iter().take(self.seccomp.len()) {
            args.add(&["--add-seccomp-fd"]);
            args.items.push(fd.to_string().into());
        }
        match task.identity {
            // setpriv (or the image's init) needs these three to change user and empty the bounding set; it drops
            // them with the rest.
            Identity::Uid(_) => {
                args.add(&["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]);
                args.add(&["--cap-add", "CAP_SETPCAP"]);
            }
            Identity::UserNamespace => {
                args.add(&["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]);
                args.add(&["--cap-drop", "ALL"]);
            }
        }
        if task.image.is_some() {
            // The image holds none of the host's programs: the static init applies the limits, becomes the task's
            // user and only then takes the task's environment (its arguments) and runs the command.
            args.add(&["--clearenv", "--", image::INIT]);
            args.items.extend(image::init_args(&task.limits, task.identity, task.relay.as_ref(), task.env)?);
            args.add(&["--"]);
            args.items.extend(task.argv.iter().map(OsString::from));
            if args.items.len() > MAX_BWRAP_ARGS {
                return Err(format!("the step's sandbox would take more than {MAX_BWRAP_ARGS} arguments"));
            }
            return Ok(args.items);
        }
        args.add(&["--"]);
        args.path(&self.prlimit);
        args.items.extend(limit_args(&task.limits, task.identity).into_iter().map(OsString::from));
        args.add(&["--"]);
        if let (Identity::Uid(uid), Some(setpriv)) = (task.identity, &self.setpriv) {
            args.path(setpriv);
            args.items.push(format!("--reuid={uid}").into());
            args.items.push(format!("--regid={uid}").into());
            args.add(&["--clear-groups", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]);
        }
        // Only now, as the task's own user, does anything the pipeline chose enter the environment.
        args.path(&self.env);
        args.add(&["-i", "--"]);
        for (key, value) in task.env {
            let mut assignment = key.clone();
            assignment.push("=");
            assignment.push(value);
            args.items.push(assignment);
        }
        args.items.extend(task.argv.iter().map(OsString::from));
        Ok(args.items)
    }
}

/// One task's part of the sandbox.
#[derive(Debug)]
pub struct Confined<'a> {
    /// Command and arguments.
    pub argv: &'a [String],
    /// The task's whole environment.
    pub env: &'a [(OsString, OsString)],
    /// Its own directory, writable.
    pub dir: &'a Path,
    /// Where it sees its directory and inputs.
    pub inside: &'a Inside,
    /// The image root it runs in; the host's view when `None`.
    pub image: Option<InImage<'a>>,
    /// Its input artifacts, read-only.
    pub readable: &'a [PathBuf],
    /// A directory of Python packages, read-only at [`PACKAGE_DIR`](super::python_env::PACKAGE_DIR).
    pub packages: Option<&'a Path>,
    /// A long-lived server's relay (in its image only).
    pub relay: Option<image::Relay>,
    /// Keep the host's network.
    pub network: bool,
    /// Who it runs as.
    pub identity: Identity,
    /// Its limits.
    pub limits: TaskLimits,
}

/// A step's image, as its sandbox mounts it.
#[derive(Debug, Clone, Copy)]
pub struct InImage<'a> {
    /// The unpacked root, mounted read-only as `/`.
    pub rootfs: &'a Path,
    /// Where the command starts, inside the root (checked to be a directory of it).
    pub workdir: &'a str,
}

fn limit_args(limits: &TaskLimits, identity: Identity) -> Vec<String> {
    let mut args = vec!["--core=0".to_owned()];
    let mut limit = |name: &str, value: u64| {
        if value > 0 {
            args.push(format!("--{name}={value}"));
        }
    };
    limit("as", limits.memory_bytes);
    limit("cpu", limits.cpu_seconds);
    limit("fsize", limits.file_bytes);
    if matches!(identity, Identity::Uid(_)) {
        limit("nproc", limits.processes);
    }
    args
}

#[derive(Default)]
struct Args {
    items: Vec<OsString>,
    /// Directories made inside the sandbox so far, so each is made once.
    made: BTreeSet<PathBuf>,
}

impl Args {
    fn add(&mut self, items: &[&str]) {
        self.items.extend(items.iter().map(OsString::from));
    }

    fn path(&mut self, path: &Path) {
        self.items.push(path.as_os_str().to_owned());
    }

    fn pair(&mut self, option: &str, from: &Path, to: &Path) {
        self.items.extend([OsStr::new(option).to_owned(), from.as_os_str().to_owned(), to.as_os_str().to_owned()]);
    }

    fn parents_of(&mut self, path: &Path) {
        view::parents_of(path, &mut self.items, &mut self.made);
    }
}

/// The uids tasks run as when the server is root, one per running task, so each task's process limit counts only
/// its own processes and no task can signal another's.
#[derive(Debug, Clone)]
struct UidPool(Arc<Mutex<Uids>>);

#[derive(Debug)]
struct Uids {
    free: Vec<u32>,
    next: u32,
}

impl UidPool {
    fn new(first: u32) -> Self {
        Self(Arc::new(Mutex::new(Uids { free: Vec::new(), next: first })))
    }

    fn take(&self) -> Lease {
        let mut uids = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let uid = match uids.free.pop() {
            Some(uid) => uid,
            None => {
                uids.next += 1;
                uids.next - 1
            }
        };
        Lease { identity: Identity::Uid(uid), pool: Some(self.clone()) }
    }
}

/// A task's identity, held while it runs.
#[derive(Debug)]
pub struct Lease {
    /// Who the task runs as.
    pub identity: Identity,
    pool: Option<UidPool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Identity::Uid(uid), Some(pool)) = (self.identity, &self.pool) {
            pool.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).free.push(uid);
        }
    }
}
