//! `transitd-bench ipfix`: what flow sampling for IPFIX costs per packet. The whole
//! pipeline runs on a capture (cycled) without sampling and sampling one packet in N for
//! each N asked, the rows run by run in turn, each sampled one with its exporter thread
//! running beside it and sending its records to a UDP socket of the benchmark's, where they
//! are counted: a sampled row whose records never arrive measured nothing, and fails.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arrayvec::ArrayVec;
use transitd::io::capture::{CaptureReader, Record};
use transitd::ipfix::exporter::Exporter;
use transitd::ipfix::{Sampler, Samples};
use transitd::pipeline::{BATCH_SIZE, Frame, HEADROOM, WorkerState, process_batch};
use transitd::snapshot::{Ipfix, Snapshot};

use crate::measure::Runs;

/// Options of `ipfix`.
#[derive(clap::Args)]
pub struct Args {
    /// The configuration (its `[ipfix]`, if any, is replaced).
    #[arg(long)]
    config: PathBuf,
    /// The traffic.
    #[arg(long)]
    pcap: PathBuf,
    /// Sampling rates to measure, one in N.
    #[arg(long, default_value = "10000,1000,100,1", value_delimiter = ',')]
    sample: Vec<u32>,
    /// Frames per timed run.
    #[arg(long, default_value_t = 1 << 20, value_parser = crate::at_least_one)]
    frames: usize,
    /// Timed runs per row.
    #[arg(long, default_value_t = 7, value_parser = crate::at_least_one)]
    runs: usize,
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut reader = CaptureReader::open(&args.pcap)?;
    let mut buf = vec![0u8; 1 << 18];
    let mut frames = Vec::new();
    while let Some(rec) = reader.next_into(&mut buf)? {
        if let Record::Frame { len, .. } = rec {
            frames.push(buf[..len].to_vec());
        }
    }
    anyhow::ensure!(!frames.is_empty(), "{}: no frames", args.pcap.display());
    let total = args.frames.next_multiple_of(BATCH_SIZE);

    // Every row set up first (the sampled ones with their exporter thread and a collector of
    // their own), then timed run by run in turn, so that a drift of the machine falls on
    // every row alike.
    let mut lanes = vec![Lane::new(Arc::new(load(&args.config, None)?), &frames, None)];
    let mut exports = Vec::new();
    for &n in &args.sample {
        let collector = Collector::start()?;
        let config = Ipfix {
            collector: collector.addr,
            sample: n,
            observation_domain: 1,
            active_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(1),
            enterprise_number: 32473,
            template_refresh: Duration::from_secs(60),
            max_message: 1400,
        };
        let snap = Arc::new(load(&args.config, Some(config))?);
        let samples = Samples::new(65_536);
        let exporter = Exporter::fixed(samples.clone(), snap.clone());
        let stats = exporter.stats.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || exporter.run(&stop))
        };
        lanes.push(Lane::new(snap, &frames, Some(Sampler::new(samples.clone()))));
        exports.push((n, collector, samples, stats, stop, thread));
    }
    let timed = Runs::interleaved(args.runs, total as u64, lanes.len(), |row| lanes[row].run(&frames, total));
    anyhow::ensure!(
        crate::measure::forwarded(&lanes[0].state.stats) > 0,
        "{} forwards nothing of {}: the run would measure the pass or drop path",
        args.config.display(),
        args.pcap.display()
    );

    println!("{} ({} frames, cycled to {total} per run)\n", args.pcap.display(), frames.len());
    println!("{}", Runs::header("packet"));
    println!("{}", timed[0].row("no sampling"));
    let mut summary = Vec::new();
    for ((n, collector, samples, stats, stop, thread), runs) in exports.into_iter().zip(&timed[1..]) {
        stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
        let messages = collector.stop();
        let records = stats.records.load(Ordering::Relaxed);
        let lost = samples.lost.load(Ordering::Relaxed);
        anyhow::ensure!(messages > 0 && records > 0, "1 in {n}: no IPFIX message arrived: the row measured nothing");
        println!(
            "{}",
            runs.row(&format!("1 in {n}: {records} flow records, {messages} messages arrived, {lost} samples lost"))
        );
        summary.push(format!("1 in {n}: {:+.1} ns/packet", runs.median - timed[0].median));
    }
    println!("\nsampling's cost (median difference): {}", summary.join(", "));
    Ok(())
}

/// A UDP socket of the benchmark's where an exporter sends, and the thread counting the
/// messages that arrive.
struct Collector {
    addr: std::net::SocketAddr,
    arrived: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Collector {
    fn start() -> anyhow::Result<Collector> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let (arrived, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (arrived, done) = (arrived.clone(), done.clone());
            std::thread::spawn(move || {
                let mut b = [0u8; 65536];
                while !done.load(Ordering::Relaxed) {
                    if socket.recv(&mut b).is_ok() {
                        arrived.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Ok(Collector { addr, arrived, done, thread })
    }

    /// Messages that arrived, once what is under way has had time to.
    fn stop(self) -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.arrived.load(Ordering::Relaxed)
    }
}

fn load(path: &std::path::Path, ipfix: Option<Ipfix>) -> anyhow::Result<Snapshot> {
    let mut snap = Snapshot::from_path(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    snap.ipfix = ipfix;
    Ok(snap)
}

/// One row: a snapshot, the worker's state and buffers, and the sampler if it samples.
struct Lane {
    snap: Arc<Snapshot>,
    state: WorkerState,
    bufs: Vec<Vec<u8>>,
    sampler: Option<Sampler>,
    next: usize,
    clock: u64,
}

impl Lane {
    fn new(snap: Arc<Snapshot>, frames: &[Vec<u8>], sampler: Option<Sampler>) -> Lane {
        let max = frames.iter().map(Vec::len).max().unwrap_or(60);
        let bufs = (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + max]).collect();
        let state = WorkerState::new(&snap);
        Lane { snap, state, bufs, sampler, next: 0, clock: 0 }
    }

    /// Runs `frames` (cycled) through the lane's snapshot, `total` frames, sampling as the
    /// worker loop does (before and after each batch).
    fn run(&mut self, frames: &[Vec<u8>], total: usize) {
        let snap = &*self.snap;
        let every = snap.ipfix.as_ref().map_or(0, |x| x.sample);
        for _ in 0..total / BATCH_SIZE {
            let mut lens = [0usize; BATCH_SIZE];
            for (b, l) in self.bufs.iter_mut().zip(lens.iter_mut()) {
                let f = &frames[self.next % frames.len()];
                self.next += 1;
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                *l = f.len();
            }
            self.clock += 1_000_000 * BATCH_SIZE as u64;
            let clock = self.clock;
            let mut batch: ArrayVec<Frame<'_>, BATCH_SIZE> =
                self.bufs.iter_mut().zip(lens).map(|(b, l)| Frame::new(b, HEADROOM, l, l as u32, clock)).collect();
            if let Some(s) = self.sampler.as_mut() {
                s.pick(every, &batch);
            }
            process_batch(snap, &mut batch, &mut self.state);
            if let Some(s) = self.sampler.as_mut() {
                s.record(snap, self.state.outcomes());
            }
            self.state.spill.clear();
        }
    }
}
