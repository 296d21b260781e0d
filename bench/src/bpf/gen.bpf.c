// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Benchmark helpers, not product code.
 *
 * xdp_gen: run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES, it sends the test
 * frame out of the given interface (XDP_TX) `repeat` times, as xdp-trafficgen does. Each
 * frame gets a different TCP source port (bytes 34..36 of an untagged IPv4/TCP frame), so
 * that the frames are distinct flows.
 * xdp_sink: counts the generated SYNs that come back as the forwarder should send them (the
 * `expected` map) and drops everything (the receiving end of a veth must run an XDP program,
 * or veth refuses the frames).
 * xdp_pass: passes everything to the kernel's stack. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The frame to send, written again into every frame before it goes: a receiver that writes
 * into the page (the kernel's stack rewrites the Ethernet header when it forwards) must not
 * change what the generator sends next, since the live-frames page pool recycles pages. */
struct frame_ {
	unsigned char bytes[60];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frame_);
} template SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);
	struct frame_ *t = bpf_map_lookup_elem(&template, &key);
	if (!n || !t)
		return XDP_ABORTED;
	*n += 1;
	if (data + sizeof(t->bytes) > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->bytes, sizeof(t->bytes));
	unsigned char *port = data + 34;
	if ((void *)(port + 2) > end)
		return XDP_TX;
	port[0] = (*n >> 8) & 0xff;
	port[1] = *n & 0xff;
	return XDP_TX;
}

/* What xdp_sink counts, written by `sink` before it attaches: frames to `dst_mac` that hold
 * the generated SYN as `kind` says. A frame the forwarder sent to another address (a wrong
 * next hop), into another tunnel, or that is not the generator's SYN (what the interfaces send
 * of their own accord: router solicitations, neighbour discovery) is not forwarding, and
 * counts for nothing. Left unwritten (kind 0), nothing counts. */
#define FORWARDED_SYN 1   /* the SYN as it was sent (a reflector, testpmd's macswap) */
#define FORWARDED_GRE 2   /* in GRE to `outer_dst`, with no optional field (transitd) */
#define FORWARDED_VXLAN 3 /* in VXLAN to UDP port 4789 of `outer_dst` (the kernel's path) */

struct expected_ {
	unsigned char dst_mac[6];
	unsigned char kind;
	unsigned char unused;
	unsigned char outer_dst[4]; /* IPv4, network order (GRE and VXLAN) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct expected_);
} expected SEC(".maps");

/* Byte by byte: the fields sit at offsets the packet does not align. */
static __always_inline int same(const unsigned char *a, const unsigned char *b, int len)
{
	for (int i = 0; i < len; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* The generator's SYN at `ip`: TCP with SYN alone to 203.0.113.100:21, in a 20-byte IPv4
 * header (the generator writes no options). */
static __always_inline int is_generated_syn(unsigned char *ip, void *end)
{
	unsigned char *tcp = ip + 20;
	if ((void *)(tcp + 14) > end)
		return 0;
	return ip[0] == 0x45 && ip[9] == 6 && ip[16] == 203 && ip[17] == 0 && ip[18] == 113 && ip[19] == 100 &&
	       tcp[2] == 0 && tcp[3] == 21 && (tcp[13] & 0x12) == 0x02;
}

/* An IPv4 header of 20 bytes at `ip`, protocol `proto`, to `dst`. */
static __always_inline int is_ipv4_to(unsigned char *ip, void *end, unsigned char proto, const unsigned char *dst)
{
	if ((void *)(ip + 20) > end)
		return 0;
	return ip[0] == 0x45 && ip[9] == proto && same(ip + 16, dst, 4);
}

static __always_inline int forwarded(void *data, void *end, const struct expected_ *x)
{
	unsigned char *eth = data;
	if ((void *)(eth + 14) > end || !same(eth, x->dst_mac, 6) || eth[12] != 0x08 || eth[13] != 0x00)
		return 0;
	unsigned char *ip = eth + 14;
	switch (x->kind) {
	case FORWARDED_SYN:
		return is_generated_syn(ip, end);
	case FORWARDED_GRE: {
		/* RFC 2784: flags and version 0 (no checksum, key or sequence number), then the
		 * protocol of what it carries, IPv4. */
		unsigned char *gre = ip + 20;
		if (!is_ipv4_to(ip, end, 47, x->outer_dst) || (void *)(gre + 4) > end)
			return 0;
		return gre[0] == 0 && gre[1] == 0 && gre[2] == 0x08 && gre[3] == 0x00 && is_generated_syn(gre + 4, end);
	}
	case FORWARDED_VXLAN: {
		/* UDP to 4789, the 8-byte VXLAN header with its I flag (a VNI follows, RFC 7348),
		 * then the inner Ethernet header. */
		unsigned char *udp = ip + 20, *vxlan = udp + 8, *inner = vxlan + 8;
		if (!is_ipv4_to(ip, end, 17, x->outer_dst) || (void *)(inner + 14) > end)
			return 0;
		return udp[2] == 0x12 && udp[3] == 0xb5 && (vxlan[0] & 0x08) && inner[12] == 0x08 && inner[13] == 0x00 &&
		       is_generated_syn(inner + 14, end);
	}
	}
	return 0;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u32 key = 1, zero = 0;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);
	struct expected_ *x = bpf_map_lookup_elem(&expected, &zero);
	if (n && x && forwarded((void *)(long)ctx->data, (void *)(long)ctx->data_end, x))
		*n += 1;
	return XDP_DROP;
}

/* xdp_pass: lets everything through to the kernel's stack (the receiving end of a veth that the
 * kernel path forwards from: veth hands XDP frames to the stack through an XDP program). */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
