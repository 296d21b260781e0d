//! The command line: clap's definitions of every subcommand and flag, and their conversion
//! into the options the commands take. Nothing here touches the system, so that every
//! argument vector can be tried (the `cli` fuzz target) and the man page and completions
//! can be made from the same definitions.
// The doc comments here are clap's help text, where `[bgp]` names a configuration section,
// not a link: written as rustdoc would have it, the help would show the backticks.
#![allow(rustdoc::broken_intra_doc_links)]

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::limits::{
    MAX_CAPTURE_SNAPLEN, MAX_IDLE_SLEEP_US, MAX_NAPI_DEFER, MAX_SECONDS_FLAG, MAX_UMEM_FRAMES, MIN_CAPTURE_BYTES,
    MIN_CAPTURE_SNAPLEN, MIN_STATS_INTERVAL, MIN_UMEM_FRAMES,
};
use crate::run::{ConfigSource, RunOptions, parse_list};

/// transitd: a userspace edge packet processor (Magic-Transit-style GRE ingress,
/// soft-unicast egress) on AF_XDP.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 done; 1 a configuration unreadable or refused (every error said as \
                  file:line:col), or a geofeed checked refused (every bad line as file:line:col); 2 anything else (a usage error, another file that \
                  cannot be read or written, a system call refused). transitd match exits 2 for a bad \
                  expression, as tshark.\n\
                  Quick start: docs/quickstart.md. Running it: docs/operations.md. \
                  Configuration: docs/configuration.md. Rules: docs/rules.md. (docs/ is the source \
                  tree's; the Debian package installs it as /usr/share/doc/transitd/docs/.)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a configuration file as `run` would take it (a next hop included); print
    /// every error as file:line:col and exit 1 if any.
    #[command(group(clap::ArgGroup::new("file_or_config").required(true).args(["file", "config"])))]
    CheckConfig {
        /// The TOML configuration file.
        file: Option<PathBuf>,
        /// The TOML configuration file, given as the other commands take it (`--config`, `-c`).
        #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Check it as `run --this-server NAME` takes it: which `[[soft_unicast.server]]` this
        /// host is, over `[soft_unicast] this_server` (which a fleet's shared configuration,
        /// an etcd prefix, leaves out).
        #[arg(long, value_name = "NAME")]
        this_server: Option<String>,
    },
    /// Replay a capture (pcap or pcapng) through the whole pipeline and print what it did.
    Replay {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The capture to replay (`-`: standard input).
        #[arg(long = "in", short = 'i', value_name = "IN")]
        input: PathBuf,
        /// Where to write every frame it transmits (encapsulated, decapsulated, ICMP errors,
        /// ...), as pcap (`-`: standard output, the summary then on standard error).
        #[arg(long = "out", short = 'o', value_name = "OUT.pcap")]
        output: Option<PathBuf>,
        /// Drop capture.
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Run the data plane on an interface's queues (AF_XDP) until SIGINT or SIGTERM.
    Run(Box<RunArgs>),
    /// Print a running transitd's metrics for a person: traffic per worker, verdicts and
    /// drop reasons, customers, tunnels and their health, batch latency, reloads.
    Stats {
        /// Where `transitd run` serves metrics (its --metrics): IP:PORT, or HOST:PORT.
        #[arg(long, value_name = "ADDR", default_value = crate::metrics::DEFAULT_ADDR, value_parser = parse_endpoint)]
        metrics: Endpoint,
        /// Scrape twice, this many seconds apart (at least 1, at most 86400), and print rates
        /// per second instead of totals.
        #[arg(long, value_name = "SECONDS", value_parser = parse_stats_interval, allow_negative_numbers = true)]
        interval: Option<Duration>,
        /// Print the metrics as served to Prometheus, in OpenMetrics (`promtool check metrics`
        /// reads the text format only: `curl -s http://ADDR/metrics | promtool check metrics`).
        #[arg(long, conflicts_with = "interval")]
        raw: bool,
    },
    /// BGP through BIRD ([bgp] in the configuration): show or withdraw what this server
    /// announces.
    #[command(subcommand)]
    Bgp(BgpCommand),
    /// Remove a transitd XDP program an older version left attached to an interface (this
    /// one attaches through a link, which goes with the process, however it ends); any other
    /// program is left where it is.
    Detach {
        /// The interface.
        #[arg(long)]
        iface: String,
    },
    /// Print a shell completion script for transitd (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write transitd's manual pages (roff: transitd.1 and one per subcommand, such as
    /// transitd-run.1) into a directory, made from these very definitions.
    Manpages {
        /// The directory (it must exist).
        dir: PathBuf,
    },
    /// Try a rule on a capture, answering like `tshark -r FILE -Y EXPR -T fields -e
    /// frame.number`; or, with --config, show what the whole configuration would do to each
    /// frame (dry run: nothing is sent).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["filter", "config"])))]
    Match {
        /// The capture (pcap or pcapng; `-`: standard input).
        #[arg(short = 'r', value_name = "FILE")]
        read: PathBuf,
        /// A display filter in transitd's rule language (Wireshark's): print the numbers of the
        /// frames it selects, one per line.
        #[arg(short = 'Y', value_name = "EXPR")]
        filter: Option<String>,
        /// Run the whole pipeline of this configuration instead, and report each frame.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// With -Y: the `[[list]]`s of this configuration file, for `in $name`.
        #[arg(long, value_name = "FILE", requires = "filter")]
        lists: Option<PathBuf>,
        /// Read only the first N frames (as tshark's -c; at least 1, as tshark refuses 0).
        #[arg(short = 'c', value_name = "N", value_parser = frame_count, allow_negative_numbers = true)]
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
        /// Write the plan here, for `plan = "..."` in [soft_unicast] (replaced whole, a link
        /// followed; `-`: standard output, the report then on standard error).
        #[arg(long, short, value_name = "PLAN.json")]
        out: Option<PathBuf>,
    },
    /// Print the RFC 8805 geofeed of a configuration's egress addresses, or check a feed.
    #[command(group(clap::ArgGroup::new("feed").required(true).args(["config", "check"])))]
    Geofeed {
        /// The TOML configuration file (its [soft_unicast] egress ranges).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A geofeed to validate against RFC 8805; errors and warnings name their line and column.
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
        /// Which `[[soft_unicast.server]]` this host is, over `[soft_unicast] this_server`
        /// (as `run --this-server`).
        #[arg(long, value_name = "NAME")]
        this_server: Option<String>,
        /// Send this line once connected, and print the first line of the answer (2 s at
        /// most: none is an error, exit 2).
        #[arg(long)]
        send: Option<String>,
        /// Where to connect, `ADDRESS:PORT` (IPv4).
        remote: std::net::SocketAddrV4,
    },
}

/// `transitd run`'s flags.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config", "config_etcd"])))]
pub struct RunArgs {
    /// The TOML configuration file: reloaded on SIGHUP and when it changes.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Read the configuration from etcd v3 instead, and follow its changes: the key
    /// PREFIX + `server` holds the non-customer sections, PREFIX + `customers/NAME` one
    /// customer each (docs/operations.md). Several endpoints, comma-separated, are the
    /// cluster's members: any that answers serves.
    #[arg(long, value_name = "ENDPOINT[,ENDPOINT...]")]
    pub config_etcd: Option<String>,
    /// The etcd key prefix, ending in `/` [default: /transitd/].
    // No default clap knows of: `options` refuses it without `--config-etcd`, which it must
    // see given.
    #[arg(long, value_name = "PREFIX", requires = "config_etcd", value_parser = etcd_prefix)]
    pub prefix: Option<String>,
    /// The interface to attach to.
    #[arg(long)]
    pub iface: String,
    /// Which `[[soft_unicast.server]]` this host is, over `[soft_unicast] this_server`: the
    /// servers of a fleet that share one configuration (an etcd prefix) each give their own.
    #[arg(long, value_name = "NAME")]
    pub this_server: Option<String>,
    /// Queues to serve, e.g. `0-3` or `0,2` (default: every rx queue of the interface).
    #[arg(long)]
    pub queues: Option<String>,
    /// Cores to pin the workers to, one per queue in order, e.g. `2-5` (default: queue i
    /// on the i-th CPU this process may run on, so under a cpuset or taskset on its CPUs).
    #[arg(long)]
    pub cores: Option<String>,
    /// XDP attach mode: `auto` (native, falling back to generic with a log line),
    /// `native` or `generic`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "native", "generic"])]
    pub attach: String,
    /// Socket bind mode: `auto` (zero-copy where the driver supports it, copy otherwise; the
    /// log, `stats` and the metrics say which), `copy` (works everywhere, veth included) or
    /// `zero-copy` (fails where the driver cannot).
    #[arg(long, default_value = "auto", value_parser = ["auto", "copy", "zero-copy"])]
    pub bind: String,
    /// Back each queue's UMEM with huge pages (fewer TLB misses); without them available, a
    /// log line says so and ordinary pages are used.
    #[arg(long)]
    pub huge_pages: bool,
    /// The TUN device through which frames the XDP program redirected but the pipeline
    /// passes reach the host's stack (default: td-IFACE).
    #[arg(long, value_name = "NAME")]
    pub punt_device: Option<String>,
    /// Frames per second handed to the host that way at most (all workers together); 0 drops
    /// them (counted).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = parse_punt_rate,
          allow_negative_numbers = true)]
    pub punt_rate: u32,
    /// Seconds between progress lines (per-worker pps, drops by reason), at most 86400; 0 for
    /// none.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds,
          allow_negative_numbers = true)]
    pub stats_interval: Duration,
    /// Microseconds to sleep when a poll finds nothing, at most 1000000; 0 (default)
    /// busy-polls, which keeps one core per worker at 100%.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0, value_parser = parse_idle_sleep_us,
          allow_negative_numbers = true)]
    pub idle_sleep_us: u64,
    /// Preferred busy polling: the sockets ask for it (SO_PREFER_BUSY_POLL), and a poll that
    /// finds nothing runs the driver from the worker (recvfrom). It pays with the NIC's
    /// interrupts deferred (--napi-defer, --gro-flush-timeout, which imply it); without them,
    /// and on veth, it only adds system calls (docs/afxdp.md).
    #[arg(long)]
    pub busy_poll: bool,
    /// Set the interface's napi_defer_hard_irqs for the run (restored at exit): polls the
    /// kernel makes without re-enabling the NIC's interrupt, while busy polling (e.g. 2; at
    /// most 2147483647, the kernel's bound).
    #[arg(long, value_name = "N", value_parser = parse_napi_defer, allow_negative_numbers = true)]
    pub napi_defer: Option<u32>,
    /// Set the interface's gro_flush_timeout for the run (restored at exit): nanoseconds
    /// before the interrupt comes back when busy polling stops (e.g. 200000).
    #[arg(long, value_name = "NS", value_parser = parse_nanoseconds, allow_negative_numbers = true)]
    pub gro_flush_timeout: Option<u64>,
    /// UMEM frames per queue: 256 to 1,048,576, of 4 KiB each.
    #[arg(long, default_value_t = 4096, value_parser = parse_frames, allow_negative_numbers = true)]
    pub frames: u32,
    /// Serve metrics (Prometheus/OpenMetrics text) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", default_value = crate::metrics::DEFAULT_ADDR)]
    pub metrics: std::net::SocketAddr,
    /// Serve no metrics.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,
    /// Seconds between looks at the configuration file and the files it names (`[[list]]`
    /// files, the soft-unicast plan): a change is reloaded (as SIGHUP does) once they stay the
    /// same for one look (at most 86400); 0 looks at no file (reloads come on SIGHUP, and from
    /// etcd's own watch).
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds,
          allow_negative_numbers = true)]
    pub watch_interval: Duration,
    /// Drop capture.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// `--capture-drops` and its bounds, for `run` and `replay`.
