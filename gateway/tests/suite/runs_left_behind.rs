//! What a task leaves at its output paths — a FIFO, a directory of 100,000 entries or one nested 10,000 deep —
//! fails that task with a reason that says what was found, and never blocks the server: while such tasks run,
//! health checks, other users' calls and CancelRun keep answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use prost_types::value::Kind;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::Platform;

/// One container step running `sh -c <script> <output parameter file> <output artifact path>`.
const STEP_IR: &str = r#"
components:
  comp-step:
    executorLabel: exec-step
    inputDefinitions:
      parameters:
        script:
          parameterType: STRING
    outputDefinitions:
      artifacts:
        data:
          artifactType:
            schemaTitle: system.Artifact
            schemaVersion: 0.0.1
      parameters:
        out:
          parameterType: STRING
deploymentSpec:
  executors:
    exec-step:
      container:
        command:
        - sh
        - -c
        args:
        - '{{$.inputs.parameters[''script'']}}'
        - '{{$.outputs.parameters[''out''].output_file}}'
        - '{{$.outputs.artifacts[''data''].path}}'
        image: alpine:3.20
pipelineInfo:
  name: step
root:
  dag:
    tasks:
      step:
        componentRef:
          name: comp-step
        inputs:
          parameters:
            script:
              componentInputParameter: script
        taskInfo:
          name: step
  inputDefinitions:
    parameters:
      script:
        parameterType: STRING
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"#;

