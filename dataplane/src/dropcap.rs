//! Drop capture (`--capture-drops FILE.pcapng`): dropped frames, and frames a monitor-mode
//! rule would have decided, written to a pcapng file with the reason as each packet's
//! comment, bounded by a rate and a file size.
//!
//! Workers never block, allocate, lock or write files for it. A worker's [`Tap`] takes a
//! preallocated [`Record`] from the free queue, copies the frame into it and pushes it to
//! the full queue (crossbeam's bounded lock-free `ArrayQueue`s); the [`Writer`] thread turns
//! records into pcapng blocks, names the rules from the snapshot the record carries, and
//! returns them to the free queue. When a worker's rate budget or the free queue runs out,
//! or the file reached its size bound, the frame is only counted as not captured.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};

use crate::pipeline::Frame;
use crate::pipeline::{Outcome, Verdict, WouldLimit};
use crate::snapshot::Snapshot;

/// What to capture and within which bounds.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// The pcapng file (created or truncated).
    pub path: PathBuf,
    /// Frames per second captured, over all workers (each worker gets its share).
    pub rate: u32,
    /// The file stops growing at this many bytes.
    pub max_bytes: u64,
    /// Bytes of each frame kept.
    pub snaplen: usize,
    /// Also capture frames a monitor-mode rule matched.
    pub monitor: bool,
}

impl CaptureOptions {
    /// Defaults for `path`: 100 frames per second, 100 MB, whole frames, monitor hits included.
    pub fn new(path: PathBuf) -> CaptureOptions {
        CaptureOptions { path, rate: 100, max_bytes: 100_000_000, snaplen: 65535, monitor: true }
    }
}

/// Why a frame was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Dropped (the outcome's verdict is a drop).
    Dropped,
    /// A monitor-mode rule matched; the verdict is what was enforced.
    Monitor,
}

/// One captured frame, preallocated and reused.
#[derive(Debug)]
pub struct Record {
    timestamp_ns: u64,
    original_len: u32,
    len: usize,
    why: Why,
    outcome: Option<Outcome>,
    /// The snapshot the outcome's indices refer to.
    snapshot: Option<Arc<Snapshot>>,
    data: Box<[u8]>,
}

/// Counters of the capture, shared by the taps and the writer.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames written to the file.
    pub written: AtomicU64,
    /// Frames not captured: over the rate.
    pub over_rate: AtomicU64,
    /// Frames not captured: every record was in use (the writer fell behind).
    pub no_record: AtomicU64,
    /// Frames not captured: the file reached its size bound.
    pub over_size: AtomicU64,
    /// Frames not captured: writing the file failed (the capture stopped).
    pub write_failed: AtomicU64,
    /// Bytes in the file.
    pub bytes: AtomicU64,
}

/// The queues between the workers' taps and the writer.
#[derive(Debug)]
pub struct DropCapture {
    free: ArrayQueue<Box<Record>>,
    full: ArrayQueue<Box<Record>>,
    /// Counters.
    pub stats: CaptureStats,
    /// Set by the writer when the file is full: taps stop copying.
    full_file: AtomicBool,
    /// Set by the writer when a write failed and it stopped: taps stop copying and waiting.
    failed: AtomicBool,
    options: CaptureOptions,
}

/// True when `path` is a pcapng file of section and interface blocks and no packet: what a
/// capture that caught nothing leaves (a block cut short at its end included: no frame is
/// whole in it). Its blocks are walked (type, length) up to the first packet block; what is
/// not pcapng is not headers only.
fn headers_only(path: &Path) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const SECTION_HEADER: u32 = 0x0a0d_0d0a;
    const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
    let Ok(mut file) = File::open(path) else { return false };
    let mut head = [0u8; 12];
    if let Err(e) = file.read_exact(&mut head) {
        // Shorter than a block's start: nothing in it.
        return e.kind() == std::io::ErrorKind::UnexpectedEof;
    }
    if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != SECTION_HEADER {
        return false;
    }
    let magic = [head[8], head[9], head[10], head[11]];
    let read_u32: fn([u8; 4]) -> u32 = if u32::from_le_bytes(magic) == BYTE_ORDER_MAGIC {
        u32::from_le_bytes
    } else if u32::from_be_bytes(magic) == BYTE_ORDER_MAGIC {
        u32::from_be_bytes
    } else {
        return false;
    };
    let Ok(end) = file.metadata().map(|m| m.len()) else { return false };
    let mut at = 0u64;
    while at < end {
        let mut block = [0u8; 8];
        if at + 8 > end {
            return true; // a block's start cut short
        }
        if file.seek(SeekFrom::Start(at)).is_err() || file.read_exact(&mut block).is_err() {
            return false;
        }
        let kind = read_u32([block[0], block[1], block[2], block[3]]);
        let len = read_u32([block[4], block[5], block[6], block[7]]);
        // Section header, interface description, interface statistics: headers. Any
        // other block (a packet, a name resolution, a custom one) is worth keeping.
        if !matches!(kind, SECTION_HEADER | 1 | 5) || len < 12 || !len.is_multiple_of(4) {
            return false;
        }
        at += u64::from(len);
    }
    // Past the end only by a header block cut short.
    true
}

