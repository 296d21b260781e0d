//! BIRD 2's side: the include file of static routes, and `configure` over its control socket.
//!
//! The include defines two static protocols, `transitd4` and `transitd6`, whose routes are
//! the prefixes to announce (as `blackhole`: the routes exist to be exported by BGP, never
//! into a kernel table). The operator's BGP protocols export them, e.g. `export where proto
//! = "transitd4";` (examples/bgp/bird.conf). Both protocols are always defined, empty when
//! nothing is announced, so that filters naming them stay valid. While a stop drains, each
//! route carries the GRACEFUL_SHUTDOWN community (RFC 8326), which BGP exports with it
//! ([`Marking`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Announcements;

/// The first line of every include file transitd writes with protocols in it.
const HEADER: &str = "# Written by transitd (the [bgp] section of its configuration): the prefixes this server\n";

/// What the routes carry besides their prefixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Marking {
    /// Nothing: announced as they are.
    #[default]
    Plain,
    /// The well-known community GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326 §3), on every route: the
    /// server is about to withdraw them all. Peers that honour it (§4.1: LOCAL_PREF lowered
    /// to 0) move the traffic to other paths while this server still forwards it, so that the
    /// withdrawal, when it comes, finds none left here to lose.
    GracefulShutdown,
}

/// The include file's text for `routes`.
pub fn render(routes: &Announcements) -> String {
    render_marked(routes, Marking::Plain)
}

/// The include file's text for `routes`, each marked as `marking` says (a static route's
/// block of filter commands sets its attributes; BGP exports them with it).
pub fn render_marked(routes: &Announcements, marking: Marking) -> String {
    let mut out = String::from(HEADER);
    out.push_str("# announces. Do not edit; transitd rewrites it whole and reconfigures BIRD.\n");
    let attributes = match marking {
        Marking::Plain => "",
        Marking::GracefulShutdown => " { bgp_community.add((65535, 0)); }",
    };
    if marking == Marking::GracefulShutdown && !routes.0.is_empty() {
        out.push_str("# transitd is stopping: GRACEFUL_SHUTDOWN (RFC 8326) until it withdraws them.\n");
    }
    for (name, family, v4) in [("transitd4", "ipv4", true), ("transitd6", "ipv6", false)] {
        out.push_str(&format!("protocol static {name} {{\n  {family};\n"));
        for net in routes.0.iter().filter(|n| matches!(n, IpNet::V4(_)) == v4) {
            out.push_str(&format!("  route {net} blackhole{attributes};\n"));
        }
        out.push_str("}\n");
    }
    out
}

/// Why BIRD did not take the routes. The OS error is part of the message, not a source: a
/// report of the chain would say it twice.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// The include file could not be written.
    #[error("writing {path}: {reason}")]
    Write {
        /// The include file.
        path: String,
        /// Why.
        reason: std::io::Error,
    },
    /// BIRD could not be reached or stopped answering.
    #[error("BIRD's control socket {path}: {reason}")]
    Socket {
        /// The control socket.
        path: String,
        /// Why.
        reason: std::io::Error,
    },
    /// BIRD answered with an error (its text).
    #[error("BIRD refused the configuration: {0}")]
    Refused(String),
}

/// How BIRD took the routes.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// It read its configuration again, the include with it.
    Configured,
    /// It refused its configuration (its words: an operator's unapplied edit, say), so it
    /// still ran the old one and its routes; for a withdrawal, both protocols were disabled
    /// instead, which takes their routes away whatever the files say. The next `configure`
    /// BIRD takes enables them again.
    Disabled(String),
}

/// Writes `routes` into `include` (atomically: a reader sees the old file or the new one)
/// and has BIRD read its configuration again. A withdrawal (`withdraws`: some route BIRD
/// may announce is not in `routes`) does not depend on the rest of BIRD's configuration
/// being sound: if BIRD refuses it, the protocols are disabled, every route withdrawn
/// (failing closed: BIRD would keep announcing what transitd no longer serves), until a
/// `configure` BIRD takes.
pub fn apply(include: &Path, socket: &Path, routes: &Announcements, withdraws: bool) -> Result<Applied, BirdError> {
    apply_marked(include, socket, routes, Marking::Plain, withdraws)
}

