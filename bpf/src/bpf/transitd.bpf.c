// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* transitd's XDP program: redirect to the rx queue's AF_XDP socket exactly the frames
 * transitd owns (destination in an owned prefix; GRE to the anycast address; soft-unicast
 * return traffic another server owns) and pass everything else to the kernel, so the host's
 * own traffic (SSH, ARP, its addresses, the sockets of its own egress slices) keeps working.
 * Every decision is counted before it is returned. Policy beyond "ours or not" is
 * userspace's. */

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

static __always_inline int is_ours_v4(struct iphdr *ip)
{
	struct lpm_v4_key key = { .prefixlen = 32, .addr = ip->daddr };
	if (bpf_map_lookup_elem(&owned_v4, &key))
		return 1;
	__u32 zero = 0;
	struct transitd_config *cfg = bpf_map_lookup_elem(&config, &zero);
	/* GRE from customer routers (and peer servers) to the shared anycast address. */
	return cfg && cfg->anycast_v4 && ip->protocol == IPPROTO_GRE_ && ip->daddr == cfg->anycast_v4;
}

static __always_inline int is_ours_v6(struct ipv6hdr *ip)
{
	struct lpm_v6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, &ip->daddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&owned_v6, &key))
		return 1;
	__u32 zero = 0;
	struct transitd_config *cfg = bpf_map_lookup_elem(&config, &zero);
	/* GRE over IPv6 to the IPv6 anycast address (right behind the fixed header: routers
	 * send no extension headers on tunnel traffic). */
	if (!cfg || !cfg->has_anycast_v6 || ip->nexthdr != IPPROTO_GRE_)
		return 0;
	__u32 want[4], got[4];
	__builtin_memcpy(want, cfg->anycast_v6, 16);
	__builtin_memcpy(got, &ip->daddr, 16);
	return want[0] == got[0] && want[1] == got[1] && want[2] == got[2] && want[3] == got[3];
}

SEC("xdp")
int xdp_transitd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__be16 proto;
	void *l3;
	int ours = 0;

	if (!parse_ethernet(data, end, &proto, &l3))
		return count(STAT_PASSED, XDP_PASS);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return count(STAT_PASSED, XDP_PASS);
		__u32 zero = 0;
		struct transitd_config *cfg = bpf_map_lookup_elem(&config, &zero);
		if (cfg && cfg->su_enabled) {
			/* Soft-unicast return traffic: this server's goes to its socket in the
			 * kernel, another's to the data plane to forward. */
			int mine = egress_mine(cfg, ip, end);
			if (mine == 1)
				return count(STAT_EGRESS_LOCAL, XDP_PASS);
			int to_backbone = ip->protocol == IPPROTO_GRE_ &&
					  (ip->daddr == cfg->backbone_v4 || ip->daddr == cfg->dc_backbone_v4);
			if (mine == 0) {
				ours = 1;
			} else if (to_backbone) {
				/* Packet pointers are stale after this call (it may move the head). */
				if (backbone_mine(ctx, cfg))
					return count(STAT_BACKBONE_LOCAL, XDP_PASS);
				ours = 1; /* another server's, or not the plain shape: the data plane's */
			}
		}
		if (!ours)
			ours = is_ours_v4(ip);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(STAT_PASSED, XDP_PASS);
		ours = is_ours_v6(ip6);
	}
	if (!ours)
		return count(STAT_PASSED, XDP_PASS);

	/* XDP_PASS in the flags: the action when the queue has no socket (yet). */
	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	return count(action == XDP_REDIRECT ? STAT_REDIRECTED : STAT_NO_SOCKET, action);
}
