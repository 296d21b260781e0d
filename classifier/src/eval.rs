//! The reference interpreter: evaluates an expression on a key, straight from the AST.
//!
//! It shares nothing with the compiler but the parsed expression and the field table, so the
//! property tests can hold the compiled table to it, and the tshark oracle tests hold both.

use crate::ast::{Expr, Pred, Test};
use crate::field::Key;

/// True when `expr` selects the packet whose fields are `key`, parsed from `frame` (which
/// only byte tests read).
pub fn eval(expr: &Expr, key: &Key, frame: &[u8]) -> bool {
    match expr {
        Expr::True => true,
        Expr::Or(terms) => terms.iter().any(|e| eval(e, key, frame)),
        Expr::And(terms) => terms.iter().all(|e| eval(e, key, frame)),
        Expr::Not(inner) => !eval(inner, key, frame),
        Expr::Test(test) => eval_test(test, key),
        Expr::Bytes(test) => test.holds(key, frame),
    }
}

fn eval_test(test: &Test, key: &Key) -> bool {
    let mut values = test.field.occurrences.iter().filter_map(|o| o.value(key));
    match &test.pred {
        Pred::Present => values.next().is_some(),
        Pred::Any(set) => values.any(|v| set.contains(v)),
        Pred::All(set) => {
            let mut seen = false;
            for v in values {
                if !set.contains(v) {
                    return false;
                }
                seen = true;
            }
            seen
        }
    }
}
