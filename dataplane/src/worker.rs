//! The worker loop, one for every way transitd moves frames: a NIC queue (`run`), a capture
//! (`replay`), the tests' in-memory frames and the benchmarks. It is generic over the
//! backend ([`FrameIo`]) and owns everything around the pipeline a worker needs:
//!
//! - between batches, it follows the running snapshot: counters, rate limits and spill are
//!   resized when a reload changes them, the prober and the drop capture rebound;
//! - per batch, it receives, runs the pipeline, offers each frame and its outcome to the
//!   drop capture (the core never sees the capture), samples flows for IPFIX, hands what the pipeline passed to the
//!   host through the exception path (live backends), sends what the pipeline spilled and,
//!   on the worker that probes, the tunnel health probes;
//! - a few times a second, it publishes a copy of its counters, the backend's counters and
//!   its batch latencies into a [`WorkerReport`] for the reporter and the metrics, and adds
//!   what its socket dropped on receiving to the run's [`RxDrops`] for the prober.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gre::EthernetAddrs;
use hdrhistogram::Histogram;

use crate::dropcap::Tap;
use crate::health::{self, Prober};
use crate::io::{FrameIo, IoStats, Polled, SocketStats};
use crate::ipfix::Sampler;
use crate::pipeline::{Retired, SPILL_SLOTS, Spill, WorkerState, WorkerStats, process_batch_via};
use crate::punt::Punt;
use crate::snapshot::{Snapshot, TunnelId};

/// What a worker publishes for the reporter and the metrics, a few times a second.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    /// Queue served.
    pub queue: u32,
    /// Pipeline counters.
    pub stats: WorkerStats,
    /// The snapshot whose customer, tunnel and rule indices `stats` uses.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Backend counters.
    pub io: IoStats,
    /// Nanoseconds per batch (receive, process, transmit), since the start.
    pub latency: Histogram<u64>,
    /// The same over the last complete window of [`LATENCY_WINDOW`], or over the window in
    /// progress while no complete one has had a batch (at the start, after a quiet spell).
    pub latency_window: Histogram<u64>,
    /// Publications so far: it grows while the worker is alive, idle or not (the
    /// supervisor feeds systemd's watchdog only while every worker's does).
    pub publications: u64,
}

/// The window recent batch latencies are reported over.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(10);

/// How often counters are published.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The frames the kernel dropped on their way into the run's sockets (`XDP_STATISTICS`:
/// `rx_ring_full`, `rx_dropped`, and `fill_ring_empty`, which in zero-copy mode counts the
/// frames the driver had no buffer for), summed over the workers as each last published
/// them. The prober reads it once a tick, a relaxed load and no lock: a probe unanswered
/// while it rose may have had its reply dropped here, by a flood at anyone, and is not
/// held against its tunnel ([`Prober::note_rx_drops`]). In copy mode a worker that falls
/// behind loses frames as `rx_dropped` (its fill ring empties first), not `rx_ring_full`.
#[derive(Debug, Default)]
pub struct RxDrops(AtomicU64);

impl RxDrops {
    /// The frames dropped so far: only its rises mean anything.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A worker's part of the run's [`RxDrops`]: the sum, and how much of it is this worker's.
struct RxDropsShare {
    sum: Arc<RxDrops>,
    added: u64,
}

impl RxDropsShare {
    /// Adds what the socket dropped since the last call. A read that failed (all zeros)
    /// adds nothing, and the next that succeeds adds what it missed.
    fn add(&mut self, socket: &SocketStats) {
        let dropped = socket.rx_ring_full.saturating_add(socket.rx_dropped).saturating_add(socket.rx_fill_ring_empty);
        if dropped > self.added {
            self.sum.0.fetch_add(dropped - self.added, Ordering::Relaxed);
            self.added = dropped;
        }
    }
}

/// How long a stopping worker waits for its receive ring to empty and its transmissions
/// to complete.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// How often the prober looks at its tunnels: often enough for any `[health]` timing (10 ms
/// at least), rarely enough that a worker with thousands of tunnels does not spend its
/// batches on them.
const PROBE_TICK_NS: u64 = 1_000_000;

/// Batch latencies are recorded from 1 ns to 10 s with two significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 2).expect("constant bounds are valid")
}