#[derive(clap::Args, Debug)]
pub struct CaptureArgs {
    /// Write dropped frames (and frames a monitor-mode rule matched) to this pcapng file,
    /// each with its reason, rule and customer in the packet comment (tshark: `frame.comment`).
    #[arg(long, value_name = "FILE.pcapng")]
    pub capture_drops: Option<PathBuf>,
    /// Frames per second captured at most (all workers together; in replay, per second of
    /// the capture's own timestamps).
    #[arg(long, value_name = "N", default_value_t = 100, requires = "capture_drops", allow_negative_numbers = true,
          value_parser = parse_capture_rate)]
    pub capture_rate: u32,
    /// The capture file stops growing at this size: a number of bytes, or with K, M or G
    /// (powers of 1000: 100M is 100,000,000 bytes, 1.5G 1,500,000,000); at least 1K.
    // Any value with a minus, not only what clap takes for a number: `-1K` was taken for the
    // flags `-1` and `-K` ("unexpected argument '-1'"), never said to be negative.
    #[arg(long, value_name = "SIZE", default_value = "100M", value_parser = parse_size, requires = "capture_drops",
          allow_hyphen_values = true)]
    pub capture_max_size: u64,
    /// Bytes kept of each frame, 64 to 65536 (default: the configured frame size, i.e. whole
    /// frames).
    #[arg(long, value_name = "BYTES", requires = "capture_drops", value_parser = parse_snaplen,
          allow_negative_numbers = true)]
    pub capture_snaplen: Option<usize>,
    /// Capture drops only, not monitor-mode hits.
    #[arg(long, requires = "capture_drops")]
    pub capture_drops_only: bool,
}

