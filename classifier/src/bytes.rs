//! Byte tests: slices, `contains`, `matches` and `len()` over a packet's protocol bytes and
//! transport payloads (`udp.payload[0:4] == 00:00:00:00`, `frame contains "GET"`).
//!
//! A byte test cannot be a key slot (its value is any number of bytes), so it is not in the
//! rule table's boxes: the compiler keeps it beside the box as a residual check, evaluated on
//! the frame's bytes only for the candidates a lookup finds (see `table`). The key still
//! says where each layer lies in the frame: the parser records where the Ethernet, IP and
//! transport headers start ([`Dim::EthAt`], [`Dim::L3At`], [`Dim::L4At`]) and the header
//! fields give their lengths, so a test reads its bytes straight out of the frame.
//!
//! Meanings are Wireshark 4.0's, checked against tshark:
//! - a protocol's bytes are its header: `ip` is `ip.hdr_len` bytes (of a header tshark calls
//!   bogus, the length its header length field says, whatever its version), `ipv6` the fixed
//!   header and its extension headers, `tcp` `tcp.hdr_len`, `udp` 8, `eth` 14; `icmp` and `icmpv6`
//!   are the whole message; `frame` is every byte captured; `tcp.payload` and
//!   `udp.payload` are the segment's and datagram's data (present only when there is some),
//!   Ethernet padding excluded, cut where the capture is;
//! - `[i:n]` is `n` bytes from `i` (negative `i` counts from the end), `[i-j]` bytes `i` to
//!   `j` (`i < j`), `[i]` one byte, `[i:]` to the end, `[:n]` the first `n`; a slice that
//!   reaches past the field's end is the empty byte string (so `frame[4000:2] == 00:00` is
//!   false, `!= 00:00` true, and a bare `frame[4000:2]` false);
//! - a header cut short (`udp` in a first fragment, `ip` cut by the capture) is as long as
//!   the header is ([`Layer::counted_len`]), its missing bytes unreadable: `len()` counts
//!   them, a slice reaching one is the empty byte string, and against a literal of that
//!   length it compares equal;
//! - byte strings order by length first, then byte by byte;
//! - `contains` is case-sensitive, `matches` is case-insensitive unless the pattern says
//!   `(?-i)`, and neither holds of an empty byte string;
//! - a string literal keeps its NUL bytes (`"a\x00b"` is three bytes, as in tshark 4.0).
//!
//! `matches` compiles with the `regex` crate: linear time in the bytes, whatever the pattern,
//! but times the pattern's compiled size, which is bounded ([`MAX_PATTERN_BYTES`]).
//! PCRE-only constructs (look-around, back-references) are refused when the rule is parsed,
//! with the regex crate's reason.

use std::cmp::Ordering;
use std::num::IntErrorKind;
use std::ops::Range;

use crate::ast::Span;
use crate::field::{ABSENT, BOGUS_IPV4, BOGUS_IPV6, Dim, IPV4_CUT_BEFORE_DST, IPV6_CUT_BEFORE_DST, Key};
use crate::set::IntervalSet;

/// A field whose value is bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Every byte captured.
    Frame,
    /// The frame's own Ethernet header (14 bytes).
    Eth,
    /// The IPv4 header, options included.
    Ip,
    /// The IPv6 fixed header and its extension headers.
    Ipv6,
    /// The TCP header, options included.
    Tcp,
    /// The UDP header.
    Udp,
    /// The ICMP message.
    Icmp,
    /// The ICMPv6 message.
    Icmpv6,
    /// The TCP segment's data.
    TcpPayload,
    /// The UDP datagram's data.
    UdpPayload,
    /// `eth.src` read as bytes (`eth.src[0:3]`, `eth.src contains 00:1b`): the frame's own
    /// Ethernet source address.
    EthSrc,
    /// `eth.dst` read as bytes.
    EthDst,
    /// `ip.src` read as bytes (`ip.src[0] == 0a`): the IPv4 header's source address.
    IpSrc,
    /// `ip.dst` read as bytes.
    IpDst,
    /// `ipv6.src` read as bytes: the IPv6 header's source address.
    Ipv6Src,
    /// `ipv6.dst` read as bytes.
    Ipv6Dst,
}

/// The address fields tshark 4.0 slices and searches as bytes, each with its occurrences'
/// bytes (`eth.addr`: the destination's, then the source's, as tshark lists them).
const ADDRESS_FIELDS: &[(&str, &[Layer])] = &[
    ("eth.src", &[Layer::EthSrc]),
    ("eth.dst", &[Layer::EthDst]),
    ("eth.addr", &[Layer::EthDst, Layer::EthSrc]),
    ("ip.src", &[Layer::IpSrc]),
    ("ip.dst", &[Layer::IpDst]),
    ("ip.addr", &[Layer::IpSrc, Layer::IpDst]),
    ("ipv6.src", &[Layer::Ipv6Src]),
    ("ipv6.dst", &[Layer::Ipv6Dst]),
    ("ipv6.addr", &[Layer::Ipv6Src, Layer::Ipv6Dst]),
];

/// The occurrences, as byte layers, of the address field `name`, when it is one.
pub fn address_field(name: &str) -> Option<&'static [Layer]> {
    ADDRESS_FIELDS.iter().find(|f| f.0 == name).map(|f| f.1)
}

/// Every byte field, by Wireshark's name.
const LAYERS: &[(&str, Layer)] = &[
    ("frame", Layer::Frame),
    ("eth", Layer::Eth),
    ("ip", Layer::Ip),
    ("ipv6", Layer::Ipv6),
    ("tcp", Layer::Tcp),
    ("udp", Layer::Udp),
    ("icmp", Layer::Icmp),
    ("icmpv6", Layer::Icmpv6),
    ("tcp.payload", Layer::TcpPayload),
    ("udp.payload", Layer::UdpPayload),
];

