//! Argument vectors built from transitd's own subcommands and flags with odd values (empty,
//! negative, huge, infinite, lists past their bound): parsing them and converting them into
//! a command's options never panics, and what converts is within the documented bounds.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use clap::Parser as _;
use libfuzzer_sys::fuzz_target;
use transitd::cli::{Cli, Command};
use transitd::limits;

const WORDS: &[&str] = &[
    "run",
    "replay",
    "check-config",
    "stats",
    "detach",
    "match",
    "plan",
    "geofeed",
    "connect",
    "--config",
    "-c",
    "--config-etcd",
    "--prefix",
    "--iface",
    "--queues",
    "--cores",
    "--attach",
    "--bind",
    "--stats-interval",
    "--idle-sleep-us",
    "--no-busy-poll",
    "--frames",
    "--metrics",
    "--no-metrics",
    "--watch-interval",
    "--capture-drops",
    "--capture-rate",
    "--capture-max-size",
    "--capture-snaplen",
    "--capture-drops-only",
    "--in",
    "--out",
    "-r",
    "-Y",
    "--count",
    "--json",
    "--previous",
    "--check",
    "--tag",
    "--class",
    "--udp",
    "--send",
    "--interval",
    "--raw",
    "--help",
    "--version",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "0-3",
    "0-4294967295",
    "3-1",
    "0,2,5-6",
    "1e300",
    "inf",
    "NaN",
    "-0",
    "0.5",
    "86400",
    "86401",
    "x.toml",
    "/dev/zero",
    "",
    " ",
    "lo",
    "eth0",
    "127.0.0.1:9469",
    "[::1]:1",
    "99999999999G",
    "100M",
    "native",
    "generic",
    "auto",
    "zero-copy",
    "copy",
    "18446744073709551615",
    "4294967296",
    "1.2.3.4:80",
    "tcp",
    "((((",
    "é",
];

#[derive(Arbitrary, Debug)]
enum Arg {
    Word(u8),
    Value(u8),
    Number(u64),
    Raw(String),
}

fuzz_target!(|data: &[u8]| {
    let Ok(args) = Vec::<Arg>::arbitrary(&mut Unstructured::new(data)) else { return };
    let mut argv = vec!["transitd".to_string()];
    argv.extend(args.iter().take(40).map(|a| match a {
        Arg::Word(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
        Arg::Value(i) => VALUES[usize::from(*i) % VALUES.len()].to_string(),
        Arg::Number(n) => n.to_string(),
        Arg::Raw(s) => s.clone(),
    }));
    let Ok(cli) = Cli::try_parse_from(&argv) else { return };
    match cli.command {
        Command::Run(run) => {
            let Ok(opts) = run.options() else { return };
            for list in [opts.queues.as_ref().map(Vec::len), opts.cores.as_ref().map(Vec::len)].into_iter().flatten() {
                assert!(list <= limits::MAX_LIST_ENTRIES, "{argv:?}");
            }
            assert!(opts.stats_interval.as_secs() <= limits::MAX_SECONDS_FLAG, "{argv:?}");
            assert!(opts.watch.as_secs() <= limits::MAX_SECONDS_FLAG, "{argv:?}");
            assert!(opts.idle_sleep.as_micros() <= u128::from(limits::MAX_IDLE_SLEEP_US), "{argv:?}");
        }
        Command::Replay { capture, .. } => {
            let _ = capture.options();
        }
        Command::Stats { interval, .. } => {
            assert!(interval.is_none_or(|i| i.as_secs() <= limits::MAX_SECONDS_FLAG), "{argv:?}");
        }
        _ => {}
    }
});
