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
//! is busy (it sends at most 32 frames per `sendto`).

mod umem;

pub use self::umem::XskSocket;

use std::ffi::CString;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrayvec::ArrayVec;

use super::{FrameCount, FrameIo, IoStats, Polled, SocketStats};
use crate::pipeline::Verdict;
use crate::pipeline::{BATCH_SIZE, Frame, HEADROOM, Spill};

/// How to bind the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy where the driver supports it, copy otherwise (the kernel's choice).
    Auto,
    /// The kernel copies frames between the driver and the UMEM (works everywhere, veth
    /// included).
    Copy,
    /// The NIC DMAs straight into the UMEM (drivers with zero-copy support only).
    ZeroCopy,
}

impl BindMode {
    /// The name `--bind` takes.
    pub fn name(self) -> &'static str {
        match self {
            BindMode::Auto => "auto",
            BindMode::Copy => "copy",
            BindMode::ZeroCopy => "zero-copy",
        }
    }
}

/// Settings of one queue's socket.
#[derive(Clone, Debug)]
pub struct AfXdpConfig {
    /// Interface name.
    pub iface: String,
    /// Queue index.
    pub queue: u32,
    /// UMEM frame size: 2048 or 4096.
    pub frame_size: u32,
    /// UMEM frames.
    pub frames: u32,
    /// Entries of each ring (a power of two).
    pub ring_size: u32,
    /// Copy, zero-copy, or the kernel's choice.
    pub bind: BindMode,
    /// Ask the kernel for busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, budget), and
    /// drive it: a poll that finds nothing wakes the kernel's receive path.
    pub busy_poll: bool,
    /// Back the UMEM with huge pages if the system has them (else ordinary pages).
    pub huge_pages: bool,
    /// The longest packet to take (the configuration's `frame_size`, or less when the
    /// interface's MTU passes no frame that long): multi-buffer (`XDP_USE_SG`) is asked for
    /// only when one frame cannot hold it, since drivers without zero-copy multi-buffer
    /// refuse zero-copy to a socket that asks.
    pub largest_packet: usize,
    /// The interface's MTU (the largest IP packet its link carries) as last read, 0 if
    /// unknown: [`FrameIo::link_mtu`]. Shared: the supervisor reads the interface's MTU
    /// again while running, and every queue's socket sees the change at its next poll.
    pub link_mtu: Arc<AtomicUsize>,
}

impl AfXdpConfig {
    /// The longest packet one UMEM frame holds (the kernel writes it past the headroom).
    pub fn frame_room(&self) -> usize {
        (self.frame_size as usize).saturating_sub(crate::pipeline::HEADROOM)
    }

    /// Whether packets may need several frames.
    pub fn needs_multi_buffer(&self) -> bool {
        self.largest_packet > self.frame_room()
    }
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            iface: String::new(),
            queue: 0,
            frame_size: 4096,
            frames: 4096,
            ring_size: 2048,
            bind: BindMode::Auto,
            busy_poll: false,
            huge_pages: false,
            largest_packet: crate::snapshot::DEFAULT_FRAME_SIZE,
            link_mtu: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One AF_XDP descriptor: a UMEM address, a length, and the options word (multi-buffer's
/// continuation flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Where in the UMEM the bytes start.
    pub addr: u64,
    /// How many.
    pub len: u32,
    /// `XDP_PKT_CONTD` when more frames of the packet follow.
    pub options: u32,
}

/// What a transmit kick achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kick {
    /// The kernel took what it could; nothing more to kick for now.
    Done,
    /// It sent a budget's worth and there is more: kick again.
    Again,
    /// The driver is busy (or out of buffers): try on a later poll.
    Busy,
    /// Another error (errno).
    Failed(i32),
}

/// The kernel side of one socket as the bookkeeping sees it: the four rings and the UMEM's
/// frames. [`XskSocket`] is the real one; the tests drive the same bookkeeping with a model.
pub trait Xsk {
    /// Bytes per UMEM frame (a power of two).
    fn frame_size(&self) -> usize;
    /// Frames in the UMEM.
    fn frame_count(&self) -> u64;
    /// Bound in zero-copy mode.
    fn zero_copy(&self) -> bool;
    /// Bound with multi-buffer (`XDP_USE_SG`): a packet may come in several frames.
    fn multi_buffer(&self) -> bool;
    /// Entries of the fill ring.
    fn fill_size(&self) -> usize;
    /// Free entries of the fill ring (the kernel has taken them to receive into).
    fn fill_room(&mut self) -> usize;
    /// Puts the last addresses of `free` on the fill ring, as many as it has room for;
    /// returns how many (the last that many of `free` are the kernel's now).
    fn fill(&mut self, free: &[u64]) -> usize;
    /// Appends the addresses on the completion ring to `out`; returns how many.
    fn take_completions(&mut self, out: &mut Vec<u64>) -> usize;
    /// Takes up to `out.len()` received descriptors; returns how many.
    fn receive(&mut self, out: &mut [Desc]) -> usize;
    /// Free slots on the tx ring.
    fn tx_room(&mut self) -> usize;
    /// Descriptors on the tx ring the kernel has not taken yet.
    fn tx_unsent(&mut self) -> usize;
    /// Puts descriptors on the tx ring; returns how many fit.
    fn transmit(&mut self, sends: &[Desc]) -> usize;
    /// The kernel wants a kick to use the fill ring.
    fn fill_needs_wakeup(&self) -> bool;
    /// The kernel wants a kick to use the tx ring.
    fn tx_needs_wakeup(&self) -> bool;
    /// Wakes the receive path (recvfrom).
    fn kick_rx(&mut self);
    /// Makes the kernel send (sendto).
    fn kick_tx(&mut self) -> Kick;
    /// The kernel's counters of the socket.
    fn statistics(&self) -> SocketStats;
    /// Pushes a view of the frame at each of `chunks` onto `out`.
    ///
    /// # Safety
    ///
    /// Every chunk is the start of a frame of this UMEM that no ring holds (received and
    /// not yet given back, or taken off the free list), and the chunks are distinct: the
    /// views are then disjoint, and nothing else writes the frames while they live.
    unsafe fn frames<'a>(&'a mut self, chunks: &[u64], out: &mut ArrayVec<&'a mut [u8], MAX_LENT>);
}

/// Where one UMEM frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Free,
    /// Given to the kernel to receive into.
    Fill,
    /// Received, lent to the pipeline (or being written from the spill), or held as the first
    /// frames of a packet whose last has not arrived.
    Lent,
    /// Given to the kernel to send.
    Tx,
}

/// Frames the fill ring is never given: a batch for the fill ring's next top-up and a batch
/// to write into ([`AfXdpIo::take_free`] lends only past the first).
const KEPT_FREE: usize = 2 * BATCH_SIZE;

/// Transmit kicks per poll at most: the kernel sends 32 frames per copy-mode `sendto`, so
/// this drains a full default ring and bounds the time a poll spends in the kernel.
const MAX_KICKS: usize = 2048 / 32 + 2;

/// Copy-mode kicks in a row that may show no progress before the loop gives up. Kernels
/// before 6.17 publish the tx ring's consumer index only once the kernel has taken every
/// entry it saw at its last look, not after each sendto's 32: with more than 32 on the ring
/// and completions still on their way (a NIC's tx interrupt), a kick that sent 32 frames
/// looks like one that sent none. Four such kicks are 128 frames, twice a batch; a device
/// that is really busy (EAGAIN too) costs four system calls a poll.
const STALE_KICKS: usize = 4;

