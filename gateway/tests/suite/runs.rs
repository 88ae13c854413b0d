//! Pipeline runs on the embedded executor, through the gateway: the samples the `kfp` compiler wrote run to the
//! outputs kfp.local gives, Watch streams every transition, cancellation stops whole process groups, RetryRun
//! reruns only what failed, and bad requests are refused without a run appearing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use prost_types::value::Kind;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    Platform, kfp_path, processes_of,
    runs::{
        create, log_of, number, push_pipeline, run_of, sample, state, string_output, task, task_state, text, watch,
    },
};

#[tokio::test]
async fn a_shell_pipeline_fans_out_collects_and_branches_while_watch_streams_each_change() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "d_shell.yaml").await;
    let created = create(&platform, "alice", run_of(&version, &[("n", number(3.0))])).await.expect("create");
    assert_eq!(state(&created), pb::RunState::Pending);
    assert_eq!(created.pipeline_version, version);
    let used: Vec<_> = {
        let mut k: Vec<_> = created.parameters.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(used, ["gate_path", "n", "sleep_seconds"], "defaults are applied and shown");

    let (messages, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    assert_eq!(string_output(&run.outputs, "Output"), "[1,4,9]", "collected integers stay integers, in order");

    // Every message after the snapshot has a higher sequence. Applying the messages to the snapshot gives the run
    // as GetRun shows it, and a task the snapshot did not hold yet was seen RUNNING before it ended.
    let Some(pb::watch_run_response::Change::Snapshot(snapshot)) = &messages[0].change else {
        panic!("the first message is a snapshot")
    };
    assert!(messages.windows(2).all(|w| w[1].sequence > w[0].sequence), "sequences increase");
    let mut states: std::collections::BTreeMap<String, Vec<i32>> =
        snapshot.tasks.iter().map(|t| (t.name.clone(), vec![t.state])).collect();
    let in_snapshot: Vec<String> = states.keys().cloned().collect();
    for message in &messages[1..] {
        if let Some(pb::watch_run_response::Change::Task(t)) = &message.change {
            states.entry(t.name.clone()).or_default().push(t.state);
        }
    }
    for t in &run.tasks {
        let seen = states.get(&t.name).unwrap_or_else(|| panic!("{} never streamed", t.name));
        assert_eq!(seen.last(), Some(&t.state), "{}", t.name);
        let container = t.task_type == pb::TaskType::Container as i32 && t.state == pb::RunState::Succeeded as i32;
        if container && !in_snapshot.contains(&t.name) {
            assert!(seen.contains(&(pb::RunState::Running as i32)), "{} was seen RUNNING: {seen:?}", t.name);
        }
    }
    match &messages.last().unwrap().change {
        Some(pb::watch_run_response::Change::Run(last)) => assert_eq!(state(last), pb::RunState::Succeeded),
        other => panic!("the stream ends with the run's terminal state, not {other:?}"),
    }

    let iteration = task(&run, "for-loop-2.1");
    assert_eq!(iteration.iteration_index, Some(1));
    assert_eq!(task(&run, "for-loop-2.1.square").parent_task, iteration.name);
    assert_eq!(task_state(task(&run, "condition-branches-3.condition-4.big-or-small")), pb::RunState::Succeeded);
    let else_branch = task(&run, "condition-branches-3.condition-5");
    assert_eq!(
        (task_state(else_branch), else_branch.state_message.as_str()),
        (pb::RunState::Skipped, "condition false")
    );
    let square = task(&run, "for-loop-2.0.square");
    assert!(square.state_message.contains("image alpine:3.20 not used"), "{}", square.state_message);
    assert_eq!(square.exit_code, Some(0));

    let show = task(&run, "show");
    assert_eq!(log_of(&platform, "alice", &show.name, false).await, "collected [1,4,9]\n");
    assert_eq!(log_of(&platform, "alice", &task(&run, "for-loop-2").name, false).await, "", "a DAG has no log");

    // The other branch, chosen by a parameter.
    let small = create(&platform, "alice", run_of(&version, &[("n", number(1.0))])).await.expect("create");
    let (_, small) = watch(&platform, "alice", &small.name).await;
    assert_eq!(task_state(task(&small, "condition-branches-3.condition-4")), pb::RunState::Skipped);
    let said = &task(&small, "condition-branches-3.condition-5.big-or-small-2").outputs;
    assert_eq!(string_output(said, "said"), "small");

    // Runs are their creator's alone.
    let mut bob = platform.pipelines(Some("bob")).await;
    let hidden = bob.get_run(pb::GetRunRequest { name: run.name.clone(), view: 0 }).await.expect_err("bob");
    assert_eq!(hidden.code(), Code::NotFound);
    let listed = bob.list_runs(pb::ListRunsRequest::default()).await.unwrap().into_inner();
    assert!(listed.runs.is_empty());
    let mut alice = platform.pipelines(Some("alice")).await;
    let request = pb::ListRunsRequest { page_size: 1, filter: "state = SUCCEEDED".into(), ..Default::default() };
    let page = alice.list_runs(request.clone()).await.unwrap().into_inner();
    assert_eq!(page.runs[0].name, small.name, "newest first");
    assert!(page.runs[0].tasks.is_empty(), "BASIC view by default");
    let next = pb::ListRunsRequest { page_token: page.next_page_token, ..request };
    assert_eq!(alice.list_runs(next).await.unwrap().into_inner().runs[0].name, run.name);
    platform.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_task_process_group_within_a_second() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "d_shell.yaml").await;
    let run = create(&platform, "alice", run_of(&version, &[("sleep_seconds", number(60.0))])).await.expect("create");
    let mut client = platform.pipelines(Some("alice")).await;
    let mut stream = client.watch_run(pb::WatchRunRequest { name: run.name.clone() }).await.unwrap().into_inner();
    let sleeper_name = format!("{}/tasks/sleeper", run.name);
    let uid = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
        if let Some(pb::watch_run_response::Change::Task(t)) = message.change
            && t.name == sleeper_name
            && t.state == pb::RunState::Running as i32
        {
            break t.uid;
        }
    };
    let started = std::time::Instant::now();
    while processes_of(&uid).len() < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(processes_of(&uid).len() >= 3, "sh and its two sleeps run");

    let canceling =
        client.cancel_run(pb::CancelRunRequest { name: run.name.clone() }).await.expect("cancel").into_inner();
    assert!(matches!(state(&canceling), pb::RunState::Canceling | pb::RunState::Canceled));
    let asked = std::time::Instant::now();
    while !processes_of(&uid).is_empty() && asked.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(processes_of(&uid), Vec::<u32>::new(), "the whole group is gone within a second");

    let (_, ended) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&ended), pb::RunState::Canceled);
    assert_eq!(task_state(task(&ended, "sleeper")), pb::RunState::Canceled);
    assert_eq!(task_state(task(&ended, "show")), pb::RunState::Succeeded, "what finished before stays finished");
    let again = client.cancel_run(pb::CancelRunRequest { name: run.name.clone() }).await.expect("idempotent");
    assert_eq!(state(&again.into_inner()), pb::RunState::Canceled);
    platform.stop().await;
}

