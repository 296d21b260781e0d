//! The packet fields a rule can name, and [`Key`]: one packet's values for all of them.
//!
//! A key is a flat array of `u32`, one slot per [`Dim`]. The parser of the data plane fills
//! it once per packet; the rule table and the reference interpreter only read it. A slot
//! that the packet does not carry holds [`ABSENT`], which no field value can equal, so "the
//! field is missing" is an ordinary value for the compiler (Wireshark: a comparison on an
//! absent field is false, `not` of it is true).
//!
//! Field names and meanings are Wireshark's (`tshark -G fields`), applied to the packet's
//! own headers: the outermost IP header and the transport header after any IPv6 extension
//! headers. Addresses are 128-bit values: an IPv4 address `a` is `a << 96`, so a rule on
//! `ip.src` and one on `ipv6.src` use the same four key words, told apart by `ip.version`.

/// The value of a slot the packet does not carry.
pub const ABSENT: u32 = u32::MAX;

/// [`Dim::IpVersion`] of an IPv4 layer without its addresses: a header tshark 4.0 calls
/// bogus and reads no further (after EtherType 0x0800: a version other than 4 or 6, a header
/// length below 20), where it still shows `ip`, and `ip.hdr_len` behind a version of 4, but
/// no other field; or a header the capture cut short before its source address's last byte,
/// where it shows the fields whose bytes are there (their slots; the others are absent). One
/// above 4, so that `ip` is one range of the slot ([`Guard::IpVersions`]). No stage after the
/// parser acts on it: the frame is dropped as malformed (or, inside MPLS with `mpls =
/// "pass"`, passed as it came).
pub const BOGUS_IPV4: u8 = 5;

/// [`Dim::IpVersion`] of an IPv4 header the capture cut short between its source address and
/// its destination's last byte (a snap length of 30 to 33 behind Ethernet): tshark shows
/// `ip.src` and the fields before it, no `ip.dst`. One below 4, so that `ip.src` and `ip`
/// are each one range of the slot.
pub const IPV4_CUT_BEFORE_DST: u8 = 3;

/// [`Dim::IpVersion`] of an IPv6 header the capture cut short between its source address and
/// its destination's last byte (24 to 39 of its 40 bytes): `ipv6.src` and the fields before
/// it, as tshark shows them, no `ipv6.dst`. One above 6, as [`IPV4_CUT_BEFORE_DST`] is below 4.
pub const IPV6_CUT_BEFORE_DST: u8 = 7;

/// [`BOGUS_IPV4`] of IPv6 (after EtherType 0x86dd): a version other than 6, where tshark shows
/// `ipv6` and nothing more, or a header cut short before its source address's last byte,
/// where it shows the fields whose bytes are there.
pub const BOGUS_IPV6: u8 = 8;

macro_rules! dims {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// One slot of a [`Key`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Dim { $($(#[$doc])* $name),* }
        impl Dim {
            /// Every dimension, in slot order.
            pub const ALL: &'static [Dim] = &[$(Dim::$name),*];
        }
    };
}

