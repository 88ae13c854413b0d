//! Getting a request body back from a call that failed before it was read, so the call can be sent again.
//!
//! A call is only retried when nothing of it reached the service: a connection that died (or was found dead) before
//! the client's body was first polled. Once a byte of the body is taken, the call may have begun and is never
//! sent twice.
//!
//! Being the body the upstream connection sends, it also drops empty DATA chunks: h2 allows a connection only 100
//! empty non-final DATA frames in its lifetime before it closes it, so forwarding a client's empty frames would let
//! any client end the connection every other caller shares.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{body::Body, codegen::StdError};

/// The body shared between the request in flight and the [`Unread`] handle the proxy keeps.
type Shared = Arc<Mutex<Option<Body>>>;

/// The proxy's handle on a forwarded request body.
#[derive(Debug)]
pub struct Unread(Shared);

/// The request body as sent upstream: reading it the first time takes it away from its [`Unread`] handle.
#[derive(Debug)]
pub struct Replayable {
    shared: Shared,
    taken: Option<Body>,
}

/// Wraps `body`; the handle gives it back only while nothing of it was read.
pub fn replayable(body: Body) -> (Replayable, Unread) {
    let shared = Arc::new(Mutex::new(Some(body)));
    (Replayable { shared: shared.clone(), taken: None }, Unread(shared))
}

impl Unread {
    /// The body, if the failed call never read any of it.
    pub fn take(self) -> Option<Body> {
        self.0.lock().ok()?.take()
    }
}

impl HttpBody for Replayable {
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        if self.taken.is_none() {
            // First read: from now on the call counts as started.
            let body = self.shared.lock().ok().and_then(|mut slot| slot.take());
            match body {
                Some(body) => self.taken = Some(body),
                None => return Poll::Ready(None),
            }
        }
        let Some(body) = self.taken.as_mut() else { return Poll::Ready(None) };
        loop {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(|d| d.is_empty()) => continue,
                other => return other.map_err(Into::into),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Only a body already taken can tell; an unread one is not known to be over.
        self.taken.as_ref().is_some_and(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn an_unread_body_comes_back_and_a_read_one_does_not() {
        let (_sent, unread) = replayable(Body::new(http_body_util::Full::new(Bytes::from_static(b"m"))));
        assert!(unread.take().is_some(), "nothing was read");

        let (mut sent, unread) = replayable(Body::new(http_body_util::Full::new(Bytes::from_static(b"m"))));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(Pin::new(&mut sent).poll_frame(&mut cx), Poll::Ready(Some(Ok(_)))));
        assert!(unread.take().is_none(), "the call started");
    }

    #[test]
    fn empty_data_chunks_are_never_forwarded() {
        let chunks = [Bytes::new(), Bytes::from_static(b"m"), Bytes::new()]
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
        let body = http_body_util::StreamBody::new(tokio_stream::iter(chunks));
        let (mut sent, _unread) = replayable(Body::new(body));
        let mut cx = Context::from_waker(Waker::noop());
        let mut forwarded = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut sent).poll_frame(&mut cx) {
            forwarded.push(frame.into_data().expect("data"));
        }
        assert_eq!(forwarded, [Bytes::from_static(b"m")]);
    }
}
