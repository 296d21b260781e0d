//! Single values any section writes, each refused with its error where it is written: a
//! host's IPv4 address, a CIDR prefix, a name, a list's length, a name's uniqueness; and what
//! makes an address one host's.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use super::Builder;

impl Builder<'_> {
    /// An IPv4 address one host may have: not 0.0.0.0, loopback, multicast or broadcast.
    pub(super) fn ipv4(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        match s.get_ref().parse() {
            Ok(a) if !is_host_address(IpAddr::V4(a)) => {
                self.err(&s.span(), format!("{what} `{a}` is not one host's address"));
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                self.err(&s.span(), format!("{what} `{}` is not an IPv4 address", s.get_ref()));
                None
            }
        }
    }

    /// Parses a CIDR prefix, refusing host bits.
    pub(super) fn prefix(&mut self, s: &Spanned<String>) -> Option<IpNet> {
        let text = s.get_ref();
        let net: IpNet = match text.parse() {
            Ok(n) => n,
            Err(_) => {
                let why = match text.split_once('/') {
                    None => "missing /length".to_string(),
                    Some((addr, _)) if addr.parse::<IpAddr>().is_err() => format!("`{addr}` is not an IP address"),
                    Some((addr, len)) => {
                        let max = if addr.contains(':') { 128 } else { 32 };
                        match len.parse::<u8>() {
                            Ok(n) if n <= max && len.len() > 1 && len.starts_with('0') => {
                                format!("prefix length `{len}` has a leading zero (write {n})")
                            }
                            _ => format!("prefix length `{len}` is not in 0..={max}"),
                        }
                    }
                };
                self.err(&s.span(), format!("bad CIDR `{text}`: {why}"));
                return None;
            }
        };
        if net.trunc() != net {
            self.err(&s.span(), format!("bad CIDR `{text}`: host bits are set (the network is {})", net.trunc()));
            return None;
        }
        Some(net)
    }

    /// Checks that `name` is a name transitd can print anywhere (`limits::check_name`);
    /// `what` says what it names.
    pub(crate) fn name(&mut self, name: &Spanned<String>, what: &str) {
        if let Err(why) = crate::limits::check_name(name.get_ref()) {
            let shown = crate::limits::excerpt(name.get_ref(), 40);
            self.err(&name.span(), format!("{what} name {shown:?} {why}"));
        }
    }

    /// Refuses a list longer than `max`, at its first entry past the bound; `holder` is what
    /// the bound is of (a configuration, one rule list).
    pub(crate) fn bounded<T>(&mut self, items: &[Spanned<T>], max: usize, what: &str, holder: &str) -> bool {
        match items.get(max) {
            Some(first_over) => {
                self.err(&first_over.span(), format!("more than {max} {what}, the most {holder} may hold"));
                false
            }
            None => true,
        }
    }

    pub(super) fn unique<'s>(
        &mut self,
        seen: &mut HashMap<&'s str, Range<usize>>,
        name: &'s Spanned<String>,
        what: &str,
    ) {
        if let Some(first) = seen.get(name.get_ref().as_str()) {
            let first = self.src.pos(first.start);
            self.err(&name.span(), format!("duplicate {what} name `{}` (first defined at {first})", name.get_ref()));
        } else {
            seen.insert(name.get_ref(), name.span());
        }
    }

    /// Warns of each of `names` that differs from an earlier one only in case (the same name
    /// twice is [`Builder::unique`]'s error): transitd tells names apart by case everywhere
    /// (routes name their tunnel exactly, and so do metrics labels, logs and etcd keys), so
    /// the two are two, where a reader takes them for one.
    pub(super) fn apart_in_case<'s>(&mut self, names: impl IntoIterator<Item = &'s Spanned<String>>, what: &str) {
        let mut seen: HashMap<String, &Spanned<String>> = HashMap::new();
        for name in names {
            match seen.entry(name.get_ref().to_ascii_lowercase()) {
                Entry::Vacant(v) => {
                    v.insert(name);
                }
                Entry::Occupied(first) if first.get().get_ref() != name.get_ref() => {
                    let first = *first.get();
                    let at = self.src.pos(first.span().start);
                    let message = format!(
                        "{what} `{}` differs from {what} `{}` (at {at}) only in case: two {what}s to transitd, \
                         which tells names apart by case",
                        name.get_ref(),
                        first.get_ref()
                    );
                    self.warn(&name.span(), message);
                }
                Entry::Occupied(_) => {}
            }
        }
    }
}

/// Whether `a` can be one host's address: not unspecified, loopback, multicast or the IPv4
/// broadcast address (RFC 1122 section 3.2.1.3, RFC 4291 section 2.5.2), nor an IPv4-mapped
/// IPv6 address (RFC 4291 section 2.5.5.2: a socket API's way of naming an IPv4 host, never
/// an IPv6 packet's source or destination).
pub(crate) fn is_host_address(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a == IpAddr::V4(Ipv4Addr::BROADCAST)
        || matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()))
}

/// What to add to "is not one host's address" for an IPv4-mapped address: the one to write.
pub(crate) fn mapped_hint(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(String::new, |v4| {
            format!(": an IPv4-mapped IPv6 address, which no packet carries (write `{v4}`)")
        }),
        IpAddr::V4(_) => String::new(),
    }
}
