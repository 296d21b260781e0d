//! The IPv6 layer: the fixed header and the walk over its extension headers (RFC 8200 §4),
//! their options (Hop-by-Hop and Destination Options, with RFC 2675's jumbograms), its
//! fields in the key, and whether a packet addressed to us is ours to end
//! ([`terminable`]). The transport is `l4.rs`'s.

use classifier::field::BOGUS_IPV6;
use classifier::{Dim, Key};
use etherparse::err::ipv6;
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, LaxIpv6Slice,
};

use super::l4::{fill_l4_lenient, parse_l4};
use super::{Fragment, IpFrame, Parsed, fill_traffic_class, offset_in, on_the_wire};
use crate::pipeline::verdict::DropReason;

/// The payload length of the IPv6 jumbogram `l3` (RFC 2675 §2: the bytes after the fixed
/// header, extension headers included), as tshark 4.0 takes it: the fixed header's payload
/// length is 0, a Hop-by-Hop header follows, and of its options (those starting inside it,
/// whose bytes are there: one may run past the header's end) the first Jumbo Payload option
/// of length 4 says more than 65,535. `None` when there is none, when it says 65,535 or less
/// (RFC 2675 §3: an error; tshark takes the option as missing), or when the fixed header's
/// 40 bytes more pass 32 bits (tshark's sum wraps, and it reads nothing past the header).
fn jumbo_payload_len(l3: &[u8]) -> Option<u32> {
    const HOP_BY_HOP: u8 = 0;
    const JUMBO: u8 = 0xc2;
    if l3.get(4..7) != Some(&[0, 0, HOP_BY_HOP][..]) {
        return None;
    }
    let header_end = 40 + (usize::from(*l3.get(41)?) + 1) * 8;
    let mut at = 42; // where the option `Ipv6Options` reads next begins in `l3`
    for (option_type, data) in Ipv6Options::new(l3.get(42..)?) {
        if at >= header_end {
            return None;
        }
        let data = data?; // past the bytes captured: no option can follow
        if option_type == JUMBO
            && let Ok(len) = <[u8; 4]>::try_from(data)
        {
            let len = u32::from_be_bytes(len);
            return (len > 0xffff && len.checked_add(40).is_some()).then_some(len);
        }
        at += if option_type == PAD1 { 1 } else { 2 + data.len() };
    }
    None
}

pub(super) fn parse_ipv6(key: &mut Key, l3: &[u8], l3_start: usize) -> Parsed {
    key.set(Dim::L3At, l3_start as u32);
    let ip = match ipv6_layer(l3) {
        Ok(ip) => ip,
        Err(reason) => return bad_ipv6(key, l3, l3_start, reason),
    };
    fill_ipv6(key, &ip.header);
    if let Some(f) = ip.fragment_header {
        f.fill(key);
    }
    let l3_len = 40 + usize::from(ip.header.payload_length());
    let fragment = ip.fragment.map(|(offset, more)| Fragment {
        offset,
        more,
        data_len: ip.payload.len(),
        headers: offset_in(l3, ip.payload).saturating_sub(40 + 8),
        protocol: ip.ip_number.0,
    });
    let first = fragment.is_none_or(|f| f.offset == 0);
    let l4_start = l3_start + offset_in(l3, ip.payload);
    // The layout slot of a later fragment, which has no transport header, says where tshark
    // ends `ipv6`: after the fixed header, whatever extension headers precede the fragment
    // header (it counts them in only once it reaches a transport).
    let l4_at = if first { l4_start } else { l3_start + 40 };
    let l4 = parse_l4(key, ip.ip_number, fragment.is_some(), first, ip.payload, l4_at);
    // A misplaced Hop-by-Hop header or a second fragment header: dropped, but with the
    // fields behind it filled first, as tshark reads on past it and shows them.
    if ip.hop_by_hop_misplaced || ip.fragment_header_repeated {
        return Parsed::Bad(DropReason::BadIpExtHeader);
    }
    if let Some(reason) = l4 {
        return Parsed::Bad(reason);
    }
    let (extension_headers, under_ah, routed_onward) = (ip.extension_headers, ip.under_ah, ip.routed_onward);
    Parsed::Ip(IpFrame {
        is_ipv6: true,
        l3_start,
        l3_len,
        header_len: 40,
        l4_start,
        fragment,
        extension_headers,
        under_ah,
        routed_onward,
    })
}

