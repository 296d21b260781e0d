//! The per-packet core: stages as plain functions over a read-only [`Snapshot`] and one
//! frame, run over a batch.
//!
//! ```text
//!                                      ┌─ GRE to us: decap ─► tunnel ─► keepalive, source check ─► probe / ping
//! parse ─► check ─► sanity ─► DoS ─────┤      └─► destination ─► egress rules ──┬─► forward to the Internet
//!                                      │                                         └─► (a customer's prefix) ─┐
//!                                      └─ steer ─► customer DoS ─► firewall ─► route ─► TTL, MTU ─► GRE encap
//!                                                                                          └─► ICMP errors, fragments
//! ```
//!
//! Soft unicast's backbone GRE, and return traffic (to an egress address) that this server
//! owns, leave after the check, before sanity and DoS, as the XDP program hands the latter
//! to the host unread ([`egress`]); return traffic another server owns meets them, then goes
//! over the backbone.
//!
//! Every way out is a [`Verdict`] with its reason: transmitted (and as what), passed to the
//! kernel, dropped, or consumed here (a health-probe reply). Nothing here allocates, locks,
//! reads a clock or does I/O; frames the stages originate beyond the one they were handed
//! (later fragments) go into the worker's [`Spill`].

pub mod dos;
pub mod frame;
pub mod parse;
pub mod stats;
pub mod verdict;

mod batch;
mod decap;
pub mod egress;
pub mod flows;
mod forward;
pub mod fragments;
mod ingress;
mod pmtu;
mod scope;
mod tcp;

pub use batch::{process_batch, process_batch_via};
pub use frame::{BATCH_SIZE, Frame, HEADROOM, Spill};
pub use parse::{IpFrame, Parsed, parse_frame, parse_frame_into};
pub use pmtu::tunnel_mtu;
pub use stats::{Reason, WorkerStats};
pub use verdict::{ConsumeReason, DropReason, PassReason, TxReason, Verdict};

use std::net::Ipv4Addr;

use classifier::{BucketKey, BucketSpec, Dim, Key, RateLimiter};
use gre::EthernetAddrs;
use gre::reassembly::Reassembler;
use portslice::Owner;

use self::flows::{Authenticated, FlowEvent, FlowTable};
use self::forward::Ctx;
use self::fragments::FragmentOwners;
use self::ingress::Decided;
use crate::snapshot::{CustomerId, Fate, Snapshot, Succession, TunnelId};

/// Spill slots per worker: the later fragments one batch may produce.
pub const SPILL_SLOTS: usize = 128;

/// A frame's verdict and what decided it, for counters and dry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the frame.
    pub verdict: Verdict,
    /// The customer whose prefix the destination is in, or whose tunnel it came from.
    pub customer: Option<CustomerId>,
    /// The firewall rule that decided (global rule index), if one did.
    pub rule: Option<u32>,
    /// The monitor-mode rule that would have decided (global rule index).
    pub monitor: Option<u32>,
    /// The egress rule that let a decapsulated packet out or dropped it.
    pub egress_rule: Option<u32>,
    /// The monitor-mode egress rule that would have decided.
    pub egress_monitor: Option<u32>,
    /// The tunnel the frame was sent into, or (if it was not sent) came out of.
    pub tunnel: Option<TunnelId>,
    /// The tunnel the frame came out of (GRE from a customer's router).
    pub from_tunnel: Option<TunnelId>,
    /// The global (`[dos]`) rule that decided (global DoS rule index), if one did: let the
    /// frame on, rate-limited it or dropped it.
    pub dos_rule: Option<u32>,
    /// The monitor-mode global DoS rule that would have decided.
    pub dos_monitor: Option<u32>,
    /// The customer's own DoS rule that decided after the global ones let the frame on
    /// (global DoS rule index). Both stages' rules are counted: each decided at its stage.
    pub customer_dos_rule: Option<u32>,
    /// The customer's monitor-mode DoS rule that would have decided.
    pub customer_dos_monitor: Option<u32>,
    /// Which of the monitor-mode rules above rate-limit, with a bucket that would have
    /// refused the frame.
    pub would_limit: WouldLimit,
    /// The last rule stage the frame met (its customer's firewall, or for a decapsulated
    /// packet its egress rules) decided by its default action: no rule matched.
    pub by_default: bool,
    /// The TCP protection rule that covered the frame (global rule index).
    pub tcp_rule: Option<u32>,
    /// What flow tracking made of it.
    pub tcp: Option<FlowEvent>,
    /// Frames put into the spill besides this one (later fragments; at most the spill's
    /// slots, 128).
    pub spilled: u8,
}

// Written for every frame of every batch, and kept to 112 bytes: a version at 120 bytes
// (with other costs) timed 3 % slower on the catch-all case, within what timings vary by
// here (docs/benchmarks.md, session 42). A field that needs more measures it first.
const _: () = assert!(size_of::<Outcome>() <= 112);
// `Outcome::spilled` counts one frame's spilled frames in a byte.
const _: () = assert!(SPILL_SLOTS <= u8::MAX as usize);

