//! `transitd bgp guard`: the process that keeps BIRD's include file what `transitd run`
//! says, and withdraws everything when transitd can no longer say anything.
//!
//! It reads lines on stdin (`announce PREFIX...`, `alive`, or `withdraw-after MS` and
//! `graceful-shutdown MS` when the configuration changes them: no restart, which would
//! withdraw everything for a moment) and applies the last announcement while they keep
//! coming. It withdraws (an empty include, BIRD reconfigured):
//! when told `stop` (transitd stops, or a reload dropped `[bgp]`) or stdin closes (transitd
//! exited, however), then exits; when nothing came for
//! `withdraw_after` (transitd hung), until lines come again; on SIGINT, then exits. On
//! SIGTERM (systemd stopping the service) or when told `drain` (transitd's own SIGTERM) it
//! drains first (RFC 8326): what it announces is announced again with the GRACEFUL_SHUTDOWN
//! community, so that peers move the traffic away while transitd still forwards it, until
//! transitd says `stop` after its `graceful_shutdown` (or, if transitd says nothing of it,
//! a little after that on its own); with a drain of 0, nothing announced, or transitd
//! silent, SIGTERM withdraws at once. A BIRD that cannot be reached is tried again every
//! second; the file is written regardless, so a BIRD that starts later reads the right
//! routes. Its last withdrawal waits for a BIRD that is there but answers nothing (stopped,
//! busy): nothing else would tell it the file changed. On stdout it says whether BIRD took what it was last told (`bird ok`,
//! `bird failing`), for transitd's metrics: what transitd asks is not what BIRD announces
//! while BIRD refuses.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{RecvTimeoutError, bounded};

use super::{Announcements, bird};

/// `log_line!` that cannot panic: the guard must withdraw whatever became of its stderr (a
/// pipe whose reader is gone fails every write, and `log_line!` panics on a failed write).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Where BIRD is and how long silence may last.
#[derive(Clone, Debug)]
pub struct GuardOptions {
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// The include file.
    pub bird_include: PathBuf,
    /// Silence after which everything is withdrawn.
    pub withdraw_after: Duration,
    /// How long a stop announces with GRACEFUL_SHUTDOWN before withdrawing (zero: none).
    pub graceful_shutdown: Duration,
}

/// One line from transitd: what [`super::Speaker`] writes on the guard's stdin, one a line
/// ([`Told::line`]), and the guard reads back ([`Told::read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Told {
    /// `announce PREFIX...`: announce exactly these (none: withdraw everything).
    Announce(Announcements),
    /// `alive`: nothing changed, transitd still speaks.
    Alive,
    /// `withdraw-after MS`: the silence after which everything is withdrawn, from now on.
    WithdrawAfter(Duration),
    /// `graceful-shutdown MS`: how long a stop drains, from now on.
    GracefulShutdown(Duration),
    /// `drain`: transitd is stopping (its SIGTERM): announce with GRACEFUL_SHUTDOWN until
    /// `stop`. Said apart from the guard's own SIGTERM, which a stop by pid does not send it.
    Drain,
    /// `stop`: transitd stops the guard (it stops, or a reload took `[bgp]` away or moved
    /// it): withdraw everything and exit. Said apart from an exit, which only closes stdin.
    Stop,
}

impl Told {
    /// Reads a line from transitd (without its newline): `None` when its first word is none
    /// of the guard's (ignored), `Err` saying why when one of its words has an argument that
    /// cannot be read (ignored too, and said).
    pub fn read(line: &str) -> Option<Result<Told, String>> {
        Some(match line.split_once(' ').unwrap_or((line, "")) {
            ("alive", _) => Ok(Told::Alive),
            ("stop", _) => Ok(Told::Stop),
            ("drain", _) => Ok(Told::Drain),
            ("withdraw-after", ms) => ms
                .parse::<u64>()
                .map(|ms| Told::WithdrawAfter(Duration::from_millis(ms)))
                .map_err(|e| format!("withdraw-after `{ms}`: {e}")),
            ("graceful-shutdown", ms) => ms
                .parse::<u64>()
                .map(|ms| Told::GracefulShutdown(Duration::from_millis(ms)))
                .map_err(|e| format!("graceful-shutdown `{ms}`: {e}")),
            ("announce", words) => Announcements::parse(words).map(Told::Announce),
            _ => return None,
        })
    }

