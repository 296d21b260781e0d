//! Plans: every slice has exactly one owner in its data centre, shares are even, and a
//! re-plan moves no more slices than the best balanced plan must (checked by brute force).

use portslice::plan::{DataCentre, EgressRange, Plan, PlanError, PlanSpec, Tags};
use portslice::{Owner, OwnerTable};
use proptest::prelude::*;

fn spec(addresses: u8, servers: &[&str], slice_size: u16, reserved: u16) -> PlanSpec {
    PlanSpec {
        slice_size,
        reserved_ports: reserved,
        egress: vec![EgressRange {
            network: u32::from(std::net::Ipv4Addr::new(198, 51, 100, 0)),
            prefix_len: 32 - addresses.trailing_zeros() as u8,
            tags: Tags { country: "GB".into(), class: "untrusted".into(), ..Tags::default() },
            data_centre: "lhr".into(),
        }],
        data_centres: vec![DataCentre { name: "lhr".into(), servers: servers.iter().map(|s| s.to_string()).collect() }],
    }
}

#[test]
fn the_seeds_numbers_2048_ports_give_31_servers_an_address() {
    let servers: Vec<String> = (0..31).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<&str> = servers.iter().map(String::as_str).collect();
    let plan = Plan::new(spec(1, &refs, 2048, 2048)).unwrap();
    assert_eq!(plan.slices_per_ip, 31);
    let table = OwnerTable::new(&plan);
    let ip = u32::from(std::net::Ipv4Addr::new(198, 51, 100, 0));
    // Every server owns exactly one slice of the one address, and every port above the
    // reserved range has exactly one owner.
    let mut owned = vec![0u32; 31];
    for port in 2048..=65535u16 {
        match table.owner(ip, port) {
            Owner::Server { server, dc: 0 } => owned[usize::from(server)] += 1,
            other => panic!("port {port}: {other:?}"),
        }
    }
    assert!(owned.iter().all(|&n| n == 2048), "{owned:?}");
    assert_eq!(table.owner(ip, 80), Owner::Unsliced { dc: 0 });
    assert_eq!(table.owner(ip + 1, 5000), Owner::NotEgress);
}

/// Brute force: the fewest slices that must leave a surviving owner to reach any balanced plan.
fn fewest_moves(kept: &[usize], total: usize) -> usize {
    let n = kept.len();
    let (base, extra) = (total / n, total % n);
    let mut best = 0;
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != extra {
            continue;
        }
        let keep: usize = (0..n).map(|i| kept[i].min(base + usize::from(mask >> i & 1 == 1))).sum();
        best = best.max(keep);
    }
    kept.iter().sum::<usize>() - best
}

proptest! {
    #[test]
    fn replans_are_complete_balanced_and_move_as_little_as_possible(
        addresses in prop::sample::select(vec![1u8, 2, 4, 8]),
        before in 1usize..7,
        removed in prop::collection::vec(any::<bool>(), 7),
        added in 0usize..4,
        slice_size in prop::sample::select(vec![2048u16, 4096, 8192, 16384]),
    ) {
        let old_servers: Vec<String> = (0..before).map(|i| format!("a{i}")).collect();
        let refs: Vec<&str> = old_servers.iter().map(String::as_str).collect();
        let old = Plan::new(spec(addresses, &refs, slice_size, 1024)).unwrap();
        let mut new_servers: Vec<String> =
            old_servers.iter().zip(&removed).filter(|(_, r)| !**r).map(|(s, _)| s.clone()).collect();
        new_servers.extend((0..added).map(|i| format!("b{i}")));
        prop_assume!(!new_servers.is_empty());
        let refs: Vec<&str> = new_servers.iter().map(String::as_str).collect();
        let (new, moves) = Plan::replan(spec(addresses, &refs, slice_size, 1024), Some(&old)).unwrap();

        // Complete: every slice of every address has one owner, a current server.
        let total = usize::from(addresses) * usize::from(new.slices_per_ip);
        let all: Vec<&String> = new.owners.values().flatten().collect();
        prop_assert_eq!(all.len(), total);
        prop_assert!(all.iter().all(|o| new_servers.contains(o)));
        // Balanced: shares differ by at most one.
        let counts: Vec<usize> = new_servers.iter().map(|s| all.iter().filter(|o| **o == s).count()).collect();
        prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{:?}", counts);
        // Minimal: slices taken from a surviving owner are as few as brute force says.
        let kept: Vec<usize> = new_servers.iter().map(|s| old.owners.values().flatten().filter(|o| *o == s).count()).collect();
        let taken = moves.iter().filter(|m| m.from.as_ref().is_some_and(|f| new_servers.contains(f))).count();
        prop_assert_eq!(taken, fewest_moves(&kept, total));
        // The move list is exactly the slices whose owner differs.
        let mut changed = 0;
        for (ip, owners) in &new.owners {
            for (s, o) in owners.iter().enumerate() {
                if old.owners[ip][s] != *o {
                    changed += 1;
                }
            }
        }
        prop_assert_eq!(moves.len(), changed);
    }
}

