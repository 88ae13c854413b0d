//! What of the host a task sees: the system directories and the tools its `PATH` names, read-only, with every
//! excluded path (the platform's data directory, `executor.hide`) left out of the mount tree altogether — not
//! covered by something a task could unmount, but never mounted into its namespace.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    path::{Path, PathBuf},
};

/// Top-level directories bound read-only when they exist: programs, libraries and configuration.
const SYSTEM: [&str; 9] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];

/// The `PATH` a sandboxed task gets when the configuration names none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Most directory entries read while binding around an excluded path; a tree too large to split is left out.
const MAX_SPLIT_ENTRIES: usize = 10_000;

/// The `bwrap` arguments that build the task's read-only view of the host: the system directories, then each of
/// `extra` (tool prefixes, configured read-only paths), none of them ever including an `excluded` path.
pub fn host_view(extra: &[PathBuf], excluded: &[PathBuf]) -> Vec<OsString> {
    let mut view = View { args: Vec::new(), made: BTreeSet::new(), excluded, budget: MAX_SPLIT_ENTRIES };
    for root in SYSTEM {
        view.bind(Path::new(root));
    }
    for path in extra {
        if !SYSTEM.iter().any(|root| path.starts_with(root)) {
            parents_of(path, &mut view.args, &mut view.made);
            view.bind(path);
        }
    }
    view.args
}

/// The directories a task's `PATH` needs besides the system ones: the prefix of each `…/bin` directory on it (a
/// virtual environment's `lib/` lives beside its `bin/`) and the prefix of every interpreter its entries link to
/// (a virtual environment's `python` points into the installation it was made from).
pub fn tool_prefixes(path: &str) -> Vec<PathBuf> {
    let mut prefixes = Vec::new();
    for dir in std::env::split_paths(path).filter(|d| d.is_absolute() && d.is_dir()) {
        if SYSTEM.iter().any(|root| dir.starts_with(root)) {
            continue;
        }
        prefixes.push(prefix_of(&dir));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten().take(1_000) {
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if let (true, Ok(target)) = (is_link, entry.path().canonicalize())
                && let Some(bin) = target.parent()
                && !bin.starts_with(&dir)
                && !SYSTEM.iter().any(|root| bin.starts_with(root))
            {
                prefixes.push(prefix_of(bin));
            }
        }
    }
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

fn prefix_of(bin: &Path) -> PathBuf {
    match (bin.file_name(), bin.parent()) {
        (Some(name), Some(parent)) if name == "bin" && parent != Path::new("/") => parent.to_path_buf(),
        _ => bin.to_path_buf(),
    }
}

/// Adds `--dir` for every ancestor of `path` (below `/`) not made yet, mode 0755: directories bwrap makes on its own
/// are private to root, where a task's own uid could not reach `path` by its absolute name.
pub(super) fn parents_of(path: &Path, args: &mut Vec<OsString>, made: &mut BTreeSet<PathBuf>) {
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).filter(|a| a.parent().is_some()).collect();
    ancestors.reverse();
    for ancestor in ancestors {
        // `/tmp` is the sandbox's own tmpfs, open to all.
        if ancestor != Path::new("/tmp") && made.insert(ancestor.to_path_buf()) {
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), ancestor.as_os_str().to_owned()]);
        }
    }
}

struct View<'a> {
    args: Vec<OsString>,
    made: BTreeSet<PathBuf>,
    excluded: &'a [PathBuf],
    budget: usize,
}

impl View<'_> {
    /// Binds `path` read-only as it is, or, when an excluded path lies inside it, each of its entries but the
    /// excluded one (recursively), so the excluded path is simply absent.
    fn bind(&mut self, path: &Path) {
        if self.excluded.iter().any(|e| path.starts_with(e)) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(path) {
                self.push(&["--symlink".into(), target.into_os_string(), path.as_os_str().to_owned()]);
            }
            return;
        }
        let holds_excluded = self.excluded.iter().any(|e| e.starts_with(path));
        if !holds_excluded || !meta.is_dir() {
            self.push(&["--ro-bind".into(), path.as_os_str().to_owned(), path.as_os_str().to_owned()]);
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else { return };
        self.made.insert(path.to_path_buf());
        self.push(&["--perms".into(), "0755".into(), "--dir".into(), path.as_os_str().to_owned()]);
        for entry in entries.flatten() {
            if self.budget == 0 {
                tracing::warn!(path = %path.display(), "too many entries beside an excluded path; the rest are not shown to tasks");
                return;
            }
            self.budget -= 1;
            self.bind(&entry.path());
        }
    }

    fn push(&mut self, items: &[OsString]) {
        self.args.extend_from_slice(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binds(args: &[OsString]) -> Vec<String> {
        args.windows(2).filter(|w| w[0] == "--ro-bind").map(|w| w[1].to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn an_excluded_directory_is_left_out_and_its_siblings_are_bound() {
        let root = tempfile::tempdir().expect("tempdir");
        let tools = root.path().join("tools");
        std::fs::create_dir_all(tools.join("data/secret")).expect("dirs");
        std::fs::create_dir_all(tools.join("bin")).expect("dirs");
        std::fs::write(tools.join("README"), b"x").expect("file");
        let args = host_view(std::slice::from_ref(&tools), &[tools.join("data")]);
        let bound = binds(&args);
        assert!(bound.contains(&tools.join("bin").display().to_string()), "{bound:?}");
        assert!(bound.contains(&tools.join("README").display().to_string()), "{bound:?}");
        assert!(bound.iter().all(|b| !b.contains("data")), "{bound:?}");
        assert!(!bound.contains(&tools.display().to_string()), "the parent is split, not bound whole");
    }

    #[test]
    fn a_virtual_environment_brings_its_prefix_and_the_interpreter_it_links_to() {
        let root = tempfile::tempdir().expect("tempdir");
        let python = root.path().join("python/bin");
        std::fs::create_dir_all(&python).expect("dirs");
        std::fs::write(python.join("python3.11"), b"").expect("file");
        let venv = root.path().join("venv/bin");
        std::fs::create_dir_all(&venv).expect("dirs");
        std::os::unix::fs::symlink(python.join("python3.11"), venv.join("python")).expect("link");
        let prefixes = tool_prefixes(&format!("{}:/usr/bin", venv.display()));
        let real = |p: PathBuf| p.canonicalize().expect("real");
        assert_eq!(
            prefixes.into_iter().map(real).collect::<Vec<_>>(),
            vec![real(root.path().join("python")), real(root.path().join("venv"))]
        );
    }
}
