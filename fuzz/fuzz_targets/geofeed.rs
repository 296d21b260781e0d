//! Any bytes as an RFC 8805 geofeed (`transitd geofeed --check` reads what a feed publisher
//! wrote): the parser never panics, says each bad line by a line number the text has, agrees
//! with its strict form, and each entry it reads, written back as a feed line, reads as
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portslice::geofeed::{Entry, parse, parse_all};

/// A CSV field (RFC 4180): quoted, its quotes doubled, when it holds a comma or a quote.
fn field(text: &str) -> String {
    if text.contains([',', '"']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn line(e: &Entry) -> String {
    format!("{}/{},{},{},{},\n", e.addr, e.prefix_len, field(&e.country), field(&e.region), field(&e.city))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (entries, errors) = parse_all(text);
    let lines = text.lines().count().max(1);
    for e in &errors {
        assert!((1..=lines).contains(&e.line), "line {} of {lines}: {}", e.line, e.reason);
    }
    assert!(errors.windows(2).all(|w| w[0].line < w[1].line), "in line order, once each");
    match parse(text) {
        Ok(all) => assert!(errors.is_empty() && all == entries),
        Err(first) => assert_eq!(Some(&first), errors.first()),
    }
    for e in &entries {
        let written = line(e);
        assert_eq!(parse(&written).as_deref(), Ok(std::slice::from_ref(e)), "{written:?}");
    }
});
