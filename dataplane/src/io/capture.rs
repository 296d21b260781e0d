//! Reading capture files (pcap in either byte order, Kuznetzov's modified pcap, pcapng) into
//! Ethernet frames, with pcap-file doing pcap and pcap-parser pcapng. pcap-parser reads what
//! the pcapng draft tells readers to take (an option list without its end marker, a reserved
//! field not zero, options of any length), where pcap-file refused files tshark reads.
//!
//! Frames of other link types are given an Ethernet header so that the pipeline sees one
//! framing: RAW (101, and 12/14 on some systems), IPV4 (228), IPV6 (229), BSD loopback (0),
//! Linux cooked captures (113, 276). The link-type field is masked to its low 16 bits (the
//! upper bits carry the FCS length). Lengths in record headers are checked against the
//! bytes actually present, never trusted.
//!
//! A pcapng custom block or systemd journal entry is a record too: tshark numbers it as a
//! frame, and `match` prints tshark's frame numbers.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::{PcapError, TsResolution};
use pcap_parser::pcapng::{Block, EnhancedPacketBlock};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapNGOption, PcapNGReader};

mod modified;

/// Ethernet header length.
pub(crate) const ETH: usize = 14;

/// Linux's packet type of a packet the host sent (`linux/if_packet.h`).
const PACKET_OUTGOING: u16 = 4;

/// One record read from a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// A frame of `len` bytes now at the front of the output buffer.
    Frame {
        /// Bytes written (captured bytes, plus a synthesized Ethernet header if any; none
        /// for a record that ends inside its cooked or loopback link header).
        len: usize,
        /// Length on the wire, as the capture recorded it.
        wire_len: u32,
        /// Bytes of the packet on the wire not in the frame, past its end: what the capture
        /// left out (its snap length), and what did not fit the output buffer. The frame's
        /// own length on the wire is `len` and these (`wire_len` counts the capture's link
        /// header, which a synthesized Ethernet header replaced).
        uncaptured_len: u32,
        /// Capture time, nanoseconds since the Unix epoch.
        timestamp_ns: u64,
        /// The capture has this Ethernet header (false: transitd wrote it, for a raw-IP or
        /// Linux cooked capture, with zero addresses).
        ethernet: bool,
        /// The capture says the capturing host sent it, not received it: a Linux cooked
        /// capture's packet type 4 (`PACKET_OUTGOING`: `tcpdump -i any` on a router holds each
        /// packet it forwards twice, in and out), or a pcapng packet whose flags say outbound.
        /// tshark numbers and dissects it as any other (`sll.pkttype`,
        /// `frame.packet_flags_direction`); it is no arrival to replay.
        outgoing: bool,
    },
    /// A frame of a link type transitd does not read.
    Unsupported {
        /// The masked link type.
        link_type: u32,
        /// Length on the wire.
        wire_len: u32,
    },
    /// A pcapng block that holds no packet but that tshark numbers as a frame: a custom
    /// block (0xBAD, 0x40000BAD), a systemd journal entry (9).
    NotAPacket {
        /// Its length as tshark's `frame.len` gives it.
        len: u32,
    },
}

/// The length on the wire the data plane gives a frame (`frame.len` in `replay` and `match
/// --config`): the capture's for an Ethernet capture (tshark's), and for a frame transitd
/// gave an Ethernet header, that Ethernet frame's, its bytes and what the capture left out,
/// as it would be on a live link (docs/rules.md, Differences 8). `match -Y` keeps the
/// capture's, which tshark shows: a raw-IP frame's is 14 bytes shorter, a cooked one's 2
/// longer.
pub fn data_plane_wire_len(len: usize, wire_len: u32, uncaptured_len: u32, ethernet: bool) -> u32 {
    if ethernet { wire_len } else { u32::try_from(len).unwrap_or(u32::MAX).saturating_add(uncaptured_len) }
}

/// Why a capture could not be read on.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened.
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The path.
        path: String,
        /// The reason.
        reason: std::io::Error,
    },
    /// The file is not a pcap or pcapng file.
    #[error("{path} is not a pcap or pcapng file: {reason}")]
    Format {
        /// The path.
        path: String,
        /// The reason.
        reason: String,
    },
    /// A record could not be read; reading stopped before frame `frame` (1-based).
    #[error("{path}: reading stopped at frame {frame}: {reason}")]
    Record {
        /// The path.
        path: String,
        /// Number of the frame that could not be read.
        frame: u64,
        /// The reason.
        reason: String,
    },
}

enum Inner {
    Pcap { reader: PcapReader<BufReader<Source>>, link_type: u32, nanos: bool },
    PcapNg(Box<PcapNg>),
}

/// What a capture is read from: the file (or standard input, `-`) opened once, behind what
/// was read of it to tell its format (the magic number; a pcapng file's whole first block,
/// which pcap-parser's reader takes from its first read; a modified pcap's file header, its
/// magic made the standard one), so that a pipe or a FIFO reads as a file does, record by
/// record as it arrives.
type Source = std::io::Chain<std::io::Cursor<Vec<u8>>, Box<dyn Read + Send>>;

/// A pcapng file being read: the reader, and what its current section said of itself.
struct PcapNg {
    reader: PcapNGReader<Source>,
    /// The reader's buffer now (it grows for a larger block).
    capacity: usize,
    section: Section,
}

/// What the current pcapng section said of itself.
#[derive(Default)]
struct Section {
    /// Its byte order (what pcap-parser reads options and obsolete blocks in).
    big_endian: bool,
    /// Its interfaces, in the order described.
    interfaces: Vec<Interface>,
}

/// An interface of a pcapng section, as far as its packets need it.
struct Interface {
    link_type: u32,
    snaplen: u32,
    tsresol: u8,
    tsoffset: i64,
}

/// The buffer a pcapng reader starts with, and the most it grows to for one block (a frame
/// and its options): pcap records are held to the same 8 MiB by pcap-file. A file that
/// claims a larger block ends the read with an error, not with the memory it asks for.
const PCAPNG_BUFFER: usize = 1 << 20;
const PCAPNG_MAX_BLOCK: usize = 8 << 20;

