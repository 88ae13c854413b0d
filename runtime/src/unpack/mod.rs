//! Unpacking one image layer into a root, as the OCI image spec describes (`layer.md`), with nothing in the layer
//! trusted: a path may not climb out (`..`, absolute), a link is followed only inside the root and never at the
//! entry's own name, hard links point at regular files inside the root, device nodes are refused, set-uid and
//! set-gid bits dropped, owners not applied (the files belong to the unpacking user; an entry a non-root owner
//! could read stays readable), and every byte is bounded: the compressed blob, what it decompresses to, the number
//! of entries. Whiteouts (`.wh.<name>`) remove what lower layers left, and an opaque marker (`.wh..wh..opq`) empties
//! its directory of them. Both digests — of the blob and of what it decompresses to (the config's `diff_id`) — are
//! compared once the layer has been read to its end.
//!
//! It runs on whatever thread calls it and blocks: callers on an async runtime hand it to a blocking thread.

mod paths;
mod tree;
mod zstd;

use std::{
    collections::HashSet,
    io::{self, Read},
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::Path,
};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, fchmod, futimens, linkat, mkdirat, mknodat, openat,
    symlinkat,
};

pub use self::paths::MAX_DEPTH;
use self::{
    paths::{EntryPath, shown},
    tree::Root,
};
use crate::digest::{Digest, Hashing, TooLarge};

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// Gzip (one member or several).
    Gzip,
    /// Zstandard (one frame or several).
    Zstd,
}

/// Bounds of an image's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes one layer may decompress to.
    pub layer_bytes: u64,
    /// Most bytes all layers of an image may decompress to.
    pub image_bytes: u64,
    /// Most entries all layers of an image may hold.
    pub entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { layer_bytes: 8 << 30, image_bytes: 16 << 30, entries: 1_000_000 }
    }
}

/// What a layer is expected to be, from its descriptor and the image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The blob's digest.
    pub blob: Digest,
    /// The blob's size.
    pub size: u64,
    /// The digest of the decompressed tar stream.
    pub diff_id: Digest,
    /// How it is compressed.
    pub compression: Compression,
}

/// How much of an image's bounds its layers have used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    /// Bytes decompressed.
    pub bytes: u64,
    /// Entries unpacked.
    pub entries: u64,
}

/// Why a layer was not unpacked. What it had written stays in the root, which the caller discards.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry breaks a rule.
    #[error("entry {entry} {why}")]
    Refused {
        /// The entry's path as the layer names it.
        entry: String,
        /// The rule it breaks.
        why: String,
    },
    /// The layer passes a bound.
    #[error("the layer is too large: {0}")]
    TooLarge(String),
    /// The blob or what it decompresses to is not what the image says.
    #[error("the layer's {what} is {found}, not {expected}")]
    DigestMismatch {
        /// `blob digest` or `diff_id`.
        what: &'static str,
        /// What the image says.
        expected: Digest,
        /// What was read.
        found: Digest,
    },
    /// The layer is not a (compressed) tar stream.
    #[error("the layer cannot be read: {0}")]
    Corrupt(String),
    /// Writing to the root failed.
    #[error("unpacking failed: {0}")]
    Io(io::Error),
}

impl From<io::Error> for UnpackError {
    fn from(error: io::Error) -> Self {
        match error.get_ref().and_then(|inner| inner.downcast_ref::<TooLarge>()) {
            Some(too_large) => Self::TooLarge(too_large.to_string()),
            None => Self::Io(error),
        }
    }
}

/// Most bytes of a PAX extension header read (path, link and size are all it may carry that we use).
const MAX_PAX_BYTES: u64 = 64 << 10;
/// Most bytes of the paths one layer's whiteouts are checked against.
const MAX_WRITTEN_BYTES: usize = 64 << 20;

