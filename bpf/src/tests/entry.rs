//! What the program's entry (`transitd.bpf.c`) decides besides soft-unicast: frames to
//! another host's MAC address, frames behind more VLAN tags than it reads, destinations on
//! the host's own link, and GRE to the anycast address by where it comes from (fragments,
//! AH, IPv6 extension headers) and, for a later fragment, where its first went.

use std::net::{Ipv4Addr, Ipv6Addr};

use libbpf_rs::{MapCore, MapFlags};

use super::{fill_checksum, ipv4_frame, judge, soft_unicast};
use crate::{EgressTables, XdpConfig, XdpProgram};

/// A unicast frame to another host's MAC address (the NIC promiscuous, a switch
/// flooding) is passed to the kernel, which discards it as the host it was for does not,
/// once the interface's own address is known; to our address, or to a group address,
/// it is judged as before. Unknown (test runs, replays), every frame is judged.
#[test]
fn frames_to_another_hosts_mac_address_are_the_kernels() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let config = XdpConfig { soft_unicast: None, ..config };
    program.set_owned_v4(&[(Ipv4Addr::new(203, 0, 113, 0), 24)]).unwrap();
    let to = |mac: [u8; 6]| {
        let mut f = ipv4_frame([198, 51, 100, 7], [203, 0, 113, 5], 17, 0, &[0; 8]);
        f[..6].copy_from_slice(&mac);
        f
    };
    let (ours, other, broadcast, group) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x99], [0xff; 6], [1, 0, 0x5e, 0, 0, 1]);
    program.publish(&config, &EgressTables::default()).unwrap();
    for mac in [ours, other, broadcast, group] {
        assert_eq!(judge(&program, &to(mac)), "no_socket", "unchecked: {mac:02x?}");
    }
    program.pass_frames_not_to(ours);
    program.publish(&config, &EgressTables::default()).unwrap();
    assert_eq!(judge(&program, &to(other)), "passed");
    for mac in [ours, broadcast, group] {
        assert_eq!(judge(&program, &to(mac)), "no_socket", "{mac:02x?}");
    }
    // `[server] mac` set to another address: frames to it are ours too.
    let configured = [2, 0, 0x5e, 0, 1, 7];
    assert_eq!(judge(&program, &to(configured)), "passed");
    program.publish(&XdpConfig { config_mac: Some(configured), ..config }, &EgressTables::default()).unwrap();
    assert_eq!(judge(&program, &to(configured)), "no_socket");
    assert_eq!(judge(&program, &to(other)), "passed");
}

/// A frame behind more VLAN tags than the program reads (three) is the data plane's, which
/// drops it (`too_many_vlan_tags`), whatever it carries: Linux strips any number of priority
/// tags (VLAN ID 0) and routes the packet under them, so passed, a customer's packet reached
/// the host's stack past its firewall. Behind three tags the same packet is judged by its
/// destination; a frame cut short inside its tags is the kernel's, which drops it.
#[test]
fn frames_behind_more_vlan_tags_than_the_program_reads_are_the_data_planes() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let config = XdpConfig { soft_unicast: None, ..config };
    program.set_owned_v4(&[(Ipv4Addr::new(203, 0, 113, 0), 24)]).unwrap();
    program.publish(&config, &EgressTables::default()).unwrap();
    // Priority tags (VLAN ID 0), an 802.1ad one outermost, before the IPv4 EtherType.
    let behind = |tags: usize, dst: [u8; 4]| {
        let f = ipv4_frame([198, 51, 100, 7], dst, 17, 0, &[0; 8]);
        let tpids = (0..tags).map(|i| if i == 0 { 0x88a8u16 } else { 0x8100 });
        let stack: Vec<u8> = tpids.flat_map(|tpid| [tpid.to_be_bytes(), [0, 0]].concat()).collect();
        [&f[..12], &stack[..], &f[12..]].concat()
    };
    let (customer, elsewhere) = ([203, 0, 113, 5], [198, 51, 100, 1]);
    for tags in 0..=3 {
        assert_eq!(judge(&program, &behind(tags, customer)), "no_socket", "{tags} tags, to a customer");
        assert_eq!(judge(&program, &behind(tags, elsewhere)), "passed", "{tags} tags, to no customer");
    }
    for tags in 4..=6 {
        for dst in [customer, elsewhere] {
            assert_eq!(judge(&program, &behind(tags, dst)), "no_socket", "{tags} tags to {dst:?}");
        }
    }
    // A fourth tag announced where the frame ends (the third's EtherType, bytes 24-25), and
    // a frame that ends inside its third tag.
    let three = behind(3, customer);
    let fourth_announced = [&three[..24], &0x8100u16.to_be_bytes()[..]].concat();
    assert_eq!(judge(&program, &fourth_announced), "no_socket");
    assert_eq!(judge(&program, &three[..23]), "passed");
}

