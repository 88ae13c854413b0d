//! The user an image's config names (`User`: `name`, `uid`, `name:group`, `uid:gid`…) resolved against the image's
//! own `/etc/passwd` and `/etc/group`, as container runtimes do: a name must be there, a number need not be. The
//! files are read inside the unpacked root (a link in them never leads out of it) and bounded.

use std::{io::Read, path::Path};

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};

/// Most bytes of `/etc/passwd` or `/etc/group` read.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Who an image says its process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The name `/etc/passwd` gives the uid, if any.
    pub name: Option<String>,
    /// Its home directory there, if any.
    pub home: Option<String>,
}

impl std::fmt::Display for ImageUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

/// Why an image's user cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A name the image's `/etc/passwd` (or `/etc/group`) does not hold.
    #[error("the image's user {user:?}: no {name:?} in the image's {file}")]
    Unknown {
        /// The config's `User`.
        user: String,
        /// The name not found.
        name: String,
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
    },
    /// Not a user at all (empty parts, too many colons, an id out of range).
    #[error("the image's user {0:?} is not NAME, UID, NAME:GROUP or UID:GID")]
    Malformed(String),
    /// The image's files could not be read.
    #[error("the image's {file}: {reason}")]
    Unreadable {
        /// The file.
        file: &'static str,
        /// Why.
        reason: String,
    },
}

/// The user `spec` (the config's `User`) names in the image unpacked at `rootfs`. Empty means root. As runc does:
/// the primary group is the passwd entry's unless a group is given; a numeric uid the image does not list gets
/// gid 0.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ImageUser, UserError> {
    let malformed = || UserError::Malformed(spec.to_owned());
    let (user, group) = match spec.split_once(':') {
        Some((_, group)) if group.contains(':') => return Err(malformed()),
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user.is_empty() && (group.is_some() || !spec.is_empty()) || group.is_some_and(str::is_empty) {
        return Err(malformed());
    }
    let passwd = read_table(rootfs, "/etc/passwd")?;
    let entry = match id_of(user).map_err(|()| malformed())? {
        Some(uid) => passwd.iter().find(|e| e.id == uid).cloned().unwrap_or(Entry::numeric(uid)),
        None if user.is_empty() => passwd.iter().find(|e| e.id == 0).cloned().unwrap_or(Entry::numeric(0)),
        None => passwd.iter().find(|e| e.name == user).cloned().ok_or_else(|| UserError::Unknown {
            user: spec.to_owned(),
            name: user.to_owned(),
            file: "/etc/passwd",
        })?,
    };
    let gid =
        match group {
            None => entry.gid,
            Some(group) => match id_of(group).map_err(|()| malformed())? {
                Some(gid) => gid,
                None => read_table(rootfs, "/etc/group")?.iter().find(|e| e.name == group).map(|e| e.id).ok_or_else(
                    || UserError::Unknown { user: spec.to_owned(), name: group.to_owned(), file: "/etc/group" },
                )?,
            },
        };
    Ok(ImageUser { uid: entry.id, gid, name: entry.name_if_listed(), home: entry.home })
}

/// A number, `None` for a name; `Err` for a number out of range (ids stop below 2³²−1, which means "none").
fn id_of(text: &str) -> Result<Option<u32>, ()> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(id) if id < u32::MAX => Ok(Some(id)),
        _ => Err(()),
    }
}

/// One line of `/etc/passwd` (name, uid, gid, home) or `/etc/group` (name, gid).
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    id: u32,
    gid: u32,
    home: Option<String>,
    listed: bool,
}

impl Entry {
    fn numeric(uid: u32) -> Self {
        Self { name: String::new(), id: uid, gid: 0, home: None, listed: false }
    }

    fn name_if_listed(&self) -> Option<String> {
        self.listed.then(|| self.name.clone())
    }
}

