//! Browser access: CORS around gRPC-Web, and a gRPC answer for gRPC-Web with JSON payloads.
//!
//! tonic-web stopped doing CORS in 0.13; without `grpc-status`, `grpc-message` and `grpc-status-details-bin`
//! exposed, every error a browser sees reads "missing trailer". Only the gateway's own origins and the configured
//! ones may call from a browser: a page elsewhere must not spend a visitor's credentials (the preflight allows
//! `authorization`).

pub mod single_message;

use std::{net::SocketAddr, time::Duration};

use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The origins of pages served by the gateway at `addr` itself: its listen address and the loopback names with
/// its port.
pub fn own_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    for loopback in ["localhost", "127.0.0.1", "[::1]"] {
        let origin = format!("http://{loopback}:{port}");
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    origins
}

/// The CORS policy of the gateway at `addr`: its own origins and `allowed_origins` (`*` allows any origin). A
/// preflight from any other origin gets no `access-control-allow-*` headers, so the browser refuses the call.
pub fn cors(addr: SocketAddr, allowed_origins: &[String]) -> CorsLayer {
    let origins = if allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let listed = own_origins(addr).into_iter().chain(allowed_origins.iter().cloned());
        AllowOrigin::list(listed.filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()))
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// Removes every `access-control-*` header from an answer that allows no origin: tower-http lists the allowed
/// methods and headers in every preflight answer, and a page of another origin should learn nothing from it.
pub fn drop_unallowed_cors(mut response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
    if response.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return response;
    }
    let names: Vec<HeaderName> =
        response.headers().keys().filter(|name| name.as_str().starts_with("access-control-")).cloned().collect();
    for name in names {
        response.headers_mut().remove(name);
    }
    response
}

/// The answer to gRPC-Web with JSON payloads: INVALID_ARGUMENT saying what to send instead, where the gRPC-Web
/// layer would give a bare HTTP 400. For a [`crate::guard::GuardLayer`] inside CORS, so a browser can read it.
pub fn refuse_json<B>(request: &Request<B>) -> Option<Response<tonic::body::Body>> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())?;
    let json = content_type.starts_with("application/grpc-web") && content_type.ends_with("+json");
    json.then(|| {
        tonic::Status::invalid_argument(
            "gRPC-Web with JSON payloads is not supported: send application/grpc-web+proto or application/grpc-web-text",
        )
        .into_http()
    })
}
