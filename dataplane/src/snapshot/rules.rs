//! Rule lists as the configuration writes them (`[customer.firewall]`, `[customer.egress]`,
//! DoS and TCP protection rules), compiled into [`RuleSet`]s with every error at its
//! `file:line:col`.

use std::collections::HashMap;
use std::ops::Range;

use classifier::compile::CompileError;
use classifier::{Action, Mode, Rule, RuleSet};
use toml::Spanned;

use super::Builder;
use crate::config::{self, ActionName, ConfigError, ModeName};

impl Builder<'_> {
    /// A firewall-shaped rule list (`[customer.firewall]`, `[customer.egress]`) named `scope`
    /// in errors.
    pub(super) fn firewall(&mut self, fw: Option<&Spanned<config::FirewallSection>>, scope: &str) -> RuleSet {
        let Some(fw) = fw else { return accept_all() };
        let fw = fw.get_ref();
        let default = match *fw.default.get_ref() {
            ActionName::Accept => Action::Accept,
            ActionName::Drop => Action::Drop,
            ActionName::RateLimit => {
                self.err(
                    &fw.default.span(),
                    "the default action is accept or drop (a rate limit needs a rule with a bucket)",
                );
                Action::Accept
            }
        };
        self.rules(&fw.rules, default, scope)
    }

    /// Compiles an ordered rule list (firewall or DoS) with `default` for packets no rule
    /// selects; `scope` names the list in errors.
    pub(crate) fn rules(&mut self, sections: &[Spanned<config::RuleSection>], default: Action, scope: &str) -> RuleSet {
        if !self.bounded(sections, crate::limits::MAX_RULES_PER_LIST, &format!("rules in {scope}"), "one rule list") {
            return accept_all();
        }
        let texts: Vec<RuleText<'_>> = sections
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let r = r.get_ref();
                let name = r.name.as_ref().map_or_else(|| format!("rule-{}", i + 1), |n| n.get_ref().clone());
                RuleText { name: r.name.as_ref(), expr: &r.expr, action: self.action(r, &name), mode: mode(r.mode) }
            })
            .collect();
        self.compile_rules(&texts, default, scope)
    }

    /// Compiles rules given as text (each name checked and unique in `scope`, each
    /// expression parsed, errors at their `file:line:col`).
    pub(crate) fn compile_rules(&mut self, texts: &[RuleText<'_>], default: Action, scope: &str) -> RuleSet {
        let mut rules = Vec::new();
        self.apart_in_case(texts.iter().filter_map(|r| r.name), "rule");
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut spans = Vec::new();
        for (i, r) in texts.iter().enumerate() {
            if let Some(n) = r.name {
                self.name(n, "rule");
            }
            let name = r.name.map_or_else(|| format!("rule-{}", i + 1), |n| n.get_ref().clone());
            let name_span = r.name.map_or_else(|| r.expr.span(), |n| n.span());
            if let Some(first) = names.get(&name) {
                let first = self.src.pos(first.start);
                self.err(&name_span, format!("duplicate rule name `{name}` in {scope} (first at {first})"));
            } else {
                names.insert(name.clone(), name_span);
            }
            let (action, rule_mode) = (r.action, r.mode);
            // Wireshark's empty filter is every packet; in a file it is more often a template
            // that filled in nothing: said, and `frame` says it on purpose.
            if r.expr.get_ref().trim().is_empty() {
                self.warn(
                    &r.expr.span(),
                    format!(
                        "rule `{name}`: the match is empty, so it selects every packet (write `frame` to mean that)"
                    ),
                );
            }
            match classifier::parse_with(r.expr.get_ref(), &mut self.lists) {
                Ok(expr) => {
                    for note in self.lists.take_notes() {
                        self.warn(&r.expr.span(), format!("rule `{name}`: {note}"));
                    }
                    spans.push(r.expr.span());
                    rules.push(Rule { name, expr, action, mode: rule_mode });
                }
                Err(e) => {
                    let _ = self.lists.take_notes(); // of a rule refused anyway
                    let at = self.expr_offset(r.expr, e.span.map_or(0, |s| s.start));
                    let rendered = e.render(r.expr.get_ref()).replace('\n', "\n    ");
                    self.errors.push(ConfigError::new(self.src.pos(at), format!("rule `{name}`: {rendered}")));
                }
            }
        }
        // Past a bound of the configuration's (reported once), nothing more is compiled: the
        // configuration is refused anyway, and compiling on would spend the memory and time
        // the bound is there to protect.
        if self.budget_spent {
            return accept_all();
        }
        // The compiler's index counts the rules that parsed, as `spans` and `rules` do.
        let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
        match RuleSet::compile_within(rules, default, &mut self.budget) {
            Ok(set) => set,
            Err(e) => {
                let span = spans.get(e.index).cloned().unwrap_or(0..0);
                let name = names.get(e.index).map_or("?", String::as_str);
                let message = match e.error {
                    CompileError::BudgetSpent | CompileError::BoxesSpent | CompileError::BytesSpent => {
                        self.budget_spent = true;
                        budget_message(&e.error, name, scope)
                    }
                    _ => format!("rule `{name}` in {scope}: {}", e.error),
                };
                self.err(&span, message);
                accept_all()
            }
        }
    }

    /// A rule's action; `rate-limit` needs a known bucket, the others none.
    fn action(&mut self, r: &config::RuleSection, name: &str) -> Action {
        match (*r.action.get_ref(), &r.bucket) {
            (ActionName::Accept, None) => Action::Accept,
            (ActionName::Drop, None) => Action::Drop,
            (ActionName::RateLimit, Some(b)) => match self.buckets.iter().position(|n| n == b.get_ref()) {
                Some(i) => Action::RateLimit(i as u16),
                None => {
                    self.err(
                        &b.span(),
                        format!("rule `{name}`: unknown bucket `{}` (declare it in [[dos.bucket]])", b.get_ref()),
                    );
                    Action::Drop
                }
            },
            (ActionName::RateLimit, None) => {
                self.err(&r.action.span(), format!("rule `{name}`: a rate-limit rule needs `bucket = \"NAME\"`"));
                Action::Drop
            }
            (_, Some(b)) => {
                self.err(&b.span(), format!("rule `{name}`: only a rate-limit rule takes a bucket"));
                Action::Drop
            }
        }
    }

    /// The file offset of byte `offset` of a rule expression written as a TOML string, in
    /// any of TOML's four quotings (a multi-line string loses the newline right after its
    /// opening quotes, and a basic string's escapes stand for what they are: `\"` for `"`);
    /// the string's own start where the text read is not the value (it cannot be, short of
    /// a parser that disagrees with this one).
    fn expr_offset(&self, expr: &Spanned<String>, offset: usize) -> usize {
        let span = expr.span();
        let raw = self.src.text().get(span.clone()).unwrap_or("");
        let at = ["\"\"\"", "\'\'\'", "\"", "\'"].into_iter().find_map(|quote| {
            let body = raw.strip_prefix(quote)?.strip_suffix(quote)?;
            let trimmed = match quote.len() {
                3 => body.strip_prefix("\r\n").or_else(|| body.strip_prefix('\n')).unwrap_or(body),
                _ => body,
            };
            let start = raw.len() - quote.len() - trimmed.len();
            if quote.starts_with('\'') {
                return (trimmed == expr.get_ref() && offset <= trimmed.len()).then_some(start + offset);
            }
            basic_string_offset(trimmed, expr.get_ref(), offset).map(|at| start + at)
        });
        at.map_or(span.start, |at| span.start + at)
    }
}

