//! Any bytes as the text `transitd stats` scrapes (whatever answers at the address sends
//! it): the parser and the report never panic, and each sample the parser reads, written
//! back in the text format, reads as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transitd::metrics::{Sample, for_people, parse};

/// `s` as a line of the text format: label values escaped, infinities as `+Inf`/`-Inf`.
fn written(s: &Sample) -> String {
    let escaped = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escaped(v))).collect();
    let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
    let value = match s.value {
        v if v == f64::INFINITY => "+Inf".to_string(),
        v if v == f64::NEG_INFINITY => "-Inf".to_string(),
        v => v.to_string(),
    };
    format!("{}{labels} {value}\n", s.name)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let samples = parse(&text);
    for s in &samples {
        let line = written(s);
        let again = parse(&line);
        assert_eq!(again.len(), 1, "{line:?}");
        let a = &again[0];
        assert_eq!((&a.name, &a.labels), (&s.name, &s.labels), "{line:?}");
        assert!(a.value == s.value || (a.value.is_nan() && s.value.is_nan()), "{line:?}");
    }
    let addr = "127.0.0.1:9469".parse().unwrap_or_else(|_| unreachable!());
    let _ = for_people(addr, &text, None);
    let _ = for_people(addr, &text, Some((&text, 1.0)));
});
