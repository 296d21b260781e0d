//! Flow tracking from one direction: the TCP connections the Internet opens toward customers,
//! inferred from the client's packets alone (the customer answers the Internet directly, so
//! the edge never sees the other half).
//!
//! A worker's [`FlowTable`] is fixed at start-up: 4-way set-associative, like the DoS
//! buckets. A new connection takes a free or expired way of its set, or else the one least
//! recently seen, established connections last: a flood of random 4-tuples evicts, it never
//! grows memory. Entries hold a
//! 61-bit hash of the 4-tuple (never the tuple) with the state and how the connection opened
//! in its low bits, when they were last seen and the next sequence number: 16 bytes.
//!
//! From the client side a connection goes
//!
//! ```text
//!   SYN ─► embryonic ─ACK─► established ─FIN─► closing
//!                └──────────────RST──────────────────────► gone
//! ```
//!
//! and each state ages out on its own timeout. A connection a SYN-ACK opened (a customer's
//! own, to a server on the Internet) ends its handshake with the customer's ACK, which leaves
//! directly, and its server says nothing more until the customer's first request, however
//! late (a connection opened ahead of use): waiting for it is waiting on an idle connection,
//! on the idle timeout (it makes room as early as any embryonic entry).
//!
//! Each entry keeps the client's next sequence
//! number as the edge saw it: the end of its stream, which a segment takes on when it starts
//! at most [`GAP_BYTES`] beyond it. A gap is what the edge never saw of the stream: a segment
//! lost before it (the client resends only that one once its receiver has acknowledged the
//! rest selectively, and it is old by then) or overtaken by the next. Read strictly in order,
//! one such segment would leave the number behind the stream for good: the connection's FIN
//! and RST would never count again, and it would live until it idled out. A RST or FIN
//! counts only at exactly that number, as the client's own stack sends them (RFC 9293
//! §3.10.7; RFC 5961 §3.2 asks the same of endpoints for a RST). Anything else is ignored
//! (a FIN that is itself the first segment past a gap among them: the connection idles out).
//! A blind RST or FIN must guess 32 bits; to set the number to a value of its own and send the RST
//! there, a blind segment must land within a gap and its own length of the number: with
//! 1,460 bytes, one chance in 445,000 per guess (one in 2.9 million when only a segment
//! straddling the number moved it). A SYN moves the number no further than any segment may
//! (in a new connection, its own number is its to choose): a blind SYN changes nothing in
//! an established connection, and one naming a number beyond a closing or embryonic
//! connection's reopens or renews it without setting the number a RST must carry.
//!
//! A packet that fits no tracked connection (an
//! ACK, data, FIN or RST out of nowhere) is *out of state*: what spoofed ACK floods are made
//! of. Connections that existed before tracking began would look the same, so for a grace
//! period after tracking began, out-of-state ACKs and FINs are taken up as established
//! connections instead (`picked_up`). When it began is the caller's to keep: the worker
//! keeps it per customer, from the customer's first packet tracked and again after a
//! reload that changed what its rules cover.

use classifier::limit::mix;

pub use crate::snapshot::FlowTimeouts;

/// Ways per set.
const WAYS: usize = 4;

/// Slots of a table asked for `entries` ([`FlowTable::new`], [`Authenticated::new`]): a
/// power of two, a set of ways at least; none for none. Two sizes asked that round alike make
/// the same table, which a reload keeps.
pub fn slots_for(entries: usize) -> usize {
    if entries == 0 { 0 } else { entries.max(WAYS).next_power_of_two() }
}
/// Entries keep time in units of 2^20 ns (about 1 ms), as 32 bits: 49 days before the
/// clock wraps, and ages are computed wrapping, so it only matters for an entry idle that
/// long (which has timed out anyway).
const TICK_SHIFT: u32 = 20;

/// What a tracked connection has shown (the low two bits of its slot's tag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// A free slot.
    #[default]
    Free = 0,
    /// SYN (or SYN-ACK) seen, the handshake's ACK not yet.
    Embryonic = 1,
    /// The handshake completed (or the connection was picked up in the grace period).
    Established = 2,
    /// The client sent FIN (taking its stream on).
    Closing = 3,
}

const STATE_BITS: u64 = 3;
/// Set in a tag whose connection a SYN-ACK opened: embryonic, it waits on the idle timeout.
const OPENED_BY_SYN_ACK: u64 = 4;
/// The bits of a tag that are not the flow's hash.
const TAG_BITS: u64 = STATE_BITS | OPENED_BY_SYN_ACK;

#[derive(Clone, Copy, Debug, Default, bytemuck::Zeroable)]
struct Slot {
    /// The flow's hash with its low three bits replaced by the state (0: free) and
    /// [`OPENED_BY_SYN_ACK`].
    tag: u64,
    seen: u32,
    /// The client's next sequence number: the end of the stream seen (gaps of up to
    /// [`GAP_BYTES`] taken over).
    next: u32,
}

impl Slot {
    fn new(flow: u64, state: State, seen: u32, next: u32) -> Slot {
        Slot { tag: flow & !TAG_BITS | state as u64, seen, next }
    }

    /// The embryonic connection the SYN or SYN-ACK `seg` opens.
    fn opened_by(flow: u64, seg: &Segment, seen: u32) -> Slot {
        let mut slot = Slot::new(flow, State::Embryonic, seen, seg.end());
        if seg.flags & ACK != 0 {
            slot.tag |= OPENED_BY_SYN_ACK;
        }
        slot
    }

