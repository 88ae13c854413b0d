//! Soak: mixed load on loopback from a well-behaved user while a second user keeps sending what once hurt other
//! callers (oversized filters, nested-YAML bombs, floods of tiny upload frames, tasks that leave FIFOs, try to leave
//! their sandbox or exhaust memory). Bounded in time: `SOAK_SECONDS` (default 600). Reports every error the
//! well-behaved user saw (target 0), the p50/p99 of each of her kinds of call, and the server's RSS after warm-up
//! and at the end (target: within ±10%). See the README's "Benchmarks" section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod child;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use child::{Authed, ChildPlatform};
use highwind_proto::{
    asset::v1::{self as apb, asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
    pipeline::v1::{self as ppb, pipeline_service_client::PipelineServiceClient},
};
use prost_types::{Value, value::Kind};
use sha2::{Digest, Sha256};

const ALICE: &str = "alice";
const MALLORY: &str = "mallory";

/// What the well-behaved user saw.
#[derive(Default)]
struct Seen {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn note(seen: &Shared, kind: &'static str, started: Instant, outcome: Result<(), String>) {
    let mut seen = seen.lock().unwrap();
    match outcome {
        Ok(()) => seen.latencies.entry(kind).or_default().push(started.elapsed()),
        Err(e) => seen.errors.push(format!("{kind}: {e}")),
    }
}

fn text(s: &str) -> Value {
    Value { kind: Some(Kind::StringValue(s.into())) }
}

struct Clients {
    assets: AssetServiceClient<Authed>,
    uploads: UploadServiceClient<Authed>,
    runs: PipelineServiceClient<Authed>,
}

async fn clients(platform: &ChildPlatform, user: &str) -> Clients {
    let bearer = platform.bearer(user);
    Clients {
        assets: AssetServiceClient::with_interceptor(platform.channel().await, bearer.clone()),
        uploads: UploadServiceClient::with_interceptor(platform.channel().await, bearer.clone()),
        runs: PipelineServiceClient::with_interceptor(platform.channel().await, bearer),
    }
}

async fn create_asset(c: &mut Clients, kind: apb::AssetKind, name: &str) -> String {
    let asset = apb::Asset { kind: kind as i32, display_name: name.into(), ..Default::default() };
    c.assets
        .create_asset(apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
        .name
}

/// Uploads `files` as a new version of `asset` through the unary chunk path.
async fn commit(c: &mut Clients, asset: &str, files: &[(&str, Vec<u8>)]) -> Result<String, tonic::Status> {
    let declared = files
        .iter()
        .map(|(path, content)| apb::UploadFile {
            path: (*path).into(),
            size_bytes: content.len() as i64,
            sha256: hex::encode(Sha256::digest(content)),
            ..Default::default()
        })
        .collect();
    let upload = c
        .uploads
        .create_upload(apb::CreateUploadRequest { parent: asset.into(), files: declared, ..Default::default() })
        .await?
        .into_inner();
    for ((path, content), file) in files.iter().zip(&upload.files) {
        if !file.present {
            let chunk = apb::WriteUploadChunkRequest {
                upload: upload.name.clone(),
                path: (*path).into(),
                offset: 0,
                data: content.clone().into(),
            };
            c.uploads.write_upload_chunk(chunk).await?;
        }
    }
    Ok(c.uploads.commit_upload(apb::CommitUploadRequest { name: upload.name }).await?.into_inner().name)
}

async fn push_probe(c: &mut Clients) -> String {
    let yaml = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../pipeline-svc/tests/samples/j_shell_probe.yaml"))
        .unwrap();
    let asset = create_asset(c, apb::AssetKind::Pipeline, "probe").await;
    commit(c, &asset, &[("pipeline.yaml", yaml)]).await.unwrap()
}

fn probe_run(version: &str, script: &str) -> ppb::CreateRunRequest {
    let run = ppb::Run {
        pipeline_version: version.into(),
        parameters: [("script".to_owned(), text(script))].into(),
        unbound_output_policy: ppb::UnboundOutputPolicy::KeepInRun as i32,
        ..Default::default()
    };
    ppb::CreateRunRequest { run: Some(run), ..Default::default() }
}

/// Creates a run and watches it to its end; an error unless it succeeded.
async fn run_to_end(c: &mut Clients, request: ppb::CreateRunRequest) -> Result<(), String> {
    let run = c.runs.create_run(request).await.map_err(|e| e.to_string())?.into_inner();
    let mut stream = c
        .runs
        .watch_run(ppb::WatchRunRequest { name: run.name.clone() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    while stream.message().await.map_err(|e| e.to_string())?.is_some() {}
    let ended = c.runs.get_run(ppb::GetRunRequest { name: run.name, view: 0 }).await.map_err(|e| e.to_string())?;
    let ended = ended.into_inner();
    if ended.state == ppb::RunState::Succeeded as i32 { Ok(()) } else { Err(format!("run ended {:?}", ended.error)) }
}

/// The well-behaved user's kinds of work, each in a loop until `until`.
async fn alice(platform: Arc<ChildPlatform>, seen: Shared, until: Instant) {
    let mut setup = clients(&platform, ALICE).await;
    let dataset = create_asset(&mut setup, apb::AssetKind::Dataset, "soak").await;
    let version = commit(&mut setup, &dataset, &[("a.csv", b"x,y\n1,2\n".to_vec())]).await.unwrap();
    let pipeline = push_probe(&mut setup).await;
    let mut work = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (platform, seen, version) = (platform.clone(), seen.clone(), version.clone());
        work.spawn(async move {
            let mut c = clients(&platform, ALICE).await;
            while Instant::now() < until {
                let started = Instant::now();
                let got = c.assets.get_asset_version(apb::GetAssetVersionRequest { name: version.clone() }).await;
                note(&seen, "GetAssetVersion", started, got.map(drop).map_err(|e| e.to_string()));
                let started = Instant::now();
                let listed = c.assets.list_assets(apb::ListAssetsRequest { page_size: 50, ..Default::default() }).await;
                note(&seen, "ListAssets", started, listed.map(drop).map_err(|e| e.to_string()));
            }
        });
    }
    {
        let (platform, seen) = (platform.clone(), seen.clone());
        work.spawn(async move {
            let mut c = clients(&platform, ALICE).await;
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let started = Instant::now();
                let asset = apb::Asset {
                    kind: apb::AssetKind::Model as i32,
                    display_name: format!("model {n}"),
                    ..Default::default()
                };
                let created = c
                    .assets
                    .create_asset(apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() })
                    .await;
                note(&seen, "CreateAsset", started, created.map(drop).map_err(|e| e.to_string()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    {
        let (platform, seen, dataset) = (platform.clone(), seen.clone(), dataset.clone());
        work.spawn(async move {
            let mut c = clients(&platform, ALICE).await;
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let content: Vec<u8> = (0..64 * 1024u64).map(|i| ((i * 31 + n) % 251) as u8).collect();
                let started = Instant::now();
                let committed = commit(&mut c, &dataset, &[("data.bin", content)]).await;
                note(&seen, "upload 64 KiB + commit", started, committed.map(drop).map_err(|e| e.to_string()));
            }
        });
    }
    for (kind, script) in
        [("run (echo) + watch", r#"echo ok > "$0""#), ("run (2 s) + watch", r#"sleep 2; echo ok > "$0""#)]
    {
        let (platform, seen, pipeline) = (platform.clone(), seen.clone(), pipeline.clone());
        work.spawn(async move {
            let mut c = clients(&platform, ALICE).await;
            while Instant::now() < until {
                let started = Instant::now();
                let outcome = run_to_end(&mut c, probe_run(&pipeline, script)).await;
                note(&seen, kind, started, outcome);
            }
        });
    }
    while work.join_next().await.is_some() {}
}

/// The second user: every few seconds, one of the inputs that once hurt everyone.
async fn mallory(platform: Arc<ChildPlatform>, until: Instant) -> BTreeMap<&'static str, u64> {
    let mut c = clients(&platform, MALLORY).await;
    let pipeline = push_probe(&mut c).await;
    let dataset = create_asset(&mut c, apb::AssetKind::Dataset, "flood").await;
    let big_filter = format!("labels.k = \"{}\"", "x".repeat(16 * 1024));
    let bomb = "[".repeat(100_000).into_bytes();
    let attacks: [&'static str; 8] = [
        "oversized filters",
        "nested YAML",
        "FIFO output",
        "sandbox escape",
        "memory hog",
        "fork bomb",
        "10,000-frame upload",
        "huge path",
    ];
    let mut sent = BTreeMap::new();
    let mut round = 0usize;
    while Instant::now() < until {
        let attack = attacks[round % attacks.len()];
        round += 1;
        *sent.entry(attack).or_insert(0) += 1;
        match attack {
            "oversized filters" => {
                let _ = c
                    .assets
                    .list_assets(apb::ListAssetsRequest { filter: big_filter.clone(), ..Default::default() })
                    .await;
                let _ =
                    c.runs.list_runs(ppb::ListRunsRequest { filter: big_filter.clone(), ..Default::default() }).await;
            }
            "nested YAML" => {
                let mut request =
                    tonic::Request::new(ppb::ValidatePipelineRequest { pipeline_spec: bomb.clone().into() });
                request.set_timeout(Duration::from_secs(3));
                let _ = c.runs.validate_pipeline(request).await;
            }
            "FIFO output" => {
                let _ = c.runs.create_run(probe_run(&pipeline, r#"rm -f "$0"; mkfifo "$0""#)).await;
            }
            "sandbox escape" => {
                let script = "umount -l /tmp; cat /proc/1/environ; mount -o remount,rw /; ls -R / > \"$0\"";
                let _ = c.runs.create_run(probe_run(&pipeline, script)).await;
            }
            "memory hog" => {
                let _ = c.runs.create_run(probe_run(&pipeline, "python3 -c 'b = bytearray(16 << 30)'")).await;
            }
            "fork bomb" => {
                let _ = c.runs.create_run(probe_run(&pipeline, "f() { f | f & }; f; sleep 5")).await;
            }
            "10,000-frame upload" => {
                let content = vec![b'z'; 10_000];
                let file = apb::UploadFile {
                    path: format!("flood-{round}.bin"),
                    size_bytes: 10_000,
                    sha256: hex::encode(Sha256::digest(&content)),
                    ..Default::default()
                };
                let request =
                    apb::CreateUploadRequest { parent: dataset.clone(), files: vec![file], ..Default::default() };
                if let Ok(upload) = c.uploads.create_upload(request).await {
                    let name = upload.into_inner().name;
                    let path = format!("flood-{round}.bin");
                    let frames = (0..10_000i64).map(move |offset| apb::WriteUploadRequest {
                        upload: name.clone(),
                        path: path.clone(),
                        offset,
                        data: vec![b'z'].into(),
                    });
                    let _ = c.uploads.write_upload(tokio_stream::iter(frames)).await;
                }
            }
            _ => {
                let version = format!("{dataset}/versions/1");
                let request = apb::ReadFileRequest { version, path: "p/".repeat(8_000), ..Default::default() };
                if let Ok(mut stream) = c.uploads.read_file(request).await.map(tonic::Response::into_inner) {
                    while let Ok(Some(_)) = stream.message().await {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sent
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let dir = tempfile::tempdir().unwrap();
    let platform = Arc::new(ChildPlatform::start(dir.path(), &[ALICE, MALLORY], &[]).await);
    println!("# highwind soak: {seconds} s of mixed load, a second user attacking");
    // Warm-up: one round of each of alice's kinds of call, then the baseline RSS.
    let seen: Shared = Arc::default();
    alice(platform.clone(), seen.clone(), Instant::now() + Duration::from_secs(10)).await;
    let rss_start = platform.rss();
    let seen: Shared = Arc::default();
    let until = Instant::now() + Duration::from_secs(seconds);
    let attacker = tokio::spawn(mallory(platform.clone(), until));
    alice(platform.clone(), seen.clone(), until).await;
    let sent = attacker.await.unwrap();
    // Let the last attack tasks end before the last reading.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_end = platform.rss();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    println!("\n| alice's call | count | p50 ms | p99 ms |\n|---|---|---|---|");
    for (kind, latencies) in &seen.latencies {
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let pick = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3;
        println!("| {kind} | {} | {:.2} | {:.2} |", sorted.len(), pick(0.5), pick(0.99));
    }
    println!("\nalice's errors: {} (target 0)", seen.errors.len());
    for error in seen.errors.iter().take(10) {
        println!("  {error}");
    }
    println!("mallory's attacks: {sent:?}");
    let change = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    println!(
        "server RSS: {:.1} MiB after warm-up, {:.1} MiB at the end ({change:+.1}%, target within ±10%)",
        rss_start as f64 / 1048576.0,
        rss_end as f64 / 1048576.0
    );
    Arc::into_inner(platform).expect("the only owner").stop().await;
}
