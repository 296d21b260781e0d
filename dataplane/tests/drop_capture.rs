//! `--capture-drops` in replay: the pcapng file holds exactly the frames the configuration
//! drops (and, separately commented, those a monitor rule matched), byte for byte, with
//! their reasons; tshark reads it; the rate and size bounds hold.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// CATCH_ALL with a firewall that drops ICMPv6 echo and watches neighbour solicitations.
fn config() -> String {
    format!(
        "{CATCH_ALL}\n[customer.firewall]\ndefault = \"accept\"\n\
         [[customer.firewall.rule]]\nname = \"no-echo\"\nmatch = \"icmpv6.type == 128 or icmpv6.type == 129\"\naction = \"drop\"\n\
         [[customer.firewall.rule]]\nname = \"watch-ns\"\nmatch = \"icmpv6.type == 135\"\naction = \"drop\"\nmode = \"monitor\"\n\
         [[customer.firewall.rule]]\nname = \"no-syn\"\nmatch = \"tcp.flags.syn == 1\"\naction = \"drop\"\n"
    )
}

fn replay(input: &Path, tag: &str, extra: &[&str]) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("transitd-dropcap-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config()).unwrap();
    let out = dir.join("drops.pcapng");
    let run = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config", cfg.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--capture-drops", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{report}{}", String::from_utf8_lossy(&run.stderr));
    // Customers' packets: readable by the capture's owner alone, whatever the umask.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the capture is {mode:o}");
    (out, report)
}

/// `(comment, frame.len, frame.cap_len)` of each frame, as tshark reads the capture.
fn tshark_rows(file: &Path, filter: &str) -> Vec<(String, u64, u64)> {
    tshark(
        file,
        &[
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.comment",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ],
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
    })
    .collect()
}

#[test]
fn dropped_frames_are_captured_byte_for_byte_with_their_reason() {
    let input = pcap("real/zeek-communityid-icmp6.pcap");
    let (file, report) = replay(&input, "icmp6", &[]);

    // The oracle: what tshark selects from the input with the rules' expressions; frames
    // to an Ethernet group address are dropped before any rule, as no router forwards them,
    // and neighbour discovery to the host's own link (fe80::/10, ff02::/16) is passed to the
    // host, no customer's (RFC 4291 §2.5.6, §2.7): the capture's three frames to a group
    // address are such, and five of its eight unicast solicitations.
    let own_link = "ipv6.dst#1 == fe80::/10 or ipv6.dst#1 == ff02::/16";
    let link_group = tshark_frames(&input, &format!("(ip or ipv6) and eth.dst.ig#1 == 1 and not ({own_link})"), &[]);
    let firewalled = tshark_frames(&input, "(icmpv6.type == 128 or icmpv6.type == 129) and eth.dst.ig#1 == 0", &[]);
    let watched = tshark_frames(&input, &format!("icmpv6.type == 135 and eth.dst.ig#1 == 0 and not ({own_link})"), &[]);
    assert_eq!((link_group.len(), firewalled.len(), watched.len()), (0, 16, 3));
    let mut dropped = [link_group.clone(), firewalled.clone()].concat();
    dropped.sort();
    let frames = read_frames(&input);

    // tshark reads the file; every frame carries a comment naming why it is there.
    let rows = tshark_rows(&file, "frame");
    assert_eq!(rows.len(), dropped.len() + watched.len(), "{report}");
    let drops: Vec<_> = rows.iter().filter(|r| r.0.starts_with("drop: ")).collect();
    let monitors: Vec<_> = rows.iter().filter(|r| r.0.starts_with("monitor hit")).collect();
    assert_eq!(drops.len(), dropped.len());
    assert_eq!(monitors.len(), watched.len());
    let by_rule = drops.iter().filter(|r| r.0 == "drop: firewall; customer all; rule all/no-echo").count();
    let by_link = drops.iter().filter(|r| r.0 == "drop: link_broadcast").count();
    assert_eq!((by_rule, by_link), (firewalled.len(), link_group.len()), "{drops:?}");
    for (_, len, cap_len) in &drops {
        assert_eq!(len, cap_len);
    }
    for (comment, ..) in &monitors {
        assert_eq!(
            comment,
            "monitor hit; enforced: tx encapsulated; customer all; monitor rule all/watch-ns; tunnel t"
        );
    }

    // Dropped frames are the input's frames, unchanged, in order, with their timestamps.
    let captured = read_frames(&file);
    assert_eq!(captured.len(), rows.len());
    let mut drop_iter = dropped.iter();
    let mut watch_iter = watched.iter();
    for (c, row) in captured.iter().zip(&rows) {
        if row.0.starts_with("drop: ") {
            let n = *drop_iter.next().unwrap() as usize;
            assert_eq!(c.bytes, frames[n - 1].bytes, "frame {n}");
            assert_eq!(c.timestamp_ns, frames[n - 1].timestamp_ns, "frame {n}");
        } else {
            // A monitor hit is captured as sent: the input frame inside GRE.
            let n = *watch_iter.next().unwrap() as usize;
            // its hop limit (byte 7 of the IPv6 header) one lower, as forwarded.
            let inner = &frames[n - 1].bytes[14..];
            let sent = &c.bytes[c.bytes.len() - inner.len()..];
            assert_eq!(sent[7], inner[7] - 1, "frame {n}: hop limit");
            assert_eq!((&sent[..7], &sent[8..]), (&inner[..7], &inner[8..]), "frame {n}: the input's packet inside");
        }
    }
    // The monitor hits tshark sees as GRE carrying the watched solicitation.
    assert_eq!(tshark_rows(&file, "gre and icmpv6.type == 135").len(), watched.len());
    assert!(report.contains(&format!("{} frames", rows.len())), "{report}");
}