    fn state(&self) -> State {
        match self.tag & STATE_BITS {
            0 => State::Free,
            1 => State::Embryonic,
            2 => State::Established,
            _ => State::Closing,
        }
    }

    fn set_state(&mut self, state: State) {
        self.tag = self.tag & !STATE_BITS | state as u64;
    }

    fn is(&self, flow: u64) -> bool {
        self.tag & !TAG_BITS == flow & !TAG_BITS && self.state() != State::Free
    }

    /// Moves `seen` on to `now`, never back: a replayed capture's packets may be out of order.
    #[inline]
    fn mark_seen(&mut self, now: u32) {
        self.seen = if age(self.seen, now) > 0 { now } else { self.seen };
    }

    /// Takes in `seg` of this tracked connection, seen at `now`: any segment but a SYN (without
    /// RST), which `FlowTable::observe` opens a connection with.
    #[inline]
    fn track(&mut self, seg: &Segment, now: u32) {
        self.mark_seen(now);
        // A RST or FIN counts only at exactly the next sequence number, where the
        // client's stack sends it (the stream before it taken on past any gap the edge
        // missed, `advance`): a RST forgets the connection at once, a FIN moves it to the
        // closing timeout. Elsewhere either is blind, or old, and changes nothing: a FIN
        // counted anywhere a segment may take the stream on would end an idle connection
        // for one blind guess in half a million.
        let in_order = seg.seq == self.next;
        if seg.flags & RST != 0 {
            if in_order {
                *self = Slot::default();
            }
            return;
        }
        self.advance(seg);
        if seg.flags & FIN != 0 {
            if in_order {
                self.set_state(State::Closing);
            }
        } else if seg.flags & ACK != 0 && self.state() == State::Embryonic {
            self.set_state(State::Established);
        }
    }

    /// Takes in SYN (or SYN-ACK) `seg` over this tracked connection, seen at `now`. The SYN
    /// names its own sequence number, blind or not, so it moves `next` only as any segment
    /// may (`advance`): taken as the start of a new stream, a blind SYN and a RST just after
    /// it ended a closing connection (SYNs at two numbers 2^31 apart: one is beyond), or an
    /// embryonic one, at the first try; the endpoints keep it (RFC 5961 §4: a SYN in a
    /// synchronized state resets nothing, a RST ends only at the next number). So:
    /// - established, it stays as it is: nor is its life shortened to the embryonic timeout;
    /// - closing, a SYN beyond the old stream (a new connection on the 4-tuple, RFC 1122
    ///   §4.2.2.13, as a TIME-WAIT accepts it) makes it embryonic again, so that the new
    ///   handshake's ACK establishes it; its FIN and RST count once its stream reaches the
    ///   number, else it idles out;
    /// - embryonic, the SYN again (a retransmission, or the SYN-ACK of a simultaneous open,
    ///   with the same sequence number) may mark it opened by a SYN-ACK, never unmark it:
    ///   one blind SYN put a customer's own connection, waiting on its first request, on the
    ///   embryonic timeout.
    fn take_syn(&mut self, seg: &Segment, now: u32) {
        self.mark_seen(now);
        let by_syn_ack = if seg.flags & ACK != 0 { OPENED_BY_SYN_ACK } else { 0 };
        match self.state() {
            State::Free | State::Established => return,
            // At or below the old stream's end: old, or blind; it stays closing.
            State::Closing if seg.seq.wrapping_sub(self.next) as i32 <= 0 => return,
            State::Closing => {
                self.tag = self.tag & !OPENED_BY_SYN_ACK | by_syn_ack;
                self.set_state(State::Embryonic);
            }
            State::Embryonic if seg.end() == self.next => self.tag |= by_syn_ack,
            State::Embryonic => {}
        }
        self.advance(seg);
    }

    /// Moves `next` to the end of `seg` when `seg` takes the stream on: it starts at most
    /// [`GAP_BYTES`] beyond `next` (the segments in between missed) and ends after it
    /// (sequence space wraps). A segment further ahead (a blind guess, as like as not) moves
    /// nothing, nor does an old one (a retransmission).
    fn advance(&mut self, seg: &Segment) {
        let end = seg.end();
        if seg.seq.wrapping_sub(self.next) as i32 <= GAP_BYTES as i32 && (end.wrapping_sub(self.next) as i32) > 0 {
            self.next = end;
        }
    }
}

/// How far beyond the next sequence number a segment may start and still take the stream on:
/// the segments between were lost before the edge (resent later, and old by then) or are
/// still on their way. Five full-size segments of 1,460 bytes (Internet paths mostly lose or
/// reorder one or two at a time). Wider, a blind segment is likelier to land in it (one
/// chance in 2^32 / (this + its length)) and set the number a RST is checked against.
pub const GAP_BYTES: u32 = 8192;

/// What tracking reads of one TCP segment from the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// TCP flags.
    pub flags: u32,
    /// Sequence number.
    pub seq: u32,
    /// Payload bytes.
    pub len: u32,
}

impl Segment {
    /// The sequence number after it: SYN and FIN take one each (RFC 9293 §3.4).
    fn end(&self) -> u32 {
        let control = u32::from(self.flags & SYN != 0) + u32::from(self.flags & FIN != 0);
        self.seq.wrapping_add(self.len).wrapping_add(control)
    }
}

