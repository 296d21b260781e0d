//! The live data path's promises, in the veth lab (scripts/veth-lab): what is not transitd's
//! reaches the host's stack (a socket there receives it), no customer prefix takes the
//! interface's own address, the XDP program never replaces another and never outlives the
//! process, a bind the driver cannot do fails cleanly, and faults (link down and up, `kill
//! -9`, the interface vanishing or renamed) end in a clean state with every UMEM frame
//! accounted for, said once, and a stop under traffic counts every frame the XDP program
//! redirected. Needs root; one lab at a time.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::lab::{ACME, Lab, SERIAL, scapy_send, wait_for};

/// True when an XDP program is attached to `dev` in `ns`.
fn has_xdp(lab: &Lab, ns: &str, dev: &str) -> bool {
    let out = lab.run(ns, "ip", &["link", "show", "dev", &lab.dev(dev)]);
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// The id of the map `name` of the XDP program attached to `dev` in `ns`. Found through the
/// program, not by name alone: map names are global across namespaces, so another transitd
/// on the machine (another lab, a CI neighbour) holds maps of the same name.
fn xdp_map_id(lab: &Lab, ns: &str, dev: &str, name: &str) -> String {
    let json = |program: &str, args: &[&str]| -> serde_json::Value {
        let out = lab.run(ns, program, args);
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
    };
    let link = json("ip", &["-j", "link", "show", "dev", &lab.dev(dev)]);
    let xdp = &link[0]["xdp"];
    let prog = xdp["prog"]["id"].as_u64().or_else(|| xdp["attached"][0]["prog"]["id"].as_u64());
    let prog = prog.unwrap_or_else(|| panic!("no XDP program on {dev}: {link}")).to_string();
    let maps = json("bpftool", &["-j", "prog", "show", "id", &prog]);
    let ids = maps["map_ids"].as_array().cloned().unwrap_or_default();
    ids.iter()
        .map(|id| id.to_string())
        .find(|id| json("bpftool", &["-j", "map", "show", "id", id])["name"] == name)
        .unwrap_or_else(|| panic!("program {prog} on {dev} has no map {name}: {maps}"))
}

/// Starts a Python listener in `ns` that prints one line per packet it receives: `udp PORT`
/// on a UDP socket bound to `addr`, or `gre` on a raw socket for protocol 47. It is ready
/// when it has printed `ready`.
fn listen(lab: &Lab, ns: &str, kind: &str, addr: &str) -> std::process::Child {
    let script = format!(
        r#"
import socket, sys
if "{kind}".startswith("udp"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("{addr}", int("{kind}".split()[1])))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
s.settimeout(8)
print("ready", flush=True)
try:
    while True:
        data, peer = s.recvfrom(65535)
        print(peer[0], len(data), data[:40].hex(), flush=True)
except socket.timeout:
    pass
"#
    );
    let mut child = lab.cmd(ns, "/usr/bin/python3").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    use std::io::BufRead as _;
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "ready");
    child
}

