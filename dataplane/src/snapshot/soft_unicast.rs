//! The compiled `[soft_unicast]` section: the slice plan, its ownership table, and where
//! every server and data centre is reached on the backbone.
//!
//! Every server of the fleet must compile the same plan, so that any of them sends a return
//! packet to the same owner: the plan is either made from the section alone (deterministic)
//! or read from the file `transitd plan` wrote, which must have been made from this same
//! section (so that a re-plan moves as few slices as possible, and says which).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::IpNet;
use portslice::{DataCentre, EgressRange, Owner, OwnerTable, Plan, PlanSpec, Tags};
use toml::Spanned;

use super::Builder;
use crate::config::{EgressSection, SoftUnicastSection};
use crate::limits;

/// Default ports per slice: 31 servers per address above 1024 reserved ports.
pub const DEFAULT_SLICE_SIZE: u16 = 2048;
/// Default reserved ports.
pub const DEFAULT_RESERVED_PORTS: u16 = 1024;
/// Default backbone key identifier ("SU").
pub const DEFAULT_BACKBONE_KEY: u32 = 0x5355;

/// Soft-unicast, compiled.
#[derive(Debug)]
pub struct SoftUnicast {
    /// The plan every server shares.
    pub plan: Plan,
    /// (address, port) → data centre and server.
    pub owners: OwnerTable,
    /// This server, as an [`OwnerTable`] server index.
    pub this_server: u16,
    /// This server's data centre, as an [`OwnerTable`] data-centre index.
    pub this_dc: u16,
    /// This server's backbone address: the source of the backbone GRE it sends.
    pub backbone: Ipv4Addr,
    /// This data centre's backbone address (other data centres send to it).
    pub dc_backbone: Ipv4Addr,
    /// Backbone address of each server, by server index.
    pub server_backbone: Vec<Ipv4Addr>,
    /// Backbone address of each data centre, by data-centre index.
    pub dc_backbone_of: Vec<Ipv4Addr>,
    /// The upper 24 bits of the backbone GRE key.
    pub key_id: u32,
    /// The egress prefixes (for the XDP program).
    pub egress: Vec<(Ipv4Addr, u8)>,
    /// Largest backbone packet, outer IP header included.
    pub backbone_mtu: usize,
}

impl SoftUnicast {
    /// The GRE key of a backbone packet on hop `hop` (1: to another data centre, 2: to a
    /// server of this one).
    pub const fn key(&self, hop: u8) -> u32 {
        (self.key_id << 8) | hop as u32
    }

    /// True when `owner`'s indices are servers and data centres of this configuration (an
    /// owner remembered under an earlier one may not be).
    pub fn knows(&self, owner: Owner) -> bool {
        match owner {
            Owner::NotEgress => true,
            Owner::Unsliced { dc } => usize::from(dc) < self.dc_backbone_of.len(),
            Owner::Server { dc, server } => {
                usize::from(dc) < self.dc_backbone_of.len() && usize::from(server) < self.server_backbone.len()
            }
        }
    }
}

