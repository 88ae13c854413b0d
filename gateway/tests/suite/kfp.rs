//! Runs on the Kubeflow Pipelines backend, through the gateway, against the KFP stand-in (no real KFP runs here):
//! the pipeline version is uploaded once, the run is created from it and followed to its end with every change on
//! Watch; cancellation terminates it in KFP; RetryRun retries the same KFP run; lost or failed answers never make
//! a second KFP run; every auth mode sends what KFP expects; runs KFP cannot take are refused up front.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use pipeline_svc::kfp::{KfpAuth, KfpConfig};
use prost_types::value::Kind;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::runs::{push_pipeline, sample};
use crate::support::{Platform, kfp::StandIn};

fn kfp_run(version: &str, n: f64) -> pb::Run {
    pb::Run {
        pipeline_version: version.into(),
        display_name: "nightly".into(),
        backend: pb::RunBackend::Kfp as i32,
        parameters: [("n".to_owned(), prost_types::Value { kind: Some(Kind::NumberValue(n)) })].into(),
        ..Default::default()
    }
}

async fn create(platform: &Platform, run: pb::Run) -> Result<pb::Run, tonic::Status> {
    let request = pb::CreateRunRequest { run: Some(run), ..Default::default() };
    platform.pipelines(Some("alice")).await.create_run(request).await.map(tonic::Response::into_inner)
}

/// Every message of a Watch of `run` until it ends, and the run then.
async fn watch(platform: &Platform, run: &str) -> (Vec<pb::WatchRunResponse>, pb::Run) {
    let mut client = platform.pipelines(Some("alice")).await;
    let mut stream = client.watch_run(pb::WatchRunRequest { name: run.into() }).await.expect("watch").into_inner();
    let mut messages = Vec::new();
    while let Some(message) =
        tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("in time").expect("stream")
    {
        messages.push(message);
    }
    (messages, get(platform, run).await)
}

async fn get(platform: &Platform, run: &str) -> pb::Run {
    let mut client = platform.pipelines(Some("alice")).await;
    client.get_run(pb::GetRunRequest { name: run.into(), view: 0 }).await.expect("get").into_inner()
}

async fn wait_for(platform: &Platform, run: &str, wanted: pb::RunState) -> pb::Run {
    for _ in 0..400 {
        let current = get(platform, run).await;
        if current.state == wanted as i32 {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run} never became {wanted:?}");
}

fn state(run: &pb::Run) -> pb::RunState {
    pb::RunState::try_from(run.state).unwrap()
}

/// The states the run itself went through on a Watch stream, repeats removed.
fn run_states(messages: &[pb::WatchRunResponse]) -> Vec<pb::RunState> {
    use pb::watch_run_response::Change;
    let mut states: Vec<pb::RunState> = messages
        .iter()
        .filter_map(|m| match &m.change {
            Some(Change::Snapshot(run) | Change::Run(run)) => Some(state(run)),
            _ => None,
        })
        .collect();
    states.dedup();
    states
}

#[tokio::test]
async fn a_run_is_uploaded_once_created_from_its_version_and_followed_to_the_end() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    let platform = Platform::builder().kfp(kfp.config()).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;

    let created = create(&platform, kfp_run(&version, 4.0)).await.expect("created");
    assert_eq!(created.backend, pb::RunBackend::Kfp as i32);
    let (messages, run) = watch(&platform, &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    assert_eq!(
        run_states(&messages),
        [pb::RunState::Pending, pb::RunState::Running, pb::RunState::Succeeded],
        "Watch shows every transition"
    );
    let sequences: Vec<i64> = messages.iter().map(|m| m.sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequences increase: {sequences:?}");

    let runs = kfp.runs().await;
    assert_eq!(runs.len(), 1);
    let id = created.name.strip_prefix("runs/").unwrap();
    assert_eq!(run.backend_run_id, runs[0]["run_id"].as_str().unwrap());
    assert_eq!(runs[0]["display_name"], json!(format!("nightly [highwind {id}]")));
    // Parameters go with their declared types: n is an integer, factor keeps its default as a double.
    assert_eq!(runs[0]["parameters"], json!({"n": 4, "factor": 2.0}));

    let mut names: Vec<&str> = run.tasks.iter().map(|t| t.display_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["make-data", "scale", "summarize"]);
    for task in &run.tasks {
        assert_eq!(task.state, pb::RunState::Succeeded as i32, "{}", task.name);
        assert!(!task.backend_task_id.is_empty());
        assert!(task.end_time.is_some());
    }
    // KFP keeps task logs in the cluster: the answer says where instead of pretending.
    let mut client = platform.pipelines(Some("alice")).await;
    let request = pb::StreamTaskLogsRequest { name: run.tasks[0].name.clone(), ..Default::default() };
    let Err(refused) = client.stream_task_logs(request).await else { panic!("logs of a KFP task were served") };
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("pod "), "{}", refused.message());

    // A second run of the same version reuses the upload; a run with caching uses its own version.
    let again = create(&platform, kfp_run(&version, 5.0)).await.unwrap();
    assert_eq!(state(&watch(&platform, &again.name).await.1), pb::RunState::Succeeded);
    let cached = create(&platform, pb::Run { enable_caching: true, ..kfp_run(&version, 6.0) }).await.unwrap();
    assert_eq!(state(&watch(&platform, &cached.name).await.1), pb::RunState::Succeeded);
    let pipelines = kfp.pipelines().await;
    assert_eq!(pipelines.len(), 1, "one KFP pipeline per pipeline asset: {pipelines:?}");
    let asset_id = version.split('/').nth(1).unwrap();
    let versions: Vec<(String, Value)> = pipelines[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["caching"].clone()))
        .collect();
    assert_eq!(pipelines[0]["name"], json!(format!("highwind-{asset_id}")));
    assert!(versions.contains(&(format!("highwind-{asset_id}-v1-nocache"), json!([false]))), "{versions:?}");
    assert!(versions.contains(&(format!("highwind-{asset_id}-v1"), json!([true]))), "{versions:?}");
    assert_eq!(versions.len(), 3, "the upload's own first version and one per caching choice: {versions:?}");
    assert_eq!(kfp.runs().await.len(), 3);
}

