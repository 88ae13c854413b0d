//! `highwind.deployment.v1.DeploymentService`: use cases served. Each call asks usecase-svc, as the caller, what
//! the caller may do with the use case; the release's links say what runs.

use std::{sync::Arc, time::SystemTime};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::{
    deployment::v1::{self as pb, deployment_service_server::DeploymentService},
    usecase::v1::{AssetLinkRole, MemberRole},
};
use tonic::{Request, Response, Status};

use crate::{
    assets::AssetFiles,
    error::Error,
    runs::entities::now,
    serving::{
        deployments::{DeploymentState, DeploymentStatus, Deployments},
        entities::{DeploymentRecord, is_inference_id},
        supervisor::ConditionStatus,
    },
    usecases::{UseCaseError, UseCaseSource},
};

/// Most replicas of one deployment.
const MAX_REPLICAS: i32 = 4;

/// Largest log chunk sent.
const LOG_CHUNK: usize = 64 * 1024;

/// How often a followed log is looked at again while it does not grow.
const LOG_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// What StreamDeploymentLogs streams.
pub type LogStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::StreamDeploymentLogsResponse, Status>> + Send>>;

/// What WatchDeployment streams.
pub type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Deployment, Status>> + Send>>;

/// Handlers of `DeploymentService`.
#[derive(Debug, Clone)]
pub struct DeploymentApi {
    deployments: Arc<Deployments>,
    use_cases: Arc<dyn UseCaseSource>,
    assets: Arc<dyn AssetFiles>,
}

impl DeploymentApi {
    /// Over `deployments`, asking `use_cases` who may do what and `assets` where images are.
    pub fn new(deployments: Arc<Deployments>, use_cases: Arc<dyn UseCaseSource>, assets: Arc<dyn AssetFiles>) -> Self {
        Self { deployments, use_cases, assets }
    }

    /// The caller's role on `use_case`; NOT_FOUND for anyone who is no member.
    async fn role(&self, principal: &Principal, use_case: &str) -> Result<MemberRole, Error> {
        match self.use_cases.role(principal, use_case).await {
            Ok(MemberRole::Unspecified) | Err(UseCaseError::NotFound(_)) => Err(Error::NotFound(use_case.to_owned())),
            Ok(role) => Ok(role),
            Err(UseCaseError::Unavailable(why)) => Err(Error::UseCasesUnavailable(why)),
        }
    }

    /// The deployment `name` if the caller is a member of its use case (NOT_FOUND otherwise), and their role.
    async fn readable(&self, principal: &Principal, name: &str) -> Result<(DeploymentRecord, MemberRole), Error> {
        let id = name.strip_prefix("deployments/").filter(|id| is_inference_id(id)).ok_or_else(|| {
            Error::Invalid(Violations::one(
                "name",
                "must be deployments/{inference_id}: 8 lowercase letters and digits",
            ))
        })?;
        let record = self.deployments.store().get(id).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
        let role = self.role(principal, &record.use_case).await.map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(name.to_owned()),
            other => other,
        })?;
        Ok((record, role))
    }

    async fn create(
        &self,
        principal: &Principal,
        request: pb::CreateDeploymentRequest,
    ) -> Result<pb::Deployment, Error> {
        let wanted = request.deployment.unwrap_or_default();
        let mut violations = Violations::new();
        if !is_use_case_name(&wanted.use_case) {
            violations.add("deployment.use_case", "required: useCases/{use_case}");
        }
        let release_of_it = wanted
            .release
            .strip_prefix(&format!("{}/releases/", wanted.use_case))
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
        if !wanted.release.is_empty() && !release_of_it {
            violations.add(
                "deployment.release",
                "must be a release of deployment.use_case: useCases/{use_case}/releases/{n}",
            );
        }
        if !(0..=MAX_REPLICAS).contains(&wanted.replicas) {
            violations.add("deployment.replicas", format!("1 to {MAX_REPLICAS} (0 means 1)"));
        }
        violations.into_result(())?;
        match self.role(principal, &wanted.use_case).await? {
            MemberRole::Owner | MemberRole::Editor => {}
            _ => return Err(Error::NotAllowed(format!("deploying {} needs its owner or an editor", wanted.use_case))),
        }
        let links = if wanted.release.is_empty() {
            self.use_cases.live_links(principal, &wanted.use_case).await
        } else {
            self.use_cases.release_links(principal, &wanted.release).await
        };
        let mut links = links.map_err(|e| match e {
            UseCaseError::NotFound(name) => Error::NotFound(name),
            UseCaseError::Unavailable(why) => Error::UseCasesUnavailable(why),
        })?;
        let deploying = if wanted.release.is_empty() { wanted.use_case.clone() } else { wanted.release.clone() };
        if links.iter().any(|link| link.role == AssetLinkRole::Transformer) {
            return Err(Error::NotDeployable {
                reason: "TRANSFORMER_NOT_SUPPORTED",
                message: format!("{deploying} has a TRANSFORMER link; transformers are not deployed yet"),
            });
        }
        if wanted.release.is_empty()
            && let Some(live) = links.iter_mut().find(|link| link.role == AssetLinkRole::Predictor)
        {
            // A live link: the version it resolves to now, and that version's image, as the caller reads them.
            if live.asset_version.is_empty() {
                return Err(Error::NotDeployable {
                    reason: "NO_PREDICTOR",
                    message: format!("the PREDICTOR link to {} resolves to no READY version", live.asset),
                });
            }
            match self.assets.version(principal, &live.asset_version).await?.image {
                Some(Ok(digest)) => live.image_digest = digest,
                Some(Err(why)) => return Err(Error::NotDeployable { reason: "IMAGE_NOT_DEPLOYABLE", message: why }),
                None => {}
            }
        }
        let predictor =
            links.iter().find(|link| link.role == AssetLinkRole::Predictor).ok_or_else(|| Error::NotDeployable {
                reason: "NO_PREDICTOR",
                message: format!("{deploying} has no PREDICTOR link: link a Docker Repo asset as PREDICTOR"),
            })?;
        if predictor.image_digest.is_empty() {
            return Err(Error::NotDeployable {
                reason: "IMAGE_NOT_DEPLOYABLE",
                message: format!("{} has no linux/amd64 image", predictor.asset_version),
            });
        }
        let asset = self.assets.asset(principal, &predictor.asset).await?;
        if asset.image_prefix.is_empty() {
            return Err(Error::NotDeployable {
                reason: "IMAGE_NOT_DEPLOYABLE",
                message: format!("{} is not a Docker Repo asset", predictor.asset),
            });
        }
        let record = DeploymentRecord {
            id: String::new(),
            use_case: wanted.use_case.clone(),
            release: wanted.release.clone(),
            predictor_version: predictor.asset_version.clone(),
            predictor_image: format!("{}@{}", asset.image_prefix, predictor.image_digest),
            replicas: u32::try_from(wanted.replicas.max(1)).unwrap_or(1),
            allow_network: wanted.allow_network,
            creator: principal.as_str().to_owned(),
            create_time: now(),
        };
        let record = self.deployments.create(record).await?;
        tracing::info!(deployment = %record.id, use_case = %record.use_case, by = %principal.as_str(), "deployed");
        Ok(deployment(self.deployments.status(record)))
    }
}

