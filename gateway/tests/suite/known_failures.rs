//! Bad inputs that real registries shipped (../shared/reference/security/KNOWN-FAILURES.md), replayed against
//! Highwind. The path-traversal, deny-by-default, role-matrix and uniform-NOT_FOUND cases live beside the features
//! they test; these are the rest that apply today.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::{asset::v1 as apb, usecase::v1 as pb};
use tonic::Code;

use crate::support::Platform;

/// #21 (Harbor CVE-2019-16097, mass assignment): privileged or output-only fields in a request are never bound.
#[tokio::test]
async fn output_only_and_privileged_fields_are_never_taken_from_requests() {
    let platform = Platform::start().await;
    let mut assets = platform.assets(Some("alice")).await;
    let forged = apb::Asset {
        kind: apb::AssetKind::Dataset as i32,
        display_name: "mine".into(),
        owner: "users/bob".into(),
        name: "assets/0190b5b2-8c1e-7000-8000-000000000000".into(),
        archived: true,
        etag: "\"42\"".into(),
        latest_version: "assets/x/versions/9".into(),
        ..Default::default()
    };
    let created =
        assets.create_asset(apb::CreateAssetRequest { asset: Some(forged), request_id: String::new() }).await.unwrap();
    let created = created.into_inner();
    assert_eq!(created.owner, "users/alice");
    assert_ne!(created.name, "assets/0190b5b2-8c1e-7000-8000-000000000000");
    assert!(!created.archived);
    assert_eq!(created.latest_version, "");

    let mut use_cases = platform.use_cases(Some("alice")).await;
    let forged = pb::UseCase {
        display_name: "uc".into(),
        owner: "users/bob".into(),
        published: true,
        caller_role: pb::MemberRole::Viewer as i32,
        ..Default::default()
    };
    let uc =
        use_cases.create_use_case(pb::CreateUseCaseRequest { use_case: Some(forged), request_id: String::new() }).await;
    let uc = uc.unwrap().into_inner();
    assert_eq!((uc.owner.as_str(), uc.published), ("users/alice", false));
    assert_eq!(uc.caller_role, pb::MemberRole::Owner as i32);
    let member = pb::Member {
        principal: "users/bob".into(),
        role: pb::MemberRole::Viewer as i32,
        creator: "users/mallory".into(),
        ..Default::default()
    };
    let added = use_cases
        .create_member(pb::CreateMemberRequest {
            parent: uc.name.clone(),
            member: Some(member),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.creator, "users/alice", "the creator is whoever called");
    platform.stop().await;
}

/// #22 (Harbor IDORs): an id that belongs to another parent is not found under this one, even for its owner.
#[tokio::test]
async fn ids_from_another_parent_are_not_found() {
    let platform = Platform::start().await;
    let mut use_cases = platform.use_cases(Some("alice")).await;
    let create = |name: &str| pb::CreateUseCaseRequest {
        use_case: Some(pb::UseCase { display_name: name.into(), ..Default::default() }),
        request_id: String::new(),
    };
    let a = use_cases.create_use_case(create("a")).await.unwrap().into_inner();
    let b = use_cases.create_use_case(create("b")).await.unwrap().into_inner();
    let members_of_a =
        use_cases.list_members(pb::ListMembersRequest { parent: a.name.clone(), ..Default::default() }).await.unwrap();
    let member_of_a = members_of_a.into_inner().members.remove(0);
    let member_id = member_of_a.name.rsplit('/').next().unwrap().to_owned();
    let crossed = format!("{}/members/{member_id}", b.name);
    let err = use_cases.get_member(pb::GetMemberRequest { name: crossed.clone() }).await.expect_err("crossed parent");
    assert_eq!(err.code(), Code::NotFound);
    let err = use_cases.delete_member(pb::DeleteMemberRequest { name: crossed, etag: String::new() }).await;
    assert_eq!(err.expect_err("crossed parent").code(), Code::NotFound);

    // The same for uploads: an upload of one asset is not reachable through another.
    let mut assets = platform.assets(Some("alice")).await;
    let dataset = |name: &str| apb::CreateAssetRequest {
        asset: Some(apb::Asset {
            kind: apb::AssetKind::Dataset as i32,
            display_name: name.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let x = assets.create_asset(dataset("x")).await.unwrap().into_inner();
    let y = assets.create_asset(dataset("y")).await.unwrap().into_inner();
    let file = apb::UploadFile { path: "f".into(), size_bytes: 1, sha256: "a".repeat(64), ..Default::default() };
    let mut uploads = platform.uploads(Some("alice")).await;
    let upload = uploads
        .create_upload(apb::CreateUploadRequest { parent: x.name.clone(), files: vec![file], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let upload_id = upload.name.rsplit('/').next().unwrap();
    let crossed = format!("{}/uploads/{upload_id}", y.name);
    let err = uploads.get_upload(apb::GetUploadRequest { name: crossed.clone() }).await.expect_err("crossed asset");
    assert_eq!(err.code(), Code::NotFound);
    let err = uploads.cancel_upload(apb::CancelUploadRequest { name: crossed }).await.expect_err("crossed asset");
    assert_eq!(err.code(), Code::NotFound);
    platform.stop().await;
}