impl Outcome {
    pub(crate) const fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            customer: None,
            rule: None,
            monitor: None,
            egress_rule: None,
            egress_monitor: None,
            tunnel: None,
            from_tunnel: None,
            dos_rule: None,
            dos_monitor: None,
            customer_dos_rule: None,
            customer_dos_monitor: None,
            would_limit: WouldLimit::NONE,
            by_default: false,
            tcp_rule: None,
            tcp: None,
            spilled: 0,
        }
    }

    /// The DoS rule whose decision the frame's fate is: the customer's, at the later stage,
    /// or else the global one.
    pub fn deciding_dos_rule(&self) -> Option<u32> {
        self.customer_dos_rule.or(self.dos_rule)
    }

    /// Every DoS rule that decided or would have (monitor mode), at either stage.
    pub fn dos_rules(&self) -> impl Iterator<Item = u32> {
        [self.dos_rule, self.dos_monitor, self.customer_dos_rule, self.customer_dos_monitor].into_iter().flatten()
    }
}

/// Which of a frame's monitor-mode rules rate-limit, with a bucket that would have refused
/// the frame: what enforcing each would have dropped as `rate_limited`, counted per rule so
/// that a limit can be sized before it is enforced.
/// A bit per stage, so that the outcome stays within 112 bytes (the size check on `Outcome`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WouldLimit(u8);

impl WouldLimit {
    /// No preview refused the frame.
    pub const NONE: WouldLimit = WouldLimit(0);
    /// The global DoS rule in [`Outcome::dos_monitor`].
    pub const DOS: WouldLimit = WouldLimit(1);
    /// The customer's DoS rule in [`Outcome::customer_dos_monitor`].
    pub const CUSTOMER_DOS: WouldLimit = WouldLimit(2);
    /// The firewall rule in [`Outcome::monitor`].
    pub const FIREWALL: WouldLimit = WouldLimit(4);
    /// The egress rule in [`Outcome::egress_monitor`].
    pub const EGRESS: WouldLimit = WouldLimit(8);

    /// Marks `stage`'s preview as refusing the frame when `refused`.
    pub fn set(&mut self, stage: WouldLimit, refused: bool) {
        if refused {
            self.0 |= stage.0;
        }
    }

    /// Marks `stage`'s preview as refusing the frame when `refused`, and as not refusing it
    /// otherwise, whatever was marked before (a stage whose rule was replaced).
    pub fn replace(&mut self, stage: WouldLimit, refused: bool) {
        self.0 &= !stage.0;
        self.set(stage, refused);
    }

    /// Whether `stage`'s preview refused the frame.
    pub const fn has(self, stage: WouldLimit) -> bool {
        self.0 & stage.0 != 0
    }

    /// Only `stage`'s preview, when `refused`.
    const fn only(stage: WouldLimit, refused: bool) -> WouldLimit {
        if refused { stage } else { WouldLimit::NONE }
    }
}

/// A worker's per-packet state that outlives a batch: the DoS buckets, its ICMP error
/// budget, the TCP connections it tracks, the owners of fragmented return datagrams and the
/// GRE datagrams it reassembles. Fixed in size from the start.
#[derive(Debug)]
pub struct Limits {
    /// Buckets of `rate-limit` rules.
    pub dos: RateLimiter,
    /// The preview tables of buckets monitor-mode `rate-limit` rules charge (none when no
    /// such rule exists): what they would refuse, were they enforced.
    pub previews: RateLimiter,
    /// One bucket: the ICMP errors this worker may send.
    pub icmp: RateLimiter,
    /// The probe replies this worker relays to the other servers of a soft-unicast fleet,
    /// keyed by tunnel ([`probe_relay_bucket`]; no table outside a fleet).
    pub relays: RateLimiter,
    /// TCP connections tracked for `[tcp_protection]` (empty when no rule exists).
    pub flows: FlowTable,
    /// The SYN thresholds of TCP protection rules.
    pub syn: RateLimiter,
    /// The bound on SYN challenges this worker sends.
    pub challenges: RateLimiter,
    /// Sources that answered a challenge.
    pub authenticated: Authenticated,
    /// Until when (ns) the cookie of the last challenge this worker sent is accepted (0: it
    /// sent none): only until then is a RST checked for a cookie, as Linux checks SYN cookies
    /// only while it has recently sent them. One number for the worker, no state per source.
    pub cookies_until: u64,
    /// Per customer, when tracking its connections began (the grace period runs from
    /// there): the first packet tracked after the start, or after a reload that changed
    /// the customer's coverage, whoever's packet it was (`None`: not yet).
    pub tracked_since: Vec<Option<u64>>,
    /// Some `tracked_since` is `None`: the next packet tracked starts them.
    pub tracking_pending: bool,
    /// Where the first fragments of return datagrams went (soft unicast).
    pub fragments: FragmentOwners,
    /// GRE datagrams from tunnels' routers being put together from their fragments.
    pub reassembly: Reassembler,
    /// The largest IP packet the link to the next hop carries (its MTU), where the backend
    /// has one (the worker sets it from its backend's `FrameIo::link_mtu`): a decapsulated packet
    /// larger (a datagram reassembled from fragments that each fit) is fragmented or
    /// answered with an ICMP error as a router would. `None`: no bound (replay).
    pub link_mtu: Option<usize>,
}

