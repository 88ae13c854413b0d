//! The serving loop every service shares: health and reflection next to its own routes, TCP_NODELAY, HTTP/2
//! limits set on purpose ([`crate::http2_limits`]), every error bounded in size ([`crate::bounded_errors`]), and
//! on shutdown NOT_SERVING first, then a bounded drain.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

/// How long in-flight calls may take to finish after shutdown begins.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener or the HTTP/2 server failed.
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The descriptor set for reflection is broken (a build problem).
    #[error("reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// What to serve besides health and reflection.
#[derive(Debug)]
pub struct Served {
    /// The service's own routes.
    pub routes: Routes,
    /// Fully qualified names of the services in `routes`, for health and reflection.
    pub names: Vec<&'static str>,
    /// The declared access of every method; undeclared methods are denied.
    pub rules: crate::access::AccessRules,
}

/// Serves `served` plus `grpc.health.v1` and reflection (v1 and v1alpha) on `listener` until `shutdown` resolves,
/// then reports NOT_SERVING and lets in-flight calls finish for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    served: Served,
    drain: Duration,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in served.names.iter().copied().chain([""]) {
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
    let routes = served
        .routes
        .add_service(health)
        .add_service(reflection_builder(&served.names).build_v1()?)
        .add_service(reflection_builder(&served.names).build_v1alpha()?);

    let local = listener.local_addr().ok();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let names = served.names.clone();
    let rules = served.rules.clone();
    let ready = reporter.clone();
    let result = with_drain(
        |stop| async move {
            for name in names.iter().copied().chain([""]) {
                ready.set_service_status(name, ServingStatus::Serving).await;
            }
            tracing::info!(addr = ?local, services = ?names, "serving");
            Server::builder()
                .http2_max_header_list_size(crate::http2_limits::SERVICE_MAX_HEADER_LIST_BYTES)
                .initial_connection_window_size(crate::http2_limits::SERVICE_CONNECTION_WINDOW_BYTES)
                .initial_stream_window_size(crate::http2_limits::SERVICE_STREAM_WINDOW_BYTES)
                .trace_fn(|request| crate::telemetry::request_span("grpc", request))
                // Outermost, so even a refusal of the access layer or a decoder's error is bounded.
                .layer(crate::bounded_errors::BoundedErrorsLayer)
                .layer(crate::access::AccessLayer::new(rules))
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, stop)
                .await
        },
        shutdown,
        async {
            for name in served.names.iter().copied().chain([""]) {
                reporter.set_service_status(name, ServingStatus::NotServing).await;
            }
        },
        drain,
    )
    .await;
    Ok(result?)
}

/// Runs the server `make` builds (it must stop taking calls once its `stop` future resolves) until `shutdown`
/// resolves; then runs `on_shutdown` (report NOT_SERVING), fires `stop` and lets in-flight calls finish for at
/// most `drain` before giving up on them.
pub async fn with_drain<Make, Fut, E>(
    make: Make,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Result<(), E>
where
    Make: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = make(Box::pin(async {
        let _ = stop_rx.await;
    }));
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    on_shutdown.await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(drain_secs = drain.as_secs(), "drain timed out; closing remaining calls");
            Ok(())
        }
    }
}

/// Reflection over the Highwind contracts and health, advertising exactly `names` and health.
pub fn reflection_builder(names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(highwind_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in names {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}
