//! A tower layer that holds every error a server sends within [`crate::status_bounds`]: the status in a
//! trailers-only response's headers and the one in a stream's trailers. It sits in front of everything a server
//! answers with, so no handler, decoder or interceptor can send a header block that breaks the connection.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use tonic::{Code, Status, body::Body, codegen::StdError};

use crate::status_bounds::{self, MAX_DETAILS_BYTES, MAX_MESSAGE_BYTES};

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_DETAILS: &str = "grpc-status-details-bin";

/// gRPC sends details unpadded; accept them either way.
const DETAILS_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Rewrites `grpc-message` and `grpc-status-details-bin` in `headers` (response headers or trailers) to their
/// bounded form when either is over its bound; anything else is left as it is.
pub fn bound_status_headers(headers: &mut HeaderMap) {
    let Some(code) = headers.get(GRPC_STATUS).map(|v| Code::from_bytes(v.as_bytes())) else { return };
    let message_len = headers.get(GRPC_MESSAGE).map_or(0, |v| v.len());
    let details_len = headers.get(GRPC_DETAILS).map_or(0, |v| v.len());
    // Encoded lengths bound the decoded ones from above, so the usual small error costs two lookups.
    if message_len <= MAX_MESSAGE_BYTES && details_len <= MAX_DETAILS_BYTES {
        return;
    }
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    let details = headers.get(GRPC_DETAILS).and_then(|v| DETAILS_BASE64.decode(v.as_bytes()).ok()).unwrap_or_default();
    let bounded = status_bounds::bounded(&Status::with_details(code, message, details.into()));
    headers.remove(GRPC_MESSAGE);
    headers.remove(GRPC_DETAILS);
    let mut fresh = HeaderMap::new();
    if bounded.add_header(&mut fresh).is_ok() {
        for name in [GRPC_MESSAGE, GRPC_DETAILS] {
            if let Some(value) = fresh.remove(name) {
                headers.insert(name, value);
            }
        }
    }
}

/// Bounds the errors of the service it wraps; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoundedErrorsLayer;

impl<S> tower::Layer<S> for BoundedErrorsLayer {
    type Service = BoundedErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BoundedErrors { inner }
    }
}

/// The service [`BoundedErrorsLayer`] makes.
#[derive(Debug, Clone)]
pub struct BoundedErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for BoundedErrors<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let (mut parts, body) = response.await?.into_parts();
            bound_status_headers(&mut parts.headers);
            let body = body.map_frame(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    bound_status_headers(&mut trailers);
                    http_body::Frame::trailers(trailers)
                }
                Err(frame) => frame,
            });
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

    use super::*;

    fn headers_of(status: &Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).expect("encodable");
        headers
    }

    #[test]
    fn an_oversized_status_in_headers_is_bounded_and_keeps_its_code_and_fields() {
        let huge = format!("{} = 1", "k".repeat(20_000));
        let details = ErrorDetails::with_bad_request(vec![FieldViolation::new("filter", &huge)]);
        let mut headers = headers_of(&Status::with_error_details(Code::InvalidArgument, &huge, details));
        headers.insert("x-other", "kept".parse().expect("value"));
        bound_status_headers(&mut headers);

        let wire: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        assert!(wire < 8 * 1024, "{wire} bytes of headers");
        assert_eq!(headers.get("x-other").map(|v| v.as_bytes()), Some(&b"kept"[..]));
        let status = Status::from_header_map(&headers).expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "filter");
    }

    #[test]
    fn small_statuses_and_plain_headers_are_untouched() {
        let status = Status::not_found("assets/1 not found");
        let mut headers = headers_of(&status);
        let before = headers.clone();
        bound_status_headers(&mut headers);
        assert_eq!(headers, before);
        let mut plain = HeaderMap::new();
        plain.insert("grpc-message", "x".repeat(5000).parse().expect("value"));
        let before = plain.clone();
        bound_status_headers(&mut plain);
        assert_eq!(plain, before, "no grpc-status, not a status");
    }
}
