//! Watching a call's bodies as they stream through, without changing them: the resource the first request message
//! names, and the status the response ends with.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::Pending;

/// Bytes of the first message looked at for the target; names sit at its start.
const LOOK_AT: usize = 16 * 1024;
/// Collections whose names an event records as its target.
const COLLECTIONS: [&str; 5] = ["assets", "useCases", "listings", "entitlements", "apiKeys"];

/// The status a response's headers or trailers carry.
pub fn status_of(headers: &HeaderMap) -> Option<tonic::Code> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(code))
}

/// A request body that notes, from its first message, the resource the call names.
pub struct RequestTap {
    inner: Pin<Box<tonic::body::Body>>,
    seen: Vec<u8>,
    done: bool,
    target: Arc<Mutex<Option<String>>>,
}

impl RequestTap {
    /// Watches `inner`, writing what it finds to `target`.
    pub fn new(inner: tonic::body::Body, target: Arc<Mutex<Option<String>>>) -> Self {
        Self { inner: Box::pin(inner), seen: Vec::new(), done: false, target }
    }

    fn look(&mut self, data: &Bytes) {
        let want = 5 + LOOK_AT;
        let take = want.saturating_sub(self.seen.len()).min(data.len());
        self.seen.extend_from_slice(&data[..take]);
        if self.seen.len() < 5 {
            return;
        }
        let length = u32::from_be_bytes([self.seen[1], self.seen[2], self.seen[3], self.seen[4]]) as usize;
        let available = self.seen.len() - 5;
        if available < length.min(LOOK_AT) {
            return;
        }
        self.done = true;
        // A compressed message cannot be read here; its target stays unknown.
        if self.seen[0] == 0
            && let Some(found) = resource_in(&self.seen[5..5 + available.min(length)], 0)
            && let Ok(mut target) = self.target.lock()
        {
            *target = Some(found);
        }
        self.seen = Vec::new();
    }
}

impl Body for RequestTap {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && !self.done
            && let Some(data) = frame.data_ref()
        {
            let data = data.clone();
            self.look(&data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Field 1 of a request message when it is a resource name of one of [`COLLECTIONS`]: every Highwind request
/// puts its `name` or `parent` there, or there the resource an update sends, whose own field 1 is its `name`.
/// Other fields (an idempotency key, unknown fields a client adds) are never read, so they cannot pose as the target.
fn resource_in(message: &[u8], depth: usize) -> Option<String> {
    let mut rest = message;
    while !rest.is_empty() {
        let (key, after) = varint(rest)?;
        rest = after;
        let first_field = key >> 3 == 1;
        match key & 7 {
            0 => rest = varint(rest)?.1,
            1 => rest = rest.get(8..)?,
            5 => rest = rest.get(4..)?,
            2 => {
                let (length, after) = varint(rest)?;
                let length = usize::try_from(length).ok()?;
                let field = after.get(..length)?;
                rest = &after[length..];
                if !first_field {
                    continue;
                }
                if let Ok(text) = std::str::from_utf8(field)
                    && is_resource_name(text)
                {
                    return Some(text.to_owned());
                }
                return if depth < 1 { resource_in(field, depth + 1) } else { None };
            }
            _ => return None,
        }
    }
    None
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

fn is_resource_name(text: &str) -> bool {
    let mut segments = text.split('/');
    let first = segments.next().unwrap_or_default();
    text.len() <= 512
        && COLLECTIONS.contains(&first)
        && text.contains('/')
        && text.split('/').skip(1).all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A response body that finishes the call's audit event with the status its trailers carry; a body dropped before
/// its trailers records CANCELLED.
pub struct ResponseTap {
    inner: Pin<Box<tonic::body::Body>>,
    pending: Option<Pending>,
}

impl ResponseTap {
    /// Watches `inner` for the end of the call `pending` records.
    pub fn new(inner: tonic::body::Body, pending: Pending) -> Self {
        Self { inner: Box::pin(inner), pending: Some(pending) }
    }

    fn finish(&mut self, code: tonic::Code) {
        if let Some(pending) = self.pending.take() {
            pending.finish(code);
        }
    }
}

impl Body for ResponseTap {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Unknown),
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseTap {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn the_target_is_the_first_resource_name_in_the_message() {
        let get = highwind_proto::usecase::v1::GetUseCaseRequest { name: "useCases/0190-ab".into() };
        assert_eq!(resource_in(&get.encode_to_vec(), 0).as_deref(), Some("useCases/0190-ab"));
        let update = highwind_proto::asset::v1::UpdateAssetRequest {
            asset: Some(highwind_proto::asset::v1::Asset {
                name: "assets/0190-cd".into(),
                display_name: "useCases/not-this".into(),
                ..Default::default()
            }),
            update_mask: None,
        };
        assert_eq!(resource_in(&update.encode_to_vec(), 0).as_deref(), Some("assets/0190-cd"));
        let create = highwind_proto::asset::v1::CreateAssetRequest {
            asset: Some(highwind_proto::asset::v1::Asset { display_name: "housing".into(), ..Default::default() }),
            request_id: "r1".into(),
        };
        assert_eq!(resource_in(&create.encode_to_vec(), 0), None, "a top-level create names nothing yet");
        assert_eq!(resource_in(&[0xff, 0xff, 0xff], 0), None, "garbage is not a message");
        let mut forged = Vec::new();
        prost::encoding::string::encode(9, &"assets/decoy".to_owned(), &mut forged);
        forged.extend(get.encode_to_vec());
        assert_eq!(
            resource_in(&forged, 0).as_deref(),
            Some("useCases/0190-ab"),
            "another field cannot pose as the target"
        );
        let keyed =
            highwind_proto::usecase::v1::CreateUseCaseRequest { use_case: None, request_id: "useCases/fake".into() };
        assert_eq!(resource_in(&keyed.encode_to_vec(), 0), None, "an idempotency key is not a target");
        assert!(!is_resource_name("useCases/../x") && !is_resource_name("users/alice") && !is_resource_name("assets/"));
    }
}
