//! Building `tonic::Status` values with `google.rpc` details, so every service reports errors the same way.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::validation::Violations;

/// Domain of the `google.rpc.ErrorInfo` details Highwind sends.
pub const ERROR_DOMAIN: &str = "highwind.dev";

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing every violation; the message names the fields too.
pub fn invalid_argument(violations: &Violations) -> Status {
    let field_violations: Vec<FieldViolation> =
        violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone())).collect();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        ErrorDetails::with_bad_request(field_violations),
    )
}

/// A status of `code` carrying a `google.rpc.ErrorInfo` whose `reason` is a stable UPPER_SNAKE_CASE identifier
/// clients can switch on.
pub fn with_reason(code: Code, message: impl Into<String>, reason: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new()),
    )
}

/// Like [`with_reason`], with `metadata` a client can act on (an offset to resume from, the paths missing).
pub fn with_reason_and(code: Code, message: impl Into<String>, reason: &str, metadata: &[(&str, String)]) -> Status {
    let metadata: std::collections::HashMap<String, String> =
        metadata.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata))
}

/// One unmet condition of a FAILED_PRECONDITION: its type (e.g. `RELEASE`), the subject it is about (a resource
/// name or field) and what is wrong, as a `google.rpc.PreconditionFailure` violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    /// Stable, UPPER_SNAKE_CASE kind of condition.
    pub kind: &'static str,
    /// What it is about.
    pub subject: String,
    /// What is wrong and how to fix it.
    pub description: String,
}

/// FAILED_PRECONDITION carrying a `google.rpc.ErrorInfo` with `reason` and a `google.rpc.PreconditionFailure`
/// listing every unmet condition; the message lists them too.
pub fn failed_precondition(message: impl Into<String>, reason: &str, unmet: &[Precondition]) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
    for p in unmet {
        details.add_precondition_failure_violation(p.kind, p.subject.clone(), p.description.clone());
    }
    let listed: Vec<String> = unmet.iter().map(|p| format!("{}: {}", p.subject, p.description)).collect();
    let message = if listed.is_empty() { message.into() } else { format!("{}: {}", message.into(), listed.join("; ")) };
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// RESOURCE_EXHAUSTED carrying a `google.rpc.QuotaFailure` whose one violation names the quota's `subject` (whose
/// quota, e.g. `users/alice`) and says which limit was reached (`description`); the message says it too.
pub fn quota_exhausted(subject: impl Into<String>, description: impl Into<String>) -> Status {
    let (subject, description) = (subject.into(), description.into());
    let message = format!("quota exhausted for {subject}: {description}");
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_quota_failure_violation(subject, description),
    )
}

/// INTERNAL without the cause: the cause is logged here, never sent, so no SQL or path leaks to callers.
pub fn internal(cause: &dyn std::error::Error) -> Status {
    tracing::error!(error = %cause, "internal error");
    Status::internal("internal error; the server logged the cause")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field() {
        let mut violations = Violations::new();
        violations.add("asset.display_name", "must not be empty");
        violations.add("page_size", "must be at most 1000");
        let status = invalid_argument(&violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("asset.display_name"));
        let details = status.get_error_details();
        let fields: Vec<_> =
            details.bad_request().expect("bad request").field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["asset.display_name", "page_size"]);
    }
}
