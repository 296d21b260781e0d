//! The run's BGP announcements ([`crate::bgp`]): the guard is told what the running snapshot
//! serves while every worker keeps publishing and the XDP program is attached, and nothing
//! otherwise; a customer prefix withdrawn for its tunnels is held back as the run is after a
//! withdrawal ([`CustomerHolds`]). Reloads change what is announced; a reload that adds,
//! changes or removes `[bgp]` starts, restarts or stops the guard. A stop by SIGTERM drains
//! first ([`Announcer::drain`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::attachment::Attachment;
use crate::bgp::{Announcements, Serving, Speaker};
use crate::metrics::BgpStats;
use crate::snapshot::Snapshot;
use crate::worker::WorkerReport;

/// How long the workers go on forwarding after a clean stop's withdrawal.
const DRAIN_AFTER_WITHDRAWAL: Duration = Duration::from_millis(500);

/// The cause of a withdrawal while [`HoldDown`] holds announcing back.
const HELD_DOWN: &str = "held down after a withdrawal";

pub(super) struct Announcer {
    speaker: Option<Speaker>,
    /// Why the guard could not be started, said once.
    start_failed: Option<String>,
    /// Each worker's publications.
    progress: Liveness,
    /// Why everything is withdrawn, while it is (said once per cause).
    withdrawn: Option<String>,
    /// Holds announcing back for a while after a withdrawal.
    hold: HoldDown,
    /// Holds each customer prefix withdrawn for its tunnels back for a while after they return.
    customers: CustomerHolds,
    /// When the running guard was last told anything: longer ago than `withdraw_after` (the
    /// process stopped, starved) means it heard nothing and withdrew on its own. Counted
    /// from the telling, not from the last tick: a tick that restarts a guard blocks while
    /// the old one withdraws, and the new one has heard nothing yet to miss.
    last_told: Option<Instant>,
    /// The marker this run keeps for its include file ([`crate::bgp::running_path`]):
    /// there while the run announces, removed when it stops because it was asked to.
    /// Found at start, it says the last run ended otherwise (a crash, kill -9, a worker's
    /// error): the new run holds its announcements back as after a withdrawal, so that a
    /// crash loop (systemd restarts the unit within seconds) does not flap every prefix
    /// with each restart.
    marker: Option<PathBuf>,
    /// Starts in a row that found the marker (it counts them): each doubles the hold, so
    /// that a run crashing after it announced does not flap every prefix at each restart
    /// for ever. Back to 0 once a run has announced for [`STABLE_AFTER`].
    unclean_starts: u32,
    /// Since when this run has announced without a break.
    announcing_since: Option<Instant>,
    /// The run stops, and its guard drains (GRACEFUL_SHUTDOWN): a guard that ends meanwhile
    /// withdrew, and is not started again.
    draining: bool,
}

/// How long a run must announce without a break before its start counts as clean: the
/// restarts before it no longer lengthen the hold.
const STABLE_AFTER: Duration = Duration::from_secs(600);

/// The longest hold a run of unclean starts brings (or `announce_after_ms`, if longer).
const MAX_HOLD: Duration = Duration::from_secs(600);

impl Announcer {
    pub(super) fn new(workers: usize) -> Announcer {
        Announcer {
            speaker: None,
            start_failed: None,
            progress: Liveness::new(workers, Instant::now()),
            withdrawn: None,
            hold: HoldDown::default(),
            customers: CustomerHolds::default(),
            last_told: None,
            marker: None,
            unclean_starts: 0,
            announcing_since: None,
            draining: false,
        }
    }

