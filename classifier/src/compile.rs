//! Expression → boxes: the compiler's front half.
//!
//! An expression is put in negation normal form (a `not` in front of a test becomes the
//! complement of the test's value set, with Wireshark's presence rules), then in disjunctive
//! normal form over per-slot interval sets, and each conjunction is spread into boxes: one
//! inclusive `[lo, hi]` per key slot. A packet matches the expression exactly when its key
//! lies in one of the boxes. 128-bit addresses become up to seven boxes over their four
//! 32-bit words per interval.

use std::collections::{BTreeMap, HashMap};

use crate::ast::{Expr, Pred, Test};
use crate::field::{ABSENT, DIMS, Dim, Guard, Occurrence, Slot};
use crate::set::IntervalSet;

/// Upper bound on the boxes one rule may expand to; beyond it the rule is refused.
pub const MAX_BOXES_PER_RULE: usize = 16_384;

/// Upper bound on the work of expanding one rule's normal form: each pair of conjunctions
/// combined (`(a or b) and (c or d)` combines four) costs one step and one per range of the
/// value sets it intersects (a mask such as `tcp.srcport & 2 == 0` is a set of 16,384
/// ranges: counted as one step, a rule of a few hundred of them took minutes). Conjunctions
/// that contradict each other vanish, so a rule can stay under [`MAX_BOXES_PER_RULE`] while
/// its expansion does quadratic work; this bounds that work (a tenth of a second) before the
/// rule is refused.
pub const MAX_EXPANSION_STEPS: usize = 1_000_000;

/// Upper bound on the clauses (distinct answers its byte tests need) of one rule; beyond it
/// the rule is too complex and interpreted. A packet in a leaf tries each clause there: an
/// `and` of 14 `contains ... or contains ...` made 16,384 of them, 262,144 over 16 rules in
/// one leaf, where interpreting the expression costs its 28 tests.
pub const MAX_CLAUSES_PER_RULE: usize = 256;

/// One inclusive `[lo, hi]` per key slot.
pub type Bounds = [[u32; 2]; DIMS];

/// Bounds that hold every key.
pub const FULL: Bounds = [[0, u32::MAX]; DIMS];

/// Why an expression cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Its normal form has more boxes than [`MAX_BOXES_PER_RULE`], or expanding it takes more
    /// than [`MAX_EXPANSION_STEPS`].
    #[error("the expression expands to more than {MAX_BOXES_PER_RULE} boxes; split it into several rules")]
    TooComplex,
    /// The rules before it and it expand to more than [`crate::table::MAX_BOXES_PER_TABLE`]
    /// boxes in all.
    #[error(
        "the rule list expands to more than {} boxes by this rule; split it or simplify its sets",
        crate::table::MAX_BOXES_PER_TABLE
    )]
    TableTooLarge,
    /// Boxes were asked of an expression with byte tests, which boxes cannot hold.
    #[error("the expression tests bytes; it needs a rule table, not boxes alone")]
    ByteTests,
    /// The rules compiled before it and it spent the budget of expansion steps they shared
    /// (a configuration's: [`RuleTable::build_then_boxes_within`](crate::RuleTable)).
    #[error(
        "the rules up to this one take more expansion steps to compile than a configuration may spend; simplify them"
    )]
    BudgetSpent,
    /// The tables built before it and its own rules up to it hold more boxes than a
    /// configuration may ([`crate::table::Budget::boxes`]).
    #[error("the rules up to this one bring the configuration past the boxes it may hold; simplify them")]
    BoxesSpent,
    /// The table's lookup arrays would take more memory than the configuration has left
    /// ([`crate::table::Budget::bytes`]).
    #[error("the rule list's lookup tables take more memory than a configuration may hold; simplify its sets")]
    BytesSpent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Var {
    Narrow(Dim),
    /// `words` slots from this one on, read as one number.
    Wide(Dim, u8),
    /// The expression's `n`-th byte test: 1 when it holds. Not a key slot: it stays beside
    /// the boxes as a residual check.
    Check(u32),
}

impl Var {
    fn domain_max(self) -> u128 {
        match self {
            Var::Narrow(_) => u32::MAX.into(),
            Var::Wide(_, words) => u128::MAX >> (128 - 32 * u32::from(words)),
            Var::Check(_) => 1,
        }
    }
}

