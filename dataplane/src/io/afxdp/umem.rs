//! The UMEM mapping and the four rings of one AF_XDP socket, over libxdp (libxdp-sys).
//!
//! This file is the ring/UMEM boundary: every `unsafe` block of the AF_XDP backend is here
//! or in `mod.rs` where frames are lent out, each with the invariant that makes it sound.

use std::ffi::CStr;
use std::io;
use std::ptr;

use libxdp_sys as xdp;

use super::{AfXdpConfig, BindMode};

/// The memory frames live in, mapped for the UMEM's lifetime.
pub(super) struct Umem {
    area: *mut u8,
    len: usize,
    frame_size: usize,
    umem: *mut xdp::xsk_umem,
}

/// The rings and the socket. Boxed: libxdp keeps pointers to these ring structs (to unmap
/// them on delete), so they must not move.
pub(super) struct Rings {
    fill: xdp::xsk_ring_prod,
    comp: xdp::xsk_ring_cons,
    rx: xdp::xsk_ring_cons,
    tx: xdp::xsk_ring_prod,
    xsk: *mut xdp::xsk_socket,
}

// SAFETY: the UMEM mapping and rings are used by one worker thread at a time; the raw pointers
// are not shared, only moved with their owner to the thread that polls them.
unsafe impl Send for Umem {}
// SAFETY: as above.
unsafe impl Send for Rings {}

fn check(ret: i32, what: &str) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        let e = io::Error::from_raw_os_error(-ret);
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

impl Umem {
    /// Maps `cfg.frames` frames, registers them as a UMEM, and binds a socket on `ifname`.
    pub(super) fn create(ifname: &CStr, cfg: &AfXdpConfig) -> io::Result<(Umem, Box<Rings>)> {
        let frame_size = cfg.frame_size as usize;
        let len = frame_size * cfg.frames as usize;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let area = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut umem = Umem { area: area.cast(), len, frame_size, umem: ptr::null_mut() };
        // SAFETY: all-zero is a valid value for these plain C structs; libxdp fills them in.
        let mut rings = Box::new(unsafe { std::mem::zeroed::<Rings>() });
        let ucfg = xdp::xsk_umem_config {
            fill_size: cfg.ring_size,
            comp_size: cfg.ring_size,
            frame_size: cfg.frame_size,
            frame_headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a live mapping of `len` bytes owned by `umem`, which outlives the
        // xsk_umem (deleted in Drop before the unmap); the ring structs are boxed and outlive it.
        let ret =
            unsafe { xdp::xsk_umem__create(&mut umem.umem, area, len as u64, &mut rings.fill, &mut rings.comp, &ucfg) };
        check(ret, "creating the UMEM")?;
        // SAFETY: all-zero is valid for the config struct (the union included).
        let mut scfg: xdp::xsk_socket_config = unsafe { std::mem::zeroed() };
        scfg.rx_size = cfg.ring_size;
        scfg.tx_size = cfg.ring_size;
        scfg.__bindgen_anon_1.libxdp_flags = xdp::XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
        scfg.bind_flags = (xdp::XDP_USE_NEED_WAKEUP
            | match cfg.bind {
                BindMode::Copy => xdp::XDP_COPY,
                BindMode::ZeroCopy => xdp::XDP_ZEROCOPY,
            }) as u16;
        // SAFETY: `ifname` is a valid C string; the UMEM was created above; the ring structs
        // are boxed, so the pointers libxdp keeps to them stay valid until the socket is deleted.
        let ret = unsafe {
            xdp::xsk_socket__create(
                &mut rings.xsk,
                ifname.as_ptr(),
                cfg.queue,
                umem.umem,
                &mut rings.rx,
                &mut rings.tx,
                &scfg,
            )
        };
        check(ret, &format!("binding an AF_XDP socket to {} queue {}", ifname.to_string_lossy(), cfg.queue))?;
        Ok((umem, rings))
    }

    pub(super) fn base(&self) -> *mut u8 {
        self.area
    }

    pub(super) fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Mask from an address inside a frame to the frame's start (frame sizes are powers of 2).
    pub(super) fn frame_mask(&self) -> u64 {
        !(self.frame_size as u64 - 1)
    }

    /// True when `chunk` is the start of one of this UMEM's frames.
    pub(super) fn holds(&self, chunk: u64) -> bool {
        (chunk as usize) < self.len && (chunk as usize).is_multiple_of(self.frame_size)
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: the socket (in `Rings`) is dropped before this (field order in AfXdpIo);
        // the UMEM pointer came from xsk_umem__create; the mapping is ours.
        unsafe {
            if !self.umem.is_null() {
                xdp::xsk_umem__delete(self.umem);
            }
            libc::munmap(self.area.cast(), self.len);
        }
    }
}

impl Rings {
    pub(super) fn fd(&self) -> i32 {
        // SAFETY: the socket was created in Umem::create and lives as long as `self`.
        unsafe { xdp::xsk_socket__fd(self.xsk) }
    }

