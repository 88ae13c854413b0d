//! API keys: long-lived machine credentials that act as the principal who created them.
//!
//! A key reads `hw_<id>_<secret>`. Only a random salt and HMAC-SHA256(salt, secret) are stored; the id finds the
//! row, the HMAC is compared in constant time. Every call looks the key up, so a revocation holds from the very
//! next call.

mod api;
mod store;

use std::sync::Arc;

pub use api::ApiKeyApi;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SubsecRound, Utc};
use highwind_common::principal::Principal;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
pub use store::{KeyStore, open};
use tonic::Status;
use uuid::Uuid;

/// What every key starts with.
pub const KEY_PREFIX: &str = "hw_";

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: Uuid,
    /// The principal it acts as.
    pub owner: String,
    /// What it is for.
    pub display_name: String,
    /// Hex salt.
    pub salt: String,
    /// Hex HMAC-SHA256(salt, secret).
    pub hash: String,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it stops working.
    pub expire_time: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoke_time: Option<DateTime<Utc>>,
    /// The key it was created with, if any: revoking that key revokes this one too.
    pub parent: Option<Uuid>,
}

impl ApiKey {
    /// The shown beginning of the key.
    pub fn prefix(&self) -> String {
        format!("{KEY_PREFIX}{}…", &self.id.simple().to_string()[..8])
    }

    /// The principal the key acts as (`users/…` only).
    pub fn principal(&self) -> Option<Principal> {
        self.owner.strip_prefix("users/").map(Principal::user)
    }

    fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoke_time.is_none() && self.expire_time.is_none_or(|expiry| now < expiry)
    }
}

/// Why a key operation failed; the API maps it to a status.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No such key of this caller.
    #[error("{0} not found")]
    NotFound(String),
    /// Storage failed.
    #[error("key store: {0}")]
    Store(#[from] sqlx::Error),
}

fn mac(salt: &[u8], secret: &str) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)] // HMAC accepts keys of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("hmac key");
    mac.update(secret.as_bytes());
    mac
}

/// Creates, checks and revokes keys over a store.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    store: Arc<dyn KeyStore>,
}

impl ApiKeys {
    /// Keys kept in `store`.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self { store }
    }

    /// A new key for `owner`, made with key `parent` when a key made the call; returns the stored key and the
    /// full secret, which exists nowhere else.
    pub async fn create(
        &self,
        owner: &Principal,
        display_name: String,
        expire_time: Option<DateTime<Utc>>,
        parent: Option<Uuid>,
    ) -> Result<(ApiKey, String), KeyError> {
        let mut salt = [0u8; 16];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let id = Uuid::now_v7();
        let key = ApiKey {
            id,
            owner: owner.as_str().to_owned(),
            display_name,
            hash: hex::encode(mac(&salt, &secret).finalize().into_bytes()),
            salt: hex::encode(salt),
            create_time: Utc::now().trunc_subsecs(6),
            expire_time,
            revoke_time: None,
            parent,
        };
        self.store.insert(&key).await?;
        Ok((key, format!("{KEY_PREFIX}{}_{secret}", id.simple())))
    }

    /// Whether `token` is shaped like an API key.
    pub fn looks_like_key(token: &str) -> bool {
        token.starts_with(KEY_PREFIX)
    }

    /// The live key `token` is, or UNAUTHENTICATED.
    pub async fn verify(&self, token: &str) -> Result<ApiKey, Status> {
        let refuse = || Status::unauthenticated("invalid, expired or revoked API key");
        let rest = token.strip_prefix(KEY_PREFIX).ok_or_else(refuse)?;
        let (id, secret) = rest.split_once('_').ok_or_else(refuse)?;
        let id = Uuid::try_parse(id).map_err(|_| refuse())?;
        let key = match self.store.get(id).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(refuse()),
            Err(error) => {
                tracing::error!(error = %error, "api key lookup failed");
                return Err(Status::unavailable("credentials cannot be checked right now"));
            }
        };
        let salt = hex::decode(&key.salt).map_err(|_| refuse())?;
        let hash = hex::decode(&key.hash).map_err(|_| refuse())?;
        mac(&salt, secret).verify_slice(&hash).map_err(|_| refuse())?;
        if !key.usable_at(Utc::now()) {
            return Err(refuse());
        }
        Ok(key)
    }

    /// `owner`'s keys, newest first, after `after`.
    pub async fn list(&self, owner: &Principal, after: Option<Uuid>, limit: usize) -> Result<Vec<ApiKey>, KeyError> {
        Ok(self.store.list(owner.as_str(), after, limit).await?)
    }

    /// Revokes `owner`'s key `id` and every key made from it; revoking twice keeps the first time.
    pub async fn revoke(&self, owner: &Principal, id: Uuid) -> Result<ApiKey, KeyError> {
        let name = format!("apiKeys/{id}");
        match self.store.get(id).await? {
            Some(key) if key.owner == owner.as_str() => {
                if key.revoke_time.is_some() {
                    return Ok(key);
                }
                let now = Utc::now().trunc_subsecs(6);
                self.store.revoke(id, now).await?;
                Ok(ApiKey { revoke_time: Some(now), ..key })
            }
            _ => Err(KeyError::NotFound(name)),
        }
    }
}
