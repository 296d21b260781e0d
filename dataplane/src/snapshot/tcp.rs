//! `[tcp_protection]` compiled: the flow table's size and timeouts, and which rules cover
//! which TCP packets (global rules first, then each customer's, numbered in one sequence for
//! counters).

use std::sync::Arc;

use classifier::bytes::Layer;
use classifier::{Action, BucketKey, BucketSpec, Mode, RuleSet};
use toml::Spanned;

use super::{Builder, CustomerId, RuleText};
use crate::config::{self, TcpModeName};

/// Connections a worker tracks by default.
pub const DEFAULT_TABLE_SIZE: u32 = 262_144;
/// Connections a worker may track at most.
pub const MAX_TABLE_SIZE: u32 = crate::limits::MAX_TCP_FLOWS;
/// Default timeouts, seconds.
pub const DEFAULT_EMBRYONIC_S: u32 = 30;
pub const DEFAULT_IDLE_S: u32 = 600;
pub const DEFAULT_CLOSING_S: u32 = 30;
pub const DEFAULT_GRACE_S: u32 = 120;
pub const DEFAULT_AUTHENTICATED_S: u32 = 300;
/// Challenges a worker sends per second by default.
pub const DEFAULT_CHALLENGE_RATE: u32 = 10_000;

/// How long each state lives without a packet, and the grace period, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// A connection whose handshake has not completed.
    pub embryonic_ns: u64,
    /// An established connection.
    pub established_ns: u64,
    /// A connection the client is closing.
    pub closing_ns: u64,
    /// After the table's first packet: out-of-state ACKs and FINs are picked up.
    pub grace_ns: u64,
}

/// The compiled section.
#[derive(Debug)]
pub struct TcpProtection {
    /// Every rule, global ones first, then each customer's (its `tcp_base` onward).
    pub rules: Vec<TcpRule>,
    /// The global rules' filters.
    pub global: RuleSet,
    /// Connections each worker tracks; 0 when no rule exists (no table is kept).
    pub table_size: usize,
    /// How long connections live.
    pub timeouts: FlowTimeouts,
    /// The SYN thresholds of the rules that have one (`TcpRule::syn_bucket` indexes them).
    pub syn_buckets: Vec<BucketSpec>,
    /// The bound on challenges a worker sends.
    pub challenges: BucketSpec,
    /// How long a source that answered a challenge is let through, in nanoseconds.
    pub authenticated_ns: u64,
    /// The SipHash key of the challenge cookies, drawn when the configuration is compiled.
    pub cookie_key: [u8; 16],
    /// What the global rules cover, as a fingerprint of their filters ([`coverage`]).
    pub coverage: u64,
    /// The lists the global rules name, in the order they are named ([`named_lists`]).
    pub lists: Vec<(Arc<classifier::List>, classifier::ListUse)>,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRule {
    /// Its name.
    pub name: String,
    /// The customer whose rule it is (`None`: global).
    pub customer: Option<CustomerId>,
    /// Drop out-of-state packets and challenge SYNs over the threshold (else only count).
    pub mitigate: bool,
    /// Its SYN threshold, an index into [`TcpProtection::syn_buckets`].
    pub syn_bucket: Option<u16>,
}

impl Builder<'_> {
    /// The section's table settings and global rules; customers' rules are added by
    /// [`Builder::customer_tcp_rules`].
    pub(super) fn tcp_protection(&mut self, t: &config::TcpProtectionSection) -> TcpProtection {
        // `least`: 0 where none is meaningful (no grace at all), else 1.
        let mut seconds = |v: &Option<Spanned<config::Integer>>, default: u32, what: &str, least: u32| -> u64 {
            let most = crate::limits::MAX_SECONDS_FLAG;
            let taken = match v {
                None => u64::from(default),
                Some(x) => super::within(x, u64::from(least)..=most).unwrap_or_else(|| {
                    self.err(&x.span(), format!("{what} {} is not in {least}..={most} seconds", x.get_ref()));
                    u64::from(default)
                }),
            };
            taken * 1_000_000_000
        };
        let timeouts = FlowTimeouts {
            embryonic_ns: seconds(&t.embryonic_timeout, DEFAULT_EMBRYONIC_S, "embryonic_timeout", 1),
            established_ns: seconds(&t.idle_timeout, DEFAULT_IDLE_S, "idle_timeout", 1),
            closing_ns: seconds(&t.closing_timeout, DEFAULT_CLOSING_S, "closing_timeout", 1),
            grace_ns: seconds(&t.grace_period, DEFAULT_GRACE_S, "grace_period", 0),
        };
        let authenticated_ns = seconds(&t.authenticated_for, DEFAULT_AUTHENTICATED_S, "authenticated_for", 1);
        let table_size = match &t.table_size {
            None => DEFAULT_TABLE_SIZE,
            Some(s) => super::within(s, 4..=MAX_TABLE_SIZE).unwrap_or_else(|| {
                self.err(&s.span(), format!("table_size {} is not in 4..={MAX_TABLE_SIZE}", s.get_ref()));
                DEFAULT_TABLE_SIZE
            }),
        };
        let challenge_rate = match &t.challenge_rate {
            None => DEFAULT_CHALLENGE_RATE,
            Some(r) => super::within(r, 1..=u32::MAX).unwrap_or_else(|| {
                self.err(&r.span(), format!("challenge_rate {} is not in 1..={}", r.get_ref(), u32::MAX));
                DEFAULT_CHALLENGE_RATE
            }),
        };
        let mut tcp = TcpProtection {
            rules: Vec::new(),
            global: super::accept_all(),
            table_size: table_size as usize,
            timeouts,
            syn_buckets: Vec::new(),
            challenges: BucketSpec {
                key: BucketKey::Rule,
                rate: u64::from(challenge_rate),
                burst: u64::from(challenge_rate / 100).max(1),
            },
            authenticated_ns,
            cookie_key: random_key(),
            coverage: coverage(&t.rules, ()),
            lists: named_lists(&t.rules, &self.lists, &mut self.tcp_masked_ranges_read),
        };
        let (global, rules) = self.tcp_rules(&mut tcp, &t.rules, None, "[tcp_protection]");
        tcp.global = global;
        tcp.rules = rules;
        tcp
    }

