//! What a reload costs a worker: the time it spends following a new snapshot between two
//! batches (`Worker::follow`), its rx ring filling meanwhile, with thousands of customers and
//! tunnels. Two rows per size, alternated run by run: the worker reading the succession the
//! supervisor worked out when it published the snapshot (`Snapshot::take_over_from`, as
//! `transitd run` does), and the worker working it out by name itself (what every worker did
//! before the supervisor did it, and what one that skipped a snapshot still does). The
//! supervisor's own time, spent off the data path, is printed beside them.
//!
//! Every follow is checked off the clock: the two configurations differ in their tunnels'
//! MTU, so that a batch of one datagram that fits the one and not the other comes out of the
//! worker as the snapshot it just followed says, and every frame the checks sent is still in
//! its customer's counts. A reload that did not take effect, or that lost counts, fails the run.

use std::sync::Arc;
use std::time::Instant;

use clap::Args as ClapArgs;
use gre::EthernetAddrs;
use transitd::io::memory::MemoryIo;
use transitd::pipeline::{TxReason, Verdict};
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

/// The tunnels' MTU (the largest inner packet they carry) in the configuration a worker
/// starts on, and in the one it reloads to.
const WIDE_MTU: u32 = 1400;
const NARROW_MTU: u32 = 1380;
/// The length of the checks' IPv4 packet, DF set: it fits a tunnel of `WIDE_MTU` and not one
/// of `NARROW_MTU`, where it is refused with a Fragmentation Needed.
const CHECK_LEN: usize = 1390;

/// The rows, in the order `timed_follows` returns them.
const ROWS: [&str; 2] = ["succession published by the supervisor", "worked out by the worker"];

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

/// Two snapshots a reload goes between (their tunnels' MTUs `WIDE_MTU` and `NARROW_MTU`),
/// each published after the other (`published`: each holds what carries over from the other,
/// as the supervisor leaves it) or not.
fn pair(n: u32, published: bool) -> anyhow::Result<(Arc<Snapshot>, Arc<Snapshot>, f64)> {
    let (mut a, mut b) = (build(n, WIDE_MTU)?, build(n, NARROW_MTU)?);
    let mut supervisor_ms = 0.0;
    if published {
        let t = Instant::now();
        b.take_over_from(&a);
        supervisor_ms = t.elapsed().as_secs_f64() * 1e3;
        a.take_over_from(&b);
    }
    Ok((Arc::new(a), Arc::new(b), supervisor_ms))
}

/// The checks' frame: a UDP datagram from 11.1.0.2 (not a bogon, which the DoS stage would
/// drop) to customer c0's 10.0.0.1, in an IPv4 packet of `CHECK_LEN` bytes with DF set.
/// `transitd replay` sends it whole into c0's tunnel at `WIDE_MTU` and answers it with an
/// ICMP Fragmentation Needed at `NARROW_MTU` (tshark: type 3, MTU 1380).
fn check_frame() -> Vec<u8> {
    let mut f = vec![0u8; 14 + CHECK_LEN];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let [len_hi, len_lo] = (CHECK_LEN as u16).to_be_bytes();
    let ip = [0x45, 0, len_hi, len_lo, 0, 1, 0x40, 0, 64, 17, 0, 0, 11, 1, 0, 2, 10, 0, 0, 1];
    f[14..34].copy_from_slice(&ip);
    let c = gre::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    // UDP from port 1024 to 9 (discard), its length, no checksum (RFC 768 allows none).
    let [udp_hi, udp_lo] = (CHECK_LEN as u16 - 20).to_be_bytes();
    f[34..42].copy_from_slice(&[0x04, 0x00, 0, 9, udp_hi, udp_lo, 0, 0]);
    f
}

/// A worker that follows reloads back and forth between two snapshots, starting on the first
/// (`WIDE_MTU`), and checks each time that the reload took.
struct Follower {
    worker: Worker<MemoryIo>,
    snapshots: [Arc<Snapshot>; 2],
    /// Which of `snapshots` the worker was last told to follow.
    on: usize,
    customers: usize,
    /// Frames the checks have sent through the worker, every one a customer's.
    checked: u64,
}

impl Follower {
    fn new(snapshots: [Arc<Snapshot>; 2], customers: usize) -> anyhow::Result<Follower> {
        let mut io = MemoryIo::new(vec![check_frame()], 2048);
        // Each poll takes a whole batch of the frame, over and over.
        io.repeat = true;
        let worker = Worker::new(io, snapshots[0].clone()).probe();
        let mut follower = Follower { worker, snapshots, on: 0, customers, checked: 0 };
        follower.check()?;
        Ok(follower)
    }

    /// Follows the other snapshot; returns the milliseconds the follow took, once the check
    /// (off the clock) has found the worker running it.
    fn follow_other(&mut self) -> anyhow::Result<f64> {
        let to = 1 - self.on;
        let t = Instant::now();
        self.worker.follow(&self.snapshots[to]);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.on = to;
        self.check()?;
        Ok(ms)
    }

