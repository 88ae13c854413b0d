//! Reading what a task left in its directory without trusting it. A task may leave a FIFO, a socket, a device or
//! a symbolic link where a file is expected, or a directory too large or too deep to walk: files are opened
//! without following links and without blocking (`O_NOFOLLOW | O_NONBLOCK`), their type is checked on the opened
//! descriptor, reads are bounded, and walks stop at a number of entries and a depth.
//!
//! Everything here blocks the calling thread on file-system calls: call it on a blocking thread
//! (`tokio::task::spawn_blocking`), never on an async worker.

use std::{
    fs::{File, FileType, OpenOptions},
    io::{ErrorKind, Read},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Most entries (files, directories and links together) a walk looks at.
pub const MAX_ENTRIES: usize = 50_000;
/// Most directory levels a walk descends below its root.
pub const MAX_DEPTH: usize = 128;

/// Why something a task left cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeftBehindError {
    /// Nothing is there.
    #[error("does not exist")]
    Missing,
    /// Something other than a regular file is where one must be.
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// The file is larger than the reader takes.
    #[error("is over {0} bytes")]
    TooLarge(u64),
    /// The file is not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotText,
    /// A directory walk met more entries than [`MAX_ENTRIES`].
    #[error("holds more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// A directory walk went deeper than [`MAX_DEPTH`].
    #[error("is nested deeper than {MAX_DEPTH} directories")]
    TooDeep,
    /// The file system refused.
    #[error("cannot be read: {0}")]
    Io(#[source] std::io::Error),
}

impl From<std::io::Error> for LeftBehindError {
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            ErrorKind::NotFound => Self::Missing,
            _ => Self::Io(error),
        }
    }
}

/// What a file type is called in messages.
pub fn kind_name(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// Opens the regular file at `path` for reading. A symbolic link at `path` itself is refused, not followed
/// (resolve links first when they are allowed), and nothing else blocks: a FIFO without a writer opens at once
/// and is then refused by the type of the opened descriptor.
pub fn open_regular(path: &Path) -> Result<File, LeftBehindError> {
    // Looking first keeps devices from being opened at all; the descriptor's own type below is what counts.
    let seen = path.symlink_metadata()?.file_type();
    if !seen.is_file() {
        return Err(LeftBehindError::NotRegular(kind_name(seen)));
    }
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(
        |e| match e.raw_os_error() {
            // Swapped for a link or a socket since it was looked at.
            Some(libc::ELOOP) => LeftBehindError::NotRegular("symbolic link"),
            Some(libc::ENXIO) => LeftBehindError::NotRegular("socket"),
            _ => LeftBehindError::from(e),
        },
    )?;
    let opened = file.metadata()?.file_type();
    if !opened.is_file() {
        return Err(LeftBehindError::NotRegular(kind_name(opened)));
    }
    Ok(file)
}

/// The text of the regular file at `path` (see [`open_regular`]), at most `max` bytes; `None` when nothing is
/// there.
pub fn read_text(path: &Path, max: u64) -> Result<Option<String>, LeftBehindError> {
    let file = match open_regular(path) {
        Err(LeftBehindError::Missing) => return Ok(None),
        other => other?,
    };
    if file.metadata()?.len() > max {
        return Err(LeftBehindError::TooLarge(max));
    }
    // The file may still grow while it is read: never take more than the bound.
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(LeftBehindError::TooLarge(max));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| LeftBehindError::NotText)
}

/// One entry below a walked directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// Its own type: a link is reported as a link, never followed.
    pub file_type: FileType,
}

/// Every entry below directory `root`, depth first, without following links (a link to a directory is an entry,
/// not descended into). Fails once more than [`MAX_ENTRIES`] entries were seen or a directory lies deeper than
/// [`MAX_DEPTH`] levels, so a walk costs bounded time and memory whatever the task left.
pub fn walk(root: &Path) -> Result<Vec<Entry>, LeftBehindError> {
    let mut entries = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(LeftBehindError::TooDeep);
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entries.len() >= MAX_ENTRIES {
                return Err(LeftBehindError::TooManyEntries);
            }
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                stack.push((entry.path(), depth + 1));
            }
            entries.push(Entry { path: entry.path(), file_type });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("out");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let refused = read_text(&fifo, 1024).expect_err("a FIFO");
        assert_eq!(refused.to_string(), "is a FIFO, not a regular file");
    }

    #[test]
    fn a_link_is_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("target"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).expect("link");
        let refused = read_text(&dir.path().join("link"), 1024).expect_err("a link");
        assert_eq!(refused.to_string(), "is a symbolic link, not a regular file");
        assert_eq!(read_text(&dir.path().join("target"), 1024).expect("a file").as_deref(), Some("secret"));
        assert!(read_text(&dir.path().join("absent"), 1024).expect("nothing").is_none());
    }

    #[test]
    fn reads_and_walks_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big"), vec![b'x'; 2048]).expect("write");
        assert!(matches!(read_text(&dir.path().join("big"), 1024), Err(LeftBehindError::TooLarge(1024))));

        let mut deep = dir.path().join("deep");
        for _ in 0..=MAX_DEPTH {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).expect("deep");
        assert!(matches!(walk(&dir.path().join("deep")), Err(LeftBehindError::TooDeep)));

        let wide = dir.path().join("wide");
        std::fs::create_dir(&wide).expect("wide");
        for i in 0..=MAX_ENTRIES {
            File::create(wide.join(i.to_string())).expect("entry");
        }
        assert!(matches!(walk(&wide), Err(LeftBehindError::TooManyEntries)));
        std::fs::remove_file(wide.join("0")).expect("one fewer");
        assert_eq!(walk(&wide).expect("at the bound").len(), MAX_ENTRIES);
    }
}
