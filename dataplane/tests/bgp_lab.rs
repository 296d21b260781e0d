//! BGP in the veth lab (scripts/veth-lab with BGP=1): BIRD on two transitd servers (`dut`,
//! `dut2`, both serving customer Acme from anycast 192.0.2.1) peers with BIRD on the
//! upstream router, which installs what it learns into its kernel table. The upstream's own
//! table is the oracle: it routes Acme's prefix to `dut` (preferred) while dut's transitd
//! runs, to `dut2` within a stated bound after dut's transitd is killed with SIGKILL, hangs
//! (SIGSTOP) or loses its XDP program, and to `dut` again after a restart; the sender's
//! traffic follows, as GRE arriving from one server or the other shows. Reloads add and
//! remove announcements; a clean stop withdraws, after a drain with GRACEFUL_SHUTDOWN (RFC
//! 8326), which the upstream honours. Needs root and BIRD 2; one lab at a time.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::lab::{ACME, Bird, Capture, Lab, SERIAL, Transitd, scapy_send, wait_for};
use common::*;

/// How long a worker may stand still before its server withdraws. Not shorter: on this
/// lab's two shared cores (two transitd, three BIRD, the harness) both servers' idle workers
/// were seen to go 0.9 s without running at once, and at 500 ms each then withdrew its
/// prefixes just as the test sent its traffic; 2 s left a slower CI machine too little
/// margin. Production workers spin on cores of their own.
const WITHDRAW_AFTER_MS: u64 = 3000;

/// How soon the upstream stops routing to a server whose transitd died (BIRD sends the
/// withdrawal as soon as it is reconfigured).
const WITHDRAWN_WITHIN: Duration = Duration::from_millis(WITHDRAW_AFTER_MS + 3000);

/// How long a server must be well after a withdrawal before it announces again.
const ANNOUNCE_AFTER_MS: u64 = 2000;

/// One transitd server of the lab: its BIRD (examples/bgp/bird.conf, addressed for it) and
/// the directory its include lives in.
struct Server {
    bird: Bird,
    routes: PathBuf,
    ns: &'static str,
    dev: &'static str,
    next_hop: &'static str,
}

impl Server {
    fn start(lab: &Lab, ns: &'static str, dev: &'static str, subnet: &str, subnet6: &str) -> Server {
        let routes = std::env::temp_dir().join(format!("{}-{ns}-routes", lab.prefix));
        let _ = std::fs::remove_dir_all(&routes);
        std::fs::create_dir_all(&routes).unwrap();
        let example = std::fs::read_to_string(root().join("examples/bgp/bird.conf")).unwrap();
        let config = example
            .replace("/run/transitd/*.conf", &format!("{}/*.conf", routes.display()))
            .replace("10.2.0.", &format!("{subnet}."))
            .replace("2001:db8:2::", &format!("{subnet6}::"));
        let bird = lab.bird(ns, &config);
        let next_hop = if ns == "dut" { "10.2.0.1" } else { "10.4.0.1" };
        Server { bird, routes, ns, dev, next_hop }
    }

    /// Acme's configuration with a [bgp] section for this server, and `extra` after it.
    fn config(&self, extra: &str) -> String {
        format!(
            "{}\n[bgp]\nbird_socket = \"{}\"\nbird_include = \"{}\"\nwithdraw_after_ms = {WITHDRAW_AFTER_MS}\nannounce_after_ms = {ANNOUNCE_AFTER_MS}\n{extra}",
            ACME.replace("10.2.0.1", self.next_hop)
                .replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8:ffff::1\"")
                .replace("prefixes = [\"203.0.113.0/24\"]", "prefixes = [\"203.0.113.0/24\", \"2001:db8:acbe::/48\"]"),
            self.bird.socket.display(),
            self.routes.join("bird.conf").display()
        )
    }

    /// The marker a run keeps while it announces (`<bird_include>.running`).
    fn marker(&self) -> PathBuf {
        self.routes.join("bird.conf.running")
    }

    /// Starts this server's transitd and waits until it can forward (its next hop resolved).
    fn transitd(&self, lab: &Lab, extra: &str) -> Transitd {
        let t = lab.transitd_on(self.ns, self.dev, &self.config(extra), &[]);
        let resolved = format!("next hop {} is at", self.next_hop);
        wait_for(&format!("{}'s next hop to resolve", self.ns), Duration::from_secs(15), || {
            t.log().contains(&resolved)
        });
        t
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.routes);
    }
}

