//! The pcap replay backend: frames come from a capture file, transmitted frames go to a
//! pcap file (Ethernet, nanosecond timestamps). Frames are copied into buffers with
//! [`HEADROOM`] in front, as AF_XDP hands them over, so the same in-place rewrites apply.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::Path;

use arrayvec::ArrayVec;
use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::capture::{CaptureError, CaptureReader, Record, data_plane_wire_len};
use super::{FrameIo, MonotonicClock, Polled};
use crate::pipeline::{BATCH_SIZE, Frame, HEADROOM, Spill};

/// Largest record a buffer holds; larger ones are cut (and dropped as `oversize`, since no
/// frame size can exceed it).
pub const MAX_RECORD: usize = 262_144;

/// Writes frames to a pcap file. A write that fails (a full disk) ends it: the frames the
/// file holds whole are counted ([`PcapSink::written`]), and a file it made is cut back to
/// them, so that it ends on a whole record and every reader reads it to its end.
pub struct PcapSink {
    /// `None` once a write failed: what the buffer held then is let go, never written.
    out: Option<BufWriter<Output>>,
    /// The file, as its errors name it.
    path: std::path::PathBuf,
    /// Where each frame handed to `out` ends (bytes from the file's start), for the frames
    /// the file may not hold whole yet (in the buffer, or being written), oldest first: a
    /// buffer's worth at most.
    ends: VecDeque<u64>,
    /// Bytes handed to `out`: the header and every frame.
    handed: u64,
    /// Where the last frame the file holds whole ends (the header's end, before any).
    whole: u64,
    /// Frames the file holds whole.
    pub written: u64,
    /// Frames whose time was past what pcap's 32-bit seconds hold (2106-02-07 06:28:15
    /// UTC), written at that second.
    pub clamped: u64,
}

/// Where the frames go, counting the bytes the system took: after a failed write, where
/// the file ends, however much of the buffer went.
struct Output {
    file: File,
    /// A file this sink made (created, truncated), so its own to cut back. Standard output
    /// is not: a pipe cannot be, and a file the shell opened may hold more than ours.
    made: bool,
    /// Bytes the file took, as each write said.
    taken: u64,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.taken += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The last instant a pcap record's 32-bit seconds and nanoseconds can say.
const PCAP_END: std::time::Duration = std::time::Duration::new(u32::MAX as u64, 999_999_999);

/// A pcap record's header: seconds, nanoseconds, bytes captured, bytes on the wire.
const RECORD_HEADER: usize = 16;

impl PcapSink {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<PcapSink> {
        // Standard output is written through its own descriptor, not std's line buffer in
        // front of it: the bytes counted taken are then the bytes it took.
        let (file, made) = match crate::files::is_standard_stream(path) {
            true => (File::from(std::io::stdout().as_fd().try_clone_to_owned()?), false),
            false => (File::create(path)?, true),
        };
        let mut out = BufWriter::new(Output { file, made, taken: 0 });
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            snaplen: MAX_RECORD as u32,
            // The records' byte order too (`record_header`).
            endianness: Endianness::Big,
            ..PcapHeader::default()
        };
        let handed = header.write_to(&mut out).map_err(std::io::Error::other)? as u64;
        let path = path.to_path_buf();
        let ends = VecDeque::with_capacity(64);
        Ok(PcapSink { out: Some(out), path, ends, handed, whole: handed, written: 0, clamped: 0 })
    }

    /// Whether a write failed, ending the file before the frames transmitted did.
    pub fn failed(&self) -> bool {
        self.out.is_none()
    }

