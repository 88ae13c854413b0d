//! File paths inside a version: relative, `/`-separated, and unable to name anything outside the version
//! however a client or a later tool decodes them, normalises them or shows them.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1_024;

/// Why `path` cannot be a file of a version, or `Ok(())`.
pub fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain NUL or control characters".into());
    }
    // A path is judged as written and as decoded once and twice, so no later percent-decoding turns it into a
    // traversal.
    let once = percent_decode(path);
    let twice = percent_decode(&once);
    for form in [path, once.as_str(), twice.as_str()] {
        check_form(form)?;
    }
    Ok(())
}

fn check_form(path: &str) -> Result<(), String> {
    if path.contains('\\') {
        return Err("must use / as separator, not backslashes".into());
    }
    if path.starts_with('/') {
        return Err("must be relative (no leading /)".into());
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("must not start with a drive letter".into());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain NUL or control characters, encoded or not".into());
    }
    if let Some(c) = path.chars().find(|c| is_bidi_control(*c)) {
        return Err(format!(
            "must not contain bidirectional control characters such as U+{:04X}: they show a name other than the \
             one stored",
            u32::from(c)
        ));
    }
    if let Some(c) = path.chars().find(|c| is_separator_lookalike(*c)) {
        return Err(format!(
            "must not contain U+{:04X} ({c}): some systems show or treat it as . or /, so it can hide a traversal",
            u32::from(c)
        ));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("must not contain empty segments (// or a trailing /)".into()),
            "." | ".." => return Err("must not contain . or .. segments, encoded or not".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Explicit directional formatting characters (Unicode TR9 §2): they reorder what a reader sees, so
/// `txt.exe` can display as `exe.txt`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Slashes that no normalisation turns into `/` or `\` but that render like them.
const SLASH_LOOKALIKES: [char; 8] =
    ['\u{2044}', '\u{2215}', '\u{2216}', '\u{2571}', '\u{2572}', '\u{29F5}', '\u{29F8}', '\u{29F9}'];

/// A non-ASCII character that stands for `.`, `/` or `\`: its compatibility form contains one (U+2024 ONE DOT
/// LEADER, U+2025 TWO DOT LEADER, U+FF0E FULLWIDTH FULL STOP, U+FF0F FULLWIDTH SOLIDUS, …), which is what
/// NFKC-normalising clients and file systems write, or it is drawn like a slash (U+2215 DIVISION SLASH, …).
fn is_separator_lookalike(c: char) -> bool {
    !c.is_ascii() && (SLASH_LOOKALIKES.contains(&c) || std::iter::once(c).nfkc().any(|n| matches!(n, '.' | '/' | '\\')))
}

/// The form two paths share when a file system that normalises to NFC (or decomposes, as macOS does) and
/// ignores case would store them under one name: equal forms collide when the version is written out there.
pub fn comparable(path: &str) -> String {
    path.nfc().collect::<String>().to_lowercase().nfc().collect()
}

/// Decodes `%XX` escapes; anything that is not a valid escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A pair of paths where one is a directory of the other (`a` and `a/b`): such a version cannot be written back
/// to a file system. Every ancestor of every path is looked up, so paths sorting between the two (`a.txt`) hide
/// nothing.
pub fn file_directory_clash<'a>(paths: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let all: HashSet<&'a str> = paths.iter().copied().collect();
    paths
        .iter()
        .find_map(|path| path.match_indices('/').find_map(|(end, _)| all.get(&path[..end]).map(|file| (*file, *path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for ok in ["train.csv", "data/train.csv", "a b/ü.parquet", "100%.txt", "x/.hidden", "v1..2/f"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn traversal_and_ambiguous_paths_fail() {
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "%2e%2e/x",
            "%252e%252e/x",
            "a%2f..%2fb",
            "%2fetc",
            "a\\b",
            "..\\x",
            "C:/x",
            "c:x",
            "a//b",
            "a/",
            "a\0b",
            "a\nb",
            "%00",
            long.as_str(),
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lookalikes_of_dots_and_slashes_and_bidi_controls_fail() {
        for bad in [
            "\u{2024}\u{2024}/x",
            "\u{2025}/x",
            "a/\u{FF0E}\u{FF0E}/b",
            "a\u{2215}b",
            "a\u{2044}b",
            "a\u{FF0F}b",
            "a\u{FF3C}b",
            "%E2%80%A5/x",
            "report\u{202E}txt.exe",
            "a\u{2066}b",
            "a\u{200F}b",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        for ok in ["caf\u{e9}.csv", "cafe\u{301}.csv", "\u{65e5}\u{672c}/\u{30c7}\u{30fc}\u{30bf}.csv", "a\u{b7}b"] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn paths_equal_after_nfc_or_case_folding_compare_equal() {
        assert_eq!(comparable("Caf\u{e9}.CSV"), comparable("cafe\u{301}.csv"));
        assert_eq!(comparable("Data/Train.csv"), comparable("data/train.csv"));
        assert_ne!(comparable("a.csv"), comparable("b.csv"));
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        assert_eq!(file_directory_clash(&["a", "a/b"]), Some(("a", "a/b")));
        assert_eq!(file_directory_clash(&["a", "a.txt", "ab"]), None);
        assert_eq!(file_directory_clash(&["a/b", "a-1", "a"]), Some(("a", "a/b")), "whatever sorts between them");
    }
}
