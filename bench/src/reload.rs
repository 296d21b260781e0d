//! What a reload costs a worker: the time it spends following a new snapshot between two
//! batches (`Worker::follow`), its rx ring filling meanwhile, with thousands of customers and
//! tunnels. Two rows per size, alternated run by run: the worker reading the succession the
//! supervisor worked out when it published the snapshot (`Snapshot::take_over_from`, as
//! `transitd run` does), and the worker working it out by name itself (what every worker did
//! before the supervisor did it, and what one that skipped a snapshot still does). The
//! supervisor's own time, spent off the data path, is printed beside them.

use std::sync::Arc;
use std::time::Instant;

use clap::Args as ClapArgs;
use transitd::io::memory::MemoryIo;
use transitd::snapshot::Snapshot;
use transitd::worker::Worker;

use crate::measure::median;

/// Options of `transitd-bench reload`.
#[derive(ClapArgs)]
pub struct Args {
    /// Customers, each with a prefix, a tunnel and a route (comma-separated sizes to sweep;
    /// at most 32768, the IPv4 prefixes a configuration may have).
    #[arg(long, default_value = "1000,10000,30000", value_delimiter = ',')]
    customers: Vec<u32>,
    /// Timed follows per row (after one untimed each way).
    #[arg(long, default_value_t = 11, value_parser = crate::at_least_one)]
    runs: usize,
}

/// `n` customers with a /24 each, a tunnel of MTU `mtu` and a route to it, under one stateful
/// TCP rule (so that tracked connections and a SYN threshold carry over too).
fn config(n: u32, mtu: u32) -> String {
    let mut text = String::from(
        "[server]\nanycast = \"192.0.2.1\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n[tcp_protection]\n\
         [[tcp_protection.rule]]\nname = \"all\"\nmatch = \"tcp\"\nmode = \"mitigate\"\nsyn_rate = 1000\n",
    );
    for i in 0..n {
        let [_, _, a, b] = i.to_be_bytes();
        text += &format!(
            "[[customer]]\nname = \"c{i}\"\nprefixes = [\"10.{a}.{b}.0/24\"]\n[[customer.tunnel]]\nname = \"t{i}\"\n\
             remote = \"198.18.{a}.{b}\"\nmtu = {mtu}\n[[customer.route]]\nprefix = \"10.{a}.{b}.0/24\"\ntunnel = \"t{i}\"\n"
        );
    }
    text
}

fn build(n: u32, mtu: u32) -> anyhow::Result<Snapshot> {
    let loaded = transitd::config::parse("reload.toml", &config(n, mtu)).map_err(|e| anyhow::anyhow!("{e}"))?;
    Snapshot::build(&loaded).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Two snapshots a reload goes between (their tunnels' MTUs differ), each published after the
/// other (`published`: each holds what carries over from the other, as the supervisor leaves
/// it) or not.
fn pair(n: u32, published: bool) -> anyhow::Result<(Arc<Snapshot>, Arc<Snapshot>, f64)> {
    let (mut a, mut b) = (build(n, 1400)?, build(n, 1380)?);
    let mut supervisor_ms = 0.0;
    if published {
        let t = Instant::now();
        b.take_over_from(&a);
        supervisor_ms = t.elapsed().as_secs_f64() * 1e3;
        a.take_over_from(&b);
    }
    Ok((Arc::new(a), Arc::new(b), supervisor_ms))
}

/// Milliseconds each of `runs` follows took, going back and forth between the pair.
fn follows(worker: &mut Worker<MemoryIo>, (a, b): (&Arc<Snapshot>, &Arc<Snapshot>), runs: usize) -> Vec<f64> {
    worker.follow(b);
    worker.follow(a);
    (0..runs)
        .map(|i| {
            let to = if i % 2 == 0 { b } else { a };
            let t = Instant::now();
            worker.follow(to);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    println!("| customers | worker follows a reload | ms min | ms median | ms max |\n|---:|---|---:|---:|---:|");
    for &n in &args.customers {
        anyhow::ensure!((1..=32_768).contains(&n), "--customers {n}: between 1 and 32768");
        let (a, b, supervisor_ms) = pair(n, true)?;
        // Each holds what carries over from the other: the worker reads, it does not work out.
        let read = |s: &Snapshot, from: &Snapshot| matches!(s.succession_from(from), std::borrow::Cow::Borrowed(_));
        anyhow::ensure!(read(&b, &a) && read(&a, &b), "the published snapshots carry no succession");
        let (a_raw, b_raw, _) = pair(n, false)?;
        let mut published = Worker::new(MemoryIo::new(Vec::new(), 2048), a.clone()).probe();
        let mut worked_out = Worker::new(MemoryIo::new(Vec::new(), 2048), a_raw.clone()).probe();
        // Alternated, a follow of each at a time, so that the machine's drift falls on both.
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..args.runs.div_ceil(2) {
            with.extend(follows(&mut published, (&a, &b), 2));
            without.extend(follows(&mut worked_out, (&a_raw, &b_raw), 2));
        }
        // A follow that kept nothing measured nothing: every customer's counters carry over.
        for w in [&published, &worked_out] {
            anyhow::ensure!(w.stats().customers.len() == n as usize, "the worker lost customers in the reload");
        }
        for (name, mut ms) in [("succession published by the supervisor", with), ("worked out by the worker", without)]
        {
            ms.sort_by(f64::total_cmp);
            println!("| {n} | {name} | {:.3} | {:.3} | {:.3} |", ms[0], median(&ms), ms[ms.len() - 1]);
        }
        println!(
            "| {n} | (the supervisor: `take_over_from`, once a reload, off the data path) | {supervisor_ms:.3} | | |"
        );
    }
    Ok(())
}
