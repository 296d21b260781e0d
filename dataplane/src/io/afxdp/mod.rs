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
//! Every UMEM frame is always in exactly one place: the free list, the kernel's fill or rx
//! side, or the kernel's tx or completion side; [`AfXdpIo::frames`] counts them, and tests
//! check the sum never changes.

mod umem;

use std::ffi::CString;
use std::io;

use arrayvec::ArrayVec;

use self::umem::{Rings, Umem};
use super::{FrameCount, FrameIo, IoStats, Polled};
use crate::pipeline::Verdict;
use crate::pipeline::{BATCH_SIZE, Frame, Spill};

/// How to bind the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The kernel copies frames between the driver and the UMEM (works everywhere, veth
    /// included).
    Copy,
    /// The NIC DMAs straight into the UMEM (drivers with zero-copy support only).
    ZeroCopy,
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
    /// Copy or zero-copy.
    pub bind: BindMode,
    /// Ask the kernel for busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, budget).
    pub busy_poll: bool,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            iface: String::new(),
            queue: 0,
            frame_size: 4096,
            frames: 4096,
            ring_size: 2048,
            bind: BindMode::Copy,
            busy_poll: true,
        }
    }
}

/// One queue's AF_XDP socket and UMEM.
pub struct AfXdpIo {
    // Field order is drop order: the socket goes before the UMEM it uses.
    rings: Box<Rings>,
    umem: Umem,
    free: Vec<u64>,
    count: FrameCount,
    stats: IoStats,
    copy_mode: bool,
}

impl AfXdpIo {
    /// Creates the UMEM and binds a socket to `cfg.iface` queue `cfg.queue`. No XDP program is
    /// loaded here: the caller registers [`AfXdpIo::fd`] in its own XSKMAP.
    pub fn open(cfg: &AfXdpConfig) -> io::Result<AfXdpIo> {
        if !matches!(cfg.frame_size, 2048 | 4096) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "AF_XDP frame size must be 2048 or 4096"));
        }
        let ifname = CString::new(cfg.iface.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        let (umem, rings) = Umem::create(&ifname, cfg)?;
        let free: Vec<u64> = (0..u64::from(cfg.frames)).map(|i| i * u64::from(cfg.frame_size)).collect();
        let count = FrameCount { total: u64::from(cfg.frames), free: u64::from(cfg.frames), ..FrameCount::default() };
        let mut io =
            AfXdpIo { rings, umem, free, count, stats: IoStats::default(), copy_mode: cfg.bind == BindMode::Copy };
        if cfg.busy_poll {
            io.rings.prefer_busy_poll(BATCH_SIZE as u32);
        }
        io.refill();
        Ok(io)
    }

    /// The socket's file descriptor, for the XSKMAP.
    pub fn fd(&self) -> i32 {
        self.rings.fd()
    }

    /// Takes completed transmissions back onto the free list.
    fn reclaim(&mut self) {
        let done = self.rings.take_completions(&mut self.free, self.umem.frame_mask());
        self.count.in_tx -= done as u64;
        self.stats.completed += done as u64;
    }

    /// In copy mode the kernel sends only inside sendto(), a bounded number of frames per
    /// call: kick while anything on the tx ring is not completed. With need_wakeup (zero
    /// copy) the kernel says when it needs a kick.
    fn kick_tx_if_pending(&mut self) {
        if self.count.in_tx > 0 && (self.copy_mode || self.rings.tx_needs_wakeup()) {
            self.rings.kick_tx();
            self.stats.kicks += 1;
        }
    }

    /// Gives free frames to the kernel to receive into.
    fn refill(&mut self) {
        let given = self.rings.fill(&mut self.free);
        self.count.in_fill += given as u64;
        if given > 0 && self.rings.fill_needs_wakeup() {
            self.rings.kick_rx();
            self.stats.kicks += 1;
        }
    }
}