    /// Writes out what is buffered; the file is complete once this returns `Ok` (after a
    /// failed write, which was said then, it is as that left it).
    pub fn finish(&mut self) -> std::io::Result<()> {
        let Some(out) = &mut self.out else { return Ok(()) };
        let flushed = out.flush();
        let taken = out.get_ref().taken;
        match flushed {
            Ok(()) => {
                self.count_whole(taken);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Appends one frame. A time pcap cannot hold (a pcapng input, or its `if_tsoffset`,
    /// past 2106) is written as the last one it can, and counted: the frame is what matters.
    pub fn write(&mut self, timestamp_ns: u64, bytes: &[u8]) -> std::io::Result<()> {
        let Some(out) = &mut self.out else {
            let e = format!("--out {}: written no further after a failed write", self.path.display());
            return Err(std::io::Error::other(e));
        };
        // More than the header says a record holds: readers refuse the file from there.
        if bytes.len() > MAX_RECORD {
            let (path, len) = (self.path.display(), bytes.len());
            let e = format!("--out {path}: a frame of {len} bytes, over the {MAX_RECORD} a record holds");
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e));
        }
        let mut ts = std::time::Duration::from_nanos(timestamp_ns);
        if ts > PCAP_END {
            ts = PCAP_END;
            self.clamped += 1;
        }
        let written = out.write_all(&record_header(ts, bytes.len())).and_then(|()| out.write_all(bytes));
        let taken = out.get_ref().taken;
        self.handed += (RECORD_HEADER + bytes.len()) as u64;
        self.ends.push_back(self.handed);
        match written {
            Ok(()) => {
                self.count_whole(taken);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Counts written the frames that end within the `taken` bytes the system took.
    fn count_whole(&mut self, taken: u64) {
        while let Some(&end) = self.ends.front() {
            if end > taken {
                break;
            }
            self.ends.pop_front();
            self.whole = end;
            self.written += 1;
        }
    }

    /// Ends the sink after the failed write `e`: the frames the file holds whole are counted,
    /// a file it made is cut back to them (a full disk took part of the buffer, and readers
    /// stopped at the frame cut short, "cut short in the middle of a packet"), and the rest
    /// of the buffer is let go (written when dropped, into the room the cut made, it would
    /// land past the cut). `e` comes back naming the file and what it holds, of its kind (a
    /// reader gone from standard output is a broken pipe, not a failure).
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        let Some(out) = self.out.take() else { return e };
        let (output, _unwritten) = out.into_parts();
        self.count_whole(output.taken);
        // Short of `whole` only while the header is not whole: then nothing is kept.
        let keep = if output.taken < self.whole { 0 } else { self.whole };
        let regular = output.file.metadata().is_ok_and(|m| m.is_file());
        let frames = crate::report::counted(self.written as usize, "frame");
        let held = match output.made && regular {
            true => match output.file.set_len(keep) {
                Ok(()) => format!("the file is cut back to the {frames} written whole"),
                Err(cut) => format!("{frames} written whole; cutting the file back to them failed: {cut}"),
            },
            false if output.taken > keep => format!("{frames} written whole, then part of the next"),
            false => format!("{frames} written whole"),
        };
        std::io::Error::new(e.kind(), format!("--out {}: {e}; {held}", self.path.display()))
    }
}

/// The header of a record of `len` bytes at `ts`, in the file header's byte order (big
/// endian): the captured length is the length on the wire, every frame being written whole.
fn record_header(ts: std::time::Duration, len: usize) -> [u8; RECORD_HEADER] {
    let mut header = [0u8; RECORD_HEADER];
    // `ts` is at most PCAP_END and `len` at most MAX_RECORD: each fits its 32 bits.
    let fields = [ts.as_secs() as u32, ts.subsec_nanos(), len as u32, len as u32];
    for (at, field) in header.chunks_exact_mut(4).zip(fields) {
        at.copy_from_slice(&field.to_be_bytes());
    }
    header
}

/// Replays a capture through the pipeline.
pub struct PcapIo {
    reader: CaptureReader,
    sink: Option<PcapSink>,
    bufs: Vec<Box<[u8]>>,
    /// Records skipped for their link type, by link type.
    pub skipped: BTreeMap<u32, u64>,
    /// Frames skipped as the capturing host's own sending ([`Record::Frame`]'s `outgoing`).
    pub outgoing: u64,
    /// A read error met mid-batch, reported on the next poll once the batch is through.
    pending: Option<CaptureError>,
    /// The clock the pipeline is given: capture time, never running back.
    clock: MonotonicClock,
}

#[derive(Clone, Copy, Default)]
struct Meta {
    len: usize,
    wire_len: u32,
    uncaptured_len: u32,
    /// The pipeline's clock ([`MonotonicClock`]).
    ts: u64,
    /// The capture's own time, which frames written out keep.
    captured_ns: u64,
}

impl PcapIo {
    /// Replays `input`, writing transmitted frames to `output` if given.
    pub fn open(input: &Path, output: Option<&Path>) -> Result<PcapIo, anyhow::Error> {
        let reader = CaptureReader::open(input)?;
        let sink = output
            .map(|path| PcapSink::create(path).map_err(|e| anyhow::anyhow!("--out {}: {e}", path.display())))
            .transpose()?;
        let bufs = (0..BATCH_SIZE).map(|_| vec![0u8; HEADROOM + MAX_RECORD].into_boxed_slice()).collect();
        let clock = MonotonicClock::default();
        Ok(PcapIo { reader, sink, bufs, skipped: BTreeMap::new(), outgoing: 0, pending: None, clock })
    }

    /// Flushes the output (if any): every frame written, or the error that kept it from disk.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.sink.as_mut().map_or(Ok(()), PcapSink::finish)
    }

    /// With an output whose write failed: the frames it holds whole, the first of those
    /// transmitted ([`PcapSink::written`]; otherwise it holds every one).
    pub fn written_before_failing(&self) -> Option<u64> {
        self.sink.as_ref().filter(|s| s.failed()).map(|s| s.written)
    }

    /// Frames written so far with their time clamped to pcap's last second
    /// ([`PcapSink::clamped`]).
    pub fn clamped(&self) -> u64 {
        self.sink.as_ref().map_or(0, |s| s.clamped)
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.reader.records()
    }
}

impl FrameIo for PcapIo {
    fn poll(&mut self, _now_ns: u64, process: &mut dyn FnMut(&mut [Frame<'_>])) -> std::io::Result<Polled> {
        if let Some(e) = self.pending.take() {
            return Err(std::io::Error::other(e));
        }
        let mut metas = [Meta::default(); BATCH_SIZE];
        let mut n = 0;
        while n < BATCH_SIZE {
            match self.reader.next_into(&mut self.bufs[n][HEADROOM..]) {
                Ok(None) => break,
                // Sent by the capturing host: it never arrived there, so it is no arrival here.
                Ok(Some(Record::Frame { outgoing: true, .. })) => self.outgoing += 1,
                Ok(Some(Record::Frame { len, wire_len, uncaptured_len, timestamp_ns, ethernet, outgoing: false })) => {
                    let wire_len = data_plane_wire_len(len, wire_len, uncaptured_len, ethernet);
                    let ts = self.clock.at(timestamp_ns);
                    metas[n] = Meta { len, wire_len, uncaptured_len, ts, captured_ns: timestamp_ns };
                    n += 1;
                }
                Ok(Some(Record::Unsupported { link_type, .. })) => *self.skipped.entry(link_type).or_default() += 1,
                // Not a packet: nothing to replay (capinfos does not count it either).
                Ok(Some(Record::NotAPacket { .. })) => {}
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        if n == 0 {
            return match self.pending.take() {
                Some(e) => Err(std::io::Error::other(e)),
                None => Ok(Polled::End),
            };
        }
        let mut frames: ArrayVec<Frame<'_>, BATCH_SIZE> = self
            .bufs
            .iter_mut()
            .zip(&metas[..n])
            .map(|(buf, m)| {
                let mut frame = Frame::new(&mut buf[..], HEADROOM, m.len, m.wire_len, m.ts);
                frame.uncaptured_len = m.uncaptured_len;
                frame.captured_ns = m.captured_ns;
                frame
            })
            .collect();
        process(&mut frames);
        if let Some(sink) = &mut self.sink {
            for f in &frames {
                if let Some(bytes) = f.tx_bytes() {
                    sink.write(f.captured_ns, bytes)?;
                }
            }
        }
        Ok(Polled::Frames(n))
    }

    fn send_spill(&mut self, spill: &mut Spill) -> std::io::Result<usize> {
        if let Some(sink) = &mut self.sink {
            for (time, bytes) in spill.stamped() {
                sink.write(time, bytes)?;
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_2106_are_written_at_its_last_second_and_counted() {
        let path = std::env::temp_dir().join(format!("transitd-pcap-sink-{}.pcap", std::process::id()));
        let mut sink = PcapSink::create(&path).unwrap();
        let last = u64::from(u32::MAX) * 1_000_000_000;
        for ns in [5, last + 999_999_999, last + 1_000_000_000, u64::MAX] {
            sink.write(ns, &[0u8; 60]).unwrap();
        }
        assert_eq!(sink.clamped, 2);
        sink.finish().unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        let mut times = Vec::new();
        while let Some(p) = reader.next_packet() {
            times.push(p.unwrap().timestamp);
        }
        let end = std::time::Duration::new(u64::from(u32::MAX), 999_999_999);
        assert_eq!(times, [std::time::Duration::from_nanos(5), end, end, end]);
        let _ = std::fs::remove_file(path);
    }
}
