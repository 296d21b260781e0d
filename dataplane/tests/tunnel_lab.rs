//! The tunnel side against a GRE implementation nobody here wrote: Open vSwitch's userspace
//! datapath as the customer's router (scripts/ovs-router) in the veth lab. It decapsulates
//! what transitd sends, answers the health probes, and sends its LAN's replies back in GRE.
//! Needs root and Open vSwitch; each test builds and removes its own lab, one at a time.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::lab::{Lab, SERIAL, scapy_send, wait_for};
use common::*;

fn config(tunnels: &str, routes: &str) -> String {
    format!(
        r#"
[server]
anycast = "192.0.2.1"
anycast_v6 = "2001:db8:ffff::1"
next_hop = "10.2.0.1"
[health]
interval_ms = 500
timeout_ms = 200
down_after = 3
up_after = 3
[dos.sanity]
bogons = false
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24", "2001:db8:acbe::/48"]
{tunnels}
{routes}
"#
    )
}

/// A Python TCP peer in a namespace: `serve` sends `file` to the first client, or `sink`
/// writes the SHA-256 of what it receives to `file`.
fn tcp_peer(lab: &Lab, ns: &str, mode: &str, port: u16, family6: bool, file: &std::path::Path) -> Child {
    let script = r#"
import hashlib, socket, sys
mode, port, v6, path = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if v6 else "0.0.0.0", port)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60)
if mode == "serve":
    c.sendall(open(path, "rb").read()); c.close()
else:
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b)
    open(path, "w").write(h.hexdigest())
"#;
    lab.cmd(ns, "/usr/bin/python3")
        .args(["-c", script, mode, &port.to_string(), if family6 { "1" } else { "0" }])
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs a Python TCP client in `ns`: `fetch` prints the SHA-256 of what `addr:port` sends,
/// `push` sends `file` there.
fn tcp_client(lab: &Lab, ns: &str, mode: &str, addr: &str, port: u16, file: &std::path::Path) -> String {
    let script = r#"
import hashlib, socket, sys, time
mode, addr, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for _ in range(50):
    try:
        c = socket.create_connection((addr, port), timeout=60); break
    except OSError:
        time.sleep(0.1)
if mode == "fetch":
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b)
    print(h.hexdigest())
else:
    c.sendall(open(path, "rb").read()); c.close()
