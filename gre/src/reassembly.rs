//! IP reassembly (RFC 791 §3.2, RFC 8200 §4.5) in memory fixed at start-up: the far end's
//! half of fragmentation, for GRE that a router fragmented after encapsulating it (Cisco's
//! default for an inner packet without DF, Linux's `nopmtudisc` tunnels), as Linux
//! reassembles before its GRE devices see a packet.
//!
//! A datagram is its source, destination and identification (over IPv4 its protocol too).
//! Its fragments' data is copied into its slot as they come, so no frame waits for another;
//! the fragment that makes it whole gets the whole datagram written over it ([`write`]):
//! the first fragment's header (IPv4: options included; IPv6: the headers before the
//! fragment header, the fragment header taken out of the chain), then the data, with the
//! lengths, flags and checksum of a whole packet.
//!
//! What is refused, as the RFCs and Linux do:
//! - a fragment that is not the last whose data is not a multiple of 8 bytes, or one with no
//!   data: alone;
//! - a fragment that overlaps another of its datagram, or disagrees on where the datagram
//!   ends: with the whole datagram (RFC 5722; Linux does the same over IPv4). An exact
//!   duplicate is refused alone;
//! - Not-ECT and ECN-capable fragments in one datagram: with it (RFC 3168 §5.3; CE on any
//!   fragment marks the whole CE);
//! - a datagram in more than [`MAX_PIECES`] fragments, longer than a slot holds, longer
//!   than 65,535 bytes, or with a first fragment's headers past [`HEAD_MAX`];
//! - the fragments of a datagram whose first fragment the caller refused ([`refuse`]: its
//!   GRE not ours) that come within [`HOLD_NS`] after it: alone, taking no slot. Kept, they
//!   would wait for nothing, and a sender repeating it would take every slot. The caller
//!   asks where the first went ([`refused_first`]), for them to go the same way.
//!
//! A datagram not whole within [`HOLD_NS`] is given up. When every slot is taken, the
//! datagram begun longest ago makes room: fragments a router sends come back to back, so a
//! flood of forged ones delays nothing but what it evicts.
//!
//! [`write`]: Reassembler::write
//! [`refuse`]: Reassembler::refuse
//! [`refused_first`]: Reassembler::refused_first

use crate::ecn;
use crate::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, Ipv4Packet, Ipv6Packet};

mod refused;

use refused::Refused;

/// Fragments one datagram may come in (FreeBSD's `maxfragsperpacket`).
pub const MAX_PIECES: usize = 16;
/// How long an incomplete datagram is kept, in nanoseconds, and a refused one remembered. A
/// router's fragments of one packet leave it back to back and take one path; Linux's
/// `ipfrag_time` (30 s) is meant for hosts on the Internet, Cisco's virtual reassembly keeps
/// 3 s, VPP's 100 ms. The XDP program remembers the datagrams it passed for as long
/// (`REFUSED_GRE_HOLD_NS` in `bpf/src/bpf/consts.h`).
pub const HOLD_NS: u64 = 1_000_000_000;
/// Refused datagrams remembered ([`Reassembler::refuse`]), whatever the slots (a reassembler
/// of none still sends the rest of a refused datagram where its first went): a router's
/// fragments come back to back, so the rest of a refused datagram follows its first within
/// microseconds. The XDP program keeps room for as many per queue (`MAX_REFUSED_GRE`).
pub const REFUSED_KEPT: usize = 64;
/// The longest header kept from a first fragment: IPv4's 60 bytes, or IPv6's fixed header
/// and the extension headers before its fragment header.
pub const HEAD_MAX: usize = 256;

/// IPv6 extension headers that may come before a fragment header (RFC 8200 §4.5's
/// unfragmentable part), and the fragment header.
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const DESTINATION_OPTIONS: u8 = 60;
const FRAGMENT: u8 = 44;

/// What became of a fragment offered to [`Reassembler::offer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Kept: its datagram is not whole yet.
    Held,
    /// It made its datagram whole: [`Reassembler::write`] it (until then its slot stays
    /// taken).
    Whole(Complete),
    /// Not kept; a refusal that discards its datagram ([`Refusal::discards`]) gave up the
    /// fragments held for it too.
    Refused(Refusal),
}

/// A datagram made whole, to be written out.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Complete {
    slot: usize,
}

/// Why a fragment was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an IPv4 or IPv6 fragment, its headers cut short, or no data in it.
    Malformed,
    /// Not the last fragment, and its data not a multiple of 8 bytes.
    Unaligned,
    /// The same bytes of its datagram came before: refused alone.
    Duplicate,
    /// It overlaps another fragment of its datagram, or says the datagram ends elsewhere
    /// than another said.
    Overlap,
    /// Not-ECT and ECN-capable fragments in one datagram.
    Ecn,
    /// The datagram would be longer than a slot, than 65,535 bytes, or come in more than
    /// [`MAX_PIECES`] fragments; or a first fragment's headers are longer than [`HEAD_MAX`].
    TooBig,
    /// No slots: a reassembler of none.
    NoRoom,
    /// A later fragment of a datagram whose first fragment was refused
    /// ([`Reassembler::refuse`]) at most [`HOLD_NS`] before.
    FirstRefused,
}

/// What the caller did with a first fragment it refused ([`Reassembler::refuse`]), for the
/// rest of its datagram to follow ([`Reassembler::refused_first`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstWent {
    /// Dropped: the rest is dropped too.
    Dropped,
    /// Passed on to another receiver (the host, whose GRE it is): the rest goes there too,
    /// so that it gets the whole datagram.
    Passed,
}

