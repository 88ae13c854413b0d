//! `AssetLink.resolved_version` through the gateway, on SQLite and PostgreSQL: a link that follows an alias shows
//! the version the alias names now, a pinned link its own version, and a link whose alias names nothing usable shows
//! nothing while staying readable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::{asset::v1 as apb, usecase::v1 as pb};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::support::{Bearer, Platform};

type Client = pb::use_case_service_client::UseCaseServiceClient<InterceptedService<Channel, Bearer>>;

on_both_backends!(links_resolve_to_what_their_alias_names_now);

fn follow(
    parent: &str,
    asset: &str,
    role: pb::AssetLinkRole,
    version: pb::asset_link::Version,
) -> pb::CreateAssetLinkRequest {
    pb::CreateAssetLinkRequest {
        parent: parent.into(),
        asset_link: Some(pb::AssetLink {
            asset: asset.into(),
            role: role as i32,
            version: Some(version),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// The `resolved_version` of each of `links` as GetAssetLink shows it, checking ListAssetLinks shows the same.
async fn resolved_versions(client: &mut Client, parent: &str, links: &[&pb::AssetLink]) -> Vec<String> {
    let request = pb::ListAssetLinksRequest { parent: parent.into(), ..Default::default() };
    let listed = client.list_asset_links(request).await.expect("list").into_inner().asset_links;
    let mut resolved = Vec::new();
    for link in links {
        let got = client.get_asset_link(pb::GetAssetLinkRequest { name: link.name.clone() }).await.expect("get");
        let got = got.into_inner().resolved_version;
        let in_list = listed.iter().find(|l| l.name == link.name).expect("listed");
        assert_eq!(in_list.resolved_version, got, "GetAssetLink and ListAssetLinks agree on {}", link.name);
        resolved.push(got);
    }
    resolved
}

async fn links_resolve_to_what_their_alias_names_now(platform: Platform) {
    use pb::asset_link::Version::{Alias, PinnedVersionNumber as Pinned};
    let dataset = platform.push_version("alice", None, b"v1").await;
    platform.push_version("alice", Some(&dataset), b"v2").await;
    let pinned_dataset = platform.push_version("alice", None, b"other rows").await;
    let mut assets = platform.assets(Some("alice")).await;
    let set_alias = |number: i64| apb::SetVersionAliasRequest {
        name: format!("{dataset}/versions/{number}"),
        alias: "production".into(),
        protected: false,
    };
    assets.set_version_alias(set_alias(1)).await.expect("production is version 1");

    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = pb::UseCase { display_name: "resolved".into(), ..Default::default() };
    let use_case = alice
        .create_use_case(pb::CreateUseCaseRequest { use_case: Some(use_case), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
        .name;
    let production = alice
        .create_asset_link(follow(&use_case, &dataset, pb::AssetLinkRole::Dataset, Alias("production".into())))
        .await
        .expect("follow production")
        .into_inner();
    assert_eq!(production.resolved_version, format!("{dataset}/versions/1"));
    let latest = alice
        .create_asset_link(follow(&use_case, &dataset, pb::AssetLinkRole::App, Alias("latest".into())))
        .await
        .expect("follow latest")
        .into_inner();
    assert_eq!(latest.resolved_version, format!("{dataset}/versions/2"));
    let pinned = alice
        .create_asset_link(follow(&use_case, &pinned_dataset, pb::AssetLinkRole::Dataset, Pinned(1)))
        .await
        .expect("pin")
        .into_inner();
    assert_eq!(pinned.resolved_version, format!("{pinned_dataset}/versions/1"));

    let links = [&production, &latest, &pinned];

    // The alias moves and a new version comes: the links follow, the pin stays.
    assets.set_version_alias(set_alias(2)).await.expect("production is version 2");
    platform.push_version("alice", Some(&dataset), b"v3").await;
    let (v2, v3, pin) =
        (format!("{dataset}/versions/2"), format!("{dataset}/versions/3"), format!("{pinned_dataset}/versions/1"));
    assert_eq!(resolved_versions(&mut alice, &use_case, &links).await, [v2.as_str(), v3.as_str(), pin.as_str()]);

    // An alias on an archived version, then no alias at all: nothing resolves, and the link is still there.
    let archive = apb::DeleteAssetVersionRequest { name: v2.clone() };
    assets.delete_asset_version(archive).await.expect("archive version 2");
    assert_eq!(resolved_versions(&mut alice, &use_case, &links).await, ["", v3.as_str(), pin.as_str()]);
    let unset = apb::DeleteVersionAliasRequest { asset: dataset.clone(), alias: "production".into() };
    assets.delete_version_alias(unset).await.expect("remove production");
    assert_eq!(resolved_versions(&mut alice, &use_case, &links).await, ["", v3.as_str(), pin.as_str()]);

    // Swapping answers with what the new selector names now.
    let swap = pb::SwapAssetLinkRequest {
        name: pinned.name.clone(),
        version: Some(pb::swap_asset_link_request::Version::Alias("latest".into())),
        ..Default::default()
    };
    let swapped = alice.swap_asset_link(swap).await.expect("swap to latest").into_inner();
    assert_eq!(swapped.resolved_version, pin, "latest of a one-version dataset");
    platform.stop().await;
}