dims! {
    /// 4 or 6 for the outermost IP header, [`ABSENT`] for non-IP frames ([`BOGUS_IPV4`] or
    /// [`BOGUS_IPV6`] for a header tshark calls bogus or one cut short before its source
    /// address, [`IPV4_CUT_BEFORE_DST`] or [`IPV6_CUT_BEFORE_DST`] for one cut short after it).
    IpVersion,
    /// Source address, most significant word first (IPv4: word 0, the rest zero).
    Src0,
    /// Source address word 1.
    Src1,
    /// Source address word 2.
    Src2,
    /// Source address word 3 (least significant).
    Src3,
    /// Destination address, as the source.
    Dst0,
    /// Destination address word 1.
    Dst1,
    /// Destination address word 2.
    Dst2,
    /// Destination address word 3.
    Dst3,
    /// IPv4 `protocol` or the IPv6 fixed header's `next header`.
    IpProto,
    /// The transport protocol after any IPv6 extension headers; absent in a non-first fragment.
    L4Proto,
    /// TCP or UDP ports (told apart by `L4Proto`).
    SrcPort,
    /// TCP or UDP destination port.
    DstPort,
    /// The 12 TCP flag bits.
    TcpFlags,
    /// FIN bit; each TCP flag bit has a slot, 0 or 1, so that a bit test is an interval.
    TcpFin,
    /// SYN bit.
    TcpSyn,
    /// RST bit.
    TcpRst,
    /// PSH bit.
    TcpPsh,
    /// ACK bit.
    TcpAck,
    /// URG bit.
    TcpUrg,
    /// ECE bit (`tcp.flags.ece`).
    TcpEce,
    /// CWR bit.
    TcpCwr,
    /// AE bit, formerly NS (`tcp.flags.ae`).
    TcpNs,
    /// ICMP or ICMPv6 type and code (told apart by `L4Proto`).
    IcmpType,
    /// ICMP or ICMPv6 code.
    IcmpCode,
    /// IPv4 TTL or IPv6 hop limit.
    Ttl,
    /// IPv4 total length or IPv6 payload length.
    IpLen,
    /// Length of the frame on the wire.
    FrameLen,
    /// IPv4 don't-fragment and more-fragments flags.
    Df,
    /// IPv4 more-fragments flag, or an IPv6 fragment header's (`ipv6.fraghdr.more`).
    Mf,
    /// IPv4 fragment offset in 8-byte units (as Wireshark 4.0 shows `ip.frag_offset`), or an
    /// IPv6 fragment header's (`ipv6.fraghdr.offset`); absent in IPv6 without one.
    FragOffset,
    /// An IPv6 fragment header's next header (`ipv6.fraghdr.nxt`): there exactly when the
    /// key holds a fragment header's fields, and so the guard of its identification, which
    /// takes [`Dim::IpId`]'s whole range.
    Ipv6FragNext,
    /// Up to three 802.1Q VLAN IDs (tags of EtherType 0x8100 or 0x9100), outermost first.
    Vlan0,
    /// Second 802.1Q VLAN ID.
    Vlan1,
    /// Third 802.1Q VLAN ID.
    Vlan2,
    /// The outermost 802.1ad service tag's VLAN ID (EtherType 0x88a8, `ieee8021ad.id`):
    /// Wireshark reads it as its own protocol, not as `vlan`.
    ServiceVlan,
    /// EtherType of the frame's own Ethernet header (`eth.type`; 0x8100 for a tagged frame);
    /// absent when the field is an 802.3 length.
    EthType,
    /// The same field when it is an 802.3 length (1 to 1500: `eth.len`).
    EthLen,
    /// Its source MAC address, top 16 bits.
    EthSrcHi,
    /// Its source MAC address, low 32 bits.
    EthSrcLo,
    /// Its destination MAC address, top 16 bits.
    EthDstHi,
    /// Its destination MAC address, low 32 bits.
    EthDstLo,
    /// IPv4 header length in bytes (`ip.hdr_len`).
    IpHdrLen,
    /// IPv4 identification, or an IPv6 fragment header's (`ipv6.fraghdr.ident`, 32 bits: any
    /// value, [`ABSENT`]'s too, present where [`Dim::Ipv6FragNext`] is).
    IpId,
    /// IPv4 DS field (DSCP and ECN) or IPv6 traffic class.
    Tos,
    /// Its top six bits.
    Dscp,
    /// Its low two bits.
    Ecn,
    /// IPv6 flow label.
    Ipv6Flow,
    /// TCP sequence number (raw); full 32-bit range, present with [`Dim::TcpHdrLen`].
    TcpSeqNumber,
    /// TCP acknowledgement number (raw); full 32-bit range, present with [`Dim::TcpFlags`].
    TcpAckNumber,
    /// TCP header length in bytes; present once 16 bytes of the TCP header are there (tshark
    /// reads it with the numbers, flags and window; behind a header length below 20, with the
    /// sequence number alone).
    TcpHdrLen,
    /// TCP window (unscaled, `tcp.window_size_value`).
    TcpWindow,
    /// TCP urgent pointer.
    TcpUrgent,
    /// The value of the first TCP MSS option.
    TcpMss,
    /// The value of the last, when a segment has more than one (Linux's receiver takes
    /// the last: a rule on the first alone could be sidestepped).
    TcpMssLast,
    /// TCP segment length (`tcp.len`) or the UDP length field (`udp.length`).
    L4Len,
    /// TCP or UDP checksum field.
    L4Checksum,
    /// ICMP identifier of echo, timestamp, information and address-mask messages.
    IcmpIdent,
    /// ICMP sequence number of the same messages.
    IcmpSeq,
    /// GRE's protocol type (bytes 2-3), there once GRE's first four bytes are, where tshark's
    /// `gre` begins; no rule names it, `gre` is its presence. (The transport protocol is GRE
    /// however short: the pipeline knows GRE by it.)
    GreProto,
    /// First (outermost) MPLS label stack entry: label.
    Mpls0Label,
    /// Its traffic class (`mpls.exp`).
    Mpls0Exp,
    /// Its bottom-of-stack bit.
    Mpls0Bottom,
    /// Its TTL.
    Mpls0Ttl,
    /// Second MPLS label stack entry: label.
    Mpls1Label,
    /// Its traffic class.
    Mpls1Exp,
    /// Its bottom-of-stack bit.
    Mpls1Bottom,
    /// Its TTL.
    Mpls1Ttl,
    /// Third MPLS label stack entry: label.
    Mpls2Label,
    /// Its traffic class.
    Mpls2Exp,
    /// Its bottom-of-stack bit.
    Mpls2Bottom,
    /// Its TTL.
    Mpls2Ttl,
    /// Membership slots ([`crate::list`]): 1 when a field occurrence is in a list, 0 when
    /// not, absent when the packet has no such field.
    Member0,
    /// Second membership slot.
    Member1,
    /// Third membership slot.
    Member2,
    /// Fourth membership slot.
    Member3,
    /// Fifth membership slot.
    Member4,
    /// Sixth membership slot.
    Member5,
    /// Seventh membership slot.
    Member6,
    /// Eighth membership slot.
    Member7,
    /// Layout slots ([`crate::bytes`]): no rule names them; byte tests read them to find a
    /// layer's bytes in the frame. Where `frame` starts (absent: 0; a capture whose link
    /// layer is not Ethernet is read behind a made-up Ethernet header).
    FrameAt,
    /// Where the frame's own Ethernet header starts.
    EthAt,
    /// Where the (outermost) IP header starts.
    L3At,
    /// Where the transport header starts (after any IPv6 extension headers).
    L4At,
    /// An IPv6 jumbogram's payload length (RFC 2675): its Jumbo Payload option's, where the
    /// fixed header's is 0 (which `ipv6.plen` stays, as tshark shows it), no more than the
    /// frame holds past the fixed header on the wire. No rule names it either: byte tests
    /// end the IP payload there.
    Ipv6JumboLen,
}

/// Number of slots in a [`Key`].
pub const DIMS: usize = Dim::ALL.len();

/// One packet's field values, as the rule table reads them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Key(pub [u32; DIMS]);

/// The slots of a key for a frame of `frame_len` bytes on the wire: every one absent but
/// `frame.len`, kept below [`ABSENT`] (which would read as "no frame"). Each slot is written
/// once, four to a store: a fill of the 336 bytes and then the length was a call to `memset`
/// (the compiler makes one of any fill that large), 44 instructions a packet against 29.
#[inline]
fn empty_slots(frame_len: u32) -> [u32; DIMS] {
    let frame_len = frame_len.min(ABSENT - 1);
    std::array::from_fn(|slot| if slot == Dim::FrameLen as usize { frame_len } else { ABSENT })
}

/// TCP flag bits in Wireshark's order (bit 0 = FIN), with the slot each one fills: nine
/// slots in a row, which [`Key::set_tcp_flags`] writes four at a time.
const TCP_FLAG_DIMS: [Dim; 9] = [
    Dim::TcpFin,
    Dim::TcpSyn,
    Dim::TcpRst,
    Dim::TcpPsh,
    Dim::TcpAck,
    Dim::TcpUrg,
    Dim::TcpEce,
    Dim::TcpCwr,
    Dim::TcpNs,
];