/// GRE to the anycast address from 198.51.100.9, `more_fragments` set or not.
fn gre_to_anycast(more_fragments: bool) -> Vec<u8> {
    let flags = if more_fragments { 0x2000 } else { 0 };
    ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 47, flags, &[0, 0, 0x08, 0x00, 0, 0, 0, 0])
}

/// A GRE fragment from a source that is no tunnel's router is not ours, as its whole
/// datagram would not be: passed when `gre_unsupported = "pass"`. From a tunnel's router
/// a first fragment is judged by its fixed header, as a whole packet is (version 1 is not
/// ours; version 0 is the data plane's to drop and count), a later fragment (its first not
/// seen: [`later_fragments_of_gre_not_ours_follow_their_first`]) and a header cut short by
/// the total length (what follows it is Ethernet padding) are the data plane's.
#[test]
fn gre_fragments_follow_the_source_they_come_from() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let config = XdpConfig { soft_unicast: None, ..config };
    program.publish(&config, &EgressTables::default()).unwrap();
    assert_eq!(judge(&program, &gre_to_anycast(true)), "gre_not_ours");
    assert_eq!(judge(&program, &gre_to_anycast(false)), "gre_not_ours");
    program.set_tunnel_remotes(&[Ipv4Addr::new(198, 51, 100, 9)], &[]).unwrap();
    assert_eq!(judge(&program, &gre_to_anycast(true)), "no_socket");
    assert_eq!(judge(&program, &gre_to_anycast(false)), "no_socket");
    let version_1 = |flags_offset: u16| {
        ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 47, flags_offset, &[0, 1, 0x88, 0x0b, 0, 0, 0, 0])
    };
    assert_eq!(judge(&program, &version_1(1480 / 8)), "no_socket", "a later fragment, its first not seen");
    assert_eq!(judge(&program, &version_1(0x2000)), "gre_not_ours", "a first fragment of version 1");
    let mut padded = version_1(0);
    padded[16..18].copy_from_slice(&22u16.to_be_bytes()); // two bytes of GRE
    fill_checksum(&mut padded);
    assert_eq!(judge(&program, &padded), "no_socket", "a header cut short by the total length");
}

