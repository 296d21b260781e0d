//! One AF_XDP socket and its UMEM over libxdp (libxdp-sys): the mapping, the four rings and
//! the socket options, as the [`Xsk`] trait the backend's bookkeeping is written against.
//!
//! This file is the ring/UMEM boundary: every `unsafe` block of the AF_XDP backend is here
//! but the two calls of `Xsk::frames` that lend frames out of the UMEM (in `poll.rs`, to the
//! pipeline; in `tx.rs`, to the copy of a packet into frames of its own), each with the
//! invariant that makes it sound.
//!
//! Teardown order matters to libxdp: a socket must be deleted before its UMEM, and the UMEM
//! before the fill and completion ring structs it keeps pointers into (to unmap them). So the
//! UMEM owns those two ring structs (boxed, so they never move), the socket owns the rx and
//! tx ring structs, and [`XskSocket`] drops the socket first. A bind that fails leaves no
//! socket; the UMEM is then deleted while its rings are still alive.

use std::ffi::CStr;
use std::io;
use std::ptr;

use arrayvec::ArrayVec;
use libxdp_sys as xdp;

use super::{AfXdpConfig, BindMode, Desc, Kick, MAX_LENT, Xsk};
use crate::io::SocketStats;

/// The memory frames live in, registered as a UMEM, with its fill and completion rings.
struct Umem {
    area: *mut u8,
    /// The UMEM's length: its frames.
    len: usize,
    /// The mapping's length (`len` rounded up to whole huge pages).
    mapped: usize,
    frame_size: usize,
    umem: *mut xdp::xsk_umem,
    /// Boxed: libxdp keeps pointers to these until `xsk_umem__delete`.
    rings: Box<UmemRings>,
    huge_pages: bool,
}

struct UmemRings {
    fill: xdp::xsk_ring_prod,
    comp: xdp::xsk_ring_cons,
}

/// The socket and its rx and tx rings.
struct Socket {
    xsk: *mut xdp::xsk_socket,
    /// Boxed: libxdp keeps pointers to these until `xsk_socket__delete`.
    rings: Box<SocketRings>,
}

struct SocketRings {
    rx: xdp::xsk_ring_cons,
    tx: xdp::xsk_ring_prod,
}

/// One queue's AF_XDP socket with its UMEM.
pub struct XskSocket {
    // Field order is drop order: the socket goes before the UMEM it uses.
    socket: Socket,
    umem: Umem,
    zero_copy: bool,
    multi_buffer: bool,
}

// SAFETY: the mapping, rings and socket are used by one worker thread at a time; the raw
// pointers are not shared, only moved with their owner to the thread that polls them.
unsafe impl Send for XskSocket {}

