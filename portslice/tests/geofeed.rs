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

/// A byte order mark starting the file is the file reader's to drop (`transitd`'s drops it,
/// as Python's `utf-8-sig` does): a U+FEFF at the start of the text is a second one, which
/// such a reader leaves in the first prefix (`'\ufeff192.0.2.0/24'`), so an error. It was
/// dropped here as well, and a feed of two marks passed `geofeed --check`.
#[test]
fn a_byte_order_mark_left_at_the_start_of_the_text_is_an_error() {
    let err = geofeed::parse("\u{feff}192.0.2.0/24,GB,,,\n").unwrap_err();
    assert_eq!((err.line, err.col), (1, 1));
    assert!(err.reason.contains("byte order mark"), "{}", err.reason);
}

#[test]
fn malformed_lines_are_refused_with_their_line_number() {
    for (bad, why) in [
        ("192.0.2.1/24,GB,,,", "host bits"),
        ("192.0.2.0/33,GB,,,", "prefix length"),
        ("not-a-prefix,GB,,,", "not an IP prefix"),
        ("192.0.2.0/24,GBR,,,", "alpha-2"),
        ("192.0.2.0/24,GB,US-CA,,", "ISO 3166-2"),
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
    let feed = geofeed::parse_all("192.0.2.0/24,UK,,,\n198.51.100.0/24,gb,,,\n203.0.113.0/24,,,,\n");
    assert_eq!(feed.entries.len(), 2);
    assert!(feed.errors[0].reason.contains("the United Kingdom is `GB`"), "{:?}", feed.errors);
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
    // A `#` starts a comment (RFC 8805 §2.1), quoted or not: a feed written with it says
    // another city, or a line that is no CSV.
    assert!(geofeed::check_text("Suite #5").is_some_and(|why| why.contains("comment")));
    let mut hash = range([198, 51, 100, 0], 24, "US", "trusted");
    hash.tags.city = "Suite #5".into();
    assert_eq!(geofeed::parse(&geofeed::generate(&[hash.clone()])).unwrap()[0].city, "Suite ");
    hash.tags.city = "Suite #5, Main St".into();
    assert!(geofeed::parse(&geofeed::generate(&[hash])).unwrap_err().reason.contains("not CSV"));
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

/// Each line is CSV as Python's strict reader reads it: a quote never closed, text after a
/// closing quote and a carriage return outside quotes are errors (the `csv` crate took all
/// three, reading the line as if it were well formed); a quote inside a field not quoted is
/// text.
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
        // A carriage return is a line break to these readers: one ending the line ends it,
        // one inside a field not quoted is refused (the `csv` crate ended the record there,
        // and the rest of the line went unread).
        ("198.51.100.0/24,GB,GB-ENG,London,\r", true),
        ("198.51.100.0/24,GB,GB-ENG,Lon\rdon,", false),
        ("198.51.100.0/24,GB,GB-ENG,\"Lon\rdon\",", true),
    ] {
        assert_eq!(strict(line), good, "python's reader on {line}");
        let ours = geofeed::parse(line);
        assert_eq!(ours.is_ok(), good, "{line}: {ours:?}");
        if let Err(e) = ours {
            assert!(e.reason.starts_with("not CSV"), "{line}: {}", e.reason);
        }
    }
}

/// What `python3 -c script` prints, given `input` on standard input.
fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script}");
    String::from_utf8(out.stdout).unwrap()
}