/// The later fragments of GRE from a tunnel's router that is not ours (here PPTP's version 1)
/// follow their first fragment: with `gre_unsupported = "pass"` the program passes them to
/// the kernel after it, which gets the whole datagram. It handed them to the data plane,
/// which, never shown the first, kept each a second in one of a worker's 64 slots (64 such
/// datagrams evicted every datagram of ours being reassembled), and the host got the first
/// alone. For as long as the data plane would hold the datagram (a second: the record is aged
/// by hand, no test sleeps), over IPv4 and IPv6 (the identification the first fragment
/// header's, destination options behind it too). Handed over as before: a later fragment
/// before its first, another datagram's, the rest of a datagram whose first was ours (which
/// ends the memory of the identity) or had a header the data plane drops (a bad checksum, a
/// hop-by-hop header out of place, a second fragment header), an atomic fragment's namesake,
/// and every one with `gre_unsupported = "drop"`, where the data plane drops them.
#[test]
fn later_fragments_of_gre_not_ours_follow_their_first() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let config = XdpConfig { soft_unicast: None, anycast_v6: Some("2001:db8:ffff::1".parse().unwrap()), ..config };
    program.publish(&config, &EgressTables::default()).unwrap();
    let router_v6: Ipv6Addr = "2001:db8:beef::1".parse().unwrap();
    program.set_tunnel_remotes(&[Ipv4Addr::new(198, 51, 100, 9)], &[router_v6]).unwrap();
    // GRE's fixed header, version 1 (PPTP's protocol type) or ours; a later fragment's data.
    let (pptp, plain, data) = ([0u8, 1, 0x88, 0x0b], [0u8, 0, 0x08, 0x00], [0u8; 16]);
    // Over IPv4, identification `id`: 0x2000 is a first fragment, 185 an offset of 1480.
    let v4 = |id: u16, flags_offset: u16, gre: &[u8]| {
        let mut f = ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 47, flags_offset, &[gre, &[0; 12]].concat());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        fill_checksum(&mut f);
        f
    };
    let (first, later, last) = (v4(7, 0x2000, &pptp), v4(7, 0x2000 | 185, &data[..4]), v4(7, 370, &data[..4]));
    assert_eq!(judge(&program, &later), "no_socket", "a later fragment before its first");
    assert_eq!(judge(&program, &first), "gre_not_ours", "the first, version 1");
    assert_eq!(judge(&program, &later), "gre_not_ours", "a later fragment after it");
    assert_eq!(judge(&program, &last), "gre_not_ours", "the last");
    assert_eq!(judge(&program, &v4(8, 185, &data[..4])), "no_socket", "another datagram's");
    // The record (`struct fragment_key`: addresses, identification, protocol, pad) aged.
    let map = &program.skel.maps.gre_refused_v4;
    let key = [&[198, 51, 100, 9, 192, 0, 2, 1][..], &7u16.to_be_bytes(), &[47, 0]].concat();
    let seen = map.lookup(&key, MapFlags::ANY).unwrap().expect("the first fragment's record");
    let seen = u64::from_ne_bytes(seen.try_into().unwrap());
    let aged = |by: u64| map.update(&key, &(seen - by).to_ne_bytes(), MapFlags::ANY).unwrap();
    aged(1_000_000_001);
    assert_eq!(judge(&program, &later), "no_socket", "past the data plane's hold");
    // Half the hold back: the test runs since the first was recorded (a busy machine may
    // preempt it for milliseconds) stay well within the rest.
    aged(500_000_000);
    assert_eq!(judge(&program, &later), "gre_not_ours", "within it");
    assert_eq!(judge(&program, &v4(7, 0x2000, &plain)), "no_socket", "a first of ours under the identity");
    assert_eq!(judge(&program, &later), "no_socket", "a later fragment of that one");
    let mut bad_checksum = v4(9, 0x2000, &pptp);
    bad_checksum[24] ^= 1;
    assert_eq!(judge(&program, &bad_checksum), "gre_not_ours", "a first with a bad header checksum");
    assert_eq!(judge(&program, &v4(9, 185, &data[..4])), "no_socket", "its later fragment");
    // Over IPv6: a fragment header (next header `next`, offset and flags `word`, `id`),
    // then GRE or data.
    let fragment = |next: u8, word: u16, id: u32| [&[next, 0][..], &word.to_be_bytes(), &id.to_be_bytes()].concat();
    let v6 = |extensions: &[u8], payload: &[u8]| ipv6_behind(router_v6, 44, extensions, payload);
    // Destination options with eight bytes of padding (PadN), naming GRE.
    let options = [47u8, 0, 1, 4, 0, 0, 0, 0];
    assert_eq!(judge(&program, &v6(&fragment(47, 1, 9), &pptp)), "gre_not_ours", "over IPv6, the first");
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 9), &data)), "gre_not_ours", "a later fragment");
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 10), &data)), "no_socket", "another datagram's");
    let behind_options = [fragment(60, 1, 11), options.to_vec()].concat();
    assert_eq!(judge(&program, &v6(&behind_options, &pptp)), "gre_not_ours", "the first, options behind");
    assert_eq!(judge(&program, &v6(&fragment(60, 1480, 11), &data)), "gre_not_ours", "a later one naming them");
    assert_eq!(judge(&program, &v6(&fragment(47, 0, 12), &pptp)), "gre_not_ours", "an atomic fragment");
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 12), &data)), "no_socket", "a later one of its identity");
    let hop_by_hop_after = [fragment(0, 1, 13), [47, 0, 1, 4, 0, 0, 0, 0].to_vec()].concat();
    assert_eq!(judge(&program, &v6(&hop_by_hop_after, &pptp)), "gre_not_ours", "hop-by-hop out of place");
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 13), &data)), "no_socket", "its later fragment");
    let second_fragment_header = [fragment(44, 1, 14), fragment(47, 0, 15)].concat();
    assert_eq!(judge(&program, &v6(&second_fragment_header, &pptp)), "gre_not_ours", "a second fragment header");
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 14), &data)), "no_socket", "its later fragment");
    // "drop": the data plane's to drop, the rest of a datagram passed before too.
    program.publish(&XdpConfig { gre_not_ours_pass: false, ..config }, &EgressTables::default()).unwrap();
    assert_eq!(judge(&program, &v6(&fragment(47, 1480, 9), &data)), "no_socket", "drop: one passed before");
    assert_eq!(judge(&program, &first), "no_socket", "drop: a first");
    assert_eq!(judge(&program, &later), "no_socket", "drop: its later fragment");
}

