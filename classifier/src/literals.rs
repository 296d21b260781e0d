//! The `contains` literals of a table, searched together: one pass over a field's bytes
//! answers every unsliced `contains` test on that field.
//!
//! A list of signatures behind one header test (`udp and udp.payload contains "..."`) has
//! each packet pass dozens of header tests, and each candidate's `contains` searched the same
//! bytes again for its own literal. Here the literals of one field (`udp.payload`, `frame`,
//! ...) are one Aho-Corasick automaton: the first candidate that asks is answered by its own
//! search, as before; the second has the field searched once for all of them, and every
//! later test on that field is a look at what the search found.
//!
//! What a lookup learns lives in [`Seen`], on the lookup's stack: nothing is allocated per
//! packet. A search that finds more literals than [`Seen`] holds, or more occurrences than
//! [`MAX_OCCURRENCES`] (nested literals over a crafted payload: `a`, `aa`, `aaa` at every
//! byte), gives up and the field's tests search one by one, as without it: a payload can make
//! the shortcut useless, never the answer wrong or the cost unbounded.

use aho_corasick::AhoCorasick;

use crate::bytes::{ByteOp, ByteTest, Layer};
use crate::field::Key;

/// Literals one lookup can remember having found.
const FOUND: usize = 32;

/// Occurrences one search walks through before it gives up (see the module's comment).
pub const MAX_OCCURRENCES: usize = 256;

/// Byte fields a table can group (one bit each in [`Seen`]).
const MAX_GROUPS: usize = 16;

/// The grouped literals of a table's byte tests.
#[derive(Clone, Debug, Default)]
pub struct Literals {
    /// Per test (by its index in the table's tests): its group and its literal's number
    /// (numbered across groups), or `None` when it is searched on its own.
    of_test: Vec<Option<(u8, u32)>>,
    groups: Vec<Group>,
}

/// The literals of one field.
#[derive(Clone, Debug)]
struct Group {
    layer: Layer,
    searcher: AhoCorasick,
    /// The number of the group's first literal; the searcher's pattern `p` is `first + p`.
    first: u32,
}

/// What one lookup has learnt of its frame's fields.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Groups a test has asked about (searched on its own, the first time).
    asked: u16,
    /// Groups searched for all their literals.
    searched: u16,
    /// Groups whose search gave up: their tests search on their own.
    gave_up: u16,
    /// The literals found, `n` of them.
    found: [u32; FOUND],
    n: usize,
}

