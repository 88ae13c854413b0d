//! Plain HTTP endpoints next to gRPC on the gateway's port (the embedded issuer's discovery, JWKS and token
//! routes, the registry's token endpoint and notifications), answered before the gRPC-Web layer, which refuses
//! any HTTP/1.1 request that is not gRPC-Web, and before CORS: none of them is for a browser on another origin.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

/// Sends requests under any of `prefixes` to `router`, everything else down the gRPC stack.
#[derive(Debug, Clone)]
pub struct HttpRoutesLayer {
    prefixes: &'static [&'static str],
    router: axum::Router,
}

impl HttpRoutesLayer {
    /// Routes paths starting with one of `prefixes` to `router`.
    pub fn new(prefixes: &'static [&'static str], router: axum::Router) -> Self {
        Self { prefixes, router }
    }
}

impl<S> Layer<S> for HttpRoutesLayer {
    type Service = HttpRoutes<S>;

    fn layer(&self, inner: S) -> HttpRoutes<S> {
        HttpRoutes { inner, prefixes: self.prefixes, router: self.router.clone() }
    }
}

/// The service [`HttpRoutesLayer`] makes.
#[derive(Debug, Clone)]
pub struct HttpRoutes<S> {
    inner: S,
    prefixes: &'static [&'static str],
    router: axum::Router,
}

impl<S, B> Service<Request<B>> for HttpRoutes<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !self.prefixes.iter().any(|prefix| request.uri().path().starts_with(prefix)) {
            return Box::pin(self.inner.call(request));
        }
        let router = self.router.clone();
        Box::pin(async move {
            let answer: Result<_, Infallible> = router.oneshot(request.map(axum::body::Body::new)).await;
            match answer {
                Ok(response) => Ok(response.map(tonic::body::Body::new)),
                Err(never) => match never {},
            }
        })
    }
}
