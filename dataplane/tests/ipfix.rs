//! IPFIX export checked by collectors nobody here wrote. `transitd replay` with `[ipfix]`
//! sends its flow records to a UDP socket of the test's; tshark's IPFIX dissector reads
//! them back, and they must be the flows tshark finds in the replayed capture (5-tuple,
//! sampled packets, octets as the IP length fields count them) with the customer, verdict
//! and reason `transitd match --config` reports for each of their frames, sampled one in N
//! exactly as RFC 5475's systematic count-based sampling picks them. nfdump's collector
//! (`nfcapd`) reads the same export and agrees on every flow's packets and octets.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A flow as both sides describe it: addresses, ports, protocol, customer, what became of
/// its packets (RFC 7270's `forwardingStatus`: the verdict, but for packets answered in their
/// place), reason, and whether it entered from a customer's domain (`ingressVRFID` set).
type FlowKey = (String, String, u16, u16, u8, String, String, String, bool);

/// Packets and octets of each flow.
type Flows = BTreeMap<FlowKey, (u64, u64)>;

/// `config` with an `[ipfix]` section sending to `collector`, sampling one in `sample`, in a
/// file of its own for each call: the tests run on threads of one process, and two wrote the
/// same case and rate to one path with their own collectors (one exported to the other's).
fn with_ipfix(config: &Path, collector: &str, sample: u32) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let text = std::fs::read_to_string(config).unwrap();
    let path = std::env::temp_dir().join(format!(
        "transitd-ipfix-{}-{sample}-{}-{n}.toml",
        config.file_stem().unwrap().to_string_lossy(),
        std::process::id()
    ));
    // Relative paths in the configuration (lists, plans) stay where they were.
    let text = text.replace("file = \"", &format!("file = \"{}/", config.parent().unwrap().display()));
    std::fs::write(&path, format!("{text}\n[ipfix]\ncollector = \"{collector}\"\nsample = {sample}\n")).unwrap();
    path
}

fn replay(config: &Path, capture: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config"])
        .arg(config)
        .arg("--in")
        .arg(capture)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The flows tshark finds in `capture`'s frames numbered 1, 1 + N, 1 + 2N, ..., named as
/// `transitd match --config` decides each frame. A flow is the outermost IP header's (GRE
/// from a customer's router is a flow of protocol 47, whatever it carries); the ports are the
/// first TCP or UDP header's when that is the outer protocol.
fn expected(config: &Path, capture: &Path, sample: u64) -> Flows {
    let fields = [
        "frame.number",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
        "ip.proto",
        "ip.len",
        "ipv6.plen",
        "ipv6.nxt",
        "frame.protocols",
    ];
    let mut args = vec!["-T", "fields", "-E", "occurrence=f"];
    for f in fields {
        args.extend(["-e", f]);
    }
    let table = tshark(capture, &args);
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["match", "--json", "--config"])
        .arg(config)
        .arg("-r")
        .arg(capture)
        .output()
        .unwrap();
    let decided: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_frame: BTreeMap<u64, &serde_json::Value> =
        decided["frames"].as_array().unwrap().iter().map(|f| (f["frame"].as_u64().unwrap(), f)).collect();
    let mut flows = Flows::new();
    for line in table.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let number: u64 = c[0].parse().unwrap();
        if !(number - 1).is_multiple_of(sample) {
            continue;
        }
        // Which IP header is the outer one (`ip.src` is an inner IPv4 header's in IPv6 GRE).
        let layers: Vec<&str> = c[13].split(':').collect();
        let v6 = match layers.iter().find(|l| **l == "ip" || **l == "ipv6") {
            Some(&l) => l == "ipv6",
            None => continue, // not IP: no flow
        };
        let (src, dst) = if v6 { (c[3], c[4]) } else { (c[1], c[2]) };
        // The outer header's protocol (these captures have no IPv6 extension headers).
        let protocol: u8 = if v6 { c[12].parse().unwrap() } else { c[9].parse().unwrap() };
        let port = |i: usize| c[i].parse::<u16>().unwrap_or(0);
        let (sport, dport) = match protocol {
            6 => (port(5), port(6)),
            17 => (port(7), port(8)),
            _ => (0, 0),
        };
        let octets: u64 = if v6 { c[11].parse::<u64>().unwrap() + 40 } else { c[10].parse().unwrap() };
        let f = by_frame[&number];
        let name = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        // Entered from a customer's domain: GRE on the wire (the outer header's protocol)
        // that a tunnel took (a customer named).
        let from_customer = protocol == 47 && !name(&f["customer"]).is_empty();
        // RFC 7270: a packet answered by an ICMP error went no further (dropped), one
        // answered here (a ping of our side of a tunnel, a challenged SYN) was consumed; the
        // frame transmitted is the answer, not the packet.
        let (verdict, reason) = (name(&f["verdict"]), name(&f["reason"]));
        let fate = match (verdict.as_str(), reason.as_str()) {
            ("tx", "icmp_too_big" | "icmp_time_exceeded") => "drop",
            ("tx", "echo_reply" | "syn_challenge") => "consumed",
            (verdict, _) => verdict,
        }
        .to_string();
        let key = (
            src.to_string(),
            dst.to_string(),
            sport,
            dport,
            protocol,
            name(&f["customer"]),
            fate,
            reason,
            from_customer,
        );
        let e = flows.entry(key).or_default();
        e.0 += 1;
        e.1 += octets;
    }
    flows
}