impl FrameIo for AfXdpIo {
    fn poll(&mut self, process: &mut dyn FnMut(&mut [Frame<'_>])) -> io::Result<Polled> {
        self.reclaim();
        self.refill();
        let mut descs = [(0u64, 0u32); BATCH_SIZE];
        let n = self.rings.receive(&mut descs);
        if n == 0 {
            self.kick_tx_if_pending();
            if self.rings.fill_needs_wakeup() {
                self.rings.kick_rx();
                self.stats.kicks += 1;
            }
            return Ok(Polled::Idle);
        }
        self.count.in_fill -= n as u64;
        self.stats.rx += n as u64;

        let now = super::wall_clock_ns();
        let mut frames: ArrayVec<Frame<'_>, BATCH_SIZE> = ArrayVec::new();
        let mut chunks = [0u64; BATCH_SIZE];
        let frame_size = self.umem.frame_size();
        let base = self.umem.base();
        for &(addr, len) in &descs[..n] {
            let chunk = addr & self.umem.frame_mask();
            let offset = (addr - chunk) as usize;
            if !self.umem.holds(chunk) || offset + len as usize > frame_size {
                // Not a frame of ours as the kernel promised: keep it out of the pipeline
                // (and off every ring: a frame we cannot place is lost, and counted).
                self.stats.bad_descriptors += 1;
                continue;
            }
            // SAFETY: `chunk` is the start of a frame of this UMEM (checked just above), and the
            // kernel handed the frame to us on the rx ring: until we put it on the fill or tx
            // ring it is ours alone. Descriptors of one poll name distinct frames (the kernel
            // hands each frame out once per fill), so the slices do not alias, and they live
            // only for this call, while `self.umem` keeps the mapping alive.
            let buf = unsafe { std::slice::from_raw_parts_mut(base.add(chunk as usize), frame_size) };
            chunks[frames.len()] = chunk;
            frames.push(Frame::new(buf, offset, len as usize, len, now));
        }
        process(&mut frames);

        let mut sends = [(0u64, 0u32); BATCH_SIZE];
        let mut m = 0;
        for (frame, &chunk) in frames.iter().zip(&chunks) {
            match frame.verdict {
                Verdict::Tx { start, len, .. } if start + len <= frame_size => {
                    sends[m] = (chunk + start as u64, len as u32);
                    m += 1;
                }
                _ => self.free.push(chunk),
            }
        }
        drop(frames);
        let sent = self.rings.transmit(&sends[..m]);
        for &(addr, _) in &sends[sent..m] {
            self.free.push(addr & self.umem.frame_mask());
        }
        self.stats.tx_ring_full += (m - sent) as u64;
        self.stats.tx += sent as u64;
        self.count.in_tx += sent as u64;
        self.kick_tx_if_pending();
        Ok(Polled::Frames(n))
    }

    fn stats(&self) -> IoStats {
        IoStats { frames: FrameCount { free: self.free.len() as u64, ..self.count }, ..self.stats }
    }

    fn send_spill(&mut self, spill: &mut Spill) -> io::Result<usize> {
        self.reclaim();
        let frame_size = self.umem.frame_size();
        let base = self.umem.base();
        let mut sends = [(0u64, 0u32); BATCH_SIZE];
        let mut unsent = 0;
        let mut m = 0;
        for bytes in spill.frames() {
            // Keep a batch's worth of frames for the fill ring: receiving comes first.
            let chunk = match self.free.len() > BATCH_SIZE {
                true => self.free.pop(),
                false => None,
            };
            let Some(chunk) = chunk.filter(|_| bytes.len() <= frame_size) else {
                unsent += 1;
                continue;
            };
            // SAFETY: `chunk` came off the free list, so it is a frame of this UMEM that no ring
            // holds and no slice points into; it is written here and then put on the tx ring.
            let buf = unsafe { std::slice::from_raw_parts_mut(base.add(chunk as usize), frame_size) };
            buf[..bytes.len()].copy_from_slice(bytes);
            sends[m] = (chunk, bytes.len() as u32);
            m += 1;
            if m == BATCH_SIZE {
                unsent += self.transmit_chunks(&sends[..m]);
                m = 0;
            }
        }
        unsent += self.transmit_chunks(&sends[..m]);
        spill.clear();
        self.stats.spill_no_frame += unsent as u64;
        self.kick_tx_if_pending();
        Ok(unsent)
    }
}

impl AfXdpIo {
    /// Puts whole frames (offset 0 of their chunk) on the tx ring; those that do not fit go
    /// back on the free list. Returns how many did not fit.
    fn transmit_chunks(&mut self, sends: &[(u64, u32)]) -> usize {
        let sent = self.rings.transmit(sends);
        for &(addr, _) in &sends[sent..] {
            self.free.push(addr);
        }
        self.stats.tx_ring_full += (sends.len() - sent) as u64;
        self.stats.tx += sent as u64;
        self.count.in_tx += sent as u64;
        sends.len() - sent
    }
}
