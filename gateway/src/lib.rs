//! Highwind's gateway: the one public door. One listener speaks gRPC (HTTP/2) and gRPC-Web (HTTP/1.1 and
//! HTTP/2) with CORS, authenticates callers, serves health and reflection for every public service, and
//! forwards each call untouched to the service that owns it.
//!
//! Request path: host check → plain HTTP routes (dev issuer, registry tokens) → CORS → gRPC-Web translation →
//! authentication → local health/reflection, or the proxy.

pub mod access;
pub mod audit;
pub mod coalesce;
pub mod config;
pub mod guard;
pub mod health;
pub mod host;
pub mod http_routes;
pub mod identity;
pub mod message_size;
pub mod registry;
pub mod replay;
pub mod router;
#[cfg(feature = "standalone")]
pub mod standalone;
pub mod storage;
pub mod upstream_body;
pub mod upstream_pool;
pub mod web;

use std::{future::Future, time::Duration};

use highwind_common::{
    access::AccessLayer,
    principal::{PrincipalSigner, VerifyPrincipal},
    serve::{reflection_builder, with_drain},
};
use highwind_proto::{
    GATEWAY_SERVICES, PUBLIC_SERVICES,
    identity::v1::{api_key_service_server::ApiKeyServiceServer, audit_service_server::AuditServiceServer},
};
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;
use tonic_web::GrpcWebLayer;
use tower::{Layer, ServiceBuilder};

