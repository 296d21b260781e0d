//! Masks (`tcp.flags & 0x12`, `tcp.flags & 0x12 == 0x02`): the field's values whose masked
//! bits satisfy the comparison, as ranges of its own values, and the bounds on how many
//! ranges one mask and one rule's masks may select.

use super::lex::Op;
use super::values::{Value, domain_max, literal, parse_uint};
use super::{ParseError, Parser, Tok};
use crate::ast::{Pred, Span};
use crate::field::{self, Dim, FieldDef, Slot, Ty};
use crate::set::IntervalSet;

/// Upper bound on the ranges a masked comparison may select (a rule's boxes are bounded
/// alike, [`crate::compile::MAX_BOXES_PER_RULE`]).
pub const MAX_MASKED_RANGES: usize = crate::compile::MAX_BOXES_PER_RULE;

/// Upper bound on the ranges all the masks of one rule select together: a mask is twenty
/// characters and may be 16,384 ranges, and a rule of a few hundred masks took minutes and
/// gigabytes to compile (each expansion step clones and intersects such sets).
pub const MAX_MASKED_RANGES_PER_RULE: usize = 4 * MAX_MASKED_RANGES;

/// Upper bound on the ranges the masks of all the rules parsed with one configuration's lists
/// select together (as many as its rule tables may hold boxes): every rule is parsed before
/// any is compiled, and each keeps its sets, so that 10,000 rules of one twenty-character
/// mask each (half a megabyte of text) held 5 GB, and a file of them at its bound would
/// have been minutes of work.
pub const MAX_MASKED_RANGES_PER_CONFIG: usize = 16 * MAX_MASKED_RANGES_PER_RULE;

