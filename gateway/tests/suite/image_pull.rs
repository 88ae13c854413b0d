//! The image runtime pulls from the platform's own registry as a user would: with the user's API key, through the
//! registry's token challenge and the platform's token endpoint, so the same access rule decides (the owner pulls,
//! a stranger is refused); an index gives its linux/amd64 image, and its layers unpack into a root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::asset::v1 as apb;
use highwind_runtime::{
    reference::ImageRef,
    registry::{Credentials, Endpoint, PullError, RegistryClient},
    testing::{Entry, LayoutBuilder},
    unpack::Limits,
};

use crate::support::{
    Platform,
    registry::{available, push},
};

/// The platform's registry as a pull sees it: its token realm is the gateway's, on another port of the same
/// host, so it is named as a realm the credentials may go to.
fn endpoint(platform: &Platform, registry: &str, credentials: Credentials) -> Endpoint {
    Endpoint {
        url: format!("http://{registry}"),
        credentials,
        token_realms: vec![format!("{}/registry/token", platform.url())],
    }
}

#[tokio::test]
async fn an_image_pulled_from_the_platforms_registry_unpacks_for_those_allowed_to_pull_it() {
    if !available() {
        return;
    }
    let platform = Platform::builder().embedded_registry().start().await;
    let registry = platform.standalone.registry_addr.clone().expect("the embedded registry runs");
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let repository = format!("highwind/alice/{}", asset.strip_prefix("assets/").unwrap());

    // A two-layer amd64 image beside an arm64 one, under one index, pushed by its owner.
    let dir = tempfile::tempdir().unwrap();
    let mut layout = LayoutBuilder::new(&dir.path().join("layout"));
    let base = layout.layer(&[
        Entry::File { path: "etc/image-only.txt", content: b"from the image\n", mode: 0o644 },
        Entry::File { path: "old.txt", content: b"old", mode: 0o644 },
    ]);
    let top = layout.layer(&[
        Entry::File { path: ".wh.old.txt", content: b"", mode: 0o644 },
        Entry::File { path: "usr/local/bin/only-in-image", content: b"#!/bin/sh\necho hi\n", mode: 0o755 },
    ]);
    let amd64 = layout.image("linux/amd64", &[base, top], serde_json::json!({"Cmd": ["only-in-image"]}));
    let arm64 = layout.image("linux/arm64", &[], serde_json::json!({}));
    let index = layout.index(&[("linux/arm64", &arm64), ("linux/amd64", &amd64)]);
    layout.tag("multi", &index);
    let alice_key = platform.api_key("alice").await;
    let pushed = push(layout.path(), "multi", &format!("{registry}/{repository}:v1"), &alice_key, true).await;
    assert!(pushed.ok, "{}", pushed.output);

    let client = RegistryClient::new().unwrap();
    let alice_credentials = Credentials::Basic { user: "highwind".into(), password: alice_key };
    // Without naming the realm, the key is not sent to another origin: the registry then refuses.
    let unnamed = Endpoint { token_realms: Vec::new(), ..endpoint(&platform, &registry, alice_credentials.clone()) };
    let alice = endpoint(&platform, &registry, alice_credentials);
    let image = ImageRef::parse(&format!("{registry}/{repository}:v1")).unwrap();
    assert!(matches!(client.resolve(&unnamed, &image).await, Err(PullError::Denied(_))));
    assert_eq!(client.resolve(&alice, &image).await.expect("resolved").digest, amd64.digest);
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let pulled = client.pull(&alice, &image, &dir.path().join("scratch"), &root, &Limits::default()).await;
    let pulled = pulled.expect("the owner pulls");
    assert_eq!(pulled.manifest, amd64.digest, "the index's linux/amd64 image");
    assert_eq!(pulled.config.cmd, ["only-in-image"]);
    assert_eq!(std::fs::read_to_string(root.join("etc/image-only.txt")).unwrap(), "from the image\n");
    assert!(root.join("usr/local/bin/only-in-image").exists() && !root.join("old.txt").exists());

    // Pinned by digest, the same image.
    let pinned = ImageRef::parse(&format!("{registry}/{repository}@{}", amd64.digest)).unwrap();
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let pulled = client.pull(&alice, &pinned, &dir.path().join("scratch2"), &again, &Limits::default()).await;
    assert_eq!(pulled.expect("by digest").manifest, amd64.digest);

    // A stranger with a key of their own, and nobody at all, are refused by the same client that holds alice's
    // token (a token is never used with other credentials); nothing is unpacked for them.
    let bob_key = platform.api_key("bob").await;
    let bob = endpoint(&platform, &registry, Credentials::Basic { user: "highwind".into(), password: bob_key });
    let anonymous = endpoint(&platform, &registry, Credentials::Anonymous);
    for (who, refused_endpoint) in [("bob", bob), ("anonymous", anonymous)] {
        let root = dir.path().join(format!("root-{who}"));
        std::fs::create_dir(&root).unwrap();
        let scratch = dir.path().join(format!("scratch-{who}"));
        let error = client.resolve(&refused_endpoint, &image).await.unwrap_err();
        assert!(matches!(error, PullError::Denied(_) | PullError::NotFound(_)), "{who}: {error}");
        let error = client.pull(&refused_endpoint, &image, &scratch, &root, &Limits::default()).await.unwrap_err();
        assert!(matches!(error, PullError::Denied(_) | PullError::NotFound(_)), "{who}: {error}");
        assert!(std::fs::read_dir(&root).unwrap().next().is_none(), "{who}: nothing unpacked");
    }
    platform.stop().await;
}
