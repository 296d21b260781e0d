//! Configuration errors name the exact `file:line:col` and the reason; a file with any error
//! yields no snapshot.

use transitd::config;
use transitd::snapshot::Snapshot;

/// The errors of the configuration file at `path`, each as printed.
fn errors_in(path: &std::path::Path) -> Vec<String> {
    match Snapshot::from_path(path) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// The warnings of configuration `text` (as file `w.toml`), each as printed, those that
/// mention `about` (all of them for "").
fn warnings_about(text: &str, about: &str) -> Vec<String> {
    let snap = Snapshot::build(&config::parse("w.toml", text).unwrap()).unwrap();
    snap.warnings.iter().map(ToString::to_string).filter(|w| w.contains(about)).collect()
}

fn errors(text: &str) -> Vec<String> {
    let loaded = match config::parse("bad.toml", text) {
        Ok(l) => l,
        Err(e) => return e.0.iter().map(|e| e.to_string()).collect(),
    };
    match Snapshot::build(&loaded) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// Configuration `text` written as `transitd.toml` in a directory of the calling test's own
/// (`transitd-<name>-<pid>` in the temporary directory), where the test writes its list
/// files beside it: the directory and the configuration's path.
fn config_in_own_dir(name: &str, text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("transitd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("transitd.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

#[test]
fn every_semantic_error_is_reported_at_its_position() {
    // Columns count characters from 1; each error's position is the start of the value.
    let text = r#"[server]
anycast = "192.0.2.300"

[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24", "203.0.113.1/24", "10.0.0.0/33"]
[[customer.tunnel]]
name = "gre1"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/25"
tunnel = "gre9"
[[customer.route]]
prefix = "192.168.0.0/16"
tunnel = "gre1"

[[customer]]
name = "acme"
prefixes = ["203.0.113.128/25"]
[[customer.tunnel]]
name = "gre1"
remote = "198.51.100.2"
[customer.firewall]
[[customer.firewall.rule]]
match = "tcp.port in {80 443}"
action = "accept"
"#;
    assert_eq!(
        errors(text),
        [
            "bad.toml:2:11: anycast address `192.0.2.300` is not an IPv4 address",
            "bad.toml:6:31: bad CIDR `203.0.113.1/24`: host bits are set (the network is 203.0.113.0/24)",
            "bad.toml:6:49: bad CIDR `10.0.0.0/33`: prefix length `33` is not in 0..=32",
            "bad.toml:12:10: unknown tunnel `gre9`",
            "bad.toml:14:10: route 192.168.0.0/16 is outside customer `acme`'s prefixes",
            "bad.toml:18:8: duplicate customer name `acme` (first defined at bad.toml:5:8)",
            "bad.toml:19:13: prefix 203.0.113.128/25 of customer `acme` overlaps 203.0.113.0/24 of customer `acme` (at bad.toml:6:13)",
            "bad.toml:21:8: duplicate tunnel name `gre1` (first defined at bad.toml:8:8)",
            "bad.toml:25:26: rule `rule-1`: \"443\" was unexpected in this context. Set members are separated by commas, as in Wireshark 4.0: {80, 443}.\n        tcp.port in {80 443}\n                        ^~~",
        ]
    );
}

/// A name used twice is said where it is used again, with where it was first defined, for
/// lists and buckets as for customers and tunnels; a range written backwards in a list is
/// said to be one, not called unreadable.
#[test]
fn duplicate_lists_and_buckets_say_where_the_first_is() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[list]]
name = "ports"
items = ["80", "8000..8100"]
[[list]]
name = "ports"
items = ["443"]
[[list]]
name = "backwards"
items = ["22", "9..1"]
[[dos.bucket]]
name = "syn"
key = "source"
rate = 10
[[dos.bucket]]
name = "syn"
key = "destination"
rate = 20
"#;
    assert_eq!(
        errors(text),
        [
            "bad.toml:7:8: duplicate list name `ports` (first defined at bad.toml:4:8)",
            "bad.toml:11:16: list `backwards`: \"9..1\" is a range whose start is past its end; write it low..high",
            "bad.toml:17:8: duplicate bucket name `syn` (first defined at bad.toml:13:8)",
        ]
    );
}

/// Each bound in an error is the one the key takes: `grace_period` takes 0 (no grace).
#[test]
fn tcp_protection_times_name_their_own_range() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[tcp_protection]\ngrace_period = 86401\nidle_timeout = 0\n";
    assert_eq!(
        errors(text),
        [
            "bad.toml:4:16: grace_period 86401 is not in 0..=86400 seconds",
            "bad.toml:5:16: idle_timeout 0 is not in 1..=86400 seconds",
        ]
    );
    assert!(errors(&text.replace("86401", "0").replace("idle_timeout = 0", "idle_timeout = 60")).is_empty());
}

#[test]
fn an_error_inside_a_multi_line_rule_is_reported_at_its_own_line() {
    // TOML drops the newline right after a multi-line string's opening quotes; the position
    // is the fault's own line and column in the file, in either kind of multi-line string.
    for quote in ["'''", "\"\"\""] {
        let text = format!(
            "[server]\nanycast = \"192.0.2.1\"\n\n[[dos.rule]]\nname = \"long\"\nmatch = {quote}\n  ip.proto == 17\n  and udp.port in {{53 123}}\n  and ip.ttl < 5{quote}\naction = \"drop\"\n"
        );
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("bad.toml:8:23: rule `long`: \"123\" was unexpected"), "{quote}: {e:?}");
    }
}

/// Escapes in a basic string stand for fewer bytes than are written: the fault is still
/// reported at its own line and column in the file (it was the string's start), which is
/// where the file's text has it (found by searching the line, not by reading TOML).
#[test]
fn an_error_after_escapes_in_a_rule_is_reported_at_its_own_column() {
    let rules = [
        r#""udp.payload == \"\x41\" and tcp.dstport in {20..70000}""#,
        r#""udp.payload contains \"\u00e9\" and ip.ttl == 70000""#,
        r#""tcp.payload matches \"a\\\\d\" and tcp.dstport == 70000""#,
        "\"\"\"\nudp.payload == \"\\t\" and \\\n   tcp.dstport == 70000\"\"\"",
    ];
    for rule in rules {
        let text = format!(
            "[server]\nanycast = \"192.0.2.1\"\n\n[[dos.rule]]\nname = \"r\"\nmatch = {rule}\naction = \"drop\"\n"
        );
        let (line, column) =
            text.lines().enumerate().find_map(|(n, l)| l.find("70000").map(|c| (n + 1, c + 1))).unwrap();
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{rule}: {e:?}");
        let at = format!("bad.toml:{line}:{column}: rule `r`: \"70000\" too big");
        assert!(e[0].starts_with(&at), "{rule}: {e:?}, not {at}");
    }
    // A fault first on the line after a line-ending backslash is on that line, not at the
    // backslash.
    let rule = "\"\"\"\nudp.payload == \"\\t\" and \\\n   70000 == 1\"\"\"";
    let text =
        format!("[server]\nanycast = \"192.0.2.1\"\n\n[[dos.rule]]\nname = \"r\"\nmatch = {rule}\naction = \"drop\"\n");
    let e = errors(&text);
    assert!(e.len() == 1 && e[0].starts_with("bad.toml:8:4: rule `r`: "), "{e:?}");
    // TOML leaves out only blanks and newlines after it: a character Unicode calls white
    // space (a no-break space, an ideographic one) is the value's, and a fault there is at
    // it (it was at the string's start).
    for blank in ['\u{a0}', '\u{3000}'] {
        let rule = format!("\"\"\"\nudp.port == 53 and \\\n  {blank}tcp.port == 1\"\"\"");
        let text = format!(
            "[server]\nanycast = \"192.0.2.1\"\n\n[[dos.rule]]\nname = \"r\"\nmatch = {rule}\naction = \"drop\"\n"
        );
        let e = errors(&text);
        assert!(e.len() == 1 && e[0].starts_with("bad.toml:8:3: rule `r`: "), "{blank:?}: {e:?}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_reported_by_position() {
    let unknown = "[server]\nanycast = \"192.0.2.1\"\nanycats = 1\n";
    let e = errors(unknown);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("bad.toml:3:1: unknown field `anycats`"), "{e:?}");

    let bad_action =
        "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"a\"\n[customer.firewall]\ndefault = \"allow\"\n";
    let e = errors(bad_action);
    assert!(
        e[0].starts_with("bad.toml:6:11: unknown variant `allow`, expected one of `accept`, `drop`, `rate-limit`"),
        "{e:?}"
    );

    let syntax = "[server]\nanycast = \"192.0.2.1\n";
    assert!(errors(syntax)[0].starts_with("bad.toml:2:"), "{:?}", errors(syntax));
}

/// A key or value one typo away from one that is expected is told which (the list alone
/// has sixteen keys in [server]); one further from every name is told the list only.
#[test]
fn a_typo_is_told_the_name_it_is_nearest() {
    let server = "[server]\nanycast = \"192.0.2.1\"\n";
    let firewall_default =
        |action: &str| format!("{server}[[customer]]\nname = \"a\"\n[customer.firewall]\ndefault = \"{action}\"\n");
    for (text, said) in [
        (
            format!("{server}anycats = 1\n"),
            "bad.toml:3:1: unknown field `anycats`: did you mean `anycast`? (expected one of `anycast`, ",
        ),
        (
            format!("{server}nexthop = \"10.0.0.1\"\n"),
            "bad.toml:3:1: unknown field `nexthop`: did you mean `next_hop`? (",
        ),
        (
            "[sever]\nanycast = \"192.0.2.1\"\n".to_string(),
            "bad.toml:1:2: unknown field `sever`: did you mean `server`? (",
        ),
        (
            firewall_default("rate_limit"),
            "bad.toml:6:11: unknown variant `rate_limit`: did you mean `rate-limit`? (expected one of `accept`, ",
        ),
        (format!("{server}mss = 1400\n"), "bad.toml:3:1: unknown field `mss`, expected one of `anycast`, "),
    ] {
        let e = errors(&text);
        assert!(e.len() == 1 && e[0].starts_with(said), "{text}\n{e:?}");
    }
}

/// A key no table expects, and no typo of a name its table holds, is told the table TOML
/// read it into: a key belongs to the last header above it, so one appended at the end of a
/// file, or meant for the customer but written under its rule, was told only the rule's
/// names, which do not say where it went.
#[test]
fn a_key_below_another_tables_header_is_told_the_table_it_is_read_into() {
    let server = "[server]\nanycast = \"192.0.2.1\"\n";
    let customer = "[[customer]]\nname = \"a\"\n[[customer.firewall.rule]]\nmatch = \"tcp\"\naction = \"accept\"\n";
    for (text, said) in [
        (
            format!("{server}{customer}prefixes = [\"203.0.113.0/24\"]\n"),
            "bad.toml:8:1: unknown field `prefixes`, expected one of `name`, `match`, `action`, `bucket`, `mode`: \
             it is read as a key of `[[customer.firewall.rule]]` (line 5), the last table header above it",
        ),
        (format!("{server}name = \"a\"\n"), "bad.toml:3:1: unknown field `name`, expected one of `anycast`, "),
        (
            format!("{server}[[customer]]\nname = \"a\"\n[customer.firewall]\ndefault = \"drop\"\nmss = 1\n"),
            "bad.toml:7:1: unknown field `mss`, expected `default` or `rule`: it is read as a key of \
             `[customer.firewall]` (line 5), the last table header above it",
        ),
    ] {
        let e = errors(&text);
        assert!(e.len() == 1 && e[0].starts_with(said), "{text}\n{e:?}");
    }
    let e = errors(&format!("{server}name = \"a\"\n"));
    assert!(e[0].ends_with("it is read as a key of `[server]` (line 1), the last table header above it"), "{e:?}");
    // Under a dotted key the table is still the header's: `firewall.bogus` below
    // `[[customer]]` was said to be read into `[[customer.firewall]]`, and `sanity.frobnicate`
    // below `[dos]` into `[dos.sanity]`, headers no line holds.
    let firewall = "[[customer]]\nname = \"a\"\nfirewall.default = \"drop\"\nfirewall.bogus = 1\n";
    let sanity = "[dos]\nsanity.frobnicate = 1\n";
    for (text, at, header) in [(firewall, "6:10", "[[customer]]"), (sanity, "4:8", "[dos]")] {
        let text = format!("{server}{text}");
        let e = errors(&text);
        let said = format!(": it is read as a key of `{header}` (line 3), the last table header above it");
        assert!(e.len() == 1 && e[0].starts_with(&format!("bad.toml:{at}: unknown field `")), "{text}\n{e:?}");
        assert!(e[0].ends_with(&said), "{text}\n{e:?}");
    }
    // A key of an inline table, or of a file without headers, is under none, and is not said
    // to be below one (they were said to be below `[[customer.tunnel]]` and `[server]`).
    let tunnel = "tunnel = [{ name = \"t\", remote = \"198.51.100.1\", bogus = 1 }]\n";
    let e = errors(&format!("{server}[[customer]]\nname = \"a\"\n{tunnel}"));
    assert!(e.len() == 1 && e[0].starts_with("bad.toml:5:50: unknown field `bogus`"), "{e:?}");
    assert!(!e[0].contains("read as a key"), "{e:?}");
    let e = errors("server.anycast = \"192.0.2.1\"\nserver.bogus = 1\n");
    assert!(e.len() == 1 && e[0].starts_with("bad.toml:2:8: unknown field `bogus`"), "{e:?}");
    assert!(!e[0].contains("read as a key"), "{e:?}");
    // A typo is told the name it is nearest, and a key of the top level no table.
    let e = errors(&format!("{server}{customer}acton = \"drop\"\n"));
    assert!(e[0].contains("did you mean `action`?") && !e[0].contains("read as a key"), "{e:?}");
    let e = errors(&format!("bogus = 1\n{server}"));
    assert!(e[0].starts_with("bad.toml:1:1: unknown field `bogus`") && !e[0].contains("read as a key"), "{e:?}");
}

/// An address written without quotes is no TOML value (toml reads a number, a time or a
/// date, and says "invalid float"): the error says to quote it, whichever kind it is, at the
/// address's first character (toml pointed at an IPv4 address's second dot, where its reading
/// of a float failed).
#[test]
fn an_address_without_quotes_is_told_to_be_quoted() {
    let customer = "[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\", 198.51.100.0/24]\n";
    for (text, address) in [
        ("[server]\nanycast = 192.0.2.1 # ours\n".to_string(), "192.0.2.1"),
        ("[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = 2001:db8::1\n".to_string(), "2001:db8::1"),
        ("[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = fe80::1\n".to_string(), "fe80::1"),
        ("[server]\nanycast = \"192.0.2.1\"\nmac = 02:00:00:00:00:01\n".to_string(), "02:00:00:00:00:01"),
        (format!("[server]\nanycast = \"192.0.2.1\"\n{customer}"), "198.51.100.0/24"),
    ] {
        let e = errors(&text);
        let line = text.lines().position(|l| l.contains(address)).unwrap() + 1;
        let col = text.lines().nth(line - 1).unwrap().find(address).unwrap() + 1;
        assert!(e.len() == 1 && e[0].starts_with(&format!("bad.toml:{line}:{col}: ")), "{text}\n{e:?}");
        assert!(e[0].ends_with(&format!(": an address is a string in TOML: write \"{address}\"")), "{text}\n{e:?}");
    }
}

#[test]
fn overlaps_across_customers_name_both() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "a"
prefixes = ["2001:db8::/32"]
[[customer]]
name = "b"
prefixes = ["2001:db8:1::/48"]
"#;
    assert_eq!(
        errors(text),
        [
            "bad.toml:8:13: prefix 2001:db8:1::/48 of customer `b` overlaps 2001:db8::/32 of customer `a` (at bad.toml:5:13)"
        ]
    );
}

/// Customers (name, prefixes) as a configuration with one prefix to a line (at its column
/// 1), and the errors a containment check of every pair against every other expects: each
/// at the prefix written later, naming the one written first.
fn nested_prefixes(customers: &[(&str, Vec<String>)]) -> (String, Vec<String>) {
    let mut text = String::from("[server]\nanycast = \"192.0.2.1\"\n");
    // (prefix, customer, line), in the order written.
    let mut written: Vec<(&str, &str, usize)> = Vec::new();
    for (name, prefixes) in customers {
        text += &format!("[[customer]]\nname = \"{name}\"\nprefixes = [\n");
        for p in prefixes {
            written.push((p.as_str(), *name, text.lines().count() + 1));
            text += &format!("\"{p}\",\n");
        }
        text += "]\n";
    }
    let mut expected = Vec::new();
    for (j, &(later, later_name, line)) in written.iter().enumerate() {
        for &(earlier, earlier_name, at) in &written[..j] {
            if holds(earlier, later) || holds(later, earlier) {
                expected.push(format!(
                    "bad.toml:{line}:1: prefix {later} of customer `{later_name}` overlaps {earlier} of customer \
                     `{earlier_name}` (at bad.toml:{at}:1)"
                ));
            }
        }
    }
    (text, expected)
}

/// Whether prefix `a` holds prefix `b` (each written as its network and length): one family,
/// `a` no longer, and as many of `b`'s first bits as `a`'s length are `a`'s.
fn holds(a: &str, b: &str) -> bool {
    let bits = |p: &str| -> (u32, u128, u32) {
        let (addr, len) = p.split_once('/').unwrap();
        let len: u32 = len.parse().unwrap();
        match addr.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) => (32, u32::from(a).into(), len),
            std::net::IpAddr::V6(a) => (128, u128::from(a), len),
        }
    };
    let ((width_a, addr_a, len_a), (width_b, addr_b, len_b)) = (bits(a), bits(b));
    width_a == width_b && len_a <= len_b && (addr_a ^ addr_b).checked_shr(width_a - len_a).unwrap_or(0) == 0
}

