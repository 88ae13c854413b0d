//! File-system operations inside an image root, all relative to directory descriptors. Directories above an entry
//! are resolved by the kernel with `RESOLVE_IN_ROOT` (a link in the image, `/var/run -> /run` or `evil -> /`, is
//! followed as the image would see it, never out of the root; `..` stops at the root); an entry's own name is never
//! followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), so a link planted by an earlier entry cannot redirect a write.

use std::{
    ffi::OsStr,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use rustix::{
    fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, fchmod, mkdirat, openat, openat2, statat, unlinkat},
    io::Errno,
};

use super::paths::{EntryPath, MAX_DEPTH};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
const DIR_PATH: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// The root an image is unpacked into.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens the directory `path` as a root (itself not through a link).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self { fd: openat(CWD, path, DIR_PATH | OFlags::NOFOLLOW, Mode::empty())? })
    }

    /// The directory `dir` (from the root down), and how many directories were made for it (0755) where missing
    /// when `create`; a component that exists and is not a directory, or a link to none, refuses.
    pub fn dir(&self, dir: &EntryPath, create: bool) -> std::io::Result<(OwnedFd, u64)> {
        let mut whole = PathBuf::new();
        whole.extend(dir.parents());
        whole.extend(dir.name());
        // Most entries land in a directory that exists: one lookup.
        match self.resolve(&whole) {
            Err(e) if create && e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            other => return other.map(|fd| (fd, 0)),
        }
        let mut prefix = PathBuf::new();
        let mut made = 0;
        for component in whole.iter() {
            let parent = self.resolve(&prefix)?;
            prefix.push(component);
            match self.resolve(&prefix) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    match mkdirat(&parent, component, Mode::from_raw_mode(0o700)) {
                        Ok(()) => {
                            made += 1;
                            // Not left to the umask: an image's programs traverse directories it never listed.
                            let new = openat(&parent, component, OPEN_DIR, Mode::empty())?;
                            fchmod(&new, Mode::from_raw_mode(0o755))?;
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok((self.resolve(&prefix)?, made))
    }

    /// `path` resolved in the root. The kernel answers EAGAIN when a rename anywhere on the machine raced a
    /// lookup that crossed `..`: asked again a few times.
    fn resolve(&self, path: &Path) -> std::io::Result<OwnedFd> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        let mut attempts = 0;
        loop {
            match openat2(&self.fd, path, DIR_PATH, Mode::empty(), RESOLVE) {
                Err(Errno::AGAIN) if attempts < 8 => attempts += 1,
                other => return Ok(other?),
            }
        }
    }
}

/// Opening a directory for reading, never through a link.
pub const OPEN_DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// What is at `name` in `dir`, without following a link.
pub fn kind(dir: &OwnedFd, name: &OsStr) -> std::io::Result<Option<FileType>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes whatever is at `name` in `dir` (a directory with everything in it), never following a link; at most
/// `budget` entries, which it counts down.
pub fn remove(dir: &OwnedFd, name: &OsStr, budget: &mut u64) -> std::io::Result<()> {
    remove_at(dir, name, budget, 0)
}

fn remove_at(dir: &OwnedFd, name: &OsStr, budget: &mut u64, depth: usize) -> std::io::Result<()> {
    *budget = budget.checked_sub(1).ok_or_else(|| std::io::Error::other("too many entries to remove"))?;
    match kind(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            if depth > MAX_DEPTH {
                return Err(std::io::Error::other("a directory too deep to remove"));
            }
            let inner = openat(dir, name, OPEN_DIR, Mode::empty())?;
            for child in children(&inner)? {
                remove_at(&inner, OsStr::from_bytes(&child), budget, depth + 1)?;
            }
            Ok(unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(unlinkat(dir, name, AtFlags::empty())?),
    }
}

/// The names in directory `dir` (an `O_PATH` descriptor is reopened for reading), `.` and `..` left out.
pub fn children(dir: &OwnedFd) -> std::io::Result<Vec<Vec<u8>>> {
    let readable = openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut names = Vec::new();
    for entry in Dir::read_from(&readable)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}
