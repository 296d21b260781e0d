//! `transitd-bench lists`: what a large `[[list]]` costs a rule table, against the same
//! prefixes written into the rules, in one run on a ClassBench rule set and trace.
//!
//! Three tables answer the same trace: (a) the ClassBench rules alone; (b) a first rule
//! `ip.src in $blocked`, a list of N random prefixes (some of them the trace's own sources,
//! so that it matches), then the ClassBench rules; (c) the same prefixes as N rules
//! `ip.src == P` in front of the ClassBench rules. (b) and (c) must pick the same rule for
//! every header (the run fails otherwise); (b) pays one list lookup per header
//! ([`classifier::Membership::fill`]) and (c) a table that holds N more boxes.
//!
//! Each is measured one header at a time and, as the pipeline's firewall phase looks up, in
//! batches of 64 (the batch's slots filled, then `first_match_batch`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use classifier::classbench::{self, Header};
use classifier::compile::{Bounds, boxes};
use classifier::{Key, List, Registry, RuleTable, parse, parse_with};

use crate::measure::Runs;

/// Keys looked up together in the batched rows: the pipeline's batch.
const BATCH: usize = transitd::pipeline::BATCH_SIZE;

/// Fills the membership slots of each of `keys`.
fn fill_all(membership: &classifier::Membership, keys: &mut [Key]) {
    for k in keys {
        membership.fill(k);
    }
}

/// Options of `lists`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: crate::classify::ClassBenchFiles,
    /// Prefixes in the list.
    #[arg(long, default_value_t = 100_000)]
    prefixes: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 11, value_parser = crate::at_least_one)]
    runs: usize,
}