fn received(child: std::process::Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn what_is_not_ours_reaches_a_socket_on_the_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tp", 1);
    // The host holds the anycast address and a second address the test will make the XDP
    // program believe is owned.
    lab.run("dut", "ip", &["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    lab.run("dut", "ip", &["addr", "add", "198.18.7.5/32", "dev", "lo"]);
    lab.run("up", "ip", &["route", "add", "198.18.7.0/24", "via", "10.2.0.2"]);
    let t = lab.transitd(ACME, &["--metrics", "127.0.0.1:9469"]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));

    // GRE from a router nobody configured, and PPTP (GRE version 1), to the anycast
    // address: not transitd's, so the XDP program passes them and the host's stack gets them.
    let gre = listen(&lab, "dut", "gre", "");
    scapy_send(
        &lab,
        "snd",
        "[IP(dst='192.0.2.1')/GRE(proto=0x0800)/IP(src='10.9.9.9', dst='203.0.113.100')/UDP(dport=7)/Raw(b'unconfigured'), \
          IP(dst='192.0.2.1')/GRE(version=1, proto=0x880b, key_present=1, key=0x00040001)/Raw(b'pptp')]",
    );
    let got = received(gre);
    assert_eq!(got.len(), 2, "GRE the host should have received: {got:?}");
    assert!(got.iter().all(|l| l.starts_with("10.1.0.2 ")), "{got:?}");

    // A frame the XDP program redirects and the pipeline passes (the XDP program is told
    // 198.18.7.0/24 is owned, which no customer has: as in the moment a reload removes a
    // customer): punted through the TUN device, it reaches a UDP socket on the host.
    let key = "18 00 00 00 c6 12 07 00"; // prefix length 24, host order; 198.18.7.0
    let map = xdp_map_id(&lab, "dut", "d0", "owned_v4");
    let update = Command::new("ip")
        .args(["netns", "exec", &format!("{}-dut", lab.prefix), "bpftool", "map", "update", "id", &map])
        .args(["key", "hex"])
        .args(key.split(' ').collect::<Vec<_>>())
        .args(["value", "hex", "01"])
        .output()
        .expect("bpftool (scripts/setup installs it)");
    assert!(update.status.success(), "{}", String::from_utf8_lossy(&update.stderr));
    let udp = listen(&lab, "dut", "udp 9999", "198.18.7.5");
    scapy_send(&lab, "snd", "[IP(dst='198.18.7.5')/UDP(sport=4000+i, dport=9999)/Raw(b'punted') for i in range(5)]");
    let got = received(udp);
    assert_eq!(got.len(), 5, "datagrams the host should have received: {got:?}");
    let metrics = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--raw"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(metrics.contains("transitd_punt_packets_total{result=\"punted\"} 5"), "{metrics}");
    assert!(metrics.contains("\ntransitd_punt_device_up 1\n"), "{metrics}");
    assert!(
        metrics.contains("transitd_packets_total{worker=\"q0\",verdict=\"pass\",reason=\"no_customer\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("transitd_xdp_packets_total{action=\"gre_not_ours\"} 2"), "{metrics}");

    // The device deleted under the run: every write fails (EBADFD), said once, counted, and
    // the device is down until a write succeeds (it said up for as long as the run lasted).
    let tun = lab.run("dut", "ip", &["-o", "link", "show", "type", "tun"]);
    let tun = String::from_utf8_lossy(&tun.stdout).into_owned();
    let device = tun.split(": ").nth(1).expect("the punt device").to_string();
    assert!(device.starts_with("td-tp"), "{tun}");
    lab.run("dut", "ip", &["link", "del", &device]);
    scapy_send(&lab, "snd", "[IP(dst='198.18.7.5')/UDP(sport=5000+i, dport=9999)/Raw(b'lost') for i in range(3)]");
    let scrape = || {
        let metrics = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--raw"]);
        String::from_utf8_lossy(&metrics.stdout).into_owned()
    };
    let failed = "transitd_punt_packets_total{result=\"failed\"} 3";
    wait_for("the failed writes", Duration::from_secs(5), || scrape().contains(failed));
    assert!(t.log().contains(&format!("punt device {device}")), "said once: {}", t.log());
    let metrics = scrape();
    assert!(metrics.contains("\ntransitd_punt_device_up 0\n"), "{metrics}");
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("punt td-tp") && report.contains(": 5 to the host"), "{report}");
    assert!(!report.contains("NOT CONSERVED"), "{report}");
}

