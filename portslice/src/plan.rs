//! Slice plans: which server owns which (egress address, port slice).
//!
//! An address's ports from `reserved_ports` up are cut into `slices_per_ip` slices of
//! `slice_size` ports (ports above the last whole slice, and below `reserved_ports`, belong
//! to no server). Every slice of every address is owned by exactly one server of the
//! address's data centre, and a data centre's slices are spread evenly: each server owns
//! ⌊T/n⌋ or ⌈T/n⌉ of its T slices.
//!
//! Re-planning from a previous plan (a server added or removed, an address moved) moves as
//! few slices as possible: a slice keeps its owner unless the owner left or owns more than
//! its share, and the servers that keep the larger shares are those already holding the
//! most. Every slice that changes owner is listed as a [`Move`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

/// Tags of an egress address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tags {
    /// ISO 3166-1 alpha-2 country the address should geolocate to (`GB`).
    pub country: String,
    /// ISO 3166-2 region (`GB-ENG`), optional.
    pub region: String,
    /// City, optional.
    pub city: String,
    /// Trust class (`trusted`, `untrusted`, ...): which traffic may egress from it.
    pub class: String,
}

/// A range of egress addresses with their tags and data centre.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRange {
    /// Network address.
    pub network: u32,
    /// Prefix length.
    pub prefix_len: u8,
    /// Tags.
    pub tags: Tags,
    /// Data centre (by name) the addresses are used in.
    pub data_centre: String,
}

impl EgressRange {
    /// First and last address.
    pub fn bounds(&self) -> (u32, u32) {
        let host = u32::MAX.checked_shr(u32::from(self.prefix_len)).unwrap_or(0);
        (self.network & !host, self.network | host)
    }
}

/// A data centre and its servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCentre {
    /// Name (`lhr`).
    pub name: String,
    /// Server names, unique across all data centres.
    pub servers: Vec<String>,
}

/// What a plan is made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSpec {
    /// Ports per slice.
    pub slice_size: u16,
    /// Ports below this are never in a slice.
    pub reserved_ports: u16,
    /// Egress addresses.
    pub egress: Vec<EgressRange>,
    /// Data centres.
    pub data_centres: Vec<DataCentre>,
}

/// Why a spec cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Slice size zero, or no whole slice fits above the reserved ports.
    #[error("slice_size {slice_size} with reserved_ports {reserved} leaves no whole slice")]
    NoSlices {
        /// Slice size.
        slice_size: u16,
        /// Reserved ports.
        reserved: u16,
    },
    /// One-port slices from port 0: 65,536 slices, one more than a slice index counts.
    #[error("slice_size 1 with reserved_ports 0 makes 65536 slices, one more than an address can have: reserve port 0")]
    TooManySlices,
    /// An egress range names an unknown data centre.
    #[error("egress range {range} names unknown data centre `{dc}`")]
    UnknownDataCentre {
        /// The range.
        range: String,
        /// The name.
        dc: String,
    },
    /// Two egress ranges overlap.
    #[error("egress ranges {a} and {b} overlap")]
    Overlap {
        /// One range.
        a: String,
        /// The other.
        b: String,
    },
    /// A server name appears twice.
    #[error("server `{0}` appears twice")]
    DuplicateServer(String),
    /// A data centre with egress addresses has no server to own them.
    #[error("data centre `{0}` has egress addresses but no servers")]
    NoServers(String),
}

/// Why a plan (read from a file) does not fit its own spec: edited by hand, or written by
/// something other than [`Plan::replan`]. Compiled into an [`OwnerTable`](crate::OwnerTable)
/// as it is, it would give slices to servers that do not exist or take addresses nobody
/// configured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanMismatch {
    /// The spec cannot be planned at all.
    #[error(transparent)]
    Spec(#[from] PlanError),
    /// Slices per address other than the spec's geometry gives.
    #[error("slices_per_ip is {found}, the spec gives {expected}")]
    SlicesPerIp {
        /// In the plan.
        found: u16,
        /// From the spec.
        expected: u16,
    },
    /// An egress address of the spec without owners.
    #[error("egress address {} has no owners", std::net::Ipv4Addr::from(*.0))]
    Missing(u32),
    /// Owners for an address outside the spec's egress ranges.
    #[error("{} is not an egress address of the spec", std::net::Ipv4Addr::from(*.0))]
    NotEgress(u32),
    /// An address with another number of slices than the plan's.
    #[error("egress address {} has {found} slice owners, not {expected}", std::net::Ipv4Addr::from(*ip))]
    Slices {
        /// The address.
        ip: u32,
        /// Owners listed.
        found: usize,
        /// Slices per address.
        expected: u16,
    },
    /// A slice owned by a name that is no server of the address's data centre.
    #[error("egress address {} slice {slice} is owned by `{owner}`, not a server of data centre `{dc}`", std::net::Ipv4Addr::from(*ip))]
    Owner {
        /// The address.
        ip: u32,
        /// The slice.
        slice: usize,
        /// The name found.
        owner: String,
        /// The address's data centre.
        dc: String,
    },
}