/// Records in flight: a quarter of a second at the rate, at least 64, at most 4096.
fn record_count(rate: u32) -> usize {
    (rate as usize / 4).clamp(64, 4096)
}

impl DropCapture {
    /// Bytes kept of each frame.
    pub fn snaplen(&self) -> usize {
        self.options.snaplen
    }

    /// Allocates the records (all memory the capture uses) and opens `options.path`.
    /// A regular file already at the path that holds frames is kept as `PATH.prev` (a
    /// restart after a fault must not wipe what the failed run captured; a file of headers
    /// alone, from a run that captured nothing, is not worth keeping over an older one).
    pub fn start(options: CaptureOptions, stop: Arc<AtomicBool>) -> anyhow::Result<(Arc<DropCapture>, Writer)> {
        // A regular file already there (not a symbolic link: the capture goes where it
        // points; not a device or a pipe) is kept as .prev when it holds a frame, and made
        // afresh otherwise, so that it takes the mode below (an older file keeps its own).
        let regular = std::fs::symlink_metadata(&options.path).ok().filter(|m| m.is_file());
        if let Some(m) = regular {
            if m.len() > 0 && !headers_only(&options.path) {
                let mut prev = options.path.clone().into_os_string();
                prev.push(".prev");
                if let Err(e) = std::fs::rename(&options.path, &prev) {
                    log_line!(
                        "transitd: --capture-drops {}: not kept as .prev ({e}): overwritten",
                        options.path.display()
                    );
                }
            } else {
                let _ = std::fs::remove_file(&options.path);
            }
        }
        // Customers' packets: a new file is its owner's alone (an existing one keeps the
        // mode its owner gave it). Opened without blocking: a FIFO no one reads yet held the
        // open for good, and `run`, its SIGTERM and SIGINT caught by then, could not be
        // stopped short of SIGKILL. Written blocking, as any file.
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK)
            .open(&options.path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) => anyhow::anyhow!(
                    "--capture-drops {}: a FIFO no one reads: start its reader first",
                    options.path.display()
                ),
                _ => anyhow::anyhow!("--capture-drops {}: {e}", options.path.display()),
            })?;
        let flags = fcntl(&file, FcntlArg::F_GETFL).map(OFlag::from_bits_truncate);
        flags
            .and_then(|f| fcntl(&file, FcntlArg::F_SETFL(f - OFlag::O_NONBLOCK)))
            .map_err(|e| anyhow::anyhow!("--capture-drops {}: {e}", options.path.display()))?;
        let n = record_count(options.rate);
        let free = ArrayQueue::new(n);
        for _ in 0..n {
            let record = Box::new(Record {
                timestamp_ns: 0,
                original_len: 0,
                len: 0,
                why: Why::Dropped,
                outcome: None,
                snapshot: None,
                data: vec![0; options.snaplen].into_boxed_slice(),
            });
            let _ = free.push(record);
        }
        let capture = Arc::new(DropCapture {
            free,
            full: ArrayQueue::new(n),
            stats: CaptureStats::default(),
            full_file: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            options,
        });
        let writer = Writer::new(capture.clone(), BufWriter::new(file), stop)?;
        Ok((capture, writer))
    }

    /// True once the writer takes no more records: the file is full or writing failed.
    fn is_closed(&self) -> bool {
        self.full_file.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }

    /// A tap for one of `workers` workers.
    pub fn tap(self: &Arc<Self>, workers: usize) -> Tap {
        let per_worker = (f64::from(self.options.rate) / workers.max(1) as f64).max(1.0);
        Tap {
            capture: self.clone(),
            interval_ns: (1e9 / per_worker) as u64,
            // A second's worth at once: GCRA lets a frame through while its time is at most
            // this far ahead, so the tolerance is a second less the frame that takes it
            // (a whole second let rate + 1 through).
            burst_ns: 1_000_000_000u64.saturating_sub((1e9 / per_worker) as u64),
            tat_ns: 0,
            snapshot: None,
            wait: false,
        }
    }
}

