//! Configuration changes while running: noticing them (a changed file, SIGHUP, etcd), and
//! applying one: the new snapshot is built on a thread of its own (the supervisor goes on
//! ticking: BGP's liveness lines, the watchdog), the XDP program's tables are widened to
//! cover both, the snapshot swapped in (workers follow between batches), and the tables
//! narrowed. A configuration that fails for any reason is rejected whole and the running
//! one stays; the files it named are watched with the running one's, and one of them
//! written tries it again. A file the running configuration names that changed meanwhile
//! is applied with the running configuration, as it was read (a file's text, what etcd
//! held), not with the newer one that stays rejected. Maps of the XDP program that a
//! reload could not narrow to the running configuration (or put back to it) are tried again
//! every second, and said in the metrics meanwhile (`transitd_xdp_maps_stale`). Customer
//! prefixes a reload removes stay in the program's map for their grace
//! ([`crate::snapshot::Withdrawn`]), and leave it when that ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use transitd_bpf::XdpProgram;

use super::ConfigSource;
use crate::config::{self, ConfigErrors};
use crate::fleet;
use crate::snapshot::{FileStamp, Host, Refused, Snapshot, Withdrawn, stamp};

/// Where configuration changes come from while running: the file (watched, and on SIGHUP)
/// or the etcd prefix (watched by a thread; SIGHUP fetches it again); and either way the
/// files the configuration names (lists, the plan), watched.
pub(super) struct ConfigWatch {
    source: ConfigSource,
    file: FileWatch,
    /// What etcd held when the running configuration was read: a named file that changed
    /// is read again with it (the running configuration with the new file; a newer read
    /// that was rejected is tried again first only if it read that file too, `rejected`).
    /// Shared with the build that read it: up to 16 MiB.
    etcd_applied: Option<Arc<fleet::Fetched>>,
    /// The configuration file's text as the running configuration was read from it, for the
    /// same use: an edit of the file that was rejected must not hold back a feed's list.
    file_applied: Option<Arc<str>>,
    /// The newest configuration read, when it was rejected (until one newer is read).
    rejected: Option<Rejected>,
    /// A retry of `rejected` was rejected again: the running configuration is built next,
    /// with the files that changed, before `rejected` is tried again. Else a feed rewriting
    /// a list it names faster than a build retried it over and over, and the running
    /// configuration never had the list.
    running_owed: bool,
    /// A newer etcd read that waits for a file it names to settle: a feed was writing it
    /// (or had just truncated it), and built now the read would take in half a list, or an
    /// empty one. The newest read replaces it.
    etcd_waiting: Option<Arc<fleet::Fetched>>,
    /// The wait of `etcd_waiting` was said.
    etcd_waiting_said: bool,
    etcd_slot: fleet::Slot,
    etcd_refetch: Arc<AtomicBool>,
    etcd: Option<JoinHandle<()>>,
    /// The configuration being built, off the supervisor's thread.
    building: Option<Building>,
    /// SIGHUP came while a build was under way: read again when it is done.
    signalled_meanwhile: bool,
    /// What the configuration does not say: whether the interface's own MAC could be read
    /// at start (then a configuration without `mac` may be applied), `--this-server`.
    host: Host,
    /// Snapshots a reload replaced, kept until no worker holds them: the last holder frees
    /// it, and a rule set's tables (megabytes) freed by a worker between two batches stall it.
    /// They are freed here, on the supervisor's thread.
    retired: Vec<Arc<Snapshot>>,
    /// Set while the XDP program's maps hold other prefixes or tunnel remotes than the
    /// running configuration's (a reload could not narrow them, or put them back): their
    /// traffic is redirected to workers that do not serve it. The metrics' gauge.
    maps_stale: Arc<AtomicBool>,
    /// When the maps were last programmed again for that.
    maps_tried: Instant,
    /// The running snapshot's generation and how many of its withdrawn prefixes were in
    /// their grace when the maps were last looked at for them ([`ConfigWatch::end_graces`]).
    graces_seen: (u64, usize),
}

/// How often maps left stale are programmed again.
const MAPS_RETRY_EVERY: Duration = Duration::from_secs(1);

/// A configuration being built on a thread of its own: the supervisor that polls for it
/// goes on ticking meanwhile. Building a large rule set takes seconds, and the supervisor
/// also tells the BGP guard that the workers are alive: a build on its thread longer than
/// `withdraw_after_ms` withdrew every announcement.
struct Building {
    what: String,
    started: Instant,
    thread: JoinHandle<Built>,
    /// What etcd held, for a configuration from it.
    fetched: Option<Arc<fleet::Fetched>>,
    /// The files' stamps the running configuration was read from, when this build is of a
    /// configuration newer than the running one (a newer etcd read, the file read again, a
    /// rejected one tried again): rejected, it read the files for nothing, and a change of
    /// theirs that it took in is still to be applied with the running configuration.
    stamps_before: Option<Vec<Option<FileStamp>>>,
    /// It tries a rejected configuration again.
    retry: bool,
}

/// What a build's thread hands back: the snapshot, or why not and the files the refused
/// configuration named; and, read from a file, the text it was built from (kept, once
/// applied, to build again when a file it names changes).
struct Built {
    snapshot: Result<Snapshot, Refused>,
    text: Option<Arc<str>>,
}

/// The newest configuration read, rejected. It is tried again when a file it read changes
/// since (the list file it added, missing then, written at last; the plan `transitd plan`
/// rewrote for it), and said again while the running one is rebuilt without it.
struct Rejected {
    /// What it was, as the rejection said it.
    what: String,
    /// Its first error's first line (none when building panicked or the XDP maps refused).
    first: Option<String>,
    /// What etcd held, for a configuration from it (a file is read again).
    fetched: Option<Arc<fleet::Fetched>>,
    /// The files it named, each with the stamp taken just before it read it.
    named: Vec<(PathBuf, Option<FileStamp>)>,
}

impl ConfigWatch {
    /// Starts watching `source` (an etcd watch from what `started_from` was read, until
    /// `stop`; a file whose text at start was `started_text`), and the files `file` watches.
    pub(super) fn start(
        source: &ConfigSource,
        file: FileWatch,
        started_from: Option<fleet::Fetched>,
        started_text: Option<Arc<str>>,
        reloads: &crate::metrics::ReloadStats,
        stop: Arc<AtomicBool>,
        host: Host,
    ) -> anyhow::Result<ConfigWatch> {
        let etcd_slot: fleet::Slot = Arc::default();
        let etcd_refetch = Arc::new(AtomicBool::new(false));
        let (etcd, etcd_applied) = match source {
            ConfigSource::File(_) => (None, None),
            ConfigSource::Etcd(e) => {
                let start = started_from.unwrap_or_default();
                let up = reloads.etcd_up.clone().unwrap_or_default();
                let watch = fleet::watch(e.clone(), start.clone(), etcd_slot.clone(), stop, etcd_refetch.clone(), up)?;
                (Some(watch), Some(Arc::new(start)))
            }
        };
        Ok(ConfigWatch {
            source: source.clone(),
            file,
            etcd_applied,
            file_applied: started_text,
            rejected: None,
            running_owed: false,
            etcd_waiting: None,
            etcd_waiting_said: false,
            etcd_slot,
            etcd_refetch,
            etcd,
            building: None,
            signalled_meanwhile: false,
            host,
            retired: Vec::new(),
            maps_stale: reloads.xdp_maps_stale.clone(),
            maps_tried: Instant::now(),
            graces_seen: (0, 0),
        })
    }

