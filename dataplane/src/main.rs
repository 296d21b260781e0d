//! The `transitd` command.

use std::path::PathBuf;
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
    }
}
