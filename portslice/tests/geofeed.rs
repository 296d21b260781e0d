//! RFC 8805 geofeeds, both directions.

use portslice::geofeed::{self, range_to_prefixes};
use portslice::plan::{EgressRange, Tags};
use proptest::prelude::*;

#[test]
fn the_rfc_example_feed_parses() {
    // RFC 8805 §2.1.1's sample entries (postal codes are deprecated but still parse).
    let feed = "# IP Prefix,Alpha2code,Region,City,Postal Code\n\
                192.0.2.0/25,US,US-AL,,\n\
                192.0.2.5,US,US-AL,Alabaster,\n\
                192.0.2.128/25,PL,PL-MZ,,02-784\n\
                2001:db8::/32,PL,,,\n\
                2001:db8:cafe::/48,PL,PL-MZ,,02-784\n";
    let e = geofeed::parse(feed).unwrap();
    assert_eq!(e.len(), 5);
    assert_eq!((e[1].prefix_len, e[1].city.as_str()), (32, "Alabaster"));
    assert_eq!((e[3].prefix_len, e[3].country.as_str(), e[3].region.as_str()), (32, "PL", ""));
}

/// A byte order mark may start the file (and is not part of its first prefix).
#[test]
fn a_byte_order_mark_may_start_the_feed() {
    let entries = geofeed::parse("\u{feff}192.0.2.0/24,GB,,,\n").unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].prefix_len, 24);
}

#[test]
fn malformed_lines_are_refused_with_their_line_number() {
    for (bad, why) in [
        ("192.0.2.1/24,GB,,,", "host bits"),
        ("192.0.2.0/33,GB,,,", "prefix length"),
        ("not-a-prefix,GB,,,", "not an IP prefix"),
        ("192.0.2.0/24,GBR,,,", "alpha-2"),
        ("192.0.2.0/24,GB,US-CA,,", "ISO 3166-2"),
        ("192.0.2.0/24,GB,,,,extra", "at most 5"),
        ("\u{feff}192.0.2.0/24,GB,,,", "byte order mark inside the feed"),
    ] {
        let err = geofeed::parse(&format!("# header\n{bad}\n")).unwrap_err();
        assert_eq!(err.line, 2, "{bad}");
        assert!(err.reason.contains(why), "{bad}: {}", err.reason);
    }
}

/// The countries a feed may name are ISO 3166-1's, as Debian's iso-codes lists them (every
/// pair of letters tried, either case), and `XK`, which geolocation uses for Kosovo.
#[test]
fn a_country_is_one_iso_3166_1_assigns() {
    let path = "/usr/share/iso-codes/json/iso_3166-1.json";
    let text = std::fs::read_to_string(path).expect("ISO 3166-1 (apt-get install iso-codes, or run .ci/run)");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let iso: std::collections::BTreeSet<String> =
        json["3166-1"].as_array().unwrap().iter().map(|c| c["alpha_2"].as_str().unwrap().to_string()).collect();
    assert!(iso.len() > 240 && iso.contains("GB") && !iso.contains("UK"), "{iso:?}");
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            let code = String::from_utf8(vec![a, b]).unwrap();
            let assigned = iso.contains(&code) || code == "XK";
            assert_eq!(geofeed::check_country(&code).is_none(), assigned, "{code}");
            assert_eq!(geofeed::check_country(&code.to_ascii_lowercase()).is_none(), assigned, "{code}");
        }
    }
    for bad in ["", "G", "GBR", "G1", "ÉÉ"] {
        assert!(geofeed::check_country(bad).is_some(), "{bad}");
    }
    let feed = geofeed::parse_all("192.0.2.0/24,UK,,,\n192.0.2.0/24,gb,,,\n192.0.2.0/24,,,,\n");
    assert_eq!(feed.0.len(), 2);
    assert!(feed.1[0].reason.contains("the United Kingdom is `GB`"), "{:?}", feed.1);
}

fn range(a: [u8; 4], len: u8, country: &str, class: &str) -> EgressRange {
    EgressRange {
        network: u32::from(std::net::Ipv4Addr::from(a)),
        prefix_len: len,
        tags: Tags { country: country.into(), class: class.into(), ..Tags::default() },
        data_centre: "lhr".into(),
    }
}

#[test]
fn contiguous_ranges_with_one_location_merge_into_the_fewest_prefixes() {
    // Two adjacent /26 of GB (different trust classes, same location) and one of FR.
    let feed = geofeed::generate(&[
        range([198, 51, 100, 64], 26, "GB", "untrusted"),
        range([198, 51, 100, 0], 26, "GB", "trusted"),
        range([198, 51, 100, 128], 26, "FR", "trusted"),
    ]);
    let lines: Vec<&str> = feed.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["198.51.100.0/25,GB,,,", "198.51.100.128/26,FR,,,"]);
    assert_eq!(geofeed::parse(&feed).unwrap().len(), 2);
}

/// ISO 3166 codes are upper case in the feed however the configuration writes them, and
/// two spellings of one code are one location.
#[test]
fn country_and_region_codes_are_written_upper_case() {
    let mut lower = range([198, 51, 100, 0], 25, "gb", "trusted");
    lower.tags.region = "gb-eng".into();
    let mut upper = range([198, 51, 100, 128], 25, "GB", "trusted");
    upper.tags.region = "GB-ENG".into();
    let feed = geofeed::generate(&[lower, upper]);
    let lines: Vec<&str> = feed.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["198.51.100.0/24,GB,GB-ENG,,"]);
}