#[tonic::async_trait]
impl DeploymentService for DeploymentApi {
    async fn create_deployment(
        &self,
        request: Request<pb::CreateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(self.create(&principal, request.into_inner()).await?))
    }

    async fn get_deployment(
        &self,
        request: Request<pb::GetDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        let principal = Principal::of(&request)?.clone();
        let (record, _) = self.readable(&principal, &request.into_inner().name).await?;
        Ok(Response::new(deployment(self.deployments.status(record))))
    }

    async fn watch_deployment(
        &self,
        request: Request<pb::WatchDeploymentRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        let (record, _) = self.readable(&principal, &request.into_inner().name).await?;
        let changes = self.deployments.changes(&record.id);
        let start = (self.deployments.clone(), record, changes, None::<pb::Deployment>);
        let stream = futures::stream::unfold(Some(start), |state| async move {
            let (deployments, record, mut changes, last) = state?;
            loop {
                let now = deployment(deployments.status(record.clone()));
                if last.as_ref().is_none_or(|last| seen(last) != seen(&now)) {
                    // Not running here (this server cannot run it): as it is, once.
                    let next = changes.is_some().then(|| (deployments, record, changes, Some(now.clone())));
                    return Some((Ok(now), next));
                }
                let receiver = changes.as_mut()?;
                if receiver.changed().await.is_err() {
                    let gone = Status::not_found(format!("deployments/{} was deleted", record.id));
                    return Some((Err(gone), None));
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stream_deployment_logs(
        &self,
        request: Request<pb::StreamDeploymentLogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let (record, role) = self.readable(&principal, &request.name).await?;
        if !matches!(role, MemberRole::Owner | MemberRole::Editor) {
            let why = format!("the logs of {} are for its use case's owner and editors", request.name);
            return Err(Error::NotAllowed(why).into());
        }
        let mut violations = Violations::new();
        let replica = u32::try_from(request.replica).ok().filter(|r| *r < record.replicas);
        if replica.is_none() {
            violations.add(
                "replica",
                format!("0 to {} (the deployment has {} replicas)", record.replicas - 1, record.replicas),
            );
        }
        if request.tail_bytes < 0 {
            violations.add("tail_bytes", "must not be negative");
        }
        violations.into_result(()).map_err(Error::from)?;
        let path = self.deployments.log_path(&record.id, replica.unwrap_or(0));
        let gone = self.deployments.changes(&record.id);
        let (sender, out) = tokio::sync::mpsc::channel(8);
        tokio::spawn(send_log(path, request.tail_bytes, request.follow, gone, sender));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))))
    }

    async fn list_deployments(
        &self,
        request: Request<pb::ListDeploymentsRequest>,
    ) -> Result<Response<pb::ListDeploymentsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let use_case = request.into_inner().use_case;
        if !is_use_case_name(&use_case) {
            return Err(Error::Invalid(Violations::one("use_case", "required: useCases/{use_case}")).into());
        }
        self.role(&principal, &use_case).await?;
        let records = self.deployments.store().list(Some(&use_case)).await.map_err(Error::from)?;
        let deployments = records.into_iter().map(|record| deployment(self.deployments.status(record))).collect();
        Ok(Response::new(pb::ListDeploymentsResponse { deployments }))
    }

    async fn delete_deployment(
        &self,
        request: Request<pb::DeleteDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        let principal = Principal::of(&request)?.clone();
        let name = request.into_inner().name;
        let (record, role) = self.readable(&principal, &name).await?;
        if !matches!(role, MemberRole::Owner | MemberRole::Editor) {
            return Err(Error::NotAllowed(format!("undeploying {name} needs its use case's owner or an editor")).into());
        }
        let last = self.deployments.status(record);
        if !self.deployments.delete(&last.record.id).await.map_err(Error::from)? {
            return Err(Error::NotFound(name).into());
        }
        tracing::info!(deployment = %last.record.id, by = %principal.as_str(), "undeployed");
        Ok(Response::new(deployment(last)))
    }
}

