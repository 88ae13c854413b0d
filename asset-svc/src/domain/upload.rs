//! Upload sessions: the files a new version will hold, declared up front, and the rules for writing them.

use std::collections::{BTreeMap, HashMap, hash_map::Entry};

use chrono::{DateTime, Utc};
use highwind_common::validation::Violations;
use uuid::Uuid;

use super::{
    paths,
    version::{FileEntry, valid_sha256},
};

/// Largest frame of data one write may carry.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Most bytes one version's file list may take on the wire: with its metadata, any one version or upload stays
/// under the 4 MiB most gRPC clients accept (10,000 files with paths of about 200 bytes).
pub const MAX_LISTED_BYTES: usize = 3 * 1024 * 1024;

/// What `file` takes in a version's or an upload's file list: its path and digest with generous room for the
/// size, the flags and the framing of each field.
fn listed_bytes(file: &FileEntry) -> usize {
    file.path.len() + file.sha256.len() + 32
}

/// Lifecycle of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Accepting data.
    Open,
    /// Became a version.
    Committed,
    /// Abandoned by the client.
    Cancelled,
    /// Idle past its lifetime.
    Expired,
}

impl UploadState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Committed => "COMMITTED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses [`Self::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Committed, Self::Cancelled, Self::Expired].into_iter().find(|st| st.as_str() == s)
    }
}

/// A declared file and whether its content is stored and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// The file as it will appear in the manifest.
    pub entry: FileEntry,
    /// Content stored under its digest (written and verified, or already present).
    pub complete: bool,
}

/// A stored upload session.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// UUIDv7.
    pub id: Uuid,
    /// The asset the version will belong to.
    pub asset_id: Uuid,
    /// Who opened it.
    pub creator: String,
    /// Lifecycle.
    pub state: UploadState,
    /// Declared files, sorted by path.
    pub files: Vec<UploadFile>,
    /// Description of the version to be.
    pub description: String,
    /// Labels of the version to be.
    pub labels: BTreeMap<String, String>,
    /// When it was opened.
    pub create_time: DateTime<Utc>,
    /// When it expires unless written to.
    pub expire_time: DateTime<Utc>,
    /// The committed version's number.
    pub version_number: Option<i64>,
}

/// What the write path needs of an upload: whose it is and whether it is open, without its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadHead {
    /// UUIDv7.
    pub id: Uuid,
    /// The asset the version will belong to.
    pub asset_id: Uuid,
    /// Who opened it.
    pub creator: String,
    /// Lifecycle.
    pub state: UploadState,
}

impl Upload {
    /// The upload without its files.
    pub fn head(&self) -> UploadHead {
        UploadHead { id: self.id, asset_id: self.asset_id, creator: self.creator.clone(), state: self.state }
    }

    /// The total size its files declare, counted towards its creator's quotas while it is open.
    pub fn declared_bytes(&self) -> u64 {
        self.files.iter().fold(0u64, |sum, f| sum.saturating_add(f.entry.size))
    }

    /// The declared file at `path`.
    pub fn file(&self, path: &str) -> Option<&UploadFile> {
        self.files.iter().find(|f| f.entry.path == path)
    }

    /// Paths whose content is not stored yet.
    pub fn missing(&self) -> Vec<&str> {
        self.files.iter().filter(|f| !f.complete).map(|f| f.entry.path.as_str()).collect()
    }

    /// The manifest the committed version will have.
    pub fn manifest(&self) -> Vec<FileEntry> {
        self.files.iter().map(|f| f.entry.clone()).collect()
    }
}

/// Limits an upload must respect.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Most files in one version.
    pub max_files: usize,
    /// Largest total size of one version.
    pub max_version_bytes: u64,
}

/// What one user may hold at once: open uploads, the bytes they declare, and everything stored in their assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Most uploads open at once.
    pub max_open_uploads: u64,
    /// Most bytes all open uploads may declare together.
    pub max_open_bytes: u64,
    /// Most bytes the user's assets may hold, counting what open uploads declare.
    pub max_stored_bytes: u64,
}

/// What a user holds when they open another upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Uploads open (and not yet past their expiry).
    pub open_uploads: u64,
    /// Bytes those uploads declare.
    pub open_bytes: u64,
    /// Bytes the user's assets hold in versions.
    pub stored_bytes: u64,
}

