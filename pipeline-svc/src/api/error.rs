//! [`Error`] → [`Status`]: the only place the pipeline service chooses status codes.

use highwind_common::{
    status::{self, Precondition},
    validation::Violations,
};
use tonic::Status;

use crate::{
    error::{Error, KfpRefusal},
    executor::images::ImageProblem,
};

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => status::invalid_argument(&violations),
            Error::NotFound(name) => Status::not_found(format!("{name} not found")),
            Error::NoSuchTask { name, tasks, total } => {
                let more = total.saturating_sub(tasks.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                let known = if tasks.is_empty() { "none yet".to_owned() } else { tasks.join(", ") };
                Status::not_found(format!(
                    "{name} not found; name a task by its path, key or display name. The run's tasks: {known}{more}"
                ))
            }
            Error::AmbiguousTask { name, candidates } => status::invalid_argument(&Violations::one(
                "name",
                format!("{name} names several tasks; name one by its path: {}", candidates.join(", ")),
            )),
            // Only DescribePipeline reads a version as a pipeline without naming its own field; CreateRun names
            // `run.pipeline_version` itself.
            Error::NotPipeline(asset) => status::invalid_argument(&Violations::one(
                "pipeline_version",
                format!("{asset} is not a PIPELINE asset"),
            )),
            Error::NotOwner(asset) => {
                Status::permission_denied(format!("{asset}: only its owner can add versions to it"))
            }
            Error::NotReady(name) => Status::failed_precondition(format!("{name} is not READY or is archived")),
            Error::NoIr(name) => Status::failed_precondition(format!("{name} holds no single .yaml IR file")),
            Error::Unparsable(issue) => Status::failed_precondition(format!("{}: {}", issue.reason, issue.message)),
            Error::NoLongerValid(issue) => Status::failed_precondition(format!(
                "the pipeline version no longer validates: {} at {}: {}",
                issue.reason, issue.location, issue.message
            )),
            Error::WrongState(state) => status::failed_precondition(
                format!("the run is {state}"),
                "RUN_STATE",
                &[Precondition { kind: "STATE", subject: "run".into(), description: format!("the run is {state}") }],
            ),
            Error::Conflict => Status::aborted("the run changed at the same time; try again"),
            Error::NotForKfp(refusal) => kfp_refusal(refusal),
            Error::LogsInKfp { pod } => {
                let pod = if pod.is_empty() { "its pod".to_owned() } else { format!("pod {pod}") };
                status::failed_precondition(
                    "logs of Kubeflow Pipelines tasks stay in the cluster",
                    "KFP_LOGS",
                    &[backend_kfp(format!("read them in the KFP UI or with kubectl logs ({pod})"))],
                )
            }
            Error::PastLogEnd { offset, length } => {
                Status::out_of_range(format!("offset {offset} is beyond the end of the log ({length} bytes)"))
            }
            Error::TooManyActiveRuns { creator, limit } => status::quota_exhausted(
                creator,
                format!(
                    "at most {limit} active runs (PENDING, RUNNING or CANCELING) at once \
                     (executor.max_active_runs_per_user); wait for one to end or cancel one"
                ),
            ),
            Error::AssetsUnavailable(why) => {
                tracing::warn!(error = %why, "asset service unavailable");
                Status::unavailable("the asset service cannot be reached; try again shortly")
            }
            Error::Abandoned => Status::cancelled("the call was abandoned before its work finished"),
            Error::Blocking(cause) => status::internal(&cause),
            Error::Store(cause) => status::internal(&cause),
            Error::NotAdministrator(what) => Status::permission_denied(format!(
                "{what} is for the platform's administrators (admins in pipeline-svc's configuration)"
            )),
            Error::NoImageStore(why) => Status::failed_precondition(format!("no image store here: {why}")),
            Error::Image(problem) => image_problem(problem),
            Error::ImageStore(cause) => status::internal(&cause),
            Error::NotAllowed(message) => Status::permission_denied(message),
            Error::UseCasesUnavailable(why) => {
                tracing::warn!(error = %why, "use case service unavailable");
                Status::unavailable("the use case service cannot be reached; try again shortly")
            }
            Error::NotDeployable { reason, message } => status::failed_precondition(
                "the use case cannot be deployed",
                reason,
                &[Precondition { kind: reason, subject: "deployment".into(), description: message }],
            ),
            Error::TooManyDeployments(limit) => status::quota_exhausted(
                "deployments",
                format!("this server runs at most {limit} deployments (deployments.max_deployments); delete one"),
            ),
        }
    }
}

