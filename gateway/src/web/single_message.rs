//! gRPC-Web calls that send one request message, made whole before tonic-web translates them.
//!
//! gRPC-Web cannot stream a request from a browser, so every call whose method does not stream from the client
//! carries exactly one message frame. Its body is read here (bounded by the per-message limit), a
//! `grpc-web-text` body is base64-decoded, and a body that is not exactly one message frame is answered
//! INVALID_ARGUMENT at once. Left to tonic-web, bad base64 becomes a failed request stream, which the proxy can
//! only report as the service being UNAVAILABLE, and a second message is silently dropped by the service. A text
//! request is answered in text unless it explicitly accepts binary gRPC-Web (tonic-web goes by `accept` alone,
//! and browsers send `*/*`).

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll},
};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use tonic::{Code, Status, body::Body, codegen::StdError};
use tower::{Layer, Service};

const GRPC_WEB: &str = "application/grpc-web";
const GRPC_WEB_PROTO: &str = "application/grpc-web+proto";
const GRPC_WEB_TEXT: &str = "application/grpc-web-text";
const GRPC_WEB_TEXT_PROTO: &str = "application/grpc-web-text+proto";
/// A gRPC message frame's header: one flag byte and a big-endian 32-bit length.
const FRAME_HEADER: usize = 5;

/// Reads each single-message gRPC-Web request whole; messages over `max_message_bytes` are refused as the proxy
/// refuses them.
#[derive(Debug, Clone, Copy)]
pub struct SingleMessageLayer {
    max_message_bytes: usize,
}

impl SingleMessageLayer {
    /// Bounds each request message to `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }
}

impl<S> Layer<S> for SingleMessageLayer {
    type Service = SingleMessage<S>;

    fn layer(&self, inner: S) -> SingleMessage<S> {
        SingleMessage { inner, max_message_bytes: self.max_message_bytes }
    }
}

/// The service [`SingleMessageLayer`] makes.
#[derive(Debug, Clone)]
pub struct SingleMessage<S> {
    inner: S,
    max_message_bytes: usize,
}

/// How a gRPC-Web request body is encoded, from its `content-type` (the four tonic-web translates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Binary,
    Text,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Self> {
        match headers.get(header::CONTENT_TYPE)?.to_str().ok()? {
            GRPC_WEB | GRPC_WEB_PROTO => Some(Self::Binary),
            GRPC_WEB_TEXT | GRPC_WEB_TEXT_PROTO => Some(Self::Text),
            _ => None,
        }
    }

    /// The encoding of the answer: a text request's, unless the client accepts binary gRPC-Web by name.
    fn of_answer(self, headers: &HeaderMap) -> Self {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let binary_named = accept.split(',').map(str::trim).any(|a| a == GRPC_WEB || a == GRPC_WEB_PROTO);
        if self == Self::Text && !binary_named { Self::Text } else { Self::Binary }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Binary => GRPC_WEB_PROTO,
            Self::Text => GRPC_WEB_TEXT_PROTO,
        }
    }
}

impl<S, B> Service<Request<B>> for SingleMessage<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let encoding = Encoding::of(request.headers());
        let Some(encoding) = encoding
            .filter(|_| request.method() == Method::POST && !client_streaming_methods().contains(request.uri().path()))
        else {
            return Box::pin(self.inner.call(request.map(Body::new)));
        };
        // The service that was made ready answers this call; the clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_message_bytes;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let answer = encoding.of_answer(&parts.headers);
            let frame = match read_frame(body, encoding, max).await {
                Ok(frame) => frame,
                Err(status) => {
                    let mut refusal = status.into_http::<Body>();
                    refusal.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(answer.content_type()));
                    return Ok(refusal);
                }
            };
            // Decoded here, so tonic-web sees binary and encodes its answer as `accept` says.
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(GRPC_WEB_PROTO));
            parts.headers.insert(header::ACCEPT, HeaderValue::from_static(answer.content_type()));
            parts.headers.remove(header::CONTENT_LENGTH);
            inner.call(Request::from_parts(parts, Body::new(Full::new(frame)))).await
        })
    }
}