"#;
    let out = lab.run(ns, "/usr/bin/python3", &["-c", script, mode, addr, &port.to_string(), file.to_str().unwrap()]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn sha256(file: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(file).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// The count on the line of transitd's final `report` that starts with `what`; 0 if none.
fn counter(report: &str, what: &str) -> u64 {
    report.lines().find_map(|l| l.trim().strip_prefix(what)?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// The GRE header options of the lab's tunnel, set alike on Open vSwitch's end
/// (scripts/ovs-router's `--key`, `--csum`) and on transitd's (`key`, `checksum`).
struct Gre {
    key: Option<u32>,
    checksum: bool,
}

/// Every GRE header in `file`, counted by outer source, key and checksum status as tshark
/// reads them: status "1" is a checksum that verifies (tshark's "Good"), "0" one that does
/// not, "" none.
fn gre_headers(file: &std::path::Path) -> std::collections::BTreeMap<(String, Option<u32>, String), u64> {
    let rows = tshark(
        file,
        &[
            "-Y",
            "gre",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "ip.src",
            "-e",
            "gre.key",
            "-e",
            "gre.checksum.status",
        ],
    );
    let mut headers = std::collections::BTreeMap::new();
    for row in rows.lines() {
        let f: Vec<&str> = row.split('\t').collect();
        // tshark prints the key in hex (0x0000002a).
        let key = f[1].strip_prefix("0x").map(|k| u32::from_str_radix(k, 16).unwrap());
        *headers.entry((f[0].to_string(), key, f[2].to_string())).or_default() += 1;
    }
    headers
}

#[test]
fn tcp_through_an_open_vswitch_router_arrives_intact_both_ways() {
    tcp_through_an_open_vswitch_router("og", Gre { key: None, checksum: false });
}

/// The same with RFC 2890's key and RFC 2784's checksum on both ends. Open vSwitch drops GRE
/// with another key (tried: key 43 on its end, and no ping came back), but takes GRE without
/// a checksum although it sends one (tried: `checksum = true` left out of transitd's tunnel,
/// and the pings and transfers all passed), so only the capture tells that transitd wrote it.
#[test]
fn tcp_through_an_open_vswitch_router_with_a_key_and_checksums_arrives_intact_both_ways() {
    tcp_through_an_open_vswitch_router("ok", Gre { key: Some(42), checksum: true });
}

/// Pings and TCP (2 MB each way over IPv4, 1 MB down over IPv6) through an Open vSwitch
/// router whose GRE carries `gre`'s options, transitd's tunnel set to match. A capture of
/// transitd's link says what each end wrote: every GRE header, each way, carries exactly
/// those options (with a checksum, one that tshark verifies).
fn tcp_through_an_open_vswitch_router(name: &str, gre: Gre) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up(name, 1);
    // The same options on both ends: scripts/ovs-router's, and the tunnel's keys.
    let key = gre.key.map(|k| k.to_string());
    let (mut options, mut keys) = (Vec::new(), String::new());
    if let Some(key) = &key {
        options.extend(["--key", key.as_str()]);
        keys.push_str(&format!("\nkey = {key}"));
    }
    if gre.checksum {
        options.push("--csum");
        keys.push_str("\nchecksum = true");
    }
    let _router = lab.ovs_router_with("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0", &options);
    let tunnels = format!(
        "[[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"{keys}"
    );
    let routes = "[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"\n\
                  [[customer.route]]\nprefix = \"2001:db8:acbe::/48\"\ntunnel = \"acme-gre\"";
    // From before transitd's first probe until after it stopped: every GRE frame it sent.
    let cap = lab.capture_on("up", &lab.dev("u1"), "u1-gre", "ip proto 47");
    let t = lab.transitd(&config(&tunnels, routes), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));

    // IPv4 and IPv6 inside IPv4 GRE, both ways: the LAN host answers pings.
    let ping = lab.cmd("snd", "ping").args(["-c", "3", "-i", "0.2", "-W", "2", "203.0.113.10"]).output().unwrap();
    assert!(ping.status.success(), "{}\n{}", String::from_utf8_lossy(&ping.stdout), t.log());
    let ping6 =
        lab.cmd("snd", "ping").args(["-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:acbe::10"]).output().unwrap();
    assert!(ping6.status.success(), "{}\n{}", String::from_utf8_lossy(&ping6.stdout), t.log());

    // 2 MB each way over IPv4 and 1 MB down over IPv6, compared by SHA-256.
    let dir = std::env::temp_dir();
    let data = dir.join(format!("{}-data.bin", lab.prefix));
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let want = sha256(&data);

    let mut server = tcp_peer(&lab, "lan", "serve", 5001, false, &data);
    let got = tcp_client(&lab, "snd", "fetch", "203.0.113.10", 5001, &data);
    let _ = server.wait();
    assert_eq!(got, want, "download through the tunnel\n{}", t.log());

    let received = dir.join(format!("{}-received.sha", lab.prefix));
    let mut sink = tcp_peer(&lab, "lan", "sink", 5002, false, &received);
    tcp_client(&lab, "snd", "push", "203.0.113.10", 5002, &data);
    let _ = sink.wait();
    assert_eq!(std::fs::read_to_string(&received).unwrap(), want, "upload through the tunnel");

    let small = dir.join(format!("{}-small.bin", lab.prefix));
    std::fs::write(&small, &bytes[..1_000_000]).unwrap();
    let mut server6 = tcp_peer(&lab, "lan", "serve", 5003, true, &small);
    let got6 = tcp_client(&lab, "snd", "fetch", "2001:db8:acbe::10", 5003, &small);
    let _ = server6.wait();
    assert_eq!(got6, sha256(&small), "download over IPv6 inside GRE");

    // A few more probe intervals (500 ms), however fast the transfers were.
    std::thread::sleep(Duration::from_millis(1600));
    let (code, report) = t.stop();
    let file = cap.finish();
    assert_eq!(code, 0, "{report}");
    // The router returned the health probes: the tunnel is up, replies were consumed.
    let answered: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("tunnel acme-gre up (probes answered up to #"))
        .and_then(|r| r.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no probe answered:\n{report}"));
    assert!(answered >= 3, "{report}");
    assert!(report.contains("tx   decapsulated") && report.contains("tx   encapsulated"), "{report}");
    assert!(!report.contains("NOT CONSERVED"), "{report}");

    // What each end wrote, read off the wire: transitd's GRE, all it counted as sent into
    // the tunnel, and the router's, at least what transitd counted as taken from it (a
    // probe's reply may be on its way as transitd stops); none with another key, no key, a
    // bad checksum, or a checksum missing or there unasked.
    let status = if gre.checksum { "1" } else { "" };
    let ours = ("192.0.2.1".to_string(), gre.key, status.to_string());
    let theirs = ("198.51.100.1".to_string(), gre.key, status.to_string());
    let headers = gre_headers(&file);
    assert!(headers.keys().all(|h| *h == ours || *h == theirs), "only {ours:?} and {theirs:?}: {headers:?}\n{report}");
    let sent = counter(&report, "tx   encapsulated") + counter(&report, "tx   health_probe");
    assert_eq!(headers.get(&ours), Some(&sent), "transitd's GRE on the wire\n{report}");
    let taken = counter(&report, "tx   decapsulated") + counter(&report, "consumed health_probe_reply");
    let from_router = headers.get(&theirs).copied().unwrap_or(0);
    assert!(taken > 0 && from_router >= taken, "the router's GRE on the wire: {headers:?}\n{report}");
    for f in [data, received, small, file] {
        let _ = std::fs::remove_file(f);
    }
}

/// Path MTU discovery with a real router in the underlay: the lab's upstream router (Linux)
/// carries only 1400 bytes toward the customer's router, so the 1500-byte GRE packets a
/// full-sized segment makes do not pass; it answers them with ICMP Fragmentation Needed to
/// the anycast address, as routers do. transitd lowers the tunnel's MTU from that, tells the
/// sender (whose kernel lowers its path MTU in turn), and a 2 MB upload arrives intact.
/// Without it the upload stalls: the router's errors went to the host, which has no tunnel
/// to lower, and every full-sized segment was lost.
#[test]
fn a_router_in_the_underlay_with_a_smaller_mtu_is_learned_from_its_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("om", 1);
    let _router = lab.ovs_router("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0");
    lab.run("up", "ip", &["link", "set", "dev", &lab.dev("u2"), "mtu", "1400"]);
    let tunnels = "[[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"";
    let routes = "[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"";
    let t = lab.transitd(&config(tunnels, routes), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));

    let dir = std::env::temp_dir();
    let data = dir.join(format!("{}-data.bin", lab.prefix));
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let received = dir.join(format!("{}-received.sha", lab.prefix));
    let mut sink = tcp_peer(&lab, "lan", "sink", 5002, false, &received);
    tcp_client(&lab, "snd", "push", "203.0.113.10", 5002, &data);
    let _ = sink.wait();
    let got = std::fs::read_to_string(&received).unwrap_or_default();
    assert_eq!(got, sha256(&data), "upload through the tunnel\n{}", t.log());

    // 1400 less the outer IPv4 and GRE headers (24 bytes), as the router's errors said:
    // logged once (the prober's tick), and in the final report.
    let line = "transitd: tunnel acme-gre takes 1376 bytes inside (mtu 1476): the underlay's path MTU";
    wait_for("the path MTU to be logged", Duration::from_secs(5), || t.log().contains(line));
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("tunnel acme-gre path MTU: 1376 bytes inside (mtu 1476)"), "{report}");
    assert!(counter(&report, "consumed underlay_too_big") >= 1, "the router's errors were used\n{report}");
    assert!(counter(&report, "tx   icmp_too_big") >= 1, "the sender was told\n{report}");
    for f in [data, received] {
        let _ = std::fs::remove_file(f);
    }
}

