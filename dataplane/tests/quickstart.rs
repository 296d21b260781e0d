//! docs/quickstart.md, run as written: its shell blocks after the build, in one bash, as root,
//! with the test's transitd binary. What the guide says the reader will see is checked.

mod common;

use std::process::Command;

use common::lab::SERIAL;

/// The ```sh blocks of the guide after its build section.
fn blocks() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/quickstart.md")).unwrap();
    let after_build = text.split("## 2.").nth(1).expect("a section 2");
    after_build.split("```sh\n").skip(1).map(|b| b.split("```").next().unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_quick_start_works_as_written() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Background jobs (transitd, tcpdump) are killed when the script ends, however it ends;
    // output goes to files so that a job left behind cannot hold a pipe open.
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\ncd {}/..\n{}",
        env!("CARGO_MANIFEST_DIR"),
        blocks()
    );
    let (out_file, err_file) = (std::env::temp_dir().join("qs-test.out"), std::env::temp_dir().join("qs-test.err"));
    let status = Command::new("bash")
        .args(["-c", &script])
        .env("TD", env!("CARGO_BIN_EXE_transitd"))
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    // Whatever happened, the lab goes.
    let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/veth-lab")).args(["down", "qs"]).status();
    // transitd's log says why a wait gave up (not running, no next hop, no reload).
    let log = std::fs::read_to_string("/tmp/qs.log").unwrap_or_default();
    assert!(status.success(), "the quick start failed:\n{stdout}\n{stderr}\ntransitd's log:\n{log}");

    // Step 5: five FTP SYNs reached the customer's router in GRE from the anycast address
    // (tshark's fields: outer and inner sources, destinations, protocols, the port); stats
    // show acme's 5 and 5.
    let ftp = stdout
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.len() == 4 && f[0].starts_with("192.0.2.1,") && f[2] == "47,6" && f[3] == "21"
        })
        .count();
    assert_eq!(ftp, 5, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("acme ") && l.split_whitespace().collect::<Vec<_>>()[1..4] == ["5", "0", "5"]),
        "{stdout}"
    );
    // Step 6: reloaded from the file change, and SSH went through afterwards.
    assert!(log.contains("transitd: reloaded /tmp/qs.toml"), "{log}");
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["tx", "encapsulated", "6"])), "{stdout}");
    // Step 7: the five dropped SSH SYNs with their reason.
    let drops = stdout.lines().filter(|l| l.ends_with("\t22\tdrop: firewall; customer acme")).count();
    assert_eq!(drops, 5, "{stdout}");
}