    /// A customer's rules: compiled, and appended to `tcp`'s list; returns the filters and
    /// the index of the first.
    pub(super) fn customer_tcp_rules(
        &mut self,
        tcp: &mut TcpProtection,
        sections: &[Spanned<config::TcpRuleSection>],
        customer: CustomerId,
        name: &str,
    ) -> (RuleSet, u32) {
        let base = tcp.rules.len() as u32;
        let (set, rules) =
            self.tcp_rules(tcp, sections, Some(customer), &format!("customer `{name}` [customer.tcp_protection]"));
        tcp.rules.extend(rules);
        (set, base)
    }

    fn tcp_rules(
        &mut self,
        tcp: &mut TcpProtection,
        sections: &[Spanned<config::TcpRuleSection>],
        customer: Option<CustomerId>,
        scope: &str,
    ) -> (RuleSet, Vec<TcpRule>) {
        if !self.bounded(sections, crate::limits::MAX_RULES_PER_LIST, &format!("rules in {scope}"), "one rule list") {
            return (super::accept_all(), Vec::new());
        }
        let texts: Vec<RuleText<'_>> = sections
            .iter()
            .map(|r| RuleText {
                name: r.get_ref().name.as_ref(),
                expr: &r.get_ref().expr,
                action: Action::Accept,
                mode: Mode::Enforce,
            })
            .collect();
        let set = self.compile_rules(&texts, Action::Accept, scope);
        self.warn_rules_tracking_nothing(&set, sections);
        let mut rules = Vec::with_capacity(sections.len());
        for (i, r) in sections.iter().enumerate() {
            let r = r.get_ref();
            let syn_bucket = self.syn_bucket(&mut tcp.syn_buckets, r);
            rules.push(TcpRule {
                name: r.name.as_ref().map_or_else(|| format!("rule-{}", i + 1), |n| n.get_ref().clone()),
                customer,
                mitigate: r.mode == TcpModeName::Mitigate,
                syn_bucket,
            });
        }
        (set, rules)
    }

