//! Any text as a ClassBench rule set, a NUL, then any text as a trace (what transitd-bench
//! reads from the files it is given). Neither reader panics. A rule set or trace read has one
//! entry per line that is not blank, each of which, written back in the format, reads as
//! itself; a refused one names a line the text has, every line before it reads, and that
//! line alone is refused. On what reads (up to 128 rules; the trace's headers and a corner
//! of each rule), the compiled table picks the linear scan's first match, every rule selects
//! its own corner, and a rule's box holds exactly the headers the rule selects.
#![no_main]

use std::net::Ipv4Addr;

use classifier::RuleTable;
use classifier::classbench::{
    ClassBenchError, ClassBenchRule, Header, boxes, first_match_linear, parse_rules, parse_trace,
};
use classifier::compile::box_contains;
use libfuzzer_sys::fuzz_target;

fn rule_line(r: &ClassBenchRule) -> String {
    let proto = match r.proto {
        Some(p) => format!("0x{p:02X}/0xFF"),
        None => "0x00/0x00".to_string(),
    };
    format!(
        "@{}/{}\t{}/{}\t{} : {}\t{} : {}\t{proto}\t0x0000/0x0000\t",
        Ipv4Addr::from(r.src.0),
        r.src.1,
        Ipv4Addr::from(r.dst.0),
        r.dst.1,
        r.sport.0,
        r.sport.1,
        r.dport.0,
        r.dport.1
    )
}

fn trace_line(h: &Header, generator: Option<u32>) -> String {
    let line = format!("{} {} {} {} {}", h.src, h.dst, h.sport, h.dport, h.proto);
    match generator {
        Some(g) => format!("{line} 0 {g}"),
        None => line,
    }
}

/// A refusal of `text` by `parse` names one of its lines, after lines that read and on a
/// line refused alone too.
fn refused_at<T>(text: &str, e: &ClassBenchError, parse: impl Fn(&str) -> Result<T, ClassBenchError>) {
    let lines: Vec<&str> = text.lines().collect();
    assert!((1..=lines.len()).contains(&e.line), "{e} of {} lines", lines.len());
    let before = lines[..e.line - 1].join("\n");
    assert!(parse(&before).is_ok(), "{e}, yet a line before it is refused");
    assert_eq!(parse(lines[e.line - 1]).err().map(|e| e.line), Some(1), "{e}, yet the line alone reads");
}

fn filled(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

fuzz_target!(|data: &[u8]| {
    let (rules_text, trace_text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let rules = std::str::from_utf8(rules_text).ok().and_then(|text| match parse_rules(text) {
        Ok(rules) => {
            assert_eq!(rules.len(), filled(text), "one rule a line");
            for r in &rules {
                let line = rule_line(r);
                assert_eq!(parse_rules(&line), Ok(vec![*r]), "{line:?}");
            }
            Some(rules)
        }
        Err(e) => {
            refused_at(text, &e, parse_rules);
            None
        }
    });
    let trace = std::str::from_utf8(trace_text).ok().and_then(|text| match parse_trace(text) {
        Ok(trace) => {
            assert_eq!(trace.len(), filled(text), "one header a line");
            for &(h, generator) in &trace {
                let line = trace_line(&h, generator);
                assert_eq!(parse_trace(&line), Ok(vec![(h, generator)]), "{line:?}");
            }
            Some(trace)
        }
        Err(e) => {
            refused_at(text, &e, parse_trace);
            None
        }
    });

    let Some(mut rules) = rules else { return };
    rules.truncate(128);
    let corner = |r: &ClassBenchRule| Header {
        src: r.src.0,
        dst: r.dst.0,
        sport: r.sport.0,
        dport: r.dport.1,
        proto: r.proto.unwrap_or(6),
    };
    let mut headers: Vec<Header> = rules.iter().map(corner).collect();
    headers.extend(trace.iter().flatten().take(256).map(|&(h, _)| h));
    let table = RuleTable::from_boxes(&boxes(&rules));
    for (i, r) in rules.iter().enumerate() {
        assert!(r.matches(&corner(r)), "rule {i} misses its corner: {r:?}");
    }
    let bounds: Vec<_> = rules.iter().take(32).map(|r| (r, r.bounds())).collect();
    for h in &headers {
        let key = h.key();
        assert_eq!(table.first_match(&key, &[]), first_match_linear(&rules, h), "{h:?}");
        for (r, b) in &bounds {
            assert_eq!(box_contains(b, &key), r.matches(h), "{r:?} {h:?}");
        }
    }
});