/// Every pair of customer prefixes one of which holds the other is an error, said at the
/// prefix written later: a prefix inside two nested ones is said inside each (c inside b
/// went unsaid when both were inside a, and 10.1.0.0/16 inside 10.0.0.0/8 when 0.0.0.0/0
/// held both). Expected from a check of every pair, on those and on random prefixes of both
/// families; copies of one prefix are each said against the first.
#[test]
fn every_pair_of_overlapping_customer_prefixes_is_said() {
    let owned = |ps: &[&str]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let mut cases = vec![
        vec![("a", owned(&["198.18.0.0/15"])), ("b", owned(&["198.18.0.0/16"])), ("c", owned(&["198.18.2.0/24"]))],
        vec![("a", owned(&["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"]))],
    ];
    // Distinct random prefixes inside 10.0.0.0/12 (/12 to /22) and 2001:db8::/32 (/32 to
    // /48), so that many nest; xorshift from a fixed seed.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut random: Vec<String> = Vec::new();
    while random.len() < 60 {
        let r = next();
        let prefix = if r & 1 == 0 {
            let len = 12 + (r >> 1) % 11;
            let addr = (0x0a00_0000 | ((r >> 8) as u32 & 0x000f_fc00)) & (u32::MAX << (32 - len));
            format!("{}/{len}", std::net::Ipv4Addr::from(addr))
        } else {
            let len = 32 + (r >> 1) % 17;
            let addr = ((0x2001_0db8_u128 << 96) | (u128::from((r >> 8) as u16) << 80)) & (u128::MAX << (128 - len));
            format!("{}/{len}", std::net::Ipv6Addr::from(addr))
        };
        if !random.contains(&prefix) {
            random.push(prefix);
        }
    }
    let names = ["a", "b", "c"];
    cases.push(
        names.iter().enumerate().map(|(k, n)| (*n, random.iter().skip(k).step_by(3).cloned().collect())).collect(),
    );
    for customers in &cases {
        let (text, mut expected) = nested_prefixes(customers);
        let mut said = errors(&text);
        said.sort();
        expected.sort();
        assert_eq!(said, expected, "{text}");
    }
    assert_eq!(nested_prefixes(&cases[0]).1.len(), 3);
    assert_eq!(nested_prefixes(&cases[1]).1.len(), 3);
    // The random prefixes nest deep: some prefix is said against three or more others.
    let expected = nested_prefixes(&cases[2]).1;
    let most = expected
        .iter()
        .map(|e| expected.iter().filter(|f| f.split(" overlaps").next() == e.split(" overlaps").next()).count())
        .max();
    assert!(expected.len() > 60 && most >= Some(3), "{expected:#?}");

    let copies =
        [("a", owned(&["10.0.0.0/8", "10.1.0.0/16"])), ("b", owned(&["10.0.0.0/8"])), ("c", owned(&["10.0.0.0/8"]))];
    assert_eq!(
        errors(&nested_prefixes(&copies).0),
        [
            "bad.toml:7:1: prefix 10.1.0.0/16 of customer `a` overlaps 10.0.0.0/8 of customer `a` (at bad.toml:6:1)",
            "bad.toml:12:1: prefix 10.0.0.0/8 of customer `b` overlaps 10.0.0.0/8 of customer `a` (at bad.toml:6:1)",
            "bad.toml:17:1: prefix 10.0.0.0/8 of customer `c` overlaps 10.0.0.0/8 of customer `a` (at bad.toml:6:1)",
        ]
    );
}

/// Egress ranges nested three deep: each pair is said, at the range written later (the
/// innermost was said inside the outermost alone).
#[test]
fn every_pair_of_overlapping_egress_ranges_is_said() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[soft_unicast]
this_server = "a1"
[[soft_unicast.data_centre]]
name = "a"
backbone = "10.9.0.11"
[[soft_unicast.server]]
name = "a1"
data_centre = "a"
backbone = "10.9.0.11"
[[soft_unicast.egress]]
prefix = "198.18.200.0/22"
data_centre = "a"
country = "GB"
[[soft_unicast.egress]]
prefix = "198.18.200.0/23"
data_centre = "a"
country = "GB"
[[soft_unicast.egress]]
prefix = "198.18.201.0/24"
data_centre = "a"
country = "GB"
"#;
    let mut said = errors(text);
    said.sort();
    assert_eq!(
        said,
        [
            "bad.toml:20:10: egress prefix 198.18.200.0/23 overlaps egress prefix 198.18.200.0/22",
            "bad.toml:24:10: egress prefix 198.18.201.0/24 overlaps egress prefix 198.18.200.0/22",
            "bad.toml:24:10: egress prefix 198.18.201.0/24 overlaps egress prefix 198.18.200.0/23",
        ]
    );
}

#[test]
fn tunnels_of_another_customer_cannot_be_routed_to() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "a"
prefixes = ["10.0.0.0/8"]
[[customer.tunnel]]
name = "ta"
remote = "198.51.100.1"
[[customer]]
name = "b"
prefixes = ["11.0.0.0/8"]
[[customer.route]]
prefix = "11.0.0.0/8"
tunnel = "ta"
"#;
    assert_eq!(errors(text), ["bad.toml:14:10: tunnel `ta` belongs to customer `a`, not `b`"]);
}

/// The peer end of a tunnel's inner network is an address the customer may send from: one
/// inside another customer's prefix, or one of ours, would let it send as them (review of
/// session 39: `9.9.9.0/31` inside customer b's 9.9.9.0/24 passed, and traffic from 9.9.9.1
/// came out of customer a's tunnel decapsulated). Its own prefixes are its own to use.
#[test]
fn a_tunnel_interface_is_no_one_elses_address() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "a"
prefixes = ["10.0.0.0/8"]
[[customer.tunnel]]
name = "ta"
remote = "198.51.100.1"
interface = "9.9.9.0/31"
[[customer.tunnel]]
name = "ta2"
remote = "198.51.100.3"
interface = "10.0.0.0/31"
[[customer.tunnel]]
name = "ta3"
remote = "198.51.100.4"
interface = "127.0.0.2/30"
[[customer]]
name = "b"
prefixes = ["9.9.9.0/24"]
[[customer.tunnel]]
name = "tb"
remote = "198.51.100.2"
interface = "192.0.2.0/31"
[[customer.tunnel]]
name = "tb2"
remote = "198.51.100.5"
interface = "10.0.0.1/31"
"#;
    assert_eq!(
        errors(text),
        [
            "bad.toml:9:13: tunnel `ta`'s interface `9.9.9.0/31`: our side, 9.9.9.0, is inside prefix 9.9.9.0/24 of \
             customer `b` (at bad.toml:20:13): the customer could send as that address",
            "bad.toml:17:13: tunnel `ta3`'s interface `127.0.0.2/30`: our side, 127.0.0.2, is not a host's address \
             (0/8, 127/8, 224/3)",
            "bad.toml:24:13: tunnel `tb`'s interface `192.0.2.0/31`: the peer, 192.0.2.1, is the anycast address",
            "bad.toml:28:13: tunnel `tb2`'s interface `10.0.0.1/31`: its inner network 10.0.0.0/31 is also tunnel \
             `ta2`'s (at bad.toml:13:13)",
        ]
    );
}

#[test]
fn the_bundled_example_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/acme.toml");
    Snapshot::from_path(&path).unwrap();
}

