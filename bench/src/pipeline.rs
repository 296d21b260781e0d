//! `transitd-bench pipeline`: ns per packet of the in-memory pipeline over a capture, beside
//! the floors it cannot go below, measured in the same run.
//!
//! Every frame is copied into a buffer with headroom before it is processed, as a NIC's DMA
//! would put it there, so each row includes that copy; the first row is the copy alone.
//!
//! A run that measured nothing is refused: one that forwarded no frame, or, for traffic the
//! pipeline drops or answers by design (a flood), one whose frames did not all come to the
//! reason `--expect` names.

use std::path::PathBuf;

use arrayvec::ArrayVec;

use transitd::io::capture::{CaptureReader, Record};
use transitd::pipeline::{BATCH_SIZE, Frame, HEADROOM};
use transitd::pipeline::{Reason, WorkerState, WorkerStats, parse_frame, process_batch};
use transitd::snapshot::Snapshot;

use crate::measure::Runs;

/// Options of the pipeline benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Capture whose frames are replayed from memory.
    #[arg(long)]
    pcap: PathBuf,
    /// Timed runs per row. (At least one, refused by clap's own range rather than by
    /// `crate::at_least_one`: pipeline-compare.sh builds this file into older commits.)
    #[arg(long, default_value_t = 15, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    runs: usize,
    /// Frames per run (the capture is cycled).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    frames: usize,
    /// Simulated arrival rate, frames per second: frame k of a run is stamped k/rate seconds
    /// after the run's start (runs follow each other in simulated time), so rate-limit
    /// rules see traffic at this rate rather than every frame at one instant (so at most one
    /// frame a nanosecond).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    rate: u64,
    /// What every frame of every timed run must come to, as `verdict:reason` (the labels of
    /// the metrics' `transitd_packets_total`, e.g. `drop:tcp_out_of_state_rst`), for traffic
    /// the pipeline does not forward by design; without it, every timed run must forward.
    #[arg(long, value_parser = reason_named)]
    expect: Option<Reason>,
}

