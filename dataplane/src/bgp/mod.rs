//! Announcing by BGP: what this server announces (computed from the running snapshot and
//! the tunnels' health), and the speaker that keeps BIRD announcing exactly that.
//!
//! transitd does not speak BGP itself: BIRD 2 does (sessions, timers, policy, and the
//! operator's own filters), and transitd keeps one file BIRD includes, a static protocol
//! per address family holding a route for every prefix to announce. The file is the whole
//! state: BIRD reads it again on `configure`, after its own restart, and a server whose
//! file is empty announces nothing.
//!
//! Withdrawing must work when transitd cannot, so `transitd run` writes through a guard: a
//! small process of its own (`transitd bgp guard`, [`guard`]) that it starts and tells, ten
//! times a second, what to announce. The guard withdraws everything when transitd stops
//! telling it (a hung process), when its pipe closes (transitd exited, even by `kill -9`),
//! and on SIGTERM (systemd stopping the service), then after a drain: every route announced
//! with the GRACEFUL_SHUTDOWN community (RFC 8326) for `graceful_shutdown_ms` while transitd
//! still forwards, so that peers move the traffic away first. transitd itself tells it to
//! withdraw everything while a worker is stalled or the kernel cannot say whether the XDP
//! program is attached (a program detached under the run ends it).

pub mod bird;
pub mod guard;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::snapshot::{Bgp, CustomerId, NextTunnel, RouteGroupId, Snapshot, Tunnel};

/// Whether a customer prefix's tunnels serve, as `withdraw_customers_without_tunnels` judges
/// it: the best of the tunnels its routes take, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Serving {
    /// Every tunnel its routes take is down (as the prober judged it).
    No,
    /// None is known to serve, but one is up whose probes the prober has not judged yet: at
    /// start, or after a reload that added it or probes it afresh (another `remote`, `key`
    /// or `interface`, or a new name). It takes traffic.
    NotJudged,
    /// One serves: not probed, or up in the prober's judgement.
    Yes,
}

/// The prefixes to announce, sorted (IPv4 before IPv6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcements(pub BTreeSet<IpNet>);

impl Announcements {
    /// Nothing: every route withdrawn.
    pub fn none() -> Announcements {
        Announcements::default()
    }

    /// What `snap` serves: the anycast addresses, every customer prefix (less, if so
    /// configured, those none of whose routes' tunnels is known to serve: the probed ones
    /// all down or not judged yet) and the soft-unicast egress prefixes.
    pub fn of(snap: &Snapshot) -> Announcements {
        Announcements::held(snap, |_, serving| serving == Serving::Yes)
    }

    /// [`Announcements::of`], with each customer prefix, where
    /// `withdraw_customers_without_tunnels` is set, announced as `announce(prefix, serving)`
    /// says (`serving`: whether the tunnels its routes take are known to serve); asked once a
    /// prefix. A run holds a prefix so withdrawn back for a while after its tunnels return,
    /// and keeps one announced while its tunnels are only not judged yet (`run`'s
    /// per-prefix hold-down).
    pub fn held(snap: &Snapshot, mut announce: impl FnMut(IpNet, Serving) -> bool) -> Announcements {
        let mut set = BTreeSet::new();
        set.insert(IpNet::V4(Ipv4Net::from(std::net::Ipv4Addr::from(snap.anycast))));
        if let Some(v6) = snap.anycast_v6 {
            set.insert(IpNet::V6(Ipv6Net::from(v6)));
        }
        let withdraw_for_tunnels = snap.bgp.as_ref().is_some_and(|b| b.withdraw_customers_without_tunnels);
        // Each route group's best tunnel, one walk over the groups (ten times a second):
        // a prefix is then judged by the groups its addresses look up.
        let groups = if withdraw_for_tunnels { group_serving(snap) } else { Vec::new() };
        for &(net, customer) in &snap.customer_prefixes {
            // Without the setting none is asked: every customer is announced.
            let asked = withdraw_for_tunnels.then(|| announce(net, prefix_serving(snap, net, customer, &groups)));
            if asked.unwrap_or(true) {
                set.insert(net);
            }
        }
        if let Some(su) = &snap.soft_unicast {
            for &(addr, len) in &su.egress {
                if let Ok(net) = Ipv4Net::new(addr, len) {
                    set.insert(IpNet::V4(net));
                }
            }
        }
        Announcements(set)
    }

