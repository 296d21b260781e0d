//! The backend's [`FrameIo`] implementation: a poll (reclaim, refill, receive a batch with
//! backpressure, lend it to the pipeline, settle every packet by its verdict, kick), the
//! sending of spilled frames, and the counts.

use std::io;
use std::sync::atomic::Ordering;

use arrayvec::ArrayVec;

use super::rx::{BatchParts, Packet};
use super::{AfXdpIo, Desc, MAX_LENT, MAX_PARTS, Xsk};
use crate::io::{FrameCount, FrameIo, IoStats, Polled};
use crate::pipeline::{BATCH_SIZE, Frame, HEADROOM, Spill, Verdict};

/// The steps of a poll, each called once per poll from [`FrameIo::poll`] (`#[inline]`: one
/// call site each, so splitting the poll adds no call, and none of them runs per packet but
/// the few noted).
impl<X: Xsk> AfXdpIo<X> {
    /// How many descriptors this poll may take: no more frames than could be sent, after
    /// letting the kernel send if the tx ring has less than a batch of room. A short batch is
    /// counted as `backpressure`.
    #[inline]
    fn rx_budget(&mut self) -> usize {
        // Backpressure: take no more frames than could be sent; first let the kernel send.
        let mut room = self.xsk.tx_room();
        if room < BATCH_SIZE {
            self.kick_tx();
            self.reclaim();
            room = self.xsk.tx_room();
        }
        // A packet begun in an earlier poll will be sent with this poll's: its frames held so
        // far need room too. Once backpressure has ended (a stopping worker that has waited),
        // a whole batch: what does not fit is counted as `tx_ring_full` by `send`.
        let want = match self.backpressure_ended {
            true => BATCH_SIZE,
            false => room.saturating_sub(self.partial.len()).min(BATCH_SIZE),
        };
        if want < BATCH_SIZE {
            self.stats.backpressure += 1;
        }
        want
    }

    /// A poll that took nothing because the tx ring had no room.
    #[inline]
    fn held_back(&mut self) -> Polled {
        // Not idle: frames wait in the receive ring while the transmit ring drains
        // (reported as idle, the worker slept `--idle-sleep-us` with both rings full). The
        // driver is asked to run as an empty poll asks it (under busy polling nothing else
        // reaps the completions); a ring the kernel refuses to send from (a failed kick:
        // the device down or gone) or has sent nothing from for a while (a stall) is idle
        // after all, so that the worker sleeps rather than spins on it.
        self.wake_rx(self.busy_poll);
        let stuck = self.kick_error_said.is_some() || self.tx_watch.stalled;
        if stuck { Polled::Idle } else { Polled::Frames(0) }
    }

    /// A poll that found the receive ring empty.
    #[inline]
    fn idle(&mut self) -> Polled {
        self.stats.idle_polls += 1;
        self.kick_tx();
        self.wake_rx(self.busy_poll);
        Polled::Idle
    }

    /// Lends the batch's packets to `process` as frames (a packet of one frame in place in
    /// the UMEM, one of several copied into its contiguous buffer) and returns their
    /// verdicts, in order: fewer than `packets` only if a view or buffer was missing, and
    /// [`AfXdpIo::settle`] drops the packets past them.
    #[inline]
    fn lend(
        &mut self,
        packets: &[Packet],
        parts: &BatchParts,
        now: u64,
        process: &mut dyn FnMut(&mut [Frame<'_>]),
    ) -> ArrayVec<Verdict, BATCH_SIZE> {
        // Every frame of the batch's packets, in order.
        let mut chunks: ArrayVec<u64, MAX_LENT> = ArrayVec::new();
        for p in packets {
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
        for p in packets {
            let frame = match *p {
                Packet::Single { offset, len, .. } => {
                    let Some(view) = views.next() else { break };
                    Frame::new(view, offset, len, len as u32, now)
                }
                Packet::Multi { first, count } => {
                    // No buffer only on a socket bound without multi-buffer, which the kernel
                    // gives no packet of several frames.
                    let Some(buf) = jumbo.next() else { break };
                    let len = gather(&mut views, &parts[first..first + count], buf);
                    Frame::new(&mut buf[..], HEADROOM, len, len as u32, now)
                }
            };
            frames.push(frame);
        }
        process(&mut frames);
        frames.iter().map(|f| f.verdict).collect()
    }

    /// Settles every packet of the batch by its verdict (`verdicts`, in order): what to send
    /// is staged and put on the tx ring (a single frame from where the verdict says in its
    /// own frame; a packet of several frames copied back into frames of its own), the frames
    /// of the rest go back on the free list, and a `Tx` not carried out is counted and said
    /// unsent.
    #[inline]
    fn settle(&mut self, packets: &[Packet], parts: &BatchParts, verdicts: &[Verdict]) {
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
                    self.refuse_tx(i);
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
                    if self.stage_copied(i, jumbo_index, start, len, &mut owned, &mut sends) {
                        staged.push((i as u16, first));
                    }
                }
                (_, Some(_)) => {
                    self.refuse_tx(i);
                    self.release_all(&owned);
                }
                (_, None) => self.release_all(&owned),
            }
            if matches!(p, Packet::Multi { .. }) {
                jumbo_index += 1;
            }
        }
        self.send_some(&mut sends, &mut staged);
    }

