//! Soft-unicast's ownership lookup, (address, port) → data centre and server, in ns per
//! lookup: the `OwnerTable` the return path uses, against a `HashMap` keyed by (address,
//! slice) (with std's SipHash, and with a one-multiply hash like the table's) and a
//! `BTreeMap` of addresses to their 31 owners, all holding the same plan, in the same run.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use clap::Args as ClapArgs;
use portslice::{DataCentre, EgressRange, Owner, OwnerTable, Plan, PlanSpec, Tags};

use crate::measure::Runs;

/// Options of `transitd-bench ownership`.
#[derive(ClapArgs)]
pub struct Args {
    /// Egress addresses in the plan (comma-separated sizes to sweep).
    #[arg(long, default_value = "1,256,16384", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    addresses: Vec<u32>,
    /// Data centres, each with `servers` servers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    data_centres: u32,
    /// Servers per data centre.
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u32).range(1..))]
    servers: u32,
    /// Lookups per run.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    lookups: u32,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 11, value_parser = crate::at_least_one)]
    runs: usize,
}

fn plan(addresses: u32, dcs: u32, servers: u32) -> Plan {
    let data_centres: Vec<DataCentre> = (0..dcs)
        .map(|d| DataCentre { name: format!("dc{d}"), servers: (0..servers).map(|s| format!("dc{d}-s{s}")).collect() })
        .collect();
    // One /32 per address, spread over the data centres, from 100.64.0.0 up.
    let egress = (0..addresses)
        .map(|i| EgressRange {
            network: 0x6440_0000 + i,
            prefix_len: 32,
            tags: Tags { country: "GB".into(), ..Tags::default() },
            data_centre: format!("dc{}", i % dcs),
        })
        .collect();
    Plan::new(PlanSpec { slice_size: 2048, reserved_ports: 1024, egress, data_centres }).expect("a valid plan")
}

/// A pseudo-random sequence (splitmix64), reproducible.
fn keys(n: u32, addresses: u32) -> Vec<(u32, u16)> {
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let r = classifier::limit::mix(x);
            // One lookup in ten is for an address that is not an egress address.
            let ip = if r.is_multiple_of(10) {
                0x0a00_0000 + (r >> 40) as u32
            } else {
                0x6440_0000 + (r >> 32) as u32 % addresses
            };
            (ip, (r >> 16) as u16)
        })
        .collect()
}

/// Runs the benchmark and prints one table per plan size.
pub fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "{} data centres of {} servers, slices of 2048 ports above 1024 (31 per address)",
        args.data_centres, args.servers
    );
    println!(
        "{} lookups per run, {} runs; one lookup in ten misses (not an egress address)\n",
        args.lookups, args.runs
    );
    for &n in &args.addresses {
        let plan = plan(n, args.data_centres, args.servers);
        let table = OwnerTable::new(&plan);
        let index: HashMap<&str, u16> = table.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        let by_slice: HashMap<(u32, u16), u16> = plan
            .owners
            .iter()
            .flat_map(|(ip, owners)| owners.iter().enumerate().map(move |(s, o)| ((*ip, s as u16), o)))
            .map(|(k, o)| (k, index[o.as_str()]))
            .collect();
        // The same map with a hash as cheap as OwnerTable's (one multiply): what std's
        // SipHash costs is not the structure's.
        let by_slice_fx: rustc_hash::FxHashMap<(u32, u16), u16> = by_slice.iter().map(|(k, v)| (*k, *v)).collect();
        let by_addr: BTreeMap<u32, [u16; 31]> = plan
            .owners
            .iter()
            .map(|(ip, o)| {
                let row: Vec<u16> = o.iter().map(|s| index[s.as_str()]).collect();
                let row = <[u16; 31]>::try_from(row).map_err(|r| anyhow::anyhow!("{} slices, not 31", r.len()))?;
                Ok((*ip, row))
            })
            .collect::<anyhow::Result<_>>()?;
        let lookups = keys(args.lookups, n);
        let slice_of = |port: u16| port.checked_sub(1024).map(|p| p / 2048).filter(|s| *s < 31);

        // The three must agree before they are timed.
        for &(ip, port) in lookups.iter().take(10_000) {
            let want = match table.owner(ip, port) {
                Owner::Server { server, .. } => Some(server),
                _ => None,
            };
            let hashed = slice_of(port).and_then(|s| by_slice.get(&(ip, s)).copied());
            let fx = slice_of(port).and_then(|s| by_slice_fx.get(&(ip, s)).copied());
            let tree = slice_of(port).and_then(|s| by_addr.get(&ip).map(|v| v[usize::from(s)]));
            assert_eq!((hashed, fx, tree), (want, want, want));
        }
        // The four interleaved, run by run: a drift of the machine falls on each alike. Each
        // row loads the server it found (not only a reference to it).
        let timed = Runs::interleaved(args.runs, u64::from(args.lookups), 4, |row| {
            for &(ip, port) in &lookups {
                match row {
                    0 => {
                        black_box(table.owner(black_box(ip), black_box(port)));
                    }
                    1 => {
                        black_box(slice_of(port).and_then(|s| by_slice.get(&(black_box(ip), s)).copied()));
                    }
                    2 => {
                        black_box(slice_of(port).and_then(|s| by_slice_fx.get(&(black_box(ip), s)).copied()));
                    }
                    _ => {
                        black_box(slice_of(port).and_then(|s| by_addr.get(&black_box(ip)).map(|v| v[usize::from(s)])));
                    }
                }
            }
        });
        println!("{n} egress addresses ({} slices)\n", by_slice.len());
        println!("{}", Runs::header("lookup"));
        println!("{}", timed[0].row("OwnerTable (open addressing + dense rows)"));
        println!("{}", timed[1].row("std HashMap<(address, slice), server> (SipHash)"));
        println!("{}", timed[2].row("std HashMap<(address, slice), server> (FxHash, rustc-hash)"));
        println!("{}", timed[3].row("std BTreeMap<address, [server; 31]>"));
        println!();
    }
    Ok(())
}
