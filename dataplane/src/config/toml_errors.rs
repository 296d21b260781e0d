//! toml's errors said for whoever writes the file: the position and words of each fault
//! (a typo's nearest name, the table a stray key was read into, an integer's range, an
//! address without quotes, `[x]` where `[[x]]` is meant). toml and serde say what their
//! parser expected; these say what to write.

use super::{ConfigError, SourceMap};

/// toml's error `e` over the text of `source`, said for whoever writes the file.
pub(super) fn fault(source: &SourceMap, e: &toml::de::Error) -> ConfigError {
    let text = source.text();
    // toml's message can span lines (it quotes the text); the position says where.
    let mut message = e.message().trim().to_string();
    let mut offset = match e.span() {
        Some(span) => span.start,
        // A table header or dotted key too deep for the deserializer comes without a
        // position: point at the deepest one.
        None => match deepest_key(text) {
            Some((offset, depth)) => {
                message = format!("{message}: a key nested {depth} deep");
                offset
            }
            None => 0,
        },
    };
    if let Some(named) = with_nearest_name(&message) {
        message = named;
    } else if message.starts_with("unknown field `")
        && let Some((header, at)) = table_of_key(text, offset)
    {
        // No typo of a name the table holds: likely a key written below the wrong header
        // (one appended at the end of a file lands in its last table).
        let line = source.pos(at).line;
        message = format!("{message}: it is read as a key of `{header}` (line {line}), the last table header above it");
    } else if let Some(missing) = missing_section_or_key(&message) {
        message = missing;
    } else if message.starts_with("invalid ")
        && let Some((start, address)) = bare_address(text, offset)
    {
        // `anycast = 192.0.2.1`: toml reads a number, a time or a date, and says
        // "invalid float", which does not say what to write. It points where its
        // reading failed (the second dot of an IPv4 address); the fault is the value.
        message = format!("{message}: an address is a string in TOML: write \"{address}\"");
        offset = start;
    }
    // toml says "duplicate key" without which: the key (or table) where it points.
    if message == "duplicate key" {
        let rest = text.get(offset..).unwrap_or("");
        let key: String = rest.chars().take_while(|c| !matches!(c, '=' | ']' | '\n')).collect();
        let key = key.trim().trim_start_matches('[');
        if !key.is_empty() {
            message = format!("duplicate key `{key}`: a key is set once in its table, and a [table] written once");
        }
    }
    // serde names the field's type (`expected u16`), which says nothing to whoever
    // writes the file: the range the type holds, as the checks after parsing say theirs.
    // Past 64 bits either way toml hands serde an i128, which serde says is "invalid
    // type: integer `X` as i128", as if the value were no integer.
    if let Some(rest) =
        message.strip_prefix("invalid value: integer `").or_else(|| message.strip_prefix("invalid type: integer `"))
        && let Some((value, type_name)) =
            rest.split_once("`, expected ").or_else(|| rest.split_once("` as i128, expected "))
        && let Some(max) = unsigned_max(type_name)
    {
        message = format!("integer `{value}` is not in 0..={max}");
    }
    // `[customer]` where `[[customer]]` is meant: serde says only "invalid type:
    // map, expected a sequence", which does not say what to write.
    // The header's line, its comment left out (`[customer] # acme`).
    let line = text.get(offset..).and_then(|t| t.lines().next()).unwrap_or("");
    let line = line.split('#').next().unwrap_or("").trim();
    if message.starts_with("invalid type: map, expected a sequence")
        && let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']'))
        && !name.starts_with('[')
    {
        message = format!("{message}: write `[[{name}]]`, a list of tables (one `[[{name}]]` header each)");
    } else if message.starts_with("invalid type: map, expected a sequence")
        && let Some(header) = line.split_once(']').map(|(h, _)| h)
        && let Some(name) = header.split('.').next().filter(|n| !n.is_empty())
    {
        // Pointed inside a dotted header (`[customer.firewall]` with no
        // `[[customer]]` before it): the list is its first part.
        message = format!(
            "{message}: `[{header}]` belongs to one `[[{name}]]`: write `[[{name}]]` (and what it needs) above it"
        );
    }
    ConfigError::new(source.pos(offset), message)
}

