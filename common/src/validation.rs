//! Field violations collected while validating a request, free of any transport type so domains can use them.

/// One invalid field: its path in the request (`asset.display_name`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field in the request, e.g. `asset.labels`.
    pub field: String,
    /// What is wrong, in words a client developer can act on.
    pub description: String,
}

/// Every violation found in one request: callers report them all at once rather than one per retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is invalid because of `description`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation { field: field.into(), description: description.into() });
    }

    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut violations = Self::new();
        violations.add(field, description);
        violations
    }

    /// Adds every violation of `other`.
    pub fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded violations in order.
    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was recorded, else the violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

/// Whether `uri` is an absolute `http://` or `https://` URI of at most `max` bytes, without spaces or control
/// characters.
pub fn is_http_uri(uri: &str, max: usize) -> bool {
    let rest = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://"));
    uri.len() <= max
        && rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The page size to use for a client's `page_size` (0 means `default`), or what is wrong with it.
pub fn page_size(requested: i32, default: usize, max: usize) -> Result<usize, String> {
    match usize::try_from(requested) {
        Ok(0) => Ok(default),
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("must be between 0 and {max}, got {requested}")),
    }
}
