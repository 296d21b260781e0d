//! The frames the core works on: a received frame lent to it for one batch ([`Frame`]),
//! and the worker's buffers for frames it originates beyond those ([`Spill`]). Backends
//! fill the one and send the other; nothing here knows where bytes come from or go.

use super::verdict::{DropReason, TxReason, Verdict};
use crate::snapshot::TunnelId;

/// Frames per batch.
pub const BATCH_SIZE: usize = 64;

/// Bytes kept free in front of every received frame for the outer headers encapsulation
/// writes (the same reserve XDP keeps, `XDP_PACKET_HEADROOM`).
pub const HEADROOM: usize = 256;

/// One received frame, lent to the pipeline for the duration of a batch.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The whole buffer: headroom, then the frame, then spare room.
    pub buf: &'a mut [u8],
    /// Offset of the frame's first byte in `buf`.
    pub start: usize,
    /// Bytes of frame received.
    pub len: usize,
    /// Length on the wire (larger than `len` for a truncated capture), for `frame.len`: of
    /// this frame, whose Ethernet header replay may have written for a raw-IP or cooked
    /// capture (`io::capture::data_plane_wire_len`).
    pub wire_len: u32,
    /// Bytes on the wire past the frame's end that a capture left out (a replayed frame cut
    /// by its snap length; 0 for a live frame): what a frame written out again says it
    /// lacks.
    pub uncaptured_len: u32,
    /// Receive time in nanoseconds since the Unix epoch (capture time in replay, never
    /// running back): the clock the pipeline's rate limits and timers read.
    pub timestamp_ns: u64,
    /// The time the frame is stamped with when written out again (`replay --out`, a drop
    /// capture): a replayed frame's own capture time, as tshark shows it, which is earlier
    /// than `timestamp_ns` where the capture's time went back (a merged capture); a live
    /// frame's receive time.
    pub captured_ns: u64,
    /// Set by the pipeline.
    pub verdict: Verdict,
}

impl<'a> Frame<'a> {
    /// A frame of `len` bytes at `start` of `buf`, not yet decided.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize, wire_len: u32, timestamp_ns: u64) -> Self {
        // Until the pipeline runs, a frame is "dropped, truncated": a backend that forgot to
        // run the pipeline sends nothing.
        Frame {
            buf,
            start,
            len,
            wire_len,
            uncaptured_len: 0,
            timestamp_ns,
            captured_ns: timestamp_ns,
            verdict: Verdict::Drop(DropReason::Truncated),
        }
    }

    /// The frame's bytes as received (or as rewritten, before `Tx` moves the start).
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.start + self.len).unwrap_or(&[])
    }

    /// The bytes to transmit, for a `Tx` verdict.
    pub fn tx_bytes(&self) -> Option<&[u8]> {
        match self.verdict {
            Verdict::Tx { start, len, .. } => self.buf.get(start..start + len),
            _ => None,
        }
    }
}

/// Frames the pipeline originates beyond the one it was handed (the later fragments of a
/// datagram, health probes), written into buffers the worker owns, fixed at start-up, and
/// sent by the backend after the batch (`FrameIo::send_spill`, in the I/O layer above this one).
///
/// A frame is counted as sent when it is pushed (the pipeline's counters are the batch's);
/// a backend that cannot send one marks it ([`Spill::mark_unsent`]), and the worker takes
/// it off the counters again before the spill is cleared.
#[derive(Debug)]
pub struct Spill {
    buf: Box<[u8]>,
    slot_size: usize,
    frames: Vec<SpilledFrame>,
    /// Capture time of the frame being processed ([`Frame::captured_ns`]): what a frame
    /// pushed now is stamped with.
    pub timestamp_ns: u64,
}

/// One frame of a [`Spill`].
#[derive(Clone, Copy, Debug)]
struct SpilledFrame {
    /// Where it is inside its slot.
    start: usize,
    len: usize,
    /// The capture time of the frame it came from (for capture files).
    time: u64,
    /// What it was counted as.
    reason: TxReason,
    /// The tunnel it was sent into (a later fragment, a probe), counted in its `sent`.
    tunnel: Option<TunnelId>,
    /// The backend could not send it.
    unsent: bool,
}

impl Spill {
    /// Room for `slots` frames of up to `frame_size` bytes, each with [`HEADROOM`] in front.
    pub fn new(slots: usize, frame_size: usize) -> Spill {
        let slot_size = HEADROOM + frame_size;
        Spill {
            buf: vec![0; slots * slot_size].into_boxed_slice(),
            slot_size,
            frames: Vec::with_capacity(slots),
            timestamp_ns: 0,
        }
    }

    /// Slots still free.
    pub fn room(&self) -> usize {
        self.buf.len() / self.slot_size - self.frames.len()
    }

    /// The next free slot's buffer, to be written and then [`push`](Spill::push)ed.
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let at = self.frames.len() * self.slot_size;
        self.buf.get_mut(at..at + self.slot_size)
    }

    /// Commits the next slot: a frame of `len` bytes at `start` of it, sent as `reason`
    /// (into `tunnel`, if it goes into one).
    pub fn push(&mut self, start: usize, len: usize, reason: TxReason, tunnel: Option<TunnelId>) {
        if self.room() > 0 && start + len <= self.slot_size {
            self.frames.push(SpilledFrame { start, len, time: self.timestamp_ns, reason, tunnel, unsent: false });
        }
    }

    /// The `index`th frame's bytes (empty past the last).
    pub fn frame(&self, index: usize) -> &[u8] {
        self.frames.get(index).map_or(&[], |f| {
            let at = index * self.slot_size + f.start;
            &self.buf[at..at + f.len]
        })
    }

    /// Marks the `index`th frame as not sent (a backend out of buffers or ring room).
    pub fn mark_unsent(&mut self, index: usize) {
        if let Some(f) = self.frames.get_mut(index) {
            f.unsent = true;
        }
    }

    /// What each frame from the `index`th on is counted as: its reason, length and tunnel.
    pub fn counted_from(&self, index: usize) -> impl Iterator<Item = (TxReason, usize, Option<TunnelId>)> + '_ {
        self.frames.get(index..).unwrap_or(&[]).iter().map(|f| (f.reason, f.len, f.tunnel))
    }

    /// [`Spill::counted_from`] for the frames marked unsent.
    pub fn unsent(&self) -> impl Iterator<Item = (TxReason, usize, Option<TunnelId>)> + '_ {
        self.frames.iter().filter(|f| f.unsent).map(|f| (f.reason, f.len, f.tunnel))
    }

    /// Frames waiting to be sent.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames, in order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.stamped().map(|(_, bytes)| bytes)
    }

    /// [`Spill::frames`], each with the receive time of the frame it came from.
    pub fn stamped(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.frames.iter().enumerate().map(|(i, f)| (f.time, self.frame(i)))
    }

    /// Forgets every frame (after sending).
    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// Forgets the frames from the `len`th on (made for a packet that was then dropped).
    pub fn truncate(&mut self, len: usize) {
        self.frames.truncate(len);
    }
}
