//! Access to assets follows use cases, end to end through the gateway on SQLite and PostgreSQL: a seller publishes
//! a release pinning a dataset and a model; a buyer finds it, acquires it, reads the pinned versions' files and
//! forks it; a stranger can do none of it; members read what their use case links until they are removed; and
//! after the listing is withdrawn the buyer still reads what was acquired.
//!
//! Grants reach asset-svc through usecase-svc's outbox, so a new or revoked grant shows after a moment: the
//! checks below wait for it (up to 10 s) instead of sleeping a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{future::Future, time::Duration};

use highwind_proto::{asset::v1 as apb, usecase::v1 as pb};
use tonic::Code;

use crate::support::Platform;

on_both_backends!(
    buyers_read_what_they_acquired_strangers_nothing,
    members_read_linked_assets_until_they_are_removed,
    only_owners_share_what_they_linked_themselves,
);

const DATA: &[u8] = b"rooms,price\n3,100\n";
const WEIGHTS_V1: &[u8] = b"weights v1";
const WEIGHTS_V2: &[u8] = b"weights v2";

/// Waits until `check` holds, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Seller {
    dataset: String,
    model: String,
    use_case: pb::UseCase,
    release: pb::Release,
}

/// Alice's dataset (version 1) and model (version 1), a use case pinning the dataset and following the model's
/// `latest`, and release 1.
async fn alices_use_case(platform: &Platform) -> Seller {
    let dataset = platform.push_version("alice", None, DATA).await;
    let model = platform.create_asset("alice", apb::AssetKind::Model).await;
    platform.push_version("alice", Some(&model), WEIGHTS_V1).await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice
        .create_use_case(pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase {
                display_name: "House price prediction".into(),
                description: "California housing".into(),
                model_card: "## Model\nGradient boosting.".into(),
                price: Some(pb::Money { currency_code: "USD".into(), units: 20, nanos: 0 }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for (asset, role, version) in [
        (&dataset, pb::AssetLinkRole::Dataset, pb::asset_link::Version::PinnedVersionNumber(1)),
        (&model, pb::AssetLinkRole::Model, pb::asset_link::Version::Alias("latest".into())),
    ] {
        let link =
            pb::AssetLink { asset: asset.clone(), role: role as i32, version: Some(version), ..Default::default() };
        alice
            .create_asset_link(pb::CreateAssetLinkRequest {
                parent: use_case.name.clone(),
                asset_link: Some(link),
                request_id: String::new(),
            })
            .await
            .expect("link");
    }
    let release = alice
        .create_release(pb::CreateReleaseRequest {
            parent: use_case.name.clone(),
            release: Some(pb::Release::default()),
            request_id: String::new(),
        })
        .await
        .expect("release")
        .into_inner();
    Seller { dataset, model, use_case, release }
}

async fn readable(platform: &Platform, user: &str, version: &str, expected: &[u8]) -> bool {
    platform.read_file(user, version, "train.csv").await.is_ok_and(|content| content == expected)
}

async fn hidden(platform: &Platform, user: &str, version: &str) -> bool {
    let read = platform.read_file(user, version, "train.csv").await;
    let get =
        platform.assets(Some(user)).await.get_asset_version(apb::GetAssetVersionRequest { name: version.into() }).await;
    matches!((read, get), (Err(r), Err(g)) if r.code() == Code::NotFound && g.code() == Code::NotFound)
}

async fn buyers_read_what_they_acquired_strangers_nothing(platform: Platform) {
    let seller = alices_use_case(&platform).await;
    let (dataset_v1, model_v1, model_v2) = (
        format!("{}/versions/1", seller.dataset),
        format!("{}/versions/1", seller.model),
        format!("{}/versions/2", seller.model),
    );
    let mut alice = platform.use_cases(Some("alice")).await;
    let listing = alice
        .publish_use_case(pb::PublishUseCaseRequest {
            name: seller.use_case.name.clone(),
            release: seller.release.name.clone(),
            etag: String::new(),
        })
        .await
        .expect("publish")
        .into_inner()
        .listing
        .unwrap();

    let mut bob_market = platform.marketplace(Some("bob")).await;
    assert!(hidden(&platform, "bob", &dataset_v1).await, "nothing is readable before acquiring");
    let found = bob_market
        .search_listings(pb::SearchListingsRequest { query: "house".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .listings;
    assert_eq!(found.iter().map(|l| &l.name).collect::<Vec<_>>(), [&listing.name]);
    let entitlement = bob_market
        .acquire_listing(pb::AcquireListingRequest { name: listing.name.clone(), ..Default::default() })
        .await
        .expect("acquire")
        .into_inner();
    eventually("bob reads the acquired dataset", || readable(&platform, "bob", &dataset_v1, DATA)).await;
    eventually("bob reads the acquired model", || readable(&platform, "bob", &model_v1, WEIGHTS_V1)).await;
    let asset =
        platform.assets(Some("bob")).await.get_asset(apb::GetAssetRequest { name: seller.dataset.clone() }).await;
    assert_eq!(asset.expect("a buyer sees the asset").into_inner().owner, "users/alice");

    platform.push_version("alice", Some(&seller.model), WEIGHTS_V2).await;
    assert!(readable(&platform, "alice", &model_v2, WEIGHTS_V2).await);
    assert!(hidden(&platform, "bob", &model_v2).await, "a buyer reads what the release pins, not newer versions");

    let fork = bob_market
        .fork_release(pb::ForkReleaseRequest { release: seller.release.name.clone(), ..Default::default() })
        .await
        .expect("the buyer forks")
        .into_inner();
    assert_eq!((fork.owner.as_str(), fork.forked_from_release.as_str()), ("users/bob", seller.release.name.as_str()));
    let links = platform
        .use_cases(Some("bob"))
        .await
        .list_asset_links(pb::ListAssetLinksRequest { parent: fork.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .asset_links;
    let mut pinned: Vec<_> = links.iter().map(|l| (l.asset.clone(), l.version.clone())).collect();
    pinned.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (seller.dataset.clone(), Some(pb::asset_link::Version::PinnedVersionNumber(1))),
        (seller.model.clone(), Some(pb::asset_link::Version::PinnedVersionNumber(1))),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(pinned, expected, "the fork pins the release's exact versions");

    // What bob bought is his to read, not to share or resell: members of his fork read only what he owns.
    let bobs_data = platform.push_version("bob", None, b"bob's own rows").await;
    let mut bob = platform.use_cases(Some("bob")).await;
    bob.create_asset_link(pb::CreateAssetLinkRequest {
        parent: fork.name.clone(),
        asset_link: Some(pb::AssetLink {
            asset: bobs_data.clone(),
            role: pb::AssetLinkRole::App as i32,
            version: Some(pb::asset_link::Version::PinnedVersionNumber(1)),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("bob links his own dataset");
    bob.create_member(pb::CreateMemberRequest {
        parent: fork.name.clone(),
        member: Some(pb::Member {
            principal: "users/erin".into(),
            role: pb::MemberRole::Viewer as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("bob adds erin");
    let bobs_v1 = format!("{bobs_data}/versions/1");
    eventually("erin reads bob's own dataset", || readable(&platform, "erin", &bobs_v1, b"bob's own rows")).await;
    assert!(hidden(&platform, "erin", &dataset_v1).await, "the fork does not pass on alice's dataset");
    assert!(hidden(&platform, "erin", &model_v1).await, "nor her model");
    let resale = bob
        .create_release(pb::CreateReleaseRequest {
            parent: fork.name.clone(),
            release: Some(pb::Release::default()),
            request_id: String::new(),
        })
        .await
        .expect("bob releases his fork")
        .into_inner();
    let refused = bob
        .publish_use_case(pb::PublishUseCaseRequest {
            name: fork.name.clone(),
            release: resale.name.clone(),
            etag: String::new(),
        })
        .await
        .expect_err("alice's assets are not bob's to sell");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let mut subjects: Vec<_> = tonic_types::StatusExt::get_details_precondition_failure(&refused)
        .expect("precondition failure")
        .violations
        .into_iter()
        .map(|v| v.subject)
        .collect();
    subjects.sort();
    let mut alices = vec![dataset_v1.clone(), model_v1.clone()];
    alices.sort();
    assert_eq!(subjects, alices);

    let mut carol_market = platform.marketplace(Some("carol")).await;
    for version in [&dataset_v1, &model_v1, &model_v2] {
        assert!(hidden(&platform, "carol", version).await, "a stranger reads nothing: {version}");
    }
    let stranger_fork = carol_market
        .fork_release(pb::ForkReleaseRequest { release: seller.release.name.clone(), ..Default::default() })
        .await;
    assert_eq!(stranger_fork.expect_err("no fork").code(), Code::NotFound);
    let stranger_release = platform
        .use_cases(Some("carol"))
        .await
        .get_release(pb::GetReleaseRequest { name: seller.release.name.clone() })
        .await;
    assert_eq!(stranger_release.expect_err("no release").code(), Code::NotFound);
    let stranger_entitlement =
        carol_market.get_entitlement(pb::GetEntitlementRequest { name: entitlement.name.clone() }).await;
    assert_eq!(stranger_entitlement.expect_err("not theirs").code(), Code::NotFound);

    alice
        .unpublish_use_case(pb::UnpublishUseCaseRequest { name: seller.use_case.name.clone(), etag: String::new() })
        .await
        .expect("unpublish");
    let gone = carol_market.acquire_listing(pb::AcquireListingRequest { name: listing.name, ..Default::default() });
    assert_eq!(gone.await.expect_err("withdrawn").code(), Code::NotFound);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(readable(&platform, "bob", &dataset_v1, DATA).await, "the buyer keeps the dataset after unpublishing");
    assert!(readable(&platform, "bob", &model_v1, WEIGHTS_V1).await, "and the model");
    platform.stop().await;
}

async fn members_read_linked_assets_until_they_are_removed(platform: Platform) {
    let seller = alices_use_case(&platform).await;
    platform.push_version("alice", Some(&seller.model), WEIGHTS_V2).await;
    let dataset_v1 = format!("{}/versions/1", seller.dataset);
    let model_latest = format!("{}/versions/latest", seller.model);
    assert!(hidden(&platform, "dave", &dataset_v1).await);

    let mut alice = platform.use_cases(Some("alice")).await;
    let member = alice
        .create_member(pb::CreateMemberRequest {
            parent: seller.use_case.name.clone(),
            member: Some(pb::Member {
                principal: "users/dave".into(),
                role: pb::MemberRole::Viewer as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("add a viewer")
        .into_inner();
    eventually("the viewer reads the pinned dataset", || readable(&platform, "dave", &dataset_v1, DATA)).await;
    eventually("the viewer follows the model's latest", || readable(&platform, "dave", &model_latest, WEIGHTS_V2))
        .await;
    let not_linked = platform.push_version("alice", None, b"private").await;
    assert!(hidden(&platform, "dave", &format!("{not_linked}/versions/1")).await, "only what is linked");
    let write = platform
        .assets(Some("dave"))
        .await
        .update_asset(apb::UpdateAssetRequest {
            asset: Some(apb::Asset { name: seller.dataset.clone(), display_name: "mine".into(), ..Default::default() }),
            update_mask: None,
        })
        .await;
    assert_eq!(write.expect_err("reading is not writing").code(), Code::PermissionDenied);
    let list = apb::ListAssetVersionsRequest { parent: seller.dataset.clone(), ..Default::default() };
    let listed = platform.assets(Some("dave")).await.list_asset_versions(list).await.expect_err("owner only");
    assert_eq!(listed.code(), Code::PermissionDenied);
    assert!(
        listed.message().contains("may list its versions") && !listed.message().contains("change"),
        "a reader is told listing versions is for the owner, not that he tried a change: {:?}",
        listed.message()
    );

    let mut forged = highwind_proto::asset::internal::v1::grant_service_client::GrantServiceClient::with_interceptor(
        platform.channel().await,
        crate::support::Bearer(Some(platform.token("dave"))),
    );
    let grant_myself = highwind_proto::asset::internal::v1::ReplaceGrantsRequest {
        source: seller.use_case.name.clone(),
        sequence: i64::MAX,
        principals: vec!["users/dave".into()],
        targets: vec![highwind_proto::asset::internal::v1::GrantTarget {
            asset: not_linked.clone(),
            version_number: 0,
        }],
    };
    let refused = forged.replace_grants(grant_myself).await.expect_err("internal, not routed by the gateway");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    alice
        .delete_member(pb::DeleteMemberRequest { name: member.name, etag: String::new() })
        .await
        .expect("remove the viewer");
    eventually("the removed member reads nothing", || hidden(&platform, "dave", &dataset_v1)).await;
    eventually("nor the model", || hidden(&platform, "dave", &model_latest)).await;
    platform.stop().await;
}

async fn member(platform: &Platform, owner: &str, use_case: &str, principal: &str, role: pb::MemberRole) -> pb::Member {
    let request = pb::CreateMemberRequest {
        parent: use_case.into(),
        member: Some(pb::Member { principal: principal.into(), role: role as i32, ..Default::default() }),
        request_id: String::new(),
    };
    platform.use_cases(Some(owner)).await.create_member(request).await.expect("add member").into_inner()
}

async fn link(platform: &Platform, user: &str, use_case: &str, asset: &str, role: pb::AssetLinkRole) -> pb::AssetLink {
    let link = pb::AssetLink {
        asset: asset.into(),
        role: role as i32,
        version: Some(pb::asset_link::Version::Alias("latest".into())),
        ..Default::default()
    };
    let request =
        pb::CreateAssetLinkRequest { parent: use_case.into(), asset_link: Some(link), request_id: String::new() };
    platform.use_cases(Some(user)).await.create_asset_link(request).await.expect("link").into_inner()
}

async fn release_and_publish(platform: &Platform, user: &str, use_case: &str) -> Result<pb::Listing, tonic::Status> {
    let mut client = platform.use_cases(Some(user)).await;
    let release = pb::CreateReleaseRequest { parent: use_case.into(), release: None, request_id: String::new() };
    let release = client.create_release(release).await.expect("release").into_inner();
    let publish = pb::PublishUseCaseRequest { name: use_case.into(), release: release.name, etag: String::new() };
    client.publish_use_case(publish).await.map(|r| r.into_inner().listing.unwrap())
}

async fn only_owners_share_what_they_linked_themselves(platform: Platform) {
    let seller = alices_use_case(&platform).await;
    let dataset_v1 = format!("{}/versions/1", seller.dataset);
    let listing = release_and_publish(&platform, "alice", &seller.use_case.name).await.expect("alice sells");
    let mut bob_market = platform.marketplace(Some("bob")).await;
    let acquire = |name: &str| pb::AcquireListingRequest { name: name.into(), ..Default::default() };
    bob_market.acquire_listing(acquire(&listing.name)).await.expect("bob buys");
    eventually("bob reads what he bought", || readable(&platform, "bob", &dataset_v1, DATA)).await;

    // Bob links alice's dataset into his own use case and makes alice an editor there without asking her:
    // nothing of hers is passed on, and it cannot be sold.
    let mut bob = platform.use_cases(Some("bob")).await;
    let mine = bob
        .create_use_case(pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase {
                display_name: "Resale".into(),
                description: "Alice's data, again".into(),
                model_card: "## Model".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    link(&platform, "bob", &mine.name, &seller.dataset, pb::AssetLinkRole::Dataset).await;
    let bobs_data = platform.push_version("bob", None, b"bob's rows").await;
    link(&platform, "bob", &mine.name, &bobs_data, pb::AssetLinkRole::App).await;
    member(&platform, "bob", &mine.name, "users/alice", pb::MemberRole::Editor).await;
    member(&platform, "bob", &mine.name, "users/erin", pb::MemberRole::Viewer).await;
    let bobs_v1 = format!("{bobs_data}/versions/1");
    eventually("erin reads bob's own data", || readable(&platform, "erin", &bobs_v1, b"bob's rows")).await;
    assert!(hidden(&platform, "erin", &dataset_v1).await, "alice's dataset is not bob's to share");
    let resale = release_and_publish(&platform, "bob", &mine.name).await.expect_err("not bob's to sell");
    assert_eq!(resale.code(), Code::FailedPrecondition);

    // Carol edits alice's use case and links her own dataset: its viewers read it until she is demoted.
    member(&platform, "alice", &seller.use_case.name, "users/carol", pb::MemberRole::Editor).await;
    let carols = platform.push_version("carol", None, b"carol's rows").await;
    link(&platform, "carol", &seller.use_case.name, &carols, pb::AssetLinkRole::App).await;
    member(&platform, "alice", &seller.use_case.name, "users/dave", pb::MemberRole::Viewer).await;
    let carols_v1 = format!("{carols}/versions/1");
    eventually("dave reads carol's dataset", || readable(&platform, "dave", &carols_v1, b"carol's rows")).await;
    let listing = release_and_publish(&platform, "alice", &seller.use_case.name).await.expect("carol's data is shared");
    let mut alice = platform.use_cases(Some("alice")).await;
    let members = alice
        .list_members(pb::ListMembersRequest {
            parent: seller.use_case.name.clone(),
            filter: "principal = \"users/carol\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    let demote =
        pb::Member { name: members[0].name.clone(), role: pb::MemberRole::Viewer as i32, ..Default::default() };
    alice
        .update_member(pb::UpdateMemberRequest {
            member: Some(demote),
            update_mask: Some(prost_types::FieldMask { paths: vec!["role".into()] }),
        })
        .await
        .expect("demote carol");
    eventually("a demoted editor's dataset is no longer passed on", || hidden(&platform, "dave", &carols_v1)).await;
    let mut erin_market = platform.marketplace(Some("erin")).await;
    let refused = erin_market.acquire_listing(acquire(&listing.name)).await.expect_err("carol no longer shares it");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // Archiving withdraws the listing; buyers keep what they bought.
    alice
        .delete_use_case(pb::DeleteUseCaseRequest { name: seller.use_case.name.clone(), etag: String::new() })
        .await
        .expect("archive");
    let gone = erin_market.get_listing(pb::GetListingRequest { name: listing.name.clone() }).await;
    assert_eq!(gone.expect_err("withdrawn").code(), Code::NotFound);
    let kept = bob_market.get_listing(pb::GetListingRequest { name: listing.name.clone() }).await.expect("buyer");
    assert_eq!(kept.into_inner().state, pb::ListingState::Withdrawn as i32);
    assert!(readable(&platform, "bob", &dataset_v1, DATA).await);
    platform.stop().await;
}
