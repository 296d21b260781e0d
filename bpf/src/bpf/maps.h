/* Every map of the XDP program, with what it holds. The dataplane fills them from the
 * configuration snapshot; the program only reads them (and bumps `stats`, and keeps
 * `fragment_owners` and `gre_refused_v4/v6`). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"

/* LPM trie keys: prefix length in bits, then the address in network byte order. */
struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr;
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Settings of this server (one entry per slot, `config_slot` says which is read). Addresses in
 * network byte order; `anycast_v4` 0 and `has_anycast_v6` 0 mean unset. */
struct transitd_config {
	/* The slot this entry is in: soft-unicast's tables are read in the same slot. */
	__u32 slot;
	__u32 anycast_v4;
	__u32 has_anycast_v6;
	__u8 anycast_v6[16];
	/* Soft-unicast (su_enabled 0: none): this server's and its data centre's backbone
	 * addresses, the backbone key's upper 24 bits, this server and data centre, and the
	 * slice geometry. */
	__u32 su_enabled;
	__u32 backbone_v4;
	__u32 dc_backbone_v4;
	__u32 key_id;
	__u16 this_server;
	__u16 this_dc;
	__u16 reserved_ports;
	__u16 slice_size;
	__u32 slices;
	/* GRE to the anycast address that is not ours (from a source no tunnel has, version 1,
	 * a payload other than IPv4 and IPv6): 1 passes it to the kernel here, 0 redirects it
	 * for the data plane to drop and count (`gre_unsupported` in [server]). */
	__u32 gre_not_ours_pass;
	/* What becomes of owned traffic on a queue with no socket: XDP_PASS or XDP_DROP
	 * (`unbound_queue` in [server]). */
	__u32 unbound_action;
	/* MPLS frames (EtherType 0x8847, 0x8848): 1 redirects them for the data plane to drop
	 * and count (`mpls = "drop"` in [server]), 0 passes them to the kernel here. */
	__u32 mpls_redirect;
	/* An ICMP Fragmentation Needed or Packet Too Big to the anycast address about GRE from
	 * it to a tunnel's router: 1 redirects it for the data plane to lower the tunnel's path
	 * MTU (`path_mtu_discovery` in [server]), 0 passes it to the kernel. */
	__u32 pmtu_redirect;
	/* The interface's own MAC address: with check_host_mac 1, a unicast frame to another
	 * (the NIC is promiscuous: tcpdump, a bridge; a switch flooding an unknown destination)
	 * is passed for the kernel to discard as PACKET_OTHERHOST, as it does without XDP, not
	 * forwarded a second time beside the host it was for. */
	__u8 host_mac[6];
	__u16 check_host_mac;
	/* `[server] mac`, the address frames are sent from, if set: frames to it are ours too
	 * (a router told to send to it, as to a virtual router's address). */
	__u8 config_mac[6];
	__u16 has_config_mac;
};

/* An egress address (network order) in a slot. */
struct egress_key {
	__u32 slot;
	__u32 addr;
};

/* An egress address: its data centre and its row in its slot's half of `egress_owners`. */
struct egress_addr {
	__u16 dc;
	__u16 pad;
	__u32 row;
};

/* rx queue index -> AF_XDP socket of the worker polling that queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Destinations transitd owns: customer prefixes (soft-unicast ranges are egress_addrs'). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u8);
} owned_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, __u8);
} owned_v6 SEC(".maps");

/* The slot of `config` (and of the soft-unicast tables) the program reads (one entry). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONFIG_SLOTS);
	__type(key, __u32);
	__type(value, struct transitd_config);
} config SEC(".maps");

/* Soft-unicast egress address in a slot -> its data centre and row. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONFIG_SLOTS * MAX_EGRESS_ADDRS);
	__type(key, struct egress_key);
	__type(value, struct egress_addr);
} egress_addrs SEC(".maps");

/* The server owning each slice, at slot × MAX_EGRESS_SLICES + row × slices + slice
 * (NO_OWNER: none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONFIG_SLOTS * MAX_EGRESS_SLICES);
	__type(key, __u32);
	__type(value, __u16);
} egress_owners SEC(".maps");

/* The fragments of one datagram: RFC 791 section 3.2's four fields. */
struct fragment_key {
	__u32 saddr;
	__u32 daddr;
	__be16 id;
	__u8 protocol;
	__u8 pad;
};

/* Whether a datagram's first fragment was this server's, and when it was seen. */
struct fragment_owner {
	__u64 seen_ns;
	__u32 mine;
	__u32 pad;
};

/* Soft-unicast return datagrams in fragments: only the first carries the port that names
 * the owner, and the later ones go where it went. Written by the program (the data plane
 * keeps its own table for the datagrams it is handed), on every first fragment. One LRU
 * for all CPUs (not BPF_F_NO_COMMON_LRU, which would split the entries among up to 64
 * CPUs' lists): a flood of spoofed first fragments costs an update each and pushes out
 * real datagrams' entries, which then go to their data centre as before. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FRAGMENT_OWNERS);
	__type(key, struct fragment_key);
	__type(value, struct fragment_owner);
} fragment_owners SEC(".maps");

/* An IPv6 datagram's fragments: RFC 8200 section 4.5's source, destination and
 * identification (the identification as on the wire). */
struct fragment_key_v6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 id;
};

/* GRE datagrams from a tunnel's router whose first fragment the program passed to the kernel
 * as not ours (`gre_not_ours`), with when (`bpf_ktime_get_ns`): their later fragments, which
 * hold no header to judge, follow it there, so that the host gets the whole datagram and
 * the data plane keeps no slot for it. IPv4 by RFC 791's four fields (the protocol GRE's),
 * IPv6 by RFC 8200's three (the identification of the first fragment header, as the data
 * plane's reassembly reads it). One LRU for all CPUs, as `fragment_owners`: spoofed first
 * fragments push real entries out, whose later fragments then go to the data plane as
 * before. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_REFUSED_GRE);
	__type(key, struct fragment_key);
	__type(value, __u64);
} gre_refused_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_REFUSED_GRE);
	__type(key, struct fragment_key_v6);
	__type(value, __u64);
} gre_refused_v6 SEC(".maps");

/* Backbone addresses of the fleet's servers and data centres in a slot (the key's `addr`):
 * backbone GRE from anywhere else is not decapsulated here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONFIG_SLOTS * MAX_BACKBONE_PEERS);
	__type(key, struct egress_key);
	__type(value, __u8);
} backbone_peers SEC(".maps");

/* Outer addresses of the configured tunnels' routers (network order): GRE to the anycast
 * address from anywhere else is not ours. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUNNEL_REMOTES);
	__type(key, __u32);
	__type(value, __u8);
} tunnel_remotes_v4 SEC(".maps");

struct ipv6_addr_ {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUNNEL_REMOTES);
	__type(key, struct ipv6_addr_);
	__type(value, __u8);
} tunnel_remotes_v6 SEC(".maps");

/* Per-CPU counters, indexed by STAT_*: no atomics on the packet path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");
