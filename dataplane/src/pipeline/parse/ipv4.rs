//! The IPv4 layer: its bounds (the plain 20-byte header read straight from the bytes,
//! etherparse's general walk otherwise), its options (RFC 791), its fields in the key, and
//! what the key keeps of a header etherparse refuses. The transport is `l4.rs`'s.

use classifier::field::BOGUS_IPV4;
use classifier::{Dim, Key};
use etherparse::err::ipv4;
use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv4Slice, LaxIpv4Slice};
use gre::ip::{Ipv4Options, option};

use super::ipv6::parse_ipv6;
use super::l4::{fill_l4_lenient, parse_l4};
use super::{Fragment, IpFrame, Parsed, fill_traffic_class, offset_in, on_the_wire};
use crate::pipeline::verdict::DropReason;

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
pub(super) fn parse_ipv4(key: &mut Key, l3: &[u8], l3_start: usize) -> Parsed {
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
    // The version before the length, as tshark reads them ("Bogus IP version" however few
    // the bytes): a short packet of another version (IPv6 under GRE protocol type 0x0800) is
    // a bad IPv4 header, as a whole one is, not an IPv4 header cut short. etherparse checks
    // the length first.
    if l3.first().is_some_and(|b| b >> 4 != 4) {
        return Err(DropReason::BadIpv4Header);
    }
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
        // A 0 read as TSO's is the bytes' length, never below the header's (the slice holds it).
        let total_len = fill_total_len(key, h.total_len(), l3);
        if total_len < h.slice().len() {
            // "Bogus IP length": tshark dissects nothing behind the header.
            return Parsed::Bad(reason);
        }
        let p = lax.payload();
        key.set(Dim::L4At, (l3_start + offset_in(l3, p.payload)) as u32);
        // What the total length claims past the frame is not there on the wire either.
        let declared = total_len.min(on_the_wire(key, l3, l3_start)).saturating_sub(h.slice().len());
        fill_l4_lenient(key, p.ip_number, p.fragmented, h.fragments_offset().value() == 0, p.payload, declared);
    } else {
        unsliced_ipv4(key, l3, l3_start);
    }
    Parsed::Bad(reason)
}