/// What tracking made of one TCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEvent {
    /// A SYN or SYN-ACK: a connection begins (or begins again).
    New,
    /// A SYN above the rule's threshold, from a source not yet authenticated: answered with
    /// a challenge (mitigate), or only counted (monitor: it passes as `new` would).
    Challenged,
    /// Such a SYN that no challenge could answer (the challenge budget spent, or headers a
    /// challenge cannot reverse): dropped as `tcp_syn_flood` (mitigate only).
    SynFlood,
    /// The RST a client's stack sends in answer to a challenge, carrying its cookie: the
    /// source is authenticated for a while, and its next SYN passes.
    ChallengePassed,
    /// A packet of a tracked connection.
    Tracked,
    /// Out of state, but in the grace period: taken up as an established connection.
    PickedUp,
    /// An ACK (with or without data) of no tracked connection.
    OutOfStateAck,
    /// A FIN of no tracked connection.
    OutOfStateFin,
    /// A RST of no tracked connection.
    OutOfStateRst,
}

impl FlowEvent {
    /// Every event, in counter order.
    pub const ALL: [FlowEvent; 9] = [
        FlowEvent::New,
        FlowEvent::Challenged,
        FlowEvent::SynFlood,
        FlowEvent::ChallengePassed,
        FlowEvent::Tracked,
        FlowEvent::PickedUp,
        FlowEvent::OutOfStateAck,
        FlowEvent::OutOfStateFin,
        FlowEvent::OutOfStateRst,
    ];

    /// The event's name in counters, metrics and `match` output.
    pub const fn name(self) -> &'static str {
        match self {
            FlowEvent::New => "new",
            FlowEvent::Challenged => "challenged",
            FlowEvent::SynFlood => "syn_flood",
            FlowEvent::ChallengePassed => "challenge_passed",
            FlowEvent::Tracked => "tracked",
            FlowEvent::PickedUp => "picked_up",
            FlowEvent::OutOfStateAck => "out_of_state_ack",
            FlowEvent::OutOfStateFin => "out_of_state_fin",
            FlowEvent::OutOfStateRst => "out_of_state_rst",
        }
    }

    /// The event's index in [`FlowEvent::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True for packets that belong to no connection.
    pub const fn out_of_state(self) -> bool {
        matches!(self, FlowEvent::OutOfStateAck | FlowEvent::OutOfStateFin | FlowEvent::OutOfStateRst)
    }
}

/// TCP flag bits.
const FIN: u32 = 0x01;
const SYN: u32 = 0x02;
const RST: u32 = 0x04;
const ACK: u32 = 0x10;

/// One worker's tracked connections, in fixed memory.
#[derive(Clone, Debug)]
pub struct FlowTable {
    slots: Box<[Slot]>,
    /// Established connections evicted while live to make room, since last taken
    /// ([`FlowTable::take_evicted`]): a table too small for the connections it must hold.
    evicted: u64,
}

impl FlowTable {
    /// A table of at least `entries` connections (a power of two, at least one set); `0`
    /// makes an empty table for configurations that track nothing.
    pub fn new(entries: usize) -> FlowTable {
        let size = slots_for(entries);
        // Zeroed by the allocator (see `Limits::rebind`): pages are faulted in as
        // connections arrive, not written by the worker following a reload.
        FlowTable { slots: bytemuck::zeroed_slice_box(size), evicted: 0 }
    }

    /// Established connections evicted while live since the last call (counted once).
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Connections the table holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of connection state (fixed from the start).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
    }

    /// Tracked connections (not yet timed out as of `now_ns`).
    pub fn live(&self, now_ns: u64, t: &FlowTimeouts) -> usize {
        let now = tick(now_ns);
        self.slots.iter().filter(|s| s.state() != State::Free && !expired(s, now, t)).count()
    }

    /// Tracks one TCP segment `seg` of the flow whose 4-tuple hashes to `flow`, arriving at
    /// `now_ns`; `tracked_since` is when tracking of its kind began (set here when `None`),
    /// which the grace period runs from.
    pub fn observe(
        &mut self,
        flow: u64,
        seg: Segment,
        now_ns: u64,
        t: &FlowTimeouts,
        tracked_since: &mut Option<u64>,
    ) -> FlowEvent {
        if self.slots.is_empty() {
            return FlowEvent::Tracked;
        }
        let started = *tracked_since.get_or_insert(now_ns);
        let in_grace = now_ns.saturating_sub(started) < t.grace_ns;
        let now = tick(now_ns);
        let flags = seg.flags;
        let set = (mix(flow) as usize) & (self.slots.len() - 1) & !(WAYS - 1);
        let ways = &mut self.slots[set..set + WAYS];
        let found = ways.iter().position(|s| s.is(flow) && !expired(s, now, t));

        // A SYN with RST is a RST: a stack checks RST first (RFC 9293 §3.10.7.4, RFC 5961 §3;
        // a listener discards it), so it opens no connection here either, nor takes a slot.
        if flags & SYN != 0 && flags & RST == 0 {
            // A connection begins: SYN from a client, or SYN-ACK to a customer's own SYN. Over
            // a tracked one, the SYN is taken in as `Slot::take_syn` says.
            match found {
                Some(i) => ways[i].take_syn(&seg, now),
                None => {
                    let i = room(ways, now, t, &mut self.evicted);
                    ways[i] = Slot::opened_by(flow, &seg, now);
                }
            }
            return FlowEvent::New;
        }
        if let Some(i) = found {
            ways[i].track(&seg, now);
            return FlowEvent::Tracked;
        }
        let event = if flags & RST != 0 {
            FlowEvent::OutOfStateRst
        } else if flags & FIN != 0 {
            FlowEvent::OutOfStateFin
        } else {
            FlowEvent::OutOfStateAck
        };
        if in_grace && event != FlowEvent::OutOfStateRst {
            let state = if event == FlowEvent::OutOfStateFin { State::Closing } else { State::Established };
            let i = room(ways, now, t, &mut self.evicted);
            ways[i] = Slot::new(flow, state, now, seg.end());
            return FlowEvent::PickedUp;
        }
        event
    }
}

