//! The `highwind` command line as a user runs it: push a directory, pull it back, re-run, and fail clearly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Output};

use crate::support::{Platform, highwind};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn write(root: &Path, path: &str, content: &[u8]) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

#[tokio::test]
async fn push_then_pull_round_trips_a_directory() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("housing");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    write(&source, "train.csv", &big);
    write(&source, "splits/test.csv", b"rooms,price\n3,100\n");
    write(&source, "empty.txt", b"");

    let pushed =
        highwind(&platform, &token, &["dataset", "push", source.to_str().unwrap(), "--new", "California housing"])
            .await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let line = stdout(&pushed);
    let version = line.strip_prefix("pushed ").expect("prints `pushed <version>`").to_owned();
    assert!(version.starts_with("assets/") && version.ends_with("/versions/1"), "{version}");
    let asset = version.trim_end_matches("/versions/1").to_owned();

    let target = work.path().join("copy");
    let pulled = highwind(&platform, &token, &["dataset", "pull", &version, target.to_str().unwrap()]).await;
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));
    assert_eq!(std::fs::read(target.join("train.csv")).unwrap(), big);
    assert_eq!(std::fs::read(target.join("splits/test.csv")).unwrap(), b"rooms,price\n3,100\n");
    assert_eq!(std::fs::read(target.join("empty.txt")).unwrap(), b"");

    // A changed directory becomes version 2; unchanged files are not sent again.
    write(&source, "splits/test.csv", b"rooms,price\n4,120\n");
    let second = highwind(&platform, &token, &["dataset", "push", source.to_str().unwrap(), "--asset", &asset]).await;
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(stdout(&second), format!("pushed {asset}/versions/2"));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("train.csv: skipped: already stored"), "{stderr}");

    // Re-running a finished push changes nothing and names the same version.
    let again = highwind(&platform, &token, &["dataset", "push", source.to_str().unwrap(), "--asset", &asset]).await;
    assert_eq!(stdout(&again), format!("pushed {asset}/versions/2"));
    platform.stop().await;
}

#[tokio::test]
async fn failures_exit_non_zero_with_a_clear_message() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let work = tempfile::tempdir().unwrap();
    write(work.path(), "f.txt", b"x");
    let dir = work.path().to_str().unwrap();

    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["dataset", "push", "/definitely/not/here", "--new", "x"], token.as_str(), "not/here"),
        (vec!["dataset", "push", dir, "--new", "x"], "hwdev_wrong", "invalid or expired token"),
        (vec!["dataset", "push", dir, "--asset", "assets/nope"], token.as_str(), "assets/nope"),
        (
            vec!["dataset", "pull", "assets/0190b5b2-8c1e-7000-8000-000000000000/versions/1", dir],
            token.as_str(),
            "not found",
        ),
        (vec!["dataset", "push", dir], token.as_str(), "--asset"),
    ];
    for (args, token, expected) in cases {
        let output = highwind(&platform, token, &args).await;
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let mut assets = platform.assets(Some("alice")).await;
    let listed = assets.list_assets(highwind_proto::asset::v1::ListAssetsRequest::default()).await.unwrap();
    assert!(listed.into_inner().assets.is_empty(), "no failed command created an asset");
    platform.stop().await;
}

#[tokio::test]
async fn pipelines_are_pushed_only_when_their_ir_validates() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline-svc/tests/samples");
    let sample = samples.join("a_linear.yaml");
    let pushed =
        highwind(&platform, &token, &["pipeline", "push", sample.to_str().unwrap(), "--new", "a-linear"]).await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let version = stdout(&pushed).strip_prefix("pushed ").expect("prints `pushed <version>`").to_owned();
    assert!(version.ends_with("/versions/1"), "{version}");

    let work = tempfile::tempdir().unwrap();
    let broken =
        std::fs::read_to_string(samples.join("a_linear_noinstall.yaml")).unwrap().replace("{{$}}", "{{$.nope}}");
    write(work.path(), "pipeline.yaml", broken.as_bytes());
    let asset = version.trim_end_matches("/versions/1");
    let path = work.path().join("pipeline.yaml");
    let refused = highwind(&platform, &token, &["pipeline", "push", path.to_str().unwrap(), "--asset", asset]).await;
    assert!(!refused.status.success(), "a broken pipeline is not stored");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("UNKNOWN_PLACEHOLDER") && stderr.contains("deploymentSpec.executors"), "{stderr}");
    platform.stop().await;
}

#[tokio::test]
async fn run_start_wait_watch_and_logs_as_a_user_types_them() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let sample = format!("{}/../pipeline-svc/tests/samples/d_shell.yaml", env!("CARGO_MANIFEST_DIR"));
    let pushed = highwind(&platform, &token, &["pipeline", "push", &sample, "--new", "Shell"]).await;
    let version = stdout(&pushed).strip_prefix("pushed ").expect("pushed").to_owned();

    let started = highwind(&platform, &token, &["run", "start", &version, "--param", "n=1", "--wait"]).await;
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let out = stdout(&started);
    let run = out.lines().next().unwrap().to_owned();
    assert!(run.starts_with("runs/"), "the run's name comes first: {out}");
    assert!(out.lines().any(|l| l == format!("{run} SUCCEEDED")), "plain lines when not on a terminal: {out}");
    assert!(out.contains("condition-branches-3.condition-4 SKIPPED (condition false)"), "{out}");

    let logs = highwind(&platform, &token, &["run", "logs", &run, "show"]).await;
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "collected [1,4,9]\n");
    let watched = highwind(&platform, &token, &["run", "watch", &run]).await;
    assert!(watched.status.success() && stdout(&watched).starts_with(&format!("{run} SUCCEEDED")));

    // A run that fails makes --wait exit non-zero and say so.
    let gate = "--param=gate_path=/nonexistent/gate";
    let failed = highwind(&platform, &token, &["run", "start", &version, gate, "--wait"]).await;
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("ended FAILED"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );

    for (args, says) in [
        (vec!["run", "start", version.as_str(), "--param", "n=three"], "--param n=three: expected a number"),
        (vec!["run", "start", version.as_str(), "--param", "lr=1"], "--param lr: the pipeline takes"),
        (vec!["run", "start", version.as_str(), "--input", "data=assets/x/versions/1"], "--input data: neither"),
    ] {
        let refused = highwind(&platform, &token, &args).await;
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    platform.stop().await;
}
