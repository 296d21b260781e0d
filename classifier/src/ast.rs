//! The parsed form of a rule expression.
//!
//! Parsing resolves every literal against its field's type, so a `Test` holds a value set,
//! not text: `tcp.dstport in {20..21}` is `Test { tcp.dstport, Any({20..=21}) }`, and
//! `ip.addr != 10.0.0.1` is `Test { ip.addr, All(everything but 10.0.0.1) }`.

use crate::bytes::ByteTest;
use crate::field::FieldDef;
use crate::set::IntervalSet;

/// A byte range in the expression text, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A rule expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Always true (the empty expression, as in Wireshark).
    True,
    /// True when any operand is.
    Or(Vec<Expr>),
    /// True when every operand is.
    And(Vec<Expr>),
    /// True when the operand is false.
    Not(Box<Expr>),
    /// A test on one field.
    Test(Test),
    /// A test on a field's bytes (slices, `contains`, `matches`, `len()`), which the rule
    /// table checks on the frame for the candidates its boxes find.
    Bytes(ByteTest),
}

impl Expr {
    /// Its byte tests, in the order the compiler numbers them (depth first, left to right).
    pub fn byte_tests(&self) -> Vec<&ByteTest> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a ByteTest>) {
            match e {
                Expr::True | Expr::Test(_) => {}
                Expr::Or(terms) | Expr::And(terms) => terms.iter().for_each(|t| walk(t, out)),
                Expr::Not(inner) => walk(inner, out),
                Expr::Bytes(b) => out.push(b),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// A test on one field, with Wireshark's multi-occurrence meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    /// The field.
    pub field: &'static FieldDef,
    /// What must hold of its occurrences.
    pub pred: Pred,
    /// Where the test is written.
    pub span: Span,
}

/// What a test asks of a field's occurrences (Wireshark 4.0 semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred {
    /// The field occurs at all (a bare field name).
    Present,
    /// Some occurrence lies in the set: `==`, `<`, `in`, `!==` (any_ne) and friends.
    Any(IntervalSet),
    /// The field occurs, and every occurrence lies in the set: `!=` (all_ne) and `===`.
    All(IntervalSet),
}
