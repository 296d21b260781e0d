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

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::TunnelId;

/// The first bytes of every probe's payload.
pub const PROBE_MAGIC: [u8; 8] = *b"transitd";
/// Payload: magic, tag (8), tunnel id (2), zero (2), sequence number (4), and the backbone
/// address of the server that sent it (4; zero outside a soft-unicast fleet), where the
/// server its reply reaches relays it. A path MTU probe's has its whole length (padding
/// included) where the zero is, and is padded with zeros.
pub const PROBE_PAYLOAD_LEN: usize = 28;

/// What a path MTU probe's tag key differs from a health probe's by ("path_mtu"): a tag
/// made for one kind never verifies as the other's, whatever bytes the two hashed, so no
/// reply to a small health probe can pass for an answer to a large one.
const PATH_MTU_PROBE_KEY: u64 = 0x7061_7468_5f6d_7475;

/// The backbone address a probe's payload names, if it is a probe's and names one (the
/// tag is not checked: only the server that sent it can).
pub fn probe_sender(payload: &[u8]) -> Option<std::net::Ipv4Addr> {
    let p = payload.get(..PROBE_PAYLOAD_LEN)?;
    let addr = std::net::Ipv4Addr::new(p[24], p[25], p[26], p[27]);
    (p[..8] == PROBE_MAGIC && !addr.is_unspecified()).then_some(addr)
}

/// The tunnel a probe's payload names (bytes 16..18, as the prober's `write_probe` lays it
/// out), if it is long enough to name one.
pub fn probe_tunnel(payload: &[u8]) -> Option<TunnelId> {
    payload.get(16..18).map(|b| TunnelId::from_be_bytes([b[0], b[1]]))
}

/// How long a path MTU learned from a Packet Too Big holds before the tunnel's configured
/// `mtu` is tried again: RFC 1191 §6.3's and RFC 8201 §4's ten minutes.
pub const PATH_MTU_HOLD_NS: u64 = 600_000_000_000;

/// A learned path MTU's expiry is kept in units of 2^30 ns (about a second), so that it and
/// the MTU fit one atomic word: times to the year 2116 as Unix nanoseconds (2^62 ns).
const TIME_SHIFT: u32 = 30;

/// The MTU a path MTU word holds a tunnel to at `now_ns`, if it still holds (0, none
/// learned, never does).
#[inline]
fn held(word: u64, now_ns: u64) -> Option<u32> {
    (word >> 32 > now_ns >> TIME_SHIFT).then_some(word as u32)
}

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