/// Reads frames from a capture file.
pub struct CaptureReader {
    inner: Inner,
    path: String,
    /// Records returned so far (frames and unsupported ones alike).
    records: u64,
}

impl CaptureReader {
    /// Opens `path` (`-`: standard input), telling pcap from pcapng by the magic number. The
    /// file is opened and read once, front to back, so a pipe or a FIFO serves as well.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let stdin = crate::files::is_standard_stream(path);
        let name = if stdin { "standard input".to_string() } else { path.display().to_string() };
        let mut file: Box<dyn Read + Send> = match stdin {
            true => Box::new(std::io::stdin()),
            false => {
                Box::new(File::open(path).map_err(|source| CaptureError::Open { path: name.clone(), reason: source })?)
            }
        };
        let mut head = vec![0u8; 4];
        let format = |reason: PcapError| CaptureError::Format { path: name.clone(), reason: explained(&reason) };
        file.read_exact(&mut head).map_err(|e| format(PcapError::IoError(e)))?;
        let pcapng = head == [0x0a, 0x0d, 0x0d, 0x0a];
        let malformed = |reason: String| CaptureError::Format { path: name.clone(), reason };
        if pcapng {
            // The section header block whole: its length, its byte-order magic (which says
            // the length's order), then the rest, if its framing holds. A byte-order magic
            // of neither order leaves it at that: pcap-parser says it is no section header.
            head.resize(12, 0);
            file.read_exact(&mut head[4..12]).map_err(|e| format(PcapError::IoError(e)))?;
            let bom = [head[8], head[9], head[10], head[11]];
            if bom == [0x1a, 0x2b, 0x3c, 0x4d] || bom == [0x4d, 0x3c, 0x2b, 0x1a] {
                let big_endian = bom[0] == 0x1a;
                let length = u32_in([head[4], head[5], head[6], head[7]], big_endian);
                if let Some(reason) = framing_fault(length, None) {
                    return Err(malformed(reason));
                }
                head.resize(length as usize, 0);
                file.read_exact(&mut head[12..]).map_err(|e| format(PcapError::IoError(e)))?;
                let end = head.len() - 4;
                let end = u32_in([head[end], head[end + 1], head[end + 2], head[end + 3]], big_endian);
                if let Some(reason) = framing_fault(length, Some(end)) {
                    return Err(malformed(reason));
                }
            }
        } else if let Some(big_endian) = modified::big_endian(&head) {
            // The file header whole, as the standard one of its byte order; the records
            // follow as standard ones.
            head.resize(24, 0);
            file.read_exact(&mut head[4..]).map_err(|e| format(PcapError::IoError(e)))?;
            head[..4].copy_from_slice(&modified::standard_magic(big_endian));
            file = Box::new(modified::StandardRecords::new(file, big_endian));
        }
        // The first read hands pcap-parser the whole section header block.
        let capacity = PCAPNG_BUFFER.max(head.len());
        let source: Source = std::io::Cursor::new(head).chain(file);
        let inner = if pcapng {
            let reader = PcapNGReader::new(capacity, source).map_err(|e| {
                // The block was read whole above: a parse wanting more wants it past its end.
                malformed(match e {
                    pcap_parser::PcapError::Incomplete(_) => OVERRUN.into(),
                    e => parser_explained(&e),
                })
            })?;
            Inner::PcapNg(Box::new(PcapNg { reader, capacity, section: Section::default() }))
        } else {
            let reader = PcapReader::new(BufReader::with_capacity(1 << 20, source)).map_err(format)?;
            let header = reader.header();
            let link_type = u32::from(header.datalink) & 0xffff;
            Inner::Pcap { reader, link_type, nanos: header.ts_resolution == TsResolution::NanoSecond }
        };
        Ok(CaptureReader { inner, path: name, records: 0 })
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn error(&self, reason: impl ToString) -> CaptureError {
        CaptureError::Record { path: self.path.clone(), frame: self.records + 1, reason: reason.to_string() }
    }

    /// Reads the next record, writing its frame at the front of `out` (truncated to `out`'s
    /// length if it does not fit). `None` at the end of the file.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<Record>, CaptureError> {
        let record = match &mut self.inner {
            Inner::Pcap { reader, link_type, nanos } => match reader.next_raw_packet() {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.error(explained(&e))),
                Some(Ok(raw)) => {
                    // pcap-file's strict conversion refuses orig_len > snaplen, which real
                    // (and fuzzed) captures have: take the raw record and check it here.
                    let frac = u64::from(raw.ts_frac);
                    let ns = u64::from(raw.ts_sec) * 1_000_000_000 + if *nanos { frac } else { frac * 1000 };
                    frame(*link_type, &raw.data, raw.orig_len, ns, out)
                }
            },
            Inner::PcapNg(ng) => match ng.next_packet(out) {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(None),
                Err(reason) => return Err(self.error(reason)),
            },
        };
        self.records += 1;
        Ok(Some(record))
    }
}

/// What the pcapng reader did with one block.
enum Step {
    /// What a block held (`None`: a block taken in, or one tshark does not number).
    Block(Option<Taken>),
    End,
    /// More of the file is needed in the buffer, or a larger buffer.
    Refill,
    Grow,
    Bad(String),
}

