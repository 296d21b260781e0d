// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Benchmark helpers, not product code.
 *
 * xdp_gen: run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES, it sends the test
 * frame out of the given interface (XDP_TX) `repeat` times, as xdp-trafficgen does. Each
 * frame gets a different TCP source port (bytes 34..36 of an untagged IPv4/TCP frame), so
 * that the frames are distinct flows.
 * xdp_sink: counts and drops what arrives (the receiving end of a veth must run an XDP
 * program, or veth refuses the frames). */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);
	if (!n)
		return XDP_ABORTED;
	*n += 1;
	unsigned char *port = data + 34;
	if ((void *)(port + 2) > end)
		return XDP_TX;
	port[0] = (*n >> 8) & 0xff;
	port[1] = *n & 0xff;
	return XDP_TX;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);
	if (n)
		*n += 1;
	return XDP_DROP;
}
