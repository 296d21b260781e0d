//! Tunnel health, as Magic Transit checks it: through every tunnel that has an `interface`,
//! a GRE-encapsulated ICMP echo reply from the router's side of the tunnel to ours. The
//! router decapsulates it and routes it back to us through the same tunnel (its policy
//! route for the tunnel's /31), so a probe that returns proves the tunnel works both ways.
//!
//! Two halves share a [`HealthTable`](crate::snapshot::health::HealthTable) inside each
//! snapshot (data only, in `snapshot/health/`):
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
//! A reply can be lost here rather than on the tunnel: a flood that overruns this server's
//! sockets drops it with everything else. The worker that probes tells the prober how many
//! frames the kernel dropped on their way into the run's sockets
//! ([`Prober::note_rx_drops`]), and a probe unanswered while that count rose is excused, not
//! missed, `excused_max` in a row at most, so that a dead tunnel under a lasting flood still
//! goes down, `excused_max` probes later.
//!
//! The prober also checks, with probes padded to a size (`path_mtu`), what the underlay's
//! Packet Too Big errors said of its path MTU.
//!
//! This file holds the prober's state and how a reload carries it over (`rebind`), and the
//! prober's look at the path MTUs; `schedule.rs` times the probes and judges their replies,
//! `probe.rs` writes them, `path_mtu.rs` probes what Packet Too Big errors said.

mod path_mtu;
mod probe;
mod schedule;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::snapshot::{HealthConfig, Snapshot, Succession, TunnelId};
use path_mtu::PathMtuProbe;
pub use path_mtu::{PATH_MTU_PROBE_SPACING_NS, spill_path_mtu_probe, write_path_mtu_probe};
pub use probe::{random_key, spill_probe, write_probe};

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
    /// The frames the run's sockets had dropped on receiving ([`Prober::note_rx_drops`])
    /// when the last probe was sent: more by its timeout, and its reply may be among them.
    rx_drops_at_send: u64,
    /// Unanswered probes excused since the last answer (their replies may have been dropped
    /// here): at most `excused_max`, past which they are misses.
    excused: u32,
}

/// A tunnel whose state the prober just changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The tunnel.
    pub tunnel: TunnelId,
    /// Its new state.
    pub up: bool,
    /// Going down: the unanswered probes excused before the `down_after` misses, while
    /// this server dropped received frames (0 coming up).
    pub excused: u32,
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
    /// The frames the run's sockets had dropped on receiving, as last noted.
    rx_drops: u64,
    /// Unanswered probes excused so far (`transitd_health_probes_excused`).
    probes_excused: u64,
}

/// How often the prober's worker looks at the tunnels' path MTUs: their holds are kept in
/// about-a-second units, and a look walks every tunnel while one holds.
const PATH_MTU_CHECK_NS: u64 = 1_000_000_000;

impl Prober {
    /// A prober for `snap`, keeping the schedule and the probes in flight of tunnels it
    /// already probed under `old`, and what it decided there since the reload copied the
    /// health table (the prober is the one writer of up and down). Returns the tunnels down
    /// in `old` that the reload brought up without an answer, to be said up as they were
    /// said down: no longer probed, or probed afresh (moved to another router, or given
    /// another key or `interface`).
    pub fn rebind(&mut self, old: Option<&Snapshot>, snap: &Snapshot) -> Vec<TunnelId> {
        match old {
            Some(old) => self.rebind_as(Some((old, &snap.succession_from(old))), snap),
            None => self.rebind_as(None, snap),
        }
    }