/// GRE under an authentication header is not decapsulated, whoever sends it (nothing
/// here holds the security association that would verify it): it fares as GRE that is
/// not ours, passed here or left to the data plane to drop per `gre_unsupported`. Other
/// AH to the anycast address, and an AH datagram's later fragments, are the host's.
#[test]
fn gre_under_ah_is_not_ours() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let anycast_v6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
    let config = XdpConfig { soft_unicast: None, anycast_v6: Some(anycast_v6), ..config };
    let router_v6: Ipv6Addr = "2001:db8:beef::1".parse().unwrap();
    program.set_tunnel_remotes(&[Ipv4Addr::new(198, 51, 100, 9)], &[router_v6]).unwrap();
    // RFC 4302: next header, payload length 4 (24 bytes), reserved, SPI, sequence, ICV.
    let ah = |next: u8| [&[next, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1][..], &[0; 12]].concat();
    let gre = [0u8, 0, 0x08, 0x00];
    let frame = |next: u8, flags_offset: u16| {
        ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 51, flags_offset, &[ah(next), gre.to_vec()].concat())
    };
    // The same over IPv6, AH right behind the fixed header.
    let frame_v6 = |next: u8| {
        let payload = [ah(next), gre.to_vec()].concat();
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[51, 64]);
        f.extend_from_slice(&router_v6.octets());
        f.extend_from_slice(&anycast_v6.octets());
        f.extend_from_slice(&payload);
        f
    };
    for pass in [true, false] {
        program.publish(&XdpConfig { gre_not_ours_pass: pass, ..config.clone() }, &EgressTables::default()).unwrap();
        let not_ours = if pass { "gre_not_ours" } else { "no_socket" };
        assert_eq!(judge(&program, &frame(47, 0)), not_ours, "from a tunnel's router, pass {pass}");
        assert_eq!(judge(&program, &frame(47, 0x2000)), not_ours, "a first fragment, pass {pass}");
        assert_eq!(judge(&program, &frame(17, 0)), "passed", "UDP under AH");
        assert_eq!(judge(&program, &frame(47, 1480 / 8)), "passed", "a later fragment");
        assert_eq!(judge(&program, &gre_to_anycast(false)), "no_socket", "plain GRE from the router");
        assert_eq!(judge(&program, &frame_v6(47)), not_ours, "over IPv6, pass {pass}");
        assert_eq!(judge(&program, &frame_v6(17)), "passed", "UDP under AH over IPv6");
        // The AH header in Ethernet padding, past the total length: no AH.
        let mut padded = frame(47, 0);
        padded[16..18].copy_from_slice(&20u16.to_be_bytes());
        fill_checksum(&mut padded);
        assert_eq!(judge(&program, &padded), "passed", "AH in the padding");
    }
}

