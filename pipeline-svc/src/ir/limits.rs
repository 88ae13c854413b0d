//! Bounds on an IR document's shape, checked in one linear pass over its bytes before any YAML parser sees them.
//!
//! libyaml (under serde_yaml) revisits every open flow collection on every token, so `[[[[…` costs time quadratic
//! in its depth, and serde_yaml loads a document's every event before its own recursion limit applies. So nesting
//! and size are bounded here first: the pass follows YAML's lexical structure closely enough to know which
//! brackets are structure (not text in a quoted, plain or block scalar, or a comment), and where it cannot tell it
//! counts them, so it may overestimate a document's depth but never underestimates what libyaml would nest. JSON
//! is flow YAML and is read the same way.

/// Deepest nesting accepted: block and flow collections inside one another. The compiled samples nest 8 to 10 deep;
/// serde_yaml's own recursion limit is 128.
pub const MAX_DEPTH: usize = 64;

/// Most nodes accepted (collections, entries, keys and values as the pass sees them). The compiled samples hold 128
/// to 1,888; a flat DAG of 1,000 one-input tasks about 20,000.
pub const MAX_NODES: usize = 250_000;

/// A bound the document exceeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Collections nest deeper than [`MAX_DEPTH`].
    #[error("nests deeper than {MAX_DEPTH} levels (line {line}, column {column}); at most {MAX_DEPTH}")]
    TooDeep {
        /// 1-based line where the limit was passed.
        line: u32,
        /// 1-based column where the limit was passed.
        column: u32,
    },
    /// More than [`MAX_NODES`] nodes.
    #[error("holds more than {MAX_NODES} nodes (line {line}); at most {MAX_NODES}")]
    TooManyNodes {
        /// 1-based line where the limit was passed.
        line: u32,
        /// 1-based column where the limit was passed.
        column: u32,
    },
}

impl LimitError {
    /// UPPER_SNAKE_CASE reason, as issues carry it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooDeep { .. } => "TOO_DEEP",
            Self::TooManyNodes { .. } => "TOO_MANY_NODES",
        }
    }

    /// 1-based line and column where the limit was passed.
    pub fn position(&self) -> (u32, u32) {
        match self {
            Self::TooDeep { line, column } | Self::TooManyNodes { line, column } => (*line, *column),
        }
    }
}

/// Checks `bytes` against [`MAX_DEPTH`] and [`MAX_NODES`] in time linear in their length. A document that is not
/// YAML passes if it stays within the bounds: the parser reports its syntax.
pub fn check(bytes: &[u8]) -> Result<(), LimitError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pass = Pass::default();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        pass.line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        pass.line(line)?;
    }
    Ok(())
}

/// An open block scalar (`|` or `>`): its text is the following lines indented more than `owner`, and once the
/// first of them sets it, at least `indent`.
#[derive(Debug, Clone, Copy)]
struct BlockScalar {
    owner: isize,
    indent: Option<usize>,
}

#[derive(Debug, Default)]
struct Pass {
    /// Columns of the open block collections and nodes, innermost last.
    blocks: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    /// Inside a block scalar.
    scalar: Option<BlockScalar>,
    /// Inside a quoted scalar that goes on past the line (its quote character).
    quote: Option<u8>,
    /// A plain scalar ended its line: lines indented more than this column continue it as text.
    plain_owner: Option<usize>,
    nodes: usize,
    line_number: u32,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn skip_blanks(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(|&b| is_blank(b)) {
        at += 1;
    }
    at
}

/// Whether position `at` ends a token: a blank or the end of the line.
fn ends_token(text: &[u8], at: usize) -> bool {
    text.get(at).is_none_or(|&b| is_blank(b))
}

/// Where the quoted scalar whose body starts at `from` closes (just past its closing quote), if on this line.
fn close_quote(text: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut at = from;
    while at < text.len() {
        match (quote, text[at]) {
            (b'"', b'\\') => at += 1,
            (b'\'', b'\'') if text.get(at + 1) == Some(&b'\'') => at += 1,
            (q, b) if q == b => return Some(at + 1),
            _ => {}
        }
        at += 1;
    }
    None
}

/// Skips anchors (`&a`) and tags (`!t`) before a node.
fn skip_properties(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b'&' | b'!')) {
        while !ends_token(text, at) {
            at += 1;
        }
        at = skip_blanks(text, at);
    }
    at
}

