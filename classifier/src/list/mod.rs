//! Named lists (`ip.src in $bad_actors`): their members, and the membership slots that make a
//! list of any size one key slot for the rule tables.
//!
//! Written into a rule, 100,000 prefixes would be 100,000 intervals of one field, which the
//! compiler spreads into as many boxes per rule that uses them. A list instead is looked up
//! once per packet, before classification, for each (field occurrence, list) pair some rule
//! uses ([`Membership::fill`]): a lookup in a trie of the list's merged ranges, whose answer
//! (1 in the list, 0 not, [`ABSENT`](crate::field::ABSENT) where the packet has no such field) goes into a
//! membership slot ([`Dim::Member0`] ...). The rule then tests that slot like a flag, so its
//! boxes, and the table's size and speed, do not depend on the list's length.
//! [`Registry`] hands out the slots while a configuration's rules are parsed.
//!
//! The parts: `members` (a list's members as written, read into a [`List`]), `lookup` (its
//! ranges laid out for per-packet lookups), `registry` (the configuration's lists, the slots
//! its rules use, and the lookups that fill them) and this module (what the parser asks of
//! lists, the membership slots and fields, and which lists an expression names).

use crate::bytes::Pattern;
use crate::field::{Dim, FieldDef, Guard, Occurrence, Slot, Ty};

mod lookup;
mod members;
mod registry;

pub use members::{List, MemberError};
pub use registry::{Membership, Registry};

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

    /// How many more ranges of values masks may select, all the rules parsed with these lists
    /// together ([`MAX_MASKED_RANGES_PER_CONFIG`](crate::parse::MAX_MASKED_RANGES_PER_CONFIG)
    /// for a configuration's); without a configuration, one expression is bounded as a rule.
    fn masked_ranges_left(&self) -> usize {
        usize::MAX
    }

    /// Takes `ranges` from [`Lists::masked_ranges_left`].
    fn spend_masked_ranges(&mut self, _ranges: usize) {}
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
    list_uses_within(text, &mut 0)
}

/// [`list_uses`] of one of several texts read again (a configuration's rules), whose masks
/// are bounded together as a configuration's: `masked_ranges` counts the ranges the masks of
/// those read so far selected, so that reading them costs no more than compiling them did.
pub fn list_uses_within(text: &str, masked_ranges: &mut usize) -> Result<Vec<(String, ListUse)>, crate::ParseError> {
    /// Hands out a slot per (field, occurrence, name), remembering the name; `matches`
    /// patterns are not compiled (one empty pattern stands for all: only the lists count).
    struct Named<'m>(Vec<(&'static str, usize, String)>, Option<Pattern>, &'m mut usize);
    impl Lists for Named<'_> {
        fn masked_ranges_left(&self) -> usize {
            crate::parse::MAX_MASKED_RANGES_PER_CONFIG.saturating_sub(*self.2)
        }

        fn spend_masked_ranges(&mut self, ranges: usize) {
            *self.2 = self.2.saturating_add(ranges);
        }

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
    fn walk(e: &crate::Expr, negated: bool, named: &Named<'_>, uses: &mut Vec<(String, ListUse)>) {
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
    let mut named = Named(Vec::new(), None, masked_ranges);
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn list(members: &[&str]) -> List {
        List::parse(members.iter().copied()).unwrap()
    }

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
}
