//! `[server]` compiled: the anycast addresses, frame size, ICMP error budget, Ethernet
//! addresses and next hop; and `[health]`'s probe timing (here, not beside the probes' data
//! in `health/`, which is long enough).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Range, RangeInclusive};

use classifier::{BucketKey, BucketSpec};
use gre::EthernetAddrs;
use ipnet::IpNet;
use toml::Spanned;

use super::{Builder, DEFAULT_FRAME_SIZE, HealthConfig, NextHop, customers, is_host_address, mapped_hint};
use crate::config;

/// What `[server]` compiles to.
pub(super) struct ServerParts {
    pub(super) anycast: [u8; 4],
    pub(super) anycast_v6: Option<Ipv6Addr>,
    pub(super) frame_size: usize,
    pub(super) icmp: BucketSpec,
    pub(super) eth: EthernetAddrs,
    pub(super) next_hop: NextHop,
}

impl Builder<'_> {
    /// An error at `at` when `addr` (`what`) lies in space no host on the Internet has (link-local,
    /// "this network"): customers' routers could not send to it, and `[bgp]` would announce it.
    fn internet_reaches(&mut self, addr: IpAddr, at: &Range<usize>, what: &str) {
        // 240.0.0.0/4 is reserved (RFC 1112 §4, "class E"): a host may number itself in it
        // (Linux takes it), but no router of the Internet forwards to it. Not a space for no
        // hosts ([`customers::not_for_hosts`]): a customer's own network may use it inside.
        let reserved = match addr {
            IpAddr::V4(v4) => v4.octets()[0] >= 240 && !v4.is_broadcast(),
            IpAddr::V6(_) => false,
        };
        let why = customers::not_for_hosts(IpNet::from(addr))
            .or(reserved.then_some("inside 240.0.0.0/4 (reserved, RFC 1112)"));
        if let Some(why) = why {
            self.err(at, format!("{what} `{addr}` is {why}: the Internet cannot reach it"));
        }
    }

    fn mac(&mut self, s: &Option<Spanned<String>>) -> [u8; 6] {
        let Some(s) = s else { return [0; 6] };
        // One or two hex digits a part: `u8`'s parser alone also takes `+2` and `000`.
        let part = |p: &str| {
            let digits = (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
            if digits { u8::from_str_radix(p, 16).ok() } else { None }
        };
        let parts: Vec<Option<u8>> = s.get_ref().split(':').map(part).collect();
        match parts.as_slice() {
            [a, b, c, d, e, f] if parts.iter().all(Option::is_some) => {
                let mac = [a, b, c, d, e, f].map(|x| x.unwrap_or_default());
                // A frame from or to such an address reaches no one router (and the all-zero
                // one would pass for a next hop that is set).
                if mac == [0; 6] || mac[0] & 1 == 1 {
                    let why =
                        format!("`{}` is not a unicast MAC address (all zeros, broadcast or multicast)", s.get_ref());
                    self.err(&s.span(), why);
                }
                mac
            }
            _ => {
                self.err(&s.span(), format!("`{}` is not a MAC address (write 02:00:00:00:00:01)", s.get_ref()));
                [0; 6]
            }
        }
    }

    /// `[server]`: the anycast addresses, frame size, ICMP error budget and Ethernet
    /// addresses.
    pub(super) fn server(&mut self, server: &config::ServerSection) -> ServerParts {
        let anycast = self.ipv4(&server.anycast, "anycast address").map_or([0; 4], |a| a.octets());
        if anycast != [0; 4] {
            self.internet_reaches(IpAddr::from(anycast), &server.anycast.span(), "anycast address");
        }
        let anycast_v6 = server.anycast_v6.as_ref().and_then(|a| self.anycast_v6(a));
        let frame_size = match &server.frame_size {
            None => DEFAULT_FRAME_SIZE,
            Some(fs) => match super::within(fs, 256..=65536_u32) {
                Some(size) => size as usize,
                None => {
                    self.err(&fs.span(), format!("frame_size {} is not in 256..=65536", fs.get_ref()));
                    DEFAULT_FRAME_SIZE
                }
            },
        };
        let icmp = BucketSpec {
            key: BucketKey::Rule,
            rate: server.icmp_rate.as_ref().map_or(1000, |r| *r.get_ref()),
            burst: match &server.icmp_burst {
                None => 100,
                Some(b) => super::within(b, 1..=u64::MAX).unwrap_or_else(|| {
                    self.err(&b.span(), format!("icmp_burst {} is not in 1..={}", b.get_ref(), u64::MAX));
                    1
                }),
            },
        };
        let eth = self.ethernet_addrs(server);
        let next_hop = self.next_hop(server, eth.dst, anycast, anycast_v6);
        ServerParts { anycast, anycast_v6, frame_size, icmp, eth, next_hop }
    }

    /// `anycast_v6` as written: one host's IPv6 address, which the Internet reaches.
    fn anycast_v6(&mut self, a: &Spanned<String>) -> Option<Ipv6Addr> {
        match a.get_ref().parse::<Ipv6Addr>() {
            Ok(v6) if !is_host_address(IpAddr::V6(v6)) => {
                // An IPv4-mapped one is no IPv6 address: the IPv4 address is `anycast`'s.
                let hint = match v6.to_ipv4_mapped() {
                    Some(v4) => format!(
                        ": an IPv4-mapped IPv6 address, which no packet carries (`{v4}` is an IPv4 address: `anycast`)"
                    ),
                    None => String::new(),
                };
                self.err(&a.span(), format!("anycast_v6 `{v6}` is not one host's address{hint}"));
                None
            }
            Ok(ip) => {
                self.internet_reaches(IpAddr::V6(ip), &a.span(), "anycast_v6");
                Some(ip)
            }
            Err(_) => {
                self.err(&a.span(), format!("anycast_v6 `{}` is not an IPv6 address", a.get_ref()));
                None
            }
        }
    }

    /// The Ethernet addresses of `[server]`'s `mac` and `next_hop_mac` (zero where unset), of
    /// which the router's may not be ours.
    fn ethernet_addrs(&mut self, server: &config::ServerSection) -> EthernetAddrs {
        let eth = EthernetAddrs { src: self.mac(&server.mac), dst: self.mac(&server.next_hop_mac) };
        // The router's address is not ours: every frame sent to it would come back to us, and
        // a switch drops such a frame (or, where `mac` is the router's, learns the router on
        // our port). A MAC refused above is not said again.
        if let (Some(_), Some(dst)) = (&server.mac, &server.next_hop_mac)
            && eth.src == eth.dst
            && eth.dst != [0; 6]
            && eth.dst[0] & 1 == 0
        {
            let why = format!(
                "next_hop_mac `{}` is `mac`, this server's own: every frame would be sent to itself, not to the \
                 upstream router",
                dst.get_ref()
            );
            self.err(&dst.span(), why);
        }
        eth
    }

    /// Where frames go: to `router_mac`, as read from `next_hop_mac`, where that is set; else to
    /// the neighbour `next_hop` names, a router's address and not ours (`anycast`, `anycast_v6`).
    fn next_hop(
        &mut self,
        server: &config::ServerSection,
        router_mac: [u8; 6],
        anycast: [u8; 4],
        anycast_v6: Option<Ipv6Addr>,
    ) -> NextHop {
        match (&server.next_hop_mac, &server.next_hop) {
            (Some(_), Some(ip)) => {
                // Both: the MAC is used, and the address was silently not.
                self.warn(&ip.span(), "next_hop is not used: next_hop_mac is set too, and frames go to that MAC");
                NextHop::Static(router_mac)
            }
            (Some(_), None) => NextHop::Static(router_mac),
            (None, Some(ip)) => match ip.get_ref().parse::<IpAddr>() {
                // One router's address, not ours: never to be found in the neighbour table.
                Ok(a)
                    if !is_host_address(a)
                        || a == IpAddr::V4(Ipv4Addr::from(anycast))
                        || Some(a) == anycast_v6.map(IpAddr::V6) =>
                {
                    let hint = mapped_hint(a);
                    let why = format!("next_hop `{a}` is not a router's address (one host's, not ours){hint}");
                    self.err(&ip.span(), why);
                    NextHop::Unset
                }
                Ok(ip) => NextHop::Neighbour(ip),
                Err(_) => {
                    self.err(&ip.span(), format!("next_hop `{}` is not an IP address", ip.get_ref()));
                    NextHop::Unset
                }
            },
            (None, None) => NextHop::Unset,
        }
    }

    pub(super) fn health(&mut self, h: &config::HealthSection) -> HealthConfig {
        let ms = 1_000_000u64;
        // `None` for a value refused (said here): its stand-in is no one's word, to be
        // compared with nothing.
        let mut check = |v: &Spanned<config::Integer>, what: &str, range: RangeInclusive<u64>| -> Option<u64> {
            let taken = super::within(v, range.clone());
            if taken.is_none() {
                self.err(&v.span(), format!("{what} {} is not in {}..={}", v.get_ref(), range.start(), range.end()));
            }
            taken
        };
        let interval = check(&h.interval_ms, "interval_ms", 10..=HEALTH_MS_MAX);
        let down = check(&h.down_after, "down_after", 1..=100).unwrap_or(1) as u32;
        let up = check(&h.up_after, "up_after", 1..=100).unwrap_or(1) as u32;
        let excused_max = check(&h.excused_max, "excused_max", 0..=100).unwrap_or(0) as u32;
        let timeout = self.probe_timeout(&h.timeout_ms, interval);
        let interval = interval.unwrap_or(10);
        HealthConfig {
            interval_ns: interval * ms,
            timeout_ns: timeout * ms,
            down_after: down,
            up_after: up,
            excused_max,
        }
    }

    /// `timeout_ms`: 1 up to `interval_ms` (`interval`, `None` when it was refused), the range
    /// said where it is not in it, with the interval's value where that was taken. A
    /// timeout a refused interval's stand-in would bound is not said: it may be right.
    fn probe_timeout(&mut self, timeout: &Spanned<config::Integer>, interval: Option<u64>) -> u64 {
        let written = timeout.get_ref().0;
        let most = interval.unwrap_or(HEALTH_MS_MAX);
        // What is taken: the timeout held to 1..=most (refused below where it is not in it).
        let taken = super::held_to(timeout, 1..=most);
        if timeout.span() == (0..0) {
            // The default (250 ms) with a shorter interval: the interval bounds it, or the
            // prober (which waits for the longer of the two) probes less often than
            // `interval_ms` says.
            return taken;
        }
        match interval {
            Some(interval) if written > i128::from(interval) => {
                self.err(&timeout.span(), format!("timeout_ms {written} is longer than interval_ms {interval}"));
            }
            Some(interval) if written < 1 => {
                self.err(&timeout.span(), format!("timeout_ms {written} is not in 1..={interval} (interval_ms)"));
            }
            None if !(1..=i128::from(HEALTH_MS_MAX)).contains(&written) => {
                self.err(&timeout.span(), format!("timeout_ms {written} is not in 1..=interval_ms"));
            }
            _ => {}
        }
        taken
    }
}

/// The longest `interval_ms`, and so `timeout_ms`: an hour.
const HEALTH_MS_MAX: u64 = 3_600_000;