    /// The guard's wire form: `announce` and the prefixes, space-separated
    /// ([`guard::Told::line`]).
    fn line(&self) -> String {
        let mut line = String::from("announce");
        for net in &self.0 {
            line.push(' ');
            line.push_str(&net.to_string());
        }
        line
    }

    /// Reads [`Announcements::line`]'s prefixes.
    fn parse(words: &str) -> Result<Announcements, String> {
        words
            .split_whitespace()
            .map(|w| w.parse::<IpNet>().map_err(|_| format!("`{w}` is not a prefix")))
            .collect::<Result<_, _>>()
            .map(Announcements)
    }
}

/// Whether tunnel `t` serves: down as the prober judged it, up and judged (or not probed,
/// never down), or up while its probes are not judged yet. A probed tunnel is counted on
/// once the prober has judged it: up from the start, a dead one had its customer announced
/// at every start (and every reload that added it) and withdrawn a few probes later.
fn tunnel_serving(snap: &Snapshot, t: &Tunnel) -> Serving {
    if !snap.health.is_up(t.id) {
        Serving::No
    } else if t.interface.is_none() || snap.health.judged(t.id) {
        Serving::Yes
    } else {
        Serving::NotJudged
    }
}

/// Each route group's best tunnel (by [`Snapshot::route_groups`]): a packet takes the group's
/// healthy tunnels of its best priority that has one, so the group serves while any of its
/// tunnels does; with all down it takes them anyway, and its traffic is lost here.
fn group_serving(snap: &Snapshot) -> Vec<Serving> {
    let tunnels: Vec<Serving> = snap.tunnels.iter().map(|t| tunnel_serving(snap, t)).collect();
    let of = |n: &NextTunnel| tunnels.get(usize::from(n.tunnel)).copied();
    snap.route_groups.iter().map(|group| group.iter().filter_map(of).max().unwrap_or(Serving::No)).collect()
}

/// Whether customer prefix `net` (of `customer`) serves: the best of the route groups its
/// addresses look up (`groups`: [`group_serving`]). Only those carry its traffic: a tunnel no
/// route of it takes (a spare, one its router only sends from), or one only in a route that
/// longer ones hold whole, serves none of it, and counted, it kept the prefix announced
/// while every tunnel its traffic took was down, the traffic lost here rather than taken by
/// anycast to a server that reaches the customer. Announced while any of it is served (BGP
/// cannot withdraw a part: [`partly_unreachable_prefixes`] counts those). A prefix no route
/// covers (its traffic dropped as `no_route`, said when the configuration is read) is never
/// withdrawn for its tunnels: it has none.
fn prefix_serving(snap: &Snapshot, net: IpNet, customer: CustomerId, groups: &[Serving]) -> Serving {
    prefix_range(snap, net, customer, groups).map_or(Serving::Yes, |(_, best)| best)
}

/// The worst and the best of the route groups the addresses of customer prefix `net` (of
/// `customer`) look up (`groups`: [`group_serving`]); `None` when no route covers any of it.
fn prefix_range(snap: &Snapshot, net: IpNet, customer: CustomerId, groups: &[Serving]) -> Option<(Serving, Serving)> {
    let customer = snap.customers.get(usize::from(customer))?;
    let of = |g: RouteGroupId| groups.get(g as usize).copied().unwrap_or(Serving::No);
    customer.routes.values_within(net).map(of).fold(None, |range, s| match range {
        None => Some((s, s)),
        Some((worst, best)) => Some((worst.min(s), best.max(s))),
    })
}

/// Per customer, how many of its prefixes have every tunnel their routes take down
/// ([`Serving::No`], as `withdraw_customers_without_tunnels` judges a prefix, set or not):
/// their traffic has nowhere to go from here. For the metrics, whose tunnels up or down
/// say less: a tunnel no route takes (a spare, not probed and so always up) carries none of
/// it, and read by customer it hid every other tunnel being down.
pub fn unreachable_prefixes(snap: &Snapshot) -> Vec<u64> {
    let groups = group_serving(snap);
    let mut counts = vec![0; snap.customers.len()];
    for &(net, customer) in &snap.customer_prefixes {
        if prefix_serving(snap, net, customer, &groups) == Serving::No
            && let Some(n) = counts.get_mut(usize::from(customer))
        {
            *n += 1;
        }
    }
    counts
}

