//! Frame I/O: one trait, [`FrameIo`], that every backend implements (pcap replay, in-memory
//! frames, AF_XDP), so workers, tests and benchmarks run the same pipeline on any of them.
//!
//! Like smoltcp's `phy::Device`, moved to batches: a backend receives up to [`BATCH_SIZE`](crate::pipeline::BATCH_SIZE)
//! frames into buffers it owns, lends them to the caller's processing function as one
//! batch, then transmits the frames whose verdict is `Tx` and recycles the rest.

pub mod afxdp;
pub mod capture;
pub mod memory;
pub mod pcap;

use crate::pipeline::{Frame, Spill};

/// Where a backend's frame buffers are, by count (a live backend's fixed pool: AF_XDP's UMEM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCount {
    /// Frames in the pool.
    pub total: u64,
    /// On the free list.
    pub free: u64,
    /// Given to the kernel to receive into, not yet received.
    pub in_fill: u64,
    /// Given to the kernel to send, not yet completed.
    pub in_tx: u64,
    /// Held between polls: the first frames of a packet whose last has not arrived.
    pub held: u64,
}

impl FrameCount {
    /// True when every frame is accounted for exactly once.
    pub fn is_conserved(&self) -> bool {
        self.free + self.in_fill + self.in_tx + self.held == self.total
    }
}

/// A backend's own counters (the pipeline counts verdicts): what run's report, `transitd
/// stats` and the metrics show per worker beside the pipeline's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Frames received.
    pub rx: u64,
    /// Frames put on the tx ring.
    pub tx: u64,
    /// Transmissions the kernel completed (took off the tx ring and is done with).
    pub completed: u64,
    /// Packets to send that did not fit the tx ring. Received ones do not while
    /// backpressure holds (receiving waits for room); spilled ones (later fragments, probe
    /// replies), sent after their batch, can, and so can those a stopping worker takes from
    /// its receive ring once it has waited for room ([`FrameIo::end_backpressure`]): the
    /// worker takes them off the pipeline's sent counts.
    pub tx_ring_full: u64,
    /// Polls that received fewer frames than a batch because the tx ring had no room for
    /// them: receiving waits for transmission rather than dropping what it forwards.
    pub backpressure: u64,
    /// Spilled frames (fragments, probes) not sent for want of a free UMEM frame (those the
    /// tx ring had no room for are `tx_ring_full`).
    pub spill_no_frame: u64,
    /// Packets of tx verdicts not sent for want of a free UMEM frame: a jumbo packet copied
    /// out of its contiguous buffer leaves in frames of its own, and more of them than it
    /// came in when the pipeline made it longer (GRE around it). UMEM pressure (`--frames`),
    /// not a refused packet (`bad_tx`).
    pub tx_no_frame: u64,
    /// Descriptors the kernel gave back that did not describe one of our frames as lent to
    /// it: a received packet with such a descriptor (or one running past its frame), counted
    /// once per packet and left out of the pipeline (frames of ours go back to the free
    /// list), and a completion of a frame that was not being sent, counted per descriptor.
    pub bad_descriptors: u64,
    /// Packets that came in several frames (jumbo frames, XDP multi-buffer), reassembled.
    pub multi_buffer: u64,
    /// Packets the backend refused to send: tx verdicts and spilled frames that are empty,
    /// run past their frame, or need more frames than a packet may have.
    pub bad_tx: u64,
    /// Polls, and those that found nothing to receive.
    pub polls: u64,
    /// Polls that found nothing to receive.
    pub idle_polls: u64,
    /// sendto/recvfrom kicks.
    pub kicks: u64,
    /// Kicks the kernel answered "busy" (EBUSY, ENOBUFS): in copy mode a frame the device
    /// or its queueing discipline dropped (it still completes, so it is counted sent), or no
    /// memory for a socket buffer.
    pub kick_busy: u64,
    /// Kicks the kernel refused with an error other than "again" or "busy".
    pub kick_errors: u64,
    /// Times frames waited on the tx ring for a second with none completing: the kernel
    /// took the kicks and sent nothing (a driver's transmit hung).
    pub tx_stalls: u64,
    /// Where the frames are.
    pub frames: FrameCount,
    /// The kernel's own counters of the socket (`XDP_STATISTICS`).
    pub socket: SocketStats,
    /// The socket is bound in zero-copy mode (`XDP_OPTIONS`); false for copy mode and for
    /// backends without sockets.
    pub zero_copy: bool,
}

/// What the kernel counts for an AF_XDP socket (`XDP_STATISTICS`): where frames were lost
/// on its side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames dropped for other reasons than a full rx ring or an empty fill ring.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full (the worker fell behind).
    pub rx_ring_full: u64,
    /// Frames dropped because the fill ring was empty (no frame to receive into).
    pub rx_fill_ring_empty: u64,
    /// Times the tx ring was found empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// What one poll did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// This many frames were received and processed; `Frames(0)` when none could be taken
    /// because the transmit ring is full (backpressure): poll again at once, there is work.
    Frames(usize),
    /// Nothing was ready (live backends).
    Idle,
    /// The source is exhausted (finite backends).
    End,
}

