//! Tunnel health as data: the up/down flag and last answered probe of each tunnel, which
//! the prober (in the shell, `crate::health`) writes and the pipeline's decapsulation and
//! route stages read and record, in the life each tunnel's probes are tagged in; the path
//! MTU the underlay was found to take (the pipeline's `pmtu` stage writes it, the tunnel
//! stages read it, the prober raises it back when a path MTU probe disproves it) and the
//! path MTU probes answered; and the probes' timing. Atomics per
//! tunnel, read Relaxed on the forwarding path (a path MTU word and its flag are written
//! SeqCst, the word first; a reader that sees the flag before the word keeps the configured
//! MTU a packet longer, which is harmless), and
//! answer marks (a bit per tunnel in shared 64-bit words, Release/Acquire: they carry what
//! was answered to the prober): no lock, and no write on the forwarding path but a
//! recognised probe reply or Packet Too Big.
//!
//! The parts: `probes` (a probe's payload, its tag in the tunnel's life, and the replies
//! that verify), `path_mtu` (the path MTUs learned, doubted and claimed, and their expiry)
//! and this module (the table, the up and judged flags, the lives, the answer marks, and
//! what a reload carries).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::TunnelId;

mod path_mtu;
mod probes;

pub use path_mtu::PATH_MTU_HOLD_NS;
pub use probes::{PROBE_MAGIC, PROBE_PAYLOAD_LEN, probe_reply_payload_len, probe_sender, probe_tunnel};

/// Lives handed out so far in this process: a reload's table gives each tunnel that does
/// not go on with its old one a new one, a tunnel whose sequence numbers start over takes
/// another ([`HealthTable::restart`]).
static LIVES: AtomicU64 = AtomicU64::new(0);

/// A life not handed out in the last 2^32 - 1 (never 0, the first table's): a life is 32
/// bits, to share a word with the answers in it ([`ProbeLife`]). Lives go to the tunnels a
/// reload adds or whose probing it stops or starts, and to wraps, not to every tunnel at
/// every reload (65,535 tunnels reloaded 65,537 times would have spent them): a repeat
/// takes some four billion of those.
fn new_life() -> u32 {
    life_number(LIVES.fetch_add(1, Ordering::Relaxed))
}

/// The life handed out `n`th: 1 to 2^32 - 1, then 1 again.
fn life_number(n: u64) -> u32 {
    (n % u64::from(u32::MAX)) as u32 + 1
}

/// A tunnel's life and the highest sequence number answered in it, kept as one atomic word
/// (the life in the upper half): a worker raises the answer only while the life it
/// verified the reply in lasts. Apart, a worker could read the life, the prober begin
/// another at a wrap (zeroing the answer), and the worker then write the old life's
/// #4294967295: every number of the new life answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProbeLife {
    life: u32,
    replied: u32,
}

impl ProbeLife {
    fn unpack(word: u64) -> ProbeLife {
        ProbeLife { life: (word >> 32) as u32, replied: word as u32 }
    }

    fn pack(self) -> u64 {
        u64::from(self.life) << 32 | u64::from(self.replied)
    }
}