    /// Moves frames from `free` to the fill ring; returns how many.
    pub(super) fn fill(&mut self, free: &mut Vec<u64>) -> usize {
        let mut idx = 0;
        // Reserving is all or nothing: ask for no more than the ring has room for.
        // SAFETY: `self.fill` is the UMEM's fill ring, set up by libxdp.
        let room = unsafe { xdp::xsk_prod_nb_free(&mut self.fill, free.len() as u32) }.min(free.len() as u32);
        // SAFETY: as above.
        let n = unsafe { xdp::xsk_ring_prod__reserve(&mut self.fill, room, &mut idx) } as usize;
        for i in 0..n {
            let addr = free.pop().expect("reserved no more slots than there are free frames");
            // SAFETY: slot `idx + i` was reserved above and is ours to write until submit.
            unsafe { *xdp::xsk_ring_prod__fill_addr(&mut self.fill, idx + i as u32) = addr };
        }
        // SAFETY: submits exactly the slots reserved and written above.
        unsafe { xdp::xsk_ring_prod__submit(&mut self.fill, n as u32) };
        n
    }

    /// Moves completed transmissions' frames to `free`; returns how many.
    pub(super) fn take_completions(&mut self, free: &mut Vec<u64>, mask: u64) -> usize {
        let mut idx = 0;
        // SAFETY: `self.comp` is the UMEM's completion ring.
        let n = unsafe { xdp::xsk_ring_cons__peek(&mut self.comp, u32::MAX, &mut idx) } as usize;
        for i in 0..n {
            // SAFETY: slot `idx + i` was peeked above and stays valid until release.
            let addr = unsafe { *xdp::xsk_ring_cons__comp_addr(&self.comp, idx + i as u32) };
            free.push(addr & mask);
        }
        // SAFETY: releases exactly the slots peeked above.
        unsafe { xdp::xsk_ring_cons__release(&mut self.comp, n as u32) };
        n
    }

    /// Takes up to `out.len()` received descriptors as `(addr, len)`; returns how many.
    pub(super) fn receive(&mut self, out: &mut [(u64, u32)]) -> usize {
        let mut idx = 0;
        // SAFETY: `self.rx` is the socket's rx ring.
        let n = unsafe { xdp::xsk_ring_cons__peek(&mut self.rx, out.len() as u32, &mut idx) } as usize;
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            // SAFETY: slot `idx + i` was peeked above and stays valid until release.
            let d = unsafe { &*xdp::xsk_ring_cons__rx_desc(&self.rx, idx + i as u32) };
            *slot = (d.addr, d.len);
        }
        // SAFETY: releases exactly the slots peeked above (their contents were copied out).
        unsafe { xdp::xsk_ring_cons__release(&mut self.rx, n as u32) };
        n
    }

    /// Puts `(addr, len)` descriptors on the tx ring; returns how many fit.
    pub(super) fn transmit(&mut self, sends: &[(u64, u32)]) -> usize {
        let mut idx = 0;
        // SAFETY: `self.tx` is the socket's tx ring (reserving is all or nothing: see `fill`).
        let room = unsafe { xdp::xsk_prod_nb_free(&mut self.tx, sends.len() as u32) }.min(sends.len() as u32);
        // SAFETY: as above.
        let n = unsafe { xdp::xsk_ring_prod__reserve(&mut self.tx, room, &mut idx) } as usize;
        for (i, &(addr, len)) in sends.iter().enumerate().take(n) {
            // SAFETY: slot `idx + i` was reserved above and is ours to write until submit.
            let d = unsafe { &mut *xdp::xsk_ring_prod__tx_desc(&mut self.tx, idx + i as u32) };
            d.addr = addr;
            d.len = len;
            d.options = 0;
        }
        // SAFETY: submits exactly the slots reserved and written above.
        unsafe { xdp::xsk_ring_prod__submit(&mut self.tx, n as u32) };
        n
    }

    pub(super) fn fill_needs_wakeup(&self) -> bool {
        // SAFETY: reads the ring's flags word, mapped for the ring's lifetime.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&self.fill) != 0 }
    }

    pub(super) fn tx_needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&self.tx) != 0 }
    }

    /// Wakes the kernel's receive path (need_wakeup, or an empty fill ring refilled).
    pub(super) fn kick_rx(&self) {
        // SAFETY: a zero-length non-blocking recvfrom on our socket; no buffer is touched.
        unsafe { libc::recvfrom(self.fd(), ptr::null_mut(), 0, libc::MSG_DONTWAIT, ptr::null_mut(), ptr::null_mut()) };
    }

    /// Makes the kernel send what is on the tx ring (copy mode sends only inside sendto).
    pub(super) fn kick_tx(&self) {
        // SAFETY: a zero-length non-blocking sendto on our socket; no buffer is read.
        unsafe { libc::sendto(self.fd(), ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
    }

    /// Asks for busy polling; options the kernel does not accept are skipped (they only help).
    pub(super) fn prefer_busy_poll(&self, budget: u32) {
        const SO_PREFER_BUSY_POLL: i32 = 69;
        const SO_BUSY_POLL_BUDGET: i32 = 70;
        for (opt, value) in [(SO_PREFER_BUSY_POLL, 1), (libc::SO_BUSY_POLL, 20), (SO_BUSY_POLL_BUDGET, budget as i32)] {
            // SAFETY: setsockopt with a pointer to a live i32 and its size.
            unsafe {
                libc::setsockopt(
                    self.fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&value as *const i32).cast(),
                    size_of::<i32>() as u32,
                )
            };
        }
    }
}

impl Drop for Rings {
    fn drop(&mut self) {
        if !self.xsk.is_null() {
            // SAFETY: the socket came from xsk_socket__create and is deleted once.
            unsafe { xdp::xsk_socket__delete(self.xsk) };
        }
    }
}