/// Sources that answered a challenge, each for a while: fixed memory, 4-way
/// set-associative, the entry closest to expiry making room.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// `(tag, expiry tick)`; tag 0 is free.
    slots: Box<[(u64, u32)]>,
}

impl Authenticated {
    /// Room for at least `entries` sources (0: none kept).
    pub fn new(entries: usize) -> Authenticated {
        let size = slots_for(entries);
        Authenticated { slots: bytemuck::zeroed_slice_box(size) }
    }

    /// Authenticates `source` (a hash of the address) until `until_ns`.
    pub fn insert(&mut self, source: u64, now_ns: u64, until_ns: u64) {
        if self.slots.is_empty() {
            return;
        }
        let (tag, now) = (source | 1, tick(now_ns));
        let set = (mix(source) as usize) & (self.slots.len() - 1) & !(WAYS - 1);
        let ways = &mut self.slots[set..set + WAYS];
        let i = ways.iter().position(|w| w.0 == tag).unwrap_or_else(|| {
            // Free or expired first, else the soonest to expire (time left read as
            // `contains` reads it: beyond the furthest expiry, long past).
            let left = |w: &(u64, u32)| match w.1.wrapping_sub(now) {
                t if w.0 != 0 && (1..=MAX_AHEAD_TICKS).contains(&t) => t,
                _ => 0,
            };
            (0..WAYS).min_by_key(|&i| left(&ways[i])).unwrap_or(0)
        });
        ways[i] = (tag, tick(until_ns));
    }

    /// True while `source` is authenticated.
    pub fn contains(&self, source: u64, now_ns: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let (tag, now) = (source | 1, tick(now_ns));
        let set = (mix(source) as usize) & (self.slots.len() - 1) & !(WAYS - 1);
        self.slots[set..set + WAYS].iter().any(|w| w.0 == tag && (1..=MAX_AHEAD_TICKS).contains(&w.1.wrapping_sub(now)))
    }
}

/// The way a new entry takes: free, timed out, or else the least recently seen, an
/// established connection last (as conntrack's early drop spares assured connections): a
/// flood of SYNs evicts its own embryonic entries before it evicts a customer's connections.
/// A live established connection it ends is counted in `evicted`.
#[inline]
fn room(ways: &[Slot], now: u32, t: &FlowTimeouts, evicted: &mut u64) -> usize {
    if let Some(i) = ways.iter().position(|s| s.state() == State::Free || expired(s, now, t)) {
        return i;
    }
    let i =
        (0..ways.len()).max_by_key(|&i| (ways[i].state() != State::Established, age(ways[i].seen, now))).unwrap_or(0);
    *evicted += u64::from(evicts_established(&ways[i], now, t));
    i
}

/// True when taking `slot` ends a live established connection.
fn evicts_established(slot: &Slot, now: u32, t: &FlowTimeouts) -> bool {
    slot.state() == State::Established && !expired(slot, now, t)
}

/// Ticks from `seen` to `now`; 0 when `now` is up to [`REORDER_TICKS`] earlier (packets
/// out of order in a capture replayed by its own timestamps: once, a packet a millisecond
/// earlier than the last made its connection look 52 days old, expired and out of state).
/// Ticks wrap every 2^32 (52 days): an entry idle that long may look young again, but one
/// idle for anything between its timeout (a day at most) and 52 days less a minute is old.
pub(super) fn age(seen: u32, now: u32) -> u32 {
    let ticks = now.wrapping_sub(seen);
    if ticks > u32::MAX - REORDER_TICKS { 0 } else { ticks }
}

/// How much earlier than the last a packet may come and still be "now" (about a minute).
const REORDER_TICKS: u32 = 1 << 16;

/// The furthest ahead an expiry may lie, in ticks: the longest configurable time
/// (`authenticated_for`) and a tick more. Further ahead is long past, wrapped.
const MAX_AHEAD_TICKS: u32 = ((crate::limits::MAX_SECONDS_FLAG * 1_000_000_000) >> TICK_SHIFT) as u32 + 1;

pub(super) fn tick(ns: u64) -> u32 {
    (ns >> TICK_SHIFT) as u32
}

