//! `transitd run`: the pipeline on NIC queues. Loads and attaches the XDP program, opens one
//! AF_XDP socket per queue, runs one pinned busy-polling worker per socket, serves metrics,
//! reloads the configuration on SIGHUP or when its file changes, prints per-worker rates and
//! drops while running, and on SIGINT/SIGTERM stops the workers, detaches and prints the
//! final counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use gre::EthernetAddrs;
use transitd_bpf::{AttachMode, XdpProgram};

use crate::config::ConfigErrors;
use crate::dropcap::{CaptureOptions, DropCapture};
use crate::fleet::{self, EtcdSource};
use crate::metrics::{ReloadStats, Sources};

use crate::health;
use crate::io::afxdp::{AfXdpConfig, AfXdpIo, BindMode};
use crate::limits::{MAX_LIST_ENTRIES, MAX_UMEM_FRAMES, MIN_UMEM_FRAMES};
use crate::neigh::{self, NextHopCell};
use crate::pipeline::{ConsumeReason, DropReason, PassReason, TxReason, WorkerStats};
use crate::snapshot::{NextHop, Snapshot};
use crate::worker::{Worker, WorkerReport};

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A file, reloaded on SIGHUP or when it changes.
    File(PathBuf),
    /// An etcd prefix, watched (SIGHUP reads it again).
    Etcd(EtcdSource),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Etcd(e) => write!(f, "{e}"),
        }
    }
}

/// What `transitd run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where the configuration comes from.
    pub config: ConfigSource,
    /// Interface.
    pub iface: String,
    /// Queues to serve (default: all rx queues of the interface).
    pub queues: Option<Vec<u32>>,
    /// Cores to pin workers to, one per queue in order (default: queue i on core i mod n).
    pub cores: Option<Vec<usize>>,
    /// XDP attach mode.
    pub attach: AttachMode,
    /// Socket bind mode.
    pub bind: BindMode,
    /// Seconds between progress lines (0: none).
    pub stats_interval: Duration,
    /// Sleep this long when a poll finds nothing (0: pure busy polling).
    pub idle_sleep: Duration,
    /// Ask the kernel for busy polling on the sockets.
    pub busy_poll: bool,
    /// UMEM frames per queue.
    pub frames: u32,
    /// Where to serve metrics (`None`: nowhere).
    pub metrics: Option<SocketAddr>,
    /// How often to look at the configuration file for a change (zero: only on SIGHUP).
    pub watch: Duration,
    /// Capture dropped frames (a snap length of 0: the configured frame size).
    pub capture: Option<CaptureOptions>,
}

/// Parses `0-3` or `0,2,5` (or a mix), at most [`MAX_LIST_ENTRIES`] entries (counted before
/// any is stored).
pub fn parse_list(text: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("`{part}` is not a number or a range like 0-3");
        let (a, b): (u32, u32) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
            None => {
                let n = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        anyhow::ensure!(a <= b, "bad range `{part}`");
        anyhow::ensure!(
            out.len() as u64 + u64::from(b - a) < MAX_LIST_ENTRIES as u64,
            "`{text}` lists more than {MAX_LIST_ENTRIES} entries"
        );
        out.extend(a..=b);
    }
    anyhow::ensure!(!out.is_empty(), "empty list `{text}`");
    Ok(out)
}

/// The queues to serve: all of the interface's rx queues, or those asked for, each one the
/// interface has, none twice.
fn queues_to_serve(iface: &str, asked: Option<&[u32]>) -> anyhow::Result<Vec<u32>> {
    let all = rx_queues(iface)?;
    let Some(asked) = asked else { return Ok(all) };
    let mut seen = std::collections::HashSet::new();
    for &q in asked {
        anyhow::ensure!(
            (q as usize) < all.len(),
            "--queues: {iface} has {} rx queues (0-{}), not queue {q}",
            all.len(),
            all.len().saturating_sub(1)
        );
        anyhow::ensure!(seen.insert(q), "--queues: queue {q} is listed twice");
    }
    Ok(asked.to_vec())
}