/// Compiles a one-line XDP program that passes everything (not transitd's).
fn foreign_program(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("other.c");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n__attribute__((section(\"xdp\"), used)) int other_prog(struct xdp_md *c) { return XDP_PASS; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let obj = dir.join("other.o");
    let arch = std::env::consts::ARCH;
    let out = Command::new("clang")
        .args(["-O2", "-target", "bpf", &format!("-I/usr/include/{arch}-linux-gnu"), "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    obj
}

/// The interface's own address (10.2.0.2) inside a customer prefix would be taken for the
/// customer's: the upstream router's pings to the host were dropped as
/// `spoofed_customer_source`, and BGP and SSH on that link would be. `run` refuses such a
/// configuration at start, at the prefix, and rejects a reload to it; an address added inside
/// one while it runs is said, once. The supervisor looks at the interface twice a second, as
/// strace sees it (it read its queues and MTU ten times a second, and listed the kernel's BPF
/// programs at each look for the XDP program). Then the interface is renamed under the run,
/// which stops, saying so once, with the new name, and restores the busy-polling tunables and
/// reads the final counters under that name (it used the old one, and both failed).
#[test]
fn the_interfaces_own_address_stays_the_hosts_and_a_rename_is_said_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("to", 1);
    let holding = ACME.replace("prefixes = [\"203.0.113.0/24\"]", "prefixes = [\"203.0.113.0/24\", \"10.2.0.2/32\"]");
    assert_ne!(holding, ACME);
    let start = holding.find("\"10.2.0.2/32\"").unwrap();
    let line = holding[..start].matches('\n').count() + 1;
    let col = start - holding[..start].rfind('\n').map_or(0, |n| n + 1) + 1;
    let refused =
        format!("prefix 10.2.0.2/32 of customer `acme` holds 10.2.0.2, an address of {} (--iface)", lab.dev("d0"));
    let config = std::env::temp_dir().join(format!("{}-holding.toml", lab.prefix));
    std::fs::write(&config, &holding).unwrap();
    // (Under `timeout`: a run that took the configuration would go on until stopped.)
    let out = lab
        .cmd("dut", "timeout")
        .args(["20", env!("CARGO_BIN_EXE_transitd"), "run", "--iface", &lab.dev("d0"), "--no-metrics"])
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a configuration refused: {said}");
    assert!(said.contains(&format!("{}:{line}:{col}: {refused}", config.display())), "{said}");
    assert!(!has_xdp(&lab, "dut", "d0"));

    let tuned = |dev: &str| {
        ["napi_defer_hard_irqs", "gro_flush_timeout"].map(|t| {
            let out = lab.run("dut", "cat", &[&format!("/sys/class/net/{dev}/{t}")]);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
    };
    let originals = tuned(&lab.dev("d0"));
    assert_ne!(originals, ["2", "200000"], "the run's values must differ from the interface's");
    let tuning = ["--no-metrics", "--napi-defer", "2", "--gro-flush-timeout", "200000"];
    let mut t = lab.transitd(ACME, &tuning);
    t.reload(&holding);
    wait_for("the reload to be rejected", Duration::from_secs(10), || {
        t.log().contains("rejected, the running configuration stays")
    });
    assert!(t.log().contains(&refused), "{}", t.log());

    // Three seconds of the run's system calls: the interface's queues and MTU read about six
    // times each (not thirty), and no BPF program listed (BPF_PROG_GET_NEXT_ID).
    let traced = std::env::temp_dir().join(format!("{}-strace", lab.prefix));
    let _ = Command::new("timeout")
        .args(["3", "strace", "-f", "-qq", "-e", "trace=bpf,openat", "-o", traced.to_str().unwrap()])
        .args(["-p", &t.pid().to_string()])
        .status()
        .expect("strace (scripts/setup installs it)");
    let calls = std::fs::read_to_string(&traced).unwrap();
    let opened = |file: &str| calls.matches(&format!("/sys/class/net/{}/{file}\"", lab.dev("d0"))).count();
    assert!((3..=8).contains(&opened("queues")), "{} looks at the queues in 3 s:\n{calls}", opened("queues"));
    assert!((3..=8).contains(&opened("mtu")), "{} looks at the MTU in 3 s:\n{calls}", opened("mtu"));
    assert!(!calls.contains("BPF_PROG_GET_NEXT_ID"), "the kernel's programs listed:\n{calls}");

    // An address of the host added inside acme's prefix while running: said once.
    lab.run("dut", "ip", &["addr", "add", "203.0.113.7/32", "dev", &lab.dev("d0")]);
    let held =
        format!("{} has the address 203.0.113.7 now, inside prefix 203.0.113.0/24 of customer `acme`", lab.dev("d0"));
    wait_for("the address to be said", Duration::from_secs(5), || t.log().contains(&held));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(t.log().matches(&held).count(), 1, "said once: {}", t.log());

    let renamed = format!("{}-dx", lab.prefix);
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "down"]);
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "name", &renamed]);
    wait_for("transitd to notice", Duration::from_secs(10), || !t.is_running());
    let log = t.log();
    assert_eq!(log.matches(&format!("was renamed to {renamed}")).count(), 1, "said once: {log}");
    assert!(!log.contains("went away"), "{log}");
    let (code, report) = t.stop();
    assert_eq!(code, 2);
    assert_eq!(tuned(&renamed), originals, "restored under the new name: {log}");
    assert!(!log.contains("transitd: restoring ") && !log.contains("is kept"), "{log}");
    assert!(report.contains(&format!("interface {renamed} during the run: rx_packets ")), "{report}");
}

#[test]
fn the_program_never_replaces_another_and_never_outlives_transitd() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tk", 1);
    let dir = std::env::temp_dir().join(format!("{}-foreign", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("acme.toml");
    std::fs::write(&config, ACME).unwrap();
    let run_with = |extra: &[&str], env: &[(&str, &str)]| {
        lab.cmd("dut", env!("CARGO_BIN_EXE_transitd"))
            .envs(env.iter().copied())
            .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--no-metrics"])
            .args(extra)
            .output()
            .unwrap()
    };
    let run = |extra: &[&str]| run_with(extra, &[]);

    // Another program on the interface: transitd says which, and leaves it.
    let obj = foreign_program(&dir);
    lab.run(
        "dut",
        "ip",
        &["link", "set", "dev", &lab.dev("d0"), "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"],
    );
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // Named as the operator names the interface (it was `ifindex N`).
    let dev = lab.dev("d0");
    assert!(err.contains(&format!("transitd: {dev} has an XDP program attached already: `other_prog`")), "{err}");
    let detach = lab.cmd("dut", env!("CARGO_BIN_EXE_transitd")).args(["detach", "--iface", &dev]).output().unwrap();
    let said = String::from_utf8_lossy(&detach.stderr);
    assert!(said.contains(&format!("{dev}: the XDP program attached is `other_prog`")), "{detach:?}");
    assert!(said.contains("not transitd's: left alone"), "{detach:?}");
    assert!(has_xdp(&lab, "dut", "d0"), "the other program stays");
    // The command the refusal gives removes the program, pasted as it is: the kernel is the
    // oracle (`ip link set dev X xdp off`, which it gave before, leaves a generic program).
    let refusal = err.lines().find(|l| l.contains("attached already")).unwrap_or_default();
    let command = refusal.split("(`").nth(1).and_then(|c| c.split("`)").next()).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(command, format!("ip link set dev {dev} xdpgeneric off"), "{err}");
    let words: Vec<&str> = command.split_whitespace().collect();
    lab.run("dut", words[0], &words[1..]);
    assert!(!has_xdp(&lab, "dut", "d0"), "`{command}` removed it");

    // A second transitd on an interface the first holds is refused, naming the first, before
    // it makes anything (it once made its sockets and punt device before it looked: two
    // started at once each took part of the interface); the first runs on. The runs keep
    // their lock and state in a runtime directory of the test's own (systemd's
    // RUNTIME_DIRECTORY).
    let runtime = dir.join("run");
    let env = [("RUNTIME_DIRECTORY", runtime.to_str().unwrap())];
    let tuned = || {
        ["napi_defer_hard_irqs", "gro_flush_timeout"].map(|t| {
            let out = lab.run("dut", "cat", &[&format!("/sys/class/net/{}/{t}", lab.dev("d0"))]);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
    };
    let originals = tuned();
    assert_ne!(originals, ["2", "200000"], "the run's values must differ from the interface's");
    let first_args = ["--metrics", "127.0.0.1:9469", "--napi-defer", "2", "--gro-flush-timeout", "200000"];
    let mut first = lab.transitd_env("dut", "d0", ACME, &first_args, &env);
    assert_eq!(tuned(), ["2", "200000"]);
    let out = run_with(&[], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("another transitd holds {} (pid {})", lab.dev("d0"), first.pid())), "{err}");
    assert!(!err.contains("punt device"), "{err}");
    assert!(first.is_running());

    // kill -9: the kernel detaches the program with the process; a new transitd starts and
    // forwards (attached in generic mode as asked, which is no native failure to report).
    // The killed run could not put the interface's tunables back: the next run takes their
    // values before it from the file it kept (not the killed run's values, as it once did),
    // puts back the one it does not set, and restores the other at its end.
    let pid = first.pid();
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    wait_for("the killed transitd to be gone", Duration::from_secs(10), || !first.is_running());
    wait_for("the program to go with it", Duration::from_secs(5), || !has_xdp(&lab, "dut", "d0"));
    drop(first);
    assert_eq!(tuned(), ["2", "200000"], "left by the killed run");
    // Named by the interface and its network namespace (as the kernel shows the namespace).
    let namespace = lab.run("dut", "readlink", &["/proc/self/ns/net"]);
    let namespace = String::from_utf8_lossy(&namespace.stdout);
    let inode = namespace.trim().trim_start_matches("net:[").trim_end_matches(']');
    let kept = runtime.join(format!("{}@{inode}.tunables", lab.dev("d0")));
    assert!(kept.exists());
    let second = lab.transitd_env("dut", "d0", ACME, &["--attach", "generic", "--napi-defer", "3"], &env);
    assert!(second.log().contains("ended without restoring its tunables"), "{}", second.log());
    assert_eq!(tuned(), ["3", originals[1].as_str()]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || second.log().contains("next hop 10.2.0.1 is at"));
    let link = lab.run("dut", "ip", &["link", "show", "dev", &lab.dev("d0")]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("xdpgeneric"), "{link:?}");
    assert!(!second.log().contains("native XDP failed"), "{}", second.log());
    let cap = lab.capture("up", "u1");
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=42000, dport=21, flags='S')]");
    std::thread::sleep(Duration::from_millis(500));
    let file = cap.finish();
    let gre = common::tshark(
        &file,
        &["-Y", "gre and not icmp and tcp.srcport == 42000", "-T", "fields", "-e", "frame.number"],
    );
    assert_eq!(gre.lines().count(), 1, "forwarding after the restart");
    let (code, report) = second.stop();
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("NOT CONSERVED"), "{report}");
    assert_eq!(tuned(), originals, "the interface's own, from before the killed run");
    assert!(!kept.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bind_the_driver_cannot_do_fails_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tz", 1);
    let dir = std::env::temp_dir().join(format!("{}-zc", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("acme.toml");
    std::fs::write(&config, ACME).unwrap();
    // veth has no zero-copy: the bind fails, and everything is released in order (the UMEM
    // after the socket, its rings last) before anything is attached.
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--no-metrics"])
        .args(["--bind", "zero-copy"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("zero-copy mode") && err.contains("--bind copy"), "{err}");
    assert!(!has_xdp(&lab, "dut", "d0"));
    // The same under valgrind: no invalid read, write or free anywhere in the teardown (the
    // UMEM was once deleted after the ring structs libxdp points into were freed).
    let out = lab
        .cmd("dut", "valgrind")
        .args(["--error-exitcode=0", env!("CARGO_BIN_EXE_transitd")])
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--no-metrics"])
        .args(["--bind", "zero-copy"])
        .output()
        .expect("valgrind (scripts/setup installs it)");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("ERROR SUMMARY"), "valgrind did not run: {report}");
    for bad in ["Invalid read", "Invalid write", "Invalid free", "Mismatched free", "Source and destination overlap"] {
        assert!(!report.contains(bad), "{bad} under valgrind:\n{report}");
    }
    // The kernel chooses copy mode when asked to choose, and says so; the busy-polling
    // tunables hold for the run and come back after it.
    let tunable = |name: &str| {
        let out = lab.run("dut", "cat", &[&format!("/sys/class/net/{}/{name}", lab.dev("d0"))]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = (tunable("napi_defer_hard_irqs"), tunable("gro_flush_timeout"));
    let t = lab.transitd(ACME, &["--napi-defer", "2", "--gro-flush-timeout", "200000"]);
    // The default frame_size (4096) is more than a UMEM frame holds, but the 1500-byte link
    // passes no frame that long: no multi-buffer asked for (which would cost zero-copy on
    // drivers without zero-copy multi-buffer).
    let log = t.log();
    assert!(log.contains("bound in copy mode (--bind auto)\n") && !log.contains("multi-buffer"), "{log}");
    assert_eq!((tunable("napi_defer_hard_irqs"), tunable("gro_flush_timeout")), ("2".into(), "200000".into()));
    // The MTU raised while it runs: frames up to frame_size (4096) can come now, past what
    // the sockets take: said (the kernel drops them: only its socket counters see them).
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "mtu", "9000"]);
    wait_for("the larger frames to be said", Duration::from_secs(5), || {
        t.log().contains("frames of up to 4096 bytes can arrive now (")
            && t.log().contains("'s MTU 9000, frame_size 4096)")
    });
    let (code, _) = t.stop();
    assert_eq!(code, 0);
    assert_eq!((tunable("napi_defer_hard_irqs"), tunable("gro_flush_timeout")), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn link_down_and_up_under_traffic_then_the_interface_vanishing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tl", 1);
    let t = lab.transitd(ACME, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let send = |first: u16| {
        let packets = format!("[IP(dst='203.0.113.100')/TCP(sport={first}+i, dport=21, flags='S') for i in range(50)]");
        scapy_send(&lab, "snd", &packets);
    };
    let forwarded = |file: &std::path::Path, from: u16| {
        // Not the ICMP errors the customer's namespace returns (it has no GRE), which quote them.
        let filter = format!("gre and not icmp and tcp.srcport >= {from} and tcp.srcport < {}", from + 50);
        common::tshark(file, &["-Y", &filter, "-T", "fields", "-e", "frame.number"]).lines().count()
    };

    let unresolved = || t.log().matches("next hop 10.2.0.1 is not in the neighbour table").count();
    let resolved = || t.log().matches("next hop 10.2.0.1 is at").count();
    let (unresolved_before, resolved_before) = (unresolved(), resolved());
    let cap = lab.capture("up", "u1");
    send(43000);
    // All 50 out before the link goes down (a slow machine's worker may lag the sender): in
    // the capture as it is written (tshark may meet a record half-written: no count yet).
    let so_far = || {
        let filter = "gre and not icmp and tcp.srcport >= 43000 and tcp.srcport < 43050";
        Command::new("tshark")
            .args(["-n", "-Y", filter, "-T", "fields", "-e", "frame.number", "-r"])
            .arg(&cap.file)
            .output()
            .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count())
    };
    wait_for("the first 50 to be forwarded", Duration::from_secs(10), || so_far() >= 50);
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "down"]);
    send(44000); // lost on the wire: the link is down
    // Said at the next look at the interface (it was silent: the counters stood still).
    let down = format!("{} is not up (operstate down)", lab.dev("d0"));
    wait_for("the link's going down to be said", Duration::from_secs(3), || t.log().contains(&down));
    lab.run("dut", "ip", &["link", "set", "dev", &lab.dev("d0"), "up"]);
    let up = format!("{} is up again", lab.dev("d0"));
    wait_for("the link's coming up to be said", Duration::from_secs(5), || t.log().contains(&up));
    wait_for("the link to carry ARP again", Duration::from_secs(10), || {
        lab.cmd("dut", "ping").args(["-c", "1", "-W", "1", "10.2.0.1"]).output().is_ok_and(|o| o.status.success())
    });
    // The link's going down flushed the neighbour entry: if transitd looked meanwhile, it
    // has the next hop again before the last 50 are sent.
    if unresolved() > unresolved_before {
        wait_for("the next hop to resolve again", Duration::from_secs(15), || resolved() > resolved_before);
    }
    send(45000);
    std::thread::sleep(Duration::from_millis(500));
    let file = cap.finish();
    assert_eq!(forwarded(&file, 43000), 50, "before the link went down");
    assert_eq!(forwarded(&file, 45000), 50, "after it came back");
    assert_eq!((t.log().matches(&down).count(), t.log().matches(&up).count()), (1, 1), "once each: {}", t.log());

    // The interface goes away under transitd (its veth peer's namespace is deleted): it
    // stops by itself, says why, and every UMEM frame is accounted for.
    let mut t = t;
    let _ = Command::new("ip").args(["netns", "del", &format!("{}-up", lab.prefix)]).status();
    wait_for("transitd to notice", Duration::from_secs(10), || !t.is_running());
    let log = t.log();
    assert!(log.contains("went away") || log.contains("no longer exists"), "{log}");
    assert!(log.matches("went away").count() <= 1, "said once: {log}");
    assert!(!log.contains("panicked"), "{log}");
    let (_, report) = t.stop();
    assert!(report.contains("umem frames") && !report.contains("NOT CONSERVED"), "{report}");
}

/// The number after each `key` (a word of its own) in `lines`, summed.
fn sum_after(lines: &[&str], key: &str) -> u64 {
    let numbers = |line: &&str| -> Vec<u64> {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(2).filter(|w| w[0] == key).filter_map(|w| w[1].parse().ok()).collect()
    };
    lines.iter().flat_map(numbers).sum()
}

/// Stopped (SIGTERM) while traffic pours in on both queues, transitd has counted every frame
/// its XDP program redirected: received by a worker, or dropped by the kernel at the socket
/// (`rx_ring_full`, `rx_dropped`), none left in a receive ring (the program's own counter is
/// the oracle). The sockets leave the program before the workers stop and empty their rings;
/// told to stop first, a worker left in its ring what came after its last poll, counted
/// nowhere (411 of 298,014 frames at 100 kpps over two queues). The program is gone after.
#[test]
fn a_stop_under_traffic_counts_every_frame_the_program_redirected() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tt", 2);
    let t = lab.transitd(ACME, &["--queues", "0-1"]);
    // UDP to Acme (its firewall drops it, each counted as received) from 256 source ports,
    // which the upstream veth spreads over its two queues, sent as fast as Python can.
    let sender = format!(
        r#"
import socket, struct
dev = "{dev}"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
mac = lambda text: bytes.fromhex(text.strip().replace(":", ""))
link = mac("{dst}") + mac(open(f"/sys/class/net/{{dev}}/address").read())
frames = []
for port in range(1024, 1280):
    udp = struct.pack("!HHHH", port, 9, 26, 0) + bytes(18)
    addresses = socket.inet_aton("10.2.0.1") + socket.inet_aton("203.0.113.100")
    ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 46, 0, 0, 64, 17, 0) + addresses)
    total = sum(struct.unpack("!10H", ip))
    total = (total & 0xffff) + (total >> 16)
    ip[10:12] = struct.pack("!H", ~((total & 0xffff) + (total >> 16)) & 0xffff)
    frames.append(link + b"\x08\x00" + bytes(ip) + udp)
while True:
    for frame in frames:
        try:
            s.send(frame)
        except OSError:
            pass
"#,
        dev = lab.dev("u1"),
        dst = lab.mac("dut", "d0"),
    );
    let mut sending = lab.cmd("up", "/usr/bin/python3").args(["-c", &sender]).spawn().unwrap();
    let received = || {
        let out = lab.cmd("dut", env!("CARGO_BIN_EXE_transitd")).args(["stats", "--raw"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("transitd_rx_packets_total{")).collect();
        lines.iter().filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok()).sum::<f64>()
    };
    wait_for("traffic to flow", Duration::from_secs(30), || received() > 10_000.0);
    let still_sending = sending.try_wait().unwrap().is_none();
    let (code, report) = t.stop();
    let _ = sending.kill();
    let _ = sending.wait();
    assert!(still_sending, "the sender ended before the stop");
    assert_eq!(code, 0, "{report}");
    let queues: Vec<&str> = report.lines().filter(|l| l.starts_with("queue ") || l.contains("socket (")).collect();
    let xdp: Vec<&str> = report.lines().filter(|l| l.starts_with("xdp: ")).collect();
    let (rx, redirected) = (sum_after(&queues, "rx"), sum_after(&xdp, "redirected"));
    let at_the_socket = sum_after(&queues, "rx_ring_full") + sum_after(&queues, "rx_dropped");
    assert!(rx > 10_000, "{report}");
    assert_eq!(redirected, rx + at_the_socket, "frames the program redirected that no counter holds:\n{report}");
    assert!(report.contains("umem frames") && !report.contains("NOT CONSERVED"), "{report}");
    assert!(!has_xdp(&lab, "dut", "d0"), "the program outlived the run");
}

