//! The keys registry tokens are signed with, kept as files so every process of the platform (and an operator's
//! rotation) agrees on them: `current.pem` signs, `next.pem` is already trusted, and `bundle.pem` — what the
//! registry's `auth.token.rootcertbundle` points at — holds both certificates. Rotation promotes `next` to
//! `current` and makes a new `next`, so tokens from the new key verify on a registry that has not yet reread its
//! bundle; restart the registry before the following rotation.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::scope::Access;

/// Why keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("registry signing keys in {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not what this program writes.
    #[error("registry signing key file {0} is corrupt; move it away to make a new key")]
    Corrupt(String),
    /// Generating or signing failed.
    #[error("registry token signing failed: {0}")]
    Crypto(String),
}

/// What a token says.
#[derive(Debug, Clone)]
pub struct Claims<'a> {
    /// `iss`: the registry's `auth.token.issuer`.
    pub issuer: &'a str,
    /// `aud`: the registry's `auth.token.service`.
    pub service: &'a str,
    /// `sub`: who the token is for.
    pub subject: &'a str,
    /// What it grants.
    pub access: &'a [Access],
    /// How long it lives.
    pub ttl: Duration,
}

/// The signing keys in one directory.
#[derive(Debug)]
pub struct RegistryKeys {
    dir: PathBuf,
    loaded: Mutex<Option<Loaded>>,
}

struct Loaded {
    pem: String,
    key: EncodingKey,
    x5c: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("x5c", &self.x5c).finish_non_exhaustive()
    }
}

const CURRENT: &str = "current.pem";
const NEXT: &str = "next.pem";
/// The file the registry trusts.
pub const BUNDLE: &str = "bundle.pem";

