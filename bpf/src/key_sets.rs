//! The maps that hold sets of keys (each value 1): the owned prefixes (LPM tries) and the
//! outer addresses of the tunnels' routers, each replaced by its difference from what was
//! last written.

use std::net::{Ipv4Addr, Ipv6Addr};

use libbpf_rs::{MapCore, MapFlags};

use crate::{BpfError, KeySet, MAX_TUNNEL_REMOTES, XdpProgram};

impl XdpProgram {
    /// Replaces the owned IPv4 prefixes ([`XdpProgram::replace_keys`]).
    pub fn set_owned_v4(&self, prefixes: &[(Ipv4Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        self.replace_keys(&self.skel.maps.owned_v4, "owned_v4", keys)
    }

    /// Replaces the outer addresses of the configured tunnels' routers: GRE to the anycast
    /// address from elsewhere is not ours.
    pub fn set_tunnel_remotes(&self, v4: &[Ipv4Addr], v6: &[Ipv6Addr]) -> Result<(), BpfError> {
        if v4.len() > MAX_TUNNEL_REMOTES || v6.len() > MAX_TUNNEL_REMOTES {
            return Err(BpfError::TooLarge {
                what: "tunnel remotes",
                limit: format!("{MAX_TUNNEL_REMOTES} per address family"),
            });
        }
        self.replace_keys(
            &self.skel.maps.tunnel_remotes_v4,
            "tunnel_remotes_v4",
            v4.iter().map(|a| a.octets().to_vec()).collect(),
        )?;
        self.replace_keys(
            &self.skel.maps.tunnel_remotes_v6,
            "tunnel_remotes_v6",
            v6.iter().map(|a| a.octets().to_vec()).collect(),
        )
    }

    /// Makes `keys` the keys of `map` (values 1): adds the new ones first, then removes the
    /// stale ones, so a key in both the old and the new set is never missing. Only the
    /// difference from what was last written is written (one system call per key: a reload
    /// that changes a few of 32,768 prefixes makes a few calls, not 100,000, which at the
    /// limits took long enough on the supervisor's thread to worry BGP's silence check); a
    /// map whose last update failed is read back whole.
    fn replace_keys(&self, map: &impl MapCore, name: &'static str, keys: KeySet) -> Result<(), BpfError> {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Taken out: if this update fails half-way, the map is unknown until read back.
        let last = written.remove(name);
        let err = |source| BpfError::Map { map: name, source };
        for key in keys.iter().filter(|k| last.as_ref().is_none_or(|l| !l.contains(*k))) {
            map.update(key, &[1], MapFlags::ANY).map_err(err)?;
        }
        let stale: Vec<Vec<u8>> = match &last {
            Some(last) => last.difference(&keys).cloned().collect(),
            None => map.keys().filter(|k| !keys.contains(k)).collect(),
        };
        for key in stale {
            map.delete(&key).map_err(err)?;
        }
        written.insert(name, keys);
        Ok(())
    }

    /// Replaces the owned IPv6 prefixes.
    pub fn set_owned_v6(&self, prefixes: &[(Ipv6Addr, u8)]) -> Result<(), BpfError> {
        let keys = prefixes.iter().map(|(a, len)| lpm_key(*len, &a.octets())).collect();
        self.replace_keys(&self.skel.maps.owned_v6, "owned_v6", keys)
    }
}

/// An LPM trie key: the prefix length (host order), then the address bytes.
fn lpm_key(len: u8, addr: &[u8]) -> Vec<u8> {
    let mut key = u32::from(len).to_ne_bytes().to_vec();
    key.extend_from_slice(addr);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_is_replaced_by_its_difference_and_read_back_after_a_failure() {
        let program = XdpProgram::load().expect("load the program (needs root)");
        let in_map = |p: &XdpProgram| -> KeySet { p.skel.maps.owned_v4.keys().collect() };
        let prefixes = |list: &[([u8; 4], u8)]| -> Vec<(Ipv4Addr, u8)> {
            list.iter().map(|&(a, len)| (Ipv4Addr::from(a), len)).collect()
        };
        let keys_of =
            |list: &[(Ipv4Addr, u8)]| -> KeySet { list.iter().map(|(a, l)| lpm_key(*l, &a.octets())).collect() };
        let a = prefixes(&[([203, 0, 113, 0], 24), ([198, 18, 0, 0], 15), ([192, 0, 2, 1], 32)]);
        let b = prefixes(&[([203, 0, 113, 0], 24), ([100, 64, 0, 0], 10)]);
        program.set_owned_v4(&a).unwrap();
        assert_eq!(in_map(&program), keys_of(&a));
        program.set_owned_v4(&b).unwrap();
        assert_eq!(in_map(&program), keys_of(&b));
        // The map as a half-failed update leaves it (a key no set holds) and the record of
        // it dropped, as the failure drops it: read back whole, the stray key goes too.
        program.skel.maps.owned_v4.update(&lpm_key(32, &[9, 9, 9, 9]), &[1], MapFlags::ANY).unwrap();
        program.written.lock().unwrap().remove("owned_v4");
        program.set_owned_v4(&a).unwrap();
        assert_eq!(in_map(&program), keys_of(&a));
        program.set_owned_v4(&[]).unwrap();
        assert!(in_map(&program).is_empty());
    }
}
