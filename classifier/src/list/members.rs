//! A list's members as configuration and feeds write them (addresses, CIDR networks, numbers,
//! ranges) read into a [`List`], and why one could not be read ([`MemberError`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::field::Ty;
use crate::set::IntervalSet;

/// A list's members, by the kind of field they can be compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct List {
    /// IPv4 addresses and networks, as `ip.src` holds them (`a << 96`).
    pub ipv4: IntervalSet,
    /// IPv6 addresses and networks.
    pub ipv6: IntervalSet,
    /// Numbers and ranges (ports, protocol numbers, ...).
    pub numbers: IntervalSet,
}

/// Why a list member could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Not an address, a network, a number or a range.
    #[error("\"{0}\" is not an IPv4 or IPv6 address or network, a number, or a range a..b")]
    Unreadable(String),
    /// A network whose host bits are set (`10.0.0.1/8`), which usually means a typo.
    #[error("\"{0}\" has host bits set beyond its prefix length; write the network address")]
    HostBits(String),
    /// A prefix length with a leading zero (`/010`), which a rule reads as octal (as tshark
    /// does) and configuration and feeds as decimal: refused rather than guessed.
    #[error(
        "\"{0}\": a prefix length with a leading zero is read by a rule as tshark reads it (octal, or refused), by configuration as decimal; write it without the zero"
    )]
    LeadingZero(String),
    /// A range whose start is past its end (`9..1`), which holds nothing: a typo, as a
    /// network with host bits is.
    #[error("\"{0}\" is a range whose start is past its end; write it low..high")]
    Reversed(String),
    /// Addresses and numbers in one list.
    #[error("\"{0}\": a list holds addresses or numbers, not both")]
    Mixed(String),
}

impl List {
    /// Reads the members (each an address, a CIDR network, a number, or a range `a..b` of
    /// numbers; numbers decimal or `0x` hexadecimal) into a list.
    pub fn parse<'a>(members: impl IntoIterator<Item = &'a str>) -> Result<List, (usize, MemberError)> {
        let (mut v4, mut v6, mut numbers) = (Vec::new(), Vec::new(), Vec::new());
        for (i, member) in members.into_iter().enumerate() {
            let member = member.trim();
            match read_member(member).map_err(|e| (i, e))? {
                Member::V4(lo, hi) => v4.push((lo, hi)),
                Member::V6(lo, hi) => v6.push((lo, hi)),
                Member::Number(lo, hi) => numbers.push((lo, hi)),
            }
            let has_addresses = !v4.is_empty() || !v6.is_empty();
            if has_addresses && !numbers.is_empty() {
                return Err((i, MemberError::Mixed(shown(member))));
            }
        }
        Ok(List {
            ipv4: IntervalSet::from_ranges(v4),
            ipv6: IntervalSet::from_ranges(v6),
            numbers: IntervalSet::from_ranges(numbers),
        })
    }

    /// Why [`List::parse`] refuses `members`, member by member: every one that cannot be
    /// read, and the first that mixes numbers with addresses (the list's kind is then in
    /// doubt: the rest would each say the same). Its first is the one `parse` returns; a
    /// configuration says them all at once, so that a feed with several bad lines is not
    /// fixed one reload at a time. At most `most` are kept (a feed can hold millions of bad
    /// lines); the second value counts them all.
    pub fn refusals<'a>(members: impl IntoIterator<Item = &'a str>, most: usize) -> (Vec<(usize, MemberError)>, usize) {
        let (mut kept, mut count) = (Vec::new(), 0);
        let (mut addresses, mut numbers, mut mixed_said) = (false, false, false);
        for (i, member) in members.into_iter().enumerate() {
            let member = member.trim();
            let refused = match read_member(member) {
                Err(e) => Some(e),
                Ok(m) => {
                    match m {
                        Member::Number(..) => numbers = true,
                        Member::V4(..) | Member::V6(..) => addresses = true,
                    }
                    let mixes = addresses && numbers && !mixed_said;
                    mixed_said |= mixes;
                    mixes.then(|| MemberError::Mixed(shown(member)))
                }
            };
            if let Some(e) = refused {
                count += 1;
                if kept.len() < most {
                    kept.push((i, e));
                }
            }
        }
        (kept, count)
    }

    /// The members a field of type `ty` can equal.
    pub(super) fn members_for(&self, ty: Ty) -> Option<&IntervalSet> {
        match ty {
            Ty::Ipv4 => Some(&self.ipv4),
            Ty::Ipv6 => Some(&self.ipv6),
            Ty::Uint { .. } | Ty::Bool => Some(&self.numbers),
            Ty::Ether | Ty::Protocol => None,
        }
    }

    /// Whether every member of this list is one of `other`'s.
    pub fn within(&self, other: &List) -> bool {
        self.ipv4.is_subset(&other.ipv4) && self.ipv6.is_subset(&other.ipv6) && self.numbers.is_subset(&other.numbers)
    }

    /// Number of merged ranges (a measure of its size).
    pub fn len(&self) -> usize {
        self.ipv4.ranges().len() + self.ipv6.ranges().len() + self.numbers.ranges().len()
    }

    /// True when it has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Member {
    V4(u128, u128),
    V6(u128, u128),
    Number(u128, u128),
}