impl UploadQuota {
    /// Why an upload declaring `declared` bytes may not open on top of `usage`, or `None` when it may.
    pub fn refusal(&self, usage: QuotaUsage, declared: u64) -> Option<String> {
        if usage.open_uploads >= self.max_open_uploads {
            return Some(format!(
                "at most {} uploads open at once ({} are open): commit or cancel one first",
                self.max_open_uploads, usage.open_uploads
            ));
        }
        let open = usage.open_bytes.saturating_add(declared);
        if open > self.max_open_bytes {
            return Some(format!(
                "open uploads may declare at most {} bytes together ({} declared, this one {declared})",
                self.max_open_bytes, usage.open_bytes
            ));
        }
        if usage.stored_bytes.saturating_add(open) > self.max_stored_bytes {
            return Some(format!(
                "storage of at most {} bytes ({} stored, {} in open uploads, this one {declared})",
                self.max_stored_bytes, usage.stored_bytes, usage.open_bytes
            ));
        }
        None
    }
}

/// The declared files, validated and sorted by path, or every reason they cannot make a version.
pub fn declare(files: Vec<FileEntry>, limits: UploadLimits) -> Result<Vec<FileEntry>, Violations> {
    let mut violations = Violations::new();
    if files.is_empty() {
        violations.add("files", "declare at least one file");
    }
    if files.len() > limits.max_files {
        violations.add("files", format!("at most {} files per version, got {}", limits.max_files, files.len()));
        return Err(violations);
    }
    let mut total: u64 = 0;
    // The first file declared under each comparable form, so a later one that collides with it is named.
    let mut first_of: HashMap<String, usize> = HashMap::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        if let Err(reason) = paths::validate(&file.path) {
            violations.add(format!("files[{i}].path"), reason);
        }
        match first_of.entry(paths::comparable(&file.path)) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(first) => {
                let (j, first_path) = (*first.get(), &files[*first.get()].path);
                let reason = if *first_path == file.path {
                    format!("{:?} is declared twice (also files[{j}])", file.path)
                } else {
                    format!(
                        "{:?} and {first_path:?} (files[{j}]) are one name on systems that ignore case or Unicode \
                         normalisation",
                        file.path
                    )
                };
                violations.add(format!("files[{i}].path"), reason);
            }
        }
        if !valid_sha256(&file.sha256) {
            violations.add(format!("files[{i}].sha256"), "must be 64 lowercase hex digits");
        }
        total = total.saturating_add(file.size);
    }
    let listed = files.iter().fold(0usize, |sum, f| sum.saturating_add(listed_bytes(f)));
    if listed > MAX_LISTED_BYTES {
        violations.add(
            "files",
            format!(
                "the file list takes {listed} bytes (paths, digests and sizes); at most {MAX_LISTED_BYTES}, so every \
                 version fits one answer: use fewer files or shorter paths"
            ),
        );
    }
    if total > limits.max_version_bytes {
        violations.add("files", format!("total size {total} exceeds the limit of {} bytes", limits.max_version_bytes));
    }
    // Compared in their comparable forms, so `A` and `a/b` clash where case is ignored.
    let forms: Vec<(&str, usize)> = first_of.iter().map(|(form, i)| (form.as_str(), *i)).collect();
    let comparable: Vec<&str> = forms.iter().map(|(form, _)| *form).collect();
    if let Some((file, nested)) = paths::file_directory_clash(&comparable) {
        let original = |form: &str| {
            forms.iter().find(|(f, _)| *f == form).map_or_else(|| form.to_owned(), |(_, i)| files[*i].path.clone())
        };
        violations.add(
            "files",
            format!("{:?} cannot be both a file and the directory of {:?}", original(file), original(nested)),
        );
    }
    let mut sorted = files;
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    violations.into_result(sorted)
}

/// Checks the version-to-be's description and labels.
pub fn validate_metadata(description: &str, labels: &BTreeMap<String, String>, violations: &mut Violations) {
    super::version::validate_metadata(description, labels, &BTreeMap::new(), "", violations);
}

/// Why a write of `len` bytes at `offset` into `file`, which has `acknowledged` bytes, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRefusal {
    /// The write does not start where the file's stored bytes end.
    WrongOffset {
        /// Where it must start.
        expected: u64,
    },
    /// The write would go past the declared size.
    PastEnd {
        /// The declared size.
        size: u64,
    },
    /// The file's content is already complete.
    AlreadyComplete,
    /// The frame is larger than allowed.
    TooLarge,
}