impl<'a> Parser<'a, '_> {
    /// `field & mask` (some occurrence has a bit of the mask set) or `field & mask OP value`
    /// (Wireshark 4.0): the field's values whose masked bits satisfy the comparison, as
    /// ranges of the field's own values, so that the compiler sees an ordinary value set.
    pub(super) fn masked(&mut self, field: &FieldDef, name_span: Span) -> Result<(Pred, usize), ParseError> {
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
        // The walk stops at what the configuration's masks may still select, so that masks
        // past its bound, refused, cost no more than the bound.
        let limit = MAX_MASKED_RANGES.min(self.lists.masked_ranges_left());
        let too_many = || {
            let message = if limit < MAX_MASKED_RANGES {
                format!(
                    "the masks of the rules select more than {MAX_MASKED_RANGES_PER_CONFIG} separate ranges of \
                     values in all, more than one configuration is compiled from; test fewer or higher bits"
                )
            } else {
                format!(
                    "this mask selects the field's values in more than {MAX_MASKED_RANGES} separate ranges, \
                     more than a rule table holds; test fewer or higher bits, or a field of their own"
                )
            };
            ParseError::at(whole, message)
        };
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
                _ if one_value => masked_values(max, mask, op, value, limit),
                Op::Eq | Op::AllEq => masked_values(max, mask, Op::Ge, value, limit)
                    .zip(masked_values(max, mask, Op::Le, value_hi, limit))
                    .map(|(from, to)| from.intersect(&to)),
                Op::Ne | Op::AnyNe => masked_values(max, mask, Op::Lt, value, limit)
                    .zip(masked_values(max, mask, Op::Gt, value_hi, limit))
                    .map(|(below, above)| below.union(&above)),
                Op::Lt | Op::Ge => masked_values(max, mask, op, value, limit),
                Op::Le | Op::Gt => masked_values(max, mask, op, value_hi, limit),
            };
            answer.filter(|set| set.ranges().len() <= limit).ok_or_else(too_many)
        };
        let answer = match op {
            Op::Eq | Op::AnyNe | Op::Lt | Op::Le | Op::Gt | Op::Ge => holds(op).map(Pred::Any),
            // `!=` is "no occurrence's masked value equals", `===` "every one does".
            Op::Ne => holds(Op::AnyNe).map(Pred::All),
            Op::AllEq => holds(Op::Eq).map(Pred::All),
        };
        let pred = match answer {
            Ok(pred) => self.quantified(pred),
            Err(e) => {
                // Refused, it cost a walk to `limit` ranges: spent as well, so that a file of
                // refused masks costs no more than one of accepted ones.
                self.lists.spend_masked_ranges(limit);
                return Err(e);
            }
        };
        // At most `limit`, so within what the configuration has left.
        let ranges = match &pred {
            Pred::Any(set) | Pred::All(set) => set.ranges().len(),
            Pred::Present => 0,
        };
        self.lists.spend_masked_ranges(ranges);
        self.masked_ranges += ranges;
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
}

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
/// `None` when they are more than `limit` ranges (at most [`MAX_MASKED_RANGES`]).
///
/// A walk down the bits from the top: below a node whose higher bits are fixed, the masked
/// value lies between the fixed bits' and those plus every mask bit left; when the comparison
/// holds (or fails) for that whole span the node's values are one range in (or out), and only
/// undecided nodes split. The ranges that come out are as many as the answer has, so the walk
/// stops as soon as they are too many; the nodes it visits are bounded too, for masks whose
/// span covers values no masked value can take.
fn masked_values(max: u128, mask: u128, op: Op, value: u128, limit: usize) -> Option<IntervalSet> {
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
        if steps > 64 * limit {
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
                if out.len() > limit {
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

#[cfg(test)]
mod tests {
    use super::super::tests::err;
    use super::*;
    use crate::parse::parse;

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

    /// The masks of all the rules parsed with a configuration's lists are bounded together:
    /// rules each within their own bound are refused from the mask that takes the whole past
    /// the configuration's, and past it a mask is refused before its walk (10,000 rules of one
    /// mask each kept gigabytes of sets until every rule was parsed).
    #[test]
    fn the_masks_of_one_configuration_are_bounded_together() {
        let rule = ["tcp.srcport & 2 == 0"; 4].join(" and "); // 65,536 ranges: a rule's bound
        let mut lists = crate::list::Registry::default();
        for _ in 0..MAX_MASKED_RANGES_PER_CONFIG / MAX_MASKED_RANGES_PER_RULE {
            assert!(crate::parse::parse_with(&rule, &mut lists).is_ok());
        }
        assert_eq!(crate::list::Lists::masked_ranges_left(&lists), 0);
        let e = crate::parse::parse_with("tcp and tcp.flags & 0x12", &mut lists).unwrap_err();
        let bound = format!("the masks of the rules select more than {MAX_MASKED_RANGES_PER_CONFIG} separate ranges");
        assert!(e.message.contains(&bound), "{}", e.message);
        assert_eq!(e.span.map(|s| (s.start, s.end)), Some((8, 24)), "at the mask that crosses the bound");
        // A mask of no range at all is refused as well (its walk is not taken), and a mask too
        // large for a rule is refused as the configuration's too.
        for refused in ["tcp.flags & 0x12 == 0x100", "tcp.seq & 1"] {
            let e = crate::parse::parse_with(refused, &mut lists).unwrap_err();
            assert!(e.message.contains(&bound), "{refused}: {}", e.message);
        }
        // Without a configuration's lists an expression is bounded as a rule only; the rules
        // of a configuration read again for their lists are bounded together again.
        assert!(parse(&rule).is_ok());
        let listed = format!("{rule} and ip.src in $l");
        assert!((0..20).all(|_| crate::list::list_uses(&listed).is_ok()));
        let mut read = 0;
        assert!((0..16).all(|_| crate::list::list_uses_within(&listed, &mut read).is_ok()));
        assert!(crate::list::list_uses_within("tcp.flags & 0x12 and ip.src in $l", &mut read).is_err());
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
                    let Some(set) = masked_values(0xffff, mask, op, value, MAX_MASKED_RANGES) else {
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
        assert!(masked_values(u128::MAX, 5, Op::Eq, 2, MAX_MASKED_RANGES).is_some_and(|s| s.is_empty()));
        // 2^125 separate ranges: refused, after a bounded walk.
        assert_eq!(masked_values(u128::MAX, 5, Op::Lt, 2, MAX_MASKED_RANGES), None);
        assert!(err("ipv6.src & ffff:ffff:: == 2001:db8::").contains("compare it with a network"));
        assert!(err("tcp.port & 10.0.0.0/8").contains("valid number"));
        assert!(err("tcp & 1").contains("is a protocol"));
        assert!(err("tcp.flags.syn & 1").contains("cannot be masked"));
    }
}