/// The datagrams that reached `socket`, as a pcap tshark can read (made-up Ethernet, IP
/// and UDP headers around each).
fn received(socket: &UdpSocket, port: u16, name: &str) -> PathBuf {
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let path = std::env::temp_dir().join(format!("transitd-ipfix-{name}-{port}-{}.pcap", std::process::id()));
    let mut writer = pcap_file::pcap::PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(40000, port)
            .write(&mut frame, &buf[..n])
            .unwrap();
        let packet = pcap_file::pcap::PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame);
        writer.write_packet(&packet).unwrap();
    }
    path
}

/// The flow records in `export` as tshark's IPFIX dissector reads them.
fn dissected(export: &Path, port: u16, sample: u64) -> Flows {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(export)
        .args(["-d", &format!("udp.port=={port},cflow"), "-T", "json"])
        .output()
        .unwrap();
    let packets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut flows = Flows::new();
    for p in packets.as_array().unwrap() {
        let cflow = p["_source"]["layers"]["cflow"].as_object().unwrap();
        assert_eq!(cflow["cflow.version"], "10");
        // Flow records: the data sets of templates 256 and 257, not the reliability
        // statistics' (258).
        let flow_set = |k: &str| k.starts_with("Set ") && (k.contains("[id=256]") || k.contains("[id=257]"));
        for (set, records) in cflow.iter().filter(|(k, _)| flow_set(k)) {
            for (_, r) in records.as_object().unwrap().iter().filter(|(k, _)| k.starts_with("Flow ")) {
                let s = |k: &str| r[k].as_str().map(str::to_string);
                let n = |k: &str| s(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{set}: no {k}"));
                let reason_hex = s("cflow.enterprise_private_entry").unwrap_or_default();
                let reason: Vec<u8> = reason_hex
                    .split(':')
                    .filter(|h| !h.is_empty())
                    .map(|h| u8::from_str_radix(h, 16).unwrap())
                    .collect();
                let reason = String::from_utf8(reason).unwrap();
                // RFC 7270's drop code of a packet answered by an ICMP error: what it says.
                let drop_code = &r["Forwarding Status"]["cflow.forwarding_status_drop_code"];
                match reason.as_str() {
                    "icmp_too_big" => assert_eq!(drop_code, "5", "{set}: fragmentation and DF set"),
                    "icmp_time_exceeded" => assert_eq!(drop_code, "9", "{set}: bad TTL"),
                    _ => {}
                }
                let status = &r["Forwarding Status"]["cflow.forwarding_status"];
                let fate = match status.as_str() {
                    Some("1") => "tx",
                    Some("2") => "drop",
                    // Consumed: passed to the host (punt adjacency, 1) or used up here.
                    Some("3") if r["Forwarding Status"]["cflow.forwarding_status_consume_code"] == "1" => "pass",
                    Some("3") => "consumed",
                    other => panic!("forwarding status {other:?}"),
                };
                // RFC 5477: one in N, systematic count-based, is 1 taken and N - 1 skipped.
                assert_eq!(n("cflow.selector_algorithm"), 1, "{set}: systematic count-based");
                assert_eq!(n("cflow.sampling_packet_interval"), 1, "{set}: one packet taken");
                assert_eq!(n("cflow.sampling_packet_space") + 1, sample, "{set}: one in {sample}");
                let key = (
                    s("cflow.srcaddr").or(s("cflow.srcaddrv6")).unwrap(),
                    s("cflow.dstaddr").or(s("cflow.dstaddrv6")).unwrap(),
                    n("cflow.srcport") as u16,
                    n("cflow.dstport") as u16,
                    n("cflow.protocol") as u8,
                    s("cflow.vrfname").unwrap_or_default(),
                    fate.to_string(),
                    reason,
                    n("cflow.ingress_vrfid") != 0,
                );
                // Entered from the customer it names, or left into it, or (a hairpin) both.
                if !s("cflow.vrfname").unwrap_or_default().is_empty() {
                    assert!(n("cflow.ingress_vrfid") != 0 || n("cflow.egress_vrfid") != 0, "{set}: {r}");
                }
                let e = flows.entry(key).or_default();
                e.0 += n("cflow.packets");
                e.1 += n("cflow.octets");
            }
        }
    }
    flows
}

/// A capture, its configuration, and the sampling rates tried on it.
fn cases() -> Vec<(PathBuf, PathBuf, &'static [u32])> {
    vec![
        // Every verdict of the Magic Transit example: encapsulated, dropped by the firewall,
        // passed for no customer, IPv4 and IPv6.
        (root().join("examples/acme.toml"), pcap("generated/acme-ftp.pcap"), &[1, 2]),
        // Decapsulation and egress rules, GRE from customers' routers.
        (root().join("dataplane/tests/data/tunnel-edge.toml"), pcap("generated/tunnel-edge.pcap"), &[1]),
        // Long TCP flows (many packets each), for the aggregation, sampled and not.
        (root().join("examples/acme.toml"), pcap("real/zeek-communityid-tcp.pcap"), &[1, 3]),
    ]
}

#[test]
fn the_exported_flows_are_those_tshark_finds_with_the_verdicts_transitd_reports() {
    for (config, capture, rates) in cases() {
        for &sample in rates {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = socket.local_addr().unwrap().port();
            let cfg = with_ipfix(&config, &format!("127.0.0.1:{port}"), sample);
            let said = replay(&cfg, &capture);
            let name = format!("{}-{sample}", capture.file_stem().unwrap().to_string_lossy());
            let theirs = dissected(&received(&socket, port, &name), port, u64::from(sample));
            let wanted = expected(&config, &capture, u64::from(sample));
            assert!(!wanted.is_empty());
            assert_eq!(theirs, wanted, "{name}: the export (left) and the capture (right) differ");
            let records = transitd::report::counted(theirs.len(), "flow record");
            assert!(said.contains(&format!("ipfix: {records} in ")), "{said}");
            let _ = std::fs::remove_file(cfg);
        }
    }
}

#[test]
fn nfdump_reads_the_same_flows() {
    let (config, capture, _) = cases().swap_remove(2);
    let dir = scratch_dir("nfcapd");
    // A free port for nfcapd: bound and released.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nfcapd = Command::new("nfcapd")
        .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600", "-w"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nfdump's nfcapd (apt-get install nfdump, or run .ci/run)");
    // Until nfcapd listens (a fixed half second was not always enough on a loaded machine:
    // the export went to a closed port and nfdump found no flows).
    let listening = || {
        let out = Command::new("ss").args(["-Hunl", &format!("sport = :{port}")]).output().unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    let started = std::time::Instant::now();
    while !listening() {
        assert!(started.elapsed() < Duration::from_secs(10), "nfcapd never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = with_ipfix(&config, &format!("127.0.0.1:{port}"), 1);
    replay(&cfg, &capture);
    // Until nfcapd has read what is queued on its socket (ss's Recv-Q, the second column),
    // then a moment to take in the last datagram, before it is told to stop.
    let queued = || {
        let out = Command::new("ss").args(["-Hunl", &format!("sport = :{port}")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).and_then(|q| q.parse::<u64>().ok())
    };
    let reading = std::time::Instant::now();
    while queued().is_some_and(|q| q > 0) && reading.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").args(["-TERM", &nfcapd.id().to_string()]).status();
    let _ = nfcapd.wait();
    let out = Command::new("nfdump").arg("-R").arg(&dir).args(["-q", "-N", "-o", "csv"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // nfdump's CSV: ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,...
    let mut theirs: BTreeMap<(String, String, u16, u16), (u64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())) {
        let c: Vec<&str> = line.split(',').collect();
        let e = theirs.entry((c[3].into(), c[4].into(), c[5].parse().unwrap(), c[6].parse().unwrap())).or_default();
        e.0 += c[11].parse::<u64>().unwrap();
        e.1 += c[12].parse::<u64>().unwrap();
    }
    let mut wanted: BTreeMap<(String, String, u16, u16), (u64, u64)> = BTreeMap::new();
    for (k, v) in expected(&config, &capture, 1) {
        let e = wanted.entry((k.0, k.1, k.2, k.3)).or_default();
        e.0 += v.0;
        e.1 += v.1;
    }
    assert!(wanted.len() > 1);
    assert_eq!(theirs, wanted, "nfdump's flows (left) and the capture's (right):\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(cfg);
}

/// A packet whose IP header says it is longer than what arrived counts the octets that
/// arrived (RFC 7012: octets "in incoming packets", IP header and payload): a 54-byte frame
/// claiming 65,000 bytes of IPv4 and a 74-byte one claiming 60,040 of IPv6 were exported as
/// such, a flood of them a thousand times its size at the collector. Their IP packets are
/// the frames less the 14 bytes of Ethernet header (the cap counted those too before).
/// Made by scapy, read back by tshark. The replay's summary counts its one message as one
/// (it said "1 messages").
#[test]
fn a_length_that_lies_counts_the_octets_that_arrived() {
    let dir = scratch_dir("ipfix-liar");
    let capture = dir.join("liar.pcap");
    scapy_pcap(
        &capture,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         frames = [\n\
           e/IP(src='198.51.100.9', dst='203.0.113.10', len=65000)/TCP(sport=1000, dport=80),\n\
           e/IPv6(src='2001:db8:5::9', dst='2001:db8:acbe::10', plen=60000)/TCP(sport=1001, dport=80),\n\
         ]",
    );
    let lengths: Vec<u64> =
        tshark(&capture, &["-T", "fields", "-e", "frame.len"]).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(lengths, [54, 74]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let cfg = with_ipfix(&root().join("examples/acme.toml"), &format!("127.0.0.1:{port}"), 1);
    let said = replay(&cfg, &capture);
    assert!(said.contains("ipfix: 2 flow records in 1 message to "), "{said}");
    let flows = dissected(&received(&socket, port, "liar"), port, 1);
    let _ = (std::fs::remove_dir_all(&dir), std::fs::remove_file(cfg));
    let octets: Vec<(u16, u64)> = flows.iter().map(|(k, v)| (k.2, v.1)).collect();
    assert_eq!(octets, [(1000, lengths[0] - 14), (1001, lengths[1] - 14)], "{flows:?}");
}

/// Samples the exporter never got (its queue full) are told to the collector in RFC 7011
/// §4.2's Metering Process Reliability Statistics: an options record scoped by the
/// observation domain, `ignoredPacketTotalCount` the samples lost, `ignoredOctetTotalCount`
/// their octets, and the times of the first and the last of them (`observationTimeMilliseconds`
/// twice), the fields that section lists (the packets alone were sent), once one is lost
/// (with nothing lost there are no such times: 0 there was read by tshark as 1 January 1970),
/// with the templates and again whenever more are lost. Each observation domain is told its
/// own: after a reload to another one, the new one starts from nothing (it was told the old
/// one's count). tshark's IPFIX dissector reads it.
#[test]
fn samples_lost_are_told_to_the_collector() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = collector.local_addr().unwrap().port();
    let config = with_ipfix(&root().join("examples/acme.toml"), &format!("127.0.0.1:{port}"), 10);
    let snap = Arc::new(transitd::snapshot::Snapshot::from_path(&config).unwrap());
    let snapshots = Arc::new(arc_swap::ArcSwap::new(snap.clone()));
    let samples = transitd::ipfix::Samples::new(16);
    let mut exporter = transitd::ipfix::exporter::Exporter::new(samples.clone(), snapshots.clone());
    exporter.tick(true); // the templates; nothing lost, no record
    // 2023-11-14 22:13:20.123 UTC, and 5.333 s later.
    let first_ms = 1_700_000_000_123;
    samples.lost.store(1234, Ordering::Relaxed);
    samples.lost_octets.store(98_765, Ordering::Relaxed);
    samples.first_lost_ms.store(first_ms, Ordering::Relaxed);
    samples.last_lost_ms.store(first_ms + 5_333, Ordering::Relaxed);
    exporter.tick(true); // the first count
    exporter.tick(true); // nothing new: nothing sent
    samples.lost.store(5678, Ordering::Relaxed);
    samples.lost_octets.store(456_789, Ordering::Relaxed);
    samples.last_lost_ms.store(first_ms + 60_000, Ordering::Relaxed);
    exporter.tick(true); // the new count
    // A reload to another observation domain (the domain last in `[ipfix]`, the file's last
    // section), and one sample lost under it, a minute later.
    let moved = config.with_extension("domain-2.toml");
    std::fs::write(&moved, format!("{}observation_domain = 2\n", std::fs::read_to_string(&config).unwrap())).unwrap();
    snapshots.store(Arc::new(transitd::snapshot::Snapshot::from_path(&moved).unwrap()));
    exporter.tick(true); // domain 2's templates; nothing lost there yet
    samples.lost.store(5679, Ordering::Relaxed);
    samples.lost_octets.store(456_889, Ordering::Relaxed);
    samples.first_lost_ms.store(first_ms + 61_000, Ordering::Relaxed);
    samples.last_lost_ms.store(first_ms + 61_000, Ordering::Relaxed);
    exporter.tick(true); // domain 2's count
    let export = received(&collector, port, "lost");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&export)
        .args([
            "-d",
            &format!("udp.port=={port},cflow"),
            // The messages with a reliability record.
            "-Y",
            "cflow.ignore_packets",
            "-T",
            "fields",
            "-e",
            "cflow.od_id",
            "-e",
            "cflow.ignore_packets",
            "-e",
            "cflow.ignore_octets",
            "-e",
            "cflow.observation_time_milliseconds",
        ])
        .output()
        .unwrap();
    let _ = (std::fs::remove_file(&export), std::fs::remove_file(&config), std::fs::remove_file(&moved));
    let domain = snap.ipfix.as_ref().unwrap().observation_domain;
    let rows = String::from_utf8_lossy(&out.stdout).to_string();
    let told: Vec<&str> = rows.lines().filter(|l| !l.trim().is_empty()).collect();
    // The domain twice: the message header's, and the record's scope; the first and the
    // last time, as tshark writes them.
    let first = "Nov 14, 2023 22:13:20.123000000 UTC";
    let expected = [
        format!("{domain},{domain}\t1234\t98765\t{first},Nov 14, 2023 22:13:25.456000000 UTC"),
        format!("{domain},{domain}\t5678\t456789\t{first},Nov 14, 2023 22:14:20.123000000 UTC"),
        "2,2\t1\t100\tNov 14, 2023 22:14:21.123000000 UTC,Nov 14, 2023 22:14:21.123000000 UTC".to_string(),
    ];
    assert_eq!(told, expected, "{rows}");
}
