//! `transitd run --config-etcd`: a real etcd (Debian's etcd-server) on the lab's loopback
//! holds the configuration; changing a customer's key changes what the data path forwards,
//! a bad key is rejected with its `etcd:KEY:line:col` and changes nothing, and while etcd is
//! gone the last good configuration keeps forwarding until etcd comes back.
//! Needs root; one lab at a time.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, SERIAL, acme_parts, blocking_list, forwarded_ftp_syns, scapy_send, wait_for};
use common::*;

/// ACME's server section, for the `server` key.
fn server() -> &'static str {
    acme_parts().0
}

/// ACME's customer, with `extra_rule` after its rules, for the `customers/acme` key.
fn acme(extra_rule: &str) -> String {
    format!("{}{extra_rule}", acme_parts().1)
}

const SSH: &str = "[[customer.firewall.rule]]\nname = \"ssh\"\nmatch = \"tcp.dstport == 22\"\naction = \"accept\"\n";
const CLIENT: &str = "http://127.0.0.1:23790";

/// An etcd in the lab's `dut` namespace, on its loopback.
struct Etcd {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Etcd {
    fn start(lab: &Lab, dir: &std::path::Path) -> Etcd {
        Etcd::spawn(dir, CLIENT, "http://127.0.0.1:23800", |program| lab.cmd("dut", program))
    }

