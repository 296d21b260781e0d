//! The Debian package (`scripts/deb`), installed on this machine: dpkg takes it, the
//! installed binary refuses the installed configuration until it is filled in and accepts
//! the packaged examples, the manual pages and the
//! shell completions are there and say what the binary does, and `systemd-analyze verify`
//! accepts the installed unit (which needs the binary it starts). The package is removed
//! again at the end.
//!
//! It packages the test build of the binary (`--binary`): the release build is the same
//! script's default and would cost CI minutes for the same files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

/// Removes the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "transitd"]);
    }
}

#[test]
fn the_package_installs_and_what_it_installs_works() {
    // Like the lab tests, this one needs root (dpkg -i) on a Debian machine (CI's).
    assert!(Path::new("/var/lib/dpkg/status").exists(), "not a Debian machine");
    assert!(run("id", &["-u"]).stdout.starts_with(b"0"), "the package test installs with dpkg: run it as root");
    let present = run("dpkg-query", &["-W", "-f", "${Status}", "transitd"]).stdout.starts_with(b"install ok");
    assert!(!present, "a transitd package is installed already: the test would replace and remove it");
    let out = std::env::temp_dir().join(format!("transitd-deb-{}", std::process::id()));
    let built = ok(
        root().join("scripts/deb").to_str().unwrap(),
        &["--binary", env!("CARGO_BIN_EXE_transitd"), "--out", out.to_str().unwrap(), "--fast"],
    );
    let deb = built.lines().last().expect("the script prints the package's path").trim().to_string();
    let contents = ok("dpkg-deb", &["--contents", &deb]);
    for path in [
        "./usr/bin/transitd",
        "./lib/systemd/system/transitd.service",
        "./etc/transitd/transitd.toml",
        "./etc/default/transitd",
        "./usr/share/man/man1/transitd.1.gz",
        "./usr/share/man/man1/transitd-run.1.gz",
        "./usr/share/man/man1/transitd-check-config.1.gz",
        "./usr/share/bash-completion/completions/transitd",
        "./usr/share/zsh/vendor-completions/_transitd",
        "./usr/share/fish/vendor_completions.d/transitd.fish",
        "./usr/lib/tmpfiles.d/transitd.conf",
        "./usr/share/doc/transitd/examples/bgp/bird.conf",
        "./usr/share/doc/transitd/docs/configuration.md",
        "./usr/share/doc/transitd/docs/operations.md",
    ] {
        assert!(contents.contains(path), "{path} is not in the package:\n{contents}");
    }
    let info = ok("dpkg-deb", &["--field", &deb, "Package", "Version", "Depends"]);
    assert!(info.contains("Package: transitd") && info.contains("Depends: libc6"), "{info}");

    let _installed = Installed;
    // The install makes /run/transitd (BIRD's include of it must parse before any reboot).
    // Whole: a lab's run may have left its lock file there, and an empty-only removal would
    // leave the directory, the install's making of it then untested.
    let _ = std::fs::remove_dir_all("/run/transitd");
    assert!(!Path::new("/run/transitd").exists(), "/run/transitd could not be removed");
    ok("dpkg", &["-i", &deb]);
    assert!(Path::new("/run/transitd").is_dir(), "the install did not make /run/transitd");
    // The configuration installed is refused until its addresses are set, each at its place
    // (so the unit's check-config keeps the service from starting on it); the examples pass.
    let installed = run("/usr/bin/transitd", &["check-config", "/etc/transitd/transitd.toml"]);
    let said = String::from_utf8_lossy(&installed.stderr);
    assert_eq!(installed.status.code(), Some(1), "{said}");
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("/etc/transitd/transitd.toml:")).collect();
    assert_eq!(errors.len(), 2, "{said}");
    assert!(errors[0].contains(":11:11: anycast address `SET ME"), "{said}");
    assert!(errors[1].contains(":15:12: next_hop `SET ME"), "{said}");

    // The manual pages are the binary's own definitions, readable by man. They are read from
    // the package itself: some Debian images keep dpkg from installing manual pages.
    let tree = out.join("tree");
    ok("dpkg-deb", &["-x", &deb, tree.to_str().unwrap()]);
    // (Read from the package: images that exclude /usr/share/doc install no examples.)
    let acme = tree.join("usr/share/doc/transitd/examples/acme.toml");
    let checked = ok("/usr/bin/transitd", &["check-config", acme.to_str().unwrap()]);
    assert!(checked.contains("ok"), "{checked}");
    let man1 = tree.join("usr/share/man/man1");
    let page = ok("man", &["-P", "cat", "-l", man1.join("transitd-run.1.gz").to_str().unwrap()]);
    assert!(page.contains("--iface") && page.contains("--capture-drops"), "{page}");
    let page = ok("man", &["-P", "cat", "-l", man1.join("transitd.1.gz").to_str().unwrap()]);
    assert!(page.contains("check-config") && page.contains("replay"), "{page}");
    // The documents the manual page and the unit name are where they say once installed: the
    // page named docs/FILE.md of a source tree the package does not hold, without saying
    // where the package puts them. (Its roff source: a rendered line may break a path.)
    let docs = "/usr/share/doc/transitd/docs/";
    let roff = ok("zcat", &[man1.join("transitd.1.gz").to_str().unwrap()]);
    assert!(roff.contains(docs), "transitd(1) does not say where the package puts the docs:\n{roff}");
    let named: Vec<&str> = roff
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("docs/"))
        .map(|w| w.trim_end_matches(['.', ',', ';']))
        .filter(|w| w.ends_with(".md"))
        .collect();
    assert!(!named.is_empty(), "{roff}");
    for doc in named {
        assert!(tree.join("usr/share/doc/transitd/docs").join(doc).is_file(), "transitd(1) names docs/{doc}");
    }
    let unit = std::fs::read_to_string(tree.join("lib/systemd/system/transitd.service")).unwrap();
    let files: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Documentation="))
        .flat_map(str::split_whitespace)
        .filter_map(|uri| uri.strip_prefix("file:"))
        .collect();
    assert!(files.iter().any(|f| f.starts_with(docs)), "the unit's Documentation= names none of the docs");
    for file in files {
        assert!(tree.join(file.trim_start_matches('/')).is_file(), "the unit's Documentation= names {file}");
    }
    // Every installed path the packaged docs, README and configuration name is installed.
    let doc_dir = tree.join("usr/share/doc/transitd");
    let mut texts = vec![doc_dir.join("README.md"), tree.join("etc/transitd/transitd.toml")];
    let docs_dir = std::fs::read_dir(doc_dir.join("docs")).unwrap();
    texts.extend(docs_dir.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
    for text in texts {
        let body = std::fs::read_to_string(&text).unwrap();
        for (at, _) in body.match_indices("/usr/share/doc/transitd") {
            let path: String = body[at..].chars().take_while(|c| !" `)\n,;".contains(*c)).collect();
            let path = path.trim_end_matches('.');
            assert!(
                tree.join(&path[1..]).exists(),
                "{} names {path}, which the package does not install",
                text.display()
            );
        }
    }
    // The completion scripts know the subcommands, and bash can load its own.
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/transitd").unwrap();
    assert!(bash.contains("check-config") && bash.contains("replay"));
    ok("bash", &["-c", "source /usr/share/bash-completion/completions/transitd && complete -p transitd"]);
    // The unit as installed (its ExecStart binary must exist); its manual pages are checked
    // above, where they cannot be left out.
    ok("systemd-analyze", &["verify", "--man=no", "/lib/systemd/system/transitd.service"]);
    // The BGP example parses in BIRD once the directory the package makes at boot is there.
    let tmpfiles = std::fs::read_to_string(tree.join("usr/lib/tmpfiles.d/transitd.conf")).unwrap();
    assert_eq!(tmpfiles.split_whitespace().take(2).collect::<Vec<_>>(), ["d", "/run/transitd"]);
    ok("bird", &["-p", "-c", tree.join("usr/share/doc/transitd/examples/bgp/bird.conf").to_str().unwrap()]);
    // An upgrade (the same package again) runs prerm `upgrade` and postinst `configure
    // VERSION`; both succeed and leave it installed.
    ok("dpkg", &["-i", &deb]);
    assert!(ok("dpkg-query", &["-W", "-f", "${Status}", "transitd"]).starts_with("install ok installed"));
    let _ = std::fs::remove_dir_all(&out);
}
