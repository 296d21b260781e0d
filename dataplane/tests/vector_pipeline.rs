//! The vector pipeline (`process_batch`, stage by stage over a batch) decides exactly as the
//! frame-at-a-time pipeline (`process_frame`, every stage on one frame before the next) on
//! every capture the project carries and on randomly damaged frames: the same outcome per
//! frame (verdict, customer, rules, tunnels), the same bytes rewritten, the same frames
//! spilled, the same counters. The configurations make rate limits bite (buckets shared by
//! the global DoS rules and a customer's firewall, whose token order matters), fragment and
//! answer with ICMP (small tunnel MTUs), track TCP connections in a small table (evicting),
//! decapsulate and run soft unicast.

mod common;

use common::*;
use transitd::pipeline::{
    BATCH_SIZE, DropReason, Frame, HEADROOM, Limits, Outcome, SPILL_SLOTS, Spill, Verdict, WorkerState, WorkerStats,
    WouldLimit, process_batch, process_frame,
};
use transitd::snapshot::Snapshot;

/// The configurations both pipelines are run on, by name.
fn configs() -> Vec<(&'static str, String)> {
    let file = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    vec![
        ("crowded", file("dataplane/tests/data/crowded.toml")),
        ("catch-all", CATCH_ALL.to_string()),
        ("acme", file("examples/acme.toml")),
        ("dos-with", file("bench/configs/dos-with.toml")),
        ("zeek-gre", file("bench/configs/zeek-gre.toml")),
        ("ecmp", file("bench/configs/ecmp-4.toml")),
        ("ecmp-weighted", file("bench/configs/ecmp-4-weighted.toml")),
        ("soft-unicast", file("dataplane/tests/data/soft-unicast.toml")),
        ("tunnel-edge", file("dataplane/tests/data/tunnel-edge.toml")),
        ("tunnel-edge-previews", egress_previews(&file("dataplane/tests/data/tunnel-edge.toml"))),
    ]
}

/// `edge` (tunnel-edge.toml) with a monitor-mode rate limit ahead of acme's egress rules:
/// its preview charged in the last phase, for what comes out of a tunnel.
fn egress_previews(edge: &str) -> String {
    let bucket = "[[dos.bucket]]\nname = \"b\"\nkey = \"rule\"\nrate = 10\nburst = 1\n\n[[customer]]\nname = \"acme\"";
    let rule = "[customer.egress]\ndefault = \"accept\"\n\n[[customer.egress.rule]]\nname = \"preview\"\n\
                match = \"ip or ipv6\"\naction = \"rate-limit\"\nbucket = \"b\"\nmode = \"monitor\"\n";
    let text = edge.replacen("[[customer]]\nname = \"acme\"", bucket, 1);
    assert!(text.contains("name = \"b\""), "tunnel-edge.toml has acme's customer table");
    let text = text.replacen("[customer.egress]\ndefault = \"accept\"\n", rule, 1);
    assert!(text.contains("name = \"preview\""), "tunnel-edge.toml has acme's egress rules");
    text
}

/// One frame to run: bytes and receive time.
#[derive(Clone)]
struct Input {
    bytes: Vec<u8>,
    wire_len: u32,
    timestamp_ns: u64,
}

/// Frames of `inputs` in `bufs`, after the headroom.
fn frames_of<'a>(bufs: &'a mut [Vec<u8>], inputs: &[Input]) -> Vec<Frame<'a>> {
    bufs.iter_mut()
        .zip(inputs)
        .map(|(b, i)| {
            b[HEADROOM..HEADROOM + i.bytes.len()].copy_from_slice(&i.bytes);
            Frame::new(b, HEADROOM, i.bytes.len(), i.wire_len, i.timestamp_ns)
        })
        .collect()
}

