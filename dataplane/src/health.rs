//! Tunnel health, as Magic Transit checks it: through every tunnel that has an `interface`,
//! a GRE-encapsulated ICMP echo reply from the router's side of the tunnel to ours. The
//! router decapsulates it and routes it back to us through the same tunnel (its policy
//! route for the tunnel's /31), so a probe that returns proves the tunnel works both ways.
//!
//! Two halves share a [`HealthTable`](crate::snapshot::health::HealthTable) inside each
//! snapshot (data only, in `snapshot/health.rs`):
//! - the [`Prober`], run by one worker, sends each tunnel's probes on its schedule and
//!   decides up and down from the replies (`down_after` misses, `up_after` answers in a
//!   row; while a tunnel's state is in doubt it is probed every `timeout` rather than every
//!   `interval`, so a dead tunnel is down within about `interval + down_after · timeout`);
//! - the decapsulation stage, on any worker, records each reply it recognises
//!   (`HealthTable::record_reply`); the route stage reads `HealthTable::is_up`.
//!
//! Both are single relaxed atomics per tunnel: no lock, and no write on the forwarding path.

use std::net::Ipv4Addr;

use gre::icmp::{Echo, ICMPV4_ECHO_REPLY, write_ipv4_echo};

use crate::snapshot::health::{PROBE_MAGIC, PROBE_PAYLOAD_LEN};
use crate::snapshot::{HealthConfig, Snapshot, TunnelId};

/// ICMP identifier of probes.
const PROBE_IDENT: u16 = 0x7464; // "td"

/// Writes a probe for tunnel `t` (sequence `seq`) into `buf`: the inner IPv4 packet, an
/// ICMP echo reply from the router's side (`peer`) to ours. Returns its length.
pub fn write_probe(buf: &mut [u8], t: TunnelId, ours: Ipv4Addr, peer: Ipv4Addr, nonce: u64, seq: u32) -> Option<usize> {
    let mut payload = [0u8; PROBE_PAYLOAD_LEN];
    payload[..8].copy_from_slice(&PROBE_MAGIC);
    payload[8..16].copy_from_slice(&nonce.to_be_bytes());
    payload[16..18].copy_from_slice(&t.to_be_bytes());
    payload[20..24].copy_from_slice(&seq.to_be_bytes());
    let echo = Echo { kind: ICMPV4_ECHO_REPLY, src: peer, dst: ours, ident: PROBE_IDENT, seq: seq as u16, ttl: 64 };
    write_ipv4_echo(buf, &echo, &payload)
}

/// One tunnel's probe schedule and recent results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProbeState {
    /// Sequence number of the last probe sent (0: none yet).
    seq: u32,
    /// The last probe awaits its reply or its timeout.
    pending: bool,
    /// When it was sent.
    sent_ns: u64,
    /// When the next probe is due.
    next_ns: u64,
    /// Answered probes in a row.
    answered: u32,
    /// Missed probes in a row.
    missed: u32,
}

/// A tunnel whose state the prober just changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The tunnel.
    pub tunnel: TunnelId,
    /// Its new state.
    pub up: bool,
}

/// Sends probes and judges replies, for one snapshot's tunnels (run by one worker).
#[derive(Debug, Default)]
pub struct Prober {
    states: Vec<ProbeState>,
}

impl Prober {
    /// A prober for `snap`, keeping the schedule of tunnels it already probed under `old`.
    pub fn rebind(&mut self, old: Option<&Snapshot>, snap: &Snapshot) {
        let mut states = vec![ProbeState::default(); snap.tunnels.len()];
        if let Some(old) = old {
            let old_index: std::collections::HashMap<&str, usize> =
                old.tunnels.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
            for (t, tunnel) in snap.tunnels.iter().enumerate() {
                if let Some(&o) = old_index.get(tunnel.name.as_str()) {
                    states[t] = self.states.get(o).copied().unwrap_or_default();
                    // Tunnel ids may have changed: the probe in flight names the old one.
                    states[t].pending = false;
                }
            }
        }
        self.states = states;
    }