    /// Stages packet `i` of the batch, which came in several frames, from its contiguous
    /// buffer (`jumbo_index`) into frames with no headroom (`owned`, its own, and more or
    /// fewer as `len` needs). False if it was not: its frames are released and the refusal
    /// counted and said unsent (`bad_tx` for bytes `start..start + len` not in the buffer,
    /// `tx_no_frame` for no free frame to copy into). Per packet of several frames sent.
    #[inline]
    fn stage_copied(
        &mut self,
        i: usize,
        jumbo_index: usize,
        start: usize,
        len: usize,
        owned: &mut ArrayVec<u64, MAX_PARTS>,
        sends: &mut ArrayVec<Desc, MAX_LENT>,
    ) -> bool {
        // Copied out of its contiguous buffer (lent out of the table for the copy: taking the
        // box moves no bytes), into frames with no headroom.
        let buf = self.jumbo.get_mut(jumbo_index).map(std::mem::take).unwrap_or_default();
        // `None`: the verdict is empty or runs past its buffer, refused.
        let sent = match start.checked_add(len).filter(|_| len > 0).and_then(|end| buf.get(start..end)) {
            Some(bytes) => Some(self.stage(bytes, owned, sends)),
            None => {
                self.release_all(owned);
                None
            }
        };
        if let Some(slot) = self.jumbo.get_mut(jumbo_index) {
            *slot = buf;
        }
        match sent {
            Some(true) => true,
            // No free frame to copy it into (`stage` takes no more than a packet may have,
            // and the descriptors were flushed to make room).
            Some(false) => {
                self.stats.tx_no_frame += 1;
                self.unsent.push(i as u16);
                false
            }
            None => {
                self.refuse_tx(i);
                false
            }
        }
    }

    /// Packet `i`'s `Tx` verdict cannot be carried out (empty, or past its frame): counted as
    /// `bad_tx` and said unsent. Per packet so refused.
    #[inline]
    fn refuse_tx(&mut self, i: usize) {
        self.stats.bad_tx += 1;
        self.unsent.push(i as u16);
    }
}

/// Copies a packet's frames (`parts`, each `(chunk, offset, len)`, their views the next of
/// `views`) one after the other into `buf`, past its headroom; returns the packet's length.
/// Per packet of several frames received.
#[inline]
fn gather<'v>(views: &mut impl Iterator<Item = &'v mut [u8]>, parts: &[(u64, usize, usize)], buf: &mut [u8]) -> usize {
    let mut at = HEADROOM;
    for &(_, offset, len) in parts {
        let Some(view) = views.next() else { break };
        buf[at..at + len].copy_from_slice(&view[offset..offset + len]);
        at += len;
    }
    at - HEADROOM
}

