//! The parse stage: one frame's headers, read with etherparse, into a classifier [`Key`]
//! and the offsets later stages rewrite.
//!
//! Ethernet, up to three 802.1Q/802.1ad tags, IPv4 (options, fragments), IPv6 and its
//! extension headers, then TCP, UDP, ICMP or ICMPv6; MPLS label stacks and what they carry
//! (IP, or an Ethernet pseudowire) for the key. Each layer is sliced with etherparse's
//! own slice type (`Ethernet2Slice`, `SingleVlanSlice`, `Ipv4Slice`, ...) rather than its
//! `SlicedPacket` walker, whose large result is copied at every layer (measured: half the
//! parse time; docs/benchmarks.md), except for the plain IPv4 header (20 bytes, its total
//! length inside the buffer), which is read straight from the bytes and held to etherparse's
//! reading by a property test. etherparse checks every length field against the buffer, so
//! a header that claims more bytes than the frame holds is `truncated`, never read past.
//! Fields of the layers that did parse stay in the key of a malformed frame (for `match` and
//! drop captures), and a header tshark calls bogus is in it as tshark shows it (its protocol,
//! `classifier::field::BOGUS_IPV4`); the pipeline drops the frame either way.

use classifier::field::{BOGUS_IPV4, BOGUS_IPV6};
use classifier::{Dim, Key};
use etherparse::err::{ipv4, ipv6, tcp};
use etherparse::{
    EtherType, Ethernet2Slice, IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv4Slice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, LaxIpv4Slice, LaxIpv6Slice, SingleVlanSlice,
};
use gre::ip::{Ipv4Options, option};

use super::verdict::DropReason;

/// What parsing found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An IP packet, ready for the later stages.
    Ip(IpFrame),
    /// Not IP (ARP, LLDP, ...).
    NotIp,
    /// An MPLS frame (its key holds the labels and, where it could be read, the payload's
    /// headers).
    Mpls,
    /// Malformed, with the reason it must be dropped.
    Bad(DropReason),
}

/// Where the IP packet sits in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpFrame {
    /// IPv6 rather than IPv4.
    pub is_ipv6: bool,
    /// Offset of the IP header in the frame.
    pub l3_start: usize,
    /// Length of the IP packet (from its length field; Ethernet padding excluded).
    pub l3_len: usize,
    /// IPv4 header length (for the checksum), 40 for IPv6.
    pub header_len: usize,
    /// Offset of the transport header (after any IPv6 extension headers) in the frame.
    pub l4_start: usize,
    /// Set when the packet is a fragment.
    pub fragment: Option<Fragment>,
    /// IPv6 extension headers before the transport header (0 for IPv4).
    pub extension_headers: u8,
    /// An authentication header (RFC 4302) precedes the transport header. transitd holds no
    /// security association and does not verify it.
    pub under_ah: bool,
    /// A source route that still has hops to go, on through the destination to somewhere
    /// else. IPv4: a loose or strict source route (RFC 791) whose pointer inside the route
    /// names a hop after the header's destination (which tshark shows as `ip.dst`). IPv6: a
    /// routing header with segments left (RFC 8200 §4.4), but for type 2 (Mobile IPv6's,
    /// RFC 6275 §6.4, whose one segment is the destination's own home address).
    pub routed_onward: bool,
}

impl IpFrame {
    /// A placeholder for storage that a parse fills before anyone reads it.
    pub const NONE: IpFrame = IpFrame {
        is_ipv6: false,
        l3_start: 0,
        l3_len: 0,
        header_len: 0,
        l4_start: 0,
        fragment: None,
        extension_headers: 0,
        under_ah: false,
        routed_onward: false,
    };
}

/// Where a fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of its data in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// Bytes of data after the IP header (and any IPv6 extension headers).
    pub data_len: usize,
    /// Bytes before the data that the reassembled datagram's length field counts: IPv4's
    /// header; for IPv6, the extension headers but the fragment header (RFC 8200 §4.5).
    pub headers: usize,
    /// The protocol of the data (TCP, UDP, ...).
    pub protocol: u8,
}

/// EtherTypes of an MPLS label stack (unicast, multicast).
const MPLS_ETHERTYPES: [EtherType; 2] = [EtherType(0x8847), EtherType(0x8848)];

/// EtherTypes that announce a VLAN tag.
const VLAN_ETHERTYPES: [EtherType; 3] =
    [EtherType::VLAN_TAGGED_FRAME, EtherType::PROVIDER_BRIDGING, EtherType::VLAN_DOUBLE_TAGGED_FRAME];

/// Parses `frame`; `wire_len` is its length on the wire (for `frame.len`).
pub fn parse_frame(frame: &[u8], wire_len: u32) -> (Key, Parsed) {
    let mut key = Key::new(wire_len);
    let parsed = parse_frame_into(&mut key, frame, wire_len);
    (key, parsed)
}

/// [`parse_frame`] into a key the caller keeps (the batch's own storage: a key is larger
/// than a cache line, and copying it out of a return value showed in profiles).
#[inline]
pub fn parse_frame_into(key: &mut Key, frame: &[u8], wire_len: u32) -> Parsed {
    key.reset(wire_len);
    parse_into(key, frame)
}

/// Parses the IP packet at `frame[start..]` (a tunnel's payload, whose GRE protocol type
/// is `ether_type`) into `key`, which the caller made for it with `Key::new(wire_len)` (one
/// initialisation of the 316 bytes, not a second here; and a key returned by value was a
/// copy more); offsets in the result are the frame's.
pub(super) fn parse_inner(key: &mut Key, frame: &[u8], start: usize, ether_type: u16) -> Parsed {
    let l3 = frame.get(start..).unwrap_or(&[]);
    match EtherType(ether_type) {
        EtherType::IPV4 => parse_ipv4(key, l3, start),
        EtherType::IPV6 => parse_ipv6(key, l3, start),
        _ => Parsed::NotIp,
    }
}

/// Offset of `inner` within `outer` (a subslice of it).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

fn parse_into(key: &mut Key, frame: &[u8]) -> Parsed {
    parse_ethernet(key, frame, 0, false)
}

/// The Ethernet header at `frame[start..]` and what it carries. `in_pseudowire`: this header
/// came out of an MPLS pseudowire, which may not nest another.
fn parse_ethernet(key: &mut Key, frame: &[u8], start: usize, in_pseudowire: bool) -> Parsed {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(frame.get(start..).unwrap_or(&[])) else {
        return Parsed::Bad(DropReason::Truncated);
    };
    if !in_pseudowire {
        key.set_ethernet(eth.ether_type().0, eth.source(), eth.destination());
    }
    let mut ether_type = eth.ether_type();
    let mut rest = eth.payload_slice();
    for _ in 0..3 {
        if !VLAN_ETHERTYPES.contains(&ether_type) {
            break;
        }
        let Ok(vlan) = SingleVlanSlice::from_slice(rest) else { return Parsed::Bad(DropReason::Truncated) };
        if !record_tag(key, ether_type, vlan.vlan_identifier().value()) {
            return Parsed::Bad(DropReason::TooManyVlanTags);
        }
        ether_type = vlan.ether_type();
        rest = vlan.payload_slice();
    }
    let l3_start = frame.len() - rest.len();
    match ether_type {
        EtherType::IPV4 => parse_ipv4(key, rest, l3_start),
        EtherType::IPV6 => parse_ipv6(key, rest, l3_start),
        t if MPLS_ETHERTYPES.contains(&t) && !in_pseudowire => parse_mpls(key, frame, l3_start),
        // etherparse reads three tags; a fourth is an attack or a mistake.
        t if VLAN_ETHERTYPES.contains(&t) => too_many_vlan_tags(key, frame, rest, t),
        _ => Parsed::NotIp,
    }
}

