//! Any text as a rule: parsing never panics, and what parses compiles into a table that
//! agrees with the reference interpreter on a few keys derived from the input.
#![no_main]

use classifier::{Key, RuleTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(expr) = classifier::parse(text) else { return };
    let Ok(table) = RuleTable::build([&expr]) else { return };
    for seed in 0..4u64 {
        let mut key = Key::new(seed as u32 * 500);
        let h = classifier::limit::mix(seed ^ data.len() as u64);
        key.set_ipv4((h as u32).to_be_bytes(), ((h >> 32) as u32).to_be_bytes(), 6, 64, 60, false, false, 0);
        key.set_l4_proto(6);
        key.set_ports((h >> 8) as u16, (h >> 24) as u16);
        key.set_tcp_flags((h >> 40) as u16 & 0x1ff);
        // Byte tests read the input itself, its layers a few bytes apart.
        key.set(classifier::Dim::L3At, seed as u32);
        key.set(classifier::Dim::IpHdrLen, 20);
        key.set(classifier::Dim::L4At, seed as u32 + 20);
        key.set(classifier::Dim::TcpHdrLen, 20);
        key.set(classifier::Dim::L4Len, (h >> 48) as u32 & 0x3f);
        assert_eq!(table.first_match(&key, data).is_some(), classifier::eval::eval(&expr, &key, data), "{text}");
    }
});
