//! The transmit side: taking completions back onto the free list, putting whole packets on
//! the tx ring (written into frames of their own when they did not come in one), kicking the
//! kernel to send, and watching for a ring it sends nothing from.

use std::io;

use arrayvec::ArrayVec;

use super::frames::Place;
use super::{AfXdpIo, Desc, Kick, MAX_LENT, MAX_PARTS, XDP_PKT_CONTD, Xsk};
use crate::pipeline::{BATCH_SIZE, Spill};

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
pub(super) struct TxWatch {
    completed: u64,
    since_ns: Option<u64>,
    /// The stall was said (and counted); said again when it ends.
    pub(super) stalled: bool,
}

impl<X: Xsk> AfXdpIo<X> {
    /// Takes completed transmissions back onto the free list; returns how many.
    pub(super) fn reclaim(&mut self) -> usize {
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
        // A frame completed that the kernel took after the failed kick: it sends again, and
        // the outage is over (said again if the kicks fail again), though no kick may have
        // worked since: a zero-copy driver sends without one while it asks for none.
        if self.stats.completed > self.completions_owed_at_refusal {
            self.kick_error_said = None;
        }
        let taken = done.len();
        self.completions = done;
        taken
    }

    /// Makes the kernel send what is on the tx ring. In copy mode it sends only inside
    /// sendto, 32 frames a call: kick until it has taken everything, says it is busy, or
    /// MAX_KICKS calls. In zero-copy mode the driver sends on its own, and the kernel says
    /// when it needs a kick.
    pub(super) fn kick_tx(&mut self) {
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
                    // Frames the kernel took before (a NIC's, sent or sending) complete
                    // whatever it does now: their completions end no outage.
                    let taken = self.count.in_tx.saturating_sub(self.xsk.tx_unsent() as u64);
                    self.completions_owed_at_refusal = self.stats.completed + taken;
                    if self.kick_error_said != Some(errno) {
                        self.kick_error_said = Some(errno);
                        log_line!(
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
    pub(super) fn watch_tx(&mut self, now: u64) {
        let (completed, waiting) = (self.stats.completed, self.count.in_tx);
        let refused = self.kick_error_said.is_some();
        let watch = &mut self.tx_watch;
        let since = match watch.since_ns {
            Some(since) if waiting > 0 && completed == watch.completed => since,
            _ => {
                if watch.stalled {
                    log_line!("transitd: the kernel sends from the AF_XDP tx ring on {} again", self.label);
                }
                *watch = TxWatch { completed, since_ns: Some(now), stalled: false };
                return;
            }
        };
        if refused {
            // The last kick was refused (ENETDOWN: the link set down; ENXIO: the device
            // gone), which is said where it failed. Counted as a stall too, it was blamed on
            // a hung driver ("reset the device") while the link was only down: the second
            // of nothing sent runs from the first kick the kernel takes again, or the first
            // frame it sends since (`reclaim`; a zero-copy driver may need no kick).
            watch.since_ns = Some(now);
            return;
        }
        if !watch.stalled && now.saturating_sub(since) >= TX_STALL_NS {
            watch.stalled = true;
            self.stats.tx_stalls += 1;
            log_line!(
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
    pub(super) fn send_staged(&mut self, sends: &[Desc], staged: &[usize], spill: &mut Spill) {
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

    /// Puts the staged descriptors `sends` on the ring and empties both lists. Whole packets
    /// reach the ring: those of `staged` from the first left out on are said unsent.
    pub(super) fn send_some(
        &mut self,
        sends: &mut ArrayVec<Desc, MAX_LENT>,
        staged: &mut ArrayVec<(u16, usize), BATCH_SIZE>,
    ) {
        let sent = self.send(sends);
        self.unsent.extend(staged.iter().filter(|&&(_, first)| first >= sent).map(|&(i, _)| i));
        sends.clear();
        staged.clear();
    }

    /// Writes `bytes` into lent frames `chunks` (taking more from the free list or releasing
    /// extras as the length needs) and appends their descriptors to `sends`, continuation
    /// flags set. False if there was no frame for it (everything it held is released).
    pub(super) fn stage(
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
                    self.release_all(chunks);
                    return false;
                }
            }
        }
        if needed == 0 || sends.remaining_capacity() < needed {
            self.release_all(chunks);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::afxdp::model::{Model, RING, spill_of};
    use crate::io::{FrameIo, Polled};

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

    /// A kernel that refuses the kicks (a link set down: ENETDOWN; here ENXIO) holds frames
    /// on the ring with none completing, but is no stall: the refusal is said and counted as
    /// a `kick_error`, and the stall's line would send the operator to reset a driver that is
    /// not hung. The worker still sleeps on the full ring. Once the kernel takes the kicks
    /// again and sends nothing for a second, that is a stall.
    #[test]
    fn a_kernel_that_refuses_the_kicks_is_no_stall() {
        let mut io = AfXdpIo::with_socket(Model { refusing: true, ..Model::new() }, true);
        io.send_spill(&mut spill_of(RING)).unwrap();
        let t0 = 5 * TX_STALL_NS;
        let poll_at = |io: &mut AfXdpIo<Model>, now: u64| {
            let polled = io.poll(now, &mut |_| {}).unwrap();
            (polled, io.stats().tx_stalls)
        };
        for s in 0..=3 {
            assert_eq!(poll_at(&mut io, t0 + s * TX_STALL_NS), (Polled::Idle, 0), "refused for {s} s");
        }
        assert!(io.stats().kick_errors > 0, "each refusal is counted");
        io.xsk.refusing = false;
        io.xsk.stalled = true;
        let t1 = t0 + 4 * TX_STALL_NS;
        assert_eq!(poll_at(&mut io, t1).1, 0, "the kicks are taken: the second starts");
        assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS - 1).1, 0);
        assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS), (Polled::Idle, 1), "taken, and nothing sent for a second");
        assert!(io.stats().frames.is_conserved(), "{:?}", io.stats().frames);
    }

    /// A refusal ends when the kernel sends again, a kick taken or not: a zero-copy driver
    /// sends without kicks while it asks for none, so after a link flap no kick need work
    /// again. Left standing, the refusal hid every later stall of the queue's driver.
    #[test]
    fn a_refusal_ends_when_the_kernel_sends_again_without_a_kick() {
        let mut io = AfXdpIo::with_socket(Model { zero_copy: true, refusing: true, ..Model::new() }, false);
        io.send_spill(&mut spill_of(RING)).unwrap();
        let t0 = 5 * TX_STALL_NS;
        let poll_at = |io: &mut AfXdpIo<Model>, now: u64| {
            let polled = io.poll(now, &mut |_| {}).unwrap();
            (polled, io.stats().tx_stalls)
        };
        assert_eq!(poll_at(&mut io, t0), (Polled::Idle, 0), "refused");
        // The link is up again: the driver sends the ring by itself and asks for no kick.
        io.xsk.refusing = false;
        io.xsk.needs_wakeup = false;
        io.xsk.send(RING);
        let t1 = t0 + TX_STALL_NS;
        assert_eq!(poll_at(&mut io, t1), (Polled::Idle, 0), "sent: nothing to receive");
        // Then its transmit hangs, asking for no kick still.
        io.xsk.stalled = true;
        io.send_spill(&mut spill_of(RING)).unwrap();
        assert_eq!(poll_at(&mut io, t1).1, 0, "just begun");
        assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS - 1).1, 0);
        assert_eq!(poll_at(&mut io, t1 + TX_STALL_NS), (Polled::Idle, 1), "hung a second after sending again");
        let stats = io.stats();
        assert!(stats.kick_errors > 0, "the kicks were refused");
        assert_eq!(stats.kicks, stats.kick_errors, "no kick worked: the kernel sent without one");
        assert!(stats.frames.is_conserved(), "{:?}", stats.frames);
    }

    /// Frames the kernel took before a refused kick (a NIC's, completing at its tx interrupt)
    /// complete whatever it does now: their completions do not end the refusal (it would be
    /// said again at the next kick refused). A frame taken since does.
    #[test]
    fn only_a_frame_taken_after_a_refused_kick_ends_the_refusal() {
        let mut io = AfXdpIo::with_socket(Model { late_consumer: true, ..Model::new() }, false);
        io.send_spill(&mut spill_of(10)).unwrap();
        assert_eq!((io.xsk.tx.len(), io.xsk.in_flight.len()), (0, 10), "taken, not completed");
        io.xsk.refusing = true;
        io.send_spill(&mut spill_of(5)).unwrap();
        assert_eq!(io.kick_error_said, Some(libc::ENXIO));
        io.xsk.complete();
        assert_eq!(io.reclaim(), 10);
        assert_eq!(io.kick_error_said, Some(libc::ENXIO), "only frames taken before: still refused");
        io.xsk.send(1);
        assert_eq!(io.reclaim(), 1);
        assert_eq!(io.kick_error_said, None, "a frame taken since: the kernel sends again");
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
}
