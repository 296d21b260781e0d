//! The next hop's MAC address, learned from the kernel's neighbour table over netlink and
//! kept fresh by a background thread; workers read it once per batch.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::snapshot::NextHop;

/// How long frames keep going to the previous next hop after a reload names a new address
/// that is not resolved yet.
const CARRY_OVER: Duration = Duration::from_secs(5);

/// A MAC address shared between the resolver and the workers; zero means unresolved.
#[derive(Debug, Default)]
pub struct NextHopCell(AtomicU64);

const RESOLVED: u64 = 1 << 63;

impl NextHopCell {
    /// A cell holding `mac` already.
    pub fn resolved(mac: [u8; 6]) -> NextHopCell {
        let cell = NextHopCell::default();
        cell.set(Some(mac));
        cell
    }

    /// The MAC, if resolved.
    #[inline]
    pub fn get(&self) -> Option<[u8; 6]> {
        let v = self.0.load(Ordering::Relaxed);
        (v & RESOLVED != 0).then(|| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        })
    }

    /// Stores `mac` (or marks the next hop unresolved).
    pub fn set(&self, mac: Option<[u8; 6]>) {
        let v = mac.map_or(0, |m| RESOLVED | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]));
        self.0.store(v, Ordering::Relaxed);
    }
}

/// The MAC the neighbour table holds for `ip` on interface `ifindex` in a usable state, if
/// any. Only that interface's entries count: the same address may be a neighbour on
/// several (IPv6's link-local routers, `fe80::1` on every link, always are), each at its own
/// MAC.
pub fn lookup(ip: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
    Ok(look_up(ip, ifindex)?.map(|entry| entry.mac))
}

/// A usable neighbour entry: its MAC, and whether the kernel learned it (not PERMANENT or
/// NOARP, not `managed` or `extern_learn`: entries [`solicit`] must not touch, as marking an
/// entry in use strips PERMANENT from it, Linux's `__neigh_update` with NEIGH_UPDATE_F_USE,
/// and the flags the request does not carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    learned: bool,
}

/// [`lookup`], with the entry's kind: the one entry asked for (RTM_GETNEIGH for an address
/// on an interface, Linux 5.0 and later), not a dump of the whole table, which cost time in
/// proportion to the table's size at every look and, on a busy table, was interrupted by
/// changes (NLM_F_DUMP_INTR) until a look failed.
fn look_up(ip: IpAddr, ifindex: u32) -> io::Result<Option<Entry>> {
    let msg = ask_kernel(RouteNetlinkMessage::GetNeighbour(neighbour_message(ip, ifindex)), NLM_F_REQUEST)?;
    let n = match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => n,
        // No entry for the address on that interface.
        NetlinkPayload::Error(e) if e.to_io().raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        NetlinkPayload::Error(e) => return Err(e.to_io()),
        other => {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("netlink: unexpected answer {other:?}")));
        }
    };
    let usable = matches!(
        n.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    });
    let (true, Some(mac)) = (usable, mac) else { return Ok(None) };
    // Another's entry: pinned (PERMANENT, NOARP), kept resolved by the kernel (`managed`)
    // or installed by a routing daemon (`extern_learn`). A request marking it in use would
    // take those flags away (Linux clears what the request does not carry).
    let managed = n
        .attributes
        .iter()
        .any(|a| matches!(a, NeighbourAttribute::ExtFlags(f) if f.contains(NeighbourExtFlags::Managed)));
    let learned = !matches!(n.header.state, NeighbourState::Permanent | NeighbourState::Noarp)
        && !n.header.flags.contains(NeighbourFlags::ExtLearned)
        && !managed;
    Ok(Some(Entry { mac, learned }))
}

/// Makes the kernel resolve `ip` on interface `ifindex`: a neighbour entry marked in use
/// (`ip neigh replace IP dev IFACE use`, NTF_USE), which the kernel resolves on that link
/// whatever its routes say (a datagram sent by the host stack would go where the routing
/// table sends it: out of the management link, or nowhere, when `--iface` has no address in
/// the next hop's subnet).
pub fn solicit(ip: IpAddr, ifindex: u32) -> io::Result<()> {
    let mut neighbour = neighbour_message(ip, ifindex);
    neighbour.header.state = NeighbourState::None;
    neighbour.header.flags = NeighbourFlags::Use;
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let reply = ask_kernel(RouteNetlinkMessage::NewNeighbour(neighbour), flags)?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Ok(()),
    }
}