/// An IPv6 packet [`ipv6_layer`] refused: why, and in the key what the bytes present hold (a
/// snapped capture, a lying length field, a header chain cut short), as tshark shows it.
#[cold]
fn bad_ipv6(key: &mut Key, l3: &[u8], l3_start: usize, reason: DropReason) -> Parsed {
    // The payload ends where its length (a jumbogram's option) says, or where the frame does on
    // the wire ([`on_the_wire`]); its bytes, where the capture does.
    let payload_on_the_wire = on_the_wire(key, l3, l3_start).saturating_sub(40);
    let jumbo = jumbo_payload_len(l3).map(|len| len.min(u32::try_from(payload_on_the_wire).unwrap_or(u32::MAX)));
    let packet = jumbo.and_then(|len| l3.get(..40 + len as usize)).unwrap_or(l3);
    if let Ok((lax, stopped_in_extensions)) = LaxIpv6Slice::from_slice(packet) {
        let h = lax.header();
        fill_ipv6(key, &h);
        if h.payload_length() == 0 && jumbo.is_none() {
            // A jumbogram's length without its option (or with one tshark does not take,
            // [`jumbo_payload_len`]), or TSO's in a capture: tshark's IPv6 payload is then
            // empty, no extension header is read, and of the transports only ICMPv6 has a layer
            // without a byte.
            if h.next_header() == IpNumber::IPV6_ICMP {
                key.set(Dim::L4At, (l3_start + 40) as u32);
                key.set_l4_proto(IpNumber::IPV6_ICMP.0);
            }
            return Parsed::Bad(reason);
        }
        if let Some(len) = jumbo {
            key.set(Dim::Ipv6JumboLen, len);
        }
        let p = lax.payload();
        // The bytes behind the fixed header as far as its payload length (a jumbogram's:
        // `packet` ends there) and the capture reach, as the lenient walk reads them.
        let chain_end = match usize::from(h.payload_length()) {
            0 => packet.len(),
            len => packet.len().min(40 + len),
        };
        let (fragment_header, later_fragment) =
            fragment_headers(h.next_header(), packet.get(40..chain_end).unwrap_or_default());
        if let Some(f) = fragment_header {
            f.fill(key);
        }
        // tshark counts the extension headers into `ipv6` only once it reaches what follows
        // them: a walk stopped inside them (a header cut short, or one the lenient walk
        // refuses, such as a misplaced Hop-by-Hop header, which tshark reads through:
        // docs/rules.md) leaves the fixed header alone, and so does a later fragment, as in
        // [`parse_ipv6`].
        let l4_at = if stopped_in_extensions.is_some() || later_fragment { 40 } else { offset_in(l3, p.payload) };
        key.set(Dim::L4At, (l3_start + l4_at) as u32);
        let extensions = offset_in(l3, p.payload).saturating_sub(40);
        let payload_len = jumbo.map_or(usize::from(h.payload_length()).min(payload_on_the_wire), |len| len as usize);
        let declared = payload_len.saturating_sub(extensions);
        // Not first: iterating the extension headers of a lenient slice reads past a header cut
        // short (etherparse 0.21), so a fragment here counts as a later one.
        fill_l4_lenient(key, p.ip_number, p.fragmented, false, p.payload, declared);
    } else if l3.len() < 40 && l3.first().is_some_and(|b| b >> 4 == 6) {
        cut_ipv6(key, l3);
    } else {
        // A version other than 6, or not a byte: tshark's `ipv6` all the same, and no more.
        key.set(Dim::IpVersion, BOGUS_IPV6.into());
    }
    Parsed::Bad(reason)
}

/// An IPv6 fragment header's fields, as rules read them (`ipv6.fraghdr.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FragmentHeader {
    next_header: u8,
    /// The fragment offset in 8-byte units, as on the wire (and as tshark 4.0 shows it).
    offset_units: u16,
    more: bool,
    ident: u32,
}

impl FragmentHeader {
    /// The fields of the fragment header `f`.
    fn of(f: &Ipv6FragmentHeaderSlice<'_>) -> FragmentHeader {
        FragmentHeader {
            next_header: f.next_header().0,
            offset_units: f.fragment_offset().value(),
            more: f.more_fragments(),
            ident: f.identification(),
        }
    }

    /// Puts them in the rule key, where `ipv6.fraghdr.*` reads them.
    fn fill(self, key: &mut Key) {
        key.set_ipv6_fragment(self.next_header, self.offset_units, self.more, self.ident);
    }
}

