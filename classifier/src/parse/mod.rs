//! Lexer and recursive-descent parser for the rule language (Wireshark 4.0 display filters).
//!
//! Grammar, loosest binding first (`and` binds tighter than `or`, `not` tightest):
//!
//! ```text
//! expr    := and ( ("or" | "||") and )*
//! and     := unary ( ("and" | "&&") unary )*
//! unary   := ("not" | "!") unary | "(" expr ")" | test
//! test    := FIELD [ relop VALUE | ["not"] "in" "{" member ("," member)* "}" ]
//! member  := VALUE [ ".." VALUE ]
//! relop   := == eq any_eq | != ne all_ne | === all_eq | !== ~= any_ne | < lt | <= le | > gt | >= ge
//! VALUE   := number (decimal, 0x hex, 0b binary, leading-zero octal) | 'c' (a character
//!            constant: one byte) | "string" | address | bytes
//! ```
//!
//! Errors carry the span of the offending text and read like tshark's.
//!
//! Work is bounded by the text: parentheses and `not`s nest at most [`MAX_NESTING`] deep
//! (deeper input is refused before it can exhaust the stack of the parser, the compiler or
//! the evaluator, all of which recurse on nesting), and a set's members are merged once,
//! sorted, so that `{…}` with 100,000 members costs O(n log n), not O(n²).
//!
//! The parts: `lex` (tokens), this module (the grammar of `and`, `or`, `not` and parentheses,
//! and the parser's state), `fields` (tests of header fields), `byte_fields` (tests of bytes
//! and `len()`), `masks` (`field & mask`), `values` (the values written after a field) and
//! `error` (messages and where they point).

use crate::ast::{Expr, Pred, Span};
use crate::bytes::{ByteOp, ByteTest, Layer};
use crate::list::{Lists, NoLists};

mod byte_fields;
mod error;
mod fields;
mod lex;
mod masks;
mod values;

pub use error::ParseError;
pub use masks::{MAX_MASKED_RANGES, MAX_MASKED_RANGES_PER_CONFIG, MAX_MASKED_RANGES_PER_RULE};
pub(crate) use values::parse_uint;

use error::end_of_input;
use lex::{Tok, lex};
use values::Value;

/// How deep parentheses and `not`s may nest. Deeper expressions are refused: a rule that
/// needs more is better written as several rules, and every stage that walks an expression
/// recurses once per level.
pub const MAX_NESTING: usize = 100;

/// Parses a rule expression. The empty expression is true, as in Wireshark.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    parse_with(text, &mut NoLists)
}

/// [`parse`], with the named lists rules may test membership of (`ip.src in $name`).
pub fn parse_with(text: &str, lists: &mut dyn Lists) -> Result<Expr, ParseError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Ok(Expr::True);
    }
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
        lists,
        masked_ranges: 0,
        plussed: false,
        quantifier: None,
        whole_mac: false,
        every_occurrence: false,
    };
    let expr = p.or()?;
    match p.toks.get(p.pos) {
        None => Ok(expr),
        Some(&(_, span)) => Err(p.unexpected(span)),
    }
}

struct Parser<'a, 'l> {
    text: &'a str,
    toks: Vec<(Tok<'a>, Span)>,
    pos: usize,
    /// Parentheses and `not`s open around the current position.
    depth: usize,
    lists: &'l mut dyn Lists,
    /// Ranges the rule's masks selected so far ([`MAX_MASKED_RANGES_PER_RULE`]).
    masked_ranges: usize,
    /// The test being read follows a unary plus: an arithmetic term, which `contains` and
    /// `matches` do not take (tshark refuses `+frame[0:2] contains 02`).
    plussed: bool,
    /// The test being read follows `all` or `any`.
    quantifier: Option<Quantifier>,
    /// The byte test being read is of a whole MAC address, which takes no string.
    whole_mac: bool,
    /// The last byte test's operator wants every occurrence to pass (`!=`, `===`).
    every_occurrence: bool,
}

/// tshark 4.0's quantifiers: whether every occurrence of a field, or some, must satisfy a
/// comparison, whatever its operator's own (`all tcp.port == 80` is `tcp.port === 80`, `any
/// tcp.port != 80` is `tcp.port !== 80`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantifier {
    All,
    Any,
}