/// A worker's end of the capture: a rate budget (GCRA: one frame per interval, a second's
/// worth of burst) and the snapshot its outcomes refer to.
#[derive(Debug)]
pub struct Tap {
    capture: Arc<DropCapture>,
    interval_ns: u64,
    burst_ns: u64,
    /// Theoretical arrival time of the next frame within the rate.
    tat_ns: u64,
    snapshot: Option<Arc<Snapshot>>,
    /// Wait for the writer rather than skip a frame (replay, which has no deadline).
    wait: bool,
}

impl Tap {
    /// Makes the tap wait for a free record instead of skipping the frame: for replay, so
    /// that what it captures does not depend on how fast the writer is.
    pub fn waiting(mut self) -> Tap {
        self.wait = true;
        self
    }

    /// The snapshot the following outcomes are decided by (on start and after a reload).
    pub fn bind(&mut self, snapshot: Arc<Snapshot>) {
        self.snapshot = Some(snapshot);
    }

    /// Captures `frame` if its `outcome` is a drop (or a monitor-mode hit), within bounds.
    #[inline]
    pub fn offer(&mut self, frame: &Frame<'_>, outcome: &Outcome) {
        let why = match outcome.verdict {
            Verdict::Drop(_) => Why::Dropped,
            _ if self.capture.options.monitor
                && (outcome.monitor.is_some()
                    || outcome.egress_monitor.is_some()
                    || outcome.dos_monitor.is_some()
                    || outcome.customer_dos_monitor.is_some()
                    || outcome.tcp.is_some_and(|e| e.out_of_state())) =>
            {
                Why::Monitor
            }
            _ => return,
        };
        let stats = &self.capture.stats;
        if self.capture.failed.load(Ordering::Relaxed) {
            stats.write_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.capture.full_file.load(Ordering::Relaxed) {
            stats.over_size.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // GCRA: conforming while the next theoretical arrival time is within the burst.
        // Time that went back further than a burst and a second (a merged or unsorted
        // capture replayed) starts the bucket afresh: it would refuse every frame until
        // capture time caught up.
        let now = frame.timestamp_ns;
        if self.tat_ns.saturating_sub(now) > self.burst_ns.saturating_add(1_000_000_000) {
            self.tat_ns = now;
        }
        let tat = self.tat_ns.max(now);
        if tat - now > self.burst_ns {
            stats.over_rate.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut record = loop {
            match self.capture.free.pop() {
                Some(r) => break r,
                None if self.wait && !self.capture.is_closed() => std::thread::yield_now(),
                None => {
                    stats.no_record.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        };
        self.tat_ns = tat.saturating_add(self.interval_ns);
        // A transmitted frame (a monitor hit) is captured as sent.
        let data = frame.tx_bytes().unwrap_or_else(|| frame.data());
        let len = data.len().min(record.data.len());
        record.data[..len].copy_from_slice(&data[..len]);
        record.len = len;
        // What a capture left out of the frame follows the bytes it has now: `wire_len`
        // counts the capture's own link header, which a synthesized Ethernet header may
        // have replaced (a raw-IP or Linux cooked capture replayed).
        record.original_len = if matches!(outcome.verdict, Verdict::Tx { .. }) {
            data.len() as u32
        } else {
            (data.len() as u32).saturating_add(frame.uncaptured_len)
        };
        // Stamped with the input's own time (a merged capture's earlier frames as well):
        // `now`, the clock the rate reads, never runs back.
        record.timestamp_ns = frame.captured_ns;
        record.why = why;
        record.outcome = Some(*outcome);
        record.snapshot.clone_from(&self.snapshot);
        // The full queue is as long as the free one: never fails.
        if let Err(r) = self.capture.full.push(record) {
            let _ = self.capture.free.push(r);
        }
    }
}

/// The thread that writes records into the pcapng file.
pub struct Writer {
    capture: Arc<DropCapture>,
    out: PcapNgWriter<BufWriter<File>>,
    stop: Arc<AtomicBool>,
    comment: String,
    /// Frames and bytes written into the buffer since its last flush: counted written only
    /// once flushed (a full disk fails the flush, and they never reach the file).
    unflushed: (u64, u64),
    /// The latest frame's time: the closing statistics' time.
    last_ns: u64,
}

/// Bytes kept free below `max_bytes` for the statistics block that closes the file: 40 of
/// headers, interface, time, the drop count and the end of the options, and the comment's
/// option, 4 and at most 132 (71 characters and three counts of up to 20 digits, padded).
const STATISTICS_ROOM: u64 = 176;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.capture.options.path).finish()
    }
}

impl Writer {
    fn new(capture: Arc<DropCapture>, file: BufWriter<File>, stop: Arc<AtomicBool>) -> anyhow::Result<Writer> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                "transitd ",
                env!("CARGO_PKG_VERSION"),
                " drop capture"
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut out = PcapNgWriter::with_section_header(file, section).map_err(write_error)?;
        let interface = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: capture.options.snaplen as u32,
            // Timestamps in nanoseconds: pcap-file writes the raw count.
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        };
        out.write_pcapng_block(interface).map_err(write_error)?;
        let header = out.get_ref().buffer().len() as u64;
        Ok(Writer { capture, out, stop, comment: String::with_capacity(256), unflushed: (0, header), last_ns: 0 })
    }

