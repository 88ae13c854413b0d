//! Asset metadata through the gateway over gRPC: the full lifecycle, isolation between principals, and bad input
//! that changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};

use highwind_proto::asset::v1::{self as pb, AssetKind};
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;

on_both_backends!(
    create_get_list_update_delete_round_trip,
    another_principal_can_neither_see_nor_change_an_asset,
    anonymous_calls_and_forged_identities_are_refused,
    bad_input_is_invalid_argument_naming_the_field_and_changes_nothing,
    request_id_makes_create_idempotent,
    a_message_over_the_gateway_limit_is_resource_exhausted,
);

fn dataset(name: &str) -> pb::Asset {
    pb::Asset { kind: AssetKind::Dataset as i32, display_name: name.into(), ..Default::default() }
}

fn create(asset: pb::Asset) -> pb::CreateAssetRequest {
    pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() }
}

fn get(name: &str) -> pb::GetAssetRequest {
    pb::GetAssetRequest { name: name.into() }
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    details.bad_request().expect("BadRequest details").field_violations.iter().map(|v| v.field.clone()).collect()
}

async fn create_get_list_update_delete_round_trip(platform: Platform) {
    let mut alice = platform.assets(Some("alice")).await;

    let mut labels = BTreeMap::new();
    labels.insert("team".to_owned(), "pricing".to_owned());
    let mut first = dataset("California housing");
    first.labels = labels.clone().into_iter().collect();
    first.description = "1990 census blocks".into();
    let created = alice.create_asset(create(first)).await.expect("create").into_inner();
    assert!(created.name.starts_with("assets/"));
    assert_eq!(created.owner, "users/alice");
    assert_eq!(created.display_name, "California housing");
    assert!(!created.etag.is_empty());

    let fetched = alice.get_asset(get(&created.name)).await.expect("get").into_inner();
    assert_eq!(fetched, created);

    for i in 1..250 {
        alice.create_asset(create(dataset(&format!("asset {i:03}")))).await.expect("create");
    }
    let (mut seen, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let page = alice
            .list_assets(pb::ListAssetsRequest { page_size: 100, page_token: token, ..Default::default() })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        seen.extend(page.assets.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250, "no asset repeated");
    assert_eq!(seen[0], created.name, "oldest first by default");

    let change = pb::Asset {
        name: created.name.clone(),
        display_name: "Housing (1990)".into(),
        description: "must not change: not in the mask".into(),
        etag: created.etag.clone(),
        ..Default::default()
    };
    let mask = FieldMask { paths: vec!["display_name".into()] };
    let updated = alice
        .update_asset(pb::UpdateAssetRequest { asset: Some(change), update_mask: Some(mask) })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.display_name, "Housing (1990)");
    assert_eq!(updated.description, "1990 census blocks");
    assert_eq!(updated.labels, created.labels);
    assert_ne!(updated.etag, created.etag);

    let deleted = alice
        .delete_asset(pb::DeleteAssetRequest { name: created.name.clone(), etag: updated.etag.clone() })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.archived && deleted.archive_time.is_some());
    let listed = alice.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert!(listed.assets.iter().all(|a| a.name != created.name), "archived assets leave the list");
    let archived = alice
        .list_assets(pb::ListAssetsRequest { filter: "archived = true".into(), ..Default::default() })
        .await
        .expect("list archived")
        .into_inner();
    let archived_names: Vec<&str> = archived.assets.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(archived_names, [created.name.as_str()]);
    let restored = alice
        .undelete_asset(pb::UndeleteAssetRequest { name: created.name.clone() })
        .await
        .expect("undelete")
        .into_inner();
    assert!(!restored.archived);
    platform.stop().await;
}