/// How long frames may wait on the tx ring with not one completing before the ring is said
/// stuck. Copy mode completes a frame within the `sendto` that sends it, a NIC within
/// microseconds: a second of nothing is no busy device.
const TX_STALL_NS: u64 = 1_000_000_000;

/// The watch on the tx ring for a kernel that takes nothing from it: the completions counted
/// when it last saw one come (or the ring empty), and when (`None`: not yet watched).
#[derive(Clone, Copy, Debug, Default)]
struct TxWatch {
    completed: u64,
    since_ns: Option<u64>,
    /// The stall was said (and counted); said again when it ends.
    stalled: bool,
}

/// `XDP_PKT_CONTD` (if_xdp.h): more frames of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1;

/// Frames one packet may span: the kernel writes each received frame past 256 bytes of
/// headroom (3840 bytes of packet in a 4 KiB frame), so a 64 KiB packet takes 18, the first
/// buffer and `MAX_SKB_FRAGS` (17) fragments, as many as the kernel allows. (17 left packets
/// of 65,281-65,536 bytes refused as `bad_descriptors`.)
pub const MAX_PARTS: usize = 18;

/// Frames lent at once at most: a batch of descriptors and a packet begun in the poll before.
pub const MAX_LENT: usize = BATCH_SIZE + MAX_PARTS;

/// The frames of one packet as received: `(chunk, offset, len)` each.
type Parts = ArrayVec<(u64, usize, usize), MAX_PARTS>;

/// One received packet: in one frame (lent in place), or in several (`parts[first..][..count]`
/// of the batch, copied into one of the backend's contiguous buffers, since the pipeline reads
/// a packet as one slice).
#[derive(Clone, Copy)]
enum Packet {
    Single { chunk: u64, offset: usize, len: usize },
    Multi { first: usize, count: usize },
}

