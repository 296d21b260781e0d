// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* transitd's XDP program: redirect to the rx queue's AF_XDP socket exactly the frames
 * transitd owns (destination in an owned prefix and not on the host's own link; GRE to the
 * anycast address from a tunnel's router; soft-unicast return traffic another server owns; a
 * frame behind more VLAN tags than it reads, for the data plane to drop) and pass everything
 * else to the kernel, so the host's own traffic (SSH, ARP and neighbour discovery, its
 * addresses, the sockets of its own egress slices, GRE that is not a tunnel's) keeps working.
 * What the data plane would only pass is
 * passed here, so that as little as possible takes the exception path back to the kernel.
 * Every decision is counted before it is returned (all but an abort the checks rule out).
 * Policy beyond "ours or not" is userspace's. */

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "egress.h"
#include "maps.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int count(__u32 stat, int action)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &stat);
	if (n)
		*n += 1;
	return action;
}

/* What the program does with a frame. */
enum verdict_ {
	NOT_OURS,     /* to the kernel */
	OURS,         /* to the rx queue's AF_XDP socket */
	GRE_NOT_OURS, /* GRE to the anycast address that is not transitd's: to the kernel */
};

struct gre_base_ {
	__be16 flags;
	__be16 proto;
};

/* GRE to the anycast address is transitd's when it comes from a configured tunnel's router,
 * is version 0 and carries IPv4 or IPv6 (what the data plane decapsulates), fragment or
 * not. The rest is passed to the kernel here unless the configuration asks the data plane
 * to drop (and count) it. From a tunnel's router, a header cut short (by the frame or by
 * the `left` bytes the IP header says remain), or a later fragment (whose data holds no
 * header), is left to the data plane, which drops it with a reason (a later fragment whose
 * first was passed as not ours follows it: gre_fragment_v4, gre_fragment_v6); from anywhere
 * else it is not ours, whatever it holds. */
static __always_inline int gre_fate(struct transitd_config *cfg, void *gre, void *end, __u32 left, int known,
				    int later_fragment)
{
	struct gre_base_ *g = gre;
	int unreadable = later_fragment || (void *)(g + 1) > end || left < sizeof(*g);
	if (known && unreadable)
		return OURS;
	if (unreadable)
		return cfg->gre_not_ours_pass ? GRE_NOT_OURS : OURS;
	int plain = (g->flags & bpf_htons(GRE_VERSION_MASK)) == 0 &&
		    (g->proto == bpf_htons(ETH_P_IP) || g->proto == bpf_htons(ETH_P_IPV6));
	if (known && plain)
		return OURS;
	return cfg->gre_not_ours_pass ? GRE_NOT_OURS : OURS;
}

/* Whether a later fragment (`key` its datagram in `map`, its family's `gre_refused`) follows
 * its first fragment to the kernel: the program passed that as GRE not ours within
 * REFUSED_GRE_HOLD_NS, and the configuration still passes such GRE. After a reload to
 * `gre_unsupported = "drop"` the rest of a datagram passed before is handed over: the data
 * plane, which never saw its first, holds it for its reassembly hold and gives it up. */
static __always_inline int follows_its_first(struct transitd_config *cfg, void *map, const void *key)
{
	if (!cfg->gre_not_ours_pass)
		return 0;
	__u64 *seen = bpf_map_lookup_elem(map, key);
	/* Signed: another CPU may have stored a time a little after this CPU's now. */
	return seen && (__s64)(bpf_ktime_get_ns() - *seen) <= (__s64)REFUSED_GRE_HOLD_NS;
}

/* Records what became of a first fragment from a tunnel's router (`fate`): passed as GRE not
 * ours, its datagram is remembered for its later fragments; otherwise a datagram of its
 * identity passed before is forgotten (identifications come round), as the data plane's
 * reassembly forgets its refusal. */
static __always_inline void record_first(void *map, const void *key, int fate)
{
	if (fate == GRE_NOT_OURS) {
		__u64 now = bpf_ktime_get_ns();
		bpf_map_update_elem(map, key, &now, BPF_ANY);
	} else if (bpf_map_lookup_elem(map, key)) {
		bpf_map_delete_elem(map, key);
	}
}