/// Records a tag's VLAN ID: Wireshark's `vlan` is an 802.1Q tag, an 802.1ad service tag is
/// `ieee8021ad`. False for an 802.1Q tag past the three the key holds.
#[inline(always)]
fn record_tag(key: &mut Key, ether_type: EtherType, id: u16) -> bool {
    if ether_type == EtherType::PROVIDER_BRIDGING {
        key.set_service_vlan(id);
        return true;
    }
    key.push_vlan(id)
}

/// The tags from a fourth on (`rest`, announced by `ether_type`), and what they carry: the
/// frame is dropped, but tshark reads the IP packet under any number of tags, and so does the
/// key (the IDs of 802.1Q tags past the third aside).
#[cold]
fn too_many_vlan_tags(key: &mut Key, frame: &[u8], mut rest: &[u8], mut ether_type: EtherType) -> Parsed {
    // Each tag takes four bytes, so the frame's length bounds the walk.
    while VLAN_ETHERTYPES.contains(&ether_type) {
        let Ok(vlan) = SingleVlanSlice::from_slice(rest) else { return Parsed::Bad(DropReason::TooManyVlanTags) };
        let _ = record_tag(key, ether_type, vlan.vlan_identifier().value());
        ether_type = vlan.ether_type();
        rest = vlan.payload_slice();
    }
    let l3_start = frame.len() - rest.len();
    // Only the key is wanted: the frame is dropped whatever it carries.
    let _ = match ether_type {
        EtherType::IPV4 => parse_ipv4(key, rest, l3_start),
        EtherType::IPV6 => parse_ipv6(key, rest, l3_start),
        _ => Parsed::NotIp,
    };
    Parsed::Bad(DropReason::TooManyVlanTags)
}

/// An MPLS label stack at `frame[start..]` and, for the key, what its bottom carries, told as
/// Wireshark 4.0 tells it (RFC 4928's first-nibble convention): IPv4 after a 4, IPv6 after
/// a 6, an Ethernet pseudowire (RFC 4448) after a 0. The frame is [`Parsed::Mpls`] whatever
/// the payload: labels are a contract with the router that pushed them, so what the data
/// plane does with it is the `[server] mpls` setting's, not the payload's.
fn parse_mpls(key: &mut Key, frame: &[u8], start: usize) -> Parsed {
    let mut at = start;
    loop {
        // Each entry takes four bytes, so the frame's length bounds the walk.
        let Some(&[a, b, c, d]) = frame.get(at..at + 4).and_then(|e| <&[u8; 4]>::try_from(e).ok()) else {
            return Parsed::Bad(DropReason::Truncated);
        };
        let entry = u32::from_be_bytes([a, b, c, d]);
        key.push_mpls(entry); // the first three; deeper entries are not recorded
        at += 4;
        if entry & 0x100 != 0 {
            break; // bottom of stack
        }
    }
    let payload = &frame[at..];
    // Only the key is wanted: a malformed payload does not change the frame's fate.
    let _ = match payload.first().map(|b| b >> 4) {
        Some(4) => parse_ipv4(key, payload, at),
        Some(6) => parse_ipv6(key, payload, at),
        Some(0) => parse_ethernet(key, frame, if has_control_word(payload) { at + 4 } else { at }, true),
        _ => Parsed::NotIp,
    };
    Parsed::Mpls
}

/// Whether an Ethernet pseudowire's payload starts with a four-byte control word. Wireshark
/// 4.0 reads a payload as plain Ethernet when both MAC addresses have a vendor in its OUI
/// database and assumes a control word otherwise; transitd has no such database and reads
/// plain Ethernet when the payload's EtherType field (bytes 12-13) announces IP or a VLAN
/// tag, a control word otherwise. (Both readings can find IP: behind a control word, bytes
/// 16-17 are the EtherType, which is also where a plain frame's VLAN tag keeps the type it
/// carries; so the plain reading, which that coincidence cannot fool, decides.) The two
/// differ on frames without a control word between addresses Wireshark does not know, where
/// Wireshark finds no IP at all, and on frames with one whose inner source address has an
/// EtherType as its third and fourth bytes.
fn has_control_word(payload: &[u8]) -> bool {
    let plain_carries_ip = payload.get(12..14).is_some_and(|t| {
        let t = EtherType(u16::from_be_bytes([t[0], t[1]]));
        t == EtherType::IPV4 || t == EtherType::IPV6 || VLAN_ETHERTYPES.contains(&t)
    });
    !plain_carries_ip
}

/// IP protocol number of the authentication header, which etherparse reads as part of the
/// IPv4 layer.
const IPPROTO_AH: u8 = 51;

/// The IPv4 layer's bounds in the plain case, read straight from the bytes: a 20-byte
/// header (no options, no AH behind it) whose total length the buffer holds. Returns the
/// header, the payload, its protocol and whether the packet is a fragment, exactly as
/// etherparse's `Ipv4Slice::from_slice` would (a property test holds the two to it); `None`
/// leaves every other packet to that general walk, whose checks and error kinds cost a
/// tenth of the pipeline's instructions on plain traffic.
#[inline]
fn plain_ipv4(l3: &[u8]) -> Option<(&[u8; 20], &[u8], IpNumber, bool)> {
    let header = l3.first_chunk::<20>()?;
    if header[0] != 0x45 || header[9] == IPPROTO_AH {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let payload = l3.get(20..total_len)?;
    let fragmented = u16::from_be_bytes([header[6], header[7]]) & 0x3fff != 0; // MF or an offset
    Some((header, payload, IpNumber(header[9]), fragmented))
}

#[inline]
fn parse_ipv4(key: &mut Key, l3: &[u8], l3_start: usize) -> Parsed {
    key.set(Dim::L3At, l3_start as u32);
    let (header, payload, ip_number, fragmented) = match plain_ipv4(l3) {
        Some((h, payload, ip_number, fragmented)) => (&h[..], payload, ip_number, fragmented),
        None => match ipv4_layer(l3) {
            Ok(layer) => layer,
            Err(reason) => return bad_ipv4(key, l3, l3_start, reason),
        },
    };
    fill_ipv4(key, header);
    // One walk over the options, for their form and for a source route.
    let routed_onward = ipv4_options(header);
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    let offset = flags_offset & 0x1fff;
    let fragment = fragmented.then(|| Fragment {
        offset: u32::from(offset) * 8,
        more: flags_offset & 0x2000 != 0,
        data_len: payload.len(),
        headers: header.len(),
        protocol: ip_number.0,
    });
    let l4_start = l3_start + offset_in(l3, payload);
    let l4 = parse_l4(key, ip_number, fragmented, offset == 0, payload, l4_start);
    // Malformed options: dropped, but with the transport's fields filled first, as tshark
    // dissects on past them (an expert note, no malformed mark) and shows them.
    let Some(routed_onward) = routed_onward else { return Parsed::Bad(DropReason::BadIpv4Header) };
    if let Some(reason) = l4 {
        return Parsed::Bad(reason);
    }
    Parsed::Ip(IpFrame {
        is_ipv6: false,
        l3_start,
        l3_len: usize::from(u16::from_be_bytes([header[2], header[3]])),
        header_len: header.len(),
        l4_start,
        fragment,
        extension_headers: 0,
        // etherparse walks an AH header at the start of the payload of a whole packet or a
        // first fragment (a later fragment's payload is data).
        under_ah: header[9] == IPPROTO_AH && offset == 0,
        routed_onward,
    })
}

/// An IPv4 layer's header, payload, payload protocol and whether the payload is a fragment.
type Ipv4Layer<'a> = (&'a [u8], &'a [u8], IpNumber, bool);

/// The IPv4 layer's bounds where [`plain_ipv4`] declines: etherparse's general walk, but for
/// a later fragment, whose data is data. etherparse reads an authentication header at the
/// start of every payload whose protocol is 51, while only a first fragment starts with
/// one: a later fragment of an AH datagram was refused as a malformed AH (or truncated).
fn ipv4_layer(l3: &[u8]) -> Result<Ipv4Layer<'_>, DropReason> {
    let later_fragment = l3.get(6..8).is_some_and(|b| u16::from_be_bytes([b[0], b[1]]) & 0x1fff != 0);
    if later_fragment {
        let header = Ipv4HeaderSlice::from_slice(l3).map_err(|e| match e {
            ipv4::HeaderSliceError::Len(_) => DropReason::Truncated,
            ipv4::HeaderSliceError::Content(_) => DropReason::BadIpv4Header,
        })?;
        let header_len = header.slice().len();
        let total_len = usize::from(header.total_len());
        // The checks `Ipv4Slice::from_slice` makes: the total length covers the header,
        // and the buffer holds the total length.
        if total_len < header_len {
            return Err(DropReason::BadIpv4Header); // tshark: "Bogus IP length"
        }
        let payload = l3.get(header_len..total_len).ok_or(DropReason::Truncated)?;
        return Ok((&l3[..header_len], payload, header.protocol(), true));
    }
    // A total length below the header's is a bad header, not a short frame (etherparse
    // reports both as a length error; tshark says "Bogus IP length").
    if let [vihl, _, hi, lo, ..] = *l3 {
        let header_len = usize::from(vihl & 0xf) * 4;
        if vihl >> 4 == 4
            && header_len >= 20
            && l3.len() >= header_len
            && usize::from(u16::from_be_bytes([hi, lo])) < header_len
        {
            return Err(DropReason::BadIpv4Header);
        }
    }
    match Ipv4Slice::from_slice(l3) {
        Ok(ip) => {
            // The header is the start of `l3` (its slice borrows from a temporary).
            let header = l3.get(..ip.header().slice().len()).unwrap_or(l3);
            Ok((header, ip.payload().payload, ip.payload().ip_number, ip.payload().fragmented))
        }
        Err(ipv4::SliceError::Len(_)) => Err(DropReason::Truncated),
        Err(ipv4::SliceError::Header(_)) => Err(DropReason::BadIpv4Header),
        Err(ipv4::SliceError::Exts(_)) => Err(DropReason::BadIpExtHeader),
    }
}

