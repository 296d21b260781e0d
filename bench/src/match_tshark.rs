//! `transitd-bench match`: `transitd match -Y` against `tshark -Y` on the same expression and
//! the same capture, both as commands (process start and file reading included), each first
//! every other round after an untimed run of each; frames per second for each, and a check
//! (of the untimed runs) that both print the same frame numbers:
//! on the frames the documented differences do not touch (one IP header, no fragment, not
//! malformed: the oracle test's domain) a frame one tool selects alone fails the run; on the
//! others, their count is shown.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Options of `match`.
#[derive(clap::Args)]
pub struct Args {
    /// Display filters to time (repeatable).
    #[arg(long = "expr", required = true)]
    exprs: Vec<String>,
    /// Captures to concatenate (with mergecap -a) into the benchmark capture.
    #[arg(long = "pcap", required = true, num_args = 1..)]
    pcaps: Vec<PathBuf>,
    /// Times the list of captures is repeated in the benchmark capture.
    #[arg(long, default_value_t = 1, value_parser = crate::at_least_one)]
    repeat: usize,
    /// Timed rounds (each: one transitd run and one tshark run, per expression, each tool
    /// first every other round), after an untimed one.
    #[arg(long, default_value_t = 5, value_parser = crate::at_least_one)]
    rounds: usize,
    /// The transitd binary.
    #[arg(long, default_value = "target/release/transitd")]
    transitd: PathBuf,
}

/// The frames where transitd is held to select what tshark selects (`match_oracle.rs`'s
/// `COMPARABLE`): one IP header, not a fragment, not malformed.
const COMPARABLE: &str = "((count(ip.version) == 1 and not ipv6) or (count(ipv6.version) == 1 and not ip)) \
    and not (ip.flags.mf == 1 or ip.frag_offset > 0 or ipv6.fraghdr) and not _ws.malformed";

/// tshark's command line, reassembly off ([`transitd::dryrun::TSHARK_PREFERENCES`]).
fn tshark(capture: &std::path::Path, filter: &str) -> Command {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n");
    for (name, value) in transitd::dryrun::TSHARK_PREFERENCES {
        cmd.arg("-o").arg(format!("{name}:{value}"));
    }
    cmd.arg("-r").arg(capture).args(["-Y", filter, "-T", "fields", "-e", "frame.number"]);
    cmd
}

