//! Inputs that once crashed, hung or exhausted transitd (issue "Hardening"), each reproduced
//! as it was reported, with the command that broke it: every one is now refused with a
//! position or a flag and a reason, or survived, within bounded time and memory.
//!
//! The inputs are generated here, not stored. Commands run with a 2 GiB address-space limit,
//! so that one that would grow without bound fails the test instead of the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab::{ACME, Lab, SERIAL, wait_for};
use common::{CATCH_ALL, read_frames, scapy_pcap, tshark_frames, verdicts_of, write_pcap};
use transitd::pipeline::{DropReason, Verdict};

/// A scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transitd-hardening-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `transitd args` under a 2 GiB address-space limit (RLIMIT_AS) and a 120 s timeout
/// (a guard against hangs, not a speed claim); returns its output.
fn transitd(args: &[&str]) -> Output {
    let mut cmd = Command::new("prlimit");
    cmd.args(["--as=2147483648", "--", "timeout", "120", env!("CARGO_BIN_EXE_transitd")]).args(args);
    let out = cmd.output().expect("prlimit and timeout (util-linux, coreutils)");
    assert_ne!(out.status.code(), Some(124), "transitd {args:?} did not finish within 120 s");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SERVER: &str = "[server]\nanycast = \"192.0.2.1\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n";

/// A configuration of one customer whose firewall has one rule matching `expr`.
fn with_rule(name: &str, expr: &str) -> String {
    format!(
        "{SERVER}[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n[customer.firewall]\n\
         [[customer.firewall.rule]]\nname = \"{name}\"\nmatch = \"{expr}\"\naction = \"drop\"\n"
    )
}

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn rules_nested_ten_thousand_deep_are_refused_with_their_position() {
    let dir = scratch("deep");
    // 10,000 parentheses: a 22 KB file that once overflowed the stack of check-config.
    let deep = format!("{}tcp{}", "(".repeat(10_000), ")".repeat(10_000));
    let path = write(&dir, "deep.toml", with_rule("deep", &deep));
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The rule is on line 8, its text starts at column 10; the 101st `(` is the one refused.
    let expected = format!("{}:10:110: rule `deep`: Parentheses and \"not\" nest more than 100 deep", path.display());
    assert!(stderr(&out).starts_with(&expected), "{}", stderr(&out));

    // 40,000 `!` in a row, through `match -Y`.
    let capture = common::pcap("real/zeek-communityid-tcp.pcap");
    let nots = format!("{}tcp", "!".repeat(40_000));
    let out = transitd(&["match", "-r", capture.to_str().unwrap(), "-Y", &nots]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nest more than 100 deep"), "{}", stderr(&out));

    // 100 deep is allowed, and means what it says: tshark's count of the same filter.
    let hundred = format!("{}tcp{}", "(".repeat(99), ")".repeat(99));
    let ours = transitd(&["match", "-r", capture.to_str().unwrap(), "-Y", &hundred, "--count"]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let theirs = common::tshark_frames(&capture, "tcp", &[]).len();
    assert_eq!(String::from_utf8_lossy(&ours.stdout).trim(), theirs.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_that_could_forge_metrics_are_refused() {
    let dir = scratch("names");
    let text = format!(
        "{SERVER}[[customer]]\nname = \"ev\\\"il\\n}} 1\\ninjected_metric 42\\n#\"\nprefixes = [\"203.0.113.0/24\"]\n\
         [[customer]]\nname = \"\"\nprefixes = [\"198.51.100.0/24\"]\n"
    );
    let path = write(&dir, "names.toml", text);
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(":5:8: customer name \"ev\\\"il\\n} 1\\ninjected_metric 42\\n#\" holds '\"'"), "{err}");
    assert!(err.contains(":8:8: customer name \"\" is empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn label_values_are_escaped_as_openmetrics_requires() {
    // Names are checked at load; the encoder escapes anyway. A snapshot whose names were
    // never checked is scraped, and Python's OpenMetrics parser (and its text format 0.0.4
    // parser, for the other format served) must read the names back exactly, with no forged
    // sample.
    let mut snap = common::snapshot(ACME);
    let evil = "ev\"il\n} 1\ninjected_metric 42\n#\\";
    snap.customers[0].name = evil.to_string();
    let sources = std::sync::Arc::new(transitd::metrics::Sources {
        workers: vec![std::sync::Arc::default()],
        snapshot: std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(snap)),
        xdp: Default::default(),
        reloads: Default::default(),
        bgp: Default::default(),
        ipfix: None,
        capture: None,
        punt: None,
        interface: None,
        link_mtu: None,
        started: 0,
    });
    for (format, parser) in [
        (transitd::metrics::Format::OpenMetrics, "prometheus_client.openmetrics.parser"),
        (transitd::metrics::Format::Text, "prometheus_client.parser"),
    ] {
        let text = transitd::metrics::render(&sources, format);
        let (names, customers) = parsed_by(parser, &text);
        assert!(!names.iter().any(|n| n.contains("injected")), "{format:?}: {names:?}");
        assert!(customers.contains(&evil.to_string()), "{format:?}: {customers:?}");
    }
}

/// The metric families and customer label values Python's `parser` (a prometheus_client
/// module) reads in `text`.
fn parsed_by(parser: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let script = r#"
import sys, json, importlib
parser = importlib.import_module(sys.argv[1])
names, customers = set(), set()
for family in parser.text_string_to_metric_families(sys.stdin.read()):
    names.add(family.name)
    for s in family.samples:
        if "customer" in s.labels:
            customers.add(s.labels["customer"])
print(json.dumps([sorted(names), sorted(customers)]))
"#;
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", script, parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "{parser} refuses it: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn unbounded_inputs_are_refused_at_their_bound() {
    let dir = scratch("bounds");
    // A /8 of soft-unicast egress addresses once grew to 24 GB.
    let su = format!(
        "{SERVER}[soft_unicast]\nthis_server = \"a1\"\n[[soft_unicast.data_centre]]\nname = \"lhr\"\nbackbone = \"10.255.0.1\"\n\
         [[soft_unicast.server]]\nname = \"a1\"\ndata_centre = \"lhr\"\nbackbone = \"10.255.1.1\"\n\
         [[soft_unicast.egress]]\nprefix = \"10.0.0.0/8\"\ndata_centre = \"lhr\"\ncountry = \"GB\"\n"
    );
    let path = write(&dir, "su.toml", &su);
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains(":14:10: egress prefix 10.0.0.0/8 brings the egress addresses to 16777216, more than 8192"),
        "{}",
        stderr(&out)
    );
    let plan = write(
        &dir,
        "plan.toml",
        su.replace("10.0.0.0/8", "10.0.0.0/24").replace("[soft_unicast]\n", "[soft_unicast]\nplan = \"/dev/zero\"\n"),
    );

    // Endless files: each is refused at its bound.
    for (args, expected) in [
        (vec!["check-config", "/dev/zero"], "/dev/zero: cannot read: larger than 16777216 bytes"),
        (vec!["run", "--config", "/dev/zero", "--iface", "lo"], "/dev/zero: cannot read: larger than 16777216 bytes"),
        (vec!["check-config", plan.to_str().unwrap()], "plan file /dev/zero: larger than 33554432 bytes"),
        (vec!["geofeed", "--check", "/dev/zero"], "/dev/zero: larger than 67108864 bytes"),
        (vec!["plan", "-c", path.to_str().unwrap(), "--previous", "/dev/zero"], "egress prefix 10.0.0.0/8"),
        (
            vec!["run", "--config", path.to_str().unwrap(), "--iface", "lo", "--queues", "0-4294967295"],
            "lists more than 1024 entries",
        ),
    ] {
        let out = transitd(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    // An OS error is said once (exit 2: nothing was checked), and a flag is checked before
    // anything is connected to. A feed that is no text is refused as a bad line is (exit 1).
    let out = transitd(&["geofeed", "--check", "/nonexistent/feed.csv"]);
    assert_eq!(stderr(&out).matches("No such file").count(), 1, "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(2));
    let binary = write(&dir, "binary.csv", b"192.0.2.0/24,GB\n\xff\n".as_slice());
    let out = transitd(&["geofeed", "--check", binary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("binary.csv:2:1: not UTF-8 text"), "{}", stderr(&out));
    let out = transitd(&["geofeed", "--check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = transitd(&["stats", "--interval", "0", "--metrics", "127.0.0.1:9"]);
    assert!(stderr(&out).contains("`0` is shorter than 1 s"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let small = write(&dir, "small.toml", su.replace("10.0.0.0/8", "10.0.0.0/24"));
    let out = transitd(&["plan", "-c", small.to_str().unwrap(), "--previous", "/dev/zero"]);
    assert!(stderr(&out).contains("/dev/zero: larger than 33554432 bytes"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pcap of `n` UDP frames from a bogon source (10.0.0.1) to 203.0.113.100: each one
/// dropped as `bogon_source` by default.
fn bogon_capture(dir: &Path, n: usize) -> PathBuf {
    let mut frame = vec![0u8; 14 + 20 + 8 + 18];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut frame[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 203, 0, 113, 100]);
    let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame[34..42].copy_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 26, 0, 0]);
    let path = dir.join("bogons.pcap");
    write_pcap(&path, &vec![frame; n]);
    path
}

#[test]
fn failed_writes_end_a_replay_with_an_error() {
    let dir = scratch("writes");
    let config = write(&dir, "c.toml", common::CATCH_ALL);
    let input = bogon_capture(&dir, 1000);
    let cfg = config.to_str().unwrap();
    let inp = input.to_str().unwrap();

    // Drop capture to a full disk once spun forever on sched_yield.
    let strict = write(&dir, "strict.toml", SERVER);
    let out = transitd(&["replay", "--config", strict.to_str().unwrap(), "--in", inp, "--capture-drops", "/dev/full"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--capture-drops: ") && stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );

    // Frames out to a full disk once printed a normal summary and exited 0.
    let out = transitd(&[
        "replay",
        "--config",
        cfg,
        "--in",
        common::pcap("real/zeek-communityid-tcp.pcap").to_str().unwrap(),
        "--out",
        "/dev/full",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    // Said where errors go, naming the file (a full disk says nothing of which).
    assert!(stderr(&out).contains("/dev/full: No space left on device"), "{}", stderr(&out));

    // One file for two outputs, or output over input.
    let o = dir.join("o.pcap");
    let o = o.to_str().unwrap();
    let out = transitd(&["replay", "--config", cfg, "--in", inp, "--out", o, "--capture-drops", o]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("--out {o} and --capture-drops {o} are the same file")), "{}", stderr(&out));
    let out = transitd(&["replay", "--config", cfg, "--in", inp, "--out", inp]);
    assert!(stderr(&out).contains("are the same file"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&input).unwrap().len(), 24 + 1000 * (16 + 60), "the input was not touched");

    // A missing output directory is named as the output's.
    let out = transitd(&["replay", "--config", cfg, "--in", inp, "--out", "/nonexistent/dir/o.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--out /nonexistent/dir/o.pcap: No such file or directory"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_large_set_is_checked_early_and_interpreted() {
    // Seconds of both cores: not beside a lab test's timing.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("sets");
    // 100,000 addresses spread over the address space: more boxes than a rule may have
    // (expanding them once took 20 s; 200,000, 87 s). The rule is taken as one to interpret,
    // and `check-config` says so.
    for n in [100_000u32, 200_000] {
        let members: Vec<String> =
            (0..n).map(|i| std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761)).to_string()).collect();
        let expr = format!("ip.src in {{{}}}", members.join(", "));
        let path = write(&dir, "set.toml", with_rule("blocklist", &expr));
        let started = Instant::now();
        let out = transitd(&["check-config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("1 firewall rule; 1 rule too complex for the decision trees (over 16384 boxes, or 256 answers of their byte tests) is checked by interpretation"),
            "{said}"
        );
        eprintln!("{n} members checked in {:?}", started.elapsed());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Masks are bounded per configuration, not only per rule: 10,000 rules of one mask each
/// (`tcp.srcport & 2 == 0`, 16,384 ranges of ports, twenty characters) are half a megabyte
/// of text, and every rule kept its sets until all were parsed: 5 GB, an abort here under
/// the 2 GiB the command runs in (the OOM killer for a running edge's reload), and each
/// mask past the bound walked its 16,384 ranges before it was refused. Refused now from the
/// mask that takes the configuration past its bound, at its position.
#[test]
fn masks_are_bounded_per_configuration() {
    let dir = scratch("masks");
    let rules: String = (0..10_000)
        .map(|i| format!("[[dos.rule]]\nname = \"m{i}\"\nmatch = 'tcp.srcport & 2 == 0'\naction = \"drop\"\n"))
        .collect();
    let path = write(&dir, "masks.toml", format!("{SERVER}{rules}"));
    let started = Instant::now();
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Rule m64 crosses 64 x 16,384 = 1,048,576: its `match` is on line 3 + 4 x 64 + 3, its
    // text from column 10.
    let bound = classifier::parse::MAX_MASKED_RANGES_PER_CONFIG;
    let line = 3 + 4 * (bound / classifier::parse::MAX_MASKED_RANGES) + 3;
    let said = format!(
        "masks.toml:{line}:10: rule `m64`: the masks of the rules select more than {bound} separate ranges of values"
    );
    assert!(stderr(&out).contains(&said), "{}", stderr(&out));
    eprintln!("10,000 masks refused in {:?}", started.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A key of megabytes that no table has is told unknown at once: the "did you mean" was
/// worked out against every expected name in a table of as many cells as the product of
/// their lengths (2 GB for a key of 10 MB against `max_ipv6_extension_headers`: an abort
/// here, and on a reload the running edge's).
#[test]
fn a_key_of_megabytes_is_told_unknown_at_once() {
    let dir = scratch("long-key");
    let key = "k".repeat(10_000_000);
    let path = write(&dir, "key.toml", format!("{SERVER}[dos.sanity]\n{key} = true\n"));
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said:.300}");
    // The message is cut to its first characters, the key's.
    assert!(said.contains("key.toml:5:1: unknown field `kkkk"), "{said:.300}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `check-config` counts every rule left to interpretation, TCP protection's too: here a
/// global one and a customer's, each of 512 answers of its byte tests (nine `and`ed pairs of
/// `contains`), which it once left out.
#[test]
fn interpreted_tcp_protection_rules_are_counted() {
    let dir = scratch("interpreted");
    let pairs: Vec<String> =
        (0..9).map(|i| format!("(tcp.payload contains \"a{i}\" or tcp.payload contains \"b{i}\")")).collect();
    let expr = pairs.join(" and ");
    let text = format!(
        "{SERVER}[[tcp_protection.rule]]\nmatch = '{expr}'\n[[customer]]\nname = \"acme\"\n\
         prefixes = [\"203.0.113.0/24\"]\n[[customer.tcp_protection.rule]]\nmatch = '{expr}'\n"
    );
    let path = write(&dir, "tcp.toml", text);
    let out = transitd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("0 firewall rules; 2 rules too complex for the decision trees"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn odd_configurations_get_positions_and_short_messages() {
    let dir = scratch("odd");
    let bogons =
        write(&dir, "bogons.toml", format!("{SERVER}[dos.sanity]\nbogons = false\nbogon_sources = [\"1.2.3.4/33\"]\n"));
    let out = transitd(&["check-config", bogons.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(":6:18: bad CIDR `1.2.3.4/33`"), "{}", stderr(&out));

    let utf8 = write(&dir, "utf8.toml", b"[server]\nanycast = \"192.0.2.1\"\n# caf\xe9\n");
    let out = transitd(&["check-config", utf8.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("utf8.toml:3:6: not UTF-8 text"), "{}", stderr(&out));

    let header = format!("{SERVER}[{}]\nx = 1\n", vec!["a"; 2000].join("."));
    let deep = write(&dir, "deep.toml", header);
    let out = transitd(&["check-config", deep.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("deep.toml:4:1: recursion limit: a key nested 2000 deep"), "{}", stderr(&out));

    // A 50 MB field in a geofeed: the error names the line and quotes a little of it.
    let feed = format!("# feed\n{},GB,,,\n", "1".repeat(50_000_000));
    let feed = write(&dir, "feed.csv", feed);
    let out = transitd(&["geofeed", "--check", feed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.len() < 300, "{} bytes of error", err.len());
    assert!(
        err.contains("feed.csv:2:1: `1111111111111111111111111111111111111111…` (50000000 bytes) is not an IP prefix"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// True when an XDP program is attached to `dev` in `ns`.
fn has_xdp(lab: &Lab, ns: &str, dev: &str) -> bool {
    let out = lab.run(ns, "ip", &["link", "show", "dev", &lab.dev(dev)]);
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn flags_are_checked_before_the_program_is_attached() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("th", 1);
    let dir = scratch("flags");
    let config = write(&dir, "acme.toml", ACME);
    let cpus = std::thread::available_parallelism().unwrap().get();
    for (cores, expected) in [
        ("9999", "--cores: CPU 9999 is not one this process may run on"),
        ("1000", "--cores: CPU 1000 is not one this process may run on"),
        ("0,1", "--cores lists 2 CPUs for 1 queue: give one per queue"),
    ] {
        let out = lab
            .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
            .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--cores", cores])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--cores {cores} on {cpus} CPUs: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(!has_xdp(&lab, "dut", "d0"), "--cores {cores} left an XDP program attached");
    }
    // A refused configuration exits 1, as check-config does (2 is for everything else);
    // --prefix belongs to --config-etcd, and is refused beside a file.
    let bad = write(&dir, "bad.toml", ACME.replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.300\""));
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("anycast address `192.0.2.300` is not an IPv4 address"), "{}", stderr(&out));
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--prefix", "/x/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--prefix is the etcd key prefix of --config-etcd"), "{}", stderr(&out));
    assert!(!has_xdp(&lab, "dut", "d0"), "a refused start left an XDP program attached");
    // --napi-defer's bound is the kernel's: napi_defer_hard_irqs keeps it as written, and not
    // one more (refused, or before the kernel's 2024 fix read back negative). One more is
    // refused with the bound before anything is set or attached (it used to reach the write,
    // which said only "Numerical result out of range").
    let tunable = format!("/sys/class/net/{}/napi_defer_hard_irqs", lab.dev("d0"));
    let write_and_read = |value: &str| {
        let script = format!("echo {value} > {tunable} 2>/dev/null; cat {tunable}");
        let out = lab.cmd("dut", "sh").args(["-c", &script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (bound, past) = (transitd::limits::MAX_NAPI_DEFER.to_string(), "2147483648");
    assert_eq!(write_and_read(&bound), bound, "the kernel keeps its bound");
    assert_ne!(write_and_read(past), past, "the kernel keeps no more than its bound");
    assert_eq!(write_and_read("0"), "0");
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--napi-defer", past])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("2147483648 is not in 0..=2147483647"), "{}", stderr(&out));
    assert_eq!(write_and_read("0"), "0", "a refused --napi-defer set the tunable");
    assert!(!has_xdp(&lab, "dut", "d0"), "a refused --napi-defer left an XDP program attached");
    let out = lab
        .cmd("dut", env!("CARGO_BIN_EXE_transitd"))
        .args(["run", "--iface", &lab.dev("d0"), "--config", config.to_str().unwrap(), "--queues", "3"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("has 1 rx queue (queue 0), not queue 3"), "{}", stderr(&out));
    // `queues` (None: every queue) of lab interface `short` is refused with `expected` said,
    // before anything is attached.
    let refused = |short: &str, queues: Option<&str>, expected: &str| {
        let mut cmd = lab.cmd("dut", env!("CARGO_BIN_EXE_transitd"));
        cmd.args(["run", "--iface", &lab.dev(short), "--config", config.to_str().unwrap()]);
        if let Some(q) = queues {
            cmd.args(["--queues", q]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{queues:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{queues:?}: {}", stderr(&out));
        assert!(!has_xdp(&lab, "dut", short), "{queues:?} left an XDP program attached");
    };
    // The XDP program has 64 socket slots: an interface with more queues is served only
    // where asked, and a queue past them is refused, before anything is attached.
    let wide = lab.dev("wide");
    let wide = wide.as_str();
    lab.run("dut", "ip", &["link", "add", "name", wide, "numrxqueues", "65", "numtxqueues", "65", "type", "veth"]);
    lab.run("dut", "ip", &["link", "set", wide, "up"]);
    for (queues, expected) in [
        (None, "has 65 rx queues; transitd serves queues 0-63 (the XDP program's socket map)"),
        (Some("64"), "--queues: queue 64 is past the 64 queues the XDP program has socket slots for"),
    ] {
        refused("wide", queues, expected);
    }
    // A socket sends on the queue it receives from: in copy mode the kernel sends nothing
    // from one past the device's tx queues, without an error. Refused before attaching.
    let narrow = lab.dev("narrow");
    let narrow = narrow.as_str();
    lab.run("dut", "ip", &["link", "add", "name", narrow, "numrxqueues", "4", "numtxqueues", "2", "type", "veth"]);
    lab.run("dut", "ip", &["link", "set", narrow, "up"]);
    for (queues, expected) in [
        (None, "has 4 rx queues but 2 tx queues, and a socket sends on the queue it receives from: choose queues 0-1"),
        (Some("1,3"), "has 2 tx queues, not queue 3"),
    ] {
        refused("narrow", queues, expected);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_running_edge_survives_a_reload_it_must_refuse() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tr", 1);
    let mut t = lab.transitd(ACME, &["--metrics", "127.0.0.1:9469"]);
    // The reload that once overflowed the stack and left the program attached.
    let deep = ACME.replace(
        "match = \"ip.dst == 203.0.113.100 and tcp.dstport in {20..21}\"",
        &format!("match = \"{}tcp{}\"", "(".repeat(10_000), ")".repeat(10_000)),
    );
    t.reload(&deep);
    wait_for("the reload to be rejected", Duration::from_secs(10), || t.log().contains("rejected"));
    assert!(t.log().contains("nest more than 100 deep"), "{}", t.log());
    assert!(t.is_running(), "{}", t.log());
    // A file without a next hop: `run` would not start on it, and a reload is refused too.
    let no_next_hop: String = ACME.lines().filter(|l| !l.starts_with("next_hop")).map(|l| format!("{l}\n")).collect();
    assert_ne!(no_next_hop, ACME);
    t.reload(&no_next_hop);
    // Said at `[server]`, line 2 of ACME, like every other configuration error.
    wait_for("the reload to be rejected", Duration::from_secs(10), || {
        t.log().contains(":2:1: [server] sets no next hop: `run` needs next_hop (an IP address) or next_hop_mac")
    });
    assert!(t.is_running(), "{}", t.log());
    let metrics = lab.run("dut", env!("CARGO_BIN_EXE_transitd"), &["stats", "--raw"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("transitd_config_reloads_total{result=\"rejected\"} 2"), "{metrics}");
    assert!(has_xdp(&lab, "dut", "d0"));
    let (code, _) = t.stop();
    assert_eq!(code, 0);
    assert!(!has_xdp(&lab, "dut", "d0"), "stopping detaches");
}

/// The next hop's MAC comes from the neighbour entry on the interface transitd runs on: the
/// same address may be a neighbour on several links at different MACs (IPv6's link-local
/// routers always are), and the last entry of the table is not the right one.
#[test]
fn the_next_hop_is_looked_up_on_its_own_interface() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let _ = Command::new("ip").args(["link", "del", "tdnh0"]).output();
    ip(&["link", "add", "tdnh0", "type", "veth", "peer", "name", "tdnh1"]);
    let mut index = Vec::new();
    for (dev, mac) in [("tdnh0", "02:00:00:00:0a:00"), ("tdnh1", "02:00:00:00:0b:00")] {
        ip(&["link", "set", dev, "up"]);
        ip(&["neigh", "replace", "fe80::1", "lladdr", mac, "dev", dev, "nud", "permanent"]);
        ip(&["neigh", "replace", "192.0.2.254", "lladdr", mac, "dev", dev, "nud", "permanent"]);
        let n: u32 = std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex")).unwrap().trim().parse().unwrap();
        index.push(n);
    }
    for (i, last) in [(0, 0x0a), (1, 0x0b)] {
        for addr in ["fe80::1", "192.0.2.254"] {
            let found = transitd::neigh::lookup(addr.parse().unwrap(), index[i]).unwrap();
            assert_eq!(found, Some([2, 0, 0, 0, last, 0]), "{addr} on interface {}", index[i]);
        }
    }
    ip(&["link", "del", "tdnh0"]);
}

/// An unresolved next hop is solicited on the interface transitd runs on, whatever the
/// routing table says: here that interface has no address and no route toward the next hop
/// (a datagram sent by the host stack went out of the default route, and the next hop
/// never resolved on `--iface`).
#[test]
fn the_next_hop_is_solicited_on_its_own_interface() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = format!("tdns{}", std::process::id() % 100_000);
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let _ = Command::new("ip").args(["link", "del", "tdns0"]).output();
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    ip(&["netns", "add", &ns]);
    ip(&["link", "add", "tdns0", "type", "veth", "peer", "name", "tdns1", "netns", &ns]);
    ip(&["link", "set", "tdns0", "up"]);
    ip(&["-n", &ns, "link", "set", "tdns1", "up"]);
    ip(&["-n", &ns, "addr", "add", "198.51.100.2/24", "dev", "tdns1"]);
    ip(&["-n", &ns, "-6", "addr", "add", "2001:db8:77::2/64", "dev", "tdns1", "nodad"]);
    let index: u32 = std::fs::read_to_string("/sys/class/net/tdns0/ifindex").unwrap().trim().parse().unwrap();
    let out = Command::new("ip").args(["-n", &ns, "-o", "link", "show", "tdns1"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let mac: Vec<u8> = listing
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let mut found = Vec::new();
    // IPv6 waits for the link-local address of tdns0 to leave DAD before it can solicit.
    for addr in ["198.51.100.2", "2001:db8:77::2"] {
        let addr = addr.parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            transitd::neigh::solicit(addr, index).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            got = transitd::neigh::lookup(addr, index).unwrap();
        }
        found.push(got);
    }
    let _ = Command::new("ip").args(["link", "del", "tdns0"]).output();
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    let want = Some(<[u8; 6]>::try_from(mac.as_slice()).unwrap());
    assert_eq!(found, [want, want], "{listing}");
}

/// A command that reads its configuration once takes it from a pipe (`etcdctl get ... |
/// transitd check-config /dev/stdin`), errors still at their line; `run`, which watches its
/// file and reads it again on every change, refuses a pipe by name.
#[test]
fn one_shot_commands_read_a_configuration_from_a_pipe() {
    use std::io::Write as _;
    let piped = |args: &[&str], text: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A command that refuses the pipe may exit before it is written: that write fails
        // (EPIPE), and the exit status says the rest.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
        child.wait_with_output().unwrap()
    };
    let good = piped(&["check-config", "/dev/stdin"], SERVER);
    assert!(good.status.success(), "{}", stderr(&good));
    let bad = piped(&["check-config", "/dev/stdin"], &format!("{SERVER}bogus = 1\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("/dev/stdin:4:1"), "{}", stderr(&bad));
    let shown = piped(&["bgp", "show", "--config", "/dev/stdin"], &format!("{SERVER}[bgp]\n"));
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("192.0.2.1/32"), "{shown:?}");
    let run = piped(&["run", "--iface", "lo", "--config", "/dev/stdin"], SERVER);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("a FIFO or socket, not a file transitd reads as a configuration"),
        "{}",
        stderr(&run)
    );
}

/// Each malformed header is dropped under the reason that names it, and valid packets of
/// odd sizes go through: a UDP length below 8 or past the IP payload is a bad UDP header (a
/// length of 0 was taken, by etherparse's jumbogram rule, as "the rest"); an IPv4 total
/// length below the header's a bad IPv4 header (tshark: "Bogus IP length"), not a short
/// frame; an ICMP timestamp with more than its 20 bytes, and UDP with bytes after its
/// length, are valid (etherparse refused the first as truncated). tshark selects the bad
/// UDP lengths on its own.
#[test]
fn malformed_headers_are_named_and_odd_valid_ones_pass() {
    let file = scratch("odd-headers").join("odd.pcap");
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         ip = IP(src='198.51.100.9', dst='203.0.113.9')\n\
         frames = [\n\
           e/ip/UDP(sport=1000, dport=53, len=0)/Raw(b'abcdefgh'),\n\
           e/ip/UDP(sport=1000, dport=53, len=5)/Raw(b'abcdefgh'),\n\
           e/ip/UDP(sport=1000, dport=53, len=200)/Raw(b'x'),\n\
           e/ip/UDP(sport=1000, dport=53, len=10)/Raw(b'abWXYZ'),\n\
           e/ip/ICMP(type=13)/Raw(b'X' * 16),\n\
           e/IP(src='198.51.100.9', dst='203.0.113.9', len=16)/UDP(sport=1000, dport=53),\n\
         ]",
    );
    let (v, _, _) = verdicts_of(CATCH_ALL, read_frames(&file).into_iter().map(|f| f.bytes).collect());
    let bad_udp: Vec<u64> = tshark_frames(&file, "udp.length < 8 or udp.length > ip.len - ip.hdr_len", &[]);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
    assert_eq!(bad_udp, [1, 2, 3], "the oracle's selection");
    let drop = |r| Verdict::Drop(r);
    assert_eq!(v[..3], [drop(DropReason::BadUdpHeader); 3], "{v:?}");
    assert!(v[3..5].iter().all(|v| matches!(v, Verdict::Tx { .. })), "{v:?}");
    assert_eq!(v[5], drop(DropReason::BadIpv4Header), "{v:?}");
}

/// What the other commands take, these take too: `check-config --config` (`-c`), as `run`
/// beside it in the systemd unit; `stats --metrics HOST:PORT`. A geofeed with no entries is
/// well formed and said to be empty (published, it would withdraw every location).
#[test]
fn commands_take_their_arguments_as_the_others_do() {
    let config = common::root().join("examples/acme.toml");
    for flag in ["--config", "-c"] {
        let out = transitd(&["check-config", flag, config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr(&out));
    }
    let out = transitd(&["check-config", config.to_str().unwrap(), "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a file given twice is a usage error");
    // Nothing listens on port 9: the name resolved (to 127.0.0.1 or ::1 first, as the
    // machine's resolver has it), the connection refused (not a usage error).
    let out = transitd(&["stats", "--metrics", "localhost:9"]);
    assert!(stderr(&out).contains(":9: Connection refused"), "{}", stderr(&out));
    // Listening on one of localhost's addresses only, as `run` does on 127.0.0.1: found.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        drop(listener.accept().unwrap()); // the probe
        let (mut conn, _) = listener.accept().unwrap();
        // The whole request first: closed before it came, the client's write would fail.
        let (mut req, mut got) = ([0u8; 4096], 0);
        while !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut req[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let out = transitd(&["stats", "--metrics", &format!("localhost:{port}")]);
    assert!(stderr(&out).contains(&format!("127.0.0.1:{port}: its metrics are not transitd's")), "{}", stderr(&out));
    server.join().unwrap();
    // Answered once, then gone: the second reading's failure says the first was answered
    // (it read as if transitd had never run).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        // The first connection that sends a whole request is answered (one that closes
        // without, as a probe of the address does, is not).
        let mut conn = loop {
            let (mut conn, _) = listener.accept().unwrap();
            let (mut req, mut got) = ([0u8; 4096], 0);
            while !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut req[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            if req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                break conn;
            }
        };
        let body = "transitd_build_info{version=\"0\"} 1\n# EOF\n";
        let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        // The listener closes with the thread: the second reading is refused.
    });
    let out = transitd(&["stats", "--metrics", &format!("127.0.0.1:{port}"), "--interval", "1"]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "a system call refused: {}", stderr(&out));
    assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("; the first reading, 1.") && said.contains(" s before, was answered"), "{said}");
    let dir = scratch("conveniences");
    let feed = write(&dir, "empty.csv", "# nothing yet\n");
    let out = transitd(&["geofeed", "--check", feed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("warning: the feed has no entries"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader of the log that has gone (`transitd run ... 2>&1 | head -3`, a log shipper
/// restarted) closed the pipe: `eprintln!` panicked at the next message (exit 101, the run
/// gone with no final report). A message to a closed pipe is let go: the command ends as it
/// would have (here `check-config` of a missing file: 1).
#[test]
fn a_closed_pipe_for_the_log_is_no_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["check-config", "/nonexistent/transitd.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "{status}");
}

/// Prefixes nested deep with many inside the deepest: the 82 prefixes 2001:db8::/32 to /113
/// and 2,000 /128s inside them overlap in 167,321 pairs, each an error that `check-config`
/// and a reload held (the 32,000 /128s a configuration may have made 2.6 million, 830 MB);
/// the first 10,000 are said and one error counts the rest.
#[test]
fn overlapping_prefixes_past_ten_thousand_pairs_are_counted() {
    let dir = scratch("nested-prefixes");
    let chain = (32..114).map(|len| format!("\"2001:db8::/{len}\",\n"));
    let hosts = (0..2000).map(|k| format!("\"2001:db8::{k:x}/128\",\n"));
    let prefixes: String = chain.chain(hosts).collect();
    let config = write(&dir, "nested.toml", format!("{SERVER}[[customer]]\nname = \"a\"\nprefixes = [\n{prefixes}]\n"));
    let out = transitd(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    // 10,000 pairs and the count of the rest, of which the first 100 are shown.
    assert!(stderr(&out).ends_with("... and 9901 more errors\n"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A feed a Windows tool wrote starts with a byte order mark, which the file's reader drops;
/// a second one is left in the first prefix by such readers (Python's `utf-8-sig`:
/// `'\ufeff192.0.2.0/24'`, no network), so it is an error at line 1, column 1. The feed of
/// two marks passed: the mark was dropped twice, by the reader and by the parser.
#[test]
fn a_geofeed_is_read_past_one_byte_order_mark_not_two() {
    let dir = scratch("geofeed-bom");
    let one = write(&dir, "one.csv", "\u{feff}192.0.2.0/24,GB,,,\n");
    let out = transitd(&["geofeed", "--check", one.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let two = write(&dir, "two.csv", "\u{feff}\u{feff}192.0.2.0/24,GB,,,\n");
    let out = transitd(&["geofeed", "--check", two.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("two.csv:1:1: a byte order mark inside the feed"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A refused configuration is said alike by every command that reads one: each error a line
/// of its own from `file:line:col`, as `check-config` says them. `run` said its first behind
/// `transitd: ` and the rest without. (The interface is none: the configuration is read
/// before it is looked for.)
#[test]
fn a_refused_configuration_is_said_alike_by_every_command() {
    let dir = scratch("refused-alike");
    let bad = with_rule("r", "tcp").replace("192.0.2.1", "192.0.2.300").replace("203.0.113.0/24", "300.0.0.0/8");
    let bad = write(&dir, "bad.toml", bad);
    let capture = common::pcap("real/zeek-communityid-tcp.pcap");
    let (bad, capture) = (bad.to_str().unwrap(), capture.to_str().unwrap());
    let checked = transitd(&["check-config", bad]);
    assert_eq!(checked.status.code(), Some(1));
    let said = stderr(&checked);
    assert!(said.lines().count() >= 2 && said.lines().all(|l| l.starts_with(bad)), "{said}");
    for args in [
        vec!["run", "--config", bad, "--iface", "transitd-none0"],
        vec!["replay", "--config", bad, "--in", capture],
        vec!["match", "-r", capture, "--config", bad],
    ] {
        let out = transitd(&args);
        assert_eq!((out.status.code(), stderr(&out)), (Some(1), said.clone()), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run without the capabilities it needs (an unprivileged user, no RUNTIME_DIRECTORY) says
/// which it lacks and who has them: it said `/run/transitd/...lock: Permission denied`, the
/// first thing it met that needs privilege. As `nobody` with no capabilities (setpriv), in a
/// network namespace of its own (unshare), whose loopback is the interface.
#[test]
fn a_run_without_privilege_says_what_it_lacks() {
    let dir = scratch("unprivileged");
    let (binary, config) = (dir.join("transitd"), write(&dir, "transitd.toml", CATCH_ALL));
    std::fs::copy(env!("CARGO_BIN_EXE_transitd"), &binary).unwrap();
    for p in [&dir, &binary, &config] {
        assert!(Command::new("chmod").arg("a+rX").arg(p).status().unwrap().success());
    }
    let out = Command::new("unshare")
        .args(["-n", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg("--bounding-set=-all")
        .arg(&binary)
        .args(["run", "--iface", "lo", "--no-metrics", "--config"])
        .arg(&config)
        .env_remove("RUNTIME_DIRECTORY")
        .output()
        .expect("unshare and setpriv (util-linux)");
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    let lacks = "transitd: this process lacks CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF: run transitd as root";
    assert!(said.contains(lacks), "{said}");
    assert!(!said.contains("Permission denied"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
