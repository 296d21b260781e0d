//! `transitd run`: the pipeline on NIC queues. Checks the flags against the system
//! (`placement`), loads the XDP program, starts one pinned worker per queue that opens its
//! own socket (`workers`), attaches, serves metrics, reloads the configuration on SIGHUP or
//! when its file or etcd prefix changes (`reload`), prints progress, and on SIGINT/SIGTERM
//! stops the workers (after a BGP drain, for SIGTERM), detaches and prints the final
//! counters (`report`).

mod announce;
mod attachment;
mod claim;
mod file_watch;
mod looks;
mod placement;
mod privilege;
mod publish;
mod reload;
mod report;
mod tunables;
mod workers;
mod xdp_maps;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::bail;
use arc_swap::ArcSwap;
use transitd_bpf::{AttachMode, XdpProgram};

use self::announce::Announcer;
use self::file_watch::FileWatch;
use self::looks::Looks;
pub use self::placement::parse_list;
use self::placement::{cores_for, iface_mac, ifindex, queues_to_serve};
use self::reload::ConfigWatch;
use self::report::{final_report, progress_line};
pub use self::xdp_maps::program_xdp;
use crate::dropcap::{CaptureOptions, DropCapture};
use crate::fleet::{self, EtcdSource};
use crate::health;
use crate::io::afxdp::{AfXdpConfig, BindMode};
use crate::limits::{MAX_UMEM_FRAMES, MIN_UMEM_FRAMES};
use crate::metrics::{ReloadStats, Sources};
use crate::neigh::{self, NextHopCell};
use crate::netdev::NetdevCounters;
use crate::notify::{self, Notifier};
use crate::pipeline::WorkerStats;
use crate::punt::PuntDevice;
use crate::snapshot::{Host, NextHop, Snapshot};
use crate::worker::WorkerReport;

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
    /// `--this-server`: the soft-unicast server this host is, over the configuration's.
    pub this_server: Option<String>,
    /// Queues to serve (default: all rx queues of the interface).
    pub queues: Option<Vec<u32>>,
    /// Cores to pin workers to, one per queue in order (default: queue i on core i mod n).
    pub cores: Option<Vec<usize>>,
    /// XDP attach mode.
    pub attach: AttachMode,
    /// Socket bind mode.
    pub bind: BindMode,
    /// Back UMEMs with huge pages where the system has them.
    pub huge_pages: bool,
    /// The exception path's TUN device.
    pub punt_device: String,
    /// Frames per second punted at most (0: none).
    pub punt_rate: u32,
    /// Seconds between progress lines (0: none).
    pub stats_interval: Duration,
    /// Sleep this long when a poll finds nothing (0: pure busy polling).
    pub idle_sleep: Duration,
    /// Ask the kernel for busy polling on the sockets.
    pub busy_poll: bool,
    /// The interface's napi_defer_hard_irqs for the run.
    pub napi_defer: Option<u32>,
    /// The interface's gro_flush_timeout (ns) for the run.
    pub gro_flush_timeout: Option<u64>,
    /// UMEM frames per queue.
    pub frames: u32,
    /// Where to serve metrics (`None`: nowhere).
    pub metrics: Option<SocketAddr>,
    /// How often to look at the configuration file and the files it names for a change
    /// (zero: never; SIGHUP, and etcd's own watch, still reload).
    pub watch: Duration,
    /// Capture dropped frames (a snap length of 0: the configured frame size).
    pub capture: Option<CaptureOptions>,
}

/// Sampled packets waiting for the IPFIX exporter (which empties the queue as they come, or
/// sleeps 10 ms when it is empty): 64k samples, over half a second of 1-in-1000 sampling at 100 Mpps.
const SAMPLE_QUEUE: usize = 65_536;

/// A thread that may end with an error.
type Thread = JoinHandle<anyhow::Result<()>>;

/// How long a stop waits for the drop capture's writer to write what is queued and close
/// the file: a second's worth of frames at the highest rate takes far less on any disk.
const CAPTURE_WRITER_WAIT: Duration = Duration::from_secs(5);