#[test]
fn the_order_of_the_egress_ranges_does_not_change_the_plan() {
    // Two servers of one data centre, each with its own configuration: the same ranges,
    // written in another order, must give both the same owners.
    let mut s = spec(1, &["a1", "a2", "a3"], 1000, 1024);
    let mut second = s.egress[0].clone();
    second.network += 7;
    s.egress.push(second);
    let mut third = s.egress[0].clone();
    third.network += 64;
    third.prefix_len = 30;
    s.egress.push(third);
    let forward = Plan::new(s.clone()).unwrap();
    for order in [[2, 1, 0], [1, 0, 2], [2, 0, 1]] {
        let mut other = s.clone();
        other.egress = order.iter().map(|&i| s.egress[i].clone()).collect();
        assert_eq!(Plan::new(other).unwrap().owners, forward.owners, "order {order:?}");
    }
}

#[test]
fn one_port_slices_from_port_zero_are_refused_not_emptied() {
    // 65,536 one-port slices: one more than a u16 counts. Once this read as 0 slices, and a
    // plan with no owners.
    assert_eq!(portslice::slices_per_ip(1, 0), Err(PlanError::TooManySlices));
    assert!(Plan::new(spec(1, &["a"], 1, 0)).is_err());
    assert_eq!(portslice::slices_per_ip(1, 1), Ok(65535));
    assert_eq!(portslice::slices_per_ip(2, 0), Ok(32768));
    assert!(matches!(portslice::slices_per_ip(0, 0), Err(PlanError::NoSlices { .. })));
    assert!(matches!(portslice::slices_per_ip(4096, 65535), Err(PlanError::NoSlices { .. })));
}

#[test]
fn adding_a_server_moves_only_what_it_takes() {
    let old = Plan::new(spec(4, &["a", "b", "c"], 2048, 2048)).unwrap();
    let (new, moves) = Plan::replan(spec(4, &["a", "b", "c", "d"], 2048, 2048), Some(&old)).unwrap();
    // 4 addresses x 31 slices = 124; d's share is 31, and only d gains.
    assert_eq!(moves.len(), 31);
    assert!(moves.iter().all(|m| m.to == "d"));
    assert_eq!(new.slices_of("d").len(), 31);
}

/// 2048 and 2050 ports from 1024 both make 31 slices, but over other ports (slice 30:
/// 62464-64511 against 62524-64573): nothing carries over, every slice is a move.
#[test]
fn another_slice_size_is_another_geometry_even_with_as_many_slices() {
    let old = Plan::new(spec(1, &["a", "b"], 2048, 1024)).unwrap();
    let (new, moves) = Plan::replan(spec(1, &["a", "b"], 2050, 1024), Some(&old)).unwrap();
    assert_eq!((old.slices_per_ip, new.slices_per_ip), (31, 31));
    assert_eq!(moves.len(), 31);
    assert!(moves.iter().all(|m| m.from.is_none()), "{moves:?}");
}

#[test]
fn bad_specs_are_refused() {
    assert!(Plan::new(spec(1, &["a"], 0, 0)).is_err());
    assert!(Plan::new(spec(1, &["a", "a"], 2048, 0)).is_err());
    assert!(Plan::new(spec(1, &[], 2048, 0)).is_err());
    let mut s = spec(2, &["a"], 2048, 0);
    s.egress.push(s.egress[0].clone());
    assert!(Plan::new(s).is_err(), "overlapping egress ranges");
}