impl CaptureArgs {
    /// The options; a snap length of 0 stands for the configured frame size.
    pub fn options(&self) -> anyhow::Result<Option<crate::dropcap::CaptureOptions>> {
        let Some(path) = &self.capture_drops else { return Ok(None) };
        crate::dropcap::check_path(path)?;
        anyhow::ensure!(
            self.capture_max_size >= MIN_CAPTURE_BYTES,
            "--capture-max-size {} holds no frame: give at least 1K",
            self.capture_max_size
        );
        Ok(Some(crate::dropcap::CaptureOptions {
            path: path.clone(),
            rate: self.capture_rate,
            max_bytes: self.capture_max_size,
            snaplen: self.capture_snaplen.unwrap_or(0),
            monitor: !self.capture_drops_only,
        }))
    }
}

/// An address to connect to, as written (`IP:PORT` or `HOST:PORT`): every address it stands
/// for, in the resolver's order.
#[derive(Clone, Debug)]
pub struct Endpoint(pub Vec<std::net::SocketAddr>);

impl Endpoint {
    /// The first of its addresses that takes a connection (`localhost` is `::1` first on
    /// Debian, while `run` serves 127.0.0.1), else the first, whose error then says why.
    /// (`run` takes a connection closed before it sent a byte for the probe it is, not for
    /// a failed exchange.)
    pub fn reachable(&self) -> std::net::SocketAddr {
        let timeout = Duration::from_secs(1);
        let first = self.0[0];
        self.0.iter().copied().find(|a| std::net::TcpStream::connect_timeout(a, timeout).is_ok()).unwrap_or(first)
    }
}

