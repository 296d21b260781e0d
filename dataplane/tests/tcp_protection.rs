//! Stateful TCP protection (`[tcp_protection]`): what it drops, judged by oracles outside
//! the code: tshark's own TCP stream tracking on the real captures (every packet of a
//! connection seen from its SYN passes untouched in mitigation mode; packets of connections
//! whose start the capture missed are out of state), generated floods of random 4-tuples
//! (dropped), real handshakes interleaved with them (untouched), monitor mode (counts, drops
//! nothing), state across a reload, and memory that stays fixed under ten million flows.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use etherparse::PacketBuilder;
use transitd::pipeline::flows::{FlowEvent, FlowTable, FlowTimeouts, GAP_BYTES, Segment};
use transitd::pipeline::{
    ConsumeReason, DropReason, Frame, HEADROOM, Limits, SPILL_SLOTS, Spill, TxReason, Verdict, WorkerState,
};
use transitd::pipeline::{process_batch, process_frame};

struct Counting;
thread_local! {
    /// Set while this thread's allocations are counted (tests run on threads side by side).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
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

/// CATCH_ALL (one customer owning everything, accepting everything) with TCP protection on
/// every TCP packet in `mode`, no grace period, and timeouts long enough for any capture.
fn protected(mode: &str) -> String {
    format!(
        r#"{CATCH_ALL}
[tcp_protection]
grace_period = 0
embryonic_timeout = 86400
idle_timeout = 86400
closing_timeout = 86400

[[tcp_protection.rule]]
name = "all-tcp"
match = "tcp"
mode = "{mode}"
"#
    )
}

fn is_out_of_state(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Drop(DropReason::TcpOutOfStateAck | DropReason::TcpOutOfStateFin | DropReason::TcpOutOfStateRst)
    )
}

/// Per frame number, whether tshark's view of the capture says the packet belongs to a
/// connection seen from its start in its own direction: its (stream, source, port) sent a
/// SYN at or before it, with no RST since at the direction's next sequence number (the end
/// of what it sent, gaps of up to `GAP_BYTES` taken over, from tshark's raw sequence numbers
/// and lengths). `None` for frames that are not plain TCP (inside tunnels or ICMP errors,
/// fragments), which tracking does not judge.
fn tshark_verdicts(file: &std::path::Path) -> HashMap<u64, bool> {
    // Not under MPLS labels: the data plane passes or drops those whatever they carry.
    let filter = "tcp and not icmp and not icmpv6 and not gre and not udp and not mpls \
                  and ((count(ip) == 1 and not ipv6) or (count(ipv6) == 1 and not ip)) \
                  and not ip.flags.mf == 1 and not ip.frag_offset > 0 and not ipv6.fraghdr";
    let out = tshark(
        file,
        &["-Y", filter, "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src"]
            .into_iter()
            .chain(["-e", "tcp.srcport", "-e", "tcp.flags", "-e", "tcp.seq_raw", "-e", "tcp.len"])
            .collect::<Vec<_>>(),
    );
    // Per direction: open or not, and the next sequence number.
    let mut open: HashMap<String, (bool, u32)> = HashMap::new();
    let mut verdicts = HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Ok(frame), Some(flags)) = (f[0].parse::<u64>(), f.get(5)) else { continue };
        let Ok(flags) = u32::from_str_radix(flags.trim_start_matches("0x"), 16) else { continue };
        let seq: u32 = f.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
        let len: u32 = f.get(7).and_then(|s| s.parse().ok()).unwrap_or(0);
        let direction = format!("{}/{}{}/{}", f[1], f[2], f[3], f[4]);
        let (state, next) = open.entry(direction).or_insert((false, 0));
        let end = seq.wrapping_add(len).wrapping_add(u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0));
        if flags & 0x02 != 0 {
            (*state, *next) = (true, end);
        }
        verdicts.insert(frame, *state);
        if flags & 0x04 != 0 {
            if seq == *next {
                *state = false;
            }
        } else if seq.wrapping_sub(*next) as i32 <= GAP_BYTES as i32 && end.wrapping_sub(*next) as i32 > 0 {
            *next = end; // the stream goes on, past what the capture missed of it if anything
        }
    }
    verdicts
}

#[test]
fn real_connections_seen_from_their_start_pass_untouched() {
    let (mut checked, mut tracked, mut out_of_state) = (0, 0, 0);
    for file in captures("real") {
        let frames = read_frames(&file);
        let expect = tshark_verdicts(&file);
        if expect.is_empty() || frames.len() as u64 != frame_count(&file) {
            continue; // no plain TCP, or records we do not read (frame numbers would not line up)
        }
        let (plain, _) = verdicts_timed(CATCH_ALL, &file);
        let (mitigated, stats) = verdicts_timed(&protected("mitigate"), &file);
        for (i, (p, m)) in plain.iter().zip(&mitigated).enumerate() {
            let n = i as u64 + 1;
            let what = format!("{} frame {n}", file.display());
            match expect.get(&n) {
                // Not plain TCP: tracking must not have touched it.
                None => assert!(!is_out_of_state(m), "{what}: {m:?} (not plain TCP)"),
                // A connection seen from its start: exactly what it would have been.
                Some(true) => {
                    assert_eq!(m, p, "{what}: a tracked connection's packet was changed");
                    tracked += 1;
                }
                // Its start is not in the capture: out of state, unless an earlier stage
                // already dropped it.
                Some(false) => {
                    assert!(is_out_of_state(m) || (m == p && matches!(p, Verdict::Drop(_))), "{what}: {m:?}");
                    out_of_state += 1;
                }
            }
            checked += 1;
        }
        // Every plain TCP packet that went out without tracking went through it with.
        let sent = (1..=plain.len() as u64)
            .filter(|n| expect.contains_key(n) && matches!(plain[*n as usize - 1], Verdict::Tx { .. }))
            .count() as u64;
        let counted: u64 = stats.tcp_hits.iter().flat_map(|h| h.iter()).sum();
        assert!(counted >= sent, "{}: the rule covered {counted} TCP packets of {sent}", file.display());
    }
    assert!(
        checked > 1000 && tracked > 1000 && out_of_state >= 10,
        "{checked} frames, {tracked} tracked, {out_of_state} out of state"
    );
}

/// A TCP segment from `src`:`sport` to `dst`:`dport` with `flags` (FIN 1, SYN 2, RST 4,
/// PSH 8, ACK 16) and `payload` bytes of data.
fn segment(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
        .ipv4(src, dst, 57)
        .tcp(sport, dport, 1000, 64240);
    let b = if flags & 0x01 != 0 { b.fin() } else { b };
    let b = if flags & 0x02 != 0 { b.syn() } else { b };
    let b = if flags & 0x04 != 0 { b.rst() } else { b };
    let b = if flags & 0x08 != 0 { b.psh() } else { b };
    let b = if flags & 0x10 != 0 { b.ack(1) } else { b };
    let data = vec![0x61; payload];
    let mut out = Vec::with_capacity(b.size(payload));
    b.write(&mut out, &data).unwrap();
    out
}

