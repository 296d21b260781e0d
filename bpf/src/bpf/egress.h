/* Soft-unicast's return path in XDP: a packet to a shared egress address that this server
 * owns goes to the kernel (where its socket is), and so does backbone GRE carrying one,
 * decapsulated here, and the later fragments of a datagram whose first fragment was one. Everything else about egress addresses (another server's, another data
 * centre's) is the data plane's to forward: redirected. The rules are the data plane's
 * (dataplane/src/pipeline/egress.rs); this file only answers "is it mine?". */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "maps.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

struct ports_ {
	__be16 src;
	__be16 dst;
};

struct icmp_ {
	__u8 type;
	__u8 code;
	__be16 check;
	__be16 ident;
	__be16 seq;
};

/* The port that says who owns a return packet: TCP/UDP destination port, an echo reply's
 * identifier, or the source port (echo identifier) of our packet an ICMP error quotes;
 * behind an authentication header (RFC 4302) if one starts the payload. 0 if there is none.
 * Read as the data plane reads it (pipeline/egress.rs, steering_port): the same bytes
 * needed, and none past the IPv4 total length (what follows is Ethernet padding, not the
 * packet). Offsets from the IPv4 header are kept as numbers for the total length check:
 * the verifier bounds packet pointers only against the end of the data. */
static __always_inline int steering_port(struct iphdr *ip, void *end, __u16 *port)
{
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0; /* a later fragment: no transport header */
	__u32 total = bpf_ntohs(ip->tot_len);
	__u32 ihl = (ip->ihl & 0xf) * 4;
	if (ihl < sizeof(*ip))
		return 0;
	__u32 l4_at = ihl;
	__u8 protocol = ip->protocol;
	if (protocol == IPPROTO_AH_) {
		/* Next header, then the length in 4-byte units past the first 8; 0 would end it
		 * inside its own 12 fixed bytes (RFC 4302 section 2.2): the data plane drops it. */
		__u8 *ah = (void *)ip + ihl;
		if ((void *)(ah + 2) > end || ihl + 2 > total || ah[1] == 0)
			return 0;
		protocol = ah[0];
		l4_at += ((__u32)ah[1] + 2) * 4;
	}
	void *l4 = (void *)ip + l4_at;
	if (protocol == IPPROTO_TCP_ || protocol == IPPROTO_UDP_) {
		struct ports_ *p = l4;
		if ((void *)(p + 1) > end || l4_at + sizeof(*p) > total)
			return 0;
		*port = bpf_ntohs(p->dst);
		return 1;
	}
	if (protocol != IPPROTO_ICMP_)
		return 0;
	struct icmp_ *ic = l4;
	if ((void *)(ic + 1) > end || l4_at + sizeof(*ic) > total)
		return 0;
	if (ic->type == 0) {
		*port = bpf_ntohs(ic->ident);
		return 1;
	}
	if (ic->type != 3 && ic->type != 4 && ic->type != 5 && ic->type != 11 && ic->type != 12)
		return 0;
	/* The quoted packet: our IPv4 header, then at least the first bytes of its payload. */
	__u32 quoted = l4_at + sizeof(*ic);
	struct iphdr *q = (void *)(ic + 1);
	if ((void *)(q + 1) > end || quoted + sizeof(*q) > total || q->version != 4)
		return 0;
	/* A quoted later fragment has no transport header: its first bytes are data, not a port
	 * (as the pipeline's steering_port reads it). */
	if (q->frag_off & bpf_htons(0x1fff))
		return 0;
	__u32 qihl = (q->ihl & 0xf) * 4;
	if (qihl < sizeof(*q))
		return 0;
	void *ql4 = (void *)q + qihl;
	__u32 ql4_at = quoted + qihl;
	if (q->protocol == IPPROTO_TCP_ || q->protocol == IPPROTO_UDP_) {
		__be16 *src = ql4; /* the source port: the first two bytes */
		if ((void *)(src + 1) > end || ql4_at + sizeof(*src) > total)
			return 0;
		*port = bpf_ntohs(*src);
		return 1;
	}
	if (q->protocol == IPPROTO_ICMP_) {
		struct icmp_ *qi = ql4; /* type, code, checksum and identifier: six bytes */
		if ((void *)qi + 6 > end || ql4_at + 6 > total || qi->type != 8)
			return 0;
		*port = bpf_ntohs(qi->ident);
		return 1;
	}
	return 0;
}

/* 1: the owner of `port` at egress address `e` is this server; 0: another's; `dc_mine` when
 * the port is in no slice. */
