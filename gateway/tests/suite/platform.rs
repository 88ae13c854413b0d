//! The platform as an operator sees it: reflection and health through the gateway, a service that is down,
//! and a restart on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, net::SocketAddr};

use highwind_common::config::Secret;
use highwind_proto::{PUBLIC_SERVICES, asset::v1 as pb};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::{v1, v1alpha};

use crate::support::Platform;

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_public_service_and_health() {
    let platform = Platform::start().await;
    let expected: BTreeSet<String> =
        PUBLIC_SERVICES.iter().map(|s| (*s).to_owned()).chain(["grpc.health.v1.Health".to_owned()]).collect();

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(platform.channel().await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.expect("v1").into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.expect("a response").expect("ok").message_response
    else {
        panic!("not a service list");
    };
    let listed: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(expected.is_subset(&listed), "v1 lists {listed:?}");

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(platform.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "highwind.asset.v1.AssetService".into(),
        )),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.expect("v1alpha").into_inner();
    let response = stream.next().await.expect("a response").expect("ok");
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "v1alpha answers symbol lookups for older grpcurl"
    );
    platform.stop().await;
}

#[tokio::test]
async fn health_through_the_gateway_is_serving_for_every_service() {
    let platform = Platform::start().await;
    let mut health = HealthClient::new(platform.channel().await);
    for service in PUBLIC_SERVICES.iter().copied().chain([""]) {
        let response = health.check(HealthCheckRequest { service: service.into() }).await.expect("check");
        assert_eq!(response.into_inner().status, ServingStatus::Serving as i32, "{service}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn a_service_that_is_down_answers_unavailable_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = gateway::config::GatewayConfig {
        internal_secret: Secret::new("s".repeat(32)),
        database_url: highwind_common::db::testing::fresh_sqlite_url(data.path()),
        ..Default::default()
    };
    config.tokens.insert("alice".into(), Secret::new("token-of-alice-123"));
    config.upstreams.asset = dead;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(listener, async { stopped.await.unwrap_or(()) }, config));

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = pb::asset_service_client::AssetServiceClient::with_interceptor(
        channel.clone(),
        crate::support::Bearer(Some("token-of-alice-123".into())),
    );
    let err = client.list_assets(pb::ListAssetsRequest::default()).await.expect_err("down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("asset"), "{err:?}");
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest { service: "highwind.asset.v1.AssetService".into() })
        .await
        .expect("check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_restart_on_the_same_data_directory_keeps_tokens_and_assets() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let mut alice = platform.assets(Some("alice")).await;
    let created = alice
        .create_asset(pb::CreateAssetRequest {
            asset: Some(pb::Asset {
                kind: pb::AssetKind::Pipeline as i32,
                display_name: "train".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner();
    drop(alice);
    let dir = platform.stop().await;

    let platform = Platform::builder().in_dir(dir).start().await;
    let mut alice = pb::asset_service_client::AssetServiceClient::with_interceptor(
        platform.channel().await,
        crate::support::Bearer(Some(token)),
    );
    let fetched =
        alice.get_asset(pb::GetAssetRequest { name: created.name.clone() }).await.expect("the old token works");
    assert_eq!(fetched.into_inner(), created);
    platform.stop().await;
}

#[tokio::test]
async fn each_principal_is_held_to_its_rate_limit_with_retry_info() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = gateway::config::GatewayConfig {
        internal_secret: Secret::new("s".repeat(32)),
        database_url: highwind_common::db::testing::fresh_sqlite_url(data.path()),
        rate_limit: Some(gateway::identity::rate_limit::RateLimitConfig { requests_per_second: 0.5, burst: 3.0 }),
        ..Default::default()
    };
    config.tokens.insert("alice".into(), Secret::new("token-of-alice-123"));
    config.tokens.insert("bob".into(), Secret::new("token-of-bob-45678"));
    // No service behind it: calls within budget reach the proxy and come back UNAVAILABLE.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.upstreams.asset = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(listener, async { stopped.await.unwrap_or(()) }, config));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let client = |token: &str| {
        pb::asset_service_client::AssetServiceClient::with_interceptor(
            channel.clone(),
            crate::support::Bearer(Some(token.into())),
        )
    };
    let mut alice = client("token-of-alice-123");
    for _ in 0..3 {
        let err = alice.list_assets(pb::ListAssetsRequest::default()).await.expect_err("no upstream");
        assert_eq!(err.code(), Code::Unavailable, "within budget: {err:?}");
    }
    let limited = alice.list_assets(pb::ListAssetsRequest::default()).await.expect_err("over budget");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let details = tonic_types::StatusExt::get_error_details(&limited);
    let delay = details.retry_info().and_then(|r| r.retry_delay).expect("retry info");
    assert!(delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(2), "{delay:?}");
    let other = client("token-of-bob-45678").list_assets(pb::ListAssetsRequest::default()).await;
    assert_eq!(other.expect_err("no upstream").code(), Code::Unavailable, "bob has his own budget");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
