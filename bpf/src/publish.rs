//! Publishing a configuration: the program's `config` and soft-unicast's tables (`maps.h`'s
//! structs, field for field) are written into the slot the program is not reading, once no
//! run can still be reading it, then `config_slot` switches to it.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::{MapCore, MapFlags};
use zerocopy::{Immutable, IntoBytes};

use crate::{
    BpfError, CONFIG_SLOTS, EgressTables, MAX_BACKBONE_PEERS, MAX_EGRESS_ADDRS, MAX_EGRESS_SLICES, UnboundQueue,
    XdpConfig, XdpProgram,
};

/// `struct transitd_config` of `maps.h`, field for field: addresses in network order, the
/// rest in host order. Its layout is checked against the compiled program's own type (BTF)
/// in a test, so the bytes written are the bytes the program reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct ConfigValue {
    slot: u32,
    anycast_v4: [u8; 4],
    has_anycast_v6: u32,
    anycast_v6: [u8; 16],
    su_enabled: u32,
    backbone_v4: [u8; 4],
    dc_backbone_v4: [u8; 4],
    key_id: u32,
    this_server: u16,
    this_dc: u16,
    reserved_ports: u16,
    slice_size: u16,
    slices: u32,
    gre_not_ours_pass: u32,
    unbound_action: u32,
    mpls_redirect: u32,
    pmtu_redirect: u32,
    host_mac: [u8; 6],
    check_host_mac: u16,
    config_mac: [u8; 6],
    has_config_mac: u16,
}

/// `struct egress_addr` of `maps.h`: an egress address's data centre and row.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct EgressAddrValue {
    dc: u16,
    pad: u16,
    row: u32,
}

/// `struct egress_key` of `maps.h`: an address (network order) in a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
struct EgressKey {
    slot: u32,
    addr: [u8; 4],
}

/// XDP actions (`enum xdp_action`).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// A map-in-map the program never reads, kept for what updating one does: the kernel
/// returns from the update only after every BPF program run that began before it has
/// ended (`maybe_wait_bpf_programs` in `kernel/bpf/syscall.c`: an RCU grace period, the
/// promise that "all non-sleepable programs that could be running use the new map
/// value"; the kernel's own selftests wait this way). Without it a run that read
/// `config_slot` just before a switch could still be reading the old slot when the next
/// publication starts writing there (two reloads in quick succession, or a run held up
/// by a preemptible kernel).
pub(super) struct ReaderBarrier {
    outer: libbpf_rs::MapHandle,
    inner: libbpf_rs::MapHandle,
}

impl ReaderBarrier {
    pub(super) fn new() -> Result<ReaderBarrier, BpfError> {
        use libbpf_rs::{MapHandle, MapType, libbpf_sys::bpf_map_create_opts};
        let plain = bpf_map_create_opts { sz: size_of::<bpf_map_create_opts>() as _, ..Default::default() };
        let inner = MapHandle::create(MapType::Array, Some("transitd_rcu_in"), 4, 4, 1, &plain)
            .map_err(|source| BpfError::Map { map: "transitd_rcu_in", source })?;
        let inner_fd = u32::try_from(inner.as_fd().as_raw_fd()).unwrap_or(u32::MAX);
        let of_maps = bpf_map_create_opts { inner_map_fd: inner_fd, ..plain };
        let outer = MapHandle::create(MapType::ArrayOfMaps, Some("transitd_rcu"), 4, 4, 1, &of_maps)
            .map_err(|source| BpfError::Map { map: "transitd_rcu", source })?;
        Ok(ReaderBarrier { outer, inner })
    }

    /// Returns once every program run that began before the call has ended.
    pub(super) fn wait(&self) -> Result<(), BpfError> {
        let inner_fd = u32::try_from(self.inner.as_fd().as_raw_fd()).unwrap_or(u32::MAX);
        self.outer
            .update(&0u32.to_ne_bytes(), &inner_fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "transitd_rcu", source })
    }
}

impl XdpProgram {
    /// Publishes the program's configuration (the anycast addresses GRE arrives at, IPv6
    /// optional, and soft-unicast's scalars) with soft-unicast's tables. Both are written
    /// into the slot the program is not reading, then the program switches to it: a packet
    /// sees the old configuration and tables or the new ones, never a mix (an owner row of
    /// one plan under an address of the other would steer return traffic wrong). Before it
    /// writes, it waits until no run of the program can still be reading that slot from
    /// before the last switch (a grace period, milliseconds). On error the program goes on
    /// reading what it read.
    pub fn publish(&self, config: &XdpConfig, egress: &EgressTables) -> Result<(), BpfError> {
        let mut active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = (*active + 1) % CONFIG_SLOTS;
        self.readers.wait()?;
        self.stage(next, config, egress)?;
        self.switch_to(next)?;
        *active = next;
        Ok(())
    }