/// A flood of ACKs (half with data, some FIN and RST) from random 4-tuples to the customer,
/// with `clients` real connections (SYN, ACK, data, FIN) interleaved: `(frame, legitimate)`.
fn flood_with_connections(flood: usize, clients: usize, seed: u64) -> Vec<(Vec<u8>, bool)> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut frames = Vec::new();
    let mut pending: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| {
            let src = [198, 18, (c >> 8) as u8, c as u8];
            let sport = 30000 + c as u16;
            [0x02, 0x10, 0x18, 0x11]
                .iter()
                .map(|&f| segment(src, [203, 0, 113, 80], sport, 443, f, if f == 0x18 { 200 } else { 0 }))
                .collect()
        })
        .collect();
    let per = flood / (clients * 4).max(1);
    for i in 0..flood {
        let r = next();
        let flags = [0x10, 0x18, 0x11, 0x04][(r % 4) as usize];
        // Sources from 11.0.0.0 on, never in 169.0.0.0/8: 169.254.0.0/16 is link-local, which
        // no router forwards (dropped as `link_local_source` whatever the TCP stage says).
        let first = match (r >> 8) as u8 % 200 + 11 {
            169 => 170,
            a => a,
        };
        let src = [first, (r >> 16) as u8, (r >> 24) as u8, (r >> 32) as u8];
        let f = segment(
            src,
            [203, 0, 113, (r >> 40) as u8],
            (r >> 48) as u16,
            443,
            flags,
            if flags == 0x18 { 64 } else { 0 },
        );
        frames.push((f, false));
        if per > 0 && i % per == 0 {
            // The next step of a client whose turn it is.
            if let Some(c) = pending.iter_mut().find(|p| !p.is_empty()) {
                frames.push((c.remove(0), true));
            }
        }
    }
    for c in pending {
        frames.extend(c.into_iter().map(|f| (f, true)));
    }
    frames
}

#[test]
fn an_ack_flood_is_dropped_and_real_connections_are_not() {
    let frames = flood_with_connections(100_000, 200, 0x5eed);
    let (verdicts, stats, _) = verdicts_of(&protected("mitigate"), frames.iter().map(|(f, _)| f.clone()).collect());
    let (mut flood, mut dropped) = (0, 0);
    for ((_, legit), v) in frames.iter().zip(&verdicts) {
        if *legit {
            assert!(matches!(v, Verdict::Tx { .. }), "a real connection's packet: {v:?}");
        } else {
            flood += 1;
            dropped += usize::from(is_out_of_state(v));
        }
    }
    assert!(dropped as f64 >= 0.999 * flood as f64, "{dropped} of {flood} flood packets dropped");
    assert_eq!(stats.tcp_hits[0][FlowEvent::New.index()], 200, "every SYN opened a connection");
}

#[test]
fn monitor_mode_counts_and_drops_nothing() {
    let frames = flood_with_connections(20_000, 50, 0xfeed);
    let (verdicts, stats, _) = verdicts_of(&protected("monitor"), frames.iter().map(|(f, _)| f.clone()).collect());
    assert!(verdicts.iter().all(|v| matches!(v, Verdict::Tx { .. })), "monitor mode drops nothing");
    let hits = &stats.tcp_hits[0];
    let out: u64 = FlowEvent::ALL.iter().filter(|e| e.out_of_state()).map(|e| hits[e.index()]).sum();
    assert!(out >= 19_900, "{out} out-of-state packets counted");
    assert_eq!(hits[FlowEvent::New.index()], 50);
}

/// A customer's own connection (to a server on the Internet) is seen from the server's
/// SYN-ACK on: its handshake ends with the customer's ACK, which leaves directly, and a server
/// whose client speaks first says nothing more until the customer's first request, however
/// late (a connection a pool opened ahead of use; RFC 9293 lets an established connection
/// idle). It was forgotten at `embryonic_timeout`, and the server's answer, and every
/// retransmission of it, dropped as out of state. A client's SYN with no ACK after it still
/// lapses at `embryonic_timeout`.
#[test]
fn a_customers_own_connection_may_wait_for_its_first_request() {
    let config = protected("mitigate")
        .replace("embryonic_timeout = 86400", "embryonic_timeout = 30")
        .replace("idle_timeout = 86400", "idle_timeout = 600");
    let snap = snapshot(&config);
    let mut limits = Limits::new(&snap);
    let s = 1_000_000_000;
    let (server, client, customer) = ([192, 0, 2, 80], [198, 18, 0, 1], [203, 0, 113, 80]);
    let passed = |v: Verdict| matches!(v, Verdict::Tx { .. });
    let syn_ack = segment(server, customer, 443, 40000, 0x12, 0);
    assert!(passed(verdict_with(&snap, &mut limits, &syn_ack, s)));
    let syn = segment(client, customer, 40001, 443, 0x02, 0);
    assert!(passed(verdict_with(&snap, &mut limits, &syn, s)));
    let answer = verdict_with(&snap, &mut limits, &segment(server, customer, 443, 40000, 0x18, 200), 60 * s);
    assert!(passed(answer), "the server answers a request sent a minute on: {answer:?}");
    let late = verdict_with(&snap, &mut limits, &segment(client, customer, 40001, 443, 0x10, 0), 60 * s);
    assert!(is_out_of_state(&late), "a client's handshake left half done: {late:?}");
}

#[test]
fn tracked_connections_survive_a_reload() {
    let a = snapshot(&protected("mitigate"));
    let renamed = snapshot(&protected("mitigate").replace("all-tcp", "every-tcp"));
    let resized = snapshot(&format!(
        "{}\n",
        protected("mitigate").replace("grace_period = 0", "grace_period = 0\ntable_size = 1024")
    ));
    let mut limits = Limits::new(&a);
    let send = |snap, limits: &mut Limits, bytes: Vec<u8>| verdict_with(snap, limits, &bytes, 1_000_000_000);
    let (src, dst) = ([198, 18, 0, 1], [203, 0, 113, 80]);
    assert!(matches!(send(&a, &mut limits, segment(src, dst, 40000, 443, 0x02, 0)), Verdict::Tx { .. }));
    limits.rebind(&a, &renamed);
    assert!(
        matches!(send(&renamed, &mut limits, segment(src, dst, 40000, 443, 0x10, 0)), Verdict::Tx { .. }),
        "still tracked"
    );
    limits.rebind(&renamed, &resized);
    assert!(
        is_out_of_state(&send(&resized, &mut limits, segment(src, dst, 40000, 443, 0x10, 0))),
        "a new table knows nothing"
    );
}

/// A reload that makes the rules cover connections they did not (here port 443 joins port
/// 80) gives the customer a grace period again: its connections on 443, never tracked,
/// are picked up instead of dropped as out of state. A reload that covers the same packets
/// (a rule renamed, its mode changed) does not: strangers stay out of state.
#[test]
fn a_reload_that_widens_coverage_picks_up_the_connections_it_newly_covers() {
    let covering = |ports: &str, name: &str, mode: &str| {
        snapshot(
            &protected(mode)
                .replace("grace_period = 0", "grace_period = 5")
                .replace("match = \"tcp\"", &format!("match = \"tcp.dstport in {{{ports}}}\""))
                .replace("all-tcp", name),
        )
    };
    let web = covering("80", "web", "mitigate");
    let wider = reloaded(&web, covering("80, 443", "web", "mitigate"));
    let renamed = reloaded(&wider, covering("80, 443", "www", "monitor"));
    let wider_again = reloaded(&renamed, covering("80, 443", "web", "mitigate"));
    let s = 1_000_000_000;
    let ack = |sport: u16, dport: u16| segment([198, 18, 0, 1], [203, 0, 113, 80], sport, dport, 0x10, 0);
    let mut limits = Limits::new(&web);
    let passed = |v: Verdict| matches!(v, Verdict::Tx { .. });
    assert!(passed(verdict_with(&web, &mut limits, &ack(1, 80), s)), "picked up in the first grace period");
    assert!(passed(verdict_with(&web, &mut limits, &ack(2, 443), s)), "not covered");
    assert!(is_out_of_state(&verdict_with(&web, &mut limits, &ack(3, 80), 100 * s)), "the grace period is over");

    limits.rebind(&web, &wider);
    assert!(passed(verdict_with(&wider, &mut limits, &ack(2, 443), 101 * s)), "newly covered: picked up");
    assert!(passed(verdict_with(&wider, &mut limits, &ack(1, 80), 101 * s)), "tracked all along");
    assert!(is_out_of_state(&verdict_with(&wider, &mut limits, &ack(4, 443), 200 * s)), "over again");

    limits.rebind(&wider, &renamed);
    limits.rebind(&renamed, &wider_again);
    let v = verdict_with(&wider_again, &mut limits, &ack(5, 443), 201 * s);
    assert!(is_out_of_state(&v), "same coverage: no grace");
    assert!(passed(verdict_with(&wider_again, &mut limits, &ack(2, 443), 201 * s)), "still tracked");
}