/// Health state shared by the workers for one snapshot's tunnels.
#[derive(Debug)]
pub struct HealthTable {
    tunnels: Box<[TunnelHealth]>,
    /// Per tunnel, a packed [`ProbeLife`]: the life its probes are tagged in (the tag covers
    /// it; the payload does not carry it), and the highest sequence number answered in it
    /// (tagged: no one off the tunnel's path can raise it). A tunnel's sequence numbers start
    /// over with each life, under the same
    /// key (the process's): without it a reply to probe #500 of a tunnel a reload took out
    /// (or whose `interface` it removed), late or replayed by anyone who saw it on the
    /// underlay, verified once a later reload put the tunnel back, and answered the new
    /// prober's #1 to #500 for it: a dead tunnel kept up for 500 intervals, and its customer
    /// announced. A process's first table has every tunnel in life 0, tagged as before lives
    /// were (replay's captures hold such tags); a reload's copy carries a tunnel's life by
    /// name while it stays probed, as the prober carries its sequence numbers, and gives
    /// every other tunnel a new one; a wrap begins another. Kept apart from the flags the
    /// route stage reads: only replies and the prober read it.
    lives: Box<[AtomicU64]>,
    /// Random per process and never sent: each probe carries a tag of its tunnel, life and
    /// sequence number under it, so no router can make a reply for another's tunnel (every
    /// router sees its own probes' tags only), nor anyone one for a probe not yet sent.
    key: [AtomicU64; 2],
    /// Some tunnel may hold a path MTU: set with each, cleared when the last lapses
    /// ([`HealthTable::expire_path_mtus`]). While it is clear the forwarding path reads
    /// this one flag, not a tunnel's word.
    any_path_mtu: AtomicBool,
    /// A bit a tunnel: a reply was recorded since the prober last looked. The prober judges
    /// an answered probe at its next tick from these, without walking every tunnel.
    answers: Box<[AtomicU64]>,
    /// Per tunnel, the highest path MTU probe sequence number answered (the prober numbers
    /// them apart from health probes). Kept apart from the flags the route stage reads, as
    /// the lives are.
    path_mtu_probes_answered: Box<[AtomicU32]>,
    /// Per tunnel, while errors about it are doubted (one was disproved within
    /// [`PATH_MTU_HOLD_NS`]) and until when (upper half, in units of 2^TIME_SHIFT ns), the
    /// lowest MTU inside the errors since claimed (lower half; 0: none), for the prober to
    /// probe before it is believed ([`HealthTable::path_mtu_error`]).
    doubts: Box<[AtomicU64]>,
    /// Some tunnel may hold a claim the prober has not taken up: set with each, taken by the
    /// prober's look ([`HealthTable::take_path_mtu_claims`]).
    any_claim: AtomicBool,
}

#[derive(Debug)]
struct TunnelHealth {
    up: AtomicBool,
    /// The prober has judged it: a probe answered, or it went down. Until then a probed
    /// tunnel carries traffic (up) but is not counted on for announcing its customer.
    judged: AtomicBool,
    /// The largest inner packet the underlay was last found to take (the path MTU less
    /// the tunnel's outer headers), and until when (upper half, in units of 2^TIME_SHIFT
    /// ns); 0: none learned.
    path_mtu: AtomicU64,
    /// Times it went from up to down, for the metrics: a tunnel that flaps between two
    /// scrapes reads up at both, and only this says it went down meanwhile. Carried over
    /// reloads by name, as a counter must be.
    downs: AtomicU64,
    /// Up only because a reload has it probed afresh (another router, key or `interface`)
    /// while it was down, and no probe answered since: the outage goes on, and going down
    /// again when the new probes go unanswered too is not another down. Counted, each try
    /// at a key for a dead tunnel was one, and three within the hour opened a
    /// TransitdTunnelFlapping ticket for a tunnel that never came up.
    outage_open: AtomicBool,
}

