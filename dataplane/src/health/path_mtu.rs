//! Path MTU probes: checking what a Packet Too Big about our GRE said before believing it
//! for ten minutes. Its quote holds nothing secret (our anycast address, the router's, the
//! key), so anyone can send one, and RFC 8899 §4.6.2 has a PTB "not used directly" to set
//! the size; RFC 9000 §14.2.1 lets a reduction be provisional until confirmed.
//!
//! The pipeline's `pmtu` stage still lowers the tunnel at once, as a host does: a true
//! error means packets of the old size are being lost now. The prober then sends the
//! tunnel's router a health probe padded to the MTU the tunnel had before (its inner packet
//! that long, the outer one with DF over IPv4, as every encapsulated packet has it), tagged
//! as a probe of that length. The router routes the inner packet back to us through the
//! tunnel as it does a health probe, padding and all; a whole answer shows the path carried
//! that size after the error, which is then raised back (`transitd_path_mtu_errors_disproved`).
//! No answer, and the lowered MTU stands: a router that cannot send the size back (its
//! tunnel's MTU, the return path) looks like a true error, the safe side. In a soft-unicast
//! fleet the answer comes to whichever server is nearest the router, which relays it whole
//! to this one as it does a health probe's reply, if the backbone carries it; else it is
//! lost, as on such a return path.
//!
//! Once an error about a tunnel was disproved, the next ones for the hold's ten minutes
//! are doubted ([`HealthTable::path_mtu_error`]): each only claims its MTU, the size in
//! force is probed, and the claim is taken only if that goes unanswered. Forged errors sent
//! without end so hold a tunnel lower once, not between every two probes.
//!
//! What the probes cost an attacker's flood of errors: one probe in flight a tunnel, one
//! every [`PATH_MTU_PROBE_SPACING_NS`] a tunnel, and [`PATH_MTU_PROBES_A_LOOK`] a look
//! (about a second) over every tunnel, taken in turn.

use std::net::Ipv4Addr;

use gre::icmp::{ICMP_HEADER_LEN, write_ipv4_echo_padded};
use gre::ip::IPV4_HEADER_LEN;

use super::probe::{probe_echo, probe_payload, spill_into_tunnel};
use super::{Prober, Sent};
use crate::pipeline::{Spill, TxReason};
use crate::snapshot::health::{HealthTable, PROBE_PAYLOAD_LEN};
use crate::snapshot::{Snapshot, Tunnel, TunnelId};

/// Between two path MTU probes of one tunnel (RFC 8899 §4.6.2 asks a PL to guard against a
/// flood of PTBs): an attacker sending errors without end gets one every 10 s a tunnel.
pub const PATH_MTU_PROBE_SPACING_NS: u64 = 10_000_000_000;

/// Path MTU probes sent in one look at the path MTUs, over all tunnels: 64 of 1500 bytes a
/// second is under a megabit, whatever number of tunnels errors name.
const PATH_MTU_PROBES_A_LOOK: usize = 64;

/// A probe's IPv4 and ICMP headers, in front of its payload.
const PROBE_HEADERS_LEN: usize = IPV4_HEADER_LEN + ICMP_HEADER_LEN;

/// Writes path MTU probe `seq` of tunnel `t`, named `name`, into `buf`: a health probe
/// ([`super::write_probe`]) whose inner packet is `len` bytes (no fewer than a health
/// probe's), padded with zeros, its payload's length in bytes 18..20 and tagged with it
/// ([`HealthTable::path_mtu_probe_tag`]), naming `sender` as a health probe does: in a
/// soft-unicast fleet another server its answer reaches relays it whole
/// (`egress::relay_probe_reply`) where the backbone carries that size, else drops it, which
/// leaves the lowered MTU standing. Returns its length.
pub fn write_path_mtu_probe(
    buf: &mut [u8],
    health: &HealthTable,
    (t, name): (TunnelId, &str),
    ends: (Ipv4Addr, Ipv4Addr),
    seq: u32,
    len: usize,
    sender: Option<Ipv4Addr>,
) -> Option<usize> {
    let len = len.max(PROBE_HEADERS_LEN + PROBE_PAYLOAD_LEN);
    let payload_len = u16::try_from(len - PROBE_HEADERS_LEN).ok()?;
    let tag = health.path_mtu_probe_tag(t, name, seq, payload_len);
    write_ipv4_echo_padded(buf, &probe_echo(ends, seq), &probe_payload(t, tag, seq, sender, payload_len), len)
}

