//! Tests of the XDP program in the kernel (`BPF_PROG_TEST_RUN`, which needs root) and of
//! its loader: the frames they are made of, the program's judgement of one ([`judge`]), and
//! the table sizes the loader shares with `consts.h`. The program's decisions are tested by
//! the C file that makes them: `egress` (`egress.h`, soft-unicast's return path) and `entry`
//! (`transitd.bpf.c`: another host's MAC address, the host's own link, GRE to the anycast
//! address).

mod egress;
mod entry;

use std::net::Ipv4Addr;

use super::*;

/// Soft-unicast as the program sees it: an egress address 192.0.2.10 whose slice of
/// ports 1024-33279 is server `owners[0]`'s and 33280-65535 `owners[1]`'s, this server 0.
pub(super) fn soft_unicast(owners: [u16; 2]) -> (XdpConfig, EgressTables) {
    let config = XdpConfig {
        anycast: Ipv4Addr::new(192, 0, 2, 1),
        anycast_v6: None,
        soft_unicast: Some(SoftUnicastConfig {
            backbone: Ipv4Addr::new(10, 0, 0, 1),
            dc_backbone: Ipv4Addr::new(10, 0, 0, 100),
            key_id: 7,
            this_server: 0,
            this_dc: 0,
            reserved_ports: 1024,
            slice_size: 32256,
            slices: 2,
        }),
        gre_not_ours_pass: true,
        mpls_redirect: false,
        pmtu_redirect: true,
        unbound_queue: UnboundQueue::Pass,
        config_mac: None,
    };
    let egress = EgressTables {
        addresses: vec![(Ipv4Addr::new(192, 0, 2, 10), 0)],
        owners: owners.to_vec(),
        peers: vec![Ipv4Addr::new(10, 0, 0, 2)],
    };
    (config, egress)
}

/// An Ethernet frame holding an IPv4 packet (protocol `protocol`, `flags_offset` the
/// flags and fragment offset word) from `src` to `dst` carrying `payload`, its header
/// checksum set (RFC 791).
fn ipv4_frame(src: [u8; 4], dst: [u8; 4], protocol: u8, flags_offset: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    f[20..22].copy_from_slice(&flags_offset.to_be_bytes());
    f[22] = 64;
    f[23] = protocol;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    fill_checksum(&mut f);
    f.extend_from_slice(payload);
    f
}

/// The ones' complement sum of the IPv4 header of an Ethernet frame (RFC 1071), options
/// included, folded.
fn header_sum(f: &[u8]) -> u16 {
    let len = usize::from(f[14] & 0xf) * 4;
    let sum: u32 = f[14..14 + len].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    ((folded & 0xffff) + (folded >> 16)) as u16
}

/// Sets the header checksum of the IPv4 header of an Ethernet frame.
fn fill_checksum(f: &mut [u8]) {
    f[24..26].fill(0);
    let sum = header_sum(f);
    f[24..26].copy_from_slice(&(!sum).to_be_bytes());
}

/// An Ethernet, IPv4 and UDP frame from 198.51.100.7 to 192.0.2.10 at `port`.
pub(super) fn udp_to_egress(port: u16) -> Vec<u8> {
    let udp = [5353u16, port, 8, 0].map(u16::to_be_bytes).concat();
    ipv4_frame([198, 51, 100, 7], [192, 0, 2, 10], 17, 0, &udp)
}

/// Runs the program on `frame` (BPF_PROG_TEST_RUN) and names the counter it bumped.
pub(super) fn judge(program: &XdpProgram, frame: &[u8]) -> &'static str {
    judge_output(program, frame).0
}

/// [`judge`], and the frame as the program left it.
fn judge_output(program: &XdpProgram, frame: &[u8]) -> (&'static str, Vec<u8>) {
    let (decision, out) = program.test_run(frame).expect("test run (needs root)");
    (decision.name(), out)
}

/// The bounds the loader checks are the sizes the program's maps were compiled with.
#[test]
fn table_bounds_match_the_programs_maps() {
    let mut storage = MaybeUninit::uninit();
    let open = TransitdSkelBuilder::default().open(&mut storage).expect("the object opens (no privilege needed)");
    let maps = &open.maps;
    assert_eq!(maps.xsks.max_entries(), MAX_QUEUES);
    let slots = CONFIG_SLOTS as usize;
    assert_eq!(maps.config.max_entries(), CONFIG_SLOTS);
    assert_eq!(maps.egress_addrs.max_entries() as usize, slots * MAX_EGRESS_ADDRS);
    assert_eq!(maps.egress_owners.max_entries() as usize, slots * MAX_EGRESS_SLICES);
    assert_eq!(maps.backbone_peers.max_entries() as usize, slots * MAX_BACKBONE_PEERS);
    assert_eq!(maps.tunnel_remotes_v4.max_entries() as usize, MAX_TUNNEL_REMOTES);
    assert_eq!(maps.tunnel_remotes_v6.max_entries() as usize, MAX_TUNNEL_REMOTES);
    assert_eq!(maps.gre_refused_v4.max_entries() as usize, MAX_REFUSED_GRE);
    assert_eq!(maps.gre_refused_v6.max_entries() as usize, MAX_REFUSED_GRE);
    assert_eq!(maps.stats.max_entries(), STAT_GRE_NOT_OURS + 1);
}
