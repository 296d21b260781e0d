//! Every bundled capture through the whole pipeline, with tshark as the oracle for what
//! should come out.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use transitd::pipeline::{DropReason, PassReason, TxReason, Verdict};
use transitd::replay::replay;

/// Per-frame verdicts of `file` through `config`, in frame order.
fn verdicts(config: &str, file: &Path) -> Vec<Verdict> {
    verdicts_of(config, read_frames(file).into_iter().map(|f| f.bytes).collect()).0
}

#[test]
fn every_capture_replays_and_every_frame_gets_one_verdict() {
    let snap = std::sync::Arc::new(snapshot(CATCH_ALL));
    let out = std::env::temp_dir().join(format!("transitd-replay-{}.pcap", std::process::id()));
    for file in captures("real").into_iter().chain(captures("malformed")) {
        let summary = replay(snap.clone(), &file, Some(&out)).unwrap();
        assert_eq!(summary.error, None, "{}", file.display());
        let s = &summary.stats;
        let skipped: u64 = summary.skipped.values().sum::<u64>() + summary.outgoing;
        assert_eq!(s.rx_frames + skipped, frame_count(&file), "{}: frames read", file.display());
        assert_eq!(s.tx_frames + s.passed() + s.dropped(), s.rx_frames, "{}: one verdict per frame", file.display());
        // What was written is what was counted as transmitted.
        if s.tx_frames > 0 {
            assert_eq!(frame_count(&out), s.tx_frames, "{}", file.display());
        }
    }
    let _ = std::fs::remove_file(out);
}

/// Frames written out keep the input's own times, as tshark reads them, where that time
/// goes back (two captures merged): the pipeline's clock holds at the latest time seen, and
/// each frame after the step back was written at it. A datagram's later fragments, sent
/// after their batch, carry its time too.
#[test]
fn frames_written_out_keep_the_inputs_times_where_they_go_back() {
    let dir = scratch_dir("replay-times");
    let (input, out) = (dir.join("back.pcap"), dir.join("out.pcap"));
    // UDP of 28 to 2028 bytes of IP, each with an IP identification of its own; the second
    // three stamped five seconds before the first.
    scapy_pcap(
        &input,
        "frames = []\n\
         for start in (10, 5):\n\
         \x20   for i in range(3):\n\
         \x20       ip = IP(src='198.18.0.1', dst='203.0.113.1', id=100 * start + i)\n\
         \x20       p = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/ip/UDP(sport=1000 + i, dport=53)/Raw(b'x' * (1000 * i))\n\
         \x20       p.time = start + i / 1000 + 0.000007\n\
         \x20       frames.append(p)",
    );
    // A tunnel MTU that cuts the largest into fragments (IPv6 routes hold it to 1280 or more).
    let snap = std::sync::Arc::new(snapshot(&CATCH_ALL.replace("mtu = 9000", "mtu = 1280")));
    let summary = replay(snap, &input, Some(&out)).unwrap();
    assert_eq!(summary.error, None);
    // (IP identification, time) of each frame; for a frame written, the identification of
    // the packet inside its GRE (tshark lists the outer header's first).
    let times = |file: &Path| -> Vec<(String, String)> {
        tshark(file, &["-T", "fields", "-e", "ip.id", "-e", "frame.time_epoch"])
            .lines()
            .filter_map(|l| {
                let (ids, time) = l.split_once('\t')?;
                Some((ids.rsplit(',').next()?.to_string(), time.to_string()))
            })
            .collect()
    };
    let sent: std::collections::BTreeMap<String, String> = times(&input).into_iter().collect();
    let written = times(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(written.len() > sent.len(), "nothing fragmented: {written:?}");
    for (id, time) in &written {
        assert_eq!(Some(time), sent.get(id), "the packet of IP identification {id}");
    }
}

/// `--out` on a disk that fills (a 64 KiB tmpfs: as root) keeps the frames that fit, whole,
/// and the replay fails saying so (exit 2): tshark reads the file to its end, and it holds
/// the first frames transmitted, exactly as many as the report's `written` line says. The
/// file ended inside a frame ("cut short in the middle of a packet"), and the report said
/// every frame transmitted as if the file held it (128, where tshark read 112).
#[test]
fn an_output_that_fills_its_disk_is_cut_back_to_its_whole_frames() {
    let dir = scratch_dir("replay-disk");
    let config = dir.join("config.toml");
    std::fs::write(&config, CATCH_ALL).unwrap();
    // 1000 UDP datagrams, IP identification 0 to 999, each encapsulated into a record of
    // 582 bytes: nine disks' worth.
    let input = dir.join("udp.pcap");
    scapy_pcap(
        &input,
        "frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         \x20   /IP(src='198.18.0.1', dst='203.0.113.1', id=i)/UDP(sport=1000, dport=53)/Raw(b'x' * 500)\n\
         \x20   for i in range(1000)]",
    );
    let disk = SmallDisk::mount(&dir, "64k");
    let out = disk.path.join("out.pcap");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config", config.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    // Read before the disk goes.
    let read = std::process::Command::new("tshark").arg("-r").arg(&out).args(["-T", "fields", "-e", "ip.id"]).output();
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
    let read = read.expect("tshark");
    assert!(
        read.status.success(),
        "tshark does not read the file to its end: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let (report, said) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(2), "{report}{said}");
    let count = |label: &str| -> u64 {
        let line = report.lines().find_map(|l| l.strip_prefix(label));
        line.and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or_else(|| panic!("{label}: {report}"))
    };
    let (sent, written) = (count("transmitted "), count("written "));
    assert!(written > 50 && written < sent, "{written} of {sent} frames kept on a disk of 64 KiB: {report}");
    // The inner packet's identification (tshark lists the outer header's first): the first
    // frames, in order, and as many as said written.
    let ids: Vec<u64> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(|l| l.rsplit(',').next().and_then(|id| u64::from_str_radix(id.trim_start_matches("0x"), 16).ok()))
        .map(|id| id.unwrap_or_else(|| panic!("an IP identification: {}", String::from_utf8_lossy(&read.stdout))))
        .collect();
    assert_eq!(ids, (0..written).collect::<Vec<_>>(), "{report}");
    let error = format!("--out {}: No space left on device", out.display());
    let cut = format!("the file is cut back to the {written} frames written whole");
    assert!(said.contains(&error) && said.contains(&cut), "{said}");
}

/// Frames tshark sees as well-formed IP whose outer header a router forwards: good IPv4
/// checksum, TTL or hop limit above 1, whole (not snapped), within the frame size, and not
/// under MPLS labels (passed or dropped as `[server] mpls` says, whatever they carry: see
/// `mpls_frames_are_passed_or_dropped_as_configured_whatever_they_carry`), not sent to an
/// Ethernet broadcast or multicast address (RFC 1812 §5.3.4), and not on its way through the
/// destination by a source route with hops to go (`[dos.sanity] source_route`, on by
/// default: IPv4 LSRR or SSRR, an IPv6 routing header with segments left but Mobile IPv6's).
const FORWARDABLE: &str = "(ip or ipv6) and not (ip.checksum.status#1 == 0) and not (ip.ttl#1 <= 1) \
     and not (ipv6.hlim#1 <= 1) and not _ws.malformed and frame.cap_len <= 4096 and frame.cap_len == frame.len \
     and not mpls and not eth.dst.ig#1 == 1 \
     and not (ip.opt.type#1 in {131, 137} and ip.opt.ptr#1 <= ip.opt.len#1) \
     and not (ipv6.routing.segleft#1 > 0 and ipv6.routing.type#1 != 2)";

/// Frames whose outer header is from a link-local source or to a destination on the link it
/// came by, which no router forwards off it, a catch-all's customer's neither: 169.254.0.0/16
/// and fe80::/10 either way (RFC 3927 §2.7, RFC 4291 §2.5.6), to 224.0.0.0/24 (RFC 5771 §4),
/// the limited broadcast (RFC 1812 §5.3.5.1), IPv6 multicast of scope 0 to 2 whatever its
/// flags (RFC 4291 §2.7: ffF0::/15 and ffF2::/16 for each F). `#1` is the first header of a
/// protocol wherever it is, so the outer one is told by `frame.protocols`: the first of `ip`
/// and `ipv6` in it (Teredo's and 6in4's inner IPv6 is link-local at times).
fn on_the_link() -> String {
    let outer_v4 = r#"frame.protocols matches "^(?:(?!ipv6:)[^:]+:)*ip(?::|$)""#;
    let outer_v6 = r#"frame.protocols matches "^(?:(?!ip:)[^:]+:)*ipv6(?::|$)""#;
    let v4 = "ip.src#1 == 169.254.0.0/16 or ip.dst#1 == 169.254.0.0/16 or ip.dst#1 == 224.0.0.0/24 \
              or ip.dst#1 == 255.255.255.255";
    let multicast: Vec<String> =
        (0..16).map(|f| format!("ipv6.dst#1 == ff{f:x}0::/15 or ipv6.dst#1 == ff{f:x}2::/16")).collect();
    let v6 = format!("ipv6.src#1 == fe80::/10 or ipv6.dst#1 == fe80::/10 or {}", multicast.join(" or "));
    format!("({outer_v4} and ({v4})) or ({outer_v6} and ({v6}))")
}

/// Under a catch-all, what a router forwards ([`FORWARDABLE`]) off the link it came by (not
/// [`on_the_link`]) is encapsulated, and nothing else but frames tshark calls malformed
/// above the transport layer.
#[test]
fn well_formed_captures_encapsulate_exactly_what_tshark_calls_forwardable() {
    let forwardable = format!("{FORWARDABLE} and not ({})", on_the_link());
    for file in captures("real") {
        let ours: BTreeSet<u64> = verdicts(CATCH_ALL, &file)
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Verdict::Tx { .. }))
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let oracle: BTreeSet<u64> =
            tshark_frames(&file, &forwardable, &["-o", "ip.check_checksum:TRUE"]).into_iter().collect();
        assert!(oracle.is_subset(&ours), "{}: not forwarded: {:?}", file.display(), oracle.difference(&ours));
        // Frames tshark calls malformed only above the transport layer (an application
        // protocol, or TCP stream reassembly) are still forwarded: a router does not read
        // payloads.
        // One tshark run for all of them (a run per frame cost CI a minute).
        let extra: Vec<String> = ours.difference(&oracle).map(u64::to_string).collect();
        if extra.is_empty() {
            continue;
        }
        let filter = format!("frame.number in {{{}}}", extra.join(", "));
        let out = tshark(&file, &["-Y", &filter, "-T", "fields", "-e", "frame.number", "-e", "_ws.malformed"]);
        let mut why_of = std::collections::BTreeMap::new();
        for line in out.lines() {
            if let Some((n, why)) = line.split_once('\t') {
                why_of.insert(n.trim().to_string(), why.to_string());
            }
        }
        for n in &extra {
            let why = why_of.get(n).cloned().unwrap_or_default();
            let app_layer = why.contains("Reassembly error")
                || !["IPv4", "IPv6", "TCP]", "UDP]", "ICMP]", "ICMPv6]"].iter().any(|p| why.contains(p));
            assert!(
                app_layer && !why.trim().is_empty(),
                "{}: frame {n} forwarded but tshark says {why}",
                file.display()
            );
        }
    }
}

