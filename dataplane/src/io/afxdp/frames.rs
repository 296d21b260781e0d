//! The table of where every UMEM frame is (free, given to the kernel to receive into, lent,
//! given to the kernel to send), the checked moves between those places, and the free list's
//! lending: a descriptor naming a frame that is not where it should be moves nothing.

use super::{AfXdpIo, Xsk};
use crate::pipeline::BATCH_SIZE;

/// Where one UMEM frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
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
pub(super) const KEPT_FREE: usize = 2 * BATCH_SIZE;

impl<X: Xsk> AfXdpIo<X> {
    pub(super) fn mask(&self) -> u64 {
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
    pub(super) fn shift(&mut self, chunk: u64, from: Place, to: Place) -> bool {
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
    pub(super) fn release(&mut self, chunk: u64) {
        if self.shift(chunk, Place::Lent, Place::Free) {
            self.free.push(chunk);
        }
    }

    /// Lent frames go back on the free list (a packet's, refused or not sent).
    #[inline]
    pub(super) fn release_all(&mut self, chunks: &[u64]) {
        for &c in chunks {
            self.release(c);
        }
    }

    /// Takes a free frame to write into, keeping a batch's worth for the fill ring
    /// (receiving comes first; the fill ring leaves [`KEPT_FREE`] for this).
    pub(super) fn take_free(&mut self) -> Option<u64> {
        if self.free.len() <= BATCH_SIZE {
            return None;
        }
        let chunk = self.free.pop()?;
        self.shift(chunk, Place::Free, Place::Lent);
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    //! The bookkeeping against a model of the kernel: random arrivals (some of them bad
    //! descriptors), random verdicts (some of them bad transmissions), spills of every size,
    //! full rings and a kernel that sends when it likes. After every step every frame is in
    //! exactly one place, the backend's counts agree with the model's, and every frame lent to
    //! the pipeline is the one the model delivered.

    use proptest::prelude::*;

    use super::*;
    use crate::io::FrameIo;
    use crate::io::afxdp::model::{FRAME, Model};
    use crate::pipeline::{DropReason, HEADROOM, Spill, TxReason, Verdict};

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