/// The frames of a batch's packets of several frames, in order.
type BatchParts = ArrayVec<(u64, usize, usize), MAX_LENT>;

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
    /// The errno of the last failed tx kick said (`None`: none since the last that worked):
    /// an outage is said once, not at every poll, nor not at all (a device gone, ENXIO).
    kick_error_said: Option<i32>,
    tx_watch: TxWatch,
    /// The socket as messages name it: its interface and queue.
    label: String,
    /// The last poll's packets (by index in its batch) whose `Tx` verdict was not carried
    /// out ([`FrameIo::unsent`]).
    unsent: ArrayVec<u16, BATCH_SIZE>,
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
            tx_watch: TxWatch::default(),
            label: "an AF_XDP socket".to_string(),
            unsent: ArrayVec::new(),
            link_mtu: Arc::new(AtomicUsize::new(0)),
            xsk,
        };
        io.refill_now();
        io
    }

    fn mask(&self) -> u64 {
        !(self.xsk.frame_size() as u64 - 1)
    }

    /// The index of the frame starting at `chunk`, if it is one of ours.
    fn index(&self, chunk: u64) -> Option<usize> {
        let size = self.xsk.frame_size() as u64;
        let i = chunk / size;
        (chunk.is_multiple_of(size) && i < self.places.len() as u64).then_some(i as usize)
    }

    /// Moves the frame at `chunk` from `from` to `to`; false (and nothing moves) if it is not
    /// one of ours or not where it should be.
    fn shift(&mut self, chunk: u64, from: Place, to: Place) -> bool {
        match self.index(chunk) {
            Some(i) if self.places[i] == from => {
                self.places[i] = to;
                // Kept as it moves: counting `places` at each publication cost a scan of
                // every frame (65,536 at most) on the worker's thread ten times a second.
                self.count.held += u64::from(to == Place::Lent);
                self.count.held -= u64::from(from == Place::Lent);
                true
            }
            _ => false,
        }
    }

    /// A lent frame goes back on the free list.
    fn release(&mut self, chunk: u64) {
        if self.shift(chunk, Place::Lent, Place::Free) {
            self.free.push(chunk);
        }
    }

    /// Takes a free frame to write into, keeping a batch's worth for the fill ring
    /// (receiving comes first; the fill ring leaves [`KEPT_FREE`] for this).
    fn take_free(&mut self) -> Option<u64> {
        if self.free.len() <= BATCH_SIZE {
            return None;
        }
        let chunk = self.free.pop()?;
        self.shift(chunk, Place::Free, Place::Lent);
        Some(chunk)
    }

    /// Takes completed transmissions back onto the free list; returns how many.
    fn reclaim(&mut self) -> usize {
        let mut done = std::mem::take(&mut self.completions);
        done.clear();
        self.xsk.take_completions(&mut done);
        let mask = self.mask();
        for &addr in &done {
            let chunk = addr & mask;
            if self.shift(chunk, Place::Tx, Place::Free) {
                self.free.push(chunk);
                self.count.in_tx -= 1;
                self.stats.completed += 1;
            } else {
                self.stats.bad_descriptors += 1;
            }
        }
        let taken = done.len();
        self.completions = done;
        taken
    }

    /// Gives free frames to the kernel to receive into, once half the fill ring has run dry:
    /// the kernel consumes the ring on another CPU, and topping it up every poll made the
    /// ring's cache lines travel between the two for a frame or two at a time (DPDK's af_xdp
    /// PMD waits for half as well).
    fn refill(&mut self) {
        if self.xsk.fill_room() < self.xsk.fill_size() / 2 {
            return;
        }
        self.refill_now();
    }

    fn refill_now(&mut self) {
        let free = std::mem::take(&mut self.free);
        // The fill ring takes from the end; the first frames stay for writing (spilled
        // probes and fragments, packets of several frames): with `frames` not much larger
        // than the ring, the ring would otherwise hold them all and nothing could be sent.
        let given = self.xsk.fill(&free[KEPT_FREE.min(free.len())..]);
        self.free = free;
        let kept = self.free.len() - given;
        for i in kept..self.free.len() {
            let chunk = self.free[i];
            self.shift(chunk, Place::Free, Place::Fill);
        }
        self.free.truncate(kept);
        self.count.in_fill += given as u64;
        if given > 0 {
            self.wake_rx(false);
        }
    }

    /// Asks the kernel to run the receive path: when `busy` (under preferred busy polling
    /// the kernel runs the driver only when asked, as xdpsock, DPDK and Suricata ask at
    /// every empty poll), else only when it says the fill ring needs it.
    fn wake_rx(&mut self, busy: bool) {
        if busy || self.xsk.fill_needs_wakeup() {
            self.xsk.kick_rx();
            self.stats.kicks += 1;
        }
    }

    /// Makes the kernel send what is on the tx ring. In copy mode it sends only inside
    /// sendto, 32 frames a call: kick until it has taken everything, says it is busy, or
    /// MAX_KICKS calls. In zero-copy mode the driver sends on its own, and the kernel says
    /// when it needs a kick.
    fn kick_tx(&mut self) {
        // Nothing on the ring the kernel has not taken: completions still to come need no
        // kick (an idle poll would otherwise make a system call for nothing).
        if self.xsk.tx_unsent() == 0 || (self.xsk.zero_copy() && !self.xsk.tx_needs_wakeup()) {
            return;
        }
        let mut stale = 0;
        for _ in 0..MAX_KICKS {
            self.stats.kicks += 1;
            let unsent = self.xsk.tx_unsent();
            let kick = self.xsk.kick_tx();
            if !matches!(kick, Kick::Failed(_)) {
                self.kick_error_said = None;
            }
            let reclaimed = match kick {
                Kick::Again => self.reclaim(),
                Kick::Done if self.xsk.tx_unsent() > 0 && !self.xsk.zero_copy() => self.reclaim(),
                Kick::Done => break,
                Kick::Busy => {
                    self.stats.kick_busy += 1;
                    break;
                }
                Kick::Failed(errno) => {
                    self.stats.kick_errors += 1;
                    if self.kick_error_said != Some(errno) {
                        self.kick_error_said = Some(errno);
                        eprintln!(
                            "transitd: the kernel refused to send from the AF_XDP socket on {} (sendto: {}): frames \
                             wait on its tx ring (kick_error counts each refusal)",
                            self.label,
                            io::Error::from_raw_os_error(errno)
                        );
                    }
                    break;
                }
            };
            // EAGAIN also means a busy device or a full socket buffer, where kicking again
            // at once only burns the core: stop when the kernel took nothing and no
            // completion made room (a full completion ring, emptied now, is worth a retry),
            // after a few such kicks in copy mode (see STALE_KICKS).
            if self.xsk.tx_unsent() >= unsent && reclaimed == 0 {
                stale += 1;
                if self.xsk.zero_copy() || stale >= STALE_KICKS {
                    break;
                }
            } else {
                stale = 0;
            }
        }
    }

    /// Says once, and counts, when frames have waited on the tx ring for [`TX_STALL_NS`] with
    /// none completing, and says when one completes again. A kick the kernel refuses is said
    /// where it fails; this is the kernel that takes the kick and sends nothing (a driver's
    /// transmit hung). The ring fills, receiving waits for room, and the queue's traffic
    /// stops: the operator must hear of it. (Not a queue taken away: Linux refuses
    /// `ethtool -L` below a queue an AF_XDP socket is bound to, copy mode too.)
    fn watch_tx(&mut self, now: u64) {
        let (completed, waiting) = (self.stats.completed, self.count.in_tx);
        let watch = &mut self.tx_watch;
        let since = match watch.since_ns {
            Some(since) if waiting > 0 && completed == watch.completed => since,
            _ => {
                if watch.stalled {
                    eprintln!("transitd: the kernel sends from the AF_XDP tx ring on {} again", self.label);
                }
                *watch = TxWatch { completed, since_ns: Some(now), stalled: false };
                return;
            }
        };
        if !watch.stalled && now.saturating_sub(since) >= TX_STALL_NS {
            watch.stalled = true;
            self.stats.tx_stalls += 1;
            eprintln!(
                "transitd: the kernel has sent nothing from the AF_XDP tx ring on {} for a second ({waiting} frames \
                 waiting): the device's transmit is stuck; the queue receives only as it sends (tx_stall counts \
                 each such stall)",
                self.label
            );
        }
    }

    /// Sends the packets staged from `spill` (`staged`: their indices in it, in the order of
    /// `sends`) and marks those the ring had no room for: `send` puts a prefix of whole
    /// packets on the ring, so they are the last ones.
    fn send_staged(&mut self, sends: &[Desc], staged: &[usize], spill: &mut Spill) {
        let sent = self.send(sends);
        let unsent = sends[sent..].iter().filter(|d| d.options & XDP_PKT_CONTD == 0).count();
        for &i in &staged[staged.len().saturating_sub(unsent)..] {
            spill.mark_unsent(i);
        }
    }

    /// Puts whole packets (`sends`, lent frames; a packet's frames but the last carry
    /// XDP_PKT_CONTD) on the tx ring. A packet that does not fit whole goes back to the free
    /// list with everything after it, counted. Returns how many frames were sent.
    fn send(&mut self, sends: &[Desc]) -> usize {
        // Only whole packets: cut after the last end of packet the ring has room for.
        let room = self.xsk.tx_room().min(sends.len());
        let fits = sends[..room].iter().rposition(|d| d.options & XDP_PKT_CONTD == 0).map_or(0, |i| i + 1);
        let sent = self.xsk.transmit(&sends[..fits]);
        let mask = self.mask();
        for (i, d) in sends.iter().enumerate() {
            let chunk = d.addr & mask;
            if i < sent {
                self.shift(chunk, Place::Lent, Place::Tx);
            } else {
                self.release(chunk);
                if d.options & XDP_PKT_CONTD == 0 {
                    self.stats.tx_ring_full += 1;
                }
            }
        }
        self.stats.tx += sent as u64;
        self.count.in_tx += sent as u64;
        sent
    }

    /// Takes the next received descriptors into whole packets (a packet of several frames
    /// may have begun in an earlier poll). Each frame is checked against the table; a packet
    /// with a refused frame is refused whole, its frames freed.
    fn assemble(&mut self, descs: &[Desc], packets: &mut ArrayVec<Packet, BATCH_SIZE>, batch_parts: &mut BatchParts) {
        let frame_size = self.xsk.frame_size();
        let mask = self.mask();
        for d in descs {
            let chunk = d.addr & mask;
            let offset = (d.addr - chunk) as usize;
            if self.shift(chunk, Place::Fill, Place::Lent) {
                self.count.in_fill -= 1;
                self.stats.rx += 1;
                let fits = d.len > 0 && offset + d.len as usize <= frame_size;
                if !fits || self.partial.try_push((chunk, offset, d.len as usize)).is_err() {
                    self.release(chunk);
                    self.partial_bad = true;
                }
            } else {
                // Not a frame the kernel holds to receive into: not ours to lend (nor to free:
                // whoever has it keeps it), and its packet is not whole.
                self.partial_bad = true;
            }
            if d.options & XDP_PKT_CONTD != 0 {
                continue;
            }
            // The end of a packet.
            let parts = std::mem::take(&mut self.partial);
            if std::mem::take(&mut self.partial_bad) {
                self.stats.bad_descriptors += 1;
                for &(chunk, ..) in &parts {
                    self.release(chunk);
                }
            } else if let [(chunk, offset, len)] = parts[..] {
                packets.push(Packet::Single { chunk, offset, len });
            } else if !parts.is_empty() && batch_parts.remaining_capacity() >= parts.len() {
                self.stats.multi_buffer += 1;
                packets.push(Packet::Multi { first: batch_parts.len(), count: parts.len() });
                batch_parts.extend(parts);
            } else {
                for &(chunk, ..) in &parts {
                    self.release(chunk);
                }
            }
        }
    }

    /// Puts the staged descriptors `sends` on the ring and empties both lists. Whole packets
    /// reach the ring: those of `staged` from the first left out on are said unsent.
    fn send_some(&mut self, sends: &mut ArrayVec<Desc, MAX_LENT>, staged: &mut ArrayVec<(u16, usize), BATCH_SIZE>) {
        let sent = self.send(sends);
        self.unsent.extend(staged.iter().filter(|&&(_, first)| first >= sent).map(|&(i, _)| i));
        sends.clear();
        staged.clear();
    }

    /// Writes `bytes` into lent frames `chunks` (taking more from the free list or releasing
    /// extras as the length needs) and appends their descriptors to `sends`, continuation
    /// flags set. False if there was no frame for it (everything it held is released).
    fn stage(
        &mut self,
        bytes: &[u8],
        chunks: &mut ArrayVec<u64, MAX_PARTS>,
        sends: &mut ArrayVec<Desc, MAX_LENT>,
    ) -> bool {
        let frame_size = self.xsk.frame_size();
        let needed = bytes.len().div_ceil(frame_size);
        while chunks.len() > needed {
            if let Some(c) = chunks.pop() {
                self.release(c);
            }
        }
        while chunks.len() < needed {
            match self.take_free().map(|c| chunks.try_push(c)) {
                Some(Ok(())) => {}
                other => {
                    if let Some(Err(e)) = other {
                        self.release(e.element());
                    }
                    for &c in chunks.iter() {
                        self.release(c);
                    }
                    return false;
                }
            }
        }
        if needed == 0 || sends.remaining_capacity() < needed {
            for &c in chunks.iter() {
                self.release(c);
            }
            return false;
        }
        let mut bufs: ArrayVec<&mut [u8], MAX_LENT> = ArrayVec::new();
        // SAFETY: every chunk is Lent (received and not given back, or just taken off the
        // free list), so no ring holds it; the table lets a frame be Lent once, so they are
        // distinct.
        unsafe { self.xsk.frames(chunks, &mut bufs) };
        for (i, (buf, piece)) in bufs.into_iter().zip(bytes.chunks(frame_size)).enumerate() {
            buf[..piece.len()].copy_from_slice(piece);
            let options = if i + 1 < needed { XDP_PKT_CONTD } else { 0 };
            sends.push(Desc { addr: chunks[i], len: piece.len() as u32, options });
        }
        true
    }
}

