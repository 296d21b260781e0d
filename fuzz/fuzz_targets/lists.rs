//! Named lists (`ip.src in $bad_actors`): a list means exactly its members written inline
//! (`ip.src in {192.0.2.0/24, ...}`), as the reference interpreter reads both, and the
//! compiled table selects what the interpreter selects, for address lists of both families
//! and number lists, tested and negated, over packets whose addresses are drawn near the
//! members. The `in $name` path was reached by a unit test alone.
#![no_main]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use classifier::{Key, List, Registry, RuleTable, eval, parse, parse_with};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    v4: Vec<([u8; 4], u8)>,
    v6: Vec<([u8; 16], u8)>,
    numbers: Vec<(u16, Option<u16>)>,
    rules: Vec<(u8, bool)>,
    packets: Vec<Packet>,
}

#[derive(Arbitrary, Debug)]
struct Packet {
    v6: bool,
    /// Which member each address is drawn near (or none: as given).
    near: (Option<u8>, Option<u8>),
    bits: ([u8; 16], [u8; 16]),
    proto: u8,
    ttl: u8,
    ports: (u16, u16),
    flags: u8,
}

/// `addr/len` with the host bits cleared, as a list and a set both take it.
fn network(bits: u128, width: u32, len: u8) -> (u128, u32) {
    let len = u32::from(len) % (width + 1);
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) >> (128 - width) };
    (bits & mask, len)
}

const ADDRESS_FIELDS: [&str; 6] = ["ip.src", "ip.dst", "ip.addr", "ipv6.src", "ipv6.dst", "ipv6.addr"];
const NUMBER_FIELDS: [&str; 6] = ["tcp.port", "udp.srcport", "ip.ttl", "ip.proto", "tcp.flags.syn", "tcp.dstport"];

fuzz_target!(|input: Input| {
    let v4: Vec<(u32, u32)> = input
        .v4
        .iter()
        .take(8)
        .map(|&(a, len)| {
            let (n, l) = network(u128::from(u32::from_be_bytes(a)), 32, len);
            (n as u32, l)
        })
        .collect();
    let v6: Vec<(u128, u32)> =
        input.v6.iter().take(8).map(|&(a, len)| network(u128::from_be_bytes(a), 128, len)).collect();
    let numbers: Vec<(u16, Option<u16>)> = input.numbers.iter().take(8).copied().collect();
    let mut addresses: Vec<String> = v4.iter().map(|&(n, l)| format!("{}/{l}", Ipv4Addr::from(n))).collect();
    addresses.extend(v6.iter().map(|&(n, l)| format!("{}/{l}", Ipv6Addr::from(n))));
    let number_members: Vec<String> = numbers
        .iter()
        .map(|&(lo, hi)| match hi {
            Some(hi) if hi >= lo => format!("{lo}..{hi}"),
            _ => lo.to_string(),
        })
        .collect();
    let Ok(a) = List::parse(addresses.iter().map(String::as_str)) else { return };
    let Ok(n) = List::parse(number_members.iter().map(String::as_str)) else { return };
    let mut registry = Registry::new(BTreeMap::from([("a".to_string(), a), ("n".to_string(), n)]));
    // Each rule with its list, and written inline (where the set is not empty and its
    // members are the field's: a family's addresses, numbers within its range).
    let mut pairs = Vec::new();
    // Three rules at most: an `ip.addr` test takes two of the eight field and list pairs a
    // registry holds (a documented bound), so three never reach it.
    for &(pick, negated) in input.rules.iter().take(3) {
        let not = if negated { "not " } else { "" };
        let (field, list, members) = if pick % 2 == 0 {
            let field = ADDRESS_FIELDS[usize::from(pick / 2) % 6];
            let family: Vec<&String> =
                addresses.iter().filter(|m| m.contains(':') == field.starts_with("ipv6")).collect();
            (field, "a", family.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
        } else {
            (NUMBER_FIELDS[usize::from(pick / 2) % 6], "n", number_members.join(", "))
        };
        if members.is_empty() {
            continue;
        }
        let Ok(inline) = parse(&format!("{not}{field} in {{{members}}}")) else { continue };
        let with_list = parse_with(&format!("{not}{field} in ${list}"), &mut registry)
            .unwrap_or_else(|e| panic!("{not}{field} in ${list} refused: {}", e.message));
        pairs.push((with_list, inline));
    }
    if pairs.is_empty() {
        return;
    }
    let membership = registry.membership();
    // An address near a member (its network, random host bits) or anywhere.
    let near = |which: Option<u8>, bits: [u8; 16], ipv6: bool| -> u128 {
        let noise = u128::from_be_bytes(bits);
        if ipv6 {
            match which.and_then(|w| v6.get(usize::from(w) % v6.len().max(1))) {
                Some(&(n, l)) => n | noise.checked_shr(l).unwrap_or(0),
                None => noise,
            }
        } else {
            let noise = noise as u32;
            u128::from(match which.and_then(|w| v4.get(usize::from(w) % v4.len().max(1))) {
                Some(&(n, l)) => n | noise.checked_shr(l).unwrap_or(0),
                None => noise,
            })
        }
    };
    let keys: Vec<Key> = input
        .packets
        .iter()
        .take(64)
        .map(|p| {
            let mut k = Key::new(60);
            let (s, d) = (near(p.near.0, p.bits.0, p.v6), near(p.near.1, p.bits.1, p.v6));
            if p.v6 {
                k.set_ipv6(s.to_be_bytes(), d.to_be_bytes(), p.proto, p.ttl, 20);
            } else {
                k.set_ipv4((s as u32).to_be_bytes(), (d as u32).to_be_bytes(), p.proto, p.ttl, 40, false, false, 0);
            }
            if matches!(p.proto, 6 | 17) {
                k.set_l4_proto(p.proto);
                k.set_ports(p.ports.0, p.ports.1);
                if p.proto == 6 {
                    k.set_tcp_flags(u16::from(p.flags));
                }
            }
            k
        })
        .collect();
    for (with_list, inline) in &pairs {
        let table = RuleTable::build([with_list]).expect("one list test compiles");
        for key in &keys {
            let mut filled = *key;
            membership.fill(&mut filled);
            let expect = eval(inline, key, &[]);
            assert_eq!(eval(with_list, &filled, &[]), expect, "{with_list:?} on {key:?}");
            assert_eq!(table.first_match(&filled, &[]).is_some(), expect, "{with_list:?} on {key:?}");
        }
    }
});