impl HealthTable {
    /// Every tunnel up, nothing answered yet, in life 0 (a reload's copy,
    /// [`HealthTable::inherit`], gives each another or its old one).
    pub fn new(tunnels: usize) -> HealthTable {
        let answers = (0..tunnels.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let lives = (0..tunnels).map(|_| AtomicU64::new(0)).collect();
        let path_mtu_probes_answered = (0..tunnels).map(|_| AtomicU32::new(0)).collect();
        let doubts = (0..tunnels).map(|_| AtomicU64::new(0)).collect();
        let tunnels = (0..tunnels)
            .map(|_| TunnelHealth {
                up: AtomicBool::new(true),
                judged: AtomicBool::new(false),
                path_mtu: AtomicU64::new(0),
                downs: AtomicU64::new(0),
                outage_open: AtomicBool::new(false),
            })
            .collect();
        HealthTable {
            tunnels,
            lives,
            key: [AtomicU64::new(0), AtomicU64::new(0)],
            any_path_mtu: AtomicBool::new(false),
            answers,
            path_mtu_probes_answered,
            doubts,
            any_claim: AtomicBool::new(false),
        }
    }

    /// Whether tunnel `t` may carry new traffic.
    #[inline]
    pub fn is_up(&self, t: TunnelId) -> bool {
        self.tunnels.get(usize::from(t)).is_none_or(|h| h.up.load(Ordering::Relaxed))
    }

    /// Whether the prober has judged tunnel `t` (a probe answered, or it went down); an
    /// unprobed tunnel never is, and needs not be.
    pub fn judged(&self, t: TunnelId) -> bool {
        self.tunnels.get(usize::from(t)).is_some_and(|h| h.judged.load(Ordering::Relaxed))
    }

    /// Marks tunnel `t` judged. Up and judged, it answered a probe: an outage a reload
    /// carried ([`HealthTable::carry_downs`]) is over, and its next down is another.
    pub fn set_judged(&self, t: TunnelId) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.judged.store(true, Ordering::Relaxed);
            h.outage_open.store(false, Ordering::Relaxed);
        }
    }

    /// Sets tunnel `t`'s state, counting a change from up to down, but not one that goes on
    /// with an outage a reload carried: up only to be probed afresh, and nothing answered.
    pub fn set_up(&self, t: TunnelId, up: bool) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            // Whichever way it goes, the outage a reload carried is settled by this change.
            let outage_goes_on = h.outage_open.swap(false, Ordering::Relaxed);
            if h.up.swap(up, Ordering::Relaxed) && !up && !outage_goes_on {
                h.downs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many times tunnel `t` went from up to down (across reloads that kept its name).
    pub fn downs(&self, t: TunnelId) -> u64 {
        self.tunnels.get(usize::from(t)).map_or(0, |h| h.downs.load(Ordering::Relaxed))
    }

    /// Tunnel `t`'s life and the answers in it (life 0 and none for a tunnel it has not).
    fn probe_life(&self, t: usize) -> ProbeLife {
        self.lives.get(t).map_or(ProbeLife::default(), |l| ProbeLife::unpack(l.load(Ordering::Relaxed)))
    }

    /// Sequence numbers of tunnel `t` start over (they wrapped): a new life, in which nothing
    /// is answered yet and no reply to a probe of the last one verifies (a late reply to
    /// #4294967295 answered every number after the wrap), nor raises the answer if it
    /// verified just before. Before the life's first probe is written, whose tag is made in it.
    pub fn restart(&self, t: TunnelId) {
        if let Some(l) = self.lives.get(usize::from(t)) {
            l.store(ProbeLife { life: new_life(), replied: 0 }.pack(), Ordering::Relaxed);
        }
    }

    /// Marks tunnel `t` as having an answer for the prober to judge. Release: the prober,
    /// taking the mark (Acquire), sees the `replied` written before it.
    pub fn note_answer(&self, t: TunnelId) {
        if let Some(word) = self.answers.get(usize::from(t) / 64) {
            word.fetch_or(1 << (t % 64), Ordering::Release);
        }
    }

    /// The tunnels marked since the last call, each once (the marks are taken).
    pub fn take_answers(&self) -> impl Iterator<Item = TunnelId> + '_ {
        self.answers.iter().enumerate().flat_map(|(w, word)| {
            // A load first: words without a mark (nearly all) are not written.
            let mut bits = if word.load(Ordering::Relaxed) == 0 { 0 } else { word.swap(0, Ordering::Acquire) };
            std::iter::from_fn(move || {
                let bit = bits.trailing_zeros();
                bits &= bits.wrapping_sub(1);
                (bit < 64).then(|| (w * 64) as TunnelId + bit as TunnelId)
            })
        })
    }

    /// Carries state over from the table of the previous snapshot, each tunnel `t` from
    /// tunnel `was[t]` of `old` (the one of its name while it reaches the same router:
    /// [`super::Succession::same_router`]), so that a reload neither revives a dead tunnel
    /// nor forgets probes in flight or a path MTU it learned. A tunnel not probed as it was
    /// (`probed_as_before[t]` false: no longer probed, or under another key or inner
    /// addresses, [`super::Tunnel::is_probed_as`]) is up and not judged, as an unprobed or a
    /// new tunnel is, and keeps only its path MTU. A tunnel probed as it was goes on with its
    /// old life; every other begins a new one.
    pub fn inherit(&self, was: &[Option<usize>], probed_as_before: &[bool], old: &HealthTable) {
        self.set_key(old.key());
        for (t, life) in self.lives.iter().enumerate() {
            let probed = probed_as_before.get(t).copied().unwrap_or(true);
            let old_id = was.get(t).copied().flatten();
            if !probed || old_id.is_none() {
                life.store(ProbeLife { life: new_life(), replied: 0 }.pack(), Ordering::Relaxed);
            }
            if let Some(o) = old_id {
                self.carry(t, old, o, probed, true);
            }
        }
    }

    /// Carries each tunnel's count of downs over from `old`, tunnel `t` from tunnel
    /// `named[t]` (the one of its name: [`super::Succession::tunnels`]), wherever it now
    /// reaches and however it is probed: the count is the series of its name, and one that
    /// fell back at a reload (moved to another router, the tunnel is probed afresh) would
    /// read as a reset, its increase lost.
    pub fn inherit_downs(&self, named: &[Option<usize>], old: &HealthTable) {
        for (t, o) in named.iter().enumerate() {
            if let Some(o) = *o {
                self.carry_downs(t, old, o);
            }
        }
    }

    /// Tunnel `t` counts at least the downs of tunnel `o` of `old`: the reload's copy, and
    /// again at the prober's move, which may have taken `o` down in `old` since (or seen it
    /// answer). So does the outage `o` was in: `t`, up without an answer (probed afresh,
    /// wherever it now reaches), goes on with it while `o` was down or still in one a reload
    /// carried, and its first down then is no new one.
    pub fn carry_downs(&self, t: usize, old: &HealthTable, o: usize) {
        if let (Some(new), Some(old)) = (self.tunnels.get(t), old.tunnels.get(o)) {
            new.downs.fetch_max(old.downs.load(Ordering::Relaxed), Ordering::Relaxed);
            let unanswered = new.up.load(Ordering::Relaxed) && !new.judged.load(Ordering::Relaxed);
            let was_out = !old.up.load(Ordering::Relaxed) || old.outage_open.load(Ordering::Relaxed);
            new.outage_open.store(unanswered && was_out, Ordering::Relaxed);
        }
    }

    /// Copies tunnel `o` of `old` into tunnel `t` (its state and life only if still
    /// `probed` as it was: one that is not keeps no answers and its new life, since a
    /// prober that probes it again, or anew, starts its sequence numbers over, and old
    /// answers, or old replies arriving late, would answer its new probes); a reply a
    /// worker already recorded in this table in the same life stays. The path MTU only
    /// with `path_mtu`: the reload's copy takes it, which may then forget it (another path,
    /// discovery turned off); the prober's later move must not bring it back.
    fn carry(&self, t: usize, old: &HealthTable, o: usize, probed: bool, path_mtu: bool) {
        let was = old.probe_life(o);
        let probes_answered = old.path_mtu_probes_answered.get(o).map_or(0, |a| a.load(Ordering::Acquire));
        let old_doubts = &old.doubts;
        let (Some(new), Some(old)) = (self.tunnels.get(t), old.tunnels.get(o)) else { return };
        new.up.store(!probed || old.up.load(Ordering::Relaxed), Ordering::Relaxed);
        // One that lapsed is carried and cleared at the prober's next check.
        let carried = old.path_mtu.load(Ordering::SeqCst);
        if path_mtu && carried != 0 {
            new.path_mtu.store(carried, Ordering::SeqCst);
            self.any_path_mtu.store(true, Ordering::SeqCst);
        }
        if path_mtu && let (Some(new), Some(old)) = (self.doubts.get(t), old_doubts.get(o)) {
            let doubt = old.load(Ordering::Relaxed);
            new.store(doubt, Ordering::Relaxed);
            // A claim the prober has not taken up is marked here as well: its mark was the old
            // table's, and only a lower claim would set one again, so the prober, with nothing
            // else held, never looked, and the tunnel's errors went unheeded until the doubt
            // lapsed.
            if doubt as u32 != 0 {
                self.note_path_mtu_claims();
            }
        }
        if probed {
            // The reload's copy takes the old life; the prober's later move finds the same one
            // (and keeps what workers recorded here since), unless it began another in `old`
            // meanwhile (a wrap), whose answers are the only ones that count. One word, so a
            // worker's answer lands in the life its reply verified in, never in the next.
            if let Some(l) = self.lives.get(t) {
                let _ = l.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                    let here = ProbeLife::unpack(word);
                    let replied = if here.life == was.life { here.replied.max(was.replied) } else { was.replied };
                    Some(ProbeLife { replied, ..was }.pack())
                });
            }
            if old.judged.load(Ordering::Relaxed) {
                new.judged.store(true, Ordering::Relaxed);
            }
            // The prober's path MTU probe numbers go on across lives (its state follows the
            // tunnel's name): the highest answered is kept.
            if let Some(a) = self.path_mtu_probes_answered.get(t) {
                a.fetch_max(probes_answered, Ordering::Release);
            }
        }
    }

    /// Tunnel `t` takes over tunnel `o` of `old` as the prober last left it: the prober
    /// moves to a new snapshot after the reload copied the table, and what it decided
    /// meanwhile (a tunnel gone down) or recorded (a reply) is in the old one.
    pub fn take_over(&self, t: TunnelId, old: &HealthTable, o: TunnelId) {
        self.carry(usize::from(t), old, usize::from(o), true, false);
    }
}