impl RegistryKeys {
    /// The keys in `dir`, made (with their bundle) when missing.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for name in [CURRENT, NEXT] {
            if !dir.join(name).exists() {
                create_once(&dir.join(name), generate()?.as_bytes())?;
            }
        }
        write_bundle(dir)?;
        Ok(Self { dir: dir.to_path_buf(), loaded: Mutex::new(None) })
    }

    /// Promotes `next` to `current` in `dir` and makes a new `next`; the bundle then holds both.
    pub fn rotate(dir: &Path) -> Result<(), KeyError> {
        Self::open(dir)?;
        std::fs::rename(dir.join(NEXT), dir.join(CURRENT)).map_err(io(dir))?;
        create_once(&dir.join(NEXT), generate()?.as_bytes())?;
        write_bundle(dir)
    }

    /// The certificate bundle the registry must trust (`auth.token.rootcertbundle`).
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join(BUNDLE)
    }

    /// A signed token for `claims`, with the current key (reloaded when its file changed). The key file is read
    /// through `tokio::fs`, so a slow disk holds up this call only, never an async worker.
    pub async fn mint(&self, claims: &Claims<'_>) -> Result<String, KeyError> {
        // The file is small and a rotation may keep its size and time: compare what it says.
        let path = self.dir.join(CURRENT);
        let pem = tokio::fs::read_to_string(&path).await.map_err(io(&path))?;
        let mut loaded = self.loaded.lock().map_err(|_| KeyError::Crypto("key cache poisoned".into()))?;
        if loaded.as_ref().is_none_or(|l| l.pem != pem) {
            let corrupt = || KeyError::Corrupt(path.display().to_string());
            let key = pem_block(&pem, "PRIVATE KEY").ok_or_else(corrupt)?;
            let cert = pem_block(&pem, "CERTIFICATE").ok_or_else(corrupt)?;
            let key = EncodingKey::from_ec_der(&key);
            *loaded = Some(Loaded { pem, key, x5c: STANDARD.encode(cert) });
        }
        let current = loaded.as_ref().ok_or_else(|| KeyError::Crypto("no key".into()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let body = serde_json::json!({
            "iss": claims.issuer,
            "sub": claims.subject,
            "aud": claims.service,
            "iat": now,
            "nbf": now.saturating_sub(5),
            "exp": now + claims.ttl.as_secs(),
            "jti": format!("{:032x}", rand::random::<u128>()),
            "access": claims.access,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(vec![current.x5c.clone()]);
        jsonwebtoken::encode(&header, &body, &current.key).map_err(|e| KeyError::Crypto(e.to_string()))
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.display().to_string(), source }
}

/// A new P-256 key and its self-signed certificate, as one PEM text (key first).
fn generate() -> Result<String, KeyError> {
    let crypto = |e: rcgen::Error| KeyError::Crypto(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Highwind registry token signer");
    let cert = params.self_signed(&key).map_err(crypto)?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

/// Rewrites the bundle from the current and next certificates.
fn write_bundle(dir: &Path) -> Result<(), KeyError> {
    let mut bundle = String::new();
    for name in [CURRENT, NEXT] {
        let path = dir.join(name);
        let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
        let start =
            pem.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| KeyError::Corrupt(path.display().to_string()))?;
        bundle.push_str(&pem[start..]);
    }
    write_atomically(&dir.join(BUNDLE), bundle.as_bytes())
}

/// Makes `path` with `content` unless it exists: when several processes open the same directory at once, one
/// key wins and all of them use it.
fn create_once(path: &Path, content: &[u8]) -> Result<(), KeyError> {
    crate::private_file::create_private_once(path, content).map(drop).map_err(io(path))
}

/// Writes `path` whole or not at all, readable by its owner only.
fn write_atomically(path: &Path, content: &[u8]) -> Result<(), KeyError> {
    crate::private_file::write_private(path, content).map_err(io(path))
}

/// The DER bytes of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_x5c(token: &str) -> String {
        let header = jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header.alg, Algorithm::ES256);
        header.x5c.expect("x5c").remove(0)
    }

    fn claims(access: &[Access]) -> Claims<'_> {
        Claims { issuer: "highwind", service: "registry", subject: "users/alice", access, ttl: Duration::from_secs(60) }
    }

    #[tokio::test]
    async fn tokens_carry_the_current_certificate_and_rotation_moves_to_the_trusted_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = RegistryKeys::open(dir.path()).expect("keys");
        let bundle = std::fs::read_to_string(keys.bundle_path()).expect("bundle");
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(!bundle.contains("PRIVATE KEY"), "the bundle holds certificates only");
        let before = header_x5c(&keys.mint(&claims(&[])).await.expect("mint"));
        let der = |x5c: &str| STANDARD.decode(x5c).expect("base64");
        let in_bundle = |bundle: &str, x5c: &str| {
            bundle
                .split_inclusive("-----END CERTIFICATE-----")
                .any(|block| pem_block(block, "CERTIFICATE") == Some(der(x5c)))
        };
        assert!(in_bundle(&bundle, &before));

        RegistryKeys::rotate(dir.path()).expect("rotate");
        let after = header_x5c(&keys.mint(&claims(&[])).await.expect("mint"));
        assert_ne!(before, after, "a running signer picks up the rotated key");
        assert!(in_bundle(&bundle, &after), "the new key was trusted before it signed anything");
        let rotated = std::fs::read_to_string(keys.bundle_path()).expect("bundle");
        assert!(in_bundle(&rotated, &after));
        assert!(!in_bundle(&rotated, &before), "the retired key leaves the bundle");
        assert_eq!(rotated.matches("BEGIN CERTIFICATE").count(), 2);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CURRENT)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is its owner's only");
        }
    }

    #[tokio::test]
    async fn claims_hold_one_audience_an_expiry_and_the_granted_access() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = RegistryKeys::open(dir.path()).expect("keys");
        let access = [Access { kind: "repository".into(), name: "a/b".into(), actions: vec!["pull".into()] }];
        let token = keys.mint(&claims(&access)).await.expect("mint");
        let payload = token.split('.').nth(1).expect("payload");
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
        let claims: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(claims["aud"], "registry", "a single string, as distribution 2.8 requires");
        assert_eq!(claims["iss"], "highwind");
        assert!(claims["exp"].as_u64().expect("exp") > claims["iat"].as_u64().expect("iat"));
        assert_eq!(claims["access"][0]["type"], "repository");
        assert_eq!(claims["access"][0]["actions"][0], "pull");
    }
}