/// Runs `lists`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (rules, trace) = args.files.load()?;
    let prefixes = random_prefixes(args.prefixes, &trace);
    let base = classbench::boxes(&rules);
    // The ClassBench rules after the list's rules: `first` rules in front.
    let after = |first: u32| base.iter().map(move |(i, b)| (i + first, *b));

    let t = Instant::now();
    let table_a = RuleTable::from_boxes(&base);
    let build_a = t.elapsed();

    let t = Instant::now();
    let members: Vec<String> = prefixes.iter().map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(*a))).collect();
    let list = List::parse(members.iter().map(String::as_str)).map_err(|(i, e)| anyhow::anyhow!("member {i}: {e}"))?;
    let mut registry = Registry::new(BTreeMap::from([("blocked".to_string(), list)]));
    let list_rule = parse_with("ip.src in $blocked", &mut registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let membership = registry.membership();
    let mut boxes_b: Vec<(u32, Bounds)> = boxes(&list_rule)?.into_iter().map(|b| (0, b)).collect();
    boxes_b.extend(after(1));
    let table_b = RuleTable::from_boxes(&boxes_b);
    let build_b = t.elapsed();

    let t = Instant::now();
    let mut boxes_c = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let expr = parse(&format!("ip.src == {m}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        boxes_c.extend(boxes(&expr)?.into_iter().map(|b| (i as u32, b)));
    }
    let n_prefixes = members.len() as u32;
    boxes_c.extend(after(n_prefixes));
    let table_c = RuleTable::from_boxes(&boxes_c);
    let build_c = t.elapsed();

    let keys: Vec<Key> = trace.iter().map(Header::key).collect();
    let mut listed = 0usize;
    for k in &keys {
        let mut filled = *k;
        membership.fill(&mut filled);
        let b = table_b.first_match(&filled, &[]);
        // (c) numbers the prefix rules 0..N: any of them is (b)'s rule 0.
        let c = table_c.first_match(k, &[]).map(|i| if i < n_prefixes { 0 } else { i - n_prefixes + 1 });
        anyhow::ensure!(b == c, "the list and the rules disagree on {k:?}: {b:?} and {c:?}");
        listed += usize::from(b == Some(0));
    }
    // The batched forms answer as the one-at-a-time ones.
    for chunk in keys.chunks(BATCH) {
        let mut filled = chunk.to_vec();
        fill_all(&membership, &mut filled);
        let (b, c) = (batch_lookup(&table_b, &filled), batch_lookup(&table_c, chunk));
        for (i, k) in filled.iter().enumerate() {
            anyhow::ensure!(b[i] == table_b.first_match(k, &[]), "the batch lookup disagrees on {k:?}");
            anyhow::ensure!(c[i] == table_c.first_match(&chunk[i], &[]), "the batch lookup disagrees on {k:?}");
        }
    }
    anyhow::ensure!(
        listed > 0 && listed < keys.len(),
        "the list matches {listed} of {} headers: nothing measured",
        keys.len()
    );

    let n = keys.len() as u64;
    let mut scratch = keys.clone();
    let filled: Vec<Key> = keys
        .iter()
        .map(|k| {
            let mut f = *k;
            membership.fill(&mut f);
            f
        })
        .collect();
    // The seven rows interleaved, run by run: a drift of a busy machine falls on each alike.
    let timed = Runs::interleaved(args.runs, n, 7, |row| match row {
        0 => {
            for k in &keys {
                std::hint::black_box(table_a.first_match(std::hint::black_box(k), &[]));
            }
        }
        1 => {
            for (k, s) in keys.iter().zip(scratch.iter_mut()) {
                *s = *k;
                membership.fill(s);
                std::hint::black_box(table_b.first_match(std::hint::black_box(s), &[]));
            }
        }
        2 => {
            for k in &filled {
                std::hint::black_box(table_b.first_match(std::hint::black_box(k), &[]));
            }
        }
        3 => {
            for (k, s) in keys.iter().zip(scratch.iter_mut()) {
                *s = *k;
                membership.fill(s);
                std::hint::black_box(&*s);
            }
        }
        4 => {
            for (k, s) in keys.iter().zip(scratch.iter_mut()) {
                *s = *k; // the same copy as (b) pays, so that only the lookups differ
                std::hint::black_box(table_c.first_match(std::hint::black_box(s), &[]));
            }
        }
        5 => {
            for (k, s) in keys.chunks(BATCH).zip(scratch.chunks_mut(BATCH)) {
                s.copy_from_slice(k);
                fill_all(&membership, s);
                batch_lookup(&table_b, s);
            }
        }
        _ => {
            for (k, s) in keys.chunks(BATCH).zip(scratch.chunks_mut(BATCH)) {
                s.copy_from_slice(k); // the same copy as (b) pays
                batch_lookup(&table_c, s);
            }
        }
    });
    println!(
        "rules {} ({} rules), trace {} ({n} headers), {} prefixes ({} of the headers' sources listed)",
        args.files.rules.display(),
        rules.len(),
        args.files.trace.display(),
        members.len(),
        listed
    );
    println!(
        "build: (a) {:.0} ms, (b) {:.0} ms, (c) {:.0} ms; boxes: (a) {}, (b) {}, (c) {}\n",
        build_a.as_secs_f64() * 1e3,
        build_b.as_secs_f64() * 1e3,
        build_c.as_secs_f64() * 1e3,
        table_a.stats().boxes,
        table_b.stats().boxes,
        table_c.stats().boxes
    );
    println!("{}", Runs::header("lookup"));
    let names = [
        "(a) ClassBench rules alone".to_string(),
        "(b) + `ip.src in $blocked` (list lookup included)".to_string(),
        "(b) its table lookup alone (keys filled beforehand)".to_string(),
        "(b) its list lookup alone (copy and fill)".to_string(),
        format!("(c) + the prefixes as {} rules", members.len()),
        format!("(b) in batches of {BATCH} (fill, first_match_batch)"),
        format!("(c) in batches of {BATCH} (first_match_batch)"),
    ];
    for (runs, name) in timed.iter().zip(names) {
        println!("{}", runs.row(&name));
    }
    Ok(())
}

/// Looks `keys` (at most [`BATCH`], at least one) up together, as the pipeline's firewall
/// phase does.
fn batch_lookup(table: &RuleTable, keys: &[Key]) -> [Option<u32>; BATCH] {
    let refs: [&Key; BATCH] = std::array::from_fn(|i| &keys[i.min(keys.len() - 1)]);
    let frames = [&[][..]; BATCH];
    let mut out = [None; BATCH];
    table.first_match_batch(&refs[..keys.len()], &frames[..keys.len()], &mut out[..keys.len()]);
    std::hint::black_box(out)
}

/// `count` distinct IPv4 prefixes (/16 to /32, host bits clear): one in a hundred a trace
/// header's source (a /32), the rest random.
fn random_prefixes(count: usize, trace: &[Header]) -> Vec<(u32, u8)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = std::collections::BTreeSet::new();
    let mut i = 0;
    while out.len() < count {
        let (addr, len) = if i % 100 == 0 && !trace.is_empty() {
            (trace[(next() % trace.len() as u64) as usize].src, 32)
        } else {
            (next() as u32, 16 + (next() % 17) as u8)
        };
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
        out.insert((addr & mask, len));
        i += 1;
    }
    out.into_iter().collect()
}
