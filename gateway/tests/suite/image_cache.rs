//! The images steps run in, as their users and the platform's administrator meet them: the image's `User` resolved
//! in the image's own `/etc/passwd` (a name it does not list fails the step before anything runs, naming it), and
//! `highwind image pull | ls | prune` over the executor's store: anyone pulls what their own steps could run in,
//! only the administrator (the first dev user) lists or prunes everyone's images.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use highwind_runtime::testing::{Entry, LayoutBuilder};

use crate::{
    steps_in_images::push_with_image,
    support::{
        Platform, highwind,
        registry::{available, busybox, push},
        runs::{create, run_of, sandbox_available, state, task, watch},
    },
};

/// alice's Docker Repo asset holding two busybox images that name their user: `v1` one its `/etc/passwd` lists
/// (`app`), `v2` one it does not (`ghost`); their references.
async fn images_with_users(platform: &Platform, busybox: &[u8]) -> (String, String) {
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let repository = format!("{registry}/highwind/alice/{}", asset.strip_prefix("assets/").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let layer = layout.layer(&[
        Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 },
        Entry::Symlink { path: "bin/true", target: "busybox" },
        Entry::File {
            path: "etc/passwd",
            content: b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
            mode: 0o644,
        },
        Entry::File { path: "etc/group", content: b"root:x:0:\napp:x:1000:\n", mode: 0o644 },
    ]);
    let key = platform.api_key("alice").await;
    let mut references = Vec::new();
    for (tag, user) in [("v1", "app"), ("v2", "ghost")] {
        let config = serde_json::json!({"Env": ["PATH=/bin"], "User": user});
        let image = layout.image("linux/amd64", std::slice::from_ref(&layer), config);
        layout.tag(tag, &image);
        let reference = format!("{repository}:{tag}");
        let pushed = push(layout.path(), tag, &reference, &key, false).await;
        assert!(pushed.ok, "{}", pushed.output);
        references.push(reference);
    }
    (references.remove(0), references.remove(0))
}

/// What a `highwind` command printed, both streams.
fn said(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[tokio::test]
async fn the_images_user_is_resolved_in_the_image_and_the_store_is_pulled_listed_and_pruned_by_who_may() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(busybox) = busybox() else { return };
    let platform = Platform::builder().embedded_registry().start().await;
    let (named, ghost) = images_with_users(&platform, &busybox).await;

    // A user the image lists: the step runs, and the task records who the image said (the process itself runs as
    // a task uid of its own).
    let version = push_with_image(&platform, "alice", "n_trivial.yaml", &named).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Succeeded, "{:?} {:#?}", run.error, run.tasks);
    let image = task(&run, "nothing").image.clone().expect("its image");
    assert_eq!(image.user, "1000:1000 (app)", "{image:?}");

    // A user it does not list fails the step before anything runs, naming the user and the image.
    let version = push_with_image(&platform, "alice", "n_trivial.yaml", &ghost).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    assert_eq!(state(&run), pb::RunState::Failed);
    let step = task(&run, "nothing");
    let error = step.error.clone().expect("a reason");
    assert_eq!((error.code, error.reason.as_str()), (tonic::Code::FailedPrecondition as i32, "IMAGE_USER_UNKNOWN"));
    assert!(error.message.contains("ghost") && error.message.contains(&ghost), "{error:?}");
    assert!(step.exit_code.is_none(), "nothing ran: {step:?}");

    // Pulling: bob may not pull alice's image, and learns nothing of it; alice finds both cached by her runs.
    let bob = highwind(&platform, &platform.token("bob"), &["image", "pull", &named]).await;
    assert!(!bob.status.success() && said(&bob).contains("NotFound"), "{}", said(&bob));
    let alice = highwind(&platform, &platform.token("alice"), &["image", "pull", &named]).await;
    assert!(alice.status.success(), "{}", said(&alice));
    assert!(said(&alice).contains("already cached") && said(&alice).contains(&image.digest), "{}", said(&alice));

    // Listing and pruning are the administrator's (alice, the first dev user): bob is refused and nothing goes.
    for command in ["ls", "prune"] {
        let refused = highwind(&platform, &platform.token("bob"), &["image", command]).await;
        assert!(!refused.status.success() && said(&refused).contains("PermissionDenied"), "{}", said(&refused));
    }
    let listed = highwind(&platform, &platform.token("alice"), &["image", "ls"]).await;
    let table = said(&listed);
    assert!(listed.status.success(), "{table}");
    let repository = named.rsplit_once(':').unwrap().0;
    assert!(table.contains(repository) && table.contains(&image.digest[..19]), "{table}");
    assert!(table.contains("2 images"), "both images alice's runs used: {table}");
    let pruned = highwind(&platform, &platform.token("alice"), &["image", "prune"]).await;
    assert!(pruned.status.success() && said(&pruned).contains("2 images removed"), "{}", said(&pruned));
    let roots = std::fs::read_dir(platform.dir.path().join("images/roots")).unwrap().count();
    assert_eq!(roots, 0, "the unpacked roots are gone from the data directory");
    let listed = highwind(&platform, &platform.token("alice"), &["image", "ls"]).await;
    assert!(said(&listed).contains("0 images"), "{}", said(&listed));

    // Pulled again on demand, and a run after it starts from the cache.
    let alice = highwind(&platform, &platform.token("alice"), &["image", "pull", &named]).await;
    assert!(alice.status.success() && said(&alice).contains("(pulled,"), "{}", said(&alice));
    let version = push_with_image(&platform, "alice", "n_trivial.yaml", &named).await;
    let created = create(&platform, "alice", run_of(&version, &[])).await.expect("create");
    let (_, run) = watch(&platform, "alice", &created.name).await;
    let source = task(&run, "nothing").image.as_ref().map(|i| i.source());
    assert_eq!(source, Some(pb::task_image::Source::Cached));

    // A reference that is no reference is the caller's mistake, named as such.
    let mut client = pb::image_cache_service_client::ImageCacheServiceClient::with_interceptor(
        platform.channel().await,
        crate::support::Bearer(Some(platform.token("alice"))),
    );
    for reference in ["", "UPPER/Case:tag", &"x".repeat(2_000)] {
        let status = client
            .pull_image(pb::PullImageRequest { reference: reference.to_owned() })
            .await
            .expect_err("not an image reference");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{reference}: {status:?}");
        let fields = crate::support::field_violations(&status);
        assert_eq!(fields.first().map(|(field, _)| field.as_str()), Some("reference"), "{status:?}");
    }
    platform.stop().await;
}
