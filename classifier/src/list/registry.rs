//! The configuration's lists ([`Registry`]): it hands out the membership slots while the rules
//! are parsed, with one lookup per list for every field that reads it alike, and gives the
//! per-packet lookups that fill those slots ([`Membership`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::lookup::Lookup;
use super::{List, Lists, MEMBER_SLOTS};
use crate::bytes::{LAZY_DFA_CACHE_BYTES, MAX_DISTINCT_PATTERNS, MAX_PATTERN_BYTES, Pattern};
use crate::field::{ABSENT, Dim, FieldDef, Key, Occurrence, Slot, Ty};
use crate::parse::MAX_MASKED_RANGES_PER_CONFIG;
use crate::set::IntervalSet;

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
    /// Ranges the masks of the rules parsed so far selected (or walked to, refused).
    masked_ranges: usize,
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
            masked_ranges: 0,
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
                "more than {MAX_DISTINCT_PATTERNS} distinct `matches` patterns in one configuration: each may compile \
                 to {} KiB, and take up to {} KiB more per worker searching with it",
                MAX_PATTERN_BYTES >> 10,
                (2 * LAZY_DFA_CACHE_BYTES) >> 10
            ));
        }
        let compiled = Pattern::new(pattern)?;
        self.patterns.insert(pattern.to_vec(), compiled.clone());
        Ok(compiled)
    }

    fn masked_ranges_left(&self) -> usize {
        MAX_MASKED_RANGES_PER_CONFIG.saturating_sub(self.masked_ranges)
    }

    fn spend_masked_ranges(&mut self, ranges: usize) {
        self.masked_ranges = self.masked_ranges.saturating_add(ranges);
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

    /// Fills the membership slots of a parsed packet's key: where no rule uses a list (the
    /// common case), a test and no call, whose saving and restoring of registers alone cost
    /// 17 instructions a packet.
    #[inline(always)]
    pub fn fill(&self, key: &mut Key) {
        if !self.probes.is_empty() {
            self.fill_slots(key);
        }
    }

    /// [`Membership::fill`] with lists to look in.
    #[inline(never)]
    fn fill_slots(&self, key: &mut Key) {
        for p in &self.probes {
            key.set(p.slot, p.member(key).map_or(ABSENT, u32::from));
        }
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

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::super::tests::list;
    use super::*;
    use crate::{RuleTable, eval, parse, parse_with};

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
