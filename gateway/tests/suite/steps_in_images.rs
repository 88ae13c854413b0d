//! Pipeline steps run in their own image, with no container engine: a busybox image built here (a gzip, a zstd and
//! a plain layer) and pushed to a Docker Repo asset gives a step a file and a tool the host does not have, its environment and working directory,
//! and its entrypoint when the step names no command; the step sees only its own run under a neutral path. Its
//! creator's access decides: another user's run cannot use the image, and nothing runs. A run in HOST mode runs the
//! same step on the host's system, with a note that says so. Each task records the image it ran in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{
    Platform, highwind, kfp_path,
    registry::{available, busybox, push},
    runs::{create, log_of, run_of, sample, sandbox_available, state, string_output, task, task_state, watch},
};
use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use highwind_runtime::{
    testing::{Entry, LayoutBuilder},
    unpack::Compression,
};

/// The placeholder images of the samples of steps in images: busybox's and Python's.
const PLACEHOLDER: &str = "highwind-test-image.invalid/busybox:v1";
const PYTHON_PLACEHOLDER: &str = "highwind-test-image.invalid/python:v1";

/// A platform with alice's busybox image pushed to a Docker Repo asset of hers; the platform and the image's
/// reference.
async fn platform_with_image(busybox: &[u8]) -> (Platform, String) {
    let platform = Platform::builder().embedded_registry().start().await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let reference = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());

    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let applets: Vec<String> = ["sh", "cat", "echo", "ls", "pwd", "wc"].iter().map(|a| format!("bin/{a}")).collect();
    let mut programs = vec![Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 }];
    programs.extend(applets.iter().map(|path| Entry::Symlink { path, target: "busybox" }));
    // One layer of each kind an image may hold: gzip, zstd and plain tar.
    let layers = [
        layout.layer_compressed(&programs, Compression::Gzip),
        layout.layer_compressed(
            &[Entry::File { path: "etc/image-only.txt", content: b"a file only the image has\n", mode: 0o644 }],
            Compression::Zstd,
        ),
        layout.layer_compressed(
            &[
                Entry::File {
                    path: "usr/local/bin/only-in-image",
                    content: b"#!/bin/sh\necho a tool only the image has\n",
                    mode: 0o755,
                },
                Entry::Dir { path: "work/space" },
            ],
            Compression::None,
        ),
    ];
    let config = serde_json::json!({
        "Env": ["PATH=/usr/local/bin:/bin", "FROM_IMAGE_ENV=set by the image"],
        "WorkingDir": "/work/space",
        "Entrypoint": ["/bin/sh", "-c", "echo from the entrypoint > \"$0\""],
    });
    let image = layout.image("linux/amd64", &layers, config);
    layout.tag("v1", &image);
    let key = platform.api_key("alice").await;
    let pushed = push(layout.path(), "v1", &reference, &key, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    (platform, reference)
}

/// A pipeline asset of `user` holding the compiled `sample` with its steps' image placeholder set to `image`; its
/// version.
pub(crate) async fn push_with_image(platform: &Platform, user: &str, sample_name: &str, image: &str) -> String {
    let yaml =
        String::from_utf8(sample(sample_name)).unwrap().replace(PLACEHOLDER, image).replace(PYTHON_PLACEHOLDER, image);
    let asset = platform.create_asset(user, apb::AssetKind::Pipeline).await;
    let version = platform.commit_files(user, &asset, &[("pipeline.yaml", yaml.into_bytes())]).await.expect("commit");
    format!("{asset}/versions/{}", version.version_number)
}

fn sources(run: &pb::Run) -> Vec<pb::task_image::Source> {
    let mut sources: Vec<_> = ["from-image", "entrypoint-only"]
        .iter()
        .map(|name| task(run, name).image.as_ref().expect("the task records its image").source())
        .collect();
    sources.sort_by_key(|source| *source as i32);
    sources
}