#[test]
fn exact_counts_per_reason_match_tshark() {
    let snap = std::sync::Arc::new(snapshot(CATCH_ALL));
    let count =
        |file: &str, filter: &str| tshark_frames(&pcap(file), filter, &["-o", "ip.check_checksum:TRUE"]).len() as u64;
    let run = |file: &str| replay(snap.clone(), &pcap(file), None).unwrap().stats;

    // Bad IPv4 header checksums (captured before checksum offload filled them in).
    for file in ["real/pcapplusplus-raw_ip.pcap", "malformed/zeek-chksums-ip4-bad-chksum.pcap"] {
        let expect = count(file, "ip.checksum.status#1 == 0");
        assert!(expect > 0, "{file}");
        assert_eq!(run(file).dropped_for(DropReason::BadIpv4Checksum), expect, "{file}");
    }
    // Non-IP frames (ARP, STP, CDP, LLDP behind any number of tags) go to the host.
    for file in [
        "real/ndpi-tcp_scan.pcapng",
        "real/tcpdump-802.1ad_QinQ.pcap",
        "real/tcpdump-various_gre.pcap",
        "real/zeek-icmp_dot1q.pcap",
        "real/pcapplusplus-VlanPackets.pcap",
    ] {
        let expect = count(file, "!ip && !ipv6");
        assert!(expect > 0, "{file}");
        assert_eq!(run(file).passed_for(PassReason::NotIp), expect, "{file}");
    }
    // Frames captured short of their IP length are truncated, never forwarded.
    let file = "real/zeek-communityid-tcp.pcap";
    let snapped = count(file, "frame.cap_len < frame.len");
    assert_eq!((snapped, run(file).dropped_for(DropReason::Truncated)), (3, 3));
    // TTL 1 floods are dropped before encapsulation; from a link-local source (random ones
    // fall in fe80::/10), before the TTL is looked at, as no router forwards them at all.
    let file = "malformed/suricata-defrag-af-confusion-spray-h8.pcap";
    let (expiring, link_local) =
        ("ip.ttl#1 <= 1 or ipv6.hlim#1 <= 1", "ip.src#1 == 169.254.0.0/16 or ipv6.src#1 == fe80::/10");
    let stats = run(file);
    assert_eq!(
        stats.dropped_for(DropReason::TtlExceeded),
        count(file, &format!("({expiring}) and not ({link_local})"))
    );
    assert_eq!(
        stats.dropped_for(DropReason::LinkLocalSource),
        count(file, &format!("({expiring}) and ({link_local})"))
    );
    assert!(stats.dropped_for(DropReason::LinkLocalSource) > 0, "the capture holds link-local sources");
}

#[test]
fn malformed_headers_are_dropped_under_their_reason() {
    // Expected reasons come from what each capture's source says it contains
    // (pcaps/SOURCES.md), not from running transitd.
    let cases: &[(&str, DropReason)] = &[
        ("tcpdump-ipv4_invalid_length.pcap", DropReason::Truncated), // 19 of 20 header bytes
        ("tcpdump-ipv4_invalid_total_length.pcap", DropReason::Truncated), // total length 85 > 84 present
        ("tcpdump-ipv6_invalid_length.pcap", DropReason::Truncated), // 39 of 40 header bytes
        ("tcpdump-ipv6_39_byte_header.pcap", DropReason::Truncated),
        ("suricata-udp-len-invalid.pcap", DropReason::BadUdpHeader), // UDP length 5 < 8
        ("tcpdump-kday1.pcap", DropReason::BadIpv4Header),           // EtherType IPv4, version 6
        ("tcpdump-LINKTYPE_IPV4_invalid.pcap", DropReason::BadIpv4Header),
        ("tcpdump-LINKTYPE_IPV6_invalid.pcap", DropReason::BadIpv6Header),
        ("tcpdump-icmpv6-length-zero.pcapng", DropReason::BadIpv6Header), // payload length 0
        ("tcpdump-ipv6_frag6_negative_len.pcap", DropReason::BadIpv6Header),
        ("zeek-chksums-ip4-bad-chksum.pcap", DropReason::BadIpv4Checksum),
        ("tcpdump-ipv6-next-header-oobr-1.pcap", DropReason::Truncated), // HBH claims 50 of 6 bytes
    ];
    for (file, reason) in cases {
        let v = verdicts(CATCH_ALL, &pcap(&format!("malformed/{file}")));
        assert_eq!(v, vec![Verdict::Drop(*reason)], "{file}");
    }
    // suricata's malformed-option session: only the packet with the bad option is dropped.
    let v = verdicts(CATCH_ALL, &pcap("malformed/suricata-tcp-session-decode-malformed-ipv4.pcap"));
    let dropped: Vec<usize> =
        v.iter().enumerate().filter(|(_, v)| !matches!(v, Verdict::Tx { .. })).map(|(i, _)| i + 1).collect();
    assert_eq!(dropped, vec![8]);
    assert_eq!(v[7], Verdict::Drop(DropReason::BadIpv4Header));
}

#[test]
fn mpls_frames_are_passed_or_dropped_as_configured_whatever_they_carry() {
    // Every frame of the capture is MPLS (tshark says so), carrying IP under labels, behind a
    // VLAN tag or in Ethernet pseudowires; the firewall never sees them.
    let file = pcap("generated/mpls.pcap");
    let frames = tshark(&file, &["-T", "fields", "-e", "frame.number"]).lines().count();
    assert_eq!(tshark_frames(&file, "mpls", &[]).len(), frames);
    assert!(frames > 50);
    let passed = verdicts(CATCH_ALL, &file);
    assert_eq!(passed, vec![Verdict::Pass(PassReason::Mpls); frames], "the default passes them to the host");
    let dropping = CATCH_ALL.replacen("[server]\n", "[server]\nmpls = \"drop\"\n", 1);
    assert_ne!(dropping, CATCH_ALL);
    assert_eq!(verdicts(&dropping, &file), vec![Verdict::Drop(DropReason::Mpls); frames]);
    // In public captures that mix MPLS with plain and tagged frames: exactly tshark's MPLS
    // frames are passed as MPLS.
    for name in ["real/zeek-mixed-vlan-mpls.pcap", "real/zeek-mpls-in-vlan.pcap"] {
        let file = pcap(name);
        let mpls: BTreeSet<u64> = tshark_frames(&file, "mpls", &[]).into_iter().collect();
        let ours: BTreeSet<u64> = verdicts(CATCH_ALL, &file)
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Verdict::Pass(PassReason::Mpls))
            .map(|(i, _)| i as u64 + 1)
            .collect();
        assert!(!mpls.is_empty());
        assert_eq!(ours, mpls, "{name}");
    }
}

