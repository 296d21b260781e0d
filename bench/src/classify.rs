//! `transitd-bench classify`: lookups per second of the compiled rule table on a ClassBench
//! rule set and trace, beside a linear first-match scan in the same run; `--print` writes the
//! matched rule for every trace line so that anyone can check the answers.
//!
//! `transitd-bench gen-trace` writes a ClassBench-style trace for a rule set: each header is
//! drawn inside a randomly chosen rule (as ClassBench's trace_generator does), with the
//! generating rule in the last column.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use classifier::RuleTable;
use classifier::classbench::{self, ClassBenchRule, Header};

use crate::measure::Runs;

/// Options of `classify`.
#[derive(clap::Args)]
pub struct Args {
    /// ClassBench rule file.
    #[arg(long)]
    rules: PathBuf,
    /// ClassBench trace file.
    #[arg(long)]
    trace: PathBuf,
    /// Print the matched rule index (0-based, or -1) for each trace line, then exit.
    #[arg(long)]
    print: bool,
    /// Timed runs.
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// Also time the linear scan (slow at 10k rules; on by default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    linear: bool,
}

/// Runs `classify`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let rules = classbench::parse_rules(&std::fs::read_to_string(&args.rules)?)?;
    let trace: Vec<Header> =
        classbench::parse_trace(&std::fs::read_to_string(&args.trace)?)?.into_iter().map(|t| t.0).collect();
    let t = Instant::now();
    let table = RuleTable::from_boxes(&classbench::boxes(&rules));
    let build = t.elapsed();
    if args.print {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for h in &trace {
            writeln!(out, "{}", table.first_match(&h.key()).map_or(-1, i64::from))?;
        }
        return Ok(());
    }
    let keys: Vec<_> = trace.iter().map(Header::key).collect();
    let n = keys.len() as u64;
    let compiled = Runs::measure(args.runs, n, || {
        for k in &keys {
            std::hint::black_box(table.first_match(std::hint::black_box(k)));
        }
    });
    let s = table.stats();
    println!("rules {} ({} rules), trace {} ({n} headers)", args.rules.display(), rules.len(), args.trace.display());
    println!(
        "build {:.1} ms; {} trees, {} nodes ({} leaves, largest {}), depth {}, {} leaf entries for {} boxes, {:.2} MiB\n",
        build.as_secs_f64() * 1e3,
        s.trees,
        s.nodes,
        s.leaves,
        s.largest_leaf,
        s.depth,
        s.leaf_entries,
        s.boxes,
        s.bytes as f64 / (1 << 20) as f64
    );
    println!("{}", Runs::header("lookup"));
    println!("{}", compiled.row("compiled table"));
    if args.linear {
        let linear = Runs::measure(args.runs.min(5), n, || {
            for h in &trace {
                std::hint::black_box(classbench::first_match_linear(&rules, std::hint::black_box(h)));
            }
        });
        println!("{}", linear.row("linear first-match scan"));
    }
    Ok(())
}

/// Options of `gen-trace`.
#[derive(clap::Args)]
pub struct GenArgs {
    /// ClassBench rule file.
    #[arg(long)]
    rules: PathBuf,
    /// Headers to write.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// xorshift64*: a small deterministic generator, enough for traces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn within(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Runs `gen-trace`.
pub fn gen_trace(args: &GenArgs) -> anyhow::Result<()> {
    let rules = classbench::parse_rules(&std::fs::read_to_string(&args.rules)?)?;
    anyhow::ensure!(!rules.is_empty(), "no rules in {}", args.rules.display());
    let mut rng = Rng(args.seed.max(1));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let addr = |rng: &mut Rng, (net, len): (u32, u8)| {
        let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
        (net & !host) | (rng.next() as u32 & host)
    };
    for _ in 0..args.count {
        let i = (rng.next() % rules.len() as u64) as usize;
        let r: &ClassBenchRule = &rules[i];
        let protos = [6u8, 17, 1, 47];
        let h = Header {
            src: addr(&mut rng, r.src),
            dst: addr(&mut rng, r.dst),
            sport: rng.within(r.sport.0.into(), r.sport.1.into()) as u16,
            dport: rng.within(r.dport.0.into(), r.dport.1.into()) as u16,
            proto: r.proto.unwrap_or(protos[(rng.next() % 4) as usize]),
        };
        writeln!(out, "{}\t{}\t{}\t{}\t{}\t0\t{i}", h.src, h.dst, h.sport, h.dport, h.proto)?;
    }
    Ok(())
}
