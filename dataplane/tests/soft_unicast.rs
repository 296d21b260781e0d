//! Soft-unicast's return path and its tools: what server a1 of a three-server fleet does with
//! return traffic (pcaps/generated/soft-unicast.pcap, dataplane/tests/data/soft-unicast.toml),
//! checked with tshark; `transitd plan`, `transitd geofeed`, and the configuration's errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use transitd::pipeline::{DropReason, PassReason, TxReason, Verdict};
use transitd::replay::replay;

fn fleet() -> (String, PathBuf) {
    let config = std::fs::read_to_string(root().join("dataplane/tests/data/soft-unicast.toml")).unwrap();
    (config, pcap("generated/soft-unicast.pcap"))
}

fn transitd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_transitd")).args(args).output().unwrap()
}

#[test]
fn return_traffic_goes_to_its_owner_and_never_loops() {
    // What each frame must become is written beside it in pcaps/generated/soft_unicast.py.
    let (config, file) = fleet();
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let local = format!("pass:{}", PassReason::EgressLocal.name());
    let backbone = format!("tx:{}", TxReason::Backbone.name());
    let expect = [
        &local,
        &backbone,
        &backbone,
        &local,
        &backbone,
        &backbone,
        &local,
        &backbone,
        &local,
        DropReason::BackboneLoop.name(),
        DropReason::BackboneLoop.name(),
        DropReason::BackboneUnknownSource.name(),
        DropReason::BackboneNotEgress.name(),
        &local,
        &local,
        &backbone,
    ];
    let got = fates(&v);
    assert_eq!(got, expect);
}

/// An ICMP error quoting a later fragment of our datagram has no port to steer by (the
/// quote's first bytes are data): it stays with the address's data centre, as a later
/// fragment itself does; the same error quoting the first fragment goes to the port's owner.
/// (Its data read as a port sent it to a2 over the backbone.)
#[test]
fn an_icmp_error_quoting_a_later_fragment_is_steered_by_no_port() {
    use etherparse::PacketBuilder;
    let (config, _) = fleet();
    let error = |frag_offset: u16| {
        // Our UDP datagram from 198.18.200.1 to the peer; its first data bytes 0x0fa0 (4000,
        // a2's slice) where a first fragment has its source port.
        let mut quoted = vec![0x45, 0, 0, 100, 0, 1, (frag_offset >> 8) as u8, frag_offset as u8, 64, 17, 0, 0];
        quoted.extend_from_slice(&[198, 18, 200, 1, 192, 0, 2, 77]);
        quoted.extend_from_slice(&[0x0f, 0xa0, 0x1e, 0x61, 0, 80, 0, 0]);
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([192, 0, 2, 77], [198, 18, 200, 1], 64)
            .icmpv4_raw(11, 0, [0; 4])
            .write(&mut frame, &quoted)
            .unwrap();
        frame
    };
    let (v, _, _) = verdicts_of(&config, vec![error(100), error(0)]);
    assert_eq!(
        fates(&v),
        [format!("pass:{}", PassReason::EgressLocal.name()), format!("tx:{}", TxReason::Backbone.name())]
    );
}

/// A backbone packet for this server that reaches the pipeline (the XDP program leaves it
/// some shapes, IPv4 options for one; replay hands it every frame; here plain and behind a
/// VLAN tag) is passed as its inner packet, behind the outer link header, of which the punt
/// device takes the IP packet alone: not the tunnel (the host has no GRE socket; the punt
/// device would hand it GRE to the backbone address, and it was lost).
#[test]
fn a_backbone_packet_for_this_server_passes_as_its_inner_packet() {
    use transitd::pipeline::{Frame, HEADROOM, Limits, SPILL_SLOTS, Spill, process_frame};
    let (config, file) = fleet();
    let snap = snapshot(&config);
    let (mut limits, mut spill) = (Limits::new(&snap), Spill::new(SPILL_SLOTS, snap.frame_size));
    // Frame 9: from a2 (hop 2), inner UDP to port 1500 (a1's).
    let plain = read_frames(&file).swap_remove(8).bytes;
    let mut tagged = plain[..12].to_vec();
    tagged.extend([0x81, 0x00, 0x00, 0x07]);
    tagged.extend(&plain[12..]);
    for (input, link) in [(&plain, 14), (&tagged, 18)] {
        let mut buf = vec![0u8; HEADROOM + 2048];
        buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
        let mut frame = Frame::new(&mut buf, HEADROOM, input.len(), input.len() as u32, 1);
        let outcome = process_frame(&snap, Some(&snap.eth), &mut limits, &mut spill, &mut frame);
        assert_eq!(outcome.verdict, Verdict::Pass(PassReason::EgressLocal));
        // The link header as it came (tags and all), then the inner packet byte for byte.
        let inner = &input[link + 20 + 8..];
        assert_eq!(&frame.data()[..link], &input[..link]);
        assert_eq!(&frame.data()[link..], inner);
        assert_eq!(inner[9], 17, "the inner packet is the UDP one");
    }
}

#[test]
fn backbone_gre_carries_the_original_packet_unchanged() {
    let (config, file) = fleet();
    let snap = std::sync::Arc::new(snapshot(&config));
    let out = std::env::temp_dir().join(format!("transitd-soft-unicast-{}.pcap", std::process::id()));
    replay(snap.clone(), &file, Some(&out)).unwrap();
    // Outer headers as tshark reads them: from a1's backbone address to the owner's (a2,
    // 10.9.0.12, hop 2) or its data centre's (b, 10.9.0.21, hop 1); key 0x5355 << 8 | hop.
    let rows = tshark(
        &out,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "gre.key",
            "-e",
            "ip.checksum.status",
        ],
    );
    let a2 = "10.9.0.11\t10.9.0.12\t0x00535502\t1";
    let b = "10.9.0.11\t10.9.0.21\t0x00535501\t1";
    // Frame 16, too big for the backbone, crosses as two fragments (the last test here).
    assert_eq!(rows.lines().collect::<Vec<_>>(), [a2, b, a2, a2, a2, a2, a2], "frames 2, 3, 5, 6, 8, 16");
    // The inner packet is the received IP packet byte for byte: no TTL decrement, nothing
    // rewritten (frame 8's is the inner packet of a backbone packet).
    let inputs = read_frames(&file);
    let outputs = read_frames(&out);
    assert_eq!(outputs.len(), 7, "frames 2, 3, 5, 6, 8 and frame 16's two fragments");
    for (o, (n, skip)) in outputs.iter().zip([(2, 14), (3, 14), (5, 14), (6, 14), (8, 14 + 20 + 8)]) {
        let original = &inputs[n - 1].bytes[skip..];
        assert_eq!(&o.bytes[14 + 20 + 8..], original, "frame {n}");
    }
    let _ = std::fs::remove_file(out);
}

/// Every fragment of a datagram goes where its first fragment went (only the first carries
/// the port that names the owner); a later fragment with no first seen, or seen longer ago
/// than the hold, goes to the address's data centre as before. Expected fates are beside
/// each datagram in pcaps/generated/soft_unicast_fragments.py; what reaches each server is
/// then reassembled by tshark.
#[test]
fn fragments_follow_their_first_fragment_to_its_owner() {
    let (config, _) = fleet();
    let file = pcap("generated/soft-unicast-fragments.pcap");
    let (v, _) = verdicts_timed(&config, &file);
    let (l, b) = (format!("pass:{}", PassReason::EgressLocal.name()), format!("tx:{}", TxReason::Backbone.name()));
    let expect = [&b, &l, &b, &b, &l, &l, &l, &b, &b, &l, &b, &b, &l, &l, &b, &l, &b, &b, &b, &l];
    assert_eq!(fates(&v).iter().collect::<Vec<_>>(), expect);

    // What went out reassembles, under tshark, into the whole datagrams each owner should
    // have: d1, d5 and d8 at a2 (10.9.0.12), d3 at b (10.9.0.21); d4 and d9 lost a piece to
    // the data centre's fallback.
    let snap = std::sync::Arc::new(snapshot(&config));
    let out = std::env::temp_dir().join(format!("transitd-su-fragments-{}.pcap", std::process::id()));
    replay(snap, &file, Some(&out)).unwrap();
    let rows = reassembled_udp(&out, &["ip.dst", "udp.dstport", "udp.length"]);
    let got: Vec<&str> = rows.lines().collect();
    assert_eq!(
        got,
        ["10.9.0.12\t4000\t3008", "10.9.0.21\t2000\t2008", "10.9.0.12\t3500\t2008", "10.9.0.12\t4200\t2008"],
        "{rows}"
    );
    let _ = std::fs::remove_file(out);
}

/// Remembered owners are server indices: a reload that changes the fleet's servers forgets
/// them (here a2 leaves, and index 1 becomes b1; a later fragment of a2's datagram went to b1
/// over the backbone), and the fragment goes to its data centre as one whose first was not
/// seen.
#[test]
fn a_reload_that_changes_the_fleet_forgets_fragment_owners() {
    use transitd::pipeline::Limits;
    let (config, _) = fleet();
    let a2 = "[[soft_unicast.server]]\nname = \"a2\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.12\"\n\n";
    assert!(config.contains(a2));
    let (before, after) = (snapshot(&config), snapshot(&config.replace(a2, "")));
    let frames = read_frames(&pcap("generated/soft-unicast-fragments.pcap"));
    let run = |snap, limits: &mut Limits, input: &[u8]| verdict_with(snap, limits, input, 1);
    let backbone = |v: Verdict| matches!(v, Verdict::Tx { reason: TxReason::Backbone, .. });
    // d1 (a2's, frames 1, 3 and 4): its first fragment, then its second with the fleet
    // unchanged, then its last after the reload.
    let mut limits = Limits::new(&before);
    assert!(backbone(run(&before, &mut limits, &frames[0].bytes)));
    assert!(backbone(run(&before, &mut limits, &frames[2].bytes)));
    limits.rebind(&before, &after);
    assert_eq!(run(&after, &mut limits, &frames[3].bytes), Verdict::Pass(PassReason::EgressLocal));
}