/// An IPv4 packet etherparse refused: why, and in the key what the bytes present hold (a
/// snapped capture, a lying length field), as tshark shows it.
#[cold]
fn bad_ipv4(key: &mut Key, l3: &[u8], l3_start: usize, reason: DropReason) -> Parsed {
    if let Ok((lax, _)) = LaxIpv4Slice::from_slice(l3) {
        let h = lax.header();
        fill_ipv4(key, h.slice());
        let mut total_len = usize::from(h.total_len());
        if total_len == 0 {
            // TCP segmentation offload's, in a capture made on the sending host: tshark 4.0
            // (`ip.tso_support`) takes the packet to run to the end of the bytes, `ip.len`
            // included.
            total_len = l3.len();
            key.set(Dim::IpLen, l3.len().min(0xffff) as u32);
        } else if total_len < h.slice().len() {
            // "Bogus IP length": tshark dissects nothing behind the header.
            return Parsed::Bad(reason);
        }
        let p = lax.payload();
        key.set(Dim::L4At, (l3_start + offset_in(l3, p.payload)) as u32);
        let declared = total_len.saturating_sub(h.slice().len());
        fill_l4_lenient(key, p.ip_number, p.fragmented, h.fragments_offset().value() == 0, p.payload, declared);
    } else {
        unsliced_ipv4(key, l3, l3_start);
    }
    Parsed::Bad(reason)
}

/// An IPv4 header etherparse cannot slice at all, in the key as far as tshark 4.0 reads it.
/// Behind a version of 6 tshark shows `ip`, then hands the bytes to its IPv6 dissector: the
/// key holds the IPv6 packet (without that `ip`: a key holds one IP layer). Behind another
/// version than 4, a header length below 20 or fewer than 20 bytes: `ip`, its header length
/// (of version 4) and its bytes alone ([`BOGUS_IPV4`]). A fixed header whose options run past
/// the bytes: the fixed header's fields, and nothing behind them.
fn unsliced_ipv4(key: &mut Key, l3: &[u8], l3_start: usize) {
    let Some(&version_ihl) = l3.first() else { return }; // no byte, no `ip`
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    match version_ihl >> 4 {
        6 => {
            let _ = parse_ipv6(key, l3, l3_start);
        }
        4 if header_len >= 20 && l3.len() >= 20 => {
            fill_ipv4(key, l3);
            if key.get(Dim::IpLen) == 0 {
                // TCP segmentation offload's, as in `bad_ipv4`.
                key.set(Dim::IpLen, l3.len().min(0xffff) as u32);
            }
        }
        version => {
            key.set(Dim::IpVersion, BOGUS_IPV4.into());
            // Where the header length says the header ends: `ip`'s bytes (classifier::bytes).
            key.set(Dim::L4At, (l3_start + header_len) as u32);
            if version == 4 {
                key.set(Dim::IpHdrLen, header_len as u32);
            }
        }
    }
}

/// Whether the IPv6 packet `l3` begins with a Hop-by-Hop header holding a Jumbo Payload
/// option (type 0xC2, RFC 2675 §2), whose length replaces a payload length of 0.
fn jumbo_payload_option(l3: &[u8]) -> bool {
    const HOP_BY_HOP: u8 = 0;
    const JUMBO: u8 = 0xc2;
    if l3.get(6) != Some(&HOP_BY_HOP) {
        return false;
    }
    let end = l3.get(41).map_or(0, |&len| 40 + (usize::from(len) + 1) * 8);
    let area = l3.get(42..end.min(l3.len())).unwrap_or_default();
    // The option's type is enough, whether or not its data fits what was captured.
    Ipv6Options::new(area).any(|(option_type, _)| option_type == JUMBO)
}