/* An IPv4 fragment of GRE from a tunnel's router, `fate` what its header (if it has one)
 * decided: a later fragment follows its first where that was passed as not ours; a first
 * fragment is recorded, from a header the data plane takes too (a damaged one, which both
 * drop, leaves its record as it was, and so the program's). */
static __always_inline int gre_fragment_v4(struct xdp_md *ctx, struct transitd_config *cfg, struct iphdr *ip,
					   void *end, __u32 link, int fate)
{
	struct fragment_key k = { .saddr = ip->saddr, .daddr = ip->daddr, .id = ip->id, .protocol = ip->protocol };
	if (ip->frag_off & bpf_htons(0x1fff))
		return follows_its_first(cfg, &gre_refused_v4, &k) ? GRE_NOT_OURS : fate;
	if (ipv4_header_ok(ip, end, link, bpf_xdp_get_buff_len(ctx)))
		record_first(&gre_refused_v4, &k, fate);
	return fate;
}

/* GRE under an authentication header (RFC 4302) is not decapsulated whoever sends it: the
 * data plane holds no security association to verify it with (the host may). It fares as
 * GRE that is not ours. Anything else under AH, and the later fragments of an AH datagram
 * (data, no header), is the host's. Over IPv4 the AH header starts the payload of a whole
 * packet or a first fragment (a later fragment's payload is data), within the total length
 * (not in Ethernet padding); over IPv6, fate_v6 walks to it. */
static __always_inline int ah_fate(struct transitd_config *cfg, struct iphdr *ip, __u32 ihl, void *end)
{
	__u8 *next_header = (void *)ip + ihl;
	if (ip->frag_off & bpf_htons(0x1fff) || ihl + 1 > bpf_ntohs(ip->tot_len))
		return NOT_OURS;
	if ((void *)(next_header + 1) > end || *next_header != IPPROTO_GRE_)
		return NOT_OURS;
	return cfg->gre_not_ours_pass ? GRE_NOT_OURS : OURS;
}

/* Whether the 16 bytes at `addr` are the IPv6 anycast address (compared as words: the
 * address in the packet need not be aligned for more). */
static __always_inline int is_anycast_v6(struct transitd_config *cfg, const void *addr)
{
	__u32 want[4], got[4];
	__builtin_memcpy(want, cfg->anycast_v6, 16);
	__builtin_memcpy(got, addr, 16);
	return want[0] == got[0] && want[1] == got[1] && want[2] == got[2] && want[3] == got[3];
}

/* An ICMP Fragmentation Needed (IPv4) or Packet Too Big (IPv6) to the anycast address
 * whose quote is GRE from that address to a tunnel's router is about the underlay's path
 * MTU: the data plane's (pipeline/pmtu.rs), which lowers the tunnel's MTU, with
 * `path_mtu_discovery` on. Read as the data plane reads it: the quoted fixed header within
 * the packet's length. The rest of ICMP to the anycast address is the host's. */
static __always_inline int too_big_v4_fate(struct transitd_config *cfg, struct iphdr *ip, __u32 ihl, void *end)
{
	struct icmp_ *ic = (void *)ip + ihl;
	struct iphdr *q = (void *)(ic + 1);
	__u32 total = bpf_ntohs(ip->tot_len);
	if (!cfg->pmtu_redirect || (ip->frag_off & bpf_htons(0x3fff)) || (void *)(q + 1) > end ||
	    ihl + sizeof(*ic) + sizeof(*q) > total)
		return NOT_OURS;
	if (ic->type != 3 || ic->code != 4 || q->version != 4 || q->ihl < 5 || q->protocol != IPPROTO_GRE_ ||
	    q->saddr != cfg->anycast_v4 || ihl + sizeof(*ic) + q->ihl * 4 > total)
		return NOT_OURS;
	__u32 remote = q->daddr;
	return bpf_map_lookup_elem(&tunnel_remotes_v4, &remote) ? OURS : NOT_OURS;
}

