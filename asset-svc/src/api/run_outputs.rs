//! `highwind.asset.internal.v1.RunOutputService`: pipeline-svc commits a run's output artifact, uploaded on the
//! run creator's behalf, as a version whose lineage names the run. Only pipeline-svc may call; the gateway never
//! routes here.

use std::collections::BTreeMap;

use highwind_common::{
    principal::{CallingService, Principal},
    proto_json::struct_from_proto,
    validation::Violations,
};
use highwind_proto::asset::{internal::v1 as pb, v1 as public};
use tonic::{Request, Response, Status};

use super::uploads::UploadApi;
use crate::{
    domain::version::{Lineage, validate_metadata},
    error::Error,
};

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

/// Most bytes of an artifact's metadata kept with a version, as JSON.
const MAX_ARTIFACT_METADATA_BYTES: usize = 64 * 1024;

/// A CommitRunOutput request, decoded: which upload, the version's lineage and its metrics.
#[derive(Debug)]
struct RunOutput {
    upload: String,
    lineage: Lineage,
    metrics: BTreeMap<String, f64>,
}

impl TryFrom<pb::CommitRunOutputRequest> for RunOutput {
    type Error = Error;

    fn try_from(request: pb::CommitRunOutputRequest) -> Result<Self, Error> {
        let metrics: BTreeMap<String, f64> = request.metrics.into_iter().collect();
        let mut violations = Violations::new();
        validate_metadata("", &BTreeMap::new(), &metrics, "", &mut violations);
        match decode(request.source) {
            Ok(lineage) if violations.is_empty() => Ok(Self { upload: request.upload, lineage, metrics }),
            Ok(_) => Err(Error::Invalid(violations)),
            Err(more) => {
                violations.merge(more);
                Err(Error::Invalid(violations))
            }
        }
    }
}

fn decode(source: Option<public::PipelineRunSource>) -> Result<Lineage, Violations> {
    let Some(source) = source else {
        return Err(Violations::one("source", "required"));
    };
    let mut violations = Violations::new();
    let artifact_metadata = match source.artifact_metadata.as_ref().map(struct_from_proto).transpose() {
        Ok(metadata) => metadata.unwrap_or_default(),
        Err(e) => {
            violations.add("source.artifact_metadata", e);
            serde_json::Map::new()
        }
    };
    if serde_json::to_vec(&artifact_metadata).map_or(0, |json| json.len()) > MAX_ARTIFACT_METADATA_BYTES {
        violations.add("source.artifact_metadata", format!("at most {MAX_ARTIFACT_METADATA_BYTES} bytes as JSON"));
    }
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
        artifact_metadata,
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
        let output = RunOutput::try_from(request.into_inner())?;
        let version =
            self.uploads.commit_as(&principal, "upload", &output.upload, Some(output.lineage), output.metrics).await?;
        Ok(Response::new(version))
    }
}
