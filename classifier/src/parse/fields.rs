//! Tests of header fields: present (`tcp.port`), compared (`tcp.port == 80`), in a set
//! (`tcp.port in {80, 443}`) or a named list (`ip.src in $bad_actors`), negated with `not in`,
//! and under `all` or `any`.

use super::values::{literal, relop};
use super::{ParseError, Parser, Quantifier, Tok, end_of_input};
use crate::ast::{Expr, Pred, Span, Test};
use crate::bytes::{self, Layer};
use crate::field::{self, FieldDef, Ty};
use crate::list::{MEMBER_FIELDS, MEMBER_SLOTS};
use crate::set::IntervalSet;

/// Members of a set `all` may expand into (tshark tests `all f in {a, b}` member by member,
/// as `all f == a or all f == b`): each becomes a test of its own.
const MAX_ALL_IN_MEMBERS: usize = 64;

impl<'a> Parser<'a, '_> {
    pub(super) fn test(&mut self, name: &str, name_span: Span) -> Result<Expr, ParseError> {
        // tshark 4.0's field marker: a leading dot says the word is a field (`.tcp.port`).
        let name = match name.strip_prefix('.') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => rest,
            _ => name,
        };
        let bytes_next = matches!(self.peek(), Some(Tok::LBracket | Tok::Word("contains" | "matches")));
        if bytes_next && let Some(layers) = bytes::address_field(name) {
            // tshark 4.0 slices an IP address but searches only a MAC address whole.
            let ip = !matches!(layers[0], Layer::EthSrc | Layer::EthDst);
            if let Some((Tok::Word(op @ ("contains" | "matches")), span)) = self.toks.get(self.pos).copied()
                && ip
            {
                let ty = if name.starts_with("ipv6") { "IPv6 address" } else { "IPv4 address" };
                return Err(ParseError::at(span, format!("{name} (type={ty}) cannot participate in {op} comparison.")));
            }
            let test = self.byte_test(layers[0], name_span)?;
            return Ok(self.each_occurrence(test, layers));
        }
        let field = field::lookup(name);
        if let Some(layer) = Layer::lookup(name) {
            // A payload is bytes only; a protocol is bytes when sliced, searched, compared or
            // tested against a set of byte strings.
            let in_set = matches!(self.peek(), Some(Tok::Word("in")))
                || (self.peek() == Some(Tok::Not) && matches!(self.toks.get(self.pos + 1), Some((Tok::Word("in"), _))));
            let compared = matches!(self.peek(), Some(Tok::Op(_))) || in_set;
            if field.is_none() || bytes_next || compared {
                return self.byte_test(layer, name_span);
            }
        }
        let field = field
            .ok_or_else(|| ParseError::at(name_span, format!("{name} is neither a field nor a protocol name.")))?;
        if bytes_next {
            return Err(ParseError::at(
                name_span,
                format!(
                    "{name} is not a byte field: slices, contains and matches apply to {}.",
                    bytes::layer_names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let (pred, end) = match self.peek() {
            Some(Tok::BitAnd) => {
                self.pos += 1;
                self.no_protocol(field, name_span)?;
                self.masked(field, name_span)?
            }
            Some(Tok::Op(op)) => {
                self.pos += 1;
                self.no_protocol(field, name_span)?;
                let (value, span) = self.value()?;
                // A network compared in order stands for its bounds (tshark compares the
                // masked value: `> 10.0.0.0/8` is above 10.255.255.255).
                let values = literal(field, value, span)?;
                (self.quantified(relop(field, op, values, span)?), span.end)
            }
            // tshark 4.0 takes no list after a quantifier.
            Some(Tok::Word("in") | Tok::Not) if self.quantifier.is_some() && self.list_after_in().is_some() => {
                let span = self.list_after_in().unwrap_or(name_span);
                return Err(self.unexpected(span));
            }
            Some(Tok::Word("in")) if matches!(self.toks.get(self.pos + 1), Some((Tok::List(_), _))) => {
                self.pos += 1;
                return self.list_test(field, name_span);
            }
            Some(Tok::Not)
                if matches!(self.toks.get(self.pos + 1), Some((Tok::Word("in"), _)))
                    && matches!(self.toks.get(self.pos + 2), Some((Tok::List(_), _))) =>
            {
                self.pos += 2;
                return Ok(Expr::Not(Box::new(self.list_test(field, name_span)?)));
            }
            Some(Tok::Word("in")) if self.quantifier == Some(Quantifier::All) => {
                self.pos += 1;
                self.no_protocol(field, name_span)?;
                return self.all_in(field, name_span);
            }
            Some(Tok::Word("in")) => {
                self.pos += 1;
                self.no_protocol(field, name_span)?;
                let (set, end) = self.set(field)?;
                (Pred::Any(set), end)
            }
            Some(Tok::Not) if matches!(self.toks.get(self.pos + 1), Some((Tok::Word("in"), _))) => {
                self.pos += 2;
                self.no_protocol(field, name_span)?;
                let (set, end) = self.set(field)?;
                let span = Span { start: name_span.start, end };
                let test = Test { field, pred: Pred::Any(set), span };
                return Ok(Expr::Not(Box::new(Expr::Test(test))));
            }
            _ if self.quantifier.is_some() => return Err(self.comparison_expected()),
            _ => (Pred::Present, name_span.end),
        };
        Ok(Expr::Test(Test { field, pred, span: Span { start: name_span.start, end } }))
    }

    /// Where the list is, when one follows (`in $name`, `not in $name`).
    fn list_after_in(&self) -> Option<Span> {
        let (in_at, list_at) = match self.peek() {
            Some(Tok::Not) => (self.pos + 1, self.pos + 2),
            _ => (self.pos, self.pos + 1),
        };
        match (self.toks.get(in_at), self.toks.get(list_at)) {
            (Some((Tok::Word("in"), _)), Some(&(Tok::List(_), span))) => Some(span),
            _ => None,
        }
    }

    /// `all field in {a, b..c}`, `in` read: as tshark 4.0 reads it, member by member, `all
    /// field == a or all field in {b..c}` (every occurrence in one member).
    fn all_in(&mut self, field: &'static FieldDef, name_span: Span) -> Result<Expr, ParseError> {
        let (_, members, end) = self.set_members(field)?;
        let span = Span { start: name_span.start, end };
        if members.len() > MAX_ALL_IN_MEMBERS {
            return Err(ParseError::at(
                span,
                format!(
                    "`all ... in` is tested member by member, as tshark tests it: at most {MAX_ALL_IN_MEMBERS} \
                     members are taken; write `not ... not in` for a large set"
                ),
            ));
        }
        let tests = members.into_iter().map(|m| Expr::Test(Test { field, pred: Pred::All(m), span }));
        Ok(Expr::Or(tests.collect()))
    }

    /// `field in $name`: some occurrence of the field is in the list, each occurrence's
    /// membership being a slot the list registry fills per packet.
    fn list_test(&mut self, field: &'static FieldDef, name_span: Span) -> Result<Expr, ParseError> {
        self.no_protocol(field, name_span)?;
        let (Tok::List(name), list_span) = self.next()? else { return Err(end_of_input()) };
        let span = Span { start: name_span.start, end: list_span.end };
        let mut tests = Vec::with_capacity(field.occurrences.len());
        for occurrence in 0..field.occurrences.len() {
            let slot = self.lists.slot(field, occurrence, name).map_err(|e| ParseError::at(list_span, e))?;
            let member = MEMBER_SLOTS.iter().position(|&s| s == slot).map(|i| &MEMBER_FIELDS[i]);
            let Some(member) = member else {
                return Err(ParseError::at(list_span, format!("${name}: no membership slot")));
            };
            tests.push(Expr::Test(Test { field: member, pred: Pred::Any(IntervalSet::single(1)), span }));
        }
        Ok(if tests.len() == 1 { tests.remove(0) } else { Expr::Or(tests) })
    }

    fn no_protocol(&self, field: &FieldDef, span: Span) -> Result<(), ParseError> {
        if field.ty == Ty::Protocol {
            return Err(ParseError::at(
                span,
                format!(
                    "{} is a protocol: it can only be tested for presence (write `{}` alone).",
                    field.name, field.name
                ),
            ));
        }
        Ok(())
    }

    /// `{ member, member, ... }` after `in`; returns the union and the end of the `}`.
    fn set(&mut self, field: &FieldDef) -> Result<(IntervalSet, usize), ParseError> {
        self.set_members(field).map(|(set, _, end)| (set, end))
    }

    /// [`Parser::set`], and each member's values as written (a value, a network or a range).
    fn set_members(&mut self, field: &FieldDef) -> Result<(IntervalSet, Vec<IntervalSet>, usize), ParseError> {
        let mut written = Vec::new();
        match self.next()? {
            (Tok::LBrace, _) => {}
            (_, span) => return Err(self.unexpected(span)),
        }
        // Members are gathered and merged once at the end: merging each into the set so far
        // would make a large set quadratic.
        let mut members: Vec<(u128, u128)> = Vec::new();
        loop {
            let (value, span) = self.value()?;
            let lo = literal(field, value, span)?;
            let member = if self.peek() == Some(Tok::DotDot) {
                self.pos += 1;
                let (value, hi_span) = self.value()?;
                let hi = literal(field, value, hi_span)?;
                // Wireshark: `a..b` holds every value from the lowest of `a` to the highest of
                // `b`; a reversed range holds nothing (tshark accepts it and matches nothing).
                match (lo.ranges().first(), hi.ranges().last()) {
                    (Some(&(lo, _)), Some(&(_, hi))) => IntervalSet::range(lo, hi),
                    _ => IntervalSet::empty(),
                }
            } else {
                lo
            };
            members.extend_from_slice(member.ranges());
            written.push(member);
            match self.next()? {
                (Tok::Comma, _) => continue,
                (Tok::RBrace, span) => return Ok((IntervalSet::from_ranges(members), written, span.end)),
                (Tok::Word(_) | Tok::Char(_), span) => {
                    return Err(ParseError::at(
                        span,
                        format!(
                            "\"{}\" was unexpected in this context. Set members are separated by commas, as in Wireshark 4.0: {{80, 443}}.",
                            &self.text[span.start..span.end]
                        ),
                    ));
                }
                (_, span) => return Err(self.unexpected(span)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ast::{Expr, Pred};
    use crate::parse::parse;

    #[test]
    fn large_sets_hold_exactly_their_members() {
        let members: Vec<u32> = (0..50_000u32).map(|i| i.wrapping_mul(2_654_435_761) >> 16).collect();
        let text = format!("tcp.port in {{{}}}", members.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
        let Expr::Test(t) = parse(&text).unwrap() else { panic!() };
        let Pred::Any(set) = t.pred else { panic!() };
        let expected: std::collections::BTreeSet<u32> = members.iter().copied().collect();
        for v in 0..=65535u32 {
            assert_eq!(set.contains(v.into()), expected.contains(&v), "{v}");
        }
    }
}