/// A source and sink of frames.
pub trait FrameIo {
    /// Receives up to a batch of frames, hands them to `process` as one batch, then
    /// transmits the frames whose verdict is `Tx` and recycles the rest. `now_ns` (since the
    /// Unix epoch) is the receive time of live frames: the caller reads the clock once per
    /// batch, never per frame (replayed frames keep their capture times).
    fn poll(&mut self, now_ns: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> std::io::Result<Polled>;

    /// Transmits the frames in `spill` (copying them into the backend's own buffers), marks
    /// those it could not send ([`Spill::mark_unsent`]) and returns how many they were. The
    /// caller empties the spill once it has counted them.
    fn send_spill(&mut self, spill: &mut Spill) -> std::io::Result<usize>;

    /// The backend's own counters; none for backends that keep none.
    fn stats(&self) -> IoStats {
        IoStats::default()
    }

    /// Where the frames are: [`FrameIo::stats`]' count without what else it reads (AF_XDP's
    /// socket counters, a system call), for asking between polls.
    fn frames(&self) -> FrameCount {
        self.stats().frames
    }

    /// The frames of the last poll's batch (their indices) whose `Tx` verdict the backend
    /// did not carry out: no room on its ring, no frame to copy a packet of several frames
    /// into, or a transmission it refused. The worker takes them off the pipeline's `tx`
    /// counts; the backend's own counters say why (`tx_ring_full`, `bad_tx`). None for
    /// backends that send whatever they are given.
    fn unsent(&self) -> &[u16] {
        &[]
    }

    /// Ends backpressure, for a worker that is stopping and has waited for room: from then
    /// on a poll takes a whole batch from the receive ring whatever room there is to send
    /// it, and what does not fit is counted (`tx_ring_full`) and said [`FrameIo::unsent`].
    /// Waiting on a tx ring the kernel does not send from (the link set down, the device
    /// gone) left the receive ring full, its frames counted nowhere. Nothing for backends
    /// that do not hold back.
    fn end_backpressure(&mut self) {}

    /// The largest IP packet the backend's link carries (its MTU), which a decapsulated
    /// packet reassembled from fragments can exceed; `None` for backends with no link
    /// (replay writes whatever it is given).
    fn link_mtu(&self) -> Option<usize> {
        None
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Wall-clock time from the monotonic clock: the epoch time of a start, plus the monotonic
/// time since. A worker reads one clock per batch (`Instant::now`) and gets both its batch
/// latency and its frames' receive time from it.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    base_ns: u64,
    base: std::time::Instant,
}

impl WallClock {
    /// A clock started now.
    pub fn new() -> WallClock {
        WallClock { base_ns: wall_clock_ns(), base: std::time::Instant::now() }
    }

    /// The epoch time of the monotonic instant `at`.
    pub fn wall_ns(&self, at: std::time::Instant) -> u64 {
        self.base_ns.saturating_add(at.saturating_duration_since(self.base).as_nanos() as u64)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}

/// Capture times as the clock the pipeline is given, which never runs back, as a live clock
/// does not: a frame stamped earlier than one before it (as in a merged capture) is taken at
/// the latest time seen, else a rate limit would count it as borrowed from the future. Replay
/// and `match --config` keep one each; the capture reader's times stay raw, as tshark's are,
/// and so do the frames written out again (`Frame::captured_ns`: `--out`, a drop capture).
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock {
    latest_ns: u64,
}

/// The latest time the pipeline is given: 2262-04-11, `i64::MAX` nanoseconds since 1970 (the
/// end of Linux's `ktime_t`, and of Rust's and Go's times). Its clock arithmetic runs ahead
/// of now (a token bucket's arrival time is now plus up to its burst of intervals, a
/// deadline now plus a timeout) and needs room above it: at `u64::MAX`, where a pcapng's
/// timestamps past 2554 were held, no arrival time could move on, and every packet passed
/// every rate limit.
pub const LATEST_NS: u64 = i64::MAX as u64;

impl MonotonicClock {
    /// The clock's time for a frame captured at `ns`: the latest time seen, `ns` included,
    /// at most [`LATEST_NS`] (where time stands still: the frames of a crafted capture after
    /// it meet their limits as a burst does).
    pub fn at(&mut self, ns: u64) -> u64 {
        self.latest_ns = self.latest_ns.max(ns.min(LATEST_NS));
        self.latest_ns
    }
}

#[cfg(test)]
mod tests {
    use super::MonotonicClock;

    #[test]
    fn a_monotonic_clock_holds_the_latest_time_seen() {
        let mut clock = MonotonicClock::default();
        assert_eq!([5, 3, 7, 6, 7].map(|ns| clock.at(ns)), [5, 5, 7, 7, 7]);
    }

    /// A capture's times past 2262 (a pcapng's 64-bit ticks, or its offset, reach 2554 and
    /// the reader holds them at `u64::MAX`) are given as the clock's end, which leaves room
    /// for what is reckoned ahead of now.
    #[test]
    fn a_monotonic_clock_ends_in_2262() {
        let mut clock = MonotonicClock::default();
        let end = super::LATEST_NS;
        assert_eq!([end - 1, end, end + 1, u64::MAX, 7].map(|ns| clock.at(ns)), [end - 1, end, end, end, end]);
        assert!(end.checked_add(1 << 62).is_some(), "room above the end");
    }
}
