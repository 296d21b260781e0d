//! The interface's own packet counters, as `ip -s link` shows them (sysfs
//! `/sys/class/net/IF/statistics`): what the driver says it received, sent and dropped,
//! beside what transitd's sockets counted, so that a run where frames vanish says where
//! (copy mode on veth, for one, drops part of what it is handed to send and counts it here
//! as `tx_dropped`). And its MTU, which the data plane holds what it sends to; its name now
//! (it may be renamed under a run) and its own addresses, which no customer prefix may hold,
//! both asked of the kernel over netlink.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Interface `ifname`'s MTU now (`None` if sysfs does not say).
pub fn mtu(ifname: &str) -> Option<usize> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(ifname).join("mtu")).ok()?.trim().parse().ok()
}

/// Interface `ifname`'s operational state as the kernel reports it (RFC 2863's ifOperStatus,
/// in sysfs: `up`, `down`, `lowerlayerdown`, `dormant`, `unknown`, ...); `None` if sysfs does
/// not say.
pub fn operstate(ifname: &str) -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(ifname).join("operstate")).ok()?;
    Some(text.trim().to_string())
}

/// The name interface `ifindex` has now; `None` when no interface has that index.
pub fn name_of(ifindex: u32) -> io::Result<Option<String>> {
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    let socket = ask(RouteNetlinkMessage::GetLink(link), 0)?;
    let mut rx = vec![0u8; 64 * 1024];
    let size = socket.recv(&mut &mut rx[..], 0)?;
    match read_message(&rx[..size.min(rx.len())])?.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            Ok(link.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name),
                _ => None,
            }))
        }
        NetlinkPayload::Error(e) if e.to_io().raw_os_error() == Some(libc::ENODEV) => Ok(None),
        NetlinkPayload::Error(e) => Err(e.to_io()),
        other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("netlink: unexpected answer {other:?}"))),
    }
}

/// The addresses interface `ifindex` has now (`ip address show dev IF`): the host's own on
/// that link. One dump of every interface's addresses (RTM_GETADDR), kept to this one's.
pub fn addresses(ifindex: u32) -> io::Result<Vec<IpAddr>> {
    let socket = ask(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP)?;
    let mut found = Vec::new();
    let mut rx = vec![0u8; 64 * 1024];
    // The dump comes in reads of several messages each, and ends with NLMSG_DONE.
    loop {
        let size = socket.recv(&mut &mut rx[..], 0)?;
        let mut bytes = &rx[..size.min(rx.len())];
        while !bytes.is_empty() {
            let (len, message) = (message_len(bytes)?, read_message(bytes)?);
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) if a.header.index == ifindex => {
                    // IPv4's own address is IFA_LOCAL (IFA_ADDRESS is the peer's on a
                    // point-to-point link); IPv6 gives only IFA_ADDRESS.
                    let local = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    found.extend(local.or_else(|| {
                        a.attributes.iter().find_map(|x| match x {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    }));
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                _ => {}
            }
            // Messages are 4-byte aligned (NLMSG_ALIGN).
            bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
    }
}

/// Sends `message` as a request (with `flags` besides NLM_F_REQUEST) on a new rtnetlink
/// socket, from which the answer is read.
fn ask(message: RouteNetlinkMessage, flags: u16) -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    let mut request = NetlinkMessage::new(header, NetlinkPayload::from(message));
    request.finalize();
    let mut buf = vec![0; request.header.length as usize];
    request.serialize(&mut buf[..]);
    socket.send(&buf[..], 0)?;
    Ok(socket)
}

/// The length of the netlink message `bytes` start with, as its header says (at least a
/// header's, at most what `bytes` hold).
fn message_len(bytes: &[u8]) -> io::Result<usize> {
    const HEADER: usize = 16;
    let len = bytes.first_chunk::<4>().map_or(0, |b| u32::from_ne_bytes(*b) as usize);
    if len < HEADER || len > bytes.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("netlink: a message of {len} bytes")));
    }
    Ok(len)
}

/// The netlink message `bytes` start with.
fn read_message(bytes: &[u8]) -> io::Result<NetlinkMessage<RouteNetlinkMessage>> {
    let message = bytes.get(..message_len(bytes)?).unwrap_or_default();
    NetlinkMessage::deserialize(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}")))
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

    /// `lo` is ifindex 1 in every network namespace (LOOPBACK_IFINDEX), and no interface
    /// has the largest index. Its addresses are those iproute2 lists, whatever they are (none
    /// in a namespace made with `unshare -n`; an anycast address on some hosts).
    #[test]
    fn names_and_addresses_are_the_kernels() {
        assert_eq!(name_of(1).unwrap().as_deref(), Some("lo"));
        assert_eq!(name_of(i32::MAX as u32).unwrap(), None);
        // `1: lo    inet 127.0.0.1/8 scope host lo ...`: the fourth field, without its length.
        let listed = std::process::Command::new("ip").args(["-o", "address", "show", "dev", "lo"]).output().unwrap();
        assert!(listed.status.success());
        let mut expected: Vec<IpAddr> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
            .collect();
        let mut read = addresses(1).unwrap();
        expected.sort();
        read.sort();
        assert_eq!(read, expected);
    }
}
