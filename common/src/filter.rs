//! The `filter` grammar every List call shares: `field = value` terms joined by ` AND `, values optionally
//! double-quoted (and quoted whenever they contain spaces). A filter is at most [`MAX_FILTER_BYTES`] long, checked
//! before anything is parsed, and errors quote at most a short prefix of it ([`echo`]).

use crate::status_bounds::echo;

/// The longest filter any List call takes, in bytes.
pub const MAX_FILTER_BYTES: usize = 2048;

/// How a term compares its field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// The `(field, value)` terms of `filter`, every one an `=`, in the order written; empty for a blank filter. The
/// error says what is wrong, for a `google.rpc.BadRequest` on the `filter` field.
pub fn terms(filter: &str) -> Result<Vec<(String, String)>, String> {
    comparisons(filter)?
        .into_iter()
        .map(|(field, op, value)| match op {
            Op::Eq => Ok((field, value)),
            _ => Err(format!("{field} can only be compared with =")),
        })
        .collect()
}

/// The `(field, operator, value)` terms of `filter`, operators being `=`, `>`, `>=`, `<` and `<=`.
pub fn comparisons(filter: &str) -> Result<Vec<(String, Op, String)>, String> {
    if filter.len() > MAX_FILTER_BYTES {
        return Err(format!("must be at most {MAX_FILTER_BYTES} bytes, got {}", filter.len()));
    }
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    filter
        .split(" AND ")
        .map(|term| {
            let at = term
                .find(['=', '<', '>'])
                .ok_or_else(|| format!("{} is not of the form field = value", echo(term.trim())))?;
            let (field, rest) = term.split_at(at);
            let (op, value) = [(">=", Op::Ge), ("<=", Op::Le), ("=", Op::Eq), (">", Op::Gt), ("<", Op::Lt)]
                .into_iter()
                .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value)))
                .ok_or_else(|| format!("{} has no comparison", echo(term.trim())))?;
            let field = field.trim();
            if field.is_empty() {
                return Err(format!("{} names no field", echo(term.trim())));
            }
            Ok((field.to_owned(), op, unquote(value.trim())?))
        })
        .collect()
}

/// A boolean term's value.
pub fn boolean(field: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{field} takes true or false, got {}", echo(value))),
    }
}

fn unquote(value: &str) -> Result<String, String> {
    match value.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains('"'))
            .map(str::to_owned)
            .ok_or_else(|| format!("unterminated or nested quotes in {}", echo(value))),
        None if value.is_empty() => Err("missing value after =".to_owned()),
        None if value.contains(char::is_whitespace) => {
            Err(format!("quote values that contain spaces: {}", echo(value)))
        }
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
        assert!(terms("a > 1").is_err(), "terms take = only");
    }

    #[test]
    fn a_filter_over_the_limit_is_refused_before_parsing_and_errors_echo_a_prefix() {
        let long = format!("{} = 1", "k".repeat(MAX_FILTER_BYTES));
        assert_eq!(comparisons(&long), Err(format!("must be at most 2048 bytes, got {}", long.len())));
        let error = terms(&format!("{} 1", "k".repeat(MAX_FILTER_BYTES - 10))).expect_err("no comparison");
        assert!(error.len() < 200, "{error}");
    }

    #[test]
    fn comparisons_read_every_operator() {
        let parsed =
            comparisons(r#"create_time >= "2025-01-01T00:00:00Z" AND n < 3 AND n <= 4 AND m > 1"#).expect("valid");
        let ops: Vec<_> = parsed.iter().map(|(f, op, v)| (f.as_str(), *op, v.as_str())).collect();
        assert_eq!(
            ops,
            [
                ("create_time", Op::Ge, "2025-01-01T00:00:00Z"),
                ("n", Op::Lt, "3"),
                ("n", Op::Le, "4"),
                ("m", Op::Gt, "1")
            ]
        );
    }
}
