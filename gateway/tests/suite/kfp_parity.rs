//! Pipelines as the kfp SDK writes them behave as on KFP: an `Output[Metrics]` filled only with `log_metric` is an
//! output (its metadata reaches the steps that read it), and a task inside a condition is found by the name its
//! author gave it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::pipeline::v1 as pb;
use prost_types::value::Kind;
use tonic::Code;

use crate::support::{
    Platform, kfp_path,
    runs::{create, log_of, push_pipeline, run_of, state, string_output, task, watch},
};

fn metadata_number(artifact: &pb::Artifact, key: &str) -> Option<f64> {
    match artifact.metadata.as_ref()?.fields.get(key)?.kind {
        Some(Kind::NumberValue(n)) => Some(n),
        _ => None,
    }
}

#[tokio::test]
async fn metrics_logged_without_a_file_are_an_output_and_a_conditional_task_is_found_by_its_name() {
    if kfp_path().is_none() {
        eprintln!("skipped: set HIGHWIND_TEST_KFP_VENV to a Python environment with kfp 2.17.3");
        return;
    }
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "k_metrics.yaml").await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);

    let evaluate = task(&run, "evaluate");
    let metrics = evaluate.outputs.as_ref().unwrap().artifacts.iter().find(|a| a.key == "metrics").expect("metrics");
    assert_eq!(metrics.artifact_type, "system.Metrics");
    assert_eq!(metadata_number(metrics, "accuracy"), Some(0.93), "{metrics:?}");
    assert_eq!(metadata_number(metrics, "f1"), Some(0.9), "{metrics:?}");
    let announce = task(&run, "condition-1.announce");
    assert_eq!(string_output(&announce.outputs, "Output"), "accuracy 0.93", "the reader saw the logged metrics");

    // Its author knows the task as `announce`: logs find it by that name.
    let log = log_of(&platform, "alice", &format!("{}/tasks/announce", run.name), false).await;
    assert!(log.contains("accuracy 0.93"), "{log}");
    // A name no task has is NOT_FOUND, and the answer says which names there are.
    let mut client = platform.pipelines(Some("alice")).await;
    let wrong = pb::StreamTaskLogsRequest { name: format!("{}/tasks/anounce", run.name), ..Default::default() };
    let status = client.stream_task_logs(wrong).await.expect_err("no such task");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    for known in ["condition-1.announce", "evaluate"] {
        assert!(status.message().contains(known), "the error lists the run's tasks: {}", status.message());
    }
    platform.stop().await;
}
