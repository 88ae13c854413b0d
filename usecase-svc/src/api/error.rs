//! [`Error`] → [`Status`], once.

use highwind_common::status;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{domain::link::MAX_LINKS, error::Error, payments::PaymentError};

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => status::invalid_argument(&violations),
            Error::NotFound(name) => status::with_reason(Code::NotFound, format!("{name} not found"), "NOT_FOUND"),
            Error::AssetNotFound(asset) => asset_not_found(asset),
            Error::PermissionDenied(why) => status::with_reason(Code::PermissionDenied, why, "ROLE_TOO_LOW"),
            Error::StaleEtag(name) => status::with_reason(
                Code::FailedPrecondition,
                format!("the etag does not match the current version of {name}: get it again and reapply"),
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
            Error::NotArchived(name) => {
                status::with_reason(Code::AlreadyExists, format!("{name} is not archived"), "NOT_ARCHIVED")
            }
            Error::AlreadyMember(principal) => {
                status::with_reason(Code::AlreadyExists, format!("{principal} is already a member"), "ALREADY_MEMBER")
            }
            Error::LastOwner(name) => status::with_reason(
                Code::FailedPrecondition,
                format!("{name}: a use case keeps at least one owner; add another owner first"),
                "LAST_OWNER",
            ),
            Error::AlreadyLinked(what) => {
                status::with_reason(Code::AlreadyExists, format!("{what} is already linked"), "ALREADY_LINKED")
            }
            Error::TooManyLinks(name) => status::with_reason(
                Code::ResourceExhausted,
                format!("{name} already has {MAX_LINKS} asset links, the most a use case may have: delete one first"),
                "TOO_MANY_LINKS",
            ),
            Error::Unresolvable(why) => status::with_reason(Code::FailedPrecondition, why, "LINK_UNRESOLVED"),
            Error::Unmet(message, reason, unmet) => status::failed_precondition(message, reason, &unmet),
            Error::Payment(PaymentError::Declined(why)) => {
                status::with_reason(Code::Aborted, format!("{why}; nothing was recorded"), "PAYMENT_DECLINED")
            }
            Error::Payment(PaymentError::Unavailable(why)) => {
                tracing::warn!(error = %why, "payment provider unavailable");
                status::with_reason(
                    Code::Aborted,
                    "the payment provider is unavailable; nothing was recorded, retry with the same request_id",
                    "PAYMENT_UNAVAILABLE",
                )
            }
            Error::Unavailable(why) => {
                tracing::warn!(error = %why, "dependency unavailable");
                status::with_reason(
                    Code::Unavailable,
                    "the asset service cannot be reached; try again shortly",
                    "DEPENDENCY_UNAVAILABLE",
                )
            }
            Error::Store(cause) => status::internal(&cause),
        }
    }
}

/// NOT_FOUND for an asset asset-svc would not show the caller, with a `google.rpc.ResourceInfo` naming it, as the
/// AssetLink contract promises; whether it is missing or only unreadable stays private.
fn asset_not_found(asset: String) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info("NOT_FOUND", status::ERROR_DOMAIN, std::collections::HashMap::new());
    details.set_resource_info("highwind.asset.v1.Asset", asset.clone(), "", "no such asset, or you may not read it");
    Status::with_error_details(Code::NotFound, format!("{asset} not found"), details)
}
