//! Runs that cannot exhaust the server, through the gateway: runs past the executor's limits are refused or failed
//! naming the limit, one user's active runs are capped with a QuotaFailure, and a large run is created and cancelled
//! at once, keeping what its tasks recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use prost_types::value::Kind;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{Platform, field_violations, zombie_children};

/// An IR whose root DAG holds `sleepers` tasks sleeping `seconds`, after one `a-quick` task that ends at once.
fn wide_ir(sleepers: usize, seconds: f64) -> String {
    let mut tasks = String::new();
    let mut task = |name: &str, seconds: f64| {
        tasks.push_str(&format!(
            "      {name}:\n        componentRef:\n          name: comp-nap\n        inputs:\n          parameters:\n            \
             seconds:\n              runtimeValue:\n                constant: {seconds:?}\n        taskInfo:\n          \
             name: {name}\n"
        ));
    };
    task("a-quick", 0.0);
    for index in 0..sleepers {
        task(&format!("nap-{index}"), seconds);
    }
    format!(
        "{NAP_COMPONENT}{NAP_EXECUTOR}pipelineInfo:\n  name: wide\nroot:\n  dag:\n    tasks:\n{tasks}schemaVersion: 2.1.0\nsdkVersion: kfp-2.17.3\n"
    )
}

/// An IR with one ParallelFor over `items` (the constant list, or the pipeline's LIST input `items` when `None`).
fn loop_ir(items: Option<&str>) -> String {
    let source = match items {
        Some(raw) => format!("raw: '{raw}'"),
        None => "inputParameter: pipelinechannel--items".into(),
    };
    format!(
        "{NAP_COMPONENT}  comp-for-loop:
    dag:
      tasks:
        nap:
          componentRef:
            name: comp-nap
          inputs:
            parameters:
              seconds:
                runtimeValue:
                  constant: 0.0
    inputDefinitions:
      parameters:
        pipelinechannel--items:
          parameterType: LIST
        pipelinechannel--loop-item:
          parameterType: NUMBER_INTEGER
{NAP_EXECUTOR}pipelineInfo:
  name: looping
root:
  dag:
    tasks:
      for-loop:
        componentRef:
          name: comp-for-loop
        inputs:
          parameters:
            pipelinechannel--items:
              componentInputParameter: items
        parameterIterator:
          itemInput: pipelinechannel--loop-item
          items:
            {source}
  inputDefinitions:
    parameters:
      items:
        defaultValue: []
        isOptional: true
        parameterType: LIST
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"
    )
}

/// The component every generated IR uses, first of its components: `sleep <seconds>`.
const NAP_COMPONENT: &str = "components:
  comp-nap:
    executorLabel: exec-nap
    inputDefinitions:
      parameters:
        seconds:
          parameterType: NUMBER_DOUBLE
";

/// How `comp-nap` runs.
const NAP_EXECUTOR: &str = "deploymentSpec:
  executors:
    exec-nap:
      container:
        args:
        - '{{$.inputs.parameters[''seconds'']}}'
        command:
        - sleep
        image: alpine:3.20
";

/// A new pipeline asset of `user` holding `ir`; its version name.
async fn push(platform: &Platform, user: &str, ir: String) -> String {
    let asset = platform.create_asset(user, apb::AssetKind::Pipeline).await;
    let version = platform.commit_files(user, &asset, &[("pipeline.yaml", ir.into_bytes())]).await.expect("commit");
    format!("{asset}/versions/{}", version.version_number)
}

async fn create(platform: &Platform, user: &str, run: pb::Run) -> Result<pb::Run, tonic::Status> {
    let request = pb::CreateRunRequest { run: Some(run), ..Default::default() };
    platform.pipelines(Some(user)).await.create_run(request).await.map(tonic::Response::into_inner)
}

fn run_of(version: &str) -> pb::Run {
    pb::Run { pipeline_version: version.into(), ..Default::default() }
}

async fn get(platform: &Platform, user: &str, name: &str) -> pb::Run {
    let request = pb::GetRunRequest { name: name.into(), view: pb::RunView::Full as i32 };
    platform.pipelines(Some(user)).await.get_run(request).await.expect("get").into_inner()
}

