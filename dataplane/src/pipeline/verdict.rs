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
        /// MPLS-labelled, with `mpls = "drop"`.
        Mpls = "mpls",
        /// IPv4 header with a bad version, header length or total length.
        BadIpv4Header = "bad_ipv4_header",
        /// IPv4 header checksum does not verify.
        BadIpv4Checksum = "bad_ipv4_checksum",
        /// IPv6 header with a bad version.
        BadIpv6Header = "bad_ipv6_header",
        /// An IPv4 or IPv6 extension header that cannot be parsed, or one out of place in an
        /// IPv6 chain (RFC 8200 §4.1): a Hop-by-Hop header after another, a second fragment
        /// header.
        BadIpExtHeader = "bad_ip_ext_header",
        /// TCP header with a data offset below 5.
        BadTcpHeader = "bad_tcp_header",
        /// UDP length field below 8, or past the IP payload (RFC 768; the packet is whole).
        BadUdpHeader = "bad_udp_header",
        /// Source address equals destination (a "land" attack).
        Land = "land",
        /// An IPv4 source route (LSRR, SSRR) with hops to go (RFC 7126 §4.3, §4.4), or an
        /// IPv6 routing header with segments left: toward a customer, or (soft-unicast
        /// return traffic another server owns) before the backbone.
        SourceRouted = "source_routed",
        /// TCP flags no stack sends (none of SYN, RST and ACK, SYN+FIN, SYN+RST, FIN without
        /// ACK).
        BadTcpFlags = "bad_tcp_flags",
        /// A first fragment too short to hold the transport header (RFC 1858, RFC 7112), or
        /// (IPv6) its whole chain of extension headers (RFC 8200 §4.5).
        TinyFragment = "tiny_fragment",
        /// A later fragment below the smallest first fragment that passes (TCP and
        /// IPv4-in-IP at offset 8 or 16, IPv6-in-IP below 40, AH-carried and any IPv6 later
        /// fragment below 48), which can only overwrite the headers (RFC 1858).
        OverlappingFragment = "overlapping_fragment",
        /// A fragment that ends past 65,535 bytes with its headers, the largest datagram
        /// (the "ping of death"; RFC 791, RFC 8200 §4.5).
        OversizeFragment = "oversize_fragment",
        /// More IPv6 extension headers than `max_ipv6_extension_headers`.
        Ipv6ExtensionChain = "ipv6_extension_chain",
        /// A source address that can never be legitimate.
        BogonSource = "bogon_source",
        /// A source inside a customer's prefixes (with `customer_sources`), or one of the
        /// edge's own addresses (an anycast address, our side of a tunnel, whatever the
        /// switch), arriving from the Internet for a customer.
        SpoofedCustomerSource = "spoofed_customer_source",
        /// A link-local source (169.254/16, fe80::/10) on a packet that would leave its link
        /// (RFC 3927 §2.7, RFC 4291 §2.5.6: no router forwards one): from the Internet to a
        /// customer, or return traffic another server owns; out of a tunnel (the router's
        /// inner address may be one), to anywhere but our side of it, once its TTL is found
        /// not to run out here.
        LinkLocalSource = "link_local_source",
        /// From the Internet to the network or broadcast address of a tunnel's inner /30
        /// inside a customer's prefix: a broadcast on that link, which a router does not
        /// forward onto it (RFC 1812 §4.2.3.1, RFC 2644).
        TunnelBroadcast = "tunnel_broadcast",
        /// Sent to an Ethernet broadcast or multicast address: a router forwards no frame it
        /// received so (RFC 1812 §5.3.4; Linux's forwarding drops them too). GRE that is not
        /// ours is judged by `gre_unsupported` instead, as the XDP program passes it.
        LinkBroadcast = "link_broadcast",
        /// Dropped by a DoS rule.
        DosRule = "dos_rule",
        /// Over a rate limit.
        RateLimited = "rate_limited",
        /// TCP protection (`mitigate`): an ACK, with or without data, of no tracked
        /// connection.
        TcpOutOfStateAck = "tcp_out_of_state_ack",
        /// TCP protection (`mitigate`): a FIN of no tracked connection.
        TcpOutOfStateFin = "tcp_out_of_state_fin",
        /// TCP protection (`mitigate`): a RST of no tracked connection.
        TcpOutOfStateRst = "tcp_out_of_state_rst",
        /// TCP protection (`mitigate`): a SYN or SYN-ACK above its rule's threshold from a
        /// source not
        /// authenticated, when the worker's challenge budget is spent (or the packet cannot
        /// be answered: IPv6 extension headers).
        TcpSynFlood = "tcp_syn_flood",
        /// IP traffic for no customer, with `unmatched = "drop"`.
        NoCustomer = "no_customer",
        /// IP traffic for no customer, to a prefix a reload removed, in its grace after the
        /// withdrawal (`[bgp] withdrawn_grace_ms`): upstreams still send it here meanwhile,
        /// and the host would route it back out or answer it.
        WithdrawnPrefix = "withdrawn_prefix",
        /// Denied by the customer's firewall.
        Firewall = "firewall",
        /// No route of the customer covers the destination.
        NoRoute = "no_route",
        /// TTL or hop limit would reach zero (and no ICMP error was sent: rate limit, or a
        /// packet no error may answer: an error, a later fragment, a source that names no
        /// one host or is ours).
        TtlExceeded = "ttl_exceeded",
        /// An ICMP Fragmentation Needed or Packet Too Big about GRE from the anycast address
        /// to a tunnel's router that names no tunnel (another key, or a quote cut before
        /// it), whose checksum does not verify, or (IPv6) that names less than 1280 bytes
        /// (RFC 8201 §4): the path MTU is left as it was.
        UnderlayTooBigUnusable = "underlay_too_big_unusable",
        /// Larger than the tunnel MTU (or, decapsulated, than the link's) and not fragmented
        /// (DF set or IPv6, with the ICMP error rate-limited or not allowed; or
        /// `fragment_ipv4 = false`).
        MtuExceeded = "mtu_exceeded",
        /// Fragmenting would take more spill slots than the batch has left.
        FragmentsOverflow = "fragments_overflow",
        /// A fragment of GRE from a tunnel's router that is not reassembled: with
        /// `gre_reassembly = false`, or refused (no data, not a multiple of 8 bytes before
        /// the last, a duplicate, overlapping another, Not-ECT with ECT, more than 16
        /// fragments, longer than a frame).
        GreFragment = "gre_fragment",
        /// A later fragment of GRE from a tunnel's router whose datagram's first fragment
        /// was refused and dropped (GRE not ours with `gre_unsupported = "drop"`, or no GRE
        /// header) within the reassembly hold (a second): dropped as it comes, not kept for a
        /// datagram that will not be taken (the rest of one passed is passed after it).
        GreFragmentOfRefused = "gre_fragment_of_refused",
        /// GRE header too short for its flags, with routing or reserved bits set (RFC 2784).
        BadGreHeader = "bad_gre_header",
        /// GRE checksum does not verify.
        BadGreChecksum = "bad_gre_checksum",
        /// GRE to the anycast address from a source that is no tunnel's remote, with `gre_unsupported = "drop"`.
        GreUnknownTunnel = "gre_unknown_tunnel",
        /// GRE from a tunnel's remote without the tunnel's key (or with a key it has none of).
        GreKeyMismatch = "gre_key_mismatch",
        /// GRE that is not ours (version 1, other payloads, under AH), with
        /// `gre_unsupported = "drop"`.
        GreUnsupported = "gre_unsupported",
        /// GRE to us (or a Packet Too Big about our GRE) whose outer header forbids ending
        /// it here: a source route or routing header with hops left, or an option to
        /// discard if unknown (RFC 791, RFC 8200 §4.2 and §4.4).
        DecapOuterForbids = "decap_outer_forbids",
        /// Decapsulated packet whose source is outside its customer's prefixes, whatever it is
        /// addressed to (a ping of our side of the tunnel too).
        DecapSpoofedSource = "decap_spoofed_source",
        /// Decapsulated packet to an address no router forwards to: unspecified, loopback,
        /// link-local, multicast, broadcast, reserved or IPv4-mapped (RFC 1812 §5.3.7, RFC
        /// 3927 §7, RFC 4291 §2.5.5.2 and §2.5.6), or an address of ours other than its
        /// tunnel's side (an anycast address, another tunnel's side: RFC 1812 §5.2.3).
        DecapMartianDestination = "decap_martian_destination",
        /// Decapsulated packet marked Congestion Experienced on the outer header but not
        /// ECN-capable inside (RFC 6040 §4.2: dropped, as the marking router would have).
        DecapCeNotEct = "decap_ce_not_ect",
        /// Denied by the customer's egress rules.
        Egress = "egress",
        /// Addressed to our side of a tunnel and not a ping or a probe reply, or a ping that
        /// gets no reply (from an address of ours or one naming no host, among others); or,
        /// from the Internet, to our side of a tunnel inside its customer's prefix (served
        /// through its tunnel alone, not forwarded into it).
        TunnelInterface = "tunnel_interface",
        /// An echo reply from the router's side of a tunnel to ours (a health probe's
        /// reply, straight or relayed by another server) whose ICMP checksum does not
        /// verify: damaged on its way, it answers no probe and is not relayed (RFC 1122
        /// §3.2.2: a host discards such a message). Its tag covers only part of it.
        BadProbeReplyChecksum = "bad_probe_reply_checksum",
        /// A reply to another server's health probe, past what the fleet's probes of its
        /// tunnel can ask this worker to relay (twice one each `timeout_ms` from each other
        /// server): not relayed over the backbone.
        ProbeReplyRelayLimited = "probe_reply_relay_limited",
        /// Return traffic the plan sends back where it came from (the fleet's plans
        /// disagree): dropped rather than looped.
        BackboneLoop = "backbone_loop",
        /// Backbone GRE from an address that is no server's or data centre's.
        BackboneUnknownSource = "backbone_unknown_source",
        /// Backbone GRE from a server of the fleet without our key and a hop, or not
        /// carrying IPv4 (a `backbone_key` that differs across the fleet, as mid-change).
        BackboneBadKey = "backbone_bad_key",
        /// Backbone GRE from a server of the fleet in a shape the fleet never sends: IPv4
        /// options on the outer header, or GRE flags besides the key (a checksum, a sequence
        /// number, reserved bits). The XDP program delivers only the fleet's shape itself.
        BackboneBadHeader = "backbone_bad_header",
        /// Backbone GRE whose inner packet is not for an egress address.
        BackboneNotEgress = "backbone_not_egress",
        /// Return traffic too large for the backbone once encapsulated that could be
        /// neither answered (DF: no ICMP error may be sent, the packet being one or the
        /// ICMP rate limit spent) nor fragmented (no DF: `fragment_ipv4` off).
        BackboneMtuExceeded = "backbone_mtu_exceeded",
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
        /// MPLS-labelled, with `mpls = "pass"`.
        Mpls = "mpls",
        /// IP traffic for no customer, with `unmatched = "pass"`.
        NoCustomer = "no_customer",
        /// GRE that is not ours (version 1, i.e. PPTP, other payloads, or under AH), and the
        /// later fragments of such GRE from a tunnel's router after their first.
        GreUnsupported = "gre_unsupported",
        /// GRE to the anycast address from a source that is no tunnel's remote.
        GreUnknownTunnel = "gre_unknown_tunnel",
        /// Return traffic to a shared egress address that this server owns: its socket is
        /// in the host's stack.
        EgressLocal = "egress_local",
    }
}

