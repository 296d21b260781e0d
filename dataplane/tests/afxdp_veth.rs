//! `transitd run` on AF_XDP in a veth/namespace lab (scripts/veth-lab): real traffic from a
//! sender namespace through transitd to a customer-router namespace, checked with tshark.
//! Needs root; each test builds and removes its own lab, one at a time.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::lab::{ACME, Lab, SERIAL, scapy_send, wait_for};
use common::*;

/// `(rx, tx)` of each queue from the final report, and whether every UMEM frame was conserved.
fn queues(report: &str) -> (Vec<(u64, u64)>, bool) {
    let rows = report
        .lines()
        .filter(|l| l.starts_with("queue "))
        .map(|l| {
            let n = |k: &str| {
                l.split(k).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
            };
            (n(" rx "), n(" tx "))
        })
        .collect();
    (rows, !report.contains("NOT CONSERVED") && report.contains("umem frames"))
}

/// `(rx packets, tx packets)` of `dev` in `ns`, as `ip -s link` reports them.
fn link_packets(lab: &Lab, ns: &str, dev: &str) -> (u64, u64) {
    let out = lab.run(ns, "ip", &["-j", "-s", "link", "show", "dev", dev]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stats = &links[0]["stats64"];
    (stats["rx"]["packets"].as_u64().unwrap(), stats["tx"]["packets"].as_u64().unwrap())
}

#[test]
fn seed_rule_is_enforced_on_the_wire_and_the_host_keeps_its_own_traffic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("ta", 1);
    let cap = lab.capture("up", "u1");
    let t = lab.transitd(ACME, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let link_before = link_packets(&lab, "dut", &lab.dev("d0"));
    // The host's own address answers while transitd runs (XDP passes what is not ours).
    let ping = lab.cmd("snd", "ping").args(["-c", "3", "-i", "0.2", "-W", "1", "10.2.0.2"]).output().unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    scapy_send(
        &lab,
        "snd",
        "[IP(dst='203.0.113.100')/TCP(sport=40000+p, dport=p, flags='S') for p in (21, 22, 20)] + [IP(dst='203.0.113.7')/UDP(dport=53)]",
    );
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let link_after = link_packets(&lab, "dut", &lab.dev("d0"));
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let (rows, conserved) = queues(&report);
    assert!(conserved, "{report}");
    assert_eq!(rows, vec![(4, 2)], "{report}");
    // The interface's own counters over the run, as `ip -s link` reads them over a window
    // inside it: the run's are at least those, and no more than a few frames of the host's
    // own beyond (ARP, and IPv6 router solicitations and MLD reports, which a slow start
    // puts inside the run and outside the window).
    let counted = |name: &str| -> u64 {
        let line = report.lines().find(|l| l.contains("during the run:")).unwrap_or_else(|| panic!("{report}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    for (name, window) in [("rx_packets", link_after.0 - link_before.0), ("tx_packets", link_after.1 - link_before.1)] {
        let run = counted(name);
        assert!(run >= window && run <= window + 20, "{name}: the run counted {run}, ip -s link {window}\n{report}");
    }
    assert!(link_after.0 - link_before.0 >= 4 + 3, "the 4 SYNs and UDP and the 3 pings arrived");

    // On the wire toward the upstream router: GRE from the anycast address to Acme's router,
    // carrying the FTP SYNs only, sent to the MAC the neighbour table holds for 10.2.0.1.
    let up_mac = lab.mac("up", "u1");
    assert!(log.contains(&format!("next hop 10.2.0.1 is at {up_mac}")), "{log}");
    let gre = tshark(
        &file,
        &[
            "-Y",
            "gre and not icmp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "eth.dst",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ],
    );
    let rows: Vec<&str> = gre.lines().collect();
    assert_eq!(
        rows,
        [
            format!("{up_mac};192.0.2.1,10.1.0.2;198.51.100.1,203.0.113.100;21"),
            format!("{up_mac};192.0.2.1,10.1.0.2;198.51.100.1,203.0.113.100;20"),
        ]
    );
    // Detached on exit.
    let link = lab.run("dut", "ip", &["-d", "link", "show", "dev", &lab.dev("d0")]);
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"), "XDP still attached");
}

/// Every IPv4 and IPv6 destination is a customer's; the next hop is configured statically,
/// so that transitd itself sends nothing that could come back.
fn catch_all(up_mac: &str) -> String {
    CATCH_ALL.replace("next_hop_mac = \"02:00:00:00:00:fe\"", &format!("next_hop_mac = \"{up_mac}\""))
}

/// Would the XDP program redirect this frame (with every destination owned)? Its rule:
/// Ethernet, at most three VLAN tags, then a whole IPv4 (20 bytes) or IPv6 (40) header whose
/// destination is not on the host's own link ([`on_the_hosts_link`]); or a fourth tag,
/// whatever follows.
fn xdp_redirects(frame: &[u8]) -> bool {
    let mut at = 12;
    for tags in 0..4 {
        let Some(t) = frame.get(at..at + 2) else { return false };
        match u16::from_be_bytes([t[0], t[1]]) {
            0x8100 | 0x88a8 | 0x9100 if tags == 3 => return true,
            0x8100 | 0x88a8 | 0x9100 => at += 4,
            // The destination ends each header.
            0x0800 => {
                let dst = frame.get(at + 18..at + 22).and_then(|d| <[u8; 4]>::try_from(d).ok());
                return dst.is_some_and(|d| !on_the_hosts_link(Ipv4Addr::from(d).into()));
            }
            0x86dd => {
                let dst = frame.get(at + 26..at + 42).and_then(|d| <[u8; 16]>::try_from(d).ok());
                return dst.is_some_and(|d| !on_the_hosts_link(Ipv6Addr::from(d).into()));
            }
            _ => return false,
        }
    }
    false
}

/// A destination on the host's own link, which the XDP program passes whatever the owned
/// prefixes say: link-local (RFC 3927, RFC 4291 §2.5.6), 224.0.0.0/24 (RFC 5771 §4), the
/// limited broadcast, IPv6 multicast of link scope or narrower (RFC 4291 §2.7).
fn on_the_hosts_link(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => a.is_link_local() || a.is_broadcast() || a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.is_unicast_link_local() || (a.is_multicast() && a.octets()[1] & 0x0f <= 2),
    }
}

/// The link-local address of `dev` in `ns` that duplicate address detection has let it
/// use (empty until then), as `ip -6 addr` reports it.
fn usable_link_local(lab: &Lab, ns: &str, dev: &str) -> String {
    let out = lab.run(ns, "ip", &["-j", "-6", "addr", "show", "dev", &lab.dev(dev), "scope", "link", "-tentative"]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // (`ip` lists the addresses the filters leave out as empty objects.)
    let addresses = links[0]["addr_info"].as_array().cloned().unwrap_or_default();
    addresses.iter().find_map(|a| a["local"].as_str()).unwrap_or_default().to_string()
}

/// Under a catch-all customer (every IPv4 and IPv6 destination its own), the host keeps its
/// own link: the upstream router resolves the host's link-local address (a neighbour
/// solicitation to its solicited-node group, RFC 4861) and pings it, and pings the host's
/// 169.254.1.2 (a BGP session's link, RFC 3927), as before transitd started. The XDP program
/// handed the host's link to the data plane: the solicitations were dropped as
/// `link_broadcast`, the router's neighbour entry failed, and the pings to 169.254.1.2 went
/// into the customer's tunnel.
#[test]
fn the_hosts_own_link_keeps_working_under_a_catch_all() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tlk", 1);
    lab.run("dut", "ip", &["addr", "add", "169.254.1.2/16", "dev", &lab.dev("d0")]);
    lab.run("up", "ip", &["addr", "add", "169.254.1.1/16", "dev", &lab.dev("u1")]);
    wait_for("the host's link-local address", Duration::from_secs(10), || {
        !usable_link_local(&lab, "dut", "d0").is_empty()
    });
    let host = format!("{}%{}", usable_link_local(&lab, "dut", "d0"), lab.dev("u1"));
    let t = lab.transitd(&catch_all(&lab.mac("up", "u1")), &[]);
    lab.run("up", "ip", &["-6", "neigh", "flush", "dev", &lab.dev("u1")]);
    let ping = |args: &[&str]| lab.cmd("up", "ping").args(["-c", "3", "-i", "0.2", "-W", "1"]).args(args).output();
    let (ping6, ping4) = (ping(&["-6", &host]).unwrap(), ping(&["169.254.1.2"]).unwrap());
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(ping6.status.success(), "ping {host}: {}\n{report}", String::from_utf8_lossy(&ping6.stdout));
    assert!(ping4.status.success(), "ping 169.254.1.2: {}\n{report}", String::from_utf8_lossy(&ping4.stdout));
}

#[test]
fn malformed_captures_are_dropped_and_forwarding_goes_on() {
    use transitd::pipeline::{Frame, HEADROOM};
    use transitd::pipeline::{Verdict, process_frame};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tb", 1);
    let config = catch_all(&lab.mac("up", "u1"));

    // What pcap replay decides for the frames that will reach transitd: Ethernet captures,
    // frames that fit the veth MTU and that the XDP program redirects.
    let snap = snapshot(&config);
    let mut files = Vec::new();
    let mut expected_drops = std::collections::BTreeMap::<&'static str, u64>::new();
    let mut expected_tx = 0u64;
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let mut spill = transitd::pipeline::Spill::new(transitd::pipeline::SPILL_SLOTS, snap.frame_size);
    // Each frame addressed to transitd's interface (the captures' own addresses are other
    // hosts', whose frames the XDP program leaves to the kernel), in a file of its own.
    let dut_mac: Vec<u8> =
        lab.mac("dut", "d0").split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect::<Vec<u8>>();
    let rewritten = std::env::temp_dir().join(format!("{}-malformed", lab.prefix));
    std::fs::create_dir_all(&rewritten).unwrap();
    for file in captures("malformed") {
        let link = tshark(&file, &["-c", "1", "-T", "fields", "-e", "frame.encap_type"]);
        if link.trim() != "1" {
            continue; // not Ethernet: tcpreplay would send the raw bytes as Ethernet
        }
        let frames: Vec<Vec<u8>> = read_frames(&file)
            .into_iter()
            .filter(|f| (14..=1514).contains(&f.bytes.len()))
            .map(|f| [&dut_mac[..], &f.bytes[6..]].concat())
            .collect();
        let file = rewritten.join(file.file_name().unwrap());
        write_pcap(&file, &frames);
        for f in read_frames(&file) {
            if f.bytes.len() > 1514 || !xdp_redirects(&f.bytes) {
                continue;
            }
            let mut buf = vec![0u8; HEADROOM + f.bytes.len()];
            buf[HEADROOM..].copy_from_slice(&f.bytes);
            let mut frame = Frame::new(&mut buf, HEADROOM, f.bytes.len(), f.wire_len, 0);
            let outcome = process_frame(&snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
            spill.clear();
            match outcome.verdict {
                Verdict::Drop(r) => *expected_drops.entry(r.name()).or_default() += 1,
                Verdict::Tx { .. } => expected_tx += 1 + u64::from(outcome.spilled),
                Verdict::Pass(_) | Verdict::Consumed(_) => {}
            }
        }
        files.push(file);
    }
    assert!(expected_drops.values().sum::<u64>() > 100, "{expected_drops:?}");

    let mut t = lab.transitd(&config, &[]);
    let mut args: Vec<String> = vec!["-q".into(), "-i".into(), lab.dev("u1"), "--pps=10000".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replayed = lab.cmd("up", "tcpreplay").args(&args).output().unwrap();
    let _ = std::fs::remove_dir_all(&rewritten);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(t.is_running(), "transitd died on malformed input:\n{}", t.log());

    // Good traffic afterwards still goes through.
    let cap = lab.capture("up", "u1");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=41000, dport=21, flags='S')]");
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let good =
        tshark(&file, &["-Y", "gre and not icmp and tcp.srcport == 41000", "-T", "fields", "-e", "frame.number"]);
    assert_eq!(good.lines().count(), 1, "good traffic after the malformed captures:\n{report}");
    let (_, conserved) = queues(&report);
    assert!(conserved, "{report}");
    // Every malformed frame was dropped under the reason replay gives it.
    for (reason, n) in &expected_drops {
        let line = report.lines().find(|l| l.trim_start().starts_with(&format!("drop {reason} "))).unwrap_or("");
        let got: u64 = line.split_whitespace().last().and_then(|v| v.parse().ok()).unwrap_or(0);
        assert_eq!(got, *n, "drop {reason}\n{report}");
    }
    assert!(expected_tx > 0);
}

/// Two workers share a two-queue interface; a queue without one is said, at start and when
/// the queues change under the run, and ends a run that was to serve them all.
#[test]
fn two_pinned_workers_share_two_queues_and_a_queue_without_one_is_said() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tc", 2);
    let t = lab.transitd(ACME, &["--queues", "0-1", "--cores", "0,1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let cap = lab.capture("up", "u1");
    // 200 flows: the upstream veth spreads them over its two tx queues by flow hash.
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=20000+i, dport=21, flags='S') for i in range(200)]");
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let (rows, conserved) = queues(&report);
    assert!(conserved, "{report}");
    assert_eq!(rows.len(), 2, "{report}");
    assert!(rows.iter().all(|&(rx, _)| rx > 0), "both workers received: {report}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 200, "{report}");
    let gre = tshark(&file, &["-Y", "gre and not icmp and tcp.dstport == 21", "-T", "fields", "-e", "tcp.srcport"]);
    let mut ports: Vec<u32> = gre.lines().map(|l| l.parse().unwrap()).collect();
    ports.sort_unstable();
    assert_eq!(ports, (20000..20200).collect::<Vec<_>>());

    // Fewer queues than the interface has, on purpose: said at start, with what becomes of
    // the traffic on the others (the XDP program drops it, counted as no_socket), not refused.
    let t = lab.transitd(ACME, &["--queues", "0"]);
    let said = "has 2 rx queues and queue 1 has no worker (served: queue 0): customers' traffic the NIC puts there is \
                dropped by the XDP program, counted as no_socket";
    assert!(t.log().contains(said), "{}", t.log());
    // The queues changed under it (veth takes `ethtool -L` up to the queues it was made
    // with; below the upstream side's tx queues only once those are fewer): said, and the
    // run goes on, as a restart with the same --queues would serve the same queues.
    let channels = |ns: &str, dev: &str, n: &str| lab.run(ns, "ethtool", &["-L", &lab.dev(dev), "rx", n, "tx", n]);
    channels("up", "u1", "1");
    channels("dut", "d0", "1");
    wait_for("the new queue count to be said", Duration::from_secs(5), || {
        t.log().contains("rx queues went from 2 to 1 while running: every one has a worker")
    });
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");

    // Bound to every queue there was, a queue added under the run (`ethtool -L`, a driver
    // reset to its defaults) would have its customers' traffic dropped with nothing said:
    // the run ends with an error, and the service manager's restart serves every queue.
    let mut t = lab.transitd(ACME, &[]);
    assert!(t.log().contains("queue 0 (") && !t.log().contains("no worker"), "{}", t.log());
    channels("dut", "d0", "2");
    wait_for("transitd to stop", Duration::from_secs(10), || !t.is_running());
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("rx queues went from 1 to 2 while running (`ethtool -L`, a driver reset): "), "{log}");
    assert!(
        log.contains("queue 1 has no worker (served: queue 0)") && log.contains("a restart serves every queue"),
        "{log}"
    );
    assert!(report.contains("umem frames") && !report.contains("NOT CONSERVED"), "{report}");
}

/// Each thread of process `pid` by name, with the CPUs it may run on (`Cpus_allowed_list`).
fn thread_cpus(pid: u32) -> Vec<(String, String)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            Some((comm.trim().to_string(), cpus.trim().to_string()))
        })
        .collect()
}

