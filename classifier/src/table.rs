//! `RuleTable`: compiled first-match lookup over a list of expressions.
//!
//! Rule `i` is the `i`-th expression; the lowest index whose expression selects the key wins.
//! The table compiles each rule into boxes (see `compile`) and the boxes into a forest of
//! decision trees (see `tree`). [`LinearScan`] is the reference it is tested against: it
//! evaluates each expression's AST in turn.

use crate::ast::Expr;
use crate::bytes::ByteTest;
use crate::compile::{self, Bounds, CompileError};
use crate::eval::eval;
use crate::field::Key;
use crate::literals::{Literals, Seen};
use crate::tree::{Forest, ForestStats};

/// Upper bound on the boxes of one table (all its rules together). What a box costs depends
/// on how boxes overlap (a leaf copies every box covering its region): the ClassBench sets
/// of 10,000 rules (tens of thousands of boxes) keep about 0.2 KB a box; boxes that overlap
/// everywhere (`ip.addr in {64 /24s} and tcp.port in {64 ports}`) keep about 3 KB and take
/// about twice that while the table is built, so a table at this bound may take 1.5 GB to
/// build (docs/configuration.md, "Limits"; [`Budget::bytes`] bounds what is kept).
pub const MAX_BOXES_PER_TABLE: usize = 262_144;

/// What the tables of one configuration may spend, all together: expansion steps (time),
/// boxes, and bytes of their lookup arrays (memory). Each table spends from it as it is
/// built and is refused, before it takes more, where it would pass a bound
/// ([`CompileError::BudgetSpent`], [`CompileError::BoxesSpent`],
/// [`CompileError::BytesSpent`]): many lists each within its own bounds must not together
/// take the edge's memory or hold a reload for hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Expansion steps ([`compile::MAX_EXPANSION_STEPS`] is one rule's bound).
    pub steps: usize,
    /// Boxes ([`ForestStats::boxes`]).
    pub boxes: usize,
    /// Bytes of lookup arrays ([`ForestStats::bytes`]).
    pub bytes: usize,
}

impl Budget {
    /// No bound but each rule's and each table's own.
    pub const UNBOUNDED: Budget = Budget { steps: usize::MAX, boxes: usize::MAX, bytes: usize::MAX };
}

/// A compiled first-match rule table.
#[derive(Clone, Debug, Default)]
pub struct RuleTable {
    forest: Forest,
    rules: usize,
    /// For tables with residual checks: the forest's entries are clauses, not rules.
    checks: Option<Box<Checks>>,
    /// Rules too complex to expand exactly, decided by interpretation (see [`Residual::Rule`]).
    interpreted: usize,
}

/// The residual checks of a table and the clauses that need them. A clause is one rule's
/// boxes that need the same answers from its checks; clauses are numbered in rule order, so
/// the first clause that holds is the first rule's.
#[derive(Clone, Debug, Default)]
struct Checks {
    /// Each clause's rule.
    rule_of: Vec<u32>,
    /// Each clause's span of `needs`.
    needs_of: Vec<(u32, u32)>,
    /// `(check, answer)`: a check of `tests` and the answer the clause needs.
    needs: Vec<(u32, bool)>,
    tests: Vec<Residual>,
    /// The unsliced `contains` tests among `tests`, searched together per field.
    literals: Literals,
}

/// What the boxes cannot decide, checked for the candidates they find.
#[derive(Clone, Debug)]
enum Residual {
    /// A byte test (payload, slices, `contains`, `matches`).
    Bytes(ByteTest),
    /// A whole rule too complex to expand into boxes exactly: its boxes are a superset
    /// ([`compile::superset_boxes`]) and this decides.
    Rule(Expr),
}

impl Checks {
    /// True when clause `clause`'s checks answer as it needs on `frame`.
    fn hold(&self, clause: u32, key: &Key, frame: &[u8], seen: &mut Seen) -> bool {
        let (from, to) = self.needs_of[clause as usize];
        self.needs[from as usize..to as usize].iter().all(|&(t, answer)| {
            let holds = match &self.tests[t as usize] {
                Residual::Bytes(test) => self.literals.holds(t, test, key, frame, seen),
                Residual::Rule(expr) => eval(expr, key, frame),
            };
            holds == answer
        })
    }

    /// The first rule that selects the packet, given `found`, the first clause whose boxes
    /// hold its key: while a candidate's byte tests say no, the next candidate is looked up.
    fn resolve(&self, forest: &Forest, found: Option<u32>, key: &Key, frame: &[u8]) -> Option<u32> {
        let first = found?;
        let mut seen = Seen::default();
        if self.hold(first, key, frame, &mut seen) {
            return Some(self.rule_of[first as usize]);
        }
        let clause = forest.first_match_where(key, first.checked_add(1)?, |c| self.hold(c, key, frame, &mut seen))?;
        Some(self.rule_of[clause as usize])
    }
}

