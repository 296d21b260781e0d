//! Operating `transitd run` in the veth lab (scripts/veth-lab): metrics that agree with what
//! tshark sees on the wire and what Python's OpenMetrics parser reads, drop capture while
//! running, a hundred configuration reloads under traffic that lose no packet, and a
//! removed prefix's traffic dropped for its grace rather than handed to the host.
//! Needs root; one lab at a time.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::lab::{ACME, Lab, SERIAL, acme_parts, blocking_list, forwarded_ftp_syns, scapy_send, wait_for};
use common::*;

/// ACME with another customer in front of it (so acme's index moves) and SSH allowed.
fn acme_b() -> String {
    let beta = "[[customer]]\nname = \"beta\"\nprefixes = [\"100.64.7.0/24\"]\n\
                [[customer.tunnel]]\nname = \"beta-gre\"\nremote = \"198.51.100.9\"\n\
                [[customer.route]]\nprefix = \"100.64.7.0/24\"\ntunnel = \"beta-gre\"\n";
    let (server, customers) = acme_parts();
    format!(
        "{server}{beta}{customers}[[customer.firewall.rule]]\nname = \"ssh\"\nmatch = \"tcp.dstport == 22\"\naction = \"accept\"\n"
    )
}

/// Scrapes transitd's metrics inside the lab and parses them with Python's prometheus_client
/// OpenMetrics parser (which rejects anything malformed): `(name, labels) -> value`.
fn scrape(lab: &Lab) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let out = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--raw", "--metrics", "127.0.0.1:9469"]);
    let script = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        # NaN (the recent quantiles of a worker without batches in its window) has no JSON.
        if s.value == s.value:
            print(json.dumps([s.name, s.labels, s.value]))
"#;
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(parsed.status.success(), "not OpenMetrics: {}", String::from_utf8_lossy(&parsed.stderr));
    String::from_utf8(parsed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, labels, value): (String, BTreeMap<String, String>, f64) = serde_json::from_str(l).unwrap();
            ((name, labels), value)
        })
        .collect()
}

fn metric(m: &BTreeMap<(String, BTreeMap<String, String>), f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|((n, l), _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

fn sum_column(text: &str) -> f64 {
    text.lines().map(|l| l.trim().parse::<f64>().unwrap()).sum()
}

/// A stand-in for BIRD's control socket in `dir`, which answers every `configure` as BIRD
/// does when it takes it: the socket, and the include file for `[bgp]` to name.
fn bird_stand_in(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (socket, include) = (dir.join("bird.ctl"), dir.join("transitd.conf"));
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"0001 BIRD 2.0.12 ready.\n");
            let mut line = String::new();
            let _ = std::io::BufReader::new(&stream).read_line(&mut line);
            let _ = stream.write_all(b"0003 Reconfigured\n");
        }
    });
    (socket, include)
}

