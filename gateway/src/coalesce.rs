//! Re-framing a request body on its way upstream so that tiny DATA frames never reach a service.
//!
//! h2 charges every received non-final DATA frame under 256 bytes against a connection-wide budget (about half the
//! connection window), refunded only once the application reads it; when the budget runs out it closes the whole
//! connection with GOAWAY `too_many_data_frames`. The gateway multiplexes many callers over each upstream
//! connection, so one client sending small frames faster than its service reads them (10,000 one-message frames
//! of an upload, or every byte in a frame of its own) would cost everyone on that connection their calls.
//!
//! [`Coalesced`] gathers whatever the client has sent into chunks of [`MIN_FRAME_BYTES`] or more, which h2 does
//! not charge at all, and holds a smaller remainder at most [`FLUSH_AFTER`] before sending it anyway (a client
//! may wait to see its bytes arrive). Whatever a client sends, its stream therefore costs the upstream
//! connection at most one small frame per [`FLUSH_AFTER`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The smallest DATA frame forwarded before the end of a body; h2 charges frames under 256 bytes.
pub const MIN_FRAME_BYTES: usize = 4 * 1024;
/// The most bytes gathered into one forwarded chunk (h2 splits it into frames of its maximum frame size).
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
/// The longest a remainder under [`MIN_FRAME_BYTES`] waits for more bytes before it is forwarded.
pub const FLUSH_AFTER: Duration = Duration::from_millis(2);

/// A body that yields what its inner body sent in chunks of at least [`MIN_FRAME_BYTES`] (but the last).
pub struct Coalesced<B> {
    inner: Pin<Box<B>>,
    buffer: BytesMut,
    trailers: Option<HeaderMap>,
    ended: bool,
    flush_at: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> std::fmt::Debug for Coalesced<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesced").field("buffered", &self.buffer.len()).field("ended", &self.ended).finish()
    }
}

impl<B> Coalesced<B> {
    /// Re-frames `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner: Box::pin(inner), buffer: BytesMut::new(), trailers: None, ended: false, flush_at: None }
    }

    fn take(&mut self) -> Frame<Bytes> {
        self.flush_at = None;
        Frame::data(self.buffer.split().freeze())
    }
}

impl<B> Body for Coalesced<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            if self.ended {
                if !self.buffer.is_empty() {
                    return Poll::Ready(Some(Ok(self.take())));
                }
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            if self.buffer.len() >= MAX_CHUNK_BYTES {
                return Poll::Ready(Some(Ok(self.take())));
            }
            match self.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        // Trailers end a body: what is buffered goes first.
                        self.trailers = frame.into_trailers().ok();
                        self.ended = true;
                    }
                },
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => self.ended = true,
                Poll::Pending if self.buffer.len() >= MIN_FRAME_BYTES => return Poll::Ready(Some(Ok(self.take()))),
                Poll::Pending if self.buffer.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    let flush_at = self.flush_at.get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_AFTER)));
                    return match flush_at.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Ok(self.take()))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.buffer.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, task::Waker};

    use super::*;

    /// A body yielding `chunks`, with a `Pending` between each two (a client that sends as it goes).
    struct Trickle {
        chunks: std::collections::VecDeque<Bytes>,
        pause: bool,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.pause {
                self.pause = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pause = true;
            Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }

    /// Every frame `body` yields, polling again whenever it is pending.
    fn frames(body: impl Body<Data = Bytes, Error = Infallible>) -> Vec<Bytes> {
        let mut body = Box::pin(body);
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => out.push(frame.into_data().expect("data")),
                Poll::Ready(None) => return out,
                Poll::Pending => {}
            }
        }
    }

    // Paused time: the flush deadline passes only when a test advances the clock.
    #[tokio::test(start_paused = true)]
    async fn one_byte_frames_are_forwarded_in_chunks_of_at_least_the_minimum_and_nothing_is_lost() {
        let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let chunks = sent.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        let forwarded = frames(Coalesced::new(Trickle { chunks, pause: false }));
        let (last, rest) = forwarded.split_last().expect("frames");
        assert!(
            rest.iter().all(|f| f.len() >= MIN_FRAME_BYTES),
            "{:?}",
            rest.iter().map(Bytes::len).collect::<Vec<_>>()
        );
        assert!(!last.is_empty());
        assert_eq!(forwarded.concat(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_arrives_whole_at_its_end() {
        let chunks = [b"abc".as_slice(), b"de"].into_iter().map(Bytes::from_static).collect();
        assert_eq!(frames(Coalesced::new(Trickle { chunks, pause: false })), [Bytes::from_static(b"abcde")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_remainder_is_forwarded_once_the_flush_delay_passes() {
        /// A body that sends `head` and then nothing until the test ends.
        struct Stalls(Option<Bytes>);
        impl Body for Stalls {
            type Data = Bytes;
            type Error = Infallible;

            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                match self.0.take() {
                    Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
                    None => Poll::Pending,
                }
            }
        }
        let mut body = Box::pin(Coalesced::new(Stalls(Some(Bytes::from_static(b"first message")))));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending(), "held while more may follow");
        tokio::time::advance(FLUSH_AFTER).await;
        let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) else { panic!("flushed") };
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"first message")));
    }
}
