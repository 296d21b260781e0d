//! Soft-unicast's return path in the program (`egress.h`): backbone GRE stripped (with its
//! tags, and its congestion mark carried in), later fragments following their first, and
//! ports read under AH but not in the Ethernet padding.

use std::net::Ipv4Addr;

use super::{fill_checksum, header_sum, ipv4_frame, judge, judge_output, soft_unicast, udp_to_egress};
use crate::XdpProgram;

/// The program loaded and given [`soft_unicast`]'s tables: slice 0 this server's, slice
/// 1 server 1's.
fn soft_unicast_program() -> XdpProgram {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, egress) = soft_unicast([0, 1]);
    program.publish(&config, &egress).unwrap();
    program
}

/// Backbone GRE from peer 10.0.0.2 to this server (10.0.0.1) carrying the IP packet of
/// the frame `inner`.
fn backbone(inner: &[u8]) -> Vec<u8> {
    let mut gre = [0x2000u16.to_be_bytes(), 0x0800u16.to_be_bytes()].concat();
    gre.extend_from_slice(&(7u32 << 8 | 1).to_be_bytes());
    gre.extend_from_slice(&inner[14..]);
    ipv4_frame([10, 0, 0, 2], [10, 0, 0, 1], 47, 0, &gre)
}

/// Backbone GRE for this server is decapsulated in XDP only when its outer header's
/// checksum verifies; a corrupt one goes to the data plane (which drops and counts it).
#[test]
fn backbone_gre_is_stripped_only_under_a_verifying_header() {
    let program = soft_unicast_program();
    let good = backbone(&udp_to_egress(2000));
    assert_eq!(judge(&program, &good), "backbone_local");
    let mut corrupt = good.clone();
    corrupt[14 + 8] ^= 0x01; // the TTL, under the old checksum
    assert_eq!(judge(&program, &corrupt), "no_socket");
    assert_eq!(judge(&program, &backbone(&udp_to_egress(40000))), "no_socket", "another server's");
    // Version 6 in the version field, the checksum verifying: not an IPv4 header.
    let mut not_v4 = good.clone();
    not_v4[14] = 0x65;
    fill_checksum(&mut not_v4);
    assert_eq!(judge(&program, &not_v4), "no_socket");
    // The outer header verifies, the inner one does not: the data plane's
    // `bad_ipv4_checksum`, not the kernel's uncounted drop.
    let mut inner = udp_to_egress(2000);
    inner[14 + 8] ^= 0x01;
    assert_eq!(judge(&program, &backbone(&inner)), "no_socket", "a corrupt inner header");
}

/// Backbone GRE behind VLAN tags (one to three, as the program reads them) is stripped
/// as untagged GRE is, its tags with it: the host gets the inner packet untagged, byte
/// for byte what it gets of the untagged frame (it needs no VLAN device for the
/// backbone's tags, which may be 0x9100, which Linux has none for). It went to the data
/// plane, and was punted back through the TUN device (rate-limited).
#[test]
fn tagged_backbone_gre_is_stripped_of_its_tags_too() {
    let program = soft_unicast_program();
    let untagged = backbone(&udp_to_egress(2000));
    let (fate, plain) = judge_output(&program, &untagged);
    assert_eq!(fate, "backbone_local");
    // The inner packet follows the Ethernet header, as the backbone frame's outer did.
    assert_eq!(plain[..12], untagged[..12]);
    assert_eq!(plain[12..], udp_to_egress(2000)[12..]);
    let tags: [[u8; 4]; 3] = [[0x00, 0x0a, 0x81, 0x00], [0x00, 0x0b, 0x91, 0x00], [0x00, 0x0c, 0x08, 0x00]];
    for n in 1..=3 {
        // 802.1ad first, then 802.1Q and 0x9100; the last tag names IPv4.
        let mut tagged = untagged[..12].to_vec();
        tagged.extend_from_slice(&0x88a8u16.to_be_bytes());
        for tag in &tags[3 - n..] {
            tagged.extend_from_slice(tag);
        }
        tagged.extend_from_slice(&untagged[14..]);
        let (fate, out) = judge_output(&program, &tagged);
        assert_eq!(fate, "backbone_local", "{n} tags");
        assert_eq!(out, plain, "{n} tags");
    }
}

/// `frame` (an Ethernet frame holding IPv4) with ECN field `ecn`, its checksum right.
fn with_ecn(mut frame: Vec<u8>, ecn: u8) -> Vec<u8> {
    frame[15] = 0xb8 | ecn; // DSCP EF, which must stay
    fill_checksum(&mut frame);
    frame
}