static __always_inline int too_big_v6_fate(struct transitd_config *cfg, struct ipv6hdr *ip, void *end)
{
	struct icmp_ *ic = (void *)(ip + 1);
	struct ipv6hdr *q = (void *)(ic + 1);
	if (!cfg->pmtu_redirect || (void *)(q + 1) > end ||
	    sizeof(*ic) + sizeof(*q) > bpf_ntohs(ip->payload_len))
		return NOT_OURS;
	if (ic->type != 2 || q->version != 6 || q->nexthdr != IPPROTO_GRE_)
		return NOT_OURS;
	if (!is_anycast_v6(cfg, &q->saddr))
		return NOT_OURS;
	struct ipv6_addr_ remote;
	__builtin_memcpy(remote.addr, &q->daddr, sizeof(remote.addr));
	return bpf_map_lookup_elem(&tunnel_remotes_v6, &remote) ? OURS : NOT_OURS;
}

/* A destination on the host's own link, which no router forwards and so no customer prefix
 * takes, a catch-all's neither: link-local unicast (RFC 3927 section 2.7, RFC 4291 section
 * 2.5.6: the host's link-local address, a BGP session on 169.254.x.y), the local network
 * control block (RFC 5771 section 4: OSPF, IGMP, VRRP), the limited broadcast (RFC 1812
 * section 5.3.5.1: DHCP), and IPv6 multicast of link scope or narrower (RFC 4291 section
 * 2.7, whatever its flags: neighbour discovery, MLD). The data plane says the same
 * (`is_for_the_link`, dataplane/src/pipeline/scope.rs). */
static __always_inline int for_the_link_v4(__be32 daddr)
{
	__u32 a = bpf_ntohl(daddr);
	return a >> 16 == 0xa9fe || a >> 8 == 0xe00000 || a == 0xffffffff;
}

static __always_inline int for_the_link_v6(const struct in6_addr *daddr)
{
	const __u8 *d = daddr->s6_addr;
	return (d[0] == 0xfe && (d[1] & 0xc0) == 0x80) || (d[0] == 0xff && (d[1] & 0x0f) <= 2);
}

static __always_inline int fate_v4(struct xdp_md *ctx, struct transitd_config *cfg, struct iphdr *ip, void *end,
				   __u32 link)
{
	if (for_the_link_v4(ip->daddr))
		return NOT_OURS;
	struct lpm_v4_key key = { .prefixlen = 32, .addr = ip->daddr };
	if (bpf_map_lookup_elem(&owned_v4, &key))
		return OURS;
	/* GRE from customer routers to the shared anycast address. */
	if (!cfg->anycast_v4 || ip->daddr != cfg->anycast_v4)
		return NOT_OURS;
	__u32 ihl = (ip->ihl & 0xf) * 4;
	if (ihl < 20) /* no IPv4 header: the kernel and the data plane drop it */
		return NOT_OURS;
	if (ip->protocol == IPPROTO_AH_)
		return ah_fate(cfg, ip, ihl, end);
	if (ip->protocol == IPPROTO_ICMP_)
		return too_big_v4_fate(cfg, ip, ihl, end);
	if (ip->protocol != IPPROTO_GRE_)
		return NOT_OURS;
	__u32 src = ip->saddr;
	int known = bpf_map_lookup_elem(&tunnel_remotes_v4, &src) != 0;
	int later_fragment = (ip->frag_off & bpf_htons(0x1fff)) != 0;
	__u32 total = bpf_ntohs(ip->tot_len);
	int fate = gre_fate(cfg, (void *)ip + ihl, end, total > ihl ? total - ihl : 0, known, later_fragment);
	if (known && (ip->frag_off & bpf_htons(0x3fff)))
		return gre_fragment_v4(ctx, cfg, ip, end, link, fate);
	return fate;
}

/* Whether protocol `next` is an IPv6 extension header or AH (which the walk below steps over). */
static __always_inline int v6_skippable(__u8 next)
{
	return next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ || next == IPPROTO_DSTOPTS_ ||
	       next == IPPROTO_FRAGMENT_ || next == IPPROTO_AH_;
}

/* v6_upper_protocol's answer for a chain of more than MAX_V6_EXTENSIONS headers: well formed
 * as far as it was walked, and what follows (GRE or not) unknown. */
#define V6_CHAIN_UNWALKED (-2)