/// Runs until SIGINT or SIGTERM; returns the final reports.
pub fn run(opts: &RunOptions) -> anyhow::Result<Vec<WorkerReport>> {
    // SIGHUP is caught before anything else: its default action ends the process, and one
    // that came while the configuration was read and built (seconds for a large rule set, or
    // an etcd slow to answer), from a feed's `pkill -HUP transitd` say, ended the start
    // (under systemd, a start that failed, tried again 5 s later). Caught, it is a reload
    // once the run is up: the configuration may have changed since it was read.
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;
    // The configuration file stamped before it is read: an edit while it is read is seen.
    let config_stamp = match &opts.config {
        ConfigSource::File(path) => crate::snapshot::stamp(path),
        ConfigSource::Etcd(_) => None,
    };
    let (snapshot, started_from, started_text) = initial_config(opts)?;
    let files = FileWatch::of(&opts.config, config_stamp, &snapshot.inputs, &snapshot.input_stamps, opts.watch);
    snapshot.health.set_key(health::random_key());
    let Placement { index, queues, rx_queues, cores, iface_mac } = place(opts, &snapshot)?;

    // The privilege the rest needs, before the first thing that needs it (the claim's file
    // in /run): what is missing is said, not a path's permissions.
    privilege::check()?;
    // Held until the run returns (declared before all it guards, so dropped after it): a
    // second start on the interface is refused here, before it makes anything.
    let claim = claim::Claim::take(&opts.iface)?;

    // A stop signal ends supervision; the workers' own flag is set only after the BGP
    // announcements are withdrawn, so that they forward until traffic has gone elsewhere.
    // SIGTERM (systemd's) drains first ([bgp] graceful_shutdown_ms); SIGINT (a terminal's ^C,
    // or an operator's `kill -INT` for a stop without the wait) does not.
    let shutdown = Arc::new(AtomicBool::new(false));
    let at_once = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, shutdown.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGINT, at_once.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let next_hop = Arc::new(NextHopCell::default());
    resolve_next_hop(&snapshot, &opts.config, &next_hop, index as u32)?;

    let metrics_listener = opts.metrics.map(crate::metrics::bind).transpose()?;
    // Restored when the run ends, however it ends short of an abort; after one, by the next
    // run on the interface (kept under the claim).
    let _tunables = tunables::Tunables::set(&claim, index as u32, opts.napi_defer, opts.gro_flush_timeout)?;
    let program = load_program(index, iface_mac, &snapshot)?;
    let customers = (snapshot.customers.len(), snapshot.tunnels.len());
    let shared = Arc::new(ArcSwap::from_pointee(snapshot));
    // The next hop follows the running configuration: a reload may change it.
    let resolver = {
        let (cell, stop, shared) = (next_hop.clone(), stop.clone(), shared.clone());
        let ifindex = index as u32;
        let follow =
            move || neigh::follow_next_hop(ifindex, || shared.load().next_hop, cell, stop, Duration::from_secs(10));
        Some(std::thread::Builder::new().name("transitd-neigh".into()).spawn(follow)?)
    };
    let reports: Vec<Arc<Mutex<WorkerReport>>> =
        queues.iter().map(|&q| Arc::new(Mutex::new(WorkerReport { queue: q, ..WorkerReport::default() }))).collect();
    // Threads around the workers stop on their own flag, after the workers and the detach.
    let helpers_stop = Arc::new(AtomicBool::new(false));
    let (capture, writer) = start_capture(opts.capture.as_ref(), shared.load().frame_size, &helpers_stop)?;
    let punt = PuntDevice::create(&opts.punt_device, opts.punt_rate);
    // Sampled flows: the exporter runs whether or not [ipfix] is configured now (a reload
    // may add it), idle without it.
    let samples = crate::ipfix::Samples::new(SAMPLE_QUEUE);
    let exporter = crate::ipfix::exporter::Exporter::new(samples.clone(), shared.clone());
    let ipfix_stats = exporter.stats.clone();
    let exporter_stop = Arc::new(AtomicBool::new(false));
    let exporter = {
        let stop = exporter_stop.clone();
        std::thread::Builder::new().name("transitd-ipfix".into()).spawn(move || exporter.run(&stop))?
    };

    // The sockets take the longest frame the configuration allows or the interface passes,
    // whichever is shorter (a larger MTU set while running needs a restart to be taken, and
    // is said).
    let frame_size = shared.load().frame_size;
    let link_mtu = crate::netdev::mtu(&opts.iface);
    let largest_packet = arriving(frame_size, link_mtu);
    say_link_mtu(&opts.iface, &shared, link_mtu);
    // State a reload replaces in the workers comes here, to be freed by the supervisor: room
    // for two reloads' worth from every worker, 64 at the least (a worker that finds it full
    // frees its tables itself, the stall this is there to spare it).
    let (retire_tx, retired) = crossbeam::channel::bounded((2 * queues.len()).max(64));
    let plan = workers::Plan {
        socket: socket_config(opts, largest_packet, link_mtu),
        idle_sleep: opts.idle_sleep,
        shared: shared.clone(),
        next_hop: next_hop.clone(),
        iface_mac,
        stop: stop.clone(),
        capture: capture.clone(),
        punt: punt.clone(),
        samples: samples.clone(),
        retire: retire_tx,
        rx_drops: Arc::default(),
    };
    let ready = workers::start(&plan, &queues, &cores, &reports)?;
    let attached = match register_and_attach(&program, &ready.opened, index, opts) {
        Ok(a) => a,
        Err(e) => {
            ready.abort();
            return Err(e);
        }
    };
    log_sockets(&ready.opened, opts);
    // What the sockets take, as bound: multi-buffer asked for may have been refused.
    let single_frame = ready.opened.iter().any(|o| !o.multi_buffer).then(|| plan.socket.frame_room());
    let interface_at_start = NetdevCounters::read(&opts.iface);
    let workers = ready.go();
    log_line!(
        "transitd: running on {} {} ({}, {}); SIGINT or SIGTERM stops",
        opts.iface,
        crate::report::queue_list(&queues),
        crate::report::counted(customers.0, "customer"),
        crate::report::counted(customers.1, "tunnel")
    );
    let notifier = Notifier::from_env();
    if let Some(n) = &notifier {
        n.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS=running on {} {}",
            std::process::id(),
            opts.iface,
            crate::report::queue_list(&queues)
        ));
    }

    let sources = Arc::new(Sources {
        workers: reports.clone(),
        snapshot: shared.clone(),
        xdp: Mutex::new(program.stats()),
        reloads: ReloadStats {
            etcd_up: matches!(opts.config, ConfigSource::Etcd(_)).then(|| Arc::new(AtomicBool::new(true))),
            ..ReloadStats::default()
        },
        bgp: Default::default(),
        ipfix: Some((ipfix_stats, samples.clone())),
        capture: capture.clone(),
        punt: Some(punt.clone()),
        interface: Some(opts.iface.clone()),
        link_mtu: Some(plan.socket.link_mtu.clone()),
        started: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    });
    sources.reloads.applied_now(true);
    // The workers run from here: a failure to start what serves them ends the run through
    // the shutdown below (workers stopped and joined, the program detached, the report
    // printed), not by returning with the workers still polling.
    let mut failed: Option<anyhow::Error> = None;
    let metrics = match (metrics_listener, opts.metrics) {
        (Some(listener), Some(addr)) => match crate::metrics::serve(listener, sources.clone(), helpers_stop.clone()) {
            Ok(handle) => {
                log_line!("transitd: metrics at http://{addr}/metrics");
                Some(handle)
            }
            Err(e) => {
                failed = Some(e.context("the metrics listener"));
                None
            }
        },
        _ => None,
    };
    // (The interface's addresses are read again for each reload.)
    let host = opts.host(iface_mac != [0; 6], Vec::new());
    let mut watch = match failed {
        Some(_) => None,
        None => ConfigWatch::start(
            &opts.config,
            files,
            started_from,
            started_text,
            &sources.reloads,
            helpers_stop.clone(),
            host,
        )
        .map_err(|e| failed = Some(e.context("watching the configuration")))
        .ok(),
    };
    let mut announcer = Announcer::new(queues.len());
    let gone = match &mut watch {
        Some(watch) if failed.is_none() => supervise(
            opts,
            Supervised {
                index,
                queues: &queues,
                workers: &workers,
                reports: &reports,
                sources: &sources,
                single_frame,
                longest_at_start: largest_packet,
                rx_queues_at_start: rx_queues,
                link_mtu: &plan.socket.link_mtu,
                retired: &retired,
            },
            watch,
            (&program, &mut announcer),
            notifier.as_ref(),
            Signals { stop: &shutdown, at_once: &at_once, reload: &reload },
        ),
        _ => failed,
    };
    // Traffic is drawn away before the workers stop taking it (they have not seen the
    // signal: it set `shutdown`, not their `stop`). A worker that has
    // ended did so for a fault.
    let asked = gone.is_none() && shutdown.load(Ordering::Relaxed) && !workers.iter().any(|w| w.is_finished());
    announcer.stop(asked);

    if let Some(n) = &notifier {
        n.send("STOPPING=1");
    }
    // The sockets leave the XDP program before the workers are told to stop, so that what it
    // redirected is all in their receive rings, which they empty as they stop: every frame
    // it redirected is counted by a worker, and what comes after is the program's to count
    // (`no_socket`), as once the sockets close. Told to stop first, a worker left in its
    // ring what arrived after its last poll, counted nowhere.
    if let Err(e) = program.unregister_sockets(&queues) {
        log_line!("transitd: stopping: {e}: frames arriving meanwhile may be left uncounted in the receive rings");
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors: Vec<anyhow::Error> = gone.into_iter().collect();
    join_workers(workers, &mut errors);
    // By the name the interface has now: renamed under the run (which stops it), its
    // statistics are under the new one.
    let iface_now = placement::name_now(&opts.iface, index);
    let interface_counted = interface_at_start.zip(NetdevCounters::read(&iface_now)).map(|(a, b)| b.since(&a));
    // The last flows go out while the interface is as it was: detaching the XDP program
    // resets a driver's queues (veth's too), and what the stack sends meanwhile is lost.
    exporter_stop.store(true, Ordering::Relaxed);
    let _ = exporter.join(); // reports every flow still open
    drop(attached); // detach before anything else can fail
    helpers_stop.store(true, Ordering::Relaxed);
    for h in [resolver, metrics].into_iter().flatten() {
        let _ = h.join();
    }
    if let Some(watch) = watch {
        watch.join();
    }
    errors.extend(writer.and_then(finish_capture_writer));
    if let Some(c) = &capture {
        log_line!("transitd: {}", crate::dropcap::summary(c));
    }
    // A report is plain counters: one a panicking thread left locked is still read.
    let finals: Vec<WorkerReport> =
        reports.iter().map(|r| r.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()).collect();
    let interface = (iface_now.as_str(), interface_counted);
    // Let go if standard output has gone (a closed pipe): the run ends cleanly all the same.
    let report = final_report(&finals, &program.stats(), &shared.load(), &punt, interface);
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), report.as_bytes());
    match first_error(errors) {
        Some(e) => Err(e),
        None => Ok(finals),
    }
}