/// GRE over IPv6 from `src` to the IPv6 anycast address 2001:db8:ffff::1 behind a
/// fragment header (`fragment`) or right after the fixed header.
fn gre_over_ipv6(src: Ipv6Addr, fragment: bool) -> Vec<u8> {
    let ext: &[u8] = if fragment { &[47, 0, 0, 1, 0, 0, 0, 7] } else { &[] };
    ipv6_behind(src, if fragment { 44 } else { 47 }, ext, &[0u8, 0, 0x08, 0x00])
}

/// An IPv6 frame to the anycast address from `src`: next header `next`, then
/// `extensions` (the headers as they are on the wire) and `payload`.
fn ipv6_behind(src: Ipv6Addr, next: u8, extensions: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((extensions.len() + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&"2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(extensions);
    f.extend_from_slice(payload);
    f
}

/// GRE over IPv6 behind an extension header from a tunnel's router is the data plane's
/// (which walks the headers and decapsulates or drops it with a reason); from anywhere
/// else it fares as GRE that is not ours (`gre_unsupported`: passed and counted, or the
/// data plane's to drop), as IPv4 fragments of GRE do; it went to the kernel whatever
/// `gre_unsupported` said. GRE under AH anywhere in the chain is not ours from anyone,
/// as the data plane judges it (it went to the kernel when options followed the AH).
/// What is not GRE behind the headers, or lies past the payload length, is not ours. Behind
/// more headers than the program walks (nine), GRE or not is unknown: from anyone but the
/// router it is passed with "pass" and the data plane's with "drop", which drops such GRE
/// (it went to the kernel, GRE the configuration drops).
#[test]
fn gre_over_ipv6_behind_an_extension_header_follows_its_source() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    let config = XdpConfig { soft_unicast: None, anycast_v6: Some("2001:db8:ffff::1".parse().unwrap()), ..config };
    program.publish(&config, &EgressTables::default()).unwrap();
    let router: Ipv6Addr = "2001:db8:beef::1".parse().unwrap();
    let gre = [0u8, 0, 0x08, 0x00];
    // Destination options (16 bytes: length 1), a first fragment's header, AH (24 bytes:
    // length 4), then GRE; and UDP behind the same headers.
    let options = [44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let first_fragment = [51, 0, 0, 1, 0, 0, 0, 7];
    let ah = [47, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let chain = [&options[..], &first_fragment, &ah].concat();
    let deep = ipv6_behind(router, 60, &chain, &gre);
    let mut udp_chain = chain.clone();
    udp_chain[16 + 8] = 17; // AH's next header
    let not_gre = ipv6_behind(router, 60, &udp_chain, &[0, 53, 0, 53, 0, 8, 0, 0]);
    // A later fragment of GRE: what follows its header is data, whatever it looks like
    // (here, a header naming UDP).
    let later_fragment = [47, 0, 0, 0x10, 0, 0, 0, 7];
    let later = ipv6_behind(router, 44, &later_fragment, &[17, 0, 0, 0, 0, 0, 0, 0]);
    // Eight headers, as many as the program walks, then nine.
    let chain_of =
        |n: usize| -> Vec<u8> { (0..n).flat_map(|k| [if k + 1 < n { 60 } else { 47 }, 0, 0, 0, 0, 0, 0, 0]).collect() };
    let (eight, nine) = (ipv6_behind(router, 60, &chain_of(8), &gre), ipv6_behind(router, 60, &chain_of(9), &gre));
    let mut udp_chain_of_nine = chain_of(9);
    udp_chain_of_nine[8 * 8] = 17; // the ninth header's next header
    let udp_behind_nine = ipv6_behind(router, 60, &udp_chain_of_nine, &[0, 53, 0, 53, 0, 8, 0, 0]);
    // Options alone; AH first, then options (AH naming them); UDP behind options alone.
    let options_only = ipv6_behind(router, 60, &chain_of(1), &gre);
    let ah_first = [&[60u8][..], &ah[1..], &chain_of(1)].concat();
    let ah_then_options = ipv6_behind(router, 51, &ah_first, &gre);
    let udp_behind_options = [&[17u8][..], &options[1..]].concat();
    let udp_behind_options = ipv6_behind(router, 60, &udp_behind_options, &[0, 53, 0, 53, 0, 8, 0, 0]);
    // Two option headers and GRE in the frame, the payload length covering the first:
    // the rest is padding, no header.
    let mut cut = ipv6_behind(router, 60, &chain_of(2), &gre);
    cut[18..20].copy_from_slice(&8u16.to_be_bytes());
    for (gre_unsupported, not_ours) in [("pass", "gre_not_ours"), ("drop", "no_socket")] {
        let config = XdpConfig { gre_not_ours_pass: gre_unsupported == "pass", ..config.clone() };
        program.publish(&config, &EgressTables::default()).unwrap();
        program.set_tunnel_remotes(&[], &[]).unwrap();
        assert_eq!(judge(&program, &gre_over_ipv6(router, true)), not_ours, "{gre_unsupported}: a fragment");
        assert_eq!(judge(&program, &gre_over_ipv6(router, false)), not_ours, "{gre_unsupported}: whole");
        assert_eq!(judge(&program, &deep), not_ours, "{gre_unsupported}: behind three headers");
        assert_eq!(judge(&program, &later), not_ours, "{gre_unsupported}: a later fragment");
        assert_eq!(judge(&program, &eight), not_ours, "{gre_unsupported}: eight headers");
        assert_eq!(judge(&program, &ah_then_options), not_ours, "{gre_unsupported}: AH, then options");
        assert_eq!(judge(&program, &not_gre), "passed", "{gre_unsupported}: UDP is the host's");
        assert_eq!(judge(&program, &udp_behind_options), "passed", "{gre_unsupported}: UDP, options");
        let unwalked = if gre_unsupported == "pass" { "passed" } else { "no_socket" };
        assert_eq!(judge(&program, &nine), unwalked, "{gre_unsupported}: nine headers");
        assert_eq!(judge(&program, &udp_behind_nine), unwalked, "{gre_unsupported}: UDP behind nine");
        assert_eq!(judge(&program, &cut), "passed", "{gre_unsupported}: headers past the length");
        program.set_tunnel_remotes(&[], &[router]).unwrap();
        let router_frames = [gre_over_ipv6(router, true), gre_over_ipv6(router, false), options_only.clone()];
        for frame in router_frames.iter().chain([&nine, &cut]) {
            assert_eq!(judge(&program, frame), "no_socket", "{gre_unsupported}: from the tunnel's router");
        }
        assert_eq!(judge(&program, &udp_behind_options), "passed", "{gre_unsupported}: the router's UDP");
        // Under AH, GRE is not ours from the router either; anything else is the host's.
        assert_eq!(judge(&program, &deep), not_ours, "{gre_unsupported}: the router's, under AH");
        assert_eq!(judge(&program, &ah_then_options), not_ours, "{gre_unsupported}: the router's, AH first");
        assert_eq!(judge(&program, &not_gre), "passed", "{gre_unsupported}: the router's UDP under AH");
    }
}

/// Under a catch-all (every IPv4 and IPv6 destination owned: a lab's or a benchmark's
/// customer), a destination on the host's own link is passed, not handed over: link-local
/// unicast (RFC 3927, RFC 4291 §2.5.6: the host's own link-local address, where neighbour
/// advertisements and a BGP session over 169.254.x.y come), the local network control block
/// (RFC 5771 §4), the limited broadcast, and IPv6 multicast of link scope or narrower,
/// whatever its flags (RFC 4291 §2.7: neighbour solicitations, MLD). Every other
/// destination is handed over. Brute force: every /16's first and last address, every
/// address of 224.0.0.0/23 and 255.255.255.0/24, every first 16 bits of IPv6, against the
/// RFCs' spaces written out here. (The program handed them all over, the host's neighbour
/// discovery with them.)
#[test]
fn destinations_on_the_hosts_own_link_are_the_kernels_under_a_catch_all() {
    let program = XdpProgram::load().expect("load the program (needs root)");
    let (config, _) = soft_unicast([0, 1]);
    program.publish(&XdpConfig { soft_unicast: None, ..config }, &EgressTables::default()).unwrap();
    program.set_owned_v4(&[(Ipv4Addr::UNSPECIFIED, 0)]).unwrap();
    program.set_owned_v6(&[(Ipv6Addr::UNSPECIFIED, 0)]).unwrap();
    // (network, prefix length) of each space, as `bits`-bit numbers.
    let within =
        |a: u128, spaces: &[(u128, u32)], bits: u32| spaces.iter().any(|&(net, len)| (a ^ net) >> (bits - len) == 0);
    let link_v4: [(u128, u32); 3] = [(0xa9fe_0000, 16), (0xe000_0000, 24), (0xffff_ffff, 32)];
    // fe80::/10, and ff0S::/16 with any flags F in ffFS:: for the scopes S 0 (reserved),
    // 1 (interface-local) and 2 (link-local).
    let multicast =
        (0..16u128).flat_map(|flags| (0..=2u128).map(move |scope| ((0xff00 | flags << 4 | scope) << 112, 16)));
    let link_v6: Vec<(u128, u32)> = std::iter::once((0xfe80 << 112, 10)).chain(multicast).collect();
    let udp = [0u8, 9, 0, 9, 0, 8, 0, 0];
    let per_16 = (0..=u16::MAX).flat_map(|hi| [1, u16::MAX - 1].map(|lo| u32::from(hi) << 16 | u32::from(lo)));
    let edges = (0xe000_0000..0xe000_0200).chain(0xffff_ff00..=u32::MAX);
    let mut wrong = Vec::new();
    let mut passed = 0;
    for dst in per_16.chain(edges) {
        let expected = if within(u128::from(dst), &link_v4, 32) { "passed" } else { "no_socket" };
        let got = judge(&program, &ipv4_frame([198, 18, 0, 10], dst.to_be_bytes(), 17, 0, &udp));
        passed += usize::from(got == "passed");
        if got != expected {
            wrong.push(format!("{} {got}", Ipv4Addr::from(dst)));
        }
    }
    for hi in 0..=u16::MAX {
        let dst = u128::from(hi) << 112 | 1;
        let mut frame = ipv6_behind("2001:db8:5::9".parse().unwrap(), 17, &[], &udp);
        frame[38..54].copy_from_slice(&dst.to_be_bytes()); // the destination, past the source
        let expected = if within(dst, &link_v6, 128) { "passed" } else { "no_socket" };
        let got = judge(&program, &frame);
        passed += usize::from(got == "passed");
        if got != expected {
            wrong.push(format!("{} {got}", Ipv6Addr::from(dst)));
        }
    }
    assert!(wrong.is_empty(), "{} judged otherwise, among them {:?}", wrong.len(), &wrong[..wrong.len().min(8)]);
    // 169.254's two, 224.0.0.0/24's 256 and one more, the limited broadcast; 64 + 48 /16s.
    assert_eq!(passed, 2 + 257 + 1 + 64 + 48);
}