/// The names of the byte fields, for messages.
pub fn layer_names() -> impl Iterator<Item = &'static str> {
    LAYERS.iter().map(|l| l.0)
}

impl Layer {
    /// The byte field called `name`.
    pub fn lookup(name: &str) -> Option<Layer> {
        LAYERS.iter().find(|l| l.0 == name).map(|l| l.1)
    }

    /// Its Wireshark name.
    pub fn name(self) -> &'static str {
        let field = || ADDRESS_FIELDS.iter().find(|f| f.1 == [self]).map(|f| f.0);
        LAYERS.iter().find(|l| l.1 == self).map(|l| l.0).or_else(field).unwrap_or("?")
    }

    /// A protocol (`frame`, `eth`, `tcp`, ...), not a field of one: what `contains ""` finds
    /// nothing in, as tshark has it.
    pub fn is_protocol(self) -> bool {
        matches!(
            self,
            Layer::Frame | Layer::Eth | Layer::Ip | Layer::Ipv6 | Layer::Tcp | Layer::Udp | Layer::Icmp | Layer::Icmpv6
        )
    }

    /// Where its bytes lie in `frame` (the bytes `key` was parsed from), or `None` when the
    /// packet does not carry it. Ranges are cut at the end of the captured bytes.
    pub fn range(self, key: &Key, frame_len: usize) -> Option<Range<usize>> {
        let at = |d: Dim| slot(key, d);
        let cut = |start: usize, end: usize| start.min(frame_len)..end.min(frame_len);
        let l4 = |proto: u32| at(Dim::L4At).filter(|_| key.get(Dim::L4Proto) == proto);
        let version = key.get(Dim::IpVersion);
        let ip_end = ip_payload_end(key);
        let range = match self {
            Layer::Frame => cut(at(Dim::FrameAt).unwrap_or(0), frame_len),
            Layer::Eth => {
                let start = at(Dim::EthAt)?;
                cut(start, start + 14)
            }
            Layer::Ip if version == 4 => {
                let start = at(Dim::L3At)?;
                cut(start, start + at(Dim::IpHdrLen)?)
            }
            // A bogus header is as long as its header length says, whatever its version: the
            // parser keeps where that ends in the transport's layout slot. So is one cut
            // short by the capture, here cut where the bytes end (tshark counts the header's
            // length all the same: [`Layer::counted_len`]).
            Layer::Ip if is_cut_or_bogus(version, 4) => cut(at(Dim::L3At)?, at(Dim::L4At)?),
            Layer::Ipv6 if is_cut_or_bogus(version, 6) => {
                let start = at(Dim::L3At)?;
                cut(start, start + 40)
            }
            // tshark counts the extension headers into `ipv6` when it reaches the transport
            // (the parser points the layout slot of a later fragment, or of a capture cut
            // inside them, past the fixed header); it never does behind a Mobility header
            // (135), which it reads as one of them.
            Layer::Ipv6 if version == 6 => {
                let start = at(Dim::L3At)?;
                let mobility = key.get(Dim::L4Proto) == IPPROTO_MOBILITY;
                cut(start, at(Dim::L4At).filter(|_| !mobility).unwrap_or(start + 40))
            }
            // The header, or as much of it as the IP payload holds (a first fragment, a cut
            // capture): tshark's `tcp` is the bytes it dissected, however few. Behind a bogus
            // header length (below 20) it is the whole segment.
            Layer::Tcp => {
                let start = l4(6)?;
                // tshark has no `tcp` before its ports (4 bytes) are there.
                at(Dim::SrcPort)?;
                let end = ip_end.unwrap_or(frame_len);
                cut(start, at(Dim::TcpHdrLen).filter(|&h| h >= 20).map_or(end, |h| end.min(start + h)))
            }
            // The 8-byte header, or as much of it as the IP payload holds: tshark counts 8
            // bytes all the same ([`Layer::counted_len`]); Ethernet padding is never in it.
            Layer::Udp => {
                let start = l4(17)?;
                // tshark has no `udp` before its ports (4 bytes) are there.
                at(Dim::SrcPort)?;
                cut(start, ip_end.unwrap_or(frame_len).min(start + 8))
            }
            // Whichever IP carries it: tshark dissects protocol 1 in IPv6 as ICMP, and 58 in
            // IPv4 as ICMPv6, as `icmp` and `icmpv6` already say.
            Layer::Icmp => cut(l4(1)?, ip_end?),
            Layer::Icmpv6 => cut(l4(58)?, ip_end?),
            Layer::TcpPayload | Layer::UdpPayload => return self.payload_range(key, frame_len, version, ip_end),
            Layer::EthSrc | Layer::EthDst | Layer::IpSrc | Layer::IpDst | Layer::Ipv6Src | Layer::Ipv6Dst => {
                return self.address_range(key, frame_len, version);
            }
            Layer::Ip | Layer::Ipv6 => return None,
        };
        Some(range.start..range.end.max(range.start))
    }

    /// [`Layer::range`] of a transport's payload (`tcp.payload`, `udp.payload`), given the
    /// key's IP version and where its IP payload ends (`ip_end`); `None` where there is none.
    /// Per candidate rule with a payload test (`#[inline]`: one call site).
    #[inline]
    fn payload_range(self, key: &Key, frame_len: usize, version: u32, ip_end: Option<usize>) -> Option<Range<usize>> {
        let at = |d: Dim| slot(key, d);
        let cut = |start: usize, end: usize| start.min(frame_len)..end.min(frame_len);
        let l4 = |proto: u32| at(Dim::L4At).filter(|_| key.get(Dim::L4Proto) == proto);
        match self {
            // Payloads run to the end of the IP payload, as tshark's do: a first fragment's
            // TCP data has no `tcp.len` but is `tcp.payload` all the same, and UDP's ends
            // there whatever `udp.length` says (Ethernet padding is never in it).
            // A header length below 20 is bogus: tshark dissects no payload behind it. A
            // RST's data is no payload either: tshark shows it as the reset's cause (RFC 9293
            // §3.5.3 lets a RST carry a diagnostic), so only `tcp contains` searches it.
            Layer::TcpPayload => {
                let start = l4(6)? + at(Dim::TcpHdrLen).filter(|&h| h >= 20)?;
                if at(Dim::TcpFlags).is_some_and(|f| f & TCP_RST != 0) {
                    return None;
                }
                let r = cut(start, ip_end?);
                (r.start < r.end).then_some(r)
            }
            // A UDP length of 8 says there is none, and tshark dissects none, nor behind a
            // bogus one below 8 (a longer one is not held to: the data runs to the IP
            // payload's end), but for 0 over IPv6, RFC 2675's "the IP length says".
            Layer::UdpPayload => {
                let start = l4(17)? + 8;
                let len = at(Dim::L4Len)?;
                if len <= 8 && (len != 0 || version != 6) {
                    return None;
                }
                let r = cut(start, ip_end?);
                (r.start < r.end).then_some(r)
            }
            _ => None,
        }
    }

    /// [`Layer::range`] of an address field (`eth.src`, `ip.dst`, ...), given the key's IP
    /// version: where the address lies in its header; present only whole, as the field is.
    /// Per candidate rule with an address test (`#[inline]`: one call site).
    #[inline]
    fn address_range(self, key: &Key, frame_len: usize, version: u32) -> Option<Range<usize>> {
        let at = |d: Dim| slot(key, d);
        let (base, offset, len) = match self {
            Layer::EthDst => (at(Dim::EthAt)?, 0, 6),
            Layer::EthSrc => (at(Dim::EthAt)?, 6, 6),
            Layer::IpSrc if version == 4 || version == u32::from(IPV4_CUT_BEFORE_DST) => (at(Dim::L3At)?, 12, 4),
            Layer::IpDst if version == 4 => (at(Dim::L3At)?, 16, 4),
            Layer::Ipv6Src if version == 6 || version == u32::from(IPV6_CUT_BEFORE_DST) => (at(Dim::L3At)?, 8, 16),
            Layer::Ipv6Dst if version == 6 => (at(Dim::L3At)?, 24, 16),
            _ => return None,
        };
        let start = base + offset;
        (start + len <= frame_len).then_some(start..start + len)
    }
}