#[test]
fn the_rate_bound_holds_on_capture_time_and_counts_the_rest() {
    // 200 SYNs in 0.2 s of capture time; at 10 frames per second with a second's burst (ten
    // at once, not eleven), at most 10 + 10 * 0.2 are captured.
    let input = pcap("real/suricata-syn-flood.pcap");
    let (file, report) = replay(&input, "rate", &["--capture-rate", "10"]);
    let rows = tshark_rows(&file, "frame");
    assert!((10..=12).contains(&rows.len()), "{} captured\n{report}", rows.len());
    assert!(rows.iter().all(|r| r.0 == "drop: firewall; customer all; rule all/no-syn"));
    let over_rate: usize =
        report.split(" over the rate").next().and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert_eq!(rows.len() + over_rate, 200, "{report}");
    // The file says it is a sample: an interface statistics block (capinfos counts it)
    // whose isb_osdrop is what was left out, read by pcap-parser.
    let info = Command::new("capinfos").arg(&file).output().expect("capinfos (tshark's package)");
    assert!(String::from_utf8_lossy(&info.stdout).contains("Number of stat entries = 1"), "{info:?}");
    assert_eq!(isb_osdrop(&file), Some(over_rate as u64));
}

/// The `isb_osdrop` (option 7) of the capture's interface statistics block.
fn isb_osdrop(file: &Path) -> Option<u64> {
    use pcap_parser::traits::PcapReaderIterator;
    let mut reader = pcap_parser::PcapNGReader::new(1 << 20, std::fs::File::open(file).unwrap()).unwrap();
    let (mut found, mut big_endian) = (None, false);
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    pcap_parser::PcapBlockOwned::NG(pcap_parser::Block::SectionHeader(shb)) => {
                        big_endian = shb.big_endian();
                    }
                    pcap_parser::PcapBlockOwned::NG(pcap_parser::Block::InterfaceStatistics(isb)) => {
                        // Its value in the section's byte order (pcap-parser gives the bytes).
                        let drop = isb.options.iter().find(|o| o.code.0 == 7).and_then(|o| o.value.get(..8));
                        found = drop.map(|b| {
                            let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                            if big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) }
                        });
                    }
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(pcap_parser::PcapError::Eof) => return found,
            Err(pcap_parser::PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn the_size_bound_holds_and_the_file_stays_readable() {
    let input = pcap("real/suricata-syn-flood.pcap");
    let (file, report) = replay(&input, "size", &["--capture-rate", "100000", "--capture-max-size", "4K"]);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size <= 4000, "{size} bytes\n{report}");
    let rows = tshark_rows(&file, "frame");
    assert!(rows.len() > 10 && rows.len() < 200, "{} frames in {size} bytes", rows.len());
    assert!(report.contains("over the size bound"), "{report}");
}