/// Where the run goes, as the flags ask and the system has it.
struct Placement {
    /// The interface's index.
    index: i32,
    /// The queues served, a worker each.
    queues: Vec<u32>,
    /// The interface's rx queues (served or not).
    rx_queues: usize,
    /// The core each queue's worker is pinned to, in the order of `queues`.
    cores: Vec<usize>,
    /// The interface's own MAC address; zeros where it cannot be read and the configuration
    /// has `mac`.
    iface_mac: [u8; 6],
}

/// Checks everything the flags ask for against the system, before the XDP program is loaded
/// or attached: the interface, its queues, the cores, `--frames`, and the interface's own
/// address (needed for a configuration without `mac`).
fn place(opts: &RunOptions, snapshot: &Snapshot) -> anyhow::Result<Placement> {
    let index = ifindex(&opts.iface)?;
    let queues = queues_to_serve(&opts.iface, opts.queues.as_deref())?;
    let rx_queues = placement::rx_queue_count(&opts.iface)?;
    // Said, not refused: a NIC whose RSS spreads traffic over fewer queues than it has
    // (`ethtool -X IF equal N`) needs no worker on the others.
    if let Some(line) = placement::unserved(&opts.iface, rx_queues, &queues, snapshot.unbound_queue) {
        log_line!("transitd: warning: {line}");
    }
    let cores = cores_for(&queues, opts.cores.as_deref())?;
    placement::keep_helpers_off(&cores)?;
    anyhow::ensure!(
        (MIN_UMEM_FRAMES..=MAX_UMEM_FRAMES).contains(&opts.frames),
        "--frames {} is not in {MIN_UMEM_FRAMES}..={MAX_UMEM_FRAMES}",
        opts.frames
    );
    // The interface's own address, for configurations without `mac` (a reload may drop it).
    let iface_mac = match iface_mac(&opts.iface) {
        Ok(mac) => mac,
        Err(e) if snapshot.eth.src == [0; 6] => return Err(e),
        Err(_) => [0; 6],
    };
    Ok(Placement { index, queues, rx_queues, cores, iface_mac })
}