fn parse_ipv6(key: &mut Key, l3: &[u8], l3_start: usize) -> Parsed {
    key.set(Dim::L3At, l3_start as u32);
    let ip = match ipv6_layer(l3) {
        Ok(ip) => ip,
        Err(reason) => {
            if let Ok((lax, _)) = LaxIpv6Slice::from_slice(l3) {
                let h = lax.header();
                fill_ipv6(key, &h);
                if h.payload_length() == 0 && !jumbo_payload_option(l3) {
                    // A jumbogram's length without its option, or TSO's in a capture: tshark's
                    // IPv6 payload is then empty, no extension header is read, and of the
                    // transports only ICMPv6 has a layer without a byte. (With a Jumbo
                    // Payload option in a Hop-by-Hop header, RFC 2675, tshark reads on: so
                    // does the lenient walk below.)
                    if h.next_header() == IpNumber::IPV6_ICMP {
                        key.set(Dim::L4At, (l3_start + 40) as u32);
                        key.set_l4_proto(IpNumber::IPV6_ICMP.0);
                    }
                    return Parsed::Bad(reason);
                }
                let p = lax.payload();
                key.set(Dim::L4At, (l3_start + offset_in(l3, p.payload)) as u32);
                let extensions = offset_in(l3, p.payload).saturating_sub(40);
                let declared = usize::from(h.payload_length()).saturating_sub(extensions);
                // Not first: iterating the extension headers of a lenient
                // slice reads past a header cut short (etherparse 0.21), so a fragment here
                // counts as a later one.
                fill_l4_lenient(key, p.ip_number, p.fragmented, false, p.payload, declared);
            } else {
                // A version other than 6, or fewer than 40 bytes: tshark's `ipv6` all the same
                // (with what fields the bytes hold), and no more.
                key.set(Dim::IpVersion, BOGUS_IPV6.into());
            }
            return Parsed::Bad(reason);
        }
    };
    fill_ipv6(key, &ip.header);
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
    if let Some(reason) = parse_l4(key, ip.ip_number, fragment.is_some(), first, ip.payload, l4_at) {
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

/// Whether a packet addressed to us is ours to end (decapsulate): not when a source route
/// still has hops to go (IPv4 LSRR or SSRR with its pointer inside the route, RFC 791; an
/// IPv6 routing header with segments left, RFC 8200 §4.4, which for type 0 also says
/// discard, RFC 5095), nor when an options header holds an option whose type says to
/// discard a packet whose node does not know it (RFC 8200 §4.2): transitd knows none, nor
/// when it is malformed as Linux's `ip6_parse_tlv` refuses it: an option running past its
/// header, padding longer than the 7 bytes alignment needs, or padding that is not zero
/// (RFC 4942 §2.1.9.5: a covert channel). `l3` is the IP packet; only headers before the
/// transport are read.
pub(super) fn terminable(l3: &[u8], ip: &IpFrame) -> bool {
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
    extension_headers: u8,
    /// One of them is an authentication header.
    under_ah: bool,
    /// Offset in bytes and the more-fragments flag of the fragment header that fragments
    /// the payload, if one does (an atomic fragment, offset 0 and no more, does not: RFC
    /// 6946).
    fragment: Option<(u32, bool)>,
    /// A routing header with segments left, not of type 2 ([`IpFrame::routed_onward`]).
    routed_onward: bool,
}

/// The IPv6 header and its extension headers (RFC 8200 §4), each read with etherparse's
/// slice for it and checked as `Ipv6Slice::from_slice` checks them, up to the transport
/// header, or up to a fragment header at a non-zero offset: what follows that one is a
/// later piece of the fragmentable part, data, which etherparse's own walk reads on as
/// headers (a later fragment whose next header is destination options, routing or AH was
/// refused as malformed or truncated).
fn ipv6_layer(l3: &[u8]) -> Result<Ipv6Layer<'_>, DropReason> {
    use etherparse::err::ip_auth;
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
    let mut rest = l3.get(40..40 + usize::from(header.payload_length())).ok_or(DropReason::Truncated)?;
    let mut ip_number = header.next_header();
    let mut extension_headers = 0u8;
    let mut under_ah = false;
    let mut fragment = None;
    let mut routed_onward = false;
    loop {
        let (len, next) = match ip_number {
            // Hop-by-hop options only directly after the IPv6 header (RFC 8200 §4.1).
            IpNumber::IPV6_HEADER_HOP_BY_HOP if extension_headers > 0 => return Err(DropReason::BadIpExtHeader),
            IpNumber::IPV6_HEADER_HOP_BY_HOP | IpNumber::IPV6_DESTINATION_OPTIONS | IpNumber::IPV6_ROUTE_HEADER => {
                let e = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| DropReason::Truncated)?;
                if ip_number == IpNumber::IPV6_ROUTE_HEADER
                    && let [_, _, routing_type, segments_left, ..] = *e.slice()
                {
                    routed_onward |= segments_left > 0 && routing_type != 2;
                }
                (e.slice().len(), e.next_header())
            }
            IpNumber::AUTHENTICATION_HEADER => {
                let e = IpAuthHeaderSlice::from_slice(rest).map_err(|e| match e {
                    ip_auth::HeaderSliceError::Len(_) => DropReason::Truncated,
                    ip_auth::HeaderSliceError::Content(_) => DropReason::BadIpExtHeader,
                })?;
                under_ah = true;
                (e.slice().len(), e.next_header())
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let f = Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| DropReason::Truncated)?;
                let offset = u32::from(f.fragment_offset().value()) * 8;
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
    Ok(Ipv6Layer { header, payload: rest, ip_number, extension_headers, under_ah, fragment, routed_onward })
}

/// Whether tshark 4.0 has no layer at all for transport `proto` with only `len` bytes of its
/// header, in a whole packet or a first fragment alike: TCP, UDP and UDP-Lite before their
/// ports (4 bytes), ICMP before its sixth byte (it reads the identifier's bytes before it
/// adds its layer, whatever the type), ICMPv6 without a byte behind IPv4 (whose dissector
/// hands an empty payload to none; IPv6's does). `key` holds the IP header's fields. GRE has
/// its layer however short (a difference, docs/rules.md: tshark's begins at 4 bytes): the
/// pipeline knows GRE by it, and GRE from no tunnel's router follows `gre_unsupported`
/// whatever it holds.
#[inline]
fn headless(key: &Key, proto: IpNumber, len: usize) -> bool {
    match proto {
        IpNumber::TCP | IpNumber::UDP | IpNumber::UDP_LITE => len < 4,
        IpNumber::ICMP => len < 6,
        IpNumber::IPV6_ICMP => len == 0 && key.get(Dim::IpVersion) == 4,
        _ => false,
    }
}

/// Parses the transport header. A non-first fragment has none; a first fragment gets what
/// its bytes hold (ports once 4 bytes are there, TCP's fixed header from 16 bytes), as
/// Wireshark shows with reassembly off. Returns why the frame must be dropped, if it must.
fn parse_l4(
    key: &mut Key,
    proto: IpNumber,
    fragmented: bool,
    first: bool,
    payload: &[u8],
    l4_start: usize,
) -> Option<DropReason> {
    key.set(Dim::L4At, l4_start as u32);
    if fragmented {
        // tshark has no TCP or UDP layer before its ports (4 bytes) are there ([`headless`]).
        if first && !headless(key, proto, payload.len()) {
            key.set_l4_proto(proto.0);
            fill_l4_from_bytes(key, proto, payload);
            // A TCP header length below 20 is as bad in a first fragment as in a whole
            // segment (the receiver drops the segment once reassembled); and as tshark shows
            // no flags behind it, neither does the key, so no rule could tell a SYN. One too
            // short to hold the fixed header is the tiny-fragment check's (RFC 1858), which
            // names it better.
            if proto == IpNumber::TCP && payload.len() >= 20 && key.get(Dim::TcpHdrLen) < 20 {
                return Some(DropReason::BadTcpHeader);
            }
        }
        return None;
    }
    // Whole or not, tshark has no TCP or UDP layer before the ports are there, no ICMP layer
    // before six bytes.
    if !headless(key, proto, payload.len()) {
        key.set_l4_proto(proto.0);
    }
    let bad = match proto {
        IpNumber::TCP => match etherparse::TcpSlice::from_slice(payload) {
            Ok(t) => {
                fill_l4_from_bytes(key, proto, t.header_slice());
                // The segment's length as the IP length gives it (Ethernet padding excluded).
                key.set(Dim::L4Len, (payload.len() - t.header_slice().len()) as u32);
                None
            }
            Err(tcp::HeaderSliceError::Len(_)) => Some(DropReason::Truncated),
            // A header length below 20 (etherparse's one content error, behind 20 bytes):
            // tshark gives the segment's length from it all the same.
            Err(tcp::HeaderSliceError::Content(_)) => {
                let header_len = payload.get(12).map_or(0, |&b| usize::from(b >> 4) * 4);
                key.set(Dim::L4Len, payload.len().saturating_sub(header_len) as u32);
                Some(DropReason::BadTcpHeader)
            }
        },
        // RFC 768: the length counts the 8-byte header and runs to the end of the datagram.
        // etherparse takes 0 for "the rest" (a jumbogram's, RFC 2675) and calls a length
        // past the payload a short buffer; the packet here is whole, so both are bad headers.
        IpNumber::UDP => match payload.get(4..6).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) {
            None => Some(DropReason::Truncated),
            Some(len) if len < 8 || len > payload.len() => Some(DropReason::BadUdpHeader),
            Some(_) => {
                fill_l4_from_bytes(key, proto, payload);
                None
            }
        },
        // The 8-byte header is all every ICMP message has; etherparse wants a timestamp
        // message to be exactly 20 bytes, and one with more is as valid (RFC 792 sets no
        // upper bound; tshark and Linux take it).
        IpNumber::ICMP if payload.len() >= 8 => {
            fill_l4_from_bytes(key, proto, payload);
            None
        }
        IpNumber::ICMP => Some(DropReason::Truncated),
        IpNumber::IPV6_ICMP => match etherparse::Icmpv6Slice::from_slice(payload) {
            Ok(i) => {
                key.set_icmp(i.type_u8(), i.code_u8());
                None
            }
            Err(_) => Some(DropReason::Truncated),
        },
        _ => None,
    };
    if bad.is_some() {
        // What the bytes hold is still worth a key (ports of a cut TCP header, say).
        fill_l4_from_bytes(key, proto, payload);
    }
    bad
}

/// RFC 791 options, if well formed: each is EOL, NOP, or a type-length-value whose length
/// stays inside the header and is at least what its type needs (record route and source
/// routes 3, timestamp 4, security 3; stream ID and router alert exactly 4). Routers drop
/// the rest (`None`). `Some(true)` when a loose or strict source route among them still
/// has hops to go: its pointer (1-based, from the option's start) inside the route.
fn ipv4_options(header: &[u8]) -> Option<bool> {
    let mut onward = false;
    for walked in Ipv4Options::new(header.get(20..).unwrap_or(&[])) {
        let o = walked.ok()?;
        let (min, max) = match o.kind {
            option::RECORD_ROUTE | option::LSRR | option::SSRR | option::SECURITY => (3, 40),
            option::TIMESTAMP => (4, 40),
            option::STREAM_ID | option::ROUTER_ALERT => (4, 4),
            _ => (2, 40),
        };
        if !(min..=max).contains(&o.bytes.len()) {
            return None;
        }
        onward |= matches!(o.kind, option::LSRR | option::SSRR) && usize::from(o.bytes[2]) <= o.bytes.len();
    }
    Some(onward)
}

/// The IPv4 header's fields from its bytes (`b`: the header, at least 20 bytes, as every
/// caller's slicing guarantees).
fn fill_ipv4(key: &mut Key, b: &[u8]) {
    let Some(b) = b.first_chunk::<20>() else { return };
    let half = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    key.set(Dim::IpHdrLen, u32::from(b[0] & 0x0f) * 4);
    key.set(Dim::IpId, half(4).into());
    fill_traffic_class(key, b[1]);
    let flags_offset = half(6);
    key.set_ipv4(
        [b[12], b[13], b[14], b[15]],
        [b[16], b[17], b[18], b[19]],
        b[9],
        b[8],
        half(2),
        flags_offset & 0x4000 != 0,
        flags_offset & 0x2000 != 0,
        flags_offset & 0x1fff,
    );
}

fn fill_ipv6(key: &mut Key, h: &Ipv6HeaderSlice<'_>) {
    let b = h.slice();
    fill_traffic_class(key, (b[0] << 4) | (b[1] >> 4));
    key.set(Dim::Ipv6Flow, u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]]));
    key.set_ipv6(h.source(), h.destination(), h.next_header().0, h.hop_limit(), h.payload_length());
}