/// [`Endpoint`]'s parser.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(addr) = text.parse() {
        return Ok(Endpoint(vec![addr]));
    }
    let addrs: Vec<_> =
        text.to_socket_addrs().map_err(|e| format!("`{text}` is not IP:PORT or HOST:PORT: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("`{text}` resolves to no address"));
    }
    Ok(Endpoint(addrs))
}

/// `1500`, `64K`, `100M`, `1.5G` (powers of 1000, as file sizes are usually read); a
/// fraction must come to whole bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    // A size with a minus (clap hands `-1` here) is said to be negative, not to be no size.
    // One minus looked past, spaces after it too: the size it leaves is trimmed again below,
    // and `- - -1` recursed once per minus (a long enough argument overflowed the stack).
    if t.strip_prefix('-').is_some_and(|size| !size.trim_start().starts_with('-') && parse_size(size).is_ok()) {
        return Err(format!("`{text}` is negative: a size is a number of bytes"));
    }
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.') {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let not_a_size = || format!("`{text}` is not a size (e.g. 500000, 64K, 1.5M, 1G)");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(fraction) || fraction.len() > 9 {
        return Err(not_a_size());
    }
    // `whole` is digits alone (split off at the first other character, then at the dot), so
    // a number that does not parse is past u64: too large, as one that overflows below.
    let too_large = || format!("`{text}` is too large: at most {} bytes", u64::MAX);
    let n: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (K, M or G)")),
    };
    // The fraction in whole bytes, exactly: `fraction` has at most 9 digits, `scale` is at
    // most 10^9, so their product fits.
    let tenths = 10u64.pow(fraction.len() as u32);
    let part = if fraction.is_empty() { 0 } else { fraction.parse::<u64>().map_err(|_| not_a_size())? * scale };
    if part % tenths != 0 {
        return Err(format!("`{text}` is not a whole number of bytes"));
    }
    n.checked_mul(scale).and_then(|b| b.checked_add(part / tenths)).ok_or_else(too_large)
}