/// A neighbour message naming `ip` on interface `ifindex`: what [`look_up`] asks about and
/// [`solicit`] sets.
fn neighbour_message(ip: IpAddr, ifindex: u32) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    message.header.ifindex = ifindex;
    message.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }));
    message
}

/// Sends `request` under netlink header `flags` to the kernel, on a socket of its own, and
/// reads the one answer.
fn ask_kernel(request: RouteNetlinkMessage, flags: u16) -> io::Result<NetlinkMessage<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(request));
    req.finalize();
    let mut buf = vec![0; req.header.length as usize];
    req.serialize(&mut buf[..]);
    socket.send(&buf[..], 0)?;
    let mut rx = vec![0u8; 8192];
    let size = socket.recv(&mut &mut rx[..], 0)?;
    NetlinkMessage::deserialize(&rx[..size])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}")))
}

/// Changes to the kernel's neighbour table (the RTNLGRP_NEIGH multicast group), read
/// without waiting: the follower looks at its next hop's entry again as soon as the kernel
/// says it changed (a router replaced, its MAC moved, its entry failed or deleted), where
/// it saw the change only at its next `refresh`, ten seconds in `run`, and sent every frame
/// to a MAC nobody had any more until then.
struct NeighbourEvents {
    socket: Socket,
    buf: Vec<u8>,
}

impl NeighbourEvents {
    fn subscribe() -> io::Result<NeighbourEvents> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(libc::RTNLGRP_NEIGH)?;
        socket.set_non_blocking(true)?;
        Ok(NeighbourEvents { socket, buf: vec![0; 64 * 1024] })
    }

    /// Reads every change said since the last call; whether any may concern `watched` (an
    /// address on an interface). Events lost to a full socket buffer (ENOBUFS) may have.
    fn changed(&mut self, watched: Option<(IpAddr, u32)>) -> bool {
        let mut changed = false;
        // Bounded: a table changing faster than this is read is looked at anyway.
        for _ in 0..256 {
            match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => changed |= watched.is_some_and(|w| concerns(&self.buf[..n.min(self.buf.len())], w)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return changed,
                Err(_) => return true,
            }
        }
        true
    }
}

/// Whether the netlink messages in `bytes` (one read of the RTNLGRP_NEIGH group: messages
/// each at a 4-byte boundary, lengths in their headers) say something about the neighbour
/// entry of `watched` (an address on an interface): an RTM_NEWNEIGH or RTM_DELNEIGH for that
/// address on that interface. A message that cannot be read may. Public for the `neigh`
/// fuzz target, which holds it to messages built by hand.
pub fn concerns(mut bytes: &[u8], (ip, ifindex): (IpAddr, u32)) -> bool {
    const HEADER: usize = 16;
    while bytes.len() >= HEADER {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(message) = bytes.get(..len).filter(|_| len >= HEADER) else { return true };
        let neighbour = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(message).map(|m| m.payload) {
            Ok(NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n),
            )) => Some(n),
            Ok(_) => None,
            Err(_) => return true,
        };
        if let Some(n) = neighbour
            && n.header.ifindex == ifindex
            && n.attributes.iter().any(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip == IpAddr::V4(*v4),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => ip == IpAddr::V6(*v6),
                _ => false,
            })
        {
            return true;
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    false
}