impl Limits {
    /// Limits sized for `snap`.
    pub fn new(snap: &Snapshot) -> Limits {
        Limits {
            dos: RateLimiter::new(&snap.dos.buckets, snap.dos.table_size),
            previews: RateLimiter::new(&snap.dos.preview_specs(), snap.dos.table_size),
            icmp: RateLimiter::new(std::slice::from_ref(&snap.icmp), 1),
            relays: RateLimiter::new(&probe_relay_bucket(snap), relay_slots(snap)),
            flows: FlowTable::new(flow_table_size(snap)),
            syn: RateLimiter::new(&snap.tcp.syn_buckets, 4),
            challenges: RateLimiter::new(std::slice::from_ref(&snap.tcp.challenges), 4),
            authenticated: Authenticated::new(authenticated_size(snap)),
            cookies_until: 0,
            tracked_since: vec![None; snap.customers.len()],
            tracking_pending: true,
            fragments: FragmentOwners::new(fragment_owners_size(snap)),
            reassembly: reassembler(snap),
            link_mtu: None,
        }
    }

    /// Follows a new snapshot: state whose shape it changed starts afresh, the rest (tracked
    /// connections above all) carries over. Returns the state replaced, to be freed off the
    /// worker's thread (dropped, it is freed at once).
    pub fn rebind(&mut self, old: &Snapshot, new: &Snapshot) -> Retired {
        self.rebind_as(old, new, &new.succession_from(old))
    }

    /// [`Limits::rebind`] with what carries over worked out (`succession`, from `old` to `new`).
    pub fn rebind_as(&mut self, old: &Snapshot, new: &Snapshot, succession: &Succession) -> Retired {
        let mut retired = Retired::default();
        // Each bucket by name keeps its keys' state while it is the same bucket; any other
        // change started every bucket afresh, each key with a full burst in the middle of an
        // attack.
        let kept = &succession.dos_buckets;
        if kept.iter().enumerate().any(|(i, k)| *k != Some(i)) || new.dos.buckets.len() != old.dos.buckets.len() {
            let mut fresh = RateLimiter::new(&new.dos.buckets, new.dos.table_size);
            fresh.adopt(&mut self.dos, kept);
            retired.keep(std::mem::replace(&mut self.dos, fresh));
        }
        let kept_previews = &succession.previews;
        if kept_previews.iter().enumerate().any(|(i, k)| *k != Some(i)) || new.dos.previewed != old.dos.previewed {
            let mut fresh = RateLimiter::new(&new.dos.preview_specs(), new.dos.table_size);
            fresh.adopt(&mut self.previews, kept_previews);
            retired.keep(std::mem::replace(&mut self.previews, fresh));
        }
        if new.icmp != old.icmp {
            self.icmp = RateLimiter::new(std::slice::from_ref(&new.icmp), 1);
        }
        // Keyed by tunnel id: another bucket or table size starts afresh (each tunnel with a
        // full burst); ids a reload moved keep another tunnel's state for a burst or two.
        if probe_relay_bucket(new) != probe_relay_bucket(old) || relay_slots(new) != relay_slots(old) {
            let fresh = RateLimiter::new(&probe_relay_bucket(new), relay_slots(new));
            retired.keep(std::mem::replace(&mut self.relays, fresh));
        }
        // A customer's connections tracked so far stay so; those its rules newly cover (a
        // wider filter, a new rule or prefix, a new customer) were never seen: their grace
        // period starts again. A new table has seen nothing at all.
        let fresh = flows::slots_for(flow_table_size(new)) != flows::slots_for(flow_table_size(old));
        if fresh {
            retired.keep(std::mem::replace(&mut self.flows, FlowTable::new(flow_table_size(new))));
        }
        // The same filters over lists none of which changed so as to cover more (a list
        // whose rule matches its members that only lost some covers less: nothing new to
        // pick up; a feed rewriting a list every minute must not hold the grace period open
        // for ever).
        let carried = |was: &Option<usize>| {
            if fresh { None } else { (*was).and_then(|j| self.tracked_since.get(j).copied().flatten()) }
        };
        self.tracked_since = succession.tracking.iter().map(carried).collect();
        self.tracking_pending = self.tracked_since.iter().any(Option::is_none);
        // A rule's SYN threshold keeps its state while the rule (its owner and name) keeps
        // the same threshold, wherever the rule now stands.
        let kept = &succession.syn_buckets;
        if kept.iter().enumerate().any(|(i, k)| *k != Some(i)) || new.tcp.syn_buckets.len() != old.tcp.syn_buckets.len()
        {
            let mut fresh = RateLimiter::new(&new.tcp.syn_buckets, 4);
            fresh.adopt(&mut self.syn, kept);
            retired.keep(std::mem::replace(&mut self.syn, fresh));
        }
        if new.tcp.challenges != old.tcp.challenges {
            self.challenges = RateLimiter::new(std::slice::from_ref(&new.tcp.challenges), 4);
        }
        // `cookies_until` carries over whatever changed: the challenges sent before are still
        // out (a configuration compiled again has a new cookie key, and their answers fail,
        // but a snapshot that keeps the key must not lose them).
        if flows::slots_for(authenticated_size(new)) != flows::slots_for(authenticated_size(old)) {
            retired.keep(std::mem::replace(&mut self.authenticated, Authenticated::new(authenticated_size(new))));
        }
        // Owners are kept as server and data-centre indices: another list of them (a server
        // added or removed) makes every remembered owner mean another server, or none.
        if fragment_owners_size(new) != fragment_owners_size(old) || fleet_of(new) != fleet_of(old) {
            retired.keep(std::mem::replace(&mut self.fragments, FragmentOwners::new(fragment_owners_size(new))));
        }
        // Datagrams being reassembled carry over while their slots keep their size (a
        // datagram's tunnel is found once it is whole).
        if reassembly_shape(new) != self.reassembly.shape() {
            let old = std::mem::replace(&mut self.reassembly, reassembler(new));
            self.reassembly.carry_counts(&old);
            retired.keep(old);
        }
        retired
    }
}