/// The XDP program for interface `index`, programmed for `snapshot`; refused where another
/// program holds the interface. `iface_mac`: the interface's own address (zeros: unknown).
fn load_program(index: i32, iface_mac: [u8; 6], snapshot: &Snapshot) -> anyhow::Result<XdpProgram> {
    let program = XdpProgram::load()?;
    // Another program on the interface (a transitd's that took no claim: an older version,
    // another runtime directory) stops the run before it creates anything; attaching checks
    // again.
    if let Some(found) = transitd_bpf::attached(index, &program)?
        && !(found.is_transitd() && transitd_bpf::is_stale(&found))
    {
        return Err(transitd_bpf::BpfError::Occupied { ifindex: index, found }.into());
    }
    // Frames to another host's address (a promiscuous NIC, a flooding switch) stay the
    // kernel's, which discards them: forwarded here too, they would be forwarded twice.
    if iface_mac != [0; 6] {
        program.pass_frames_not_to(iface_mac);
    }
    program_xdp(&program, snapshot)?;
    Ok(program)
}

impl RunOptions {
    /// This host as a configuration is built for it: `iface_mac_known`, whether the
    /// interface's MAC could be read; `iface_addresses`, its addresses as read now.
    fn host(&self, iface_mac_known: bool, iface_addresses: Vec<std::net::IpAddr>) -> Host {
        Host {
            iface_mac_known,
            this_server: self.this_server.clone(),
            shared: matches!(self.config, ConfigSource::Etcd(_)),
            iface: self.iface.clone(),
            iface_addresses,
        }
    }
}

