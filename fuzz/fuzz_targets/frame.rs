//! Any bytes, as a received frame, through the whole pipeline (both tunnel directions, ICMP
//! errors, fragmentation, MSS clamping, the soft-unicast return path): nothing panics or reads out of bounds, and every
//! frame transmitted, spilled ones included, is one transitd's own parser accepts, with a
//! valid outer IPv4 header checksum. Half the inputs (a selector bit) have their checksums
//! repaired first (`repair.rs`), so that mutated headers get past the checks to what follows.
#![no_main]

#[path = "repair.rs"]
mod repair;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use transitd::pipeline::{Frame, HEADROOM, Spill};
use transitd::pipeline::{Limits, Parsed, SPILL_SLOTS, Verdict, parse_frame, process_frame};
use transitd::snapshot::Snapshot;

const CONFIG: &str = include_str!("../../dataplane/tests/data/tunnel-edge.toml");
const SOFT_UNICAST: &str = include_str!("../../dataplane/tests/data/soft-unicast.toml");
const CROWDED: &str = include_str!("../../dataplane/tests/data/crowded.toml");
const TCP_PROTECTION: &str = include_str!("../../bench/configs/tcp-protection.toml");

/// The tunnel-edge test configuration, the same with a 576-byte tunnel MTU (fragments; its
/// IPv6 prefix then goes over GRE over IPv6, as no IPv6 route may use a tunnel under 1280
/// bytes), the soft-unicast test fleet's server a1 (return path, backbone GRE), the vector
/// test's crowded one (DoS rules and buckets, firewalls, TCP tracking) and the TCP
/// protection bench's (SYN challenges written from the frame).
fn snapshots() -> &'static [Snapshot; 5] {
    static S: OnceLock<[Snapshot; 5]> = OnceLock::new();
    S.get_or_init(|| {
        let build = |text: &str| Snapshot::build(&transitd::config::parse("fuzz.toml", text).unwrap()).unwrap();
        let small =
            CONFIG.replace("interface = \"10.213.0.0/31\"", "interface = \"10.213.0.0/31\"\nmtu = 576").replace(
                "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"",
                "prefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-v6\"",
            );
        assert!(small.contains("tunnel = \"acme-v6\""), "the IPv6 route moved to the IPv6 tunnel");
        [build(CONFIG), build(&small), build(SOFT_UNICAST), build(CROWDED), build(TCP_PROTECTION)]
    })
}

fn check_output(bytes: &[u8]) {
    assert!(bytes.len() >= 14 + 20, "a frame too short to carry IP: {bytes:02x?}");
    match parse_frame(bytes, bytes.len() as u32).1 {
        Parsed::Ip(ip) => {
            if !ip.is_ipv6 {
                let h = &bytes[ip.l3_start..ip.l3_start + ip.header_len];
                assert_eq!(gre::checksum::sum(h), 0xffff, "bad IPv4 checksum in {bytes:02x?}");
            }
        }
        other => panic!("transitd sent what it would not accept ({other:?}): {bytes:02x?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let snap = &snapshots()[usize::from(selector % 5)];
    snap.health.forget_path_mtus(); // the snapshots are shared: each input starts from none
    let mut buf = vec![0u8; HEADROOM + frame.len().max(64)];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    if selector & 0x04 != 0 {
        repair::repair(&mut buf[HEADROOM..HEADROOM + frame.len()]);
    }
    let mut limits = Limits::new(snap);
    let mut spill = Spill::new(SPILL_SLOTS, snap.frame_size);
    // The receive time from the selector's high bits: timers and buckets see other times.
    let now = u64::from(selector >> 3) * 1_000_000_007;
    let mut f = Frame::new(&mut buf, HEADROOM, frame.len(), frame.len() as u32, now);
    let outcome = process_frame(snap, Some(&snap.eth), &mut limits, &mut spill, &mut f);
    if let Verdict::Tx { start, len, .. } = outcome.verdict {
        let out = f.buf.get(start..start + len).expect("a Tx range inside the buffer");
        check_output(out);
    }
    assert_eq!(spill.len(), usize::from(outcome.spilled));
    for out in spill.frames() {
        check_output(out);
    }
});
