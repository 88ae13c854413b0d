//! The caller's identity as the gateway forwards it to services.
//!
//! The gateway authenticates the client, removes any identity headers the client sent, and adds
//! `x-highwind-principal` plus `x-highwind-principal-signature: v1=<unix seconds>,<hex HMAC-SHA256>`. A service
//! believes the principal only when the signature verifies with the shared secret and is fresh, so a client that
//! reaches a service directly cannot claim to be someone else.
//!
//! A service calling another on a principal's behalf also names itself in `x-highwind-caller`; then the signature
//! is `v2=<unix seconds>,<hex HMAC>` over both names, so neither can be swapped, and the callee finds the calling
//! service with [`CallingService::of`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::{Request, Status, metadata::MetadataMap};

/// Header carrying the principal's name.
pub const PRINCIPAL_HEADER: &str = "x-highwind-principal";
/// Header carrying the principal's signature.
pub const SIGNATURE_HEADER: &str = "x-highwind-principal-signature";
/// Header naming the platform service that makes a call on the principal's behalf.
pub const CALLER_HEADER: &str = "x-highwind-caller";

/// The platform service that made a call on its principal's behalf, verified with the principal's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingService(pub String);

impl CallingService {
    /// The verified calling service of a request, if another service made it.
    pub fn of<T>(request: &Request<T>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }
}
/// How far a signature's time may be from the verifier's clock.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// An authenticated caller, e.g. `users/alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// A user principal, `users/{id}`.
    pub fn user(id: &str) -> Self {
        Self(format!("users/{id}"))
    }

    /// A platform service acting as itself, `services/{name}` (e.g. usecase-svc delivering grants). Only holders of
    /// the shared secret can sign one; the gateway only ever forwards `users/…`.
    pub fn service(name: &str) -> Self {
        Self(format!("services/{name}"))
    }

    /// Whether this is the platform service `name`.
    pub fn is_service(&self, name: &str) -> bool {
        self.0.strip_prefix("services/") == Some(name)
    }

    /// The principal's resource name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The verified principal of a request, or UNAUTHENTICATED.
    pub fn of<T>(request: &Request<T>) -> Result<&Self, Status> {
        request
            .extensions()
            .get::<Self>()
            .ok_or_else(|| Status::unauthenticated("this call needs credentials: send authorization: Bearer <token>"))
    }

    /// The principal named `name` (`users/…` or `services/…`), if well formed; for names stored earlier.
    pub fn parse(name: &str) -> Option<Self> {
        let valid = if let Some(id) = name.strip_prefix("users/") {
            !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-+".contains(&b))
        } else if let Some(service) = name.strip_prefix("services/") {
            !service.is_empty() && service.len() <= 63 && service.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        } else {
            false
        };
        valid.then(|| Self(name.to_owned()))
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Signs (gateway) and verifies (services) forwarded principals with the shared secret.
#[derive(Clone)]
pub struct PrincipalSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for PrincipalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrincipalSigner(<key>)")
    }
}

impl PrincipalSigner {
    /// Uses the shared secret `key`.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// The value of [`SIGNATURE_HEADER`] for `principal` at `now`.
    pub fn sign(&self, principal: &Principal, now: SystemTime) -> String {
        let seconds = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let mac = self.mac(seconds, principal.as_str(), None).finalize().into_bytes();
        format!("v1={seconds},{}", hex::encode(mac))
    }

    /// A request carrying `message` as `principal` calls with it through the gateway: the principal and its
    /// signature in the metadata.
    pub fn request<T>(&self, principal: &Principal, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let signature = self.sign(principal, SystemTime::now());
        let bad = |_| Status::internal("cannot forward the principal");
        request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().map_err(bad)?);
        request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().map_err(bad)?);
        Ok(request)
    }

    /// A request carrying `message` as service `caller` sends it on `principal`'s behalf: the principal, the
    /// signature and the caller in the metadata.
    pub fn request_on_behalf<T>(
        &self,
        principal: &Principal,
        caller: &'static str,
        message: T,
    ) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let signature = self.sign_on_behalf(principal, caller, SystemTime::now());
        let bad = |_| Status::internal("cannot forward the principal");
        request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().map_err(bad)?);
        request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().map_err(bad)?);
        request.metadata_mut().insert(CALLER_HEADER, tonic::metadata::MetadataValue::from_static(caller));
        Ok(request)
    }

    /// The value of [`SIGNATURE_HEADER`] for service `caller` calling on `principal`'s behalf at `now` (sent with
    /// [`CALLER_HEADER`] = `caller`).
    pub fn sign_on_behalf(&self, principal: &Principal, caller: &str, now: SystemTime) -> String {
        let seconds = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let mac = self.mac(seconds, principal.as_str(), Some(caller)).finalize().into_bytes();
        format!("v2={seconds},{}", hex::encode(mac))
    }

    /// The principal the headers carry: `Ok(None)` when there are none (an anonymous call), an error when they
    /// are present but do not verify.
    pub fn verify(&self, metadata: &MetadataMap, now: SystemTime) -> Result<Option<Principal>, Status> {
        let Some(name) = metadata.get(PRINCIPAL_HEADER) else {
            return Ok(None);
        };
        let refuse = || Status::unauthenticated("forwarded principal does not verify");
        let name = name.to_str().map_err(|_| refuse())?;
        let signature = metadata.get(SIGNATURE_HEADER).ok_or_else(refuse)?.to_str().map_err(|_| refuse())?;
        let caller = match metadata.get(CALLER_HEADER) {
            Some(caller) => Some(caller.to_str().map_err(|_| refuse())?),
            None => None,
        };
        // A named caller needs the signature over both names; the plain one covers the principal alone.
        let version = if caller.is_some() { "v2=" } else { "v1=" };
        let (seconds, mac) = signature.strip_prefix(version).and_then(|s| s.split_once(',')).ok_or_else(refuse)?;
        let seconds: u64 = seconds.parse().map_err(|_| refuse())?;
        let signed_at = UNIX_EPOCH + Duration::from_secs(seconds);
        let skew = now.duration_since(signed_at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
        if skew > MAX_SKEW {
            return Err(refuse());
        }
        let mac = hex::decode(mac).map_err(|_| refuse())?;
        self.mac(seconds, name, caller).verify_slice(&mac).map_err(|_| refuse())?;
        Principal::parse(name).map(Some).ok_or_else(refuse)
    }

    fn mac(&self, seconds: u64, name: &str, caller: Option<&str>) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac key");
        match caller {
            None => mac.update(format!("highwind-principal-v1\n{seconds}\n{name}").as_bytes()),
            Some(caller) => mac.update(format!("highwind-principal-v2\n{seconds}\n{name}\n{caller}").as_bytes()),
        }
        mac
    }
}