use crate::{
    config::GatewayConfig,
    identity::{
        auth::{AuthLayer, Authenticator},
        keys, oidc, rate_limit,
    },
    router::{Proxy, Upstreams},
};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// An upstream address is unusable.
    #[error(transparent)]
    Upstream(#[from] router::UpstreamError),
    /// The reflection descriptors are broken (a build problem).
    #[error("reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gateway's database could not be opened.
    #[error(transparent)]
    Database(#[from] highwind_common::db::DbError),
    /// The registry's signing keys cannot be used.
    #[error("registry token keys: {0}")]
    Registry(String),
    /// The listener failed.
    #[error("gateway server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains for at most `drain_seconds`.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: GatewayConfig,
) -> Result<(), GatewayError> {
    serve_with(listener, shutdown, config, axum::Router::new()).await
}

/// [`serve`], with plain HTTP `routes` under the embedded issuer's path next to the gRPC ones (and the registry
/// token endpoint when configured).
pub async fn serve_with(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    config: GatewayConfig,
    routes: axum::Router,
) -> Result<(), GatewayError> {
    let extra_routes = routes;
    let upstreams = Upstreams::default()
        .route("asset", &config.upstreams.asset, highwind_proto::ASSET_SERVICE.services)?
        .route("usecase", &config.upstreams.usecase, highwind_proto::USECASE_SERVICE.services)?
        .route("pipeline", &config.upstreams.pipeline, highwind_proto::PIPELINE_SERVICE.services)?;

    let signer = PrincipalSigner::new(config.internal_secret.expose().as_bytes());
    let db = storage::open(&config.database_url).await?;
    let api_keys = keys::ApiKeys::new(keys::open(&db));
    let audit_store = audit::store::open(&db);
    let recorder = audit::Recorder::start(audit_store.clone());
    let audit_api = audit::AuditApi::new(
        audit_store,
        highwind_common::page_token::PageTokens::new(config.internal_secret.derive("gateway audit page tokens")),
        upstreams.channel_of("highwind.usecase.v1.UseCaseService"),
        upstreams.channel_of("highwind.asset.v1.AssetService"),
        signer.clone(),
    );
    let registry_assets = upstreams.channel_of("highwind.asset.v1.AssetService");
    let key_api = keys::ApiKeyApi::new(
        api_keys.clone(),
        highwind_common::page_token::PageTokens::new(config.internal_secret.derive("gateway page tokens")),
    );

    let (reporter, health) = tonic_health::server::health_reporter();
    let _mirrors = health::mirror(&reporter, &upstreams, PUBLIC_SERVICES).await;
    for service in GATEWAY_SERVICES {
        reporter.set_service_status(*service, ServingStatus::Serving).await;
    }
    let advertised: Vec<&'static str> = PUBLIC_SERVICES.iter().chain(GATEWAY_SERVICES).copied().collect();
    let local = Routes::new(health)
        .add_service(reflection_builder(&advertised).build_v1()?)
        .add_service(reflection_builder(&advertised).build_v1alpha()?)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            AccessLayer::new(access::rules()).layer(ApiKeyServiceServer::new(key_api)),
            VerifyPrincipal(signer.clone()),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            AccessLayer::new(access::rules()).layer(AuditServiceServer::new(audit_api)),
            VerifyPrincipal(signer.clone()),
        ));
    let routes = Routes::from(
        local.into_axum_router().fallback_service(
            Proxy::new(upstreams, config.max_message_bytes)
                .with_default_deadline(Duration::from_secs(config.default_deadline_seconds)),
        ),
    );

    let tokens = config.tokens.iter().map(|(user, token)| (user.as_str(), token.expose()));
    let authenticator = Authenticator::new(tokens, signer.clone())
        .with_oidc(oidc::OidcVerifier::new(config.oidc_issuers.clone()))
        .with_api_keys(api_keys);
    let authenticator = match config.rate_limit {
        Some(limit) => authenticator.with_rate_limit(rate_limit::RateLimiter::new(limit)),
        None => authenticator,
    };
    let mut extra_routes = extra_routes;
    if let Some(registry) = &config.registry {
        let keys = highwind_common::registry::keys::RegistryKeys::open(&registry.keys_dir)
            .map_err(|e| GatewayError::Registry(e.to_string()))?;
        let endpoint = registry::TokenEndpoint::new(
            registry.clone(),
            std::sync::Arc::new(keys),
            authenticator.clone(),
            registry_assets,
            signer.clone(),
        );
        extra_routes = extra_routes.merge(endpoint.routes());
    }
    let local_addr = listener.local_addr().ok();
    let allowed_hosts = host::AllowedHosts::from_config(&config.allowed_hosts);
    let layers = ServiceBuilder::new()
        .layer(guard::GuardLayer::new(move |request: &http::Request<_>| {
            host::refuse_other_hosts(&allowed_hosts, request)
        }))
        .layer(http_routes::HttpRoutesLayer::new(
            &[oidc::dev_issuer::PATH, registry::TOKEN_PATH, registry::EVENTS_PATH],
            extra_routes,
        ))
        .map_response(web::drop_unallowed_cors)
        .layer(web::cors(local_addr.unwrap_or(config.listen), &config.allowed_origins))
        .layer(guard::GuardLayer::new(web::refuse_json))
        .layer(web::single_message::SingleMessageLayer::new(config.max_message_bytes))
        .layer(GrpcWebLayer::new())
        // Inside gRPC-Web, which turns trailers into body bytes: every status is still a header here.
        .layer(highwind_common::bounded_errors::BoundedErrorsLayer)
        .layer(AuthLayer::new(authenticator))
        .layer(audit::AuditLayer::new(access::platform_rules(), recorder))
        .into_inner();

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let drain = Duration::from_secs(config.drain_seconds);
    with_drain(
        |stop| async move {
            tracing::info!(addr = ?local_addr, "gateway serving");
            Server::builder()
                .accept_http1(true)
                .http2_max_header_list_size(highwind_common::http2_limits::GATEWAY_MAX_HEADER_LIST_BYTES)
                .max_concurrent_streams(config.max_concurrent_streams)
                .trace_fn(|request| highwind_common::telemetry::request_span("gateway", request))
                .layer(layers)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, stop)
                .await
        },
        shutdown,
        reporter.set_service_status("", ServingStatus::NotServing),
        drain,
    )
    .await?;
    Ok(())
}