/// The IPv4 DS field or IPv6 traffic class, and its DSCP and ECN parts.
fn fill_traffic_class(key: &mut Key, tos: u8) {
    key.set(Dim::Tos, tos.into());
    key.set(Dim::Dscp, (tos >> 2).into());
    key.set(Dim::Ecn, (tos & 3).into());
}

/// Transport fields of a packet whose IP layer is cut short: whatever the bytes present hold.
/// `declared`: the transport bytes the IP header's length promises (for `tcp.len`, which
/// tshark computes from it even when the capture is cut short).
fn fill_l4_lenient(key: &mut Key, proto: IpNumber, fragmented: bool, first: bool, payload: &[u8], declared: usize) {
    // tshark has no TCP or UDP layer before its ports (4 bytes) are there ([`headless`]).
    if (!fragmented || first) && !headless(key, proto, payload.len()) {
        key.set_l4_proto(proto.0);
        fill_l4_from_bytes(key, proto, payload);
    }
    // None when the IP length leaves less than the header ("short segment": tshark has no
    // `tcp.len` then).
    let tcp_header = key.get(Dim::TcpHdrLen);
    if !fragmented
        && proto == IpNumber::TCP
        && tcp_header != classifier::ABSENT
        && let Some(len) = declared.checked_sub(tcp_header as usize)
    {
        key.set(Dim::L4Len, len as u32);
    }
}

/// Transport fields from raw bytes: whatever of each field the bytes hold (first fragments
/// and truncated headers carry part of a header).
fn fill_l4_from_bytes(key: &mut Key, proto: IpNumber, b: &[u8]) {
    let u16_at = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    match proto {
        IpNumber::TCP | IpNumber::UDP => {
            if let (Some(src), Some(dst)) = (u16_at(0), u16_at(2)) {
                key.set_ports(src, dst);
            }
            if proto == IpNumber::UDP {
                // The length as its bytes come; the checksum only behind a length that holds
                // the header (tshark dissects no further past a bogus one), or behind 0 over
                // IPv6, which tshark reads as RFC 2675's "the IP length says".
                if let Some(len) = u16_at(4) {
                    key.set(Dim::L4Len, len.into());
                    if let Some(sum) = u16_at(6).filter(|_| len >= 8 || (len == 0 && key.get(Dim::IpVersion) == 6)) {
                        key.set(Dim::L4Checksum, sum.into());
                    }
                }
            } else if let Some(h) = b.get(..16) {
                // tshark 4.0 reads the header up to the window in one go, so a first fragment
                // (or a cut capture) of 16 bytes of TCP has flags, numbers, header length
                // and window, one of 14 or 15 none of them; the checksum and the urgent
                // pointer come as their bytes do.
                let header_len = u32::from(h[12] >> 4) * 4;
                if header_len < 20 {
                    // A bogus header length: tshark shows the sequence number and the header
                    // length, then gives up (no flags, acknowledgement number, window,
                    // checksum, urgent pointer or options).
                    key.set(Dim::TcpSeqNumber, u32::from_be_bytes([h[4], h[5], h[6], h[7]]));
                    key.set(Dim::TcpHdrLen, header_len);
                    return;
                }
                key.set_tcp_flags(u16::from_be_bytes([h[12], h[13]]));
                fill_tcp_fixed_header(key, b);
                if b.len() >= 20 {
                    let header_len = usize::from(h[12] >> 4) * 4;
                    let (first, last) = tcp_mss(b.get(20..header_len.min(b.len())).unwrap_or(&[]));
                    if let Some(mss) = first {
                        key.set(Dim::TcpMss, mss.into());
                    }
                    if let Some(mss) = last {
                        key.set(Dim::TcpMssLast, mss.into());
                    }
                }
            }
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            // Each field as its bytes come, as tshark reads them: ICMPv6's type from one byte
            // and its code from two (ICMP has no layer before six, [`headless`]).
            if let [t, ..] = *b {
                key.set(Dim::IcmpType, t.into());
                if let Some(&c) = b.get(1) {
                    key.set(Dim::IcmpCode, c.into());
                }
                // Echo, timestamp, information and address-mask messages (RFC 792, 950): the
                // identifier from six bytes, the sequence number from eight.
                if proto == IpNumber::ICMP && matches!(t, 0 | 8 | 13..=18) {
                    if let Some(ident) = u16_at(4) {
                        key.set(Dim::IcmpIdent, ident.into());
                    }
                    if let Some(seq) = u16_at(6) {
                        key.set(Dim::IcmpSeq, seq.into());
                    }
                }
            }
        }
        _ => {}
    }
}