/// A rule over a `$list` covers what the list holds: a reload whose list gained an address
/// gives the connections already open to it a grace period, as a wider filter does (they
/// were dropped as out of state). A reload whose list only lost members, or holds the same
/// ones read again (a feed rewriting it every minute), opens none: else ACK floods would
/// pass for as long as the feed keeps writing.
#[test]
fn a_reload_whose_list_gains_an_address_picks_up_its_connections() {
    let covering = |members: &str| {
        let text = protected("mitigate")
            .replace("grace_period = 0", "grace_period = 5")
            .replace("match = \"tcp\"", "match = \"ip.dst in $protected\"");
        snapshot(&format!("{text}\n[[list]]\nname = \"protected\"\nitems = [{members}]\n"))
    };
    let one = covering("\"203.0.113.80\"");
    let two = reloaded(&one, covering("\"203.0.113.80\", \"203.0.113.81\""));
    let s = 1_000_000_000;
    let ack = |dst: u8, sport: u16| segment([198, 18, 0, 1], [203, 0, 113, dst], sport, 443, 0x10, 0);
    let mut limits = Limits::new(&one);
    let passed = |v: Verdict| matches!(v, Verdict::Tx { .. });
    assert!(passed(verdict_with(&one, &mut limits, &ack(80, 1), s)), "picked up in the first grace period");
    assert!(passed(verdict_with(&one, &mut limits, &ack(81, 2), 100 * s)), "not covered yet");
    assert!(is_out_of_state(&verdict_with(&one, &mut limits, &ack(80, 3), 100 * s)), "covered, the grace is over");
    limits.rebind(&one, &two);
    assert!(passed(verdict_with(&two, &mut limits, &ack(81, 2), 101 * s)), "newly covered: picked up");
    assert!(is_out_of_state(&verdict_with(&two, &mut limits, &ack(81, 4), 200 * s)), "over again");
    let again = reloaded(&two, covering("\"203.0.113.80\", \"203.0.113.81\""));
    limits.rebind(&two, &again);
    assert!(is_out_of_state(&verdict_with(&again, &mut limits, &ack(81, 5), 201 * s)), "the same list: no grace");
    let fewer = reloaded(&again, covering("\"203.0.113.80\""));
    limits.rebind(&again, &fewer);
    assert!(
        is_out_of_state(&verdict_with(&fewer, &mut limits, &ack(80, 6), 202 * s)),
        "a list that lost one: no grace"
    );
    // A worker that missed a reload (two in quick succession) compares the snapshot it ran
    // with the newest: a list that gained in between counts, though it is back as it was.
    let (gained, back) =
        (reloaded(&fewer, covering("\"203.0.113.80\", \"203.0.113.81\"")), covering("\"203.0.113.80\""));
    let back = reloaded(&gained, back);
    limits.rebind(&fewer, &back);
    assert!(passed(verdict_with(&back, &mut limits, &ack(80, 7), 203 * s)), "gained meanwhile: picked up");
}

/// A rule over `not ... in $list` covers what the list does not hold: a reload whose list
/// lost an address gives the connections already open from it a grace period (they were
/// not covered, so never tracked, and were dropped as out of state); one whose list only
/// gained members opens none.
#[test]
fn a_reload_whose_excepting_list_loses_an_address_picks_up_its_connections() {
    let excepting = |members: &str| {
        let text = protected("mitigate")
            .replace("grace_period = 0", "grace_period = 5")
            .replace("match = \"tcp\"", "match = \"not ip.src in $trusted\"");
        snapshot(&format!("{text}\n[[list]]\nname = \"trusted\"\nitems = [{members}]\n"))
    };
    let two = excepting("\"198.18.0.1\", \"198.18.0.2\"");
    let one = reloaded(&two, excepting("\"198.18.0.1\""));
    let s = 1_000_000_000;
    let ack = |src: u8, sport: u16| segment([198, 18, 0, src], [203, 0, 113, 80], sport, 443, 0x10, 0);
    let mut limits = Limits::new(&two);
    let passed = |v: Verdict| matches!(v, Verdict::Tx { .. });
    assert!(passed(verdict_with(&two, &mut limits, &ack(3, 9), s)), "picked up in the first grace period");
    assert!(passed(verdict_with(&two, &mut limits, &ack(2, 1), 100 * s)), "trusted: not covered");
    assert!(is_out_of_state(&verdict_with(&two, &mut limits, &ack(3, 2), 100 * s)), "covered, the grace is over");
    limits.rebind(&two, &one);
    assert!(passed(verdict_with(&one, &mut limits, &ack(2, 1), 101 * s)), "no longer trusted: picked up");
    assert!(is_out_of_state(&verdict_with(&one, &mut limits, &ack(2, 3), 200 * s)), "over again");
    let back = reloaded(&one, excepting("\"198.18.0.1\", \"198.18.0.2\""));
    limits.rebind(&one, &back);
    assert!(
        is_out_of_state(&verdict_with(&back, &mut limits, &ack(3, 4), 201 * s)),
        "a list that gained one: no grace"
    );
}

#[test]
fn memory_stays_fixed_under_ten_million_flows() {
    let timeouts = FlowTimeouts {
        embryonic_ns: 30_000_000_000,
        established_ns: 600_000_000_000,
        closing_ns: 30_000_000_000,
        grace_ns: 0,
    };
    let mut table = FlowTable::new(262_144);
    let bytes = table.memory_bytes();
    let mut since = None;
    COUNTING.with(|c| c.set(true));
    let mut seen = [false; FlowEvent::ALL.len()];
    for f in 0..10_000_000u64 {
        // New flows (SYN) and strangers (ACK), alternating.
        let flow = f.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let segment = Segment { flags: if f % 2 == 0 { 0x02 } else { 0x10 }, seq: f as u32, len: 0 };
        let event = table.observe(flow, segment, 1_000_000 * f, &timeouts, &mut since);
        seen[event.index()] = true;
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "tracking allocates nothing");
    assert_eq!(table.memory_bytes(), bytes);
    assert!(table.live(10_000_000_000_000, &timeouts) <= table.capacity());
    assert!(seen[FlowEvent::New.index()] && seen[FlowEvent::OutOfStateAck.index()]);

    // The whole pipeline over a flood with tracking on allocates nothing either.
    let snap = snapshot(&protected("mitigate"));
    let mut state = WorkerState::new(&snap);
    let frames = flood_with_connections(20_000, 10, 0xabc);
    let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; HEADROOM + 2048]).collect();
    for chunk in frames.chunks(64) {
        let mut batch: Vec<Frame<'_>> = Vec::with_capacity(64);
        for (b, (f, _)) in bufs.iter_mut().zip(chunk) {
            b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            batch.push(Frame::new(b, HEADROOM, f.len(), f.len() as u32, 0));
        }
        COUNTING.with(|c| c.set(true));
        process_batch(&snap, &mut batch, &mut state);
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "the pipeline with tracking allocates nothing");
    assert!(state.stats.dropped_for(DropReason::TcpOutOfStateAck) > 10_000);
}

