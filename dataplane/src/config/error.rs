//! Configuration errors and the `file:line:col` positions they carry.

use std::fmt;

/// A position in a configuration file, printed as `file:line:col` (1-based; column in
/// characters). Line 0 means the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePos {
    /// The file's name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 { write!(f, "{}", self.file) } else { write!(f, "{}:{}:{}", self.file, self.line, self.col) }
    }
}

/// Maps byte offsets of a configuration's text to positions. The text may be joined from
/// several sources (the keys of an etcd prefix), each with its own name and line numbers.
#[derive(Clone, Debug)]
pub struct SourceMap {
    text: String,
    /// Where each source starts in `text`, and its name; the first starts at 0.
    parts: Vec<(usize, String)>,
}

impl SourceMap {
    /// A map over `text`, called `name` in positions.
    pub fn new(name: &str, text: &str) -> SourceMap {
        SourceMap { text: text.to_string(), parts: vec![(0, name.to_string())] }
    }

    /// A map over the texts of `parts` joined in order (each ending in a newline), each
    /// named by its own name in positions.
    pub fn joined(parts: &[(String, String)]) -> SourceMap {
        let mut text = String::new();
        let mut starts = Vec::with_capacity(parts.len());
        for (name, part) in parts {
            starts.push((text.len(), name.clone()));
            text.push_str(part);
            if !part.ends_with('\n') {
                text.push('\n');
            }
        }
        if starts.is_empty() {
            starts.push((0, String::new()));
        }
        SourceMap { text, parts: starts }
    }

    /// The (first) source's name as given.
    pub fn name(&self) -> &str {
        &self.parts[0].1
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The position of byte `offset`.
    pub fn pos(&self, offset: usize) -> SourcePos {
        let offset = offset.min(self.text.len());
        // The last source that starts at or before the offset (a part's end is the next's start).
        let i = self.parts.partition_point(|(start, _)| *start <= offset).saturating_sub(1);
        let (start, name) = &self.parts[i];
        let before = self.text.get(*start..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        SourcePos { file: name.clone(), line, col }
    }
}

/// One thing wrong with a configuration, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    /// Where.
    pub at: SourcePos,
    /// What, in a sentence (may continue on indented lines, e.g. a rule with a caret).
    pub message: String,
}

impl ConfigError {
    /// An error at `at`.
    pub fn new(at: SourcePos, message: impl Into<String>) -> ConfigError {
        ConfigError { at, message: message.into() }
    }
}

/// Everything wrong with a configuration, in file order. A configuration with any error is
/// rejected whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let map = SourceMap::new("f.toml", "a = 1\nbé = 2\n");
        assert_eq!(map.pos(0).to_string(), "f.toml:1:1");
        assert_eq!(map.pos(6).to_string(), "f.toml:2:1");
        // 'é' is two bytes but one column.
        assert_eq!(map.pos(9).to_string(), "f.toml:2:3");
        assert_eq!(map.pos(1000).to_string(), "f.toml:3:1");
    }

    #[test]
    fn joined_sources_have_their_own_names_and_lines() {
        let parts = [("a".to_string(), "x = 1\ny = 2\n".to_string()), ("b".to_string(), "z = 3".to_string())];
        let map = SourceMap::joined(&parts);
        assert_eq!(map.text(), "x = 1\ny = 2\nz = 3\n");
        assert_eq!(map.pos(6).to_string(), "a:2:1");
        assert_eq!(map.pos(12).to_string(), "b:1:1");
        assert_eq!(map.pos(16).to_string(), "b:1:5");
    }
}
