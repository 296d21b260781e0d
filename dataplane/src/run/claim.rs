//! One `transitd run` per interface: an exclusive `flock` on `<runtime dir>/<iface>@<netns>.lock`,
//! taken before anything is made on the interface (sockets, the XDP program, the punt
//! device, its tunables) and held until the run has undone all of it. A look for another
//! run's XDP program followed by the making left a window: two starts at once each bound
//! some of the queues and both failed, or one took the punt device's name for a moment and
//! the other ran without it. The kernel drops the lock with the process however it ends,
//! so a killed run leaves none held. The file stays (removing it would let a third start
//! lock a new file while a second holds the removed one) and holds its holder's process id,
//! for a refused start to name.
//!
//! The files are named by the interface and its network namespace, `<iface>@<inode>`: labs
//! and CI topologies run one transitd per namespace, each on its own `eth0`, sharing /run
//! (`ip netns exec` keeps it), and a name of the interface's alone refused every start but
//! the first. (Which namespace is the host's cannot be known in general: pid 1's cannot be
//! read without CAP_SYS_PTRACE, which the packaged unit does not give.)
//!
//! The runtime directory is systemd's `RUNTIME_DIRECTORY` (the unit's `RuntimeDirectory=`:
//! /run/transitd), or /run/transitd where it is not set. What a run must find again after it
//! was killed is kept there too ([`super::tunables`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where the lock and state files are kept when systemd does not say.
const RUNTIME_DIR: &str = "/run/transitd";

/// The interface, held for this run until dropped.
pub(super) struct Claim {
    _lock: Flock<File>,
    dir: PathBuf,
    iface: String,
    /// What the interface's files are named by ([`file_stem`]).
    stem: String,
}

impl Claim {
    /// Takes `iface` in the runtime directory, made if missing; refused, naming the holder,
    /// while another run holds it.
    pub(super) fn take(iface: &str) -> anyhow::Result<Claim> {
        // systemd's value is a `:`-separated list when a unit names several directories.
        let dir = std::env::var("RUNTIME_DIRECTORY")
            .ok()
            .and_then(|dirs| dirs.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(RUNTIME_DIR));
        Claim::take_in(&dir, iface)
    }

    fn take_in(dir: &Path, iface: &str) -> anyhow::Result<Claim> {
        let unusable = |path: &Path, e: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "{}: {e} (the lock that keeps one transitd per interface; RUNTIME_DIRECTORY names another \
                 directory)",
                path.display()
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| unusable(dir, &e))?;
        let stem = file_stem(iface);
        let path = dir.join(format!("{stem}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| unusable(&path, &e))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => {
                // Written by the holder as soon as it had the lock: unreadable only in that moment.
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
                    .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}"));
                anyhow::bail!(
                    "another transitd holds {iface} ({holder}): stop that one first ({} is its lock)",
                    path.display()
                );
            }
            Err((_, e)) => return Err(unusable(&path, &e)),
        };
        // Over the last holder's id; a longer one's tail is cut after, so a reader in between
        // still finds this one on the first line.
        let pid = format!("{}\n", std::process::id());
        lock.write_all_at(pid.as_bytes(), 0)
            .and_then(|()| lock.set_len(pid.len() as u64))
            .map_err(|e| unusable(&path, &e))?;
        let claim = Claim { _lock: lock, dir: dir.to_path_buf(), iface: iface.to_string(), stem };
        claim.refuse_a_run_of_the_interface_name_alone()?;
        Ok(claim)
    }

    /// A run of a version before the files were named by namespace holds `<iface>.lock`
    /// (an upgrade that started this one before the old one ended): refused as any holder.
    /// Tested with a shared lock, let go at once, so that runs of this version in other
    /// namespaces, which test it too, never refuse each other.
    fn refuse_a_run_of_the_interface_name_alone(&self) -> anyhow::Result<()> {
        if self.stem == self.iface {
            return Ok(()); // that is our own lock
        }
        let legacy = self.dir.join(format!("{}.lock", self.iface));
        let Ok(file) = std::fs::OpenOptions::new().read(true).open(&legacy) else { return Ok(()) };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Err((_, Errno::EWOULDBLOCK)) => anyhow::bail!(
                "another transitd holds {} ({} is its lock, an earlier version's): stop that one first",
                self.iface,
                legacy.display()
            ),
            _ => Ok(()),
        }
    }

    /// The interface held.
    pub(super) fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface's file `<iface>@<inode>.<kind>` in the runtime directory ([`file_stem`]):
    /// state a run keeps for the next one on the interface, read and written only under the
    /// claim.
    pub(super) fn file(&self, kind: &str) -> PathBuf {
        let file = self.dir.join(format!("{}.{kind}", self.stem));
        // One an earlier version left under the interface's name alone (its run killed before
        // an upgrade) is taken over: left there, what it keeps was never put back. Such
        // versions ran one transitd per interface name, so it is this interface's but in a
        // lab of namespaces, where the first run to look takes it.
        let legacy = self.dir.join(format!("{}.{kind}", self.iface));
        if self.stem != self.iface && !file.exists() && legacy.exists() {
            match std::fs::rename(&legacy, &file) {
                Ok(()) => {
                    log_line!("transitd: {} is {} now (an earlier version's name)", legacy.display(), file.display())
                }
                Err(e) => log_line!("transitd: {}: {e} (an earlier version's; not taken over)", legacy.display()),
            }
        }
        file
    }
}