/// State a reload replaced: rate-limit, flow and reassembly tables, up to hundreds of
/// megabytes each and touched all over during an attack. Freed by a worker between two
/// batches, they stall it for as long as the pages take to go (its rx ring overflows
/// meanwhile), so it hands them out, as the snapshots it replaced are freed elsewhere.
#[derive(Default)]
pub struct Retired(Vec<Box<dyn Send>>);

impl Retired {
    fn keep<T: Send + 'static>(&mut self, replaced: T) {
        self.0.push(Box::new(replaced));
    }

    /// Nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Datagrams a worker reassembles at once. A router's fragments come back to back, so a
/// datagram takes a slot for microseconds; 64 of a frame's size each (256 KiB at the
/// default 4096) is room for as many routers fragmenting at once.
pub const REASSEMBLY_SLOTS: usize = 64;

/// The reassembler a worker needs for `snap`: [`REASSEMBLY_SLOTS`] datagrams of up to a
/// frame each, none without tunnels or with `gre_reassembly = false`.
fn reassembler(snap: &Snapshot) -> Reassembler {
    let (slots, capacity) = reassembly_shape(snap);
    Reassembler::new(slots, capacity)
}

/// [`reassembler`]'s slots and their size, as [`Reassembler::shape`] says them.
fn reassembly_shape(snap: &Snapshot) -> (usize, usize) {
    match snap.gre_reassembly && !snap.tunnels.is_empty() {
        true => (REASSEMBLY_SLOTS, snap.frame_size),
        false => (0, 0),
    }
}

/// Sources a worker remembers as authenticated: a sixteenth of the flow table (a source
/// opens several connections), none without a SYN threshold.
fn authenticated_size(snap: &Snapshot) -> usize {
    if snap.tcp.syn_buckets.is_empty() { 0 } else { (snap.tcp.table_size / 16).max(1024) }
}

/// What the indices in a worker's fragment owners mean: this server, its data centre, and
/// the backbone address of every server and data centre.
fn fleet_of(snap: &Snapshot) -> Option<(u16, u16, &[std::net::Ipv4Addr], &[std::net::Ipv4Addr])> {
    let su = snap.soft_unicast.as_ref()?;
    Some((su.this_server, su.this_dc, &su.server_backbone, &su.dc_backbone_of))
}

/// The bucket of the probe replies a worker relays over the backbone, per tunnel (none
/// outside a soft-unicast fleet). The router returns every server's probes to the anycast
/// address, so to the one server nearest it, which relays the others': each of the other
/// servers probes a tunnel at most once a `timeout` (while it is in doubt), but a tunnel
/// coming back up is probed again as soon as each answer is judged: `up_after` probes back
/// to back from each of them. Twice that rate, in bursts of twice `up_after` from each, so
/// that no reply due is refused (a refused reply is a miss to its prober, and resets the
/// answers a tunnel needs to come back: with bursts of one a server, a tunnel down on the
/// server whose replies were relayed never came back up there). Unbounded, anyone who could send as a router's
/// side of its tunnel (its router, or anyone forging its GRE, which has no authentication)
/// had every copy of a reply sent over the backbone to the server it names, and from
/// another data centre on again within that server's, past the customer's egress rules.
pub fn probe_relay_bucket(snap: &Snapshot) -> Vec<BucketSpec> {
    let Some(su) = &snap.soft_unicast else { return Vec::new() };
    let others = (su.server_backbone.len() as u64).saturating_sub(1).max(1);
    let per_second = 1_000_000_000u64.div_ceil(snap.health_config.timeout_ns.max(1));
    // `Rule`: one key a tunnel, which the caller makes of the tunnel id.
    let back_to_back = u64::from(snap.health_config.up_after.max(1));
    vec![BucketSpec { key: BucketKey::Rule, rate: 2 * others * per_second, burst: 2 * others * back_to_back }]
}