/// Says what the interface's MTU (`link_mtu`, `None`: unreadable) means for the running
/// configuration's tunnels: those whose packets the link does not take whole, or that it is
/// not known.
fn say_link_mtu(iface: &str, shared: &ArcSwap<Snapshot>, link_mtu: Option<usize>) {
    for line in link_mtu.map_or(Vec::new(), |mtu| placement::tunnels_past_link(&shared.load(), iface, mtu)) {
        log_line!("{line}");
    }
    if link_mtu.is_none() {
        log_line!(
            "transitd: cannot read {}'s MTU from sysfs: decapsulated packets larger than the link (GRE \
             reassembled from fragments) are sent whole until it can be read",
            iface
        );
    }
}

/// Each worker's socket: on `opts.iface`, taking packets of up to `largest_packet` bytes,
/// with the interface's MTU as read at the start (`None`: unknown, 0 to the workers).
fn socket_config(opts: &RunOptions, largest_packet: usize, link_mtu: Option<usize>) -> AfXdpConfig {
    AfXdpConfig {
        iface: opts.iface.clone(),
        frames: opts.frames,
        // One page per UMEM frame; a larger packet (a jumbo frame) arrives in several and
        // is reassembled (XDP multi-buffer), up to the configured frame size.
        frame_size: 4096,
        bind: opts.bind,
        huge_pages: opts.huge_pages,
        busy_poll: opts.busy_poll,
        largest_packet,
        link_mtu: Arc::new(AtomicUsize::new(link_mtu.unwrap_or(0))),
        ..AfXdpConfig::default()
    }
}

/// Joins the stopped workers: what ended one (an error, a panic) goes to `errors`.
fn join_workers(workers: Vec<Thread>, errors: &mut Vec<anyhow::Error>) {
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(anyhow::anyhow!("a worker panicked")),
        }
    }
}

/// Waits for the drop capture's writer `w` to write what is queued and close its file, for
/// [`CAPTURE_WRITER_WAIT`] at most; what went wrong, if anything did.
fn finish_capture_writer(w: Thread) -> Option<anyhow::Error> {
    // Waited for a while, not for good: a write into a FIFO whose reader stopped reading
    // (a tshark suspended) never returns, and the stop hung there, the XDP program
    // already detached, until SIGKILL; without the final report.
    let waited = Instant::now();
    while !w.is_finished() && waited.elapsed() < CAPTURE_WRITER_WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    if w.is_finished() {
        match w.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.context("drop capture")),
            Err(_) => Some(anyhow::anyhow!("the drop capture writer panicked")),
        }
    } else {
        Some(anyhow::anyhow!(
            "drop capture: its last write had not returned {} s after the stop (a FIFO whose reader stopped \
             reading?): left unfinished",
            CAPTURE_WRITER_WAIT.as_secs()
        ))
    }
}

/// The first of `errors`, for the run to return; the others (a second worker's fault) are
/// said, not lost.
fn first_error(errors: Vec<anyhow::Error>) -> Option<anyhow::Error> {
    let mut errors = errors.into_iter();
    let first = errors.next();
    for e in errors {
        log_line!("transitd: also: {e:#}");
    }
    first
}