/// A replay whose drop capture fills its disk (a 64 KiB tmpfs: as root) keeps the frames
/// that fit, all counted written, in a file tshark reads to its end, and says the write
/// failed as one. Its writer drains without a pause to flush in, so its buffer went to the
/// file uncounted, and the failed write cut the file back to its headers (or to nothing)
/// though a hundred frames fit; the log said "Error reading bytes".
#[test]
fn a_replay_that_fills_the_captures_disk_keeps_what_fit() {
    let dir = scratch_dir("dropcap-disk");
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config()).unwrap();
    // 1000 SYNs the firewall drops, 664 bytes each in the capture: ten disks' worth.
    let input = dir.join("syn.pcap");
    scapy_pcap(
        &input,
        "frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IPv6(src='2001:db8::1', dst='2001:db8::2')\n\
         \x20   /TCP(sport=1000 + i, dport=22, flags='S')/Raw(b'z' * 500) for i in range(1000)]",
    );
    let disk = SmallDisk::mount(&dir, "64k");
    let drops = disk.path.join("drops.pcapng");
    let run = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config", cfg.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--capture-drops", drops.to_str().unwrap(), "--capture-rate", "100000"])
        .output()
        .unwrap();
    let size = std::fs::metadata(&drops).map(|m| m.len()).unwrap_or(0);
    // Read before the disk goes.
    let read = Command::new("tshark").arg("-r").arg(&drops).args(["-T", "fields", "-e", "frame.comment"]).output();
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
    let read = read.expect("tshark");
    assert!(
        read.status.success(),
        "tshark does not read the file to its end: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let captured = String::from_utf8_lossy(&read.stdout).into_owned();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(said.contains("writing: No space left on device") && !said.contains("reading"), "{said}");
    let line = said.lines().find(|l| l.starts_with("drop capture ")).unwrap_or_else(|| panic!("{said}"));
    let count = |after: &str| -> u64 {
        line.split(after).nth(1).and_then(|t| t.split([' ', ')']).next()).and_then(|n| n.parse().ok()).unwrap()
    };
    let (written, bytes) = (count(": "), count(" frames ("));
    assert!(written > 50, "{written} frames kept on a disk of 64 KiB: {line}");
    assert_eq!(captured.lines().count() as u64, written, "{line}");
    assert!(captured.lines().all(|c| c == "drop: firewall; customer all; rule all/no-syn"), "{captured}");
    assert_eq!(size, bytes, "the file is what was counted written: {line}");
}

/// A capture already at the path is kept as PATH.prev when it holds a frame, however few
/// (one frame is under the 512 bytes a size test once took for headers); one of headers
/// alone, from a run that caught nothing, is overwritten and leaves the older .prev be.
#[test]
fn a_capture_with_frames_is_kept_and_one_without_is_not() {
    let dir = scratch_dir("dropcap-prev");
    let (echo, udp) = (dir.join("echo.pcap"), dir.join("udp.pcap"));
    let ether = "Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IPv6(src='2001:db8::1', dst='2001:db8::2')";
    scapy_pcap(&echo, &format!("frames = [{ether}/ICMPv6EchoRequest(seq=7)]"));
    scapy_pcap(&udp, &format!("frames = [{ether}/UDP(sport=1, dport=2)]"));
    let frames = |f: &Path| tshark(f, &["-T", "fields", "-e", "frame.number"]).lines().count();
    let (file, report) = replay(&echo, "prev", &[]);
    assert_eq!(frames(&file), 1);
    assert!(report.contains(": 1 frame ("), "one frame said as one: {report}");
    let prev = file.with_extension("pcapng.prev");
    replay(&echo, "prev", &[]);
    assert_eq!(frames(&prev), 1, "the first run's one frame was not kept");
    let _ = std::fs::remove_file(&prev);
    replay(&udp, "prev", &[]); // the frame of the second run goes to .prev
    assert_eq!(frames(&prev), 1);
    assert_eq!(frames(&file), 0);
    // An older file's mode (an earlier version's, under umask 022) is not kept: the file
    // is made afresh (the helper checks the mode).
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    replay(&udp, "prev", &[]); // headers only, overwritten: .prev keeps its frame
    assert_eq!(frames(&prev), 1, "a capture of headers alone was kept over one with a frame");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// A capture whose writes fail (a full disk; here /dev/full) counts nothing as written:
/// frames sat in the write buffer were counted written before the flush that failed.
#[test]
fn a_full_disk_counts_nothing_written() {
    let dir = scratch_dir("dropcap-full");
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config()).unwrap();
    let input = pcap("real/zeek-communityid-icmp6.pcap");
    let run = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config", cfg.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--capture-drops", "/dev/full"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let line = said.lines().find(|l| l.contains("drop capture /dev/full:")).unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains(": 0 frames (0 bytes) written"), "{line}");
    let failed: u64 = line.rsplit(", ").next().and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(failed >= 19, "{line}");
}

