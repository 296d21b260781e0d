//! The project's own shell scripts, run with stand-ins for the tools they call, so that what
//! they say on a machine unlike this one is checked here: `scripts/rust-toolchain`, which
//! `scripts/setup` runs last.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory of its own for each case.
fn scratch(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transitd-scripts-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    // The tools the script uses besides the shell's own, and nothing else: a cargo or rustup
    // of this machine is not found.
    for tool in ["awk", "sort", "head"] {
        std::os::unix::fs::symlink(Path::new("/usr/bin").join(tool), dir.join("bin").join(tool)).unwrap();
    }
    dir
}

/// An executable `/bin/sh` script at `path`.
fn stub(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A cargo of `version` whose `fmt` and `clippy` exit with these codes (rustup's proxy of a
/// component not installed exits 1).
fn cargo(path: &Path, version: &str, fmt: i32, clippy: i32) {
    stub(
        path,
        &format!(
            "case \"$1\" in\n  --version) echo \"cargo {version} (stand-in)\" ;;\n  fmt) exit {fmt} ;;\n  clippy) exit {clippy} ;;\nesac"
        ),
    );
}

/// `scripts/rust-toolchain` with only `dir/bin` on PATH and `dir/home` as HOME.
fn rust_toolchain(dir: &Path) -> Output {
    Command::new("/bin/bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/rust-toolchain"))
        .env_clear()
        .env("PATH", dir.join("bin"))
        .env("HOME", dir.join("home"))
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Just after rustup's installer, in the shell it ran in (root's, as the README runs
/// everything), cargo is in ~/.cargo/bin but not on PATH: said so, with the line that puts it
/// there, not "install Rust" of a Rust just installed.
#[test]
fn a_cargo_installed_but_not_on_path_is_said_where_it_is() {
    let dir = scratch("off-path");
    let home = dir.join("home/.cargo");
    cargo(&home.join("bin/cargo"), "1.90.0", 0, 0);
    let out = rust_toolchain(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = format!(
        "cargo is in {}/bin, which is not on this shell's PATH: run `. \"{}/env\"`",
        home.display(),
        home.display()
    );
    assert!(stderr(&out).contains(&said), "{}", stderr(&out));
    // None anywhere: install Rust.
    std::fs::remove_dir_all(&home).unwrap();
    let out = rust_toolchain(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cargo not found: install Rust 1.88 or later"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Debian's own cargo is older than the workspace's rust-version: refused by version.
#[test]
fn a_cargo_older_than_the_workspaces_rust_version_is_refused() {
    let dir = scratch("old");
    cargo(&dir.join("bin/cargo"), "1.63.0", 0, 0);
    let out = rust_toolchain(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cargo 1.63.0 is older than 1.88"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// rustfmt (the build formats the XDP program's skeleton with it) and clippy left out of a
/// rustup toolchain are added, those present are not; without rustup, which are missing is
/// said.
#[test]
fn missing_rustfmt_and_clippy_are_added_by_rustup() {
    let dir = scratch("components");
    let asked = dir.join("rustup-asked");
    stub(&dir.join("bin/rustup"), &format!("echo \"$@\" >> {}", asked.display()));
    cargo(&dir.join("bin/cargo"), "1.90.0", 1, 0);
    let out = rust_toolchain(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), "component add rustfmt\n");
    std::fs::remove_file(&asked).unwrap();
    cargo(&dir.join("bin/cargo"), "1.90.0", 0, 0);
    let out = rust_toolchain(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!asked.exists(), "rustup was asked for components already there");
    std::fs::remove_file(dir.join("bin/rustup")).unwrap();
    cargo(&dir.join("bin/cargo"), "1.90.0", 1, 1);
    let out = rust_toolchain(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rustfmt clippy not found"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