/// Key slot `d` as an offset or a length, `None` where the parser left it [`ABSENT`]. Called
/// per byte test evaluated; `#[inline]`, so it costs what the closures it replaces did.
#[inline]
fn slot(key: &Key, d: Dim) -> Option<usize> {
    Some(key.get(d)).filter(|&v| v != ABSENT).map(|v| v as usize)
}

/// TCP's RST flag.
const TCP_RST: usize = 0x04;

/// The IPv6 Mobility header's protocol number (RFC 6275).
const IPPROTO_MOBILITY: u32 = 135;

impl Layer {
    /// What `contains` and `matches` search of an unsliced protocol, as tshark 4.0 does: from
    /// its header to the end of the layer, its payload with it (`tcp contains "Host:"` finds
    /// the request; `==`, slices and `len()` see the header alone, [`Layer::range`]).
    pub fn searched(self, key: &Key, frame_len: usize) -> Option<Range<usize>> {
        let at = |d: Dim| slot(key, d);
        let cut = |start: usize, end: usize| start.min(frame_len)..end.min(frame_len).max(start.min(frame_len));
        let l4 = |proto: u32| at(Dim::L4At).filter(|_| key.get(Dim::L4Proto) == proto);
        let version = key.get(Dim::IpVersion);
        match self {
            Layer::Eth => Some(cut(at(Dim::EthAt)?, frame_len)),
            // Behind a total length shorter than the header (bogus) tshark searches the bytes
            // to the frame's end.
            Layer::Ip if version == 4 => {
                let (start, len) = (at(Dim::L3At)?, at(Dim::IpLen)?);
                Some(cut(start, if len < at(Dim::IpHdrLen)? { frame_len } else { start + len }))
            }
            Layer::Ipv6 if version == 6 => Some(cut(at(Dim::L3At)?, ip_payload_end(key)?)),
            // A bogus header has no length tshark believes: it searches to the frame's end
            // (which cuts a header cut short).
            Layer::Ip if is_cut_or_bogus(version, 4) => Some(cut(at(Dim::L3At)?, frame_len)),
            Layer::Ipv6 if is_cut_or_bogus(version, 6) => Some(cut(at(Dim::L3At)?, frame_len)),
            Layer::Tcp => {
                at(Dim::SrcPort)?;
                Some(cut(l4(6)?, ip_payload_end(key)?))
            }
            Layer::Udp => {
                let start = l4(17)?;
                at(Dim::SrcPort)?;
                Some(cut(start, ip_payload_end(key)?))
            }
            _ => self.range(key, frame_len),
        }
    }
}