/// The CPUs the workers are pinned to, one per queue: `--cores` in order, each one this
/// process may run on; by default the allowed CPUs in turn (under a cpuset, its CPUs, not
/// CPU ids counted from zero).
fn cores_for(queues: &[u32], asked: Option<&[usize]>) -> anyhow::Result<Vec<usize>> {
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    anyhow::ensure!(!allowed.is_empty(), "cannot read the CPUs this process may run on (sched_getaffinity)");
    match asked {
        None => Ok((0..queues.len()).map(|i| allowed[i % allowed.len()]).collect()),
        Some(cores) => {
            anyhow::ensure!(
                cores.len() == queues.len(),
                "--cores lists {} CPUs for {} queues: give one per queue",
                cores.len(),
                queues.len()
            );
            if let Some(c) = cores.iter().find(|c| !allowed.contains(c)) {
                anyhow::bail!("--cores: CPU {c} is not one this process may run on (allowed: {})", ranges(&allowed));
            }
            Ok(cores.to_vec())
        }
    }
}

/// `0-3,6` for a sorted list of numbers.
fn ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn rx_queues(iface: &str) -> anyhow::Result<Vec<u32>> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .with_context(|| format!("interface {iface}: {dir}"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok((0..n as u32).collect())
}

fn iface_mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    <[u8; 6]>::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("cannot read the MAC of {iface}"))
}

fn ifindex(iface: &str) -> anyhow::Result<i32> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string and returns 0 on failure.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        bail!("no interface named {iface}");
    }
    Ok(i as i32)
}