const _: () = {
    let mut bit = 0;
    while bit < TCP_FLAG_DIMS.len() {
        assert!(TCP_FLAG_DIMS[bit] as usize == Dim::TcpFin as usize + bit, "the flag slots are in a row");
        bit += 1;
    }
};

/// The values of four flag slots in a row for each value of their four bits, low bit first:
/// the flag slots are copied from it four at a time (two loads and two stores, where a shift,
/// a mask and a store per flag were 25 instructions a TCP packet).
const FLAG_SLOTS_OF_NIBBLE: [[u32; 4]; 16] = {
    let mut table = [[0; 4]; 16];
    let mut nibble = 0;
    while nibble < 16 {
        let mut bit = 0;
        while bit < 4 {
            table[nibble][bit] = (nibble as u32 >> bit) & 1;
            bit += 1;
        }
        nibble += 1;
    }
    table
};

/// The MPLS label stack entries' slots: label, traffic class, bottom of stack, TTL.
const MPLS_DIMS: [[Dim; 4]; 3] = [
    [Dim::Mpls0Label, Dim::Mpls0Exp, Dim::Mpls0Bottom, Dim::Mpls0Ttl],
    [Dim::Mpls1Label, Dim::Mpls1Exp, Dim::Mpls1Bottom, Dim::Mpls1Ttl],
    [Dim::Mpls2Label, Dim::Mpls2Exp, Dim::Mpls2Bottom, Dim::Mpls2Ttl],
];

impl Key {
    /// A key for a frame of `frame_len` bytes on the wire that carries nothing else yet.
    pub fn new(frame_len: u32) -> Key {
        Key(empty_slots(frame_len))
    }

    /// Makes this the key [`Key::new`] makes, in place (a key is 340 bytes: building one
    /// and copying it over costs a copy more, which showed in the pipeline's profile).
    #[inline]
    pub fn reset(&mut self, frame_len: u32) {
        self.0 = empty_slots(frame_len);
    }

    /// The value in slot `dim`.
    #[inline]
    pub fn get(&self, dim: Dim) -> u32 {
        self.0[dim as usize]
    }

    /// Stores `value` in slot `dim`.
    #[inline]
    pub fn set(&mut self, dim: Dim, value: u32) {
        self.0[dim as usize] = value;
    }

    /// The 128-bit source address (IPv4 `a` reads as `a << 96`).
    #[inline]
    pub fn src_addr(&self) -> u128 {
        self.wide(Dim::Src0, 4)
    }

    /// The 128-bit destination address.
    #[inline]
    pub fn dst_addr(&self) -> u128 {
        self.wide(Dim::Dst0, 4)
    }

    /// The value spread over `words` slots from `first` on, most significant word first.
    #[inline]
    pub fn wide(&self, first: Dim, words: u8) -> u128 {
        let first = first as usize;
        self.0[first..first + usize::from(words)].iter().fold(0u128, |acc, &w| (acc << 32) | u128::from(w))
    }

    fn set_wide(&mut self, first: Dim, words: u8, value: u128) {
        let first = first as usize;
        for i in 0..usize::from(words) {
            self.0[first + i] = (value >> (32 * (usize::from(words) - 1 - i))) as u32;
        }
    }

    /// Fills the IPv4 header's fields. `frag_offset` is in 8-byte units.
    #[allow(clippy::too_many_arguments)]
    pub fn set_ipv4(
        &mut self,
        src: [u8; 4],
        dst: [u8; 4],
        protocol: u8,
        ttl: u8,
        total_len: u16,
        df: bool,
        mf: bool,
        frag_offset: u16,
    ) {
        self.set(Dim::IpVersion, 4);
        self.set_wide(Dim::Src0, 4, u128::from(u32::from_be_bytes(src)) << 96);
        self.set_wide(Dim::Dst0, 4, u128::from(u32::from_be_bytes(dst)) << 96);
        self.set(Dim::IpProto, protocol.into());
        self.set(Dim::Ttl, ttl.into());
        self.set(Dim::IpLen, total_len.into());
        self.set(Dim::Df, df.into());
        self.set(Dim::Mf, mf.into());
        self.set(Dim::FragOffset, frag_offset.into());
    }

    /// Fills an IPv6 fragment header's fields: its next header, its offset in 8-byte units,
    /// its more-fragments flag and its identification.
    pub fn set_ipv6_fragment(&mut self, next_header: u8, offset_units: u16, more: bool, ident: u32) {
        self.set(Dim::Ipv6FragNext, next_header.into());
        self.set(Dim::FragOffset, offset_units.into());
        self.set(Dim::Mf, more.into());
        self.set(Dim::IpId, ident);
    }

    /// Fills the IPv6 fixed header's fields.
    pub fn set_ipv6(&mut self, src: [u8; 16], dst: [u8; 16], next_header: u8, hop_limit: u8, payload_len: u16) {
        self.set(Dim::IpVersion, 6);
        self.set_wide(Dim::Src0, 4, u128::from_be_bytes(src));
        self.set_wide(Dim::Dst0, 4, u128::from_be_bytes(dst));
        self.set(Dim::IpProto, next_header.into());
        self.set(Dim::Ttl, hop_limit.into());
        self.set(Dim::IpLen, payload_len.into());
    }

    /// Marks the outermost IP header as one the capture cut short of its fixed header (IPv4's
    /// 20 bytes, IPv6's 40): tshark 4.0 shows its layer and each field whose bytes are there.
    /// `src` is the source address (IPv4's `a` as `a << 96`) when its bytes are; the caller
    /// fills the other fields' slots one by one.
    pub fn set_cut_ip(&mut self, ipv6: bool, src: Option<u128>) {
        let version = match (ipv6, src.is_some()) {
            (false, true) => IPV4_CUT_BEFORE_DST,
            (false, false) => BOGUS_IPV4,
            (true, true) => IPV6_CUT_BEFORE_DST,
            (true, false) => BOGUS_IPV6,
        };
        self.set(Dim::IpVersion, version.into());
        if let Some(src) = src {
            self.set_wide(Dim::Src0, 4, src);
        }
    }

    /// Records the transport protocol the packet carries (after IPv6 extension headers).
    pub fn set_l4_proto(&mut self, protocol: u8) {
        self.set(Dim::L4Proto, protocol.into());
    }

