//! The `filter` grammar every List call shares: `field = value` terms joined by ` AND `, values optionally
//! double-quoted (and quoted whenever they contain spaces).

/// The `(field, value)` terms of `filter`, in the order written; empty for a blank filter. The error says what is
/// wrong, for a `google.rpc.BadRequest` on the `filter` field.
pub fn terms(filter: &str) -> Result<Vec<(String, String)>, String> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    filter
        .split(" AND ")
        .map(|term| {
            let (field, value) =
                term.split_once('=').ok_or_else(|| format!("{:?} is not of the form field = value", term.trim()))?;
            let field = field.trim();
            if field.is_empty() {
                return Err(format!("{:?} names no field", term.trim()));
            }
            Ok((field.to_owned(), unquote(value.trim())?))
        })
        .collect()
}

/// A boolean term's value.
pub fn boolean(field: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{field} takes true or false, got {value:?}")),
    }
}

fn unquote(value: &str) -> Result<String, String> {
    match value.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains('"'))
            .map(str::to_owned)
            .ok_or_else(|| format!("unterminated or nested quotes in {value:?}")),
        None if value.is_empty() => Err("missing value after =".to_owned()),
        None if value.contains(char::is_whitespace) => Err(format!("quote values that contain spaces: {value:?}")),
        None => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_split_trimmed_and_unquoted() {
        assert_eq!(terms("  "), Ok(vec![]));
        assert_eq!(
            terms(r#"kind = MODEL AND labels.team = "data science""#),
            Ok(vec![("kind".into(), "MODEL".into()), ("labels.team".into(), "data science".into())])
        );
        assert!(terms("kind MODEL").is_err());
        assert!(terms("kind = ").is_err());
        assert!(terms(r#"a = "b"#).is_err());
        assert!(terms("a = b c").is_err());
        assert!(terms(" = b").is_err());
    }
}