/// A formula in negation normal form.
enum F {
    True,
    False,
    Atom(Var, IntervalSet),
    And(Vec<F>),
    Or(Vec<F>),
}

fn var(slot: Slot) -> Option<Var> {
    match slot {
        Slot::None => None,
        Slot::Narrow(d) => Some(Var::Narrow(d)),
        Slot::Wide { first, words } => Some(Var::Wide(first, words)),
    }
}

fn guard(g: Guard, holds: bool) -> F {
    let (dim, set) = match g {
        Guard::Always => return if holds { F::True } else { F::False },
        Guard::IpVersions(lo, hi) => (Dim::IpVersion, IntervalSet::range(lo.into(), hi.into())),
        Guard::L4Proto(p) => (Dim::L4Proto, IntervalSet::single(p.into())),
        Guard::Has(d) => (d, present_values()),
    };
    F::Atom(Var::Narrow(dim), if holds { set } else { set.complement(u32::MAX.into()) })
}

fn present_values() -> IntervalSet {
    IntervalSet::range(0, u128::from(ABSENT) - 1)
}

/// The occurrence exists.
fn present(o: &Occurrence) -> F {
    match o.slot {
        Slot::Narrow(d) => F::And(vec![guard(o.guard, true), F::Atom(Var::Narrow(d), present_values())]),
        _ => guard(o.guard, true),
    }
}

/// The occurrence does not exist.
fn absent(o: &Occurrence) -> F {
    match o.slot {
        Slot::Narrow(d) => {
            F::Or(vec![guard(o.guard, false), F::Atom(Var::Narrow(d), IntervalSet::single(ABSENT.into()))])
        }
        _ => guard(o.guard, false),
    }
}

/// The occurrence exists and its value is in `set` (which never holds [`ABSENT`]).
fn value_in(o: &Occurrence, set: &IntervalSet) -> F {
    match var(o.slot) {
        Some(v) => F::And(vec![guard(o.guard, true), F::Atom(v, set.clone())]),
        None => F::False,
    }
}

/// The occurrence does not exist, or exists with a value outside `set`.
fn value_not_in(o: &Occurrence, set: &IntervalSet) -> F {
    match var(o.slot) {
        Some(v) => F::Or(vec![guard(o.guard, false), F::Atom(v, set.complement(v.domain_max()))]),
        None => F::True,
    }
}

fn test_formula(test: &Test, positive: bool) -> F {
    let occs = test.field.occurrences;
    match (&test.pred, positive) {
        (Pred::Present, true) => F::Or(occs.iter().map(present).collect()),
        (Pred::Present, false) => F::And(occs.iter().map(absent).collect()),
        (Pred::Any(set), true) => F::Or(occs.iter().map(|o| value_in(o, set)).collect()),
        (Pred::Any(set), false) => F::And(occs.iter().map(|o| value_not_in(o, set)).collect()),
        // Some occurrence exists, and none lies outside the set.
        (Pred::All(set), true) => F::And(vec![
            F::Or(occs.iter().map(present).collect()),
            F::And(occs.iter().map(|o| value_not_in(o, &outside(o, set))).collect()),
        ]),
        // No occurrence exists, or one lies outside the set.
        (Pred::All(set), false) => F::Or(vec![
            F::And(occs.iter().map(absent).collect()),
            F::Or(occs.iter().map(|o| value_in(o, &outside(o, set))).collect()),
        ]),
    }
}

/// The values `o` can take when present that are not in `set`.
fn outside(o: &Occurrence, set: &IntervalSet) -> IntervalSet {
    let present = match var(o.slot) {
        Some(Var::Narrow(_)) => present_values(),
        Some(v) => IntervalSet::range(0, v.domain_max()),
        None => IntervalSet::range(0, u128::MAX),
    };
    set.complement(u128::MAX).intersect(&present)
}

/// `checks` counts the byte tests met so far (the numbering of [`Expr::byte_tests`]).
fn formula(expr: &Expr, positive: bool, checks: &mut u32) -> F {
    match expr {
        Expr::True => {
            if positive {
                F::True
            } else {
                F::False
            }
        }
        Expr::Not(inner) => formula(inner, !positive, checks),
        Expr::Or(terms) | Expr::And(terms) => {
            let parts = terms.iter().map(|t| formula(t, positive, checks)).collect();
            // De Morgan: a negated `or` is an `and` of negations, and vice versa.
            if matches!(expr, Expr::Or(_)) == positive { F::Or(parts) } else { F::And(parts) }
        }
        Expr::Test(test) => test_formula(test, positive),
        Expr::Bytes(_) => {
            *checks += 1;
            F::Atom(Var::Check(*checks - 1), IntervalSet::single(positive.into()))
        }
    }
}