    /// Starts building what changed since the last call (`signalled`: SIGHUP came), and
    /// applies a build that is done; `Some(applied)` when a configuration was tried. Waits
    /// for a build at most 50 ms.
    pub(super) fn poll(&mut self, signalled: bool, shared: &ArcSwap<Snapshot>, program: &XdpProgram) -> Option<bool> {
        // Those only this list holds now (every worker and report has moved on) go.
        self.retired.retain(|s| Arc::strong_count(s) > 1);
        self.retry_maps(shared, program);
        self.end_graces(shared, program);
        if self.building.is_some() {
            self.signalled_meanwhile |= signalled;
            return self.finish_within(Duration::ZERO, shared, program);
        }
        let signalled = signalled || std::mem::take(&mut self.signalled_meanwhile);
        let mut stamps_before = None;
        let mut retry = false;
        type Load = Box<dyn FnOnce() -> Built + Send>;
        let (what, fetched, load): (String, Option<Arc<fleet::Fetched>>, Load) = match &self.source {
            ConfigSource::File(path) => {
                if !(self.file.changed() || signalled) {
                    return None;
                }
                // A SIGHUP waits, as a change does, for files being written (or emptied) to
                // stay the same: `systemctl reload` while a feed rewrites a list in place
                // applied the list half written, or empty.
                if signalled && self.file.unsettled().is_some() {
                    self.signalled_meanwhile = true;
                    return None;
                }
                // The file is read again when it was edited (or SIGHUP asks), or when a file
                // its newest text, rejected, named has changed since (that text may pass
                // now). Otherwise a file the running configuration names changed: the
                // running text is built again with it, as etcd's is, so that a feed's list is
                // applied while an edit of the file stays rejected.
                let edited = signalled || self.file.config_changed();
                retry = !edited
                    && !self.running_owed
                    && self.rejected.as_ref().is_some_and(|r| self.file.differs(&r.named));
                let before = self.file.applied.clone();
                let host = self.host.clone();
                match self.file_applied.clone().filter(|_| !(edited || retry)) {
                    Some(text) => {
                        self.running_owed = false;
                        self.say_still_rejected();
                        self.file.seen_inputs();
                        let name = path.display().to_string();
                        let what = format!("{name} as last applied, a file it names changed");
                        let load: Load = Box::new(move || Built {
                            snapshot: config::parse(&name, &text)
                                .map_err(Refused::from)
                                .and_then(|l| Snapshot::build_for_reload(&l, &host)),
                            text: Some(text),
                        });
                        (what, None, load)
                    }
                    None => {
                        self.file.seen();
                        stamps_before = Some(before);
                        let path = path.clone();
                        let why = if retry { ", a file it names changed" } else { "" };
                        let what = format!("{}{why}", path.display());
                        let load: Load = Box::new(move || match config::load(&path) {
                            Ok(loaded) => Built {
                                text: Some(Arc::from(loaded.source.text())),
                                snapshot: Snapshot::build_for_reload(&loaded, &host),
                            },
                            Err(errors) => Built { snapshot: Err(errors.into()), text: None },
                        });
                        (what, None, load)
                    }
                }
            }
            ConfigSource::Etcd(source) => {
                if signalled {
                    self.etcd_refetch.store(true, Ordering::Relaxed);
                }
                // What etcd holds now, newly read (once the files it names are readable),
                // or what it held for the running configuration with a named file that
                // changed (a feed rewriting a list).
                if let Some(new) = self.etcd_slot.lock().ok().and_then(|mut s| s.take()) {
                    self.etcd_waiting = Some(Arc::new(new));
                    self.etcd_waiting_said = false;
                }
                if let Some(new) = &self.etcd_waiting
                    && let Some(file) = self.file.unsettled()
                {
                    if !std::mem::replace(&mut self.etcd_waiting_said, true) {
                        eprintln!(
                            "transitd: {source} at revision {} waits until {} stays the same (it is being \
                             written, or was emptied: read once it stays empty for {EMPTIED_LOOKS} looks)",
                            new.revision,
                            file.display()
                        );
                    }
                    return None;
                }
                // A file changed: a newer read that was rejected is tried again if it named
                // that file, else what etcd held for the running configuration is.
                let (fetched, why, newer) = match self.etcd_waiting.take() {
                    Some(new) => (new, "", true),
                    None if self.file.changed() => {
                        let again =
                            self.rejected.as_ref().filter(|r| !self.running_owed && self.file.differs(&r.named));
                        match again.and_then(|r| r.fetched.clone()) {
                            Some(rejected) => {
                                retry = true;
                                (rejected, ", a file it names changed", true)
                            }
                            None => {
                                self.running_owed = false;
                                self.say_still_rejected();
                                (self.etcd_applied.clone()?, ", a file it names changed", false)
                            }
                        }
                    }
                    None => return None,
                };
                stamps_before = newer.then(|| self.file.applied.clone());
                self.file.seen();
                let (prefix, host) = (source.prefix.clone(), self.host.clone());
                let what = format!("{source} at revision {}{why}", fetched.revision);
                let read = fetched.clone();
                let load = move || Built {
                    snapshot: fleet::assemble_fetched(&prefix, &read)
                        .map_err(Refused::from)
                        .and_then(|l| Snapshot::build_for_reload(&l, &host)),
                    text: None,
                };
                (what, Some(fetched), Box::new(load))
            }
        };
        let started = Instant::now();
        match std::thread::Builder::new().name("transitd-reload".into()).spawn(load) {
            Ok(thread) => self.building = Some(Building { what, started, thread, fetched, stamps_before, retry }),
            Err(e) => {
                eprintln!(
                    "transitd: reload of {what} rejected: no thread to build it on ({e}); the running configuration stays"
                );
                return Some(false);
            }
        }
        // Most configurations build in milliseconds: those are applied now, not a tick later.
        self.finish_within(Duration::from_millis(50), shared, program)
    }