    /// At a stop signal that lets the run drain (SIGTERM): has the guard announce what it
    /// announces with GRACEFUL_SHUTDOWN (RFC 8326), so that peers that honour it move the
    /// traffic to other servers while this one still forwards it, and returns how long the
    /// run goes on (`graceful_shutdown_ms`) before [`Announcer::stop`] withdraws. `None`:
    /// nothing to drain (no guard, a drain of 0, nothing announced), the run stops at once.
    /// Withdrawn at once (on the wire 15 to 20 ms after the signal, in the lab), the traffic
    /// upstreams still sent here was lost until they converged.
    pub(super) fn drain(&mut self) -> Option<Duration> {
        let speaker = self.speaker.as_mut().filter(|s| s.announces())?;
        let drain = speaker.config().graceful_shutdown;
        if drain.is_zero() {
            return None;
        }
        if let Err(e) = speaker.drain() {
            log_line!("transitd: telling the BGP guard to drain: {e}: withdrawing at once");
            return None;
        }
        self.draining = true;
        log_line!(
            "transitd: draining: every prefix announced with GRACEFUL_SHUTDOWN (65535:0) for graceful_shutdown_ms \
             ({} ms) while the workers forward, then withdrawn (SIGINT stops at once)",
            drain.as_millis()
        );
        Some(drain)
    }

    /// How long to be well before announcing after a withdrawal: `announce_after`, doubled
    /// for each unclean start in a row after the first, up to [`MAX_HOLD`].
    fn hold_for(&self, announce_after: Duration) -> Duration {
        let doublings = self.unclean_starts.saturating_sub(1).min(16);
        announce_after.saturating_mul(1 << doublings).min(MAX_HOLD.max(announce_after))
    }

    /// Notes whether the run announces at `now`; one that has for [`STABLE_AFTER`] makes
    /// the starts before it count no more (its marker says so, for the next start).
    fn announcing(&mut self, yes: bool, now: Instant) {
        if !yes {
            self.announcing_since = None;
            return;
        }
        let since = *self.announcing_since.get_or_insert(now);
        if self.unclean_starts > 0 && now.saturating_duration_since(since) >= STABLE_AFTER {
            self.unclean_starts = 0;
            self.write_marker();
        }
    }

    /// Writes this run's marker: its pid and the unclean starts in a row it ends.
    fn write_marker(&self) {
        if let Some(marker) = &self.marker
            && let Err(e) = std::fs::write(marker, format!("{} {}\n", std::process::id(), self.unclean_starts))
        {
            log_line!("transitd: {}: {e} (a crash loop would announce at every start)", marker.display());
        }
    }

    /// Takes the marker of `include` for this run; held down if the last run left it.
    fn mark(&mut self, include: &Path) {
        let marker = crate::bgp::running_path(include);
        if self.marker.as_ref() == Some(&marker) {
            return;
        }
        self.unmark();
        if let Ok(text) = std::fs::read_to_string(&marker) {
            // `PID STARTS`; an older run wrote its pid alone.
            let before: u32 = text.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            self.unclean_starts = before.saturating_add(1);
            log_line!(
                "transitd: the last run announcing through {} did not stop cleanly ({} is there; {} in a row): \
                 announcing once well for announce_after_ms{}",
                include.display(),
                marker.display(),
                crate::report::counted(self.unclean_starts as usize, "such start"),
                match self.unclean_starts {
                    1 => String::new(),
                    2 => ", doubled (at most ten minutes)".to_string(),
                    n => format!(", doubled {} times (at most ten minutes)", n - 1),
                }
            );
            self.hold.hold();
            self.withdrawn = Some(HELD_DOWN.to_string()); // said above, not again
        }
        self.marker = Some(marker);
        self.write_marker();
    }