#[test]
fn jumbo_frames_are_received_firewalled_encapsulated_and_answered() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tj", 1);
    lab.set_mtu(9000);
    // Frames up to 9216 bytes; the tunnel carries 8900-byte packets.
    let config = ACME
        .replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nframe_size = 9216")
        .replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nmtu = 8900");
    let t = lab.transitd(&config, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    assert!(t.log().contains("bound in copy mode (--bind auto), multi-buffer"), "{}", t.log());
    let out = lab.capture("up", "u1");
    let back = lab.capture("snd", "s0");
    // An 8,040-byte packet (three UMEM frames) that fits the tunnel, one that does not (DF
    // set: answered with fragmentation needed), and an SSH one the firewall drops.
    scapy_send(
        &lab,
        "snd",
        "[IP(dst='203.0.113.100', flags='DF')/TCP(sport=46000, dport=21, flags='PA')/Raw(b'j' * 8000), \
          IP(dst='203.0.113.100', flags='DF')/TCP(sport=46001, dport=21, flags='PA')/Raw(b'k' * 8900), \
          IP(dst='203.0.113.100', flags='DF')/TCP(sport=46002, dport=22, flags='PA')/Raw(b'l' * 8000)]",
    );
    std::thread::sleep(Duration::from_millis(500));
    let (out, back) = (out.finish(), back.finish());
    let gre = common::tshark(
        &out,
        &[
            "-Y",
            "gre and not icmp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "ip.len",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.len",
        ],
    );
    // Outer 20 + GRE 4 + inner 20 + TCP 20 + 8000: one packet, the first, whole.
    assert_eq!(gre.trim(), "8064,8040;46000;8000", "{gre}");
    let icmp = common::tshark(
        &back,
        &["-Y", "icmp.type == 3 and icmp.code == 4", "-T", "fields", "-e", "icmp.mtu", "-e", "tcp.srcport"],
    );
    assert_eq!(icmp.trim(), "8900\t46001", "{icmp}");
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("drop firewall") && !report.contains("NOT CONSERVED"), "{report}");
}