/// An IPv4 header etherparse cannot slice at all, in the key as far as tshark 4.0 reads it.
/// Behind a version of 6 tshark shows `ip`, then hands the bytes to its IPv6 dissector: the
/// key holds the IPv6 packet (without that `ip`: a key holds one IP layer). Behind another
/// version than 4 or a header length below 20: `ip`, its header length (of version 4) and
/// its bytes alone ([`BOGUS_IPV4`]). Fewer than 20 bytes, or options cut where tshark's walk
/// over them reads past the bytes: the fields they hold ([`cut_ipv4`]). Otherwise a fixed
/// header whose options run past the bytes: the fixed header's fields, and nothing behind
/// them.
fn unsliced_ipv4(key: &mut Key, l3: &[u8], l3_start: usize) {
    let Some(&version_ihl) = l3.first() else { return }; // no byte, no `ip`
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    match version_ihl >> 4 {
        6 => {
            let _ = parse_ipv6(key, l3, l3_start);
        }
        4 if header_len >= 20 && l3.len() >= 20 && options_walk_within(l3, header_len) => {
            fill_ipv4(key, l3);
            fill_total_len(key, u16::from_be_bytes([l3[2], l3[3]]), l3); // 20 bytes are there
        }
        4 if header_len >= 20 => cut_ipv4(key, l3, l3_start, header_len),
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

/// An IPv4 header the capture cut short of its 20 fixed bytes (a snap length inside it), or
/// inside its options where tshark reads past the bytes before the destination
/// ([`options_walk_within`]), as tshark 4.0 shows it: `ip` and its header length, then each field once all its bytes are
/// there: the DS field from 2 bytes, the total length from 4, the identification from 6, the
/// flags and fragment offset from 8, the TTL from 9, the protocol from 10, the source address
/// from 16; never the destination, whose bytes would make the header whole. `ip`'s bytes are
/// those there (tshark's are as many as the header length says: a difference, docs/rules.md).
#[cold]
fn cut_ipv4(key: &mut Key, l3: &[u8], l3_start: usize, header_len: usize) {
    let half = |i: usize| l3.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    // A total length below the header's (not 0) is tshark's "Bogus IP length": it shows
    // `ip.len` and no field after it.
    let bogus_len = half(2).is_some_and(|total_len| total_len != 0 && usize::from(total_len) < header_len);
    let src = l3.get(12..).and_then(|b| b.first_chunk::<4>()).map(|&a| u128::from(u32::from_be_bytes(a)) << 96);
    key.set_cut_ip(false, src.filter(|_| !bogus_len));
    key.set(Dim::IpHdrLen, header_len as u32);
    // Where the header length says the header ends: `ip`'s bytes (classifier::bytes).
    key.set(Dim::L4At, (l3_start + header_len) as u32);
    if let Some(&tos) = l3.get(1) {
        fill_traffic_class(key, tos);
    }
    if let Some(total_len) = half(2) {
        fill_total_len(key, total_len, l3);
    }
    if bogus_len {
        return;
    }
    if let Some(id) = half(4) {
        key.set(Dim::IpId, id.into());
    }
    if let Some(flags_offset) = half(6) {
        key.set(Dim::Df, u32::from(flags_offset & 0x4000 != 0));
        key.set(Dim::Mf, u32::from(flags_offset & 0x2000 != 0));
        key.set(Dim::FragOffset, (flags_offset & 0x1fff).into());
    }
    if let Some(&ttl) = l3.get(8) {
        key.set(Dim::Ttl, ttl.into());
    }
    if let Some(&protocol) = l3.get(9) {
        key.set(Dim::IpProto, protocol.into());
    }
}

/// Whether tshark 4.0 reads the destination of the IPv4 header `l3` (the fixed 20 bytes at
/// least) of `header_len` bytes, options included, however many of them the capture holds.
/// Before the destination it walks the options for a source route whose last hop would be
/// the destination instead (Wireshark's `get_dst_offset`), reading each option's type, the
/// length of one that has one, and a source route's pointer: a byte it reads past the capture
/// ends the dissection there, no destination shown. The walk ends early, and the destination
/// is shown, at an end-of-list option, a length that is bogus (below 2, or past the header)
/// or a route with no hop left. A route with hops to go makes its last hop tshark's `ip.dst`,
/// shown only with the whole header there (tshark 4.0 as run; docs/rules.md, Differences 3:
/// transitd's is the header's), which a header cut short, this function's, never is.
fn options_walk_within(l3: &[u8], header_len: usize) -> bool {
    let mut at = 20;
    while at < header_len {
        let Some(&kind) = l3.get(at) else { return false };
        match kind {
            option::END => return true,
            option::NOP => at += 1,
            _ => {
                if at + 1 >= header_len {
                    return true; // no room for the length in the header: bogus
                }
                let Some(&len) = l3.get(at + 1) else { return false };
                let len = usize::from(len);
                if len < 2 || at + len > header_len {
                    return true;
                }
                if matches!(kind, option::LSRR | option::SSRR) {
                    let Some(&pointer) = l3.get(at + 2) else { return false };
                    let pointer = usize::from(pointer);
                    // A route with hops to go: never, as the header is not whole here.
                    return pointer < 4 || pointer % 4 != 0 || pointer > len;
                }
                at += len;
            }
        }
    }
    true
}

/// The total length tshark 4.0 takes from the field `total_len` of the IPv4 packet `l3` (the
/// bytes there, from its header on), set as `ip.len` too: the field's, but for a 0, TCP
/// segmentation offload's in a capture made on the sending host, which tshark
/// (`ip.tso_support`) takes as the packet running to the end of the bytes.
fn fill_total_len(key: &mut Key, total_len: u16, l3: &[u8]) -> usize {
    let taken = if total_len == 0 { l3.len() } else { usize::from(total_len) };
    key.set(Dim::IpLen, taken.min(0xffff) as u32);
    taken
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

#[cfg(test)]
mod tests {
    use super::super::parse_frame;
    use super::super::tests::{VLAN_UDP, ethernet};
    use super::*;
    use classifier::ABSENT;
    use classifier::field::{BOGUS_IPV6, IPV4_CUT_BEFORE_DST};

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
    fn a_header_cut_short_keeps_the_fields_whose_bytes_are_there() {
        // VLAN_UDP's IPv4 header (at 18) cut after 1 to 19 bytes: tshark 4.0 shows the header
        // length from 1 byte, the total length from 4, the TTL from 9, the protocol from 10,
        // the source address from 16, and never the destination (its side of this:
        // dataplane/tests/match_oracle.rs).
        let cut = |n: usize| parse_frame(&VLAN_UDP[..18 + n], 64);
        let (key, parsed) = cut(1);
        assert_eq!(parsed, Parsed::Bad(DropReason::Truncated));
        let bogus = u32::from(BOGUS_IPV4);
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::IpHdrLen), key.get(Dim::Tos)], [bogus, 20, ABSENT]);
        let (key, _) = cut(9);
        assert_eq!([key.get(Dim::IpLen), key.get(Dim::Ttl), key.get(Dim::IpProto)], [28, 64, ABSENT]);
        assert_eq!([key.get(Dim::IpVersion), key.get(Dim::Src0)], [bogus, ABSENT]);
        assert_eq!(cut(10).0.get(Dim::IpProto), 17);
        let (key, parsed) = cut(16);
        assert_eq!(parsed, Parsed::Bad(DropReason::Truncated));
        assert_eq!(key.get(Dim::IpVersion), u32::from(IPV4_CUT_BEFORE_DST));
        assert_eq!(key.src_addr(), u128::from(u32::from_be_bytes([10, 0, 0, 1])) << 96);
        assert_eq!(cut(19).0.get(Dim::IpVersion), u32::from(IPV4_CUT_BEFORE_DST));
        assert_eq!(cut(20).0.get(Dim::IpVersion), 4);
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

    proptest::proptest! {
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
