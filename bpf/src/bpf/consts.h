/* Constants shared by the XDP program's files, each with the reason for its value. */
#pragma once

/* One AF_XDP socket per NIC queue; 64 queues cover the NICs transitd runs on. */
#define MAX_QUEUES 64

/* Tags walked before the IP header: 802.1ad S-tag, 802.1Q C-tag, one more (QinQinQ), as the
 * userspace parser does. A frame with more goes to the data plane, which drops it: the
 * kernel would strip any number of priority tags (VLAN ID 0) and route what they carry. */
#define MAX_VLAN_DEPTH 3
/* The longest link header the program reads: Ethernet and MAX_VLAN_DEPTH tags. */
#define MAX_LINK_LEN (14 + 4 * MAX_VLAN_DEPTH)

/* Prefixes per family in the ownership tries: customers' prefixes. */
#define MAX_PREFIXES 65536

#define IPPROTO_ICMP_ 1
#define IPPROTO_GRE_ 47
#define IPPROTO_ICMPV6_ 58
/* The authentication header (RFC 4302), which transitd does not verify. */
#define IPPROTO_AH_ 51
/* IPv6 extension headers a tunnel's router may put before GRE (RFC 8200 section 4). */
#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60
/* Extension headers (AH among them) walked to tell GRE from a source that is no tunnel's
 * router: as many as the data plane's `max_ipv6_extension_headers` lets through by
 * default, more than any router puts before GRE. A longer chain is the data plane's from a
 * tunnel's router, and from anyone with `gre_unsupported = "drop"` (it may hide GRE); else
 * the kernel's. The verifier bounds it: 16 cost 600,000 of its million instructions, 32
 * more than the million (Linux 6.18), so no limit up to 255 could be walked whole. */
#define MAX_V6_EXTENSIONS 8
/* And at most this many bytes of them (a mask, 2^n - 1): more than any first buffer holds on
 * 4 KiB pages, and a bound the verifier can see on the offset past them. */
#define MAX_V6_CHAIN_LEN 0x3fff

/* Soft-unicast: egress addresses, and their slices in all (addresses × slices per address).
 * 16384 addresses of 31 slices (2048-port slices) fit; the loader refuses a larger plan. */
#define MAX_EGRESS_ADDRS 16384
#define MAX_EGRESS_SLICES (16384 * 32)
/* Backbone peers (servers and data centres of the fleet). */
#define MAX_BACKBONE_PEERS 4096
/* Tunnel remotes per family: every configuration's tunnels fit (tunnel ids are 16 bits). */
#define MAX_TUNNEL_REMOTES 65536
/* The configuration and soft-unicast's tables are kept twice: the data plane writes the slot
 * the program is not reading, then switches `config_slot` to it (one aligned 4-byte write), so
 * a reload is seen whole or not at all. */
#define CONFIG_SLOTS 2
/* Datagrams whose first fragment's owner is kept for their later fragments (LRU), and for
 * how long: Linux keeps an incomplete datagram 30 s (`ipfrag_time`). */
#define MAX_FRAGMENT_OWNERS 16384
#define FRAGMENT_HOLD_NS 30000000000ULL
/* GRE datagrams from tunnels' routers whose first fragment was passed to the kernel as not
 * ours, remembered for their later fragments to follow it (LRU, per address family): as
 * many as the data plane's workers remember such refusals (64 each, gre::reassembly's
 * REFUSED_KEPT, at most one worker per queue), and for as long as it holds a datagram
 * (gre::reassembly::HOLD_NS): past that the data plane would keep the fragment too. */
#define MAX_REFUSED_GRE (MAX_QUEUES * 64)
#define REFUSED_GRE_HOLD_NS 1000000000ULL
/* No server owns the slice. */
#define NO_OWNER 0xffff

/* GRE header bits (RFC 2784): the version is the low 3 bits of the flags word. */
#define GRE_VERSION_MASK 0x0007

/* Counters, one slot each in the per-CPU `stats` map (dataplane reads them by these indices). */
#define STAT_REDIRECTED 0 /* handed to the AF_XDP socket of the rx queue */
#define STAT_PASSED 1     /* not ours: to the kernel stack */
#define STAT_NO_SOCKET 2  /* ours, but no socket on this queue: passed or dropped (unbound_action) */
#define STAT_EGRESS_LOCAL 3   /* return traffic this server owns: to the kernel (its socket) */
#define STAT_BACKBONE_LOCAL 4 /* backbone GRE for this server: decapsulated, to the kernel */
#define STAT_GRE_NOT_OURS 5   /* GRE to the anycast address that is not ours (and the later
			       * fragments of a datagram whose first was): to the kernel */
#define STAT_COUNT 6