impl Literals {
    /// Groups the unsliced `contains` tests among `tests` (each `Some` when it is a byte test)
    /// by the field they search: a field with at least two such tests gets one searcher.
    pub fn new<'a>(tests: impl ExactSizeIterator<Item = Option<&'a ByteTest>>) -> Literals {
        let mut of_test: Vec<Option<(u8, u32)>> = vec![None; tests.len()];
        // Per field: its tests (index, literal).
        type Members<'t> = Vec<(usize, &'t [u8])>;
        let mut by_layer: Vec<(Layer, Members)> = Vec::new();
        for (t, test) in tests.enumerate() {
            let Some(ByteTest { layer, slice: None, op: ByteOp::Contains(needle), .. }) = test else { continue };
            if needle.bytes().is_empty() {
                continue;
            }
            match by_layer.iter_mut().find(|(l, _)| l == layer) {
                Some((_, members)) => members.push((t, needle.bytes())),
                None => by_layer.push((*layer, vec![(t, needle.bytes())])),
            }
        }
        let mut groups = Vec::new();
        let mut next = 0u32;
        for (layer, members) in by_layer {
            if members.len() < 2 || groups.len() == MAX_GROUPS {
                continue;
            }
            // One pattern per distinct literal: the same literal in many rules is one.
            let mut distinct: Vec<&[u8]> = members.iter().map(|m| m.1).collect();
            distinct.sort_unstable();
            distinct.dedup();
            // Only a searcher that cannot be built (past the automaton's own limits) leaves
            // the field's tests to search on their own.
            let Ok(searcher) = AhoCorasick::new(&distinct) else { continue };
            let g = groups.len() as u8;
            for (t, bytes) in members {
                let p = distinct.binary_search(&bytes).unwrap_or_default() as u32;
                of_test[t] = Some((g, next + p));
            }
            groups.push(Group { layer, searcher, first: next });
            next += distinct.len() as u32;
        }
        Literals { of_test, groups }
    }

    /// Whether test `t` (`test`) holds of the packet `key` was parsed from, `frame`, with what
    /// this lookup has seen of its fields.
    #[inline]
    pub fn holds(&self, t: u32, test: &ByteTest, key: &Key, frame: &[u8], seen: &mut Seen) -> bool {
        let Some(&Some((g, literal))) = self.of_test.get(t as usize) else { return test.holds(key, frame) };
        let bit = 1u16 << g;
        if seen.searched & bit == 0 {
            // One test asking is answered by its own search: a whole search would cost more.
            if seen.asked & bit == 0 {
                seen.asked |= bit;
                return test.holds(key, frame);
            }
            self.search(g, key, frame, seen);
        }
        if seen.gave_up & bit != 0 {
            return test.holds(key, frame);
        }
        seen.found[..seen.n].contains(&literal)
    }

    /// Searches group `g`'s field for all its literals, into `seen`.
    fn search(&self, g: u8, key: &Key, frame: &[u8], seen: &mut Seen) {
        let bit = 1u16 << g;
        seen.searched |= bit;
        let group = &self.groups[usize::from(g)];
        // A field the packet lacks holds no literal (as each test would say).
        let Some(bytes) = group.layer.searched(key, frame.len()).and_then(|r| frame.get(r)) else { return };
        let before = seen.n;
        for (i, occurrence) in group.searcher.find_overlapping_iter(bytes).enumerate() {
            let literal = group.first + occurrence.pattern().as_u32();
            if seen.found[before..seen.n].contains(&literal) {
                if i < MAX_OCCURRENCES {
                    continue;
                }
            } else if seen.n < FOUND && i < MAX_OCCURRENCES {
                seen.found[seen.n] = literal;
                seen.n += 1;
                continue;
            }
            // Too many literals to remember, or too many occurrences to walk.
            seen.gave_up |= bit;
            seen.n = before;
            return;
        }
    }

    /// Fields searched together (for statistics and tests).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dim;
    use crate::parse;

    /// A key for a frame that is all UDP payload from byte 0.
    fn udp_payload_key(len: usize) -> Key {
        let mut key = Key::new((28 + len) as u32);
        key.set_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 64, (20 + 8 + len) as u16, false, false, 0);
        key.set_l4_proto(17);
        key.set(Dim::L3At, 0);
        key.set(Dim::IpHdrLen, 20);
        key.set(Dim::L4At, 20);
        key.set(Dim::L4Len, (8 + len) as u32);
        key
    }

    fn tests_of(texts: &[&str]) -> Vec<ByteTest> {
        texts
            .iter()
            .map(|t| match parse(t).unwrap() {
                crate::Expr::Bytes(b) => b,
                e => panic!("{t}: {e:?}"),
            })
            .collect()
    }

    /// Every test's answer through the group (the first ask, the search, the looks after it)
    /// is the test's own, on frames holding none, some, more than `FOUND` of the literals,
    /// and nested literals past `MAX_OCCURRENCES`.
    #[test]
    fn grouped_answers_are_each_tests_own() {
        let mut texts: Vec<String> = (0..40).map(|i| format!("udp.payload contains \"<{i}>\"")).collect();
        texts.extend(
            ["udp.payload contains \"a\"", "udp.payload contains \"aa\"", "udp.payload contains \"aaa\""]
                .map(String::from),
        );
        texts.push("udp.payload[0:2] == \"<1\"".into());
        texts.push("frame contains \"<3>\"".into());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tests = tests_of(&refs);
        let literals = Literals::new(tests.iter().map(Some));
        assert_eq!(literals.groups(), 1, "udp.payload's contains tests, not the slice, not the lone frame test");
        let all: String = (0..40).map(|i| format!("<{i}>")).collect();
        let frames: Vec<Vec<u8>> = vec![
            vec![b'.'; 28 + 30],
            [&[0u8; 28][..], b"<1><7>..aa"].concat(),
            [&[0u8; 28][..], all.as_bytes()].concat(),
            [&[0u8; 28][..], &[b'a'; 400]].concat(),
        ];
        let mut held = 0;
        for frame in &frames {
            let key = udp_payload_key(frame.len() - 28);
            // In order, and in reverse: the first ask and the search see different tests.
            for order in [false, true] {
                let mut seen = Seen::default();
                let mut ts: Vec<usize> = (0..tests.len()).collect();
                if order {
                    ts.reverse();
                }
                for t in ts {
                    let expect = tests[t].holds(&key, frame);
                    held += usize::from(expect);
                    assert_eq!(literals.holds(t as u32, &tests[t], &key, frame, &mut seen), expect, "{}", texts[t]);
                    // Asked again, the same.
                    assert_eq!(literals.holds(t as u32, &tests[t], &key, frame, &mut seen), expect, "{}", texts[t]);
                }
            }
        }
        assert!(held > 80, "the frames hold many of the literals: {held}");
        // The frame with all forty gave up (more than FOUND literals), as did the run of a's.
        for frame in &frames[2..] {
            let mut seen = Seen::default();
            let key = udp_payload_key(frame.len() - 28);
            literals.holds(0, &tests[0], &key, frame, &mut seen);
            literals.holds(1, &tests[1], &key, frame, &mut seen);
            assert_eq!(seen.gave_up, 1, "{seen:?}");
        }
        let key = udp_payload_key(frames[1].len() - 28);
        let mut seen = Seen::default();
        literals.holds(0, &tests[0], &key, &frames[1], &mut seen);
        literals.holds(1, &tests[1], &key, &frames[1], &mut seen);
        assert_eq!((seen.gave_up, seen.n), (0, 4), "<1>, <7>, a and aa");
    }
}