reasons! {
    /// What a transmitted frame is.
    TxReason {
        /// A customer's traffic, GRE-encapsulated toward its router.
        Encapsulated = "encapsulated",
        /// A customer's traffic out of its tunnel, to the Internet.
        Decapsulated = "decapsulated",
        /// A GRE keepalive, returned to the router that sent it.
        Keepalive = "gre_keepalive",
        /// A fragment of a datagram larger than the tunnel MTU (every fragment counts).
        Fragment = "fragment",
        /// ICMP fragmentation needed or packet too big.
        IcmpTooBig = "icmp_too_big",
        /// ICMP time exceeded.
        IcmpTimeExceeded = "icmp_time_exceeded",
        /// A reply to a ping of our side of a tunnel.
        EchoReply = "echo_reply",
        /// A tunnel health probe.
        HealthProbe = "health_probe",
        /// Return traffic forwarded over the backbone to the server that owns it.
        Backbone = "backbone",
        /// A reply to another server's tunnel health probe, relayed to it over the backbone.
        ProbeReplyRelayed = "probe_reply_relayed",
        /// A SYN-ACK challenging a SYN (or an ACK challenging a SYN-ACK) above its rule's
        /// threshold, sent from the customer's
        /// address (TCP protection).
        SynChallenge = "syn_challenge",
        /// A health probe padded to the MTU a tunnel had before a Packet Too Big about its
        /// underlay lowered it: answered, it disproves the error.
        PathMtuProbe = "path_mtu_probe",
    }
}

