//! Compiles the benchmark's XDP helpers (traffic generator and sink).

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("gen.skel.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    libbpf_cargo::SkeletonBuilder::new()
        .source("src/bpf/gen.bpf.c")
        .clang_args([multiarch.as_str(), "-Wall", "-O2"])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building src/bpf/gen.bpf.c: {e:#}"));
    println!("cargo:rerun-if-changed=src/bpf");
}
