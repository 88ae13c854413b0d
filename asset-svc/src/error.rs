//! The one error type of the asset service. `api::error` maps it to `tonic::Status`, once.

use highwind_common::validation::Violations;

use crate::{blobs::BlobError, domain::upload::UploadState, store::StoreError};

/// Why an asset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No such resource, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may read the resource but not do this to it.
    #[error("{0}")]
    PermissionDenied(String),
    /// The method is not the caller's to call at all (an administrator's, or another service's).
    #[error("{0}")]
    NotTheCallers(String),
    /// The client's etag no longer matches.
    #[error("etag {sent} of {name} is stale")]
    StaleEtag {
        /// The resource.
        name: String,
        /// What the client sent.
        sent: String,
    },
    /// Another write won a race the client did not guard with an etag.
    #[error("{0} was changed concurrently")]
    Concurrent(String),
    /// The operation needs a live resource, but it is archived.
    #[error("{0} is archived")]
    Archived(String),
    /// Purge of an asset that is not archived.
    #[error("{0} must be archived before it is purged")]
    NotPurgeable(String),
    /// Undelete of a resource that is not archived.
    #[error("{0} is not archived")]
    NotArchived(String),
    /// The upload no longer takes writes or commits.
    #[error("{name} is {state:?}")]
    UploadClosed {
        /// The upload.
        name: String,
        /// Its state.
        state: UploadState,
    },
    /// A write does not continue where the file's stored bytes end.
    #[error("{path}: write at the wrong offset, expected {expected}")]
    WrongOffset {
        /// The file.
        path: String,
        /// Where the next write must start.
        expected: u64,
    },
    /// A write goes past the declared size.
    #[error("{path}: write past the declared size {size}")]
    PastEnd {
        /// The file.
        path: String,
        /// The declared size.
        size: u64,
    },
    /// A write to a file whose content is already stored.
    #[error("{0}: already complete")]
    AlreadyComplete(String),
    /// The bytes of a file do not hash to its declared SHA-256; the file was reset to offset 0.
    #[error("{path}: content hashes to {actual}, not the declared {declared}")]
    DigestMismatch {
        /// The file.
        path: String,
        /// What the client declared.
        declared: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Opening an upload would take its creator past a quota.
    #[error("quota exhausted for {subject}: {why}")]
    QuotaExceeded {
        /// Whose quota, e.g. `users/alice`.
        subject: String,
        /// Which limit, with the usage that reached it.
        why: String,
    },
    /// A commit before every file is stored.
    #[error("files not uploaded yet: {0:?}")]
    FilesMissing(Vec<String>),
    /// A service this one depends on could not answer.
    #[error("{0}")]
    Unavailable(String),
    /// An image cannot be deleted: something else still refers to it.
    #[error("{name}: {why}")]
    ImageInUse {
        /// The tag asked for.
        name: String,
        /// What refers to it.
        why: String,
    },
    /// No registry is configured, so Docker Repo assets have no images.
    #[error("no registry is configured")]
    RegistryNotConfigured,
    /// The registry failed.
    #[error("registry: {0}")]
    RegistryUnavailable(String),
    /// The blob store or staging area failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's request stream broke: its own status is the answer.
    #[error("the request stream failed: {}", .0.message())]
    RequestStream(tonic::Status),
}

impl From<crate::images::ImagesError> for Error {
    fn from(error: crate::images::ImagesError) -> Self {
        match error {
            crate::images::ImagesError::Store(e) => Self::Store(e),
            crate::images::ImagesError::Registry(e) => Self::RegistryUnavailable(e.to_string()),
        }
    }
}

impl From<Violations> for Error {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}