    /// Writes records until stopped, then what is left, and flushes. A failed write (a full
    /// disk, say) stops the capture: it is logged at once, the taps count what they no longer
    /// capture, and the error is returned.
    pub fn run(mut self) -> anyhow::Result<()> {
        let result = self.write_until_stopped();
        if let Err(e) = &result {
            self.capture.failed.store(true, Ordering::Relaxed);
            // The file is cut back to the blocks counted written: a full disk took part of
            // the failed write, and readers stopped at the frame cut short ("cut short in the
            // middle of a packet") while whole frames before it were counted not captured.
            // What the buffer still holds goes too: flushed when it is dropped, on a disk
            // with room again, it would land past the cut. (A FIFO or a device has no length
            // to set: left as it is.)
            let (file, _unwritten) = self.out.into_inner().into_parts();
            let _ = file.set_len(self.capture.stats.bytes.load(Ordering::Relaxed));
            log_line!("transitd: drop capture {}: {e:#}; capturing stopped", self.capture.options.path.display());
        }
        result
    }

    fn write_until_stopped(&mut self) -> anyhow::Result<()> {
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let mut wrote = false;
            while let Some(mut record) = self.capture.full.pop() {
                let written = self.write(&record);
                // The snapshot it names is let go here: a record going back to a worker
                // may hold the last reference to a replaced snapshot, which would be freed
                // (its rule tables and all) in the middle of that worker's batch.
                record.snapshot = None;
                let _ = self.capture.free.push(record);
                if let Err(e) = written {
                    // This frame, those still in the buffer and those queued behind it are
                    // not written: counted so.
                    let queued = std::iter::from_fn(|| self.capture.full.pop()).count() as u64;
                    let unflushed = std::mem::take(&mut self.unflushed).0;
                    self.capture.stats.write_failed.fetch_add(1 + queued + unflushed, Ordering::Relaxed);
                    return Err(e);
                }
                wrote = true;
            }
            if stopping {
                break;
            }
            // After each drain: the counts follow the file, a drain behind.
            if let Err(e) = self.flush() {
                let queued = std::iter::from_fn(|| self.capture.full.pop()).count() as u64;
                self.capture.stats.write_failed.fetch_add(queued, Ordering::Relaxed);
                return Err(e);
            }
            if !wrote {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.flush()?;
        self.close_with_statistics()
    }

    /// Ends the file with an interface statistics block: how many frames it leaves out
    /// (`isb_osdrop`, what capinfos and Wireshark's capture file properties show as dropped)
    /// and why, so that the file alone says it is a sample.
    fn close_with_statistics(&mut self) -> anyhow::Result<()> {
        let stats = &self.capture.stats;
        let [rate, record, size] =
            [&stats.over_rate, &stats.no_record, &stats.over_size].map(|n| n.load(Ordering::Relaxed));
        let comment =
            format!("transitd: not captured: {rate} over the rate, {record} no record free, {size} over the size");
        let block = InterfaceStatisticsBlock {
            interface_id: 0,
            timestamp: self.last_ns,
            options: vec![
                InterfaceStatisticsOption::Comment(Cow::Owned(comment)),
                InterfaceStatisticsOption::IsbOsDrop(rate + record + size),
            ],
        };
        let written = self.out.write_pcapng_block(block).map_err(write_error)?;
        self.unflushed.1 += written as u64;
        self.flush()
    }

    /// Flushes the buffer: what was in it is written now, or (the flush failed) never.
    fn flush(&mut self) -> anyhow::Result<()> {
        let (frames, bytes) = std::mem::take(&mut self.unflushed);
        let stats = &self.capture.stats;
        match self.out.get_mut().flush() {
            Ok(()) => {
                stats.written.fetch_add(frames, Ordering::Relaxed);
                stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                stats.write_failed.fetch_add(frames, Ordering::Relaxed);
                Err(anyhow::anyhow!("writing: {e}"))
            }
        }
    }

    fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        let stats = &self.capture.stats;
        self.comment.clear();
        describe(&mut self.comment, record);
        // Block: 32 bytes of header and trailer, data padded to 4, the comment option
        // (4 + padded text) and the end-of-options marker.
        let size = 32 + record.len.next_multiple_of(4) + 4 + self.comment.len().next_multiple_of(4) + 4;
        let room = self.capture.options.max_bytes.saturating_sub(STATISTICS_ROOM);
        if stats.bytes.load(Ordering::Relaxed) + self.unflushed.1 + size as u64 > room {
            stats.over_size.fetch_add(1, Ordering::Relaxed);
            self.capture.full_file.store(true, Ordering::Relaxed);
            return Ok(());
        }
        // A block the buffer has no room left for makes it send what it holds to the file
        // on its own, uncounted: what it holds is flushed (and counted) first, so that the
        // file never holds more than the counted blocks and this one, and a failed write
        // (a full disk) loses this block alone. A replay's writer drains without a pause to
        // flush in: its file was cut back to the headers, or to nothing, however many
        // frames had fit.
        let buffered = self.out.get_ref();
        if buffered.capacity() - buffered.buffer().len() < size {
            self.flush()?;
        }
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(record.timestamp_ns),
            original_len: record.original_len,
            data: Cow::Borrowed(&record.data[..record.len]),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(self.comment.as_str()))],
        };
        let written = self.out.write_pcapng_block(block).map_err(write_error)?;
        self.unflushed = (self.unflushed.0 + 1, self.unflushed.1 + written as u64);
        self.last_ns = self.last_ns.max(record.timestamp_ns);
        Ok(())
    }
}

