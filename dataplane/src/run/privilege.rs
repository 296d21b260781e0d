//! Whether this process holds the capabilities a run cannot do without, looked at before the
//! first thing that needs privilege (the lock in the runtime directory): without them a run
//! was refused for that file's permissions, which names a path, not what was missing.

/// Capabilities (`linux/capability.h`) no run does without, by name: the XDP program's
/// attachment and the interface's settings (CAP_NET_ADMIN), AF_XDP sockets (CAP_NET_RAW), the
/// program and its maps (CAP_BPF, or CAP_SYS_ADMIN, which held that right before Linux 5.8).
/// The unit grants CAP_PERFMON and CAP_IPC_LOCK too, which a run may do without (a memlock
/// limit large enough, say).
const NEEDED: [(&str, &[u32]); 3] = [("CAP_NET_ADMIN", &[12]), ("CAP_NET_RAW", &[13]), ("CAP_BPF", &[39, 21])];

/// The capabilities of [`NEEDED`] that the effective set `effective` (a bit per capability,
/// as /proc/self/status's `CapEff` gives it) lacks.
fn lacking(effective: u64) -> Vec<&'static str> {
    NEEDED.iter().filter(|(_, bits)| !bits.iter().any(|&b| effective & (1 << b) != 0)).map(|(name, _)| *name).collect()
}

/// Refuses a run without a capability of [`NEEDED`], naming what it lacks and who has them.
/// Where /proc/self/status says no effective set, nothing is refused here: what needs the
/// capabilities fails as it did.
pub(super) fn check() -> anyhow::Result<()> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return Ok(()) };
    let effective = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    let Some(effective) = effective.and_then(|hex| u64::from_str_radix(hex, 16).ok()) else { return Ok(()) };
    let missing = lacking(effective);
    anyhow::ensure!(
        missing.is_empty(),
        "this process lacks {}: run transitd as root, or with the capabilities of its systemd unit: CAP_BPF, \
         CAP_NET_ADMIN, CAP_NET_RAW, CAP_PERFMON and CAP_IPC_LOCK (docs/operations.md)",
        missing.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits as `capsh --decode` names them: 12 cap_net_admin, 13 cap_net_raw, 21
    /// cap_sys_admin, 39 cap_bpf; the unit's five (with 14 cap_ipc_lock, 38 cap_perfmon) are
    /// 0x000000c000007000, root's on this kernel 0x000001ffffffffff.
    #[test]
    fn what_a_run_lacks_is_named() {
        assert_eq!(lacking(0), ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]);
        assert!(lacking(0x0000_01ff_ffff_ffff).is_empty());
        assert!(lacking(0x0000_00c0_0000_7000).is_empty());
        // Before Linux 5.8 CAP_SYS_ADMIN loads programs.
        assert!(lacking((1 << 12) | (1 << 13) | (1 << 21)).is_empty());
        assert_eq!(lacking(0x0000_0040_0000_7000), ["CAP_BPF"]);
        assert_eq!(lacking((1 << 39) | (1 << 13)), ["CAP_NET_ADMIN"]);
    }
}