    /// Warns of the rules of `set` (compiled from `sections`, one each) that track no
    /// connection: one that selects no TCP packet, or a mitigating one that selects no client's SYN.
    fn warn_rules_tracking_nothing(&mut self, set: &RuleSet, sections: &[Spanned<config::TcpRuleSection>]) {
        // The stage tracks TCP alone: a rule that selects no TCP packet (`udp.dstport == 53`)
        // covers nothing. Judged on boxes that hold every packet it selects, so a rule said
        // here selects none.
        if set.rules().len() == sections.len() {
            let proto = classifier::Dim::L4Proto as usize;
            for (rule, section) in set.rules().iter().zip(sections) {
                // Exact where the rule expands (a mask such as `tcp.flags.ack == 1` is ranges
                // of flags, which a superset would widen to every value), else a superset;
                // from the warnings' own budget of steps: spent, the boxes hold every key and
                // nothing is said. Each box comes with whether its clause may hold a segment
                // without data: one whose `tcp.payload` test must hold cannot (`tcp.payload
                // contains "GET"`), and a client's SYN carries none.
                let steps = &mut self.warning_steps;
                let tests = rule.expr.byte_tests();
                let needs_data = |c: &classifier::compile::Clause| {
                    let on_payload = |t: u32| tests.get(t as usize).is_some_and(|b| b.layer == Layer::TcpPayload);
                    c.checks.iter().any(|&(t, holds)| holds && on_payload(t))
                };
                let boxes: Vec<(classifier::compile::Bounds, bool)> =
                    match classifier::compile::clauses_spending(&rule.expr, steps) {
                        Ok(clauses) => clauses
                            .into_iter()
                            .flat_map(|c| {
                                let dataless = !needs_data(&c);
                                c.boxes.into_iter().map(move |b| (b, dataless))
                            })
                            .collect(),
                        Err(_) => {
                            let superset = classifier::compile::superset_boxes_spending(&rule.expr, steps);
                            superset.into_iter().map(|b| (b, true)).collect()
                        }
                    };
                let tcp = |b: &&(classifier::compile::Bounds, bool)| b.0[proto][0] <= 6 && 6 <= b.0[proto][1];
                if !boxes.iter().any(|b| tcp(&b)) {
                    let why = format!(
                        "rule `{}`: its match selects no TCP packet, and TCP protection tracks TCP alone: it covers \
                         nothing",
                        rule.name
                    );
                    self.warn(&section.get_ref().expr.span(), why);
                } else if section.get_ref().mode == TcpModeName::Mitigate
                    && !boxes.iter().filter(tcp).any(|(b, dataless)| *dataless && opens(b))
                {
                    let why = format!(
                        "rule `{}`: its match selects no client's SYN (SYN without ACK or data, no flag but ECN's), \
                         so no connection the Internet opens is ever tracked, and in mitigate every segment of one it \
                         covers is dropped as out of state once the grace period is over; let it select the handshake \
                         too (`tcp.flags.syn == 1 or ...`)",
                        rule.name
                    );
                    self.warn(&section.get_ref().expr.span(), why);
                }
            }
        }
    }

    /// Rule `r`'s SYN threshold, if it has one: pushed onto `syn_buckets`, and its index there.
    fn syn_bucket(&mut self, syn_buckets: &mut Vec<BucketSpec>, r: &config::TcpRuleSection) -> Option<u16> {
        match (&r.syn_rate, &r.syn_burst) {
            (None, None) => None,
            (None, Some(b)) => {
                self.err(&b.span(), "syn_burst needs a syn_rate");
                None
            }
            (Some(rate), burst) => {
                let syn_rate = super::within(rate, 1..=u32::MAX).unwrap_or_else(|| {
                    self.err(&rate.span(), format!("syn_rate {} is not in 1..={}", rate.get_ref(), u32::MAX));
                    1
                });
                let syn_burst = match burst {
                    None => 1,
                    Some(b) => super::within(b, 1..=u32::MAX).unwrap_or_else(|| {
                        self.err(&b.span(), format!("syn_burst {} is not in 1..={}", b.get_ref(), u32::MAX));
                        1
                    }),
                };
                if syn_buckets.len() >= usize::from(u16::MAX) {
                    self.err(&rate.span(), "too many rules with a syn_rate");
                    None
                } else {
                    syn_buckets.push(BucketSpec {
                        key: BucketKey::Rule,
                        rate: u64::from(syn_rate),
                        burst: u64::from(syn_burst),
                    });
                    Some((syn_buckets.len() - 1) as u16)
                }
            }
        }
    }
}

/// True when `b` holds a client's SYN as every client sends it, which opens the connections
/// the Internet makes to a customer (a SYN-ACK opens only those a customer makes): no data
/// (`tcp.len` 0: a SYN carries some only with TCP Fast Open), and flags SYN alone or with
/// ECN's setup bits (ECE and CWR, RFC 3168 §6.1.1; AE too for AccECN), never ACK, RST, PSH,
/// FIN or URG: some flags value in the box's `tcp.flags` range whose every bit the box's
/// one-bit slots (`tcp.flags.syn`, ...) hold too. A rule of `tcp.flags.push == 1` or
/// `tcp.len > 0` holds SYNs no client sends, and in mitigate drops every segment it covers.
fn opens(b: &classifier::compile::Bounds) -> bool {
    use classifier::Dim;
    // ECE, CWR and AE: the flags a client's SYN may carry besides SYN.
    const ECN_SETUP: u32 = 0x1c0;
    let holds = |d: Dim, v: u32| b[d as usize][0] <= v && v <= b[d as usize][1];
    if !holds(Dim::TcpSyn, 1) || !holds(Dim::TcpAck, 0) || !holds(Dim::TcpRst, 0) || !holds(Dim::L4Len, 0) {
        return false;
    }
    let bits = [
        (Dim::TcpFin, 0x01),
        (Dim::TcpSyn, 0x02),
        (Dim::TcpRst, 0x04),
        (Dim::TcpPsh, 0x08),
        (Dim::TcpAck, 0x10),
        (Dim::TcpUrg, 0x20),
        (Dim::TcpEce, 0x40),
        (Dim::TcpCwr, 0x80),
        (Dim::TcpNs, 0x100),
    ];
    let [lo, hi] = b[Dim::TcpFlags as usize];
    // TCP's flags are 12 bits: the first value that fits ends the search.
    (lo..=hi.min(0xfff)).any(|v| v & !ECN_SETUP == 0x02 && bits.iter().all(|&(d, m)| holds(d, u32::from(v & m != 0))))
}