#[test]
fn cities_with_commas_and_quotes_are_quoted_as_csv_and_read_back() {
    let mut dc = range([198, 51, 100, 0], 25, "US", "trusted");
    (dc.tags.region, dc.tags.city) = ("US-DC".into(), "Washington, D.C.".into());
    let mut odd = range([198, 51, 100, 128], 25, "GB", "trusted");
    odd.tags.city = "The \"Big\" Smoke".into();
    let feed = geofeed::generate(&[dc, odd]);
    let ours: Vec<String> = geofeed::parse(&feed).unwrap().into_iter().map(|e| e.city).collect();
    assert_eq!(ours, ["Washington, D.C.", "The \"Big\" Smoke"]);
    // Python's csv module, RFC 4180's reader nobody here wrote, reads five fields a line and
    // the same cities.
    let out = std::process::Command::new("python3")
        .args(["-c", "import csv, sys\nfor r in csv.reader(l for l in sys.stdin if not l.startswith('#')): print(len(r), r[3], sep='|')"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(feed.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5|Washington, D.C.\n5|The \"Big\" Smoke\n");
}

#[test]
fn regions_must_be_the_countrys_and_cities_one_line() {
    assert_eq!(geofeed::check_region("GB", "GB-ENG"), None);
    assert_eq!(geofeed::check_region("GB", "gb-eng"), None);
    assert_eq!(geofeed::check_region("GB", ""), None);
    for bad in ["ENG", "US-CA", "GB-", "GB-ENGL", "GB-E G"] {
        assert!(geofeed::check_region("GB", bad).is_some(), "{bad}");
    }
    // With no country to agree with, the region's own country part is still two letters.
    assert_eq!(geofeed::check_region("", "GB-ENG"), None);
    for bad in ["1!-AB", "é-AB", "G1-AB"] {
        assert!(geofeed::check_region("", bad).is_some(), "{bad}");
    }
    assert_eq!(geofeed::check_text("Washington, D.C."), None);
    assert!(geofeed::check_text("London\n10.0.0.0/8,US,,,").is_some());
}

proptest! {
    #[test]
    fn range_to_prefixes_covers_exactly_and_minimally(lo in any::<u32>(), len in 0u32..5000) {
        let hi = lo.saturating_add(len);
        let p = range_to_prefixes(lo, hi);
        let mut next = u64::from(lo);
        for (net, l) in &p {
            prop_assert_eq!(u64::from(*net), next, "contiguous and in order");
            let size = 1u64 << (32 - u32::from(*l));
            prop_assert_eq!(u64::from(*net) % size, 0, "aligned");
            next += size;
        }
        prop_assert_eq!(next, u64::from(hi) + 1);
        // Minimal: no two neighbours could merge into one aligned block.
        for w in p.windows(2) {
            let (a, b) = (w[0], w[1]);
            let size = 1u64 << (32 - u32::from(a.1));
            prop_assert!(!(a.1 == b.1 && u64::from(a.0) % (2 * size) == 0), "{:?} and {:?} merge", a, b);
        }
    }

    #[test]
    fn generated_feeds_parse_back_to_the_same_addresses(
        blocks in prop::collection::btree_set(0u8..64, 1..20),
        countries in prop::collection::vec(prop::sample::select(vec!["GB", "FR", "DE"]), 64),
    ) {
        let ranges: Vec<EgressRange> = blocks.iter().map(|&b| range([198, 51, b * 4, 0], 22, countries[usize::from(b)], "x")).collect();
        let feed = geofeed::generate(&ranges);
        let entries = geofeed::parse(&feed).unwrap();
        // Every generated address has the country of its range, and nothing else is covered.
        let covered: u64 = entries.iter().map(|e| 1u64 << (32 - u32::from(e.prefix_len))).sum();
        prop_assert_eq!(covered, ranges.len() as u64 * 1024);
        for e in &entries {
            let std::net::IpAddr::V4(a) = e.addr else { panic!() };
            let block = (u32::from(a) >> 10) & 0x3f;
            prop_assert_eq!(e.country.as_str(), countries[block as usize]);
        }
    }
}

/// A prefix length is digits: Rust's integer parser also takes `+24`.
#[test]
fn a_prefix_length_with_a_sign_is_refused() {
    let err = geofeed::parse("192.0.2.0/+24,GB,,,\n").unwrap_err();
    assert!(err.reason.contains("prefix length"), "{}", err.reason);
}

/// Each line is CSV as Python's strict reader reads it: a quote never closed and text after
/// a closing quote are errors (the `csv` crate took both, reading the line as if it were
/// well formed); a quote inside a field not quoted is text.
#[test]
fn lines_that_are_not_csv_are_refused() {
    let strict = |line: &str| {
        let script = "import csv, sys\ntry:\n list(csv.reader([sys.argv[1]], strict=True)); print('ok')\nexcept csv.Error: print('bad')";
        let out = std::process::Command::new("python3").args(["-c", script, line]).output().expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).trim() == "ok"
    };
    for (line, good) in [
        ("198.51.100.0/24,GB,GB-ENG,\"London\",", true),
        ("198.51.100.0/24,US,US-DC,\"Washington, D.C.\",", true),
        ("198.51.100.0/24,GB,,\"The \"\"Big\"\" Smoke\",", true),
        ("198.51.100.0/24,GB,GB-ENG,\"London", false),
        ("198.51.100.0/24,GB,GB-ENG,\"Lon\"don,", false),
        ("198.51.100.0/24,GB,GB-ENG,Lon\"don,", true),
        ("198.51.100.0/24,GB,GB-ENG,\"London\" ,", false),
        ("198.51.100.0/24,GB,GB-ENG, \"Lon\"don,", true),
    ] {
        assert_eq!(strict(line), good, "python's reader on {line}");
        let ours = geofeed::parse(line);
        assert_eq!(ours.is_ok(), good, "{line}: {ours:?}");
        if let Err(e) = ours {
            assert!(e.reason.starts_with("not CSV"), "{line}: {}", e.reason);
        }
    }
}
