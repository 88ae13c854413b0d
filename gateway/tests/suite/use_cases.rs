//! Use cases through the gateway, on SQLite and PostgreSQL: the creator owns them, strangers cannot see them,
//! and bad input changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_proto::usecase::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;

on_both_backends!(
    the_creator_owns_reads_changes_and_archives_a_use_case,
    strangers_cannot_see_or_change_a_use_case,
    bad_use_cases_are_invalid_argument_naming_the_field,
    roles_decide_who_may_do_what,
    links_check_the_asset_with_the_asset_service_as_the_caller,
    releases_freeze_what_links_resolve_to,
    lists_filter_and_order_as_the_contract_says,
    only_owners_change_the_price,
);

fn house_prices() -> pb::UseCase {
    pb::UseCase {
        display_name: "House price prediction".into(),
        description: "California housing, 1990 census".into(),
        model_card: "## Description\nA gradient-boosted regressor.".into(),
        inference_schema: r#"{"type":"object","properties":{"inputs":{"type":"array"}},"required":["inputs"]}"#.into(),
        price: Some(pb::Money { currency_code: "USD".into(), units: 49, nanos: 990_000_000 }),
        labels: [("domain".to_owned(), "real-estate".to_owned())].into_iter().collect(),
        ..Default::default()
    }
}

fn create(use_case: pb::UseCase) -> pb::CreateUseCaseRequest {
    pb::CreateUseCaseRequest { use_case: Some(use_case), request_id: String::new() }
}

async fn the_creator_owns_reads_changes_and_archives_a_use_case(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let created = alice.create_use_case(create(house_prices())).await.expect("create").into_inner();
    assert!(created.name.starts_with("useCases/"));
    assert_eq!(created.owner, "users/alice");
    assert_eq!(created.caller_role, pb::MemberRole::Owner as i32);
    assert_eq!(created.inference_schema_type, pb::InferenceSchemaType::Json as i32);
    let fetched = alice.get_use_case(pb::GetUseCaseRequest { name: created.name.clone() }).await.unwrap().into_inner();
    assert_eq!(fetched, created);

    let listed = alice.list_use_cases(pb::ListUseCasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.use_cases, std::slice::from_ref(&created));

    let change = pb::UseCase {
        name: created.name.clone(),
        version_label: "v2".into(),
        display_name: "ignored: not in the mask".into(),
        etag: created.etag.clone(),
        ..Default::default()
    };
    let updated = alice
        .update_use_case(pb::UpdateUseCaseRequest {
            use_case: Some(change.clone()),
            update_mask: Some(FieldMask { paths: vec!["version_label".into()] }),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.version_label, "v2");
    assert_eq!(updated.display_name, created.display_name);
    let stale = alice
        .update_use_case(pb::UpdateUseCaseRequest {
            use_case: Some(change),
            update_mask: Some(FieldMask { paths: vec!["version_label".into()] }),
        })
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::FailedPrecondition);

    let archived = alice
        .delete_use_case(pb::DeleteUseCaseRequest { name: created.name.clone(), etag: updated.etag.clone() })
        .await
        .expect("archive")
        .into_inner();
    assert!(archived.archived);
    assert!(alice.list_use_cases(pb::ListUseCasesRequest::default()).await.unwrap().into_inner().use_cases.is_empty());
    let restored = alice
        .undelete_use_case(pb::UndeleteUseCaseRequest { name: created.name.clone(), etag: String::new() })
        .await
        .expect("restore")
        .into_inner();
    assert!(!restored.archived);

    platform.stop().await;
}