/// The offset in `body`, a TOML basic string's text as written (quotes and a multi-line
/// string's first newline left out), of byte `offset` of `value`, the string it stands for:
/// each escape is the character it stands for, and a line-ending backslash with the
/// whitespace and newlines after it nothing. `None` where `body` does not read as `value`.
fn basic_string_offset(body: &str, value: &str, offset: usize) -> Option<usize> {
    let (mut read, mut found) = (String::with_capacity(value.len()), None);
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            if read.len() == offset && found.is_none() {
                found = Some(at);
            }
            read.push(c);
            continue;
        }
        let (_, e) = chars.next()?;
        // A line-ending backslash stands for nothing: the byte at `offset` is after it.
        if !matches!(e, ' ' | '\t' | '\r' | '\n') && read.len() == offset && found.is_none() {
            found = Some(at);
        }
        match e {
            'b' => read.push('\u{8}'),
            't' => read.push('\t'),
            'n' => read.push('\n'),
            'f' => read.push('\u{c}'),
            'r' => read.push('\r'),
            'e' => read.push('\u{1b}'),
            '"' | '\\' => read.push(e),
            'u' | 'U' | 'x' => {
                let digits = match e {
                    'u' => 4,
                    'U' => 8,
                    _ => 2,
                };
                let hex: String = (0..digits).filter_map(|_| chars.next().map(|(_, d)| d)).collect();
                read.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            // A line-ending backslash: the blanks and newlines after it are left out (TOML's
            // blanks only: a no-break space is the value's, as the TOML reader keeps it).
            ' ' | '\t' | '\r' | '\n' => {
                while chars.next_if(|&(_, w)| matches!(w, ' ' | '\t' | '\r' | '\n')).is_some() {}
            }
            _ => return None,
        }
    }
    if read.len() == offset && found.is_none() {
        found = Some(body.len());
    }
    (read == value).then_some(found?)
}
/// One rule as written, whatever list it is in.
pub(crate) struct RuleText<'a> {
    pub name: Option<&'a Spanned<String>>,
    pub expr: &'a Spanned<String>,
    pub action: Action,
    pub mode: Mode,
}