    /// At time `now_ns`: judges each probe that was answered or whose timeout passed, and
    /// calls `send(tunnel, seq)` for each probe due. A tunnel in doubt (a miss while up, an
    /// answer while down) is probed again at once; a settled one every `interval`. A probe
    /// `send` could not send (no next hop yet, no room) is not judged: it is tried again
    /// after `timeout`.
    pub fn tick(
        &mut self,
        snap: &Snapshot,
        cfg: &HealthConfig,
        now_ns: u64,
        mut send: impl FnMut(TunnelId, u32) -> bool,
        mut changed: impl FnMut(Change),
    ) {
        for (i, tunnel) in snap.tunnels.iter().enumerate() {
            let Some(s) = self.states.get_mut(i) else { break };
            if tunnel.interface.is_none() {
                continue;
            }
            let t = i as TunnelId;
            if s.pending {
                let answered = snap.health.replied(t) >= s.seq;
                if !answered && now_ns < s.sent_ns.saturating_add(cfg.timeout_ns) {
                    continue;
                }
                s.pending = false;
                if answered {
                    s.answered = s.answered.saturating_add(1);
                    s.missed = 0;
                } else {
                    s.missed = s.missed.saturating_add(1);
                    s.answered = 0;
                }
                let up = snap.health.is_up(t);
                if (up && s.missed >= cfg.down_after) || (!up && s.answered >= cfg.up_after) {
                    snap.health.set_up(t, !up);
                    changed(Change { tunnel: t, up: !up });
                }
                let up = snap.health.is_up(t);
                let in_doubt = if up { s.missed > 0 } else { s.answered > 0 };
                if in_doubt {
                    s.next_ns = now_ns;
                }
            }
            if now_ns >= s.next_ns {
                let seq = s.seq.wrapping_add(1).max(1);
                if send(t, seq) {
                    s.seq = seq;
                    s.pending = true;
                    s.sent_ns = now_ns;
                    s.next_ns = now_ns.saturating_add(cfg.interval_ns.max(cfg.timeout_ns));
                } else {
                    s.next_ns = now_ns.saturating_add(cfg.timeout_ns);
                }
            }
        }
    }
}

/// Writes tunnel `t`'s probe `seq`, encapsulated, into the next slot of `spill`. False when
/// the tunnel has no interface, the spill is full or the next hop is unknown.
pub fn spill_probe(
    snap: &Snapshot,
    t: TunnelId,
    seq: u32,
    eth: Option<&gre::EthernetAddrs>,
    spill: &mut crate::pipeline::Spill,
) -> bool {
    use crate::pipeline::HEADROOM;
    let (Some(tunnel), Some(eth)) = (snap.tunnels.get(usize::from(t)), eth) else { return false };
    let Some(iface) = tunnel.interface else { return false };
    let Some(slot) = spill.next_slot() else { return false };
    let Some(len) =
        slot.get_mut(HEADROOM..).and_then(|b| write_probe(b, t, iface.ours, iface.peer, snap.health.nonce(), seq))
    else {
        return false;
    };
    match gre::encap_gre(slot, HEADROOM, len, gre::packet::PROTO_IPV4, 0, &tunnel.gre, eth) {
        Ok(start) => {
            spill.push(start, HEADROOM + len - start);
            true
        }
        Err(_) => false,
    }
}

