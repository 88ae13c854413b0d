//! A response body from a service that ends as a gRPC call should when the upstream stream breaks: with trailers
//! carrying UNAVAILABLE, not a reset that clients report as INTERNAL. Only that one call ends; the connection and
//! every other call on it are untouched.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Status, body::Body};

/// An upstream response body whose failure becomes the call's final status.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Body,
    label: &'static str,
    done: bool,
}

impl UpstreamBody {
    /// Relays `inner`, the body of a call to the `label` service.
    pub fn new(inner: Body, label: &'static str) -> Self {
        Self { inner, label, done: false }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                self.done = true;
                tracing::warn!(upstream = self.label, error = %error, "upstream stream broke mid-call");
                let status = Status::unavailable(format!(
                    "the call to the {} service broke off before it ended; it may or may not have taken effect",
                    self.label
                ));
                let mut trailers = HeaderMap::new();
                match status.add_header(&mut trailers) {
                    Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Err(status) => Poll::Ready(Some(Err(status))),
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.done = frame.is_trailers();
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done { SizeHint::with_exact(0) } else { self.inner.size_hint() }
    }
}