/// A slice that changed owner in a re-plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The address.
    pub ip: u32,
    /// Slice index.
    pub slice: u16,
    /// The previous owner (`None`: the slice is new).
    pub from: Option<String>,
    /// The new owner.
    pub to: String,
}

/// A slice plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What it was made from.
    pub spec: PlanSpec,
    /// Slices per address.
    pub slices_per_ip: u16,
    /// Owner of each slice: `owners[ip][slice]`, server names, for every egress address.
    pub owners: BTreeMap<u32, Vec<String>>,
}

fn cidr(r: &EgressRange) -> String {
    format!("{}/{}", std::net::Ipv4Addr::from(r.network), r.prefix_len)
}

/// Whole slices of `slice_size` ports above the first `reserved` ports of an address.
pub fn slices_per_ip(slice_size: u16, reserved: u16) -> Result<u16, PlanError> {
    let usable = 65536u32 - u32::from(reserved);
    match usable.checked_div(u32::from(slice_size)) {
        Some(0) | None => Err(PlanError::NoSlices { slice_size, reserved }),
        Some(n) => u16::try_from(n).map_err(|_| PlanError::TooManySlices),
    }
}

impl PlanSpec {
    /// Slices per address.
    pub fn slices_per_ip(&self) -> Result<u16, PlanError> {
        slices_per_ip(self.slice_size, self.reserved_ports)
    }

