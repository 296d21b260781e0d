//! Rules with actions and modes, and `RuleSet`: what a firewall or DoS stage consults.

use crate::ast::Expr;
use crate::field::Key;
use crate::table::{Budget, RuleCompileError, RuleTable};

/// What a matching rule does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let it through to the next stage.
    Accept,
    /// Drop it.
    Drop,
    /// Let it through while the named token bucket (an index into the stage's buckets) has
    /// tokens; drop it otherwise.
    RateLimit(u16),
}

/// Whether a rule decides packets or only counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The rule's action applies.
    #[default]
    Enforce,
    /// The rule counts the packets it would decide (and they can be captured), but evaluation
    /// goes on as if it were absent.
    Monitor,
}

/// A named rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name, for counters and logs.
    pub name: String,
    /// Which packets it selects.
    pub expr: Expr,
    /// What it does with them.
    pub action: Action,
    /// Enforced or monitored.
    pub mode: Mode,
}

impl Rule {
    /// The bucket of a monitor-mode `rate-limit` rule, whose limit is previewed (its
    /// refusals counted) rather than enforced.
    pub fn previewed_bucket(&self) -> Option<u16> {
        match (self.mode, self.action) {
            (Mode::Monitor, Action::RateLimit(b)) => Some(b),
            _ => None,
        }
    }
}

/// The outcome of consulting a [`RuleSet`] for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The enforced rule that decided, or `None` when the default action applied.
    pub rule: Option<u32>,
    /// The action to take.
    pub action: Action,
    /// The first monitor-mode rule that selects the packet ahead of the deciding rule: the
    /// rule that would have decided, had it been enforced.
    pub monitor: Option<u32>,
}

/// An ordered list of rules with a default action, compiled for lookup.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Action,
    enforce: RuleTable,
    enforce_ids: Vec<u32>,
    monitor: RuleTable,
    monitor_ids: Vec<u32>,
}

impl RuleSet {
    /// Compiles `rules` (first match wins) with `default` for packets no rule selects.
    pub fn compile(rules: Vec<Rule>, default: Action) -> Result<RuleSet, RuleCompileError> {
        let mut unbounded = Budget::UNBOUNDED;
        RuleSet::compile_within(rules, default, &mut unbounded)
    }

    /// [`RuleSet::compile`], spending from `left` ([`RuleTable::build_then_boxes_within`]).
    pub fn compile_within(rules: Vec<Rule>, default: Action, left: &mut Budget) -> Result<RuleSet, RuleCompileError> {
        let split = |mode: Mode| -> (Vec<u32>, Vec<&Expr>) {
            rules.iter().enumerate().filter(|(_, r)| r.mode == mode).map(|(i, r)| (i as u32, &r.expr)).unzip()
        };
        let (enforce_ids, enforce_exprs) = split(Mode::Enforce);
        let (monitor_ids, monitor_exprs) = split(Mode::Monitor);
        // Errors name the rule's index in `rules`, not in the per-mode table (a table refused
        // as a whole, which may have no rules, names the first).
        let remap = |ids: &[u32], e: RuleCompileError| RuleCompileError {
            index: ids.get(e.index).map_or(0, |&i| i as usize),
            ..e
        };
        let before = *left;
        let tables = RuleTable::build_then_boxes_within(enforce_exprs, &[], left)
            .map_err(|e| remap(&enforce_ids, e))
            .and_then(|enforce| {
                let monitor =
                    RuleTable::build_then_boxes_within(monitor_exprs, &[], left).map_err(|e| remap(&monitor_ids, e))?;
                Ok((enforce, monitor))
            });
        match tables {
            Ok((enforce, monitor)) => Ok(RuleSet { rules, default, enforce, enforce_ids, monitor, monitor_ids }),
            Err(e) => {
                // A refused set keeps no tables: it spends no boxes or bytes (its steps were spent).
                (left.boxes, left.bytes) = (before.boxes, before.bytes);
                Err(e)
            }
        }
    }

    /// Boxes of the compiled tables (enforced and monitor-mode rules).
    pub fn boxes(&self) -> usize {
        self.enforce.stats().boxes + self.monitor.stats().boxes
    }

    /// The rules, in priority order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rules decided by interpretation, too complex to expand into the decision trees
    /// ([`RuleTable::interpreted`]).
    pub fn interpreted(&self) -> usize {
        self.enforce.interpreted() + self.monitor.interpreted()
    }

