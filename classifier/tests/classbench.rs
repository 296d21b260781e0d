//! ClassBench 1k rule sets and traces (CutSplit's, see data/classbench/SOURCES.md): the
//! compiled table answers every trace line as a linear first-match scan over the rules does.

use classifier::RuleTable;
use classifier::classbench::{self, first_match_linear};

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/classbench").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(rules_file: &str, trace_file: &str) {
    let rules = classbench::parse_rules(&data(rules_file)).unwrap();
    let trace = classbench::parse_trace(&data(trace_file)).unwrap();
    let table = RuleTable::from_boxes(&classbench::boxes(&rules));
    assert!(table.stats().nodes > 100, "{rules_file}: the table is a real tree");
    let keys: Vec<_> = trace.iter().map(|(h, _)| h.key()).collect();
    let refs: Vec<_> = keys.iter().collect();
    let mut batched = vec![None; refs.len()];
    table.first_match_batch(&refs, &vec![&[][..]; refs.len()], &mut batched);
    let mut generator_not_first = 0;
    for (line, (h, generator)) in trace.iter().enumerate() {
        let expect = first_match_linear(&rules, h);
        assert_eq!(table.first_match(&h.key(), &[]), expect, "{trace_file} line {}: {h:?}", line + 1);
        assert_eq!(batched[line], expect, "{trace_file} line {}, batched", line + 1);
        // Each header was generated from a rule that selects it, but that rule is not
        // always the first match (SOURCES.md): count those, do not trust the column.
        let g = generator.unwrap() as usize;
        assert!(rules[g].matches(h));
        generator_not_first += usize::from(expect != Some(g as u32));
    }
    println!(
        "{rules_file}: {} lines, {generator_not_first} where the generating rule is not the first match",
        trace.len()
    );
}

#[test]
fn acl_1k() {
    check("acl_1k", "acl_1k_trace");
}

#[test]
fn fw_1k() {
    check("fw_1k", "fw_1k_trace");
}

#[test]
fn ipc_1k() {
    check("ipc_1k", "ipc_1k_trace");
}