#[tokio::test]
async fn cancel_terminates_the_kfp_run_and_waits_for_canceled() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    kfp.outcome("RUNNING").await;
    let platform = Platform::builder().kfp(kfp.config()).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let created = create(&platform, kfp_run(&version, 3.0)).await.unwrap();
    wait_for(&platform, &created.name, pb::RunState::Running).await;

    let mut client = platform.pipelines(Some("alice")).await;
    let canceling =
        client.cancel_run(pb::CancelRunRequest { name: created.name.clone() }).await.expect("cancel").into_inner();
    assert_eq!(state(&canceling), pb::RunState::Canceling);
    let (_, run) = watch(&platform, &created.name).await;
    assert_eq!(state(&run), pb::RunState::Canceled);
    assert!(run.tasks.iter().all(|t| t.state == pb::RunState::Canceled as i32), "tasks end canceled too");
    let runs = kfp.runs().await;
    assert_eq!(runs[0]["state"], json!("CANCELED"));
    let terminations = kfp.requests().await.into_iter().filter(|r| r["path"].as_str().unwrap().ends_with(":terminate"));
    assert_eq!(terminations.count(), 1);
}

#[tokio::test]
async fn retry_asks_kfp_to_retry_the_same_run() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    kfp.outcome("FAILED").await;
    let platform = Platform::builder().kfp(kfp.config()).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let created = create(&platform, kfp_run(&version, 3.0)).await.unwrap();
    let (_, failed) = watch(&platform, &created.name).await;
    assert_eq!(state(&failed), pb::RunState::Failed);
    let error = failed.error.expect("error");
    assert!(error.message.contains("failed"), "KFP's reason reaches the run: {error:?}");

    let mut client = platform.pipelines(Some("alice")).await;
    let request = pb::RetryRunRequest { name: created.name.clone(), request_id: String::new() };
    let retried = client.retry_run(request).await.expect("retry").into_inner();
    assert_eq!(retried.attempt, 2);
    let (_, run) = watch(&platform, &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded);
    assert_eq!(run.backend_run_id, failed.backend_run_id, "the same KFP run");
    assert_eq!(kfp.runs().await.len(), 1);
    let request = pb::RetryRunRequest { name: created.name.clone(), request_id: String::new() };
    assert_eq!(client.retry_run(request).await.unwrap_err().code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn an_error_then_a_lost_answer_still_make_exactly_one_kfp_run() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    // The first create fails with 500; the second creates the run but answers after the client gave up.
    kfp.faults("run_service_create_run", &["500", "slow:3"]).await;
    let config = KfpConfig { request_timeout_ms: 1_000, ..kfp.config() };
    let platform = Platform::builder().kfp(config).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let created = create(&platform, kfp_run(&version, 2.0)).await.unwrap();
    let (_, run) = watch(&platform, &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let runs = kfp.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(run.backend_run_id, runs[0]["run_id"].as_str().unwrap());
    let creates =
        kfp.requests().await.into_iter().filter(|r| r["method"] == "POST" && r["path"] == "/apis/v2beta1/runs");
    assert_eq!(creates.count(), 2, "no third create: the lost one was found by name");
}

#[tokio::test]
async fn a_token_file_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let Some(kfp) = StandIn::start(&["--bearer-file", token_file.to_str().unwrap()]).await else { return };
    let config = KfpConfig {
        auth: KfpAuth::TokenFile,
        token_file: token_file.clone(),
        namespace: "team-a".into(),
        ..kfp.config()
    };
    let platform = Platform::builder().kfp(config).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let first = create(&platform, kfp_run(&version, 2.0)).await.unwrap();
    assert_eq!(state(&watch(&platform, &first.name).await.1), pb::RunState::Succeeded);

    // The token rotates (as a projected service account token does): the next calls carry the new one.
    std::fs::write(&token_file, "second-token-rotated\n").unwrap();
    let second = create(&platform, kfp_run(&version, 3.0)).await.unwrap();
    assert_eq!(state(&watch(&platform, &second.name).await.1), pb::RunState::Succeeded);
    let sent: Vec<String> =
        kfp.requests().await.iter().map(|r| r["authorization"].as_str().unwrap_or("none").to_owned()).collect();
    assert!(sent.contains(&"Bearer first-token".to_owned()));
    assert_eq!(sent.last().unwrap(), "Bearer second-token-rotated");
    assert!(sent.iter().all(|s| s.starts_with("Bearer ")), "every call authenticated: {sent:?}");
}

