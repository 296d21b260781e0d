//! The supervisor's looks at the interface while the run goes, all at one cadence
//! ([`LOOK_EVERY`]): its name (renamed or gone ends the run), whether it still runs this
//! run's XDP program (detached ends it: [`super::attachment`]), its rx queues (changed ends a
//! run bound to every queue), its MAC address and MTU (followed), its operational state (a
//! link that is not up is said, at start too, and its coming up), and its own addresses (one
//! that comes inside a customer prefix is said). Reloads, the watchdog and the BGP
//! announcements stay on the supervisor's own tick.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use transitd_bpf::XdpProgram;

use super::attachment::{Attachment, AttachmentWatch};
use super::xdp_maps::program_tables;
use super::{RunOptions, Supervised, arriving, placement};
use crate::metrics::Sources;

/// How often the interface is looked at (sysfs reads, a netlink query for the XDP program,
/// a dump of the addresses): a program detached under the run leaves the interface's
/// traffic to the host's stack, unfiltered, for up to this long before the run sees it.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// What the looks found last, and when the next one is due.
pub(super) struct Looks<'a> {
    opts: &'a RunOptions,
    /// The interface's index at start.
    index: i32,
    /// The queues served.
    queues: &'a [u32],
    sources: &'a Sources,
    /// The interface's MTU the workers check decapsulated packets against, kept current.
    link_mtu: &'a AtomicUsize,
    /// The longest packet a socket takes, when they were bound without multi-buffer.
    single_frame: Option<usize>,
    due: Instant,
    /// The interface's address, which the XDP program holds frames to: followed, as an
    /// address changed under a running edge (`ip link set address`, a bond's failover) would
    /// leave every frame to the kernel.
    host_mac: Option<[u8; 6]>,
    attachment: AttachmentWatch,
    /// The interface's rx queues at the last look.
    rx_queues: usize,
    /// Whether the interface was up at the last look (taken as up before the first, so that
    /// one down at start is said).
    link_up: bool,
    past_sockets: FramesPastSockets,
    /// The interface's addresses inside a customer prefix at the last look, each said when
    /// it came.
    held: Vec<IpAddr>,
}