impl Builder<'_> {
    /// Validates and compiles `[soft_unicast]`; `None` when it has errors (reported).
    pub(super) fn soft_unicast(&mut self, section: &Spanned<SoftUnicastSection>) -> Option<SoftUnicast> {
        let s = section.get_ref();
        let errors_before = self.errors.len();
        let reserved_ports = s.reserved_ports.as_ref().map_or(DEFAULT_RESERVED_PORTS, |v| *v.get_ref());
        let slice_size = self.slice_size(s, reserved_ports);
        let slices_per_ip = self.slices_per_ip(section, slice_size, reserved_ports);
        let (backbone_mtu, key_id) = self.backbone(s);
        if !self.fleet_within_limit(section) {
            return None;
        }
        let (dcs, servers, dc_spans, server_spans) = self.fleet_members(s);
        let this = self.this_server_name(section, &servers, &server_spans);
        let egress = self.egress_ranges(s, &dc_spans, u64::from(slices_per_ip))?;
        self.backbone_addresses(s, &egress);
        if self.errors.len() > errors_before {
            return None;
        }

        let data_centres = data_centres_by_name(&dcs, &servers);
        let slice_size = slice_size.unwrap_or(DEFAULT_SLICE_SIZE);
        let spec = PlanSpec { slice_size, reserved_ports, egress: egress.clone(), data_centres };
        let plan = match &s.plan {
            None => Plan::new(spec),
            Some(file) => self.plan_file(file, spec),
        };
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                self.err(&section.span(), format!("[soft_unicast]: {e}"));
                return None;
            }
        };
        let owners = OwnerTable::new(&plan);
        self.servers_without_slices(&owners, &server_spans);
        let this_server = owners.server_index(&this?)?;
        let this_dc = owners.server_dc[usize::from(this_server)];
        let addr_of_server = |name: &str| servers.iter().find(|v| v.0 == name).map_or(Ipv4Addr::UNSPECIFIED, |v| v.2);
        let addr_of_dc = |name: &str| dcs.iter().find(|d| d.0 == name).map_or(Ipv4Addr::UNSPECIFIED, |d| d.1);
        let server_backbone: Vec<Ipv4Addr> = owners.servers.iter().map(|n| addr_of_server(n)).collect();
        let dc_backbone_of: Vec<Ipv4Addr> = owners.data_centres.iter().map(|n| addr_of_dc(n)).collect();
        Some(SoftUnicast {
            backbone: server_backbone[usize::from(this_server)],
            dc_backbone: dc_backbone_of[usize::from(this_dc)],
            server_backbone,
            dc_backbone_of,
            this_server,
            this_dc,
            key_id,
            backbone_mtu,
            egress: egress.iter().map(|r| (Ipv4Addr::from(r.network), r.prefix_len)).collect(),
            owners,
            plan,
        })
    }

    /// Whole slices above the reserved ports (what the plan makes for each address); none
    /// when the slice size is refused (`None`: said once, at its key) or leaves no whole slice
    /// (said here).
    fn slices_per_ip(
        &mut self,
        section: &Spanned<SoftUnicastSection>,
        slice_size: Option<u16>,
        reserved_ports: u16,
    ) -> u16 {
        let s = section.get_ref();
        slice_size.map_or(0, |slice_size| {
            portslice::slices_per_ip(slice_size, reserved_ports).unwrap_or_else(|e| {
                // At the key that says it (the slice size, else the reserved ports).
                let at = s.slice_size.as_ref().map(|v| v.span()).or(s.reserved_ports.as_ref().map(|v| v.span()));
                let at = at.unwrap_or(section.span());
                self.err(&at, e.to_string());
                0
            })
        })
    }

    /// Whether the section's data centres and servers together are at most
    /// [`limits::MAX_FLEET_MEMBERS`]; if not, said at the section.
    fn fleet_within_limit(&mut self, section: &Spanned<SoftUnicastSection>) -> bool {
        let s = section.get_ref();
        let members = s.data_centres.len() + s.servers.len();
        if members <= limits::MAX_FLEET_MEMBERS {
            return true;
        }
        let why = format!(
            "{} data centres and {} servers: at most {} together",
            s.data_centres.len(),
            s.servers.len(),
            limits::MAX_FLEET_MEMBERS
        );
        self.err(&section.span(), why);
        false
    }

    /// Warns of each server the plan gives no slice (more servers in its data centre than
    /// slices of its egress addresses, no egress address in its data centre, or a plan file
    /// that leaves it out): it can send no soft-unicast egress traffic, and nothing else
    /// would say so before it tried.
    fn servers_without_slices(&mut self, owners: &OwnerTable, spans: &HashMap<String, Range<usize>>) {
        let counts = owners.slices_per_server();
        for (i, name) in owners.servers.iter().enumerate() {
            let (Some(0), Some(&dc), Some(span)) = (counts.get(i), owners.server_dc.get(i), spans.get(name)) else {
                continue;
            };
            let in_dc = |(d, _): &(&u16, &u32)| **d == dc;
            let peers = owners.server_dc.iter().filter(|&&d| d == dc).count();
            let slices: u32 = owners.server_dc.iter().zip(&counts).filter(in_dc).map(|(_, c)| c).sum();
            let dc_name = owners.data_centres.get(usize::from(dc)).map_or("?", String::as_str);
            // None there: no slice size gives it any, only an egress range. Some: another
            // server holds them, so there are two servers or more.
            let (has, remedy) = match slices {
                0 => ("no egress address".to_string(), format!("an egress range in `{dc_name}` gives it some")),
                n => (
                    format!("{} for {peers} servers", crate::report::counted_as(n as usize, "slice", "slices")),
                    "a smaller slice_size or more egress addresses give it some".to_string(),
                ),
            };
            self.warn(
                span,
                format!(
                    "server `{name}` owns no port slice (data centre `{dc_name}` has {has}): it sends no soft-unicast \
                     egress traffic; {remedy}"
                ),
            );
        }
    }

    /// Which of the fleet's servers this one is: `--this-server` ([`Builder::this_server`]),
    /// else `this_server`, else for what is the fleet's alone (`fleet_wide`: a plan, a
    /// geofeed, what BGP announces) the first server by name, whose identity nothing built
    /// then uses. `None` (said) where none is, or the name is no server's. A fleet that shares
    /// one configuration (an etcd prefix) leaves `this_server` out: each server gives its own.
    fn this_server_name(
        &mut self,
        section: &Spanned<SoftUnicastSection>,
        servers: &[(String, String, Ipv4Addr)],
        server_spans: &HashMap<String, Range<usize>>,
    ) -> Option<String> {
        let written = section.get_ref().this_server.as_ref();
        // Said at the key where it is written (the flag too: it overrides that key), else at
        // the section.
        let at = written.map_or(section.span(), |w| w.span());
        let (name, given) = match (self.this_server.clone(), written) {
            (Some(flag), _) => (flag, "--this-server"),
            (None, Some(key)) => (key.get_ref().clone(), "this_server"),
            (None, None) if self.fleet_wide && !servers.is_empty() => {
                return servers.iter().map(|v| v.0.clone()).min();
            }
            (None, None) => {
                let why = "[soft_unicast] names no this_server: write `this_server = \"NAME\"`, this server's \
                           [[soft_unicast.server]] (a fleet sharing one configuration, as from etcd, leaves it out \
                           and starts each server with its own: `run --this-server NAME`)";
                self.err(&at, why);
                return None;
            }
        };
        if !server_spans.contains_key(&name) {
            self.err(&at, format!("{given} `{name}` is not a [[soft_unicast.server]]"));
            return None;
        }
        Some(name)
    }

    /// Ports per slice, the default when none is written; `None` (said at the key) when
    /// one slice would not fit above the `reserved_ports` ports, or is empty. The range said
    /// is the one the slice takes with these reserved ports, not what a u16 holds: a
    /// `slice_size = 65536` is as wrong as 64513 above 1,024 reserved ports.
    fn slice_size(&mut self, s: &SoftUnicastSection, reserved_ports: u16) -> Option<u16> {
        let Some(written) = &s.slice_size else { return Some(DEFAULT_SLICE_SIZE) };
        // Every port above the reserved ones, at most what a slice size (a u16 in the plan and
        // the XDP map) holds: 65,535, which with no reserved port is one slice per address.
        let most = u16::try_from(65536 - u32::from(reserved_ports)).unwrap_or(u16::MAX);
        let size = super::within(written, 1..=most);
        if size.is_none() {
            let why = match &s.reserved_ports {
                Some(_) => format!("the ports above reserved_ports {reserved_ports}"),
                None => format!("the ports above the {reserved_ports} reserved by default"),
            };
            self.err(&written.span(), format!("slice_size {} is not in 1..={most} ({why})", written.get_ref()));
        }
        size
    }

    /// The backbone tunnels' MTU and GRE key id, each checked (the default where wrong).
    fn backbone(&mut self, s: &SoftUnicastSection) -> (usize, u32) {
        let mtu = match &s.backbone_mtu {
            None => 1500,
            Some(m) => match super::within(m, 576..=65535_u32) {
                Some(mtu) => mtu as usize,
                None => {
                    self.err(&m.span(), format!("backbone_mtu {} is not in 576..=65535", m.get_ref()));
                    1500
                }
            },
        };
        // The upper 24 bits of the GRE key: the low 8 carry the hop.
        let key_id = match &s.backbone_key {
            None => DEFAULT_BACKBONE_KEY,
            Some(k) => super::within(k, 0..=(1_u32 << 24) - 1).unwrap_or_else(|| {
                self.err(&k.span(), format!("backbone_key {} is not in 0..=16777215 (24 bits)", k.get_ref()));
                DEFAULT_BACKBONE_KEY
            }),
        };
        (mtu, key_id)
    }

    /// The data centres and servers, each name unique; every server's data centre known.
    #[allow(clippy::type_complexity)]
    fn fleet_members(
        &mut self,
        s: &SoftUnicastSection,
    ) -> (
        Vec<(String, Ipv4Addr)>,
        Vec<(String, String, Ipv4Addr)>,
        HashMap<String, Range<usize>>,
        HashMap<String, Range<usize>>,
    ) {
        let mut dcs: Vec<(String, Ipv4Addr)> = Vec::new();
        let mut dc_spans: HashMap<String, Range<usize>> = HashMap::new();
        for d in &s.data_centres {
            let d = d.get_ref();
            if !self.first_of_its_name(&mut dc_spans, &d.name, "data centre") {
                continue;
            }
            let addr = self.ipv4(&d.backbone, "backbone address").unwrap_or(Ipv4Addr::UNSPECIFIED);
            dcs.push((d.name.get_ref().clone(), addr));
        }
        let mut servers: Vec<(String, String, Ipv4Addr)> = Vec::new();
        let mut server_spans: HashMap<String, Range<usize>> = HashMap::new();
        for v in &s.servers {
            let v = v.get_ref();
            if !self.first_of_its_name(&mut server_spans, &v.name, "server") {
                continue;
            }
            if !dc_spans.contains_key(v.data_centre.get_ref()) {
                self.err(&v.data_centre.span(), format!("unknown data centre `{}`", v.data_centre.get_ref()));
            }
            let addr = self.ipv4(&v.backbone, "backbone address").unwrap_or(Ipv4Addr::UNSPECIFIED);
            servers.push((v.name.get_ref().clone(), v.data_centre.get_ref().clone(), addr));
        }
        (dcs, servers, dc_spans, server_spans)
    }

    /// Checks `name`, a `what`'s (a data centre's, a server's), and notes where it stands in
    /// `spans`: false, with an error, where an earlier one has it (the later is skipped).
    fn first_of_its_name(
        &mut self,
        spans: &mut HashMap<String, Range<usize>>,
        name: &Spanned<String>,
        what: &str,
    ) -> bool {
        self.name(name, what);
        if let Some(first) = spans.get(name.get_ref()) {
            let first = self.src.pos(first.start);
            self.err(&name.span(), format!("duplicate {what} `{}` (first at {first})", name.get_ref()));
            return false;
        }
        spans.insert(name.get_ref().clone(), name.span());
        true
    }

    /// Backbone addresses that cannot work: one server's that is another's, or one data
    /// centre's another's (backbone GRE for either reaches whichever host holds it, where
    /// the other's is a loop), or a data centre's that is a server's of another, or one in
    /// an egress range (GRE to it is taken as return traffic: it has no port, so it is the
    /// data centre's and goes to the host undecapsulated). A data centre's address may be
    /// one of its servers'.
    fn backbone_addresses(&mut self, s: &SoftUnicastSection, egress: &[EgressRange]) {
        let mut seen: HashMap<(&str, Ipv4Addr), (String, usize)> = HashMap::new();
        let servers = s.servers.iter().map(|v| (&v.get_ref().backbone, "server", &v.get_ref().name));
        let dcs = s.data_centres.iter().map(|d| (&d.get_ref().backbone, "data centre", &d.get_ref().name));
        for (addr, what, name) in servers.chain(dcs) {
            let Ok(ip) = addr.get_ref().parse::<Ipv4Addr>() else { continue };
            if let Some(r) = egress.iter().find(|r| (r.bounds().0..=r.bounds().1).contains(&u32::from(ip))) {
                let range = format!("{}/{}", Ipv4Addr::from(r.network), r.prefix_len);
                self.err(
                    &addr.span(),
                    format!("backbone address {ip} of {what} `{}` is in egress range {range}", name.get_ref()),
                );
            }
            // A data centre's address may be one of its own servers', not another's.
            let foreign_server = s.servers.iter().map(|v| v.get_ref()).find(|v| {
                what == "data centre"
                    && v.backbone.get_ref().parse::<Ipv4Addr>() == Ok(ip)
                    && v.data_centre.get_ref() != name.get_ref()
            });
            if let Some(v) = foreign_server {
                let (server, dc) = (v.name.get_ref(), v.data_centre.get_ref());
                let why = format!(
                    "backbone address {ip} of data centre `{}` is server `{server}`'s, of data centre `{dc}`",
                    name.get_ref()
                );
                self.err(&addr.span(), why);
            }
            match seen.get(&(what, ip)) {
                Some((other, at)) => {
                    let at = self.src.pos(*at);
                    let why = format!(
                        "backbone address {ip} of {what} `{}` is {what} `{other}`'s too (at {at})",
                        name.get_ref()
                    );
                    self.err(&addr.span(), why);
                }
                None => {
                    seen.insert((what, ip), (name.get_ref().clone(), addr.span().start));
                }
            }
        }
    }

    /// The egress ranges, IPv4 and in known data centres, with ISO country codes; `None`
    /// once their addresses or slices pass the bounds (nothing is planned then).
    fn egress_ranges(
        &mut self,
        s: &SoftUnicastSection,
        dc_spans: &HashMap<String, Range<usize>>,
        slices_per_ip: u64,
    ) -> Option<Vec<EgressRange>> {
        let mut egress = Vec::new();
        // Every address costs a row in the plan and the XDP program's maps: bound the sum
        // before anything is planned.
        let mut addresses = 0u64;
        // Each prefix as (first, last address, prefix, where it is written).
        let mut written = Vec::new();
        for e in &s.egress {
            let e = e.get_ref();
            let net = match self.prefix(&e.prefix) {
                Some(IpNet::V4(n)) => {
                    addresses += 1u64 << (32 - n.prefix_len());
                    if addresses > limits::MAX_EGRESS_ADDRESSES {
                        self.err(
                            &e.prefix.span(),
                            format!(
                                "egress prefix {n} brings the egress addresses to {addresses}, more than {}",
                                limits::MAX_EGRESS_ADDRESSES
                            ),
                        );
                        return None;
                    }
                    if addresses * slices_per_ip > limits::MAX_EGRESS_SLICES {
                        self.err(
                            &e.prefix.span(),
                            format!(
                                "egress prefix {n} brings the slices to {} ({addresses} addresses of {slices_per_ip}), \
                                 more than {}: raise slice_size",
                                addresses * slices_per_ip,
                                limits::MAX_EGRESS_SLICES
                            ),
                        );
                        return None;
                    }
                    n
                }
                Some(IpNet::V6(_)) => {
                    self.err(&e.prefix.span(), "egress prefixes are IPv4 (soft-unicast shares scarce IPv4 addresses)");
                    continue;
                }
                None => continue,
            };
            if !dc_spans.contains_key(e.data_centre.get_ref()) {
                self.err(&e.data_centre.span(), format!("unknown data centre `{}`", e.data_centre.get_ref()));
            }
            let tags = self.egress_tags(e);
            written.push((u32::from(net.network()), u32::from(net.broadcast()), net, e.prefix.span()));
            egress.push(EgressRange {
                network: u32::from(net.network()),
                prefix_len: net.prefix_len(),
                tags,
                data_centre: e.data_centre.get_ref().clone(),
            });
        }
        self.check_egress_disjoint(&written);
        Some(egress)
    }

    /// The geofeed tags of egress range `e` (RFC 8805), each checked: a country code, a
    /// region of that country, a city.
    fn egress_tags(&mut self, e: &EgressSection) -> Tags {
        let country = e.country.get_ref();
        if let Some(why) = portslice::geofeed::check_country(country) {
            self.err(&e.country.span(), format!("country: {why}"));
        }
        // What the geofeed publishes: a region of the country, a city on one line.
        let text = |v: &Option<Spanned<String>>| v.as_ref().map_or(String::new(), |v| v.get_ref().clone());
        // Space around a city is not part of it: the feed's readers keep it (RFC 4180 §2), and
        // ` London ` beside `London` was published as two locations, never merged.
        let (region, city) = (text(&e.region), text(&e.city).trim().to_string());
        if let Some(why) = portslice::geofeed::check_region(country, &region) {
            self.err(&e.region.as_ref().map_or(e.country.span(), |v| v.span()), format!("region: {why}"));
        }
        let city_span = e.city.as_ref().map_or(e.prefix.span(), |v| v.span());
        if let Some(why) = portslice::geofeed::check_text(&city) {
            self.err(&city_span, format!("city: {why}"));
        }
        // RFC 8805 §2.1.1.4 says SHOULD: the feed quotes the comma, so said, not refused.
        if let Some(why) = portslice::geofeed::comma_warning(&city) {
            self.warn(&city_span, format!("city: {why}"));
        }
        Tags { country: country.to_ascii_uppercase(), region, city, class: e.class.clone() }
    }

    /// The egress prefixes `written` (each as first and last address, prefix, where it is
    /// written) overlap none of the others: every overlapping pair is said at the prefix
    /// written later.
    fn check_egress_disjoint(&mut self, written: &[(u32, u32, ipnet::Ipv4Net, Range<usize>)]) {
        let ranges: Vec<(u8, u128, u128)> = written.iter().map(|w| (4, w.0.into(), w.1.into())).collect();
        let (pairs, more) = super::routes::nested_pairs(&ranges);
        if let Some(&(_, last)) = pairs.last().filter(|_| more > 0) {
            let message = format!("and {more} more overlapping pairs of egress prefixes, not said one by one");
            self.err(&written[last].3, message);
        }
        for (a, b) in pairs {
            let (first, later) = if written[a].3.start < written[b].3.start { (a, b) } else { (b, a) };
            let message = format!("egress prefix {} overlaps egress prefix {}", written[later].2, written[first].2);
            self.err(&written[later].3, message);
        }
    }

    /// Reads a plan file (relative to the configuration file) and checks it was made from
    /// `spec`. A plan refused (its error recorded) is never built upon: its sizes are the
    /// file's, not the configuration's (a slice count of 65,535 over millions of addresses
    /// asked for hundreds of gigabytes, and the allocation failure aborted the process,
    /// a reload's included); the plan the configuration itself makes stands in.
    fn plan_file(&mut self, file: &Spanned<String>, spec: PlanSpec) -> Result<Plan, portslice::PlanError> {
        let Some(path) = self.file_path(file, "plan file") else { return Plan::new(spec) };
        let mut plan: Plan = match limits::read_text(&path, limits::MAX_PLAN_BYTES, "a plan")
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not a plan written by `transitd plan`: {e}")))
        {
            Ok(p) => p,
            Err(why) => {
                self.err(&file.span(), format!("plan file {}: {why}", path.display()));
                return Plan::new(spec);
            }
        };
        // The same plan however the section is written: servers or ranges listed in another
        // order, a city corrected for the geofeed. The section's own spec then stands in
        // the plan (its tags are what the geofeed and `connect` read).
        if !plan.spec.plans_alike(&spec) {
            self.err(
                &file.span(),
                format!(
                    "plan file {} was made from another [soft_unicast] section: run `transitd plan` on this file",
                    path.display()
                ),
            );
            return Plan::new(spec);
        }
        plan.spec = spec.clone();
        if let Err(e) = plan.check() {
            // Edited by hand, or not written by `transitd plan`: its owners are not to be trusted.
            self.err(&file.span(), format!("plan file {}: {e}: run `transitd plan` on this file", path.display()));
            return Plan::new(spec);
        }
        Ok(plan)
    }
}

/// The plan's data centres, each with its servers (`servers`: name, data centre, address),
/// by name, not as written: the plan does not depend on the order the section is written in,
/// and neither does its file (a fleet's copies compared byte for byte).
fn data_centres_by_name(dcs: &[(String, Ipv4Addr)], servers: &[(String, String, Ipv4Addr)]) -> Vec<DataCentre> {
    let mut data_centres: Vec<DataCentre> = dcs
        .iter()
        .map(|(name, _)| {
            let mut servers: Vec<String> = servers.iter().filter(|v| &v.1 == name).map(|v| v.0.clone()).collect();
            servers.sort_unstable();
            DataCentre { name: name.clone(), servers }
        })
        .collect();
    data_centres.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    data_centres
}
