//! Steps in their own image, against a real `highwind standalone` child process on loopback with its embedded
//! registry (`docker-registry`), images built here and pushed with `skopeo`:
//!
//! 1. what a step costs in its image over the same step on the host, warm cache: five chained `true` steps
//!    (`n_trivial.yaml`), run by run in IMAGE and in HOST mode, the difference of the median run divided by five;
//! 2. cold pull-and-unpack throughput of a ~100 MB image (four gzip layers of incompressible files) and of a ~25 MB
//!    one: the run's wall time minus a warm run's, against the image's compressed bytes; and the server's peak
//!    memory (`VmHWM`) after each, which must not grow with the image;
//! 3. the pipeline runs benchmark's linear sample (lightweight Python components, in the Python image
//!    `.ci/python-image.py` builds, named by `HIGHWIND_BENCH_PYTHON_IMAGE`) and its 32 tasks of 0.5 s (in the busybox
//!    image), in IMAGE mode against HOST mode.
//!
//! Needs `docker-registry`, `skopeo`, `bwrap`, `busybox` (static) and a Python environment with kfp for the host
//! (`HIGHWIND_BENCH_KFP_VENV`, default `~/.cache/highwind-kfpvenv`). `cargo bench -p gateway --bench images`; see
//! the README's "Benchmarks" section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod child;

use std::path::{Path, PathBuf};

use highwind_proto::{
    asset::v1::{self as apb, asset_service_client::AssetServiceClient, upload_service_client::UploadServiceClient},
    identity::v1::{self as ipb, api_key_service_client::ApiKeyServiceClient},
    pipeline::v1::{self as pb, pipeline_service_client::PipelineServiceClient},
};
use highwind_runtime::{
    testing::{Entry, LayoutBuilder},
    unpack::Compression,
};
use sha2::{Digest, Sha256};

use child::{Bearer, ChildPlatform};
use tonic::{Request, service::interceptor::InterceptedService, transport::Channel};

const ROUNDS: usize = 9;
const PLACEHOLDER: &str = "highwind-test-image.invalid/busybox:v1";

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipeline-svc/tests/samples")
}

/// The platform as a child process (`child`), with its registry, as the dev user.
struct Platform {
    child: ChildPlatform,
    registry: String,
}

impl Platform {
    async fn start(dir: &Path, task_path: &str) -> Self {
        let registry = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let extra = ["--registry-listen", registry.as_str(), "--task-path", task_path];
        Self { child: ChildPlatform::start(dir, &["dev"], &extra).await, registry }
    }

    async fn channel(&self) -> InterceptedService<Channel, Bearer> {
        InterceptedService::new(self.child.channel().await, self.child.bearer("dev"))
    }

    /// The server's peak resident memory so far, in MiB.
    fn peak_mib(&self) -> f64 {
        self.child.peak() as f64 / (1 << 20) as f64
    }