/// The configuration to start with, and what it was built from (what etcd held, or the
/// file's text); its warnings are said.
fn initial_config(opts: &RunOptions) -> anyhow::Result<(Snapshot, Option<fleet::Fetched>, Option<Arc<str>>)> {
    // Whether the interface's MAC can be read is found out after; the next hop is checked
    // here, with its position, and so are the interface's own addresses.
    let host = opts.host(true, placement::own_addresses(&opts.iface));
    let (snap, fetched, text) = match &opts.config {
        ConfigSource::File(path) => {
            // Kept as the errors they are: `main` exits 1 for a refused configuration. The
            // text is kept: a file it names that changes is applied with it, whatever the
            // file holds by then (an edit that is rejected).
            let loaded = crate::config::load(path).map_err(anyhow::Error::new)?;
            let snap = Snapshot::build_to_run(&loaded, &host).map_err(anyhow::Error::new)?;
            (snap, None, Some(Arc::from(loaded.source.text())))
        }
        ConfigSource::Etcd(source) => {
            let fetched = fleet::fetch(source)?;
            let snap = fleet::assemble_fetched(&source.prefix, &fetched)
                .and_then(|l| Snapshot::build_to_run(&l, &host))
                .map_err(|e| anyhow::Error::new(e).context(format!("{source}: the configuration is not valid")))?;
            (snap, Some(fetched), None)
        }
    };
    for warning in crate::config::warning_lines(&snap.warnings) {
        log_line!("transitd: warning: {warning}");
    }
    Ok((snap, fetched, text))
}

/// The next hop's MAC as the starting configuration gives it, in `cell` before anything
/// is sent (a neighbour not yet in the table is looked up again by the follower).
fn resolve_next_hop(snap: &Snapshot, source: &ConfigSource, cell: &NextHopCell, ifindex: u32) -> anyhow::Result<()> {
    match snap.next_hop {
        NextHop::Static(mac) => cell.set(Some(mac)),
        NextHop::Neighbour(ip) => cell.set(neigh::lookup(ip, ifindex).unwrap_or(None)),
        NextHop::Unset => bail!("{source}: set next_hop (an IP address) or next_hop_mac in [server]"),
    }
    Ok(())
}

/// Starts the drop capture's writer, if one was asked for.
fn start_capture(
    options: Option<&CaptureOptions>,
    frame_size: usize,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<(Option<Arc<DropCapture>>, Option<Thread>)> {
    let Some(c) = options else { return Ok((None, None)) };
    let mut c = c.clone();
    if c.snaplen == 0 {
        c.snaplen = frame_size;
    }
    let (capture, writer) = DropCapture::start(c, stop.clone())?;
    let handle = std::thread::Builder::new().name("transitd-capture".into()).spawn(move || writer.run())?;
    Ok((Some(capture), Some(handle)))
}

/// Registers every socket with the XDP program, then attaches it.
fn register_and_attach<'p>(
    program: &'p XdpProgram,
    opened: &[workers::Opened],
    ifindex: i32,
    opts: &RunOptions,
) -> anyhow::Result<transitd_bpf::Attached<'p>> {
    for o in opened {
        program.register_socket(o.queue, o.fd)?;
    }
    // Its errors name the interface.
    let attached = program.attach(ifindex, opts.attach)?;
    if let Some(id) = attached.replaced {
        log_line!("transitd: replaced a stale transitd XDP program (id {id}) left attached to {}", opts.iface);
    }
    if attached.fell_back_to_generic {
        log_line!("transitd: native XDP failed on {}; attached in generic (skb) mode, which is slower", opts.iface);
    }
    Ok(attached)
}

/// Says how the sockets were bound (the kernel's choice under `--bind auto`) and whether
/// huge pages were had.
fn log_sockets(opened: &[workers::Opened], opts: &RunOptions) {
    for o in opened {
        let mode = if o.zero_copy { "zero-copy" } else { "copy" };
        let pages = match (opts.huge_pages, o.huge_pages) {
            (true, true) => ", UMEM on huge pages",
            (true, false) => ", UMEM on ordinary pages (no huge pages available)",
            _ => "",
        };
        let frames = if o.multi_buffer { ", multi-buffer" } else { "" };
        log_line!(
            "transitd: {} queue {} bound in {mode} mode (--bind {}){frames}{pages}",
            opts.iface,
            o.queue,
            opts.bind.name()
        );
    }
}

