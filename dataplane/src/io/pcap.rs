//! The pcap replay backend: frames come from a capture file, transmitted frames go to a
//! pcap file (Ethernet, nanosecond timestamps). Frames are copied into buffers with
//! [`HEADROOM`] in front, as AF_XDP hands them over, so the same in-place rewrites apply.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use arrayvec::ArrayVec;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};

use super::capture::{CaptureError, CaptureReader, Record, data_plane_wire_len};
use super::{FrameIo, MonotonicClock, Polled};
use crate::pipeline::{BATCH_SIZE, Frame, HEADROOM, Spill};

/// Largest record a buffer holds; larger ones are cut (and dropped as `oversize`, since no
/// frame size can exceed it).
pub const MAX_RECORD: usize = 262_144;

/// Writes frames to a pcap file.
pub struct PcapSink {
    writer: PcapWriter<BufWriter<Box<dyn Write + Send>>>,
    /// The file, as its errors name it.
    path: std::path::PathBuf,
    /// Frames whose time was past what pcap's 32-bit seconds hold (2106-02-07 06:28:15
    /// UTC), written at that second.
    pub clamped: u64,
}

/// The last instant a pcap record's 32-bit seconds and nanoseconds can say.
const PCAP_END: std::time::Duration = std::time::Duration::new(u32::MAX as u64, 999_999_999);

impl PcapSink {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<PcapSink> {
        let file: Box<dyn Write + Send> = match crate::files::is_standard_stream(path) {
            true => Box::new(std::io::stdout()),
            false => Box::new(File::create(path)?),
        };
        let file = BufWriter::new(file);
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            snaplen: MAX_RECORD as u32,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
        Ok(PcapSink { writer, path: path.to_path_buf(), clamped: 0 })
    }

    /// `e`, naming the file it is about (a full disk says nothing of which file), of the kind
    /// the system said (a reader gone from standard output is a broken pipe, not a failure).
    fn named(&self, e: pcap_file::PcapError) -> std::io::Error {
        match e {
            pcap_file::PcapError::IoError(io) => {
                std::io::Error::new(io.kind(), format!("{}: {io}", self.path.display()))
            }
            e => std::io::Error::other(format!("{}: {e}", self.path.display())),
        }
    }

    /// Writes out what is buffered; the file is complete once this returns `Ok`.
    pub fn finish(self) -> std::io::Result<()> {
        use std::io::Write as _;
        let path = self.path.clone();
        self.writer.into_writer().flush().map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Appends one frame. A time pcap cannot hold (a pcapng input, or its `if_tsoffset`,
    /// past 2106) is written as the last one it can, and counted: the frame is what matters.
    pub fn write(&mut self, timestamp_ns: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut ts = std::time::Duration::from_nanos(timestamp_ns);
        if ts > PCAP_END {
            ts = PCAP_END;
            self.clamped += 1;
        }
        let packet = PcapPacket::new(ts, bytes.len() as u32, bytes);
        self.writer.write_packet(&packet).map(|_| ()).map_err(|e| self.named(e))
    }
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
        self.sink.take().map_or(Ok(()), PcapSink::finish)
    }

    /// Frames written so far with their time clamped to pcap's last second
    /// ([`PcapSink::clamped`]); read it before [`PcapIo::finish`].
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
