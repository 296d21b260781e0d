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
    // tshark reads the same whole frames before it too complains.
    let theirs =
        Command::new("tshark").args(["-r"]).arg(&cut).args(["-T", "fields", "-e", "frame.number"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&theirs.stdout).lines().count(), read);
    let _ = std::fs::remove_file(cut);
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