/// Per customer, how many of its prefixes are served in part only: some of their addresses
/// look up route groups whose every tunnel is down ([`Serving::No`]) while others take a
/// tunnel that is up (judged or not). A /24 routed as two /25s, one over a dead tunnel, is
/// one: BGP announces the prefix whole and cannot withdraw the half, so it stays announced
/// (and out of [`unreachable_prefixes`], which sees a tunnel up) while the traffic to that
/// half comes here and is lost. Addresses no route covers are `no_route`'s, not counted.
pub fn partly_unreachable_prefixes(snap: &Snapshot) -> Vec<u64> {
    let groups = group_serving(snap);
    let mut counts = vec![0; snap.customers.len()];
    for &(net, customer) in &snap.customer_prefixes {
        if let Some((Serving::No, best)) = prefix_range(snap, net, customer, &groups)
            && best != Serving::No
            && let Some(n) = counts.get_mut(usize::from(customer))
        {
            *n += 1;
        }
    }
    counts
}

/// The file whose lock makes a guard the only one keeping `include`: `<include>.lock`.
pub fn lock_path(include: &Path) -> PathBuf {
    beside(include, ".lock")
}

/// The file a run keeps while it announces through `include`: `<include>.running`.
pub fn running_path(include: &Path) -> PathBuf {
    beside(include, ".running")
}

