//! The transport layer: TCP, UDP, ICMP and ICMPv6 fields (and GRE's protocol type) in the
//! key, from a whole header, a first fragment's or a cut capture's bytes alike, as tshark 4.0
//! reads them (which transports have no layer before some bytes, [`headless`]), and TCP's
//! MSS options.

use classifier::{Dim, Key};
use etherparse::IpNumber;
use etherparse::err::tcp;

use crate::pipeline::verdict::DropReason;

/// Whether tshark 4.0 has no layer at all for transport `proto` with only `len` bytes of its
/// header, in a whole packet or a first fragment alike: TCP, UDP and UDP-Lite before their
/// ports (4 bytes), ICMP before its sixth byte (it reads the identifier's bytes before it
/// adds its layer, whatever the type), ICMPv6 without a byte behind IPv4 (whose dissector
/// hands an empty payload to none; IPv6's does). `key` holds the IP header's fields. GRE is
/// the transport however short, as the pipeline knows GRE by it (GRE from no tunnel's router
/// follows `gre_unsupported` whatever it holds), but its layer `gre` is tshark's, from 4
/// bytes on ([`Dim::GreProto`]).
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
pub(super) fn parse_l4(
    key: &mut Key,
    proto: IpNumber,
    fragmented: bool,
    first: bool,
    payload: &[u8],
    l4_start: usize,
) -> Option<DropReason> {
    key.set(Dim::L4At, l4_start as u32);
    if fragmented {
        return parse_fragment_l4(key, proto, first, payload);
    }
    // Whole or not, tshark has no TCP or UDP layer before the ports are there, no ICMP layer
    // before six bytes.
    if !headless(key, proto, payload.len()) {
        key.set_l4_proto(proto.0);
    }
    let bad = match proto {
        IpNumber::TCP => parse_tcp(key, payload),
        IpNumber::UDP => parse_udp(key, payload),
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
        // Too short for its header or not, GRE is the decapsulation stage's to judge.
        IpNumber::GRE => {
            fill_l4_from_bytes(key, proto, payload);
            None
        }
        _ => None,
    };
    if bad.is_some() {
        // What the bytes hold is still worth a key (ports of a cut TCP header, say).
        fill_l4_from_bytes(key, proto, payload);
    }
    bad
}

/// [`parse_l4`] of a fragment's payload: nothing in a later fragment, what its bytes hold in
/// a first one.
#[inline]
fn parse_fragment_l4(key: &mut Key, proto: IpNumber, first: bool, payload: &[u8]) -> Option<DropReason> {
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
    None
}

/// [`parse_l4`] of a whole packet's TCP header: its fields and the segment's length in the
/// key, or why the frame is dropped.
#[inline]
fn parse_tcp(key: &mut Key, payload: &[u8]) -> Option<DropReason> {
    match etherparse::TcpSlice::from_slice(payload) {
        Ok(t) => {
            fill_l4_from_bytes(key, IpNumber::TCP, t.header_slice());
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
    }
}

/// [`parse_l4`] of a whole packet's UDP header: its fields in the key, or why the frame is
/// dropped.
#[inline]
fn parse_udp(key: &mut Key, payload: &[u8]) -> Option<DropReason> {
    // RFC 768: the length counts the 8-byte header and runs to the end of the datagram.
    // etherparse takes 0 for "the rest" (a jumbogram's, RFC 2675) and calls a length
    // past the payload a short buffer; the packet here is whole, so both are bad headers.
    match payload.get(4..6).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) {
        None => Some(DropReason::Truncated),
        Some(len) if len < 8 || len > payload.len() => Some(DropReason::BadUdpHeader),
        Some(_) => {
            fill_l4_from_bytes(key, IpNumber::UDP, payload);
            None
        }
    }
}