    /// Removes this run's marker: its announcements end as asked.
    fn unmark(&mut self) {
        if let Some(marker) = self.marker.take()
            && let Err(e) = std::fs::remove_file(&marker)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log_line!("transitd: {}: {e} (the next start will hold its announcements back)", marker.display());
        }
    }

    /// One look at the run: called about ten times a second by the supervisor, with what
    /// its last look at the XDP program's attachment found (`xdp`). `meanwhile` is called
    /// while a stopping guard is waited for (the supervisor's watchdog feeding).
    pub(super) fn tick(
        &mut self,
        snap: &Snapshot,
        reports: &[Arc<Mutex<WorkerReport>>],
        xdp: Attachment,
        stats: &BgpStats,
        meanwhile: &mut dyn FnMut(),
    ) {
        let published: Vec<Option<u64>> = reports.iter().map(|r| r.lock().ok().map(|r| r.publications)).collect();
        self.progress.observe(&published, Instant::now());
        stats.configured.store(snap.bgp.is_some(), Ordering::Relaxed);
        let Some(config) = &snap.bgp else {
            if let Some(s) = self.speaker.take() {
                log_line!("transitd: [bgp] is gone from the configuration: withdrawing and stopping the guard");
                s.stop_while(&mut *meanwhile);
                self.unmark();
            }
            return;
        };
        // Only where BIRD is restarts the guard (a restart withdraws everything for a moment,
        // on every server a fleet's change reaches at once); a new `withdraw_after` it is told.
        let guard_of = |b: &crate::snapshot::Bgp| (b.bird_socket.clone(), b.bird_include.clone());
        let timing = |b: &crate::snapshot::Bgp| (b.withdraw_after, b.graceful_shutdown);
        if let Some(s) = self.speaker.as_mut().filter(|s| timing(s.config()) != timing(config))
            && let Err(e) = s.retime(config)
        {
            log_line!("transitd: telling the BGP guard withdraw_after_ms and graceful_shutdown_ms: {e}");
        }
        if self.draining && self.speaker.is_none() {
            return; // it drained and withdrew: nothing to announce any more
        }
        if self.speaker.as_ref().is_some_and(|s| guard_of(s.config()) != guard_of(config)) {
            log_line!("transitd: [bgp] changed: restarting the guard");
            if let Some(s) = self.speaker.take() {
                let old = s.config().bird_include.clone();
                s.stop_while(&mut *meanwhile);
                // The old include still defines transitd4 and transitd6 (empty): beside the
                // new one, under one `include "…/*.conf"`, BIRD would refuse every
                // configuration for defining them twice.
                if old != config.bird_include
                    && let Err(e) = crate::bgp::bird::vacate(&old)
                {
                    log_line!("transitd: {e}");
                }
            }
        }
        if self.speaker.is_none() {
            if self.start_failed.is_none() {
                for old in crate::bgp::bird::vacate_others(&config.bird_include) {
                    log_line!("transitd: {} (an earlier bird_include) left defining nothing", old.display());
                }
            }
            match Speaker::start(config) {
                Ok(s) => {
                    // After the start: a guard that started holds the include's lock, so
                    // the marker is this run's to keep.
                    self.mark(&config.bird_include);
                    (self.speaker, self.start_failed, self.last_told) = (Some(s), None, None);
                }
                Err(e) => {
                    let said = format!("{e:#}");
                    if self.start_failed.as_ref() != Some(&said) {
                        log_line!("transitd: {said} (trying again)");
                    }
                    self.start_failed = Some(said);
                    stats.bird_in_sync.store(false, Ordering::Relaxed);
                    return;
                }
            }
        }
        let now = Instant::now();
        let unheard = self.last_told.is_some_and(|t| now.saturating_duration_since(t) > config.withdraw_after);
        let stalled: Vec<u32> = self
            .progress
            .stalled(config.withdraw_after, Instant::now())
            .filter_map(|i| reports.get(i))
            .map(|r| r.lock().map_or(u32::MAX, |r| r.queue))
            .collect();
        let why = match (stalled.is_empty(), xdp) {
            _ if unheard => Some("transitd said nothing to its guard for longer than withdraw_after_ms".to_string()),
            (true, Attachment::Attached) => None,
            (false, _) => Some(format!("the workers of {} are stalled", crate::report::queue_list(&stalled))),
            (true, Attachment::Unknown) => {
                Some("whether transitd's XDP program is attached cannot be queried".to_string())
            }
            (true, Attachment::Detached) => Some("transitd's XDP program is no longer attached".to_string()),
        };
        let hold = self.hold_for(config.announce_after);
        let well = self.hold.announce(why.is_some(), now, hold);
        let why = why.or_else(|| (!well).then(|| HELD_DOWN.to_string()));
        self.announcing(why.is_none(), now);
        let wanted = if why.is_none() { self.customers.of(snap, now) } else { Announcements::none() };
        stats.announced.store(wanted.0.len() as u64, Ordering::Relaxed);
        stats.withdrawn.store(why.is_some(), Ordering::Relaxed);
        let in_sync = self.speaker.as_ref().and_then(Speaker::bird_in_sync);
        stats.bird_in_sync.store(in_sync == Some(true), Ordering::Relaxed);
        if why != self.withdrawn {
            match &why {
                Some(held) if held == HELD_DOWN => log_line!(
                    "transitd: well again: announcing once well for announce_after_ms ({} ms{})",
                    hold.as_millis(),
                    if hold > config.announce_after { ", doubled for the unclean starts in a row" } else { "" }
                ),
                Some(why) => log_line!("transitd: withdrawing every BGP announcement: {why}"),
                None if self.withdrawn.is_some() => log_line!("transitd: announcing again"),
                None => {}
            }
            self.withdrawn = why;
        }
        if let Some(s) = &mut self.speaker {
            match s.tell(&wanted) {
                Ok(()) => self.last_told = Some(Instant::now()),
                Err(e) => {
                    if self.draining {
                        log_line!("transitd: the BGP guard ended its drain ({e}): it withdrew");
                    } else {
                        log_line!("transitd: the BGP guard is gone ({e}): starting another");
                    }
                    if let Some(s) = self.speaker.take() {
                        s.stop_while(&mut *meanwhile);
                    }
                }
            }
        }
    }

    /// Withdraws everything (the guard does, then exits) before the run stops forwarding.
    /// `asked`: the run stops because it was asked to (a signal), not for a fault; only
    /// then may the next start announce at once.
    pub(super) fn stop(mut self, asked: bool) {
        if let Some(s) = self.speaker.take() {
            s.stop();
            // The upstream moves the traffic away once BIRD has withdrawn (milliseconds in
            // the lab); what is already on its way here is still forwarded meanwhile.
            std::thread::sleep(DRAIN_AFTER_WITHDRAWAL);
        }
        if asked {
            self.unmark();
        }
    }
}