/// A duration in seconds (`0.5`, `10`), from 0 to [`MAX_SECONDS_FLAG`]: what `Duration`
/// cannot hold (negative, NaN, infinite, astronomically large) is an error, not a panic.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=MAX_SECONDS_FLAG as f64).contains(&seconds) {
        return Err(format!("`{text}` is not between 0 and {MAX_SECONDS_FLAG} seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `stats --interval`: seconds as [`parse_seconds`] takes them, at least
/// [`MIN_STATS_INTERVAL`]. A shorter one printed rates "over 0.00 s" from counters that
/// had not moved, or had moved by a whole publication, between the readings.
pub fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    // A number out of range is said with this flag's own range: `-1` was "not between 0 and
    // 86400 seconds", a range that holds the 0.5 it refuses.
    let interval = parse_seconds(text).map_err(|e| match text.trim().parse::<f64>() {
        Ok(_) => format!("`{text}` is not between {} and {MAX_SECONDS_FLAG} seconds", MIN_STATS_INTERVAL.as_secs_f64()),
        Err(_) => e,
    })?;
    if interval < MIN_STATS_INTERVAL {
        return Err(format!(
            "`{text}` is shorter than {} s: workers publish their counters every {} s, so a rate over a shorter \
             interval would be off by more than a tenth",
            MIN_STATS_INTERVAL.as_secs_f64(),
            crate::worker::PUBLISH_EVERY.as_secs_f64(),
        ));
    }
    Ok(interval)
}

impl RunArgs {
    /// What `transitd run` was asked to do, every flag checked as far as it can be without
    /// looking at the system (queues and CPUs are checked against it when the run starts).
    pub fn options(&self) -> anyhow::Result<RunOptions> {
        // Linux's rule for a device name (dev_valid_name), here before anything is attached:
        // the device is made once running, and a name refused then left the frames passed to
        // the host nowhere to go but a log line.
        if let Some(name) = &self.punt_device {
            let valid = !name.is_empty()
                && name.len() <= 15
                && name != "."
                && name != ".."
                && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
            anyhow::ensure!(
                valid,
                "--punt-device {name:?} is not a device name Linux takes: 1 to 15 bytes, no '/', ':' or white space, \
                 not . or .."
            );
        }
        // clap holds `--prefix` to `--config-etcd` only apart from the group both are in.
        if self.prefix.is_some() && self.config_etcd.is_none() {
            anyhow::bail!("--prefix is the etcd key prefix of --config-etcd; with --config FILE there is none");
        }
        let config = match (&self.config, &self.config_etcd) {
            (Some(path), _) => ConfigSource::File(path.clone()),
            (None, Some(endpoint)) => ConfigSource::Etcd(crate::fleet::EtcdSource {
                endpoint: endpoint.clone(),
                prefix: self.prefix.clone().unwrap_or_else(|| "/transitd/".into()),
            }),
            (None, None) => anyhow::bail!("--config FILE or --config-etcd ENDPOINT"),
        };
        let list = |flag: &str, text: &Option<String>| {
            text.as_deref().map(|t| parse_list(t).map_err(|e| anyhow::anyhow!("{flag}: {e}"))).transpose()
        };
        Ok(RunOptions {
            config,
            iface: self.iface.clone(),
            this_server: self.this_server.clone(),
            queues: list("--queues", &self.queues)?,
            cores: list("--cores", &self.cores)?.map(|c| c.into_iter().map(|c| c as usize).collect()),
            attach: match self.attach.as_str() {
                "native" => transitd_bpf::AttachMode::Native,
                "generic" => transitd_bpf::AttachMode::Generic,
                _ => transitd_bpf::AttachMode::Auto,
            },
            bind: match self.bind.as_str() {
                "zero-copy" => crate::io::afxdp::BindMode::ZeroCopy,
                "copy" => crate::io::afxdp::BindMode::Copy,
                _ => crate::io::afxdp::BindMode::Auto,
            },
            huge_pages: self.huge_pages,
            punt_device: self.punt_device.clone().unwrap_or_else(|| crate::punt::default_name(&self.iface)),
            punt_rate: self.punt_rate,
            stats_interval: self.stats_interval,
            idle_sleep: Duration::from_micros(self.idle_sleep_us),
            busy_poll: self.busy_poll || self.napi_defer.is_some() || self.gro_flush_timeout.is_some(),
            napi_defer: self.napi_defer,
            gro_flush_timeout: self.gro_flush_timeout,
            frames: self.frames,
            metrics: (!self.no_metrics).then_some(self.metrics),
            watch: self.watch_interval,
            capture: self.capture.options()?,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("64K"), Ok(64_000));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("2g"), Ok(2_000_000_000));
        assert!(parse_size("10X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999G").is_err());
        // Fractions that come to whole bytes.
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("0.25K"), Ok(250));
        assert_eq!(parse_size(".5G"), Ok(500_000_000));
        assert_eq!(parse_size("2.000000001G"), Ok(2_000_000_001));
        for bad in ["1.5", "1.0005K", ".", "1.2.3M", "1.M5", "1.0000000001G", "-1M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    /// A minus is looked past once, spaces or not: each minus of `- - - ... -1` recursed
    /// (the check skipped a minus right behind the first, not one behind a space), and an
    /// argument of 100,000 of them overflowed the stack (an abort, not an error).
    #[test]
    fn a_string_of_minuses_is_no_size_and_no_recursion() {
        assert_eq!(parse_size("-1"), Err("`-1` is negative: a size is a number of bytes".to_string()));
        assert_eq!(parse_size("- 1K"), Err("`- 1K` is negative: a size is a number of bytes".to_string()));
        for text in ["--1".to_string(), "- -1".to_string(), format!("{}1", "- ".repeat(100_000))] {
            let e = parse_size(&text).unwrap_err();
            assert!(e.ends_with("is not a size (e.g. 500000, 64K, 1.5M, 1G)"), "{}", &e[e.len().saturating_sub(80)..]);
        }
    }

    #[test]
    fn seconds_are_bounded_numbers() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["inf", "NaN", "-1", "1e300", "86401", "x", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stats_interval_spans_ten_counter_publications() {
        assert_eq!(MIN_STATS_INTERVAL, crate::worker::PUBLISH_EVERY * 10);
        let interval = |value: &str| match Cli::try_parse_from(["transitd", "stats", "--interval", value]) {
            Ok(Cli { command: Command::Stats { interval, .. } }) => Ok(interval),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(interval("1"), Ok(Some(Duration::from_secs(1))));
        assert_eq!(interval("2.5"), Ok(Some(Duration::from_millis(2500))));
        // A negative one is no unexpected argument (as clap took `-1` to be) but out of range:
        // this flag's range, from its floor (0 was said, a floor it refuses).
        for (value, said) in [
            ("-1", "`-1` is not between 1 and 86400 seconds"),
            ("86401", "`86401` is not between 1 and 86400 seconds"),
            ("x", "`x` is not a number of seconds"),
        ] {
            let e = interval(value).unwrap_err();
            assert!(e.contains(said), "{e}");
        }
        // Rates "over 0.00 s" were printed for these (and 0.005 was "over 0.01 s").
        for short in ["0", "1e-10", "0.001", "0.005", "0.5", "0.999"] {
            let e = interval(short).unwrap_err();
            assert!(
                e.contains(&format!("`{short}` is shorter than 1 s: workers publish their counters every 0.1 s")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_definitions_are_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_convert_or_say_why_not() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Run(run)) => run.options().map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        };
        let opts = parse(&["transitd", "run", "-c", "x.toml", "--iface", "eth0", "--queues", "0-3"]).unwrap();
        assert_eq!(opts.queues, Some(vec![0, 1, 2, 3]));
        assert!(
            parse(&["transitd", "run", "-c", "x", "--iface", "e", "--cores", "0-99999"])
                .unwrap_err()
                .contains("--cores")
        );
        // Past its bound a number flag says the bound, not its type's: `--frames 4294967296`
        // was "not in 0..=4294967295", and `--napi-defer 2147483648` reached the kernel.
        let refused = |flag: &str, value: &str| {
            Cli::try_parse_from(["transitd", "run", "-c", "x", "--iface", "e", flag, value]).unwrap_err().to_string()
        };
        for value in ["255", "1048577", "4294967296"] {
            let e = refused("--frames", value);
            assert!(e.contains(&format!("{value} is not in 256..=1048576")), "{e}");
        }
        let e = refused("--napi-defer", "2147483648");
        assert!(e.contains("2147483648 is not in 0..=2147483647"), "{e}");
        // A negative number is out of range as well: clap called it an unexpected argument
        // (`-1` taken for a flag), or its u64 parser "invalid digit found in string".
        for (flag, said) in [
            ("--frames", "-1 is not in 256..=1048576"),
            ("--napi-defer", "-1 is not in 0..=2147483647"),
            ("--punt-rate", "-1 is not in 0..=4294967295"),
            ("--idle-sleep-us", "-1 is not in 0..=1000000"),
            ("--gro-flush-timeout", "-1 is not in 0..=18446744073709551615"),
            ("--stats-interval", "`-1` is not between 0 and 86400 seconds"),
            ("--watch-interval", "`-1` is not between 0 and 86400 seconds"),
        ] {
            let e = refused(flag, "-1");
            assert!(e.contains(&format!("invalid value '-1' for '{flag} <")) && e.contains(said), "{flag}: {e}");
        }
        for (flag, value, said) in [
            ("--idle-sleep-us", "1000001", "1000001 is not in 0..=1000000"),
            ("--idle-sleep-us", "99999999999999999999", "99999999999999999999 is not in 0..=1000000"),
            ("--gro-flush-timeout", "18446744073709551616", "18446744073709551616 is not in 0..=18446744073709551615"),
            ("--idle-sleep-us", "1e3", "`1e3` is not a whole number"),
        ] {
            let e = refused(flag, value);
            assert!(e.contains(said), "{flag} {value}: {e}");
        }
        // From 2^63 on, and past u64, the u32 flags say their range too: clap's u32 parser,
        // which reads an i64 first, said "number too large to fit in target type" there, and
        // "invalid digit found in string" of what is no whole number.
        for (flag, range) in
            [("--frames", "256..=1048576"), ("--napi-defer", "0..=2147483647"), ("--punt-rate", "0..=4294967295")]
        {
            for value in ["9223372036854775808", "18446744073709551616", "-9223372036854775809"] {
                let e = refused(flag, value);
                assert!(e.contains(&format!("{value} is not in {range}")), "{flag} {value}: {e}");
            }
            for value in ["1e30", "abc"] {
                let e = refused(flag, value);
                assert!(e.contains(&format!("`{value}` is not a whole number")), "{flag} {value}: {e}");
            }
        }
        let a_second = ["transitd", "run", "-c", "x", "--iface", "e", "--idle-sleep-us", "1000000"];
        assert_eq!(parse(&a_second).unwrap().idle_sleep, Duration::from_secs(1));
        let capture = |flag: &str, value: &str| {
            let args = ["transitd", "replay", "-c", "x", "-i", "y", "--capture-drops", "d.pcapng", flag, value];
            Cli::try_parse_from(args).unwrap_err().to_string()
        };
        for (flag, said) in [
            ("--capture-rate", "-1 is not in 1..=4294967295"),
            ("--capture-snaplen", "-1 is not in 64..=65536"),
            ("--capture-max-size", "`-1` is negative: a size is a number of bytes"),
        ] {
            let e = capture(flag, "-1");
            assert!(e.contains(&format!("invalid value '-1' for '{flag} <")) && e.contains(said), "{flag}: {e}");
        }
        for value in ["9223372036854775808", "18446744073709551616"] {
            let e = capture("--capture-rate", value);
            assert!(e.contains(&format!("{value} is not in 1..=4294967295")), "{e}");
        }
        // Bytes past u64 are too large, not "not a size" (a number of bytes is what they are).
        let e = capture("--capture-max-size", "18446744073709551616");
        assert!(e.contains("`18446744073709551616` is too large: at most 18446744073709551615 bytes"), "{e}");
        // A size with a unit is no number to clap, which took `-1K` for flags (`-1`, `-K`).
        for value in ["-1K", "-1.5M"] {
            let e = capture("--capture-max-size", value);
            assert!(e.contains(&format!("`{value}` is negative: a size is a number of bytes")), "{e}");
        }
        for value in ["63", "65537"] {
            let e = capture("--capture-snaplen", value);
            assert!(e.contains(&format!("{value} is not in 64..=65536")), "{e}");
        }
        let e = Cli::try_parse_from(["transitd", "match", "-r", "x", "-Y", "ip", "-c", "-1"]).unwrap_err().to_string();
        assert!(e.contains("-1 is a negative number: at least 1 frame"), "{e}");
        // A count past u64 is a count past the bound, not "not a number of frames".
        let e = Cli::try_parse_from(["transitd", "match", "-r", "x", "-Y", "ip", "-c", "18446744073709551616"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("18446744073709551616 is not in 1..=18446744073709551615"), "{e}");
        assert_eq!(
            parse(&["transitd", "run", "-c", "x", "--iface", "e", "--napi-defer", "2147483647"]).unwrap().napi_defer,
            Some(2147483647)
        );
        // A punt device name Linux would refuse is refused before anything is attached.
        for bad in ["", "a-name-of-16-byt", "a/b", "a:b", "a b", ".", ".."] {
            let e = parse(&["transitd", "run", "-c", "x", "--iface", "e", "--punt-device", bad]).unwrap_err();
            assert!(e.contains("is not a device name Linux takes"), "{bad:?}: {e}");
        }
        assert!(parse(&["transitd", "run", "-c", "x", "--iface", "e", "--punt-device", "td-fifteen-byte"]).is_ok());
    }

    /// An etcd prefix without its closing `/` also takes a sibling prefix's keys: refused.
    #[test]
    fn an_etcd_prefix_ends_in_a_slash() {
        let run = |prefix: &str| {
            Cli::try_parse_from([
                "transitd",
                "run",
                "--config-etcd",
                "http://e:2379",
                "--prefix",
                prefix,
                "--iface",
                "e",
            ])
        };
        assert!(run("/transitd/").is_ok());
        let e = run("/transitd").unwrap_err().to_string();
        assert!(e.contains("an etcd prefix ends in `/` (`/transitd/`)"), "{e}");
        let e = run("").unwrap_err().to_string();
        assert!(e.contains("an empty prefix takes every key of the store"), "{e}");
    }
}

/// `transitd bgp ...`.
#[derive(Subcommand, Debug)]
pub enum BgpCommand {
    /// Print the BIRD include file a configuration gives (every tunnel taken as up): the
    /// prefixes this server announces while it runs (without a [bgp] section: what one with
    /// its defaults would announce, said on standard error).
    Show {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Withdraw everything: write an empty include file and reconfigure BIRD (for a service
    /// manager's stop command; `transitd run` withdraws by itself, even when killed).
    Withdraw {
        /// The TOML configuration file (its [bgp] section).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The process `transitd run` starts to keep BIRD's include file (internal).
    #[command(hide = true)]
    Guard {
        /// BIRD's control socket.
        #[arg(long)]
        bird_socket: PathBuf,
        /// The include file to keep.
        #[arg(long)]
        bird_include: PathBuf,
        /// Withdraw everything after this long without a line from transitd.
        #[arg(long)]
        withdraw_after_ms: u64,
        /// On SIGTERM, announce with GRACEFUL_SHUTDOWN this long before withdrawing (0: at
        /// once; the default, for a run of an older version that starts this one).
        #[arg(long, default_value_t = 0)]
        graceful_shutdown_ms: u64,
    },
}

/// A whole number in `range`. Any other integer (negative, past the range, past u64) is said
/// with the range, and anything else as no whole number: clap's own parsers said "invalid
/// digit found in string" of `-1` (u64) and of `1e30`, and "number too large to fit in
/// target type" of any number from 2^63 on (u32 too, read as an i64 first).
fn whole_number_in(text: &str, range: RangeInclusive<u64>) -> Result<u64, String> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a whole number"));
    }
    // An i128 holds every u64 and its negation (`-0` is 0); longer numbers are out of range.
    match text.parse::<i128>().ok().and_then(|n| u64::try_from(n).ok()) {
        Some(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{text} is not in {}..={}", range.start(), range.end())),
    }
}

/// `--idle-sleep-us`: at most [`MAX_IDLE_SLEEP_US`].
fn parse_idle_sleep_us(text: &str) -> Result<u64, String> {
    whole_number_in(text, 0..=MAX_IDLE_SLEEP_US)
}

/// A whole number in `range`, as [`whole_number_in`] says it, for the u32 flags: clap's own
/// u32 parser reads an i64 first, and said "number too large to fit in target type" of
/// 2^63 and more, and "invalid digit found in string" of `1e30`, where any other value past
/// the range is said with it.
fn u32_in(text: &str, range: RangeInclusive<u32>) -> Result<u32, String> {
    let n = whole_number_in(text, u64::from(*range.start())..=u64::from(*range.end()))?;
    // Inside a range of u32s, so a u32.
    u32::try_from(n).map_err(|e| e.to_string())
}

/// `--frames`: UMEM frames per queue, [`MIN_UMEM_FRAMES`] to [`MAX_UMEM_FRAMES`].
fn parse_frames(text: &str) -> Result<u32, String> {
    u32_in(text, MIN_UMEM_FRAMES..=MAX_UMEM_FRAMES)
}

/// `--napi-defer`: at most [`MAX_NAPI_DEFER`], the kernel's bound.
fn parse_napi_defer(text: &str) -> Result<u32, String> {
    u32_in(text, 0..=MAX_NAPI_DEFER)
}

/// `--punt-rate`: frames per second, 0 (none) to what the token bucket's u32 holds.
fn parse_punt_rate(text: &str) -> Result<u32, String> {
    u32_in(text, 0..=u32::MAX)
}

/// `--capture-rate`: frames per second, at least 1.
fn parse_capture_rate(text: &str) -> Result<u32, String> {
    u32_in(text, 1..=u32::MAX)
}

/// `--gro-flush-timeout`: nanoseconds, any the kernel's unsigned long holds.
fn parse_nanoseconds(text: &str) -> Result<u64, String> {
    whole_number_in(text, 0..=u64::MAX)
}

/// `--capture-snaplen`: below [`MIN_CAPTURE_SNAPLEN`] a frame's headers are cut. The top is
/// the largest frame size, 65536, which the default (the frame size) may be: a frame of
/// several buffers (jumbo, multi-buffer) is longer and cut there, as by the default. pcapng
/// readers take up to 262144 (libpcap's and Wireshark's bound).
fn parse_snaplen(text: &str) -> Result<usize, String> {
    let range = MIN_CAPTURE_SNAPLEN as u64..=MAX_CAPTURE_SNAPLEN as u64;
    whole_number_in(text, range).and_then(|n| usize::try_from(n).map_err(|e| e.to_string()))
}

/// `match -c`: tshark's count of frames to read, at least 1 (tshark refuses 0). Every other
/// command's `-c` is its configuration, so a file name here is said to be one.
fn frame_count(text: &str) -> Result<u64, String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(0) => Err("at least 1 frame (tshark refuses 0 too)".to_string()),
        Ok(n) => Ok(n),
        // A negative count is no configuration file: said as tshark says it.
        Err(_) if text.strip_prefix('-').is_some_and(digits) => {
            Err(format!("{text} is a negative number: at least 1 frame (tshark refuses it too)"))
        }
        // Digits past u64 are a count all the same, past the bound (tshark says its own,
        // "too large (greater than 2147483647)"): not "not a number of frames".
        Err(_) if digits(text) => Err(format!("{text} is not in 1..={}", u64::MAX)),
        Err(_) => Err(format!(
            "`{text}` is not a number of frames: -c here is tshark's frame count (a configuration is --config FILE)"
        )),
    }
}

/// An etcd key prefix ends in `/`: keys are matched by prefix, so `/transitd` would also take
/// `/transitd-staging/server` (as `-staging/server`, not a transitd key, and the whole
/// configuration refused at every change).
fn etcd_prefix(text: &str) -> Result<String, String> {
    if text.ends_with('/') {
        Ok(text.to_string())
    } else if text.is_empty() {
        // Every key of the store, the server key `server` at its top: said as such, not as a
        // prefix missing its `/`.
        Err("an empty prefix takes every key of the store: write `/` for keys under `/`, or a prefix such as \
             `/transitd/`"
            .to_string())
    } else {
        Err(format!("an etcd prefix ends in `/` (`{text}/`): `{text}` would also take the keys of `{text}-other/`"))
    }
}