impl Pass {
    fn column(at: usize) -> u32 {
        u32::try_from(at + 1).unwrap_or(u32::MAX)
    }

    fn count(&mut self, at: usize) -> Result<(), LimitError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(LimitError::TooManyNodes { line: self.line_number, column: Self::column(at) });
        }
        Ok(())
    }

    fn deeper(&self, at: usize) -> Result<(), LimitError> {
        if self.blocks.len() + self.flow > MAX_DEPTH {
            return Err(LimitError::TooDeep { line: self.line_number, column: Self::column(at) });
        }
        Ok(())
    }

    /// A block node starts at column `at`: it closes the nodes at or right of it and opens one.
    fn open_block(&mut self, at: usize) -> Result<(), LimitError> {
        while self.blocks.last().is_some_and(|&c| c >= at) {
            self.blocks.pop();
        }
        self.blocks.push(at);
        self.count(at)?;
        self.deeper(at)
    }

    fn line(&mut self, text: &[u8]) -> Result<(), LimitError> {
        if let Some(quote) = self.quote {
            let Some(end) = close_quote(text, 0, quote) else { return Ok(()) };
            self.quote = None;
            // A key cannot span lines: `end` as its column only makes a block scalar after it own fewer lines.
            return if self.flow > 0 { self.flow_text(text, end) } else { self.after_key_candidate(text, end, end) };
        }
        let indent = text.iter().take_while(|&&b| b == b' ').count();
        let blank = text[indent..].iter().all(|&b| is_blank(b));
        if let Some(scalar) = &mut self.scalar {
            if blank {
                return Ok(());
            }
            let inside = isize::try_from(indent).unwrap_or(isize::MAX) > scalar.owner
                && scalar.indent.is_none_or(|first| indent >= first);
            if inside {
                scalar.indent.get_or_insert(indent);
                return Ok(());
            }
            self.scalar = None;
        }
        if blank {
            return Ok(());
        }
        if self.flow > 0 {
            // Indentation means nothing inside brackets.
            return self.flow_text(text, indent);
        }
        if indent == 0 && (text.starts_with(b"---") || text.starts_with(b"...")) && ends_token(text, 3) {
            self.blocks.clear();
            self.plain_owner = None;
            return self.node(text, 3, -1);
        }
        if indent == 0 && text[0] == b'%' {
            return Ok(()); // a directive
        }
        if text[indent] == b'#' {
            return Ok(());
        }
        if let Some(owner) = self.plain_owner {
            if indent > owner {
                // The previous line's plain scalar goes on: this is text until a comment or a mapping indicator.
                return self.plain(text, indent, owner, None);
            }
            self.plain_owner = None;
        }
        self.open_block(indent)?;
        self.node(text, indent, isize::try_from(indent).unwrap_or(isize::MAX) - 1)
    }

    /// A block node may start at `at`; `owner` is the column a block scalar here must be indented past.
    fn node(&mut self, text: &[u8], at: usize, owner: isize) -> Result<(), LimitError> {
        let mut at = skip_blanks(text, at);
        let mut owner = owner;
        // Compact sequence entries and explicit keys: `- - x`, `- key: v`, `? k`.
        while matches!(text.get(at), Some(b'-' | b'?' | b':')) && ends_token(text, at + 1) {
            owner = isize::try_from(at).unwrap_or(isize::MAX);
            at = skip_blanks(text, at + 1);
            if at >= text.len() || text[at] == b'#' {
                return Ok(());
            }
            self.open_block(at)?;
        }
        let at = skip_properties(text, at);
        match text.get(at) {
            None | Some(b'#') => Ok(()),
            Some(b'|' | b'>') => {
                self.block_scalar(owner);
                Ok(())
            }
            Some(b'[' | b'{') => self.flow_text(text, at),
            Some(&quote @ (b'"' | b'\'')) => match close_quote(text, at + 1, quote) {
                Some(end) => self.after_key_candidate(text, end, at),
                None => {
                    self.quote = Some(quote);
                    Ok(())
                }
            },
            Some(_) => self.plain(text, at, usize::try_from(owner.max(0)).unwrap_or(0), Some(at)),
        }
    }

    /// After a scalar that ended at `at` (a quoted scalar or a flow collection): a `:` makes it the key at column
    /// `key` of a mapping whose value follows.
    fn after_key_candidate(&mut self, text: &[u8], at: usize, key: usize) -> Result<(), LimitError> {
        let at = skip_blanks(text, at);
        if text.get(at) == Some(&b':') && ends_token(text, at + 1) {
            return self.value(text, at + 1, key);
        }
        Ok(())
    }

    /// A plain scalar from `at`, continuing what is owned by column `owner`; `key` is where it started when it
    /// could be a mapping key.
    fn plain(&mut self, text: &[u8], at: usize, owner: usize, key: Option<usize>) -> Result<(), LimitError> {
        let mut at = at;
        while at < text.len() {
            match text[at] {
                b'#' if at > 0 && is_blank(text[at - 1]) => {
                    self.plain_owner = None;
                    return Ok(());
                }
                b':' if ends_token(text, at + 1) => {
                    self.plain_owner = None;
                    return self.value(text, at + 1, key.unwrap_or(owner));
                }
                _ => at += 1,
            }
        }
        self.plain_owner = Some(owner);
        Ok(())
    }

    /// The value of the mapping key at column `key`, from `at` on.
    fn value(&mut self, text: &[u8], at: usize, key: usize) -> Result<(), LimitError> {
        let at = skip_properties(text, skip_blanks(text, at));
        self.count(at)?;
        match text.get(at) {
            None | Some(b'#') => Ok(()),
            Some(b'|' | b'>') => {
                self.block_scalar(isize::try_from(key).unwrap_or(isize::MAX));
                Ok(())
            }
            Some(b'[' | b'{') => self.flow_text(text, at),
            Some(&quote @ (b'"' | b'\'')) => {
                if close_quote(text, at + 1, quote).is_none() {
                    self.quote = Some(quote);
                }
                Ok(())
            }
            Some(_) => self.plain(text, at, key, None),
        }
    }

    fn block_scalar(&mut self, owner: isize) {
        self.scalar = Some(BlockScalar { owner, indent: None });
    }

    /// Text from `at` on where brackets may open or close flow collections.
    fn flow_text(&mut self, text: &[u8], at: usize) -> Result<(), LimitError> {
        let mut at = at;
        // Whether a quoted scalar may start here (after an indicator or a blank, not inside a plain scalar).
        let mut token_start = true;
        while at < text.len() {
            let b = text[at];
            match b {
                b'[' | b'{' => {
                    self.flow += 1;
                    self.count(at)?;
                    self.deeper(at)?;
                    token_start = true;
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    token_start = false;
                    if self.flow == 0 {
                        return self.after_key_candidate(text, at + 1, at);
                    }
                }
                b',' | b':' => {
                    self.count(at)?;
                    token_start = true;
                }
                b'#' if at == 0 || is_blank(text[at - 1]) => return Ok(()),
                b'"' | b'\'' if token_start => match close_quote(text, at + 1, b) {
                    Some(end) => {
                        at = end;
                        token_start = false;
                        continue;
                    }
                    None => {
                        self.quote = Some(b);
                        return Ok(());
                    }
                },
                _ if is_blank(b) => {}
                _ => token_start = false,
            }
            at += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples");
        std::fs::read_dir(dir)
            .expect("samples")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read")))
            .collect()
    }

    #[test]
    fn every_compiled_sample_is_within_the_bounds() {
        for (name, bytes) in samples() {
            assert_eq!(check(&bytes), Ok(()), "{name}");
            let json = serde_json::to_vec_pretty(&serde_yaml::from_slice::<serde_json::Value>(&bytes).expect("yaml"))
                .expect("json");
            assert_eq!(check(&json), Ok(()), "{name} as JSON");
        }
    }

    #[test]
    fn nested_flow_collections_are_refused_where_they_pass_the_limit() {
        let deep = format!("a: {}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        assert_eq!(check(deep.as_bytes()), Err(LimitError::TooDeep { line: 1, column: 4 + MAX_DEPTH as u32 - 1 }));
        let within = format!("a: {}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert_eq!(check(within.as_bytes()), Ok(()));
        let json = format!("{}1{}", "{\"k\": [".repeat(40), "]}".repeat(40));
        assert!(matches!(check(json.as_bytes()), Err(LimitError::TooDeep { .. })));
    }

    #[test]
    fn nested_block_collections_count_too() {
        let mut mapping = String::new();
        for depth in 0..=MAX_DEPTH {
            mapping.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        assert!(matches!(check(mapping.as_bytes()), Err(LimitError::TooDeep { .. })));
        let compact = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(matches!(check(compact.as_bytes()), Err(LimitError::TooDeep { .. })));
    }

    #[test]
    fn brackets_in_text_are_not_structure() {
        let brackets = "[".repeat(MAX_DEPTH * 2);
        let documents = [
            format!("script: |\n  {brackets}\n\n  more {brackets}\nnext: 1\n"),
            format!("command:\n- sh\n- |\n  {brackets}\n- >-\n    {brackets}\n"),
            format!("- key: |\n    {brackets}\n"),
            format!("a: \"{brackets}\"\nb: '{brackets} it''s'\nc: x{brackets}\n"),
            format!("a: \"{brackets}\n  {brackets}\"\nb: 1\n"),
            format!("a: plain text that wraps\n  {brackets} and goes on\nb: 1 # {brackets}\n# {brackets}\n"),
            format!("a: [\"{brackets}\", '{brackets}']\n"),
        ];
        for document in documents {
            assert_eq!(check(document.as_bytes()), Ok(()), "{document}");
        }
    }

    #[test]
    fn text_that_ends_its_scalar_is_read_as_structure_again() {
        let brackets = "[".repeat(MAX_DEPTH + 1);
        // Less indented than the block scalar's first line, or than its key: structure, whatever libyaml makes of it.
        for document in [
            format!("a: |\n    text\n  {brackets}\n"),
            format!("- k: |\n  {brackets}\n"),
            format!("a: x\n{brackets}\n"),
            format!("a: 'x'\nb: {brackets}\n"),
        ] {
            assert!(matches!(check(document.as_bytes()), Err(LimitError::TooDeep { .. })), "{document}");
        }
    }

    #[test]
    fn wide_documents_are_refused_past_the_node_limit() {
        let wide = format!("a: [{}]\n", "1,".repeat(MAX_NODES));
        assert!(matches!(check(wide.as_bytes()), Err(LimitError::TooManyNodes { .. })));
        let lines = "- 1\n".repeat(MAX_NODES);
        assert!(matches!(check(lines.as_bytes()), Err(LimitError::TooManyNodes { .. })));
    }

    #[test]
    fn a_hundred_thousand_nested_brackets_are_refused_at_the_limit() {
        let bomb = "[".repeat(100_000);
        assert_eq!(check(bomb.as_bytes()), Err(LimitError::TooDeep { line: 1, column: MAX_DEPTH as u32 }));
    }
}
