//! Soft-unicast's egress side: connections opened with `transitd::connect` take their source
//! ports inside this server's slice, chosen by the kernel (IP_BIND_ADDRESS_NO_PORT,
//! IP_LOCAL_PORT_RANGE), thousands of them, in a network namespace of their own. Needs root.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

use common::*;
use transitd::connect::{self, Slice};

/// A network namespace with the egress address on `lo` and the whole port range ephemeral;
/// removed on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let n = Netns(format!("{name}{}", std::process::id() % 1000));
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        ip(&["netns", "add", &n.0]);
        ip(&["-n", &n.0, "link", "set", "lo", "up"]);
        ip(&["-n", &n.0, "addr", "add", "198.18.200.1/32", "dev", "lo"]);
        let sysctl = Command::new("ip")
            .args(["netns", "exec", &n.0, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"])
            .status()
            .unwrap();
        assert!(sysctl.success());
        n
    }

    /// Moves the calling thread into the namespace (threads it spawns later follow).
    fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        // SAFETY: setns(2) on a namespace file we hold open; it changes only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Server a1's slices of addresses tagged GB in the fleet test configuration.
fn a1_slices() -> Vec<Slice> {
    let text = std::fs::read_to_string(root().join("dataplane/tests/data/soft-unicast.toml")).unwrap();
    let snap = snapshot(&text);
    let su = snap.soft_unicast.unwrap();
    let want = portslice::select::Want { country: "gb".into(), class: String::new() };
    connect::slices(&su.plan, &want, "a1")
}

#[test]
fn thousands_of_connections_take_their_ports_inside_the_slice() {
    assert!(lab_root(), "needs root (network namespaces)");
    let ns = Netns::new("tdconn");
    let slices = a1_slices();
    assert_eq!(slices.len(), 16);
    let in_a_slice = |p: u16| slices.iter().any(|s| (s.first..=s.last).contains(&p));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                let usable = connect::within_system_range(&slices, connect::system_port_range().unwrap()).unwrap();
                // Two listeners, each drained by its own thread so that no backlog fills.
                let targets: Vec<SocketAddrV4> =
                    ["127.0.0.1:9000", "127.0.0.2:9000"].iter().map(|a| a.parse().unwrap()).collect();
                let stop = std::sync::atomic::AtomicBool::new(false);
                // The listeners stop however this thread ends: a failed assertion below
                // otherwise left them polling and the test hanging instead of failing.
                struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
                impl Drop for StopOnDrop<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                std::thread::scope(|inner| {
                    let mut accepted = Vec::new();
                    for t in &targets {
                        let l = TcpListener::bind(t).unwrap();
                        l.set_nonblocking(true).unwrap();
                        let stop = &stop;
                        accepted.push(inner.spawn(move || {
                            let mut kept = Vec::new();
                            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                                match l.accept() {
                                    Ok((s, _)) => kept.push(s),
                                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                                }
                            }
                            kept.len()
                        }));
                    }
                    let _stop_listeners = StopOnDrop(&stop);
                    // 3000 TCP connections, all open at once, to two destinations.
                    let mut streams: Vec<TcpStream> = Vec::new();
                    for i in 0..3000 {
                        let (_, s) = connect::first_available(
                            &usable,
                            |s| connect::tcp(s, targets[i % 2], Some(1432)),
                            |t| Ok(t.local_addr()?.port()),
                        )
                        .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                        streams.push(s);
                    }
                    let ports: Vec<u16> = streams.iter().map(|s| s.local_addr().unwrap().port()).collect();
                    assert!(ports.iter().all(|&p| in_a_slice(p)), "a port outside a1's slices");
                    assert!(
                        streams
                            .iter()
                            .all(|s| s.local_addr().unwrap().ip()
                                == std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 200, 1)))
                    );
                    // The port is chosen per destination: a 2048-port slice holds all 3000.
                    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
                    assert!(distinct.len() < 3000, "ports are shared across destinations");
                    assert!(ports.iter().all(|&p| (1024..=3071).contains(&p)), "all in the first slice");

                    // 2500 UDP sockets: a UDP port serves one socket, so they spill over
                    // into the second of a1's slices, and never outside them.
                    let mut udp: Vec<UdpSocket> = Vec::new();
                    for i in 0..2500 {
                        let (_, u) = connect::first_available(
                            &usable,
                            |s| connect::udp(s, "127.0.0.1:9001".parse().unwrap()),
                            |u| Ok(u.local_addr()?.port()),
                        )
                        .unwrap_or_else(|e| panic!("UDP socket {i}: {e}"));
                        udp.push(u);
                    }
                    let uports: std::collections::BTreeSet<u16> =
                        udp.iter().map(|u| u.local_addr().unwrap().port()).collect();
                    assert_eq!(uports.len(), 2500, "one port each");
                    assert!(uports.iter().all(|&p| in_a_slice(p)));
                    assert!(uports.iter().any(|&p| (5120..=7167).contains(&p)), "the second slice was used");
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    let accepted: usize = accepted.into_iter().map(|h| h.join().unwrap()).sum();
                    assert_eq!(accepted, 3000);
                });
            })
            .join()
            .unwrap();
    });
}

#[test]
fn slices_outside_the_system_range_are_refused_with_the_fix() {
    let slices = [Slice { addr: Ipv4Addr::new(198, 18, 200, 1), first: 1024, last: 3071 }];
    let err = connect::within_system_range(&slices, (32768, 60999)).unwrap_err().to_string();
    assert!(err.contains("sysctl -w net.ipv4.ip_local_port_range"), "{err}");
    let cut = connect::within_system_range(
        &[Slice { addr: Ipv4Addr::new(198, 18, 200, 1), first: 31744, last: 33791 }],
        (32768, 60999),
    )
    .unwrap();
    assert_eq!((cut[0].first, cut[0].last), (32768, 33791));
}

fn lab_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}