/// RFC 8805 §2.1.3: "Duplicate IP address or prefix entries MUST be considered an error, and
/// consumer implementations SHOULD log the repeated entries for further administrative
/// review." The same section: "Multiple entries that constitute nested prefixes are
/// permitted." Which line repeats which Python's `ipaddress` decides (one network, however
/// written: `192.0.2.1` is `192.0.2.1/32`, `2001:0db8:0000::/32` is `2001:db8::/32`); the
/// nested entries (RFC 8805 §2.2's `192.0.2.5` in its `192.0.2.0/25`, say) are not said.
#[test]
fn a_prefix_given_twice_is_an_error_naming_both_lines_and_a_nested_one_is_not() {
    let feed = "# feed\n\
                192.0.2.0/24,US,,,\n\
                192.0.2.1,US,US-AL,Alabaster,\n\
                192.0.2.1/32,GB,,,\n\
                2001:db8::/32,PL,,,\n\
                2001:db8:cafe::/48,PL,PL-MZ,,\n\
                2001:0db8:0000::/32,PL,,,\n\
                192.0.2.0/24,US,,,\n";
    // Each entry line whose network an earlier line has: that line, then the earlier one.
    let script = "import csv, ipaddress, sys\nfirst = {}\n\
                  for n, line in enumerate(sys.stdin.read().splitlines(), 1):\n \
                  if line.startswith('#'): continue\n \
                  net = ipaddress.ip_network(next(csv.reader([line], strict=True))[0])\n \
                  if net in first: print(n, first[net])\n \
                  else: first[net] = n";
    let oracle = python(script, feed);
    assert_eq!(oracle, "4 3\n7 5\n8 2\n");
    let checked = geofeed::parse_all(feed);
    let ours: String = checked
        .errors
        .iter()
        .map(|e| {
            let first = e.reason.split("duplicate of line ").nth(1).and_then(|r| r.split(' ').next());
            format!("{} {}\n", e.line, first.unwrap_or_else(|| panic!("{e:?}")))
        })
        .collect();
    assert_eq!(ours, oracle, "{:?}", checked.errors);
    assert!(checked.errors.iter().all(|e| e.col == 1 && e.reason.contains("§2.1.3")), "{:?}", checked.errors);
    // The first of each stands, nested prefixes with it, and nothing is warned about.
    let kept: Vec<String> = checked.entries.iter().map(|e| format!("{}/{}", e.addr, e.prefix_len)).collect();
    assert_eq!(kept, ["192.0.2.0/24", "192.0.2.1/32", "2001:db8::/32", "2001:db8:cafe::/48"]);
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    assert_eq!(geofeed::parse(feed).unwrap_err().line, 4);
}

/// RFC 4180 §2: "Spaces are considered part of a field and should not be ignored." Python's
/// strict reader keeps them, and its `ipaddress` then finds no network in ` 192.0.2.0/24 `.
/// RFC 8805 §2.1.3 says such an entry "MUST be discarded" (and one whose optional field
/// "fail[s] to parse ... SHOULD be discarded": ` US ` is no ISO 3166-1 code), so blanks
/// around the prefix, the country or the region are an error; the city is "free UTF-8 text"
/// (§2.1.1.4), so there they are a warning. Either at the column where the field starts.
#[test]
fn blanks_around_a_field_are_part_of_it() {
    /// What the check says of a line: an error or a warning at a column, or nothing.
    enum Said {
        Error(usize),
        Warning(usize),
        Nothing,
    }
    // Line; the first field Python reads with blanks, and whether its field 0 is a network;
    // what we say.
    let cases = [
        (" 192.0.2.0/24 , US ,,,", "0 no network", Said::Error(1)),
        ("192.0.2.0/24 ,US,,,", "0 no network", Said::Error(1)),
        ("192.0.2.0/24, US,,,", "1 network", Said::Error(14)),
        ("192.0.2.0/24,US,US-CA ,,", "2 network", Said::Error(17)),
        ("192.0.2.0/24,US,US-CA, San Francisco,", "3 network", Said::Warning(23)),
        ("192.0.2.0/24,US,US-CA,\"San Francisco \",", "3 network", Said::Warning(23)),
        ("192.0.2.0/24,US,US-CA,San Francisco,", "- network", Said::Nothing),
    ];
    let script = "import csv, ipaddress, sys\n\
                  for line in sys.stdin.read().splitlines():\n \
                  fields = next(csv.reader([line], strict=True))\n \
                  blank = [str(k) for k, f in enumerate(fields) if f != f.strip()]\n \
                  try: ipaddress.ip_network(fields[0]); ok = 'network'\n \
                  except ValueError: ok = 'no network'\n \
                  print(blank[0] if blank else '-', ok)";
    let lines: String = cases.iter().map(|c| format!("{}\n", c.0)).collect();
    let oracle = python(script, &lines);
    assert_eq!(oracle.lines().collect::<Vec<_>>(), cases.iter().map(|c| c.1).collect::<Vec<_>>());
    for (line, _, expected) in cases {
        let checked = geofeed::parse_all(line);
        let said = match expected {
            Said::Error(col) => {
                assert_eq!(checked.errors.iter().map(|e| e.col).collect::<Vec<_>>(), [col], "{line}");
                &checked.errors[0]
            }
            Said::Warning(col) => {
                assert!(checked.errors.is_empty(), "{line}: {:?}", checked.errors);
                assert_eq!(checked.warnings.iter().map(|e| e.col).collect::<Vec<_>>(), [col], "{line}");
                &checked.warnings[0]
            }
            Said::Nothing => {
                assert!(checked.errors.is_empty() && checked.warnings.is_empty(), "{line}: {checked:?}");
                continue;
            }
        };
        assert!(said.reason.contains("blanks around it"), "{line}: {}", said.reason);
    }
}