#[test]
fn check_config_exits_zero_on_good_and_one_on_bad_files() {
    let bin = env!("CARGO_BIN_EXE_transitd");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ok = std::process::Command::new(bin).arg("check-config").arg(root.join("examples/acme.toml")).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (1 customer, 1 tunnel, 2 firewall rules)"));

    let bad = std::env::temp_dir().join(format!("transitd-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "[server]\nanycast = \"192.0.2.1\"\nframe_size = 100\n").unwrap();
    let out = std::process::Command::new(bin).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It checks what `run` accepts, which needs a next hop (replay does not).
    let expected = [
        format!(
            "{}:1:1: [server] sets no next hop: `run` needs next_hop (an IP address) or next_hop_mac",
            bad.display()
        ),
        format!("{}:3:14: frame_size 100 is not in 256..=65536", bad.display()),
    ];
    assert_eq!(stderr.trim(), expected.join("\n"));
    let _ = std::fs::remove_file(bad);
}

#[test]
fn list_errors_name_the_member_and_where_it_is_written() {
    let (dir, config) = config_in_own_dir(
        "list-errors",
        r#"[server]
anycast = "192.0.2.1"

[[list]]
name = "feed"
file = "feed.txt"

[[list]]
name = "ports"
items = ["80", "2001:db8::1"]

[[list]]
name = "missing"
file = "nowhere.txt"

[[list]]
name = "v6_only"
items = ["2001:db8::/32"]

[[dos.rule]]
match = "tcp.port in $v6_only or tcp.port in $nope"
action = "drop"

[[list]]
name = "latin1"
file = "latin1.txt"

[[list]]
name = "unnamed"
file = ""
"#,
    );
    std::fs::write(dir.join("feed.txt"), "# feed\n192.0.2.0/24\n  10.0.0.1/8  # typo\n").unwrap();
    std::fs::write(dir.join("latin1.txt"), b"192.0.2.0/24\n198.51.100.0/24 # caf\xe9\n").unwrap();
    let errors = errors_in(&config);
    let file = config.display();
    let feed = dir.join("feed.txt");
    let feed = feed.display();
    let missing = dir.join("nowhere.txt");
    // The configuration's errors in order, then the list file's (not interleaved by line).
    assert_eq!(
        errors,
        [
            format!("{file}:10:16: list `ports`: \"2001:db8::1\": a list holds addresses or numbers, not both"),
            format!(
                "{file}:14:8: list `missing`: cannot read {}: No such file or directory (os error 2)",
                missing.display()
            ),
            format!(
                "{file}:21:22: rule `rule-1`: $v6_only holds no numbers, which tcp.port needs\n        tcp.port in $v6_only or tcp.port in $nope\n                    ^~~~~~~~"
            ),
            format!("{file}:30:8: list file is empty: name a file"),
            format!(
                "{feed}:3:3: list `feed`: \"10.0.0.1/8\" has host bits set beyond its prefix length; write the network address"
            ),
            // Its own file's line and column, as a configuration's bytes are named.
            format!("{}:2:22: list `latin1`: not UTF-8 text: an invalid byte", dir.join("latin1.txt").display()),
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Every bad member of a list is said at once, inline and in its file, as every bad prefix
/// of a customer is: a feed with three bad lines was refused at the first, fixed, refused at
/// the second, and so on, a reload each. A feed of thousands of bad lines says as many as a
/// report shows, then how many more.
#[test]
fn every_bad_list_member_is_said_not_only_the_first() {
    let (dir, config) = config_in_own_dir(
        "list-every-error",
        r#"[server]
anycast = "192.0.2.1"

[[list]]
name = "feed"
file = "feed.txt"

[[list]]
name = "ports"
items = ["80", "8o", "443", "9..1", "2001:db8::1", "10.0.0.1"]

[[list]]
name = "junk"
file = "junk.txt"
"#,
    );
    std::fs::write(
        dir.join("feed.txt"),
        "192.0.2.0/24\n10.0.0.1/8\n198.51.100.0/24\nfe80::1%eth0\n  9.9.9.9 8.8.8.8\n",
    )
    .unwrap();
    let bad_lines = 1000;
    std::fs::write(dir.join("junk.txt"), "junk\n".repeat(bad_lines)).unwrap();
    let errors = errors_in(&config);
    let file = config.display();
    let feed = dir.join("feed.txt");
    let feed = feed.display();
    let junk = dir.join("junk.txt");
    let junk = junk.display();
    let unreadable = |m: &str| format!("\"{m}\" is not an IPv4 or IPv6 address or network, a number, or a range a..b");
    let shown = transitd::limits::MAX_REPORTED_ERRORS;
    let mut expected = vec![
        format!("{file}:10:16: list `ports`: {}", unreadable("8o")),
        format!("{file}:10:29: list `ports`: \"9..1\" is a range whose start is past its end; write it low..high"),
        // Mixing is one mistake, said at the first address among numbers.
        format!("{file}:10:37: list `ports`: \"2001:db8::1\": a list holds addresses or numbers, not both"),
        format!("{file}:13:8: list `junk`: {} more members are refused", bad_lines - shown),
        format!(
            "{feed}:2:1: list `feed`: \"10.0.0.1/8\" has host bits set beyond its prefix length; write the network address"
        ),
        format!("{feed}:4:1: list `feed`: {}", unreadable("fe80::1%eth0")),
        format!("{feed}:5:3: list `feed`: {}", unreadable("9.9.9.9 8.8.8.8")),
    ];
    expected.extend((1..=shown).map(|line| format!("{junk}:{line}:1: list `junk`: {}", unreadable("junk"))));
    assert_eq!(errors, expected);
    let _ = std::fs::remove_dir_all(dir);
}

/// One bad member past the hundred said is "1 more member", not "1 more members".
#[test]
fn one_bad_member_past_those_said_is_one() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n\n[[list]]\nname = \"junk\"\nfile = \"junk.txt\"\n";
    let (dir, config) = config_in_own_dir("list-one-more", text);
    let shown = transitd::limits::MAX_REPORTED_ERRORS;
    std::fs::write(dir.join("junk.txt"), "junk\n".repeat(shown + 1)).unwrap();
    let errors = errors_in(&config);
    let _ = std::fs::remove_dir_all(dir);
    let said = format!("{}:5:8: list `junk`: 1 more member is refused", config.display());
    assert!(errors.contains(&said), "{errors:?}");
    assert_eq!(errors.len(), shown + 1, "{errors:?}");
}

#[test]
fn a_list_file_past_the_member_bound_is_refused_at_its_name() {
    // One more member than the bound, one character a line (counted as read, not collected
    // first: 64 MiB of such lines would be 33 million members).
    let text = "[server]\nanycast = \"192.0.2.1\"\n\n[[list]]\nname = \"many\"\nfile = \"many.txt\"\n";
    let (dir, config) = config_in_own_dir("list-bound", text);
    std::fs::write(dir.join("many.txt"), "1\n".repeat(transitd::limits::MAX_LIST_MEMBERS + 1)).unwrap();
    let errors = errors_in(&config);
    assert_eq!(errors, [format!("{}:5:8: list `many` has more than 4000000 members", config.display())]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A list file a Windows tool wrote starts with a byte order mark: the first member is the
/// address after it (it was refused as `"\u{feff}203.0.113.0/24"`, the mark unseen in the
/// message), and a fault's column is the one an editor shows.
#[test]
fn a_list_file_starting_with_a_byte_order_mark_reads_from_after_it() {
    let (dir, config) = config_in_own_dir(
        "list-bom",
        "[server]\nanycast = \"192.0.2.1\"\n\n[[list]]\nname = \"feed\"\nfile = \"feed.txt\"\n\n\
         [[list]]\nname = \"bad\"\nfile = \"bad.txt\"\n",
    );
    std::fs::write(dir.join("feed.txt"), "\u{feff}203.0.113.0/24\n198.51.100.7\n").unwrap();
    std::fs::write(dir.join("bad.txt"), "\u{feff}10.0.0.1/8\n").unwrap();
    let bad = dir.join("bad.txt");
    assert_eq!(
        errors_in(&config),
        [format!(
            "{}:1:1: list `bad`: \"10.0.0.1/8\" has host bits set beyond its prefix length; write the network address",
            bad.display()
        )]
    );
    std::fs::write(&bad, "\u{feff}10.0.0.0/8\n").unwrap();
    assert_eq!(errors_in(&config), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_plan_file_edited_by_hand_is_refused_at_its_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/soft-unicast");
    let dir = std::env::temp_dir().join(format!("transitd-plan-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(root.join("a1.toml")).unwrap();
    std::fs::write(dir.join("a1.toml"), &config).unwrap();
    // Owners for a customer's address (203.0.113.5) that no egress range holds.
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("plan.json")).unwrap()).unwrap();
    let owners = plan["owners"].as_object_mut().unwrap();
    let row = owners.values().next().unwrap().clone();
    owners.insert("3405803781".into(), row);
    std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();

    let bin = env!("CARGO_BIN_EXE_transitd");
    let out = std::process::Command::new(bin).arg("check-config").arg(dir.join("a1.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = config.lines().position(|l| l.starts_with("plan =")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("a1.toml:{line}:8: plan file"))
            && stderr.contains("203.0.113.5 is not an egress address of the spec"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_short_health_interval_bounds_the_default_timeout() {
    let build = |health: &str| {
        let text = format!("[server]\nanycast = \"192.0.2.1\"\n[health]\n{health}");
        let config = transitd::config::parse("t.toml", &text).unwrap();
        transitd::snapshot::Snapshot::build(&config).map(|s| s.health_config)
    };
    let h = build("interval_ms = 100\n").unwrap();
    assert_eq!((h.interval_ns, h.timeout_ns), (100_000_000, 100_000_000));
    let h = build("interval_ms = 1000\n").unwrap();
    assert_eq!(h.timeout_ns, 250_000_000, "the default where the interval is longer");
    let e = build("interval_ms = 100\ntimeout_ms = 200\n").unwrap_err().to_string();
    assert!(e.contains("t.toml:5:14: timeout_ms 200 is longer than interval_ms 100"), "{e}");
}

/// `timeout_ms` is 1 up to `interval_ms` (docs/configuration.md), and the range an error
/// states is the range taken. With `interval_ms = 100`, timeouts of 0 to 250 and either side
/// of an hour were tried: 1 to 100 are taken, and each other one is told 1..=100 or the
/// interval it is longer than, where 0 and 3600001 were told "not in 1..=3600000", a range
/// 101 to 3600000 are in and refused from. A refused `down_after` kept a timeout longer than
/// the interval from being said: its error came only once that was mended.
#[test]
fn a_health_timeout_out_of_range_is_told_the_range_taken() {
    let text = |health: &str| format!("[server]\nanycast = \"192.0.2.1\"\n[health]\ninterval_ms = 100\n{health}");
    let mut taken = Vec::new();
    for timeout in (0..=250).chain([3_600_000, 3_600_001]) {
        let not_in = format!("bad.toml:5:14: timeout_ms {timeout} is not in 1..=100 (interval_ms)");
        let longer = format!("bad.toml:5:14: timeout_ms {timeout} is longer than interval_ms 100");
        match &errors(&text(&format!("timeout_ms = {timeout}\n")))[..] {
            [] => taken.push(timeout),
            [said] => assert!(*said == not_in || *said == longer, "{said}"),
            said => panic!("{said:?}"),
        }
    }
    assert_eq!(taken, (1..=100).collect::<Vec<_>>());
    assert_eq!(
        errors(&text("timeout_ms = 200\ndown_after = 0\n")),
        [
            "bad.toml:5:14: timeout_ms 200 is longer than interval_ms 100",
            "bad.toml:6:14: down_after 0 is not in 1..=100",
        ]
    );
    // A refused interval bounds nothing; a timeout outside every interval's is still told.
    let text = |health: &str| format!("[server]\nanycast = \"192.0.2.1\"\n[health]\ninterval_ms = 5\n{health}");
    assert_eq!(
        errors(&text("timeout_ms = 0\n")),
        [
            "bad.toml:4:15: interval_ms 5 is not in 10..=3600000",
            "bad.toml:5:14: timeout_ms 0 is not in 1..=interval_ms",
        ]
    );
    assert_eq!(errors(&text("timeout_ms = 1000\n")), ["bad.toml:4:15: interval_ms 5 is not in 10..=3600000"]);
}

/// `[health] excused_max` is 0 (every unanswered probe a miss, as before there was one) to
/// 100, 3 unless written, and said where no tunnel is probed, as the other `[health]` keys are.
#[test]
fn a_health_excused_max_is_0_to_100() {
    let text = |health: &str| format!("[server]\nanycast = \"192.0.2.1\"\n[health]\n{health}");
    for taken in [0, 7, 100] {
        let loaded = config::parse("t.toml", &text(&format!("excused_max = {taken}\n"))).unwrap();
        assert_eq!(Snapshot::build(&loaded).unwrap().health_config.excused_max, taken);
    }
    let unwritten = config::parse("t.toml", &text("")).unwrap();
    assert_eq!(Snapshot::build(&unwritten).unwrap().health_config.excused_max, 3);
    assert_eq!(errors(&text("excused_max = 101\n")), ["bad.toml:4:15: excused_max 101 is not in 0..=100"]);
    assert_eq!(
        warnings_about(&text("excused_max = 0\n"), "no effect"),
        ["w.toml:4:15: [health] probes tunnels with an `interface`, and no tunnel has one: it has no effect"]
    );
}

#[test]
fn customer_prefixes_past_half_the_xdp_map_are_refused_at_the_first_one_over() {
    let max = transitd::limits::MAX_PREFIXES_PER_FAMILY;
    let prefixes: Vec<String> =
        (0..=max as u32).map(|i| format!("\"{}/32\"", std::net::Ipv4Addr::from(0x0a00_0000 + i))).collect();
    let text = format!(
        "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"big\"\nprefixes = [\n{}\n]\n",
        prefixes.join(",\n")
    );
    let e = errors(&text);
    // Line 5 opens the array; prefix k is on line 6 + k, and prefix `max` is the first over.
    let expected = format!("bad.toml:{}:1: more than {max} customer prefixes of this family", 6 + max);
    assert!(e.iter().any(|e| e.starts_with(&expected)), "{e:?}");
    assert!(
        errors(&text.replacen(&format!("{},\n", prefixes[0]), "", 1)).iter().all(|e| !e.contains("customer prefixes"))
    );
}

#[test]
fn soft_unicast_errors_point_at_the_key_that_is_wrong() {
    let base = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[soft_unicast]
this_server = "a1"
SLICE
[[soft_unicast.data_centre]]
name = "a"
backbone = "10.9.0.11"
[[soft_unicast.server]]
name = "a1"
data_centre = "a"
backbone = "10.9.0.11"
[[soft_unicast.egress]]
prefix = "198.18.200.0/30"
data_centre = "a"
country = "GB"
[[soft_unicast.egress]]
prefix = "SECOND"
data_centre = "a"
country = "GB"
"#;
    let config = |slice: &str, second: &str| base.replace("SLICE", slice).replace("SECOND", second);
    assert_eq!(
        errors(&config("", "198.18.200.2/31")),
        ["bad.toml:21:10: egress prefix 198.18.200.2/31 overlaps egress prefix 198.18.200.0/30"]
    );
    assert_eq!(
        errors(&config("", "203.0.113.4/30")),
        ["bad.toml:21:10: egress prefix 203.0.113.4/30 overlaps customer prefix 203.0.113.0/24 (at bad.toml:5:13)"]
    );
    // A slice is 1 port or more and fits whole above the reserved ports: 65,536 of them less
    // those, at most 65,535 (a slice size is a u16 in the plan). Past u16 as well (65536 was
    // told u16's 0..=65535, 0 and 65535 being as wrong).
    let by_default = "(the ports above the 1024 reserved by default)";
    for size in [0, 64513, 65535, 65536, 4_000_000] {
        assert_eq!(
            errors(&config(&format!("slice_size = {size}"), "198.18.201.0/30")),
            [format!("bad.toml:8:14: slice_size {size} is not in 1..=64512 {by_default}")]
        );
    }
    assert_eq!(
        errors(&config("slice_size = 65536\nreserved_ports = 0", "198.18.201.0/30")),
        ["bad.toml:8:14: slice_size 65536 is not in 1..=65535 (the ports above reserved_ports 0)"]
    );
    for fits in ["slice_size = 64512", "slice_size = 65535\nreserved_ports = 1"] {
        assert_eq!(errors(&config(fits, "198.18.201.0/30")), Vec::<String>::new(), "{fits}");
    }
    // Too many reserved ports for the default slice: said at reserved_ports.
    assert_eq!(
        errors(&config("reserved_ports = 64000", "198.18.201.0/30")),
        ["bad.toml:8:18: slice_size 2048 with reserved_ports 64000 leaves no whole slice"]
    );
    assert_eq!(
        errors(&config("slice_size = 1\nreserved_ports = 0", "198.18.201.0/30")),
        ["bad.toml:8:14: slice_size 1 with reserved_ports 0 makes 65536 slices, one more than an address can have: \
             reserve port 0"]
    );
    // What the geofeed would publish: a region of another country, a city over two lines (its
    // newline quoted as an escape, not broken across the message).
    assert_eq!(
        errors(&config("", "198.18.201.0/30\"\nregion = \"US-CA\"\ncity = \"London\\n10.0.0.0/8,US,,,")),
        [
            "bad.toml:22:10: region: `US-CA` is not an ISO 3166-2 code of country `GB`",
            "bad.toml:23:8: city: `London\\n10.0.0.0/8,US,,,` holds a control character",
        ]
    );
    // RFC 8805 §2.1.1.4: "The city field, if non-empty, SHOULD be free UTF-8 text, excluding
    // the comma (',') character." A SHOULD (the feed quotes the comma): said, not refused.
    let comma = config("", "198.18.201.0/30\"\ncity = \"San Francisco, CA");
    assert_eq!(errors(&comma), Vec::<String>::new());
    assert_eq!(
        warnings_about(&comma, "city"),
        ["w.toml:22:8: city: `San Francisco, CA` holds a comma, which RFC 8805 says a city SHOULD exclude \
          (§2.1.1.4; §2.1.1.5 a postal code)"]
    );
    // RFC 8805 §2.1: "Text from a '#' character to the end of the current line is treated as a
    // comment only": the feed would publish the city cut there (quoted, a line that is no CSV).
    assert_eq!(
        errors(&config("", "198.18.201.0/30\"\ncity = \"Suite #5")),
        ["bad.toml:22:8: city: `Suite #5` holds a `#`, which starts a comment in a feed line, quoted or not \
          (RFC 8805 §2.1)"]
    );
    // A Unicode line or paragraph separator (a TOML escape here) ends a line to a reader that
    // goes by Unicode (Python's `splitlines`): the feed's line would be cut in two, as by a
    // newline. Quoted as its escape, which leaves the message one line.
    for (escape, shown) in [("\\u2028", "\\u{2028}"), ("\\u2029", "\\u{2029}")] {
        assert_eq!(
            errors(&config("", &format!("198.18.201.0/30\"\ncity = \"Lon{escape}don"))),
            [format!(
                "bad.toml:22:8: city: `Lon{shown}don` holds a Unicode line or paragraph separator (U+2028, \
                 U+2029), the end of a line to a reader that goes by Unicode"
            )]
        );
    }
}

#[test]
fn tunnel_remotes_past_half_the_xdp_map_are_refused_at_the_first_one_over() {
    let max = transitd::limits::MAX_REMOTES_PER_FAMILY;
    let mut text = String::from("[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"big\"\n");
    for i in 0..=max as u32 {
        let remote = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!("[[customer.tunnel]]\nname = \"t{i}\"\nremote = \"{remote}\"\n"));
    }
    let e = errors(&text);
    // Tunnel i's remote is on line 7 + 3i; tunnel `max` is the first over.
    let expected = format!("bad.toml:{}:10: more than {max} tunnel remote addresses of this family", 7 + 3 * max);
    assert!(e.iter().any(|e| e.starts_with(&expected)), "{:?}", &e[..e.len().min(3)]);
}

#[test]
fn an_ipv6_route_needs_a_tunnel_of_at_least_1280_bytes() {
    // RFC 8200 section 5: an IPv6 link carries 1280 bytes whole; an IPv4 route may use the
    // small tunnel, an IPv6 route may not, and is reported at its `tunnel`.
    let text = r#"[server]
anycast = "192.0.2.1"
anycast_v6 = "2001:db8::1"

[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24", "2001:db8:1::/48"]
[[customer.tunnel]]
name = "small"
remote = "198.51.100.1"
mtu = 1200
[[customer.tunnel]]
name = "big"
remote = "198.51.100.2"
mtu = 1280
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "small"
[[customer.route]]
prefix = "2001:db8:1::/48"
tunnel = "big"
[[customer.route]]
prefix = "2001:db8:1::/48"
tunnel = "small"
"#;
    assert_eq!(
        errors(text),
        ["bad.toml:24:10: route 2001:db8:1::/48 is IPv6, but tunnel `small` has mtu 1200: IPv6 needs at least 1280 \
          (RFC 8200 section 5)"]
    );
}

#[test]
fn addresses_no_one_host_has_are_refused() {
    let text = r#"[server]
anycast = "0.0.0.0"
anycast_v6 = "ff02::1"
next_hop_mac = "00:00:00:00:00:00"
mac = "01:00:5e:00:00:01"

[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "ours"
remote = "0.0.0.0"
[[customer.tunnel]]
name = "group"
remote = "224.0.0.5"
[[customer.tunnel]]
name = "all"
remote = "255.255.255.255"
"#;
    assert_eq!(
        errors(text),
        [
            "bad.toml:2:11: anycast address `0.0.0.0` is not one host's address",
            "bad.toml:3:14: anycast_v6 `ff02::1` is not one host's address",
            "bad.toml:4:16: `00:00:00:00:00:00` is not a unicast MAC address (all zeros, broadcast or multicast)",
            "bad.toml:5:7: `01:00:5e:00:00:01` is not a unicast MAC address (all zeros, broadcast or multicast)",
            "bad.toml:12:10: tunnel remote `0.0.0.0` is not a router's address (ours, or not one host's)",
            "bad.toml:15:10: tunnel remote `224.0.0.5` is not a router's address (ours, or not one host's)",
            "bad.toml:18:10: tunnel remote `255.255.255.255` is not a router's address (ours, or not one host's)",
        ]
    );
    // The anycast address itself is ours, not a router's.
    let ours = "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
                [[customer.tunnel]]\nname = \"t\"\nremote = \"192.0.2.1\"\n";
    assert_eq!(
        errors(ours),
        ["bad.toml:8:10: tunnel remote `192.0.2.1` is not a router's address (ours, or not one host's)"]
    );
}

#[test]
fn an_error_quotes_megabytes_of_input_in_a_line() {
    let huge = "1".repeat(5_000_000);
    let text = format!("[server]\nanycast = \"{huge}\"\n[[list]]\nname = \"l\"\nitems = [\"{huge}\"]\n");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{}", e.iter().map(|e| &e[..200]).collect::<Vec<_>>().join("\n"));
    for e in &e {
        assert!(e.len() < 1200, "{} bytes: {}…", e.len(), &e[..200]);
    }
    assert!(e[0].starts_with("bad.toml:2:11: anycast address `1111"), "{}", &e[0][..100]);
    assert!(e[0].ends_with(&format!("… ({} bytes)", huge.len() + 41)), "{}", &e[0][e[0].len() - 40..]);
}

/// A configuration that works but not as one would expect is accepted with a warning at its
/// position, which `check-config` prints (exit status 0): IPv6 customer prefixes without
/// `anycast_v6`, where no ICMPv6 error (Packet Too Big) can be sent about their packets.
#[test]
fn ipv6_prefixes_without_anycast_v6_are_warned_about_at_their_position() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n\n[[customer]]\nname = \"a\"\n\
                prefixes = [\"203.0.113.0/24\", \"2001:db8:1::/48\", \"2001:db8:2::/48\"]\n";
    // (Its prefixes have no route, which is warned about too: those warnings are not this
    // test's.)
    let warnings = |text: &str| -> Vec<String> { warnings_about(text, "anycast_v6") };
    let said = warnings(text);
    assert_eq!(said.len(), 1, "once, at the first IPv6 prefix: {said:?}");
    assert!(
        said[0].starts_with("w.toml:6:31: IPv6 prefix `2001:db8:1::/48` but [server] sets no anycast_v6"),
        "{said:?}"
    );
    let with_v6 = text.replace("anycast = \"192.0.2.1\"", "anycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db8:ffff::1\"");
    assert_eq!(warnings(&with_v6), Vec::<String>::new());
    assert_eq!(warnings(&text.replace(", \"2001:db8:1::/48\", \"2001:db8:2::/48\"", "")), Vec::<String>::new());

    let file = std::env::temp_dir().join(format!("transitd-warn-{}.toml", std::process::id()));
    std::fs::write(&file, text.replace("[server]\n", "[server]\nnext_hop_mac = \"02:00:00:00:00:fe\"\n")).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_transitd")).arg("check-config").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("warning: {}:7:31: IPv6 prefix", file.display())), "{stderr}");
}

/// One mistake, one error: a route inside a prefix refused for its host bits is not also
/// "outside the customer's prefixes", and a rule naming a list refused for a bad member is
/// not also "no list of that name".
#[test]
fn a_mistake_is_said_once_not_again_where_it_is_used() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[[list]]\nname = \"l\"\nitems = [\"10.0.0.1/8\"]\n\
                [[dos.rule]]\nmatch = \"ip.src in $l\"\naction = \"drop\"\n\
                [[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.1/24\"]\n\
                [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\n\
                [[customer.route]]\nprefix = \"203.0.113.0/25\"\ntunnel = \"t\"\n";
    assert_eq!(
        errors(text),
        [
            "bad.toml:5:10: list `l`: \"10.0.0.1/8\" has host bits set beyond its prefix length; write the network address",
            "bad.toml:11:13: bad CIDR `203.0.113.1/24`: host bits are set (the network is 203.0.113.0/24)",
        ]
    );
}

/// What cannot match today is said, not refused: a customer without prefixes (nothing is
/// routed to it), a list compared with a field of a family it holds none of (a typo as
/// likely as a feed of one family). Warnings come in file order, as errors do.
#[test]
fn a_customer_without_prefixes_and_a_list_without_a_family_are_warned_about() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[[list]]\nname = \"v4\"\nitems = [\"198.51.100.0/24\"]\n\
                [[dos.rule]]\nmatch = \"ip.src in $v4 or ipv6.src in $v4\"\naction = \"drop\"\n\
                [[customer]]\nname = \"empty\"\n\
                [[list]]\nname = \"none\"\n[[dos.rule]]\nmatch = \"not ip.src in $none\"\naction = \"drop\"\n";
    let said = warnings_about(text, "");
    assert_eq!(
        said,
        [
            "w.toml:7:9: rule `rule-1`: ipv6.src in $v4 matches nothing: the list holds no IPv6 addresses",
            "w.toml:10:8: customer `empty` has no prefixes: no traffic is routed to it",
            // An empty list (a feed that came out empty): `not ... in $none` drops everything.
            "w.toml:14:9: rule `rule-2`: $none is empty: ip.src in $none matches nothing",
        ]
    );
}

/// A key set twice, or a table written twice, is named (toml says only "duplicate key").
#[test]
fn a_duplicate_key_or_table_is_named() {
    let twice = "[server]\nanycast = \"192.0.2.1\"\nanycast = \"192.0.2.2\"\n";
    let e = errors(twice);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("bad.toml:3:1: duplicate key `anycast`"), "{e:?}");
    let tables = "[server]\nanycast = \"192.0.2.1\"\n[server]\nmac = \"02:00:00:00:00:01\"\n";
    let e = errors(tables);
    assert!(e[0].contains("duplicate key `server`"), "{e:?}");
}

/// An empty match selects every packet, as Wireshark's empty filter does: taken, and said
/// (in a file it is more often a template that filled in nothing); `frame` says it quietly.
#[test]
fn an_empty_match_is_warned_about() {
    let rule = |expr: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [customer.firewall]\ndefault = \"drop\"\n[[customer.firewall.rule]]\nname = \"all\"\nmatch = \"{expr}\"\naction = \"accept\"\n"
        )
    };
    let warned = |text: &str| -> Vec<String> { warnings_about(text, "rule `all`") };
    for empty in ["", "   "] {
        assert_eq!(
            warned(&rule(empty)),
            ["w.toml:10:9: rule `all`: the match is empty, so it selects every packet (write `frame` to mean that)"]
        );
    }
    assert!(warned(&rule("frame")).is_empty());
}

/// `matches` patterns are bounded per configuration by how many distinct ones there are
/// (each may take a megabyte per worker): the first past the bound is refused at its rule, while
/// the same pattern in any number of rules is compiled once and counts once.
#[test]
fn distinct_matches_patterns_are_bounded_per_configuration() {
    let head = "[server]\nanycast = \"192.0.2.1\"\n\n[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n";
    let rules = |patterns: &mut dyn Iterator<Item = String>| -> String {
        patterns
            .map(|p| format!("[[customer.firewall.rule]]\nmatch = 'frame matches \"{p}\"'\naction = \"drop\"\n"))
            .collect()
    };
    let max = classifier::bytes::MAX_DISTINCT_PATTERNS;
    let same = format!("{head}{}", rules(&mut (0..2 * max).map(|_| "a{100}b".to_string())));
    assert_eq!(errors(&same), Vec::<String>::new(), "one pattern, however many rules");
    let distinct = format!("{head}{}", rules(&mut (0..=max).map(|i| format!("x{i}y"))));
    let errors = errors(&distinct);
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The first past the bound: rule max + 1, three lines per rule after the 6-line head.
    let line = 6 + 3 * max + 2;
    assert!(
        errors[0].starts_with(&format!("bad.toml:{line}:"))
            && errors[0].contains(&format!("more than {max} distinct `matches` patterns")),
        "{errors:?}"
    );
}

/// A `matches` pattern that compiles past the bound is refused at its position, the pattern's
/// opening quote: `(a|b|ab|ba){1000}c` (610 KiB compiled) took 45 ms a 1,400-byte frame,
/// so one rule stalled a worker. The signatures docs/rules.md gives, and Log4Shell's and
/// IDS-style ones, compile in the same configuration.
#[test]
fn a_matches_pattern_past_the_compiled_bound_is_refused_at_its_position() {
    let signatures = [
        r#"udp.srcport == 11211 and udp.payload matches "(?s)^.{8}(STAT|VALUE) ""#,
        r#"udp.srcport == 53 and udp.payload matches "(?s)^.{12}[^\\x00]{0,255}\\x00\\x00\\xff\\x00\\x01""#,
        r#"tcp.payload matches "^get /[a-z]+\\.php""#,
        r#"tcp.payload matches "\\$\\{jndi:(ldap|rmi|dns|ldaps|iiop|http|nis|nds|corba)s?:""#,
        r#"tcp.payload matches "^Host\\x3a\\x20[^\\r\\n]{256}""#,
    ];
    let rule =
        |name: &str, expr: &str| format!("[[dos.rule]]\nname = \"{name}\"\nmatch = '{expr}'\naction = \"drop\"\n");
    let mut text = "[server]\nanycast = \"192.0.2.1\"\n\n".to_string();
    for (i, signature) in signatures.iter().enumerate() {
        text.push_str(&rule(&format!("sig-{i}"), signature));
    }
    assert_eq!(errors(&text), Vec::<String>::new(), "the signatures compile");
    text.push_str(&rule("slow", r#"udp.dstport == 53 and udp.payload matches "(a|b|ab|ba){1000}c""#));
    let (line, column) = text.lines().enumerate().find_map(|(n, l)| l.find("\"(a|b").map(|c| (n + 1, c + 1))).unwrap();
    let bound = classifier::bytes::MAX_PATTERN_BYTES;
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    let at = format!("bad.toml:{line}:{column}: rule `slow`: the pattern compiles to more than {bound} bytes");
    assert!(e[0].starts_with(&at), "{e:?}, not {at}");
}

/// The lists of one configuration are bounded together as well as each on its own: three
/// lists of 3,000,000 members each (one file, named thrice) cross the 8,000,000 of a
/// configuration at the third, which is named, and nothing after it is read.
#[test]
fn the_lists_of_a_configuration_are_bounded_together() {
    let list = |n: u32| format!("[[list]]\nname = \"l{n}\"\nfile = \"ports.list\"\n");
    let text = format!("[server]\nanycast = \"192.0.2.1\"\n\n{}{}{}{}", list(1), list(2), list(3), list(4));
    let (dir, file) = config_in_own_dir("lists-total", &text);
    let members: String = (0..3_000_000u32).map(|i| format!("{}\n", i % 65536)).collect();
    std::fs::write(dir.join("ports.list"), members).unwrap();
    let errors = errors_in(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The third list's name: line 4 + 2 × 3 + 1.
    assert!(
        errors[0].starts_with(&format!("{}:11:8: the lists up to `l3` hold more than 8000000 members", file.display())),
        "{errors:?}"
    );
}

/// A tunnel's router, or our anycast address, inside a prefix this edge announces is
/// refused at its position: GRE to such a router comes back to the edge and is encapsulated
/// again until its TTL runs out (replaying one replay's output through another showed it
/// wrapped once more each time). A catch-all prefix (a lab's customer owning everything)
/// only warns.
#[test]
fn routers_and_anycast_inside_announced_prefixes_are_refused() {
    let config = |anycast: &str, prefixes: &str, remote: &str| {
        format!(
            "[server]\nanycast = \"{anycast}\"\n\n[[customer]]\nname = \"acme\"\nprefixes = [{prefixes}]\n\
             [[customer.tunnel]]\nname = \"t\"\nremote = \"{remote}\"\n"
        )
    };
    let ok = config("192.0.2.1", "\"203.0.113.0/24\"", "198.51.100.1");
    assert_eq!(errors(&ok), Vec::<String>::new());
    let looped = config("192.0.2.1", "\"203.0.113.0/24\"", "203.0.113.5");
    assert_eq!(
        errors(&looped),
        [
            "bad.toml:9:10: tunnel remote `203.0.113.5` is inside prefix 203.0.113.0/24 of customer `acme` (at bad.toml:6:13), \
          which this edge announces: GRE to it would come back here"
        ]
    );
    let ours = config("203.0.113.1", "\"203.0.113.0/24\"", "198.51.100.1");
    assert_eq!(errors(&ours).len(), 1, "{:?}", errors(&ours));
    assert!(errors(&ours)[0].starts_with("bad.toml:2:11: anycast address `203.0.113.1` is inside prefix"));
    let catch_all = config("192.0.2.1", "\"0.0.0.0/0\"", "198.51.100.1");
    assert_eq!(errors(&catch_all), Vec::<String>::new());
    let warned = warnings_about(&catch_all, "inside prefix");
    assert_eq!(warned.len(), 2, "the anycast address and the remote: {warned:?}");
}

/// The upstream router (`next_hop`) inside a prefix this edge announces is refused at its
/// position, as the routers of the tunnels are: it shares a link with the host, and the
/// traffic between the two is judged as the customer's (live, the router's pings to the host
/// were dropped as `spoofed_customer_source`). A soft-unicast egress range holding it too.
#[test]
fn a_next_hop_inside_an_announced_prefix_is_refused() {
    let config = |prefixes: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"10.2.0.1\"\n\n[[customer]]\nname = \"acme\"\n\
             prefixes = [{prefixes}]\n"
        )
    };
    assert_eq!(errors(&config("\"203.0.113.0/24\", \"10.2.1.0/24\"")), Vec::<String>::new());
    let text = config("\"203.0.113.0/24\", \"10.2.0.0/24\"");
    // Where `needle` starts, as `line:col` (columns in characters from 1).
    let at = |needle: &str| {
        let start = text.find(needle).unwrap();
        let line = text[..start].matches('\n').count() + 1;
        format!("{line}:{}", start - text[..start].rfind('\n').map_or(0, |n| n + 1) + 1)
    };
    assert_eq!(
        errors(&text),
        [format!(
            "bad.toml:{}: next_hop `10.2.0.1` is inside prefix 10.2.0.0/24 of customer `acme` (at bad.toml:{}), which \
             this edge announces: the upstream router's own traffic (BGP, SSH, ping between it and this host) would \
             be taken for the prefix's",
            at("\"10.2.0.1\""),
            at("\"10.2.0.0/24\"")
        )]
    );
    // A catch-all customer holds it too: said, not refused, as for the other addresses.
    let catch_all = config("\"0.0.0.0/0\"");
    assert_eq!(errors(&catch_all), Vec::<String>::new());
    assert_eq!(warnings_about(&catch_all, "next_hop `10.2.0.1` is inside prefix 0.0.0.0/0").len(), 1);
    // Soft-unicast's egress ranges are announced as well.
    let fleet = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/soft-unicast.toml")).unwrap();
    let egress = fleet.replacen("next_hop_mac = \"02:00:00:00:00:fe\"", "next_hop = \"198.18.201.1\"", 1);
    assert_ne!(egress, fleet);
    let said = errors(&egress);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("next_hop `198.18.201.1` is inside egress prefix 198.18.201.0/31"), "{said:?}");
}

/// A tunnel's router on the bogon list has its GRE dropped as `bogon_source` before
/// decapsulation: traffic reaches the customer and none comes back, and a probed tunnel goes
/// down. It is said (a warning: labs route documentation addresses); a list without it, or
/// no bogon check, is quiet.
#[test]
fn a_tunnel_router_on_the_bogon_list_is_warned_about() {
    let config = |sanity: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n{sanity}\n[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [[customer.tunnel]]\nname = \"t\"\nremote = \"100.64.1.1\"\n"
        )
    };
    // (Its prefix has no route, which is warned about too: not this test's.)
    let warnings_of = |text: &str| -> Vec<String> { warnings_about(text, "bogon") };
    assert_eq!(
        warnings_of(&config("")),
        ["w.toml:9:10: tunnel remote `100.64.1.1` is in the default bogon list (100.64.0.0/10): its GRE would be \
             dropped as bogon_source before decapsulation; leave the range out of [dos.sanity] bogon_sources, or set \
             bogons = false"]
    );
    let listed = config("[dos.sanity]\nbogon_sources = [\"100.64.0.0/16\"]\n");
    assert_eq!(warnings_of(&listed).len(), 1);
    assert!(warnings_of(&listed)[0].contains("is in bogon_sources (100.64.0.0/16)"), "{:?}", warnings_of(&listed));
    assert_eq!(warnings_of(&config("[dos.sanity]\nbogons = false\n")), Vec::<String>::new());
    assert_eq!(warnings_of(&config("[dos.sanity]\nbogon_sources = [\"10.0.0.0/8\"]\n")), Vec::<String>::new());
    // An empty list, the check on: nothing is checked, which is said (it hid the router's
    // warning above, too); with the check off, quiet.
    assert_eq!(
        warnings_of(&config("[dos.sanity]\nbogon_sources = []\n")),
        ["w.toml:4:17: bogon_sources is empty: bogons = true then drops no source (write bogons = false to mean that)"]
    );
    assert_eq!(warnings_of(&config("[dos.sanity]\nbogons = false\nbogon_sources = []\n")), Vec::<String>::new());
}

/// An `mss` on a tunnel whose MTU leaves less than the smallest allowed MSS is refused with
/// why (it read "not in 88..=28").
#[test]
fn an_mss_on_a_tunnel_too_small_for_one_says_why() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n\n[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
                [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\nmtu = 68\nmss = 88\n";
    assert_eq!(
        errors(text),
        ["bad.toml:11:7: mss 88 cannot be set: the tunnel MTU 68 leaves 28 bytes after the IP and TCP headers, \
          under the 88 an mss may be (leave it out: 28 is used)"]
    );
}

/// `[customer]` where a list of tables is meant says what to write, not only serde's
/// "invalid type: map, expected a sequence".
#[test]
fn a_single_bracket_list_header_says_to_double_it() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n\n[customer]\nname = \"a\"\n";
    assert_eq!(
        errors(text),
        ["bad.toml:4:1: invalid type: map, expected a sequence: write `[[customer]]`, a list of tables (one \
             `[[customer]]` header each)"]
    );
    // With a comment after the header, the same.
    let commented = errors(&text.replace("[customer]\n", "[customer] # acme\n"));
    assert!(commented.len() == 1 && commented[0].contains("write `[[customer]]`"), "{commented:?}");
    // A customer's table with no `[[customer]]` before it: the list is the header's first part.
    let orphan = errors("[server]\nanycast = \"192.0.2.1\"\n[customer.firewall]\ndefault = \"drop\"\n");
    assert_eq!(
        orphan,
        ["bad.toml:3:2: invalid type: map, expected a sequence: `[customer.firewall]` belongs to one \
             `[[customer]]`: write `[[customer]]` (and what it needs) above it"]
    );
}

/// A file without `[server]` is told a section is missing, and a table without a required key
/// that a key is (serde calls both a "field"), where the reader points: the file's start for
/// the section, the table's header for the key.
#[test]
fn a_missing_section_or_key_is_said_as_one() {
    let section = ["bad.toml:1:1: missing section `[server]` (every configuration has one: see docs/configuration.md)"];
    assert_eq!(errors(""), section);
    assert_eq!(errors("# a customer's etcd key alone\n\n[[customer]]\nname = \"a\"\n"), section);
    let nameless = "[server]\nanycast = \"192.0.2.1\"\n\n[[customer]]\nprefixes = [\"203.0.113.0/24\"]\n";
    assert_eq!(errors(nameless), ["bad.toml:4:1: missing key `name`"]);
}

/// A customer prefix that no route covers, or covers only in part, is announced and its
/// traffic dropped as `no_route`: said at the prefix. Two halves cover it whole.
#[test]
fn a_prefix_without_a_route_is_warned_about() {
    let config = |routes: &[&str]| {
        let mut text = "[server]\nanycast = \"192.0.2.1\"\nanycast_v6 = \"2001:db9::1\"\n[[customer]]\nname = \"a\"\n\
                        prefixes = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n[[customer.tunnel]]\nname = \"t\"\n\
                        remote = \"198.51.100.1\"\n[dos.sanity]\nbogons = false\n"
            .to_string();
        // Routes belong to the customer: before [dos.sanity].
        let at = text.find("[dos.sanity]").unwrap();
        let routes: String =
            routes.iter().map(|r| format!("[[customer.route]]\nprefix = \"{r}\"\ntunnel = \"t\"\n")).collect();
        text.insert_str(at, &routes);
        text
    };
    let warnings_of = |text: &str| -> Vec<String> { warnings_about(text, "") };
    let said = warnings_of(&config(&["203.0.113.0/25", "2001:db8::/32"]));
    assert_eq!(
        said,
        ["w.toml:6:13: prefix 203.0.113.0/24 of customer `a` is routed only in part: it is announced, and traffic to \
          what no route covers is dropped as no_route"]
    );
    let said = warnings_of(&config(&["203.0.113.0/24"]));
    assert_eq!(said.len(), 1);
    assert!(said[0].starts_with("w.toml:6:31: prefix 2001:db8::/32 of customer `a` has no route"), "{said:?}");
    // Two halves cover it whole (merged, they are the prefix).
    assert_eq!(warnings_of(&config(&["203.0.113.0/25", "203.0.113.128/25", "2001:db8::/32"])), Vec::<String>::new());

    // 150 prefixes with no route: 150 warnings kept, the first 100 said, then how many more.
    let prefixes: Vec<String> = (0..150).map(|i| format!("\"10.{i}.0.0/16\"")).collect();
    let many = config(&["2001:db8::/32"]).replace("\"203.0.113.0/24\"", &prefixes.join(", "));
    assert_eq!(warnings_of(&many).len(), 150);
    let many = many.replace("[server]\n", "[server]\nnext_hop_mac = \"02:00:00:00:00:fe\"\n");
    let file = std::env::temp_dir().join(format!("transitd-warn-many-{}.toml", std::process::id()));
    std::fs::write(&file, many).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_transitd")).arg("check-config").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(said.len(), 101, "{stderr}");
    assert!(said[99].contains("prefix 10.99.0.0/16 of customer `a` has no route"), "{stderr}");
    assert_eq!(said[100], "warning: ... and 50 more warnings");
}

/// An IPv4-mapped IPv6 address (`::ffff:198.51.100.1`) is how a socket API names an IPv4
/// host; no packet carries it. As a tunnel remote, `anycast_v6` or `next_hop` it is refused,
/// once, with the address to write (for `anycast_v6`, which takes no IPv4 address, the key
/// that does); nothing follows from it (no clash with the IPv4 tunnel to
/// the same router, no call for `anycast_v6`).
#[test]
fn an_ipv4_mapped_address_is_refused_with_the_address_to_write() {
    let config = |server: &str, remote: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n{server}[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\n\
             [[customer.tunnel]]\nname = \"u\"\nremote = \"{remote}\"\n"
        )
    };
    assert_eq!(
        errors(&config("", "::ffff:198.51.100.1")),
        ["bad.toml:11:10: tunnel remote `::ffff:198.51.100.1` is not a router's address (ours, or not one host's): \
          an IPv4-mapped IPv6 address, which no packet carries (write `198.51.100.1`)"]
    );
    // Unmapped, a different router: accepted.
    assert_eq!(errors(&config("", "198.51.100.2")), Vec::<String>::new());
    assert_eq!(
        errors(&config("anycast_v6 = \"::ffff:192.0.2.1\"\n", "198.51.100.2")),
        ["bad.toml:3:14: anycast_v6 `::ffff:192.0.2.1` is not one host's address: an IPv4-mapped IPv6 address, \
          which no packet carries (`192.0.2.1` is an IPv4 address: `anycast`)"]
    );
    assert_eq!(
        errors(&config("next_hop = \"::ffff:192.0.2.254\"\n", "198.51.100.2")),
        ["bad.toml:3:12: next_hop `::ffff:192.0.2.254` is not a router's address (one host's, not ours): an \
          IPv4-mapped IPv6 address, which no packet carries (write `192.0.2.254`)"]
    );
    // Two remotes that are no address at all: two errors, not a third for their "clash".
    let garbled = config("", "nowhere").replace("remote = \"198.51.100.1\"", "remote = \"somewhere\"");
    assert_eq!(errors(&garbled).len(), 2, "{:?}", errors(&garbled));
}

/// `next_hop` names a router: an address no host has, or ours, never resolves and is
/// refused; with `next_hop_mac` beside it, it is not used, which is said.
#[test]
fn a_next_hop_that_can_never_resolve_is_refused() {
    let config = |server: &str| format!("[server]\nanycast = \"192.0.2.1\"\n{server}\n");
    for bad in ["0.0.0.0", "192.0.2.1", "ff02::1", "127.0.0.1"] {
        assert_eq!(
            errors(&config(&format!("next_hop = \"{bad}\""))),
            [format!("bad.toml:3:12: next_hop `{bad}` is not a router's address (one host's, not ours)")]
        );
    }
    assert_eq!(errors(&config("next_hop = \"192.0.2.254\"")), Vec::<String>::new());
    let both = config("next_hop = \"192.0.2.254\"\nnext_hop_mac = \"02:00:00:00:00:fe\"");
    let said = warnings_about(&both, "");
    assert_eq!(said, ["w.toml:3:12: next_hop is not used: next_hop_mac is set too, and frames go to that MAC"]);
}

/// A tunnel's `mss` with clamping off clamps nothing: said.
#[test]
fn an_mss_without_clamping_is_warned_about() {
    let text = "[server]\nanycast = \"192.0.2.1\"\nmss_clamp = false\n[[customer]]\nname = \"a\"\n\
                [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\nmss = 1200\n";
    let said = warnings_about(text, "mss");
    assert_eq!(said, ["w.toml:9:7: mss is not used: [server] mss_clamp = false clamps no SYN"]);
}

/// The IPFIX message size and template refresh are the operator's (RFC 7011 §10.3.3, §8.4),
/// within bounds said at their position.
#[test]
fn ipfix_message_size_and_template_refresh_are_bounded() {
    let text = "[server]\nanycast = \"192.0.2.1\"\n[ipfix]\ncollector = \"192.0.2.9:4739\"\n\
                max_message_size = 100\ntemplate_refresh_s = 0\n";
    assert_eq!(
        errors(text),
        [
            "bad.toml:5:20: max_message_size 100 is not in 512..=65507",
            "bad.toml:6:22: template_refresh_s 0 is not in 1..=86400",
        ]
    );
    let ok = text.replace("max_message_size = 100", "max_message_size = 512").replace("= 0", "= 30");
    assert_eq!(errors(&ok), Vec::<String>::new());
}

/// Observation Domain ID 0 names no one domain (RFC 7011 §3.1: "A value of 0 indicates
/// that no specific Observation Domain is identified"): flows metered here were sent under
/// it without a word. Refused at its position; 1 and the largest are taken.
#[test]
fn an_observation_domain_of_zero_is_refused() {
    let text = |domain: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n[ipfix]\ncollector = \"192.0.2.9:4739\"\nobservation_domain = {domain}\n"
        )
    };
    assert_eq!(errors(&text("0")), ["bad.toml:5:22: observation_domain 0 is not in 1..=4294967295"]);
    for taken in ["1", "4294967295"] {
        assert_eq!(errors(&text(taken)), Vec::<String>::new(), "{taken}");
    }
}

/// A tunnel whose GRE at its mtu is longer than a frame of `frame_size` carries is said: its
/// router's full-size packets never arrive (`oversize`). The bounds are counted by hand: a
/// frame carries `frame_size` less 14 bytes of Ethernet, and the GRE of an `mtu` packet is 20
/// bytes of IPv4 (RFC 791) and 4 of GRE (RFC 2784) longer. The default mtu (1476) makes
/// 1500-byte GRE, which a `frame_size` of 1500, an MTU written for a frame size, drops.
#[test]
fn a_tunnel_mtu_past_the_frame_size_is_warned_about() {
    let text = |frame: u32, mtu: Option<u32>| {
        let mtu = mtu.map_or(String::new(), |m| format!("mtu = {m}\n"));
        format!(
            "[server]\nanycast = \"192.0.2.1\"\nframe_size = {frame}\n[[customer]]\nname = \"a\"\n\
             [[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\n{mtu}"
        )
    };
    let said = |frame, mtu| -> Vec<String> { warnings_about(&text(frame, mtu), "frame_size") };
    assert_eq!(
        said(4096, Some(9000)),
        ["w.toml:9:7: mtu 9000 is more than a frame of frame_size 4096 carries with tunnel `t`'s outer headers \
             (9024 bytes of IP, 4082 carried): its router's GRE of packets over 4058 bytes is dropped as oversize on \
             arrival; raise frame_size to 9038 or lower mtu to 4058"]
    );
    // 4059 + 20 + 4 + 14 = 4097: one byte past the frame.
    assert_eq!(
        said(4096, Some(4059)),
        ["w.toml:9:7: mtu 4059 is more than a frame of frame_size 4096 carries with tunnel `t`'s outer headers \
             (4083 bytes of IP, 4082 carried): its router's GRE of packets over 4058 bytes is dropped as oversize on \
             arrival; raise frame_size to 4097 or lower mtu to 4058"]
    );
    assert_eq!(said(4096, Some(4058)), Vec::<String>::new());
    assert_eq!(said(9216, Some(9000)), Vec::<String>::new());
    // The default mtu: 1476 + 20 + 4 + 14 = 1514.
    assert_eq!(
        said(1500, None),
        ["w.toml:3:14: frame_size 1500 carries 1486 bytes of IP, less than the GRE (1500 bytes) of tunnels without \
             an `mtu` at the default mtu (1476): their routers' full-size packets are dropped as oversize on arrival; \
             raise frame_size to 1514 or set their mtu"]
    );
    assert_eq!(said(1514, None), Vec::<String>::new());
}

/// Values a review found accepted, each refused at its position with its reason: customer
/// prefixes in space no host has (multicast `224.0.0.0/4` was announced), a loose MAC, a
/// collector that is no host, BIRD's include over its socket, a backbone address that is
/// the anycast address, a tunnel remote that is a backbone address; and an anycast_v6
/// hint that names the IPv4 key, and no second error for a health value already refused.
#[test]
fn addresses_no_host_or_no_one_host_has_are_refused() {
    let base = "[server]\nanycast = \"192.0.2.1\"\nnext_hop_mac = \"02:00:00:00:00:fe\"\n\
        [[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
        [[customer.tunnel]]\nname = \"t1\"\nremote = \"198.51.100.7\"\n";
    let with = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        errors(&base.replacen(from, to, 1))
    };
    let prefixes = with(
        "\"203.0.113.0/24\"]",
        "\"203.0.113.0/24\", \"224.0.0.0/4\", \"::ffff:198.51.100.0/120\", \"127.0.0.0/8\", \"0.0.0.0/8\", \"fe80::/64\", \"ff02::/16\"]",
    );
    assert_eq!(prefixes.len(), 6, "{prefixes:#?}");
    assert!(
        prefixes[0].starts_with("bad.toml:6:31: customer prefix `224.0.0.0/4` is inside 224.0.0.0/4 (multicast)"),
        "{prefixes:#?}"
    );
    assert!(prefixes[1].contains("IPv4-mapped (write the IPv4 prefix)"), "{prefixes:#?}");
    assert_eq!(
        with("\"192.0.2.1\"\n", "\"192.0.2.1\"\nmac = \"+2:0:000:0:0:1\"\n"),
        ["bad.toml:3:7: `+2:0:000:0:0:1` is not a MAC address (write 02:00:00:00:00:01)"]
    );
    let collector = format!("{base}[ipfix]\ncollector = \"255.255.255.255:4739\"\n");
    assert_eq!(errors(&collector), ["bad.toml:11:13: collector `255.255.255.255` is not one host's address"]);
    let v6 = with("\"192.0.2.1\"\n", "\"192.0.2.1\"\nanycast_v6 = \"::ffff:192.0.2.1\"\n");
    assert!(v6.len() == 1 && v6[0].ends_with("(`192.0.2.1` is an IPv4 address: `anycast`)"), "{v6:#?}");
    let health = format!("{base}[health]\ninterval_ms = 18446744073709551615\ntimeout_ms = 5000\n");
    assert_eq!(errors(&health), ["bad.toml:11:15: interval_ms 18446744073709551615 is not in 10..=3600000"]);
    let bgp = format!("{base}[bgp]\nbird_socket = \"/run/bird/bird.ctl\"\nbird_include = \"/run/bird/bird.ctl\"\n");
    let bgp = errors(&bgp);
    assert!(bgp.iter().any(|e| e.starts_with("bad.toml:12:16: bird_include is bird_socket's path")), "{bgp:#?}");
    // bird_include left to its default: said at the key written, not at 1:1.
    let bgp = format!("{base}[bgp]\nbird_socket = \"/run/transitd/bird.conf\"\n");
    assert_eq!(
        errors(&bgp),
        ["bad.toml:11:15: bird_include is bird_socket's path: run would write its routes over BIRD's control socket"]
    );
    // Anycast addresses the Internet cannot send to (link-local, "this network").
    assert_eq!(
        with("\"192.0.2.1\"\n", "\"169.254.1.1\"\nanycast_v6 = \"fe80::1\"\n"),
        [
            "bad.toml:2:11: anycast address `169.254.1.1` is inside 169.254.0.0/16 (link-local): the Internet cannot \
             reach it",
            "bad.toml:3:14: anycast_v6 `fe80::1` is inside fe80::/10 (link-local): the Internet cannot reach it"
        ]
    );
    assert_eq!(
        with("\"192.0.2.1\"\n", "\"0.1.2.3\"\n"),
        ["bad.toml:2:11: anycast address `0.1.2.3` is inside 0.0.0.0/8 (this network): the Internet cannot reach it"]
    );
    assert_eq!(
        with("\"192.0.2.1\"\n", "\"240.0.0.1\"\n"),
        ["bad.toml:2:11: anycast address `240.0.0.1` is inside 240.0.0.0/4 (reserved, RFC 1112): the Internet \
             cannot reach it"]
    );
    // Announced, a prefix that holds such space would announce it too.
    let wide = format!("{}[bgp]\n", base.replace("\"203.0.113.0/24\"", "\"203.0.113.0/24\", \"224.0.0.0/3\""));
    assert_eq!(
        errors(&wide),
        ["bad.toml:6:31: customer prefix 224.0.0.0/3 holds 224.0.0.0/4, which [bgp] would announce with it"]
    );
    let fleet = format!(
        "{}[soft_unicast]\nthis_server = \"a1\"\nslice_size = 2048\nreserved_ports = 1024\n\
         [[soft_unicast.data_centre]]\nname = \"a\"\nbackbone = \"10.9.0.11\"\n\
         [[soft_unicast.server]]\nname = \"a1\"\ndata_centre = \"a\"\nbackbone = \"192.0.2.1\"\n\
         [[soft_unicast.server]]\nname = \"a2\"\ndata_centre = \"a\"\nbackbone = \"10.9.0.12\"\n\
         [[soft_unicast.egress]]\nprefix = \"198.18.200.1/32\"\ndata_centre = \"a\"\ncountry = \"GB\"\nclass = \"untrusted\"\n",
        base.replace("198.51.100.7", "10.9.0.12")
    );
    // Egress ranges as customer prefixes: not in space no host has, nor, announced, holding it.
    for (prefix, bgp, said) in [
        ("224.0.0.0/24", "", "egress prefix 224.0.0.0/24 is inside 224.0.0.0/4 (multicast): no host sends from there"),
        ("127.0.0.0/30", "", "egress prefix 127.0.0.0/30 is inside 127.0.0.0/8 (loopback): no host sends from there"),
        (
            "255.255.255.0/24",
            "[bgp]\n",
            "egress prefix 255.255.255.0/24 holds 255.255.255.255/32, which [bgp] would announce with it",
        ),
    ] {
        let text = format!("{}{bgp}", fleet.replace("198.18.200.1/32", prefix));
        let said_all = errors(&text);
        assert!(said_all.iter().any(|e| e.starts_with("bad.toml:26:10: ") && e.ends_with(said)), "{said_all:#?}");
    }
    let without_bgp = errors(&fleet.replace("198.18.200.1/32", "255.255.255.0/24"));
    assert!(!without_bgp.iter().any(|e| e.contains("egress prefix")), "{without_bgp:#?}");
    let fleet = errors(&fleet);
    assert!(
        fleet.iter().any(|e| e.contains("server `a1`'s backbone address `192.0.2.1` is the anycast address")),
        "{fleet:#?}"
    );
    assert!(
        fleet
            .iter()
            .any(|e| e.starts_with("bad.toml:9:10: tunnel remote `10.9.0.12` is server `a2`'s backbone address")),
        "{fleet:#?}"
    );
}