/// A capture whose time goes back (two captures merged, an unsorted one) is captured as
/// any other: the rate bound starts afresh instead of refusing every frame until capture
/// time catches up with where it was, and each frame keeps the input's time, as tshark
/// reads both (the frames after the step back were stamped with the latest time before it).
#[test]
fn time_going_back_does_not_stop_the_capture() {
    let dir = scratch_dir("dropcap-back");
    let input = dir.join("back.pcap");
    scapy_pcap(
        &input,
        "frames = []\n\
         for start in (10.0, 5.0):\n\
         \x20   for i in range(20):\n\
         \x20       p = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/IPv6(src='2001:db8::1', dst='2001:db8::2')/ICMPv6EchoRequest(seq=i)\n\
         \x20       p.time = start + i / 1000\n\
         \x20       frames.append(p)",
    );
    let (file, report) = replay(&input, "back", &["--capture-rate", "100"]);
    let times = |file: &Path| tshark(file, &["-T", "fields", "-e", "frame.time_epoch"]);
    let (sent, written) = (times(&input), times(&file));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(written.lines().count(), 40, "{report}");
    assert!(report.contains("40 frames"), "{report}");
    assert_eq!(written, sent, "every frame is dropped: the capture's times (left), the input's (right)");
}

/// `--capture-snaplen` cuts each frame to its first bytes and keeps its length on the wire
/// (tshark's `frame.cap_len` and `frame.len`); a length no reader takes is refused, not
/// clamped to one the operator did not ask for.
#[test]
fn the_snap_length_cuts_frames_and_a_wrong_one_is_refused() {
    let input = pcap("real/zeek-communityid-icmp6.pcap");
    let (file, report) = replay(&input, "snap", &["--capture-rate", "100000", "--capture-snaplen", "64"]);
    let rows = tshark_rows(&file, "frame");
    assert!(rows.iter().any(|r| r.1 > 64), "no frame to cut\n{report}");
    assert!(rows.iter().all(|r| r.2 == r.1.min(64)), "{rows:?}");
    let cfg = file.with_file_name("config.toml");
    // What `replay` with a drop capture and `capture_args` says on standard error, once it
    // has failed.
    let refused = |capture_args: &[&str]| {
        let run = Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(["replay", "--config", cfg.to_str().unwrap(), "--in", input.to_str().unwrap()])
            .args(["--capture-drops", "/tmp/transitd-never.pcapng"])
            .args(capture_args)
            .output()
            .unwrap();
        assert!(!run.status.success(), "{capture_args:?} was taken");
        String::from_utf8_lossy(&run.stderr).into_owned()
    };
    // The largest frame size is taken (a frame_size of 65536 is the default's length), and
    // tshark reads the file it writes.
    let (whole, report) = replay(&input, "snap-whole", &["--capture-rate", "100000", "--capture-snaplen", "65536"]);
    let rows = tshark_rows(&whole, "frame");
    assert!(!rows.is_empty() && rows.iter().all(|r| r.2 == r.1), "{rows:?}\n{report}");
    for wrong in ["-1", "10", "65537"] {
        let err = refused(&["--capture-snaplen", wrong]);
        assert!(err.contains(&format!("'--capture-snaplen <BYTES>': {wrong} is not in 64..=65536")), "{err}");
    }
    // A size bound no frame fits under is refused too, not taken to keep nothing.
    let err = refused(&["--capture-max-size", "10"]);
    assert!(err.contains("--capture-max-size 10 holds no frame"), "{err}");
    // A rate of no frames, by the parser, with the range it takes.
    let err = refused(&["--capture-rate", "0"]);
    assert!(err.contains("'--capture-rate <N>': 0 is not in 1..="), "{err}");
}

