//! Rule lists and packets: the compiled table picks the same first rule as the reference
//! linear scan, one key at a time and in batches. Input: rules one per line, then a NUL,
//! then packets as 24-byte records (see `key`), each also the frame bytes its byte tests read.
#![no_main]

use classifier::{Expr, Key, LinearScan, RuleTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, packets) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let exprs: Vec<Expr> = text.lines().take(300).filter_map(|l| classifier::parse(l).ok()).collect();
    let Ok(table) = RuleTable::build(&exprs) else { return };
    let linear = LinearScan::new(&exprs);
    let records: Vec<&[u8]> = packets.chunks(24).take(300).collect();
    let keys: Vec<Key> = records.iter().map(|r| key(r)).collect();
    let refs: Vec<&Key> = keys.iter().collect();
    let mut batched = vec![None; keys.len()];
    table.first_match_batch(&refs, &records, &mut batched);
    for ((k, frame), b) in keys.iter().zip(&records).zip(batched) {
        let expect = linear.first_match(k, frame);
        assert_eq!(table.first_match(k, frame), expect, "{text}\n{k:?}");
        assert_eq!(b, expect, "batched\n{text}\n{k:?}");
    }
});

/// A packet from a record: byte 0 picks no IP, IPv4 or IPv6 and the transport; then the
/// addresses (IPv6 ones spread over all four words), ports, TTL, flags, a VLAN.
fn key(record: &[u8]) -> Key {
    let mut b = [0u8; 24];
    b[..record.len()].copy_from_slice(record);
    let mut key = Key::new(u32::from(u16::from_be_bytes([b[22], b[23]])));
    // The record is the frame too: its layers start a few bytes in.
    key.set(classifier::Dim::EthAt, 0);
    key.set(classifier::Dim::L3At, u32::from(b[0] >> 5));
    key.set(classifier::Dim::L4At, u32::from(b[0] >> 5) + 4);
    key.set(classifier::Dim::L4Len, u32::from(b[19] & 0x1f));
    key.set(classifier::Dim::IpHdrLen, 4);
    if b[0] & 0x40 != 0 {
        key.push_vlan(u16::from_be_bytes([b[20], b[21]]) & 0xfff);
    }
    let l4 = [6, 17, 1, 58, 47, 0][usize::from(b[0] >> 2 & 7) % 6];
    let (src, dst) = ([b[1], b[2], b[3], b[4]], [b[5], b[6], b[7], b[8]]);
    match b[0] & 3 {
        1 => key.set_ipv4(src, dst, l4, b[13], 60, b[14] & 1 != 0, b[14] & 2 != 0, u16::from(b[15])),
        2 => {
            let wide = |a: [u8; 4]| std::array::from_fn(|i| a[i % 4] ^ (i as u8 * 0x11));
            key.set_ipv6(wide(src), wide(dst), l4, b[13], 40);
        }
        _ => return key,
    }
    key.set_l4_proto(l4);
    match l4 {
        6 => {
            key.set_ports(u16::from_be_bytes([b[9], b[10]]), u16::from_be_bytes([b[11], b[12]]));
            key.set_tcp_flags(u16::from_be_bytes([b[16], b[17]]) & 0x1ff);
            key.set(classifier::Dim::TcpHdrLen, 8);
        }
        17 => key.set_ports(u16::from_be_bytes([b[9], b[10]]), u16::from_be_bytes([b[11], b[12]])),
        1 | 58 => key.set_icmp(b[18], b[19]),
        _ => {}
    }
    key
}
