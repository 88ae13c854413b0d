//! The asset service's own gRPC surface on port 0, on SQLite and on PostgreSQL: it believes only principals the
//! gateway signed, and serves the same behaviour on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use highwind_common::{
    config::{Secret, ServerConfig},
    db::testing,
    principal::{PRINCIPAL_HEADER, Principal, PrincipalSigner, SIGNATURE_HEADER},
};
use highwind_proto::asset::v1::{self as pb, asset_service_client::AssetServiceClient};
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "an-internal-secret-of-at-least-32-bytes";

struct Service {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), asset_svc::ServiceError>>,
}

async fn start(database_url: String, dir: &std::path::Path) -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ServerConfig {
        listen: addr,
        database_url,
        max_connections: 4,
        internal_secret: Secret::new(SECRET),
        drain_seconds: 2,
    };
    let mut config = asset_svc::AssetConfig { server, ..Default::default() };
    config.blobs.url = dir.join("blobs").display().to_string();
    config.blobs.staging_dir = dir.join("staging");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(asset_svc::serve(listener, async { stopped.await.unwrap_or(()) }, config));
    Service { addr, stop, task }
}

async fn client(service: &Service) -> AssetServiceClient<Channel> {
    let url = format!("http://{}", service.addr);
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return AssetServiceClient::new(channel);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("service did not start");
}

fn as_user<T>(message: T, user: &str, key: &[u8]) -> Request<T> {
    let principal = Principal::user(user);
    let mut request = Request::new(message);
    let signature = PrincipalSigner::new(key.to_vec()).sign(&principal, SystemTime::now());
    request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().unwrap());
    request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().unwrap());
    request
}

fn create(name: &str) -> pb::CreateAssetRequest {
    pb::CreateAssetRequest {
        asset: Some(pb::Asset { kind: pb::AssetKind::Dataset as i32, display_name: name.into(), ..Default::default() }),
        request_id: String::new(),
    }
}

async fn only_signed_principals_are_believed(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let service = start(database_url, dir.path()).await;
    let mut assets = client(&service).await;

    let err = assets.create_asset(create("anonymous")).await.expect_err("no principal");
    assert_eq!(err.code(), Code::Unauthenticated);
    let forged = as_user(create("forged"), "mallory", b"a-key-that-is-not-the-shared-secret!!");
    assert_eq!(assets.create_asset(forged).await.expect_err("forged").code(), Code::Unauthenticated);
    let mut unsigned = Request::new(create("unsigned"));
    unsigned.metadata_mut().insert(PRINCIPAL_HEADER, "users/alice".parse().unwrap());
    assert_eq!(assets.create_asset(unsigned).await.expect_err("unsigned").code(), Code::Unauthenticated);

    let created = assets.create_asset(as_user(create("signed"), "alice", SECRET.as_bytes())).await.expect("signed");
    assert_eq!(created.get_ref().owner, "users/alice");
    let listed = assets
        .list_assets(as_user(pb::ListAssetsRequest::default(), "alice", SECRET.as_bytes()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.assets.len(), 1, "no refused call stored anything");

    service.stop.send(()).unwrap();
    service.task.await.unwrap().expect("clean stop");
}

#[tokio::test]
async fn sqlite_only_signed_principals_are_believed() {
    let dir = tempfile::tempdir().unwrap();
    only_signed_principals_are_believed(testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_only_signed_principals_are_believed() {
    let Some(url) = testing::fresh_postgres_url().await else {
        eprintln!("postgres_only_signed_principals_are_believed skipped: no PostgreSQL server reachable");
        return;
    };
    only_signed_principals_are_believed(url).await;
}