impl PcapNg {
    /// The next packet's frame at the front of `out`, the section and interface blocks before
    /// it taken in; `None` at the file's end.
    fn next_packet(&mut self, out: &mut [u8]) -> Result<Option<Record>, String> {
        loop {
            // The block's framing is checked here, before pcap-parser reads it: it takes 12
            // from a block's length before it checks that the length covers the 12 bytes of
            // its own framing (with overflow checks a panic, without a wrapped length), and
            // compares the length at the end with the one at the start for a few block types.
            let lengths = self.next_block_lengths();
            if let Some(reason) = lengths.and_then(|(len, end)| framing_fault(len, end)) {
                return Err(reason);
            }
            // The block is whole in the buffer (its length at its end is there): a parse
            // that wants more then wants it past the block's end, and more of the file
            // would not help (nor would it come, from a pipe left open).
            let whole = lengths.is_some_and(|(_, end)| end.is_some());
            // The reader's error borrows its buffer: what it said is taken out here, and the
            // buffer refilled below.
            let step = match self.reader.next() {
                Ok((offset, block)) => {
                    let taken = self.section.take(block, out);
                    self.reader.consume(offset);
                    match taken {
                        Ok(packet) => Step::Block(packet),
                        Err(reason) => Step::Bad(reason),
                    }
                }
                Err(pcap_parser::PcapError::Eof) => Step::End,
                Err(
                    pcap_parser::PcapError::Incomplete(_)
                    | pcap_parser::PcapError::UnexpectedEof
                    | pcap_parser::PcapError::BufferTooSmall,
                ) if whole => Step::Bad(OVERRUN.into()),
                Err(pcap_parser::PcapError::Incomplete(_)) => Step::Refill,
                Err(pcap_parser::PcapError::BufferTooSmall) => Step::Grow,
                Err(e) => Step::Bad(parser_explained(&e)),
            };
            match step {
                Step::Block(None) => continue,
                Step::Block(Some(Taken::NotAPacket { len })) => return Ok(Some(Record::NotAPacket { len })),
                Step::Block(Some(Taken::Packet { interface, ticks, wire_len, n, outbound })) => {
                    let Some(i) = self.section.interfaces.get(interface as usize) else {
                        return Err(format!("packet names interface {interface}, which is not described"));
                    };
                    let ns = shift_by_seconds(ticks_to_ns(ticks, i.tsresol), i.tsoffset);
                    return Ok(Some(reframe_in_place(i.link_type, n, wire_len, ns, outbound, out)));
                }
                Step::End => return Ok(None),
                Step::Refill => self.reader.refill().map_err(|e| parser_explained(&e))?,
                Step::Grow => {
                    self.capacity *= 2;
                    if self.capacity > PCAPNG_MAX_BLOCK || !self.reader.grow(self.capacity) {
                        return Err(format!("a block larger than {} MiB", PCAPNG_MAX_BLOCK >> 20));
                    }
                    self.reader.refill().map_err(|e| parser_explained(&e))?;
                }
                Step::Bad(reason) => return Err(reason),
            }
        }
    }
}

impl PcapNg {
    /// The length the next block says it has, once its first 12 bytes are read, and the
    /// length at its end once the whole block is read: in the section's byte order, or for
    /// a section header block its own (its byte-order magic).
    fn next_block_lengths(&self) -> Option<(u32, Option<u32>)> {
        let data = self.reader.data();
        let d = data.get(..12)?;
        let big_endian = match d[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            true => d[8..12] == [0x1a, 0x2b, 0x3c, 0x4d],
            false => self.section.big_endian,
        };
        let len = u32_in([d[4], d[5], d[6], d[7]], big_endian);
        let end = (len as usize).checked_sub(4).and_then(|at| data.get(at..at.checked_add(4)?));
        Some((len, end.map(|e| u32_in([e[0], e[1], e[2], e[3]], big_endian))))
    }
}

/// What a pcapng block is said to be when what it holds runs past its own length (a
/// packet's captured length past the block's end, a block shorter than its type's fixed
/// fields), which pcap-parser reports as more of the file wanted.
const OVERRUN: &str =
    "a malformed block: its length is too short for what it holds (its type's fixed fields, or its packet)";

/// What is wrong with a pcapng block's framing, from the length at its start and (once the
/// block is read whole) the one at its end; tshark refuses the same blocks. `None`: nothing.
fn framing_fault(len: u32, end: Option<u32>) -> Option<String> {
    if len < 12 {
        return Some(format!("a malformed block: its length ({len}) is shorter than its own 12-byte framing"));
    }
    // The draft pads every block to 32 bits; tshark, reading the length rounded up, finds
    // no length at the end where it looks.
    if !len.is_multiple_of(4) {
        return Some(format!("a malformed block: its length ({len}) is not a multiple of 4"));
    }
    if len as usize > PCAPNG_MAX_BLOCK {
        return Some(format!("a block of {len} bytes, larger than {} MiB", PCAPNG_MAX_BLOCK >> 20));
    }
    match end {
        Some(end) if end != len => {
            Some(format!("a malformed block: its lengths differ ({len} at its start, {end} at its end)"))
        }
        _ => None,
    }
}

/// `bytes` as a `u32` in the byte order given.
fn u32_in(bytes: [u8; 4], big_endian: bool) -> u32 {
    if big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) }
}

/// A pcapng block that tshark numbers as a frame.
enum Taken {
    /// A packet: its interface, timestamp ticks, length on the wire, the `n` bytes of it now
    /// at the front of the output, and whether its flags say the capturing host sent it.
    Packet { interface: u32, ticks: u64, wire_len: u32, n: usize, outbound: bool },
    /// No packet (a custom block, a journal entry) of `len` bytes to tshark.
    NotAPacket { len: u32 },
}

