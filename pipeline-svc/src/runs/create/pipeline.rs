//! The pipeline a run would execute: its stored IR parsed, validated and described on the blocking pool, and its
//! size as far as the IR tells within the executor's limits.

use highwind_common::validation::Violations;
use highwind_proto::pipeline::v1 as pb;

use crate::{
    assets::PipelineIr,
    blocking::{self, Abandoned},
    error::Error,
    executor::ExecutorConfig,
    ir::{self, Severity},
};

/// `ir` parsed, validated and described; FAILED_PRECONDITION-kind errors when the version no longer validates,
/// INVALID_ARGUMENT naming `run.pipeline_version` when a run of it would pass an executor limit.
pub(super) async fn runnable(
    ir: &PipelineIr,
    config: &ExecutorConfig,
) -> Result<(ir::Pipeline, pb::PipelineDescription), Error> {
    let content = ir.content.clone();
    let (pipeline, description) = blocking::run(move |abandoned| checked(&content, abandoned)).await??;
    within_limits(&ir::size(&pipeline.spec), config)?;
    Ok((pipeline, description))
}

/// `content` parsed, validated and described, unless the call is `abandoned` first.
fn checked(content: &[u8], abandoned: &Abandoned) -> Result<(ir::Pipeline, pb::PipelineDescription), Error> {
    let pipeline = ir::parse(content).map_err(Error::Unparsable)?;
    if abandoned.is_set() {
        return Err(Error::Abandoned);
    }
    if let Some(issue) = ir::validate(&pipeline).into_iter().find(|i| i.severity == Severity::Error) {
        return Err(Error::NoLongerValid(issue));
    }
    if abandoned.is_set() {
        return Err(Error::Abandoned);
    }
    let description = ir::describe(&pipeline);
    Ok((pipeline, description))
}

/// Every executor limit a run of this size would pass, named on `run.pipeline_version` (where the size comes
/// from); what only the run can tell is checked by its driver.
fn within_limits(size: &ir::Size, config: &ExecutorConfig) -> Result<(), Error> {
    let mut violations = Violations::new();
    let over = |count: u64, limit: usize| limit > 0 && count > u64::try_from(limit).unwrap_or(u64::MAX);
    if over(size.tasks, config.max_tasks_per_run) {
        violations.add(
            "run.pipeline_version",
            format!(
                "the pipeline expands to {} tasks; at most {} per run (executor.max_tasks_per_run)",
                size.tasks, config.max_tasks_per_run
            ),
        );
    }
    if over(size.loop_items, config.max_loop_items) {
        violations.add(
            "run.pipeline_version",
            format!(
                "the pipeline's loops hold {} items; at most {} per run (executor.max_loop_items)",
                size.loop_items, config.max_loop_items
            ),
        );
    }
    if violations.is_empty() { Ok(()) } else { Err(Error::Invalid(violations)) }
}