/// [`apply`], the routes marked as `marking` says.
pub fn apply_marked(
    include: &Path,
    socket: &Path,
    routes: &Announcements,
    marking: Marking,
    withdraws: bool,
) -> Result<Applied, BirdError> {
    write_text(include, &render_marked(routes, marking))?;
    match command(socket, "configure") {
        Ok(()) => Ok(Applied::Configured),
        Err(BirdError::Refused(why)) if routes.0.is_empty() || withdraws => {
            // Both, even if one fails: each holds one family's routes.
            let disabled = ["disable transitd4", "disable transitd6"].map(|c| command(socket, c));
            match disabled.into_iter().find_map(Result::err) {
                None => Ok(Applied::Disabled(why)),
                Some(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Leaves `include` defining nothing (a comment), where transitd no longer writes: an
/// include that moved must not leave its protocols defined twice (BIRD refuses a symbol
/// defined twice, and with it every configuration).
pub fn vacate(include: &Path) -> Result<(), BirdError> {
    write_text(include, "# Written by transitd, which no longer announces through this file.\n")
}

/// Vacates the include files beside `include` that an earlier run wrote (its path changed
/// while no guard ran: across a restart, or `[bgp]` removed and added again): under one
/// `include "…/*.conf"` BIRD would find transitd4 defined twice and refuse everything.
/// Returns the files vacated. A file whose lock a live guard holds is another transitd's
/// (two instances, each with its own BIRD, writing one directory): left alone.
pub fn vacate_others(include: &Path) -> Vec<std::path::PathBuf> {
    let Some(entries) = include.parent().and_then(|d| std::fs::read_dir(d).ok()) else { return Vec::new() };
    let ours = |path: &Path| {
        let mut head = [0u8; HEADER.len()];
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
            && head == HEADER.as_bytes()
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p != include && ours(p) && !guarded(p) && vacate(p).is_ok())
        .collect()
}

/// Whether a live guard holds the lock of include file `include` (its lock file exists and
/// cannot be taken).
fn guarded(include: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(super::lock_path(include)) else { return false };
    matches!(Flock::lock(file, FlockArg::LockExclusiveNonblock), Err((_, nix::errno::Errno::EWOULDBLOCK)))
}

/// Writes the include file only.
pub fn write_include(include: &Path, routes: &Announcements) -> Result<(), BirdError> {
    write_text(include, &render(routes))
}

fn write_text(include: &Path, text: &str) -> Result<(), BirdError> {
    crate::files::replace(include, text.as_bytes())
        .map_err(|reason| BirdError::Write { path: include.display().to_string(), reason })
}

/// Whether BIRD answers on its control socket (`show status`, which changes nothing).
pub fn alive(socket: &Path) -> Result<(), BirdError> {
    command(socket, "show status")
}

/// Whether BIRD runs the protocols the include file defines (`show protocols transitd4`):
/// `configure` succeeds whether or not its configuration includes the file, and then it
/// announces nothing of it. `Refused` when it has no such protocol.
pub fn included(socket: &Path) -> Result<(), BirdError> {
    command(socket, "show protocols transitd4")
}

/// A `birdc` command (`configure`, `disable transitd4`), spoken on the control socket: each
/// reply line is a four-digit code, a `-` when more lines follow or a space on the last;
/// codes from 8000 are errors.
fn command(socket: &Path, command: &str) -> Result<(), BirdError> {
    exchange(socket, command, EXCHANGE_TIME)
}

/// [`command`], the whole exchange within `time`.
fn exchange(socket: &Path, command: &str, time: Duration) -> Result<(), BirdError> {
    let err = |reason| BirdError::Socket { path: socket.display().to_string(), reason };
    let deadline = Instant::now() + time;
    let stream = connect(socket, time).map_err(err)?;
    let mut reader = BufReader::new(Deadlined { stream: stream.try_clone().map_err(err)?, deadline });
    let greeting = last_reply(&mut reader).map_err(err)?;
    if !greeting.0.starts_with('0') {
        return Err(BirdError::Refused(greeting.1));
    }
    (&stream).write_all(format!("{command}\n").as_bytes()).map_err(err)?;
    let (code, text) = last_reply(&mut reader).map_err(err)?;
    match code.as_bytes().first() {
        Some(b'0') => Ok(()),
        _ => Err(BirdError::Refused(text)),
    }
}

/// Connects to the control socket within `time`. A blocking connect waits without end once
/// BIRD stops accepting and its backlog is full (connections given up on stay queued), and
/// the guard, which must withdraw, would wait with it.
fn connect(socket: &Path, time: Duration) -> std::io::Result<UnixStream> {
    // A Unix socket's blocking connect waits for room in the backlog as long as the send
    // timeout says (a non-blocking one fails at once on a full backlog: a moment's crowd of
    // birdc clients would read as BIRD gone).
    let stream = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    stream.set_write_timeout(Some(time.max(Duration::from_millis(1))))?;
    stream.connect(&socket2::SockAddr::unix(socket)?)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(stream)))
}

/// The time one exchange with BIRD (its greeting, our command, its reply) may take in all.
const EXCHANGE_TIME: Duration = Duration::from_secs(10);
/// The longest reply line read (its newline included): a longer one is refused.
pub const MAX_REPLY_LINE: usize = 4096;
/// The most of a reply's text kept for a message.
pub const MAX_REPLY_TEXT: usize = 64 << 10;

/// The control socket, every read of which waits at most until the exchange's deadline: a
/// BIRD that answers slowly, or without end, holds neither the announcer nor the guard that
/// must withdraw past it (a timeout per read did not bound a drip of bytes).
struct Deadlined {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let why = "BIRD did not finish its reply in time".to_string();
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Reads reply lines up to the last of one reply; returns its code and the reply's text
/// (each line cut at [`MAX_REPLY_LINE`] bytes is refused, the text kept to
/// [`MAX_REPLY_TEXT`]: what a socket sends never grows without bound here). Nothing past
/// the reply's last line is consumed: the greeting and the command's reply are read from
/// one reader. Public for the `bird_reply` fuzz target, which holds it to a model of
/// BIRD's framing.
pub fn last_reply(reader: &mut impl BufRead) -> std::io::Result<(String, String)> {
    let mut text = Vec::new();
    let mut kept = 0;
    loop {
        // Bytes, read as text afterwards: a reply may quote a path that is not UTF-8 (a
        // refused `configure` naming the file), and reading it as an I/O error would not
        // count as BIRD refusing, so nothing would be withdrawn.
        let mut bytes = Vec::new();
        let n = reader.by_ref().take(MAX_REPLY_LINE as u64).read_until(b'\n', &mut bytes)?;
        let line = String::from_utf8_lossy(&bytes);
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "BIRD closed the socket"));
        }
        if n == MAX_REPLY_LINE && !line.ends_with('\n') {
            let why = format!("a line of BIRD's reply is longer than {MAX_REPLY_LINE} bytes");
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        let line = line.trim_end();
        // Four bytes of code, unless the fourth ends inside a character (no code, then).
        let at = line.len().min(4);
        let (code, rest) = if line.is_char_boundary(at) { line.split_at(at) } else { ("", line) };
        let coded = code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit());
        let said = if coded { rest.get(1..).unwrap_or("") } else { line.trim_start() };
        // Each piece kept costs its separator and its place too: empty lines count.
        if kept + said.len() + 2 <= MAX_REPLY_TEXT {
            kept += said.len() + 2;
            text.push(said.to_string());
        }
        if coded && (rest.is_empty() || rest.starts_with(' ')) {
            return Ok((code.to_string(), text.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_end_at_a_code_followed_by_a_space() {
        let text = "0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n";
        let (code, said) = last_reply(&mut text.as_bytes()).unwrap();
        assert_eq!(
            (code.as_str(), said.as_str()),
            ("0003", "Reading configuration from /etc/bird/bird.conf; Reconfigured")
        );
        let text = "0002-Reading configuration from bird.conf\n8002 routes.conf:1:1 syntax error, unexpected GARBAGE\n";
        assert_eq!(last_reply(&mut text.as_bytes()).unwrap().0, "8002");
        let text = "1007-Table master4:\n 203.0.113.0/24 blackhole\n0000 \n";
        assert_eq!(last_reply(&mut text.as_bytes()).unwrap().0, "0000");
        // A line whose fourth byte ends inside a character is text, not a panic.
        let text = " ab\u{e9}\n0003 x\n";
        assert_eq!(last_reply(&mut text.as_bytes()).unwrap(), ("0003".to_string(), "ab\u{e9}; x".to_string()));
    }

    /// What BIRD's socket sends never grows without bound: a line without end is refused at
    /// 4 KiB, a reply of endless continuation lines keeps 64 KiB of text, and an exchange
    /// ends at its deadline however the bytes drip in (a timeout per read did not bound it:
    /// a stand-in that never stopped talking grew the guard to gigabytes).
    #[test]
    fn a_reply_without_end_is_bounded() {
        let endless_line = vec![b'x'; 1 << 20];
        let e = last_reply(&mut endless_line.as_slice()).unwrap_err();
        assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
        let mut long: Vec<u8> = "0001-yyyyyyyy\n".repeat(100_000).into_bytes();
        long.extend_from_slice(b"0000 done\n");
        let (code, text) = last_reply(&mut long.as_slice()).unwrap();
        assert_eq!(code, "0000");
        assert!(text.len() <= MAX_REPLY_TEXT, "{} bytes kept", text.len());
        // Empty continuation lines keep nothing, but were each a String of their own.
        let mut empty: Vec<u8> = "0001-\n".repeat(1_000_000).into_bytes();
        empty.extend_from_slice(b"0000 done\n");
        let (_, text) = last_reply(&mut empty.as_slice()).unwrap();
        assert!(text.len() <= MAX_REPLY_TEXT, "{} bytes kept", text.len());

        // A stand-in BIRD that greets, then drips a byte every 100 ms without ending a line.
        let dir = std::env::temp_dir().join(format!("transitd-bird-drip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.ctl");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let talker = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(b"0001 BIRD ready.\n");
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(100));
                if s.write_all(b"z").is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let result = exchange(&path, "configure", Duration::from_secs(1));
        let took = started.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(result, Err(BirdError::Socket { .. })), "{result:?}");
        // 20 s of drips, each within a per-read timeout; the deadline ends it at 1 s.
        assert!(took < Duration::from_secs(5), "the exchange ended at its deadline: {took:?}");
        talker.join().unwrap();
    }

    /// A refusal that quotes a path not in UTF-8 is a refusal (BIRD's `8002` naming a
    /// Latin-1 file): read as an I/O error it disabled nothing, and BIRD kept the routes.
    #[test]
    fn a_reply_that_is_not_utf8_is_still_read() {
        let text = b"0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/caf\xe9.conf: No such file\n";
        let (code, said) = last_reply(&mut text.as_slice()).unwrap();
        assert_eq!(code, "8002");
        assert!(said.ends_with("/etc/bird/caf\u{fffd}.conf: No such file"), "{said}");
    }

    /// A BIRD that has stopped accepting, its backlog full: the exchange gives up at its
    /// deadline (a blocking connect waited without end, and the guard with it).
    #[test]
    fn a_bird_that_accepts_nothing_is_given_up_on_in_time() {
        let dir = std::env::temp_dir().join(format!("transitd-bird-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.ctl");
        let listener = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        listener.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
        listener.listen(0).unwrap();
        // Fill the backlog: queued connections nobody accepts, until one would wait.
        let mut queued = Vec::new();
        loop {
            let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            if s.connect(&socket2::SockAddr::unix(&path).unwrap()).is_err() {
                break;
            }
            queued.push(s);
            assert!(queued.len() < 1000, "the backlog never filled");
        }
        let (done, said) = std::sync::mpsc::channel();
        let asking = path.clone();
        std::thread::spawn(move || done.send(exchange(&asking, "show status", Duration::from_secs(1))));
        let result = said.recv_timeout(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(result, Ok(Err(BirdError::Socket { .. }))), "{result:?}");
        drop((listener, queued));
    }

    #[test]
    fn both_protocols_are_defined_even_when_empty() {
        let text = render(&Announcements::none());
        assert!(text.contains("protocol static transitd4 {\n  ipv4;\n}\n"));
        assert!(text.contains("protocol static transitd6 {\n  ipv6;\n}\n"));
        let routes = Announcements(["203.0.113.0/24", "2001:db8::/32"].iter().map(|p| p.parse().unwrap()).collect());
        let text = render(&routes);
        assert!(text.contains("ipv4;\n  route 203.0.113.0/24 blackhole;\n}"));
        assert!(text.contains("ipv6;\n  route 2001:db8::/32 blackhole;\n}"));
    }

    /// Draining, every route of both families carries GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326
    /// §3: 0xFFFF0000), and the file still starts with the header that marks it transitd's.
    #[test]
    fn a_drain_marks_every_route_graceful_shutdown() {
        let routes = Announcements(["203.0.113.0/24", "2001:db8::/32"].iter().map(|p| p.parse().unwrap()).collect());
        let text = render_marked(&routes, Marking::GracefulShutdown);
        assert!(text.starts_with(HEADER), "{text}");
        let marked = "blackhole { bgp_community.add((65535, 0)); };";
        assert!(text.contains(&format!("ipv4;\n  route 203.0.113.0/24 {marked}\n}}")), "{text}");
        assert!(text.contains(&format!("ipv6;\n  route 2001:db8::/32 {marked}\n}}")), "{text}");
        assert_eq!(render_marked(&routes, Marking::Plain), render(&routes));
    }
}