/// The XDP program hands the pipeline what the pipeline acts on, and passes the host what
/// the pipeline would pass, on every frame of every capture in `pcaps/` (real, malformed,
/// generated) with one customer owning half of each address space (0.0.0.0/1, 2000::/3):
/// the kernel's test run of the program, with the tables `run` gives it, beside the
/// pipeline's verdict; and again with MPLS and GRE that is not ours dropped. What the pipeline transmits, or drops by a rule of its own (a link
/// broadcast, an expired TTL, a bad GRE header, ...), the program hands over; what it passes
/// (not IP, no customer's, GRE not ours) is never handed over to be punted back; what the
/// program passes, the pipeline passes, or drops as malformed (which the
/// host discards as well). Frames the kernel's test run cannot take (shorter than an
/// Ethernet header, or longer than 3000 bytes: it takes a page less its head- and tailroom)
/// are left out, and counted.
#[test]
fn the_xdp_program_hands_over_what_the_pipeline_acts_on_in_every_capture() {
    use transitd_bpf::XdpDecision as X;
    let config = CATCH_ALL
        .replace("\"0.0.0.0/0\", \"::/0\"", "\"0.0.0.0/1\", \"2000::/3\"")
        .replace("prefix = \"0.0.0.0/0\"", "prefix = \"0.0.0.0/1\"")
        .replace("prefix = \"::/0\"", "prefix = \"2000::/3\"");
    assert_eq!((config.matches("0.0.0.0/1").count(), config.matches("2000::/3").count()), (2, 2));
    // And with what is not ours (MPLS, GRE) dropped rather than passed.
    let dropping = config.replace("[dos.sanity]\n", "mpls = \"drop\"\ngre_unsupported = \"drop\"\n[dos.sanity]\n");
    assert_ne!(dropping, config);
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let mut seen = std::collections::BTreeMap::new();
    let (mut left_out, mut dropped_for) = (0, BTreeSet::new());
    for (config, dir) in
        [&config, &dropping].into_iter().flat_map(|c| ["real", "malformed", "generated"].map(|d| (c, d)))
    {
        let files = captures(dir).into_iter().filter(|f| f.extension().is_some_and(|e| e == "pcap" || e == "pcapng"));
        for file in files {
            let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
            let (verdicts, _, snap) = verdicts_of(config, frames.clone());
            transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
            for (i, (frame, verdict)) in frames.iter().zip(&verdicts).enumerate() {
                if frame.len() < 14 || frame.len() > 3000 {
                    left_out += 1;
                    continue;
                }
                let (decision, _) = program.test_run(frame).expect("test run (needs root)");
                let (kind, reason) = (verdict.kind(), verdict.reason());
                let fine = match decision {
                    X::NoSocket => kind != "pass",
                    X::Passed | X::GreNotOurs => kind == "pass" || discarded_by_the_host(frame, verdict, &frames),
                    _ => false,
                };
                let at = format!("{} frame {}", file.display(), i + 1);
                assert!(fine, "{at}: the program {}, the pipeline {kind}:{reason}", decision.name());
                *seen.entry((decision.name(), kind)).or_insert(0u32) += 1;
                if decision == X::NoSocket && kind == "drop" {
                    dropped_for.insert(reason);
                }
            }
        }
    }
    for (decision, kind) in [(X::NoSocket, "tx"), (X::NoSocket, "drop"), (X::Passed, "pass")] {
        let n = seen.get(&(decision.name(), kind)).copied().unwrap_or(0);
        assert!(n >= 10, "{} {kind} came up {n} times: {seen:?}", decision.name());
    }
    for reason in [DropReason::Mpls, DropReason::GreUnsupported, DropReason::GreUnknownTunnel] {
        assert!(dropped_for.contains(reason.name()), "no capture frame was dropped for {}", reason.name());
    }
    assert!(left_out < 200, "{left_out} frames left out");
}