/// A random nonce for probes, from the kernel.
pub fn random_nonce() -> u64 {
    use std::io::Read as _;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => crate::io::wall_clock_ns() ^ u64::from(std::process::id()) << 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn snap(extra_tunnel: &str) -> Snapshot {
        let text = format!(
            r#"
[server]
anycast = "192.0.2.1"
[health]
interval_ms = 1000
timeout_ms = 250
down_after = 3
up_after = 3
[[customer]]
name = "c"
prefixes = ["203.0.113.0/24"]
{extra_tunnel}
[[customer.tunnel]]
name = "probed"
remote = "198.51.100.1"
interface = "10.213.0.0/31"
[[customer.tunnel]]
name = "unprobed"
remote = "198.51.100.2"
"#
        );
        Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap()
    }

    /// The reply payload of probe `seq` of tunnel `t`, as the router returns it.
    fn reply(s: &Snapshot, t: TunnelId, seq: u32) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let iface = s.tunnels[usize::from(t)].interface.unwrap();
        let len = write_probe(&mut buf, t, iface.ours, iface.peer, s.health.nonce(), seq).unwrap();
        buf[28..len].to_vec()
    }

    /// Ticks every 10 ms from `from` to `to`; `answer` says whether the router answers.
    fn run(p: &mut Prober, s: &Snapshot, from: u64, to: u64, answer: bool, changes: &mut Vec<(u64, Change)>) -> u32 {
        let cfg = s.health_config;
        let mut sent = 0;
        let mut t = from;
        while t < to {
            let mut probes = Vec::new();
            p.tick(
                s,
                &cfg,
                t,
                |tunnel, seq| {
                    probes.push((tunnel, seq));
                    true
                },
                |c| changes.push((t, c)),
            );
            for (tunnel, seq) in probes {
                sent += 1;
                assert_eq!(tunnel, 0, "only the tunnel with an interface is probed");
                if answer {
                    assert!(s.health.record_reply(tunnel, &reply(s, tunnel, seq)));
                }
            }
            t += 10 * MS;
        }
        sent
    }

    #[test]
    fn a_dead_tunnel_goes_down_within_two_intervals_and_comes_back() {
        let s = snap("");
        s.health.set_nonce(0x1234);
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        // Healthy for 3 s: one probe a second.
        assert_eq!(run(&mut p, &s, 0, 3000 * MS, true, &mut changes), 3);
        assert!(changes.is_empty() && s.health.is_up(0));
        // The link is cut just before the probe of 3 s: it and two re-probes, each sent when
        // the last timed out, go unanswered: down at 3.75 s.
        run(&mut p, &s, 3000 * MS, 6000 * MS, false, &mut changes);
        assert_eq!(changes, [(3750 * MS, Change { tunnel: 0, up: false })]);
        assert!(!s.health.is_up(0) && s.health.is_up(1), "the unprobed tunnel stays up");
        assert!(changes[0].0 - 2000 * MS <= 2 * 1000 * MS, "within two intervals of the last answer");
        // Back at 6 s: three answers in a row, probed at once after each.
        changes.clear();
        run(&mut p, &s, 6000 * MS, 9000 * MS, true, &mut changes);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].1.up && changes[0].0 <= 7100 * MS, "{changes:?}");
        assert!(s.health.is_up(0));
    }

    #[test]
    fn probes_that_cannot_be_sent_are_not_misses() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let cfg = s.health_config;
        let mut tries = 0;
        for t in 0..300u64 {
            p.tick(
                &s,
                &cfg,
                t * 10 * MS,
                |_, _| {
                    tries += 1;
                    false
                },
                |c| panic!("{c:?}"),
            );
        }
        assert!(s.health.is_up(0));
        assert_eq!(tries, 12, "retried every timeout (250 ms) for 3 s");
    }

    #[test]
    fn forged_or_misdirected_replies_do_not_count() {
        let s = snap("");
        s.health.set_nonce(77);
        let good = reply(&s, 0, 5);
        let mut wrong_nonce = good.clone();
        wrong_nonce[15] ^= 1;
        assert!(!s.health.record_reply(0, &wrong_nonce));
        assert!(!s.health.record_reply(1, &good), "the reply names tunnel 0");
        assert!(!s.health.record_reply(0, &good[..20]));
        assert_eq!(s.health.replied(0), 0);
        assert!(s.health.record_reply(0, &good));
        assert_eq!(s.health.replied(0), 5);
    }

    #[test]
    fn a_reload_keeps_state_by_tunnel_name() {
        let old = snap("");
        old.health.set_up(0, false);
        old.health.set_nonce(9);
        // The new file adds a tunnel in front: ids shift by one.
        let new = snap("[[customer.tunnel]]\nname = \"new\"\nremote = \"198.51.100.3\"\n");
        let names = |s: &Snapshot| s.tunnels.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (n, o) = (names(&new), names(&old));
        let n: Vec<&str> = n.iter().map(String::as_str).collect();
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        new.health.inherit(&n, &old.health, &o);
        assert_eq!((new.health.is_up(0), new.health.is_up(1), new.health.is_up(2)), (true, false, true));
        assert_eq!(new.health.nonce(), 9);
    }
}