async fn strangers_cannot_see_or_change_a_use_case(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let mut bob = platform.use_cases(Some("bob")).await;
    let created = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let get = bob.get_use_case(pb::GetUseCaseRequest { name: created.name.clone() }).await.expect_err("hidden");
    assert_eq!(get.code(), Code::NotFound, "existence is not revealed");
    let change = pb::UseCase { name: created.name.clone(), display_name: "mine now".into(), ..Default::default() };
    let update = bob
        .update_use_case(pb::UpdateUseCaseRequest { use_case: Some(change), update_mask: None })
        .await
        .expect_err("cannot update");
    assert_eq!(update.code(), Code::NotFound);
    let delete =
        bob.delete_use_case(pb::DeleteUseCaseRequest { name: created.name.clone(), etag: String::new() }).await;
    assert_eq!(delete.expect_err("cannot archive").code(), Code::NotFound);
    assert!(bob.list_use_cases(pb::ListUseCasesRequest::default()).await.unwrap().into_inner().use_cases.is_empty());
    let after = alice.get_use_case(pb::GetUseCaseRequest { name: created.name.clone() }).await.unwrap().into_inner();
    assert_eq!(after, created, "nothing changed");
    let anonymous = platform.use_cases(None).await.list_use_cases(pb::ListUseCasesRequest::default()).await;
    assert_eq!(anonymous.expect_err("anonymous").code(), Code::Unauthenticated);
    platform.stop().await;
}

