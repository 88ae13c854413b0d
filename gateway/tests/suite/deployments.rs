//! A use case deployed on this machine, as its owner and its members meet it: a predictor image built here
//! (busybox's `httpd` answering the Open Inference Protocol's readiness path) pushed to a Docker Repo asset,
//! linked as PREDICTOR, released and deployed; the deployment becomes READY with KServe's conditions, runs the
//! model under its inference id, comes back after the server restarts, and is gone once deleted. Who: the owner
//! deploys and deletes, a viewer reads, a stranger learns nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{
    asset::v1::{self as apb, image_service_client::ImageServiceClient},
    deployment::v1::{self as dpb, deployment_service_client::DeploymentServiceClient},
    usecase::v1 as upb,
};
use highwind_runtime::testing::{Entry, LayoutBuilder};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

use gateway::standalone::RegistryMode;

use crate::support::{
    Bearer, Platform, field_violations, highwind, processes_of,
    registry::{available, busybox, push},
    runs::sandbox_available,
};

type Deployments = DeploymentServiceClient<InterceptedService<Channel, Bearer>>;

async fn deployments(platform: &Platform, user: &str) -> Deployments {
    DeploymentServiceClient::with_interceptor(platform.channel().await, Bearer(Some(platform.token(user))))
}

/// alice's Docker Repo asset holding a predictor that serves `/v2/health/ready` answering with its arguments;
/// its version 1.
async fn predictor_image(platform: &Platform, busybox: &[u8]) -> (String, String) {
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let reference = format!("{registry}/highwind/alice/{}:v1", asset.strip_prefix("assets/").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let mut entries = vec![Entry::File { path: "bin/busybox", content: busybox, mode: 0o755 }];
    let applets: Vec<String> = ["sh", "httpd", "mkdir", "echo"].iter().map(|a| format!("bin/{a}")).collect();
    entries.extend(applets.iter().map(|path| Entry::Symlink { path, target: "busybox" }));
    let layer = layout.layer(&entries);
    // The container's args (`--model_name ID`) arrive as the script's arguments, as KServe's servers take them.
    let script = "echo serving \"$*\" && mkdir -p $HOME/www/v2/health && echo \"$@\" > $HOME/www/v2/health/ready \
                  && exec httpd -f -p 127.0.0.1:8080 -h $HOME/www";
    let config = serde_json::json!({"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh", "-c", script, "predictor"]});
    let image = layout.image("linux/amd64", &[layer], config);
    layout.tag("v1", &image);
    let pushed = push(layout.path(), "v1", &reference, &platform.api_key("alice").await, false).await;
    assert!(pushed.ok, "{}", pushed.output);
    // Listing the images records the pushed one as a version.
    let mut images =
        ImageServiceClient::with_interceptor(platform.channel().await, Bearer(Some(platform.token("alice"))));
    images.list_images(apb::ListImagesRequest { parent: asset.clone(), ..Default::default() }).await.expect("list");
    let version = format!("{asset}/versions/1");
    (asset, version)
}

/// alice's use case with `predictor` linked as PREDICTOR and carol as a viewer; the use case and its release.
async fn released_use_case(platform: &Platform, predictor: &str) -> (String, String) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice
        .create_use_case(upb::CreateUseCaseRequest {
            use_case: Some(upb::UseCase { display_name: "Iris".into(), ..Default::default() }),
            request_id: String::new(),
        })
        .await
        .expect("use case")
        .into_inner()
        .name;
    let link = upb::AssetLink {
        asset: predictor.into(),
        role: upb::AssetLinkRole::Predictor as i32,
        version: Some(upb::asset_link::Version::PinnedVersionNumber(1)),
        ..Default::default()
    };
    let request =
        upb::CreateAssetLinkRequest { parent: use_case.clone(), asset_link: Some(link), request_id: String::new() };
    alice.create_asset_link(request).await.expect("link");
    let viewer =
        upb::Member { principal: "users/carol".into(), role: upb::MemberRole::Viewer as i32, ..Default::default() };
    let request =
        upb::CreateMemberRequest { parent: use_case.clone(), member: Some(viewer), request_id: String::new() };
    alice.create_member(request).await.expect("viewer");
    let request = upb::CreateReleaseRequest { parent: use_case.clone(), release: None, request_id: String::new() };
    let release = alice.create_release(request).await.expect("release").into_inner().name;
    (use_case, release)
}

