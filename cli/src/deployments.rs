//! `highwind deploy` and `highwind deployment ls | get | rm`: serve a use case's release and look after it.

use highwind_proto::{deployment::v1 as pb, usecase::v1 as upb};

use super::{CliError, Target, print};

/// What `deploy` was asked for.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// `useCases/UC`.
    pub use_case: String,
    /// The release number; the newest release when `None`.
    pub release: Option<u32>,
    /// Deploy the use case's live links as they resolve now, not a release.
    pub live: bool,
    /// Replicas (0: one).
    pub replicas: u32,
    /// Whether the predictor may reach other hosts.
    pub allow_network: bool,
}

/// Deploys a release; prints the deployment's name (and, waiting, its state once it is READY or FAILED). Exits
/// non-zero when it failed.
pub async fn deploy(target: &Target, request: DeployRequest, wait: bool) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let release = match request.release {
        _ if request.live => String::new(),
        Some(number) => format!("{}/releases/{number}", request.use_case),
        None => {
            let newest =
                upb::ListReleasesRequest { parent: request.use_case.clone(), page_size: 1, ..Default::default() };
            let found = clients
                .use_cases
                .list_releases(newest)
                .await
                .map_err(CliError::call(format!("finding the newest release of {}", request.use_case)))?
                .into_inner();
            found.releases.into_iter().next().map(|r| r.name).ok_or_else(|| {
                CliError::Usage(format!("{} has no release yet: release it first (CreateRelease)", request.use_case))
            })?
        }
    };
    let deployment = pb::Deployment {
        use_case: request.use_case.clone(),
        release: release.clone(),
        replicas: i32::try_from(request.replicas).unwrap_or(i32::MAX),
        allow_network: request.allow_network,
        ..Default::default()
    };
    let created = clients
        .deployments
        .create_deployment(pb::CreateDeploymentRequest { deployment: Some(deployment) })
        .await
        .map_err(CliError::call(format!(
            "deploying {}",
            if release.is_empty() { &request.use_case } else { &release }
        )))?
        .into_inner();
    print(std::slice::from_ref(&created.name))?;
    if !wait {
        return Ok(());
    }
    let mut changes = clients
        .deployments
        .watch_deployment(pb::WatchDeploymentRequest { name: created.name.clone() })
        .await
        .map_err(CliError::call(format!("following {}", created.name)))?
        .into_inner();
    while let Some(now) = changes.message().await.map_err(CliError::call(format!("following {}", created.name)))? {
        match now.state() {
            pb::deployment::State::Ready => return print(&[describe(&now)]),
            pb::deployment::State::Failed => {
                return Err(CliError::Usage(format!("{} failed: {}", now.name, why(&now))));
            }
            _ => {}
        }
    }
    Err(CliError::Usage(format!("{} stopped being followed before it was ready", created.name)))
}

/// Prints a use case's deployments, one line each.
pub async fn list(target: &Target, use_case: &str) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let listed = clients
        .deployments
        .list_deployments(pb::ListDeploymentsRequest { use_case: use_case.to_owned() })
        .await
        .map_err(CliError::call(format!("listing the deployments of {use_case}")))?
        .into_inner();
    let mut lines = vec![format!("{:<22} {:<9} {:>8} {:<36} RELEASE", "NAME", "STATE", "READY", "WHY")];
    lines.extend(listed.deployments.iter().map(|d| {
        format!(
            "{:<22} {:<9} {:>8} {:<36} {}",
            d.name,
            state(d),
            format!("{}/{}", d.ready_replicas, d.replicas),
            why(d),
            d.release
        )
    }));
    print(&lines)
}

/// Prints one deployment: its state, image and conditions.
pub async fn get(target: &Target, name: &str) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let found = clients
        .deployments
        .get_deployment(pb::GetDeploymentRequest { name: name.to_owned() })
        .await
        .map_err(CliError::call(format!("getting {name}")))?
        .into_inner();
    let mut lines = vec![describe(&found)];
    if let Some(predictor) = &found.predictor {
        lines.push(format!("predictor: {} ({})", predictor.image, predictor.asset_version));
    }
    for condition in &found.conditions {
        lines.push(format!("  {} {} {} {}", condition.r#type, condition.status, condition.reason, condition.message));
    }
    print(&lines)
}

/// Writes a replica's log to stdout; with `follow`, on as it grows.
pub async fn logs(target: &Target, name: &str, replica: u32, follow: bool) -> Result<(), CliError> {
    use std::io::Write;
    let mut clients = target.connect().await?;
    let request = pb::StreamDeploymentLogsRequest {
        name: name.to_owned(),
        replica: i32::try_from(replica).unwrap_or(i32::MAX),
        tail_bytes: 0,
        follow,
    };
    let mut chunks = clients
        .deployments
        .stream_deployment_logs(request)
        .await
        .map_err(CliError::call(format!("reading the logs of {name}")))?
        .into_inner();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = chunks.message().await.map_err(CliError::call(format!("reading the logs of {name}")))? {
        if out.write_all(&chunk.data).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

/// Undeploys.
pub async fn remove(target: &Target, name: &str) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    clients
        .deployments
        .delete_deployment(pb::DeleteDeploymentRequest { name: name.to_owned() })
        .await
        .map_err(CliError::call(format!("deleting {name}")))?;
    print(&[format!("deleted {name}")])
}

fn state(deployment: &pb::Deployment) -> &'static str {
    match deployment.state() {
        pb::deployment::State::Starting => "STARTING",
        pb::deployment::State::Ready => "READY",
        pb::deployment::State::Failed => "FAILED",
        pb::deployment::State::Unspecified => "UNKNOWN",
    }
}

/// The first condition that does not hold: its reason and message.
fn why(deployment: &pb::Deployment) -> String {
    deployment
        .conditions
        .iter()
        .find(|c| c.status != "True")
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_default()
}

fn describe(deployment: &pb::Deployment) -> String {
    format!(
        "{} {} ({}/{} replicas ready) of {}",
        deployment.name,
        state(deployment),
        deployment.ready_replicas,
        deployment.replicas,
        deployment.release
    )
}
