//! Docker Repo images with the registry `highwind standalone` starts (Debian's `docker-registry`): the owner pushes
//! amd64, arm64 and multi-arch images with the `skopeo` command `GetPushCommands` gives; every pushed digest
//! becomes an asset version (learned from the registry's notification); `ListImages` shows each tag's platforms,
//! URIs and whether it can be deployed; deleting a tag names the tags that went with it; strangers see nothing;
//! notifications without the registry's secret, or about pushes that never happened, record nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{
    asset::v1::{self as apb, image_service_client::ImageServiceClient},
    usecase::v1 as upb,
};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};
use tonic_types::StatusExt;

use crate::support::{
    Bearer, Platform,
    registry::{Descriptor, Layout, available, inspect},
};

async fn images(platform: &Platform, user: &str) -> ImageServiceClient<InterceptedService<Channel, Bearer>> {
    ImageServiceClient::with_interceptor(platform.channel().await, Bearer(Some(platform.token(user))))
}

/// Runs `command` (a line GetPushCommands gave) with `HIGHWIND_API_KEY` set, pushing from `layout` instead of a
/// docker daemon (none runs here).
async fn run_push_command(command: &str, layout: &Layout, reference: &str, key: &str) -> (bool, String) {
    let source = command.split_whitespace().find(|w| w.starts_with("docker-daemon:")).expect("a daemon source");
    let command = command.replace(source, &format!("oci:{}:{reference}", layout.path().display()));
    let command = command.replacen("skopeo ", "skopeo --insecure-policy ", 1);
    let output =
        tokio::process::Command::new("sh").arg("-c").arg(&command).env("HIGHWIND_API_KEY", key).output().await.unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

async fn versions(platform: &Platform, asset: &str) -> Vec<apb::AssetVersion> {
    let mut assets = platform.assets(Some("alice")).await;
    let request = apb::ListAssetVersionsRequest { parent: asset.into(), page_size: 100, ..Default::default() };
    assets.list_asset_versions(request).await.unwrap().into_inner().asset_versions
}

#[tokio::test]
async fn owner_pushes_three_images_each_becomes_a_version_and_list_images_tells_them_apart() {
    if !available() {
        return;
    }
    let platform = Platform::builder().embedded_registry().start().await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let asset_id = asset.strip_prefix("assets/").unwrap();
    let repository = format!("highwind/alice/{asset_id}");

    // The asset shows where its images live.
    let mut assets = platform.assets(Some("alice")).await;
    let shown = assets.get_asset(apb::GetAssetRequest { name: asset.clone() }).await.unwrap().into_inner();
    let Some(apb::asset::Details::DockerRepo(details)) = shown.details else { panic!("no repository: {shown:?}") };
    assert_eq!(details.registry, registry);
    assert_eq!(details.repository, repository);
    assert_eq!(details.image_uri_prefix, format!("{registry}/{repository}"));

    // Push commands, for the owner only; bad tags refused naming the field.
    let mut client = images(&platform, "alice").await;
    let commands = |tag: &str| apb::GetPushCommandsRequest { parent: asset.clone(), tag: tag.into() };
    let amd64_commands = client.get_push_commands(commands("v1-amd64")).await.unwrap().into_inner();
    assert_eq!(amd64_commands.image_uri, format!("{registry}/{repository}:v1-amd64"));
    assert!(
        amd64_commands.login_command.contains("--password-stdin") && amd64_commands.login_command.contains(&registry)
    );
    assert!(amd64_commands.build_command.contains("--platform linux/amd64"));
    assert!(amd64_commands.push_command.ends_with(&amd64_commands.image_uri));
    assert!(!amd64_commands.skopeo_command.contains(&platform.token("alice")), "no secret in the commands");
    for bad in [".hidden", "a/b", &"t".repeat(129)] {
        let refused = client.get_push_commands(commands(bad)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(refused.get_details_bad_request().unwrap().field_violations[0].field, "tag");
    }
    let mut bobs = images(&platform, "bob").await;
    assert_eq!(bobs.get_push_commands(commands("v1")).await.unwrap_err().code(), Code::NotFound);

    // Three images: amd64, arm64 and an index of both.
    let mut layout = Layout::new();
    let amd64 = layout.image("linux/amd64", "amd64 weights");
    let arm64 = layout.image("linux/arm64/v8", "arm64 weights");
    let index = layout.index(&[("linux/amd64", amd64.clone()), ("linux/arm64/v8", arm64.clone())]);
    layout.tag("amd64", &amd64);
    layout.tag("arm64", &arm64);
    layout.tag("multi", &index);
    let key = platform.api_key("alice").await;
    for (tag, reference) in [("v1-amd64", "amd64"), ("v1-arm64", "arm64"), ("v1-multi", "multi")] {
        let line = client.get_push_commands(commands(tag)).await.unwrap().into_inner().skopeo_command;
        let line = if reference == "multi" {
            line.replacen("skopeo copy", "skopeo copy --all --preserve-digests", 1)
        } else {
            line
        };
        let (ok, output) = run_push_command(&line, &layout, reference, &key).await;
        assert!(ok, "{tag}: {output}");
    }

    // The registry's notifications made a version of each digest, without anyone listing images.
    let started = std::time::Instant::now();
    let recorded = loop {
        let recorded = versions(&platform, &asset).await;
        if recorded.len() >= 3 || started.elapsed() > Duration::from_secs(30) {
            break recorded;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_digest = |d: &Descriptor| recorded.iter().find(|v| v.manifest_digest == d.digest).cloned();
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    for (descriptor, tag) in [(&amd64, "v1-amd64"), (&arm64, "v1-arm64"), (&index, "v1-multi")] {
        let version = by_digest(descriptor).unwrap_or_else(|| panic!("no version of {tag}"));
        let Some(apb::lineage::Source::RegistryPush(push)) = version.lineage.and_then(|l| l.source) else {
            panic!("{tag}: not a registry push")
        };
        assert_eq!(push.tag, tag);
        assert_eq!(push.pusher, "users/alice", "{tag}: the pusher the registry's event named");
        assert_eq!(version.state, apb::VersionState::Ready as i32);
    }
    let multi = by_digest(&index).unwrap().image.unwrap();
    assert_eq!(multi.deployable_digest, amd64.digest, "an index deploys its amd64 image");
    let arm = by_digest(&arm64).unwrap().image.unwrap();
    assert!(arm.deployable_digest.is_empty() && arm.not_deployable_reason.contains("linux/amd64"));

    // ListImages: every tag with platforms, URIs, sizes, the recording version; nothing recorded twice.
    let listed = client
        .list_images(apb::ListImagesRequest { parent: asset.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(listed.len(), 3);
    let image = |tag: &str| listed.iter().find(|i| i.tag == tag).unwrap().clone();
    assert_eq!(image("v1-amd64").platforms, ["linux/amd64"]);
    assert_eq!(image("v1-arm64").platforms, ["linux/arm64/v8"]);
    assert_eq!(image("v1-multi").platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert!(image("v1-amd64").deployable && image("v1-multi").deployable);
    assert!(!image("v1-arm64").deployable);
    assert!(image("v1-arm64").not_deployable_reason.contains("found linux/arm64/v8"));
    for i in &listed {
        assert_eq!(i.image_uri, format!("{registry}/{repository}:{}", i.tag));
        assert_eq!(i.pinned_image_uri, format!("{registry}/{repository}@{}", i.digest));
        assert!(i.compressed_size_bytes > 0, "{}", i.tag);
        assert_eq!(i.create_time.as_ref().map(|t| t.seconds), Some(1_767_323_045), "{}: config created", i.tag);
        assert!(i.version.starts_with(&format!("{asset}/versions/")));
    }
    assert_eq!(image("v1-multi").media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(versions(&platform, &asset).await.len(), 3, "listing records nothing twice");
    let paged = client
        .list_images(apb::ListImagesRequest { parent: asset.clone(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paged.images.len(), 2);
    let rest = client
        .list_images(apb::ListImagesRequest { parent: asset.clone(), page_size: 2, page_token: paged.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.images.len(), 1);
    assert!(rest.next_page_token.is_empty());

    // A stranger sees nothing and pulls nothing; the owner pulls.
    let listing = apb::ListImagesRequest { parent: asset.clone(), ..Default::default() };
    assert_eq!(bobs.list_images(listing).await.unwrap_err().code(), Code::NotFound);
    assert!(!inspect(&image("v1-amd64").image_uri, &platform.token("bob")).await.ok);
    assert!(inspect(&image("v1-amd64").image_uri, &key).await.ok);

    // A use case may serve the amd64 image (or the index) as its PREDICTOR, never the arm64 one.
    let amd64_version = by_digest(&amd64).unwrap().version_number;
    let arm64_version = by_digest(&arm64).unwrap().version_number;
    let mut alice_cases = platform.use_cases(Some("alice")).await;
    let use_case = alice_cases
        .create_use_case(upb::CreateUseCaseRequest {
            use_case: Some(upb::UseCase {
                display_name: "Image classifier".into(),
                description: "Serves the amd64 image".into(),
                model_card: "## Model
A classifier."
                    .into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let predictor = |number: i64| upb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(upb::AssetLink {
            asset: asset.clone(),
            role: upb::AssetLinkRole::Predictor as i32,
            version: Some(upb::asset_link::Version::PinnedVersionNumber(number)),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let refused = alice_cases.create_asset_link(predictor(arm64_version)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.get_details_error_info().unwrap().reason, "IMAGE_NOT_DEPLOYABLE");
    assert!(refused.message().contains("linux/amd64"), "{}", refused.message());
    alice_cases.create_asset_link(predictor(amd64_version)).await.expect("the amd64 image serves");
    let release = alice_cases
        .create_release(upb::CreateReleaseRequest {
            parent: use_case.name.clone(),
            release: Some(upb::Release::default()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let listing = alice_cases
        .publish_use_case(upb::PublishUseCaseRequest {
            name: use_case.name.clone(),
            release: release.name,
            etag: String::new(),
        })
        .await
        .expect("publish")
        .into_inner()
        .listing
        .unwrap();

    // A buyer pulls the pinned image but pushes nothing; a stranger still gets nothing.
    let amd64_uri = image("v1-amd64").image_uri;
    assert!(!inspect(&amd64_uri, &platform.token("bob")).await.ok, "nothing before buying");
    platform
        .marketplace(Some("bob"))
        .await
        .acquire_listing(upb::AcquireListingRequest { name: listing.name, ..Default::default() })
        .await
        .expect("bob buys");
    let started = std::time::Instant::now();
    while !inspect(&amd64_uri, &platform.token("bob")).await.ok {
        assert!(started.elapsed() < Duration::from_secs(30), "the buyer never could pull");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bob_key = platform.api_key("bob").await;
    let bob_push = client.get_push_commands(commands("bob")).await.unwrap().into_inner().skopeo_command;
    let (pushed, output) = run_push_command(&bob_push, &layout, "amd64", &bob_key).await;
    assert!(!pushed, "a buyer pushed: {output}");
    assert!(!inspect(&amd64_uri, &platform.token("carol")).await.ok, "a stranger pulled");
    assert!(!inspect(&amd64_uri, &platform.api_key("carol").await).await.ok, "a stranger pulled with a key");

    // Notifications: without the registry's secret refused; with it, a push that never happened records nothing.
    let events = format!("{}/registry/events", platform.url());
    let forged = serde_json::json!({"events": [{
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": repository,
                   "digest": format!("sha256:{}", "f".repeat(64)), "tag": "evil"},
        "actor": {"name": "users/mallory"},
    }]});
    let http = reqwest::Client::new();
    let anonymous = http.post(&events).json(&forged).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = http.post(&events).header("x-highwind-registry-secret", "guess").json(&forged).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let config = std::fs::read_to_string(platform.dir.path().join("registry/config.yml")).unwrap();
    let secret = config.split("X-Highwind-Registry-Secret: [\"").nth(1).unwrap().split('"').next().unwrap();
    let heard = http.post(&events).header("x-highwind-registry-secret", secret).json(&forged).send().await.unwrap();
    assert_eq!(heard.status().as_u16(), 200);
    assert_eq!(versions(&platform, &asset).await.len(), 3, "the event's own claims are never recorded");

    // A buyer lists only what their release pins (pulling other tags is the registry's repository-wide grant).
    let bobs_images = bobs
        .list_images(apb::ListImagesRequest { parent: asset.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(bobs_images.iter().map(|i| i.tag.as_str()).collect::<Vec<_>>(), ["v1-amd64"]);

    // An image a multi-platform index includes cannot be deleted from under it.
    let pusher = client.clone();
    let push_as = |tag: &str| {
        let (mut client, request) = (pusher.clone(), commands(tag));
        async move { client.get_push_commands(request).await }
    };
    let stable = push_as("stable").await.unwrap().into_inner().skopeo_command;
    let (ok, output) = run_push_command(&stable, &layout, "amd64", &key).await;
    assert!(ok, "{output}");
    let delete = |tag: &str| apb::DeleteImageTagRequest { parent: asset.clone(), tag: tag.into() };
    let refused = client.delete_image_tag(delete("stable")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "IMAGE_IN_USE");
    assert!(inspect(&image("v1-multi").image_uri, &key).await.ok, "the index still pulls");

    // An image a use case pins cannot be deleted either (here: pinned as the TRANSFORMER, bob a viewer).
    let pinned_image = layout.image("linux/amd64", "a transformer");
    layout.tag("pinned", &pinned_image);
    let line = push_as("pinned").await.unwrap().into_inner().skopeo_command;
    let (ok, output) = run_push_command(&line, &layout, "pinned", &key).await;
    assert!(ok, "{output}");
    let started = std::time::Instant::now();
    let pinned_version = loop {
        if let Some(v) =
            versions(&platform, &asset).await.into_iter().find(|v| v.manifest_digest == pinned_image.digest)
        {
            break v.version_number;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the pinned push was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let transformer = upb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(upb::AssetLink {
            asset: asset.clone(),
            role: upb::AssetLinkRole::Transformer as i32,
            version: Some(upb::asset_link::Version::PinnedVersionNumber(pinned_version)),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    alice_cases.create_asset_link(transformer).await.expect("link the transformer");
    let member = upb::CreateMemberRequest {
        parent: use_case.name.clone(),
        member: Some(upb::Member {
            principal: "users/dave".into(),
            role: upb::MemberRole::Viewer as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    alice_cases.create_member(member).await.expect("dave joins");
    let mut daves = images(&platform, "dave").await;
    let started = std::time::Instant::now();
    loop {
        let listed = daves.list_images(apb::ListImagesRequest { parent: asset.clone(), ..Default::default() }).await;
        if listed.is_ok_and(|l| l.into_inner().images.iter().any(|i| i.tag == "pinned")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the pin never reached asset-svc");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client.delete_image_tag(delete("pinned")).await.unwrap_err();
    assert_eq!(refused.get_details_error_info().unwrap().reason, "IMAGE_IN_USE");
    assert!(refused.message().contains("pins"), "{}", refused.message());

    // Deleting a tag deletes its digest and says which other tags went with it.
    let solo = layout.image("linux/amd64", "another model");
    layout.tag("solo", &solo);
    for tag in ["solo", "solo-too"] {
        let line = push_as(tag).await.unwrap().into_inner().skopeo_command;
        let (ok, output) = run_push_command(&line, &layout, "solo", &key).await;
        assert!(ok, "{output}");
    }
    let deleted = client.delete_image_tag(delete("solo")).await.unwrap().into_inner();
    assert_eq!(deleted.digest, solo.digest);
    assert_eq!(deleted.also_removed_tags, ["solo-too"]);
    let left =
        client.list_images(apb::ListImagesRequest { parent: asset.clone(), ..Default::default() }).await.unwrap();
    let mut tags: Vec<String> = left.into_inner().images.into_iter().map(|i| i.tag).collect();
    tags.sort();
    assert_eq!(tags, ["pinned", "stable", "v1-amd64", "v1-arm64", "v1-multi"]);
    let missing = client.delete_image_tag(delete("solo")).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);

    // An alias that now names an arm64 image cannot serve either.
    let newer_arm = layout.image("linux/arm64/v8", "newer arm64 weights");
    layout.tag("arm-new", &newer_arm);
    let line = push_as("arm-new").await.unwrap().into_inner().skopeo_command;
    let (ok, output) = run_push_command(&line, &layout, "arm-new", &key).await;
    assert!(ok, "{output}");
    let started = std::time::Instant::now();
    while !versions(&platform, &asset).await.iter().any(|v| v.manifest_digest == newer_arm.digest) {
        assert!(started.elapsed() < Duration::from_secs(30), "the arm-new push was never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_alias = upb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(upb::AssetLink {
            asset: asset.clone(),
            role: upb::AssetLinkRole::Transformer as i32,
            version: Some(upb::asset_link::Version::Alias("latest".into())),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let refused = alice_cases.create_asset_link(by_alias).await.unwrap_err();
    assert_eq!(refused.get_details_error_info().unwrap().reason, "IMAGE_NOT_DEPLOYABLE");

    // A deleted (archived) asset takes no more pushes; its images stay readable to its owner.
    let late = push_as("late").await.unwrap().into_inner().skopeo_command;
    assets.delete_asset(apb::DeleteAssetRequest { name: asset.clone(), ..Default::default() }).await.unwrap();
    let (pushed, output) = run_push_command(&late, &layout, "amd64", &key).await;
    assert!(!pushed, "pushed into an archived asset: {output}");
    assert!(inspect(&image("v1-amd64").image_uri, &key).await.ok);
}
