//! The interface's busy-polling tunables, set for the run and restored after it: with
//! preferred busy polling the kernel defers the NIC's interrupts while the application
//! polls (`napi_defer_hard_irqs` polls without an interrupt, `gro_flush_timeout` before the
//! fallback timer fires), as the kernel's busy-poll documentation and DPDK's af_xdp guide
//! recommend. Unset flags leave the interface as it is.

use std::path::PathBuf;

/// One sysfs value of the interface, and what it was before the run.
struct Saved {
    path: PathBuf,
    before: String,
}

/// Tunables set for the run; the previous values come back when this is dropped.
pub(super) struct Tunables {
    saved: Vec<Saved>,
}

impl Tunables {
    /// Sets `napi_defer_hard_irqs` and `gro_flush_timeout` of `iface` where given.
    pub(super) fn set(
        iface: &str,
        napi_defer: Option<u32>,
        gro_flush_timeout_ns: Option<u64>,
    ) -> anyhow::Result<Tunables> {
        let mut tunables = Tunables { saved: Vec::new() };
        for (file, value) in
            [("napi_defer_hard_irqs", napi_defer.map(u64::from)), ("gro_flush_timeout", gro_flush_timeout_ns)]
        {
            let Some(value) = value else { continue };
            let path = PathBuf::from(format!("/sys/class/net/{iface}/{file}"));
            let before = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e} (the kernel has no such tunable?)", path.display()))?;
            std::fs::write(&path, value.to_string()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            log_line!("transitd: {iface} {file} = {value} for the run (was {})", before.trim());
            tunables.saved.push(Saved { path, before: before.trim().to_string() });
        }
        Ok(tunables)
    }
}

impl Drop for Tunables {
    fn drop(&mut self) {
        for s in self.saved.drain(..).rev() {
            if let Err(e) = std::fs::write(&s.path, &s.before) {
                log_line!("transitd: restoring {} to {}: {e}", s.path.display(), s.before);
            }
        }
    }
}
