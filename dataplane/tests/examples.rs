//! The configurations operators start from (`examples/`), one per deployment shape the docs
//! describe: each passes `transitd check-config` and each replays a bundled capture with
//! something forwarded, by running the very commands written at its top. The etcd example is
//! loaded into a real etcd by its own `load` script and read back as `run --config-etcd`
//! reads it; the BGP example's BIRD configuration parses with what transitd writes for it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Every `.toml` under `examples/` that is a whole configuration (has `[server]`; the etcd
/// example's keys are one only together).
fn configurations() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("etcd") {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml")
                && std::fs::read_to_string(&path).unwrap().lines().any(|l| l.trim() == "[server]")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("examples"), &mut out);
    out.sort();
    out
}

/// The `transitd ...` commands written in a file's comments (`#   transitd check-config ...`).
fn documented_commands(file: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.trim().strip_prefix("transitd "))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn transitd(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_transitd")).args(args).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "transitd {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The count after `transmitted` in a replay's report.
fn transmitted(report: &str) -> u64 {
    let line = report.lines().find(|l| l.starts_with("transmitted")).unwrap_or_else(|| panic!("{report}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn every_deployment_shape_has_an_example() {
    let have: Vec<String> = configurations()
        .iter()
        .map(|p| p.strip_prefix(root().join("examples")).unwrap().display().to_string())
        .collect();
    for shape in
        ["acme.toml", "magic-transit-edge.toml", "ipv6-tunnels.toml", "soft-unicast/a1.toml", "bgp/transitd.toml"]
    {
        assert!(have.iter().any(|h| h == shape), "examples/{shape} is missing: {have:?}");
    }
    assert!(root().join("examples/etcd/server.toml").exists() && root().join("examples/etcd/load").exists());
}

#[test]
fn every_example_checks_and_its_replays_forward() {
    for file in configurations() {
        let commands = documented_commands(&file);
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let replays: Vec<&Vec<String>> = commands.iter().filter(|c| c[0] == "replay").collect();
        assert!(!replays.is_empty(), "{rel} says how to replay a capture through it");
        assert!(commands.iter().any(|c| c[0] == "check-config" && c[1] == rel), "{rel} says how to check it");
        for c in commands.iter().filter(|c| c[0] == "check-config") {
            assert!(transitd(c).contains(": ok"), "{c:?}");
        }
        for c in replays {
            let report = transitd(c);
            assert!(transmitted(&report) > 0, "{c:?} forwarded nothing:\n{report}");
        }
    }
}

#[test]
fn the_bgp_example_parses_in_bird_with_what_transitd_writes() {
    let dir = scratch_dir("example-bgp");
    let shown = transitd(&["bgp".into(), "show".into(), "--config".into(), "examples/bgp/transitd.toml".into()]);
    assert!(shown.contains("route 203.0.113.0/24 blackhole;") && shown.contains("route 192.0.2.1/32 blackhole;"));
    std::fs::write(dir.join("bird.conf"), shown).unwrap();
    let example = std::fs::read_to_string(root().join("examples/bgp/bird.conf")).unwrap();
    assert!(example.contains("include \"/run/transitd/*.conf\";"));
    let conf = dir.join("main.conf");
    std::fs::write(&conf, example.replace("/run/transitd/*.conf", &format!("{}/bird.conf", dir.display()))).unwrap();
    let out = Command::new("bird").arg("-p").arg("-c").arg(&conf).output().expect("BIRD 2 (scripts/setup)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An etcd of the test's own on free loopback ports; stopped on drop.
struct Etcd {
    child: std::process::Child,
    dir: PathBuf,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_etcd_example_loads_and_runs_as_its_keys() {
    let dir = std::env::temp_dir().join(format!("transitd-example-etcd-{}", std::process::id()));
    let (client, peer) = (format!("http://127.0.0.1:{}", free_port()), format!("http://127.0.0.1:{}", free_port()));
    let child = Command::new("etcd")
        .args(["--name", "example", "--data-dir", dir.to_str().unwrap()])
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("example={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (Debian's etcd-server; scripts/setup installs it)");
    let etcd = Etcd { child, dir, endpoint: client };
    let healthy = || {
        Command::new("etcdctl")
            .args(["--endpoints", &etcd.endpoint, "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthy() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new(root().join("examples/etcd/load"))
        .arg("/example/")
        .env("ETCDCTL_ENDPOINTS", &etcd.endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "examples/etcd/load: {}", String::from_utf8_lossy(&out.stderr));
    let source = transitd::fleet::EtcdSource { endpoint: etcd.endpoint.clone(), prefix: "/example/".into() };
    let fetched = transitd::fleet::fetch(&source).unwrap();
    assert_eq!(
        fetched.keys.keys().collect::<Vec<_>>(),
        ["/example/customers/acme", "/example/customers/beta", "/example/server"]
    );
    let loaded = transitd::fleet::assemble("/example/", &fetched.keys).unwrap();
    let snap = transitd::snapshot::Snapshot::build(&loaded).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.customers.len(), 2);
    let summary = transitd::replay::replay(std::sync::Arc::new(snap), &pcap("generated/acme-ftp.pcap"), None).unwrap();
    assert!(summary.stats.tx_frames > 0, "nothing forwarded");
}
