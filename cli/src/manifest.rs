//! What a local file or directory holds: relative paths, sizes and SHA-256 digests.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::CliError;

/// One local file to push.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where it is on disk.
    pub source: PathBuf,
    /// Its path in the version, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// Every regular file under `root` (or `root` itself when it is a file), sorted by path. Symbolic links are
/// refused rather than followed, so a push never reaches outside what was named.
pub fn scan(root: &Path) -> Result<Vec<LocalFile>, CliError> {
    let meta = std::fs::symlink_metadata(root).map_err(CliError::io(root))?;
    let mut files = Vec::new();
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CliError::Usage(format!("{}: the file name is not valid UTF-8", root.display())))?;
        files.push(describe(root, name.to_owned())?);
    } else if meta.is_dir() {
        walk(root, root, &mut files)?;
    } else {
        return Err(CliError::Usage(format!("{}: not a regular file or directory", root.display())));
    }
    if files.is_empty() {
        return Err(CliError::Usage(format!("{}: holds no files", root.display())));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<LocalFile>) -> Result<(), CliError> {
    for entry in std::fs::read_dir(dir).map_err(CliError::io(dir))? {
        let entry = entry.map_err(CliError::io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(CliError::io(&path))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
            let parts =
                parts.ok_or_else(|| CliError::Usage(format!("{}: the path is not valid UTF-8", path.display())))?;
            out.push(describe(&path, parts.join("/"))?);
        } else {
            return Err(CliError::Usage(format!(
                "{}: symbolic links and special files are not pushed",
                path.display()
            )));
        }
    }
    Ok(())
}

fn describe(source: &Path, path: String) -> Result<LocalFile, CliError> {
    let mut file = std::fs::File::open(source).map_err(CliError::io(source))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(CliError::io(source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(LocalFile { source: source.to_path_buf(), path, size, sha256: hex::encode(hasher.finalize()) })
}

/// Where a version's `path` lands under `dir`, refusing anything that would escape it.
pub fn destination(dir: &Path, path: &str) -> Result<PathBuf, CliError> {
    let safe = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if !safe {
        return Err(CliError::Usage(format!("the version names an unsafe path {path:?}; refusing to write it")));
    }
    Ok(path.split('/').fold(dir.to_path_buf(), |acc, segment| acc.join(segment)))
}
