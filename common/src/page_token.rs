//! Opaque, tamper-evident page tokens for keyset pagination.
//!
//! A token is `base64url(cursor JSON) . base64url(HMAC-SHA256(key, scope ‖ cursor))`. The scope binds it to the
//! query it came from (caller, parent, filter, order), so a token edited by hand, minted by another deployment,
//! or replayed with another filter or by another caller is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;

/// Why a page token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageTokenError {
    /// Not of the token's form, or its signature does not verify for this query.
    #[error("page token is malformed, was altered, or belongs to a different query")]
    Invalid,
}

/// Signs and verifies page tokens with one service-wide key.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(<key>)")
    }
}

impl PageTokens {
    /// Uses `key` (any length; 32 random bytes or more recommended).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// Encodes `cursor` for the query identified by `scope`.
    pub fn encode<T: Serialize>(&self, scope: &str, cursor: &T) -> String {
        let payload = serde_json::to_vec(cursor).unwrap_or_default();
        let signature = self.sign(scope, &payload);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(signature))
    }

    /// Decodes a token minted by [`Self::encode`] for the same `scope`.
    pub fn decode<T: DeserializeOwned>(&self, scope: &str, token: &str) -> Result<T, PageTokenError> {
        let (payload, signature) = token.split_once('.').ok_or(PageTokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| PageTokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| PageTokenError::Invalid)?;
        self.mac(scope, &payload).verify_slice(&signature).map_err(|_| PageTokenError::Invalid)?;
        serde_json::from_slice(&payload).map_err(|_| PageTokenError::Invalid)
    }

    fn sign(&self, scope: &str, payload: &[u8]) -> Vec<u8> {
        self.mac(scope, payload).finalize().into_bytes().to_vec()
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac key");
        mac.update(b"highwind-page-token-v1\n");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Cursor {
        t: i64,
        id: String,
    }

    #[test]
    fn round_trips_for_the_same_scope_only() {
        let tokens = PageTokens::new(b"k1".to_vec());
        let cursor = Cursor { t: 42, id: "a".into() };
        let token = tokens.encode("owner=alice", &cursor);
        assert_eq!(tokens.decode::<Cursor>("owner=alice", &token), Ok(cursor));
        assert_eq!(tokens.decode::<Cursor>("owner=bob", &token), Err(PageTokenError::Invalid));
        assert_eq!(
            PageTokens::new(b"k2".to_vec()).decode::<Cursor>("owner=alice", &token),
            Err(PageTokenError::Invalid)
        );
    }

    #[test]
    fn altered_tokens_are_refused() {
        let tokens = PageTokens::new(b"k".to_vec());
        let token = tokens.encode("s", &Cursor { t: 1, id: "x".into() });
        let (_, sig) = token.split_once('.').expect("two parts");
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(br#"{"t":2,"id":"x"}"#));
        assert_eq!(tokens.decode::<Cursor>("s", &forged), Err(PageTokenError::Invalid));
        assert_eq!(tokens.decode::<Cursor>("s", "garbage"), Err(PageTokenError::Invalid));
        assert_eq!(tokens.decode::<Cursor>("s", ""), Err(PageTokenError::Invalid));
    }
}