/// Polls run `name` until `done` holds, for at most `within`.
async fn until(
    platform: &Platform,
    user: &str,
    name: &str,
    within: Duration,
    done: impl Fn(&pb::Run) -> bool,
) -> pb::Run {
    let started = Instant::now();
    loop {
        let run = get(platform, user, name).await;
        if done(&run) {
            return run;
        }
        assert!(started.elapsed() < within, "run {name} is still {:?} after {within:?}", run.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state(run: &pb::Run) -> pb::RunState {
    pb::RunState::try_from(run.state).unwrap()
}

#[tokio::test]
async fn runs_larger_than_the_executor_allows_are_refused_naming_the_limit() {
    let platform = Platform::start().await;
    let many = push(&platform, "alice", wide_ir(1_000, 0.0)).await;
    let refused = create(&platform, "alice", run_of(&many)).await.expect_err("1,001 tasks");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let fields = field_violations(&refused);
    assert_eq!(fields[0].0, "run.pipeline_version");
    assert!(fields[0].1.contains("1001 tasks") && fields[0].1.contains("executor.max_tasks_per_run"), "{fields:?}");

    let items: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
    let looping = push(&platform, "alice", loop_ir(Some(&format!("[{}]", items.join(", "))))).await;
    let refused = create(&platform, "alice", run_of(&looping)).await.expect_err("10,001 items");
    assert!(field_violations(&refused).iter().any(|(_, d)| d.contains("executor.max_loop_items")), "{refused:?}");

    let listed = platform
        .pipelines(Some("alice"))
        .await
        .list_runs(pb::ListRunsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.runs.is_empty(), "nothing was created");
    platform.stop().await;
}

#[tokio::test]
async fn a_loop_expanded_past_the_item_limit_fails_its_run_naming_the_limit() {
    let platform = Platform::start().await;
    let version = push(&platform, "alice", loop_ir(None)).await;
    let items = prost_types::ListValue {
        values: (0..10_001).map(|i| prost_types::Value { kind: Some(Kind::NumberValue(f64::from(i))) }).collect(),
    };
    let mut run = run_of(&version);
    run.parameters.insert("items".into(), prost_types::Value { kind: Some(Kind::ListValue(items)) });
    let created = create(&platform, "alice", run).await.expect("the items are known only to the run");
    let ended = until(&platform, "alice", &created.name, Duration::from_secs(60), |r| {
        matches!(state(r), pb::RunState::Failed | pb::RunState::Succeeded | pb::RunState::Canceled)
    })
    .await;
    assert_eq!(state(&ended), pb::RunState::Failed);
    let error = ended.error.expect("a reason");
    assert_eq!(error.reason, "LOOP_ITEMS_LIMIT", "{error:?}");
    assert!(error.message.contains("executor.max_loop_items"), "{error:?}");
    assert!(ended.tasks.len() < 10, "no iteration was created: {}", ended.tasks.len());
    platform.stop().await;
}

#[tokio::test]
async fn one_users_active_runs_are_capped_with_a_quota_failure() {
    let platform = Platform::start().await;
    let version = push(&platform, "alice", wide_ir(1, 60.0)).await;
    let mut runs = Vec::new();
    for _ in 0..10 {
        runs.push(create(&platform, "alice", run_of(&version)).await.expect("within the cap").name);
    }
    let refused = create(&platform, "alice", run_of(&version)).await.expect_err("the eleventh");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let quota = refused.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "users/alice");
    assert!(quota.violations[0].description.contains("executor.max_active_runs_per_user"), "{quota:?}");

    let bobs_version = push(&platform, "bob", wide_ir(1, 0.0)).await;
    create(&platform, "bob", run_of(&bobs_version)).await.expect("the cap is per user");

    let mut client = platform.pipelines(Some("alice")).await;
    client.cancel_run(pb::CancelRunRequest { name: runs[0].clone() }).await.expect("cancel");
    until(&platform, "alice", &runs[0], Duration::from_secs(10), |r| state(r) == pb::RunState::Canceled).await;
    let started = Instant::now();
    let replacement = loop {
        // The place frees once the cancelled run's driver has ended, just after CANCELED is saved.
        match create(&platform, "alice", run_of(&version)).await {
            Ok(run) => break run.name,
            Err(e) if e.code() == Code::ResourceExhausted && started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("a cancelled run frees its place: {e:?}"),
        }
    };
    for name in runs.iter().skip(1).chain([&replacement]) {
        client.cancel_run(pb::CancelRunRequest { name: name.clone() }).await.expect("cancel");
    }
    platform.stop().await;
}

#[tokio::test]
async fn a_run_of_a_thousand_tasks_is_created_and_cancelled_promptly_keeping_what_succeeded() {
    let platform = Platform::start().await;
    let version = push(&platform, "alice", wide_ir(998, 60.0)).await;
    let asked = Instant::now();
    let created = create(&platform, "alice", run_of(&version)).await.expect("create");
    eprintln!("CreateRun of 999 tasks answered in {:?}", asked.elapsed());
    let quick = format!("{}/tasks/a-quick", created.name);
    let running = until(&platform, "alice", &created.name, Duration::from_secs(60), |r| {
        r.tasks.iter().any(|t| t.name == quick && t.state == pb::RunState::Succeeded as i32)
            && r.tasks.iter().filter(|t| t.state == pb::RunState::Running as i32).count() >= 2
    })
    .await;
    assert_eq!(state(&running), pb::RunState::Running, "the run shows RUNNING while its tasks run");

    let mut client = platform.pipelines(Some("alice")).await;
    let asked = Instant::now();
    let canceling =
        client.cancel_run(pb::CancelRunRequest { name: created.name.clone() }).await.expect("cancel").into_inner();
    let answered = asked.elapsed();
    eprintln!("CancelRun of 999 tasks answered in {answered:?}");
    assert!(matches!(state(&canceling), pb::RunState::Canceling | pb::RunState::Canceled));
    assert!(answered < Duration::from_secs(1), "CANCELING at once, not after {answered:?}");
    let ended =
        until(&platform, "alice", &created.name, Duration::from_secs(10), |r| state(r) == pb::RunState::Canceled).await;
    eprintln!("CANCELED {:?} after CancelRun", asked.elapsed());
    let quick_task = ended.tasks.iter().find(|t| t.name == quick).expect("a-quick");
    assert_eq!(quick_task.state, pb::RunState::Succeeded as i32, "a task that ended keeps its state");
    assert!(
        ended.tasks.iter().filter(|t| t.name != quick).all(|t| t.state == pb::RunState::Canceled as i32),
        "the others are CANCELED"
    );
    let since = Instant::now();
    while !zombie_children().is_empty() && since.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(zombie_children(), Vec::<u32>::new(), "every killed task process was reaped");
    platform.stop().await;
}