/// A conjunction: every variable's value lies in its set (variables not named are free).
type Conj = BTreeMap<Var, IntervalSet>;

/// What combining `c` with another conjunction costs: its sets are cloned and intersected.
fn weight(c: &Conj) -> usize {
    1 + c.values().map(|s| s.ranges().len()).sum::<usize>()
}

/// The disjunctive normal form of `f`; `steps` counts the work of combining conjunctions
/// ([`MAX_EXPANSION_STEPS`]), against `budget`.
fn dnf(f: &F, steps: &mut usize, budget: usize) -> Result<Vec<Conj>, CompileError> {
    Ok(match f {
        F::True => vec![Conj::new()],
        F::False => vec![],
        F::Atom(v, set) => {
            if set.is_empty() {
                vec![]
            } else {
                vec![Conj::from([(*v, set.clone())])]
            }
        }
        F::Or(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(dnf(p, steps, budget)?);
                if out.len() > MAX_BOXES_PER_RULE {
                    return Err(CompileError::TooComplex);
                }
            }
            out
        }
        F::And(parts) => {
            let mut acc = vec![Conj::new()];
            for p in parts {
                let rhs = dnf(p, steps, budget)?;
                let rhs_weight: usize = rhs.iter().map(weight).sum();
                let mut next = Vec::new();
                for a in &acc {
                    *steps = steps.saturating_add(rhs_weight).saturating_add(weight(a).saturating_mul(rhs.len()));
                    if *steps > budget {
                        return Err(CompileError::TooComplex);
                    }
                    for b in &rhs {
                        if let Some(c) = conjoin(a, b) {
                            next.push(c);
                        }
                    }
                    if next.len() > MAX_BOXES_PER_RULE {
                        return Err(CompileError::TooComplex);
                    }
                }
                acc = next;
            }
            acc
        }
    })
}

/// `a ∧ b`, or `None` when some variable's sets do not intersect.
fn conjoin(a: &Conj, b: &Conj) -> Option<Conj> {
    let mut out = a.clone();
    for (v, set) in b {
        let merged = match out.get(v) {
            Some(existing) => existing.intersect(set),
            None => set.clone(),
        };
        if merged.is_empty() {
            return None;
        }
        out.insert(*v, merged);
    }
    Some(out)
}

/// Splits `[lo, hi]` over the low `words` 32-bit words of a 128-bit value into boxes, one
/// `[lo, hi]` per word, most significant first.
fn word_boxes(lo: u128, hi: u128, words: usize, out: &mut Vec<Vec<[u32; 2]>>) {
    if words == 0 {
        out.push(Vec::new());
        return;
    }
    let shift = 32 * (words as u32 - 1);
    let low_max: u128 = if shift == 0 { 0 } else { u128::MAX >> (128 - shift) };
    let (lo_w, hi_w) = ((lo >> shift) as u32, (hi >> shift) as u32);
    let (lo_rest, hi_rest) = (lo & low_max, hi & low_max);
    let push = |w: [u32; 2], rlo: u128, rhi: u128, out: &mut Vec<Vec<[u32; 2]>>| {
        let mut tails = Vec::new();
        word_boxes(rlo, rhi, words - 1, &mut tails);
        for mut tail in tails {
            tail.insert(0, w);
            out.push(tail);
        }
    };
    if lo_w == hi_w {
        push([lo_w, lo_w], lo_rest, hi_rest, out);
        return;
    }
    // A partial first word, whole middle words, a partial last word; partial ends that are
    // in fact whole fold into the middle.
    let mut mid_lo = lo_w;
    if lo_rest != 0 {
        push([lo_w, lo_w], lo_rest, low_max, out);
        mid_lo = lo_w + 1;
    }
    let mut mid_hi = hi_w;
    let last_partial = hi_rest != low_max;
    if last_partial {
        mid_hi = hi_w - 1;
    }
    if mid_lo <= mid_hi {
        push([mid_lo, mid_hi], 0, low_max, out);
    }
    if last_partial {
        push([hi_w, hi_w], 0, hi_rest, out);
    }
}

