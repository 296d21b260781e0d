//! docs/operations.md shows what `transitd stats` prints; this holds the example to the
//! report as the code renders it, from the scrape the example describes
//! (`data/stats-example.txt`: one worker, a run with `[bgp]`, `[ipfix]` and
//! `--capture-drops`), so that a change to the report's layout changes the example with it.
//! (The example once kept a verdict column four characters wider than the report's.)

use std::time::{SystemTime, UNIX_EPOCH};

/// The first ```text block after `heading` in `doc`.
fn text_block_after<'a>(doc: &'a str, heading: &str) -> &'a str {
    let from = doc.find(heading).unwrap_or_else(|| panic!("docs/operations.md has no {heading:?}"));
    let rest = &doc[from..];
    let start = rest.find("```text\n").expect("a ```text block after it") + "```text\n".len();
    let len = rest[start..].find("```").expect("the block's end");
    &rest[start..start + len]
}

#[test]
fn the_operations_guides_stats_example_is_what_transitd_stats_prints() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md")).unwrap();
    let shown = text_block_after(&doc, "`transitd stats` prints the same for a person");
    // The example's run started 2m13s ago: half a second more, so that the moment this test
    // takes to render does not change the whole seconds shown.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let scrape = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats-example.txt"))
        .unwrap()
        .replace("STARTED", &format!("{:.3}", now - 133.5));
    let printed = transitd::metrics::for_people("127.0.0.1:9469".parse().unwrap(), &scrape, None);
    assert_eq!(printed, shown, "docs/operations.md shows:\n{shown}\n`transitd stats` prints:\n{printed}");
}