impl Layer {
    /// How many bytes tshark 4.0 counts in the layer of `key` whose bytes in the frame
    /// ([`Layer::range`]) number `there`, in a frame of `frame_len` bytes. More than those for
    /// a header cut short, which tshark counts as long as the header is, whatever the bytes
    /// hold: `udp` (8 bytes) in a first fragment, behind a short IP length or in a capture
    /// cut short; `ip` (its header length) and `ipv6` (40) cut by the capture, or bogus; `tcp`
    /// once its header length is read, as far as the frame's bytes go (tshark clamps the
    /// length it sets to them: Ethernet padding counts, a snap length cuts). `len()` is this
    /// length, slices are taken against it (one reaching a byte that is not there is the
    /// empty byte string), and a comparison orders by it first.
    pub fn counted_len(self, key: &Key, there: usize, frame_len: usize) -> usize {
        let at = |d: Dim| slot(key, d);
        let version = key.get(Dim::IpVersion);
        let header = match self {
            Layer::Udp => Some(8),
            Layer::Tcp => at(Dim::TcpHdrLen)
                .filter(|&h| h >= 20)
                .zip(at(Dim::L4At))
                .map(|(h, start)| h.min(frame_len.saturating_sub(start))),
            Layer::Ip if version == 4 => at(Dim::IpHdrLen),
            // Where the header length says the header ends (the transport's layout slot).
            Layer::Ip if is_cut_or_bogus(version, 4) => {
                at(Dim::L4At).zip(at(Dim::L3At)).map(|(end, start)| end.saturating_sub(start))
            }
            Layer::Ipv6 if is_cut_or_bogus(version, 6) => Some(40),
            _ => None,
        };
        header.map_or(there, |h| h.max(there))
    }
}

/// Whether the [`Dim::IpVersion`] slot's `version` is a layer of IP version `family` (4 or 6)
/// whose header is bogus or cut short by the capture.
fn is_cut_or_bogus(version: u32, family: u8) -> bool {
    let states = if family == 4 { [BOGUS_IPV4, IPV4_CUT_BEFORE_DST] } else { [BOGUS_IPV6, IPV6_CUT_BEFORE_DST] };
    states.map(u32::from).contains(&version)
}

/// Where the IP packet's payload ends in the frame: its length field's end (IPv6's counts
/// from after the fixed header; a jumbogram's is its Jumbo Payload option's, not the
/// header's 0), so that Ethernet padding is never data.
fn ip_payload_end(key: &Key) -> Option<usize> {
    let at = |d: Dim| slot(key, d);
    match key.get(Dim::IpVersion) {
        4 => Some(at(Dim::L3At)? + at(Dim::IpLen)?),
        6 => Some(at(Dim::L3At)? + 40 + at(Dim::Ipv6JumboLen).or(at(Dim::IpLen))?),
        _ => None,
    }
}

/// `[start:len]`, `[start-end]`, `[start]`, `[start:]` or `[:len]`, as one offset (negative:
/// from the end) and a length (`None`: to the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// First byte; negative counts back from the end.
    pub start: i64,
    /// How many bytes; `None` for all the rest.
    pub len: Option<u64>,
}

impl Slice {
    /// Reads Wireshark's slice text (what stands between the brackets).
    /// Offsets are 32-bit signed numbers and lengths and ends at most 2^31 - 1, as tshark's,
    /// each written as C's `strtol` reads one (`c_long`).
    pub fn parse(text: &str) -> Result<Slice, String> {
        let overflow = || format!("\"{text}\" causes an integer overflow.");
        let beyond = || format!("\"{text}\" is not a valid range.");
        let int = |s: &str| match c_long(s) {
            Ok(n) => i32::try_from(n).map(i64::from).map_err(|_| overflow()),
            Err(IntErrorKind::PosOverflow) => Err(overflow()),
            Err(_) => Err(format!("\"{s}\" is not a byte offset.")),
        };
        let len = |s: &str| match c_long(s).map(i32::try_from) {
            Ok(Ok(n)) if n > 0 => Ok(u64::from(n.unsigned_abs())),
            Ok(Ok(n)) => Err(format!("Range {text} isn't valid because length {n} isn't positive")),
            Ok(Err(_)) | Err(IntErrorKind::PosOverflow) => Err(beyond()),
            Err(_) => Err(format!("\"{s}\" is not a byte count.")),
        };
        if text.contains(',') {
            return Err("transitd takes one range per slice; write several tests".into());
        }
        if let Some((a, b)) = text.split_once(':') {
            let start = if a.is_empty() { 0 } else { int(a)? };
            let len = if b.is_empty() { None } else { Some(len(b)?) };
            return Ok(Slice { start, len });
        }
        // `i-j`; a leading minus is the sign of `i`.
        let dash = text.char_indices().skip(1).find(|&(_, c)| c == '-').map(|(i, _)| i);
        if let Some(i) = dash {
            let a = int(&text[..i])?;
            let b = int(&text[i + 1..]).map_err(|_| beyond())?;
            // Both ends from the start, or both from the end (`[-3--1]`: the last three).
            if (a < 0) != (b < 0) {
                return Err(format!("Range {text} isn't valid because {a} and {b} have different signs"));
            }
            if a >= b {
                return Err(format!("Range {text} isn't valid because {a} is greater or equal than {b}"));
            }
            return Ok(Slice { start: a, len: Some((b - a) as u64 + 1) });
        }
        Ok(Slice { start: int(text)?, len: Some(1) })
    }

    /// The slice of `v`, or the empty byte string when it reaches outside `v`.
    pub fn of<'a>(&self, v: &'a [u8]) -> &'a [u8] {
        self.of_counted(v, v.len())
    }

    /// The slice of a field `counted` bytes long whose first bytes `v` holds (a header cut
    /// short, [`Layer::counted_len`]): offsets from the end and the end itself are
    /// `counted`'s, and a slice reaching outside the field or past `v` is the empty byte
    /// string, as tshark 4.0 reads a protocol's bytes it cannot get.
    pub fn of_counted<'a>(&self, v: &'a [u8], counted: usize) -> &'a [u8] {
        let n = counted as i64;
        let start = if self.start < 0 { n + self.start } else { self.start };
        let end = match self.len {
            Some(len) => start.saturating_add(len.min(i64::MAX as u64) as i64),
            None => n,
        };
        // `end > v.len()` covers `start` past `v`, as a slice holds at least one byte.
        if start < 0 || start >= n || end > n || end > v.len() as i64 {
            return &[];
        }
        &v[start as usize..end as usize]
    }
}

