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

/* What parse_ethernet found. */
enum link_header {
	LINK_SHORT,	/* the frame ends inside its Ethernet header or tags */
	LINK_READ,	/* *proto and *link are set */
	LINK_TOO_DEEP,	/* more tags than MAX_VLAN_DEPTH (however many, cut short or not) */
};

/* Sets *proto to the EtherType after the tags and *link to the length of the link header
 * (14, 18, 22 or 26 bytes: the network header starts there), and says whether it could. */
static __always_inline enum link_header parse_ethernet(void *data, void *end, __be16 *proto, __u32 *link)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return LINK_SHORT;
	__be16 p = eth->h_proto;
	__u32 len = sizeof(*eth);
#pragma unroll
	for (int i = 0; i < MAX_VLAN_DEPTH; i++) {
		if (!is_vlan(p))
			break;
		struct vlan_hdr_ *v = data + len;
		if ((void *)(v + 1) > end)
			return LINK_SHORT;
		p = v->proto;
		len += sizeof(*v);
	}
	if (is_vlan(p))
		return LINK_TOO_DEEP;
	*proto = p;
	*link = len;
	return LINK_READ;
}
