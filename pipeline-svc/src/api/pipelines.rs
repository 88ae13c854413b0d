//! ValidatePipeline and DescribePipeline: IR checked against its limits, then parsed, validated and described on
//! the blocking pool.

use std::sync::Arc;

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::pipeline::v1 as pb;

use crate::{
    assets::{PipelineSource, is_version_name},
    blocking::{self, Abandoned},
    error::Error,
    ir::{self, Issue, Severity},
};

/// Most issues one response lists.
const MAX_ISSUES: usize = 100;

/// ValidatePipeline.
pub(super) async fn validate(request: pb::ValidatePipelineRequest) -> Result<pb::ValidatePipelineResponse, Error> {
    let spec = request.pipeline_spec;
    if spec.is_empty() {
        return Err(Error::Invalid(Violations::one("pipeline_spec", "required: the compiled IR YAML")));
    }
    over_limits(&spec, "pipeline_spec")?;
    blocking::run(move |abandoned| check_unless_abandoned(&spec, abandoned)).await?.ok_or(Error::Abandoned)
}

/// DescribePipeline: the stored version's IR, read as `principal`.
pub(super) async fn describe(
    pipelines: &Arc<dyn PipelineSource>,
    principal: &Principal,
    request: pb::DescribePipelineRequest,
) -> Result<pb::PipelineDescription, Error> {
    let name = request.pipeline_version;
    if !is_version_name(&name) {
        let reason = "must be of the form assets/{asset}/versions/{version-or-alias}";
        return Err(Error::Invalid(Violations::one("pipeline_version", reason)));
    }
    let ir = pipelines.ir(principal, &name).await?;
    blocking::run(move |abandoned| {
        let pipeline = ir::parse(&ir.content).map_err(Error::Unparsable)?;
        if abandoned.is_set() {
            return Err(Error::Abandoned);
        }
        let warnings =
            ir::validate(&pipeline).iter().filter(|i| i.severity == Severity::Warning).map(issue_to_proto).collect();
        Ok(pb::PipelineDescription { pipeline_version: ir.version, warnings, ..ir::describe(&pipeline) })
    })
    .await?
}

fn issue_to_proto(issue: &Issue) -> pb::PipelineIssue {
    pb::PipelineIssue {
        severity: match issue.severity {
            Severity::Error => pb::IssueSeverity::Error,
            Severity::Warning => pb::IssueSeverity::Warning,
        } as i32,
        location: issue.location.clone(),
        reason: issue.reason.to_owned(),
        message: issue.message.clone(),
        line: i32::try_from(issue.line).unwrap_or(0),
        column: i32::try_from(issue.column).unwrap_or(0),
        document: i32::try_from(issue.document).unwrap_or(0),
    }
}

/// Validates `bytes`: the issues found and, when there are no errors, the description.
pub fn check(bytes: &[u8]) -> pb::ValidatePipelineResponse {
    check_unless_abandoned(bytes, &Abandoned::default()).unwrap_or_default()
}

/// [`check`] in steps, each bounded by the IR's limits; `None` as soon as one ends with the call `abandoned`.
pub fn check_unless_abandoned(bytes: &[u8], abandoned: &Abandoned) -> Option<pb::ValidatePipelineResponse> {
    let (issues, description) = match ir::parse(bytes) {
        Err(issue) => (vec![issue], None),
        Ok(pipeline) => {
            if abandoned.is_set() {
                return None;
            }
            let issues = ir::validate(&pipeline);
            if abandoned.is_set() {
                return None;
            }
            let description = issues.iter().all(|i| i.severity != Severity::Error).then(|| ir::describe(&pipeline));
            (issues, description)
        }
    };
    let valid = description.is_some();
    let description = description.map(|d| pb::PipelineDescription {
        warnings: issues.iter().filter(|i| i.severity == Severity::Warning).map(issue_to_proto).collect(),
        ..d
    });
    Some(pb::ValidatePipelineResponse {
        valid,
        issues: issues.iter().take(MAX_ISSUES).map(issue_to_proto).collect(),
        omitted_issues: i32::try_from(issues.len().saturating_sub(MAX_ISSUES)).unwrap_or(i32::MAX),
        description,
    })
}

/// A violation naming `field` for an IR past a limit that is checked before it is parsed: its size, its nesting
/// depth or its node count.
fn over_limits(bytes: &[u8], field: &str) -> Result<(), Error> {
    if bytes.len() > ir::MAX_BYTES {
        return Err(Error::Invalid(Violations::one(
            field,
            format!("{} bytes; at most {}", bytes.len(), ir::MAX_BYTES),
        )));
    }
    ir::limits::check(bytes).map_err(|e| Error::Invalid(Violations::one(field, format!("the IR {e}"))))
}
