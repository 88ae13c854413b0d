//! Files only their owner reads (secrets, keys, tokens), written whole or not at all.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// Writes `content` to `path` readable by its owner only (0600), atomically: a uniquely named temporary beside it
/// is written and synced, then renamed over it, so a reader or a crash sees the old content or the new, never a
/// part, and two writers never share a temporary.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    let written = write_new_private(&temporary, content).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Makes `path` with `content`, readable by its owner only, unless it exists: when several processes make the
/// same file at once, one content wins whole and all of them read it. True when this call made it.
pub fn create_private_once(path: &Path, content: &[u8]) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let temporary = temporary_beside(path);
    write_new_private(&temporary, content)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A temporary name next to `path` that no other writer uses.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{:016x}.tmp", std::process::id(), rand::random::<u64>()))
}

fn write_new_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_private_file_is_replaced_whole_and_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.json");
        write_private(&path, b"first").expect("write");
        write_private(&path, b"second, longer").expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"second, longer");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary is left behind: {left:?}");
        assert!(write_private(&dir.path().join("missing/dir/file"), b"x").is_err());
    }

    #[test]
    fn a_file_made_once_keeps_its_first_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        assert!(create_private_once(&path, b"first").expect("create"));
        assert!(!create_private_once(&path, b"second").expect("exists"));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "no temporary is left behind");
    }
}