/// Keys of [`probe_relay_bucket`]'s table: a tunnel each, in a fleet (16 bytes a tunnel:
/// 1 MiB per worker at 65,535 tunnels), as the limiter rounds them.
fn relay_slots(snap: &Snapshot) -> usize {
    if snap.soft_unicast.is_some() { snap.tunnels.len().next_power_of_two() } else { 0 }
}

/// Fragmented datagrams a worker follows: none without soft unicast.
fn fragment_owners_size(snap: &Snapshot) -> usize {
    if snap.soft_unicast.is_some() { fragments::ENTRIES } else { 0 }
}

/// Connections a worker tracks for `snap`: none without a TCP protection rule.
fn flow_table_size(snap: &Snapshot) -> usize {
    if snap.tcp.rules.is_empty() { 0 } else { snap.tcp.table_size }
}

/// A worker's mutable per-packet state: counters, rate limits, spilled frames, and the
/// outcome of each frame of the last batch (for whoever observes outcomes from outside the
/// core: drop capture, dry runs).
#[derive(Debug)]
pub struct WorkerState {
    /// Counters.
    pub stats: WorkerStats,
    /// Rate-limit buckets.
    pub limits: Limits,
    /// Frames to send after the batch.
    pub spill: Spill,
    /// The last batch's outcomes, frame by frame (its first `batch_len`).
    outcomes: [Outcome; BATCH_SIZE],
    batch_len: usize,
    /// What the phases of a batch hand each other.
    lanes: Box<batch::Lanes>,
}

impl WorkerState {
    /// State sized for `snap`.
    pub fn new(snap: &Snapshot) -> WorkerState {
        WorkerState {
            stats: WorkerStats::new(snap),
            limits: Limits::new(snap),
            spill: Spill::new(SPILL_SLOTS, snap.frame_size),
            outcomes: [Outcome::new(Verdict::Drop(DropReason::Truncated)); BATCH_SIZE],
            batch_len: 0,
            lanes: batch::Lanes::new(),
        }
    }

    /// The outcomes of the last batch processed, in frame order (of its first
    /// [`BATCH_SIZE`] frames).
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes[..self.batch_len]
    }

    /// Takes the frames of the last batch its backend did not send after all (`unsent`,
    /// indices into it) off the `tx` counts.
    pub fn uncount_unsent(&mut self, unsent: &[u16]) {
        self.stats.uncount_unsent_frames(&self.outcomes[..self.batch_len], unsent);
    }
}

/// Runs every stage on one frame, rewriting it in place when it is to be transmitted with
/// Ethernet addresses `eth` (`None`: the next hop is not resolved).
///
/// This is the frame-at-a-time form of the pipeline: `match --config` and the fuzz targets
/// use it, and the differential test holds [`process_batch`] to it. Both are made of the same
/// stage functions below, in the same order.
pub fn process_frame(
    snap: &Snapshot,
    eth: Option<&EthernetAddrs>,
    limits: &mut Limits,
    spill: &mut Spill,
    frame: &mut Frame<'_>,
) -> Outcome {
    let mut key = Key::new(0);
    let mut ip = IpFrame::NONE;
    if let Err(verdict) = check(snap, frame, &mut key, &mut ip) {
        return Outcome::new(verdict);
    }
    spill.timestamp_ns = frame.captured_ns; // what this frame spills is stamped so
    let mut ctx = Ctx::new(snap, eth, limits, spill, frame.timestamp_ns);
    if is_backbone(snap, &key, &ip) {
        return from_backbone(&mut ctx, frame, &key, &ip);
    }
    // Return traffic's owner first, as the XDP program finds it: this server's goes to its
    // host, unread by the sanity checks and DoS rules that another's meets.
    let mut steered = None;
    if is_to_egress(snap, &key, &ip) {
        match steer_return_traffic(&mut ctx, frame, &key, &ip) {
            Ok(path) => steered = Some(path),
            Err(verdict) => return Outcome::new(verdict),
        }
    }
    if let Some(reason) = dos::sanity(&snap.dos.sanity, &key, &ip) {
        return Outcome::new(Verdict::Drop(reason));
    }
    let global = dos::apply(&mut ctx, &snap.dos.rules, &key, frame.data());
    if global.drop.is_some() {
        return dropped_by_dos(global);
    }
    let path = steered.unwrap_or_else(|| path(snap, &key, &ip));
    let decided = match path {
        Path::Customer(c) => ingress::decide(&snap.customers[usize::from(c)], &key, frame.data()),
        _ => Decided::NONE,
    };
    let mut outcome = Outcome::new(Verdict::Drop(DropReason::Firewall));
    finish(&mut ctx, frame, &key, &ip, global, path, &decided, &mut outcome);
    outcome
}