/// A rule that could not be compiled, with its index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule {index}: {error}")]
pub struct RuleCompileError {
    /// Index of the rule in the list given to [`RuleTable::build`].
    pub index: usize,
    /// What went wrong.
    pub error: CompileError,
}

impl RuleTable {
    /// Compiles `exprs`; the first is the highest priority.
    pub fn build<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Result<RuleTable, RuleCompileError> {
        RuleTable::build_then_boxes(exprs, &[])
    }

    /// Compiles `exprs`, then rules given as boxes (`(rule index, bounds)`, indices
    /// ascending from 0, as [`RuleTable::from_boxes`] takes them) after them: rule
    /// `exprs.len() + j` is box rule `j` (rule sets that are boxes already, such as
    /// ClassBench's, behind rules written as expressions).
    pub fn build_then_boxes<'a>(
        exprs: impl IntoIterator<Item = &'a Expr>,
        then: &[(u32, Bounds)],
    ) -> Result<RuleTable, RuleCompileError> {
        let mut unbounded = Budget::UNBOUNDED;
        RuleTable::build_then_boxes_within(exprs, then, &mut unbounded)
    }

    /// [`RuleTable::build_then_boxes`], spending from `budget` (each rule and the table
    /// bounded as ever): the expansion steps of its rules, then its boxes and bytes. The
    /// rule that finds steps or boxes spent is refused at its index; a table whose arrays
    /// pass the bytes left is refused as a whole (index 0). Refused, it spends no boxes or
    /// bytes.
    pub fn build_then_boxes_within<'a>(
        exprs: impl IntoIterator<Item = &'a Expr>,
        then: &[(u32, Bounds)],
        budget: &mut Budget,
    ) -> Result<RuleTable, RuleCompileError> {
        let left = &mut budget.steps;
        // Past either bound the table is refused: its own said first (a list too large on
        // its own is its fault, not the configuration's), then the configuration's.
        let boxes_left = budget.boxes;
        let past = |boxes: usize| match boxes {
            b if b > MAX_BOXES_PER_TABLE => Some(CompileError::TableTooLarge),
            b if b > boxes_left => Some(CompileError::BoxesSpent),
            _ => None,
        };
        let mut clauses = Vec::new();
        let mut checks = Checks::default();
        let mut boxes = 0;
        let mut rules = 0;
        let mut interpreted = 0;
        for (index, expr) in exprs.into_iter().enumerate() {
            let first_test = checks.tests.len() as u32;
            let cs = match compile::clauses_spending(expr, left) {
                Ok(cs) => {
                    checks.tests.extend(expr.byte_tests().into_iter().cloned().map(Residual::Bytes));
                    cs
                }
                // Too many boxes to be exact: a superset of boxes, the rule itself decides.
                Err(CompileError::TooComplex) => {
                    interpreted += 1;
                    checks.tests.push(Residual::Rule(expr.clone()));
                    let boxes = compile::superset_boxes_spending(expr, left);
                    vec![compile::Clause { boxes, checks: vec![(0, true)] }]
                }
                Err(error) => return Err(RuleCompileError { index, error }),
            };
            if *left == 0 {
                return Err(RuleCompileError { index, error: CompileError::BudgetSpent });
            }
            boxes += cs.iter().map(|c| c.boxes.len()).sum::<usize>();
            if let Some(error) = past(boxes) {
                return Err(RuleCompileError { index, error });
            }
            for c in cs {
                let from = checks.needs.len() as u32;
                checks.needs.extend(c.checks.iter().map(|&(t, answer)| (first_test + t, answer)));
                checks.needs_of.push((from, checks.needs.len() as u32));
                checks.rule_of.push(index as u32);
                clauses.push(c.boxes);
            }
            rules = index + 1;
        }
        let first_box_rule = rules;
        for group in then.chunk_by(|a, b| a.0 == b.0) {
            let index = first_box_rule + group[0].0 as usize;
            boxes += group.len();
            if let Some(error) = past(boxes) {
                return Err(RuleCompileError { index, error });
            }
            checks.needs_of.push((checks.needs.len() as u32, checks.needs.len() as u32));
            checks.rule_of.push(index as u32);
            clauses.push(group.iter().map(|(_, b)| *b).collect());
            rules = index + 1;
        }
        // Without residual checks the forest's entries are the rules themselves
        // (ClassBench-like tables: no clause to map back per lookup); with them, the clauses.
        let plain = checks.tests.is_empty();
        let boxes: Vec<(u32, Bounds)> = clauses
            .into_iter()
            .zip(&checks.rule_of)
            .enumerate()
            .flat_map(|(c, (bs, &rule))| bs.into_iter().map(move |b| (if plain { rule } else { c as u32 }, b)))
            .collect();
        let conditional: Vec<bool> = match plain {
            true => Vec::new(),
            false => checks.needs_of.iter().map(|&(from, to)| from < to).collect(),
        };
        let forest = Forest::build_within(&boxes, &conditional, budget.bytes)
            .ok_or(RuleCompileError { index: 0, error: CompileError::BytesSpent })?;
        budget.boxes -= boxes.len();
        budget.bytes -= forest.stats().bytes;
        if plain {
            return Ok(RuleTable { forest, rules, checks: None, interpreted });
        }
        checks.literals = Literals::new(checks.tests.iter().map(|t| match t {
            Residual::Bytes(test) => Some(test),
            Residual::Rule(_) => None,
        }));
        Ok(RuleTable { forest, rules, checks: Some(Box::new(checks)), interpreted })
    }

    /// A table over boxes given directly as `(rule index, bounds)`, rule indices ascending
    /// (for rule sets that are already boxes, such as ClassBench's).
    pub fn from_boxes(boxes: &[(u32, Bounds)]) -> RuleTable {
        let rules = boxes.last().map_or(0, |b| b.0 as usize + 1);
        RuleTable { forest: Forest::build(boxes), rules, checks: None, interpreted: 0 }
    }

    /// Number of rules compiled.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// True when the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Rules too complex to expand into boxes exactly (more than
    /// [`compile::MAX_BOXES_PER_RULE`]), whose candidates the rule itself decides, by
    /// interpretation: correct, but a cost per candidate packet.
    pub fn interpreted(&self) -> usize {
        self.interpreted
    }

    /// Sizes of the compiled structure.
    pub fn stats(&self) -> ForestStats {
        self.forest.stats()
    }

    /// The index of the first rule that selects the packet whose key is `key`, parsed from
    /// `frame` (read only by byte tests, and only for the candidates the boxes find).
    #[inline]
    pub fn first_match(&self, key: &Key, frame: &[u8]) -> Option<u32> {
        let found = self.forest.first_match(key);
        match &self.checks {
            None => found,
            Some(checks) => checks.resolve(&self.forest, found, key, frame),
        }
    }

    /// [`RuleTable::first_match`] for each of `keys` (parsed from `frames`, as many), into
    /// `out` (as long as `keys`); faster per key than one at a time (see `tree`).
    pub fn first_match_batch(&self, keys: &[&Key], frames: &[&[u8]], out: &mut [Option<u32>]) {
        debug_assert_eq!(keys.len(), frames.len(), "a frame for every key");
        self.forest.first_match_batch(keys, out);
        if let Some(checks) = &self.checks {
            // Every answer resolved to a rule number, a key without its frame too (read as
            // an empty frame): zipped with a short `frames`, the tail kept the forest's
            // clause numbers.
            for (i, (o, key)) in out.iter_mut().zip(keys).enumerate() {
                *o = checks.resolve(&self.forest, *o, key, frames.get(i).copied().unwrap_or(&[]));
            }
        }
    }
}