/// `new` as a reload applies it after `old` (`Snapshot::take_over_from`).
fn reloaded(old: &transitd::snapshot::Snapshot, mut new: transitd::snapshot::Snapshot) -> transitd::snapshot::Snapshot {
    new.take_over_from(old);
    new
}

/// A network namespace for the length of a test.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Ethernet in front of an IP packet read from a TUN device.
fn ethernet(ip_packet: &[u8]) -> Vec<u8> {
    let ether_type: [u8; 2] = if ip_packet.first().is_some_and(|b| b >> 4 == 6) { [0x86, 0xdd] } else { [0x08, 0x00] };
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa];
    frame.extend_from_slice(&ether_type);
    frame.extend_from_slice(ip_packet);
    frame
}

/// The pipeline of one configuration with its own state, fed frames one at a time at the
/// time of the wall clock (cookies and thresholds see real time, as the real stack does).
struct Edge {
    snap: transitd::snapshot::Snapshot,
    limits: Limits,
    spill: Spill,
    start: std::time::Instant,
    /// The last frame's TCP protection rule (by name) and event.
    last_tcp: (Option<String>, Option<FlowEvent>),
}

impl Edge {
    /// `snap`'s pipeline with a worker's fresh state, its clock starting now.
    fn new(snap: transitd::snapshot::Snapshot) -> Edge {
        let (limits, spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
        Edge { snap, limits, spill, start: std::time::Instant::now(), last_tcp: (None, None) }
    }

    fn now(&self) -> u64 {
        1_000_000_000_000 + self.start.elapsed().as_nanos() as u64
    }

    /// The frame's verdict, and the bytes transmitted if it was sent.
    fn run(&mut self, bytes: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; HEADROOM + 2048];
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        let mut frame = Frame::new(&mut buf, HEADROOM, bytes.len(), bytes.len() as u32, self.now());
        let outcome = process_frame(&self.snap, Some(&self.snap.eth), &mut self.limits, &mut self.spill, &mut frame);
        frame.verdict = outcome.verdict;
        let rule = outcome.tcp_rule.and_then(|r| self.snap.tcp.rules.get(r as usize)).map(|r| r.name.clone());
        self.last_tcp = (rule, outcome.tcp);
        (outcome.verdict, frame.tx_bytes().unwrap_or(&[]).to_vec())
    }

    /// Connections tracked now.
    fn tracked(&self) -> usize {
        self.limits.flows.live(self.now(), &self.snap.tcp.timeouts)
    }
}

/// Runs `body` in a fresh network namespace (removed after) holding a TUN device `DEV` at
/// 198.18.0.1/24 with 203.0.113.0/24 routed into it, beside an [`Edge`] running CATCH_ALL with
/// TCP protection (no grace period) and `rule`, a `[[customer.tcp_protection.rule]]`.
fn with_tun_namespace(tag: &str, rule: &str, body: impl FnOnce(&tun::Device, &mut Edge) + Send + 'static) {
    let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    assert!(root, "needs root (a network namespace and a TUN device)");
    let ns = Netns(format!("{tag}{}", std::process::id() % 1000));
    let ip =
        |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["netns", "add", &ns.0]);
    let config = CATCH_ALL.replace("[[customer]]", "[tcp_protection]\ngrace_period = 0\n\n[[customer]]") + rule;
    let snap = snapshot(&config);
    let (name, dev) = (ns.0.clone(), format!("{tag}0"));
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        // SAFETY: setns(2) on a namespace file we hold open; it changes only this thread
        // (and the threads and devices it creates after).
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let mut tun_config = tun::Configuration::default();
        tun_config.tun_name(&dev).address((198, 18, 0, 1)).netmask((255, 255, 255, 0)).up();
        let tun = tun::create(&tun_config).unwrap();
        let status = std::process::Command::new("ip").args(["route", "add", "203.0.113.0/24", "dev", &dev]).status();
        assert!(status.unwrap().success());
        let mut edge = Edge::new(snap);
        body(&tun, &mut edge);
    })
    .join()
    .unwrap();
}

/// The SYN challenge against a real TCP stack, the oracle for RFC 9293's rule that a
/// SYN-SENT socket answers an unacceptable SYN-ACK with a RST carrying its acknowledgement
/// number: Linux, in a namespace, connects to a customer's address routed into a TUN device;
/// the test runs what comes out through the pipeline and writes what the pipeline sends
/// back in. Over the threshold, the client's SYN is challenged; the kernel's RST carries the
/// cookie and authenticates it; its retransmitted SYN passes. A spoofed flood of SYNs is
/// challenged too and leaves no state.
#[test]
fn a_real_client_answers_the_syn_challenge_and_gets_through() {
    with_tun_namespace(
        "tdchal",
        r#"
[[customer.tcp_protection.rule]]
name = "web"
match = "tcp.dstport == 80"
mode = "mitigate"
syn_rate = 1
syn_burst = 1
"#,
        |tun, edge| {
            // Someone else's SYN spends the rule's burst: the client's is over the threshold.
            let (v, _) = edge.run(&segment([192, 0, 2, 99], [203, 0, 113, 80], 1234, 80, 0x02, 0));
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");

            let client = std::thread::spawn(|| {
                let to = std::net::SocketAddr::from(([203, 0, 113, 80], 80));
                let _ = std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3));
            });
            // What the client sends, TCP to port 80 only (the kernel may also send other things).
            let next_segment = |tun: &tun::Device| -> Vec<u8> {
                let mut buf = [0u8; 2048];
                loop {
                    let n = tun.recv_timeout(&mut buf, std::time::Duration::from_secs(5)).expect("the client sends");
                    let p = &buf[..n];
                    if p.len() >= 24 && p[0] >> 4 == 4 && p[9] == 6 && u16::from_be_bytes([p[22], p[23]]) == 80 {
                        return ethernet(p);
                    }
                }
            };
            let flags = |frame: &[u8]| frame[14 + 20 + 13];
            let syn = next_segment(tun);
            assert_eq!(flags(&syn), 0x02, "the client's SYN");
            let (v, challenge) = edge.run(&syn);
            assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{v:?}");
            tun.send(&challenge[14..]).unwrap();

            let rst = next_segment(tun);
            assert_eq!(flags(&rst) & 0x04, 0x04, "the kernel answers the challenge with a RST");
            assert_eq!(&rst[14 + 20 + 4..14 + 20 + 8], &challenge[14 + 20 + 8..14 + 20 + 12], "carrying our cookie");
            let (v, _) = edge.run(&rst);
            assert_eq!(v, Verdict::Consumed(ConsumeReason::SynChallengeAnswer));

            let again = next_segment(tun);
            assert_eq!(flags(&again), 0x02, "the client tries again");
            let (v, _) = edge.run(&again);
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "authenticated: {v:?}");
            client.join().unwrap();

            // A spoofed SYN flood over the threshold: challenged (or, past the challenge budget,
            // dropped), never passed but for the rule's 1 SYN/s, and no connection is tracked for
            // what was challenged.
            let tracked = edge.tracked();
            let flood_start = std::time::Instant::now();
            let (mut passed, mut challenged) = (0, 0);
            for i in 0..2000u32 {
                let src = [11, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                match edge.run(&segment(src, [203, 0, 113, 80], 40000, 80, 0x02, 0)).0 {
                    Verdict::Tx { reason: TxReason::Encapsulated, .. } => passed += 1,
                    Verdict::Tx { reason: TxReason::SynChallenge, .. } | Verdict::Drop(DropReason::TcpSynFlood) => {
                        challenged += 1
                    }
                    v => panic!("{v:?}"),
                }
            }
            let allowed = 1 + flood_start.elapsed().as_secs();
            assert!(passed <= allowed && challenged >= 2000 - allowed, "{passed} passed, {challenged} challenged");
            assert_eq!(edge.tracked(), tracked + passed as usize, "challenges create no state");
        },
    );
}

