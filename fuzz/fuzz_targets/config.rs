//! Any text as a configuration file: parsing and validation never panic; a file is either a
//! snapshot or a list of errors that each name a position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count().max(1);
    match transitd::config::parse("fuzz.toml", text) {
        Err(errors) => {
            // The TOML reader's errors too: each at a line of the text.
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(e.at.line >= 1 && e.at.line <= lines + 1, "{e} past the end of {lines} lines");
            }
        }
        Ok(loaded) => match transitd::snapshot::Snapshot::build(&loaded) {
            Ok(_) => {}
            Err(errors) => {
                assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    assert!(e.at.line <= lines + 1, "{e} past the end of {lines} lines");
                }
            }
        },
    }
});
