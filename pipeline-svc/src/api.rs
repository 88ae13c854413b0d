//! `highwind.pipeline.v1.PipelineService`: validation, descriptions, runs on the embedded executor, task logs and
//! lineage.

pub mod blocking;
mod convert;
mod error;
pub mod lineage;
pub mod logs;
mod run_request;
pub mod runs;
pub mod undecodable;

use highwind_common::{principal::Principal, status, validation::Violations};
use highwind_proto::pipeline::v1::{self as pb, pipeline_service_server::PipelineService};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::{
    assets::{PipelineSource, ReadError},
    ir::{self, Issue, Severity},
};

/// Most issues one response lists.
const MAX_ISSUES: usize = 100;

/// Handlers of `PipelineService`.
#[derive(Debug, Clone)]
pub struct PipelineApi {
    pipelines: Arc<dyn PipelineSource>,
    runs: runs::Runs,
}

impl PipelineApi {
    /// Handlers reading pipeline versions through `runs.pipelines`.
    pub fn new(runs: runs::Runs) -> Self {
        Self { pipelines: runs.pipelines.clone(), runs }
    }
}

/// The one mapping of a failed asset read to a status.
fn read_error(error: ReadError) -> Status {
    match error {
        ReadError::NotFound(what) => Status::not_found(format!("{what} not found")),
        ReadError::NotPipeline(_) => status::invalid_argument(&Violations::one("pipeline_version", error.to_string())),
        ReadError::NotReady(_) | ReadError::NoIr(_) => Status::failed_precondition(error.to_string()),
        ReadError::Unavailable(why) => {
            tracing::warn!(error = %why, "asset service unavailable");
            Status::unavailable("the asset service cannot be reached; try again shortly")
        }
    }
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
    check_unless_abandoned(bytes, &blocking::Abandoned::default()).unwrap_or_default()
}

/// [`check`] in steps, each bounded by the IR's limits; `None` as soon as one ends with the call `abandoned`.
pub fn check_unless_abandoned(bytes: &[u8], abandoned: &blocking::Abandoned) -> Option<pb::ValidatePipelineResponse> {
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

/// INVALID_ARGUMENT naming `field` for an IR past a limit that is checked before it is parsed: its size, its
/// nesting depth or its node count.
fn over_limits(bytes: &[u8], field: &str) -> Result<(), Status> {
    if bytes.len() > ir::MAX_BYTES {
        return Err(status::invalid_argument(&Violations::one(
            field,
            format!("{} bytes; at most {}", bytes.len(), ir::MAX_BYTES),
        )));
    }
    ir::limits::check(bytes).map_err(|e| status::invalid_argument(&Violations::one(field, format!("the IR {e}"))))
}

#[tonic::async_trait]
impl PipelineService for PipelineApi {
    async fn validate_pipeline(
        &self,
        request: Request<pb::ValidatePipelineRequest>,
    ) -> Result<Response<pb::ValidatePipelineResponse>, Status> {
        Principal::of(&request)?;
        let spec = &request.get_ref().pipeline_spec;
        if spec.is_empty() {
            return Err(status::invalid_argument(&Violations::one("pipeline_spec", "required: the compiled IR YAML")));
        }
        over_limits(spec, "pipeline_spec")?;
        let spec = spec.clone();
        let answer = blocking::run(move |abandoned| check_unless_abandoned(&spec, abandoned)).await?;
        answer.map(Response::new).ok_or_else(blocking::gone)
    }

    async fn describe_pipeline(
        &self,
        request: Request<pb::DescribePipelineRequest>,
    ) -> Result<Response<pb::PipelineDescription>, Status> {
        let principal = Principal::of(&request)?;
        let name = &request.get_ref().pipeline_version;
        if !runs::is_version_name(name) {
            let reason = "must be of the form assets/{asset}/versions/{version-or-alias}";
            return Err(status::invalid_argument(&Violations::one("pipeline_version", reason)));
        }
        let ir = self.pipelines.ir(principal, name).await.map_err(read_error)?;
        let described = blocking::run(move |abandoned| {
            let pipeline = ir::parse(&ir.content)
                .map_err(|issue| Status::failed_precondition(format!("{}: {}", issue.reason, issue.message)))?;
            if abandoned.is_set() {
                return Err(blocking::gone());
            }
            let warnings = ir::validate(&pipeline)
                .iter()
                .filter(|i| i.severity == Severity::Warning)
                .map(issue_to_proto)
                .collect();
            Ok(pb::PipelineDescription { pipeline_version: ir.version, warnings, ..ir::describe(&pipeline) })
        })
        .await??;
        Ok(Response::new(described))
    }

    async fn create_run(&self, request: Request<pb::CreateRunRequest>) -> Result<Response<pb::Run>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.create(&principal, request.into_inner()).await?))
    }

    async fn get_run(&self, request: Request<pb::GetRunRequest>) -> Result<Response<pb::Run>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.get(&principal, request.into_inner()).await?))
    }

    async fn list_runs(&self, request: Request<pb::ListRunsRequest>) -> Result<Response<pb::ListRunsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.list(&principal, request.into_inner()).await?))
    }

    async fn watch_run(&self, request: Request<pb::WatchRunRequest>) -> Result<Response<runs::WatchStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.watch(&principal, request.into_inner()).await?))
    }

    async fn cancel_run(&self, request: Request<pb::CancelRunRequest>) -> Result<Response<pb::Run>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.cancel(&principal, request.into_inner()).await?))
    }

    async fn retry_run(&self, request: Request<pb::RetryRunRequest>) -> Result<Response<pb::Run>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.runs.retry(&principal, request.into_inner()).await?))
    }

    async fn stream_task_logs(
        &self,
        request: Request<pb::StreamTaskLogsRequest>,
    ) -> Result<Response<logs::LogStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(logs::stream(&self.runs, &principal, request.into_inner()).await?))
    }

    async fn list_lineage(
        &self,
        request: Request<pb::ListLineageRequest>,
    ) -> Result<Response<pb::ListLineageResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(lineage::list(&self.runs, &principal, request.into_inner()).await?))
    }
}
