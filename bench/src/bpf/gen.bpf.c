// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Benchmark helpers, not product code.
 *
 * xdp_gen: run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES, it sends the test
 * frame out of the given interface (XDP_TX) `repeat` times, as xdp-trafficgen does. Each
 * frame gets a different TCP source port (bytes 34..36 of an untagged IPv4/TCP frame), so
 * that the frames are distinct flows.
 * xdp_sink: counts what a forwarder made of the generated SYNs and drops everything (the
 * receiving end of a veth must run an XDP program, or veth refuses the frames).
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

/* 1 for what a forwarder makes of the generated SYN (TCP to port 21): GRE (transitd), VXLAN
 * to UDP port 4789 (the kernel's path), or the SYN itself (reflect, testpmd's macswap).
 * What the interfaces send of their own accord (router solicitations, neighbour discovery)
 * is not forwarding and must not count as such. */
static __always_inline int forwarded(void *data, void *end)
{
	unsigned char *eth = data;
	if ((void *)(eth + 14 + 20) > end || eth[12] != 0x08 || eth[13] != 0x00)
		return 0;
	unsigned char *ip = eth + 14;
	__u32 ihl = (ip[0] & 0xf) * 4;
	if (ihl < 20)
		return 0;
	if (ip[9] == 47)
		return 1;
	unsigned char *l4 = ip + ihl;
	if ((void *)(l4 + 4) > end)
		return 0;
	__u16 dport = ((__u16)l4[2] << 8) | l4[3];
	return (ip[9] == 17 && dport == 4789) || (ip[9] == 6 && dport == 21);
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);
	if (n && forwarded((void *)(long)ctx->data, (void *)(long)ctx->data_end))
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
