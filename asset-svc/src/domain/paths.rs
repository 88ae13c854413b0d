//! File paths inside a version: relative, `/`-separated, and unable to name anything outside the version
//! however a client or a later tool decodes them.

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
    for segment in path.split('/') {
        match segment {
            "" => return Err("must not contain empty segments (// or a trailing /)".into()),
            "." | ".." => return Err("must not contain . or .. segments, encoded or not".into()),
            _ => {}
        }
    }
    Ok(())
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

/// The first pair of paths where one is a directory of the other (`a` and `a/b`): such a version cannot be
/// written back to a file system.
pub fn file_directory_clash<'a>(sorted: &[&'a str]) -> Option<(&'a str, &'a str)> {
    sorted.windows(2).find_map(|pair| {
        let (a, b) = (pair[0], pair[1]);
        (b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/').then_some((a, b))
    })
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
    fn a_file_cannot_also_be_a_directory() {
        assert_eq!(file_directory_clash(&["a", "a/b"]), Some(("a", "a/b")));
        assert_eq!(file_directory_clash(&["a", "a.txt", "ab"]), None);
    }
}
