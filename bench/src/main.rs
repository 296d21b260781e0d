//! `transitd-bench`: the benchmark harness. Each subcommand prints a Markdown table of
//! min/median/max over repeated runs, with its baselines measured in the same run.

mod afxdp;
mod classify;
mod dos;
mod ipfix;
mod lists;
mod match_tshark;
mod measure;
mod ownership;
mod pipeline;
mod prober;
mod reload;
mod signatures;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "transitd benchmarks: ns/packet and Mpps, min/median/max over runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The in-memory pipeline (parse, customer lookup, firewall, GRE encap) over a capture.
    Pipeline(pipeline::Args),
    /// Compiled rule table vs linear scan on a ClassBench rule set and trace.
    Classify(classify::Args),
    /// Write a ClassBench-style trace (headers drawn inside random rules) to stdout.
    GenTrace(classify::GenArgs),
    /// A large `[[list]]` in a ClassBench rule table, against its prefixes written as rules.
    Lists(lists::Args),
    /// Payload signatures in front of a ClassBench rule table, against the table alone.
    Signatures(signatures::Args),
    /// `transitd match -Y` against `tshark -Y`: frames per second on the same capture.
    Match(match_tshark::Args),
    /// The DoS stage's cost per packet, clean traffic and a 10-million-source flood.
    Dos(dos::Args),
    /// What IPFIX flow sampling costs per packet, at several sampling rates, the exporter running.
    Ipfix(ipfix::Args),
    /// Soft-unicast's ownership lookup against hash and tree maps of the same plan.
    Ownership(ownership::Args),
    /// The tunnel health prober's cost a tick, thousands of tunnels, routers answering or not.
    Prober(prober::Args),
    /// What a reload stalls a worker for, thousands of customers, the supervisor's work against the worker's.
    Reload(reload::Args),
    /// Traffic generator: XDP live frames, or an AF_PACKET socket where the kernel refuses them
    /// (for bench/scripts/afxdp-forwarding.sh).
    Gen(afxdp::GenArgs),
    /// Count what arrives on an interface as a forwarder should send it, and drop everything (XDP).
    Sink(afxdp::SinkArgs),
    /// AF_XDP rx->tx reflect with no pipeline: the backend's ceiling.
    Reflect(afxdp::RunArgs),
}

/// A `--seconds` a benchmark runs for (`gen`, `sink`, `reflect`), read as `transitd`'s own
/// flags read one (up to a day; what `Duration` cannot hold is an error, not a panic), and
/// above 0: a run of no time measures nothing. (`prober`'s whole simulated seconds take the
/// same bounds.)
fn positive_seconds(text: &str) -> Result<std::time::Duration, String> {
    let seconds = transitd::cli::parse_seconds(text)?;
    if seconds.is_zero() {
        return Err(format!("`{text}` seconds: a run of no time measures nothing"));
    }
    Ok(seconds)
}

