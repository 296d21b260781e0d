//! Any bytes, as a batch of received frames, through the vector pipeline the workers run
//! (`process_batch`) and through the frame-at-a-time reference (`process_frame`): the two
//! decide the same for every frame (outcome, bytes rewritten), spill the same frames and
//! count the same. `dataplane/tests/vector_pipeline.rs` holds them to each other on the
//! captures and on damaged frames; this explores what neither holds.
//!
//! Beside the reference, what holds whatever the frames: every frame is counted once and has
//! one verdict, every spilled frame is counted as sent, and every index an outcome holds
//! (customer, tunnel, rule) is inside its table (the counters skip one that is not, silently).
//!
//! Input: a selector byte (which configuration; its top bit: checksums repaired, see
//! `repair.rs`), then frames, each a gap byte (microseconds since the one before: rate
//! limits and TCP tracking see time pass), a two-byte big-endian length and that many bytes
//! (fewer at the end of the input). At most 64 frames.
#![no_main]

#[path = "repair.rs"]
mod repair;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use transitd::pipeline::{
    BATCH_SIZE, Frame, HEADROOM, Limits, Outcome, SPILL_SLOTS, Spill, WorkerState, WorkerStats, process_batch,
    process_frame,
};
use transitd::snapshot::Snapshot;

/// Shared buckets, monitor and rate-limit rules, TCP tracking in a small table, small MTUs
/// (the vector test's configuration); the tunnel edge (decapsulation, echo); soft unicast.
const CONFIGS: [&str; 3] = [
    include_str!("../../dataplane/tests/data/crowded.toml"),
    include_str!("../../dataplane/tests/data/tunnel-edge.toml"),
    include_str!("../../dataplane/tests/data/soft-unicast.toml"),
];

fn snapshots() -> &'static [Snapshot; 3] {
    static S: OnceLock<[Snapshot; 3]> = OnceLock::new();
    S.get_or_init(|| CONFIGS.map(|text| Snapshot::build(&transitd::config::parse("fuzz.toml", text).unwrap()).unwrap()))
}

/// The frames of `data`: (receive time, bytes).
fn frames(mut data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut now = 1_000_000_000u64;
    while let [gap, hi, lo, rest @ ..] = data
        && out.len() < BATCH_SIZE
    {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        now += u64::from(*gap) * 1_000;
        out.push((now, &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// `bufs` as received frames, the input's lengths and times.
fn frames_in<'a>(bufs: &'a mut [Vec<u8>], inputs: &[(u64, &[u8])]) -> Vec<Frame<'a>> {
    bufs.iter_mut()
        .zip(inputs)
        .map(|(buf, (t, bytes))| Frame::new(buf, HEADROOM, bytes.len(), bytes.len() as u32, *t))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else { return };
    let snap = &snapshots()[usize::from(selector % 3)];
    let inputs = frames(data);
    let size = |bytes: &[u8]| HEADROOM + bytes.len().max(snap.frame_size) + 64;
    let mut vector_bufs: Vec<Vec<u8>> = inputs
        .iter()
        .map(|(_, bytes)| {
            let mut buf = vec![0xa5; size(bytes)];
            buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
            if selector & 0x80 != 0 {
                repair::repair(&mut buf[HEADROOM..HEADROOM + bytes.len()]);
            }
            buf
        })
        .collect();
    let mut single_bufs = vector_bufs.clone();
    let mut state = WorkerState::new(snap);
    let mut vector = frames_in(&mut vector_bufs, &inputs);
    // Path MTUs are the snapshot's, shared by every input: each input starts from none, and
    // both pipelines must learn the same from it.
    snap.health.forget_path_mtus();
    process_batch(snap, &mut vector, &mut state);
    let learned_by_vector = snap.health.path_mtus();
    snap.health.forget_path_mtus();

    let mut limits = Limits::new(snap);
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    let mut stats = WorkerStats::new(snap);
    let mut single = frames_in(&mut single_bufs, &inputs);
    let mut expected: Vec<Outcome> = Vec::new();
    for frame in &mut single {
        let before = spill.len();
        let rx_len = frame.len;
        let outcome = process_frame(snap, Some(&snap.eth), &mut limits, &mut spill, frame);
        stats.count_received(&outcome, rx_len, &spill, before);
        frame.verdict = outcome.verdict;
        expected.push(outcome);
    }
    stats.count_tables(&mut limits);

    for (k, (v, s)) in vector.iter().zip(&single).enumerate() {
        assert_eq!(v.verdict, s.verdict, "frame {k}");
        assert_eq!(v.tx_bytes(), s.tx_bytes(), "frame {k}");
    }
    assert_eq!(state.outcomes(), &expected[..]);
    assert_eq!(snap.health.path_mtus(), learned_by_vector, "path MTUs");
    drop((vector, single));
    assert!(vector_bufs == single_bufs, "the buffers differ");
    let spilled = |s: &Spill| s.stamped().map(|(t, b)| (t, b.to_vec())).collect::<Vec<_>>();
    assert_eq!(spilled(&state.spill), spilled(&spill));
    assert_eq!(state.stats, stats);

    let s = &state.stats;
    let n = inputs.len() as u64;
    assert_eq!(s.rx_frames, n, "every frame received is counted");
    let verdicts: u64 = s.tx.iter().chain(&s.pass).chain(&s.drop).chain(&s.consumed).sum();
    assert_eq!(verdicts, n + state.spill.len() as u64, "one verdict a frame, every spilled frame sent");
    assert_eq!(s.tx.iter().sum::<u64>(), s.tx_frames);
    for (k, o) in state.outcomes().iter().enumerate() {
        assert!(o.customer.is_none_or(|c| usize::from(c) < snap.customers.len()), "frame {k}: {o:?}");
        for t in [o.tunnel, o.from_tunnel].into_iter().flatten() {
            assert!(usize::from(t) < snap.tunnels.len(), "frame {k}: {o:?}");
        }
        for r in [o.rule, o.monitor, o.egress_rule, o.egress_monitor].into_iter().flatten() {
            assert!((r as usize) < s.rule_hits.len(), "frame {k}: {o:?}");
        }
        for r in o.dos_rules() {
            assert!((r as usize) < s.dos_hits.len(), "frame {k}: {o:?}");
        }
        assert!(o.tcp_rule.is_none_or(|r| (r as usize) < s.tcp_hits.len()), "frame {k}: {o:?}");
    }
});