#[tokio::test]
async fn retry_reruns_what_failed_and_keeps_what_succeeded() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "d_shell.yaml").await;
    // In the directory tasks may read, outside the platform's data, which the sandbox never shows.
    let gate = platform.shared.path().join("gate-open");
    let gate_path = gate.display().to_string();
    let run = create(&platform, "alice", run_of(&version, &[("gate_path", text(&gate_path))])).await.expect("create");
    let (_, failed) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&failed), pb::RunState::Failed);
    let error = failed.error.clone().expect("why");
    assert_eq!(
        (error.reason.as_str(), error.task.as_str()),
        ("TASK_FAILED", format!("{}/tasks/gate", run.name).as_str())
    );
    let gate_task = task(&failed, "gate");
    assert_eq!(gate_task.exit_code, Some(1));
    let log = log_of(&platform, "alice", &gate_task.name, false).await;
    assert_eq!(log, format!("checking {gate_path}\n"));

    let mut client = platform.pipelines(Some("alice")).await;
    std::fs::write(&gate, b"").unwrap();
    let retried = client
        .retry_run(pb::RetryRunRequest { name: run.name.clone(), request_id: "r1".into() })
        .await
        .expect("retry")
        .into_inner();
    assert_eq!((retried.attempt, state(&retried)), (2, pb::RunState::Pending));
    let repeated = client
        .retry_run(pb::RetryRunRequest { name: run.name.clone(), request_id: "r1".into() })
        .await
        .expect("the same key answers again");
    assert_eq!(repeated.into_inner().attempt, 2, "no third attempt");
    let (_, succeeded) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&succeeded), pb::RunState::Succeeded, "{:?}", succeeded.error);
    assert_eq!(task(&succeeded, "gate").attempt, 2);
    let kept = task(&succeeded, "for-loop-2.0.square");
    assert_eq!((kept.attempt, kept.start_time), (1, task(&failed, "for-loop-2.0.square").start_time), "not run again");
    assert_eq!(
        log_of(&platform, "alice", &task(&succeeded, "gate").name, false).await,
        format!("checking {gate_path}\n")
    );

    let refused = client
        .retry_run(pb::RetryRunRequest { name: run.name.clone(), request_id: String::new() })
        .await
        .expect_err("succeeded");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    platform.stop().await;
}