/// The fragment headers of the chain whose first header is `next`, at the start of `chain`
/// (the bytes behind the fixed header), as tshark 4.0 reads them in a packet [`ipv6_layer`]
/// refused: the first (`ipv6.fraghdr.*`), and whether one is at a non-zero offset, a later
/// fragment's (an atomic fragment header may come before it). A fragment header counts when
/// its 8 bytes are there behind headers each whole, however the chain goes on (cut short by
/// the capture or the payload length, or holding a header the lenient walk refuses); a later
/// fragment's data is not read. Each header is read as [`ipv6_layer`] reads it (an
/// authentication header of payload length 0 ends the walk: docs/rules.md, Differences 3).
fn fragment_headers(mut next: IpNumber, mut chain: &[u8]) -> (Option<FragmentHeader>, bool) {
    let mut first = None;
    loop {
        let whole = match next {
            IpNumber::IPV6_HEADER_HOP_BY_HOP | IpNumber::IPV6_DESTINATION_OPTIONS | IpNumber::IPV6_ROUTE_HEADER => {
                Ipv6RawExtHeaderSlice::from_slice(chain).ok().map(|e| (e.slice().len(), e.next_header()))
            }
            IpNumber::AUTHENTICATION_HEADER => {
                IpAuthHeaderSlice::from_slice(chain).ok().map(|e| (e.slice().len(), e.next_header()))
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => match Ipv6FragmentHeaderSlice::from_slice(chain) {
                Ok(f) if f.fragment_offset().value() > 0 => return (first.or(Some(FragmentHeader::of(&f))), true),
                Ok(f) => {
                    first = first.or(Some(FragmentHeader::of(&f)));
                    Some((f.slice().len(), f.next_header()))
                }
                Err(_) => None,
            },
            _ => None,
        };
        // Every header is 8 bytes or more: the walk ends.
        let Some((len, after)) = whole else { return (first, false) };
        let Some(rest) = chain.get(len..) else { return (first, false) };
        chain = rest;
        next = after;
    }
}

/// An IPv6 header the capture cut short of its 40 bytes (a snap length inside it), as tshark
/// 4.0 shows it: `ipv6`, then each field once its bytes are there: the traffic class and the
/// flow label from 4 bytes, the payload length and the next header together from 7, the hop
/// limit from 8, the source address from 24; never the destination, whose bytes would make
/// the header whole.
#[cold]
fn cut_ipv6(key: &mut Key, l3: &[u8]) {
    let src = l3.get(8..).and_then(|b| b.first_chunk::<16>()).map(|&a| u128::from_be_bytes(a));
    key.set_cut_ip(true, src);
    if let Some(&first) = l3.first_chunk::<4>() {
        fill_class_and_flow(key, first);
    }
    if let Some(&[.., len_high, len_low, next_header]) = l3.first_chunk::<7>() {
        key.set(Dim::IpLen, u16::from_be_bytes([len_high, len_low]).into());
        key.set(Dim::IpProto, next_header.into());
    }
    if let Some(&hop_limit) = l3.get(7) {
        key.set(Dim::Ttl, hop_limit.into());
    }
}

/// Whether a packet addressed to us is ours to end (decapsulate): not when a source route
/// still has hops to go (IPv4 LSRR or SSRR with its pointer inside the route, RFC 791; an
/// IPv6 routing header with segments left, RFC 8200 §4.4, which for type 0 also says
/// discard, RFC 5095), nor when an options header holds an option whose type says to
/// discard a packet whose node does not know it (RFC 8200 §4.2): transitd knows none, nor
/// when it is malformed as Linux's `ip6_parse_tlv` refuses it: an option running past its
/// header, padding longer than the 7 bytes alignment needs, or padding that is not zero
/// (RFC 4942 §2.1.9.5: a covert channel). `l3` is the IP packet; only headers before the
/// transport are read.
pub(in crate::pipeline) fn terminable(l3: &[u8], ip: &IpFrame) -> bool {
    if !ip.is_ipv6 {
        return !ip.routed_onward; // read with the options' form, by the parser
    }
    let mut next = l3.get(6).copied().unwrap_or(0);
    let mut at = 40;
    for _ in 0..ip.extension_headers {
        let Some(header) = l3.get(at..at + 8) else { return true };
        let len = match next {
            0 | 60 | 43 => (usize::from(header[1]) + 1) * 8,
            44 => 8,
            _ => return true,
        };
        let Some(whole) = l3.get(at..at + len) else { return true };
        if next == 43 && whole[3] > 0 {
            return false; // segments left
        }
        if matches!(next, 0 | 60) && !options_allow_ending(whole) {
            return false;
        }
        next = header[0];
        at += len;
    }
    true
}

/// True when an options header (`header`, whole) is well formed and holds no option that
/// says to discard a packet whose node does not know it (see [`terminable`]).
fn options_allow_ending(header: &[u8]) -> bool {
    let mut padding = 0; // consecutive padding bytes
    for (option_type, data) in Ipv6Options::new(header.get(2..).unwrap_or_default()) {
        let Some(data) = data else {
            return false; // past the header's end
        };
        match option_type {
            PAD1 => padding += 1,
            PADN if data.iter().any(|&b| b != 0) => return false,
            PADN => padding += 2 + data.len(),
            _ if option_type >> 6 != 0 => return false, // "discard if unknown" (01, 10, 11)
            _ => padding = 0,
        }
        if padding > 7 {
            return false;
        }
    }
    true
}

/// Pad1, the option that is a lone byte (RFC 8200 §4.2).
const PAD1: u8 = 0;
/// PadN, padding of two or more bytes, its data zeros (RFC 8200 §4.2).
const PADN: u8 = 1;

/// The options of an IPv6 options header (Hop-by-Hop or Destination Options, RFC 8200
/// §4.2), each as its type and data: Pad1 a lone byte with no data, every other option
/// type, length, then that many bytes of data. An option whose length or data runs past
/// the end comes with `None` for its data, and is the last.
struct Ipv6Options<'a> {
    rest: &'a [u8],
}

