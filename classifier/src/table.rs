//! `RuleTable`: compiled first-match lookup over a list of expressions.
//!
//! Rule `i` is the `i`-th expression; the lowest index whose expression selects the key wins.
//! The table compiles each rule into boxes (see `compile`) and the boxes into a forest of
//! decision trees (see `tree`). [`LinearScan`] is the reference it is tested against: it
//! evaluates each expression's AST in turn.

use crate::ast::Expr;
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
        let mut boxes = Vec::new();
        let mut rules = 0;
        for (index, expr) in exprs.into_iter().enumerate() {
            let bs = compile::boxes(expr).map_err(|error| RuleCompileError { index, error })?;
            if boxes.len() + bs.len() > MAX_BOXES_PER_TABLE {
                return Err(RuleCompileError { index, error: CompileError::TableTooLarge });
            }
            boxes.extend(bs.into_iter().map(|b| (index as u32, b)));
            rules = index + 1;
        }
        Ok(RuleTable { forest: Forest::build(&boxes), rules })
    }

    /// A table over boxes given directly as `(rule index, bounds)`, rule indices ascending
    /// (for rule sets that are already boxes, such as ClassBench's).
    pub fn from_boxes(boxes: &[(u32, Bounds)]) -> RuleTable {
        let rules = boxes.last().map_or(0, |b| b.0 as usize + 1);
        RuleTable { forest: Forest::build(boxes), rules }
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

    /// The index of the first rule that selects `key`.
    #[inline]
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        self.forest.first_match(key)
    }

    /// [`RuleTable::first_match`] for each of `keys`, into `out` (as long as `keys`); faster
    /// per key than one at a time (see `tree`).
    pub fn first_match_batch(&self, keys: &[&Key], out: &mut [Option<u32>]) {
        self.forest.first_match_batch(keys, out);
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

    /// The index of the first expression that selects `key`.
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        self.exprs.iter().position(|e| eval(e, key)).map(|i| i as u32)
    }
}
