//! `request_id` on the use-case RPCs that create something inside a use case (CreateMember, CreateAssetLink,
//! CreateRelease), through the gateway on SQLite and PostgreSQL: a retry returns what the first call made, keys are
//! each caller's own per use case, and a bad key is refused as CreateUseCase refuses it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::{asset::v1 as apb, usecase::v1 as pb};
use prost_types::FieldMask;
use tonic::Code;

use crate::support::{Platform, field_violations};

on_both_backends!(
    a_retried_create_member_returns_the_first_member,
    a_retried_create_asset_link_returns_the_first_link,
    a_retried_create_release_returns_the_first_release,
    request_ids_are_checked_as_create_use_case_checks_them,
);

/// A new use case of `user`'s; its name.
async fn new_use_case(platform: &Platform, user: &str, display_name: &str) -> String {
    let use_case = pb::UseCase { display_name: display_name.into(), ..Default::default() };
    let request = pb::CreateUseCaseRequest { use_case: Some(use_case), request_id: String::new() };
    platform.use_cases(Some(user)).await.create_use_case(request).await.expect("create").into_inner().name
}

fn add(parent: &str, principal: &str, role: pb::MemberRole, request_id: &str) -> pb::CreateMemberRequest {
    pb::CreateMemberRequest {
        parent: parent.into(),
        member: Some(pb::Member { principal: principal.into(), role: role as i32, ..Default::default() }),
        request_id: request_id.into(),
    }
}