/// The fixed TCP header's numbers (ports and flags aside) from its first 16 bytes or more:
/// the checksum and the urgent pointer only when their bytes are there.
fn fill_tcp_fixed_header(key: &mut Key, h: &[u8]) {
    if let Some(h) = h.get(..20) {
        let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let half = |i: usize| u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        key.set(Dim::TcpSeqNumber, word(4));
        key.set(Dim::TcpAckNumber, word(8));
        key.set(Dim::TcpHdrLen, u32::from(h[12] >> 4) * 4);
        key.set(Dim::TcpWindow, half(14));
        key.set(Dim::L4Checksum, half(16));
        key.set(Dim::TcpUrgent, half(18));
        return;
    }
    let word = |i: usize| h.get(i..i + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    let half = |i: usize| h.get(i..i + 2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])));
    let fields = [
        (Dim::TcpSeqNumber, word(4)),
        (Dim::TcpAckNumber, word(8)),
        (Dim::TcpHdrLen, h.get(12).map(|&b| u32::from(b >> 4) * 4)),
        (Dim::TcpWindow, half(14)),
        (Dim::L4Checksum, half(16)),
        (Dim::TcpUrgent, half(18)),
    ];
    for (dim, value) in fields {
        if let Some(value) = value {
            key.set(dim, value);
        }
    }
}