/// Runs until SIGINT or SIGTERM; returns the final reports.
pub fn run(opts: &RunOptions) -> anyhow::Result<Vec<WorkerReport>> {
    let (snapshot, etcd_revision) = match &opts.config {
        ConfigSource::File(path) => (Snapshot::from_path(path).map_err(|e| anyhow::anyhow!("{e}"))?, 0),
        ConfigSource::Etcd(source) => {
            let fetched = fleet::fetch(source)?;
            let snap = fleet::assemble(&source.prefix, &fetched.keys)
                .and_then(|l| Snapshot::build(&l))
                .map_err(|e| anyhow::anyhow!("{source}: the configuration is not valid:\n{e}"))?;
            (snap, fetched.revision)
        }
    };
    snapshot.health.set_nonce(health::random_nonce());
    // Everything the flags ask for is checked before the XDP program is loaded or attached.
    let index = ifindex(&opts.iface)?;
    let queues = queues_to_serve(&opts.iface, opts.queues.as_deref())?;
    let cores = cores_for(&queues, opts.cores.as_deref())?;
    anyhow::ensure!(
        (MIN_UMEM_FRAMES..=MAX_UMEM_FRAMES).contains(&opts.frames),
        "--frames {} is not in {MIN_UMEM_FRAMES}..={MAX_UMEM_FRAMES}",
        opts.frames
    );
    let own_mac = iface_mac(&opts.iface)?;
    let src = if snapshot.eth.src == [0; 6] { own_mac } else { snapshot.eth.src };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;

    let next_hop = Arc::new(NextHopCell::default());
    let resolver = match snapshot.next_hop {
        NextHop::Static(mac) => {
            next_hop.set(Some(mac));
            None
        }
        NextHop::Neighbour(ip) => {
            next_hop.set(neigh::lookup(ip).unwrap_or(None));
            let (cell, stop) = (next_hop.clone(), stop.clone());
            Some(std::thread::spawn(move || neigh::resolve_forever(ip, cell, stop, Duration::from_secs(10))))
        }
        NextHop::Unset => bail!("{}: set next_hop (an IP address) or next_hop_mac in [server]", opts.config),
    };

    let program = XdpProgram::load()?;
    program.set_owned_v4(&snapshot.owned_v4)?;
    program.set_owned_v6(&snapshot.owned_v6)?;
    program_soft_unicast(&program, &snapshot)?;

    let mut sockets = Vec::new();
    for &queue in &queues {
        let cfg = AfXdpConfig {
            iface: opts.iface.clone(),
            queue,
            frames: opts.frames,
            frame_size: snapshot.frame_size as u32,
            bind: opts.bind,
            busy_poll: opts.busy_poll,
            ..AfXdpConfig::default()
        };
        let io = AfXdpIo::open(&cfg).with_context(|| format!("{} queue {queue}", opts.iface))?;
        program.register_socket(queue, io.fd())?;
        sockets.push((queue, io));
    }
    let attached = program.attach(index, opts.attach)?;
    if attached.generic {
        eprintln!("transitd: native XDP failed on {}; attached in generic (skb) mode, which is slower", opts.iface);
    }
    eprintln!(
        "transitd: running on {} queues {:?} ({} customers, {} tunnels); SIGINT or SIGTERM stops",
        opts.iface,
        queues,
        snapshot.customers.len(),
        snapshot.tunnels.len()
    );

    let shared = Arc::new(ArcSwap::from_pointee(snapshot));
    let mut workers = Vec::new();
    let reports: Vec<Arc<Mutex<WorkerReport>>> =
        queues.iter().map(|&q| Arc::new(Mutex::new(WorkerReport { queue: q, ..WorkerReport::default() }))).collect();

    let writer_stop = Arc::new(AtomicBool::new(false));
    let (capture, writer) = match &opts.capture {
        Some(c) => {
            let mut c = c.clone();
            if c.snaplen == 0 {
                c.snaplen = shared.load().frame_size;
            }
            let (capture, writer) = DropCapture::start(c, writer_stop.clone())?;
            let handle = std::thread::Builder::new().name("transitd-capture".into()).spawn(move || writer.run())?;
            (Some(capture), Some(handle))
        }
        None => (None, None),
    };
    let sources = Arc::new(Sources {
        workers: reports.clone(),
        snapshot: shared.clone(),
        xdp: Mutex::new(program.stats()),
        reloads: ReloadStats::default(),
        capture: capture.clone(),
        started: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    });
    sources.reloads.applied_now(true);
    let metrics = match opts.metrics {
        Some(addr) => {
            let handle = crate::metrics::serve(addr, sources.clone(), writer_stop.clone())?;
            eprintln!("transitd: metrics at http://{addr}/metrics");
            Some(handle)
        }
        None => None,
    };
    for (i, (queue, io)) in sockets.into_iter().enumerate() {
        let core = cores[i];
        let (shared, next_hop, stop) = (shared.clone(), next_hop.clone(), stop.clone());
        let mut worker = Worker::new(io, shared.load_full()).publish_to(reports[i].clone());
        // The first worker sends the tunnel health probes.
        if i == 0 {
            worker = worker.probe();
        }
        if let Some(c) = &capture {
            worker = worker.capture(c.tap(queues.len()));
        }
        let idle_sleep = opts.idle_sleep;
        workers.push(std::thread::Builder::new().name(format!("transitd-q{queue}")).spawn(move || {
            // A worker that is not where it was asked to be is an error, not a slow surprise.
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                anyhow::bail!("queue {queue}: cannot pin the worker to CPU {core}");
            }
            let eth = || next_hop.get().map(|dst| EthernetAddrs { dst, src });
            worker.run(&shared, eth, &stop, idle_sleep)?;
            Ok(())
        })?);
    }

    let started = Instant::now();
    let mut last = (
        Instant::now(),
        reports.iter().map(|r| r.lock().map(|r| r.stats.clone()).unwrap_or_default()).collect::<Vec<_>>(),
    );
    let mut watcher = match &opts.config {
        ConfigSource::File(path) => Some(FileWatch::new(path, opts.watch)),
        ConfigSource::Etcd(_) => None,
    };
    let etcd_slot: fleet::Slot = Arc::default();
    let etcd_refetch = Arc::new(AtomicBool::new(false));
    let etcd = match &opts.config {
        ConfigSource::Etcd(source) => Some(fleet::watch(
            source.clone(),
            etcd_revision,
            etcd_slot.clone(),
            writer_stop.clone(),
            etcd_refetch.clone(),
        )?),
        ConfigSource::File(_) => None,
    };
    while !stop.load(Ordering::Relaxed) && !workers.iter().any(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let signalled = reload.swap(false, Ordering::Relaxed);
        let file_changed = watcher.as_mut().is_some_and(FileWatch::changed);
        let applied = match (&opts.config, &mut watcher) {
            (ConfigSource::File(path), Some(watcher)) if file_changed || signalled => {
                watcher.seen();
                Some(reload_config(&path.display().to_string(), || Snapshot::from_path(path), &shared, &program))
            }
            (ConfigSource::Etcd(source), _) => {
                if signalled {
                    etcd_refetch.store(true, Ordering::Relaxed);
                }
                let fetched = etcd_slot.lock().ok().and_then(|mut s| s.take());
                fetched.map(|f| {
                    let load = || fleet::assemble(&source.prefix, &f.keys).and_then(|l| Snapshot::build(&l));
                    reload_config(&format!("{source} at revision {}", f.revision), load, &shared, &program)
                })
            }
            _ => None,
        };
        match applied {
            Some(true) => sources.reloads.applied_now(false),
            Some(false) => {
                sources.reloads.rejected.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if let Ok(mut x) = sources.xdp.lock() {
            *x = program.stats();
        }
        if !opts.stats_interval.is_zero() && last.0.elapsed() >= opts.stats_interval {
            let now: Vec<WorkerStats> =
                reports.iter().map(|r| r.lock().map(|r| r.stats.clone()).unwrap_or_default()).collect();
            let dt = last.0.elapsed().as_secs_f64();
            eprintln!("{}", progress_line(started.elapsed(), &queues, &last.1, &now, dt, &program.stats()));
            last = (Instant::now(), now);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(anyhow::anyhow!("a worker panicked")),
        }
    }
    drop(attached); // detach before anything else can fail
    writer_stop.store(true, Ordering::Relaxed);
    if let Some(r) = resolver {
        let _ = r.join();
    }
    if let Some(m) = metrics {
        let _ = m.join();
    }
    if let Some(e) = etcd {
        let _ = e.join();
    }
    if let Some(w) = writer {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.context("drop capture")),
            Err(_) => errors.push(anyhow::anyhow!("the drop capture writer panicked")),
        }
    }
    if let Some(c) = &capture {
        eprintln!("transitd: {}", crate::dropcap::summary(c));
    }
    let finals: Vec<WorkerReport> = reports.iter().map(|r| r.lock().map(|r| r.clone()).unwrap_or_default()).collect();
    print!("{}", final_report(&finals, &program.stats()));
    let snap = shared.load();
    for (i, t) in snap.tunnels.iter().enumerate().filter(|(_, t)| t.interface.is_some()) {
        let state = if snap.health.is_up(i as u16) { "up" } else { "down" };
        println!("tunnel {} {state} (probes answered up to #{})", t.name, snap.health.replied(i as u16));
    }
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(finals)
}