/// A fingerprint of what `rules` cover, and of `more` (the global rules' fingerprint and a
/// customer's prefixes): their filters in order, whatever their names, modes and
/// thresholds. A reload that changes it may cover connections that were not tracked
/// before: the worker gives them a grace period of their own. The members of the lists the
/// filters name are not in it: a list that changed so as to cover more is told apart by the
/// worker ([`named_lists`]), as any change of a list (a feed rewriting it every minute) would
/// otherwise open a grace period every time, and ACK floods would never be dropped.
pub(super) fn coverage(rules: &[Spanned<config::TcpRuleSection>], more: impl std::hash::Hash) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for r in rules {
        r.get_ref().expr.get_ref().hash(&mut h);
    }
    more.hash(&mut h);
    h.finish()
}

/// The lists `rules` name (`$name`), in the order they are named, each with how its rule
/// tests it: two rule sets of one fingerprint name the same lists in the same order, so a
/// reload's worker compares them one by one, and gives a grace period where one changed so
/// that its rule covers more ([`classifier::ListUse::widened_by`]: members gained where
/// members match, members lost where non-members do, as in `not ip.src in $trusted`): the
/// open connections newly covered were never tracked. A name that is no list's names
/// nothing. `masked_ranges` counts what the masks of the rules read so far selected, the
/// global rules' and every customer's together: each call counting afresh, a configuration
/// of many customers was read again up to the configuration's bound once per customer.
pub(super) fn named_lists(
    rules: &[Spanned<config::TcpRuleSection>],
    lists: &classifier::Registry,
    masked_ranges: &mut usize,
) -> Vec<(Arc<classifier::List>, classifier::ListUse)> {
    let mut named = Vec::new();
    for r in rules {
        // A rule that does not parse names nothing here: it is refused as it compiles, and
        // the snapshot with it.
        let uses = classifier::list_uses_within(r.get_ref().expr.get_ref(), masked_ranges).unwrap_or_default();
        named.extend(uses.into_iter().filter_map(|(name, use_)| Some((lists.list(&name)?.clone(), use_))));
    }
    named
}

/// A lists version ([`Customer::tcp_lists_version`](super::Customer::tcp_lists_version))
/// no customer of any snapshot of this process has had.
pub(super) fn new_lists_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// 128 bits drawn from the standard library's per-process randomness (each `RandomState`
/// is a SipHash key of its own, seeded from the operating system).
fn random_key() -> [u8; 16] {
    let draw = |n: u64| std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), n);
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&draw(0x636f_6f6b).to_le_bytes());
    key[8..].copy_from_slice(&draw(0x6b65_7973).to_le_bytes());
    key
}

#[cfg(test)]
mod tests {
    use classifier::parse::{MAX_MASKED_RANGES_PER_CONFIG, MAX_MASKED_RANGES_PER_RULE};

    /// The TCP protection rules read again for the lists they name are bounded together, the
    /// global ones and every customer's, as the configuration's masks are when they compile:
    /// past the bound a rule names nothing (the configuration is refused as it compiles).
    #[test]
    fn rules_read_again_for_their_lists_are_bounded_per_configuration() {
        // 65,536 ranges: a rule's bound; sixteen such are the configuration's.
        let rule = format!("{} and ip.src in $l", ["tcp.srcport & 2 == 0"; 4].join(" and "));
        let text = format!(
            "[server]\nanycast = \"192.0.2.1\"\n[[list]]\nname = \"l\"\nitems = [\"192.0.2.0/24\"]\n\
             [[tcp_protection.rule]]\nmatch = '{rule}'\n"
        );
        let loaded = crate::config::parse("t.toml", &text).unwrap();
        let mut b = super::Builder::new(&loaded.source);
        let lists = b.lists(&loaded.file.lists);
        let rules = &loaded.file.tcp_protection.rules;
        let mut read = 0;
        for n in 0..MAX_MASKED_RANGES_PER_CONFIG / MAX_MASKED_RANGES_PER_RULE {
            assert_eq!(super::named_lists(rules, &lists, &mut read).len(), 1, "read {n}");
        }
        assert!(super::named_lists(rules, &lists, &mut read).is_empty(), "read past the configuration's bound");
    }
}