/// A customer's router whose GRE leaves without DF (Open vSwitch with `df_default=false`, as
/// Cisco's GRE sends by default) behind a link that carries more than the path to us: the
/// lab's upstream router (Linux) fragments every full-sized GRE packet toward transitd, which
/// reassembles and decapsulates them. A 2 MB upload from the customer's LAN arrives intact;
/// with `gre_reassembly = false` every full-sized segment is lost (tried by hand: the upload
/// stalls until its 60 s timeout). A UDP datagram as large as the LAN takes is larger than
/// transitd's own link once whole: without DF it reaches the receiver in fragments, with DF
/// the sender's stack learns the link's MTU from transitd's error (without the link check,
/// tried by hand, both vanish: the oversized frame is sent and the kernel drops it).
#[test]
fn gre_a_router_on_the_way_fragmented_is_reassembled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("of", 1);
    // The customer's link takes 1600 bytes (so its LAN 1576), the upstream's toward us 1500.
    lab.run("cust", "ip", &["link", "set", "dev", &lab.dev("c0"), "mtu", "1600"]);
    lab.run("up", "ip", &["link", "set", "dev", &lab.dev("u2"), "mtu", "1600"]);
    let _router =
        lab.ovs_router_with("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0", &["--no-df"]);
    let tunnels = "[[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"";
    let routes = "[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"";
    let cap = lab.capture_on("up", &lab.dev("u1"), "u1-fragments", "ip proto 47 and ip[6:2] & 0x3fff != 0");
    // Segments as large as the sender (MTU 1500) takes: transitd's MSS clamp would fit them
    // to the tunnel's 1476 bytes, and nothing would need fragmenting.
    let t = lab.transitd(&config(tunnels, routes).replace("[server]\n", "[server]\nmss_clamp = false\n"), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));

    let dir = std::env::temp_dir();
    let data = dir.join(format!("{}-data.bin", lab.prefix));
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let received = dir.join(format!("{}-received.sha", lab.prefix));
    let mut sink = tcp_peer(&lab, "snd", "sink", 5003, false, &received);
    tcp_client(&lab, "lan", "push", "10.1.0.2", 5003, &data);
    let _ = sink.wait();
    let got = std::fs::read_to_string(&received).unwrap_or_default();

    // A datagram as large as the LAN takes (1576 bytes of IP) is larger than transitd's link
    // (1500) once reassembled and decapsulated. Without DF it leaves in fragments, which
    // the receiver's stack puts back together; with DF the sender's stack is told the
    // link's MTU (a Fragmentation Needed back through the tunnel) and lowers its path MTU.
    let sink = lab
        .cmd("snd", "/usr/bin/python3")
        .args([
            "-c",
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                      s.bind(('10.1.0.2', 9999)); s.settimeout(20)\nb = s.recv(65535)\n\
                      print(len(b), b == bytes(range(256)) * 6 + bytes(12))",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = lab.run(
        "lan",
        "/usr/bin/python3",
        &["-c", "import socket, time\n\
                 IP_MTU_DISCOVER, IP_PMTUDISC_DONT, IP_PMTUDISC_DO, IP_MTU = 10, 0, 2, 14\n\
                 s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)\n\
                 for _ in range(5):\n    s.sendto(bytes(range(256)) * 6 + bytes(12), ('10.1.0.2', 9999)); time.sleep(0.2)\n\
                 d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 d.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)\n\
                 d.connect(('10.1.0.2', 9998))\n\
                 mtu = d.getsockopt(socket.IPPROTO_IP, IP_MTU)\n\
                 for _ in range(50):\n\
                 \x20   try:\n        d.send(bytes(1548))\n    except OSError:\n        pass\n\
                 \x20   time.sleep(0.1)\n    mtu = d.getsockopt(socket.IPPROTO_IP, IP_MTU)\n\
                 \x20   if mtu < 1576:\n        break\n\
                 print(mtu)"],
    );
    let told = String::from_utf8_lossy(&sent.stdout).trim().to_string();
    let heard = sink.wait_with_output().unwrap();
    let heard = String::from_utf8_lossy(&heard.stdout).trim().to_string();
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert_eq!(got, sha256(&data), "upload through the tunnel\n{report}");
    assert_eq!(heard, "1548 True", "the datagram, in fragments from transitd\n{report}");
    assert_eq!(told, "1500", "the path MTU the sender's stack took from transitd's error\n{report}");

    // The fragments were the router's GRE from the customer's router, as tshark reads them.
    let firsts = tshark(
        &file,
        &["-Y", "ip.src == 198.51.100.1 and ip.flags.mf == 1 and ip.frag_offset == 0 and ip.proto == 47"],
    );
    let lasts = tshark(&file, &["-Y", "ip.src == 198.51.100.1 and ip.flags.mf == 0 and ip.frag_offset > 0"]);
    let (firsts, lasts) = (firsts.lines().count() as u64, lasts.lines().count() as u64);
    assert!(firsts >= 1000, "{firsts} first fragments of 2 MB in segments of 1460 bytes\n{report}");
    // Each datagram came in two fragments: one held, one completing it (a fragment the
    // socket's ring had no room for leaves its datagram's other one held in vain).
    let reassembled = counter(&report, "reassembled");
    assert!(reassembled >= firsts.min(lasts) * 9 / 10, "{reassembled} of {firsts} datagrams\n{report}");
    assert!(counter(&report, "consumed gre_fragment_held") >= reassembled, "{report}");
    assert_eq!(counter(&report, "drop gre_fragment"), 0, "{report}");
    for f in [data, received, file] {
        let _ = std::fs::remove_file(f);
    }
}