    /// Fills the TCP or UDP ports.
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        self.set(Dim::SrcPort, src.into());
        self.set(Dim::DstPort, dst.into());
    }

    /// Fills the TCP flags (the low 12 bits of bytes 12..14 of the TCP header).
    pub fn set_tcp_flags(&mut self, flags: u16) {
        let flags = flags & 0x0fff;
        self.set(Dim::TcpFlags, flags.into());
        let nibble = |at: u16| FLAG_SLOTS_OF_NIBBLE[usize::from((flags >> at) & 0xf)];
        let slots = &mut self.0[TCP_FLAG_DIMS[0] as usize..][..TCP_FLAG_DIMS.len()];
        slots[..4].copy_from_slice(&nibble(0));
        slots[4..8].copy_from_slice(&nibble(4));
        slots[8] = u32::from((flags >> 8) & 1);
    }

    /// Fills the ICMP or ICMPv6 type and code.
    pub fn set_icmp(&mut self, icmp_type: u8, code: u8) {
        self.set(Dim::IcmpType, icmp_type.into());
        self.set(Dim::IcmpCode, code.into());
    }

    /// Records the frame's own Ethernet header, at its first byte (not one inside an MPLS
    /// pseudowire: like the headers inside any tunnel, that one is payload).
    pub fn set_ethernet(&mut self, type_or_len: u16, src: [u8; 6], dst: [u8; 6]) {
        let mac = |m: [u8; 6]| u128::from(u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]));
        // Wireshark 4.0's reading of bytes 12-13: 1 to 1500 is an 802.3 length, 1536 and up
        // (and 0) an EtherType, 1501 to 1535 neither.
        let (ether_type, len) = match type_or_len {
            1..=1500 => (ABSENT, u32::from(type_or_len)),
            1501..=1535 => (ABSENT, ABSENT),
            _ => (u32::from(type_or_len), ABSENT),
        };
        self.set(Dim::EthType, ether_type);
        self.set(Dim::EthLen, len);
        self.set(Dim::EthAt, 0);
        self.set_wide(Dim::EthSrcHi, 2, mac(src));
        self.set_wide(Dim::EthDstHi, 2, mac(dst));
    }

    /// Forgets the Ethernet header: for frames whose capture had none (raw IP, Linux cooked)
    /// and that were given one only to share the pipeline's framing.
    pub fn clear_ethernet(&mut self) {
        for dim in [Dim::EthType, Dim::EthLen, Dim::EthSrcHi, Dim::EthSrcLo, Dim::EthDstHi, Dim::EthDstLo, Dim::EthAt] {
            self.set(dim, ABSENT);
        }
    }

    /// Records the next MPLS label stack entry (the 32-bit word), outermost first; returns
    /// false once three are recorded.
    pub fn push_mpls(&mut self, entry: u32) -> bool {
        for [label, exp, bottom, ttl] in MPLS_DIMS {
            if self.get(label) == ABSENT {
                self.set(label, entry >> 12);
                self.set(exp, (entry >> 9) & 7);
                self.set(bottom, (entry >> 8) & 1);
                self.set(ttl, entry & 0xff);
                return true;
            }
        }
        false
    }

    /// Records the outermost 802.1ad service tag's VLAN ID; a deeper one is not a field.
    pub fn set_service_vlan(&mut self, id: u16) {
        if self.get(Dim::ServiceVlan) == ABSENT {
            self.set(Dim::ServiceVlan, u32::from(id & 0x0fff));
        }
    }

    /// Records the next 802.1Q VLAN ID, outermost first; returns false once three are recorded.
    pub fn push_vlan(&mut self, id: u16) -> bool {
        for dim in [Dim::Vlan0, Dim::Vlan1, Dim::Vlan2] {
            if self.get(dim) == ABSENT {
                self.set(dim, u32::from(id & 0x0fff));
                return true;
            }
        }
        false
    }
}

/// What kind of value a field holds, which decides how literals are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A protocol name such as `tcp`: it can only be tested for presence.
    Protocol,
    /// An IPv4 address; literals are dotted quads or CIDR networks.
    Ipv4,
    /// An IPv6 address; literals are RFC 4291 text or CIDR networks.
    Ipv6,
    /// An unsigned integer no larger than `max`.
    Uint {
        /// The largest value the field can hold.
        max: u32,
    },
    /// A one-bit flag; literals are integers (non-zero is true) or `True`/`False`.
    Bool,
    /// A 48-bit MAC address; literals are `aa:bb:cc:dd:ee:ff` (or `-`, or `aabb.ccdd.eeff`).
    Ether,
}

/// The condition under which an occurrence of a field exists at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Every frame has it (subject to its slot not being absent).
    Always,
    /// [`Dim::IpVersion`] is in `lo..=hi`: the outermost IP header is of one version, and
    /// whole, or cut short or bogus as far as the field needs ([`BOGUS_IPV4`],
    /// [`IPV4_CUT_BEFORE_DST`] and their IPv6 kin, placed around 4 and 6 to make each such
    /// set one range).
    IpVersions(u8, u8),
    /// The transport protocol is this one.
    L4Proto(u8),
    /// This slot holds a value (for values that use a slot's whole range, which therefore
    /// cannot mark their own absence).
    Has(Dim),
}

/// Where an occurrence's value lives in the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Nowhere: a protocol, present whenever its guard holds.
    None,
    /// One `u32` slot; [`ABSENT`] there means the occurrence is missing.
    Narrow(Dim),
    /// `words` slots from `first` on, most significant first, each using its whole range:
    /// addresses, and 32-bit numbers such as TCP sequence numbers. Presence is the guard's.
    Wide {
        /// The slot of the most significant word.
        first: Dim,
        /// How many slots (1 to 4).
        words: u8,
    },
}

/// One place a field's value can come from. `ip.addr` has two (source and destination),
/// `vlan.id` three (one per tag), most fields one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// When the occurrence exists.
    pub guard: Guard,
    /// Where its value is.
    pub slot: Slot,
}

