//! A model of the kernel side of one AF_XDP socket, for the backend's tests: rings of bounded
//! size, frame memory, what it was handed, and kernels that send late, stall, say busy or
//! refuse; and spills to send through it.

use std::collections::VecDeque;

use arrayvec::ArrayVec;

use super::{Desc, Kick, MAX_LENT, XDP_PKT_CONTD, Xsk};
use crate::io::SocketStats;
use crate::pipeline::{HEADROOM, Spill, TxReason};

pub(super) const FRAME: usize = 2048;
pub(super) const FRAMES: u64 = 256;
pub(super) const RING: usize = 64;

/// The kernel side: rings of bounded size, frame memory, and what it was handed.
pub(super) struct Model {
    pub(super) memory: Vec<Box<[u8]>>,
    pub(super) fill: VecDeque<u64>,
    pub(super) rx: VecDeque<Desc>,
    pub(super) tx: VecDeque<Desc>,
    pub(super) comp: VecDeque<u64>,
    /// Frames delivered on rx that the backend has not given back (by fill or tx).
    pub(super) lent: Vec<bool>,
    /// Marker written into each delivered frame, to check the backend lends the right one.
    pub(super) serial: u32,
    pub(super) invalid_tx: u64,
    /// Whole packets put on the tx ring.
    pub(super) packets_transmitted: u64,
    /// A kernel that takes nothing off the tx ring when kicked (a link that is down).
    pub(super) stalled: bool,
    /// A kernel before 6.17 on a NIC: a kick takes up to 32 descriptors but publishes
    /// the consumer index only once it has taken all it saw at its last look, and the
    /// frames complete later ([`Model::complete`]).
    pub(super) late_consumer: bool,
    /// Descriptors at the front of `tx` taken but not yet published, and the window
    /// the kernel saw.
    pub(super) taken: usize,
    pub(super) window: usize,
    /// Sent, not yet completed (`late_consumer`).
    pub(super) in_flight: VecDeque<u64>,
    /// A kernel that answers every kick "busy" (EBUSY: the device dropped a frame).
    pub(super) busy: bool,
    /// A kernel that refuses every tx kick (ENXIO: the device is gone).
    pub(super) refusing: bool,
    /// A zero-copy socket: the driver sends on its own ([`Model::send`]), and is kicked only
    /// while it asks to be (`needs_wakeup`).
    pub(super) zero_copy: bool,
    pub(super) needs_wakeup: bool,
    /// Entries of each ring.
    pub(super) ring: usize,
}

impl Model {
    pub(super) fn new() -> Model {
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
            zero_copy: false,
            needs_wakeup: true,
            ring: RING,
        }
    }

    /// The NIC's tx interrupt: everything sent completes.
    pub(super) fn complete(&mut self) {
        self.comp.extend(self.in_flight.drain(..));
    }

    /// Up to `n` arrivals from the fill ring, each a packet of `parts` frames (`len` bytes
    /// in the first, at the kernel's headroom; the others whole), and then `bogus`
    /// descriptors naming frames the kernel does not hold.
    pub(super) fn deliver(&mut self, n: usize, len: u32, parts: usize, bad_len: bool, bogus: usize) {
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
    pub(super) fn send(&mut self, n: usize) {
        for _ in 0..n {
            let Some(d) = self.tx.pop_front() else { break };
            self.comp.push_back(d.addr);
        }
    }

    pub(super) fn held(&self) -> (u64, u64) {
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
        self.zero_copy
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
        self.needs_wakeup
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

/// A spill of `count` packets, the `i`th of 100 + `i` bytes.
pub(super) fn spill_of(count: usize) -> Spill {
    let mut spill = Spill::new(crate::pipeline::SPILL_SLOTS, FRAME + 64);
    for i in 0..count {
        let slot = spill.next_slot().unwrap();
        slot[HEADROOM..HEADROOM + 100 + i].fill(0xab);
        spill.push(HEADROOM, 100 + i, TxReason::Fragment, None);
    }
    spill
}
