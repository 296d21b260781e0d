//! The exception path: a frame the XDP program redirected that the pipeline then passes
//! (not transitd's after all: in the moment a reload moves a prefix, a shape the XDP program
//! does not read) is handed to the host's stack through a TUN device, as VPP punts to a tap
//! and DPDK's exception path re-injects. Without it such frames would vanish while counted
//! "passed": AF_XDP frames have no way back into the kernel's receive path.
//!
//! The device is created by `transitd run` (`td-<interface>` unless named) and goes away
//! with the process. Where it cannot be created (no `/dev/net/tun`, or one only root may
//! open), transitd says so and runs without it: the exception path is not worth an edge
//! that does not start, and each frame it would have carried is counted as failed (and
//! `transitd_punt_device_up` is 0). Another transitd starting on the interface cannot take
//! the name for a moment: the interface's claim (`run::claim`) refuses it before it makes
//! one. With `--punt-rate 0` no device is made. Frames are written as IP packets (the
//! Ethernet header and VLAN tags are stripped), one `write` each: this is an exception
//! path, bounded by a rate per worker (`--punt-rate`), and every frame is counted as
//! punted, over the rate, or failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::pipeline::{Frame, Verdict};

/// Counters of the exception path, shared by the workers.
#[derive(Debug, Default)]
pub struct PuntStats {
    /// Frames written to the device.
    pub punted: AtomicU64,
    /// Frames not written: over the rate.
    pub over_rate: AtomicU64,
    /// Frames not written: not IP, or the write failed.
    pub failed: AtomicU64,
}

/// The TUN device frames are punted to.
pub struct PuntDevice {
    /// `None`: punting is off (rate 0), or the device could not be made.
    device: Option<tun::Device>,
    name: String,
    /// Frames per second, all workers together.
    rate: u32,
    /// The last write failed (said at the first failure, once, until a write succeeds).
    writes_failing: AtomicBool,
    /// Counters.
    pub stats: PuntStats,
}

impl std::fmt::Debug for PuntDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PuntDevice").field("name", &self.name).field("rate", &self.rate).finish()
    }
}

/// The default device name for interface `iface`: `td-` and the name, within the kernel's 15
/// bytes. A longer name keeps its first 8 bytes and 4 hex digits of a hash of the whole, so
/// that two ports of one NIC (`enp129s0f1np0`, `enp129s0f1np1`) do not get one device.
pub fn default_name(iface: &str) -> String {
    let name = format!("td-{iface}");
    if name.len() <= 15 {
        return name;
    }
    // Stable across runs and builds, as a device name must be.
    let hash = crate::snapshot::fnv1a(iface.as_bytes());
    let mut head = iface.to_string();
    while head.len() > 8 {
        head.pop();
    }
    format!("td-{head}{:04x}", (hash ^ hash >> 16) & 0xffff)
}

impl PuntDevice {
    /// Creates the TUN device `name` (none if `rate` is 0), brings it up and lets it accept
    /// packets whose source is routed elsewhere (reverse-path filtering off on it: the
    /// packets are the Internet's, arriving here only because transitd handed them over).
    /// A device that cannot be made is reported on stderr, and the exception path is off.
    pub fn create(name: &str, rate: u32) -> Arc<PuntDevice> {
        let device = if rate == 0 { None } else { PuntDevice::open(name) };
        Arc::new(PuntDevice {
            device,
            name: name.to_string(),
            rate,
            writes_failing: AtomicBool::new(false),
            stats: PuntStats::default(),
        })
    }