    /// Pushes the image in `layout` (tag `v1`) to a new Docker Repo asset; its reference.
    async fn push_image(&self, layout: &Path, key: &str) -> String {
        let asset =
            apb::Asset { kind: apb::AssetKind::DockerRepo as i32, display_name: "bench".into(), ..Default::default() };
        let request = Request::new(apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() });
        let asset = AssetServiceClient::new(self.channel().await).create_asset(request).await.unwrap().into_inner();
        let reference = format!("{}/highwind/dev/{}:v1", self.registry, asset.name.strip_prefix("assets/").unwrap());
        let output = tokio::process::Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", &format!("highwind:{key}")])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "skopeo: {}", String::from_utf8_lossy(&output.stderr));
        reference
    }

    /// A pipeline asset holding `sample` with its steps' image (whichever the sample names) set to `image`; its
    /// version.
    async fn push_pipeline(&self, sample: &str, image: &str) -> String {
        let mut ir = std::fs::read_to_string(samples().join(sample)).unwrap();
        for named in [PLACEHOLDER, "alpine:3.20", "python:3.11"] {
            ir = ir.replace(named, image);
        }
        let asset =
            apb::Asset { kind: apb::AssetKind::Pipeline as i32, display_name: sample.into(), ..Default::default() };
        let request = Request::new(apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() });
        let asset = AssetServiceClient::new(self.channel().await).create_asset(request).await.unwrap().into_inner();
        let mut uploads = UploadServiceClient::new(self.channel().await);
        let file = apb::UploadFile {
            path: "pipeline.yaml".into(),
            size_bytes: ir.len() as i64,
            sha256: hex::encode(Sha256::digest(ir.as_bytes())),
            ..Default::default()
        };
        let request = apb::CreateUploadRequest { parent: asset.name.clone(), files: vec![file], ..Default::default() };
        let upload = uploads.create_upload(Request::new(request)).await.unwrap().into_inner();
        let chunk = apb::WriteUploadChunkRequest {
            upload: upload.name.clone(),
            path: "pipeline.yaml".into(),
            offset: 0,
            data: ir.into_bytes().into(),
        };
        uploads.write_upload_chunk(Request::new(chunk)).await.unwrap();
        let version =
            uploads.commit_upload(Request::new(apb::CommitUploadRequest { name: upload.name })).await.unwrap();
        format!("{}/versions/{}", asset.name, version.into_inner().version_number)
    }

    /// Runs `run` to its end; the finished run with its tasks.
    async fn run(&self, run: pb::Run) -> pb::Run {
        let mut client = PipelineServiceClient::new(self.channel().await);
        let created = client
            .create_run(Request::new(pb::CreateRunRequest { run: Some(run), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        let mut stream = client
            .watch_run(Request::new(pb::WatchRunRequest { name: created.name.clone() }))
            .await
            .unwrap()
            .into_inner();
        while stream.message().await.unwrap().is_some() {}
        let get = pb::GetRunRequest { name: created.name, view: pb::RunView::Full as i32 };
        let run = client.get_run(Request::new(get)).await.unwrap().into_inner();
        assert_eq!(run.state, pb::RunState::Succeeded as i32, "{:?}", run.error);
        run
    }

    async fn stop(self) {
        self.child.stop().await;
    }
}

fn seconds(t: &Option<prost_types::Timestamp>) -> f64 {
    t.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

fn wall(run: &pb::Run) -> f64 {
    seconds(&run.end_time) - seconds(&run.create_time)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Busybox's shell and `true`, and `layers` more layers of `files` incompressible 1 MiB files each.
fn build_image(dir: &Path, busybox: &[u8], layers: usize, files: usize, seed: u32) -> PathBuf {
    let path = dir.join(format!("layout-{layers}-{files}-{seed}"));
    let mut layout = LayoutBuilder::new(&path);
    let mut built = vec![layout.layer(&[
        Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 },
        Entry::Symlink { path: "bin/sh", target: "busybox" },
        Entry::Symlink { path: "bin/true", target: "busybox" },
        Entry::Symlink { path: "bin/sleep", target: "busybox" },
    ])];
    for layer in 0..layers {
        let names: Vec<String> = (0..files).map(|i| format!("data/{layer}/{i}")).collect();
        let blocks: Vec<Vec<u8>> = (0..files)
            .map(|i| {
                let mut state = seed ^ (layer * 7919 + i) as u32 ^ 0x9e37_79b9;
                (0..1 << 20)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as u8
                    })
                    .collect()
            })
            .collect();
        let entries: Vec<Entry<'_>> =
            names.iter().zip(&blocks).map(|(path, content)| Entry::File { path, content, mode: 0o644 }).collect();
        built.push(layout.layer_compressed(&entries, Compression::Gzip));
    }
    let image = layout.image("linux/amd64", &built, serde_json::json!({"Env": ["PATH=/bin"]}));
    layout.tag("v1", &image);
    path
}

#[tokio::main]
async fn main() {
    let busybox = std::fs::read("/usr/bin/busybox").or_else(|_| std::fs::read("/bin/busybox")).expect("busybox-static");
    let venv = std::env::var("HIGHWIND_BENCH_KFP_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/highwind-kfpvenv", std::env::var("HOME").unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(&dir.path().join("data"), &format!("{venv}/bin:/usr/local/bin:/usr/bin:/bin")).await;
    let key = ApiKeyServiceClient::new(platform.channel().await)
        .create_api_key(Request::new(ipb::CreateApiKeyRequest {
            api_key: Some(ipb::ApiKey { display_name: "bench".into(), ..Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner()
        .key;

    // 1. Five chained `true` steps, warm, in the image and on the host.
    let small = platform.push_image(&build_image(dir.path(), &busybox, 0, 0, 1), &key).await;
    let trivial = platform.push_pipeline("n_trivial.yaml", &small).await;
    let of = |mode: pb::ImageMode| pb::Run {
        pipeline_version: trivial.clone(),
        image_mode: mode as i32,
        ..Default::default()
    };
    platform.run(of(pb::ImageMode::Image)).await; // pulled here: what follows is warm
    let (mut image, mut host) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        image.push(wall(&platform.run(of(pb::ImageMode::Image)).await));
        host.push(wall(&platform.run(of(pb::ImageMode::Host)).await));
    }
    let (image, host) = (median(image), median(host));
    println!("| 5 chained `true` steps, warm (median of {ROUNDS}): IMAGE / HOST | {image:.3} s / {host:.3} s |");
    println!("| added per step in its image | {:.1} ms |", (image - host) / 5.0 * 1000.0);

    // 2. Cold pulls of a ~25 MB and a ~100 MB image; the server's peak memory after each.
    let before = platform.peak_mib();
    for (layers, files, seed) in [(1, 25, 2), (4, 25, 3)] {
        let reference = platform.push_image(&build_image(dir.path(), &busybox, layers, files, seed), &key).await;
        let probe = platform.push_pipeline("j_shell_probe.yaml", &reference).await;
        let script = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(": > \"$0\"".into())) };
        let run = || pb::Run {
            pipeline_version: probe.clone(),
            image_mode: pb::ImageMode::Image as i32,
            parameters: [("script".to_owned(), script.clone())].into(),
            ..Default::default()
        };
        let cold = platform.run(run()).await;
        let warm = platform.run(run()).await;
        let task = cold.tasks.iter().find(|t| t.task_key == "probe").unwrap();
        let pulled = task.image.as_ref().unwrap();
        assert_eq!(pulled.source(), pb::task_image::Source::Pulled);
        let seconds = wall(&cold) - wall(&warm);
        let mb = pulled.compressed_bytes as f64 / 1e6;
        println!(
            "| cold pull and unpack, {mb:.0} MB ({:.0} MB unpacked) | {seconds:.2} s, {:.0} MB/s; server peak {:.0} MiB (before: {before:.0} MiB) |",
            pulled.unpacked_bytes as f64 / 1e6,
            mb / seconds,
            platform.peak_mib(),
        );
    }

    // 3. The pipeline runs benchmark's linear and 32-task runs, in their images and on the host.
    let Some(python) = std::env::var_os("HIGHWIND_BENCH_PYTHON_IMAGE") else {
        println!(
            "(set HIGHWIND_BENCH_PYTHON_IMAGE to a layout from .ci/python-image.py for the pipelines in IMAGE mode)"
        );
        platform.stop().await;
        return;
    };
    let python = platform.push_image(Path::new(&python), &key).await;
    let linear = platform.push_pipeline("a_linear_noinstall.yaml", &python).await;
    let wide = platform.push_pipeline("f_wide.yaml", &small).await;
    for (name, version, rounds) in [("linear (3 Python steps)", &linear, ROUNDS), ("32 × 0.5 s tasks", &wide, 3)] {
        let of = |mode: pb::ImageMode| pb::Run {
            pipeline_version: version.clone(),
            image_mode: mode as i32,
            ..Default::default()
        };
        platform.run(of(pb::ImageMode::Image)).await; // warm
        let (mut image, mut host) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            image.push(wall(&platform.run(of(pb::ImageMode::Image)).await));
            host.push(wall(&platform.run(of(pb::ImageMode::Host)).await));
        }
        println!("| {name}, median of {rounds}: IMAGE / HOST | {:.3} s / {:.3} s |", median(image), median(host));
    }
    platform.stop().await;
}