/// The reason named `verdict:reason` (some names are both a pass's and a drop's).
fn reason_named(text: &str) -> Result<Reason, String> {
    Reason::all()
        .find(|r| text.split_once(':') == Some((r.verdict(), r.name())))
        .ok_or_else(|| format!("no reason `{text}`: name one as verdict:reason, e.g. drop:tcp_out_of_state_rst"))
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let snap = Snapshot::from_path(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reader = CaptureReader::open(&args.pcap)?;
    let mut buf = vec![0u8; 1 << 18];
    let mut frames = Vec::new();
    while let Some(rec) = reader.next_into(&mut buf)? {
        if let Record::Frame { len, wire_len, .. } = rec {
            frames.push((buf[..len].to_vec(), wire_len));
        }
    }
    anyhow::ensure!(!frames.is_empty(), "{} holds no frames", args.pcap.display());
    let max = frames.iter().map(|f| f.0.len()).max().unwrap_or(0);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + max]).collect();
    let batches = args.frames.div_ceil(BATCH_SIZE);
    let total = (batches * BATCH_SIZE) as u64;

    // Fills the batch buffers with the next frames of the capture.
    let mut fill = {
        let mut next = 0usize;
        move |bufs: &mut [Vec<u8>], lens: &mut [(usize, u32)]| {
            for (b, l) in bufs.iter_mut().zip(lens.iter_mut()) {
                let (f, wire) = &frames[next];
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                *l = (f.len(), *wire);
                next = (next + 1) % frames.len();
            }
        }
    };
    let mut lens = [(0usize, 0u32); BATCH_SIZE];
    let mut state = WorkerState::new(&snap);
    let spacing_ns = 1_000_000_000 / args.rate;
    let mut clock_ns = 0u64;

    // What each run (the warm-up first) counted of what it must do: forward, or bring its
    // frames to `--expect`'s reason. Every timed run must, not only the warm-up before the
    // rate limits ran dry.
    let measured = |stats: &WorkerStats| match args.expect {
        Some(reason) => stats.frames_for(reason),
        None => crate::measure::forwarded(stats),
    };
    let mut measured_by_run = Vec::with_capacity(args.runs + 1);
    // The four rows interleaved, run by run: the ratio of the pipeline to the bare walk is
    // not skewed by the machine's drift between blocks of runs.
    let timed = Runs::interleaved(args.runs, total, 4, |row| match row {
        0 => {
            for _ in 0..batches {
                fill(&mut bufs, &mut lens);
                std::hint::black_box(&mut bufs);
            }
        }
        1 => {
            for _ in 0..batches {
                fill(&mut bufs, &mut lens);
                for (b, (len, _)) in bufs.iter().zip(lens.iter()) {
                    // The whole result, not just `is_ok()`: with cross-crate inlining (LTO)
                    // the compiler drops whatever of the walk nothing reads.
                    let _ = std::hint::black_box(etherparse::SlicedPacket::from_ethernet(&b[HEADROOM..HEADROOM + len]));
                }
            }
        }
        2 => {
            for _ in 0..batches {
                fill(&mut bufs, &mut lens);
                for (b, (len, wire)) in bufs.iter().zip(lens.iter()) {
                    std::hint::black_box(parse_frame(&b[HEADROOM..HEADROOM + len], *wire));
                }
            }
        }
        _ => {
            let before = measured(&state.stats);
            for _ in 0..batches {
                fill(&mut bufs, &mut lens);
                let mut batch: ArrayVec<Frame<'_>, BATCH_SIZE> = ArrayVec::new();
                batch.extend(bufs.iter_mut().zip(lens.iter()).map(|(b, (len, wire))| {
                    clock_ns += spacing_ns;
                    Frame::new(b, HEADROOM, *len, *wire, clock_ns)
                }));
                process_batch(&snap, &mut batch, &mut state);
                state.spill.clear(); // later fragments, if any, are not sent anywhere here
            }
            measured_by_run.push(measured(&state.stats) - before);
        }
    });
    let (copy, slice, parse, full) = (timed[0], timed[1], timed[2], timed[3]);
    // A pipeline that forwarded nothing measured drops and nothing else: that is no figure
    // (nor is one that only answered: an ICMP error or a SYN challenge is not forwarding).
    // With `--expect`, one whose frames did not all come to that reason measured other work
    // than the case's (a stage that did not engage, frames dropped before it).
    let timed = measured_by_run.get(1..).unwrap_or(&[]);
    let (what, least) = match args.expect {
        Some(r) => (format!("{}:{}", r.verdict(), r.name()), total),
        None => ("forwarded".to_string(), 1),
    };
    anyhow::ensure!(
        !timed.is_empty() && timed.iter().all(|&n| n >= least),
        "a timed run had fewer than {least} of its {total} frames {what} ({what} by run, the warm-up first: \
         {measured_by_run:?}; {} dropped, {} passed in all): the run measured nothing worth a figure",
        state.stats.dropped(),
        state.stats.passed()
    );
    // The pipeline rows ran once to warm up and `runs` times timed.
    let per_run = args.runs as u64 + 1;
    println!("capture {} ({} frames), config {}", args.pcap.display(), reader.records(), args.config.display());
    println!("{} frames per run, {} runs, simulated arrival rate {} frames/s\n", total, args.runs, args.rate);
    println!("{}", Runs::header("packet"));
    println!("{}", copy.row("copy into frame buffer (floor)"));
    println!("{}", slice.row("copy + etherparse SlicedPacket alone"));
    println!("{}", parse.row("copy + parse stage (etherparse, key)"));
    println!("{}", full.row("copy + whole pipeline"));
    println!(
        "\nper run: {} transmitted, {} passed, {} dropped (of {total}); {what} by each timed run: {}",
        state.stats.tx_frames / per_run,
        state.stats.passed() / per_run,
        state.stats.dropped() / per_run,
        timed.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use transitd::pipeline::DropReason;

    use super::*;

    /// Case (d) of `bench/scripts/pipeline-compare.sh`, a few batches of it.
    fn rst_flood(expect: Option<Reason>) -> anyhow::Result<()> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run(&Args {
            config: root.join("bench/configs/tcp-protection.toml"),
            pcap: root.join("pcaps/generated/rst-1000.pcap"),
            runs: 1,
            frames: 2000,
            rate: 1_000_000,
            expect,
        })
    }

    /// A RST flood at a customer under TCP protection is measured as what it is (every RST
    /// dropped as out of state, as the capture's script says they are: none belongs to a
    /// connection), and refused as a figure when the run is held to forwarding, which it does
    /// not do, or to another reason.
    #[test]
    fn a_rst_flood_is_measured_only_as_what_its_frames_come_to() {
        let out_of_state = Reason::Drop(DropReason::TcpOutOfStateRst);
        assert_eq!(reason_named("drop:tcp_out_of_state_rst"), Ok(out_of_state));
        assert!(reason_named("tcp_out_of_state_rst").is_err(), "a reason is named with its verdict");
        rst_flood(Some(out_of_state)).unwrap();
        assert!(rst_flood(None).is_err());
        assert!(rst_flood(Some(Reason::Drop(DropReason::Firewall))).is_err());
    }
}
