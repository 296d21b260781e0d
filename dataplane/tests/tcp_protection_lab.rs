//! TCP protection on the live path, against real TCP stacks: Linux clients in the sender
//! namespace open 200 connections to a server behind the customer's router (Open vSwitch's
//! userspace GRE datapath, scripts/ovs-router) while a spoofed ACK flood and a SYN flood of
//! random sources run through the same transitd. Every connection completes (the first ones
//! through the SYN challenge, which their kernel answers); what reaches the customer's LAN of the floods is counted there
//! with tcpdump: ACKs of no connection never, SYNs at most at the rule's rate.
//! Needs root, Open vSwitch and scapy; builds and removes its own lab.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::{Lab, SERIAL, acme_customer, acme_parts, wait_for};
use common::*;

const SYN_RATE: u64 = 5;
const SYN_BURST: u64 = 5;
const CONNECTIONS: usize = 200;

/// The lab's Acme ([`acme_parts`]) without its firewall, under TCP protection mitigating SYNs
/// to the server's port (5001) past `SYN_RATE`.
fn config() -> String {
    let ((server, _), customer) = (acme_parts(), acme_customer());
    format!(
        r#"{server}[tcp_protection]
grace_period = 0
{customer}[[customer.tcp_protection.rule]]
name = "web"
match = "tcp.dstport == 5001"
mode = "mitigate"
syn_rate = {SYN_RATE}
syn_burst = {SYN_BURST}
"#
    )
}

#[test]
fn real_connections_complete_through_floods_and_the_floods_do_not() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("otp", 1);
    let _router = lab.ovs_router("cust", "c0", "198.51.100.1/24", "198.51.100.254", "lan", "10.213.0.0");
    let t = lab.transitd(&config(), &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));

    // What reaches the customer's LAN host, seen on its own interface.
    let tcpdump = lab.capture_on("lan", "any", "lan", "tcp port 5001");

    // The server: answers each connection's line with "ok", counts them.
    let server_script = r#"
import socket, sys, threading, time
n = int(sys.argv[1]); done = 0; lock = threading.Lock(); deadline = time.time() + 120
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(512); s.settimeout(0.5)
def serve(c):
    global done
    c.settimeout(30)
    if c.recv(100).startswith(b"hello"):
        c.sendall(b"ok\n")
        with lock: done += 1
    c.close()
while True:
    with lock:
        if done >= n: break
    try: c, _ = s.accept()
    except socket.timeout:
        if time.time() > deadline: break
        continue
    threading.Thread(target=serve, args=(c,)).start()
print(done)
"#;
    let server = lab
        .cmd("lan", "/usr/bin/python3")
        .args(["-c", server_script, &CONNECTIONS.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // The floods, from random spoofed sources in 11.0.0.0/8, for as long as the clients run:
    // ACKs (half with data) of no connection, and SYNs.
    let flood_script = r#"
import random, sys, time
from scapy.all import IP, TCP, Raw, send
until = time.time() + float(sys.argv[1]); sent = [0, 0]
rnd = random.Random(7)
def src(): return "11.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
while time.time() < until:
    # ACKs and SYNs interleaved, so that the SYN threshold never has a token to spare.
    burst = []
    for i in range(200):
        burst.append(IP(src=src(), dst="203.0.113.10")/TCP(sport=rnd.randrange(1024, 65536), dport=5001,
                     flags="A", seq=rnd.randrange(2**32), ack=rnd.randrange(2**32))/(Raw(b"x" * 40) if i % 2 else b""))
        burst.append(IP(src=src(), dst="203.0.113.10")/TCP(sport=rnd.randrange(1024, 65536), dport=5001,
                     flags="S", seq=rnd.randrange(2**32)))
    send(burst, verbose=0)
    if sent[0] == 0:
        print("flooding", flush=True)
    sent[0] += 200; sent[1] += 200
print(sent[0], sent[1])
"#;
    let flood_seconds = 12.0;
    let mut flood = lab
        .cmd("snd", "/usr/bin/python3")
        .args(["-c", flood_script, &flood_seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let flood_start = Instant::now();
    // Its first burst is out (scapy's import takes seconds on a slow machine), and another
    // second of it: the flood is well over the threshold when the clients start.
    let mut first = [0u8; 9];
    std::io::Read::read_exact(flood.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"flooding\n");
    std::thread::sleep(Duration::from_secs(1));

    // The clients: 200 connections, 10 at a time, each says hello and waits for "ok".
    let client_script = r#"
import socket, sys, threading
n = int(sys.argv[1]); ok = 0; lock = threading.Lock()
def one(i):
    global ok
    try:
        c = socket.create_connection(("203.0.113.10", 5001), timeout=30)
        c.settimeout(30); c.sendall(b"hello %d\n" % i)
        if c.recv(10).startswith(b"ok"):
            with lock: ok += 1
        c.close()
    except OSError as e:
        print("connection", i, e, file=sys.stderr)
threads = []
for i in range(n):
    t = threading.Thread(target=one, args=(i,)); t.start(); threads.append(t)
    if len(threads) % 10 == 0:
        for t in threads[-10:]: t.join()
for t in threads: t.join()
print(ok)
"#;
    let clients_start = Instant::now();
    let clients = lab.run("snd", "/usr/bin/python3", &["-c", client_script, &CONNECTIONS.to_string()]);
    let clients_took = clients_start.elapsed();
    let completed: usize = String::from_utf8_lossy(&clients.stdout).trim().parse().unwrap_or(0);
    let flood_out = flood.wait_with_output().unwrap();
    let flood_took = flood_start.elapsed();
    let sent: Vec<u64> =
        String::from_utf8_lossy(&flood_out.stdout).split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let served = server.wait_with_output().unwrap();
    let served: usize = String::from_utf8_lossy(&served.stdout).trim().parse().unwrap_or(0);
    let capture = tcpdump.finish();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");

    assert_eq!(
        completed,
        CONNECTIONS,
        "every real connection completed (the clients ran {clients_took:?})\n{}\n{report}",
        String::from_utf8_lossy(&clients.stderr)
    );
    assert_eq!(served, CONNECTIONS);
    let (acks_sent, syns_sent) = (sent[0], sent[1]);
    let flood_rate = syns_sent as f64 / flood_took.as_secs_f64();
    assert!(flood_rate > 5.0 * SYN_RATE as f64, "the SYN flood ({flood_rate:.0}/s) is well over the threshold");

    // What of the floods reached the LAN host (tshark reads what tcpdump saw there).
    let count = |filter: &str| tshark_frames(&capture, filter, &[]).len() as u64;
    let acks_in = count("ip.src == 11.0.0.0/8 and tcp.flags.syn == 0");
    let syns_in = count("ip.src == 11.0.0.0/8 and tcp.flags.syn == 1");
    assert!(acks_in * 1000 <= acks_sent, "{acks_in} of {acks_sent} flood ACKs reached the customer");
    let allowed = SYN_RATE * (flood_took.as_secs() + 2) + SYN_BURST;
    assert!(syns_in <= allowed, "{syns_in} flood SYNs reached the customer (at most {allowed} at {SYN_RATE}/s)");
    assert!(report.contains("tcp_out_of_state_ack"), "{report}");
    assert!(report.contains("syn_challenge "), "the flood was challenged:\n{report}");
    // The clients came while the threshold was spent: challenged, they answered.
    assert!(report.contains("syn_challenge_answer"), "the clients answered challenges:\n{report}");
    assert!(!report.contains("NOT CONSERVED"), "{report}");
    let _ = std::fs::remove_file(capture);
}
