//! `[[list]]` sections into the classifier's list registry: members inline and from files,
//! each error at the `file:line:col` of the member (a list file's own line).

use std::collections::BTreeMap;

use classifier::{List, Registry};
use toml::Spanned;

use super::Builder;
use crate::config::{ConfigError, ListSection, SourcePos};
use crate::limits::{
    MAX_LIST_BYTES, MAX_LIST_BYTES_PER_CONFIG, MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_PER_CONFIG, MAX_LISTS, read_text,
};

impl Builder<'_> {
    /// Reads every list; one with an error stands as an empty list (the configuration is
    /// refused by that error; rules naming the list add none of their own).
    pub(super) fn lists(&mut self, sections: &[Spanned<ListSection>]) -> Registry {
        self.bounded(sections, MAX_LISTS, "lists", "one configuration");
        let mut lists = BTreeMap::new();
        let mut read = ListsRead::default();
        let mut seen = std::collections::HashMap::new();
        for section in sections.iter().take(MAX_LISTS) {
            let l = section.get_ref();
            self.name(&l.name, "list");
            self.unique(&mut seen, &l.name, "list");
            if lists.contains_key(l.name.get_ref()) {
                continue;
            }
            // A list that did not read (its error said) stands as an empty one, so that the
            // rules naming it do not each add "no list of that name".
            let list = self.list(l, &mut read).unwrap_or_default();
            lists.insert(l.name.get_ref().clone(), list);
            // Past the bound (said once, at the list that crossed it) nothing more is read:
            // the configuration is refused, and reading on would spend what the bound keeps.
            if read.members > MAX_LIST_MEMBERS_PER_CONFIG || read.bytes > MAX_LIST_BYTES_PER_CONFIG {
                self.err(
                    &l.name.span(),
                    format!(
                        "the lists up to `{}` hold more than {MAX_LIST_MEMBERS_PER_CONFIG} members or {} MiB of \
                         files in all; no more lists are read",
                        l.name.get_ref(),
                        MAX_LIST_BYTES_PER_CONFIG >> 20
                    ),
                );
                break;
            }
        }
        Registry::new(lists)
    }

    fn list(&mut self, l: &ListSection, read: &mut ListsRead) -> Option<List> {
        // Where each member was written: the configuration (a span) or a line of the list file.
        let mut members: Vec<(&str, Where)> =
            l.items.iter().map(|i| (i.get_ref().as_str(), Where::Item(i.span()))).collect();
        let (text, shown);
        if let Some(file) = &l.file {
            let path = self.file_path(file, "list file")?;
            shown = path.display().to_string();
            text = match read_text(&path, MAX_LIST_BYTES, "a list") {
                Ok(t) => t,
                // Where in the list file: at its own line and column.
                Err(crate::limits::ReadError::NotUtf8 { line, col }) => {
                    let message = format!("list `{}`: not UTF-8 text: an invalid byte", l.name.get_ref());
                    self.errors.push(ConfigError::new(SourcePos { file: shown.clone(), line, col }, message));
                    return None;
                }
                Err(e) => {
                    self.err(&file.span(), format!("list `{}`: cannot read {shown}: {e}", l.name.get_ref()));
                    return None;
                }
            };
            read.bytes += text.len() as u64;
            // Counted while read: 64 MiB of one-character lines would be 33 million members.
            for (n, line) in text.lines().enumerate() {
                let written = line.split('#').next().unwrap_or("");
                let member = written.trim();
                if !member.is_empty() {
                    // The column of its first character, counted in characters as a config's are.
                    let col = written[..written.len() - written.trim_start().len()].chars().count() + 1;
                    members.push((member, Where::Line(n + 1, col)));
                    if members.len() > MAX_LIST_MEMBERS {
                        break;
                    }
                }
            }
        } else {
            shown = String::new();
        }
        if members.len() > MAX_LIST_MEMBERS {
            self.err(&l.name.span(), format!("list `{}` has more than {MAX_LIST_MEMBERS} members", l.name.get_ref()));
            return None;
        }
        read.members += members.len();
        if let Ok(list) = List::parse(members.iter().map(|m| m.0)) {
            return Some(list);
        }
        // Every bad member is said, not only the first: a feed with a few bad lines is
        // mended in one go, not one reload at a time. As many as a report shows; past that,
        // how many more, at the list's name.
        let most = crate::limits::MAX_REPORTED_ERRORS;
        let (refused, count) = List::refusals(members.iter().map(|m| m.0), most);
        for (i, e) in refused {
            let message = format!("list `{}`: {e}", l.name.get_ref());
            match &members[i].1 {
                Where::Item(span) => self.err(span, message),
                Where::Line(line, col) => self
                    .errors
                    .push(ConfigError::new(SourcePos { file: shown.clone(), line: *line, col: *col }, message)),
            }
        }
        if count > most {
            let more = count - most;
            let more = crate::report::counted_as(more, "more member is refused", "more members are refused");
            self.err(&l.name.span(), format!("list `{}`: {more}", l.name.get_ref()));
        }
        None
    }
}

enum Where {
    Item(std::ops::Range<usize>),
    /// Line and column (1-based) in the list file.
    Line(usize, usize),
}

/// What the lists read so far hold, against the configuration's bounds.
#[derive(Default)]
struct ListsRead {
    members: usize,
    bytes: u64,
}