/// Writes tunnel `t`'s path MTU probe `seq` of `mtu` bytes inside, encapsulated, into the
/// next slot of `spill`, as [`super::spill_probe`] does a health probe (`Cannot` too when
/// the spill's frames are smaller).
pub fn spill_path_mtu_probe(
    snap: &Snapshot,
    t: TunnelId,
    seq: u32,
    mtu: u32,
    eth: Option<&gre::EthernetAddrs>,
    spill: &mut Spill,
) -> Sent {
    spill_into_tunnel(snap, t, eth, spill, TxReason::PathMtuProbe, |buf, tunnel, iface| {
        let (ends, sender) = ((iface.ours, iface.peer), snap.soft_unicast.as_ref().map(|su| su.backbone));
        write_path_mtu_probe(buf, &snap.health, (t, &tunnel.name), ends, seq, mtu as usize, sender)
    })
}

/// One tunnel's path MTU probing: the size an answer would bring back, and its probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PathMtuProbe {
    /// The MTU inside to probe, the one the tunnel had before errors lowered it; 0: none
    /// wanted.
    size: u32,
    /// The MTU held when the probe was wanted: one lower when no answer came was set by
    /// another error, to be probed in turn.
    lowered: u32,
    /// Sequence number of the last sent (numbered apart from health probes; 0: none yet).
    seq: u32,
    /// The last sent awaits its answer or its timeout.
    in_flight: bool,
    /// When it was sent.
    sent_ns: u64,
    /// None is sent before.
    next_ns: u64,
    /// The probe is of the size in force, for a doubted error's claim
    /// ([`HealthTable::path_mtu_error`]): unanswered, the claim is believed.
    claim: bool,
    /// A claim was just believed, its probe unanswered: the lowering it makes is not probed
    /// again at the same size.
    believed: bool,
}

impl PathMtuProbe {
    /// An error took the tunnel from `before` to `held` (inside): `before` is to be probed,
    /// or the larger size already wanted. While one is in flight its judging looks at what
    /// holds then.
    pub(super) fn want(&mut self, held: u32, before: u32) {
        if std::mem::take(&mut self.believed) {
            return;
        }
        if !self.in_flight {
            self.size = self.size.max(before);
            self.lowered = held;
        }
    }

    /// A doubted error claimed `claimed` (inside) while `in_force` holds: `in_force` is to be
    /// probed before the claim is believed, unless a probe is wanted or in flight already.
    /// Returns whether it is to be (or is being) probed.
    pub(super) fn want_claim(&mut self, claimed: u32, in_force: u32) -> bool {
        if self.size == 0 && !self.in_flight {
            (self.size, self.lowered, self.claim) = (in_force, claimed, true);
        }
        self.claim
    }

    /// A probe is wanted or in flight: the looks go on until it is judged.
    pub(super) fn is_busy(&self) -> bool {
        self.size != 0 || self.in_flight
    }

    /// Nothing holds the tunnel lower any more: nothing to disprove (a claim's probe stays).
    pub(super) fn forget(&mut self) {
        if !self.claim {
            (self.size, self.lowered, self.in_flight) = (0, 0, false);
        }
    }

    /// The probe is judged, or given up (its tunnel no longer health-checked).
    pub(super) fn done(&mut self) {
        (self.size, self.lowered, self.in_flight, self.claim) = (0, 0, false, false);
    }

