//! Programming the XDP program's maps from a snapshot: the owned prefixes, the tunnel
//! remotes, its configuration and soft-unicast's egress tables.

use std::time::Instant;

use transitd_bpf::XdpProgram;

use crate::snapshot::Snapshot;

/// Makes the XDP program's owned prefixes and tunnel remotes `snap`'s alone at `now` (its
/// withdrawn prefixes in their grace with its customers'): after a reload's swap (they were
/// widened to both configurations'), again while that failed, and as graces end.
pub(super) fn narrow(program: &XdpProgram, snap: &Snapshot, now: Instant) -> Result<(), transitd_bpf::BpfError> {
    let (r4, r6) = tunnel_remotes(snap);
    let (v4, v6) = redirected(snap, now);
    program.set_owned_v4(&v4)?;
    program.set_owned_v6(&v6)?;
    program.set_tunnel_remotes(&r4, &r6)
}

/// Prefixes by family, as the XDP program's owned maps take them.
type Prefixes = (Vec<(std::net::Ipv4Addr, u8)>, Vec<(std::net::Ipv6Addr, u8)>);

/// The prefixes whose traffic the XDP program redirects for `snap` at `now`, by family: its
/// customers' and the withdrawn ones in their grace (disjoint: a prefix served is not held).
pub(super) fn redirected(snap: &Snapshot, now: Instant) -> Prefixes {
    let (mut v4, mut v6) = (snap.owned_v4(), snap.owned_v6());
    for net in snap.withdrawn.in_grace(now) {
        match net {
            ipnet::IpNet::V4(n) => v4.push((n.network(), n.prefix_len())),
            ipnet::IpNet::V6(n) => v6.push((n.network(), n.prefix_len())),
        }
    }
    (v4, v6)
}

/// The outer addresses of `snap`'s tunnels, by family.
pub(super) fn tunnel_remotes(snap: &Snapshot) -> (Vec<std::net::Ipv4Addr>, Vec<std::net::Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for t in &snap.tunnels {
        match t.gre.endpoints {
            gre::Endpoints::V4 { remote, .. } => v4.push(remote),
            gre::Endpoints::V6 { remote, .. } => v6.push(remote),
        }
    }
    v4.sort_unstable();
    v4.dedup();
    v6.sort_unstable();
    v6.dedup();
    (v4, v6)
}

/// Everything the XDP program reads from `snap`: its owned prefixes, then its
/// configuration, tunnel remotes and soft-unicast tables ([`program_tables`]), as `run`
/// programs it at start (a reload widens, then narrows). Tests hold the program to the
/// pipeline on one snapshot with it.
pub fn program_xdp(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    program.set_owned_v4(&snap.owned_v4())?;
    program.set_owned_v6(&snap.owned_v6())?;
    program_tables(program, snap)
}

/// The XDP program's configuration, tunnel remotes and soft-unicast tables from `snap`.
pub(super) fn program_tables(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    let (v4, v6) = tunnel_remotes(snap);
    program.set_tunnel_remotes(&v4, &v6)?;
    program_egress_and_config(program, snap)
}

/// The XDP program's configuration and soft-unicast tables from `snap` (its tunnel remotes
/// left as they are).
pub(super) fn program_egress_and_config(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    let su = snap.soft_unicast.as_ref();
    let mut egress = transitd_bpf::EgressTables::default();
    if let Some(su) = su {
        let slices = usize::from(su.plan.slices_per_ip);
        let index: std::collections::HashMap<&str, u16> =
            su.owners.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        egress.addresses.reserve(su.plan.owners.len());
        egress.owners.reserve(su.plan.owners.len() * slices);
        for (ip, slice_owners) in &su.plan.owners {
            egress.addresses.push((std::net::Ipv4Addr::from(*ip), su.owners.data_centre(*ip).unwrap_or(u16::MAX)));
            egress.owners.extend(slice_owners.iter().map(|o| index.get(o.as_str()).copied().unwrap_or(u16::MAX)));
        }
        egress.peers = su.server_backbone.iter().chain(&su.dc_backbone_of).copied().collect();
        egress.peers.sort_unstable();
        egress.peers.dedup();
    }
    let config = transitd_bpf::XdpConfig {
        anycast: std::net::Ipv4Addr::from(snap.anycast),
        anycast_v6: snap.anycast_v6,
        soft_unicast: su.map(|su| transitd_bpf::SoftUnicastConfig {
            backbone: su.backbone,
            dc_backbone: su.dc_backbone,
            key_id: su.key_id,
            this_server: su.this_server,
            this_dc: su.this_dc,
            reserved_ports: su.plan.spec.reserved_ports,
            slice_size: su.plan.spec.slice_size,
            slices: u32::from(su.plan.slices_per_ip),
        }),
        gre_not_ours_pass: snap.gre_unsupported == crate::snapshot::Fate::Pass,
        mpls_redirect: snap.mpls == crate::snapshot::Fate::Drop,
        pmtu_redirect: snap.path_mtu_discovery,
        unbound_queue: match snap.unbound_queue {
            crate::snapshot::Fate::Pass => transitd_bpf::UnboundQueue::Pass,
            crate::snapshot::Fate::Drop => transitd_bpf::UnboundQueue::Drop,
        },
        config_mac: Some(snap.eth.src).filter(|mac| *mac != [0; 6]),
    };
    program.publish(&config, &egress)
}
