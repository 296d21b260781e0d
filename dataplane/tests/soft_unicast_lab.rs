//! Soft-unicast in network namespaces (scripts/soft-unicast-lab): three servers (a1 and a2 in
//! data centre a, b1 in b) share egress address 198.18.200.1, each running transitd on AF_XDP.
//! Return traffic injected at the wrong server reaches its owner's socket, ICMP errors find
//! the socket whose packet they quote, a TCP connection opened by `transitd connect` works end
//! to end through another server, and no packet crosses the backbone more often than the plan
//! requires; a tunnel's health probe replies reach the server that probed over the backbone.
//! Needs root.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, SERIAL, Transitd};

/// Server `name`'s configuration (next hop: the lab router on its link `10.9.<n>.1`).
fn config(name: &str, n: u8) -> String {
    format!(
        r#"
[server]
anycast = "192.0.2.1"
next_hop = "10.9.{n}.1"
[dos.sanity]
bogons = false
[soft_unicast]
this_server = "{name}"
[[soft_unicast.data_centre]]
name = "a"
backbone = "10.9.1.2"
[[soft_unicast.data_centre]]
name = "b"
backbone = "10.9.3.2"
[[soft_unicast.server]]
name = "a1"
data_centre = "a"
backbone = "10.9.1.2"
[[soft_unicast.server]]
name = "a2"
data_centre = "a"
backbone = "10.9.2.2"
[[soft_unicast.server]]
name = "b1"
data_centre = "b"
backbone = "10.9.3.2"
[[soft_unicast.egress]]
prefix = "198.18.200.1/32"
data_centre = "a"
country = "GB"
"#
    )
}

/// UDP sockets on the egress address in a server: listeners on `ports`, and for each of
/// `refused` a socket connected to 10.8.0.2:7777 (the first of them sends a datagram there,
/// which the Internet host refuses). Half a second after its stdin closes ([`report_of`]
/// closes it, once the test has sent everything; at most after `secs` seconds: a fixed
/// time was too short for a slow machine's sends) it prints, as lines, each datagram
/// received (`PORT PAYLOAD`) and `refused PORT` for each connected socket that saw the
/// ICMP error.
fn sockets(lab: &Lab, ns: &str, ports: &[u16], refused: &[u16], secs: u32) -> Child {
    let script = r#"
import select, socket, sys, time
ports = [int(p) for p in sys.argv[1].split(",") if p]
refused = [int(p) for p in sys.argv[2].split(",") if p]
socks = {}
for p in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("198.18.200.1", p)); socks[s] = p
conns = []
for i, p in enumerate(refused):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("198.18.200.1", p)); c.connect(("10.8.0.2", 7777)); c.setblocking(False)
    if i == 0:
        c.send(b"knock")
    conns.append((c, p))
print("ready", flush=True)
# Until the test closes stdin (it has sent everything), then half a second for what is on
# its way; at most argv[3] seconds.
end = time.time() + float(sys.argv[3])
got, seen, closing = [], set(), None
while time.time() < (closing or end):
    r, _, _ = select.select(list(socks) + ([] if closing else [sys.stdin]), [], [], 0.05)
    for s in r:
        if s is sys.stdin:
            if not sys.stdin.readline():
                closing = time.time() + 0.5
            continue
        got.append("%d %s" % (socks[s], s.recv(2048).decode()))
    for c, p in conns:
        try:
            c.recv(2048)
        except ConnectionRefusedError:
            seen.add(p)
        except BlockingIOError:
            pass
for g in got:
    print(g)
for p in sorted(seen):
    print("refused %d" % p)
