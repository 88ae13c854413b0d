//! `packages_to_install` of lightweight Python components that run on the host. Their compiled command begins with
//! a preamble that pip-installs the packages (and `kfp`) into whatever Python the step finds; on the host that
//! would be the host's own Python. Instead the preamble is read, never run: the packages are installed once per
//! creator and package set into a directory of their own (`pip install --target`, by a sandboxed process with
//! network), and the step gets it on `PYTHONPATH`, read-only. The host's `site-packages` is never written.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use highwind_runtime::digest::Digest;

/// What a lightweight component's preamble asks pip for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packages {
    /// Requirements, as the component lists them (`pandas==2.2.3`, `scikit-learn>=1.5`).
    pub requirements: Vec<String>,
    /// Where from: `--index-url`, `--extra-index-url` and `--trusted-host` with their values.
    pub index_options: Vec<String>,
}

impl Packages {
    /// Nothing to install.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Where pip finds packages besides the index a component names (`executor.package_index_url`,
/// `executor.package_dir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSources {
    /// An index in place of PyPI.
    pub index_url: String,
    /// A directory of wheels and source archives, shown to the step at [`PACKAGE_DIR`].
    pub dir: Option<PathBuf>,
}

/// Where [`PackageSources::dir`] appears inside a sandbox.
pub const PACKAGE_DIR: &str = "/highwind/packages";

impl PackageSources {
    /// From the executor's configuration; a directory that does not exist is left out, with a warning.
    pub fn of(index_url: &str, dir: &Path) -> Self {
        let dir = (!dir.as_os_str().is_empty()).then(|| dir.to_path_buf());
        let dir = dir.filter(|dir| {
            use std::os::unix::fs::PermissionsExt;
            let Some(meta) = dir.metadata().ok().filter(|m| dir.is_absolute() && m.is_dir()) else {
                tracing::warn!(dir = %dir.display(), "executor.package_dir is not an absolute path to a directory");
                return false;
            };
            if meta.permissions().mode() & 0o005 != 0o005 {
                // Steps run as uids of their own.
                tracing::warn!(dir = %dir.display(), "executor.package_dir is not readable by everyone: steps cannot read it");
            }
            true
        });
        Self { index_url: index_url.to_owned(), dir }
    }

    /// pip's variables for a step (or an install) with or without `network`. The component's own options on the
    /// command line still win over them.
    pub fn env(&self, network: bool) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.index_url.is_empty() {
            env.push(("PIP_INDEX_URL".to_owned(), self.index_url.clone()));
        }
        if self.dir.is_some() {
            env.push(("PIP_FIND_LINKS".to_owned(), PACKAGE_DIR.to_owned()));
            if !network {
                // No index can be reached: without this pip would spend its retries on one before looking here.
                env.push(("PIP_NO_INDEX".to_owned(), "1".to_owned()));
            }
        }
        env
    }
}

/// Pip options that take a value and that the environment keeps.
const INDEX_OPTIONS: [&str; 3] = ["--index-url", "--extra-index-url", "--trusted-host"];

/// The packages the preamble `script` (the `sh -c` text of a compiled lightweight component) installs: every
/// `pip install` of it but the one of `kfp` itself, unless `with_kfp` (the host's Python does not import it).
pub fn packages(script: &str, with_kfp: bool) -> Packages {
    let mut found = Packages::default();
    for segment in script.split("&&") {
        let words = shell_words(segment);
        let Some(at) = words.windows(2).position(|w| w[0] == "pip" && w[1] == "install") else { continue };
        let mut requirements = Vec::new();
        let mut options = Vec::new();
        let mut rest = words[at + 2..].iter();
        while let Some(word) = rest.next() {
            if INDEX_OPTIONS.contains(&word.as_str()) {
                if let Some(value) = rest.next() {
                    options.extend([word.clone(), value.clone()]);
                }
            } else if !word.starts_with('-') {
                requirements.push(word.clone());
            }
        }
        let installs_kfp = requirements.iter().any(|r| r.starts_with("kfp==") || r == "kfp");
        if installs_kfp && !with_kfp {
            continue;
        }
        // `--no-deps` of the kfp line would leave kfp without its dependencies: it is installed with them.
        found.requirements.extend(requirements);
        for option in options.chunks(2) {
            if !found.index_options.chunks(2).any(|known| known == option) {
                found.index_options.extend(option.iter().cloned());
            }
        }
    }
    found
}

/// The words of a line as `sh` splits them, for the quoting the KFP compiler writes: single quotes, double
/// quotes with backslash escapes, and bare words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|c| *c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() || c == ';' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Installed package sets: `<dir>/<key>/` complete (or absent), built in `<dir>/tmp/` and renamed into place.
#[derive(Debug)]
pub struct PythonEnvs {
    dir: PathBuf,
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    builds: AtomicU64,
}

