//! The audit log through the gateway, on SQLite and PostgreSQL: every changing call is recorded with who, what,
//! which resource and how it ended; reads are not; principals list their own calls; owners of a use case or an
//! asset list everyone's calls on it; nobody else can.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{
    asset::v1 as apb,
    identity::v1::{self as ipb, audit_service_client::AuditServiceClient},
    usecase::v1 as pb,
};
use prost_types::FieldMask;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

use crate::support::{Bearer, Platform};

on_both_backends!(changes_are_recorded_and_owners_read_them);

async fn audit(platform: &Platform, user: Option<&str>) -> AuditServiceClient<InterceptedService<Channel, Bearer>> {
    AuditServiceClient::with_interceptor(platform.channel().await, Bearer(user.map(|u| platform.token(u))))
}

fn list(filter: &str) -> ipb::ListAuditEventsRequest {
    ipb::ListAuditEventsRequest { filter: filter.into(), ..Default::default() }
}

type Row = (String, String, String, String);

/// The events `user` lists with `filter`, once at least `count` are there (events are written just after the
/// call), as (principal, method, target, code).
async fn events(platform: &Platform, user: &str, filter: &str, count: usize) -> Vec<Row> {
    events_until(platform, user, filter, |rows| rows.len() >= count).await
}

/// The events `user` lists with `filter` once `done` holds for them (or after 10 s).
async fn events_until(platform: &Platform, user: &str, filter: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let mut client = audit(platform, Some(user)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = client.list_audit_events(list(filter)).await.expect("list").into_inner();
        let rows: Vec<Row> = page
            .audit_events
            .into_iter()
            .map(|e| {
                assert!(e.name.starts_with("auditEvents/") && e.time.is_some());
                (e.principal, e.method.rsplit('/').next().unwrap().to_owned(), e.target, e.code)
            })
            .collect();
        if done(&rows) || tokio::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row(principal: &str, method: &str, target: &str, code: &str) -> (String, String, String, String) {
    (principal.into(), method.into(), target.into(), code.into())
}

async fn changes_are_recorded_and_owners_read_them(platform: Platform) {
    let mut alice = platform.use_cases(Some("alice")).await;
    let created = alice
        .create_use_case(pb::CreateUseCaseRequest {
            use_case: Some(pb::UseCase { display_name: "House prices".into(), ..Default::default() }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let uc = created.name.clone();
    let editor =
        pb::Member { principal: "users/bob".into(), role: pb::MemberRole::Editor as i32, ..Default::default() };
    let member = alice
        .create_member(pb::CreateMemberRequest { parent: uc.clone(), member: Some(editor), request_id: String::new() })
        .await
        .unwrap()
        .into_inner();
    alice.get_use_case(pb::GetUseCaseRequest { name: uc.clone() }).await.unwrap();
    let change = |who: &str| pb::UpdateUseCaseRequest {
        use_case: Some(pb::UseCase { name: uc.clone(), version_label: format!("by {who}"), ..Default::default() }),
        update_mask: Some(FieldMask { paths: vec!["version_label".into()] }),
    };
    let mut bob = platform.use_cases(Some("bob")).await;
    bob.update_use_case(change("bob")).await.expect("an editor changes it");
    let mut carol = platform.use_cases(Some("carol")).await;
    assert_eq!(carol.update_use_case(change("carol")).await.expect_err("stranger").code(), Code::NotFound);

    // Alice's own calls, newest first; the read is not there.
    let own = events(&platform, "alice", "", 2).await;
    assert_eq!(
        own,
        [row("users/alice", "CreateMember", &uc, "OK"), row("users/alice", "CreateUseCase", "", "OK")],
        "changes only, newest first"
    );
    // As the owner she sees every call on the use case and what it contains, refused ones too.
    let on_it = events(&platform, "alice", &format!("target = \"{uc}\""), 3).await;
    assert_eq!(
        on_it,
        [
            row("users/carol", "UpdateUseCase", &uc, "NOT_FOUND"),
            row("users/bob", "UpdateUseCase", &uc, "OK"),
            row("users/alice", "CreateMember", &uc, "OK"),
        ]
    );
    let refused = events(&platform, "alice", &format!("target = \"{uc}\" AND code = NOT_FOUND"), 1).await;
    assert_eq!(refused.len(), 1);
    alice.delete_member(pb::DeleteMemberRequest { name: member.name.clone(), etag: String::new() }).await.unwrap();
    let child = events(&platform, "alice", &format!("target = \"{uc}\" AND principal = \"users/alice\""), 2).await;
    assert_eq!(child[0], row("users/alice", "DeleteMember", &member.name, "OK"), "calls on what it contains count");

    // Bob was an editor, never an owner; carol a stranger: neither reads the use case's log.
    let mut bob_audit = audit(&platform, Some("bob")).await;
    let denied = bob_audit.list_audit_events(list(&format!("target = \"{uc}\""))).await.expect_err("not an owner");
    assert_eq!(denied.code(), Code::NotFound, "bob is no longer a member");
    let mut carol_audit = audit(&platform, Some("carol")).await;
    let hidden = carol_audit.list_audit_events(list(&format!("target = \"{uc}\""))).await.expect_err("stranger");
    assert_eq!(hidden.code(), Code::NotFound);
    let snooping = carol_audit.list_audit_events(list("principal = \"users/alice\"")).await.expect_err("someone else");
    assert_eq!(snooping.code(), Code::PermissionDenied);
    assert_eq!(events(&platform, "carol", "", 1).await, [row("users/carol", "UpdateUseCase", &uc, "NOT_FOUND")]);

    // Assets: the owner reads the log of her asset, others cannot.
    let dataset = platform.push_version("alice", None, b"rows").await;
    let committed = |rows: &[Row]| rows.iter().any(|(_, method, _, _)| method == "CommitUpload");
    let asset_log = events_until(&platform, "alice", &format!("target = \"{dataset}\""), committed).await;
    let methods: Vec<_> = asset_log.iter().map(|(_, m, _, _)| m.as_str()).collect();
    assert!(methods.contains(&"CommitUpload") && methods.contains(&"CreateUpload"), "{methods:?}");
    let mut bob_assets = platform.assets(Some("bob")).await;
    let read = bob_assets.get_asset(apb::GetAssetRequest { name: dataset.clone() }).await;
    assert_eq!(read.expect_err("not bob's").code(), Code::NotFound);
    let foreign = bob_audit.list_audit_events(list(&format!("target = \"{dataset}\""))).await;
    assert_eq!(foreign.expect_err("not bob's asset").code(), Code::NotFound);

    for (filter, field) in [("target = \"users/alice\"", "filter"), ("code = MAYBE", "filter"), ("size = 1", "filter")]
    {
        let bad = bob_audit.list_audit_events(list(filter)).await.expect_err("bad filter");
        assert_eq!(bad.code(), Code::InvalidArgument, "{filter}");
        assert!(bad.message().contains(field));
    }
    let anonymous = audit(&platform, None).await.list_audit_events(list("")).await.expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    platform.stop().await;
}
