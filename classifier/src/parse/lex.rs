//! The lexer: an expression's text as tokens (words, operators and their word forms,
//! punctuation, quoted strings, character constants, `$` list names), each with its span.

use super::ParseError;
use crate::ast::Span;
use crate::bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tok<'a> {
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
pub(super) enum Op {
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

pub(super) fn lex(text: &str) -> Result<Vec<(Tok<'_>, Span)>, ParseError> {
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
        } else if c == b'"' || rest.starts_with(b"r\"") || rest.starts_with(b"R\"") {
            // `r"..."` and `R"..."` are raw, as in tshark 4.0.
            let raw = c != b'"';
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

#[cfg(test)]
mod tests {
    use super::super::tests::err;
    use crate::ast::{Expr, Pred};
    use crate::parse::parse;
    use crate::set::IntervalSet;

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
}