    /// One batch of the check frame: under the first snapshot every frame goes whole into
    /// c0's tunnel, under the second none does (it is answered with a Fragmentation Needed,
    /// or dropped once the ICMP errors' rate is spent). And every frame the checks sent is in
    /// the customers' counts, which a reload carries over by name.
    fn check(&mut self) -> anyhow::Result<()> {
        let eth = EthernetAddrs { dst: [0x02, 0, 0, 0, 0, 0xfe], src: [0x02, 0, 0, 0, 0, 0x01] };
        self.worker.poll(Some(eth))?;
        let io = self.worker.io_mut();
        let verdicts = std::mem::take(&mut io.verdicts);
        io.sent.clear();
        self.checked += verdicts.len() as u64;
        let whole = |v: &Verdict| matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. });
        let fits = self.on == 0;
        anyhow::ensure!(
            !verdicts.is_empty() && verdicts.iter().all(|v| whole(v) == fits),
            "the reload did not take effect: a packet of {CHECK_LEN} bytes with DF set into a tunnel of MTU {} \
             was {}",
            [WIDE_MTU, NARROW_MTU][self.on],
            if fits { "not encapsulated" } else { "encapsulated whole" }
        );
        let stats = self.worker.stats();
        let counted: u64 = stats.customers.iter().flatten().map(|t| t.packets).sum();
        anyhow::ensure!(
            stats.customers.len() == self.customers && counted == self.checked,
            "the worker lost customers' counts in the reload: {} customers of {}, {counted} frames of {}",
            stats.customers.len(),
            self.customers,
            self.checked
        );
        Ok(())
    }
}

/// The milliseconds of `runs` timed follows of each row (`ROWS`) at `n` customers, each
/// checked; and the supervisor's time to work out one succession.
fn timed_follows(n: u32, runs: usize) -> anyhow::Result<([Vec<f64>; 2], f64)> {
    let (a, b, supervisor_ms) = pair(n, true)?;
    // Each holds what carries over from the other: the worker reads, it does not work out.
    let read = |s: &Snapshot, from: &Snapshot| matches!(s.succession_from(from), std::borrow::Cow::Borrowed(_));
    anyhow::ensure!(read(&b, &a) && read(&a, &b), "the published snapshots carry no succession");
    let (a_raw, b_raw, _) = pair(n, false)?;
    let customers = n as usize;
    let mut rows = [Follower::new([a, b], customers)?, Follower::new([a_raw, b_raw], customers)?];
    // One untimed follow each way.
    for row in &mut rows {
        row.follow_other()?;
        row.follow_other()?;
    }
    let mut ms = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for i in 0..runs {
        // Each row first every other run, so that the machine's drift falls on both alike.
        for k in 0..rows.len() {
            let row = if i % 2 == 0 { k } else { rows.len() - 1 - k };
            ms[row].push(rows[row].follow_other()?);
        }
    }
    Ok((ms, supervisor_ms))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    println!("| customers | worker follows a reload | ms min | ms median | ms max |\n|---:|---|---:|---:|---:|");
    for &n in &args.customers {
        anyhow::ensure!((1..=32_768).contains(&n), "--customers {n}: between 1 and 32768");
        let (timed, supervisor_ms) = timed_follows(n, args.runs)?;
        for (name, mut ms) in ROWS.into_iter().zip(timed) {
            ms.sort_by(f64::total_cmp);
            println!("| {n} | {name} | {:.3} | {:.3} | {:.3} |", ms[0], median(&ms), ms[ms.len() - 1]);
        }
        println!(
            "| {n} | (the supervisor: `take_over_from`, once a reload, off the data path) | {supervisor_ms:.3} | | |"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row is timed as many times as asked: `--runs 11` timed 12 follows a row, and
    /// `--runs 1` two (follows went by pairs).
    #[test]
    fn a_row_is_timed_as_many_times_as_asked() {
        for runs in 1..=4 {
            let (timed, _) = timed_follows(10, runs).unwrap();
            assert_eq!(timed.map(|ms| ms.len()), [runs, runs], "--runs {runs}");
        }
    }

    /// A reload that does nothing fails the run: here one to the snapshot the worker runs
    /// already, which `Worker::follow` ignores. The run checked only that the worker still had
    /// as many customers as before, which a reload that does nothing keeps.
    #[test]
    fn a_reload_that_does_not_take_fails() {
        let (a, b, _) = pair(10, true).unwrap();
        let mut taking = Follower::new([a.clone(), b], 10).unwrap();
        taking.follow_other().unwrap();
        taking.follow_other().unwrap();
        let mut not_taking = Follower::new([a.clone(), a], 10).unwrap();
        let refused = not_taking.follow_other().expect_err("a reload that did nothing was timed");
        assert!(refused.to_string().contains("did not take effect"), "{refused:#}");
    }
}