impl<X: Xsk> FrameIo for AfXdpIo<X> {
    fn poll(&mut self, now: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> io::Result<Polled> {
        self.unsent.clear();
        self.reclaim();
        self.watch_tx(now);
        self.refill();
        // Backpressure: take no more frames than could be sent; first let the kernel send.
        let mut room = self.xsk.tx_room();
        if room < BATCH_SIZE {
            self.kick_tx();
            self.reclaim();
            room = self.xsk.tx_room();
        }
        // A packet begun in an earlier poll will be sent with this poll's: its frames held so
        // far need room too.
        let want = room.saturating_sub(self.partial.len()).min(BATCH_SIZE);
        if want < BATCH_SIZE {
            self.stats.backpressure += 1;
        }
        // Kept in self: zeroing a batch of descriptors on every (mostly idle) poll showed in
        // profiles.
        let mut descs = std::mem::take(&mut self.descs);
        let n = self.xsk.receive(&mut descs[..want]);
        self.stats.polls += 1;
        if want == 0 {
            // Not idle: frames wait in the receive ring while the transmit ring drains
            // (reported as idle, the worker slept `--idle-sleep-us` with both rings full). The
            // driver is asked to run as an empty poll asks it (under busy polling nothing else
            // reaps the completions); a ring the kernel refuses to send from (a failed kick:
            // the device down or gone) or has sent nothing from for a while (a stall) is idle
            // after all, so that the worker sleeps rather than spins on it.
            self.wake_rx(self.busy_poll);
            self.descs = descs;
            let stuck = self.kick_error_said.is_some() || self.tx_watch.stalled;
            return Ok(if stuck { Polled::Idle } else { Polled::Frames(0) });
        }
        if n == 0 {
            self.stats.idle_polls += 1;
            self.kick_tx();
            self.wake_rx(self.busy_poll);
            self.descs = descs;
            return Ok(Polled::Idle);
        }
        let mut packets: ArrayVec<Packet, BATCH_SIZE> = ArrayVec::new();
        let mut parts = BatchParts::new();
        self.assemble(&descs[..n], &mut packets, &mut parts);
        self.descs = descs;

        // Every frame of the batch's packets, in order.
        let mut chunks: ArrayVec<u64, MAX_LENT> = ArrayVec::new();
        for p in &packets {
            match *p {
                Packet::Single { chunk, .. } => chunks.push(chunk),
                Packet::Multi { first, count } => chunks.extend(parts[first..first + count].iter().map(|&(c, ..)| c)),
            }
        }
        let mut views: ArrayVec<&mut [u8], MAX_LENT> = ArrayVec::new();
        // SAFETY: each chunk moved from Fill to Lent in `assemble` (this poll or, for a packet
        // begun earlier, that one) and is not back anywhere since: a frame of this UMEM no ring
        // holds; the table lets a frame move to Lent once, so the chunks are distinct.
        unsafe { self.xsk.frames(&chunks, &mut views) };
        let mut views = views.into_iter();
        let mut jumbo = self.jumbo.iter_mut();
        let mut frames: ArrayVec<Frame<'_>, BATCH_SIZE> = ArrayVec::new();
        for p in &packets {
            let frame = match *p {
                Packet::Single { offset, len, .. } => {
                    let Some(view) = views.next() else { break };
                    Frame::new(view, offset, len, len as u32, now)
                }
                Packet::Multi { first, count } => {
                    // No buffer only on a socket bound without multi-buffer, which the kernel
                    // gives no packet of several frames.
                    let Some(buf) = jumbo.next() else { break };
                    let mut at = HEADROOM;
                    for &(_, offset, len) in &parts[first..first + count] {
                        let Some(view) = views.next() else { break };
                        buf[at..at + len].copy_from_slice(&view[offset..offset + len]);
                        at += len;
                    }
                    Frame::new(&mut buf[..], HEADROOM, at - HEADROOM, (at - HEADROOM) as u32, now)
                }
            };
            frames.push(frame);
        }
        process(&mut frames);

        // What to send: a single frame from where the verdict says in its own frame; a packet
        // of several frames copied back into frames of its own.
        let verdicts: ArrayVec<Verdict, BATCH_SIZE> = frames.iter().map(|f| f.verdict).collect();
        drop(frames);
        drop(views);
        let frame_size = self.xsk.frame_size();
        let mut sends: ArrayVec<Desc, MAX_LENT> = ArrayVec::new();
        // (packet, index of its first descriptor in `sends`), for each packet staged.
        let mut staged: ArrayVec<(u16, usize), BATCH_SIZE> = ArrayVec::new();
        let mut jumbo_index = 0;
        for (i, p) in packets.iter().enumerate() {
            // A packet of several frames may leave in more frames than it came in (a
            // reassembled datagram), so the batch's descriptors may outgrow the list: those
            // staged go to the ring first, while there is room for the largest packet.
            if sends.remaining_capacity() < MAX_PARTS {
                self.send_some(&mut sends, &mut staged);
            }
            let first = sends.len();
            // Every packet is settled, even one the pipeline did not see.
            let verdict = verdicts.get(i).copied().unwrap_or(Verdict::Drop(crate::pipeline::DropReason::Truncated));
            let mut owned: ArrayVec<u64, MAX_PARTS> = match *p {
                Packet::Single { chunk, .. } => std::iter::once(chunk).collect(),
                Packet::Multi { first, count } => parts[first..first + count].iter().map(|&(c, ..)| c).collect(),
            };
            let tx = match verdict {
                Verdict::Tx { start, len, .. } if len > 0 => Some((start, len)),
                Verdict::Tx { .. } => {
                    self.stats.bad_tx += 1;
                    self.unsent.push(i as u16);
                    None
                }
                _ => None,
            };
            match (*p, tx) {
                (Packet::Single { chunk, .. }, Some((start, len)))
                    if start.checked_add(len).is_some_and(|end| end <= frame_size) =>
                {
                    sends.push(Desc { addr: chunk + start as u64, len: len as u32, options: 0 });
                    staged.push((i as u16, first));
                }
                (Packet::Multi { .. }, Some((start, len))) => {
                    // Copied out of its contiguous buffer (lent out of the table for the copy:
                    // taking the box moves no bytes), into frames with no headroom.
                    let buf = self.jumbo.get_mut(jumbo_index).map(std::mem::take).unwrap_or_default();
                    // `None`: the verdict is empty or runs past its buffer, refused.
                    let sent = match start.checked_add(len).filter(|_| len > 0).and_then(|end| buf.get(start..end)) {
                        Some(bytes) => Some(self.stage(bytes, &mut owned, &mut sends)),
                        None => {
                            for &c in &owned {
                                self.release(c);
                            }
                            None
                        }
                    };
                    if let Some(slot) = self.jumbo.get_mut(jumbo_index) {
                        *slot = buf;
                    }
                    match sent {
                        Some(true) => staged.push((i as u16, first)),
                        // No free frame to copy it into (`stage` takes no more than a packet
                        // may have, and the descriptors were flushed to make room).
                        Some(false) => {
                            self.stats.tx_no_frame += 1;
                            self.unsent.push(i as u16);
                        }
                        None => {
                            self.stats.bad_tx += 1;
                            self.unsent.push(i as u16);
                        }
                    }
                }
                (_, Some(_)) => {
                    self.stats.bad_tx += 1;
                    self.unsent.push(i as u16);
                    for &c in &owned {
                        self.release(c);
                    }
                }
                (_, None) => {
                    for &c in &owned {
                        self.release(c);
                    }
                }
            }
            if matches!(p, Packet::Multi { .. }) {
                jumbo_index += 1;
            }
        }
        self.send_some(&mut sends, &mut staged);
        self.kick_tx();
        Ok(Polled::Frames(n))
    }

    fn send_spill(&mut self, spill: &mut Spill) -> io::Result<usize> {
        self.reclaim();
        // Packets no frame could be staged for; those the ring had no room for are counted
        // as `tx_ring_full` by `send`.
        let mut no_frame = 0;
        let mut sends: ArrayVec<Desc, MAX_LENT> = ArrayVec::new();
        // The spill's index of each packet in `sends`, in order.
        let mut staged: ArrayVec<usize, BATCH_SIZE> = ArrayVec::new();
        for i in 0..spill.len() {
            if sends.len() + MAX_PARTS > BATCH_SIZE {
                self.send_staged(&sends, &staged, spill);
                self.kick_tx();
                self.reclaim();
                sends.clear();
                staged.clear();
            }
            let bytes = spill.frame(i);
            let mut chunks = ArrayVec::new();
            // Checked before a frame is taken, so that none is taken for nothing.
            if bytes.is_empty() || bytes.len() > MAX_PARTS * self.xsk.frame_size() {
                self.stats.bad_tx += 1;
                spill.mark_unsent(i);
            } else if !self.stage(bytes, &mut chunks, &mut sends) {
                no_frame += 1;
                spill.mark_unsent(i);
            } else {
                staged.push(i);
            }
        }
        self.send_staged(&sends, &staged, spill);
        self.stats.spill_no_frame += no_frame as u64;
        self.kick_tx();
        Ok(spill.unsent().count())
    }

    fn stats(&self) -> IoStats {
        IoStats { frames: self.frames(), socket: self.xsk.statistics(), ..self.stats }
    }

    fn frames(&self) -> FrameCount {
        FrameCount { free: self.free.len() as u64, ..self.count }
    }

    fn unsent(&self) -> &[u16] {
        &self.unsent
    }

    fn link_mtu(&self) -> Option<usize> {
        Some(self.link_mtu.load(Ordering::Relaxed)).filter(|&mtu| mtu > 0)
    }
}

#[cfg(test)]
mod tests {
    //! The bookkeeping against a model of the kernel: random arrivals (some of them bad
    //! descriptors), random verdicts (some of them bad transmissions), spills of every size,
    //! full rings and a kernel that sends when it likes. After every step every frame is in
    //! exactly one place, the backend's counts agree with the model's, and every frame lent to
    //! the pipeline is the one the model delivered.

    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;
    use crate::pipeline::{DropReason, HEADROOM, TxReason};

