//! `[bgp]` as data: where BIRD is, when to withdraw (and how long a stop drains first), and
//! how long a prefix a reload removes is held after its withdrawal. What is announced is
//! computed from the rest of the snapshot (anycast, customers, egress) by `crate::bgp`.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Builder;
use crate::config::{BgpSection, Integer};

/// How this server announces itself through BIRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bgp {
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// The include file transitd writes (BIRD's configuration includes it).
    pub bird_include: PathBuf,
    /// Silence (of a worker, or of transitd as a whole) after which everything is withdrawn.
    pub withdraw_after: Duration,
    /// How long the run must have been well after a withdrawal before announcing again.
    pub announce_after: Duration,
    /// How long a stop announces every route with GRACEFUL_SHUTDOWN (RFC 8326), forwarding
    /// all the while, before it withdraws them (zero: at once).
    pub graceful_shutdown: Duration,
    /// Withdraw a customer prefix while every tunnel its routes take is down.
    pub withdraw_customers_without_tunnels: bool,
    /// How long a customer prefix a reload removes is held after its withdrawal, its
    /// traffic dropped ([`super::Withdrawn`]).
    pub withdrawn_grace: Duration,
}

impl Builder<'_> {
    pub(super) fn bgp(&mut self, section: &BgpSection) -> Bgp {
        let mut path = |p: &Spanned<String>, what: &str| -> PathBuf {
            let path = PathBuf::from(p.get_ref());
            if !path.is_absolute() {
                self.err(&p.span(), format!("{what} `{}` is not an absolute path", p.get_ref()));
            }
            path
        };
        let bird_socket = path(&section.bird_socket, "bird_socket");
        let bird_include = path(&section.bird_include, "bird_include");
        if bird_include == bird_socket {
            let why = "bird_include is bird_socket's path: run would write its routes over BIRD's control socket";
            // At the one written: a default has no place in the file (it would be said at 1:1).
            let written = [&section.bird_include, &section.bird_socket].map(|p| p.span());
            let at = written.into_iter().find(|span| !span.is_empty()).unwrap_or_default();
            self.err(&at, why.to_string());
        }
        // At least five of the supervisor's ticks (100 ms, and workers publish as often):
        // at 100 ms the guard's check came before the next word and announcements flapped.
        let withdraw_after = self.milliseconds(&section.withdraw_after_ms, "withdraw_after_ms", 500..=60_000);
        let announce_after = self.milliseconds(&section.announce_after_ms, "announce_after_ms", 0..=600_000);
        // Half a minute at most: the packaged unit's stop waits TimeoutStopSec (60 s) for the
        // drain, the guard's withdrawal (16 s at most) and the final report together.
        let graceful_shutdown = self.milliseconds(&section.graceful_shutdown_ms, "graceful_shutdown_ms", 0..=30_000);
        // Upstreams converge on a withdrawal in seconds, on the Internet at large in minutes;
        // ten minutes at most, as a hold, so that a prefix taken for other use is not kept
        // from it for longer.
        let withdrawn_grace = self.milliseconds(&section.withdrawn_grace_ms, "withdrawn_grace_ms", 0..=600_000);
        let withdraw_customers_without_tunnels =
            section.withdraw_customers_without_tunnels.as_ref().is_some_and(|w| *w.get_ref());
        Bgp {
            bird_socket,
            bird_include,
            withdraw_after,
            announce_after,
            graceful_shutdown,
            withdraw_customers_without_tunnels,
            withdrawn_grace,
        }
    }

    /// The milliseconds written at `v` when they are in `range`; else said there, with the
    /// range, and held to it (a stand-in: the configuration is refused).
    fn milliseconds(&mut self, v: &Spanned<Integer>, what: &str, range: RangeInclusive<u64>) -> Duration {
        if super::within(v, range.clone()).is_none() {
            self.err(&v.span(), format!("{what} {} is not in {}..={}", v.get_ref(), range.start(), range.end()));
        }
        Duration::from_millis(super::held_to(v, range))
    }
}
