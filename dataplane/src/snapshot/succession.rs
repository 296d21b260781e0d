//! What of a worker's state carries from one snapshot to the next: a customer's and a
//! tunnel's counters (by name), a tunnel's probe state (by name, while it reaches the same
//! router), a customer's tracked TCP connections (while its rules cover what they covered), a
//! rate-limit bucket's tokens (the same bucket, and for a `key = "rule"` bucket the same rules
//! under the same numbers), a SYN threshold's tokens.
//!
//! All of it is positions: where each thing of the new snapshot was in the old one. Worked out
//! by name it costs a hash of every customer's and tunnel's name, about 35 ms at 30,000
//! customers, which a worker following a reload between two batches would spend with its rx
//! ring filling. So the supervisor works it out once, when it publishes the snapshot
//! ([`Snapshot::take_over_from`]), and workers that follow from that predecessor only read
//! it; one that skipped a snapshot (two reloads within a batch) works out its own.

use std::borrow::Cow;
use std::collections::HashMap;

use classifier::{Action, BucketKey, Mode, RuleSet};

use super::{CustomerId, Snapshot};

/// Where each customer, tunnel, bucket and threshold of a snapshot was in its predecessor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Succession {
    /// The predecessor's [`Snapshot::generation`].
    pub from: u64,
    /// For each customer, its index in the predecessor (same name).
    pub customers: Vec<Option<usize>>,
    /// For each customer, its index in the predecessor if its tracked TCP connections carry
    /// over: the same name, its rules covering the same packets, no list they use widened.
    pub tracking: Vec<Option<usize>>,
    /// For each tunnel, its index in the predecessor (same name).
    pub tunnels: Vec<Option<usize>>,
    /// For each tunnel, its index in the predecessor if it reaches the same router: the same
    /// name and outer addresses ([`super::Tunnel::has_endpoints_of`]). Only then does what the
    /// probes found of it carry over; moved, it starts afresh, as a new tunnel.
    pub same_router: Vec<Option<usize>>,
    /// For each tunnel, whether it is probed as its predecessor was: the same router, key and
    /// inner addresses ([`super::Tunnel::is_probed_as`]). Only then do the probes' findings
    /// (up or down, the answers of its life) carry over; the path MTU goes by the path alone.
    pub probed_as_before: Vec<bool>,
    /// For each DoS bucket, the predecessor's bucket whose tokens it keeps.
    pub dos_buckets: Vec<Option<usize>>,
    /// For each preview table ([`super::Dos::previewed`]), the predecessor's table it keeps.
    pub previews: Vec<Option<usize>>,
    /// For each SYN threshold ([`super::TcpProtection::syn_buckets`]), the predecessor's
    /// whose tokens it keeps.
    pub syn_buckets: Vec<Option<usize>>,
}

impl Succession {
    /// What of `old`'s state carries to `new`.
    pub fn between(old: &Snapshot, new: &Snapshot) -> Succession {
        Succession::names_only(old, new).completed(old, new)
    }

    /// Where each of `new`'s customers and tunnels was in `old` (and which tunnels reach the
    /// same router), the rest left empty: [`Snapshot::take_over_from`] reads these before it
    /// carries the TCP lists' versions that [`Succession::completed`] then reads.
    pub(super) fn names_only(old: &Snapshot, new: &Snapshot) -> Succession {
        let tunnels = by_name(old.tunnels.iter().map(|t| t.name.as_str()), new.tunnels.iter().map(|t| t.name.as_str()));
        let same_router = new
            .tunnels
            .iter()
            .zip(&tunnels)
            .map(|(t, &was)| was.filter(|&o| old.tunnels.get(o).is_some_and(|then| t.has_endpoints_of(then))))
            .collect();
        let probed_as_before = new
            .tunnels
            .iter()
            .zip(&tunnels)
            .map(|(t, &was)| was.and_then(|o| old.tunnels.get(o)).is_some_and(|then| t.is_probed_as(then)))
            .collect();
        Succession {
            from: old.generation,
            customers: by_name(
                old.customers.iter().map(|c| c.name.as_str()),
                new.customers.iter().map(|c| c.name.as_str()),
            ),
            tunnels,
            same_router,
            probed_as_before,
            ..Succession::default()
        }
    }