#[test]
fn a_frame_size_one_umem_frame_holds_binds_without_multi_buffer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tf", 1);
    lab.set_mtu(9000);
    let config = ACME.replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nframe_size = 1600");
    let drops = std::env::temp_dir().join(format!("transitd-tf-drops-{}.pcapng", std::process::id()));
    let t = lab.transitd(&config, &["--capture-drops", drops.to_str().unwrap()]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let out = lab.capture("up", "u1");
    // One packet that fits 1600 bytes, one that does not (it fits a UMEM frame, so the
    // socket takes it, and the pipeline drops it as oversize).
    scapy_send(
        &lab,
        "snd",
        "[IP(dst='203.0.113.100')/TCP(sport=47000, dport=21, flags='PA')/Raw(b'm' * 1000), \
          IP(dst='203.0.113.100')/TCP(sport=47001, dport=21, flags='PA')/Raw(b'n' * 3000)]",
    );
    std::thread::sleep(Duration::from_millis(500));
    let gre = common::tshark(&out.finish(), &["-Y", "gre and not icmp", "-T", "fields", "-e", "tcp.srcport"]);
    assert_eq!(gre.trim(), "47000", "{gre}");
    // Raised by a reload past what a frame holds: applied, and said what it costs.
    t.reload(&ACME.replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nframe_size = 9216"));
    wait_for("the reload", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    // Said at the supervisor's next look at the interface, half a second at most after.
    wait_for("the frames past the sockets", Duration::from_secs(2), || t.log().contains("frames of up to"));
    let log = t.log();
    assert!(!log.contains("no AF_XDP multi-buffer") && !log.contains("no zero-copy multi-buffer"), "{log}");
    assert!(
        log.contains("frames of up to 9022 bytes can arrive now (") && log.contains("MTU 9000, frame_size 9216)"),
        "{log}"
    );
    assert!(log.contains("frame_size 9216 is past the drop capture's snap length 1600"), "{log}");
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("drop oversize") && !report.contains("NOT CONSERVED"), "{report}");
    let _ = std::fs::remove_file(drops);
}

#[test]
fn a_reload_moves_the_next_hop_and_the_source_address() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tn", 1);
    let t = lab.transitd(ACME, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let send = |sport: u16| {
        scapy_send(
            &lab,
            "snd",
            &format!("[IP(dst='203.0.113.100')/TCP(sport={sport}, dport=21, flags='PA')/Raw(b'x' * 100)]"),
        );
    };
    let out = lab.capture("up", "u1");
    send(48000);
    // A new router (by its MAC) and our own address set: both apply without a restart.
    let moved = ACME
        .replace("next_hop = \"10.2.0.1\"", "next_hop_mac = \"02:00:00:00:00:99\"")
        .replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:77\"");
    t.reload(&moved);
    wait_for("the reload", Duration::from_secs(10), || t.log().contains("transitd: reloaded"));
    wait_for("the new next hop", Duration::from_secs(5), || t.log().contains("next hop is 02:00:00:00:00:99"));
    send(48001);
    std::thread::sleep(Duration::from_millis(500));
    let seen = common::tshark(
        &out.finish(),
        &[
            "-Y",
            "gre and not icmp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "tcp.srcport",
            "-e",
            "eth.dst",
            "-e",
            "eth.src",
        ],
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 2, "{seen}");
    assert!(lines[0].starts_with("48000;") && !lines[0].contains("02:00:00:00:00:99"), "{seen}");
    assert_eq!(lines[1], "48001;02:00:00:00:00:99;02:00:00:00:00:77", "{seen}");
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_packet_of_eighteen_frames_is_received_and_sent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("t8", 1);
    lab.set_mtu(65535);
    let config = ACME
        .replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nframe_size = 65536")
        .replace("remote = \"198.51.100.1\"", "remote = \"198.51.100.1\"\nmtu = 65500");
    let t = lab.transitd(&config, &[]);
    wait_for("the next hop to resolve", Duration::from_secs(15), || t.log().contains("next hop 10.2.0.1 is at"));
    let out = lab.capture("up", "u1");
    // 65,400 bytes on the wire: more than 17 frames' 3840 bytes each.
    scapy_send(&lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=49000, dport=21, flags='PA')/Raw(b'e' * 65346)]");
    std::thread::sleep(Duration::from_millis(500));
    let gre =
        common::tshark(&out.finish(), &["-Y", "gre and not icmp", "-T", "fields", "-e", "ip.len", "-e", "tcp.srcport"]);
    assert_eq!(gre.trim(), "65410,65386\t49000", "{gre}");
    let (code, report) = t.stop();
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("NOT CONSERVED"), "{report}");
}
