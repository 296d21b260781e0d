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

/// ClassBench tables test headers only: no frame bytes behind the keys.
const NO_BYTES: [&[u8]; 64] = [&[]; 64];

/// A ClassBench rule set and a trace of headers (`--rules`, `--trace`): what `classify`,
/// `lists` and `signatures` run on.
#[derive(clap::Args)]
pub struct ClassBenchFiles {
    /// ClassBench rule file.
    #[arg(long)]
    pub rules: PathBuf,
    /// ClassBench trace file.
    #[arg(long)]
    pub trace: PathBuf,
}

impl ClassBenchFiles {
    /// The rules and the trace's headers.
    pub fn load(&self) -> anyhow::Result<(Vec<ClassBenchRule>, Vec<Header>)> {
        let rules = classbench::parse_rules(&std::fs::read_to_string(&self.rules)?)?;
        let trace = classbench::parse_trace(&std::fs::read_to_string(&self.trace)?)?.into_iter().map(|t| t.0).collect();
        Ok((rules, trace))
    }
}

/// Options of `classify`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: ClassBenchFiles,
    /// Print the matched rule index (0-based, or -1) for each trace line, then exit.
    #[arg(long)]
    print: bool,
    /// Timed runs.
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// Also time the linear scan (slow at 10k rules; on by default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    linear: bool,
    /// Run DPDK's `dpdk-test-acl` with these algorithms (comma-separated, e.g.
    /// `scalar,avx2`) on the same files, interleaved with transitd's runs, and check its
    /// answers against transitd's. The trace should hold at most ~20k lines (dpdk-test-acl
    /// crashes on larger ones here with 10k rules).
    #[arg(long, value_delimiter = ',')]
    dpdk: Vec<String>,
    /// Also time the compiled table and the linear scan on the first 1, 10, 100, 1000 and
    /// 10000 rules of the set (same trace), to show how lookup cost grows with rules.
    #[arg(long)]
    scale: bool,
    /// Rounds of the DPDK comparison (each: one transitd pass set, one dpdk-test-acl run per algorithm).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
}

/// Runs `classify`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (rules, trace) = args.files.load()?;
    let t = Instant::now();
    let table = RuleTable::from_boxes(&classbench::boxes(&rules));
    let build = t.elapsed();
    if args.print {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for h in &trace {
            writeln!(out, "{}", table.first_match(&h.key(), &[]).map_or(-1, i64::from))?;
        }
        return Ok(());
    }
    let keys: Vec<_> = trace.iter().map(Header::key).collect();
    let n = keys.len() as u64;
    // What is timed must answer as the reference does, and answer something: a table that
    // gave up early would time fast (every key on a trace of up to 100,000; a sample past).
    anyhow::ensure!(n > 0, "the trace {} has no headers: nothing to measure", args.files.trace.display());
    let step = (trace.len() / 100_000).max(1);
    let mut matched = 0usize;
    for (h, k) in trace.iter().zip(&keys).step_by(step) {
        let (got, want) = (table.first_match(k, &[]), classbench::first_match_linear(&rules, h));
        anyhow::ensure!(got == want, "the table answers {got:?} where the linear scan answers {want:?} for {h:?}");
        matched += usize::from(got.is_some());
    }
    anyhow::ensure!(matched > 0, "no header of the trace matches a rule: nothing measured");
    let refs: Vec<&classifier::Key> = keys.iter().collect();
    let [compiled, batched] = one_and_batched(&table, &keys, &refs, args.runs);
    let s = table.stats();
    println!(
        "rules {} ({} rules), trace {} ({n} headers)",
        args.files.rules.display(),
        rules.len(),
        args.files.trace.display()
    );
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
    println!("{}", compiled.row("compiled table, one key at a time"));
    println!("{}", batched.row("compiled table, batches of 64 keys"));
    if args.scale {
        scale(&rules, &trace, args.runs);
    }
    if !args.dpdk.is_empty() {
        compare_with_dpdk(args, &table, &refs)?;
    }
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

/// Runs `dpdk-test-acl` once; returns its packets per second and, if asked, its answers:
/// the `userdata` of the matching rule, which is the 0-based rule index here, and also 0 when
/// no rule matches (checked: on acl1_10k with a generated trace its 20000 answers are
/// transitd's exactly).
fn dpdk_run(args: &Args, alg: &str, iterations: u32, answers: bool) -> anyhow::Result<(f64, Vec<u32>)> {
    let out = std::process::Command::new("dpdk-test-acl")
        .args([
            "--no-huge",
            "--no-pci",
            "-l",
            "0",
            "-m",
            "4096",
            "--force-max-simd-bitwidth=512",
            "--log-level=error",
            "--",
        ])
        .arg(format!("--rulesf={}", args.files.rules.display()))
        .arg(format!("--tracef={}", args.files.trace.display()))
        .arg("--tracenum=65536")
        .arg(format!("--alg={alg}"))
        .arg(format!("--iter={iterations}"))
        // The default verbosity prints each answer; 0 prints only the rate.
        .args(if answers { None } else { Some("--verbose=0") })
        .output()
        .map_err(|e| anyhow::anyhow!("dpdk-test-acl (Debian's dpdk-dev): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pps = text
        .lines()
        .find(|l| l.starts_with("search_ip5tuples ") || l.starts_with("search_ip5tuples  @"))
        .and_then(|l| l.split(", ").last())
        .and_then(|l| l.trim().strip_suffix(" pkt/sec"))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("dpdk-test-acl --alg={alg} printed no rate:\n{text}"))?;
    let results = text
        .lines()
        .filter_map(|l| l.strip_prefix("ipv4_5tuple: "))
        .filter_map(|l| l.rsplit_once("result: ")?.1.trim().parse::<u32>().ok())
        .collect();
    Ok((pps, results))
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], crate::measure::median(&v), v[v.len() - 1])
}