/// A congestion mark a router on the backbone put on the outer header reaches the inner
/// packet handed to the host (RFC 6040 §4.2), its checksum right; a mark on a packet
/// that is not ECN-capable is left to the data plane, which drops and counts it.
#[test]
fn a_backbone_congestion_mark_reaches_the_inner_packet() {
    let program = soft_unicast_program();
    let (not_ect, ect1, ect0, ce) = (0, 1, 2, 3);
    // (outer, inner) -> the inner packet's ECN field as handed on.
    for (outer, inner, want) in [
        (ce, ect0, ce),
        (ce, ect1, ce),
        (ce, ce, ce),
        (ect1, ect0, ect1),
        (not_ect, ect0, ect0),
        (ect0, not_ect, not_ect),
    ] {
        let frame = with_ecn(backbone(&with_ecn(udp_to_egress(2000), inner)), outer);
        let (fate, out) = judge_output(&program, &frame);
        assert_eq!(fate, "backbone_local", "outer {outer}, inner {inner}");
        assert_eq!((out[15] & 0xfc, out[15] & 3), (0xb8, want), "outer {outer}, inner {inner}");
        assert_eq!(header_sum(&out), 0xffff, "the inner checksum verifies");
    }
    let frame = with_ecn(backbone(&with_ecn(udp_to_egress(2000), not_ect)), ce);
    assert_eq!(judge(&program, &frame), "no_socket", "CE on a packet that is not ECN-capable");
}

/// A first fragment the data plane drops for its congestion mark names no owner for its
/// datagram's later fragments, there as here: they go where a fragment whose first was
/// not seen goes. The address is made another data centre's (slice 0 still this
/// server's) so that the two differ.
#[test]
fn a_first_fragment_refused_for_its_mark_names_no_owner() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, mut egress) = soft_unicast([0, 1]);
    egress.addresses = vec![(Ipv4Addr::new(192, 0, 2, 10), 1)];
    program.publish(&config, &egress).unwrap();
    let (not_ect, ce) = (0, 3);
    let marked = with_ecn(backbone(&with_ecn(fragment_to_egress(76, Some(2000)), not_ect)), ce);
    assert_eq!(judge(&program, &marked), "no_socket", "the data plane's to drop");
    assert_eq!(judge(&program, &fragment_to_egress(76, None)), "no_socket", "no first seen: another data centre's");
    // The same first fragment, unmarked, is this server's, and so are its later ones.
    assert_eq!(judge(&program, &backbone(&fragment_to_egress(77, Some(2000)))), "backbone_local");
    assert_eq!(judge(&program, &fragment_to_egress(77, None)), "egress_local", "with its first");
}

/// A fragment of UDP datagram `id` from 198.51.100.7 to 192.0.2.10: the first (with the
/// UDP header, to `port`) or a later one (at byte 1480, no header).
fn fragment_to_egress(id: u16, first: Option<u16>) -> Vec<u8> {
    fragment_from([198, 51, 100, 7], id, first)
}

/// [`fragment_to_egress`] from `src`.
fn fragment_from(src: [u8; 4], id: u16, first: Option<u16>) -> Vec<u8> {
    let (flags_offset, payload) = match first {
        Some(port) => (0x2000, [5353u16, port, 1488, 0].map(u16::to_be_bytes).concat()),
        None => (1480 / 8, vec![0x55; 8]),
    };
    let mut f = ipv4_frame(src, [192, 0, 2, 10], 17, flags_offset, &payload);
    f[18..20].copy_from_slice(&id.to_be_bytes());
    fill_checksum(&mut f); // the identification is under it
    f
}

/// Only a datagram's first fragment carries the port that names its owner; the later
/// ones go where it went: to the kernel here when it was this server's, to the data
/// plane (which forwards them) when it was another's. One whose first was not seen is
/// its data centre's, as before (this server's data centre here).
#[test]
fn later_fragments_go_where_their_first_went() {
    let program = soft_unicast_program();
    assert_eq!(judge(&program, &fragment_to_egress(71, Some(2000))), "egress_local", "slice 0: this server's");
    assert_eq!(judge(&program, &fragment_to_egress(71, None)), "egress_local");
    assert_eq!(judge(&program, &fragment_to_egress(72, Some(40000))), "no_socket", "slice 1: another's");
    // The same identification from another source is another datagram (this server's).
    let other = [198, 51, 100, 8];
    assert_eq!(judge(&program, &fragment_from(other, 72, Some(2000))), "egress_local");
    assert_eq!(judge(&program, &fragment_to_egress(72, None)), "no_socket", "with its first");
    assert_eq!(judge(&program, &fragment_from(other, 72, None)), "egress_local", "with its own first");
    assert_eq!(judge(&program, &fragment_to_egress(73, None)), "egress_local", "no first seen");
    // The same through the backbone, decapsulated here only for this server.
    assert_eq!(judge(&program, &backbone(&fragment_to_egress(74, Some(40000)))), "no_socket");
    assert_eq!(judge(&program, &backbone(&fragment_to_egress(74, None))), "no_socket");
    assert_eq!(judge(&program, &backbone(&fragment_to_egress(75, Some(2000)))), "backbone_local");
    assert_eq!(judge(&program, &backbone(&fragment_to_egress(75, None))), "backbone_local");
}

