//! `transitd-bench dos`: a protection stage's cost per packet (the DoS rules, or TCP
//! protection), as the difference between the whole pipeline with and without it, on clean
//! traffic (a capture) and on floods of SYNs and/or ACKs from 10 million distinct sources
//! (generated in place: each frame's source address is rewritten before it is processed, in
//! both rows alike), with the memory its state holds.

use std::path::PathBuf;

use arrayvec::ArrayVec;
use transitd::io::capture::{CaptureReader, Record};
use transitd::pipeline::{BATCH_SIZE, Frame, HEADROOM};
use transitd::pipeline::{WorkerState, process_batch};
use transitd::snapshot::Snapshot;

use crate::measure::{Runs, forwarded};

/// Options of `dos`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration without DoS rules (the baseline).
    #[arg(long)]
    without: PathBuf,
    /// The same configuration with DoS rules.
    #[arg(long)]
    with: PathBuf,
    /// Clean traffic.
    #[arg(long)]
    pcap: PathBuf,
    /// Distinct flood sources.
    #[arg(long, default_value_t = 10_000_000)]
    sources: u32,
    /// Timed runs per row (the rows with and without the stage alternated, run by run).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// The floods to measure: `syn`, `ack` (comma-separated).
    #[arg(long, default_value = "syn", value_delimiter = ',')]
    floods: Vec<Flood>,
}

/// A flood's packets.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Flood {
    /// TCP SYNs.
    Syn,
    /// TCP ACKs of no connection.
    Ack,
}

fn load(path: &std::path::Path) -> anyhow::Result<Snapshot> {
    Snapshot::from_path(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// 60-byte TCP segment with `flags` from 100.0.0.0 + i to 203.0.113.100:80 (source
/// rewritten per frame).
fn segment(flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 100, 0, 0, 0, 203, 0, 113, 100]);
    f[34..54].copy_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    f
}

/// `frames` (cycled) fed through one configuration's pipeline, `total` frames a run, each
/// frame's source rewritten to the next of `flood` distinct addresses when that is set.
struct Feed<'a> {
    snap: &'a Snapshot,
    frames: &'a [Vec<u8>],
    total: usize,
    flood: Option<u32>,
    bufs: Vec<Vec<u8>>,
    state: WorkerState,
    next: usize,
    src: u32,
    clock: u64,
}

impl<'a> Feed<'a> {
    fn new(snap: &'a Snapshot, frames: &'a [Vec<u8>], total: usize, flood: Option<u32>) -> Feed<'a> {
        let max = frames.iter().map(Vec::len).max().unwrap_or(60);
        Feed {
            snap,
            frames,
            total,
            flood,
            bufs: (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + max]).collect(),
            state: WorkerState::new(snap),
            next: 0,
            src: 0,
            clock: 0,
        }
    }

    /// One run: `total` frames.
    fn run(&mut self) {
        // Simulated receive time: the flood arrives at 10 Mpps, clean traffic at 1000 packets
        // per second, under every limit. Stamped per batch, as the worker reads its clock
        // once a batch: the 64 frames of a batch arrive at one instant (a burst, as a NIC
        // delivers).
        let step = if self.flood.is_some() { 100 } else { 1_000_000 };
        let Feed { snap, frames, total, flood, bufs, state, next, src, clock } = self;
        for _ in 0..*total / BATCH_SIZE {
            let mut lens = [0usize; BATCH_SIZE];
            for (b, l) in bufs.iter_mut().zip(lens.iter_mut()) {
                let f = &frames[*next % frames.len()];
                *next += 1;
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                if let Some(n) = *flood {
                    // 100.0.0.0 upwards; the IPv4 checksum is patched for the new source.
                    let a = (100u32 << 24) + *src % n;
                    *src = src.wrapping_add(1);
                    b[HEADROOM + 26..HEADROOM + 30].copy_from_slice(&a.to_be_bytes());
                    let c = gre::checksum::checksum(&{
                        let mut h = [0u8; 20];
                        h.copy_from_slice(&b[HEADROOM + 14..HEADROOM + 34]);
                        h[10] = 0;
                        h[11] = 0;
                        h
                    });
                    b[HEADROOM + 24..HEADROOM + 26].copy_from_slice(&c.to_be_bytes());
                }
                *l = f.len();
            }
            *clock += step * BATCH_SIZE as u64;
            let mut batch: ArrayVec<Frame<'_>, BATCH_SIZE> =
                bufs.iter_mut().zip(lens).map(|(b, l)| Frame::new(b, HEADROOM, l, l as u32, *clock)).collect();
            process_batch(snap, &mut batch, state);
            state.spill.clear();
        }
    }
}

