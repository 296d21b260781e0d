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
