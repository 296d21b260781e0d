//! Tests of bytes: payloads, protocols and address fields read as bytes, whole or sliced
//! (`frame[12:2]`), compared, searched (`contains`, `matches`), masked, in a set of byte
//! strings; and `len()` of them.

use super::lex::Op;
use super::values::{char_not_an_address, colon_literal, field_comparison, literal, relop};
use super::{ParseError, Parser, Tok};
use crate::ast::{Expr, Pred, Span};
use crate::bytes::{self, ByteOp, ByteTest, CmpOp, Layer, Slice};
use crate::field::{FieldDef, Ty};
use crate::names;
use crate::set::IntervalSet;

/// Members of a set of byte strings (`udp.payload in {"GET", "POST"}`): each is a byte
/// test, checked one by one for a packet the rule's other tests select.
const MAX_BYTE_SET_MEMBERS: usize = 256;

impl<'a> Parser<'a, '_> {
    /// A test on a byte field: `udp.payload[0:4] == 00:00:00:00`, `frame contains "GET"`,
    /// `tcp.payload matches "^get "`, or a bare `udp.payload` / `frame[100:]` (present).
    pub(super) fn byte_test(&mut self, layer: Layer, name_span: Span) -> Result<Expr, ParseError> {
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
                // A mask is hex bytes, never a string or a character constant (tshark 4.0
                // refuses them, as it does after a scalar field's `&`).
                let at = self.pos + usize::from(self.peek() == Some(Tok::Plus));
                match self.toks.get(at).copied() {
                    Some((Tok::Str(text, _), span)) => {
                        return Err(ParseError::at(span, format!("\"{text}\" is not a valid arithmetic operand.")));
                    }
                    Some((Tok::Char(_), span)) => {
                        let written = &self.text[span.start..span.end];
                        return Err(ParseError::at(span, format!("{written} is not a valid arithmetic operand.")));
                    }
                    _ => {}
                }
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
                // What a MAC address contains is read as a MAC address is, at most six bytes.
                Some(v) if self.whole_mac && v.len() > 6 => Err(ParseError::at(
                    span,
                    format!("\"{w}\" contains too many bytes to be a valid Ethernet address."),
                )),
                Some(v) => Ok((v, span)),
                // tshark reads a word that names a field as that field: bytes and MAC addresses
                // are comparable with these, no other type is.
                None => Err(field_comparison("a byte field", Ty::Ether, w, span)
                    .unwrap_or_else(|| ParseError::at(span, format!("\"{w}\" is not a valid byte string.")))),
            },
            (Tok::Char(c), span) if self.whole_mac => {
                Err(char_not_an_address(c, "Ethernet or other MAC address", span))
            }
            (Tok::Char(c), span) => Ok((vec![c], span)),
            (_, span) => Err(self.unexpected(span)),
        }
    }

    /// `len(field) OP number`, `len` already read.
    pub(super) fn len_test(&mut self, len_span: Span) -> Result<Expr, ParseError> {
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
        // Its own operator's, not the last byte test's (`ip.addr[0] != 0a and len(ip.addr) == 4`).
        self.every_occurrence = matches!(op, Op::Ne | Op::AllEq);
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
        // A number ends in a digit, or a hex one (`0x0c : 2`).
        let number_then_separator = ends(a, |c| c.is_ascii_hexdigit()) && starts(b, |c| c == ':' || c == '-');
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

#[cfg(test)]
mod tests {
    use super::super::tests::err;
    use crate::parse::parse;

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

    /// A mask of bytes is hex bytes, and what a whole MAC address contains is at most six
    /// bytes and no character constant: tshark 4.0 refuses the rest, in these words.
    #[test]
    fn masks_and_mac_searches_take_what_tshark_takes() {
        for (expr, message) in [
            ("frame[0] & 'R'", "'R' is not a valid arithmetic operand."),
            ("frame[0] & +'R'", "'R' is not a valid arithmetic operand."),
            ("udp.payload & \"a\"", "\"a\" is not a valid arithmetic operand."),
            (
                "eth.src contains 'a'",
                "Character constant 'a' (0x61) cannot be converted to Ethernet or other MAC address.",
            ),
            (
                "eth.dst contains 01:00:5e:00:00:01:02",
                "\"01:00:5e:00:00:01:02\" contains too many bytes to be a valid Ethernet address.",
            ),
        ] {
            assert!(err(expr).starts_with(message), "{expr}: {}", err(expr));
        }
        for expr in ["frame[0] & 02 == 'R'", "eth.src[0:1] contains 'a'", "eth.dst contains 01:00:5e:00:00:01"] {
            assert!(parse(expr).is_ok(), "{expr}");
        }
        // `R"..."` is a raw string, as `r"..."` is.
        assert!(parse("tcp.payload contains R\"GET\"").is_ok());
    }
}