    /// The probe in flight went to the spill but not onto the wire: sent again at the next
    /// look.
    pub(super) fn unsent(&mut self) {
        if self.in_flight {
            self.in_flight = false;
            self.next_ns = self.sent_ns;
        }
    }

    /// The tunnel's id changed in a reload: the probe in flight names the old one, and its
    /// answer will not verify. Sent again when the spacing allows.
    pub(super) fn moved(&mut self) {
        self.in_flight = false;
    }

    /// Judges the probe in flight of tunnel `t` at `now_ns`, once answered or timed out (the
    /// health probes' `timeout`). Answered, the path MTU held below its size is raised back
    /// to it: returns whether one was (an error disproved). Unanswered, the lowered MTU
    /// stands.
    pub(super) fn judge(&mut self, snap: &Snapshot, t: &Tunnel, now_ns: u64) -> bool {
        if !self.in_flight {
            return false;
        }
        let answered = snap.health.path_mtu_probe_answered(t.id, self.seq);
        if !answered && now_ns < self.sent_ns.saturating_add(snap.health_config.timeout_ns) {
            return false;
        }
        let (size, lowered, claim) = (self.size, self.lowered, self.claim);
        self.done();
        if claim {
            // The size in force came back: the claim was false. Unanswered: believed.
            self.believed = snap.health.settle_path_mtu_claim(t.id, !answered, now_ns);
            if answered {
                snap.health.doubt_path_mtu_errors(t.id, now_ns);
            }
            return answered;
        }
        if answered {
            let disproved = snap.health.raise_path_mtu(t.id, (size < t.mtu).then_some(size), now_ns);
            if disproved {
                snap.health.doubt_path_mtu_errors(t.id, now_ns);
            }
            return disproved;
        }
        // An error that came while it was in flight took the tunnel lower still: the size
        // this probe stood for is probed next.
        if let Some(held) = snap.health.path_mtu(t.id, now_ns).filter(|&held| held < lowered) {
            self.want(held, lowered);
        }
        false
    }

    /// Wanted, and none in flight nor sent within the spacing.
    fn is_due(&self, now_ns: u64) -> bool {
        self.size != 0 && !self.in_flight && now_ns >= self.next_ns
    }

    /// Sends the wanted probe of tunnel `t` through `send`, and says how that went.
    fn send(&mut self, t: TunnelId, now_ns: u64, send: &mut impl FnMut(TunnelId, u32, u32) -> Sent) -> Sent {
        let seq = self.seq.wrapping_add(1).max(1);
        let sent = send(t, seq, self.size);
        match sent {
            Sent::Yes => {
                (self.seq, self.in_flight, self.sent_ns) = (seq, true, now_ns);
                self.next_ns = now_ns.saturating_add(PATH_MTU_PROBE_SPACING_NS);
            }
            Sent::NoRoom => {}
            // No next hop, or a frame too small for the size: tried again after the spacing.
            Sent::Cannot => self.next_ns = now_ns.saturating_add(PATH_MTU_PROBE_SPACING_NS),
        }
        sent
    }
}

