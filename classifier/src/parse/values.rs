//! The values written after a field (numbers, IPv4 and IPv6 addresses and networks, MAC
//! addresses and byte strings, value names, character constants) read as the field's values,
//! and the values a comparison operator selects.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ParseError;
use super::lex::Op;
use crate::ast::{Pred, Span};
use crate::bytes;
use crate::field::{self, FieldDef, Ty};
use crate::names;
use crate::set::IntervalSet;

pub(super) fn domain_max(ty: Ty) -> u128 {
    match ty {
        Ty::Ipv4 | Ty::Ipv6 => u128::MAX,
        Ty::Uint { max } => max.into(),
        Ty::Bool => 1,
        Ty::Ether => (1 << 48) - 1,
        Ty::Protocol => 0,
    }
}

pub(super) fn relop(field: &FieldDef, op: Op, values: IntervalSet, span: Span) -> Result<Pred, ParseError> {
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
pub(super) enum Value<'a> {
    Word(&'a str),
    /// A quoted string's text: only ever the name of a value.
    Str(&'a str),
    Char(u8, &'a str),
}

/// Reads a literal for `field`: one value, or for addresses a CIDR network.
pub(super) fn literal(field: &FieldDef, value: Value, span: Span) -> Result<IntervalSet, ParseError> {
    let word = match value {
        Value::Word(word) => word,
        Value::Char(c, written) => return char_literal(field, c, written, span),
        Value::Str(text) => return string_value(field, text, span),
    };
    if let Some(refusal) = field_comparison(field.name, field.ty, word, span) {
        return Err(refusal);
    }
    match field.ty {
        Ty::Uint { max } => {
            let value = match parse_uint(word) {
                Ok(value) => value,
                // tshark reads a word that names a protocol as that protocol, which no number
                // field is comparable with (the fields were taken above).
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

/// `name` (of type `ty`) compared with `word`, when the word names another field (a
/// protocol's name aside, left to the caller), which tshark reads it as: refused as tshark
/// refuses it where the types differ, and as a comparison transitd does not make where
/// tshark would make it (docs/rules.md, Differences 4). A byte field's bytes compare with a
/// MAC address's, as tshark has it, so either is of type `Ty::Ether` here. `None` when the
/// word names no field.
pub(super) fn field_comparison(name: &str, ty: Ty, word: &str, span: Span) -> Option<ParseError> {
    let other_ty = match field::lookup(word) {
        Some(other) if other.ty != Ty::Protocol => other.ty,
        _ if bytes::Layer::lookup(word).is_some_and(|layer| !layer.is_protocol()) => Ty::Ether,
        _ => return None,
    };
    Some(if std::mem::discriminant(&ty) == std::mem::discriminant(&other_ty) {
        ParseError::at(span, format!("comparing {name} with another field ({word}) is not supported"))
    } else {
        ParseError::at(span, format!("{name} and {word} are not of compatible types."))
    })
}

/// A quoted string compared with `field` (or, for a flag, a word that is no number): the
/// name of one of its values, as tshark finds it, the only strings a number or flag takes.
fn string_value(field: &FieldDef, text: &str, span: Span) -> Result<IntervalSet, ParseError> {
    let what = match field.ty {
        Ty::Bool => {
            let (set, unset) = names::flag_names(field.name);
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
    Err(char_not_an_address(c, address, span))
}

/// tshark's refusal of character constant `c` where an address of kind `address` is wanted.
pub(super) fn char_not_an_address(c: u8, address: &str, span: Span) -> ParseError {
    let shown = if (0x20..0x7f).contains(&c) { format!("'{}' (0x{c:02x})", char::from(c)) } else { format!("0x{c:x}") };
    ParseError::at(span, format!("Character constant {shown} cannot be converted to {address}."))
}

/// The hex bytes after tshark 4.0's literal marker, a leading `:` (`:02`, `:0200`,
/// `:ff:ff:ff:ff:ff:ff`), which says a word is a byte string and not a field or a name: hex
/// digits, or two-digit groups joined by one separator (`:`, `-` or `.`), as its scanner
/// takes them. `None` for any other word (`::1` is an IPv6 address).
pub(super) fn colon_literal(word: &str) -> Option<&str> {
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
    pub(super) fn message(self, word: &str) -> String {
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
    use super::super::tests::err;
    use super::*;
    use crate::ast::{Expr, Test};
    use crate::parse::parse;

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

    /// A scalar field's value and a byte field's that name another field are refused in the
    /// same words (tshark's side of it: dataplane/tests/match_cli.rs).
    #[test]
    fn another_field_compared_is_refused_in_the_same_words_on_either_path() {
        for (expr, refusal) in [
            ("ip.src == ip.dst", "comparing ip.src with another field (ip.dst) is not supported"),
            ("ip.src == tcp.port", "ip.src and tcp.port are not of compatible types."),
            ("eth.src == udp.payload", "comparing eth.src with another field (udp.payload) is not supported"),
            ("udp.payload == eth.src", "comparing a byte field with another field (eth.src) is not supported"),
            ("udp.payload == tcp.payload", "comparing a byte field with another field (tcp.payload) is not supported"),
            ("udp.payload == tcp.port", "a byte field and tcp.port are not of compatible types."),
        ] {
            assert_eq!(err(expr).lines().next(), Some(refusal), "{expr}");
        }
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