    const FRAME: usize = 2048;
    const FRAMES: u64 = 256;
    const RING: usize = 64;

    /// The kernel side: rings of bounded size, frame memory, and what it was handed.
    struct Model {
        memory: Vec<Box<[u8]>>,
        fill: VecDeque<u64>,
        rx: VecDeque<Desc>,
        tx: VecDeque<Desc>,
        comp: VecDeque<u64>,
        /// Frames delivered on rx that the backend has not given back (by fill or tx).
        lent: Vec<bool>,
        /// Marker written into each delivered frame, to check the backend lends the right one.
        serial: u32,
        invalid_tx: u64,
        /// Whole packets put on the tx ring.
        packets_transmitted: u64,
        /// A kernel that takes nothing off the tx ring when kicked (a link that is down).
        stalled: bool,
        /// A kernel before 6.17 on a NIC: a kick takes up to 32 descriptors but publishes
        /// the consumer index only once it has taken all it saw at its last look, and the
        /// frames complete later ([`Model::complete`]).
        late_consumer: bool,
        /// Descriptors at the front of `tx` taken but not yet published, and the window
        /// the kernel saw.
        taken: usize,
        window: usize,
        /// Sent, not yet completed (`late_consumer`).
        in_flight: VecDeque<u64>,
        /// A kernel that answers every kick "busy" (EBUSY: the device dropped a frame).
        busy: bool,
        /// A kernel that refuses every tx kick (ENXIO: the device is gone).
        refusing: bool,
        /// Entries of each ring.
        ring: usize,
    }

    impl Model {
        fn new() -> Model {
            Model {
                memory: (0..FRAMES).map(|_| vec![0u8; FRAME].into_boxed_slice()).collect(),
                fill: VecDeque::new(),
                rx: VecDeque::new(),
                tx: VecDeque::new(),
                comp: VecDeque::new(),
                lent: vec![false; FRAMES as usize],
                serial: 0,
                invalid_tx: 0,
                packets_transmitted: 0,
                stalled: false,
                late_consumer: false,
                taken: 0,
                window: 0,
                in_flight: VecDeque::new(),
                busy: false,
                refusing: false,
                ring: RING,
            }
        }

        /// The NIC's tx interrupt: everything sent completes.
        fn complete(&mut self) {
            self.comp.extend(self.in_flight.drain(..));
        }

        /// Up to `n` arrivals from the fill ring, each a packet of `parts` frames (`len` bytes
        /// in the first, at the kernel's headroom; the others whole), and then `bogus`
        /// descriptors naming frames the kernel does not hold.
        fn deliver(&mut self, n: usize, len: u32, parts: usize, bad_len: bool, bogus: usize) {
            for _ in 0..n {
                if self.rx.len() + parts > self.ring || self.fill.len() < parts {
                    break;
                }
                for part in 0..parts {
                    let Some(chunk) = self.fill.pop_front() else { break };
                    let i = (chunk / FRAME as u64) as usize;
                    self.lent[i] = true;
                    let last = part + 1 == parts;
                    let options = if last { 0 } else { XDP_PKT_CONTD };
                    if part == 0 {
                        self.serial += 1;
                        self.memory[i][HEADROOM..HEADROOM + 4].copy_from_slice(&self.serial.to_be_bytes());
                        let len = if bad_len { FRAME as u32 } else { len.clamp(4, (FRAME - HEADROOM) as u32) };
                        self.rx.push_back(Desc { addr: chunk + HEADROOM as u64, len, options });
                    } else {
                        self.memory[i].fill(part as u8);
                        self.rx.push_back(Desc { addr: chunk, len: FRAME as u32, options });
                    }
                }
            }
            for k in 0..bogus {
                // A frame the kernel holds for sending, or one past the UMEM.
                let addr = self.tx.front().map_or(FRAMES * FRAME as u64 + k as u64, |d| d.addr);
                if self.rx.len() < self.ring {
                    self.rx.push_back(Desc { addr, len: 64, options: 0 });
                }
            }
        }

        /// The kernel sends up to `n` frames from the tx ring.
        fn send(&mut self, n: usize) {
            for _ in 0..n {
                let Some(d) = self.tx.pop_front() else { break };
                self.comp.push_back(d.addr);
            }
        }