/// RFC 8805 §2.1.1.4: "The city field, if non-empty, SHOULD be free UTF-8 text, excluding the
/// comma (',') character." A SHOULD, not a MUST: the entry stands (Python's strict reader
/// reads five fields, the city `San Francisco, CA`) and the city is warned about, as it is
/// in what `generate` writes for such a city.
#[test]
fn a_city_with_a_comma_is_a_warning_not_an_error() {
    let line = "192.0.2.0/24,US,US-CA,\"San Francisco, CA\",";
    let script =
        "import csv, sys\nr = next(csv.reader([sys.stdin.read().strip()], strict=True))\nprint(len(r), r[3], sep='|')";
    assert_eq!(python(script, line), "5|San Francisco, CA\n");
    let checked = geofeed::parse_all(line);
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert_eq!(checked.entries.iter().map(|e| e.city.as_str()).collect::<Vec<_>>(), ["San Francisco, CA"]);
    assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
    assert_eq!((checked.warnings[0].line, checked.warnings[0].col), (1, 23));
    assert!(checked.warnings[0].reason.contains("comma") && checked.warnings[0].reason.contains("§2.1.1.4"));
    let mut sf = range([198, 51, 100, 0], 24, "US", "trusted");
    (sf.tags.region, sf.tags.city) = ("US-CA".into(), "San Francisco, CA".into());
    let written = geofeed::parse_all(&geofeed::generate(&[sf]));
    assert_eq!((written.entries.len(), written.errors.len(), written.warnings.len()), (1, 0, 1), "{written:?}");
    assert_eq!(geofeed::comma_warning("London"), None);
}

/// A control character in a field a message quotes is written as its escape: printed as it
/// was, a quoted carriage return moved the terminal's cursor back over the message and the
/// position before it (`"\ra#"` as a country), an escape sequence could recolour the rest.
#[test]
fn control_characters_in_a_quoted_field_are_escaped() {
    let err = geofeed::parse("192.0.2.0/24,\"\ra\u{1b}[31m\",,,\n").unwrap_err();
    assert!(err.reason.contains(r"`\ra\u{1b}[31m`"), "{}", err.reason);
    assert!(!err.reason.chars().any(char::is_control), "{:?}", err.reason);
}

/// Unicode's line and paragraph separators (U+2028, U+2029) are the end of a line to a reader
/// that goes by Unicode (UAX #14's mandatory breaks; Python's `str.splitlines`), though not to
/// a CSV reader: a city holding one cut its feed line in two, an entry with half a city and a
/// line `don,` that is no entry. Refused in a city, as a control character is, escaped where a
/// message quotes it; a feed's city holding either, or a control character (a quoted carriage
/// return, a NUL), is warned about: `geofeed --check` passed them as well formed.
#[test]
fn a_line_separator_or_control_character_in_a_city_is_no_city_of_one_line() {
    let split = "import sys\nprint(len(sys.stdin.buffer.read().decode('utf-8').splitlines()))";
    for sep in ['\u{2028}', '\u{2029}'] {
        let city = format!("Lon{sep}don");
        let mut r = range([198, 51, 100, 0], 24, "GB", "trusted");
        r.tags.city = city.clone();
        let feed = geofeed::generate(&[r]);
        // The comment line and one entry, read as three lines.
        assert_eq!(feed.lines().count(), 2);
        assert_eq!(python(split, &feed), "3\n");
        let why = geofeed::check_text(&city).expect("a city with a line separator is refused");
        assert!(why.contains("line or paragraph separator") && !why.contains(sep), "{why:?}");
        let checked = geofeed::parse_all(&feed);
        assert_eq!(checked.entries.len(), 1, "{checked:?}");
        assert_eq!(checked.warnings.len(), 1, "{checked:?}");
        assert_eq!((checked.warnings[0].line, checked.warnings[0].col), (2, 21));
        assert!(!checked.warnings[0].reason.contains(sep), "escaped: {:?}", checked.warnings[0].reason);
    }
    // Control characters, which no configuration lets `generate` write: Python's strict reader
    // takes each line as one entry and its city whole, a NUL or a carriage return in it.
    let lines = ["192.0.2.0/24,GB,GB-ENG,Lon\0don,", "198.51.100.0/24,GB,GB-ENG,\"Lon\rdon\","];
    let strict = "import csv, sys\nfor r in csv.reader(sys.stdin.buffer.read().decode('utf-8').split('\\n')[:-1], \
                  strict=True): print(len(r), repr(r[3]))";
    assert_eq!(python(strict, &format!("{}\n{}\n", lines[0], lines[1])), "5 'Lon\\x00don'\n5 'Lon\\rdon'\n");
    for line in lines {
        let checked = geofeed::parse_all(line);
        assert_eq!(checked.entries.len(), 1, "{checked:?}");
        assert_eq!(checked.warnings.len(), 1, "{line:?}: {checked:?}");
        assert_eq!(checked.warnings[0].col, line.find("\"Lon").or_else(|| line.find("Lon")).unwrap() + 1);
        assert!(checked.warnings[0].reason.contains("control character"), "{checked:?}");
    }
}