proptest! {
    #[test]
    fn every_slice_belongs_to_a_server_of_its_addresses_data_centre(
        dcs in 1usize..4,
        servers in 1usize..5,
        addresses in 1u32..6,
    ) {
        let data_centres: Vec<DataCentre> = (0..dcs)
            .map(|d| DataCentre { name: format!("dc{d}"), servers: (0..servers).map(|s| format!("dc{d}-s{s}")).collect() })
            .collect();
        let egress: Vec<EgressRange> = (0..addresses)
            .map(|i| EgressRange {
                network: 0xc612_c800 + i,
                prefix_len: 32,
                tags: Tags::default(),
                data_centre: format!("dc{}", i as usize % dcs),
            })
            .collect();
        let plan = Plan::new(PlanSpec { slice_size: 2048, reserved_ports: 1024, egress: egress.clone(), data_centres }).unwrap();
        let table = OwnerTable::new(&plan);
        for r in &egress {
            let owners = &plan.owners[&r.network];
            prop_assert_eq!(owners.len(), 31);
            let dc_prefix = format!("{}-", r.data_centre);
            prop_assert!(owners.iter().all(|o| o.starts_with(&dc_prefix)), "{:?}", owners);
            // And the table agrees, port by port at each slice's edges.
            for s in 0..31u16 {
                let (first, last) = plan.slice_ports(s);
                for port in [first, last] {
                    match table.owner(r.network, port) {
                        Owner::Server { dc, server } => {
                            prop_assert_eq!(&table.data_centres[usize::from(dc)], &r.data_centre);
                            prop_assert_eq!(&table.servers[usize::from(server)], &owners[usize::from(s)]);
                        }
                        other => prop_assert!(false, "{:?}", other),
                    }
                }
            }
        }
    }
}

/// A plan file is only trusted when it fits its own spec: each way an edited file can lie is
/// refused, and what `Plan::new` makes passes.
#[test]
fn a_plan_that_does_not_fit_its_spec_is_refused() {
    use portslice::PlanMismatch;
    let plan = Plan::new(spec(4, &["a", "b", "c"], 4096, 1024)).unwrap();
    assert_eq!(plan.check(), Ok(()));
    let first = *plan.owners.keys().next().unwrap();

    let mut p = plan.clone();
    p.slices_per_ip = 65535;
    assert_eq!(p.check(), Err(PlanMismatch::SlicesPerIp { found: 65535, expected: plan.slices_per_ip }));

    let mut p = plan.clone();
    p.owners.get_mut(&first).unwrap().truncate(1);
    assert!(matches!(p.check(), Err(PlanMismatch::Slices { found: 1, .. })), "{:?}", p.check());

    let mut p = plan.clone();
    p.owners.remove(&first);
    assert_eq!(p.check(), Err(PlanMismatch::Missing(first)));

    // An address nobody configured (a customer's, say) slipped in.
    let mut p = plan.clone();
    let stray = u32::from(std::net::Ipv4Addr::new(203, 0, 113, 5));
    p.owners.insert(stray, p.owners[&first].clone());
    assert_eq!(p.check(), Err(PlanMismatch::NotEgress(stray)));

    let mut p = plan.clone();
    p.owners.get_mut(&first).unwrap()[0] = "mallory".into();
    assert!(matches!(p.check(), Err(PlanMismatch::Owner { slice: 0, .. })), "{:?}", p.check());
}

/// An owner table of a plan with a short row (and one too long) answers for every port of
/// every address what the plan's own lists say: the owner listed for the port's slice, else
/// "unsliced" (the snapshot refuses such a plan first; this is the table's own guard). A
/// short row once shifted the next address's owners onto the wrong slices.
#[test]
fn a_short_row_reads_as_unsliced_and_moves_no_other_row() {
    let mut plan = Plan::new(spec(4, &["a", "b"], 4096, 1024)).unwrap();
    let ips: Vec<u32> = plan.owners.keys().copied().collect();
    assert_eq!(ips.len(), 4);
    plan.owners.get_mut(&ips[0]).unwrap().truncate(1);
    plan.owners.get_mut(&ips[2]).unwrap().push("b".into());
    let table = OwnerTable::new(&plan);
    let (reserved, size) = (plan.spec.reserved_ports, plan.spec.slice_size);
    for &ip in &ips {
        for port in 0..=65535u16 {
            let slice = port.checked_sub(reserved).map(|p| usize::from(p / size));
            let listed = slice.filter(|&s| s < usize::from(plan.slices_per_ip)).and_then(|s| plan.owners[&ip].get(s));
            let expect = match listed {
                Some(name) => Owner::Server { dc: 0, server: table.server_index(name).unwrap() },
                None => Owner::Unsliced { dc: 0 },
            };
            assert_eq!(table.owner(ip, port), expect, "{ip:#x} port {port}");
        }
    }
}

