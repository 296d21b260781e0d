//! Customer prefixes a reload removed, held for a grace (`[bgp] withdrawn_grace_ms`). BGP
//! withdraws a prefix at the announcer's next tick, but upstreams take seconds (the Internet
//! at large, minutes) to stop sending its traffic here. Taken out of the XDP program's map
//! at once, that traffic went to the host's stack, which routes it back out (to the upstream
//! that sent it: it loops until its TTL runs out) or answers it. Held, the program still
//! redirects it and the workers drop it as `withdrawn_prefix`; once the grace ends the
//! prefix leaves the map (`run::xdp_maps` programs it, when `run::reload`'s `end_graces`
//! sees a grace end) and its traffic is the host's, as any address no customer has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Snapshot;
use crate::limits::MAX_PREFIXES_PER_FAMILY;
use crate::lpm::IpPrefixTable;

/// The prefixes reloads withdrew whose grace had not ended when this snapshot was published.
#[derive(Debug, Default)]
pub struct Withdrawn {
    /// Each prefix with the end of its grace, the latest first.
    graces: Vec<(IpNet, Instant)>,
    /// Every prefix of `graces`, for the workers.
    table: IpPrefixTable<()>,
}

impl Withdrawn {
    /// What is held once `new` replaces `old` at `now`: `old`'s customer prefixes that `new`
    /// does not have, for `new`'s grace from now, and what `old` held whose grace has not
    /// ended. A prefix `new` serves whole (re-added, given to another customer, or inside a
    /// wider prefix a customer has) is served at once, not held. A grace is never longer than
    /// `new`'s from now: one shortened, or turned off (0, or `[bgp]` removed), holds nothing
    /// longer than it says. Nor is a prefix holding one of `new`'s own addresses (its anycast
    /// or backbone address, moved there by the same reload): held, everything to it but GRE
    /// and Packet Too Big would be dropped as `withdrawn_prefix` for the grace.
    pub fn after(old: &Snapshot, new: &Snapshot, now: Instant) -> Withdrawn {
        let grace = new.bgp.as_ref().map_or(Duration::ZERO, |b| b.withdrawn_grace);
        let served: Vec<IpNet> = new.customer_prefixes.iter().map(|&(net, _)| net).collect();
        let removed = old.customer_prefixes.iter().map(|&(net, _)| net);
        let hosts: Vec<IpAddr> = [Some(IpAddr::from(new.anycast))]
            .into_iter()
            .chain([new.anycast_v6.map(IpAddr::V6), new.soft_unicast.as_ref().map(|su| IpAddr::V4(su.backbone))])
            .flatten()
            .collect();
        Withdrawn::carried(removed, &old.withdrawn, &served, &hosts, now, grace)
    }

    /// [`Withdrawn::after`] on its parts: `removed`, the prefixes served until now; `held`,
    /// what was held until now; `served`, the prefixes served from now on; `hosts`, the
    /// addresses of our own that no held prefix may hold. Per address family it keeps at most
    /// what the XDP program's map has room for beside `served` ([`MAX_PREFIXES_PER_FAMILY`]
    /// together: a reload widens the map to two snapshots' prefixes, and each must fit in
    /// half), those withdrawn last first, so that a flood of reloads cannot grow it: the rest
    /// leave the map at once, as without a grace. The room is counted after the prefixes not
    /// held are left out, so that none of them takes the room of one that is.
    fn carried(
        removed: impl Iterator<Item = IpNet>,
        held: &Withdrawn,
        served: &[IpNet],
        hosts: &[IpAddr],
        now: Instant,
        grace: Duration,
    ) -> Withdrawn {
        if grace.is_zero() {
            return Withdrawn::default();
        }
        let end = now.checked_add(grace).unwrap_or(now);
        // Each served prefix's length, by longest match: a prefix served whole (itself, or
        // inside a wider one) is a customer's, `steer` finding it before `holds` would, and
        // held it would only be said to be dropped and take room in the map. Customer prefixes
        // are disjoint, so the one holding a prefix's first address is the only one that can
        // hold all of it.
        let serving = IpPrefixTable::build(served.iter().map(|&net| (net, net.prefix_len())));
        let served_whole = |net: &IpNet| {
            let first = match net {
                IpNet::V4(n) => u128::from(u32::from(n.network())) << 96,
                IpNet::V6(n) => u128::from(n.network()),
            };
            serving.lookup(net.addr().is_ipv6(), first).is_some_and(|len| len <= net.prefix_len())
        };
        let is_kept = |net: &IpNet| !served_whole(net) && !hosts.iter().any(|h| net.contains(h));
        let mut ends: HashMap<IpNet, Instant> = HashMap::new();
        for &(net, until) in held.graces.iter().filter(|(net, until)| *until > now && is_kept(net)) {
            ends.insert(net, until.min(end));
        }
        for net in removed.filter(is_kept) {
            ends.insert(net, end);
        }
        let mut graces: Vec<(IpNet, Instant)> = ends.into_iter().collect();
        // By prefix among equal ends: the same reloads keep the same prefixes, whatever the hash.
        graces.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let v4_served = served.iter().filter(|n| n.addr().is_ipv4()).count();
        let mut room_v4 = MAX_PREFIXES_PER_FAMILY.saturating_sub(v4_served);
        let mut room_v6 = MAX_PREFIXES_PER_FAMILY.saturating_sub(served.len() - v4_served);
        graces.retain(|(net, _)| {
            let room = if net.addr().is_ipv4() { &mut room_v4 } else { &mut room_v6 };
            if *room == 0 {
                return false;
            }
            *room -= 1;
            true
        });
        let table = IpPrefixTable::build(graces.iter().map(|&(net, _)| (net, ())));
        Withdrawn { graces, table }
    }

