//! The shared serving loop: health follows the lifecycle and shutdown drains within its bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_common::serve::{Served, serve};
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

#[tokio::test]
async fn health_turns_not_serving_on_shutdown_then_the_server_stops() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = Served { routes: Routes::default(), names: vec![], rules: Default::default() };
    let server = tokio::spawn(serve(listener, async { stopped.await.unwrap_or(()) }, served, Duration::from_secs(2)));

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let mut updates = health.watch(HealthCheckRequest { service: String::new() }).await.expect("watch").into_inner();
    let first = updates.next().await.expect("an update").expect("ok");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    stop.send(()).unwrap();
    let next = updates.next().await.expect("an update").expect("ok");
    assert_eq!(next.status, ServingStatus::NotServing as i32, "health flips before the drain");
    drop(updates);
    let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
    finished.expect("stops within the drain bound").unwrap().expect("clean stop");
}
