//! `TcpPacket`: a view over the TCP header (RFC 9293 §3.1), for the two places transitd
//! touches one: the MSS clamp rewrites an option of a SYN, and the SYN challenge turns a SYN
//! into the segment that answers it.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |           Checksum            |         Urgent Pointer        |
//! |                    Options (data offset > 5)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Once [`TcpPacket::check_len`] has passed, no accessor can index out of bounds.

use crate::be::{u16_at, u32_at};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const HEADER_LEN: usize = URGENT.end;
}

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = field::HEADER_LEN;
/// Flag SYN.
pub const SYN: u8 = 0x02;
/// Flag ACK.
pub const ACK: u8 = 0x10;

/// The bytes do not hold the TCP header they announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("truncated or malformed TCP header")]
pub struct TcpTruncated;

/// A read/write view over a TCP header and what follows it.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buf` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buf: T) -> Self {
        TcpPacket { buf }
    }

    /// Wraps `buf` after [`check_len`](Self::check_len).
    pub fn new_checked(buf: T) -> Result<Self, TcpTruncated> {
        let p = Self::new_unchecked(buf);
        p.check_len()?;
        Ok(p)
    }

    /// Once this returns Ok, no accessor below can index out of bounds: the buffer holds
    /// the whole header its data offset announces, which is at least 20 bytes.
    pub fn check_len(&self) -> Result<(), TcpTruncated> {
        let len = self.buf.as_ref().len();
        if len < field::HEADER_LEN || self.header_len() < field::HEADER_LEN || len < self.header_len() {
            return Err(TcpTruncated);
        }
        Ok(())
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::DST_PORT)
    }

    /// The sequence number.
    pub fn seq_number(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::SEQ_NUM)
    }

    /// The acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::ACK_NUM)
    }

    /// The header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The flags byte (CWR ... FIN).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::FLAGS]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buf.as_ref(), field::CHECKSUM)
    }

    /// The options: the header past its fixed 20 bytes.
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[field::HEADER_LEN..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Writes the source port.
    pub fn set_src_port(&mut self, port: u16) {
        self.buf.as_mut()[field::SRC_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Writes the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        self.buf.as_mut()[field::DST_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Writes the sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        self.buf.as_mut()[field::SEQ_NUM].copy_from_slice(&seq.to_be_bytes());
    }

    /// Writes the acknowledgment number.
    pub fn set_ack_number(&mut self, ack: u32) {
        self.buf.as_mut()[field::ACK_NUM].copy_from_slice(&ack.to_be_bytes());
    }

    /// Writes the data offset of a `header_len`-byte header (a multiple of 4, 20..=60),
    /// clearing the reserved bits.
    pub fn set_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (20..=60).contains(&header_len));
        self.buf.as_mut()[field::DATA_OFFSET] = ((header_len / 4) as u8) << 4;
    }

    /// Writes the flags byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buf.as_mut()[field::FLAGS] = flags;
    }

    /// Writes the window.
    pub fn set_window(&mut self, window: u16) {
        self.buf.as_mut()[field::WINDOW].copy_from_slice(&window.to_be_bytes());
    }

    /// Writes the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the urgent pointer.
    pub fn set_urgent(&mut self, urgent: u16) {
        self.buf.as_mut()[field::URGENT].copy_from_slice(&urgent.to_be_bytes());
    }

    /// The options, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buf.as_mut()[field::HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 1234 to 80, seq 1, MSS option; written byte by byte from RFC 9293's layout.
    const SYN_SEGMENT: [u8; 24] =
        [0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0x12, 0x34, 0, 0, 2, 4, 0x05, 0xb4];

    #[test]
    fn fields_read_as_the_header_says() {
        let t = TcpPacket::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq_number(), t.ack_number()), (1234, 80, 1, 0));
        assert_eq!((t.header_len(), t.flags(), t.checksum()), (24, SYN, 0x1234));
        assert_eq!(t.options(), &[2, 4, 0x05, 0xb4]);
    }

    #[test]
    fn setters_write_where_the_getters_read() {
        let mut b = SYN_SEGMENT;
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(80);
        t.set_dst_port(1234);
        t.set_seq_number(0xdead_beef);
        t.set_ack_number(2);
        t.set_header_len(20);
        t.set_flags(SYN | ACK);
        t.set_window(1024);
        t.set_checksum(0);
        t.set_urgent(7);
        assert_eq!(&b[..20], &[0, 80, 0x04, 0xd2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 2, 0x50, 0x12, 4, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn short_or_lying_headers_are_refused() {
        assert_eq!(TcpPacket::new_checked(&SYN_SEGMENT[..19]).unwrap_err(), TcpTruncated);
        assert_eq!(TcpPacket::new_checked(&SYN_SEGMENT[..22]).unwrap_err(), TcpTruncated, "offset says 24");
        let mut small = SYN_SEGMENT;
        small[12] = 0x40; // 16-byte header
        assert_eq!(TcpPacket::new_checked(&small[..]).unwrap_err(), TcpTruncated);
    }
}