#[test]
fn systemd_hears_ready_then_the_watchdog_then_stopping_and_a_detached_program_ends_the_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tn", 1);
    // systemd's end: a datagram socket, as for Type=notify with WatchdogSec=0.4s.
    let dir = std::env::temp_dir().join(format!("{}-notify", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let t = lab.transitd_env("dut", "d0", ACME, &["--no-metrics"], &env);
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    let started = std::time::Instant::now();
    while heard.iter().filter(|m: &&String| m.as_str() == "WATCHDOG=1").count() < 5 {
        let n = socket.recv(&mut buf).expect("transitd keeps talking to systemd");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let took = started.elapsed();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    // Everything said up to the exit: pings sent while the test read the last five (a slow
    // machine) come before STOPPING=1.
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // READY first (with the main PID and a status), then the watchdog every 0.2 s or so.
    assert!(heard[0].starts_with("READY=1\nMAINPID=") && heard[0].contains("STATUS=running on"), "{heard:?}");
    assert!(heard[1..heard.len() - 1].iter().all(|m| m == "WATCHDOG=1"), "{heard:?}");
    assert!(took < Duration::from_secs(5), "five watchdog pings took {took:?}");
    assert_eq!(heard.last().map(String::as_str), Some("STOPPING=1"), "{heard:?}");

    // The XDP program detached under a running edge (`bpftool link detach`, as an operator's
    // mistake would): the interface's traffic would reach the host's stack unfiltered. The
    // run ends with an error (exit 2, which systemd's Restart=on-failure restarts) and stops
    // feeding the watchdog: without the check it ran on, feeding it, for ever.
    let mut t = lab.transitd_env("dut", "d0", ACME, &["--no-metrics"], &env);
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut pings = 0;
    while pings < 2 {
        let n = socket.recv(&mut buf).expect("transitd keeps talking to systemd");
        pings += usize::from(&buf[..n] == b"WATCHDOG=1");
    }
    detach_xdp_link(&lab, "dut", "d0");
    let detached = std::time::Instant::now();
    let mut after = Vec::new();
    while after.last().map(String::as_str) != Some("STOPPING=1") {
        assert!(detached.elapsed() < Duration::from_secs(10), "still running 10 s after the detach: {after:?}");
        let n = socket.recv(&mut buf).expect("transitd keeps talking to systemd");
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    wait_for("transitd to exit", Duration::from_secs(10), || !t.is_running());
    let log = t.log();
    let (code, report) = t.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("the XDP program is no longer attached") && log.contains("unfiltered"), "{log}");
    // The attachment is looked at twice a second, the watchdog fed every 0.2 s: a few pings
    // (some sent while bpftool ran) may come before the run sees it, none once it has.
    let fed = after.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
    assert!(fed <= 10, "the watchdog was fed {fed} times after the detach: {after:?}");
    assert!(report.contains("umem frames") && !report.contains("NOT CONSERVED"), "{report}");
}

/// A reload that takes `[bgp]` away waits for the guard's withdrawal, up to 16 s where BIRD
/// takes the connection and answers nothing (a hung BIRD). The workers forward all the
/// while, so systemd's watchdog is still fed: starved for the wait, longer than the unit's
/// `WatchdogSec=10s`, systemd killed an edge that was forwarding.
#[test]
fn a_reload_that_waits_for_a_silent_bird_still_feeds_the_watchdog() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tv", 1);
    let dir = std::env::temp_dir().join(format!("{}-silent", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let (socket, include) = (dir.join("bird.ctl"), dir.join("transitd.conf"));
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new(); // taken, never read nor answered
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let notify = dir.join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let env = [("NOTIFY_SOCKET", notify.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")];
    let bgp = format!("\n[bgp]\nbird_socket = \"{}\"\nbird_include = \"{}\"\n", socket.display(), include.display());
    let t = lab.transitd_env("dut", "d0", &format!("{ACME}{bgp}"), &["--no-metrics"], &env);
    let mut buf = [0u8; 512];
    let mut pinged = std::time::Instant::now();
    let mut ping = |gaps: &mut Vec<Duration>| {
        if let Ok(n) = systemd.recv(&mut buf)
            && &buf[..n] == b"WATCHDOG=1"
        {
            gaps.push(pinged.elapsed());
            pinged = std::time::Instant::now();
        }
    };
    let mut before = Vec::new();
    let started = std::time::Instant::now();
    while before.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "no watchdog: {}", t.log());
        ping(&mut before);
    }

    t.reload(ACME);
    let waited = |t: &common::lab::Transitd| t.log().contains("the BGP guard is still withdrawing after 16 s");
    let mut during = Vec::new();
    let reloaded = std::time::Instant::now();
    while !waited(&t) {
        assert!(reloaded.elapsed() < Duration::from_secs(30), "the wait did not end: {}", t.log());
        ping(&mut during);
    }
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(log.contains("[bgp] is gone from the configuration: withdrawing"), "{log}");
    let longest = during.iter().max().copied().unwrap_or(reloaded.elapsed());
    // Fed every 0.5 s; a gap of 16 s is the wait unfed.
    assert!(
        during.len() >= 10 && longest < Duration::from_secs(3),
        "{} pings, {longest:?} apart at most: {log}",
        during.len()
    );
}

/// Detaches the XDP program's link on `dev` in `ns` with bpftool, not through transitd.
fn detach_xdp_link(lab: &Lab, ns: &str, dev: &str) {
    let out = lab.run(ns, "ip", &["-j", "link", "show", "dev", &lab.dev(dev)]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let prog = links[0]["xdp"]["prog"]["id"].as_u64().unwrap_or_else(|| panic!("no XDP program on {dev}: {links}"));
    let out = lab.run(ns, "bpftool", &["-j", "link", "show"]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = links.as_array().unwrap().iter().find(|l| l["prog_id"] == prog).expect("transitd's XDP link");
    lab.run(ns, "bpftool", &["link", "detach", "id", &link["id"].to_string()]);
}

/// A SIGHUP that comes while `run` reads its configuration (here from an etcd that takes
/// the connection and never answers: seconds) does not end the process. Its handler was
/// installed after the configuration was built, and the signal's default action ended the
/// start (under systemd, a start that failed, tried again 5 s later). The run goes on, and
/// here fails for the etcd alone, as it would have without the signal.
#[test]
fn a_sighup_while_starting_does_not_end_the_process() {
    use std::os::unix::process::ExitStatusExt as _;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("ts", 1);
    let mute = "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 23790))\ns.listen()\n\
                print('listening', flush=True)\nc, _ = s.accept()\nprint('connected', flush=True)\ntime.sleep(60)";
    let mut etcd = lab.cmd("dut", "/usr/bin/python3").args(["-c", mute]).stdout(Stdio::piped()).spawn().unwrap();
    let mut said = std::io::BufReader::new(etcd.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "listening");
    let run = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--no-metrics", "--config-etcd", "http://127.0.0.1:23790"])
        .args(["--prefix", "/t/"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert_eq!(line.trim(), "connected", "transitd asks the mute etcd for its configuration");
    let _ = Command::new("kill").args(["-HUP", &run.id().to_string()]).status();
    let out = run.wait_with_output().unwrap();
    let _ = (etcd.kill(), etcd.wait());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "ended by the SIGHUP: {err}");
    assert!(!out.status.success() && err.contains("127.0.0.1:23790"), "it fails for the etcd alone: {err}");
}

#[test]
fn metrics_count_what_the_wire_shows_and_drops_are_captured() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tm", 1);
    let drops = std::env::temp_dir().join(format!("{}-drops.pcapng", lab.prefix));
    let t = lab.transitd(ACME, &["--metrics", "127.0.0.1:9469", "--capture-drops", drops.to_str().unwrap()]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let cap = lab.capture("up", "u1");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=30000+i, dport=21, flags='S') for i in range(120)]");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=31000+i, dport=22, flags='S') for i in range(30)]");
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    let m = scrape(&lab);
    let human = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--metrics", "127.0.0.1:9469"]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    // Each `stats` tried the address with a connection it closed unused: no failed exchange.
    assert!(!t.log().contains("exchanges failed"), "{}", t.log());
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");

    // The wire, read by tshark: GRE toward acme's router, and SSH that went no further.
    let gre = tshark(&file, &["-Y", "gre and not icmp and tcp.dstport == 21", "-T", "fields", "-e", "frame.len"]);
    let ssh = tshark(&file, &["-Y", "not gre and not icmp and tcp.dstport == 22", "-T", "fields", "-e", "frame.len"]);
    let ftp_in =
        tshark(&file, &["-Y", "not gre and not icmp and tcp.dstport == 21", "-T", "fields", "-e", "frame.len"]);
    assert_eq!((gre.lines().count(), ssh.lines().count()), (120, 30));

    let acme = |verdict| metric(&m, "transitd_customer_packets_total", &[("customer", "acme"), ("verdict", verdict)]);
    assert_eq!(acme("tx"), 120.0);
    assert_eq!(acme("drop"), 30.0);
    let acme_bytes = |v| metric(&m, "transitd_customer_bytes_total", &[("customer", "acme"), ("verdict", v)]);
    assert_eq!(acme_bytes("drop"), sum_column(&ssh), "bytes as received");
    assert_eq!(acme_bytes("tx"), sum_column(&ftp_in), "bytes as received");
    let sent = [("tunnel", "acme-gre"), ("direction", "sent")];
    assert_eq!(metric(&m, "transitd_tunnel_packets_total", &sent), 120.0);
    assert_eq!(metric(&m, "transitd_tunnel_bytes_total", &sent), sum_column(&gre), "bytes as encapsulated");
    let firewall = [("verdict", "drop"), ("reason", "firewall")];
    assert_eq!(metric(&m, "transitd_packets_total", &firewall), 30.0);
    assert_eq!(metric(&m, "transitd_bytes_total", &firewall), sum_column(&ssh));
    let encapsulated = [("verdict", "tx"), ("reason", "encapsulated")];
    assert_eq!(metric(&m, "transitd_packets_total", &encapsulated), 120.0);
    assert_eq!(metric(&m, "transitd_rule_hits_total", &[("customer", "acme"), ("rule", "ftp")]), 120.0);
    assert!(metric(&m, "transitd_xdp_packets_total", &[("action", "redirected")]) >= 150.0);
    let batches = metric(&m, "transitd_batch_duration_seconds_count", &[("worker", "q0")]);
    assert!(batches > 0.0 && batches <= 150.0, "{batches} batches for 150 frames");
    assert_eq!(metric(&m, "transitd_config_reloads_total", &[("result", "applied")]), 0.0);
    assert_eq!(metric(&m, "transitd_drop_capture_packets_total", &[("result", "written")]), 30.0);

    // The person's view names the customer and the tunnel, with the same counts.
    assert!(human.contains("acme") && human.contains("acme-gre"), "{human}");
    assert!(human.lines().any(|l| l.starts_with("acme ") && l.contains(" 120 ") && l.contains(" 30 ")), "{human}");
    // The tunnel's row: no health check, the MTU it takes (its default 1476), 120 sent.
    let row: Vec<&str> = human.lines().find(|l| l.starts_with("acme-gre ")).unwrap_or("").split_whitespace().collect();
    assert_eq!(row, ["acme-gre", "acme", "-", "1476", "0", "0", "120"], "{human}");

    // The capture written while running: the 30 SSH SYNs, as tshark reads them.
    let captured = tshark(&drops, &["-T", "fields", "-e", "frame.comment", "-e", "tcp.dstport"]);
    assert_eq!(captured.lines().count(), 30, "{captured}");
    assert!(captured.lines().all(|l| l == "drop: firewall; customer acme\t22"), "{captured}");
}

#[test]
fn a_hundred_reloads_under_traffic_lose_no_packet_both_configurations_forward() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tr", 1);
    let t = lab.transitd(ACME, &["--watch-interval", "0.05", "--no-metrics"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    // The upstream router learns transitd's MAC before the measured traffic.
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=1, dport=21, flags='S')]");

    // Traffic at 1000 packets/s until the reloads are done (24 s, up to three times over):
    // FTP (both configurations forward it) and, every fifth packet, SSH (only the second one
    // does). Each packet's sequence number is its id; what was sent is captured as it
    // leaves the sender, and what arrives must be that, packet for packet.
    let n = 24_000;
    let traffic = std::env::temp_dir().join(format!("{}-traffic.pcap", lab.prefix));
    let script = format!(
        "from scapy.all import *\n\
         e = Ether(src='{src}', dst='{dst}')\n\
         wrpcap('{file}', [e/IP(src='10.1.0.2', dst='203.0.113.100')/TCP(sport=20000 + i % 20000, dport=22 if i % 5 == 4 else 21, seq=i, flags='S') for i in range({n})])\n",
        src = lab.mac("snd", "s0"),
        dst = lab.mac("up", "u0"),
        file = traffic.display(),
    );
    let made = Command::new("/usr/bin/python3").args(["-c", &script]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let cap = lab.capture("cust", "c0");
    let sent = lab.capture("snd", "s0");
    let mut replay = lab
        .cmd("snd", "tcpreplay")
        .args(["-q", "-i", &lab.dev("s0"), "--pps=1000", "--loop=3", traffic.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // A hundred reloads, alternating the two configurations; odd ones by SIGHUP, even ones
    // by the file changing alone. Each is waited for before the next.
    let b = acme_b();
    let reloads = |log: &str| log.matches("transitd: reloaded").count();
    for i in 0..100 {
        let text = if i % 2 == 0 { b.as_str() } else { ACME };
        if i % 2 == 1 {
            t.reload(text);
        } else {
            std::fs::write(&t.config, text).unwrap();
        }
        wait_for(&format!("reload {}", i + 1), Duration::from_secs(10), || reloads(&t.log()) == i + 1);
    }
    assert!(replay.try_wait().unwrap().is_none(), "the traffic ended before the reloads did: make it longer");
    // Stopped outright: what it sent is what the sender's capture holds. (Interrupted, its
    // own handler once died in glibc's malloc on CI, which said nothing of transitd.)
    let _ = replay.kill();
    let _ = replay.wait();
    std::thread::sleep(Duration::from_millis(500));
    let (file, sent) = (cap.finish(), sent.finish());
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert_eq!(reloads(&log), 100, "exactly one reload per change:\n{log}");
    assert!(!log.contains("rejected"), "{log}");

    // Each sequence number with how many times it was seen (the traffic went round again).
    let seqs = |file: &std::path::Path, filter: &str| -> BTreeMap<u64, usize> {
        let mut seen = BTreeMap::new();
        for l in tshark(file, &["-Y", filter, "-T", "fields", "-e", "tcp.seq_raw"]).lines() {
            *seen.entry(l.trim().parse().unwrap()).or_insert(0) += 1;
        }
        seen
    };
    let ftp = seqs(&file, "gre and not icmp and tcp.dstport == 21");
    let expected = seqs(&sent, "not gre and tcp.dstport == 21");
    assert!(expected.len() >= (n as usize / 5) * 4 / 2, "{} FTP packets sent", expected.len());
    let missing: Vec<_> = expected.iter().filter(|(seq, k)| ftp.get(seq) != Some(k)).take(10).collect();
    assert!(missing.is_empty(), "lost (sequence number, times sent), e.g. {missing:?}\n{report}");
    assert_eq!(ftp.len(), expected.len(), "forwarded what was not sent");
    // SSH went through only while the second configuration ran: some, not all.
    let ssh: usize = seqs(&file, "gre and not icmp and tcp.dstport == 22").values().sum();
    let ssh_sent: usize = seqs(&sent, "not gre and tcp.dstport == 22").values().sum();
    assert!(ssh > 0 && ssh < ssh_sent, "{ssh} of {ssh_sent} SSH packets");
}

/// A reload that removes a customer (its prefix with it) while the upstream still routes the
/// prefix here (the lab's `up` keeps its static route: an upstream that has not converged on
/// the withdrawal yet). BGP withdraws it at once; its traffic is dropped as
/// `withdrawn_prefix` for `withdrawn_grace_ms`, none of it handed to the host's stack, and
/// after the grace it is the host's, as traffic for no customer. The oracle of what the host
/// got is a capture on dut's interface: packet sockets see what the XDP program passes to the
/// kernel, and nothing it redirects to AF_XDP. (Without the grace the first ten reached it.)
#[test]
fn a_removed_prefix_is_dropped_for_its_grace_and_not_handed_to_the_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tg", 1);
    let (socket, include) = bird_stand_in(&std::env::temp_dir().join(format!("{}-bird", lab.prefix)));
    // Long enough for scapy to start (seconds on a slow machine) well within it.
    let bgp = format!(
        "\n[bgp]\nbird_socket = \"{}\"\nbird_include = \"{}\"\nwithdraw_after_ms = 2000\n\
         withdrawn_grace_ms = 10000\n",
        socket.display(),
        include.display()
    );
    let t = lab.transitd(&format!("{ACME}{bgp}"), &["--metrics", "127.0.0.1:9469"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let announced = || std::fs::read_to_string(&include).unwrap_or_default().contains("route 203.0.113.0/24 blackhole");
    wait_for("acme's prefix to be announced", Duration::from_secs(10), announced);
    assert_eq!(forwarded_ftp_syns(&lab), 10, "acme's, while it is a customer");

    let host = lab.capture_on("dut", &lab.dev("d0"), "d0-host", "ip dst host 203.0.113.100");
    let (server, _) = acme_parts();
    t.reload(&format!("{server}{bgp}"));
    let held = |t: &common::lab::Transitd| t.log().contains("1 customer prefixes withdrawn by reloads are held");
    wait_for("the reload", Duration::from_secs(10), || held(&t));
    assert!(t.log().contains("transitd: reloaded"), "{}", t.log());
    assert_eq!(metric(&scrape(&lab), "transitd_bgp_held_prefixes", &[]), 1.0, "held, 10 s from now");
    wait_for("the withdrawal", Duration::from_secs(10), || !announced());
    let ended = |t: &common::lab::Transitd| t.log().contains("the grace of 1 withdrawn prefixes ended");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=42000+i, dport=21, flags='S') for i in range(10)]");
    assert!(!ended(&t), "sent after the grace: give it longer\n{}", t.log());
    std::thread::sleep(Duration::from_secs(1));
    let withdrawn = [("verdict", "drop"), ("reason", "withdrawn_prefix")];
    assert_eq!(metric(&scrape(&lab), "transitd_packets_total", &withdrawn), 10.0);

    wait_for("the grace to end", Duration::from_secs(20), || ended(&t));
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=43000+i, dport=21, flags='S') for i in range(10)]");
    std::thread::sleep(Duration::from_secs(1));
    let m = scrape(&lab);
    let file = host.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert_eq!(metric(&m, "transitd_packets_total", &withdrawn), 10.0, "the host's after the grace");
    assert_eq!(metric(&m, "transitd_bgp_held_prefixes", &[]), 0.0, "its grace ended");
    let to_host = |ports: &str| tshark_frames(&file, &format!("tcp.dstport == 21 and tcp.srcport in {{{ports}}}"), &[]);
    assert_eq!(to_host("42000..42009").len(), 0, "handed to the host during the grace");
    assert_eq!(to_host("43000..43009").len(), 10, "the host's once the grace ended");
}

/// IPFIX from the live path: every packet sampled on the AF_XDP queue, the records sent
/// through the host's stack to a collector address on the upstream router, captured there
/// and read by tshark's IPFIX dissector: the FTP SYNs forwarded, the SSH SYNs dropped.
#[test]
fn sampled_flows_from_the_queue_reach_the_collector() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tf", 1);
    let config = format!("{ACME}\n[ipfix]\ncollector = \"10.2.0.1:4739\"\nsample = 1\nidle_timeout_s = 60\n");
    // From the start: the templates are sent first, and tshark reads records by them.
    let cap = lab.capture("up", "u1");
    let t = lab.transitd(&config, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=30000+i, dport=21, flags='S') for i in range(40)]");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=31000+i, dport=22, flags='S') for i in range(10)]");
    // Not idle for idle_timeout_s yet: reported when transitd stops.
    std::thread::sleep(Duration::from_millis(500));
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    let file = cap.finish();
    let fields = tshark(
        &file,
        &[
            "-d",
            "udp.port==4739,cflow",
            "-Y",
            "cflow and not icmp",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ]
        .into_iter()
        .chain(["-e", "cflow.dstport", "-e", "cflow.packets", "-e", "cflow.forwarding_status"])
        .collect::<Vec<_>>(),
    );
    let mut by: BTreeMap<(String, String), u64> = BTreeMap::new();
    // Template-only messages have no record fields.
    for line in fields.lines().filter(|l| !l.starts_with('\t')) {
        let cols: Vec<Vec<&str>> = line.split('\t').map(|c| c.split(',').collect()).collect();
        for ((port, packets), status) in cols[0].iter().zip(&cols[1]).zip(&cols[2]) {
            *by.entry((port.to_string(), status.to_string())).or_default() += packets.parse::<u64>().unwrap();
        }
    }
    // forwardingStatus 1: forwarded, 2: dropped (RFC 7270).
    assert_eq!(by.get(&("21".into(), "1".into())), Some(&40), "{by:?}\n{report}");
    assert_eq!(by.get(&("22".into(), "2".into())), Some(&10), "{by:?}\n{report}");
}