#[test]
fn plan_prints_each_servers_slices_and_replanning_moves_only_what_it_must() {
    let dir = scratch_dir("plan");
    let (config, _) = fleet();
    let first = dir.join("fleet.toml");
    std::fs::write(&first, &config).unwrap();
    let plan = dir.join("plan.json");
    let out = transitd(&["plan", "-c", first.to_str().unwrap(), "--out", plan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("server a1 (data centre a): 16 slices"), "{text}");
    assert!(text.contains("server a2 (data centre a): 15 slices"), "{text}");
    assert!(text.contains("  198.18.201.0 ports 1024-64511"), "{text}");

    // The plan file in force: the configuration that names it loads, and one made for
    // another section is refused.
    let with_plan = config.replace("reserved_ports = 1024", "reserved_ports = 1024\nplan = \"plan.json\"");
    std::fs::write(&first, &with_plan).unwrap();
    let ok = transitd(&["check-config", first.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The same section written otherwise (data centres in another order, a city corrected
    // for the geofeed) makes the same plan: the plan file stays in force.
    let (a, b) = (
        "[[soft_unicast.data_centre]]\nname = \"a\"\nbackbone = \"10.9.0.11\"\n",
        "[[soft_unicast.data_centre]]\nname = \"b\"\nbackbone = \"10.9.0.21\"\n",
    );
    assert!(with_plan.contains(&format!("{a}\n{b}")));
    let rewritten = with_plan.replace(&format!("{a}\n{b}"), &format!("{b}\n{a}")).replace("London", "City of London");
    let third = dir.join("rewritten.toml");
    std::fs::write(&third, &rewritten).unwrap();
    let ok = transitd(&["check-config", third.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let feed = transitd(&["geofeed", "-c", third.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&feed.stdout).contains("GB,GB-ENG,City of London"), "the section's tags");
    // Nor does its file: made from the data centres and a1 and a2 written the other way
    // round, it is the same file byte for byte (a fleet's copies are compared so).
    let (a1, a2) = (
        "[[soft_unicast.server]]\nname = \"a1\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.11\"\n",
        "[[soft_unicast.server]]\nname = \"a2\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.12\"\n",
    );
    assert!(config.contains(&format!("{a1}\n{a2}")));
    let reordered = config
        .replace(&format!("{a}\n{b}"), &format!("{b}\n{a}"))
        .replace(&format!("{a1}\n{a2}"), &format!("{a2}\n{a1}"));
    let (fourth, again) = (dir.join("reordered.toml"), dir.join("again.json"));
    std::fs::write(&fourth, &reordered).unwrap();
    let out = transitd(&["plan", "-c", fourth.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), std::fs::read_to_string(&plan).unwrap());

    // A third server in data centre a: a balanced plan gives it 10 of a's 31 slices; a
    // re-plan from the previous plan moves exactly those, all to it.
    let grown = with_plan.replace(
        "[[soft_unicast.server]]\nname = \"b1\"",
        "[[soft_unicast.server]]\nname = \"a3\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.13\"\n\n[[soft_unicast.server]]\nname = \"b1\"",
    );
    let second = dir.join("grown.toml");
    std::fs::write(&second, &grown).unwrap();
    let stale = transitd(&["check-config", second.to_str().unwrap()]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("was made from another [soft_unicast] section"));
    let out = transitd(&["plan", "-c", second.to_str().unwrap(), "--previous", plan.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("server a3 (data centre a): 10 slices"), "{text}");
    assert!(text.contains("10 slices move"), "{text}");
    assert_eq!(text.lines().filter(|l| l.ends_with("-> a3")).count(), 10, "{text}");
    // Without --previous, the configuration's plan file is the previous plan: the same
    // ten moves (a plan made afresh moved slices between a1 and a2 too).
    let implied = transitd(&["plan", "-c", second.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&implied.stdout), text, "{}", String::from_utf8_lossy(&implied.stderr));
    assert!(String::from_utf8_lossy(&implied.stderr).contains("previous plan: "), "said which");
    // A previous plan of other slices keeps no owner, and says so.
    let resliced = grown.replace("reserved_ports = 1024", "reserved_ports = 2048");
    std::fs::write(&second, &resliced).unwrap();
    let other = transitd(&["plan", "-c", second.to_str().unwrap(), "--previous", plan.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("the previous plan has other slices"), "{other:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `plan` and `check-config` count in the singular where there is one, and the plan's first
/// line says its slices per address and in all: it said "1 egress addresses, 3 slices of
/// 16384 ports each", "1 slices", "1 slices move", and for the test fleet "31 slices" while
/// its servers held 93. The counts are worked out here from the section (whole slices of
/// `slice_size` above `reserved_ports`), not taken from the code.
#[test]
fn plan_counts_say_one_as_one_and_slices_per_address_and_in_all() {
    let dir = scratch_dir("plan-counts");
    let lines = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    // The test fleet: 31 whole 2048-port slices above port 1024 on each of its three
    // addresses (198.18.200.1/32 and 198.18.201.0/31), 93 in all, which its servers share.
    let (fleet, _) = fleet();
    let fleet_file = dir.join("fleet.toml");
    std::fs::write(&fleet_file, &fleet).unwrap();
    let per_address = (65536 - 1024) / 2048;
    let last = 1024 + per_address * 2048 - 1;
    let said = lines(&transitd(&["plan", "-c", fleet_file.to_str().unwrap()]));
    assert_eq!(
        said[0],
        format!(
            "3 egress addresses, {per_address} slices on each (ports 1024-{last}): {} slices of 2048 ports",
            3 * per_address
        )
    );
    let held: usize = said
        .iter()
        .filter(|l| l.starts_with("server "))
        .map(|l| l.rsplit(": ").next().unwrap().trim_end_matches(" slices").parse::<usize>().unwrap())
        .sum();
    assert_eq!(held, 3 * per_address, "{said:?}");

    // One address of three 16384-port slices, one server: every count is one but the slices.
    let one = "[server]\nanycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:01\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n\n\
               [dos.sanity]\nbogons = false\n\n\
               [soft_unicast]\nthis_server = \"a1\"\nslice_size = 16384\nreserved_ports = 1024\n\n\
               [[soft_unicast.data_centre]]\nname = \"a\"\nbackbone = \"10.9.0.11\"\n\n\
               [[soft_unicast.server]]\nname = \"a1\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.11\"\n\n\
               [[soft_unicast.egress]]\nprefix = \"198.18.200.1/32\"\ndata_centre = \"a\"\ncountry = \"GB\"\n";
    let (one_file, plan) = (dir.join("one.toml"), dir.join("plan.json"));
    std::fs::write(&one_file, one).unwrap();
    let per_address = (65536 - 1024) / 16384;
    let last = 1024 + per_address * 16384 - 1;
    let said = lines(&transitd(&["plan", "-c", one_file.to_str().unwrap(), "--out", plan.to_str().unwrap()]));
    assert_eq!(
        said[0],
        format!(
            "1 egress address, {per_address} slices on each (ports 1024-{last}): {per_address} slices of 16384 ports"
        )
    );
    let checked = lines(&transitd(&["check-config", one_file.to_str().unwrap()]));
    assert!(checked[0].ends_with("; soft-unicast: 1 egress address, this server a1)"), "{checked:?}");
    // A second server takes one of the three: a2 holds one slice, and one slice moves.
    let two = one.replace(
        "[[soft_unicast.egress]]",
        "[[soft_unicast.server]]\nname = \"a2\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.12\"\n\n[[soft_unicast.egress]]",
    );
    let two_file = dir.join("two.toml");
    std::fs::write(&two_file, two).unwrap();
    let said = lines(&transitd(&["plan", "-c", two_file.to_str().unwrap(), "--previous", plan.to_str().unwrap()]));
    assert!(said.contains(&"server a2 (data centre a): 1 slice".to_string()), "{said:?}");
    assert!(said.contains(&"server a1 (data centre a): 2 slices".to_string()), "{said:?}");
    assert!(said.contains(&"1 slice moves".to_string()), "{said:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Every command that reads a configuration says its warnings, alike (`warning:
/// file:line:col: ...`), once: `plan` said none, so a city the geofeed would publish with a
/// comma (RFC 8805 §2.1.1.4: a city "SHOULD be free UTF-8 text, excluding the comma") went
/// unsaid by the command an operator runs when the fleet changes.
#[test]
fn every_command_that_reads_a_configuration_says_its_warnings() {
    let (config, capture) = fleet();
    let comma = config.replace("city = \"London\"", "city = \"London, Westminster\"");
    assert_ne!(comma, config);
    let file = std::env::temp_dir().join(format!("transitd-warned-{}.toml", std::process::id()));
    std::fs::write(&file, &comma).unwrap();
    let line = comma.lines().position(|l| l.contains("Westminster")).unwrap() + 1;
    let said = format!("warning: {}:{line}:8: city: `London, Westminster` holds a comma", file.display());
    let (c, p) = (file.to_str().unwrap(), capture.to_str().unwrap());
    for args in [
        vec!["check-config", c],
        vec!["plan", "-c", c],
        vec!["geofeed", "-c", c],
        vec!["bgp", "show", "-c", c],
        vec!["replay", "--config", c, "--in", p],
        vec!["match", "-r", p, "--config", c],
    ] {
        let out = transitd(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().filter(|l| l.starts_with(&said)).count(), 1, "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(file);
}

/// A server the plan gives no port slice can send no egress traffic: `check-config` and
/// `plan` say so. With `slice_size = 32768` above 1,024 reserved ports an address holds one
/// slice ((65,536 - 1,024) / 32,768, rounded down): data centre a's one address holds one
/// slice for its two servers, b's two addresses two for its one. Only one of a's servers is
/// warned of; at 2,048 (31 slices an address) none is; b's server, when b has no address.
#[test]
fn a_server_without_a_slice_is_warned_of() {
    let (config, _) = fleet();
    let one_slice = config.replace("slice_size = 2048", "slice_size = 32768");
    assert_ne!(one_slice, config);
    for (text, warned) in [(&one_slice, 1), (&config, 0)] {
        let file = std::env::temp_dir().join(format!("transitd-sliceless-{warned}-{}.toml", std::process::id()));
        std::fs::write(&file, text).unwrap();
        for command in [vec!["check-config", file.to_str().unwrap()], vec!["plan", "-c", file.to_str().unwrap()]] {
            let out = transitd(&command);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{command:?}: {stderr}");
            let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("owns no port slice")).collect();
            assert_eq!(lines.len(), warned, "{command:?}: {stderr}");
            for line in lines {
                assert!(
                    (line.contains("server `a1`") || line.contains("server `a2`"))
                        && line
                            .contains("(data centre `a` has 1 slice for 2 servers): it sends no soft-unicast egress"),
                    "{line}"
                );
            }
        }
        let _ = std::fs::remove_file(file);
    }
    // A data centre without an egress address (b, its range moved to a) gives its server no
    // slice at any slice size: said as that, with the one remedy (it was "0 slices for 1
    // servers", and a smaller slice_size).
    let from = "prefix = \"198.18.201.0/31\"\ndata_centre = \"b\"";
    let no_egress = config.replace(from, "prefix = \"198.18.201.0/31\"\ndata_centre = \"a\"");
    assert_ne!(no_egress, config);
    let file = std::env::temp_dir().join(format!("transitd-sliceless-b-{}.toml", std::process::id()));
    std::fs::write(&file, &no_egress).unwrap();
    for command in [vec!["check-config", file.to_str().unwrap()], vec!["plan", "-c", file.to_str().unwrap()]] {
        let out = transitd(&command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("owns no port slice")).collect();
        let said = "server `b1` owns no port slice (data centre `b` has no egress address): it sends no soft-unicast \
                    egress traffic; an egress range in `b` gives it some";
        assert!(lines.len() == 1 && lines[0].ends_with(said), "{command:?}: {stderr}");
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn geofeed_is_generated_from_the_egress_ranges_and_checked() {
    let config = root().join("dataplane/tests/data/soft-unicast.toml");
    let out = transitd(&["geofeed", "-c", config.to_str().unwrap()]);
    assert!(out.status.success());
    let feed = String::from_utf8(out.stdout).unwrap();
    let entries: Vec<&str> = feed.lines().filter(|l| !l.starts_with('#')).collect();
    // RFC 8805 §2.1.1: prefix, country, region, city, postal code (empty, deprecated).
    assert_eq!(entries, ["198.18.200.1/32,GB,GB-ENG,London,", "198.18.201.0/31,DE,,,"]);
    let file = std::env::temp_dir().join(format!("transitd-feed-{}.csv", std::process::id()));
    std::fs::write(&file, &feed).unwrap();
    let check = transitd(&["geofeed", "--check", file.to_str().unwrap()]);
    assert!(check.status.success() && check.stderr.is_empty(), "{}", String::from_utf8_lossy(&check.stderr));
    let more = "198.18.202.0/33,GB,,,\n198.18.203.0/24,UK,,,\n10.0.0.1/8,,,,\n198.18.200.1,GB,,,\n\
                198.18.204.0/24,US,US-CA,\"San Francisco, CA\",\n198.18.205.0/24,GB,GB-ENG,London,EC2V 7HH\n\
                198.18.206.0/24,,,,# spare, not yet routed\n";
    std::fs::write(&file, format!("{feed}{more}")).unwrap();
    let bad = transitd(&["geofeed", "--check", file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    // file:line:col, as every other error, for every bad line: the comment, two entries, then
    // the four bad ones (UK has the form of a code, but ISO 3166-1 assigns it to nobody; line
    // 7 is line 2's prefix, RFC 8805 §2.1.3: "Duplicate IP address or prefix entries MUST be
    // considered an error"), then the warnings (§2.1.1.4: a city "SHOULD be free UTF-8 text,
    // excluding the comma"; §2.1.1.5: "new feeds SHOULD NOT include" a postal code). Line 10
    // is a whole entry and a comment (§2.1: "Text from a '#' character to the end of the
    // current line is treated as a comment only"), not six fields.
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let lines: Vec<&str> = stderr.lines().map(|l| l.rsplit_once(".csv").map_or(l, |(_, rest)| rest)).collect();
    assert_eq!(
        lines,
        [
            ":4:1: bad prefix length in `198.18.202.0/33`",
            ":5:17: `UK` is not an ISO 3166-1 alpha-2 code assigned to a country (the United Kingdom is `GB`)",
            ":6:1: `10.0.0.1/8` has host bits set",
            ":7:1: `198.18.200.1/32` is a duplicate of line 2 (the same prefix, however written): RFC 8805 §2.1.3 \
             makes it an error",
            ":8:26: warning: `San Francisco, CA` holds a comma, which RFC 8805 says a city SHOULD exclude \
             (§2.1.1.4; §2.1.1.5 a postal code)",
            ":9:34: warning: `EC2V 7HH`: RFC 8805 §2.1.1.5 deprecates the postal code, which new feeds SHOULD NOT \
             include (§4: a specific one MUST NOT be published without the consent of those it locates)",
        ],
        "{stderr}"
    );
    // Space around a city is not published (strict readers keep it, RFC 4180 §2: ` London `
    // beside `London` would be two locations).
    let padded = std::fs::read_to_string(&config).unwrap().replace("city = \"London\"", "city = \"  London \"");
    assert!(padded.contains("  London "));
    std::fs::write(&file, padded).unwrap();
    let out = transitd(&["geofeed", "-c", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n198.18.200.1/32,GB,GB-ENG,London,\n"));
    let _ = std::fs::remove_file(file);
}

/// `connect` on a host that does not hold the egress address names the address and how to
/// add it, not a bare OS error.
#[test]
fn connect_without_the_egress_address_says_which_and_how() {
    let config = root().join("dataplane/tests/data/soft-unicast.toml");
    let out = transitd(&["connect", "-c", config.to_str().unwrap(), "--tag", "GB", "--send", "x", "127.0.0.1:9"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("binding to egress address 198.18.200.1: Cannot assign requested address")
            && said.contains("ip addr add 198.18.200.1/32 dev lo"),
        "{said}"
    );
}

#[test]
fn soft_unicast_configuration_errors_name_their_place() {
    let (config, _) = fleet();
    let cases = [
        ("this_server = \"a1\"", "this_server = \"zz\"", "this_server `zz` is not a [[soft_unicast.server]]"),
        ("name = \"b1\"\ndata_centre = \"b\"", "name = \"b1\"\ndata_centre = \"c\"", "unknown data centre `c`"),
        ("prefix = \"198.18.201.0/31\"", "prefix = \"2001:db8::/64\"", "egress prefixes are IPv4"),
        ("country = \"DE\"", "country = \"Germany\"", "is not an ISO 3166-1 alpha-2 code"),
        (
            "country = \"DE\"",
            "country = \"XX\"",
            "country: `XX` is not an ISO 3166-1 alpha-2 code assigned to a country",
        ),
        ("name = \"a2\"", "name = \"a1\"", "duplicate server `a1`"),
        // Backbone addresses: one host's for two servers or two data centres (GRE for one
        // reaches the other), or one in an egress range (GRE to it taken as return traffic).
        (
            "backbone = \"10.9.0.12\"",
            "backbone = \"10.9.0.11\"",
            "address 10.9.0.11 of server `a2` is server `a1`'s too",
        ),
        (
            "backbone = \"10.9.0.21\"",
            "backbone = \"10.9.0.11\"",
            "10.9.0.11 of data centre `b` is data centre `a`'s too",
        ),
        (
            "backbone = \"10.9.0.21\"",
            "backbone = \"10.9.0.12\"",
            "10.9.0.12 of data centre `b` is server `a2`'s, of data centre `a`",
        ),
        (
            "backbone = \"10.9.0.21\"",
            "backbone = \"198.18.201.1\"",
            "backbone address 198.18.201.1 of data centre `b` is in egress range 198.18.201.0/31",
        ),
    ];
    for (from, to, message) in cases {
        assert!(config.contains(from), "{from}");
        let text = config.replacen(from, to, 1);
        let loaded = transitd::config::parse("fleet.toml", &text).unwrap();
        let errors = transitd::snapshot::Snapshot::build(&loaded).unwrap_err().to_string();
        assert!(errors.contains(message), "{to}: {errors}");
        assert!(errors.starts_with("fleet.toml:"), "{errors}");
    }
    // An address cannot be both a customer's and shared egress.
    let both = format!("{config}\n[[customer]]\nname = \"c\"\nprefixes = [\"198.18.200.0/24\"]\n");
    let errors =
        transitd::snapshot::Snapshot::build(&transitd::config::parse("fleet.toml", &both).unwrap()).unwrap_err();
    assert!(errors.to_string().contains("egress prefix 198.18.200.1/32 overlaps customer prefix 198.18.200.0/24"));
    // Nor a backbone address a customer's: this edge announces it, so backbone GRE to that
    // server reaches whichever server is nearest its sender.
    let inside = format!("{config}\n[[customer]]\nname = \"c\"\nprefixes = [\"10.9.0.0/24\"]\n");
    let errors =
        transitd::snapshot::Snapshot::build(&transitd::config::parse("fleet.toml", &inside).unwrap()).unwrap_err();
    for owner in ["server `a1`", "server `a2`", "data centre `b`"] {
        assert!(errors.to_string().contains(&format!("{owner}'s backbone address `10.9.0.")), "{owner}: {errors}");
    }
    assert!(errors.to_string().contains("is inside prefix 10.9.0.0/24 of customer `c`"), "{errors}");
    // A customer's tunnel interface on shared egress or a server's backbone address: the
    // customer could send as them.
    let tunnel = |interface: &str| {
        format!(
            "{config}\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n[[customer.tunnel]]\n\
             name = \"t\"\nremote = \"192.0.2.200\"\ninterface = \"{interface}\"\n"
        )
    };
    for (interface, why) in [
        ("198.18.201.0/31", "our side, 198.18.201.0, is inside egress prefix 198.18.201.0/31"),
        ("10.9.0.12/31", "our side, 10.9.0.12, is server `a2`'s backbone address"),
    ] {
        let errors =
            transitd::snapshot::Snapshot::build(&transitd::config::parse("fleet.toml", &tunnel(interface)).unwrap())
                .unwrap_err()
                .to_string();
        assert!(errors.contains(why), "{interface}: {errors}");
    }
}

/// A datagram under AH: its first fragment's transport (UDP, behind AH) names a2 as owner;
/// the later pieces (protocol 51, no AH header of their own) follow it. The datagram is
/// named by the IP header's protocol field, as RFC 791 and the XDP program name it: by the
/// transport's, the first (17) and the later pieces (51) were two datagrams.
#[test]
fn later_fragments_of_a_datagram_under_ah_follow_its_first() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-ah-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "d = IP(src='192.0.2.77', dst='198.18.200.1', id=1101)/AH(nh=17, payloadlen=4, spi=1, seq=1, icv=b'\\0' * 12)/UDP(sport=7777, dport=4000)/Raw(b'\\0' * 2000)\n\
         frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')/f for f in fragment(d, fragsize=1200)]",
    );
    let (v, _) = verdicts_timed(&config, &file);
    let _ = std::fs::remove_file(&file);
    let b = format!("tx:{}", TxReason::Backbone.name());
    assert_eq!(fates(&v), [b.clone(), b], "both pieces to a2");
}

/// RFC 1812 §5.3.4 on the return path: traffic another server owns is not forwarded over
/// the backbone when it came to a link broadcast or multicast address (nor backbone GRE so
/// received), while this server's own goes to its host as the XDP program passes it.
#[test]
fn return_traffic_to_a_link_group_address_is_delivered_here_but_not_forwarded() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-link-group-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "def udp(dport): return IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=53, dport=dport)\n\
         bb = lambda inner: IP(src='10.9.0.21', dst='10.9.0.11')/GRE(key_present=1, key=(0x5355 << 8) | 1)/inner\n\
         frames = [Ether(src='02:00:00:00:00:aa', dst=m)/p for m in ('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01')\n\
                   for p in (udp(4000), udp(1500), bb(udp(4000)))]",
    );
    let (v, _) = verdicts_timed(&config, &file);
    let _ = std::fs::remove_file(&file);
    let (group, local, backbone) = (
        DropReason::LinkBroadcast.name().to_string(),
        format!("pass:{}", PassReason::EgressLocal.name()),
        format!("tx:{}", TxReason::Backbone.name()),
    );
    assert_eq!(fates(&v).iter().collect::<Vec<_>>(), [&group, &local, &group, &backbone, &local, &backbone]);
}

/// RFC 7126 §4.3-4.4 on the return path: a packet another server owns whose IPv4 source
/// route still has hops to go (scapy's LSRR and SSRR, pointer at the first hop; to a2's port
/// and to data centre b's address) is `source_routed` with `[dos.sanity] source_route` on,
/// as one toward a customer is, rather than carried over the backbone to a host that drops
/// it (Linux's `accept_source_route` is off by default). A route whose hops are all behind
/// it (pointer past the end) and record route go on. This server's own goes to its host, as
/// the XDP program hands it over, and what another server sent on was judged there. With
/// the switch off, everything goes as before.
#[test]
fn source_routed_return_traffic_is_not_carried_over_the_backbone() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-source-route-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         on = ['192.0.2.99']\n\
         routed = [IPOption_LSRR(routers=on, pointer=4)]\n\
         past = [IPOption_LSRR(routers=on, pointer=8)]\n\
         opts = [routed, [IPOption_SSRR(routers=on, pointer=4)], past, [IPOption_RR()]]\n\
         udp = lambda port, o, dst='198.18.200.1': IP(src='192.0.2.77', dst=dst, options=o)/UDP(sport=53, dport=port)\n\
         bb = lambda src, hop, i: IP(src=src, dst='10.9.0.11')/GRE(key_present=1, key=(0x5355 << 8) | hop)/i\n\
         frames = [e/udp(port, o) for port in (4000, 1500) for o in opts]\n\
         frames += [e/udp(4000, routed, '198.18.201.0'), e/bb('10.9.0.21', 1, udp(4000, routed)),\n\
         \x20          e/bb('10.9.0.12', 2, udp(1500, routed))]",
    );
    let (on, _) = verdicts_timed(&config, &file);
    let (off, _) = verdicts_timed(&config.replace("[dos.sanity]\n", "[dos.sanity]\nsource_route = false\n"), &file);
    let _ = std::fs::remove_file(&file);
    let (local, backbone) =
        (format!("pass:{}", PassReason::EgressLocal.name()), format!("tx:{}", TxReason::Backbone.name()));
    let (l, b, routed) = (local.as_str(), backbone.as_str(), DropReason::SourceRouted.name());
    assert_eq!(fates(&on), [routed, routed, b, b, l, l, l, l, routed, b, l], "source_route on");
    assert_eq!(fates(&off), [b, b, b, b, l, l, l, l, b, b, l], "source_route off");
}

/// RFC 3927 §2.7 on the return path: return traffic from a link-local source that another
/// server owns (a2's port 4000, data centre b's address) is `link_local_source`, not carried
/// over the backbone off the link it came on, with `bogons = false` too; this server's own
/// (port 1500) goes to its host as the XDP program hands it over, and what another server
/// sent on was judged there (from data centre b, to a1's port and on to a2's). The same from
/// a global source goes on. scapy writes the frames.
#[test]
fn return_traffic_from_a_link_local_source_is_not_carried_over_the_backbone() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-link-local-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "e = Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
         udp = lambda src, port, dst='198.18.200.1': IP(src=src, dst=dst)/UDP(sport=53, dport=port)\n\
         bb = lambda hop, i: IP(src='10.9.0.21', dst='10.9.0.11')/GRE(key_present=1, key=(0x5355 << 8) | hop)/i\n\
         frames = [e/udp(src, port) for src in ('169.254.7.7', '192.0.2.77') for port in (4000, 1500)]\n\
         frames += [e/udp('169.254.7.7', 4000, '198.18.201.0'), e/bb(1, udp('169.254.7.7', 1500)),\n\
         \x20          e/bb(1, udp('169.254.7.7', 4000))]",
    );
    let (v, _) = verdicts_timed(&config, &file);
    let _ = std::fs::remove_file(&file);
    let (local, backbone) =
        (format!("pass:{}", PassReason::EgressLocal.name()), format!("tx:{}", TxReason::Backbone.name()));
    let (l, b, ll) = (local.as_str(), backbone.as_str(), DropReason::LinkLocalSource.name());
    assert_eq!(fates(&v), [ll, l, b, l, ll, l, b]);
}

/// RFC 6040 §4.2 on the backbone: a congestion mark a router between two servers put on the
/// outer header reaches the inner packet, whether it is sent on to its owner (as here: from
/// data centre b to a2, through a1) or delivered; a marked packet that is not ECN-capable
/// is dropped, as the marking router would have dropped it. tshark reads what went out.
#[test]
fn a_congestion_mark_on_the_backbone_goes_on_with_the_packet() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-ecn-{}.pcap", std::process::id()));
    let out = std::env::temp_dir().join(format!("transitd-su-ecn-out-{}.pcap", std::process::id()));
    // (outer ECN, inner ECN), the inner DSCP AF11 (0x28) throughout; from b1 (hop 1), inner
    // UDP to port 4000 (a2's), and from a2 (hop 2) to port 1500 (a1's own).
    scapy_pcap(
        &file,
        "def bb(outer, inner, src='10.9.0.21', hop=1, port=4000):\n\
         \x20   i = IP(src='192.0.2.77', dst='198.18.200.1', tos=0x28 | inner)/UDP(sport=7777, dport=port)/Raw(b'x')\n\
         \x20   return Ether(dst='02:00:00:00:00:01')/IP(src=src, dst='10.9.0.11', tos=outer)/GRE(key_present=1, key=(0x5355 << 8) | hop)/i\n\
         frames = [bb(3, 2), bb(1, 2), bb(0, 1), bb(3, 0), bb(3, 0, '10.9.0.12', 2, 1500), bb(3, 1, '10.9.0.12', 2, 1500)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let (v, _, _) = verdicts_of(&config, frames);
    let (backbone, local) =
        (format!("tx:{}", TxReason::Backbone.name()), format!("pass:{}", PassReason::EgressLocal.name()));
    let drop = DropReason::DecapCeNotEct.name();
    assert_eq!(
        fates(&v).iter().map(String::as_str).collect::<Vec<_>>(),
        [&backbone, &backbone, &backbone, drop, drop, &local]
    );
    let snap = std::sync::Arc::new(snapshot(&config));
    replay(snap, &file, Some(&out)).unwrap();
    // The inner header of each packet sent on: its ECN field, DSCP and checksum status.
    let rows = tshark(
        &out,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-e",
            "ip.dsfield.ecn",
            "-e",
            "ip.dsfield.dscp",
            "-e",
            "ip.checksum.status",
        ],
    );
    assert_eq!(rows.lines().collect::<Vec<_>>(), ["3\t10\t1", "1\t10\t1", "1\t10\t1"], "{rows}");
    let _ = (std::fs::remove_file(file), std::fs::remove_file(out));
}

/// A plan file whose spec is the configuration's but whose sizes are not (a slice count of
/// 65,535, 200,000 addresses: 26 GB of owner table) is refused at its name, and nothing is
/// built from it: the allocation it asked for failed and aborted the process, which on a
/// reload is the running edge.
#[test]
fn a_plan_file_with_sizes_of_its_own_is_refused_without_being_built() {
    let dir = scratch_dir("plan-sizes");
    let config = root().join("examples/soft-unicast/a1.toml");
    std::fs::copy(&config, dir.join("a1.toml")).unwrap();
    let plan = std::fs::read_to_string(root().join("examples/soft-unicast/plan.json")).unwrap();
    let mut plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    plan["slices_per_ip"] = 65535.into();
    let owners = plan["owners"].as_object_mut().unwrap();
    for ip in 0..200_000u32 {
        owners.insert(ip.to_string(), serde_json::Value::Array(vec![]));
    }
    std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
    let out = transitd(&["check-config", dir.join("a1.toml").to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused, not killed: {stderr}");
    assert!(stderr.contains("a1.toml:26:8: plan file") && stderr.contains("run `transitd plan`"), "{stderr}");
}

/// Backbone GRE under an authentication header is not the fleet's (it sends GRE plain, and
/// nothing here verifies AH): it is handed to the host like any traffic for no customer,
/// as the XDP program hands it, where the data plane decapsulated and forwarded it.
#[test]
fn backbone_gre_under_ah_is_not_the_fleets() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-ah-bb-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "inner = IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=4000)/Raw(b'x')\n\
         gre = GRE(key_present=1, key=(0x5355 << 8) | 1)/inner\n\
         frames = [\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='10.9.0.21', dst='10.9.0.11', proto=51)/AH(nh=47, payloadlen=4, spi=1, seq=1, icv=b'\\0' * 12)/gre,\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='10.9.0.21', dst='10.9.0.11')/gre,\n\
         ]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let backbone = format!("tx:{}", TxReason::Backbone.name());
    assert_eq!(fates(&v), [format!("pass:{}", PassReason::NoCustomer.name()), backbone]);
}

/// Backbone GRE is IPv4: IPv6 GRE whose addresses' top 32 bits spell a backbone address
/// (0a09:000b:: is 10.9.0.11) and a fleet member's (10.9.0.21) is no server's, and goes
/// where any IPv6 traffic for no customer goes, not through the backbone.
#[test]
fn ipv6_gre_is_never_backbone_gre() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-v6-bb-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "inner = IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=4000)/Raw(b'x')\n\
         gre = GRE(key_present=1, key=(0x5355 << 8) | 1)/inner\n\
         frames = [\n\
           Ether(dst='02:00:00:00:00:01')/IPv6(src='a09:15::1', dst='a09:b::1')/gre,\n\
           Ether(dst='02:00:00:00:00:01')/IP(src='10.9.0.21', dst='10.9.0.11')/gre,\n\
         ]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let backbone = format!("tx:{}", TxReason::Backbone.name());
    assert_eq!(fates(&v), [format!("pass:{}", PassReason::NoCustomer.name()), backbone]);
}

/// A return packet too big for the backbone, as a tunnel's entry point treats one (RFC 4459
/// §3): with DF its sender gets a Fragmentation Needed naming what the backbone leaves
/// (1500 - 28 bytes of GRE with a key), without DF it crosses in fragments that reassemble,
/// under tshark, into the datagram at its owner. Both were dropped as
/// `backbone_mtu_exceeded`, a path MTU black hole for full-size packets.
#[test]
fn a_return_packet_too_big_for_the_backbone_is_answered_or_fragmented() {
    let (config, _) = fleet();
    let dir = scratch_dir("su-mtu");
    let (file, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    scapy_pcap(
        &file,
        "e = lambda p: Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')/p\n\
         frames = [\n\
           e(IP(src='192.0.2.77', dst='198.18.200.1', flags='DF')/TCP(sport=443, dport=4000, flags='A')/Raw(b'z' * 1460)),\n\
           e(IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=4000)/Raw(b'y' * 1472)),\n\
           Ether(src='02:00:00:00:00:fe', dst='ff:ff:ff:ff:ff:ff')/IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=4000)/Raw(b'b' * 1472),\n\
         ]",
    );
    let (v, _, _) = verdicts_of(&config, read_frames(&file).into_iter().map(|f| f.bytes).collect());
    // The third came as a link broadcast: not forwarded (RFC 1812 §5.3.4), nor any fragment of it.
    let expect = [
        format!("tx:{}", TxReason::IcmpTooBig.name()),
        format!("tx:{}", TxReason::Backbone.name()),
        DropReason::LinkBroadcast.name().to_string(),
    ];
    assert_eq!(fates(&v), expect);

    replay(std::sync::Arc::new(snapshot(&config)), &file, Some(&out)).unwrap();
    let icmp = tshark(
        &out,
        &["-Y", "icmp", "-T", "fields", "-E", "occurrence=f", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type"],
    );
    let mtu = tshark(&out, &["-Y", "icmp", "-T", "fields", "-e", "icmp.code", "-e", "icmp.mtu", "-e", "tcp.dstport"]);
    assert_eq!((icmp.trim(), mtu.trim()), ("192.0.2.1\t192.0.2.77\t3", "4\t1472\t4000"));
    let udp = reassembled_udp(&out, &["ip.dst", "udp.length"]);
    assert_eq!(udp.trim(), "10.9.0.12\t1480", "the datagram, whole at a2");
    let frames = tshark(&out, &["-Y", "gre and ip.dst == 10.9.0.12", "-T", "fields", "-e", "frame.len"]);
    assert!(frames.lines().count() == 2 && frames.lines().all(|l| l.parse::<usize>().unwrap() <= 1514), "{frames}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A `backbone_mtu` larger than the link is held to the link, as a tunnel's is: with DF a
/// return packet that fits 1500 bytes of backbone but not a 1440-byte link gets a
/// Fragmentation Needed naming 1412 (1440 less 28 bytes of keyed GRE), without DF it
/// crosses in fragments that fit the link and reassemble, under tshark, into the datagram.
/// Both went out whole, larger than the link, which dropped them.
#[test]
fn a_backbone_larger_than_the_link_is_held_to_it() {
    let (config, _) = fleet();
    let dir = scratch_dir("su-link");
    let (file, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    scapy_pcap(
        &file,
        "e = lambda p: Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')/p\n\
         frames = [\n\
           e(IP(src='192.0.2.77', dst='198.18.200.1', flags='DF')/TCP(sport=443, dport=4000, flags='A')/Raw(b'z' * 1400)),\n\
           e(IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=4000)/Raw(b'y' * 1412)),\n\
         ]",
    );
    let (io, _) = run_on_link(&config, &file, 1440);
    let expect = [format!("tx:{}", TxReason::IcmpTooBig.name()), format!("tx:{}", TxReason::Backbone.name())];
    assert_eq!(fates(&io.verdicts), expect);
    assert!(io.sent.iter().all(|f| f.len() <= 14 + 1440), "every frame fits the link");
    write_pcap(&out, &io.sent);
    let mtu = tshark(&out, &["-Y", "icmp", "-T", "fields", "-e", "icmp.code", "-e", "icmp.mtu", "-e", "tcp.dstport"]);
    assert_eq!(mtu.trim(), "4\t1412\t4000");
    let udp = reassembled_udp(&out, &["ip.dst", "udp.length"]);
    assert_eq!(udp.trim(), "10.9.0.12\t1420", "the datagram, whole at a2");
    let _ = std::fs::remove_dir_all(dir);
}

/// Return traffic another data centre sent over the backbone that is too big for the hop
/// on to its owner (here a `backbone_mtu` of 1000; a smaller link alike) crosses that hop in
/// fragments, and every fragment sent is counted sent: as many `tx:backbone` frames as the
/// replay wrote (capinfos counts them), and the outcome says the fragment it spilled, as
/// `match --config` prints it (`+1 fragments`). The later fragment went out uncounted, and a
/// backend's failure to send it would have taken off a count it never added.
#[test]
fn fragments_of_a_packet_from_the_backbone_are_counted_sent() {
    use transitd::pipeline::Limits;
    let (config, _) = fleet();
    let config = config.replace("reserved_ports = 1024\n", "reserved_ports = 1024\nbackbone_mtu = 1000\n");
    assert!(config.contains("backbone_mtu = 1000"));
    let dir = scratch_dir("su-relay-fragments");
    let (file, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    // From b1 (hop 1) to data centre a: UDP to port 4000, a2's, 1200 bytes without DF.
    scapy_pcap(
        &file,
        "frames = [Ether(src='02:00:00:00:00:aa', dst='02:00:00:00:00:01')\n\
           /IP(src='10.9.0.21', dst='10.9.0.11')/GRE(key_present=1, key=0x535501)\n\
           /IP(src='192.0.2.77', dst='198.18.200.1', id=8)/UDP(sport=7777, dport=4000)/Raw(b'y' * 1172)]",
    );
    let summary = replay(std::sync::Arc::new(snapshot(&config)), &file, Some(&out)).unwrap();
    assert_eq!(frame_count(&out), 2, "the inner packet in two fragments, each in backbone GRE");
    assert_eq!(summary.stats.tx_frames, 2, "every frame written is counted sent");
    assert_eq!(summary.stats.tx[TxReason::Backbone.index()], 2);
    let udp = reassembled_udp(&out, &["ip.dst", "udp.length"]);
    assert_eq!(udp.trim(), "10.9.0.12\t1180", "the datagram, whole at a2");

    let snap = snapshot(&config);
    let outcome = outcome_with(&snap, &mut Limits::new(&snap), &read_frames(&file)[0].bytes, 1);
    assert_eq!(fates(&[outcome.verdict]), [format!("tx:{}", TxReason::Backbone.name())]);
    assert_eq!(outcome.spilled, 1, "the later fragment, as the dry run reports it");
    let _ = std::fs::remove_dir_all(dir);
}

/// `run --this-server NAME` says which server this host is over the configuration's
/// `this_server`, so that a fleet can share one configuration (an etcd prefix): a2 takes its
/// own slices (port 4000 is a2's: delivered here, where a1 sends it over the backbone) and
/// its own backbone address; a name that is no server is refused, naming the flag.
#[test]
fn this_server_from_the_command_line_overrides_the_configuration() {
    use transitd::snapshot::{Host, Snapshot};
    let (config, _) = fleet();
    let loaded = transitd::config::parse("fleet.toml", &config).unwrap();
    let host = |name: &str| Host {
        iface_mac_known: true,
        this_server: Some(name.to_string()),
        shared: true,
        ..Host::default()
    };
    let a2 = Snapshot::build_to_run(&loaded, &host("a2")).unwrap();
    let su = a2.soft_unicast.as_ref().unwrap();
    assert_eq!(su.backbone, std::net::Ipv4Addr::new(10, 9, 0, 12));
    let frame = |dport: u16| {
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 1])
            .ipv4([192, 0, 2, 77], [198, 18, 200, 1], 60)
            .udp(7777, dport)
    };
    let mut bytes = Vec::new();
    frame(4000).write(&mut bytes, b"to a2").unwrap();
    let fate = |snap: Snapshot| {
        let snap = std::sync::Arc::new(snap);
        let io = transitd::io::memory::MemoryIo::new(vec![bytes.clone()], snap.frame_size);
        let mut worker = transitd::worker::Worker::new(io, snap.clone());
        worker.run_to_end(Some(snap.eth)).unwrap();
        fates(&worker.into_parts().0.verdicts)
    };
    assert_eq!(fate(a2), [format!("pass:{}", PassReason::EgressLocal.name())]);
    let a1 = Snapshot::build_to_run(&loaded, &Host { iface_mac_known: true, ..Host::default() }).unwrap();
    assert_eq!(fate(a1), [format!("tx:{}", TxReason::Backbone.name())]);

    let refused = Snapshot::build_to_run(&loaded, &host("a9")).err().unwrap().to_string();
    assert!(refused.starts_with("fleet.toml:12:15: --this-server `a9` is not a [[soft_unicast.server]]"), "{refused}");
    // A shared configuration (etcd's) names some server: without the flag, refused, as
    // every server of the fleet would take that one's slices and backbone address.
    let unnamed = Host { iface_mac_known: true, shared: true, ..Host::default() };
    let refused = Snapshot::build_to_run(&loaded, &unnamed).err().unwrap().to_string();
    assert!(refused.contains("run needs --this-server NAME"), "{refused}");
}

/// A fleet's shared configuration (an etcd prefix) may leave `this_server` out, each server
/// giving its own with `--this-server`: it was refused ("missing key `this_server`") whatever
/// the flag said, so the shared key named some server that every server overrode. A server
/// given no name is told so at `[soft_unicast]`; `check-config --this-server NAME` checks it
/// as that server's `run` takes it; what is the fleet's (`plan`, `geofeed`, `bgp show`)
/// needs no name; a replay, which is one server's, does.
#[test]
fn a_shared_configuration_leaves_this_server_to_each_server() {
    use transitd::snapshot::{Host, Snapshot};
    let (config, _) = fleet();
    let shared = config.replacen("this_server = \"a1\"\n", "", 1);
    assert_ne!(shared, config);
    let loaded = transitd::config::parse("fleet.toml", &shared).unwrap();
    let host = |name: Option<&str>| Host {
        iface_mac_known: true,
        this_server: name.map(str::to_string),
        shared: true,
        ..Host::default()
    };
    let a2 = Snapshot::build_to_run(&loaded, &host(Some("a2"))).unwrap();
    let su = a2.soft_unicast.as_ref().unwrap();
    assert_eq!(su.backbone, std::net::Ipv4Addr::new(10, 9, 0, 12));
    assert_eq!(su.owners.servers[usize::from(su.this_server)], "a2");
    let unnamed = Snapshot::build_to_run(&loaded, &host(None)).err().unwrap().to_string();
    assert!(unnamed.starts_with("fleet.toml:11:1: [soft_unicast] names no this_server"), "{unnamed}");
    // Said once: not again as a shared configuration naming some server's.
    assert!(unnamed.contains("run --this-server NAME") && !unnamed.contains("comes from the fleet's"), "{unnamed}");
    let refused = Snapshot::build_to_run(&loaded, &host(Some("a9"))).err().unwrap().to_string();
    assert!(refused.starts_with("fleet.toml:11:1: --this-server `a9` is not a [[soft_unicast.server]]"), "{refused}");
    assert!(Snapshot::build(&loaded).err().unwrap().to_string().contains("names no this_server"));
    let fleet_wide = Snapshot::build_for_fleet(&loaded).unwrap();
    assert_eq!(fleet_wide.soft_unicast.as_ref().unwrap().plan, su.plan);

    let dir = scratch_dir("shared-this-server");
    let file = dir.join("shared.toml");
    std::fs::write(&file, &shared).unwrap();
    let file = file.to_str().unwrap();
    let out = transitd(&["check-config", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no this_server"), "{out:?}");
    let out = transitd(&["check-config", "--this-server", "a2", file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("this server a2"), "{out:?}");
    let the_fleets: [&[&str]; 3] = [&["plan", "-c", file], &["geofeed", "-c", file], &["bgp", "show", "-c", file]];
    for args in the_fleets {
        let out = transitd(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The fleet of [`fleet`] with customer acme behind a probed tunnel to 198.51.100.1.
fn fleet_with_a_probed_tunnel() -> transitd::config::Loaded {
    fleet_with_a_probed_tunnel_over(1500)
}

/// [`fleet_with_a_probed_tunnel`] over a backbone of `backbone_mtu` bytes (1500, the
/// default, there).
fn fleet_with_a_probed_tunnel_over(backbone_mtu: u32) -> transitd::config::Loaded {
    let (config, _) = fleet();
    let config = config.replacen("[soft_unicast]\n", &format!("[soft_unicast]\nbackbone_mtu = {backbone_mtu}\n"), 1);
    let config = format!(
        "{config}\n[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
         [[customer.tunnel]]\nname = \"acme-gre\"\nremote = \"198.51.100.1\"\ninterface = \"10.213.0.0/31\"\n\
         [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"acme-gre\"\n"
    );
    transitd::config::parse("fleet.toml", &config).unwrap()
}

/// Server `name` of `loaded`, its probe tags under `key` (`run` draws one at random: each
/// server's are its own).
fn server(loaded: &transitd::config::Loaded, name: &str, key: u64) -> std::sync::Arc<transitd::snapshot::Snapshot> {
    use transitd::snapshot::{Host, Snapshot};
    let host = Host { iface_mac_known: true, this_server: Some(name.to_string()), ..Host::default() };
    let snap = std::sync::Arc::new(Snapshot::build_to_run(loaded, &host).unwrap());
    snap.health.set_key([key, key]);
    snap
}

/// `prober`'s probe `seq` of tunnel acme-gre as its prober sends it, returned by the router
/// ([`router_returns_probes`]).
fn router_returns(prober: &transitd::snapshot::Snapshot, seq: u32, dir: &Path, more: &str) -> Vec<Vec<u8>> {
    let t = prober.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let mut spill = transitd::pipeline::Spill::new(4, prober.frame_size);
    assert_eq!(
        transitd::health::spill_probe(prober, t, seq, Some(&prober.eth), &mut spill),
        transitd::health::Sent::Yes
    );
    router_returns_probes(&[spill.frames().next().unwrap().to_vec()], dir, more)
}

/// `probes` (frames a prober sent into tunnel acme-gre) returned by the router (scapy: each
/// probe's inner packet, `inners`, as it is, in GRE to the anycast address; `frames` the
/// first's, `inner`), then whatever `more` makes of `frames` (in `dir`).
fn router_returns_probes(probes: &[Vec<u8>], dir: &Path, more: &str) -> Vec<Vec<u8>> {
    let (sent, back) = (dir.join("probe.pcap"), dir.join("back.pcap"));
    write_pcap(&sent, probes);
    scapy_pcap(
        &back,
        &format!(
            "probes = rdpcap('{}')\n\
             inners = [p[GRE].payload for p in probes]\n\
             inner = inners[0]\n\
             ours = [p[IP].dst == '198.51.100.1' and i[ICMP].type == 0 for p, i in zip(probes, inners)]\n\
             assert all(ours), [p.show(dump=True) for p in probes]\n\
             back = lambda i: Ether(dst='02:00:00:00:00:01')/IP(src='198.51.100.1', dst='192.0.2.1')/GRE()/i\n\
             frames = [back(inner)]\n{more}",
            sent.display()
        ),
    );
    read_frames(&back).into_iter().map(|f| f.bytes).collect()
}

/// `frames` through a worker running `snap`: what it sent and counted.
fn run_on(
    snap: &std::sync::Arc<transitd::snapshot::Snapshot>,
    frames: Vec<Vec<u8>>,
) -> (transitd::io::memory::MemoryIo, transitd::pipeline::WorkerState) {
    let io = transitd::io::memory::MemoryIo::new(frames, snap.frame_size);
    let mut worker = transitd::worker::Worker::new(io, snap.clone());
    worker.run_to_end(Some(snap.eth)).unwrap();
    worker.into_parts()
}

/// Each backbone frame's outer source, destination and GRE key, as tshark reads them.
fn backbone_headers(file: &Path, frames: &[Vec<u8>]) -> String {
    write_pcap(file, frames);
    tshark(file, &["-T", "fields", "-E", "occurrence=f", "-e", "ip.src", "-e", "ip.dst", "-e", "gre.key"])
}

/// Each UDP datagram in `file` once tshark has reassembled its fragments: its `fields`, each
/// field's first occurrence (`ip.dst`: the outer destination).
fn reassembled_udp(file: &Path, fields: &[&str]) -> String {
    let mut args = vec!["-o", "ip.defragment:TRUE", "-Y", "udp", "-T", "fields", "-E", "occurrence=f"];
    for &field in fields {
        args.extend(["-e", field]);
    }
    tshark(file, &args)
}

/// Health probes in a fleet: a tunnel's router returns every server's probes to the anycast
/// address, so to whichever server is nearest it. There, a reply to another server's probe
/// (its payload names that server's backbone address) is relayed over the backbone to it,
/// which records it; it was dropped as `tunnel_interface`, and every server but the nearest
/// took the tunnel for down. scapy plays the router; a2 gets a1's reply, and a forged one
/// (another tag). tshark reads the relayed frame.
#[test]
fn a_probe_reply_reaching_another_server_is_relayed_to_the_one_that_probed() {
    let loaded = fleet_with_a_probed_tunnel();
    let (a1, a2) = (server(&loaded, "a1", 0xa1), server(&loaded, "a2", 0xa2));
    let t = a1.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-probe");
    // Its ICMP checksum made anew: one that does not verify is dropped before it is relayed.
    let forged = "forged = inner.copy(); forged[Raw].load = forged[Raw].load[:8] + bytes(8) + forged[Raw].load[16:]\n\
                  del forged[ICMP].chksum\n\
                  frames.append(back(forged))";
    let frames = router_returns(&a1, 7, &dir, forged);

    // At a2: relayed, both (a2 cannot tell a forged tag of a1's from a good one).
    let (io, _) = run_on(&a2, frames.clone());
    let relay = format!("tx:{}", TxReason::ProbeReplyRelayed.name());
    assert_eq!(fates(&io.verdicts), [relay.clone(), relay]);
    assert_eq!(a2.health.replied(t), 0, "not a2's probe");
    let relayed = dir.join("relayed.pcap");
    write_pcap(&relayed, &io.sent);
    let rows = tshark(
        &relayed,
        &["-T", "fields", "-E", "occurrence=a", "-e", "ip.src", "-e", "ip.dst", "-e", "gre.key", "-e", "icmp.type"],
    );
    let first = rows.lines().next().unwrap_or_default();
    // Backbone GRE from a2 to a1, key 0x5355 with 0x80 in its low byte, around the router's
    // reply to our side of the tunnel.
    assert_eq!(first, "10.9.0.12,10.213.0.1\t10.9.0.11,10.213.0.0\t0x00535580\t0", "{rows}");

    // The XDP programs hand both to the data plane (here, to a queue with no socket): the
    // router's reply at a2, and the relayed one at a1, which is backbone GRE for a1 that
    // the program does not decapsulate for the host.
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &a2).expect("program the XDP maps");
    assert_eq!(program.test_run(&frames[0]).expect("test run").0, transitd_bpf::XdpDecision::NoSocket);
    transitd::run::program_xdp(&program, &a1).expect("program the XDP maps");
    assert_eq!(program.test_run(&io.sent[0]).expect("test run").0, transitd_bpf::XdpDecision::NoSocket);

    // At a1: the relayed reply is recorded, the forged one is not.
    let (io, _) = run_on(&a1, io.sent.clone());
    let recorded = format!("consumed:{}", transitd::pipeline::ConsumeReason::HealthProbeReply.name());
    assert_eq!(fates(&io.verdicts), [recorded.clone(), DropReason::TunnelInterface.name().to_string()]);
    assert_eq!(a1.health.replied(t), 7);

    // a1 gets its own reply straight from the router: recorded, not relayed.
    let a1_direct = server(&loaded, "a1", 0xa1);
    let (io, _) = run_on(&a1_direct, frames[..1].to_vec());
    assert_eq!(fates(&io.verdicts), [recorded]);
    assert_eq!(a1_direct.health.replied(t), 7);
    let _ = std::fs::remove_dir_all(dir);
}

/// A reply reaching a server of another data centre than the prober's goes to the prober's
/// data centre's address (a server's own backbone address is for its data centre's servers
/// to reach, as return traffic has it), key low byte 0x81, and the server holding that
/// address relays it on (0x80) to the prober. Here a2 probes and b1 gets the reply: b1 sends
/// it to data centre a's address (a1's), a1 on to a2, which records it. A reply that is not
/// a probe's length (longer) is not relayed, and no relay counts as sent into the tunnel.
#[test]
fn a_probe_reply_reaching_another_data_centre_goes_through_the_probers() {
    let loaded = fleet_with_a_probed_tunnel();
    let (a1, a2, b1) = (server(&loaded, "a1", 1), server(&loaded, "a2", 2), server(&loaded, "b1", 3));
    let t = a2.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-probe-dc");
    let longer = "longer = inner.copy(); longer[Raw].load += b'pad'\n\
                  del longer[IP].len, longer[IP].chksum, longer[ICMP].chksum\n\
                  frames.append(back(longer))";
    let frames = router_returns(&a2, 9, &dir, longer);
    let relay = format!("tx:{}", TxReason::ProbeReplyRelayed.name());
    let relayed = dir.join("relayed.pcap");

    let (io, state) = run_on(&b1, frames);
    assert_eq!(fates(&io.verdicts), [relay.clone(), DropReason::TunnelInterface.name().to_string()]);
    assert_eq!(state.stats.tunnels[usize::from(t)].sent.packets, 0, "nothing went into the tunnel");
    let rows = backbone_headers(&relayed, &io.sent);
    assert_eq!(rows.trim(), "10.9.0.21\t10.9.0.11\t0x00535581", "to data centre a's address");

    let (io, _) = run_on(&a1, io.sent.clone());
    assert_eq!(fates(&io.verdicts), [relay]);
    assert_eq!(a1.health.replied(t), 0, "not a1's probe");
    let rows = backbone_headers(&relayed, &io.sent);
    assert_eq!(rows.trim(), "10.9.0.11\t10.9.0.12\t0x00535580", "on to a2 itself");

    let (io, _) = run_on(&a2, io.sent.clone());
    assert_eq!(
        fates(&io.verdicts),
        [format!("consumed:{}", transitd::pipeline::ConsumeReason::HealthProbeReply.name())]
    );
    assert_eq!(a2.health.replied(t), 9);
    let _ = std::fs::remove_dir_all(dir);
}

/// A server relays replies to another's probes only from the router's side of the tunnel
/// they came through, and per tunnel at most twice as many as the fleet's probes can ask for
/// (one each `timeout_ms`, 250 ms here, from each of the two other servers), in bursts of
/// twice `up_after` from each (a tunnel coming back is probed again at each answer): anyone
/// who could send as the router's GRE had every copy of a reply sent over the backbone to
/// the server it names, past the customer's egress rules. Here 200 copies of a1's reply
/// reach a2 at once, then one from another address of the customer's network.
#[test]
fn probe_replies_are_relayed_from_the_routers_side_within_the_probes_rate() {
    let loaded = fleet_with_a_probed_tunnel();
    let (a1, a2) = (server(&loaded, "a1", 0xa1), server(&loaded, "a2", 0xa2));
    let t = a1.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-probe-flood");
    let more = "frames += [back(inner)] * 199\n\
                other = inner.copy(); other[IP].src = '203.0.113.9'; del other[IP].chksum\n\
                frames.append(back(other))";
    let frames = router_returns(&a1, 7, &dir, more);
    assert_eq!(frames.len(), 201);
    let (io, _) = run_on(&a2, frames);
    let seen = fates(&io.verdicts);
    let count = |fate: &str| seen.iter().filter(|f| *f == fate).count();
    // Twice the `up_after` replies back to back that each of the two other servers' probes
    // of a tunnel coming back ask for: fewer, and the third of them was refused, a miss that
    // kept the tunnel down on the server whose replies this one relays.
    let burst = 2 * 2 * a2.health_config.up_after as usize;
    assert!((4..200).contains(&burst));
    assert_eq!(count(&format!("tx:{}", TxReason::ProbeReplyRelayed.name())), burst, "{seen:?}");
    assert_eq!(count(DropReason::ProbeReplyRelayLimited.name()), 200 - burst, "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some(DropReason::TunnelInterface.name()), "not the router's side");
    // What was relayed counts at a1 as before.
    let _ = run_on(&a1, io.sent.clone());
    assert_eq!(a1.health.replied(t), 7);
    let _ = std::fs::remove_dir_all(dir);
}

/// The server that probed records its own reply only from the router's side of the tunnel,
/// as it records a relayed one and as another server relays one: a probe returned from
/// another address of the customer's network (203.0.113.9, which the source check lets
/// through) was recorded when it reached a1 straight, while a2 did not relay it. The tunnel
/// came up on the server nearest the router alone, and a2's copy of a1's reply and a1's
/// own differed in what they proved. scapy plays the router.
#[test]
fn a_probe_reply_counts_only_from_the_routers_side_straight_or_relayed() {
    let loaded = fleet_with_a_probed_tunnel();
    let (a1, a2) = (server(&loaded, "a1", 0xa1), server(&loaded, "a2", 0xa2));
    let t = a1.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-probe-source");
    let other = "other = inner.copy(); other[IP].src = '203.0.113.9'; del other[IP].chksum\n\
                 frames = [back(other), back(inner)]";
    let frames = router_returns(&a1, 7, &dir, other);
    assert_eq!(frames.len(), 2);
    let refused = DropReason::TunnelInterface.name().to_string();
    let (io, _) = run_on(&a2, frames[..1].to_vec());
    assert_eq!(
        fates(&io.verdicts),
        std::slice::from_ref(&refused),
        "not relayed from elsewhere than the router's side"
    );
    let (io, _) = run_on(&a1, frames[..1].to_vec());
    assert_eq!(fates(&io.verdicts), [refused], "nor recorded straight");
    assert_eq!(a1.health.replied(t), 0);
    // The same probe returned from the router's side: recorded.
    let (io, _) = run_on(&a1, frames[1..].to_vec());
    let recorded = format!("consumed:{}", transitd::pipeline::ConsumeReason::HealthProbeReply.name());
    assert_eq!(fates(&io.verdicts), [recorded]);
    assert_eq!(a1.health.replied(t), 7);
    let _ = std::fs::remove_dir_all(dir);
}

/// A reply that cannot be relayed (here while the backbone's next hop is unresolved: a
/// batch without Ethernet addresses) spends none of the tunnel's relay budget: once the next
/// hop is known, the next replies are relayed, a whole burst of them. The token was spent
/// before the sending could fail, so a server at its start or after losing its neighbour
/// refused the replies that followed, each a miss to the server that probed.
#[test]
fn a_probe_reply_that_cannot_be_relayed_spends_no_relay_budget() {
    let loaded = fleet_with_a_probed_tunnel();
    let (a1, a2) = (server(&loaded, "a1", 0xa1), server(&loaded, "a2", 0xa2));
    let dir = scratch_dir("su-probe-unresolved");
    let batch = transitd::pipeline::BATCH_SIZE;
    let burst = 2 * 2 * a2.health_config.up_after as usize;
    assert!(burst < batch, "the first batch alone would spend the whole burst");
    let frames = router_returns(&a1, 7, &dir, &format!("frames += [back(inner)] * {}", batch + burst - 1));
    assert_eq!(frames.len(), batch + burst);
    let io = transitd::io::memory::MemoryIo::new(frames, a2.frame_size);
    let mut worker = transitd::worker::Worker::new(io, a2.clone());
    worker.poll(None).unwrap(); // the first batch, before the next hop is resolved
    worker.run_to_end(Some(a2.eth)).unwrap();
    let seen = fates(&worker.into_parts().0.verdicts);
    let unresolved = DropReason::NextHopUnresolved.name().to_string();
    assert_eq!(seen[..batch], vec![unresolved; batch], "{seen:?}");
    let relay = format!("tx:{}", TxReason::ProbeReplyRelayed.name());
    assert_eq!(seen[batch..], vec![relay; burst], "{seen:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// One look of `prober`, running `snap`, at the path MTUs at `now`: the path MTU probes it
/// sent (as a worker's spill holds them), and how many errors answers disproved.
fn path_mtu_look(
    prober: &mut transitd::health::Prober,
    snap: &transitd::snapshot::Snapshot,
    now: u64,
) -> (Vec<Vec<u8>>, u64) {
    let mut spill = transitd::pipeline::Spill::new(transitd::pipeline::SPILL_SLOTS, snap.frame_size);
    let probe = |t, seq, mtu| transitd::health::spill_path_mtu_probe(snap, t, seq, mtu, Some(&snap.eth), &mut spill);
    let disproved = prober.path_mtus(snap, now, probe, |_, _| {});
    (spill.frames().map(<[u8]>::to_vec).collect(), disproved)
}

/// A path MTU probe's answer reaching another server than the prober is relayed to it as a
/// health probe's reply is, whole. A forged error held acme-gre to 528 bytes inside at a1,
/// whose prober sends the router a probe padded to the tunnel's `mtu` (1476), naming a1;
/// scapy plays the router, returning the probe's inner packet as it is to a2, which relays
/// it over a backbone of 1504 bytes (the answer and 28 of encapsulation); a1 records it and
/// raises the tunnel back. It was dropped at a2 as `tunnel_interface` (it named no sender,
/// and only a health probe's 56 bytes were relayed), and 528 stood at a1. The answer a byte
/// short is not relayed (not the length its payload says); one cut to 1000 bytes and
/// relabelled so is (a2 cannot tell a1's tag), and a1 refuses it (the tag covers the
/// length). tshark reads the relayed frames.
#[test]
fn a_path_mtu_probes_answer_reaching_another_server_is_relayed_whole() {
    const S: u64 = 1_000_000_000;
    let loaded = fleet_with_a_probed_tunnel_over(1504);
    let (a1, a2) = (server(&loaded, "a1", 0xa1), server(&loaded, "a2", 0xa2));
    let t = a1.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-path-mtu");
    let mut prober = transitd::health::Prober::default();
    prober.rebind(None, &a1);
    assert!(a1.health.lower_path_mtu(t, 528, S));
    let (probes, _) = path_mtu_look(&mut prober, &a1, 2 * S);
    assert_eq!(probes.iter().map(Vec::len).collect::<Vec<_>>(), [1514], "1476 bytes inside");
    let more = "short = inner.copy(); short[Raw].load = short[Raw].load[:-1]\n\
                del short.len, short.chksum, short[ICMP].chksum\n\
                cut = inner.copy(); load = cut[Raw].load\n\
                cut[Raw].load = load[:18] + (1000).to_bytes(2, 'big') + load[20:1000]\n\
                del cut.len, cut.chksum, cut[ICMP].chksum\n\
                frames += [back(short), back(cut)]";
    let frames = router_returns_probes(&probes, &dir, more);
    assert_eq!(frames.iter().map(Vec::len).collect::<Vec<_>>(), [1514, 1513, 1066]);

    let (io, _) = run_on(&a2, frames.clone());
    let relay = format!("tx:{}", TxReason::ProbeReplyRelayed.name());
    assert_eq!(fates(&io.verdicts), [relay.clone(), DropReason::TunnelInterface.name().to_string(), relay]);
    let relayed = dir.join("relayed.pcap");
    write_pcap(&relayed, &io.sent);
    let fields = ["frame.len", "ip.src", "ip.dst", "ip.len", "ip.checksum.status", "gre.key", "icmp.checksum.status"];
    let args = ["-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "occurrence=a"];
    let args: Vec<&str> = args.into_iter().chain(fields.iter().flat_map(|f| ["-e", *f])).collect();
    // Backbone GRE from a2 to a1 (key low byte 0x80) around the router's answer, all 1476
    // bytes of it; checksum status 1: good.
    assert_eq!(
        tshark(&relayed, &args),
        "1518\t10.9.0.12,10.213.0.1\t10.9.0.11,10.213.0.0\t1504,1476\t1,1\t0x00535580\t1\n\
         1070\t10.9.0.12,10.213.0.1\t10.9.0.11,10.213.0.0\t1056,1028\t1,1\t0x00535580\t1\n"
    );
    // Ethernet, outer IPv4 and GRE with its key (42 bytes), then the router's packet as it
    // left the router's GRE (38 bytes in).
    assert_eq!(io.sent[0][42..], frames[0][38..], "the answer, unchanged");

    let (io, _) = run_on(&a1, io.sent.clone());
    let recorded = format!("consumed:{}", transitd::pipeline::ConsumeReason::HealthProbeReply.name());
    assert_eq!(fates(&io.verdicts), [recorded, DropReason::TunnelInterface.name().to_string()]);
    assert_eq!(path_mtu_look(&mut prober, &a1, 3 * S), (vec![], 1), "the error disproved");
    assert_eq!(a1.health.path_mtu(t, 3 * S), None, "acme-gre's mtu, 1476, again");
    let _ = std::fs::remove_dir_all(dir);
}

/// A path MTU probe's answer spends the relay budget its tunnel's health probe replies do,
/// and is relayed only over a backbone that carries it whole. Over a `backbone_mtu` of 1503
/// bytes, one short of the 1476-byte answer and its 28 bytes of encapsulation, a2 drops it
/// as `backbone_mtu_exceeded` (cut in fragments it would reach a1's host, not its prober;
/// cut short it would prove nothing) and spends none of the budget: the whole burst of
/// health probe replies after it is relayed. Over 1504, the answer after such a burst is
/// `probe_reply_relay_limited`.
#[test]
fn a_path_mtu_probes_answer_is_relayed_within_the_relay_budget_and_the_backbones_mtu() {
    use transitd::health::Sent;
    let a1 = server(&fleet_with_a_probed_tunnel(), "a1", 0xa1);
    let t = a1.tunnels.iter().position(|t| t.name == "acme-gre").unwrap() as u16;
    let dir = scratch_dir("su-path-mtu-budget");
    let mut spill = transitd::pipeline::Spill::new(4, a1.frame_size);
    assert_eq!(transitd::health::spill_probe(&a1, t, 7, Some(&a1.eth), &mut spill), Sent::Yes);
    assert_eq!(transitd::health::spill_path_mtu_probe(&a1, t, 1, 1476, Some(&a1.eth), &mut spill), Sent::Yes);
    let probes: Vec<Vec<u8>> = spill.frames().map(<[u8]>::to_vec).collect();
    let over = |backbone_mtu| server(&fleet_with_a_probed_tunnel_over(backbone_mtu), "a2", 0xa2);
    let burst = 2 * 2 * a1.health_config.up_after as usize;
    // The answer, a burst of replies to the health probe, the answer again.
    let more = format!("frames = [back(inners[1])] + [back(inner)] * {burst} + [back(inners[1])]");
    let frames = router_returns_probes(&probes, &dir, &more);
    assert_eq!((frames[0].len(), frames[1].len()), (1514, 94));
    let relay = format!("tx:{}", TxReason::ProbeReplyRelayed.name());

    let (io, _) = run_on(&over(1503), frames[..=burst].to_vec());
    let exceeded = DropReason::BackboneMtuExceeded.name().to_string();
    assert_eq!(fates(&io.verdicts), [vec![exceeded], vec![relay.clone(); burst]].concat());

    let (io, _) = run_on(&over(1504), frames[1..].to_vec());
    let limited = DropReason::ProbeReplyRelayLimited.name().to_string();
    assert_eq!(fates(&io.verdicts), [vec![relay; burst], vec![limited]].concat());
    let _ = std::fs::remove_dir_all(dir);
}

/// Backbone GRE the XDP program and the pipeline once judged apart (a review found them):
/// - a fragment of GRE to this server's backbone address (the fleet sends none): the program
///   handed it to the data plane, which found no customer's and passed it back to the host
///   through the punt device; now the program passes it itself;
/// - whole backbone GRE from a server of the fleet whose outer length ends before its inner
///   packet does: the program stripped the outer headers and gave the host the inner packet
///   whole, which the pipeline drops as cut short; now it hands it to the data plane.
///
/// Each frame's decision in the kernel's test run, beside the pipeline's verdict.
#[test]
fn backbone_fragments_and_short_outer_packets_are_judged_alike() {
    use transitd_bpf::XdpDecision as X;
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-short-{}.pcap", std::process::id()));
    // Port 1500 of 198.18.200.1 is a1's, this server's.
    scapy_pcap(
        &file,
        "inner = IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=1500)/Raw(b'x' * 40)\n\
         gre = GRE(key_present=1, key=(0x5355 << 8) | 2)/inner\n\
         e = lambda ip: Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')/ip\n\
         first, later = fragment(IP(src='203.0.113.5', dst='10.9.0.11', id=9)/gre, fragsize=32)[:2]\n\
         short = IP(bytes(IP(src='10.9.0.12', dst='10.9.0.11')/gre))\n\
         short.len = 20 + 8 + 20; del short.chksum\n\
         whole = IP(src='10.9.0.12', dst='10.9.0.11')/gre\n\
         frames = [e(first), e(later), e(short), e(whole)]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    let decisions: Vec<X> = frames.iter().map(|f| program.test_run(f).expect("test run (needs root)").0).collect();
    let pass = format!("pass:{}", PassReason::NoCustomer.name());
    assert_eq!(
        fates(&verdicts),
        [
            pass.clone(),
            pass,
            DropReason::Truncated.name().to_string(),
            format!("pass:{}", PassReason::EgressLocal.name())
        ]
    );
    assert_eq!(decisions, [X::Passed, X::Passed, X::NoSocket, X::BackboneLocal]);
}

/// Backbone GRE from a server of the fleet in a shape the fleet never sends (outer IPv4
/// options, a source route among them; GRE with a checksum or a sequence number beside the
/// key), carrying return traffic this server owns: the XDP program decapsulates only the
/// fleet's shape and hands these to the data plane, which delivered them to the host
/// (`egress_local`, through the exception path, the source route and checksum unread); now it
/// drops them as `backbone_bad_header`. The fleet's own shape, the control, is delivered by
/// both. Each frame's decision in the kernel's test run, beside the pipeline's verdict.
#[test]
fn backbone_gre_in_a_shape_the_fleet_never_sends_is_not_delivered() {
    use transitd_bpf::XdpDecision as X;
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-shape-{}.pcap", std::process::id()));
    // Port 1500 of 198.18.200.1 is a1's, this server's; a2 sends it at hop 2.
    scapy_pcap(
        &file,
        "inner = IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=1500)/Raw(b'x' * 40)\n\
         key = (0x5355 << 8) | 2\n\
         e = lambda opts, g: Ether(src='02:00:00:00:00:fe', dst='02:00:00:00:00:01')/IP(src='10.9.0.12', dst='10.9.0.11', options=opts)/g/inner\n\
         frames = [e([], GRE(key_present=1, key=key)), e([IPOption_RR()], GRE(key_present=1, key=key)),\n\
         \x20   e([IPOption_NOP()] * 4, GRE(key_present=1, key=key)),\n\
         \x20   e([IPOption_LSRR(routers=['10.9.0.99'])], GRE(key_present=1, key=key)),\n\
         \x20   e([], GRE(chksum_present=1, key_present=1, key=key)),\n\
         \x20   e([], GRE(seqnum_present=1, key_present=1, key=key, seqence_number=1))]",
    );
    let frames: Vec<Vec<u8>> = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(frames.len(), 6);
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    let decisions: Vec<X> = frames.iter().map(|f| program.test_run(f).expect("test run (needs root)").0).collect();
    assert_eq!(decisions, [X::BackboneLocal, X::NoSocket, X::NoSocket, X::NoSocket, X::NoSocket, X::NoSocket]);
    let delivered = format!("pass:{}", PassReason::EgressLocal.name());
    let bad = DropReason::BackboneBadHeader.name().to_string();
    assert_eq!(fates(&verdicts), [delivered, bad.clone(), bad.clone(), bad.clone(), bad.clone(), bad]);
}

/// Backbone GRE from a server of the fleet with another key (a `backbone_key` change
/// rolling out) or no hop is counted apart from GRE of unknown origin.
#[test]
fn backbone_gre_with_another_key_is_told_from_unknown_sources() {
    let (config, _) = fleet();
    let file = std::env::temp_dir().join(format!("transitd-su-key-{}.pcap", std::process::id()));
    scapy_pcap(
        &file,
        "inner = IP(src='192.0.2.77', dst='198.18.200.1')/UDP(sport=7777, dport=1500)/Raw(b'x')\n\
         e = lambda src, key: Ether(dst='02:00:00:00:00:01')/IP(src=src, dst='10.9.0.11')/GRE(key_present=1, key=key)/inner\n\
         frames = [e('10.9.0.21', (0x5356 << 8) | 1), e('10.9.0.21', (0x5355 << 8) | 3), e('10.66.0.1', (0x5355 << 8) | 1), e('10.9.0.21', (0x5355 << 8) | 1)]",
    );
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    let (v, _, _) = verdicts_of(&config, frames);
    let (bad_key, unknown) = (DropReason::BackboneBadKey.name(), DropReason::BackboneUnknownSource.name());
    assert_eq!(fates(&v), [bad_key, bad_key, unknown, &format!("pass:{}", PassReason::EgressLocal.name())]);
}

/// The XDP program and the pipeline agree on whose return traffic is whose, so that replay
/// shows what a live edge does: on 3000 frames scapy builds at random (to the egress
/// addresses, straight or over the backbone from the fleet's servers and from no server,
/// ports in every slice, ICMP echo replies and errors quoting our packets, first and later
/// fragments, options, AH, frames cut short or with a byte changed;
/// `data/egress_frames.py`), the kernel's test run of the program with the tables `run`
/// gives it beside the pipeline's verdict, in arrival order (both follow a datagram's
/// fragments by its first):
/// - what the pipeline delivers here, the program passes to the host itself (straight, or
///   decapsulated from the backbone), and what else the pipeline passes (no customer's), it
///   passes too: nothing is handed over to be punted back;
/// - what the pipeline sends over the backbone or drops, the program hands over (here: to a
///   queue with no socket), but for what the host discards as well
///   ([`DISCARDED_BY_THE_HOST`]);
/// - what the program passes as this server's, the pipeline delivers too (or drops as the
///   host would).
///
/// The sanity checks are all on and a `[[dos.rule]]` drops memcached's UDP
/// ([`fleet_judging`]); after the random frames come frames they drop where they apply
/// ([`judged_frames`]), to ports this server owns and to others'. The program hands this
/// server's to the host unread, and so must the pipeline (which dropped them by name); the
/// others' it hands over, and the pipeline drops them by name, or sends the later fragment
/// where its first went (it passed it as its data centre's, the first not remembered).
///
/// But for a later fragment whose datagram's first the pipeline dropped for a bad transport
/// header or malformed IPv4 options: the program, which checks the rest of the IP header
/// but not those, took its owner from it,
/// and the two follow different records; the datagram is lost either way. None came up in
/// these frames (a damaged IP header, which the program checks, came up 10 times in 3000
/// before it did); the test allows under 10.
#[test]
fn the_xdp_program_and_the_pipeline_agree_on_whose_return_traffic_it_is() {
    use transitd_bpf::XdpDecision as X;
    let config = fleet_judging();
    let file = std::env::temp_dir().join(format!("transitd-egress-judged-{}.pcap", std::process::id()));
    scapy_pcap(&file, &format!("NFRAMES = 3000\n{}", include_str!("data/egress_frames.py")));
    let mut frames = damaged(tagged(read_frames(&file).into_iter().map(|f| f.bytes).collect(), 8100), 5355);
    let _ = std::fs::remove_file(&file);
    let from = frames.len();
    frames.extend(judged_frames());
    let program = transitd_bpf::XdpProgram::load().expect("load the XDP program (needs root)");
    let (verdicts, _, snap) = verdicts_of(&config, frames.clone());
    transitd::run::program_xdp(&program, &snap).expect("program the XDP maps");
    use DropReason as D;
    let local = Verdict::Pass(PassReason::EgressLocal);
    let mut seen = std::collections::BTreeMap::new();
    let (mut first_dropped, mut after_a_dropped_first) = (std::collections::HashSet::new(), 0);
    let mut decisions = Vec::with_capacity(frames.len());
    for (i, (frame, verdict)) in frames.iter().zip(&verdicts).enumerate() {
        let (decision, _) = program.test_run(frame).expect("test run (needs root)");
        decisions.push(decision);
        let (kind, reason) = (verdict.kind(), verdict.reason());
        match return_fragment(frame) {
            Some((datagram, true)) if first_read_apart(verdict) => drop(first_dropped.insert(datagram)),
            Some((datagram, true)) => drop(first_dropped.remove(&datagram)),
            Some((datagram, false)) if first_dropped.contains(&datagram) => {
                after_a_dropped_first += 1;
                continue;
            }
            _ => {}
        }
        let fine = match decision {
            X::EgressLocal | X::BackboneLocal => *verdict == local || discarded_by_the_host(frame, verdict, &frames),
            X::NoSocket => kind != "pass",
            X::Passed => (kind == "pass" && *verdict != local) || discarded_by_the_host(frame, verdict, &frames),
            _ => false,
        };
        assert!(
            fine,
            "frame {} ({:02x?}): the program {}, the pipeline {kind}:{reason}",
            i + 1,
            frame,
            decision.name()
        );
        *seen.entry((decision.name(), kind, reason)).or_insert(0u32) += 1;
    }
    assert!(after_a_dropped_first < 10, "{after_a_dropped_first} fragments followed a dropped first");
    // Each case the frames are made for came up (else the test would hold nothing).
    let at_least = |decision: X, kind: &str, reason: &str| {
        let n = seen.get(&(decision.name(), kind, reason)).copied().unwrap_or(0);
        assert!(n >= 10, "{} {kind}:{reason} came up {n} times: {seen:?}", decision.name());
    };
    at_least(X::EgressLocal, "pass", PassReason::EgressLocal.name());
    at_least(X::BackboneLocal, "pass", PassReason::EgressLocal.name());
    at_least(X::NoSocket, "tx", TxReason::Backbone.name());
    for reason in [D::BackboneLoop, D::BackboneUnknownSource, D::BackboneBadKey, D::BackboneNotEgress] {
        at_least(X::NoSocket, "drop", reason.name());
    }
    at_least(X::Passed, "pass", PassReason::NoCustomer.name());
    // The judged frames: a1's own passed by both, the others' handed over by the program.
    assert_eq!(fates(&verdicts[from..]), judged_fates());
    let handed_over = [[X::EgressLocal; 12], [X::NoSocket; 12]].concat();
    assert_eq!(decisions[from..], handed_over[..]);
}

/// a1 of the fleet with every sanity check on (bogon sources by a list of the test's own:
/// the frames' peers are documentation addresses, which the built-in list holds) and a
/// `[[dos.rule]]` that drops UDP from memcached's port.
fn fleet_judging() -> String {
    let (text, _) = fleet();
    let text = text.replacen("bogons = false", "bogons = true\nbogon_sources = [\"100.64.0.0/10\"]", 1);
    assert!(text.contains("bogon_sources"), "soft-unicast.toml turns bogons off");
    text + "\n[[dos.rule]]\nname = \"memcached\"\nmatch = \"udp.srcport == 11211\"\naction = \"drop\"\n"
}

/// `judged_frames` of `data/egress_frames.py`: six frames [`fleet_judging`] drops where its
/// checks apply (land, SYN+FIN, a tiny first fragment, a later fragment of its datagram, a
/// bogon source, memcached's UDP) to each of 198.18.200.1's ports 1500 (a1's) and 80
/// (reserved: its data centre's, so a1's too), 4000 (a2's), and data centre b's address.
fn judged_frames() -> Vec<Vec<u8>> {
    let file = std::env::temp_dir().join(format!("transitd-egress-judged-only-{}.pcap", std::process::id()));
    scapy_pcap(&file, &format!("NFRAMES = 0\n{}\nframes = judged", include_str!("data/egress_frames.py")));
    let frames = read_frames(&file).into_iter().map(|f| f.bytes).collect();
    let _ = std::fs::remove_file(&file);
    frames
}

/// What a1 makes of [`judged_frames`]: its own goes to its host; the others' is dropped by
/// the check or rule that applies, but the later fragment, which goes where its first went
/// (the first's owner remembered, as the XDP program remembers it, though the first was
/// dropped).
fn judged_fates() -> Vec<String> {
    use DropReason as D;
    let delivered = format!("pass:{}", PassReason::EgressLocal.name());
    let backbone = format!("tx:{}", TxReason::Backbone.name());
    let [land, flags, tiny, bogon, rule] =
        [D::Land, D::BadTcpFlags, D::TinyFragment, D::BogonSource, D::DosRule].map(D::name);
    let forwarded = [land, flags, tiny, backbone.as_str(), bogon, rule];
    let fates = [&[delivered.as_str(); 12][..], &forwarded[..], &forwarded[..]].concat();
    fates.into_iter().map(String::from).collect()
}

/// Return traffic this server owns goes to its host before the sanity checks and the global
/// DoS rules see it, as the XDP program hands it over (unread; the agreement with the
/// program is held in `the_xdp_program_and_the_pipeline_agree_on_whose_return_traffic_it_is`,
/// which needs root); what another server or data centre owns meets them. Alike in the
/// frame-at-a-time pipeline (`match --config`) and the batch one (`replay`, `run`). (Both
/// used to drop a1's own as `land`, `bad_tcp_flags`, `tiny_fragment`, `bogon_source` and
/// `dos_rule`, and pass the later fragment of a2's datagram whose first they dropped.)
#[test]
fn return_traffic_this_server_owns_meets_no_sanity_check_or_dos_rule() {
    let frames = judged_frames();
    let (batch, _, snap) = verdicts_of(&fleet_judging(), frames.clone());
    let mut limits = transitd::pipeline::Limits::new(&snap);
    let one_by_one: Vec<Verdict> =
        frames.iter().enumerate().map(|(i, f)| verdict_with(&snap, &mut limits, f, 1_000 * i as u64)).collect();
    assert_eq!(fates(&batch), judged_fates(), "replay");
    assert_eq!(fates(&one_by_one), judged_fates(), "match --config");
}

/// A first fragment the pipeline drops for what the XDP program does not read before it
/// records the datagram's owner: the transport header, and the form of IPv4 options under
/// a checksum that verifies (the rest of the IP header it checks as the pipeline does).
fn first_read_apart(verdict: &Verdict) -> bool {
    use DropReason as D;
    matches!(verdict, Verdict::Drop(D::BadTcpHeader | D::BadUdpHeader | D::BadIpExtHeader | D::BadIpv4Header))
}

/// The datagram (RFC 791's four fields: source, destination, identification, protocol) of
/// an IPv4 fragment, straight or inside backbone GRE to a1, behind VLAN tags or not, and
/// whether it is the first.
fn return_fragment(frame: &[u8]) -> Option<([u8; 11], bool)> {
    let mut at = 12;
    while matches!(frame.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xa8] | [0x91, 0x00])) {
        at += 4;
    }
    let mut ip = frame.get(at + 2..).filter(|_| frame.get(at..at + 2) == Some(&[0x08, 0x00]))?;
    if ip.get(9) == Some(&47) && ip.get(16..20) == Some(&[10, 9, 0, 11]) {
        let gre = ip.get(usize::from(ip[0] & 0xf) * 4..)?;
        let options = (gre.first()? >> 4).count_ones() as usize; // C, R, K, S
        ip = gre.get(4 + 4 * options..)?;
    }
    let flags_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
    if flags_offset & 0x3fff == 0 {
        return None;
    }
    let mut datagram = [0u8; 11];
    datagram[..8].copy_from_slice(ip.get(12..20)?);
    datagram[8..10].copy_from_slice(ip.get(4..6)?);
    datagram[10] = *ip.get(9)?;
    Some((datagram, flags_offset & 0x1fff == 0))
}

/// `plan --out -` writes the plan to standard output (the report of what moved to standard
/// error), as `replay --out -` does, where it wrote a file named `-`; what it writes is the
/// plan `plan --out FILE` writes.
#[test]
fn plan_out_dash_is_standard_output() {
    let config = root().join("examples/soft-unicast/a1.toml");
    let dir = scratch_dir("plan-dash");
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_transitd"))
            .args(["plan", "-c", config.to_str().unwrap(), "-o", out])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let dash = run("-");
    assert_eq!(dash.status.code(), Some(0), "{}", String::from_utf8_lossy(&dash.stderr));
    assert!(!dir.join("-").exists(), "a file named -");
    let file = run("plan.json");
    assert_eq!(file.status.code(), Some(0));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&dash.stdout).expect("the plan as JSON on stdout");
    assert_eq!(printed, written);
    assert!(!dash.stderr.is_empty(), "the report on stderr");
    std::fs::remove_dir_all(&dir).unwrap();
}