/// Unpacks the layer read from `blob` into the directory `root`, on top of the layers unpacked there before;
/// `used` carries the image's totals from layer to layer.
pub fn unpack_layer(
    root: &Path,
    blob: impl Read,
    expected: &Expected,
    limits: &Limits,
    used: &mut Used,
) -> Result<(), UnpackError> {
    let root = Root::open(root)?;
    let room = limits.layer_bytes.min(limits.image_bytes.saturating_sub(used.bytes));
    let mut compressed = Hashing::new(blob, expected.size);
    let (diff_id, decompressed) = {
        let decoder: Box<dyn Read + '_> = match expected.compression {
            Compression::None => Box::new(&mut compressed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
            Compression::Zstd => Box::new(zstd::Frames::new(io::BufReader::new(&mut compressed))),
        };
        let mut tar_stream = Hashing::new(decoder, room);
        let mut layer = Layer {
            root: &root,
            written: HashSet::new(),
            ancestors: HashSet::new(),
            written_bytes: 0,
            opaque: HashSet::new(),
            room,
            file_bytes: 0,
            limits,
            used,
        };
        {
            let mut archive = tar::Archive::new(&mut tar_stream);
            // Raw: extension headers come to us, so what they may hold is bounded here, not read whole.
            let mut extended = Extended::default();
            for entry in archive.entries().map_err(corrupt)?.raw(true) {
                let mut entry = entry.map_err(corrupt)?;
                if extended.take_extension(&mut entry)? {
                    continue;
                }
                layer.apply(entry, std::mem::take(&mut extended))?;
            }
        }
        // The diff_id covers the whole stream, padding after the tar's end included.
        io::copy(&mut tar_stream, &mut io::sink()).map_err(corrupt)?;
        tar_stream.finish()
    };
    io::copy(&mut compressed, &mut io::sink())?;
    let (blob_digest, size) = compressed.finish();
    if blob_digest != expected.blob || size != expected.size {
        return Err(UnpackError::DigestMismatch {
            what: "blob digest",
            expected: expected.blob.clone(),
            found: blob_digest,
        });
    }
    if diff_id != expected.diff_id {
        return Err(UnpackError::DigestMismatch {
            what: "diff_id",
            expected: expected.diff_id.clone(),
            found: diff_id,
        });
    }
    used.bytes += decompressed;
    Ok(())
}

/// A read error of the stream: too large, or not a (compressed) tar.
fn corrupt(error: io::Error) -> UnpackError {
    match UnpackError::from(error) {
        UnpackError::Io(error) => UnpackError::Corrupt(error.to_string()),
        other => other,
    }
}