#[tokio::test]
async fn a_step_runs_in_its_image_for_those_who_may_pull_it_and_on_the_host_only_when_asked() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(busybox) = busybox() else { return };
    let (platform, image) = platform_with_image(&busybox).await;
    let version = push_with_image(&platform, "alice", "l_image.yaml", &image).await;

    // As a user starts it: `highwind run start --wait` exits 0 once the run succeeded.
    let started = highwind(&platform, &platform.token("alice"), &["run", "start", &version, "--wait"]).await;
    let said = String::from_utf8_lossy(&started.stdout).into_owned() + &String::from_utf8_lossy(&started.stderr);
    assert!(started.status.success(), "{said}");
    let name = said.lines().next().expect("the run's name").trim().to_owned();
    let mut pipelines = platform.pipelines(Some("alice")).await;
    let get = |name: String| pb::GetRunRequest { name, view: pb::RunView::Full as i32 };
    let run = pipelines.get_run(get(name.clone())).await.expect("get").into_inner();
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?} {:#?}", run.error, run.tasks);
    assert_eq!(run.image_mode(), pb::ImageMode::Auto, "the server's default, recorded");
    let seen = string_output(&task(&run, "from-image").outputs, "seen");
    assert_eq!(
        seen, "a file only the image has\na tool only the image has\nenv=set by the image\ncwd=/work/space\nruns=1\n",
        "the image's files, tools, environment and working directory; only this run under the neutral root"
    );
    let recorded = task(&run, "from-image").image.clone().expect("the image it ran in");
    assert_eq!(recorded.reference, image);
    assert!(recorded.digest.starts_with("sha256:") && recorded.unpacked_bytes > 0, "{recorded:?}");
    assert!(task(&run, "from-image").state_message.contains(&recorded.digest), "the note names the digest");
    // Two steps of one image at once: one pulled it, the other waited for it and found it unpacked.
    use pb::task_image::Source;
    assert_eq!(sources(&run), [Source::Pulled, Source::Cached], "pulled once");
    let said = string_output(&task(&run, "entrypoint-only").outputs, "said");
    assert_eq!(said, "from the entrypoint\n", "no command: the image's entrypoint runs the step's arguments");

    // Again: both from the cache.
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, again) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&again), pb::RunState::Succeeded, "{:?}", again.error);
    assert_eq!(sources(&again), [Source::Cached, Source::Cached]);

    // HOST for one run: the same step on the host's system, which has neither the file nor the tool; the note
    // says so, and the step still sees its directory under the neutral root, not the platform's data directory.
    let on_host = pb::Run { image_mode: pb::ImageMode::Host as i32, ..run_of(&version, &[]) };
    let created = create(&platform, "alice", on_host).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(run.image_mode(), pb::ImageMode::Host);
    let step = task(&run, "from-image");
    assert!(step.state_message.contains("runs on the host"), "{}", step.state_message);
    assert_eq!(step.image.as_ref().map(|i| i.source()), Some(Source::Host));
    let seen = string_output(&step.outputs, "seen");
    assert!(!seen.contains("only the image has") && seen.contains("env=\n"), "the host's view: {seen}");
    assert!(seen.contains("cwd=/highwind/runs/") && seen.contains("runs=1\n"), "{seen}");
    // A mode that does not exist is refused, naming the field.
    let bad = pb::Run { image_mode: 7, ..run_of(&version, &[]) };
    let status = create(&platform, "alice", bad).await.expect_err("no such mode");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("run.image_mode"), "{status:?}");

    // Bob may not pull alice's image: his run of the same pipeline fails on it, and nothing ran.
    let bobs = push_with_image(&platform, "bob", "l_image.yaml", &image).await;
    let created = create(&platform, "bob", run_of(&bobs, &[])).await.expect("create");
    let (_, run) = watch(&platform, "bob", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    let refused = task(&run, "from-image");
    assert_eq!(task_state(refused), pb::RunState::Failed);
    let error = refused.error.as_ref().expect("a reason");
    assert_eq!(error.code, tonic::Code::NotFound as i32, "{error:?}");
    assert!(error.message.contains(&image), "the reason names the image: {error:?}");
    assert!(refused.exit_code.is_none() && refused.image.is_none(), "no process ran: {refused:?}");

    // An image whose layer hard-links the host's password file: refused with the reason, and nothing of it is kept.
    // (A symbolic link to `/` is not refused but resolved inside the image's root, as lower layers' links must be:
    // the runtime's own tests show what is written through one stays in the root.)
    let roots = || std::fs::read_dir(platform.dir.path().join("images/roots")).unwrap().count();
    let cached = roots();
    let hostile = push_hostile_image(&platform).await;
    let version = push_with_image(&platform, "alice", "l_image.yaml", &hostile).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    let error = task(&run, "from-image").error.clone().expect("refused");
    assert_eq!(
        (error.code, error.reason.as_str()),
        (tonic::Code::Unavailable as i32, "IMAGE_UNAVAILABLE"),
        "{error:?}"
    );
    assert!(error.message.contains(&hostile) && error.message.contains("links to"), "what and why: {error:?}");
    assert_eq!(roots(), cached, "nothing of the refused image is kept");
    let building = std::fs::read_dir(platform.dir.path().join("images/tmp")).unwrap().count();
    assert_eq!(building, 0, "nor anything half-built");
    platform.stop().await;
}