/// What [`supervise`] watches.
struct Supervised<'a> {
    index: i32,
    queues: &'a [u32],
    workers: &'a [Thread],
    reports: &'a [Arc<Mutex<WorkerReport>>],
    sources: &'a Sources,
    /// The longest packet a socket takes, when they were bound without multi-buffer.
    single_frame: Option<usize>,
    /// The longest frame that could arrive at start.
    longest_at_start: usize,
    /// The interface's rx queues at start.
    rx_queues_at_start: usize,
    /// The interface's MTU the workers check decapsulated packets against, kept current.
    link_mtu: &'a AtomicUsize,
    /// State the workers' reloads replaced, freed here.
    retired: &'a crossbeam::channel::Receiver<crate::pipeline::Retired>,
}

/// The flags the run's signal handlers set.
struct Signals<'a> {
    /// SIGINT or SIGTERM: stop.
    stop: &'a AtomicBool,
    /// SIGINT: stop without the BGP drain.
    at_once: &'a AtomicBool,
    /// SIGHUP: reload.
    reload: &'a AtomicBool,
}

impl Signals<'_> {
    /// Whether supervision ends now for a stop signal: at once for SIGINT or where there is
    /// nothing to drain, else once the drain the announcer began at the first look at the
    /// signal (`drain_ends`) is over. The workers forward all the while.
    fn stop_now(&self, announcer: &mut Announcer, drain_ends: &mut Option<Instant>) -> bool {
        if self.at_once.load(Ordering::Relaxed) {
            return true;
        }
        if !self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let ends = *drain_ends.get_or_insert_with(|| Instant::now() + announcer.drain().unwrap_or(Duration::ZERO));
        Instant::now() >= ends
    }
}

/// The longest frame that can arrive: what `frame_size` allows or the interface passes at
/// its MTU `mtu` (the MTU, an Ethernet header and two VLAN tags), whichever is shorter. A
/// frame longer than `frame_size` allows never arrives on a link whose MTU is smaller, so
/// sockets need not ask for multi-buffer for it (which drivers without zero-copy
/// multi-buffer answer with copy mode under `--bind auto`, and kernels before 6.6 refuse): a
/// 1500-byte link passes 1522-byte frames, one UMEM frame's worth.
fn arriving(frame_size: usize, mtu: Option<usize>) -> usize {
    mtu.map_or(frame_size, |m| (m + placement::FRAME_OVER_MTU).min(frame_size))
}