/// Where the upstream's kernel routes `prefix` (the `via` address), if anywhere.
fn upstream_route(lab: &Lab, family: &str, prefix: &str) -> Option<String> {
    let out = lab.run("up", "ip", &[family, "route", "show", prefix]);
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "via").map(|w| w[1].to_string())
}

/// GRE frames from Acme's anycast address in a capture of the upstream's side of a link
/// (not the customer router's ICMP errors about them, which quote GRE on their way back).
fn gre_from_anycast(file: &Path) -> usize {
    tshark_frames(file, "gre and ip.src == 192.0.2.1 and not icmp", &[]).len()
}

/// Sends 20 FTP SYNs to Acme from the sender; returns how many GRE frames came back to the
/// upstream from `dut` (link u1) and from `dut2` (u4).
fn send_and_count(lab: &Lab) -> (usize, usize) {
    let (a, b): (Capture, Capture) = (lab.capture("up", "u1"), lab.capture("up", "u4"));
    scapy_send(lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=40000+i, dport=21, flags='S') for i in range(20)]");
    (gre_from_anycast(&a.finish()), gre_from_anycast(&b.finish()))
}

#[test]
fn the_upstream_routes_to_a_running_transitd_and_away_from_a_dead_or_hung_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::bgp("bgp");
    let upstream =
        lab.bird("up", &std::fs::read_to_string(root().join("dataplane/tests/data/bird-upstream.conf")).unwrap());
    let one = Server::start(&lab, "dut", "d0", "10.2.0", "2001:db8:2");
    let two = Server::start(&lab, "dut2", "d1", "10.4.0", "2001:db8:4");
    let mut first = one.transitd(&lab, "");
    let second = two.transitd(&lab, "");

    let via = |prefix| upstream_route(&lab, "-4", prefix);
    wait_for("the upstream to route Acme via dut", Duration::from_secs(30), || {
        via("203.0.113.0/24").as_deref() == Some("10.2.0.2")
    });
    assert_eq!(via("192.0.2.1").as_deref(), Some("10.2.0.2"), "the anycast address is announced too");
    // The guard, transitd's child, holds none of its sockets: libxdp opens the AF_XDP ones
    // without close-on-exec, and a guard outliving a killed transitd kept every queue bound.
    let guard = children(first.pid()).into_iter().next().expect("the guard runs");
    let (ours, its) = (sockets(first.pid()), sockets(guard));
    assert!(!ours.is_empty(), "transitd holds its AF_XDP socket: {ours:?}");
    assert!(ours.is_disjoint(&its), "the guard inherited {:?}", ours.intersection(&its).collect::<Vec<_>>());
    // The example's IPv6 session carries the IPv6 prefixes.
    wait_for("Acme's IPv6 prefix via dut", Duration::from_secs(20), || {
        upstream_route(&lab, "-6", "2001:db8:acbe::/48").as_deref() == Some("2001:db8:2::2")
    });
    assert_eq!(upstream_route(&lab, "-6", "2001:db8:ffff::1").as_deref(), Some("2001:db8:2::2"));
    wait_for("dut2 to announce Acme too (the backup)", Duration::from_secs(30), || {
        upstream.birdc("show route 203.0.113.0/24 all").contains("dut2_4")
    });
    assert_eq!(send_and_count(&lab), (20, 0), "while dut runs, its transitd forwards all of Acme's traffic");

    // A reload that adds a customer announces its prefix; one that removes it withdraws it.
    let beta = "[[customer]]\nname = \"beta\"\nprefixes = [\"100.65.0.0/24\"]\n";
    first.reload(&one.config(beta));
    wait_for("beta's prefix announced after a reload", Duration::from_secs(10), || via("100.65.0.0/24").is_some());
    first.reload(&one.config(""));
    wait_for("beta's prefix withdrawn after a reload", Duration::from_secs(10), || via("100.65.0.0/24").is_none());

    // kill -9: the guard sees its pipe close and withdraws.
    first.kill9();
    let took = wait_for("Acme's route to move to dut2", WITHDRAWN_WITHIN, || {
        via("203.0.113.0/24").as_deref() == Some("10.4.0.2")
    });
    eprintln!("withdrawn {took:?} after kill -9");
    assert!(first.log().contains("withdrew every prefix (transitd exited)"), "{}", first.log());
    assert_eq!(send_and_count(&lab), (0, 20), "dut2 takes the traffic");

    // A restart announces again, once well for announce_after_ms: the killed run left its
    // marker, and a crash loop must not flap the prefixes at every restart.
    assert!(one.marker().exists(), "kill -9 leaves the run's marker");
    let first = one.transitd(&lab, "");
    wait_for("Acme's route back via dut", Duration::from_secs(30), || {
        via("203.0.113.0/24").as_deref() == Some("10.2.0.2")
    });
    assert!(first.log().contains("did not stop cleanly"), "{}", first.log());
    assert!(first.log().contains("; 1 such start in a row)"), "{}", first.log());
    assert_eq!(send_and_count(&lab), (20, 0));

    // A hung transitd (stopped, its guard still running) says nothing: withdrawn after
    // withdraw_after_ms; announced again once it has run well for announce_after_ms.
    let pid = first.pid().to_string();
    lab.run("dut", "kill", &["-STOP", &pid]);
    let took = wait_for("withdrawal from a hung transitd", WITHDRAWN_WITHIN, || {
        via("203.0.113.0/24").as_deref() == Some("10.4.0.2")
    });
    eprintln!("withdrawn {took:?} after SIGSTOP");
    // Stopped well past withdraw_after_ms, so that transitd, woken, knows its guard heard
    // nothing (not only that its workers stood still).
    std::thread::sleep(Duration::from_millis(WITHDRAW_AFTER_MS + 1000));
    lab.run("dut", "kill", &["-CONT", &pid]);
    let took = wait_for("Acme's route back via dut after SIGCONT", Duration::from_secs(20), || {
        via("203.0.113.0/24").as_deref() == Some("10.2.0.2")
    });
    eprintln!("announced again {took:?} after SIGCONT");
    assert!(took >= Duration::from_millis(ANNOUNCE_AFTER_MS), "held down for announce_after_ms: {took:?}");
    let log = first.log();
    assert!(log.contains("withdrew every prefix (transitd said nothing for longer than withdraw_after_ms)"), "{log}");
    assert!(log.contains("withdrawing every BGP announcement: transitd said nothing to its guard"), "{log}");
    assert!(log.contains("well again: announcing once well for announce_after_ms"), "{log}");

    // The XDP program detached under it (bpftool, as an operator's mistake would): transitd
    // sees it is gone and ends the run, which withdraws.
    let prog = xdp_program_id(&lab, "dut", &lab.dev("d0"));
    let links: serde_json::Value =
        serde_json::from_slice(&lab.run("dut", "bpftool", &["-j", "link", "show"]).stdout).unwrap();
    let link = links.as_array().unwrap().iter().find(|l| l["prog_id"] == prog).expect("transitd's XDP link");
    lab.run("dut", "bpftool", &["link", "detach", "id", &link["id"].to_string()]);
    wait_for("withdrawal after the XDP program is detached", WITHDRAWN_WITHIN, || {
        via("203.0.113.0/24").as_deref() == Some("10.4.0.2")
    });
    assert!(first.log().contains("XDP program is no longer attached"), "{}", first.log());

    // A clean stop withdraws before the workers stop: with dut2 stopped, nobody announces.
    // It removes the marker, so that a start after it announces at once.
    assert!(two.marker().exists());
    let (code, _) = second.stop();
    assert_eq!(code, 0);
    wait_for("withdrawal on a clean stop", WITHDRAWN_WITHIN, || via("203.0.113.0/24").is_none());
    assert!(!two.marker().exists(), "a clean stop removes the marker");
    let mut second = two.transitd(&lab, "");
    wait_for("dut2 to announce again after its clean stop", Duration::from_secs(30), || {
        via("203.0.113.0/24").as_deref() == Some("10.4.0.2")
    });
    assert!(!second.log().contains("did not stop cleanly"), "{}", second.log());
    assert!(!second.log().contains("announcing once well"), "{}", second.log());

    // systemd stops the unit by signalling all its processes at once, the guard too, which
    // withdraws and exits: the run still forwards for its drain after the withdrawal. (A tick
    // between the two took the guard for lost, "starting another", and the run skipped it.)
    let guard = children(second.pid()).into_iter().next().expect("the guard runs");
    let signalled = std::time::Instant::now();
    lab.run("dut2", "kill", &["-TERM", &second.pid().to_string(), &guard.to_string()]);
    wait_for("dut2's transitd to stop", Duration::from_secs(30), || !second.is_running());
    let took = signalled.elapsed();
    wait_for("withdrawal on a stop as systemd's", WITHDRAWN_WITHIN, || via("203.0.113.0/24").is_none());
    assert!(!second.log().contains("the BGP guard is gone"), "{}", second.log());
    assert!(took >= Duration::from_millis(500), "stopped {took:?} after the signal: no drain after the withdrawal");
    assert!(!two.marker().exists(), "a stop as asked removes the marker");

    // A BIRD that takes the guard's connection and answers nothing (stopped here; busy, in
    // the field) holds no stop: the guard waits for it for good (nothing else would tell it),
    // and a run that waited with the guard hung until the service manager's kill, its final
    // report lost. The run waits a bounded time and stops; the guard, left alone, withdraws
    // once BIRD answers.
    let mut third = two.transitd(&lab, "");
    wait_for("dut2 to announce again", Duration::from_secs(30), || {
        via("203.0.113.0/24").as_deref() == Some("10.4.0.2")
    });
    let bird = two.bird.pid().to_string();
    lab.run("dut2", "kill", &["-STOP", &bird]);
    lab.run("dut2", "kill", &["-TERM", &third.pid().to_string()]);
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("dut2's transitd to stop while its BIRD answers nothing", Duration::from_secs(40), || {
            !third.is_running()
        })
    }));
    lab.run("dut2", "kill", &["-CONT", &bird]);
    assert!(stopped.is_ok(), "the run hung on its guard's withdrawal:\n{}", third.log());
    assert!(third.log().contains("it goes on alone"), "{}", third.log());
    wait_for("the guard left alone to withdraw once BIRD answers", Duration::from_secs(30), || {
        via("203.0.113.0/24").is_none()
    });
}

