//! Forwarding calls to the service that owns them, by service name, without decoding the payload.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, Uri, header};
use tonic::{
    Status,
    body::Body,
    transport::{Channel, Endpoint},
};
use tower::{Service, ServiceExt};

use highwind_common::principal::PRINCIPAL_HEADER;

use crate::{
    coalesce::Coalesced,
    message_size::{LimitedBody, Tripped},
    replay::replayable,
    upstream_body::UpstreamBody,
    upstream_pool::Pool,
};

/// Headers that describe one hop and must not be forwarded to the next.
const HOP_HEADERS: [HeaderName; 5] =
    [header::CONNECTION, header::HOST, header::CONTENT_LENGTH, header::UPGRADE, header::TRANSFER_ENCODING];

/// The gRPC deadline header.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// One upstream service: what to call it in errors and its connections.
#[derive(Debug, Clone)]
struct Upstream {
    label: &'static str,
    pool: Pool,
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
    /// Routes every service in `services` to `address` (`http://host:port`) over a small pool of connections
    /// ([`Pool`]).
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
        let pool = Pool::new(endpoint);
        let map = Arc::make_mut(&mut self.by_service);
        for service in services {
            map.insert(service, Upstream { label, pool: pool.clone() });
        }
        Ok(self)
    }

    /// A channel to the service that owns `service`, for the gateway's own calls (health, audit, registry).
    pub fn channel_of(&self, service: &str) -> Option<Channel> {
        self.by_service.get(service).map(|u| u.pool.channel(0))
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
    default_deadline: Option<HeaderValue>,
}

impl Proxy {
    /// Forwards by `upstreams`, refusing request messages over `max_message_bytes`.
    pub fn new(upstreams: Upstreams, max_message_bytes: usize) -> Self {
        Self { upstreams, max_message_bytes, default_deadline: None }
    }

    /// Gives unary calls that arrive without a `grpc-timeout` this one, so no call waits on a stuck upstream
    /// forever; streaming calls (uploads, reads, watches) keep whatever the client asked for.
    pub fn with_default_deadline(self, deadline: Duration) -> Self {
        // grpc-timeout takes at most 8 digits.
        let seconds = deadline.as_secs().clamp(1, 99_999_999);
        Self { default_deadline: HeaderValue::from_str(&format!("{seconds}S")).ok(), ..self }
    }
}

/// `/package.Service/Method` of every method that streams in either direction, from the served descriptors.
fn streaming_methods() -> &'static HashSet<String> {
    static METHODS: LazyLock<HashSet<String>> =
        LazyLock::new(|| methods_where(|m| m.client_streaming() || m.server_streaming()));
    &METHODS
}

/// `/package.Service/Method` of every method whose request is a stream.
fn client_streaming_methods() -> &'static HashSet<String> {
    static METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| methods_where(|m| m.client_streaming()));
    &METHODS
}