/// Transport fields of a packet whose IP layer is cut short: whatever the bytes present hold.
/// `declared`: the transport bytes the IP header's length promises (for `tcp.len`, which
/// tshark computes from it even when the capture is cut short).
pub(super) fn fill_l4_lenient(
    key: &mut Key,
    proto: IpNumber,
    fragmented: bool,
    first: bool,
    payload: &[u8],
    declared: usize,
) {
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
        // tshark reads the protocol type before it adds its `gre` layer.
        IpNumber::GRE => {
            if let Some(protocol) = u16_at(2) {
                key.set(Dim::GreProto, protocol.into());
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
    use super::super::tests::{VLAN_UDP, ethernet};
    use super::super::{Fragment, IpFrame, Parsed, parse_frame};
    use super::*;
    use classifier::ABSENT;
    use proptest::strategy::Strategy;

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

    #[test]
    fn gre_is_the_transport_however_short_and_gre_from_four_bytes() {
        // VLAN_UDP's IPv4 header as GRE (47) of 0 to 4 bytes (flags 0, protocol 0x0800), whole
        // and as a first fragment: tshark's `gre` begins at 4 bytes, the key's transport at
        // none (the pipeline knows GRE by it).
        for more_fragments in [0x00, 0x20] {
            for len in 0..=4u8 {
                let mut f = VLAN_UDP;
                f[27] = 47;
                f[24] = more_fragments;
                f[21] = 20 + len; // total length
                f[38..42].copy_from_slice(&[0, 0, 0x08, 0x00]);
                let key = parse_frame(&f, 64).0;
                let gre_proto = if len == 4 { 0x0800 } else { ABSENT };
                assert_eq!([key.get(Dim::L4Proto), key.get(Dim::GreProto)], [47, gre_proto], "{len} bytes");
            }
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

    proptest::proptest! {
        /// The key's MSS slots read a SYN's options as `gre::mss`, which lowers them in place,
        /// does: where the key shows no MSS option above a bound (`forward::mss_within`, which
        /// spares the clamp its own reading), the clamp changes nothing; and where it shows
        /// at most one, the clamp finds that one.
        #[test]
        fn the_key_reads_a_syn_s_mss_options_as_the_clamp_does(
            // Each word of the options an MSS option, or four bytes: kinds and lengths that
            // matter (end, no-op, MSS and its length among them), or any.
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u16>().prop_map(|mss| {
                        let [hi, lo] = mss.to_be_bytes();
                        vec![2, 4, hi, lo]
                    }),
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            proptest::sample::select(vec![0u8, 1, 2, 3, 4, 8, 10, 40]),
                            proptest::prelude::any::<u8>()
                        ],
                        4,
                    ),
                ],
                0..=10,
            ),
            max in proptest::prop_oneof![proptest::strategy::Just(0u16), proptest::prelude::any::<u16>()],
        ) {
            let options = words.concat();
            let header_len = 20 + options.len();
            // IPv4 10.0.0.1 -> 10.0.0.2 (DF, TCP, its total length the segment's end), then a
            // SYN from port 1234 to 80 with `options`.
            let mut l3 = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
            l3[2..4].copy_from_slice(&((20 + header_len) as u16).to_be_bytes());
            l3.extend([0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0]);
            l3.extend([((header_len / 4) << 4) as u8, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
            l3.extend(&options);
            let frame = ethernet(0x0800, &l3);
            let (key, parsed) = parse_frame(&frame, 0);
            let Parsed::Ip(ip) = parsed else { panic!("{parsed:?}") };
            let segment = &frame[ip.l4_start..ip.l3_start + ip.l3_len];
            let mut clamped = segment.to_vec();
            let replaced = gre::mss::clamp_mss(&mut clamped, max);
            if crate::pipeline::forward::mss_within(&key, max) {
                proptest::prop_assert_eq!(replaced, None);
                proptest::prop_assert_eq!(&clamped[..], segment);
            }
            if key.get(Dim::TcpMssLast) == ABSENT {
                let one = u16::try_from(key.get(Dim::TcpMss)).ok();
                proptest::prop_assert_eq!(replaced, one.filter(|&mss| mss > max));
            }
        }
    }
}