/// Announcing again after a withdrawal waits until the run has been well for a while: a
/// fault that comes and goes (a worker stalling now and then) would otherwise withdraw and
/// announce every prefix each time, and upstreams that damp flapping routes (RFC 2439)
/// suppress such a prefix for far longer than the fault lasted. A run that was never
/// withdrawn announces at once.
#[derive(Debug, Default)]
struct HoldDown {
    /// Withdrawn since the last announcement.
    held: bool,
    /// Since when no cause to withdraw has been seen, while held.
    well_since: Option<Instant>,
}

impl HoldDown {
    /// Holds announcing back as a withdrawal does.
    fn hold(&mut self) {
        (self.held, self.well_since) = (true, None);
    }

    /// Whether to announce at `now`: `faulty`, a cause to withdraw is present; `hold`, how
    /// long the run must have been well after one.
    fn announce(&mut self, faulty: bool, now: Instant, hold: Duration) -> bool {
        if faulty {
            self.hold();
            return false;
        }
        if !self.held {
            return true;
        }
        let since = *self.well_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= hold {
            (self.held, self.well_since) = (false, None);
        }
        !self.held
    }
}

/// With `withdraw_customers_without_tunnels`, each customer prefix's own [`HoldDown`]:
/// withdrawn at once when none of the tunnels its routes take serves (its traffic has
/// nowhere to go from here: [`crate::bgp::Serving`]), and announced again only once one has
/// served for `announce_after`, doubled for each withdrawal in a row (up to [`MAX_HOLD`])
/// until the prefix has been announced for [`STABLE_AFTER`]. A tunnel's own hysteresis
/// (`down_after` misses, `up_after` answers) takes a second or two each way: a lossy one went
/// down and up every few seconds, each time withdrawing and announcing the prefixes it
/// carries, and upstreams that damp flapping routes (RFC 2439) suppress them for far
/// longer. A prefix never announced yet (none of its tunnels judged since the start) is
/// announced at once, as a run is. One announced stays announced while its tunnels are only
/// not judged yet (a reload gave the one that served another key, `interface` or name, and
/// probes it afresh): it serves as it did, and withdrawn until the new probes were judged
/// and then held, it went from the Internet for `announce_after` on every server the reload
/// reached, the new probes answered at once. Its tunnels judged down withdraw it, a few
/// probes later.
///
/// Kept by prefix, as upstreams damp (RFC 2439 keeps a penalty per route) and as prefixes
/// are judged: a reload that renames a customer, or gives its prefixes to another, keeps
/// their hold. Kept by customer name, a renamed customer was new, and its prefixes,
/// withdrawn a moment before, were announced at once. A prefix new to the configuration
/// has no hold, and is announced with the first tunnel of its routes that serves.
#[derive(Debug, Default)]
struct CustomerHolds {
    /// By prefix: customer ids and names move with reloads, the prefixes announced do not.
    holds: HashMap<IpNet, CustomerHold>,
    /// Calls of [`CustomerHolds::of`]: a prefix not seen in the last is gone.
    ticks: u64,
}

