//! The egress side of soft-unicast: outgoing connections from a shared egress address, inside
//! this server's port slice, so that their return traffic comes back to this server.
//!
//! The kernel picks the port, as for any connection, but only within the slice: the socket
//! is bound to the egress address with `IP_BIND_ADDRESS_NO_PORT` (the port is chosen at
//! `connect()`, per destination, so a slice's ports serve many more connections than it has
//! ports) and limited with `IP_LOCAL_PORT_RANGE` (Linux 6.3). The egress address must be
//! one of the host's own (for example on `lo`), as every server of the fleet has it.
//!
//! The kernel intersects a socket's range with `net.ipv4.ip_local_port_range` and, when the
//! two do not meet, silently uses the system range instead; so slices outside the system
//! range are not tried, and every port the kernel picks is checked to be in the slice.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};

use portslice::Plan;
use portslice::select::{Want, own_slices};

/// `IP_BIND_ADDRESS_NO_PORT` (linux/in.h).
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;
/// `IP_LOCAL_PORT_RANGE` (linux/in.h, Linux 6.3).
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

/// Where a connection may egress from: an address and this server's ports on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The egress address.
    pub addr: Ipv4Addr,
    /// First port of the slice.
    pub first: u16,
    /// Last port of the slice.
    pub last: u16,
}

/// The slices `server` owns on addresses whose tags match `want`, in address order. A server
/// egresses only from its own slices, which are all on addresses of its own data centre.
pub fn slices(plan: &Plan, want: &Want, server: &str) -> Vec<Slice> {
    own_slices(plan, want, server)
        .into_iter()
        .map(|(ip, first, last)| Slice { addr: Ipv4Addr::from(ip), first, last })
        .collect()
}

/// A socket of `kind` bound to `slice.addr` with its port to be chosen in the slice.
fn slice_socket(slice: &Slice, kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket we just opened and own from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    setsockopt(raw, IP_BIND_ADDRESS_NO_PORT, 1u32)?;
    let range = u32::from(slice.first) | (u32::from(slice.last) << 16);
    setsockopt(raw, IP_LOCAL_PORT_RANGE, range)
        .map_err(|e| io::Error::new(e.kind(), format!("IP_LOCAL_PORT_RANGE (Linux 6.3 or later): {e}")))?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(slice.addr).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the size given.
    let rc = unsafe { libc::bind(raw, (&raw const addr).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            format!(" (the host must hold it: `ip addr add {}/32 dev lo`, docs/soft-unicast.md)", slice.addr)
        } else {
            String::new()
        };
        return Err(io::Error::new(e.kind(), format!("binding to egress address {}: {e}{hint}", slice.addr)));
    }
    Ok(fd)
}

fn setsockopt(fd: libc::c_int, name: libc::c_int, value: u32) -> io::Result<()> {
    // SAFETY: `value` is a u32 that lives across the call; the size passed is its size.
    let rc = unsafe {
        libc::setsockopt(fd, libc::IPPROTO_IP, name, (&raw const value).cast(), size_of::<u32>() as libc::socklen_t)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn connect_fd(fd: &OwnedFd, remote: SocketAddrV4) -> io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: remote.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*remote.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: `addr` is a valid sockaddr_in of the size given.
    let rc = unsafe { libc::connect(raw, (&raw const addr).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Opens a TCP connection to `remote` from `slice`, with the MSS lowered to `mss` (so that
/// the return traffic fits the backbone if it must cross it), if given.
pub fn tcp(slice: &Slice, remote: SocketAddrV4, mss: Option<u16>) -> io::Result<TcpStream> {
    let fd = slice_socket(slice, libc::SOCK_STREAM)?;
    if let Some(mss) = mss {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let value = libc::c_int::from(mss);
        // SAFETY: as in `setsockopt`, for TCP_MAXSEG (an int).
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&raw const value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    connect_fd(&fd, remote)?;
    Ok(TcpStream::from(fd))
}

/// Opens a UDP socket connected to `remote` from `slice`.
pub fn udp(slice: &Slice, remote: SocketAddrV4) -> io::Result<UdpSocket> {
    let fd = slice_socket(slice, libc::SOCK_DGRAM)?;
    connect_fd(&fd, remote)?;
    Ok(UdpSocket::from(fd))
}

/// The system's ephemeral port range (`net.ipv4.ip_local_port_range`).
pub fn system_port_range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Ok((lo, hi)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("ip_local_port_range reads `{}`", text.trim()))),
    }
}

/// `slices` cut to the system's port range, empty ones left out; an error that says what to
/// change when none is left.
pub fn within_system_range(slices: &[Slice], (lo, hi): (u16, u16)) -> io::Result<Vec<Slice>> {
    let usable: Vec<Slice> = slices
        .iter()
        .filter(|s| s.first <= hi && s.last >= lo)
        .map(|s| Slice { first: s.first.max(lo), last: s.last.min(hi), ..*s })
        .collect();
    if usable.is_empty() && !slices.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "this server's egress slices lie outside net.ipv4.ip_local_port_range ({lo}-{hi}), which the \
                 kernel confines every socket to: widen it, e.g. sysctl -w net.ipv4.ip_local_port_range='1024 65535'"
            ),
        ));
    }
    Ok(usable)
}

