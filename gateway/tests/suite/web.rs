//! gRPC-Web over real HTTP/1.1, as a browser sends it, and the CORS a browser needs to read the answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Buf, Bytes};
use highwind_proto::asset::v1 as pb;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;

use crate::support::Platform;

/// Where the browser page of these tests comes from: another origin than the gateway's, allowed by configuration.
const PAGE_ORIGIN: &str = "http://app.example";

/// A platform that lets [`PAGE_ORIGIN`] call it from a browser.
async fn start_for_page() -> Platform {
    Platform::builder().configure(|options| options.cors_origins = vec![PAGE_ORIGIN.to_owned()]).start().await
}

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
        .header("origin", PAGE_ORIGIN);
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
    let platform = start_for_page().await;
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
    assert_eq!(response.headers()["access-control-allow-origin"], PAGE_ORIGIN);
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
    let platform = start_for_page().await;
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
async fn cors_preflight_allows_grpc_web_headers_for_a_configured_origin() {
    let platform = start_for_page().await;
    let request = preflight("/highwind.asset.v1.AssetService/ListAssets", "localhost", PAGE_ORIGIN);
    let (response, _) = post(&platform, request).await;
    assert!(response.status().is_success(), "{:?}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], PAGE_ORIGIN);
    let allowed = response.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"] {
        assert!(allowed.contains(header), "{header} not allowed: {allowed}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn grpc_web_text_and_json_payloads() {
    let platform = start_for_page().await;
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
    assert_eq!(response.headers()["access-control-allow-origin"], PAGE_ORIGIN, "and the browser may read it");
    platform.stop().await;
}

/// A CORS preflight for a gRPC-Web call of `path` from `origin`, naming the gateway as `host`.
fn preflight(path: &str, host: &str, origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("host", host)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn cors_headers(response: &Response<()>) -> Vec<String> {
    let names = response.headers().keys().map(|name| name.as_str().to_owned());
    names.filter(|name| name.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn only_the_gateways_own_origins_pass_the_preflight_by_default() {
    let platform = Platform::start().await;
    let port = platform.standalone.addr.port();
    let path = "/highwind.asset.v1.AssetService/ListAssets";
    for own in [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")] {
        let (response, _) = post(&platform, preflight(path, "localhost", &own)).await;
        assert_eq!(response.headers()["access-control-allow-origin"], own.as_str());
        let allowed = response.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed.contains("authorization"), "{allowed}");
    }
    for foreign in ["http://evil.example", "http://127.0.0.1:1", "null"] {
        let (response, _) = post(&platform, preflight(path, "localhost", foreign)).await;
        assert!(!response.headers().contains_key("access-control-allow-origin"), "{foreign}: {response:?}");
        assert!(!response.headers().contains_key("access-control-allow-headers"), "{foreign}: {response:?}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn the_dev_issuer_answers_no_page_of_another_origin() {
    let platform = start_for_page().await;
    for origin in ["http://evil.example", PAGE_ORIGIN] {
        let (response, _) = post(&platform, preflight("/dev-issuer/token", "localhost", origin)).await;
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{origin}: no preflight passes");
        // A form POST is "simple": the browser sends it without asking, so only a missing
        // access-control-allow-origin keeps the answer from the page.
        let form = Request::builder()
            .method(Method::POST)
            .uri("/dev-issuer/token")
            .header("host", "localhost")
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(b"grant_type=password&username=alice")))
            .unwrap();
        let (response, _) = post(&platform, form).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{origin}: no password, no token");
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{origin}");
    }
    platform.stop().await;
}

/// A gRPC (HTTP/2) AssetService client whose calls name the gateway as `authority`.
async fn assets_as(
    platform: &Platform,
    authority: &str,
) -> pb::asset_service_client::AssetServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::support::Bearer>,
> {
    let channel = tonic::transport::Endpoint::from_shared(platform.url())
        .unwrap()
        .origin(format!("http://{authority}").parse().unwrap())
        .connect()
        .await
        .unwrap();
    pb::asset_service_client::AssetServiceClient::with_interceptor(
        channel,
        crate::support::Bearer(Some(platform.token("alice"))),
    )
}

#[tokio::test]
async fn requests_naming_a_foreign_host_are_refused() {
    let platform = Platform::start().await;
    let port = platform.standalone.addr.port();
    let jwks = |host: String| {
        Request::builder()
            .method(Method::GET)
            .uri("/dev-issuer/jwks")
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };
    let (response, _) = post(&platform, jwks(format!("evil.example:{port}"))).await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "DNS rebinding: the page's name is refused");
    for own in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let (response, _) = post(&platform, jwks(own.clone())).await;
        assert_eq!(response.status(), StatusCode::OK, "{own}");
    }

    let mut browser =
        grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", None, &pb::ListAssetsRequest::default());
    browser.headers_mut().insert("host", format!("evil.example:{port}").parse().unwrap());
    let (response, _) = post(&platform, browser).await;
    assert_eq!(response.headers()["grpc-status"], "7", "gRPC-Web gets PERMISSION_DENIED");

    let list = || pb::ListAssetsRequest::default();
    let err = assets_as(&platform, &format!("evil.example:{port}")).await.list_assets(list()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "HTTP/2 :authority is checked too: {err:?}");
    assert!(assets_as(&platform, &format!("localhost:{port}")).await.list_assets(list()).await.is_ok());
    platform.stop().await;
}

#[tokio::test]
async fn configured_host_names_are_answered() {
    let platform = Platform::builder()
        .configure(|options| options.allowed_hosts = vec!["highwind.example".to_owned()])
        .start()
        .await;
    let list = || pb::ListAssetsRequest::default();
    assert!(assets_as(&platform, "highwind.example:443").await.list_assets(list()).await.is_ok());
    let err = assets_as(&platform, "evil.example").await.list_assets(list()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    platform.stop().await;
}

/// The grpc-status of a gRPC-Web answer: in its headers (trailers-only) or in its trailer frame.
fn grpc_status(response: &Response<()>, trailers: &str) -> String {
    response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_else(|| {
        trailers.lines().find_map(|l| l.strip_prefix("grpc-status:")).unwrap_or_default().trim().to_owned()
    })
}

/// A text-mode request is answered in text even when the client does not name it in `accept` (browsers send
/// `*/*`); only a client that names binary gRPC-Web gets binary.
#[tokio::test]
async fn grpc_web_text_requests_are_answered_in_text() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let list = pb::ListAssetsRequest::default();
    for accept in [None, Some("*/*"), Some("application/grpc-web+proto")] {
        let mut request = grpc_web_request("/highwind.asset.v1.AssetService/ListAssets", Some(&token), &list);
        let framed = request.body().clone().collect().await.unwrap().to_bytes();
        use base64::Engine;
        *request.body_mut() = Full::new(Bytes::from(base64::engine::general_purpose::STANDARD.encode(&framed)));
        request.headers_mut().insert("content-type", "application/grpc-web-text".parse().unwrap());
        if let Some(accept) = accept {
            request.headers_mut().insert("accept", accept.parse().unwrap());
        }
        let (response, body) = post(&platform, request).await;
        let binary = accept == Some("application/grpc-web+proto");
        let expected = if binary { "application/grpc-web+proto" } else { "application/grpc-web-text+proto" };
        assert_eq!(response.headers()["content-type"], expected, "accept {accept:?}");
        let body = if binary { body } else { Bytes::from(base64_frames(&body)) };
        let (messages, trailers) = frames(body);
        assert_eq!(grpc_status(&response, &trailers), "0", "accept {accept:?}");
        assert!(pb::ListAssetsResponse::decode(messages[0].clone()).unwrap().assets.is_empty());
    }
    platform.stop().await;
}

/// A body that is not one well-formed message is the caller's mistake (INVALID_ARGUMENT), not the service being
/// unavailable; and a unary method never takes a second message.
#[tokio::test]
async fn malformed_grpc_web_bodies_are_invalid_argument() {
    let platform = Platform::start().await;
    let token = platform.token("alice");
    let create = pb::CreateAssetRequest {
        asset: Some(pb::Asset { kind: pb::AssetKind::Model as i32, display_name: "once".into(), ..Default::default() }),
        request_id: String::new(),
    };
    let path = "/highwind.asset.v1.AssetService/CreateAsset";
    let single = grpc_web_request(path, Some(&token), &create).body().clone().collect().await.unwrap().to_bytes();
    use base64::Engine;
    let base64 = |bytes: &[u8]| Bytes::from(base64::engine::general_purpose::STANDARD.encode(bytes));
    let twice = [single.clone(), single.clone()].concat();
    let cases = [
        ("application/grpc-web-text", Bytes::from_static(b"this is not base64!!")),
        ("application/grpc-web-text", base64(&twice)),
        ("application/grpc-web+proto", Bytes::from(twice)),
        ("application/grpc-web+proto", single.slice(..single.len() - 1)),
    ];
    let mut wrong = Vec::new();
    for (content_type, body) in cases {
        let mut request = grpc_web_request(path, Some(&token), &create);
        request.headers_mut().insert("content-type", content_type.parse().unwrap());
        *request.body_mut() = Full::new(body.clone());
        let (response, answer) = post(&platform, request).await;
        let text = response.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().contains("text"));
        let answer = if text { Bytes::from(base64_frames(&answer)) } else { answer };
        let (messages, trailers) = frames(answer);
        let status = grpc_status(&response, &trailers);
        if status != "3" || !messages.is_empty() {
            wrong.push(format!("{content_type} {body:?}: status {status}, {} messages", messages.len()));
        }
    }
    assert!(wrong.is_empty(), "each must be INVALID_ARGUMENT and answer nothing:\n{}", wrong.join("\n"));
    let listed = platform.assets(Some("alice")).await.list_assets(pb::ListAssetsRequest::default()).await.unwrap();
    assert!(listed.into_inner().assets.is_empty(), "no refused request created an asset");
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