/// What extension headers (PAX `x`, GNU `L` and `K`) said about the entry that follows them.
#[derive(Debug, Default)]
struct Extended {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Extended {
    /// Takes `entry` in if it is an extension header (true), bounded; sparse files and unknown extensions refuse.
    fn take_extension<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<bool, UnpackError> {
        let kind = entry.header().entry_type();
        let header_path = entry.header().path_bytes().into_owned();
        let refuse = |why: &str| UnpackError::Refused { entry: shown(&header_path), why: why.into() };
        let body = |entry: &mut tar::Entry<'_, R>, max: u64| -> Result<Vec<u8>, UnpackError> {
            if entry.size() > max {
                return Err(UnpackError::TooLarge(format!("an extension header of {} bytes", entry.size())));
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            Ok(bytes)
        };
        match kind {
            tar::EntryType::XGlobalHeader => {
                body(entry, MAX_PAX_BYTES)?;
            }
            tar::EntryType::XHeader => {
                let bytes = body(entry, MAX_PAX_BYTES)?;
                for record in pax_records(&bytes).map_err(|why| refuse(&why))? {
                    match record {
                        (b"path", value) => self.path = Some(value.to_vec()),
                        (b"linkpath", value) => self.link = Some(value.to_vec()),
                        (b"size", value) => {
                            let size = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                            self.size = Some(size.ok_or_else(|| refuse("has a PAX size that is not a number"))?);
                        }
                        (key, _) if key.starts_with(b"GNU.sparse") => return Err(refuse("is a sparse file")),
                        _ => {}
                    }
                }
            }
            tar::EntryType::GNULongName => self.path = Some(trim_nul(body(entry, paths::MAX_PATH as u64)?)),
            tar::EntryType::GNULongLink => self.link = Some(trim_nul(body(entry, paths::MAX_PATH as u64)?)),
            tar::EntryType::GNUSparse => return Err(refuse("is a sparse file")),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// A PAX record's key and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// The `key=value` records of a PAX header: `<length> <key>=<value>\n` each.
fn pax_records(mut bytes: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let space = bytes.iter().position(|b| *b == b' ').ok_or("has a PAX record without a length")?;
        let length: usize = std::str::from_utf8(&bytes[..space])
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > space + 1 && *n <= bytes.len())
            .ok_or("has a PAX record of a bad length")?;
        let record = bytes[space + 1..length].strip_suffix(b"\n").ok_or("has a PAX record without its newline")?;
        let equals = record.iter().position(|b| *b == b'=').ok_or("has a PAX record without =")?;
        records.push((&record[..equals], &record[equals + 1..]));
        bytes = &bytes[length..];
    }
    Ok(records)
}

/// One layer being applied.
struct Layer<'a> {
    root: &'a Root,
    /// Paths this layer wrote, and every directory above them: its own whiteouts do not remove them.
    written: HashSet<Box<[u8]>>,
    ancestors: HashSet<Box<[u8]>>,
    written_bytes: usize,
    /// Directories this layer already made opaque.
    opaque: HashSet<Box<[u8]>>,
    /// Bytes the layer may still decompress to.
    room: u64,
    /// Bytes of file content written so far.
    file_bytes: u64,
    limits: &'a Limits,
    used: &'a mut Used,
}

impl Layer<'_> {
    fn count(&mut self, entries: u64) -> Result<(), UnpackError> {
        self.used.entries += entries;
        if self.used.entries > self.limits.entries {
            return Err(UnpackError::TooLarge(format!("more than {} entries", self.limits.entries)));
        }
        Ok(())
    }

    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>, extended: Extended) -> Result<(), UnpackError> {
        self.count(1)?;
        let raw = extended.path.unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let refuse = |why: String| UnpackError::Refused { entry: shown(&raw), why };
        if extended.size.is_some_and(|size| size != entry.size()) {
            // Readers that honour the PAX size would see other entries than we do.
            return Err(refuse("declares two sizes".into()));
        }
        let kind = entry.header().entry_type();
        let path = EntryPath::parse(&raw).map_err(refuse)?;
        if path.under_whiteout_name() {
            return Err(refuse("lies under a directory named like a whiteout".into()));
        }
        let Some(name) = path.name().map(|n| n.as_bytes().to_vec()) else {
            return Ok(()); // The root itself: its mode stays the unpacker's.
        };
        let parent_path = path.parent();
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            // Nothing to remove where there is no directory; a whiteout never makes one.
            let Ok((parent, _)) = self.root.dir(&parent_path, false) else { return Ok(()) };
            return self.whiteout(&parent, &parent_path, hidden).map_err(|e| refuse(format!("whiteout failed: {e}")));
        }
        let (parent, made) = self.root.dir(&parent_path, true).map_err(|e| refuse(format!("cannot be placed: {e}")))?;
        self.count(made)?;
        let name = std::ffi::OsStr::from_bytes(&name);
        let header = entry.header();
        let mut mode = header.mode().map_err(|e| refuse(e.to_string()))? & 0o1777;
        if header.uid().unwrap_or(0) != 0 {
            // Owners are not applied: what the image's own user could read or run stays readable and runnable.
            let owner = mode & 0o500;
            mode |= (owner >> 3) | (owner >> 6);
        }
        let mtime = header.mtime().unwrap_or(0);
        let link = extended.link.or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        match kind {
            tar::EntryType::Directory => self.directory(&parent, name, mode).map_err(|e| refuse(e.to_string()))?,
            tar::EntryType::Regular | tar::EntryType::Continuous if raw.ends_with(b"/") => {
                return Err(refuse("is a file named like a directory".into()));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let left = self.room.saturating_sub(self.file_bytes);
                if size > left {
                    return Err(UnpackError::TooLarge(format!(
                        "entry {} needs {size} bytes, {left} are left",
                        shown(&raw)
                    )));
                }
                self.replace(&parent, name).map_err(|e| refuse(e.to_string()))?;
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = openat(&parent, name, flags, Mode::from_raw_mode(0o600)).map_err(|e| refuse(e.to_string()))?;
                let mut file = std::fs::File::from(fd);
                let copied = io::copy(&mut (&mut entry).take(size), &mut file)?;
                self.file_bytes += copied;
                fchmod(&file, Mode::from_raw_mode(mode)).map_err(io::Error::from)?;
                let time = Timespec { tv_sec: i64::try_from(mtime).unwrap_or(0), tv_nsec: 0 };
                futimens(&file, &Timestamps { last_access: time, last_modification: time }).map_err(io::Error::from)?;
            }
            tar::EntryType::Symlink => {
                let target = link.ok_or_else(|| refuse("is a link to nothing".into()))?;
                if target.is_empty() || target.contains(&0) || target.len() >= paths::MAX_PATH {
                    return Err(refuse("is a link with no usable target".into()));
                }
                self.replace(&parent, name).map_err(|e| refuse(e.to_string()))?;
                symlinkat(std::ffi::OsStr::from_bytes(&target), &parent, name).map_err(|e| refuse(e.to_string()))?;
            }
            tar::EntryType::Link => {
                let target = link.ok_or_else(|| refuse("is a hard link to nothing".into()))?;
                let target = EntryPath::parse(&target).map_err(|why| refuse(format!("links to a path that {why}")))?;
                let target_name = target.name().ok_or_else(|| refuse("links to the root".into()))?;
                let (target_dir, _) =
                    self.root.dir(&target.parent(), false).map_err(|e| refuse(format!("links to nothing: {e}")))?;
                if tree::kind(&target_dir, target_name)? != Some(FileType::RegularFile) {
                    return Err(refuse("is a hard link to something that is not a regular file in the image".into()));
                }
                self.replace(&parent, name).map_err(|e| refuse(e.to_string()))?;
                linkat(&target_dir, target_name, &parent, name, AtFlags::empty()).map_err(|e| refuse(e.to_string()))?;
            }
            tar::EntryType::Fifo => {
                self.replace(&parent, name).map_err(|e| refuse(e.to_string()))?;
                mknodat(&parent, name, FileType::Fifo, Mode::from_raw_mode(mode), 0)
                    .map_err(|e| refuse(e.to_string()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => return Err(refuse("is a device node".into())),
            other => return Err(refuse(format!("is of a kind not unpacked ({other:?})"))),
        }
        self.remember(&path)
    }

    /// Records `path` as written by this layer, with the directories above it.
    fn remember(&mut self, path: &EntryPath) -> Result<(), UnpackError> {
        let key = path.key();
        self.written_bytes += key.len();
        self.written.insert(key);
        for ancestor in path.ancestor_keys() {
            if !self.ancestors.contains(&ancestor) {
                self.written_bytes += ancestor.len();
                self.ancestors.insert(ancestor);
            }
        }
        if self.written_bytes > MAX_WRITTEN_BYTES {
            return Err(UnpackError::TooLarge(format!("more than {MAX_WRITTEN_BYTES} bytes of paths in one layer")));
        }
        Ok(())
    }

    /// A directory: made, or its mode changed through a descriptor of it (never by path, which a link could
    /// redirect); whatever else was there goes.
    fn directory(&self, parent: &OwnedFd, name: &std::ffi::OsStr, mode: u32) -> io::Result<()> {
        if tree::kind(parent, name)? != Some(FileType::Directory) {
            self.replace(parent, name)?;
            mkdirat(parent, name, Mode::from_raw_mode(0o700))?;
        }
        let dir = openat(parent, name, tree::OPEN_DIR, Mode::empty())?;
        Ok(fchmod(&dir, Mode::from_raw_mode(mode))?)
    }

    /// Clears the way for a new entry at `name`.
    fn replace(&self, parent: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<()> {
        let mut budget = self.limits.entries;
        tree::remove(parent, name, &mut budget)
    }

    /// `.wh.<hidden>` in `dir`: removes `hidden` as lower layers left it; `.wh..wh..opq` empties `dir` of what
    /// lower layers left. What this layer itself wrote stays, and the directories above it.
    fn whiteout(&mut self, dir: &OwnedFd, dir_path: &EntryPath, hidden: &[u8]) -> io::Result<()> {
        let mut budget = self.limits.entries;
        if hidden == b".wh..opq" {
            if !self.opaque.insert(dir_path.key()) {
                return Ok(());
            }
            for child in tree::children(dir)? {
                self.remove_lower(dir, dir_path, &child, &mut budget, 0)?;
            }
            return Ok(());
        }
        // Other `.wh..wh.` names are aufs bookkeeping, not whiteouts.
        if hidden.is_empty() || hidden.starts_with(b".wh.") || hidden == b"." || hidden == b".." {
            return Ok(());
        }
        self.remove_lower(dir, dir_path, hidden, &mut budget, 0)
    }

    /// Removes what lower layers left at `name` in `dir`: all of it, unless this layer wrote there (then only
    /// what it did not write, below).
    fn remove_lower(
        &self,
        dir: &OwnedFd,
        dir_path: &EntryPath,
        name: &[u8],
        budget: &mut u64,
        depth: usize,
    ) -> io::Result<()> {
        let path = dir_path.child(name);
        let key = path.key();
        let name = std::ffi::OsStr::from_bytes(name);
        if !self.written.contains(&key) && !self.ancestors.contains(&key) {
            return tree::remove(dir, name, budget);
        }
        if tree::kind(dir, name)? != Some(FileType::Directory) || depth > MAX_DEPTH {
            return Ok(());
        }
        let inner = openat(dir, name, tree::OPEN_DIR, Mode::empty())?;
        for child in tree::children(&inner)? {
            self.remove_lower(&inner, &path, &child, budget, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