/// `include` with `suffix` added to its name.
fn beside(include: &Path, suffix: &str) -> PathBuf {
    let mut name = include.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the lock of `include` ([`lock_path`], `flock`, exclusive), held until the returned
/// lock is dropped or the process ends however it ends. Two guards on one include file
/// (two transitd servers configured alike by mistake) would each undo what the other
/// announces: the second is refused, naming the file.
pub fn lock_include(include: &Path) -> anyhow::Result<Flock<File>> {
    let path = lock_path(include);
    // The include's directory is made as the include is written; the lock comes first.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow::anyhow!(
            "{}: another transitd's BGP guard keeps this BIRD include file (it holds {}); two would undo \
             each other's announcements",
            include.display(),
            path.display()
        ),
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// `transitd run`'s side of the guard: starts it and tells it what to announce.
pub struct Speaker {
    config: Bgp,
    guard: Child,
    pipe: ChildStdin,
    /// What the guard was last told.
    told: Option<Announcements>,
    /// What the guard last said of BIRD: 0 nothing yet, 1 it took the last announcement,
    /// 2 it did not (refused, or unreachable).
    bird: Arc<AtomicU8>,
}

impl Speaker {
    /// Starts a guard (this same executable, `transitd bgp guard`) for `config`.
    pub fn start(config: &Bgp) -> anyhow::Result<Speaker> {
        // Another guard on the file is refused here, before a process is started for it (the
        // guard takes the lock itself; this look says why, once, while the run retries).
        drop(lock_include(&config.bird_include)?);
        let exe = std::env::current_exe()?;
        let mut guard = Command::new(exe)
            .args(["bgp", "guard"])
            .arg("--bird-socket")
            .arg(&config.bird_socket)
            .arg("--bird-include")
            .arg(&config.bird_include)
            .arg("--withdraw-after-ms")
            .arg(config.withdraw_after.as_millis().to_string())
            .arg("--graceful-shutdown-ms")
            .arg(config.graceful_shutdown.as_millis().to_string())
            .stdin(Stdio::piped())
            // Its stdout says whether BIRD took what it was told (a pipe of its own: holding
            // transitd's would keep the report's reader waiting on it). Its log lines go to
            // transitd's stderr.
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting the BGP guard (transitd bgp guard): {e}"))?;
        let pipe = guard.stdin.take().ok_or_else(|| anyhow::anyhow!("the BGP guard has no stdin"))?;
        let said = guard.stdout.take().ok_or_else(|| anyhow::anyhow!("the BGP guard has no stdout"))?;
        let bird = Arc::new(AtomicU8::new(0));
        let heard = bird.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(said).lines() {
                match line.as_deref() {
                    Ok("bird ok") => heard.store(1, Ordering::Relaxed),
                    Ok("bird failing") => heard.store(2, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(Speaker { config: config.clone(), guard, pipe, told: None, bird })
    }

    /// Whether BIRD announces what the guard was last told, as the guard last said (`None`:
    /// it has said nothing yet).
    pub fn bird_in_sync(&self) -> Option<bool> {
        match self.bird.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Bgp {
        &self.config
    }

    /// Tells the guard to announce `wanted` (sent when it changed, else a sign of life).
    pub fn tell(&mut self, wanted: &Announcements) -> std::io::Result<()> {
        if self.told.as_ref() == Some(wanted) {
            return writeln!(self.pipe, "{}", guard::Told::Alive.line());
        }
        writeln!(self.pipe, "{}", wanted.line())?;
        self.told = Some(wanted.clone());
        Ok(())
    }

    /// Tells the guard a new `withdraw_after` and `graceful_shutdown` (the rest of `config`
    /// is what it was started with: a change of it needs another guard).
    pub fn retime(&mut self, config: &Bgp) -> std::io::Result<()> {
        writeln!(self.pipe, "{}", guard::Told::WithdrawAfter(config.withdraw_after).line())?;
        writeln!(self.pipe, "{}", guard::Told::GracefulShutdown(config.graceful_shutdown).line())?;
        self.config.withdraw_after = config.withdraw_after;
        self.config.graceful_shutdown = config.graceful_shutdown;
        Ok(())
    }

    /// Whether the guard was last told to announce something.
    pub fn announces(&self) -> bool {
        self.told.as_ref().is_some_and(|t| !t.0.is_empty())
    }

    /// Tells the guard that transitd stops: it announces what it was told with
    /// GRACEFUL_SHUTDOWN until [`Speaker::stop`] (transitd's SIGTERM reaches only transitd
    /// when sent to its pid; systemd's reaches the guard too, which drains alike).
    pub fn drain(&mut self) -> std::io::Result<()> {
        writeln!(self.pipe, "{}", guard::Told::Drain.line())
    }

    /// Withdraws everything and waits for the guard to have done it and exited, for at most
    /// [`STOP_WAIT`]: a guard whose BIRD takes the connection and answers nothing waits for
    /// it for as long as that takes (nothing else would tell BIRD), and a stop or a reload
    /// that waited with it hung, the run's final report lost to the service manager's kill.
    /// Past the wait, the guard goes on alone.
    pub fn stop(self) {
        self.stop_while(|| {});
    }

    /// [`Speaker::stop`], calling `meanwhile` every few milliseconds of the wait: a supervisor
    /// that waits for the guard still feeds the service manager's watchdog (the workers
    /// forward all along; a reload's wait of 16 s starved a `WatchdogSec` of 10).
    pub fn stop_while(self, meanwhile: impl FnMut()) {
        let Speaker { mut guard, mut pipe, .. } = self;
        // Told, the guard says why it withdraws (not "transitd exited", after a reload); it
        // withdraws all the same when its pipe closes (the write failed: it is gone).
        let _ = writeln!(pipe, "{}", guard::Told::Stop.line());
        drop(pipe);
        if !exited_within(&mut guard, STOP_WAIT, meanwhile) {
            log_line!(
                "transitd: the BGP guard is still withdrawing after {} s (BIRD takes its connection and \
                 answers nothing): it goes on alone, and tells BIRD once BIRD answers",
                STOP_WAIT.as_secs()
            );
        }
    }
}

/// How long a stop waits for the guard's withdrawal: one exchange with BIRD (a 10 s
/// timeout) and the 5 s its last word retries a BIRD that is not there, and a second more.
const STOP_WAIT: Duration = Duration::from_secs(16);

/// Whether `child` exited within `limit` (or cannot be waited for: nothing to wait on),
/// calling `meanwhile` between looks.
fn exited_within(child: &mut Child, limit: Duration, mut meanwhile: impl FnMut()) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => {
                meanwhile();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// A stop waits for the guard's withdrawal a bounded time, then goes on (the guard may
    /// wait for good on a BIRD that answers nothing): a child that outlives the limit is
    /// let go at the limit, one that exits is seen to have.
    #[test]
    fn a_stop_waits_for_the_guard_a_bounded_time() {
        let mut lingering = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        let mut looks = 0;
        assert!(!super::exited_within(&mut lingering, Duration::from_millis(200), || looks += 1));
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        assert!(looks >= 2, "the wait's caller was called {looks} times"); // every 20 ms
        let _ = (lingering.kill(), lingering.wait());
        let mut quick = Command::new("true").spawn().unwrap();
        assert!(super::exited_within(&mut quick, Duration::from_secs(10), || {}));
    }

    /// The lock is taken in the include's directory before the include is first written
    /// there: a directory not made yet (no /run/transitd on a manual run, a reload that
    /// moved the include) is made, where every start failed on it and nothing was announced.
    #[test]
    fn the_lock_makes_the_includes_directory() {
        let dir = std::env::temp_dir().join(format!("transitd-bgp-lock-{}", std::process::id()));
        let include = dir.join("new").join("bird.conf");
        let lock = super::lock_include(&include);
        assert!(lock.is_ok(), "{:?}", lock.err());
        assert!(super::lock_path(&include).exists());
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