    /// Applies the build under way if it is done within `wait`.
    fn finish_within(&mut self, wait: Duration, shared: &ArcSwap<Snapshot>, program: &XdpProgram) -> Option<bool> {
        let deadline = Instant::now() + wait;
        while !self.building.as_ref()?.thread.is_finished() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let b = self.building.take()?;
        let (built, text) = match b.thread.join() {
            Ok(Built { snapshot, text }) => (Ok(snapshot), text),
            Err(_) => (Err(()), None),
        };
        // What a refused configuration named, and what it said first: `apply` says it all.
        let (named, first): (Vec<(PathBuf, Option<FileStamp>)>, Option<String>) = match &built {
            Ok(Err(refused)) => (
                refused.inputs.iter().cloned().zip(refused.input_stamps.iter().copied()).collect(),
                refused.errors.0.first().map(|e| e.to_string().lines().next().unwrap_or_default().to_string()),
            ),
            _ => (Vec::new(), None),
        };
        let built = built.map(|snapshot| snapshot.map_err(|refused| refused.errors));
        let replaced = apply(&b.what, b.started, built, shared, program, &self.maps_stale);
        let applied = replaced.is_some();
        if applied {
            if b.fetched.is_some() {
                self.etcd_applied = b.fetched;
            }
            if text.is_some() {
                self.file_applied = text;
            }
            // A newer configuration applied is the newest: none stays rejected.
            if b.stamps_before.is_some() {
                self.rejected = None;
            }
            self.running_owed = false;
        } else if let Some(before) = b.stamps_before {
            self.running_owed = b.retry;
            self.file.put_back(&before, &shared.load().inputs);
            self.rejected = Some(Rejected { what: b.what, first, fetched: b.fetched, named });
        }
        let running = shared.load();
        self.watch_named(&running);
        self.retired.extend(replaced);
        Some(applied)
    }

    /// Programs the XDP program's owned prefixes and tunnel remotes with the running
    /// configuration's again, at most every [`MAPS_RETRY_EVERY`], while a reload left them
    /// stale: otherwise the prefixes and remotes it removed stayed redirected (to workers
    /// that judge their traffic `no_customer` or not theirs) until the next reload, however
    /// far off. Only those maps: the configuration and soft-unicast's tables are published
    /// whole before the swap, or not at all.
    fn retry_maps(&mut self, shared: &ArcSwap<Snapshot>, program: &XdpProgram) {
        if !self.maps_stale.load(Ordering::Relaxed) || self.maps_tried.elapsed() < MAPS_RETRY_EVERY {
            return;
        }
        self.maps_tried = Instant::now();
        if narrow(program, &shared.load(), Instant::now()).is_ok() {
            self.maps_stale.store(false, Ordering::Relaxed);
            eprintln!("transitd: the XDP program's maps hold the running configuration's prefixes and remotes again");
        }
    }

    /// Takes the prefixes whose grace has ended out of the XDP program's maps: their traffic
    /// is the host's again. Looked at every poll (a tenth of a second) while the running
    /// snapshot holds withdrawn prefixes; the maps are programmed when one's grace has ended
    /// since the last look, and once after a reload (which narrowed them an instant before:
    /// only what differs is written, so that costs nothing unless a grace ended between).
    /// Maps left stale are [`ConfigWatch::retry_maps`]'s, which programs them the same way.
    fn end_graces(&mut self, shared: &ArcSwap<Snapshot>, program: &XdpProgram) {
        let snap = shared.load();
        if snap.withdrawn.is_empty() {
            return;
        }
        let now = Instant::now();
        let seen = (snap.generation, snap.withdrawn.in_grace(now).count());
        if seen == self.graces_seen {
            return;
        }
        // Of the same snapshot: a reload's first look ends none (it programmed them itself).
        let ended = if self.graces_seen.0 == seen.0 { self.graces_seen.1.saturating_sub(seen.1) } else { 0 };
        self.graces_seen = seen;
        if self.maps_stale.load(Ordering::Relaxed) {
            return;
        }
        match narrow(program, &snap, now) {
            Ok(()) if ended > 0 => eprintln!(
                "transitd: the grace of {ended} withdrawn prefixes ended (withdrawn_grace_ms): their traffic is the \
                 host's again"
            ),
            Ok(()) => {}
            Err(e) => {
                self.maps_stale.store(true, Ordering::Relaxed);
                eprintln!(
                    "transitd: removing withdrawn prefixes whose grace ended from the XDP maps failed: {e}; their \
                     traffic goes on being dropped as withdrawn_prefix until it succeeds: tried again every second, \
                     transitd_xdp_maps_stale is 1 until then"
                );
            }
        }
    }

    /// Watches the files the running configuration names, and those only the rejected newer
    /// one names (the list file it adds): writing one of those tries it again.
    fn watch_named(&mut self, running: &Snapshot) {
        let (mut inputs, mut stamps) = (running.inputs.clone(), running.input_stamps.clone());
        for (path, read) in self.rejected.iter().flat_map(|r| &r.named) {
            if !inputs.contains(path) {
                inputs.push(path.clone());
                stamps.push(*read);
            }
        }
        self.file.follow(&inputs, &stamps);
    }

    /// Says, as the running configuration is built again for a file it names, that the
    /// newest one stays rejected: the operator who fixed the list must not take the reload
    /// that follows for the edit's.
    fn say_still_rejected(&self) {
        if let Some(r) = &self.rejected {
            let first = r.first.as_deref().map_or_else(String::new, |e| format!(" ({e})"));
            eprintln!(
                "transitd: {} stays rejected{first}; a file the running configuration names changed, and is \
                 applied with it",
                r.what
            );
        }
    }

    /// Waits for the etcd watch (after its stop flag was set). A build under way is left to
    /// end with the process: a large configuration takes seconds, and a stop must not wait
    /// for what it will throw away.
    pub(super) fn join(self) {
        if let Some(e) = self.etcd {
            let _ = e.join();
        }
    }
}

/// Notices a change of the configuration file (none when it comes from etcd), or of a file
/// it names (a list, the plan: a feed rewriting a list expects it applied), by its
/// modification time, size or inode, looking every `interval`; reports a change once the
/// files have stayed the same for one look and the configuration is not empty, so that a
/// file caught half-written is read only when complete. A write in place truncates the file
/// first: a writer that stalls after that (a loaded machine, a slow disk) leaves it empty for
/// as long as it likes, and an empty file is never a configuration.
#[derive(Debug)]
pub(super) struct FileWatch {
    path: Option<PathBuf>,
    /// The files the running configuration names ([`Snapshot::inputs`]).
    inputs: Vec<PathBuf>,
    interval: Duration,
    last_look: Instant,
    /// What the running configuration was read from: the configuration's stamp (if it is a
    /// file), then each input's.
    applied: Vec<Option<FileStamp>>,
    /// What the last look saw.
    seen: Vec<Option<FileStamp>>,
    /// Looks in a row that saw the files as the one before.
    settled_looks: u32,
}

/// Looks a named file that went empty must stay so before it is read: a list written in
/// place is truncated first, and a feed that stalls there would have its list applied empty
/// (`not ip.src in $allowed` then drops everything). An empty list meant stays empty; a
/// list renamed into place (how feeds should write) is never seen empty.
const EMPTIED_LOOKS: u32 = 10;

impl FileWatch {
    /// The files of a configuration from `source` (stamped `config` before it was read)
    /// that names `inputs`, each as the build stamped it before reading it (`stamps`): made
    /// as soon as the configuration has been read, so that a file changed while it was read
    /// or while the run starts (sockets bound, the program attached: seconds) is read again.
    pub(super) fn of(
        source: &ConfigSource,
        config: Option<FileStamp>,
        inputs: &[PathBuf],
        stamps: &[Option<FileStamp>],
        interval: Duration,
    ) -> FileWatch {
        let mut watch = match source {
            ConfigSource::File(path) => FileWatch::new(Some(path), inputs, interval),
            ConfigSource::Etcd(_) => FileWatch::new(None, inputs, interval),
        };
        debug_assert_eq!(inputs.len(), stamps.len(), "a stamp for each input");
        let read = watch.path.as_ref().map(|_| config).into_iter().chain(stamps.iter().copied());
        for (applied, read) in watch.applied.iter_mut().zip(read) {
            *applied = read;
        }
        watch.seen = watch.applied.clone();
        watch
    }