#[tokio::test]
async fn bad_run_requests_are_refused_and_start_nothing() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "d_shell.yaml").await;
    let field_of = |status: &tonic::Status| -> Vec<String> {
        status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    };
    for (parameters, field) in [
        (vec![("lr", number(0.1))], "run.parameters.lr"),
        (vec![("n", number(2.5))], "run.parameters.n"),
        (vec![("n", text("3"))], "run.parameters.n"),
        (vec![("gate_path", number(1.0))], "run.parameters.gate_path"),
    ] {
        let refused = create(&platform, "alice", run_of(&version, &parameters)).await.expect_err("bad parameter");
        assert_eq!(refused.code(), Code::InvalidArgument, "{parameters:?}");
        assert_eq!(field_of(&refused), [field], "{parameters:?}");
    }
    let malformed = create(&platform, "alice", run_of("assets/x", &[])).await.expect_err("malformed");
    assert_eq!(field_of(&malformed), ["run.pipeline_version"]);
    let foreign = create(&platform, "bob", run_of(&version, &[])).await.expect_err("bob cannot read it");
    assert_eq!(foreign.code(), Code::NotFound);
    let kfp = pb::Run { backend: pb::RunBackend::Kfp as i32, ..run_of(&version, &[]) };
    assert_eq!(create(&platform, "alice", kfp).await.expect_err("no KFP").code(), Code::FailedPrecondition);

    // The importer sample's default URI is a local path: refused before anything runs, never read.
    let importer = push_pipeline(&platform, "alice", "c_importer_container_noinstall.yaml").await;
    let local = create(&platform, "alice", run_of(&importer, &[])).await.expect_err("local path");
    assert_eq!(field_of(&local), ["run.parameters.data_uri"]);
    for uri in ["file:///etc/passwd", "highwind://assets/../versions/1", "https://example.com/x.csv"] {
        let refused = create(&platform, "alice", run_of(&importer, &[("data_uri", text(uri))])).await.expect_err(uri);
        assert_eq!(field_of(&refused), ["run.parameters.data_uri"], "{uri}");
    }
    let model = platform.create_asset("alice", apb::AssetKind::Model).await;
    let model_version = platform.commit_files("alice", &model, &[("m.bin", b"weights".to_vec())]).await.unwrap();
    let binding = pb::InputBinding {
        target: Some(pb::input_binding::Target::ImporterTask("importer".into())),
        asset_version: format!("{model}/versions/{}", model_version.version_number),
        alias: String::new(),
    };
    let wrong_kind = pb::Run { input_bindings: vec![binding], ..run_of(&importer, &[]) };
    let refused = create(&platform, "alice", wrong_kind).await.expect_err("a model is no dataset");
    assert_eq!(field_of(&refused), ["run.input_bindings[0].asset_version"]);

    // An archived pipeline does not run.
    let asset = version.split("/versions/").next().unwrap().to_owned();
    let mut assets = platform.assets(Some("alice")).await;
    assets.delete_asset(apb::DeleteAssetRequest { name: asset, ..Default::default() }).await.expect("archive");
    let archived = create(&platform, "alice", run_of(&version, &[])).await.expect_err("archived");
    assert_eq!(archived.code(), Code::FailedPrecondition);

    let listed = platform.pipelines(Some("alice")).await.list_runs(pb::ListRunsRequest::default()).await.unwrap();
    assert!(listed.into_inner().runs.is_empty(), "nothing was started");
    platform.stop().await;
}

