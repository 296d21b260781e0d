//! Watching the configuration file and the files it names (lists, the plan) for a change by
//! their stamps, and telling when a changed file may be read: settled, and not left empty by
//! a writer that stalled.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::ConfigSource;
use crate::snapshot::{FileStamp, stamp};

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
    /// The files the running configuration names ([`Snapshot::inputs`](crate::snapshot::Snapshot::inputs)).
    inputs: Vec<PathBuf>,
    interval: Duration,
    last_look: Instant,
    /// What the running configuration was read from: the configuration's stamp (if it is a
    /// file), then each input's.
    pub(super) applied: Vec<Option<FileStamp>>,
    /// What the last look saw.
    seen: Vec<Option<FileStamp>>,
    /// Looks in a row that saw the files as the one before.
    settled_looks: u32,
}

/// Looks a named file that went empty must stay so before it is read: a list written in
/// place is truncated first, and a feed that stalls there would have its list applied empty
/// (`not ip.src in $allowed` then drops everything). An empty list meant stays empty; a
/// list renamed into place (how feeds should write) is never seen empty.
pub(super) const EMPTIED_LOOKS: u32 = 10;

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
        let len = |s: &Option<FileStamp>| s.map_or(0, |(_, len, ..)| len);
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

#[cfg(test)]
mod tests {
    use super::*;

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