/* Where an IPv6 packet's headers end, as v6_upper_protocol reads them. */
struct v6_upper {
	__u32 at;	    /* the upper-layer header's offset from the walk's start */
	__u32 left;	    /* the payload's bytes from there on */
	int under_ah;	    /* one of the headers is AH */
	int later_fragment; /* the walk ended at a later fragment's data */
	/* The first fragment header's offset and flags word with bit 16 set (0: none), and its
	 * identification: where the data plane's reassembly reads a datagram's identity. */
	__u32 fragment;
	__be32 fragment_id;
	int late_hop_by_hop; /* a hop-by-hop header after another (the data plane drops it) */
	int second_fragment; /* a fragment header after another (the data plane drops it) */
};

/* The protocol behind the IPv6 extension headers (and authentication headers) that start
 * at `p` with protocol `next`: at most MAX_V6_EXTENSIONS of them, within the frame and the
 * `left` bytes of payload the fixed header announces; -1 for a chain that runs past the
 * frame or the payload, or an AH header the parser refuses (length 0); V6_CHAIN_UNWALKED
 * for one with more headers than it walks. Behind a later fragment's header is data: the
 * header names its datagram's protocol, as the data plane's parser reads it. `up` says
 * where the walk ended and what it passed. */
static __always_inline int v6_upper_protocol(__u8 next, void *p, void *end, __u32 left, struct v6_upper *up)
{
	__u32 off = 0;
	for (int i = 0; i < MAX_V6_EXTENSIONS; i++) {
		if (!v6_skippable(next))
			break;
		__u8 *h = p + off;
		if ((void *)(h + 4) > end || (next == IPPROTO_AH_ && h[1] == 0))
			return -1;
		/* Options: 8-byte units past the first 8 (RFC 8200 section 4.3); AH: 4-byte units
		 * past the first 8 (RFC 4302 section 2.2); a fragment header is 8 bytes. */
		__u32 len = next == IPPROTO_FRAGMENT_ ? 8 : next == IPPROTO_AH_ ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8;
		if (len > left)
			return -1;
		if (next == IPPROTO_AH_)
			up->under_ah = 1;
		int later_fragment = next == IPPROTO_FRAGMENT_ && (h[2] << 8 | h[3]) & 0xfff8;
		if (next == IPPROTO_FRAGMENT_ && !up->fragment) {
			/* Kept as read, unjudged: values from the packet let the verifier prune the
			 * walk's paths, where flags set here multiplied them. */
			up->fragment = (h[2] << 8 | h[3]) | 0x10000;
			if ((void *)(h + 8) <= end)
				__builtin_memcpy(&up->fragment_id, h + 4, sizeof(up->fragment_id));
		}
		left -= len;
		next = h[0];
		off += len;
		if (later_fragment) {
			up->at = off;
			up->left = left;
			up->later_fragment = 1;
			return next;
		}
		/* A hop-by-hop header named by another header (RFC 8200 section 4.1: right behind the
		 * fixed header only), without a branch, for the same reason. */
		up->late_hop_by_hop |= ((__u32)next - 1) >> 8 & 1;
		/* A fragment header named behind one (RFC 8200 section 4.1: each header once; Linux
		 * discards the packet), likewise: bit 16 of `fragment` says one was read. */
		up->second_fragment |= up->fragment >> 16 & (((__u32)next ^ IPPROTO_FRAGMENT_) - 1) >> 8 & 1;
	}
	up->at = off;
	up->left = left;
	return v6_skippable(next) ? V6_CHAIN_UNWALKED : next;
}

/* An IPv6 fragment of GRE from a tunnel's router (or of what its router's later fragments
 * name: destination options), `fate` what its headers decided, as gre_fragment_v4 over IPv4.
 * A first fragment is recorded from a packet the data plane reads too: version 6, whole in
 * the frame, any hop-by-hop header first, one fragment header. */
static __always_inline int gre_fragment_v6(struct xdp_md *ctx, struct transitd_config *cfg, struct ipv6hdr *ip,
					   __u32 link, struct v6_upper *up, int fate)
{
	int later = up->fragment & 0xfff8, more = up->fragment & 1;
	if (!up->fragment || (!later && !more))
		return fate; /* none, or an atomic fragment (RFC 6946): a whole packet */
	struct fragment_key_v6 k;
	__builtin_memcpy(k.saddr, &ip->saddr, sizeof(k.saddr));
	__builtin_memcpy(k.daddr, &ip->daddr, sizeof(k.daddr));
	/* (0 if the frame ends inside the header: such a later fragment, if it follows one, is
	 * passed to the kernel, which discards it as the data plane does.) */
	k.id = up->fragment_id;
	if (later)
		return follows_its_first(cfg, &gre_refused_v6, &k) ? GRE_NOT_OURS : fate;
	__u32 whole = link + sizeof(*ip) + bpf_ntohs(ip->payload_len);
	if (ip->version == 6 && !up->late_hop_by_hop && !up->second_fragment && whole <= bpf_xdp_get_buff_len(ctx))
		record_first(&gre_refused_v6, &k, fate);
	return fate;
}