        fn held(&self) -> (u64, u64) {
            let rx_real = self.rx.iter().filter(|d| self.owns_rx(d)).count() as u64;
            let tx_side = self.tx.len() + self.in_flight.len() + self.comp.len();
            (self.fill.len() as u64 + rx_real, tx_side as u64)
        }

        fn owns_rx(&self, d: &Desc) -> bool {
            let i = (d.addr / FRAME as u64) as usize;
            d.addr < FRAMES * FRAME as u64 && self.lent[i] && !self.tx.iter().any(|t| t.addr / FRAME as u64 == i as u64)
        }
    }

    impl Xsk for Model {
        fn frame_size(&self) -> usize {
            FRAME
        }
        fn frame_count(&self) -> u64 {
            FRAMES
        }
        fn zero_copy(&self) -> bool {
            false
        }
        fn multi_buffer(&self) -> bool {
            true
        }
        fn fill_size(&self) -> usize {
            self.ring
        }
        fn fill_room(&mut self) -> usize {
            self.ring - self.fill.len()
        }
        fn fill(&mut self, free: &[u64]) -> usize {
            let n = (self.ring - self.fill.len()).min(free.len());
            self.fill.extend(&free[free.len() - n..]);
            n
        }
        fn take_completions(&mut self, out: &mut Vec<u64>) -> usize {
            let n = self.comp.len();
            out.extend(self.comp.drain(..));
            n
        }
        fn receive(&mut self, out: &mut [Desc]) -> usize {
            let n = out.len().min(self.rx.len());
            for slot in out.iter_mut().take(n) {
                let d = self.rx.pop_front().expect("counted above");
                let i = (d.addr / FRAME as u64) as usize;
                if d.addr < FRAMES * FRAME as u64 && self.lent[i] {
                    self.lent[i] = false;
                }
                *slot = d;
            }
            n
        }
        fn tx_room(&mut self) -> usize {
            self.ring - self.tx.len()
        }
        fn tx_unsent(&mut self) -> usize {
            self.tx.len()
        }
        fn transmit(&mut self, sends: &[Desc]) -> usize {
            let n = (self.ring - self.tx.len()).min(sends.len());
            for d in &sends[..n] {
                if d.len == 0 || (d.addr % FRAME as u64) + d.len as u64 > FRAME as u64 {
                    self.invalid_tx += 1;
                }
                self.tx.push_back(*d);
                self.packets_transmitted += u64::from(d.options & XDP_PKT_CONTD == 0);
            }
            // A packet cut in two on the ring is as invalid as a bad descriptor.
            if self.tx.back().is_some_and(|d| d.options & XDP_PKT_CONTD != 0) {
                self.invalid_tx += 1;
            }
            n
        }
        fn fill_needs_wakeup(&self) -> bool {
            false
        }
        fn tx_needs_wakeup(&self) -> bool {
            true
        }
        fn kick_rx(&mut self) {}
        fn kick_tx(&mut self) -> Kick {
            if self.refusing {
                return Kick::Failed(libc::ENXIO);
            }
            if self.busy {
                self.send(1);
                return Kick::Busy;
            }
            if self.late_consumer {
                if self.taken == self.window {
                    (self.taken, self.window) = (0, self.tx.len());
                }
                self.taken += (self.window - self.taken).min(32);
                if self.taken == self.window {
                    let published = self.tx.drain(..self.taken).map(|d| d.addr);
                    self.in_flight.extend(published);
                    (self.taken, self.window) = (0, 0);
                }
                return if self.tx.len() > self.taken { Kick::Again } else { Kick::Done };
            }
            if !self.stalled {
                self.send(32);
            }
            if self.tx.is_empty() { Kick::Done } else { Kick::Again }
        }
        fn statistics(&self) -> SocketStats {
            SocketStats { tx_invalid_descs: self.invalid_tx, ..SocketStats::default() }
        }
        unsafe fn frames<'a>(&'a mut self, chunks: &[u64], out: &mut ArrayVec<&'a mut [u8], MAX_LENT>) {
            let mut picked: Vec<Option<&'a mut [u8]>> = (0..chunks.len()).map(|_| None).collect();
            for (i, frame) in self.memory.iter_mut().enumerate() {
                if let Some(pos) = chunks.iter().position(|&c| c == (i * FRAME) as u64) {
                    picked[pos] = Some(&mut frame[..]);
                }
            }
            out.extend(picked.into_iter().map(|f| f.expect("every chunk is a frame of the model")));
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deliver {
            n: usize,
            len: u32,
            parts: usize,
            bad_len: bool,
            bogus: usize,
        },
        KernelSends(usize),
        /// A poll; verdict seeds pick each frame's fate.
        Poll(Vec<u8>),
        Spill {
            count: usize,
            len: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0..80usize,
                0..2000u32,
                prop_oneof![8 => Just(1usize), 2 => 2..5usize],
                prop::bool::weighted(0.05),
                prop_oneof![9 => Just(0usize), 1 => 1..3usize],
            )
                .prop_map(|(n, len, parts, bad_len, bogus)| Op::Deliver { n, len, parts, bad_len, bogus }),
            (0..100usize).prop_map(Op::KernelSends),
            prop::collection::vec(any::<u8>(), 64).prop_map(Op::Poll),
            (0..130usize, prop_oneof![Just(0usize), 1..FRAME, Just(FRAME), Just(FRAME + 1)])
                .prop_map(|(count, len)| Op::Spill { count, len }),
        ]
    }

    /// A spill of `count` packets, the `i`th of 100 + `i` bytes.
    fn spill_of(count: usize) -> Spill {
        let mut spill = Spill::new(crate::pipeline::SPILL_SLOTS, FRAME + 64);
        for i in 0..count {
            let slot = spill.next_slot().unwrap();
            slot[HEADROOM..HEADROOM + 100 + i].fill(0xab);
            spill.push(HEADROOM, 100 + i, TxReason::Fragment, None);
        }
        spill
    }