/// `s`, all of it, as C's `strtol` with base 0 reads a number, which is how tshark 4.0 reads
/// a slice's bounds: an optional sign, then `0x` (or `0X`) and hex digits, `0` and octal
/// digits, or decimal digits. `[012:2]` is bytes 10 and 11, `[0x0c:2]` bytes 12 and 13, and
/// `[09]` no slice, as in tshark. `PosOverflow` for more digits than an `i128` holds (an
/// overflow of tshark's 32 bits either way), `InvalidDigit` for text that is no such number.
fn c_long(s: &str) -> Result<i128, IntErrorKind> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match unsigned.strip_prefix("0x").or_else(|| unsigned.strip_prefix("0X")) {
        Some(hex) => (16, hex),
        None if unsigned.len() > 1 && unsigned.starts_with('0') => (8, &unsigned[1..]),
        None => (10, unsigned),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(IntErrorKind::InvalidDigit);
    }
    // Digits only, so the one error left is too many of them.
    let magnitude = i128::from_str_radix(digits, radix).map_err(|_| IntErrorKind::PosOverflow)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// A comparison of byte strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`, `===`.
    Eq,
    /// `!=`, `!==`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// Whether a comparison that came out `o` satisfies it.
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o.is_eq(),
            CmpOp::Ne => o.is_ne(),
            CmpOp::Lt => o.is_lt(),
            CmpOp::Le => o.is_le(),
            CmpOp::Gt => o.is_gt(),
            CmpOp::Ge => o.is_ge(),
        }
    }
}

/// A compiled `matches` pattern.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::bytes::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// Upper bound on a compiled pattern's size (the regex crate's own measure, of each automaton
/// it builds), which bounds what the pattern costs per packet. On bytes chosen against it
/// (an unanchored `a[^\n]{400}` over lines of `a`s and `b`s) the lazy DFA meets a new state
/// at almost every byte, its cache thrashes, and the search, lazy DFA or PikeVM, steps
/// through every live NFA state at every byte: measured, about 0.3 ms per 1,400-byte payload
/// for any pattern that thrashes, plus 0.11 ms per KiB of compiled size (six times that
/// for 8,900 bytes). At 1 MiB one rule cost 108 ms a frame (830 ms at 8,900 bytes), and a
/// batch of them stalled a worker for seconds; at 32 KiB, 3.8 ms (26 ms). 32 KiB holds
/// every signature the documentation gives (the largest, DNS ANY's `[^\x00]{0,255}`,
/// compiles to 29,824 bytes), `[^\r\n]{300}` and IDS shapes like it.
pub const MAX_PATTERN_BYTES: usize = 32 << 10;

/// A lazy DFA's cache, per pattern and per worker searching with it: filled as a search
/// meets new states, which a signature's few then serve frame after frame. A pattern that
/// thrashes it costs what [`MAX_PATTERN_BYTES`] allows, whatever its size. Each lazy DFA
/// the regex crate builds has its own: a search may use the forward one and a reverse one
/// (a pattern searched from a literal inside or at its end), twice this per worker.
pub const LAZY_DFA_CACHE_BYTES: usize = 1 << 20;

/// Distinct `matches` patterns one configuration may hold (the same pattern in many rules
/// is compiled once): with 1 MiB each (the compiled bound then), thousands of them took
/// gigabytes, and a reload that read such a file had the edge killed for its memory.
pub const MAX_DISTINCT_PATTERNS: usize = 256;

/// Longest pattern text taken. Translating PCRE2's syntax looks ahead from each `$` to the
/// end of its group (quadratic in the worst case: 60 KB of `a$|` took seconds, before any
/// bound on the compiled size applied), and no signature is near this long.
pub const MAX_PATTERN_TEXT: usize = 8 << 10;

impl Pattern {
    /// Compiles `pattern` (the bytes of a string literal) as tshark 4.0 reads it: bytes, not
    /// UTF-8, and case-insensitive unless it says otherwise.
    pub fn new(pattern: &[u8]) -> Result<Pattern, String> {
        if pattern.len() > MAX_PATTERN_TEXT {
            return Err(format!("the pattern is {} bytes long; at most {MAX_PATTERN_TEXT} are taken", pattern.len()));
        }
        // PCRE2's syntax in the regex crate's, where the two differ (see `pcre`).
        let text = crate::pcre::translate(pattern)?;
        regex::bytes::RegexBuilder::new(&text)
            .unicode(false)
            .case_insensitive(true)
            .size_limit(MAX_PATTERN_BYTES)
            .dfa_size_limit(LAZY_DFA_CACHE_BYTES)
            .build()
            .map(Pattern)
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => format!(
                    "the pattern compiles to more than {MAX_PATTERN_BYTES} bytes, the most transitd takes: its cost \
                     per packet grows with that size (a counted repeat is that many copies of what it repeats: \
                     `[^\\r\\n]{{300}}` fits, `{{400}}` does not); write a smaller count or a simpler pattern"
                ),
                e => format!("the pattern does not compile (transitd's regex engine is linear-time, without look-around or back-references): {e}"),
            })
    }
}