/// Notices a change of the configuration file (its modification time, size or inode) by
/// looking at it every `interval`; reports a change once the file has stayed the same for one
/// look, so that a file caught half-written is read only when complete.
#[derive(Debug)]
struct FileWatch {
    path: PathBuf,
    interval: Duration,
    last_look: Instant,
    /// What the running configuration was read from.
    applied: Option<FileStamp>,
    /// What the last look saw.
    seen: Option<FileStamp>,
}

type FileStamp = (std::time::SystemTime, u64, u64);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl FileWatch {
    fn new(path: &std::path::Path, interval: Duration) -> FileWatch {
        let now = stamp(path);
        FileWatch { path: path.to_path_buf(), interval, last_look: Instant::now(), applied: now, seen: now }
    }

    /// True when the file changed and has since stayed the same for one look.
    fn changed(&mut self) -> bool {
        if self.interval.is_zero() || self.last_look.elapsed() < self.interval {
            return false;
        }
        self.last_look = Instant::now();
        let now = stamp(&self.path);
        let settled = now == self.seen;
        self.seen = now;
        settled && now.is_some() && now != self.applied
    }

    /// The file as it is now has been read.
    fn seen(&mut self) {
        self.applied = stamp(&self.path);
        self.seen = self.applied;
    }
}