impl Section {
    /// Takes in a section or interface block; a packet block's frame is copied to the front
    /// of `out` and described. `Err`: a block tshark calls damaged.
    fn take(&mut self, block: PcapBlockOwned<'_>, out: &mut [u8]) -> Result<Option<Taken>, String> {
        let PcapBlockOwned::NG(block) = block else { return Ok(None) };
        let big_endian = self.big_endian;
        Ok(match block {
            Block::SectionHeader(shb) => {
                // Byte-order magic, major and minor versions, section length: 16 bytes.
                options_in_force(&shb.options, shb.block_len1, 16)?;
                self.big_endian = shb.big_endian();
                self.interfaces.clear();
                None
            }
            Block::InterfaceDescription(idb) => {
                // Link type, reserved, snap length: 8 bytes.
                let options = options_in_force(&idb.options, idb.block_len1, 8)?;
                let (tsresol, tsoffset) = timestamp_options(options, big_endian);
                self.interfaces.push(Interface {
                    link_type: (idb.linktype.0 as u32) & 0xffff,
                    snaplen: idb.snaplen,
                    tsresol,
                    tsoffset,
                });
                None
            }
            Block::EnhancedPacket(p) => Some(enhanced_packet(&p, big_endian, out)?),
            Block::SimplePacket(p) => {
                // The block's data is padded to 32 bits: the packet is its first original
                // length of bytes, or the first interface's snaplen if less. No time.
                let snaplen = self.interfaces.first().map_or(0, |i| i.snaplen as usize);
                let mut len = (p.origlen as usize).min(p.data.len());
                if snaplen > 0 {
                    len = len.min(snaplen);
                }
                let n = copy_prefix(&p.data[..len], out);
                Some(Taken::Packet { interface: 0, ticks: 0, wire_len: p.origlen, n, outbound: false })
            }
            // The obsolete packet block (2), which tshark still reads: interface (16 bits),
            // drops (16), timestamp high and low (32 each), captured and original lengths,
            // the packet padded to 32 bits, options: its `pack_flags` is the enhanced block's
            // `epb_flags` (tshark's `frame.packet_flags_direction` of either). (pcap-parser
            // 0.17 gives an unknown block's type read little-endian in a big-endian section:
            // 2 reads 0x02000000, no type of the draft's.)
            // tshark refuses a packet block shorter than those fields ("less than the minimum
            // PB size") or whose packet runs past its end ("too small for N bytes of packet
            // data"), as pcap-parser refuses an enhanced one.
            Block::Unknown(u) if u.block_type == 2 || u.block_type == 2u32.swap_bytes() => {
                Some(obsolete_packet(u.data, big_endian, out)?)
            }
            // tshark 4.0 gives a custom block's data after its enterprise number, padding
            // and all (it cannot tell data from options), and a journal entry without the
            // zeros that pad it.
            Block::Custom(c) => Some(Taken::NotAPacket { len: c.data.len() as u32 }),
            Block::SystemdJournalExport(j) => {
                let len = j.data.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
                Some(Taken::NotAPacket { len: len as u32 })
            }
            // No frame, but tshark reads their options and refuses the file where one runs
            // past the block. Statistics: interface, timestamp high and low (12 bytes);
            // name resolution: its records, each a 4-byte header and a value padded to 32
            // bits (the end record's empty), as pcap-parser took them.
            Block::InterfaceStatistics(s) => {
                options_in_force(&s.options, s.block_len1, 12)?;
                None
            }
            Block::NameResolution(n) => {
                let records = n.nr.iter().map(|r| 4 + r.record_value.len()).sum();
                options_in_force(&n.options, n.block_len1, records)?;
                None
            }
            _ => None,
        })
    }
}

/// An enhanced packet block's packet, copied to the front of `out` and described. `Err`: an
/// option runs past the block, or its flags are malformed.
fn enhanced_packet(p: &EnhancedPacketBlock<'_>, big_endian: bool, out: &mut [u8]) -> Result<Taken, String> {
    let data = &p.data[..(p.caplen as usize).min(p.data.len())];
    let ticks = u64::from(p.ts_high) << 32 | u64::from(p.ts_low);
    // Interface, timestamp high and low, captured and original lengths (20 bytes), then the
    // packet padded to 32 bits, as pcap-parser took it.
    let in_force = options_in_force(&p.options, p.block_len1, 20 + p.data.len())?;
    let flags = in_force.iter().find(|o| o.code.0 == FLAGS_OPTION).map(|o| (o.len, &o.value[..]));
    let outbound = is_outbound(flags, big_endian)?;
    let n = copy_prefix(data, out);
    Ok(Taken::Packet { interface: p.if_id, ticks, wire_len: p.origlen, n, outbound })
}

/// The obsolete packet block's packet (its body `data`, which pcap-parser leaves unread),
/// copied to the front of `out` and described. `Err`: the body is too short for its fixed
/// fields or its packet ([`OVERRUN`]), or its flags are malformed.
fn obsolete_packet(data: &[u8], big_endian: bool, out: &mut [u8]) -> Result<Taken, String> {
    let Some(&[i0, i1, ..]) = data.get(..20) else { return Err(OVERRUN.into()) };
    let interface = u32::from(if big_endian { u16::from_be_bytes([i0, i1]) } else { u16::from_le_bytes([i0, i1]) });
    let ticks = u64::from(u32_at(data, 4, big_endian)) << 32 | u64::from(u32_at(data, 8, big_endian));
    let caplen = u32_at(data, 12, big_endian);
    let packet_end = usize::try_from(u64::from(caplen) + 20).ok();
    let packet = packet_end.and_then(|end| data.get(20..end)).ok_or(OVERRUN)?;
    // The padding is there if the packet is: the block's body is whole words.
    let options_at = usize::try_from(u64::from(caplen).next_multiple_of(4) + 20).ok();
    let options = options_at.and_then(|at| data.get(at..)).unwrap_or_default();
    let outbound = is_outbound(raw_option(options, FLAGS_OPTION, big_endian)?, big_endian)?;
    let n = copy_prefix(packet, out);
    Ok(Taken::Packet { interface, ticks, wire_len: u32_at(data, 16, big_endian), n, outbound })
}

/// The `u32` at `b[at..at + 4]` in the byte order given; 0 where `b` ends before it.
fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let w = b.get(at..at + 4).map_or([0; 4], |w| [w[0], w[1], w[2], w[3]]);
    u32_in(w, big_endian)
}

/// A packet's flags (`epb_flags` of an enhanced packet block, `pack_flags` of the obsolete
/// packet block): option 2, one 32-bit word in the section's byte order.
const FLAGS_OPTION: u16 = 2;

/// `opt_endofopt`: the option list ends here, whatever bytes follow it in the block.
const END_OF_OPTIONS: u16 = 0;

/// An interface's `if_tsresol` and `if_tsoffset`.
const TSRESOL_OPTION: u16 = 9;
const TSOFFSET_OPTION: u16 = 14;

/// What a block is said to be when an option before its end-of-options runs past its end.
const OPTION_OVERRUN: &str = "a malformed block: an option in it runs past its end";