static __always_inline int fate_v6(struct xdp_md *ctx, struct transitd_config *cfg, struct ipv6hdr *ip, void *end,
				   __u32 link)
{
	if (for_the_link_v6(&ip->daddr))
		return NOT_OURS;
	struct lpm_v6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, &ip->daddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&owned_v6, &key))
		return OURS;
	/* GRE over IPv6 to the IPv6 anycast address, behind the fixed header or extension
	 * headers. */
	__u8 next = ip->nexthdr;
	int extension = next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ || next == IPPROTO_FRAGMENT_ ||
			next == IPPROTO_DSTOPTS_;
	if (!cfg->has_anycast_v6 ||
	    (next != IPPROTO_GRE_ && next != IPPROTO_AH_ && next != IPPROTO_ICMPV6_ && !extension))
		return NOT_OURS;
	if (!is_anycast_v6(cfg, &ip->daddr))
		return NOT_OURS;
	if (next == IPPROTO_ICMPV6_) /* right behind the fixed header, as routers send errors */
		return too_big_v6_fate(cfg, ip, end);
	struct ipv6_addr_ src;
	__builtin_memcpy(src.addr, &ip->saddr, sizeof(src.addr));
	int known = bpf_map_lookup_elem(&tunnel_remotes_v6, &src) != 0;
	/* The headers before it are walked as the data plane's parser walks them (a fragment
	 * header, options, AH; right behind the fixed header is how routers send GRE). GRE under
	 * AH is not ours, whoever sends it (as over IPv4: ah_fate); other GRE fares as over
	 * IPv4, by its source and fixed header (a later fragment by its source). From a tunnel's
	 * router, a chain the program cannot read to its end is the data plane's, which drops it
	 * under its reason or, past its `max_ipv6_extension_headers`, reads it on (the kernel,
	 * with no GRE, would do neither); what is not GRE is the host's. */
	struct v6_upper up = { 0 };
	int upper = v6_upper_protocol(next, ip + 1, end, bpf_ntohs(ip->payload_len), &up);
	if (upper > 0 && up.at > MAX_V6_CHAIN_LEN)
		upper = -1; /* a chain longer than the program reads (MAX_V6_CHAIN_LEN) */
	if (upper == IPPROTO_GRE_ && up.under_ah)
		return cfg->gre_not_ours_pass ? GRE_NOT_OURS : OURS;
	if (upper == IPPROTO_GRE_) {
		/* Within MAX_V6_CHAIN_LEN (above): the mask changes nothing but tells the verifier
		 * so. */
		int fate = gre_fate(cfg, (void *)(ip + 1) + (up.at & MAX_V6_CHAIN_LEN), end, up.left, known,
				    up.later_fragment);
		return known ? gre_fragment_v6(ctx, cfg, ip, link, &up, fate) : fate;
	}
	/* Destination options with no routing header before them go behind the fragment header
	 * (RFC 8200 section 4.5; RFC 2473's tunnel encapsulation limit is one): every later
	 * fragment of such GRE names them. From a tunnel's router (not under AH) it is taken for
	 * GRE, as the data plane takes it, which reassembles the datagram and reads what it holds
	 * (or follows its first fragment, passed as not ours). */
	if (known && up.later_fragment && !up.under_ah && upper == IPPROTO_DSTOPTS_)
		return gre_fragment_v6(ctx, cfg, ip, link, &up, OURS);
	/* Behind more headers than the walk reads may be GRE from anyone. With `gre_unsupported =
	 * "drop"` the data plane judges it, which drops such GRE (for its chain, or as not ours):
	 * passed, it reached the host, where the configuration says none such goes. */
	if (upper == V6_CHAIN_UNWALKED && !cfg->gre_not_ours_pass)
		return OURS;
	return known && upper < 0 ? OURS : NOT_OURS;
}

