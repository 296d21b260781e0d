//! `[ipfix]` as data: where sampled flow records go, and how they are sampled and timed out.

use std::net::SocketAddr;
use std::time::Duration;

use super::Builder;
use crate::config::{Integer, IpfixSection};

/// Flow export settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipfix {
    /// The collector (UDP).
    pub collector: SocketAddr,
    /// One packet in this many is sampled.
    pub sample: u32,
    /// The messages' Observation Domain ID.
    pub observation_domain: u32,
    /// A flow still active is reported after this long.
    pub active_timeout: Duration,
    /// A flow with no sampled packet for this long is reported and forgotten.
    pub idle_timeout: Duration,
    /// The Private Enterprise Number of transitd's reason element.
    pub enterprise_number: u32,
    /// How often the templates are sent again.
    pub template_refresh: Duration,
    /// Largest message, in bytes.
    pub max_message: usize,
}

impl Builder<'_> {
    pub(super) fn ipfix(&mut self, s: &IpfixSection) -> Ipfix {
        let collector = match s.collector.get_ref().parse::<SocketAddr>() {
            // A collector on this host (loopback) is one host; 0.0.0.0, a broadcast or
            // multicast address or an IPv4-mapped one is not.
            Ok(a) if a.port() != 0 && (a.ip().is_loopback() || super::is_host_address(a.ip())) => a,
            Ok(a) if a.port() != 0 => {
                let hint = super::mapped_hint(a.ip());
                self.err(&s.collector.span(), format!("collector `{}` is not one host's address{hint}", a.ip()));
                SocketAddr::from(([127, 0, 0, 1], 4739))
            }
            _ => {
                let why =
                    format!("collector `{}` is not an address:port (e.g. \"192.0.2.9:4739\")", s.collector.get_ref());
                self.err(&s.collector.span(), why);
                SocketAddr::from(([127, 0, 0, 1], 4739))
            }
        };
        let mut bounded = |v: &toml::Spanned<Integer>, what: &str, range: std::ops::RangeInclusive<u32>| -> u32 {
            if super::within(v, range.clone()).is_none() {
                self.err(&v.span(), format!("{what} {} is not in {}..={}", v.get_ref(), range.start(), range.end()));
            }
            super::held_to(v, range)
        };
        let sample = bounded(&s.sample, "sample", 1..=1_000_000);
        let active = bounded(&s.active_timeout_s, "active_timeout_s", 1..=3600);
        let idle = bounded(&s.idle_timeout_s, "idle_timeout_s", 1..=3600);
        let enterprise_number = bounded(&s.enterprise_number, "enterprise_number", 1..=u32::MAX);
        // 0 names no one domain (RFC 7011 §3.1): not the domain that metered the flows.
        let observation_domain = bounded(&s.observation_domain, "observation_domain", 1..=u32::MAX);
        let refresh = bounded(&s.template_refresh_s, "template_refresh_s", 1..=86_400);
        // 512: RFC 7011 §10.3.3's size where the path MTU is unknown, and room for the
        // templates and a record; 65,507: a UDP datagram's payload over IPv4.
        let max_message = bounded(&s.max_message_size, "max_message_size", 512..=65_507);
        Ipfix {
            collector,
            sample,
            observation_domain,
            active_timeout: Duration::from_secs(u64::from(active)),
            idle_timeout: Duration::from_secs(u64::from(idle)),
            enterprise_number,
            template_refresh: Duration::from_secs(u64::from(refresh)),
            max_message: max_message as usize,
        }
    }
}
