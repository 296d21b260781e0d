//! A re-plan from a previous plan that may be anything (`transitd plan --previous FILE`: a
//! file an operator may have edited, or a plan of another fleet): it never panics, and what
//! it makes is a plan of its own spec, balanced in each data centre (every server ⌊T/n⌋ or
//! ⌈T/n⌉ of its T slices), whose moves are exactly the slices whose owner changed, none
//! taken from a server that kept no more than its share, and which a re-plan from itself
//! leaves as it is.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portslice::plan::{DataCentre, EgressRange, Plan, PlanSpec, Tags};

#[derive(Arbitrary, Debug)]
struct Input {
    geometry: u8,
    /// Servers per data centre (1-4 each, 1-3 data centres).
    servers: Vec<u8>,
    /// Egress ranges: the /24 they are in (distinct), their prefix length (28-32) and data
    /// centre.
    ranges: Vec<(u8, u8, u8)>,
    /// The previous plan: made from a spec with servers added or dropped, then edited.
    previous_servers: Vec<u8>,
    edits: Vec<Edit>,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    /// An owner renamed (a server of no data centre, or of another).
    Rename {
        row: u8,
        slice: u8,
        to: u8,
    },
    /// A row dropped, or cut short.
    Drop {
        row: u8,
    },
    Cut {
        row: u8,
        to: u8,
    },
    /// A row for an address the spec lacks.
    Stray {
        ip: u32,
    },
}

fn spec(input: &Input, servers: &[u8]) -> PlanSpec {
    let (slice_size, reserved_ports) =
        [(32256, 1024), (16128, 1024), (4032, 1024), (1008, 1024)][usize::from(input.geometry % 4)];
    let dcs: Vec<DataCentre> = servers
        .iter()
        .take(3)
        .enumerate()
        .map(|(d, &n)| DataCentre {
            name: format!("dc{d}"),
            servers: (0..1 + n % 4).map(|i| format!("s{d}{i}")).collect(),
        })
        .collect();
    let mut seen = Vec::new();
    let egress = input
        .ranges
        .iter()
        .filter(|(net, ..)| {
            let new = !seen.contains(net);
            seen.push(*net);
            new
        })
        .take(3)
        .map(|&(net, len, dc)| EgressRange {
            network: u32::from_be_bytes([192, 0, net, 0]),
            prefix_len: 28 + len % 5,
            tags: Tags::default(),
            data_centre: format!("dc{}", usize::from(dc) % dcs.len().max(1)),
        })
        .collect();
    PlanSpec { slice_size, reserved_ports, egress, data_centres: dcs }
}

fuzz_target!(|input: Input| {
    let wanted = spec(&input, &input.servers);
    let Ok(mut previous) = Plan::new(spec(&input, &input.previous_servers)) else { return };
    let rows: Vec<u32> = previous.owners.keys().copied().collect();
    for edit in input.edits.iter().take(16) {
        let row = |r: u8| rows.get(usize::from(r) % rows.len().max(1)).copied();
        match *edit {
            Edit::Rename { row: r, slice, to } => {
                if let Some(owners) = row(r).and_then(|ip| previous.owners.get_mut(&ip)) {
                    let at = usize::from(slice) % owners.len().max(1);
                    if let Some(o) = owners.get_mut(at) {
                        *o = format!("s{}{}", to % 4, to / 4 % 5);
                    }
                }
            }
            Edit::Drop { row: r } => {
                if let Some(ip) = row(r) {
                    previous.owners.remove(&ip);
                }
            }
            Edit::Cut { row: r, to } => {
                if let Some(owners) = row(r).and_then(|ip| previous.owners.get_mut(&ip)) {
                    owners.truncate(usize::from(to));
                }
            }
            Edit::Stray { ip } => {
                previous.owners.insert(ip, vec!["s00".into(); usize::from(previous.slices_per_ip)]);
            }
        }
    }
    let Ok((plan, moves)) = Plan::replan(wanted.clone(), Some(&previous)) else { return };
    plan.check().expect("a re-plan fits its own spec");
    let same_geometry = previous.slices_per_ip == plan.slices_per_ip;
    let was = |ip: u32, s: usize| -> Option<&String> {
        same_geometry.then(|| previous.owners.get(&ip).and_then(|o| o.get(s))).flatten()
    };
    // The moves are exactly the slices whose owner changed.
    let mut changed = 0;
    for (&ip, owners) in &plan.owners {
        for (s, owner) in owners.iter().enumerate() {
            if was(ip, s) != Some(owner) {
                changed += 1;
                let m = moves.iter().find(|m| m.ip == ip && usize::from(m.slice) == s).expect("a change is a move");
                assert_eq!((m.from.as_ref(), &m.to), (was(ip, s), owner));
            }
        }
    }
    assert_eq!(moves.len(), changed);
    // Balanced in each data centre, and no slice taken from a server that held no more
    // than the smallest share.
    for dc in &wanted.data_centres {
        let ips: Vec<u32> = wanted
            .egress
            .iter()
            .filter(|r| r.data_centre == dc.name)
            .flat_map(|r| {
                let (lo, hi) = r.bounds();
                lo..=hi
            })
            .collect();
        let total = ips.len() * usize::from(plan.slices_per_ip);
        if total == 0 {
            continue;
        }
        let (floor, ceil) = (total / dc.servers.len(), total.div_ceil(dc.servers.len()));
        let mut held: HashMap<&str, usize> = HashMap::new();
        let mut had: BTreeMap<&str, usize> = BTreeMap::new();
        for &ip in &ips {
            for (s, owner) in plan.owners[&ip].iter().enumerate() {
                *held.entry(owner).or_default() += 1;
                if let Some(old) = was(ip, s) {
                    *had.entry(old).or_default() += 1;
                }
            }
        }
        for server in &dc.servers {
            let n = held.get(server.as_str()).copied().unwrap_or(0);
            assert!((floor..=ceil).contains(&n), "{server} holds {n} of {total} ({floor}..={ceil})");
            let away =
                moves.iter().filter(|m| ips.contains(&m.ip) && m.from.as_deref() == Some(server.as_str())).count();
            let before = had.get(server.as_str()).copied().unwrap_or(0);
            assert!(away <= before.saturating_sub(floor), "{server} lost {away} of the {before} it held");
        }
    }
    // A re-plan from itself moves nothing.
    let (again, none) = Plan::replan(wanted, Some(&plan)).expect("the same spec plans again");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(again, plan);
});
