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
    /// Where each line starts in `text`, so that a position costs a binary search and one
    /// line's characters however long the text and however many errors it has.
    line_starts: Vec<usize>,
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

impl SourceMap {
    /// A map over `text`, called `name` in positions.
    pub fn new(name: &str, text: &str) -> SourceMap {
        SourceMap { line_starts: line_starts(text), text: text.to_string(), parts: vec![(0, name.to_string())] }
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
        SourceMap { line_starts: line_starts(&text), text, parts: starts }
    }

    /// The (first) source's name as given.
    pub fn name(&self) -> &str {
        &self.parts[0].1
    }

    /// Where errors in `file` go in a report: the configuration's own sources in their
    /// order, then any other file (a list file, a plan) after them.
    pub fn rank(&self, file: &str) -> usize {
        self.parts.iter().position(|(_, name)| name == file).unwrap_or(self.parts.len())
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
        // Every source starts a line; the lines starting at or before each bound count lines.
        let first_line = self.line_starts.partition_point(|&s| s <= *start);
        let lines = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[lines - 1].max(*start);
        let col = self.text.get(line_start..offset).map_or(1, |t| t.chars().count() + 1);
        SourcePos { file: name.clone(), line: lines - first_line + 1, col }
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

/// The longest line of an error message, in characters.
pub const MAX_LINE_CHARS: usize = 1000;

impl ConfigError {
    /// An error at `at`.
    /// A message quotes what is wrong, and what is wrong may be megabytes (one line of a
    /// list file, a value): each of its lines is cut at [`MAX_LINE_CHARS`] characters.
    pub fn new(at: SourcePos, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        if message.lines().all(|l| l.len() <= MAX_LINE_CHARS) {
            return ConfigError { at, message };
        }
        let cut: Vec<String> = message
            .split('\n')
            .map(|l| match l.char_indices().nth(MAX_LINE_CHARS) {
                Some((end, _)) => format!("{}… ({} bytes)", &l[..end], l.len()),
                None => l.to_string(),
            })
            .collect();
        ConfigError { at, message: cut.join("\n") }
    }
}

/// Everything wrong with a configuration, in file order. A configuration with any error is
/// rejected whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = crate::limits::MAX_REPORTED_ERRORS;
        for (i, e) in self.0.iter().take(shown).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > shown {
            write!(f, "\n... and {}", crate::report::counted(self.0.len() - shown, "more error"))?;
        }
        Ok(())
    }
}

/// What to say of `warnings`, a line each: the first [`MAX_REPORTED_ERRORS`] of them, then
/// how many more there are. A configuration can warn thousands of times (8,000 prefixes
/// partly routed): a screenful says what is wrong, and the rest scrolls nothing off it.
///
/// [`MAX_REPORTED_ERRORS`]: crate::limits::MAX_REPORTED_ERRORS
pub fn warning_lines(warnings: &[ConfigError]) -> impl Iterator<Item = String> + '_ {
    let shown = crate::limits::MAX_REPORTED_ERRORS;
    let more = warnings.len().saturating_sub(shown);
    warnings
        .iter()
        .take(shown)
        .map(ToString::to_string)
        .chain((more > 0).then(|| format!("... and {}", crate::report::counted(more, "more warning"))))
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

    #[test]
    fn positions_agree_with_counting_on_every_byte() {
        let parts = [("a".to_string(), "x\n\nyé = 2\n".to_string()), ("b".to_string(), "\nz = \"ü\"".to_string())];
        let map = SourceMap::joined(&parts);
        let text = map.text().to_string();
        for offset in (0..=text.len()).filter(|&o| text.is_char_boundary(o)) {
            let b = parts[0].1.len();
            let (name, start) = if offset < b { ("a", 0) } else { ("b", b) };
            let before = &text[start..offset];
            let line = before.matches('\n').count() + 1;
            let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
            assert_eq!(map.pos(offset).to_string(), format!("{name}:{line}:{col}"), "offset {offset}");
        }
    }

    #[test]
    fn many_errors_are_cut_to_the_first_hundred() {
        let at = SourcePos { file: "f".into(), line: 1, col: 1 };
        let errors = ConfigErrors(vec![ConfigError::new(at, "bad"); 250]);
        let text = errors.to_string();
        assert_eq!(text.lines().count(), 101);
        assert!(text.ends_with("... and 150 more errors"), "{text}");
    }

    /// One past the hundred shown is "1 more error", as a list's one refused member past its
    /// hundred is "1 more member" (a list of 101 bad members, with the line saying that
    /// one, made 101 errors and "... and 1 more errors").
    #[test]
    fn one_past_the_hundred_is_said_in_the_singular() {
        let at = SourcePos { file: "f".into(), line: 1, col: 1 };
        let text = ConfigErrors(vec![ConfigError::new(at.clone(), "bad"); 101]).to_string();
        assert_eq!(text.lines().count(), 101);
        assert!(text.ends_with("\n... and 1 more error"), "{text}");
        let warnings = vec![ConfigError::new(at, "odd"); 101];
        let lines: Vec<String> = warning_lines(&warnings).collect();
        assert_eq!(lines.last().map(String::as_str), Some("... and 1 more warning"));
        assert_eq!(warning_lines(&warnings[..100]).count(), 100);
    }
}