/// A tonic interceptor that verifies the forwarded principal and puts it in the request's extensions, where
/// [`Principal::of`] finds it.
#[derive(Debug, Clone)]
pub struct VerifyPrincipal(pub PrincipalSigner);

impl tonic::service::Interceptor for VerifyPrincipal {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(principal) = self.0.verify(request.metadata(), SystemTime::now())? {
            request.extensions_mut().insert(principal);
            let caller = request.metadata().get(CALLER_HEADER).and_then(|c| c.to_str().ok()).map(str::to_owned);
            if let Some(caller) = caller {
                request.extensions_mut().insert(CallingService(caller));
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn headers(name: &str, signature: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert(PRINCIPAL_HEADER, MetadataValue::try_from(name).expect("ascii"));
        map.insert(SIGNATURE_HEADER, MetadataValue::try_from(signature).expect("ascii"));
        map
    }

    #[test]
    fn signed_principal_verifies() {
        let signer = PrincipalSigner::new(b"secret".to_vec());
        let alice = Principal::user("alice");
        let now = SystemTime::now();
        let map = headers(alice.as_str(), &signer.sign(&alice, now));
        assert_eq!(signer.verify(&map, now).expect("verifies"), Some(alice));
        assert_eq!(signer.verify(&MetadataMap::new(), now).expect("anonymous"), None);
    }

    #[test]
    fn forged_swapped_foreign_or_stale_signatures_fail() {
        let signer = PrincipalSigner::new(b"secret".to_vec());
        let alice = Principal::user("alice");
        let now = SystemTime::now();
        let signature = signer.sign(&alice, now);
        assert!(signer.verify(&headers("users/bob", &signature), now).is_err(), "name swapped");
        let foreign = PrincipalSigner::new(b"other".to_vec()).sign(&alice, now);
        assert!(signer.verify(&headers(alice.as_str(), &foreign), now).is_err(), "other key");
        let later = now + Duration::from_secs(3600);
        assert!(signer.verify(&headers(alice.as_str(), &signature), later).is_err(), "stale");
        assert!(signer.verify(&headers(alice.as_str(), "v1=1,zz"), now).is_err(), "garbage");
    }

    #[test]
    fn the_calling_service_is_signed_with_the_principal() {
        let signer = PrincipalSigner::new(b"secret".to_vec());
        let alice = Principal::user("alice");
        let now = SystemTime::now();
        let with_caller = |caller: &str, signature: &str| {
            let mut map = headers(alice.as_str(), signature);
            map.insert(CALLER_HEADER, MetadataValue::try_from(caller).expect("ascii"));
            map
        };
        let on_behalf = signer.sign_on_behalf(&alice, "usecase-svc", now);
        assert_eq!(signer.verify(&with_caller("usecase-svc", &on_behalf), now).expect("verifies"), Some(alice.clone()));
        assert!(signer.verify(&with_caller("pipeline-svc", &on_behalf), now).is_err(), "caller swapped");
        assert!(signer.verify(&headers(alice.as_str(), &on_behalf), now).is_err(), "caller dropped");
        let plain = signer.sign(&alice, now);
        assert!(signer.verify(&with_caller("usecase-svc", &plain), now).is_err(), "caller added to a plain signature");
        let mut unsigned = MetadataMap::new();
        unsigned.insert(PRINCIPAL_HEADER, MetadataValue::from_static("users/alice"));
        assert!(signer.verify(&unsigned, now).is_err(), "unsigned");
    }
}