/* Frags-aware ("xdp.frags"): it may be attached to an interface whose MTU exceeds a page,
 * and a jumbo frame reaches it in several buffers. It reads headers only, which are in the
 * first (data..data_end); the AF_XDP socket takes the rest as further descriptors. */
SEC("xdp.frags")
int xdp_transitd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__be16 proto = 0;
	__u32 link = 0;
	int fate = NOT_OURS;

	enum link_header header = parse_ethernet(data, end, &proto, &link);
	if (header == LINK_SHORT)
		return count(STAT_PASSED, XDP_PASS);
	void *l3 = data + link;

	/* The slot the data plane last switched to: a reload in progress writes the other. */
	__u32 zero = 0;
	__u32 *slot = bpf_map_lookup_elem(&config_slot, &zero);
	if (!slot)
		return count(STAT_PASSED, XDP_PASS);
	__u32 active = *slot & (CONFIG_SLOTS - 1);
	struct transitd_config *cfg = bpf_map_lookup_elem(&config, &active);
	if (!cfg)
		return count(STAT_PASSED, XDP_PASS);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(STAT_PASSED, XDP_PASS); /* parse_ethernet checked it: for the verifier */
	if (cfg->check_host_mac && !(eth->h_dest[0] & 1) && !same_mac(eth->h_dest, cfg->host_mac) &&
	    !(cfg->has_config_mac && same_mac(eth->h_dest, cfg->config_mac)))
		return count(STAT_PASSED, XDP_PASS);
	if (header == LINK_TOO_DEEP) {
		/* Behind more tags than it reads, whose it is cannot be told here. The kernel
		 * strips any number of priority tags (VLAN ID 0, 802.1Q or 802.1ad) and routes
		 * what they carry: a customer's packet would reach the host past its firewall.
		 * The data plane drops it (too_many_vlan_tags). */
		fate = OURS;
	} else if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return count(STAT_PASSED, XDP_PASS);
		if (cfg->su_enabled) {
			/* Soft-unicast return traffic: this server's goes to its socket in the
			 * kernel, another's to the data plane to forward. */
			int mine = egress_mine(ctx, cfg, ip, end, link, 0);
			if (mine == 1)
				return count(STAT_EGRESS_LOCAL, XDP_PASS);
			/* Whole: a fragment of GRE to a backbone address is no backbone packet the
			 * data plane forwards (the fleet sends none); the host gets it, as the data
			 * plane would hand it over (no customer's). */
			int to_backbone = ip->protocol == IPPROTO_GRE_ && !(ip->frag_off & bpf_htons(0x3fff)) &&
					  (ip->daddr == cfg->backbone_v4 || ip->daddr == cfg->dc_backbone_v4);
			if (mine == 0) {
				fate = OURS;
			} else if (to_backbone) {
				/* Packet pointers are stale after this call (it may move the head). */
				int local = backbone_mine(ctx, cfg, link);
				if (local > 0)
					return count(STAT_BACKBONE_LOCAL, XDP_PASS);
				if (local < 0)
					return XDP_ABORTED; /* unreachable; traced as an xdp_exception */
				fate = OURS; /* another server's, or not the shape it takes: the data plane's */
			}
		}
		if (fate == NOT_OURS)
			fate = fate_v4(ctx, cfg, ip, end, link);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(STAT_PASSED, XDP_PASS);
		fate = fate_v6(ctx, cfg, ip6, end, link);
	} else if ((proto == bpf_htons(ETH_P_MPLS_UC) || proto == bpf_htons(ETH_P_MPLS_MC)) && cfg->mpls_redirect) {
		fate = OURS;
	}
	if (fate == GRE_NOT_OURS)
		return count(STAT_GRE_NOT_OURS, XDP_PASS);
	if (fate != OURS)
		return count(STAT_PASSED, XDP_PASS);

	/* The flags' low bits are the action when the queue has no socket: pass (fail open) or
	 * drop (fail closed), as configured. */
	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, cfg->unbound_action == XDP_DROP ? XDP_DROP : XDP_PASS);
	return count(action == XDP_REDIRECT ? STAT_REDIRECTED : STAT_NO_SOCKET, action);
}
