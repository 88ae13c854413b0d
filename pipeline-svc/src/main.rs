//! `pipeline-svc`: the service on its own. Configure with `--config FILE` and `HIGHWIND__PIPELINE__*`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    highwind_common::service_main::run("pipeline", pipeline_svc::default_config(), pipeline_svc::serve).await
}