impl Prober {
    /// Sends the path MTU probes due at `now_ns`, up to [`PATH_MTU_PROBES_A_LOOK`] and the
    /// spill's room, from the tunnel the last look stopped at.
    pub(super) fn send_path_mtu_probes(
        &mut self,
        snap: &Snapshot,
        now_ns: u64,
        send: &mut impl FnMut(TunnelId, u32, u32) -> Sent,
    ) {
        let n = self.path_mtu_probes.len().min(snap.tunnels.len());
        let mut budget = PATH_MTU_PROBES_A_LOOK;
        for k in 0..n {
            let i = (self.path_mtu_probes_from + k) % n;
            let checked = snap.tunnels[i].interface.is_some();
            let Some(probing) = self.path_mtu_probes.get_mut(i).filter(|p| checked && p.is_due(now_ns)) else {
                continue;
            };
            if budget == 0 {
                self.path_mtu_probes_from = i; // first at the next look
                return;
            }
            match probing.send(i as TunnelId, now_ns, &mut *send) {
                Sent::NoRoom => {
                    self.path_mtu_probes_from = i;
                    return;
                }
                // A claim not probed is believed: the safe side, as an unanswered one.
                Sent::Cannot if probing.claim => {
                    probing.done();
                    snap.health.settle_path_mtu_claim(i as TunnelId, true, now_ns);
                }
                _ => {}
            }
            budget -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{a_thousand_tunnels, snap};
    use super::*;

    const S: u64 = 1_000_000_000;

    /// The path MTU probes one look sends, as (tunnel, seq, size), and the errors it found
    /// disproved.
    fn look(p: &mut Prober, s: &Snapshot, now: u64) -> (Vec<(TunnelId, u32, u32)>, u64) {
        let mut sent = Vec::new();
        let disproved = p.path_mtus(
            s,
            now,
            |t, seq, mtu| {
                sent.push((t, seq, mtu));
                Sent::Yes
            },
            |_, _| {},
        );
        (sent, disproved)
    }

    /// The router's answer to path MTU probe `seq` of `mtu` bytes of tunnel 0: the payload
    /// of the inner packet it sends back, all of it (`cut` bytes short of it).
    fn answer(s: &Snapshot, seq: u32, mtu: u32, cut: usize) -> Vec<u8> {
        let t = &s.tunnels[0];
        let iface = t.interface.unwrap();
        let mut buf = vec![0xa5u8; 9000];
        let ends = (iface.ours, iface.peer);
        let len = write_path_mtu_probe(&mut buf, &s.health, (0, &t.name), ends, seq, mtu as usize, None);
        assert_eq!(len, Some(mtu as usize), "the inner packet is the size probed");
        buf[PROBE_HEADERS_LEN..mtu as usize - cut].to_vec()
    }

    /// A forged error takes the probed tunnel to the IPv4 floor (552 less 24 bytes of
    /// headers); a probe of its `mtu` (1476) goes at the next look, and its router's whole
    /// answer brings 1476 back. Half an answer, a health probe's reply, or one made with
    /// another length, does not.
    #[test]
    fn an_answered_path_mtu_probe_disproves_the_error() {
        let s = snap("");
        s.health.set_key([11, 12]);
        let mut p = Prober::default();
        p.rebind(None, &s);
        assert!(s.health.lower_path_mtu(0, 528, S));
        assert_eq!(look(&mut p, &s, 2 * S), (vec![(0, 1, 1476)], 0));
        let name = s.tunnels[0].name.clone();
        assert!(!s.health.record_reply(0, &name, &answer(&s, 1, 1476, 1)), "cut short: its padding did not all come");
        assert!(s.health.record_reply(0, &name, &super::super::tests::reply_to_probe_of(&s, 0, 0, 1)));
        let mut relabelled = answer(&s, 1, 1476, 0);
        relabelled.truncate(1000);
        relabelled[18..20].copy_from_slice(&1000u16.to_be_bytes());
        assert!(!s.health.record_reply(0, &name, &relabelled), "the tag covers the length");
        assert!(!s.health.path_mtu_probe_answered(0, 1), "a health probe's reply answers no path MTU probe");
        assert!(s.health.record_reply(0, &name, &answer(&s, 1, 1476, 0)));
        assert_eq!(look(&mut p, &s, 3 * S), (vec![], 1));
        assert_eq!(s.health.path_mtu(0, 3 * S), None, "its own mtu again");
    }

    /// With no answer the lowered MTU stands, and nothing more is sent for it.
    #[test]
    fn unanswered_the_lowered_mtu_stands() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        assert!(s.health.lower_path_mtu(0, 528, S));
        assert_eq!(look(&mut p, &s, 2 * S).0, [(0, 1, 1476)]);
        for now in 3..60 {
            assert_eq!(look(&mut p, &s, now * S), (vec![], 0), "at {now} s");
        }
        assert_eq!(s.health.path_mtu(0, 60 * S), Some(528));
    }

    /// An error a second for a minute, each probe answered: one probe every ten seconds, and
    /// each answer disproves the errors that came since the last.
    #[test]
    fn errors_without_end_get_a_probe_each_ten_seconds() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let (mut sent, mut disproved) = (Vec::new(), 0);
        for now in 1..61 {
            s.health.lower_path_mtu(0, 528, now * S);
            let (probes, n) = look(&mut p, &s, now * S + S / 2);
            disproved += n;
            for &(t, seq, mtu) in &probes {
                assert!(s.health.record_reply(t, &s.tunnels[0].name, &answer(&s, seq, mtu, 0)));
                sent.push(now);
            }
        }
        assert_eq!(sent, [1, 11, 21, 31, 41, 51], "one every ten seconds");
        assert_eq!(disproved, 6);
    }