/// An error in `[soft_unicast]` (a country misspelt) does not hide what its egress ranges
/// overlap: every error in one pass (the overlaps came only after the country was mended).
#[test]
fn a_fleet_error_hides_no_overlap() {
    let text = r#"[server]
anycast = "192.0.2.1"
next_hop_mac = "02:00:00:00:00:fe"
[soft_unicast]
this_server = "a1"
slice_size = 2048
reserved_ports = 1024
[[soft_unicast.data_centre]]
name = "a"
backbone = "10.9.0.11"
[[soft_unicast.server]]
name = "a1"
data_centre = "a"
backbone = "10.9.0.11"
[[soft_unicast.egress]]
prefix = "198.18.200.0/24"
data_centre = "a"
country = "G"
class = "untrusted"
[[customer]]
name = "acme"
prefixes = ["198.18.0.0/15"]
[[customer.tunnel]]
name = "t1"
remote = "198.51.100.7"
"#;
    let errors = errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("bad.toml:16:10: egress prefix 198.18.200.0/24 overlaps customer prefix 198.18.0.0/15")
    );
    assert!(errors[1].starts_with("bad.toml:18:11: country: `G` is not an ISO 3166-1 alpha-2 code"), "{errors:#?}");
}

/// A TCP protection rule whose match selects no TCP packet covers nothing (the stage tracks
/// TCP alone): said at its match, globally and per customer; a rule that may select TCP
/// (`tcp`, `ip.src == ...`, `not udp`) is quiet.
#[test]
fn a_tcp_protection_rule_that_selects_no_tcp_is_warned_about() {
    let text = |rule: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n[tcp_protection]\n[[tcp_protection.rule]]\nmatch = \"{rule}\"\n\
             [[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [[customer.tcp_protection.rule]]\nname = \"own\"\nmatch = \"{rule}\"\n"
        )
    };
    assert_eq!(
        warnings_about(&text("udp.dstport == 53"), "TCP protection"),
        [
            "w.toml:5:9: rule `rule-1`: its match selects no TCP packet, and TCP protection tracks TCP alone: it \
             covers nothing",
            "w.toml:11:9: rule `own`: its match selects no TCP packet, and TCP protection tracks TCP alone: it covers \
             nothing"
        ]
    );
    for quiet in ["tcp", "ip.src == 198.51.100.0/24", "not udp", "tcp.port == 80 or udp.port == 53", "icmp or tcp"] {
        assert_eq!(warnings_about(&text(quiet), "TCP protection"), Vec::<String>::new(), "{quiet}");
    }
    assert_eq!(
        warnings_about(&text("icmp and ip.ttl < 5").replace("icmp", "icmpv6 or icmp"), "TCP protection").len(),
        2
    );
}