/// What `iface`'s files are named by: `iface@<inode>`, the inode of this thread's network
/// namespace as `readlink /proc/self/ns/net` and `lsns -t net` show it (a thread may have
/// entered another namespace than its process's); `iface` alone where /proc cannot say.
fn file_stem(iface: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/thread-self/ns/net") {
        Ok(namespace) => format!("{iface}@{}", namespace.ino()),
        Err(_) => iface.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Claim;

    /// A second claim on an interface is refused while the first is held, naming the
    /// holder's process id; once the first is dropped (as the kernel drops it with a killed
    /// process) the interface can be taken again. Other interfaces are not held.
    #[test]
    fn an_interface_is_held_by_one_claim_at_a_time() {
        let dir = std::env::temp_dir().join(format!("transitd-claim-{}", std::process::id()));
        let first = Claim::take_in(&dir.join("made"), "eth0");
        assert!(first.is_ok(), "{:?}", first.err());
        let refused = Claim::take_in(&dir.join("made"), "eth0").err().map(|e| e.to_string()).unwrap_or_default();
        let expected = format!("another transitd holds eth0 (pid {})", std::process::id());
        assert!(refused.starts_with(&expected), "{refused}");
        assert!(Claim::take_in(&dir.join("made"), "eth1").is_ok());
        drop(first);
        let again = Claim::take_in(&dir.join("made"), "eth0");
        assert!(again.is_ok(), "{:?}", again.err());
        let inode = std::fs::read_link("/proc/self/ns/net").expect("the namespace's link");
        let inode = inode.to_string_lossy().trim_start_matches("net:[").trim_end_matches(']').to_string();
        assert_eq!(again.unwrap().file("tunables"), dir.join("made").join(format!("eth0@{inode}.tunables")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An interface of the same name in another network namespace is another interface: its
    /// claim is taken beside this one's, under a name of its own (the namespace's inode, as
    /// the kernel shows it), and refused there as here while held.
    #[test]
    fn an_interface_of_another_network_namespace_is_claimed_apart() {
        let dir = std::env::temp_dir().join(format!("transitd-claim-netns-{}", std::process::id()));
        let here = Claim::take_in(&dir, "eth0").expect("the claim here");
        let there = std::thread::spawn({
            let dir = dir.clone();
            move || {
                // This thread alone enters a new network namespace (root: the tests are run so).
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a new network namespace");
                let link = std::fs::read_link("/proc/thread-self/ns/net").expect("the namespace's link");
                let inode = link.to_string_lossy().trim_start_matches("net:[").trim_end_matches(']').to_string();
                let claim = Claim::take_in(&dir, "eth0").map_err(|e| e.to_string());
                let again = Claim::take_in(&dir, "eth0").err().map(|e| e.to_string()).unwrap_or_default();
                (inode, claim.map(|c| c.file("tunables")), again)
            }
        });
        let (inode, claim, again) = there.join().expect("the other namespace's thread");
        assert!(inode.parse::<u64>().is_ok(), "{inode}");
        assert_eq!(claim, Ok(dir.join(format!("eth0@{inode}.tunables"))));
        assert!(again.starts_with("another transitd holds eth0"), "{again}");
        assert_ne!(here.file("tunables"), dir.join(format!("eth0@{inode}.tunables")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An upgrade from a version that named the files by the interface alone: a run of it
    /// still holding `eth0.lock` keeps
    /// this version off the interface, and a tunables file a killed run of it left,
    /// `eth0.tunables`, is this interface's, found under the new name.
    #[test]
    fn an_earlier_versions_lock_and_tunables_are_honoured() {
        let dir = std::env::temp_dir().join(format!("transitd-claim-legacy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let legacy = dir.join("eth0.lock");
        // flock(2) on the file, as that version took it, by a process of its own.
        let hold = "import fcntl, sys, time\nf = open(sys.argv[1], 'w')\nfcntl.flock(f, fcntl.LOCK_EX)\n\
                    print('held', flush=True)\ntime.sleep(30)";
        let mut old_run = std::process::Command::new("/usr/bin/python3")
            .args(["-c", hold])
            .arg(&legacy)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut held = String::new();
        let stdout = old_run.stdout.take().expect("its output");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut held).expect("its word");
        assert_eq!(held.trim(), "held");
        let refused = Claim::take_in(&dir, "eth0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.starts_with("another transitd holds eth0"), "{refused}");
        old_run.kill().unwrap();
        old_run.wait().unwrap();
        std::fs::write(dir.join("eth0.tunables"), "napi_defer_hard_irqs 0\n").unwrap();
        let claim = Claim::take_in(&dir, "eth0").expect("the old run gone");
        let kept = std::fs::read_to_string(claim.file("tunables"));
        assert_eq!(kept.ok().as_deref(), Some("napi_defer_hard_irqs 0\n"));
        assert!(!dir.join("eth0.tunables").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