    /// The line transitd writes for it, without its newline.
    pub fn line(&self) -> String {
        match self {
            Told::Announce(routes) => routes.line(),
            Told::Alive => "alive".to_string(),
            Told::WithdrawAfter(after) => format!("withdraw-after {}", after.as_millis()),
            Told::GracefulShutdown(drain) => format!("graceful-shutdown {}", drain.as_millis()),
            Told::Drain => "drain".to_string(),
            Told::Stop => "stop".to_string(),
        }
    }
}

/// How much longer than its `graceful_shutdown` a guard that drains for its own SIGTERM
/// waits for transitd's `stop`: transitd, signalled with it, says `stop` when its own drain
/// ends, and a guard that withdrew and exited first was taken for lost.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs the guard until its input closes or a stop signal; everything is withdrawn then
/// (after a drain, for SIGTERM). Refused if another guard keeps the same include file
/// ([`super::lock_include`]).
pub fn run(opts: &GuardOptions) -> anyhow::Result<()> {
    let _only_guard = super::lock_include(&opts.bird_include)?;
    // SIGTERM drains first; SIGINT (a terminal's ^C, or an operator's `kill -INT` for a
    // stop without one) withdraws at once.
    let (terminated, interrupted) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, terminated.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone())?;
    // A reload's SIGHUP sent by name (`pkill -HUP transitd`, `kill -HUP $(pidof transitd)`)
    // reaches the guard too, the same executable: by default it would end it, and with it
    // the announcements' keeper. Caught and ignored.
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::new(AtomicBool::new(false)))?;
    // systemd's watchdog sends SIGABRT to the whole control group (SIGQUIT is a core dump
    // asked for): by default the guard died with transitd and withdrew nothing. Ignored,
    // transitd's end closes the guard's input, and it withdraws.
    for sig in [signal_hook::consts::SIGABRT, signal_hook::consts::SIGQUIT] {
        signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)))?;
    }
    let (tx, rx) = bounded::<Told>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let told = match Told::read(&line) {
                Some(Ok(told)) => told,
                Some(Err(e)) => {
                    say!("transitd bgp guard: ignoring a line from transitd: {e}");
                    continue;
                }
                None => continue,
            };
            if tx.send(told).is_err() {
                break;
            }
        }
    });

    let mut bird = Bird::new(opts);
    let mut wanted = None::<Announcements>;
    let mut heard = Instant::now();
    let (mut withdraw_after, mut graceful_shutdown) = (opts.withdraw_after, opts.graceful_shutdown);
    // While a stop drains: when the guard withdraws if transitd has not said `stop` by then.
    let mut drain_ends = None::<Instant>;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Told::Announce(a)) => (wanted, heard) = (Some(a), Instant::now()),
            Ok(Told::Alive) => heard = Instant::now(),
            Ok(Told::WithdrawAfter(d)) => (withdraw_after, heard) = (d, Instant::now()),
            Ok(Told::GracefulShutdown(d)) => (graceful_shutdown, heard) = (d, Instant::now()),
            Ok(Told::Drain) => {
                heard = Instant::now();
                // Past transitd's own end of the drain, when it says `stop`.
                drain_ends = drain_ends.or(Some(heard + graceful_shutdown + DRAIN_GRACE));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Told::Stop) => {
                bird.settle(&Announcements::none(), "transitd stopped the guard");
                return Ok(());
            }
            Err(RecvTimeoutError::Disconnected) => {
                bird.settle(&Announcements::none(), "transitd exited");
                return Ok(());
            }
        }
        let silent = heard.elapsed() > withdraw_after;
        if interrupted.load(Ordering::Relaxed) {
            bird.settle(&Announcements::none(), "the guard was asked to stop");
            return Ok(());
        }
        if terminated.load(Ordering::Relaxed) && drain_ends.is_none() {
            // Nothing to drain: no drain configured, nothing announced, or a transitd that
            // says nothing (hung: what it announces may no longer be served).
            let announced = wanted.as_ref().is_some_and(|w| !w.0.is_empty());
            if graceful_shutdown.is_zero() || !announced || silent {
                bird.settle(&Announcements::none(), "the guard was asked to stop");
                return Ok(());
            }
            drain_ends = Some(Instant::now() + graceful_shutdown + DRAIN_GRACE);
        }
        if drain_ends.is_some_and(|end| Instant::now() >= end) {
            bird.settle(&Announcements::none(), "its drain ended without a word from transitd");
            return Ok(());
        }
        if drain_ends.is_some() && !bird.draining() {
            bird.drain(graceful_shutdown);
        }
        if silent {
            bird.apply(&Announcements::none(), "transitd said nothing for longer than withdraw_after_ms");
        } else if let Some(w) = &wanted {
            bird.apply(w, "transitd asked");
        }
    }
}