    /// Writes `config` and `egress` into `slot`, which the program must not be reading.
    fn stage(&self, slot: u32, config: &XdpConfig, egress: &EgressTables) -> Result<(), BpfError> {
        let EgressTables { addresses, owners, peers } = egress;
        if addresses.len() > MAX_EGRESS_ADDRS || owners.len() > MAX_EGRESS_SLICES || peers.len() > MAX_BACKBONE_PEERS {
            return Err(BpfError::TooLarge {
                what: "soft-unicast plan",
                limit: format!(
                    "{MAX_EGRESS_ADDRS} addresses, {MAX_EGRESS_SLICES} slices, {MAX_BACKBONE_PEERS} backbone peers"
                ),
            });
        }
        let slices = config.soft_unicast.as_ref().map_or(0, |su| su.slices as usize);
        if owners.len() != addresses.len() * slices {
            return Err(BpfError::Inconsistent(format!(
                "{} owners for {} addresses of {slices} slices",
                owners.len(),
                addresses.len()
            )));
        }
        let maps = &self.skel.maps;
        // Rows past this plan's in the slot's half are left from an older one: no address
        // of this slot leads to them.
        let base = slot * MAX_EGRESS_SLICES as u32;
        let keys: Vec<u8> = (0..owners.len() as u32).flat_map(|i| (base + i).to_ne_bytes()).collect();
        let values: Vec<u8> = owners.iter().flat_map(|o| o.to_ne_bytes()).collect();
        update_batch(&maps.egress_owners, "egress_owners", &keys, &values, owners.len())?;
        let key = |addr: &Ipv4Addr| EgressKey { slot, addr: addr.octets() }.as_bytes().to_vec();
        let keys: Vec<Vec<u8>> = addresses.iter().map(|(addr, _)| key(addr)).collect();
        let values: Vec<u8> = addresses
            .iter()
            .enumerate()
            .flat_map(|(row, (_, dc))| EgressAddrValue { dc: *dc, pad: 0, row: row as u32 }.as_bytes().to_vec())
            .collect();
        // The slot's stale keys go first: each hash map holds two slots' worth, and the
        // slot being written still holds the plan before last, which the new keys would
        // otherwise have to fit beside (at the limits they do not: E2BIG).
        remove_stale(&maps.egress_addrs, "egress_addrs", &slot.to_ne_bytes(), &keys)?;
        update_batch(&maps.egress_addrs, "egress_addrs", &keys.concat(), &values, keys.len())?;
        let keys: Vec<Vec<u8>> = peers.iter().map(key).collect();
        remove_stale(&maps.backbone_peers, "backbone_peers", &slot.to_ne_bytes(), &keys)?;
        update_batch(&maps.backbone_peers, "backbone_peers", &keys.concat(), &vec![1; keys.len()], keys.len())?;
        let host_mac = *self.host_mac.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = config_value(slot, config, host_mac);
        maps.config
            .update(&slot.to_ne_bytes(), value.as_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "config", source })
    }

    /// Makes the program read `slot` from its next packet on (one aligned 4-byte write).
    fn switch_to(&self, slot: u32) -> Result<(), BpfError> {
        self.skel
            .maps
            .config_slot
            .update(&0u32.to_ne_bytes(), &slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map { map: "config_slot", source })
    }
}

/// `config` as the program's `struct transitd_config`, in `slot`.
fn config_value(slot: u32, config: &XdpConfig, host_mac: Option<[u8; 6]>) -> ConfigValue {
    let mut value = ConfigValue {
        slot,
        host_mac: host_mac.unwrap_or_default(),
        check_host_mac: u16::from(host_mac.is_some()),
        config_mac: config.config_mac.unwrap_or_default(),
        has_config_mac: u16::from(config.config_mac.is_some()),
        anycast_v4: config.anycast.octets(),
        gre_not_ours_pass: u32::from(config.gre_not_ours_pass),
        mpls_redirect: u32::from(config.mpls_redirect),
        pmtu_redirect: u32::from(config.pmtu_redirect),
        unbound_action: match config.unbound_queue {
            UnboundQueue::Pass => XDP_PASS,
            UnboundQueue::Drop => XDP_DROP,
        },
        ..ConfigValue::default()
    };
    if let Some(v6) = config.anycast_v6 {
        value.has_anycast_v6 = 1;
        value.anycast_v6 = v6.octets();
    }
    if let Some(su) = &config.soft_unicast {
        value.su_enabled = 1;
        value.backbone_v4 = su.backbone.octets();
        value.dc_backbone_v4 = su.dc_backbone.octets();
        value.key_id = su.key_id;
        value.this_server = su.this_server;
        value.this_dc = su.this_dc;
        value.reserved_ports = su.reserved_ports;
        value.slice_size = su.slice_size;
        value.slices = su.slices;
    }
    value
}

/// Writes `count` entries in one system call (`keys` and `values` back to back).
fn update_batch(
    map: &impl MapCore,
    name: &'static str,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<(), BpfError> {
    if count == 0 {
        return Ok(());
    }
    let count =
        u32::try_from(count).map_err(|_| BpfError::TooLarge { what: name, limit: "u32::MAX entries".into() })?;
    map.update_batch(keys, values, count, MapFlags::ANY, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: name, source })
}