async fn bad_use_cases_are_invalid_argument_naming_the_field(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let cases: Vec<(pb::UseCase, &str)> = vec![
        (pb::UseCase { display_name: String::new(), ..house_prices() }, "use_case.display_name"),
        (pb::UseCase { inference_schema: "not json".into(), ..house_prices() }, "use_case.inference_schema"),
        (pb::UseCase { inference_schema: r#"{"type":"thing"}"#.into(), ..house_prices() }, "use_case.inference_schema"),
        (
            pb::UseCase {
                price: Some(pb::Money { currency_code: "USD".into(), units: -5, nanos: 0 }),
                ..house_prices()
            },
            "use_case.price",
        ),
        (
            pb::UseCase {
                price: Some(pb::Money { currency_code: "dollars".into(), units: 5, nanos: 0 }),
                ..house_prices()
            },
            "use_case.price.currency_code",
        ),
        (pb::UseCase { cover_image_uri: "file:///etc/passwd".into(), ..house_prices() }, "use_case.cover_image_uri"),
        (pb::UseCase { model_card: "x".repeat(100_001), ..house_prices() }, "use_case.model_card"),
        (pb::UseCase { version_label: "v".repeat(65), ..house_prices() }, "use_case.version_label"),
        (
            // Valid JSON Schema, one character over the contract's 100,000.
            pb::UseCase {
                inference_schema: format!(r#"{{"description":"{}"}}"#, "x".repeat(100_001 - 18)),
                ..house_prices()
            },
            "use_case.inference_schema",
        ),
        (pb::UseCase { inference_schema_type: 7, ..house_prices() }, "use_case.inference_schema_type"),
    ];
    for (use_case, field) in cases {
        let err = alice.create_use_case(create(use_case)).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        let fields: Vec<String> =
            err.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert!(fields.iter().any(|f| f == field), "{field}: {fields:?}");
    }
    assert!(alice.list_use_cases(pb::ListUseCasesRequest::default()).await.unwrap().into_inner().use_cases.is_empty());
    let created = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let err = alice
        .update_use_case(pb::UpdateUseCaseRequest {
            use_case: Some(pb::UseCase { name: created.name.clone(), ..Default::default() }),
            update_mask: Some(FieldMask { paths: vec!["owner".into()] }),
        })
        .await
        .expect_err("owner is not updatable");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = alice.get_use_case(pb::GetUseCaseRequest { name: "useCases/nope".into() }).await.expect_err("bad name");
    assert_eq!(err.code(), Code::InvalidArgument);
    let at_most = pb::UseCase { version_label: "v".repeat(64), ..house_prices() };
    alice.create_use_case(create(at_most)).await.expect("a 64-character version label is within the contract");

    // `inference_schema_type` is an updatable path, and its value is checked when it is updated.
    let set_type = |value: i32| pb::UpdateUseCaseRequest {
        use_case: Some(pb::UseCase { name: created.name.clone(), inference_schema_type: value, ..Default::default() }),
        update_mask: Some(FieldMask { paths: vec!["inference_schema_type".into()] }),
    };
    alice.update_use_case(set_type(pb::InferenceSchemaType::Json as i32)).await.expect("JSON is a schema type");
    let err = alice.update_use_case(set_type(9)).await.expect_err("no such schema type");
    let fields: Vec<String> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["use_case.inference_schema_type"]);

    // Members: the principal is at most 256 characters, `users/` included.
    let member = |principal: String| pb::CreateMemberRequest {
        parent: created.name.clone(),
        member: Some(pb::Member { principal, role: pb::MemberRole::Viewer as i32, ..Default::default() }),
        request_id: String::new(),
    };
    let err = alice.create_member(member(format!("users/{}", "b".repeat(251)))).await.expect_err("257 characters");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["member.principal"]);
    alice.create_member(member(format!("users/{}", "b".repeat(250)))).await.expect("256 characters");
    platform.stop().await;
}

/// The price is what buyers pay: editors change content, only owners change the price.
async fn only_owners_change_the_price(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let created = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let editor =
        pb::Member { principal: "users/carol".into(), role: pb::MemberRole::Editor as i32, ..Default::default() };
    let add = pb::CreateMemberRequest { parent: created.name.clone(), member: Some(editor), request_id: String::new() };
    alice.create_member(add).await.expect("add an editor");
    let mut carol = platform.use_cases(Some("carol")).await;
    let cheaper = Some(pb::Money { currency_code: "USD".into(), units: 1, nanos: 0 });
    let change = |paths: &[&str], use_case: pb::UseCase| pb::UpdateUseCaseRequest {
        use_case: Some(use_case),
        update_mask: (!paths.is_empty()).then(|| FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    };
    let price_only = pb::UseCase { name: created.name.clone(), price: cheaper.clone(), ..Default::default() };
    let whole = pb::UseCase { price: cheaper.clone(), etag: String::new(), ..created.clone() };
    for (paths, use_case) in [(&["price"][..], price_only.clone()), (&[][..], whole.clone()), (&["*"][..], whole)] {
        let err = carol.update_use_case(change(paths, use_case)).await.expect_err("an editor changes the price");
        assert_eq!(err.code(), Code::PermissionDenied, "mask {paths:?}: {err:?}");
    }
    let unchanged = alice.get_use_case(pb::GetUseCaseRequest { name: created.name.clone() }).await.unwrap();
    assert_eq!(unchanged.into_inner().price, created.price, "nothing changed");

    // An editor's read-modify-write that keeps the price is a content change.
    let relabelled = pb::UseCase { version_label: "v2".into(), etag: String::new(), ..created.clone() };
    let updated = carol.update_use_case(change(&[], relabelled)).await.expect("content, same price").into_inner();
    assert_eq!((updated.version_label.as_str(), &updated.price), ("v2", &created.price));
    let repriced = alice.update_use_case(change(&["price"], price_only)).await.expect("the owner").into_inner();
    assert_eq!(repriced.price, cheaper);
    platform.stop().await;
}

/// The access matrix: each RPC as owner (alice), editor (carol), viewer (dave), stranger (bob) and anonymous.
async fn roles_decide_who_may_do_what(platform: Platform) {
    let mut owner = platform.use_cases(Some("alice")).await;
    let created = owner.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let name = created.name.clone();
    let add = |principal: &str, role: pb::MemberRole| pb::CreateMemberRequest {
        parent: name.clone(),
        member: Some(pb::Member { principal: principal.into(), role: role as i32, ..Default::default() }),
        request_id: String::new(),
    };
    let editor_member =
        owner.create_member(add("users/carol", pb::MemberRole::Editor)).await.expect("add editor").into_inner();
    let viewer_member =
        owner.create_member(add("users/dave", pb::MemberRole::Viewer)).await.expect("add viewer").into_inner();
    let again = owner.create_member(add("users/dave", pb::MemberRole::Editor)).await.expect_err("already a member");
    assert_eq!(again.code(), Code::AlreadyExists);

    let callers = ["alice", "carol", "dave", "bob", "anonymous"];
    let client = |who: &'static str| {
        let platform = &platform;
        async move { platform.use_cases(if who == "anonymous" { None } else { Some(who) }).await }
    };
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    use Code::{NotFound as NF, Ok as OK, PermissionDenied as PD, Unauthenticated as UA};

    // Reading the use case and its members.
    for (who, expected) in callers.iter().zip([OK, OK, OK, NF, UA]) {
        let mut c = client(who).await;
        let got = c.get_use_case(pb::GetUseCaseRequest { name: name.clone() }).await.map(|_| ());
        assert_eq!(code(got), expected, "GetUseCase as {who}");
        let listed = c.list_members(pb::ListMembersRequest { parent: name.clone(), ..Default::default() }).await;
        assert_eq!(code(listed.map(|_| ())), expected, "ListMembers as {who}");
    }
    let viewer_sees = client("dave").await.get_use_case(pb::GetUseCaseRequest { name: name.clone() }).await.unwrap();
    assert_eq!(viewer_sees.into_inner().caller_role, pb::MemberRole::Viewer as i32);

    // Changing content.
    for (who, expected) in callers.iter().zip([OK, OK, PD, NF, UA]) {
        let change = pb::UseCase { name: name.clone(), version_label: format!("by {who}"), ..Default::default() };
        let mask = FieldMask { paths: vec!["version_label".into()] };
        let result = client(who)
            .await
            .update_use_case(pb::UpdateUseCaseRequest { use_case: Some(change), update_mask: Some(mask) })
            .await;
        assert_eq!(code(result.map(|_| ())), expected, "UpdateUseCase as {who}");
    }

    // Managing members.
    for (who, expected) in callers.iter().zip([OK, PD, PD, NF, UA]) {
        let change =
            pb::Member { name: editor_member.name.clone(), role: pb::MemberRole::Editor as i32, ..Default::default() };
        let mask = FieldMask { paths: vec!["role".into()] };
        let result = client(who)
            .await
            .update_member(pb::UpdateMemberRequest { member: Some(change), update_mask: Some(mask) })
            .await;
        assert_eq!(code(result.map(|_| ())), expected, "UpdateMember as {who}");
    }
    let carol_adds = client("carol").await.create_member(add("users/erin", pb::MemberRole::Viewer)).await;
    assert_eq!(code(carol_adds.map(|_| ())), PD, "an editor cannot add members");

    // Archiving.
    for (who, expected) in callers.iter().zip([OK, PD, PD, NF, UA]).rev() {
        let result = client(who)
            .await
            .delete_use_case(pb::DeleteUseCaseRequest { name: name.clone(), etag: String::new() })
            .await;
        assert_eq!(code(result.map(|_| ())), expected, "DeleteUseCase as {who}");
    }
    owner
        .undelete_use_case(pb::UndeleteUseCaseRequest { name: name.clone(), etag: String::new() })
        .await
        .expect("restore");

    // The last owner cannot leave or step down; a viewer may leave on their own.
    let owners =
        owner.list_members(pb::ListMembersRequest { parent: name.clone(), ..Default::default() }).await.unwrap();
    let alice_member = owners.into_inner().members.into_iter().find(|m| m.principal == "users/alice").unwrap();
    let leave =
        owner.delete_member(pb::DeleteMemberRequest { name: alice_member.name.clone(), etag: String::new() }).await;
    assert_eq!(leave.expect_err("last owner").code(), Code::FailedPrecondition);
    let kick = client("carol")
        .await
        .delete_member(pb::DeleteMemberRequest { name: viewer_member.name.clone(), etag: String::new() })
        .await;
    assert_eq!(code(kick.map(|_| ())), PD, "an editor cannot remove others");
    let left = client("dave")
        .await
        .delete_member(pb::DeleteMemberRequest { name: viewer_member.name.clone(), etag: String::new() })
        .await;
    assert_eq!(code(left.map(|_| ())), OK, "a viewer may leave");
    let gone = client("dave").await.get_use_case(pb::GetUseCaseRequest { name: name.clone() }).await;
    assert_eq!(code(gone.map(|_| ())), NF, "and then sees nothing");
    platform.stop().await;
}

async fn dataset_with_a_version(platform: &Platform, user: &str) -> String {
    platform.push_version(user, None, b"rooms,price\n3,100\n").await
}

async fn links_check_the_asset_with_the_asset_service_as_the_caller(platform: Platform) {
    let dataset = dataset_with_a_version(&platform, "alice").await;
    let bobs = dataset_with_a_version(&platform, "bob").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let link = |asset: &str, role: pb::AssetLinkRole, version: pb::asset_link::Version| pb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(pb::AssetLink {
            asset: asset.into(),
            role: role as i32,
            version: Some(version),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    use pb::asset_link::Version::{Alias, PinnedVersionNumber as Pinned};

    let linked = alice
        .create_asset_link(link(&dataset, pb::AssetLinkRole::Dataset, Pinned(1)))
        .await
        .expect("link")
        .into_inner();
    assert_eq!(linked.resolved_version, format!("{dataset}/versions/1"));
    let again = alice.create_asset_link(link(&dataset, pb::AssetLinkRole::Dataset, Alias("latest".into()))).await;
    assert_eq!(again.expect_err("one link per asset and role").code(), Code::AlreadyExists);

    let field_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.get_error_details().bad_request().unwrap().field_violations[0].field.clone()
    };
    let wrong_kind =
        alice.create_asset_link(link(&dataset, pb::AssetLinkRole::Predictor, Pinned(1))).await.expect_err("kind");
    assert_eq!(field_of(wrong_kind), "asset_link.role");
    let missing =
        alice.create_asset_link(link(&dataset, pb::AssetLinkRole::App, Pinned(9))).await.expect_err("no version 9");
    assert_eq!(field_of(missing), "asset_link.pinned_version_number");
    let foreign =
        alice.create_asset_link(link(&bobs, pb::AssetLinkRole::Dataset, Pinned(1))).await.expect_err("bob's asset");
    assert_eq!(foreign.code(), Code::NotFound, "alice may not read bob's asset, so for her it does not exist");
    let resource = foreign.get_details_resource_info().expect("resource info");
    assert_eq!((resource.resource_type.as_str(), resource.resource_name.as_str()), ("highwind.asset.v1.Asset", &*bobs));
    platform.push_version("alice", Some(&dataset), b"v2, archived").await;
    let archive = highwind_proto::asset::v1::DeleteAssetVersionRequest { name: format!("{dataset}/versions/2") };
    platform.assets(Some("alice")).await.delete_asset_version(archive).await.expect("archive version 2");
    let archived =
        alice.create_asset_link(link(&dataset, pb::AssetLinkRole::App, Pinned(2))).await.expect_err("archived");
    assert_eq!(archived.code(), Code::FailedPrecondition, "only READY versions are pinned");
    let unmet = archived.get_details_precondition_failure().expect("precondition failure");
    assert_eq!(unmet.violations[0].subject, "asset_link.pinned_version_number");

    let viewer = pb::CreateMemberRequest {
        parent: use_case.name.clone(),
        member: Some(pb::Member {
            principal: "users/dave".into(),
            role: pb::MemberRole::Viewer as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    alice.create_member(viewer).await.unwrap();
    let mut dave = platform.use_cases(Some("dave")).await;
    let denied = dave.create_asset_link(link(&dataset, pb::AssetLinkRole::App, Alias("production".into()))).await;
    assert_eq!(denied.expect_err("viewer").code(), Code::PermissionDenied);
    let listed = dave
        .list_asset_links(pb::ListAssetLinksRequest { parent: use_case.name.clone(), ..Default::default() })
        .await
        .expect("viewers read links")
        .into_inner();
    assert_eq!(listed.asset_links, std::slice::from_ref(&linked));

    alice
        .delete_asset_link(pb::DeleteAssetLinkRequest { name: linked.name.clone(), etag: String::new() })
        .await
        .expect("unlink");
    let gone = alice.get_asset_link(pb::GetAssetLinkRequest { name: linked.name.clone() }).await.expect_err("gone");
    assert_eq!(gone.code(), Code::NotFound);
    platform.stop().await;
}

async fn releases_freeze_what_links_resolve_to(platform: Platform) {
    let dataset = platform.push_version("alice", None, b"v1").await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let use_case = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let follow = |alias: &str, role: pb::AssetLinkRole| pb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(pb::AssetLink {
            asset: dataset.clone(),
            role: role as i32,
            version: Some(pb::asset_link::Version::Alias(alias.into())),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    alice.create_asset_link(follow("latest", pb::AssetLinkRole::Dataset)).await.expect("link latest");
    let release = |description: &str| pb::CreateReleaseRequest {
        parent: use_case.name.clone(),
        release: Some(pb::Release { description: description.into(), ..Default::default() }),
        request_id: String::new(),
    };
    let first = alice.create_release(release("first")).await.expect("release 1").into_inner();
    assert_eq!(first.release_number, 1);
    assert_eq!(first.links.len(), 1);
    assert_eq!(first.links[0].version_number, 1);
    assert_eq!(first.links[0].alias, "latest");
    assert!(first.digest.starts_with("sha256:"));
    assert_eq!(first.snapshot.as_ref().unwrap().display_name, "House price prediction");

    platform.push_version("alice", Some(&dataset), b"v2").await;
    let second = alice.create_release(release("second")).await.expect("release 2").into_inner();
    assert_eq!((second.release_number, second.links[0].version_number), (2, 2));
    assert_ne!(second.digest, first.digest);
    let again = alice.get_release(pb::GetReleaseRequest { name: first.name.clone() }).await.unwrap().into_inner();
    assert_eq!(again, first, "a release never changes");
    let listed = alice
        .list_releases(pb::ListReleasesRequest { parent: use_case.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.releases.iter().map(|r| r.release_number).collect::<Vec<_>>(), [2, 1], "newest first");

    let diff = alice
        .diff_releases(pb::DiffReleasesRequest {
            base_release: first.name.clone(),
            target_release: second.name.clone(),
            include_unchanged: false,
        })
        .await
        .expect("diff")
        .into_inner();
    assert!(!diff.identical);
    assert_eq!(diff.link_changes.len(), 1);
    assert_eq!(diff.link_changes[0].change_type, pb::AssetLinkChangeType::Changed as i32);
    assert_eq!(diff.link_changes[0].changed_fields, ["version_number", "manifest_digest"]);
    let same = alice
        .diff_releases(pb::DiffReleasesRequest {
            base_release: second.name.clone(),
            target_release: second.name.clone(),
            include_unchanged: true,
        })
        .await
        .expect("diff with itself")
        .into_inner();
    assert!(same.identical);
    assert_eq!(same.link_changes[0].change_type, pb::AssetLinkChangeType::Unchanged as i32);

    alice.create_asset_link(follow("production", pb::AssetLinkRole::App)).await.expect("link an unset alias");
    let unresolved = alice.create_release(release("third")).await.expect_err("production is not set");
    assert_eq!(unresolved.code(), Code::FailedPrecondition);
    let count =
        alice.list_releases(pb::ListReleasesRequest { parent: use_case.name.clone(), ..Default::default() }).await;
    assert_eq!(count.unwrap().into_inner().releases.len(), 2, "nothing half-made is visible");

    let stranger =
        platform.use_cases(Some("bob")).await.get_release(pb::GetReleaseRequest { name: first.name.clone() }).await;
    assert_eq!(stranger.expect_err("hidden").code(), Code::NotFound);
    platform.stop().await;
}

async fn lists_filter_and_order_as_the_contract_says(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let mut made = Vec::new();
    for (name, team) in [("alpha", "x"), ("bravo", "y"), ("charlie", "y")] {
        let use_case = pb::UseCase {
            display_name: name.into(),
            labels: [("team".to_owned(), team.to_owned())].into_iter().collect(),
            ..house_prices()
        };
        made.push(alice.create_use_case(create(use_case)).await.unwrap().into_inner());
    }
    let (alpha, bravo) = (&made[0], &made[1]);
    let release = pb::CreateReleaseRequest { parent: alpha.name.clone(), release: None, request_id: String::new() };
    let release = alice.create_release(release).await.unwrap().into_inner();
    let publish = pb::PublishUseCaseRequest { name: alpha.name.clone(), release: release.name, etag: String::new() };
    alice.publish_use_case(publish).await.expect("publish alpha");
    let add_bob = pb::CreateMemberRequest {
        parent: bravo.name.clone(),
        member: Some(pb::Member {
            principal: "users/bob".into(),
            role: pb::MemberRole::Editor as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    alice.create_member(add_bob).await.unwrap();

    let names = |page: pb::ListUseCasesResponse| page.use_cases.into_iter().map(|u| u.display_name).collect::<Vec<_>>();
    let list = |filter: &str, order_by: &str| pb::ListUseCasesRequest {
        filter: filter.into(),
        order_by: order_by.into(),
        ..Default::default()
    };
    for (filter, order_by, expected) in [
        ("", "", vec!["charlie", "bravo", "alpha"]),
        ("", "display_name", vec!["alpha", "bravo", "charlie"]),
        ("labels.team = \"y\"", "display_name desc", vec!["charlie", "bravo"]),
        ("published = true", "", vec!["alpha"]),
        ("published = false AND display_name = \"bravo\"", "", vec!["bravo"]),
    ] {
        let got = names(alice.list_use_cases(list(filter, order_by)).await.expect("list").into_inner());
        assert_eq!(got, expected, "filter {filter:?} order {order_by:?}");
    }
    let mut bob = platform.use_cases(Some("bob")).await;
    let editing = bob.list_use_cases(list("role = EDITOR", "")).await.unwrap().into_inner();
    assert_eq!(names(editing), ["bravo"]);

    let touch = pb::UseCase { name: alpha.name.clone(), version_label: "v2".into(), ..Default::default() };
    let mask = FieldMask { paths: vec!["version_label".into()] };
    alice.update_use_case(pb::UpdateUseCaseRequest { use_case: Some(touch), update_mask: Some(mask) }).await.unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListUseCasesRequest { page_size: 1, page_token: token, ..list("", "update_time desc") };
        let page = alice.list_use_cases(request).await.expect("page").into_inner();
        token = page.next_page_token.clone();
        seen.extend(names(page));
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["alpha", "charlie", "bravo"], "alpha was changed last");
    let first =
        alice.list_use_cases(pb::ListUseCasesRequest { page_size: 1, ..list("", "") }).await.unwrap().into_inner();
    let other_query = pb::ListUseCasesRequest { page_token: first.next_page_token, ..list("", "display_name") };
    let foreign = alice.list_use_cases(other_query).await.expect_err("a token is bound to its order");
    assert_eq!(foreign.code(), Code::InvalidArgument);

    let members = |filter: &str, order_by: &str| pb::ListMembersRequest {
        parent: bravo.name.clone(),
        filter: filter.into(),
        order_by: order_by.into(),
        ..Default::default()
    };
    let principals = |page: pb::ListMembersResponse| page.members.into_iter().map(|m| m.principal).collect::<Vec<_>>();
    assert_eq!(principals(alice.list_members(members("role = EDITOR", "")).await.unwrap().into_inner()), ["users/bob"]);
    let by_principal = alice.list_members(members("", "principal desc")).await.unwrap().into_inner();
    assert_eq!(principals(by_principal), ["users/bob", "users/alice"]);

    let dataset = platform.push_version("alice", None, b"rows").await;
    for (role, version) in [
        (pb::AssetLinkRole::Dataset, pb::asset_link::Version::PinnedVersionNumber(1)),
        (pb::AssetLinkRole::App, pb::asset_link::Version::Alias("latest".into())),
    ] {
        let link =
            pb::AssetLink { asset: dataset.clone(), role: role as i32, version: Some(version), ..Default::default() };
        let request = pb::CreateAssetLinkRequest {
            parent: bravo.name.clone(),
            asset_link: Some(link),
            request_id: String::new(),
        };
        alice.create_asset_link(request).await.unwrap();
    }
    let links = |filter: &str, order_by: &str| pb::ListAssetLinksRequest {
        parent: bravo.name.clone(),
        filter: filter.into(),
        order_by: order_by.into(),
        ..Default::default()
    };
    let roles = |page: pb::ListAssetLinksResponse| page.asset_links.into_iter().map(|l| l.role).collect::<Vec<_>>();
    let app = alice.list_asset_links(links("role = APP", "")).await.unwrap().into_inner();
    assert_eq!(roles(app), [pb::AssetLinkRole::App as i32]);
    let by_role = alice.list_asset_links(links(&format!("asset = \"{dataset}\""), "role")).await.unwrap().into_inner();
    assert_eq!(roles(by_role), [pb::AssetLinkRole::App as i32, pb::AssetLinkRole::Dataset as i32]);

    for _ in 0..2 {
        let request = pb::CreateReleaseRequest { parent: bravo.name.clone(), release: None, request_id: String::new() };
        alice.create_release(request).await.unwrap();
    }
    let releases = |filter: &str, order_by: &str| pb::ListReleasesRequest {
        parent: bravo.name.clone(),
        filter: filter.into(),
        order_by: order_by.into(),
        ..Default::default()
    };
    let numbers =
        |page: pb::ListReleasesResponse| page.releases.into_iter().map(|r| r.release_number).collect::<Vec<_>>();
    for (filter, order_by, expected) in [
        ("", "", vec![2, 1]),
        ("creator = \"users/alice\"", "release_number", vec![1, 2]),
        ("create_time > \"2100-01-01T00:00:00Z\"", "", vec![]),
        ("create_time < \"2100-01-01T00:00:00Z\" AND creator = \"users/bob\"", "", vec![]),
    ] {
        let got = numbers(alice.list_releases(releases(filter, order_by)).await.expect("list").into_inner());
        assert_eq!(got, expected, "filter {filter:?} order {order_by:?}");
    }

    let field_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument);
        status.get_details_bad_request().expect("bad request").field_violations[0].field.clone()
    };
    assert_eq!(field_of(alice.list_use_cases(list("size = 3", "")).await.unwrap_err()), "filter");
    assert_eq!(field_of(alice.list_use_cases(list("", "size")).await.unwrap_err()), "order_by");
    assert_eq!(field_of(alice.list_members(members("role = KING", "")).await.unwrap_err()), "filter");
    assert_eq!(field_of(alice.list_asset_links(links("", "asset")).await.unwrap_err()), "order_by");
    assert_eq!(field_of(alice.list_releases(releases("create_time > yesterday", "")).await.unwrap_err()), "filter");
    platform.stop().await;
}

/// The AssetLink contract: at most 256 links per use case, RESOURCE_EXHAUSTED beyond (the store counts and inserts
/// under the use case's lock, which the store conformance suite checks on both backends).
#[tokio::test]
async fn a_use_case_holds_at_most_256_links() {
    use highwind_proto::asset::v1 as apb;
    let platform = Platform::start().await;
    let mut alice = platform.use_cases(Some("alice")).await;
    let mut assets = platform.assets(Some("alice")).await;
    let use_case = alice.create_use_case(create(house_prices())).await.unwrap().into_inner();
    let mut new_dataset = async || {
        let asset = apb::Asset { kind: apb::AssetKind::Dataset as i32, display_name: "d".into(), ..Default::default() };
        let request = apb::CreateAssetRequest { asset: Some(asset), request_id: String::new() };
        assets.create_asset(request).await.unwrap().into_inner().name
    };
    let link = |asset: &str, role: pb::AssetLinkRole| pb::CreateAssetLinkRequest {
        parent: use_case.name.clone(),
        asset_link: Some(pb::AssetLink {
            asset: asset.into(),
            role: role as i32,
            version: Some(pb::asset_link::Version::Alias("latest".into())),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    // A dataset fits two roles, so 128 datasets make 256 links.
    for _ in 0..128 {
        let dataset = new_dataset().await;
        for role in [pb::AssetLinkRole::Dataset, pb::AssetLinkRole::App] {
            alice.create_asset_link(link(&dataset, role)).await.expect("within the limit");
        }
    }
    let one_more = new_dataset().await;
    let err = alice.create_asset_link(link(&one_more, pb::AssetLinkRole::Dataset)).await.expect_err("link 257");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let listed = alice
        .list_asset_links(pb::ListAssetLinksRequest {
            parent: use_case.name.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.asset_links.len(), 256, "the refused link was not stored");
    platform.stop().await;
}