/// The values of the first and the last well-formed MSS option (kind 2, length 4) among
/// TCP options, up to the end of the list or the first malformed option; the last is `None`
/// when there is only one.
fn tcp_mss(mut options: &[u8]) -> (Option<u16>, Option<u16>) {
    let (mut first, mut last) = (None, None);
    while let [kind, rest @ ..] = options {
        match (*kind, rest) {
            (0, _) => break,
            (1, _) => options = rest,
            (2, [4, hi, lo, tail @ ..]) => {
                let value = Some(u16::from_be_bytes([*hi, *lo]));
                if first.is_none() {
                    first = value;
                } else {
                    last = value;
                }
                options = tail;
            }
            (_, [len, ..]) if *len >= 2 && usize::from(*len) <= options.len() => {
                options = &options[usize::from(*len)..]
            }
            _ => break,
        }
    }
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::{ABSENT, Dim};
    use etherparse::Ipv6Slice;

    // Ethernet (dst, src, 0x8100) + VLAN 100 (0x0800) + IPv4/UDP 10.0.0.1:1234 → 203.0.113.7:53,
    // TTL 64, total length 28 (no payload), padded with 8 zero bytes to 64 bytes.
    #[rustfmt::skip]
    const VLAN_UDP: [u8; 64] = [
        2, 0, 0, 0, 0, 1,  2, 0, 0, 0, 0, 2,  0x81, 0x00,
        0x00, 0x64, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x1c,  0x00, 0x01, 0x00, 0x00,  0x40, 0x11, 0x00, 0x00,
        10, 0, 0, 1,  203, 0, 113, 7,
        0x04, 0xd2, 0x00, 0x35,  0x00, 0x08, 0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn vlan_udp_fills_key_and_offsets_without_padding() {
        let (key, parsed) = parse_frame(&VLAN_UDP, 64);
        assert_eq!(
            parsed,
            Parsed::Ip(IpFrame {
                is_ipv6: false,
                l3_start: 18,
                l3_len: 28,
                header_len: 20,
                l4_start: 38,
                fragment: None,
                extension_headers: 0,
                under_ah: false,
                routed_onward: false
            })
        );
        assert_eq!(key.get(Dim::Vlan0), 100);
        assert_eq!((key.get(Dim::SrcPort), key.get(Dim::DstPort), key.get(Dim::L4Proto)), (1234, 53, 17));
        assert_eq!(key.dst_addr(), u128::from(u32::from_be_bytes([203, 0, 113, 7])) << 96);
    }

    #[test]
    fn length_field_beyond_the_buffer_is_truncated() {
        let mut f = VLAN_UDP;
        f[20..22].copy_from_slice(&2000u16.to_be_bytes()); // total length 2000 > 46 bytes left
        let (key, parsed) = parse_frame(&f, 64);
        assert_eq!(parsed, Parsed::Bad(DropReason::Truncated));
        assert_eq!(key.get(Dim::Vlan0), 100, "the lenient pass still reads the tag");
        for len in 0..f.len() {
            let _ = parse_frame(&f[..len], len as u32); // never panics on any prefix
        }
    }

    #[test]
    fn ipv4_options_must_stay_inside_the_header() {
        let mut h = [0u8; 28];
        h[20..24].copy_from_slice(&[1, 1, 0x44, 4]); // NOP, NOP, timestamp of length 4
        assert_eq!(ipv4_options(&h), Some(false));
        h[23] = 9; // length 9 runs past the 8 option bytes
        assert_eq!(ipv4_options(&h), None);
        h[22..24].copy_from_slice(&[0x44, 1]); // length below 2
        assert_eq!(ipv4_options(&h), None);
        h[22] = 0; // end of list: what follows is padding
        assert_eq!(ipv4_options(&h), Some(false));
        // A loose source route of one hop: ahead while its pointer (4) is inside it (7
        // bytes), behind once past (8).
        h[20..28].copy_from_slice(&[0x83, 7, 4, 192, 0, 2, 9, 0]);
        assert_eq!(ipv4_options(&h), Some(true));
        h[22] = 8;
        assert_eq!(ipv4_options(&h), Some(false));
        // suricata's decode-malformed-ipv4 case: security option (130) of length 2.
        h[20..24].copy_from_slice(&[0x82, 2, 0, 0]);
        assert_eq!(ipv4_options(&h), None);
    }

    #[test]
    fn fourth_vlan_tag_is_dropped() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00];
        for _ in 0..4 {
            f.extend([0x00, 0x01, 0x81, 0x00]);
        }
        f.extend([0u8; 40]);
        assert_eq!(parse_frame(&f, f.len() as u32).1, Parsed::Bad(DropReason::TooManyVlanTags));
    }

    #[test]
    fn a_service_tag_is_not_a_vlan_tag() {
        // 802.1ad tag (priority 5, ID 30), 802.1Q tag (ID 100), then VLAN_UDP's IP; a
        // fourth tag counts the service tag too.
        let mut rest = vec![0xa0, 0x1e, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00];
        rest.extend(&VLAN_UDP[18..]);
        let (key, parsed) = parse_frame(&ethernet(0x88a8, &rest), 0);
        assert!(matches!(parsed, Parsed::Ip { .. }), "{parsed:?}");
        assert_eq!(
            [key.get(Dim::ServiceVlan), key.get(Dim::Vlan0), key.get(Dim::Vlan1)],
            [30, 100, classifier::ABSENT]
        );
        let mut four =
            vec![0xa0, 0x1e, 0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x81, 0x00, 0x00, 0x66, 0x08, 0x00];
        four.extend(&VLAN_UDP[18..]);
        let (key, parsed) = parse_frame(&ethernet(0x88a8, &four), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::TooManyVlanTags));
        // Dropped, but read on as tshark reads it: the third 802.1Q tag, and the IP under it.
        assert_eq!([key.get(Dim::Vlan2), key.get(Dim::IpVersion), key.get(Dim::DstPort)], [102, 4, 53]);
    }

    #[test]
    fn an_ip_header_etherparse_cannot_slice_keeps_what_tshark_reads() {
        // VLAN_UDP's IPv4 packet (at 18, 28 bytes) with a header length of 4 (16 bytes):
        // `ip` and `ip.hdr_len` alone, `ip` 16 bytes long (to the transport's layout slot).
        let ip = &VLAN_UDP[18..46];
        let first_byte = |b: u8| [&[b][..], &ip[1..]].concat();
        let (key, parsed) = parse_frame(&ethernet(0x0800, &first_byte(0x44)), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::BadIpv4Header));
        let bogus = u32::from(BOGUS_IPV4);
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::IpHdrLen), key.get(Dim::L4At)], [bogus, 16, 14 + 16]);
        assert_eq!([key.get(Dim::Src0), key.get(Dim::IpLen), key.get(Dim::L4Proto)], [ABSENT; 3]);
        // Version 5: `ip` of the header length's 20 bytes, and no `ip.hdr_len`.
        let (key, _) = parse_frame(&ethernet(0x0800, &first_byte(0x55)), 0);
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::IpHdrLen), key.get(Dim::L4At)], [bogus, ABSENT, 14 + 20]);
        // A header length of 60 where 46 bytes are there: the fixed header, no transport.
        let mut cut = first_byte(0x4f);
        cut.resize(46, 0);
        let (key, parsed) = parse_frame(&ethernet(0x0800, &cut), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::Truncated));
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::IpHdrLen), key.get(Dim::IpLen)], [4, 60, 28]);
        assert_eq!([key.get(Dim::Ttl), key.get(Dim::L4Proto)], [64, ABSENT]);
        // IPv6 (UDP 1234 -> 53) behind EtherType IPv4: its fields; IPv4 behind EtherType IPv6:
        // `ipv6` alone.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend([0x20; 32]);
        v6.extend([0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let (key, parsed) = parse_frame(&ethernet(0x0800, &v6), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::BadIpv4Header));
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::L4Proto), key.get(Dim::DstPort)], [6, 17, 53]);
        let (key, parsed) = parse_frame(&ethernet(0x86dd, &VLAN_UDP[18..]), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::BadIpv6Header));
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::Src0)], [u32::from(BOGUS_IPV6), ABSENT]);
    }

    #[test]
    fn transports_too_short_for_a_tshark_layer_are_not_in_the_key() {
        // VLAN_UDP's IPv4 header as an ICMP first fragment (more fragments) of 4 bytes: no
        // ICMP layer, and still a fragment of protocol 1. Of 6: ICMP.
        let mut f = VLAN_UDP;
        f[27] = 1;
        f[24] = 0x20;
        f[21] = 24; // total length
        let (key, parsed) = parse_frame(&f, 64);
        assert_eq!([key.get(Dim::L4Proto), key.get(Dim::IcmpType)], [ABSENT; 2]);
        assert!(matches!(parsed, Parsed::Ip(IpFrame { fragment: Some(Fragment { protocol: 1, .. }), .. })));
        f[21] = 26;
        assert_eq!(parse_frame(&f, 64).0.get(Dim::L4Proto), 1);
        // ICMPv6 (58) of no bytes behind IPv4: no layer (behind IPv6, one).
        f[27] = 58;
        f[24] = 0;
        f[21] = 20;
        assert_eq!(parse_frame(&f, 64).0.get(Dim::L4Proto), ABSENT);
    }

    /// Ethernet (type `ether_type`) from 02:..:01 to 02:..:02, then `rest`.
    fn ethernet(ether_type: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend(ether_type.to_be_bytes());
        f.extend(rest);
        f
    }

    #[test]
    fn mpls_stack_fills_its_entries_and_the_ip_inside() {
        // Two entries: label 1000, TC 5, TTL 64; label 16, bottom, TTL 255; then VLAN_UDP's IP.
        let mut rest = vec![0x00, 0x3e, 0x8a, 0x40, 0x00, 0x01, 0x01, 0xff];
        rest.extend(&VLAN_UDP[18..]);
        let (key, parsed) = parse_frame(&ethernet(0x8847, &rest), 0);
        assert_eq!(parsed, Parsed::Mpls);
        assert_eq!([key.get(Dim::Mpls0Label), key.get(Dim::Mpls0Exp), key.get(Dim::Mpls0Bottom)], [1000, 5, 0]);
        assert_eq!([key.get(Dim::Mpls0Ttl), key.get(Dim::Mpls1Label), key.get(Dim::Mpls1Bottom)], [64, 16, 1]);
        assert_eq!(key.get(Dim::Mpls2Label), classifier::ABSENT);
        assert_eq!((key.get(Dim::IpVersion), key.get(Dim::DstPort)), (4, 53));
        assert_eq!(key.get(Dim::EthType), 0x8847);
        // A stack whose bottom never comes is cut short.
        assert_eq!(parse_frame(&ethernet(0x8847, &rest[..4]), 0).1, Parsed::Bad(DropReason::Truncated));
    }

    #[test]
    fn pseudowire_reads_the_inner_ethernet_with_or_without_control_word() {
        let inner = &VLAN_UDP[..];
        for control_word in [&[0u8, 0, 0, 7][..], &[]] {
            let mut rest = vec![0x00, 0x01, 0x41, 0x10]; // label 20, bottom
            rest.extend(control_word);
            rest.extend(inner);
            let (key, parsed) = parse_frame(&ethernet(0x8847, &rest), 0);
            assert_eq!(parsed, Parsed::Mpls, "control word {control_word:?}");
            assert_eq!(key.get(Dim::EthType), 0x8847, "the frame's own Ethernet header only");
            assert_eq!((key.get(Dim::Vlan0), key.get(Dim::SrcPort)), (100, 1234), "control word {control_word:?}");
        }
    }

    #[test]
    fn new_header_fields_read_as_wireshark_shows_them() {
        // IPv4 with DSCP 46 / ECN 1 and ID 0x1234, TCP with seq, ack, window, urgent and an
        // MSS option after a NOP.
        #[rustfmt::skip]
        let ip_tcp = [
            0x45, 0xb9, 0x00, 0x30,  0x12, 0x34, 0x40, 0x00,  0x40, 0x06, 0x00, 0x00,
            10, 0, 0, 1,  10, 0, 0, 2,
            0x04, 0xd2, 0x00, 0x50,  0xff, 0xff, 0xff, 0xff,  0x00, 0x00, 0x00, 0x07,
            0x70, 0x12, 0x20, 0x00,  0xab, 0xcd, 0x00, 0x09,
            0x01, 0x02, 0x04, 0x05,  0xb4, 0x01, 0x01, 0x00,
        ];
        let (key, parsed) = parse_frame(&ethernet(0x0800, &ip_tcp), 0);
        assert!(matches!(parsed, Parsed::Ip(_)), "{parsed:?}");
        assert_eq!([key.get(Dim::Tos), key.get(Dim::Dscp), key.get(Dim::Ecn)], [0xb9, 46, 1]);
        assert_eq!([key.get(Dim::IpId), key.get(Dim::IpHdrLen)], [0x1234, 20]);
        assert_eq!(
            [key.get(Dim::TcpSeqNumber), key.get(Dim::TcpAckNumber), key.get(Dim::TcpHdrLen)],
            [u32::MAX, 7, 28]
        );
        assert_eq!([key.get(Dim::TcpWindow), key.get(Dim::L4Checksum), key.get(Dim::TcpUrgent)], [0x2000, 0xabcd, 9]);
        assert_eq!([key.get(Dim::TcpMss), key.get(Dim::L4Len)], [1460, 0]);
        assert_eq!(key.get(Dim::EthSrcLo), 1);
    }

    #[test]
    fn a_bogus_tcp_header_length_reads_as_tshark_reads_it() {
        // IPv4, then a TCP header whose data offset is 4 (16 bytes) and 8 bytes more: tshark
        // shows the ports, the sequence number, the header length and the segment's length
        // (28 bytes less 16), and no flags, acknowledgement number, window, checksum or
        // urgent pointer.
        #[rustfmt::skip]
        let ip_tcp = [
            0x45, 0x00, 0x00, 0x30,  0x00, 0x01, 0x00, 0x00,  0x40, 0x06, 0x00, 0x00,
            10, 0, 0, 1,  10, 0, 0, 2,
            0x04, 0x57, 0x00, 0x50,  0x11, 0x22, 0x33, 0x44,  0x55, 0x66, 0x77, 0x88,
            0x40, 0x02, 0x00, 0x4d,  0x12, 0x34, 0x00, 0x05,
            b'A', b'B', b'C', b'D',  b'E', b'F', b'G', b'H',
        ];
        let (key, parsed) = parse_frame(&ethernet(0x0800, &ip_tcp), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::BadTcpHeader));
        assert_eq!(
            [key.get(Dim::SrcPort), key.get(Dim::TcpSeqNumber), key.get(Dim::TcpHdrLen), key.get(Dim::L4Len)],
            [1111, 0x1122_3344, 16, 12]
        );
        for dim in [Dim::TcpFlags, Dim::TcpSyn, Dim::TcpAckNumber, Dim::TcpWindow, Dim::L4Checksum, Dim::TcpUrgent] {
            assert_eq!(key.get(dim), classifier::ABSENT, "{dim:?}");
        }
        // As a first fragment (more fragments): the same fields but the length (tshark has
        // none of a fragment), and dropped as a whole segment is.
        let mut first = ip_tcp;
        first[6] = 0x20;
        let (key, parsed) = parse_frame(&ethernet(0x0800, &first), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::BadTcpHeader));
        assert_eq!([key.get(Dim::TcpSeqNumber), key.get(Dim::TcpHdrLen)], [0x1122_3344, 16]);
        assert_eq!([key.get(Dim::TcpFlags), key.get(Dim::L4Len)], [classifier::ABSENT; 2]);
    }

    #[test]
    fn mss_is_the_first_and_the_last_well_formed_option() {
        assert_eq!(tcp_mss(&[1, 1, 2, 4, 0x05, 0xb4]), (Some(1460), None));
        assert_eq!(tcp_mss(&[8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0x02, 0x18]), (Some(536), None));
        assert_eq!(tcp_mss(&[2, 3, 5]), (None, None), "wrong length");
        assert_eq!(tcp_mss(&[0, 2, 4, 5, 0xb4]), (None, None), "after the end of the list");
        assert_eq!(tcp_mss(&[8, 40]), (None, None), "runs past the options");
        let three = [2, 4, 0x05, 0xb4, 2, 4, 0, 48, 1, 2, 4, 0, 88];
        assert_eq!(tcp_mss(&three), (Some(1460), Some(88)));
        assert_eq!(tcp_mss(&[2, 4, 0x05, 0xb4, 8, 40, 2, 4, 0, 48]), (Some(1460), None), "stops at a malformed one");
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

    proptest::proptest! {
        /// Short of a later fragment, the IPv6 extension-header walk reads what etherparse's
        /// `Ipv6Slice::from_slice` reads: the same payload, protocol, fragmentation and number
        /// of headers, or the same kind of error. Chains of hop-by-hop, routing, fragment
        /// (offset 0, more or not), destination-options and AH headers, in any order, with
        /// any lengths, any final protocol, any payload length field.
        #[test]
        fn ipv6_walk_reads_as_etherparse(
            chain in proptest::collection::vec((proptest::sample::select(vec![0u8, 43, 44, 60, 51]), 0u8..4, proptest::prelude::any::<bool>()), 0..5),
            last in proptest::prop_oneof![proptest::strategy::Just(6u8), proptest::strategy::Just(59), proptest::prelude::any::<u8>()],
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            length_error in proptest::prop_oneof![proptest::strategy::Just(0i32), -16i32..16],
        ) {
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
            let ours = ipv6_layer(&l3);
            if payload_len == 0 {
                // A jumbogram's length: refused before any extension header is read.
                proptest::prop_assert!(first == 59 || matches!(ours, Err(DropReason::BadIpv6Header)));
                return Ok(());
            }
            match (Ipv6Slice::from_slice(&l3), ours) {
                (Ok(ip), Ok(walk)) => {
                    proptest::prop_assert_eq!(walk.payload.as_ptr(), ip.payload().payload.as_ptr());
                    proptest::prop_assert_eq!(walk.payload.len(), ip.payload().payload.len());
                    proptest::prop_assert_eq!(walk.ip_number, ip.payload().ip_number);
                    proptest::prop_assert_eq!(walk.fragment.is_some(), ip.payload().fragmented);
                    proptest::prop_assert_eq!(usize::from(walk.extension_headers), ip.extensions().clone().into_iter().count());
                }
                (Err(e), Err(reason)) => {
                    let theirs = match e {
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

        /// The plain IPv4 path reads what etherparse's general walk reads, and covers every
        /// packet that walk accepts with a 20-byte header and no AH (so it is the path taken);
        /// the key's IPv4 fields are what etherparse's header getters read.
        #[test]
        fn plain_ipv4_reads_as_etherparse(
            ver_ihl in proptest::prop_oneof![
                proptest::strategy::Just(0x45u8), 0x40u8..=0x4f, proptest::prelude::any::<u8>()
            ],
            total_len in 0u16..120,
            // DF, MF, the reserved bit and offsets, alone and together.
            flags_offset in proptest::prop_oneof![
                proptest::sample::select(vec![0u16, 0x2000, 0x4000, 0x8000, 0x0001, 0x2001, 0x1fff]),
                proptest::prelude::any::<u16>()
            ],
            proto in proptest::prop_oneof![
                proptest::strategy::Just(6u8), proptest::strategy::Just(17), proptest::strategy::Just(51),
                proptest::prelude::any::<u8>()
            ],
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            let mut l3 = vec![ver_ihl, 0];
            l3.extend(total_len.to_be_bytes());
            l3.extend([0, 0]);
            l3.extend(flags_offset.to_be_bytes());
            l3.extend([64, proto]);
            l3.extend(rest);
            let general = Ipv4Slice::from_slice(&l3);
            match plain_ipv4(&l3) {
                Some((header, payload, ip_number, fragmented)) => {
                    let ip = general.expect("etherparse accepts what the plain path reads");
                    proptest::prop_assert_eq!(&header[..], ip.header().slice());
                    proptest::prop_assert_eq!(payload.as_ptr(), ip.payload().payload.as_ptr());
                    proptest::prop_assert_eq!(payload.len(), ip.payload().payload.len());
                    proptest::prop_assert_eq!(ip_number, ip.payload().ip_number);
                    proptest::prop_assert_eq!(fragmented, ip.payload().fragmented);
                }
                None => {
                    let plain = general.is_ok_and(|ip| ip.header().slice().len() == 20 && ip.extensions().is_empty());
                    proptest::prop_assert!(!plain, "etherparse reads a plain header the plain path left");
                }
            }
            if let Ok(h) = etherparse::Ipv4HeaderSlice::from_slice(&l3) {
                let mut key = Key::new(0);
                let _ = parse_ipv4(&mut key, &l3, 0);
                let addr = |a: [u8; 4]| u128::from(u32::from_be_bytes(a)) << 96;
                proptest::prop_assert_eq!(key.src_addr(), addr(h.source()));
                proptest::prop_assert_eq!(key.dst_addr(), addr(h.destination()));
                let fields = [Dim::IpProto, Dim::Ttl, Dim::IpLen, Dim::Df, Dim::Mf, Dim::FragOffset, Dim::IpId];
                let expected = [
                    u32::from(h.protocol().0),
                    u32::from(h.ttl()),
                    // A total length of 0 is TSO's: as tshark, the key takes the bytes' length.
                    if h.total_len() == 0 { l3.len() as u32 } else { u32::from(h.total_len()) },
                    u32::from(h.dont_fragment()),
                    u32::from(h.more_fragments()),
                    u32::from(h.fragments_offset().value()),
                    u32::from(h.identification()),
                ];
                proptest::prop_assert_eq!(fields.map(|d| key.get(d)), expected);
            }
        }
    }
}