/// Keeps `cell` holding the next hop's MAC on interface `ifindex` until `stop`, following the running
/// configuration's `next_hop` (read through `target` every 100 ms, so that a reload that
/// changes it takes effect within that): a configured MAC is stored as it is; an address is
/// looked up in the neighbour table (and its entry marked in use) every second while
/// unresolved, every `refresh` once resolved, and within 100 ms of the kernel saying its
/// entry changed ([`NeighbourEvents`]). Logs one line when the next hop becomes unresolved
/// and one when it resolves or changes.
pub fn follow_next_hop(
    ifindex: u32,
    target: impl Fn() -> NextHop,
    cell: Arc<NextHopCell>,
    stop: Arc<AtomicBool>,
    refresh: Duration,
) {
    // Unknown at first, so that the first resolution is logged even when the caller already
    // found it; a configured MAC is logged only when a reload changes it.
    let mut followed = target();
    let mut last: Option<[u8; 6]> = match followed {
        NextHop::Static(mac) => Some(mac),
        _ => None,
    };
    let (mut warned, mut lookup_failed, mut solicit_failed) = (false, false, false);
    let mut next_look = Instant::now();
    // After a reload names another next hop address: the last MAC, kept (for at most
    // CARRY_OVER) while the new address resolves, rather than dropping every frame as
    // `next_hop_unresolved` meanwhile (a router being replaced still forwards).
    let mut carried: Option<([u8; 6], Instant)> = None;
    let mut carry_said = false;
    let mut events = NeighbourEvents::subscribe()
        .inspect_err(|e| {
            log_line!(
                "transitd: cannot follow the neighbour table's changes ({e}): the next hop is looked up every {} s",
                refresh.as_secs()
            )
        })
        .ok();
    while !stop.load(Ordering::Relaxed) {
        let now_target = target();
        if now_target != followed {
            carried = cell.get().filter(|_| matches!(now_target, NextHop::Neighbour(_))).map(|m| (m, Instant::now()));
            carry_said = false;
            // A new next hop is logged once it resolves, even to the same MAC.
            (followed, warned, next_look, last) = (now_target, false, Instant::now(), None);
        }
        let watched = match followed {
            NextHop::Neighbour(ip) => Some((ip, ifindex)),
            _ => None,
        };
        if events.as_mut().is_some_and(|e| e.changed(watched)) && watched.is_some() {
            next_look = Instant::now();
        }
        if Instant::now() >= next_look {
            next_look = match followed {
                NextHop::Static(mac) => {
                    cell.set(Some(mac));
                    if last != Some(mac) {
                        log_line!("transitd: next hop is {} (next_hop_mac)", fmt_mac(&mac));
                    }
                    last = Some(mac);
                    Instant::now() + refresh
                }
                NextHop::Neighbour(ip) => {
                    // A failed look (netlink refused; the interface gone, ENODEV) says nothing
                    // about the neighbour: the last answer stands, and the failure is said once.
                    let (now, learned) = match look_up(ip, ifindex) {
                        Ok(entry) => {
                            lookup_failed = false;
                            (entry.map(|e| e.mac), entry.is_none_or(|e| e.learned))
                        }
                        Err(e) => {
                            if !lookup_failed {
                                log_line!("transitd: cannot read the neighbour table ({e}): keeping the last next hop");
                            }
                            lookup_failed = true;
                            // Unresolved, it is asked for, as a missing entry is.
                            (last, last.is_none())
                        }
                    };
                    let carry = carried.filter(|(_, since)| now.is_none() && since.elapsed() < CARRY_OVER);
                    carried = carry;
                    cell.set(now.or(carry.map(|(mac, _)| mac)));
                    match (now, carry) {
                        (Some(mac), _) if Some(mac) != last => {
                            log_line!("transitd: next hop {ip} is at {}", fmt_mac(&mac));
                            warned = false;
                        }
                        (None, Some((mac, _))) if !carry_said => {
                            log_line!(
                                "transitd: next hop {ip} is not in the neighbour table yet: frames go to the previous \
                                 next hop's {} for up to {} s while it resolves",
                                fmt_mac(&mac),
                                CARRY_OVER.as_secs()
                            );
                            carry_said = true;
                        }
                        (None, None) if !warned => {
                            log_line!(
                                "transitd: next hop {ip} is not in the neighbour table: frames to encapsulate are dropped as next_hop_unresolved until it is"
                            );
                            warned = true;
                        }
                        _ => {}
                    }
                    last = now;
                    // A learned entry is marked in use at every look, as a missing one is:
                    // transitd's frames never touch the kernel's entry, which would otherwise
                    // go stale, never be confirmed again, and be collected once unused for
                    // `gc_stale_time` (then every frame dropped until the next look found it
                    // gone). In use, a stale entry is probed (DELAY, PROBE) as the host's own
                    // traffic would have it; a reachable one has its use time moved. A
                    // PERMANENT entry is left alone: marked in use, it stops being permanent.
                    if learned
                        && let Err(e) = solicit(ip, ifindex)
                        && !solicit_failed
                    {
                        log_line!("transitd: cannot ask the kernel to resolve next hop {ip} ({e})");
                        solicit_failed = true;
                    }
                    Instant::now() + if now.is_some() { refresh } else { Duration::from_secs(1) }
                }
                // Replay's configurations may leave it out; `run` refuses to start without
                // one, and a reload without one is refused.
                NextHop::Unset => {
                    if !warned {
                        log_line!("transitd: the configuration sets no next hop: frames keep going to the last one");
                        warned = true;
                    }
                    Instant::now() + refresh
                }
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `ip` with `args` (split at spaces), which must succeed; its output.
    pub(crate) fn ip(args: &str) -> String {
        let out = std::process::Command::new("ip").args(args.split_whitespace()).output().expect("ip");
        assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A veth pair named after `tag` and the process, both ends up; deleted with the guard.
    pub(crate) fn veth_pair(tag: &str) -> (String, String, Gone) {
        let (a, b) =
            (format!("{tag}{}a", std::process::id() % 100_000), format!("{tag}{}b", std::process::id() % 100_000));
        ip(&format!("link add {a} type veth peer name {b}"));
        let gone = Gone(a.clone());
        ip(&format!("link set {a} up"));
        ip(&format!("link set {b} up"));
        (a, b, gone)
    }

    /// Deletes the veth pair one of whose ends it names.
    pub(crate) struct Gone(String);

    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }

    /// The follower on a veth pair of its own, against the kernel's neighbour table (`ip
    /// neigh` the oracle): a learned entry gone stale is probed again (DELAY, then PROBE) as
    /// the host's traffic would have it, not left to be collected; a PERMANENT one stays
    /// permanent (marked in use, Linux makes it a learned one, which it then fails to
    /// resolve), and a routing daemon's (`extern_learn`) keeps its flag. Needs root, as the
    /// lab tests do.
    #[test]
    fn the_follower_revalidates_a_stale_entry_and_leaves_a_permanent_one() {
        let (a, _b, _gone) = veth_pair("tdn");
        ip(&format!("addr add 10.250.77.1/24 dev {a}"));
        ip(&format!("neigh add 10.250.77.2 lladdr 02:00:00:00:77:02 dev {a} nud permanent"));
        ip(&format!("neigh add 10.250.77.3 lladdr 02:00:00:00:77:03 dev {a} nud stale"));
        ip(&format!("neigh add 10.250.77.4 lladdr 02:00:00:00:77:04 dev {a} nud stale extern_learn"));
        let ifindex: u32 =
            std::fs::read_to_string(format!("/sys/class/net/{a}/ifindex")).unwrap().trim().parse().unwrap();
        for (last, mac) in [(2u8, [2, 0, 0, 0, 0x77, 2]), (3, [2, 0, 0, 0, 0x77, 3]), (4, [2, 0, 0, 0, 0x77, 4])] {
            let cell = Arc::new(NextHopCell::default());
            let stop = Arc::new(AtomicBool::new(false));
            let target = NextHop::Neighbour(IpAddr::from([10, 250, 77, last]));
            let follower = {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || follow_next_hop(ifindex, || target, cell, stop, Duration::from_millis(100)))
            };
            std::thread::sleep(Duration::from_millis(350));
            stop.store(true, Ordering::Relaxed);
            follower.join().unwrap();
            assert_eq!(cell.get(), Some(mac));
        }
        let state = |last: u8| ip(&format!("neigh show 10.250.77.{last} dev {a}"));
        assert!(state(2).contains("PERMANENT"), "{}", state(2));
        assert!(state(3).contains("DELAY") || state(3).contains("PROBE"), "not revalidated: {}", state(3));
        assert!(state(4).contains("extern_learn"), "a routing daemon's entry lost its flag: {}", state(4));
    }

    /// A change to the next hop's entry is followed at once, not at the next refresh (a
    /// minute here): its MAC replaced, then the entry deleted. Needs root.
    #[test]
    fn the_follower_sees_its_next_hops_entry_change_at_once() {
        let (a, _b, _gone) = veth_pair("tdc");
        ip(&format!("addr add 10.250.79.1/24 dev {a}"));
        ip(&format!("neigh add 10.250.79.2 lladdr 02:00:00:00:79:02 dev {a} nud permanent"));
        ip(&format!("neigh add 10.250.79.3 lladdr 02:00:00:00:79:03 dev {a} nud permanent"));
        let ifindex: u32 =
            std::fs::read_to_string(format!("/sys/class/net/{a}/ifindex")).unwrap().trim().parse().unwrap();
        let cell = Arc::new(NextHopCell::default());
        let stop = Arc::new(AtomicBool::new(false));
        let target = NextHop::Neighbour(IpAddr::from([10, 250, 79, 2]));
        let follower = {
            let (cell, stop) = (cell.clone(), stop.clone());
            std::thread::spawn(move || follow_next_hop(ifindex, || target, cell, stop, Duration::from_secs(60)))
        };
        let within = |what: &str, want: Option<[u8; 6]>| {
            let start = Instant::now();
            while cell.get() != want {
                assert!(start.elapsed() < Duration::from_secs(3), "{what}: {:?}", cell.get());
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        within("first look", Some([2, 0, 0, 0, 0x79, 2]));
        // Another entry changes first: read past, its message does not hide the next hop's.
        ip(&format!("neigh replace 10.250.79.3 lladdr 02:00:00:00:79:33 dev {a} nud permanent"));
        ip(&format!("neigh replace 10.250.79.2 lladdr 02:00:00:00:79:22 dev {a} nud permanent"));
        within("the MAC replaced", Some([2, 0, 0, 0, 0x79, 0x22]));
        ip(&format!("neigh del 10.250.79.2 dev {a}"));
        within("the entry deleted", None);
        stop.store(true, Ordering::Relaxed);
        follower.join().unwrap();
    }

    #[test]
    fn neighbour_messages_are_read_for_the_entry_watched() {
        let message = |ifindex: u32, ip: [u8; 4]| {
            let mut n = NeighbourMessage::default();
            n.header.family = AddressFamily::Inet;
            n.header.ifindex = ifindex;
            n.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip.into())));
            let mut m = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::from(RouteNetlinkMessage::NewNeighbour(n)),
            );
            m.finalize();
            let mut buf = vec![0; m.header.length as usize];
            m.serialize(&mut buf[..]);
            buf
        };
        let watched = (IpAddr::from([10, 0, 0, 1]), 7);
        assert!(concerns(&message(7, [10, 0, 0, 1]), watched));
        assert!(!concerns(&message(8, [10, 0, 0, 1]), watched), "another interface");
        assert!(!concerns(&message(7, [10, 0, 0, 2]), watched), "another address");
        // Two messages in one read: the second is found.
        let two = [message(7, [10, 0, 0, 2]), message(7, [10, 0, 0, 1])].concat();
        assert!(concerns(&two, watched));
        // A length past the buffer is unreadable: looked at anyway.
        let mut cut = message(7, [10, 0, 0, 2]);
        cut.truncate(cut.len() - 1);
        assert!(concerns(&cut, watched));
        assert!(!concerns(&[], watched));
    }

    /// `lookup` answers for the address on the interface asked, as `ip neigh` shows it: the
    /// same address on another interface (at its own MAC) is not it, an address with no
    /// entry is none, and one being resolved (INCOMPLETE, no MAC yet) is none. Needs root.
    #[test]
    fn lookup_answers_for_the_address_on_the_interface_asked() {
        let (a, b, _gone) = veth_pair("tdl");
        ip(&format!("neigh add 10.250.78.5 lladdr 02:00:00:00:78:0a dev {a} nud permanent"));
        ip(&format!("neigh add 10.250.78.5 lladdr 02:00:00:00:78:0b dev {b} nud permanent"));
        ip(&format!("neigh add fe80::1 lladdr 02:00:00:00:78:16 dev {a} nud noarp"));
        ip(&format!("neigh add 10.250.78.6 dev {a} nud incomplete"));
        let index = |dev: &str| -> u32 {
            std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex")).unwrap().trim().parse().unwrap()
        };
        let v4 = IpAddr::from([10, 250, 78, 5]);
        assert_eq!(lookup(v4, index(&a)).unwrap(), Some([2, 0, 0, 0, 0x78, 0x0a]));
        assert_eq!(lookup(v4, index(&b)).unwrap(), Some([2, 0, 0, 0, 0x78, 0x0b]));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(lookup(v6, index(&a)).unwrap(), Some([2, 0, 0, 0, 0x78, 0x16]));
        assert_eq!(lookup(v6, index(&b)).unwrap(), None, "no entry on that interface");
        assert_eq!(lookup(IpAddr::from([10, 250, 78, 7]), index(&a)).unwrap(), None, "no entry at all");
        assert_eq!(lookup(IpAddr::from([10, 250, 78, 6]), index(&a)).unwrap(), None, "incomplete");
    }

    #[test]
    fn cell_round_trips_and_starts_unresolved() {
        let cell = NextHopCell::default();
        assert_eq!(cell.get(), None);
        cell.set(Some([0, 1, 2, 3, 4, 0xff]));
        assert_eq!(cell.get(), Some([0, 1, 2, 3, 4, 0xff]));
        cell.set(Some([0; 6]));
        assert_eq!(cell.get(), Some([0; 6]), "an all-zero MAC is still resolved");
        cell.set(None);
        assert_eq!(cell.get(), None);
    }
}
