/* Header walking for the XDP program: Ethernet and up to MAX_VLAN_DEPTH tags. Every access
 * is preceded by its end-of-data check, as the verifier demands. */
#pragma once

#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include "consts.h"

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

/* Whether two MAC addresses are the same. */
static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline int is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD) || proto == bpf_htons(0x9100);
}

/* Sets *proto to the EtherType after the tags and *link to the length of the link header
 * (14, 18, 22 or 26 bytes: the network header starts there); 0 if the frame is too short or
 * has more tags than MAX_VLAN_DEPTH. */
static __always_inline int parse_ethernet(void *data, void *end, __be16 *proto, __u32 *link)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	__be16 p = eth->h_proto;
	__u32 len = sizeof(*eth);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_DEPTH; i++) {
		if (!is_vlan(p))
			break;
		struct vlan_hdr_ *v = data + len;
		if ((void *)(v + 1) > end)
			return 0;
		p = v->proto;
		len += sizeof(*v);
	}
	if (is_vlan(p))
		return 0;
	*proto = p;
	*link = len;
	return 1;
}
