//! What a deployment is, as stored: what it runs and who made it. Its replicas' status is live, never stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A deployed use case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The inference id: eight lowercase letters and digits, starting with a letter.
    pub id: String,
    /// `useCases/{use_case}`.
    pub use_case: String,
    /// `useCases/{use_case}/releases/{release}`.
    pub release: String,
    /// The predictor's asset version, `assets/{asset}/versions/{version}`.
    pub predictor_version: String,
    /// The predictor's image, pinned: `registry/repository@sha256:…`.
    pub predictor_image: String,
    /// Replicas of the predictor.
    pub replicas: u32,
    /// Whether the predictor may reach other hosts.
    pub allow_network: bool,
    /// Who deployed it, `users/alice`.
    pub creator: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

/// Whether `id` is an inference id: eight lowercase ASCII letters and digits, the first a letter (KServe's
/// InferenceService names must start with one).
pub fn is_inference_id(id: &str) -> bool {
    id.len() == 8
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A new inference id, random.
pub fn new_inference_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut random = rand::rng();
    // The first from the letters only.
    let mut id = String::from(char::from(ALPHABET[random.random_range(0..26)]));
    for _ in 1..8 {
        id.push(char::from(ALPHABET[random.random_range(0..ALPHABET.len())]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_ids_are_eight_lowercase_characters_starting_with_a_letter() {
        for _ in 0..1_000 {
            let id = new_inference_id();
            assert!(is_inference_id(&id), "{id}");
        }
        for bad in ["", "1abcdefg", "Abcdefgh", "abcdefg", "abcdefghi", "abc/efgh", "abc.efgh", "ab-defgh"] {
            assert!(!is_inference_id(bad), "{bad}");
        }
    }
}