static __always_inline int slice_mine(struct transitd_config *cfg, struct egress_addr *e, __u16 port, int dc_mine)
{
	if (port < cfg->reserved_ports || !cfg->slice_size)
		return dc_mine;
	__u32 slice = (__u32)(port - cfg->reserved_ports) / cfg->slice_size;
	if (slice >= cfg->slices)
		return dc_mine;
	__u32 idx = e->row * cfg->slices + slice;
	if (idx >= MAX_EGRESS_SLICES)
		return dc_mine; /* past the slot's half: the loader never writes such a row */
	idx += cfg->slot * MAX_EGRESS_SLICES;
	__u16 *owner = bpf_map_lookup_elem(&egress_owners, &idx);
	if (!owner || *owner == NO_OWNER)
		return dc_mine;
	return *owner == cfg->this_server;
}

/* Whose a whole packet or first fragment is, by its port. */
static __always_inline int port_mine(struct transitd_config *cfg, struct egress_addr *e, struct iphdr *ip,
				     void *end, int dc_mine)
{
	__u16 port = 0;
	return steering_port(ip, end, &port) ? slice_mine(cfg, e, port, dc_mine) : dc_mine;
}

/* The IPv4 header at `ip`, `at` bytes into a frame of `len` bytes (all its buffers), is one
 * the data plane takes: version 4, a header of 20 bytes or more within the total length,
 * the whole packet in the frame, and a checksum (RFC 1071: the ones' complement sum is all
 * ones) that verifies over the header and its options. */