/// The pipeline without and with the stage on the same frames, `runs` runs each,
/// alternated; their timings and their state after.
fn both(
    without: &Snapshot,
    with: &Snapshot,
    frames: &[Vec<u8>],
    total: usize,
    flood: Option<u32>,
    runs: usize,
) -> ((Runs, WorkerState), (Runs, WorkerState)) {
    let mut feeds = [Feed::new(without, frames, total, flood), Feed::new(with, frames, total, flood)];
    let timed = Runs::interleaved(runs, total as u64, 2, |row| feeds[row].run());
    let [a, b] = feeds;
    ((timed[0], a.state), (timed[1], b.state))
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (without, with) = (load(&args.without)?, load(&args.with)?);
    let mut reader = CaptureReader::open(&args.pcap)?;
    let mut buf = vec![0u8; 1 << 18];
    let mut clean = Vec::new();
    while let Some(rec) = reader.next_into(&mut buf)? {
        if let Record::Frame { len, .. } = rec {
            clean.push(buf[..len].to_vec());
        }
    }
    let total = 1 << 20;
    let flood_total = (args.sources as usize).next_multiple_of(BATCH_SIZE);
    let ((clean_base, s0), (clean_with, s1)) = both(&without, &with, &clean, total, None, args.runs);
    anyhow::ensure!(forwarded(&s0.stats) > 0, "{}: the clean traffic was not forwarded", args.without.display());
    anyhow::ensure!(forwarded(&s1.stats) > 0, "nothing of the clean traffic was forwarded: the run measured nothing");
    println!(
        "clean: {} ({} frames, cycled to {total}); floods: {} distinct sources, one frame each per run\n",
        args.pcap.display(),
        clean.len(),
        args.sources
    );
    let (base_name, with_name) = (args.without.display(), args.with.display());
    println!("{}", Runs::header("packet"));
    println!("{}", clean_base.row(&format!("clean traffic, {base_name}")));
    println!("{}", clean_with.row(&format!("clean traffic, {with_name}")));
    let mut summary = vec![format!("clean {:.1} ns/packet", clean_with.median - clean_base.median)];
    let mut flooded = Vec::new();
    for kind in &args.floods {
        let (name, flags) = match kind {
            Flood::Syn => ("SYN flood", 0x02),
            Flood::Ack => ("ACK flood", 0x10),
        };
        let frames = vec![segment(flags)];
        let ((base, base_state), (with_stage, state)) =
            both(&without, &with, &frames, flood_total, Some(args.sources), args.runs);
        // The stage's cost is measured against forwarding the flood, not against dropping it.
        anyhow::ensure!(
            forwarded(&base_state.stats) > 0,
            "{}: the {name} was not forwarded: no baseline to measure the stage against",
            args.without.display()
        );
        // A stage that never acted on the flood measured a configuration that does not see it.
        let challenged = state.stats.sent_as(transitd::pipeline::TxReason::SynChallenge);
        anyhow::ensure!(
            state.stats.dropped() + challenged > 0,
            "{}: the {name} was neither dropped nor challenged: the stage did not engage, nothing measured",
            args.with.display()
        );
        println!("{}", base.row(&format!("{name}, {base_name}")));
        println!("{}", with_stage.row(&format!("{name}, {with_name}")));
        summary.push(format!("{name} {:.1} ns/packet", with_stage.median - base.median));
        flooded.push((name, state));
    }
    // On clean traffic the difference is the stage's cost; under a flood the stage drops what
    // the baseline encapsulates, so it is the stage's cost less the work it spares.
    println!(
        "\nwith the stage less without (median difference; under a flood: the stage's cost less the firewall \
         and encapsulation it spares what it drops): {}",
        summary.join(", ")
    );
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "state per worker, fixed at start: rate limits {:.1} MiB ({} buckets), TCP flow table {:.1} MiB",
        mib(s1.limits.dos.memory_bytes()),
        with.dos.buckets.len(),
        mib(s1.limits.flows.memory_bytes()),
    );
    println!("verdicts over all runs: clean {} transmitted, {} dropped", s1.stats.tx_frames, s1.stats.dropped());
    for (name, s) in &flooded {
        println!(
            "  {name}: {} transmitted, {} dropped, {} challenged; state after it: rate limits {:.1} MiB, flow table {:.1} MiB",
            s.stats.tx_frames - s.stats.sent_as(transitd::pipeline::TxReason::SynChallenge),
            s.stats.dropped(),
            s.stats.sent_as(transitd::pipeline::TxReason::SynChallenge),
            mib(s.limits.dos.memory_bytes()),
            mib(s.limits.flows.memory_bytes()),
        );
    }
    Ok(())
}
