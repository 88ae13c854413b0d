//! A step in its own image: the image's unpacked root shown read-only in place of the host's system directories,
//! and the static init (`init.c`, built by `build.rs`) that starts the step in it, since the image holds none of
//! the host's programs.

use std::{
    ffi::OsString,
    path::{Component, Path, PathBuf},
};

use super::{Identity, TaskLimits};

/// Where the init program appears inside the sandbox: beside [`super::super::inside::TASK_ROOT`], in a directory
/// no image can provide (an image's own `/highwind` is not shown).
pub const INIT: &str = "/highwind/init";

/// The init program, linked statically.
const INIT_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/task-init"));

/// Top-level entries of an image never shown: the sandbox makes its own.
const MADE_BY_SANDBOX: [&str; 4] = ["dev", "proc", "tmp", "highwind"];

/// Most top-level entries (and entries of `/etc`) of an image bound into a sandbox: bwrap takes 9,000 arguments.
const MAX_ENTRIES: usize = 1_000;

/// Writes the init program into `dir` (replacing what an older server left) and returns its path.
pub fn install_init(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if INIT_PROGRAM.is_empty() {
        return Err(std::io::Error::other("this server was built without the static init (no static C library)"));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("task-init");
    let fresh = dir.join(format!("task-init.{}", std::process::id()));
    std::fs::write(&fresh, INIT_PROGRAM)?;
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o555))?;
    std::fs::rename(&fresh, &path)?;
    Ok(path)
}

/// The `bwrap` arguments that show `rootfs` as the task's `/`, read-only: each top-level entry bound (or its link
/// made) on the sandbox's own root, so the sandbox can still make `/dev`, `/proc`, `/tmp` and its own mount points
/// whatever the image holds there. With `network`, `/etc` is bound entry by entry, so the sandbox's own
/// `resolv.conf` can stand in it.
pub fn view(rootfs: &Path, network: bool) -> std::io::Result<Vec<OsString>> {
    let mut args = Vec::new();
    for (name, path) in entries(rootfs)? {
        if MADE_BY_SANDBOX.iter().any(|made| name == *made) {
            continue;
        }
        let inside = Path::new("/").join(&name);
        let is_dir = path.symlink_metadata()?.is_dir();
        if network && name == "etc" && !is_dir {
            // The sandbox writes its resolv.conf under /etc: through a link, bwrap (root, before the root is
            // switched) would write wherever the link points on the host. The image's /etc is left out instead.
            continue;
        }
        if network && name == "etc" {
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), inside.clone().into_os_string()]);
            for (name, path) in entries(&path)? {
                if name != "resolv.conf" {
                    bind(&mut args, &path, &inside.join(name))?;
                }
            }
            continue;
        }
        bind(&mut args, &path, &inside)?;
    }
    Ok(args)
}

fn entries(dir: &Path) -> std::io::Result<Vec<(OsString, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if found.len() == MAX_ENTRIES {
            return Err(std::io::Error::other(format!(
                "the image holds more than {MAX_ENTRIES} entries in a directory the sandbox lists"
            )));
        }
        found.push((entry.file_name(), entry.path()));
    }
    found.sort();
    Ok(found)
}

/// A link is made as the link it is (resolved inside the sandbox, never on the host); anything else is bound.
fn bind(args: &mut Vec<OsString>, path: &Path, inside: &Path) -> std::io::Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        args.extend(["--symlink".into(), std::fs::read_link(path)?.into_os_string(), inside.as_os_str().to_owned()]);
    } else {
        args.extend(["--ro-bind".into(), path.as_os_str().to_owned(), inside.as_os_str().to_owned()]);
    }
    Ok(())
}

/// A long-lived server's relay: init stays its parent and relays the connections it accepts on `fd` (a listening
/// Unix socket the platform made, in a directory of its own, and handed down) to `127.0.0.1:port` in the
/// sandbox's own network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// The listening socket's descriptor number in the sandbox.
    pub fd: i32,
    /// The port the server listens on inside.
    pub port: u16,
}

