//! A `matches` pattern against PCRE2 itself, the engine tshark 4.0 runs it on (the system's
//! PCRE2 10.42, the library Debian 12's tshark links, which the `pcre2` crate links when
//! `libpcre2-dev` is installed; else it builds its own 10.46, which reads `{,n}` otherwise,
//! and the target refuses to run): where
//! both compile the pattern, transitd's translation (`classifier::pcre`, run on the `regex`
//! crate) and PCRE2 answer alike on every subject, as tshark reads it (bytes, no UTF,
//! caseless unless the pattern says otherwise). A pattern PCRE2 refuses transitd refuses
//! too; one transitd refuses that PCRE2 takes is its documented choice (backtracking-only
//! syntax), not checked here.
//!
//! Input: a pattern (UTF-8 text, as a display filter's string is), then subjects.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    pattern: String,
    subjects: Vec<Vec<u8>>,
}

/// PCRE2 10.43 and later read `{,3}` as a quantifier, 10.42 as text: the oracle must be
/// the version tshark links.
fn check_version() {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let newer = pcre2::bytes::Regex::new("^a{,2}$").and_then(|r| r.is_match(b"")).unwrap_or(true);
        assert!(!newer, "this PCRE2 is not 10.42 (it reads {{,n}} as a quantifier): install libpcre2-dev");
    });
}

fuzz_target!(|input: Input| {
    check_version();
    // tshark compiles with PCRE2_NEVER_UTF, which the crate cannot ask for: a pattern's
    // `(*UTF)` (or any start-of-pattern verb) would be read otherwise here.
    if input.pattern.len() > 64 || input.pattern.contains('\0') || input.pattern.contains("(*") {
        return;
    }
    let theirs = pcre2::bytes::RegexBuilder::new().caseless(true).utf(false).build(&input.pattern);
    let ours = classifier::bytes::Pattern::new(input.pattern.as_bytes());
    match (theirs, ours) {
        (Err(_), Ok(_)) => panic!("PCRE2 refuses {:?}, transitd compiles it", input.pattern),
        (Ok(theirs), Ok(ours)) => {
            for subject in input.subjects.iter().take(8) {
                let subject = &subject[..subject.len().min(256)];
                // A match PCRE2 gives up on (its match limit) is no answer.
                let Ok(want) = theirs.is_match(subject) else { continue };
                assert_eq!(ours.0.is_match(subject), want, "{:?} on {subject:?}", input.pattern);
            }
        }
        _ => {}
    }
});