/// What `python3 -c script` prints for `lines`, one a line on standard input.
fn python_lines(script: &str, lines: &[&str]) -> Vec<String> {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    python(script, &input).lines().map(str::to_string).collect()
}

/// RFC 8805 §2.1: "Text from a '#' character to the end of the current line is treated as a
/// comment only and is similarly ignored (note that this does not strictly follow [RFC4180],
/// which has no support for comments)." Any `#`, then, not only one starting a line (the only
/// comment here before): the comment goes, and what is left is read as CSV; Appendix A's
/// validator cuts a line alike, `line.split('#')[0]`. Python's strict reader on what is left says what each
/// line is: a comment, not CSV (a quoted field the `#` cut short, said with the `#`'s
/// column), or an entry and its city.
#[test]
fn a_hash_anywhere_starts_a_comment() {
    let lines = [
        "   # indented",
        "192.0.2.0/24,GB,GB-ENG,London,# office, 2nd floor",
        "198.51.100.0/24,,,,# was 198.51.100.0/33,UK",
        "203.0.113.0/24,DE,,Berlin#Mitte,",
        "2001:db8::/32,US,,\"Suite #5\",",
    ];
    let script = "import csv, sys\n\
                  for line in sys.stdin.read().splitlines():\n \
                  entry = line.split('#')[0]\n \
                  if not entry.strip(): print('comment'); continue\n \
                  try: f = next(csv.reader([entry], strict=True))\n \
                  except csv.Error: print('not CSV'); continue\n \
                  print('entry', f[3] if len(f) > 3 else '', sep='|')";
    let oracle = python_lines(script, &lines);
    assert_eq!(oracle, ["comment", "entry|London", "entry|", "entry|Berlin", "not CSV"]);
    for (line, expected) in lines.iter().zip(&oracle) {
        let checked = geofeed::parse_all(line);
        let ours = match (checked.errors.first(), checked.entries.first()) {
            (Some(e), _) if e.reason.starts_with("not CSV") => "not CSV".to_string(),
            (None, None) => "comment".to_string(),
            (None, Some(e)) => format!("entry|{}", e.city),
            (Some(e), _) => panic!("{line}: {e:?}"),
        };
        assert_eq!(&ours, expected, "{line}");
    }
    // The entries before a comment are whole: nothing said of them.
    assert!(geofeed::parse_all(lines[1]).warnings.is_empty());
    assert!(geofeed::parse_all(lines[2]).warnings.is_empty());
    // `Berlin#Mitte` left four fields, said as such where the comment starts.
    let berlin = geofeed::parse_all(lines[3]);
    assert_eq!(
        berlin.warnings.iter().map(|w| (w.col, w.reason.contains("only 4 of the 5"))).collect::<Vec<_>>(),
        [(26, true)]
    );
    let suite = geofeed::parse_all(lines[4]);
    assert_eq!(suite.errors[0].col, 19, "the quote");
    assert!(suite.errors[0].reason.contains("the `#` at column 26 starts a comment"), "{:?}", suite.errors);
}

