//! The interface's own packet counters, as `ip -s link` shows them (sysfs
//! `/sys/class/net/IF/statistics`): what the driver says it received, sent and dropped,
//! beside what transitd's sockets counted, so that a run where frames vanish says where
//! (copy mode on veth, for one, drops part of what it is handed to send and counts it here
//! as `tx_dropped`). And its MTU, which the data plane holds what it sends to.

use std::path::Path;

/// Interface `ifname`'s MTU now (`None` if sysfs does not say).
pub fn mtu(ifname: &str) -> Option<usize> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(ifname).join("mtu")).ok()?.trim().parse().ok()
}

/// The counters read, by their sysfs names.
pub const COUNTERS: [&str; 7] =
    ["rx_packets", "rx_dropped", "rx_missed_errors", "rx_errors", "tx_packets", "tx_dropped", "tx_errors"];

/// One reading of [`COUNTERS`], in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetdevCounters(pub [u64; COUNTERS.len()]);

impl NetdevCounters {
    /// Reads the counters of interface `ifname`; a counter the driver does not keep reads 0.
    /// `None` if the interface has no statistics directory (gone, or not a netdev).
    pub fn read(ifname: &str) -> Option<NetdevCounters> {
        Self::read_from(&Path::new("/sys/class/net").join(ifname).join("statistics"))
    }

    fn read_from(dir: &Path) -> Option<NetdevCounters> {
        if !dir.is_dir() {
            return None;
        }
        let mut values = [0; COUNTERS.len()];
        for (v, name) in values.iter_mut().zip(COUNTERS) {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            *v = text.trim().parse().unwrap_or(0);
        }
        Some(NetdevCounters(values))
    }

    /// What each counter added since `earlier`. One that went down was reset (the driver
    /// reloaded, the device recreated), and what it holds now is what it counted since: a
    /// wrapping difference read as 1.8e19. (A driver that keeps 32-bit counters behind the
    /// 64-bit files wraps at 2^32: that reads as a reset too, and undercounts.)
    pub fn since(&self, earlier: &NetdevCounters) -> NetdevCounters {
        let mut d = [0; COUNTERS.len()];
        for ((d, now), then) in d.iter_mut().zip(self.0).zip(earlier.0) {
            *d = now.checked_sub(then).unwrap_or(now);
        }
        NetdevCounters(d)
    }

    /// The counters with their names.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTERS.into_iter().zip(self.0)
    }

    /// `rx_packets 50 rx_dropped 0 ... tx_errors 0`.
    pub fn line(&self) -> String {
        self.named().map(|(n, v)| format!("{n} {v}")).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_files_hold_and_a_missing_counter_as_zero() {
        let dir = std::env::temp_dir().join(format!("netdev-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rx_packets"), "50\n").unwrap();
        std::fs::write(dir.join("tx_dropped"), "7\n").unwrap();
        let c = NetdevCounters::read_from(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.0, [50, 0, 0, 0, 0, 7, 0]);
        let later = NetdevCounters([60, 1, 0, 0, 3, 7, 0]);
        assert_eq!(
            later.since(&c).line(),
            "rx_packets 10 rx_dropped 1 rx_missed_errors 0 rx_errors 0 tx_packets 3 tx_dropped 0 tx_errors 0"
        );
        assert_eq!(NetdevCounters::read_from(Path::new("/nonexistent")), None);
        // A counter that went down was reset: what it holds is what it counted since.
        let reset = NetdevCounters([4, 1, 0, 0, 3, 7, 0]);
        assert_eq!(reset.since(&c).0, [4, 1, 0, 0, 3, 0, 0]);
    }

    #[test]
    fn loopback_has_counters() {
        // Every Linux network namespace has `lo`.
        assert!(NetdevCounters::read("lo").is_some());
    }
}