impl<'a> Ipv6Options<'a> {
    /// Walks `area`, the header past its next header and length bytes.
    const fn new(area: &'a [u8]) -> Self {
        Ipv6Options { rest: area }
    }
}

impl<'a> Iterator for Ipv6Options<'a> {
    type Item = (u8, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (&option_type, tail) = self.rest.split_first()?;
        if option_type == PAD1 {
            self.rest = tail;
            return Some((PAD1, Some(&[])));
        }
        match tail.split_first().and_then(|(&len, tail)| tail.split_at_checked(usize::from(len))) {
            Some((data, rest)) => {
                self.rest = rest;
                Some((option_type, Some(data)))
            }
            None => {
                self.rest = &[];
                Some((option_type, None))
            }
        }
    }
}

/// An IPv6 packet's layers as far as they are headers.
struct Ipv6Layer<'a> {
    header: Ipv6HeaderSlice<'a>,
    /// What follows the last header: the transport header, or a later fragment's data.
    payload: &'a [u8],
    /// The protocol of `payload` (for a later fragment, the fragment header's next header).
    ip_number: IpNumber,
    /// Extension headers read.
    extension_headers: u16,
    /// One of them is an authentication header.
    under_ah: bool,
    /// Offset in bytes and the more-fragments flag of the fragment header that fragments
    /// the payload, if one does (an atomic fragment, offset 0 and no more, does not: RFC
    /// 6946).
    fragment: Option<(u32, bool)>,
    /// The first fragment header of the chain, atomic or not (`ipv6.fraghdr.*`).
    fragment_header: Option<FragmentHeader>,
    /// A routing header with segments left, not of type 2 ([`IpFrame::routed_onward`]).
    routed_onward: bool,
    /// A Hop-by-Hop header came after another header, where RFC 8200 §4.1 forbids it: read
    /// on through as tshark reads it, and dropped.
    hop_by_hop_misplaced: bool,
    /// A fragment header came after another (RFC 8200 §4.1: each extension header once,
    /// Destination Options aside): read on through, and dropped. Rules read the first
    /// (`ipv6.fraghdr.*`), so an atomic one (RFC 6946) before a real one hid the fragment
    /// from them. No source fragments twice, and Linux discards such a packet
    /// (`ipv6_frag_rcv` refuses a fragment header behind one it has taken).
    fragment_header_repeated: bool,
}