/// alice's image whose only layer hard-links `/etc/passwd`.
async fn push_hostile_image(platform: &Platform) -> String {
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let reference = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let layer = layout.layer(&[Entry::Hardlink { path: "passwords", target: "/etc/passwd" }]);
    let image = layout.image("linux/amd64", &[layer], serde_json::json!({}));
    layout.tag("v1", &image);
    let pushed = push(layout.path(), "v1", &reference, &platform.api_key("alice").await, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    reference
}

/// Every file name under the Python environment the tasks' `python3` belongs to.
fn site_packages(venv: &str) -> Vec<String> {
    let mut names: Vec<String> = walk(std::path::Path::new(venv).join("lib").as_path());
    names.sort();
    names
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        found.push(entry.path().display().to_string());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&entry.path()));
        }
    }
    found
}

#[tokio::test]
async fn a_first_pipeline_runs_as_kfp_runs_it_with_its_packages_beside_the_hosts_python_and_a_step_in_its_image() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(venv) = std::env::var("HIGHWIND_TEST_KFP_VENV").ok().filter(|_| kfp_path().is_some()) else {
        eprintln!("skipped: set HIGHWIND_TEST_KFP_VENV to a Python environment with kfp 2.17.3");
        return;
    };
    let Some(busybox) = busybox() else { return };
    let before = site_packages(&venv);
    let (platform, image) = platform_with_image(&busybox).await;
    let version = push_with_image(&platform, "alice", "m_shape.yaml", &image).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?} {:#?}", run.error, run.tasks);

    // packages_to_install: installed once for alice beside the host's Python, which stays as it was.
    let made = &task(&run, "make-data").state_message;
    assert!(made.contains("packages toolz==1.0.0 installed for it"), "{made}");
    let trained = &task(&run, "train").state_message;
    assert!(trained.contains("packages toolz==1.0.0 from its cache"), "{trained}");
    assert_eq!(site_packages(&venv), before, "the host's Python environment is unchanged");
    assert!(before.iter().all(|path| !path.contains("toolz")));

    // The metric decided the condition, and the container step ran in its image.
    let evaluate = task(&run, "evaluate");
    assert_eq!(
        evaluate.outputs.as_ref().unwrap().parameters.get("Output").and_then(|v| v.kind.clone()),
        Some(prost_types::value::Kind::NumberValue(0.75))
    );
    let announce = task(&run, "condition-1.announce");
    assert_eq!(string_output(&announce.outputs, "said"), "deploying at 0.75\na tool only the image has\n");
    assert!(announce.image.as_ref().is_some_and(|i| i.digest.starts_with("sha256:")), "{announce:?}");

    // The model became an asset version with the metric its evaluation logged.
    let model = task(&run, "train").outputs.as_ref().unwrap().artifacts.iter().find(|a| a.key == "model").cloned();
    let model = model.expect("the model output").asset_version;
    let mut assets = platform.assets(Some("alice")).await;
    let model = assets.get_asset_version(apb::GetAssetVersionRequest { name: model }).await.unwrap().into_inner();
    assert_eq!(model.metrics, std::collections::HashMap::from([("accuracy".to_owned(), 0.75)]));
    platform.stop().await;
}

/// The Python image `.ci/python-image.py` builds (an OCI layout), named by `HIGHWIND_TEST_PYTHON_IMAGE`; a failure
/// without it under `HIGHWIND_REQUIRE_PYTHON_IMAGE=1`.
fn python_image() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("HIGHWIND_TEST_PYTHON_IMAGE").map(std::path::PathBuf::from);
    let required = std::env::var("HIGHWIND_REQUIRE_PYTHON_IMAGE").is_ok_and(|v| v == "1");
    assert!(found.is_some() || !required, "HIGHWIND_REQUIRE_PYTHON_IMAGE=1 but HIGHWIND_TEST_PYTHON_IMAGE is unset");
    if found.is_none() {
        eprintln!("skipped: build a Python image with .ci/python-image.py and name it in HIGHWIND_TEST_PYTHON_IMAGE");
    }
    found
}