    fn open(name: &str) -> Option<tun::Device> {
        let mut config = tun::Configuration::default();
        config.tun_name(name).up();
        let device = match tun::create(&config) {
            Ok(d) => d,
            Err(e) => {
                // The kernel's answer when the name is an interface that is not a TUN device
                // this process may attach (another kind, or another process's TUN device).
                let taken =
                    matches!(&e, tun::Error::Io(io) if matches!(io.raw_os_error(), Some(libc::EBUSY | libc::EINVAL)));
                let hint = if taken {
                    "Is the name another interface's (--punt-device names another)?"
                } else {
                    "Is /dev/net/tun there and open to this user (udev makes it 0666)?"
                };
                log_line!(
                    "transitd: creating the punt device {name}: {e}; running without it: frames the pipeline \
                     passes are dropped (counted: transitd_punt_packets_total{{result=\"failed\"}}; \
                     transitd_punt_device_up is 0). {hint}"
                );
                return None;
            }
        };
        let rp = format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
        if let Err(e) = std::fs::write(&rp, "0") {
            log_line!("transitd: {rp}: {e}; punted packets may be dropped by reverse-path filtering");
        }
        if std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter").is_ok_and(|v| v.trim() == "1") {
            log_line!(
                "transitd: net.ipv4.conf.all.rp_filter is 1 (strict): the kernel will drop punted packets whose \
                 source it routes elsewhere; set it to 2 (loose) or 0"
            );
        }
        Some(device)
    }

    /// Whether frames reach the host: the device was made (without it, the frames it would
    /// carry are dropped) and its writes do not fail (deleted under the run, every write
    /// fails with EBADFD; set down, with EIO), as far as its last write tells.
    pub fn is_up(&self) -> bool {
        self.device.is_some() && !self.writes_failing.load(Ordering::Relaxed)
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A worker's end, one of `workers`: its share of the rate, exactly (a rate below the
    /// number of workers gives each a frame every few seconds, not one a second each).
    pub fn punt(self: &Arc<Self>, workers: usize) -> Punt {
        let per_worker = f64::from(self.rate) / workers.max(1) as f64;
        let interval_ns = if per_worker > 0.0 { (1e9 / per_worker).min(u64::MAX as f64) as u64 } else { u64::MAX };
        Punt { device: self.clone(), share: Share { interval_ns, tat_ns: 0 }, enabled: self.rate > 0 }
    }

    /// Says the first failed write (a device set down, say: EIO), once until a write
    /// succeeds again: the rest are counted `failed`.
    fn write_failed(&self, e: &std::io::Error) {
        if !self.writes_failing.swap(true, Ordering::Relaxed) {
            log_line!(
                "transitd: punt device {}: {e}; frames for the host are dropped while it fails (counted: \
                 transitd_punt_packets_total{{result=\"failed\"}})",
                self.name
            );
        }
    }
}

/// A worker's end of the exception path: its share of the rate.
#[derive(Debug)]
pub struct Punt {
    device: Arc<PuntDevice>,
    share: Share,
    enabled: bool,
}

/// A worker's share of the rate, by GCRA: a frame every `interval_ns`, with a burst of
/// [`BURST_NS`]' worth back to back.
#[derive(Clone, Copy, Debug)]
struct Share {
    interval_ns: u64,
    /// The theoretical arrival time of the next frame.
    tat_ns: u64,
}

/// How much of the rate may go back to back: 10 ms' worth. Each write runs the host's
/// receive path (routing, netfilter, a socket) in the worker's own system call, so a
/// second's worth (5,000 writes a worker at the default rate) stopped the worker polling
/// for tens of milliseconds, long enough for its receive ring to overflow.
const BURST_NS: u64 = 10_000_000;

impl Share {
    /// Whether a frame at `now_ns` is within the share (and takes its place in it).
    fn admit(&mut self, now_ns: u64) -> bool {
        let tat = self.tat_ns.max(now_ns);
        if tat - now_ns > BURST_NS {
            return false;
        }
        self.tat_ns = tat.saturating_add(self.interval_ns);
        true
    }
}

