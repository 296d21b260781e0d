//! Checksum repair for fuzzed frames: a mutated IPv4 header fails its checksum and is dropped
//! before anything past the parser sees it, so without repair decapsulation, the inner
//! packet's checks, path MTU learning from ICMP and the options copied into fragments meet
//! only the seeds' headers. `repair` makes the checksums the pipeline verifies right again
//! (outer and inner IPv4 headers, GRE with its checksum bit, ICMP and ICMPv6), whatever else
//! the bytes say. A target repairs some inputs (a selector bit), not all: wrong checksums
//! must stay reachable too.

use gre::checksum::{checksum, sum};

/// Repairs the checksums of the Ethernet frame `frame` in place, as far as its bytes hold
/// the headers (never past them).
pub fn repair(frame: &mut [u8]) {
    let mut at = 12;
    // Up to two VLAN tags (802.1Q, 802.1ad).
    for _ in 0..2 {
        match frame.get(at..at + 2) {
            Some([0x81, 0x00] | [0x88, 0xa8]) => at += 4,
            _ => break,
        }
    }
    let Some(ethertype) = frame.get(at..at + 2).map(|t| u16::from_be_bytes([t[0], t[1]])) else { return };
    let l3 = at + 2;
    match ethertype {
        0x0800 => ipv4(frame, l3, 2),
        0x86dd => ipv6(frame, l3),
        _ => {}
    }
}

/// An IPv4 packet at `l3`: its header checksum, then what it carries (`depth` levels of GRE
/// more at most).
fn ipv4(frame: &mut [u8], l3: usize, depth: u8) {
    let Some(&first) = frame.get(l3) else { return };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
        return;
    }
    frame[l3 + 10..l3 + 12].fill(0);
    let c = checksum(&frame[l3..l3 + ihl]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
    let end = (l3 + total).min(frame.len());
    let fragment = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]) & 0x1fff != 0;
    if end <= l3 + ihl || fragment {
        return;
    }
    let payload = l3 + ihl..end;
    match frame[l3 + 9] {
        1 => icmp(frame, payload, None),
        47 if depth > 0 => gre(frame, payload, depth),
        _ => {}
    }
}

/// An IPv6 packet at `l3`: ICMPv6 directly behind the fixed header, or GRE.
fn ipv6(frame: &mut [u8], l3: usize) {
    let Some(header) = frame.get(l3..l3 + 40) else { return };
    if header[0] >> 4 != 6 {
        return;
    }
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let next = header[6];
    let end = (l3 + 40 + len).min(frame.len());
    let mut pseudo = [0u8; 40];
    pseudo[..32].copy_from_slice(&header[8..40]);
    pseudo[32..36].copy_from_slice(&((end - l3 - 40) as u32).to_be_bytes());
    pseudo[39] = 58;
    match next {
        58 => icmp(frame, l3 + 40..end, Some(pseudo)),
        47 => gre(frame, l3 + 40..end, 2),
        _ => {}
    }
}

/// ICMP (or, with its pseudo-header, ICMPv6) over `range`.
fn icmp(frame: &mut [u8], range: std::ops::Range<usize>, pseudo: Option<[u8; 40]>) {
    if range.len() < 4 {
        return;
    }
    frame[range.start + 2..range.start + 4].fill(0);
    let body = sum(&frame[range.clone()]);
    let c = match pseudo {
        Some(p) => !gre::checksum::fold(u64::from(body) + u64::from(sum(&p))),
        None => !body,
    };
    frame[range.start + 2..range.start + 4].copy_from_slice(&c.to_be_bytes());
}

/// GRE over `range`: its checksum if the C bit asks for one, then the inner IPv4 header.
fn gre(frame: &mut [u8], range: std::ops::Range<usize>, depth: u8) {
    let Some(head) = frame.get(range.start..range.start + 4) else { return };
    let (flags, protocol) = (head[0], u16::from_be_bytes([head[2], head[3]]));
    let has = |bit: u8| usize::from(flags & bit != 0) * 4;
    let len = 4 + has(0x80) + has(0x20) + has(0x10);
    if range.len() < len {
        return;
    }
    if protocol == 0x0800 {
        ipv4(frame, range.start + len, depth - 1);
    }
    if flags & 0x80 != 0 {
        frame[range.start + 4..range.start + 6].fill(0);
        let c = checksum(&frame[range.clone()]);
        frame[range.start + 4..range.start + 6].copy_from_slice(&c.to_be_bytes());
    }
}
