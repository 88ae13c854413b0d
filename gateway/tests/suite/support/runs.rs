//! Pipeline runs for tests: the compiled samples, runs of them, and what a finished run says.

use std::time::Duration;

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use prost_types::value::Kind;

use super::Platform;

/// The compiled sample pipeline `name` (pipeline-svc/tests/samples).
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../pipeline-svc/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample")
}

/// A new pipeline asset of `user` holding the sample `sample_name`; its version name.
pub async fn push_pipeline(platform: &Platform, user: &str, sample_name: &str) -> String {
    let asset = platform.create_asset(user, apb::AssetKind::Pipeline).await;
    let version = platform.commit_files(user, &asset, &[("pipeline.yaml", sample(sample_name))]).await.expect("commit");
    format!("{asset}/versions/{}", version.version_number)
}

/// A number parameter value.
pub fn number(n: f64) -> prost_types::Value {
    prost_types::Value { kind: Some(Kind::NumberValue(n)) }
}

/// A string parameter value.
pub fn text(s: &str) -> prost_types::Value {
    prost_types::Value { kind: Some(Kind::StringValue(s.into())) }
}

/// A run of `version` with `parameters`.
pub fn run_of(version: &str, parameters: &[(&str, prost_types::Value)]) -> pb::Run {
    pb::Run {
        pipeline_version: version.into(),
        parameters: parameters.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        ..Default::default()
    }
}

/// Creates `run` as `user`.
pub async fn create(platform: &Platform, user: &str, run: pb::Run) -> Result<pb::Run, tonic::Status> {
    let request = pb::CreateRunRequest { run: Some(run), ..Default::default() };
    platform.pipelines(Some(user)).await.create_run(request).await.map(tonic::Response::into_inner)
}

/// Watches `run` to its end: every message, and the run as the stream left it.
pub async fn watch(platform: &Platform, user: &str, run: &str) -> (Vec<pb::WatchRunResponse>, pb::Run) {
    let mut client = platform.pipelines(Some(user)).await;
    let mut stream = client.watch_run(pb::WatchRunRequest { name: run.into() }).await.expect("watch").into_inner();
    let mut messages = Vec::new();
    while let Some(message) =
        tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("in time").expect("stream")
    {
        messages.push(message);
    }
    let last = client.get_run(pb::GetRunRequest { name: run.into(), view: 0 }).await.expect("get").into_inner();
    (messages, last)
}

/// The task at `path` of `run`.
pub fn task<'a>(run: &'a pb::Run, path: &str) -> &'a pb::Task {
    let name = format!("{}/tasks/{path}", run.name);
    run.tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {path} in {:?}", run.tasks.iter().map(|t| &t.name).collect::<Vec<_>>()))
}

/// The run's state.
pub fn state(run: &pb::Run) -> pb::RunState {
    pb::RunState::try_from(run.state).unwrap()
}

/// The task's state.
pub fn task_state(task: &pb::Task) -> pb::RunState {
    pb::RunState::try_from(task.state).unwrap()
}

/// The string output parameter `key`.
pub fn string_output(outputs: &Option<pb::Outputs>, key: &str) -> String {
    match outputs.as_ref().and_then(|o| o.parameters.get(key)).and_then(|v| v.kind.clone()) {
        Some(Kind::StringValue(s)) => s,
        other => panic!("output {key} is {other:?}"),
    }
}

/// The whole log of task `task_name`, following it to its end when `follow`.
pub async fn log_of(platform: &Platform, user: &str, task_name: &str, follow: bool) -> String {
    let mut client = platform.pipelines(Some(user)).await;
    let request = pb::StreamTaskLogsRequest { name: task_name.into(), follow, ..Default::default() };
    let mut stream = client.stream_task_logs(request).await.expect("logs").into_inner();
    let mut log = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        assert_eq!(chunk.offset as usize, log.len(), "chunks are contiguous");
        log.extend_from_slice(&chunk.data);
    }
    String::from_utf8_lossy(&log).into_owned()
}

/// Whether bubblewrap is installed (a failure when `HIGHWIND_REQUIRE_SANDBOX=1` and it is not).
pub fn sandbox_available() -> bool {
    if highwind_common::executables::find_on_path("bwrap").is_some() {
        return true;
    }
    let required = std::env::var("HIGHWIND_REQUIRE_SANDBOX").is_ok_and(|v| v == "1");
    assert!(!required, "HIGHWIND_REQUIRE_SANDBOX=1 but bwrap is not installed");
    eprintln!("skipped: bwrap (bubblewrap) is not installed");
    false
}

/// Runs `script` (`sh -c`, its output file as `$0`) as a one-step pipeline of `user` and waits for the run.
pub async fn probe_run(platform: &Platform, user: &str, script: &str, allow_network: bool) -> pb::Run {
    let version = push_pipeline(platform, user, "j_shell_probe.yaml").await;
    let run = pb::Run { allow_network, ..run_of(&version, &[("script", text(script))]) };
    let created = create(platform, user, run).await.expect("create");
    watch(platform, user, &created.name).await.1
}