/// A count of runs, rounds or items a benchmark takes (`--runs`, `--rounds`, `--frames`,
/// `--repeat`): at least 1. None measures nothing: it printed `inf` ns per lookup and exited 0
/// (`ownership --lookups 0`), panicked on an empty list of timings (`match --rounds 0`,
/// `classify --dpdk ALG --rounds 0`), or timed one run under a header that said 0 runs.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0: a benchmark of none measures nothing; at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Pipeline(args) => pipeline::run(&args),
        Command::Classify(args) => classify::run(&args),
        Command::Lists(args) => lists::run(&args),
        Command::Signatures(args) => signatures::run(&args),
        Command::GenTrace(args) => classify::gen_trace(&args),
        Command::Match(args) => match_tshark::bench(&args),
        Command::Gen(args) => afxdp::generate(&args),
        Command::Dos(args) => dos::run(&args),
        Command::Ipfix(args) => ipfix::run(&args),
        Command::Ownership(args) => ownership::run(&args),
        Command::Prober(args) => prober::run(&args),
        Command::Reload(args) => reload::run(&args),
        Command::Sink(args) => afxdp::sink(&args),
        Command::Reflect(args) => afxdp::reflect(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::Cli;

    /// Every subcommand that runs for a time refuses a `--seconds` of no time or one that is
    /// no duration (the prober printed NaN per tick for 0; `sink` and the others measured
    /// nothing, or panicked in `Duration::from_secs_f64`), naming the flag.
    #[test]
    fn runs_of_no_time_are_refused() {
        let commands: [&[&str]; 4] = [
            &["prober"],
            &["gen", "--iface", "lo", "--dst-mac", "02:00:00:00:00:01"],
            &["sink", "--iface", "lo", "--dst-mac", "02:00:00:00:00:01", "--forwarded", "syn"],
            &["reflect", "--iface", "lo"],
        ];
        for command in commands {
            // `--seconds=-1`: the value goes to its parser, not read as a flag of its own.
            let with = |seconds: &str| {
                let flag = format!("--seconds={seconds}");
                Cli::try_parse_from([&["transitd-bench"][..], command, &[flag.as_str()][..]].concat())
            };
            assert!(with("2").is_ok(), "{command:?} --seconds 2");
            for bad in ["0", "-1", "nan", "inf", "1e300", "86401", "x", ""] {
                let refused = with(bad).err().unwrap_or_else(|| panic!("{command:?} --seconds {bad:?} was taken"));
                assert!(refused.to_string().contains("--seconds"), "{refused}");
            }
        }
        // Fractions where the run is timed, not simulated.
        assert!(Cli::try_parse_from(["transitd-bench", "sink", "--iface", "lo", "--pass", "--seconds", "0.5"]).is_ok());
    }

    /// A sink that counts is told what it counts: the MAC a forwarded frame arrives at, how
    /// it holds the generated SYN, and the remote of a tunnel; one that passes everything to
    /// the kernel counts nothing, and is told nothing of the kind.
    #[test]
    fn a_counting_sink_is_told_what_it_counts() {
        let sink =
            |args: &[&str]| Cli::try_parse_from([&["transitd-bench", "sink", "--iface", "lo"][..], args].concat());
        let mac = "02:00:00:00:00:01";
        assert!(sink(&["--dst-mac", mac, "--forwarded", "syn"]).is_ok());
        assert!(sink(&["--dst-mac", mac, "--forwarded", "gre", "--outer-dst", "198.51.100.1"]).is_ok());
        assert!(sink(&["--pass"]).is_ok());
        let refused: [&[&str]; 6] = [
            &[],
            &["--dst-mac", mac],
            &["--forwarded", "syn"],
            &["--dst-mac", mac, "--forwarded", "gre"],
            &["--dst-mac", mac, "--forwarded", "vxlan"],
            &["--pass", "--dst-mac", mac],
        ];
        for args in refused {
            assert!(sink(args).is_err(), "sink {args:?} was taken");
        }
    }

    /// Every count a benchmark takes (its runs, rounds, lookups, frames, the captures'
    /// repeats) refuses 0, or what is no count, naming the flag: none of them measures
    /// anything at 0 (`ownership --lookups 0` printed `inf` and exited 0; `match --rounds 0`
    /// panicked).
    #[test]
    fn counts_of_none_are_refused() {
        let counts: [(&[&str], &str); 16] = [
            (&["pipeline", "--config=c", "--pcap=p"], "--runs"),
            (&["pipeline", "--config=c", "--pcap=p"], "--frames"),
            (&["classify", "--rules=r", "--trace=t"], "--runs"),
            (&["classify", "--rules=r", "--trace=t"], "--rounds"),
            (&["lists", "--rules=r", "--trace=t"], "--runs"),
            (&["signatures", "--rules=r", "--trace=t"], "--runs"),
            (&["match", "--pcap=p", "--expr=tcp"], "--rounds"),
            (&["match", "--pcap=p", "--expr=tcp"], "--repeat"),
            (&["ipfix", "--config=c", "--pcap=p"], "--runs"),
            (&["ipfix", "--config=c", "--pcap=p"], "--frames"),
            (&["ownership"], "--runs"),
            (&["ownership"], "--lookups"),
            (&["prober"], "--runs"),
            (&["reload"], "--runs"),
            (&["dos", "--without=a", "--with=b", "--pcap=p"], "--runs"),
            (&["dos", "--without=a", "--with=b", "--pcap=p"], "--frames"),
        ];
        for (command, flag) in counts {
            let with = |count: &str| {
                let arg = format!("{flag}={count}");
                Cli::try_parse_from([&["transitd-bench"][..], command, &[arg.as_str()][..]].concat())
            };
            assert!(with("1").is_ok(), "{command:?} {flag} 1");
            for bad in ["0", "-1", "x", ""] {
                let refused = with(bad).err().unwrap_or_else(|| panic!("{command:?} {flag} {bad:?} was taken"));
                assert!(refused.to_string().contains(flag), "{refused}");
            }
        }
    }

    /// A simulated arrival rate of no frames, or of more than one a nanosecond (frames at
    /// one instant), is refused by the parser, before a configuration is read.
    #[test]
    fn a_rate_that_spaces_no_frames_is_refused() {
        let with = |rate: &str| {
            Cli::try_parse_from(["transitd-bench", "pipeline", "--config=c", "--pcap=p", &format!("--rate={rate}")])
        };
        assert!(with("1").is_ok() && with("1000000000").is_ok());
        for bad in ["0", "-1", "1000000001", "x", ""] {
            let refused = with(bad).err().unwrap_or_else(|| panic!("--rate {bad:?} was taken"));
            assert!(refused.to_string().contains("--rate"), "{refused}");
        }
    }
}
