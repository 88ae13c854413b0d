//! Aliases: movable names (`production`, `staging`) on an asset's versions; `latest` is implicit.

/// Longest alias.
pub const MAX_ALIAS: usize = 63;

/// An alias as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The name.
    pub name: String,
    /// The version it points at.
    pub version_number: i64,
    /// Only the asset's owner may move or remove it.
    pub protected: bool,
}

/// Why `alias` cannot name a version, or `Ok(())`.
pub fn validate(alias: &str) -> Result<(), String> {
    let charset = alias.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if alias.is_empty() || alias.len() > MAX_ALIAS || !charset {
        return Err(format!("lowercase letters, digits and -, 1 to {MAX_ALIAS} characters"));
    }
    if alias.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a number would be read as a version number".into());
    }
    if alias == "latest" {
        return Err("latest is implicit: it always names the newest READY version".into());
    }
    if alias.starts_with('-') || alias.ends_with('-') {
        return Err("must not start or end with -".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rules() {
        for ok in ["production", "staging", "v2", "canary-eu"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Prod", "12", "latest", "-x", "x-", "a/b", "a b", &"a".repeat(64)] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
