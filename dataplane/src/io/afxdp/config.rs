//! The settings of one queue's AF_XDP socket: interface and queue, the UMEM's frames, the
//! rings' size, the bind mode, busy polling, and the interface's MTU as the supervisor last
//! read it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

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
    ///
    /// [`FrameIo::link_mtu`]: crate::io::FrameIo::link_mtu
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
