//! The interface's busy-polling tunables, set for the run and restored after it: with
//! preferred busy polling the kernel defers the NIC's interrupts while the application
//! polls (`napi_defer_hard_irqs` polls without an interrupt, `gro_flush_timeout` before the
//! fallback timer fires), as the kernel's busy-poll documentation and DPDK's af_xdp guide
//! recommend. Unset flags leave the interface as it is.
//!
//! Their values before the run are written to the interface's `tunables` file in the
//! runtime directory ([`Claim::file`]) before either is changed, and the file is removed once
//! they are back. A run that cannot put them back (`kill -9`, systemd's watchdog abort)
//! leaves it, and the next run on the interface takes the values from it: taking the
//! interface's as it finds them, it took the killed run's for the originals and "restored"
//! those at its end. The claim makes the run that reads the file the only one on the
//! interface, so a file it finds is one whose run has ended.
//!
//! They are restored through the interface's name at the end, found again by its index: an
//! interface renamed under the run (which stops it) has its files under the new name.

use std::path::{Path, PathBuf};

use super::claim::Claim;

/// The interface's sysfs files, in the order they are set (restored in reverse).
const FILES: [&str; 2] = ["napi_defer_hard_irqs", "gro_flush_timeout"];

/// Where the interfaces are in sysfs, by name.
const SYSFS_NET: &str = "/sys/class/net";

/// One sysfs value of the interface, and what it was before the run.
struct Saved {
    file: &'static str,
    before: String,
}

/// Tunables set for the run; the previous values come back when this is dropped.
pub(super) struct Tunables {
    saved: Vec<Saved>,
    /// The interface's sysfs directory when they were set.
    sysfs: PathBuf,
    /// The interface's index, by which its directory is found again when they are restored
    /// (`None`: `sysfs` is kept, a directory of plain files in tests).
    ifindex: Option<u32>,
    /// The file keeping `saved`'s values for a run after a kill (`None`: nothing was set).
    state: Option<PathBuf>,
}

impl Tunables {
    /// Sets `napi_defer_hard_irqs` and `gro_flush_timeout` of the claimed interface, index
    /// `ifindex`, where given, and puts back what a killed run left set.
    pub(super) fn set(
        claim: &Claim,
        ifindex: u32,
        napi_defer: Option<u32>,
        gro_flush_timeout_ns: Option<u64>,
    ) -> anyhow::Result<Tunables> {
        let iface = claim.iface();
        let sysfs = Path::new(SYSFS_NET).join(iface);
        let values = [napi_defer.map(u64::from), gro_flush_timeout_ns];
        Tunables::set_in(iface, &sysfs, Some(ifindex), &claim.file("tunables"), values)
    }

    /// [`Tunables::set`] on the files in `sysfs` (one value for each of [`FILES`]), with
    /// `state` the file kept for a run after a kill and `ifindex` the interface's index
    /// (`None`: restored in `sysfs` too).
    fn set_in(
        iface: &str,
        sysfs: &Path,
        ifindex: Option<u32>,
        state: &Path,
        values: [Option<u64>; 2],
    ) -> anyhow::Result<Tunables> {
        let left = left_behind(state);
        if !left.is_empty() {
            let was: Vec<String> = left.iter().map(|(file, before)| format!("{file} {before}")).collect();
            log_line!(
                "transitd: {}: a run on {iface} ended without restoring its tunables (killed?); before it they \
                 were: {}",
                state.display(),
                was.join(", ")
            );
        }
        let mut planned: Vec<(Saved, u64)> = Vec::new();
        for (file, value) in FILES.into_iter().zip(values) {
            let path = sysfs.join(file);
            let earlier = left.iter().find(|(f, _)| *f == file).map(|(_, before)| before.clone());
            match (value, earlier) {
                (None, None) => {}
                // Not this run's to set: back to what it was before the run that set it.
                (None, Some(before)) => {
                    std::fs::write(&path, &before)
                        .map_err(|e| anyhow::anyhow!("{}: {e} (restoring it to {before})", path.display()))?;
                    log_line!("transitd: {iface} {file} = {before} again");
                }
                (Some(value), Some(before)) => planned.push((Saved { file, before }, value)),
                (Some(value), None) => {
                    let before = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("{}: {e} (the kernel has no such tunable?)", path.display()))?;
                    planned.push((Saved { file, before: before.trim().to_string() }, value));
                }
            }
        }
        if planned.is_empty() {
            if !left.is_empty()
                && let Err(e) = std::fs::remove_file(state)
            {
                log_line!("transitd: {}: {e}", state.display());
            }
            return Ok(Tunables { saved: Vec::new(), sysfs: sysfs.to_path_buf(), ifindex, state: None });
        }
        let (saved, values): (Vec<Saved>, Vec<u64>) = planned.into_iter().unzip();
        keep(state, &saved)?;
        // From here a failure restores every value (one not written yet is written as it is).
        let tunables = Tunables { saved, sysfs: sysfs.to_path_buf(), ifindex, state: Some(state.to_path_buf()) };
        for (s, value) in tunables.saved.iter().zip(values) {
            let path = sysfs.join(s.file);
            std::fs::write(&path, value.to_string()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            log_line!("transitd: {iface} {} = {value} for the run (was {})", s.file, s.before);
        }
        Ok(tunables)
    }
}