fn check(ret: i32, what: &str) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        let e = io::Error::from_raw_os_error(-ret);
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Maps at least `len` bytes, of huge pages if asked and possible; returns the mapping, its
/// length (a whole number of huge pages: `munmap` refuses a huge-page mapping's length
/// otherwise, and the mapping would outlive the UMEM) and whether it got huge pages.
/// `MAP_POPULATE` touches every page now, from the calling thread: a worker that maps its
/// own UMEM after it is pinned gets memory on its own NUMA node.
fn map(len: usize, huge_pages: bool) -> io::Result<(*mut u8, usize, bool)> {
    let base = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
    for (flags, huge) in [(base | libc::MAP_HUGETLB, true), (base, false)] {
        if huge && !huge_pages {
            continue;
        }
        let mapped = if huge { len.next_multiple_of(huge_page_size()) } else { len };
        // SAFETY: an anonymous private mapping with no address hint; the result is checked
        // and the mapping is unmapped exactly once, by `Umem::drop`, with this length.
        let area = unsafe { libc::mmap(ptr::null_mut(), mapped, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if area != libc::MAP_FAILED {
            return Ok((area.cast(), mapped, huge));
        }
    }
    Err(io::Error::last_os_error())
}

/// The default huge page size (`Hugepagesize` of /proc/meminfo, which `MAP_HUGETLB` without
/// a size flag uses); 2 MiB if it cannot be read.
fn huge_page_size() -> usize {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Hugepagesize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<usize>().ok())
        .filter(|&kb| kb > 0)
        .map_or(2 << 20, |kb| kb << 10)
}

impl Umem {
    fn create(cfg: &AfXdpConfig) -> io::Result<Umem> {
        let frame_size = cfg.frame_size as usize;
        let len = frame_size * cfg.frames as usize;
        let (area, mapped, huge_pages) = map(len, cfg.huge_pages)?;
        // SAFETY: all-zero is a valid value for these plain C structs; libxdp fills them in.
        let rings = Box::new(unsafe { std::mem::zeroed::<UmemRings>() });
        let mut umem = Umem { area, len, mapped, frame_size, umem: ptr::null_mut(), rings, huge_pages };
        let ucfg = xdp::xsk_umem_config {
            fill_size: cfg.ring_size,
            comp_size: cfg.ring_size,
            frame_size: cfg.frame_size,
            frame_headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a live mapping of at least `len` bytes owned by `umem`, which deletes the
        // xsk_umem before unmapping it; the ring structs are boxed inside `umem` and freed
        // only after that delete (Drop runs before the fields are dropped).
        let ret = unsafe {
            xdp::xsk_umem__create(
                &mut umem.umem,
                area.cast(),
                len as u64,
                &mut umem.rings.fill,
                &mut umem.rings.comp,
                &ucfg,
            )
        };
        check(ret, "creating the UMEM")?;
        Ok(umem)
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: every socket using this UMEM was deleted first (field order in XskSocket,
        // and a failed bind leaves none); the pointer came from xsk_umem__create and is
        // deleted once; the ring structs it points into are still alive (fields drop after
        // this); the mapping is ours and unmapped once.
        unsafe {
            if !self.umem.is_null() {
                xdp::xsk_umem__delete(self.umem);
            }
            libc::munmap(self.area.cast(), self.mapped);
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if !self.xsk.is_null() {
            // SAFETY: the socket came from xsk_socket__create and is deleted once, before its
            // ring structs (a field) are freed.
            unsafe { xdp::xsk_socket__delete(self.xsk) };
        }
    }
}

/// `XDP_USE_SG` (if_xdp.h, kernel 6.6): the socket takes packets of several frames.
const XDP_USE_SG: u32 = 1 << 4;
/// `SOL_XDP` (socket.h).
const SOL_XDP: i32 = 283;

impl XskSocket {
    /// Maps and registers `cfg.frames` frames, and binds a socket on `ifname`.
    pub(crate) fn create(ifname: &CStr, cfg: &AfXdpConfig) -> io::Result<XskSocket> {
        // Multi-buffer (packets larger than a frame) when the configuration's frame size
        // needs it and the kernel has it (6.6 on). An older kernel refuses the flag
        // (EINVAL); a driver without zero-copy multi-buffer refuses zero-copy with it
        // (EOPNOTSUPP, only when zero-copy is demanded: `auto` then binds in copy mode).
        // Either way the socket does without, and says what that costs.
        if !cfg.needs_multi_buffer() {
            return XskSocket::create_with(ifname, cfg, false);
        }
        let without = match XskSocket::create_with(ifname, cfg, true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => "the kernel has no AF_XDP multi-buffer",
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) && cfg.bind == BindMode::ZeroCopy => {
                "the driver has no zero-copy multi-buffer"
            }
            other => return other,
        };
        let xsk = XskSocket::create_with(ifname, cfg, false)?;
        log_line!(
            "transitd: {} queue {}: {without}: frames larger than {} bytes are dropped",
            ifname.to_string_lossy(),
            cfg.queue,
            cfg.frame_room()
        );
        Ok(xsk)
    }

    fn create_with(ifname: &CStr, cfg: &AfXdpConfig, multi_buffer: bool) -> io::Result<XskSocket> {
        // libxdp copies IFNAMSIZ - 1 bytes from the name whatever its length: hand it a
        // buffer that long, zero-padded (a shorter one is read past its end).
        let name = ifname.to_bytes();
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
        }
        let mut padded = [0 as libc::c_char; libc::IFNAMSIZ];
        for (d, &b) in padded.iter_mut().zip(name) {
            *d = b as libc::c_char;
        }
        let umem = Umem::create(cfg)?;
        // SAFETY: all-zero is a valid value for these plain C structs; libxdp fills them in.
        let rings = Box::new(unsafe { std::mem::zeroed::<SocketRings>() });
        let mut socket = Socket { xsk: ptr::null_mut(), rings };
        // SAFETY: all-zero is valid for the config struct (the union included).
        let mut scfg: xdp::xsk_socket_config = unsafe { std::mem::zeroed() };
        scfg.rx_size = cfg.ring_size;
        scfg.tx_size = cfg.ring_size;
        scfg.__bindgen_anon_1.libxdp_flags = xdp::XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
        // With neither copy nor zero-copy asked for, the kernel binds zero-copy where the
        // driver can, and copy otherwise.
        scfg.bind_flags = (xdp::XDP_USE_NEED_WAKEUP
            | if multi_buffer { XDP_USE_SG } else { 0 }
            | match cfg.bind {
                BindMode::Auto => 0,
                BindMode::Copy => xdp::XDP_COPY,
                BindMode::ZeroCopy => xdp::XDP_ZEROCOPY,
            }) as u16;
        // SAFETY: `padded` is a NUL-terminated name of IFNAMSIZ bytes; the UMEM was created
        // above and outlives the socket (dropped after it, or, if this fails, with no socket
        // to outlive); the ring structs are boxed in `socket`, so the pointers libxdp keeps to
        // them stay valid until the socket is deleted.
        let ret = unsafe {
            xdp::xsk_socket__create(
                &mut socket.xsk,
                padded.as_ptr(),
                cfg.queue,
                umem.umem,
                &mut socket.rings.rx,
                &mut socket.rings.tx,
                &scfg,
            )
        };
        if ret != 0 {
            // libxdp leaves no socket behind on failure; drop the socket shell, then the UMEM.
            drop(socket);
            drop(umem);
            let e = io::Error::from_raw_os_error(-ret);
            // The refusals `create` retries without multi-buffer keep their raw errno (a
            // message wrapped around them would hide it from that match).
            let retried = -ret == libc::EINVAL || (-ret == libc::EOPNOTSUPP && cfg.bind == BindMode::ZeroCopy);
            if multi_buffer && retried {
                return Err(e);
            }
            let hint = match (cfg.bind, -ret) {
                (BindMode::ZeroCopy, libc::EOPNOTSUPP) => {
                    " (the driver has no zero-copy support: --bind copy, or --bind auto to let the kernel choose)"
                }
                _ => "",
            };
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "binding an AF_XDP socket to {} queue {} ({} mode): {e}{hint}",
                    ifname.to_string_lossy(),
                    cfg.queue,
                    cfg.bind.name()
                ),
            ));
        }
        let mut xsk = XskSocket { socket, umem, zero_copy: false, multi_buffer };
        // libxdp opens the socket (the UMEM's, which the first socket on it shares) without
        // SOCK_CLOEXEC: a child transitd starts (the BGP guard) would hold every queue's
        // socket, bound and its UMEM pinned, until it exits, past a transitd killed before it.
        // SAFETY: F_SETFD on a descriptor this socket owns takes an int and touches no memory.
        if unsafe { libc::fcntl(xsk.fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
        xsk.zero_copy = xsk.options().is_some_and(|flags| flags & xdp::XDP_OPTIONS_ZEROCOPY != 0);
        Ok(xsk)
    }

    /// The socket's file descriptor, for the XSKMAP.
    pub(crate) fn fd(&self) -> i32 {
        // SAFETY: the socket was created in `create` and lives as long as `self`.
        unsafe { xdp::xsk_socket__fd(self.socket.xsk) }
    }

    /// Whether the UMEM got huge pages.
    pub(crate) fn huge_pages(&self) -> bool {
        self.umem.huge_pages
    }

    /// `XDP_OPTIONS`: the bound mode's flags.
    fn options(&self) -> Option<u32> {
        let mut opts = xdp::xdp_options { flags: 0 };
        let mut len = size_of::<xdp::xdp_options>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `opts`, a live struct of that size.
        let ret =
            unsafe { libc::getsockopt(self.fd(), SOL_XDP, xdp::XDP_OPTIONS as i32, (&raw mut opts).cast(), &mut len) };
        (ret == 0).then_some(opts.flags)
    }

    /// Asks for busy polling; options the kernel does not accept are skipped (they only
    /// help), and said: `--busy-poll` without them is plain polling.
    pub(crate) fn prefer_busy_poll(&self, budget: u32) {
        const SO_PREFER_BUSY_POLL: i32 = 69;
        const SO_BUSY_POLL_BUDGET: i32 = 70;
        for (name, opt, value) in [
            ("SO_PREFER_BUSY_POLL", SO_PREFER_BUSY_POLL, 1),
            ("SO_BUSY_POLL", libc::SO_BUSY_POLL, 20),
            ("SO_BUSY_POLL_BUDGET", SO_BUSY_POLL_BUDGET, budget as i32),
        ] {
            // SAFETY: setsockopt with a pointer to a live i32 and its size.
            let ret = unsafe {
                libc::setsockopt(
                    self.fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&value as *const i32).cast(),
                    size_of::<i32>() as u32,
                )
            };
            if ret != 0 {
                log_line!(
                    "transitd: the kernel refused {name} ({}): the socket polls without it",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

impl Xsk for XskSocket {
    fn frame_size(&self) -> usize {
        self.umem.frame_size
    }

    fn frame_count(&self) -> u64 {
        (self.umem.len / self.umem.frame_size) as u64
    }

    fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    fn fill_size(&self) -> usize {
        self.umem.rings.fill.size as usize
    }

    fn fill_room(&mut self) -> usize {
        let ring = &mut self.umem.rings.fill;
        // SAFETY: `ring` is the UMEM's fill ring; this reads its consumer index.
        unsafe { xdp::xsk_prod_nb_free(ring, ring.size) as usize }
    }

    // Ring indices are libxdp's free-running u32 counters: they wrap (every 2^32 entries,
    // 72 minutes at 1 Mpps), and the ring masks them.
    fn fill(&mut self, free: &[u64]) -> usize {
        let ring = &mut self.umem.rings.fill;
        let mut idx = 0;
        // Reserving is all or nothing: ask for no more than the ring has room for.
        // SAFETY: `ring` is the UMEM's fill ring, set up by libxdp and alive with the UMEM.
        let room = unsafe { xdp::xsk_prod_nb_free(ring, free.len() as u32) }.min(free.len() as u32);
        // SAFETY: as above.
        let n = unsafe { xdp::xsk_ring_prod__reserve(ring, room, &mut idx) } as usize;
        for (i, &addr) in free[free.len() - n..].iter().enumerate() {
            // SAFETY: slot `idx + i` was reserved above and is ours to write until submit.
            unsafe { *xdp::xsk_ring_prod__fill_addr(ring, idx.wrapping_add(i as u32)) = addr };
        }
        // SAFETY: submits exactly the slots reserved and written above.
        unsafe { xdp::xsk_ring_prod__submit(ring, n as u32) };
        n
    }

    fn take_completions(&mut self, out: &mut Vec<u64>) -> usize {
        let ring = &mut self.umem.rings.comp;
        let mut idx = 0;
        // SAFETY: `ring` is the UMEM's completion ring.
        let n = unsafe { xdp::xsk_ring_cons__peek(ring, u32::MAX, &mut idx) } as usize;
        for i in 0..n {
            // SAFETY: slot `idx + i` was peeked above and stays valid until release.
            out.push(unsafe { *xdp::xsk_ring_cons__comp_addr(ring, idx.wrapping_add(i as u32)) });
        }
        // SAFETY: releases exactly the slots peeked above.
        unsafe { xdp::xsk_ring_cons__release(ring, n as u32) };
        n
    }

    fn receive(&mut self, out: &mut [Desc]) -> usize {
        let ring = &mut self.socket.rings.rx;
        let mut idx = 0;
        // SAFETY: `ring` is the socket's rx ring.
        let n = unsafe { xdp::xsk_ring_cons__peek(ring, out.len() as u32, &mut idx) } as usize;
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            // SAFETY: slot `idx + i` was peeked above and stays valid until release.
            let d = unsafe { &*xdp::xsk_ring_cons__rx_desc(ring, idx.wrapping_add(i as u32)) };
            *slot = Desc { addr: d.addr, len: d.len, options: d.options };
        }
        // SAFETY: releases exactly the slots peeked above (their contents were copied out).
        unsafe { xdp::xsk_ring_cons__release(ring, n as u32) };
        n
    }

    fn tx_room(&mut self) -> usize {
        let ring = &mut self.socket.rings.tx;
        // SAFETY: `ring` is the socket's tx ring.
        unsafe { xdp::xsk_prod_nb_free(ring, ring.size) as usize }
    }

    fn tx_unsent(&mut self) -> usize {
        let size = self.socket.rings.tx.size as usize;
        size - self.tx_room()
    }

    fn transmit(&mut self, sends: &[Desc]) -> usize {
        let ring = &mut self.socket.rings.tx;
        let mut idx = 0;
        // SAFETY: `ring` is the socket's tx ring (reserving is all or nothing: see `fill`).
        let room = unsafe { xdp::xsk_prod_nb_free(ring, sends.len() as u32) }.min(sends.len() as u32);
        // SAFETY: as above.
        let n = unsafe { xdp::xsk_ring_prod__reserve(ring, room, &mut idx) } as usize;
        for (i, s) in sends.iter().enumerate().take(n) {
            // SAFETY: slot `idx + i` was reserved above and is ours to write until submit.
            let d = unsafe { &mut *xdp::xsk_ring_prod__tx_desc(ring, idx.wrapping_add(i as u32)) };
            d.addr = s.addr;
            d.len = s.len;
            d.options = s.options;
        }
        // SAFETY: submits exactly the slots reserved and written above.
        unsafe { xdp::xsk_ring_prod__submit(ring, n as u32) };
        n
    }

    fn fill_needs_wakeup(&self) -> bool {
        // SAFETY: reads the ring's flags word, mapped for the ring's lifetime.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&self.umem.rings.fill) != 0 }
    }

    fn tx_needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { xdp::xsk_ring_prod__needs_wakeup(&self.socket.rings.tx) != 0 }
    }

    fn kick_rx(&mut self) {
        // SAFETY: a zero-length non-blocking recvfrom on our socket; no buffer is touched.
        unsafe { libc::recvfrom(self.fd(), ptr::null_mut(), 0, libc::MSG_DONTWAIT, ptr::null_mut(), ptr::null_mut()) };
    }

    fn kick_tx(&mut self) -> Kick {
        // SAFETY: a zero-length non-blocking sendto on our socket; no buffer is read.
        let ret = unsafe { libc::sendto(self.fd(), ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
        if ret >= 0 {
            return Kick::Done;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Kick::Again,
            Some(libc::EBUSY) | Some(libc::ENOBUFS) => Kick::Busy,
            Some(e) => Kick::Failed(e),
            None => Kick::Failed(0),
        }
    }

    fn statistics(&self) -> SocketStats {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut s: xdp::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<xdp::xdp_statistics>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `s`, a live struct of that size.
        let ret =
            unsafe { libc::getsockopt(self.fd(), SOL_XDP, xdp::XDP_STATISTICS as i32, (&raw mut s).cast(), &mut len) };
        if ret != 0 {
            return SocketStats::default();
        }
        SocketStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        }
    }

    unsafe fn frames<'a>(&'a mut self, chunks: &[u64], out: &mut ArrayVec<&'a mut [u8], MAX_LENT>) {
        let (base, size) = (self.umem.area, self.umem.frame_size);
        for &chunk in chunks {
            debug_assert!((chunk as usize) < self.umem.len && (chunk as usize).is_multiple_of(size));
            // SAFETY: the caller guarantees `chunk` is the start of a frame of this UMEM that no
            // ring holds (lent by the kernel through rx, or taken off the free list) and that
            // the chunks are distinct, so the slices are disjoint and nothing else writes them
            // while they live; `self` (and so the mapping) outlives them ('a).
            let frame = unsafe { std::slice::from_raw_parts_mut(base.add(chunk as usize), size) };
            if out.try_push(frame).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `munmap` of a huge-page mapping needs a whole number of huge pages: a UMEM of three
    /// small frames is mapped as one huge page and unmapped as one, not leaked.
    #[test]
    fn a_huge_page_umem_is_unmapped_whole() {
        const RESERVED: &str = "/proc/sys/vm/nr_hugepages";
        let read = || std::fs::read_to_string(RESERVED).ok().and_then(|t| t.trim().parse::<u64>().ok());
        let before = read().expect("nr_hugepages is readable");
        if before < 2 {
            std::fs::write(RESERVED, "2").expect("reserve huge pages (needs root)");
        }
        if read() < Some(1) {
            // The kernel found no contiguous memory for one: nothing here can be checked.
            std::fs::write(RESERVED, before.to_string()).expect("give the huge pages back");
            log_line!("no huge page could be reserved on this machine: not checked");
            return;
        }
        let len = 3 * 4096;
        let mapped = map(len, true).map(|(area, mapped, huge)| {
            assert!(huge, "two huge pages reserved: the mapping is of huge pages");
            assert_eq!(mapped % huge_page_size(), 0);
            assert!(mapped >= len);
            // SAFETY: `area` is the mapping just made, not used by anything; unmapped here
            // (the first call must fail and leave it mapped).
            let (short, whole) = unsafe { (libc::munmap(area.cast(), len), libc::munmap(area.cast(), mapped)) };
            (short, whole)
        });
        if before < 2 {
            std::fs::write(RESERVED, before.to_string()).expect("give the huge pages back");
        }
        let (short, whole) = mapped.expect("maps");
        assert_eq!(short, -1, "the UMEM's own length is refused for a huge-page mapping");
        assert_eq!(whole, 0, "the mapped length unmaps it");
    }
}