/// A `contains` literal, with its searcher built once (SIMD-accelerated: a byte-by-byte
/// window compare called `memcmp` at every offset, and was most of a signature's cost).
/// Boxed: the searcher is some 300 bytes, and every expression node would be as large.
#[derive(Clone, Debug)]
pub struct Needle(Box<memchr::memmem::Finder<'static>>);

impl Needle {
    /// A searcher for `bytes` (at least one byte: the parser makes `contains ""` a test of
    /// presence, or of nothing, as tshark has it; an empty needle is found nowhere).
    pub fn new(bytes: &[u8]) -> Needle {
        Needle(Box::new(memchr::memmem::Finder::new(bytes).into_owned()))
    }

    /// The bytes looked for.
    pub fn bytes(&self) -> &[u8] {
        self.0.needle()
    }

    /// Whether `haystack` holds the bytes somewhere.
    pub fn found_in(&self, haystack: &[u8]) -> bool {
        !self.bytes().is_empty() && self.0.find(haystack).is_some()
    }
}

impl PartialEq for Needle {
    fn eq(&self, other: &Needle) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Needle {}

/// What a byte test asks of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ByteOp {
    /// The field (or the slice of it) is there.
    Present,
    /// Compared with a byte string.
    Cmp(CmpOp, Vec<u8>),
    /// Holds this byte string somewhere.
    Contains(Needle),
    /// A match of the pattern is somewhere in it.
    Matches(Pattern),
    /// `len(field)` lies in the set.
    Len(IntervalSet),
    /// `field & mask` (some bit of the mask is set) or `field & mask OP value`: the bytes
    /// ANDed with the mask, byte by byte, as long as the shorter of the two.
    Masked(Vec<u8>, Option<(CmpOp, Vec<u8>)>),
}

/// A test on a byte field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteTest {
    /// The field.
    pub layer: Layer,
    /// The part of it tested; `None` for all of it.
    pub slice: Option<Slice>,
    /// What must hold.
    pub op: ByteOp,
    /// Where the test is written.
    pub span: Span,
}

