//! The `transitd` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use transitd::snapshot::Snapshot;

/// transitd: a userspace edge packet processor (Magic-Transit-style GRE ingress,
/// soft-unicast egress) on AF_XDP.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Quick start: docs/quickstart.md. Running it: docs/operations.md. \
                  Configuration: docs/configuration.md. Rules: docs/rules.md."
)]
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
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Run the data plane on an interface's queues (AF_XDP) until SIGINT or SIGTERM.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["config", "config_etcd"])))]
    Run {
        /// The TOML configuration file: reloaded on SIGHUP and when it changes.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Read the configuration from etcd v3 instead, and follow its changes: the key
        /// PREFIX + `server` holds the non-customer sections, PREFIX + `customers/NAME` one
        /// customer each (docs/operations.md).
        #[arg(long, value_name = "ENDPOINT")]
        config_etcd: Option<String>,
        /// The etcd key prefix.
        #[arg(long, value_name = "PREFIX", default_value = "/transitd/", requires = "config_etcd")]
        prefix: String,
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
        /// Serve metrics (Prometheus/OpenMetrics text) at http://ADDR/metrics.
        #[arg(long, value_name = "ADDR", default_value = transitd::metrics::DEFAULT_ADDR)]
        metrics: std::net::SocketAddr,
        /// Serve no metrics.
        #[arg(long, conflicts_with = "metrics")]
        no_metrics: bool,
        /// Seconds between looks at the configuration file: a change is reloaded (as SIGHUP
        /// does) once the file stays the same for one look; 0 reloads on SIGHUP only.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.5)]
        watch_interval: f64,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Print a running transitd's metrics for a person: traffic per worker, verdicts and
    /// drop reasons, customers, tunnels and their health, batch latency, reloads.
    Stats {
        /// Where `transitd run` serves metrics (its --metrics).
        #[arg(long, value_name = "ADDR", default_value = transitd::metrics::DEFAULT_ADDR)]
        metrics: std::net::SocketAddr,
        /// Scrape twice, this many seconds apart, and print rates per second instead of totals.
        #[arg(long, value_name = "SECONDS")]
        interval: Option<f64>,
        /// Print the metrics as served (the text Prometheus scrapes).
        #[arg(long, conflicts_with = "interval")]
        raw: bool,
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
    /// Make the soft-unicast slice plan of a configuration: which server owns which ports of
    /// which egress address. With --previous, keep as much of that plan as a balanced one
    /// allows and list every slice that moves.
    Plan {
        /// The TOML configuration file (its [soft_unicast] section).
        #[arg(long, short)]
        config: PathBuf,
        /// The plan in force (a file this command wrote).
        #[arg(long, value_name = "PLAN.json")]
        previous: Option<PathBuf>,
        /// Write the plan here, for `plan = "..."` in [soft_unicast].
        #[arg(long, short, value_name = "PLAN.json")]
        out: Option<PathBuf>,
    },
    /// Print the RFC 8805 geofeed of a configuration's egress addresses, or check a feed.
    #[command(group(clap::ArgGroup::new("feed").required(true).args(["config", "check"])))]
    Geofeed {
        /// The TOML configuration file (its [soft_unicast] egress ranges).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A geofeed to validate against RFC 8805; errors name their line.
        #[arg(long, value_name = "FEED.csv")]
        check: Option<PathBuf>,
    },
    /// Open a TCP or UDP connection from an egress address with the wanted tags, inside this
    /// server's port slice (soft-unicast egress), print its local address, and send a line.
    Connect {
        /// The TOML configuration file (its [soft_unicast] section names this server).
        #[arg(long, short)]
        config: PathBuf,
        /// Country the egress address must geolocate to (`GB`).
        #[arg(long)]
        tag: Option<String>,
        /// Trust class of the egress address (`untrusted`).
        #[arg(long)]
        class: Option<String>,
        /// UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Send this line once connected, and print the first line of the answer (2 s at
        /// most).
        #[arg(long)]
        send: Option<String>,
        /// Where to connect, `ADDRESS:PORT` (IPv4).
        remote: std::net::SocketAddrV4,
    },
}

/// `--capture-drops` and its bounds, for `run` and `replay`.
#[derive(clap::Args)]
struct CaptureArgs {
    /// Write dropped frames (and frames a monitor-mode rule matched) to this pcapng file,
    /// each with its reason, rule and customer in the packet comment (tshark: `frame.comment`).
    #[arg(long, value_name = "FILE.pcapng")]
    capture_drops: Option<PathBuf>,
    /// Frames per second captured at most (all workers together; capture time in replay).
    #[arg(long, value_name = "N", default_value_t = 100, requires = "capture_drops")]
    capture_rate: u32,
    /// The capture file stops growing at this size: a number of bytes, or with K, M or G.
    #[arg(long, value_name = "SIZE", default_value = "100M", value_parser = parse_size, requires = "capture_drops")]
    capture_max_size: u64,
    /// Bytes kept of each frame (default: the configured frame size, i.e. whole frames).
    #[arg(long, value_name = "BYTES", requires = "capture_drops")]
    capture_snaplen: Option<usize>,
    /// Capture drops only, not monitor-mode hits.
    #[arg(long, requires = "capture_drops")]
    capture_drops_only: bool,
}

impl CaptureArgs {
    /// The options; a snap length of 0 stands for the configured frame size.
    fn options(&self) -> anyhow::Result<Option<transitd::dropcap::CaptureOptions>> {
        let Some(path) = &self.capture_drops else { return Ok(None) };
        transitd::dropcap::check_path(path)?;
        anyhow::ensure!(self.capture_rate > 0, "--capture-rate must be at least 1");
        Ok(Some(transitd::dropcap::CaptureOptions {
            path: path.clone(),
            rate: self.capture_rate,
            max_bytes: self.capture_max_size,
            snaplen: self.capture_snaplen.map_or(0, |n| n.clamp(64, 65535)),
            monitor: !self.capture_drops_only,
        }))
    }
}

/// `1500`, `64K`, `100M`, `2G` (powers of 1000, as file sizes are usually read).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size (e.g. 500000, 64K, 100M, 1G)"))?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (K, M or G)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
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

fn soft_unicast<'s>(snap: &'s Snapshot, config: &Path) -> anyhow::Result<&'s transitd::snapshot::SoftUnicast> {
    snap.soft_unicast.as_ref().with_context(|| format!("{}: no [soft_unicast] section", config.display()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan { config, previous, out } => {
            // The plan file the configuration names is what this command makes: plan from
            // the section itself (the previous plan comes from --previous).
            let snap = match transitd::config::load(&config).and_then(|mut loaded| {
                if let Some(su) = &mut loaded.file.soft_unicast {
                    su.get_mut().plan = None;
                }
                Snapshot::build(&loaded)
            }) {
                Ok(s) => s,
                Err(errors) => {
                    eprintln!("{errors}");
                    return Ok(ExitCode::from(1));
                }
            };
            let su = soft_unicast(&snap, &config)?;
            let previous: Option<portslice::Plan> = previous
                .map(|p| -> anyhow::Result<portslice::Plan> {
                    let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
                    serde_json::from_str(&text).with_context(|| format!("{}: not a plan file", p.display()))
                })
                .transpose()?;
            let had_previous = previous.is_some();
            let (plan, moves) = portslice::Plan::replan(su.plan.spec.clone(), previous.as_ref())?;
            print!("{}", transitd::plan_report::render(&plan, had_previous.then_some(&moves[..])));
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_string_pretty(&plan)?)
                    .with_context(|| out.display().to_string())?;
                eprintln!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Geofeed { config: Some(config), .. } => {
            let snap = match load(&config) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            print!("{}", portslice::geofeed::generate(&soft_unicast(&snap, &config)?.plan.spec.egress));
            Ok(ExitCode::SUCCESS)
        }
        Command::Geofeed { check, .. } => {
            let path = check.context("--check FILE or --config FILE")?;
            let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            Ok(match portslice::geofeed::parse(&text) {
                Ok(entries) => {
                    println!("{}: ok ({} entries)", path.display(), entries.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}:{}: {}", path.display(), e.line, e.reason);
                    ExitCode::from(1)
                }
            })
        }
        Command::Connect { config, tag, class, udp, send, remote } => {
            let snap = match load(&config) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let su = soft_unicast(&snap, &config)?;
            let want = portslice::select::Want { country: tag.unwrap_or_default(), class: class.unwrap_or_default() };
            let me = &su.owners.servers[usize::from(su.this_server)];
            let slices = transitd::connect::slices(&su.plan, &want, me);
            // Return traffic for another server's slice crosses the backbone: keep TCP
            // segments small enough to fit once encapsulated (IPv4 + GRE with key, IPv4 + TCP).
            let mss = (su.backbone_mtu - 28 - 40).min(65535) as u16;
            transitd::connect::run(&slices, remote, udp, mss, send.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => Ok(match load(&file) {
            Ok(snap) => {
                let rules: usize = snap.customers.iter().map(|c| c.firewall.rules().len()).sum();
                let su = snap.soft_unicast.as_ref().map_or(String::new(), |su| {
                    format!(
                        "; soft-unicast: {} egress addresses, this server {}",
                        su.plan.owners.len(),
                        su.owners.servers[usize::from(su.this_server)]
                    )
                });
                println!(
                    "{}: ok ({} customers, {} tunnels, {} firewall rules{su})",
                    file.display(),
                    snap.customers.len(),
                    snap.tunnels.len(),
                    rules
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        }),
        Command::Replay { config, input, output, capture } => {
            let snap = match load(&config) {
                Ok(s) => std::sync::Arc::new(s),
                Err(code) => return Ok(code),
            };
            let capture = capture.options()?.map(|mut c| {
                if c.snaplen == 0 {
                    c.snaplen = snap.frame_size;
                }
                c
            });
            let summary = transitd::replay::replay_capturing(snap.clone(), &input, output.as_deref(), capture)
                .with_context(|| format!("replaying {}", input.display()))?;
            print!("{}", summary.render(&snap));
            Ok(if summary.error.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Stats { metrics, interval, raw } => {
            let first = transitd::metrics::fetch(metrics)?;
            if raw {
                print!("{first}");
                return Ok(ExitCode::SUCCESS);
            }
            let report = match interval {
                Some(s) => {
                    anyhow::ensure!(s > 0.0, "--interval must be positive");
                    std::thread::sleep(std::time::Duration::from_secs_f64(s));
                    let second = transitd::metrics::fetch(metrics)?;
                    transitd::metrics::for_people(metrics, &second, Some((&first, s)))
                }
                None => transitd::metrics::for_people(metrics, &first, None),
            };
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            config_etcd,
            prefix,
            iface,
            queues,
            cores,
            attach,
            bind,
            stats_interval,
            idle_sleep_us,
            no_busy_poll,
            frames,
            metrics,
            no_metrics,
            watch_interval,
            capture,
        } => {
            let capture = capture.options()?;
            let config = match (config, config_etcd) {
                (Some(path), _) => transitd::run::ConfigSource::File(path),
                (None, Some(endpoint)) => {
                    transitd::run::ConfigSource::Etcd(transitd::fleet::EtcdSource { endpoint, prefix })
                }
                (None, None) => anyhow::bail!("--config FILE or --config-etcd ENDPOINT"),
            };
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
                metrics: (!no_metrics).then_some(metrics),
                watch: std::time::Duration::from_secs_f64(watch_interval.max(0.0)),
                capture,
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

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("64K"), Ok(64_000));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("2g"), Ok(2_000_000_000));
        assert!(parse_size("10X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