fn link(
    parent: &str,
    asset: &str,
    role: pb::AssetLinkRole,
    pinned: i64,
    request_id: &str,
) -> pb::CreateAssetLinkRequest {
    pb::CreateAssetLinkRequest {
        parent: parent.into(),
        asset_link: Some(pb::AssetLink {
            asset: asset.into(),
            role: role as i32,
            version: Some(pb::asset_link::Version::PinnedVersionNumber(pinned)),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

fn release(parent: &str, description: &str, request_id: &str) -> pb::CreateReleaseRequest {
    pb::CreateReleaseRequest {
        parent: parent.into(),
        release: Some(pb::Release { description: description.into(), ..Default::default() }),
        request_id: request_id.into(),
    }
}

async fn principals(platform: &Platform, use_case: &str) -> Vec<String> {
    let request = pb::ListMembersRequest { parent: use_case.into(), ..Default::default() };
    let page = platform.use_cases(Some("alice")).await.list_members(request).await.expect("list").into_inner();
    page.members.into_iter().map(|m| m.principal).collect()
}

async fn a_retried_create_member_returns_the_first_member(platform: Platform) {
    let use_case = new_use_case(&platform, "alice", "team").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let first = alice
        .create_member(add(&use_case, "users/carol", pb::MemberRole::Viewer, "add-carol"))
        .await
        .expect("add carol")
        .into_inner();
    let promote = pb::UpdateMemberRequest {
        member: Some(pb::Member { name: first.name.clone(), role: pb::MemberRole::Owner as i32, ..Default::default() }),
        update_mask: Some(FieldMask { paths: vec!["role".into()] }),
    };
    alice.update_member(promote).await.expect("promote carol");
    let promoted = alice.get_member(pb::GetMemberRequest { name: first.name.clone() }).await.unwrap().into_inner();
    assert_eq!(promoted.role, pb::MemberRole::Owner as i32);

    // The retry is answered with the membership the first call made, as it is now, instead of ALREADY_EXISTS.
    let retry = alice
        .create_member(add(&use_case, "users/carol", pb::MemberRole::Viewer, "add-carol"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, promoted);
    let unkeyed = alice.create_member(add(&use_case, "users/carol", pb::MemberRole::Viewer, "")).await;
    assert_eq!(unkeyed.expect_err("no key: a second add").code(), Code::AlreadyExists);

    // Another owner's key and another use case are not the first call's.
    let mut carol = platform.use_cases(Some("carol")).await;
    let dave = carol.create_member(add(&use_case, "users/dave", pb::MemberRole::Viewer, "add-carol")).await;
    assert_eq!(dave.expect("carol's own key").into_inner().principal, "users/dave");
    let elsewhere = new_use_case(&platform, "alice", "other team").await;
    let there = alice
        .create_member(add(&elsewhere, "users/carol", pb::MemberRole::Viewer, "add-carol"))
        .await
        .expect("the same key on another use case")
        .into_inner();
    assert_ne!(there.name, first.name);
    assert_eq!(principals(&platform, &use_case).await, ["users/alice", "users/carol", "users/dave"]);
    assert_eq!(principals(&platform, &elsewhere).await, ["users/alice", "users/carol"]);
    platform.stop().await;
}

async fn a_retried_create_asset_link_returns_the_first_link(platform: Platform) {
    let dataset = platform.push_version("alice", None, b"v1").await;
    let use_case = new_use_case(&platform, "alice", "composed").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let first = alice
        .create_asset_link(link(&use_case, &dataset, pb::AssetLinkRole::Dataset, 1, "link-data"))
        .await
        .expect("link")
        .into_inner();

    // Since then the link moved to version 2 and version 1 was archived, so the request alone would now fail.
    platform.push_version("alice", Some(&dataset), b"v2").await;
    let swap = pb::SwapAssetLinkRequest {
        name: first.name.clone(),
        version: Some(pb::swap_asset_link_request::Version::PinnedVersionNumber(2)),
        ..Default::default()
    };
    alice.swap_asset_link(swap).await.expect("swap");
    let swapped =
        alice.get_asset_link(pb::GetAssetLinkRequest { name: first.name.clone() }).await.unwrap().into_inner();
    assert_eq!(swapped.version, Some(pb::asset_link::Version::PinnedVersionNumber(2)));
    let archive = apb::DeleteAssetVersionRequest { name: format!("{dataset}/versions/1") };
    platform.assets(Some("alice")).await.delete_asset_version(archive).await.expect("archive version 1");
    let retry = alice
        .create_asset_link(link(&use_case, &dataset, pb::AssetLinkRole::Dataset, 1, "link-data"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, swapped, "the first call's link as it is now");
    let unkeyed = alice.create_asset_link(link(&use_case, &dataset, pb::AssetLinkRole::Dataset, 2, "")).await;
    assert_eq!(unkeyed.expect_err("no key: a second link").code(), Code::AlreadyExists);

    // Another editor's key and another use case are not the first call's.
    alice.create_member(add(&use_case, "users/carol", pb::MemberRole::Editor, "")).await.expect("add carol");
    let carols = platform.push_version("carol", None, b"carol's rows").await;
    let mut carol = platform.use_cases(Some("carol")).await;
    let hers = carol
        .create_asset_link(link(&use_case, &carols, pb::AssetLinkRole::Dataset, 1, "link-data"))
        .await
        .expect("carol's own key")
        .into_inner();
    assert_eq!((hers.asset.as_str(), hers.creator.as_str()), (carols.as_str(), "users/carol"));
    let elsewhere = new_use_case(&platform, "alice", "other").await;
    let there = alice
        .create_asset_link(link(&elsewhere, &dataset, pb::AssetLinkRole::Dataset, 2, "link-data"))
        .await
        .expect("the same key on another use case")
        .into_inner();
    assert!(there.name.starts_with(&elsewhere), "{there:?}");
    let listed = alice
        .list_asset_links(pb::ListAssetLinksRequest { parent: use_case.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.asset_links, [swapped, hers]);
    platform.stop().await;
}

async fn a_retried_create_release_returns_the_first_release(platform: Platform) {
    let dataset = platform.push_version("alice", None, b"v1").await;
    let use_case = new_use_case(&platform, "alice", "released").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let follow = pb::CreateAssetLinkRequest {
        parent: use_case.clone(),
        asset_link: Some(pb::AssetLink {
            asset: dataset.clone(),
            role: pb::AssetLinkRole::Dataset as i32,
            version: Some(pb::asset_link::Version::Alias("latest".into())),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let followed = alice.create_asset_link(follow).await.expect("link latest").into_inner();
    let first = alice.create_release(release(&use_case, "first", "release-1")).await.expect("release").into_inner();
    assert_eq!((first.release_number, first.links[0].version_number), (1, 1));

    // `latest` moved on and the use case was archived since: the retry still gets the first release, unchanged.
    platform.push_version("alice", Some(&dataset), b"v2").await;
    let retry = alice.create_release(release(&use_case, "first", "release-1")).await.expect("retry").into_inner();
    assert_eq!(retry, first);
    let archive = pb::DeleteUseCaseRequest { name: use_case.clone(), etag: String::new() };
    alice.delete_use_case(archive).await.expect("archive");
    let late = alice.create_release(release(&use_case, "first", "release-1")).await.expect("a late retry");
    assert_eq!(late.into_inner(), first);
    let unkeyed = alice.create_release(release(&use_case, "first", "")).await.expect_err("no key: a new release");
    assert_eq!(unkeyed.code(), Code::FailedPrecondition, "archived: {unkeyed:?}");
    let restore = pb::UndeleteUseCaseRequest { name: use_case.clone(), etag: String::new() };
    alice.undelete_use_case(restore).await.expect("restore");

    // Another editor's key, another use case and another key each make a release of their own. (Without links:
    // carol could read alice's dataset only once the grant reaches asset-svc, a moment after she joins.)
    let unlink = pb::DeleteAssetLinkRequest { name: followed.name, etag: String::new() };
    alice.delete_asset_link(unlink).await.expect("unlink");
    alice.create_member(add(&use_case, "users/carol", pb::MemberRole::Editor, "")).await.expect("add carol");
    let mut carol = platform.use_cases(Some("carol")).await;
    let hers = carol.create_release(release(&use_case, "carol's", "release-1")).await.expect("carol's own key");
    let hers = hers.into_inner();
    assert_eq!((hers.release_number, hers.creator.as_str()), (2, "users/carol"));
    let elsewhere = new_use_case(&platform, "alice", "other").await;
    let there = alice.create_release(release(&elsewhere, "first", "release-1")).await.expect("another use case");
    assert_eq!(there.into_inner().name, format!("{elsewhere}/releases/1"));
    let next = alice.create_release(release(&use_case, "second", "release-2")).await.expect("a new key");
    assert_eq!(next.into_inner().release_number, 3);
    let listed = alice
        .list_releases(pb::ListReleasesRequest { parent: use_case.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    let numbers: Vec<i64> = listed.releases.iter().map(|r| r.release_number).collect();
    assert_eq!(numbers, [3, 2, 1]);
    platform.stop().await;
}

async fn request_ids_are_checked_as_create_use_case_checks_them(platform: Platform) {
    let dataset = platform.push_version("alice", None, b"v1").await;
    let use_case = new_use_case(&platform, "alice", "checked").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let too_long = "k".repeat(129);
    let expected = {
        let request = pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase { display_name: "refused".into(), ..Default::default() }),
            request_id: too_long.clone(),
        };
        let refused = alice.create_use_case(request).await.expect_err("CreateUseCase refuses 129 characters");
        field_violations(&refused)
    };
    assert_eq!(expected.iter().map(|(field, _)| field.as_str()).collect::<Vec<_>>(), ["request_id"]);

    for bad in [too_long.as_str(), "line\nbreak"] {
        let refusals = [
            alice.create_member(add(&use_case, "users/carol", pb::MemberRole::Viewer, bad)).await.map(|_| ()),
            alice.create_asset_link(link(&use_case, &dataset, pb::AssetLinkRole::Dataset, 1, bad)).await.map(|_| ()),
            alice.create_release(release(&use_case, "", bad)).await.map(|_| ()),
        ];
        for (rpc, refused) in ["CreateMember", "CreateAssetLink", "CreateRelease"].into_iter().zip(refusals) {
            let refused = refused.expect_err(rpc);
            assert_eq!(refused.code(), Code::InvalidArgument, "{rpc} with {bad:?}: {refused:?}");
            assert_eq!(field_violations(&refused), expected, "{rpc} with {bad:?}");
        }
    }
    assert_eq!(principals(&platform, &use_case).await, ["users/alice"], "nothing was added");
    let listed = alice
        .list_releases(pb::ListReleasesRequest { parent: use_case.clone(), ..Default::default() })
        .await
        .expect("list");
    assert!(listed.into_inner().releases.is_empty(), "nothing was released");

    // 128 characters are within the contract.
    let at_most = "k".repeat(128);
    alice.create_member(add(&use_case, "users/carol", pb::MemberRole::Viewer, &at_most)).await.expect("member");
    alice.create_asset_link(link(&use_case, &dataset, pb::AssetLinkRole::Dataset, 1, &at_most)).await.expect("link");
    alice.create_release(release(&use_case, "", &at_most)).await.expect("release");
    platform.stop().await;
}