    pub(super) fn new(path: Option<&std::path::Path>, inputs: &[PathBuf], interval: Duration) -> FileWatch {
        let mut watch = FileWatch {
            path: path.map(std::path::Path::to_path_buf),
            inputs: inputs.to_vec(),
            interval,
            last_look: Instant::now(),
            applied: Vec::new(),
            seen: Vec::new(),
            settled_looks: 0,
        };
        watch.seen();
        watch
    }

    fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.path.iter().chain(&self.inputs).map(|p| stamp(p)).collect()
    }

    /// True when a file changed and has since stayed the same for one look.
    pub(super) fn changed(&mut self) -> bool {
        self.look(None) && self.settled() && self.seen != self.applied
    }

    /// A file that may not be read now by a build that did not wait for it (a newer etcd
    /// read): one changed since the running configuration read it and not settled since, as
    /// [`FileWatch::changed`] judges it. None when every file is as it was read, or settled.
    pub(super) fn unsettled(&mut self) -> Option<&std::path::Path> {
        if self.interval.is_zero() {
            return None; // not watched: there are no looks to wait for
        }
        let now = self.stamps();
        if now == self.applied {
            return None;
        }
        self.look(Some(&now));
        if now == self.seen && self.settled() {
            return None;
        }
        let i = now.iter().zip(&self.applied).position(|(n, a)| n != a)?;
        self.path.iter().chain(&self.inputs).nth(i).map(PathBuf::as_path)
    }

    /// Looks at the files if `interval` has passed since the last look (false if not): at
    /// `stamped`, if the caller has just stamped them, else stamps them.
    fn look(&mut self, stamped: Option<&Vec<Option<FileStamp>>>) -> bool {
        if self.interval.is_zero() || self.last_look.elapsed() < self.interval {
            return false;
        }
        self.last_look = Instant::now();
        let now = stamped.cloned().unwrap_or_else(|| self.stamps());
        self.settled_looks = if now == self.seen { self.settled_looks.saturating_add(1) } else { 0 };
        self.seen = now;
        true
    }

    /// Whether the files as last seen may be read: they stayed the same for a look
    /// ([`EMPTIED_LOOKS`] if a named file went empty), and a configuration file is not
    /// empty.
    fn settled(&self) -> bool {
        let len = |s: &Option<FileStamp>| s.map_or(0, |(_, len, _)| len);
        let config = usize::from(self.path.is_some());
        let config_written = config == 0 || self.seen.first().is_some_and(|s| len(s) > 0);
        let emptied = self.seen.iter().zip(&self.applied).skip(config).any(|(n, a)| len(n) == 0 && len(a) > 0);
        let needed = if emptied { EMPTIED_LOOKS } else { 1 };
        self.settled_looks >= needed && config_written
    }

    /// The files as they are now are being read.
    pub(super) fn seen(&mut self) {
        self.applied = self.stamps();
        self.seen = self.applied.clone();
        self.settled_looks = 0;
    }

    /// The files the configuration names, as they are now, are being read, and the
    /// configuration file is not (its running text is built again): it keeps the stamp it
    /// was last read at, so that an edit of it made meanwhile is still read.
    pub(super) fn seen_inputs(&mut self) {
        let config = self.path.as_ref().and(self.applied.first().copied());
        self.seen();
        if let (Some(read), Some(first)) = (config, self.applied.first_mut()) {
            *first = read;
        }
    }

    /// Whether the configuration file (none from etcd) is seen otherwise than it was last
    /// read, whether that read was applied or rejected.
    pub(super) fn config_changed(&self) -> bool {
        self.path.is_some() && self.seen.first() != self.applied.first()
    }

    /// Whether a file of `read` (each with the stamp a build took before reading it) is seen
    /// otherwise now; one that is not watched is stamped now.
    pub(super) fn differs(&self, read: &[(PathBuf, Option<FileStamp>)]) -> bool {
        let config = usize::from(self.path.is_some());
        read.iter().any(|(path, at)| {
            let now = match self.inputs.iter().position(|p| p == path) {
                Some(i) => self.seen.get(i + config).copied().flatten(),
                None => stamp(path),
            };
            now != *at
        })
    }

    /// A build of a newer configuration was rejected: the files the running configuration
    /// names (`running`) go back to the stamps they had before it (`before`, as it found
    /// them), so that a change of theirs that it took in is still applied, with the running
    /// configuration. The configuration file, and a file only the rejected one names, stay
    /// as it read them: read again, they would be rejected again.
    pub(super) fn put_back(&mut self, before: &[Option<FileStamp>], running: &[PathBuf]) {
        let config = usize::from(self.path.is_some());
        for (i, path) in self.inputs.iter().enumerate() {
            if running.contains(path)
                && let (Some(applied), Some(was)) = (self.applied.get_mut(i + config), before.get(i + config))
            {
                *applied = *was;
            }
        }
    }

    /// An applied configuration names `inputs`: watched from now on. The configuration and
    /// the inputs it named before keep the stamps taken when the build began (a change while
    /// it built is still seen); a new one takes the stamp the build gave it before reading it
    /// (`stamps`, by input; stamped now where it has none), so that a feed's write after the
    /// read is seen too.
    pub(super) fn follow(&mut self, inputs: &[PathBuf], stamps: &[Option<FileStamp>]) {
        if inputs == self.inputs.as_slice() {
            return;
        }
        let config = usize::from(self.path.is_some());
        let before = |p: &PathBuf| {
            self.inputs.iter().position(|q| q == p).map(|i| self.applied.get(i + config).copied().flatten())
        };
        let mut applied: Vec<Option<FileStamp>> = self.applied.iter().take(config).copied().collect();
        // The build's stamp whenever it gave one, even none (a file it could not stat: read
        // again at the first look that can, at worst once too often).
        let read = |i: usize, p: &PathBuf| stamps.get(i).copied().unwrap_or_else(|| stamp(p));
        applied.extend(inputs.iter().enumerate().map(|(i, p)| before(p).unwrap_or_else(|| read(i, p))));
        self.inputs = inputs.to_vec();
        self.applied = applied;
        self.seen = self.applied.clone();
    }
}