/// The capabilities the systemd unit grants (its `AmbientCapabilities=`), and nothing else,
/// are enough: transitd runs as `nobody` with exactly those (setpriv, bounding set too) and
/// forwards; with CAP_BPF taken away it cannot load its program and says so, and what it needs.
#[test]
fn the_units_capabilities_are_enough_to_run_as_nobody() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/transitd.service")).unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("the unit grants ambient capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(caps.len() >= 3 && caps.iter().any(|c| c == "+bpf"), "{caps:?}");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tc", 1);
    // nobody must be able to read the binary and the configuration.
    let dir = std::env::temp_dir().join(format!("{}-nobody", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let (binary, config) = (dir.join("transitd"), dir.join("transitd.toml"));
    std::fs::copy(env!("CARGO_BIN_EXE_transitd"), &binary).unwrap();
    // BGP too: a stand-in for BIRD's control socket, and an include file nobody may write.
    // (The check that the XDP program is still attached once looked the program up by name,
    // which needs CAP_SYS_ADMIN: under the unit it found transitd detached and withdrew
    // everything.)
    let bird = dir.join("bird");
    let (socket, include) = bird_stand_in(&bird);
    let with_bgp = format!(
        "{ACME}\n[bgp]\nbird_socket = \"{}\"\nbird_include = \"{}\"\nwithdraw_after_ms = 2000\n",
        socket.display(),
        include.display()
    );
    std::fs::write(&config, with_bgp).unwrap();
    for p in [&dir, &binary, &config] {
        Command::new("chmod").arg("a+rX").arg(p).status().unwrap();
    }
    Command::new("chmod").arg("a+rwx").arg(&bird).arg(&socket).status().unwrap();
    // Its runtime directory (the interface's lock), as systemd makes one for a unit's user.
    let runtime = dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    Command::new("chmod").arg("a+rwx").arg(&runtime).status().unwrap();
    let as_nobody = |caps: &[String]| {
        let list = caps.join(",");
        let mut c = lab.cmd("dut", "setpriv");
        c.env("RUNTIME_DIRECTORY", &runtime)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(format!("--inh-caps=-all,{list}"))
            .arg(format!("--ambient-caps=-all,{list}"))
            .arg(format!("--bounding-set=-all,{list}"))
            .arg(&binary)
            .args(["run", "--iface", &lab.dev("d0"), "--idle-sleep-us", "50", "--stats-interval", "0", "--config"])
            .arg(&config);
        c
    };

    let log = dir.join("run.log");
    let mut child =
        as_nobody(&caps).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("transitd as nobody to resolve its next hop", Duration::from_secs(20), || {
        read().contains("next hop 10.2.0.1 is at")
    });
    let cap = lab.capture("up", "u1");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=30000+i, dport=21, flags='S') for i in range(20)]");
    std::thread::sleep(Duration::from_millis(500));
    let file = cap.finish();
    // Announced, and still announced past a few checks of the XDP program (every 500 ms).
    let announced = || std::fs::read_to_string(&include).unwrap_or_default().contains("route 203.0.113.0/24 blackhole");
    wait_for("transitd as nobody to announce acme's prefix", Duration::from_secs(10), announced);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(announced(), "withdrawn while serving:\n{}", read());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", read());
    let gre = tshark(&file, &["-Y", "gre and not icmp and tcp.dstport == 21", "-T", "fields", "-e", "frame.number"]);
    assert_eq!(gre.lines().count(), 20, "forwarded as nobody:\n{}", read());

    let without_bpf: Vec<String> = caps.iter().filter(|c| *c != "+bpf").cloned().collect();
    let out = as_nobody(&without_bpf).output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("BPF") || said.contains("bpf"), "{said}");
    // libbpf's reason, and transitd's: what the refusal wants (it said only "Operation not
    // permitted", which reads as a kernel without BPF as well as a user without rights).
    assert!(said.contains("run transitd as root, or with the capabilities of its systemd unit: CAP_BPF"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload that names a next hop address the neighbour table does not hold yet (a router
/// being replaced) keeps sending to the previous next hop while the new one resolves, for
/// a bounded while, rather than dropping every frame at once; then it drops them as
/// `next_hop_unresolved`, as a start without one does.
#[test]
fn a_reload_to_an_unresolved_next_hop_keeps_the_previous_one_for_a_while() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tn", 1);
    let t = lab.transitd(ACME, &["--no-metrics"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10);
    // The previous next hop is kept 5 s: the capture and the sender (scapy's import takes
    // seconds on a slow machine) are ready before the reload, and send at the log line.
    let cap = lab.capture("up", "u1");
    let script = "from scapy.all import *\nimport sys\nprint('ready', flush=True)\nsys.stdin.readline()\n\
                  send([IP(dst='203.0.113.100')/TCP(sport=41000+i, dport=21, flags='S') for i in range(10)], verbose=0)\n";
    let mut sender = lab
        .cmd("snd", "/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sender.stdout.take().unwrap()), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    // 10.2.0.77 answers no one: it never resolves.
    t.reload(&ACME.replace("next_hop = \"10.2.0.1\"", "next_hop = \"10.2.0.77\""));
    wait_for("the previous next hop to be kept", Duration::from_secs(10), || {
        t.log().contains("next hop 10.2.0.77 is not in the neighbour table yet: frames go to the previous next hop's")
    });
    std::io::Write::write_all(sender.stdin.as_mut().unwrap(), b"go\n").unwrap();
    assert!(sender.wait().unwrap().success());
    let kept = tshark_frames(&cap.finish(), "gre and ip.src == 192.0.2.1 and not icmp", &[]).len();
    assert_eq!(kept, 10, "sent to the previous next hop meanwhile:\n{}", t.log());
    wait_for("the previous next hop to be given up", Duration::from_secs(15), || {
        t.log().contains("next hop 10.2.0.77 is not in the neighbour table: frames to encapsulate are dropped")
    });
    assert_eq!(forwarded_ftp_syns(&lab), 0, "dropped once the previous next hop is given up");
}

/// A list file the configuration names is watched with it: a feed rewriting the list (the
/// configuration untouched, no signal) reloads it, and the sources it now lists are dropped.
#[test]
fn rewriting_a_list_file_reloads_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tl", 1);
    let list = std::env::temp_dir().join(format!("transitd-blocked-{}.txt", std::process::id()));
    std::fs::write(&list, "192.0.2.99\n").unwrap();
    let config = format!("{ACME}{}", blocking_list(&list));
    let t = lab.transitd(&config, &["--no-metrics", "--watch-interval", "0.1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10, "the sender is not listed yet");
    // The feed writes a new file and renames it over the old one.
    let fresh = list.with_extension("new");
    std::fs::write(&fresh, "192.0.2.99\n10.1.0.2\n").unwrap();
    std::fs::rename(&fresh, &list).unwrap();
    wait_for("the list's change to be reloaded", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is listed now:\n{}", t.log());
    // SIGHUP with the configuration file gone waits for it to be written, and says so (it
    // waited without a word); written again, it is read (as it runs: nothing to apply), and
    // an edit after it is reloaded.
    let text = std::fs::read_to_string(&t.config).unwrap();
    std::fs::remove_file(&t.config).unwrap();
    t.hup();
    let waits = format!("SIGHUP: {} is missing; the reload waits", t.config.display());
    wait_for("the wait to be said", Duration::from_secs(5), || t.log().contains(&waits));
    std::fs::write(&t.config, &text).unwrap();
    wait_for("the written file to be read", Duration::from_secs(10), || {
        t.log().contains("is the running configuration again: nothing to apply")
    });
    assert_eq!(t.log().matches("transitd: reloaded").count(), 1, "{}", t.log());
    t.reload(&format!("{text}\n# edited\n"));
    wait_for("the edit to be reloaded", Duration::from_secs(10), || t.log().matches("transitd: reloaded").count() == 2);
    let _ = std::fs::remove_file(&list);
}

/// A reload rejected because a list file it adds is missing (the feed has not written it
/// yet) is tried again when the file is written: the file is watched as the rejected
/// configuration named it, and neither SIGHUP nor another edit of the configuration is
/// needed.
#[test]
fn writing_the_list_file_a_rejected_reload_named_applies_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("ty", 1);
    let list = std::env::temp_dir().join(format!("{}-blocked.txt", lab.prefix));
    let _ = std::fs::remove_file(&list);
    let t = lab.transitd(ACME, &["--no-metrics", "--watch-interval", "0.1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10, "nothing is listed");
    t.reload(&format!("{ACME}{}", blocking_list(&list)));
    wait_for("the reload to be rejected", Duration::from_secs(10), || t.log().contains("cannot read"));
    assert!(!t.log().contains("transitd: reloaded"), "{}", t.log());
    // The feed writes the list at last, renamed into place.
    let fresh = list.with_extension("new");
    std::fs::write(&fresh, "10.1.0.2\n").unwrap();
    std::fs::rename(&fresh, &list).unwrap();
    wait_for("the configuration to be tried again", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is listed now:\n{}", t.log());
    let _ = std::fs::remove_file(&list);
}

/// An edit of the configuration file that is rejected does not hold back a feed's list:
/// the list is applied with the configuration that runs (the text it was applied from), and
/// the edit stays rejected, said so at each such reload. An edit refused at a value names
/// the list too, and is tried again with it (and refused again) first; one that is not
/// TOML names nothing.
#[test]
fn a_rejected_edit_of_the_configuration_does_not_hold_back_a_list() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tq", 1);
    let list = std::env::temp_dir().join(format!("{}-blocked.txt", lab.prefix));
    std::fs::write(&list, "192.0.2.99\n").unwrap();
    let config = format!("{ACME}{}", blocking_list(&list));
    let t = lab.transitd(&config, &["--no-metrics", "--watch-interval", "0.1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10, "the sender is not listed yet");
    let reloads = |t: &common::lab::Transitd| t.log().matches("transitd: reloaded").count();
    let rejections = |t: &common::lab::Transitd| t.log().matches("rejected, the running configuration stays").count();
    let rewrite = |members: &str| {
        let fresh = list.with_extension("new");
        std::fs::write(&fresh, members).unwrap();
        std::fs::rename(&fresh, &list).unwrap();
    };

    t.reload(&config.replace("prefixes = [\"203.0.113.0/24\"]", "prefixes = [\"203.0.113.0/33\"]"));
    wait_for("the edit to be rejected", Duration::from_secs(10), || rejections(&t) == 1);
    rewrite("192.0.2.99\n10.1.0.2\n");
    wait_for("the list to be applied", Duration::from_secs(10), || reloads(&t) == 1);
    let log = t.log();
    assert!(log.contains("as last applied, a file it names changed"), "{log}");
    assert!(rejections(&t) >= 2, "the edit, tried again with the new list, is refused again:\n{log}");
    assert!(log.contains("stays rejected"), "{log}");
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is listed now:\n{log}");

    let before = rejections(&t);
    t.reload("[server\n");
    wait_for("the second edit to be rejected", Duration::from_secs(10), || rejections(&t) > before);
    rewrite("192.0.2.99\n");
    wait_for("the list to be applied again", Duration::from_secs(10), || reloads(&t) == 2);
    let log = t.log();
    assert!(log.matches("stays rejected").count() >= 2, "{log}");
    assert_eq!(forwarded_ftp_syns(&lab), 10, "the sender is not listed any more:\n{log}");
    let _ = std::fs::remove_file(&list);
}

/// A metrics port already taken (another instance's) stops the run before it attaches its
/// XDP program or says it runs: bound after, a second instance attached, told systemd it was
/// ready, then failed, and `Restart=on-failure` attached and detached it in a loop.
#[test]
fn a_taken_metrics_port_stops_the_run_before_it_attaches() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tm", 1);
    let hold = "import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', 9469))\ns.listen()\n\
                print('bound', flush=True)\ntime.sleep(60)";
    let mut holder = lab.cmd("dut", "/usr/bin/python3").args(["-c", hold]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "bound");
    let config = std::env::temp_dir().join(format!("{}-taken.toml", lab.prefix));
    std::fs::write(&config, ACME).unwrap();
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap()])
        .args(["--metrics", "127.0.0.1:9469"])
        .output()
        .unwrap();
    let _ = (holder.kill(), holder.wait(), std::fs::remove_file(&config));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--metrics 127.0.0.1:9469: Address already in use"), "{err}");
    assert!(!err.contains("running on") && !err.contains("bound in"), "attached before it failed: {err}");
}

/// A drop capture that fills its disk (a 64 KiB tmpfs) stops, and leaves a file that
/// tshark reads to its end holding exactly the frames counted written: the failed write
/// left a frame cut short at the end (tshark: "cut short in the middle of a packet", exit
/// 2), and the whole frames of that write before it in the file were counted not captured.
#[test]
fn a_drop_capture_that_fills_its_disk_keeps_whole_frames_all_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tk", 1);
    // Declared after the lab, the disk is unmounted first: the lab removes its directories.
    let disk = SmallDisk::mount(&std::env::temp_dir().join(format!("{}-tmpfs", lab.prefix)), "64k");
    let drops = disk.path.join("drops.pcapng");
    let drops_arg = drops.to_str().unwrap();
    let args = ["--metrics", "127.0.0.1:9469", "--capture-drops", drops_arg, "--capture-rate", "100000"];
    let t = lab.transitd(ACME, &args);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    // 1500 SSH SYNs dropped by acme's firewall: 128 bytes each in the capture, three disks'
    // worth.
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=20000+i, dport=22, flags='S') for i in range(1500)]");
    wait_for("the disk to fill", Duration::from_secs(10), || t.log().contains("No space left on device"));
    let m = scrape(&lab);
    let (_, report) = t.stop();
    let written = metric(&m, "transitd_drop_capture_packets_total", &[("result", "written")]);
    let failed = metric(&m, "transitd_drop_capture_packets_total", &[("result", "write_failed")]);
    let bytes = metric(&m, "transitd_drop_capture_file_bytes", &[]);
    assert!(written > 100.0 && failed > 0.0, "{written} written, {failed} failed\n{report}");
    assert_eq!(std::fs::metadata(&drops).unwrap().len() as f64, bytes, "the file is what was counted written");
    let captured = tshark(&drops, &["-T", "fields", "-e", "frame.comment", "-e", "tcp.dstport"]);
    assert_eq!(captured.lines().count() as f64, written, "{report}");
    assert!(captured.lines().all(|l| l == "drop: firewall; customer acme\t22"), "{captured}");
}

/// `--capture-drops` into a FIFO holds neither the start nor the stop. With no reader yet,
/// the start is refused at once, saying why: the open waited for one for good, and the
/// SIGTERM and SIGINT caught by then ended nothing. A reader that stops reading (a tshark
/// suspended) leaves the writer's last write unfinished: the stop waits for it a while,
/// then ends the run with its report (it hung, the XDP program already detached, until
/// SIGKILL).
#[test]
fn a_drop_capture_into_a_fifo_holds_neither_the_start_nor_the_stop() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tp", 1);
    let fifo = std::env::temp_dir().join(format!("{}-drops.fifo", lab.prefix));
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let config = std::env::temp_dir().join(format!("{}-fifo.toml", lab.prefix));
    std::fs::write(&config, ACME).unwrap();
    let mut unread = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--no-metrics", "--config", config.to_str().unwrap()])
        .args(["--capture-drops", fifo.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = std::time::Instant::now();
    while unread.try_wait().unwrap().is_none() && began.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = unread.try_wait().unwrap().is_none();
    if held {
        let _ = unread.kill();
    }
    let out = unread.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!held, "still starting 20 s on, held by the FIFO's open: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a FIFO no one reads") && !err.contains("running on"), "{err}");

    // A reader that opens the FIFO and never reads it (opened without waiting for a writer:
    // open before transitd starts).
    let script = "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n\
                  print('open', flush=True)\ntime.sleep(120)";
    let mut stalled =
        Command::new("/usr/bin/python3").args(["-c", script]).arg(&fifo).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stalled.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "open");
    let capture = ["--no-metrics", "--capture-drops", fifo.to_str().unwrap(), "--capture-rate", "100000"];
    let mut t = lab.transitd(ACME, &capture);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    // 192 kB of dropped frames for the capture: past the pipe's 64 KiB.
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=20000+i, dport=22, flags='S') for i in range(1500)]");
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").args(["-TERM", &t.pid().to_string()]).status();
    let stopping = std::time::Instant::now();
    while t.is_running() && stopping.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let ended = !t.is_running();
    let _ = (stalled.kill(), stalled.wait());
    let log = t.log();
    assert!(ended, "still stopping 30 s after SIGTERM:\n{log}");
    let (code, report) = t.stop();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("its last write had not returned") && log.contains("left unfinished"), "{log}");
    assert!(report.contains("umem frames"), "the final report: {report}");
    let _ = std::fs::remove_file(&fifo);
}