reasons! {
    /// Why a frame ended here by design, neither sent nor dropped.
    ConsumeReason {
        /// A reply to one of our tunnel health probes.
        HealthProbeReply = "health_probe_reply",
        /// An ICMP Fragmentation Needed or Packet Too Big about our GRE to a tunnel's
        /// router: the tunnel's path MTU is lowered to it (for ten minutes, not below the
        /// floor) unless the tunnel already keeps under it.
        UnderlayTooBig = "underlay_too_big",
        /// A RST carrying a challenge's cookie: its source is authenticated (TCP
        /// protection); the customer never saw the challenged connection, so it is not sent.
        SynChallengeAnswer = "syn_challenge_answer",
        /// A fragment of GRE from a tunnel's router, its data kept until its datagram is
        /// whole (the fragment that completes it is decapsulated as the whole datagram).
        GreFragmentHeld = "gre_fragment_held",
    }
}

/// The core's decision for one frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Rewritten in place: transmit `len` bytes from offset `start` of the frame buffer
    /// (encapsulation moves the start into the headroom).
    Tx {
        /// Offset of the first byte to send.
        start: usize,
        /// Bytes to send.
        len: usize,
        /// What the frame is now.
        reason: TxReason,
    },
    /// Not ours: hand it to the kernel stack.
    Pass(PassReason),
    /// Drop it, counted under the reason.
    Drop(DropReason),
    /// Used up here (a probe reply): recycle it, counted under the reason.
    Consumed(ConsumeReason),
}