/// The boxes of one conjunction (its byte tests aside).
fn conj_boxes(conj: &Conj, out: &mut Vec<Bounds>) -> Result<(), CompileError> {
    let mut boxes = vec![FULL];
    for (v, set) in conj {
        let (first, choices): (usize, Vec<Vec<[u32; 2]>>) = match v {
            Var::Check(_) => continue,
            Var::Narrow(d) => {
                if set.ranges().len() > MAX_BOXES_PER_RULE {
                    return Err(CompileError::TooComplex);
                }
                (*d as usize, set.ranges().iter().map(|&(lo, hi)| vec![[lo as u32, hi as u32]]).collect())
            }
            Var::Wide(first, words) => {
                let mut choices = Vec::new();
                for &(lo, hi) in set.ranges() {
                    word_boxes(lo, hi, usize::from(*words), &mut choices);
                    // Refuse as soon as it is certain, not after expanding a huge set.
                    if choices.len() > MAX_BOXES_PER_RULE {
                        return Err(CompileError::TooComplex);
                    }
                }
                (*first as usize, choices)
            }
        };
        if boxes.len() * choices.len() > MAX_BOXES_PER_RULE {
            return Err(CompileError::TooComplex);
        }
        let mut next = Vec::with_capacity(boxes.len() * choices.len());
        for b in &boxes {
            for c in &choices {
                let mut nb = *b;
                // Two variables can read one slot (`ip.id`'s narrow one and
                // `ipv6.fraghdr.ident`'s whole-range one): the box holds what both allow.
                if narrow_to(&mut nb[first..first + c.len()], c) {
                    next.push(nb);
                }
            }
        }
        boxes = next;
    }
    out.extend(boxes);
    Ok(())
}

/// Narrows each of `slots` to the range of `ranges` at its place; false when one is left empty.
fn narrow_to(slots: &mut [[u32; 2]], ranges: &[[u32; 2]]) -> bool {
    slots.iter_mut().zip(ranges).all(|(slot, &[lo, hi])| {
        *slot = [slot[0].max(lo), slot[1].min(hi)];
        slot[0] <= slot[1]
    })
}

/// Boxes that select a packet when its byte tests agree: `checks` are `(n, holds)`, the
/// expression's `n`-th byte test ([`Expr::byte_tests`]) and whether it must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The boxes.
    pub boxes: Vec<Bounds>,
    /// The byte tests, by number, each with the answer it needs; empty for most rules.
    pub checks: Vec<(u32, bool)>,
}

/// The clauses whose union is exactly the set of packets `expr` selects: a packet is
/// selected when its key lies in a clause's box and the clause's byte tests answer as it
/// needs. Conjunctions that need the same answers share a clause.
pub fn clauses(expr: &Expr) -> Result<Vec<Clause>, CompileError> {
    clauses_within(expr, &mut 0, MAX_EXPANSION_STEPS)
}

/// [`clauses`], the steps it takes spent from `left` (and bounded by it).
pub fn clauses_spending(expr: &Expr, left: &mut usize) -> Result<Vec<Clause>, CompileError> {
    let mut used = 0;
    let result = clauses_within(expr, &mut used, MAX_EXPANSION_STEPS.min(*left));
    *left = left.saturating_sub(used);
    result
}

/// [`clauses`], its expansion's work added to `steps` and bounded by `budget`.
fn clauses_within(expr: &Expr, steps: &mut usize, budget: usize) -> Result<Vec<Clause>, CompileError> {
    let mut out: Vec<Clause> = Vec::new();
    // Each clause by its answers: a scan of `out` per conjunction was quadratic.
    let mut by_checks: HashMap<Vec<(u32, bool)>, usize> = HashMap::new();
    let mut total = 0;
    for conj in dnf(&formula(expr, true, &mut 0), steps, budget)? {
        let checks: Vec<(u32, bool)> = conj
            .iter()
            .filter_map(|(v, set)| match v {
                Var::Check(n) => Some((*n, set.contains(1))),
                _ => None,
            })
            .collect();
        let at = match by_checks.get(&checks) {
            Some(&at) => at,
            None if out.len() >= MAX_CLAUSES_PER_RULE => return Err(CompileError::TooComplex),
            None => {
                by_checks.insert(checks.clone(), out.len());
                out.push(Clause { boxes: Vec::new(), checks });
                out.len() - 1
            }
        };
        let before = out[at].boxes.len();
        conj_boxes(&conj, &mut out[at].boxes)?;
        total += out[at].boxes.len() - before;
        if total > MAX_BOXES_PER_RULE {
            return Err(CompileError::TooComplex);
        }
    }
    Ok(out)
}