impl Default for WorkerReport {
    fn default() -> Self {
        WorkerReport {
            queue: 0,
            stats: WorkerStats::default(),
            snapshot: None,
            io: IoStats::default(),
            latency: latency_histogram(),
            latency_window: latency_histogram(),
            publications: 0,
        }
    }
}

/// A worker's publication: where it goes, and the latencies gathered since the last one.
struct Publisher {
    report: Arc<Mutex<WorkerReport>>,
    published: Instant,
    polls: u32,
    /// Since the last publication.
    latency: Histogram<u64>,
    /// In the current window.
    window: Histogram<u64>,
    window_started: Instant,
    /// The last complete window had no batch, or none has completed: the one in progress is
    /// reported, so that batches after a quiet spell show at once, not a window later.
    last_window_idle: bool,
}

impl Publisher {
    fn new(report: Arc<Mutex<WorkerReport>>) -> Publisher {
        Publisher {
            report,
            published: Instant::now(),
            polls: 0,
            latency: latency_histogram(),
            window: latency_histogram(),
            window_started: Instant::now(),
            last_window_idle: true,
        }
    }

    fn record(&mut self, ns: u64) {
        self.latency.saturating_record(ns);
        self.window.saturating_record(ns);
    }

    /// Copies the counters out, under the snapshot they are indexed by. While a scrape
    /// holds the report (copying it), the worker does not wait unless `wait`: it publishes
    /// at its next poll instead (nothing is lost; `due` stays true).
    fn publish(&mut self, stats: &WorkerStats, io: IoStats, snap: &Arc<Snapshot>, wait: bool) {
        // A report a panicking reader left locked is plain counters: still written (giving
        // up on it stopped this worker's publishing for good, and the watchdog and BGP
        // guard took the worker for stuck).
        let mut r = match wait {
            true => self.report.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            false => match self.report.try_lock() {
                Ok(r) => r,
                Err(std::sync::TryLockError::WouldBlock) => return,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            },
        };
        r.stats.clone_from(stats);
        if !r.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap)) {
            r.snapshot = Some(snap.clone());
        }
        r.io = io;
        // Both histograms have the same bounds: adding cannot fail or allocate.
        let _ = r.latency.add(&self.latency);
        let complete = self.window_started.elapsed() >= LATENCY_WINDOW;
        if complete || self.last_window_idle {
            r.latency_window.reset();
            let _ = r.latency_window.add(&self.window);
        }
        if complete {
            self.last_window_idle = self.window.is_empty();
            self.window.reset();
            self.window_started = Instant::now();
        }
        r.publications += 1;
        drop(r);
        self.latency.reset();
        self.published = Instant::now();
    }

    /// True when it is time to publish (the clock is read once every 256 polls, and on the
    /// poll after an idle sleep).
    fn due(&mut self) -> bool {
        self.polls = self.polls.wrapping_add(1);
        self.polls.is_multiple_of(256) && self.published.elapsed() >= PUBLISH_EVERY
    }

    /// The worker slept: the next poll reads the clock. A worker sleeping `--idle-sleep-us`
    /// between idle polls makes 256 polls in 256 sleeps (a second at 4 ms), and a worker
    /// that publishes late looks stalled: its BGP announcements are withdrawn and the
    /// systemd watchdog goes unfed. Beside a sleep, a clock read costs nothing.
    fn slept(&mut self) {
        self.polls |= 255;
    }
}