/// Gets `name` until it is no longer STARTING (at most 60 s).
async fn settled(client: &mut Deployments, name: &str) -> dpb::Deployment {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = client.get_deployment(dpb::GetDeploymentRequest { name: name.into() }).await.expect("get");
        let found = found.into_inner();
        if found.state() != dpb::deployment::State::Starting || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn request(use_case: &str, release: &str, replicas: i32) -> dpb::CreateDeploymentRequest {
    dpb::CreateDeploymentRequest {
        deployment: Some(dpb::Deployment {
            use_case: use_case.into(),
            release: release.into(),
            replicas,
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_released_use_case_is_deployed_by_its_owner_seen_by_its_members_and_nobody_else() {
    if !available() || !sandbox_available() {
        return;
    }
    let Some(busybox) = busybox() else { return };
    let platform = Platform::builder().embedded_registry().start().await;
    let (asset, version) = predictor_image(&platform, &busybox).await;
    let (use_case, release) = released_use_case(&platform, &asset).await;

    // The owner deploys it as a user would, `highwind deploy --wait` (the newest release): READY with KServe's
    // conditions, the image pinned by digest.
    let deployed = highwind(&platform, &platform.token("alice"), &["deploy", &use_case, "--wait"]).await;
    let said = String::from_utf8_lossy(&deployed.stdout).into_owned() + &String::from_utf8_lossy(&deployed.stderr);
    assert!(deployed.status.success(), "{said}");
    let name = said.lines().next().expect("the deployment's name").trim().to_owned();
    assert!(said.contains(&format!("{name} READY (1/1 replicas ready) of {release}")), "{said}");
    let mut alice = deployments(&platform, "alice").await;
    let created = alice.get_deployment(dpb::GetDeploymentRequest { name }).await.expect("get").into_inner();
    assert_eq!(created.name, format!("deployments/{}", created.inference_id));
    assert!(created.inference_id.len() == 8 && created.inference_id.starts_with(|c: char| c.is_ascii_lowercase()));
    assert_eq!((created.replicas, created.creator.as_str()), (1, "users/alice"));
    let predictor = created.predictor.clone().expect("the predictor");
    assert_eq!(predictor.asset_version, version);
    assert!(predictor.image.contains("@sha256:"), "pinned: {}", predictor.image);
    let ready = settled(&mut alice, &created.name).await;
    assert_eq!(ready.state(), dpb::deployment::State::Ready, "{ready:?}");
    let types: Vec<(&str, &str)> = ready.conditions.iter().map(|c| (c.r#type.as_str(), c.status.as_str())).collect();
    assert_eq!(types, [("PredictorReady", "True"), ("Ready", "True")]);
    assert_eq!(ready.ready_replicas, 1);

    // Its owner reads what it wrote: it serves the model under its inference id.
    let logs = highwind(&platform, &platform.token("alice"), &["deployment", "logs", &created.name]).await;
    let said = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(logs.status.success(), "{}", String::from_utf8_lossy(&logs.stderr));
    assert!(said.contains(&format!("serving --model_name {}", created.inference_id)), "{said}");
    let tail = dpb::StreamDeploymentLogsRequest { name: created.name.clone(), tail_bytes: 9, ..Default::default() };
    let mut chunks = alice.stream_deployment_logs(tail).await.expect("tail").into_inner();
    let mut last = Vec::new();
    while let Some(chunk) = chunks.message().await.expect("a chunk") {
        last.extend_from_slice(&chunk.data);
    }
    assert_eq!(last, said.as_bytes()[said.len() - 9..], "the last bytes only");
    let beyond = dpb::StreamDeploymentLogsRequest { name: created.name.clone(), replica: 1, ..Default::default() };
    let status = alice.stream_deployment_logs(beyond).await.expect_err("one replica");
    assert!(field_violations(&status).iter().any(|(f, _)| f == "replica"), "{status:?}");

    // Members see it; a viewer may not undeploy or read its logs; a stranger learns nothing of it or the use case.
    let mut carol = deployments(&platform, "carol").await;
    let seen = carol.get_deployment(dpb::GetDeploymentRequest { name: created.name.clone() }).await.expect("viewer");
    assert_eq!(seen.into_inner().state(), dpb::deployment::State::Ready);
    let listed =
        carol.list_deployments(dpb::ListDeploymentsRequest { use_case: use_case.clone() }).await.expect("list");
    assert_eq!(listed.into_inner().deployments.len(), 1);
    let refused = carol.delete_deployment(dpb::DeleteDeploymentRequest { name: created.name.clone() }).await;
    assert_eq!(refused.expect_err("a viewer").code(), Code::PermissionDenied);
    let refused = carol.create_deployment(request(&use_case, &release, 1)).await;
    assert_eq!(refused.expect_err("a viewer").code(), Code::PermissionDenied);
    let logs = dpb::StreamDeploymentLogsRequest { name: created.name.clone(), ..Default::default() };
    let refused = carol.stream_deployment_logs(logs).await;
    assert_eq!(refused.expect_err("a viewer").code(), Code::PermissionDenied);
    let mut bob = deployments(&platform, "bob").await;
    let status = bob.get_deployment(dpb::GetDeploymentRequest { name: created.name.clone() }).await.expect_err("bob");
    assert_eq!(status.code(), Code::NotFound);
    let status = bob.create_deployment(request(&use_case, &release, 1)).await.expect_err("bob");
    assert_eq!(status.code(), Code::NotFound);
    let status =
        bob.list_deployments(dpb::ListDeploymentsRequest { use_case: use_case.clone() }).await.expect_err("bob");
    assert_eq!(status.code(), Code::NotFound);
    let refused = highwind(&platform, &platform.token("bob"), &["deploy", &use_case, "--release", "1"]).await;
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success() && said.contains("NotFound"), "{said}");

    // Bad requests name their field and change nothing.
    for (bad, field) in [
        (request("useCases", &release, 1), "deployment.use_case"),
        (request(&use_case, "useCases/other/releases/1", 1), "deployment.release"),
        (request(&use_case, &release, 9), "deployment.replicas"),
    ] {
        let status = alice.create_deployment(bad).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(field_violations(&status).iter().any(|(f, _)| f == field), "{field}: {status:?}");
    }
    for name in ["deployments/ABCDEFGH", "deployments/../etc", "deployments/a/b"] {
        let status = alice.get_deployment(dpb::GetDeploymentRequest { name: name.into() }).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
    }
    let listed = highwind(&platform, &platform.token("alice"), &["deployment", "ls", &use_case]).await;
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(table.lines().count(), 2, "a header and the one deployment: nothing more was deployed: {table}");
    assert!(table.contains(&created.name) && table.contains("READY"), "{table}");

    // Live links deploy too: the version the PREDICTOR link resolves to now, pinned as a release would pin it.
    let live = alice.create_deployment(request(&use_case, "", 0)).await.expect("live links").into_inner();
    assert_eq!(live.release, "", "no release: the live links");
    assert_eq!(live.predictor, created.predictor, "the same version, the same pinned image");
    assert_eq!(settled(&mut alice, &live.name).await.state(), dpb::deployment::State::Ready);

    // A server's replicas end with it; the next one, on the same addresses, starts them again.
    let gateway = platform.standalone.addr;
    let registry = platform.standalone.registry_addr.clone().unwrap().parse().unwrap();
    let dir = platform.stop().await;
    let platform = Platform::builder().in_dir(dir).registry(gateway, RegistryMode::Embedded(registry)).start().await;
    let mut alice = deployments(&platform, "alice").await;
    for name in [&created.name, &live.name] {
        let again = settled(&mut alice, name).await;
        assert_eq!(again.state(), dpb::deployment::State::Ready, "both serve again: {again:?}");
    }

    // Watched: as it is, then the stream's end once it is deleted.
    let watch = dpb::WatchDeploymentRequest { name: created.name.clone() };
    let mut watching = alice.watch_deployment(watch).await.expect("watch").into_inner();
    let first = watching.message().await.expect("a message").expect("the deployment");
    assert_eq!(first.state(), dpb::deployment::State::Ready);

    // Undeployed: gone, and no process of it is left.
    let removed = highwind(&platform, &platform.token("alice"), &["deployment", "rm", &created.name]).await;
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let status =
        alice.get_deployment(dpb::GetDeploymentRequest { name: created.name.clone() }).await.expect_err("gone");
    assert_eq!(status.code(), Code::NotFound);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watching.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without saying why"),
                Err(status) => break status,
            }
        }
    });
    assert_eq!(ended.await.expect("the watch ends").code(), Code::NotFound, "the watcher hears it was deleted");
    let marker = format!("{}-predictor-0", created.inference_id);
    assert!(processes_of(&marker).is_empty(), "no replica process is left");
    platform.stop().await;
}