/// A mitigating TCP protection rule whose match selects no client's SYN
/// (`tcp.flags.ack == 1`) never sees the Internet's connections open, so once the grace
/// period is over it drops every segment of them it covers as out of state: said at its
/// match. So is one that selects only SYNs no client sends: with PSH (`tcp.flags.push == 1`,
/// written against PSH-ACK floods), with data (`tcp.len > 0`, a payload signature; only TCP
/// Fast Open puts data on a SYN). Such rules were quiet, and `transitd match --config` showed
/// a request after a whole handshake dropped as `tcp_out_of_state_ack`. Selecting the
/// handshake too (ECN's setup SYNs alone among them), or only monitoring, is quiet.
#[test]
fn a_mitigating_tcp_rule_that_selects_no_syn_is_warned_about() {
    let text = |rule: &str, mode: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\n[tcp_protection]\n[[tcp_protection.rule]]\nmatch = \"{rule}\"\n\
             mode = \"{mode}\"\n"
        )
    };
    let about = "selects no client's SYN";
    assert_eq!(
        warnings_about(&text("tcp.flags.ack == 1", "mitigate"), about),
        ["w.toml:5:9: rule `rule-1`: its match selects no client's SYN (SYN without ACK or data, no flag but \
             ECN's), so no connection the Internet opens is ever tracked, and in mitigate every segment of one it \
             covers is dropped as out of state once the grace period is over; let it select the handshake too \
             (`tcp.flags.syn == 1 or ...`)"]
    );
    for warned in [
        "tcp.flags.rst == 1 and tcp.flags.syn == 1",
        "tcp.flags.push == 1",
        "tcp.flags.syn == 1 and tcp.flags.fin == 1",
        "tcp.len > 0",
        "tcp.payload contains 47:45:54",
        "tcp.dstport == 80 and tcp.payload contains 47:45:54",
    ] {
        assert_eq!(warnings_about(&text(warned, "mitigate"), about).len(), 1, "{warned}");
    }
    for quiet in [
        "tcp",
        "tcp.flags.syn == 1 or tcp.flags.ack == 1",
        "tcp.flags & 0x12",
        "tcp.dstport == 443",
        "tcp.flags.push == 0",
        "tcp.flags.syn == 1 and tcp.flags.ece == 1 and tcp.flags.cwr == 1",
        "tcp.flags.push == 1 or tcp.flags.syn == 1",
        "tcp.len > 0 or tcp.flags.syn == 1",
        "tcp.payload contains 47:45:54 or tcp.flags.syn == 1",
        "not tcp.payload contains 47:45:54",
    ] {
        assert_eq!(warnings_about(&text(quiet, "mitigate"), about), Vec::<String>::new(), "{quiet}");
    }
    assert_eq!(warnings_about(&text("tcp.flags.ack == 1", "monitor"), about), Vec::<String>::new());
}