impl<'a> Looks<'a> {
    /// Looks at what `s` supervises, the first time at the first tick.
    pub(super) fn new(opts: &'a RunOptions, s: &Supervised<'a>) -> Looks<'a> {
        Looks {
            opts,
            index: s.index,
            queues: s.queues,
            sources: s.sources,
            link_mtu: s.link_mtu,
            single_frame: s.single_frame,
            due: Instant::now(),
            host_mac: placement::iface_mac(&opts.iface).ok(),
            attachment: AttachmentWatch::new(s.index),
            rx_queues: s.rx_queues_at_start,
            link_up: true,
            past_sockets: FramesPastSockets::new(s.longest_at_start, s.single_frame),
            held: Vec::new(),
        }
    }

    /// Looks at the interface if a look is due (however often this is called). Returns what
    /// the last look found of the XDP program's attachment, or why the run must stop.
    pub(super) fn tick(&mut self, program: &XdpProgram) -> anyhow::Result<Attachment> {
        if Instant::now() < self.due {
            return Ok(self.attachment.last());
        }
        self.due = Instant::now() + LOOK_EVERY;
        let opts = self.opts;
        let iface = opts.iface.as_str();
        self.follow_mac(program);
        self.follow_mtu();
        self.follow_link();
        let xdp = self.attachment.look(program);
        let rx_now = placement::rx_queue_count(iface).ok();
        // After the looks above: an interface being removed loses its name before its program
        // and its queues, and is said as gone, not as detached.
        if placement::ifindex(iface).ok() != Some(self.index)
            && let Some(why) = placement::what_became_of(iface, self.index)
        {
            return Err(anyhow::Error::msg(why));
        }
        if xdp == Attachment::Detached {
            anyhow::bail!(
                "{iface}: the XDP program is no longer attached (something detached it: `bpftool link detach`?), so \
                 the interface's traffic reaches the host's stack unfiltered: stopping (a restart attaches it again)"
            );
        }
        if let Some(now) = rx_now.filter(|&n| n != self.rx_queues) {
            let changed = format!("{iface}'s rx queues went from {} to {now} while running", self.rx_queues);
            // Bound to every queue there was, the run restarts bound to every queue there is;
            // restarted with `--queues` it would serve what it serves now, and with `--cores`
            // alone it would be refused (a CPU per queue).
            let restart_serves_all = opts.queues.is_none() && opts.cores.is_none();
            match placement::unserved(iface, now, self.queues, self.sources.snapshot.load().unbound_queue) {
                Some(line) if restart_serves_all => anyhow::bail!(
                    "{changed} (`ethtool -L`, a driver reset): {line}; stopping, so that a restart serves every queue"
                ),
                Some(line) => {
                    log_line!(
                        "transitd: warning: {changed}: {line}; --queues and --cores covering them would serve them"
                    )
                }
                None => log_line!("transitd: {changed}: every one has a worker"),
            }
            self.rx_queues = now;
        }
        self.say_addresses_in_customer_prefixes();
        Ok(xdp)
    }

    /// Tells the XDP program the interface's MAC address when it has changed.
    fn follow_mac(&mut self, program: &XdpProgram) {
        let iface = self.opts.iface.as_str();
        let now = placement::iface_mac(iface).ok().filter(|m| *m != [0; 6]);
        let Some(mac) = now.filter(|m| self.host_mac.is_some_and(|was| was != *m)) else { return };
        program.pass_frames_not_to(mac);
        // Failed, it is tried again at the next look (and told with the next reload).
        match program_tables(program, &self.sources.snapshot.load()) {
            Ok(()) => {
                log_line!("transitd: {iface}'s MAC address changed: frames to {} are ours now", mac_text(mac));
                self.host_mac = Some(mac);
            }
            Err(e) => log_line!("transitd: {iface}'s MAC address changed; telling the XDP program failed: {e}"),
        }
    }

    /// Reads the interface's MTU once for both its uses: the workers' limit, and what is
    /// said of frames longer than the sockets take.
    fn follow_mtu(&mut self) {
        let iface = self.opts.iface.as_str();
        let mtu = crate::netdev::mtu(iface);
        let snap = self.sources.snapshot.load();
        self.past_sockets.look(iface, mtu, snap.frame_size, self.single_frame);
        if let Some(mtu) = mtu
            && self.link_mtu.swap(mtu, Ordering::Relaxed) != mtu
        {
            log_line!("transitd: {iface}'s MTU is {mtu} now");
            for line in placement::tunnels_past_link(&snap, iface, mtu) {
                log_line!("{line}");
            }
        }
    }

    /// Says when the interface's link goes down and comes up again: a run on a link that is
    /// down (at start, `ip link set down`, a cable, the switch port) receives and sends
    /// nothing, and said nothing (its counters stood still). `unknown`, which drivers that
    /// do not track the state report, counts as up.
    fn follow_link(&mut self) {
        let iface = self.opts.iface.as_str();
        // Unread (the interface going away), said by the name look.
        let Some(state) = crate::netdev::operstate(iface) else { return };
        let up = matches!(state.as_str(), "up" | "unknown");
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        if up {
            log_line!("transitd: {iface} is up again (operstate {state})");
        } else {
            log_line!(
                "transitd: warning: {iface} is not up (operstate {state}): nothing arrives or leaves through it until it is"
            );
        }
    }

    /// Says each address the interface has come to have inside a customer prefix, once as it
    /// comes. The start and every reload refuse a configuration with one (the host's own
    /// traffic to it on that link is taken for the customer's: the upstream router's pings,
    /// BGP, SSH), but an address added while running is taken from the host at once, and
    /// until a reload nothing else says so.
    fn say_addresses_in_customer_prefixes(&mut self) {
        // Unread (a netlink hiccup), nothing is said and the last look's stand is kept.
        let Ok(addresses) = crate::netdev::addresses(self.index as u32) else { return };
        let snap = self.sources.snapshot.load();
        let mut held = Vec::new();
        for address in addresses {
            // (A catch-all prefix holds every address: it is warned about where it is written.)
            let inside = snap.customer_prefixes.iter().find(|(net, _)| net.prefix_len() > 0 && net.contains(&address));
            let Some((net, customer)) = inside else { continue };
            if !self.held.contains(&address) {
                let name = snap.customers.get(usize::from(*customer)).map_or("?", |c| c.name.as_str());
                log_line!(
                    "transitd: warning: {} has the address {address} now, inside prefix {net} of customer `{name}`: \
                     the host's own traffic to it on that link (BGP with the upstream router, SSH) is taken for the \
                     customer's; remove the address or the prefix (a reload is rejected while both are there)",
                    self.opts.iface
                );
            }
            held.push(address);
        }
        self.held = held;
    }
}

/// Says when frames longer than the sockets take can arrive, each time the longest rises
/// past what was said: a reload raised `frame_size`, or the interface's MTU was raised while
/// running (the sockets were bound for the frames of the start, and the kernel drops longer
/// ones). What could arrive at start was said then (multi-buffer refused).
struct FramesPastSockets {
    said: Option<usize>,
}

impl FramesPastSockets {
    fn new(longest_at_start: usize, room: Option<usize>) -> FramesPastSockets {
        FramesPastSockets { said: room.filter(|&room| longest_at_start > room).map(|_| longest_at_start) }
    }

    /// Looks at `iface`'s MTU as just read, `mtu`.
    fn look(&mut self, iface: &str, mtu: Option<usize>, frame_size: usize, room: Option<usize>) {
        // (An interface whose MTU cannot be read is going away: said by the supervisor.)
        let (Some(room), Some(mtu)) = (room, mtu) else { return };
        let longest = arriving(frame_size, Some(mtu));
        if longest <= room {
            self.said = None;
        } else if self.said.is_none_or(|said| longest > said) {
            log_line!(
                "transitd: frames of up to {longest} bytes can arrive now ({iface}'s MTU {}, frame_size \
                 {frame_size}), but the sockets were bound without AF_XDP multi-buffer and take {room}: longer \
                 frames are dropped by the kernel (transitd_afxdp_kernel_drops, reason rx_dropped) until a restart",
                mtu
            );
            self.said = Some(longest);
        }
    }
}

/// A MAC address as `02:00:00:00:00:01`.
fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