impl Punt {
    /// Hands `frame` to the host if the pipeline passed it.
    #[inline]
    pub fn offer(&mut self, frame: &Frame<'_>) {
        if !matches!(frame.verdict, Verdict::Pass(_)) {
            return;
        }
        let stats = &self.device.stats;
        if !self.enabled {
            stats.over_rate.fetch_add(1, Ordering::Relaxed); // --punt-rate 0
            return;
        }
        // No device (it could not be made): every frame is a failure, whatever the rate.
        let Some(device) = &self.device.device else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !self.share.admit(frame.timestamp_ns) {
            stats.over_rate.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match ip_packet(frame.data()).map(|p| device.send(p)) {
            Some(Ok(_)) => {
                // Working again: the next failure, whatever its cause, is said again.
                if self.device.writes_failing.load(Ordering::Relaxed) {
                    self.device.writes_failing.store(false, Ordering::Relaxed);
                }
                stats.punted.fetch_add(1, Ordering::Relaxed)
            }
            Some(Err(e)) => {
                self.device.write_failed(&e);
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
            None => stats.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The IP packet inside an Ethernet frame (after up to three VLAN tags), as a TUN device
/// takes it.
fn ip_packet(frame: &[u8]) -> Option<&[u8]> {
    let mut at = 12;
    for _ in 0..4 {
        let ty = frame.get(at..at + 2)?;
        match u16::from_be_bytes([ty[0], ty[1]]) {
            0x8100 | 0x88a8 | 0x9100 => at += 4,
            0x0800 | 0x86dd => return frame.get(at + 2..),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_is_found_behind_vlan_tags() {
        let mut frame = vec![0u8; 12];
        frame.extend([0x81, 0x00, 0, 5, 0x88, 0xa8, 0, 6, 0x08, 0x00, 0x45, 0]);
        assert_eq!(ip_packet(&frame), Some(&[0x45, 0][..]));
        let arp = [&[0u8; 12][..], &[0x08, 0x06, 0, 1]].concat();
        assert_eq!(ip_packet(&arp), None);
        assert_eq!(ip_packet(&[0u8; 5]), None);
        let five_tags = [&[0u8; 12][..], &[0x81, 0, 0, 1].repeat(5), &[0x08, 0x00, 0x45]].concat();
        assert_eq!(ip_packet(&five_tags), None);
    }

    /// GCRA: 10 ms' worth back to back, then one frame each interval; a worker's share of a
    /// rate below the number of workers is a fraction of a frame a second.
    #[test]
    fn a_share_allows_ten_milliseconds_back_to_back_then_its_rate() {
        const S: u64 = 1_000_000_000;
        let device = PuntDevice::create("unused", 0);
        let mut share = Share { interval_ns: S / 5000, tat_ns: 0 }; // 10,000/s over two workers
        let burst = (0..100).take_while(|_| share.admit(5 * S)).count();
        assert_eq!(burst, 51, "10 ms at 5,000/s, and the one at its start");
        assert!(!share.admit(5 * S));
        assert!(share.admit(5 * S + 200_000), "one more each 200 us");
        let quarter = Arc::new(PuntDevice { rate: 1, ..Arc::into_inner(device).unwrap() }).punt(4);
        assert_eq!(quarter.share.interval_ns, 4 * S, "a rate of 1/s over 4 workers: one each 4 s");
    }

    /// Without a device (it could not be made), every passed frame is counted failed, as
    /// the docs say, not only those within the rate.
    #[test]
    fn without_a_device_every_passed_frame_fails() {
        let device = Arc::new(PuntDevice {
            device: None,
            name: "none".into(),
            rate: 1,
            writes_failing: AtomicBool::new(false),
            stats: PuntStats::default(),
        });
        let mut punt = device.punt(1);
        let mut buf = vec![0u8; 64];
        for _ in 0..10 {
            let mut frame = Frame::new(&mut buf, 0, 60, 60, 1_000);
            frame.verdict = Verdict::Pass(crate::pipeline::PassReason::NotIp);
            punt.offer(&frame);
        }
        assert_eq!(
            (device.stats.failed.load(Ordering::Relaxed), device.stats.over_rate.load(Ordering::Relaxed)),
            (10, 0)
        );
    }

    #[test]
    fn names_fit_the_kernel() {
        assert_eq!(default_name("eth0"), "td-eth0");
        assert_eq!(default_name("enp129s0f1"), "td-enp129s0f1");
        let ports = [default_name("enp129s0f1np0"), default_name("enp129s0f1np1")];
        assert_ne!(ports[0], ports[1], "two ports of one NIC");
        assert!(ports.iter().all(|n| n.len() == 15 && n.starts_with("td-enp129s")), "{ports:?}");
        assert_eq!(default_name("enp129s0f1np0"), ports[0], "the same name every time");
        assert!(default_name("a-very-long-interface-name").len() <= 15);
        assert!(default_name("ñññññññññññññ").len() <= 15, "cut at a character boundary");
    }
}