/// The reference first-match classifier: evaluates each expression in order.
#[derive(Clone, Copy, Debug)]
pub struct LinearScan<'a> {
    exprs: &'a [Expr],
}

impl<'a> LinearScan<'a> {
    /// A scan over `exprs`, the first being the highest priority.
    pub fn new(exprs: &'a [Expr]) -> Self {
        LinearScan { exprs }
    }

    /// The index of the first expression that selects the packet `key` was parsed from.
    pub fn first_match(&self, key: &Key, frame: &[u8]) -> Option<u32> {
        self.exprs.iter().position(|e| eval(e, key, frame)).map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    /// The rules of one table (a configuration's, in `transitd`) share a budget of expansion
    /// steps: with room for two and a half rules at their own bounds, the third such finds
    /// the budget spent and is refused at its index, while each alone compiles (interpreted).
    #[test]
    fn rules_share_one_budget_of_expansion_steps() {
        // 1500 x 1500 contradicting pairs: past one rule's bound, kept as a superset.
        let ports = |from: u32| (from..from + 1500).map(|p| format!("udp.srcport == {p}")).collect::<Vec<_>>();
        let costly = parse(&format!("({}) and ({})", ports(0).join(" or "), ports(10_000).join(" or "))).unwrap();
        let cheap = parse("ip.src == 10.0.0.1").unwrap();
        let mut probe = Budget::UNBOUNDED;
        RuleTable::build_then_boxes_within([&costly], &[], &mut probe).unwrap();
        let one = usize::MAX - probe.steps;
        assert!(one > compile::MAX_EXPANSION_STEPS, "its exact try and its superset's: {one}");
        let mut left = Budget { steps: 2 * one + one / 2, ..Budget::UNBOUNDED };
        let e = RuleTable::build_then_boxes_within([&cheap, &costly, &costly, &costly], &[], &mut left).unwrap_err();
        assert_eq!((e.index, e.error), (3, CompileError::BudgetSpent), "the rule that spent it");
        assert_eq!(left.steps, 0);
        // Alone, unbudgeted, it compiles (and is interpreted).
        assert_eq!(RuleTable::build([&costly]).unwrap().interpreted, 1);
    }

    /// A rule whose byte tests need more distinct answers than a rule may have clauses (an
    /// `and` of nine `contains ... or contains ...`: 512) is interpreted, where its clauses
    /// were each tried by every packet in their leaf; seven (128) still compile.
    #[test]
    fn a_rule_of_too_many_byte_test_answers_is_interpreted() {
        let rule = |n: usize| {
            let terms: Vec<String> =
                (0..n).map(|i| format!("(udp.payload contains \"a{i}\" or udp.payload contains \"b{i}\")")).collect();
            parse(&terms.join(" and ")).unwrap()
        };
        assert_eq!(compile::clauses(&rule(7)).map(|c| c.len()), Ok(128));
        assert_eq!(compile::clauses(&rule(9)).map(|c| c.len()), Err(CompileError::TooComplex));
        assert_eq!(RuleTable::build([&rule(7)]).unwrap().interpreted(), 0);
        assert_eq!(RuleTable::build([&rule(9)]).unwrap().interpreted(), 1);
    }

    /// `!=`, `===` and `all` over the slices of an address field of two occurrences
    /// (`ip.addr[0] != 0a`) need the first to pass and the second to be absent or pass: two
    /// clauses. They were eight (a presence test of each, and of either), each a residual
    /// check a packet in the rule's leaf tried, and a rule of three such tests (512) was
    /// interpreted. Which packets they select, tshark says (`match_oracle.rs`,
    /// `an_address_the_capture_cut_off_is_no_occurrence_of_the_field`).
    #[test]
    fn every_occurrence_of_an_address_slice_is_two_clauses() {
        for text in ["ip.addr[0] != 0a", "ipv6.addr[0] === 20", "all eth.addr[0] == 02", "all len(ip.addr) == 4"] {
            assert_eq!(compile::clauses(&parse(text).unwrap()).map(|c| c.len()), Ok(2), "{text}");
        }
        let three = parse("ip.addr[0] != 0a and ip.addr[1] != 00 and ip.addr[2] != 01").unwrap();
        assert_eq!(compile::clauses(&three).map(|c| c.len()), Ok(8));
        assert_eq!(RuleTable::build([&three]).unwrap().interpreted(), 0);
    }

    /// A rule whose exact expansion has more boxes than a rule may have (3 x 2 x 54 x 72) is
    /// compiled as a superset and decided by interpretation: the same first match as the
    /// linear scan, on keys that meet each of its terms or miss one.
    #[test]
    fn a_rule_too_complex_to_expand_is_interpreted() {
        let texts = [
            "ip.src == 10.0.0.1",
            "mpls.label == 0 and eth.src !== 00:00:00:00:00:00 and vlan.id != 1 and ipv6.addr != 2001:db8::1",
            "ipv6",
        ];
        let exprs: Vec<Expr> = texts.iter().map(|t| parse(t).unwrap()).collect();
        assert_eq!(compile::clauses(&exprs[1]), Err(CompileError::TooComplex));
        let table = RuleTable::build(&exprs).unwrap();
        assert_eq!(table.interpreted(), 1);
        let linear = LinearScan::new(&exprs);
        let mut picked = std::collections::BTreeSet::new();
        for label in [0u32, 5] {
            for mac in [[0u8; 6], [2, 0, 0, 0, 0, 1]] {
                for vlan in [None, Some(1u16), Some(7)] {
                    for dst in ["2001:db8::1", "2001:db8::2"] {
                        let mut key = Key::new(100);
                        key.set_ethernet(0x86dd, mac, [2, 0, 0, 0, 0, 2]);
                        key.push_mpls(label << 12 | 0x100 | 64);
                        if let Some(v) = vlan {
                            key.push_vlan(v);
                        }
                        let dst: std::net::Ipv6Addr = dst.parse().unwrap();
                        key.set_ipv6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], dst.octets(), 6, 64, 20);
                        let expect = linear.first_match(&key, &[]);
                        assert_eq!(table.first_match(&key, &[]), expect, "{key:?}");
                        let mut out = [None];
                        table.first_match_batch(&[&key], &[&[]], &mut out);
                        assert_eq!(out[0], expect);
                        picked.insert(expect);
                    }
                }
            }
        }
        assert_eq!(
            picked,
            [Some(1), Some(2)].into(),
            "both the interpreted rule and the one after it decide some keys"
        );
    }
}