impl<'a> Parser<'a, '_> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).map(|t| t.0)
    }

    fn next(&mut self) -> Result<(Tok<'a>, Span), ParseError> {
        let tok = self.toks.get(self.pos).copied().ok_or_else(end_of_input)?;
        self.pos += 1;
        Ok(tok)
    }

    fn unexpected(&self, span: Span) -> ParseError {
        ParseError::at(span, format!("\"{}\" was unexpected in this context.", &self.text[span.start..span.end]))
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(Tok::Or) {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::Or(terms) })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.unary()?];
        while self.peek() == Some(Tok::And) {
            self.pos += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::And(terms) })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let (tok, span) = self.next()?;
        match tok {
            Tok::Not => {
                self.enter(span)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.enter(span)?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.next()? {
                    (Tok::RParen, _) => Ok(inner),
                    (_, span) => Err(self.unexpected(span)),
                }
            }
            Tok::Word("len") if self.peek() == Some(Tok::LParen) => self.len_test(span),
            Tok::Word(q @ ("all" | "any")) if matches!(self.peek(), Some(Tok::Word(_))) => {
                let (Tok::Word(name), name_span) = self.next()? else { return Err(self.unexpected(span)) };
                self.quantifier = Some(if q == "all" { Quantifier::All } else { Quantifier::Any });
                let test = match name {
                    "len" if self.peek() == Some(Tok::LParen) => self.len_test(name_span),
                    _ => self.test(name, name_span),
                };
                self.quantifier = None;
                test
            }
            Tok::Word(name) => self.test(name, span),
            // tshark's unary plus before a field changes nothing, but it makes an arithmetic
            // term, which `in`, `contains` and `matches` do not take.
            Tok::Plus => match self.next()? {
                (Tok::Word("len"), span) if self.peek() == Some(Tok::LParen) => self.len_test(span),
                (Tok::Word(name), span) => match self.toks.get(self.pos).copied() {
                    Some((Tok::Word("in" | "contains" | "matches") | Tok::Not, after)) => Err(self.unexpected(after)),
                    _ => {
                        self.plussed = true;
                        let test = self.test(name, span);
                        self.plussed = false;
                        test
                    }
                },
                (_, span) => Err(self.unexpected(span)),
            },
            _ => Err(self.unexpected(span)),
        }
    }

    /// One level deeper, at the `(` or `not` at `span`; refused past [`MAX_NESTING`].
    fn enter(&mut self, span: Span) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError::at(
                span,
                format!("Parentheses and \"not\" nest more than {MAX_NESTING} deep here; split the rule."),
            ));
        }
        Ok(())
    }

    /// What tshark says of a quantified test with nothing to compare (`all tcp.port`).
    fn comparison_expected(&self) -> ParseError {
        match self.toks.get(self.pos) {
            Some(&(_, span)) => self.unexpected(span),
            None => end_of_input(),
        }
    }

    /// A byte test of an address field's first occurrence (`test`), made of every one of
    /// `layers`: some occurrence must pass it, or every one for `!=` and `===` or after
    /// `all` (`any` makes it some for every operator). As in tshark, "every" counts the
    /// occurrences the packet has, at least one: an address the capture cut off (`ip.dst`
    /// behind a snap length between the addresses) is no occurrence, not one that fails.
    ///
    /// `layers` lie in the frame in their order, and a capture cuts a frame's end, so a later
    /// occurrence is never there without the first; and a byte test holds of no field that
    /// is absent. "At least one there, and each one there passes" is then "the first passes,
    /// and each later one is absent or passes": two clauses for two occurrences. Written with
    /// a presence test of each and "some is present" besides, it was eight, each a residual
    /// check the packets in the rule's leaf tried in turn, and three such tests in one rule
    /// (512) left it interpreted.
    fn each_occurrence(&self, test: Expr, layers: &[Layer]) -> Expr {
        let Expr::Bytes(first) = &test else { return test };
        let [head, later @ ..] = layers else { return test };
        if later.is_empty() {
            return test;
        }
        let every = match self.quantifier {
            Some(q) => q == Quantifier::All,
            None => self.every_occurrence,
        };
        let on = |layer: Layer| Expr::Bytes(ByteTest { layer, ..first.clone() });
        if !every {
            return Expr::Or(layers.iter().map(|&layer| on(layer)).collect());
        }
        let absent = |layer: Layer| {
            Expr::Not(Box::new(Expr::Bytes(ByteTest { layer, slice: None, op: ByteOp::Present, span: first.span })))
        };
        // The test before the absence: a whole packet's answer is the first clause's.
        let mut terms = vec![on(*head)];
        terms.extend(later.iter().map(|&layer| Expr::Or(vec![on(layer), absent(layer)])));
        Expr::And(terms)
    }

    /// `pred` under the quantifier being read, if any: every occurrence, or some, in the
    /// values that satisfy the comparison.
    fn quantified(&self, pred: Pred) -> Pred {
        match (self.quantifier, pred) {
            (Some(Quantifier::All), Pred::Any(set) | Pred::All(set)) => Pred::All(set),
            (Some(Quantifier::Any), Pred::Any(set) | Pred::All(set)) => Pred::Any(set),
            (_, pred) => pred,
        }
    }

    /// A value compared with a field: a word, a quoted string (a value's name) or a
    /// character constant, each after an optional plus sign.
    fn value(&mut self) -> Result<(Value<'a>, Span), ParseError> {
        self.plus();
        match self.next()? {
            (Tok::Word(w), span) => Ok((Value::Word(w), span)),
            (Tok::Str(text, _), span) => Ok((Value::Str(text), span)),
            (Tok::Char(c), span) => Ok((Value::Char(c, &self.text[span.start..span.end]), span)),
            (_, span) => Err(self.unexpected(span)),
        }
    }

    /// Steps over one unary plus, which tshark 4.0 takes before a value and which changes
    /// nothing (a second one is unexpected, as there).
    fn plus(&mut self) {
        if self.peek() == Some(Tok::Plus) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> Result<(&'a str, Span), ParseError> {
        match self.next()? {
            (Tok::Word(w), span) => Ok((w, span)),
            (_, span) => Err(self.unexpected(span)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::IntervalSet;

    pub(super) fn err(text: &str) -> String {
        parse(text).unwrap_err().render(text)
    }

    #[test]
    fn seed_rule_parses_to_two_tests() {
        let expr = parse("ip.dst == 203.0.113.100 and tcp.dstport in {20..21}").unwrap();
        let Expr::And(terms) = expr else { panic!("expected and") };
        let Expr::Test(port) = &terms[1] else { panic!("expected test") };
        assert_eq!(port.field.name, "tcp.dstport");
        assert_eq!(port.pred, Pred::Any(IntervalSet::range(20, 21)));
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tightest() {
        let expr = parse("tcp or not udp and ip").unwrap();
        let Expr::Or(terms) = expr else { panic!("expected or at the top") };
        let Expr::And(inner) = &terms[1] else { panic!("expected and under or") };
        assert!(matches!(inner[0], Expr::Not(_)));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}tcp{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}tcp{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.span, Some(Span { start: MAX_NESTING, end: MAX_NESTING + 1 }));
        assert!(parse(&format!("{}tcp", "!".repeat(MAX_NESTING))).is_ok());
        assert!(parse(&format!("{}tcp", "not ".repeat(40_000))).is_err());
        // Parentheses and `not` count together.
        let mixed = format!("{}tcp{}", "!(".repeat(MAX_NESTING / 2 + 1), ")".repeat(MAX_NESTING / 2 + 1));
        assert!(parse(&mixed).is_err());
    }
}
