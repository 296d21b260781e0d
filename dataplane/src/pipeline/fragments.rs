//! Owners of fragmented return traffic. Only a datagram's first fragment carries the port
//! that says which server of the fleet owns it; a worker remembers, per datagram, the owner
//! its first fragment went to, so that the later fragments follow it rather than going
//! where the address's data centre as a whole would (where the owner's kernel never sees
//! them and the datagram is lost).
//!
//! A datagram is its source, destination, protocol and identification (RFC 791 §3.2), kept
//! as a 64-bit hash under a per-process key, so that senders cannot aim at one set. Fixed
//! memory, 4-way set-associative; the way seen longest ago makes room, and an entry is good
//! for 30 seconds, the time Linux keeps an incomplete datagram (`ipfrag_time`).
//!
//! The XDP program remembers the same for the datagrams it sees first (`fragment_owners` in
//! `bpf/src/bpf/maps.h`): those whose first fragment is this server's are delivered there,
//! and their later fragments with them; the rest come here. A later fragment that arrives
//! before its first, or on another queue than its first (NICs hash fragments by address, so
//! rarely), still goes where the address's data centre takes it.

use classifier::{Key, limit::mix};
use portslice::Owner;

use super::flows::{age, tick};
use super::parse::IpFrame;

/// Ways per set.
const WAYS: usize = 4;
/// Datagrams a worker remembers.
pub const ENTRIES: usize = 4096;
/// How long a first fragment's owner holds for its datagram: Linux's `ipfrag_time`.
const HOLD_NS: u64 = 30_000_000_000;
/// `Entry::owner`'s server half for an address's data centre as a whole.
const UNSLICED: u32 = 0xffff;

#[derive(Clone, Copy, Debug, Default, bytemuck::Zeroable)]
struct Entry {
    /// The datagram's hash with the low bit set (0: free).
    tag: u64,
    /// When its first fragment was seen (flow-table ticks).
    seen: u32,
    /// Data centre in the upper 16 bits, server (or [`UNSLICED`]) in the lower.
    owner: u32,
}

/// Where each datagram's first fragment went, for its later fragments.
#[derive(Clone, Debug)]
pub struct FragmentOwners {
    entries: Box<[Entry]>,
}

impl FragmentOwners {
    /// Room for `entries` datagrams, rounded up to whole sets (0: none kept).
    pub fn new(entries: usize) -> FragmentOwners {
        let size = if entries == 0 { 0 } else { entries.max(WAYS).next_power_of_two() };
        FragmentOwners { entries: bytemuck::zeroed_slice_box(size) }
    }

    /// Datagrams it has room for.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Remembers `owner` for `datagram` (see [`datagram`]), seen at `now_ns`. An address
    /// that is no egress address is not remembered.
    pub fn remember(&mut self, datagram: u64, owner: Owner, now_ns: u64) {
        let packed = match owner {
            Owner::Server { dc, server } => u32::from(dc) << 16 | u32::from(server),
            Owner::Unsliced { dc } => u32::from(dc) << 16 | UNSLICED,
            Owner::NotEgress => return,
        };
        let Some(set) = self.set(datagram) else { return };
        let (ways, tag, now) = (&mut self.entries[set], datagram | 1, tick(now_ns));
        let i = ways
            .iter()
            .position(|w| w.tag == tag || w.tag == 0)
            .unwrap_or_else(|| (0..WAYS).max_by_key(|&i| age(ways[i].seen, now)).unwrap_or(0));
        ways[i] = Entry { tag, seen: now, owner: packed };
    }

    /// The owner remembered for `datagram`, if its first fragment was seen within the hold.
    pub fn owner(&self, datagram: u64, now_ns: u64) -> Option<Owner> {
        let (tag, now) = (datagram | 1, tick(now_ns));
        let e = self.entries[self.set(datagram)?].iter().find(|w| w.tag == tag && age(w.seen, now) <= tick(HOLD_NS))?;
        let dc = (e.owner >> 16) as u16;
        Some(match e.owner & 0xffff {
            UNSLICED => Owner::Unsliced { dc },
            server => Owner::Server { dc, server: server as u16 },
        })
    }

    /// The ways `datagram` may be kept in.
    fn set(&self, datagram: u64) -> Option<std::ops::Range<usize>> {
        if self.entries.is_empty() {
            return None;
        }
        let first = (mix(datagram) as usize) & (self.entries.len() - 1) & !(WAYS - 1);
        Some(first..first + WAYS)
    }
}

/// The keyed hash naming the IPv4 datagram `ip` is a fragment of (`data` from its link
/// header): source, destination, protocol and identification.
pub fn datagram(data: &[u8], key: &Key, ip: &IpFrame) -> u64 {
    let at = ip.l3_start + 4;
    let id = data.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    // The header's protocol field, as RFC 791 and the XDP program name a datagram: not the
    // transport's, which differs between a first fragment under AH and the later ones.
    let protocol = data.get(ip.l3_start + 9).copied().unwrap_or(0);
    let addrs = key.src_addr() >> 96 << 32 | key.dst_addr() >> 96;
    super::tcp::keyed(addrs, u64::from(id) << 8 | u64::from(protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const A2: Owner = Owner::Server { dc: 0, server: 1 };
    const B: Owner = Owner::Unsliced { dc: 1 };

    #[test]
    fn a_datagram_keeps_its_first_fragments_owner_for_the_hold() {
        let mut t = FragmentOwners::new(ENTRIES);
        assert_eq!(t.owner(7, 0), None, "nothing seen");
        t.remember(7, A2, S);
        t.remember(9, B, S);
        assert_eq!(t.owner(7, 2 * S), Some(A2));
        assert_eq!(t.owner(9, 2 * S), Some(B));
        assert_eq!(t.owner(7, S + HOLD_NS), Some(A2), "within the hold");
        assert_eq!(t.owner(7, S + HOLD_NS + S), None, "past it");
        // A datagram whose identification came round again takes the new first's owner.
        t.remember(7, B, 40 * S);
        assert_eq!(t.owner(7, 41 * S), Some(B));
        t.remember(11, Owner::NotEgress, S);
        assert_eq!(t.owner(11, S), None, "no egress address, nothing kept");
    }

    #[test]
    fn a_flood_of_datagrams_evicts_the_oldest_and_never_grows() {
        let mut t = FragmentOwners::new(ENTRIES);
        t.remember(1, A2, 0);
        for d in 2..(ENTRIES as u64 * 8) {
            t.remember(d << 1, B, S);
        }
        assert_eq!(t.capacity(), ENTRIES);
        assert_eq!(t.owner(1, S), None, "the oldest made room");
        let kept = (2..(ENTRIES as u64 * 8)).filter(|d| t.owner(d << 1, S).is_some()).count();
        assert_eq!(kept, ENTRIES, "every way holds a datagram");
    }

    #[test]
    fn no_room_keeps_nothing() {
        let mut t = FragmentOwners::new(0);
        t.remember(1, A2, 0);
        assert_eq!(t.owner(1, 0), None);
    }
}