/// Runs `inputs` through both pipelines in batches of the sizes `sizes` cycles through,
/// and asserts they agree on everything they produce.
fn assert_same(snap: &Snapshot, inputs: &[Input], sizes: &[usize], what: &str) {
    let size = |i: &Input| HEADROOM + i.bytes.len().max(snap.frame_size) + 64;
    let mut state = WorkerState::new(snap);
    let mut limits = Limits::new(snap);
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    let mut stats = WorkerStats::new(snap);
    let (mut at, mut batch_no) = (0, 0);
    while at < inputs.len() {
        let n = sizes[batch_no % sizes.len()].clamp(1, BATCH_SIZE).min(inputs.len() - at);
        let group = &inputs[at..at + n];
        let mut vector_bufs: Vec<Vec<u8>> = group.iter().map(|i| vec![0xa5; size(i)]).collect();
        let mut single_bufs = vector_bufs.clone();
        let mut vector = frames_of(&mut vector_bufs, group);
        // The tunnels' path MTUs are the snapshot's, shared: each pipeline starts the batch
        // from what the last one left, and both must learn the same from it.
        let learned_before = snap.health.path_mtus();
        process_batch(snap, &mut vector, &mut state);
        let learned_by_vector = snap.health.path_mtus();
        snap.health.set_path_mtus(&learned_before);

        let mut single = frames_of(&mut single_bufs, group);
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
        let context = |k: usize| format!("{what}: frame {} (batch {batch_no}, {k} of {n})", at + k);
        for (k, (v, s)) in vector.iter().zip(&single).enumerate() {
            assert_eq!(v.verdict, s.verdict, "{}", context(k));
            assert_eq!(v.tx_bytes(), s.tx_bytes(), "{}", context(k));
        }
        assert_eq!(state.outcomes(), &expected[..], "{what}: batch {batch_no}");
        assert_eq!(snap.health.path_mtus(), learned_by_vector, "{what}: batch {batch_no} path MTUs");
        drop((vector, single));
        for (k, (v, s)) in vector_bufs.iter().zip(&single_bufs).enumerate() {
            assert!(v == s, "{}: buffers differ", context(k));
        }
        // The frames spilled, each with the time it is stamped with.
        let spilled = |s: &Spill| s.stamped().map(|(t, b)| (t, b.to_vec())).collect::<Vec<_>>();
        assert_eq!(spilled(&state.spill), spilled(&spill), "{what}: batch {batch_no} spill");
        state.spill.clear();
        spill.clear();
        at += n;
        batch_no += 1;
    }
    assert_eq!(state.stats, stats, "{what}: counters");
}

/// Every capture under `pcaps/`.
fn every_capture() -> Vec<(String, Vec<Input>)> {
    let mut out = Vec::new();
    for dir in ["real", "generated", "malformed"] {
        for file in captures(dir).into_iter().filter(|f| !f.extension().is_some_and(|e| e == "py" || e == "md")) {
            let frames = read_frames(&file);
            let inputs = frames.into_iter().map(|f| Input {
                bytes: f.bytes,
                wire_len: f.wire_len,
                timestamp_ns: f.timestamp_ns,
            });
            out.push((file.display().to_string(), inputs.collect()));
        }
    }
    assert!(out.len() > 40, "the captures are found");
    out
}

/// The same frames, 1 µs apart: rate limits run out.
fn crowded_in_time(inputs: &[Input]) -> Vec<Input> {
    let start = inputs.first().map_or(0, |i| i.timestamp_ns);
    inputs.iter().enumerate().map(|(k, i)| Input { timestamp_ns: start + 1_000 * k as u64, ..i.clone() }).collect()
}

#[test]
fn vector_pipeline_equals_frame_at_a_time_on_every_capture() {
    let captures = every_capture();
    let mut frames = 0;
    let mut decided_by_rules = 0;
    // Frames a monitor-mode rate limit's preview refused, at each stage (global DoS, ahead
    // of a global rule that dropped, the customer's DoS, firewall, egress).
    let mut previews = [0; 5];
    for (name, text) in configs() {
        let snap = snapshot(&text);
        for (file, inputs) in &captures {
            assert_same(&snap, inputs, &[BATCH_SIZE], &format!("{name} on {file}"));
            assert_same(&snap, &crowded_in_time(inputs), &[7, 1, 64, 33], &format!("{name} on {file}, crowded"));
            frames += inputs.len();
        }
        // All captures as one stream: batches that mix customers, paths and verdicts.
        let all: Vec<Input> = captures.iter().flat_map(|(_, i)| i.iter().cloned()).collect();
        let all = crowded_in_time(&all);
        let mut state = WorkerState::new(&snap);
        for chunk in all.chunks(BATCH_SIZE) {
            let mut bufs: Vec<Vec<u8>> =
                chunk.iter().map(|i| vec![0; HEADROOM + i.bytes.len().max(snap.frame_size)]).collect();
            let mut batch = frames_of(&mut bufs, chunk);
            process_batch(&snap, &mut batch, &mut state);
            decided_by_rules +=
                state.outcomes().iter().filter(|o| o.rule.is_some() || o.deciding_dos_rule().is_some()).count();
            for o in state.outcomes() {
                let w = o.would_limit;
                let dos = w.has(WouldLimit::DOS);
                let dropped = dos && o.verdict == Verdict::Drop(DropReason::DosRule);
                let stages = [WouldLimit::CUSTOMER_DOS, WouldLimit::FIREWALL, WouldLimit::EGRESS].map(|s| w.has(s));
                let [customer_dos, firewall, egress] = stages;
                for (n, refused) in previews.iter_mut().zip([dos, dropped, customer_dos, firewall, egress]) {
                    *n += usize::from(refused);
                }
            }
            state.spill.clear();
        }
        assert_same(&snap, &all, &[BATCH_SIZE, 5, 64, 17, 2], &format!("{name} on all captures"));
    }
    assert!(frames > 10_000, "{frames} frames compared");
    assert!(decided_by_rules > 1000, "rules decided {decided_by_rules} frames: the lookups were exercised");
    assert!(previews.iter().all(|&n| n > 0), "previews refused {previews:?} frames: each stage's was exercised");
}

