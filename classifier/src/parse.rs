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

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ast::{Expr, Pred, Span, Test};
use crate::bytes::{self, ByteOp, ByteTest, CmpOp, Layer, Slice};
use crate::field::{self, Dim, FieldDef, Slot, Ty};
use crate::list::{Lists, MEMBER_FIELDS, MEMBER_SLOTS, NoLists};
use crate::names;
use crate::set::IntervalSet;

/// How deep parentheses and `not`s may nest. Deeper expressions are refused: a rule that
/// needs more is better written as several rules, and every stage that walks an expression
/// recurses once per level.
pub const MAX_NESTING: usize = 100;

/// Why an expression was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong, in tshark's words where tshark has words for it.
    pub message: String,
    /// The offending text; `None` when the expression ended too early.
    pub span: Option<Span>,
}

impl ParseError {
    fn at(span: Span, message: String) -> ParseError {
        ParseError { message, span: Some(span) }
    }

    /// The message, then the expression with a caret line under the fault, as tshark prints it:
    ///
    /// ```text
    /// "8080" was unexpected in this context.
    ///     tcp.port in {80 8080}
    ///                     ^~~~
    /// ```
    ///
    /// An expression of several lines, or longer than [`SHOWN_CHARS`], is shown as the part
    /// of the fault's line around it, cut ends marked `…`: whole, the caret of a fault far
    /// into it fell past what a message shows of a line.
    pub fn render(&self, expr: &str) -> String {
        let Some(span) = self.span else { return self.message.clone() };
        let (line, at, width) = Self::around(expr, span).unwrap_or_else(|| {
            let at = expr.get(..span.start).map_or(0, |s| s.chars().count());
            (expr.to_string(), at, expr.get(span.start..span.end).map_or(1, |s| s.chars().count()))
        });
        format!("{}\n    {}\n    {}^{}", self.message, line, " ".repeat(at), "~".repeat(width.max(1) - 1))
    }

    /// The shown part of a long or multi-line `expr` around `span`, the column of the
    /// fault's first character in it and the fault's width; `None` to show `expr` whole.
    fn around(expr: &str, span: Span) -> Option<(String, usize, usize)> {
        if !expr.contains('\n') && expr.chars().count() <= SHOWN_CHARS {
            return None;
        }
        let start = span.start.min(expr.len());
        let line_start = expr.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
        let line_end = expr.get(start..)?.find('\n').map_or(expr.len(), |i| start + i);
        let end = span.end.clamp(start, line_end);
        let (before, fault, after) = (expr.get(line_start..start)?, expr.get(start..end)?, expr.get(end..line_end)?);
        let half = SHOWN_CHARS / 2;
        let kept_before: String = {
            let n = before.chars().count();
            let tail: String = before.chars().skip(n.saturating_sub(half)).collect();
            if n > half { format!("…{tail}") } else { tail }
        };
        let kept_after: String = {
            let head: String = after.chars().take(half).collect();
            if after.chars().count() > half { format!("{head}…") } else { head }
        };
        let at = kept_before.chars().count();
        Some((format!("{kept_before}{fault}{kept_after}"), at, fault.chars().count()))
    }
}

/// The most of an expression's line an error shows (tshark's expressions are typed at a
/// prompt; a configuration's may be a screenful).
const SHOWN_CHARS: usize = 120;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    /// `$name`: a named list.
    List(&'a str),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    DotDot,
    /// `&`: a field's bits under a mask.
    BitAnd,
    /// `[`, opening a slice.
    LBracket,
    /// `]`.
    RBracket,
    /// A string literal's text between its quotes, and whether it is raw (`r"..."`).
    Str(&'a str, bool),
    /// A character constant's byte (`'a'`, `'\x41'`): a number, or one byte.
    Char(u8),
    /// `+`: tshark 4.0's unary plus, which changes nothing (`tcp.port == +80`).
    Plus,
    And,
    Or,
    Not,
    Op(Op),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    AllEq,
    AnyNe,
    Lt,
    Le,
    Gt,
    Ge,
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'/' | b'-')
}

fn lex(text: &str) -> Result<Vec<(Tok<'_>, Span)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let (tok, len) = if rest.starts_with(b"===") {
            (Tok::Op(Op::AllEq), 3)
        } else if rest.starts_with(b"!==") {
            (Tok::Op(Op::AnyNe), 3)
        } else if rest.starts_with(b"==") {
            (Tok::Op(Op::Eq), 2)
        } else if rest.starts_with(b"!=") {
            (Tok::Op(Op::Ne), 2)
        } else if rest.starts_with(b"<=") {
            (Tok::Op(Op::Le), 2)
        } else if rest.starts_with(b">=") {
            (Tok::Op(Op::Ge), 2)
        } else if rest.starts_with(b"&&") {
            (Tok::And, 2)
        } else if rest.starts_with(b"||") {
            (Tok::Or, 2)
        } else if rest.starts_with(b"~=") {
            (Tok::Op(Op::AnyNe), 2)
        } else if rest.starts_with(b"..") {
            (Tok::DotDot, 2)
        } else if c == b'\'' {
            // The constant ends at the first quote no backslash escapes, as tshark's does.
            let close = quote_end(bytes, i + 1, b'\'').ok_or_else(|| {
                let end = Span { start: bytes.len(), end: bytes.len() };
                ParseError::at(end, "The final quote was missing from a character constant.".into())
            })?;
            let span = Span { start: i, end: close + 1 };
            let value = char_constant(&text[i..=close]).map_err(|m| ParseError::at(span, m))?;
            (Tok::Char(value), close + 1 - i)
        } else if c == b'"' || rest.starts_with(b"r\"") {
            let raw = c == b'r';
            let open = i + usize::from(raw);
            let close = quote_end(bytes, open + 1, b'"').ok_or_else(|| {
                ParseError::at(
                    Span { start: i, end: bytes.len() },
                    "The final quote was missing from a quoted string.".into(),
                )
            })?;
            (Tok::Str(&text[open + 1..close], raw), close + 1 - i)
        } else {
            match c {
                b'&' => (Tok::BitAnd, 1),
                b'+' => (Tok::Plus, 1),
                b'[' => (Tok::LBracket, 1),
                b']' => (Tok::RBracket, 1),
                b'~' => (Tok::Word("matches"), 1),
                b'<' => (Tok::Op(Op::Lt), 1),
                b'>' => (Tok::Op(Op::Gt), 1),
                b'!' => (Tok::Not, 1),
                b'(' => (Tok::LParen, 1),
                b')' => (Tok::RParen, 1),
                b'{' => (Tok::LBrace, 1),
                b'}' => (Tok::RBrace, 1),
                b',' => (Tok::Comma, 1),
                b'$' => {
                    // A list's name, as names are written (letters, digits, `_`, `-`, `.`).
                    let len = bytes[i + 1..]
                        .iter()
                        .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
                        .count();
                    if len == 0 {
                        let span = Span { start: i, end: i + 1 };
                        return Err(ParseError::at(span, "\"$\" must start a list name, as in $bad_actors.".into()));
                    }
                    (Tok::List(&text[i + 1..i + 1 + len]), 1 + len)
                }
                c if is_word_char(c) => {
                    let mut j = i;
                    // A word stops before "..", so `20..21` is three tokens.
                    while j < bytes.len() && is_word_char(bytes[j]) && !bytes[j..].starts_with(b"..") {
                        j += 1;
                    }
                    let word = &text[i..j];
                    let tok = match word {
                        "and" => Tok::And,
                        "or" => Tok::Or,
                        "not" => Tok::Not,
                        "eq" | "any_eq" => Tok::Op(Op::Eq),
                        "ne" | "all_ne" => Tok::Op(Op::Ne),
                        "all_eq" => Tok::Op(Op::AllEq),
                        "any_ne" => Tok::Op(Op::AnyNe),
                        "lt" => Tok::Op(Op::Lt),
                        "le" => Tok::Op(Op::Le),
                        "gt" => Tok::Op(Op::Gt),
                        "ge" => Tok::Op(Op::Ge),
                        "bitwise_and" => Tok::BitAnd,
                        _ => Tok::Word(word),
                    };
                    (tok, j - i)
                }
                _ => {
                    let end = i + text[i..].chars().next().map_or(1, char::len_utf8);
                    let span = Span { start: i, end };
                    return Err(ParseError::at(span, format!("\"{}\" was unexpected in this context.", &text[i..end])));
                }
            }
        };
        out.push((tok, Span { start: i, end: i + len }));
        i += len;
    }
    Ok(out)
}