/// Wireshark's order of byte strings: shorter first, then byte by byte.
fn order(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl ByteTest {
    /// True when the test holds of the packet whose key is `key`, parsed from `frame`.
    pub fn holds(&self, key: &Key, frame: &[u8]) -> bool {
        let searching = self.slice.is_none() && matches!(self.op, ByteOp::Contains(_) | ByteOp::Matches(_));
        let range = if searching { self.layer.searched(key, frame.len()) } else { self.layer.range(key, frame.len()) };
        let Some(range) = range else { return false };
        let whole = frame.get(range).unwrap_or(&[]);
        let counted = if searching { whole.len() } else { self.layer.counted_len(key, whole.len(), frame.len()) };
        let v = self.slice.map_or(whole, |s| s.of_counted(whole, counted));
        match &self.op {
            ByteOp::Present => self.slice.is_none() || !v.is_empty(),
            // tshark 4.0 orders a protocol by the length it counts, then by its bytes; bytes
            // it cannot get make the comparison come out equal (its exception caught as 0).
            ByteOp::Cmp(op, lit) if self.slice.is_none() && counted > v.len() => op.holds(counted.cmp(&lit.len())),
            ByteOp::Cmp(op, lit) => op.holds(order(v, lit)),
            ByteOp::Masked(mask, None) => v.iter().zip(mask).any(|(a, m)| a & m != 0),
            ByteOp::Masked(mask, Some((op, lit))) => {
                // At most a few bytes (the literal's length): no allocation.
                let masked = v.iter().zip(mask).map(|(a, m)| a & m);
                let o = masked.clone().count().cmp(&lit.len()).then_with(|| masked.cmp(lit.iter().copied()));
                op.holds(o)
            }
            ByteOp::Contains(needle) => needle.found_in(v),
            ByteOp::Matches(p) => !v.is_empty() && p.0.is_match(v),
            // (`len()` takes no slice: the parser refuses `len(udp[0:2])`, as tshark does.)
            ByteOp::Len(set) => set.contains(counted as u128),
        }
    }
}

/// Reads a byte-string literal as tshark 4.0 does. With `:` between them, bytes are two hex
/// digits each (`00:01`; tshark's scanner takes no other colon-separated word as bytes).
/// Otherwise Wireshark's `hex_str_to_bytes` reads it: two hex digits make a byte, and so does
/// one before a `.` or `-` or at the end, a `.` or `-` may follow each byte (`00.01`,
/// `0001`, `5254.0012`, `525` is 52 05, `4` is 04). `0x` and two hex digits is one byte.
/// `None` when it is none of these.
pub fn byte_literal(word: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    if let Some(h) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return match h.as_bytes() {
            &[a, b] => Some(vec![digit(a)? << 4 | digit(b)?]),
            _ => None,
        };
    }
    let s = word.as_bytes();
    if word.contains(':') {
        let pair = |p: &[u8]| match p {
            &[a, b] => Some(digit(a)? << 4 | digit(b)?),
            _ => None,
        };
        return if s.len() >= 5 { s.split(|&c| c == b':').map(pair).collect() } else { None };
    }
    if s.first().is_some_and(|&c| c == b'.' || c == b'-') || s.last() == Some(&b'.') {
        return None;
    }
    let separator = |i: usize| matches!(s.get(i), Some(b'.' | b'-'));
    let mut out = Vec::with_capacity(s.len() / 2 + 1);
    let mut i = 0;
    while i < s.len() {
        match (digit(s[i]), s.get(i + 1).and_then(|&c| digit(c))) {
            (Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 2 + usize::from(separator(i + 2));
            }
            (Some(one), None) if i + 1 == s.len() || separator(i + 1) => {
                out.push(one);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The byte of a C letter escape (`\a \b \f \n \r \t \v`), which Wireshark's strings and
/// character constants share.
pub(crate) fn c_escape(letter: u8) -> Option<u8> {
    Some(match letter {
        b'a' => 7,
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 11,
        _ => return None,
    })
}

/// The bytes of a string literal's text (between the quotes), as Wireshark 4.0 reads it:
/// `\\`, `\"`, `\'`, `\a \b \f \n \r \t \v`, `\xhh` and `\ooo` escapes, and `\uXXXX` and
/// `\UXXXXXXXX` written as UTF-8 (C's universal character names: not below U+00A0 but for
/// `$`, `@` and `` ` ``, not a surrogate); a raw string (`r"..."`) keeps its backslashes. NUL
/// bytes are kept, as tshark 4.0 keeps them.
pub fn string_literal(text: &str, raw: bool) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' || raw {
            if raw && c == b'\\' && b.get(i) == Some(&b'"') {
                out.push(b'\\');
                out.push(b'"');
                i += 1;
                continue;
            }
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else { return Err("The final quote was missing from a quoted string.".into()) };
        i += 1;
        let simple = match e {
            b'\\' | b'"' | b'\'' => Some(e),
            _ => c_escape(e),
        };
        if let Some(v) = simple {
            out.push(v);
        } else if e == b'x' {
            let n = b[i..].iter().take(2).take_while(|c| c.is_ascii_hexdigit()).count();
            if n == 0 {
                return Err("\\x must be followed by hex digits.".into());
            }
            out.push(u8::from_str_radix(&text[i..i + n], 16).map_err(|e| e.to_string())?);
            i += n;
        } else if (b'0'..=b'7').contains(&e) {
            let n = 1 + b[i..].iter().take(2).take_while(|c| (b'0'..=b'7').contains(c)).count();
            let v = u16::from_str_radix(&text[i - 1..i - 1 + n], 8).map_err(|e| e.to_string())?;
            out.push(u8::try_from(v).map_err(|_| format!("\\{} is not a byte.", &text[i - 1..i - 1 + n]))?);
            i += n - 1;
        } else if e == b'u' || e == b'U' {
            let want = if e == b'u' { 4 } else { 8 };
            let n = b[i..].iter().take(want).take_while(|c| c.is_ascii_hexdigit()).count();
            let digits = &text[i..i + n];
            let named = (n == want).then(|| u32::from_str_radix(digits, 16).ok()).flatten();
            let c = named.filter(|&v| v >= 0xa0 || matches!(v, 0x24 | 0x40 | 0x60)).and_then(char::from_u32);
            let Some(c) = c else {
                return Err(format!("\\{}{digits} is not a valid universal character name", char::from(e)));
            };
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            i += n;
        } else {
            return Err(format!("\\{} is not a valid character escape sequence", char::from(e)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern past the text bound is refused (before the translation whose look ahead
    /// from each `$` made 60 KB of `a$|` take seconds); one within it is translated, and
    /// refused only for what it compiles to, and one of the bound's length compiles.
    #[test]
    fn a_pattern_past_the_text_bound_is_refused_before_translation() {
        let long = "a$|".repeat(MAX_PATTERN_TEXT / 3 + 1);
        let e = Pattern::new(long.as_bytes()).unwrap_err();
        assert!(e.contains(&format!("at most {MAX_PATTERN_TEXT} are taken")), "{e}");
        let within = "a$|".repeat(MAX_PATTERN_TEXT / 3 - 1);
        let e = Pattern::new(within.trim_end_matches('|').as_bytes()).unwrap_err();
        assert!(e.contains(&format!("compiles to more than {MAX_PATTERN_BYTES} bytes")), "{e}");
        let commented = format!("(?#{})a$", "x".repeat(MAX_PATTERN_TEXT - 6));
        assert_eq!(commented.len(), MAX_PATTERN_TEXT);
        assert!(Pattern::new(commented.as_bytes()).is_ok());
    }

    /// The compiled bound refuses the pattern found to cost 45 ms a 1,400-byte frame
    /// (`(a|b|ab|ba){1000}c`, 624 KB compiled) and a counted repeat past it, and takes the
    /// signatures of docs/rules.md (DNS ANY's, 29,824 bytes, is the largest) and shapes
    /// of IDS ones: a bound that refused these would be no use.
    #[test]
    fn a_pattern_past_the_compiled_bound_is_refused_and_signatures_compile() {
        for slow in [r"(a|b|ab|ba){1000}c", r"[^\r\n]{400}", r"a(?:[ab]?){6896}[^ab]"] {
            let e = Pattern::new(slow.as_bytes()).unwrap_err();
            assert!(e.contains(&format!("compiles to more than {MAX_PATTERN_BYTES} bytes")), "{slow}: {e}");
        }
        let signatures = [
            r"(?s)^.{8}(STAT|VALUE) ",
            r"(?s)^.{12}[^\x00]{0,255}\x00\x00\xff\x00\x01",
            r"(?s)^\x30(\x84....|\x83...|\x82..|\x81.|[\x00-\x7f])\x02(\x01.|\x02..|\x03...|\x04....)\x64",
            r"^get /[a-z]+\.php",
            r"\$\{jndi:(ldap|rmi|dns|ldaps|iiop|http|nis|nds|corba)s?:",
            r"\$\{(\$\{[^}]{0,50}\}|j|%6a){1,3}",
            r"^Host\x3a\x20[^\r\n]{256}",
            r"[^\r\n]{300}",
            r"\b(?:select|insert|update|delete)\b.{0,100}\b(?:from|into|set)\b",
            r"(?:[A-Za-z0-9+/]{4}){20,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",
            r"[a-z0-9]{50,63}\.[a-z0-9]{50,63}\.",
        ];
        for signature in signatures {
            assert!(Pattern::new(signature.as_bytes()).is_ok(), "{signature}");
        }
    }

    #[test]
    fn slices_read_as_wireshark_reads_them() {
        let v = [0u8, 1, 2, 3, 4, 5];
        let s = |t: &str| Slice::parse(t).unwrap().of(&v).to_vec();
        assert_eq!(s("0:2"), [0, 1]);
        assert_eq!(s("1-3"), [1, 2, 3]);
        assert_eq!(s("4"), [4]);
        assert_eq!(s("-2:"), [4, 5]);
        assert_eq!(s("-1"), [5]);
        assert_eq!(s(":3"), [0, 1, 2]);
        assert_eq!(s("2:"), [2, 3, 4, 5]);
        // Reaching past the end, even in part, is the empty string.
        assert_eq!(s("4:4"), Vec::<u8>::new());
        assert_eq!(s("6:"), Vec::<u8>::new());
        assert_eq!(s("-7:2"), Vec::<u8>::new());
        assert!(Slice::parse("3-1").is_err());
        assert!(Slice::parse("1-1").is_err());
        assert!(Slice::parse("0:0").is_err());
        assert!(Slice::parse("0:1,2:1").is_err());
        // Bounds are numbers as C's strtol reads them, as tshark's are: `0x` hex, and octal
        // after a leading 0 (`010` is byte 8, past the end here).
        assert_eq!(s("0x1:0x2"), [1, 2]);
        assert_eq!(s("02-03"), [2, 3]);
        assert_eq!(s("-0x2:"), [4, 5]);
        assert_eq!(s("+04"), [4]);
        assert_eq!(s("010"), Vec::<u8>::new());
        // A field counted 8 bytes long of which 4 are there (a UDP header cut short, as tshark
        // 4.0 reads one): offsets from the end are the field's, and a slice reaching a missing
        // byte is empty.
        let cut = |t: &str| Slice::parse(t).unwrap().of_counted(&v[..4], 8).to_vec();
        assert_eq!(cut("0:4"), [0, 1, 2, 3]);
        assert_eq!(cut("-8:1"), [0]);
        assert_eq!(cut("-5:1"), [3]);
        assert_eq!(cut("0:5"), Vec::<u8>::new());
        assert_eq!(cut("-1:"), Vec::<u8>::new());
        assert_eq!(cut("0:"), Vec::<u8>::new());
        // The widest range there is reaches past any frame; wider ones are tshark's errors.
        assert_eq!(s("0-2147483647"), Vec::<u8>::new());
        assert_eq!(s("-2147483648:2147483647"), Vec::<u8>::new());
        for (text, message) in [
            ("0-2147483648", "not a valid range"),
            ("0-9223372036854775807", "not a valid range"),
            (":2147483648", "not a valid range"),
            ("0:99999999999999999999", "not a valid range"),
            ("2147483648", "integer overflow"),
            ("-2147483649:1", "integer overflow"),
            ("99999999999999999999", "integer overflow"),
            ("2147483648-2147483649", "integer overflow"),
            ("09", "not a byte offset"),
            ("0x", "not a byte offset"),
            ("1:08", "not a byte count"),
            ("0x80000000", "integer overflow"),
            ("0:0x80000000", "not a valid range"),
            ("0:-1", "length -1 isn't positive"),
        ] {
            assert!(Slice::parse(text).is_err_and(|e| e.contains(message)), "{text}");
        }
    }

    #[test]
    fn literals_read_as_tshark_reads_them() {
        assert_eq!(byte_literal("45"), Some(vec![0x45]));
        assert_eq!(byte_literal("4"), Some(vec![0x04]));
        assert_eq!(byte_literal("0x45"), Some(vec![0x45]));
        assert_eq!(byte_literal("0x1"), None);
        assert_eq!(byte_literal("0x4500"), None);
        assert_eq!(byte_literal("4500"), Some(vec![0x45, 0]));
        assert_eq!(byte_literal("45:00:01:ff"), Some(vec![0x45, 0, 1, 0xff]));
        assert_eq!(byte_literal("45.00-01.ff"), Some(vec![0x45, 0, 1, 0xff]));
        assert_eq!(byte_literal("0X45"), Some(vec![0x45]));
        // Wireshark's hex_str_to_bytes: pairs, a lone digit before a separator or at the end.
        assert_eq!(byte_literal("450"), Some(vec![0x45, 0]));
        assert_eq!(byte_literal("5254.0012"), Some(vec![0x52, 0x54, 0, 0x12]));
        assert_eq!(byte_literal("525.4"), Some(vec![0x52, 5, 4]));
        assert_eq!(byte_literal("52-"), Some(vec![0x52]));
        assert_eq!(byte_literal("5.4-3"), Some(vec![5, 4, 3]));
        for bad in ["4g", "52.", ".52", "-52", "52.-54", "52..54", "0:0", "52:5", "52:54.00", "52:", ":52", "5254:0012"]
        {
            assert_eq!(byte_literal(bad), None, "{bad}");
        }
        assert_eq!(string_literal(r#"H\tT\x48\110\\\""#, false).unwrap(), b"H\tTHH\\\"");
        assert_eq!(string_literal(r"a\x00b\0\000", false).unwrap(), b"a\0b\0\0");
        assert_eq!(string_literal(r"\xff\d", true).unwrap(), br"\xff\d");
        assert!(string_literal(r"\q", false).is_err());
    }

    #[test]
    fn byte_strings_order_by_length_first() {
        assert!(order(&[0xff], &[0, 0]).is_lt());
        assert!(order(&[], &[0]).is_lt());
        assert!(order(&[1, 0], &[0, 0xff]).is_gt());
    }

    proptest::proptest! {
        /// The searcher finds what the plain definition does (some window of the haystack
        /// equals the needle), over a small alphabet so that near misses are common.
        #[test]
        fn a_needle_is_found_where_some_window_equals_it(
            needle in proptest::collection::vec(0u8..3, 1..6),
            hay in proptest::collection::vec(0u8..3, 0..80),
        ) {
            let naive = hay.windows(needle.len()).any(|w| w == needle.as_slice());
            proptest::prop_assert_eq!(Needle::new(&needle).found_in(&hay), naive);
        }
    }

    #[test]
    fn patterns_are_bytes_and_caseless() {
        let p = Pattern::new(b"get /\\xff").unwrap();
        assert!(p.0.is_match(b"xx GET /\xff"));
        assert!(Pattern::new(b"\xff\xfe").unwrap().0.is_match(b"a\xff\xfe"));
        assert!(!Pattern::new(b"(?-i)get").unwrap().0.is_match(b"GET"));
        assert!(Pattern::new(b"(a)\\1").is_err());
        assert!(Pattern::new(b"(?<=a)b").is_err());
        assert!(Pattern::new(b"(").is_err());
    }
}
