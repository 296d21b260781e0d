//! ClassBench rule sets and traces (formats in `../shared/classbench/SOURCES.md`).
//!
//! A rule line: `@<src>/<len>\t<dst>/<len>\t<lo> : <hi>\t<lo> : <hi>\t<proto>/<mask>\t<flags>/<mask>`.
//! A trace line: `<src u32> <dst u32> <sport> <dport> <proto> <flags> <rule index>`, where
//! the last column is the rule the header was generated from, which is not always the first
//! match: tests use [`first_match_linear`], never that column, as the answer.

use std::net::Ipv4Addr;

use crate::compile::{Bounds, FULL};
use crate::field::{Dim, Key};

/// One ClassBench filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassBenchRule {
    /// Source network and prefix length.
    pub src: (u32, u8),
    /// Destination network and prefix length.
    pub dst: (u32, u8),
    /// Source port range, inclusive.
    pub sport: (u16, u16),
    /// Destination port range, inclusive.
    pub dport: (u16, u16),
    /// Protocol, or `None` for any.
    pub proto: Option<u8>,
}

/// A packet header from a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Protocol.
    pub proto: u8,
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ClassBenchError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

impl ClassBenchRule {
    /// The rule as key bounds: IPv4, addresses, protocol and ports (protocol-agnostic, as in
    /// ClassBench: ports constrain whatever the protocol is).
    pub fn bounds(&self) -> Bounds {
        let mut b = FULL;
        b[Dim::IpVersion as usize] = [4, 4];
        let net = |(addr, len): (u32, u8)| [addr & mask(len), addr | !mask(len)];
        b[Dim::Src0 as usize] = net(self.src);
        b[Dim::Dst0 as usize] = net(self.dst);
        b[Dim::SrcPort as usize] = [self.sport.0.into(), self.sport.1.into()];
        b[Dim::DstPort as usize] = [self.dport.0.into(), self.dport.1.into()];
        if let Some(p) = self.proto {
            b[Dim::IpProto as usize] = [p.into(), p.into()];
        }
        b
    }

    /// True when the rule selects `h`, computed straight from the rule's fields.
    pub fn matches(&self, h: &Header) -> bool {
        let in_net = |a: u32, (net, len): (u32, u8)| (a ^ net) & mask(len) == 0;
        in_net(h.src, self.src)
            && in_net(h.dst, self.dst)
            && (self.sport.0..=self.sport.1).contains(&h.sport)
            && (self.dport.0..=self.dport.1).contains(&h.dport)
            && self.proto.is_none_or(|p| p == h.proto)
    }
}

impl Header {
    /// The key the classifier sees for this header.
    pub fn key(&self) -> Key {
        let mut k = Key::new(64);
        k.set_ipv4(self.src.to_be_bytes(), self.dst.to_be_bytes(), self.proto, 64, 40, false, false, 0);
        k.set_l4_proto(self.proto);
        k.set_ports(self.sport, self.dport);
        k
    }
}

/// The reference answer: the index of the first rule that selects `h`.
pub fn first_match_linear(rules: &[ClassBenchRule], h: &Header) -> Option<u32> {
    rules.iter().position(|r| r.matches(h)).map(|i| i as u32)
}

/// Every rule as `(index, bounds)`, ready for [`crate::RuleTable::from_boxes`].
pub fn boxes(rules: &[ClassBenchRule]) -> Vec<(u32, Bounds)> {
    rules.iter().enumerate().map(|(i, r)| (i as u32, r.bounds())).collect()
}

fn prefix(text: &str) -> Option<(u32, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

/// `lo : hi`, with `lo <= hi` (an inverted range would make an inverted box, which the
/// tree's arithmetic does not expect and the linear scan reads as empty).
fn range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = text.split_once(':')?;
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

fn hex_u8(text: &str) -> Option<u8> {
    u8::from_str_radix(text.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// Parses a rule set (first line = highest priority). The flags column, if any, is ignored.
pub fn parse_rules(text: &str) -> Result<Vec<ClassBenchRule>, ClassBenchError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |m: &str| ClassBenchError { line: i + 1, message: format!("{m}: `{line}`") };
        let body = line.strip_prefix('@').ok_or_else(|| err("a rule starts with @"))?;
        let cols: Vec<&str> = body.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect();
        if cols.len() < 5 {
            return Err(err("expected src, dst, sport range, dport range, proto"));
        }
        let (proto, proto_mask) = cols[4].split_once('/').ok_or_else(|| err("protocol is value/mask"))?;
        let proto = match (hex_u8(proto), hex_u8(proto_mask)) {
            (Some(p), Some(0xff)) => Some(p),
            (Some(_), Some(0)) => None,
            _ => return Err(err("protocol mask must be 0x00 or 0xFF")),
        };
        out.push(ClassBenchRule {
            src: prefix(cols[0]).ok_or_else(|| err("bad source prefix"))?,
            dst: prefix(cols[1]).ok_or_else(|| err("bad destination prefix"))?,
            sport: range(cols[2]).ok_or_else(|| err("bad source port range"))?,
            dport: range(cols[3]).ok_or_else(|| err("bad destination port range"))?,
            proto,
        });
    }
    Ok(out)
}

/// Parses a trace into headers (the generating-rule column is returned beside each).
pub fn parse_trace(text: &str) -> Result<Vec<(Header, Option<u32>)>, ClassBenchError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let err = || ClassBenchError { line: i + 1, message: format!("expected 5 to 7 numbers: `{line}`") };
        if f.len() < 5 {
            return Err(err());
        }
        let n = |s: &str| s.parse::<u64>().map_err(|_| err());
        let header = Header {
            src: u32::try_from(n(f[0])?).map_err(|_| err())?,
            dst: u32::try_from(n(f[1])?).map_err(|_| err())?,
            sport: u16::try_from(n(f[2])?).map_err(|_| err())?,
            dport: u16::try_from(n(f[3])?).map_err(|_| err())?,
            proto: u8::try_from(n(f[4])?).map_err(|_| err())?,
        };
        let generator = f.get(6).and_then(|s| s.parse().ok());
        out.push((header, generator));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inverted port range (`80 : 20`) is no rule: refused as the line's error, not an
    /// inverted box on which the tree's arithmetic overflows and the linear scan matches
    /// nothing.
    #[test]
    fn an_inverted_range_is_refused() {
        let line = "@10.0.0.0/8\t0.0.0.0/0\t80 : 20\t0 : 65535\t0x06/0xFF\t\n";
        assert!(parse_rules(line).is_err());
        assert!(parse_rules(&line.replace("80 : 20", "20 : 80")).is_ok());
    }

    #[test]
    fn reads_the_documented_example_line() {
        let rules =
            parse_rules("@176.19.181.33/32\t90.145.23.162/32\t0 : 65535\t1550 : 1550\t0x06/0xFF\t0x0000/0x0200\t\n")
                .unwrap();
        assert_eq!(
            rules[0],
            ClassBenchRule {
                src: (u32::from(Ipv4Addr::new(176, 19, 181, 33)), 32),
                dst: (u32::from(Ipv4Addr::new(90, 145, 23, 162)), 32),
                sport: (0, 65535),
                dport: (1550, 1550),
                proto: Some(6),
            }
        );
        let h = Header { src: rules[0].src.0, dst: rules[0].dst.0, sport: 9, dport: 1550, proto: 6 };
        assert!(rules[0].matches(&h));
        assert!(!rules[0].matches(&Header { proto: 17, ..h }));
        assert!(crate::compile::box_contains(&rules[0].bounds(), &h.key()));
    }
}
