//! The `transitd` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use transitd::snapshot::Snapshot;

/// transitd: a userspace edge packet processor (Magic-Transit-style GRE ingress,
/// soft-unicast egress) on AF_XDP.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file; print every error as file:line:col and exit 1 if any.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Replay a capture (pcap or pcapng) through the whole pipeline and print what it did.
    Replay {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The capture to replay.
        #[arg(long = "in", short = 'i', value_name = "IN")]
        input: PathBuf,
        /// Where to write the transmitted (encapsulated) frames, as pcap.
        #[arg(long = "out", short = 'o', value_name = "OUT.pcap")]
        output: Option<PathBuf>,
    },
    /// Run the data plane on an interface's queues (AF_XDP) until SIGINT or SIGTERM.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The interface to attach to.
        #[arg(long)]
        iface: String,
        /// Queues to serve, e.g. `0-3` or `0,2` (default: every rx queue of the interface).
        #[arg(long)]
        queues: Option<String>,
        /// Cores to pin the workers to, one per queue in order, e.g. `2-5` (default: queue i
        /// on core i modulo the number of cores).
        #[arg(long)]
        cores: Option<String>,
        /// XDP attach mode: `auto` (native, falling back to generic with a log line),
        /// `native` or `generic`.
        #[arg(long, default_value = "auto", value_parser = ["auto", "native", "generic"])]
        attach: String,
        /// Socket bind mode: `copy` (works everywhere, veth included) or `zero-copy`.
        #[arg(long, default_value = "copy", value_parser = ["copy", "zero-copy"])]
        bind: String,
        /// Seconds between progress lines (per-worker pps, drops by reason); 0 for none.
        #[arg(long, default_value_t = 5.0)]
        stats_interval: f64,
        /// Microseconds to sleep when a poll finds nothing; 0 (default) busy-polls, which keeps
        /// one core per worker at 100%.
        #[arg(long, default_value_t = 0)]
        idle_sleep_us: u64,
        /// Do not ask the kernel for socket busy polling.
        #[arg(long)]
        no_busy_poll: bool,
        /// UMEM frames per queue.
        #[arg(long, default_value_t = 4096)]
        frames: u32,
    },
    /// Remove an XDP program left attached to an interface (after a process was killed).
    Detach {
        /// The interface.
        #[arg(long)]
        iface: String,
    },
    /// Try a rule on a capture, answering like `tshark -r FILE -Y EXPR -T fields -e
    /// frame.number`; or, with --config, show what the whole configuration would do to each
    /// frame (dry run: nothing is sent).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["filter", "config"])))]
    Match {
        /// The capture (pcap or pcapng).
        #[arg(short = 'r', value_name = "FILE")]
        read: PathBuf,
        /// A display filter in transitd's rule language (Wireshark's): print the numbers of the
        /// frames it selects, one per line.
        #[arg(short = 'Y', value_name = "EXPR")]
        filter: Option<String>,
        /// Run the whole pipeline of this configuration instead, and report each frame.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Read only the first N frames (as tshark's -c).
        #[arg(short = 'c', value_name = "N")]
        count_limit: Option<u64>,
        /// Print only how many frames the filter selects.
        #[arg(long, conflicts_with = "config")]
        count: bool,
        /// With --config: print the report as JSON.
        #[arg(long, requires = "config")]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("transitd: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &std::path::Path) -> Result<Snapshot, ExitCode> {
    Snapshot::from_path(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(1)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => Ok(match load(&file) {
            Ok(snap) => {
                let rules: usize = snap.customers.iter().map(|c| c.firewall.rules().len()).sum();
                println!(
                    "{}: ok ({} customers, {} tunnels, {} firewall rules)",
                    file.display(),
                    snap.customers.len(),
                    snap.tunnels.len(),
                    rules
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        }),
        Command::Replay { config, input, output } => {
            let snap = match load(&config) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let summary = transitd::replay::replay(&snap, &input, output.as_deref())
                .with_context(|| format!("replaying {}", input.display()))?;
            print!("{}", summary.render(&snap));
            Ok(if summary.error.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Run {
            config,
            iface,
            queues,
            cores,
            attach,
            bind,
            stats_interval,
            idle_sleep_us,
            no_busy_poll,
            frames,
        } => {
            use transitd::io::afxdp::BindMode;
            use transitd::run::{RunOptions, parse_list};
            let opts = RunOptions {
                config,
                iface,
                queues: queues.as_deref().map(parse_list).transpose()?,
                cores: cores
                    .as_deref()
                    .map(parse_list)
                    .transpose()?
                    .map(|c| c.into_iter().map(|c| c as usize).collect()),
                attach: match attach.as_str() {
                    "native" => transitd_bpf::AttachMode::Native,
                    "generic" => transitd_bpf::AttachMode::Generic,
                    _ => transitd_bpf::AttachMode::Auto,
                },
                bind: if bind == "zero-copy" { BindMode::ZeroCopy } else { BindMode::Copy },
                stats_interval: std::time::Duration::from_secs_f64(stats_interval.max(0.0)),
                idle_sleep: std::time::Duration::from_micros(idle_sleep_us),
                busy_poll: !no_busy_poll,
                frames,
            };
            transitd::run::run(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Detach { iface } => {
            if transitd::run::detach(&iface)? {
                println!("detached the XDP program from {iface}");
            } else {
                println!("no XDP program was attached to {iface}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Match { read, filter, config, count_limit, count, json } => {
            Ok(match_command(&read, filter.as_deref(), config.as_deref(), count_limit, count, json))
        }
    }
}

/// `transitd match`; exit status 2 for a bad expression or an unreadable capture, as tshark.
fn match_command(
    read: &Path,
    filter: Option<&str>,
    config: Option<&Path>,
    limit: Option<u64>,
    count: bool,
    json: bool,
) -> ExitCode {
    use std::io::Write;
    use transitd::dryrun::{MatchError, dry_run, match_filter};
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let result = if let Some(text) = filter {
        let expr = match classifier::parse(text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("transitd: {}", e.render(text));
                return ExitCode::from(2);
            }
        };
        let mut selected = 0u64;
        let r = match_filter(read, &expr, limit, |n| {
            selected += 1;
            if !count {
                let _ = writeln!(stdout, "{n}");
            }
        });
        if count && r.is_ok() {
            let _ = writeln!(stdout, "{selected}");
        }
        r.map(|_| ())
    } else if let Some(config) = config {
        let snap = match load(config) {
            Ok(s) => s,
            Err(code) => return code,
        };
        dry_run(&snap, read, limit).map(|report| {
            let _ = if json {
                serde_json::to_writer_pretty(&mut stdout, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(stdout))
            } else {
                write!(stdout, "{}", report.render())
            };
        })
    } else {
        eprintln!("transitd: match needs -Y EXPR or --config FILE");
        return ExitCode::from(2);
    };
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(MatchError::Expression(e)) => {
            eprintln!("transitd: {e}");
            ExitCode::from(2)
        }
        Err(MatchError::Capture(e)) => {
            eprintln!("transitd: {e}");
            ExitCode::from(2)
        }
    }
}
