//! Label rules every resource with labels follows (AIP-style keys and values).

use std::collections::BTreeMap;

use crate::validation::Violations;

/// Most labels one resource may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks `labels` and records each problem under `field` (`asset.labels`).
pub fn validate(labels: &BTreeMap<String, String>, field: &str, violations: &mut Violations) {
    if labels.len() > MAX_LABELS {
        violations.add(field, format!("at most {MAX_LABELS} labels, got {}", labels.len()));
    }
    for (key, value) in labels {
        if !valid_key(key) {
            violations.add(
                format!("{field}[{key:?}]"),
                format!("key must start with a lowercase letter and hold only a-z, 0-9, _ and -, 1 to {MAX_LABEL_LEN} characters"),
            );
        }
        if !valid_value(value) {
            violations.add(
                format!("{field}[{key:?}]"),
                format!("value must hold only a-z, 0-9, _ and -, at most {MAX_LABEL_LEN} characters"),
            );
        }
    }
}

/// A label key: a lowercase letter, then `[a-z0-9_-]`, at most 63 characters.
pub fn valid_key(key: &str) -> bool {
    key.len() <= MAX_LABEL_LEN
        && key.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A label value: `[a-z0-9_-]`, at most 63 characters, possibly empty.
pub fn valid_value(value: &str) -> bool {
    value.len() <= MAX_LABEL_LEN
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_follow_the_rules() {
        assert!(valid_key("team"));
        assert!(valid_key(&"a".repeat(63)));
        assert!(!valid_key(&"a".repeat(64)));
        assert!(!valid_key("Team"));
        assert!(!valid_key("1team"));
        assert!(!valid_key(""));
        assert!(!valid_key("a.b"));
        assert!(valid_value(""));
        assert!(!valid_value("Vision"));
        assert!(!valid_value(&"v".repeat(64)));
    }

    #[test]
    fn too_many_labels_is_one_violation() {
        let labels: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let mut violations = Violations::new();
        validate(&labels, "asset.labels", &mut violations);
        assert_eq!(violations.iter().count(), 1);
    }
}