/// One worker: a backend, the pipeline's state, and what the worker does around it.
pub struct Worker<I> {
    io: I,
    state: WorkerState,
    /// The snapshot `state` is sized for and the prober and tap are bound to.
    snapshot: Arc<Snapshot>,
    tap: Option<Tap>,
    sampler: Option<Sampler>,
    punt: Option<Punt>,
    prober: Option<Prober>,
    last_probe_tick_ns: u64,
    publisher: Option<Publisher>,
    /// Where the socket's receive drops are summed with the other workers', at each
    /// publication; the prober reads the sum.
    rx_drops: Option<RxDropsShare>,
    /// Where state a reload replaced goes to be freed (`run`'s supervisor); without, it is
    /// freed here.
    retire: Option<crossbeam::channel::Sender<Retired>>,
    clock: crate::io::WallClock,
}

impl<I: FrameIo> Worker<I> {
    /// A worker on `io` running `snapshot`.
    pub fn new(io: I, snapshot: Arc<Snapshot>) -> Worker<I> {
        Worker {
            io,
            state: WorkerState::new(&snapshot),
            snapshot,
            tap: None,
            sampler: None,
            punt: None,
            prober: None,
            last_probe_tick_ns: 0,
            publisher: None,
            rx_drops: None,
            retire: None,
            clock: crate::io::WallClock::new(),
        }
    }

    /// Offers every frame and its outcome to `tap` (drop capture).
    pub fn capture(mut self, mut tap: Tap) -> Worker<I> {
        tap.bind(self.snapshot.clone());
        self.tap = Some(tap);
        self
    }

    /// Samples flows for IPFIX export into `sampler` (while the snapshot has `[ipfix]`).
    pub fn sample_flows(mut self, sampler: Sampler) -> Worker<I> {
        self.sampler = Some(sampler);
        self
    }

    /// Hands frames the pipeline passes to the host's stack through `punt` (for a backend
    /// whose frames the kernel no longer has: AF_XDP).
    pub fn punt_to(mut self, punt: Punt) -> Worker<I> {
        self.punt = Some(punt);
        self
    }

    /// Makes this the worker that sends the tunnel health probes.
    pub fn probe(mut self) -> Worker<I> {
        let mut prober = Prober::default();
        prober.rebind(None, &self.snapshot);
        self.prober = Some(prober);
        self
    }

    /// Publishes counters into `report` a few times a second (and when the snapshot changes).
    pub fn publish_to(mut self, report: Arc<Mutex<WorkerReport>>) -> Worker<I> {
        self.publisher = Some(Publisher::new(report));
        self
    }

    /// Adds what the socket drops on receiving into `sum` as counters are published (with
    /// [`Worker::publish_to`]), and, on the worker that probes, has the prober read `sum`.
    pub fn share_rx_drops(mut self, sum: Arc<RxDrops>) -> Worker<I> {
        self.rx_drops = Some(RxDropsShare { sum, added: 0 });
        self
    }

    /// Sends the state a reload replaces to `to`, to be freed there.
    pub fn retire_to(mut self, to: crossbeam::channel::Sender<Retired>) -> Worker<I> {
        self.retire = Some(to);
        self
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.state.stats
    }

    /// The pipeline's state (counters, limits, the last batch's outcomes).
    pub fn state(&self) -> &WorkerState {
        &self.state
    }

    /// The backend.
    pub fn io(&self) -> &I {
        &self.io
    }