/// Applies a configuration built from `what` (since `started`): swaps it in, the XDP
/// program's tables widened around the swap; `Err` (the build panicked) or a configuration
/// with errors is rejected whole (its errors printed) and the running snapshot stays.
/// Returns the snapshot it replaced when the new configuration was applied. `stale` is set
/// when the maps are left other than the running configuration's (narrowing, or putting
/// them back, failed), and cleared when this left them exactly the new one's.
fn apply(
    what: &str,
    started: Instant,
    built: Result<Result<Snapshot, ConfigErrors>, ()>,
    shared: &ArcSwap<Snapshot>,
    program: &XdpProgram,
    stale: &AtomicBool,
) -> Option<Arc<Snapshot>> {
    // A panic while building is a bug, but the edge must outlive it: the builder only reads
    // its input and makes a new snapshot on its own thread, so nothing it leaves half-done
    // is shared.
    match built {
        Err(_) => {
            eprintln!(
                "transitd: reload of {what} rejected: building the configuration panicked (a bug in transitd: \
                 please report it with the file); the running configuration stays"
            );
            None
        }
        Ok(Err(errors)) => {
            eprintln!("transitd: reload of {what} rejected, the running configuration stays:\n{errors}");
            None
        }
        Ok(Ok(mut new)) => {
            // The XDP program learns new prefixes before the workers see the snapshot that
            // owns them, and forgets old ones after, so no owned packet is passed meanwhile.
            // The prefixes this reload removes stay, held for their grace (the widening and
            // the narrowing keep them): BGP withdraws them from the next tick on, and their
            // traffic, still on its way here until upstreams converge, is dropped.
            let old = shared.load();
            let now = Instant::now();
            new.withdrawn = Withdrawn::after(&old, &new, now);
            let ((mut v4, mut v6), (old_v4, old_v6)) = (redirected(&new, now), redirected(&old, now));
            v4.extend(old_v4);
            v6.extend(old_v6);
            let widened = program.set_owned_v4(&v4).and_then(|_| program.set_owned_v6(&v6));
            // Soft-unicast's tables move with the snapshot, published whole (the program
            // reads the old ones or the new ones); between the program's switch and the
            // workers', the two may disagree on an owner for a moment, which the hop limit
            // in the backbone key turns into a counted drop, never a loop.
            // Tunnel remotes, like prefixes: both sets while the swap is under way.
            let ((mut r4, mut r6), (o4, o6)) = (tunnel_remotes(&new), tunnel_remotes(&old));
            r4.extend(o4);
            r6.extend(o6);
            // A remote of both configurations is one entry of the map, not two.
            r4.sort_unstable();
            r4.dedup();
            r6.sort_unstable();
            r6.dedup();
            // The union first: the old remotes must stay while the workers run the old
            // snapshot (their GRE would otherwise go to the host for the whole update).
            let ready = widened
                .and_then(|_| program.set_tunnel_remotes(&r4, &r6))
                .and_then(|_| program_egress_and_config(program, &new));
            if let Err(e) = ready {
                // The program goes back to the running configuration's tables, and the
                // workers never see the new one: a half-applied reload would pass new
                // prefixes' traffic to the host unfiltered.
                let (old_v4, old_v6) = redirected(&old, now);
                let restored = [
                    program.set_owned_v4(&old_v4),
                    program.set_owned_v6(&old_v6),
                    program_tables(program, &old), // the tunnel remotes too
                ];
                eprintln!(
                    "transitd: reload of {what} rejected: updating the XDP maps failed ({e}); the running configuration stays"
                );
                for failed in restored.into_iter().filter_map(Result::err) {
                    // The new configuration's prefixes may be left in, redirected to workers
                    // that do not serve them: tried again every second (`retry_maps`).
                    stale.store(true, Ordering::Relaxed);
                    eprintln!(
                        "transitd: putting the XDP maps back as they were failed too ({failed}): tried again every \
                         second, transitd_xdp_maps_stale is 1 until then"
                    );
                }
                return None;
            }
            // Slices that change owner move their connections' return traffic to another server
            // (those open now break): said, as `transitd plan` says it of a plan made.
            let moved = match (&old.soft_unicast, &new.soft_unicast) {
                (Some(a), Some(b)) => moved_slices(&a.plan, &b.plan),
                _ => 0,
            };
            // Tunnel health, TCP list versions: what carries over, decided here once.
            new.take_over_from(&old);
            let replaced = shared.swap(Arc::new(new));
            // What is left over from the old configuration goes; failing that, it is only
            // redirected to workers that no longer claim it.
            let running = shared.load();
            match narrow(program, &running, now) {
                Ok(()) => {
                    // The prefixes and remotes are the new configuration's alone (those an
                    // earlier reload left stale included), and the withdrawn ones in their
                    // grace; the rest was published whole.
                    stale.store(false, Ordering::Relaxed);
                    eprintln!("transitd: reloaded {what} in {:.1} ms", started.elapsed().as_secs_f64() * 1e3)
                }
                Err(e) => {
                    // The old prefixes and remotes stay redirected to workers that no longer
                    // serve them: tried again every second (`retry_maps`), and said.
                    stale.store(true, Ordering::Relaxed);
                    eprintln!(
                        "transitd: reloaded {what}, but removing the old XDP map entries failed: {e}; their traffic \
                         goes to the workers (no_customer) until it succeeds: tried again every second, \
                         transitd_xdp_maps_stale is 1 until then"
                    )
                }
            }
            let held = running.withdrawn.in_grace(now).count();
            if held > 0 {
                let grace = running.bgp.as_ref().map_or(0, |b| b.withdrawn_grace.as_millis());
                eprintln!(
                    "transitd: {held} customer prefixes withdrawn by reloads are held for withdrawn_grace_ms ({grace} \
                     ms from each one's removal): their traffic is dropped as withdrawn_prefix until upstreams have \
                     converged"
                );
            }
            if moved > 0 {
                eprintln!(
                    "transitd: the reload moved {moved} port slices to other servers (their open connections' return \
                     traffic goes to the new owner): `transitd plan --previous` lists them"
                );
            }
            for warning in crate::config::warning_lines(&shared.load().warnings) {
                eprintln!("transitd: warning: {warning}");
            }
            Some(replaced)
        }
    }
}

/// Makes the XDP program's owned prefixes and tunnel remotes `snap`'s alone at `now` (its
/// withdrawn prefixes in their grace with its customers'): after a reload's swap (they were
/// widened to both configurations'), again while that failed, and as graces end.
fn narrow(program: &XdpProgram, snap: &Snapshot, now: Instant) -> Result<(), transitd_bpf::BpfError> {
    let (r4, r6) = tunnel_remotes(snap);
    let (v4, v6) = redirected(snap, now);
    program.set_owned_v4(&v4)?;
    program.set_owned_v6(&v6)?;
    program.set_tunnel_remotes(&r4, &r6)
}

/// Prefixes by family, as the XDP program's owned maps take them.
type Prefixes = (Vec<(std::net::Ipv4Addr, u8)>, Vec<(std::net::Ipv6Addr, u8)>);

/// The prefixes whose traffic the XDP program redirects for `snap` at `now`, by family: its
/// customers' and the withdrawn ones in their grace (disjoint: a prefix served is not held).
fn redirected(snap: &Snapshot, now: Instant) -> Prefixes {
    let (mut v4, mut v6) = (snap.owned_v4(), snap.owned_v6());
    for net in snap.withdrawn.in_grace(now) {
        match net {
            ipnet::IpNet::V4(n) => v4.push((n.network(), n.prefix_len())),
            ipnet::IpNet::V6(n) => v6.push((n.network(), n.prefix_len())),
        }
    }
    (v4, v6)
}