/// The parse stage and the checks every frame must pass: fits the configured frame size,
/// parses as IP (its fields into `key`, where it sits into `ip`), and (IPv4) its header
/// checksum verifies. Both are written where the caller keeps them: they are larger than a
/// cache line together, and moving them out of a return value showed in profiles.
#[inline]
fn check(snap: &Snapshot, frame: &Frame<'_>, key: &mut Key, ip: &mut IpFrame) -> Result<(), Verdict> {
    if frame.len > snap.frame_size {
        return Err(Verdict::Drop(DropReason::Oversize));
    }
    let Some(data) = frame.buf.get(frame.start..frame.start + frame.len) else {
        return Err(Verdict::Drop(DropReason::Truncated));
    };
    *ip = match parse_frame_into(key, data, frame.wire_len) {
        Parsed::Ip(ip) => ip,
        Parsed::NotIp => return Err(Verdict::Pass(PassReason::NotIp)),
        Parsed::Mpls => return Err(by_fate(snap.mpls, PassReason::Mpls, DropReason::Mpls)),
        Parsed::Bad(reason) => return Err(Verdict::Drop(reason)),
    };
    if !ip.is_ipv6 && !forward::ipv4_checksum_ok(data, ip) {
        return Err(Verdict::Drop(DropReason::BadIpv4Checksum));
    }
    snap.membership.fill(key);
    Ok(())
}

/// The verdict for traffic the configuration passes to the host or drops (`unmatched`,
/// `gre_unsupported`, `mpls`), under the reason it has either way.
pub(crate) fn by_fate(fate: Fate, pass: PassReason, drop: DropReason) -> Verdict {
    match fate {
        Fate::Pass => Verdict::Pass(pass),
        Fate::Drop => Verdict::Drop(drop),
    }
}

/// True for GRE from the fleet's own servers: not Internet traffic, so it skips sanity and
/// DoS.
fn is_backbone(snap: &Snapshot, key: &Key, ip: &IpFrame) -> bool {
    snap.soft_unicast.as_ref().is_some_and(|su| egress::is_backbone(su, key, ip))
}

/// True for a packet to a soft-unicast egress address: return traffic.
fn is_to_egress(snap: &Snapshot, key: &Key, ip: &IpFrame) -> bool {
    snap.soft_unicast.as_ref().is_some_and(|su| egress::is_to_egress(su, key, ip))
}

/// Return traffic from the Internet ([`is_to_egress`]) before the global stages: its owner,
/// looked up as the XDP program's `egress_mine` looks it up, in arrival order (a later
/// fragment follows its first). What this server owns goes to its host unread, as the
/// program hands it over: `Err` with that verdict, which no sanity check or DoS rule
/// changes. Another's meets them, then goes on by the path returned.
fn steer_return_traffic(ctx: &mut Ctx<'_>, frame: &Frame<'_>, key: &Key, ip: &IpFrame) -> Result<Path, Verdict> {
    let snap = ctx.snap;
    // Only frames `is_to_egress` chose come here, and they need it.
    let Some(su) = &snap.soft_unicast else { return Ok(Path::NoCustomer) };
    let owner = egress::lookup_owner(ctx, su, frame, key, ip);
    if egress::is_this_servers(su, owner) {
        return Err(Verdict::Pass(PassReason::EgressLocal));
    }
    Ok(Path::SoftUnicast(owner))
}

/// Soft-unicast's part of a frame (backbone GRE, `owner` `None`; or return traffic another
/// server or data centre owns, [`steer_return_traffic`]), with RFC 1812 §5.3.4 on its
/// verdict: return traffic this server delivers goes to its host whatever the link address
/// (as the XDP program passes it), while what would be forwarded to another server is
/// dropped when it came as a link broadcast, with any fragments of it already spilled.
fn soft_unicast(ctx: &mut Ctx<'_>, frame: &mut Frame<'_>, key: &Key, ip: &IpFrame, owner: Option<Owner>) -> Verdict {
    let snap = ctx.snap;
    // Only frames `is_backbone` or `steer_return_traffic` chose come here, and they need it.
    let Some(su) = &snap.soft_unicast else { return Verdict::Pass(PassReason::NoCustomer) };
    let (spill_before, spilled_before) = (ctx.spill.len(), ctx.spilled);
    match egress::process(ctx, su, frame, key, ip, owner) {
        Verdict::Tx { .. } if sent_to_a_link_group(key) => {
            ctx.spill.truncate(spill_before);
            ctx.spilled = spilled_before;
            Verdict::Drop(DropReason::LinkBroadcast)
        }
        v => v,
    }
}

