//! gRPC-Web request bodies, binary and base64 text: the gateway passes on exactly one whole message frame within
//! the limit, or answers a gRPC error (INVALID_ARGUMENT or RESOURCE_EXHAUSTED) itself, and never panics.
#![no_main]

use std::{convert::Infallible, sync::OnceLock};

use bytes::Bytes;
use gateway::web::single_message::SingleMessageLayer;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt, service_fn};

/// The per-message limit the layer enforces here: small, so inputs reach it.
const MAX_MESSAGE_BYTES: usize = 4096;
const CONTENT_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

/// What the service behind the layer receives must be one binary frame, announcing its own length.
async fn one_frame(request: Request<Body>) -> Result<Response<Body>, Infallible> {
    assert_eq!(request.headers()["content-type"], "application/grpc-web+proto");
    let body = request.into_body().collect().await.expect("a whole body").to_bytes();
    assert!(body.len() >= 5, "a frame header");
    assert_eq!(body[0] & 0x80, 0, "a message frame, not trailers");
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    assert!(length <= MAX_MESSAGE_BYTES, "within the limit");
    assert_eq!(body.len(), 5 + length, "exactly one frame");
    Ok(Response::new(Body::empty()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(selector & 3)];
    let request = Request::post("/highwind.asset.v1.AssetService/GetAsset")
        .header("content-type", content_type)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    runtime().block_on(async {
        let mut service = SingleMessageLayer::new(MAX_MESSAGE_BYTES).layer(service_fn(one_frame));
        let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service).await.expect("ready");
        let response = ready.call(request).await.expect("an answer");
        if let Some(status) = response.headers().get("grpc-status") {
            let code = status.to_str().expect("ascii");
            assert!(code == "3" || code == "8", "refused as INVALID_ARGUMENT or RESOURCE_EXHAUSTED, not {code}");
        }
    });
});
