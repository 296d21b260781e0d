//! The run's BGP announcements ([`crate::bgp`]): the guard is told what the running snapshot
//! serves while every worker keeps publishing and the XDP program is attached, and nothing
//! otherwise. Reloads change what is announced; a reload that adds, changes or removes
//! `[bgp]` starts, restarts or stops the guard.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use transitd_bpf::XdpProgram;

use crate::bgp::{Announcements, Speaker};
use crate::metrics::BgpStats;
use crate::snapshot::Snapshot;
use crate::worker::WorkerReport;

/// How often the XDP program's attachment is looked at (a netlink query).
const XDP_CHECK_EVERY: Duration = Duration::from_millis(500);

pub(super) struct Announcer {
    speaker: Option<Speaker>,
    /// Each worker's last publication count and when it last changed.
    progress: Vec<(u64, Instant)>,
    /// Whether the XDP program was attached at the last look, and when that was.
    attached: (bool, Instant),
    /// Why everything is withdrawn, while it is (said once per cause).
    withdrawn: Option<String>,
}

impl Announcer {
    pub(super) fn new(workers: usize) -> Announcer {
        let long_ago = Instant::now() - XDP_CHECK_EVERY;
        Announcer {
            speaker: None,
            progress: vec![(0, Instant::now()); workers],
            attached: (true, long_ago),
            withdrawn: None,
        }
    }

    /// One look at the run: called about ten times a second by the supervisor.
    pub(super) fn tick(
        &mut self,
        snap: &Snapshot,
        reports: &[Arc<Mutex<WorkerReport>>],
        (program, ifindex): (&XdpProgram, i32),
        stats: &BgpStats,
    ) {
        for (seen, r) in self.progress.iter_mut().zip(reports) {
            let now = r.lock().map_or(seen.0, |r| r.publications);
            if now != seen.0 {
                *seen = (now, Instant::now());
            }
        }
        stats.configured.store(snap.bgp.is_some(), Ordering::Relaxed);
        let Some(config) = &snap.bgp else {
            if let Some(s) = self.speaker.take() {
                eprintln!("transitd: [bgp] is gone from the configuration: withdrawing and stopping the guard");
                s.stop();
            }
            return;
        };
        if self.speaker.as_ref().is_some_and(|s| s.config() != config) {
            eprintln!("transitd: [bgp] changed: restarting the guard");
            if let Some(s) = self.speaker.take() {
                s.stop();
            }
        }
        if self.speaker.is_none() {
            match Speaker::start(config) {
                Ok(s) => self.speaker = Some(s),
                Err(e) => {
                    eprintln!("transitd: {e:#}");
                    return;
                }
            }
        }
        if self.attached.1.elapsed() >= XDP_CHECK_EVERY {
            let ours = transitd_bpf::attached(ifindex, program).is_ok_and(|f| f.is_some_and(|f| f.is_transitd()));
            self.attached = (ours, Instant::now());
        }
        let stalled: Vec<u32> = self
            .progress
            .iter()
            .zip(reports)
            .filter(|(p, _)| p.1.elapsed() > config.withdraw_after)
            .map(|(_, r)| r.lock().map_or(u32::MAX, |r| r.queue))
            .collect();
        let why = match (stalled.is_empty(), self.attached.0) {
            (true, true) => None,
            (false, _) => Some(format!("the workers of queues {stalled:?} are stalled")),
            (true, false) => Some("transitd's XDP program is no longer attached".to_string()),
        };
        let wanted = if why.is_none() { Announcements::of(snap) } else { Announcements::none() };
        stats.announced.store(wanted.0.len() as u64, Ordering::Relaxed);
        stats.withdrawn.store(why.is_some(), Ordering::Relaxed);
        if why != self.withdrawn {
            match &why {
                Some(why) => eprintln!("transitd: withdrawing every BGP announcement: {why}"),
                None if self.withdrawn.is_some() => eprintln!("transitd: announcing again"),
                None => {}
            }
            self.withdrawn = why;
        }
        if let Some(s) = &mut self.speaker
            && let Err(e) = s.tell(&wanted)
        {
            eprintln!("transitd: the BGP guard is gone ({e}): starting another");
            if let Some(s) = self.speaker.take() {
                s.stop();
            }
        }
    }

    /// Withdraws everything (the guard does, then exits) before the run stops forwarding.
    pub(super) fn stop(self) {
        if let Some(s) = self.speaker {
            s.stop();
        }
    }
}