/// The options of a block that pcap-parser read, as tshark 4.0 reads them: those before the
/// end-of-options, whatever follows it (pcap-parser lists those too); `Err` where one runs
/// past the block's end, which tshark refuses ("Not enough data to handle option of length
/// 100") and pcap-parser drops without a word, with every option after it. `fixed`: the bytes
/// of the block's body before its options (its fields, a packet with its padding).
fn options_in_force<'b, 'o>(
    options: &'b [PcapNGOption<'o>],
    block_len: u32,
    fixed: usize,
) -> Result<&'b [PcapNGOption<'o>], String> {
    if let Some(end) = options.iter().position(|o| o.code.0 == END_OF_OPTIONS) {
        return Ok(options.split_at(end).0);
    }
    // Each option read is its 4-byte header and its value padded to 32 bits, and the body
    // is whole words: what pcap-parser left of the option bytes is an option that did not fit.
    let area = (block_len as usize).saturating_sub(12 + fixed);
    let read: usize = options.iter().map(|o| 4 + o.value.len()).sum();
    if read < area { Err(OPTION_OVERRUN.into()) } else { Ok(options) }
}

/// An interface's timestamp resolution and offset from its options in force: the first
/// `if_tsresol` of 1 byte (10^-6 s without one) and the first `if_tsoffset` of 8 (in the
/// section's byte order; none without one), as tshark 4.0 reads them, skipping one of another
/// length. pcap-parser's own `if_tsresol` is the last of any length, past the end-of-options too.
fn timestamp_options(options: &[PcapNGOption<'_>], big_endian: bool) -> (u8, i64) {
    let sized =
        move |code: u16, len: u16| options.iter().find(|o| o.code.0 == code && o.len == len).map(|o| &o.value[..]);
    let tsresol = sized(TSRESOL_OPTION, 1).and_then(|v| v.first().copied()).unwrap_or(6);
    let tsoffset = sized(TSOFFSET_OPTION, 8)
        .and_then(|v| v.first_chunk::<8>())
        .map_or(0, |&b| if big_endian { i64::from_be_bytes(b) } else { i64::from_le_bytes(b) });
    (tsresol, tsoffset)
}

/// Whether a packet's flags say the capturing host sent it: the word's low two bits are the
/// direction, 2 outbound. `flags`: the option's length as its header gives it, and its bytes.
/// A flags option of any other length than 4 is refused, as tshark 4.0 refuses it ("packet
/// block flags option length 8 is not 4", the file damaged): its first bytes were read as
/// the word, or the padding of a shorter one with them.
fn is_outbound(flags: Option<(u16, &[u8])>, big_endian: bool) -> Result<bool, String> {
    let Some((len, value)) = flags else { return Ok(false) };
    match value.get(..4) {
        Some(&[a, b, c, d]) if len == 4 => Ok(u32_in([a, b, c, d], big_endian) & 0b11 == 0b10),
        _ => Err(format!("a malformed block: its packet flags option is {len} bytes long, not 4")),
    }
}

/// The first option `code` of the option list `options` (a block's bytes after its fixed
/// fields, in the byte order given): the length its header gives and its bytes. The list
/// ends at its end-of-options (code 0) or at its own end; an option before that whose value
/// runs past the list is `Err`, whichever option is sought, as for [`options_in_force`].
fn raw_option(mut options: &[u8], code: u16, big_endian: bool) -> Result<Option<(u16, &[u8])>, String> {
    let u16_in = |b: [u8; 2]| if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) };
    let mut found = None;
    while let Some((&[c0, c1, l0, l1], rest)) = options.split_first_chunk::<4>() {
        let (this, len) = (u16_in([c0, c1]), u16_in([l0, l1]));
        if this == END_OF_OPTIONS {
            break;
        }
        let value = rest.get(..usize::from(len)).ok_or(OPTION_OVERRUN)?;
        if this == code && found.is_none() {
            found = Some((len, value));
        }
        // Each value is padded to 32 bits.
        options = rest.get(usize::from(len).next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(found)
}

/// pcap-parser's error in words.
fn parser_explained(e: &pcap_parser::PcapError<&[u8]>) -> String {
    use pcap_parser::PcapError as E;
    use pcap_parser::nom::error::ErrorKind;
    match e {
        E::UnexpectedEof | E::Incomplete(_) => "the file ends inside it (cut short)".into(),
        E::ReadError => "the file could not be read".into(),
        E::HeaderNotRecognized => "no pcapng section header".into(),
        // pcap-parser's check of a length: the block's against its type's fixed fields, a
        // packet's or a secret's against the most a block can hold.
        E::NomError(_, ErrorKind::Verify) | E::OwnedNomError(_, ErrorKind::Verify) => {
            "a malformed block: shorter than its type's fixed fields, or a length in it out of range".into()
        }
        E::NomError(_, kind) => format!("a malformed block ({kind:?})"),
        E::OwnedNomError(_, kind) => format!("a malformed block ({kind:?})"),
        E::BufferTooSmall => format!("a block larger than {} MiB", PCAPNG_MAX_BLOCK >> 20),
        E::Eof => "the file ends".into(),
    }
}

/// What went wrong, in words: pcap-file says "Error reading bytes" of every I/O error (a
/// directory, a file cut short) and keeps the cause to itself.
fn explained(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends inside it (cut short, or empty)".into()
        }
        PcapError::IoError(io) => io.to_string(),
        PcapError::IncompleteBuffer => "the file ends inside it (cut short)".into(),
        // pcap-file's "Invalid field value: PcapHeader: wrong magic number": a text file, say.
        PcapError::InvalidField("PcapHeader: wrong magic number") => {
            "its first four bytes are no pcap or pcapng magic number".into()
        }
        other => other.to_string(),
    }
}

fn copy_prefix(data: &[u8], out: &mut [u8]) -> usize {
    let n = data.len().min(out.len());
    out[..n].copy_from_slice(&data[..n]);
    n
}

/// `ns` moved by `seconds`, held to what nanoseconds since 1970 in a `u64` can say.
fn shift_by_seconds(ns: u64, seconds: i64) -> u64 {
    let shifted = i128::from(ns) + i128::from(seconds) * 1_000_000_000;
    u64::try_from(shifted.max(0)).unwrap_or(u64::MAX)
}

