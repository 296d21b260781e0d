//! `RuleTable`: compiled first-match lookup over a list of expressions.
//!
//! Rule `i` is the `i`-th expression; the lowest index whose expression selects the key wins.
//! The table stores each rule's boxes (see `compile`) and keeps, per box, only the slots the
//! rule constrains, scanned in priority order. [`LinearScan`] is the reference it is tested
//! against: it evaluates each expression's AST in turn.

use crate::ast::Expr;
use crate::compile::{self, Bounds, CompileError};
use crate::eval::eval;
use crate::field::Key;

/// A slot constraint of one box: `lo <= key[dim] <= hi`.
#[derive(Clone, Copy, Debug)]
struct Constraint {
    dim: u8,
    lo: u32,
    hi: u32,
}

/// A compiled first-match rule table.
#[derive(Clone, Debug, Default)]
pub struct RuleTable {
    /// `(rule index, first constraint, constraint count)`, in rule order.
    boxes: Vec<(u32, u32, u32)>,
    constraints: Vec<Constraint>,
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
        let mut table = RuleTable::default();
        for (index, expr) in exprs.into_iter().enumerate() {
            let boxes = compile::boxes(expr).map_err(|error| RuleCompileError { index, error })?;
            for b in boxes {
                table.push_box(index as u32, &b);
            }
            table.rules = index + 1;
        }
        Ok(table)
    }

    fn push_box(&mut self, rule: u32, b: &Bounds) {
        let first = self.constraints.len() as u32;
        for (dim, r) in b.iter().enumerate() {
            if *r != [0, u32::MAX] {
                self.constraints.push(Constraint { dim: dim as u8, lo: r[0], hi: r[1] });
            }
        }
        let count = self.constraints.len() as u32 - first;
        self.boxes.push((rule, first, count));
    }

    /// Number of rules compiled.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// True when the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// The index of the first rule that selects `key`.
    #[inline]
    pub fn first_match(&self, key: &Key) -> Option<u32> {
        self.boxes.iter().find_map(|&(rule, first, count)| {
            let cs = &self.constraints[first as usize..(first + count) as usize];
            cs.iter()
                .all(|c| {
                    let v = key.0[c.dim as usize];
                    c.lo <= v && v <= c.hi
                })
                .then_some(rule)
        })
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
