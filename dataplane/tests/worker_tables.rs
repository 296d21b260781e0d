//! A worker's fixed-size tables (tracked connections, authenticated sources, fragment
//! owners, rate-limiter keys) are made on the worker itself when a reload resizes them,
//! between two batches. They are asked of the allocator zeroed, so that making one touches no
//! page: written element by element, a table of 2^24 connections was 256 MiB of writes and
//! page faults (hundreds of milliseconds without polling, every queue's ring overflowing at
//! once). The oracle is the kernel's count of the process's resident pages.
//!
//! One test in its own binary: no other test allocates while it measures.

use classifier::{BucketKey, BucketSpec, RateLimiter};
use transitd::pipeline::flows::{Authenticated, FlowTable};
use transitd::pipeline::fragments::FragmentOwners;

/// Resident bytes of this process (`VmRSS` in `/proc/self/status`, in kB).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb << 10
}

#[test]
fn making_a_large_table_touches_no_memory() {
    let before = resident_bytes();
    let flows = FlowTable::new(1 << 24);
    let authenticated = Authenticated::new(1 << 22);
    let fragments = FragmentOwners::new(1 << 22);
    let limiter = RateLimiter::new(&[BucketSpec { key: BucketKey::Destination, rate: 1000, burst: 10 }; 2], 1 << 24);
    let after = resident_bytes();
    let made = flows.memory_bytes() as u64;
    assert!(made >= 256 << 20, "the flow table alone is 256 MiB: {made}");
    // The tables total some 900 MiB; what became resident is a few pages of bookkeeping.
    assert!(after.saturating_sub(before) < 16 << 20, "making the tables made {} MiB resident", (after - before) >> 20);
    drop((flows, authenticated, fragments, limiter));
}