/// The main thread while the workers run: reloads, the XDP counters for the metrics, BGP
/// announcements and progress lines, until a stop signal or a worker ends; or until its
/// looks at the interface ([`Looks`]) find it gone (an error: its sockets can do nothing
/// more) or renamed (an error too: what is read of it while running is read by its name),
/// its XDP program no longer attached (an error: its traffic reaches the host unfiltered),
/// or, under the default `--queues` and `--cores`, its rx queues changed (an error: a
/// restart serves them all). An error ends the run with exit status 2, and the service
/// manager restarts it.
fn supervise(
    opts: &RunOptions,
    s: Supervised<'_>,
    watch: &mut ConfigWatch,
    (program, announcer): (&XdpProgram, &mut Announcer),
    notifier: Option<&Notifier>,
    signals: Signals<'_>,
) -> Option<anyhow::Error> {
    let mut looks = Looks::new(opts, &s);
    let Supervised { queues, workers, reports, sources, link_mtu, retired, .. } = s;
    let started = Instant::now();
    let counters = || -> Vec<WorkerStats> {
        reports.iter().map(|r| r.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stats.clone()).collect()
    };
    let mut last = (Instant::now(), counters());
    let mut watchdog = notifier.and(notify::watchdog_interval()).map(|every| Watchdog::new(every, reports));
    // Set at the first look at a stop signal: when the BGP drain ends (now, if none).
    let mut drain_ends = None::<Instant>;
    while !signals.stop_now(announcer, &mut drain_ends) && !workers.iter().any(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        retired.try_iter().for_each(drop);
        // A run that drains to stop takes no new configuration: a reload that restarted the
        // guard would announce again, without GRACEFUL_SHUTDOWN.
        let polled = match drain_ends {
            None => watch.poll(signals.reload.swap(false, Ordering::Relaxed), &sources.snapshot, program),
            Some(_) => None,
        };
        if let Some(applied) = polled {
            if applied {
                sources.reloads.applied_now(false);
                let mtu = link_mtu.load(Ordering::Relaxed);
                if mtu > 0 {
                    for line in placement::tunnels_past_link(&sources.snapshot.load(), &opts.iface, mtu) {
                        log_line!("{line}");
                    }
                }
                let frame_size = sources.snapshot.load().frame_size;
                // The capture's records were sized for the frames of the start (unless
                // --capture-snaplen said otherwise): larger ones are cut.
                let defaulted = opts.capture.as_ref().is_some_and(|c| c.snaplen == 0);
                if let Some(snaplen) =
                    sources.capture.as_ref().map(|c| c.snaplen()).filter(|&n| defaulted && frame_size > n)
                {
                    log_line!(
                        "transitd: frame_size {frame_size} is past the drop capture's snap length {snaplen} (the \
                         frame size at start): captured frames are cut to {snaplen} bytes until a restart"
                    );
                }
            } else {
                sources.reloads.rejected.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(n) = notifier {
                let what = if applied { "applied" } else { "rejected; the previous one runs" };
                n.send(&format!(
                    "STATUS=running on {} {}; last reload {what}",
                    opts.iface,
                    crate::report::queue_list(queues)
                ));
            }
        }
        // Before the watchdog is fed: a run that no longer filters is not a healthy one.
        let xdp = match looks.tick(program) {
            Ok(xdp) => xdp,
            Err(why) => return stopping(why),
        };
        let mut feed_watchdog = || {
            if let (Some(w), Some(n)) = (&mut watchdog, notifier) {
                w.tick(reports, n);
            }
        };
        feed_watchdog();
        // A stop signal reaches the BGP guard too (systemd signals the whole unit, a terminal
        // the process group), which withdraws and exits when there is no drain: told anything
        // after that, it was taken for lost ("starting another"), and the stop skipped its
        // forwarding after the withdrawal. Draining, it waits for the run's word.
        if signals.stop_now(announcer, &mut drain_ends) {
            break;
        }
        announcer.tick(&sources.snapshot.load(), reports, xdp, &sources.bgp, &mut feed_watchdog);
        if let Ok(mut x) = sources.xdp.lock() {
            *x = program.stats();
        }
        if !opts.stats_interval.is_zero() && last.0.elapsed() >= opts.stats_interval {
            let now = counters();
            let dt = last.0.elapsed().as_secs_f64();
            log_line!("{}", progress_line(started.elapsed(), queues, &last.1, &now, dt, &program.stats()));
            last = (Instant::now(), now);
        }
    }
    None
}

/// Ends supervision for `why`: said at once (the shutdown takes a while, and withdraws the
/// BGP announcements first), and returned as [`Said`], for `main` to exit with status 2
/// without saying it a second time.
fn stopping(why: anyhow::Error) -> Option<anyhow::Error> {
    log_line!("transitd: {why}");
    Some(anyhow::Error::new(Said(why.to_string())))
}

/// A run's error already logged when it was found: `main` exits with status 2 and does not
/// say it again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Said(String);

/// Feeds systemd's watchdog while every worker publishes its counters (it does ten times a
/// second, busy or idle); a worker that stops stops the feeding, and systemd restarts the
/// service after `WatchdogSec`.
struct Watchdog {
    every: Duration,
    last: Instant,
    seen: Vec<u64>,
    /// Workers reported stuck already (said once, not every tick).
    told: bool,
}

impl Watchdog {
    fn new(every: Duration, reports: &[Arc<Mutex<WorkerReport>>]) -> Watchdog {
        Watchdog { every, last: Instant::now(), seen: publications(reports), told: false }
    }

    fn tick(&mut self, reports: &[Arc<Mutex<WorkerReport>>], notifier: &Notifier) {
        if self.last.elapsed() < self.every {
            return;
        }
        let now = publications(reports);
        let stuck: Vec<u32> = reports
            .iter()
            .zip(now.iter().zip(&self.seen))
            .filter(|(_, (now, before))| now <= before)
            .map(|(r, _)| r.lock().map_or(u32::MAX, |r| r.queue))
            .collect();
        if stuck.is_empty() {
            notifier.send("WATCHDOG=1");
            self.told = false;
        } else if !self.told {
            log_line!(
                "transitd: the workers of {} published nothing for {:?}: not feeding the watchdog",
                crate::report::queue_list(&stuck),
                self.every
            );
            self.told = true;
        }
        (self.last, self.seen) = (Instant::now(), now);
    }
}

fn publications(reports: &[Arc<Mutex<WorkerReport>>]) -> Vec<u64> {
    reports.iter().map(|r| r.lock().map_or(0, |r| r.publications)).collect()
}

/// `transitd detach --iface IF`.
pub fn detach(iface: &str) -> anyhow::Result<Option<transitd_bpf::Found>> {
    Ok(transitd_bpf::detach(ifindex(iface)?)?)
}
