//! The compiled DoS section: sanity checks, buckets and the global rules.

use classifier::{Action, BucketKey, BucketSpec, RuleSet};
use ipnet::IpNet;
use toml::Spanned;

use super::{Builder, Customer};
use crate::config::{BucketKeyName, DosSection};
use crate::lpm::IpPrefixTable;

/// Default keys per bucket table.
pub const DEFAULT_TABLE_SIZE: usize = 65536;

/// Sources that can never be legitimate on the Internet (RFC 6890 special-purpose ranges,
/// documentation and benchmarking ranges, multicast and reserved space), as bogon lists
/// such as Team Cymru's give them.
pub const DEFAULT_BOGONS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "100::/64",
    "2001:2::/48",
    "2001:db8::/32",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Which sanity checks run.
#[derive(Debug)]
pub struct Sanity {
    /// Source equals destination.
    pub land: bool,
    /// Impossible TCP flag combinations.
    pub tcp_flags: bool,
    /// IPv4 source routes with hops to go.
    pub source_route: bool,
    /// Tiny first fragments, later ones that can only overlap a first, and fragments past
    /// 65,535 bytes.
    pub fragments: bool,
    /// Most IPv6 extension headers allowed (0: no limit).
    pub max_ipv6_extension_headers: u8,
    /// Bogon sources, if checked.
    pub bogons: Option<IpPrefixTable<()>>,
    /// Sources inside a customer's prefixes.
    pub customer_sources: bool,
}

/// The DoS stage's compiled configuration.
#[derive(Debug)]
pub struct Dos {
    /// Sanity checks.
    pub sanity: Sanity,
    /// Global rules, before customer lookup.
    pub rules: RuleSet,
    /// Buckets, by index.
    pub buckets: Vec<BucketSpec>,
    /// Bucket names, by index.
    pub bucket_names: Vec<String>,
    /// Keys per bucket table per worker.
    pub table_size: usize,
    /// Each bucket's preview table: where a worker counts what a monitor-mode `rate-limit`
    /// rule charging it would refuse, apart from the tokens enforced rules spend (`None`: no
    /// monitor-mode rule charges it). Empty when none does.
    pub preview_of: Vec<Option<u16>>,
    /// The buckets with a preview table, in table order.
    pub previewed: Vec<usize>,
}

impl Dos {
    /// The specs of the preview tables, in table order.
    pub fn preview_specs(&self) -> Vec<BucketSpec> {
        self.previewed.iter().filter_map(|&b| self.buckets.get(b).copied()).collect()
    }
}