/// A failed write of a block, said as one: pcap-file calls every I/O error "Error reading
/// bytes", and the log said a full disk was a read.
fn write_error(e: pcap_file::PcapError) -> anyhow::Error {
    match e {
        pcap_file::PcapError::IoError(io) => anyhow::anyhow!("writing: {io}"),
        e => anyhow::anyhow!("writing: {e}"),
    }
}

/// The comment for a record: `drop: <reason>`, or `monitor: ...`, and the rules involved,
/// by name where the snapshot knows them.
fn describe(out: &mut String, record: &Record) {
    use std::fmt::Write as _;
    let Some(outcome) = record.outcome else { return };
    let snap = record.snapshot.as_deref();
    let _ = match (record.why, outcome.verdict) {
        (Why::Dropped, v) => write!(out, "drop: {}", v.reason()),
        (Why::Monitor, v) => write!(out, "monitor hit; enforced: {} {}", v.kind(), v.reason()),
    };
    let customer = outcome.customer.and_then(|c| snap.and_then(|s| s.customers.get(usize::from(c))));
    if let Some(c) = customer {
        let _ = write!(out, "; customer {}", c.name);
    }
    // Each rule involved, named by its list; a monitor rule whose bucket would have refused
    // the frame says so.
    let w = outcome.would_limit;
    type NameOf = fn(&Snapshot, u32) -> Option<String>;
    let (firewall, dos): (NameOf, NameOf) = (rule_name, dos_rule_name);
    let rules = [
        ("rule", outcome.rule, false, firewall),
        ("monitor rule", outcome.monitor, w.has(WouldLimit::FIREWALL), firewall),
        ("egress rule", outcome.egress_rule, false, firewall),
        ("monitor egress rule", outcome.egress_monitor, w.has(WouldLimit::EGRESS), firewall),
        ("dos rule", outcome.dos_rule, false, dos),
        ("monitor dos rule", outcome.dos_monitor, w.has(WouldLimit::DOS), dos),
        ("dos rule", outcome.customer_dos_rule, false, dos),
        ("monitor dos rule", outcome.customer_dos_monitor, w.has(WouldLimit::CUSTOMER_DOS), dos),
    ];
    for (what, rule, refused, name_of) in rules {
        if let Some(r) = rule {
            let name = snap.and_then(|s| name_of(s, r)).unwrap_or_else(|| r.to_string());
            let _ = write!(out, "; {what} {name}{}", if refused { " (would rate-limit)" } else { "" });
        }
    }
    if let (Some(r), Some(event)) = (outcome.tcp_rule, outcome.tcp) {
        let name = snap.and_then(|s| tcp_rule_name(s, r)).unwrap_or_else(|| r.to_string());
        let _ = write!(out, "; tcp rule {name} ({})", event.name());
    }
    let tunnel = outcome.from_tunnel.or(outcome.tunnel);
    if let Some(t) = tunnel.and_then(|t| snap.and_then(|s| s.tunnels.get(usize::from(t)))) {
        let _ = write!(out, "; tunnel {}", t.name);
    }
}

