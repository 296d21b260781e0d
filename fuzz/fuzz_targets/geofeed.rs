//! Any bytes as an RFC 8805 geofeed (`transitd geofeed --check` reads what a feed publisher
//! wrote): the parser never panics, says each bad line and each warning by a line and column
//! the text has, agrees with its strict form, and each entry it reads, written back as a feed
//! line, reads as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portslice::geofeed::{Entry, parse, parse_all};

/// A CSV field (RFC 4180): quoted, its quotes doubled, when it holds a comma, a quote or a
/// carriage return (a quoted city may hold one; outside quotes it is a line break).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn line(e: &Entry) -> String {
    format!("{}/{},{},{},{},\n", e.addr, e.prefix_len, field(&e.country), field(&e.region), field(&e.city))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let checked = parse_all(text);
    let (entries, errors) = (&checked.entries, &checked.errors);
    let lines: Vec<&str> = text.lines().collect();
    for e in errors.iter().chain(&checked.warnings) {
        // A column may be one past the line's last character (where a missing field starts).
        let chars = lines.get(e.line.wrapping_sub(1)).map(|l| l.chars().count());
        assert!(chars.is_some_and(|n| (1..=n + 1).contains(&e.col)), "{}:{} of {lines:?}: {}", e.line, e.col, e.reason);
    }
    assert!(errors.windows(2).all(|w| w[0].line < w[1].line), "in line order, once each");
    assert!(checked.warnings.windows(2).all(|w| w[0].line <= w[1].line), "in line order");
    assert!(checked.warnings.iter().all(|w| errors.iter().all(|e| e.line != w.line)), "a bad line is said once");
    match parse(text) {
        Ok(all) => assert!(errors.is_empty() && &all == entries),
        Err(first) => assert_eq!(Some(&first), errors.first()),
    }
    for e in entries {
        let written = line(e);
        assert_eq!(parse(&written).as_deref(), Ok(std::slice::from_ref(e)), "{written:?}");
    }
});