#[tokio::test]
async fn lightweight_components_run_unchanged_in_their_python_image_with_their_packages() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(layout) = python_image() else { return };
    let platform = Platform::builder().embedded_registry().start().await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let image = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());
    let pushed = push(&layout, "v1", &image, &platform.api_key("alice").await, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    let version = push_with_image(&platform, "alice", "o_python_image.yaml", &image).await;

    // IMAGE mode, with network for packages_to_install: the pip preamble runs in the image, as on KFP.
    let run = pb::Run { image_mode: pb::ImageMode::Image as i32, allow_network: true, ..run_of(&version, &[]) };
    let created = create(&platform, "alice", run).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    let log = log_of(&platform, "alice", &format!("{}/tasks/total", run.name), false).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}: {log}", run.error);
    let total = task(&run, "total");
    let output = total.outputs.as_ref().unwrap().parameters.get("Output").and_then(|v| v.kind.clone());
    assert_eq!(output, Some(prost_types::value::Kind::NumberValue(10.0)), "toolz, installed by the preamble");
    assert!(total.image.as_ref().is_some_and(|i| i.digest.starts_with("sha256:")), "{total:?}");
    assert_eq!(
        string_output(&task(&run, "where").outputs, "Output"),
        "/usr/bin/python3 True",
        "the image's own Python and its kfp, not the host's"
    );
    platform.stop().await;
}

/// A wheel of `highwind-local-probe` 1.0 (a module holding `GREETING`) in a new directory, as a local package
/// directory holds it.
fn local_package_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "highwind_local_probe/__init__.py": b"GREETING = 'from the local package directory'\n",
    "highwind_local_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: highwind-local-probe\nVersion: 1.0\n",
    "highwind_local_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: highwind-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(
    f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
    for name, data in files.items()
) + "highwind_local_probe-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/highwind_local_probe-1.0-py3-none-any.whl", "w") as wheel:
    for name, data in files.items():
        wheel.writestr(name, data)
    wheel.writestr("highwind_local_probe-1.0.dist-info/RECORD", record)
"#;
    let made = std::process::Command::new("python3").args(["-c", script]).arg(dir.path()).output().expect("python3");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // Steps run as uids of their own: the directory is for everyone to read, as an administrator would make it.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn packages_come_from_the_configured_package_directory_in_an_image_without_network_and_on_the_host() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(layout) = python_image() else { return };
    let packages = local_package_dir();
    let package_dir = packages.path().to_path_buf();
    let platform = Platform::builder()
        .embedded_registry()
        .configure(move |options| options.package_dir = package_dir)
        .start()
        .await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let image = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());
    let pushed = push(&layout, "v1", &image, &platform.api_key("alice").await, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    let version = push_with_image(&platform, "alice", "p_local_packages.yaml", &image).await;

    // In its image with no network at all: the preamble installs from the directory alone.
    let run = pb::Run { image_mode: pb::ImageMode::Image as i32, allow_network: false, ..run_of(&version, &[]) };
    let created = create(&platform, "alice", run).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    let log = log_of(&platform, "alice", &format!("{}/tasks/greet", run.name), false).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?}: {log}", run.error);
    assert_eq!(string_output(&task(&run, "greet").outputs, "Output"), "from the local package directory");

    // On the host the package is installed beside the host's Python from the same directory.
    if kfp_path().is_some() {
        let run = pb::Run { image_mode: pb::ImageMode::Host as i32, ..run_of(&version, &[]) };
        let created = create(&platform, "alice", run).await.expect("create");
        let (_, run) = watch(&platform, "alice", &created.name).await;
        assert_eq!(state(&run), pb::RunState::Succeeded, "{:?} {:#?}", run.error, run.tasks);
        let greet = task(&run, "greet");
        assert_eq!(string_output(&greet.outputs, "Output"), "from the local package directory");
        assert!(greet.state_message.contains("highwind-local-probe==1.0 installed for it"), "{}", greet.state_message);
    }
    platform.stop().await;
}
