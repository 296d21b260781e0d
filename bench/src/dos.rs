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
    /// Frames of clean traffic per run (the capture cycled).
    #[arg(long, default_value_t = 1 << 20, value_parser = crate::at_least_one)]
    frames: usize,
    /// Timed runs per row (the rows with and without the stage alternated, run by run).
    #[arg(long, default_value_t = 7, value_parser = crate::at_least_one)]
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
    /// Frames forwarded by each run, the warm-up first.
    forwarded_by_run: Vec<u64>,
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
            forwarded_by_run: Vec::new(),
        }
    }

    /// One run: `total` frames.
    fn run(&mut self) {
        // Simulated receive time: the flood arrives at 10 Mpps, clean traffic at 1000 packets
        // per second, under every limit. Stamped per batch, as the worker reads its clock
        // once a batch: the 64 frames of a batch arrive at one instant (a burst, as a NIC
        // delivers).
        let step = if self.flood.is_some() { 100 } else { 1_000_000 };
        let Feed { snap, frames, total, flood, bufs, state, next, src, clock, forwarded_by_run } = self;
        let before = forwarded(&state.stats);
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
        forwarded_by_run.push(forwarded(&state.stats) - before);
    }

    /// Its row, once every run is over.
    fn measured(self, runs: Runs) -> Measured {
        Measured { runs, state: self.state, forwarded_by_run: self.forwarded_by_run }
    }
}

/// Clean traffic is under every limit: in each timed run (the warm-up aside) the stage
/// must forward what the baseline forwards, or the row with it measures drops, not the
/// stage (a limit the traffic does not stay under, a rule that drops it). At least 99 %:
/// the shipped configurations forward exactly what the baseline does (both drop the
/// capture's three truncated frames), and the slack spares a stage that drops a stray
/// frame of another capture. The baseline itself must forward in every run.
fn clean_forwarded_alike(without: &[u64], with: &[u64]) -> anyhow::Result<()> {
    anyhow::ensure!(without.len() > 1 && with.len() > 1, "no timed run of clean traffic");
    // Run 0 is the warm-up.
    for (run, (&base, &stage)) in without.iter().zip(with).enumerate().skip(1) {
        anyhow::ensure!(base > 0, "clean traffic: the baseline forwarded nothing in timed run {run}");
        anyhow::ensure!(
            stage * 100 >= base * 99,
            "clean traffic: timed run {run} forwarded {} with the stage, {base} without: the stage \
             dropped traffic that is under every limit, so its row measured drops, not the stage",
            transitd::report::counted(stage as usize, "frame")
        );
    }
    Ok(())
}

/// One configuration's row: its timing, its worker's state after, and what it forwarded in
/// each run (the warm-up first).
struct Measured {
    runs: Runs,
    state: WorkerState,
    forwarded_by_run: Vec<u64>,
}

/// The pipeline without and with the stage on the same frames, `runs` runs each,
/// alternated.
fn both(
    without: &Snapshot,
    with: &Snapshot,
    frames: &[Vec<u8>],
    total: usize,
    flood: Option<u32>,
    runs: usize,
) -> (Measured, Measured) {
    let mut feeds = [Feed::new(without, frames, total, flood), Feed::new(with, frames, total, flood)];
    let timed = Runs::interleaved(runs, total as u64, 2, |row| feeds[row].run());
    let [a, b] = feeds;
    (a.measured(timed[0]), b.measured(timed[1]))
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
    let total = args.frames.next_multiple_of(BATCH_SIZE);
    anyhow::ensure!(!clean.is_empty() && total > 0, "{}: no clean traffic to measure", args.pcap.display());
    let flood_total = (args.sources as usize).next_multiple_of(BATCH_SIZE);
    let (clean_base, clean_with) = both(&without, &with, &clean, total, None, args.runs);
    clean_forwarded_alike(&clean_base.forwarded_by_run, &clean_with.forwarded_by_run)?;
    let (clean_base, clean_with, s1) = (clean_base.runs, clean_with.runs, clean_with.state);
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
        let (base, with_stage) = both(&without, &with, &frames, flood_total, Some(args.sources), args.runs);
        let (base, base_state, with_stage, state) = (base.runs, base.state, with_stage.runs, with_stage.state);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(with: PathBuf) -> Args {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Args {
            without: root.join("bench/configs/dos-without.toml"),
            with,
            pcap: root.join("pcaps/real/zeek-communityid-tcp.pcap"),
            sources: 10_000,
            frames: 4096,
            runs: 1,
            floods: vec![Flood::Syn],
        }
    }

    /// A stage that rate-limits every packet to one a second drops clean traffic the baseline
    /// forwards (all but a few frames a run): its clean row timed drops, and printed a
    /// negative stage cost (-17 ns/packet) as the stage's, so the run fails. The shipped
    /// configuration, whose limits the clean traffic stays under, still measures.
    #[test]
    fn a_stage_that_drops_the_clean_traffic_measured_nothing() {
        let shipped = args(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/dos-with.toml"));
        let text = std::fs::read_to_string(&shipped.with).unwrap();
        // Its ICMP rule made to limit everything, at one packet a second.
        let limited = text
            .replace(r#"match = "icmp or icmpv6""#, r#"match = "ip or ipv6""#)
            .replace("rate = 10000\nburst = 100\n", "rate = 1\nburst = 1\n");
        assert!(limited.contains(r#""ip or ipv6""#), "dos-with.toml's ICMP rule moved");
        assert!(limited.contains("rate = 1\n"), "dos-with.toml's ICMP bucket moved");
        let path = std::env::temp_dir().join(format!("transitd-bench-dos-limit-all-{}.toml", std::process::id()));
        std::fs::write(&path, limited).unwrap();
        let result = run(&args(path.clone()));
        let _ = std::fs::remove_file(&path);
        let refused = result.expect_err("a stage that drops the clean traffic was measured");
        assert!(refused.to_string().contains("clean traffic"), "{refused:#}");
        run(&shipped).unwrap();
    }
}