fn expired(s: &Slot, now: u32, t: &FlowTimeouts) -> bool {
    let timeout = match s.state() {
        State::Free => return true,
        // The customer's ACK that ends the handshake never passes here (module doc).
        State::Embryonic if s.tag & OPENED_BY_SYN_ACK != 0 => t.established_ns,
        State::Embryonic => t.embryonic_ns,
        State::Established => t.established_ns,
        State::Closing => t.closing_ns,
    };
    u64::from(age(s.seen, now)) > (timeout >> TICK_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: FlowTimeouts = FlowTimeouts {
        embryonic_ns: 10_000_000_000,
        established_ns: 300_000_000_000,
        closing_ns: 10_000_000_000,
        grace_ns: 0,
    };
    const S: u64 = 1_000_000_000;

    /// A segment of no payload at sequence number 0.
    fn seg(flags: u32) -> Segment {
        Segment { flags, seq: 0, len: 0 }
    }

    #[test]
    fn a_packet_earlier_than_the_last_is_still_of_its_connection() {
        // A capture replayed by its timestamps: the third packet 2 ms before the second.
        let mut t = FlowTable::new(1024);
        let ms = 1_000_000;
        assert_eq!(t.observe(7, seg(SYN), 10 * S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(7, seg(ACK), 10 * S + 5 * ms, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(7, seg(ACK), 10 * S + 3 * ms, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(7, seg(ACK), 10 * S + 6 * ms, &T, &mut None), FlowEvent::Tracked);
    }

    #[test]
    fn a_handshake_is_tracked_and_strangers_are_out_of_state() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq| Segment { flags, seq, len: 0 };
        assert_eq!(t.observe(7, seg(ACK), S, &T, &mut None), FlowEvent::OutOfStateAck);
        assert_eq!(t.observe(7, at(SYN, 0), 2 * S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(7, at(ACK, 1), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(7, at(ACK | 0x08, 1), 3 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(8, seg(FIN | ACK), 3 * S, &T, &mut None), FlowEvent::OutOfStateFin);
        assert_eq!(t.observe(8, seg(RST), 3 * S, &T, &mut None), FlowEvent::OutOfStateRst);
        assert_eq!(t.observe(7, at(FIN | ACK, 1), 4 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(7, seg(ACK), 5 * S, &T, &mut None), FlowEvent::Tracked);
        // Closing times out after 10 s without a packet.
        assert_eq!(t.observe(7, seg(ACK), 16 * S, &T, &mut None), FlowEvent::OutOfStateAck);
        // A RST at the client's next sequence number ends a connection at once.
        t.observe(9, Segment { flags: SYN, seq: 1000, len: 0 }, 20 * S, &T, &mut None);
        t.observe(9, Segment { flags: ACK, seq: 1001, len: 500 }, 20 * S, &T, &mut None);
        assert_eq!(t.observe(9, Segment { flags: RST, seq: 1501, len: 0 }, 21 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(9, seg(ACK), 21 * S, &T, &mut None), FlowEvent::OutOfStateAck);
    }

    /// A SYN that carries RST is a RST, as a stack reads it: out of state where no connection
    /// is (no slot taken), and in one it ends it only in order, as any RST.
    #[test]
    fn a_syn_with_rst_is_a_rst_and_opens_nothing() {
        let mut t = FlowTable::new(WAYS);
        let at = |flags, seq| Segment { flags, seq, len: 0 };
        for flow in 0..2 * WAYS as u64 {
            assert_eq!(t.observe(flow << 8, at(SYN | RST, 7), S, &T, &mut None), FlowEvent::OutOfStateRst);
        }
        assert_eq!(t.observe(1, at(SYN, 100), S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(1, at(ACK, 101), S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(1, at(SYN | RST, 5), S, &T, &mut None), FlowEvent::Tracked, "blind: nothing changes");
        assert_eq!(t.observe(1, at(ACK, 101), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(1, at(SYN | RST, 101), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(1, at(ACK, 101), 2 * S, &T, &mut None), FlowEvent::OutOfStateAck, "ended in order");
    }

    /// A RST anywhere but the next sequence number, or a FIN that does not take the stream
    /// on (old, or beyond a gap: blind) changes nothing: the connection lives until it idles
    /// out. A blind SYN does not make an established connection embryonic.
    #[test]
    fn only_an_in_order_rst_or_fin_ends_or_closes() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq, len| Segment { flags, seq, len };
        t.observe(9, at(SYN, u32::MAX - 10, 0), S, &T, &mut None);
        t.observe(9, at(ACK, u32::MAX - 9, 100), S, &T, &mut None); // wraps: next is 90
        let beyond = 90 + GAP_BYTES + 1;
        for blind in [0, 89, beyond, 1 << 31] {
            assert_eq!(t.observe(9, at(RST, blind, 0), 2 * S, &T, &mut None), FlowEvent::Tracked);
            assert_eq!(t.observe(9, at(FIN | ACK, blind, 0), 2 * S, &T, &mut None), FlowEvent::Tracked);
        }
        // A RST just ahead counts no more than one further off: only a FIN is taken past a gap.
        assert_eq!(t.observe(9, at(RST, 91, 0), 2 * S, &T, &mut None), FlowEvent::Tracked);
        // A segment further ahead of the stream than a gap (as a blind guess) does not move it
        // either.
        t.observe(9, at(ACK, beyond, 10), 2 * S, &T, &mut None);
        assert_eq!(t.observe(9, at(ACK, 90, 0), 40 * S, &T, &mut None), FlowEvent::Tracked, "established, not closing");
        // A blind SYN changes nothing: not the state, not the number a RST must carry.
        t.observe(9, at(SYN, 5, 0), 41 * S, &T, &mut None);
        assert_eq!(t.observe(9, at(RST, 6, 0), 41 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(
            t.observe(9, at(ACK, 90, 0), 100 * S, &T, &mut None),
            FlowEvent::Tracked,
            "neither embryonic nor ended"
        );
        // In order, a FIN closes and a RST ends.
        assert_eq!(t.observe(9, at(FIN | ACK, 90, 0), 100 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(9, at(ACK, 91, 0), 115 * S, &T, &mut None), FlowEvent::OutOfStateAck, "closing timed out");
        // An old segment (a retransmission) does not move the next sequence number back.
        t.observe(4, at(SYN, 100, 0), S, &T, &mut None);
        t.observe(4, at(ACK, 101, 1000), S, &T, &mut None);
        t.observe(4, at(ACK, 101, 10), S, &T, &mut None);
        assert_eq!(t.observe(4, at(RST | ACK, 1101, 0), S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(4, seg(ACK), S, &T, &mut None), FlowEvent::OutOfStateAck, "ended at 1101");
    }

    /// A segment the edge never saw (lost before it, and only it resent later, as a client
    /// does once its receiver has acknowledged the rest selectively; or overtaken by the
    /// next) leaves a gap: the segments beyond it take the stream on, and the client's FIN
    /// and RST at its end count. They were ignored for good, the next sequence number stuck
    /// at the gap, and the connection lived until it idled out.
    #[test]
    fn a_segment_the_edge_missed_does_not_keep_a_fin_or_rst_from_counting() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq, len| Segment { flags, seq, len };
        // Lost before the edge: [101, 1101) is not seen until it is resent, after the rest.
        t.observe(1 << 8, at(SYN, 100, 0), S, &T, &mut None);
        t.observe(1 << 8, at(ACK, 101, 0), S, &T, &mut None);
        t.observe(1 << 8, at(ACK, 1101, 1000), S, &T, &mut None);
        t.observe(1 << 8, at(ACK, 2101, 1000), S, &T, &mut None);
        t.observe(1 << 8, at(ACK, 101, 1000), S, &T, &mut None); // the resent segment: old now
        assert_eq!(t.observe(1 << 8, at(FIN | ACK, 3101, 0), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(
            t.observe(1 << 8, at(ACK, 3102, 0), 13 * S, &T, &mut None),
            FlowEvent::OutOfStateAck,
            "closing, and timed out as such"
        );
        // Overtaken: [101, 1101) comes after [1101, 2101); the RST at 2101 ends it.
        t.observe(2 << 8, at(SYN, 100, 0), S, &T, &mut None);
        t.observe(2 << 8, at(ACK, 1101, 1000), S, &T, &mut None);
        t.observe(2 << 8, at(ACK, 101, 1000), S, &T, &mut None);
        assert_eq!(t.observe(2 << 8, at(RST | ACK, 2101, 0), S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(2 << 8, at(ACK, 2101, 0), S, &T, &mut None), FlowEvent::OutOfStateAck, "ended");
        // A FIN past a gap (the last data lost before the edge) closes as well.
        t.observe(3 << 8, at(SYN, 100, 0), S, &T, &mut None);
        t.observe(3 << 8, at(ACK, 101, 0), S, &T, &mut None);
        t.observe(3 << 8, at(FIN | ACK, 1101, 0), 2 * S, &T, &mut None);
        t.observe(3 << 8, at(ACK, 101, 1000), 2 * S, &T, &mut None);
        assert_eq!(
            t.observe(3 << 8, at(ACK, 1102, 0), 13 * S, &T, &mut None),
            FlowEvent::Tracked,
            "a FIN past a gap is not at the next number: not taken for the close (blind FINs must not be)"
        );
        // A gap wider than GAP_BYTES is not taken over: the FIN beyond it is ignored.
        t.observe(4 << 8, at(SYN, 100, 0), S, &T, &mut None);
        t.observe(4 << 8, at(ACK, 101, 0), S, &T, &mut None);
        t.observe(4 << 8, at(FIN | ACK, 101 + GAP_BYTES + 1, 0), 2 * S, &T, &mut None);
        assert_eq!(t.observe(4 << 8, at(ACK, 101, 0), 13 * S, &T, &mut None), FlowEvent::Tracked, "not closing");
    }

    /// A client that closed may open a new connection on the same 4-tuple, its ISN beyond
    /// the old stream's end (RFC 1122 §4.2.2.13): it lives on the established timeout, not
    /// the closing one. A SYN below that end leaves the connection closing.
    #[test]
    fn a_new_connection_may_reuse_a_closed_ones_four_tuple() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq| Segment { flags, seq, len: 0 };
        for flow in [3 << 8, 4 << 8] {
            t.observe(flow, at(SYN, 100), S, &T, &mut None);
            t.observe(flow, at(ACK, 101), S, &T, &mut None);
            t.observe(flow, at(FIN | ACK, 101), S, &T, &mut None); // closing; next is 102
        }
        assert_eq!(t.observe(3 << 8, at(SYN, 50), 2 * S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(3 << 8, at(ACK, 51), 13 * S, &T, &mut None), FlowEvent::OutOfStateAck, "still closing");
        assert_eq!(t.observe(4 << 8, at(SYN, 5000), 2 * S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(4 << 8, at(ACK, 5001), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(4 << 8, at(ACK, 5001), 100 * S, &T, &mut None), FlowEvent::Tracked, "established again");
    }

    /// A blind SYN names a sequence number of its own choosing; were it taken as a new
    /// stream's start, a RST just after it would end the connection (RFC 5961 §4 has a SYN
    /// in a synchronized state reset nothing; Linux keeps such a connection). A closing
    /// connection, its client half-closed while the server still sends, was ended so by
    /// two blind SYN and RST pairs 2^31 apart (one is beyond its stream), an embryonic one
    /// by one pair, and one blind SYN put a customer's own connection, waiting on its first
    /// request, on the embryonic timeout.
    #[test]
    fn a_blind_syn_does_not_set_the_number_a_rst_must_carry() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq| Segment { flags, seq, len: 0 };
        let blind = 0x9e37_79b9u32;
        // Closing: next is 102; the client still acknowledges the server's data.
        t.observe(1 << 8, at(SYN, 100), S, &T, &mut None);
        t.observe(1 << 8, at(ACK, 101), S, &T, &mut None);
        t.observe(1 << 8, at(FIN | ACK, 101), S, &T, &mut None);
        for x in [blind, blind.wrapping_add(1 << 31)] {
            assert_eq!(t.observe(1 << 8, at(SYN, x), 2 * S, &T, &mut None), FlowEvent::New);
            t.observe(1 << 8, at(RST, x.wrapping_add(1)), 2 * S, &T, &mut None);
        }
        assert_eq!(t.observe(1 << 8, at(ACK, 102), 3 * S, &T, &mut None), FlowEvent::Tracked, "closing: not ended");
        assert_eq!(t.observe(1 << 8, at(RST, 102), 3 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(
            t.observe(1 << 8, at(ACK, 102), 3 * S, &T, &mut None),
            FlowEvent::OutOfStateAck,
            "its own RST ends it"
        );
        // Embryonic: the client's SYN, then a blind pair before its handshake's ACK.
        t.observe(2 << 8, at(SYN, 100), S, &T, &mut None);
        t.observe(2 << 8, at(SYN, blind), S, &T, &mut None);
        t.observe(2 << 8, at(RST, blind.wrapping_add(1)), S, &T, &mut None);
        assert_eq!(t.observe(2 << 8, at(ACK, 101), S, &T, &mut None), FlowEvent::Tracked, "embryonic: not ended");
        // A customer's own connection, waiting on its first request: a blind SYN (with no ACK)
        // does not put it on the embryonic timeout (10 s here), nor does a blind SYN-ACK and
        // RST pair end it.
        t.observe(3 << 8, at(SYN | ACK, 7000), S, &T, &mut None);
        t.observe(3 << 8, at(SYN, blind), 2 * S, &T, &mut None);
        assert_eq!(t.observe(3 << 8, at(ACK, 7001), 100 * S, &T, &mut None), FlowEvent::Tracked, "the server answers");
        t.observe(6 << 8, at(SYN | ACK, 9000), S, &T, &mut None);
        t.observe(6 << 8, at(SYN | ACK, blind), 2 * S, &T, &mut None);
        t.observe(6 << 8, at(RST, blind.wrapping_add(1)), 2 * S, &T, &mut None);
        assert_eq!(t.observe(6 << 8, at(ACK, 9001), 100 * S, &T, &mut None), FlowEvent::Tracked, "nor ended");
        // The SYN again (the client's retransmission) or the SYN-ACK of a simultaneous open
        // keeps the number, and the latter has the entry wait on the idle timeout.
        t.observe(4 << 8, at(SYN, 500), S, &T, &mut None);
        t.observe(4 << 8, at(SYN | ACK, 500), 2 * S, &T, &mut None);
        assert_eq!(t.observe(4 << 8, at(ACK, 501), 100 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(4 << 8, at(RST, 501), 100 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.observe(4 << 8, at(ACK, 501), 100 * S, &T, &mut None), FlowEvent::OutOfStateAck, "ended at 501");
        // A new connection far beyond a closed one's stream (a client's next on the 4-tuple)
        // is embryonic, and established by its handshake's ACK: it lives on the idle timeout.
        t.observe(5 << 8, at(SYN, 100), S, &T, &mut None);
        t.observe(5 << 8, at(ACK, 101), S, &T, &mut None);
        t.observe(5 << 8, at(FIN | ACK, 101), S, &T, &mut None);
        assert_eq!(t.observe(5 << 8, at(SYN, 1 << 30), 2 * S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(5 << 8, at(ACK, (1 << 30) + 1), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(
            t.observe(5 << 8, at(ACK, (1 << 30) + 1), 100 * S, &T, &mut None),
            FlowEvent::Tracked,
            "established"
        );
    }

    /// New connections evict embryonic entries before established ones (here one set of four
    /// ways): a SYN flood does not push out the connection a customer is serving.
    #[test]
    fn a_syn_flood_evicts_its_own_entries_before_established_connections() {
        let mut t = FlowTable::new(WAYS);
        t.observe(1 << 8, seg(SYN), S, &T, &mut None);
        t.observe(1 << 8, seg(ACK), S, &T, &mut None);
        for f in 2..1000u64 {
            assert_eq!(t.observe(f << 8, seg(SYN), S + f, &T, &mut None), FlowEvent::New);
        }
        assert_eq!(t.observe(1 << 8, seg(ACK), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.take_evicted(), 0, "only embryonic entries made room");
        // A set full of established connections still takes a new one, in the oldest's way.
        let mut t = FlowTable::new(WAYS);
        for f in 1..=4u64 {
            t.observe(f << 8, seg(SYN), f * S, &T, &mut None);
            t.observe(f << 8, seg(ACK), f * S, &T, &mut None);
        }
        assert_eq!(t.observe(5 << 8, seg(SYN), 6 * S, &T, &mut None), FlowEvent::New);
        assert_eq!((t.take_evicted(), t.take_evicted()), (1, 0), "counted once, when taken");
        assert_eq!(t.observe(1 << 8, seg(ACK), 6 * S, &T, &mut None), FlowEvent::OutOfStateAck, "the oldest made room");
        assert_eq!(t.observe(2 << 8, seg(ACK), 6 * S, &T, &mut None), FlowEvent::Tracked);
    }

    /// Ticks wrap every 52 days; an entry idle for 27 of them is old (it read as just seen,
    /// and a source authenticated once was so again 26 days after it expired).
    #[test]
    fn entries_idle_for_weeks_are_old_not_young() {
        let day = 86_400 * S;
        let mut t = FlowTable::new(1024);
        t.observe(1 << 8, seg(SYN), S, &T, &mut None);
        t.observe(1 << 8, seg(ACK), S, &T, &mut None);
        assert_eq!(t.observe(1 << 8, seg(ACK), S + 27 * day, &T, &mut None), FlowEvent::OutOfStateAck);
        let mut a = Authenticated::new(64);
        a.insert(7 << 8, S, 301 * S);
        assert!(a.contains(7 << 8, 300 * S));
        assert!(!a.contains(7 << 8, 302 * S));
        assert!(!a.contains(7 << 8, 301 * S + 27 * day));
        // And such an entry makes room before a live one.
        let mut a = Authenticated::new(WAYS);
        for source in 1..=4u64 {
            a.insert(source << 8, S, 301 * S);
        }
        let later = 301 * S + 27 * day;
        a.insert(5 << 8, later, later + 300 * S);
        a.insert(6 << 8, later, later + 300 * S);
        assert!(a.contains(5 << 8, later + S) && a.contains(6 << 8, later + S));
    }

    /// A customer's own connection is seen from its server's SYN-ACK on; the handshake ends
    /// with the customer's ACK, which the edge never sees, and the server says nothing more
    /// until the customer's first request (RFC 9293 lets an established connection idle).
    /// Opened ahead of use, it was forgotten at the embryonic timeout and the server's
    /// answer was out of state. A client's SYN alone still lapses then, and SYN-ACKs still
    /// make room before an established connection.
    #[test]
    fn a_connection_a_syn_ack_opened_waits_on_the_idle_timeout() {
        let mut t = FlowTable::new(1024);
        let at = |flags, seq, len| Segment { flags, seq, len };
        assert_eq!(t.observe(1 << 8, at(SYN | ACK, 7000, 0), S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(2 << 8, at(SYN, 100, 0), S, &T, &mut None), FlowEvent::New);
        assert_eq!(t.observe(3 << 8, at(SYN | ACK, 9000, 0), S, &T, &mut None), FlowEvent::New);
        let answer = t.observe(1 << 8, at(ACK, 7001, 200), 200 * S, &T, &mut None);
        assert_eq!(answer, FlowEvent::Tracked, "the server's answer to a late first request");
        assert_eq!(t.observe(2 << 8, at(ACK, 101, 0), 200 * S, &T, &mut None), FlowEvent::OutOfStateAck);
        assert_eq!(
            t.observe(3 << 8, at(ACK, 9001, 0), 302 * S, &T, &mut None),
            FlowEvent::OutOfStateAck,
            "idle for longer than the idle timeout"
        );
        let mut t = FlowTable::new(WAYS);
        t.observe(1 << 8, seg(SYN), S, &T, &mut None);
        t.observe(1 << 8, seg(ACK), S, &T, &mut None);
        for f in 2..1000u64 {
            assert_eq!(t.observe(f << 8, seg(SYN | ACK), S + f, &T, &mut None), FlowEvent::New);
        }
        assert_eq!(t.observe(1 << 8, seg(ACK), 2 * S, &T, &mut None), FlowEvent::Tracked);
        assert_eq!(t.take_evicted(), 0, "only the SYN-ACKs' entries made room");
    }

    #[test]
    fn an_entry_is_sixteen_bytes() {
        assert_eq!(size_of::<Slot>(), 16);
    }

    #[test]
    fn embryonic_connections_expire_sooner_than_established_ones() {
        let mut t = FlowTable::new(1024);
        t.observe(1, seg(SYN), S, &T, &mut None);
        t.observe(2, seg(SYN), S, &T, &mut None);
        t.observe(2, seg(ACK), S, &T, &mut None);
        assert_eq!(t.live(2 * S, &T), 2);
        assert_eq!(t.observe(1, seg(ACK), 12 * S, &T, &mut None), FlowEvent::OutOfStateAck);
        assert_eq!(t.observe(2, seg(ACK), 200 * S, &T, &mut None), FlowEvent::Tracked);
    }

    #[test]
    fn the_grace_period_picks_up_connections_already_open() {
        let grace = FlowTimeouts { grace_ns: 60 * S, ..T };
        let mut t = FlowTable::new(64);
        let since = &mut None;
        assert_eq!(t.observe(5, seg(ACK), 100 * S, &grace, since), FlowEvent::PickedUp);
        assert_eq!(t.observe(5, seg(ACK), 101 * S, &grace, since), FlowEvent::Tracked);
        assert_eq!(
            t.observe(6, seg(RST), 101 * S, &grace, since),
            FlowEvent::OutOfStateRst,
            "a RST is never picked up"
        );
        assert_eq!(t.observe(7, seg(ACK), 161 * S, &grace, since), FlowEvent::OutOfStateAck, "grace is over");
        assert_eq!(t.observe(5, seg(ACK), 162 * S, &grace, since), FlowEvent::Tracked, "what was picked up stays");
    }

    #[test]
    fn a_flood_of_new_flows_evicts_and_never_grows() {
        let mut t = FlowTable::new(4096);
        let bytes = t.memory_bytes();
        for f in 0..1_000_000u64 {
            t.observe(mix(f), seg(SYN), S + f, &T, &mut None);
        }
        assert_eq!(t.memory_bytes(), bytes);
        assert!(t.live(2 * S, &T) <= t.capacity());
        // The most recent flows are still there.
        assert_eq!(t.observe(mix(999_999), seg(ACK), 2 * S, &T, &mut None), FlowEvent::Tracked);
    }
}