/// The body's one message frame, decoded; the status to answer when it is not exactly one frame of at most
/// `max` bytes.
async fn read_frame<B>(body: B, encoding: Encoding, max: usize) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<StdError>,
{
    let too_large =
        || Status::resource_exhausted(format!("a request message exceeds the gateway's limit of {max} bytes"));
    let framed = max.saturating_add(FRAME_HEADER);
    // Base64 takes 4 bytes for 3, plus up to 2 of padding per chunk when a client sends several.
    let limit = match encoding {
        Encoding::Binary => framed,
        Encoding::Text => framed.saturating_mul(2).saturating_add(64),
    };
    let read = Limited::new(body, limit).collect().await;
    let raw = match read {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Err(too_large()),
        Err(error) => return Err(Status::cancelled(format!("the request body was not received whole: {error}"))),
    };
    let bytes = match encoding {
        Encoding::Binary => raw,
        Encoding::Text => Bytes::from(decode_text(&raw).ok_or_else(|| {
            malformed("the application/grpc-web-text body is not base64 (standard alphabet, padded)")
        })?),
    };
    let Some(header) = bytes.get(..FRAME_HEADER) else {
        return Err(malformed("the body holds no message frame: a call sends exactly one request message"));
    };
    if header[0] & 0x80 != 0 {
        return Err(malformed("a request carries no trailers frame: send exactly one message frame"));
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if length > max {
        return Err(too_large());
    }
    match bytes.len().cmp(&(FRAME_HEADER + length)) {
        std::cmp::Ordering::Less => Err(malformed("the message frame is cut short: its header announces more bytes")),
        std::cmp::Ordering::Greater => {
            Err(malformed("this method takes exactly one request message, and the body holds more than one"))
        }
        std::cmp::Ordering::Equal => Ok(bytes),
    }
}

fn malformed(why: &str) -> Status {
    highwind_common::status::with_reason(Code::InvalidArgument, why, "MALFORMED_GRPC_WEB_BODY")
}

/// Standard, padded base64, possibly several encodings back to back (each padded quantum ends one), as gRPC-Web
/// clients may send a body in chunks.
fn decode_text(text: &[u8]) -> Option<Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    let mut start = 0;
    for (i, quantum) in text.chunks(4).enumerate() {
        if quantum.contains(&b'=') {
            let end = (i + 1) * 4;
            engine.decode_vec(&text[start..end.min(text.len())], &mut decoded).ok()?;
            start = end;
        }
    }
    if start < text.len() {
        engine.decode_vec(&text[start..], &mut decoded).ok()?;
    }
    Some(decoded)
}

/// `/package.Service/Method` of every method whose request streams: their bodies pass through untouched.
fn client_streaming_methods() -> &'static HashSet<String> {
    static METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
        let Ok(set) = <prost_types::FileDescriptorSet as prost::Message>::decode(highwind_proto::FILE_DESCRIPTOR_SET)
        else {
            return HashSet::new();
        };
        let mut methods = HashSet::new();
        for file in &set.file {
            for service in &file.service {
                let streaming = service.method.iter().filter(|m| m.client_streaming());
                methods.extend(streaming.map(|m| format!("/{}.{}/{}", file.package(), service.name(), m.name())));
            }
        }
        methods
    });
    &METHODS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_decode_whole_or_in_padded_chunks_and_nothing_else() {
        assert_eq!(decode_text(b"AAAAAAE=").as_deref(), Some(&[0, 0, 0, 0, 1][..]));
        assert_eq!(decode_text(b"AA==AA==").as_deref(), Some(&[0, 0][..]), "two chunks, each padded");
        assert_eq!(decode_text(b"").as_deref(), Some(&[][..]));
        for bad in [&b"!!!!"[..], b"AAA", b"AA=A", b"AAAA AAAA"] {
            assert_eq!(decode_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_upload_streams_its_request() {
        let methods = client_streaming_methods();
        assert!(methods.contains("/highwind.asset.v1.UploadService/WriteUpload"));
        assert!(!methods.contains("/highwind.asset.v1.UploadService/ReadFile"), "server streaming sends one message");
    }
}
