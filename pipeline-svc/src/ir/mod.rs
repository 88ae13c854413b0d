//! KFP v2 IR YAML: parsing it safely, validating what the executors need, and describing it for run forms.

mod describe;
pub mod limits;
mod placeholders;
mod size;
pub mod spec;
mod validate;

pub use describe::describe;
pub use size::{Size, size};
pub use validate::validate;

use serde::Deserialize;

/// Largest IR accepted, in bytes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Cannot be stored or run.
    Error,
    /// Runs, with something ignored or degraded.
    Warning,
}

/// One finding about a pipeline document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// Dotted path in the document, e.g. `root.dag.tasks.train.inputs.parameters.lr`; empty for the document.
    pub location: String,
    /// UPPER_SNAKE_CASE reason.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    /// 0: pipeline spec, 1: platform spec.
    pub document: u32,
}

impl Issue {
    /// An error at `location`.
    pub fn error(location: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            location: location.into(),
            reason,
            message: message.into(),
            line: 0,
            column: 0,
            document: 0,
        }
    }

    /// A warning at `location`.
    pub fn warning(location: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(location, reason, message) }
    }
}

/// A parsed pipeline: its spec and whether a platform-spec document followed.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The first document.
    pub spec: spec::PipelineSpec,
    /// A second (`PlatformSpec`) document was present.
    pub has_platform_spec: bool,
}

/// Parses IR YAML: one pipeline-spec document, optionally a platform-spec document. Anything over
/// [`MAX_BYTES`], nesting deeper than [`limits::MAX_DEPTH`] or more nodes than [`limits::MAX_NODES`] is refused
/// before the YAML parser runs; YAML aliases that expand too far are reported, never expanded.
pub fn parse(bytes: &[u8]) -> Result<Pipeline, Issue> {
    if bytes.len() > MAX_BYTES {
        return Err(Issue::error("", "TOO_LARGE", format!("the IR is {} bytes; at most {MAX_BYTES}", bytes.len())));
    }
    limits::check(bytes).map_err(|e| {
        let (line, column) = e.position();
        Issue { line, column, ..Issue::error("", e.reason(), format!("the IR {e}")) }
    })?;
    let text = std::str::from_utf8(bytes).map_err(|_| Issue::error("", "NOT_UTF8", "the IR is not UTF-8 text"))?;
    // First the YAML alone, so a syntax error is reported as one, wherever it is.
    let mut count = 0;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        serde::de::IgnoredAny::deserialize(document).map_err(|e| yaml_issue(e, String::new(), index_of(index)))?;
        count += 1;
    }
    match count {
        0 => return Err(Issue::error("", "EMPTY", "the IR holds no YAML document")),
        1 | 2 => {}
        _ => {
            return Err(Issue::error(
                "",
                "TOO_MANY_DOCUMENTS",
                "the IR holds a pipeline spec and at most a platform spec",
            ));
        }
    }
    let first =
        serde_yaml::Deserializer::from_str(text).next().ok_or_else(|| Issue::error("", "EMPTY", "no document"))?;
    let spec: spec::PipelineSpec = serde_path_to_error::deserialize(first).map_err(|e| {
        let location = e.path().to_string();
        yaml_issue(e.into_inner(), if location == "." { String::new() } else { location }, 0)
    })?;
    let has_platform_spec = count == 2;
    Ok(Pipeline { spec, has_platform_spec })
}

fn index_of(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn yaml_issue(error: serde_yaml::Error, location: String, document: u32) -> Issue {
    let message = error.to_string();
    let reason = if message.contains("recursion limit exceeded") {
        "TOO_DEEP"
    } else if message.contains("repetition limit exceeded") {
        "ALIAS_EXPANSION"
    } else if location.is_empty() {
        "YAML_SYNTAX"
    } else {
        "INVALID_FIELD"
    };
    let (line, column) = error
        .location()
        .map_or((0, 0), |l| (u32::try_from(l.line()).unwrap_or(0), u32::try_from(l.column()).unwrap_or(0)));
    Issue { line, column, document, ..Issue::error(location, reason, message) }
}