    /// A probe in flight when a second error takes the tunnel lower still, and unanswered
    /// (the first was true): the size the first error left is probed next, and answered.
    #[test]
    fn an_error_on_top_of_a_true_one_is_probed_at_the_size_the_true_one_left() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        assert!(s.health.lower_path_mtu(0, 1376, S));
        assert_eq!(look(&mut p, &s, 2 * S).0, [(0, 1, 1476)]);
        assert!(s.health.lower_path_mtu(0, 528, 2 * S + 1));
        assert_eq!(look(&mut p, &s, 3 * S), (vec![], 0), "one in flight, unanswered: 1476 does not pass");
        assert_eq!(look(&mut p, &s, 12 * S).0, [(0, 2, 1376)], "ten seconds on");
        assert!(s.health.record_reply(0, &s.tunnels[0].name, &answer(&s, 2, 1376, 0)));
        assert_eq!(look(&mut p, &s, 13 * S), (vec![], 1));
        assert_eq!(s.health.path_mtu(0, 13 * S), Some(1376), "the true error's MTU, for the rest of its hold");
    }

    /// Errors about a thousand tunnels: the looks take them in turn, 64 a look, so every
    /// one is probed within its spacing's few looks, not only the first in the table.
    #[test]
    fn the_looks_take_the_tunnels_in_turn() {
        let s = snap(&a_thousand_tunnels());
        let mut p = Prober::default();
        p.rebind(None, &s);
        for t in 0..s.tunnels.len() as TunnelId {
            s.health.lower_path_mtu(t, 528, S);
        }
        let mut probed = std::collections::BTreeSet::new();
        for now in 2..40 {
            let (sent, _) = look(&mut p, &s, now * S);
            assert!(sent.len() <= PATH_MTU_PROBES_A_LOOK, "{} at {now} s", sent.len());
            probed.extend(sent.into_iter().map(|(t, ..)| t));
        }
        let checked = s.tunnels.iter().filter(|t| t.interface.is_some()).count();
        assert_eq!(probed.len(), checked, "every health-checked tunnel");
    }

    /// Once an error was disproved, the next are claims: not believed until a probe of the
    /// size in force goes unanswered. Answered, nothing is lowered; unanswered, the claim
    /// (the lowest made) is.
    #[test]
    fn after_a_disproved_error_the_next_are_probed_before_they_are_believed() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let name = s.tunnels[0].name.clone();
        assert!(s.health.path_mtu_error(0, 528, S), "not doubted yet: lowered at once");
        assert_eq!(look(&mut p, &s, 2 * S).0, [(0, 1, 1476)]);
        assert!(s.health.record_reply(0, &name, &answer(&s, 1, 1476, 0)));
        assert_eq!(look(&mut p, &s, 3 * S), (vec![], 1));
        assert_eq!(s.health.path_mtu(0, 3 * S), None);
        // Doubted now: claimed, not lowered, and probed when the spacing allows.
        assert!(!s.health.path_mtu_error(0, 1000, 4 * S));
        assert!(!s.health.path_mtu_error(0, 600, 4 * S));
        assert_eq!(s.health.path_mtu(0, 4 * S), None, "a doubted error lowers nothing");
        assert_eq!(look(&mut p, &s, 5 * S), (vec![], 0), "ten seconds after the last probe");
        assert_eq!(look(&mut p, &s, 12 * S).0, [(0, 2, 1476)], "the size in force");
        assert!(s.health.record_reply(0, &name, &answer(&s, 2, 1476, 0)));
        assert_eq!(look(&mut p, &s, 13 * S), (vec![], 1), "disproved in turn");
        assert_eq!((s.health.path_mtu(0, 13 * S), s.health.path_mtu_claim(0)), (None, None));
        // Unanswered: the lowest claim is believed once the probe times out.
        assert!(!s.health.path_mtu_error(0, 900, 14 * S));
        assert_eq!(look(&mut p, &s, 22 * S).0, [(0, 3, 1476)]);
        let timeout = s.health_config.timeout_ns;
        assert_eq!(s.health.path_mtu(0, 22 * S + timeout / 2), None, "while the probe is out");
        assert_eq!(look(&mut p, &s, 23 * S + timeout), (vec![], 0));
        assert_eq!(s.health.path_mtu(0, 23 * S + timeout), Some(900));
        for now in 24..40 {
            assert_eq!(look(&mut p, &s, now * S), (vec![], 0), "1476 went unanswered: not probed again at {now} s");
        }
    }

    /// A doubted error's claim made just before a reload is probed after it, and believed
    /// unanswered. The reload's table had the claim but not the old table's mark: the
    /// prober, nothing else held, looked no more, and the tunnel's errors (none lower than
    /// the claim) were neither probed nor believed until the doubt lapsed.
    #[test]
    fn a_claim_made_just_before_a_reload_is_probed_after_it() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let name = s.tunnels[0].name.clone();
        assert!(s.health.path_mtu_error(0, 528, S));
        assert_eq!(look(&mut p, &s, 2 * S).0, [(0, 1, 1476)]);
        assert!(s.health.record_reply(0, &name, &answer(&s, 1, 1476, 0)));
        assert_eq!(look(&mut p, &s, 3 * S), (vec![], 1));
        assert!(!s.health.path_mtu_error(0, 900, 4 * S), "doubted: claimed");
        let mut new = snap("");
        new.take_over_from(&s);
        p.rebind(Some(&s), &new);
        assert_eq!(look(&mut p, &new, 12 * S).0, [(0, 2, 1476)], "the size in force, probed");
        let timeout = new.health_config.timeout_ns;
        assert_eq!(look(&mut p, &new, 13 * S + timeout), (vec![], 0));
        assert_eq!(new.health.path_mtu(0, 13 * S + timeout), Some(900), "unanswered: believed");
    }

    /// An error a second for a minute, forged, every probe answered: once the first is
    /// disproved, no error lowers the tunnel again (it was lower until then, not nine seconds
    /// in ten), and each probe disproves the claims since the last.
    #[test]
    fn forged_errors_without_end_hold_the_tunnel_lower_once() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let (mut lower, mut disproved) = (Vec::new(), 0);
        for now in 1..61 {
            s.health.path_mtu_error(0, 528, now * S);
            if s.health.path_mtu(0, now * S).is_some() {
                lower.push(now);
            }
            let (probes, n) = look(&mut p, &s, now * S + S / 2);
            disproved += n;
            for &(t, seq, mtu) in &probes {
                assert_eq!(mtu, 1476);
                assert!(s.health.record_reply(t, &s.tunnels[0].name, &answer(&s, seq, mtu, 0)));
            }
        }
        // The first error's hold lasts until the look that judges its probe's answer.
        assert_eq!(lower, [1, 2], "lowered by the first error only");
        assert_eq!(disproved, 6, "a probe each ten seconds, each answered");
    }
}