/// The SYN-ACK side of the challenge against a real server stack: a customer opens a
/// connection to a Linux server on the Internet (in a namespace, behind a TUN device); the
/// server's SYN-ACK comes to the edge over the threshold and is challenged with an ACK
/// acknowledging the cookie; the server's stack answers with a RST carrying it (RFC 9293
/// §3.10.7.4), which authenticates it, and its retransmitted SYN-ACK passes.
#[test]
fn a_real_server_answers_the_syn_ack_challenge_and_gets_through() {
    with_tun_namespace(
        "tdsack",
        r#"
[[customer.tcp_protection.rule]]
name = "from-web-servers"
match = "tcp.srcport == 8080"
mode = "mitigate"
syn_rate = 1
syn_burst = 1
"#,
        |tun, edge| {
            // The server, listening; the customer's SYN is written straight into the TUN (it
            // would not pass the edge: customers answer the Internet directly).
            let _server = std::net::TcpListener::bind("198.18.0.1:8080").unwrap();

            // Another server's SYN-ACK spends the rule's burst.
            let (v, _) = edge.run(&segment([192, 0, 2, 99], [203, 0, 113, 80], 8080, 1234, 0x12, 0));
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");

            let syn = segment([203, 0, 113, 80], [198, 18, 0, 1], 5555, 8080, 0x02, 0);
            tun.send(&syn[14..]).unwrap();
            let from_server = |tun: &tun::Device| -> Vec<u8> {
                let mut buf = [0u8; 2048];
                loop {
                    let n = tun.recv_timeout(&mut buf, std::time::Duration::from_secs(5)).expect("the server answers");
                    let p = &buf[..n];
                    if p.len() >= 24 && p[0] >> 4 == 4 && p[9] == 6 && u16::from_be_bytes([p[20], p[21]]) == 8080 {
                        return ethernet(p);
                    }
                }
            };
            let flags = |frame: &[u8]| frame[14 + 20 + 13];
            let syn_ack = from_server(tun);
            assert_eq!(flags(&syn_ack), 0x12, "the server's SYN-ACK");
            let (v, challenge) = edge.run(&syn_ack);
            assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{v:?}");
            assert_eq!(flags(&challenge), 0x10, "an ACK challenges a SYN-ACK");
            tun.send(&challenge[14..]).unwrap();

            let rst = from_server(tun);
            assert_eq!(flags(&rst) & 0x04, 0x04, "the server's stack answers the challenge with a RST");
            assert_eq!(&rst[14 + 20 + 4..14 + 20 + 8], &challenge[14 + 20 + 8..14 + 20 + 12], "carrying our cookie");
            let (v, _) = edge.run(&rst);
            assert_eq!(v, Verdict::Consumed(ConsumeReason::SynChallengeAnswer));

            let again = from_server(tun);
            assert_eq!(flags(&again), 0x12, "the server sends its SYN-ACK again");
            let (v, _) = edge.run(&again);
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "authenticated: {v:?}");
        },
    );
}

/// Customer `c`, 203.0.113.0/24 behind tunnel `t` to its router 198.51.100.1, whose TCP
/// protection challenges SYNs to port 80 past one a second (burst 1, no grace period).
const WEB_SYN_THRESHOLD: &str = r#"
[server]
anycast = "192.0.2.1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"

[dos.sanity]
bogons = false

[tcp_protection]
grace_period = 0

[[customer]]
name = "c"
prefixes = ["203.0.113.0/24"]

[[customer.tunnel]]
name = "t"
remote = "198.51.100.1"

[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "t"

[[customer.tcp_protection.rule]]
name = "web"
match = "tcp.dstport == 80"
mode = "mitigate"
syn_rate = 1
syn_burst = 1
"#;

/// A SYN from a customer's own site (decapsulated from its tunnel, to another of its
/// addresses) over the threshold is challenged back through the tunnel it came out of,
/// where its client is: tshark reads GRE from our anycast to the router carrying a SYN-ACK
/// from the SYN's destination, with valid checksums. (It was once sent as the decapsulated
/// frame's outer header followed by the rewritten inner one: GRE's protocol, an overlong
/// total length, toward the Internet.)
#[test]
fn a_syn_from_a_customers_tunnel_is_challenged_back_into_it() {
    let mut edge = Edge::new(snapshot(WEB_SYN_THRESHOLD));
    // From the router to our anycast.
    let in_gre = |frame: &[u8]| in_gre(frame, [198, 51, 100, 1], [192, 0, 2, 1]);
    // Another host's SYN spends the burst and is delivered (into the same tunnel).
    let (v, _) = edge.run(&in_gre(&segment([203, 0, 113, 5], [203, 0, 113, 80], 1111, 80, 0x02, 0)));
    assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");
    let (v, sent) = edge.run(&in_gre(&segment([203, 0, 113, 6], [203, 0, 113, 80], 2222, 80, 0x02, 0)));
    assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{v:?}");

    let file = std::env::temp_dir().join(format!("transitd-tunnel-challenge-{}.pcap", std::process::id()));
    write_pcap(&file, &[sent]);
    let fields = [
        "eth.dst",
        "ip.src",
        "ip.dst",
        "ip.proto",
        "ip.checksum.status",
        "gre.proto",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.flags",
        "tcp.checksum.status",
    ];
    let mut args =
        vec!["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "separator=;"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let theirs = tshark(&file, &args);
    std::fs::remove_file(&file).ok();
    assert_eq!(
        theirs.trim(),
        "02:00:00:00:00:fe;192.0.2.1,203.0.113.80;198.51.100.1,203.0.113.6;47,6;1,1;0x0800;80;2222;0x0012;1",
        "GRE to the router, around a SYN-ACK to the client"
    );
}

/// A challenge goes to the next hop as every other frame does, behind a fresh untagged
/// Ethernet header: a SYN that came in with an 802.1Q tag got its SYN-ACK with the tag
/// still on. A SYN with IPv4 options is not answered (they would be sent back unreversed,
/// a source route among them), as one with IPv6 extension headers is not.
#[test]
fn a_challenge_is_a_plain_frame_and_options_are_not_answered() {
    let mut edge = Edge::new(snapshot(WEB_SYN_THRESHOLD));
    // The first SYN spends the burst.
    let (v, _) = edge.run(&segment([198, 51, 100, 5], [203, 0, 113, 80], 1111, 80, 0x02, 0));
    assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");
    // VLAN 100 between the MACs and the EtherType.
    let plain = segment([198, 51, 100, 6], [203, 0, 113, 80], 2222, 80, 0x02, 0);
    let tagged = [&plain[..12], &[0x81, 0x00, 0x00, 100], &plain[12..]].concat();
    let (v, sent) = edge.run(&tagged);
    assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{v:?}");
    assert_eq!(sent.len(), 14 + 20 + 20, "{sent:02x?}");
    assert_eq!(
        (&sent[..6], &sent[6..12], &sent[12..14]),
        (&[2, 0, 0, 0, 0, 0xfe][..], &[2, 0, 0, 0, 0, 1][..], &[8, 0][..])
    );
    // An IPv4 header with a loose source route option (RFC 791), its route behind it (one
    // with hops to go is dropped before, as `source_routed`): the SYN is dropped.
    let mut with_options = plain.clone();
    with_options.splice(34..34, [0x83, 7, 8, 192, 0, 2, 9, 0]);
    with_options[14] = 0x47;
    let total = u16::from_be_bytes([with_options[16], with_options[17]]) + 8;
    with_options[16..18].copy_from_slice(&total.to_be_bytes());
    with_options[24..26].fill(0);
    let sum: u32 = with_options[14..42].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    with_options[24..26].copy_from_slice(&(!(((folded & 0xffff) + (folded >> 16)) as u16)).to_be_bytes());
    let (v, _) = edge.run(&with_options);
    assert_eq!(v, Verdict::Drop(DropReason::TcpSynFlood));
}

/// Over the threshold, `challenged` counts the SYNs answered with a challenge and
/// `syn_flood` those dropped because the challenge budget was spent: each event as many as
/// the verdicts it stands for (`challenged` counted both once).
#[test]
fn challenged_counts_the_syns_challenged_and_syn_flood_the_ones_dropped() {
    let config = format!(
        "{CATCH_ALL}\n[tcp_protection]\ngrace_period = 0\nchallenge_rate = 100\n\n\
         [[tcp_protection.rule]]\nname = \"web\"\nmatch = \"tcp.dstport == 80\"\nmode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n"
    );
    // At time 0: one SYN within the burst, then the challenge budget (a hundredth of the
    // rate: 1), then drops.
    let frames = (0..10u8).map(|i| segment([11, 0, 0, i], [203, 0, 113, 80], 40000, 80, 0x02, 0)).collect();
    let (v, stats, _) = verdicts_of(&config, frames);
    let challenged = v.iter().filter(|v| matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. })).count();
    let flooded = v.iter().filter(|v| **v == Verdict::Drop(DropReason::TcpSynFlood)).count();
    assert!(challenged > 0 && flooded > 0, "{v:?}");
    let hits = &stats.tcp_hits[0];
    assert_eq!(hits[FlowEvent::Challenged.index()], challenged as u64);
    assert_eq!(hits[FlowEvent::SynFlood.index()], flooded as u64);
    assert_eq!(hits[FlowEvent::New.index()], 1, "the SYN within the burst");
}

