//! Scopes of registry token requests (`repository:team/app:pull,push`) and the names they may carry: repository
//! names as distribution's grammar allows them, tags as the OCI distribution spec does.

/// Longest repository name distribution accepts.
pub const MAX_REPOSITORY: usize = 255;
/// Longest tag the OCI distribution spec allows.
pub const MAX_TAG: usize = 128;

/// One requested (or granted) access: `type:name:actions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    /// `repository` (or `registry` for the catalog).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, e.g. `highwind/alice/0190…`.
    pub name: String,
    /// `pull`, `push`, `delete` or `*`.
    pub actions: Vec<String>,
}

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `type:name:actions`.
    #[error("scope {0:?} is not type:name:actions")]
    Malformed(String),
    /// The repository name breaks distribution's rules.
    #[error("repository name {name:?}: {why}")]
    BadRepository {
        /// The name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
}

impl Access {
    /// Parses one `scope` parameter, e.g. `repository:team/app:pull,push` (the name may not hold `:`).
    pub fn parse(scope: &str) -> Result<Self, ScopeError> {
        let malformed = || ScopeError::Malformed(scope.chars().take(300).collect());
        let (kind, rest) = scope.split_once(':').ok_or_else(malformed)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(malformed)?;
        if kind.is_empty() || name.is_empty() || name.contains(':') {
            return Err(malformed());
        }
        // `repository(plugin)` is distribution's older spelling of the same type.
        let kind = if kind.starts_with("repository(") { "repository" } else { kind };
        if kind == "repository" {
            validate_repository(name)?;
        }
        let actions = actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect();
        Ok(Self { kind: kind.to_owned(), name: name.to_owned(), actions })
    }
}

/// Checks `name` against distribution's repository grammar: lowercase path components of letters and digits
/// joined by `.`, `_`, `__` or dashes, separated by `/`, 255 characters at most.
pub fn validate_repository(name: &str) -> Result<(), ScopeError> {
    let bad = |why| Err(ScopeError::BadRepository { name: name.chars().take(300).collect(), why });
    if name.len() > MAX_REPOSITORY {
        return bad("longer than 255 characters");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return bad("has an empty path component");
        }
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return bad("must be lowercase");
        }
        if !component.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
            return bad("may hold only a-z, 0-9, '.', '_', '-' and '/'");
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = component.as_bytes();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return bad("each path component must start and end with a letter or digit");
        }
        for separator in component.split(|c: char| c.is_ascii_alphanumeric()).filter(|s| !s.is_empty()) {
            if !matches!(separator, "." | "_" | "__") && !separator.bytes().all(|b| b == b'-') {
                return bad("separators are '.', '_', '__' or dashes ('..' is not one)");
            }
        }
    }
    Ok(())
}

/// The repository path component naming an asset's owner (`users/Alice+ml` → `alice-ml`).
pub fn owner_component(owner: &str) -> String {
    let name = owner.rsplit('/').next().unwrap_or(owner).to_ascii_lowercase();
    let mapped: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() { "user".into() } else { trimmed.to_owned() }
}

/// Whether `tag` is a valid tag: a word character, then up to 127 word characters, `.` or `-`.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= MAX_TAG
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_several_actions_and_the_plugin_spelling() {
        let access = Access::parse("repository:highwind/alice/app:pull,push").expect("parses");
        assert_eq!(access.name, "highwind/alice/app");
        assert_eq!(access.actions, ["pull", "push"]);
        assert_eq!(Access::parse("repository(plugin):a/b:pull").expect("parses").kind, "repository");
        assert_eq!(Access::parse("registry:catalog:*").expect("parses").actions, ["*"]);
        for bad in ["repository", "repository:a", ":a:pull", "repository::pull", "repository:a:b:pull"] {
            assert!(matches!(Access::parse(bad), Err(ScopeError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn repository_names_follow_distributions_grammar() {
        for good in ["a", "highwind/alice/0190-ab_c", "a.b/c__d/e---f", "x9"] {
            assert_eq!(validate_repository(good), Ok(()), "{good}");
        }
        let long = format!("a/{}", "b".repeat(254));
        for bad in ["A/b", "a//b", "a/../b", "a/..b", "a/b.", "-a", "a/b_", "a/b___c", "a b", "a/ü", long.as_str()] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owners_become_valid_repository_components() {
        assert_eq!(owner_component("users/alice"), "alice");
        assert_eq!(owner_component("users/Alice+ML@corp"), "alice-ml-corp");
        assert_eq!(owner_component("users/+"), "user");
        assert_eq!(validate_repository(&format!("highwind/{}/x", owner_component("users/A..b__c"))), Ok(()));
    }

    #[test]
    fn tags_are_word_characters_dots_and_dashes_up_to_128() {
        assert!(is_valid_tag("v1.2-rc_3"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(""));
    }
}