    /// This one, made by [`Succession::names_only`] for `old` and `new`, with the rest worked out.
    pub(super) fn completed(self, old: &Snapshot, new: &Snapshot) -> Succession {
        let Succession { from, customers, tunnels, same_router, probed_as_before, .. } = self;
        let tracking = customers
            .iter()
            .zip(&new.customers)
            .map(|(&j, c)| {
                let was = old.customers.get(j?)?;
                (was.tcp_coverage == c.tcp_coverage && was.tcp_lists_version == c.tcp_lists_version).then_some(j?)
            })
            .collect();
        let dos_buckets = kept_buckets(old, new, Mode::Enforce);
        // A preview table follows its bucket, as the bucket's table does but keyed by the
        // monitor-mode rules where the bucket is keyed by rule (worked out only when some
        // bucket is previewed).
        let previews = if new.dos.previewed.is_empty() {
            Vec::new()
        } else {
            let by_monitors = kept_buckets(old, new, Mode::Monitor);
            let old_table = |b: usize| old.dos.preview_of.get(b).copied().flatten().map(usize::from);
            new.dos.previewed.iter().map(|&b| by_monitors.get(b).copied().flatten().and_then(old_table)).collect()
        };
        Succession {
            from,
            customers,
            tracking,
            tunnels,
            same_router,
            probed_as_before,
            dos_buckets,
            previews,
            syn_buckets: kept_syn_buckets(old, new),
        }
    }
}

impl Snapshot {
    /// What of `old`'s state carries to this snapshot: worked out when this one was
    /// published after `old`, or else now.
    pub fn succession_from(&self, old: &Snapshot) -> Cow<'_, Succession> {
        match &self.succession {
            Some(s) if s.from == old.generation => Cow::Borrowed(s),
            _ => Cow::Owned(Succession::between(old, self)),
        }
    }
}

/// For each of `new`'s names, its index among `old`'s.
fn by_name<'a>(old: impl Iterator<Item = &'a str>, new: impl Iterator<Item = &'a str>) -> Vec<Option<usize>> {
    let index: HashMap<&str, usize> = old.enumerate().map(|(i, n)| (n, i)).collect();
    new.map(|n| index.get(n).copied()).collect()
}

/// A rule as a `key = "rule"` bucket keeps its tokens: DoS rules and the firewall and egress
/// rules are numbered in two sequences (all lists of each together), told apart by the flag
/// (`true`: DoS).
type Number = (bool, u32);

/// A rule as a reload knows it: its list's owner (`""` for `[dos]`), the list, its name.
type RuleName<'s> = (&'s str, &'static str, &'s str);

