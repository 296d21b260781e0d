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
//! Both are atomics per tunnel (a relaxed flag and answer, and a bit marking the answer
//! for the prober): no lock, and no write on the forwarding path but a recognised reply.
//!
//! The prober also checks, with probes padded to a size (`path_mtu`), what the underlay's
//! Packet Too Big errors said of its path MTU.

mod path_mtu;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

use gre::icmp::{Echo, ICMPV4_ECHO_REPLY, write_ipv4_echo};

use crate::pipeline::TxReason;
use crate::snapshot::health::{PROBE_MAGIC, PROBE_PAYLOAD_LEN};
use crate::snapshot::{HealthConfig, Snapshot, Succession, Tunnel, TunnelId, TunnelInterface};
use path_mtu::PathMtuProbe;
pub use path_mtu::{PATH_MTU_PROBE_SPACING_NS, spill_path_mtu_probe, write_path_mtu_probe};

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
fn probe_payload(
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
fn probe_echo((ours, peer): (Ipv4Addr, Ipv4Addr), seq: u32) -> Echo {
    Echo { kind: ICMPV4_ECHO_REPLY, src: peer, dst: ours, ident: PROBE_IDENT, seq: seq as u16, ttl: 64 }
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
    /// The interval `next_ns` was set with: a shorter one takes effect at once.
    interval_ns: u64,
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

/// What became of a probe [`Prober::tick`] asked to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// On its way.
    Yes,
    /// No room this tick (the spill is full): the probes still due wait for the next tick.
    /// Retried later, as the refused ones once were, they came due together again, and the
    /// tunnels first in the table took every slot: past 128 tunnels due at once, some were
    /// never probed (and never judged down).
    NoRoom,
    /// Not sendable now (no next hop yet): tried again after `timeout`.
    Cannot,
}

/// Sends probes and judges replies, for one snapshot's tunnels (run by one worker).
///
/// A tick costs what is due in it, not a walk of every tunnel (57 to 100 µs a millisecond
/// with 32,768 tunnels, up to a tenth of the probing worker): each checked tunnel has one wake-up time
/// in a heap (its next probe, or the timeout of the one in flight), and the replies the
/// workers record mark their tunnels in the health table, so an answered probe is judged at
/// the next tick, as before, from the marks alone.
#[derive(Debug, Default)]
pub struct Prober {
    states: Vec<ProbeState>,
    /// (wake-up time, tunnel), earliest first. An entry whose time is no longer its
    /// tunnel's [`ProbeState::wake`] (the tunnel was judged early on an answer) is stale,
    /// and skipped when it comes up.
    timers: BinaryHeap<Reverse<(u64, TunnelId)>>,
    /// Checked tunnels: the heap is remade when its stale entries outnumber them twice.
    checked: usize,
    /// The timing the schedule follows; another (a reload's) remakes it.
    timing: Option<HealthConfig>,
    /// Per tunnel, the MTU a path MTU holds it to that was last said (0: its own `mtu`).
    mtu_said: Vec<u32>,
    /// When path MTUs were last looked at ([`Prober::path_mtus`]).
    mtus_checked_ns: u64,
    /// Per tunnel, its path MTU probing: the size an answer would bring back, and the probe
    /// in flight.
    path_mtu_probes: Vec<PathMtuProbe>,
    /// The tunnel whose wanted path MTU probe goes first at the next look: the looks take
    /// the tunnels in turn, so that the first in the table do not take every one.
    path_mtu_probes_from: usize,
}

/// How often the prober's worker looks at the tunnels' path MTUs: their holds are kept in
/// about-a-second units, and a look walks every tunnel while one holds.
const PATH_MTU_CHECK_NS: u64 = 1_000_000_000;

impl ProbeState {
    /// When the tunnel needs looking at: its probe's timeout while one is in flight, its
    /// next probe otherwise.
    fn wake(&self, cfg: &HealthConfig) -> u64 {
        if self.pending { self.sent_ns.saturating_add(cfg.timeout_ns) } else { self.next_ns }
    }
}

impl Prober {
    /// A prober for `snap`, keeping the schedule and the probes in flight of tunnels it
    /// already probed under `old`, and what it decided there since the reload copied the
    /// health table (the prober is the one writer of up and down).
    pub fn rebind(&mut self, old: Option<&Snapshot>, snap: &Snapshot) {
        match old {
            Some(old) => self.rebind_as(Some((old, &snap.succession_from(old))), snap),
            None => self.rebind_as(None, snap),
        }
    }

    /// [`Prober::rebind`] with what carries over from `old` worked out.
    pub fn rebind_as(&mut self, old: Option<(&Snapshot, &Succession)>, snap: &Snapshot) {
        let mut states = vec![ProbeState::default(); snap.tunnels.len()];
        if let Some((old, succession)) = old {
            for (t, tunnel) in snap.tunnels.iter().enumerate() {
                let Some(Some(o)) = succession.tunnels.get(t).copied() else { continue };
                // Not probed any more: up, as the reload made it, and started afresh if it
                // is probed again.
                if tunnel.interface.is_none() {
                    continue;
                }
                states[t] = self.states.get(o).copied().unwrap_or_default();
                snap.health.take_over(t as TunnelId, &old.health, o as TunnelId);
                if o != t && states[t].pending {
                    // The probe in flight names the old id: its reply will not count. The
                    // next is sent at once, so reloads, however frequent, never stop the
                    // judging.
                    states[t].pending = false;
                    states[t].next_ns = 0;
                }
                if states[t].pending {
                    // Its answer may have been marked in the old table: looked at next tick.
                    snap.health.note_answer(t as TunnelId);
                }
            }
        }
        self.states = states;
        self.checked = snap.tunnels.iter().filter(|t| t.interface.is_some()).count();
        self.timing = None; // the schedule is made at the next tick
        // What was said of a tunnel stays said while it keeps its name, and so does its path
        // MTU probing.
        self.mtu_said = match old {
            Some((_, succession)) => {
                succession.tunnels.iter().map(|o| o.and_then(|o| self.mtu_said.get(o)).copied().unwrap_or(0)).collect()
            }
            None => vec![0; snap.tunnels.len()],
        };
        self.path_mtu_probes = match old {
            Some((_, succession)) => succession
                .tunnels
                .iter()
                .enumerate()
                .map(|(t, &o)| {
                    let mut probe = o.and_then(|o| self.path_mtu_probes.get(o)).copied().unwrap_or_default();
                    if o != Some(t) {
                        probe.moved(); // the probe in flight names the old id: its answer will not count
                    }
                    probe
                })
                .collect(),
            None => vec![PathMtuProbe::default(); snap.tunnels.len()],
        };
    }

    /// About once a second at `now_ns` (the prober's worker is the one that ticks): clears
    /// the path MTUs that lapsed (`HealthTable::expire_path_mtus`), and calls
    /// `changed(tunnel, mtu)` for each tunnel whose MTU a path MTU holds it to has changed
    /// since it was last said (`mtu`: what it takes now, its own `mtu` when none holds any
    /// longer), so that each change is logged once, and a tunnel at most once a second.
    /// Reads the tunnels only while some path MTU holds or was said.
    ///
    /// A health-checked tunnel that an error took lower is probed at the MTU it had before
    /// (`path_mtu`): `probe(tunnel, seq, mtu)` sends path MTU probe `seq`, an inner packet of
    /// `mtu` bytes. An answer raises the path MTU back, before the changes are said; returns
    /// how many errors answers disproved.
    pub fn path_mtus(
        &mut self,
        snap: &Snapshot,
        now_ns: u64,
        mut probe: impl FnMut(TunnelId, u32, u32) -> Sent,
        mut changed: impl FnMut(TunnelId, u32),
    ) -> u64 {
        if now_ns.saturating_sub(self.mtus_checked_ns) < PATH_MTU_CHECK_NS {
            return 0;
        }
        self.mtus_checked_ns = now_ns;
        snap.health.expire_path_mtus(now_ns);
        let claims = snap.health.take_path_mtu_claims();
        let busy = self.path_mtu_probes.iter().any(|p| p.is_busy());
        if !snap.health.any_path_mtu() && !claims && !busy && self.mtu_said.iter().all(|&m| m == 0) {
            return 0;
        }
        let mut disproved = 0;
        let tunnels = snap.tunnels.iter().zip(self.mtu_said.iter_mut()).zip(self.path_mtu_probes.iter_mut());
        for ((t, said), probing) in tunnels {
            let checked = t.interface.is_some();
            if !checked {
                probing.done(); // a reload took its interface: no probe goes, none is judged
            } else if probing.judge(snap, t, now_ns) {
                disproved += 1;
            }
            let mtu = crate::pipeline::tunnel_mtu(snap, t, false, now_ns, None);
            let held = if mtu < t.mtu { mtu } else { 0 };
            if held == 0 {
                probing.forget(); // nothing held: nothing to disprove
            }
            // A doubted error's claim: the size in force is probed before it is believed.
            if let Some(claimed) = snap.health.path_mtu_claim(t.id) {
                if !checked || claimed >= mtu {
                    // Unprobed (a reload took its interface): believed, as errors about it are.
                    snap.health.settle_path_mtu_claim(t.id, claimed < mtu, now_ns);
                } else if !probing.want_claim(claimed, mtu) {
                    snap.health.note_path_mtu_claims(); // taken up when this probe is judged
                }
            }
            if held != *said {
                let before = if *said == 0 { t.mtu } else { *said };
                if checked && held != 0 && held < before {
                    probing.want(held, before);
                }
                *said = held;
                changed(t.id, mtu);
            }
        }
        self.send_path_mtu_probes(snap, now_ns, &mut probe);
        disproved
    }

    /// The path MTU probe of tunnel `t` that went into the spill was not sent after all: it
    /// is sent again at the next look.
    pub fn path_mtu_probe_unsent(&mut self, t: TunnelId) {
        if let Some(probing) = self.path_mtu_probes.get_mut(usize::from(t)) {
            probing.unsent();
        }
    }

    /// The probe of tunnel `t` that went into the spill was not sent after all (the
    /// backend had no frame or no room on its ring): it is not judged, and is tried again
    /// after `timeout` as one `send` refused. A miss it is not: under the tx pressure of an
    /// attack, unsent probes took healthy tunnels down.
    pub fn unsent(&mut self, t: TunnelId, cfg: &HealthConfig) {
        if let Some(s) = self.states.get_mut(usize::from(t)).filter(|s| s.pending) {
            // Its wake-up time (the timeout) stays: the heap's entry stays good.
            s.pending = false;
            s.next_ns = s.sent_ns.saturating_add(cfg.timeout_ns);
        }
    }

    /// At time `now_ns`: judges each probe that was answered (those first) or whose timeout
    /// passed, and calls `send(tunnel, seq)` for each probe due, earliest first. A tunnel in doubt (a
    /// miss while up, an answer while down) is probed again at once; a settled one every
    /// `interval`. A probe `send` could not send is not judged: with no room, it and the
    /// rest due wait for the next tick (timeouts due after it are judged then too);
    /// otherwise (no next hop yet) it is tried again after `timeout`.
    pub fn tick(
        &mut self,
        snap: &Snapshot,
        cfg: &HealthConfig,
        now_ns: u64,
        mut send: impl FnMut(TunnelId, u32) -> Sent,
        mut changed: impl FnMut(Change),
    ) {
        if self.timing != Some(*cfg) || self.timers.len() > 2 * self.checked + 64 {
            self.schedule(snap, cfg);
        }
        let mut room = true;
        let mut visit = |prober: &mut Prober, t: TunnelId, room: &mut bool| {
            let checked = snap.tunnels.get(usize::from(t)).is_some_and(|x| x.interface.is_some());
            let s = prober.states.get_mut(usize::from(t)).filter(|_| checked)?;
            let before = s.wake(cfg);
            judge_and_send(s, t, snap, cfg, now_ns, room, &mut send, &mut changed);
            let after = s.wake(cfg);
            (after != before).then_some(after)
        };
        // Probes answered since the last tick, judged now rather than at their timeout.
        for t in snap.health.take_answers() {
            if let Some(wake) = visit(self, t, &mut room) {
                self.timers.push(Reverse((wake, t)));
            }
        }
        while room && let Some(&Reverse((when, t))) = self.timers.peek() {
            if when > now_ns {
                break;
            }
            self.timers.pop();
            if self.states.get(usize::from(t)).is_none_or(|s| s.wake(cfg) != when)
                || snap.tunnels.get(usize::from(t)).is_none_or(|x| x.interface.is_none())
            {
                continue; // stale (the tunnel's entry is a later one), or not checked
            }
            visit(self, t, &mut room);
            let wake = self.states.get(usize::from(t)).map_or(u64::MAX, |s| s.wake(cfg));
            self.timers.push(Reverse((wake, t)));
        }
    }

    /// Makes the schedule for `cfg`: a shorter interval takes effect at once (not after
    /// the old one's wait), and every checked tunnel has one entry in the heap.
    fn schedule(&mut self, snap: &Snapshot, cfg: &HealthConfig) {
        let interval_ns = cfg.interval_ns.max(cfg.timeout_ns);
        self.timers.clear();
        for (i, (s, tunnel)) in self.states.iter_mut().zip(&snap.tunnels).enumerate() {
            if tunnel.interface.is_none() {
                continue;
            }
            if interval_ns != s.interval_ns {
                if s.seq != 0 {
                    s.next_ns = s.next_ns.min(s.sent_ns.saturating_add(interval_ns));
                }
                s.interval_ns = interval_ns;
            }
            self.timers.push(Reverse((s.wake(cfg), i as TunnelId)));
        }
        self.timing = Some(*cfg);
    }
}

/// Tunnel `t`'s part of a tick: judges its probe in flight if answered or timed out, and
/// sends its next if due and there is `room`.
#[allow(clippy::too_many_arguments)]
fn judge_and_send(
    s: &mut ProbeState,
    t: TunnelId,
    snap: &Snapshot,
    cfg: &HealthConfig,
    now_ns: u64,
    room: &mut bool,
    send: &mut impl FnMut(TunnelId, u32) -> Sent,
    changed: &mut impl FnMut(Change),
) {
    if s.pending {
        let answered = snap.health.answered(t, s.seq);
        if !answered && now_ns < s.sent_ns.saturating_add(cfg.timeout_ns) {
            return;
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
        if answered || !snap.health.is_up(t) {
            snap.health.set_judged(t);
        }
        let up = snap.health.is_up(t);
        let in_doubt = if up { s.missed > 0 } else { s.answered > 0 };
        if in_doubt {
            s.next_ns = now_ns;
        }
    }
    if *room && now_ns >= s.next_ns {
        let seq = s.seq.wrapping_add(1).max(1);
        if seq < s.seq {
            // Wrapped: the answers so far are all higher, and so would a late one be. A new
            // life, before the probe is written (its tag is made in it); one not sent after
            // all leaves nothing in flight to lose.
            snap.health.restart(t);
        }
        match send(t, seq) {
            Sent::Yes => {
                s.seq = seq;
                s.pending = true;
                s.sent_ns = now_ns;
                s.next_ns = now_ns.saturating_add(s.interval_ns);
            }
            Sent::NoRoom => *room = false,
            Sent::Cannot => s.next_ns = now_ns.saturating_add(cfg.timeout_ns),
        }
    }
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
fn spill_into_tunnel(
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
            eprintln!(
                "transitd: /dev/urandom: {e}; health probe tags are keyed by the clock and the process id, \
                 which a router could guess"
            );
            [crate::io::wall_clock_ns(), u64::from(std::process::id())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    pub(super) fn snap(extra_tunnel: &str) -> Snapshot {
        Snapshot::build(&crate::config::parse("t.toml", &snap_text(extra_tunnel)).unwrap()).unwrap()
    }

    fn snap_text(extra_tunnel: &str) -> String {
        format!(
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
        )
    }

    /// The reply payload of probe `seq` of tunnel `t`, as the router returns it.
    fn reply(s: &Snapshot, t: TunnelId, seq: u32) -> Vec<u8> {
        reply_to_probe_of(s, t, t, seq)
    }

    /// [`reply`] to a probe tunnel `t` sent as tunnel `sent_as` (its id before a reload).
    pub(super) fn reply_to_probe_of(s: &Snapshot, t: TunnelId, sent_as: TunnelId, seq: u32) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let iface = s.tunnels[usize::from(t)].interface.unwrap();
        let name = &s.tunnels[usize::from(t)].name;
        let len =
            write_probe(&mut buf, sent_as, (iface.ours, iface.peer), s.health.tag(t, name, seq), seq, None).unwrap();
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
                    Sent::Yes
                },
                |c| changes.push((t, c)),
            );
            for (tunnel, seq) in probes {
                sent += 1;
                assert_eq!(tunnel, 0, "only the tunnel with an interface is probed");
                if answer {
                    assert!(s.health.record_reply(
                        tunnel,
                        &s.tunnels[usize::from(tunnel)].name,
                        &reply(s, tunnel, seq)
                    ));
                }
            }
            t += 10 * MS;
        }
        sent
    }

    #[test]
    fn a_dead_tunnel_goes_down_within_two_intervals_and_comes_back() {
        let s = snap("");
        s.health.set_key([0x1234, 5]);
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        assert!(!s.health.judged(0), "not judged before a probe");
        // Healthy for 3 s: one probe a second.
        assert_eq!(run(&mut p, &s, 0, 3000 * MS, true, &mut changes), 3);
        assert!(changes.is_empty() && s.health.is_up(0));
        assert!(s.health.judged(0) && !s.health.judged(1), "judged once answered; the unprobed one never");
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

    /// A tunnel that never answers is judged once it goes down, not before: its customer is
    /// never counted on (announced at start, withdrawn a few probes later, as before).
    #[test]
    fn a_tunnel_that_never_answers_is_judged_when_it_goes_down() {
        let s = snap("");
        s.health.set_key([0x1234, 5]);
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        run(&mut p, &s, 0, 600 * MS, false, &mut changes);
        assert!(!s.health.judged(0) && s.health.is_up(0), "a probe missed: not judged yet");
        run(&mut p, &s, 600 * MS, 3000 * MS, false, &mut changes);
        assert!(s.health.judged(0) && !s.health.is_up(0), "{changes:?}");
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
                    Sent::Cannot
                },
                |c| panic!("{c:?}"),
            );
        }
        assert!(s.health.is_up(0));
        assert_eq!(tries, 12, "retried every timeout (250 ms) for 3 s");
    }

    /// A thousand probed tunnels and room for 128 probes a tick (the spill's slots): every
    /// tunnel is probed within its interval, and once the routers stop answering every one
    /// is down within `interval + down_after × timeout` (tunnels.md), not only the first
    /// hundred in the table.
    #[test]
    fn more_tunnels_than_room_in_a_tick_are_all_probed_and_judged() {
        let tunnels: String = (0..1000)
            .map(|i| {
                format!(
                    "[[customer.tunnel]]\nname = \"t{i}\"\nremote = \"198.19.{}.{}\"\n\
                     interface = \"10.{}.{}.0/31\"\n",
                    i / 250,
                    1 + i % 250,
                    100 + i / 250,
                    i % 250
                )
            })
            .collect();
        let s = snap(&tunnels);
        let cfg = s.health_config;
        let probed: Vec<TunnelId> =
            (0..s.tunnels.len()).filter(|&t| s.tunnels[t].interface.is_some()).map(|t| t as TunnelId).collect();
        assert_eq!(probed.len(), 1001);
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut last_sent = vec![None::<u64>; s.tunnels.len()];
        let mut down_at = vec![None::<u64>; s.tunnels.len()];
        let cut = 5_000 * MS;
        for ms in 0..8_000u64 {
            let now = ms * MS;
            let mut room = 128;
            let mut sent = Vec::new();
            p.tick(
                &s,
                &cfg,
                now,
                |t, seq| {
                    if room == 0 {
                        return Sent::NoRoom;
                    }
                    room -= 1;
                    sent.push((t, seq));
                    Sent::Yes
                },
                |c| {
                    if !c.up {
                        down_at[usize::from(c.tunnel)].get_or_insert(now);
                    }
                },
            );
            for (t, seq) in sent {
                if let Some(before) = last_sent[usize::from(t)].replace(now) {
                    assert!(
                        now - before <= cfg.interval_ns.max(cfg.timeout_ns) + 10 * MS,
                        "tunnel {t} waited {} ms",
                        (now - before) / MS
                    );
                }
                if now < cut {
                    let name = &s.tunnels[usize::from(t)].name;
                    assert!(s.health.record_reply(t, name, &reply(&s, t, seq)));
                }
            }
        }
        let bound = cfg.interval_ns + u64::from(cfg.down_after) * cfg.timeout_ns + 10 * MS;
        for &t in &probed {
            assert!(last_sent[usize::from(t)].is_some(), "tunnel {t} never probed");
            let down = down_at[usize::from(t)].unwrap_or_else(|| panic!("tunnel {t} never judged down"));
            assert!(down - cut <= bound, "tunnel {t} down {} ms after the cut", (down - cut) / MS);
        }
    }

    /// The prober as it was: every tunnel looked at each tick, in table order. The oracle
    /// of the scheduled one (the judging of one tunnel, `judge_and_send`, is shared: it is
    /// which tunnels are looked at when that changed).
    fn linear_tick(
        states: &mut [ProbeState],
        snap: &Snapshot,
        cfg: &HealthConfig,
        now_ns: u64,
        mut send: impl FnMut(TunnelId, u32) -> Sent,
        mut changed: impl FnMut(Change),
    ) {
        let mut room = true;
        for (i, (s, tunnel)) in states.iter_mut().zip(&snap.tunnels).enumerate() {
            if tunnel.interface.is_none() {
                continue;
            }
            let interval_ns = cfg.interval_ns.max(cfg.timeout_ns);
            if interval_ns != s.interval_ns {
                if s.seq != 0 {
                    s.next_ns = s.next_ns.min(s.sent_ns.saturating_add(interval_ns));
                }
                s.interval_ns = interval_ns;
            }
            judge_and_send(s, i as TunnelId, snap, cfg, now_ns, &mut room, &mut send, &mut changed);
        }
    }

    /// Forty tunnels (every fifth not checked) whose routers answer some probes, late or
    /// not at all, in stretches, some probes not sendable for a while and some not sent
    /// after all: for 30 simulated seconds, the scheduled prober sends the same probes and
    /// makes the same changes, tick by tick, as the walk over every tunnel; also across a
    /// change of timing and across reloads (the same tunnels in a new snapshot, every 97 ms,
    /// after replies were recorded in the old one: a prober that moves must still judge
    /// them at its next tick), every fifth listing the tunnels in another order (ids shift;
    /// replies find their tunnel by name, as decapsulation does by remote).
    #[test]
    fn the_schedule_probes_and_judges_as_a_walk_over_every_tunnel() {
        // The 40 tunnels, listed from the `first`th on (ids shift with it).
        let tunnels = |first: usize| -> String {
            (0..40)
                .map(|k| {
                    let i = (k + first) % 40;
                    let iface = if i % 5 == 4 { String::new() } else { format!("interface = \"10.100.{i}.0/31\"\n") };
                    format!("[[customer.tunnel]]\nname = \"t{i}\"\nremote = \"198.19.0.{}\"\n{iface}", i + 1)
                })
                .collect()
        };
        let (mut sched, mut walked) = (snap(&tunnels(0)), snap(&tunnels(0)));
        let (mut reloads, mut shifts) = (0, 0);
        // Reply of a (tunnel, seq): its delay in ms, or none; from a hash, so that both
        // provers meet the same routers.
        let fate = |t: TunnelId, seq: u32, now: u64| {
            let h = crate::snapshot::fnv1a(&[&t.to_be_bytes()[..], &seq.to_be_bytes()].concat());
            let dead = (now / (3_000 * MS) + u64::from(t)).is_multiple_of(4); // stretches of 3 s
            match h % 10 {
                _ if dead => None,
                0 => None,
                1 => Some(260 + u64::from(h >> 8) % 100), // after the timeout (250 ms)
                2 => Some(1 + u64::from(h >> 8) % 240),
                _ => Some(1 + u64::from(h >> 8) % 20),
            }
        };
        // Not sendable (no next hop) for a while: a tenth of the tunnels, 200 ms in each 2 s.
        let cannot = |t: TunnelId, now: u64| t % 10 == 3 && (now / MS + u64::from(t) * 97) % 2_000 < 200;
        // Sent into the spill, then not onto the wire.
        let unsent = |t: TunnelId, seq: u32| {
            crate::snapshot::fnv1a(&[&seq.to_le_bytes()[..], &t.to_le_bytes()].concat()).is_multiple_of(40)
        };
        let mut p = Prober::default();
        p.rebind(None, &sched);
        let mut states = vec![ProbeState::default(); walked.tunnels.len()];
        // Replies on their way: (arrival, tunnel name, its id when the probe went, sequence
        // number).
        let (mut in_flight, mut ticks_with_sends, mut all_changes) = (Vec::<(u64, String, TunnelId, u32)>::new(), 0, 0);
        let id_of = |s: &Snapshot, name: &str| s.tunnels.iter().position(|t| t.name == name).map(|i| i as TunnelId);
        let (mut unsent_seen, mut cannot_seen) = (0, 0);
        for ms in 0..30_000u64 {
            let now = ms * MS;
            let cfg = if ms < 15_000 {
                sched.health_config
            } else {
                HealthConfig { interval_ns: 400 * MS, ..sched.health_config }
            };
            for (s, _) in [(&sched, 0), (&walked, 1)] {
                for (_, name, sent_as, seq) in in_flight.iter().filter(|r| r.0 <= now) {
                    let t = id_of(s, name).expect("every reload keeps every tunnel");
                    s.health.record_reply(t, name, &reply_to_probe_of(s, t, *sent_as, *seq));
                }
            }
            in_flight.retain(|r| r.0 > now);
            if ms % 97 == 50 {
                // A reload after replies were recorded in the old snapshot: both move to a new
                // snapshot of the same tunnels, health carried.
                reloads += 1;
                let first = if reloads % 5 == 0 { (reloads * 7) % 40 } else { 0 };
                shifts += usize::from(first != 0);
                let (new_sched, new_walked) = (snap(&tunnels(first)), snap(&tunnels(first)));
                for (new, old) in [(&new_sched, &sched), (&new_walked, &walked)] {
                    inherit(new, old);
                }
                p.rebind(Some(&sched), &new_sched);
                // The walk's own state follows its tunnels by name, as `Prober::rebind` keeps
                // it: a probe in flight under another id is not waited for (its reply names
                // the old id and will not count), the next goes at once.
                let follow = |(t, tunnel): (usize, &crate::snapshot::Tunnel)| {
                    let Some(o) = id_of(&walked, &tunnel.name) else { return ProbeState::default() };
                    let mut state = states[usize::from(o)];
                    if usize::from(o) != t && state.pending {
                        (state.pending, state.next_ns) = (false, 0);
                    }
                    state
                };
                states = new_walked.tunnels.iter().enumerate().map(follow).collect();
                (sched, walked) = (new_sched, new_walked);
            }
            // (probes sent, changes, probes that could not be sent), of each.
            let (mut a, mut b) = ((Vec::new(), Vec::new(), Vec::new()), (Vec::new(), Vec::new(), Vec::new()));
            let attempt = |sent: &mut Vec<(TunnelId, u32)>, refused: &mut Vec<(TunnelId, u32)>, t, seq| {
                if cannot(t, now) {
                    refused.push((t, seq));
                    return Sent::Cannot;
                }
                sent.push((t, seq));
                Sent::Yes
            };
            p.tick(&sched, &cfg, now, |t, seq| attempt(&mut a.0, &mut a.2, t, seq), |c| a.1.push(c));
            linear_tick(&mut states, &walked, &cfg, now, |t, seq| attempt(&mut b.0, &mut b.2, t, seq), |c| b.1.push(c));
            for v in [&mut a.0, &mut b.0, &mut a.2, &mut b.2] {
                v.sort();
            }
            for v in [&mut a.1, &mut b.1] {
                v.sort_by_key(|c| c.tunnel);
            }
            assert_eq!(a, b, "at {ms} ms: (probes sent, changes, not sendable), scheduled against walked");
            ticks_with_sends += usize::from(!a.0.is_empty());
            cannot_seen += a.2.len();
            all_changes += a.1.len();
            for &(t, seq) in &a.0 {
                if unsent(t, seq) {
                    p.unsent(t, &cfg);
                    // The walk's own: as `Prober::unsent`.
                    if let Some(s) = states.get_mut(usize::from(t)).filter(|s| s.pending) {
                        s.pending = false;
                        s.next_ns = s.sent_ns.saturating_add(cfg.timeout_ns);
                    }
                    unsent_seen += 1;
                    continue;
                }
                if let Some(delay) = fate(t, seq, now) {
                    in_flight.push((now + delay * MS, sched.tunnels[usize::from(t)].name.clone(), t, seq));
                }
            }
        }
        assert!(ticks_with_sends > 500 && all_changes > 20, "{ticks_with_sends} ticks sent, {all_changes} changes");
        assert!(unsent_seen > 5 && cannot_seen > 5, "{unsent_seen} unsent, {cannot_seen} not sendable");
        assert!(shifts > 40, "{shifts} reloads shifted the tunnels' ids");
    }

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

    /// Sequence numbers wrap after 2^32 probes: the next probe is judged by its own reply,
    /// not by the high one answered before.
    #[test]
    fn the_sequence_wraps_without_latching_up() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        p.states[0].seq = u32::MAX - 1;
        let mut changes = Vec::new();
        run(&mut p, &s, 0, 2000 * MS, true, &mut changes);
        assert!(p.states[0].seq < 5, "wrapped: {}", p.states[0].seq);
        run(&mut p, &s, 2000 * MS, 6000 * MS, false, &mut changes);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(!changes[0].1.up);
    }

    /// `new`'s health table takes over `old`'s, as a reload's [`Snapshot::take_over_from`]
    /// has it do: each tunnel from the one of the same name.
    fn inherit(new: &Snapshot, old: &Snapshot) {
        let was: Vec<_> = new.tunnels.iter().map(|t| old.tunnels.iter().position(|o| o.name == t.name)).collect();
        let probed: Vec<bool> = new.tunnels.iter().map(|t| t.interface.is_some()).collect();
        new.health.inherit(&was, &probed, &old.health);
    }

    #[test]
    fn a_reload_keeps_state_by_tunnel_name() {
        let old = snap("");
        old.health.set_up(0, false);
        old.health.set_key([9, 10]);
        // The new file adds a tunnel in front: ids shift by one.
        let new = snap("[[customer.tunnel]]\nname = \"new\"\nremote = \"198.51.100.3\"\n");
        inherit(&new, &old);
        assert_eq!((new.health.is_up(0), new.health.is_up(1), new.health.is_up(2)), (true, false, true));
        assert_eq!(new.health.key(), [9, 10]);
        // A reply made for `probed` when it was tunnel 0 does not count for `new`, tunnel 0
        // now: tags are by name.
        let earlier = reply(&old, 0, 7);
        assert!(!new.health.record_reply(0, &new.tunnels[0].name, &earlier));
        assert!(new.health.record_reply(1, &new.tunnels[1].name, &reply(&new, 1, 7)));
    }

    /// A path MTU that starts or stops holding a tunnel is said once, and again only when
    /// it changes; a reload keeps what was said.
    #[test]
    fn path_mtu_changes_are_said_once() {
        const S: u64 = 1_000_000_000;
        fn said(p: &mut Prober, s: &Snapshot, now: u64) -> Vec<(TunnelId, u32)> {
            let mut v = Vec::new();
            p.path_mtus(s, now, |_, _, _| Sent::Yes, |t, mtu| v.push((t, mtu)));
            v
        }
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        assert_eq!(said(&mut p, &s, S), []);
        assert!(s.health.lower_path_mtu(1, 1300, S));
        assert_eq!(said(&mut p, &s, 2 * S), [(1, 1300)]);
        assert_eq!(said(&mut p, &s, 3 * S), []);
        assert!(s.health.lower_path_mtu(1, 1200, 4 * S));
        assert_eq!(said(&mut p, &s, 5 * S), [(1, 1200)]);
        assert!(s.health.lower_path_mtu(1, 1100, 5 * S));
        assert_eq!(said(&mut p, &s, 5 * S + S / 2), [], "within the second");
        assert_eq!(said(&mut p, &s, 6 * S), [(1, 1100)]);
        let mut new = snap("");
        new.take_over_from(&s);
        p.rebind(Some(&s), &new);
        assert_eq!(said(&mut p, &new, 7 * S), [], "said before the reload");
        assert_eq!(said(&mut p, &new, 700 * S), [(1, 1476)], "lapsed: its own mtu again");
        assert_eq!(said(&mut p, &new, 701 * S), []);
    }

    /// A learned path MTU follows its tunnel's name through a reload while the outer
    /// addresses and headers stay; a tunnel moved to another router, or given a key,
    /// starts again from its `mtu`.
    #[test]
    fn a_reload_keeps_a_path_mtu_while_the_tunnel_keeps_its_path() {
        const S: u64 = 1_000_000_000;
        let old = snap("");
        assert!(old.health.lower_path_mtu(0, 1400, S) && old.health.lower_path_mtu(1, 1300, S));
        let text = snap_text("").replace("remote = \"198.51.100.2\"", "remote = \"198.51.100.9\"");
        let mut new = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        new.take_over_from(&old);
        assert_eq!((new.health.path_mtu(0, 2 * S), new.health.path_mtu(1, 2 * S)), (Some(1400), None));
        let text = snap_text("").replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nkey = 5");
        let mut keyed = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        keyed.take_over_from(&new);
        assert_eq!(keyed.health.path_mtu(0, 2 * S), None, "four bytes of key: 1400 inside no longer fits");
        let text =
            snap_text("").replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\npath_mtu_discovery = false");
        let mut off = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        off.take_over_from(&new);
        // The prober follows the reload too (tunnel 0 is probed): it takes over the tunnel's
        // probes, not a path MTU the reload forgot.
        let mut p = Prober::default();
        p.rebind(None, &new);
        p.rebind(Some(&new), &off);
        assert_eq!(off.health.path_mtu(0, 2 * S), None, "turned off, nothing held");
        assert!(!off.health.any_path_mtu());
    }

    /// A down tunnel whose `interface` is taken out is no longer probed, so it is up: as
    /// the documentation says every unprobed tunnel is.
    #[test]
    fn a_tunnel_no_longer_probed_is_up() {
        let old = snap("");
        old.health.set_up(0, false);
        let text = |s: &str| s.replace("interface = \"10.213.0.0/31\"\n", "");
        let new = Snapshot::build(&crate::config::parse("t.toml", &text(&snap_text(""))).unwrap()).unwrap();
        inherit(&new, &old);
        assert!(new.health.is_up(0));
    }

    /// A probe that went into the spill but not onto the wire (no frame, a full ring) is
    /// no miss: a tunnel whose every probe is unsent stays up, where down_after of them
    /// took it down.
    #[test]
    fn a_probe_not_sent_after_all_is_no_miss() {
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let cfg = s.health_config;
        let (mut changes, mut sent) = (Vec::new(), 0);
        let mut t = 0;
        while t < 10_000 * MS {
            p.tick(
                &s,
                &cfg,
                t,
                |_, _| {
                    sent += 1;
                    Sent::Yes
                },
                |c| changes.push(c),
            );
            p.unsent(0, &cfg);
            t += 10 * MS;
        }
        assert!(sent > 10 && changes.is_empty() && s.health.is_up(0), "{sent} sent, {changes:?}");
    }

    /// A tunnel probed, then not, then probed again starts afresh: the answers to its
    /// first life's probes (up to #500 here) must not answer the new prober's #1 to #500,
    /// which kept a tunnel whose router had died up for 500 probe intervals.
    #[test]
    fn a_tunnel_probed_again_keeps_no_old_answers() {
        let probed_once = snap("");
        let name = probed_once.tunnels[0].name.clone();
        assert!(probed_once.health.record_reply(0, &name, &reply(&probed_once, 0, 500)));
        let text = |s: &str| s.replace("interface = \"10.213.0.0/31\"\n", "");
        let unprobed = Snapshot::build(&crate::config::parse("t.toml", &text(&snap_text(""))).unwrap()).unwrap();
        inherit(&unprobed, &probed_once);
        let probed_again = snap("");
        inherit(&probed_again, &unprobed);
        assert!(!probed_again.health.answered(0, 1), "{} answered", probed_again.health.replied(0));
    }

    /// A tunnel a reload takes out and a later one puts back, or whose `interface` goes and
    /// comes back, starts its sequence numbers over under the same key (the process's): a
    /// reply made in its first life for probe #500, late or replayed by anyone who saw it on
    /// the underlay, answers nothing in the new one. It verified, and answered the new
    /// prober's #1 to #500: a tunnel whose router had died kept up for 500 intervals.
    #[test]
    fn a_reply_from_an_earlier_life_of_the_tunnel_answers_nothing() {
        let first = snap("");
        first.health.set_key([3, 4]);
        let name = first.tunnels[0].name.clone();
        let late = reply(&first, 0, 500);
        let without_tunnel = snap_text("").replace(
            "[[customer.tunnel]]\nname = \"probed\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n",
            "",
        );
        let without_interface = snap_text("").replace("interface = \"10.213.0.0/31\"\n", "");
        for between in [without_tunnel, without_interface] {
            let mut gone = Snapshot::build(&crate::config::parse("t.toml", &between).unwrap()).unwrap();
            gone.take_over_from(&first);
            let mut back = snap("");
            back.take_over_from(&gone);
            let mut p = Prober::default();
            p.rebind(None, &first);
            p.rebind(Some(&first), &gone);
            p.rebind(Some(&gone), &back);
            assert_eq!(back.health.key(), [3, 4], "the key is the process's");
            assert!(!back.health.record_reply(0, &name, &late), "a reply of the tunnel's first life");
            let mut probes = Vec::new();
            p.tick(
                &back,
                &back.health_config,
                0,
                |t, seq| {
                    probes.push((t, seq));
                    Sent::Yes
                },
                |c| panic!("{c:?}"),
            );
            assert_eq!(probes, [(0, 1)], "the new life's first probe");
            assert!(!back.health.answered(0, 1), "answered up to #{}", back.health.replied(0));
            assert!(back.health.record_reply(0, &name, &reply(&back, 0, 1)), "its own reply counts");
        }
    }

    /// After the sequence numbers wrap, a late reply to the last probe before (#4294967295)
    /// answers none of the new numbers: it verified, and every probe after the wrap was
    /// taken as answered.
    #[test]
    fn a_late_reply_from_before_a_wrap_answers_nothing() {
        let s = snap("");
        let cfg = s.health_config;
        let mut p = Prober::default();
        p.rebind(None, &s);
        p.states[0].seq = u32::MAX - 1;
        let mut sent = Vec::new();
        p.tick(
            &s,
            &cfg,
            0,
            |_, seq| {
                sent.push(seq);
                Sent::Yes
            },
            |c| panic!("{c:?}"),
        );
        let late = reply(&s, 0, u32::MAX);
        // Unanswered at its timeout: a miss, and the tunnel in doubt is probed again at once.
        p.tick(
            &s,
            &cfg,
            250 * MS,
            |_, seq| {
                sent.push(seq);
                Sent::Yes
            },
            |c| panic!("{c:?}"),
        );
        assert_eq!(sent, [u32::MAX, 1]);
        assert!(!s.health.record_reply(0, &s.tunnels[0].name, &late), "made before the wrap");
        assert!(!s.health.answered(0, 1), "answered up to #{}", s.health.replied(0));
    }

    /// Reloads every 200 ms, each building the same configuration anew, do not stop the
    /// judging: a dead tunnel still goes down in time, and nothing the prober decided
    /// between a reload's copy of the table and its own move is lost.
    #[test]
    fn frequent_reloads_do_not_freeze_health_checking() {
        let mut s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        let mut t = 0;
        while t < 8000 * MS {
            // The link is cut at 3 s.
            run(&mut p, &s, t, t + 200 * MS, t < 3000 * MS, &mut changes);
            let new = snap("");
            inherit(&new, &s);
            // The old snapshot is still the prober's for one more tick after the copy.
            run(&mut p, &s, t + 200 * MS, t + 210 * MS, t < 3000 * MS, &mut changes);
            p.rebind(Some(&s), &new);
            s = new;
            t += 210 * MS;
        }
        // The probe of 3 s is answered (its stretch began before the cut); the one of 4 s
        // and two re-probes are not: down at 4.75 s, as without reloads.
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(!changes[0].1.up && changes[0].0 <= 4800 * MS, "{changes:?}");
        assert!(!s.health.is_up(0), "the decision outlives the reloads");
    }

    /// A shorter interval takes effect at once, not after the old one's wait.
    #[test]
    fn a_shorter_interval_applies_at_once() {
        let hour = snap("").health_config;
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let slow = HealthConfig { interval_ns: 3_600_000 * MS, ..hour };
        let mut sent = 0;
        for (now, cfg) in [(0, slow), (1000 * MS, slow), (1000 * MS, hour)] {
            let mut probes = Vec::new();
            p.tick(
                &s,
                &cfg,
                now,
                |t, seq| {
                    probes.push((t, seq));
                    Sent::Yes
                },
                |c| panic!("{c:?}"),
            );
            for (t, seq) in probes {
                sent += 1;
                assert!(s.health.record_reply(t, &s.tunnels[usize::from(t)].name, &reply(&s, t, seq)));
            }
        }
        assert_eq!(sent, 2, "probed at 0, then at 1 s once the interval is 1 s");
    }
}