/// The interface's MTU lowered while `run` runs (1500 to 1400, on both ends of the link):
/// transitd says so, names the tunnel it now holds to 1376 (1400 less 24 bytes of GRE over
/// IPv4), and holds it there at once. A DF sender's stack learns 1400 from the upstream
/// router, then 1376 from transitd's error (without the hold, its 1400-byte packets left
/// in 1424-byte frames the link dropped, and nobody told the sender); a TCP upload's SYN
/// reaches the customer's router clamped to 1336, and the upload arrives intact.
#[test]
fn an_interface_mtu_lowered_while_running_holds_the_tunnel_to_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("ou", 1);
    let _router = lab.ovs_router("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0");
    let tunnels = "[[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"";
    let routes = "[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"";
    let t = lab.transitd(&config(tunnels, routes), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert!(!t.log().contains("more than"), "the tunnel fits 1500 bytes:\n{}", t.log());

    lab.run("up", "ip", &["link", "set", "dev", &lab.dev("u1"), "mtu", "1400"]);
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "mtu", "1400"]);
    let said = format!("transitd: {}'s MTU is 1400 now", lab.dev("d0"));
    wait_for("the MTU change to be seen", Duration::from_secs(5), || t.log().contains(&said));
    let held = "transitd: tunnel acme-gre has mtu 1476 (1500 bytes with its outer headers), more than";
    assert!(t.log().contains(held) && t.log().contains("it is held to 1376"), "{}", t.log());

    let cap = lab.capture_on("up", &lab.dev("u2"), "u2-syns", "ip proto 47");
    let sent = lab.run(
        "snd",
        "/usr/bin/python3",
        &[
            "-c",
            "import socket, time\n\
                 IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14\n\
                 d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 d.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)\n\
                 d.connect(('203.0.113.10', 9998))\n\
                 mtu = d.getsockopt(socket.IPPROTO_IP, IP_MTU)\n\
                 for _ in range(50):\n\
                 \x20   try:\n        d.send(bytes(mtu - 28))\n    except OSError:\n        pass\n\
                 \x20   time.sleep(0.1)\n    mtu = d.getsockopt(socket.IPPROTO_IP, IP_MTU)\n\
                 \x20   if mtu < 1400:\n        break\n\
                 print(mtu)",
        ],
    );
    let told = String::from_utf8_lossy(&sent.stdout).trim().to_string();

    let dir = std::env::temp_dir();
    let data = dir.join(format!("{}-data.bin", lab.prefix));
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let received = dir.join(format!("{}-received.sha", lab.prefix));
    let mut sink = tcp_peer(&lab, "lan", "sink", 5004, false, &received);
    tcp_client(&lab, "snd", "push", "203.0.113.10", 5004, &data);
    let _ = sink.wait();
    let got = std::fs::read_to_string(&received).unwrap_or_default();
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert_eq!(told, "1376", "the path MTU the sender's stack took from transitd's error\n{report}");
    assert_eq!(got, sha256(&data), "upload through the tunnel\n{report}");
    let mss = tshark(
        &file,
        &["-Y", "gre and tcp.flags.syn == 1 and tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.options.mss_val"],
    );
    // Every SYN into the tunnel (a slow run retransmits the first: two were captured, both
    // 1336, in a clean clone's run) carries the clamped MSS.
    let syns: Vec<&str> = mss.lines().collect();
    assert!(
        !syns.is_empty() && syns.iter().all(|m| *m == "1336"),
        "the upload's SYNs, into the tunnel: {syns:?}\n{report}"
    );
    for f in [data, received, file] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn a_tunnel_that_stops_answering_carries_no_new_traffic_once_judged_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up_with("oh", 1, true);
    let _r1 = lab.ovs_router("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0");
    let _r2 = lab.ovs_router("cust2", "c1", "100.64.0.1/24", "100.64.0.254", "lan2", "10.213.0.2");
    let tunnels = "[[customer.tunnel]]\nname = \"r1\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
                   [[customer.tunnel]]\nname = \"r2\"\nremote = \"100.64.0.1\"\ninterface = \"10.213.0.2/31\"";
    let routes = "[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"r1\"\n\
                  [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"r2\"";
    let cap = lab.capture("up", "u1");
    let t = lab.transitd(&config(tunnels, routes), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    std::thread::sleep(Duration::from_millis(1500)); // a few probe rounds, all answered
    // 300 flows per phase; phases A and C send the same flows, told apart by their payload.
    let flows = |port: u16, phase: char| {
        format!("[IP(dst='203.0.113.10')/UDP(sport=20000+i, dport={port})/Raw(b'{phase}'*32) for i in range(300)]")
    };
    scapy_send(&lab, "snd", &flows(7001, 'A'));

    assert!(!t.log().contains(" down: "), "every probe was answered so far:\n{}", t.log());

    // Cut r2's link: it is down within interval + down_after × timeout of its last answer
    // (500 + 3 × 200 ms, tunnels.md's bound), give or take the log being read (a slow CI
    // machine's scheduling: 700 ms; a probe answered after 200 ms through Open vSwitch's
    // userspace router is a miss, so the timeout leaves it room too).
    lab.run("cust2", "ip", &["link", "set", &lab.dev("c1"), "down"]);
    let took = wait_for("r2 to go down", Duration::from_secs(5), || t.log().contains("tunnel r2 down"));
    assert!(took <= Duration::from_millis(500 + 3 * 200 + 700), "down after {took:?}");
    assert!(!t.log().contains("tunnel r1 down"), "{}", t.log());
    scapy_send(&lab, "snd", &flows(7002, 'B'));

    // Restore it: three answered probes bring it back.
    lab.run("cust2", "ip", &["link", "set", &lab.dev("c1"), "up"]);
    wait_for("r2 to come back", Duration::from_secs(10), || t.log().contains("tunnel r2 up"));
    scapy_send(&lab, "snd", &flows(7001, 'C'));
    std::thread::sleep(Duration::from_millis(500));
    let file = cap.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");

    // Which router each flow's GRE went to, per phase (tshark reads the capture; the LAN
    // hosts' ICMP errors quoting the flows come back in GRE to us and are left out).
    let rows = tshark(
        &file,
        &[
            "-Y",
            "ip.src#1 == 192.0.2.1 and gre and (udp.dstport == 7001 or udp.dstport == 7002)",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "ip.dst",
            "-e",
            "udp.srcport",
            "-e",
            "data.data",
        ],
    );
    let mut by_phase = std::collections::BTreeMap::<(u16, String), u32>::new();
    let mut tunnel_of = std::collections::BTreeMap::<(u16, u16), String>::new();
    for l in rows.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let sport: u16 = f[1].parse().unwrap();
        let phase = u16::from_str_radix(&f[2][..2], 16).unwrap(); // the payload's first byte
        *by_phase.entry((phase, f[0].to_string())).or_default() += 1;
        tunnel_of.insert((phase, sport), f[0].to_string());
    }
    let n = |phase: char, router: &str| by_phase.get(&(phase as u16, router.to_string())).copied().unwrap_or(0);
    let (r1, r2) = ("198.51.100.1", "100.64.0.1");
    assert_eq!(n('A', r1) + n('A', r2), 300, "{by_phase:?}");
    assert!(n('A', r1) >= 90 && n('A', r2) >= 90, "both tunnels share: {by_phase:?}");
    assert_eq!((n('B', r1), n('B', r2)), (300, 0), "nothing into the dead tunnel: {by_phase:?}");
    assert_eq!(n('C', r1) + n('C', r2), 300, "{by_phase:?}");
    assert!(n('C', r2) >= 90, "r2 carries traffic again: {by_phase:?}");
    // With the same tunnels up, every flow took the same tunnel as before.
    for sport in 20000..20300u16 {
        assert_eq!(tunnel_of.get(&(b'A' as u16, sport)), tunnel_of.get(&(b'C' as u16, sport)), "flow {sport}");
    }
    let _ = std::fs::remove_file(file);
}