#[tokio::test]
async fn the_linear_sample_gives_what_kfp_local_gives() {
    if kfp_path().is_none() {
        eprintln!("skipped: set HIGHWIND_TEST_KFP_VENV to a Python environment with kfp 2.17.3");
        return;
    }
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "a_linear_noinstall.yaml").await;
    let run = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let output = run.outputs.as_ref().and_then(|o| o.parameters.get("Output")).and_then(|v| v.kind.clone());
    assert_eq!(output, Some(Kind::NumberValue(60.0)), "kfp.local returns 60.0");
    let scale = task(&run, "scale");
    assert_eq!(
        scale.outputs.as_ref().unwrap().parameters.get("Output").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(5.0))
    );
    let made = &task(&run, "make-data").outputs.as_ref().unwrap().artifacts[0];
    assert_eq!(
        made.metadata.as_ref().unwrap().fields.get("rows").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(5.0))
    );
    assert!(made.uri.starts_with(&format!("highwind://{}/tasks/make-data/", run.name)), "{}", made.uri);
    let log = log_of(&platform, "alice", &task(&run, "summarize").name, true).await;
    assert!(log.contains("5 rows, sum=60.0"), "{log}");
    platform.stop().await;
}

#[tokio::test]
async fn the_importer_sample_reads_a_bound_dataset_version() {
    if kfp_path().is_none() {
        eprintln!("skipped: set HIGHWIND_TEST_KFP_VENV to a Python environment with kfp 2.17.3");
        return;
    }
    let platform = Platform::start().await;
    let iris = sample("iris_small.csv");
    let lines = iris.iter().filter(|b| **b == b'\n').count();
    let dataset = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    platform.commit_files("alice", &dataset, &[("iris_small.csv", iris.clone())]).await.expect("dataset");
    let version = push_pipeline(&platform, "alice", "c_importer_container_noinstall.yaml").await;
    let binding = pb::InputBinding {
        target: Some(pb::input_binding::Target::ImporterTask("importer".into())),
        asset_version: format!("{dataset}/versions/latest"),
        alias: String::new(),
    };
    let run = pb::Run { input_bindings: vec![binding], ..run_of(&version, &[]) };
    let created = create(&platform, "alice", run).await.expect("create");
    assert_eq!(created.input_bindings[0].asset_version, format!("{dataset}/versions/1"));
    assert_eq!(created.input_bindings[0].alias, "latest");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let imported = &task(&run, "importer").outputs.as_ref().unwrap().artifacts[0];
    assert_eq!(imported.asset_version, format!("{dataset}/versions/1"));
    assert_eq!(string_output(&task(&run, "wc-lines").outputs, "nlines").trim(), lines.to_string());
    let head: String = String::from_utf8(iris).unwrap().lines().take(3).collect::<Vec<_>>().join("\n");
    let log = log_of(&platform, "alice", &task(&run, "show").name, false).await;
    assert!(log.contains(&format!("lines: {lines}")) && log.contains(&head), "{log}");
    platform.stop().await;
}

