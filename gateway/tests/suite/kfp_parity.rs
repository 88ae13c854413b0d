//! Pipelines as the kfp SDK writes them behave as on KFP: an `Output[Metrics]` filled only with `log_metric` is an
//! output (its metadata reaches the steps that read it), a registered model keeps the metadata its step set and the
//! metrics its evaluation logged, and a task inside a condition is found by the name its author gave it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
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
async fn logged_metrics_and_metadata_reach_readers_and_the_registered_model_and_tasks_are_found_by_name() {
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
    assert_eq!(metadata_number(metrics, "F1 Score"), Some(0.9), "{metrics:?}");
    let announce = task(&run, "condition-1.announce");
    assert_eq!(string_output(&announce.outputs, "Output"), "accuracy 0.93", "the reader saw the logged metrics");

    // The model became an asset version carrying its metadata (in its lineage) and what its evaluation logged.
    let model = task(&run, "train").outputs.as_ref().unwrap().artifacts.iter().find(|a| a.key == "model").cloned();
    let version_name = model.expect("the model output").asset_version;
    assert!(!version_name.is_empty(), "the model was registered");
    let mut assets = platform.assets(Some("alice")).await;
    let version = assets
        .get_asset_version(apb::GetAssetVersionRequest { name: version_name })
        .await
        .expect("the model version")
        .into_inner();
    let expected = std::collections::HashMap::from([("accuracy".to_owned(), 0.93), ("f1_score".to_owned(), 0.9)]);
    assert_eq!(version.metrics, expected, "metric names become label keys: 'F1 Score' is f1_score");
    let Some(apb::lineage::Source::PipelineRun(source)) = version.lineage.and_then(|l| l.source) else {
        panic!("the version's lineage is the run")
    };
    let framework = source.artifact_metadata.as_ref().and_then(|m| m.fields.get("framework")).cloned();
    assert_eq!(framework.and_then(|v| v.kind), Some(Kind::StringValue("sklearn".into())));

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