#[tokio::test]
async fn a_trusted_user_header_is_sent_and_a_refused_token_fails_the_run_with_kfps_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Some(kfp) = StandIn::start(&["--userid", "highwind@example.com"]).await else { return };
    let config = KfpConfig {
        auth: KfpAuth::UserHeader,
        user: "highwind@example.com".into(),
        namespace: "team-a".into(),
        ..kfp.config()
    };
    let platform = Platform::builder().kfp(config).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let run = create(&platform, kfp_run(&version, 2.0)).await.unwrap();
    assert_eq!(state(&watch(&platform, &run.name).await.1), pb::RunState::Succeeded);
    let requests = kfp.requests().await;
    assert!(requests.iter().all(|r| r["userid"] == "highwind@example.com"));
    let lists = requests.iter().filter(|r| r["path"] == "/apis/v2beta1/runs" && r["method"] == "GET");
    assert!(
        lists.clone().count() > 0
            && lists.into_iter().all(|r| r["query"].as_str().unwrap().contains("namespace=team-a"))
    );

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "the-right-one").unwrap();
    let Some(strict) = StandIn::start(&["--bearer-file", token_file.to_str().unwrap()]).await else { return };
    let config = KfpConfig {
        auth: KfpAuth::Bearer,
        token: highwind_common::config::Secret::new("a-wrong-one"),
        ..strict.config()
    };
    let platform = Platform::builder().kfp(config).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let run = create(&platform, kfp_run(&version, 2.0)).await.unwrap();
    let (_, run) = watch(&platform, &run.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    let error = run.error.unwrap();
    assert_eq!(error.reason, "BACKEND_ERROR");
    assert!(error.message.contains("401") && error.message.contains("Unauthenticated"), "{error:?}");
    assert!(strict.runs().await.is_empty());
}

