//! A worker's fixed-size tables (tracked connections, authenticated sources, fragment
//! owners, rate-limiter keys) are made on the worker itself when a reload resizes them,
//! between two batches. They are asked of the allocator zeroed, so that making one touches no
//! page: written element by element, a table of 2^24 connections was 256 MiB of writes and
//! page faults (hundreds of milliseconds without polling, every queue's ring overflowing at
//! once). The oracle is the kernel's count of the process's resident pages.
//!
//! A reload that replaces a table in use does not free it on the worker either: freeing
//! hundreds of touched megabytes is as slow, so the worker hands it to whoever freed the
//! snapshots (`run`'s supervisor).
//!
//! Tests in their own binary, one at a time: no other test allocates while one measures.

mod common;

use std::sync::Mutex;

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

/// One measuring test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn making_a_large_table_touches_no_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

/// 65,536 SYNs from as many sources fill a worker's table of 2^22 tracked connections (64
/// MiB) nearly everywhere; a reload to another table size replaces it. The worker follows
/// the new configuration without freeing the old table (the process keeps it resident) and
/// hands it out; freed where it went, it leaves.
#[test]
fn a_reload_hands_the_tables_it_replaces_out_of_the_worker() {
    use transitd::io::memory::MemoryIo;
    use transitd::worker::Worker;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = |size: u32| {
        format!(
            "{}\n[tcp_protection]\ntable_size = {size}\ngrace_period = 0\n\
             [[tcp_protection.rule]]\nname = \"all\"\nmatch = \"tcp\"\nmode = \"mitigate\"\n",
            common::CATCH_ALL
        )
    };
    let first = std::sync::Arc::new(common::snapshot(&config(1 << 22)));
    let syns: Vec<Vec<u8>> = (0..1u32 << 16)
        .map(|i| {
            let src = (0xc633_0000u32 | i).to_be_bytes(); // 198.51.x.y, every one a new connection
            let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
                .ipv4(src, [203, 0, 113, 80], 57)
                .tcp(40000, 80, 1000, 64240)
                .syn();
            let mut out = Vec::with_capacity(b.size(0));
            b.write(&mut out, &[]).unwrap();
            out
        })
        .collect();
    let (to, retired) = crossbeam::channel::bounded(4);
    let mut worker = Worker::new(MemoryIo::new(syns, first.frame_size), first.clone()).retire_to(to);
    worker.run_to_end(Some(first.eth)).unwrap();
    let filled = resident_bytes();
    worker.follow(&std::sync::Arc::new(common::snapshot(&config(1 << 10))));
    let followed = resident_bytes();
    let handed = retired.try_recv().expect("the replaced table handed out");
    assert!(!handed.is_empty());
    drop(handed);
    let freed = resident_bytes();
    drop(worker);
    let mib = |b: u64| b >> 20;
    // Within 8 MiB of where it was after following; 40 MiB of the 64 left when freed.
    assert!(followed + (8 << 20) > filled, "the worker freed it: {} to {} MiB", mib(filled), mib(followed));
    assert!(freed + (40 << 20) < followed, "freed where it went: {} to {} MiB", mib(followed), mib(freed));
}

/// A reload to a `table_size` that rounds to the same table (300,000 and 400,000 connections
/// are both 2^19 slots) keeps the table, its connections and the customers' grace periods:
/// nothing is handed out. One that rounds to another (600,000: 2^20) replaces it.
#[test]
fn a_reload_to_a_table_size_that_rounds_alike_keeps_the_table() {
    use transitd::io::memory::MemoryIo;
    use transitd::worker::Worker;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = |size: u32| {
        std::sync::Arc::new(common::snapshot(&format!(
            "{}\n[tcp_protection]\ntable_size = {size}\ngrace_period = 0\n\
             [[tcp_protection.rule]]\nname = \"all\"\nmatch = \"tcp\"\nmode = \"mitigate\"\n",
            common::CATCH_ALL
        )))
    };
    let first = config(300_000);
    let (to, retired) = crossbeam::channel::bounded(4);
    let mut worker = Worker::new(MemoryIo::new(Vec::new(), first.frame_size), first.clone()).retire_to(to);
    worker.run_to_end(Some(first.eth)).unwrap();
    worker.follow(&config(400_000));
    assert!(retired.try_recv().is_err(), "a table of the same slots was replaced");
    worker.follow(&config(600_000));
    assert!(retired.try_recv().is_ok_and(|r| !r.is_empty()), "a larger table did not replace it");
}

/// Probes go out while every batch fills the spill with fragments: a tunnel of 576 bytes
/// splits each 1400-byte packet into three (one sent with the batch, two spilled), 64 of them
/// fill the 128 slots, and the prober found no room at every tick, so no tunnel was probed
/// (nor judged) while the fragments lasted. The batch's spill is sent first now.
#[test]
fn probes_go_out_while_fragments_fill_every_batch() {
    use transitd::io::memory::MemoryIo;
    use transitd::pipeline::TxReason;
    use transitd::worker::Worker;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(common::root().join("dataplane/tests/data/tunnel-edge.toml"))
        .unwrap()
        .replace("interface = \"10.213.0.0/31\"", "interface = \"10.213.0.0/31\"\nmtu = 576")
        .replace(
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
            "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
        );
    let snap = std::sync::Arc::new(common::snapshot(&text));
    let frame = {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 0, 10], [203, 0, 113, 100], 64)
            .udp(5000, 5001);
        let mut out = Vec::new();
        b.write(&mut out, &[0x5a; 1372]).unwrap();
        // Without DF (etherparse sets it), so that the tunnel fragments it; the header's
        // checksum made again.
        out[20] &= !0x40;
        out[24..26].fill(0);
        let sum = out[14..34].chunks(2).fold(0u32, |a, w| a + u32::from(u16::from_be_bytes([w[0], w[1]])));
        let folded = !((sum & 0xffff) + (sum >> 16)) as u16;
        out[24..26].copy_from_slice(&folded.to_be_bytes());
        out
    };
    let mut worker = Worker::new(MemoryIo::new(vec![frame; 64 * 2000], snap.frame_size), snap.clone()).probe();
    let started = std::time::Instant::now();
    worker.run_to_end(Some(snap.eth)).unwrap();
    let stats = &worker.state().stats;
    let fragments = stats.sent_as(TxReason::Fragment);
    assert_eq!(fragments, 3 * 64 * 2000, "two of each packet's three fragments spilled: the spill full every batch");
    assert!(started.elapsed() > std::time::Duration::from_millis(5), "ticks of the prober passed");
    assert!(stats.sent_as(TxReason::HealthProbe) > 0, "no probe went out in {:?}", started.elapsed());
}
