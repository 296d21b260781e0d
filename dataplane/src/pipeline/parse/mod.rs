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
//! a header that claims more bytes than the frame holds is `truncated`, never read past (an
//! IPv6 first fragment whose header chain runs past its own payload, `tiny_fragment`).
//! Fields of the layers that did parse stay in the key of a malformed frame (for `match` and
//! drop captures), and a header tshark calls bogus or a capture cut short is in it as tshark
//! shows it (its protocol, and the fields whose bytes are there: `classifier::field::BOGUS_IPV4`
//! and its kin); the pipeline drops the frame either way.
//!
//! This file holds the entry points, what they return and the walk down to the IP header:
//! Ethernet, VLAN tags, MPLS and its pseudowires. `ipv4.rs` and `ipv6.rs` read each family's
//! headers (IPv6's extension headers and options among them), `l4.rs` the transport's.

mod ipv4;
mod ipv6;
mod l4;

use classifier::{Dim, Key};
use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice};

use super::verdict::DropReason;
use ipv4::parse_ipv4;
use ipv6::parse_ipv6;
pub(super) use ipv6::terminable;

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
    /// IPv6 extension headers before the transport header (0 for IPv4). Wider than the
    /// limit it is held to (`max_ipv6_extension_headers`, at most 255): a count that
    /// saturated there let a chain of 256 or more through a limit of 255.
    pub extension_headers: u16,
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

    /// A fragment other than the first: it carries no transport header, so ports, flags and
    /// options are not its to read or change.
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset > 0)
    }
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

/// MPLS special-purpose labels (RFC 7274) whose payload the first nibble does not tell, at
/// the bottom of a stack: the G-ACh label (GAL, RFC 5586), an associated channel behind it,
/// and the OAM alert label (ITU-T Y.1711), OAM behind it.
const GAL: u32 = 13;
const OAM_ALERT: u32 = 14;

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
/// initialisation of the 340 bytes, not a second here; and a key returned by value was a
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