/// Rebuilds the snapshot off the data path with `load` (from `what`) and swaps it in; a
/// configuration with errors is rejected whole (its errors printed) and the running snapshot
/// stays. Returns whether the new configuration was applied.
fn reload_config(
    what: &str,
    load: impl FnOnce() -> Result<Snapshot, ConfigErrors>,
    shared: &ArcSwap<Snapshot>,
    program: &XdpProgram,
) -> bool {
    let started = Instant::now();
    // A panic while building is a bug, but the edge must outlive it: the builder only reads
    // its input and makes a new snapshot, so nothing it leaves half-done is shared.
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
    match built {
        Err(_) => {
            eprintln!(
                "transitd: reload of {what} rejected: building the configuration panicked (a bug in transitd: \
                 please report it with the file); the running configuration stays"
            );
            false
        }
        Ok(Err(errors)) => {
            eprintln!("transitd: reload of {what} rejected, the running configuration stays:\n{errors}");
            false
        }
        Ok(Ok(new)) => {
            // The XDP program learns new prefixes before the workers see the snapshot that
            // owns them, and forgets old ones after, so no owned packet is passed meanwhile.
            let old = shared.load();
            let mut v4 = new.owned_v4.clone();
            v4.extend(old.owned_v4.iter().copied());
            let mut v6 = new.owned_v6.clone();
            v6.extend(old.owned_v6.iter().copied());
            let widened = program.set_owned_v4(&v4).and_then(|_| program.set_owned_v6(&v6));
            let (owned_v4, owned_v6) = (new.owned_v4.clone(), new.owned_v6.clone());
            // Soft-unicast's tables move with the snapshot; between the two, the program and
            // the workers may disagree on an owner for a moment, which the hop limit in the
            // backbone key turns into a counted drop, never a loop.
            let tables = program_soft_unicast(program, &new);
            // Tunnel health carries over by name: a reload neither revives a dead tunnel nor
            // loses the probes in flight.
            let names: Vec<&str> = new.tunnels.iter().map(|t| t.name.as_str()).collect();
            let old_names: Vec<&str> = old.tunnels.iter().map(|t| t.name.as_str()).collect();
            new.health.inherit(&names, &old.health, &old_names);
            drop(names);
            shared.store(Arc::new(new));
            let narrowed = program.set_owned_v4(&owned_v4).and_then(|_| program.set_owned_v6(&owned_v6));
            match widened.and(narrowed).and(tables) {
                Ok(()) => eprintln!("transitd: reloaded {what} in {:.1} ms", started.elapsed().as_secs_f64() * 1e3),
                Err(e) => eprintln!("transitd: reloaded {what}, but updating the XDP maps failed: {e}"),
            }
            true
        }
    }
}

/// The XDP program's configuration and soft-unicast tables from `snap`.
fn program_soft_unicast(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    let su = snap.soft_unicast.as_ref();
    if let Some(su) = su {
        let slices = usize::from(su.plan.slices_per_ip);
        let index: std::collections::HashMap<&str, u16> =
            su.owners.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        let mut addresses = Vec::with_capacity(su.plan.owners.len());
        let mut owners = Vec::with_capacity(su.plan.owners.len() * slices);
        for (ip, slice_owners) in &su.plan.owners {
            addresses.push((std::net::Ipv4Addr::from(*ip), su.owners.data_centre(*ip).unwrap_or(u16::MAX)));
            owners.extend(slice_owners.iter().map(|o| index.get(o.as_str()).copied().unwrap_or(u16::MAX)));
        }
        let mut peers: Vec<std::net::Ipv4Addr> = su.server_backbone.iter().chain(&su.dc_backbone_of).copied().collect();
        peers.sort_unstable();
        peers.dedup();
        program.set_egress(&addresses, &owners, &peers)?;
    } else {
        program.set_egress(&[], &[], &[])?;
    }
    program.set_config(&transitd_bpf::XdpConfig {
        anycast: std::net::Ipv4Addr::from(snap.anycast),
        anycast_v6: snap.anycast_v6,
        soft_unicast: su.map(|su| transitd_bpf::SoftUnicastConfig {
            backbone: su.backbone,
            dc_backbone: su.dc_backbone,
            key_id: su.key_id,
            this_server: su.this_server,
            this_dc: su.this_dc,
            reserved_ports: su.plan.spec.reserved_ports,
            slice_size: su.plan.spec.slice_size,
            slices: u32::from(su.plan.slices_per_ip),
        }),
    })
}

