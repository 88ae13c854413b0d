//! Image references as Docker, Kubernetes and KFP read them: `python:3.11` is `docker.io/library/python:3.11`,
//! a first component with a `.` or `:` (or `localhost`) is a registry, no tag means `latest`, and a digest
//! (`@sha256:…`) pins the image whatever the tag says.

use std::fmt;

use crate::digest::Digest;

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Longest repository name.
const MAX_REPOSITORY: usize = 255;
/// Longest tag.
const MAX_TAG: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host (and port): `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The repository in it: `library/python`.
    pub repository: String,
    /// The tag, when the reference names one or names neither tag nor digest (`latest`).
    pub tag: Option<String>,
    /// The digest, when the reference pins one.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not an image reference: {why}")]
pub struct ReferenceError {
    reference: String,
    why: &'static str,
}

impl ImageRef {
    /// Parses `text` the way `docker pull` does.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let error = |why| ReferenceError { reference: text.chars().take(200).collect(), why };
        if text.is_empty() || text.len() > 512 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(error("empty, too long, or holding spaces"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest.parse::<Digest>().map_err(|_| error("a bad digest"))?)),
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_owned())),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first.to_owned(), rest),
            _ => (DEFAULT_REGISTRY.to_owned(), name),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
            _ => registry,
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if !registry.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
            return Err(error("a bad registry host"));
        }
        if repository.len() > MAX_REPOSITORY || !repository.split('/').all(valid_component) {
            return Err(error("a bad repository name (lowercase letters, digits and . _ - between them)"));
        }
        if let Some(tag) = &tag
            && !valid_tag(tag)
        {
            return Err(error("a bad tag (letters, digits, _ . -; at most 128, not starting with . or -)"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Self { registry, repository, tag, digest })
    }
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    edge(bytes.first())
        && edge(bytes.last())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        ImageRef::parse(text).map(|r| r.to_string()).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn references_read_as_docker_reads_them() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (text, read) in [
            ("python:3.11", "docker.io/library/python:3.11".to_owned()),
            ("python", "docker.io/library/python:latest".to_owned()),
            ("kubeflow/pipelines:2.0", "docker.io/kubeflow/pipelines:2.0".to_owned()),
            ("index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20".to_owned()),
            ("127.0.0.1:5000/assets/abc:v1", "127.0.0.1:5000/assets/abc:v1".to_owned()),
            ("localhost/team/model", "localhost/team/model:latest".to_owned()),
            ("ghcr.io/org/sub/image:1.0-rc.1", "ghcr.io/org/sub/image:1.0-rc.1".to_owned()),
            (&format!("python@{digest}"), format!("docker.io/library/python@{digest}")),
            (&format!("gcr.io/x/y:3@{digest}"), format!("gcr.io/x/y:3@{digest}")),
        ] {
            assert_eq!(shown(text), read, "{text}");
        }
    }

    #[test]
    fn malformed_references_are_refused() {
        for text in [
            "",
            "Python:3.11",
            "python:",
            "python:.hidden",
            "python@sha256:abc",
            "a b",
            "repo//double",
            "registry.io/-leading",
            "registry.io/../up",
            &format!("python:{}", "t".repeat(129)),
        ] {
            assert!(ImageRef::parse(text).is_err(), "{text:?} should be refused");
        }
    }
}