/// Captured frames with random damage: bytes of the headers changed, addresses redrawn
/// (so frames spread over customers and paths), lengths cut or padded.
fn damaged(captures: &[(String, Vec<Input>)], rng: &mut Rng, count: usize) -> Vec<Input> {
    let pool: Vec<&Input> = captures.iter().flat_map(|(_, i)| i.iter()).filter(|i| !i.bytes.is_empty()).collect();
    let mut out = Vec::with_capacity(count);
    let mut now = 1_700_000_000_000_000_000u64;
    for _ in 0..count {
        let mut bytes = pool[rng.below(pool.len())].bytes.clone();
        match rng.below(6) {
            0 => {
                // A few header bytes changed.
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len().min(80));
                    bytes[at] = rng.next() as u8;
                }
            }
            1 => {
                // The IPv4 or IPv6 addresses redrawn (checksums left as they fall).
                for at in 26..(26 + 8).min(bytes.len()) {
                    bytes[at] = rng.next() as u8;
                }
            }
            2 => bytes.truncate(rng.below(bytes.len() + 1)),
            3 => bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            4 => bytes = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => {}
        }
        now += rng.below(20_000) as u64;
        out.push(Input { wire_len: bytes.len() as u32, bytes, timestamp_ns: now });
    }
    out
}

#[test]
fn vector_pipeline_equals_frame_at_a_time_on_random_frames() {
    let captures = every_capture();
    let mut rng = Rng(0x7472_616e_7369_7464);
    for (name, text) in configs() {
        let snap = snapshot(&text);
        for round in 0..4 {
            let inputs = damaged(&captures, &mut rng, 4000);
            let sizes: Vec<usize> = (0..16).map(|_| 1 + rng.below(BATCH_SIZE)).collect();
            assert_same(&snap, &inputs, &sizes, &format!("{name}, random round {round}"));
        }
    }
}

/// `text` without its monitor-mode firewall, egress and DoS rules (TCP protection's
/// monitor mode stays): each such rule's table, from its header to the next.
fn without_monitor_rules(text: &str) -> String {
    let rule_lists =
        ["[[dos.rule]]", "[[customer.dos.rule]]", "[[customer.firewall.rule]]", "[[customer.egress.rule]]"];
    let mut tables: Vec<String> = Vec::new();
    for line in text.lines() {
        match tables.last_mut() {
            Some(table) if !line.trim_start().starts_with('[') => table.push_str(&format!("{line}\n")),
            _ => tables.push(format!("{line}\n")),
        }
    }
    let monitored = |t: &String| {
        rule_lists.iter().any(|h| t.trim_start().starts_with(h)) && t.lines().any(|l| l.trim() == "mode = \"monitor\"")
    };
    tables.into_iter().filter(|t| !monitored(t)).collect()
}

/// Monitor-mode rules, rate limits with their previews among them, change no verdict: every
/// capture, crowded in time, is sent the same way with and without them.
#[test]
fn monitor_mode_rules_change_no_verdict() {
    let captures = every_capture();
    let all: Vec<Input> = captures.iter().flat_map(|(_, i)| i.iter().cloned()).collect();
    let all = crowded_in_time(&all);
    let verdicts = |snap: &Snapshot| {
        let mut state = WorkerState::new(snap);
        let mut out = Vec::new();
        for chunk in all.chunks(BATCH_SIZE) {
            let mut bufs: Vec<Vec<u8>> =
                chunk.iter().map(|i| vec![0; HEADROOM + i.bytes.len().max(snap.frame_size)]).collect();
            let mut batch = frames_of(&mut bufs, chunk);
            process_batch(snap, &mut batch, &mut state);
            out.extend(batch.iter().map(|f| (f.verdict, f.tx_bytes().map(<[u8]>::to_vec))));
            state.spill.clear();
        }
        out
    };
    let mut compared = 0;
    for (name, text) in configs() {
        let stripped = without_monitor_rules(&text);
        if stripped == text {
            continue;
        }
        let (full, bare) = (snapshot(&text), snapshot(&stripped));
        let lists = |s: &Snapshot| {
            let own = s.customers.iter().flat_map(|c| [&c.dos, &c.firewall, &c.egress]);
            std::iter::once(&s.dos.rules).chain(own).flat_map(|l| l.rules()).map(|r| r.mode).collect::<Vec<_>>()
        };
        assert!(lists(&full).contains(&classifier::Mode::Monitor), "{name}");
        assert!(!lists(&bare).contains(&classifier::Mode::Monitor), "{name}: every monitor-mode rule is taken out");
        let (with, without) = (verdicts(&full), verdicts(&bare));
        assert_eq!(with.len(), all.len());
        for (k, (a, b)) in with.iter().zip(&without).enumerate() {
            assert_eq!(a, b, "{name}: frame {k}");
        }
        compared += 1;
    }
    assert!(compared >= 2, "{compared} configurations with monitor-mode rules");
}
