//! The gateway's health service mirrors each upstream's: a client asking the gateway about
//! `highwind.asset.v1.AssetService` learns whether asset-svc is serving right now.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};

use crate::router::Upstreams;

/// Watches every service in `services` on its upstream and reports its status through `reporter`. The tasks
/// live as long as the returned set.
pub async fn mirror(reporter: &HealthReporter, upstreams: &Upstreams, services: &[&'static str]) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for &service in services {
        reporter.set_service_status(service, ServingStatus::NotServing).await;
        let Some(channel) = upstreams.channel_of(service) else { continue };
        let reporter = reporter.clone();
        tasks.spawn(async move {
            let mut client = HealthClient::new(channel);
            loop {
                let request = HealthCheckRequest { service: service.to_owned() };
                if let Ok(response) = client.watch(request).await {
                    let mut updates = response.into_inner();
                    while let Some(Ok(update)) = updates.next().await {
                        reporter.set_service_status(service, serving_status(update.status)).await;
                    }
                }
                reporter.set_service_status(service, ServingStatus::NotServing).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    tasks
}

fn serving_status(status: i32) -> ServingStatus {
    match health_check_response::ServingStatus::try_from(status) {
        Ok(health_check_response::ServingStatus::Serving) => ServingStatus::Serving,
        Ok(health_check_response::ServingStatus::NotServing) => ServingStatus::NotServing,
        _ => ServingStatus::Unknown,
    }
}