    /// The action for packets no enforced rule selects.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// The decision for a packet no rule selects.
    fn no_rule(&self) -> Decision {
        Decision { rule: None, action: self.default, monitor: None }
    }

    /// Decides one packet: its key, and the frame it was parsed from (which only byte tests
    /// read).
    #[inline]
    pub fn decide(&self, key: &Key, frame: &[u8]) -> Decision {
        if self.rules.is_empty() {
            return self.no_rule(); // a customer without egress rules, the common case
        }
        let rule = self.enforce.first_match(key, frame).map(|i| self.enforce_ids[i as usize]);
        let action = rule.map_or(self.default, |i| self.rules[i as usize].action);
        let monitor = if self.monitor.is_empty() {
            None
        } else {
            self.monitor
                .first_match(key, frame)
                .map(|i| self.monitor_ids[i as usize])
                .filter(|&m| rule.is_none_or(|r| m < r))
        };
        Decision { rule, action, monitor }
    }

    /// [`RuleSet::decide`] for each of `keys` (parsed from `frames`, as many), into `out`
    /// (as long as `keys`): the tables are walked by many keys at once
    /// ([`RuleTable::first_match_batch`]), up to twice as fast per key as one at a time.
    pub fn decide_batch(&self, keys: &[&Key], frames: &[&[u8]], out: &mut [Decision]) {
        const CHUNK: usize = 64;
        debug_assert_eq!(keys.len(), out.len(), "one decision per key");
        if self.rules.is_empty() {
            // The default for all (a customer without a firewall, the common case): no table
            // to walk, and no per-key answers to translate.
            out.fill(self.no_rule());
            return;
        }
        for ((keys, frames), out) in keys.chunks(CHUNK).zip(frames.chunks(CHUNK)).zip(out.chunks_mut(CHUNK)) {
            let mut enforced = [None; CHUNK];
            let mut monitored = [None; CHUNK];
            let n = keys.len();
            self.enforce.first_match_batch(keys, frames, &mut enforced[..n]);
            if !self.monitor.is_empty() {
                self.monitor.first_match_batch(keys, frames, &mut monitored[..n]);
            }
            for ((d, e), m) in out.iter_mut().zip(&enforced).zip(&monitored) {
                let rule = e.map(|i| self.enforce_ids[i as usize]);
                let action = rule.map_or(self.default, |i| self.rules[i as usize].action);
                let monitor = m.map(|i| self.monitor_ids[i as usize]).filter(|&m| rule.is_none_or(|r| m < r));
                *d = Decision { rule, action, monitor };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use crate::table::LinearScan;

    /// Sets that select no packet, with no rule or with only a rule whose boxes all vanish
    /// (a port cannot be two values), decide as the reference scan does: no rule, the
    /// default, no monitor rule; one key at a time and in batches (which skip their tables,
    /// or their forests, then).
    #[test]
    fn sets_that_select_nothing_decide_by_their_default() {
        let never = parse("tcp.srcport == 1 and tcp.srcport == 2").unwrap();
        let rule = |mode| Rule { name: "never".into(), expr: never.clone(), action: Action::Accept, mode };
        let sets = [
            RuleSet::compile(vec![], Action::Drop).unwrap(),
            RuleSet::compile(vec![rule(Mode::Enforce)], Action::Drop).unwrap(),
            RuleSet::compile(vec![rule(Mode::Monitor)], Action::RateLimit(3)).unwrap(),
        ];
        assert_eq!(sets[1].enforce.stats().trees, 0, "the contradiction left no box");
        let mut key = Key::new(60);
        key.set_l4_proto(6);
        key.set_ports(1, 2); // `tcp.srcport == 1` alone holds
        assert_eq!(LinearScan::new(std::slice::from_ref(&never)).first_match(&key, &[]), None);
        let frames: [&[u8]; 3] = [&[]; 3];
        for set in &sets {
            let expect = Decision { rule: None, action: set.default_action(), monitor: None };
            assert_eq!(set.decide(&key, &[]), expect);
            let mut out = [Decision { rule: Some(7), action: Action::Accept, monitor: Some(7) }; 3];
            set.decide_batch(&[&key; 3], &frames, &mut out);
            assert_eq!(out, [expect; 3]);
        }
    }
}
