//! `highwind.pipeline.v1.PipelineService`: validation, descriptions, runs on the embedded executor, task logs and
//! lineage.
//!
//! Each method takes the caller's principal and hands the request to its module, which checks it (every
//! violation at once), applies the rule and answers in proto or with an [`Error`](crate::error::Error); that error
//! becomes a `Status` in `error`, the only place this service chooses status codes.

mod convert;
pub mod deployments;
mod error;
pub mod images;
pub mod lineage;
pub mod logs;
mod pipelines;
pub mod runs;
pub mod undecodable;

pub use pipelines::{check, check_unless_abandoned};

use std::sync::Arc;

use highwind_common::principal::Principal;
use highwind_proto::pipeline::v1::{self as pb, pipeline_service_server::PipelineService};
use tonic::{Request, Response, Status};

use crate::assets::PipelineSource;

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

#[tonic::async_trait]
impl PipelineService for PipelineApi {
    async fn validate_pipeline(
        &self,
        request: Request<pb::ValidatePipelineRequest>,
    ) -> Result<Response<pb::ValidatePipelineResponse>, Status> {
        Principal::of(&request)?;
        Ok(Response::new(pipelines::validate(request.into_inner()).await?))
    }

    async fn describe_pipeline(
        &self,
        request: Request<pb::DescribePipelineRequest>,
    ) -> Result<Response<pb::PipelineDescription>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(pipelines::describe(&self.pipelines, &principal, request.into_inner()).await?))
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