/// A pcapng timestamp's ticks in nanoseconds: the tick is 10^-r seconds, or 2^-r with the
/// high bit of `r` set (`if_tsresol`).
fn ticks_to_ns(ticks: u64, resol: u8) -> u64 {
    let ticks = u128::from(ticks);
    let ns = if resol & 0x80 != 0 {
        (ticks * 1_000_000_000) >> (resol & 0x7f).min(127)
    } else {
        let div = 10u128.checked_pow(u32::from(resol)).unwrap_or(u128::MAX);
        ticks * 1_000_000_000 / div
    };
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The EtherType of a raw IP packet, from its version nibble; an unknown version reads as
/// IPv4, so the pipeline drops it as a bad IPv4 header.
fn ip_ethertype(first: Option<&u8>) -> u16 {
    match first.map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    }
}

/// The link header's length in a loopback capture's frame (link type 0, BSD's, or 108,
/// OpenBSD's), and the EtherType of what follows, as tshark 4.0's null dissector reads the
/// frame's first bytes (`header`, at most 4). Link type 0 holds, in the capturing host's byte
/// order, an address family: AF_INET (2) is IPv4 and the BSDs' AF_INET6 (24, 28, 30) IPv6;
/// any other (OSI, IPX, Linux's AF_INET6 10) carries no IP to tshark, and here it is no IP
/// EtherType. Or, as tshark also reads it: IRIX's family in the first two bytes, an EtherType
/// (a value above 1500, which some writers put there), or after `ff 03` a PPP frame's
/// address, control and protocol fields. Link type 108 holds the family in network byte
/// order, nothing else. `None`: the frame ends inside its header.
fn loopback(link_type: u32, header: &[u8]) -> Option<(usize, u16)> {
    let family = |af: u32| match af {
        2 => 0x0800,
        24 | 28 | 30 => 0x86dd,
        _ => 0,
    };
    if link_type == 0 && header.starts_with(&[0xff, 0x03]) {
        // PPP in HDLC-like framing; an odd first protocol byte is a compressed protocol field.
        let (len, protocol) = match header[2..] {
            [p, ..] if p & 1 == 1 => (3, u16::from(p)),
            [p, q] => (4, u16::from_be_bytes([p, q])),
            _ => return None,
        };
        let ethertype = match protocol {
            0x0021 | 0x0800 => 0x0800,
            0x0057 | 0x86dd => 0x86dd,
            _ => 0,
        };
        return Some((len, ethertype));
    }
    let &bytes = <&[u8; 4]>::try_from(header).ok()?;
    if link_type != 0 {
        return Some((4, family(u32::from_be_bytes(bytes))));
    }
    // Read in the byte order of the host tshark runs on (little-endian here), then turned
    // as Wireshark's packet-null.c turns it.
    let mut value = u32::from_le_bytes(bytes);
    if value & 0xffff_0000 != 0 {
        // IRIX's family in the first two bytes; otherwise the other byte order.
        let irix = value & 0xff00_0000 == 0 && value & 0x00ff_0000 < 0x0006_0000;
        value = if irix { value >> 16 } else { value.swap_bytes() };
    } else if value & 0xff == 0 && value & 0xff00 < 0x0600 {
        // IRIX's family in the first two bytes, in the other byte order.
        value = u32::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    }
    // Above 802.3's largest length, an EtherType (tshark keeps its low 16 bits).
    let ethertype = if value > 1500 { (value & 0xffff) as u16 } else { family(value) };
    Some((4, ethertype))
}

/// Writes the frame of `data` (link type `link_type`) as Ethernet at the front of `out`.
fn frame(link_type: u32, data: &[u8], wire_len: u32, ns: u64, out: &mut [u8]) -> Record {
    let n = copy_prefix(data, out);
    reframe_in_place(link_type, n, wire_len, ns, false, out)
}

