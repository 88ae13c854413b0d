//! [`Error`] → [`Status`]: the only place the asset service chooses status codes.

use highwind_common::status;
use tonic::{Code, Status};

use crate::error::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => status::invalid_argument(&violations),
            Error::NotFound(name) => status::with_reason(Code::NotFound, format!("{name} not found"), "NOT_FOUND"),
            Error::PermissionDenied(why) => status::with_reason(Code::PermissionDenied, why, "READ_ONLY"),
            Error::NotTheCallers(why) => Status::permission_denied(why),
            Error::Unavailable(why) => {
                tracing::warn!(error = %why, "dependency unavailable");
                status::with_reason(
                    Code::Unavailable,
                    "the pipeline service cannot check this pipeline now; nothing was committed, try again shortly",
                    "DEPENDENCY_UNAVAILABLE",
                )
            }
            Error::ImageInUse { name, why } => status::with_reason(
                Code::FailedPrecondition,
                format!("{name} cannot be deleted: {why}"),
                "IMAGE_IN_USE",
            ),
            Error::RegistryNotConfigured => status::with_reason(
                Code::FailedPrecondition,
                "this platform has no registry configured: Docker Repo assets hold no images here",
                "REGISTRY_NOT_CONFIGURED",
            ),
            Error::RegistryUnavailable(why) => {
                tracing::warn!(error = %why, "registry unavailable");
                status::with_reason(
                    Code::Unavailable,
                    "the registry cannot be reached now; try again shortly",
                    "REGISTRY_UNAVAILABLE",
                )
            }
            Error::StaleEtag { name, sent } => status::with_reason(
                Code::FailedPrecondition,
                format!("etag {sent} does not match the current version of {name}: get it again and reapply"),
                "ETAG_MISMATCH",
            ),
            Error::Concurrent(name) => status::with_reason(
                Code::Aborted,
                format!("{name} was changed by another request at the same time: retry"),
                "CONCURRENT_MODIFICATION",
            ),
            Error::Archived(name) => status::with_reason(
                Code::FailedPrecondition,
                format!("{name} is archived: undelete it first"),
                "ARCHIVED",
            ),
            Error::NotPurgeable(name) => status::with_reason(
                Code::FailedPrecondition,
                format!("{name} must be archived (DeleteAsset) before it is purged"),
                "NOT_ARCHIVED",
            ),
            Error::NotArchived(name) => {
                status::with_reason(Code::AlreadyExists, format!("{name} is not archived"), "NOT_ARCHIVED")
            }
            Error::UploadClosed { name, state } => status::with_reason(
                Code::FailedPrecondition,
                format!("{name} is {} and takes no more writes or commits", format!("{state:?}").to_lowercase()),
                "UPLOAD_CLOSED",
            ),
            Error::WrongOffset { path, expected } => status::with_reason_and(
                Code::FailedPrecondition,
                format!("{path}: the next write must start at offset {expected}"),
                "WRONG_OFFSET",
                &[("path", path.clone()), ("expected_offset", expected.to_string())],
            ),
            Error::PastEnd { path, size } => status::with_reason_and(
                Code::InvalidArgument,
                format!("{path}: the write goes past the declared size of {size} bytes"),
                "PAST_DECLARED_SIZE",
                &[("path", path.clone())],
            ),
            Error::AlreadyComplete(path) => status::with_reason_and(
                Code::FailedPrecondition,
                format!("{path}: its content is already stored"),
                "FILE_COMPLETE",
                &[("path", path.clone())],
            ),
            Error::DigestMismatch { path, declared, actual } => status::with_reason_and(
                Code::InvalidArgument,
                format!(
                    "{path}: content hashes to {actual}, not the declared {declared}; the file was reset to offset 0"
                ),
                "DIGEST_MISMATCH",
                &[("path", path.clone()), ("expected_offset", "0".into())],
            ),
            Error::QuotaExceeded { subject, why } => status::quota_exhausted(subject, why),
            Error::FilesMissing(paths) => status::with_reason_and(
                Code::FailedPrecondition,
                format!("cannot commit: {} file(s) not uploaded yet: {}", paths.len(), preview(&paths)),
                "FILES_MISSING",
                &[("paths", preview(&paths))],
            ),
            Error::Blob(cause) => status::internal(&cause),
            Error::Store(cause) => status::internal(&cause),
            Error::RequestStream(status) => status,
        }
    }
}

/// The first few paths, for messages that must stay short.
fn preview(paths: &[String]) -> String {
    let mut shown: Vec<&str> = paths.iter().take(10).map(String::as_str).collect();
    if paths.len() > shown.len() {
        shown.push("…");
    }
    shown.join(", ")
}
