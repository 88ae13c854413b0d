//! The use-case service's own gRPC surface on port 0, on SQLite and on PostgreSQL: it believes only principals the
//! gateway signed, and it answers the gateway's audit question by the caller's role.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use highwind_common::{
    config::{Secret, ServerConfig},
    db::testing,
    principal::{Principal, PrincipalSigner},
};
use highwind_proto::{
    audit::internal::v1::{AuthorizeAuditReadRequest, audit_access_service_client::AuditAccessServiceClient},
    usecase::v1::{self as pb, use_case_service_client::UseCaseServiceClient},
};
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "an-internal-secret-of-at-least-32-bytes";

struct Service {
    channel: Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), highwind_common::serve::RunError>>,
}

/// usecase-svc alone; asset-svc is nowhere (no call here needs it).
async fn start(database_url: String) -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ServerConfig {
        listen: addr,
        database_url,
        max_connections: 4,
        internal_secret: Secret::new(SECRET),
        drain_seconds: 2,
    };
    let assets = usecase_svc::AssetsConfig { url: "http://127.0.0.1:9".into() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = usecase_svc::UseCaseConfig { server, assets };
    let task = tokio::spawn(usecase_svc::serve(listener, async { stopped.await.unwrap_or(()) }, config));
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return Service { channel, stop, task };
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("service did not start");
}

fn signed<T>(message: T, user: &str, key: &str) -> Request<T> {
    PrincipalSigner::new(key.as_bytes().to_vec()).request(&Principal::user(user), message).unwrap()
}

fn as_user<T>(message: T, user: &str) -> Request<T> {
    signed(message, user, SECRET)
}

fn new_use_case(name: &str) -> pb::CreateUseCaseRequest {
    pb::CreateUseCaseRequest {
        use_case: Some(pb::UseCase { display_name: name.into(), ..Default::default() }),
        request_id: String::new(),
    }
}

async fn roles_decide_what_callers_are_told(database_url: String) {
    let service = start(database_url).await;
    let mut use_cases = UseCaseServiceClient::new(service.channel.clone());
    let mut audit = AuditAccessServiceClient::new(service.channel.clone());

    let unsigned = use_cases.create_use_case(Request::new(new_use_case("nobody's"))).await;
    assert_eq!(unsigned.expect_err("unsigned").code(), Code::Unauthenticated);
    let forged = signed(new_use_case("forged"), "alice", "another-secret-of-at-least-32-bytes-long");
    assert_eq!(use_cases.create_use_case(forged).await.expect_err("forged").code(), Code::Unauthenticated);

    let created = use_cases.create_use_case(as_user(new_use_case("house prices"), "alice")).await.unwrap();
    let name = created.into_inner().name;
    let editor =
        pb::Member { principal: "users/bob".into(), role: pb::MemberRole::Editor as i32, ..Default::default() };
    let add = pb::CreateMemberRequest { parent: name.clone(), member: Some(editor), request_id: String::new() };
    use_cases.create_member(as_user(add, "alice")).await.unwrap();

    let ask = |user: &str, target: &str| as_user(AuthorizeAuditReadRequest { target: target.into() }, user);
    assert!(audit.authorize_audit_read(ask("alice", &name)).await.unwrap().into_inner().owner, "the owner");
    assert!(!audit.authorize_audit_read(ask("bob", &name)).await.unwrap().into_inner().owner, "an editor");
    let stranger = audit.authorize_audit_read(ask("carol", &name)).await.expect_err("a stranger");
    assert_eq!(stranger.code(), Code::NotFound);
    let hidden = use_cases.get_use_case(as_user(pb::GetUseCaseRequest { name: name.clone() }, "carol")).await;
    assert_eq!(hidden.expect_err("same answer as GetUseCase").code(), Code::NotFound);
    let malformed = audit.authorize_audit_read(ask("alice", "useCases/not-a-uuid")).await.expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("target"), "{}", malformed.message());

    service.stop.send(()).unwrap();
    service.task.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn sqlite_roles_decide_what_callers_are_told() {
    let dir = tempfile::tempdir().unwrap();
    roles_decide_what_callers_are_told(testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_roles_decide_what_callers_are_told() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("postgres_roles_decide_what_callers_are_told skipped: no PostgreSQL server");
        return;
    };
    roles_decide_what_callers_are_told(url).await;
}