/// BIRD as the guard sees it: what it was last made to announce, and retries.
struct Bird<'a> {
    opts: &'a GuardOptions,
    applied: Option<Announcements>,
    /// The most BIRD may be announcing, now or once it reads its configuration again (a
    /// restart, an operator's `configure`): what it last took and whatever the include file
    /// was written with since (`None`: unknown, as at the start, after a run that may have
    /// crashed). A change that takes a route out of it is a withdrawal, which fails closed.
    announced: Option<Announcements>,
    /// The last failure, said once, and when to try again.
    failed: Option<(String, Instant)>,
    /// What was last said on stdout: BIRD took the last announcement (or not).
    said_in_sync: Option<bool>,
    /// When BIRD was last seen answering, after it took the announcement.
    looked: Instant,
    /// Whether the last failure was BIRD taking the connection and answering nothing in time
    /// (stopped, busy): it is there, and announces from the configuration it had.
    silent: bool,
    /// What the routes carry: GRACEFUL_SHUTDOWN once a stop drains.
    marking: bird::Marking,
}

/// How often a BIRD that took the announcement is looked at (`show status`): one that
/// stopped (or restarted on a configuration it refuses) announces nothing, and is told
/// again once it answers.
const LOOK_EVERY: Duration = Duration::from_secs(5);

impl<'a> Bird<'a> {
    fn new(opts: &'a GuardOptions) -> Bird<'a> {
        Bird {
            opts,
            applied: None,
            announced: None,
            failed: None,
            said_in_sync: None,
            looked: Instant::now(),
            silent: false,
            marking: bird::Marking::Plain,
        }
    }

    /// Whether a stop drains: the routes carry GRACEFUL_SHUTDOWN.
    fn draining(&self) -> bool {
        self.marking == bird::Marking::GracefulShutdown
    }

    /// From now on, every route carries GRACEFUL_SHUTDOWN: what BIRD announces is announced
    /// again so, at once (not after a retry's wait), for `drain` before the withdrawal.
    fn drain(&mut self, drain: Duration) {
        self.marking = bird::Marking::GracefulShutdown;
        (self.applied, self.failed) = (None, None);
        say!(
            "transitd bgp guard: draining: announcing with GRACEFUL_SHUTDOWN (65535:0, RFC 8326) for \
             graceful_shutdown_ms ({} ms), then withdrawing",
            drain.as_millis()
        );
    }

    /// After BIRD took the file: whether it runs its protocols, said on stdout (and, once, on
    /// stderr when it does not: its configuration does not include the file).
    fn look_included(&mut self) {
        match bird::included(&self.opts.bird_socket) {
            Ok(()) => self.in_sync(true),
            Err(e) => {
                if self.said_in_sync != Some(false) {
                    match e {
                        bird::BirdError::Refused(_) => say!(
                            "transitd bgp guard: BIRD runs no transitd4 ({e}): its configuration does not include {}, \
                             so nothing transitd asks is announced",
                            self.opts.bird_include.display()
                        ),
                        _ => say!("transitd bgp guard: asking BIRD whether it runs transitd4: {e}"),
                    }
                }
                self.in_sync(false);
            }
        }
    }

    /// Says on stdout whether BIRD announces what it was last told, when that changed
    /// (transitd gone: nobody listens, and nothing is lost).
    fn in_sync(&mut self, yes: bool) {
        if self.said_in_sync != Some(yes) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", if yes { "bird ok" } else { "bird failing" }).and_then(|()| out.flush());
            self.said_in_sync = Some(yes);
        }
    }