/// The answer to a challenge authenticates its source whatever rule covers the RST, or none:
/// the customer's rule with the threshold made the challenge, and the RST is covered by a
/// global rule for everything but SYNs (no threshold), where it was dropped as out of state,
/// or by no rule at all (the threshold rule is for SYNs alone), where it was passed on; the
/// client was challenged again on every try. Either way `challenge_passed` is counted under
/// the rule that challenged.
#[test]
fn a_challenge_is_answered_whichever_rule_covers_the_rst() {
    let web = |expr: &str| {
        format!(
            "{CATCH_ALL}\n[[customer.tcp_protection.rule]]\nname = \"web\"\nmatch = \"{expr}\"\n\
             mode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n\n[tcp_protection]\ngrace_period = 0\n"
        )
    };
    let no_strays =
        "\n[[tcp_protection.rule]]\nname = \"no-strays\"\nmatch = \"tcp.flags.syn == 0\"\nmode = \"mitigate\"\n";
    for config in [web("tcp.dstport == 80") + no_strays, web("tcp.dstport == 80 and tcp.flags.syn == 1")] {
        answered_whichever_rule_covers_the_rst(&config);
    }
}

fn answered_whichever_rule_covers_the_rst(config: &str) {
    let mut edge = Edge::new(snapshot(config));
    let (v, _) = edge.run(&segment([192, 0, 2, 99], [203, 0, 113, 80], 1234, 80, 0x02, 0));
    assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "within the burst: {v:?}");
    let syn = segment([192, 0, 2, 7], [203, 0, 113, 80], 40000, 80, 0x02, 0);
    let (v, challenge) = edge.run(&syn);
    assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{v:?}");
    // The client's stack answers with a RST carrying the challenge's acknowledgement number
    // (RFC 9293 §3.10.7.3; the test against Linux above shows it does).
    let mut rst = segment([192, 0, 2, 7], [203, 0, 113, 80], 40000, 80, 0x04, 0);
    rst[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&challenge[14 + 20 + 8..14 + 20 + 12]);
    assert_eq!(edge.run(&rst).0, Verdict::Consumed(ConsumeReason::SynChallengeAnswer));
    assert_eq!(edge.last_tcp, (Some("web".to_string()), Some(FlowEvent::ChallengePassed)), "{config}");
    let (v, _) = edge.run(&syn);
    assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "authenticated: {v:?}");
}

/// A worker looks for a cookie in a RST only while one it sent may still come back (as Linux
/// checks SYN cookies only while it has recently sent them): one that has sent no challenge,
/// or none for longer than a cookie lasts, takes no RST as an answer, not even one carrying a
/// cookie still valid (made by another worker of the configuration), and a RST flood costs it
/// no hash. A blind RST had about one chance in 2^28 there, with no challenge ever sent.
#[test]
fn a_cookie_is_looked_for_only_while_the_worker_has_challenges_out() {
    let config = format!(
        "{CATCH_ALL}\n[tcp_protection]\ngrace_period = 0\n\n[[tcp_protection.rule]]\nname = \"web\"\n\
         match = \"tcp.dstport == 80\"\nmode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n"
    );
    let snap = snapshot(&config);
    let syn = |last: u8| segment([192, 0, 2, last], [203, 0, 113, 80], 40000, 80, 0x02, 0);
    // `last`'s SYN challenged by the worker `limits` at `now` (a SYN within the threshold's
    // burst first): the cookie the challenge acknowledges.
    let challenged = |limits: &mut Limits, last: u8, now: u64| {
        let v = verdict_with(&snap, limits, &syn(99), now);
        assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "within the burst: {v:?}");
        let bytes = syn(last);
        let (mut spill, mut buf) = (Spill::new(SPILL_SLOTS, snap.frame_size), vec![0u8; HEADROOM + 2048]);
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(&bytes);
        let mut frame = Frame::new(&mut buf, HEADROOM, bytes.len(), bytes.len() as u32, now);
        let outcome = process_frame(&snap, Some(&snap.eth), limits, &mut spill, &mut frame);
        frame.verdict = outcome.verdict;
        assert!(matches!(frame.verdict, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "{:?}", frame.verdict);
        <[u8; 4]>::try_from(&frame.tx_bytes().unwrap()[14 + 20 + 8..14 + 20 + 12]).unwrap()
    };
    // The RST `last`'s stack answers the challenge with, carrying `cookie`.
    let rst = |last: u8, cookie: [u8; 4]| {
        let mut rst = segment([192, 0, 2, last], [203, 0, 113, 80], 40000, 80, 0x04, 0);
        rst[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&cookie);
        rst
    };
    let answer = Verdict::Consumed(ConsumeReason::SynChallengeAnswer);
    let refused = Verdict::Drop(DropReason::TcpOutOfStateRst);
    let (mut worker, mut other) = (Limits::new(&snap), Limits::new(&snap));
    let (s, t0) = (1_000_000_000u64, 1_000_000_000_000u64);

    // A valid cookie, of a challenge this worker never sent.
    let cookie = challenged(&mut other, 7, t0);
    assert_eq!(verdict_with(&snap, &mut worker, &rst(7, cookie), t0 + 1), refused, "no challenge sent");
    // Its own challenge, answered within the cookie's validity (4.3 s at least).
    let cookie = challenged(&mut worker, 8, t0 + 1);
    assert_eq!(verdict_with(&snap, &mut worker, &rst(8, cookie), t0 + 4 * s), answer, "its challenge answered");
    // Once the cookies it sent have lapsed (5.4 s at most), a cookie valid now is not looked
    // for: the other worker, which made it, takes it.
    let cookie = challenged(&mut other, 10, t0 + 10 * s);
    let late = rst(10, cookie);
    assert_eq!(verdict_with(&snap, &mut worker, &late, t0 + 10 * s), refused, "its challenges lapsed");
    assert_eq!(verdict_with(&snap, &mut other, &late, t0 + 10 * s), answer, "the cookie is valid");
    // A reload keeps what the worker has out (here one keeping the cookie key: a
    // configuration compiled again draws a new one, and answers to the old cookies fail).
    let cookie = challenged(&mut worker, 12, t0 + 30 * s);
    let mut renamed = reloaded(&snap, snapshot(&config.replace("\"web\"", "\"www\"")));
    renamed.tcp.cookie_key = snap.tcp.cookie_key;
    worker.rebind(&snap, &renamed);
    assert_eq!(verdict_with(&renamed, &mut worker, &rst(12, cookie), t0 + 31 * s), answer, "kept across a reload");
}

