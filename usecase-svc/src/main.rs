//! `usecase-svc`: the service on its own. Configure with `--config FILE` and `HIGHWIND__USECASE__*`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    highwind_common::service_main::run("usecase", usecase_svc::default_config(), usecase_svc::serve).await
}
