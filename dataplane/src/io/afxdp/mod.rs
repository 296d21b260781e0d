//! The AF_XDP backend: one UMEM and one socket per NIC queue, driven by the worker that
//! owns them, behind the same [`FrameIo`] trait as pcap replay.
//!
//! A poll reclaims completed transmissions, tops the fill ring up, takes up to a batch of
//! received descriptors, lends their frames (in place in the UMEM) to the pipeline, and puts
//! each frame on the tx ring or back on the free list. A transmitted frame starts wherever
//! the pipeline's verdict says: encapsulation writes into the 256 bytes of headroom the
//! kernel leaves in front of every received packet, and the tx descriptor points there.
//! (This is why the backend talks to libxdp's rings directly: xsk-rs 0.11, which wraps the
//! same library, sends a frame only from the address it was received at. See
//! docs/afxdp.md.)
//!
//! Every UMEM frame is always in exactly one place, which a table keeps: the free list, the
//! kernel's fill or rx side, lent to the pipeline, or the kernel's tx or completion side.
//! Each move is checked against it, so a descriptor that names a frame the kernel does not
//! hold is refused (and counted), never lent twice; the counts in [`IoStats::frames`] are
//! the table's, and a property test drives the bookkeeping with a model of the kernel
//! through random verdicts, spills, bad descriptors and full rings.
//!
//! Transmission keeps up with reception: a poll takes no more frames than the tx ring has
//! room for (backpressure: the rx ring fills and the kernel counts the drops, where they
//! show), and in copy mode the worker kicks until the kernel has taken everything or says it
//! is busy (it sends at most 32 frames per `sendto`). A stopping worker that has waited for
//! room ends backpressure, so that the rx ring is emptied and every frame in it counted,
//! those the tx ring has no room for as `tx_ring_full`.
//!
//! Files: `config.rs` the socket's settings; `xsk.rs` the kernel side as the bookkeeping
//! sees it (the `Xsk` trait), `umem.rs` the real one over libxdp and `model.rs` the tests'
//! model; `frames.rs` the table of where each frame is; `rx.rs` the fill and rx rings;
//! `tx.rs` the tx and completion rings and the kicks; `poll.rs` the `FrameIo` implementation.
//!
//! [`FrameIo`]: crate::io::FrameIo

mod config;
mod frames;
mod poll;
mod rx;
mod tx;
mod umem;
mod xsk;

#[cfg(test)]
mod model;

pub use self::config::{AfXdpConfig, BindMode};
pub use self::umem::XskSocket;
pub use self::xsk::{Desc, Kick, MAX_LENT, MAX_PARTS, XDP_PKT_CONTD, Xsk};

use std::ffi::CString;
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use arrayvec::ArrayVec;

use self::frames::Place;
use self::rx::Parts;
use self::tx::TxWatch;
use super::{FrameCount, IoStats};
use crate::pipeline::{BATCH_SIZE, HEADROOM};

/// One queue's AF_XDP socket and UMEM, with the bookkeeping of its frames.
pub struct AfXdpIo<X = XskSocket> {
    xsk: X,
    /// Where each frame is, by frame index.
    places: Vec<Place>,
    free: Vec<u64>,
    count: FrameCount,
    stats: IoStats,
    busy_poll: bool,
    /// Completions taken this poll (reused).
    completions: Vec<u64>,
    /// The first frames of a packet whose last one has not arrived yet (multi-buffer), and
    /// whether one of them was refused (then the whole packet is).
    partial: Parts,
    partial_bad: bool,
    /// Contiguous buffers for packets of several frames, one per batch slot, each with the
    /// headroom in front; made with the socket if it is bound for multi-buffer (not by the
    /// worker mid-batch when the first such packet comes: megabytes), else none.
    jumbo: Vec<Box<[u8]>>,
    /// Received descriptors (reused).
    descs: Box<[Desc]>,
    /// The errno of the last failed tx kick said (`None`: none since the last that worked, or
    /// since the kernel sent a frame it took after it): an outage is said once, not at every
    /// poll, nor not at all (a device gone, ENXIO).
    kick_error_said: Option<i32>,
    /// The completions counted once every frame the kernel had taken at the last failed kick
    /// has completed: a completion past it is of a frame taken since.
    completions_owed_at_refusal: u64,
    tx_watch: TxWatch,
    /// The socket as messages name it: its interface and queue.
    label: String,
    /// The last poll's packets (by index in its batch) whose `Tx` verdict was not carried
    /// out ([`FrameIo::unsent`]).
    ///
    /// [`FrameIo::unsent`]: crate::io::FrameIo::unsent
    unsent: ArrayVec<u16, BATCH_SIZE>,
    /// Backpressure is over ([`FrameIo::end_backpressure`]): a poll takes a whole batch
    /// whatever room the tx ring has.
    ///
    /// [`FrameIo::end_backpressure`]: crate::io::FrameIo::end_backpressure
    backpressure_ended: bool,
    /// The interface's MTU, as the supervisor last read it (0: unknown).
    link_mtu: Arc<AtomicUsize>,
}