/// `customer/rule` (firewall) or `customer/egress/rule` for a global rule index.
pub fn rule_name(snap: &Snapshot, global: u32) -> Option<String> {
    snap.customers.iter().find_map(|c| {
        let fw = global.checked_sub(c.rule_base).and_then(|i| c.firewall.rules().get(i as usize));
        let eg = global.checked_sub(c.egress_base).and_then(|i| c.egress.rules().get(i as usize));
        fw.map(|r| format!("{}/{}", c.name, r.name)).or_else(|| eg.map(|r| format!("{}/egress/{}", c.name, r.name)))
    })
}

/// `[tcp_protection]/rule` or `customer/tcp_protection/rule` for a TCP protection rule index:
/// the names `match` and `replay` print. A customer's firewall, DoS and TCP protection rules
/// may share a name (`rule-1`, unnamed), so each list has its own scope, as `customer/dos/`.
pub fn tcp_rule_label(snap: &Snapshot, index: u32) -> Option<String> {
    let r = snap.tcp.rules.get(index as usize)?;
    Some(match r.customer.and_then(|c| snap.customers.get(usize::from(c))) {
        Some(c) => format!("{}/tcp_protection/{}", c.name, r.name),
        None => format!("[tcp_protection]/{}", r.name),
    })
}

/// [`tcp_rule_label`] with the rule's mode.
pub fn tcp_rule_name(snap: &Snapshot, index: u32) -> Option<String> {
    let mode = if snap.tcp.rules.get(index as usize)?.mitigate { "mitigate" } else { "monitor" };
    Some(format!("{} {mode}", tcp_rule_label(snap, index)?))
}

/// `[dos]/rule` or `customer/dos/rule` for a global DoS rule index: the names `match` prints.
pub fn dos_rule_name(snap: &Snapshot, global: u32) -> Option<String> {
    if let Some(r) = snap.dos.rules.rules().get(global as usize) {
        return Some(format!("[dos]/{}", r.name));
    }
    snap.customers.iter().find_map(|c| {
        let r = global.checked_sub(c.dos_base).and_then(|i| c.dos.rules().get(i as usize))?;
        Some(format!("{}/dos/{}", c.name, r.name))
    })
}

/// Where the capture's counters are reported from: a line for people.
pub fn summary(capture: &DropCapture) -> String {
    let s = &capture.stats;
    format!(
        "drop capture {}: {} ({} bytes) written; not captured: {} over the rate, {} for want of a record, {} over the size bound, {} after a failed write",
        capture.options.path.display(),
        crate::report::counted(s.written.load(Ordering::Relaxed) as usize, "frame"),
        s.bytes.load(Ordering::Relaxed),
        s.over_rate.load(Ordering::Relaxed),
        s.no_record.load(Ordering::Relaxed),
        s.over_size.load(Ordering::Relaxed),
        s.write_failed.load(Ordering::Relaxed),
    )
}

/// Checks a capture path before anything starts.
pub fn check_path(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    anyhow::ensure!(dir.is_dir(), "--capture-drops {}: no directory {}", path.display(), dir.display());
    Ok(())
}
