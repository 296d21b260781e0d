//! Which way imports run (docs/architecture.md, "Who owns what"): the per-packet core
//! (`pipeline/`) is a leaf that reads snapshots and nothing of the shell, and the snapshot is
//! data that knows nothing of threads, probes or I/O; and no message is written by a macro
//! that panics when its reader has gone. Checked on the source text, so that a change that
//! breaks either fails here rather than in review.

use std::path::{Path, PathBuf};

/// The modules each folder must not name (as `crate::<module>`), outside its tests.
const RULES: &[(&str, &[&str])] = &[
    ("pipeline", &["io", "dropcap", "run", "metrics", "worker", "health", "config", "replay", "dryrun", "fleet"]),
    ("snapshot", &["health", "run", "io", "worker", "metrics", "pipeline", "dropcap"]),
    ("io", &["run", "worker", "metrics", "dropcap", "replay"]),
];

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The `crate::<module>` names in `text` before its test module, outside comments.
fn named_modules(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        // `use crate::{a, b}` names several.
        if let Some(group) = line.split("crate::{").nth(1).and_then(|g| g.split('}').next()) {
            let names = group.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string());
            out.extend(names.filter(|n| !n.is_empty()));
        }
    }
    out
}

#[test]
fn the_core_is_a_leaf_and_the_snapshot_is_data() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for (folder, forbidden) in RULES {
        let files = sources(&src.join(folder));
        assert!(!files.is_empty(), "no sources in src/{folder}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in named_modules(&text) {
                if forbidden.contains(&name.as_str()) {
                    problems.push(format!("{} names crate::{name}", file.strip_prefix(&src).unwrap().display()));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "imports that run the wrong way:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_what_it_checks() {
    let text = "use crate::snapshot::Snapshot;\nuse crate::{io, dropcap::Tap};\n// crate::run in a comment\n\
                #[cfg(test)]\nmod tests { use crate::metrics; }\n";
    assert_eq!(named_modules(text), ["snapshot", "io", "dropcap"]);
}

/// Every message of the crate goes through `log_line!` (and the run's report through a write
/// whose failure is let go): no `eprintln!`, `println!` or `print!` in `src/`, outside tests
/// and comments, which would panic on a closed pipe (tests/hardening.rs runs one).
#[test]
fn no_message_can_panic_on_a_closed_pipe() {
    let mut found = Vec::new();
    for file in sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            if ["eprintln!", "println!", "eprint!(", "print!("].iter().any(|m| line.contains(m)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "messages that panic on a closed pipe:\n{}", found.join("\n"));
}