/// Each rule of `mode` whose tokens a `key = "rule"` bucket keeps (in its table, or its
/// preview table for monitor-mode rules), by the number they are kept under, with its bucket
/// and name. A reload that gives a number to another rule (a rule inserted or removed before
/// it, customers reordered or replaced) must not hand it the first one's tokens: names are
/// unique only within a list (and unnamed rules are all `rule-N`), so the customer and the
/// list are part of it.
fn rule_keyed_rules(snap: &Snapshot, mode: Mode) -> Vec<(Number, u16, RuleName<'_>)> {
    fn add<'s>(
        snap: &Snapshot,
        mode: Mode,
        (owner, list, rules): (&'s str, &'static str, &'s RuleSet),
        number: impl Fn(u32) -> Number,
        out: &mut Vec<(Number, u16, RuleName<'s>)>,
    ) {
        for (i, r) in rules.rules().iter().enumerate().filter(|(_, r)| r.mode == mode) {
            if let Action::RateLimit(b) = r.action
                && snap.dos.buckets.get(usize::from(b)).is_some_and(|s| s.key == BucketKey::Rule)
            {
                out.push((number(i as u32), b, (owner, list, r.name.as_str())));
            }
        }
    }
    let mut out = Vec::new();
    add(snap, mode, ("", "dos", &snap.dos.rules), |i| (true, i), &mut out);
    for c in &snap.customers {
        let name = c.name.as_str();
        add(snap, mode, (name, "dos", &c.dos), |i| (true, c.dos_base + i), &mut out);
        add(snap, mode, (name, "firewall", &c.firewall), |i| (false, c.rule_base + i), &mut out);
        add(snap, mode, (name, "egress", &c.egress), |i| (false, c.egress_base + i), &mut out);
    }
    out
}

/// For each of `new`'s DoS buckets, the bucket of `old` whose keys' state it keeps: the same
/// name, spec and table size and, for a `key = "rule"` bucket (tokens kept by rule number),
/// the same rules of `mode` under the same numbers. Any other change starts the bucket
/// afresh, each key with a full burst.
fn kept_buckets(old: &Snapshot, new: &Snapshot, mode: Mode) -> Vec<Option<usize>> {
    /// Each bucket's rule-keyed rules, in one pass.
    fn by_bucket(snap: &Snapshot, mode: Mode) -> Vec<Vec<(Number, RuleName<'_>)>> {
        let mut out = vec![Vec::new(); snap.dos.buckets.len()];
        for (number, b, name) in rule_keyed_rules(snap, mode) {
            if let Some(rules) = out.get_mut(usize::from(b)) {
                rules.push((number, name));
            }
        }
        out
    }
    let (old_rules, new_rules) = (by_bucket(old, mode), by_bucket(new, mode));
    let old_by_name: HashMap<&str, usize> =
        old.dos.bucket_names.iter().enumerate().map(|(j, n)| (n.as_str(), j)).collect();
    (0..new.dos.buckets.len())
        .map(|i| {
            let j = *old_by_name.get(new.dos.bucket_names.get(i)?.as_str())?;
            let same = old.dos.buckets.get(j) == new.dos.buckets.get(i)
                && old.dos.table_size == new.dos.table_size
                && old_rules.get(j) == new_rules.get(i);
            same.then_some(j)
        })
        .collect()
}

/// For each of `new`'s SYN thresholds, the one of `old` whose tokens it keeps: its rule's
/// owner and name the same, and the same threshold, wherever the rule now stands.
fn kept_syn_buckets(old: &Snapshot, new: &Snapshot) -> Vec<Option<usize>> {
    /// Each threshold by its rule's owner and name.
    fn by_rule(snap: &Snapshot) -> HashMap<(Option<&str>, &str), usize> {
        let owner = |c: Option<CustomerId>| c.and_then(|c| snap.customers.get(usize::from(c))).map(|c| c.name.as_str());
        snap.tcp
            .rules
            .iter()
            .filter_map(|r| Some(((owner(r.customer), r.name.as_str()), usize::from(r.syn_bucket?))))
            .collect()
    }
    let before = by_rule(old);
    let mut kept = vec![None; new.tcp.syn_buckets.len()];
    for (rule, b) in by_rule(new) {
        let j = before.get(&rule).copied();
        if let Some(slot) = kept.get_mut(b) {
            *slot = j.filter(|&j| old.tcp.syn_buckets.get(j) == new.tcp.syn_buckets.get(b));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(customers: &[(&str, &str)]) -> Snapshot {
        let mut text = String::from(
            "[server]\nanycast = \"192.0.2.1\"\n[dos]\n[[dos.bucket]]\nname = \"b\"\nrate = 10\nkey = \"rule\"\n\
             [tcp_protection]\n",
        );
        for (i, (name, tcp)) in customers.iter().enumerate() {
            text += &format!(
                "[[customer]]\nname = \"{name}\"\nprefixes = [\"10.0.{i}.0/24\"]\n[[customer.tunnel]]\nname = \"{name}-t\"\n\
                 remote = \"198.18.0.{}\"\n[[customer.route]]\nprefix = \"10.0.{i}.0/24\"\ntunnel = \"{name}-t\"\n\
                 [[customer.dos.rule]]\nname = \"r\"\nmatch = \"udp\"\naction = \"rate-limit\"\nbucket = \"b\"\n\
                 [[customer.tcp_protection.rule]]\nname = \"t\"\nmatch = \"{tcp}\"\nmode = \"mitigate\"\nsyn_rate = 5\n",
                i + 1
            );
        }
        Snapshot::build(&crate::config::parse("s.toml", &text).unwrap()).unwrap()
    }

    #[test]
    fn state_follows_names_wherever_they_now_stand() {
        let old = snapshot(&[("x", "tcp"), ("y", "tcp"), ("z", "tcp")]);
        // x gone, z moved to the front and its TCP rule covering other packets, w new.
        let mut new = snapshot(&[("z", "tcp.port == 80"), ("y", "tcp"), ("w", "tcp")]);
        // As a reload publishes it (which carries the TCP lists' versions over first).
        new.take_over_from(&old);
        let s = new.succession.clone().unwrap();
        assert_eq!(s.from, old.generation);
        assert_eq!(s.customers, [Some(2), Some(1), None]);
        assert_eq!(s.tunnels, [Some(2), Some(1), None]);
        // z's tunnel moved to another router with it (each remote is its position's).
        assert_eq!(s.same_router, [None, Some(1), None]);
        assert_eq!(s.tracking, [None, Some(1), None]);
        // The rule-keyed bucket's rules are renumbered (x's went): its tokens start afresh.
        assert_eq!(s.dos_buckets, [None]);
        // Each customer's SYN threshold by its rule's owner and name: y's and z's carry over.
        let owner = |snap: &Snapshot, b: usize| {
            let rule = snap.tcp.rules.iter().find(|r| r.syn_bucket.map(usize::from) == Some(b)).unwrap();
            snap.customers[usize::from(rule.customer.unwrap())].name.clone()
        };
        let kept: Vec<_> =
            s.syn_buckets.iter().enumerate().map(|(b, was)| (owner(&new, b), was.map(|j| owner(&old, j)))).collect();
        assert!(kept.contains(&("y".into(), Some("y".into()))), "{kept:?}");
        assert!(kept.contains(&("z".into(), Some("z".into()))), "{kept:?}");
        assert!(kept.contains(&("w".into(), None)), "{kept:?}");
        // The same configuration again keeps everything where it was.
        let mut again = snapshot(&[("z", "tcp.port == 80"), ("y", "tcp"), ("w", "tcp")]);
        again.take_over_from(&new);
        let same = again.succession.clone().unwrap();
        assert_eq!(same.customers, [Some(0), Some(1), Some(2)]);
        assert_eq!(same.same_router, [Some(0), Some(1), Some(2)]);
        assert_eq!(same.tracking, [Some(0), Some(1), Some(2)]);
        assert_eq!(same.dos_buckets, [Some(0)]);
        assert!(same.syn_buckets.iter().enumerate().all(|(b, was)| *was == Some(b)), "{:?}", same.syn_buckets);
    }

    #[test]
    fn a_published_succession_is_read_from_its_predecessor_only() {
        let old = snapshot(&[("x", "tcp"), ("y", "tcp")]);
        let other = snapshot(&[("y", "tcp")]);
        let mut new = snapshot(&[("y", "tcp"), ("x", "tcp")]);
        assert!(matches!(new.succession_from(&old), Cow::Owned(_)), "nothing published yet");
        new.take_over_from(&old);
        assert!(matches!(new.succession_from(&old), Cow::Borrowed(_)));
        assert_eq!(*new.succession_from(&old), Succession::between(&old, &new));
        // A worker that skipped `old` (it runs `other`) works out its own.
        let skipped = new.succession_from(&other);
        assert!(matches!(skipped, Cow::Owned(_)));
        assert_eq!(skipped.customers, [Some(0), None]);
    }
}