/// Whether a write may proceed.
pub fn check_write(file: &UploadFile, acknowledged: u64, offset: u64, len: usize) -> Result<(), WriteRefusal> {
    if len > MAX_CHUNK_BYTES {
        return Err(WriteRefusal::TooLarge);
    }
    if file.complete {
        return Err(WriteRefusal::AlreadyComplete);
    }
    if offset != acknowledged {
        return Err(WriteRefusal::WrongOffset { expected: acknowledged });
    }
    if offset.saturating_add(len as u64) > file.entry.size {
        return Err(WriteRefusal::PastEnd { size: file.entry.size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: UploadLimits = UploadLimits { max_files: 3, max_version_bytes: 100 };

    fn entry(path: &str, size: u64) -> FileEntry {
        FileEntry { path: path.into(), size, sha256: "0".repeat(64) }
    }

    #[test]
    fn declarations_are_sorted_and_checked() {
        let sorted = declare(vec![entry("b", 1), entry("a", 2)], LIMITS).expect("valid");
        assert_eq!(sorted.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(declare(vec![], LIMITS).is_err());
        assert!(declare(vec![entry("a", 1), entry("a", 1)], LIMITS).is_err(), "duplicate");
        assert!(declare(vec![entry("a", 1), entry("a/b", 1)], LIMITS).is_err(), "file and directory");
        assert!(declare(vec![entry("a", 1); 4], LIMITS).is_err(), "too many files");
        assert!(declare(vec![entry("a", 60), entry("b", 41)], LIMITS).is_err(), "over quota");
        let mut bad_digest = entry("a", 1);
        bad_digest.sha256 = "XYZ".into();
        let err = declare(vec![bad_digest, entry("../b", 1)], LIMITS).expect_err("invalid");
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["files[0].sha256", "files[1].path"]);
        let folded = declare(vec![entry("b", 1), entry("Caf\u{e9}", 1), entry("cafe\u{301}", 1)], LIMITS);
        let fields: Vec<_> = folded.expect_err("collide").iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["files[2].path"], "the later of two colliding names is named");
        assert!(declare(vec![entry("A", 1), entry("a/b", 1)], LIMITS).is_err(), "file and directory, ignoring case");
        let roomy = UploadLimits { max_files: 10_000, max_version_bytes: 1 << 40 };
        let long = |i: usize| entry(&format!("{i:04}/{}", "p".repeat(400)), 1);
        let err = declare((0..10_000).map(long).collect(), roomy).expect_err("a 4.9 MB file list");
        assert!(err.iter().any(|v| v.field == "files" && v.description.contains("file list takes")), "{err:?}");
        assert!(declare((0..5_000).map(long).collect(), roomy).is_ok(), "2.5 MB fits");
    }

    #[test]
    fn quotas_count_open_uploads_declared_and_stored_bytes() {
        let quota = UploadQuota { max_open_uploads: 2, max_open_bytes: 100, max_stored_bytes: 150 };
        let usage = QuotaUsage { open_uploads: 1, open_bytes: 40, stored_bytes: 50 };
        assert_eq!(quota.refusal(usage, 60), None, "exactly at every limit");
        let full = QuotaUsage { open_uploads: 2, ..usage };
        assert!(quota.refusal(full, 0).expect("refused").contains("at most 2 uploads open"));
        assert!(quota.refusal(usage, 61).expect("refused").contains("at most 100 bytes"));
        let stored = QuotaUsage { stored_bytes: 51, ..usage };
        assert!(quota.refusal(stored, 60).expect("refused").contains("storage of at most 150"));
        assert!(quota.refusal(usage, u64::MAX).is_some(), "no overflow");
    }

    #[test]
    fn writes_must_continue_exactly_where_the_file_ends() {
        let file = UploadFile { entry: entry("a", 10), complete: false };
        assert_eq!(check_write(&file, 4, 4, 6), Ok(()));
        assert_eq!(check_write(&file, 4, 0, 4), Err(WriteRefusal::WrongOffset { expected: 4 }));
        assert_eq!(check_write(&file, 4, 8, 1), Err(WriteRefusal::WrongOffset { expected: 4 }));
        assert_eq!(check_write(&file, 4, 4, 7), Err(WriteRefusal::PastEnd { size: 10 }));
        let done = UploadFile { complete: true, ..file };
        assert_eq!(check_write(&done, 10, 10, 0), Err(WriteRefusal::AlreadyComplete));
    }
}
