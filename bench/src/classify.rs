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
    #[arg(long, default_value_t = 11, value_parser = crate::at_least_one)]
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
    #[arg(long, default_value_t = 7, value_parser = crate::at_least_one)]
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
    let refs: Vec<&classifier::Key> = keys.iter().collect();
    let n = keys.len() as u64;
    // What is timed must answer as the reference does, and answer something: a table that
    // gave up early would time fast (every key on a trace of up to 100,000; a sample past).
    // Both ways it is timed: one key at a time, and in the batches of 64 of the second row
    // and of the DPDK comparison.
    anyhow::ensure!(n > 0, "the trace {} has no headers: nothing to measure", args.files.trace.display());
    let answered_in_batches = batch_answers(&table, &refs);
    let step = (trace.len() / 100_000).max(1);
    let mut matched = 0usize;
    for ((h, k), &in_batch) in trace.iter().zip(&keys).zip(&answered_in_batches).step_by(step) {
        let (got, want) = (table.first_match(k, &[]), classbench::first_match_linear(&rules, h));
        anyhow::ensure!(got == want, "the table answers {got:?} where the linear scan answers {want:?} for {h:?}");
        anyhow::ensure!(
            in_batch == want,
            "the table's batch lookup answers {in_batch:?} where the linear scan answers {want:?} for {h:?}"
        );
        matched += usize::from(got.is_some());
    }
    anyhow::ensure!(matched > 0, "no header of the trace matches a rule: nothing measured");
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

/// `table`'s answers for `keys`, looked up in batches of 64 as the timed rows look them up.
fn batch_answers(table: &RuleTable, keys: &[&classifier::Key]) -> Vec<Option<u32>> {
    let mut out = vec![None; keys.len()];
    for (chunk, answers) in keys.chunks(64).zip(out.chunks_mut(64)) {
        table.first_match_batch(chunk, &NO_BYTES[..chunk.len()], answers);
    }
    out
}

/// The answers `dpdk-test-acl` prints at its default verbosity, in trace order: from lines
/// `ipv4_5tuple: N, category: 0, result: R`, R the 0-based index of the first rule that
/// matches (it numbers its rules from 1 and prints one less), and no match as 4294967295
/// (0 less 1, as a u32). Seen: rule 0 is `result: 0`, so no match is not 0.
fn dpdk_answers(text: &str) -> Vec<Option<u32>> {
    text.lines()
        .filter_map(|l| l.strip_prefix("ipv4_5tuple: "))
        .filter_map(|l| l.rsplit_once("result: ")?.1.trim().parse::<u32>().ok())
        .map(|r| (r != u32::MAX).then_some(r))
        .collect()
}

/// Runs `dpdk-test-acl` once; returns its packets per second and, if asked, its answers
/// ([`dpdk_answers`]; checked: on acl1_10k with a generated trace its 20000 answers are
/// transitd's exactly).
fn dpdk_run(args: &Args, alg: &str, iterations: u32, answers: bool) -> anyhow::Result<(f64, Vec<Option<u32>>)> {
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
    Ok((pps, dpdk_answers(&text)))
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], crate::measure::median(&v), v[v.len() - 1])
}

/// Fails unless `dpdk-test-acl --alg=ALG` answers every one of `keys` (the trace's) as
/// `table` does in batches, a header no rule matches included.
fn dpdk_agrees(args: &Args, alg: &str, table: &RuleTable, keys: &[&classifier::Key]) -> anyhow::Result<()> {
    let ours = batch_answers(table, keys);
    let (_, theirs) = dpdk_run(args, alg, 1, true)?;
    let compared = theirs.len().min(ours.len());
    let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
    println!(
        "dpdk-test-acl --alg={alg}: {} compared with transitd's, {}",
        transitd::report::counted(compared, "answer"),
        transitd::report::counted_as(differ, "differs", "differ")
    );
    anyhow::ensure!(differ == 0 && compared == keys.len(), "answers differ from dpdk-test-acl --alg={alg}");
    Ok(())
}