    /// Spilled packets the tx ring has no room for are counted once, as `tx_ring_full`, and
    /// marked unsent (the last ones: the ring takes them in order); frames are conserved.
    #[test]
    fn a_spill_into_a_full_tx_ring_counts_each_unsent_packet_once() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        // The kernel sends nothing: the two spills fill the 64-entry ring and overflow it.
        let mut total_unsent = 0;
        for round in 0..2 {
            let before = io.stats();
            let mut spill = spill_of(50);
            let unsent = io.send_spill(&mut spill).unwrap();
            let after = io.stats();
            assert_eq!(after.tx_ring_full - before.tx_ring_full, unsent as u64);
            assert_eq!(after.spill_no_frame, before.spill_no_frame, "frames were free");
            let marked: Vec<usize> = spill.unsent().map(|(_, len, _)| len - 100).collect();
            let fitted = if round == 0 { 50 } else { RING - 50 };
            assert_eq!(marked, (fitted..50).collect::<Vec<_>>(), "round {round}");
            total_unsent += unsent;
            assert!(after.frames.is_conserved(), "{:?}", after.frames);
        }
        assert_eq!(total_unsent, 100 - RING, "what did not fit the ring");
    }

    /// A packet of several frames sent longer than it came (as the pipeline may make it) can
    /// need more of the tx ring than the batch was held to: one the ring has no room for is
    /// said unsent, for the worker to take off its `tx` counts, and counted as
    /// `tx_ring_full`; the packet before it goes.
    #[test]
    fn a_packet_the_tx_ring_has_no_room_for_is_said_unsent() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING - 3)).unwrap();
        io.xsk.deliver(1, 100, 1, false, 0);
        io.xsk.deliver(1, 100, 2, false, 0);
        let before = io.stats();
        io.poll(0, &mut |frames| {
            assert_eq!(frames.len(), 2);
            frames[0].verdict =
                Verdict::Tx { start: frames[0].start, len: frames[0].len, reason: TxReason::Encapsulated };
            // Every part full: MAX_PARTS frames to send, three places on the ring.
            frames[1].verdict = Verdict::Tx { start: 0, len: MAX_PARTS * FRAME, reason: TxReason::Encapsulated };
        })
        .unwrap();
        assert_eq!(io.unsent(), [1]);
        let after = io.stats();
        assert_eq!((after.tx_ring_full - before.tx_ring_full, after.bad_tx - before.bad_tx), (1, 0));
        assert_eq!(io.xsk.invalid_tx, 0);
        assert!(after.frames.is_conserved(), "{:?}", after.frames);
        io.poll(0, &mut |_| {}).unwrap();
        assert!(io.unsent().is_empty(), "said of the poll that had them only");
    }

    /// Packets of several frames that leave in more frames than they came in (a GRE fragment
    /// that completes a datagram), then single frames: more descriptors than one list holds.
    /// Those staged go to the ring before the list is full (a push past it panicked the
    /// worker), whole packets only, and what the ring has no room for is said unsent.
    #[test]
    fn packets_that_grow_past_the_batchs_descriptors_are_sent_or_said_unsent() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.deliver(20, 100, 2, false, 0);
        io.xsk.deliver(24, 100, 1, false, 0);
        let before = io.stats();
        let (mut grown, mut single) = (0, 0);
        io.poll(0, &mut |frames| {
            assert_eq!(frames.len(), 44);
            for f in frames.iter_mut() {
                if f.len > FRAME {
                    // Three frames out for the two that came in.
                    f.verdict = Verdict::Tx { start: 0, len: 2 * FRAME + 1, reason: TxReason::Decapsulated };
                    grown += 1;
                } else {
                    f.verdict = Verdict::Tx { start: f.start, len: f.len, reason: TxReason::Encapsulated };
                    single += 1;
                }
            }
        })
        .unwrap();
        assert_eq!((grown, single), (20, 24));
        // 60 + 24 descriptors, more than MAX_LENT; the ring takes RING of them: the grown
        // packets and four single ones, the other 20 said unsent.
        let after = io.stats();
        assert_eq!((after.tx - before.tx, after.tx_ring_full - before.tx_ring_full), (RING as u64, 20));
        assert_eq!(io.unsent(), (24..44).collect::<Vec<u16>>());
        assert_eq!(io.xsk.invalid_tx, 0);
        assert!(io.stats().frames.is_conserved(), "{:?}", io.stats().frames);
    }

    /// A full tx ring the kernel does not drain leaves no room to receive into: the poll says
    /// there is work (`Frames(0)`), not `Idle`, which had the worker sleep `--idle-sleep-us`
    /// with frames waiting in the rx ring; nor is it counted as an idle poll.
    #[test]
    fn a_poll_held_back_by_a_full_tx_ring_is_not_idle() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING)).unwrap();
        assert_eq!(io.xsk.tx_room(), 0, "the ring is full");
        let idle_before = io.stats().idle_polls;
        assert_eq!(io.poll(0, &mut |_| {}).unwrap(), Polled::Frames(0));
        assert_eq!(io.stats().idle_polls, idle_before);
        // Drained, an empty rx ring is idle again.
        io.xsk.stalled = false;
        io.xsk.send(RING);
        assert_eq!(io.poll(0, &mut |_| {}).unwrap(), Polled::Idle);
    }

    /// A full tx ring the kernel refuses to send from (the device gone) is idle: the worker
    /// sleeps on it rather than spinning; under busy polling a held-back poll still asks
    /// the driver to run.
    #[test]
    fn a_poll_held_back_by_a_ring_the_kernel_refuses_is_idle() {
        let mut io = AfXdpIo::with_socket(Model { refusing: true, ..Model::new() }, true);
        io.send_spill(&mut spill_of(RING)).unwrap();
        assert_eq!(io.xsk.tx_room(), 0);
        let kicks = io.stats().kicks;
        assert_eq!(io.poll(0, &mut |_| {}).unwrap(), Polled::Idle);
        assert!(io.stats().kick_errors > 0);
        // The tx kick and, busy polling, the rx kick.
        assert_eq!(io.stats().kicks - kicks, 2);
        io.xsk.refusing = false;
        io.xsk.stalled = true;
        assert_eq!(io.poll(0, &mut |_| {}).unwrap(), Polled::Frames(0), "a kick that works: waiting for the ring");
    }

    /// Frames on the tx ring with none completing for a second (a kernel that takes the
    /// kicks and sends nothing) are a stall: said once and counted, and a poll the full ring
    /// holds back is idle then (the worker sleeps rather than spins). Sending again ends it;
    /// a second stall is counted again. The watch starts at the first poll that sees frames
    /// waiting, not at the clock's zero.
    #[test]
    fn a_tx_ring_the_kernel_sends_nothing_from_is_a_stall() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING)).unwrap();
        let t0 = 5 * TX_STALL_NS;
        let poll_at = |io: &mut AfXdpIo<Model>, now: u64| {
            let polled = io.poll(now, &mut |_| {}).unwrap();
            (polled, io.stats().tx_stalls)
        };
        assert_eq!(poll_at(&mut io, t0), (Polled::Frames(0), 0), "just begun");
        assert_eq!(poll_at(&mut io, t0 + TX_STALL_NS - 1), (Polled::Frames(0), 0));
        assert_eq!(poll_at(&mut io, t0 + TX_STALL_NS), (Polled::Idle, 1), "a second with nothing sent");
        assert_eq!(poll_at(&mut io, t0 + 3 * TX_STALL_NS), (Polled::Idle, 1), "counted once");
        io.xsk.stalled = false;
        io.xsk.send(RING);
        assert_eq!(poll_at(&mut io, t0 + 4 * TX_STALL_NS), (Polled::Idle, 1), "sent: nothing to receive");
        // The watch runs from a poll that saw the ring empty (a worker polls all the time).
        let t1 = t0 + 5 * TX_STALL_NS;
        assert_eq!(poll_at(&mut io, t1), (Polled::Idle, 1));
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING)).unwrap();
        assert_eq!(poll_at(&mut io, t1), (Polled::Frames(0), 1));
        assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS), (Polled::Idle, 2), "a second stall");
        // A kernel that completes a frame at least once a second is slow, not stalled.
        for k in 1..=4 {
            io.xsk.send(1);
            assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS + k * TX_STALL_NS * 9 / 10).1, 2, "poll {k}");
        }
        assert!(io.stats().frames.is_conserved(), "{:?}", io.stats().frames);
    }

    /// A kernel that takes nothing off the tx ring (EAGAIN for a busy device or a full
    /// socket buffer) is kicked STALE_KICKS times per attempt, not MAX_KICKS times in a row.
    #[test]
    fn a_kernel_that_takes_nothing_is_not_kicked_in_a_loop() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        let before = io.stats().kicks;
        io.send_spill(&mut spill_of(10)).unwrap();
        let kicks = io.stats().kicks - before;
        assert_eq!(kicks as usize, STALE_KICKS);
    }

    /// A kernel that says busy is not kicked again this poll, and is counted.
    #[test]
    fn a_busy_kernel_is_counted_and_left_for_the_next_poll() {
        let mut io = AfXdpIo::with_socket(Model { busy: true, ..Model::new() }, true);
        io.send_spill(&mut spill_of(10)).unwrap();
        let stats = io.stats();
        assert_eq!((stats.kicks, stats.kick_busy, stats.kick_errors), (1, 1, 0));
        assert_eq!(io.xsk.tx.len(), 9, "the rest waits for the next poll's kick");
    }

    /// A kernel that publishes its consumer index late (before 6.17) is kicked until it
    /// has taken what is on the ring, not given up on after its first 32 frames seemed to
    /// go nowhere.
    #[test]
    fn a_kernel_that_publishes_what_it_took_late_is_kicked_on() {
        let mut io = AfXdpIo::with_socket(Model { late_consumer: true, ..Model::new() }, true);
        // 40 frames: one transmission and one kick_tx (a spill is sent in chunks of 46).
        assert_eq!(io.send_spill(&mut spill_of(40)).unwrap(), 0);
        assert!(io.xsk.tx.is_empty(), "{} of 40 still on the ring", io.xsk.tx.len());
        io.xsk.complete();
        io.poll(0, &mut |_| {}).unwrap();
        assert!(io.stats().frames.is_conserved(), "{:?}", io.stats().frames);
    }

    /// With no more frames than the fill ring holds (`--frames` equal to the ring size),
    /// the ring is not given them all: a probe or fragment can still be written and sent on
    /// an idle queue, and under traffic.
    #[test]
    fn a_fill_ring_as_large_as_the_umem_leaves_frames_to_send_from() {
        let mut io = AfXdpIo::with_socket(Model { ring: FRAMES as usize, ..Model::new() }, true);
        for round in 0..4 {
            if round % 2 == 1 {
                // Traffic: a batch arrives and is dropped, its frames back on the free list.
                io.xsk.deliver(64, 100, 1, false, 0);
                io.poll(0, &mut |frames| {
                    for f in frames.iter_mut() {
                        f.verdict = Verdict::Drop(DropReason::Firewall);
                    }
                })
                .unwrap();
            }
            assert_eq!(io.send_spill(&mut spill_of(4)).unwrap(), 0, "round {round}: {:?}", io.stats());
            io.xsk.send(4);
            io.poll(0, &mut |_| {}).unwrap();
            assert!(io.stats().frames.is_conserved());
        }
        assert_eq!(io.stats().spill_no_frame, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn every_frame_is_in_one_place_whatever_happens(
            ops in prop::collection::vec(op(), 1..60),
            late_consumer in any::<bool>(),
        ) {
            let mut io = AfXdpIo::with_socket(Model { late_consumer, ..Model::new() }, true);
            for op in ops {
                match op {
                    Op::Deliver { n, len, parts, bad_len, bogus } => io.xsk.deliver(n, len, parts, bad_len, bogus),
                    // Such a kernel sends when kicked; the NIC completes later.
                    Op::KernelSends(_) if late_consumer => io.xsk.complete(),
                    Op::KernelSends(n) => io.xsk.send(n),
                    Op::Poll(seeds) => {
                        let mut serials = Vec::new();
                        let mut is_tx = Vec::new();
                        let (before, transmitted) = (io.stats(), io.xsk.packets_transmitted);
                        io.poll(0, &mut |frames| {
                            for (f, &seed) in frames.iter_mut().zip(&seeds) {
                                let at = f.start;
                                serials.push(u32::from_be_bytes(f.buf[at..at + 4].try_into().unwrap()));
                                f.verdict = match seed % 6 {
                                    0 => Verdict::Drop(DropReason::Firewall),
                                    1 => Verdict::Tx { start: f.start, len: f.len, reason: TxReason::Encapsulated },
                                    // Encapsulated into the headroom, as the pipeline does.
                                    2 => Verdict::Tx { start: f.start - 38, len: f.len + 38, reason: TxReason::Encapsulated },
                                    // Bad transmissions the backend must refuse, not send.
                                    3 => Verdict::Tx { start: f.start, len: 0, reason: TxReason::Encapsulated },
                                    4 => Verdict::Tx { start: FRAME - 10, len: 20, reason: TxReason::Encapsulated },
                                    _ => Verdict::Pass(crate::pipeline::PassReason::NoCustomer),
                                };
                            }
                            is_tx.extend(frames.iter().map(|f| matches!(f.verdict, Verdict::Tx { .. })));
                        }).unwrap();
                        // Every packet to send is on the ring or said unsent (once), and each
                        // unsent one counted under one reason.
                        let unsent = io.unsent().to_vec();
                        let mut distinct = unsent.clone();
                        distinct.sort_unstable();
                        distinct.dedup();
                        prop_assert_eq!(distinct.len(), unsent.len(), "a packet said unsent twice");
                        prop_assert!(unsent.iter().all(|&i| is_tx.get(usize::from(i)) == Some(&true)), "{:?}", unsent);
                        let to_send = is_tx.iter().filter(|&&t| t).count() as u64;
                        prop_assert_eq!(io.xsk.packets_transmitted - transmitted, to_send - unsent.len() as u64);
                        let after = io.stats();
                        let counted = (after.tx_ring_full - before.tx_ring_full) + (after.bad_tx - before.bad_tx);
                        prop_assert_eq!(counted, unsent.len() as u64);
                        // Lent frames hold what the model delivered, each once.
                        let mut sorted = serials.clone();
                        sorted.sort_unstable();
                        sorted.dedup();
                        prop_assert_eq!(sorted.len(), serials.len(), "a frame lent twice");
                        prop_assert!(serials.iter().all(|&s| s > 0), "a frame the model did not deliver");
                    }
                    Op::Spill { count, len } => {
                        let mut spill = Spill::new(crate::pipeline::SPILL_SLOTS, FRAME + 64);
                        for _ in 0..count.min(crate::pipeline::SPILL_SLOTS) {
                            if let Some(slot) = spill.next_slot() {
                                let n = len.min(slot.len() - HEADROOM);
                                slot[HEADROOM..HEADROOM + n].fill(0xab);
                                spill.push(HEADROOM, n, TxReason::Fragment, None);
                            }
                        }
                        let before = io.stats();
                        let unsent = io.send_spill(&mut spill).unwrap();
                        prop_assert_eq!(spill.unsent().count(), unsent, "each unsent packet marked");
                        // What reached the ring is what was not marked (in frames of the UMEM).
                        let frames_of = |len: usize| len.div_ceil(io.xsk.frame_size()) as u64;
                        let all: u64 = (0..spill.len()).map(|i| frames_of(spill.frame(i).len())).sum();
                        let marked: u64 = spill.unsent().map(|(_, len, _)| frames_of(len)).sum();
                        prop_assert_eq!(io.stats().tx - before.tx, all - marked);
                        // Every packet not sent is counted once, under one reason.
                        let after = io.stats();
                        let counted = (after.tx_ring_full - before.tx_ring_full) + (after.spill_no_frame - before.spill_no_frame) + (after.bad_tx - before.bad_tx);
                        prop_assert_eq!(counted, unsent as u64);
                    }
                }
                let frames = io.stats().frames;
                prop_assert!(frames.is_conserved(), "{:?}", frames);
                let lent = io.places.iter().filter(|p| **p == Place::Lent).count() as u64;
                prop_assert_eq!(frames.held, lent, "the lent count disagrees with the places table");
                let (fill_side, tx_side) = io.xsk.held();
                prop_assert_eq!(frames.in_fill, fill_side, "fill side disagrees with the model");
                prop_assert_eq!(frames.in_tx, tx_side, "tx side disagrees with the model");
                prop_assert_eq!(io.xsk.invalid_tx, 0, "an invalid descriptor reached the tx ring");
            }
        }
    }
}