/// Boxes that hold every key `expr` selects, and more, for a rule too complex to expand
/// exactly ([`CompileError::TooComplex`]): the boxes of the largest conjunction of its
/// top-level `and` terms (in order, each kept while the whole still expands) that have no
/// byte tests, or one box that holds every key. The table checks such a rule's candidates
/// with the whole expression (`eval`): first match stays exact, and only what the kept
/// terms select pays for the interpretation.
pub fn superset_boxes(expr: &Expr) -> Vec<Bounds> {
    let mut unbounded = usize::MAX;
    superset_boxes_spending(expr, &mut unbounded)
}

/// [`superset_boxes`], the steps its tries take spent from `left` (and bounded by it).
pub fn superset_boxes_spending(expr: &Expr, left: &mut usize) -> Vec<Bounds> {
    fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::And(terms) => terms.iter().for_each(|t| conjuncts(t, out)),
            e => out.push(e),
        }
    }
    let mut terms = Vec::new();
    conjuncts(expr, &mut terms);
    let mut kept: Vec<Expr> = Vec::new();
    let mut best = vec![FULL];
    // Every try expands what is kept again, so the tries share one budget (a rule of
    // 150,000 terms, each kept, took minutes of tries that each fitted one): a few rules'
    // worth, then what is kept stays. A refused try costs up to its rest.
    let budget = (4 * MAX_EXPANSION_STEPS).min(*left);
    let mut steps = 0;
    for term in terms.into_iter().filter(|t| t.byte_tests().is_empty()) {
        kept.push(term.clone());
        match boxes_within(&Expr::And(kept.clone()), &mut steps, budget) {
            Ok(b) => best = b,
            Err(_) => {
                kept.pop();
            }
        }
        if steps >= budget {
            break;
        }
    }
    *left = left.saturating_sub(steps);
    best
}

/// The boxes whose union is exactly the set of keys `expr` selects; for expressions
/// without byte tests (refused otherwise: boxes alone cannot hold them).
pub fn boxes(expr: &Expr) -> Result<Vec<Bounds>, CompileError> {
    boxes_within(expr, &mut 0, MAX_EXPANSION_STEPS)
}

/// [`boxes`], its expansion's work added to `steps` and bounded by `budget`.
fn boxes_within(expr: &Expr, steps: &mut usize, budget: usize) -> Result<Vec<Bounds>, CompileError> {
    let mut out = Vec::new();
    for clause in clauses_within(expr, steps, budget)? {
        if !clause.checks.is_empty() {
            return Err(CompileError::ByteTests);
        }
        out.extend(clause.boxes);
    }
    Ok(out)
}