/// Tries `slices` in order until one gives a connection whose port is in the slice. Only a
/// slice that has no port or address to give goes on to the next (its ports all taken toward
/// `remote`: `EADDRNOTAVAIL` or `EADDRINUSE`, and `EAGAIN` from a UDP socket's connect; its
/// address not on this host): any other
/// error (refused, unreachable, timed out) is the remote's answer, and is returned at once,
/// as trying every slice again only sent N connection attempts (or waited N SYN timeouts).
pub fn first_available<T>(
    slices: &[Slice],
    mut open: impl FnMut(&Slice) -> io::Result<T>,
    port: impl Fn(&T) -> io::Result<u16>,
) -> io::Result<(Slice, T)> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no egress slice matches the wanted tags on this server");
    for s in slices {
        match open(s) {
            Ok(t) => {
                let p = port(&t)?;
                if !(s.first..=s.last).contains(&p) {
                    return Err(io::Error::other(format!(
                        "the kernel chose port {p}, outside the slice {}-{}: IP_LOCAL_PORT_RANGE was not honoured",
                        s.first, s.last
                    )));
                }
                return Ok((*s, t));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse | io::ErrorKind::WouldBlock
                ) =>
            {
                last = e
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// `transitd connect`: the first slice that gives a connection, its local address written
/// to `out`, `send` sent and one line of the answer written. No answer within two seconds
/// (or a closed connection without one) is an error (`TimedOut`), not an empty line.
pub fn run(
    out: &mut dyn io::Write,
    slices: &[Slice],
    remote: SocketAddrV4,
    udp: bool,
    mss: u16,
    send: Option<&str>,
) -> io::Result<()> {
    use std::io::BufRead;
    let timeout = Some(std::time::Duration::from_secs(2));
    let no_answer = || io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {remote} within 2 s"));
    let slices = within_system_range(slices, system_port_range()?)?;
    let slices = &slices[..];
    if udp {
        let (_, sock) = first_available(slices, |s| self::udp(s, remote), |u| Ok(u.local_addr()?.port()))?;
        writeln!(out, "udp {} -> {remote}", sock.local_addr()?)?;
        out.flush()?;
        if let Some(line) = send {
            sock.send(format!("{line}\n").as_bytes())?;
            sock.set_read_timeout(timeout)?;
            let mut buf = [0u8; 2048];
            let n = sock.recv(&mut buf).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => no_answer(),
                _ => e,
            })?;
            writeln!(out, "{}", String::from_utf8_lossy(&buf[..n]).trim_end())?;
        }
    } else {
        let (_, mut stream) = first_available(slices, |s| tcp(s, remote, Some(mss)), |t| Ok(t.local_addr()?.port()))?;
        writeln!(out, "tcp {} -> {remote}", stream.local_addr()?)?;
        out.flush()?;
        if let Some(line) = send {
            io::Write::write_all(&mut stream, format!("{line}\n").as_bytes())?;
            stream.set_read_timeout(timeout)?;
            // What came is printed, a line or not (a server that answers without a newline,
            // then waits or closes); nothing at all is an error.
            let mut answer = Vec::new();
            let read = std::io::BufReader::new(&stream).read_until(b'\n', &mut answer);
            match read {
                Err(e) if answer.is_empty() => {
                    return Err(match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => no_answer(),
                        _ => e,
                    });
                }
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{remote} closed the connection without an answer"),
                    ));
                }
                _ => writeln!(out, "{}", String::from_utf8_lossy(&answer).trim_end())?,
            }
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(first: u16) -> Slice {
        Slice { addr: Ipv4Addr::new(198, 18, 200, 1), first, last: first + 99 }
    }

    /// A slice with no port to give is passed over; the remote's own answer (refused) ends
    /// the search at once: every slice tried against a closed port sent a SYN each, and
    /// against a blackholed one waited a SYN timeout each (a quarter of an hour).
    #[test]
    fn only_a_slice_without_a_port_goes_on_to_the_next() {
        let slices = [slice(1000), slice(2000), slice(3000)];
        let mut tried = Vec::new();
        let e = first_available(
            &slices,
            |s| {
                tried.push(s.first);
                Err::<u16, _>(io::Error::from(match s.first {
                    1000 => io::ErrorKind::AddrNotAvailable,
                    _ => io::ErrorKind::ConnectionRefused,
                }))
            },
            |p| Ok(*p),
        )
        .unwrap_err();
        assert_eq!((e.kind(), tried), (io::ErrorKind::ConnectionRefused, vec![1000, 2000]));
        let mut tried = Vec::new();
        let (s, port) = first_available(
            &slices,
            |s| {
                tried.push(s.first);
                // A UDP socket's connect says EAGAIN when no port is left.
                match s.first {
                    1000 => Err(io::Error::from(io::ErrorKind::AddrInUse)),
                    2000 => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                    _ => Ok(s.first + 5),
                }
            },
            |p| Ok(*p),
        )
        .unwrap();
        assert_eq!((s.first, port, tried), (3000, 3005, vec![1000, 2000, 3000]));
    }

    /// `--send` prints the answer's first line; a server that says nothing for two seconds,
    /// or closes without a word, is an error, where nothing was printed and the exit said
    /// success. Against listeners on the loopback address, a slice in the system range.
    #[test]
    fn send_without_an_answer_is_an_error() {
        use std::io::{Read as _, Write as _};
        let (lo, hi) = system_port_range().unwrap();
        let slices = [Slice { addr: Ipv4Addr::LOCALHOST, first: lo, last: hi }];
        let serve = |reply: Option<&'static [u8]>| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let std::net::SocketAddr::V4(at) = listener.local_addr().unwrap() else { unreachable!() };
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = [0u8; 6];
                conn.read_exact(&mut line).unwrap();
                match reply {
                    Some(r) if r.ends_with(b"...") => {
                        conn.write_all(r).unwrap(); // no newline, then silence
                        std::thread::sleep(std::time::Duration::from_secs(3));
                    }
                    Some(r) => conn.write_all(r).unwrap(),
                    None if line == *b"quiet\n" => std::thread::sleep(std::time::Duration::from_secs(3)),
                    None => {} // closed at once
                }
            });
            (at, server)
        };
        let mut out = Vec::new();
        let (at, server) = serve(Some(b"hello there\nmore\n"));
        run(&mut out, &slices, at, false, 1400, Some("hello")).unwrap();
        server.join().unwrap();
        let printed = String::from_utf8(out).unwrap();
        assert!(printed.ends_with(&format!(" -> {at}\nhello there\n")), "{printed}");
        let mut out = Vec::new();
        let (at, server) = serve(Some(b"partial..."));
        run(&mut out, &slices, at, false, 1400, Some("hello")).unwrap();
        server.join().unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("\npartial...\n"), "what came is printed");
        let (at, server) = serve(None);
        let e = run(&mut Vec::new(), &slices, at, false, 1400, Some("quiet")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        server.join().unwrap();
        let (at, server) = serve(None);
        let e = run(&mut Vec::new(), &slices, at, false, 1400, Some("close")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        server.join().unwrap();
    }
}