/// A field a rule can name.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// Wireshark's name for it.
    pub name: &'static str,
    /// Its value type.
    pub ty: Ty,
    /// Where its values come from.
    pub occurrences: &'static [Occurrence],
    /// For names that are transitd's own (not Wireshark's), the Wireshark name they stand for.
    pub alias_of: Option<&'static str>,
}

const fn occ(guard: Guard, slot: Slot) -> Occurrence {
    Occurrence { guard, slot }
}

/// A whole IPv4 header: its destination address.
const V4: Guard = Guard::IpVersions(4, 4);
/// An IPv4 header whole or cut short after its source address: that address.
const V4_SRC: Guard = Guard::IpVersions(IPV4_CUT_BEFORE_DST, 4);
/// An IPv4 layer, its header whole, cut short or bogus: `ip`, and each field of the header
/// but the addresses, there when its slot holds a value.
const V4_LAYER: Guard = Guard::IpVersions(IPV4_CUT_BEFORE_DST, BOGUS_IPV4);
/// A whole IPv6 header: its destination address.
const V6: Guard = Guard::IpVersions(6, 6);
/// An IPv6 header whole or cut short after its source address: that address.
const V6_SRC: Guard = Guard::IpVersions(6, IPV6_CUT_BEFORE_DST);
/// An IPv6 layer, its header whole, cut short or bogus: `ipv6`, and each field of the fixed
/// header but the addresses, there when its slot holds a value.
const V6_LAYER: Guard = Guard::IpVersions(6, BOGUS_IPV6);
const TCP: Guard = Guard::L4Proto(6);
const UDP: Guard = Guard::L4Proto(17);
const ICMP: Guard = Guard::L4Proto(1);
const ICMPV6: Guard = Guard::L4Proto(58);
const U8: Ty = Ty::Uint { max: 0xff };
const U16: Ty = Ty::Uint { max: 0xffff };

macro_rules! field {
    ($name:literal, $ty:expr, [$($occ:expr),*]) => {
        FieldDef { name: $name, ty: $ty, occurrences: &[$($occ),*], alias_of: None }
    };
    ($name:literal alias $of:literal, $ty:expr, [$($occ:expr),*]) => {
        FieldDef { name: $name, ty: $ty, occurrences: &[$($occ),*], alias_of: Some($of) }
    };
}

use Slot::Narrow;

/// The 128-bit source address.
const SRC: Slot = Slot::Wide { first: Dim::Src0, words: 4 };
/// The 128-bit destination address.
const DST: Slot = Slot::Wide { first: Dim::Dst0, words: 4 };
/// The frame has an Ethernet header of its own.
const ETH: Guard = Guard::Has(Dim::EthAt);
const ETH_SRC: Slot = Slot::Wide { first: Dim::EthSrcHi, words: 2 };
const ETH_DST: Slot = Slot::Wide { first: Dim::EthDstHi, words: 2 };
/// A TCP header of 16 bytes or more, whose numbers tshark reads.
const TCP_HEADER: Guard = Guard::Has(Dim::TcpHdrLen);
/// The same with a header length of 20 or more: behind a bogus one tshark shows the sequence
/// number and the header length, and then nothing (flags, acknowledgement number, ...).
const TCP_FLAGS: Guard = Guard::Has(Dim::TcpFlags);
/// An IPv6 fragment header's fields are in the key (its next header is there).
const FRAGMENT_HEADER: Guard = Guard::Has(Dim::Ipv6FragNext);
const U32: Ty = Ty::Uint { max: u32::MAX };
/// A 32-bit Wireshark field held in a narrow slot, whose last value is [`ABSENT`]: tshark
/// bounds a bit field's literals by its type, not its bits (`ip.dsfield.dscp == 64` and
/// `mpls.label == 0x100000` are accepted and match nothing), and so does transitd, but for
/// that one value.
const FT_UINT32: u32 = u32::MAX - 1;