/// True when `key` lies in `b`.
#[inline]
pub fn box_contains(b: &Bounds, key: &crate::field::Key) -> bool {
    b.iter().zip(key.0.iter()).all(|(r, &v)| r[0] <= v && v <= r[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eval_boxes(bs: &[Vec<[u32; 2]>], v: u128) -> bool {
        bs.iter().any(|b| {
            b.iter().enumerate().all(|(i, r)| {
                let w = (v >> (96 - 32 * i)) as u32;
                r[0] <= w && w <= r[1]
            })
        })
    }

    #[test]
    fn expansion_work_is_bounded_even_when_everything_contradicts() {
        // 1500 × 1500 conjunctions, every one empty (a port cannot be two values): under the
        // box bound, but 2.25 million combinations; refused by the step bound instead.
        let ports = |from: u32| (from..from + 1500).map(|p| format!("udp.srcport == {p}")).collect::<Vec<_>>();
        let text = format!("({}) and ({})", ports(0).join(" or "), ports(10_000).join(" or "));
        let expr = crate::parse(&text).unwrap();
        assert_eq!(boxes(&expr), Err(CompileError::TooComplex));
        // The same shape, small, compiles to nothing.
        let small = format!("({}) and ({})", ports(0)[..3].join(" or "), ports(10_000)[..3].join(" or "));
        assert_eq!(boxes(&crate::parse(&small).unwrap()), Ok(vec![]));
    }

    /// Combining conjunctions costs by the ranges of the sets it intersects: a hundred terms
    /// each holding a set of 1,000 ranges, and a last one that contradicts them all, combine
    /// few conjunctions (about 20,000: under the bound when each counted one step, and the
    /// rule compiled to nothing) but intersect tens of millions of ranges; refused, and kept
    /// as a superset the table interprets.
    #[test]
    fn expansion_work_counts_the_ranges_it_intersects() {
        let ports = |from: u32| (0..1000).map(|p| (2 * p + from).to_string()).collect::<Vec<_>>().join(", ");
        let (odd, even) = (ports(1), ports(0));
        let terms: Vec<String> = (1..=100).map(|k| format!("(tcp.srcport in {{{odd}}} or ip.id == {k})")).collect();
        let rule = |terms: &[String]| crate::parse(&format!("{} and tcp.srcport in {{{even}}}", terms.join(" and ")));
        assert_eq!(clauses(&rule(&terms).unwrap()), Err(CompileError::TooComplex));
        assert_eq!(boxes(&rule(&terms[..2]).unwrap()), Ok(vec![]), "two such terms compile (to nothing)");
    }

    /// The over-approximation of a rule too complex to expand shares one budget among its
    /// tries: a rule of 150,000 `and`ed terms, each of which fitted, took minutes of tries
    /// that each expanded everything kept so far. What it returns still holds every key
    /// the rule selects (TTLs 200 to 255 here).
    #[test]
    fn the_superset_of_a_long_rule_is_found_within_one_budget() {
        let terms: Vec<String> = (0..150_000).map(|i| format!("ip.ttl != {}", i % 200)).collect();
        let expr = crate::parse(&terms.join(" and ")).unwrap();
        let found = superset_boxes(&expr);
        for ttl in 0..=255u32 {
            let mut key = crate::field::Key::new(60);
            key.set(crate::field::Dim::IpVersion, 4);
            key.set(crate::field::Dim::Ttl, ttl);
            let selected = crate::eval::eval(&expr, &key, &[]);
            assert_eq!(selected, ttl >= 200, "ttl {ttl}");
            if selected {
                assert!(found.iter().any(|b| box_contains(b, &key)), "ttl {ttl} is in no box");
            }
        }
    }

    /// `ip.id` and `ipv6.fraghdr.ident` read one slot, narrow and whole-range: a box holds
    /// what both allow. (The second variable's range replaced the first's, and `ip.id == 5
    /// and not ipv6.fraghdr.ident == 5` selected IPv4 packets of every id but 5.)
    #[test]
    fn two_variables_on_one_slot_bound_it_together() {
        use crate::field::{Dim, Key};
        let mut keys = Vec::new();
        for id in [4, 5, 6] {
            let mut v4 = Key::new(60);
            v4.set_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 64, 40, false, false, 0);
            v4.set(Dim::IpId, id);
            keys.push(v4);
            let mut v6 = Key::new(60);
            v6.set_ipv6([0x20; 16], [0x20; 16], 44, 64, 32);
            v6.set_ipv6_fragment(17, 0, true, id);
            keys.push(v6);
        }
        for text in [
            "ip.id == 5 and not ipv6.fraghdr.ident == 5",
            "not ip.id == 5 and ipv6.fraghdr.ident != 6",
            "not (ip.id in {4, 6} or ipv6.fraghdr.ident in {4, 5})",
        ] {
            let expr = crate::parse(text).unwrap();
            let found = boxes(&expr).unwrap();
            for key in &keys {
                let selected = crate::eval::eval(&expr, key, &[]);
                assert_eq!(found.iter().any(|b| box_contains(b, key)), selected, "`{text}` on {key:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn word_boxes_cover_exactly_the_interval(lo in any::<u128>(), len in prop_oneof![0u128..1000, any::<u128>()], probe in any::<u128>()) {
            let hi = lo.saturating_add(len);
            let mut bs = Vec::new();
            word_boxes(lo, hi, 4, &mut bs);
            prop_assert!(bs.len() <= 7);
            for v in [lo, hi, probe, lo.wrapping_sub(1), hi.wrapping_add(1), lo.wrapping_add(len / 2)] {
                prop_assert_eq!(eval_boxes(&bs, v), lo <= v && v <= hi, "value {:#x}", v);
            }
        }
    }
}
