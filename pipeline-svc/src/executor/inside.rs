//! Where a sandboxed task sees its files. Its directory and input artifacts live under the platform's runs
//! directory; inside the sandbox they are mounted under one neutral root instead, [`TASK_ROOT`], so nothing a task
//! sees (paths in its command, `TMPDIR`, `HOME`, the ExecutorInput) names where the platform keeps its data.

use std::path::{Path, PathBuf};

/// Where the runs directory appears inside a sandbox.
pub const TASK_ROOT: &str = "/highwind/runs";

/// Where a deployment replica's own directory appears inside its sandbox.
pub const SERVE_ROOT: &str = "/highwind/serve";

/// How host paths under the runs directory read inside the task's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inside {
    /// The runs directory, when the task is sandboxed; `None`: the task sees the host's paths as they are.
    runs: Option<PathBuf>,
    /// Where it appears inside: [`TASK_ROOT`] or [`SERVE_ROOT`].
    root: &'static str,
}

impl Inside {
    /// A sandboxed task of the executor whose runs directory is `runs`.
    pub fn sandboxed(runs: &Path) -> Self {
        Self { runs: Some(runs.to_path_buf()), root: TASK_ROOT }
    }

    /// A deployment replica whose own directory is `dir`, seen as [`SERVE_ROOT`].
    pub fn serving(dir: &Path) -> Self {
        Self { runs: Some(dir.to_path_buf()), root: SERVE_ROOT }
    }

    /// A task on the host, outside any sandbox.
    pub fn host() -> Self {
        Self { runs: None, root: TASK_ROOT }
    }

    /// Whether `seen` (a path inside the sandbox) is under the neutral root the sandbox makes.
    pub fn is_neutral(&self, seen: &Path) -> bool {
        self.runs.is_some() && seen.starts_with(self.root)
    }

    /// `path` as the task sees it: under the neutral root when it is under the runs directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        match self.runs.as_deref().and_then(|runs| path.strip_prefix(runs).ok()) {
            Some(relative) => Path::new(self.root).join(relative),
            None => path.to_path_buf(),
        }
    }

    /// `path` (a host path as text) as the task sees it.
    pub fn text(&self, path: &str) -> String {
        self.path(Path::new(path)).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_runs_directory_move_under_the_neutral_root_and_others_stay() {
        let inside = Inside::sandboxed(Path::new("/var/lib/highwind/runs"));
        assert_eq!(
            inside.path(Path::new("/var/lib/highwind/runs/r1/tasks/t1/outputs/model")),
            Path::new("/highwind/runs/r1/tasks/t1/outputs/model")
        );
        assert_eq!(inside.path(Path::new("/srv/shared/data.csv")), Path::new("/srv/shared/data.csv"));
        // A sibling whose name merely starts like the runs directory is not inside it.
        assert_eq!(inside.path(Path::new("/var/lib/highwind/runs2/x")), Path::new("/var/lib/highwind/runs2/x"));
        let host = Inside::host();
        assert_eq!(host.text("/var/lib/highwind/runs/r1"), "/var/lib/highwind/runs/r1");
        assert!(!host.is_neutral(Path::new("/highwind/runs/r1")), "a task on the host has no neutral root");
        let serving = Inside::serving(Path::new("/var/lib/highwind/deployments/abc/0"));
        assert_eq!(
            serving.path(Path::new("/var/lib/highwind/deployments/abc/0/tmp")),
            Path::new("/highwind/serve/tmp")
        );
        assert!(serving.is_neutral(Path::new("/highwind/serve/relay.sock")));
    }
}