    /// [`Prober::rebind`] with what carries over from `old` worked out.
    pub fn rebind_as(&mut self, old: Option<(&Snapshot, &Succession)>, snap: &Snapshot) -> Vec<TunnelId> {
        let mut states = vec![ProbeState::default(); snap.tunnels.len()];
        let mut raised = Vec::new();
        if let Some((old, succession)) = old {
            for (t, &was) in succession.tunnels.iter().enumerate() {
                let Some(o) = was else { continue };
                // The count of downs follows the name, however the tunnel is probed now: a
                // down the old probes found after the reload's copy counts too.
                snap.health.carry_downs(t, &old.health, o);
                // Not probed any more, or not as it was (another router, key or inner
                // addresses: what the old probes found says nothing of the new ones): up, as
                // the reload made it, and started afresh when probed, as a new tunnel is.
                if !succession.probed_as_before.get(t).copied().unwrap_or(false) {
                    if !old.health.is_up(o as TunnelId) && snap.health.is_up(t as TunnelId) {
                        raised.push(t as TunnelId);
                    }
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
        // MTU probing while it keeps its router too.
        self.mtu_said = match old {
            Some((_, succession)) => {
                succession.tunnels.iter().map(|o| o.and_then(|o| self.mtu_said.get(o)).copied().unwrap_or(0)).collect()
            }
            None => vec![0; snap.tunnels.len()],
        };
        self.path_mtu_probes = match old {
            // Moved to another router, a tunnel starts afresh here too: what an error on the old
            // router's path asked to probe says nothing of the new one's (the table kept neither
            // the path MTU nor the answers).
            Some((_, succession)) => succession
                .same_router
                .iter()
                .enumerate()
                .map(|(t, &o)| {
                    let mut probe = o.and_then(|o| self.path_mtu_probes.get(o)).copied().unwrap_or_default();
                    // The probe in flight names the old id, or was tagged in a life the tunnel
                    // no longer has (probed afresh, `HealthTable::inherit`): its answer will
                    // not count. The size wanted stays: the path is the same.
                    let same_life = o == Some(t) && succession.probed_as_before.get(t).copied().unwrap_or(false);
                    if !same_life {
                        probe.moved();
                    }
                    probe
                })
                .collect(),
            None => vec![PathMtuProbe::default(); snap.tunnels.len()],
        };
        raised
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

    /// Notes `total`, the frames the kernel has dropped on their way into the run's sockets
    /// (`rx_ring_full`, `rx_dropped`, `fill_ring_empty`, summed over the workers as each last
    /// published them; only its rises matter), before a tick. A probe unanswered at its
    /// timeout while it rose is excused, not missed: its reply may have been dropped here with
    /// the rest (a flood at another customer took a healthy tunnel down, and with it the
    /// customer's prefixes from BGP). `excused_max` in a row at most since the last answer,
    /// so that a dead tunnel under a lasting flood still goes down.
    pub fn note_rx_drops(&mut self, total: u64) {
        self.rx_drops = total;
    }

    /// Unanswered probes excused so far ([`Prober::note_rx_drops`]), over reloads.
    pub fn probes_excused(&self) -> u64 {
        self.probes_excused
    }

    /// The path MTU probe of tunnel `t` that went into the spill was not sent after all: it
    /// is sent again at the next look.
    pub fn path_mtu_probe_unsent(&mut self, t: TunnelId) {
        if let Some(probing) = self.path_mtu_probes.get_mut(usize::from(t)) {
            probing.unsent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MS: u64 = 1_000_000;

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

    /// A thousand more health-checked tunnels for [`snap`], `t0` to `t999`, each with a
    /// remote and an interface of its own (198.19.0.1.. and 10.100.0.0/31..).
    pub(super) fn a_thousand_tunnels() -> String {
        (0..1000)
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
            .collect()
    }

    /// The reply payload of probe `seq` of tunnel `t`, as the router returns it.
    pub(super) fn reply(s: &Snapshot, t: TunnelId, seq: u32) -> Vec<u8> {
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
    pub(super) fn run(
        p: &mut Prober,
        s: &Snapshot,
        from: u64,
        to: u64,
        answer: bool,
        changes: &mut Vec<(u64, Change)>,
    ) -> u32 {
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

    /// The probes `p` sends in one tick at `now`, every one sent; a tunnel's state changing
    /// fails the test.
    fn probes_in_one_tick(p: &mut Prober, s: &Snapshot, now: u64) -> Vec<(TunnelId, u32)> {
        let mut probes = Vec::new();
        p.tick(
            s,
            &s.health_config,
            now,
            |t, seq| {
                probes.push((t, seq));
                Sent::Yes
            },
            |c| panic!("{c:?}"),
        );
        probes
    }

    /// `new`'s health table takes over `old`'s, as a reload's [`Snapshot::take_over_from`]
    /// has it do: each tunnel from the one of the same name.
    pub(super) fn inherit(new: &Snapshot, old: &Snapshot) {
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

    /// A down tunnel whose `interface` a reload takes out is up, and the prober's move names
    /// it, to be said up as it was said down: the log said it down, and nothing said it up
    /// while it carried traffic again. Up already, it is not named again.
    #[test]
    fn a_down_tunnel_a_reload_stops_probing_is_named() {
        let old = snap("");
        let mut p = Prober::default();
        p.rebind(None, &old);
        old.health.set_up(0, false);
        let text = snap_text("").replace("interface = \"10.213.0.0/31\"\n", "");
        let unprobed = || Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        let mut new = unprobed();
        new.take_over_from(&old);
        assert_eq!(p.rebind(Some(&old), &new), [0]);
        assert!(new.health.is_up(0));
        let mut again = unprobed();
        again.take_over_from(&new);
        assert!(p.rebind(Some(&new), &again).is_empty());
    }

    /// A reload that moves a probed tunnel to another router (its `remote`) starts it
    /// afresh, as a new tunnel: up, not judged, its numbers over in a new life (a late reply
    /// of the old router's answers nothing), and named as a down tunnel the reload brought
    /// up. It kept the old router's state: down (and judged) until the new router answered
    /// `up_after` probes. The same configuration again keeps the state.
    #[test]
    fn a_tunnel_moved_to_another_router_starts_afresh() {
        let old = snap("");
        let mut p = Prober::default();
        p.rebind(None, &old);
        let mut changes = Vec::new();
        run(&mut p, &old, 0, 3000 * MS, true, &mut changes);
        run(&mut p, &old, 3000 * MS, 6000 * MS, false, &mut changes);
        assert!(!old.health.is_up(0) && old.health.judged(0), "{changes:?}");
        let mut same = snap("");
        same.take_over_from(&old);
        assert!(p.rebind(Some(&old), &same).is_empty());
        assert!(!same.health.is_up(0) && same.health.judged(0), "the same router: the same state");
        let late = reply(&same, 0, 3);
        let text = snap_text("").replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.9\"");
        let mut moved = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        moved.take_over_from(&same);
        assert_eq!(p.rebind(Some(&same), &moved), [0]);
        assert!(moved.health.is_up(0) && !moved.health.judged(0), "as a new tunnel");
        assert!(!moved.health.record_reply(0, "probed", &late), "a reply of the old router's life");
        assert_eq!(probes_in_one_tick(&mut p, &moved, 6000 * MS), [(0, 1)], "probed at once, from #1");
    }

    /// A tunnel's count of downs follows its name wherever the tunnel goes: moved to another
    /// router it is probed afresh, but its series (its name and customer) is the same, and a
    /// count that fell back to 0 read as a counter reset. A down the old router's probes
    /// found after the reload's copy, before the prober moved, is counted too.
    #[test]
    fn a_tunnels_downs_follow_its_name_to_another_router() {
        let old = snap("");
        let mut p = Prober::default();
        p.rebind(None, &old);
        old.health.set_up(0, false);
        old.health.set_up(0, true);
        let text = snap_text("").replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.9\"");
        let mut moved = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        moved.take_over_from(&old);
        assert_eq!(moved.health.downs(0), 1, "the reload's copy");
        // The prober, still on the old snapshot, takes the old router's tunnel down again.
        old.health.set_up(0, false);
        assert_eq!(p.rebind(Some(&old), &moved), [0]);
        assert_eq!(moved.health.downs(0), 2, "the prober's move");
        assert!(moved.health.is_up(0) && !moved.health.judged(0), "otherwise afresh, as a new tunnel");
    }

    /// A dead tunnel a reload gives another key, `interface` or router is said up and probed
    /// afresh; its new probes unanswered too, it goes down again in the same outage, not in
    /// another: each try (three keys, one after the other, as an operator looks for the
    /// right one) counted a down, and three within the hour opened a TransitdTunnelFlapping
    /// ticket for a tunnel that never came up. Once a probe is answered it has come up, and
    /// its next down counts; so does the down of a tunnel that was up when a reload gave it a
    /// key its router does not take.
    #[test]
    fn a_dead_tunnel_probed_afresh_and_still_dead_counts_no_new_down() {
        fn build(text: &str) -> Snapshot {
            Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap()
        }
        let with = |what: &str| snap_text("").replace("remote = \"198.51.100.1\"", what);
        let mut s = build(&with("remote = \"198.51.100.1\"\nkey = 1"));
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        run(&mut p, &s, 0, 3000 * MS, true, &mut changes);
        run(&mut p, &s, 3000 * MS, 6000 * MS, false, &mut changes);
        assert!(!s.health.is_up(0) && s.health.downs(0) == 1, "{changes:?}");
        let reload = |s: &mut Snapshot, p: &mut Prober, what: &str| {
            let mut next = build(&with(what));
            next.take_over_from(s);
            let raised = p.rebind(Some(&*s), &next);
            *s = next;
            raised
        };
        let mut t = 6000 * MS;
        let tries = [
            "remote = \"198.51.100.1\"\nkey = 2",
            "remote = \"198.51.100.1\"\nkey = 3",
            "remote = \"198.51.100.9\"\nkey = 3",
        ];
        for what in tries {
            assert_eq!(reload(&mut s, &mut p, what), [0], "said up, probed afresh: {what}");
            changes.clear();
            run(&mut p, &s, t, t + 3000 * MS, false, &mut changes);
            t += 3000 * MS;
            assert_eq!(changes.iter().map(|c| c.1.up).collect::<Vec<_>>(), [false], "down again: {what}");
            assert_eq!(s.health.downs(0), 1, "the same outage: {what}");
        }
        // The right key: answered, so up; down after that is another.
        reload(&mut s, &mut p, "remote = \"198.51.100.1\"\nkey = 4");
        run(&mut p, &s, t, t + 3000 * MS, true, &mut changes);
        assert!(s.health.is_up(0) && s.health.judged(0));
        run(&mut p, &s, t + 3000 * MS, t + 6000 * MS, false, &mut changes);
        assert!(!s.health.is_up(0));
        assert_eq!(s.health.downs(0), 2, "it came up under key 4");
        // Back up; then a reload gives it a key its router does not take: it served until then.
        run(&mut p, &s, t + 6000 * MS, t + 9000 * MS, true, &mut changes);
        assert!(s.health.is_up(0));
        assert!(reload(&mut s, &mut p, "remote = \"198.51.100.1\"\nkey = 5").is_empty(), "up already");
        run(&mut p, &s, t + 9000 * MS, t + 12_000 * MS, false, &mut changes);
        assert!(!s.health.is_up(0));
        assert_eq!(s.health.downs(0), 3, "up before the reload: a down");
    }

    /// A reload that gives a probed tunnel another GRE key, or another `interface`, starts
    /// it afresh as a move to another router does: under the new key the router may take
    /// none of our GRE (nor we its), and at other inner addresses the probes ask another
    /// address of the router to answer at another of ours, so what the old probes found
    /// says nothing of the new ones. It kept the old state: down (and judged) until
    /// `up_after` probes of the new kind were answered, or up on the old answers while the
    /// new probes went unanswered. The path is the same, so its path MTU stays.
    #[test]
    fn a_tunnel_given_another_key_or_interface_starts_afresh() {
        const S: u64 = 1_000_000_000;
        fn build(text: &str) -> Snapshot {
            Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap()
        }
        let keyed = snap_text("").replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nkey = 5");
        let renumbered = snap_text("").replace("10.213.0.0/31", "10.213.0.2/31");
        for (before, after) in [(keyed.replace("key = 5", "key = 6"), keyed), (snap_text(""), renumbered)] {
            assert_ne!(before, after);
            let old = build(&before);
            let mut p = Prober::default();
            p.rebind(None, &old);
            let mut changes = Vec::new();
            run(&mut p, &old, 0, 3000 * MS, true, &mut changes);
            run(&mut p, &old, 3000 * MS, 6000 * MS, false, &mut changes);
            assert!(!old.health.is_up(0) && old.health.judged(0), "{changes:?}");
            assert!(old.health.lower_path_mtu(0, 1400, 6 * S));
            let mut same = build(&before);
            same.take_over_from(&old);
            assert!(p.rebind(Some(&old), &same).is_empty());
            assert!(!same.health.is_up(0) && same.health.judged(0), "the same probes: the same state");
            let late = reply(&same, 0, 3);
            let mut changed = build(&after);
            changed.take_over_from(&same);
            assert_eq!(p.rebind(Some(&same), &changed), [0], "{after}");
            assert!(changed.health.is_up(0) && !changed.health.judged(0), "as a new tunnel: {after}");
            assert!(!changed.health.record_reply(0, "probed", &late), "a reply of the old life: {after}");
            assert_eq!(changed.health.path_mtu(0, 7 * S), Some(1400), "the same path: {after}");
            assert_eq!(probes_in_one_tick(&mut p, &changed, 6000 * MS), [(0, 1)], "probed at once, from #1: {after}");
        }
    }

    /// A path MTU probe an error on the old router's path asked for is not carried to a
    /// tunnel a reload moves to another router: the table keeps neither that path's MTU nor
    /// the answers, and the new router would be probed for the old path's error. The same
    /// router keeps it.
    #[test]
    fn a_tunnel_moved_to_another_router_wants_no_path_mtu_probe_of_the_old_path() {
        let old = snap("");
        let mut p = Prober::default();
        p.rebind(None, &old);
        p.path_mtu_probes[0].want(1400, 1476);
        let wanted = p.path_mtu_probes[0];
        assert_ne!(wanted, PathMtuProbe::default());
        let mut same = snap("");
        same.take_over_from(&old);
        p.rebind(Some(&old), &same);
        assert_eq!(p.path_mtu_probes[0], wanted, "the same router: the same probe wanted");
        let text = snap_text("").replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.9\"");
        let mut moved = Snapshot::build(&crate::config::parse("t.toml", &text).unwrap()).unwrap();
        moved.take_over_from(&same);
        p.rebind(Some(&same), &moved);
        assert_eq!(p.path_mtu_probes[0], PathMtuProbe::default(), "moved: nothing wanted of the new router");
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
            assert_eq!(probes_in_one_tick(&mut p, &back, 0), [(0, 1)], "the new life's first probe");
            assert!(!back.health.answered(0, 1), "answered up to #{}", back.health.replied(0));
            assert!(back.health.record_reply(0, &name, &reply(&back, 0, 1)), "its own reply counts");
        }
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
}