/// The IPv6 header and its extension headers (RFC 8200 §4), each read with etherparse's
/// slice for it and checked as `Ipv6Slice::from_slice` checks them, up to the transport
/// header, or up to a fragment header at a non-zero offset: what follows that one is a
/// later piece of the fragmentable part, data, which etherparse's own walk reads on as
/// headers (a later fragment whose next header is destination options, routing or AH was
/// refused as malformed or truncated). A Hop-by-Hop header after another header, which
/// etherparse refuses, is read on through as tshark reads it (its layout is a Destination
/// Options header's) and marked, for the caller to drop the packet with its transport's
/// fields in the key; so is a second fragment header. A header that runs past the payload
/// length is `truncated`, or in a first fragment `tiny_fragment` ([`chain_cut_short`]).
fn ipv6_layer(l3: &[u8]) -> Result<Ipv6Layer<'_>, DropReason> {
    use etherparse::err::ip_auth;
    let (header, mut rest) = ipv6_fixed_header(l3)?;
    let mut ip_number = header.next_header();
    let mut extension_headers = 0u16;
    let mut under_ah = false;
    let mut fragment = None;
    let mut fragment_header = None;
    let mut routed_onward = false;
    let mut hop_by_hop_misplaced = false;
    let mut fragment_header_repeated = false;
    loop {
        let (len, next) = match ip_number {
            IpNumber::IPV6_HEADER_HOP_BY_HOP | IpNumber::IPV6_DESTINATION_OPTIONS | IpNumber::IPV6_ROUTE_HEADER => {
                // Hop-by-hop options only directly after the IPv6 header (RFC 8200 §4.1).
                hop_by_hop_misplaced |= ip_number == IpNumber::IPV6_HEADER_HOP_BY_HOP && extension_headers > 0;
                let e = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| chain_cut_short(fragment))?;
                if ip_number == IpNumber::IPV6_ROUTE_HEADER
                    && let [_, _, routing_type, segments_left, ..] = *e.slice()
                {
                    routed_onward |= segments_left > 0 && routing_type != 2;
                }
                (e.slice().len(), e.next_header())
            }
            IpNumber::AUTHENTICATION_HEADER => {
                let e = IpAuthHeaderSlice::from_slice(rest).map_err(|e| match e {
                    ip_auth::HeaderSliceError::Len(_) => chain_cut_short(fragment),
                    ip_auth::HeaderSliceError::Content(_) => DropReason::BadIpExtHeader,
                })?;
                under_ah = true;
                (e.slice().len(), e.next_header())
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let f = Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| chain_cut_short(fragment))?;
                let offset = u32::from(f.fragment_offset().value()) * 8;
                fragment_header_repeated |= fragment_header.is_some();
                fragment_header = fragment_header.or(Some(FragmentHeader::of(&f)));
                if f.is_fragmenting_payload() {
                    fragment = Some((offset, f.more_fragments()));
                }
                if offset > 0 {
                    // The data of a later fragment: no header of it is ours to read.
                    extension_headers = extension_headers.saturating_add(1);
                    rest = &rest[f.slice().len()..];
                    ip_number = f.next_header();
                    break;
                }
                (f.slice().len(), f.next_header())
            }
            _ => break,
        };
        extension_headers = extension_headers.saturating_add(1);
        rest = &rest[len..];
        ip_number = next;
    }
    Ok(Ipv6Layer {
        header,
        payload: rest,
        ip_number,
        extension_headers,
        under_ah,
        fragment,
        fragment_header,
        routed_onward,
        hop_by_hop_misplaced,
        fragment_header_repeated,
    })
}

/// The fixed IPv6 header (RFC 8200 §3) and the bytes its payload length gives: the extension
/// headers and what follows them. Called once per IPv6 packet, from [`ipv6_layer`] alone
/// (`#[inline]`: no call is added to the walk).
#[inline]
fn ipv6_fixed_header(l3: &[u8]) -> Result<(Ipv6HeaderSlice<'_>, &[u8]), DropReason> {
    // The version before the length, as tshark reads them ("Bogus IPv6 version" however few
    // the bytes): a short IPv4 packet under GRE protocol type 0x86dd is a bad IPv6 header,
    // not an IPv6 header cut short. etherparse checks the length first.
    if l3.first().is_some_and(|b| b >> 4 != 6) {
        return Err(DropReason::BadIpv6Header);
    }
    let header = Ipv6HeaderSlice::from_slice(l3).map_err(|e| match e {
        ipv6::HeaderSliceError::Len(_) => DropReason::Truncated,
        ipv6::HeaderSliceError::Content(_) => DropReason::BadIpv6Header,
    })?;
    // Payload length 0 announces a jumbogram (RFC 2675), which needs more than 65535
    // payload bytes and so never fits a frame; with anything but "no next header" behind
    // it, the length is a lie.
    if header.payload_length() == 0 && header.next_header() != IpNumber::IPV6_NO_NEXT_HEADER {
        return Err(DropReason::BadIpv6Header);
    }
    let payload = l3.get(40..40 + usize::from(header.payload_length())).ok_or(DropReason::Truncated)?;
    Ok((header, payload))
}

/// What a header of the chain that runs past the payload length makes of the packet (the
/// walk's bytes end where the payload length says, and a capture cut short of that was
/// refused before it): in a first fragment (`fragment`, the walk's so far: offset 0, more to
/// come) a tiny fragment, which does not hold the whole header chain up to the upper-layer
/// header (RFC 7112 §5, RFC 8200 §4.5: discarded; its later fragments would bring what no
/// filter read); in any other packet, a payload length that lies.
#[cold]
fn chain_cut_short(fragment: Option<(u32, bool)>) -> DropReason {
    match fragment {
        Some((0, true)) => DropReason::TinyFragment,
        _ => DropReason::Truncated,
    }
}

fn fill_ipv6(key: &mut Key, h: &Ipv6HeaderSlice<'_>) {
    if let Some(&first) = h.slice().first_chunk::<4>() {
        fill_class_and_flow(key, first); // always there: the slice is the whole header
    }
    key.set_ipv6(h.source(), h.destination(), h.next_header().0, h.hop_limit(), h.payload_length());
}