/// Settings nothing in the configuration uses are said at their key, not refused (a fleet's
/// shared file may hold them on purpose): `[health]` with no probed tunnel,
/// `withdraw_customers_without_tunnels` with no probed tunnel that a route takes (one no route
/// takes carries none of a prefix's traffic), `[dos] table_size` with no bucket,
/// `[tcp_protection]` settings with no rule, `challenge_rate` with no rule's `syn_rate`. The
/// same with what uses them is quiet.
#[test]
fn settings_nothing_uses_are_warned_about() {
    let base = "[server]\nanycast = \"192.0.2.1\"\n\
                [[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n\
                [[customer.tunnel]]\nname = \"gre\"\nremote = \"198.51.100.1\"\n";
    let probed =
        base.replace("remote = \"198.51.100.1\"\n", "remote = \"198.51.100.1\"\ninterface = \"10.0.0.0/31\"\n");
    let inert = |text: &str| warnings_about(text, "no effect").len() + warnings_about(text, "ever withdrawn").len();
    let health = "[health]\ninterval_ms = 500\n";
    assert_eq!(
        warnings_about(&format!("{base}{health}"), "no effect"),
        ["w.toml:10:15: [health] probes tunnels with an `interface`, and no tunnel has one: it has no effect"]
    );
    assert_eq!(inert(&format!("{probed}{health}")), 0);
    let bgp = "[bgp]\nwithdraw_customers_without_tunnels = true\n";
    let said = "withdraw_customers_without_tunnels acts on probed tunnels (those with an `interface`) that routes \
                take, and no route takes one: no customer prefix is ever withdrawn for its tunnels";
    assert_eq!(warnings_about(&format!("{base}{bgp}"), "ever withdrawn"), [format!("w.toml:10:38: {said}")]);
    assert_eq!(
        warnings_about(&format!("{probed}{bgp}"), "ever withdrawn"),
        [format!("w.toml:11:38: {said}")],
        "probed, but in no route"
    );
    let routed = format!("{probed}[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"gre\"\n");
    assert_eq!(inert(&format!("{routed}{bgp}")), 0);
    let dos = "[dos]\ntable_size = 1024\n";
    assert_eq!(
        warnings_about(&format!("{base}{dos}"), "no effect"),
        [
            "w.toml:10:14: [dos] table_size sizes the keys of rate-limit buckets, and there is no [[dos.bucket]]: it has no effect"
        ]
    );
    let bucket = "[[dos.bucket]]\nname = \"b\"\nkey = \"source\"\nrate = 10\nburst = 10\n";
    assert_eq!(inert(&format!("{base}{dos}{bucket}")), 0);
    let tcp = "[tcp_protection]\nchallenge_rate = 100\n";
    assert_eq!(
        warnings_about(&format!("{base}{tcp}"), "no effect"),
        ["w.toml:10:18: [tcp_protection] settings have no effect: no TCP protection rule, global or a customer's"]
    );
    let rule = "[[tcp_protection.rule]]\nmatch = \"tcp\"\n";
    assert_eq!(
        warnings_about(&format!("{base}{tcp}{rule}"), "no effect"),
        [
            "w.toml:10:18: challenges are sent over a rule's syn_rate, and no TCP protection rule has one: this has no effect"
        ]
    );
    assert_eq!(inert(&format!("{base}{tcp}{rule}syn_rate = 100\n")), 0);
}

