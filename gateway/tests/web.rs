//! gRPC-Web over real HTTP/1.1, as a browser sends it, and the CORS a browser needs to read the answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::{Buf, Bytes};
use highwind_proto::asset::v1 as pb;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;
use support::Platform;

/// One gRPC-Web exchange over a fresh HTTP/1.1 connection.
async fn post(platform: &Platform, request: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let stream = tokio::net::TcpStream::connect(platform.standalone.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("h1");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.version(), http::Version::HTTP_11);
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (Response::from_parts(parts, ()), body)
}

fn grpc_web_request(path: &str, token: Option<&str>, message: &impl Message) -> Request<Full<Bytes>> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&payload);
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://app.example");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Full::new(Bytes::from(framed))).unwrap()
}

/// Splits a gRPC-Web body into its data messages and its trailer block.
fn frames(mut body: Bytes) -> (Vec<Bytes>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let frame = body.split_to(len);
        if flag & 0x80 != 0 {
            trailers.push_str(std::str::from_utf8(&frame).unwrap());
        } else {
            messages.push(frame);
        }
    }
    (messages, trailers)
}

#[tokio::test]
async fn create_and_list_over_http1_grpc_web() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let create = pb::CreateAssetRequest {
        asset: Some(pb::Asset {
            kind: pb::AssetKind::Model as i32,
            display_name: "Iris classifier".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let (response, body) =
        post(&platform, grpc_web_request("/highwind.asset.v1.AssetService/CreateAsset", Some(&token), &create)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web"));
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} must be readable by browsers: {exposed}");
    }
    let (messages, trailers) = frames(body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");
    let created = pb::Asset::decode(messages[0].clone()).expect("asset");
    assert_eq!(created.display_name, "Iris classifier");
    assert_eq!(created.owner, "users/alice");

    let list = pb::ListAssetsRequest::default();
    let (_, body) =
        post(&platform, grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", Some(&token), &list)).await;
    let (messages, _) = frames(body);
    let listed = pb::ListAssetsResponse::decode(messages[0].clone()).expect("list");
    assert_eq!(listed.assets, [created]);
    platform.stop().await;
}

#[tokio::test]
async fn errors_reach_the_browser_with_status_and_details() {
    let platform = Platform::start().await;
    let list = pb::ListAssetsRequest::default();
    let (response, _) =
        post(&platform, grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", None, &list)).await;
    assert_eq!(response.headers()["grpc-status"], "16", "UNAUTHENTICATED without a token");

    let bad = pb::CreateAssetRequest { asset: Some(pb::Asset::default()), request_id: String::new() };
    let token = platform.token("alice");
    let (response, body) =
        post(&platform, grpc_web_request("/highwind.asset.v1.AssetService/CreateAsset", Some(&token), &bad)).await;
    let (_, trailers) = frames(body);
    let status =
        response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_else(|| {
            trailers.lines().find_map(|l| l.strip_prefix("grpc-status:")).unwrap().trim().to_owned()
        });
    assert_eq!(status, "3", "INVALID_ARGUMENT");
    let has_details =
        response.headers().contains_key("grpc-status-details-bin") || trailers.contains("grpc-status-details-bin:");
    assert!(has_details, "BadRequest details travel to the browser");
    platform.stop().await;
}

#[tokio::test]
async fn cors_preflight_allows_grpc_web_headers() {
    let platform = Platform::start().await;
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/highwind.asset.v1.AssetService/ListAssets")
        .header("host", "localhost")
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (response, _) = post(&platform, request).await;
    assert!(response.status().is_success(), "{:?}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let allowed = response.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"] {
        assert!(allowed.contains(header), "{header} not allowed: {allowed}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn grpc_web_text_and_json_payloads() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let list = pb::ListAssetsRequest::default();
    let mut request = grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", Some(&token), &list);
    let framed = request.body().clone().collect().await.unwrap().to_bytes();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&framed);
    *request.body_mut() = Full::new(Bytes::from(encoded));
    request.headers_mut().insert("content-type", "application/grpc-web-text".parse().unwrap());
    request.headers_mut().insert("accept", "application/grpc-web-text".parse().unwrap());
    let (response, body) = post(&platform, request).await;
    assert_eq!(response.headers()["content-type"], "application/grpc-web-text+proto");
    let (messages, trailers) = frames(Bytes::from(base64_frames(&body)));
    assert!(trailers.contains("grpc-status:0"), "text-mode call succeeds: {trailers:?}");
    assert!(pb::ListAssetsResponse::decode(messages[0].clone()).unwrap().assets.is_empty());

    let mut json = grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", Some(&token), &list);
    json.headers_mut().insert("content-type", "application/grpc-web+json".parse().unwrap());
    let (response, _) = post(&platform, json).await;
    assert_eq!(response.headers()["grpc-status"], "3", "JSON payloads get a gRPC error, not a bare 400");
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("grpc-web") && message.contains("proto"), "says what to send instead: {message}");
    platform.stop().await;
}

/// Decodes a gRPC-Web text body, which is a concatenation of base64 chunks (each possibly padded).
fn base64_frames(body: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    for &b in body {
        chunk.push(b);
        if chunk.len() % 4 == 0 && chunk.ends_with(b"=") {
            out.extend(base64::engine::general_purpose::STANDARD.decode(&chunk).unwrap());
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        out.extend(base64::engine::general_purpose::STANDARD.decode(&chunk).unwrap());
    }
    out
}