/// The header of the table the key at byte `offset` of `text` was read into, as it is
/// written (`[[customer.firewall.rule]]`), and where it starts; `None` for a key of the top
/// level, or of an inline table (`{ ... }`: the key is inside its braces, where the error
/// points, and no header names it).
fn table_of_key(text: &str, offset: usize) -> Option<(&str, usize)> {
    use std::ops::Range;
    use toml::de::{DeTable, DeValue};
    /// The span of the header (or inline table) the key at `offset` is under: `header` is
    /// `table`'s (`None` at the top level). `Some(None)`: a key of the top level.
    fn find(table: &DeTable<'_>, offset: usize, header: Option<Range<usize>>) -> Option<Option<Range<usize>>> {
        for (key, value) in table.iter() {
            if key.span().start == offset {
                return Some(header);
            }
            let found = match value.get_ref() {
                // A table without a header of its own spans its key alone: one a dotted key
                // makes (`firewall` of `firewall.default = "drop"`) or a longer header
                // (`firewall` of `[customer.firewall.rule]`). It is no header: the one above
                // it stays, and so does its text (its path named `[[customer.firewall]]`,
                // which no line holds).
                DeValue::Table(t) if value.span().start == key.span().start => find(t, offset, header.clone()),
                DeValue::Table(t) => find(t, offset, Some(value.span())),
                DeValue::Array(list) => list.iter().find_map(|e| match e.get_ref() {
                    DeValue::Table(t) => find(t, offset, Some(e.span())),
                    _ => None,
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let doc = DeTable::parse(text).ok()?;
    let header = find(doc.get_ref(), offset, None)??;
    // A header's span runs from its `[` to its `]`: the header as written. An inline
    // table's starts at its `{`.
    let written = text.get(header.clone()).filter(|h| h.starts_with('['))?;
    Some((written, header.start))
}

/// The tables of the schema that a file must have (a section type's field that is neither an
/// `Option` nor `#[serde(default)]`), as their headers are written.
const REQUIRED_TABLES: [&str; 1] = ["[server]"];

/// serde's "missing field `x`" said as what is missing: a whole section when `x` is one of
/// [`REQUIRED_TABLES`] (serde calls a table a field too), else a key of the table it points at.
fn missing_section_or_key(message: &str) -> Option<String> {
    let name = message.strip_prefix("missing field `")?.strip_suffix('`')?;
    Some(match REQUIRED_TABLES.iter().find(|header| header.trim_matches(['[', ']']) == name) {
        Some(header) => format!("missing section `{header}` (every configuration has one: see docs/configuration.md)"),
        None => format!("missing key `{name}`"),
    })
}

/// The largest value of the unsigned integer type serde's message names (`u16`).
fn unsigned_max(type_name: &str) -> Option<u64> {
    match type_name {
        "u8" => Some(u8::MAX.into()),
        "u16" => Some(u16::MAX.into()),
        "u32" => Some(u32::MAX.into()),
        "u64" => Some(u64::MAX),
        _ => None,
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`, ..." (or "unknown variant") with
/// the expected name nearest `x` said first, when it is near enough to be a typo of it (an
/// edit per three characters, two at most): the list alone leaves the reader to find it
/// among twenty.
fn with_nearest_name(message: &str) -> Option<String> {
    let (head, expected) = message.split_once("`, expected ")?;
    let unknown = head.strip_prefix("unknown field `").or_else(|| head.strip_prefix("unknown variant `"))?;
    let len = unknown.chars().count();
    let near = (len / 3).clamp(1, 2);
    // Edits (a character inserted, removed or replaced, or two neighbours swapped: the optimal
    // string alignment distance) are at least the lengths' difference: a name further in length
    // is not aligned at all, so that a key of megabytes costs no alignment per name.
    let (_, nearest) = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| name.chars().count().abs_diff(len) <= near)
        .map(|name| (strsim::osa_distance(unknown, name), name))
        .filter(|&(edits, _)| edits <= near)
        .min_by_key(|&(edits, _)| edits)?;
    Some(format!("{head}`: did you mean `{nearest}`? (expected {expected})"))
}

/// The bare value around byte `offset` of `text`, and where it starts, when it looks like an
/// address written without quotes (an IPv4 or IPv6 address, a prefix, a MAC address): hex
/// digits with `.`, `:` or `/` between them, more than a number's one dot.
fn bare_address(text: &str, offset: usize) -> Option<(usize, &str)> {
    let part = |c: char| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/');
    let start = text.get(..offset)?.char_indices().rev().find(|&(_, c)| !part(c)).map_or(0, |(i, c)| i + c.len_utf8());
    let value = text.get(start..)?;
    let value = value.find(|c: char| !part(c)).map_or(value, |end| &value[..end]);
    let looks_like_one =
        value.chars().any(|c| c.is_ascii_digit()) && (value.matches(['.', ':']).count() >= 2 || value.contains('/'));
    looks_like_one.then_some((start, value))
}

/// The start and depth (dotted parts) of the most deeply dotted table header or key in
/// `text`, counting dots outside quotes up to the `]` or `=` that ends it; `None` if no
/// line has one.
fn deepest_key(text: &str) -> Option<(usize, usize)> {
    let mut deepest: Option<(usize, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        let mut depth = 1;
        let mut quote: Option<char> = None;
        for c in line.trim_start().chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '.') => depth += 1,
                (None, ']' | '=' | '#') => break,
                _ => {}
            }
        }
        if deepest.is_none_or(|(_, d)| depth > d) {
            deepest = Some((start, depth));
        }
    }
    deepest
}
