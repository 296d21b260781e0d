//! The tunnel health prober's cost on the worker that runs it, in ns per tick (one tick a
//! millisecond, `PROBE_TICK_NS`), with thousands of health-checked tunnels: every probe
//! answered at once (healthy routers), and none answered (a total outage). Simulated time;
//! the tick alone is timed (not the replies' recording, which the decapsulation stage does
//! on any worker). The spill takes 128 probes a tick, as the worker's does.
//! `bench/scripts/prober-compare.sh` runs it against an earlier commit's prober.

use std::time::Instant;

use clap::Args as ClapArgs;
use transitd::config::Loaded;
use transitd::health::{Prober, Sent, write_probe};
use transitd::limits::MAX_SECONDS_FLAG;
use transitd::snapshot::{Snapshot, TunnelId};

use crate::measure::{Runs, median};

/// Options of `transitd-bench prober`.
#[derive(ClapArgs)]
pub struct Args {
    /// Health-checked tunnels (comma-separated sizes to sweep; at most 32768, the IPv4
    /// remotes a configuration may have).
    #[arg(long, default_value = "100,1000,32768", value_delimiter = ',')]
    tunnels: Vec<u32>,
    /// Simulated seconds per run (1000 ticks each): 1 to 86400.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS_FLAG))]
    seconds: u64,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5, value_parser = crate::at_least_one)]
    runs: usize,
}

const MS: u64 = 1_000_000;
/// Probes the worker's spill takes a tick.
const ROOM: usize = transitd::pipeline::SPILL_SLOTS;

/// A configuration of `n` tunnels, each with an `interface` (health-checked), to routers
/// 198.19.0.0 and up; probes every second, a 250 ms timeout, down after 3 misses.
fn config(n: u32) -> String {
    let mut text = String::from(
        "[server]\nanycast = \"192.0.2.1\"\n[health]\ninterval_ms = 1000\ntimeout_ms = 250\ndown_after = 3\nup_after = 3\n\
         [[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n",
    );
    for i in 0..n {
        let [_, _, a, b] = i.to_be_bytes();
        text += &format!(
            "[[customer.tunnel]]\nname = \"t{i}\"\nremote = \"198.19.{a}.{b}\"\ninterface = \"10.{}.{}.{}/31\"\n",
            64 + (i >> 15),
            (i >> 7) & 0xff,
            (i << 1) & 0xff
        );
    }
    text
}

/// What one run did.
#[derive(Default)]
struct Run {
    /// Nanoseconds inside `Prober::tick`, over the run.
    tick_ns: u64,
    ticks: u64,
    sent: u64,
    /// Tunnels that went down.
    downs: u64,
}

/// One run of `seconds` simulated seconds from a fresh snapshot (its health table new) and
/// prober: every probe answered before the next tick if `answered`, none otherwise. (The
/// snapshot is built anew rather than reset: the code compared with may have no way to
/// reset all of its table.)
fn simulate(loaded: &Loaded, seconds: u64, answered: bool, probes: &mut Vec<(TunnelId, u32)>) -> anyhow::Result<Run> {
    let snap = &Snapshot::build(loaded).map_err(|e| anyhow::anyhow!("{e}"))?;
    snap.health.set_key([0x7472_616e_7369_7464, 0x1234]);
    let mut prober = Prober::default();
    prober.rebind(None, snap);
    let cfg = snap.health_config;
    let mut run = Run::default();
    let mut payload = [0u8; 64];
    for tick in 0..seconds * 1000 {
        probes.clear();
        let began = Instant::now();
        prober.tick(
            snap,
            &cfg,
            tick * MS,
            |t, seq| {
                if probes.len() == ROOM {
                    return Sent::NoRoom;
                }
                probes.push((t, seq));
                Sent::Yes
            },
            |change| run.downs += u64::from(!change.up),
        );
        run.tick_ns += began.elapsed().as_nanos() as u64;
        run.ticks += 1;
        run.sent += probes.len() as u64;
        if answered {
            for &(t, seq) in probes.iter() {
                let tunnel = &snap.tunnels[usize::from(t)];
                let iface = tunnel.interface.expect("every tunnel is health-checked");
                let tag = snap.health.tag(t, &tunnel.name, seq);
                let len =
                    write_probe(&mut payload, t, (iface.ours, iface.peer), tag, seq, None).expect("room for a probe");
                // The ICMP payload, after the IPv4 (20) and ICMP (8) headers.
                snap.health.record_reply(t, &tunnel.name, &payload[28..len]);
            }
        }
    }
    Ok(run)
}

/// Runs the benchmark and prints one table.
pub fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "{} simulated seconds a run, a tick a millisecond, {} runs after a warm-up; probes every 1 s, \
         timeout 250 ms, room for {ROOM} probes a tick\n",
        args.seconds, args.runs
    );
    println!("| tunnels | routers | ns/tick min | ns/tick median | ns/tick max | probes sent a run |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut probes = Vec::with_capacity(ROOM);
    for &n in &args.tunnels {
        anyhow::ensure!((1..=32_768).contains(&n), "--tunnels {n}: from 1 to 32768");
        let loaded = transitd::config::parse("bench.toml", &config(n)).map_err(|e| anyhow::anyhow!("{e}"))?;
        for answered in [true, false] {
            simulate(&loaded, args.seconds, answered, &mut probes)?;
            let runs = (0..args.runs.max(1))
                .map(|_| simulate(&loaded, args.seconds, answered, &mut probes))
                .collect::<anyhow::Result<Vec<Run>>>()?;
            // A run that probed too little, or judged no dead tunnel down, measured nothing
            // worth a figure: each tunnel is probed at least once a second, and in the outage
            // every one goes down (within interval + 3 timeouts, 1.75 s).
            let least = u64::from(n) * args.seconds;
            for r in &runs {
                anyhow::ensure!(r.sent >= least, "{n} tunnels: {} probes sent in a run, fewer than {least}", r.sent);
                if answered || args.seconds >= 2 {
                    let want = if answered { 0 } else { u64::from(n) };
                    anyhow::ensure!(r.downs == want, "{n} tunnels: {} went down in a run, not {want}", r.downs);
                }
            }
            let mut ns: Vec<f64> = runs.iter().map(|r| r.tick_ns as f64 / r.ticks as f64).collect();
            ns.sort_by(f64::total_cmp);
            let t = Runs { min: ns[0], median: median(&ns), max: ns[ns.len() - 1] };
            let routers = if answered { "all answer" } else { "none answer" };
            println!("| {n} | {routers} | {:.0} | {:.0} | {:.0} | {} |", t.min, t.median, t.max, runs[0].sent);
        }
    }
    Ok(())
}