impl Refusal {
    /// The refusal gave up the datagram, and any fragments held for it.
    pub const fn discards(self) -> bool {
        matches!(self, Refusal::Overlap | Refusal::Ecn | Refusal::TooBig)
    }
}

/// The identity of a datagram (RFC 791 §3.2, RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Datagram {
    ipv6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    /// IPv4's protocol; 0 over IPv6, whose identity has none.
    protocol: u8,
}

/// One fragment, read.
struct Piece<'a> {
    datagram: Datagram,
    /// Where its data goes in the datagram's data, in bytes.
    offset: u32,
    more: bool,
    data: &'a [u8],
    /// A first fragment's header to keep.
    head: Option<&'a [u8]>,
    /// IPv6: the byte of the header that named the fragment header, and what it names
    /// instead (the header after it).
    renamed: Option<(usize, u8)>,
    /// Its ECN codepoint.
    ecn: u8,
}

/// A datagram being put together.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// `None`: free.
    datagram: Option<Datagram>,
    /// When its first fragment to arrive came.
    began: u64,
    /// The first fragment's header (the first `head_len` bytes; 0 until it comes).
    head: [u8; HEAD_MAX],
    head_len: usize,
    /// Bytes of data, known once the last fragment came.
    total: Option<u32>,
    /// The data each fragment brought, as `start..end`, none overlapping.
    pieces: [(u32, u32); MAX_PIECES],
    count: usize,
    /// Bytes of data come (no overlaps: the sum of the pieces).
    received: u32,
    /// The ECN codepoints seen, one bit each.
    ecn: u8,
}

impl Slot {
    const FREE: Slot = Slot {
        datagram: None,
        began: 0,
        head: [0; HEAD_MAX],
        head_len: 0,
        total: None,
        pieces: [(0, 0); MAX_PIECES],
        count: 0,
        received: 0,
        ecn: 0,
    };
}

/// Datagrams being reassembled, in memory fixed when made.
#[derive(Clone)]
pub struct Reassembler {
    slots: Vec<Slot>,
    /// Each slot's data, `capacity` bytes apiece.
    data: Box<[u8]>,
    capacity: usize,
    /// Datagrams refused lately, [`REFUSED_KEPT`] of them.
    refused: Refused,
    reassembled: u64,
    discarded: u64,
}

impl std::fmt::Debug for Reassembler {
    // The data (a frame per slot) says nothing a reader wants.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("slots", &self.slots.len())
            .field("capacity", &self.capacity)
            .field("held", &self.held())
            .field("reassembled", &self.reassembled)
            .field("discarded", &self.discarded)
            .finish()
    }
}

impl Reassembler {
    /// Room for `slots` datagrams of up to `capacity` bytes of data each (what follows the
    /// IP headers). With no slots, every fragment is refused ([`Refusal::NoRoom`]).
    pub fn new(slots: usize, capacity: usize) -> Reassembler {
        let capacity = if slots == 0 { 0 } else { capacity };
        Reassembler {
            slots: vec![Slot::FREE; slots],
            data: vec![0; slots * capacity].into_boxed_slice(),
            capacity,
            refused: Refused::new(REFUSED_KEPT),
            reassembled: 0,
            discarded: 0,
        }
    }

    /// The number of slots and the data each holds: what [`Reassembler::new`] was given.
    pub fn shape(&self) -> (usize, usize) {
        (self.slots.len(), self.capacity)
    }

    /// Datagrams made whole and written out.
    pub fn reassembled(&self) -> u64 {
        self.reassembled
    }

    /// Datagrams given up with fragments of them held: expired, evicted, forgotten, or
    /// discarded by a refusal.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Datagrams waiting for fragments now.
    pub fn held(&self) -> usize {
        self.slots.iter().filter(|s| s.datagram.is_some()).count()
    }

    /// Carries the counts of `old` into this one (a reassembler made afresh for a new
    /// shape); the datagrams `old` still held are given up.
    pub fn carry_counts(&mut self, old: &Reassembler) {
        self.reassembled += old.reassembled;
        self.discarded += old.discarded + old.slots.iter().filter(|s| s.count > 0).count() as u64;
    }

    /// Takes the fragment `packet` (an IPv4 or IPv6 packet from its first byte; bytes past
    /// its length field are ignored), received at `now` nanoseconds, where a datagram it
    /// completes could be written whole in `room` bytes (IP header on): longer ones are
    /// refused as soon as a fragment says they will be.
    ///
    /// A first fragment offered is taken as ours: a datagram refused before under its
    /// identity ([`Reassembler::refuse`]) was another (identifications come round).
    pub fn offer(&mut self, packet: &[u8], now: u64, room: usize) -> Offer {
        let Some(p) = read(packet) else { return Offer::Refused(Refusal::Malformed) };
        if p.head.is_some() {
            self.refused.remove(&p.datagram, now);
        } else if self.refused.went(&p.datagram, now).is_some() {
            return Offer::Refused(Refusal::FirstRefused);
        }
        if p.data.is_empty() {
            return Offer::Refused(Refusal::Malformed);
        }
        if p.more && !p.data.len().is_multiple_of(8) {
            return Offer::Refused(Refusal::Unaligned);
        }
        // What this fragment alone says is too long takes no slot (and evicts nothing), but
        // ends a datagram already begun.
        let end = p.offset as usize + p.data.len();
        let least_head = p.head.map_or(if p.datagram.ipv6 { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN }, <[u8]>::len);
        if end > self.capacity || least_head > HEAD_MAX || least_head + end > room {
            self.give_up(&p.datagram);
            return Offer::Refused(if self.slots.is_empty() { Refusal::NoRoom } else { Refusal::TooBig });
        }
        let Some(i) = self.slot_for(&p.datagram, now) else { return Offer::Refused(Refusal::NoRoom) };
        match self.add(i, &p, room) {
            Ok(offer) => offer,
            Err(refusal) => {
                if refusal.discards() {
                    self.discard(i);
                }
                Offer::Refused(refusal)
            }
        }
    }