/// Every field and protocol name the language knows.
pub static FIELDS: &[FieldDef] = &[
    field!("frame", Ty::Protocol, [occ(Guard::Always, Slot::None)]),
    field!("frame.len", Ty::Uint { max: u32::MAX }, [occ(Guard::Always, Narrow(Dim::FrameLen))]),
    field!("vlan", Ty::Protocol, [occ(Guard::Always, Narrow(Dim::Vlan0))]),
    field!(
        "vlan.id",
        U16,
        [
            occ(Guard::Always, Narrow(Dim::Vlan0)),
            occ(Guard::Always, Narrow(Dim::Vlan1)),
            occ(Guard::Always, Narrow(Dim::Vlan2))
        ]
    ),
    field!("ieee8021ad", Ty::Protocol, [occ(Guard::Always, Narrow(Dim::ServiceVlan))]),
    field!("ieee8021ad.id", U16, [occ(Guard::Always, Narrow(Dim::ServiceVlan))]),
    field!("eth", Ty::Protocol, [occ(ETH, Slot::None)]),
    field!("eth.type", U16, [occ(Guard::Always, Narrow(Dim::EthType))]),
    field!("eth.len", U16, [occ(Guard::Always, Narrow(Dim::EthLen))]),
    field!("eth.src", Ty::Ether, [occ(ETH, ETH_SRC)]),
    field!("eth.dst", Ty::Ether, [occ(ETH, ETH_DST)]),
    field!("eth.addr", Ty::Ether, [occ(ETH, ETH_DST), occ(ETH, ETH_SRC)]),
    field!("mpls", Ty::Protocol, [occ(Guard::Always, Narrow(Dim::Mpls0Label))]),
    field!(
        "mpls.label",
        Ty::Uint { max: FT_UINT32 },
        [
            occ(Guard::Always, Narrow(Dim::Mpls0Label)),
            occ(Guard::Always, Narrow(Dim::Mpls1Label)),
            occ(Guard::Always, Narrow(Dim::Mpls2Label))
        ]
    ),
    field!(
        "mpls.exp",
        Ty::Uint { max: FT_UINT32 },
        [
            occ(Guard::Always, Narrow(Dim::Mpls0Exp)),
            occ(Guard::Always, Narrow(Dim::Mpls1Exp)),
            occ(Guard::Always, Narrow(Dim::Mpls2Exp))
        ]
    ),
    field!(
        "mpls.bottom",
        Ty::Uint { max: FT_UINT32 },
        [
            occ(Guard::Always, Narrow(Dim::Mpls0Bottom)),
            occ(Guard::Always, Narrow(Dim::Mpls1Bottom)),
            occ(Guard::Always, Narrow(Dim::Mpls2Bottom))
        ]
    ),
    field!(
        "mpls.ttl",
        Ty::Uint { max: FT_UINT32 },
        [
            occ(Guard::Always, Narrow(Dim::Mpls0Ttl)),
            occ(Guard::Always, Narrow(Dim::Mpls1Ttl)),
            occ(Guard::Always, Narrow(Dim::Mpls2Ttl))
        ]
    ),
    field!("ip", Ty::Protocol, [occ(V4_LAYER, Slot::None)]),
    field!("ip.hdr_len", U8, [occ(V4_LAYER, Narrow(Dim::IpHdrLen))]),
    field!("ip.id", U16, [occ(V4_LAYER, Narrow(Dim::IpId))]),
    field!("ip.dsfield", U8, [occ(V4_LAYER, Narrow(Dim::Tos))]),
    field!("ip.dsfield.dscp", U8, [occ(V4_LAYER, Narrow(Dim::Dscp))]),
    field!("ip.dsfield.ecn", U8, [occ(V4_LAYER, Narrow(Dim::Ecn))]),
    field!("ip.src", Ty::Ipv4, [occ(V4_SRC, SRC)]),
    field!("ip.dst", Ty::Ipv4, [occ(V4, DST)]),
    field!("ip.addr", Ty::Ipv4, [occ(V4_SRC, SRC), occ(V4, DST)]),
    field!("ip.proto", U8, [occ(V4_LAYER, Narrow(Dim::IpProto))]),
    field!("ip.ttl", U8, [occ(V4_LAYER, Narrow(Dim::Ttl))]),
    field!("ip.len", U16, [occ(V4_LAYER, Narrow(Dim::IpLen))]),
    field!("ip.flags.df", Ty::Bool, [occ(V4_LAYER, Narrow(Dim::Df))]),
    field!("ip.flags.mf", Ty::Bool, [occ(V4_LAYER, Narrow(Dim::Mf))]),
    field!("ip.frag_offset", U16, [occ(V4_LAYER, Narrow(Dim::FragOffset))]),
    field!("ipv6", Ty::Protocol, [occ(V6_LAYER, Slot::None)]),
    field!("ipv6.src", Ty::Ipv6, [occ(V6_SRC, SRC)]),
    field!("ipv6.dst", Ty::Ipv6, [occ(V6, DST)]),
    field!("ipv6.addr", Ty::Ipv6, [occ(V6_SRC, SRC), occ(V6, DST)]),
    field!("ipv6.nxt", U8, [occ(V6_LAYER, Narrow(Dim::IpProto))]),
    field!("ipv6.hlim", U8, [occ(V6_LAYER, Narrow(Dim::Ttl))]),
    // The first fragment header of the outermost IPv6 header's chain, wherever in it: its
    // offset (8-byte units, as tshark 4.0 shows it), more-fragments flag and identification
    // in IPv4's slots (the identification whole: 32 bits, any of them, in `ip.id`'s slot).
    field!("ipv6.fraghdr", Ty::Protocol, [occ(V6_LAYER, Narrow(Dim::FragOffset))]),
    field!("ipv6.fraghdr.nxt", U8, [occ(V6_LAYER, Narrow(Dim::Ipv6FragNext))]),
    field!("ipv6.fraghdr.offset", U16, [occ(V6_LAYER, Narrow(Dim::FragOffset))]),
    field!("ipv6.fraghdr.more", Ty::Bool, [occ(V6_LAYER, Narrow(Dim::Mf))]),
    field!("ipv6.fraghdr.ident", U32, [occ(FRAGMENT_HEADER, Slot::Wide { first: Dim::IpId, words: 1 })]),
    field!("ipv6.plen", U16, [occ(V6_LAYER, Narrow(Dim::IpLen))]),
    field!("ipv6.tclass", Ty::Uint { max: FT_UINT32 }, [occ(V6_LAYER, Narrow(Dim::Tos))]),
    field!("ipv6.tclass.dscp", Ty::Uint { max: FT_UINT32 }, [occ(V6_LAYER, Narrow(Dim::Dscp))]),
    field!("ipv6.tclass.ecn", Ty::Uint { max: FT_UINT32 }, [occ(V6_LAYER, Narrow(Dim::Ecn))]),
    field!("ipv6.flow", Ty::Uint { max: 0xff_ffff }, [occ(V6_LAYER, Narrow(Dim::Ipv6Flow))]),
    field!("tcp", Ty::Protocol, [occ(TCP, Slot::None)]),
    field!("tcp.srcport", U16, [occ(TCP, Narrow(Dim::SrcPort))]),
    field!("tcp.dstport", U16, [occ(TCP, Narrow(Dim::DstPort))]),
    field!("tcp.port", U16, [occ(TCP, Narrow(Dim::SrcPort)), occ(TCP, Narrow(Dim::DstPort))]),
    field!("tcp.seq", U32, [occ(TCP_HEADER, Slot::Wide { first: Dim::TcpSeqNumber, words: 1 })]),
    field!("tcp.ack", U32, [occ(TCP_FLAGS, Slot::Wide { first: Dim::TcpAckNumber, words: 1 })]),
    field!("tcp.hdr_len", U8, [occ(TCP, Narrow(Dim::TcpHdrLen))]),
    field!("tcp.len", Ty::Uint { max: FT_UINT32 }, [occ(TCP, Narrow(Dim::L4Len))]),
    field!("tcp.window_size_value", U16, [occ(TCP, Narrow(Dim::TcpWindow))]),
    field!("tcp.checksum", U16, [occ(TCP, Narrow(Dim::L4Checksum))]),
    field!("tcp.urgent_pointer", U16, [occ(TCP, Narrow(Dim::TcpUrgent))]),
    field!("tcp.options.mss_val", U16, [occ(TCP, Narrow(Dim::TcpMss)), occ(TCP, Narrow(Dim::TcpMssLast))]),
    field!("tcp.flags", U16, [occ(TCP, Narrow(Dim::TcpFlags))]),
    field!("tcp.flags.fin", Ty::Bool, [occ(TCP, Narrow(Dim::TcpFin))]),
    field!("tcp.flags.syn", Ty::Bool, [occ(TCP, Narrow(Dim::TcpSyn))]),
    field!("tcp.flags.reset", Ty::Bool, [occ(TCP, Narrow(Dim::TcpRst))]),
    field!("tcp.flags.rst" alias "tcp.flags.reset", Ty::Bool, [occ(TCP, Narrow(Dim::TcpRst))]),
    field!("tcp.flags.push", Ty::Bool, [occ(TCP, Narrow(Dim::TcpPsh))]),
    field!("tcp.flags.ack", Ty::Bool, [occ(TCP, Narrow(Dim::TcpAck))]),
    field!("tcp.flags.urg", Ty::Bool, [occ(TCP, Narrow(Dim::TcpUrg))]),
    field!("tcp.flags.ece", Ty::Bool, [occ(TCP, Narrow(Dim::TcpEce))]),
    field!("tcp.flags.cwr", Ty::Bool, [occ(TCP, Narrow(Dim::TcpCwr))]),
    field!("tcp.flags.ae", Ty::Bool, [occ(TCP, Narrow(Dim::TcpNs))]),
    field!("udp", Ty::Protocol, [occ(UDP, Slot::None)]),
    field!("udp.srcport", U16, [occ(UDP, Narrow(Dim::SrcPort))]),
    field!("udp.dstport", U16, [occ(UDP, Narrow(Dim::DstPort))]),
    field!("udp.port", U16, [occ(UDP, Narrow(Dim::SrcPort)), occ(UDP, Narrow(Dim::DstPort))]),
    field!("udp.length", U16, [occ(UDP, Narrow(Dim::L4Len))]),
    field!("udp.checksum", U16, [occ(UDP, Narrow(Dim::L4Checksum))]),
    // UDP-Lite (RFC 3828): tshark dissects it with UDP's fields, which here are UDP's alone
    // (docs/rules.md, Differences).
    field!("udplite", Ty::Protocol, [occ(Guard::L4Proto(136), Slot::None)]),
    field!("icmp", Ty::Protocol, [occ(ICMP, Slot::None)]),
    field!("icmp.ident", U16, [occ(ICMP, Narrow(Dim::IcmpIdent))]),
    field!("icmp.seq", U16, [occ(ICMP, Narrow(Dim::IcmpSeq))]),
    field!("icmp.type", U8, [occ(ICMP, Narrow(Dim::IcmpType))]),
    field!("icmp.code", U8, [occ(ICMP, Narrow(Dim::IcmpCode))]),
    field!("icmpv6", Ty::Protocol, [occ(ICMPV6, Slot::None)]),
    field!("icmpv6.type", U8, [occ(ICMPV6, Narrow(Dim::IcmpType))]),
    field!("icmpv6.code", U8, [occ(ICMPV6, Narrow(Dim::IcmpCode))]),
    field!("gre", Ty::Protocol, [occ(Guard::L4Proto(47), Narrow(Dim::GreProto))]),
];

