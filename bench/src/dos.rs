//! `transitd-bench dos`: the DoS stage's cost per packet, as the difference between the
//! whole pipeline with and without it, on clean traffic (a capture) and on a SYN flood from
//! 10 million distinct sources (generated in place: each frame's source address is
//! rewritten before it is processed, in both rows alike), with the memory its buckets hold.

use std::path::PathBuf;

use arrayvec::ArrayVec;
use transitd::io::capture::{CaptureReader, Record};
use transitd::pipeline::{BATCH_SIZE, Frame, HEADROOM};
use transitd::pipeline::{WorkerState, process_batch};
use transitd::snapshot::Snapshot;

use crate::measure::Runs;

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
    /// Timed runs per row.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

fn load(path: &std::path::Path) -> anyhow::Result<Snapshot> {
    Snapshot::from_path(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// 60-byte SYN from 100.0.0.0 + i to 203.0.113.100:80 (source rewritten per frame).
fn syn() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 100, 0, 0, 0, 203, 0, 113, 100]);
    f[34..54].copy_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    f
}

/// Runs `frames` (cycled) through `snap`, `total` frames, rewriting each frame's source to
/// the next of `sources` distinct addresses when `flood` is set.
fn pipeline(snap: &Snapshot, frames: &[Vec<u8>], total: usize, flood: Option<u32>, runs: usize) -> (Runs, WorkerState) {
    // Simulated receive time: the flood arrives at 10 Mpps (100 ns apart), clean traffic at
    // 1000 packets per second, under every limit.
    let step = if flood.is_some() { 100 } else { 1_000_000 };
    let max = frames.iter().map(Vec::len).max().unwrap_or(60);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + max]).collect();
    let mut state = WorkerState::new(snap);
    let mut next = 0usize;
    let mut src = 0u32;
    let mut clock = 0u64;
    let r = Runs::measure(runs, total as u64, || {
        for _ in 0..total / BATCH_SIZE {
            let mut lens = [0usize; BATCH_SIZE];
            for (b, l) in bufs.iter_mut().zip(lens.iter_mut()) {
                let f = &frames[next % frames.len()];
                next += 1;
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                if let Some(n) = flood {
                    // 100.0.0.0 upwards; the IPv4 checksum is patched for the new source.
                    let a = (100u32 << 24) + src % n;
                    src = src.wrapping_add(1);
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
            clock += step * BATCH_SIZE as u64;
            let mut batch: ArrayVec<Frame<'_>, BATCH_SIZE> =
                bufs.iter_mut().zip(lens).map(|(b, l)| Frame::new(b, HEADROOM, l, l as u32, clock)).collect();
            process_batch(snap, &mut batch, &mut state);
            state.spill.clear();
        }
    });
    (r, state)
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
    let flood = vec![syn()];
    let total = 1 << 20;
    let flood_total = (args.sources as usize).next_multiple_of(BATCH_SIZE);
    let (clean_base, _) = pipeline(&without, &clean, total, None, args.runs);
    let (clean_dos, s1) = pipeline(&with, &clean, total, None, args.runs);
    let (flood_base, _) = pipeline(&without, &flood, flood_total, Some(args.sources), args.runs);
    let (flood_dos, s2) = pipeline(&with, &flood, flood_total, Some(args.sources), args.runs);
    println!(
        "clean: {} ({} frames, cycled to {total}); flood: {} distinct sources, one frame each per run\n",
        args.pcap.display(),
        clean.len(),
        args.sources
    );
    println!("{}", Runs::header("packet"));
    println!("{}", clean_base.row("clean traffic, pipeline without DoS rules"));
    println!("{}", clean_dos.row("clean traffic, pipeline with DoS rules and sanity checks"));
    println!("{}", flood_base.row("SYN flood, pipeline without DoS rules"));
    println!("{}", flood_dos.row("SYN flood, pipeline with DoS rules and sanity checks"));
    println!(
        "\nDoS stage (median difference): clean {:.1} ns/packet, flood {:.1} ns/packet",
        clean_dos.median - clean_base.median,
        flood_dos.median - flood_base.median
    );
    println!(
        "rate-limit state per worker: {} buckets, {:.1} MiB, fixed at start (the same after the flood: {:.1} MiB)",
        with.dos.buckets.len(),
        s1.limits.dos.memory_bytes() as f64 / (1 << 20) as f64,
        s2.limits.dos.memory_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "verdicts over all runs: clean {} transmitted, {} dropped; flood {} transmitted, {} dropped",
        s1.stats.tx_frames,
        s1.stats.dropped(),
        s2.stats.tx_frames,
        s2.stats.dropped()
    );
    Ok(())
}
