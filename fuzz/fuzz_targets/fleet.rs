//! Any etcd keys and values as a fleet configuration: assembling them, parsing and
//! validating never panic, and every error names one of the keys and a line inside its value.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Records separated by NUL, each `key\x01value`.
    let mut keys = BTreeMap::new();
    for record in text.split('\0') {
        let (key, value) = record.split_once('\u{1}').unwrap_or((record, ""));
        keys.insert(key.to_string(), value.to_string());
    }
    let result = transitd::fleet::assemble("/t/", &keys)
        .and_then(|loaded| transitd::snapshot::Snapshot::build(&loaded).map(|_| ()));
    if let Err(errors) = result {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            let key = e.at.file.strip_prefix("etcd:").expect("errors name an etcd key");
            let value = keys.get(key).map_or("", String::as_str);
            let lines = value.lines().count().max(1);
            assert!(e.at.line <= lines + 1, "{e}: past the end of {key}'s {lines} lines");
        }
    }
});