/// Looks a field or protocol up by name.
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.name == name)
}

impl Occurrence {
    /// Whether the packet of `key` has the header this occurrence is in (its slot may
    /// still be absent).
    #[inline]
    pub fn guard_holds(&self, key: &Key) -> bool {
        match self.guard {
            Guard::Always => true,
            Guard::IpVersions(lo, hi) => (u32::from(lo)..=u32::from(hi)).contains(&key.get(Dim::IpVersion)),
            Guard::L4Proto(p) => key.get(Dim::L4Proto) == u32::from(p),
            Guard::Has(dim) => key.get(dim) != ABSENT,
        }
    }

    /// The occurrence's value in `key`, or `None` where the packet does not carry it.
    /// Protocols (no slot) read as `Some(0)` when present.
    #[inline]
    pub fn value(&self, key: &Key) -> Option<u128> {
        if !self.guard_holds(key) {
            return None;
        }
        match self.slot {
            Slot::None => Some(0),
            Slot::Narrow(dim) => match key.get(dim) {
                ABSENT => None,
                v => Some(u128::from(v)),
            },
            Slot::Wide { first, words } => Some(key.wide(first, words)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique() {
        for (i, a) in FIELDS.iter().enumerate() {
            assert!(FIELDS[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
    }

    #[test]
    fn no_guard_reads_its_own_value_slots() {
        // The compiler treats a guard's slot and a value's slots as separate variables: a
        // guard on a slot the value also spans would split one slot's range two ways.
        for f in FIELDS {
            for o in f.occurrences {
                let Guard::Has(g) = o.guard else { continue };
                let spans = match o.slot {
                    Slot::None => false,
                    Slot::Narrow(d) => d == g,
                    Slot::Wide { first, words } => (first as u8..first as u8 + words).contains(&(g as u8)),
                };
                assert!(!spans, "{}: guard {g:?} inside its value's slots", f.name);
            }
        }
    }

    /// The flag slots, copied four at a time from a table, hold each its bit of the 12 (the
    /// four bits above them, the data offset's, are no flags), and nothing else changes: for
    /// every value, against the slots written one by one.
    #[test]
    fn each_tcp_flag_slot_holds_its_bit() {
        for flags in 0..=0x0fffu16 {
            let mut expect = Key::new(60);
            expect.set(Dim::TcpFlags, flags.into());
            for (bit, &dim) in TCP_FLAG_DIMS.iter().enumerate() {
                expect.set(dim, u32::from((flags >> bit) & 1));
            }
            let mut key = Key::new(60);
            key.set_tcp_flags(0xf000 | flags);
            assert_eq!(key, expect, "{flags:#05x}");
        }
    }

    /// A key made or reset for a frame has every slot absent but the frame's length, which
    /// stays below `ABSENT`.
    #[test]
    fn a_new_key_holds_the_frame_length_alone() {
        for len in [0, 60, 9000, ABSENT - 1, ABSENT] {
            let mut expect = [ABSENT; DIMS];
            expect[Dim::FrameLen as usize] = len.min(ABSENT - 1);
            assert_eq!(Key::new(len).0, expect);
            let mut reused = Key([7; DIMS]);
            reused.reset(len);
            assert_eq!(reused.0, expect);
        }
    }

    /// `ipv6.fraghdr.ident` takes `ip.id`'s slot whole (32 bits, [`ABSENT`]'s value too), there
    /// exactly where a fragment header is: never in IPv4, whose `ip.id` it is, nor in IPv6
    /// without one.
    #[test]
    fn a_fragment_headers_identification_is_its_own_field_in_ip_ids_slot() {
        let value = |key: &Key, name: &str| lookup(name).unwrap().occurrences[0].value(key);
        let mut v6 = Key::new(60);
        v6.set_ipv6([0x20; 16], [0x20; 16], 44, 64, 32);
        assert_eq!([value(&v6, "ipv6.fraghdr.ident"), value(&v6, "ipv6.fraghdr.nxt")], [None, None]);
        v6.set_ipv6_fragment(17, 0, true, ABSENT);
        assert_eq!(value(&v6, "ipv6.fraghdr.ident"), Some(u128::from(ABSENT)));
        assert_eq!([value(&v6, "ipv6.fraghdr.nxt"), value(&v6, "ip.id")], [Some(17), None]);
        let mut v4 = Key::new(60);
        v4.set_ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 64, 40, false, true, 0);
        v4.set(Dim::IpId, 7);
        assert_eq!([value(&v4, "ip.id"), value(&v4, "ipv6.fraghdr.ident")], [Some(7), None]);
    }

    #[test]
    fn ipv4_address_reads_as_shifted_u128() {
        let mut key = Key::new(60);
        key.set_ipv4([10, 0, 0, 1], [192, 0, 2, 1], 6, 64, 40, true, false, 0);
        assert_eq!(key.src_addr(), 0x0a00_0001u128 << 96);
        assert_eq!(key.dst_addr(), 0xc000_0201u128 << 96);
        let ip_src = lookup("ip.src").unwrap().occurrences[0];
        assert_eq!(ip_src.value(&key), Some(0x0a00_0001u128 << 96));
        let ipv6_src = lookup("ipv6.src").unwrap().occurrences[0];
        assert_eq!(ipv6_src.value(&key), None);
    }

    #[test]
    fn a_bogus_header_is_its_protocol_and_header_length_alone() {
        // tshark 4.0 on an IPv4 header length of 16 shows `ip` and `ip.hdr_len`, on an IPv6
        // header of version 4 `ipv6` (dataplane/tests/data/header-edges.pcap).
        let mut key = Key::new(60);
        key.set(Dim::IpVersion, BOGUS_IPV4.into());
        key.set(Dim::IpHdrLen, 16);
        let present = |key: &Key, name: &str| lookup(name).unwrap().occurrences.iter().any(|o| o.value(key).is_some());
        let shown = ["ip", "ip.hdr_len", "ip.src", "ip.len", "ipv6"].map(|name| present(&key, name));
        assert_eq!(shown, [true, true, false, false, false]);
        key.set(Dim::IpVersion, BOGUS_IPV6.into());
        let shown = ["ipv6", "ipv6.src", "ip", "ip.hdr_len"].map(|name| present(&key, name));
        assert_eq!(shown, [true, false, false, false]);
    }

    #[test]
    fn a_header_cut_short_has_the_fields_whose_bytes_are_there() {
        // tshark 4.0 on an IPv4 header cut after 18 bytes shows `ip`, its fields up to the
        // source address and no destination; after 10, no address (tshark's side:
        // dataplane/tests/match_oracle.rs, `a_snap_length_inside_the_ip_header_...`).
        let present = |key: &Key, name: &str| lookup(name).unwrap().occurrences.iter().any(|o| o.value(key).is_some());
        let with_ttl = |ipv6: bool, src: Option<u128>| {
            let mut key = Key::new(60);
            key.set_cut_ip(ipv6, src);
            key.set(Dim::Ttl, 64);
            key
        };
        let key = with_ttl(false, Some(0x0a00_0001u128 << 96));
        let shown = ["ip", "ip.src", "ip.addr", "ip.ttl", "ip.dst", "ip.len", "ipv6", "ipv6.hlim"];
        assert_eq!(shown.map(|n| present(&key, n)), [true, true, true, true, false, false, false, false]);
        assert_eq!(lookup("ip.src").unwrap().occurrences[0].value(&key), Some(0x0a00_0001u128 << 96));
        let key = with_ttl(false, None);
        assert_eq!(["ip", "ip.src", "ip.ttl", "ip.dst"].map(|n| present(&key, n)), [true, false, true, false]);
        let key = with_ttl(true, Some(1));
        let shown = ["ipv6", "ipv6.src", "ipv6.addr", "ipv6.hlim", "ipv6.dst", "ip", "ip.ttl"];
        assert_eq!(shown.map(|n| present(&key, n)), [true, true, true, true, false, false, false]);
        let key = with_ttl(true, None);
        assert_eq!(["ipv6", "ipv6.src", "ipv6.hlim"].map(|n| present(&key, n)), [true, false, true]);
        // Whatever the slot holds, the layer is of one family at most.
        for version in 0..=255 {
            let mut key = Key::new(60);
            key.set(Dim::IpVersion, version);
            assert!(!(present(&key, "ip") && present(&key, "ipv6")), "version slot {version}");
        }
    }

    #[test]
    fn tcp_flags_fill_one_slot_per_bit() {
        let mut key = Key::new(60);
        key.set_tcp_flags(0x012); // SYN+ACK
        assert_eq!(key.get(Dim::TcpSyn), 1);
        assert_eq!(key.get(Dim::TcpAck), 1);
        assert_eq!(key.get(Dim::TcpFin), 0);
        assert_eq!(key.get(Dim::TcpFlags), 0x12);
    }

    #[test]
    fn fourth_vlan_is_refused() {
        let mut key = Key::new(60);
        assert!(key.push_vlan(1) && key.push_vlan(2) && key.push_vlan(3));
        assert!(!key.push_vlan(4));
        assert_eq!([key.get(Dim::Vlan0), key.get(Dim::Vlan2)], [1, 3]);
    }
}