    /// Makes BIRD announce `routes` unless it already does (or a retry is not due yet).
    fn apply(&mut self, routes: &Announcements, why: &str) {
        if self.applied.as_ref() == Some(routes) && self.looked.elapsed() >= LOOK_EVERY {
            self.looked = Instant::now();
            if let Err(e) = bird::alive(&self.opts.bird_socket) {
                say!("transitd bgp guard: {e}: telling it again once it answers");
                // Told again. What it may announce is still `announced`: a BIRD that restarted
                // read the include file, which holds nothing more. (Forgetting it made the same
                // routes a withdrawal, and a moment's silence with an unapplied edit in BIRD's
                // configuration disabled every route.)
                self.applied = None;
                self.in_sync(false);
            } else {
                self.look_included();
            }
        }
        if self.applied.as_ref() == Some(routes) || self.failed.as_ref().is_some_and(|f| f.1 > Instant::now()) {
            return;
        }
        // Taking a route away must not wait for BIRD's configuration to be sound.
        let withdraws = self.announced.as_ref().is_none_or(|a| !a.0.is_subset(&routes.0));
        let (include, socket) = (&self.opts.bird_include, &self.opts.bird_socket);
        match bird::apply_marked(include, socket, routes, self.marking, withdraws) {
            Ok(bird::Applied::Configured) => {
                self.looked = Instant::now();
                match (routes.0.len(), self.marking) {
                    (0, _) => say!("transitd bgp guard: withdrew every prefix ({why})"),
                    (n, bird::Marking::Plain) => say!("transitd bgp guard: announcing {n} prefixes ({why})"),
                    (n, bird::Marking::GracefulShutdown) => {
                        say!("transitd bgp guard: announcing {n} prefixes with GRACEFUL_SHUTDOWN ({why})")
                    }
                }
                self.announced = Some(routes.clone());
                (self.applied, self.failed) = (Some(routes.clone()), None);
                self.look_included();
            }
            Ok(bird::Applied::Disabled(refused)) => {
                let said = format!(
                    "BIRD refused its configuration ({refused}): disabled transitd4 and transitd6 instead, every prefix withdrawn"
                );
                if self.failed.as_ref().is_none_or(|f| f.0 != said) {
                    say!("transitd bgp guard: {said} ({why})");
                }
                // Disabled, it announces nothing; the include file holds `routes`, which the
                // next `configure` BIRD takes (or a restart) announces.
                self.announced = Some(routes.clone());
                self.in_sync(routes.0.is_empty());
                if routes.0.is_empty() {
                    (self.applied, self.failed) = (Some(routes.clone()), None);
                } else {
                    // What is still wanted is announced again once BIRD takes a configuration.
                    self.applied = None;
                    self.failed = Some((said, Instant::now() + Duration::from_secs(1)));
                }
            }
            Err(e) => {
                use std::io::ErrorKind::{TimedOut, WouldBlock};
                self.silent = matches!(&e, bird::BirdError::Socket { reason, .. }
                    if matches!(reason.kind(), TimedOut | WouldBlock));
                let said = e.to_string();
                if self.failed.as_ref().is_none_or(|f| f.0 != said) {
                    say!("transitd bgp guard: {said} (trying again every second)");
                }
                // The file may be written even though BIRD was not told (or BIRD took it and
                // its answer was lost): not applied, and it may announce `routes` too.
                self.applied = None;
                if let Some(announced) = &mut self.announced {
                    announced.0.extend(routes.0.iter().copied());
                }
                self.failed = Some((said, Instant::now() + Duration::from_secs(1)));
                self.in_sync(false);
            }
        }
    }

    /// The last word: apply `routes` now, retrying for a few seconds if BIRD is not there (one
    /// that starts reads the include file, written by now), and for as long as it takes while
    /// BIRD is there but answers nothing (stopped, busy): given up on after one exchange, it
    /// went on announcing from its old configuration once it answered again, with nothing left
    /// to tell it otherwise. (A service manager ends a guard that waits too long.)
    fn settle(&mut self, routes: &Announcements, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        self.failed = None;
        loop {
            self.apply(routes, why);
            if self.applied.as_ref() == Some(routes) || (Instant::now() > deadline && !self.silent) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
            self.failed = None;
        }
    }
}