impl Builder<'_> {
    /// Compiles `[dos]`; buckets first, so that every rule (global, customer, firewall) can
    /// name them.
    pub(super) fn dos(&mut self, d: &DosSection) -> Dos {
        let mut buckets = Vec::new();
        let mut seen = std::collections::HashMap::new();
        self.bounded(&d.buckets, crate::limits::MAX_BUCKETS, "buckets", "one configuration");
        for b in d.buckets.iter().take(crate::limits::MAX_BUCKETS) {
            let b = b.get_ref();
            self.name(&b.name, "bucket");
            self.unique(&mut seen, &b.name, "bucket");
            self.buckets.push(b.name.get_ref().clone());
            let rate = super::within(&b.rate, 1..=u64::MAX).unwrap_or_else(|| {
                let why = format!("rate {} is not in 1..={} (packets per second)", b.rate.get_ref(), u64::MAX);
                self.err(&b.rate.span(), why);
                1
            });
            let burst = match &b.burst {
                None => 1,
                Some(x) => super::within(x, 1..=u64::MAX).unwrap_or_else(|| {
                    self.err(&x.span(), format!("burst {} is not in 1..={}", x.get_ref(), u64::MAX));
                    1
                }),
            };
            let key = match *b.key.get_ref() {
                BucketKeyName::Destination => BucketKey::Destination,
                BucketKeyName::Source => BucketKey::SourceNetwork,
                BucketKeyName::Flow => BucketKey::Flow,
                BucketKeyName::Rule => BucketKey::Rule,
            };
            buckets.push(BucketSpec { key, rate, burst });
        }
        let table_size = match &d.table_size {
            None => DEFAULT_TABLE_SIZE,
            Some(t) => match super::within(t, 4..=1_u32 << 24) {
                Some(size) => size as usize,
                None => {
                    self.err(&t.span(), format!("table_size {} is not in 4..=16777216", t.get_ref()));
                    DEFAULT_TABLE_SIZE
                }
            },
        };
        let s = &d.sanity;
        // The list is checked whether or not it is in use, so that turning `bogons` on later
        // cannot meet an error nobody saw.
        let listed: Option<Vec<IpNet>> =
            s.bogon_sources.as_ref().map(|list| list.get_ref().iter().filter_map(|p| self.prefix(p)).collect());
        // An empty list with the check on checks nothing: said, as `bogons = false` says it.
        if let Some(list) = s.bogon_sources.as_ref().filter(|l| l.get_ref().is_empty() && s.bogons) {
            self.warn(
                &list.span(),
                "bogon_sources is empty: bogons = true then drops no source (write bogons = false to mean that)",
            );
        }
        let bogons = s.bogons.then(|| {
            let nets: Vec<IpNet> = match listed {
                Some(list) => list,
                None => DEFAULT_BOGONS.iter().filter_map(|p| p.parse().ok()).collect(),
            };
            IpPrefixTable::build(nets.into_iter().map(|n| (n, ())))
        });
        let rules = self.rules(&d.rules, Action::Accept, "[dos]");
        Dos {
            sanity: Sanity {
                land: s.land,
                tcp_flags: s.tcp_flags,
                source_route: s.source_route,
                fragments: s.fragments,
                max_ipv6_extension_headers: s.max_ipv6_extension_headers,
                bogons,
                customer_sources: s.customer_sources,
            },
            rules,
            buckets,
            bucket_names: self.buckets.clone(),
            table_size,
            preview_of: Vec::new(),
            previewed: Vec::new(),
        }
    }

    /// Gives each bucket a monitor-mode `rate-limit` rule charges a preview table (the rule
    /// in `dos`, a customer's DoS, firewall or egress rules), and bounds the key state
    /// per worker: `table_size` keys, rounded up to a power of two as the limiter allocates
    /// them, for each bucket and each preview (the product, not each alone).
    pub(super) fn previews(&mut self, dos: &mut Dos, section: &DosSection, customers: &[Customer]) {
        let lists = std::iter::once(&dos.rules).chain(customers.iter().flat_map(|c| [&c.dos, &c.firewall, &c.egress]));
        let mut charged = vec![false; dos.buckets.len()];
        for b in lists.flat_map(|l| l.rules()).filter_map(|r| r.previewed_bucket()) {
            if let Some(c) = charged.get_mut(usize::from(b)) {
                *c = true;
            }
        }
        dos.previewed = (0..charged.len()).filter(|&b| charged[b]).collect();
        if !dos.previewed.is_empty() {
            dos.preview_of = vec![None; dos.buckets.len()];
            // At most `MAX_BUCKETS` (256) tables: a `u16` holds each.
            for (table, &b) in dos.previewed.iter().enumerate() {
                dos.preview_of[b] = Some(table as u16);
            }
        }
        let tables = dos.buckets.len() + dos.previewed.len();
        if dos.table_size.next_power_of_two().saturating_mul(tables) > crate::limits::MAX_BUCKET_KEYS {
            let at = section
                .table_size
                .as_ref()
                .map(Spanned::span)
                .or_else(|| section.buckets.first().map(Spanned::span))
                .unwrap_or(0..0);
            let previews = match dos.previewed.len() {
                0 => String::new(),
                n => format!(" and the {n} that monitor-mode rules preview"),
            };
            self.err(
                &at,
                format!(
                    "table_size {} (a table of {} keys) for {} buckets{previews} keeps more than {} keys per worker",
                    dos.table_size,
                    dos.table_size.next_power_of_two(),
                    dos.buckets.len(),
                    crate::limits::MAX_BUCKET_KEYS
                ),
            );
        }
    }

    /// A tunnel's router must not be a bogon source: the sanity stage drops its GRE before
    /// decapsulation (`bogon_source`), so the tunnel would carry traffic to the customer and
    /// none back, and a probed tunnel would be judged down (private and shared addresses, on
    /// the default list, are routers' addresses on private interconnects). A warning, not an
    /// error: labs and tests use documentation addresses for routers that never send.
    pub(super) fn check_remotes_not_bogons(
        &mut self,
        dos: &Dos,
        section: &DosSection,
        customers: &[Spanned<crate::config::CustomerSection>],
    ) {
        if dos.sanity.bogons.is_none() {
            return;
        }
        // The nets the table was built from (one that did not parse is reported there).
        let listed: Vec<IpNet> = match &section.sanity.bogon_sources {
            Some(list) => list.get_ref().iter().filter_map(|p| p.get_ref().parse().ok()).collect(),
            None => DEFAULT_BOGONS.iter().filter_map(|p| p.parse().ok()).collect(),
        };
        for t in customers.iter().flat_map(|c| &c.get_ref().tunnels) {
            let remote = &t.get_ref().remote;
            let Ok(addr) = remote.get_ref().parse::<std::net::IpAddr>() else { continue };
            let Some(range) = listed.iter().find(|n| n.contains(&addr)) else { continue };
            let list = if section.sanity.bogon_sources.is_some() { "bogon_sources" } else { "the default bogon list" };
            self.warn(
                &remote.span(),
                format!(
                    "tunnel remote `{addr}` is in {list} ({range}): its GRE would be dropped as bogon_source before \
                     decapsulation; leave the range out of [dos.sanity] bogon_sources, or set bogons = false"
                ),
            );
        }
    }
}