/// The index of the `quote` that closes a string or character constant whose text starts
/// at `from`; a backslash keeps the character after it in the text (in raw strings too, as
/// in Wireshark).
fn quote_end(bytes: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut j = from;
    while j < bytes.len() {
        match bytes[j] {
            b if b == quote => return Some(j),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// The byte a character constant stands for (`token` is the constant with its quotes), as
/// tshark 4.0 reads one: a printable ASCII character, or a backslash and one of `a b f n r t
/// v ' " \\`, one to three octal digits or `x` and one or two hex digits; the errors are its
/// own. (tshark 4.0.17 refuses `'\n'` as "too long", which no other escape is: transitd reads
/// it as C does, 10.)
fn char_constant(token: &str) -> Result<u8, String> {
    let body = &token.as_bytes()[1..token.len() - 1];
    let invalid = || format!("{token} isn't a valid character constant.");
    let too_long = || format!("{token} is too long to be a valid character constant.");
    let Some(&first) = body.first() else { return Err("Empty character constant.".into()) };
    let (value, rest) = if first != b'\\' {
        if !(0x20..0x7f).contains(&first) {
            // As tshark prints it: a `char` widened with its sign.
            let shown = first as i8 as i64 as u64;
            return Err(format!("Non-printable value '0x{shown:02x}' in character constant."));
        }
        (u32::from(first), &body[1..])
    } else {
        let escape = body.get(1).copied().ok_or_else(invalid)?;
        let after = &body[2..];
        let simple = match escape {
            b'\'' | b'"' | b'\\' => Some(u32::from(escape)),
            _ => bytes::c_escape(escape).map(u32::from),
        };
        match simple {
            Some(v) => (v, after),
            None => {
                // Up to `width` digits of `radix`; fewer followed by anything but the quote is
                // not a constant, a full count followed by more is too long.
                let (digits, width, radix) = match escape {
                    b'x' => (after, 2, 16),
                    b'0'..=b'7' => (&body[1..], 3, 8),
                    _ => return Err(invalid()),
                };
                let n = digits.iter().take(width).take_while(|c| char::from(**c).is_digit(radix)).count();
                if n == 0 || (n < width && n < digits.len()) {
                    return Err(invalid());
                }
                let value = digits[..n].iter().fold(0, |v, c| v * radix + char::from(*c).to_digit(radix).unwrap_or(0));
                (value, &digits[n..])
            }
        }
    };
    if !rest.is_empty() {
        return Err(too_long());
    }
    u8::try_from(value).map_err(|_| format!("{token} is too large to be a valid character constant."))
}

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

/// Members of a set of byte strings (`udp.payload in {"GET", "POST"}`): each is a byte
/// test, checked one by one for a packet the rule's other tests select.
const MAX_BYTE_SET_MEMBERS: usize = 256;

/// Members of a set `all` may expand into (tshark tests `all f in {a, b}` member by member,
/// as `all f == a or all f == b`): each becomes a test of its own.
const MAX_ALL_IN_MEMBERS: usize = 64;

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

    /// A test on a byte field: `udp.payload[0:4] == 00:00:00:00`, `frame contains "GET"`,
    /// `tcp.payload matches "^get "`, or a bare `udp.payload` / `frame[100:]` (present).
    fn byte_test(&mut self, layer: Layer, name_span: Span) -> Result<Expr, ParseError> {
        let mut end = name_span.end;
        let slice = if let Some((Tok::LBracket, open)) = self.toks.get(self.pos).copied() {
            self.pos += 1;
            let mut words: Vec<(&str, Span)> = Vec::new();
            loop {
                match (self.toks.get(self.pos).copied(), self.toks.get(self.pos + 1).copied()) {
                    (Some((Tok::Word(w), span)), _) => words.push((w, span)),
                    // A plus sign, as tshark takes one, is the number's own (`[+1:+2]`).
                    (Some((Tok::Plus, plus)), Some((Tok::Word(_), span))) if plus.end == span.start => {
                        let span = Span { start: plus.start, end: span.end };
                        words.push((&self.text[span.start..span.end], span));
                        self.pos += 1;
                    }
                    _ => break,
                }
                self.pos += 1;
            }
            let (close, first, last) = match (self.next()?, words.first(), words.last()) {
                ((Tok::RBracket, close), Some(first), Some(last)) => (close, *first, *last),
                ((_, span), _, _) => return Err(self.unexpected(span)),
            };
            end = close.end;
            let span = Span { start: first.1.start, end: last.1.end };
            if !spaced_slice_ok(&words, open.end < first.1.start, last.1.end < close.start) {
                let text: Vec<&str> = words.iter().map(|w| w.0).collect();
                return Err(ParseError::at(span, format!("\"{}\" is not a valid range.", text.join(" "))));
            }
            Some(Slice::parse(&words.iter().map(|w| w.0).collect::<String>()).map_err(|m| ParseError::at(span, m))?)
        } else {
            None
        };
        // A MAC address whole takes hex bytes, not a string (tshark converts a string to an
        // address, and a quoted one is none); sliced, it is bytes like any.
        self.whole_mac = slice.is_none() && matches!(layer, Layer::EthSrc | Layer::EthDst);
        // Whether every occurrence must pass, as the operator says it (`!=` and `===`):
        // `byte_cmp` folds each into the comparison of one occurrence.
        self.every_occurrence = false;
        let op = match self.peek() {
            Some(Tok::Op(op)) => {
                self.pos += 1;
                let (value, span) = self.byte_value(true)?;
                end = span.end;
                self.every_occurrence = matches!(op, Op::Ne | Op::AllEq);
                ByteOp::Cmp(byte_cmp(op), value)
            }
            Some(Tok::Word("contains" | "matches")) if self.plussed => {
                return Err(self.unexpected(self.toks[self.pos].1));
            }
            Some(Tok::Word("contains")) => {
                self.pos += 1;
                let (value, span) = self.byte_value(false)?;
                end = span.end;
                // tshark 4.0: the empty byte string is in every byte field and slice that is
                // there, and in no protocol.
                match (value.is_empty(), slice) {
                    (false, _) => ByteOp::Contains(bytes::Needle::new(&value)),
                    (true, None) if layer.is_protocol() => return Ok(Expr::Not(Box::new(Expr::True))),
                    (true, _) => ByteOp::Present,
                }
            }
            Some(Tok::Word("matches")) => {
                self.pos += 1;
                let (Tok::Str(text, raw), span) = self.next()? else {
                    let span = self.toks[self.pos - 1].1;
                    return Err(ParseError::at(span, "matches takes a quoted pattern, as in \"^get \".".into()));
                };
                end = span.end;
                let pattern = bytes::string_literal(text, raw).map_err(|m| ParseError::at(span, m))?;
                ByteOp::Matches(self.lists.pattern(&pattern).map_err(|m| ParseError::at(span, m))?)
            }
            // A field's bytes in a set of byte strings (tshark 4.0 takes no slice there).
            Some(Tok::Word("in")) if slice.is_none() => {
                self.pos += 1;
                return self.byte_set(layer, name_span);
            }
            Some(Tok::Not) if slice.is_none() && matches!(self.toks.get(self.pos + 1), Some((Tok::Word("in"), _))) => {
                self.pos += 2;
                return Ok(Expr::Not(Box::new(self.byte_set(layer, name_span)?)));
            }
            Some(Tok::Word("in")) => {
                let span = self.toks[self.pos].1;
                return Err(ParseError::at(span, "Only a field may be tested for membership in a set.".into()));
            }
            Some(Tok::BitAnd) => {
                self.pos += 1;
                let (mask, span) = self.byte_value(true)?;
                end = span.end;
                let compared = match self.peek() {
                    Some(Tok::Op(op)) => {
                        self.pos += 1;
                        let (value, span) = self.byte_value(true)?;
                        end = span.end;
                        self.every_occurrence = matches!(op, Op::Ne | Op::AllEq);
                        Some((byte_cmp(op), value))
                    }
                    // A quantifier wants a comparison (tshark 4.0 refuses `all frame[0] & 02`).
                    _ if self.quantifier.is_some() => return Err(self.comparison_expected()),
                    _ => None,
                };
                ByteOp::Masked(mask, compared)
            }
            _ if self.quantifier.is_some() => return Err(self.comparison_expected()),
            _ => ByteOp::Present,
        };
        Ok(Expr::Bytes(ByteTest { layer, slice, op, span: Span { start: name_span.start, end } }))
    }

    /// `{a, b..c}` after a byte field and `in`: equal to a member, or within a range in
    /// tshark's order of byte strings (shorter first, then byte by byte). Each member is a
    /// byte test of its own, checked one by one: at most [`MAX_BYTE_SET_MEMBERS`].
    fn byte_set(&mut self, layer: Layer, name_span: Span) -> Result<Expr, ParseError> {
        match self.next()? {
            (Tok::LBrace, _) => {}
            (_, span) => return Err(self.unexpected(span)),
        }
        let test = |op, value, end: usize| {
            Expr::Bytes(ByteTest {
                layer,
                slice: None,
                op: ByteOp::Cmp(op, value),
                span: Span { start: name_span.start, end },
            })
        };
        let mut members = Vec::new();
        loop {
            let (lo, span) = self.byte_value(false)?;
            let member = if self.peek() == Some(Tok::DotDot) {
                self.pos += 1;
                let (hi, hi_span) = self.byte_value(false)?;
                Expr::And(vec![test(CmpOp::Ge, lo, hi_span.end), test(CmpOp::Le, hi, hi_span.end)])
            } else {
                test(CmpOp::Eq, lo, span.end)
            };
            members.push(member);
            if members.len() > MAX_BYTE_SET_MEMBERS {
                return Err(ParseError::at(
                    span,
                    format!(
                        "a set of byte strings holds at most {MAX_BYTE_SET_MEMBERS} members (each is tested one by one)"
                    ),
                ));
            }
            match self.next()? {
                (Tok::Comma, _) => continue,
                (Tok::RBrace, _) => return Ok(Expr::Or(members)),
                (_, span) => return Err(self.unexpected(span)),
            }
        }
    }

    /// A byte string: a quoted string or hex bytes (`00:01`, `0001`, `0x41`), after a plus
    /// sign where tshark takes one (`plus`: in a comparison or a mask, not after `contains`).
    fn byte_value(&mut self, plus: bool) -> Result<(Vec<u8>, Span), ParseError> {
        if plus {
            self.plus();
        }
        match self.next()? {
            (Tok::Str(text, _), span) if self.whole_mac => Err(ParseError::at(
                span,
                format!("Ethernet or other MAC address cannot be converted from a string (\"{text}\")."),
            )),
            (Tok::Str(text, raw), span) => {
                Ok((bytes::string_literal(text, raw).map_err(|m| ParseError::at(span, m))?, span))
            }
            (Tok::Word(w), span) => match bytes::byte_literal(colon_literal(w).unwrap_or(w)) {
                // tshark compares with the protocol or field of that name, transitd with no
                // field: refused rather than read otherwise.
                Some(_) if names::HEX_NAMES.contains(&w) => Err(ParseError::at(
                    span,
                    format!(
                        "\"{w}\" is a Wireshark protocol or field name, which tshark compares with, not the bytes: \
                         write :{w} for the bytes"
                    ),
                )),
                Some(v) => Ok((v, span)),
                None => Err(ParseError::at(span, format!("\"{w}\" is not a valid byte string."))),
            },
            (Tok::Char(c), span) => Ok((vec![c], span)),
            (_, span) => Err(self.unexpected(span)),
        }
    }

    /// `len(field) OP number`, `len` already read.
    fn len_test(&mut self, len_span: Span) -> Result<Expr, ParseError> {
        self.pos += 1; // (
        let (name, name_span) = self.word()?;
        let layer = Layer::lookup(name);
        let Some(layers) = layer.as_ref().map(std::slice::from_ref).or_else(|| bytes::address_field(name)) else {
            return Err(ParseError::at(
                name_span,
                format!(
                    "transitd takes len() of a byte field or an address: {}, eth.src, ip.src, ipv6.addr, ....",
                    bytes::layer_names().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        match self.next()? {
            (Tok::RParen, _) => {}
            (Tok::LBracket, span) => {
                return Err(ParseError::at(span, "Only fields can be used as parameter for len()".into()));
            }
            (_, span) => return Err(self.unexpected(span)),
        }
        let op = match self.next()? {
            (Tok::Op(op), _) => op,
            (Tok::Word("in"), span) => {
                return Err(ParseError::at(span, "Only a field may be tested for membership in a set.".into()));
            }
            (_, span) => return Err(self.unexpected(span)),
        };
        let (value, span) = self.value()?;
        let values = literal(&LENGTH, value, span)?;
        let set = match relop(&LENGTH, op, values, span)? {
            // One occurrence: "some" and "every" are the same.
            Pred::Any(set) | Pred::All(set) => set,
            Pred::Present => IntervalSet::range(0, u128::from(u32::MAX)),
        };
        let span = Span { start: len_span.start, end: span.end };
        let test = Expr::Bytes(ByteTest { layer: layers[0], slice: None, op: ByteOp::Len(set), span });
        Ok(self.each_occurrence(test, layers))
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

    fn test(&mut self, name: &str, name_span: Span) -> Result<Expr, ParseError> {
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

    /// A byte test of an address field's first occurrence (`test`), made of every one of
    /// `layers`: some occurrence must pass it, or every one for `!=` and `===` or after
    /// `all` (`any` makes it some for every operator).
    fn each_occurrence(&self, test: Expr, layers: &[Layer]) -> Expr {
        let Expr::Bytes(first) = &test else { return test };
        if layers.len() == 1 {
            return test;
        }
        let every = match self.quantifier {
            Some(q) => q == Quantifier::All,
            None => self.every_occurrence,
        };
        let tests = layers.iter().map(|&layer| Expr::Bytes(ByteTest { layer, ..first.clone() })).collect();
        if every { Expr::And(tests) } else { Expr::Or(tests) }
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

    /// What tshark says of a quantified test with nothing to compare (`all tcp.port`).
    fn comparison_expected(&self) -> ParseError {
        match self.toks.get(self.pos) {
            Some(&(_, span)) => self.unexpected(span),
            None => end_of_input(),
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

    /// `field & mask` (some occurrence has a bit of the mask set) or `field & mask OP value`
    /// (Wireshark 4.0): the field's values whose masked bits satisfy the comparison, as
    /// ranges of the field's own values, so that the compiler sees an ordinary value set.
    fn masked(&mut self, field: &FieldDef, name_span: Span) -> Result<(Pred, usize), ParseError> {
        if field.ty == Ty::Bool {
            return Err(ParseError::at(
                name_span,
                format!("{} is a flag: a flag cannot be masked (FT_BOOLEAN cannot &).", field.name),
            ));
        }
        if field.ty == Ty::Ipv6 {
            // tshark 4.0 answers `ipv6.src & ffff:ffff:: == 2001:db8::` true for every IPv6
            // packet: there is no Wireshark meaning to follow, and a network says it plainly.
            return Err(ParseError::at(
                name_span,
                format!(
                    "{} cannot be masked; compare it with a network instead ({} == 2001:db8::/32).",
                    field.name, field.name
                ),
            ));
        }
        let (mask, mask_span) = self.value()?;
        match mask {
            Value::Char(_, written) => {
                return Err(ParseError::at(mask_span, format!("{written} is not a valid arithmetic operand.")));
            }
            Value::Str(text) => {
                return Err(ParseError::at(mask_span, format!("\"{text}\" is not a valid arithmetic operand.")));
            }
            // A mask is a number (or an address), never a value's name, as in tshark.
            Value::Word(word) if matches!(field.ty, Ty::Uint { .. }) => {
                if let Err(e) = parse_uint(word) {
                    return Err(ParseError::at(mask_span, e.message(word)));
                }
            }
            Value::Word(_) => {}
        }
        // An address with a prefix length is tshark's address under its netmask: as a mask,
        // the masked address (`& 255.255.255.255/8` is `& 255.0.0.0`); compared with, the
        // masked value's network (`& 255.255.0.0 == 10.0.0.0/8`).
        let mask = single(literal(field, mask, mask_span)?, mask_span)?;
        let (op, (value, value_hi), span) = match self.peek() {
            Some(Tok::Op(op)) => {
                self.pos += 1;
                let (value, span) = self.value()?;
                (op, one_range(literal(field, value, span)?, span)?, span)
            }
            // A quantifier wants a comparison (tshark 4.0 refuses `all tcp.flags & 0x02`).
            _ if self.quantifier.is_some() => return Err(self.comparison_expected()),
            // Bare: true when the masked value is not zero.
            _ => (Op::AnyNe, (0, 0), mask_span),
        };
        let whole = Span { start: name_span.start, end: span.end };
        // The values the field's slots can hold, which may be fewer than its type's: a literal
        // is bounded by the type (as tshark bounds it), but `tcp.flags` and `vlan.id` are
        // 16-bit fields of 12 bits, `mpls.exp` a 32-bit one of 3, and `tcp.flags & 0x02` is
        // 1024 ranges of what a key holds, where over the type it would be 16384 (and
        // `mpls.exp & 1` over 32 bits more ranges than a rule may have).
        let held = |o: &field::Occurrence| match o.slot {
            Slot::Narrow(d) => slot_max(d),
            _ => None,
        };
        let max = field
            .occurrences
            .iter()
            .map(held)
            .try_fold(0u32, |m, h| h.map(|h| m.max(h)))
            .map_or(domain_max(field.ty), |m| u128::from(m).min(domain_max(field.ty)));
        let holds = |op| {
            // Against a network: within it is at or above its first address and at or below
            // its last; outside it, not within it.
            let one_value = value == value_hi || (field.ty == Ty::Ipv4 && value_hi == value | u128::MAX >> 32);
            let answer = match op {
                _ if one_value => masked_values(max, mask, op, value),
                Op::Eq | Op::AllEq => masked_values(max, mask, Op::Ge, value)
                    .zip(masked_values(max, mask, Op::Le, value_hi))
                    .map(|(from, to)| from.intersect(&to)),
                Op::Ne | Op::AnyNe => masked_values(max, mask, Op::Lt, value)
                    .zip(masked_values(max, mask, Op::Gt, value_hi))
                    .map(|(below, above)| below.union(&above)),
                Op::Lt | Op::Ge => masked_values(max, mask, op, value),
                Op::Le | Op::Gt => masked_values(max, mask, op, value_hi),
            };
            answer.filter(|set| set.ranges().len() <= MAX_MASKED_RANGES).ok_or_else(|| {
                ParseError::at(
                    whole,
                    format!(
                        "this mask selects the field's values in more than {MAX_MASKED_RANGES} separate ranges, \
                         more than a rule table holds; test fewer or higher bits, or a field of their own"
                    ),
                )
            })
        };
        let pred = match op {
            Op::Eq | Op::AnyNe | Op::Lt | Op::Le | Op::Gt | Op::Ge => Pred::Any(holds(op)?),
            // `!=` is "no occurrence's masked value equals", `===` "every one does".
            Op::Ne => Pred::All(holds(Op::AnyNe)?),
            Op::AllEq => Pred::All(holds(Op::Eq)?),
        };
        let pred = self.quantified(pred);
        if let Pred::Any(set) | Pred::All(set) = &pred {
            self.masked_ranges += set.ranges().len();
        }
        if self.masked_ranges > MAX_MASKED_RANGES_PER_RULE {
            return Err(ParseError::at(
                whole,
                format!(
                    "the masks of this rule select more than {MAX_MASKED_RANGES_PER_RULE} separate ranges of values \
                     in all, more than one rule is compiled from; split it into several rules"
                ),
            ));
        }
        Ok((pred, span.end))
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

/// Upper bound on the ranges a masked comparison may select (a rule's boxes are bounded
/// alike, [`crate::compile::MAX_BOXES_PER_RULE`]).
pub const MAX_MASKED_RANGES: usize = crate::compile::MAX_BOXES_PER_RULE;

/// Upper bound on the ranges all the masks of one rule select together: a mask is twenty
/// characters and may be 16,384 ranges, and a rule of a few hundred masks took minutes and
/// gigabytes to compile (each expansion step clones and intersects such sets).
pub const MAX_MASKED_RANGES_PER_RULE: usize = 4 * MAX_MASKED_RANGES;

/// The one value of a literal: a value, or a network's first address. An IPv4 address is
/// one range of the 128-bit space (`a << 96` and the 96 bits below, which no
/// IPv4 key sets): its first value.
fn single(set: IntervalSet, span: Span) -> Result<u128, ParseError> {
    one_range(set, span).map(|(lo, _)| lo)
}

/// The one range of a literal's values: a value, or a network's first and last address.
fn one_range(set: IntervalSet, span: Span) -> Result<(u128, u128), ParseError> {
    match set.ranges() {
        [(lo, hi)] => Ok((*lo, *hi)),
        _ => Err(ParseError::at(span, "expected a single value here".into())),
    }
}

/// The values `v` in `0..=max` for which `(v & mask) OP value` holds, as ranges;
/// `None` when they are more than [`MAX_MASKED_RANGES`] ranges.
///
/// A walk down the bits from the top: below a node whose higher bits are fixed, the masked
/// value lies between the fixed bits' and those plus every mask bit left; when the comparison
/// holds (or fails) for that whole span the node's values are one range in (or out), and only
/// undecided nodes split. The ranges that come out are as many as the answer has, so the walk
/// stops as soon as they are too many; the nodes it visits are bounded too, for masks whose
/// span covers values no masked value can take.
fn masked_values(max: u128, mask: u128, op: Op, value: u128) -> Option<IntervalSet> {
    // A masked value has no bit outside the mask: equal to such a value it never is.
    let value_possible = value & !mask == 0;
    let width = 128 - max.leading_zeros();
    let decide = |lo: u128, hi: u128| -> Option<bool> {
        let (all, none) = match op {
            Op::Eq | Op::AllEq => (lo == hi && lo == value, !value_possible || value < lo || value > hi),
            Op::Ne | Op::AnyNe => (!value_possible || value < lo || value > hi, lo == hi && lo == value),
            Op::Lt => (hi < value, lo >= value),
            Op::Le => (hi <= value, lo > value),
            Op::Gt => (lo > value, hi <= value),
            Op::Ge => (lo >= value, hi < value),
        };
        if all {
            Some(true)
        } else if none {
            Some(false)
        } else {
            None
        }
    };
    let mut out: Vec<(u128, u128)> = Vec::new();
    // (value bits fixed so far, how many low bits are still free)
    let mut stack = vec![(0u128, width)];
    let mut steps = 0usize;
    while let Some((prefix, free)) = stack.pop() {
        steps += 1;
        if steps > 64 * MAX_MASKED_RANGES {
            return None;
        }
        if prefix > max {
            continue;
        }
        let low = if free == 0 { 0 } else { u128::MAX >> (128 - free) };
        let (x_lo, x_hi) = (prefix & mask, (prefix & mask) | (mask & low));
        match decide(x_lo, x_hi) {
            Some(true) => {
                let hi = (prefix | low).min(max);
                // Nodes come off the stack in ascending order: a range that continues the
                // last one extends it, so that the count is of ranges, not of nodes.
                match out.last_mut() {
                    Some((_, last_hi)) if last_hi.checked_add(1) == Some(prefix) => *last_hi = hi,
                    _ => out.push((prefix, hi)),
                }
                if out.len() > MAX_MASKED_RANGES {
                    return None;
                }
            }
            Some(false) => {}
            // Undecided means a mask bit is still free, so `free` is at least 1.
            None => {
                let bit = 1u128 << (free - 1);
                stack.push((prefix | bit, free - 1));
                stack.push((prefix, free - 1));
            }
        }
    }
    Some(IntervalSet::from_ranges(out))
}

/// Whether the words of a slice, written with spaces between them, are a range tshark 4.0
/// takes (`frame[ 12 : 2 ]`, `frame[12 - 13]`): a space may stand before or after a number
/// and after a `:` or `-` that follows one, never between a leading sign and its digits
/// (`[- 1]`), before a leading `:` or after a trailing one (`[ :2]`, `[12: ]`), nor between
/// two numbers (`[1 2]` is no range, not byte 12). `spaced_before` and `spaced_after`: a
/// space after `[` and before `]`.
fn spaced_slice_ok(words: &[(&str, Span)], spaced_before: bool, spaced_after: bool) -> bool {
    let starts = |w: &str, f: fn(char) -> bool| w.chars().next().is_some_and(f);
    let ends = |w: &str, f: fn(char) -> bool| w.chars().last().is_some_and(f);
    let (Some(first), Some(last)) = (words.first(), words.last()) else { return false };
    if (spaced_before && first.0.starts_with(':')) || (spaced_after && last.0.ends_with(':')) {
        return false;
    }
    words.windows(2).enumerate().all(|(i, pair)| {
        let (a, b) = (pair[0].0, pair[1].0);
        let number_then_separator = ends(a, |c| c.is_ascii_digit()) && starts(b, |c| c == ':' || c == '-');
        // A lone `-` first is a sign, whose digits must follow it directly.
        let separator_then_number = ends(a, |c| c == ':' || c == '-')
            && !(i == 0 && a == "-")
            && starts(b.strip_prefix('+').unwrap_or(b), |c| c.is_ascii_digit());
        number_then_separator || separator_then_number
    })
}

/// A comparison of byte strings: `===` is `==` and `!==` is `!=` for a field that occurs
/// once, as byte fields do.
fn byte_cmp(op: Op) -> CmpOp {
    match op {
        Op::Eq | Op::AllEq => CmpOp::Eq,
        Op::Ne | Op::AnyNe => CmpOp::Ne,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
    }
}

/// What `len()` is compared with: a byte count.
static LENGTH: FieldDef =
    FieldDef { name: "len()", ty: Ty::Uint { max: u32::MAX - 1 }, occurrences: &[], alias_of: None };

fn end_of_input() -> ParseError {
    ParseError { message: "Unexpected end of filter expression.".into(), span: None }
}

/// The largest value a field of type `ty` can hold, as a 128-bit value.
/// The largest value a narrow slot holds, where it is less than its field's type allows;
/// `None` for slots that hold the type's whole range.
fn slot_max(dim: Dim) -> Option<u32> {
    Some(match dim {
        Dim::TcpFlags | Dim::Vlan0 | Dim::Vlan1 | Dim::Vlan2 | Dim::ServiceVlan => 0x0fff,
        Dim::Dscp => 0x3f,
        Dim::Ecn => 0x3,
        Dim::Tos => 0xff,
        Dim::Ipv6Flow | Dim::Mpls0Label | Dim::Mpls1Label | Dim::Mpls2Label => 0xf_ffff,
        Dim::Mpls0Exp | Dim::Mpls1Exp | Dim::Mpls2Exp => 0x7,
        Dim::Mpls0Bottom | Dim::Mpls1Bottom | Dim::Mpls2Bottom => 0x1,
        Dim::Mpls0Ttl | Dim::Mpls1Ttl | Dim::Mpls2Ttl => 0xff,
        _ => return None,
    })
}

fn domain_max(ty: Ty) -> u128 {
    match ty {
        Ty::Ipv4 | Ty::Ipv6 => u128::MAX,
        Ty::Uint { max } => max.into(),
        Ty::Bool => 1,
        Ty::Ether => (1 << 48) - 1,
        Ty::Protocol => 0,
    }
}

fn relop(field: &FieldDef, op: Op, values: IntervalSet, span: Span) -> Result<Pred, ParseError> {
    let max = domain_max(field.ty);
    let bounds = || match values.ranges() {
        [(lo, hi)] => Ok((*lo, *hi)),
        _ => Err(ParseError::at(span, "expected a single value here".into())),
    };
    Ok(match op {
        Op::Eq => Pred::Any(values),
        Op::Ne => Pred::All(values.complement(max)),
        Op::AllEq => Pred::All(values),
        Op::AnyNe => Pred::Any(values.complement(max)),
        Op::Lt => Pred::Any(bounds()?.0.checked_sub(1).map_or_else(IntervalSet::empty, |hi| IntervalSet::range(0, hi))),
        Op::Le => Pred::Any(IntervalSet::range(0, bounds()?.1)),
        Op::Gt => {
            Pred::Any(bounds()?.1.checked_add(1).map_or_else(IntervalSet::empty, |lo| IntervalSet::range(lo, max)))
        }
        Op::Ge => Pred::Any(IntervalSet::range(bounds()?.0, max)),
    })
}

/// A value as written after a field: a word (a number, an address, bytes) or a character
/// constant (its byte and its text).
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Word(&'a str),
    /// A quoted string's text: only ever the name of a value.
    Str(&'a str),
    Char(u8, &'a str),
}

/// Reads a literal for `field`: one value, or for addresses a CIDR network.
fn literal(field: &FieldDef, value: Value, span: Span) -> Result<IntervalSet, ParseError> {
    let word = match value {
        Value::Word(word) => word,
        Value::Char(c, written) => return char_literal(field, c, written, span),
        Value::Str(text) => return string_value(field, text, span),
    };
    match field.ty {
        Ty::Uint { max } => {
            let value = match parse_uint(word) {
                Ok(value) => value,
                // tshark reads a word that names a field or protocol as that field, and the
                // comparison of two fields is not one transitd makes.
                Err(NotANumber::Invalid) if field::lookup(word).is_some() || names::FIELD_WORDS.contains(&word) => {
                    return Err(ParseError::at(
                        span,
                        format!("{} and {word} are not of compatible types.", field.name),
                    ));
                }
                Err(NotANumber::Invalid) if value_names(field).is_some() => match named_value(field, word) {
                    Some(value) => value.into(),
                    None => return Err(not_a_name(field, word, span)),
                },
                Err(e) => return Err(ParseError::at(span, e.message(word))),
            };
            if value > u64::from(max) {
                return Err(ParseError::at(span, format!("\"{word}\" too big for this field, maximum {max}.")));
            }
            Ok(IntervalSet::single(value.into()))
        }
        Ty::Bool => match word {
            "True" | "TRUE" => Ok(IntervalSet::single(1)),
            "False" | "FALSE" => Ok(IntervalSet::single(0)),
            // Wireshark reads any non-zero integer as true, and then the flag's names.
            _ => match parse_uint(word) {
                Ok(v) => Ok(IntervalSet::single(u128::from(v != 0))),
                Err(_) => string_value(field, word, span),
            },
        },
        Ty::Ipv4 => {
            let (addr, bits) = split_cidr(word);
            let addr: Ipv4Addr =
                addr.parse().map_err(|_| ParseError::at(span, format!("\"{word}\" is not a valid IPv4 address.")))?;
            let bits = cidr_bits(bits, 32, word, span, "IPv4")?;
            // The IPv4 address fills the top 32 of 128 bits, so its prefix length carries over.
            let value = u128::from(u32::from(addr)) << 96;
            Ok(network_range(value, bits))
        }
        Ty::Ipv6 => {
            let (addr, bits) = split_cidr(word);
            let addr: Ipv6Addr =
                addr.parse().map_err(|_| ParseError::at(span, format!("\"{word}\" is not a valid IPv6 address.")))?;
            let bits = cidr_bits(bits, 128, word, span, "IPv6")?;
            Ok(network_range(u128::from(addr), bits))
        }
        // Six bytes, written as any byte string is (Wireshark reads it so).
        Ty::Ether => match bytes::byte_literal(colon_literal(word).unwrap_or(word)) {
            Some(mac) if mac.len() == 6 => {
                Ok(IntervalSet::single(mac.iter().fold(0u128, |v, &b| v << 8 | u128::from(b))))
            }
            Some(mac) => {
                let how = if mac.len() > 6 { "many" } else { "few" };
                Err(ParseError::at(
                    span,
                    format!("\"{word}\" contains too {how} bytes to be a valid Ethernet address."),
                ))
            }
            None => Err(ParseError::at(span, format!("\"{word}\" is not a valid Ethernet address."))),
        },
        Ty::Protocol => Err(ParseError::at(span, format!("{} takes no value.", field.name))),
    }
}

/// A quoted string compared with `field` (or, for a flag, a word that is no number): the
/// name of one of its values, as tshark finds it, the only strings a number or flag takes.
fn string_value(field: &FieldDef, text: &str, span: Span) -> Result<IntervalSet, ParseError> {
    let what = match field.ty {
        Ty::Bool => {
            let (set, unset) = names::FLAG;
            return match text {
                t if t.eq_ignore_ascii_case(set) => Ok(IntervalSet::single(1)),
                t if t.eq_ignore_ascii_case(unset) => Ok(IntervalSet::single(0)),
                _ => Err(not_a_name(field, text, span)),
            };
        }
        Ty::Uint { .. } if value_names(field).is_some() && !names::WORDS_ONLY.contains(&field.name) => {
            return named_value(field, text)
                .map(|v| IntervalSet::single(v.into()))
                .ok_or_else(|| not_a_name(field, text, span));
        }
        Ty::Uint { max } => match max {
            0..=0xff => "Unsigned integer (1 byte)",
            0x100..=0xffff => "Unsigned integer (2 bytes)",
            0x1_0000..=0xff_ffff => "Unsigned integer (3 bytes)",
            _ => "Unsigned integer (4 bytes)",
        },
        Ty::Ipv4 => "IPv4 address",
        Ty::Ipv6 => "IPv6 address",
        Ty::Ether => "Ethernet or other MAC address",
        Ty::Protocol => return Err(ParseError::at(span, format!("{} takes no value.", field.name))),
    };
    Err(ParseError::at(span, format!("{what} cannot be converted from a string (\"{text}\").")))
}

/// The names `field`'s values have in Wireshark, if they have any.
fn value_names(field: &FieldDef) -> Option<&'static [(u32, &'static str)]> {
    names::FIELDS.iter().find(|(name, _)| *name == field.name).map(|&(_, table)| table)
}

/// The value `name` stands for: the first of the field's table to bear it, whatever its
/// case (as tshark 4.0 looks it up).
fn named_value(field: &FieldDef, name: &str) -> Option<u32> {
    value_names(field)?.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|&(v, _)| v)
}

fn not_a_name(field: &FieldDef, name: &str, span: Span) -> ParseError {
    ParseError::at(span, format!("\"{name}\" cannot be found among the possible values for {}.", field.name))
}

/// A character constant compared with `field`: a number, as tshark reads one.
fn char_literal(field: &FieldDef, c: u8, written: &str, span: Span) -> Result<IntervalSet, ParseError> {
    let address = match field.ty {
        Ty::Uint { max } if u32::from(c) > max => {
            return Err(ParseError::at(span, format!("{written} too big for this field, maximum {max}.")));
        }
        Ty::Uint { .. } => return Ok(IntervalSet::single(c.into())),
        Ty::Bool => return Ok(IntervalSet::single(u128::from(c != 0))),
        Ty::Protocol => return Err(ParseError::at(span, format!("{} takes no value.", field.name))),
        Ty::Ipv4 => "IPv4 address",
        Ty::Ipv6 => "IPv6 address",
        Ty::Ether => "Ethernet or other MAC address",
    };
    let shown = if (0x20..0x7f).contains(&c) { format!("'{}' (0x{c:02x})", char::from(c)) } else { format!("0x{c:x}") };
    Err(ParseError::at(span, format!("Character constant {shown} cannot be converted to {address}.")))
}

/// The hex bytes after tshark 4.0's literal marker, a leading `:` (`:02`, `:0200`,
/// `:ff:ff:ff:ff:ff:ff`), which says a word is a byte string and not a field or a name: hex
/// digits, or two-digit groups joined by one separator (`:`, `-` or `.`), as its scanner
/// takes them. `None` for any other word (`::1` is an IPv6 address).
fn colon_literal(word: &str) -> Option<&str> {
    let rest = word.strip_prefix(':')?;
    let hex = |g: &[u8]| !g.is_empty() && g.iter().all(u8::is_ascii_hexdigit);
    let grouped = [b':', b'-', b'.'].into_iter().any(|sep| {
        let mut groups = rest.as_bytes().split(|&b| b == sep);
        rest.contains(char::from(sep)) && groups.all(|g| g.len() == 2 && hex(g))
    });
    (hex(rest.as_bytes()) || grouped).then_some(rest)
}

fn split_cidr(word: &str) -> (&str, Option<&str>) {
    match word.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (word, None),
    }
}

fn cidr_bits(bits: Option<&str>, width: u32, word: &str, span: Span, family: &str) -> Result<u32, ParseError> {
    let Some(bits) = bits else { return Ok(width) };
    // tshark 4.0's scanner takes at most two digits after an IPv4 address's slash and three
    // after an IPv6 one's (what follows is a token of its own, out of place), and reads them
    // as C does: a leading 0 makes them octal (`/010` is 8, `/08` is no number).
    let most = if width == 32 { 2 } else { 3 };
    let digits = !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit());
    if digits && bits.len() > most {
        return Err(ParseError::at(
            span,
            format!("\"{word}\": a {family} prefix length has at most {most} digits, as tshark scans it."),
        ));
    }
    let octal = digits && bits.len() > 1 && bits.starts_with('0');
    let parsed = match (digits, octal) {
        (false, _) => None,
        (true, true) => u32::from_str_radix(&bits[1..], 8).ok(),
        (true, false) => bits.parse::<u32>().ok(),
    };
    match parsed {
        Some(b) if b <= width => Ok(b),
        None if octal => Err(ParseError::at(span, format!("\"{bits}\" is not a valid number."))),
        _ => Err(ParseError::at(
            span,
            format!("Netmask bits in a CIDR {family} address should be <= {width}, not {bits}"),
        )),
    }
}

/// The addresses of the network `value/prefix_len` in the 128-bit space.
fn network_range(value: u128, prefix_len: u32) -> IntervalSet {
    let host_mask = u128::MAX.checked_shr(prefix_len).unwrap_or(0);
    IntervalSet::range(value & !host_mask, value | host_mask)
}

/// Why a word is not a 64-bit number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotANumber {
    /// Not written as one.
    Invalid,
    /// Written as one, but above 2^64 - 1.
    Overflow,
}

impl NotANumber {
    /// tshark's words for it.
    fn message(self, word: &str) -> String {
        match self {
            NotANumber::Invalid => format!("\"{word}\" is not a valid number."),
            NotANumber::Overflow => format!("\"{word}\" causes an integer overflow."),
        }
    }
}

/// Decimal, `0x` hexadecimal, `0b` binary or leading-zero octal, as Wireshark 4.0 reads
/// integers (`0b` alone is 0 there, as `0` is).
pub(crate) fn parse_uint(word: &str) -> Result<u64, NotANumber> {
    let (digits, radix) = if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        (hex, 16)
    } else if let Some(binary) = word.strip_prefix("0b").or_else(|| word.strip_prefix("0B")) {
        if binary.is_empty() {
            return Ok(0);
        }
        (binary, 2)
    } else if word.len() > 1 && word.starts_with('0') {
        (&word[1..], 8)
    } else {
        (word, 10)
    };
    // `from_str_radix` would take a leading `+`; Wireshark's digits are digits only.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NotANumber::Invalid);
    }
    u64::from_str_radix(digits, radix).map_err(|_| NotANumber::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fault far into a long expression, or on a later line of a multi-line one, is shown
    /// with the part of its line around it and the caret under it (the whole expression
    /// was shown, cut at 1,000 characters in the configuration's message: the caret of a
    /// fault past that was lost).
    #[test]
    fn a_fault_far_into_a_long_expression_is_shown_with_its_surroundings() {
        let terms: Vec<String> = (0..100).map(|i| format!("ip.ttl == {i}")).collect();
        let text = format!("{} or ip.ttl == 300 or ip.ttl == 7", terms.join(" or "));
        let shown = parse(&text).unwrap_err().render(&text);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[1].starts_with("    …") && lines[1].ends_with("ip.ttl == 300 or ip.ttl == 7"), "{shown}");
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][lines[1].char_indices().nth(lines[2][..caret].chars().count()).unwrap().0..][..3], "300");
        assert!(lines[2].ends_with("^~~"), "{shown}");
        // A later line of several: that line alone.
        let multi = "tcp\n  and ip.ttl == 300\n  and udp";
        let shown = parse(multi).unwrap_err().render(multi);
        assert_eq!(shown.lines().skip(1).collect::<Vec<_>>(), ["      and ip.ttl == 300", "                    ^~~"]);
    }

    /// Each mask may select up to 16,384 ranges; a rule's masks together at most four times
    /// that: a rule of hundreds of twenty-character masks took minutes and gigabytes.
    #[test]
    fn the_masks_of_one_rule_are_bounded_together() {
        let mask = "tcp.srcport & 2 == 0"; // 16,384 ranges of the 65,536 ports
        let rule = |n: usize| vec![mask; n].join(" and ");
        assert!(parse(&rule(4)).is_ok());
        let e = parse(&rule(5)).unwrap_err();
        assert!(e.message.contains("the masks of this rule select more than 65536"), "{}", e.message);
        let fifth = rule(4).len() + " and ".len();
        assert_eq!(e.span.map(|s| s.start), Some(fifth), "at the mask that crosses the bound");
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().render(text)
    }

    /// A word of hex bytes that is also a Wireshark protocol or field name (`ff` is
    /// Foundation Fieldbus, `fc` Fibre Channel) is that protocol to tshark, which compares
    /// with it: refused, with the marked bytes to write instead. In another case (`FF`), or
    /// marked, it is bytes.
    #[test]
    fn hex_words_that_name_a_protocol_are_refused() {
        for expr in ["ip[1] & fc", "frame[0] == ff", "frame contains e164", "eth.dst[0:2] != fc00"] {
            assert!(err(expr).contains("is a Wireshark protocol or field name"), "{expr}: {}", err(expr));
        }
        for expr in ["ip[1] & :fc", "frame[0] == FF", "frame[0] == :ff", "frame[0] == 0xff", "frame contains :e164"] {
            assert!(parse(expr).is_ok(), "{expr}");
        }
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
    fn errors_point_at_the_fault_like_tshark() {
        // The exact texts tshark 4.0.17 prints for these expressions.
        assert_eq!(
            err("tcp.port == 0x1ffff"),
            "\"0x1ffff\" too big for this field, maximum 65535.\n    tcp.port == 0x1ffff\n                ^~~~~~~"
        );
        assert_eq!(err("tcp)"), "\")\" was unexpected in this context.\n    tcp)\n       ^");
        assert_eq!(err("tcp.port ==").as_str(), "Unexpected end of filter expression.");
        assert_eq!(
            err("tcp.flags.syn == true"),
            "\"true\" cannot be found among the possible values for tcp.flags.syn.\n    tcp.flags.syn == true\n                     ^~~~"
        );
        assert!(err("tcp.port in {80 8080}").contains("separated by commas"));
        assert!(
            err("ip.src == 10.0.0.0/33").starts_with("Netmask bits in a CIDR IPv4 address should be <= 32, not 33")
        );
        assert!(err("foo.bar").starts_with("foo.bar is neither a field nor a protocol name."));
        assert_eq!(
            err("tcp.len == 18446744073709551616"),
            "\"18446744073709551616\" causes an integer overflow.\n    tcp.len == 18446744073709551616\n               ^~~~~~~~~~~~~~~~~~~~"
        );
    }

    #[test]
    fn character_constants_read_and_fail_as_in_tshark() {
        let value = |text: &str| match parse(&format!("ip.ttl == {text}")) {
            Ok(Expr::Test(t)) => t.pred,
            other => panic!("{text}: {other:?}"),
        };
        let cases: &[(&str, u128)] = &[
            ("'@'", 64),
            ("' '", 32),
            ("'~'", 126),
            ("'\\a'", 7),
            ("'\\b'", 8),
            ("'\\f'", 12),
            ("'\\n'", 10),
            ("'\\r'", 13),
            ("'\\t'", 9),
            ("'\\v'", 11),
            ("'\\''", 39),
            ("'\\\"'", 34),
            ("'\\\\'", 92),
            ("'\\0'", 0),
            ("'\\7'", 7),
            ("'\\77'", 63),
            ("'\\377'", 255),
            ("'\\x4'", 4),
            ("'\\x40'", 64),
            ("'\\xFf'", 255),
        ];
        for &(text, v) in cases {
            assert_eq!(value(text), Pred::Any(IntervalSet::single(v)), "{text}");
        }
        // The exact texts tshark 4.0.17 prints.
        let refused: &[(&str, &str)] = &[
            ("ip.ttl == ''", "Empty character constant.\n    ip.ttl == ''\n              ^~"),
            ("ip.ttl == '''", "Empty character constant.\n    ip.ttl == '''\n              ^~"),
            (
                "ip.ttl == 'ab'",
                "'ab' is too long to be a valid character constant.\n    ip.ttl == 'ab'\n              ^~~~",
            ),
            (
                "ip.ttl == '\\x404'",
                "'\\x404' is too long to be a valid character constant.\n    ip.ttl == '\\x404'\n              ^~~~~~~",
            ),
            (
                "ip.ttl == '\\0000'",
                "'\\0000' is too long to be a valid character constant.\n    ip.ttl == '\\0000'\n              ^~~~~~~",
            ),
            ("ip.ttl == '\\08'", "'\\08' isn't a valid character constant.\n    ip.ttl == '\\08'\n              ^~~~~"),
            (
                "ip.ttl == '\\x4g'",
                "'\\x4g' isn't a valid character constant.\n    ip.ttl == '\\x4g'\n              ^~~~~~",
            ),
            ("ip.ttl == '\\x'", "'\\x' isn't a valid character constant.\n    ip.ttl == '\\x'\n              ^~~~"),
            ("ip.ttl == '\\?'", "'\\?' isn't a valid character constant.\n    ip.ttl == '\\?'\n              ^~~~"),
            (
                "ip.ttl == '\\400'",
                "'\\400' is too large to be a valid character constant.\n    ip.ttl == '\\400'\n              ^~~~~~",
            ),
            (
                "ip.ttl == '\\'",
                "The final quote was missing from a character constant.\n    ip.ttl == '\\'\n                 ^",
            ),
            (
                "ip.ttl == '\t'",
                "Non-printable value '0x09' in character constant.\n    ip.ttl == '\t'\n              ^~~",
            ),
            (
                "ip.ttl == '\u{7f}'",
                "Non-printable value '0x7f' in character constant.\n    ip.ttl == '\u{7f}'\n              ^~~",
            ),
            (
                "tcp.port == 'é'",
                "Non-printable value '0xffffffffffffffc3' in character constant.\n    tcp.port == 'é'\n                ^~~",
            ),
            (
                "ip.src == '\\x40'",
                "Character constant '@' (0x40) cannot be converted to IPv4 address.\n    ip.src == '\\x40'\n              ^~~~~~",
            ),
            (
                "ip.src == '\\t'",
                "Character constant 0x9 cannot be converted to IPv4 address.\n    ip.src == '\\t'\n              ^~~~",
            ),
            (
                "ipv6.src == 'a'",
                "Character constant 'a' (0x61) cannot be converted to IPv6 address.\n    ipv6.src == 'a'\n                ^~~",
            ),
            (
                "eth.src == 'a'",
                "Character constant 'a' (0x61) cannot be converted to Ethernet or other MAC address.\n    eth.src == 'a'\n               ^~~",
            ),
            ("tcp.flags & 'S'", "'S' is not a valid arithmetic operand.\n    tcp.flags & 'S'\n                ^~~"),
        ];
        for &(text, message) in refused {
            assert_eq!(err(text), message, "{text}");
        }
        // Where bytes are compared, the constant is one byte.
        assert!(parse("tcp.payload contains 'G' and frame[12] == '\\x08'").is_ok());
        assert!(parse("ip.ttl in {'0'..'@', '\\xff'} and tcp.flags.syn == '\\1'").is_ok());
    }

    #[test]
    fn any_not_equal_has_three_spellings() {
        let pred = |text: &str| match parse(text) {
            Ok(Expr::Test(t)) => t.pred,
            other => panic!("{text}: {other:?}"),
        };
        let any_ne = pred("tcp.port any_ne 80");
        assert_eq!(any_ne, Pred::Any(IntervalSet::single(80).complement(0xffff)));
        assert_eq!(pred("tcp.port ~= 80"), any_ne);
        assert_eq!(pred("tcp.port ~=80"), any_ne);
        assert_eq!(pred("tcp.port !== 80"), any_ne);
        assert_ne!(pred("tcp.port != 80"), any_ne);
        // `~` alone is still `matches`.
        assert!(parse("tcp.payload ~ \"get\"").is_ok());
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

    /// Every 16-bit value, every operator, masks and values of every shape: the ranges hold
    /// exactly the values a direct `(v & mask) OP value` selects.
    #[test]
    fn masked_values_are_the_brute_force_answer() {
        let ops = [Op::Eq, Op::AnyNe, Op::Lt, Op::Le, Op::Gt, Op::Ge];
        let masks = [0u128, 1, 0x12, 0x8000, 0xfc, 0x0f0f, 0xffff, 0x5555, 0x8001];
        let values = [0u128, 1, 2, 0x10, 0x12, 0x80, 0x0f00, 0x7fff, 0xffff];
        for mask in masks {
            for op in ops {
                for value in values {
                    let expect: Vec<bool> = (0..=0xffffu128)
                        .map(|v| {
                            let x = v & mask;
                            match op {
                                Op::Eq => x == value,
                                Op::AnyNe => x != value,
                                Op::Lt => x < value,
                                Op::Le => x <= value,
                                Op::Gt => x > value,
                                Op::Ge => x >= value,
                                _ => unreachable!(),
                            }
                        })
                        .collect();
                    let runs = (0..expect.len()).filter(|&v| expect[v] && (v == 0 || !expect[v - 1])).count();
                    let Some(set) = masked_values(0xffff, mask, op, value) else {
                        assert!(runs > MAX_MASKED_RANGES, "{mask:#x} {op:?} {value:#x}: refused with {runs} ranges");
                        continue;
                    };
                    assert_eq!(set.ranges().len(), runs, "{mask:#x} {op:?} {value:#x}");
                    for (v, expect) in expect.into_iter().enumerate() {
                        assert_eq!(set.contains(v as u128), expect, "{v:#x} & {mask:#x} {op:?} {value:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn masks_read_like_wireshark_and_refuse_what_no_table_holds() {
        assert!(parse("tcp.flags & 0x12").is_ok());
        assert!(parse("tcp.flags & 0x12 == 0x12 and ip.dsfield & 0xfc != 0").is_ok());
        assert!(parse("ip.src & 255.255.0.0 == 10.1.0.0").is_ok());
        assert!(err("tcp.seq & 1").contains("more than 16384 separate ranges"));
        // A value no masked value can take: nothing, found without walking 2^128 values.
        assert!(masked_values(u128::MAX, 5, Op::Eq, 2).is_some_and(|s| s.is_empty()));
        // 2^125 separate ranges: refused, after a bounded walk.
        assert_eq!(masked_values(u128::MAX, 5, Op::Lt, 2), None);
        assert!(err("ipv6.src & ffff:ffff:: == 2001:db8::").contains("compare it with a network"));
        assert!(err("tcp.port & 10.0.0.0/8").contains("valid number"));
        assert!(err("tcp & 1").contains("is a protocol"));
        assert!(err("tcp.flags.syn & 1").contains("cannot be masked"));
    }

    #[test]
    fn mac_addresses_read_as_wiresharks_byte_strings() {
        let mac = |form: &str| match parse(&format!("eth.src == {form}")) {
            Ok(Expr::Test(Test { pred: Pred::Any(set), .. })) => set.ranges().first().map(|r| r.0),
            _ => None,
        };
        for form in [
            "02:00:5e:10:00:01",
            "02-00-5e-10-00-01",
            "0200.5e10.0001",
            "02005e100001",
            "02.00.5e.10.00.01",
            "2.0.5e.10.0.1",
        ] {
            assert_eq!(mac(form), Some(0x0200_5e10_0001), "{form}");
        }
        for bad in ["2:0:0:0:0:1", "02:00-5e:10:00:01", "zz", "02:00:5e:10:00:01."] {
            assert_eq!(mac(bad), None, "{bad}");
        }
        assert!(err("eth.src == 02:00:00:00:00:01:02").contains("too many bytes"));
        assert!(err("eth.src == 0200.5e10").contains("too few bytes"));
        assert!(err("eth.src == zz").contains("not a valid Ethernet address"));
    }

    #[test]
    fn integers_read_like_wireshark() {
        assert_eq!(parse_uint("0x50"), Ok(80));
        assert_eq!(parse_uint("010"), Ok(8));
        assert_eq!(parse_uint("0"), Ok(0));
        assert_eq!(parse_uint("0b1010000"), Ok(80));
        assert_eq!(parse_uint("0B"), Ok(0));
        assert_eq!(parse_uint("1e3"), Err(NotANumber::Invalid));
        assert_eq!(parse_uint("0b2"), Err(NotANumber::Invalid));
        assert_eq!(parse_uint("0x"), Err(NotANumber::Invalid));
        assert_eq!(parse_uint("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_uint("18446744073709551616"), Err(NotANumber::Overflow));
        assert_eq!(parse_uint(&format!("0b{}", "1".repeat(65))), Err(NotANumber::Overflow));
    }

    #[test]
    fn ipv4_networks_cover_their_hosts() {
        let Expr::Test(t) = parse("ip.src == 10.0.0.0/8").unwrap() else { panic!() };
        let Pred::Any(set) = t.pred else { panic!() };
        let v4 = |a: u32| u128::from(a) << 96;
        assert!(set.contains(v4(0x0a00_0000)) && set.contains(v4(0x0aff_ffff)));
        assert!(!set.contains(v4(0x0b00_0000)) && !set.contains(v4(0x09ff_ffff)));
        let Expr::Test(t) = parse("ip.src == 10.1.2.3").unwrap() else { panic!() };
        assert_eq!(t.pred, Pred::Any(IntervalSet::range(v4(0x0a01_0203), v4(0x0a01_0203) | ((1 << 96) - 1))));
    }

    #[test]
    fn not_equal_is_all_occurrences_differ() {
        let Expr::Test(t) = parse("tcp.port != 80").unwrap() else { panic!() };
        assert_eq!(t.pred, Pred::All(IntervalSet::single(80).complement(65535)));
    }
}