/// The init program's arguments before `--`: the uid to become (`-` to stay, in a user namespace), the limits
/// (0 = none), the relay (`-` for none) and the task's whole environment, counted. A key that is empty or holds
/// `=` cannot be set.
pub fn init_args(
    limits: &TaskLimits,
    identity: Identity,
    relay: Option<&Relay>,
    env: &[(OsString, OsString)],
) -> Result<Vec<OsString>, String> {
    let (user, processes) = match identity {
        Identity::Uid(uid) => (uid.to_string(), limits.processes),
        // The count would include every process of the server's user.
        Identity::UserNamespace => ("-".to_owned(), 0),
    };
    let mut args: Vec<OsString> = [
        user,
        limits.memory_bytes.to_string(),
        limits.cpu_seconds.to_string(),
        limits.file_bytes.to_string(),
        processes.to_string(),
        relay.map_or_else(|| "-".to_owned(), |relay| format!("{}:{}", relay.fd, relay.port)),
        env.len().to_string(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    for (key, value) in env {
        if key.is_empty() || key.as_encoded_bytes().contains(&b'=') {
            return Err(format!("environment variable {key:?} cannot be set"));
        }
        let mut assignment = key.clone();
        assignment.push("=");
        assignment.push(value);
        args.push(assignment);
    }
    Ok(args)
}

/// Where a step in `rootfs` starts: the image's `WorkingDir` when it is an absolute path to a directory of the
/// image, else `/`; the second value says why the image's was not used.
pub fn workdir(rootfs: &Path, wanted: &str) -> (String, Option<String>) {
    if wanted.is_empty() {
        return ("/".to_owned(), None);
    }
    let path = Path::new(wanted);
    let plain = path.is_absolute() && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    // The sandbox replaces these with its own: the image's directories there are not what the step would see.
    let replaced =
        path.components().nth(1).is_some_and(|first| MADE_BY_SANDBOX.iter().any(|m| first.as_os_str() == *m));
    let mut at = rootfs.to_path_buf();
    let mut inside = true;
    for component in path.components().filter(|c| matches!(c, Component::Normal(_))) {
        at.push(component);
        // Every step checked without following links: a link could point anywhere on the host.
        if !at.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            inside = false;
            break;
        }
    }
    if plain && inside && !replaced {
        (wanted.to_owned(), None)
    } else {
        ("/".to_owned(), Some(format!("the image's working directory {wanted:?} is not a directory of it; / instead")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(args: &[OsString], option: &str) -> Vec<(String, String)> {
        args.windows(3)
            .filter(|w| w[0] == option)
            .map(|w| (w[1].to_string_lossy().into_owned(), w[2].to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn an_image_root_is_shown_entry_by_entry_without_what_the_sandbox_makes() {
        let root = tempfile::tempdir().expect("tempdir");
        for dir in ["usr/bin", "etc", "tmp", "proc", "highwind"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("dir");
        }
        std::fs::write(root.path().join("etc/passwd"), b"root:x:0:0::/:/bin/sh\n").expect("file");
        std::os::unix::fs::symlink("usr/bin", root.path().join("bin")).expect("link");
        let args = view(root.path(), false).expect("view");
        let bound = pairs(&args, "--ro-bind");
        assert_eq!(
            bound.iter().map(|(_, to)| to.as_str()).collect::<Vec<_>>(),
            ["/etc", "/usr"],
            "what the sandbox makes is never the image's: {args:?}"
        );
        assert_eq!(pairs(&args, "--symlink"), [("usr/bin".to_owned(), "/bin".to_owned())]);
        let with_network = view(root.path(), true).expect("view");
        assert!(pairs(&with_network, "--ro-bind").iter().any(|(_, to)| to == "/etc/passwd"));
    }

    #[test]
    fn an_etc_that_is_a_link_is_left_out_when_the_sandbox_writes_into_it() {
        let root = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/oldroot/srv", root.path().join("etc")).expect("link");
        let with_network = view(root.path(), true).expect("view");
        assert!(with_network.iter().all(|arg| arg != "/etc"), "bwrap would write through it: {with_network:?}");
        let without = view(root.path(), false).expect("view");
        assert_eq!(pairs(&without, "--symlink"), [("/oldroot/srv".to_owned(), "/etc".to_owned())]);
    }

    #[test]
    fn the_environment_reaches_init_as_counted_arguments_and_bad_keys_are_refused() {
        let env = [(OsString::from("PATH"), OsString::from("/bin")), (OsString::from("A"), OsString::from("x=y"))];
        let args = init_args(&TaskLimits::default(), Identity::Uid(1_500_000), None, &env).expect("args");
        assert_eq!(args[0], "1500000");
        assert_eq!((args[5].to_str(), args[6].to_str()), (Some("-"), Some("2")));
        assert_eq!(&args[7..], ["PATH=/bin", "A=x=y"]);
        let relay = Relay { fd: 8, port: 8080 };
        let args = init_args(&TaskLimits::default(), Identity::UserNamespace, Some(&relay), &env).expect("args");
        assert_eq!(args[5], "8:8080");
        for bad in ["", "A=B"] {
            let env = [(OsString::from(bad), OsString::from("v"))];
            assert!(init_args(&TaskLimits::default(), Identity::UserNamespace, None, &env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_working_directory_must_be_a_real_directory_of_the_image() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("app/src")).expect("dir");
        std::os::unix::fs::symlink("/", root.path().join("escape")).expect("link");
        assert_eq!(workdir(root.path(), "/app/src"), ("/app/src".to_owned(), None));
        assert_eq!(workdir(root.path(), "").0, "/");
        std::fs::create_dir_all(root.path().join("tmp/build")).expect("dir");
        for bad in ["/escape", "/escape/etc", "/missing", "app", "/app/../app", "/tmp/build"] {
            let (dir, why) = workdir(root.path(), bad);
            assert_eq!(dir, "/", "{bad}");
            assert!(why.is_some_and(|w| w.contains(bad)), "{bad}");
        }
    }
}