/// transitd (batched) and dpdk-test-acl, round by round in one run.
fn compare_with_dpdk(args: &Args, table: &RuleTable, keys: &[&classifier::Key]) -> anyhow::Result<()> {
    let mut out = vec![None; keys.len()];
    table.first_match_batch(keys, &vec![&[][..]; keys.len()], &mut out);
    for alg in &args.dpdk {
        let (_, theirs) = dpdk_run(args, alg, 1, true)?;
        let compared = theirs.len().min(out.len());
        // DPDK reports "no match" as 0, like a match of rule 0.
        let differ = (0..compared).filter(|&i| theirs[i] != out[i].unwrap_or(0)).count();
        println!("dpdk-test-acl --alg={alg}: {compared} answers compared with transitd's, {differ} differ");
        anyhow::ensure!(differ == 0 && compared == keys.len(), "answers differ from dpdk-test-acl --alg={alg}");
    }
    // Each round: enough passes over the trace for ~0.1 s of transitd, then each algorithm.
    let passes = (2_000_000 / keys.len().max(1)).max(1);
    let mut ours = Vec::new();
    let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); args.dpdk.len()];
    let mut buf = vec![None; 64];
    for round in 0..args.rounds {
        let mut transitd = || {
            let t = Instant::now();
            for _ in 0..passes {
                for chunk in keys.chunks(64) {
                    table.first_match_batch(
                        std::hint::black_box(chunk),
                        &NO_BYTES[..chunk.len()],
                        &mut buf[..chunk.len()],
                    );
                    std::hint::black_box(&buf);
                }
            }
            (passes * keys.len()) as f64 / t.elapsed().as_secs_f64()
        };
        // Each side goes first every other round, so that neither always runs on a cooler
        // (or warmer) machine.
        if round % 2 == 0 {
            ours.push(transitd());
        }
        for (i, alg) in args.dpdk.iter().enumerate() {
            theirs[i].push(dpdk_run(args, alg, passes as u32, false)?.0);
        }
        if round % 2 == 1 {
            ours.push(transitd());
        }
    }
    println!(
        "\n{} rounds, alternated (each side first every other round); millions of lookups per second:\n",
        args.rounds
    );
    println!("| engine | min | median | max |\n|---|---:|---:|---:|");
    let (a, b, c) = summary(ours);
    println!("| transitd compiled table, batches of 64 | {:.2} | {:.2} | {:.2} |", a / 1e6, b / 1e6, c / 1e6);
    for (alg, v) in args.dpdk.iter().zip(theirs) {
        let (a, b, c) = summary(v);
        println!("| dpdk-test-acl --alg={alg} | {:.2} | {:.2} | {:.2} |", a / 1e6, b / 1e6, c / 1e6);
    }
    Ok(())
}

/// `table`'s lookups of `keys` one at a time and in batches of 64 (`refs`, the same keys),
/// their runs interleaved so that drift on a busy machine falls on both alike.
fn one_and_batched(table: &RuleTable, keys: &[classifier::Key], refs: &[&classifier::Key], runs: usize) -> [Runs; 2] {
    let mut out = vec![None; 64];
    let timed = Runs::interleaved(runs, keys.len() as u64, 2, |row| {
        if row == 0 {
            for k in keys {
                std::hint::black_box(table.first_match(std::hint::black_box(k), &[]));
            }
        } else {
            for chunk in refs.chunks(64) {
                table.first_match_batch(std::hint::black_box(chunk), &NO_BYTES[..chunk.len()], &mut out[..chunk.len()]);
                std::hint::black_box(&out);
            }
        }
    });
    [timed[0], timed[1]]
}

/// Lookup cost against rule count: the first N rules, the same headers.
fn scale(rules: &[ClassBenchRule], trace: &[Header], runs: usize) {
    let keys: Vec<_> = trace.iter().map(Header::key).collect();
    let refs: Vec<&classifier::Key> = keys.iter().collect();
    let n = keys.len() as u64;
    println!(
        "\nlookup cost by rule count (first N rules of the set, same {n} headers), ns per lookup, median of {runs} runs:\n"
    );
    println!("| rules | compiled, one at a time | compiled, batches of 64 | linear scan |\n|---:|---:|---:|---:|");
    let mut counts: Vec<usize> = [1, 10, 100, 1000, 10_000].iter().map(|&c| c.min(rules.len())).collect();
    counts.dedup();
    for count in counts {
        let subset = &rules[..count];
        let table = RuleTable::from_boxes(&classbench::boxes(subset));
        let [single, batched] = one_and_batched(&table, &keys, &refs, runs);
        let linear = Runs::measure(runs.min(5), n, || {
            for h in trace {
                std::hint::black_box(classbench::first_match_linear(subset, std::hint::black_box(h)));
            }
        });
        println!("| {count} | {:.1} | {:.1} | {:.1} |", single.median, batched.median, linear.median);
    }
}