    /// Refuses the datagram of fragment `packet`, received at `now` (its first fragment,
    /// which turned out not to be for reassembly, and `went` elsewhere): the fragments held
    /// for it are given up (counted so), and those of it offered within [`HOLD_NS`] are
    /// refused as they come ([`Refusal::FirstRefused`]), until a first fragment of it is
    /// offered.
    pub fn refuse(&mut self, packet: &[u8], now: u64, went: FirstWent) {
        if let Some(p) = read(packet) {
            self.give_up(&p.datagram);
            self.refused.insert(p.datagram, now, went);
        }
    }

    /// For a fragment `packet` the caller takes, received at `now`, before it is offered (it
    /// may not be: the caller may drop it first): where its datagram's first fragment went,
    /// if that was refused within [`HOLD_NS`] and `packet` is a later fragment, which goes
    /// the same way. A first fragment ends the refusal of its identity, as
    /// [`Reassembler::offer`] does (a datagram refused before under it was another), and
    /// returns `None`.
    pub fn refused_first(&mut self, packet: &[u8], now: u64) -> Option<FirstWent> {
        let p = read(packet)?;
        if p.head.is_some() {
            self.refused.remove(&p.datagram, now);
            return None;
        }
        self.refused.went(&p.datagram, now)
    }

    /// Gives up `datagram`, if a slot holds it.
    fn give_up(&mut self, datagram: &Datagram) {
        if let Some(i) = self.slots.iter().position(|s| s.datagram.as_ref() == Some(datagram)) {
            self.discard(i);
        }
    }

    /// Adds piece `p` to slot `i`, for a datagram to be written in `room` bytes.
    fn add(&mut self, i: usize, p: &Piece<'_>, room: usize) -> Result<Offer, Refusal> {
        let slot = &mut self.slots[i];
        let (start, end) = (p.offset, p.offset + p.data.len() as u32);
        let pieces = &slot.pieces[..slot.count];
        if pieces.contains(&(start, end)) {
            return Err(Refusal::Duplicate);
        }
        if pieces.iter().any(|&(s, e)| s < end && start < e) {
            return Err(Refusal::Overlap);
        }
        let ends_elsewhere = match slot.total {
            Some(total) => end > total || (!p.more && end != total),
            None => !p.more && pieces.iter().any(|&(_, e)| e > end),
        };
        if ends_elsewhere {
            return Err(Refusal::Overlap);
        }
        // The datagram's length as far as is known: its header (once the first fragment
        // came) and the furthest end.
        let head_len = p.head.map_or(slot.head_len, <[u8]>::len);
        let furthest = pieces.iter().map(|&(_, e)| e).chain([end]).max().unwrap_or(end);
        if slot.count == MAX_PIECES || head_len + furthest as usize > room {
            return Err(Refusal::TooBig);
        }
        let seen = slot.ecn | 1 << p.ecn;
        if seen & 1 << ecn::NOT_ECT != 0 && seen != 1 << ecn::NOT_ECT {
            return Err(Refusal::Ecn);
        }
        slot.ecn = seen;
        let at = i * self.capacity;
        self.data[at + start as usize..at + end as usize].copy_from_slice(p.data);
        if let Some(head) = p.head {
            slot.head[..head.len()].copy_from_slice(head);
            if let Some((byte, next)) = p.renamed {
                slot.head[byte] = next;
            }
            slot.head_len = head.len();
        }
        if !p.more {
            slot.total = Some(end);
        }
        slot.pieces[slot.count] = (start, end);
        slot.count += 1;
        slot.received += end - start;
        let whole = slot.head_len > 0 && slot.total == Some(slot.received);
        Ok(if whole { Offer::Whole(Complete { slot: i }) } else { Offer::Held })
    }

    /// Writes the datagram `complete` names into `out` and frees its slot: its length, or
    /// `None` (the datagram given up) when `out` cannot hold it or it is longer than IP's
    /// length fields say a datagram can be.
    pub fn write(&mut self, complete: Complete, out: &mut [u8]) -> Option<usize> {
        let i = complete.slot;
        let slot = *self.slots.get(i)?;
        let (head_len, total) = (slot.head_len, slot.total? as usize);
        let len = head_len + total;
        let ipv6 = slot.datagram?.ipv6;
        // IPv4's total length counts the header; IPv6's payload length does not.
        let length_field = if ipv6 { len - IPV6_HEADER_LEN } else { len };
        let (Some(out), Ok(length_field)) = (out.get_mut(..len), u16::try_from(length_field)) else {
            self.discard(i);
            return None;
        };
        out[..head_len].copy_from_slice(&slot.head[..head_len]);
        let at = i * self.capacity;
        out[head_len..].copy_from_slice(&self.data[at..at + total]);
        // CE on any fragment marks the whole; otherwise every fragment had the first's.
        let congested = slot.ecn & 1 << ecn::CE != 0;
        if ipv6 {
            let mut ip = Ipv6Packet::new_unchecked(&mut out[..]);
            ip.set_payload_len(length_field);
            if congested {
                let class = ip.traffic_class() | ecn::CE;
                let flow = ip.flow_label();
                ip.set_version_class_flow(class, flow);
            }
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
            ip.set_total_len(length_field);
            let dont_frag = ip.dont_frag();
            ip.set_flags_and_offset(dont_frag, false, 0);
            if congested {
                let tos = ip.tos() | ecn::CE;
                ip.set_tos(tos);
            }
            ip.fill_checksum();
        }
        self.slots[i] = Slot::FREE;
        self.reassembled += 1;
        Some(len)
    }

