//! The names the gateway answers to. A page on `evil.example` whose name is re-pointed at 127.0.0.1 (DNS
//! rebinding) talks to the gateway as its own origin, so CORS does not stop it; the `Host` it sends (HTTP/1.1
//! `Host`, HTTP/2 `:authority`) still says `evil.example`. So requests must name the gateway by an IP address
//! (which no page can re-point), `localhost`, or a configured name; others get 421 Misdirected Request (or, for
//! gRPC, PERMISSION_DENIED). The port is not compared: re-pointing is about the name.

use std::net::IpAddr;

use http::{Request, Response, StatusCode, header};

/// The host names requests may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any name: the check is off (the configured list holds `*`).
    Any,
    /// IP addresses, `localhost` and these names (lowercase, without port).
    Names(Vec<String>),
}

impl AllowedHosts {
    /// The policy of the `allowed_hosts` setting: `*` turns the check off, other entries are names (a port, if
    /// given, is ignored).
    pub fn from_config(allowed_hosts: &[String]) -> Self {
        if allowed_hosts.iter().any(|h| h == "*") {
            return Self::Any;
        }
        Self::Names(allowed_hosts.iter().map(|h| host_name(h).to_ascii_lowercase()).collect())
    }

    /// Whether a request naming `authority` (`host[:port]`) is for this gateway.
    pub fn admits(&self, authority: &str) -> bool {
        let Self::Names(names) = self else { return true };
        let name = host_name(authority).trim_end_matches('.');
        let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
        unbracketed.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || names.iter().any(|allowed| allowed.trim_end_matches('.').eq_ignore_ascii_case(name))
    }
}

/// `authority` without its port: `[::1]:8080` → `[::1]`, `example.com:443` → `example.com`.
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

/// The refusal of a request whose `Host` / `:authority` is not an allowed name, for a
/// [`crate::guard::GuardLayer`]; `None` lets it through.
pub fn refuse_other_hosts<B>(allowed: &AllowedHosts, request: &Request<B>) -> Option<Response<tonic::body::Body>> {
    // HTTP/2 carries the name in the URI (`:authority`), HTTP/1.1 in `Host`.
    let authority = request
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| request.headers().get(header::HOST).and_then(|v| v.to_str().ok()));
    if authority.is_some_and(|a| allowed.admits(a)) {
        return None;
    }
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let shown = authority.map(|a| a.chars().take(100).collect::<String>());
    tracing::warn!(host = ?shown, "request for another host refused");
    // The name is not echoed: the caller knows what it sent.
    let why = "this gateway does not answer to that host name (see allowed_hosts)";
    if grpc {
        return Some(tonic::Status::permission_denied(why).into_http());
    }
    let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(why))));
    *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_localhost_and_configured_names_are_admitted() {
        let hosts = AllowedHosts::from_config(&["Highwind.Example.com:443".to_owned()]);
        for admitted in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "10.1.2.3",
            "localhost",
            "LOCALHOST:9",
            "localhost.",
            "highwind.example.com",
            "highwind.example.com:8443",
        ] {
            assert!(hosts.admits(admitted), "{admitted}");
        }
        for refused in ["evil.example:8080", "evil.example", "localhost.evil.example", "127.0.0.1.evil.example", ""] {
            assert!(!hosts.admits(refused), "{refused}");
        }
        assert!(AllowedHosts::from_config(&["*".to_owned()]).admits("evil.example"));
    }
}