/// Runs `first` then `second` in even rounds, `second` then `first` in odd ones, and returns
/// their results in the order given: each tool goes first every other round, so that neither
/// always runs right after the other has read the capture (its pages cached, the CPU's clock
/// up), as the other comparisons take turns.
fn by_turns<A, B>(
    round: usize,
    first: impl FnOnce() -> anyhow::Result<A>,
    second: impl FnOnce() -> anyhow::Result<B>,
) -> anyhow::Result<(A, B)> {
    if round.is_multiple_of(2) {
        let a = first()?;
        Ok((a, second()?))
    } else {
        let b = second()?;
        Ok((first()?, b))
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<(f64, String)> {
    let t = Instant::now();
    let out = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok((secs, String::from_utf8(out.stdout)?))
}

/// Runs the comparison and prints a Markdown table.
pub fn bench(args: &Args) -> anyhow::Result<()> {
    let capture = std::env::temp_dir().join(format!("transitd-bench-match-{}.pcapng", std::process::id()));
    let mut merge = Command::new("mergecap");
    merge.args(["-a", "-F", "pcapng", "-w"]).arg(&capture);
    for _ in 0..args.repeat {
        merge.args(&args.pcaps);
    }
    run(&mut merge)?;
    let frames = run(Command::new("capinfos").args(["-M", "-c", "-T", "-r"]).arg(&capture))?
        .1
        .lines()
        .last()
        .and_then(|l| l.split('\t').nth(1))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("capinfos gave no frame count"))?;
    println!("capture: {} captures x {} = {frames} frames\n", args.pcaps.len(), args.repeat);
    let frame_set =
        |out: &str| -> std::collections::BTreeSet<u64> { out.lines().filter_map(|l| l.trim().parse().ok()).collect() };
    let comparable = frame_set(&run(&mut tshark(&capture, COMPARABLE))?.1);
    // `eth.*` is the frame's own Ethernet header; tshark's also holds a pseudowire's.
    let one_ethernet = frame_set(&run(&mut tshark(&capture, &format!("({COMPARABLE}) and count(eth.type) <= 1")))?.1);
    println!(
        "| expression | selected | one tool only (documented differences) | transitd frames/s (min / median / max) | tshark frames/s (min / median / max) | ratio (median) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for expr in &args.exprs {
        let run_transitd = || run(Command::new(&args.transitd).args(["match", "-r"]).arg(&capture).args(["-Y", expr]));
        let run_tshark = || run(&mut tshark(&capture, expr));
        // Untimed: the answers checked, and each tool's binary and libraries read once before
        // any run is timed (tshark's were, for the domains above; transitd's were not).
        let ((_, a), (_, b)) = by_turns(0, run_transitd, run_tshark)?;
        let (x, y) = (frame_set(&a), frame_set(&b));
        let selected = x.len();
        // An expression neither tool's answer holds a frame of measures a filter that never
        // matches: no figure for a rule that selects traffic.
        anyhow::ensure!(
            selected > 0 && !y.is_empty(),
            "`{expr}` selects no frame of the capture (transitd {selected}, tshark {}): choose one that does",
            y.len()
        );
        // `eth` or an `eth.` field (not `ether`, not `meth`): tshark's also reads a
        // pseudowire's Ethernet header.
        let names_eth = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .any(|w| w == "eth" || w.starts_with("eth."));
        let domain = if names_eth { &one_ethernet } else { &comparable };
        let (inside, outside): (Vec<u64>, Vec<u64>) =
            x.symmetric_difference(&y).copied().partition(|f| domain.contains(f));
        anyhow::ensure!(
            inside.is_empty(),
            "`{expr}`: transitd and tshark disagree on {} frames no documented difference covers (first: {:?})",
            inside.len(),
            &inside[..inside.len().min(10)]
        );
        let elsewhere = outside.len();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let ((t1, _), (t2, _)) = by_turns(round, run_transitd, run_tshark)?;
            ours.push(frames / t1);
            theirs.push(frames / t2);
        }
        ours.sort_by(f64::total_cmp);
        theirs.sort_by(f64::total_cmp);
        let m = crate::measure::median;
        println!(
            "| `{expr}` | {selected} | {elsewhere} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.1}x |",
            ours[0],
            m(&ours),
            ours[ours.len() - 1],
            theirs[0],
            m(&theirs),
            theirs[theirs.len() - 1],
            m(&ours) / m(&theirs)
        );
    }
    let _ = std::fs::remove_file(capture);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Each tool goes first every other round, and its result comes back as its own: transitd
    /// ran first in every round, right after tshark had read the capture (strace: `transitd
    /// tshark` three times over for `--rounds 3`).
    #[test]
    fn the_tools_take_turns_at_going_first() {
        let ran = RefCell::new(Vec::new());
        for round in 0..4 {
            let first = || -> anyhow::Result<(&'static str, usize)> {
                ran.borrow_mut().push("transitd");
                Ok(("transitd", round))
            };
            let second = || -> anyhow::Result<(&'static str, usize)> {
                ran.borrow_mut().push("tshark");
                Ok(("tshark", round))
            };
            assert_eq!(by_turns(round, first, second).unwrap(), (("transitd", round), ("tshark", round)));
        }
        let first = ["transitd", "tshark", "tshark", "transitd", "transitd", "tshark", "tshark", "transitd"];
        assert_eq!(ran.into_inner(), first);
    }

    /// A tool that fails fails the round, whichever went first.
    #[test]
    fn a_tool_that_fails_fails_the_round() {
        for round in 0..2 {
            let failed = || -> anyhow::Result<()> { anyhow::bail!("exit status 2") };
            assert!(by_turns(round, failed, || Ok(())).is_err());
            assert!(by_turns(round, || Ok(()), failed).is_err());
        }
    }
}