/// One customer prefix's hold.
#[derive(Debug, Default)]
struct CustomerHold {
    hold: HoldDown,
    /// Withdrawals since the prefix was last announced for [`STABLE_AFTER`] in a row.
    withdrawals: u32,
    /// Since when it has been announced without a break.
    announced_since: Option<Instant>,
    /// The call that last saw it.
    seen: u64,
}

impl CustomerHolds {
    /// What `snap` serves at `now`, each customer prefix held back as above.
    fn of(&mut self, snap: &Snapshot, now: Instant) -> Announcements {
        self.ticks = self.ticks.wrapping_add(1);
        let (tick, holds) = (self.ticks, &mut self.holds);
        let base = snap.bgp.as_ref().map_or(Duration::ZERO, |b| b.announce_after);
        let wanted = Announcements::held(snap, |prefix, serving| {
            let h = match holds.entry(prefix) {
                Entry::Occupied(h) => h.into_mut(),
                // Never announced: nothing to hold back.
                Entry::Vacant(_) if serving != Serving::Yes => return false,
                Entry::Vacant(h) => h.insert(CustomerHold::default()),
            };
            h.seen = tick;
            h.announce(serving, now, base)
        });
        holds.retain(|_, h| h.seen == tick);
        wanted
    }
}

impl CustomerHold {
    /// Whether to announce the prefix at `now`: `serving`, whether the tunnels its routes
    /// take do; `base`, `announce_after`. Announced, it stays so while they are not judged yet.
    fn announce(&mut self, serving: Serving, now: Instant, base: Duration) -> bool {
        let stranded = match serving {
            Serving::Yes => false,
            Serving::NotJudged => self.announced_since.is_none(),
            Serving::No => true,
        };
        if stranded && self.announced_since.take().is_some() {
            self.withdrawals = self.withdrawals.saturating_add(1);
        }
        let doublings = self.withdrawals.saturating_sub(1).min(16);
        let hold = base.saturating_mul(1 << doublings).min(MAX_HOLD.max(base));
        if !self.hold.announce(stranded, now, hold) {
            self.announced_since = None;
            return false;
        }
        let since = *self.announced_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= STABLE_AFTER {
            self.withdrawals = 0;
        }
        true
    }
}

/// Which workers have stopped publishing (they publish ten times a second, idle or busy):
/// each one's last count and when it last changed.
struct Liveness(Vec<(u64, Instant)>);

impl Liveness {
    fn new(workers: usize, now: Instant) -> Liveness {
        Liveness(vec![(0, now); workers])
    }

    /// Records the counts seen `now` (`None`: not readable this time, no change).
    fn observe(&mut self, published: &[Option<u64>], now: Instant) {
        for (seen, p) in self.0.iter_mut().zip(published) {
            if let Some(p) = *p
                && p != seen.0
            {
                *seen = (p, now);
            }
        }
    }