/// The outer addresses of `snap`'s tunnels, by family.
pub(super) fn tunnel_remotes(snap: &Snapshot) -> (Vec<std::net::Ipv4Addr>, Vec<std::net::Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for t in &snap.tunnels {
        match t.gre.endpoints {
            gre::Endpoints::V4 { remote, .. } => v4.push(remote),
            gre::Endpoints::V6 { remote, .. } => v6.push(remote),
        }
    }
    v4.sort_unstable();
    v4.dedup();
    v6.sort_unstable();
    v6.dedup();
    (v4, v6)
}

/// Everything the XDP program reads from `snap`: its owned prefixes, then its
/// configuration, tunnel remotes and soft-unicast tables ([`program_tables`]), as `run`
/// programs it at start (a reload widens, then narrows). Tests hold the program to the
/// pipeline on one snapshot with it.
pub fn program_xdp(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    program.set_owned_v4(&snap.owned_v4())?;
    program.set_owned_v6(&snap.owned_v6())?;
    program_tables(program, snap)
}

/// The XDP program's configuration, tunnel remotes and soft-unicast tables from `snap`.
pub(super) fn program_tables(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    let (v4, v6) = tunnel_remotes(snap);
    program.set_tunnel_remotes(&v4, &v6)?;
    program_egress_and_config(program, snap)
}

/// The XDP program's configuration and soft-unicast tables from `snap` (its tunnel remotes
/// left as they are).
fn program_egress_and_config(program: &XdpProgram, snap: &Snapshot) -> Result<(), transitd_bpf::BpfError> {
    let su = snap.soft_unicast.as_ref();
    let mut egress = transitd_bpf::EgressTables::default();
    if let Some(su) = su {
        let slices = usize::from(su.plan.slices_per_ip);
        let index: std::collections::HashMap<&str, u16> =
            su.owners.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i as u16)).collect();
        egress.addresses.reserve(su.plan.owners.len());
        egress.owners.reserve(su.plan.owners.len() * slices);
        for (ip, slice_owners) in &su.plan.owners {
            egress.addresses.push((std::net::Ipv4Addr::from(*ip), su.owners.data_centre(*ip).unwrap_or(u16::MAX)));
            egress.owners.extend(slice_owners.iter().map(|o| index.get(o.as_str()).copied().unwrap_or(u16::MAX)));
        }
        egress.peers = su.server_backbone.iter().chain(&su.dc_backbone_of).copied().collect();
        egress.peers.sort_unstable();
        egress.peers.dedup();
    }
    let config = transitd_bpf::XdpConfig {
        anycast: std::net::Ipv4Addr::from(snap.anycast),
        anycast_v6: snap.anycast_v6,
        soft_unicast: su.map(|su| transitd_bpf::SoftUnicastConfig {
            backbone: su.backbone,
            dc_backbone: su.dc_backbone,
            key_id: su.key_id,
            this_server: su.this_server,
            this_dc: su.this_dc,
            reserved_ports: su.plan.spec.reserved_ports,
            slice_size: su.plan.spec.slice_size,
            slices: u32::from(su.plan.slices_per_ip),
        }),
        gre_not_ours_pass: snap.gre_unsupported == crate::snapshot::Fate::Pass,
        mpls_redirect: snap.mpls == crate::snapshot::Fate::Drop,
        pmtu_redirect: snap.path_mtu_discovery,
        unbound_queue: match snap.unbound_queue {
            crate::snapshot::Fate::Pass => transitd_bpf::UnboundQueue::Pass,
            crate::snapshot::Fate::Drop => transitd_bpf::UnboundQueue::Drop,
        },
        config_mac: Some(snap.eth.src).filter(|mac| *mac != [0; 6]),
    };
    program.publish(&config, &egress)
}