impl PythonEnvs {
    /// The environments kept in `dir` (made 0700 if missing); what an earlier process left half-built is removed.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        for sub in [dir.to_path_buf(), dir.join("tmp")] {
            std::fs::create_dir_all(&sub)?;
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700))?;
        }
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            std::fs::remove_dir_all(entry?.path())?;
        }
        Ok(Self { dir: dir.to_path_buf(), gates: Mutex::new(HashMap::new()), builds: AtomicU64::new(0) })
    }

    /// The directory holding `packages` for `creator` with `python` (the interpreter's identity), installed by
    /// `install` (given an empty directory) unless it is there already; concurrent calls for one set install it
    /// once. One creator's environments are never another's: an install runs the packages' own code, which could
    /// leave anything behind.
    pub async fn ensure<F, Fut>(
        &self,
        creator: &str,
        python: &str,
        packages: &Packages,
        install: F,
    ) -> Result<(PathBuf, bool), String>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let key = key(creator, python, packages);
        let gate = {
            let mut gates = self.gates.lock().map_err(|_| "the environment cache is unusable".to_owned())?;
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
            gates.entry(key.clone()).or_default().clone()
        };
        let _held = gate.lock().await;
        let home = self.dir.join(&key);
        if home.is_dir() {
            return Ok((home, false));
        }
        let number = self.builds.fetch_add(1, Ordering::Relaxed);
        let work = self.dir.join("tmp").join(format!("{key}.{}.{number}", std::process::id()));
        tokio::fs::create_dir(&work).await.map_err(|e| format!("cannot prepare the environment: {e}"))?;
        let installed = install(work.clone()).await;
        let placed = match installed {
            Ok(()) => tokio::fs::rename(&work, &home).await.map_err(|e| format!("cannot keep the environment: {e}")),
            Err(e) => Err(e),
        };
        if let Err(e) = placed {
            let _ = tokio::fs::remove_dir_all(&work).await;
            return Err(e);
        }
        Ok((home, true))
    }
}

/// The directory name of an environment: the digest of whose it is, for which interpreter, and what it holds.
fn key(creator: &str, python: &str, packages: &Packages) -> String {
    let mut requirements = packages.requirements.clone();
    requirements.sort();
    let text = format!("{creator}\0{python}\0{}\0{}", requirements.join("\0"), packages.index_options.join("\0"));
    Digest::of(text.as_bytes()).hex().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preamble kfp 2.17.3 compiles for `packages_to_install=['six==1.16.0', 'python-dateutil>=2.8']` and
    /// `pip_index_urls=['https://pypi.org/simple']`.
    const PREAMBLE: &str = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m ensurepip \
        --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet \
        --no-warn-script-location --index-url https://pypi.org/simple --trusted-host https://pypi.org/simple \
        'six==1.16.0' 'python-dateutil>=2.8'  &&  python3 -m pip install --quiet --no-warn-script-location \
        --index-url https://pypi.org/simple --trusted-host https://pypi.org/simple 'kfp==2.17.3' '--no-deps' \
        'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";

    #[test]
    fn the_components_packages_are_read_from_its_preamble_and_kfp_only_when_asked() {
        let found = packages(PREAMBLE, false);
        assert_eq!(found.requirements, ["six==1.16.0", "python-dateutil>=2.8"]);
        assert_eq!(
            found.index_options,
            ["--index-url", "https://pypi.org/simple", "--trusted-host", "https://pypi.org/simple"]
        );
        let with_kfp = packages(PREAMBLE, true);
        assert_eq!(
            with_kfp.requirements,
            [
                "six==1.16.0",
                "python-dateutil>=2.8",
                "kfp==2.17.3",
                "typing-extensions>=3.7.4,<5; python_version<\"3.9\""
            ]
        );
        assert_eq!(with_kfp.index_options.len(), 4, "each option once");
        // The preamble of a component without packages installs kfp alone.
        let plain =
            "PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet 'kfp==2.17.3' '--no-deps' && \"$0\" \"$@\"";
        assert!(packages(plain, false).is_empty());
    }

    #[test]
    fn environments_are_each_creators_own_and_installed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let envs = PythonEnvs::open(dir.path()).expect("open");
        let six = Packages { requirements: vec!["six".into()], index_options: Vec::new() };
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let installs = std::sync::atomic::AtomicUsize::new(0);
        let install = |dir: PathBuf| {
            installs.fetch_add(1, Ordering::SeqCst);
            async move { std::fs::write(dir.join("six.py"), b"").map_err(|e| e.to_string()) }
        };
        let (alice, built) = runtime.block_on(envs.ensure("users/alice", "py", &six, install)).expect("alice");
        assert!(built && alice.join("six.py").exists());
        let (again, built) = runtime.block_on(envs.ensure("users/alice", "py", &six, install)).expect("again");
        assert_eq!((again, built), (alice.clone(), false));
        let (bob, built) = runtime.block_on(envs.ensure("users/bob", "py", &six, install)).expect("bob");
        assert!(built && bob != alice, "bob never imports what alice's install left");
        assert_eq!(installs.load(Ordering::SeqCst), 2);
        // A failed install leaves nothing that passes for an environment.
        let broken = Packages { requirements: vec!["broken".into()], index_options: Vec::new() };
        let failed = runtime.block_on(envs.ensure("users/alice", "py", &broken, |_| async { Err("no".to_owned()) }));
        assert!(failed.is_err());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }
}