/// Sends the log at `path` from `tail` bytes before its end (0: its start), and with `follow` on as it grows, until
/// the receiver leaves or `gone` closes (the deployment was deleted). A log that shrank is a replica's new one: it
/// is read from its start.
async fn send_log(
    path: std::path::PathBuf,
    tail: i64,
    follow: bool,
    mut gone: Option<tokio::sync::watch::Receiver<u64>>,
    sender: tokio::sync::mpsc::Sender<Result<pb::StreamDeploymentLogsResponse, Status>>,
) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let length = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
    let mut offset = match u64::try_from(tail) {
        Ok(tail) if tail > 0 => length.saturating_sub(tail),
        _ => 0,
    };
    let mut buffer = vec![0u8; LOG_CHUNK];
    loop {
        let read = async {
            let mut file = tokio::fs::File::open(&path).await?;
            if file.metadata().await?.len() < offset {
                offset = 0;
            }
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            file.read(&mut buffer).await
        };
        match read.await {
            Ok(n) if n > 0 => {
                offset += n as u64;
                let chunk = pb::StreamDeploymentLogsResponse { data: buffer[..n].to_vec().into() };
                if sender.send(Ok(chunk)).await.is_err() {
                    return;
                }
                continue;
            }
            // Nothing (yet): a replica not started has no log.
            _ if !follow => return,
            _ => {}
        }
        let deleted = async {
            match gone.as_mut() {
                Some(gone) => gone.changed().await.is_err(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(LOG_TICK) => {}
            true = deleted => return,
            () = sender.closed() => return,
        }
    }
}

/// What a watcher is told about: everything but the conditions' transition times.
fn seen(deployment: &pb::Deployment) -> pb::Deployment {
    let mut seen = deployment.clone();
    for condition in &mut seen.conditions {
        condition.last_transition_time = None;
    }
    seen
}

fn is_use_case_name(name: &str) -> bool {
    name.strip_prefix("useCases/").is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

fn deployment(status: DeploymentStatus) -> pb::Deployment {
    let record = status.record;
    pb::Deployment {
        name: format!("deployments/{}", record.id),
        inference_id: record.id,
        use_case: record.use_case,
        release: record.release,
        predictor: Some(pb::DeployedImage { asset_version: record.predictor_version, image: record.predictor_image }),
        replicas: i32::try_from(record.replicas).unwrap_or(i32::MAX),
        allow_network: record.allow_network,
        state: match status.state {
            DeploymentState::Starting => pb::deployment::State::Starting,
            DeploymentState::Ready => pb::deployment::State::Ready,
            DeploymentState::Failed => pb::deployment::State::Failed,
        } as i32,
        conditions: status
            .conditions
            .into_iter()
            .map(|c| pb::Condition {
                r#type: c.kind.to_owned(),
                status: match c.status {
                    ConditionStatus::True => "True",
                    ConditionStatus::False => "False",
                    ConditionStatus::Unknown => "Unknown",
                }
                .to_owned(),
                reason: c.reason,
                message: c.message,
                last_transition_time: Some(prost_types::Timestamp::from(c.transition_time)),
            })
            .collect(),
        ready_replicas: i32::try_from(status.ready).unwrap_or(i32::MAX),
        restarts: i32::try_from(status.restarts).unwrap_or(i32::MAX),
        creator: record.creator,
        create_time: Some(prost_types::Timestamp::from(SystemTime::from(record.create_time))),
    }
}