async fn another_principal_can_neither_see_nor_change_an_asset(platform: Platform) {
    let mut alice = platform.assets(Some("alice")).await;
    let mut bob = platform.assets(Some("bob")).await;
    let mine = alice.create_asset(create(dataset("alice's data"))).await.expect("create").into_inner();

    let err = bob.get_asset(get(&mine.name)).await.expect_err("hidden");
    assert_eq!(err.code(), Code::NotFound, "existence is not revealed: {err:?}");
    let change = pb::Asset { name: mine.name.clone(), display_name: "bob was here".into(), ..Default::default() };
    let err = bob
        .update_asset(pb::UpdateAssetRequest { asset: Some(change), update_mask: None })
        .await
        .expect_err("cannot update");
    assert_eq!(err.code(), Code::NotFound);
    let err = bob.delete_asset(pb::DeleteAssetRequest { name: mine.name.clone(), etag: String::new() }).await;
    assert_eq!(err.expect_err("cannot delete").code(), Code::NotFound);
    let listed = bob.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert!(listed.assets.is_empty());

    let after = alice.get_asset(get(&mine.name)).await.expect("still there").into_inner();
    assert_eq!(after, mine, "nothing changed");

    // A page token minted for alice is useless to bob.
    for i in 0..3 {
        alice.create_asset(create(dataset(&format!("more {i}")))).await.expect("create");
    }
    let page = alice
        .list_assets(pb::ListAssetsRequest { page_size: 1, ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    let err = bob
        .list_assets(pb::ListAssetsRequest { page_size: 1, page_token: page.next_page_token, ..Default::default() })
        .await
        .expect_err("foreign token");
    assert_eq!(bad_fields(&err), ["page_token"]);
    platform.stop().await;
}

async fn anonymous_calls_and_forged_identities_are_refused(platform: Platform) {
    let mut anonymous = platform.assets(None).await;
    let err = anonymous.create_asset(create(dataset("x"))).await.expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut wrong = highwind_proto::asset::v1::asset_service_client::AssetServiceClient::with_interceptor(
        platform.channel().await,
        crate::support::Bearer(Some("hwdev_not-a-real-token".into())),
    );
    assert_eq!(
        wrong.list_assets(pb::ListAssetsRequest::default()).await.expect_err("bad token").code(),
        Code::Unauthenticated
    );

    // alice claims to be bob, relayed by a service, through the internal headers: the gateway drops the claims.
    let mut request = tonic::Request::new(create(dataset("who am i")));
    request.metadata_mut().insert("x-highwind-principal", "users/bob".parse().unwrap());
    request.metadata_mut().insert("x-highwind-principal-signature", "v1=1,00".parse().unwrap());
    request.metadata_mut().insert("x-highwind-caller", "usecase-svc".parse().unwrap());
    let mut alice = platform.assets(Some("alice")).await;
    let created = alice.create_asset(request).await.expect("create").into_inner();
    assert_eq!(created.owner, "users/alice");
    platform.stop().await;
}

async fn bad_input_is_invalid_argument_naming_the_field_and_changes_nothing(platform: Platform) {
    let mut alice = platform.assets(Some("alice")).await;

    let mut too_many = dataset("labels");
    too_many.labels = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
    let cases: Vec<(pb::Asset, &str)> = vec![
        (pb::Asset { kind: AssetKind::Unspecified as i32, ..dataset("no kind") }, "asset.kind"),
        (dataset(""), "asset.display_name"),
        (dataset(&"x".repeat(201)), "asset.display_name"),
        (pb::Asset { description: "d".repeat(10_001), ..dataset("long") }, "asset.description"),
        (too_many, "asset.labels"),
        (pb::Asset { kind: 42, ..dataset("kind 42") }, "asset.kind"),
    ];
    for (asset, field) in cases {
        let err = alice.create_asset(create(asset)).await.expect_err("invalid");
        assert!(bad_fields(&err).iter().any(|f| f.starts_with(field)), "{field}: {err:?}");
    }
    let listed = alice.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert!(listed.assets.is_empty(), "no invalid create stored anything");

    for name in ["", "assets/", "assets/nope", "useCases/0190b5b2-8c1e-7000-8000-000000000000"] {
        let err = alice.get_asset(get(name)).await.expect_err("bad name");
        assert_eq!(bad_fields(&err), ["name"]);
    }
    let err = alice.get_asset(get("assets/0190b5b2-8c1e-7000-8000-000000000000")).await.expect_err("absent");
    assert_eq!(err.code(), Code::NotFound);

    for (request, field) in [
        (pb::ListAssetsRequest { page_size: 1001, ..Default::default() }, "page_size"),
        (pb::ListAssetsRequest { page_size: -1, ..Default::default() }, "page_size"),
        (pb::ListAssetsRequest { filter: "owner = users/bob".into(), ..Default::default() }, "filter"),
        (pb::ListAssetsRequest { order_by: "owner".into(), ..Default::default() }, "order_by"),
        (pb::ListAssetsRequest { page_token: "forged.token".into(), ..Default::default() }, "page_token"),
    ] {
        let err = alice.list_assets(request).await.expect_err("bad list");
        assert_eq!(bad_fields(&err), [field]);
    }

    let asset = alice.create_asset(create(dataset("target"))).await.expect("create").into_inner();
    let update = |asset: pb::Asset, paths: &[&str]| pb::UpdateAssetRequest {
        asset: Some(asset),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    };
    let err = alice
        .update_asset(update(pb::Asset { name: asset.name.clone(), ..Default::default() }, &["owner"]))
        .await
        .expect_err("owner is not updatable");
    assert_eq!(bad_fields(&err), ["update_mask"]);
    let err = alice
        .update_asset(update(pb::Asset { name: asset.name.clone(), ..Default::default() }, &["display_name"]))
        .await
        .expect_err("empty display name");
    assert_eq!(bad_fields(&err), ["asset.display_name"]);
    let stale = pb::Asset {
        name: asset.name.clone(),
        display_name: "new".into(),
        etag: "\"999\"".into(),
        ..Default::default()
    };
    let err = alice.update_asset(update(stale, &["display_name"])).await.expect_err("stale etag");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = alice
        .delete_asset(pb::DeleteAssetRequest { name: asset.name.clone(), etag: "\"999\"".into() })
        .await
        .expect_err("stale etag on delete");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let after = alice.get_asset(get(&asset.name)).await.expect("get").into_inner();
    assert_eq!(after, asset, "no failed call changed the asset");
    platform.stop().await;
}

async fn request_id_makes_create_idempotent(platform: Platform) {
    let mut alice = platform.assets(Some("alice")).await;
    let request = || pb::CreateAssetRequest { asset: Some(dataset("once")), request_id: "7f1c-retry".into() };
    let first = alice.create_asset(request()).await.expect("create").into_inner();
    let retry = alice.create_asset(request()).await.expect("retry").into_inner();
    assert_eq!(first, retry);
    let listed = alice.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.assets.len(), 1);
    platform.stop().await;
}

async fn a_message_over_the_gateway_limit_is_resource_exhausted(platform: Platform) {
    let mut alice = platform.assets(Some("alice")).await;
    let huge = pb::Asset { description: "x".repeat(5 * 1024 * 1024), ..dataset("huge") };
    let err = alice.create_asset(create(huge)).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("gateway"), "refused at the gateway: {err:?}");
    let listed = alice.list_assets(pb::ListAssetsRequest::default()).await.expect("list").into_inner();
    assert!(listed.assets.is_empty());
    platform.stop().await;
}