/// A member as an error quotes it: at most 64 characters, so that one bad line of a list
/// file of megabytes does not become a log line of megabytes.
fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn read_member(text: &str) -> Result<Member, MemberError> {
    let unreadable = || MemberError::Unreadable(shown(text));
    let (addr, bits) = match text.split_once('/') {
        Some((_, b)) if b.len() > 1 && b.starts_with('0') => return Err(MemberError::LeadingZero(shown(text))),
        Some((_, b)) if !b.bytes().all(|c| c.is_ascii_digit()) => return Err(unreadable()),
        Some((a, b)) => (a, Some(b.parse::<u32>().map_err(|_| unreadable())?)),
        None => (text, None),
    };
    // Both families live in the 128-bit space (IPv4 in the top 32 bits), so a prefix
    // length is the same number of leading bits for both.
    let network = |value: u128, width: u32| -> Result<(u128, u128), MemberError> {
        let bits = bits.unwrap_or(width);
        if bits > width {
            return Err(unreadable());
        }
        let host = u128::MAX.checked_shr(bits).unwrap_or(0);
        if value & host != 0 {
            return Err(MemberError::HostBits(shown(text)));
        }
        Ok((value, value | host))
    };
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let (lo, hi) = network(u128::from(u32::from(a)) << 96, 32)?;
        return Ok(Member::V4(lo, hi));
    }
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        let (lo, hi) = network(u128::from(a), 128)?;
        return Ok(Member::V6(lo, hi));
    }
    if bits.is_some() {
        return Err(unreadable());
    }
    // As inline (tshark's reading): `0x` hexadecimal, `0b` binary, a leading zero octal (`010` is 8).
    let number = |s: &str| crate::parse::parse_uint(s).ok().and_then(|n| u32::try_from(n).ok());
    match text.split_once("..") {
        Some((lo, hi)) => match (number(lo), number(hi)) {
            (Some(lo), Some(hi)) if lo <= hi => Ok(Member::Number(lo.into(), hi.into())),
            (Some(_), Some(_)) => Err(MemberError::Reversed(shown(text))),
            _ => Err(unreadable()),
        },
        None => number(text).map(|n| Member::Number(n.into(), n.into())).ok_or_else(unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::list;
    use super::*;

    #[test]
    fn members_are_addresses_networks_numbers_or_ranges() {
        let l = list(&["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1"]);
        assert_eq!((l.ipv4.ranges().len(), l.ipv6.ranges().len(), l.numbers.ranges().len()), (2, 2, 0));
        assert!(l.ipv4.contains(u128::from(0x0a01_0203u32) << 96));
        let n = list(&["80", "0x1bb", "8000..8100"]);
        assert!(n.numbers.contains(443) && n.numbers.contains(8050) && !n.numbers.contains(8101));
        assert_eq!(List::parse(["10.0.0.1/8"]), Err((0, MemberError::HostBits("10.0.0.1/8".into()))));
        assert_eq!(List::parse(["80", "10.0.0.1"]), Err((1, MemberError::Mixed("10.0.0.1".into()))));
        let long = "1".repeat(10_000);
        let Err((0, MemberError::Unreadable(quoted))) = List::parse([long.as_str()]) else { panic!("refused") };
        assert_eq!(quoted, format!("{}…", "1".repeat(64)));
        assert_eq!(List::parse(["1", "9..1"]), Err((1, MemberError::Reversed("9..1".into()))));
        assert_eq!(List::parse(["10.0.0.0/010"]), Err((0, MemberError::LeadingZero("10.0.0.0/010".into()))));
        assert!(List::parse(["0.0.0.0/0", "::/0"]).is_ok(), "a lone zero is no leading one");
        assert_eq!(List::refusals(["10.0.0.0/8", "::1"], 10), (vec![], 0));
        for bad in ["10.0.0.0/33", "80/8", "9..x", "eighty", "2001:db8::/129", "", "10.0.0.0/+8", "10.0.0.0/"] {
            assert!(matches!(List::parse([bad]), Err((0, MemberError::Unreadable(_)))), "{bad}");
        }
    }

    /// Every bad member is said, each once: read one at a time, each of these lists' members
    /// is refused alone exactly where `refusals` says, and mixing is said once, at the first
    /// member of the other kind (a list of ten addresses after one number is one mistake).
    #[test]
    fn refusals_name_every_bad_member_and_mixing_once() {
        let members = ["x", "192.0.2.0/24", "10.0.0.1/8", "80", "9..1", "10.0.0.0/010", "443", "2001:db8::/129"];
        let (said, count) = List::refusals(members, 100);
        let at: Vec<usize> = said.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [0, 2, 3, 4, 5, 7], "{said:?}");
        assert_eq!(count, 6);
        // Alone, each member refused for its own reading is refused by parse; the mixing
        // one (80, a number after an address) is not.
        for (i, member) in members.iter().enumerate() {
            let alone = List::parse([*member]).err().map(|(_, e)| e);
            let own = said.iter().find(|(j, e)| *j == i && !matches!(e, MemberError::Mixed(_)));
            assert_eq!(alone, own.map(|(_, e)| e.clone()), "{member}");
        }
        assert_eq!(said[2], (3, MemberError::Mixed("80".into())));
        // The first refusal is the one parse stops at.
        for list in [&members[..], &members[1..], &members[3..], &["80", "10.0.0.0", "::1"][..]] {
            assert_eq!(List::parse(list.iter().copied()).err(), List::refusals(list.iter().copied(), 1).0.pop());
        }
        // Kept up to the bound, all counted.
        let many = vec!["eighty"; 1000];
        let (kept, count) = List::refusals(many.iter().copied(), 100);
        assert_eq!((kept.len(), count), (100, 1000));
    }
}