/// `challenged` counts the SYNs answered: a challenge that could not be sent (here no next
/// hop is known) is the drop that says why, not a challenge.
#[test]
fn a_challenge_that_cannot_be_sent_is_not_counted_as_one() {
    let config = format!(
        "{CATCH_ALL}\n[tcp_protection]\ngrace_period = 0\n\n[[tcp_protection.rule]]\nname = \"web\"\n\
         match = \"tcp.dstport == 80\"\nmode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n"
    );
    let snap = snapshot(&config);
    let (mut limits, mut spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
    let mut outcomes = Vec::new();
    for src in [[192, 0, 2, 99], [192, 0, 2, 7]] {
        let bytes = segment(src, [203, 0, 113, 80], 40000, 80, 0x02, 0);
        let mut buf = vec![0u8; HEADROOM + 2048];
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(&bytes);
        let mut frame = Frame::new(&mut buf, HEADROOM, bytes.len(), bytes.len() as u32, 1_000_000_000);
        let o = process_frame(&snap, None, &mut limits, &mut spill, &mut frame);
        outcomes.push((o.verdict, o.tcp));
    }
    assert_eq!(outcomes[0], (Verdict::Drop(DropReason::NextHopUnresolved), Some(FlowEvent::New)), "within the burst");
    assert_eq!(outcomes[1], (Verdict::Drop(DropReason::NextHopUnresolved), None), "over it: no challenge went out");
}

/// What the customer's firewall drops outright is left to it: a SYN to a port it closes is
/// neither challenged (a SYN-ACK from the customer's address would show a scan the port
/// open) nor tracked, and spends none of the rule's threshold, which a SYN to the port it
/// serves then finds whole; an ACK to the closed port is the firewall's drop. They were
/// challenged, tracked and counted, the closed port spending the open one's threshold.
#[test]
fn what_the_firewall_drops_is_neither_challenged_nor_tracked() {
    let config = format!(
        "{CATCH_ALL}\n[customer.firewall]\ndefault = \"drop\"\n\n[[customer.firewall.rule]]\nname = \"web\"\n\
         match = \"tcp.dstport == 80\"\naction = \"accept\"\n\n[tcp_protection]\ngrace_period = 0\n\n\
         [[tcp_protection.rule]]\nname = \"all-tcp\"\nmatch = \"tcp\"\nmode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n"
    );
    let snap = snapshot(&config);
    let mut limits = Limits::new(&snap);
    let s = 1_000_000_000;
    let syn = |last: u8, port: u16| segment([198, 51, 100, last], [203, 0, 113, 80], 40000, port, 0x02, 0);
    for last in 1..=3u8 {
        let o = outcome_with(&snap, &mut limits, &syn(last, 22), s + u64::from(last));
        assert_eq!((o.verdict, o.tcp), (Verdict::Drop(DropReason::Firewall), None), "a SYN to a closed port");
    }
    let v = verdict_with(&snap, &mut limits, &syn(4, 80), s + 4);
    assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "the burst is whole: {v:?}");
    let v = verdict_with(&snap, &mut limits, &syn(5, 80), s + 5);
    assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "over the threshold: {v:?}");
    assert_eq!(limits.flows.live(s + 6, &snap.tcp.timeouts), 1, "the open port's connection alone");
    let ack = segment([198, 51, 100, 6], [203, 0, 113, 80], 40000, 22, 0x10, 0);
    let o = outcome_with(&snap, &mut limits, &ack, s + 7);
    assert_eq!((o.verdict, o.tcp), (Verdict::Drop(DropReason::Firewall), None), "the firewall's, not out of state");
}

/// The grace period runs from the first packet tracked after a start, whoever's: a quiet
/// customer's first packet (an ACK flood's, as like as not) opens no window of its own.
#[test]
fn a_customers_first_packet_opens_no_grace_period_of_its_own() {
    let customer = |name: &str, prefix: &str, remote: &str| {
        format!(
            "[[customer]]\nname = \"{name}\"\nprefixes = [\"{prefix}\"]\n[[customer.tunnel]]\nname = \"t{name}\"\n\
             remote = \"{remote}\"\n[[customer.route]]\nprefix = \"{prefix}\"\ntunnel = \"t{name}\"\n"
        )
    };
    let config = format!(
        "[server]\nanycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:01\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n\n\
         [dos.sanity]\nbogons = false\n\n[tcp_protection]\ngrace_period = 5\n\n\
         [[tcp_protection.rule]]\nname = \"all\"\nmatch = \"tcp\"\nmode = \"mitigate\"\n\n{}\n{}",
        customer("a", "203.0.113.0/25", "198.51.100.1"),
        customer("b", "203.0.113.128/25", "198.51.100.2")
    );
    let snap = snapshot(&config);
    let mut limits = Limits::new(&snap);
    let s = 1_000_000_000;
    let ack = |dst: [u8; 4]| segment([198, 18, 0, 1], dst, 40000, 443, 0x10, 0);
    assert!(matches!(verdict_with(&snap, &mut limits, &ack([203, 0, 113, 1]), s), Verdict::Tx { .. }), "picked up");
    let first_for_b = verdict_with(&snap, &mut limits, &ack([203, 0, 113, 129]), 100 * s);
    assert!(is_out_of_state(&first_for_b), "{first_for_b:?}");
}

/// A rule's SYN threshold keeps its state across a reload that moves the rule (another
/// rule with a threshold put before it): the flood it was holding is not let through with
/// a fresh burst. A new threshold starts afresh.
#[test]
fn a_reload_keeps_a_moved_rules_syn_threshold() {
    let rule = |name: &str, port: u16, rate: u32| {
        format!(
            "[[tcp_protection.rule]]\nname = \"{name}\"\nmatch = \"tcp.dstport == {port}\"\nmode = \"mitigate\"\n\
             syn_rate = {rate}\nsyn_burst = 1\n"
        )
    };
    let config = |rules: &str| snapshot(&format!("{CATCH_ALL}\n[tcp_protection]\ngrace_period = 0\n{rules}"));
    let (web, moved, faster) = (
        config(&rule("web", 80, 1)),
        config(&(rule("mail", 25, 1) + &rule("web", 80, 1))),
        config(&(rule("mail", 25, 1) + &rule("web", 80, 2))),
    );
    let syn = |last: u8| segment([198, 51, 100, last], [203, 0, 113, 80], 40000, 80, 0x02, 0);
    let sent = |v: &Verdict| matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. });
    let challenged = |v: &Verdict| matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. });
    let mut limits = Limits::new(&web);
    assert!(sent(&verdict_with(&web, &mut limits, &syn(1), 0)), "within the burst");
    assert!(challenged(&verdict_with(&web, &mut limits, &syn(2), 1)), "over the threshold");
    limits.rebind(&web, &moved);
    assert!(challenged(&verdict_with(&moved, &mut limits, &syn(3), 2)), "the moved rule's threshold kept");
    limits.rebind(&moved, &faster);
    assert!(sent(&verdict_with(&faster, &mut limits, &syn(4), 3)), "a new threshold: afresh");
}