    /// The slot of `datagram`: its own, or one made for it (a free one, one whose datagram
    /// expired, or the one begun longest ago). Expired datagrams are given up on the way.
    fn slot_for(&mut self, datagram: &Datagram, now: u64) -> Option<usize> {
        let (mut mine, mut free, mut oldest) = (None, None, None::<(u64, usize)>);
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let Some(d) = slot.datagram else {
                free = free.or(Some(i));
                continue;
            };
            if now.saturating_sub(slot.began) > HOLD_NS {
                self.discard(i);
                free = free.or(Some(i));
            } else if d == *datagram {
                mine = Some(i);
            } else if oldest.is_none_or(|(began, _)| slot.began < began) {
                oldest = Some((slot.began, i));
            }
        }
        if mine.is_some() {
            return mine;
        }
        let i = free.or(oldest.map(|(_, i)| i))?;
        if self.slots[i].datagram.is_some() {
            self.discard(i);
        }
        self.slots[i] = Slot { datagram: Some(*datagram), began: now, ..Slot::FREE };
        Some(i)
    }

    /// Gives up slot `i`'s datagram: counted when fragments of it were held.
    fn discard(&mut self, i: usize) {
        if self.slots[i].count > 0 {
            self.discarded += 1;
        }
        self.slots[i] = Slot::FREE;
    }
}

/// Reads a fragment: `None` for anything else, or headers cut short.
fn read(packet: &[u8]) -> Option<Piece<'_>> {
    match packet.first()? >> 4 {
        4 => read_ipv4(packet),
        6 => read_ipv6(packet),
        _ => None,
    }
}

fn read_ipv4(packet: &[u8]) -> Option<Piece<'_>> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let header_len = ip.header_len();
    let data = packet.get(header_len..usize::from(ip.total_len()))?;
    if !ip.is_fragment() {
        return None;
    }
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src[12..].copy_from_slice(&ip.src_octets());
    dst[12..].copy_from_slice(&ip.dst_octets());
    let offset = u32::from(ip.frag_offset());
    Some(Piece {
        datagram: Datagram { ipv6: false, src, dst, id: u32::from(ip.ident()), protocol: ip.protocol() },
        offset,
        more: ip.more_frags(),
        data,
        head: (offset == 0).then(|| &packet[..header_len]),
        renamed: None,
        ecn: ip.tos() & ecn::CE,
    })
}