    /// Whether `addr` (as the classifier's key holds it) is in a held prefix, its grace ended
    /// or not: asked only of traffic no customer has, which the XDP program redirects only
    /// while the grace lasts (a frame asked about later was on its way as it ended, or the
    /// maps could not be narrowed: `transitd_xdp_maps_stale`).
    #[inline]
    pub fn holds(&self, is_ipv6: bool, addr: u128) -> bool {
        self.table.lookup(is_ipv6, addr).is_some()
    }

    /// The prefixes whose grace has not ended at `now`: the XDP program redirects them.
    pub fn in_grace(&self, now: Instant) -> impl Iterator<Item = IpNet> {
        self.graces.iter().filter(move |(_, until)| *until > now).map(|&(net, _)| net)
    }

    /// Prefixes held, their grace ended or not.
    pub fn len(&self) -> usize {
        self.graces.len()
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.graces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The key's form of an IPv4 address: its top 32 bits.
    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())) << 96
    }

    const GRACE: Duration = Duration::from_secs(60);

    /// A removed prefix is held for the grace; one removed later runs from its own removal;
    /// one re-added (or given to another customer: served all the same) is served at once,
    /// and removed again starts a new grace.
    #[test]
    fn a_removed_prefix_is_held_for_its_grace_and_a_re_added_one_at_once_not() {
        let t0 = Instant::now();
        let (a, b) = (net("203.0.113.0/24"), net("198.51.100.0/25"));
        let first = Withdrawn::carried([a, b].into_iter(), &Withdrawn::default(), &[b], &[], t0, GRACE);
        assert_eq!(first.in_grace(t0).collect::<Vec<_>>(), [a], "b is still served");
        assert!(first.holds(false, v4("203.0.113.7")));
        assert!(!first.holds(false, v4("198.51.100.7")), "served, not held");
        assert!(!first.holds(false, v4("203.0.114.0")));
        let t1 = t0 + Duration::from_secs(30);
        let second = Withdrawn::carried([b].into_iter(), &first, &[], &[], t1, GRACE);
        assert_eq!(second.in_grace(t1).count(), 2);
        // a's grace ends 60 s after its own removal, b's 60 s after its.
        assert_eq!(second.in_grace(t0 + GRACE).collect::<Vec<_>>(), [b]);
        assert_eq!(second.in_grace(t1 + GRACE).count(), 0);
        // a re-added: served, not held; removed again: held anew from then.
        let t2 = t1 + Duration::from_secs(1);
        let readded = Withdrawn::carried(std::iter::empty(), &second, &[a], &[], t2, GRACE);
        assert_eq!(readded.in_grace(t2).collect::<Vec<_>>(), [b]);
        assert!(!readded.holds(false, v4("203.0.113.7")));
        let t3 = t2 + Duration::from_secs(1);
        let again = Withdrawn::carried([a].into_iter(), &readded, &[], &[], t3, GRACE);
        assert_eq!(again.in_grace(t1 + GRACE).collect::<Vec<_>>(), [a], "a's new grace outlasts b's");
        // A grace ended is not carried by the next reload.
        let later = Withdrawn::carried(std::iter::empty(), &again, &[], &[], t3 + GRACE, GRACE);
        assert!(later.is_empty());
    }

    /// A prefix a served one holds whole (two /24s merged into a /23, a prefix moved inside
    /// another customer's wider one) is that customer's: not held, nor carried, so neither
    /// `transitd_bgp_held_prefixes` nor the reload's log says its traffic is dropped. A served
    /// prefix inside a removed one leaves the rest of it held.
    #[test]
    fn a_prefix_inside_a_served_one_is_not_held() {
        let t0 = Instant::now();
        let (a, b, wide) = (net("203.0.112.0/24"), net("203.0.113.0/24"), net("203.0.112.0/23"));
        let merged = Withdrawn::carried([a, b].into_iter(), &Withdrawn::default(), &[wide], &[], t0, GRACE);
        assert!(merged.is_empty(), "{:?}", merged.graces);
        let v6 = net("2001:db8:acbe:1::/64");
        let held = Withdrawn::carried([a, v6].into_iter(), &Withdrawn::default(), &[], &[], t0, GRACE);
        let covered = [net("203.0.0.0/16"), net("2001:db8:acbe::/48")];
        let carried = Withdrawn::carried(std::iter::empty(), &held, &covered, &[], t0, GRACE);
        assert!(carried.is_empty(), "{:?}", carried.graces);
        let part = Withdrawn::carried([wide].into_iter(), &Withdrawn::default(), &[a], &[], t0, GRACE);
        assert_eq!(part.in_grace(t0).collect::<Vec<_>>(), [wide]);
        assert!(part.holds(false, v4("203.0.113.9")));
    }

    /// A grace turned off (or shortened) holds nothing longer than it says, carried prefixes
    /// included.
    #[test]
    fn a_shorter_grace_cuts_the_held_ones_short() {
        let t0 = Instant::now();
        let a = net("2001:db8:acbe::/48");
        let held = Withdrawn::carried([a].into_iter(), &Withdrawn::default(), &[], &[], t0, GRACE);
        assert_eq!(held.in_grace(t0 + Duration::from_secs(59)).count(), 1);
        let t1 = t0 + Duration::from_secs(1);
        let shorter = Withdrawn::carried(std::iter::empty(), &held, &[], &[], t1, Duration::from_secs(5));
        assert_eq!(shorter.in_grace(t1 + Duration::from_secs(4)).count(), 1);
        assert_eq!(shorter.in_grace(t1 + Duration::from_secs(5)).count(), 0);
        assert!(Withdrawn::carried([a].into_iter(), &held, &[], &[], t1, Duration::ZERO).is_empty());
    }

    /// However many reloads remove prefixes, what is held and what is served fit together in
    /// half the XDP program's map per family; the prefixes withdrawn last are the ones kept.
    #[test]
    fn a_flood_of_reloads_holds_no_more_than_the_map_has_room_for() {
        let t0 = Instant::now();
        let prefix = |i: usize| IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from((i as u32) << 8), 24).unwrap());
        let served: Vec<IpNet> = (0..1000).map(|i| prefix(1_000_000 + i)).collect();
        let mut held = Withdrawn::default();
        // Ten reloads, each removing 10,000 prefixes of its own.
        for r in 0..10 {
            let removed = (r * 10_000..(r + 1) * 10_000).map(prefix);
            held = Withdrawn::carried(removed, &held, &served, &[], t0 + Duration::from_millis(r as u64), GRACE);
            assert!(held.len() + served.len() <= MAX_PREFIXES_PER_FAMILY, "reload {r}: {}", held.len());
        }
        assert_eq!(held.len(), MAX_PREFIXES_PER_FAMILY - served.len());
        assert!(held.in_grace(t0).any(|n| n == prefix(99_999)), "the last reload's are kept");
        assert!(!held.in_grace(t0).any(|n| n == prefix(0)), "the first reload's went");
        // An IPv6 prefix has room of its own.
        let v6 = Withdrawn::carried([net("2001:db8::/32")].into_iter(), &held, &served, &[], t0, GRACE);
        assert!(v6.in_grace(t0).any(|n| n == net("2001:db8::/32")));
    }

    /// At the map's cap, a removed prefix left out for holding one of our own addresses (the
    /// anycast address, moved into it by the same reload) leaves its room to the next: the
    /// room is counted over the prefixes held. The new snapshot serves all of the IPv4 room
    /// but one prefix.
    #[test]
    fn a_prefix_holding_our_address_leaves_its_room_to_the_next() {
        let text = "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdrawn_grace_ms = 60000\n[[customer]]\nname = \"a\"\n\
                    prefixes = [\"203.0.113.0/24\"]\n";
        let snapshot = || Snapshot::build(&crate::config::parse("t.toml", text).unwrap()).unwrap();
        let (mut old, mut new) = (snapshot(), snapshot());
        let customer = new.customer_prefixes[0].1;
        // Both removed by the same reload: among equal ends `ours` sorts first.
        let (ours, next) = (net("198.18.0.0/24"), net("198.18.1.0/24"));
        old.customer_prefixes = vec![(ours, customer), (next, customer)];
        new.anycast = [198, 18, 0, 1];
        let prefix = |i: usize| IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from((i as u32) << 8), 24).unwrap());
        new.customer_prefixes = (0..MAX_PREFIXES_PER_FAMILY - 1).map(|i| (prefix(1_000_000 + i), customer)).collect();
        let now = Instant::now();
        let held = Withdrawn::after(&old, &new, now);
        assert_eq!(held.in_grace(now).collect::<Vec<_>>(), [next]);
    }
}