/// Deletes every key of `map` that starts with `prefix` (a slot; empty: every key) and is
/// not in `keep`.
fn remove_stale(map: &impl MapCore, name: &'static str, prefix: &[u8], keep: &[Vec<u8>]) -> Result<(), BpfError> {
    let keep: std::collections::HashSet<&[u8]> = keep.iter().map(Vec::as_slice).collect();
    let stale: Vec<Vec<u8>> = map.keys().filter(|k| k.starts_with(prefix) && !keep.contains(k.as_slice())).collect();
    for key in stale {
        map.delete(&key).map_err(|source| BpfError::Map { map: name, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::super::skel::types::{egress_addr, egress_key, transitd_config};
    use super::super::tests::{judge, soft_unicast, udp_to_egress};
    use super::*;

    /// The values written into the maps have the layout of the program's own types, which
    /// libbpf-cargo generates from the compiled object's BTF (that is, from maps.h).
    #[test]
    fn map_values_match_the_programs_types() {
        macro_rules! same {
            ($ours:ty, $theirs:ty, [$($f:ident),*]) => {
                assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), stringify!($ours));
                $(assert_eq!(offset_of!($ours, $f), offset_of!($theirs, $f), stringify!($f));)*
            };
        }
        same!(
            ConfigValue,
            transitd_config,
            [
                slot,
                anycast_v4,
                has_anycast_v6,
                anycast_v6,
                su_enabled,
                backbone_v4,
                dc_backbone_v4,
                key_id,
                this_server,
                this_dc,
                reserved_ports,
                slice_size,
                slices,
                gre_not_ours_pass,
                unbound_action,
                mpls_redirect,
                pmtu_redirect,
                host_mac,
                check_host_mac,
                config_mac,
                has_config_mac
            ]
        );
        same!(EgressAddrValue, egress_addr, [dc, pad, row]);
        same!(EgressKey, egress_key, [slot, addr]);
    }

    /// A configuration is written beside the one the program reads and seen only once
    /// switched to: whole, never a mix; a refused one changes nothing.
    #[test]
    fn the_program_sees_a_publication_whole_or_not_at_all() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (mine_first, theirs_first) = (soft_unicast([0, 1]), soft_unicast([1, 0]));
        let low = udp_to_egress(2000);
        assert_eq!(judge(&program, &low), "passed", "nothing published: nothing is transitd's");
        program.publish(&mine_first.0, &mine_first.1).unwrap();
        assert_eq!(judge(&program, &low), "egress_local", "slice 0 is this server's");
        assert_eq!(judge(&program, &udp_to_egress(40000)), "no_socket", "slice 1 is another's: redirected");

        // Staged, not yet switched to: the program still reads the first plan.
        let next = (*program.active.lock().unwrap() + 1) % CONFIG_SLOTS;
        program.stage(next, &theirs_first.0, &theirs_first.1).unwrap();
        assert_eq!(judge(&program, &low), "egress_local");
        program.switch_to(next).unwrap();
        *program.active.lock().unwrap() = next;
        assert_eq!(judge(&program, &low), "no_socket", "the second plan, once switched to");

        let (config, mut short) = soft_unicast([0, 1]);
        short.owners.pop();
        assert!(matches!(program.publish(&config, &short), Err(BpfError::Inconsistent(_))));
        assert_eq!(judge(&program, &low), "no_socket", "a refused publication changes nothing");

        // Into the slot of the second plan, a third with another address: the second's
        // address is gone from it, not mixed in.
        program.publish(&mine_first.0, &mine_first.1).unwrap();
        let (config, mut other) = soft_unicast([1, 0]);
        other.addresses[0].0 = Ipv4Addr::new(192, 0, 2, 11);
        program.publish(&config, &other).unwrap();
        assert_eq!(judge(&program, &low), "passed", "192.0.2.10 is no egress address of the slot read");
        program.publish(&theirs_first.0, &theirs_first.1).unwrap();
        assert_eq!(judge(&program, &low), "no_socket");
    }

    /// Plans as large as a slot holds follow each other: the plan before last, still in
    /// the slot being written, is cleared before the new one is written beside the
    /// running one (else the maps, two slots large, overflow).
    #[test]
    fn plans_of_the_largest_size_replace_each_other() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let (mut config, _) = soft_unicast([0, 1]);
        if let Some(su) = config.soft_unicast.as_mut() {
            su.slices = 1;
        }
        let plan = |first: u32| EgressTables {
            addresses: (0..MAX_EGRESS_ADDRS as u32).map(|i| (Ipv4Addr::from(first + i), 0)).collect(),
            owners: vec![0; MAX_EGRESS_ADDRS],
            peers: (0..MAX_BACKBONE_PEERS as u32).map(|i| Ipv4Addr::from(first + i)).collect(),
        };
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        for round in 0..4 {
            // Each plan renumbers every address and peer: nothing of one is kept in the next.
            let tables = plan(base + round * MAX_EGRESS_ADDRS as u32);
            program.publish(&config, &tables).unwrap_or_else(|e| panic!("plan {round}: {e}"));
        }
    }
}