"#;
    let list = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let mut child = lab
        .cmd(ns, "/usr/bin/python3")
        .args(["-c", script, &list(ports), &list(refused), &secs.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for "ready" on stdout without consuming the rest.
    use std::io::Read;
    let out = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    assert_eq!(line, b"ready");
    child
}

fn report_of(child: Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// The count after `label` in a final report line (`  tx   backbone   12`).
fn counter(report: &str, prefix: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The value after `key` in the report's `xdp:` line.
fn xdp(report: &str, key: &str) -> u64 {
    let line = report.lines().find(|l| l.starts_with("xdp:")).unwrap_or("");
    line.split(&format!("{key} "))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn return_traffic_reaches_its_owners_socket_wherever_it_lands() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::soft_unicast("su");
    let servers: Vec<(&str, Transitd)> = [("a1", 1u8), ("a2", 2), ("b1", 3)]
        .iter()
        .map(|&(name, n)| (name, lab.transitd_on(name, &format!("{name}0"), &config(name, n), &[])))
        .collect();
    for (name, t) in &servers {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !t.log().contains("is at") {
            assert!(Instant::now() < deadline, "{name}: next hop not resolved\n{}", t.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The plan: 198.18.200.1's slices of 2048 ports from 1024 alternate a1, a2, ...; port 80
    // is in no slice (data centre a's as a whole).
    let (a1_ports, a2_ports) = ([1500u16, 9300], [4000u16, 7500]);
    let a1 = sockets(&lab, "a1", &[1500, 9300, 80], &[], 60);
    // a2: 4500 sends to the Internet host, which refuses it (its ICMP error lands at a1);
    // 4600's error is injected at b1.
    let a2 = sockets(&lab, "a2", &[4000, 7500, 80], &[4500, 4600], 60);

    // Three datagrams per port, injected at each server in turn.
    let mac = |ns: &str| lab.mac(ns, &format!("{ns}0"));
    let mut packets = Vec::new();
    for entry in ["a1", "a2", "b1"] {
        let iface = lab.dev(&format!("n{entry}"));
        let ports = a1_ports.iter().chain(&a2_ports).chain(&[80]).map(u16::to_string).collect::<Vec<_>>().join(",");
        packets.push(format!(
            "sendp([Ether(dst='{}')/IP(src='10.8.0.2', dst='198.18.200.1')/UDP(sport=7777, dport=p)/Raw(('%d@{entry}#%d' % (p, k)).encode()) for p in ({ports},) for k in range(3)], iface='{iface}', verbose=0)",
            mac(entry)
        ));
    }
    // The ICMP port unreachable for a2's port 4600, quoting its packet, injected at b1.
    packets.push(format!(
        "sendp(Ether(dst='{}')/IP(src='10.8.0.2', dst='198.18.200.1')/ICMP(type=3, code=3)/IP(src='198.18.200.1', dst='10.8.0.2')/UDP(sport=4600, dport=7777), iface='{}', verbose=0)",
        mac("b1"),
        lab.dev("nb1")
    ));
    let script = format!("from scapy.all import *\n{}\n", packets.join("\n"));
    lab.run("net", "/usr/bin/python3", &["-c", &script]);

    // A TCP connection from a2's slice (transitd connect) to a server on the Internet: its
    // return traffic is routed to a1 and forwarded over the backbone to a2.
    let cfg_a2 = std::env::temp_dir().join(format!("{}-a2.toml", lab.prefix));
    let mut server = lab
        .cmd("inet", "/usr/bin/python3")
        .args([
            "-c",
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('10.8.0.2', 8000)); s.listen(1); s.settimeout(20)\nprint('ready', flush=True)\nc, a = s.accept()\n\
             line = c.makefile().readline().strip()\nc.sendall(('%s from %s:%d\\n' % (line, a[0], a[1])).encode())\n\
             c.close()",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Listening before the connect (a fixed 300 ms was a guess on a loaded machine).
    {
        use std::io::BufRead as _;
        let mut ready = String::new();
        std::io::BufReader::new(server.stdout.as_mut().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
    }
    let connect = lab
        .cmd("a2", env!("CARGO_BIN_EXE_transitd"))
        .args(["connect", "-c", cfg_a2.to_str().unwrap(), "--tag", "GB", "--send", "hello", "10.8.0.2:8000"])
        .output()
        .unwrap();
    let _ = server.wait();
    let said = String::from_utf8_lossy(&connect.stdout).to_string();
    assert!(connect.status.success(), "{said}{}", String::from_utf8_lossy(&connect.stderr));

    let got_a1 = report_of(a1);
    let got_a2 = report_of(a2);
    let reports: Vec<(&str, String)> = servers.into_iter().map(|(n, t)| (n, t.stop().1)).collect();
    let all = reports.iter().map(|(n, r)| format!("== {n}\n{r}")).collect::<Vec<_>>().join("");

    // Every datagram reached its owner's socket, from every entry point, exactly once.
    let expect = |ports: &[u16], entries: &[&str]| {
        let mut v: Vec<String> = Vec::new();
        for p in ports {
            for e in entries {
                for k in 0..3 {
                    v.push(format!("{p} {p}@{e}#{k}"));
                }
            }
        }
        v.sort();
        v
    };
    let datagrams = |got: &[String]| {
        let mut v: Vec<String> = got.iter().filter(|l| !l.starts_with("refused")).cloned().collect();
        v.sort();
        v
    };
    let mut want_a1 = expect(&a1_ports, &["a1", "a2", "b1"]);
    want_a1.extend(expect(&[80], &["a1", "b1"])); // port 80 is a's: b1 sends it to a's address, a1
    want_a1.sort();
    let mut want_a2 = expect(&a2_ports, &["a1", "a2", "b1"]);
    want_a2.extend(expect(&[80], &["a2"]));
    want_a2.sort();
    assert_eq!(datagrams(&got_a1), want_a1, "{all}");
    assert_eq!(datagrams(&got_a2), want_a2, "{all}");
    // Both ICMP errors found the socket whose packet they quote: the real one (landing at
    // a1) and the injected one (at b1, another data centre).
    assert!(got_a2.contains(&"refused 4500".to_string()) && got_a2.contains(&"refused 4600".to_string()), "{got_a2:?}");
    // The TCP answer came back through a1 to a2's socket, from a port in a2's slices.
    let port: u16 =
        said.split("198.18.200.1:").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
    assert!((port - 1024) / 2048 % 2 == 1, "port {port} is in one of a2's slices (odd-numbered)");
    assert!(said.contains(&format!("hello from 198.18.200.1:{port}")), "{said}");

    // No loops: each server forwarded exactly what the plan makes it forward. b1 sends all 15
    // of its datagrams and the ICMP error to data centre a (a1); a1 passes a2's 6 of those on
    // and sends its own 6 for a2; a2 sends a1's 6; and every TCP segment and ICMP error for a2
    // that a1 received (routed there) crossed once more.
    let get = |n: &str| reports.iter().find(|(m, _)| *m == n).map(|(_, r)| r.as_str()).unwrap();
    assert_eq!(counter(get("b1"), "tx   backbone"), 16, "{all}");
    assert_eq!(counter(get("a2"), "tx   backbone"), 6, "{all}");
    let a1_tx = counter(get("a1"), "tx   backbone");
    let tcp_and_icmp = a1_tx - 6 - 6 - 1; // b1's 6 for a2, a1's own 6, the injected ICMP error
    assert!(tcp_and_icmp >= 2, "a1 forwarded the TCP answer and the real ICMP error: {all}");
    for (n, r) in &reports {
        assert!(!r.contains("backbone_loop"), "{n} dropped for a loop:\n{all}");
        assert!(!r.contains("NOT CONSERVED"), "{all}");
    }
    // What each server delivered itself, the XDP program did: a1 the 9 + 6 for it that came
    // over the backbone, a2 everything forwarded to it.
    assert_eq!(xdp(get("a1"), "backbone_local"), 15, "{all}");
    assert_eq!(xdp(get("a2"), "backbone_local"), 6 + 6 + 1 + tcp_and_icmp, "{all}");
}

/// Tunnel health in a fleet, live: a1 and a2 probe the same customer tunnel, and the
/// router (scapy in `inet`, returning each probe's inner packet in GRE to the anycast
/// address, as a router does once it has decapsulated it) reaches the anycast address at a2
/// only (`net` routes it there, as anycast would). a2 relays the replies to a1's probes over
/// the backbone; both servers keep the tunnel up and count every probe answered. Without
/// the relay a1 took the tunnel down within two probe intervals (tried by hand: "tunnel
/// acme-gre down: probes unanswered").
#[test]
fn both_servers_of_a_fleet_see_a_tunnel_up_whichever_gets_its_replies() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::soft_unicast("sh");
    // The router's address, behind the Internet host; the anycast address, at a2.
    lab.run("inet", "ip", &["addr", "add", "198.51.100.1/32", "dev", "lo"]);
    lab.run("net", "ip", &["route", "add", "198.51.100.1/32", "via", "10.8.0.2"]);
    lab.run("net", "ip", &["route", "add", "192.0.2.1/32", "via", "10.9.2.2"]);
    // The host in `inet` has no GRE: it would answer every probe with a protocol
    // unreachable. The reflector reads them before netfilter does.
    lab.run("inet", "nft", &["add table inet lab; add chain inet lab in { type filter hook input priority 0; }; add rule inet lab in ip protocol gre drop"]);
    let mut router = lab
        .cmd("inet", "/usr/bin/python3")
        .args([
            "-c",
            &format!(
                "from scapy.all import *\n\
                 conf.verb = 0\n\
                 s = conf.L3socket()\n\
                 def back(p):\n\
                 \x20   if IP in p and p[IP].dst == '198.51.100.1' and GRE in p:\n\
                 \x20       s.send(IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/p[GRE].payload)\n\
                 sniff(iface='{}', filter='ip proto 47', prn=back, timeout=30, started_callback=lambda: print('ready', flush=True))",
                lab.dev("i0")
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Listening before the servers probe (scapy takes a second or two to start on a busy
    // machine; the first probes went unanswered, and a tunnel down at the start).
    {
        use std::io::BufRead as _;
        let mut ready = String::new();
        std::io::BufReader::new(router.stdout.as_mut().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
    }
    let customer = "[health]\ninterval_ms = 300\ntimeout_ms = 200\ndown_after = 3\nup_after = 3\n\
                    [[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"\n";
    // a2 first: it holds the anycast address the router answers to, and relays a1's replies;
    // started second, a1's first probes' replies reached a server not yet running, and on a
    // slow machine a1 took the tunnel down for a moment (a clean clone's run saw it).
    let servers: Vec<(&str, Transitd)> = [("a2", 2u8), ("a1", 1)]
        .iter()
        .map(|&(name, n)| {
            let config = format!("{}{customer}", config(name, n));
            (name, lab.transitd_on(name, &format!("{name}0"), &config, &[]))
        })
        .collect();
    for (name, t) in &servers {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !t.log().contains("is at") {
            assert!(Instant::now() < deadline, "{name}: next hop not resolved\n{}", t.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Ten probe intervals and more.
    std::thread::sleep(Duration::from_secs(4));
    let logs: Vec<String> = servers.iter().map(|(n, t)| format!("== {n}\n{}", t.log())).collect();
    let reports: Vec<(&str, String)> = servers.into_iter().map(|(n, t)| (n, t.stop().1)).collect();
    let _ = router.kill();
    let _ = router.wait();
    let all = reports.iter().map(|(n, r)| format!("== {n}\n{r}")).collect::<Vec<_>>().join("") + &logs.join("");
    for (name, report) in &reports {
        let answered: u64 = report
            .lines()
            .find_map(|l| l.strip_prefix("tunnel acme-gre up (probes answered up to #"))
            .and_then(|r| r.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("{name}: the tunnel is not up:\n{all}"));
        assert!(answered >= 8, "{name}: {answered} probes answered\n{all}");
    }
    assert!(!all.contains("tunnel acme-gre down"), "{all}");
    let get = |n: &str| reports.iter().find(|(m, _)| *m == n).map(|(_, r)| r.as_str()).unwrap();
    assert!(counter(get("a2"), "tx   probe_reply_relayed") >= 8, "a2 relayed a1's replies\n{all}");
    assert_eq!(counter(get("a1"), "tx   probe_reply_relayed"), 0, "a1 got no reply to relay\n{all}");
    assert!(counter(get("a1"), "consumed health_probe_reply") >= 8, "{all}");
}