impl AfXdpIo<XskSocket> {
    /// Creates the UMEM and binds a socket to `cfg.iface` queue `cfg.queue`. No XDP program is
    /// loaded here: the caller registers [`AfXdpIo::fd`] in its own XSKMAP.
    pub fn open(cfg: &AfXdpConfig) -> io::Result<AfXdpIo> {
        if !matches!(cfg.frame_size, 2048 | 4096) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "AF_XDP frame size must be 2048 or 4096"));
        }
        let ifname = CString::new(cfg.iface.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        let xsk = XskSocket::create(&ifname, cfg)?;
        if cfg.busy_poll {
            xsk.prefer_busy_poll(BATCH_SIZE as u32);
        }
        let mut io = AfXdpIo::with_socket(xsk, cfg.busy_poll);
        io.link_mtu = cfg.link_mtu.clone();
        io.label = format!("{} queue {}", cfg.iface, cfg.queue);
        Ok(io)
    }

    /// The socket's file descriptor, for the XSKMAP.
    pub fn fd(&self) -> i32 {
        self.xsk.fd()
    }

    /// Whether the UMEM is backed by huge pages.
    pub fn huge_pages(&self) -> bool {
        self.xsk.huge_pages()
    }

    /// Whether the socket takes packets of several frames (`XDP_USE_SG`).
    pub fn multi_buffer(&self) -> bool {
        self.xsk.multi_buffer()
    }
}

/// A zeroed buffer of `len` bytes whose every page has been written: the allocator's zeroed
/// pages are mapped only when first written, and the worker would take that fault, page by
/// page, in the batch of the first packet of several frames.
fn touched(len: usize) -> Box<[u8]> {
    let mut buf = vec![0u8; len].into_boxed_slice();
    for at in (0..len).step_by(4096) {
        // A zero the compiler cannot see is one: the store is made (it may drop a store of
        // the zero it knows the allocator gave).
        buf[at] = std::hint::black_box(0);
    }
    buf
}

impl<X: Xsk> AfXdpIo<X> {
    /// The bookkeeping over `xsk`: every frame free, then as many as fit given to the fill ring.
    pub(crate) fn with_socket(xsk: X, busy_poll: bool) -> AfXdpIo<X> {
        let (frames, size) = (xsk.frame_count(), xsk.frame_size() as u64);
        let jumbo = match xsk.multi_buffer() {
            true => (0..BATCH_SIZE).map(|_| touched(HEADROOM + MAX_PARTS * size as usize)).collect(),
            false => Vec::new(),
        };
        let count = FrameCount { total: frames, free: frames, ..FrameCount::default() };
        let mut io = AfXdpIo {
            places: vec![Place::Free; frames as usize],
            free: (0..frames).rev().map(|i| i * size).collect(),
            count,
            stats: IoStats { zero_copy: xsk.zero_copy(), ..IoStats::default() },
            busy_poll,
            completions: Vec::with_capacity(4096),
            partial: Parts::new(),
            partial_bad: false,
            jumbo,
            descs: vec![Desc::default(); BATCH_SIZE].into_boxed_slice(),
            kick_error_said: None,
            completions_owed_at_refusal: 0,
            tx_watch: TxWatch::default(),
            label: "an AF_XDP socket".to_string(),
            unsent: ArrayVec::new(),
            backpressure_ended: false,
            link_mtu: Arc::new(AtomicUsize::new(0)),
            xsk,
        };
        io.refill_now();
        io
    }
}
