//! Deny by default: every method a service serves must be declared with the kind of access it needs. A call to
//! a method nobody declared fails with PERMISSION_DENIED before any handler runs, so an RPC added without a rule
//! is closed, not open. Health and reflection are always allowed.
//!
//! The verb travels to the handler in the request's extensions; resource-level checks (owner, member roles) stay
//! in the handlers, which know the resource.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

/// Paths every service answers without a declared rule.
const ALWAYS_ALLOWED: [&str; 3] =
    ["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// What a method does to the resources it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Reads.
    Read,
    /// Creates or changes content.
    Write,
    /// Archives, purges or revokes.
    Delete,
    /// Changes who may do what.
    ManageAccess,
    /// Platform-wide operations for administrators.
    Administer,
}

impl From<highwind_proto::access::Verb> for Verb {
    fn from(verb: highwind_proto::access::Verb) -> Self {
        use highwind_proto::access::Verb as Declared;
        match verb {
            Declared::Read => Self::Read,
            Declared::Write => Self::Write,
            Declared::Delete => Self::Delete,
            Declared::ManageAccess => Self::ManageAccess,
            // The build refuses a method without a verb, so an unspecified one never reaches here; were it to,
            // the narrowest grant is the safe reading.
            Declared::Administer | Declared::Unspecified => Self::Administer,
        }
    }
}

/// The declared methods of a service, `/package.Service/Method` → verb.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    methods: Arc<HashMap<String, Verb>>,
}

impl AccessRules {
    /// Rules from hand-written `(service, [(method, verb)])` declarations: only the layer's own tests write a table;
    /// services take theirs from the contract ([`AccessRules::declared_for`]).
    #[cfg(test)]
    pub(crate) fn new(services: &[(&str, &[(&str, Verb)])]) -> Self {
        let methods = services
            .iter()
            .flat_map(|(service, methods)| methods.iter().map(move |(m, verb)| (format!("/{service}/{m}"), *verb)))
            .collect();
        Self { methods: Arc::new(methods) }
    }

    /// The rules the contract declares for `services` (each rpc's `(highwind.access.v1.verb)` option).
    pub fn declared_for(services: &[&str]) -> Self {
        let methods = highwind_proto::access::methods_of(services)
            .map(|(service, method, verb)| (format!("/{service}/{method}"), Verb::from(verb)))
            .collect();
        Self { methods: Arc::new(methods) }
    }

    /// The verb of `path`, if declared.
    pub fn verb(&self, path: &str) -> Option<Verb> {
        self.methods.get(path).copied()
    }

    /// The rules of `all` together, as one table (e.g. every service behind the gateway).
    pub fn merged(all: &[AccessRules]) -> Self {
        let methods = all.iter().flat_map(|rules| rules.methods.iter().map(|(p, v)| (p.clone(), *v))).collect();
        Self { methods: Arc::new(methods) }
    }

    /// Every declared path, for completeness checks.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }
}

/// Applies [`AccessRules`] to every call.
#[derive(Debug, Clone)]
pub struct AccessLayer(AccessRules);

impl AccessLayer {
    /// Enforces `rules`.
    pub fn new(rules: AccessRules) -> Self {
        Self(rules)
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access { inner, rules: self.0.clone() }
    }
}

/// The service [`AccessLayer`] makes.
#[derive(Debug, Clone)]
pub struct Access<S> {
    inner: S,
    rules: AccessRules,
}

impl<S, B, ResBody> Service<Request<B>> for Access<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        if ALWAYS_ALLOWED.iter().any(|prefix| path.starts_with(prefix)) {
            return Box::pin(self.inner.call(request));
        }
        match self.rules.verb(path) {
            Some(verb) => {
                request.extensions_mut().insert(verb);
                Box::pin(self.inner.call(request))
            }
            None => {
                tracing::warn!(path, "call to a method without an access rule denied");
                let status = Status::permission_denied(format!("{path} has no access rule and is closed"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// `Ok` when `rules` declare exactly the methods of `services` in the encoded descriptor set; otherwise the
/// methods served without a rule and the rules for methods not served.
pub fn coverage(rules: &AccessRules, descriptor_set: &[u8], services: &[&str]) -> Result<(), String> {
    use std::collections::BTreeSet;
    let declared: BTreeSet<&str> = rules.paths().collect();
    let served: BTreeSet<String> = services
        .iter()
        .flat_map(|s| methods_of(descriptor_set, s).into_iter().map(move |m| format!("/{s}/{m}")))
        .collect();
    let unruled: Vec<&String> = served.iter().filter(|m| !declared.contains(m.as_str())).collect();
    let unserved: Vec<&&str> = declared.iter().filter(|m| !served.contains(**m)).collect();
    if served.is_empty() || !unruled.is_empty() || !unserved.is_empty() {
        return Err(format!("served without a rule: {unruled:?}; rules for no served method: {unserved:?}"));
    }
    Ok(())
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Access<S> {
    const NAME: &'static str = S::NAME;
}

/// The methods of `service` in the encoded descriptor set.
pub fn methods_of(descriptor_set: &[u8], service: &str) -> Vec<String> {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(descriptor_set) else { return Vec::new() };
    let (package, name) = service.rsplit_once('.').unwrap_or(("", service));
    set.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() == name)
        .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;

    async fn status_of(rules: &AccessRules, path: &str) -> Option<String> {
        let inner = tower::service_fn(|request: Request<()>| async move {
            let verb = request.extensions().get::<Verb>().copied();
            let mut response = Response::new(());
            response.headers_mut().insert("x-verb", format!("{verb:?}").parse().expect("header"));
            Ok::<_, Infallible>(response)
        });
        let response = AccessLayer::new(rules.clone())
            .layer(inner)
            .oneshot(Request::builder().uri(path).body(()).expect("request"))
            .await
            .expect("infallible");
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .or_else(|| response.headers().get("x-verb").map(|v| v.to_str().unwrap_or_default().to_owned()))
    }

    #[tokio::test]
    async fn undeclared_methods_are_denied_and_declared_ones_carry_their_verb() {
        let rules = AccessRules::new(&[("pkg.Svc", &[("Get", Verb::Read), ("Purge", Verb::Delete)])]);
        assert_eq!(status_of(&rules, "/pkg.Svc/Get").await.as_deref(), Some("Some(Read)"));
        assert_eq!(status_of(&rules, "/pkg.Svc/Purge").await.as_deref(), Some("Some(Delete)"));
        // A method added to the service without a rule: closed.
        assert_eq!(status_of(&rules, "/pkg.Svc/NewMethod").await.as_deref(), Some("7"));
        assert_eq!(status_of(&rules, "/pkg.Other/Get").await.as_deref(), Some("7"));
        assert_eq!(status_of(&rules, "/grpc.health.v1.Health/Check").await.as_deref(), Some("None"));
    }
}
