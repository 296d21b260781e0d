//! The receive side: topping the fill ring up, waking the kernel's receive path, and taking
//! received descriptors into whole packets, each frame checked against the frame table (a
//! packet of several frames may have begun in an earlier poll).

use arrayvec::ArrayVec;

use super::frames::{KEPT_FREE, Place};
use super::{AfXdpIo, Desc, MAX_LENT, MAX_PARTS, XDP_PKT_CONTD, Xsk};
use crate::pipeline::BATCH_SIZE;

/// The frames of one packet as received: `(chunk, offset, len)` each.
pub(super) type Parts = ArrayVec<(u64, usize, usize), MAX_PARTS>;

/// One received packet: in one frame (lent in place), or in several (`parts[first..][..count]`
/// of the batch, copied into one of the backend's contiguous buffers, since the pipeline reads
/// a packet as one slice).
#[derive(Clone, Copy)]
pub(super) enum Packet {
    Single { chunk: u64, offset: usize, len: usize },
    Multi { first: usize, count: usize },
}

/// The frames of a batch's packets of several frames, in order.
pub(super) type BatchParts = ArrayVec<(u64, usize, usize), MAX_LENT>;

impl<X: Xsk> AfXdpIo<X> {
    /// Gives free frames to the kernel to receive into, once half the fill ring has run dry:
    /// the kernel consumes the ring on another CPU, and topping it up every poll made the
    /// ring's cache lines travel between the two for a frame or two at a time (DPDK's af_xdp
    /// PMD waits for half as well).
    pub(super) fn refill(&mut self) {
        if self.xsk.fill_room() < self.xsk.fill_size() / 2 {
            return;
        }
        self.refill_now();
    }

    pub(super) fn refill_now(&mut self) {
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
    pub(super) fn wake_rx(&mut self, busy: bool) {
        if busy || self.xsk.fill_needs_wakeup() {
            self.xsk.kick_rx();
            self.stats.kicks += 1;
        }
    }

    /// Takes the next received descriptors into whole packets (a packet of several frames
    /// may have begun in an earlier poll). Each frame is checked against the table; a packet
    /// with a refused frame is refused whole, its frames freed.
    pub(super) fn assemble(
        &mut self,
        descs: &[Desc],
        packets: &mut ArrayVec<Packet, BATCH_SIZE>,
        batch_parts: &mut BatchParts,
    ) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::FrameIo;
    use crate::io::afxdp::model::{FRAMES, Model, spill_of};
    use crate::pipeline::{DropReason, Verdict};

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
}
