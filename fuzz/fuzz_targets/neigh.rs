//! A watched neighbour entry (an address on an interface) and any bytes as one read of the
//! kernel's RTNLGRP_NEIGH messages, as the next hop's follower reads them (netlink-packet-route
//! deserializes each). Input: a selector byte, the interface index (4 bytes, little-endian),
//! the address (16 bytes, IPv4 its first four), then the messages. Deciding whether they
//! concern the entry never panics. Bytes whose framing is broken (a length shorter than a
//! header or past the read) always may. Framed messages concern the entry exactly when one
//! of them does, read alone, wherever it sits among the others. A neighbour message built by
//! hand concerns the entry exactly when it is an RTM_NEWNEIGH or RTM_DELNEIGH for that
//! address on that interface (not an RTM_GETNEIGH, another interface, address or family).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use transitd::neigh::concerns;

/// A netlink message header: length, type, flags, sequence, port.
const HEADER: usize = 16;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Whether a walk over `bytes` as netlink messages meets a length shorter than a header or
/// past the bytes.
fn framing_broken(mut bytes: &[u8]) -> bool {
    while bytes.len() >= HEADER {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if !(HEADER..=bytes.len()).contains(&len) {
            return true;
        }
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    false
}

/// The messages of `bytes` (at most 64), each's length made one it can have: between a
/// header's and what is left.
fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= HEADER && out.len() < 64 {
        let len = (u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize).clamp(HEADER, bytes.len());
        let mut frame = bytes[..len].to_vec();
        frame[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        out.push(frame);
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// Messages one after another, each from a 4-byte boundary (NLMSG_ALIGN).
fn stream(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(f);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

/// A neighbour message of type `kind` for `ip` on interface `ifindex`, as the kernel lays it
/// out (`struct nlmsghdr`, `struct ndmsg`, then attributes: NDA_LLADDR first if `lladdr`,
/// then NDA_DST), in the host's byte order.
fn neighbour(kind: u16, ip: IpAddr, ifindex: u32, lladdr: bool) -> Vec<u8> {
    let (family, addr) = match ip {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    let mut m = vec![0u8; HEADER];
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    // ndmsg: family, padding, ifindex, state (NUD_REACHABLE), flags, type (RTN_UNICAST).
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&0x02u16.to_ne_bytes());
    m.extend_from_slice(&[0, 1]);
    let mut attribute = |nla_type: u16, value: &[u8]| {
        m.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
        m.extend_from_slice(&nla_type.to_ne_bytes());
        m.extend_from_slice(value);
        m.resize(m.len().next_multiple_of(4), 0);
    };
    if lladdr {
        attribute(2, &[0x02, 0, 0, 0, 0, 0x01]);
    }
    attribute(1, &addr);
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; 21];
    head[..data.len().min(21)].copy_from_slice(&data[..data.len().min(21)]);
    let messages = data.get(21..).unwrap_or_default();
    let selector = head[0];
    let ifindex = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&head[5..21]);
    let ip = if selector & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(addr))
    };
    let watched = (ip, ifindex);

    // The bytes as read.
    let said = concerns(messages, watched);
    assert!(said || !framing_broken(messages), "broken framing is looked at");

    // Their messages, framed: each on its own decides.
    let owned = frames(messages);
    let framed: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let each: Vec<bool> = framed.iter().map(|f| concerns(f, watched)).collect();
    let any = each.iter().any(|&c| c);
    assert_eq!(concerns(&stream(&framed), watched), any, "{each:?}");

    // Messages built by hand: the entry's own, and one about something else.
    let kind = if selector & 2 == 0 { RTM_NEWNEIGH } else { RTM_DELNEIGH };
    let lladdr = selector & 4 != 0;
    let own = neighbour(kind, ip, ifindex, lladdr);
    assert!(concerns(&own, watched), "{watched:?}: {own:?}");
    let other = match (selector >> 3) & 3 {
        0 => neighbour(kind, ip, ifindex ^ 1, lladdr),
        1 => neighbour(kind, flip(ip), ifindex, lladdr),
        2 => neighbour(RTM_GETNEIGH, ip, ifindex, lladdr),
        _ => neighbour(kind, other_family(ip), ifindex, lladdr),
    };
    assert!(!concerns(&other, watched), "{watched:?}: {other:?}");
    // Among the framed messages, at a place the selector picks.
    let at = usize::from(selector >> 5) % (framed.len() + 1);
    for (built, concerned) in [(own.as_slice(), true), (other.as_slice(), false)] {
        let mut among = framed.clone();
        among.insert(at, built);
        assert_eq!(concerns(&stream(&among), watched), concerned || any, "at {at} of {}", framed.len());
    }
});

/// `ip` with its last bit flipped.
fn flip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(a.to_bits() ^ 1)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(a.to_bits() ^ 1)),
    }
}

/// An address of the other family: IPv4-mapped IPv6 for IPv4, and back.
fn other_family(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
        IpAddr::V6(a) => IpAddr::V4(Ipv4Addr::from((a.to_bits() & 0xffff_ffff) as u32)),
    }
}
