//! `OwnerTable`: (address, port) → data centre and server in constant time, for the data
//! plane's return path.
//!
//! Addresses go through an open-addressing hash table (multiplicative hash, linear probing,
//! at most half full) to a dense index; the owner of `(index, slice)` is one array load.
//! Nothing allocates or branches on the number of addresses after the table is built.

use std::collections::HashMap;

use crate::plan::Plan;

/// Who owns a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Not an egress address.
    NotEgress,
    /// An egress address of data centre `dc`, but the port is in no slice (reserved, or
    /// above the last whole slice).
    Unsliced {
        /// Data centre index.
        dc: u16,
    },
    /// Server `server` of data centre `dc` owns it.
    Server {
        /// Data centre index.
        dc: u16,
        /// Server index (into [`OwnerTable::servers`]).
        server: u16,
    },
}

const EMPTY: u32 = u32::MAX;

/// The compiled ownership tables of a plan.
#[derive(Clone, Debug)]
pub struct OwnerTable {
    /// Hash slots: `(address, dense index)`; `EMPTY` index for free slots.
    slots: Vec<(u32, u32)>,
    shift: u32,
    /// Data centre of each dense index.
    dc_of: Vec<u16>,
    /// Server of each (dense index, slice).
    owners: Vec<u16>,
    slices: u32,
    reserved: u16,
    slice_size: u16,
    /// Data centre names, by index.
    pub data_centres: Vec<String>,
    /// Server names, by index.
    pub servers: Vec<String>,
    /// Data centre of each server.
    pub server_dc: Vec<u16>,
}

impl OwnerTable {
    /// Compiles `plan`.
    pub fn new(plan: &Plan) -> OwnerTable {
        let data_centres: Vec<String> = plan.spec.data_centres.iter().map(|d| d.name.clone()).collect();
        let mut servers = Vec::new();
        let mut server_dc = Vec::new();
        for (d, dc) in plan.spec.data_centres.iter().enumerate() {
            for s in &dc.servers {
                servers.push(s.clone());
                server_dc.push(d as u16);
            }
        }
        let server_index: HashMap<&str, u16> =
            servers.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        let n = plan.owners.len().max(1);
        let bits = (2 * n).next_power_of_two().trailing_zeros().max(1);
        let mut slots = vec![(0u32, EMPTY); 1 << bits];
        let shift = 32 - bits;
        let mut dc_of = Vec::with_capacity(n);
        let mut owners = Vec::with_capacity(n * usize::from(plan.slices_per_ip));
        for (i, (ip, slice_owners)) in plan.owners.iter().enumerate() {
            let mut h = hash(*ip, shift);
            while slots[h].1 != EMPTY {
                h = (h + 1) & (slots.len() - 1);
            }
            slots[h] = (*ip, i as u32);
            let dc = plan.data_centre_of(*ip).and_then(|d| data_centres.iter().position(|x| x == d)).unwrap_or(0);
            dc_of.push(dc as u16);
            // Exactly one row of `slices_per_ip` per address, whatever the plan's lists hold
            // (a checked plan's are whole): a short row, appended as it was, shifted every
            // later address's owners onto the wrong slices. What is missing is no one's.
            let row = slice_owners.iter().map(|o| server_index.get(o.as_str()).copied().unwrap_or(u16::MAX));
            owners.extend(row.chain(std::iter::repeat(u16::MAX)).take(usize::from(plan.slices_per_ip)));
        }
        OwnerTable {
            slots,
            shift,
            dc_of,
            owners,
            slices: u32::from(plan.slices_per_ip),
            reserved: plan.spec.reserved_ports,
            slice_size: plan.spec.slice_size,
            data_centres,
            servers,
            server_dc,
        }
    }

    /// How many slices each server owns, by its index in [`OwnerTable::servers`].
    pub fn slices_per_server(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.servers.len()];
        for &server in &self.owners {
            // u16::MAX: a slice no one owns.
            if let Some(count) = counts.get_mut(usize::from(server)) {
                *count += 1;
            }
        }
        counts
    }

    fn index(&self, ip: u32) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut h = hash(ip, self.shift);
        loop {
            let (key, i) = self.slots[h];
            if i == EMPTY {
                return None;
            }
            if key == ip {
                return Some(i as usize);
            }
            h = (h + 1) & mask;
        }
    }

    /// The data centre of an egress address.
    #[inline]
    pub fn data_centre(&self, ip: u32) -> Option<u16> {
        self.index(ip).map(|i| self.dc_of[i])
    }

    /// Who owns `port` of `ip`.
    #[inline]
    pub fn owner(&self, ip: u32, port: u16) -> Owner {
        let Some(i) = self.index(ip) else { return Owner::NotEgress };
        let dc = self.dc_of[i];
        let slice = port.checked_sub(self.reserved).map(|p| u32::from(p) / u32::from(self.slice_size));
        match slice {
            // A checked plan has a whole row per address; a short one reads as unsliced.
            Some(s) if s < self.slices => match self.owners.get(i * self.slices as usize + s as usize) {
                None | Some(&u16::MAX) => Owner::Unsliced { dc },
                Some(&server) => Owner::Server { dc, server },
            },
            _ => Owner::Unsliced { dc },
        }
    }

    /// Index of a server by name.
    pub fn server_index(&self, name: &str) -> Option<u16> {
        self.servers.iter().position(|s| s == name).map(|i| i as u16)
    }

    /// Index of a data centre by name.
    pub fn dc_index(&self, name: &str) -> Option<u16> {
        self.data_centres.iter().position(|s| s == name).map(|i| i as u16)
    }
}

#[inline]
fn hash(ip: u32, shift: u32) -> usize {
    // Fibonacci hashing: the top bits of ip × 2^32/φ spread consecutive addresses apart.
    (ip.wrapping_mul(0x9e37_79b9) >> shift) as usize
}