    /// The workers whose count has not changed for longer than `limit` at `now`.
    fn stalled(&self, limit: Duration, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().filter(move |(_, s)| now.saturating_duration_since(s.1) > limit).map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_after_a_run_that_did_not_stop_as_asked_is_held_down() {
        let dir = std::env::temp_dir().join(format!("transitd-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let include = dir.join("bird.conf");
        let marker = dir.join("bird.conf.running");
        let _ = std::fs::remove_file(&marker);
        let (t0, hold) = (Instant::now(), Duration::from_millis(5000));

        let mut first = Announcer::new(1);
        first.mark(&include);
        assert!(marker.exists(), "a run announcing keeps the marker");
        assert!(first.hold.announce(false, t0, hold), "no marker found: announced at once");
        first.stop(false); // a worker's error: not asked to stop
        assert!(marker.exists(), "left for the next start to find");

        let mut second = Announcer::new(1);
        second.mark(&include);
        assert!(!second.hold.announce(false, t0, hold), "the last run ended for a fault: held");
        assert!(second.hold.announce(false, t0 + hold, hold), "well for the hold: announced");
        second.stop(true);
        assert!(!marker.exists(), "a stop as asked removes it");

        let mut third = Announcer::new(1);
        third.mark(&include);
        assert!(third.hold.announce(false, t0, hold), "after a clean stop: at once");
        third.stop(true);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A crash loop after announcing: each unclean start in a row doubles the hold (up to ten
    /// minutes), where a constant hold flapped every prefix at each restart for ever; a run
    /// that announces for ten minutes makes the next start's hold the first's again.
    #[test]
    fn unclean_starts_in_a_row_double_the_hold() {
        let dir = std::env::temp_dir().join(format!("transitd-marker-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let include = dir.join("bird.conf");
        let _ = std::fs::remove_file(dir.join("bird.conf.running"));
        let (t0, hold) = (Instant::now(), Duration::from_secs(5));
        let start = || {
            let mut run = Announcer::new(1);
            run.mark(&include);
            run
        };
        let holds: Vec<Duration> = (0..10)
            .map(|_| {
                let run = start();
                let held = run.hold_for(hold);
                run.stop(false); // crashed (after announcing, or not)
                held
            })
            .collect();
        let secs: Vec<u64> = holds.iter().map(Duration::as_secs).collect();
        // The first start found no marker (its hold applies only after a withdrawal).
        assert_eq!(secs, [5, 5, 10, 20, 40, 80, 160, 320, 600, 600]);
        // A run that announces for ten minutes, then crashes: the next start holds 5 s.
        let mut stable = start();
        assert_eq!(stable.hold_for(hold), Duration::from_secs(600));
        stable.announcing(true, t0);
        stable.announcing(true, t0 + STABLE_AFTER);
        stable.stop(false);
        assert_eq!(start().hold_for(hold), hold);
        // Runs whose announcing broke off before then count on: the third in a row since.
        let mut brief = start();
        brief.announcing(true, t0);
        brief.announcing(false, t0 + STABLE_AFTER / 2);
        brief.announcing(true, t0 + STABLE_AFTER);
        brief.stop(false);
        assert_eq!(start().hold_for(hold), Duration::from_secs(20));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn after_a_withdrawal_announcing_waits_until_well_for_the_hold() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let hold = Duration::from_millis(5000);
        let mut h = HoldDown::default();
        assert!(h.announce(false, ms(0), hold), "never withdrawn: at once");
        assert!(!h.announce(true, ms(100), hold));
        assert!(!h.announce(false, ms(200), hold), "well since 200 ms");
        assert!(!h.announce(false, ms(5100), hold));
        // A fault again within the hold starts it over.
        assert!(!h.announce(true, ms(5150), hold));
        assert!(!h.announce(false, ms(5200), hold));
        assert!(!h.announce(false, ms(10_199), hold));
        assert!(h.announce(false, ms(10_200), hold), "well for the whole hold");
        assert!(h.announce(false, ms(10_300), hold));
        // A hold of 0: announced at the first tick without a fault.
        assert!(!h.announce(true, ms(11_000), Duration::ZERO));
        assert!(h.announce(false, ms(11_100), Duration::ZERO));
    }

    /// withdraw_customers_without_tunnels: a customer whose one tunnel flaps is withdrawn at
    /// once each time, and announced again only once the tunnel has served for
    /// announce_after (5 s), doubled for each withdrawal in a row until the customer has been
    /// announced for ten minutes. It was announced again at the tunnel's first return, and
    /// a lossy tunnel flapped its prefixes in BGP at every change.
    #[test]
    fn a_customer_whose_tunnels_flap_is_held_down() {
        let text = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdraw_customers_without_tunnels = true\n\
                    [[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"a1\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a1\"\n";
        let snap = Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap();
        let (t0, mut holds) = (Instant::now(), CustomerHolds::default());
        // Whether customer a's prefix is announced `s` seconds in (beside the anycast /32).
        let mut announced = |s: u64| holds.of(&snap, t0 + Duration::from_secs(s)).0.len() == 2;
        assert!(!announced(0), "not judged yet: never announced, nothing held");
        snap.health.set_judged(0);
        assert!(announced(0), "announced at once the first time");
        snap.health.set_up(0, false);
        assert!(!announced(1), "withdrawn at once");
        snap.health.set_up(0, true);
        assert!(!announced(2), "held: its tunnel has served for 0 s");
        assert!(!announced(6));
        assert!(announced(7), "served for announce_after");
        snap.health.set_up(0, false);
        assert!(!announced(8));
        snap.health.set_up(0, true);
        assert!(!announced(9));
        assert!(!announced(14), "the second withdrawal in a row holds it twice as long");
        assert!(announced(19));
        // Announced for ten minutes: the next withdrawal's hold is the first's again.
        assert!(announced(619));
        snap.health.set_up(0, false);
        assert!(!announced(620));
        snap.health.set_up(0, true);
        assert!(!announced(621));
        assert!(announced(626));
    }

    /// A prefix is held by the tunnels its routes take. `spare`, in no route and not probed
    /// (so never down), kept the prefix announced while `a1`, which all its traffic takes,
    /// had not answered yet, and while it was down: the traffic was lost here, where anycast
    /// would have taken it to a server that reaches the customer.
    #[test]
    fn a_tunnel_no_route_takes_holds_no_prefix_announced() {
        let text = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdraw_customers_without_tunnels = true\n\
                    [[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"a1\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
                    [[customer.tunnel]]\nname = \"spare\"\nremote = \"198.51.100.9\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a1\"\n";
        let snap = Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap();
        let (t0, mut holds) = (Instant::now(), CustomerHolds::default());
        let mut announced = |s: u64| holds.of(&snap, t0 + Duration::from_secs(s)).0.len() == 2;
        assert!(!announced(0), "a1 not judged yet: the spare does not stand in for it");
        snap.health.set_judged(0);
        assert!(announced(0));
        snap.health.set_up(0, false);
        assert!(!announced(1), "withdrawn at once, the spare up");
        snap.health.set_up(0, true);
        assert!(!announced(2), "held: a1 has served for 0 s");
        assert!(announced(7), "a1 served for announce_after");
    }

    /// A reload that renames a held customer, its prefixes the same, keeps them held: the
    /// hold is the prefixes', which upstreams damp. By customer name the renamed one was
    /// new, and announced its prefixes at once, a moment after they were withdrawn.
    #[test]
    fn a_held_customer_renamed_by_a_reload_stays_held() {
        let text = |name: &str| {
            format!(
                "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdraw_customers_without_tunnels = true\n\
                 [[customer]]\nname = \"{name}\"\nprefixes = [\"203.0.113.0/24\"]\n\
                 [[customer.tunnel]]\nname = \"a1\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
                 [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a1\"\n"
            )
        };
        let old = Snapshot::build(&crate::config::parse("t.toml", &text("a")).unwrap()).unwrap();
        let (t0, mut holds) = (Instant::now(), CustomerHolds::default());
        let mut announced = |snap: &Snapshot, s: u64| holds.of(snap, t0 + Duration::from_secs(s)).0.len() == 2;
        old.health.set_judged(0);
        assert!(announced(&old, 0));
        old.health.set_up(0, false);
        assert!(!announced(&old, 1), "withdrawn");
        old.health.set_up(0, true);
        assert!(!announced(&old, 2), "held: its tunnel has served for 0 s");
        let mut renamed = Snapshot::build(&crate::config::parse("t.toml", &text("b")).unwrap()).unwrap();
        renamed.take_over_from(&old);
        assert!(renamed.health.is_up(0) && renamed.health.judged(0), "the tunnel's health carries by its name");
        assert!(!announced(&renamed, 3), "renamed, still held");
        assert!(!announced(&renamed, 6));
        assert!(announced(&renamed, 7), "served for announce_after since 2 s, as if not renamed");
    }

    /// A reload that has a customer's one tunnel probed afresh (another key, `interface` or
    /// name: not judged until its new probes are) keeps the customer announced: its tunnel
    /// serves as it did. Withdrawn until the first new probe was answered and then held for
    /// announce_after, the customer went from BIRD for 5.2 s in a lab (`birdc show route`),
    /// its router answering that probe at once; a fleet reloaded from etcd withdrew it
    /// everywhere. Judged down, the tunnel withdraws it; one withdrawn stays so until judged.
    #[test]
    fn a_tunnel_probed_afresh_keeps_its_customer_announced() {
        let text = |key: &str| {
            format!(
                "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdraw_customers_without_tunnels = true\n\
                 [[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
                 [[customer.tunnel]]\nname = \"a1\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n{key}\
                 [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a1\"\n"
            )
        };
        let after = |old: &Snapshot, key: &str| {
            let mut new = Snapshot::build(&crate::config::parse("t.toml", &text(key)).unwrap()).unwrap();
            new.take_over_from(old);
            new
        };
        let (t0, mut holds) = (Instant::now(), CustomerHolds::default());
        let mut announced = |snap: &Snapshot, ms: u64| holds.of(snap, t0 + Duration::from_millis(ms)).0.len() == 2;
        let old = Snapshot::build(&crate::config::parse("t.toml", &text("")).unwrap()).unwrap();
        old.health.set_judged(0);
        assert!(announced(&old, 0));
        let keyed = after(&old, "key = 7\n");
        assert!(keyed.health.is_up(0) && !keyed.health.judged(0), "probed afresh");
        assert!(announced(&keyed, 1000), "not judged yet: announced as before");
        keyed.health.set_judged(0); // its first probe under the key answered
        assert!(announced(&keyed, 1100), "no hold to wait out");
        // A key the router does not take: down_after probes missed.
        let wrong = after(&keyed, "key = 8\n");
        assert!(announced(&wrong, 2000), "not judged yet");
        wrong.health.set_up(0, false);
        wrong.health.set_judged(0);
        assert!(!announced(&wrong, 2750), "judged down: withdrawn");
        // Withdrawn, a tunnel probed afresh is waited for, as at start, then held.
        let back = after(&wrong, "key = 7\n");
        assert!(back.health.is_up(0) && !back.health.judged(0));
        assert!(!announced(&back, 2800), "withdrawn: held until judged");
        back.health.set_judged(0);
        assert!(!announced(&back, 2900), "then for announce_after");
        assert!(announced(&back, 7900));
    }

    #[test]
    fn a_worker_is_stalled_once_its_count_stands_still_longer_than_the_limit() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let limit = Duration::from_millis(500);
        let mut l = Liveness::new(2, t0);
        l.observe(&[Some(1), Some(1)], ms(100));
        l.observe(&[Some(2), Some(1)], ms(400));
        assert_eq!(l.stalled(limit, ms(600)).collect::<Vec<_>>(), Vec::<usize>::new());
        // Worker 1 last moved at 100 ms: stalled after 600 ms; worker 0 keeps going.
        l.observe(&[Some(3), Some(1)], ms(700));
        assert_eq!(l.stalled(limit, ms(700)).collect::<Vec<_>>(), [1]);
        // An unreadable report is no sign of life, and no sign of death either.
        l.observe(&[Some(4), None], ms(800));
        assert_eq!(l.stalled(limit, ms(800)).collect::<Vec<_>>(), [1]);
        l.observe(&[Some(5), Some(2)], ms(900));
        assert_eq!(l.stalled(limit, ms(900)).collect::<Vec<_>>(), Vec::<usize>::new());
        assert_eq!(l.stalled(limit, ms(1500)).collect::<Vec<_>>(), [0, 1]);
    }
}