/// `next_hop_mac` is the upstream router's, `mac` this server's: the same address in both,
/// however written, sends every frame to ourselves, and is refused at `next_hop_mac`. Two
/// MACs already refused (multicast) are not said a third time; two that differ are fine.
#[test]
fn a_next_hop_mac_that_is_our_own_is_refused() {
    let text = |mac: &str, next: &str| {
        format!("[server]\nanycast = \"192.0.2.1\"\nmac = \"{mac}\"\nnext_hop_mac = \"{next}\"\n")
    };
    assert_eq!(
        errors(&text("02:00:00:00:00:fe", "2:0:0:0:0:FE")),
        ["bad.toml:4:16: next_hop_mac `2:0:0:0:0:FE` is `mac`, this server's own: every frame would be sent to \
             itself, not to the upstream router"]
    );
    assert_eq!(errors(&text("01:00:5e:00:00:01", "01:00:5e:00:00:01")).len(), 2);
    assert_eq!(errors(&text("02:00:00:00:00:01", "02:00:00:00:00:fe")), Vec::<String>::new());
}

/// `next_hop` names the upstream router: our side of a tunnel's `interface`, or a backbone
/// address of the fleet (this server's own, or another's), is an address of ours, refused at
/// `next_hop` with where the interface is written. Both were taken, and frames for the
/// Internet went to an address no router on the link answers for.
#[test]
fn a_next_hop_that_is_an_address_of_ours_is_refused() {
    let text = |next_hop: &str| {
        format!(
            "[server]\nanycast = \"192.0.2.1\"\nnext_hop = \"{next_hop}\"\n[[customer]]\nname = \"acme\"\n\
             prefixes = [\"203.0.113.0/24\"]\n[[customer.tunnel]]\nname = \"t1\"\nremote = \"198.51.100.1\"\n\
             interface = \"10.213.0.0/31\"\n"
        )
    };
    assert_eq!(
        errors(&text("10.213.0.0")),
        ["bad.toml:3:12: next_hop `10.213.0.0` is not a router's address: it is our side of tunnel `t1`'s \
          interface (at bad.toml:10:13), one of ours"]
    );
    assert_eq!(errors(&text("192.0.2.254")), Vec::<String>::new());
    let fleet = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/soft-unicast.toml")).unwrap();
    for (address, whose) in [("10.9.0.11", "server `a1`"), ("10.9.0.12", "server `a2`")] {
        let text = fleet.replacen("next_hop_mac = \"02:00:00:00:00:fe\"", &format!("next_hop = \"{address}\""), 1);
        assert_ne!(text, fleet);
        let line = text.lines().position(|l| l.starts_with("next_hop =")).unwrap() + 1;
        assert_eq!(
            errors(&text),
            [format!(
                "bad.toml:{line}:12: next_hop `{address}` is not a router's address: it is {whose}'s backbone \
                 address, one of ours"
            )]
        );
    }
}