impl Verdict {
    /// The kinds of verdict, by [`Verdict::kind_index`].
    pub const KINDS: [&'static str; 4] = ["tx", "pass", "drop", "consumed"];

    /// `tx`, `pass`, `drop` or `consumed`.
    pub fn kind(&self) -> &'static str {
        Verdict::KINDS[self.kind_index()]
    }

    /// The index of [`Verdict::kind`] in [`Verdict::KINDS`].
    #[inline]
    pub const fn kind_index(&self) -> usize {
        match self {
            Verdict::Tx { .. } => 0,
            Verdict::Pass(_) => 1,
            Verdict::Drop(_) => 2,
            Verdict::Consumed(_) => 3,
        }
    }

    /// The reason's name.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Tx { reason, .. } => reason.name(),
            Verdict::Pass(r) => r.name(),
            Verdict::Drop(r) => r.name(),
            Verdict::Consumed(r) => r.name(),
        }
    }
}

/// Why a GRE header that does not parse is dropped, the same wherever GRE is read (from a
/// customer's router or from the backbone). Decapsulation may pass GRE of another version
/// to the host instead (`gre_unsupported = "pass"`) before asking this.
impl From<gre::GreError> for DropReason {
    fn from(e: gre::GreError) -> DropReason {
        match e {
            gre::GreError::Truncated => DropReason::Truncated,
            // Backbone GRE of another version; decapsulation judges the version before it
            // parses, by `gre_unsupported`, as the XDP program does.
            gre::GreError::Version(_) => DropReason::GreUnsupported,
            gre::GreError::Reserved => DropReason::BadGreHeader,
            gre::GreError::BadChecksum => DropReason::BadGreChecksum,
        }
    }
}