/// A challenge is not ECN-capable (RFC 3168 §6.1.1: a host never sets ECT on a SYN-ACK)
/// whatever the SYN's ECN field, keeps its DSCP (as Linux's SYN-ACK reflects the TOS, less
/// ECN), and carries no flow label of the client's; its checksums stay right. The SYNs are
/// scapy's, the challenges read by tshark (checksum status 1: good).
#[test]
fn a_challenge_is_not_ecn_capable() {
    let config = format!(
        "{CATCH_ALL}\n[tcp_protection]\ngrace_period = 0\n[[tcp_protection.rule]]\nname = \"web\"\n\
         match = \"tcp.dstport == 80\"\nmode = \"mitigate\"\nsyn_rate = 1\nsyn_burst = 1\n"
    );
    let dir = scratch_dir("challenge-ecn");
    scapy_pcap(
        &dir.join("syns.pcap"),
        "e = Ether(dst='02:00:00:00:00:01')\n\
         syn = lambda sport: TCP(sport=sport, dport=80, flags='S', seq=1000)\n\
         v4 = lambda sport, tos: e/IP(src='198.51.100.6', dst='203.0.113.80', tos=tos)/syn(sport)\n\
         v6 = lambda sport, tc: e/IPv6(src='2001:db8:5::6', dst='2001:db8:acbe::80', tc=tc, fl=0x12345)/syn(sport)\n\
         frames = [v4(1000, 0), v4(1001, 0xb9), v4(1002, 0x03), v6(1003, 0), v6(1004, 0xb9)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&dir.join("syns.pcap")).into_iter().map(|f| f.bytes).collect();
    let mut edge = Edge::new(snapshot(&config));
    let mut challenges = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let (v, sent) = edge.run(frame);
        // The first spends the rule's burst (all sources, both families); the rest, within
        // the second, are challenged.
        if i == 0 {
            assert!(matches!(v, Verdict::Tx { reason: TxReason::Encapsulated, .. }), "{v:?}");
        } else {
            assert!(matches!(v, Verdict::Tx { reason: TxReason::SynChallenge, .. }), "frame {i}: {v:?}");
            challenges.push(sent);
        }
    }
    write_pcap(&dir.join("challenges.pcap"), &challenges);
    let fields = [
        "ip.dsfield.dscp",
        "ip.dsfield.ecn",
        "ip.checksum.status",
        "ipv6.tclass.dscp",
        "ipv6.tclass.ecn",
        "ipv6.flow",
        "tcp.flags.str",
        "tcp.checksum.status",
    ];
    let mut args = vec!["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let rows = tshark(&dir.join("challenges.pcap"), &args);
    let _ = std::fs::remove_dir_all(&dir);
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(
        rows,
        [
            "46\t0\t1\t\t\t\t·······A··S·\t1",
            "0\t0\t1\t\t\t\t·······A··S·\t1",
            "\t\t\t0\t0\t0x000000\t·······A··S·\t1",
            "\t\t\t46\t0\t0x000000\t·······A··S·\t1",
        ],
        "{rows:#?}"
    );
}

/// A blind attacker, who knows a connection's 4-tuple but none of its sequence numbers,
/// sends a SYN and a RST just after it, twice, 2^31 apart, while the client has half-closed
/// (its request sent with its FIN, as `shutdown(SHUT_WR)` does) and the server still
/// answers. Linux at both ends (the veth lab's `snd` and `cust`) keeps the connection (RFC
/// 5961 §4: a SYN gets a challenge ACK, and neither RST is at the next sequence number):
/// the client receives every byte. What reached the server from the client's address then
/// goes through the pipeline, and the client's own packets must pass there as its server
/// took them. One of the SYNs is beyond the closing connection's stream; taken as a new
/// stream's start, the RST after it ended the tracked connection, and every later ACK of
/// the client was dropped as out of state.
#[test]
fn a_blind_syn_and_rst_do_not_end_a_connection_linux_keeps() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::time::Duration;
    let _serial = lab::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab::Lab::up("tbs", 1);
    let server_script = r#"
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.1", 80)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20)
while c.recv(100): pass  # the request, then the client's FIN
for i in range(30):
    c.sendall(b"z" * 1000); time.sleep(0.3)
c.close()
"#;
    let client_script = r#"
import socket
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); c.bind(("10.1.0.2", 40404))
c.settimeout(20); c.connect(("198.51.100.1", 80))
c.sendall(b"GET /\n"); c.shutdown(socket.SHUT_WR)
got = 0
while True:
    d = c.recv(4096)
    if not d: break
    got += len(d)
print(got)
"#;
    // From the router between them, with TTL 60 (the client's packets reach the server with
    // 63), once told to: scapy's import takes seconds on a slow machine.
    let attack_script = r#"
import random, sys
from scapy.all import IP, TCP, send
print("ready", flush=True)
sys.stdin.readline()
x = random.randrange(2**32)
for s in (x, (x + 2**31) % 2**32):
    for flags, seq in (("S", s), ("R", (s + 1) % 2**32)):
        send(IP(src="10.1.0.2", dst="198.51.100.1", ttl=60)/TCP(sport=40404, dport=80, flags=flags, seq=seq), verbose=0)
"#;
    let capture = lab.capture_on("cust", &lab.dev("c0"), "to-server", "tcp and src host 10.1.0.2 and dst port 80");
    let mut attacker = lab
        .cmd("up", "/usr/bin/python3")
        .args(["-c", attack_script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    attacker.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    let mut server = lab.cmd("cust", "/usr/bin/python3").args(["-c", server_script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let client = lab.cmd("snd", "/usr/bin/python3").args(["-c", client_script]).stdout(Stdio::piped()).spawn().unwrap();
    // The request and the client's FIN are out at once; the server answers for 9 s.
    std::thread::sleep(Duration::from_secs(1));
    attacker.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(attacker.wait().unwrap().success(), "the attacker");
    let got = client.wait_with_output().unwrap();
    assert!(server.wait().unwrap().success(), "the server");
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "30000", "Linux kept the connection: every byte came");

    let file = capture.finish();
    let frames = read_frames(&file);
    let (verdicts, _) = verdicts_timed(&protected("mitigate"), &file);
    let ttl = |frame: &[u8]| frame[14 + 8];
    let spoofed: Vec<usize> = (0..frames.len()).filter(|&i| ttl(&frames[i].bytes) == 60).collect();
    assert_eq!(spoofed.len(), 4, "both pairs reached the server");
    let after = frames[spoofed[3] + 1..].iter().filter(|f| ttl(&f.bytes) == 63).count();
    assert!(after >= 5, "the client acknowledged the server's data after them: {after} segments");
    for (i, (frame, v)) in frames.iter().zip(&verdicts).enumerate() {
        if ttl(&frame.bytes) == 63 {
            assert!(matches!(v, Verdict::Tx { .. }), "the client's frame {}: {v:?}", i + 1);
        }
    }
    let _ = std::fs::remove_file(file);
}