#[test]
fn helper_threads_stay_off_the_workers_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "needs two CPUs: one for the worker, one for the rest");
    let lab = Lab::up("tk", 1);
    let t = lab.transitd(ACME, &["--cores", "0"]);
    wait_for("the worker to start", Duration::from_secs(15), || t.log().contains("running on"));
    let threads = thread_cpus(t.pid());
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let cpus_of = |name: &str| threads.iter().find(|(n, _)| n == name).map(|(_, c)| c.clone());
    assert_eq!(cpus_of("transitd-q0").as_deref(), Some("0"), "{threads:?}");
    // The main thread (supervision, reload builds) and the helpers it started: every CPU
    // but the worker's, which the kernel lists as a range not starting at 0.
    for name in ["transitd", "transitd-neigh", "transitd-ipfix"] {
        let Some(list) = cpus_of(name) else { panic!("no thread {name}: {threads:?}") };
        let first: usize = list.split(['-', ',']).next().and_then(|c| c.parse().ok()).unwrap();
        assert!(first >= 1, "{name} may run on CPU 0, the worker's: {threads:?}");
    }
}

#[test]
fn sighup_swaps_the_rules_and_a_bad_file_keeps_the_running_ones() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("td", 1);
    let t = lab.transitd(ACME, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let ssh = |sport: u16| {
        scapy_send(&lab, "snd", &format!("[IP(dst='203.0.113.100')/TCP(sport={sport}, dport=22, flags='S')]"));
    };
    let cap = lab.capture("up", "u1");
    ssh(50001); // denied by the first configuration
    let with_ssh = format!(
        "{ACME}\n[[customer.firewall.rule]]\nname = \"ssh\"\nmatch = \"tcp.dstport == 22\"\naction = \"accept\"\n"
    );
    t.reload(&with_ssh);
    wait_for("the reload", Duration::from_secs(15), || t.log().contains("transitd: reloaded"));
    ssh(50002); // accepted by the second
    t.reload("[server]\nanycast = \"not an address\"\n");
    wait_for("the rejection", Duration::from_secs(15), || {
        t.log().contains("rejected, the running configuration stays")
    });
    ssh(50003); // still accepted: the bad file changed nothing
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(log.contains("not an IPv4 address"), "the rejection says why:\n{log}");
    let sent = tshark(&file, &["-Y", "gre and not icmp and tcp.dstport == 22", "-T", "fields", "-e", "tcp.srcport"]);
    assert_eq!(sent.lines().collect::<Vec<_>>(), ["50002", "50003"]);
}

/// The XDP program leaves frames to another host's MAC address to the kernel: when the
/// interface's own address changes under a running edge, transitd follows it (within a
/// second, said in its log), and traffic the router sends to the new address is forwarded,
/// where every frame would have gone to the kernel.
#[test]
fn a_mac_address_changed_under_a_running_edge_is_followed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tm", 1);
    let config = catch_all(&lab.mac("up", "u1"));
    let t = lab.transitd(&config, &[]);
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "address", "02:00:00:00:aa:01"]);
    wait_for("transitd to follow the new address", Duration::from_secs(10), || {
        t.log().contains("MAC address changed: frames to 02:00:00:00:aa:01 are ours now")
    });
    // The router learns the new address.
    lab.run("up", "ip", &["neigh", "flush", "dev", &lab.dev("u1")]);
    let cap = lab.capture("up", "u1");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=41001, dport=21, flags='S')]");
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let forwarded =
        tshark(&file, &["-Y", "gre and not icmp and tcp.srcport == 41001", "-T", "fields", "-e", "frame.number"]);
    assert_eq!(forwarded.lines().count(), 1, "{report}");
}