/// Why a list was refused for passing a bound of the whole configuration's
/// ([`crate::limits::MAX_COMPILE_STEPS_PER_CONFIG`], [`crate::limits::MAX_BOXES_PER_CONFIG`],
/// [`crate::limits::MAX_TABLE_BYTES_PER_CONFIG`]); a table's bytes are its list's, not a rule's.
fn budget_message(error: &CompileError, rule: &str, scope: &str) -> String {
    use crate::limits::{MAX_BOXES_PER_CONFIG, MAX_TABLE_BYTES_PER_CONFIG};
    match error {
        CompileError::BoxesSpent => format!(
            "rule `{rule}` in {scope} brings the rules past the {MAX_BOXES_PER_CONFIG} boxes one configuration may hold"
        ),
        CompileError::BytesSpent => format!(
            "{scope}'s compiled rules bring the configuration's lookup tables past the {} MiB it may hold; \
             simplify the rules' sets (docs/configuration.md, \"Limits\")",
            MAX_TABLE_BYTES_PER_CONFIG >> 20
        ),
        other => format!("rule `{rule}` in {scope}: {other}"),
    }
}

pub(super) fn accept_all() -> RuleSet {
    RuleSet::compile(Vec::new(), Action::Accept).expect("an empty rule set always compiles")
}

pub(super) fn mode(m: ModeName) -> Mode {
    match m {
        ModeName::Enforce => Mode::Enforce,
        ModeName::Monitor => Mode::Monitor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceMap;

    /// The lists of one configuration share one bound on boxes: the list that crosses it is
    /// refused at the rule that crosses it, before its table is built, and a list below it
    /// is not; past it, later lists are not compiled (nor reported again).
    #[test]
    fn the_rule_that_crosses_the_configuration_bound_on_boxes_is_refused() {
        let text = "tcp.dstport == 25 tcp.dstport in {22, 23, 80}";
        let src = SourceMap::new("t.toml", text);
        let one = Spanned::new(0..17, text[..17].to_string());
        let wide = Spanned::new(18..text.len(), text[18..].to_string());
        let named = |expr| RuleText { name: None, expr, action: Action::Drop, mode: Mode::Enforce };
        let max = crate::limits::MAX_BOXES_PER_CONFIG;

        let mut b = Builder::new(&src);
        b.compile_rules(&[named(&wide)], Action::Accept, "list zero");
        let k = max - b.budget.boxes; // what the wide rule is
        assert!(k > 1);
        b.budget.boxes = 2 * k; // list one fits, exactly
        b.compile_rules(&[named(&wide), named(&wide)], Action::Accept, "list one");
        assert!(b.errors.is_empty(), "{:?}", b.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        assert_eq!(b.budget.boxes, 0);
        b.budget.boxes = k; // the one-box rule fits, the wide rule after it does not
        b.compile_rules(&[named(&one), named(&wide)], Action::Accept, "list two");
        let errors: Vec<String> = b.errors.iter().map(|e| e.to_string()).collect();
        let expected = format!(
            "t.toml:1:19: rule `rule-2` in list two brings the rules past the {max} boxes one configuration may hold"
        );
        assert_eq!(errors, [expected]);
        assert_eq!(b.budget.boxes, k, "a refused list spends nothing");
        b.compile_rules(&[named(&one)], Action::Accept, "list three");
        assert_eq!(b.errors.len(), 1);
    }

    /// The lists share one bound on the bytes of their lookup tables: a list whose table
    /// passes what is left is refused at its first rule, and spends nothing.
    #[test]
    fn a_list_whose_tables_pass_the_configuration_bound_on_bytes_is_refused() {
        let text = "ip.src in {10.0.0.0/24, 10.0.2.0/24, 10.0.4.0/24} and tcp.port in {22, 80, 443}";
        let src = SourceMap::new("t.toml", text);
        let expr = Spanned::new(0..text.len(), text.to_string());
        let rule = [RuleText { name: None, expr: &expr, action: Action::Drop, mode: Mode::Enforce }];
        let max = crate::limits::MAX_TABLE_BYTES_PER_CONFIG;

        let mut b = Builder::new(&src);
        b.compile_rules(&rule, Action::Accept, "list zero");
        let bytes = max - b.budget.bytes;
        assert!(bytes > 0);
        b.budget.bytes = bytes - 1;
        b.compile_rules(&rule, Action::Accept, "list one");
        let errors: Vec<String> = b.errors.iter().map(|e| e.to_string()).collect();
        let expected = format!(
            "t.toml:1:1: list one's compiled rules bring the configuration's lookup tables past the {} MiB it may hold; \
             simplify the rules' sets (docs/configuration.md, \"Limits\")",
            max >> 20
        );
        assert_eq!(errors, [expected]);
        assert_eq!(b.budget.bytes, bytes - 1);
    }
}