/// What a probe reply that verifies answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    /// Health probe `seq` of life `life`.
    Probe { life: u32, seq: u32 },
    /// Path MTU probe `seq`, come back whole.
    PathMtuProbe { seq: u32 },
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

    /// Marks tunnel `t` judged.
    pub fn set_judged(&self, t: TunnelId) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.judged.store(true, Ordering::Relaxed);
        }
    }

    /// Sets tunnel `t`'s state.
    pub fn set_up(&self, t: TunnelId, up: bool) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.up.store(up, Ordering::Relaxed);
        }
    }

    /// Whether any tunnel may hold a path MTU: false while none does.
    #[inline]
    pub fn any_path_mtu(&self) -> bool {
        self.any_path_mtu.load(Ordering::Relaxed)
    }

    /// The largest inner packet tunnel `t`'s underlay takes (its path MTU less the outer
    /// headers), as a Packet Too Big about it said, while that holds at `now_ns` (a frame's
    /// receive time); `None`: the configured `mtu` stands.
    #[inline]
    pub fn path_mtu(&self, t: TunnelId, now_ns: u64) -> Option<u32> {
        held(self.tunnels.get(usize::from(t))?.path_mtu.load(Ordering::Relaxed), now_ns)
    }

    /// Records that tunnel `t`'s underlay takes inner packets of at most `mtu` bytes, as a
    /// Packet Too Big received at `now_ns` says, for [`PATH_MTU_HOLD_NS`]: unless a lower
    /// one holds (a Packet Too Big never raises the estimate, RFC 1191 §6.3). The same or a
    /// lower one starts the hold again. Returns whether the MTU in force fell.
    ///
    /// A word is written only when it changes (the hold is kept in about-a-second units):
    /// the words share cache lines with the `up` flags every packet's route reads, and a
    /// flood of the same error must not bounce them between the workers' cores.
    pub fn lower_path_mtu(&self, t: TunnelId, mtu: u32, now_ns: u64) -> bool {
        let Some(h) = self.tunnels.get(usize::from(t)) else { return false };
        let until = now_ns.saturating_add(PATH_MTU_HOLD_NS) >> TIME_SHIFT;
        let new = until << 32 | u64::from(mtu);
        let mut lowered = false;
        // SeqCst here and in expire_path_mtus (rare, off the forwarding path): the word is
        // written before the flag, and a clearing that missed the word leaves the flag set.
        let _ = h.path_mtu.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
            let held = held(word, now_ns);
            lowered = held.is_none_or(|held| mtu < held);
            (word != new && held.is_none_or(|held| mtu <= held)).then_some(new)
        });
        // A worker that reads the flag before it is set takes the tunnel's `mtu` for a
        // packet or two, as before the error came.
        if !self.any_path_mtu.load(Ordering::SeqCst) {
            self.any_path_mtu.store(true, Ordering::SeqCst);
        }
        lowered
    }

    /// A Packet Too Big received at `now_ns` says tunnel `t`'s underlay takes inner packets
    /// of at most `mtu` bytes: lowered at once ([`HealthTable::lower_path_mtu`]), as a host
    /// lowers a route, unless an error about the tunnel was disproved within
    /// [`PATH_MTU_HOLD_NS`]: then it is only claimed (the lowest of the claims kept), and the
    /// prober believes it when a probe of the size in force goes unanswered (RFC 8899
    /// §4.6.2: a PTB not used directly). An attacker who forges errors without end so holds
    /// a tunnel lower for a probe's timeout once, not nine seconds in ten; a true error
    /// about a tunnel so doubted waits for that timeout. Returns whether the MTU in force fell.
    pub fn path_mtu_error(&self, t: TunnelId, mtu: u32, now_ns: u64) -> bool {
        let Some(doubt) = self.doubts.get(usize::from(t)) else { return false };
        if held(doubt.load(Ordering::Relaxed), now_ns).is_none() {
            return self.lower_path_mtu(t, mtu, now_ns);
        }
        // Written only when the claim falls: a flood of one error writes the word once.
        let claimed = doubt.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            let claimed = word as u32;
            (claimed == 0 || mtu < claimed).then_some((word & !u64::from(u32::MAX)) | u64::from(mtu))
        });
        if claimed.is_ok() {
            self.note_path_mtu_claims();
        }
        false
    }

    /// Marks that some tunnel holds a claim for the prober to take up. Release: the prober,
    /// taking the mark (Acquire), sees the claim written before it.
    pub fn note_path_mtu_claims(&self) {
        self.any_claim.store(true, Ordering::Release);
    }

    /// Whether some tunnel may hold a claim not taken up since the last call (the mark is
    /// taken: a claim the prober cannot take up yet is marked again).
    pub fn take_path_mtu_claims(&self) -> bool {
        self.any_claim.load(Ordering::Relaxed) && self.any_claim.swap(false, Ordering::Acquire)
    }

    /// An error about tunnel `t` was disproved at `now_ns`: the next ones for
    /// [`PATH_MTU_HOLD_NS`] are probed before they are believed.
    pub fn doubt_path_mtu_errors(&self, t: TunnelId, now_ns: u64) {
        if let Some(doubt) = self.doubts.get(usize::from(t)) {
            let until = now_ns.saturating_add(PATH_MTU_HOLD_NS) >> TIME_SHIFT;
            let _ = doubt
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| Some(until << 32 | (word & 0xffff_ffff)));
        }
    }

    /// The lowest MTU inside that doubted errors about tunnel `t` claimed and the prober has
    /// not yet settled ([`HealthTable::settle_path_mtu_claim`]).
    pub fn path_mtu_claim(&self, t: TunnelId) -> Option<u32> {
        let word = self.doubts.get(usize::from(t))?.load(Ordering::Relaxed);
        Some(word as u32).filter(|&claimed| claimed != 0)
    }

    /// Settles tunnel `t`'s claim at `now_ns`: `believed` (its probe went unanswered, or
    /// none could be sent), the path MTU is lowered to it; else it is forgotten. Returns
    /// whether the MTU in force fell.
    pub fn settle_path_mtu_claim(&self, t: TunnelId, believed: bool, now_ns: u64) -> bool {
        let Some(doubt) = self.doubts.get(usize::from(t)) else { return false };
        let claimed = doubt.fetch_and(!u64::from(u32::MAX), Ordering::Relaxed) as u32;
        believed && claimed != 0 && self.lower_path_mtu(t, claimed, now_ns)
    }

    /// A path MTU probe of `mtu` bytes inside was answered: the underlay carries that much
    /// (RFC 8899 §4.1), and the errors that took tunnel `t` lower were false. Raises the
    /// path MTU held at `now_ns` back to `mtu` for the rest of its hold, or (`None`: the
    /// probe was of the tunnel's own `mtu`) forgets it. Returns whether one held lower.
    pub fn raise_path_mtu(&self, t: TunnelId, mtu: Option<u32>, now_ns: u64) -> bool {
        let Some(h) = self.tunnels.get(usize::from(t)) else { return false };
        // SeqCst as in lower_path_mtu: an error a worker records meanwhile is either
        // overwritten here (the answer came after it) or written after, and stands.
        h.path_mtu
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                let held = held(word, now_ns)?;
                match mtu {
                    None => Some(0),
                    Some(mtu) => (held < mtu).then_some((word & !u64::from(u32::MAX)) | u64::from(mtu)),
                }
            })
            .is_ok()
    }

    /// Zeroes the path MTUs that no longer hold at `now_ns` and clears the flag when none
    /// holds, so that the forwarding path goes back to reading the flag alone. The prober
    /// calls it about once a second (the frames' clock). While any holds the flag is left
    /// set (a worker reading it clear would take a tunnel's `mtu` for its packet). To clear
    /// it, the words are read again after the clearing: a worker recording one meanwhile
    /// either sets the flag after its word, or its word is seen here and the flag set back.
    pub fn expire_path_mtus(&self, now_ns: u64) {
        if !self.any_path_mtu.load(Ordering::SeqCst) {
            return;
        }
        let any_held = |expire: bool| {
            let mut any = false;
            for h in self.tunnels.iter() {
                let word = h.path_mtu.load(Ordering::SeqCst);
                if held(word, now_ns).is_some() {
                    any = true;
                } else if word != 0 && expire {
                    let _ = h.path_mtu.compare_exchange(word, 0, Ordering::SeqCst, Ordering::SeqCst);
                }
            }
            any
        };
        if any_held(true) {
            return;
        }
        self.any_path_mtu.store(false, Ordering::SeqCst);
        if any_held(false) {
            self.any_path_mtu.store(true, Ordering::SeqCst);
        }
    }

    /// Every tunnel's path MTU word (MTU and hold), to be put back with
    /// [`HealthTable::set_path_mtus`]: a differential test runs two pipelines over the same
    /// frames from the same learned state.
    pub fn path_mtus(&self) -> Vec<u64> {
        self.tunnels.iter().map(|h| h.path_mtu.load(Ordering::SeqCst)).collect()
    }

    /// Puts back words [`HealthTable::path_mtus`] took (the flag set if any is).
    pub fn set_path_mtus(&self, words: &[u64]) {
        for (h, &word) in self.tunnels.iter().zip(words) {
            h.path_mtu.store(word, Ordering::SeqCst);
        }
        self.any_path_mtu.store(words.iter().any(|&w| w != 0), Ordering::SeqCst);
    }

    /// Forgets every learned path MTU (path MTU discovery was turned off), and the claims
    /// and doubts of errors: a claim the prober believed later would lower a tunnel that
    /// discovery no longer lowers.
    pub fn forget_path_mtus(&self) {
        for h in self.tunnels.iter() {
            h.path_mtu.store(0, Ordering::SeqCst);
        }
        self.any_path_mtu.store(false, Ordering::SeqCst);
        for doubt in self.doubts.iter() {
            doubt.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets what tunnel `t`'s underlay was found to take (its path or its headers
    /// changed), and what errors about the old path claimed or earned it (a doubt).
    pub fn forget_path_mtu(&self, t: TunnelId) {
        if let Some(h) = self.tunnels.get(usize::from(t)) {
            h.path_mtu.store(0, Ordering::Relaxed);
        }
        if let Some(doubt) = self.doubts.get(usize::from(t)) {
            doubt.store(0, Ordering::Relaxed);
        }
    }

    /// The key probe tags are made under.
    pub fn key(&self) -> [u64; 2] {
        [self.key[0].load(Ordering::Relaxed), self.key[1].load(Ordering::Relaxed)]
    }

    /// Sets the key (once, before the snapshot is used, or copied from the last one).
    pub fn set_key(&self, key: [u64; 2]) {
        self.key[0].store(key[0], Ordering::Relaxed);
        self.key[1].store(key[1], Ordering::Relaxed);
    }

    /// The tag of probe `seq` of tunnel `t`, named `name`: SipHash-2-4 under the key of the
    /// name's bytes, the tunnel's life unless it is 0, and the sequence number (all
    /// little-endian). By name, not id: ids move when a reload adds a tunnel in front, and a
    /// router must not hold tags that become another tunnel's. In the life: an earlier life
    /// of the tunnel used the same sequence numbers, and its tags must not answer this one's
    /// probes. Life 0 writes nothing (as tags were before lives: captures and their
    /// generators hold them); no other life meets it, since its last byte is 0 (a life is 32
    /// bits, written as 64 little-endian, as when lives were 64-bit), which no name holds.
    pub fn tag(&self, t: TunnelId, name: &str, seq: u32) -> u64 {
        self.tag_in(self.probe_life(usize::from(t)).life, name, seq, None)
    }

    /// The tag of path MTU probe `seq` of tunnel `t`, whose payload is `payload_len` bytes
    /// long: as [`HealthTable::tag`], under the key with [`PATH_MTU_PROBE_KEY`] in its first
    /// word, of the length too (little-endian), so that a reply verifies only with the
    /// length the probe was sent with.
    pub fn path_mtu_probe_tag(&self, t: TunnelId, name: &str, seq: u32, payload_len: u16) -> u64 {
        self.tag_in(self.probe_life(usize::from(t)).life, name, seq, Some(payload_len))
    }

    /// [`HealthTable::tag`] in life `life`, or [`HealthTable::path_mtu_probe_tag`] with a
    /// payload length.
    fn tag_in(&self, life: u32, name: &str, seq: u32, path_mtu_probe: Option<u16>) -> u64 {
        use std::hash::Hasher as _;
        let [k0, k1] = self.key();
        let k0 = if path_mtu_probe.is_some() { k0 ^ PATH_MTU_PROBE_KEY } else { k0 };
        let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
        h.write(name.as_bytes());
        if life != 0 {
            h.write(&u64::from(life).to_le_bytes());
        }
        h.write(&seq.to_le_bytes());
        if let Some(len) = path_mtu_probe {
            h.write(&len.to_le_bytes());
        }
        h.finish()
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

    /// Highest sequence number answered on tunnel `t`.
    pub fn replied(&self, t: TunnelId) -> u32 {
        self.probe_life(usize::from(t)).replied
    }

    /// Whether tunnel `t`'s probe `seq` has been answered (a reply to a later one answers
    /// it too; one to an earlier one does not).
    pub fn answered(&self, t: TunnelId, seq: u32) -> bool {
        self.replied(t) >= seq
    }

    /// Whether tunnel `t`'s path MTU probe `seq` has been answered (or a later one).
    pub fn path_mtu_probe_answered(&self, t: TunnelId, seq: u32) -> bool {
        self.path_mtu_probes_answered.get(usize::from(t)).is_some_and(|a| a.load(Ordering::Acquire) >= seq)
    }

    /// Records a probe reply that arrived through tunnel `t`, named `name`, if its payload
    /// is one of ours for that tunnel in its present life (its tag verifies). Returns
    /// whether it was. A path MTU probe's reply answers it only whole: the padding that made
    /// the probe the size under test came back too.
    pub fn record_reply(&self, t: TunnelId, name: &str, payload: &[u8]) -> bool {
        match self.verify_reply(t, name, payload) {
            Some(Reply::Probe { life, seq }) => {
                self.raise_replied(t, life, seq);
                self.note_answer(t);
                true
            }
            Some(Reply::PathMtuProbe { seq }) => {
                // Release: the prober, reading it (Acquire), judges the probe by it.
                if let Some(answered) = self.path_mtu_probes_answered.get(usize::from(t)) {
                    answered.fetch_max(seq, Ordering::Release);
                }
                true
            }
            None => false,
        }
    }

    /// What a reply through tunnel `t`, named `name`, answers, if its tag verifies in the
    /// tunnel's present life.
    fn verify_reply(&self, t: TunnelId, name: &str, payload: &[u8]) -> Option<Reply> {
        // What the tag covers, up to the sequence number: the sender's address after it is
        // for relaying (and absent from probes transitd sent before it had one).
        let p = payload.get(..24)?;
        let word = |r: std::ops::Range<usize>| p[r].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        let seq = word(20..24) as u32;
        if p[..8] != PROBE_MAGIC || word(16..18) != u64::from(t) {
            return None;
        }
        // Read once, with the answers: the tag is checked in the life the answer is raised in.
        let life = self.lives.get(usize::from(t)).map(|l| ProbeLife::unpack(l.load(Ordering::Relaxed)).life)?;
        let padded_len = word(18..20) as u16;
        if padded_len != 0 {
            let whole = usize::from(padded_len) <= payload.len();
            let ours = whole && word(8..16) == self.tag_in(life, name, seq, Some(padded_len));
            return ours.then_some(Reply::PathMtuProbe { seq });
        }
        (word(8..16) == self.tag_in(life, name, seq, None)).then_some(Reply::Probe { life, seq })
    }

    /// Raises tunnel `t`'s highest answered sequence number to `seq` while it is still in
    /// life `life`, the one the reply verified in: a wrap since began another, whose numbers
    /// a reply of the last life must not answer.
    fn raise_replied(&self, t: TunnelId, life: u32, seq: u32) {
        if let Some(l) = self.lives.get(usize::from(t)) {
            let _ = l.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let now = ProbeLife::unpack(word);
                (now.life == life && now.replied < seq).then_some(ProbeLife { life, replied: seq }.pack())
            });
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
    /// tunnel `was[t]` of `old` (the one of its name, [`super::Succession::tunnels`]), so
    /// that a reload neither revives a dead tunnel nor forgets probes in flight or a path
    /// MTU it learned. A tunnel that is no longer probed (`probed[t]` false) is up, as every
    /// unprobed tunnel. A tunnel that stays probed goes on with its old life; every other
    /// begins a new one.
    pub fn inherit(&self, was: &[Option<usize>], probed: &[bool], old: &HealthTable) {
        self.set_key(old.key());
        for (t, life) in self.lives.iter().enumerate() {
            let probed = probed.get(t).copied().unwrap_or(true);
            let old_id = was.get(t).copied().flatten();
            if !probed || old_id.is_none() {
                life.store(ProbeLife { life: new_life(), replied: 0 }.pack(), Ordering::Relaxed);
            }
            if let Some(o) = old_id {
                self.carry(t, old, o, probed, true);
            }
        }
    }

    /// Copies tunnel `o` of `old` into tunnel `t` (its state and life only if still
    /// `probed`: one no longer probed keeps no answers and its new life, since a prober
    /// that takes it up again starts its sequence numbers over, and old answers, or old
    /// replies arriving late, would answer its new probes); a reply a worker already
    /// recorded in this table in the same life stays. The path MTU only with `path_mtu`:
    /// the reload's copy takes it, which may then forget it (another path, discovery
    /// turned off); the prober's later move must not bring it back.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_path_mtu_holds_ten_minutes_falls_and_is_never_raised_by_an_error() {
        let h = HealthTable::new(2);
        assert_eq!(h.path_mtu(0, 5 * S), None);
        assert!(h.lower_path_mtu(0, 1400, 5 * S));
        assert_eq!((h.path_mtu(0, 6 * S), h.path_mtu(1, 6 * S)), (Some(1400), None), "one tunnel's");
        assert!(!h.lower_path_mtu(0, 1450, 7 * S), "an error never raises it");
        assert_eq!(h.path_mtu(0, 7 * S), Some(1400));
        assert!(h.lower_path_mtu(0, 1300, 8 * S));
        assert!(!h.lower_path_mtu(0, 1300, 100 * S), "the same again holds it longer");
        // The hold is kept to about a second (2^30 ns) either way.
        assert_eq!(h.path_mtu(0, 100 * S + PATH_MTU_HOLD_NS - 2 * S), Some(1300));
        assert_eq!(h.path_mtu(0, 100 * S + PATH_MTU_HOLD_NS + 2 * S), None, "ten minutes on");
        // Once it lapsed, any value is news, a larger one too.
        assert!(h.lower_path_mtu(0, 1450, 100 * S + PATH_MTU_HOLD_NS + 2 * S));
        h.forget_path_mtu(0);
        assert_eq!(h.path_mtu(0, 701 * S), None);
    }

    /// The forwarding path goes back to reading the flag alone once every held value
    /// lapsed, and not before.
    #[test]
    fn the_flag_clears_when_the_last_path_mtu_lapses() {
        let h = HealthTable::new(2);
        h.expire_path_mtus(S);
        assert!(!h.any_path_mtu());
        assert!(h.lower_path_mtu(0, 1400, S) && h.lower_path_mtu(1, 1300, 300 * S));
        h.expire_path_mtus(602 * S);
        assert!(h.any_path_mtu(), "tunnel 1's still holds");
        assert_eq!((h.path_mtu(0, 0), h.path_mtu(1, 602 * S)), (None, Some(1300)), "tunnel 0's is cleared");
        h.expire_path_mtus(902 * S);
        assert!(!h.any_path_mtu());
        assert!(h.lower_path_mtu(0, 1200, 903 * S) && h.any_path_mtu());
    }

    /// The payload of probe `seq` of tunnel `t` as `write_probe` lays it out (magic, tag,
    /// tunnel id, zero, sequence number, all big-endian), tagged as `h` tags it now.
    fn payload(h: &HealthTable, t: TunnelId, name: &str, seq: u32) -> Vec<u8> {
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

    /// The tag on the wire, as lives of 64 bits wrote it: SipHash-2-4 of the name, the life
    /// as 8 bytes little-endian unless it is 0, and the sequence number. The values are the
    /// generator's (pcaps/generated/tunnel_edge.py's `siphash24`, key (1, 2), name
    /// acme-gre, sequence number 7): `siphash24(1, 2, b"acme-gre" + pack("<Q", life) +
    /// pack("<I", 7))`, without the `<Q` for life 0.
    #[test]
    fn tags_are_written_as_before_lives_were_packed() {
        let h = HealthTable::new(1);
        h.set_key([1, 2]);
        assert_eq!(h.tag_in(0, "acme-gre", 7, None), 0xd883_b726_c3b9_f715);
        assert_eq!(h.tag_in(5, "acme-gre", 7, None), 0xefe3_1363_29ea_f002);
        assert_eq!(h.tag_in(u32::MAX, "acme-gre", 7, None), 0xf51f_9c3d_c946_68d2);
        assert_eq!(h.tag(0, "acme-gre", 7), 0xd883_b726_c3b9_f715, "a first table's tunnel is in life 0");
    }

    /// A worker verifies a late reply to #4294967295 in the life before a wrap, and the
    /// prober begins the next life before the worker records it: the answer is not raised.
    /// With the life and the answer apart, the worker's write came after the prober's
    /// zeroing, and every number of the new life was answered.
    #[test]
    fn a_reply_verified_just_before_a_wrap_answers_nothing_after_it() {
        let h = HealthTable::new(1);
        h.set_key([1, 2]);
        let late = payload(&h, 0, "probed", u32::MAX);
        let Some(Reply::Probe { life, seq }) = h.verify_reply(0, "probed", &late) else { panic!("a probe reply") };
        h.restart(0); // between the worker's read of the life and its write
        h.raise_replied(0, life, seq);
        assert_eq!(h.replied(0), 0);
        assert!(!h.answered(0, 1));
        assert!(!h.record_reply(0, "probed", &late), "the last life's tag verifies no more");
        assert!(h.record_reply(0, "probed", &payload(&h, 0, "probed", 1)), "the new life's");
        assert!(h.answered(0, 1) && !h.answered(0, 2));
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

    /// An answered path MTU probe raises what errors set, for the rest of their hold (not a
    /// hold of its own), never lowers what holds, and forgets it when it was of the tunnel's
    /// own `mtu` (`None`).
    #[test]
    fn a_path_mtu_probe_answer_raises_the_held_mtu_for_the_rest_of_its_hold() {
        let h = HealthTable::new(1);
        assert!(!h.raise_path_mtu(0, Some(1400), S), "nothing held");
        assert!(h.lower_path_mtu(0, 528, S));
        assert!(!h.raise_path_mtu(0, Some(500), 2 * S), "never lower");
        let hold = h.path_mtus()[0] >> 32;
        assert!(h.raise_path_mtu(0, Some(1400), 300 * S));
        assert_eq!((h.path_mtu(0, 300 * S), h.path_mtus()[0] >> 32), (Some(1400), hold));
        assert!(!h.lower_path_mtu(0, 1450, 301 * S), "an error still never raises it");
        assert!(h.raise_path_mtu(0, None, 302 * S));
        assert_eq!(h.path_mtu(0, 302 * S), None);
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

    /// A path or path MTU discovery a reload changed forgets the claims and doubts with the
    /// path MTUs: nothing is left for the prober to believe, and an error is news again.
    #[test]
    fn forgetting_path_mtus_forgets_claims_and_doubts() {
        let h = HealthTable::new(2);
        for t in 0..2 {
            h.doubt_path_mtu_errors(t, S);
            assert!(!h.path_mtu_error(t, 900, 2 * S), "doubted: claimed");
        }
        h.forget_path_mtu(0);
        assert_eq!((h.path_mtu_claim(0), h.path_mtu_claim(1)), (None, Some(900)));
        assert!(h.path_mtu_error(0, 800, 3 * S), "the new path's first error: lowered at once");
        h.forget_path_mtus();
        assert_eq!(h.path_mtu_claim(1), None);
        assert!(!h.settle_path_mtu_claim(1, true, 4 * S), "nothing left to believe");
        assert_eq!(h.path_mtu(1, 4 * S), None);
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
}
