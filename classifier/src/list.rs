//! Named lists (`ip.src in $bad_actors`): their members, and the membership slots that make a
//! list of any size one key slot for the rule tables.
//!
//! Written into a rule, 100,000 prefixes would be 100,000 intervals of one field, which the
//! compiler spreads into as many boxes per rule that uses them. A list instead is looked up
//! once per packet, before classification, for each (field occurrence, list) pair some rule
//! uses ([`Membership::fill`]): a lookup in a trie of the list's merged ranges, whose answer
//! (1 in the list, 0 not, [`ABSENT`] where the packet has no such field) goes into a
//! membership slot ([`Dim::Member0`] ...). The rule then tests that slot like a flag, so its
//! boxes, and the table's size and speed, do not depend on the list's length.
//! [`Registry`] hands out the slots while a configuration's rules are parsed.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::bytes::{MAX_DISTINCT_PATTERNS, MAX_PATTERN_BYTES, Pattern};
use crate::field::{ABSENT, Dim, FieldDef, Guard, Key, Occurrence, Slot, Ty};
use crate::set::{IntervalSet, in_ranges};

/// The membership slots, in order; at most this many (occurrence, list) pairs per
/// configuration.
pub const MEMBER_SLOTS: [Dim; 8] =
    [Dim::Member0, Dim::Member1, Dim::Member2, Dim::Member3, Dim::Member4, Dim::Member5, Dim::Member6, Dim::Member7];

macro_rules! member_fields {
    ($($name:literal $dim:ident),*) => {
        /// The fields the parser writes a list test as: one flag per membership slot, 1 when
        /// the occurrence is in the list.
        pub static MEMBER_FIELDS: [FieldDef; 8] = [$(FieldDef {
            name: $name,
            ty: Ty::Bool,
            occurrences: &[Occurrence { guard: Guard::Always, slot: Slot::Narrow(Dim::$dim) }],
            alias_of: None,
        }),*];
    };
}

