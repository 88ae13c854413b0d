//! A server killed with SIGKILL in the middle of an upload: after a restart on the same data directory no version
//! has appeared, the upload reports what it kept, and the client finishes it with the right digest. One killed in
//! the middle of a pipeline run: after the restart the run is FAILED with a reason and none of its task processes
//! is left running. One killed while a Kubeflow Pipelines run was being submitted: after the restart the run is
//! found in KFP by its name and followed to its end, and KFP holds exactly one run. One killed while it unpacked a
//! step's image: no root is left that looks whole, the next start clears the half-built one, and RetryRun unpacks
//! the image again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Stdio, time::Duration};

use bytes::Bytes;
use highwind_proto::{
    asset::v1::{self as pb, asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
    pipeline::v1::{self as ppb, pipeline_service_client::PipelineServiceClient},
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::{Request, transport::Channel};

struct Server {
    child: tokio::process::Child,
    url: String,
    token: String,
}

async fn start(dir: &Path) -> Server {
    start_with(dir, &[]).await
}

async fn start_with(dir: &Path, args: &[&str]) -> Server {
    let no_registry = if args.contains(&"--registry-listen") { &[][..] } else { &["--no-registry"][..] };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"))
        .arg("standalone")
        .args(no_registry)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start highwind");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap() {
        if let Some(rest) = line.strip_prefix("dev token (dev): ") {
            token = rest.to_owned();
            break;
        }
    }
    Server { child, url: format!("http://127.0.0.1:{port}"), token }
}

impl Server {
    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone()).unwrap().connect().await.unwrap()
    }

    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {}", self.token).parse().unwrap());
        request
    }
}

fn frame(upload: &str, offset: usize, data: &[u8]) -> pb::WriteUploadChunkRequest {
    pb::WriteUploadChunkRequest {
        upload: upload.into(),
        path: "weights.bin".into(),
        offset: offset as i64,
        data: Bytes::copy_from_slice(data),
    }
}