/// An image that cannot be had, by why.
fn image_problem(problem: ImageProblem) -> Status {
    match problem {
        ImageProblem::BadReference(why) => status::invalid_argument(&Violations::one("reference", why)),
        ImageProblem::UnknownRegistry { .. } => Status::failed_precondition(problem.to_string()),
        ImageProblem::NotFound { .. } => Status::not_found(problem.to_string()),
        ImageProblem::Failed { .. } => Status::unavailable(problem.to_string()),
    }
}

/// FAILED_PRECONDITION for a run the KFP backend cannot take, with a reason clients can switch on and what to do.
fn kfp_refusal(refusal: KfpRefusal) -> Status {
    let (reason, why) = match refusal {
        KfpRefusal::NotConfigured => {
            ("BACKEND_NOT_CONFIGURED", "this server has no Kubeflow Pipelines backend configured; use LOCAL")
        }
        KfpRefusal::OutputDestinations => (
            "KFP_OUTPUTS_STAY_IN_KFP",
            "outputs of Kubeflow Pipelines runs stay in KFP's pipeline root and do not become asset versions; \
             leave run.output_destinations empty or use LOCAL",
        ),
        KfpRefusal::AssetInputs => (
            "KFP_ASSET_INPUTS",
            "Kubeflow Pipelines reads input artifacts from object storage (s3://...) and this server does not \
             hand asset versions to KFP: a KFP run cannot take asset inputs; give importers an object-store URI \
             or use LOCAL",
        ),
        KfpRefusal::HostImageMode => (
            "KFP_IMAGES_ONLY",
            "Kubeflow Pipelines runs every step in its image: run.image_mode HOST needs backend LOCAL",
        ),
    };
    status::failed_precondition("the run cannot go to Kubeflow Pipelines", reason, &[backend_kfp(why.into())])
}

/// The unmet condition of a KFP refusal: the backend is KFP.
fn backend_kfp(description: String) -> Precondition {
    Precondition { kind: "BACKEND", subject: "KFP".into(), description }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn kfp_refusals_name_their_reason_and_the_backend() {
        let refusals = [
            (KfpRefusal::NotConfigured, "BACKEND_NOT_CONFIGURED"),
            (KfpRefusal::OutputDestinations, "KFP_OUTPUTS_STAY_IN_KFP"),
            (KfpRefusal::AssetInputs, "KFP_ASSET_INPUTS"),
            (KfpRefusal::HostImageMode, "KFP_IMAGES_ONLY"),
        ];
        for (refusal, reason) in refusals {
            let status = Status::from(Error::NotForKfp(refusal));
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert!(status.message().starts_with("the run cannot go to Kubeflow Pipelines: KFP: "), "{status:?}");
            let details = status.get_error_details();
            assert_eq!(details.error_info().expect("error info").reason, reason);
            let violation = &details.precondition_failure().expect("precondition failure").violations[0];
            assert_eq!((violation.r#type.as_str(), violation.subject.as_str()), ("BACKEND", "KFP"));
        }
    }

    #[test]
    fn too_many_active_runs_is_the_creators_quota() {
        let status = Status::from(Error::TooManyActiveRuns { creator: "users/alice".into(), limit: 2 });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let violation = &details.quota_failure().expect("quota failure").violations[0];
        assert_eq!(violation.subject, "users/alice");
        assert!(violation.description.starts_with("at most 2 active runs"), "{violation:?}");
    }

    #[test]
    fn logs_of_kfp_tasks_point_at_their_pod() {
        let named = Status::from(Error::LogsInKfp { pod: "train-123".into() });
        assert_eq!(named.code(), Code::FailedPrecondition);
        assert!(named.message().ends_with("(pod train-123)"), "{named:?}");
        let unnamed = Status::from(Error::LogsInKfp { pod: String::new() });
        assert!(unnamed.message().ends_with("(its pod)"), "{unnamed:?}");
    }
}
