//! `transitd match` as a command: output format, -c, --count, exit codes and messages.

mod common;

use std::process::{Command, Output};

use common::*;

fn transitd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_transitd")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn prints_frame_numbers_like_tshark_fields_and_honours_c_and_count() {
    let file = pcap("real/zeek-communityid-tcp.pcap");
    let f = file.to_str().unwrap();
    let expr = "tcp.srcport == 80";
    let out = transitd(&["match", "-r", f, "-Y", expr]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), tshark(&file, &["-Y", expr, "-T", "fields", "-e", "frame.number"]));
    let out = transitd(&["match", "-r", f, "-Y", expr, "-c", "6"]);
    assert_eq!(stdout(&out), tshark(&file, &["-c", "6", "-Y", expr, "-T", "fields", "-e", "frame.number"]));
    let out = transitd(&["match", "-r", f, "-Y", expr, "--count"]);
    assert_eq!(stdout(&out), "6\n");
    // Every other command's -c is its configuration: a file name here is told what -c is.
    let out = transitd(&["match", "-c", "examples/acme.toml", "-r", f]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-c here is tshark's frame count (a configuration is --config FILE)"), "{err}");
    let out = transitd(&["match", "-r", f, "-Y", expr, "-c", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 1 frame (tshark refuses 0 too)"), "{err}");
}

#[test]
fn a_syntax_error_shows_a_caret_and_exits_2() {
    let f = pcap("real/zeek-communityid-tcp.pcap");
    let out = transitd(&["match", "-r", f.to_str().unwrap(), "-Y", "tcp.port == 0x1ffff"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "transitd: \"0x1ffff\" too big for this field, maximum 65535.\n    tcp.port == 0x1ffff\n                ^~~~~~~\n"
    );
    assert!(out.stdout.is_empty());
}

/// A word naming a field is a field to tshark: comparing two fields of one type is a filter
/// tshark runs and transitd refuses saying so (docs/rules.md, Differences 4), not a value
/// that failed to parse; fields of types tshark finds incompatible are refused in its own
/// words. tshark is the oracle of which is which.
#[test]
fn comparing_two_fields_is_refused_as_unsupported_or_incompatible_as_tshark_judges() {
    let file = pcap("real/zeek-communityid-tcp.pcap");
    let f = file.to_str().unwrap();
    for expr in [
        "tcp.srcport == tcp.dstport",
        "ip.ttl < tcp.srcport",
        "ip.src == ip.dst",
        "tcp.flags.syn == tcp.flags.ack",
        "udp.payload == tcp.payload",
        "eth.src == udp.payload",
        "tcp.flags.syn == tcp.srcport",
        "ip.src == tcp.port",
        "eth.src == ip.src",
        "ipv6.src == ip.src",
        "ip.src == udp.payload",
        "udp.payload == tcp.port",
        // A protocol's name is a field too.
        "ip.ttl == ip",
        "ip.proto == gre",
    ] {
        let out = transitd(&["match", "-r", f, "-Y", expr]);
        assert_eq!(out.status.code(), Some(2), "{expr}");
        let ours = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_string();
        let shark = Command::new("tshark").args(["-r", f, "-c", "1", "-Y", expr]).output().unwrap();
        let refusal =
            String::from_utf8_lossy(&shark.stderr).lines().find(|l| l.starts_with("tshark:")).map(str::to_string);
        match refusal {
            None => {
                assert!(shark.status.success(), "{expr}");
                assert!(ours.contains("with another field") && ours.ends_with("is not supported"), "{expr}: {ours}");
            }
            Some(theirs) if expr.starts_with("udp.payload") => {
                assert!(theirs.ends_with("are not of compatible types."), "{expr}: {theirs}");
                assert_eq!(ours, "transitd: a byte field and tcp.port are not of compatible types.", "{expr}");
            }
            Some(theirs) => assert_eq!(ours.strip_prefix("transitd: "), theirs.strip_prefix("tshark: "), "{expr}"),
        }
    }
}

#[test]
fn an_unreadable_or_truncated_capture_exits_2_with_the_frame_where_reading_stopped() {
    let out = transitd(&["match", "-r", "/nonexistent.pcap", "-Y", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent.pcap"));

    // The first 400 bytes of a capture: the header, 3 whole records of 74+16 bytes each (the
    // third ends at byte 24 + 3 * 90 = 294) and part of a fourth.
    let src = std::fs::read(pcap("real/zeek-communityid-tcp.pcap")).unwrap();
    let cut = std::env::temp_dir().join(format!("transitd-cut-{}.pcap", std::process::id()));
    std::fs::write(&cut, &src[..400]).unwrap();
    let out = transitd(&["match", "-r", cut.to_str().unwrap(), "-Y", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let read = stdout(&out).lines().count();
    assert!(stderr.contains(&format!("reading stopped at frame {}", read + 1)), "{stderr}");
    assert!(stderr.contains("the file ends inside it"), "the cause, not pcap-file's \"Error reading bytes\": {stderr}");
    // tshark reads the same whole frames before it too complains.
    let theirs =
        Command::new("tshark").args(["-r"]).arg(&cut).args(["-T", "fields", "-e", "frame.number"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&theirs.stdout).lines().count(), read);
    // The dry run reports the same whole frames, then says where reading stopped.
    let config = root().join("examples/acme.toml");
    let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", cut.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["frames"].as_array().unwrap().len(), read);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("reading stopped at frame {}", read + 1)));
    let _ = std::fs::remove_file(cut);
}

/// What is not a capture is said to be, with why: a directory, an empty file, a file cut
/// inside its header, a text file (pcap-file's "Invalid field value: PcapHeader: wrong magic
/// number" was said of it; tshark too says it is none).
#[test]
fn what_is_not_a_capture_is_said_with_the_cause() {
    let dir = scratch_dir("not-captures");
    let (empty, header, text) = (dir.join("empty.pcap"), dir.join("header.pcap"), dir.join("text.pcap"));
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(&header, &std::fs::read(pcap("real/zeek-communityid-tcp.pcap")).unwrap()[..10]).unwrap();
    std::fs::write(&text, "frame,src,dst\n1,192.0.2.1,198.51.100.1\n").unwrap();
    for (path, why) in [
        (&dir, "Is a directory"),
        (&empty, "the file ends inside it"),
        (&header, "the file ends inside it"),
        (&text, "its first four bytes are no pcap or pcapng magic number"),
    ] {
        let out = transitd(&["match", "-r", path.to_str().unwrap(), "-Y", "tcp"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{} is not a pcap or pcapng file: {why}", path.display())), "{stderr}");
    }
    let theirs = Command::new("tshark").arg("-r").arg(&text).output().unwrap();
    assert!(String::from_utf8_lossy(&theirs.stderr).contains("isn't a capture file"), "{theirs:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A reader that stops reading (`| head`) ends the command quietly, exit 0, as for any
/// Unix filter; a standard output that cannot be written (a full disk) is an error, exit
/// 2. Both panicked in print!.
#[test]
fn standard_output_that_goes_away_or_fills_up_is_no_panic() {
    let config = root().join("examples/acme.toml");
    let capture = pcap("generated/acme-ftp.pcap");
    let (config, capture) = (config.to_str().unwrap(), capture.to_str().unwrap());
    let commands: [&[&str]; 4] = [
        &["check-config", config],
        &["match", "-r", capture, "-Y", "tcp"],
        &["match", "-r", capture, "--config", config],
        &["replay", "-c", config, "-i", capture],
    ];
    for args in commands {
        let full = std::fs::File::create("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_transitd")).args(args).stdout(full).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("No space left on device") && !stderr.contains("panicked"), "{args:?}: {stderr}");
        // A pipe whose reader is gone before the first write.
        let mut child = Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn dry_run_reports_each_frame_with_its_deciding_rule() {
    let config = root().join("examples/acme.toml");
    let file = pcap("generated/acme-ftp.pcap");
    let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = report["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 12);
    // --json is the report's; with -Y alone there is none, and it is said, not ignored.
    let out = transitd(&["match", "-Y", "tcp", "-r", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2), "a usage error, as clap's");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--json prints the report of --config"));
    // Frame 1: FTP SYN to 203.0.113.100, accepted by rule `ftp` and encapsulated.
    assert_eq!(frames[0]["customer"], "acme");
    assert_eq!(frames[0]["rule"]["name"], "ftp");
    assert_eq!(frames[0]["rule"]["mode"], "enforce");
    assert_eq!(frames[0]["verdict"], "tx");
    assert_eq!(frames[0]["tunnel"], "acme-gre");
    // Frame 3: SSH, no rule: the default action drops it.
    assert_eq!(frames[2]["rule"], serde_json::Value::Null);
    assert_eq!((frames[2]["verdict"].as_str(), frames[2]["reason"].as_str()), (Some("drop"), Some("firewall")));
    // Frame 5: not a customer's.
    assert_eq!(frames[4]["customer"], serde_json::Value::Null);
    assert_eq!(frames[4]["reason"], "no_customer");
    assert_eq!(report["rule_hits"]["acme/ftp"], 5);
    assert_eq!(report["rule_hits"]["acme/ping"], 2);
    assert_eq!(report["verdicts"]["drop:firewall"], 3);
    assert_eq!(report["verdicts"]["tx:encapsulated"], 5);
    assert_eq!(report["verdicts"]["tx:icmp_time_exceeded"], 1, "frame 10 has TTL 1");
    assert_eq!(frames[9]["reason"], "icmp_time_exceeded");
}

/// "(default action)" is said only of frames a rule stage looked at and no rule matched:
/// not of keepalives, probe replies or spoofed GRE, which no firewall or egress rule saw.
/// The frames' kinds are tunnel_edge.py's (pcaps/generated).
#[test]
fn the_default_action_is_named_only_where_a_rule_stage_ran() {
    let config = root().join("examples/acme.toml");
    let frames = |name: &str| {
        let file = pcap(&format!("generated/{name}.pcap"));
        let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap(), "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["default_action"].as_bool(), f.clone()))
            .collect::<Vec<_>>()
    };
    let ftp = frames("acme-ftp");
    assert_eq!(ftp[0].0, Some(false), "rule ftp decided: {}", ftp[0].1);
    assert_eq!(ftp[2].0, Some(true), "no rule matched SSH: {}", ftp[2].1);
    assert_eq!(ftp[4].0, Some(false), "no customer, no firewall: {}", ftp[4].1);
    let edge = frames("tunnel-edge");
    for (i, reason) in
        [(8, "gre_keepalive"), (9, "echo_reply"), (10, "health_probe_reply"), (11, "decap_spoofed_source")]
    {
        assert_eq!(edge[i].1["reason"], reason);
        assert_eq!(edge[i].0, Some(false), "frame {}: {}", i + 1, edge[i].1);
    }
    assert_eq!((edge[6].1["reason"].as_str(), edge[6].0), (Some("decapsulated"), Some(true)), "egress default");
    assert_eq!((edge[12].1["reason"].as_str(), edge[12].0), (Some("egress"), Some(false)), "egress rule no-smtp");
}

/// A decapsulated packet a global DoS rule let on (rate-limit, tokens to spare) and its
/// customer's egress rule then rate-limited was decided by the egress rule, not the DoS one.
#[test]
fn an_egress_rate_limit_is_named_as_the_decider() {
    let text = std::fs::read_to_string(root().join("examples/acme.toml")).unwrap();
    let bucket = |name: &str, rate: u32| {
        format!("[[dos.bucket]]\nname = \"{name}\"\nkey = \"rule\"\nrate = {rate}\nburst = {rate}\n")
    };
    let text = text
        .replacen(
            "bogons = false\n",
            &format!(
                "bogons = false\n{}{}[[dos.rule]]\nname = \"g-gre\"\nmatch = \"gre\"\naction = \"rate-limit\"\nbucket = \"g\"\n",
                bucket("g", 1_000_000),
                bucket("e", 1)
            ),
            1,
        )
        .replacen(
            "[[customer.egress.rule]]\n",
            "[[customer.egress.rule]]\nname = \"lim\"\nmatch = \"ip or ipv6\"\naction = \"rate-limit\"\nbucket = \"e\"\n\n[[customer.egress.rule]]\n",
            1,
        );
    let config = std::env::temp_dir().join(format!("transitd-egress-lim-{}.toml", std::process::id()));
    std::fs::write(&config, text).unwrap();
    let file = pcap("generated/tunnel-edge.pcap");
    let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&config);
    let table = stdout(&out);
    let limited: Vec<&str> = table.lines().filter(|l| l.ends_with("drop rate_limited")).collect();
    assert!(!limited.is_empty(), "{table}");
    assert!(limited.iter().all(|l| l.contains(" acme/egress/lim ")), "{limited:#?}");
}

/// `match`'s table of the frames the scapy script `frames` makes, under tunnel-edge.toml with
/// `section` appended (to beta, its last customer) and an egress rule `dns` (UDP to port 53
/// let on) first in acme's list; `name` names the temporary directory.
fn table_after_dns_egress(name: &str, section: &str, frames: &str) -> String {
    let dir = scratch_dir(name);
    let text = std::fs::read_to_string(root().join("dataplane/tests/data/tunnel-edge.toml")).unwrap() + section;
    let text = text.replacen(
        "[[customer.egress.rule]]\n",
        "[[customer.egress.rule]]\nname = \"dns\"\nmatch = \"udp.dstport == 53\"\naction = \"accept\"\n\n[[customer.egress.rule]]\n",
        1,
    );
    let (config, file) = (dir.join("edge.toml"), dir.join("hairpin.pcap"));
    std::fs::write(&config, text).unwrap();
    scapy_pcap(&file, frames);
    let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    stdout(&out)
}

/// A decapsulated packet an egress rule let on, to another customer's prefix, whose DoS
/// rule then dropped it, was decided by that DoS rule: the egress rule ran first and
/// decided only that it could go on.
#[test]
fn a_dos_rule_after_an_egress_rule_is_named_as_the_decider() {
    let table = table_after_dns_egress(
        "egress-then-dos",
        "[[customer.dos.rule]]\nname = \"no-udp\"\nmatch = \"udp\"\naction = \"drop\"\n",
        "frames = [Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/\
         IP(src='203.0.113.7', dst='198.18.100.5')/UDP(sport=5000, dport=53)/Raw(b'q')]",
    );
    let row = table.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" beta/dos/no-udp ") && row.ends_with("drop dos_rule"), "{table}");
}

/// A decapsulated packet an egress rule let on, to another customer's prefix, whose
/// firewall then dropped it by its default action, was decided by that default action, as
/// the same packet from the Internet is: not by the sending customer's egress rule (the
/// table named `acme/egress/dns` as the decider of beta's drop). The egress rule still
/// decides the packet it lets out to the Internet.
#[test]
fn a_firewall_default_after_an_egress_rule_is_named_as_the_decider() {
    let table = table_after_dns_egress(
        "egress-then-default",
        "[customer.firewall]\ndefault = \"drop\"\n",
        "dns = lambda dst: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/\
         IP(src='203.0.113.7', dst=dst)/UDP(sport=5000, dport=53)/Raw(b'q')\n\
         frames = [dns('198.18.100.5'), dns('198.51.100.77'), \
         Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.9', dst='198.18.100.5')/UDP(sport=5000, dport=53)]",
    );
    let row = |n: &str| table.lines().find(|l| l.trim_start().starts_with(n)).unwrap_or_else(|| panic!("{table}"));
    for n in ["1 ", "3 "] {
        assert!(row(n).contains(" beta ") && row(n).contains(" (default action) "), "{table}");
        assert!(row(n).ends_with("drop firewall"), "{table}");
    }
    assert!(row("2 ").contains(" acme/egress/dns ") && row("2 ").ends_with("tx decapsulated from acme-gre"), "{table}");
}

#[test]
fn monitor_rules_are_reported_without_deciding() {
    let config = std::fs::read_to_string(root().join("examples/acme.toml")).unwrap()
        + "\n[[customer.firewall.rule]]\nname = \"watch-ssh\"\nmatch = \"tcp.dstport == 22\"\naction = \"accept\"\nmode = \"monitor\"\n";
    let path = std::env::temp_dir().join(format!("transitd-monitor-{}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let file = pcap("generated/acme-ftp.pcap");
    let out = transitd(&["match", "--config", path.to_str().unwrap(), "-r", file.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ssh = &report["frames"][2];
    assert_eq!(ssh["monitor"]["name"], "watch-ssh");
    assert_eq!(ssh["monitor"]["mode"], "monitor");
    assert_eq!(ssh["reason"], "firewall", "a monitor rule does not decide");
    assert_eq!(report["rule_hits"]["acme/watch-ssh"], 1);
    let _ = std::fs::remove_file(path);
}

/// examples/acme.toml's server and sanity sections, then `global` (TOML), then customer acme
/// with its IPv4 prefix, its tunnel and its route, and `sections` of its own: none of the
/// example's rules, so that the test's text holds every rule that decides its frames.
fn acme_with(global: &str, sections: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples/acme.toml")).unwrap();
    let head = text.split("[[customer]]").next().unwrap();
    let customer = lab::acme_customer();
    format!("{head}\n{global}\n{customer}{sections}")
}

/// A customer's DoS rules and its firewall's may share a name (`rule-1` both): their hits
/// are counted apart. A frame a global DoS rule accepted and the firewall then rate-limited
/// was decided by the firewall rule.
#[test]
fn dry_run_keeps_dos_and_firewall_rules_apart() {
    let dir = scratch_dir("dry-scopes");
    let config = dir.join("edge.toml");
    let global = r#"
[[dos.bucket]]
name = "one"
key = "rule"
rate = 1
[[dos.rule]]
name = "allow"
match = "tcp"
action = "accept"
"#;
    let acme = r#"
[[customer.dos.rule]]
match = "icmp"
action = "accept"
[customer.firewall]
default = "accept"
[[customer.firewall.rule]]
match = "tcp"
action = "rate-limit"
bucket = "one"
"#;
    std::fs::write(&config, acme_with(global, acme)).unwrap();
    let file = pcap("generated/acme-ftp.pcap");
    let json = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap(), "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", String::from_utf8_lossy(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // tshark's count of what each rule sees among the frames for 203.0.113.0/24.
    let count = |filter: &str| {
        let out = Command::new("tshark").args(["-r"]).arg(&file).args(["-Y", filter]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    };
    let to_acme = "ip.dst == 203.0.113.0/24";
    assert_eq!(report["rule_hits"]["acme/dos/rule-1"], count(&format!("{to_acme} and icmp")));
    assert_eq!(report["rule_hits"]["acme/rule-1"], count(&format!("{to_acme} and tcp")));
    // The second TCP frame onward is over the bucket (1 a second, frames 1 ms apart).
    let text = transitd(&["match", "--config", config.to_str().unwrap(), "-r", file.to_str().unwrap()]);
    let table = stdout(&text);
    let limited: Vec<&str> = table.lines().filter(|l| l.contains("drop rate_limited")).collect();
    assert!(!limited.is_empty(), "{table}");
    for line in limited {
        assert!(line.contains("acme/rule-1") && !line.contains("[dos]/allow"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// TCP protection's rules are among the dry run's rule hits, each with the frames it judged,
/// and named in their own scope, as DoS rules are: a customer's unnamed TCP protection rule
/// and its unnamed firewall rule are both `rule-1`, and were both `acme/rule-1`, in the
/// frame lines and in `replay`'s rule hits, while `match`'s left the TCP rules out. tshark
/// counts what each covers among acme's TCP: the global rule (first) its FTP port, the
/// customer's the rest, the firewall rule all of it (monitor mode: nothing is dropped).
#[test]
fn dry_run_counts_tcp_protection_rules_apart_from_the_firewall() {
    let dir = scratch_dir("dry-tcp");
    let config = dir.join("edge.toml");
    let global = r#"
[[tcp_protection.rule]]
name = "ftp"
match = "tcp.dstport == 21"
"#;
    let acme = r#"
[customer.firewall]
default = "accept"
[[customer.firewall.rule]]
match = "tcp"
action = "accept"
[[customer.tcp_protection.rule]]
match = "tcp"
"#;
    std::fs::write(&config, acme_with(global, acme)).unwrap();
    let (config, file) = (config.to_str().unwrap(), pcap("generated/acme-ftp.pcap"));
    let json = transitd(&["match", "--config", config, "-r", file.to_str().unwrap(), "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", String::from_utf8_lossy(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let count = |filter: &str| {
        let out = Command::new("tshark").args(["-r"]).arg(&file).args(["-Y", filter]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    };
    let acme_tcp = "ip.dst == 203.0.113.0/24 and tcp";
    let (ftp, rest) =
        (count(&format!("{acme_tcp} and tcp.dstport == 21")), count(&format!("{acme_tcp} and not tcp.dstport == 21")));
    assert!(ftp > 0 && rest > 0, "the capture has TCP to acme's FTP port and to others");
    let hits = &report["rule_hits"];
    assert_eq!(hits["[tcp_protection]/ftp"], ftp, "{hits}");
    assert_eq!(hits["acme/tcp_protection/rule-1"], rest, "{hits}");
    assert_eq!(hits["acme/rule-1"], ftp + rest, "{hits}");
    // Each frame names the rule that judged it in the same words, with its mode.
    let judged: Vec<&str> =
        report["frames"].as_array().unwrap().iter().filter_map(|f| f["tcp"]["rule"].as_str()).collect();
    let by = |rule: &str| judged.iter().filter(|r| **r == rule).count() as u64;
    assert_eq!(
        (by("[tcp_protection]/ftp monitor"), by("acme/tcp_protection/rule-1 monitor")),
        (ftp, rest),
        "{judged:?}"
    );
    // And so does replay's list: the customer's TCP rule's line, and the firewall rule's.
    let replayed = transitd(&["replay", "--config", config, "--in", file.to_str().unwrap()]);
    assert_eq!(replayed.status.code(), Some(0), "{}", String::from_utf8_lossy(&replayed.stderr));
    let summary = stdout(&replayed);
    let line_of = |label: &str| {
        let line = summary.lines().find(|l| l.split_whitespace().next() == Some(label));
        line.and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse::<u64>().ok())
    };
    assert_eq!(
        (line_of("acme/tcp_protection/rule-1"), line_of("acme/rule-1")),
        (Some(rest), Some(ftp + rest)),
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A capture read from a pipe (`-r -`, and a shell's `<(...)`, a FIFO) answers as the file
/// does, pcap and pcapng alike: it was opened two or three times (its magic number, then the
/// reader), so a pipe lost its first bytes and was "not a pcap". tshark reads the file.
#[test]
fn a_capture_from_a_pipe_reads_as_the_file_does() {
    use std::io::Write as _;
    for (file, expr) in
        [("real/zeek-communityid-tcp.pcap", "tcp.srcport == 80"), ("real/ndpi-tcp_scan.pcapng", "tcp.flags.syn == 1")]
    {
        let path = pcap(file);
        let want = tshark(&path, &["-Y", expr, "-T", "fields", "-e", "frame.number"]);
        assert!(!want.is_empty(), "{file}: the oracle selects some frame");
        let mut child = Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(["match", "-r", "-", "-Y", expr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&std::fs::read(&path).unwrap()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!((out.status.code(), stdout(&out)), (Some(0), want.clone()), "{file} through a pipe");
        // A pipe still open (a live capture): records are read as they arrive, not once a
        // buffer's worth has (the reader once waited for a mebibyte or the end), so -c ends it.
        let mut child = Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(["match", "-r", "-", "-Y", expr, "-c", "2"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(&std::fs::read(&path).unwrap()).unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let first_two = tshark(&path, &["-c", "2", "-Y", expr, "-T", "fields", "-e", "frame.number"]);
        assert_eq!((out.status.code(), stdout(&out)), (Some(0), first_two), "{file} from a pipe left open");
    }
}

/// `replay --out -` writes the transmitted frames to standard output as pcap, and its
/// summary to standard error, where they were a file named `-` (or, to /dev/stdout, a pcap
/// with the summary written into it). tshark reads what comes out.
#[test]
fn replay_writes_its_frames_to_standard_output_with_out_dash() {
    let config = root().join("examples/acme.toml");
    let input = pcap("generated/acme-ftp.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "-c", config.to_str().unwrap(), "-i", input.to_str().unwrap(), "-o", "-"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!std::env::temp_dir().join("-").exists(), "a file named -");
    let summary = String::from_utf8_lossy(&out.stderr);
    let sent: usize = summary
        .lines()
        .find_map(|l| l.strip_prefix("transmitted"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary on standard error");
    let file = std::env::temp_dir().join(format!("transitd-replay-stdout-{}.pcap", std::process::id()));
    std::fs::write(&file, &out.stdout).unwrap();
    let frames = tshark(&file, &["-T", "fields", "-e", "frame.number"]).lines().count();
    let _ = std::fs::remove_file(&file);
    assert!(sent > 0);
    assert_eq!(frames, sent, "tshark reads every frame the summary says was transmitted");
}

/// An empty filter selects every frame, as tshark's does, and is said on standard error, as
/// an empty `match` in a configuration is (an unset shell variable looks the same).
#[test]
fn an_empty_filter_selects_every_frame_and_says_so() {
    let file = pcap("generated/acme-ftp.pcap");
    let out = transitd(&["match", "-r", file.to_str().unwrap(), "-Y", " "]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), tshark(&file, &["-T", "fields", "-e", "frame.number"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the filter is empty, so it selects every frame"));
}

/// `icmp` bytes of ICMP that IPv6 carries (protocol 1), and `icmpv6` bytes of ICMPv6 in
/// IPv4, are there as tshark dissects them: `icmp` and `icmp.type` held on such packets while
/// `icmp[0]` did not (its layer was IPv4's alone). tshark selects the frames.
#[test]
fn icmp_bytes_are_read_whichever_ip_carries_them() {
    let file = std::env::temp_dir().join(format!("transitd-icmp-either-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(dst='02:00:00:00:00:01')\n\
         v4 = IP(src='192.0.2.1', dst='198.51.100.1')\n\
         v6 = IPv6(src='2001:db8::1', dst='2001:db8::2')\n\
         frames = [e/v4/ICMP(type=8)/Raw(b'hi there'), e/IPv6(src='2001:db8::1', dst='2001:db8::2', nh=1)/ICMP(type=8)/Raw(b'hi there'),\n\
           e/IP(src='192.0.2.1', dst='198.51.100.1', proto=58)/ICMPv6EchoRequest(data=b'hi there'), e/v6/ICMPv6EchoRequest(data=b'hi there')]",
    );
    for expr in
        ["icmp[0] == 08", "icmpv6[0] == 80", "icmp contains \"hi\"", "icmpv6 contains \"hi\"", "len(icmp) == 16"]
    {
        let want = tshark(&file, &["-Y", expr, "-T", "fields", "-e", "frame.number"]);
        assert!(!want.is_empty(), "`{expr}`: the oracle selects some frame");
        let out = transitd(&["match", "-r", file.to_str().unwrap(), "-Y", expr]);
        assert_eq!(stdout(&out), want, "`{expr}`");
    }
    let _ = std::fs::remove_file(file);
}

/// `replay --out -` whose reader stops reading (`| tshark -c 5`, `| head`) ends quietly,
/// exit 0, as every command does when its reader goes (it said "Error reading bytes", exit 2).
#[test]
fn replay_to_a_reader_that_stops_ends_quietly() {
    use std::io::Read as _;
    let config = root().join("bench/configs/catch-all.toml");
    let input = pcap("real/glb-1k_pkts.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "-c", config.to_str().unwrap(), "-i", input.to_str().unwrap(), "-o", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first[..4], &[0xa1, 0xb2, 0x3c, 0x4d], "a pcap (nanosecond, big-endian magic) on standard output");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("transitd:"), "{said}");
}

/// Writes the capture that `script` makes (Python: `out` its path, `struct` and scapy loaded).
fn python_capture(file: &std::path::Path, script: &str) {
    let script = format!("import struct, sys\nfrom scapy.all import *\nout = sys.argv[1]\n{script}");
    let made = Command::new("/usr/bin/python3").args(["-c", &script]).arg(file).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// A pcapng custom block (0xBAD, 0x40000BAD) or systemd journal entry (9) is a frame to
/// tshark, numbered and of a length (`frame.len`): `match` skipped it, and every frame after
/// it was named by a number one short of tshark's, with `-Y` and `--config` alike, in either
/// byte order. The files are laid out by Python's struct as the pcapng draft says.
#[test]
fn pcapng_blocks_tshark_numbers_as_frames_keep_tshark_frame_numbers() {
    let dir = scratch_dir("not-packets");
    for order in ["<", ">"] {
        let file = dir.join(format!("order{}.pcapng", if order == "<" { "-little" } else { "-big" }));
        python_capture(
            &file,
            &format!(
                r#"e = '{order}'
pad = lambda b: b + b'\0' * (-len(b) % 4)
def block(kind, body):
    body = pad(body)
    return struct.pack(e + 'II', kind, 12 + len(body)) + body + struct.pack(e + 'I', 12 + len(body))
def epb(src, usec):
    f = bytes(Ether(dst='02:00:00:00:00:01')/IP(src=src, dst='203.0.113.9')/UDP(dport=53)/Raw(b'x' * 9))
    return block(6, struct.pack(e + 'IIIII', 0, usec >> 32, usec & 0xffffffff, len(f), len(f)) + f)
t = 1700000000 * 10**6
journal = b'__REALTIME_TIMESTAMP=1700000000000000\nMESSAGE=hello\n'
open(out, 'wb').write(block(0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1))
    + block(1, struct.pack(e + 'HHI', 1, 0, 0)) + epb('198.51.100.1', t)
    + block(0xBAD, struct.pack(e + 'I', 32473) + b'abcde') + epb('198.51.100.2', t + 1)
    + block(0x40000BAD, struct.pack(e + 'I', 32473)) + block(9, journal) + epb('198.51.100.3', t + 2))
"#
            ),
        );
        let f = file.to_str().unwrap();
        let all = tshark(&file, &["-T", "fields", "-e", "frame.number"]);
        assert_eq!(all.lines().count(), 6, "{f}: tshark numbers three packets and three other blocks");
        for expr in ["frame", "ip.src == 198.51.100.2", "ip.src == 198.51.100.3", "not ip", "frame.len == 8"] {
            let want = tshark(&file, &["-Y", expr, "-T", "fields", "-e", "frame.number"]);
            let out = transitd(&["match", "-r", f, "-Y", expr]);
            assert_eq!((out.status.code(), stdout(&out)), (Some(0), want), "{f}: `{expr}`");
        }
        let config = root().join("bench/configs/catch-all.toml");
        let out = transitd(&["match", "--config", config.to_str().unwrap(), "-r", f, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames = report["frames"].as_array().unwrap();
        let skipped: String = frames
            .iter()
            .filter(|fr| fr["verdict"] == "skip" && fr["reason"] == "not_a_packet")
            .map(|fr| format!("{}\n", fr["frame"]))
            .collect();
        assert_eq!(frames.len(), 6, "{f}");
        assert_eq!(skipped, tshark(&file, &["-Y", "not eth", "-T", "fields", "-e", "frame.number"]), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A BSD loopback (link type 0) frame is IP where its address family says so, as tshark
/// reads it: AF_INET (2) in either byte order, the BSDs' AF_INET6 (24, 28, 30). Any other
/// family (Linux's AF_INET6 10, OSI 7, 0) was taken as IPv4 (`ip` held on IPv4 behind
/// family 7, `ipv6` on IPv6 behind 10); tshark dissects none of them as IP.
#[test]
fn bsd_loopback_frames_are_ip_only_where_their_family_says_so() {
    let file = std::env::temp_dir().join(format!("transitd-loopback-families-{}.pcap", std::process::id()));
    python_capture(
        &file,
        r#"v4 = bytes(IP(src='198.51.100.1', dst='203.0.113.9')/UDP(dport=53)/Raw(b'x' * 9))
v6 = bytes(IPv6(src='2001:db8::1', dst='2001:db8::2')/UDP(dport=53)/Raw(b'x' * 9))
frames = [struct.pack('<I', 2) + v4, struct.pack('>I', 2) + v4, struct.pack('<I', 24) + v6,
          struct.pack('<I', 28) + v6, struct.pack('>I', 30) + v6, struct.pack('<I', 10) + v6,
          struct.pack('<I', 7) + v4, struct.pack('<I', 0) + v4, struct.pack('<I', 10) + v4]
data = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 0)
for i, f in enumerate(frames):
    data += struct.pack('<IIII', 1700000000, i, len(f), len(f)) + f
open(out, 'wb').write(data)
"#,
    );
    let f = file.to_str().unwrap();
    for expr in ["ip", "ipv6", "udp", "udp.dstport == 53", "frame.len > 40"] {
        let want = tshark(&file, &["-Y", expr, "-T", "fields", "-e", "frame.number"]);
        let out = transitd(&["match", "-r", f, "-Y", expr]);
        assert_eq!((out.status.code(), stdout(&out)), (Some(0), want), "`{expr}`");
    }
    assert_eq!(stdout(&transitd(&["match", "-r", f, "-Y", "udp", "--count"])), "5\n");
    let _ = std::fs::remove_file(file);
}

/// The rest of what tshark's null dissector reads in a BSD loopback (link type 0) header: an
/// EtherType (a value above 1500) in either byte order, a VLAN tag's among them; IRIX's
/// family in the header's first two bytes, either byte order; PPP's address, control and
/// protocol fields (`ff 03`, the protocol in one byte or two). transitd read no IP behind
/// any of them. And OpenBSD's loopback (link type 108, the family in network byte order
/// only), whose frames transitd read as of a link type it does not know: `ip` selected none.
#[test]
fn loopback_headers_are_read_as_tshark_reads_them() {
    let dir = scratch_dir("loopback-headers");
    let null = "[struct.pack('<I', 0x0800) + v4, struct.pack('>I', 0x0800) + v4, struct.pack('<I', 0x86dd) + v6,
    struct.pack('>I', 0x86dd) + v6, struct.pack('>I', 0x8100) + struct.pack('>HH', 7, 0x0800) + v4,
    struct.pack('<I', 2 << 16) + v4, struct.pack('>I', 2 << 16) + v4, struct.pack('<I', 1500) + v4,
    bytes.fromhex('ff030021') + v4, bytes.fromhex('ff0321') + v4, bytes.fromhex('ff030800') + v4,
    bytes.fromhex('ff030057') + v6, bytes.fromhex('ff0357') + v6, bytes.fromhex('ff0386dd') + v6,
    bytes.fromhex('ff038100') + v4, struct.pack('<I', 2) + v4, struct.pack('<I', 10) + v6]";
    let openbsd = "[struct.pack('>I', 2) + v4, struct.pack('>I', 24) + v6, struct.pack('>I', 28) + v6,
    struct.pack('>I', 30) + v6, struct.pack('<I', 2) + v4, struct.pack('>I', 0x0800) + v4,
    struct.pack('>I', 10) + v6, bytes.fromhex('ff030021') + v4]";
    for (link_type, frames, ip_frames) in [(0, null, 14), (108, openbsd, 4)] {
        let file = dir.join(format!("{link_type}.pcap"));
        python_capture(
            &file,
            &format!(
                "v4 = bytes(IP(src='198.51.100.1', dst='203.0.113.9')/UDP(dport=53)/Raw(b'x' * 9))
v6 = bytes(IPv6(src='2001:db8::1', dst='2001:db8::2')/UDP(dport=53)/Raw(b'x' * 9))
data = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, {link_type})
for i, f in enumerate({frames}):
    data += struct.pack('<IIII', 1700000000, i, len(f), len(f)) + f
open(out, 'wb').write(data)
"
            ),
        );
        let f = file.to_str().unwrap();
        for expr in ["ip", "ipv6", "udp.dstport == 53", "vlan.id == 7", "frame.len > 40"] {
            let want = tshark(&file, &["-Y", expr, "-T", "fields", "-e", "frame.number"]);
            let out = transitd(&["match", "-r", f, "-Y", expr]);
            assert_eq!((out.status.code(), stdout(&out)), (Some(0), want), "link type {link_type}: `{expr}`");
        }
        let count = stdout(&transitd(&["match", "-r", f, "-Y", "ip or ipv6", "--count"]));
        assert_eq!(count, format!("{ip_frames}\n"), "link type {link_type}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// In the data plane (`match --config`, `replay`) the packets of a raw-IP, Linux cooked or
/// BSD loopback capture arrive behind the Ethernet header replay writes for them, and
/// `frame.len` is that Ethernet frame's length on the wire (docs/rules.md, Differences 8), as
/// the drop capture's is: tshark's `frame.len` of the input, less its link header, plus 14.
/// It was the input's, 14 bytes short for raw IP, 2 over for a cooked capture and 10 short
/// for loopback, so a `frame.len` rule decided otherwise than on the same packet live.
#[test]
fn frame_len_in_the_data_plane_is_the_ethernet_frame_replay_gives_the_packet() {
    let dir = scratch_dir("reframed-len");
    let cooked = "struct.pack('>HHH8sH', 0, 1, 6, bytes.fromhex('020000000009'), 0x0800)";
    for (link_type, link, link_header) in [(101, "b''", 0), (113, cooked, 16), (0, "struct.pack('<I', 2)", 4)] {
        let file = dir.join(format!("{link_type}.pcap"));
        // One whole UDP datagram of 60 bytes of IP behind the capture's link header.
        python_capture(
            &file,
            &format!(
                "p = {link} + bytes(IP(src='198.51.100.7', dst='203.0.113.9')/UDP(sport=1, dport=53)/Raw(b'x' * 32))
open(out, 'wb').write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, {link_type})
    + struct.pack('<IIII', 1700000000, 0, len(p), len(p)) + p)
"
            ),
        );
        let theirs: u64 = tshark(&file, &["-T", "fields", "-e", "frame.len"]).trim().parse().unwrap();
        let as_ethernet = theirs - link_header + 14;
        assert_eq!(as_ethernet, 74, "{link_type}");
        let config = dir.join(format!("{link_type}.toml"));
        let rule =
            format!("\n[[dos.rule]]\nname = \"len\"\nmatch = \"frame.len == {as_ethernet}\"\naction = \"drop\"\n");
        std::fs::write(&config, format!("{CATCH_ALL}{rule}")).unwrap();
        let (c, f) = (config.to_str().unwrap(), file.to_str().unwrap());
        let out = transitd(&["match", "--config", c, "-r", f, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["verdicts"]["drop:dos_rule"], 1, "{link_type}: {report}");
        let out = transitd(&["replay", "--config", c, "--in", f]);
        let summary = stdout(&out);
        assert!(summary.lines().any(|l| l.split_whitespace().eq(["drop", "dos_rule", "1"])), "{link_type}: {summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Frames of a link type transitd does not read (PPP, 9) are numbered as tshark numbers
/// them, and a filter of their IP fields selects none of them, where tshark selects them:
/// said on stderr, so that "nothing selected" is not taken for "nothing matched".
#[test]
fn frames_of_a_link_type_not_read_are_said_not_read() {
    let file = std::env::temp_dir().join(format!("transitd-ppp-{}.pcap", std::process::id()));
    python_capture(
        &file,
        "p = bytes.fromhex('0021') + bytes(IP(src='198.51.100.1', dst='203.0.113.9')/UDP(dport=53))
open(out, 'wb').write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 9)
    + b''.join(struct.pack('<IIII', 1700000000, i, len(p), len(p)) + p for i in range(2)))
",
    );
    // tshark reads PPP: both frames are UDP to it.
    assert_eq!(tshark(&file, &["-Y", "udp.dstport == 53", "-T", "fields", "-e", "frame.number"]), "1\n2\n");
    let f = file.to_str().unwrap();
    let out = transitd(&["match", "-r", f, "-Y", "udp.dstport == 53"]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), String::new()));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("2 frames of link type 9 not read"), "{said}");
    // Their numbers and lengths are tshark's.
    assert_eq!(stdout(&transitd(&["match", "-r", f, "-Y", "frame.len == 30"])), "1\n2\n");
    let _ = std::fs::remove_file(&file);
}
