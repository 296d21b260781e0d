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
    /// Count and drop what arrives on an interface (XDP).
    Sink(afxdp::SinkArgs),
    /// AF_XDP rx->tx reflect with no pipeline: the backend's ceiling.
    Reflect(afxdp::SinkArgs),
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
            &["sink", "--iface", "lo"],
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
        assert!(Cli::try_parse_from(["transitd-bench", "sink", "--iface", "lo", "--seconds", "0.5"]).is_ok());
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