/// Slices of an address both plans hold whose owner differs between them; every slice of
/// the new plan when the slices themselves changed (`slice_size`, `reserved_ports`: a slice
/// of one is no slice of the other).
fn moved_slices(old: &portslice::Plan, new: &portslice::Plan) -> usize {
    if !old.same_slices(new) {
        return new.owners.values().map(Vec::len).sum();
    }
    new.owners
        .iter()
        .filter_map(|(ip, owners)| Some((owners, old.owners.get(ip)?)))
        .map(|(now, before)| now.iter().zip(before).filter(|(a, b)| a != b).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slices a reload says it moved are those a re-plan lists (portslice's own count of
    /// moves): a server joining data centre a of the test fleet takes ten.
    #[test]
    fn the_slices_a_reload_moves_are_the_replans_moves() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/soft-unicast.toml");
        let snap = Snapshot::from_path(&path).unwrap();
        let old = snap.soft_unicast.as_ref().unwrap().plan.clone();
        let mut spec = old.spec.clone();
        spec.data_centres.iter_mut().find(|d| d.name == "a").unwrap().servers.push("a3".into());
        let (new, moves) = portslice::Plan::replan(spec, Some(&old)).unwrap();
        assert_eq!(moves.len(), 10);
        assert_eq!(moved_slices(&old, &new), moves.len());
        assert_eq!(moved_slices(&old, &old), 0);
        // Other slices: every one of the new plan moved.
        let mut spec = old.spec.clone();
        spec.reserved_ports = 2048;
        let (resliced, _) = portslice::Plan::replan(spec, Some(&old)).unwrap();
        let all: usize = resliced.owners.values().map(Vec::len).sum();
        assert!(all > 0);
        assert_eq!(moved_slices(&old, &resliced), all);
    }

    /// A narrowing that failed leaves a removed prefix in the XDP program's map, its traffic
    /// redirected to workers that no longer serve it, where it stayed until the next reload:
    /// while the gauge says so, the maps are programmed with the running configuration again,
    /// every second, and the gauge goes back to 0. Needs root (the XDP program is loaded).
    #[test]
    fn maps_a_reload_left_stale_are_programmed_again() {
        use transitd_bpf::XdpDecision;
        let text = "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"a\"\nprefixes = [\"203.0.113.0/24\"]\n";
        let running = Snapshot::build(&config::parse("t.toml", text).unwrap()).unwrap();
        let program = XdpProgram::load().expect("load the XDP program (needs root)");
        program_xdp(&program, &running).unwrap();
        // A file never read: with --watch-interval 0 and no SIGHUP, nothing is reloaded.
        let source = ConfigSource::File(std::env::temp_dir().join("transitd-stale-maps.toml"));
        let files = FileWatch::of(&source, None, &[], &[], Duration::ZERO);
        let shared = ArcSwap::from_pointee(running);
        let reloads = crate::metrics::ReloadStats::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut watch = ConfigWatch::start(&source, files, None, None, &reloads, stop, Host::default()).unwrap();
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], [198, 18, 0, 9], 60)
            .udp(1000, 53)
            .write(&mut frame, b"query")
            .unwrap();
        let to_removed = || program.test_run(&frame).expect("test run (needs root)").0;
        assert_eq!(to_removed(), XdpDecision::Passed, "198.18.0.0/24 is no customer's");

        // Left in by a reload that removed it (put in here by hand), and said.
        let both = [(std::net::Ipv4Addr::new(203, 0, 113, 0), 24), (std::net::Ipv4Addr::new(198, 18, 0, 0), 24)];
        program.set_owned_v4(&both).unwrap();
        assert_eq!(to_removed(), XdpDecision::NoSocket, "redirected (on the test run's queue: no socket)");
        reloads.xdp_maps_stale.store(true, Ordering::Relaxed);
        let stale_since = Instant::now();
        while reloads.xdp_maps_stale.load(Ordering::Relaxed) {
            assert!(stale_since.elapsed() < Duration::from_secs(10), "never programmed again");
            assert_eq!(watch.poll(false, &shared, &program), None, "nothing to reload");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(to_removed(), XdpDecision::Passed, "the running configuration's maps again");
    }

    /// A reload that removes a prefix leaves it in the XDP program's map for its grace (its
    /// traffic redirected, for the workers to drop as `withdrawn_prefix`), the next reload
    /// keeps it there, and the watch takes it out once the grace has passed: then its traffic
    /// is the kernel's (without a grace, it was from the reload on). Needs root (the XDP
    /// program is loaded).
    #[test]
    fn a_removed_prefix_stays_redirected_for_its_grace() {
        use transitd_bpf::XdpDecision;
        let text = |prefixes: &str| {
            format!(
                "[server]\nanycast = \"192.0.2.1\"\n[bgp]\nwithdrawn_grace_ms = 400\n[[customer]]\nname = \"a\"\n\
                 prefixes = [{prefixes}]\n"
            )
        };
        let build = |prefixes: &str| Snapshot::build(&config::parse("t.toml", &text(prefixes)).unwrap()).unwrap();
        let running = build("\"203.0.113.0/24\", \"198.18.0.0/24\"");
        let program = XdpProgram::load().expect("load the XDP program (needs root)");
        program_xdp(&program, &running).unwrap();
        let shared = ArcSwap::from_pointee(running);
        let source = ConfigSource::File(std::env::temp_dir().join("transitd-withdrawn-grace.toml"));
        let files = FileWatch::of(&source, None, &[], &[], Duration::ZERO);
        let reloads = crate::metrics::ReloadStats::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut watch = ConfigWatch::start(&source, files, None, None, &reloads, stop, Host::default()).unwrap();
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], [198, 18, 0, 9], 60)
            .udp(1000, 53)
            .write(&mut frame, b"query")
            .unwrap();
        let to_removed = || program.test_run(&frame).expect("test run (needs root)").0;
        assert_eq!(to_removed(), XdpDecision::NoSocket, "a customer's: redirected (no socket on queue 0)");

        let removed = Instant::now();
        let stale = AtomicBool::new(false);
        assert!(apply("t.toml", removed, Ok(Ok(build("\"203.0.113.0/24\""))), &shared, &program, &stale).is_some());
        assert_eq!(to_removed(), XdpDecision::NoSocket, "held: still redirected");
        // Another reload carries it, its grace running from its removal.
        assert!(apply("t.toml", removed, Ok(Ok(build("\"203.0.113.0/25\""))), &shared, &program, &stale).is_some());
        assert_eq!(to_removed(), XdpDecision::NoSocket, "still held");
        assert_eq!(shared.load().withdrawn.len(), 2, "198.18.0.0/24 and 203.0.113.0/24");
        while to_removed() != XdpDecision::Passed {
            assert!(removed.elapsed() < Duration::from_secs(10), "never taken out");
            assert_eq!(watch.poll(false, &shared, &program), None, "nothing to reload");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(removed.elapsed() >= Duration::from_millis(400), "taken out within its grace");
        assert!(!stale.load(Ordering::Relaxed) && !reloads.xdp_maps_stale.load(Ordering::Relaxed));
    }

    /// Looks until the watch reports a change or `looks` looks have passed.
    fn looks_until_changed(watch: &mut FileWatch, looks: usize) -> Option<usize> {
        (1..=looks).find(|_| {
            std::thread::sleep(Duration::from_millis(3));
            watch.changed()
        })
    }

    #[test]
    fn a_change_is_reported_once_settled_and_never_while_the_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let mut watch = FileWatch::new(Some(&path), &[], Duration::from_millis(1));
        assert_eq!(looks_until_changed(&mut watch, 5), None, "nothing changed");

        // Truncated, as a write in place starts: the writer may stall here for any time.
        std::fs::write(&path, "").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), None, "an empty file is no change to read");

        std::fs::write(&path, "a = 2\nb = 3\n").unwrap();
        // The first look sees it new, the second sees it settled.
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        watch.seen();
        assert_eq!(looks_until_changed(&mut watch, 5), None, "read once");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file the configuration names (a list a feed rewrites) is watched with it: its
    /// change is reported once settled; emptied, only once it has stayed empty for
    /// EMPTIED_LOOKS looks (a feed stalled after truncating is not read); a file the
    /// configuration no longer names is not watched. Following new inputs keeps the stamps
    /// the build began from: an edit made while it built is still seen.
    #[test]
    fn a_change_of_a_file_the_configuration_names_is_reported() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, list) = (dir.join("t.toml"), dir.join("block.txt"));
        std::fs::write(&path, "a = 1\n").unwrap();
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let mut watch = FileWatch::new(Some(&path), std::slice::from_ref(&list), Duration::from_millis(1));
        assert_eq!(looks_until_changed(&mut watch, 5), None, "nothing changed");
        std::fs::write(&list, "192.0.2.1\n192.0.2.2\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        watch.seen();
        std::fs::write(&list, "").unwrap();
        let emptied = EMPTIED_LOOKS as usize + 1;
        assert_eq!(looks_until_changed(&mut watch, 30), Some(emptied), "emptied: read once it stays so");
        watch.seen();
        // A build begins (seen), the configuration is edited meanwhile, the build names no
        // input any more: the edit is still to be read.
        watch.seen();
        std::fs::write(&path, "a = 2\n").unwrap();
        watch.follow(&[], &[]);
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2), "the edit made while it built");
        watch.seen();
        std::fs::write(&list, "192.0.2.3\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 5), None, "no longer named");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Stamps put back (a rejected build of a newer etcd read that had taken in a list's
    /// change): the change is reported again, to be applied with the running configuration.
    #[test]
    fn stamps_put_back_report_the_change_again() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-back-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("block.txt");
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let mut watch = FileWatch::new(None, std::slice::from_ref(&list), Duration::from_millis(1));
        let before = watch.applied.clone();
        std::fs::write(&list, "192.0.2.1\n192.0.2.2\n").unwrap();
        watch.seen(); // a build of a newer read begins, and takes in the new list
        assert_eq!(looks_until_changed(&mut watch, 5), None, "read by that build");
        watch.put_back(&before, std::slice::from_ref(&list)); // which was rejected
        // (Settled already: the first look reports it.)
        assert_eq!(looks_until_changed(&mut watch, 20), Some(1), "the list's change, to read again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A rejected newer configuration puts back the stamps of the running configuration's
    /// files alone: the configuration file, and a file only the rejected one names, stay as
    /// it read them (put back, they would be read again and rejected again, and again). What
    /// changed since is told apart: the file itself, or a file the rejected one read, which
    /// then tries it again. Building the running text again leaves the file's own stamp be.
    #[test]
    fn a_rejected_build_puts_back_only_the_running_configurations_files() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-rejected-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (config, list, added) = (dir.join("t.toml"), dir.join("block.txt"), dir.join("added.txt"));
        std::fs::write(&config, "a = 1\n").unwrap();
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let mut watch = FileWatch::new(Some(&config), std::slice::from_ref(&list), Duration::from_millis(1));
        let before = watch.applied.clone();
        // An edit that adds a list file not written yet, and a feed's rewrite of the list:
        // one build reads both.
        std::fs::write(&config, "a = 2\nb = 3\n").unwrap();
        std::fs::write(&list, "192.0.2.1\n192.0.2.2\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        assert!(watch.config_changed(), "the file itself was edited");
        watch.seen(); // the build begins
        let named = vec![(list.clone(), stamp(&list)), (added.clone(), stamp(&added))];
        // Rejected: the running configuration's list is put back, the added file watched.
        watch.put_back(&before, std::slice::from_ref(&list));
        watch.follow(&[list.clone(), added.clone()], &[stamp(&list), None]);
        // (Followed anew: a look sees the list's change, the next sees it settled.)
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2), "the list's change, to apply with the running one");
        assert!(!watch.config_changed(), "the edit was read, and rejected");
        assert!(!watch.differs(&named), "nothing the rejected build read changed since");
        watch.seen_inputs(); // the running text is built again, with the list
        assert_eq!(looks_until_changed(&mut watch, 5), None, "read");
        std::fs::write(&added, "192.0.2.3\n").unwrap(); // written at last
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        assert!(!watch.config_changed());
        assert!(watch.differs(&named), "a file the rejected build read changed: it is tried again");
        watch.seen();
        // The list changes, and the file is edited after the look, before the running text
        // is built again: the edit is still to be read.
        std::fs::write(&list, "192.0.2.4\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        std::fs::write(&config, "a = 3\n").unwrap();
        watch.seen_inputs();
        // (Settled already: the first look reports it.)
        assert_eq!(looks_until_changed(&mut watch, 20), Some(1), "the edit made meanwhile");
        assert!(watch.config_changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A newer etcd read builds with the files its configuration names only once they are
    /// readable: as the running configuration read them, or changed and settled since (a
    /// list half-written waits a look; one emptied waits EMPTIED_LOOKS, as a reload the file
    /// itself triggers would).
    #[test]
    fn a_newer_etcd_read_waits_for_a_file_being_written() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-unsettled-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("block.txt");
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let mut watch = FileWatch::new(None, std::slice::from_ref(&list), Duration::from_millis(1));
        assert_eq!(watch.unsettled(), None, "as read");
        // Looks until the file is readable, one every 3 ms.
        let looks_until_readable = |watch: &mut FileWatch, looks: usize| {
            (0..looks).find(|_| {
                std::thread::sleep(Duration::from_millis(3));
                watch.unsettled().is_none()
            })
        };
        std::fs::write(&list, "192.0.2.1\n192.0.2.").unwrap(); // caught mid-write
        std::thread::sleep(Duration::from_millis(3)); // this call looks, and sees the change
        assert_eq!(watch.unsettled(), Some(list.as_path()));
        assert_eq!(looks_until_readable(&mut watch, 20), Some(0), "readable once it stayed so for a look");
        watch.seen(); // the build reads it
        std::fs::write(&list, "").unwrap(); // truncated, the writer stalled
        let waited = looks_until_readable(&mut watch, 30).unwrap();
        assert_eq!(waited, EMPTIED_LOOKS as usize, "emptied: readable once it stays so");
        watch.seen();
        std::fs::write(&list, "192.0.2.7\n").unwrap();
        let mut unwatched = FileWatch::new(None, std::slice::from_ref(&list), Duration::ZERO);
        std::fs::write(&list, "192.0.2.").unwrap();
        assert_eq!(unwatched.unsettled(), None, "--watch-interval 0: nothing is watched, nothing waits");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file is watched from the stamp its build took just before reading it: a feed's
    /// write after the read (while the build went on) is a change to read, not where the
    /// watch starts from; at start and for a file a reload names anew.
    #[test]
    fn a_file_written_after_the_build_read_it_is_read_again() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-after-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (config, list) = (dir.join("t.toml"), dir.join("block.txt"));
        std::fs::write(&config, "a = 1\n").unwrap();
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let read_at = stamp(&list); // the build stamps it, then reads it
        std::fs::write(&list, "192.0.2.1\n192.0.2.2\n").unwrap(); // the feed, after the read
        let source = ConfigSource::File(config.clone());
        let mut started =
            FileWatch::of(&source, stamp(&config), std::slice::from_ref(&list), &[read_at], Duration::from_millis(1));
        assert_eq!(looks_until_changed(&mut started, 20), Some(2), "at start");
        started.seen();
        let mut reloaded = FileWatch::new(Some(&config), &[], Duration::from_millis(1));
        let read_at = stamp(&list);
        std::fs::write(&list, "192.0.2.3\n").unwrap();
        reloaded.follow(std::slice::from_ref(&list), &[read_at]);
        assert_eq!(looks_until_changed(&mut reloaded, 20), Some(2), "named anew by a reload");
        let config_read_at = stamp(&config); // run stamps the configuration, then reads it
        std::fs::write(&config, "a = 2\nb = 3\n").unwrap();
        let mut edited = FileWatch::of(&source, config_read_at, &[], &[], Duration::from_millis(1));
        assert_eq!(looks_until_changed(&mut edited, 20), Some(2), "the configuration edited as it was read");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A configuration from etcd has no file of its own: the files it names are watched
    /// alone, the same way (a list's change once settled, an emptied one after
    /// EMPTIED_LOOKS, a newly named one followed).
    #[test]
    fn without_a_configuration_file_the_files_it_names_are_watched() {
        let dir = std::env::temp_dir().join(format!("transitd-filewatch-etcd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (list, other) = (dir.join("block.txt"), dir.join("allow.txt"));
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        std::fs::write(&other, "192.0.2.9\n").unwrap();
        let mut watch = FileWatch::new(None, std::slice::from_ref(&list), Duration::from_millis(1));
        assert_eq!(looks_until_changed(&mut watch, 5), None, "nothing changed");
        std::fs::write(&list, "192.0.2.1\n192.0.2.2\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2));
        watch.seen();
        std::fs::write(&list, "").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 30), Some(EMPTIED_LOOKS as usize + 1));
        watch.seen();
        watch.follow(&[list.clone(), other.clone()], &[]);
        std::fs::write(&other, "192.0.2.8\n192.0.2.7\n").unwrap();
        assert_eq!(looks_until_changed(&mut watch, 20), Some(2), "a file named since");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