/// transitd (batched) and dpdk-test-acl, round by round in one run.
fn compare_with_dpdk(args: &Args, table: &RuleTable, keys: &[&classifier::Key]) -> anyhow::Result<()> {
    for alg in &args.dpdk {
        dpdk_agrees(args, alg, table, keys)?;
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
        "\nlookup cost by rule count (first N rules of the set, same {n} headers), ns per lookup, median of \
         {} (the linear scan's of {}):\n",
        transitd::report::counted(runs, "run"),
        runs.min(5)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What dpdk-test-acl (Debian 12's dpdk-dev, 22.11) printed for two rules, `10.0.0.0/8`
    /// TCP then `20.0.0.0/8` any, and TCP headers from 10.1.1.1, 20.1.1.1 and 30.1.1.1: rule
    /// 0, rule 1, no rule. No match is not rule 0 (it was read as 0, and transitd's no match
    /// as 0 too, so that a table answering "none" where rule 0 matches passed the check).
    #[test]
    fn dpdk_says_no_match_apart_from_rule_0() {
        let printed = "num_categories=3\n  num_tries=1\n\
            ipv4_5tuple: 1, category: 0, result: 0\n\
            ipv4_5tuple: 2, category: 0, result: 1\n\
            ipv4_5tuple: 3, category: 0, result: 4294967295\n\
            search_ip5tuples_once(1, 256, scalar) returns 3\n";
        assert_eq!(dpdk_answers(printed), [Some(0), Some(1), None]);
    }

    /// A trace with a header no rule of the set matches (acl_1k without its last rule, the
    /// catch-all; the header found by a brute-force scan in Python, and checked here by the
    /// linear scan): dpdk-test-acl and the table both answer "no match", and the comparison
    /// holds. It failed, "1 differ", while DPDK's no match was read as a rule number.
    #[test]
    fn a_header_no_rule_matches_agrees_with_dpdk() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../classifier/tests/data/classbench");
        let all_rules = std::fs::read_to_string(data.join("acl_1k")).unwrap();
        let lines: Vec<&str> = all_rules.lines().collect();
        let (catch_all, rest) = lines.split_last().unwrap();
        assert!(catch_all.starts_with("@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00"), "{catch_all}");
        let rules_text = rest.join("\n") + "\n";
        let trace_text = std::fs::read_to_string(data.join("acl_1k_trace")).unwrap();
        let mut trace_text: String = trace_text.lines().take(100).map(|l| format!("{l}\n")).collect();
        trace_text += "577090037\t1222356005\t8271\t33432\t6\t0\t0\n";

        let rules = classbench::parse_rules(&rules_text).unwrap();
        let trace: Vec<Header> = classbench::parse_trace(&trace_text).unwrap().into_iter().map(|t| t.0).collect();
        let lone = trace.last().unwrap();
        assert_eq!(classbench::first_match_linear(&rules, lone), None, "{lone:?} matches a rule");
        let table = RuleTable::from_boxes(&classbench::boxes(&rules));
        let keys: Vec<_> = trace.iter().map(Header::key).collect();
        let refs: Vec<&classifier::Key> = keys.iter().collect();

        let dir = std::env::temp_dir();
        let files = ClassBenchFiles {
            rules: dir.join(format!("transitd-bench-no-catch-all-{}", std::process::id())),
            trace: dir.join(format!("transitd-bench-no-catch-all-{}.trace", std::process::id())),
        };
        std::fs::write(&files.rules, rules_text).unwrap();
        std::fs::write(&files.trace, trace_text).unwrap();
        let args = Args { files, print: false, runs: 1, linear: false, dpdk: vec![], scale: false, rounds: 1 };
        let agreed = dpdk_agrees(&args, "scalar", &table, &refs);
        let _ = std::fs::remove_file(&args.files.rules);
        let _ = std::fs::remove_file(&args.files.trace);
        agreed.unwrap();
    }
}