/// The health-check timing and thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Between probes of a settled tunnel.
    pub interval_ns: u64,
    /// How long a reply may take; also the probe spacing of a tunnel in doubt.
    pub timeout_ns: u64,
    /// Misses in a row that take a tunnel down.
    pub down_after: u32,
    /// Answers in a row that bring it back.
    pub up_after: u32,
    /// Unanswered probes in a row, at most, excused rather than missed because the run's
    /// sockets dropped received frames while they waited.
    pub excused_max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const S: u64 = 1_000_000_000;

    /// The payload of probe `seq` of tunnel `t` as `write_probe` lays it out (magic, tag,
    /// tunnel id, zero, sequence number, all big-endian), tagged as `h` tags it now.
    pub(super) fn payload(h: &HealthTable, t: TunnelId, name: &str, seq: u32) -> Vec<u8> {
        let tag = h.tag(t, name, seq).to_be_bytes();
        [&PROBE_MAGIC[..], &tag, &t.to_be_bytes(), &[0u8, 0], &seq.to_be_bytes()].concat()
    }

    #[test]
    fn a_probe_life_packs_into_one_word_and_lives_skip_zero() {
        for (life, replied) in [(0, 0), (1, u32::MAX), (u32::MAX, 0), (u32::MAX, u32::MAX), (0x1234_5678, 9)] {
            let p = ProbeLife { life, replied };
            assert_eq!(ProbeLife::unpack(p.pack()), p);
        }
        assert_eq!(ProbeLife { life: 3, replied: 7 }.pack(), 0x0000_0003_0000_0007, "the life in the upper half");
        assert_eq!([life_number(0), life_number(1)], [1, 2]);
        assert_eq!(life_number(u64::from(u32::MAX) - 1), u32::MAX);
        assert_eq!(life_number(u64::from(u32::MAX)), 1, "0 is the first table's, never handed out");
    }

    /// A reload's copy carries the life of a tunnel that stays probed, answers and all, and
    /// spends new lives on the others only.
    #[test]
    fn a_reload_carries_the_life_of_a_tunnel_still_probed() {
        let old = HealthTable::new(2);
        old.set_key([1, 2]);
        old.restart(0);
        assert!(old.record_reply(0, "a", &payload(&old, 0, "a", 9)));
        let new = HealthTable::new(3);
        new.inherit(&[None, Some(0), Some(1)], &[true, true, false], &old);
        assert_eq!(new.probe_life(1), old.probe_life(0), "a: its life and answers");
        assert_ne!(new.probe_life(0).life, 0, "c: new");
        assert_ne!(new.probe_life(2).life, 0, "b, no longer probed: new");
        assert_ne!(new.probe_life(2).life, new.probe_life(0).life);
        // a's next probe, tagged in the old table, names its new id.
        let mut next = payload(&old, 0, "a", 10);
        next[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert!(new.record_reply(1, "a", &next), "a reply to a's next probe");
    }

    /// A claim a doubted error made just before a reload is carried with the mark that the
    /// prober has one to take up (the old table's mark stays behind).
    #[test]
    fn a_reload_carries_a_claim_and_its_mark() {
        let old = HealthTable::new(1);
        old.doubt_path_mtu_errors(0, S);
        assert!(!old.path_mtu_error(0, 900, 2 * S), "doubted: claimed");
        let new = HealthTable::new(1);
        new.inherit(&[Some(0)], &[true], &old);
        assert_eq!(new.path_mtu_claim(0), Some(900));
        assert!(new.take_path_mtu_claims(), "the prober is told to take it up");
    }

    #[test]
    fn a_reload_carries_a_path_mtu_by_name() {
        let old = HealthTable::new(2);
        assert!(old.lower_path_mtu(1, 1400, S));
        let new = HealthTable::new(3);
        // New tunnels c, b, a; old ones a, b.
        new.inherit(&[None, Some(1), Some(0)], &[false, false, false], &old);
        assert_eq!((new.path_mtu(0, 2 * S), new.path_mtu(1, 2 * S), new.path_mtu(2, 2 * S)), (None, Some(1400), None));
    }

    /// Each change from up to down is counted once (setting a state it has already is no
    /// change), and the count carries over a reload by name, however the tunnel is probed
    /// there and whatever router it reaches: a counter that started over at a reload would
    /// read as a reset. A down tunnel a reload has probed afresh is up without an answer:
    /// going down again, unanswered, is the same outage, not counted; once answered, its
    /// next down is another.
    #[test]
    fn downs_are_counted_once_each_and_carried_over_reloads() {
        let old = HealthTable::new(2);
        for up in [false, false, true, true, false, true, false] {
            old.set_up(0, up);
        }
        assert_eq!((old.downs(0), old.downs(1)), (3, 0));
        assert!(!old.is_up(0));
        let new = HealthTable::new(3);
        new.inherit(&[None, Some(0), Some(1)], &[true, true, false], &old);
        new.inherit_downs(&[None, Some(0), Some(1)], &old);
        assert_eq!((new.downs(0), new.downs(1), new.downs(2)), (0, 3, 0));
        let afresh = HealthTable::new(1);
        afresh.inherit(&[Some(1)], &[false], &new);
        afresh.inherit_downs(&[Some(1)], &new);
        assert!(afresh.is_up(0), "probed afresh: up");
        assert_eq!(afresh.downs(0), 3, "the count goes on");
        afresh.set_up(0, false);
        assert_eq!(afresh.downs(0), 3, "down before it was up: the same outage");
        // Moved to another router: its probe state is not carried (no tunnel of the same
        // router), its count and its outage are (the same name).
        let moved = HealthTable::new(1);
        moved.inherit(&[None], &[false], &afresh);
        moved.inherit_downs(&[Some(0)], &afresh);
        assert_eq!(moved.downs(0), 3, "the count goes on under its name");
        moved.set_up(0, false);
        assert_eq!(moved.downs(0), 3, "the new router does not answer either: the same outage");
        moved.set_up(0, true);
        moved.set_up(0, false);
        assert_eq!(moved.downs(0), 4, "up, then down: another");
        // Probed afresh while up and answered: down is another.
        let rekeyed = HealthTable::new(1);
        moved.set_up(0, true);
        moved.set_judged(0);
        rekeyed.inherit(&[Some(0)], &[false], &moved);
        rekeyed.inherit_downs(&[Some(0)], &moved);
        rekeyed.set_up(0, false);
        assert_eq!(rekeyed.downs(0), 5, "it was up before the reload");
        // Answered once afresh, it has come up: its down is another.
        let answered = HealthTable::new(1);
        answered.inherit(&[Some(0)], &[false], &rekeyed);
        answered.inherit_downs(&[Some(0)], &rekeyed);
        answered.set_judged(0);
        answered.set_up(0, false);
        assert_eq!(answered.downs(0), 6, "answered after the reload, then down");
    }
}