#[tokio::test]
async fn kill_9_mid_upload_then_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..6_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let sha256 = hex::encode(Sha256::digest(&content));

    let mut server = start(dir.path()).await;
    let mut assets = AssetServiceClient::new(server.channel().await);
    let asset = pb::Asset { kind: pb::AssetKind::Model as i32, display_name: "crash".into(), ..Default::default() };
    let asset = assets
        .create_asset(server.req(pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner();
    let mut uploads = UploadServiceClient::new(server.channel().await);
    let declared = pb::UploadFile {
        path: "weights.bin".into(),
        size_bytes: content.len() as i64,
        sha256: sha256.clone(),
        ..Default::default()
    };
    let upload = uploads
        .create_upload(server.req(pb::CreateUploadRequest {
            parent: asset.name.clone(),
            files: vec![declared],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let first = 4 << 20;
    uploads.write_upload_chunk(server.req(frame(&upload.name, 0, &content[..first]))).await.expect("first chunk");

    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let server = start(dir.path()).await;
    let mut assets = AssetServiceClient::new(server.channel().await);
    let versions = assets
        .list_asset_versions(
            server.req(pb::ListAssetVersionsRequest { parent: asset.name.clone(), ..Default::default() }),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(versions.asset_versions.is_empty(), "no version appeared");

    let mut uploads = UploadServiceClient::new(server.channel().await);
    let status = uploads.get_upload(server.req(pb::GetUploadRequest { name: upload.name.clone() })).await.unwrap();
    let offset = status.into_inner().files[0].acknowledged_offset as usize;
    assert_eq!(offset, first, "the acknowledged bytes survived");
    uploads.write_upload_chunk(server.req(frame(&upload.name, offset, &content[offset..]))).await.expect("resume");
    let version = uploads
        .commit_upload(server.req(pb::CommitUploadRequest { name: upload.name.clone() }))
        .await
        .expect("commit")
        .into_inner();
    assert_eq!(version.files[0].sha256, sha256);
    assert_eq!(version.version_number, 1);
}

/// A new pipeline asset holding `sample`, committed as version 1; the asset's name.
async fn push_pipeline(server: &Server, sample: &str) -> String {
    push_pipeline_ir(server, crate::support::runs::sample(sample)).await
}

/// A new pipeline asset holding the compiled pipeline `ir`, committed as version 1; the asset's name.
async fn push_pipeline_ir(server: &Server, ir: Vec<u8>) -> String {
    let mut assets = AssetServiceClient::new(server.channel().await);
    let asset = pb::Asset { kind: pb::AssetKind::Pipeline as i32, display_name: "crash".into(), ..Default::default() };
    let asset = assets
        .create_asset(server.req(pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner();
    let mut uploads = UploadServiceClient::new(server.channel().await);
    let declared = pb::UploadFile {
        path: "pipeline.yaml".into(),
        size_bytes: ir.len() as i64,
        sha256: hex::encode(Sha256::digest(&ir)),
        ..Default::default()
    };
    let request = pb::CreateUploadRequest { parent: asset.name.clone(), files: vec![declared], ..Default::default() };
    let upload = uploads.create_upload(server.req(request)).await.unwrap().into_inner();
    let chunk = pb::WriteUploadChunkRequest {
        upload: upload.name.clone(),
        path: "pipeline.yaml".into(),
        offset: 0,
        data: Bytes::from(ir),
    };
    uploads.write_upload_chunk(server.req(chunk)).await.unwrap();
    uploads.commit_upload(server.req(pb::CommitUploadRequest { name: upload.name })).await.unwrap();
    asset.name
}

#[tokio::test]
async fn kill_9_mid_run_then_the_run_ends_failed_and_no_task_process_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;
    let asset = push_pipeline(&server, "d_shell.yaml").await;

    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let seconds = prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(120.0)) };
    let run = ppb::Run {
        pipeline_version: format!("{asset}/versions/1"),
        parameters: [("sleep_seconds".to_owned(), seconds)].into(),
        ..Default::default()
    };
    let run = pipelines
        .create_run(server.req(ppb::CreateRunRequest { run: Some(run), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let mut stream =
        pipelines.watch_run(server.req(ppb::WatchRunRequest { name: run.name.clone() })).await.unwrap().into_inner();
    let sleeper = format!("{}/tasks/sleeper", run.name);
    let uid = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
        let tasks = match message.change {
            Some(ppb::watch_run_response::Change::Snapshot(run)) => run.tasks,
            Some(ppb::watch_run_response::Change::Task(task)) => vec![task],
            _ => Vec::new(),
        };
        if let Some(task) = tasks.into_iter().find(|t| t.name == sleeper && t.state == ppb::RunState::Running as i32) {
            break task.uid;
        }
    };
    let started = std::time::Instant::now();
    while crate::support::processes_of(&uid).len() < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    if highwind_common::executables::find_on_path("bwrap").is_some() {
        // A sandboxed task dies with the server that started it (bwrap --die-with-parent).
        let killed = std::time::Instant::now();
        while !crate::support::processes_of(&uid).is_empty() && killed.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(crate::support::processes_of(&uid), Vec::<u32>::new(), "a sandboxed task dies with the server");
    } else {
        assert!(!crate::support::processes_of(&uid).is_empty(), "the task's processes outlive a killed server");
    }

    let server = start(dir.path()).await;
    assert_eq!(crate::support::processes_of(&uid), Vec::<u32>::new(), "the restarted server stopped them");
    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let after = pipelines
        .get_run(server.req(ppb::GetRunRequest { name: run.name.clone(), view: 0 }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.state, ppb::RunState::Failed as i32);
    assert_eq!(after.error.unwrap().reason, "SERVER_RESTARTED");
    let task = after.tasks.iter().find(|t| t.name == sleeper).unwrap();
    assert_eq!(task.state, ppb::RunState::Failed as i32);
    let show = after.tasks.iter().find(|t| t.name.ends_with("/tasks/show")).unwrap();
    assert_eq!(show.state, ppb::RunState::Succeeded as i32, "what finished before the crash stays finished");
}

#[tokio::test]
async fn kill_9_while_a_kfp_run_is_submitted_then_the_restart_finds_it_instead_of_creating_another() {
    let Some(kfp) = crate::support::kfp::StandIn::start(&[]).await else { return };
    // KFP makes the run at once but answers late: the server dies before it learns the run's id.
    kfp.faults("run_service_create_run", &["slow:20"]).await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--kfp-url", kfp.url.as_str()];
    let mut server = start_with(dir.path(), &args).await;
    let asset = push_pipeline(&server, "a_linear_noinstall.yaml").await;
    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let run = ppb::Run {
        pipeline_version: format!("{asset}/versions/1"),
        backend: ppb::RunBackend::Kfp as i32,
        ..Default::default()
    };
    let run = pipelines
        .create_run(server.req(ppb::CreateRunRequest { run: Some(run), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let started = std::time::Instant::now();
    while kfp.runs().await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the run never reached KFP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let server = start_with(dir.path(), &args).await;
    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let started = std::time::Instant::now();
    let after = loop {
        let current = pipelines
            .get_run(server.req(ppb::GetRunRequest { name: run.name.clone(), view: 0 }))
            .await
            .unwrap()
            .into_inner();
        if current.state == ppb::RunState::Succeeded as i32 {
            break current;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run never ended: {current:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let runs = kfp.runs().await;
    assert_eq!(runs.len(), 1, "exactly one KFP run: {runs:?}");
    assert_eq!(after.backend_run_id, runs[0]["run_id"].as_str().unwrap());
}

/// alice's image for the unpack crash: busybox's shell and a layer of many files, large enough to be caught while
/// it unpacks; pushed to a new Docker Repo asset of the server's dev user. Its reference.
async fn push_large_image(server: &Server, registry: &str, busybox: &[u8]) -> String {
    use highwind_proto::identity::v1 as ipb;
    use highwind_runtime::{
        testing::{Entry, LayoutBuilder},
        unpack::Compression,
    };
    let mut assets = AssetServiceClient::new(server.channel().await);
    let asset = pb::Asset { kind: pb::AssetKind::DockerRepo as i32, display_name: "big".into(), ..Default::default() };
    let asset = assets
        .create_asset(server.req(pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner();
    let mut keys = ipb::api_key_service_client::ApiKeyServiceClient::new(server.channel().await);
    let key = ipb::ApiKey { display_name: "push".into(), ..Default::default() };
    let key = keys.create_api_key(server.req(ipb::CreateApiKeyRequest { api_key: Some(key) })).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let shell = layout.layer(&[
        Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 },
        Entry::Symlink { path: "bin/sh", target: "busybox" },
        Entry::Symlink { path: "bin/ls", target: "busybox" },
        Entry::Symlink { path: "bin/wc", target: "busybox" },
    ]);
    let block: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let names: Vec<String> = (0..2_000).map(|i| format!("data/file-{i:04}")).collect();
    let files: Vec<Entry<'_>> = names.iter().map(|path| Entry::File { path, content: &block, mode: 0o644 }).collect();
    let data = layout.layer_compressed(&files, Compression::None);
    let image = layout.image("linux/amd64", &[shell, data], serde_json::json!({"Env": ["PATH=/bin"]}));
    layout.tag("v1", &image);
    let repository = format!("highwind/dev/{}", asset.name.strip_prefix("assets/").unwrap());
    let reference = format!("{registry}/{repository}:v1");
    let key = key.into_inner().key;
    let pushed = crate::support::registry::push(layout.path(), "v1", &reference, &key, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    reference
}

#[tokio::test]
async fn kill_9_mid_unpack_then_no_root_is_left_half_built_and_the_image_unpacks_again() {
    if !crate::support::registry::available() || !crate::support::runs::sandbox_available() {
        return;
    }
    let Some(busybox) = crate::support::registry::busybox() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The registry keeps its port across the restart: the pipeline names the image by it.
    let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let args = ["--registry-listen", registry.as_str()];
    let mut server = start_with(dir.path(), &args).await;
    let image = push_large_image(&server, &registry, &busybox).await;
    let ir =
        String::from_utf8(crate::support::runs::sample("j_shell_probe.yaml")).unwrap().replace("alpine:3.20", &image);
    let asset = push_pipeline_ir(&server, ir.into_bytes()).await;
    let script =
        prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("ls /data | wc -l > \"$0\"".into())) };
    let run = ppb::Run {
        pipeline_version: format!("{asset}/versions/1"),
        parameters: [("script".to_owned(), script)].into(),
        ..Default::default()
    };
    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let request = ppb::CreateRunRequest { run: Some(run), ..Default::default() };
    let run = pipelines.create_run(server.req(request)).await.unwrap().into_inner();

    // Caught while its files are being written into a root under construction.
    let images = dir.path().join("images");
    let unpacking = || {
        std::fs::read_dir(images.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|build| std::fs::read_dir(build.path().join("rootfs/data")).is_ok_and(|files| files.count() > 10))
    };
    let started = std::time::Instant::now();
    while !unpacking() {
        assert!(started.elapsed() < Duration::from_secs(60), "the image never started unpacking");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let roots = || std::fs::read_dir(images.join("roots")).unwrap().count();
    assert_eq!(roots(), 0, "no root looks whole before it is");

    let server = start_with(dir.path(), &args).await;
    assert_eq!(std::fs::read_dir(images.join("tmp")).unwrap().count(), 0, "what was half-built is gone");
    let mut pipelines = PipelineServiceClient::new(server.channel().await);
    let ended = loop {
        let get = ppb::GetRunRequest { name: run.name.clone(), view: 0 };
        let now = pipelines.get_run(server.req(get)).await.unwrap().into_inner();
        if now.state != ppb::RunState::Running as i32 && now.state != ppb::RunState::Pending as i32 {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended.state, ppb::RunState::Failed as i32, "settled as any run its server was killed in");
    assert_eq!(ended.error.unwrap().reason, "SERVER_RESTARTED");

    let retry = ppb::RetryRunRequest { name: run.name.clone(), ..Default::default() };
    pipelines.retry_run(server.req(retry)).await.unwrap();
    let mut stream =
        pipelines.watch_run(server.req(ppb::WatchRunRequest { name: run.name.clone() })).await.unwrap().into_inner();
    while tokio::time::timeout(Duration::from_secs(60), stream.message()).await.unwrap().unwrap().is_some() {}
    let get = ppb::GetRunRequest { name: run.name.clone(), view: ppb::RunView::Full as i32 };
    let done = pipelines.get_run(server.req(get)).await.unwrap().into_inner();
    assert_eq!(done.state, ppb::RunState::Succeeded as i32, "{:?}", done.error);
    let probe = done.tasks.iter().find(|t| t.task_key == "probe").unwrap();
    assert_eq!(crate::support::runs::string_output(&probe.outputs, "said").trim(), "2000", "every file, once");
    assert_eq!(probe.image.as_ref().unwrap().source(), ppb::task_image::Source::Pulled);
    assert_eq!(roots(), 1);
}