/// What the fleet sent over the backbone: its outcome, with the later fragments it spilled
/// (an inner packet too big for the next hop), which are counted sent by this count alone.
fn from_backbone(ctx: &mut Ctx<'_>, frame: &mut Frame<'_>, key: &Key, ip: &IpFrame) -> Outcome {
    let verdict = soft_unicast(ctx, frame, key, ip, None);
    Outcome { spilled: ctx.spilled, ..Outcome::new(verdict) }
}

/// The outcome of a frame the global DoS rules dropped.
fn dropped_by_dos(global: dos::DosOutcome) -> Outcome {
    Outcome {
        dos_rule: global.rule,
        dos_monitor: global.monitor,
        would_limit: WouldLimit::only(WouldLimit::DOS, global.would_limit),
        ..Outcome::new(Verdict::Drop(global.drop.unwrap_or(DropReason::DosRule)))
    }
}

/// Where a frame past the global stages goes: chosen by addresses alone (return traffic by
/// its owner, [`steer_return_traffic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// To an egress address of soft unicast, owned by `Owner`: another server or data centre
    /// (this server's went to its host before the global stages, [`steer_return_traffic`]).
    SoftUnicast(Owner),
    /// GRE from a customer's router to the anycast address.
    Decap,
    /// To no customer's prefix.
    NoCustomer,
    /// To no customer's prefix, but to one a reload removed, in its grace.
    Withdrawn,
    /// An ICMP Fragmentation Needed or Packet Too Big to the anycast address: about our
    /// GRE, it is the underlay's path MTU.
    UnderlayTooBig,
    /// To `customer`'s prefix, from a source in some customer's prefix (`customer_sources`)
    /// or one of ours ([`dos::spoofs_a_customer`]).
    Spoofed(CustomerId),
    /// To `customer`'s prefix, from a link-local source ([`scope::is_link_local`]).
    LinkLocalSource(CustomerId),
    /// To `customer`'s prefix, with a source route onward.
    SourceRouted(CustomerId),
    /// To the network or broadcast address of a tunnel's inner /30 in `customer`'s prefix.
    TunnelBroadcast(CustomerId),
    /// To our side of a tunnel's `interface`, in `customer`'s prefix.
    TunnelInterface(CustomerId),
    /// To `customer`'s prefix: its DoS rules, firewall, route, tunnel.
    Customer(CustomerId),
    /// Bound for a customer or the anycast address, but received as a link-layer broadcast
    /// or multicast.
    LinkBroadcast,
}

/// Steers a frame (the address lookups, no state).
fn path(snap: &Snapshot, key: &Key, ip: &IpFrame) -> Path {
    let path = path_by_address(snap, key, ip);
    // RFC 1812 §5.3.4: a router forwards no packet it received as a link-layer broadcast
    // (multicast routing aside, which transitd does not do) and discards a unicast one
    // received so. Traffic for no customer is the host's to judge; soft unicast's (steered
    // before, not here) is judged on its outcome ([`soft_unicast`]), since part of it is the
    // host's too; a Packet Too Big once its quote says it is ours ([`pmtu::process`]), and
    // GRE once its source and header say it is ours ([`decap::process`]), since otherwise
    // they are the host's (the XDP program passes GRE not ours whatever the link address).
    if !matches!(path, Path::NoCustomer | Path::UnderlayTooBig | Path::Decap) && sent_to_a_link_group(key) {
        return Path::LinkBroadcast;
    }
    path
}

/// The Ethernet destination is a group address (broadcast or multicast: its first octet's
/// low bit, IEEE 802's I/G bit). A frame with no Ethernet header of its own (a raw-IP or
/// cooked capture) has none.
fn sent_to_a_link_group(key: &Key) -> bool {
    let dst_hi = key.get(Dim::EthDstHi); // the destination's first two octets
    dst_hi != classifier::ABSENT && dst_hi & 0x0100 != 0
}