    /// The backend, to change.
    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }

    /// The backend and the pipeline's state, when the worker is done.
    pub fn into_parts(self) -> (I, WorkerState) {
        (self.io, self.state)
    }

    /// Runs `snap` from the next batch on, if it is not the one running: between batches,
    /// so no frame sees half of each. Rule indices change meaning, and buckets may have
    /// changed, so their state restarts; customers and tunnels keep their counts by name,
    /// tracked TCP connections stay tracked.
    pub fn follow(&mut self, snap: &Arc<Snapshot>) {
        if Arc::ptr_eq(snap, &self.snapshot) {
            return;
        }
        let old = std::mem::replace(&mut self.snapshot, snap.clone());
        // Worked out by the supervisor when it published `snap` after `old` (or here, when
        // this worker skipped a snapshot): no name is hashed between two batches.
        let succession = snap.succession_from(&old);
        self.state.stats.rebind(snap, &succession);
        // Tracked TCP connections survive a reload unless the table's size changed.
        let retired = self.state.limits.rebind_as(&old, snap, &succession);
        if let Some(to) = self.retire.as_ref().filter(|_| !retired.is_empty()) {
            // Full (or the supervisor gone): freed here after all, as without a taker.
            let _ = to.try_send(retired);
        }
        if snap.frame_size != old.frame_size {
            // Empty: the spill is sent after every batch.
            self.state.spill = Spill::new(SPILL_SLOTS, snap.frame_size);
        }
        if let Some(p) = &mut self.prober {
            let raised = p.rebind_as(Some((&old, &succession)), snap);
            say_raised(snap, &raised);
        }
        if let Some(tap) = &mut self.tap {
            tap.bind(snap.clone());
        }
        if let Some(p) = &mut self.publisher {
            p.publish(&self.state.stats, self.io.stats(), snap, false);
        }
    }

    /// One batch: receive, process with Ethernet addresses `eth` (`None`: the next hop is
    /// not resolved), offer to the capture, send the spill and any probes due.
    pub fn poll(&mut self, eth: Option<EthernetAddrs>) -> std::io::Result<Polled> {
        // One clock read per batch gives the frames' receive time, the prober's time and the
        // start of the batch's latency (clock reads showed in profiles at four a batch).
        let began = Instant::now();
        let now = self.clock.wall_ns(began);
        // The link's MTU as the backend knows it now (an operator may change it).
        self.state.limits.link_mtu = self.io.link_mtu();
        let (snap, state, tap, punt) = (&self.snapshot, &mut self.state, &mut self.tap, &mut self.punt);
        let sampler = &mut self.sampler;
        let every = snap.ipfix.as_ref().map_or(0, |x| x.sample);
        let polled = self.io.poll(now, &mut |frames| {
            if let Some(s) = sampler.as_mut() {
                s.pick(every, frames);
            }
            process_batch_via(snap, eth, frames, state);
            if let Some(s) = sampler.as_mut() {
                s.record(snap, state.outcomes());
            }
            if let Some(tap) = tap {
                for (frame, outcome) in frames.iter().zip(state.outcomes()) {
                    tap.offer(frame, outcome);
                }
            }
            if let Some(punt) = punt {
                for frame in frames.iter() {
                    punt.offer(frame);
                }
            }
        })?;
        // Counted as sent by the pipeline, not sent by the backend after all.
        if !self.io.unsent().is_empty() {
            self.state.uncount_unsent(self.io.unsent());
        }
        if self.prober.is_some() && now.saturating_sub(self.last_probe_tick_ns) >= PROBE_TICK_NS {
            self.last_probe_tick_ns = now;
            // The batch's spill first: probes go into an empty one. After a batch of
            // fragments had filled it, every tick found no room, no probe went out, and no
            // tunnel was judged while the fragments lasted.
            self.send_spill()?;
            if let Some(prober) = &mut self.prober {
                if let Some(share) = &self.rx_drops {
                    prober.note_rx_drops(share.sum.total());
                }
                send_probes(prober, &self.snapshot, eth.as_ref(), now, &mut self.state);
            }
        }
        self.send_spill()?;
        if let Some(p) = &mut self.publisher {
            if let Polled::Frames(1..) = polled {
                p.record(began.elapsed().as_nanos() as u64);
            }
            if p.due() {
                let io = self.io.stats();
                if let Some(share) = &mut self.rx_drops {
                    share.add(&io.socket);
                }
                p.publish(&self.state.stats, io, &self.snapshot, false);
            }
        }
        Ok(polled)
    }

    /// Sends what the spill holds (fragments, ICMP errors, probes); what the backend could not
    /// send is taken off the counts, and a probe not sent is the prober's to send again.
    fn send_spill(&mut self) -> std::io::Result<()> {
        if self.state.spill.is_empty() {
            return Ok(());
        }
        let sent = self.io.send_spill(&mut self.state.spill);
        self.state.stats.uncount_unsent(&self.state.spill);
        if let Some(prober) = &mut self.prober {
            use crate::pipeline::TxReason;
            for (reason, _, t) in self.state.spill.unsent() {
                match (reason, t) {
                    (TxReason::HealthProbe, Some(t)) => prober.unsent(t, &self.snapshot.health_config),
                    (TxReason::PathMtuProbe, Some(t)) => prober.path_mtu_probe_unsent(t),
                    _ => {}
                }
            }
        }
        self.state.spill.clear();
        sent.map(drop)
    }

    /// Polls until `stop`, following `shared` between batches and sending with the
    /// addresses `eth` gives at each batch for the snapshot followed; `idle_sleep` after a poll that found nothing
    /// (zero: spin). Then empties the receive ring and lets transmissions in flight complete
    /// (for at most 200 ms, so that every frame is counted and back where it is counted),
    /// takes what the receive ring still holds whatever room there is to send it, and
    /// publishes a last time.
    pub fn run(
        &mut self,
        shared: &ArcSwap<Snapshot>,
        eth: impl Fn(&Snapshot) -> Option<EthernetAddrs>,
        stop: &AtomicBool,
        idle_sleep: Duration,
    ) -> std::io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let snap = shared.load();
            if !Arc::ptr_eq(&snap, &self.snapshot) {
                self.follow(&arc_swap::Guard::into_inner(snap));
            }
            let addrs = eth(&self.snapshot);
            match self.poll(addrs)? {
                Polled::Idle if !idle_sleep.is_zero() => {
                    std::thread::sleep(idle_sleep);
                    if let Some(p) = &mut self.publisher {
                        p.slept();
                    }
                }
                Polled::Idle => std::hint::spin_loop(),
                _ => {}
            }
        }
        // `run` takes the socket out of the XDP program before it sets `stop`: what the
        // program redirected until then is in the receive ring, and is received, processed
        // and counted here, until a poll finds the ring empty. Left there, it was lost with
        // no counter saying so (hundreds of frames a queue at 100 kpps: the program's
        // `redirected` past every worker's `rx`). It is forwarded as before, not dropped as
        // `next_hop_unresolved`.
        self.poll_until(&eth, |polled, io| {
            let ring_empty = matches!(polled, Ok(Polled::Idle | Polled::End) | Err(_));
            ring_empty && io.frames().in_tx == 0
        });
        // What is still in the receive ring waited for room on a tx ring the kernel does not
        // send from (the link set down, the device gone: the kicks refused; a hung driver) or
        // outlasted the wait: taken now whatever the room, each frame that cannot be sent
        // counted as such (`tx_ring_full`) and not as sent. Left in the ring, it was counted
        // nowhere (26 to 32 frames on a queue stopped with its link down). The program no
        // longer redirects into the ring, so it empties in a few polls; the wait bounds them.
        self.io.end_backpressure();
        self.poll_until(&eth, |polled, _| !matches!(polled, Ok(Polled::Frames(1..))));
        if let Some(p) = &mut self.publisher {
            p.publish(&self.state.stats, self.io.stats(), &self.snapshot, true);
        }
        Ok(())
    }

    /// Polls a stopping worker until `done` says a poll's result (and the backend after it)
    /// ends the drain, or for [`DRAIN_WAIT`] at most, sending with the addresses `eth` gives
    /// for the snapshot followed. A failed poll ends nothing by itself: `done` judges it, since
    /// a stopping worker counts what it still can.
    fn poll_until(
        &mut self,
        eth: &impl Fn(&Snapshot) -> Option<EthernetAddrs>,
        done: impl Fn(&std::io::Result<Polled>, &I) -> bool,
    ) {
        let deadline = Instant::now() + DRAIN_WAIT;
        while Instant::now() < deadline {
            let addrs = eth(&self.snapshot);
            let polled = self.poll(addrs);
            if done(&polled, &self.io) {
                break;
            }
        }
    }

    /// Polls until the backend is exhausted (a capture, a list of frames).
    pub fn run_to_end(&mut self, eth: Option<EthernetAddrs>) -> std::io::Result<()> {
        while self.poll(eth)? != Polled::End {}
        Ok(())
    }
}