/// The bytes of the IP packet at `l3` (`l3_start` into the frame) on the wire: from its first
/// byte to the frame's end as `frame.len` gives it, never fewer than the capture holds. tshark
/// takes a length field that claims more as this (its "exceeds packet length" note), and the
/// lengths it derives, `tcp.len` among them, count from it; the bytes end where the capture does.
fn on_the_wire(key: &Key, l3: &[u8], l3_start: usize) -> usize {
    (key.get(Dim::FrameLen) as usize).saturating_sub(l3_start).max(l3.len())
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
        let Ok(vlan) = SingleVlanSlice::from_slice(rest) else {
            record_cut_tag(key, ether_type, rest);
            return Parsed::Bad(DropReason::Truncated);
        };
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
        t if VLAN_ETHERTYPES.contains(&t) => too_many_vlan_tags(key, frame, rest, t, in_pseudowire),
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

/// Records the VLAN ID of an 802.1Q tag that the capture cut short of its EtherType (`rest`,
/// announced by `ether_type`; a snap length of 16 to 21 bytes under one or two tags): tshark
/// reads the ID from the tag's first two bytes and shows `vlan` and `vlan.id` without the
/// rest. An 802.1ad tag so cut it shows as `ieee8021ad` with no ID, which the key cannot
/// hold: none is recorded.
#[cold]
fn record_cut_tag(key: &mut Key, ether_type: EtherType, rest: &[u8]) {
    if ether_type == EtherType::PROVIDER_BRIDGING {
        return;
    }
    if let [high, low, ..] = *rest {
        // The tag control information: `push_vlan` keeps its low 12 bits, the ID. Past the
        // three the key holds (behind a fourth tag) it is not recorded, as whole ones are not.
        let _ = key.push_vlan(u16::from_be_bytes([high, low]));
    }
}

/// The tags from a fourth on (`rest`, announced by `ether_type`), and what they carry: the
/// frame is dropped, but tshark reads the IP packet under any number of tags, an MPLS stack
/// and what it carries too, and so does the key (the IDs of 802.1Q tags past the third
/// aside). `in_pseudowire` as for [`parse_ethernet`].
#[cold]
fn too_many_vlan_tags(
    key: &mut Key,
    frame: &[u8],
    mut rest: &[u8],
    mut ether_type: EtherType,
    in_pseudowire: bool,
) -> Parsed {
    // Each tag takes four bytes, so the frame's length bounds the walk.
    while VLAN_ETHERTYPES.contains(&ether_type) {
        let Ok(vlan) = SingleVlanSlice::from_slice(rest) else {
            record_cut_tag(key, ether_type, rest);
            return Parsed::Bad(DropReason::TooManyVlanTags);
        };
        let _ = record_tag(key, ether_type, vlan.vlan_identifier().value());
        ether_type = vlan.ether_type();
        rest = vlan.payload_slice();
    }
    let l3_start = frame.len() - rest.len();
    // Only the key is wanted: the frame is dropped whatever it carries.
    let _ = match ether_type {
        EtherType::IPV4 => parse_ipv4(key, rest, l3_start),
        EtherType::IPV6 => parse_ipv6(key, rest, l3_start),
        t if MPLS_ETHERTYPES.contains(&t) && !in_pseudowire => parse_mpls(key, frame, l3_start),
        _ => Parsed::NotIp,
    };
    Parsed::Bad(DropReason::TooManyVlanTags)
}

/// An MPLS label stack at `frame[start..]` and, for the key, what its bottom carries, told as
/// Wireshark 4.0 tells it (RFC 4928's first-nibble convention): IPv4 after a 4, IPv6 after
/// a 6, an Ethernet pseudowire (RFC 4448) after a 0; but behind a bottom label of 13 (GAL,
/// RFC 5586) an associated channel, behind 14 (OAM alert, ITU-T Y.1711) OAM, whatever the
/// nibble. The frame is [`Parsed::Mpls`] whatever the payload: labels are a contract with the
/// router that pushed them, so what the data plane does with it is the `[server] mpls`
/// setting's, not the payload's.
fn parse_mpls(key: &mut Key, frame: &[u8], start: usize) -> Parsed {
    let mut at = start;
    let bottom_label = loop {
        // Each entry takes four bytes, so the frame's length bounds the walk.
        let Some(&[a, b, c, d]) = frame.get(at..at + 4).and_then(|e| <&[u8; 4]>::try_from(e).ok()) else {
            return Parsed::Bad(DropReason::Truncated);
        };
        let entry = u32::from_be_bytes([a, b, c, d]);
        key.push_mpls(entry); // the first three; deeper entries are not recorded
        at += 4;
        if entry & 0x100 != 0 {
            break entry >> 12; // bottom of stack
        }
    };
    let payload = &frame[at..];
    // Only the key is wanted: a malformed payload does not change the frame's fate.
    let _ = match bottom_label {
        // The associated channel header (RFC 5586 §4: 4 bytes, its type in the last two)
        // and what tshark's `pwach` reads behind it: IPv4 (0x0021) and IPv6 (0x0057), each
        // as behind its EtherType, whatever version the packet says; nothing else is IP.
        GAL => match payload.get(2..4) {
            Some([0x00, 0x21]) => parse_ipv4(key, payload.get(4..).unwrap_or_default(), at + 4),
            Some([0x00, 0x57]) => parse_ipv6(key, payload.get(4..).unwrap_or_default(), at + 4),
            _ => Parsed::NotIp,
        },
        OAM_ALERT => Parsed::NotIp,
        _ => match payload.first().map(|b| b >> 4) {
            Some(4) => parse_ipv4(key, payload, at),
            Some(6) => parse_ipv6(key, payload, at),
            Some(0) => parse_ethernet(key, frame, if has_control_word(payload) { at + 4 } else { at }, true),
            _ => Parsed::NotIp,
        },
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

/// The IPv4 DS field or IPv6 traffic class, and its DSCP and ECN parts.
fn fill_traffic_class(key: &mut Key, tos: u8) {
    key.set(Dim::Tos, tos.into());
    key.set(Dim::Dscp, (tos >> 2).into());
    key.set(Dim::Ecn, (tos & 3).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ethernet (dst, src, 0x8100) + VLAN 100 (0x0800) + IPv4/UDP 10.0.0.1:1234 → 203.0.113.7:53,
    // TTL 64, total length 28 (no payload), padded with 8 zero bytes to 64 bytes.
    #[rustfmt::skip]
    pub(super) const VLAN_UDP: [u8; 64] = [
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
    fn fourth_vlan_tag_is_dropped() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00];
        for _ in 0..4 {
            f.extend([0x00, 0x01, 0x81, 0x00]);
        }
        f.extend([0u8; 40]);
        assert_eq!(parse_frame(&f, f.len() as u32).1, Parsed::Bad(DropReason::TooManyVlanTags));
    }

    #[test]
    fn a_tag_cut_after_its_id_keeps_the_id_and_is_truncated() {
        // VLAN_UDP (802.1Q, ID 100) cut one byte into its tag, then right after its ID: the
        // ID is read from two bytes, as tshark reads it; the frame is truncated either way.
        let (one_byte, parsed) = parse_frame(&VLAN_UDP[..15], 64);
        assert_eq!((one_byte.get(Dim::Vlan0), parsed), (classifier::ABSENT, Parsed::Bad(DropReason::Truncated)));
        let (id_only, parsed) = parse_frame(&VLAN_UDP[..16], 64);
        assert_eq!((id_only.get(Dim::Vlan0), parsed), (100, Parsed::Bad(DropReason::Truncated)));
        // Under priority 7 and the drop-eligible bit, the ID is still its 12 bits.
        let mut marked = VLAN_UDP[..16].to_vec();
        marked[14] |= 0xf0;
        assert_eq!(parse_frame(&marked, 64).0.get(Dim::Vlan0), 100);
        // An 802.1ad tag so cut records nothing: tshark shows it with no ID.
        let (service, parsed) = parse_frame(&ethernet(0x88a8, &VLAN_UDP[14..16]), 64);
        assert_eq!(
            (service.get(Dim::ServiceVlan), service.get(Dim::Vlan0), parsed),
            (classifier::ABSENT, classifier::ABSENT, Parsed::Bad(DropReason::Truncated))
        );
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

    /// Under four tags, an MPLS stack and the IP packet it carries are read as tshark reads
    /// them, though the frame is dropped (the key had no label and no IP behind the tags).
    #[test]
    fn an_mpls_stack_under_too_many_tags_is_read() {
        // Four 802.1Q tags (IDs 1 to 4, the last announcing MPLS), label 16 (bottom, TTL 64),
        // then VLAN_UDP's IP.
        let mut rest = Vec::new();
        for id in 1..=4u8 {
            rest.extend([0x00, id, 0x81, 0x00]);
        }
        rest[14..16].copy_from_slice(&[0x88, 0x47]);
        rest.extend([0x00, 0x01, 0x01, 0x40]);
        rest.extend(&VLAN_UDP[18..]);
        let (key, parsed) = parse_frame(&ethernet(0x8100, &rest), 0);
        assert_eq!(parsed, Parsed::Bad(DropReason::TooManyVlanTags));
        assert_eq!(
            [key.get(Dim::Vlan0), key.get(Dim::Vlan2), key.get(Dim::Mpls0Label), key.get(Dim::Mpls0Bottom)],
            [1, 3, 16, 1]
        );
        assert_eq!((key.get(Dim::IpVersion), key.get(Dim::DstPort)), (4, 53));
    }

    /// A capture cuts a frame's end, so an address field's later occurrence (`eth.addr`'s
    /// source, `ip.addr`'s and `ipv6.addr`'s destination) is never present without its first,
    /// which the classifier's `!=`, `===` and `all` over them rely on (they test the first,
    /// and each later one only where present). Every cut of an IPv4 and an IPv6 frame.
    #[test]
    fn an_address_occurrence_is_never_present_without_the_ones_before_it() {
        // IPv6/UDP 2001:db8::1 -> 2001:db8::2, ports 1234 -> 53, no payload.
        let mut v6 = vec![0x60, 0, 0, 0, 0x00, 0x08, 17, 64];
        v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend([0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let v6 = ethernet(0x86dd, &v6);
        let mut seen = [0usize; 2];
        for (i, frame) in [&VLAN_UDP[..], &v6[..]].into_iter().enumerate() {
            for n in 0..=frame.len() {
                let (key, _) = parse_frame(&frame[..n], frame.len() as u32);
                for name in ["eth.addr", "ip.addr", "ipv6.addr"] {
                    let layers = classifier::bytes::address_field(name).expect("an address field");
                    let there: Vec<bool> = layers.iter().map(|l| l.range(&key, n).is_some()).collect();
                    assert!(there.windows(2).all(|w| w[0] || !w[1]), "{name} cut at {n}: {there:?}");
                    seen[i] += usize::from(there.iter().all(|&t| t) && name != "eth.addr");
                }
            }
        }
        // The IP addresses were whole in some cuts: the walk reached them.
        assert!(seen.iter().all(|&s| s > 0), "{seen:?}");
    }

    /// Ethernet (type `ether_type`) from 02:..:01 to 02:..:02, then `rest`.
    pub(super) fn ethernet(ether_type: u16, rest: &[u8]) -> Vec<u8> {
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
}