/// Steers a frame by its IP addresses (not return traffic to an egress address, which
/// [`steer_return_traffic`] steers).
fn path_by_address(snap: &Snapshot, key: &Key, ip: &IpFrame) -> Path {
    if decap::is_gre_to_us(snap, key, ip) {
        return Path::Decap;
    }
    if pmtu::is_too_big_to_us(snap, key, ip) {
        return Path::UnderlayTooBig;
    }
    // The host's own link (its link-local addresses, neighbour discovery, DHCP, OSPF) is no
    // customer's, even where a catch-all prefix or one a reload removed holds it: the XDP
    // program passes it to the host before it looks at the prefixes.
    if scope::is_for_the_link(key.dst_addr(), ip.is_ipv6) {
        return Path::NoCustomer;
    }
    match ingress::steer(snap, key, ip.is_ipv6) {
        None if snap.withdrawn.holds(ip.is_ipv6, key.dst_addr()) => Path::Withdrawn,
        None => Path::NoCustomer,
        Some(c) if dos::spoofs_a_customer(snap, key, ip) => Path::Spoofed(c),
        // RFC 3927 §2.7, RFC 4291 §2.5.6: its sender is on the upstream's link, and a router
        // forwards nothing from there off it, whatever its TTL. Dropped before the
        // customer's stages, so that it spends none of their rate limits or challenges.
        Some(c) if scope::is_link_local(key.src_addr(), ip.is_ipv6) => Path::LinkLocalSource(c),
        Some(c) if !ip.is_ipv6 && snap.is_tunnel_broadcast(Ipv4Addr::from(key.get(Dim::Dst0))) => {
            Path::TunnelBroadcast(c)
        }
        // Our side of a tunnel whose inner network lies inside its customer's prefix (the
        // configuration allows it) is an address of ours all the same: a router delivers its
        // own addresses and forwards none (RFC 1812 §5.2.3; sent into the tunnel, it came
        // straight back out of it), and ours is served through its tunnel alone
        // (`decap::to_our_side`), as nothing to the anycast address goes into a tunnel.
        Some(c) if !ip.is_ipv6 && snap.is_tunnel_side_in_a_prefix(Ipv4Addr::from(key.get(Dim::Dst0))) => {
            Path::TunnelInterface(c)
        }
        // RFC 7126 §4.3, §4.4: on its way through the customer's host to somewhere else
        // (hosts refuse to forward these; the rules would read its next hop as `ip.dst`
        // where tshark reads the route's end).
        Some(c) if ip.routed_onward && snap.dos.sanity.source_route => Path::SourceRouted(c),
        Some(c) => Path::Customer(c),
    }
}

/// The rest of a frame's way once its lookups are done (the global DoS decision enforced
/// as `global`, the customer's in `decided`): counts tokens, routes, rewrites and spills,
/// so frames go through it one by one in arrival order. Writes the frame's outcome into
/// `outcome` (in place: the batch keeps one per frame, and moving one showed in profiles).
#[allow(clippy::too_many_arguments)] // the frame's lookups, each from its own phase
fn finish(
    ctx: &mut Ctx<'_>,
    frame: &mut Frame<'_>,
    key: &Key,
    ip: &IpFrame,
    global: dos::DosOutcome,
    path: Path,
    decided: &Decided,
    outcome: &mut Outcome,
) {
    if global.drop.is_some() {
        *outcome = dropped_by_dos(global);
        return;
    }
    *outcome = Outcome {
        dos_rule: global.rule,
        dos_monitor: global.monitor,
        would_limit: WouldLimit::only(WouldLimit::DOS, global.would_limit),
        ..Outcome::new(Verdict::Drop(DropReason::Firewall))
    };
    match path {
        Path::SoftUnicast(owner) => outcome.verdict = soft_unicast(ctx, frame, key, ip, Some(owner)),
        Path::Decap => decap::process(ctx, frame, key, ip, outcome),
        Path::NoCustomer => {
            outcome.verdict = by_fate(ctx.snap.unmatched, PassReason::NoCustomer, DropReason::NoCustomer);
        }
        // Dropped whatever `unmatched` says: passed, it would reach the host's stack.
        Path::Withdrawn => outcome.verdict = Verdict::Drop(DropReason::WithdrawnPrefix),
        Path::UnderlayTooBig => outcome.verdict = pmtu::process(ctx, frame, key, ip),
        Path::Spoofed(c) => dropped_for(outcome, c, DropReason::SpoofedCustomerSource),
        Path::LinkLocalSource(c) => dropped_for(outcome, c, DropReason::LinkLocalSource),
        Path::SourceRouted(c) => dropped_for(outcome, c, DropReason::SourceRouted),
        Path::TunnelBroadcast(c) => dropped_for(outcome, c, DropReason::TunnelBroadcast),
        Path::TunnelInterface(c) => dropped_for(outcome, c, DropReason::TunnelInterface),
        Path::Customer(c) => ingress::act_for_customer(ctx, frame, key, ip, c, decided, outcome),
        Path::LinkBroadcast => outcome.verdict = Verdict::Drop(DropReason::LinkBroadcast),
    }
    outcome.spilled = ctx.spilled;
    // The tunnel a frame was sent into; an ICMP error sent to the Internet went into none.
    match (ctx.via, outcome.verdict) {
        (Some(t), _) => outcome.tunnel = Some(t),
        (None, Verdict::Tx { reason: TxReason::IcmpTooBig | TxReason::IcmpTimeExceeded, .. }) => outcome.tunnel = None,
        _ => {}
    }
}

/// The outcome of a frame to `customer`'s prefix that is dropped for `reason` before the
/// customer's own stages (a drop in the customer's counts all the same).
fn dropped_for(outcome: &mut Outcome, customer: CustomerId, reason: DropReason) {
    outcome.customer = Some(customer);
    outcome.verdict = Verdict::Drop(reason);
}