fn read_ipv6(packet: &[u8]) -> Option<Piece<'_>> {
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    let end = IPV6_HEADER_LEN + usize::from(ip.payload_len());
    let packet = packet.get(..end)?;
    // The headers before the fragment header; `names` is the byte that names the next.
    let (mut next, mut names, mut at) = (ip.next_header(), 6, IPV6_HEADER_LEN);
    while next != FRAGMENT {
        if !matches!(next, HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS) {
            return None;
        }
        let header = packet.get(at..at + 2)?;
        (next, names) = (header[0], at);
        at += (usize::from(header[1]) + 1) * 8;
    }
    let fragment: &[u8; 8] = packet.get(at..)?.first_chunk()?;
    let word = u16::from_be_bytes([fragment[2], fragment[3]]);
    let (offset, more) = (u32::from(word & 0xfff8), word & 1 != 0);
    if offset == 0 && !more {
        return None; // an atomic fragment (RFC 6946): a whole packet
    }
    Some(Piece {
        datagram: Datagram {
            ipv6: true,
            src: ip.src_octets(),
            dst: ip.dst_octets(),
            id: u32::from_be_bytes([fragment[4], fragment[5], fragment[6], fragment[7]]),
            protocol: 0,
        },
        offset,
        more,
        data: &packet[at + 8..],
        head: (offset == 0).then(|| &packet[..at]),
        renamed: Some((names, fragment[0])),
        ecn: ip.traffic_class() & ecn::CE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::checksum;
    use proptest::prelude::*;

    /// Room enough for any datagram.
    const ROOM: usize = 70_000;

    /// Writes the checksum of the IPv4 header `p` starts with (options included).
    fn refill_checksum(p: &mut [u8]) {
        let header_len = usize::from(p[0] & 0xf) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&p[..header_len]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// An IPv4 datagram of `data_len` bytes of data (GRE, DF clear, ECT(0)), options of
    /// `options` bytes, its checksum right.
    fn ipv4_datagram(data_len: usize, options: usize, id: u16) -> Vec<u8> {
        let header_len = 20 + options;
        let mut p = vec![0u8; header_len + data_len];
        p[0] = 0x40 | (header_len / 4) as u8;
        p[1] = 0xb8 | ecn::ECT0;
        p[2..4].copy_from_slice(&((header_len + data_len) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[8] = 60;
        p[9] = 47;
        p[12..16].copy_from_slice(&[198, 51, 100, 1]);
        p[16..20].copy_from_slice(&[192, 0, 2, 1]);
        for (i, b) in p[20..header_len].iter_mut().enumerate() {
            *b = if i == 0 { 0x94 } else { 1 }; // router alert (copied), then no-ops
        }
        if options > 0 {
            p[21] = 4;
        }
        for (i, b) in p[header_len..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        refill_checksum(&mut p);
        p
    }

    /// `datagram` (IPv4) cut into fragments of `step` bytes of data, by hand: each the
    /// whole header with its offset, MF and length, its checksum right.
    fn ipv4_fragments(datagram: &[u8], step: usize) -> Vec<Vec<u8>> {
        let header_len = usize::from(datagram[0] & 0xf) * 4;
        let data = &datagram[header_len..];
        let mut out = Vec::new();
        for at in (0..data.len()).step_by(step) {
            let piece = &data[at..(at + step).min(data.len())];
            let mut f = datagram[..header_len].to_vec();
            f.extend_from_slice(piece);
            let len = f.len() as u16;
            f[2..4].copy_from_slice(&len.to_be_bytes());
            let more = at + step < data.len();
            let word = (at / 8) as u16 | if more { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&word.to_be_bytes());
            refill_checksum(&mut f);
            out.push(f);
        }
        out
    }

    /// An IPv6 datagram with a hop-by-hop header (8 bytes) and `data_len` bytes of GRE.
    fn ipv6_datagram(data_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + 8 + data_len];
        p[..4].copy_from_slice(&(6u32 << 28 | u32::from(ecn::ECT1) << 20 | 0x12345).to_be_bytes());
        p[4..6].copy_from_slice(&((8 + data_len) as u16).to_be_bytes());
        p[6] = HOP_BY_HOP;
        p[7] = 64;
        p[8..24].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[24..40].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[40] = 47; // the hop-by-hop header: GRE next, a PadN option
        p[42..44].copy_from_slice(&[1, 4]);
        for (i, b) in p[48..].iter_mut().enumerate() {
            *b = (i * 5 + 1) as u8;
        }
        p
    }

    /// `datagram` (IPv6, a hop-by-hop header) cut by hand into fragments of `step` bytes,
    /// the fragment header after the hop-by-hop one (RFC 8200 §4.5's figure).
    fn ipv6_fragments(datagram: &[u8], step: usize, id: u32) -> Vec<Vec<u8>> {
        let data = &datagram[48..];
        let mut out = Vec::new();
        for at in (0..data.len()).step_by(step) {
            let piece = &data[at..(at + step).min(data.len())];
            let mut f = datagram[..48].to_vec();
            f[40] = FRAGMENT;
            let more = at + step < data.len();
            let word = at as u16 | u16::from(more);
            f.extend_from_slice(&[datagram[40], 0]);
            f.extend_from_slice(&word.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(piece);
            let payload = (f.len() - 40) as u16;
            f[4..6].copy_from_slice(&payload.to_be_bytes());
            out.push(f);
        }
        out
    }

    /// Offers `fragments` in order; the datagram written by the one that completes it.
    fn reassemble(r: &mut Reassembler, fragments: &[Vec<u8>], now: u64) -> Option<Vec<u8>> {
        let mut whole = None;
        for f in fragments {
            match r.offer(f, now, ROOM) {
                Offer::Whole(c) => {
                    let mut out = vec![0; 70_000];
                    let len = r.write(c, &mut out)?;
                    out.truncate(len);
                    whole = Some(out);
                }
                Offer::Held => {}
                Offer::Refused(why) => panic!("refused: {why:?}"),
            }
        }
        whole
    }

    #[test]
    fn ipv4_fragments_in_any_order_make_the_datagram_they_were_cut_from() {
        for options in [0, 8] {
            let datagram = ipv4_datagram(1000, options, 7);
            let fragments = ipv4_fragments(&datagram, 296);
            assert_eq!(fragments.len(), 4);
            for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
                let mut r = Reassembler::new(4, 4096);
                let shuffled: Vec<Vec<u8>> = order.iter().map(|&i| fragments[i].clone()).collect();
                assert_eq!(reassemble(&mut r, &shuffled, 0).as_deref(), Some(&datagram[..]), "{order:?}");
                assert_eq!((r.reassembled(), r.discarded(), r.held()), (1, 0, 0));
            }
        }
    }

    #[test]
    fn ipv6_fragments_make_the_datagram_with_the_fragment_header_taken_out() {
        let datagram = ipv6_datagram(1500);
        let fragments = ipv6_fragments(&datagram, 1232, 0xdead_beef);
        assert_eq!(fragments.len(), 2);
        for order in [[0, 1], [1, 0]] {
            let mut r = Reassembler::new(4, 4096);
            let shuffled: Vec<Vec<u8>> = order.iter().map(|&i| fragments[i].clone()).collect();
            assert_eq!(reassemble(&mut r, &shuffled, 0).as_deref(), Some(&datagram[..]), "{order:?}");
        }
    }

    #[test]
    fn datagrams_are_told_apart_by_addresses_identification_and_protocol() {
        let a = ipv4_fragments(&ipv4_datagram(64, 0, 1), 32);
        let b = ipv4_fragments(&ipv4_datagram(64, 0, 2), 32);
        let mut c = a.clone();
        for f in &mut c {
            f[9] = 4; // another protocol, the same identification
            refill_checksum(f);
        }
        let mut r = Reassembler::new(4, 4096);
        for f in [&a[0], &b[0], &c[0]] {
            assert_eq!(r.offer(f, 0, ROOM), Offer::Held);
        }
        assert_eq!(r.held(), 3);
        for f in [&a[1], &b[1], &c[1]] {
            assert!(matches!(r.offer(f, 0, ROOM), Offer::Whole(_)));
        }
    }

    #[test]
    fn overlaps_discard_the_datagram_and_an_exact_duplicate_only_itself() {
        let datagram = ipv4_datagram(96, 0, 3);
        let f = ipv4_fragments(&datagram, 32);
        let mut r = Reassembler::new(4, 4096);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Refused(Refusal::Duplicate));
        assert_eq!(r.held(), 1);
        // Bytes 24..56: over the end of the first and the start of the second.
        let overlapping = ipv4_fragments(&datagram, 8).into_iter().skip(3).take(4).fold(Vec::new(), |mut acc, g| {
            if acc.is_empty() {
                acc = g;
            } else {
                acc.extend_from_slice(&g[20..]);
            }
            acc
        });
        let mut overlapping = overlapping;
        let len = overlapping.len() as u16;
        overlapping[2..4].copy_from_slice(&len.to_be_bytes());
        refill_checksum(&mut overlapping);
        assert_eq!(r.offer(&overlapping, 0, ROOM), Offer::Refused(Refusal::Overlap));
        assert_eq!((r.held(), r.discarded()), (0, 1));
        // The rest now starts a datagram that never completes.
        assert_eq!(r.offer(&f[1], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[2], 0, ROOM), Offer::Held);
    }

    #[test]
    fn a_last_fragment_that_disagrees_on_the_end_discards_the_datagram() {
        let f = ipv4_fragments(&ipv4_datagram(96, 0, 4), 32);
        let mut r = Reassembler::new(4, 4096);
        assert_eq!(r.offer(&f[2], 0, ROOM), Offer::Held, "the last: the datagram ends at 96");
        // Bytes 32..64 as the "last" fragment.
        let mut early_end = f[1].clone();
        early_end[6..8].copy_from_slice(&(32u16 / 8).to_be_bytes());
        refill_checksum(&mut early_end);
        assert_eq!(r.offer(&early_end, 0, ROOM), Offer::Refused(Refusal::Overlap));
        assert_eq!(r.discarded(), 1);
    }

    #[test]
    fn unaligned_empty_and_whole_packets_are_refused_alone() {
        let f = ipv4_fragments(&ipv4_datagram(100, 0, 5), 36); // 36: not a multiple of 8
        let mut r = Reassembler::new(4, 4096);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Refused(Refusal::Unaligned));
        assert_eq!(r.offer(&ipv4_datagram(100, 0, 5), 0, ROOM), Offer::Refused(Refusal::Malformed));
        assert_eq!(r.offer(&[0x45, 0, 0], 0, ROOM), Offer::Refused(Refusal::Malformed));
        assert_eq!(r.offer(&[], 0, ROOM), Offer::Refused(Refusal::Malformed));
        assert_eq!((r.held(), r.discarded()), (0, 0));
    }

    #[test]
    fn ecn_combines_as_rfc_3168_says() {
        // CE on one fragment of ECT ones: the whole is CE.
        let datagram = ipv4_datagram(64, 0, 6);
        let mut f = ipv4_fragments(&datagram, 32);
        f[1][1] |= ecn::CE;
        refill_checksum(&mut f[1]);
        let mut r = Reassembler::new(4, 4096);
        let whole = reassemble(&mut r, &f, 0).expect("whole");
        assert_eq!(whole[1] & ecn::CE, ecn::CE);
        assert_eq!(checksum(&whole[..20]), 0, "the checksum is the whole's");
        // Not-ECT with ECT: discarded.
        f[1][1] &= !ecn::CE;
        refill_checksum(&mut f[1]);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[1], 0, ROOM), Offer::Refused(Refusal::Ecn));
        assert_eq!(r.discarded(), 1);
    }

    #[test]
    fn an_incomplete_datagram_is_given_up_after_its_hold_and_the_oldest_makes_room() {
        let a = ipv4_fragments(&ipv4_datagram(64, 0, 10), 32);
        let b = ipv4_fragments(&ipv4_datagram(64, 0, 11), 32);
        let c = ipv4_fragments(&ipv4_datagram(64, 0, 12), 32);
        let mut r = Reassembler::new(2, 4096);
        assert_eq!(r.offer(&a[0], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&b[0], 5, ROOM), Offer::Held);
        // Full: c's first evicts a, begun longest ago.
        assert_eq!(r.offer(&c[0], 10, ROOM), Offer::Held);
        assert_eq!(r.discarded(), 1);
        assert_eq!(r.offer(&a[1], 10, ROOM), Offer::Held, "a starts over, evicting b");
        let Offer::Whole(done) = r.offer(&c[1], 10, ROOM) else { panic!("c not whole") };
        assert!(r.write(done, &mut [0; 100]).is_some());
        // Past the hold, a's second half finds its first half gone.
        assert_eq!(r.offer(&a[0], 11 + HOLD_NS, ROOM), Offer::Held);
        assert_eq!(r.discarded(), 3, "b evicted, a's second half expired");
        assert_eq!(r.held(), 1);
    }

    #[test]
    fn datagrams_longer_than_a_slot_or_in_too_many_fragments_are_discarded() {
        let datagram = ipv4_datagram(2000, 0, 20);
        let mut r = Reassembler::new(2, 1024);
        let f = ipv4_fragments(&datagram, 512);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[1], 0, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[2], 0, ROOM), Offer::Refused(Refusal::TooBig));
        let f = ipv4_fragments(&ipv4_datagram(8 * (MAX_PIECES + 1), 0, 21), 8);
        for g in &f[..MAX_PIECES] {
            assert_eq!(r.offer(g, 0, ROOM), Offer::Held);
        }
        assert_eq!(r.offer(&f[MAX_PIECES], 0, ROOM), Offer::Refused(Refusal::TooBig));
        // A reassembler of no slots refuses all.
        assert_eq!(Reassembler::new(0, 4096).offer(&f[0], 0, ROOM), Offer::Refused(Refusal::NoRoom));
    }

    #[test]
    fn a_datagram_that_does_not_fit_where_it_is_written_is_given_up() {
        let datagram = ipv4_datagram(64, 0, 30);
        let f = ipv4_fragments(&datagram, 32);
        let mut r = Reassembler::new(2, 4096);
        assert_eq!(r.offer(&f[0], 0, ROOM), Offer::Held);
        let Offer::Whole(c) = r.offer(&f[1], 0, ROOM) else { panic!("not whole") };
        assert_eq!(r.write(c, &mut [0; 83]), None);
        assert_eq!((r.held(), r.discarded(), r.reassembled()), (0, 1, 0));
    }

    #[test]
    fn a_fragment_past_the_room_is_refused_without_taking_a_slot() {
        let a = ipv4_fragments(&ipv4_datagram(64, 0, 40), 32);
        let big = ipv4_fragments(&ipv4_datagram(2000, 0, 41), 1000);
        let mut r = Reassembler::new(1, 4096);
        assert_eq!(r.offer(&a[0], 0, 1500), Offer::Held);
        // Its first fragment fits; the last says the whole (2020 bytes) will not: refused,
        // and the one slot's datagram is not evicted for it.
        assert_eq!(r.offer(&big[1], 0, 1500), Offer::Refused(Refusal::TooBig));
        assert_eq!((r.held(), r.discarded()), (1, 0));
        assert!(matches!(r.offer(&a[1], 0, 1500), Offer::Whole(_)));
        // A datagram begun, then a fragment past the room: given up.
        let mut r = Reassembler::new(2, 4096);
        assert_eq!(r.offer(&big[0], 0, 1500), Offer::Held);
        assert_eq!(r.offer(&big[1], 0, 1500), Offer::Refused(Refusal::TooBig));
        assert_eq!((r.held(), r.discarded()), (0, 1));
    }

    #[test]
    fn a_refused_datagram_is_given_up_and_its_fragments_to_come_refused_for_the_hold() {
        let f = ipv4_fragments(&ipv4_datagram(96, 0, 50), 32);
        let mut r = Reassembler::new(2, 4096);
        // A later fragment before the first: held, then given up with the refusal.
        assert_eq!(r.offer(&f[1], 0, ROOM), Offer::Held);
        r.refuse(&f[0], 10, FirstWent::Dropped);
        assert_eq!((r.held(), r.discarded()), (0, 1));
        // The fragments after it, and the one before again: refused, taking no slot.
        assert_eq!(r.offer(&f[2], 10, ROOM), Offer::Refused(Refusal::FirstRefused));
        assert_eq!((r.held(), r.discarded()), (0, 1), "nothing held: nothing given up");
        // Another datagram's fragments are not refused.
        let other = ipv4_fragments(&ipv4_datagram(96, 0, 51), 32);
        assert_eq!(r.offer(&other[1], 10, ROOM), Offer::Held);
        assert_eq!(r.offer(&f[1], 10 + HOLD_NS, ROOM), Offer::Refused(Refusal::FirstRefused));
        // Past the hold, the refused datagram's fragments are kept again.
        assert_eq!(r.offer(&f[2], 11 + HOLD_NS, ROOM), Offer::Held);
    }

    #[test]
    fn a_first_fragment_offered_ends_the_refusal_of_its_identity() {
        // The identification came round: a datagram with the refused one's identity.
        let datagram = ipv4_datagram(96, 0, 52);
        let f = ipv4_fragments(&datagram, 32);
        let mut r = Reassembler::new(2, 4096);
        r.refuse(&f[0], 0, FirstWent::Dropped);
        assert_eq!(reassemble(&mut r, &f, 5).as_deref(), Some(&datagram[..]));
        // Over IPv6 too.
        let datagram = ipv6_datagram(96);
        let f = ipv6_fragments(&datagram, 48, 7);
        r.refuse(&f[0], 0, FirstWent::Passed);
        assert_eq!(r.offer(&f[1], 0, ROOM), Offer::Refused(Refusal::FirstRefused));
        assert_eq!(reassemble(&mut r, &f, 5).as_deref(), Some(&datagram[..]));
    }

    #[test]
    fn refused_datagrams_leave_the_slots_to_others() {
        let datagram = ipv4_datagram(64, 0, 60);
        let mine = ipv4_fragments(&datagram, 32);
        let mut r = Reassembler::new(2, 4096);
        assert_eq!(r.offer(&mine[0], 0, ROOM), Offer::Held);
        // As many refused datagrams as there are slots, each first fragment then the rest:
        // kept, they would have evicted `mine`.
        for id in 100..102 {
            let f = ipv4_fragments(&ipv4_datagram(96, 0, id), 32);
            r.refuse(&f[0], 1, FirstWent::Passed);
            for later in &f[1..] {
                assert_eq!(r.offer(later, 1, ROOM), Offer::Refused(Refusal::FirstRefused), "{id}");
            }
        }
        assert_eq!((r.held(), r.discarded()), (1, 0));
        let Offer::Whole(done) = r.offer(&mine[1], 2, ROOM) else { panic!("not whole") };
        assert!(r.write(done, &mut [0; 100]).is_some());
        // REFUSED_KEPT refused are remembered, whatever the slots: one more makes room over
        // the one refused longest ago.
        let f: Vec<_> =
            (200..200 + REFUSED_KEPT as u16).map(|id| ipv4_fragments(&ipv4_datagram(96, 0, id), 32)).collect();
        for (n, d) in f.iter().enumerate() {
            r.refuse(&d[0], 3 + n as u64, FirstWent::Dropped);
        }
        assert_eq!(r.offer(&f[0][1], 100, ROOM), Offer::Refused(Refusal::FirstRefused), "the two before made room");
        let more = ipv4_fragments(&ipv4_datagram(96, 0, 300), 32);
        r.refuse(&more[0], 100, FirstWent::Dropped);
        assert_eq!(r.offer(&f[0][1], 100, ROOM), Offer::Held, "the oldest made room");
        assert!(
            f[1..].iter().chain([&more]).all(|d| r.offer(&d[1], 100, ROOM) == Offer::Refused(Refusal::FirstRefused))
        );
    }

    #[test]
    fn a_later_fragment_learns_where_its_refused_first_went_until_a_first_comes_again() {
        let v4 = ipv4_fragments(&ipv4_datagram(96, 0, 70), 32);
        let v6 = ipv6_fragments(&ipv6_datagram(144), 48, 9);
        // No slots, as with reassembly off: the refusals are remembered all the same.
        let mut r = Reassembler::new(0, 4096);
        r.refuse(&v4[0], 0, FirstWent::Passed);
        r.refuse(&v6[0], 0, FirstWent::Dropped);
        assert_eq!(r.refused_first(&v4[1], HOLD_NS), Some(FirstWent::Passed));
        assert_eq!(r.refused_first(&v6[2], 5), Some(FirstWent::Dropped));
        assert_eq!(r.refused_first(&v4[2], HOLD_NS + 1), None, "past the hold");
        assert_eq!(r.offer(&v6[1], 5, ROOM), Offer::Refused(Refusal::FirstRefused));
        // Another datagram's fragments, and a whole packet, are no refused datagram's.
        let other = ipv4_fragments(&ipv4_datagram(96, 0, 71), 32);
        assert_eq!(r.refused_first(&other[1], 5), None);
        assert_eq!(r.refused_first(&ipv4_datagram(96, 0, 70), 5), None);
        // A first fragment taken ends the refusal of its identity (which came round).
        assert_eq!(r.refused_first(&v6[0], 6), None);
        assert_eq!(r.refused_first(&v6[1], 6), None);
        // Refused again, it goes as it went this time.
        r.refuse(&v6[0], 7, FirstWent::Passed);
        assert_eq!(r.refused_first(&v6[1], 7), Some(FirstWent::Passed));
    }

    proptest! {
        /// Any datagram cut at any multiple of 8 and offered in any order, with
        /// duplicates, comes out as it went in.
        #[test]
        fn fragments_in_any_order_with_duplicates_come_out_as_the_datagram(
            data_len in 1usize..3000,
            step in 1usize..200,
            ipv6 in any::<bool>(),
            seed in any::<u64>(),
            dups in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let step = step * 8;
            let (datagram, mut fragments) = if ipv6 {
                let d = ipv6_datagram(data_len);
                let f = ipv6_fragments(&d, step, seed as u32);
                (d, f)
            } else {
                let d = ipv4_datagram(data_len, 0, seed as u16);
                let f = ipv4_fragments(&d, step);
                (d, f)
            };
            prop_assume!(fragments.len() > 1 && fragments.len() <= MAX_PIECES);
            // A seeded shuffle (Fisher-Yates on a xorshift).
            let mut x = seed | 1;
            for i in (1..fragments.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                fragments.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut r = Reassembler::new(4, 4096);
            let mut whole = None;
            for (n, f) in fragments.iter().enumerate() {
                if dups.iter().any(|&d| usize::from(d) % fragments.len() == n) && n + 1 < fragments.len() {
                    prop_assert_eq!(r.offer(f, 0, ROOM), Offer::Held);
                    prop_assert_eq!(r.offer(f, 0, ROOM), Offer::Refused(Refusal::Duplicate));
                    continue;
                }
                match r.offer(f, 0, ROOM) {
                    Offer::Whole(c) => {
                        prop_assert_eq!(n + 1, fragments.len());
                        let mut out = vec![0; 4096];
                        let len = r.write(c, &mut out).expect("fits");
                        whole = Some(out[..len].to_vec());
                    }
                    Offer::Held => prop_assert!(n + 1 < fragments.len()),
                    Offer::Refused(why) => prop_assert!(false, "refused: {:?}", why),
                }
            }
            prop_assert_eq!(whole.as_deref(), Some(&datagram[..]));
        }
    }
}
