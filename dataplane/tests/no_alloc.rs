//! The per-packet path allocates nothing: a counting global allocator watches
//! `process_batch` over real captures (encapsulated, passed and dropped frames alike) and the
//! tunnel edge's (GRE both ways, fragments made and reassembled), with the worker's IPFIX flow
//! sampling around it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrayvec::ArrayVec;
use common::*;
use transitd::pipeline::{BATCH_SIZE, Frame, HEADROOM};
use transitd::pipeline::{WorkerState, process_batch};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn process_batch_never_allocates() {
    let frames_of = |files: &[&str]| files.iter().flat_map(|f| read_frames(&pcap(f))).collect::<Vec<_>>();
    let captures = ["generated/acme-ftp.pcap", "real/glb-1k_pkts.pcap", "real/tcpdump-various_gre.pcap"];
    let real = frames_of(&[&captures[..], &["real/suricata-syn-flood.pcap"]].concat());
    // The tunnel edge: GRE both ways, ICMP errors, fragments spilled, GRE reassembled.
    let edge = frames_of(&["generated/tunnel-edge.pcap", "generated/gre-fragments.pcap"]);
    let tunnel_edge = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    for (config, name, frames) in [
        (std::fs::read_to_string(root().join("examples/acme.toml")).unwrap(), "acme", &real),
        (CATCH_ALL.to_string(), "catch-all", &real),
        (tunnel_edge, "tunnel-edge", &edge),
    ] {
        let snap = snapshot(&config);
        let mut state = WorkerState::new(&snap);
        // Flow sampling for IPFIX, every packet sampled: the worker's part of it (reading
        // the headers, queueing the sample) is on the per-packet path too.
        let samples = transitd::ipfix::Samples::new(1 << 16);
        let mut sampler = transitd::ipfix::Sampler::new(samples.clone());
        let mut bufs: Vec<Vec<u8>> = (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + 4096]).collect();
        for chunk in frames.chunks(BATCH_SIZE) {
            for (b, f) in bufs.iter_mut().zip(chunk) {
                b[HEADROOM..HEADROOM + f.bytes.len()].copy_from_slice(&f.bytes);
            }
            let mut batch: ArrayVec<Frame<'_>, BATCH_SIZE> = bufs
                .iter_mut()
                .zip(chunk)
                .map(|(b, f)| Frame::new(b, HEADROOM, f.bytes.len(), f.wire_len, f.timestamp_ns))
                .collect();
            COUNTING.store(true, Ordering::SeqCst);
            sampler.pick(1, &batch);
            process_batch(&snap, &mut batch, &mut state);
            sampler.record(&snap, state.outcomes());
            COUNTING.store(false, Ordering::SeqCst);
        }
        assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "{name}");
        let stats = &state.stats;
        assert!(stats.tx_frames > 0 && stats.dropped() + stats.passed() > 0, "{name}: every path was taken");
        if name == "tunnel-edge" {
            assert!(stats.gre_reassembled > 0, "GRE was reassembled");
        }
        let mut sampled = 0;
        while samples.pop().is_some() {
            sampled += 1;
        }
        assert!(sampled > frames.len() / 2, "{name}: {sampled} of {} frames sampled", frames.len());
    }
}
