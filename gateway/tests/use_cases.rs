//! Use cases through the gateway, on SQLite and PostgreSQL: the creator owns them, strangers cannot see them,
//! and bad input changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use highwind_proto::usecase::v1 as pb;
use prost_types::FieldMask;
use support::Platform;
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    the_creator_owns_reads_changes_and_archives_a_use_case,
    strangers_cannot_see_or_change_a_use_case,
    bad_use_cases_are_invalid_argument_naming_the_field,
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

    let members = alice
        .list_members(pb::ListMembersRequest { parent: created.name.clone(), ..Default::default() })
        .await
        .expect_err("members are declared but not built yet");
    assert_eq!(members.code(), Code::Unimplemented);
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
    platform.stop().await;
}