/// A first fragment whose IPv4 header the data plane drops (its checksum fails over the
/// options too, or the frame ends before its total length) names no owner: its later
/// fragments are judged as if it never came, as the data plane judges them.
#[test]
fn a_damaged_first_fragment_names_no_owner() {
    let program = soft_unicast_program();
    // Another server's first (slice 1), then its later fragment: to the data plane.
    let with_options = |id: u16, good: bool| {
        let mut f = fragment_to_egress(id, Some(40000));
        f.splice(34..34, [1, 1, 1, 0]); // NOP, NOP, NOP, end of options
        f[14] = 0x46;
        let total = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fill_checksum(&mut f);
        if !good {
            f[37] ^= 0x10; // an option byte: the sum over the options no longer verifies
        }
        f
    };
    assert_eq!(judge(&program, &with_options(81, true)), "no_socket");
    assert_eq!(judge(&program, &fragment_to_egress(81, None)), "no_socket", "with its first");
    assert_eq!(judge(&program, &with_options(82, false)), "no_socket", "the data plane's to drop");
    assert_eq!(judge(&program, &fragment_to_egress(82, None)), "egress_local", "as with no first seen");
    let mut cut = fragment_to_egress(83, Some(40000));
    cut.truncate(cut.len() - 1);
    assert_eq!(judge(&program, &cut), "no_socket");
    assert_eq!(judge(&program, &fragment_to_egress(83, None)), "egress_local", "as with no first seen");
}

/// Under AH the port lies past the AH header, where the program reads it as the data
/// plane does: a packet, or a datagram's first fragment, goes where its port says, and
/// the later fragments follow. It went to the data plane whatever its port (punted back
/// to this host when it was this server's); before that, it was judged as a packet with
/// no port (its data centre's: passed here while another server owned it).
#[test]
fn packets_under_ah_are_judged_by_the_port_behind_it() {
    let program = soft_unicast_program();
    // AH (RFC 4302: next header UDP, payload length 4, SPI, sequence, 12-byte ICV), then
    // UDP to port 40000 (slice 1, another server's) or 2000 (slice 0, this one's).
    let mut ah = vec![17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    ah.extend_from_slice(&[0; 12]);
    let udp = |port: u16| [5353u16, port, 8, 0].map(u16::to_be_bytes).concat();
    let under_ah = |src: [u8; 4], flags_offset: u16, port: u16| {
        ipv4_frame(src, [192, 0, 2, 10], 51, flags_offset, &[ah.clone(), udp(port)].concat())
    };
    assert_eq!(judge(&program, &under_ah([198, 51, 100, 7], 0, 40000)), "no_socket", "redirected");
    assert_eq!(judge(&program, &under_ah([198, 51, 100, 7], 0, 2000)), "egress_local");
    let later = |src: [u8; 4]| ipv4_frame(src, [192, 0, 2, 10], 51, 1480 / 8, &[0x55; 8]);
    assert_eq!(judge(&program, &under_ah([198, 51, 100, 9], 0x2000, 40000)), "no_socket");
    assert_eq!(judge(&program, &later([198, 51, 100, 9])), "no_socket", "with its first");
    assert_eq!(judge(&program, &under_ah([198, 51, 100, 8], 0x2000, 2000)), "egress_local");
    assert_eq!(judge(&program, &later([198, 51, 100, 8])), "egress_local", "with its first");
}

/// Bytes past the IPv4 total length are Ethernet padding: a port there is no port (the
/// data plane, which reads within the total length, finds none either), and the packet
/// goes to its address's data centre, this server's here; within the length it counts.
#[test]
fn a_port_in_the_ethernet_padding_is_no_port() {
    let program = soft_unicast_program();
    let cut = |mut frame: Vec<u8>, total: u16| {
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        fill_checksum(&mut frame);
        frame
    };
    // UDP to port 40000 (another server's): the total length ends after the source port.
    assert_eq!(judge(&program, &udp_to_egress(40000)), "no_socket");
    assert_eq!(judge(&program, &cut(udp_to_egress(40000), 22)), "egress_local");
    // An ICMP port unreachable quoting our UDP from port 40000, its quote cut after
    // the quoted header (28 + 20 bytes), or just after the quoted source port.
    let quote =
        ipv4_frame([192, 0, 2, 10], [198, 51, 100, 7], 17, 0, &[40000u16, 53, 8, 0].map(u16::to_be_bytes).concat());
    let icmp = [&[3u8, 3, 0, 0, 0, 0, 0, 0][..], &quote[14..]].concat();
    let error = ipv4_frame([198, 51, 100, 7], [192, 0, 2, 10], 1, 0, &icmp);
    assert_eq!(judge(&program, &error), "no_socket");
    assert_eq!(judge(&program, &cut(error.clone(), 48)), "egress_local");
    assert_eq!(judge(&program, &cut(error, 50)), "no_socket", "the quoted source port is all it reads");
}
