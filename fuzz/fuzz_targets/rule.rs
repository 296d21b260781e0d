//! Any text as a rule: parsing never panics, the lists it names are each named once, and
//! what parses compiles into a table that agrees with the reference interpreter on a few
//! keys derived from the input.
#![no_main]

use classifier::{Key, RuleTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The lists any text names (parsed with lists, as TCP protection's grace reads them):
    // each once, each tested one way or both.
    if let Ok(uses) = classifier::list_uses(text) {
        let mut names: Vec<&str> = uses.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), uses.len(), "{text}");
        assert!(uses.iter().all(|(_, u)| u.members || u.non_members), "{text}");
    }
    let Ok(expr) = classifier::parse(text) else { return };
    let Ok(table) = RuleTable::build([&expr]) else { return };
    // IPv4 and IPv6, TCP, UDP, ICMP and ICMPv6: rules about any of them meet a key of
    // their kind (the keys were all IPv4 TCP).
    for (seed, (v6, l4)) in
        [(false, 6u8), (false, 17), (false, 1), (true, 6), (true, 17), (true, 58)].into_iter().enumerate()
    {
        let seed = seed as u64;
        let mut key = Key::new(seed as u32 * 500);
        let h = classifier::limit::mix(seed ^ data.len() as u64);
        if v6 {
            let v = |s: u64| (u128::from(classifier::limit::mix(s)) << 64 | u128::from(s)).to_be_bytes();
            key.set_ipv6(v(h), v(h ^ 1), l4, 64, 40);
        } else {
            key.set_ipv4((h as u32).to_be_bytes(), ((h >> 32) as u32).to_be_bytes(), l4, 64, 60, false, false, 0);
        }
        key.set_l4_proto(l4);
        match l4 {
            6 | 17 => key.set_ports((h >> 8) as u16, (h >> 24) as u16),
            _ => key.set_icmp((h >> 8) as u8, (h >> 16) as u8),
        }
        if l4 == 6 {
            key.set_tcp_flags((h >> 40) as u16 & 0x1ff);
        }
        // Byte tests read the input itself, its layers a few bytes apart.
        let header = if v6 { 40 } else { 20 };
        key.set(classifier::Dim::L3At, seed as u32);
        key.set(classifier::Dim::IpHdrLen, header);
        key.set(classifier::Dim::L4At, seed as u32 + header);
        if l4 == 6 {
            key.set(classifier::Dim::TcpHdrLen, 20);
        }
        key.set(classifier::Dim::L4Len, (h >> 48) as u32 & 0x3f);
        assert_eq!(table.first_match(&key, data).is_some(), classifier::eval::eval(&expr, &key, data), "{text}");
    }
});