    /// True when `other` makes the same plan as this: the same slice geometry, the same
    /// ranges in the same data centres, the same servers in each, in whatever order they
    /// are written and whatever the ranges' tags (the geofeed's, which no owner depends on).
    pub fn plans_alike(&self, other: &PlanSpec) -> bool {
        type Canonical<'a> = (u16, u16, Vec<(u32, u8, &'a str)>, Vec<(&'a str, Vec<&'a str>)>);
        fn canonical(s: &PlanSpec) -> Canonical<'_> {
            let mut egress: Vec<_> =
                s.egress.iter().map(|r| (r.network, r.prefix_len, r.data_centre.as_str())).collect();
            egress.sort_unstable();
            let mut dcs: Vec<_> = s
                .data_centres
                .iter()
                .map(|d| {
                    let mut servers: Vec<&str> = d.servers.iter().map(String::as_str).collect();
                    servers.sort_unstable();
                    (d.name.as_str(), servers)
                })
                .collect();
            dcs.sort_unstable();
            (s.slice_size, s.reserved_ports, egress, dcs)
        }
        canonical(self) == canonical(other)
    }

    fn validate(&self) -> Result<(), PlanError> {
        self.slices_per_ip()?;
        let mut seen = HashMap::new();
        for dc in &self.data_centres {
            for s in &dc.servers {
                if seen.insert(s.clone(), ()).is_some() {
                    return Err(PlanError::DuplicateServer(s.clone()));
                }
            }
        }
        let mut ranges: Vec<&EgressRange> = self.egress.iter().collect();
        ranges.sort_by_key(|r| r.bounds());
        for w in ranges.windows(2) {
            if w[1].bounds().0 <= w[0].bounds().1 {
                return Err(PlanError::Overlap { a: cidr(w[0]), b: cidr(w[1]) });
            }
        }
        for r in &self.egress {
            match self.data_centres.iter().find(|d| d.name == r.data_centre) {
                None => return Err(PlanError::UnknownDataCentre { range: cidr(r), dc: r.data_centre.clone() }),
                Some(d) if d.servers.is_empty() => return Err(PlanError::NoServers(d.name.clone())),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Whether `other` cuts addresses into the same slices (`slice_size`, `reserved_ports`):
    /// a slice of one is a slice of the other, and their owners compare.
    pub fn same_slices(&self, other: &Plan) -> bool {
        (self.spec.slice_size, self.spec.reserved_ports) == (other.spec.slice_size, other.spec.reserved_ports)
    }

    /// Plans `spec` afresh (no previous plan).
    pub fn new(spec: PlanSpec) -> Result<Plan, PlanError> {
        Plan::replan(spec, None).map(|(p, _)| p)
    }

    /// Plans `spec`, keeping as much of `previous` as a balanced plan allows; returns the
    /// plan and every slice whose owner changed.
    pub fn replan(spec: PlanSpec, previous: Option<&Plan>) -> Result<(Plan, Vec<Move>), PlanError> {
        spec.validate()?;
        let slices = spec.slices_per_ip()?;
        // A previous plan with another slice geometry has no slice in common with this one
        // (the same count of slices over other ports included: each slice's ports moved).
        let previous = previous.filter(|p| {
            p.slices_per_ip == slices
                && p.spec.reserved_ports == spec.reserved_ports
                && p.spec.slice_size == spec.slice_size
        });
        let mut owners: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut moves = Vec::new();
        for dc in &spec.data_centres {
            let mut dc_slices: Vec<(u32, u16)> = Vec::new();
            for r in spec.egress.iter().filter(|r| r.data_centre == dc.name) {
                let (lo, hi) = r.bounds();
                for ip in lo..=hi {
                    dc_slices.extend((0..slices).map(|s| (ip, s)));
                }
            }
            // In address order, not the section's: servers whose configurations list the
            // same ranges in another order must make the same plan.
            dc_slices.sort_unstable();
            if dc_slices.is_empty() {
                continue;
            }
            let assigned = balance(&dc_slices, &dc.servers, |ip, s| {
                previous.and_then(|p| p.owners.get(&ip)).and_then(|o| o.get(usize::from(s))).cloned()
            });
            for ((ip, s), owner) in dc_slices.iter().zip(assigned) {
                let old = previous.and_then(|p| p.owners.get(ip)).and_then(|o| o.get(usize::from(*s))).cloned();
                if old.as_ref() != Some(&owner) {
                    moves.push(Move { ip: *ip, slice: *s, from: old, to: owner.clone() });
                }
                owners.entry(*ip).or_insert_with(|| vec![String::new(); usize::from(slices)])[usize::from(*s)] = owner;
            }
        }
        Ok((Plan { spec, slices_per_ip: slices, owners }, moves))
    }

    /// Checks that the plan fits its own spec: the spec's geometry, owners for exactly the
    /// spec's egress addresses, a whole row of them each, every one a server of the
    /// address's data centre. What [`Plan::replan`] makes always does.
    pub fn check(&self) -> Result<(), PlanMismatch> {
        self.spec.validate()?;
        let expected = self.spec.slices_per_ip()?;
        if self.slices_per_ip != expected {
            return Err(PlanMismatch::SlicesPerIp { found: self.slices_per_ip, expected });
        }
        let mut addresses = 0u64;
        for r in &self.spec.egress {
            let (lo, hi) = r.bounds();
            let dc = self.spec.data_centres.iter().find(|d| d.name == r.data_centre);
            for ip in lo..=hi {
                let owners = self.owners.get(&ip).ok_or(PlanMismatch::Missing(ip))?;
                if owners.len() != usize::from(expected) {
                    return Err(PlanMismatch::Slices { ip, found: owners.len(), expected });
                }
                for (slice, owner) in owners.iter().enumerate() {
                    if !dc.is_some_and(|d| d.servers.contains(owner)) {
                        let dc = r.data_centre.clone();
                        return Err(PlanMismatch::Owner { ip, slice, owner: owner.clone(), dc });
                    }
                }
                addresses += 1;
            }
        }
        // Every address of the spec is listed (ranges do not overlap): anything more is not.
        if self.owners.len() as u64 != addresses {
            let stray = self.owners.keys().find(|ip| self.data_centre_of(**ip).is_none());
            return Err(PlanMismatch::NotEgress(stray.copied().unwrap_or_default()));
        }
        Ok(())
    }

    /// The port range `[first, last]` of slice `slice`.
    pub fn slice_ports(&self, slice: u16) -> (u16, u16) {
        let first = u32::from(self.spec.reserved_ports) + u32::from(slice) * u32::from(self.spec.slice_size);
        (first as u16, (first + u32::from(self.spec.slice_size) - 1) as u16)
    }

    /// Every (address, first port, last port) `server` owns, in address order.
    pub fn slices_of(&self, server: &str) -> Vec<(u32, u16, u16)> {
        let mut out = Vec::new();
        for (ip, owners) in &self.owners {
            for (s, o) in owners.iter().enumerate() {
                if o == server {
                    let (a, b) = self.slice_ports(s as u16);
                    out.push((*ip, a, b));
                }
            }
        }
        out
    }

    /// The data centre of each egress address.
    pub fn data_centre_of(&self, ip: u32) -> Option<&str> {
        self.spec.egress.iter().find(|r| (r.bounds().0..=r.bounds().1).contains(&ip)).map(|r| r.data_centre.as_str())
    }
}

/// Assigns `slices` to `servers` evenly, keeping `previous(slice)` owners where a balanced
/// assignment allows. Minimal: a slice moves only if its owner left or holds more than the
/// largest share it can keep.
fn balance(slices: &[(u32, u16)], servers: &[String], previous: impl Fn(u32, u16) -> Option<String>) -> Vec<String> {
    let n = servers.len();
    let index: HashMap<&str, usize> = servers.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let mut owner: Vec<Option<usize>> =
        slices.iter().map(|&(ip, s)| previous(ip, s).and_then(|o| index.get(o.as_str()).copied())).collect();
    let mut count = vec![0usize; n];
    for o in owner.iter().flatten() {
        count[*o] += 1;
    }
    // Shares: ⌊T/n⌋ each, one more for T mod n servers, those holding the most already (ties
    // by name), so that as few slices as possible must leave their owner.
    let (base, extra) = (slices.len() / n, slices.len() % n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(servers[a].cmp(&servers[b])));
    let mut target = vec![base; n];
    for &i in order.iter().take(extra) {
        target[i] += 1;
    }
    // Release the excess of each over-share server spread over its addresses, and over the
    // addresses the others released before it: one slice at a time (its highest there) by
    // `release_first`. What it keeps covers its addresses, and what they all free covers
    // the data centre's, so a server that joins gets slices of every address, and of every
    // range's tags (releasing the highest slices overall gave it only the last addresses':
    // a country short). In name order, as the free slices are handed out below: the plan
    // does not depend on the order the servers are listed in.
    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|&a, &b| servers[a].cmp(&servers[b]));
    let mut held: Vec<BTreeMap<u32, Vec<usize>>> = vec![BTreeMap::new(); n];
    for (k, o) in owner.iter().enumerate() {
        if let Some(i) = *o {
            held[i].entry(slices[k].0).or_default().push(k);
        }
    }
    let mut freed: HashMap<u32, usize> = HashMap::new();
    let mut kept = count;
    for &i in &by_name {
        // A heap, as a scan per slice released was slices × addresses (seconds at the
        // section's bounds). Only this server's releases change `freed` while it is read,
        // and each pushes its address again with the new count.
        let mut next: BinaryHeap<ReleaseOrder> =
            held[i].iter().map(|(&ip, ks)| release_first(ip, ks.len(), &freed)).collect();
        while kept[i] > target[i] {
            let Some((.., ip)) = next.pop() else { break };
            let Some(k) = held[i].get_mut(&ip).and_then(Vec::pop) else { break };
            owner[k] = None;
            kept[i] -= 1;
            *freed.entry(ip).or_default() += 1;
            let left = held[i].get(&ip).map_or(0, Vec::len);
            if left > 0 {
                next.push(release_first(ip, left, &freed));
            }
        }
    }
    // Hand the free slices to servers under their share, in name order, round robin.
    let mut cursor = 0;
    for o in owner.iter_mut().filter(|o| o.is_none()) {
        while kept[by_name[cursor % n]] >= target[by_name[cursor % n]] {
            cursor += 1;
        }
        let i = by_name[cursor % n];
        kept[i] += 1;
        *o = Some(i);
        cursor += 1;
    }
    owner.into_iter().map(|o| servers[o.expect("every slice was given an owner above")].clone()).collect()
}

/// Which of a server's addresses gives up a slice first: the greatest.
type ReleaseOrder = (bool, Reverse<usize>, usize, u32);

/// The order of address `ip`, where the server releasing holds `held` slices and `freed`
/// counts those all released so far: one it holds two or more of (it keeps a slice of each
/// it can); then the one the fewest have been freed from, so that what the servers over
/// their share free together covers every address (each breaking ties alike, by the highest
/// address, they all freed slices of the same addresses: a ninth server joining eight on a GB
/// and a DE address got six DE slices and no GB one); then the one it holds most of; then
/// the highest.
fn release_first(ip: u32, held: usize, freed: &HashMap<u32, usize>) -> ReleaseOrder {
    (held >= 2, Reverse(freed.get(&ip).copied().unwrap_or(0)), held, ip)
}