/// Under a catch-all (0.0.0.0/0 and ::/0: a lab's or a benchmark's customer owning
/// everything), what is addressed to the host's own link stays the host's, in the XDP program
/// and the pipeline alike: link-local unicast (RFC 3927 §2.7, RFC 4291 §2.5.6), the local
/// network control block (RFC 5771 §4), the limited broadcast (RFC 1812 §5.3.5.1), IPv6
/// multicast of link scope or narrower (RFC 4291 §2.7). The program passes it and the
/// pipeline leaves it to `unmatched` (`no_customer`); every other destination is handed over
/// and encapsulated. The destinations sweep each space's edges (every first octet twice,
/// every IPv6 prefix from fe00:: to ffff::), then the host's link speaks: neighbour
/// discovery, MLD, DHCP, OSPF, BGP over 169.254/16. Python's ipaddress says which frames
/// are for the link (`H`, their last byte), and tshark's [`on_the_link`] selects the same.
/// The program handed them all over: the upstream router's neighbour solicitations never
/// reached the host, whose IPv6 neighbour entries failed.
#[test]
fn the_xdp_program_and_the_pipeline_leave_the_hosts_own_link_to_it_under_a_catch_all() {
    use transitd_bpf::XdpDecision as X;
    let file = std::env::temp_dir().join(format!("transitd-own-link-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        r#"import ipaddress
e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')
def tag(dst):
    a = ipaddress.ip_address(dst)
    if a.version == 4:
        link = a.is_link_local or a in ipaddress.ip_network('224.0.0.0/24') or a == ipaddress.ip_address('255.255.255.255')
    else:
        link = a.is_link_local or (a.is_multicast and (int(a) >> 112) & 0xf <= 2)
    return Raw(b'H' if link else b'G')
def to(dst):
    ip = IPv6(src='2001:db8:5::9', dst=dst) if ':' in dst else IP(src='198.18.0.10', dst=dst)
    return e/ip/UDP(sport=5000, dport=9)/tag(dst)
v4 = ['%d.%d.%d.%d' % ((a,) + rest) for a in range(256) for rest in ((0, 0, 1), (254, 1, 1))]
v4 += ['169.253.255.255', '169.254.0.0', '169.254.255.255', '169.255.0.0', '223.255.255.255', '224.0.0.0',
       '224.0.0.255', '224.0.1.0', '255.255.255.254', '255.255.255.255']
v6 = ['%x::1' % w for w in range(0xfe00, 0x10000)] + ['febf:ffff::1', '2001:db8:acbe::10']
frames = [to(d) for d in v4 + v6]
g = lambda mac: Ether(src='02:00:00:00:00:fe', dst=mac)
frames += [
    g('33:33:ff:00:00:01')/IPv6(src='fe80::fe', dst='ff02::1:ff00:1', hlim=255)/ICMPv6ND_NS(tgt='fe80::1')/tag('ff02::1:ff00:1'),
    e/IPv6(src='fe80::fe', dst='fe80::1', hlim=255)/ICMPv6ND_NA(tgt='fe80::fe', R=1, S=1)/tag('fe80::1'),
    g('33:33:00:00:00:01')/IPv6(src='fe80::fe', dst='ff02::1', hlim=255)/ICMPv6ND_RA()/tag('ff02::1'),
    g('33:33:00:00:00:16')/IPv6(src='fe80::fe', dst='ff02::16', hlim=1)/ICMPv6MLReport2()/tag('ff02::16'),
    g('ff:ff:ff:ff:ff:ff')/IP(src='10.2.0.1', dst='255.255.255.255')/UDP(sport=67, dport=68)/BOOTP(op=2)/tag('255.255.255.255'),
    g('01:00:5e:00:00:05')/IP(src='10.2.0.1', dst='224.0.0.5', proto=89, ttl=1)/Raw(bytes(44))/tag('224.0.0.5'),
    e/IP(src='169.254.1.1', dst='169.254.1.2')/TCP(sport=40000, dport=179, flags='S')/tag('169.254.1.2'),
]"#,
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let for_the_link: BTreeSet<u64> =
        (1..).zip(&frames).filter(|(_, f)| f.last() == Some(&b'H')).map(|(n, _)| n).collect();
    let tshark_says: BTreeSet<u64> = tshark_frames(&file, &on_the_link(), &[]).into_iter().collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(tshark_says, for_the_link, "tshark and Python's ipaddress");
    // 169.254.1.1, 224.0.0.1 and five edges; fe80::/10's 64 prefixes, link-scoped
    // multicast's 48, febf:ffff::1; and the seven the host's link says.
    assert_eq!((for_the_link.len(), frames.len()), (127, 1043));
    let (verdicts, _, snap) = verdicts_of(CATCH_ALL, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    for (n, (frame, verdict)) in (1..).zip(frames.iter().zip(&verdicts)) {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        let expected = match for_the_link.contains(&n) {
            true => (X::Passed, "pass", PassReason::NoCustomer.name()),
            false => (X::NoSocket, "tx", TxReason::Encapsulated.name()),
        };
        assert_eq!((decision, verdict.kind(), verdict.reason()), expected, "frame {n}");
    }
}

/// Frames behind more VLAN tags than the XDP program reads (three) are handed to the
/// pipeline, which drops them (`too_many_vlan_tags`), and never passed to the host: Linux
/// strips any number of priority tags (VLAN ID 0, 802.1Q or 802.1ad) and routes the packet
/// under them, so a customer's packet the program passed reached the host's stack past its
/// firewall (and a host that forwards sent it on). scapy builds IPv4 and IPv6 to a customer's
/// prefix and IPv4 to no customer's address, behind three to six priority tags, the outermost
/// 802.1Q or 802.1ad; tshark reads the customer's IP packet under every one; beside the
/// pipeline's verdict, the kernel's test run of the program with the tables `run` gives it.
/// Behind three tags, both judge by the destination as untagged.
#[test]
fn frames_behind_more_vlan_tags_than_the_program_reads_are_dropped_not_passed_to_the_host() {
    use transitd_bpf::XdpDecision as X;
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    let file = std::env::temp_dir().join(format!("transitd-deep-tags-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "import functools\n\
         packets = [IP(src='198.18.0.7', dst='203.0.113.5')/UDP(sport=7, dport=53)/Raw(b'q'),\n\
         \x20   IPv6(src='2001:db8:1::7', dst='2001:db8:acbe::5')/UDP(sport=7, dport=53)/Raw(b'q'),\n\
         \x20   IP(src='198.18.0.7', dst='198.18.0.9')/UDP(sport=7, dport=53)/Raw(b'q')]\n\
         tags = lambda n, outer: [outer(vlan=0)] + [Dot1Q(vlan=0) for _ in range(n - 1)]\n\
         e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')\n\
         behind = lambda n, outer, p: functools.reduce(lambda f, t: f/t, tags(n, outer), e)/p\n\
         frames = [behind(n, outer, p) for n in (3, 4, 5, 6) for outer in (Dot1Q, Dot1AD) for p in packets]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let to_customer: BTreeSet<u64> =
        tshark_frames(&file, "ip.dst == 203.0.113.5 or ipv6.dst == 2001:db8:acbe::5", &[]).into_iter().collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(frames.len(), 24);
    let every_third_is_elsewhere: BTreeSet<u64> = (1..=24).filter(|n| n % 3 != 0).collect();
    assert_eq!(to_customer, every_third_is_elsewhere, "tshark reads the IP packet under every tag");
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    let got = fates(&verdicts);
    for (i, frame) in frames.iter().enumerate() {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        let (n, three_tags) = (i as u64 + 1, i < 6);
        let (program_should, pipeline_should) = match (three_tags, to_customer.contains(&n)) {
            (true, true) => (X::NoSocket, format!("tx:{}", TxReason::Encapsulated.name())),
            (true, false) => (X::Passed, format!("pass:{}", PassReason::NoCustomer.name())),
            (false, _) => (X::NoSocket, DropReason::TooManyVlanTags.name().to_string()),
        };
        assert_eq!((decision, got[i].as_str()), (program_should, pipeline_should.as_str()), "frame {n}");
    }
}

/// An IPv6 first fragment that does not hold its whole header chain (RFC 8200 §4.5, RFC 7112
/// §5: a destination options header cut by the fragment's end, naming ICMPv6, UDP or TCP), to
/// no customer: the XDP program passes it to the host, the pipeline drops it as
/// `tiny_fragment` (`truncated` until the parser named it so), and the host's kernel discards
/// it too, so the two end alike ([`DISCARDED_BY_THE_HOST`]): a network namespace of its own
/// (unshare), given the frames on a veth, counts each an IPv6 header error
/// (`ipv6frag_thdr_truncated`, answered with a Parameter Problem) after taking it for
/// reassembly. The capture test tripped on any such frame in a capture. scapy builds them;
/// tshark reads them as first fragments.
#[test]
fn an_ipv6_first_fragment_without_its_header_chain_is_the_hosts_to_discard() {
    use transitd_bpf::XdpDecision as X;
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    let file = std::env::temp_dir().join(format!("transitd-tiny-first-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')\n\
         def first(upper, nh):\n\
         \x20   options = bytes([nh, 1, 0x1e, 12]) + bytes(12)  # 16 bytes: an option to skip\n\
         \x20   cut = (options + upper)[:8]\n\
         \x20   return e/IPv6(src='fd00::1', dst='fd00::2')/IPv6ExtHdrFragment(nh=60, m=1, id=7)/Raw(cut)\n\
         frames = [first(bytes(ICMPv6EchoRequest()), 58), first(bytes(UDP(dport=53)), 17), first(bytes(TCP(dport=9)), 6)]",
    );
    assert_eq!(tshark_frames(&file, "ipv6.fraghdr.offset == 0 and ipv6.fraghdr.more == 1", &[]), [1, 2, 3]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    for (n, (frame, verdict)) in (1..).zip(frames.iter().zip(&verdicts)) {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        assert_eq!((decision, verdict), (X::Passed, &Verdict::Drop(DropReason::TinyFragment)), "frame {n}");
        assert!(discarded_by_the_host(frame, verdict, &frames), "frame {n}");
    }
    // The host: fd00::2 on a veth with the frames' MAC address, given them by its peer.
    let deltas = host_counter_deltas(&file, &["fd00::2/64"], &["Ip6InHdrErrors", "Ip6ReasmReqds"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(deltas, [3, 3], "header errors, fragments taken for reassembly");
}

/// An IPv6 packet whose chain holds a second fragment header (RFC 8200 §4.1: each extension
/// header once, Destination Options aside). Rules read the first (`ipv6.fraghdr.*`,
/// docs/rules.md), so an atomic fragment header (RFC 6946) put before a real one hid both
/// pieces of a datagram from a DoS rule dropping IPv6 fragments, and they went to acme,
/// where tshark's fields, which hold every fragment header, take them for fragments. Linux
/// (6.18, a network namespace of its own given the frames on a veth) discards every packet
/// with two as a header error (`ipv6_frag_rcv` refuses a fragment header behind one it has
/// taken: an atomic one, or the first fragment's own once reassembled) and delivers the
/// atomic fragment and the datagram with one fragment header each: the pipeline drops the
/// former as `bad_ip_ext_header`, before any rule reads them (a later fragment whose first
/// held the second header is the rule's), and the rest fare as before. scapy builds the
/// frames; tshark counts their fragment headers.
#[test]
fn a_second_fragment_header_is_dropped_as_the_host_discards_it() {
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    // A DoS rule dropping every IPv6 fragment, as rules read the fragment header.
    let fragments = "match = \"ipv6.fraghdr.more == 1 or ipv6.fraghdr.offset > 0\"\naction = \"drop\"";
    let config = config.replacen(
        "[dos.sanity]\n",
        &format!("[[dos.rule]]\nname = \"fragments\"\n{fragments}\n\n[dos.sanity]\n"),
        1,
    );
    let file = std::env::temp_dir().join(format!("transitd-two-fragment-headers-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')\n\
         v6 = lambda: IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::5')\n\
         frag = lambda offset, m, nh, id: IPv6ExtHdrFragment(offset=offset, m=m, nh=nh, id=id)\n\
         udp = bytes(v6()/UDP(sport=1234, dport=5000)/Raw(b'x' * 88))[40:]  # 56 bytes first, 40 later\n\
         inner = bytes(frag(0, 0, 17, 9)) + udp\n\
         frames = [e/v6()/frag(0, 0, 17, 1)/Raw(udp)]\n\
         frames += [e/v6()/frag(0, 1, 17, 2)/Raw(udp[:56]), e/v6()/frag(7, 0, 17, 2)/Raw(udp[56:])]\n\
         frames += [e/v6()/frag(0, 0, 44, 9)/frag(0, 1, 17, 3)/Raw(udp[:56])]\n\
         frames += [e/v6()/frag(0, 0, 44, 9)/frag(7, 0, 17, 3)/Raw(udp[56:])]\n\
         frames += [e/v6()/frag(0, 1, 44, 4)/Raw(inner[:64]), e/v6()/frag(8, 0, 44, 4)/Raw(inner[64:])]\n\
         frames += [e/v6()/frag(0, 0, 44, 5)/frag(0, 0, 17, 6)/Raw(udp)]",
    );
    assert_eq!(tshark_frames(&file, "count(ipv6.fraghdr) == 2", &[]), [4, 5, 6, 8], "two fragment headers");
    assert_eq!(tshark_frames(&file, "ipv6.fraghdr.more == 1 or ipv6.fraghdr.offset > 0", &[]), [2, 3, 4, 5, 6, 7]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (verdicts, _, _) = verdicts_of(&config, frames);
    let (sent, rule, bad) = ("tx:encapsulated", DropReason::DosRule.name(), DropReason::BadIpExtHeader.name());
    assert_eq!(fates(&verdicts), [sent, rule, rule, bad, bad, bad, rule, bad]);
    // The host: acme's 2001:db8:acbe::5 on a veth with the frames' MAC address, given them by
    // its peer; what it delivers reaches UDP, which has no socket on the port.
    let deltas = host_counter_deltas(&file, &["2001:db8:acbe::5/64"], &["Ip6InHdrErrors", "Udp6NoPorts"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(deltas, [4, 2], "packets with two fragment headers discarded, the others delivered");
}

/// A tiny first fragment that the host reassembles is no drop the host makes too: Linux
/// (6.18, a network namespace of its own given the frames on a veth) reassembles an IPv4 TCP
/// datagram whose first fragment holds 8 bytes of its header (RFC 1858's tiny fragment: a
/// filter's concern, not a host's), an IPv6 one carrying IPv4 whose first fragment holds
/// 16 bytes of the inner header (`ipv6frag_thdr_truncated` asks 20 bytes of TCP, 8 of UDP and
/// ICMPv6, one of anything else), and two IPv6 TCP ones whose first fragment ends where a
/// second destination options header begins, or inside the first one that names it
/// (ipv6_skip_exthdr cannot read the second, and the fragment is taken as not truncated).
/// The sanity check drops each first fragment as `tiny_fragment`, and the XDP program passes
/// them to the host when they are no customer's: the two do not end alike, and the
/// differential tests must not take them as alike (they did, for every `tiny_fragment`, once
/// the IPv6 case above was allowed). An empty first fragment, past whose fragment header
/// nothing can be read either, the host does discard (ip6_frag_queue). scapy builds the
/// fragments; tshark reads the first ones as such.
#[test]
fn a_tiny_first_fragment_the_host_reassembles_is_not_discarded_by_it() {
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    let file = std::env::temp_dir().join(format!("transitd-tiny-reassembled-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')\n\
         tcp = bytes(TCP(sport=1234, dport=9, flags='S'))\n\
         inner = bytes(IP(src='192.0.2.7', dst='192.0.2.8')/UDP(sport=1, dport=2))\n\
         v4 = lambda frag, mf, data: e/IP(src='10.9.9.1', dst='10.9.9.2', id=77, proto=6, frag=frag, flags=mf)/Raw(data)\n\
         v6 = lambda nh, id, offset, m, data: e/IPv6(src='fd00::1', dst='fd00::2')/IPv6ExtHdrFragment(nh=nh, offset=offset, m=m, id=id)/Raw(data)\n\
         opts = lambda nh, units: bytes([nh, units, 0x1e, units * 8 + 4]) + bytes(units * 8 + 4)  # one option to skip\n\
         cut = lambda id, chain: [v6(60, id, 0, 1, chain[:8]), v6(60, id, 1, 0, chain[8:])]\n\
         frames = [v4(0, 'MF', tcp[:8]), v4(1, 0, tcp[8:]), v6(4, 50, 0, 1, inner[:16]), v6(4, 50, 2, 0, inner[16:])]\n\
         frames += cut(51, opts(60, 0) + opts(6, 0) + tcp) + cut(52, opts(60, 1) + opts(6, 0) + tcp)\n\
         frames += [v6(60, 53, 0, 1, b'')]",
    );
    let firsts = "(ip.frag_offset == 0 and ip.flags.mf == 1) or (ipv6.fraghdr.offset == 0 and ipv6.fraghdr.more == 1)";
    assert_eq!(tshark_frames(&file, firsts, &[]), [1, 3, 5, 7, 9]);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (verdicts, _, _) = verdicts_of(&config, frames.clone());
    for i in [0, 2, 4, 6] {
        assert_eq!(verdicts[i], Verdict::Drop(DropReason::TinyFragment), "frame {}", i + 1);
        assert!(!discarded_by_the_host(&frames[i], &verdicts[i], &frames), "frame {}", i + 1);
    }
    // An empty first fragment, nothing after its fragment header, the host discards
    // (ip6_frag_queue), though the header it names cannot be read either.
    assert_eq!(verdicts[8], Verdict::Drop(DropReason::TinyFragment), "frame 9");
    assert!(discarded_by_the_host(&frames[8], &verdicts[8], &frames), "frame 9");
    // The host: 10.9.9.2 and fd00::2 on a veth with the frames' MAC address, given them by
    // its peer; each datagram reassembled, the empty fragment discarded.
    let counters = ["IpReasmOKs", "Ip6ReasmOKs", "Ip6ReasmFails"];
    let deltas = host_counter_deltas(&file, &["10.9.9.2/24", "fd00::2/64"], &counters);
    let _ = std::fs::remove_file(&file);
    assert_eq!(deltas, [1, 3, 1], "datagrams reassembled (IPv4, IPv6), empty fragments discarded");
}

/// A later fragment the sanity check drops as `overlapping_fragment` (it starts below the
/// smallest first fragment the check lets through) is the host's discard only where its
/// datagram's first fragment overlaps it, or never comes: Linux (6.18, a network namespace
/// of its own given the frames on a veth) discards a datagram whose fragments overlap, IPv4's
/// (`ReasmOverlaps`) as IPv6's (RFC 5722), but reassembles one whose first fragment ends
/// where the later one starts: IPv4 TCP whose first holds 8 bytes, or 12 (ip_frag_queue cuts
/// them to 8), or its whole header, 20 bytes, which the check lets through (cut to 16, the
/// later one at 16); IPv6 UDP whose first holds the UDP header alone (its payload reaches a
/// socket), IPv6 TCP whose first holds 24 bytes. An IPv4 first fragment of 4 bytes (nothing
/// left once cut) discards its datagram; an IPv6 one whose length is no multiple of 8, or
/// without its TCP header, is a header error; a later fragment alone is held. The XDP
/// program passes each later fragment to the host, as no customer's, and the differential
/// tests took every one for the host's discard too, whatever its first
/// (`discarded_by_the_host` judged the frame alone). scapy builds the fragments; tshark
/// reads the later ones as such.
#[test]
fn an_overlapping_fragment_is_the_hosts_discard_only_where_it_overlaps() {
    use transitd_bpf::XdpDecision as X;
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap();
    let file = std::env::temp_dir().join(format!("transitd-overlapping-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')\n\
         tcp4 = bytes(IP(src='10.9.9.1', dst='10.9.9.2')/TCP(sport=1234, dport=9, flags='S')/Raw(bytes(32)))[20:]\n\
         tcp6 = bytes(IPv6(src='fd00::1', dst='fd00::2')/TCP(sport=1234, dport=9, flags='S')/Raw(bytes(32)))[40:]\n\
         udp6 = bytes(IPv6(src='fd00::1', dst='fd00::2')/UDP(sport=1234, dport=5000)/Raw(b'delivered' * 6))[40:]\n\
         v4 = lambda id, offset, mf, data: e/IP(src='10.9.9.1', dst='10.9.9.2', id=id, proto=6, frag=offset // 8, flags=mf)/Raw(data)\n\
         v6 = lambda nh, id, offset, m, data: e/IPv6(src='fd00::1', dst='fd00::2')/IPv6ExtHdrFragment(nh=nh, offset=offset // 8, m=m, id=id)/Raw(data)\n\
         pair4 = lambda id, cut: [v4(id, 0, 'MF', tcp4[:cut]), v4(id, 8, 0, tcp4[8:])]\n\
         pair6 = lambda nh, whole, id, cut, at: [v6(nh, id, 0, 1, whole[:cut]), v6(nh, id, at, 0, whole[at:])]\n\
         frames = pair4(61, 8) + pair4(62, 12) + pair4(63, 24) + pair4(64, 4)\n\
         frames += pair6(17, udp6, 65, 8, 8) + pair6(6, tcp6, 66, 24, 24) + pair6(17, udp6, 67, 48, 8)\n\
         frames += pair6(17, udp6, 68, 12, 16) + pair6(6, tcp6, 69, 8, 8) + [v6(17, 70, 8, 0, udp6[8:])]\n\
         frames += [v4(71, 0, 'MF', tcp4[:20]), v4(71, 16, 0, tcp4[16:])]",
    );
    let later = [2, 4, 6, 8, 10, 12, 14, 16, 18, 19, 21];
    assert_eq!(tshark_frames(&file, "ip.frag_offset > 0 or ipv6.fraghdr.offset > 0", &[]), later);
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    // Datagrams 61, 62, 71 (IPv4), 65 and 66 (IPv6) the host reassembles.
    let reassembled = [2, 4, 10, 12, 21];
    for n in later {
        let (frame, verdict) = (&frames[n as usize - 1], &verdicts[n as usize - 1]);
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        assert_eq!((decision, verdict), (X::Passed, &Verdict::Drop(DropReason::OverlappingFragment)), "frame {n}");
        assert_eq!(discarded_by_the_host(frame, verdict, &frames), !reassembled.contains(&n), "frame {n}");
    }
    // The host: 10.9.9.2 and fd00::2 on a veth with the frames' MAC address, given them by
    // its peer, a UDP socket on fd00::2 port 5000.
    let host = format!(
        "import socket, subprocess, time\n\
         from scapy.all import rdpcap, sendp\n\
         sh = lambda c: subprocess.run(c, shell=True, check=True)\n\
         sh('ip link add name up0 type veth peer name host0 && ip link set host0 address 02:00:00:00:00:01')\n\
         sh('ip link set up0 up && ip link set host0 up && ip addr add 10.9.9.2/24 dev host0')\n\
         sh('ip -6 addr add fd00::2/64 dev host0 nodad')\n\
         rows = lambda file, kind: [l.split() for l in open(file) if l.startswith(kind)]\n\
         ip = lambda file, kind, name: int(rows(file, kind)[1][rows(file, kind)[0].index(name)])\n\
         ip6 = lambda name: next(int(l.split()[1]) for l in open('/proc/net/snmp6') if l.split()[0] == name)\n\
         counts = lambda: (ip('/proc/net/snmp', 'Ip:', 'ReasmOKs'), ip('/proc/net/netstat', 'IpExt:', 'ReasmOverlaps'),\n\
         \x20   ip('/proc/net/snmp', 'Ip:', 'ReasmFails'), ip6('Ip6ReasmOKs'), ip6('Ip6ReasmFails'), ip6('Ip6InHdrErrors'))\n\
         udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         udp.bind(('fd00::2', 5000))\n\
         udp.settimeout(1)\n\
         time.sleep(0.5)\n\
         before = counts()\n\
         sendp(rdpcap({:?}), iface='up0', verbose=False)\n\
         time.sleep(0.5)\n\
         print(*[a - b for a, b in zip(counts(), before)], len(udp.recv(100)))\n",
        file.display().to_string()
    );
    let out = std::process::Command::new("unshare")
        .args(["-n", "/usr/bin/python3", "-c", &host])
        .output()
        .expect("unshare (util-linux)");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = "IPv4 reassembled, overlapping, failed; IPv6 reassembled, failed, header errors; UDP bytes received";
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3 1 2 2 1 2 54", "{said}");
}

/// pcapng files read as tshark reads them, in sections of either byte order: a simple packet
/// block's packet is its original length of data, not the padding after it (a 61-byte frame
/// read as 64), and an obsolete packet block's timestamp is its high 32 bits, then its low
/// (read as one little-endian number, the halves were swapped); and what the draft tells
/// readers to take, which were refused: option lists without their end marker (in a
/// packet's block and the section's), an interface's reserved field not zero, an `if_tzone`
/// of 4 bytes, a comment that is not UTF-8. The files are written here by Python's struct,
/// byte by byte as the pcapng draft lays them out.
#[test]
fn simple_and_obsolete_packet_blocks_read_as_tshark_reads_them() {
    let dir = scratch_dir("pcapng-blocks");
    let script = r#"
import struct, sys
from scapy.all import Ether, IP, UDP, Raw
frame = bytes(Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='203.0.113.9')/UDP()/Raw(b'x' * 19))
assert len(frame) == 61
pad = lambda b: b + b'\0' * (-len(b) % 4)
def block(e, kind, body):
    total = 12 + len(body)
    return struct.pack(e + 'II', kind, total) + body + struct.pack(e + 'I', total)
opt = lambda e, code, value: struct.pack(e + 'HH', code, len(value)) + pad(value)
end = lambda e: struct.pack(e + 'HH', 0, 0)
ts = 1700000000 * 10**6 + 250000
for e, name in (('<', 'little'), ('>', 'big')):
    shb = block(e, 0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1))
    idb = block(e, 1, struct.pack(e + 'HHI', 1, 0, 0))
    spb = block(e, 3, struct.pack(e + 'I', len(frame)) + pad(frame))
    opb = block(e, 2, struct.pack(e + 'HHIIII', 0, 0, ts >> 32, ts & 0xffffffff, len(frame), len(frame)) + pad(frame))
    open(sys.argv[1] + '/' + name + '.pcapng', 'wb').write(shb + idb + spb + opb)
    epb = lambda options: block(e, 6, struct.pack(e + 'IIIII', 0, ts >> 32, ts & 0xffffffff, len(frame), len(frame)) + pad(frame) + options)
    odd = {
        'no-end-of-options': shb + idb + epb(opt(e, 1, b'a comment')),
        'section-options-without-end': block(e, 0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1) + opt(e, 2, b'hw')) + idb + epb(b''),
        'reserved-not-zero': shb + block(e, 1, struct.pack(e + 'HHI', 1, 7, 0)) + epb(b''),
        'tzone-of-four-bytes': shb + block(e, 1, struct.pack(e + 'HHI', 1, 0, 0) + opt(e, 10, b'\0\0\0\0') + end(e)) + epb(b''),
        'comment-not-utf8': shb + idb + epb(opt(e, 1, b'\xff\xfe') + end(e)),
    }
    for what, data in odd.items():
        open(sys.argv[1] + '/' + name + '-' + what + '.pcapng', 'wb').write(data)
"#;
    let made = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let odd = [
        "no-end-of-options",
        "section-options-without-end",
        "reserved-not-zero",
        "tzone-of-four-bytes",
        "comment-not-utf8",
    ];
    for name in ["little", "big"]
        .into_iter()
        .flat_map(|e| std::iter::once(e.to_string()).chain(odd.map(|o| format!("{e}-{o}"))))
    {
        let file = dir.join(format!("{name}.pcapng"));
        let theirs: Vec<(usize, u64)> =
            tshark(&file, &["-T", "fields", "-e", "frame.cap_len", "-e", "frame.time_epoch"])
                .lines()
                .map(|l| {
                    let (len, time) = l.split_once('\t').unwrap();
                    // A simple packet block has no time: tshark says none, transitd stamps 0.
                    let (s, ns) = time.split_once('.').unwrap_or(("0", "0"));
                    (len.parse().unwrap(), s.parse::<u64>().unwrap() * 1_000_000_000 + ns.parse::<u64>().unwrap())
                })
                .collect();
        let ours: Vec<(usize, u64)> = read_frames(&file).iter().map(|f| (f.bytes.len(), f.timestamp_ns)).collect();
        let last = theirs.last().copied();
        assert_eq!(last, Some((61, 1_700_000_000_250_000_000)), "{name}: tshark's reading");
        assert_eq!(ours, theirs, "{name}: ours (left), tshark's (right)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An interface's timestamp options are read as tshark 4.0 reads them: only before the end
/// of its options (pcapng draft: `opt_endofopt` "delimits the end of the optional fields"),
/// and only the first `if_tsresol` of 1 byte and `if_tsoffset` of 8 (the draft's lengths),
/// one of another length skipped. pcap-parser's resolution is the last `if_tsresol` of any
/// length, past the end too, and transitd took the first `if_tsoffset` of any length past
/// 8, past the end too: packets were stamped seconds, or years, off tshark's time. After
/// the end of options, an option that claims more bytes than its block holds is no
/// damage (tshark reads on). Python's struct writes the files in either byte order.
#[test]
fn interface_timestamp_options_are_read_as_tshark_reads_them() {
    let dir = scratch_dir("pcapng-timestamps");
    let script = r#"
import struct, sys
from scapy.all import Ether, IP, UDP, Raw
frame = bytes(Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='203.0.113.9')/UDP()/Raw(b'x' * 19))
pad = lambda b: b + b'\0' * (-len(b) % 4)
# 1_700_000_000.25 s in ticks of the default resolution, microseconds.
ts = 1700000000 * 10**6 + 250000
for e, name in (('<', 'little'), ('>', 'big')):
    def block(kind, body):
        return struct.pack(e + 'II', kind, 12 + len(body)) + body + struct.pack(e + 'I', 12 + len(body))
    opt = lambda code, value: struct.pack(e + 'HH', code, len(value)) + pad(value)
    end = struct.pack(e + 'HH', 0, 0)
    seconds = lambda s: struct.pack(e + 'q', s)
    # After the end of options, an option claiming 100 bytes where 4 are left: not read.
    junk = struct.pack(e + 'HH', 1, 100) + b'note'
    shb = lambda options: block(0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1) + options)
    idb = lambda options: block(1, struct.pack(e + 'HHI', 1, 0, 0) + options)
    epb = lambda options: block(6, struct.pack(e + 'IIIII', 0, ts >> 32, ts & 0xffffffff, len(frame), len(frame)) + pad(frame) + options)
    files = {
        'tsoffset-after-the-end': shb(b'') + idb(end + opt(14, seconds(100))) + epb(b''),
        'tsoffset-of-12-bytes': shb(b'') + idb(opt(14, seconds(100) + b'\0' * 4) + end) + epb(b''),
        'tsoffset-of-12-bytes-then-8': shb(b'') + idb(opt(14, seconds(200) + b'\0' * 4) + opt(14, seconds(-100)) + end) + epb(b''),
        'tsresol-after-the-end': shb(b'') + idb(opt(14, seconds(100)) + end + opt(9, b'\x09')) + epb(b''),
        'tsresol-of-2-bytes': shb(b'') + idb(opt(9, b'\x09\x00') + end) + epb(b''),
        'tsresol-twice': shb(b'') + idb(opt(9, b'\x09') + opt(9, b'\x07') + end) + epb(b''),
        'junk-after-the-end': shb(end + junk) + idb(end + junk) + epb(end + junk),
    }
    for what, data in files.items():
        open('%s/%s-%s.pcapng' % (sys.argv[1], name, what), 'wb').write(data)
"#;
    let made = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // tshark's times, nanoseconds since 1970: the packet's 1_700_000_000.25 s in microseconds,
    // moved by the offset in force, or read in the resolution in force.
    let expected = [
        ("tsoffset-after-the-end", 1_700_000_000_250_000_000u64),
        ("tsoffset-of-12-bytes", 1_700_000_000_250_000_000),
        ("tsoffset-of-12-bytes-then-8", 1_699_999_900_250_000_000),
        ("tsresol-after-the-end", 1_700_000_100_250_000_000),
        ("tsresol-of-2-bytes", 1_700_000_000_250_000_000),
        // Read in nanoseconds, the first resolution, not in 10^-7 s, the second.
        ("tsresol-twice", 1_700_000_000_250_000),
        ("junk-after-the-end", 1_700_000_000_250_000_000),
    ];
    for (case, time) in expected {
        for order in ["little", "big"] {
            let name = format!("{order}-{case}");
            let file = dir.join(format!("{name}.pcapng"));
            let theirs: Vec<u64> = tshark(&file, &["-T", "fields", "-e", "frame.time_epoch"])
                .lines()
                .map(|l| {
                    let (s, ns) = l.split_once('.').unwrap();
                    s.parse::<u64>().unwrap() * 1_000_000_000 + format!("{ns:0<9}")[..9].parse::<u64>().unwrap()
                })
                .collect();
            assert_eq!(theirs, [time], "{name}: tshark's reading");
            let ours: Vec<u64> = read_frames(&file).iter().map(|f| f.timestamp_ns).collect();
            assert_eq!(ours, theirs, "{name}: ours (left), tshark's (right)");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kuznetzov's modified pcap (magic 0xa1b2cd34; each record header 8 bytes longer:
/// interface index, protocol, packet type, padding) reads as tshark reads it, in either
/// byte order: a real capture's records rewritten so by Python's struct, the further bytes
/// not zero, give that capture's frames, with tshark's lengths and times. It was refused.
/// The nanosecond pcap (magic 0xa1b23c4d), which pcap-file reads, is checked beside it.
#[test]
fn modified_and_nanosecond_pcap_read_as_tshark_reads_them_in_either_byte_order() {
    let source = pcap("real/zeek-communityid-tcp.pcap");
    let dir = scratch_dir("modified-pcap");
    let script = r#"
import struct, sys
src = open(sys.argv[1], 'rb').read()
e = '<' if src[:4] == b'\xd4\xc3\xb2\xa1' else '>'
records, at = [], 24
while at < len(src):
    ts, frac, cap, orig = struct.unpack_from(e + 'IIII', src, at)
    records.append((ts, frac, cap, orig, src[at + 16:at + 16 + cap]))
    at += 16 + cap
for order, name in (('<', 'little'), ('>', 'big')):
    out = struct.pack(order + 'IHHiIII', 0xa1b2cd34, *struct.unpack_from(e + 'HHiIII', src, 4))
    for i, (ts, frac, cap, orig, data) in enumerate(records):
        # interface 2, protocol ETH_P_IP, packet type host or outgoing, padding 0xee
        out += struct.pack(order + 'IIIIIHBB', ts, frac, cap, orig, 2, 0x0800, 4 * (i % 2), 0xee) + data
    open(sys.argv[2] + '/' + name + '.pcap', 'wb').write(out)
    out = struct.pack(order + 'IHHiIII', 0xa1b23c4d, *struct.unpack_from(e + 'HHiIII', src, 4))
    for ts, frac, cap, orig, data in records:
        out += struct.pack(order + 'IIII', ts, frac * 1000, cap, orig) + data
    open(sys.argv[2] + '/nsec-' + name + '.pcap', 'wb').write(out)
"#;
    let made =
        std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&source).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let frames = read_frames(&source);
    assert!(frames.iter().any(|f| (f.bytes.len() as u32) < f.wire_len), "a frame cut by the snap length");
    for name in ["little", "big", "nsec-little", "nsec-big"] {
        let file = dir.join(format!("{name}.pcap"));
        let theirs: Vec<(usize, u32, u64)> =
            tshark(&file, &["-T", "fields", "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.time_epoch"])
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    let (s, frac) = f[2].split_once('.').unwrap();
                    let ns =
                        s.parse::<u64>().unwrap() * 1_000_000_000 + format!("{frac:0<9}")[..9].parse::<u64>().unwrap();
                    (f[0].parse().unwrap(), f[1].parse().unwrap(), ns)
                })
                .collect();
        let ours = read_frames(&file);
        assert_eq!(theirs.len(), frames.len(), "{name}: tshark reads the source's frames");
        let ours_read: Vec<(usize, u32, u64)> =
            ours.iter().map(|f| (f.bytes.len(), f.wire_len, f.timestamp_ns)).collect();
        assert_eq!(ours_read, theirs, "{name}: ours (left), tshark's (right)");
        assert!(ours.iter().zip(&frames).all(|(a, b)| a.bytes == b.bytes), "{name}: not the source's frames");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pcapng block whose lengths do not hold together is malformed, not the file cut short,
/// which a block that runs past its own length was said to be. So is a block with an option
/// that runs past its end (before the end of options): pcap-parser stopped reading options
/// there without a word, and the file was read on; and an obsolete packet block too short
/// for its fields (it was skipped) or its packet (it was cut). tshark is the oracle: it
/// calls each file damaged or corrupt, or cut short, after the same frames transitd reads.
/// The files are a real capture with its third packet's block broken, or another block put
/// before it, by Python's struct.
#[test]
fn malformed_pcapng_blocks_are_told_from_a_file_cut_short() {
    let dir = scratch_dir("malformed-pcapng");
    let script = r#"
import struct, sys
src = open(sys.argv[1], 'rb').read()
blocks, at = [], 0
while at < len(src):
    length = struct.unpack_from('<I', src, at + 4)[0]
    blocks.append(src[at:at + length])
    at += length
k = [i for i, b in enumerate(blocks) if struct.unpack_from('<I', b)[0] == 6][2]
before, block, after = b''.join(blocks[:k]), blocks[k], b''.join(blocks[k + 1:])
def put(b, at, value):
    b = bytearray(b)
    struct.pack_into('<I', b, at, value)
    return bytes(b)
odd = block[:-4] + b'\0\0'
# The block's options replaced by a flags option of 8 bytes (outbound, then zeros).
caplen = struct.unpack_from('<I', block, 20)[0]
flagged = block[:28 + caplen + -caplen % 4] + struct.pack('<HHIIHH', 2, 8, 2, 0, 0, 0)
flagged = put(flagged, 4, len(flagged) + 4) + struct.pack('<I', len(flagged) + 4)
# Blocks as the draft lays them out, in the capture's byte order, each with an option that
# claims 100 bytes where 4 are left (tshark: "Not enough data to handle option of length
# 100"); and obsolete packet blocks too short for their fields or their packet.
def framed(kind, body):
    return struct.pack('<II', kind, 12 + len(body)) + body + struct.pack('<I', 12 + len(body))
overrun = struct.pack('<HH', 1, 100) + b'note'
packet = block[28:28 + caplen + -caplen % 4]
obsolete = lambda cap, body: framed(2, struct.pack('<HHIIII', 0, 0, 0, 0, cap, caplen) + body)
names = struct.pack('<HH4s4sHH', 1, 8, bytes([192, 0, 2, 1]), b'a.b\0', 0, 0)
files = {
    'captured-length-past-the-block': before + put(block, 20, len(block) + 100) + after,
    'lengths-differ': before + put(block, len(block) - 4, len(block) + 4) + after,
    'length-not-a-multiple-of-4': before + put(odd, 4, len(odd) + 4) + struct.pack('<I', len(odd) + 4) + after,
    'shorter-than-its-fixed-fields': before + struct.pack('<IIII', 6, 16, 0, 16),
    'length-past-any-block': before + put(block, 4, 0x7ffffff0) + after,
    'cut-short': before + block[:40],
    'flags-option-not-4-bytes': before + flagged + after,
    'option-past-the-block': before + framed(6, block[8:28] + packet + overrun) + after,
    'interface-option-past-the-block': before + framed(1, struct.pack('<HHI', 1, 0, 0) + overrun) + block + after,
    # A new section, with the capture's interface described again.
    'section-option-past-the-block':
        before + framed(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1) + overrun) + blocks[1] + block + after,
    'statistics-option-past-the-block': before + framed(5, struct.pack('<III', 0, 0, 0) + overrun) + block + after,
    'names-option-past-the-block': before + framed(4, names + overrun) + block + after,
    'obsolete-option-past-the-block': before + obsolete(caplen, packet + overrun) + after,
    'obsolete-packet-past-the-block': before + obsolete(caplen + 100, packet) + after,
    'obsolete-shorter-than-its-fields': before + framed(2, struct.pack('<HHIII', 0, 0, 0, 0, 0)) + after,
}
for name, data in files.items():
    open(sys.argv[2] + '/' + name + '.pcapng', 'wb').write(data)
"#;
    let source = pcap("real/zeek-vlan-pcp-dei.pcapng");
    let made =
        std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&source).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for name in [
        "captured-length-past-the-block",
        "lengths-differ",
        "length-not-a-multiple-of-4",
        "shorter-than-its-fixed-fields",
        "length-past-any-block",
        "cut-short",
        "flags-option-not-4-bytes",
        "option-past-the-block",
        "interface-option-past-the-block",
        "section-option-past-the-block",
        "statistics-option-past-the-block",
        "names-option-past-the-block",
        "obsolete-option-past-the-block",
        "obsolete-packet-past-the-block",
        "obsolete-shorter-than-its-fields",
    ] {
        let file = dir.join(format!("{name}.pcapng"));
        let shark = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&file)
            .args(["-T", "fields", "-e", "frame.number"])
            .output()
            .unwrap();
        let (theirs, said) =
            (String::from_utf8_lossy(&shark.stdout).lines().count(), String::from_utf8_lossy(&shark.stderr));
        let mut reader = transitd::io::capture::CaptureReader::open(&file).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut ours = 0;
        let error = loop {
            match reader.next_into(&mut buf) {
                Ok(Some(_)) => ours += 1,
                Ok(None) => break "none".to_string(),
                Err(e) => break e.to_string(),
            }
        };
        assert_eq!((ours, theirs), (2, 2), "{name}: ours (left), tshark's (right); {error}; {said}");
        let cut_short = said.contains("cut short");
        assert!(cut_short || said.contains("damaged or corrupt"), "{name}: tshark says {said}");
        assert_eq!(cut_short, name == "cut-short", "{name}: tshark says {said}");
        assert_eq!(error.contains("cut short"), cut_short, "{name}: {error}; tshark: {said}");
        assert!(cut_short || error.contains("malformed") || error.contains("larger than"), "{name}: {error}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A packet the capturing host sent is no arrival: a Linux cooked capture's packet type 4
/// (outgoing; SLL and SLL2), as `tcpdump -i any` on a router records each forwarded packet a
/// second time, and a pcapng packet whose flags say outbound (either byte order; an enhanced
/// packet block's `epb_flags`, or the obsolete packet block's `pack_flags`, which were not
/// read), flags before the end of the block's options only (an enhanced block's flags after
/// it were read: its packet skipped, where tshark reads it as received). Replay skips and
/// counts them, `match --config` reports them as `skip outgoing`, and `match -Y` numbers and
/// reads them as tshark does. They were replayed as arrivals: each forwarded packet counted
/// twice. tshark (`sll.pkttype`, `frame.packet_flags_direction`) is the oracle; Python's
/// struct writes the files.
#[test]
fn packets_the_capturing_host_sent_are_not_replayed_as_arrivals() {
    let dir = scratch_dir("outgoing");
    let script = r#"
import struct, sys
from scapy.all import Ether, IP, UDP, Raw
udp = UDP(sport=5000, dport=53) / Raw(b'q' * 20)
packet = lambda i: bytes(IP(src='198.51.100.9', dst='203.0.113.%d' % (i + 1)) / udp)
mac = bytes.fromhex('020000000009') + b'\0\0'
# Host, outgoing, broadcast, outgoing.
types = (0, 4, 1, 4)
for linktype, link in ((113, lambda t: struct.pack('>HHH8sH', t, 1, 6, mac, 0x0800)),
                       (276, lambda t: struct.pack('>HHIHBB8s', 0x0800, 0, 2, 1, t, 6, mac))):
    out = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)
    for i, t in enumerate(types):
        frame = link(t) + packet(i)
        out += struct.pack('<IIII', 1700000000 + i, 0, len(frame), len(frame)) + frame
    open('%s/%d.pcap' % (sys.argv[1], linktype), 'wb').write(out)
pad = lambda b: b + b'\0' * (-len(b) % 4)
# No flags, inbound, outbound, outbound with a reception type (unicast), flags of 0, and
# outbound flags after the end of options, which tshark does not read: no direction.
flags = (None, 1, 2, 6, 0, 'past the end')
end = lambda e: struct.pack(e + 'HH', 0, 0)
# The enhanced packet block (6), and the obsolete packet block (2), whose interface and
# drops count are 16 bits each.
fixed = {6: lambda e, i, n: struct.pack(e + 'IIIII', 0, 0, i, n, n),
         2: lambda e, i, n: struct.pack(e + 'HHIIII', 0, 0, 0, i, n, n)}
for (e, name), (kind, suffix) in [(o, k) for o in (('<', 'little'), ('>', 'big')) for k in ((6, ''), (2, '-obsolete'))]:
    def block(kind, body):
        return struct.pack(e + 'II', kind, 12 + len(body)) + body + struct.pack(e + 'I', 12 + len(body))
    out = block(0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1)) + block(1, struct.pack(e + 'HHI', 1, 0, 0))
    for i, f in enumerate(flags):
        frame = bytes(Ether(dst='02:00:00:00:00:01') / IP(packet(i)))
        if f is None:
            options = b''
        elif f == 'past the end':
            options = end(e) + struct.pack(e + 'HHI', 2, 4, 2) + end(e)
        else:
            options = struct.pack(e + 'HHI', 2, 4, f) + end(e)
        out += block(kind, fixed[kind](e, i, len(frame)) + pad(frame) + options)
    open('%s/%s%s.pcapng' % (sys.argv[1], name, suffix), 'wb').write(out)
"#;
    let made = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let snap = std::sync::Arc::new(snapshot(CATCH_ALL));
    let files =
        ["113.pcap", "276.pcap", "little.pcapng", "big.pcapng", "little-obsolete.pcapng", "big-obsolete.pcapng"];
    for name in files {
        let file = dir.join(name);
        let sent: BTreeSet<u64> =
            tshark_frames(&file, "sll.pkttype == 4 or frame.packet_flags_direction == 2", &[]).into_iter().collect();
        let total = frame_count(&file);
        assert_eq!(sent.len(), 2, "{name}: tshark's outgoing frames");
        let summary = replay(snap.clone(), &file, None).unwrap();
        assert_eq!((summary.outgoing, summary.stats.rx_frames), (2, total - 2), "{name}");
        assert_eq!(summary.stats.tx_frames, total - 2, "{name}: the arrivals are encapsulated");
        assert!(summary.render(&snap).contains("sent by the capturing host"), "{name}");
        let (report, read) = transitd::dryrun::dry_run(&snap, &file, None);
        read.unwrap();
        let skipped: BTreeSet<u64> = report
            .frames
            .iter()
            .filter(|f| f.verdict == "skip" && f.reason == Some("outgoing"))
            .map(|f| f.frame)
            .collect();
        assert_eq!(skipped, sent, "{name}: match --config (left), tshark (right)");
        let every: BTreeSet<u64> = (1..=total).collect();
        assert_eq!(transitd_frames(&file, "udp.dstport == 53"), every, "{name}: match -Y reads them all");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record that ends inside its Linux cooked (SLL, SLL2) or loopback (BSD's, OpenBSD's, PPP
/// behind BSD's) link header, whole or cut by the snap length, holds no packet: tshark shows
/// the link layer alone, malformed or cut. The pipeline drops it as `truncated`, as it drops
/// an Ethernet frame cut inside its header; it was passed as `not_ip` behind the Ethernet
/// header replay gave it. A whole header of no IP (ARP, OSI) is still `not_ip`. tshark is the
/// oracle; Python's struct writes the files.
#[test]
fn a_record_cut_inside_its_link_header_is_truncated() {
    let dir = scratch_dir("cut-link-header");
    let script = r#"
import struct, sys
mac = bytes.fromhex('020000000009') + b'\0\0'
sll = struct.pack('>HHH8sH', 0, 1, 6, mac, 0x0806)
sll2 = struct.pack('>HHIHBB8s', 0x0806, 0, 2, 1, 0, 6, mac)
arp = bytes.fromhex('0001080006040001') + bytes(20)
# (link type, [(record, its length on the wire)]): whole records of no IP first, then
# records cut inside the link header, whole and by a snap length, and of no byte.
files = {
    113: [(sll + arp, 44), (sll[:10], 10), (sll[:15], 15), (sll[:10], 60), (b'', 0)],
    276: [(sll2 + arp, 48), (sll2[:10], 10), (sll2[:19], 19), (sll2[:12], 60)],
    0: [(struct.pack('<I', 7) + bytes(20), 24), (b'\x02\x00', 2), (b'\x02\x00\x00', 3), (b'\x02\x00', 40),
        (bytes.fromhex('ff03'), 2), (bytes.fromhex('ff0300'), 3), (b'', 0)],
    108: [(struct.pack('>I', 7) + bytes(20), 24), (b'\x00\x00\x00', 3), (b'\x00\x00', 40)],
}
for linktype, records in files.items():
    out = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)
    for i, (data, wire) in enumerate(records):
        out += struct.pack('<IIII', 1700000000 + i, 0, len(data), wire) + data
    open('%s/%d.pcap' % (sys.argv[1], linktype), 'wb').write(out)
"#;
    let made = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let snap = snapshot(CATCH_ALL);
    // tshark reads the link layer and nothing behind it, and says why: malformed, or cut.
    let cut_in_link =
        r#"(_ws.malformed or frame.cap_len < frame.len) and frame.protocols in {"sll", "null", "null:ppp"}"#;
    for link_type in [113, 276, 0, 108] {
        let file = dir.join(format!("{link_type}.pcap"));
        let cut: BTreeSet<u64> = tshark_frames(&file, cut_in_link, &[]).into_iter().collect();
        let total = frame_count(&file);
        let after_the_first: BTreeSet<u64> = (2..=total).collect();
        assert_eq!(cut, after_the_first, "link type {link_type}: tshark reads the first frame whole");
        let (report, read) = transitd::dryrun::dry_run(&snap, &file, None);
        read.unwrap();
        let verdicts: Vec<String> =
            report.frames.iter().map(|f| format!("{} {}", f.verdict, f.reason.unwrap_or("-"))).collect();
        let mut expected = vec!["drop truncated".to_string(); total as usize];
        expected[0] = "pass not_ip".to_string();
        assert_eq!(verdicts, expected, "link type {link_type}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