impl<X: Xsk> FrameIo for AfXdpIo<X> {
    fn poll(&mut self, now: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> io::Result<Polled> {
        self.unsent.clear();
        self.reclaim();
        self.watch_tx(now);
        self.refill();
        let want = self.rx_budget();
        // Kept in self: zeroing a batch of descriptors on every (mostly idle) poll showed in
        // profiles.
        let mut descs = std::mem::take(&mut self.descs);
        let n = self.xsk.receive(&mut descs[..want]);
        self.stats.polls += 1;
        if want == 0 {
            self.descs = descs;
            return Ok(self.held_back());
        }
        if n == 0 {
            self.descs = descs;
            return Ok(self.idle());
        }
        let mut packets: ArrayVec<Packet, BATCH_SIZE> = ArrayVec::new();
        let mut parts = BatchParts::new();
        self.assemble(&descs[..n], &mut packets, &mut parts);
        self.descs = descs;
        let verdicts = self.lend(&packets, &parts, now, process);
        self.settle(&packets, &parts, &verdicts);
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

    fn end_backpressure(&mut self) {
        self.backpressure_ended = true;
    }

    fn link_mtu(&self) -> Option<usize> {
        Some(self.link_mtu.load(Ordering::Relaxed)).filter(|&mtu| mtu > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::afxdp::model::{FRAME, Model, RING, spill_of};
    use crate::pipeline::TxReason;

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

    /// Sends every frame of the batch as it came (a `Tx` verdict for each).
    fn send_each(frames: &mut [Frame<'_>]) {
        for f in frames.iter_mut() {
            f.verdict = Verdict::Tx { start: f.start, len: f.len, reason: TxReason::Encapsulated };
        }
    }

    /// Held back, a poll takes no more than the tx ring has room for and leaves the rest in
    /// the rx ring; with backpressure ended (a stopping worker) it takes the batch whatever
    /// the room: what fits is sent, the rest counted as `tx_ring_full` and said unsent, its
    /// frames back on the free list, and the rx ring is left empty.
    #[test]
    fn a_poll_after_backpressure_ended_takes_the_batch_and_counts_what_does_not_fit() {
        let mut io = AfXdpIo::with_socket(Model::new(), true);
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING - 4)).unwrap();
        io.xsk.deliver(10, 100, 1, false, 0);
        let before = io.stats();
        assert_eq!(io.poll(0, &mut send_each).unwrap(), Polled::Frames(4), "held back to the room");
        assert_eq!(io.poll(0, &mut send_each).unwrap(), Polled::Frames(0), "no room: none taken");
        assert_eq!(io.xsk.rx.len(), 6);
        io.end_backpressure();
        assert_eq!(io.poll(0, &mut send_each).unwrap(), Polled::Frames(6), "the rest, whatever the room");
        assert_eq!(io.unsent(), [0, 1, 2, 3, 4, 5]);
        let after = io.stats();
        assert_eq!(after.rx - before.rx, 10);
        assert_eq!((after.tx - before.tx, after.tx_ring_full - before.tx_ring_full), (4, 6));
        assert!(io.xsk.rx.is_empty());
        assert_eq!((io.xsk.tx.len(), io.xsk.invalid_tx), (RING, 0));
        assert!(after.frames.is_conserved(), "{:?}", after.frames);
        assert_eq!(io.poll(0, &mut send_each).unwrap(), Polled::Idle, "the rx ring is empty");
    }

    /// A worker stopped while its tx ring is full and the kernel refuses to send from it (the
    /// link set down, the device gone) empties its rx ring all the same: each frame is
    /// received and processed, and each it cannot send is counted as `tx_ring_full`, not as
    /// sent. Waiting for room that never came, the stop left them in the ring, counted
    /// nowhere (26 to 32 frames a queue on veth: the XDP program's `redirected` past the
    /// workers' `rx` and the socket's drops). What the model delivered is the oracle, as the
    /// program's `redirected` is live.
    #[test]
    fn a_worker_stopped_with_a_stuck_tx_ring_counts_every_frame_it_was_given() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;

        use gre::EthernetAddrs;

        use crate::snapshot::Snapshot;
        use crate::worker::Worker;

        const DELIVERED: usize = 10;
        let text = "[server]\nanycast = \"192.0.2.1\"\n[[customer]]\nname = \"c\"\nprefixes = [\"203.0.113.0/24\"]\n\
                    [[customer.tunnel]]\nname = \"a\"\nremote = \"198.51.100.1\"\n\
                    [[customer.route]]\nprefix = \"203.0.113.0/24\"\ntunnel = \"a\"\n";
        let snap = Arc::new(Snapshot::build(&crate::config::parse("t.toml", text).expect("parses")).expect("builds"));
        // UDP to the customer, which the pipeline encapsulates into its tunnel: each to send.
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 1])
            .ipv4([8, 8, 4, 4], [203, 0, 113, 5], 64)
            .udp(1000, 53)
            .write(&mut udp, &[0; 32])
            .expect("writes");
        let mut io = AfXdpIo::with_socket(Model { refusing: true, ..Model::new() }, true);
        io.send_spill(&mut spill_of(RING)).unwrap();
        assert_eq!(io.xsk.tx_room(), 0, "the tx ring is full");
        io.xsk.deliver(DELIVERED, udp.len() as u32, 1, false, 0);
        let xsk = &mut io.xsk;
        for d in &xsk.rx {
            let (frame, at) = ((d.addr / FRAME as u64) as usize, (d.addr % FRAME as u64) as usize);
            xsk.memory[frame][at..at + udp.len()].copy_from_slice(&udp);
        }
        assert_eq!(xsk.rx.len(), DELIVERED);
        let before = io.stats();
        let mut worker = Worker::new(io, snap.clone());
        let eth = EthernetAddrs { dst: [2, 0, 0, 0, 0, 0xbb], src: [2, 0, 0, 0, 0, 1] };
        let stop = AtomicBool::new(true);
        worker.run(&arc_swap::ArcSwap::new(snap), |_| Some(eth), &stop, std::time::Duration::ZERO).expect("runs");
        let (stats, io) = (worker.stats(), worker.io());
        assert_eq!(
            (stats.rx_frames, io.xsk.rx.len()),
            (DELIVERED as u64, 0),
            "(processed, left in the rx ring) of {DELIVERED} delivered"
        );
        let after = io.stats();
        assert_eq!(after.rx - before.rx, DELIVERED as u64);
        let tx_kind = Verdict::Tx { start: 0, len: 0, reason: TxReason::Encapsulated }.kind_index();
        assert_eq!(stats.customers[0][tx_kind].packets, DELIVERED as u64, "each was the pipeline's to send");
        assert_eq!(
            (after.tx - before.tx, after.tx_ring_full - before.tx_ring_full),
            (0, DELIVERED as u64),
            "none sent: each counted as finding the tx ring full"
        );
        assert_eq!((stats.tx_frames, stats.tx[TxReason::Encapsulated.index()]), (0, 0), "none counted as sent");
        assert_eq!(io.xsk.tx.len(), RING, "the stuck ring holds what it held");
        assert!(after.frames.is_conserved(), "{:?}", after.frames);
    }
}
