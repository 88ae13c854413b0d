//! The path a layer entry names, checked before anything on disk is touched: relative, no `..`, bounded depth and
//! component length, no NUL. A path never reaches the file system as a whole; it is walked component by component
//! from the root (see `tree`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Most components an entry's path may have.
pub const MAX_DEPTH: usize = 128;
/// Longest component (NAME_MAX).
const MAX_COMPONENT: usize = 255;
/// Longest path (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest path shown in an error.
const MAX_SHOWN: usize = 200;

/// An entry's path inside the image root, as components. Empty for the root itself (`./`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryPath(Vec<Vec<u8>>);

impl EntryPath {
    /// Checks the path of a tar entry: leading `./` (any number) and trailing `/` are dropped, as are empty and `.`
    /// components; an absolute path, a `..` component, a NUL, too many or too long components are refused.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.contains(&0) {
            return Err("holds a NUL byte".into());
        }
        if raw.len() > MAX_PATH {
            return Err(format!("is longer than {MAX_PATH} bytes"));
        }
        if raw.first() == Some(&b'/') {
            return Err("is absolute".into());
        }
        let mut components = Vec::new();
        for component in raw.split(|b| *b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => return Err("climbs out with ..".into()),
                _ if component.len() > MAX_COMPONENT => {
                    return Err(format!("has a component longer than {MAX_COMPONENT} bytes"));
                }
                _ => components.push(component.to_vec()),
            }
        }
        if components.len() > MAX_DEPTH {
            return Err(format!("is deeper than {MAX_DEPTH} directories"));
        }
        Ok(Self(components))
    }

    /// The path as one key, components joined by `/`.
    pub fn key(&self) -> Box<[u8]> {
        self.0.join(&b'/').into_boxed_slice()
    }

    /// The keys of every directory above the entry, the root's (empty) included.
    pub fn ancestor_keys(&self) -> impl Iterator<Item = Box<[u8]>> + '_ {
        (0..self.0.len()).map(|n| self.0[..n].join(&b'/').into_boxed_slice())
    }

    /// Whether a directory above the entry is named like a whiteout (`.wh.x/y` is no path an image can hold).
    pub fn under_whiteout_name(&self) -> bool {
        self.0.iter().take(self.0.len().saturating_sub(1)).any(|c| c.starts_with(b".wh."))
    }

    /// The directories above the entry, from the root down.
    pub fn parents(&self) -> impl Iterator<Item = &OsStr> {
        self.0.iter().take(self.0.len().saturating_sub(1)).map(|c| OsStr::from_bytes(c))
    }

    /// The entry's own name (`None` for the root).
    pub fn name(&self) -> Option<&OsStr> {
        self.0.last().map(|c| OsStr::from_bytes(c))
    }

    /// The directory above the entry.
    pub fn parent(&self) -> Self {
        Self(self.0.iter().take(self.0.len().saturating_sub(1)).cloned().collect())
    }

    /// The entry `name` inside this directory.
    pub fn child(&self, name: &[u8]) -> Self {
        let mut components = self.0.clone();
        components.push(name.to_vec());
        Self(components)
    }
}

/// A path from a layer as an error shows it: lossy, quoted, cut.
pub fn shown(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    if cut.len() < text.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &str) -> Result<Vec<String>, String> {
        EntryPath::parse(raw.as_bytes())
            .map(|p| p.0.into_iter().map(|c| String::from_utf8(c).expect("utf-8")).collect())
    }

    #[test]
    fn entry_paths_are_relative_and_stay_below_the_root() {
        assert_eq!(parts("./usr/bin/"), Ok(vec!["usr".to_owned(), "bin".to_owned()]));
        assert_eq!(parts("././etc//passwd"), Ok(vec!["etc".to_owned(), "passwd".to_owned()]));
        assert_eq!(parts("./"), Ok(vec![]));
        assert!(parts("../escape").is_err());
        assert!(parts("usr/../../escape").is_err());
        assert!(parts("/etc/passwd").is_err());
        assert!(parts(&"a/".repeat(MAX_DEPTH + 1)).is_err());
        assert!(parts(&"x".repeat(256)).is_err());
        assert!(EntryPath::parse(b"a\0b").is_err());
    }
}