/// Names that differ only in case are two names to transitd, which compares them exactly
/// everywhere (a route's `tunnel`, metrics labels, logs, etcd keys), and one to a reader:
/// said at the later, with where the earlier is, for customers, tunnels (across customers)
/// and the rules of one list. The same name in two lists is neither.
#[test]
fn names_that_differ_only_in_case_are_warned_about() {
    let text = r#"[server]
anycast = "192.0.2.1"
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "gre1"
remote = "198.51.100.1"
[customer.firewall]
[[customer.firewall.rule]]
name = "web"
match = "tcp.port == 80"
action = "accept"
[[customer.firewall.rule]]
name = "Web"
match = "tcp.port == 443"
action = "accept"
[[customer]]
name = "Acme"
prefixes = ["198.51.100.128/25"]
[[customer.tunnel]]
name = "GRE1"
remote = "198.51.100.2"
[customer.firewall]
[[customer.firewall.rule]]
name = "WEB"
match = "tcp.port == 80"
action = "accept"
"#;
    assert_eq!(errors(text), Vec::<String>::new());
    assert_eq!(
        warnings_about(text, "only in case"),
        [
            "w.toml:15:8: rule `Web` differs from rule `web` (at w.toml:11:8) only in case: two rules to transitd, \
             which tells names apart by case",
            "w.toml:19:8: customer `Acme` differs from customer `acme` (at w.toml:4:8) only in case: two customers \
             to transitd, which tells names apart by case",
            "w.toml:22:8: tunnel `GRE1` differs from tunnel `gre1` (at w.toml:7:8) only in case: two tunnels to \
             transitd, which tells names apart by case",
        ]
    );
}

/// An integer past what its key's type holds, where that type's whole range is the key's,
/// is said with the range, as the checks after parsing say theirs (`expected u16` named a
/// Rust type): each such key of one or two bytes, whose ranges docs/configuration.md gives,
/// below zero and past the top; and past 64 bits either way, which serde said was "invalid
/// type: integer `X` as i128", as if it were no integer. (A key with a narrower range says
/// its own: `an_integer_past_its_type_says_its_keys_range`.)
#[test]
fn an_integer_past_its_type_says_the_range() {
    let tunnel = "[[customer]]\nname = \"a\"\n[[customer.tunnel]]\nname = \"t\"\nremote = \"198.51.100.1\"\n";
    let route = "[[customer]]\nname = \"a\"\n[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t\"\n";
    let cases = [
        ("[dos.sanity]\nmax_ipv6_extension_headers = ".to_string(), "256", 255_u64),
        ("[dos.sanity]\nmax_ipv6_extension_headers = ".to_string(), "-1", 255),
        ("[soft_unicast]\nreserved_ports = ".to_string(), "65536", 65535),
        ("[soft_unicast]\nreserved_ports = ".to_string(), "-1", 65535),
        (format!("{route}priority = "), "-5", 65535),
        (format!("{route}priority = "), "65536", 65535),
        ("[soft_unicast]\nreserved_ports = ".to_string(), "18446744073709551616", 65535),
        (format!("{tunnel}key = "), "99999999999999999999", u32::MAX.into()),
        ("icmp_rate = ".to_string(), "-9223372036854775809", u64::MAX),
    ];
    for (key, value, max) in cases {
        let text = format!("[server]\nanycast = \"192.0.2.1\"\n{key}{value}\n");
        let line = text.lines().count();
        let col = text.lines().last().unwrap().len() - value.len() + 1;
        assert_eq!(errors(&text), [format!("bad.toml:{line}:{col}: integer `{value}` is not in 0..={max}")], "{text}");
    }
}

/// A key whose range is narrower than a Rust type's says that range of every value written:
/// below zero, past the type it was kept in (u16, u32, u64) and past 64 bits were said by
/// the TOML reader with the type's range (`frame_size = -1`: "integer `-1` is not in
/// 0..=4294967295", 0 offered where 256 is the least; `weight = 70000`: "0..=65535", where
/// weight 0 is refused), while a value inside the type was told the key's own range. Each
/// key of docs/configuration.md with such a range, each value said as a value inside the
/// type out of the range is, at the value.
#[test]
fn an_integer_past_its_type_says_its_keys_range() {
    // The first value past each type these keys were kept in.
    const U16: &str = "65536";
    const U32: &str = "4294967296";
    const U64: &str = "18446744073709551616";
    const TCP: &str = "[tcp_protection]\n";
    const TCP_RULE: &str = "[[tcp_protection.rule]]\nmatch = \"tcp\"\n";
    const SU: &str = "[soft_unicast]\n";
    const IPFIX: &str = "[ipfix]\ncollector = \"192.0.2.9:4739\"\n";
    const BUCKET: &str = "[[dos.bucket]]\nname = \"b\"\nkey = \"source\"\n";
    let fleet = "this_server = \"s1\"\n[[soft_unicast.data_centre]]\nname = \"lhr\"\nbackbone = \"10.9.0.1\"\n\
                 [[soft_unicast.server]]\nname = \"s1\"\ndata_centre = \"lhr\"\nbackbone = \"10.9.0.2\"\n\
                 [[soft_unicast.egress]]\nprefix = \"198.18.201.0/30\"\ndata_centre = \"lhr\"\ncountry = \"GB\"\n";
    let tunnel = "[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n[[customer.tunnel]]\nname = \"t\"\n\
                  remote = \"198.51.100.1\"\n";
    let route = format!("{tunnel}[[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"t\"\n");
    let (rated, syn_rated) = (format!("{BUCKET}rate = 1\n"), format!("{TCP_RULE}syn_rate = 1\n"));
    let slices = "slice_size {} is not in 1..=64512 (the ports above the 1024 reserved by default)";
    // Each key: the text before and after its `key = VALUE`, the first value past the type it
    // was kept in, and what is said of VALUE (`{}`).
    let cases = [
        ("", "frame_size", "", U32, "frame_size {} is not in 256..=65536"),
        ("", "icmp_burst", "", U64, "icmp_burst {} is not in 1..=18446744073709551615"),
        ("[health]\n", "interval_ms", "", U64, "interval_ms {} is not in 10..=3600000"),
        ("[health]\n", "down_after", "", U64, "down_after {} is not in 1..=100"),
        ("[health]\n", "up_after", "", U64, "up_after {} is not in 1..=100"),
        ("[health]\n", "excused_max", "", U64, "excused_max {} is not in 0..=100"),
        ("[bgp]\n", "withdraw_after_ms", "", U64, "withdraw_after_ms {} is not in 500..=60000"),
        ("[bgp]\n", "announce_after_ms", "", U64, "announce_after_ms {} is not in 0..=600000"),
        ("[bgp]\n", "graceful_shutdown_ms", "", U64, "graceful_shutdown_ms {} is not in 0..=30000"),
        ("[bgp]\n", "withdrawn_grace_ms", "", U64, "withdrawn_grace_ms {} is not in 0..=600000"),
        (IPFIX, "sample", "", U32, "sample {} is not in 1..=1000000"),
        (IPFIX, "observation_domain", "", U32, "observation_domain {} is not in 1..=4294967295"),
        (IPFIX, "active_timeout_s", "", U32, "active_timeout_s {} is not in 1..=3600"),
        (IPFIX, "idle_timeout_s", "", U32, "idle_timeout_s {} is not in 1..=3600"),
        (IPFIX, "enterprise_number", "", U32, "enterprise_number {} is not in 1..=4294967295"),
        (IPFIX, "template_refresh_s", "", U32, "template_refresh_s {} is not in 1..=86400"),
        (IPFIX, "max_message_size", "", U32, "max_message_size {} is not in 512..=65507"),
        ("[dos]\n", "table_size", rated.as_str(), U32, "table_size {} is not in 4..=16777216"),
        (BUCKET, "rate", "", U64, "rate {} is not in 1..=18446744073709551615 (packets per second)"),
        (rated.as_str(), "burst", "", U64, "burst {} is not in 1..=18446744073709551615"),
        (TCP, "table_size", TCP_RULE, U32, "table_size {} is not in 4..=16777216"),
        (TCP, "embryonic_timeout", TCP_RULE, U32, "embryonic_timeout {} is not in 1..=86400 seconds"),
        (TCP, "idle_timeout", TCP_RULE, U32, "idle_timeout {} is not in 1..=86400 seconds"),
        (TCP, "closing_timeout", TCP_RULE, U32, "closing_timeout {} is not in 1..=86400 seconds"),
        (TCP, "grace_period", TCP_RULE, U32, "grace_period {} is not in 0..=86400 seconds"),
        (TCP, "authenticated_for", TCP_RULE, U32, "authenticated_for {} is not in 1..=86400 seconds"),
        (TCP, "challenge_rate", TCP_RULE, U32, "challenge_rate {} is not in 1..=4294967295"),
        (TCP_RULE, "syn_rate", "", U32, "syn_rate {} is not in 1..=4294967295"),
        (syn_rated.as_str(), "syn_burst", "", U32, "syn_burst {} is not in 1..=4294967295"),
        (SU, "slice_size", fleet, U32, slices),
        (SU, "backbone_key", fleet, U32, "backbone_key {} is not in 0..=16777215 (24 bits)"),
        (SU, "backbone_mtu", fleet, U32, "backbone_mtu {} is not in 576..=65535"),
        (tunnel, "mtu", "", U32, "tunnel mtu {} is not in 68..=65511"),
        (tunnel, "mss", "", U16, "mss {} is not in 88..=1436 (the tunnel MTU less 40)"),
        (route.as_str(), "weight", "", U16, "weight {} is not in 1..=65535"),
    ];
    let head = "[server]\nanycast = \"192.0.2.1\"\n";
    for (before, key, after, past_type, said) in &cases {
        // Below zero, past the type, past 64 bits and past i64 below zero.
        for value in ["-1", *past_type, U64, "-9223372036854775809"] {
            let text = format!("{head}{before}{key} = {value}\n{after}");
            let line = head.lines().count() + before.lines().count() + 1;
            let col = key.len() + 4;
            let want = format!("bad.toml:{line}:{col}: {}", said.replace("{}", value));
            assert_eq!(errors(&text), [want], "{text}");
        }
    }
    // `timeout_ms` is 1 up to `interval_ms` (1000 by default): said as the interval it is
    // longer than, or the range below it.
    let timeout = |value: &str| errors(&format!("{head}[health]\ntimeout_ms = {value}\n"));
    for value in ["-1", "-9223372036854775809"] {
        assert_eq!(timeout(value), [format!("bad.toml:4:14: timeout_ms {value} is not in 1..=1000 (interval_ms)")]);
    }
    for value in ["4294967296", "18446744073709551616"] {
        assert_eq!(timeout(value), [format!("bad.toml:4:14: timeout_ms {value} is longer than interval_ms 1000")]);
    }
    // Past 2^127 no value is kept to be said with a range; what is no integer is said so.
    let huge = "170141183460469231731687303715884105728";
    assert_eq!(
        errors(&format!("{head}frame_size = {huge}\n")),
        [format!("bad.toml:3:14: integer `{huge}` is past every key's range")]
    );
    assert_eq!(
        errors(&format!("{head}frame_size = \"9000\"\n")),
        ["bad.toml:3:14: invalid type: string \"9000\", expected an integer"]
    );
}

/// A bound of one rule list says so, at the first rule past it: "the most one configuration
/// may hold" was said of 65,537 rules in one customer's firewall, though another customer's
/// firewall takes as many again.
#[test]
fn a_rule_list_past_its_bound_says_the_bound_is_the_lists() {
    let rule = "[[customer.firewall.rule]]\nmatch = \"tcp\"\naction = \"accept\"\n";
    let head = "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"acme\"\nprefixes = [\"203.0.113.0/24\"]\n";
    let max = transitd::limits::MAX_RULES_PER_LIST;
    let text = format!("{head}{}", rule.repeat(max + 1));
    let line = head.lines().count() + 3 * max + 1;
    assert_eq!(
        errors(&text),
        [format!("bad.toml:{line}:1: more than {max} rules in customer `acme`, the most one rule list may hold")]
    );
}