/// A replayed frame whose capture had no Ethernet header (raw IP; a Linux cooked capture,
/// whose 16-byte header gives way) is captured with the Ethernet header transitd gave it,
/// and its lengths say so, whole or cut by the capture's snap length: tshark's `frame.len`
/// and `frame.cap_len` of the input, less its link header, plus 14. The length on the wire
/// was the input's, so a cut raw-IP frame was 14 short and a whole cooked one 2 over.
#[test]
fn frames_given_an_ethernet_header_are_captured_with_its_length() {
    let dir = scratch_dir("dropcap-reframed");
    // IPv4 SYNs of 60 to 150 bytes, every other one cut 4 bytes into its payload.
    let script = r#"
import struct, sys
from scapy.all import IP, TCP, Raw
cooked = struct.pack('>HHH8sH', 0, 1, 6, bytes.fromhex('020000000009'), 0x0800)
for linktype, link in ((101, b''), (113, cooked)):
    out = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)
    for i in range(4):
        ip = IP(src='203.0.113.200', dst='203.0.113.%d' % (i + 1))
        packet = link + bytes(ip / TCP(sport=40000 + i, dport=80, flags='S') / Raw(b'p' * (20 + 30 * i)))
        kept = packet if i % 2 == 0 else packet[:len(link) + 44]
        out += struct.pack('<IIII', 1700000000 + i, 0, len(kept), len(packet)) + kept
    open('%s/%d.pcap' % (sys.argv[1], linktype), 'wb').write(out)
"#;
    let made = Command::new("/usr/bin/python3").args(["-c", script]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for (link_type, link_header) in [(101, 0), (113, 16)] {
        let input = dir.join(format!("{link_type}.pcap"));
        let expected: Vec<(u64, u64)> = tshark(&input, &["-T", "fields", "-e", "frame.len", "-e", "frame.cap_len"])
            .lines()
            .map(|l| {
                let (len, cap_len) = l.split_once('\t').unwrap();
                (len.parse::<u64>().unwrap() - link_header + 14, cap_len.parse::<u64>().unwrap() - link_header + 14)
            })
            .collect();
        assert_eq!(expected.iter().filter(|(len, cap_len)| len > cap_len).count(), 2, "{link_type}: {expected:?}");
        let (file, report) = replay(&input, &format!("reframed-{link_type}"), &[]);
        let rows = tshark_rows(&file, "frame");
        assert!(rows.iter().all(|r| r.0.starts_with("drop: ")), "{link_type}: {rows:?}\n{report}");
        let captured: Vec<(u64, u64)> = rows.iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(captured, expected, "{link_type}: captured (left), the input's as Ethernet (right)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A DoS rule has one name wherever it is reported: the capture's comment, replay's rule
/// hits and `match --config` all say `[dos]/NAME` and `CUSTOMER/dos/NAME` (docs/rules.md).
#[test]
fn a_dos_rule_has_one_name_in_the_capture_the_report_and_match() {
    let dir = scratch_dir("dropcap-dosname");
    let cfg = dir.join("config.toml");
    let rules = "\n[[dos.rule]]\nname = \"solicit\"\nmatch = \"icmpv6.type == 135\"\naction = \"drop\"\n\
                 [[customer.dos.rule]]\nname = \"echo\"\nmatch = \"icmpv6.type == 128\"\naction = \"drop\"\n";
    std::fs::write(&cfg, format!("{CATCH_ALL}{rules}")).unwrap();
    let input = pcap("real/zeek-communityid-icmp6.pcap");
    let out = dir.join("drops.pcapng");
    let run = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["replay", "--config", cfg.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--capture-drops", out.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{report}");
    let matched = Command::new(env!("CARGO_BIN_EXE_transitd"))
        .args(["match", "-r", input.to_str().unwrap(), "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let matched = String::from_utf8_lossy(&matched.stdout).into_owned();
    let comments = tshark(&out, &["-T", "fields", "-e", "frame.comment"]);
    let _ = std::fs::remove_dir_all(&dir);
    for name in ["[dos]/solicit", "all/dos/echo"] {
        assert!(comments.lines().any(|c| c.ends_with(&format!("dos rule {name}"))), "{name}: {comments}");
        assert!(report.lines().any(|l| l.trim_start().starts_with(&format!("{name} "))), "{name}: {report}");
        assert!(matched.contains(&format!(" {name} ")), "{name}: {matched}");
    }
}