fn progress_line(
    up: Duration,
    queues: &[u32],
    before: &[WorkerStats],
    now: &[WorkerStats],
    dt: f64,
    xdp: &transitd_bpf::XdpStats,
) -> String {
    use std::fmt::Write as _;
    let mut line = format!("[{:>6.1}s]", up.as_secs_f64());
    for ((q, b), n) in queues.iter().zip(before).zip(now) {
        let rx = (n.rx_frames - b.rx_frames) as f64 / dt;
        let tx = (n.tx_frames - b.tx_frames) as f64 / dt;
        let _ = write!(line, " q{q}: rx {rx:.0} pps tx {tx:.0} pps");
        let mut drops = Vec::new();
        for r in DropReason::ALL {
            let d = n.dropped_for(*r) - b.dropped_for(*r);
            if d > 0 {
                drops.push(format!("{} {d}", r.name()));
            }
        }
        if !drops.is_empty() {
            let _ = write!(line, " (dropped: {})", drops.join(", "));
        }
    }
    let _ = write!(line, " | xdp redirected {} passed {}", xdp.redirected, xdp.passed);
    line
}

fn final_report(reports: &[WorkerReport], xdp: &transitd_bpf::XdpStats) -> String {
    use std::fmt::Write as _;
    let mut total = WorkerStats::default();
    let mut out = String::new();
    for r in reports {
        total.add(&r.stats);
        let _ = writeln!(
            out,
            "queue {}: rx {} tx {} passed {} dropped {}; umem frames {} (free {}, fill {}, tx {}){}",
            r.queue,
            r.stats.rx_frames,
            r.stats.tx_frames,
            r.stats.passed(),
            r.stats.dropped(),
            r.io.frames.total,
            r.io.frames.free,
            r.io.frames.in_fill,
            r.io.frames.in_tx,
            if r.io.frames.is_conserved() { "" } else { " NOT CONSERVED" }
        );
    }
    let _ = writeln!(
        out,
        "total: rx {} tx {} passed {} dropped {}",
        total.rx_frames,
        total.tx_frames,
        total.passed(),
        total.dropped()
    );
    for r in TxReason::ALL {
        if total.sent_as(*r) > 0 {
            let _ = writeln!(out, "  tx   {:<22} {:>10}", r.name(), total.sent_as(*r));
        }
    }
    for r in PassReason::ALL {
        if total.passed_for(*r) > 0 {
            let _ = writeln!(out, "  pass {:<22} {:>10}", r.name(), total.passed_for(*r));
        }
    }
    for r in ConsumeReason::ALL {
        if total.consumed[r.index()] > 0 {
            let _ = writeln!(out, "  consumed {:<18} {:>10}", r.name(), total.consumed[r.index()]);
        }
    }
    for r in DropReason::ALL {
        if total.dropped_for(*r) > 0 {
            let _ = writeln!(out, "  drop {:<22} {:>10}", r.name(), total.dropped_for(*r));
        }
    }
    let _ = writeln!(
        out,
        "xdp: redirected {} passed {} no_socket {} egress_local {} backbone_local {}",
        xdp.redirected, xdp.passed, xdp.no_socket, xdp.egress_local, xdp.backbone_local
    );
    out
}

/// `transitd detach --iface IF`.
pub fn detach(iface: &str) -> anyhow::Result<bool> {
    Ok(transitd_bpf::detach(ifindex(iface)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse() {
        assert_eq!(parse_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_list("0,2, 5-6").unwrap(), vec![0, 2, 5, 6]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
        // Refused by counting, before 16 GiB of queue numbers are made.
        let e = parse_list("0-4294967295").unwrap_err().to_string();
        assert!(e.contains("more than 1024 entries"), "{e}");
        assert_eq!(parse_list("0-1023").unwrap().len(), 1024);
        assert!(parse_list("0-1022,5000-5001").is_err());
    }

    #[test]
    fn cpu_lists_print_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(ranges(&[5]), "5");
    }

    #[test]
    fn cores_must_be_allowed_and_one_per_queue() {
        let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap().into_iter().map(|c| c.id).collect();
        let e = cores_for(&[0], Some(&[9999])).unwrap_err().to_string();
        assert!(e.contains("CPU 9999 is not one this process may run on"), "{e}");
        assert!(cores_for(&[0, 1], Some(&[allowed[0]])).unwrap_err().to_string().contains("one per queue"));
        // By default, queue i goes to the i-th allowed CPU, whatever the CPU ids are.
        let queues: Vec<u32> = (0..allowed.len() as u32 + 1).collect();
        let cores = cores_for(&queues, None).unwrap();
        assert_eq!(cores[..allowed.len()], allowed[..]);
        assert_eq!(cores[allowed.len()], allowed[0]);
    }
}