/// RFC 8805 §2.1: "The IP prefix field is REQUIRED, all others are OPTIONAL (can be empty),
/// though the requisite minimum number of commas SHOULD be present"; §2.1.3: "For
/// compatibility with future additional fields, a parser MUST ignore any fields beyond those
/// it expects. The data from fields that are expected and that parse successfully MUST still
/// be considered valid." So fewer or more than five fields is a warning, the entry standing
/// (more was an error here; fewer passed unsaid). The first three lines are from RFC 8805
/// Appendix A's `ipgeo_feed_validator_test.py`, which warns "5 fields were expected" of each
/// and errs on none; the last two are §2.2's ICANN feed. Python's reader counts the fields.
/// (The third line's postal code is said too: §2.1.1.5 deprecates it, which that test, of
/// 2012, predates.)
#[test]
fn fewer_or_more_than_five_fields_are_warnings() {
    let lines = [
        "2001:db8:cafe::/48",
        "55.66.77.88,PL",
        "55.66.77.88,US,US-CA,Mountain View,94043,1600 Ampthitheatre Parkway",
        "199.91.192.0/21,MA,MA-07,Marrakech",
        "2620:f:8000::/48,MA,MA-07,Marrakech",
    ];
    let script =
        "import csv, sys\nfor line in sys.stdin.read().splitlines(): print(len(next(csv.reader([line], strict=True))))";
    let counts = python_lines(script, &lines);
    assert_eq!(counts, ["1", "2", "6", "4", "4"]);
    for (line, n) in lines.iter().zip(&counts) {
        let checked = geofeed::parse_all(line);
        assert!(checked.errors.is_empty(), "{line}: {:?}", checked.errors);
        assert_eq!(checked.entries.len(), 1, "{line}");
        let said = checked.warnings.last().unwrap_or_else(|| panic!("{line}: no warning"));
        let count =
            if n == "6" { "6 fields: RFC 8805 §2.1.3".to_string() } else { format!("only {n} of the 5 fields") };
        assert!(said.reason.contains(&count), "{line}: {}", said.reason);
        // Where the missing field would start, or where the sixth does.
        assert_eq!(said.col, if n == "6" { 42 } else { line.len() + 1 }, "{line}");
        assert_eq!(checked.warnings.len(), if n == "6" { 2 } else { 1 }, "{line}: {:?}", checked.warnings);
    }
    assert_eq!(geofeed::parse_all(lines[2]).entries[0].city, "Mountain View");
}

/// RFC 8805 §2.1.1.5: "The use of this field is deprecated; consumers of feeds should be able
/// to parse feeds containing these fields, but new feeds SHOULD NOT include this field due to
/// the granularity of this information." A postal code is a warning at its column (the
/// entry stands); one of blanks only (`London, # office`: the blank before the comment is the
/// field's, RFC 4180 §2) is said as blanks.
#[test]
fn a_postal_code_is_a_warning() {
    for (line, col, says) in [
        ("2001:db8:cafe::/48,PL,PL-MZ,,02-784", 30, "§2.1.1.5"),
        ("55.66.77.88,US,US-CA,Mountain View,94043", 36, "§2.1.1.5"),
        ("192.0.2.0/24,GB,GB-ENG,London, # office", 31, "blanks around it"),
    ] {
        let checked = geofeed::parse_all(line);
        assert!(checked.errors.is_empty() && checked.entries.len() == 1, "{line}: {checked:?}");
        assert_eq!(checked.warnings.iter().map(|w| w.col).collect::<Vec<_>>(), [col], "{line}");
        assert!(checked.warnings[0].reason.contains(says), "{line}: {}", checked.warnings[0].reason);
    }
    assert!(geofeed::parse_all("192.0.2.0/24,GB,GB-ENG,London,\n").warnings.is_empty());
}

