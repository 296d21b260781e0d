//! `transitd-bench`: the benchmark harness. Each subcommand prints a Markdown table of
//! min/median/max over repeated runs, with its baselines measured in the same run.

mod measure;
mod pipeline;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Pipeline(args) => pipeline::run(&args),
    }
}
