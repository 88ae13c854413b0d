//! Pipeline run benchmarks against a real `highwind standalone` child process on loopback:
//!
//! 1. the 3-step linear sample (no pip preamble) with `highwind run start --wait`, against `kfp.local`
//!    (SubprocessRunner, no venv) running the same compiled YAML; and the orchestration overhead per task: the
//!    run's server-side wall time minus the time its task processes ran, divided by the tasks;
//! 2. 32 independent tasks of 0.5 s against ceil(32 / limit) × 0.5 s, the limit being one task per core;
//! 3. Watch latency: from a change's server time to its arrival on the client's stream, over every message of the
//!    32-task run.
//!
//! Needs a Python environment with `kfp` (`HIGHWIND_BENCH_KFP_VENV`, default `~/.cache/highwind-kfpvenv`).
//! `cargo bench -p gateway --bench runs`; see the README's "Benchmarks" section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use highwind_proto::pipeline::v1::{self as pb, pipeline_service_client::PipelineServiceClient};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::{Request, metadata::MetadataValue, transport::Endpoint};

const ROUNDS: usize = 5;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipeline-svc/tests/samples")
}

struct Platform {
    child: tokio::process::Child,
    url: String,
    token: String,
    path: String,
}

impl Platform {
    async fn start(dir: &Path, path: String, task_path: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"))
            .args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .args(["--task-path", &task_path])
            .env("RUST_LOG", "warn")
            .env("PATH", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start highwind standalone");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut token = String::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap()
        {
            if let Some(rest) = line.strip_prefix("dev token (dev): ") {
                token = rest.to_owned();
                break;
            }
        }
        Self { child, url: format!("http://127.0.0.1:{port}"), token, path }
    }

    /// Runs the `highwind` command line against the platform; its stdout.
    async fn cli(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"))
            .args(args)
            .env("HIGHWIND_URL", &self.url)
            .env("HIGHWIND_TOKEN", &self.token)
            .env("PATH", &self.path)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "highwind {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    async fn push(&self, sample: &str) -> String {
        let file = samples().join(sample);
        let out = self.cli(&["pipeline", "push", file.to_str().unwrap(), "--new", sample]).await;
        out.trim().strip_prefix("pushed ").unwrap().to_owned()
    }

    async fn client(&self) -> PipelineServiceClient<tonic::transport::Channel> {
        PipelineServiceClient::new(Endpoint::from_shared(self.url.clone()).unwrap().connect().await.unwrap())
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let bearer: MetadataValue<_> = format!("Bearer {}", self.token).parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        request
    }

    async fn run(&self, name: &str) -> pb::Run {
        let request = self.request(pb::GetRunRequest { name: name.into(), view: 0 });
        self.client().await.get_run(request).await.unwrap().into_inner()
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
    }
}

fn seconds(t: &Option<prost_types::Timestamp>) -> f64 {
    t.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The run's server-side wall time minus the time its container tasks' processes ran, per container task.
fn overhead_per_task(run: &pb::Run) -> f64 {
    let containers: Vec<&pb::Task> =
        run.tasks.iter().filter(|t| t.task_type == pb::TaskType::Container as i32).collect();
    let busy: f64 = containers.iter().map(|t| seconds(&t.end_time) - seconds(&t.start_time)).sum();
    (seconds(&run.end_time) - seconds(&run.create_time) - busy) / containers.len() as f64
}

/// kfp.local running the compiled YAML: (whole process, the pipeline call alone), in seconds.
async fn kfp_local(python: &Path, yaml: &Path, root: &Path) -> (f64, f64) {
    let script = format!(
        "import time\n\
         from kfp import local, components\n\
         local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root={root:?})\n\
         pipeline = components.load_component_from_file({yaml:?})\n\
         t = time.perf_counter()\n\
         task = pipeline()\n\
         print('CALL', time.perf_counter() - t, task.output)\n",
        root = root.display().to_string(),
        yaml = yaml.display().to_string(),
    );
    let started = Instant::now();
    let output = tokio::process::Command::new(python).args(["-c", &script]).output().await.unwrap();
    let whole = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let call = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CALL "))
        .unwrap_or_else(|| panic!("kfp.local failed: {}", String::from_utf8_lossy(&output.stderr)));
    let mut parts = call.split_whitespace();
    let seconds: f64 = parts.next().unwrap().parse().unwrap();
    assert_eq!(parts.next(), Some("60.0"), "kfp.local gives 60.0");
    (whole, seconds)
}

#[tokio::main]
async fn main() {
    let venv = std::env::var("HIGHWIND_BENCH_KFP_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/highwind-kfpvenv", std::env::var("HOME").unwrap()));
    let python = PathBuf::from(&venv).join("bin/python");
    assert!(python.exists(), "no Python environment with kfp at {venv}: set HIGHWIND_BENCH_KFP_VENV");
    let path = format!("{venv}/bin:{}", std::env::var("PATH").unwrap_or_default());
    let dir = tempfile::tempdir().unwrap();
    let task_path = format!("{venv}/bin:/usr/local/bin:/usr/bin:/bin");
    let platform = Platform::start(&dir.path().join("data"), path, task_path).await;

    // 1. The linear sample, end to end through the command line, against kfp.local on the same YAML.
    let linear = platform.push("a_linear_noinstall.yaml").await;
    platform.cli(&["run", "start", &linear, "--wait"]).await; // warm: python's file cache, the kfp import probe
    let (mut ours, mut overheads) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let out = platform.cli(&["run", "start", &linear, "--wait"]).await;
        ours.push(started.elapsed().as_secs_f64());
        let run = platform.run(out.lines().next().unwrap()).await;
        overheads.push(overhead_per_task(&run));
    }
    let yaml = samples().join("a_linear_noinstall.yaml");
    let (mut theirs_whole, mut theirs_call) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (whole, call) = kfp_local(&python, &yaml, &dir.path().join(format!("kfp-local-{round}"))).await;
        theirs_whole.push(whole);
        theirs_call.push(call);
    }
    let (ours, whole, call) = (median(ours), median(theirs_whole), median(theirs_call));
    println!("| linear, `highwind run start --wait` (median of {ROUNDS}) | {:.3} s |", ours);
    println!("| linear, kfp.local: whole process / pipeline call alone | {whole:.3} s / {call:.3} s |");
    println!("| speed-up vs. kfp.local whole / call alone | {:.1}× / {:.1}× |", whole / ours, call / ours);
    println!("| orchestration overhead per task (median) | {:.1} ms |", median(overheads) * 1000.0);

    // 2 and 3. 32 independent tasks, watched.
    let wide = platform.push("f_wide.yaml").await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let ideal = (32usize.div_ceil(cores)) as f64 * 0.5;
    let mut client = platform.client().await;
    let mut walls = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..3 {
        let run = pb::Run { pipeline_version: wide.clone(), ..Default::default() };
        let created = client
            .create_run(platform.request(pb::CreateRunRequest { run: Some(run), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        let mut stream = client
            .watch_run(platform.request(pb::WatchRunRequest { name: created.name.clone() }))
            .await
            .unwrap()
            .into_inner();
        let mut first = true;
        while let Some(message) = stream.message().await.unwrap() {
            let arrived = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            if !first {
                latencies.push(arrived - seconds(&message.event_time));
            }
            first = false;
        }
        let run = platform.run(&created.name).await;
        assert_eq!(run.state, pb::RunState::Succeeded as i32);
        walls.push(seconds(&run.end_time) - seconds(&run.start_time));
    }
    let wall = median(walls);
    println!(
        "| 32 × 0.5 s tasks, limit {cores} (median of 3) | {wall:.2} s vs. ideal {ideal:.2} s ({:+.1}%) |",
        (wall / ideal - 1.0) * 100.0
    );
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] * 1000.0;
    println!(
        "| Watch latency over {} changes: p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    platform.stop().await;
}
