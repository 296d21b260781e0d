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
use crate::tree::{Forest, ForestStats};

/// Upper bound on the boxes of one table (all its rules together): a box is a few hundred
/// bytes while the table is built, so this bounds a build to about 70 MB whatever the rules.
/// The ClassBench sets of 10,000 rules take at most a few tens of thousands.
pub const MAX_BOXES_PER_TABLE: usize = 262_144;

/// A compiled first-match rule table.
#[derive(Clone, Debug, Default)]
pub struct RuleTable {
    forest: Forest,
    rules: usize,
    /// For tables with byte tests: the forest's entries are clauses, not rules.
    checks: Option<Box<Checks>>,
}

/// The byte tests of a table and the clauses that need them. A clause is one rule's boxes
/// that need the same answers from its byte tests; clauses are numbered in rule order, so
/// the first clause that holds is the first rule's.
#[derive(Clone, Debug, Default)]
struct Checks {
    /// Each clause's rule.
    rule_of: Vec<u32>,
    /// Each clause's span of `needs`.
    needs_of: Vec<(u32, u32)>,
    /// `(test, answer)`: a byte test of `tests` and the answer the clause needs.
    needs: Vec<(u32, bool)>,
    tests: Vec<ByteTest>,
}

impl Checks {
    /// True when clause `clause`'s byte tests answer as it needs on `frame`.
    fn hold(&self, clause: u32, key: &Key, frame: &[u8]) -> bool {
        let (from, to) = self.needs_of[clause as usize];
        self.needs[from as usize..to as usize]
            .iter()
            .all(|&(t, answer)| self.tests[t as usize].holds(key, frame) == answer)
    }

    /// The first rule that selects the packet, given `found`, the first clause whose boxes
    /// hold its key: while a candidate's byte tests say no, the next candidate is looked up.
    fn resolve(&self, forest: &Forest, mut found: Option<u32>, key: &Key, frame: &[u8]) -> Option<u32> {
        while let Some(clause) = found {
            if self.hold(clause, key, frame) {
                return Some(self.rule_of[clause as usize]);
            }
            found = forest.first_match_from(key, clause + 1);
        }
        None
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
        let mut clauses = Vec::new();
        let mut checks = Checks::default();
        let mut boxes = 0;
        let mut rules = 0;
        for (index, expr) in exprs.into_iter().enumerate() {
            let cs = compile::clauses(expr).map_err(|error| RuleCompileError { index, error })?;
            boxes += cs.iter().map(|c| c.boxes.len()).sum::<usize>();
            if boxes > MAX_BOXES_PER_TABLE {
                return Err(RuleCompileError { index, error: CompileError::TableTooLarge });
            }
            let first_test = checks.tests.len() as u32;
            checks.tests.extend(expr.byte_tests().into_iter().cloned());
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
            if boxes > MAX_BOXES_PER_TABLE {
                return Err(RuleCompileError { index, error: CompileError::TableTooLarge });
            }
            checks.needs_of.push((checks.needs.len() as u32, checks.needs.len() as u32));
            checks.rule_of.push(index as u32);
            clauses.push(group.iter().map(|(_, b)| *b).collect());
            rules = index + 1;
        }
        // Without byte tests the forest's entries are the rules themselves (ClassBench-like
        // tables: no clause to map back per lookup); with them, the clauses.
        let plain = checks.tests.is_empty();
        let boxes: Vec<(u32, Bounds)> = clauses
            .into_iter()
            .zip(&checks.rule_of)
            .enumerate()
            .flat_map(|(c, (bs, &rule))| bs.into_iter().map(move |b| (if plain { rule } else { c as u32 }, b)))
            .collect();
        if plain {
            return Ok(RuleTable { forest: Forest::build(&boxes), rules, checks: None });
        }
        let conditional: Vec<bool> = checks.needs_of.iter().map(|&(from, to)| from < to).collect();
        Ok(RuleTable { forest: Forest::build_conditional(&boxes, &conditional), rules, checks: Some(Box::new(checks)) })
    }

    /// A table over boxes given directly as `(rule index, bounds)`, rule indices ascending
    /// (for rule sets that are already boxes, such as ClassBench's).
    pub fn from_boxes(boxes: &[(u32, Bounds)]) -> RuleTable {
        let rules = boxes.last().map_or(0, |b| b.0 as usize + 1);
        RuleTable { forest: Forest::build(boxes), rules, checks: None }
    }

    /// Number of rules compiled.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// True when the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
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
        self.forest.first_match_batch(keys, out);
        if let Some(checks) = &self.checks {
            for ((o, key), frame) in out.iter_mut().zip(keys).zip(frames) {
                *o = checks.resolve(&self.forest, *o, key, frame);
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
