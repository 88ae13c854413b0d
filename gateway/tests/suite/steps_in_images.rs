//! Pipeline steps run in their own image, with no container engine: a busybox image built here and pushed to a
//! Docker Repo asset gives a step a file and a tool the host does not have, its environment and working directory,
//! and its entrypoint when the step names no command; the step sees only its own run under a neutral path. Its
//! creator's access decides: another user's run cannot use the image, and nothing runs. In HOST mode the same step
//! runs on the host's system, with a note that says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gateway::standalone::RegistryMode;
use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use highwind_runtime::testing::{Entry, LayoutBuilder};
use pipeline_svc::executor::images::ImageMode;

use crate::support::{
    Platform,
    registry::{available, push},
    runs::{create, run_of, sample, sandbox_available, state, string_output, task, task_state, watch},
};

/// The placeholder image of the `l_image` sample.
const PLACEHOLDER: &str = "highwind-test-image.invalid/busybox:v1";

/// Debian's statically linked busybox (`busybox-static`): the one program of the test image.
fn busybox() -> Option<Vec<u8>> {
    let found = ["/usr/bin/busybox", "/bin/busybox"].iter().find_map(|path| std::fs::read(path).ok());
    let required = std::env::var("HIGHWIND_REQUIRE_REGISTRY").is_ok_and(|v| v == "1");
    assert!(found.is_some() || !required, "HIGHWIND_REQUIRE_REGISTRY=1 but busybox is not installed (busybox-static)");
    if found.is_none() {
        eprintln!("skipped: busybox is not installed (apt-get install busybox-static)");
    }
    found
}

/// A platform whose steps run as `mode` says, with alice's busybox image pushed to a Docker Repo asset of hers;
/// the platform and the image's reference.
async fn platform_with_image(mode: ImageMode, busybox: &[u8]) -> (Platform, String) {
    let platform = Platform::builder()
        .registry(([127, 0, 0, 1], 0).into(), RegistryMode::Embedded(([127, 0, 0, 1], 0).into()))
        .configure(move |options| options.image_mode = mode)
        .start()
        .await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let reference = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());

    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let applets: Vec<String> = ["sh", "cat", "echo", "ls", "pwd", "wc"].iter().map(|a| format!("bin/{a}")).collect();
    let mut entries = vec![
        Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 },
        Entry::File { path: "etc/image-only.txt", content: b"a file only the image has\n", mode: 0o644 },
        Entry::File {
            path: "usr/local/bin/only-in-image",
            content: b"#!/bin/sh\necho a tool only the image has\n",
            mode: 0o755,
        },
        Entry::Dir { path: "work/space" },
    ];
    entries.extend(applets.iter().map(|path| Entry::Symlink { path, target: "busybox" }));
    let layer = layout.layer(&entries);
    let config = serde_json::json!({
        "Env": ["PATH=/usr/local/bin:/bin", "FROM_IMAGE_ENV=set by the image"],
        "WorkingDir": "/work/space",
        "Entrypoint": ["/bin/sh", "-c", "echo from the entrypoint > \"$0\""],
    });
    let image = layout.image("linux/amd64", &[layer], config);
    layout.tag("v1", &image);
    let key = platform.api_key("alice").await;
    let pushed = push(layout.path(), "v1", &reference, &key, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    (platform, reference)
}

/// A pipeline asset of `user` holding the `l_image` sample with its steps' image set to `image`; its version.
async fn push_image_pipeline(platform: &Platform, user: &str, image: &str) -> String {
    let yaml = String::from_utf8(sample("l_image.yaml")).unwrap().replace(PLACEHOLDER, image);
    let asset = platform.create_asset(user, apb::AssetKind::Pipeline).await;
    let version = platform.commit_files(user, &asset, &[("pipeline.yaml", yaml.into_bytes())]).await.expect("commit");
    format!("{asset}/versions/{}", version.version_number)
}

#[tokio::test]
async fn a_step_runs_in_its_image_for_those_who_may_pull_it_and_on_the_host_only_when_asked() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(busybox) = busybox() else { return };
    let (platform, image) = platform_with_image(ImageMode::Auto, &busybox).await;

    let version = push_image_pipeline(&platform, "alice", &image).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?} {:#?}", run.error, run.tasks);
    let seen = string_output(&task(&run, "from-image").outputs, "seen");
    assert_eq!(
        seen, "a file only the image has\na tool only the image has\nenv=set by the image\ncwd=/work/space\nruns=1\n",
        "the image's files, tools, environment and working directory; only this run under the neutral root"
    );
    let note = &task(&run, "from-image").state_message;
    assert!(note.contains(&image) && note.contains("sha256:"), "the task says which image ran: {note}");
    let said = string_output(&task(&run, "entrypoint-only").outputs, "said");
    assert_eq!(said, "from the entrypoint\n", "no command: the image's entrypoint runs the step's arguments");

    // Bob may not pull alice's image: his run of the same pipeline fails on it, and nothing ran.
    let bobs = push_image_pipeline(&platform, "bob", &image).await;
    let created = create(&platform, "bob", run_of(&bobs, &[])).await.expect("create");
    let (_, run) = watch(&platform, "bob", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    let refused = task(&run, "from-image");
    assert_eq!(task_state(refused), pb::RunState::Failed);
    let error = refused.error.as_ref().expect("a reason");
    assert_eq!(error.code, tonic::Code::NotFound as i32, "{error:?}");
    assert!(error.message.contains(&image), "the reason names the image: {error:?}");
    assert!(refused.exit_code.is_none(), "no process ran: {refused:?}");
    platform.stop().await;

    // In HOST mode the same step runs on the host's system, which has neither the file nor the tool: the note says
    // so, and the step still sees its directory under the neutral root, not the platform's data directory.
    let (platform, image) = platform_with_image(ImageMode::Host, &busybox).await;
    let version = push_image_pipeline(&platform, "alice", &image).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    let on_host = task(&run, "from-image");
    assert!(on_host.state_message.contains("runs on the host"), "{}", on_host.state_message);
    let seen = string_output(&on_host.outputs, "seen");
    assert!(!seen.contains("only the image has") && seen.contains("env=\n"), "the host's view: {seen}");
    assert!(seen.contains("cwd=/highwind/runs/") && seen.contains("runs=1\n"), "{seen}");
    platform.stop().await;
}