static __always_inline int ipv4_header_ok(struct iphdr *ip, void *end, __u32 at, __u32 len)
{
	__u32 ihl = (ip->ihl & 0xf) * 4;
	__u32 total = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || total < ihl || at + total > len)
		return 0;
	/* The fixed header's ten words (in the packet: the caller read them), then its options'
	 * words by offset (masked: the verifier bounds it, and the compiler keeps an offset
	 * rather than turn the loop into pointer arithmetic the verifier refuses). */
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	for (__u32 off = sizeof(*ip); off < ihl && off < 60; off += 2) {
		__u16 *word = (void *)ip + (off & 63);
		if ((void *)(word + 1) > end)
			return 0;
		sum += *word;
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* 1: the packet to an egress address is this server's to deliver; 0: another's (forward);
 * -1: not an egress address. A fragment goes where its datagram's first fragment went
 * (only the first has a port); one whose first was not seen here, or not within the hold,
 * is its data centre's, as a packet with no port. `at` and `len` as for ipv4_header_ok,
 * `len` 0 for the frame's own (asked of the kernel only for a first fragment). */
static __always_inline int egress_mine(struct xdp_md *ctx, struct transitd_config *cfg, struct iphdr *ip, void *end,
				       __u32 at, __u32 len)
{
	struct egress_key k = { .slot = cfg->slot, .addr = ip->daddr };
	struct egress_addr *e = bpf_map_lookup_elem(&egress_addrs, &k);
	if (!e)
		return -1;
	int dc_mine = e->dc == cfg->this_dc;
	if (!(ip->frag_off & bpf_htons(0x3fff)))
		return port_mine(cfg, e, ip, end, dc_mine);
	struct fragment_key fk = { .saddr = ip->saddr, .daddr = ip->daddr, .id = ip->id, .protocol = ip->protocol };
	__u64 now = bpf_ktime_get_ns();
	if (ip->frag_off & bpf_htons(0x1fff)) {
		struct fragment_owner *seen = bpf_map_lookup_elem(&fragment_owners, &fk);
		/* Signed: another CPU may have stored a time a little after this CPU's now. */
		if (seen && (__s64)(now - seen->seen_ns) <= (__s64)FRAGMENT_HOLD_NS)
			return seen->mine;
		return dc_mine;
	}
	/* The first fragment, this server's or not: a later fragment of another server's
	 * datagram must be redirected too (where the data plane, which saw the first, knows the
	 * owner), not passed as its data centre's. Recorded only from a header the data plane
	 * takes too: from a damaged one (which both drop), the later fragments would follow an
	 * owner the data plane never recorded. */
	int mine = port_mine(cfg, e, ip, end, dc_mine);
	if (!len)
		len = bpf_xdp_get_buff_len(ctx);
	if (ipv4_header_ok(ip, end, at, len)) {
		struct fragment_owner first = { .seen_ns = now, .mine = (__u32)mine };
		bpf_map_update_elem(&fragment_owners, &fk, &first, BPF_ANY);
	}
	return mine;
}

/* RFC 6040 section 4.2 (normal mode): 0 when the inner packet cannot carry the outer
 * header's congestion mark (not ECN-capable under CE). The data plane drops and counts it,
 * as the marking router would have dropped it. */
static __always_inline int ecn_carriable(struct iphdr *outer, struct iphdr *inner)
{
	return !((outer->tos & 3) == 3 && (inner->tos & 3) == 0);
}

/* RFC 6040 section 4.2 (normal mode), as the data plane's decapsulation does it, on a packet
 * ecn_carriable passed: a congestion mark a router on the backbone put on the outer header
 * reaches the inner one (its checksum updated, RFC 1624), and ECT(1) outside ECT(0) inside
 * becomes ECT(1). */
static __always_inline void carry_ecn(struct iphdr *outer, struct iphdr *inner)
{
	__u8 out = outer->tos & 3, in = inner->tos & 3, want = in;
	if (out == 3)
		want = 3;
	else if (out == 1 && in == 2)
		want = 1;
	if (want == in)
		return;
	__u16 *word = (__u16 *)inner; /* version, header length and tos */
	__u16 old = *word;
	inner->tos = (inner->tos & ~3) | want;
	/* Ones' complement sums do not depend on byte order: the words as loaded will do. */
	__u32 sum = (__u16)~inner->check + (__u16)~old + *word;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	inner->check = (__u16)~sum;
}

struct gre_key_hdr_ {
	__be16 flags;
	__be16 proto;
	__be32 key;
};

/* Backbone GRE to this server carrying return traffic this server owns: strips the outer
 * IPv4 and GRE headers and any VLAN tags before them (`link` bytes of link header, as
 * parse_ethernet read them; the caller passes IPv4 only), keeps the Ethernet addresses, and
 * returns 1 (pass the inner packet to the kernel). The host gets it untagged, on the
 * interface, as it gets untagged backbone traffic: it needs no VLAN device for the
 * backbone's tags (the data plane's sockets carry the backbone, not the host's), and the
 * userspace path hands it over with no tag either (the punt device). 0: not such a packet
 * (the data plane decides). -1: the head moved but the frame was not there after all,
 * which the checks before the move rule out (the caller aborts: a stripped frame must
 * reach no one as ours). Only the shape the data plane sends is handled here: no IPv4
 * options, a header checksum that verifies, GRE with a key only. */
static __always_inline int backbone_mine(struct xdp_md *ctx, struct transitd_config *cfg, __u32 link)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (link > MAX_LINK_LEN)
		return 0; /* parse_ethernet's lengths; bounded for the verifier */
	struct iphdr *ip = data + link;
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_GRE_ ||
	    (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	if (ip->daddr != cfg->backbone_v4 && ip->daddr != cfg->dc_backbone_v4)
		return 0;
	/* The kernel would check it; stripped here, a corrupt header would go unnoticed. The
	 * data plane drops and counts it. */
	__u32 len = bpf_xdp_get_buff_len(ctx);
	if (!ipv4_header_ok(ip, end, link, len))
		return 0;
	struct egress_key peer = { .slot = cfg->slot, .addr = ip->saddr };
	if (!bpf_map_lookup_elem(&backbone_peers, &peer))
		return 0;
	struct gre_key_hdr_ *g = (void *)(ip + 1);
	if ((void *)(g + 1) > end || g->flags != bpf_htons(0x2000) || g->proto != bpf_htons(ETH_P_IP))
		return 0;
	__u32 key = bpf_ntohl(g->key);
	if (key >> 8 != cfg->key_id || ((key & 0xff) != 1 && (key & 0xff) != 2))
		return 0;
	struct iphdr *inner = (void *)(g + 1);
	/* The inner packet ends where the outer one does (not at the frame's end: what
	 * follows is Ethernet padding), as the data plane bounds it. */
	__u32 inner_at = link + sizeof(*ip) + sizeof(*g), outer_end = link + bpf_ntohs(ip->tot_len);
	if ((void *)(inner + 1) > end)
		return 0;
	/* The data plane's checks of the inner packet, before its owner is looked up (and, for
	 * a first fragment, recorded), as there: one that says it runs past the outer packet is
	 * its `truncated` (stripped here, the lying outer length would be gone), a corrupt header
	 * its `bad_ipv4_checksum` (passed, it would be the kernel's uncounted drop), and a mark
	 * the packet cannot carry its `decap_ce_not_ect`, which records no owner for the later
	 * fragments. ipv4_header_ok holds the inner packet within `outer_end`. */
	if (!ipv4_header_ok(inner, end, inner_at, outer_end) || !ecn_carriable(ip, inner))
		return 0;
	if (egress_mine(ctx, cfg, inner, end, inner_at, outer_end) != 1)
		return 0;
	carry_ecn(ip, inner);
	__u8 macs[12];
	if (data + sizeof(macs) > end)
		return 0; /* it is there (the outer headers follow it): for the verifier */
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, (int)(link - sizeof(struct ethhdr) + sizeof(*ip) + sizeof(*g))))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1; /* cannot be (the inner header was read above); stripped, it is no one's */
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = bpf_htons(ETH_P_IP);
	return 1;
}
