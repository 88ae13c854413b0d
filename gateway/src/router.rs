//! Forwarding calls to the service that owns them, by service name, without decoding the payload.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderName, Request, Response, Uri, header};
use tonic::{
    Status,
    body::Body,
    transport::{Channel, Endpoint},
};
use tower::{Service, ServiceExt};

use crate::limit::{LimitedBody, Tripped};

/// Headers that describe one hop and must not be forwarded to the next.
const HOP_HEADERS: [HeaderName; 5] =
    [header::CONNECTION, header::HOST, header::CONTENT_LENGTH, header::UPGRADE, header::TRANSFER_ENCODING];

/// One upstream service: where it is and what to call it in errors.
#[derive(Debug, Clone)]
struct Upstream {
    label: &'static str,
    channel: Channel,
}

/// The routing table: fully qualified public service name → the service process that serves it.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    by_service: Arc<HashMap<&'static str, Upstream>>,
}

/// A configured upstream address is not a usable URI.
#[derive(Debug, thiserror::Error)]
#[error("upstream {label} has an invalid address {address:?}: {reason}")]
pub struct UpstreamError {
    label: &'static str,
    address: String,
    reason: String,
}

impl Upstreams {
    /// Routes every service in `services` to `address` (`http://host:port`). Connections are made lazily and
    /// re-made after failures, so a service that starts later or restarts is picked up.
    pub fn route(
        mut self,
        label: &'static str,
        address: &str,
        services: &[&'static str],
    ) -> Result<Self, UpstreamError> {
        let endpoint = Endpoint::from_shared(address.to_owned()).map_err(|e| UpstreamError {
            label,
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
        let channel = endpoint
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5))
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .connect_lazy();
        let map = Arc::make_mut(&mut self.by_service);
        for service in services {
            map.insert(service, Upstream { label, channel: channel.clone() });
        }
        Ok(self)
    }

    /// The channel to the service that owns `label`, for the gateway's own calls (health).
    pub fn channel_of(&self, service: &str) -> Option<Channel> {
        self.by_service.get(service).map(|u| u.channel.clone())
    }

    fn find(&self, path: &str) -> Option<&Upstream> {
        let service = path.strip_prefix('/')?.split('/').next()?;
        self.by_service.get(service)
    }
}

/// The fallback of the gateway's router: forwards every call for a routed service to its upstream.
#[derive(Debug, Clone)]
pub struct Proxy {
    upstreams: Upstreams,
    max_message_bytes: usize,
}

impl Proxy {
    /// Forwards by `upstreams`, refusing request messages over `max_message_bytes`.
    pub fn new(upstreams: Upstreams, max_message_bytes: usize) -> Self {
        Self { upstreams, max_message_bytes }
    }
}

impl<B> Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let Some(upstream) = self.upstreams.find(&path).cloned() else {
            let status = Status::unimplemented(format!("no public service serves {path}"));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        // The channel supplies scheme and authority; keep only the path.
        parts.uri = parts.uri.path_and_query().map_or_else(
            || Uri::from_static("/"),
            |pq| Uri::builder().path_and_query(pq.clone()).build().unwrap_or_else(|_| Uri::from_static("/")),
        );
        for name in &HOP_HEADERS {
            parts.headers.remove(name);
        }
        let tripped = Tripped::default();
        let body = LimitedBody::new(body, self.max_message_bytes, tripped.clone());
        let mut request = Request::from_parts(parts, Body::new(body));
        let Upstream { label, mut channel } = upstream;
        let max = self.max_message_bytes;
        Box::pin(async move {
            // Inside the call's span, so the next hop continues this trace.
            highwind_common::telemetry::inject_current(request.headers_mut());
            let forwarded = match channel.ready().await {
                Ok(ready) => ready.call(request).await,
                Err(error) => Err(error),
            };
            match forwarded {
                Ok(response) => Ok(response),
                Err(_) if tripped.get() => Ok(Status::resource_exhausted(format!(
                    "a request message exceeds the gateway's limit of {max} bytes"
                ))
                .into_http()),
                Err(error) => {
                    tracing::warn!(upstream = label, path = %path, error = %error, "upstream unavailable");
                    Ok(Status::unavailable(format!("the {label} service is unavailable; try again shortly"))
                        .into_http())
                }
            }
        })
    }
}