/// How long a call of a well-behaved user may take here: generous, this is no benchmark.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What each hostile step does, and what its task's failure must say.
const HOSTILE: [(&str, &str); 6] = [
    (r#"rm -f "$0"; mkfifo "$0""#, r#"output parameter "out" is a FIFO, not a regular file"#),
    (r#"rm -f "$0"; mkfifo "$0""#, r#"output parameter "out" is a FIFO, not a regular file"#),
    (r#"rm -f "$0"; mkfifo "$0""#, r#"output parameter "out" is a FIFO, not a regular file"#),
    (r#"echo x > "$0"; mkfifo "$1""#, r#"output artifact "data" is a FIFO, not a regular file"#),
    (
        r#"echo x > "$0"; mkdir "$1" && cd "$1" && seq 100000 | xargs touch"#,
        r#"output artifact "data" holds more than"#,
    ),
    (
        // 100 levels at a time, each chain moved under the next: no path the shell handles grows long.
        r#"echo x > "$0"; mkdir "$1" && cd "$1" && p=$(printf 'd/%.0s' $(seq 100)) && mkdir -p "a/$p" && i=1 &&
           while [ $i -lt 100 ]; do mkdir -p "b/$p" && mv a "b/$p" && mv b a && i=$((i+1)) || exit 1; done"#,
        r#"output artifact "data" is nested deeper than"#,
    ),
];

/// The platform gets a runtime of its own with two workers, the size of the machine the freeze was found on; the
/// users call from another runtime, as from another machine, so a frozen platform makes their deadlines pass
/// instead of freezing the test.
#[test]
fn what_a_task_leaves_at_its_outputs_fails_that_task_and_blocks_no_one() {
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let users = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let platform = server.block_on(Platform::start());
    let checked = std::panic::catch_unwind(AssertUnwindSafe(|| users.block_on(hostile_tasks_run(&platform))));
    match checked {
        Ok(()) => server.block_on(async move {
            platform.stop().await;
        }),
        Err(panic) => {
            // Workers stuck in a system call would keep a normal shutdown waiting for ever.
            server.shutdown_background();
            std::panic::resume_unwind(panic);
        }
    }
}

async fn hostile_tasks_run(platform: &Platform) {
    let version = push_step(platform).await;
    let bobs_asset = platform.create_asset("bob", apb::AssetKind::Dataset).await;

    let mut hostile = Vec::new();
    for (script, why) in HOSTILE {
        hostile.push((create(platform, &version, script).await, why, Instant::now()));
    }
    let sleeper = create(platform, &version, "sleep 60").await;

    let mut alice = platform.pipelines(Some("alice")).await;
    let mut bob = platform.assets(Some("bob")).await;
    let mut ended = vec![None; hostile.len()];
    let mut canceled = false;
    let started = Instant::now();
    while ended.iter().any(Option::is_none) || !canceled {
        assert!(started.elapsed() < Duration::from_secs(120), "the hostile runs never ended: {ended:?}");
        for service in ["highwind.pipeline.v1.PipelineService", "highwind.asset.v1.AssetService"] {
            let health = in_time("a health check", async {
                let channel = platform.channel().await;
                HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await
            })
            .await
            .expect("health");
            assert_eq!(health.into_inner().status, ServingStatus::Serving as i32, "{service}");
        }
        let request = apb::GetAssetRequest { name: bobs_asset.clone() };
        in_time("bob's GetAsset", bob.get_asset(request)).await.expect("bob reads his asset");
        for ((run, _, _), end) in hostile.iter().zip(ended.iter_mut()).filter(|(_, end)| end.is_none()) {
            let got = in_time("GetRun", alice.get_run(pb::GetRunRequest { name: run.clone(), view: 0 })).await;
            let got = got.expect("get").into_inner();
            if got.state == pb::RunState::Failed as i32 || got.state == pb::RunState::Succeeded as i32 {
                *end = Some((got, Instant::now()));
            }
        }
        if !canceled {
            let got = in_time("GetRun", alice.get_run(pb::GetRunRequest { name: sleeper.clone(), view: 0 })).await;
            let running = got.expect("get").into_inner().tasks.iter().any(|t| t.state == pb::RunState::Running as i32);
            if running {
                let cancel = in_time("CancelRun", alice.cancel_run(pb::CancelRunRequest { name: sleeper.clone() }));
                let state = cancel.await.expect("cancel").into_inner().state;
                assert!([pb::RunState::Canceling as i32, pb::RunState::Canceled as i32].contains(&state));
                canceled = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for ((name, why, created), end) in hostile.iter().zip(ended) {
        let (run, at) = end.unwrap();
        assert_eq!(run.state, pb::RunState::Failed as i32, "{name}: {:?}", run.outputs);
        let step = run.tasks.iter().find(|t| t.task_key == "step").expect("the step");
        let error = step.error.as_ref().expect("why the step failed");
        assert_eq!(error.reason, "BAD_OUTPUT", "{}", error.message);
        assert!(error.message.contains(why), "{:?} says {why:?}", error.message);
        assert!(at.duration_since(*created) < Duration::from_secs(60), "{name} ended promptly");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = in_time("GetRun", alice.get_run(pb::GetRunRequest { name: sleeper.clone(), view: 0 })).await;
        let state = got.expect("get").into_inner().state;
        if state == pb::RunState::Canceled as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "the canceled run ended CANCELED, not {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new pipeline asset of alice's holding [`STEP_IR`]; its version name.
async fn push_step(platform: &Platform) -> String {
    let asset = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    let files = [("pipeline.yaml", STEP_IR.as_bytes().to_vec())];
    let version = platform.commit_files("alice", &asset, &files).await.expect("commit");
    format!("{asset}/versions/{}", version.version_number)
}

/// A run of alice's whose step runs `script`; its name.
async fn create(platform: &Platform, version: &str, script: &str) -> String {
    let script = prost_types::Value { kind: Some(Kind::StringValue(script.into())) };
    let run = pb::Run {
        pipeline_version: version.into(),
        parameters: [("script".to_owned(), script)].into_iter().collect(),
        ..Default::default()
    };
    let request = pb::CreateRunRequest { run: Some(run), ..Default::default() };
    let created = in_time("CreateRun", async { platform.pipelines(Some("alice")).await.create_run(request).await });
    created.await.expect("create").into_inner().name
}

/// `call`'s answer, which must come within [`ANSWER_WITHIN`].
async fn in_time<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_WITHIN, call).await.unwrap_or_else(|_| panic!("{what} did not answer within 5 s"))
}

#[tokio::test]
async fn a_log_the_task_replaced_with_a_link_or_a_fifo_is_never_read() {
    let platform = Platform::start().await;
    let version = push_step(&platform).await;
    // The server could read what the sandbox hides from the task: a link to it must not be followed.
    let secrets = platform.dir.path().join("secrets.json");
    let outputs = r#"echo x > "$0"; echo x > "$1"; rm -f attempt-1.log"#;
    for replacement in [format!("ln -s {} attempt-1.log", secrets.display()), "mkfifo attempt-1.log".to_owned()] {
        let run = create(&platform, &version, &format!("{outputs}; {replacement}")).await;
        let mut alice = platform.pipelines(Some("alice")).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let step = loop {
            let got = alice.get_run(pb::GetRunRequest { name: run.clone(), view: 0 }).await.unwrap().into_inner();
            if got.state == pb::RunState::Succeeded as i32 {
                break got.tasks.into_iter().find(|t| t.task_key == "step").expect("the step");
            }
            assert!(Instant::now() < deadline, "{replacement}: the run ended SUCCEEDED, not {}", got.state);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let request = pb::StreamTaskLogsRequest { name: step.name.clone(), ..Default::default() };
        let log = in_time("StreamTaskLogs", async {
            let mut stream = alice.stream_task_logs(request).await.expect("logs").into_inner();
            let mut log = Vec::new();
            while let Some(chunk) = stream.message().await.expect("chunk") {
                log.extend_from_slice(&chunk.data);
            }
            log
        })
        .await;
        assert_eq!(String::from_utf8_lossy(&log), "", "{replacement}: nothing but the task's own log is read");
    }
    platform.stop().await;
}