/// The traffic class and the flow label, from the header's first four bytes (RFC 8200 §3:
/// version 4 bits, traffic class 8, flow label 20).
fn fill_class_and_flow(key: &mut Key, [b0, b1, b2, b3]: [u8; 4]) {
    fill_traffic_class(key, (b0 << 4) | (b1 >> 4));
    key.set(Dim::Ipv6Flow, u32::from_be_bytes([0, b1 & 0x0f, b2, b3]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::ABSENT;
    use classifier::field::IPV6_CUT_BEFORE_DST;
    use etherparse::Ipv6Slice;

    #[test]
    fn a_header_cut_short_keeps_the_fields_whose_bytes_are_there() {
        // Version 6, traffic class 0xb8, flow label 0x12345, payload length 8, next header UDP,
        // hop limit 63, 2001:db8::1 to 2001:db8::2. tshark 4.0 shows the class and the label
        // from 4 bytes, the length and the next header from 7, the hop limit from 8, the
        // source from 24, and no destination short of 40 (dataplane/tests/match_oracle.rs).
        let mut l3 = vec![0x6b, 0x81, 0x23, 0x45, 0, 8, 17, 63];
        l3.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        l3.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let cut = |l3: &[u8], n: usize| {
            let mut key = Key::new(0);
            let parsed = parse_ipv6(&mut key, &l3[..n], 14);
            (key, parsed)
        };
        let (key, parsed) = cut(&l3, 3);
        assert_eq!(parsed, Parsed::Bad(DropReason::Truncated));
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::Tos)], [u32::from(BOGUS_IPV6), ABSENT]);
        let (key, _) = cut(&l3, 4);
        assert_eq!([key.get(Dim::Tos), key.get(Dim::Ipv6Flow), key.get(Dim::IpLen)], [0xb8, 0x12345, ABSENT]);
        let (key, _) = cut(&l3, 7);
        assert_eq!([key.get(Dim::IpLen), key.get(Dim::IpProto), key.get(Dim::Ttl)], [8, 17, ABSENT]);
        let (key, _) = cut(&l3, 23);
        assert_eq!(
            [key.get(Dim::Ttl), key.get(Dim::IpVersion), key.get(Dim::Src0)],
            [63, u32::from(BOGUS_IPV6), ABSENT]
        );
        let (key, _) = cut(&l3, 24);
        assert_eq!(key.get(Dim::IpVersion), u32::from(IPV6_CUT_BEFORE_DST));
        assert_eq!(key.src_addr(), (0x2001_0db8_u128 << 96) | 1);
        assert_eq!(cut(&l3, 39).0.get(Dim::IpVersion), u32::from(IPV6_CUT_BEFORE_DST));
        assert_eq!(cut(&l3, 40).0.get(Dim::IpVersion), 6);
        // A version other than 6: `ipv6` and nothing more, cut short or not.
        l3[0] = 0x4b;
        let (key, _) = cut(&l3, 8);
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::Ttl)], [u32::from(BOGUS_IPV6), ABSENT]);
    }

    #[test]
    fn a_later_fragment_past_its_bytes_ends_ipv6_at_the_fixed_header() {
        // Version 6, payload length 300 (more than the 24 bytes there), next header 60,
        // hop limit 64, 2001:db8::1 to 2001:db8::2; Destination Options (next header 44, PadN
        // of 4); a fragment header (next header UDP, offset 8 units, more fragments); 8 bytes
        // of data. tshark 4.0 ends a later fragment's `ipv6` at the fixed header, as it ends a
        // whole one's (dataplane/tests/match_oracle.rs); a first fragment's takes in its
        // headers.
        let mut l3 = vec![0x60, 0, 0, 0, 0x01, 0x2c, 60, 64];
        l3.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        l3.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        l3.extend([44, 0, 1, 4, 0, 0, 0, 0]);
        l3.extend([17, 0, 0x00, 0x41, 0, 0, 0, 9]);
        l3.extend([0xaa; 8]);
        let mut key = Key::new(0);
        assert_eq!(parse_ipv6(&mut key, &l3, 14), Parsed::Bad(DropReason::Truncated));
        assert_eq!(key.get(Dim::L4At), 14 + 40);
        l3[51] = 0x01; // offset 0, more fragments: the first fragment
        let mut key = Key::new(0);
        assert_eq!(parse_ipv6(&mut key, &l3, 14), Parsed::Bad(DropReason::Truncated));
        assert_eq!(key.get(Dim::L4At), 14 + 40 + 16);
    }

    #[test]
    fn ipv6_options_walk_pad1_alone_and_ends_at_an_option_past_the_header() {
        // Pad1; PadN with 1 byte of data; type 0x05 with 2 bytes; then 0xc2 whose length (4)
        // runs past the area.
        let area = [0, 1, 1, 0, 0x05, 2, 0xaa, 0xbb, 0xc2, 4, 0, 0];
        let walked: Vec<_> = Ipv6Options::new(&area).collect();
        let expected: [(u8, Option<&[u8]>); 4] =
            [(PAD1, Some(&[])), (PADN, Some(&[0])), (0x05, Some(&[0xaa, 0xbb])), (0xc2, None)];
        assert_eq!(walked, expected);
        // A type byte without its length byte.
        assert_eq!(Ipv6Options::new(&[0, 0x05]).collect::<Vec<_>>(), [(PAD1, Some(&[][..])), (0x05, None)]);
    }

    #[test]
    fn a_jumbo_payload_length_is_taken_where_tshark_takes_it() {
        // A fixed header of payload length 0 and next header Hop-by-Hop, then `hbh`. tshark
        // 4.0 (scapy-made jumbograms, dataplane/tests/match_oracle.rs) takes the first Jumbo
        // Payload option (0xc2) of length 4 that starts inside the header and whose bytes
        // are there, if it says more than 65,535 and 40 more fit 32 bits.
        let len_of = |hbh: &[u8]| {
            let mut l3 = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
            l3.extend([0x20; 32]);
            l3.extend(hbh);
            jumbo_payload_len(&l3)
        };
        let jumbo = |len: u32| [[0xc2, 4].as_slice(), &len.to_be_bytes()[..]].concat();
        // Next header UDP, length 0 (8 bytes), the option.
        let plain = |len: u32| [[17, 0].as_slice(), &jumbo(len)[..]].concat();
        assert_eq!(len_of(&plain(70_000)), Some(70_000));
        assert_eq!(len_of(&plain(65_536)), Some(65_536));
        assert_eq!(len_of(&plain(65_535)), None);
        assert_eq!(len_of(&plain(0xffff_ffd7)), Some(0xffff_ffd7));
        assert_eq!(len_of(&plain(0xffff_ffd8)), None);
        assert_eq!(len_of(&plain(70_000)[..7]), None, "its last byte not captured");
        // After PadN, after a Jumbo Payload option of length 5 (16-byte header), at the
        // header's last byte (running past it), at its end (not its option).
        let padded = [[17, 1, 1, 0].as_slice(), &jumbo(70_000)[..], &[1, 4, 0, 0, 0, 0][..]].concat();
        assert_eq!(len_of(&padded), Some(70_000));
        let after_five = [[17, 1, 0xc2, 5, 0, 0, 0, 0, 0].as_slice(), &jumbo(70_000)[..], &[0][..]].concat();
        assert_eq!(len_of(&after_five), Some(70_000));
        assert_eq!(len_of(&[[17, 0, 0, 0, 0, 0, 0].as_slice(), &jumbo(70_000)[..]].concat()), Some(70_000));
        assert_eq!(len_of(&[[17, 0, 0, 0, 0, 0, 0, 0].as_slice(), &jumbo(70_000)[..]].concat()), None);
        // The first of length 4 decides, whatever follows.
        assert_eq!(len_of(&[[17, 1].as_slice(), &jumbo(100)[..], &jumbo(70_000)[..], &[1, 0][..]].concat()), None);
        // Behind a payload length that is not 0 the option is not read.
        let mut l3 = vec![0x60, 0, 0, 0, 0, 8, 0, 64];
        l3.extend([0x20; 32]);
        l3.extend(plain(70_000));
        assert_eq!(jumbo_payload_len(&l3), None);
    }

    proptest::proptest! {
        /// Short of a later fragment, the IPv6 extension-header walk reads what etherparse's
        /// `Ipv6Slice::from_slice` reads: the same payload, protocol, fragmentation and number
        /// of headers, or the same kind of error. Chains of hop-by-hop, routing, fragment
        /// (offset 0, more or not), destination-options and AH headers, in any order, with
        /// any lengths, any final protocol, any payload length field. A Hop-by-Hop header
        /// after another, which etherparse refuses, the walk reads as etherparse reads a
        /// Destination Options header in its place (the same layout), and marks; it marks a
        /// second fragment header too, where etherparse's headers hold two.
        #[test]
        fn ipv6_walk_reads_as_etherparse(
            chain in proptest::collection::vec((proptest::sample::select(vec![0u8, 43, 44, 60, 51]), 0u8..4, proptest::prelude::any::<bool>()), 0..5),
            last in proptest::prop_oneof![proptest::strategy::Just(6u8), proptest::strategy::Just(59), proptest::prelude::any::<u8>()],
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            length_error in proptest::prop_oneof![proptest::strategy::Just(0i32), -16i32..16],
        ) {
            let packet = |chain: &[(u8, u8, bool)], last: u8| {
                let first = chain.first().map_or(last, |c| c.0);
                let mut exts = Vec::new();
                for (i, &(kind, len, more)) in chain.iter().enumerate() {
                    let next = chain.get(i + 1).map_or(last, |c| c.0);
                    match kind {
                        44 => exts.extend([next, 0, 0, u8::from(more), 0, 0, 0, 7]),
                        // AH: payload length in 4-byte units less 2 (0 is malformed).
                        51 => {
                            exts.extend([next, len, 0, 0]);
                            exts.extend(std::iter::repeat_n(0, (usize::from(len) + 2) * 4 - 4));
                        }
                        _ => {
                            exts.extend([next, len]);
                            exts.extend(std::iter::repeat_n(0, (usize::from(len) + 1) * 8 - 2));
                        }
                    }
                }
                exts.extend(&tail);
                let payload_len = (exts.len() as i32 + length_error).clamp(0, 0xffff) as u16;
                let mut l3 = vec![0x60, 0, 0, 0];
                l3.extend(payload_len.to_be_bytes());
                l3.extend([first, 64]);
                l3.extend([0x20; 32]);
                l3.extend(&exts);
                l3
            };
            // etherparse's packet: each Hop-by-Hop header after the first place a Destination
            // Options header.
            let as_options = |i: usize, kind: u8| if i > 0 && kind == 0 { 60 } else { kind };
            let options_chain: Vec<(u8, u8, bool)> =
                chain.iter().enumerate().map(|(i, &(kind, len, more))| (as_options(i, kind), len, more)).collect();
            let options_last = as_options(chain.len(), last);
            let misplaced = options_chain != chain || options_last != last;
            let (l3, theirs_l3) = (packet(&chain, last), packet(&options_chain, options_last));
            let (first, payload_len) = (l3[6], u16::from_be_bytes([l3[4], l3[5]]));
            let ours = ipv6_layer(&l3);
            if payload_len == 0 {
                // A jumbogram's length: refused before any extension header is read.
                proptest::prop_assert!(first == 59 || matches!(ours, Err(DropReason::BadIpv6Header)));
                return Ok(());
            }
            let offset = |inner: &[u8], outer: &[u8]| inner.as_ptr() as usize - outer.as_ptr() as usize;
            // A chain that runs past the payload length (all of which is there) behind a
            // fragment header that fragments the payload, as etherparse's own walk reads up to
            // where it stops: a first fragment (the chain's fragment headers are all at offset
            // 0) without its whole header chain, a tiny fragment (RFC 7112 §5).
            let cut_in_a_first_fragment = theirs_l3.get(40..40 + usize::from(payload_len)).is_some_and(|exts| {
                etherparse::Ipv6ExtensionsSlice::from_slice_lax(IpNumber(first), exts).0.is_fragmenting_payload()
            });
            match (Ipv6Slice::from_slice(&theirs_l3), ours) {
                (Ok(ip), Ok(walk)) => {
                    proptest::prop_assert_eq!(walk.hop_by_hop_misplaced, misplaced);
                    let theirs_at = offset(ip.payload().payload, &theirs_l3[..]);
                    proptest::prop_assert_eq!(offset(walk.payload, &l3[..]), theirs_at);
                    proptest::prop_assert_eq!(walk.payload.len(), ip.payload().payload.len());
                    proptest::prop_assert_eq!(walk.ip_number, ip.payload().ip_number);
                    proptest::prop_assert_eq!(walk.fragment.is_some(), ip.payload().fragmented);
                    proptest::prop_assert_eq!(usize::from(walk.extension_headers), ip.extensions().clone().into_iter().count());
                    let headers = ip.extensions().clone().into_iter();
                    let fragment_headers =
                        headers.filter(|e| matches!(e, etherparse::Ipv6ExtensionSlice::Fragment(_))).count();
                    proptest::prop_assert_eq!(walk.fragment_header_repeated, fragment_headers > 1);
                }
                // A Hop-by-Hop header the tail's bytes chain on: the walk reads on past it,
                // to the transport or to a later fault.
                (Err(ipv6::SliceError::Exts(etherparse::err::ipv6_exts::HeaderError::HopByHopNotAtStart)), ours) => {
                    proptest::prop_assert!(ours.as_ref().is_ok_and(|w| w.hop_by_hop_misplaced) || ours.is_err());
                }
                (Err(e), Err(reason)) => {
                    let theirs = match e {
                        ipv6::SliceError::Len(_) if cut_in_a_first_fragment => DropReason::TinyFragment,
                        ipv6::SliceError::Len(_) => DropReason::Truncated,
                        ipv6::SliceError::Header(_) => DropReason::BadIpv6Header,
                        ipv6::SliceError::Exts(_) => DropReason::BadIpExtHeader,
                    };
                    proptest::prop_assert_eq!(reason, theirs);
                }
                (theirs, ours) => {
                    proptest::prop_assert!(false, "etherparse {:?}, ours {:?}", theirs.map(|_| ()), ours.map(|_| ()));
                }
            }
        }
    }
}
