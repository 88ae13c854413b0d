//! `highwind.asset.internal.v1.RunOutputService`: pipeline-svc commits a run's output artifact, uploaded on the
//! run creator's behalf, as a version whose lineage names the run. Only pipeline-svc may call; the gateway never
//! routes here.

use highwind_common::{
    principal::{CallingService, Principal},
    validation::Violations,
};
use highwind_proto::asset::{internal::v1 as pb, v1 as public};
use tonic::{Request, Response, Status};

use super::uploads::UploadApi;
use crate::{domain::version::Lineage, error::Error};

/// The only service that may commit run outputs.
pub const PRODUCING_SERVICE: &str = "pipeline-svc";

/// Handlers of `RunOutputService`.
#[derive(Debug, Clone)]
pub struct RunOutputApi {
    uploads: UploadApi,
}

impl RunOutputApi {
    /// Handlers committing through `uploads`.
    pub fn new(uploads: UploadApi) -> Self {
        Self { uploads }
    }
}

/// Whether `name` is `{prefix}{uuid}`.
fn named(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|id| uuid::Uuid::try_parse(id).is_ok())
}

/// Whether `name` is `assets/{uuid}/versions/{number}`.
fn exact_version(name: &str) -> bool {
    name.strip_prefix("assets/").and_then(|rest| rest.split_once("/versions/")).is_some_and(|(asset, number)| {
        uuid::Uuid::try_parse(asset).is_ok() && number.parse::<u64>().is_ok_and(|n| n > 0)
    })
}

fn decode(source: Option<public::PipelineRunSource>) -> Result<Lineage, Violations> {
    let Some(source) = source else {
        return Err(Violations::one("source", "required"));
    };
    let mut violations = Violations::new();
    if !named(&source.run, "runs/") {
        violations.add("source.run", "must be runs/{run}");
    }
    if !exact_version(&source.pipeline_version) {
        violations.add("source.pipeline_version", "must be assets/{asset}/versions/{number}");
    }
    for (index, input) in source.input_versions.iter().enumerate() {
        if !exact_version(input) {
            violations.add(format!("source.input_versions[{index}]"), "must be assets/{asset}/versions/{number}");
        }
    }
    if source.task.is_empty() || source.task.len() > 1024 {
        violations.add("source.task", "required, at most 1,024 bytes");
    }
    if source.output_key.is_empty() || source.output_key.len() > 255 {
        violations.add("source.output_key", "required, at most 255 bytes");
    }
    violations.into_result(Lineage::PipelineRun {
        run: source.run,
        pipeline_version: source.pipeline_version,
        input_versions: source.input_versions,
        task: source.task,
        output_key: source.output_key,
    })
}

#[tonic::async_trait]
impl pb::run_output_service_server::RunOutputService for RunOutputApi {
    async fn commit_run_output(
        &self,
        request: Request<pb::CommitRunOutputRequest>,
    ) -> Result<Response<public::AssetVersion>, Status> {
        let principal = Principal::of(&request)?.clone();
        if CallingService::of(&request).is_none_or(|caller| caller.0 != PRODUCING_SERVICE) {
            return Err(Error::NotTheCallers(format!("only {PRODUCING_SERVICE} commits run outputs")).into());
        }
        let request = request.into_inner();
        let lineage = decode(request.source).map_err(Error::Invalid)?;
        Ok(Response::new(self.uploads.commit_as(&principal, "upload", &request.upload, Some(lineage)).await?))
    }
}
