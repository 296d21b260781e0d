//! The prober's timing and judging: when each checked tunnel's next probe is due (one
//! wake-up time a tunnel, in a heap), judging a probe answered or timed out (`down_after`
//! misses, `up_after` answers in a row; one unanswered while this server dropped received
//! frames excused, `excused_max` in a row at most), and a probe that could not be sent.

use std::cmp::Reverse;

use super::{Change, ProbeState, Prober, Sent};
use crate::snapshot::{HealthConfig, Snapshot, TunnelId};

impl ProbeState {
    /// When the tunnel needs looking at: its probe's timeout while one is in flight, its
    /// next probe otherwise.
    fn wake(&self, cfg: &HealthConfig) -> u64 {
        if self.pending { self.sent_ns.saturating_add(cfg.timeout_ns) } else { self.next_ns }
    }
}

impl Prober {
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
    /// miss or an excused probe while up, an answer while down) is probed again at once; a
    /// settled one every `interval`. A probe `send` could not send is not judged: with no
    /// room, it and the rest due wait for the next tick (timeouts due after it are judged
    /// then too); otherwise (no next hop yet) it is tried again after `timeout`. A probe
    /// unanswered while the count [`Prober::note_rx_drops`] noted rose is excused rather
    /// than missed, `excused_max` in a row at most.
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
            let rx_drops = prober.rx_drops;
            let s = prober.states.get_mut(usize::from(t)).filter(|_| checked)?;
            let before = s.wake(cfg);
            let excused = judge_and_send(s, t, snap, cfg, (now_ns, rx_drops), room, &mut send, &mut changed);
            let after = s.wake(cfg);
            prober.probes_excused += u64::from(excused);
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

/// Tunnel `t`'s part of a tick at `now_ns`, the run's sockets having dropped `rx_drops`
/// received frames so far: judges its probe in flight if answered or timed out, and sends
/// its next if due and there is `room`. Returns whether it excused the probe.
#[allow(clippy::too_many_arguments)]
fn judge_and_send(
    s: &mut ProbeState,
    t: TunnelId,
    snap: &Snapshot,
    cfg: &HealthConfig,
    (now_ns, rx_drops): (u64, u64),
    room: &mut bool,
    send: &mut impl FnMut(TunnelId, u32) -> Sent,
    changed: &mut impl FnMut(Change),
) -> bool {
    let mut excused = false;
    if s.pending {
        let answered = snap.health.answered(t, s.seq);
        if !answered && now_ns < s.sent_ns.saturating_add(cfg.timeout_ns) {
            return false;
        }
        s.pending = false;
        // Unanswered while this server's sockets dropped received frames: the reply may be
        // one of them, lost here and not on the tunnel. Past `excused_max` in a row a dead
        // tunnel under a lasting flood would never go down.
        excused = !answered && rx_drops > s.rx_drops_at_send && s.excused < cfg.excused_max;
        if answered {
            s.answered = s.answered.saturating_add(1);
            (s.missed, s.excused) = (0, 0);
        } else if excused {
            s.excused += 1; // neither a miss nor an answer: both runs stand
        } else {
            s.missed = s.missed.saturating_add(1);
            s.answered = 0;
        }
        let up = snap.health.is_up(t);
        if (up && s.missed >= cfg.down_after) || (!up && s.answered >= cfg.up_after) {
            snap.health.set_up(t, !up);
            // An answer brings it up, and clears the excused: 0 then.
            changed(Change { tunnel: t, up: !up, excused: s.excused });
        }
        if answered || !snap.health.is_up(t) {
            snap.health.set_judged(t);
        }
        let up = snap.health.is_up(t);
        let in_doubt = if up { s.missed > 0 || s.excused > 0 } else { s.answered > 0 };
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
                s.rx_drops_at_send = rx_drops;
            }
            Sent::NoRoom => *room = false,
            Sent::Cannot => s.next_ns = now_ns.saturating_add(cfg.timeout_ns),
        }
    }
    excused
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MS, a_thousand_tunnels, inherit, reply, reply_to_probe_of, run, snap};
    use super::*;

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
        assert_eq!(changes, [(3750 * MS, Change { tunnel: 0, up: false, excused: 0 })]);
        assert!(!s.health.is_up(0) && s.health.is_up(1), "the unprobed tunnel stays up");
        assert_eq!((s.health.downs(0), s.health.downs(1)), (1, 0), "one down counted, for the one change");
        assert!(changes[0].0 - 2000 * MS <= 2 * 1000 * MS, "within two intervals of the last answer");
        // Back at 6 s: three answers in a row, probed at once after each.
        changes.clear();
        run(&mut p, &s, 6000 * MS, 9000 * MS, true, &mut changes);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].1.up && changes[0].0 <= 7100 * MS, "{changes:?}");
        assert!(s.health.is_up(0));
        assert_eq!(s.health.downs(0), 1, "coming back is not a down");
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
        let s = snap(&a_thousand_tunnels());
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
        (now_ns, rx_drops): (u64, u64),
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
            judge_and_send(s, i as TunnelId, snap, cfg, (now_ns, rx_drops), &mut room, &mut send, &mut changed);
        }
    }

    /// Forty tunnels (every fifth not checked) whose routers answer some probes, late or
    /// not at all, in stretches, some probes not sendable for a while and some not sent
    /// after all, this server's sockets dropping frames in stretches (excusing some): for 30
    /// simulated seconds, the scheduled prober sends the same probes and makes the same
    /// changes, tick by tick, as the walk over every tunnel; also across a
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
        // Frames this server's sockets dropped: one a millisecond, a second in every three.
        let mut rx_drops = 0u64;
        for ms in 0..30_000u64 {
            let now = ms * MS;
            rx_drops += u64::from(ms / 1_000 % 3 == 1);
            p.note_rx_drops(rx_drops);
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
            linear_tick(
                &mut states,
                &walked,
                &cfg,
                (now, rx_drops),
                |t, seq| attempt(&mut b.0, &mut b.2, t, seq),
                |c| b.1.push(c),
            );
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
        assert!(p.probes_excused() > 20, "{} probes excused", p.probes_excused());
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

    /// Ticks every 10 ms from `from` to `to` under `cfg`, as [`run`] does, the router
    /// answering the probes `answers` names; before each tick the prober notes `rx_drops(t)`,
    /// the frames this server's sockets had dropped by then. Returns the probes sent, with
    /// their times.
    fn run_dropping(
        p: &mut Prober,
        s: &Snapshot,
        cfg: &HealthConfig,
        (from, to): (u64, u64),
        answers: impl Fn(u32) -> bool,
        rx_drops: impl Fn(u64) -> u64,
        changes: &mut Vec<(u64, Change)>,
    ) -> Vec<(u64, u32)> {
        let mut sent = Vec::new();
        let mut t = from;
        while t < to {
            p.note_rx_drops(rx_drops(t));
            let mut probes = Vec::new();
            p.tick(
                s,
                cfg,
                t,
                |tunnel, seq| {
                    probes.push((tunnel, seq));
                    Sent::Yes
                },
                |c| changes.push((t, c)),
            );
            for (tunnel, seq) in probes {
                sent.push((t, seq));
                if answers(seq) {
                    let name = &s.tunnels[usize::from(tunnel)].name;
                    assert!(s.health.record_reply(tunnel, name, &reply(s, tunnel, seq)));
                }
            }
            t += 10 * MS;
        }
        sent
    }

    /// A frame dropped at this server's sockets every millisecond from 2.95 s to 4 s (a
    /// flood overrunning them), and none before or after.
    fn flood_at_3_s(t: u64) -> u64 {
        t.clamp(2_950 * MS, 4_000 * MS) / MS - 2_950
    }

    /// No frame dropped.
    fn no_drops(_: u64) -> u64 {
        0
    }

    /// The router answers every probe but #4 to #6 (`down_after` of them), whose replies are
    /// lost while this server's sockets drop frames: the tunnel stays up. Those replies were
    /// misses, and took a healthy tunnel (and with `withdraw_customers_without_tunnels` its
    /// customer's prefixes) down at 3.75 s. The same replies lost while no frame is dropped
    /// still take it down then (and three answers bring it back): only the drops excuse them.
    #[test]
    fn replies_lost_while_the_sockets_dropped_frames_are_no_misses() {
        let lost = |seq: u32| (4..=6).contains(&seq);
        for (rx_drops, down) in [(flood_at_3_s as fn(u64) -> u64, None), (no_drops, Some(3_750 * MS))] {
            let s = snap("");
            let cfg = s.health_config;
            assert_eq!((cfg.down_after, cfg.excused_max), (3, 3), "the defaults");
            let mut p = Prober::default();
            p.rebind(None, &s);
            let mut changes = Vec::new();
            let sent = run_dropping(&mut p, &s, &cfg, (0, 6_000 * MS), |seq| !lost(seq), rx_drops, &mut changes);
            let times: Vec<u64> = sent.iter().filter(|(_, seq)| lost(*seq)).map(|(t, _)| t / MS).collect();
            assert_eq!(times, [3_000, 3_250, 3_500], "#4 and the two re-probes, each at the last one's timeout");
            match down {
                None => {
                    assert!(changes.is_empty() && s.health.is_up(0), "{changes:?}");
                    assert_eq!(p.probes_excused(), 3);
                    // Settled again after #7's answer: probed after `interval`.
                    assert!(sent.iter().any(|&(t, seq)| seq == 8 && t == 4_750 * MS), "{sent:?}");
                }
                Some(at) => {
                    assert_eq!(
                        changes.first(),
                        Some(&(at, Change { tunnel: 0, up: false, excused: 0 })),
                        "{changes:?}"
                    );
                    assert_eq!(p.probes_excused(), 0);
                }
            }
        }
    }

    /// A router dead from 3 s while this server's sockets drop frames without end: its
    /// probes are excused `excused_max` times, then missed `down_after` times, and the tunnel
    /// is down at 4.5 s, `interval + (down_after + excused_max) × timeout` after its last
    /// answer (at 2 s; tunnels.md), no later. With `excused_max = 0` it goes down at 3.75 s,
    /// flood or not, as before.
    #[test]
    fn a_dead_tunnel_goes_down_excused_max_probes_later_under_a_lasting_flood() {
        let flood = |t: u64| t / MS; // a frame dropped every millisecond, throughout
        let s = snap("");
        let cfg = s.health_config;
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        run_dropping(&mut p, &s, &cfg, (0, 8_000 * MS), |seq| seq <= 3, flood, &mut changes);
        assert_eq!(changes, [(4_500 * MS, Change { tunnel: 0, up: false, excused: 3 })]);
        let bound = 2_000 + 1_000 + (3 + 3) * 250;
        assert_eq!(changes[0].0, bound * MS, "tunnels.md's bound under a lasting flood");
        assert!(!s.health.is_up(0) && s.health.judged(0));
        assert_eq!(p.probes_excused(), 3, "excused no more while down: misses, as before");

        let strict = HealthConfig { excused_max: 0, ..cfg };
        let s = snap("");
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        run_dropping(&mut p, &s, &strict, (0, 8_000 * MS), |seq| seq <= 3, flood, &mut changes);
        assert_eq!(changes, [(3_750 * MS, Change { tunnel: 0, up: false, excused: 0 })]);
        assert_eq!(p.probes_excused(), 0);
    }

    /// Frames dropped before a probe went, not while it waited, excuse nothing: a flood that
    /// ended at 2.99 s leaves the tunnel that stops answering at 3 s to go down at 3.75 s as
    /// any other. Excused probes do not hold a tunnel up for ever either: through a flood of
    /// a minute, an answer every sixth probe (five unanswered in a row) keeps it up, one every
    /// seventh (six in a row, `excused_max + down_after`) does not.
    #[test]
    fn only_drops_while_a_probe_waits_excuse_it_and_only_excused_max_in_a_row() {
        let s = snap("");
        let cfg = s.health_config;
        let mut p = Prober::default();
        p.rebind(None, &s);
        let mut changes = Vec::new();
        let ended = |t: u64| t.min(2_990 * MS) / MS;
        run_dropping(&mut p, &s, &cfg, (0, 6_000 * MS), |seq| seq <= 3, ended, &mut changes);
        assert_eq!(changes, [(3_750 * MS, Change { tunnel: 0, up: false, excused: 0 })]);

        for (every, goes_down) in [(6, false), (7, true)] {
            let s = snap("");
            let mut p = Prober::default();
            p.rebind(None, &s);
            let mut changes = Vec::new();
            let answered = |seq: u32| seq <= 3 || seq.is_multiple_of(every);
            run_dropping(&mut p, &s, &cfg, (0, 60_000 * MS), answered, |t| t / MS, &mut changes);
            assert_eq!(!changes.is_empty(), goes_down, "an answer every {every}th probe: {changes:?}");
            if goes_down {
                assert_eq!(changes[0].1, Change { tunnel: 0, up: false, excused: 3 });
            }
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