/// Turns the `n` captured bytes of link type `link_type` at the front of `out` into an
/// Ethernet frame there. `outbound`: the capture's record says the capturing host sent it.
fn reframe_in_place(link_type: u32, n: usize, wire_len: u32, ns: u64, outbound: bool, out: &mut [u8]) -> Record {
    // Linux's packet type, where a cooked header holds it: its first two bytes (SLL), its
    // eleventh (SLL2).
    let sent_by_linux = match link_type {
        113 => out.get(..2).filter(|_| n >= 2).is_some_and(|t| *t == PACKET_OUTGOING.to_be_bytes()),
        276 => out.get(10).filter(|_| n > 10).is_some_and(|&t| u16::from(t) == PACKET_OUTGOING),
        _ => false,
    };
    let outgoing = outbound || sent_by_linux;
    // The link header's length and the EtherType of what it carries (none: the frame is
    // Ethernet already); `None` when the frame ends inside that header.
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let link = match link_type {
        1 => Some((0, None)),
        12 | 14 | 101 => Some((0, Some(ip_ethertype(out.first().filter(|_| n > 0))))),
        228 => Some((0, Some(0x0800))),
        229 => Some((0, Some(0x86dd))),
        0 | 108 => loopback(link_type, out.get(..n.min(4)).unwrap_or_default()).map(|(len, t)| (len, Some(t))),
        113 => out.get(14..16).filter(|_| n >= 16).map(|b| (16, Some(be16(b)))),
        276 => out.get(0..2).filter(|_| n >= 20).map(|b| (20, Some(be16(b)))),
        other => return Record::Unsupported { link_type: other, wire_len },
    };
    // What the capture left out of the packet, after the `n` bytes it has of it.
    let uncaptured_len = wire_len.saturating_sub(n as u32);
    let Some((strip, ethertype)) = link else {
        // No byte of a packet behind a link header cut short (tshark: malformed, or cut by
        // the snap length): a frame of none, which the pipeline drops as `truncated`, as it
        // drops an Ethernet frame cut inside its header.
        return Record::Frame { len: 0, wire_len, uncaptured_len, timestamp_ns: ns, ethernet: false, outgoing };
    };
    let Some(ethertype) = ethertype else {
        return Record::Frame { len: n, wire_len, uncaptured_len, timestamp_ns: ns, ethernet: true, outgoing };
    };
    let payload = n - strip;
    // Move the payload behind a new Ethernet header; what does not fit is cut.
    let room = out.len().saturating_sub(ETH);
    let keep = payload.min(room);
    out.copy_within(strip..strip + keep, ETH);
    out[..12].fill(0);
    out[12..14].copy_from_slice(&ethertype.to_be_bytes());
    let uncaptured_len = uncaptured_len.saturating_add((payload - keep) as u32);
    Record::Frame { len: ETH + keep, wire_len, uncaptured_len, timestamp_ns: ns, ethernet: false, outgoing }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capture fuzz target's find: a pcapng block whose length (1) is shorter than its
    /// own framing made pcap-parser subtract past zero (a panic under overflow checks). It is
    /// refused as malformed, the frames before it read.
    #[test]
    fn a_block_shorter_than_its_framing_is_refused_not_a_panic() {
        let bytes: &[u8] = &[
            0x0a, 0x0d, 0x0d, 0x0a, 0x34, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x04, 0x00, 0x0d, 0x00, 0x45, 0x64, 0x69, 0x74, 0x63, 0x61, 0x70, 0x20,
            0x32, 0x2e, 0x39, 0x2e, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x80, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0d, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let path = std::env::temp_dir().join(format!("transitd-short-block-{}.pcapng", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut out = [0u8; 2048];
        let mut results = Vec::new();
        loop {
            match reader.next_into(&mut out) {
                Ok(Some(_)) => results.push(Ok(())),
                Ok(None) => break,
                Err(e) => {
                    results.push(Err(e.to_string()));
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        assert!(matches!(results.last(), Some(Err(_))), "{results:?}");
    }

    #[test]
    fn raw_ipv6_gets_an_ethernet_header() {
        let mut out = [0u8; 64];
        let data = [0x60, 0, 0, 0, 0, 0, 59, 64];
        let r = frame(101, &data, 8, 5, &mut out);
        let expected = Record::Frame {
            len: 22,
            wire_len: 8,
            uncaptured_len: 0,
            timestamp_ns: 5,
            ethernet: false,
            outgoing: false,
        };
        assert_eq!(r, expected);
        assert_eq!(&out[12..22], &[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 59, 64]);
    }

    #[test]
    fn linux_cooked_header_becomes_ethernet() {
        let mut out = [0u8; 64];
        let mut data = [0u8; 20];
        data[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        data[16] = 0x45;
        let expected = Record::Frame {
            len: 18,
            wire_len: 20,
            uncaptured_len: 0,
            timestamp_ns: 0,
            ethernet: false,
            outgoing: false,
        };
        assert_eq!(frame(113, &data, 20, 0, &mut out), expected);
        assert_eq!(&out[12..15], &[0x08, 0x00, 0x45]);
    }

    /// What a cut frame is missing is counted apart from the link header a synthesized
    /// Ethernet header replaced, so that its length on the wire is the frame's and that:
    /// 40 of 1000 bytes of a Linux cooked capture (a 16-byte header: 998 as Ethernet), of a
    /// raw-IP one cut again by the output buffer (1014), of an Ethernet one (1000).
    #[test]
    fn what_a_capture_left_out_is_counted_past_the_frame_it_gives() {
        let mut data = [0u8; 40];
        data[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        let cut = |link_type: u32, room: usize| match frame(link_type, &data, 1000, 0, &mut vec![0u8; room]) {
            Record::Frame { len, uncaptured_len, .. } => (len, uncaptured_len),
            _ => unreachable!(),
        };
        assert_eq!(cut(113, 64), (38, 960));
        assert_eq!(cut(101, 30), (30, 984));
        assert_eq!(cut(1, 30), (30, 970));
    }

    /// A pcapng interface's `if_tsoffset` moves its packets' timestamps, as tshark reads
    /// them (the oracle: `frame.time_epoch` of the same file).
    #[test]
    fn pcapng_timestamp_offsets_are_added_as_tshark_adds_them() {
        use pcap_file::DataLink;
        use pcap_file::pcapng::PcapNgWriter;
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::{
            InterfaceDescriptionBlock, InterfaceDescriptionOption as O,
        };
        let path = std::env::temp_dir().join(format!("transitd-tsoffset-{}.pcapng", std::process::id()));
        let mut w = PcapNgWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        let frame = [0u8; 60];
        for offset in [1_700_000_000u64, (-5i64) as u64] {
            let options = vec![O::IfTsResol(6), O::IfTsOffset(offset)];
            w.write_pcapng_block(InterfaceDescriptionBlock { linktype: DataLink::ETHERNET, snaplen: 0, options })
                .unwrap();
        }
        for (interface_id, ticks) in [(0, 2_500_000u64), (1, 7_000_000)] {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id,
                timestamp: std::time::Duration::from_nanos(ticks),
                original_len: 60,
                data: std::borrow::Cow::Borrowed(&frame[..]),
                options: vec![],
            })
            .unwrap();
        }
        drop(w);
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut out = [0u8; 64];
        let mut ours = Vec::new();
        while let Some(Record::Frame { timestamp_ns, .. }) = reader.next_into(&mut out).unwrap() {
            ours.push(timestamp_ns);
        }
        let tshark = std::process::Command::new("tshark")
            .args(["-r", path.to_str().unwrap(), "-T", "fields", "-e", "frame.time_epoch"])
            .output()
            .expect("tshark");
        let _ = std::fs::remove_file(&path);
        let theirs: Vec<u64> = String::from_utf8_lossy(&tshark.stdout)
            .lines()
            .map(|l| {
                let (s, frac) = l.trim().split_once('.').unwrap();
                s.parse::<u64>().unwrap() * 1_000_000_000 + format!("{frac:0<9}")[..9].parse::<u64>().unwrap()
            })
            .collect();
        assert_eq!(ours, [1_700_000_002_500_000_000, 2_000_000_000]);
        assert_eq!(ours, theirs);
    }

    /// The data plane's `frame.len` of a frame given an Ethernet header is that frame's on
    /// the wire: tshark's `frame.len` of the input, less its link header, plus 14 (as the drop
    /// capture writes it, dataplane/tests/drop_capture.rs); an Ethernet capture's is its own.
    #[test]
    fn a_reframed_frame_is_as_long_on_the_wire_as_its_ethernet_frame() {
        let mut data = [0u8; 40];
        data[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        let on_the_wire = |link_type: u32, wire_len: u32| match frame(link_type, &data, wire_len, 0, &mut [0u8; 64]) {
            Record::Frame { len, wire_len, uncaptured_len, ethernet, .. } => {
                data_plane_wire_len(len, wire_len, uncaptured_len, ethernet)
            }
            _ => unreachable!(),
        };
        // Whole: 40 bytes of raw IP; a cooked capture's 16-byte header and 24 of IP; BSD
        // loopback's 4 and 36.
        assert_eq!([on_the_wire(101, 40), on_the_wire(113, 40), on_the_wire(0, 40)], [54, 38, 50]);
        // The first 40 bytes of 1000.
        assert_eq!([on_the_wire(101, 1000), on_the_wire(113, 1000), on_the_wire(0, 1000)], [1014, 998, 1010]);
        // Ethernet: the capture's, even below its bytes (tshark's `frame.len`).
        assert_eq!([on_the_wire(1, 1000), on_the_wire(1, 30)], [1000, 30]);
    }

    /// An option list read in the section's byte order, to its end marker: `pack_flags` (2)
    /// of 2 is outbound, 1 is not; flags after the end marker are none; flags of 8 bytes
    /// are refused, as tshark 4.0 refuses them, and so is an option before the end marker
    /// that runs past the list, whichever option is sought (one past it is not read).
    #[test]
    fn packet_flags_are_found_in_a_raw_option_list() {
        // A comment (1) of 3 bytes, "abc" and a byte of padding; flags (2), 4 bytes: outbound.
        let little = [1, 0, 3, 0, b'a', b'b', b'c', 0, 2, 0, 4, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        let big = [0, 1, 0, 3, b'a', b'b', b'c', 0, 0, 2, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(is_outbound(raw_option(&little, FLAGS_OPTION, false).unwrap(), false), Ok(true));
        assert_eq!(is_outbound(raw_option(&big, FLAGS_OPTION, true).unwrap(), true), Ok(true));
        // In the other byte order the comment is 768 bytes long, past the list's end.
        assert!(raw_option(&little, FLAGS_OPTION, true).is_err());
        // Flags, then a comment of 100 bytes with 4: the flags found, the block refused.
        assert!(raw_option(&[2, 0, 4, 0, 2, 0, 0, 0, 1, 0, 100, 0, b'a', b'b', b'c', 0], FLAGS_OPTION, false).is_err());
        // End of options (code 0, length 0), then flags: no flags; then that comment: not read.
        assert_eq!(raw_option(&[0, 0, 0, 0, 2, 0, 4, 0, 2, 0, 0, 0], FLAGS_OPTION, false), Ok(None));
        assert_eq!(raw_option(&[0, 0, 0, 0, 1, 0, 100, 0, b'a', b'b', b'c', 0], FLAGS_OPTION, false), Ok(None));
        let inbound = raw_option(&[2, 0, 4, 0, 1, 0, 0, 0], FLAGS_OPTION, false).unwrap();
        assert_eq!(is_outbound(inbound, false), Ok(false));
        let eight_bytes = raw_option(&[2, 0, 8, 0, 2, 0, 0, 0, 0, 0, 0, 0], FLAGS_OPTION, false).unwrap();
        assert!(is_outbound(eight_bytes, false).is_err());
    }

    /// An interface's timestamp options as tshark 4.0 reads them (dataplane/tests/
    /// replay_captures.rs checks them against it): the first of the draft's length before
    /// the end of options; pcap-parser's `if_tsresol` is the last one of any length.
    #[test]
    fn timestamp_options_are_the_first_of_their_length_before_the_end() {
        use pcap_parser::OptionCode;
        use std::borrow::Cow;
        let option = |code: u16, len: u16, value: &'static [u8]| PcapNGOption {
            code: OptionCode(code),
            len,
            value: Cow::Borrowed(value),
        };
        // if_tsresol of 2 bytes (skipped), then of 1: 10^-9 s; a second of 1 is not read.
        let resolutions = [option(9, 2, &[3, 0, 0, 0]), option(9, 1, &[9, 0, 0, 0]), option(9, 1, &[7, 0, 0, 0])];
        assert_eq!(timestamp_options(&resolutions, false), (9, 0));
        // if_tsoffset of 12 bytes (skipped), then 8 bytes of -100 s, in either byte order.
        const WRONG: [u8; 12] = [200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        const LITTLE: [u8; 8] = (-100i64).to_le_bytes();
        const BIG: [u8; 8] = (-100i64).to_be_bytes();
        assert_eq!(timestamp_options(&[option(14, 12, &WRONG), option(14, 8, &LITTLE)], false), (6, -100));
        assert_eq!(timestamp_options(&[option(14, 12, &WRONG), option(14, 8, &BIG)], true), (6, -100));
        // None of either: microseconds, no offset.
        assert_eq!(timestamp_options(&[option(1, 4, b"note")], false), (6, 0));
    }

    /// An option list that leaves bytes of its block unread had an option that did not fit
    /// (pcap-parser stops there without a word); options after the end of options are not
    /// in force, whatever they hold.
    #[test]
    fn options_in_force_end_at_the_end_marker_and_fill_the_block() {
        use pcap_parser::OptionCode;
        use std::borrow::Cow;
        let option = |code: u16, value: &'static [u8]| PcapNGOption {
            code: OptionCode(code),
            len: value.len() as u16,
            value: Cow::Borrowed(value),
        };
        let comment = [option(1, b"abcd")];
        // A block of 12 bytes of framing, 8 of fields, and 8 of options: the comment fills them.
        assert_eq!(options_in_force(&comment, 28, 8).map(<[_]>::len), Ok(1));
        // 4 more bytes of options than the comment: an option pcap-parser could not read.
        assert!(options_in_force(&comment, 32, 8).is_err());
        // The end marker, then whatever: the list ends there.
        let ended = [option(1, b"abcd"), option(0, b""), option(2, b"hw..")];
        assert_eq!(options_in_force(&ended, 100, 8).map(<[_]>::len), Ok(1));
    }

    #[test]
    fn nanosecond_and_binary_resolutions() {
        assert_eq!(ticks_to_ns(1_500_000, 6), 1_500_000_000);
        assert_eq!(ticks_to_ns(7, 9), 7);
        assert_eq!(ticks_to_ns(1 << 20, 0x80 | 20), 1_000_000_000);
    }
}
