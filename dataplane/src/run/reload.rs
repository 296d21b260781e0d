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
//!
//! Here: what to build and when, the build's thread, and what stays rejected. The files are
//! watched by `file_watch.rs`, a build is swapped in by `publish.rs`, and the XDP program's
//! maps are programmed by `xdp_maps.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use transitd_bpf::XdpProgram;

use super::ConfigSource;
use super::file_watch::{EMPTIED_LOOKS, FileWatch};
use super::publish::apply;
use super::xdp_maps::narrow;
use crate::config;
use crate::fleet;
use crate::snapshot::{FileStamp, Host, Refused, Snapshot};

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
    /// etcd answers (`transitd_config_source_up`): a SIGHUP while it does not is said to wait.
    etcd_up: Arc<AtomicBool>,
    etcd: Option<JoinHandle<()>>,
    /// The configuration being built, off the supervisor's thread.
    building: Option<Building>,
    /// SIGHUP came while a build was under way: read again when it is done.
    signalled_meanwhile: bool,
    /// What the configuration does not say: whether the interface's own MAC could be read
    /// at start (then a configuration without `mac` may be applied), `--this-server`, the
    /// interface (whose addresses [`ConfigWatch::host_now`] reads).
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
        let etcd_up = reloads.etcd_up.clone().unwrap_or_default();
        let (etcd, etcd_applied) = match source {
            ConfigSource::File(_) => (None, None),
            ConfigSource::Etcd(e) => {
                let start = started_from.unwrap_or_default();
                let up = etcd_up.clone();
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
            etcd_up,
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
        let fresh_signal = signalled;
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
                if signalled && let Some(file) = self.file.unsettled() {
                    if fresh_signal {
                        // Said once a signal: a file missing or empty is never settled, and
                        // the reload waited without a word for someone to write it.
                        let state = match std::fs::metadata(file) {
                            Err(_) => "is missing",
                            Ok(m) if m.len() == 0 => "is empty",
                            Ok(_) => "is being written (it changed since the last look)",
                        };
                        log_line!(
                            "transitd: SIGHUP: {} {state}; the reload waits until it has stayed the same for a look",
                            file.display()
                        );
                    }
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
                let host = self.host_now();
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
                    // Nothing else would show it was heard: the prefix is read when etcd
                    // answers again (the watch's reconnect reads it whole, then once more
                    // for the signal).
                    if !self.etcd_up.load(Ordering::Relaxed) {
                        log_line!("transitd: SIGHUP: {source} does not answer; its prefix is read once it does");
                    }
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
                        log_line!(
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
                let (prefix, host) = (source.prefix.clone(), self.host_now());
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
                log_line!(
                    "transitd: reload of {what} rejected: no thread to build it on ({e}); the running configuration stays"
                );
                return Some(false);
            }
        }
        // Most configurations build in milliseconds: those are applied now, not a tick later.
        self.finish_within(Duration::from_millis(50), shared, program)
    }

    /// [`ConfigWatch::host`] with the interface's addresses as they are now, for a build: one
    /// added since the start is the host's as much.
    fn host_now(&self) -> Host {
        Host { iface_addresses: super::placement::own_addresses(&self.host.iface), ..self.host.clone() }
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
        // What runs, read again (SIGHUP with nothing changed, the file or etcd's keys written
        // back as they were after a rejected edit): applied, it would change nothing but
        // restart every rule's counters and rewrite the XDP program's maps. It is taken as
        // the newest, so that no edit before it stays rejected.
        let running = shared.load();
        if let Ok(Ok(new)) = &built
            && self.is_running_again(text.as_ref(), b.fetched.as_ref(), new, &running)
        {
            log_line!(
                "transitd: {} is the running configuration again: nothing to apply (rule counters and the XDP \
                 program's maps stay as they are)",
                b.what
            );
            if b.fetched.is_some() {
                self.etcd_applied = b.fetched;
            }
            if b.stamps_before.is_some() {
                self.rejected = None;
            }
            self.running_owed = false;
            self.watch_named(&running);
            return Some(true);
        }
        drop(running);
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

    /// Whether `new`, built from `text` (a file's) or `fetched` (etcd's keys), is `running`
    /// again: the same text or keys as the running configuration was built from, and every
    /// file it names (lists, the plan) as the running one found it. A file rewritten with the
    /// same bytes has another stamp, and is applied.
    fn is_running_again(
        &self,
        text: Option<&Arc<str>>,
        fetched: Option<&Arc<fleet::Fetched>>,
        new: &Snapshot,
        running: &Snapshot,
    ) -> bool {
        let same_source = match (text, fetched) {
            (Some(text), _) => self.file_applied.as_ref() == Some(text),
            (None, Some(fetched)) => self.etcd_applied.as_ref().is_some_and(|applied| applied.same_content(fetched)),
            (None, None) => false,
        };
        same_source && new.inputs == running.inputs && new.input_stamps == running.input_stamps
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
            log_line!("transitd: the XDP program's maps hold the running configuration's prefixes and remotes again");
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
            Ok(()) if ended > 0 => log_line!(
                "transitd: the grace of {ended} withdrawn prefixes ended (withdrawn_grace_ms): their traffic is the \
                 host's again"
            ),
            Ok(()) => {}
            Err(e) => {
                self.maps_stale.store(true, Ordering::Relaxed);
                log_line!(
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
            log_line!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::program_xdp;

    /// What the root tests below drive: the XDP program, loaded and programmed with the
    /// running snapshot; that snapshot, shared; the watch and its reload stats; and a UDP
    /// frame to 198.18.0.9, in the prefix the tests take out of the maps.
    struct Rig {
        program: XdpProgram,
        shared: ArcSwap<Snapshot>,
        reloads: crate::metrics::ReloadStats,
        watch: ConfigWatch,
        frame: Vec<u8>,
    }

    /// Needs root (the XDP program is loaded). `file_name` is the watched configuration file
    /// in the temporary directory, never read: with --watch-interval 0 and no SIGHUP, nothing
    /// is reloaded.
    fn rig(running: Snapshot, file_name: &str) -> Rig {
        rig_read_from(running, file_name, None)
    }

    /// [`rig`] whose running configuration was read from `text` (the file's, which a reload
    /// that reads the file compares with).
    fn rig_read_from(running: Snapshot, file_name: &str, text: Option<&str>) -> Rig {
        let program = XdpProgram::load().expect("load the XDP program (needs root)");
        program_xdp(&program, &running).unwrap();
        let source = ConfigSource::File(std::env::temp_dir().join(file_name));
        let files = FileWatch::of(&source, None, &[], &[], Duration::ZERO);
        let reloads = crate::metrics::ReloadStats::default();
        let stop = Arc::new(AtomicBool::new(false));
        let text = text.map(Arc::from);
        let watch = ConfigWatch::start(&source, files, None, text, &reloads, stop, Host::default()).unwrap();
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 8, 8], [198, 18, 0, 9], 60)
            .udp(1000, 53)
            .write(&mut frame, b"query")
            .unwrap();
        Rig { program, shared: ArcSwap::from_pointee(running), reloads, watch, frame }
    }

    /// A reload that reads what runs again (SIGHUP with nothing changed; the file written back
    /// as it was after a rejected edit) applies nothing: applied, it restarted every rule's
    /// counters (`transitd_rule_hits_total` fell to 0 on a SIGHUP alone, customers' counters
    /// carrying on) and rewrote the XDP program's maps for the same tables. An edit is
    /// applied. Needs root (the XDP program is loaded).
    #[test]
    fn a_reload_of_the_running_configuration_applies_nothing() {
        let text = "[server]\nanycast = \"192.0.2.1\"\nmac = \"02:00:00:00:00:01\"\n\
                    next_hop_mac = \"02:00:00:00:00:02\"\n[[customer]]\nname = \"a\"\n\
                    prefixes = [\"203.0.113.0/24\"]\n";
        let name = format!("transitd-running-again-{}.toml", std::process::id());
        let path = std::env::temp_dir().join(&name);
        std::fs::write(&path, text).unwrap();
        let running = Snapshot::build(&config::parse("t.toml", text).unwrap()).unwrap();
        let Rig { program, shared, mut watch, .. } = rig_read_from(running, &name, Some(text));
        // SIGHUP once, then the looks of the supervisor's loop until the build is done.
        let reload = |watch: &mut ConfigWatch| {
            let (mut signalled, asked) = (true, Instant::now());
            loop {
                if let Some(applied) = watch.poll(std::mem::take(&mut signalled), &shared, &program) {
                    return applied;
                }
                assert!(asked.elapsed() < Duration::from_secs(10), "never built");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let first = shared.load_full();
        assert!(reload(&mut watch), "taken");
        assert!(Arc::ptr_eq(&first, &shared.load_full()), "the same text again: nothing applied");
        std::fs::write(&path, "[server]\nbroken = [\n").unwrap();
        assert!(!reload(&mut watch), "an edit refused");
        std::fs::write(&path, text).unwrap();
        assert!(reload(&mut watch), "written back");
        assert!(Arc::ptr_eq(&first, &shared.load_full()), "written back as it runs: nothing applied");
        assert!(watch.rejected.is_none(), "the refused edit is no longer the newest");
        std::fs::write(&path, text.replace("203.0.113.0/24", "203.0.113.0/25")).unwrap();
        assert!(reload(&mut watch), "an edit");
        assert!(!Arc::ptr_eq(&first, &shared.load_full()), "an edit is applied");
        let _ = std::fs::remove_file(path);
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
        let Rig { program, shared, reloads, mut watch, frame } = rig(running, "transitd-stale-maps.toml");
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
        let Rig { program, shared, reloads, mut watch, frame } = rig(running, "transitd-withdrawn-grace.toml");
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
}