fn methods_where(keep: fn(&prost_types::MethodDescriptorProto) -> bool) -> HashSet<String> {
    let Ok(set) = <prost_types::FileDescriptorSet as prost::Message>::decode(highwind_proto::FILE_DESCRIPTOR_SET)
    else {
        return HashSet::new();
    };
    let mut methods = HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in service.method.iter().filter(|m| keep(m)) {
                methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
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
        if let Some(deadline) = &self.default_deadline
            && !parts.headers.contains_key(GRPC_TIMEOUT)
            && !streaming_methods().contains(&path)
        {
            parts.headers.insert(GRPC_TIMEOUT, deadline.clone());
        }
        let tripped = Tripped::default();
        let body = LimitedBody::new(body, self.max_message_bytes, tripped.clone());
        // Only a request stream can be many small frames; a single message goes on as it came.
        let body =
            if client_streaming_methods().contains(&path) { Body::new(Coalesced::new(body)) } else { Body::new(body) };
        let (body, unread) = replayable(body);
        let caller = parts.headers.get(PRINCIPAL_HEADER).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        let mut request = Request::from_parts(parts, Body::new(body));
        let Upstream { label, pool } = upstream;
        let max = self.max_message_bytes;
        Box::pin(async move {
            // Inside the call's span, so the next hop continues this trace.
            highwind_common::telemetry::inject_current(request.headers_mut());
            let again = resend_parts(&request);
            let (slot, channel) = pool.pick(&caller);
            let mut forwarded = forward(channel, request).await;
            if let Err(error) = &forwarded
                && !tripped.get()
                && let Some(body) = unread.take()
            {
                // Nothing of the call reached the service: send it once more on a connection made for it.
                tracing::info!(upstream = label, path = %path, error = %error, "call not started; retrying");
                forwarded = match pool.reconnect(slot).await {
                    Ok(channel) => forward(channel, again.with_body(body)).await,
                    Err(error) => Err(error),
                };
            }
            match forwarded {
                Ok(response) => Ok(response.map(|body| Body::new(UpstreamBody::new(body, label)))),
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

/// Sends `request` on `channel` once it is ready.
async fn forward(mut channel: Channel, request: Request<Body>) -> Result<Response<Body>, tonic::transport::Error> {
    channel.ready().await?;
    channel.call(request).await
}

/// What it takes to send a request again: everything but its body (extensions are the gateway's own and stay).
struct ResendParts {
    method: http::Method,
    uri: Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

fn resend_parts(request: &Request<Body>) -> ResendParts {
    ResendParts {
        method: request.method().clone(),
        uri: request.uri().clone(),
        version: request.version(),
        headers: request.headers().clone(),
    }
}

impl ResendParts {
    fn with_body(self, body: Body) -> Request<Body> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        request
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    /// An upstream that answers every call OK and reports, in `x-seen-timeout`, the deadline it was given.
    async fn deadline_echo() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let echo = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                        let mut response =
                            Response::builder().header("content-type", "application/grpc").header("grpc-status", "0");
                        if let Some(seen) = request.headers().get(GRPC_TIMEOUT) {
                            response = response.header("x-seen-timeout", seen.clone());
                        }
                        Ok::<_, Infallible>(response.body(Full::new(Bytes::new())).expect("response"))
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), echo).await;
                });
            }
        });
        format!("http://{addr}")
    }

    async fn deadline_seen(proxy: &mut Proxy, path: &str, sent: Option<&str>) -> Option<String> {
        let mut request = Request::builder().method("POST").uri(path).header("content-type", "application/grpc");
        if let Some(sent) = sent {
            request = request.header(GRPC_TIMEOUT, sent);
        }
        let response = proxy.call(request.body(Full::new(Bytes::new())).expect("request")).await.expect("infallible");
        response.headers().get("x-seen-timeout").map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[tokio::test]
    async fn unary_calls_without_a_deadline_get_the_default_and_others_keep_theirs() {
        let upstream = deadline_echo().await;
        let services = ["highwind.asset.v1.AssetService", "highwind.asset.v1.UploadService"];
        let upstreams = Upstreams::default().route("asset", &upstream, &services).expect("route");
        let mut proxy = Proxy::new(upstreams, 1 << 20).with_default_deadline(Duration::from_secs(30));
        let unary = "/highwind.asset.v1.AssetService/GetAsset";
        assert_eq!(deadline_seen(&mut proxy, unary, None).await.as_deref(), Some("30S"));
        assert_eq!(deadline_seen(&mut proxy, unary, Some("250m")).await.as_deref(), Some("250m"), "the client's wins");
        let streaming = "/highwind.asset.v1.UploadService/ReadFile";
        assert_eq!(deadline_seen(&mut proxy, streaming, None).await, None, "streams run as long as they need");
    }

    /// An upstream whose GetAsset answers with a `grpc-message` of `x-size` bytes (a peer that breaks the rules),
    /// and whose ReadFile sends one message and then ends OK once `x-ticks` more calls arrived.
    async fn oversized_errors() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let calls = calls.clone();
                tokio::spawn(async move {
                    let serve = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let calls = calls.clone();
                        async move {
                            let grpc = Response::builder().header("content-type", "application/grpc");
                            if request.uri().path().ends_with("/ReadFile") {
                                let (tx, rx) =
                                    tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(2);
                                tokio::spawn(async move {
                                    let _ =
                                        tx.send(Ok(http_body::Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])))).await;
                                    calls.notified().await;
                                    let mut trailers = http::HeaderMap::new();
                                    trailers.insert("grpc-status", HeaderValue::from_static("0"));
                                    let _ = tx.send(Ok(http_body::Frame::trailers(trailers))).await;
                                });
                                let body = Body::new(http_body_util::StreamBody::new(
                                    tokio_stream::wrappers::ReceiverStream::new(rx),
                                ));
                                return Ok::<_, Infallible>(grpc.body(body).expect("response"));
                            }
                            let size: usize = request
                                .headers()
                                .get("x-size")
                                .and_then(|v| v.to_str().ok()?.parse().ok())
                                .unwrap_or(0);
                            calls.notify_one();
                            let response = grpc
                                .header("grpc-status", "3")
                                .header("grpc-message", "x".repeat(size))
                                .body(Body::empty())
                                .expect("response");
                            Ok(response)
                        }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), serve).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn call(path: &str, size: usize) -> Request<Full<Bytes>> {
        let request = Request::builder().method("POST").uri(path).header("content-type", "application/grpc");
        request
            .header("x-size", size.to_string())
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .expect("request")
    }

    fn status_of(headers: &http::HeaderMap) -> Option<String> {
        headers.get("grpc-status").map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[tokio::test]
    async fn a_header_block_over_the_limit_fails_only_its_own_call() {
        let upstream = oversized_errors().await;
        let services = ["highwind.asset.v1.AssetService", "highwind.asset.v1.UploadService"];
        let upstreams = Upstreams::default().route("asset", &upstream, &services).expect("route");
        let mut proxy = Proxy::new(upstreams, 1 << 20);
        let get = "/highwind.asset.v1.AssetService/GetAsset";

        // Under the gateway's limit the status passes (the gateway's own error bound then applies).
        let response = proxy.call(call(get, 20 * 1024)).await.expect("infallible");
        assert_eq!(status_of(response.headers()).as_deref(), Some("3"));

        // Over it, only this call fails, as UNAVAILABLE, and the upstream is usable again at once.
        let stream = proxy.call(call("/highwind.asset.v1.UploadService/ReadFile", 0)).await.expect("infallible");
        let response = proxy.call(call(get, 200 * 1024)).await.expect("infallible");
        assert_eq!(status_of(response.headers()).as_deref(), Some("14"), "the oversized answer is not forwarded");
        let response = proxy.call(call(get, 10)).await.expect("infallible");
        assert_eq!(status_of(response.headers()).as_deref(), Some("3"), "the next call gets its answer");

        // h2 refuses a block whose one value decodes over the limit with a reset of that stream alone: the stream
        // sharing the connection still ends as its upstream ended it.
        let mut body = stream.into_body();
        let mut trailers = None;
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            if let Ok(frame) = frame.and_then(|f| f.into_trailers().map_err(|_| Status::internal("data"))) {
                trailers = Some(frame);
            }
        }
        assert_eq!(trailers.as_ref().and_then(status_of).as_deref(), Some("0"), "the other stream is untouched");
    }
}
