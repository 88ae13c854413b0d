//! Idempotency keys (`request_id`): one rule for every create that takes one.

use crate::validation::Violations;

/// Longest idempotency key, in characters.
pub const MAX_REQUEST_ID: usize = 128;

/// Records a violation of `request_id` when the key is too long or holds control characters.
pub fn check_request_id(request_id: &str, violations: &mut Violations) {
    if request_id.chars().count() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        violations.add("request_id", format!("at most {MAX_REQUEST_ID} characters, no control characters"));
    }
}

/// The idempotency key a request carries, if any (empty means none).
pub fn idempotency_key(request_id: &str) -> Option<&str> {
    Some(request_id).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        let checked = |key: &str| {
            let mut violations = Violations::new();
            check_request_id(key, &mut violations);
            violations.is_empty()
        };
        assert!(checked(""));
        assert!(checked(&"é".repeat(MAX_REQUEST_ID)), "characters, not bytes");
        assert!(!checked(&"k".repeat(MAX_REQUEST_ID + 1)));
        assert!(!checked("retry\n1"));
        assert_eq!(idempotency_key(""), None);
        assert_eq!(idempotency_key("k"), Some("k"));
    }
}
