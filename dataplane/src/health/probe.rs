//! Writing health probes: the inner ICMP echo reply with its tagged payload, and the
//! probe encapsulated into its tunnel in the worker's spill; and the key the tags are made
//! with.

use std::net::Ipv4Addr;

use gre::icmp::{Echo, ICMPV4_ECHO_REPLY, write_ipv4_echo};

use super::Sent;
use crate::pipeline::TxReason;
use crate::snapshot::health::{PROBE_MAGIC, PROBE_PAYLOAD_LEN};
use crate::snapshot::{Snapshot, Tunnel, TunnelId, TunnelInterface};

/// ICMP identifier of probes.
const PROBE_IDENT: u16 = 0x7464; // "td"

/// Writes probe `seq` of tunnel `t` into `buf`, with `tag` its
/// [`HealthTable::tag`](crate::snapshot::health::HealthTable::tag): the inner IPv4 packet,
/// an ICMP echo reply from the router's side (`peer`) to ours, naming `sender`, this
/// server's backbone address in a soft-unicast fleet (where another server that gets the
/// reply relays it). Returns its length.
pub fn write_probe(
    buf: &mut [u8],
    t: TunnelId,
    (ours, peer): (Ipv4Addr, Ipv4Addr),
    tag: u64,
    seq: u32,
    sender: Option<Ipv4Addr>,
) -> Option<usize> {
    write_ipv4_echo(buf, &probe_echo((ours, peer), seq), &probe_payload(t, tag, seq, sender, 0))
}

/// A probe's payload (as [`PROBE_PAYLOAD_LEN`] lays it out), `padded_len` the whole
/// payload's length in a path MTU probe (0 in a health probe).
pub(super) fn probe_payload(
    t: TunnelId,
    tag: u64,
    seq: u32,
    sender: Option<Ipv4Addr>,
    padded_len: u16,
) -> [u8; PROBE_PAYLOAD_LEN] {
    let mut payload = [0u8; PROBE_PAYLOAD_LEN];
    payload[..8].copy_from_slice(&PROBE_MAGIC);
    payload[8..16].copy_from_slice(&tag.to_be_bytes());
    payload[16..18].copy_from_slice(&t.to_be_bytes());
    payload[18..20].copy_from_slice(&padded_len.to_be_bytes());
    payload[20..24].copy_from_slice(&seq.to_be_bytes());
    payload[24..28].copy_from_slice(&sender.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
    payload
}

/// The echo reply a probe is, from the router's side of the tunnel (`peer`) to ours.
pub(super) fn probe_echo((ours, peer): (Ipv4Addr, Ipv4Addr), seq: u32) -> Echo {
    Echo { kind: ICMPV4_ECHO_REPLY, src: peer, dst: ours, ident: PROBE_IDENT, seq: seq as u16, ttl: 64 }
}

/// Writes tunnel `t`'s probe `seq`, encapsulated, into the next slot of `spill`: `NoRoom`
/// when the spill is full, `Cannot` when the tunnel has no interface or the next hop is
/// unknown.
pub fn spill_probe(
    snap: &Snapshot,
    t: TunnelId,
    seq: u32,
    eth: Option<&gre::EthernetAddrs>,
    spill: &mut crate::pipeline::Spill,
) -> Sent {
    spill_into_tunnel(snap, t, eth, spill, TxReason::HealthProbe, |buf, tunnel, iface| {
        let sender = snap.soft_unicast.as_ref().map(|su| su.backbone);
        write_probe(buf, t, (iface.ours, iface.peer), snap.health.tag(t, &tunnel.name, seq), seq, sender)
    })
}

/// Writes an inner packet with `write` (given the buffer past the headroom, it returns the
/// packet's length) into the next slot of `spill`, encapsulated into tunnel `t`, sent as
/// `reason`: what [`spill_probe`] says of it.
pub(super) fn spill_into_tunnel(
    snap: &Snapshot,
    t: TunnelId,
    eth: Option<&gre::EthernetAddrs>,
    spill: &mut crate::pipeline::Spill,
    reason: TxReason,
    write: impl FnOnce(&mut [u8], &Tunnel, TunnelInterface) -> Option<usize>,
) -> Sent {
    use crate::pipeline::HEADROOM;
    let (Some(tunnel), Some(eth)) = (snap.tunnels.get(usize::from(t)), eth) else { return Sent::Cannot };
    let Some(iface) = tunnel.interface else { return Sent::Cannot };
    let Some(slot) = spill.next_slot() else { return Sent::NoRoom };
    let Some(len) = slot.get_mut(HEADROOM..).and_then(|b| write(b, tunnel, iface)) else { return Sent::Cannot };
    match gre::encap_gre(slot, HEADROOM, len, gre::packet::PROTO_IPV4, 0, &tunnel.gre, eth) {
        Ok(start) => {
            spill.push(start, HEADROOM + len - start, reason, Some(t));
            Sent::Yes
        }
        Err(_) => Sent::Cannot,
    }
}

/// A random key for probe tags, from the kernel.
pub fn random_key() -> [u64; 2] {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => [
            u64::from_ne_bytes(b[..8].try_into().unwrap_or_default()),
            u64::from_ne_bytes(b[8..].try_into().unwrap_or_default()),
        ],
        Err(e) => {
            // Guessable: another customer's router could then forge this one's replies.
            log_line!(
                "transitd: /dev/urandom: {e}; health probe tags are keyed by the clock and the process id, \
                 which a router could guess"
            );
            [crate::io::wall_clock_ns(), u64::from(std::process::id())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{reply, snap};

    #[test]
    fn forged_misdirected_or_stale_replies_do_not_count() {
        let s = snap("");
        s.health.set_key([77, 78]);
        let good = reply(&s, 0, 5);
        let mut wrong_tag = good.clone();
        wrong_tag[15] ^= 1;
        assert!(!s.health.record_reply(0, &s.tunnels[0].name, &wrong_tag));
        assert!(!s.health.record_reply(1, &s.tunnels[1].name, &good), "the reply names tunnel 0");
        assert!(!s.health.record_reply(0, &s.tunnels[0].name, &good[..20]));
        // Another tunnel's router sees its own probes' tags, not this tunnel's: one of its
        // replies relabelled for tunnel 0, or given a later sequence number, fails the tag.
        let mut relabelled = good.clone();
        relabelled[8..16].copy_from_slice(&s.health.tag(1, "unprobed", 5).to_be_bytes());
        assert!(!s.health.record_reply(0, &s.tunnels[0].name, &relabelled));
        let mut later = good.clone();
        later[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(!s.health.record_reply(0, &s.tunnels[0].name, &later));
        assert!(!s.health.answered(0, 5));
        assert!(s.health.record_reply(0, &s.tunnels[0].name, &good));
        assert!(s.health.answered(0, 5));
        // A late reply to an earlier probe is ours but answers nothing new.
        assert!(s.health.record_reply(0, &s.tunnels[0].name, &reply(&s, 0, 4)));
        assert!(!s.health.answered(0, 6));
        assert_eq!(s.health.replied(0), 5);
    }
}
