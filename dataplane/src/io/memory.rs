//! The in-memory backend: frames from a list, transmitted frames kept in a list. Tests and
//! benchmarks run the real pipeline on it.

use arrayvec::ArrayVec;

use super::{FrameIo, Polled};
use crate::pipeline::Verdict;
use crate::pipeline::{BATCH_SIZE, Frame, HEADROOM, Spill};

/// Frames from memory.
pub struct MemoryIo {
    frames: Vec<Vec<u8>>,
    /// Receive time of each frame (all zero unless given).
    timestamps: Vec<u64>,
    next: usize,
    /// Start over after the last frame (benchmarks) instead of ending.
    pub repeat: bool,
    /// Keep a copy of each transmitted frame in [`MemoryIo::sent`].
    pub keep_sent: bool,
    /// Transmitted frames, if kept: each batch's frames, then its spilled ones.
    pub sent: Vec<Vec<u8>>,
    /// Every verdict, in frame order, if `keep_sent` is set.
    pub verdicts: Vec<Verdict>,
    /// The MTU of a link it stands for ([`FrameIo::link_mtu`]); none unless given.
    pub link_mtu: Option<usize>,
    bufs: Vec<Box<[u8]>>,
}

impl MemoryIo {
    /// A source of `frames`, each at most `max_frame` bytes long.
    pub fn new(frames: Vec<Vec<u8>>, max_frame: usize) -> MemoryIo {
        let size = HEADROOM + frames.iter().map(Vec::len).max().unwrap_or(0).max(max_frame);
        let bufs = (0..BATCH_SIZE).map(|_| vec![0u8; size].into_boxed_slice()).collect();
        let timestamps = vec![0; frames.len()];
        MemoryIo {
            frames,
            timestamps,
            next: 0,
            repeat: false,
            keep_sent: true,
            sent: Vec::new(),
            verdicts: Vec::new(),
            link_mtu: None,
            bufs,
        }
    }

    /// A source of `frames` received at the given times (ns), e.g. a capture's.
    pub fn with_timestamps(frames: Vec<(Vec<u8>, u64)>, max_frame: usize) -> MemoryIo {
        let timestamps = frames.iter().map(|f| f.1).collect();
        let mut io = MemoryIo::new(frames.into_iter().map(|f| f.0).collect(), max_frame);
        io.timestamps = timestamps;
        io
    }
}

impl FrameIo for MemoryIo {
    fn poll(&mut self, _now_ns: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> std::io::Result<Polled> {
        if self.frames.is_empty() {
            return Ok(Polled::End);
        }
        let mut frames: ArrayVec<Frame<'_>, BATCH_SIZE> = ArrayVec::new();
        for buf in self.bufs.iter_mut() {
            if self.next == self.frames.len() {
                if !self.repeat {
                    break;
                }
                self.next = 0;
            }
            let src = &self.frames[self.next];
            let ts = self.timestamps[self.next];
            self.next += 1;
            buf[HEADROOM..HEADROOM + src.len()].copy_from_slice(src);
            frames.push(Frame::new(&mut buf[..], HEADROOM, src.len(), src.len() as u32, ts));
        }
        if frames.is_empty() {
            return Ok(Polled::End);
        }
        process(&mut frames);
        if self.keep_sent {
            for f in &frames {
                self.verdicts.push(f.verdict);
                if let Some(bytes) = f.tx_bytes() {
                    self.sent.push(bytes.to_vec());
                }
            }
        }
        Ok(Polled::Frames(frames.len()))
    }

    fn send_spill(&mut self, spill: &mut Spill) -> std::io::Result<usize> {
        if self.keep_sent {
            self.sent.extend(spill.frames().map(<[u8]>::to_vec));
        }
        Ok(0)
    }

    fn link_mtu(&self) -> Option<usize> {
        self.link_mtu
    }
}