/// RFC 8805 §2.1.3: "While publishers SHOULD follow [RFC5952] for IPv6 prefix fields,
/// consumers MUST nevertheless accept all valid string representations." A prefix written
/// otherwise is a warning naming the RFC 5952 form. The oracle is Python's `ipaddress`, whose
/// `str` is RFC 5952 §4's form (lower case, no leading zeros, the first longest run of zeros
/// as `::`), but for an IPv4-mapped address, which §5 recommends in mixed notation
/// (`::ffff:192.0.2.0`) and Python 3.11 writes in hex; text already in mixed notation is the
/// writer's choice (§5).
#[test]
fn ipv6_not_written_as_rfc_5952_says_is_a_warning() {
    let lines = [
        "2001:db8::/32,PL,,,",
        "2001:DB8::/32,PL,,,",
        "2001:0db8:cafe::/48,PL,,,",
        "2001:db8::1:0:0:0/80,PL,,,",
        "2001:db8:0:0:1::/80,PL,,,",
        "2001:db8::1,PL,,,",
        "2001:db8:0:0:0:0:0:2,PL,,,",
        "::ffff:192.0.2.0/120,PL,,,",
        "::ffff:c000:200/120,PL,,,",
        "192.0.2.0/24,PL,,,",
    ];
    let script = "import ipaddress, sys\n\
                  for line in sys.stdin.read().splitlines():\n \
                  text = line.split(',')[0]; net = ipaddress.ip_network(text); a = net.network_address\n \
                  if net.version == 4 or '.' in text: print('-'); continue\n \
                  canon = '::ffff:' + str(a.ipv4_mapped) if a.ipv4_mapped else str(a)\n \
                  canon = canon + '/' + str(net.prefixlen) if '/' in text else canon\n \
                  print('-' if text == canon else canon)";
    let oracle = python_lines(script, &lines);
    assert_eq!(
        oracle,
        [
            "-",
            "2001:db8::/32",
            "2001:db8:cafe::/48",
            "2001:db8:0:0:1::/80",
            "-",
            "-",
            "2001:db8::2",
            "-",
            "::ffff:192.0.2.0/120",
            "-"
        ]
    );
    for (line, expected) in lines.iter().zip(&oracle) {
        let checked = geofeed::parse_all(line);
        assert!(checked.errors.is_empty(), "{line}: {:?}", checked.errors);
        let ours: Vec<&str> = checked
            .warnings
            .iter()
            .map(|w| {
                assert!(w.col == 1 && w.reason.contains("RFC 5952"), "{line}: {w:?}");
                w.reason.rsplit('`').nth(1).unwrap_or("")
            })
            .collect();
        assert_eq!(ours, if expected == "-" { vec![] } else { vec![expected.as_str()] }, "{line}");
    }
}

/// RFC 8805 §2.1.2: a prefix with no location leaves every location field blank
/// (`192.0.2.0/24,,,,`), and "Historically, the user-assigned alpha2code identifier of "ZZ"
/// has been used for this same purpose. This is not necessarily preferred, and no specific
/// interpretation of any of the other user-assigned alpha2code codes is currently defined."
/// So `ZZ` is a warning (it was an error), other user-assigned codes (`QZ`) stay errors.
/// Appendix A's test passes `55.66.77.88,ZZ,,,` without an error.
#[test]
fn zz_for_no_location_is_a_warning() {
    let checked = geofeed::parse_all("192.0.2.0/24,,,,\n2001:db8:1::/48,,,,\n55.66.77.88,zz,,,\n55.66.77.89,QZ,,,\n");
    assert_eq!(checked.errors.iter().map(|e| (e.line, e.col)).collect::<Vec<_>>(), [(4, 13)]);
    assert_eq!(checked.warnings.iter().map(|w| (w.line, w.col)).collect::<Vec<_>>(), [(3, 13)]);
    assert!(checked.warnings[0].reason.contains("§2.1.2"), "{}", checked.warnings[0].reason);
    let countries: Vec<&str> = checked.entries.iter().map(|e| e.country.as_str()).collect();
    assert_eq!(countries, ["", "", "ZZ"]);
    // A place under `ZZ` contradicts it: said at the place (the review's `ZZ,ZZ-AB,X`).
    let checked = geofeed::parse_all(
        "198.51.100.0/24,ZZ,ZZ-AB,X,
198.51.101.0/24,ZZ,,Paris,
",
    );
    let at: Vec<(usize, usize)> = checked.warnings.iter().map(|w| (w.line, w.col)).collect();
    assert_eq!(at, [(1, 17), (1, 20), (2, 17), (2, 21)]);
    assert!(checked.warnings[1].reason.contains("a region under `ZZ`"), "{}", checked.warnings[1].reason);
    assert!(checked.warnings[3].reason.contains("a city under `ZZ`"), "{}", checked.warnings[3].reason);
}
