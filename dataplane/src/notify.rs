//! systemd's service notifications (sd_notify(3)): readiness, reloads, stopping and the
//! watchdog, as datagrams to the socket in `$NOTIFY_SOCKET`. Outside systemd (no such
//! variable) every call does nothing.
//!
//! The watchdog is fed only while every worker is alive: `run` sends `WATCHDOG=1` when each
//! worker has published its counters since the last time it looked, so a worker that is
//! stuck (or dead) makes systemd restart the service after `WatchdogSec`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where systemd listens, and a socket to tell it from.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names (a path, or `@name` for an abstract socket);
    /// `None` when it is unset or unusable (not run by systemd with `Type=notify`).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let to = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
            None => SocketAddr::from_pathname(path).ok()?,
        };
        Some(Notifier { socket: UnixDatagram::unbound().ok()?, to })
    }

    /// Sends `state` (newline-separated `KEY=value` lines); failures are reported, not fatal:
    /// systemd may be restarting.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            log_line!("transitd: telling systemd {state:?} failed: {e}");
        }
    }
}

/// How often to feed the watchdog: half the interval systemd set (`$WATCHDOG_USEC`), if it
/// set one for this process (`$WATCHDOG_PID`, when present, is ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("transitd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier =
            Notifier { socket: UnixDatagram::unbound().unwrap(), to: SocketAddr::from_pathname(&path).unwrap() };
        notifier.send("READY=1\nSTATUS=running");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=running");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
