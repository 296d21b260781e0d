//! What the core decides for each frame, and the named reasons behind passes and drops.
//!
//! Counters, logs and drop captures all use these names, as VPP's `error.def` does.

macro_rules! reasons {
    ($(#[$meta:meta])* $name:ident { $($(#[$doc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$doc])* $variant,)* }
        impl $name {
            /// Every reason, in counter order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Number of reasons: the length of a counter array.
            pub const COUNT: usize = $name::ALL.len();
            /// The reason's name in counters and logs.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            /// Index into a counter array.
            pub const fn index(self) -> usize { self as usize }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
    };
}

reasons! {
    /// Why a frame was dropped.
    DropReason {
        /// Longer than the configured frame size (an AF_XDP UMEM frame).
        Oversize = "oversize",
        /// A header runs past the end of the frame, or an IP length field claims more bytes
        /// than the frame holds.
        Truncated = "truncated",
        /// More than three VLAN tags.
        TooManyVlanTags = "too_many_vlan_tags",
        /// A MACsec header that cannot be parsed.
        BadLinkHeader = "bad_link_header",
        /// IPv4 header with a bad version, header length or total length.
        BadIpv4Header = "bad_ipv4_header",
        /// IPv4 header checksum does not verify.
        BadIpv4Checksum = "bad_ipv4_checksum",
        /// IPv6 header with a bad version.
        BadIpv6Header = "bad_ipv6_header",
        /// An IPv4 or IPv6 extension header that cannot be parsed.
        BadIpExtHeader = "bad_ip_ext_header",
        /// TCP header with a data offset below 5.
        BadTcpHeader = "bad_tcp_header",
        /// Source address equals destination (a "land" attack).
        Land = "land",
        /// TCP flags no stack sends (none, SYN+FIN, SYN+RST, FIN without ACK).
        BadTcpFlags = "bad_tcp_flags",
        /// A first fragment too short to hold the transport header (RFC 1858, RFC 7112).
        TinyFragment = "tiny_fragment",
        /// A TCP fragment at offset 8, which can only overwrite the header (RFC 1858).
        OverlappingFragment = "overlapping_fragment",
        /// More IPv6 extension headers than `max_ipv6_extension_headers`.
        Ipv6ExtensionChain = "ipv6_extension_chain",
        /// A source address that can never be legitimate.
        BogonSource = "bogon_source",
        /// A source inside a customer's prefixes arriving from the Internet.
        SpoofedCustomerSource = "spoofed_customer_source",
        /// Dropped by a DoS rule.
        DosRule = "dos_rule",
        /// Over a rate limit.
        RateLimited = "rate_limited",
        /// IP traffic for no customer, with `unmatched = "drop"`.
        NoCustomer = "no_customer",
        /// Denied by the customer's firewall.
        Firewall = "firewall",
        /// No route of the customer covers the destination.
        NoRoute = "no_route",
        /// TTL or hop limit would reach zero.
        TtlExceeded = "ttl_exceeded",
        /// The inner packet is larger than the tunnel MTU.
        MtuExceeded = "mtu_exceeded",
        /// Not enough headroom in the frame buffer for the outer headers.
        NoHeadroom = "no_headroom",
        /// The next hop's MAC address is not (yet) in the neighbour table.
        NextHopUnresolved = "next_hop_unresolved",
    }
}

reasons! {
    /// Why a frame was handed to the host's kernel stack.
    PassReason {
        /// Not IPv4 or IPv6 (ARP, LLDP, ...).
        NotIp = "not_ip",
        /// IP traffic for no customer, with `unmatched = "pass"`.
        NoCustomer = "no_customer",
    }
}

/// The core's decision for one frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place: transmit `len` bytes from offset `start` of the frame buffer
    /// (encapsulation moves the start into the headroom).
    Tx {
        /// Offset of the first byte to send.
        start: usize,
        /// Bytes to send.
        len: usize,
    },
    /// Not ours: hand it to the kernel stack.
    Pass(PassReason),
    /// Drop it, counted under the reason.
    Drop(DropReason),
}