/// A server that joins gets slices of every address, so of every range's tags, and the
/// servers it takes them from keep slices of every address: they give up slices spread
/// over their addresses, not their highest (which left a third server with no GB slice
/// when the first two addresses were GB and the last two DE).
#[test]
fn a_server_that_joins_gets_slices_of_every_range() {
    let two_countries = |servers: &[&str]| {
        let mut s = spec(4, servers, 2048, 2048);
        let mut de = s.egress[0].clone();
        s.egress[0].prefix_len = 31;
        de.network += 2;
        de.prefix_len = 31;
        de.tags.country = "DE".into();
        s.egress.push(de);
        s
    };
    let old = Plan::new(two_countries(&["a1", "a2"])).unwrap();
    let (new, moves) = Plan::replan(two_countries(&["a1", "a2", "a3"]), Some(&old)).unwrap();
    // 124 slices: a3's share is 41 (or 42), and only a3 gains.
    assert!(moves.iter().all(|m| m.to == "a3"));
    assert_eq!(moves.len(), fewest_moves(&[62, 62, 0], 124));
    let base = u32::from(std::net::Ipv4Addr::new(198, 51, 100, 0));
    for server in ["a1", "a2", "a3"] {
        let slices = new.slices_of(server);
        for ip in base..base + 4 {
            let here = slices.iter().filter(|s| s.0 == ip).count();
            assert!((9..=11).contains(&here), "{server} holds {here} slices of address {ip:#x}: {slices:?}");
        }
    }
}

/// One /32 range per address, 31 slices of 2048 ports each (the defaults), in one data
/// centre of `servers`.
fn one_range_per_address(addresses: u32, servers: &[String]) -> PlanSpec {
    let base = u32::from(std::net::Ipv4Addr::new(198, 51, 100, 0));
    let range =
        |i: u32| EgressRange { network: base + i, prefix_len: 32, tags: Tags::default(), data_centre: "lhr".into() };
    PlanSpec {
        slice_size: 2048,
        reserved_ports: 1024,
        egress: (0..addresses).map(range).collect(),
        data_centres: vec![DataCentre { name: "lhr".into(), servers: servers.to_vec() }],
    }
}

/// However many servers give up slices to one that joins, what they free together covers
/// every address: the one that joins gets slices of each when its share is at least one a
/// address, and each of them keeps a slice of every address it held. Each used to break
/// ties alike (the highest address first), so all gave up slices of the same addresses: a
/// ninth server joining eight on two addresses got six slices of the second and none of the
/// first (its range's country short for `connect --tag`). Brute force over one to sixteen
/// addresses and one to fifteen servers before the join (each then holds two or more slices
/// of every address, 31 slices an address: sixteen servers would hold one of some).
#[test]
fn a_server_that_joins_gets_slices_of_every_address_however_many_give_them_up() {
    let addresses_of = |plan: &Plan, server: &str| -> std::collections::BTreeSet<u32> {
        plan.slices_of(server).iter().map(|s| s.0).collect()
    };
    for addresses in 1..=16u32 {
        for before in 1..=15usize {
            // The one that joins is last by name, as a server added to a fleet often is.
            let servers: Vec<String> = (0..=before).map(|i| format!("s{i:02}")).collect();
            let old = Plan::new(one_range_per_address(addresses, &servers[..before])).unwrap();
            let (new, _) = Plan::replan(one_range_per_address(addresses, &servers), Some(&old)).unwrap();
            let joined = &servers[before];
            let at = format!("{addresses} addresses, {before} servers, then {joined}");
            if new.slices_of(joined).len() >= addresses as usize {
                let got = addresses_of(&new, joined.as_str());
                assert_eq!(got.len(), addresses as usize, "{at}: {joined} holds {:?}", new.slices_of(joined));
            }
            for server in &servers[..before] {
                let (had, has) = (addresses_of(&old, server.as_str()), addresses_of(&new, server.as_str()));
                assert!(had.is_subset(&has), "{at}: {server} held {had:?}, holds {has:?}");
            }
        }
    }
}