impl Drop for Tunables {
    fn drop(&mut self) {
        // (Nothing was set without a state file.)
        let Some(state) = self.state.take() else { return };
        // By the name the interface has now; by its name at start when it has none (gone).
        let sysfs = match self.ifindex.and_then(|index| crate::netdev::name_of(index).ok().flatten()) {
            Some(name) => Path::new(SYSFS_NET).join(name),
            None => self.sysfs.clone(),
        };
        let mut restored = true;
        for s in self.saved.drain(..).rev() {
            let path = sysfs.join(s.file);
            if let Err(e) = std::fs::write(&path, &s.before) {
                log_line!("transitd: restoring {} to {}: {e}", path.display(), s.before);
                restored = false;
            }
        }
        if !restored {
            log_line!("transitd: {} is kept: the next run on the interface restores from it", state.display());
        } else if let Err(e) = std::fs::remove_file(&state) {
            log_line!("transitd: {}: {e}", state.display());
        }
    }
}

/// What a run that ended without restoring left in `state`: each file's value before it.
/// A file transitd did not write as it does is said and ignored.
fn left_behind(state: &Path) -> Vec<(&'static str, String)> {
    let text = match std::fs::read_to_string(state) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log_line!("transitd: {}: {e}; ignored", state.display());
            return Vec::new();
        }
    };
    let left: Option<Vec<(&'static str, String)>> = text
        .lines()
        .map(|line| {
            let (name, before) = line.split_once(' ')?;
            let file = FILES.into_iter().find(|f| *f == name)?;
            // Written back to sysfs: only the decimal number sysfs gave.
            let decimal = !before.is_empty() && before.bytes().all(|b| b.is_ascii_digit());
            decimal.then(|| (file, before.to_string()))
        })
        .collect();
    left.unwrap_or_else(|| {
        log_line!("transitd: {}: not what transitd writes there; ignored", state.display());
        Vec::new()
    })
}

/// Writes the values before the run of `saved` to `state`, whole or not at all (a new file
/// renamed over it). Not synced: the runtime directory is a tmpfs, and a reboot that loses
/// the file resets the interface too.
fn keep(state: &Path, saved: &[Saved]) -> anyhow::Result<()> {
    let lines: Vec<String> = saved.iter().map(|s| format!("{} {}\n", s.file, s.before)).collect();
    let mut new = state.as_os_str().to_owned();
    new.push(".new");
    let new = PathBuf::from(new);
    std::fs::write(&new, lines.concat()).and_then(|()| std::fs::rename(&new, state)).map_err(|e| {
        anyhow::anyhow!("{}: {e} (the tunables' values before the run, kept for a run after a kill)", state.display())
    })
}

#[cfg(test)]
mod tests {
    use super::{FILES, Tunables};

    /// A run killed with the tunables set (its restore skipped, as `kill -9` skips it)
    /// leaves their values from before it; the next run puts back at once the one it does
    /// not set, sets the other over the value from before the killed run, and restores that
    /// one at its end. The file goes with a clean end.
    #[test]
    fn a_run_after_a_kill_restores_the_values_from_before_it() {
        let dir = std::env::temp_dir().join(format!("transitd-tunables-{}", std::process::id()));
        let sysfs = dir.join("eth0");
        std::fs::create_dir_all(&sysfs).unwrap();
        // As the kernel gives them: a decimal number and a newline.
        for file in FILES {
            std::fs::write(sysfs.join(file), "0\n").unwrap();
        }
        let now = || FILES.map(|file| std::fs::read_to_string(sysfs.join(file)).unwrap().trim().to_string());
        let state = dir.join("eth0.tunables");

        let killed = Tunables::set_in("eth0", &sysfs, None, &state, [Some(2), Some(200_000)]).unwrap();
        assert_eq!(now(), ["2", "200000"]);
        std::mem::forget(killed);
        assert!(state.exists());

        let next = Tunables::set_in("eth0", &sysfs, None, &state, [Some(3), None]).unwrap();
        assert_eq!(now(), ["3", "0"], "gro_flush_timeout put back at once");
        drop(next);
        assert_eq!(now(), ["0", "0"], "the values from before the killed run");
        assert!(!state.exists());

        drop(Tunables::set_in("eth0", &sysfs, None, &state, [None, Some(5)]).unwrap());
        assert_eq!(now(), ["0", "0"]);
        assert!(!state.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