/// The entries of `file` in the root; none when the image has no such file. Lines that do not parse are skipped,
/// as the C library does.
fn read_table(rootfs: &Path, file: &'static str) -> Result<Vec<Entry>, UserError> {
    let unreadable = |reason: String| UserError::Unreadable { file, reason };
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| unreadable(e.to_string()))?;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let relative = file.trim_start_matches('/');
    let fd = match openat2(&root, relative, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let file_handle = std::fs::File::from(fd);
    if !file_handle.metadata().map_err(|e| unreadable(e.to_string()))?.is_file() {
        return Err(unreadable("not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    file_handle.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = String::from_utf8_lossy(&bytes);
    let passwd = file == "/etc/passwd";
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2)?.parse::<u32>().ok()?;
            let name = (*fields.first()?).to_owned();
            if name.is_empty() || line.starts_with('#') {
                return None;
            }
            if passwd {
                let gid = fields.get(3)?.parse::<u32>().ok()?;
                let home = fields.get(5).filter(|h| !h.is_empty()).map(|h| (*h).to_owned());
                Some(Entry { name, id, gid, home, listed: true })
            } else {
                Some(Entry { name, id, gid: id, home: None, listed: true })
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn image(passwd: &str, group: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        dir
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\n# a comment\nbroken line\napp:x:1000:1001:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";

    #[test]
    fn names_and_numbers_resolve_as_container_runtimes_resolve_them() {
        let root = image(PASSWD, GROUP);
        let at = |spec: &str| resolve(root.path(), spec).map(|u| (u.uid, u.gid, u.name, u.home));
        assert_eq!(at(""), Ok((0, 0, Some("root".into()), Some("/root".into()))));
        assert_eq!(at("app"), Ok((1000, 1001, Some("app".into()), Some("/home/app".into()))));
        assert_eq!(at("1000"), Ok((1000, 1001, Some("app".into()), Some("/home/app".into()))), "by uid, its entry");
        assert_eq!(at("4242"), Ok((4242, 0, None, None)), "a uid the image does not list: gid 0");
        assert_eq!(at("app:staff").map(|u| u.1), Ok(50));
        assert_eq!(at("4242:77").map(|u| (u.0, u.1)), Ok((4242, 77)));
        assert_eq!(resolve(root.path(), "app").unwrap().to_string(), "1000:1001 (app)");
    }

    #[test]
    fn unknown_names_and_malformed_users_are_refused_naming_them() {
        let root = image(PASSWD, GROUP);
        let unknown = resolve(root.path(), "ghost").unwrap_err();
        assert!(matches!(&unknown, UserError::Unknown { file: "/etc/passwd", .. }), "{unknown}");
        assert!(unknown.to_string().contains("ghost"), "{unknown}");
        let group = resolve(root.path(), "app:nogroup").unwrap_err();
        assert!(matches!(&group, UserError::Unknown { file: "/etc/group", .. }), "{group}");
        for bad in [":50", "app:", "a:b:c", "4294967295", "99999999999"] {
            assert_eq!(resolve(root.path(), bad), Err(UserError::Malformed(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_image_files_are_read_inside_the_root_and_bounded() {
        // /etc/passwd a link to the host's own: read inside the root, where it leads to nothing.
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "app:x:7:7::/:/bin/sh\n").unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("passwd"), root.path().join("etc/passwd")).unwrap();
        assert!(matches!(resolve(root.path(), "app"), Err(UserError::Unknown { .. })), "the host's entry is not used");
        // No passwd at all: numbers still work, names do not.
        let bare = tempfile::tempdir().unwrap();
        assert_eq!(resolve(bare.path(), "").map(|u| (u.uid, u.gid)), Ok((0, 0)));
        assert!(resolve(bare.path(), "app").is_err());
        // A passwd too large to be one is refused, not read whole.
        let big = image(&"x".repeat((MAX_FILE_BYTES + 1) as usize), GROUP);
        assert!(matches!(resolve(big.path(), "1"), Err(UserError::Unreadable { .. })));
    }
}