#[tokio::test]
async fn control_flow_retries_oneof_and_the_exit_handler_behave_as_on_kfp() {
    if kfp_path().is_none() {
        eprintln!("skipped: set HIGHWIND_TEST_KFP_VENV to a Python environment with kfp 2.17.3");
        return;
    }
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "e_control.yaml").await;
    // A relative marker lands in the task's own directory, which outlives its attempts (and is all a sandboxed
    // task may write).
    let marker = "flaky-marker".to_owned();
    let first =
        create(&platform, "alice", run_of(&version, &[("x", number(10.0)), ("marker", text(&marker))])).await.unwrap();
    let (_, run) = watch(&platform, "alice", &first.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let flaky = task(&run, "exit-handler-1.flaky");
    assert_eq!((flaky.attempt, string_output(&flaky.outputs, "Output").as_str()), (2, "passed on a retry"));
    let total = task(&run, "exit-handler-1.plus-ten.add");
    assert_eq!(
        total.outputs.as_ref().unwrap().parameters.get("Output").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(20.0))
    );
    let big = task(&run, "exit-handler-1.condition-branches-2.condition-3.echo");
    assert_eq!(string_output(&big.outputs, "Output"), "big 20", "the f-string saw the nested pipeline's output");
    assert_eq!(
        string_output(&task(&run, "exit-handler-1.echo-3").outputs, "Output"),
        "big 20",
        "OneOf took the branch that ran"
    );
    assert_eq!(string_output(&task(&run, "report").outputs, "Output"), "exit-handler-1 ended SUCCEEDED");
    let first_attempt = pb::StreamTaskLogsRequest { name: flaky.name.clone(), attempt: 1, ..Default::default() };
    let mut client = platform.pipelines(Some("alice")).await;
    let mut log = client.stream_task_logs(first_attempt).await.unwrap().into_inner();
    let mut text_of_first = Vec::new();
    while let Some(chunk) = log.message().await.unwrap() {
        assert_eq!(chunk.attempt, 1);
        text_of_first.extend_from_slice(&chunk.data);
    }
    assert!(String::from_utf8_lossy(&text_of_first).contains("the first attempt fails"), "each attempt keeps its log");

    // The small branch; and a task that keeps failing fails its DAG, while the exit handler still runs.
    let unwritable = "later/marker".to_owned();
    let second = create(&platform, "alice", run_of(&version, &[("marker", text(&unwritable))])).await.unwrap();
    let (_, run) = watch(&platform, "alice", &second.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    assert_eq!(task(&run, "exit-handler-1.flaky").attempt, 3, "two retries, then it failed");
    assert_eq!(task_state(task(&run, "exit-handler-1")), pb::RunState::Failed);
    assert_eq!(string_output(&task(&run, "exit-handler-1.echo-3").outputs, "Output"), "small");
    assert_eq!(string_output(&task(&run, "report").outputs, "Output"), "exit-handler-1 ended FAILED");

    // Retried once the marker can be written: what failed runs again, the branch a false condition skipped stays
    // skipped, and every task ends.
    let flaky = task(&run, "exit-handler-1.flaky");
    let task_dir = platform.dir.path().join("runs").join(run.uid.as_str()).join(flaky.uid.as_str());
    std::fs::create_dir_all(task_dir.join("later")).unwrap();
    client.retry_run(pb::RetryRunRequest { name: run.name.clone(), request_id: String::new() }).await.expect("retry");
    let (_, retried) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&retried), pb::RunState::Succeeded, "{:?}", retried.error);
    let skipped = task(&retried, "exit-handler-1.condition-branches-2.condition-3");
    assert_eq!((task_state(skipped), skipped.attempt), (pb::RunState::Skipped, 1));
    assert!(retried.tasks.iter().all(|t| t.state != pb::RunState::Pending as i32), "no task is left pending");
    assert_eq!(string_output(&task(&retried, "report").outputs, "Output"), "exit-handler-1 ended SUCCEEDED");
    platform.stop().await;
}