    /// An etcd serving clients at `client`, its programs run by `cmd`.
    fn spawn(dir: &std::path::Path, client: &str, peer: &str, cmd: impl Fn(&str) -> Command) -> Etcd {
        let child = cmd("etcd")
            .args(["--name", "lab", "--data-dir", dir.to_str().unwrap()])
            .args(["--listen-client-urls", client, "--advertise-client-urls", client])
            .args(["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer])
            .args(["--initial-cluster", &format!("lab={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian's etcd-server; scripts/setup installs it)");
        let etcd = Etcd { child: Some(child), dir: dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cmd("etcdctl").args(["--endpoints", client, "endpoint", "health"]).output().unwrap().status.success() {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        etcd
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `transitd_config_source_up` as `transitd stats --raw` reads it in the lab's `dut`.
fn source_up(lab: &Lab) -> Option<String> {
    let out = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--raw"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("transitd_config_source_up "))
        .map(str::to_string)
}

fn put(lab: &Lab, key: &str, value: &str) {
    let out = lab.cmd("dut", "etcdctl").args(["--endpoints", CLIENT, "put", key, value]).output().unwrap();
    assert!(out.status.success(), "etcdctl put {key}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_data_path_follows_etcd_and_keeps_the_last_good_configuration_without_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("te", 1);
    let dir = std::env::temp_dir().join(format!("{}-etcd", lab.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    let mut etcd = Etcd::start(&lab, &dir);
    put(&lab, "/transitd/server", server());
    put(&lab, "/transitd/customers/acme", &acme(""));

    let t = lab.transitd_from(&["--config-etcd", CLIENT, "--prefix", "/transitd/"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let reloads = |t: &common::lab::Transitd| t.log().matches("transitd: reloaded").count();
    let ssh = |sport: u16| {
        scapy_send(&lab, "snd", &format!("[IP(dst='203.0.113.100')/TCP(sport={sport}, dport=22, flags='S')]"))
    };

    let cap = lab.capture("up", "u1");
    ssh(50001); // dropped: acme allows FTP only
    put(&lab, "/transitd/customers/acme", &acme(SSH));
    wait_for("the reload from etcd", Duration::from_secs(10), || reloads(&t) == 1);
    ssh(50002); // forwarded
    put(&lab, "/transitd/customers/acme", "[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/33\"]\n");
    wait_for("the rejection", Duration::from_secs(10), || {
        t.log().contains("rejected, the running configuration stays")
    });
    ssh(50003); // still forwarded: the bad key changed nothing

    assert_eq!(source_up(&lab).as_deref(), Some("1"));
    etcd.stop();
    wait_for("transitd to notice etcd is gone", Duration::from_secs(20), || {
        t.log().contains("the last good configuration keeps running")
    });
    assert_eq!(source_up(&lab).as_deref(), Some("0"), "the metric says what the log says");
    ssh(50004); // still forwarded without etcd

    let mut etcd = Etcd::start(&lab, &dir);
    wait_for("transitd to reach etcd again", Duration::from_secs(20), || t.log().contains("reachable again"));
    assert_eq!(source_up(&lab).as_deref(), Some("1"));
    put(&lab, "/transitd/customers/acme", &acme(""));
    wait_for("the reload after etcd came back", Duration::from_secs(10), || reloads(&t) == 2);
    ssh(50005); // dropped again: the data path follows etcd once more

    // Writes elsewhere in the store move its revision, not the prefix's keys: a reconnect
    // after them reads the same configuration, which is not applied again (the revision
    // alone once made it a reload, restarting rule counters and rewriting the XDP maps).
    for k in 0..3 {
        put(&lab, &format!("/unrelated/{k}"), "x");
    }
    etcd.stop();
    wait_for("the second outage", Duration::from_secs(20), || t.log().matches("keeps running").count() == 2);
    let mut etcd = Etcd::start(&lab, &dir);
    wait_for("the second return", Duration::from_secs(20), || t.log().matches("reachable again").count() == 2);
    // A quiet connection to an etcd with its default keepalive policy (pings at most every
    // 5 s) stays up: pinged every 2 s, etcd closed it every 7 s or so.
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(reloads(&t), 2, "{}", t.log());
    assert_eq!(t.log().matches("keeps running").count(), 2, "no outage but the two made: {}", t.log());
    // A SIGHUP while etcd is away is heard, and said to wait for it (nothing was said).
    etcd.stop();
    wait_for("the third outage", Duration::from_secs(20), || t.log().matches("keeps running").count() == 3);
    t.hup();
    wait_for("the SIGHUP to be said", Duration::from_secs(10), || {
        t.log().contains("SIGHUP: etcd") && t.log().contains("does not answer; its prefix is read once it does")
    });
    let file = cap.finish();
    let log = t.log();
    let (code, report) = t.stop();
    etcd.stop();
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(log.contains("etcd:/transitd/customers/acme:3:"), "the rejection names the key and line:\n{log}");
    let sent = tshark(&file, &["-Y", "gre and not icmp and tcp.dstport == 22", "-T", "fields", "-e", "tcp.srcport"]);
    assert_eq!(sent.lines().collect::<Vec<_>>(), ["50002", "50003", "50004"], "{log}");
}

/// A list file a configuration from etcd names is watched as a file configuration's is: a
/// feed rewriting it (etcd untouched, no signal) reloads the configuration etcd holds with
/// the new list, and the sources it now lists are dropped. A newer etcd read that comes
/// while a feed has the list truncated (writing it in place, stalled) waits for the list:
/// built at once, it dropped the listed senders' protection until the feed went on.
#[test]
fn a_list_file_an_etcd_configuration_names_is_watched() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tw", 1);
    let dir = std::env::temp_dir().join(format!("{}-etcd", lab.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    let etcd = Etcd::start(&lab, &dir);
    let list = std::env::temp_dir().join(format!("{}-blocked.txt", lab.prefix));
    std::fs::write(&list, "192.0.2.99\n").unwrap();
    let blocking = format!("{}{}", server(), blocking_list(&list));
    put(&lab, "/transitd/server", &blocking);
    put(&lab, "/transitd/customers/acme", &acme(""));
    // Looks every second: a list emptied is read once it stays so for ten looks, 10 s, the
    // time the test has to see the etcd read wait and let the feed go on.
    let t = lab.transitd_from(&["--config-etcd", CLIENT, "--prefix", "/transitd/", "--watch-interval", "1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10, "the sender is not listed yet");
    let reloads = |t: &common::lab::Transitd| t.log().matches("transitd: reloaded").count();
    let fresh = list.with_extension("new");
    let rewrite = || {
        std::fs::write(&fresh, "192.0.2.99\n10.1.0.2\n").unwrap();
        std::fs::rename(&fresh, &list).unwrap();
    };
    rewrite();
    wait_for("the list's change to be reloaded", Duration::from_secs(10), || reloads(&t) == 1);
    let log = t.log();
    assert!(log.contains("a file it names changed"), "{log}");
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is listed now:\n{log}");

    std::fs::write(&list, "").unwrap(); // a feed writing in place, stalled after truncating
    put(&lab, "/transitd/customers/acme", &acme(SSH));
    wait_for("the etcd read to wait for the list", Duration::from_secs(6), || t.log().contains("waits until"));
    assert_eq!(reloads(&t), 1, "built with the list empty:\n{}", t.log());
    rewrite(); // the feed goes on
    wait_for("the etcd read to be applied", Duration::from_secs(10), || reloads(&t) == 2);
    // Built with the list as rewritten: nothing left to reload for it.
    std::thread::sleep(Duration::from_secs(3));
    let log = t.log();
    assert_eq!(reloads(&t), 2, "{log}");
    assert!(log.contains(&format!("waits until {} stays the same", list.display())), "{log}");
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is still listed:\n{log}");
    let (code, report) = t.stop();
    drop(etcd);
    let _ = std::fs::remove_file(&list);
    assert_eq!(code, 0, "{report}");
}

/// A newer etcd read rejected because a list file it adds is missing is tried again when
/// the file is written (watched as the rejected read named it): no SIGHUP, no other change
/// under the prefix.
#[test]
fn writing_the_list_file_a_rejected_etcd_read_named_applies_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tx", 1);
    let dir = std::env::temp_dir().join(format!("{}-etcd", lab.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    let etcd = Etcd::start(&lab, &dir);
    put(&lab, "/transitd/server", server());
    put(&lab, "/transitd/customers/acme", &acme(""));
    let t = lab.transitd_from(&["--config-etcd", CLIENT, "--prefix", "/transitd/", "--watch-interval", "0.1"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert_eq!(forwarded_ftp_syns(&lab), 10, "nothing is listed");
    let list = std::env::temp_dir().join(format!("{}-blocked.txt", lab.prefix));
    let _ = std::fs::remove_file(&list);
    put(&lab, "/transitd/server", &format!("{}{}", server(), blocking_list(&list)));
    wait_for("the read to be rejected", Duration::from_secs(10), || t.log().contains("cannot read"));
    let fresh = list.with_extension("new");
    std::fs::write(&fresh, "10.1.0.2\n").unwrap();
    std::fs::rename(&fresh, &list).unwrap();
    wait_for("the read to be tried again", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    let log = t.log();
    assert!(log.contains("a file it names changed"), "{log}");
    assert_eq!(forwarded_ftp_syns(&lab), 0, "the sender is listed now:\n{log}");
    let (code, report) = t.stop();
    drop(etcd);
    let _ = std::fs::remove_file(&list);
    assert_eq!(code, 0, "{report}");
}

/// A prefix whose keys hold more than gRPC's default message size (4 MiB) together is read
/// whole: a configuration of up to 16 MiB was promised, and one over 4 MiB failed to read,
/// reported as etcd being unreachable. An etcd on the host's loopback (ports the kernel
/// hands out), four keys of 1.2 MiB (under etcd's 1.5 MiB a request).
#[test]
fn a_prefix_over_grpcs_default_message_size_is_read_whole() {
    // Megabytes written and synced by a second etcd: not beside a lab test's timing.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (client, peer) = (format!("http://127.0.0.1:{}", port()), format!("http://127.0.0.1:{}", port()));
    let dir = std::env::temp_dir().join(format!("transitd-etcd-big-{}", std::process::id()));
    let _etcd = Etcd::spawn(&dir, &client, &peer, |program| Command::new(program));
    let value = format!("# {}\n", "x".repeat(1_200_000));
    for k in 0..4 {
        let mut put = Command::new("etcdctl")
            .args(["--endpoints", &client, "put", &format!("/big/k{k}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut put.stdin.take().unwrap(), value.as_bytes()).unwrap();
        assert!(put.wait().unwrap().success(), "etcdctl put /big/k{k}");
    }
    let source = transitd::fleet::EtcdSource { endpoint: client.clone(), prefix: "/big/".into() };
    let fetched = transitd::fleet::fetch(&source).expect("the whole prefix");
    assert_eq!(fetched.keys.len(), 4);
    assert!(fetched.keys.values().all(|v| *v == value));
    // A cluster's members, one of them gone (nothing listens at port 1): another answers.
    let members = format!("http://127.0.0.1:1, {client}");
    let fetched = transitd::fleet::fetch(&transitd::fleet::EtcdSource { endpoint: members, prefix: "/big/".into() })
        .expect("a member that answers");
    assert_eq!(fetched.keys.len(), 4);
    // Past the largest message read (32 MiB: 30 keys of 1.2 MiB), the prefix is still read,
    // a page at a time, and refused as a configuration too large; it read as etcd down.
    for k in 4..30 {
        let mut put = Command::new("etcdctl")
            .args(["--endpoints", &client, "put", &format!("/big/k{k:02}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut put.stdin.take().unwrap(), value.as_bytes()).unwrap();
        assert!(put.wait().unwrap().success(), "etcdctl put /big/k{k:02}");
    }
    let fetched = transitd::fleet::fetch(&source).expect("read, however large");
    assert!(fetched.beyond.is_some_and(|read| read > 16 << 20), "{:?}", fetched.beyond);
    assert!(fetched.keys.len() < 30, "reading stopped past the bound");
    let refused = transitd::fleet::assemble_fetched("/big/", &fetched).unwrap_err().to_string();
    assert!(refused.contains("bytes under the prefix, more than 16777216"), "{refused}");
}

/// A prefix is read a page at a time, each page at the first's revision; etcd compacting past
/// it meanwhile (`etcdctl compact` to the newest revision, the store written elsewhere) failed
/// the read: a start failed, and a running transitd said etcd was unreachable. The read starts
/// over at the newest revision. An etcd on the host's loopback; 20,000 keys (2,500 pages) take
/// over a second to read here, and two compactions land within.
#[test]
fn a_read_overtaken_by_compaction_starts_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (client, peer) = (format!("http://127.0.0.1:{}", port()), format!("http://127.0.0.1:{}", port()));
    let dir = std::env::temp_dir().join(format!("transitd-etcd-compact-{}", std::process::id()));
    let _etcd = Etcd::spawn(&dir, &client, &peer, |program| Command::new(program));
    let etcdctl = |args: &[&str], input: &str| {
        let mut run = Command::new("etcdctl")
            .args(["--endpoints", &client])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut run.stdin.take().unwrap(), input.as_bytes()).unwrap();
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "etcdctl {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    const KEYS: usize = 20_000;
    // 128 puts a transaction (etcd's --max-txn-ops): an etcdctl a key would take minutes.
    let names: Vec<String> = (0..KEYS).map(|k| format!("/many/k{k:05}")).collect();
    for chunk in names.chunks(128) {
        let puts: String = chunk.iter().map(|key| format!("put {key} x\n")).collect();
        etcdctl(&["txn"], &format!("\n{puts}\n\n")); // no compares; the puts; no else
    }
    let source = transitd::fleet::EtcdSource { endpoint: client.clone(), prefix: "/many/".into() };
    let read = std::thread::spawn(move || transitd::fleet::fetch(&source));
    let mut overtaken = 0;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(100));
        let reading = !read.is_finished();
        // A write elsewhere, and the history compacted up to it: past the revision being read.
        let put = etcdctl(&["put", "/elsewhere", "x", "-w", "fields"], "");
        let revision = put.lines().find_map(|l| l.strip_prefix("\"Revision\" : ")).expect("the put's revision");
        etcdctl(&["compact", revision.trim()], "");
        overtaken += usize::from(reading);
    }
    let fetched = read.join().unwrap().expect("read again, at the newest revision");
    assert!(overtaken > 0, "the read ended before any compaction: nothing was overtaken");
    assert_eq!(fetched.keys.len(), KEYS);
}

/// A prefix whose keys each have a fault is refused at start with every key's fault, each at
/// its `etcd:KEY:line:col`, in the keys' order: read joined, toml stopped at the first key's
/// fault and hid the others', which an operator then found one fix and one start at a time.
/// An etcd on the host's loopback; refused, the run never reaches the interface.
#[test]
fn every_bad_key_is_said_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (client, peer) = (format!("http://127.0.0.1:{}", port()), format!("http://127.0.0.1:{}", port()));
    let dir = std::env::temp_dir().join(format!("transitd-etcd-keys-{}", std::process::id()));
    let _etcd = Etcd::spawn(&dir, &client, &peer, |program| Command::new(program));
    let put = |key: &str, value: &str| {
        let out = Command::new("etcdctl").args(["--endpoints", &client, "put", key, value]).output().unwrap();
        assert!(out.status.success(), "etcdctl put {key}: {}", String::from_utf8_lossy(&out.stderr));
    };
    put(
        "/keys/server",
        "[server]\nanycast = \"192.0.2.1\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\nmss_clamp = \"yes\"\n",
    );
    put("/keys/customers/acme", "[[customer]]\nname = \"acme\"\nprefixs = [\"203.0.113.0/24\"]\n");
    put("/keys/customers/beta", "[[customer]]\nname = \"beta\"\nprefixes = [\"198.18.100.0/24\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--config-etcd", &client, "--prefix", "/keys/", "--iface", "lo", "--no-metrics"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 4, "{said}");
    assert_eq!(lines[0], format!("transitd: etcd {client} prefix /keys/: the configuration is not valid:"));
    assert!(lines[1].starts_with("etcd:/keys/customers/acme:3:1: unknown field `prefixs`: did you mean `prefixes`?"));
    assert_eq!(lines[2], "etcd:/keys/customers/beta:3:30: unclosed array, expected `]`");
    assert_eq!(lines[3], "etcd:/keys/server:4:13: invalid type: string \"yes\", expected a boolean");
}

/// An etcd no member of which answers is said in one line, with the reason (the OS error
/// of the connect), not tonic's debug dump of its error chain.
#[test]
fn an_unreachable_etcd_is_said_in_a_line() {
    // Port 1 on loopback: nothing listens, the connect is refused at once.
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--config-etcd", "http://127.0.0.1:1", "--iface", "lo"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        said.trim(),
        "transitd: etcd http://127.0.0.1:1 prefix /transitd/: tcp connect error: Connection refused (os error 111)"
    );
}

/// A cluster's member going away is no outage of etcd: the next member that answers takes
/// over, with no "keeps running" said and `transitd_config_source_up` at 1, and changes made
/// through the others are followed. Members were connected to lazily, so one listed first
/// and down was never passed over: every start with it down, and the loss of the member
/// followed (each step of a rolling restart of etcd), said etcd was unreachable. A cluster
/// of three in the lab's `dut` namespace, a dead endpoint (port 1) listed first, and the
/// member followed a follower (killing the leader would leave no leader for a second: an
/// outage as etcd sees it).
#[test]
fn losing_a_member_is_no_outage_of_etcd() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tk", 1);
    let members: Vec<(String, String)> =
        (1..=3).map(|i| (format!("http://127.0.0.1:2379{i}"), format!("http://127.0.0.1:2381{i}"))).collect();
    let cluster: Vec<String> = members.iter().enumerate().map(|(i, (_, peer))| format!("m{i}={peer}")).collect();
    let mut etcds: Vec<Etcd> = members
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let dir = std::env::temp_dir().join(format!("{}-etcd-m{i}", lab.prefix));
            let _ = std::fs::remove_dir_all(&dir);
            let child = lab
                .cmd("dut", "etcd")
                .args(["--name", &format!("m{i}"), "--data-dir", dir.to_str().unwrap()])
                .args(["--listen-client-urls", client, "--advertise-client-urls", client])
                .args(["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer])
                .args(["--initial-cluster", &cluster.join(",")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd (Debian's etcd-server; scripts/setup installs it)");
            Etcd { child: Some(child), dir }
        })
        .collect();
    let all: Vec<&str> = members.iter().map(|(client, _)| client.as_str()).collect();
    let etcdctl = |endpoints: &str, args: &[&str]| {
        lab.cmd("dut", "etcdctl").args(["--endpoints", endpoints]).args(args).output().unwrap()
    };
    // Healthy only once every member is, and a leader elected.
    wait_for("the cluster to elect a leader", Duration::from_secs(20), || {
        etcdctl(&all.join(","), &["endpoint", "health"]).status.success()
    });
    let status = etcdctl(&all.join(","), &["endpoint", "status", "-w", "simple"]);
    // `ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, ...` a member.
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let followers: Vec<&str> =
        status.lines().filter(|l| l.split(", ").nth(4) == Some("false")).filter_map(|l| l.split(", ").next()).collect();
    assert_eq!(followers.len(), 2, "{status}");
    let leader = all.iter().find(|m| !followers.contains(m)).expect("a leader");
    let put = |key: &str, value: &str| {
        let out = etcdctl(&all.join(","), &["put", key, value]);
        assert!(out.status.success(), "etcdctl put {key}: {}", String::from_utf8_lossy(&out.stderr));
    };
    put("/transitd/server", server());
    put("/transitd/customers/acme", &acme(""));

    // Followed: the first that answers, the first follower.
    let endpoints = format!("http://127.0.0.1:1,{},{},{leader}", followers[0], followers[1]);
    let t = lab.transitd_from(&["--config-etcd", &endpoints, "--prefix", "/transitd/"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    // The watch starts (its first read, its watch) within a second.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!t.log().contains("keeps running"), "a member down at start is no outage:\n{}", t.log());
    assert_eq!(source_up(&lab).as_deref(), Some("1"));

    let followed = all.iter().position(|m| *m == followers[0]).expect("a member");
    etcds[followed].stop();
    wait_for("another member to take over", Duration::from_secs(20), || {
        t.log().contains("reading the prefix again from a member that answers")
    });
    put("/transitd/customers/acme", &acme(SSH));
    wait_for("the reload from the members left", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    assert!(!t.log().contains("keeps running"), "the loss of the member followed is no outage:\n{}", t.log());
    assert_eq!(source_up(&lab).as_deref(), Some("1"));
    let log = t.log();
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}\n{log}");
}
