//! A layer that answers some requests itself, before anything behind it runs, and passes the others on: the
//! shape of every check whose refusal needs no I/O (a host name, a content type).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::{Layer, Service};

/// Answers a request with what `answer` returns for it, or passes it on when that is `None`.
#[derive(Debug, Clone)]
pub struct GuardLayer<F>(F);

impl<F> GuardLayer<F> {
    /// A guard deciding with `answer`.
    pub fn new(answer: F) -> Self {
        Self(answer)
    }
}

impl<S, F: Clone> Layer<S> for GuardLayer<F> {
    type Service = Guard<S, F>;

    fn layer(&self, inner: S) -> Guard<S, F> {
        Guard { inner, answer: self.0.clone() }
    }
}

/// The service [`GuardLayer`] makes.
#[derive(Debug, Clone)]
pub struct Guard<S, F> {
    inner: S,
    answer: F,
}

impl<S, F, B> Service<Request<B>> for Guard<S, F>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    F: Fn(&Request<B>) -> Option<Response<tonic::body::Body>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match (self.answer)(&request) {
            Some(response) => Box::pin(async move { Ok(response) }),
            None => Box::pin(self.inner.call(request)),
        }
    }
}