/// The route to Acme's IPv4 prefix the upstream learnt from BGP protocol `protocol` (`dut4`,
/// `dut2_4`), its first line and its attributes, as `birdc show route all` shows it (a
/// route's first line names its protocol in brackets; its attributes follow, each indented
/// by a tab), if it holds one.
fn learnt_from(upstream: &Bird, protocol: &str) -> Option<String> {
    let text = upstream.birdc("show route 203.0.113.0/24 all");
    let mut lines = text.lines().skip_while(|l| !l.contains(&format!("[{protocol} ")));
    let first = lines.next()?;
    let attributes: Vec<&str> = lines.take_while(|l| l.starts_with('\t')).collect();
    Some(format!("{first}\n{}", attributes.join("\n")))
}

/// The community RFC 8326 names GRACEFUL_SHUTDOWN (65535:0), as `birdc` shows it on a route.
const GRACEFUL_SHUTDOWN: &str = "BGP.community: (65535,0)";

/// How long a stop drains by default (`graceful_shutdown_ms`, which the lab leaves unset).
const DEFAULT_DRAIN: Duration = Duration::from_millis(5000);

/// A stop drains before it withdraws (RFC 8326): dut's transitd, stopped as systemd stops it
/// (SIGTERM to it and its guard at once), announces Acme's prefix again with the
/// GRACEFUL_SHUTDOWN community and goes on running for graceful_shutdown_ms (its default)
/// before it withdraws. The upstream's BIRD is the oracle: the route it learnt from dut
/// carries 65535:0 before it is withdrawn, and, honouring it as RFC 8326 §4.1 asks
/// (bird-upstream.conf: LOCAL_PREF 0), the upstream routes Acme to dut2 while dut's transitd
/// still runs, so that the sender's traffic arrives from dut2 before dut withdraws anything.
/// Withdrawn at once, the route stayed dut's until the withdrawal, and the traffic on its way
/// meanwhile was lost.
#[test]
fn a_stop_announces_graceful_shutdown_before_it_withdraws() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::bgp("gshut");
    let upstream =
        lab.bird("up", &std::fs::read_to_string(root().join("dataplane/tests/data/bird-upstream.conf")).unwrap());
    let one = Server::start(&lab, "dut", "d0", "10.2.0", "2001:db8:2");
    let two = Server::start(&lab, "dut2", "d1", "10.4.0", "2001:db8:4");
    let mut first = one.transitd(&lab, "");
    let _second = two.transitd(&lab, "");
    let via = || upstream_route(&lab, "-4", "203.0.113.0/24");
    wait_for("the upstream to route Acme via dut", Duration::from_secs(30), || via().as_deref() == Some("10.2.0.2"));
    wait_for("dut2 to announce Acme too (the backup)", Duration::from_secs(30), || {
        learnt_from(&upstream, "dut2_4").is_some()
    });
    let before = learnt_from(&upstream, "dut4").unwrap_or_default();
    assert!(!before.contains(GRACEFUL_SHUTDOWN), "marked before the stop: {before}");

    let guard = children(first.pid()).into_iter().next().expect("the guard runs");
    let signalled = std::time::Instant::now();
    lab.run("dut", "kill", &["-TERM", &first.pid().to_string(), &guard.to_string()]);
    let marked = wait_for("dut's route to carry GRACEFUL_SHUTDOWN", Duration::from_secs(5), || {
        learnt_from(&upstream, "dut4").is_some_and(|r| r.contains(GRACEFUL_SHUTDOWN))
    });
    wait_for("the upstream to route Acme via dut2", Duration::from_secs(5), || via().as_deref() == Some("10.4.0.2"));
    let moved = signalled.elapsed();
    assert!(first.is_running(), "dut's transitd stopped {moved:?} after the signal, before the traffic moved");
    assert!(learnt_from(&upstream, "dut4").is_some(), "dut withdrew before the traffic moved");
    eprintln!("marked {marked:?}, the traffic moved {moved:?} after the signal");
    assert_eq!(send_and_count(&lab), (0, 20), "the sender's traffic goes to dut2 while dut drains");

    wait_for("dut's transitd to stop", Duration::from_secs(30), || !first.is_running());
    let stopped = signalled.elapsed();
    wait_for("dut's route to be withdrawn", WITHDRAWN_WITHIN, || learnt_from(&upstream, "dut4").is_none());
    assert!(stopped >= DEFAULT_DRAIN, "stopped {stopped:?} after the signal, within its drain");
    let log = first.log();
    assert!(log.contains("draining: every prefix announced with GRACEFUL_SHUTDOWN"), "{log}");
    assert!(log.contains("withdrew every prefix (transitd stopped the guard)"), "{log}");
    assert!(!log.contains("the BGP guard is gone"), "{log}");
    assert!(!one.marker().exists(), "a stop as asked removes the marker");
}

/// The processes whose parent is `pid` (`/proc/*/stat`).
fn children(pid: u32) -> Vec<u32> {
    let parent = |stat: &str| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok().and_then(|s| parent(&s)) == Some(pid))
        .collect()
}

/// The sockets process `pid` holds open, as `/proc/PID/fd` names them (`socket:[INODE]`).
fn sockets(pid: u32) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("socket:"))
        .collect()
}

/// The id of the XDP program attached to `dev` in `ns` (`ip -j link`).
fn xdp_program_id(lab: &Lab, ns: &str, dev: &str) -> u64 {
    let out = lab.run(ns, "ip", &["-j", "link", "show", "dev", dev]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["xdp"]["prog"]["id"].as_u64().unwrap_or_else(|| panic!("no XDP program on {dev}: {links}"))
}
