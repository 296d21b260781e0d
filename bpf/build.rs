//! Compiles the XDP program and generates its libbpf skeleton.

use std::path::PathBuf;

fn main() {
    let src = "src/bpf/transitd.bpf.c";
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("transitd.skel.rs");
    // linux/bpf.h includes asm/types.h, which Debian keeps under the multiarch directory.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    libbpf_cargo::SkeletonBuilder::new()
        .source(src)
        .clang_args([multiarch.as_str(), "-Wall", "-O2"])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building {src}: {e:#} (needs clang, llvm and libelf-dev: scripts/setup)"));
    println!("cargo:rerun-if-changed=src/bpf");
}