#[tokio::test]
async fn outputs_that_point_outside_the_task_directory_fail_the_task() {
    let platform = Platform::start().await;
    // A parameter output that is a link to a host file.
    let linked = String::from_utf8(sample("d_shell.yaml"))
        .unwrap()
        .replace("echo $(($0 * $0)) > \"$1\"", "ln -s /etc/hostname \"$1\"");
    let asset = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    let version = platform.commit_files("alice", &asset, &[("pipeline.yaml", linked.into_bytes())]).await.unwrap();
    let run =
        create(&platform, "alice", run_of(&format!("{asset}/versions/{}", version.version_number), &[])).await.unwrap();
    let (_, run) = watch(&platform, "alice", &run.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    let square = task(&run, "for-loop-2.0.square");
    assert_eq!(square.error.as_ref().unwrap().reason, "OUTPUT_OUTSIDE_TASK_DIR");
    assert!(square.outputs.as_ref().unwrap().parameters.is_empty(), "nothing of the host file was taken");

    // An artifact output that is a link to a host file.
    let dataset = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    platform.commit_files("alice", &dataset, &[("iris.csv", sample("iris_small.csv"))]).await.unwrap();
    let linked = String::from_utf8(sample("c_importer_container_noinstall.yaml"))
        .unwrap()
        .replace("head -n 3 \"$0\" > \"$1\"", "ln -s /etc/hostname \"$1\"");
    let asset = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    let version = platform.commit_files("alice", &asset, &[("pipeline.yaml", linked.into_bytes())]).await.unwrap();
    let binding = pb::InputBinding {
        target: Some(pb::input_binding::Target::ImporterTask("importer".into())),
        asset_version: format!("{dataset}/versions/1"),
        alias: String::new(),
    };
    let run = pb::Run {
        input_bindings: vec![binding],
        ..run_of(&format!("{asset}/versions/{}", version.version_number), &[])
    };
    let run = create(&platform, "alice", run).await.unwrap();
    let (_, run) = watch(&platform, "alice", &run.name).await;
    let wc = task(&run, "wc-lines");
    assert_eq!(wc.error.as_ref().unwrap().reason, "OUTPUT_OUTSIDE_TASK_DIR");
    assert_eq!(task_state(task(&run, "show")), pb::RunState::Skipped, "nothing downstream saw it");
    platform.stop().await;
}

#[tokio::test]
async fn caching_is_opt_in_per_run_and_never_shared_between_users() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "d_shell.yaml").await;
    let cached_run = |user: &'static str, enable_caching: bool| {
        let run = pb::Run { enable_caching, ..run_of(&version, &[("n", number(3.0))]) };
        let platform = &platform;
        async move {
            let created = create(platform, user, run).await.expect("create");
            watch(platform, user, &created.name).await.1
        }
    };
    let first = cached_run("alice", true).await;
    assert_eq!(state(&first), pb::RunState::Succeeded);
    assert!(first.tasks.iter().all(|t| !t.cached), "nothing to reuse yet");

    let second = cached_run("alice", true).await;
    assert_eq!(state(&second), pb::RunState::Succeeded);
    let square = task(&second, "for-loop-2.1.square");
    assert!(square.cached, "{}", square.state_message);
    assert_eq!(square.state_message, format!("cache hit: outputs of {}/tasks/for-loop-2.1.square", first.name));
    assert_eq!(string_output(&second.outputs, "Output"), "[1,4,9]", "cached outputs flow on");
    assert_eq!(log_of(&platform, "alice", &task(&second, "show").name, false).await, "", "a cached task did not run");

    let without = cached_run("alice", false).await;
    assert!(without.tasks.iter().all(|t| !t.cached), "caching is off unless the run asks");

    // Bob's identical task finds nothing of alice's.
    let bobs = platform.create_asset("bob", apb::AssetKind::Pipeline).await;
    platform.commit_files("bob", &bobs, &[("pipeline.yaml", sample("d_shell.yaml"))]).await.unwrap();
    let run = pb::Run { enable_caching: true, ..run_of(&format!("{bobs}/versions/1"), &[("n", number(3.0))]) };
    let created = create(&platform, "bob", run).await.unwrap();
    let (_, bobs_run) = watch(&platform, "bob", &created.name).await;
    assert!(bobs_run.tasks.iter().all(|t| !t.cached), "a cache is never shared between users");
    platform.stop().await;
}

/// Whether the sandbox tests can run: bwrap installed, or a failure when `HIGHWIND_REQUIRE_SANDBOX=1`.
#[tokio::test]
async fn a_parallel_for_runs_no_more_iterations_at_once_than_its_limit() {
    let platform = Platform::start().await;
    let version = push_pipeline(&platform, "alice", "i_loop.yaml").await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.unwrap();
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}", run.error);
    let seconds =
        |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
    let naps: Vec<(f64, f64)> = run
        .tasks
        .iter()
        .filter(|t| t.task_key == "nap")
        .map(|t| (seconds(&t.start_time), seconds(&t.end_time)))
        .collect();
    assert_eq!(naps.len(), 4);
    // At each task's start, count the tasks running then (itself included).
    let most = naps.iter().map(|(start, _)| naps.iter().filter(|(s, e)| s <= start && start < e).count()).max();
    assert_eq!(most, Some(1), "parallelismLimit 1, with at least two executor slots free: {naps:?}");
    platform.stop().await;
}
