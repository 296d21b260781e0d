//! The `transitd` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use transitd::cli::{Cli, Command};
use transitd::log_line;
use transitd::snapshot::Snapshot;

/// Refuses two of `files` (flag, path) that name one file: the same path, a link to it, or
/// a second name of it.
fn refuse_same_files(files: &[(&str, &PathBuf)]) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    // A file that exists is known by its device and inode; one that does not yet by the
    // canonical path of its directory and its name. Devices and pipes (`/dev/null`) may be
    // named twice: nothing is truncated or interleaved in them.
    let identity = |path: &Path| -> Option<(u64, u64, PathBuf)> {
        if transitd::files::is_standard_stream(path) {
            return None; // standard input or output, not a file
        }
        if let Ok(m) = std::fs::metadata(path) {
            return m.is_file().then(|| (m.dev(), m.ino(), PathBuf::new()));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some((0, 0, dir.canonicalize().ok()?.join(path.file_name()?)))
    };
    let ids: Vec<_> = files.iter().map(|(_, p)| identity(p)).collect();
    for (i, a) in ids.iter().enumerate() {
        for (j, b) in ids.iter().enumerate().skip(i + 1) {
            if a.is_some() && a == b {
                let ((fa, pa), (fb, pb)) = (files[i], files[j]);
                anyhow::bail!("{fa} {} and {fb} {} are the same file", pa.display(), pb.display());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // What was wanted was read (`| head`): no error, as for any Unix filter.
        Err(e) if e.is::<ReaderGone>() => ExitCode::SUCCESS,
        // The run's supervisor said it when it found it.
        Err(e) if e.chain().any(|c| c.is::<transitd::run::Said>()) => ExitCode::from(2),
        // A configuration refused: 1, as check-config says it (`--help`'s exit status).
        Err(e) if e.chain().any(|c| c.is::<transitd::config::ConfigErrors>()) => {
            say_refused(&e);
            ExitCode::from(1)
        }
        Err(e) if e.chain().any(|c| c.is::<Refused>()) => {
            log_line!("transitd: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            log_line!("transitd: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The errors of a configuration `run` refused, said as every other command says them (`load`):
/// each a line of its own from `file:line:col`, where an editor finds it. What was refused,
/// where the errors came with it (an etcd prefix), is said on a line before them.
fn say_refused(e: &anyhow::Error) {
    let mut what = Vec::new();
    for cause in e.chain() {
        if let Some(errors) = cause.downcast_ref::<transitd::config::ConfigErrors>() {
            if !what.is_empty() {
                log_line!("transitd: {}:", what.join(": "));
            }
            log_line!("{errors}");
            return;
        }
        what.push(cause.to_string());
    }
}

/// Standard output's reader went away (a pipe into `head`): the command ends quietly.
#[derive(Debug, thiserror::Error)]
#[error("the reader of standard output went away")]
struct ReaderGone;

/// A configuration that lacks what the command needs (`plan` of a file without
/// `[soft_unicast]`): refused as an invalid one is, exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Writes `text` to standard output. An error when it cannot be (a full disk: `main` says
/// it, exit status 2), or [`ReaderGone`]; `print!` panicked on either.
fn out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    judged(write!(stdout, "{text}").and_then(|()| stdout.flush()))
}

/// What a write to standard output came to, as `main` judges it: [`ReaderGone`], or an
/// error that says where it was writing.
fn judged(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ReaderGone.into()),
        written => written.context("writing to standard output"),
    }
}

/// The configuration a one-shot command reads (a file or a pipe), compiled.
fn load(path: &std::path::Path) -> Result<Snapshot, ExitCode> {
    load_as(path, Snapshot::build)
}

/// [`load`] as `run` builds it (`this_server`: its `--this-server`): a next hop is needed too
/// (the interface's MAC is taken as readable, which only `run` can tell). `check-config`
/// checks what `run` will accept: the unit's `ExecStartPre` and a check before a reload must
/// not pass a file `run` refuses.
fn load_to_run(path: &std::path::Path, this_server: Option<&str>) -> Result<Snapshot, ExitCode> {
    let this_server = this_server.map(str::to_string);
    let host = transitd::snapshot::Host { iface_mac_known: true, this_server, ..Default::default() };
    load_as(path, |loaded| Snapshot::build_to_run(loaded, &host))
}

/// [`load`] for what is the fleet's, not one server's (`plan`, `geofeed`, `bgp show`): a
/// fleet's shared configuration, which names no `this_server`, is taken too.
fn load_for_fleet(path: &std::path::Path) -> Result<Snapshot, ExitCode> {
    load_as(path, Snapshot::build_for_fleet)
}

fn load_as(
    path: &std::path::Path,
    build: impl FnOnce(&transitd::config::Loaded) -> Result<Snapshot, transitd::config::ConfigErrors>,
) -> Result<Snapshot, ExitCode> {
    let snap = transitd::config::load_once(path).and_then(|loaded| build(&loaded)).map_err(|errors| {
        log_line!("{errors}");
        ExitCode::from(1)
    })?;
    say_warnings(&snap);
    Ok(snap)
}

/// The warnings of a configuration a one-shot command read, a line each (`run` logs its own
/// with the `transitd:` of its other log lines).
fn say_warnings(snap: &Snapshot) {
    for warning in transitd::config::warning_lines(&snap.warnings) {
        log_line!("warning: {warning}");
    }
}

fn soft_unicast<'s>(snap: &'s Snapshot, config: &Path) -> anyhow::Result<&'s transitd::snapshot::SoftUnicast> {
    snap.soft_unicast.as_ref().ok_or_else(|| Refused(format!("{}: no [soft_unicast] section", config.display())).into())
}

/// Runs one subcommand; errors print as `transitd: ...` with exit status 2.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan { config, previous, out } => plan(&config, previous.as_deref(), out.as_deref()),
        Command::Geofeed { config: Some(config), .. } => geofeed(&config),
        Command::Geofeed { check, .. } => check_geofeed(&check.context("--check FILE or --config FILE")?),
        Command::Connect { config, tag, class, udp, this_server, send, remote } => {
            connect(&config, tag, class, udp, this_server.as_deref(), send.as_deref(), remote)
        }
        Command::CheckConfig { file, config, this_server } => {
            let file = file.or(config).context("check-config needs a configuration file")?;
            check_config(&file, this_server.as_deref())
        }
        Command::Replay { config, input, output, capture } => replay(&config, &input, output.as_ref(), &capture),
        Command::Stats { metrics, interval, raw } => stats(metrics.reachable(), interval, raw),
        Command::Run(args) => {
            let opts = args.options()?;
            if let (Some(c), transitd::run::ConfigSource::File(path)) = (&opts.capture, &opts.config) {
                refuse_same_files(&[("--config", path), ("--capture-drops", &c.path)])?;
            }
            transitd::run::run(&opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bgp(command) => bgp(command),
        Command::Detach { iface } => {
            match transitd::run::detach(&iface)? {
                Some(found) => {
                    out(format_args!("detached a stale transitd XDP program (id {}) from {iface}\n", found.id))?
                }
                None => out(format_args!("no XDP program was attached to {iface}\n"))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Match { read, filter, config, lists, count_limit, count, json } => {
            // clap's `requires` does not hold --json to --config once -Y meets the group.
            if json && config.is_none() {
                anyhow::bail!("--json prints the report of --config; with -Y alone there is none");
            }
            // Nor --lists to -Y: ignored, it would let a filter naming a list look checked.
            if lists.is_some() && filter.is_none() {
                anyhow::bail!("--lists names the lists of -Y's expression; --config's rules take its own");
            }
            // tshark's empty filter is every frame, and so is ours; a configuration says it
            // as a warning, and so does this (an unset shell variable looks the same).
            if filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
                log_line!(
                    "transitd: warning: the filter is empty, so it selects every frame (write `frame` to mean that)"
                );
            }
            match_command(&read, filter.as_deref(), config.as_deref(), lists.as_deref(), count_limit, count, json)
        }
        Command::Completions { shell } => {
            // Made whole first: clap_complete panics on a failed write (`| head`), and a
            // reader that stopped reading is no error of ours.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "transitd", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Manpages { dir } => {
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `transitd plan`: the port-slice plan of the configuration's `[soft_unicast]`, and what
/// moved since `previous`.
fn plan(config: &Path, previous: Option<&Path>, out_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    // The plan file the configuration names is what this command makes: plan from the
    // section itself. The previous plan is --previous, or else that file, where it is: a
    // plan made afresh moves slices between servers that did not change.
    let mut named = None;
    let snap = match transitd::config::load_once(config).and_then(|mut loaded| {
        if let Some(su) = &mut loaded.file.soft_unicast {
            named = su.get_mut().plan.take().map(|p| config.parent().unwrap_or(Path::new("")).join(p.get_ref()));
        }
        Snapshot::build_for_fleet(&loaded)
    }) {
        Ok(s) => s,
        Err(errors) => {
            log_line!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    // Said as every command that reads the configuration says them: a city the geofeed
    // publishes with a comma went unsaid by the command run when the fleet changes.
    say_warnings(&snap);
    let su = soft_unicast(&snap, config)?;
    let previous = match (previous, &named) {
        (Some(p), _) => Some(p),
        (None, Some(p)) if p.exists() => {
            log_line!("previous plan: {} (the configuration's plan; --previous names another)", p.display());
            Some(p.as_path())
        }
        _ => None,
    };
    let previous: Option<portslice::Plan> = previous
        .map(|p| -> anyhow::Result<portslice::Plan> {
            let text = transitd::limits::read_text_once(p, transitd::limits::MAX_PLAN_BYTES, "a plan")
                .with_context(|| p.display().to_string())?;
            serde_json::from_str(&text).with_context(|| format!("{}: not a plan file", p.display()))
        })
        .transpose()?;
    let had_previous = previous.is_some();
    let (plan, moves) = portslice::Plan::replan(su.plan.spec.clone(), previous.as_ref())?;
    if previous.as_ref().is_some_and(|p| !p.same_slices(&plan)) {
        log_line!("the previous plan has other slices (slice_size, reserved_ports): none of its owners is kept");
    }
    // `--out -`: the plan on standard output, what it moved where errors go.
    if out_file.is_some_and(transitd::files::is_standard_stream) {
        out(serde_json::to_string_pretty(&plan)? + "\n")?;
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            transitd::plan_report::render(&plan, had_previous.then_some(&moves[..])).as_bytes(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The file first: a plan printed and then not written would look written.
    if let Some(path) = out_file {
        refuse_same_files(&[("--config", &config.to_path_buf()), ("--out", &path.to_path_buf())])?;
        // Replaced whole: `run` may be watching it, and a failed write must not leave the
        // plan in force truncated.
        transitd::files::replace(path, serde_json::to_string_pretty(&plan)?.as_bytes())
            .with_context(|| format!("--out {}", path.display()))?;
    }
    out(transitd::plan_report::render(&plan, had_previous.then_some(&moves[..])))?;
    if let Some(path) = out_file {
        log_line!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `transitd geofeed --config`: the egress addresses as an RFC 8805 geofeed.
fn geofeed(config: &Path) -> anyhow::Result<ExitCode> {
    let snap = match load_for_fleet(config) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    out(portslice::geofeed::generate(&soft_unicast(&snap, config)?.plan.spec.egress))?;
    Ok(ExitCode::SUCCESS)
}

/// `transitd geofeed --check`: whether a file is a well-formed geofeed.
fn check_geofeed(path: &Path) -> anyhow::Result<ExitCode> {
    use transitd::limits::ReadError;
    // A file that is no feed (not text, too large) is refused as a bad line is, exit 1; one
    // that cannot be read at all is the exit-2 kind of failure.
    let text = match transitd::limits::read_text_once(path, transitd::limits::MAX_GEOFEED_BYTES, "a geofeed") {
        Ok(text) => text,
        Err(ReadError::NotUtf8 { line, col }) => {
            log_line!("{}:{line}:{col}: not UTF-8 text: an invalid byte", path.display());
            return Ok(ExitCode::from(1));
        }
        Err(e @ ReadError::TooLarge { .. }) => {
            log_line!("{}: {e}", path.display());
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(path.display().to_string())),
    };
    let checked = portslice::geofeed::parse_all(&text);
    // Every bad line, then every warning, each as file:line:col, up to a screenful's worth
    // more than anyone reads.
    const SHOWN: usize = 100;
    for (said, kind, more) in [(&checked.errors, "", "bad lines"), (&checked.warnings, "warning: ", "warnings")] {
        for e in said.iter().take(SHOWN) {
            log_line!("{}:{}:{}: {kind}{}", path.display(), e.line, e.col, e.reason);
        }
        if said.len() > SHOWN {
            log_line!("{}: {} more {more}", path.display(), said.len() - SHOWN);
        }
    }
    if !checked.errors.is_empty() {
        return Ok(ExitCode::from(1));
    }
    let n = checked.entries.len();
    out(format_args!("{}: ok ({n} {})\n", path.display(), if n == 1 { "entry" } else { "entries" }))?;
    if n == 0 {
        // Well formed, and publishing it would withdraw every location a consumer knows.
        log_line!("{}: warning: the feed has no entries", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `transitd connect`: a connection from one of this server's port slices.
fn connect(
    config: &Path,
    tag: Option<String>,
    class: Option<String>,
    udp: bool,
    this_server: Option<&str>,
    send: Option<&str>,
    remote: std::net::SocketAddrV4,
) -> anyhow::Result<ExitCode> {
    // Built as that server: a shared configuration names none, and a name that is no
    // server's is refused as `run` refuses it.
    let snap = match load_as(config, |loaded| Snapshot::build_as(loaded, this_server)) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let su = soft_unicast(&snap, config)?;
    let want = portslice::select::Want { country: tag.unwrap_or_default(), class: class.unwrap_or_default() };
    let me = &su.owners.servers[usize::from(su.this_server)];
    let slices = transitd::connect::slices(&su.plan, &want, me);
    // Return traffic for another server's slice crosses the backbone: keep TCP
    // segments small enough to fit once encapsulated (IPv4 + GRE with key, IPv4 + TCP).
    let mss = (su.backbone_mtu - 28 - 40).min(65535) as u16;
    let mut stdout = Watched { inner: std::io::stdout().lock(), failed: false };
    match transitd::connect::run(&mut stdout, &slices, remote, udp, mss, send) {
        // Standard output's own failure, judged as every command's is (not the connection's,
        // whose broken pipe is an error to say).
        Err(e) if stdout.failed => judged(Err(e)),
        done => Ok(done?),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// A writer that remembers whether a write to it failed.
struct Watched<W> {
    inner: W,
    failed: bool,
}

impl<W: std::io::Write> std::io::Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.failed |= r.is_err();
        r
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.failed |= r.is_err();
        r
    }
}

/// `transitd check-config`: loads and compiles the file, and says what it holds.
fn check_config(file: &Path, this_server: Option<&str>) -> anyhow::Result<ExitCode> {
    Ok(match load_to_run(file, this_server) {
        Ok(snap) => {
            let rules: usize = snap.customers.iter().map(|c| c.firewall.rules().len()).sum();
            let sets = snap.customers.iter().flat_map(|c| [&c.firewall, &c.egress, &c.dos, &c.tcp]);
            let interpreted: usize = sets.chain([&snap.dos.rules, &snap.tcp.global]).map(|s| s.interpreted()).sum();
            let interpreted = match interpreted {
                0 => String::new(),
                n => format!(
                    "; {} too complex for the decision trees (over {} boxes, or {} answers of \
                     their byte tests) {} checked by interpretation, a cost per packet they may select",
                    transitd::report::counted(n, "rule"),
                    classifier::compile::MAX_BOXES_PER_RULE,
                    classifier::compile::MAX_CLAUSES_PER_RULE,
                    if n == 1 { "is" } else { "are" }
                ),
            };
            let su = snap.soft_unicast.as_ref().map_or(String::new(), |su| {
                format!(
                    "; soft-unicast: {}, this server {}",
                    transitd::report::counted_as(su.plan.owners.len(), "egress address", "egress addresses"),
                    su.owners.servers[usize::from(su.this_server)]
                )
            });
            out(format_args!(
                "{}: ok ({}, {}, {}{su}{interpreted})\n",
                file.display(),
                transitd::report::counted(snap.customers.len(), "customer"),
                transitd::report::counted(snap.tunnels.len(), "tunnel"),
                transitd::report::counted(rules, "firewall rule")
            ))?;
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

/// `transitd replay`: a capture through the pipeline, and its summary.
fn replay(
    config: &PathBuf,
    input: &PathBuf,
    output: Option<&PathBuf>,
    capture: &transitd::cli::CaptureArgs,
) -> anyhow::Result<ExitCode> {
    let snap = match load(config) {
        Ok(s) => std::sync::Arc::new(s),
        Err(code) => return Ok(code),
    };
    let capture = capture.options()?.map(|mut c| {
        if c.snaplen == 0 {
            c.snaplen = snap.frame_size;
        }
        c
    });
    // Each file is written once and read once: none may be another (a truncated input,
    // or two writers interleaving in one file).
    let mut files = vec![("--in", input)];
    files.extend(output.map(|o| ("--out", o)));
    files.extend(capture.as_ref().map(|c| ("--capture-drops", &c.path)));
    files.push(("--config", config));
    refuse_same_files(&files)?;
    let summary = transitd::replay::replay_capturing(snap.clone(), input, output.map(PathBuf::as_path), capture)?;
    // With the frames on standard output (`--out -`), the summary goes where errors go; a
    // reader that stopped reading ends the command quietly, as it does every command's.
    if summary.reader_gone {
        return Ok(ExitCode::SUCCESS);
    }
    if output.is_some_and(|o| transitd::files::is_standard_stream(o)) {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.render(&snap).as_bytes());
    } else {
        out(summary.render(&snap))?;
    }
    // What went wrong is said where errors go, after the summary of what was done.
    if let Some(e) = &summary.error {
        log_line!("transitd: {e}");
    }
    Ok(if summary.error.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// `transitd stats`: a running instance's counters, for people (or raw).
fn stats(metrics: std::net::SocketAddr, interval: Option<std::time::Duration>, raw: bool) -> anyhow::Result<ExitCode> {
    let first = transitd::metrics::fetch(metrics)?;
    // Another program's metrics would print as an empty transitd of unknown version.
    anyhow::ensure!(
        first.contains("transitd_build_info"),
        "{metrics}: its metrics are not transitd's (no transitd_build_info): is --metrics the address `transitd run` serves?"
    );
    let first_at = std::time::Instant::now();
    if raw {
        out(first)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = match interval {
        Some(interval) => {
            std::thread::sleep(interval);
            // Said with the first reading's answer: the error alone ("Connection refused ...
            // is `transitd run` running?") reads as if it never answered.
            let second = transitd::metrics::fetch(metrics).map_err(|e| {
                let before = first_at.elapsed().as_secs_f64();
                anyhow::anyhow!("{e}; the first reading, {before:.1} s before, was answered")
            })?;
            // The time between the two readings, not the sleep: each scrape's own time (a
            // large configuration's takes a good part of a second) is in the counters too.
            let s = first_at.elapsed().as_secs_f64();
            transitd::metrics::for_people(metrics, &second, Some((&first, s)))
        }
        None => transitd::metrics::for_people(metrics, &first, None),
    };
    out(report)?;
    Ok(ExitCode::SUCCESS)
}

/// `transitd match`; exit status 2 for a bad expression or an unreadable capture, as tshark.
fn match_command(
    read: &Path,
    filter: Option<&str>,
    config: Option<&Path>,
    lists: Option<&Path>,
    limit: Option<u64>,
    count: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use transitd::dryrun::{MatchError, dry_run, match_filter};
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // The first write that failed: the rest are not tried.
    let mut written: std::io::Result<()> = Ok(());
    let result = if let Some(text) = filter {
        let mut registry = match lists.map(transitd::snapshot::list_registry).transpose() {
            Ok(r) => r.unwrap_or_default(),
            Err(errors) => {
                log_line!("{errors}");
                return Ok(ExitCode::from(1));
            }
        };
        let expr = match classifier::parse_with(text, &mut registry) {
            Ok(e) => e,
            Err(e) => {
                log_line!("transitd: {}", e.render(text));
                return Ok(ExitCode::from(2));
            }
        };
        let mut selected = 0u64;
        let r = match_filter(read, &expr, &registry.membership(), limit, |n| {
            selected += 1;
            if !count && written.is_ok() {
                written = writeln!(stdout, "{n}");
            }
        });
        if count && r.is_ok() {
            written = writeln!(stdout, "{selected}");
        }
        // Said after the output, on stderr: a filter of IP fields over such frames selects
        // none of them, and that must not pass for "nothing matched".
        for (link_type, n) in r.as_ref().map(|r| &r.unread).into_iter().flatten() {
            log_line!(
                "transitd: {} of link type {link_type} not read (numbered; of its fields only frame.len is known)",
                transitd::report::counted(*n as usize, "frame")
            );
        }
        r.map(|_| ())
    } else if let Some(config) = config {
        let snap = match load(config) {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        let (report, result) = dry_run(&snap, read, limit);
        // The frames read before a capture cut short are reported, as -Y lists them.
        if result.is_ok() || !report.frames.is_empty() {
            written = if json {
                serde_json::to_writer_pretty(&mut stdout, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(stdout))
            } else {
                write!(stdout, "{}", report.render())
            };
        }
        result
    } else {
        log_line!("transitd: match needs -Y EXPR or --config FILE");
        return Ok(ExitCode::from(2));
    };
    // A reader gone or a failed write is judged as every command's output is.
    judged(written.and_then(|()| stdout.flush()))?;
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(MatchError::Expression(e)) => {
            log_line!("transitd: {e}");
            ExitCode::from(2)
        }
        Err(MatchError::Capture(e)) => {
            log_line!("transitd: {e}");
            ExitCode::from(2)
        }
    })
}

fn bgp(command: transitd::cli::BgpCommand) -> anyhow::Result<ExitCode> {
    use transitd::bgp::{Announcements, bird, guard};
    use transitd::cli::BgpCommand;
    match command {
        BgpCommand::Show { config } => {
            let snap = match load_for_fleet(&config) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            // A preview of what the section would announce, and said to be one: without
            // it nothing is announced, and the include would look like what BIRD is given.
            if snap.bgp.is_none() {
                log_line!(
                    "transitd: note: {} has no [bgp] section and announces nothing; this is what one with its \
                     defaults would announce",
                    config.display()
                );
            }
            // What a running edge announces with its tunnels answering their probes.
            for t in &snap.tunnels {
                snap.health.set_judged(t.id);
            }
            out(bird::render(&Announcements::of(&snap)))?;
        }
        BgpCommand::Withdraw { config } => {
            // The unit's stop backstop: only `[bgp]`'s paths are needed, so a file the running
            // edge refused (a bad rule, a missing list) still withdraws.
            let loaded = match transitd::config::load_once(&config) {
                Ok(l) => l,
                Err(errors) => {
                    log_line!("{errors}");
                    return Ok(ExitCode::from(1));
                }
            };
            let Some(section) = loaded.file.bgp.as_ref().map(|b| b.get_ref()) else {
                log_line!("{}: no [bgp] section", config.display());
                return Ok(ExitCode::from(1));
            };
            let (include, socket) =
                (Path::new(section.bird_include.get_ref()), Path::new(section.bird_socket.get_ref()));
            if !include.is_absolute() || !socket.is_absolute() {
                log_line!("{}: [bgp] bird_include and bird_socket must be absolute paths", config.display());
                return Ok(ExitCode::from(1));
            }
            match bird::apply(include, socket, &Announcements::none(), true)? {
                bird::Applied::Configured => {
                    log_line!("transitd: withdrew every prefix ({} is empty; BIRD reconfigured)", include.display())
                }
                bird::Applied::Disabled(refused) => log_line!(
                    "transitd: withdrew every prefix: BIRD refused its configuration ({refused}), so transitd4 and transitd6 are disabled"
                ),
            }
        }
        BgpCommand::Guard { bird_socket, bird_include, withdraw_after_ms, graceful_shutdown_ms } => {
            let withdraw_after = std::time::Duration::from_millis(withdraw_after_ms);
            let graceful_shutdown = std::time::Duration::from_millis(graceful_shutdown_ms);
            guard::run(&guard::GuardOptions { bird_socket, bird_include, withdraw_after, graceful_shutdown })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