#[tokio::test]
async fn runs_kfp_cannot_take_are_refused_and_nothing_reaches_kfp() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    let platform = Platform::builder().kfp(kfp.config()).start().await;
    let importer = push_pipeline(&platform, "alice", "c_importer_container_noinstall.yaml").await;
    let dataset = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    let data = platform.commit_files("alice", &dataset, &[("iris.csv", sample("iris_small.csv"))]).await.unwrap();
    let bound = pb::Run {
        pipeline_version: importer.clone(),
        backend: pb::RunBackend::Kfp as i32,
        input_bindings: vec![pb::InputBinding {
            target: Some(pb::input_binding::Target::ImporterTask("importer".into())),
            asset_version: data.name.clone(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let refused = create(&platform, bound.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.get_details_error_info().unwrap().reason, "KFP_ASSET_INPUTS");
    assert!(refused.message().contains("s3://"), "{}", refused.message());

    // An importer whose URI is a Highwind asset version cannot go to KFP either; one KFP reads itself can, and a
    // URI KFP cannot import is refused naming the parameter.
    let data_uri = |uri: &str| pb::Run {
        parameters: [("data_uri".to_owned(), prost_types::Value { kind: Some(Kind::StringValue(uri.into())) })].into(),
        input_bindings: Vec::new(),
        ..bound.clone()
    };
    let refused = create(&platform, data_uri(&format!("highwind://{}", data.name))).await.unwrap_err();
    assert_eq!(refused.get_details_error_info().unwrap().reason, "KFP_ASSET_INPUTS");
    for uri in ["file:///etc/passwd", "/data/iris.csv", "https://example.com/iris.csv", "s3://bucket/../x", "s3://"] {
        let refused = create(&platform, data_uri(uri)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{uri}");
        let violations = refused.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "run.parameters.data_uri", "{uri}");
    }
    assert!(kfp.requests().await.is_empty(), "nothing was sent to KFP");
    let from_s3 = create(&platform, data_uri("s3://ml-data/iris/iris_small.csv")).await.expect("KFP reads s3 itself");
    assert_eq!(state(&watch(&platform, &from_s3.name).await.1), pb::RunState::Succeeded);
    assert_eq!(kfp.runs().await[0]["parameters"]["data_uri"], json!("s3://ml-data/iris/iris_small.csv"));

    let linear = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let with_destination = pb::Run {
        output_destinations: vec![pb::OutputDestination {
            task: "make-data".into(),
            output_key: "out_ds".into(),
            destination: Some(pb::output_destination::Destination::Asset(dataset.clone())),
        }],
        ..kfp_run(&linear, 2.0)
    };
    let refused = create(&platform, with_destination).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "KFP_OUTPUTS_STAY_IN_KFP");

    let mut client = platform.pipelines(Some("alice")).await;
    let listed = client.list_runs(pb::ListRunsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.runs.len(), 1, "only the run KFP could take exists");
    assert_eq!(kfp.runs().await.len(), 1);

    // Without a KFP backend configured, KFP runs are refused the same way.
    let local_only = Platform::start().await;
    let version = push_pipeline(&local_only, "alice", "a_linear_noinstall.yaml").await;
    let refused = create(&local_only, kfp_run(&version, 2.0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "BACKEND_NOT_CONFIGURED");
}

#[tokio::test]
async fn a_server_restarted_without_its_kfp_backend_ends_kfp_runs_and_never_runs_them_itself() {
    let Some(kfp) = StandIn::start(&[]).await else { return };
    kfp.outcome("RUNNING").await;
    let platform = Platform::builder().kfp(kfp.config()).start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let created = create(&platform, kfp_run(&version, 2.0)).await.unwrap();
    wait_for(&platform, &created.name, pb::RunState::Running).await;
    let dir = platform.stop().await;
    drop(kfp);

    let platform = Platform::builder().in_dir(dir).start().await;
    let run = get(&platform, &created.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    assert_eq!(run.error.unwrap().reason, "BACKEND_NOT_CONFIGURED");
    let mut client = platform.pipelines(Some("alice")).await;
    let request = pb::RetryRunRequest { name: created.name.clone(), request_id: String::new() };
    let refused = client.retry_run(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "BACKEND_NOT_CONFIGURED");
    let id = created.name.strip_prefix("runs/").unwrap();
    assert!(!platform.dir.path().join("runs").join(id).exists(), "no task of the run ran here");
}
