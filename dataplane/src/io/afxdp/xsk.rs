//! The kernel side of one AF_XDP socket as the bookkeeping sees it: the descriptor, the
//! answer to a transmit kick, the `Xsk` trait over the four rings and the UMEM's frames (the
//! real socket is in `umem.rs`, the tests' model in `model.rs`), and the limits on the frames
//! of one packet and of one poll.

use arrayvec::ArrayVec;

use crate::io::SocketStats;
use crate::pipeline::BATCH_SIZE;

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
///
/// [`XskSocket`]: crate::io::afxdp::XskSocket
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

/// `XDP_PKT_CONTD` (if_xdp.h): more frames of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1;

/// Frames one packet may span: the kernel writes each received frame past 256 bytes of
/// headroom (3840 bytes of packet in a 4 KiB frame), so a 64 KiB packet takes 18, the first
/// buffer and `MAX_SKB_FRAGS` (17) fragments, as many as the kernel allows. (17 left packets
/// of 65,281-65,536 bytes refused as `bad_descriptors`.)
pub const MAX_PARTS: usize = 18;

/// Frames lent at once at most: a batch of descriptors and a packet begun in the poll before.
pub const MAX_LENT: usize = BATCH_SIZE + MAX_PARTS;