member_fields!(
    "$member0" Member0, "$member1" Member1, "$member2" Member2, "$member3" Member3,
    "$member4" Member4, "$member5" Member5, "$member6" Member6, "$member7" Member7
);

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

    /// The members a field of type `ty` can equal.
    fn members_for(&self, ty: Ty) -> Option<&IntervalSet> {
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

/// What the parser asks of the configuration's lists.
pub trait Lists {
    /// The slot that will hold whether occurrence `occurrence` of `field` is in the list
    /// `name`, or why the list cannot be used there.
    fn slot(&mut self, field: &'static FieldDef, occurrence: usize, name: &str) -> Result<Dim, String>;

    /// The compiled `matches` pattern of `pattern` (a string literal's bytes). A
    /// configuration's registry shares one compilation among the rules that write the same
    /// pattern and bounds how many distinct ones there are.
    fn pattern(&mut self, pattern: &[u8]) -> Result<Pattern, String> {
        Pattern::new(pattern)
    }
}

/// How an expression tests a list it names: whether a packet can match through being in
/// it (`ip.src in $l` under an even number of `not`s), through being out of it (an odd
/// number: `not ip.src in $l`), or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListUse {
    /// Members match through it: members added widen what the expression covers.
    pub members: bool,
    /// Non-members match through it: members taken away widen what it covers.
    pub non_members: bool,
}

impl ListUse {
    /// Whether the list going from `then` to `now` lets the expression match a packet it
    /// could not before: a member gained where members match, one lost where non-members do.
    pub fn widened_by(&self, then: &List, now: &List) -> bool {
        (self.members && !now.within(then)) || (self.non_members && !then.within(now))
    }
}

/// The lists `text` names, each once in the order first named, with how it tests each; any
/// name is taken (whether the lists exist is the configuration's to check), and `matches`
/// patterns are not compiled (nor refused). Text that names no list (no `$`) names none,
/// whatever else it holds; other text that does not parse is an error.
pub fn list_uses(text: &str) -> Result<Vec<(String, ListUse)>, crate::ParseError> {
    /// Hands out a slot per (field, occurrence, name), remembering the name; `matches`
    /// patterns are not compiled (one empty pattern stands for all: only the lists count).
    struct Named(Vec<(&'static str, usize, String)>, Option<Pattern>);
    impl Lists for Named {
        fn pattern(&mut self, _: &[u8]) -> Result<Pattern, String> {
            match &self.1 {
                Some(p) => Ok(p.clone()),
                None => Ok(self.1.insert(Pattern::new(b"")?).clone()),
            }
        }

        fn slot(&mut self, field: &'static FieldDef, occurrence: usize, name: &str) -> Result<Dim, String> {
            let at = self.0.iter().position(|u| u.0 == field.name && u.1 == occurrence && u.2 == name);
            let i = at.unwrap_or(self.0.len());
            let slot = *MEMBER_SLOTS.get(i).ok_or_else(|| format!("more than {} lists named", MEMBER_SLOTS.len()))?;
            if at.is_none() {
                self.0.push((field.name, occurrence, name.to_string()));
            }
            Ok(slot)
        }
    }
    fn walk(e: &crate::Expr, negated: bool, named: &Named, uses: &mut Vec<(String, ListUse)>) {
        match e {
            crate::Expr::True | crate::Expr::Bytes(_) => {}
            crate::Expr::Or(terms) | crate::Expr::And(terms) => {
                terms.iter().for_each(|t| walk(t, negated, named, uses))
            }
            crate::Expr::Not(inner) => walk(inner, !negated, named, uses),
            crate::Expr::Test(t) => {
                let Some(k) = MEMBER_FIELDS.iter().position(|f| std::ptr::eq(f, t.field)) else { return };
                let Some((_, _, name)) = named.0.get(k) else { return };
                let i = uses.iter().position(|(n, _)| n == name).unwrap_or_else(|| {
                    uses.push((name.clone(), ListUse::default()));
                    uses.len() - 1
                });
                let use_ = &mut uses[i].1;
                if negated { use_.non_members = true } else { use_.members = true }
            }
        }
    }
    if !text.contains('$') {
        return Ok(Vec::new()); // names no list
    }
    let mut named = Named(Vec::new(), None);
    let expr = crate::parse::parse_with(text, &mut named)?;
    let mut uses = Vec::new();
    walk(&expr, false, &named, &mut uses);
    Ok(uses)
}

/// No lists: every `$name` is an error.
pub struct NoLists;

impl Lists for NoLists {
    fn slot(&mut self, _: &'static FieldDef, _: usize, name: &str) -> Result<Dim, String> {
        Err(format!("${name}: no list of that name is configured"))
    }
}

/// One membership slot's question: is this occurrence's value in this list?
#[derive(Clone, Debug)]
struct Probe {
    occurrence: Occurrence,
    members: Arc<Lookup>,
    slot: Dim,
    /// Where a narrow list's 32-bit value is in the key, read straight from there (rather
    /// than as the occurrence's 128-bit value: a fifth of the lookup's cost).
    word: Option<Word>,
}

/// The key's word that holds all a narrow list compares: a narrow slot, or the top word of
/// an IPv4 address (whose lower words are zero).
#[derive(Clone, Copy, Debug)]
struct Word {
    dim: Dim,
    /// A narrow slot, which holds [`ABSENT`] where the packet has no such field (an
    /// address's word may hold any value).
    marks_absence: bool,
}

impl Probe {
    fn new(occurrence: Occurrence, members: Arc<Lookup>, slot: Dim) -> Probe {
        let word = match (&*members, occurrence.slot) {
            (Lookup::Narrow { by: 0, .. }, Slot::Narrow(dim)) => Some(Word { dim, marks_absence: true }),
            (Lookup::Narrow { by, .. }, Slot::Wide { first, words }) if *by == 32 * (u32::from(words) - 1) => {
                Some(Word { dim: first, marks_absence: false })
            }
            _ => None,
        };
        Probe { occurrence, members, slot, word }
    }

    /// Whether the key's occurrence is in the list: `None` where the packet has none.
    #[inline(always)]
    fn member(&self, key: &Key) -> Option<bool> {
        if let (Some(word), Lookup::Narrow { table, .. }) = (self.word, &*self.members) {
            let v = key.get(word.dim);
            let absent = !self.occurrence.guard_holds(key) || (word.marks_absence && v == ABSENT);
            return if absent { None } else { Some(table.contains(v)) };
        }
        self.occurrence.value(key).map(|v| self.members.contains(v))
    }
}

/// A list's ranges laid out for lookups. Measured on 100,000 prefixes (docs/benchmarks.md):
/// a binary search over all the ranges cost about as much as the whole rule table lookup
/// after it; an index of where each /16's ranges start, then a search of those, about 21 ns
/// (two dependent cache misses); the trie with the ranges in its buckets, 11.5 ns.
#[derive(Debug)]
enum Lookup {
    /// Numbers, and IPv4 networks (whose 128-bit ranges are whole blocks of 2^96): 32-bit
    /// values, after a right shift by `by`.
    Narrow { by: u32, table: NarrowTable },
    /// IPv6: an index by the value's top 16 bits narrows the search to the ranges of one
    /// bucket (`first[b]`: the first range that ends at or after bucket `b`'s first value).
    Wide { ranges: Vec<(u128, u128)>, first: Vec<u32> },
}

/// The 32-bit ranges of a list, by size.
#[derive(Debug)]
enum NarrowTable {
    /// Up to [`NarrowTable::FEW`] ranges (start, end), in order: a binary search within a
    /// cache line or a few.
    Few(Vec<(u32, u32)>),
    /// A three-level trie by the value's top 16 bits, then 8, then 8, whose entries hold
    /// their few ranges in place ([`Bucket`]): one cache line's read answers a lookup in a
    /// /16 with up to four ranges (98% of the /16s for 100,000 random prefixes). Lists
    /// cluster (a botnet's addresses in a few provider networks), so a /16 with more
    /// ranges has them in a [`Run`] (up to 16, one cache line), or with more than that in a
    /// node of 256 buckets by the next 8 bits (`nodes`), whose buckets with more than four
    /// ranges are a bitmap of their 256 values (`bitmaps`).
    Trie { top: Box<[Bucket]>, runs: Vec<Run>, nodes: Vec<[Bucket; 256]>, bitmaps: Vec<[u64; 4]> },
}

/// The ranges of a bucket, as (start, end) offsets from the bucket's first value packed into
/// a `u32` (`start << 16 | end`), up to four; unused places hold [`EMPTY`]. A bucket with
/// more holds a marker first and where they are after it. Aligned so that it never
/// straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Bucket([u32; 4]);

/// Up to 16 packed ranges, unused places [`EMPTY`]: one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Run([u32; 16]);

/// A packed range that holds nothing (start 1, end 0).
const EMPTY: u32 = 0x0001_0000;

impl Bucket {
    /// Not a range (start after end): the ranges are in `runs[p[1]]`.
    const RUN: u32 = 0xffff_0000;
    /// Not a range: the ranges are in `nodes[p[1]]`.
    const NODE: u32 = 0xfffe_0000;
    /// Not a range: the values in the list are the bits of `bitmaps[p[1]]`.
    const BITMAP: u32 = 0xfffd_0000;

    /// A bucket holding `ranges` (packed) in place.
    fn inline(ranges: &[u32]) -> Bucket {
        let mut places = [EMPTY; 4];
        places[..ranges.len()].copy_from_slice(ranges);
        Bucket(places)
    }
}

/// Whether offset `low` lies in one of the packed `ranges`: a compare per range, or-ed, no
/// branch.
#[inline(always)]
fn holds(ranges: &[u32], low: u32) -> bool {
    ranges.iter().fold(false, |any, &range| any | ((range >> 16) <= low && low <= (range & 0xffff)))
}

/// `ranges` (start, end offsets, sorted, disjoint) cut at every multiple of `2^bits`: for
/// each piece, which part (`start >> bits`) and its packed offsets within that part. In part
/// order, and in order within a part; a range spanning whole parts adds one piece per part.
fn cut(ranges: impl IntoIterator<Item = (u32, u32)>, bits: u32) -> Vec<(u32, u32)> {
    let mask = (1u32 << bits) - 1;
    let mut pieces = Vec::new();
    for (lo, hi) in ranges {
        for part in (lo >> bits)..=(hi >> bits) {
            let start = if part == lo >> bits { lo & mask } else { 0 };
            let end = if part == hi >> bits { hi & mask } else { mask };
            pieces.push((part, start << 16 | end));
        }
    }
    pieces
}

impl NarrowTable {
    /// Lists of up to this many ranges are searched directly: a 1 MiB bucket table would
    /// turn their few cache lines into a cache miss per lookup.
    const FEW: usize = 64;
    /// A /16 with up to this many ranges keeps them in place (one cache line).
    const PLACES: usize = 4;
    /// A /16 with up to this many ranges keeps them in a [`Run`] (64 bytes; the next cache
    /// line); more get a node of 256 buckets (4 KiB: at most 241 bytes per range).
    const RUN: usize = 16;

    fn new(ranges: Vec<(u32, u32)>) -> NarrowTable {
        if ranges.len() <= Self::FEW {
            return NarrowTable::Few(ranges);
        }
        let mut top = vec![Bucket::inline(&[]); 1 << 16].into_boxed_slice();
        let (mut runs, mut nodes, mut bitmaps) = (Vec::new(), Vec::new(), Vec::new());
        for group in cut(ranges, 16).chunk_by(|a, b| a.0 == b.0) {
            let packed: Vec<u32> = group.iter().map(|&(_, range)| range).collect();
            top[group[0].0 as usize] = if packed.len() <= Self::PLACES {
                Bucket::inline(&packed)
            } else if packed.len() <= Self::RUN {
                let mut run = Run([EMPTY; 16]);
                run.0[..packed.len()].copy_from_slice(&packed);
                runs.push(run);
                Bucket([Bucket::RUN, (runs.len() - 1) as u32, 0, 0])
            } else {
                nodes.push(Self::node(&packed, &mut bitmaps));
                Bucket([Bucket::NODE, (nodes.len() - 1) as u32, 0, 0])
            };
        }
        NarrowTable::Trie { top, runs, nodes, bitmaps }
    }

    /// The node of a /16's `packed` ranges: 256 buckets by the next 8 bits.
    fn node(packed: &[u32], bitmaps: &mut Vec<[u64; 4]>) -> [Bucket; 256] {
        let mut node = [Bucket::inline(&[]); 256];
        let offsets = packed.iter().map(|&r| (r >> 16, r & 0xffff));
        for group in cut(offsets, 8).chunk_by(|a, b| a.0 == b.0) {
            node[group[0].0 as usize] = if group.len() <= Self::PLACES {
                Bucket::inline(&group.iter().map(|&(_, range)| range).collect::<Vec<_>>())
            } else {
                let mut bits = [0u64; 4];
                for &(_, range) in group {
                    for v in range >> 16..=range & 0xff {
                        bits[(v >> 6) as usize] |= 1 << (v & 63);
                    }
                }
                bitmaps.push(bits);
                Bucket([Bucket::BITMAP, (bitmaps.len() - 1) as u32, 0, 0])
            };
        }
        node
    }

    #[inline]
    fn contains(&self, value: u32) -> bool {
        match self {
            NarrowTable::Few(ranges) => in_ranges(ranges, value),
            NarrowTable::Trie { top, runs, nodes, bitmaps } => {
                let Some(bucket) = top.get((value >> 16) as usize) else { return false };
                let low = value & 0xffff;
                match bucket.0 {
                    [Bucket::RUN, run, _, _] => runs.get(run as usize).is_some_and(|r| holds(&r.0, low)),
                    [Bucket::NODE, node, _, _] => {
                        let Some(bucket) = nodes.get(node as usize).map(|n| &n[(low >> 8) as usize]) else {
                            return false;
                        };
                        let low = low & 0xff;
                        match bucket.0 {
                            [Bucket::BITMAP, bitmap, _, _] => bitmaps
                                .get(bitmap as usize)
                                .is_some_and(|b| b[(low >> 6) as usize] >> (low & 63) & 1 == 1),
                            _ => holds(&bucket.0, low),
                        }
                    }
                    _ => holds(&bucket.0, low),
                }
            }
        }
    }
}

impl Lookup {
    const BUCKETS: usize = 1 << 16;
    /// A wide value's bucket is its top 16 bits.
    const WIDE_SHIFT: u32 = 128 - 16;

    /// `width`: the bits values of this set use (32 for numbers, 128 for addresses).
    fn new(set: &IntervalSet, width: u32) -> Lookup {
        let all = set.ranges();
        // IPv4 networks: every range starts and ends on a 2^96 boundary.
        let low = u128::MAX >> 32;
        let narrow_by = match width {
            32 => Some(0),
            _ if all.iter().all(|&(lo, hi)| lo & low == 0 && hi & low == low) => Some(96),
            _ => None,
        };
        match narrow_by {
            Some(by) => Lookup::Narrow {
                by,
                table: NarrowTable::new(all.iter().map(|&(lo, hi)| ((lo >> by) as u32, (hi >> by) as u32)).collect()),
            },
            None => Lookup::Wide { first: Self::first_of_buckets(all), ranges: all.to_vec() },
        }
    }

    /// For each bucket (`value >> WIDE_SHIFT`), the first of `ranges` that ends at or after
    /// its first value; then one past the last range.
    fn first_of_buckets(ranges: &[(u128, u128)]) -> Vec<u32> {
        let mut first = Vec::with_capacity(Self::BUCKETS + 1);
        let mut i = 0usize;
        for b in 0..Self::BUCKETS as u128 {
            let bucket_start = b << Self::WIDE_SHIFT;
            while i < ranges.len() && ranges[i].1 < bucket_start {
                i += 1;
            }
            first.push(i as u32);
        }
        first.push(ranges.len() as u32); // past the last bucket (whose start would overflow)
        first
    }

    #[inline]
    fn contains(&self, value: u128) -> bool {
        match self {
            Lookup::Narrow { by, table } => u32::try_from(value >> by).is_ok_and(|v| table.contains(v)),
            Lookup::Wide { ranges, first } => {
                let b = ((value >> Self::WIDE_SHIFT) as usize).min(Self::BUCKETS - 1);
                let lo = first[b] as usize;
                // The next bucket's first range may start inside this one: a candidate too.
                let hi = (first[b + 1] as usize + 1).min(ranges.len());
                ranges.get(lo..hi).is_some_and(|candidates| in_ranges(candidates, value))
            }
        }
    }
}

/// The configuration's lists, and the membership slots its rules use.
#[derive(Debug, Default)]
pub struct Registry {
    lists: BTreeMap<String, std::sync::Arc<List>>,
    /// (field name, occurrence, list) of each slot handed out, in slot order.
    used: Vec<(&'static str, usize, String)>,
    probes: Vec<Probe>,
    /// Each list's lookup, by the list and the members a field reads of it (its IPv4 ones,
    /// its IPv6 ones, its numbers, or a flag's truth): one for every field and occurrence
    /// that reads the same (`ip.src`, `ip.dst`, `ip.addr`'s two made four copies, 256 MiB
    /// each for four million addresses).
    lookups: HashMap<(String, u8), Arc<Lookup>>,
    /// The `matches` patterns compiled so far, by their bytes.
    patterns: HashMap<Vec<u8>, Pattern>,
    /// What the rules parsed since [`Registry::take_notes`] ask that works but cannot match.
    notes: Vec<String>,
}

impl Registry {
    /// A registry of `lists`, by name.
    pub fn new(lists: BTreeMap<String, List>) -> Registry {
        let lists = lists.into_iter().map(|(name, list)| (name, std::sync::Arc::new(list))).collect();
        Registry {
            lists,
            used: Vec::new(),
            probes: Vec::new(),
            lookups: HashMap::new(),
            patterns: HashMap::new(),
            notes: Vec::new(),
        }
    }

    /// Comparisons the rules parsed since the last call make that are valid and match
    /// nothing today (`ipv6.src in $l` where `$l` holds IPv4 addresses only): a typo as
    /// likely as a feed of one family, worth a warning at the rule.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The list called `name`, if there is one (shared: a snapshot may keep it).
    pub fn list(&self, name: &str) -> Option<&std::sync::Arc<List>> {
        self.lists.get(name)
    }

    /// The lookups to run per packet for the slots handed out.
    pub fn membership(&self) -> Membership {
        Membership { probes: self.probes.clone() }
    }
}

impl Lists for Registry {
    fn pattern(&mut self, pattern: &[u8]) -> Result<Pattern, String> {
        if let Some(compiled) = self.patterns.get(pattern) {
            return Ok(compiled.clone()); // a clone shares the compiled program
        }
        if self.patterns.len() >= MAX_DISTINCT_PATTERNS {
            return Err(format!(
                "more than {MAX_DISTINCT_PATTERNS} distinct `matches` patterns in one configuration: each may cost \
                 up to {} KiB compiled, and as much again per worker searching with it",
                MAX_PATTERN_BYTES >> 10
            ));
        }
        let compiled = Pattern::new(pattern)?;
        self.patterns.insert(pattern.to_vec(), compiled.clone());
        Ok(compiled)
    }

    fn slot(&mut self, field: &'static FieldDef, occurrence: usize, name: &str) -> Result<Dim, String> {
        let list = self.lists.get(name).ok_or_else(|| format!("${name}: no list of that name is configured"))?;
        let members =
            list.members_for(field.ty).ok_or_else(|| format!("{} cannot be compared with a list", field.name))?;
        // An empty list is legitimate (a feed with nothing in it today) and matches nothing,
        // and so is an address list without the field's family (a feed whose last IPv6
        // line went must not make the reload that reads it fail); numbers compared with an
        // address list, or addresses with a number list, are a mistake.
        let addresses = |l: &List| {
            l.members_for(Ty::Ipv4).is_some_and(|m| !m.is_empty())
                || l.members_for(Ty::Ipv6).is_some_and(|m| !m.is_empty())
        };
        let family_only = matches!(field.ty, Ty::Ipv4 | Ty::Ipv6) && addresses(list);
        if members.is_empty() && family_only {
            let kind = if matches!(field.ty, Ty::Ipv4) { "IPv4" } else { "IPv6" };
            self.notes.push(format!("{} in ${name} matches nothing: the list holds no {kind} addresses", field.name));
        }
        // An empty list is legitimate, but `not ip.src in $allowed` over a feed that came out
        // empty drops everything: said, at the rule.
        if list.is_empty() {
            self.notes.push(format!("${name} is empty: {} in ${name} matches nothing", field.name));
        }
        if members.is_empty() && !list.is_empty() && !family_only {
            let kind = match field.ty {
                Ty::Ipv4 => "IPv4 addresses",
                Ty::Ipv6 => "IPv6 addresses",
                _ => "numbers",
            };
            return Err(format!("${name} holds no {kind}, which {} needs", field.name));
        }
        // Members mean what they would written inline: a number past the field's range is
        // an error there, and a flag reads any non-zero number as true.
        let flag_members;
        let members = match field.ty {
            Ty::Uint { max } => match members.ranges().last() {
                Some(&(_, hi)) if hi > u128::from(max) => {
                    let field = field.name;
                    return Err(format!("${name} holds {hi}, too big for {field} (maximum {max})"));
                }
                _ => members,
            },
            Ty::Bool => {
                let zero = members.ranges().first().is_some_and(|&(lo, _)| lo == 0);
                let non_zero = members.ranges().last().is_some_and(|&(_, hi)| hi > 0);
                let truth = [(zero, 0), (non_zero, 1)].into_iter().filter(|(has, _)| *has).map(|(_, v)| (v, v));
                flag_members = IntervalSet::from_ranges(truth.collect());
                &flag_members
            }
            _ => members,
        };
        let key = (field.name, occurrence, name.to_string());
        if let Some(i) = self.used.iter().position(|u| *u == key) {
            return Ok(MEMBER_SLOTS[i]);
        }
        let Some(&slot) = MEMBER_SLOTS.get(self.used.len()) else {
            return Err(format!(
                "the rules compare fields with lists in more than {} different ways (field and list pairs); \
                 merge lists or compare fewer fields",
                MEMBER_SLOTS.len()
            ));
        };
        let occurrence_def = field.occurrences[occurrence];
        let width = if matches!(field.ty, Ty::Ipv4 | Ty::Ipv6) { 128 } else { 32 };
        let read = match field.ty {
            Ty::Ipv4 => 0,
            Ty::Ipv6 => 1,
            Ty::Bool => 2,
            _ => 3, // numbers, whatever their range (checked above)
        };
        let lookup = self
            .lookups
            .entry((name.to_string(), read))
            .or_insert_with(|| Arc::new(Lookup::new(members, width)))
            .clone();
        self.probes.push(Probe::new(occurrence_def, lookup, slot));
        self.used.push(key);
        Ok(slot)
    }
}

/// The per-packet list lookups of a configuration.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    probes: Vec<Probe>,
}

impl Membership {
    /// True when no rule uses a list (nothing to do per packet).
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// Fills the membership slots of a parsed packet's key.
    #[inline]
    pub fn fill(&self, key: &mut Key) {
        for p in &self.probes {
            key.set(p.slot, p.member(key).map_or(ABSENT, u32::from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each list an expression names, once, in order, with whether members, non-members or
    /// both match through it (the parity of the `not`s over each test); and which changes of
    /// the list widen what the expression matches.
    #[test]
    fn list_uses_say_how_each_list_is_tested() {
        let uses = |text: &str| -> Vec<(String, bool, bool)> {
            list_uses(text).unwrap().into_iter().map(|(n, u)| (n, u.members, u.non_members)).collect()
        };
        let own = |v: &[(&str, bool, bool)]| v.iter().map(|&(n, m, x)| (n.to_string(), m, x)).collect::<Vec<_>>();
        assert_eq!(uses("ip.src in $a"), own(&[("a", true, false)]));
        assert_eq!(uses("not ip.src in $a"), own(&[("a", false, true)]));
        assert_eq!(uses("ip.src not in $a"), own(&[("a", false, true)]));
        assert_eq!(uses("!!(ip.src in $a)"), own(&[("a", true, false)]));
        assert_eq!(uses("ip.addr in $a"), own(&[("a", true, false)]), "two occurrences, one list");
        assert_eq!(
            uses("tcp.dstport in $ports and !(ip.src in $a and tcp) or ip.dst in $a"),
            own(&[("ports", true, false), ("a", true, true)])
        );
        assert_eq!(uses("tcp and ip.src == 10.0.0.1"), own(&[]));
        // A pattern the compiler would refuse: not compiled here, only the lists count.
        assert_eq!(uses("tcp.payload matches \"(\" and not ip.src in $a"), own(&[("a", false, true)]));
        assert!(list_uses("ip.src in $a and").is_err());
        let (small, big) = (list(&["192.0.2.1"]), list(&["192.0.2.1", "192.0.2.2"]));
        let members = ListUse { members: true, non_members: false };
        let non_members = ListUse { members: false, non_members: true };
        assert!(members.widened_by(&small, &big) && !members.widened_by(&big, &small));
        assert!(non_members.widened_by(&big, &small) && !non_members.widened_by(&small, &big));
        assert!(!ListUse { members: true, non_members: true }.widened_by(&big, &list(&["192.0.2.2", "192.0.2.1"])));
    }
    use crate::{RuleTable, eval, parse, parse_with};

    fn list(members: &[&str]) -> List {
        List::parse(members.iter().copied()).unwrap()
    }

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
        for bad in ["10.0.0.0/33", "80/8", "9..x", "eighty", "2001:db8::/129", "", "10.0.0.0/+8", "10.0.0.0/"] {
            assert!(matches!(List::parse([bad]), Err((0, MemberError::Unreadable(_)))), "{bad}");
        }
    }

    /// With its slots filled, a list test selects exactly the keys its members written inline
    /// select (the reference interpreter over the inline set is the oracle).
    #[test]
    fn a_list_means_its_members_written_inline() {
        let members = ["10.0.0.0/24", "192.0.2.7", "2001:db8::/32"];
        let mut registry = Registry::new(BTreeMap::from([("l".to_string(), list(&members))]));
        let cases = [
            ("ip.addr in $l", "ip.addr in {10.0.0.0/24, 192.0.2.7}"),
            ("not ip.src in $l and ipv6", "not ip.src in {10.0.0.0/24, 192.0.2.7} and ipv6"),
            ("ipv6.dst in $l or ip.dst in $l", "ipv6.dst in {2001:db8::/32} or ip.dst in {10.0.0.0/24, 192.0.2.7}"),
        ];
        let parsed: Vec<_> =
            cases.iter().map(|(l, i)| (parse_with(l, &mut registry).unwrap(), parse(i).unwrap())).collect();
        let membership = registry.membership();
        // Five fields and occurrences read the list: its IPv4 members through one lookup
        // (four of them), its IPv6 ones through another, not five copies.
        assert_eq!(membership.probes.len(), 5);
        let distinct: Vec<&Arc<Lookup>> =
            membership.probes.iter().map(|p| &p.members).fold(Vec::new(), |mut seen, m| {
                if !seen.iter().any(|s| Arc::ptr_eq(s, m)) {
                    seen.push(m);
                }
                seen
            });
        assert_eq!(distinct.len(), 2);
        let v4 = [[10, 0, 0, 9], [10, 0, 1, 9], [192, 0, 2, 7], [192, 0, 2, 8]];
        let v6 = ["2001:db8::1", "2001:db9::1"].map(|a| a.parse::<Ipv6Addr>().unwrap().octets());
        let mut keys = Vec::new();
        for s in v4 {
            for d in v4 {
                let mut k = Key::new(60);
                k.set_ipv4(s, d, 6, 64, 40, false, false, 0);
                keys.push(k);
            }
        }
        for s in v6 {
            for d in v6 {
                let mut k = Key::new(60);
                k.set_ipv6(s, d, 6, 64, 20);
                keys.push(k);
            }
        }
        keys.push(Key::new(60)); // not IP
        for (with_list, inline) in &parsed {
            let table = RuleTable::build([with_list]).unwrap();
            let mut selected = 0;
            for key in &keys {
                let mut filled = *key;
                membership.fill(&mut filled);
                let expect = eval(inline, key, &[]);
                assert_eq!(eval(with_list, &filled, &[]), expect, "{with_list:?} on {key:?}");
                assert_eq!(table.first_match(&filled, &[]).is_some(), expect);
                selected += usize::from(expect);
            }
            assert!(selected > 0 && selected < keys.len());
        }
    }

    /// Numbers in a list mean what they mean inline: past a field's range an error, and any
    /// non-zero number "true" for a flag (Wireshark reads it so).
    #[test]
    fn number_members_mean_what_they_mean_inline() {
        let mut registry = Registry::new(BTreeMap::from([
            ("ports".to_string(), list(&["80", "70000"])),
            ("flags".to_string(), list(&["2"])),
            ("both".to_string(), list(&["0", "7"])),
            ("octal".to_string(), list(&["010", "0x1F..0X20"])),
        ]));
        let e = parse_with("tcp.port in $ports", &mut registry).unwrap_err();
        assert!(e.message.contains("$ports holds 70000, too big for tcp.port (maximum 65535)"), "{}", e.message);
        assert!(parse("tcp.port in {80, 70000}").is_err(), "as inline");
        let cases = [
            ("tcp.flags.syn in $flags", "tcp.flags.syn in {2}"),
            ("tcp.flags.ack in $both", "tcp.flags.ack in {0, 7}"),
            // A leading zero is octal and `0X` hexadecimal, as inline (tshark): `010` is 8.
            ("ip.ttl in $octal", "ip.ttl in {010, 0x1F..0X20}"),
        ];
        let parsed: Vec<_> =
            cases.iter().map(|(l, i)| (parse_with(l, &mut registry).unwrap(), parse(i).unwrap())).collect();
        let membership = registry.membership();
        for (flags, ttl) in [(0x02u16, 8), (0x10, 10), (0x12, 31), (0x00, 32), (0x10, 33)] {
            let mut key = Key::new(60);
            key.set_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, ttl, 40, false, false, 0);
            key.set_l4_proto(6);
            key.set_tcp_flags(flags);
            let mut filled = key;
            membership.fill(&mut filled);
            for (with_list, inline) in &parsed {
                assert_eq!(eval(with_list, &filled, &[]), eval(inline, &key, &[]), "{with_list:?} flags {flags:#x}");
            }
        }
    }

    /// A feed of one family compared with both fields (the configuration guide's example):
    /// the other family's field matches nothing, and the rule compiles, so a reload after
    /// the feed's last IPv6 line went is taken. Numbers against addresses stay a mistake.
    #[test]
    fn an_address_list_without_a_family_matches_nothing_of_it() {
        let mut registry = Registry::new(BTreeMap::from([("v4".to_string(), list(&["192.0.2.0/24"]))]));
        let rule = parse_with("ip.src in $v4 or ipv6.src in $v4", &mut registry).unwrap();
        let e = parse_with("tcp.port in $v4", &mut registry).unwrap_err();
        assert!(e.message.contains("$v4 holds no numbers, which tcp.port needs"), "{}", e.message);
        let membership = registry.membership();
        let mut v4 = Key::new(60);
        v4.set_ipv4([192, 0, 2, 9], [203, 0, 113, 1], 6, 64, 40, false, false, 0);
        let mut v6 = Key::new(60);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[192, 0, 2, 9]); // the IPv4 member's bits, in an IPv6 address
        v6.set_ipv6(src, [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 6, 64, 20);
        for (key, expect) in [(&mut v4, true), (&mut v6, false)] {
            membership.fill(key);
            assert_eq!(eval(&rule, key, &[]), expect);
        }
    }

    /// A list's name may hold `-` and `.`, as every name may: `$bad-actors.v4` names it
    /// whole (it used to stop at the `-`, leaving such a list unreachable).
    #[test]
    fn a_list_name_with_dashes_and_dots_is_written_whole() {
        let mut registry = Registry::new(BTreeMap::from([("bad-actors.v4".to_string(), list(&["192.0.2.0/24"]))]));
        let rule = parse_with("ip.src in $bad-actors.v4 and tcp", &mut registry).unwrap();
        let membership = registry.membership();
        for (src, expect) in [([192, 0, 2, 9], true), ([192, 0, 3, 9], false)] {
            let mut key = Key::new(60);
            key.set_ipv4(src, [203, 0, 113, 1], 6, 64, 40, false, false, 0);
            key.set_l4_proto(6);
            membership.fill(&mut key);
            assert_eq!(eval(&rule, &key, &[]), expect, "{src:?}");
        }
    }

    /// List rules get a tree of their own in the forest: among other rules, before and after
    /// them, the first match is still the reference interpreter's first match.
    #[test]
    fn list_rules_among_others_keep_first_match_order() {
        let mut registry = Registry::new(BTreeMap::from([
            ("l".to_string(), list(&["10.0.0.0/16", "192.0.2.0/24"])),
            ("ports".to_string(), list(&["22", "8000..8100"])),
        ]));
        let texts = [
            "ip.dst == 198.51.100.7 and tcp.dstport == 80",
            "ip.src in $l and tcp.dstport == 443",
            "tcp.dstport in $ports",
            "ip.src == 10.0.0.0/8",
            "not ip.src in $l and ip.dst == 198.51.100.0/24",
            "ip.src in $l",
            "tcp",
        ];
        let rules: Vec<_> = texts.iter().map(|t| parse_with(t, &mut registry).unwrap()).collect();
        let table = RuleTable::build(&rules).unwrap();
        let membership = registry.membership();
        let sources = [[10, 0, 3, 4], [10, 1, 0, 1], [192, 0, 2, 9], [203, 0, 113, 1]];
        let dests = [[198, 51, 100, 7], [198, 51, 100, 8], [203, 0, 113, 9]];
        let mut seen = std::collections::BTreeSet::new();
        for s in sources {
            for d in dests {
                for (proto, port) in [(6, 80), (6, 443), (6, 22), (6, 8050), (17, 53)] {
                    let mut key = Key::new(60);
                    key.set_ipv4(s, d, proto, 64, 40, false, false, 0);
                    key.set_l4_proto(proto);
                    key.set_ports(40000, port);
                    membership.fill(&mut key);
                    let expect = rules.iter().position(|r| eval(r, &key, &[])).map(|i| i as u32);
                    assert_eq!(table.first_match(&key, &[]), expect, "{s:?} -> {d:?} {proto}/{port}");
                    seen.insert(expect);
                }
            }
        }
        assert!(seen.len() >= 6, "the keys reach most rules: {seen:?}");
    }

    /// Every layout answers as a linear scan of the merged ranges does, on the ranges' own
    /// edges and on random values.
    #[test]
    fn lookups_answer_as_a_scan_of_the_ranges() {
        let mut state = 1u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 16
        };
        let scan = |set: &IntervalSet, v: u128| set.ranges().iter().any(|&(lo, hi)| lo <= v && v <= hi);
        let check = |set: &IntervalSet, lookup: &Lookup, extra: &[u128], what: &str| {
            let edges = set.ranges().iter().flat_map(|&(lo, hi)| [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
            for v in edges.chain(extra.iter().copied()) {
                assert_eq!(lookup.contains(v), scan(set, v), "{what}, value {v:#x}");
            }
        };
        for width in [32u32, 128] {
            let scale = |v: u64| if width == 32 { u128::from(v as u32) } else { u128::from(v) << 80 };
            let step = if width == 32 { 1 } else { 1u128 << 70 };
            let max = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
            let top = max - (max >> 15);
            let randoms: Vec<u128> = (0..2000).map(|_| scale(next())).chain([0, max, max - 1, max >> 1]).collect();
            // Spread everywhere, the top bucket among them; a few; many in a few buckets
            // (more than a bucket holds in place); ranges across many buckets.
            let spread: Vec<(u128, u128)> = (0..500)
                .map(|_| {
                    let lo = scale(next());
                    (lo, lo + u128::from(next() % 5000) * step)
                })
                .chain([(top, top + 10), (top + 100, top + 200), (max - 5, max)])
                .collect();
            let few: Vec<(u128, u128)> = spread[..10].to_vec();
            let base = scale(0x1234_0000_0000);
            let dense: Vec<(u128, u128)> =
                (0..2000u128).map(|i| (base + i * 7 * step, base + (i * 7 + 3) * step)).collect();
            let wide: Vec<(u128, u128)> =
                (0..100u128).map(|i| (i * (max / 100), i * (max / 100) + max / 300)).collect();
            for (what, ranges) in [("spread", spread), ("few", few), ("dense", dense), ("across buckets", wide)] {
                let set = IntervalSet::from_ranges(ranges);
                let lookup = Lookup::new(&set, width);
                let inside: Vec<u128> = (0..2000).map(|i| base + i * step).collect();
                check(
                    &set,
                    &lookup,
                    &[randoms.as_slice(), inside.as_slice()].concat(),
                    &format!("{what}, width {width}"),
                );
            }
        }
        assert!(!Lookup::new(&IntervalSet::empty(), 32).contains(7));
        // IPv4 networks: whole 2^96 blocks, kept as 32-bit ranges.
        let block = |a: u64| u128::from(a as u32) << 96;
        let ranges: Vec<(u128, u128)> = (0..500)
            .map(|_| {
                let a = next();
                (block(a), block(a.saturating_add(next() % 5000)) | (u128::MAX >> 32))
            })
            .chain([(block(u64::from(u32::MAX)), u128::MAX)])
            // Clustered: 40 in 10.0/16 (a node, with bitmaps for its crowded /24s), 40 in
            // 10.2/16 spread over its /24s (a node of buckets), 8 in 10.1/16 (a run).
            .chain((0..40).map(|i| (block(0x0a00_0000 + i * 16), block(0x0a00_0000 + i * 16 + 3) | (u128::MAX >> 32))))
            .chain(
                (0..40).map(|i| (block(0x0a02_0000 + i * 1000), block(0x0a02_0000 + i * 1000 + 9) | (u128::MAX >> 32))),
            )
            .chain((0..8).map(|i| (block(0x0a01_0000 + i * 99), block(0x0a01_0000 + i * 99 + 1) | (u128::MAX >> 32))))
            .collect();
        let set = IntervalSet::from_ranges(ranges);
        let lookup = Lookup::new(&set, 128);
        let Lookup::Narrow { by: 96, table: NarrowTable::Trie { runs, nodes, bitmaps, .. } } = &lookup else {
            panic!("IPv4 networks are kept as 32-bit ranges in a trie: {lookup:?}")
        };
        assert_eq!((runs.len(), nodes.len(), bitmaps.len()), (1, 2, 3), "the clusters are split as they should be");
        let clusters = (0..3).flat_map(|c| (0..0x10000).step_by(7).map(move |i| block(0x0a00_0000 + (c << 16) + i)));
        let randoms: Vec<u128> = (0..2000).map(|_| block(next())).chain(clusters).collect();
        check(&set, &lookup, &randoms, "IPv4");
    }

    #[test]
    fn slots_are_shared_and_bounded() {
        let names = ["a", "b", "c", "d", "e"];
        let lists = names.iter().map(|n| (n.to_string(), list(&["10.0.0.0/8"]))).collect();
        let mut registry = Registry::new(lists);
        // The same (field, list) twice takes one slot; ip.addr takes two.
        parse_with("ip.src in $a and not ip.src in $a", &mut registry).unwrap();
        parse_with("ip.addr in $b", &mut registry).unwrap();
        assert_eq!(registry.used.len(), 3);
        parse_with("ip.addr in $c or ip.addr in $d", &mut registry).unwrap();
        let e = parse_with("ip.addr in $e", &mut registry).unwrap_err(); // the ninth
        assert!(e.message.contains("more than 8"), "{}", e.message);
        assert!(parse_with("ip.src in $nope", &mut registry).unwrap_err().message.contains("no list of that name"));
        assert!(parse("ip.src in $a").unwrap_err().message.contains("no list of that name"));
    }
}
