//! `asset-svc`: the asset service on its own. Configure with `--config FILE` and `HIGHWIND__ASSET__*`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    highwind_common::service_main::run("asset", asset_svc::default_config(), asset_svc::serve).await
}