/// Lines said at once of tunnels that changed state (a tick's, a reload's): past them, how
/// many more (the metric has each).
const SAID: usize = 32;

/// Says the tunnels a reload brought up without a probe's answer ([`Prober::rebind_as`]):
/// each was said down when its probes went unanswered, and nothing said it up again, while
/// it carried traffic (its `interface` taken out) or was probed afresh (another router, key
/// or `interface`: [`crate::snapshot::Tunnel::is_probed_as`]).
fn say_raised(snap: &Snapshot, raised: &[TunnelId]) {
    use std::fmt::Write as _;
    let mut said = String::new();
    for tunnel in raised.iter().filter_map(|&t| snap.tunnels.get(usize::from(t))).take(SAID) {
        let why = match tunnel.interface {
            None => "no longer probed (its interface was taken out)",
            Some(_) => "probed afresh (another router, key or interface)",
        };
        let _ = writeln!(said, "transitd: tunnel {} up: {why}", tunnel.name);
    }
    if raised.len() > SAID {
        let _ = writeln!(said, "transitd: and {} more tunnels changed state (transitd_tunnel_up)", raised.len() - SAID);
    }
    if !said.is_empty() {
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), said.as_bytes());
    }
}

/// Sends the probes due at `now` into the spill (counted as sent), and says when a tunnel
/// changes state.
fn send_probes(prober: &mut Prober, snap: &Snapshot, eth: Option<&EthernetAddrs>, now: u64, state: &mut WorkerState) {
    use std::fmt::Write as _;
    let (spill, stats) = (&mut state.spill, &mut state.stats);
    spill.timestamp_ns = now;
    // The tick's state changes, written in one go after it: one write of stderr, not one a
    // tunnel (hundreds going down at once blocked this forwarding worker a write each).
    let (mut said, mut changes) = (String::new(), 0usize);
    prober.tick(
        snap,
        &snap.health_config,
        now,
        |t, seq| {
            let before = spill.len();
            let sent = health::spill_probe(snap, t, seq, eth, spill);
            if sent == health::Sent::Yes {
                stats.count_spilled(spill, before);
            }
            sent
        },
        |change| {
            changes += 1;
            if changes <= SAID {
                let name = snap.tunnels.get(usize::from(change.tunnel)).map_or("?", |t| t.name.as_str());
                let _ = match (change.up, change.excused) {
                    (true, _) => writeln!(said, "transitd: tunnel {name} up: probes answered again"),
                    (false, 0) => writeln!(said, "transitd: tunnel {name} down: probes unanswered"),
                    // Said, for it went down later than `down_after` misses would have.
                    (false, n) => writeln!(
                        said,
                        "transitd: tunnel {name} down: probes unanswered ({n} more excused: this server dropped \
                         received frames while they waited)"
                    ),
                };
            }
        },
    );
    stats.health_probes_excused = prober.probes_excused();
    if changes > SAID {
        let _ = writeln!(said, "transitd: and {} more tunnels changed state (transitd_tunnel_up)", changes - SAID);
    }
    let mut mtus = 0usize;
    let disproved = prober.path_mtus(
        snap,
        now,
        |t, seq, mtu| {
            let before = spill.len();
            let sent = health::spill_path_mtu_probe(snap, t, seq, mtu, eth, spill);
            if sent == health::Sent::Yes {
                stats.count_spilled(spill, before);
            }
            sent
        },
        |t, mtu| {
            mtus += 1;
            let Some(t) = snap.tunnels.get(usize::from(t)).filter(|_| mtus <= SAID) else { return };
            if mtu < t.mtu {
                let _ = writeln!(
                    said,
                    "transitd: tunnel {} takes {mtu} bytes inside (mtu {}): the underlay's path MTU",
                    t.name, t.mtu
                );
            } else {
                let _ = writeln!(said, "transitd: tunnel {} takes its mtu {} again", t.name, t.mtu);
            }
        },
    );
    // Counted, not said: an attacker's errors, each disproved, would fill the log.
    stats.path_mtu_errors_disproved += disproved;
    if mtus > SAID {
        let _ =
            writeln!(said, "transitd: and {} more tunnels' path MTUs changed (transitd_tunnel_mtu_bytes)", mtus - SAID);
    }
    if !said.is_empty() {
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), said.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Frame, HEADROOM};

    #[test]
    fn a_poll_after_a_sleep_reads_the_clock() {
        let mut p = Publisher::new(Arc::default());
        p.published = Instant::now() - PUBLISH_EVERY;
        assert!(!p.due(), "the first poll of 256 does not read the clock");
        p.slept();
        assert!(p.due(), "the poll after a sleep does");
        p.published = Instant::now();
        p.slept();
        assert!(!p.due(), "and publishes only when it is time");
    }

    /// After a window without a batch (an idle start, a quiet spell) the report holds the
    /// window in progress, as before the first window completes: it held the idle window,
    /// NaN quantiles (`- / - / -` in `transitd stats`), for up to 10 s after batches came
    /// again. A complete window with batches is what it holds while the next is in progress.
    #[test]
    fn batches_after_an_idle_window_are_reported_at_once() {
        let loaded = crate::config::parse("t.toml", "[server]\nanycast = \"192.0.2.1\"\n").expect("parses");
        let snap = Arc::new(Snapshot::build(&loaded).expect("builds"));
        let report: Arc<Mutex<WorkerReport>> = Arc::default();
        let mut p = Publisher::new(report.clone());
        let publish = |p: &mut Publisher| {
            p.publish(&WorkerStats::default(), IoStats::default(), &snap, true);
            report.lock().unwrap().latency_window.len()
        };
        let ten_seconds_ago = || Instant::now().checked_sub(LATENCY_WINDOW).expect("the clock runs past 10 s");
        p.window_started = ten_seconds_ago();
        assert_eq!(publish(&mut p), 0, "an idle first window");
        p.record(1_000);
        p.record(2_000);
        assert_eq!(publish(&mut p), 2, "batches since, in a window not complete");
        p.window_started = ten_seconds_ago();
        p.record(3_000);
        assert_eq!(publish(&mut p), 3, "their window, complete");
        p.record(4_000);
        assert_eq!(publish(&mut p), 3, "the last complete window while the next is in progress");
    }

    /// A report a reader panicked while holding (poisoned) is still written, waiting or not:
    /// giving up on it stopped the worker's publishing for good, and the watchdog and the
    /// BGP guard took a live worker for stuck.
    #[test]
    fn a_poisoned_report_is_still_published() {
        let report: Arc<Mutex<WorkerReport>> = Arc::default();
        let reader = report.clone();
        let _ = std::thread::spawn(move || {
            let _held = reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            panic!("a reader panics while holding the report");
        })
        .join();
        assert!(report.is_poisoned());
        let loaded = crate::config::parse("t.toml", "[server]\nanycast = \"192.0.2.1\"\n").expect("parses");
        let snap = Arc::new(Snapshot::build(&loaded).expect("builds"));
        let mut p = Publisher::new(report.clone());
        let stats = WorkerStats { rx_frames: 7, ..WorkerStats::default() };
        for (wait, publications) in [(false, 1), (true, 2)] {
            p.publish(&stats, IoStats::default(), &snap, wait);
            let r = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            assert_eq!((r.stats.rx_frames, r.publications), (7, publications), "wait: {wait}");
        }
    }

    /// A backend that receives nothing and sends only the first frame of a spill.
    struct SendsOne;

    impl FrameIo for SendsOne {
        fn poll(&mut self, _: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> std::io::Result<Polled> {
            process(&mut []);
            Ok(Polled::Idle)
        }

        fn send_spill(&mut self, spill: &mut Spill) -> std::io::Result<usize> {
            for i in 1..spill.len() {
                spill.mark_unsent(i);
            }
            Ok(spill.len().saturating_sub(1))
        }
    }

    /// A backend that receives its frames and says the first of each batch was not sent.
    struct RefusesFirst(crate::io::memory::MemoryIo, bool);

    impl FrameIo for RefusesFirst {
        fn poll(&mut self, now: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> std::io::Result<Polled> {
            let polled = self.0.poll(now, process)?;
            self.1 = matches!(polled, Polled::Frames(1..));
            Ok(polled)
        }

        fn send_spill(&mut self, spill: &mut Spill) -> std::io::Result<usize> {
            self.0.send_spill(spill)
        }

        fn unsent(&self) -> &[u16] {
            if self.1 { &[0] } else { &[] }
        }
    }

    /// A frame the pipeline encapsulated that the backend did not send after all (its tx
    /// ring full) is not counted sent, in all or into its tunnel; what the pipeline decided
    /// for the customer stays counted.
    #[test]
    fn frames_the_backend_did_not_send_are_not_counted_sent() {
        use crate::pipeline::TxReason;
        let text = "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"a\"\nremote = \"198.51.100.1\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a\"\n";
        let snap = Arc::new(Snapshot::build(&crate::config::parse("t.toml", text).expect("parses")).expect("builds"));
        let udp = |sport: u16| {
            let mut frame = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
                .ipv4([8, 8, 4, 4], [203, 0, 113, 5], 64)
                .udp(sport, 53)
                .write(&mut frame, &[0; 32])
                .expect("writes");
            frame
        };
        let io = crate::io::memory::MemoryIo::new(vec![udp(1000), udp(1001)], 2048);
        let mut worker = Worker::new(RefusesFirst(io, false), snap);
        let eth = EthernetAddrs { dst: [2, 0, 0, 0, 0, 0xbb], src: [2, 0, 0, 0, 0, 1] };
        worker.run_to_end(Some(eth)).expect("runs");
        let stats = worker.stats();
        let outer = 14 + 20 + 4 + 20 + 8 + 32; // Ethernet, outer IPv4, GRE, the packet
        assert_eq!((stats.tx_frames, stats.tx_bytes), (1, outer), "the second alone went");
        assert_eq!(stats.tx[TxReason::Encapsulated.index()], 1);
        assert_eq!((stats.tunnels[0].sent.packets, stats.tunnels[0].sent.bytes), (1, outer));
        let tx_kind = crate::pipeline::Verdict::Tx { start: 0, len: 0, reason: TxReason::Encapsulated }.kind_index();
        assert_eq!(stats.customers[0][tx_kind].packets, 2, "both were the pipeline's to send");
    }

    #[test]
    fn spilled_frames_the_backend_could_not_send_are_not_counted_sent() {
        use crate::pipeline::TxReason;
        let loaded = crate::config::parse("t.toml", "[server]\nanycast = \"192.0.2.1\"\n").expect("parses");
        let mut worker = Worker::new(SendsOne, Arc::new(Snapshot::build(&loaded).expect("builds")));
        let spill = &mut worker.state.spill;
        for (len, reason) in [(100, TxReason::Fragment), (200, TxReason::Fragment), (300, TxReason::HealthProbe)] {
            spill.next_slot().expect("room");
            spill.push(HEADROOM, len, reason, None);
        }
        worker.state.stats.count_spilled(&worker.state.spill, 0);
        worker.poll(None).expect("polls");
        let stats = &worker.state.stats;
        assert_eq!((stats.tx_frames, stats.tx_bytes), (1, 100), "only the first went");
        assert_eq!(stats.tx[TxReason::Fragment.index()], 1);
        assert_eq!(stats.tx[TxReason::HealthProbe.index()], 0);
        assert!(worker.state.spill.is_empty(), "emptied for the next batch");
    }
}
